//! Recording listing and retrieval: `recordingmetadata`, the single-recording GET with its
//! transcoding state machine (202 until ready), and batch download jobs.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use time::Duration;

use crate::Sim;
use crate::audio::Codec;
use crate::catalog::FileState;
use crate::gate::Caller;
use crate::media::issue_url;
use crate::natives::Kind;
use crate::state::{BatchJob, BatchResult, Inner, State as SimState};
use crate::wire::{compact, error, json_body, ok, ts};

const MAX_BATCH_ITEMS: usize = 100;

pub(crate) fn conversation_or_404(inner: &Inner, cid: &str) -> Result<usize, Response> {
    inner
        .catalog
        .conversation(cid)
        .filter(|&c| inner.arrived(c))
        .ok_or_else(|| {
            error(
                inner,
                StatusCode::NOT_FOUND,
                "conversation.not.found",
                &format!("Conversation {cid} not found"),
            )
        })
}

pub(crate) fn recording_or_404(inner: &Inner, conv: usize, rid: &str) -> Result<usize, Response> {
    inner
        .catalog
        .recording(rid)
        .filter(|&r| inner.catalog.recordings[r].conversation == conv)
        .ok_or_else(|| {
            error(
                inner,
                StatusCode::NOT_FOUND,
                "not.found",
                &format!("Recording {rid} not found"),
            )
        })
}

/// Retention dates: archived 30 days after the call, deleted after a year.
fn retention(inner: &Inner, st: &SimState, rec: usize) -> Value {
    let r = &inner.catalog.recordings[rec];
    let state = inner.file_state(st, rec);
    // A restore moves the archive date to the one asked for; the recording is archived again
    // then (restoreExpirationTime).
    let restore = st.restores.get(&rec);
    let archive = restore.map_or(r.end + Duration::days(30), |x| x.until);
    json!({
        "archiveDate": (state != FileState::Deleted).then(|| ts(archive)),
        "archiveMedium": matches!(state, FileState::Archived | FileState::Restoring).then_some("CLOUDARCHIVE"),
        "deleteDate": ts(r.end + Duration::days(365)),
        "exportedDate": st.exported.get(&rec).map(|t| ts(*t)),
        "restoreExpirationTime": (state == FileState::Restored).then(|| ts(restore.map_or(inner.clock.utc() + Duration::days(2), |x| x.until))),
    })
}

/// `mediaSubtype`: a call's trunk leg, a screen recording's Screen; none for the digital kinds.
fn subtype(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Audio => Some("Trunk"),
        Kind::Screen => Some("Screen"),
        _ => None,
    }
}

/// `RecordingMetadata`. Genesys gives startTime/endTime here only for screen recordings.
fn metadata_json(inner: &Inner, st: &SimState, rec: usize) -> Value {
    let r = &inner.catalog.recordings[rec];
    let screen = r.kind == Kind::Screen;
    let mut v = json!({
        "id": r.id,
        "conversationId": r.conversation_id,
        "media": r.kind.as_str(),
        "mediaSubtype": subtype(r.kind),
        "startTime": screen.then(|| ts(r.start)),
        "endTime": screen.then(|| ts(r.end)),
        "annotations": [],
        "fileState": inner.file_state(st, rec).as_str(),
        "maxAllowedRestorationsForOrg": 10000,
        "remainingRestorationsAllowedForOrg": 10000,
        "sessionId": r.session_id,
        "selfUri": format!("/api/v2/conversations/{}/recordingmetadata/{}", r.conversation_id, r.id),
    });
    merge(&mut v, retention(inner, st, rec));
    compact(v)
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        a.extend(b);
    }
}

pub async fn metadata_list(State(sim): State<Sim>, Path(cid): Path<String>) -> Response {
    let inner = &sim.0;
    let conv = match conversation_or_404(inner, &cid) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let st = inner.state();
    let mut list: Vec<Value> = inner.catalog.conversations[conv]
        .recordings
        .iter()
        .map(|&r| metadata_json(inner, &st, r))
        .collect();
    if inner.scenario.faults.hostile_ids && conv == 0 {
        list.extend(hostile_metadata(&inner.catalog.conversations[0].id));
    }
    ok(Value::Array(list))
}

/// The hostile-ids fault's extra listing entries: AVAILABLE, with ids unsafe as file names.
pub fn hostile_metadata(conversation_id: &str) -> Vec<Value> {
    crate::scenario::HOSTILE_IDS
        .iter()
        .map(|id| json!({"id": id, "conversationId": conversation_id, "media": "audio", "mediaSubtype": "Trunk", "fileState": "AVAILABLE"}))
        .collect()
}

pub async fn metadata_one(
    State(sim): State<Sim>,
    Path((cid, rid)): Path<(String, String)>,
) -> Response {
    let inner = &sim.0;
    let rec = match conversation_or_404(inner, &cid).and_then(|c| recording_or_404(inner, c, &rid))
    {
        Ok(r) => r,
        Err(e) => return e,
    };
    let st = inner.state();
    ok(metadata_json(inner, &st, rec))
}

/// Where a transcode stands.
pub(crate) enum Transcode {
    Ready(String),
    Pending(u64),
}

/// How long a transcode of `rec` takes (10x under the slow-transcode fault).
fn transcode_ms(inner: &Inner, rec: usize) -> u64 {
    let ms = inner.scenario.transcode_ms;
    if inner.catalog.recordings[rec].faults.slow_transcode {
        ms * 10
    } else {
        ms
    }
}

/// Starts (or checks) the transcode of `rec` to `codec`.
fn transcode(inner: &Inner, st: &mut SimState, rec: usize, codec: Codec) -> Transcode {
    let now = inner.clock.now();
    let ms = transcode_ms(inner, rec);
    let ready = *st
        .transcodes
        .entry((rec, codec))
        .or_insert(now + std::time::Duration::from_millis(ms));
    if ready <= now {
        Transcode::Ready(issue_url(inner, st, rec, codec))
    } else {
        Transcode::Pending((ready - now).as_millis() as u64)
    }
}

/// `Recording`: full when the transcode is ready, partial (no media) while it is pending.
/// A recording's system annotations: with a secure pause, the `pause` (cut from the audio, so
/// its recording-adjusted duration is 0) and a `hold` before it (still recorded). Pause ids are
/// the recording's own (Genesys: all pauses of a recording share one id); hold ids are fresh.
pub(crate) fn annotations(r: &crate::catalog::Recording) -> Value {
    let Some((at, len)) = r.pause else {
        return json!([]);
    };
    let hold_at = at / 2;
    let hold_len = (at / 4).max(1);
    json!([
        {
            "id": format!("{}-hold", r.session_id), "name": "Hold", "type": "hold", "reason": "Hold",
            "location": hold_at, "durationMs": hold_len, "absoluteLocation": hold_at,
            "absoluteDurationMs": hold_len, "recordingLocation": hold_at,
            "recordingDurationMs": hold_len, "realtimeLocation": hold_at,
        },
        {
            "id": format!("{}-pause", r.id), "name": "Secure Pause", "type": "pause",
            "reason": "SecurePause", "location": at, "durationMs": len, "absoluteLocation": at,
            "absoluteDurationMs": len, "recordingLocation": at, "recordingDurationMs": 0,
            "realtimeLocation": at,
        }
    ])
}

pub(crate) fn recording_json(
    inner: &Inner,
    st: &SimState,
    rec: usize,
    media: Option<(Codec, &Transcode)>,
) -> Value {
    let r = &inner.catalog.recordings[rec];
    let mut v = json!({
        "id": r.id,
        "conversationId": r.conversation_id,
        "startTime": ts(r.start),
        "endTime": ts(r.end),
        "media": r.kind.as_str(),
        "mediaSubtype": subtype(r.kind),
        "annotations": annotations(r),
        "fileState": inner.file_state(st, rec).as_str(),
        "maxAllowedRestorationsForOrg": 10000,
        "remainingRestorationsAllowedForOrg": 10000,
        "sessionId": r.session_id,
        "recordingFileRole": "CUSTOMER_EXPERIENCE",
        "creationTime": ts(r.end),
        "selfUri": format!("/api/v2/conversations/{}/recordings/{}", r.conversation_id, r.id),
    });
    merge(&mut v, retention(inner, st, rec));
    if matches!(r.kind, Kind::Chat | Kind::Email | Kind::Messaging) {
        let agent = inner.catalog.conversations[r.conversation]
            .participants
            .iter()
            .find(|p| p.purpose == "agent")
            .and_then(|p| p.user_id.clone())
            .unwrap_or_default();
        let (field, transcript) = crate::natives::transcript_field(&r.media, &agent);
        v[field] = transcript;
    }
    match media {
        Some((codec, Transcode::Ready(url))) => {
            let ms = transcode_ms(inner, rec);
            merge(
                &mut v,
                json!({
                    "mediaUris": {"S": {"mediaUri": url}},
                    "actualTranscodeTimeMs": ms,
                    // What the API states: the call less its pauses; under the duration-lie
                    // fault, more than the audio holds. Chat, email and messaging have no
                    // duration to state.
                    "outputDurationMs": matches!(r.kind, Kind::Audio | Kind::Screen)
                        .then(|| r.playable_ms()),
                    "outputSizeInBytes": r.media_as(codec).size(),
                }),
            );
        }
        Some((_, Transcode::Pending(left))) => {
            v["estimatedTranscodeTimeMs"] = json!(left);
        }
        None => {}
    }
    compact(v)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingParams {
    format_id: Option<String>,
    max_wait_ms: Option<u64>,
    email_format_id: Option<String>,
    chat_format_id: Option<String>,
    message_format_id: Option<String>,
}

/// What is served for recording `rec` given the request's formats (`formatId` already parsed
/// into `audio`): audio in the format asked for; a screen recording's WebM unless `formatId`
/// is NONE; chat, email and messaging their ZIP or EML unless their own parameter (default
/// ZIP, EML, ZIP) is NONE. The recordings list (`p` None) has no such parameters: there every
/// kind follows `formatId`.
fn served(
    inner: &Inner,
    rec: usize,
    audio: Option<Codec>,
    p: Option<&RecordingParams>,
) -> Result<Option<Codec>, Response> {
    let r = &inner.catalog.recordings[rec];
    let (param, value, native) = match (r.kind, p) {
        (Kind::Audio, _) => return Ok(audio),
        (Kind::Screen, _) | (_, None) => return Ok(audio.map(|_| r.codec)),
        (Kind::Chat, Some(p)) => ("chatFormatId", &p.chat_format_id, "ZIP"),
        (Kind::Email, Some(p)) => ("emailFormatId", &p.email_format_id, "EML"),
        (Kind::Messaging, Some(p)) => ("messageFormatId", &p.message_format_id, "ZIP"),
    };
    match value.as_deref().unwrap_or(native) {
        "NONE" => Ok(None),
        v if v == native => Ok(Some(r.codec)),
        v => Err(error(
            inner,
            StatusCode::BAD_REQUEST,
            "invalid.value",
            &format!("Invalid {param} '{v}'; allowed: {native}, NONE"),
        )),
    }
}

fn parse_format(inner: &Inner, f: Option<&str>) -> Result<Option<Codec>, Response> {
    match f.unwrap_or("WEBM") {
        "NONE" => Ok(None),
        s => Codec::from_format_id(s).map(Some).ok_or_else(|| {
            let known = ["WAV", "WEBM", "WAV_ULAW", "OGG_VORBIS", "OGG_OPUS", "MP3", "NONE"];
            let msg = if known.contains(&s) {
                format!("custos-sim does not produce formatId {s}; request WAV, WAV_ULAW, OGG_OPUS, WEBM, MP3 or NONE")
            } else {
                format!("Invalid formatId '{s}'; allowed: {}", known.join(", "))
            };
            error(inner, StatusCode::BAD_REQUEST, "invalid.value", &msg)
        }),
    }
}

pub async fn recording_one(
    State(sim): State<Sim>,
    Path((cid, rid)): Path<(String, String)>,
    Query(p): Query<RecordingParams>,
) -> Response {
    let inner = &sim.0;
    let rec = match conversation_or_404(inner, &cid).and_then(|c| recording_or_404(inner, c, &rid))
    {
        Ok(r) => r,
        Err(e) => return e,
    };
    let codec = match parse_format(inner, p.format_id.as_deref())
        .and_then(|audio| served(inner, rec, audio, Some(&p)))
    {
        Ok(c) => c,
        Err(e) => return e,
    };
    let mut st = inner.state();
    let state = inner.file_state(&st, rec);
    if state == FileState::Deleted {
        drop(st);
        return error(
            inner,
            StatusCode::NOT_FOUND,
            "not.found",
            &format!("Recording {rid} not found"),
        );
    }
    let (Some(codec), true) = (codec, state.downloadable()) else {
        return ok(recording_json(inner, &st, rec, None));
    };
    let t = transcode(inner, &mut st, rec, codec);
    let body = recording_json(inner, &st, rec, Some((codec, &t)));
    match t {
        Transcode::Ready(_) => ok(body),
        Transcode::Pending(_) => (StatusCode::ACCEPTED, axum::Json(body)).into_response(),
    }
}

pub async fn recordings_list(
    State(sim): State<Sim>,
    Path(cid): Path<String>,
    Query(p): Query<RecordingParams>,
) -> Response {
    let inner = &sim.0;
    let conv = match conversation_or_404(inner, &cid) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let codec = match parse_format(inner, p.format_id.as_deref()) {
        Ok(c) => c,
        Err(e) => return e,
    };
    // maxWaitMs (default 5000): wait server-side for transcodes that finish within it.
    let wait = p.max_wait_ms.unwrap_or(5000);
    let (out, pending) = list_once(inner, conv, codec);
    if pending == 0 {
        return ok(Value::Array(out));
    }
    if pending > wait {
        return (StatusCode::ACCEPTED, axum::Json(Value::Array(out))).into_response();
    }
    tokio::time::sleep(std::time::Duration::from_millis(pending)).await;
    let (out, pending) = list_once(inner, conv, codec);
    let status = if pending == 0 {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    (status, axum::Json(Value::Array(out))).into_response()
}

/// One pass over a conversation's recordings: their JSON, and the longest transcode still due.
fn list_once(inner: &Inner, conv: usize, codec: Option<Codec>) -> (Vec<Value>, u64) {
    let mut st = inner.state();
    let mut pending_max = 0;
    let mut out = Vec::new();
    for &rec in &inner.catalog.conversations[conv].recordings {
        // Deleted recordings are listed too, with fileState DELETED and no media (the
        // Recording model's fileState has DELETED), as recordingmetadata lists them.
        let state = inner.file_state(&st, rec);
        let wanted = codec.and_then(|c| served(inner, rec, Some(c), None).ok()?);
        match wanted.filter(|_| state.downloadable()) {
            Some(c) => {
                let t = transcode(inner, &mut st, rec, c);
                if let Transcode::Pending(ms) = t {
                    pending_max = pending_max.max(ms);
                }
                out.push(recording_json(inner, &st, rec, Some((c, &t))));
            }
            None => out.push(recording_json(inner, &st, rec, None)),
        }
    }
    if inner.scenario.faults.hostile_ids && conv == 0 {
        out.extend(hostile_metadata(&inner.catalog.conversations[0].id));
    }
    (out, pending_max)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchSubmission {
    batch_download_request_list: Option<Vec<BatchItem>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchItem {
    conversation_id: Option<String>,
    recording_id: Option<String>,
}

/// A batch result's `errorMsg` for a recording in `state`, if it cannot be downloaded.
fn batch_error(state: FileState) -> Option<String> {
    match state {
        FileState::Archived => Some("Recording is archived; restore it before downloading".into()),
        FileState::Restoring => {
            Some("Recording is being restored from archive; try again once RESTORED".into())
        }
        FileState::Deleted => Some("Recording has been deleted".into()),
        FileState::Available | FileState::Restored => None,
    }
}

pub async fn batch_submit(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let inner = &sim.0;
    let sub: BatchSubmission = match json_body(inner, &headers, &body) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let items = sub.batch_download_request_list.unwrap_or_default();
    if items.is_empty() {
        return error(
            inner,
            StatusCode::BAD_REQUEST,
            "batch.download.bad.request",
            "Request list is required and must not be empty",
        );
    }
    if items.len() > MAX_BATCH_ITEMS {
        return error(
            inner,
            StatusCode::BAD_REQUEST,
            "batch.download.too.many.items",
            "Too many items requested, max 100 allowed",
        );
    }
    let now = inner.clock.now();
    let step = inner.scenario.batch_ms_per_item;
    let st = inner.state();
    let mut results = Vec::new();
    let mut push = |conversation_id: String, recording: Option<usize>, err: Option<String>| {
        let ready = now + std::time::Duration::from_millis(step * (results.len() as u64 + 1));
        results.push(BatchResult {
            ready,
            conversation_id,
            recording,
            error: err,
            url: None,
        });
    };
    for item in items {
        let Some(cid) = item.conversation_id else {
            drop(st);
            return error(
                inner,
                StatusCode::BAD_REQUEST,
                "batch.download.bad.request",
                "Each item needs a conversationId",
            );
        };
        let Some(conv) = inner
            .catalog
            .conversation(&cid)
            .filter(|&c| inner.arrived(c))
        else {
            push(
                cid.clone(),
                None,
                Some(format!("Conversation {cid} not found")),
            );
            continue;
        };
        let recs: Vec<usize> = match item.recording_id {
            None => inner.catalog.conversations[conv].recordings.clone(),
            Some(rid) => match inner
                .catalog
                .recording(&rid)
                .filter(|&r| inner.catalog.recordings[r].conversation == conv)
            {
                Some(r) => vec![r],
                None => {
                    push(
                        cid.clone(),
                        None,
                        Some(format!("Recording {rid} not found on conversation {cid}")),
                    );
                    continue;
                }
            },
        };
        for rec in recs {
            push(
                cid.clone(),
                Some(rec),
                batch_error(inner.file_state(&st, rec)),
            );
        }
    }
    drop(st);
    let id = inner.new_id();
    inner.state().batch_jobs.insert(
        id.clone(),
        BatchJob {
            owner: caller.client_id,
            results,
        },
    );
    ok(json!({"id": id, "selfUri": format!("/api/v2/recording/batchrequests/{id}")}))
}

pub async fn batch_status(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let inner = &sim.0;
    let mut guard = inner.state();
    let st = &mut *guard;
    let Some(job) = st.batch_jobs.get_mut(&id) else {
        drop(guard);
        return error(
            inner,
            StatusCode::NOT_FOUND,
            "batch.download.job.not.found",
            &format!("Batch download job {id} not found"),
        );
    };
    if job.owner != caller.client_id {
        drop(guard);
        return error(
            inner,
            StatusCode::FORBIDDEN,
            "batch.download.permission.denied",
            "Only user that initiated the job can request results",
        );
    }
    let now = inner.clock.now();
    let mut need_url = Vec::new();
    for (i, r) in job.results.iter().enumerate() {
        if r.ready <= now && r.error.is_none() && r.url.is_none() {
            need_url.push(i);
        }
    }
    // Issue URLs for results that just became visible (the URL's TTL starts now).
    let mut urls = HashMap::new();
    for i in need_url {
        let rec = st.batch_jobs[&id].results[i]
            .recording
            .expect("url results have a recording");
        let codec = inner.catalog.recordings[rec].codec;
        urls.insert(i, (issue_url(inner, st, rec, codec), codec.content_type()));
    }
    let job = st.batch_jobs.get_mut(&id).expect("present above");
    for (i, u) in urls {
        job.results[i].url = Some(u);
    }
    let visible: Vec<&BatchResult> = job.results.iter().filter(|r| r.ready <= now).collect();
    let errors = visible.iter().filter(|r| r.error.is_some()).count();
    let results: Vec<Value> = visible
        .iter()
        .map(|r| {
            let rid = r.recording.map(|i| inner.catalog.recordings[i].id.clone());
            compact(json!({
                "conversationId": r.conversation_id,
                "recordingId": rid,
                "resultUrl": r.url.as_ref().map(|u| &u.0),
                "contentType": r.url.as_ref().map(|u| u.1),
                "errorMsg": r.error,
            }))
        })
        .collect();
    let expected = job.results.len();
    let body = json!({
        "id": id,
        "jobId": id,
        "expectedResultCount": expected,
        "resultCount": visible.len(),
        "errorCount": errors,
        "status": if visible.len() == expected { "Completed" } else { "InProgress" },
        "results": results,
        "selfUri": format!("/api/v2/recording/batchrequests/{id}"),
    });
    drop(guard);
    ok(body)
}

pub async fn settings(State(sim): State<Sim>) -> Response {
    let ttl_min = (sim.0.scenario.url_ttl_s / 60).max(2);
    ok(json!({
        "maxSimultaneousStreams": 1,
        "maxConfigurableScreenRecordingStreams": 1,
        "regionalRecordingStorageEnabled": false,
        "recordingPlaybackUrlTtl": ttl_min,
        "recordingBatchDownloadUrlTtl": ttl_min,
    }))
}
