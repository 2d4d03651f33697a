//! `--bulk-export INTEGRATION_ID` (docs/archive.md): before the archive is read, Genesys is asked
//! to write the query's recordings into it through a recording bulk job
//! (`POST /api/v2/recording/jobs`, action EXPORT, reference §10), which is executed, waited for,
//! and its failed recordings listed.
//!
//! One job per export, ever: its request is recorded before it is sent and its id before it is
//! executed, so a run killed at any point resumes the same job (a run killed between the two
//! finds it among this client's jobs by its request). Only EXPORT is ever sent; a recorded job
//! whose action is anything else is refused. The job's own state is not taken as completeness:
//! the archive is read for every manifest item afterwards, and what the job did not write is
//! found missing there.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::context::Ctx;
use crate::archive::BulkExport;
use crate::error::{Error, Result};
use crate::query::{Query, format_ms};
use crate::source::url_path;
use crate::state::Key;

/// The jobs endpoint.
const JOBS: &str = "/api/v2/recording/jobs";

/// The only action an evidence tool sends.
const ACTION: &str = "EXPORT";

/// What the job came to.
#[derive(Clone, Debug, Default)]
pub(crate) struct BulkResult {
    /// Its id.
    pub job_id: String,
    /// Its last state (FULFILLED, FAILED, CANCELLED, or still running at the deadline).
    pub state: String,
    /// Recording ids `failedrecordings` listed (Genesys gives no reason).
    pub failed: BTreeSet<String>,
}

/// Runs (or resumes) the export's recording bulk job to its end, or to the deadline.
pub(crate) async fn run(ctx: &Ctx<'_>, bulk: &BulkExport, query: &Query) -> Result<BulkResult> {
    // An empty id is none recorded (how a test stands for a run stopped between the POST and
    // recording its answer).
    let job_id = match ctx.state.get(Key::BulkJob)?.filter(|id| !id.is_empty()) {
        Some(id) => id,
        None => create(ctx, bulk, query).await?,
    };
    let path = format!("{JOBS}/{}", url_path(&job_id));
    let mut pause = Duration::from_secs(1);
    let deadline = tokio::time::Instant::now() + bulk.deadline;
    let mut executed = false;
    let job = loop {
        let job = get_json(ctx, &path).await?;
        check_action(&job, &job_id)?;
        let state = job["state"].as_str().unwrap_or("").to_owned();
        match state.as_str() {
            "READY" if !executed => {
                // Executed by the client that created it (the same OAuth client must run it).
                let answer = ctx
                    .api
                    .send_ok(Method::PUT, &path, Some(&json!({"state": "PROCESSING"})))
                    .await?
                    .json(&Method::PUT, &ctx.api.url(&path))?;
                ctx.log(
                    "bulk-export-executed",
                    json!({"jobId": job_id, "state": answer["state"]}),
                )?;
                executed = true;
                continue;
            }
            "FULFILLED" | "FAILED" | "CANCELLED" => break job,
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(job = %job_id, state = %crate::shown::Shown(&state), "the recording bulk job did not end by the deadline: the archive is read as it is");
            break job;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(bulk.poll_max);
    };
    let state = job["state"].as_str().unwrap_or("").to_owned();
    let failed = failed_recordings(ctx, &job_id).await?;
    ctx.log(
        "bulk-export-ended",
        json!({"jobId": job_id, "state": state, "job": job,
               "failedRecordings": failed.len(),
               "note": "a job's state is not completeness: every item is looked for in the archive"}),
    )?;
    Ok(BulkResult {
        job_id,
        state,
        failed,
    })
}

/// Creates the job (or finds the one a killed run created) and records its id.
async fn create(ctx: &Ctx<'_>, bulk: &BulkExport, query: &Query) -> Result<String> {
    let recorded = ctx.state.get(Key::BulkRequest)?;
    let request = match &recorded {
        Some(r) => serde_json::from_str::<Value>(r).map_err(|e| {
            Error::Config(format!("the recorded bulk job request is not JSON: {e}"))
        })?,
        None => {
            let r = json!({
                "action": ACTION,
                "actionDate": format_ms(OffsetDateTime::now_utc()),
                "integrationId": bulk.integration_id,
                "includeScreenRecordings": true,
                "conversationQuery": query.conversation_query().map_err(Error::Config)?,
            });
            ctx.state.set(Key::BulkRequest, &r.to_string())?;
            r
        }
    };
    // Recorded by a run that was stopped before it recorded the job's id: that run may have
    // created the job.
    let found = match recorded {
        Some(_) => find_mine(ctx, &request).await?,
        None => None,
    };
    if let Some(id) = found {
        ctx.log(
            "bulk-export-created",
            json!({"jobId": id, "request": request, "found": "among this client's jobs: the run that created it was stopped before it recorded the id"}),
        )?;
        ctx.state.set(Key::BulkJob, &id)?;
        return Ok(id);
    }
    let answer = ctx
        .api
        .send_ok(Method::POST, JOBS, Some(&request))
        .await?
        .json(&Method::POST, &ctx.api.url(JOBS))?;
    let id = answer["id"]
        .as_str()
        .filter(|id| crate::model::safe_id(id))
        .ok_or_else(|| Error::Api {
            method: "POST".into(),
            url: ctx.api.url(JOBS),
            message: "the recording job has no usable id".into(),
        })?
        .to_owned();
    ctx.log(
        "bulk-export-created",
        json!({"jobId": id, "request": request, "state": answer["state"],
               "totalRecordings": answer["totalRecordings"],
               "note": "an EXPORT job sets the export date of each recording it exports: a change at the source made by this collection"}),
    )?;
    ctx.state.set(Key::BulkJob, &id)?;
    Ok(id)
}

/// This client's EXPORT job whose request is `request`, if a killed run created one.
async fn find_mine(ctx: &Ctx<'_>, request: &Value) -> Result<Option<String>> {
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut path = format!("{JOBS}?jobType=EXPORT&showOnlyMyJobs=true&pageSize=100");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", url_path(c)));
        }
        let page = get_json(ctx, &path).await?;
        for job in page["entities"].as_array().into_iter().flatten() {
            if &job["recordingJobsQuery"] == request
                && let Some(id) = job["id"].as_str().filter(|id| crate::model::safe_id(id))
            {
                return Ok(Some(id.to_owned()));
            }
        }
        match page["cursor"].as_str() {
            Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// Refuses a job that is not an EXPORT, or does not say what it is, before it is executed (a
/// recorded id that names another kind of job would otherwise be run: DELETE is one).
fn check_action(job: &Value, id: &str) -> Result<()> {
    match job["recordingJobsQuery"]["action"].as_str() {
        Some(ACTION) => Ok(()),
        Some(other) => Err(Error::Config(format!(
            "recording job {id} is a {other} job, not an EXPORT: custos only ever runs EXPORT jobs, and collects nothing from another"
        ))),
        None => Err(Error::Config(format!(
            "recording job {id} does not state its action (recordingJobsQuery.action): custos runs only a job it can see is an EXPORT"
        ))),
    }
}

/// Every recording id the job lists as failed.
async fn failed_recordings(ctx: &Ctx<'_>, job_id: &str) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let mut cursor: Option<String> = None;
    // A server that hands back a cursor it gave before would page for ever.
    let mut seen = HashSet::new();
    loop {
        let mut path = format!("{JOBS}/{}/failedrecordings?pageSize=100", url_path(job_id));
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", url_path(c)));
        }
        let page = get_json(ctx, &path).await?;
        let entities = page["entities"].as_array().cloned().unwrap_or_default();
        for e in &entities {
            if let Some(rid) = e["recording"]["id"].as_str() {
                out.insert(rid.to_owned());
            }
        }
        match page["cursor"].as_str() {
            Some(c) if !c.is_empty() && !entities.is_empty() && seen.insert(c.to_owned()) => {
                cursor = Some(c.to_owned());
            }
            _ => return Ok(out),
        }
    }
}

async fn get_json(ctx: &Ctx<'_>, path: &str) -> Result<Value> {
    ctx.api
        .send_ok(Method::GET, path, None)
        .await?
        .json(&Method::GET, &ctx.api.url(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_job_is_run() {
        let job = json!({"recordingJobsQuery": {"action": "EXPORT"}});
        assert!(check_action(&job, "j1").is_ok());
    }

    #[test]
    fn a_delete_job_is_refused() {
        let job = json!({"recordingJobsQuery": {"action": "DELETE"}});
        let e = check_action(&job, "j1").unwrap_err().to_string();
        assert!(e.contains("is a DELETE job, not an EXPORT"), "{e}");
    }

    #[test]
    fn a_job_that_does_not_state_its_action_is_refused() {
        for job in [
            json!({}),
            json!({"recordingJobsQuery": {}}),
            json!({"recordingJobsQuery": {"action": 7}}),
        ] {
            let e = check_action(&job, "j1").unwrap_err().to_string();
            assert!(e.contains("does not state its action"), "{e}");
        }
    }
}
