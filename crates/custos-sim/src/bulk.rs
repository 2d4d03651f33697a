//! Recording bulk jobs (`/api/v2/recording/jobs*`, reference §10): an EXPORT job selects the
//! recordings of its `conversationQuery`'s conversations and, once executed, has them written
//! into the org's archive (crate::archive) by the S3 bulk-actions integration.
//!
//! States: created `PENDING` → `READY` after half of `recording-job-ms` → `PUT {"state":
//! "PROCESSING"}` (by the client that created it, from READY only) → `FULFILLED` after
//! `recording-job-ms`, when its recordings land; `FAILED` with the `bulk-job-fails` fault
//! (half of them landed); `CANCELLED` by DELETE. At most two jobs per org PENDING or
//! PROCESSING. Faults: `bulk-failed` (listed by `failedrecordings`, never landed), `bulk-late`
//! (lands `bulk-late-ms` after the job is FULFILLED). Only the EXPORT action is simulated; the
//! others are refused, as an evidence tool must never send them.

use std::time::Duration;

use tokio::time::Instant;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::Sim;
use crate::gate::Caller;
use crate::rng::hash_unit;
use crate::state::Inner;
use crate::wire::{compact, error, json_body, ok, ts};

/// Jobs an org may have PENDING or PROCESSING at once.
const ACTIVE_LIMIT: usize = 2;

/// One recording bulk job.
#[derive(Clone, Debug)]
pub struct RecordingJob {
    /// The OAuth client that created it (the only one that may execute it).
    pub owner: String,
    /// The body as received (`recordingJobsQuery`).
    pub query: Value,
    /// Created at.
    pub created: Instant,
    /// Created at, wall time.
    pub created_utc: OffsetDateTime,
    /// Its recordings (catalog indexes), a snapshot at creation.
    pub recordings: Vec<usize>,
    /// Its conversations.
    pub conversations: usize,
    /// Executed (PUT PROCESSING) at.
    pub executed: Option<Instant>,
    /// Cancelled by DELETE.
    pub cancelled: bool,
    /// Its recordings have been written to the archive (once).
    pub landed: bool,
}

/// Whether recording `i` is hit by the bulk fault `label` at `p`.
fn hit(inner: &Inner, label: &str, p: f64, i: usize) -> bool {
    p > 0.0 && hash_unit(inner.scenario.seed, label, &inner.catalog.recordings[i].id) < p
}

/// Whether the job's `bulk-failed` fault lists recording `i` as failed.
pub fn failed(inner: &Inner, i: usize) -> bool {
    hit(inner, "bulk-failed", inner.scenario.faults.bulk_failed, i)
}

/// Whether recording `i` lands late.
pub fn late(inner: &Inner, i: usize) -> bool {
    hit(inner, "bulk-late", inner.scenario.faults.bulk_late, i)
}

/// The recordings a job that FAILs part-way writes: the first half, in its order.
pub fn written_before_failing(recordings: &[usize]) -> &[usize] {
    &recordings[..recordings.len() / 2]
}

/// A job's state now.
fn state_of(inner: &Inner, job: &RecordingJob) -> &'static str {
    let total = Duration::from_millis(inner.scenario.recording_job_ms);
    let now = inner.clock.now();
    if job.cancelled {
        return "CANCELLED";
    }
    match job.executed {
        Some(at) if now - at >= total => {
            if inner.scenario.faults.bulk_job_fails {
                "FAILED"
            } else {
                "FULFILLED"
            }
        }
        Some(_) => "PROCESSING",
        None if now - job.created >= total / 2 => "READY",
        None => "PENDING",
    }
}

fn job_json(inner: &Inner, id: &str, job: &RecordingJob) -> Value {
    let state = state_of(inner, job);
    let failed = job.recordings.iter().filter(|&&i| failed(inner, i)).count();
    let done = matches!(state, "FULFILLED" | "FAILED");
    let processed = match state {
        "FULFILLED" => job.recordings.len() - failed,
        "FAILED" => written_before_failing(&job.recordings).len(),
        _ => 0,
    };
    compact(json!({
        "id": id,
        "state": state,
        "recordingJobsQuery": job.query,
        "dateCreated": ts(job.created_utc),
        "totalConversations": job.conversations,
        "totalRecordings": job.recordings.len(),
        "totalSkippedRecordings": 0,
        "totalFailedRecordings": if done { failed } else { 0 },
        "totalProcessedRecordings": processed,
        "percentProgress": if done { 100 } else { 0 },
        "errorMessage": (state == "FAILED").then_some("The job failed while exporting recordings"),
        "user": {"id": job.owner},
        "selfUri": format!("/api/v2/recording/jobs/{id}"),
    }))
}

/// Writes a finished job's recordings into the archive, once: the late ones after
/// `bulk-late-ms`, in the background.
async fn land_when_done(sim: &Sim, id: &str) {
    let inner = &sim.0;
    let todo = {
        let mut st = inner.state();
        let Some(job) = st.recording_jobs.get_mut(id) else {
            return;
        };
        let state = state_of(inner, job);
        if job.landed || !matches!(state, "FULFILLED" | "FAILED") {
            return;
        }
        job.landed = true;
        let written = if state == "FAILED" {
            written_before_failing(&job.recordings).to_vec()
        } else {
            job.recordings.clone()
        };
        written
            .into_iter()
            .filter(|&i| !failed(inner, i))
            .collect::<Vec<_>>()
    };
    let Some(dir) = inner.scenario.archive_dir.clone() else {
        return;
    };
    let (later, now): (Vec<usize>, Vec<usize>) = todo.into_iter().partition(|&i| late(inner, i));
    let s2 = sim.clone();
    let d2 = dir.clone();
    let _ = tokio::task::spawn_blocking(move || {
        for i in now {
            let _ = crate::archive::land_one(&s2.0, &d2, i);
        }
    })
    .await;
    if !later.is_empty() {
        let s3 = sim.clone();
        let wait = Duration::from_millis(inner.scenario.faults.bulk_late_ms);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let _ = tokio::task::spawn_blocking(move || {
                for i in later {
                    let _ = crate::archive::land_one(&s3.0, &dir, i);
                }
            })
            .await;
        });
    }
}

/// A page's window from `pageSize` (1..=100, default 25) and `cursor` (the offset, as this
/// simulator's cursors are): (start, size).
fn window(
    inner: &Inner,
    page_size: Option<usize>,
    cursor: Option<&str>,
) -> Result<(usize, usize), Response> {
    let size = page_size.unwrap_or(25);
    if !(1..=100).contains(&size) {
        return Err(error(
            inner,
            StatusCode::BAD_REQUEST,
            "invalid.value",
            "pageSize must be 1..=100",
        ));
    }
    match cursor.map(str::parse::<usize>) {
        None => Ok((0, size)),
        Some(Ok(n)) => Ok((n, size)),
        Some(Err(_)) => Err(error(
            inner,
            StatusCode::BAD_REQUEST,
            "invalid.value",
            "Invalid cursor",
        )),
    }
}

/// `{entities, cursor}`: the cursor only while more follow.
fn paged(page: Vec<Value>, start: usize, total: usize) -> Value {
    let next = start + page.len();
    let mut body = json!({"entities": page});
    if next < total {
        body["cursor"] = json!(next.to_string());
    }
    body
}

fn not_found(inner: &Inner, id: &str) -> Response {
    error(
        inner,
        StatusCode::NOT_FOUND,
        "not.found",
        &format!("Recording job {id} not found"),
    )
}

/// `POST /api/v2/recording/jobs`.
pub async fn create(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let inner = &sim.0;
    let q: Value = match json_body(inner, &headers, &body) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let bad = |msg: &str| error(inner, StatusCode::BAD_REQUEST, "bad.request", msg);
    match q["action"].as_str() {
        Some("EXPORT") => {}
        Some(other) => {
            return bad(&format!(
                "custos-sim simulates EXPORT jobs only, not {other}"
            ));
        }
        None => return bad("action is required"),
    }
    if q["integrationId"].as_str() != Some(inner.scenario.integration_id.as_str()) {
        return bad("integrationId must name the org's AWS S3 recording bulk actions integration");
    }
    if q["actionDate"].is_null() && q["actionAge"].is_null() {
        return bad("actionDate or actionAge is required");
    }
    let cq: crate::analytics::QueryBody =
        match serde_json::from_value(q["conversationQuery"].clone()) {
            Ok(c) => c,
            Err(e) => return bad(&format!("conversationQuery: {e}")),
        };
    let conversations = match crate::analytics::async_matches(inner, &cq) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let screens = q["includeScreenRecordings"].as_bool().unwrap_or(true);
    let recordings: Vec<usize> = conversations
        .iter()
        .flat_map(|&c| inner.catalog.conversations[c].recordings.iter().copied())
        .filter(|&i| {
            let r = &inner.catalog.recordings[i];
            r.file_state.downloadable() && (screens || r.kind != crate::natives::Kind::Screen)
        })
        .collect();
    let mut st = inner.state();
    let active = st
        .recording_jobs
        .values()
        .filter(|j| matches!(state_of(inner, j), "PENDING" | "PROCESSING"))
        .count();
    if active >= ACTIVE_LIMIT {
        drop(st);
        return error(
            inner,
            StatusCode::BAD_REQUEST,
            "recording.jobs.limit.exceeded",
            &format!(
                "The organization already has {active} recording jobs pending or processing; at most {ACTIVE_LIMIT} are allowed"
            ),
        );
    }
    let id = inner.new_id();
    let job = RecordingJob {
        owner: caller.client_id,
        query: q,
        created: inner.clock.now(),
        created_utc: inner.clock.utc(),
        conversations: conversations.len(),
        recordings,
        executed: None,
        cancelled: false,
        landed: false,
    };
    let body = job_json(inner, &id, &job);
    st.recording_jobs.insert(id, job);
    ok(body)
}

/// `GET /api/v2/recording/jobs/{id}`.
pub async fn get_one(State(sim): State<Sim>, Path(id): Path<String>) -> Response {
    land_when_done(&sim, &id).await;
    let inner = &sim.0;
    let st = inner.state();
    match st.recording_jobs.get(&id) {
        Some(job) => ok(job_json(inner, &id, job)),
        None => {
            drop(st);
            not_found(inner, &id)
        }
    }
}

/// `PUT /api/v2/recording/jobs/{id}` with `{"state": "PROCESSING"}`: by the client that created
/// the job, from READY only.
pub async fn execute(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let inner = &sim.0;
    let b: Value = match json_body(inner, &headers, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if b["state"] != "PROCESSING" {
        return error(
            inner,
            StatusCode::BAD_REQUEST,
            "bad.request",
            "state must be PROCESSING",
        );
    }
    let mut st = inner.state();
    let Some(job) = st.recording_jobs.get_mut(&id) else {
        drop(st);
        return not_found(inner, &id);
    };
    if job.owner != caller.client_id {
        drop(st);
        return error(
            inner,
            StatusCode::FORBIDDEN,
            "recording.job.not.owner",
            "Only the client that created a recording job may execute it",
        );
    }
    let state = state_of(inner, job);
    if state != "READY" {
        drop(st);
        return error(
            inner,
            StatusCode::BAD_REQUEST,
            "recording.job.state",
            &format!("The job is {state}: only a READY job can be executed"),
        );
    }
    job.executed = Some(inner.clock.now());
    let body = job_json(inner, &id, job);
    ok(body)
}

/// `DELETE /api/v2/recording/jobs/{id}`.
pub async fn cancel(State(sim): State<Sim>, Path(id): Path<String>) -> Response {
    let inner = &sim.0;
    let mut st = inner.state();
    match st.recording_jobs.get_mut(&id) {
        Some(job) if matches!(state_of(inner, job), "PENDING" | "READY" | "PROCESSING") => {
            job.cancelled = true;
            StatusCode::ACCEPTED.into_response()
        }
        Some(_) => {
            drop(st);
            error(
                inner,
                StatusCode::BAD_REQUEST,
                "recording.job.state",
                "The job has ended",
            )
        }
        None => {
            drop(st);
            not_found(inner, &id)
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedParams {
    page_size: Option<usize>,
    cursor: Option<String>,
}

/// `GET /api/v2/recording/jobs/{id}/failedrecordings`: the ids only, no reason, paged by a
/// cursor (`pageSize` ≤ 100).
pub async fn failed_recordings(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    Query(p): Query<FailedParams>,
) -> Response {
    let inner = &sim.0;
    let (start, size) = match window(inner, p.page_size, p.cursor.as_deref()) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let st = inner.state();
    let Some(job) = st.recording_jobs.get(&id) else {
        drop(st);
        return not_found(inner, &id);
    };
    let done = matches!(state_of(inner, job), "FULFILLED" | "FAILED");
    let failed: Vec<usize> = if done {
        job.recordings
            .iter()
            .copied()
            .filter(|&i| failed(inner, i))
            .collect()
    } else {
        Vec::new()
    };
    drop(st);
    let page: Vec<Value> = failed
        .iter()
        .skip(start)
        .take(size)
        .map(|&i| {
            let r = &inner.catalog.recordings[i];
            json!({"conversation": {"id": r.conversation_id}, "recording": {"id": r.id}})
        })
        .collect();
    ok(paged(page, start, failed.len()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    page_size: Option<usize>,
    cursor: Option<String>,
    show_only_my_jobs: Option<bool>,
    job_type: Option<String>,
    state: Option<String>,
}

/// `GET /api/v2/recording/jobs?jobType=&showOnlyMyJobs=&state=&cursor=`.
pub async fn list(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Query(p): Query<ListParams>,
) -> Response {
    let inner = &sim.0;
    let (start, size) = match window(inner, p.page_size, p.cursor.as_deref()) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let st = inner.state();
    let mut jobs: Vec<(&String, &RecordingJob)> = st
        .recording_jobs
        .iter()
        .filter(|(_, j)| !p.show_only_my_jobs.unwrap_or(false) || j.owner == caller.client_id)
        .filter(|(_, j)| p.job_type.as_deref().is_none_or(|t| j.query["action"] == t))
        .filter(|(_, j)| p.state.as_deref().is_none_or(|s| state_of(inner, j) == s))
        .collect();
    jobs.sort_by_key(|(id, j)| (j.created_utc, (*id).clone()));
    let page: Vec<Value> = jobs
        .iter()
        .skip(start)
        .take(size)
        .map(|(id, j)| job_json(inner, id, j))
        .collect();
    let body = paged(page, start, jobs.len());
    drop(st);
    ok(body)
}
