//! Stage 3, retrieval: every unfinished manifest item ends in exactly one outcome. Items the
//! listing already settles (deleted, archived, unsafe ids, ids the source does not know) are
//! decided without a request; the rest are fetched through batch requests, per-recording
//! transcodes, or the search API's `/media`, each download bounded in attempts and recorded in
//! the custody log and the job state.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::custody::redact_url;
use crate::error::{Error, Result};
use crate::fetch::{FetchError, extension, fetch, finalize};
use crate::http::{Decision, MEDIA, jitter};
use crate::model::{Item, Outcome, safe_id};
use crate::package::sha256_file;
use crate::pipeline::{Ctx, Retrieval, SourceKind};
use crate::query::format_ms;
use crate::source::{NOT_FOUND, url_path};
use crate::state::Done;

const URL_ROUNDS: u32 = 3;

/// An outcome without a file.
pub(crate) fn done(outcome: Outcome, reason: impl Into<String>) -> Done {
    Done {
        outcome,
        reason: reason.into(),
        file: None,
        sha256: None,
        bytes: None,
        content_type: None,
        downloaded_at: None,
        media_ms: None,
        stated_ms: None,
        stated_source: None,
    }
}

/// What the source stated about a recording's media, to check the file against.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stated {
    /// Bytes (`outputSizeInBytes`).
    pub size: Option<u64>,
    /// The playable duration, ms (`outputDurationMs`, `durationMs`, or end − start less the
    /// pauses cut from the recording).
    pub duration_ms: Option<u64>,
    /// Where `duration_ms` came from, or why there is none (the custody record says it).
    pub source: String,
}

impl Stated {
    /// The playable duration a recording's JSON states: `ms_key` when present, else
    /// `end_key − start_key` less every `pause` annotation (Genesys cuts paused spans from the
    /// recording: `absoluteLocation` is "after removing the cumulative duration of all pauses").
    fn duration(v: &Value, ms_key: &str, start_key: &str, end_key: &str) -> (Option<u64>, String) {
        if let Some(ms) = v[ms_key].as_u64() {
            return (Some(ms), ms_key.to_owned());
        }
        let t = |k: &str| {
            v[k].as_str().and_then(|s| {
                OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
            })
        };
        let (Some(a), Some(b)) = (t(start_key), t(end_key)) else {
            return (
                None,
                format!("not stated: neither {ms_key} nor {start_key} and {end_key}"),
            );
        };
        let Ok(span) = u64::try_from((b - a).whole_milliseconds()) else {
            return (None, format!("not stated: {end_key} is before {start_key}"));
        };
        let pauses: Vec<u64> = v["annotations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| {
                a["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("pause"))
            })
            .map(|a| a["durationMs"].as_u64().unwrap_or(0))
            .collect();
        let cut: u64 = pauses.iter().sum();
        let source = match pauses.len() {
            0 => format!("{end_key} − {start_key}"),
            n => format!(
                "{end_key} − {start_key} − {n} pause{} ({:.3} s)",
                if n == 1 { "" } else { "s" },
                cut as f64 / 1000.0
            ),
        };
        match span.checked_sub(cut) {
            Some(ms) => (Some(ms), source),
            None => (
                None,
                format!("not stated: pauses longer than the recording ({source})"),
            ),
        }
    }

    /// What a batch item states: its listed `Recording` (data/metadata/), read again here, since
    /// batch results state neither size nor duration.
    fn of_listed(ctx: &Ctx<'_>, it: &Item) -> Stated {
        let path = ctx
            .root
            .join("data/metadata")
            .join(format!("{}.json", it.recording_id));
        let v: Value = match std::fs::read(&path).map(|b| serde_json::from_slice(&b)) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                return Stated {
                    source: format!("not stated: the listed metadata is not JSON ({e})"),
                    ..Stated::default()
                };
            }
            Err(_) => {
                return Stated {
                    source: "not stated: no listed metadata for this recording".into(),
                    ..Stated::default()
                };
            }
        };
        let (duration_ms, source) =
            Stated::duration(&v, "outputDurationMs", "startTime", "endTime");
        Stated {
            size: None,
            duration_ms,
            source,
        }
    }
}

/// Reads the downloaded file's container and judges it against what the API stated: the
/// measured duration (ms) if one could be read, and why it is not evidence, if it is not.
async fn judge(
    ctx: &Ctx<'_>,
    part: &Path,
    stated: &Stated,
) -> (Option<crate::media::MediaInfo>, Result<(), String>) {
    let p = part.to_path_buf();
    let probed = tokio::task::spawn_blocking(move || crate::media::probe_file(&p))
        .await
        .unwrap_or_else(|e| {
            Err(crate::media::MediaError::Invalid(format!(
                "probe failed: {e}"
            )))
        });
    let info = match probed {
        Ok(i) => i,
        Err(e) => return (None, Err(format!("not readable as audio: {e}"))),
    };
    let verdict = if !info.problems.is_empty() {
        Err(format!("damaged media: {}", info.problems.join("; ")))
    } else if info.duration.is_zero() {
        Err("no audio: the file's duration is 0 s".to_owned())
    } else if let Some(ms) = stated.duration_ms {
        let said = Duration::from_millis(ms);
        let diff = info.duration.abs_diff(said);
        if diff > ctx.cfg.duration_tolerance {
            Err(format!(
                "duration mismatch: the file holds {:.3} s, the API states {:.3} s (tolerance {} s)",
                info.seconds(),
                said.as_secs_f64(),
                ctx.cfg.duration_tolerance.as_secs_f64()
            ))
        } else {
            Ok(())
        }
    } else {
        Ok(())
    };
    (Some(info), verdict)
}

/// What to do with an item before any media request.
fn triage(it: &Item) -> Option<Done> {
    if it.listed_state == NOT_FOUND {
        return Some(done(
            Outcome::Purged,
            "requested id not found at the source (404)",
        ));
    }
    if !safe_id(&it.conversation_id) || !safe_id(&it.recording_id) {
        return Some(done(
            Outcome::Failed,
            "unsafe id (only letters, digits, '-', '_' and '.' are allowed); nothing was written for it",
        ));
    }
    match it.listed_state.as_str() {
        "AVAILABLE" | "RESTORED" => None,
        "DELETED" => Some(done(Outcome::Purged, "fileState DELETED when listed")),
        "ARCHIVED" => Some(done(
            Outcome::Archived,
            "fileState ARCHIVED when listed; restore it, then export it again",
        )),
        "RESTORING" => Some(done(
            Outcome::Archived,
            "fileState RESTORING when listed: a restore is under way; export it again once RESTORED",
        )),
        other => Some(done(
            Outcome::Failed,
            format!("fileState {other} when listed: no media to download"),
        )),
    }
}

fn record(ctx: &Ctx<'_>, it: &Item, d: &Done) -> Result<()> {
    ctx.log(
        "outcome",
        json!({"conversationId": it.conversation_id, "recordingId": it.recording_id, "outcome": d.outcome.as_str(), "reason": d.reason,
               "file": d.file, "sha256": d.sha256, "bytes": d.bytes, "contentType": d.content_type,
               "durationChecked": d.duration_check().map(|c| c == crate::state::DurationCheck::Checked), "statedDurationSource": d.stated_source}),
    )?;
    ctx.state.finish(it, d)?;
    ctx.progress.item(d.outcome, d.bytes.unwrap_or(0));
    Ok(())
}

/// Items worked on at a time in transcode and search retrieval. Most of an item's life is spent
/// waiting for the API (latency, transcoding), not downloading, so many more are in flight than
/// download slots: the API budget, not the task count, should be what limits the rate. Sized from
/// the budget and the response time observed (`Api::requests_in_flight`), and never fewer than 8
/// per download slot (a transcode's life is mostly its server-side wait). Downloads keep their own
/// cap (`Ctx::downloads`).
fn in_flight(ctx: &Ctx<'_>) -> usize {
    ctx.api
        .requests_in_flight()
        .max(ctx.cfg.concurrency * 8)
        .min(256)
}

/// Retrieves every item that has no outcome yet.
pub(crate) async fn retrieve(ctx: &Ctx<'_>) -> Result<()> {
    // Only the unfinished items are held (a resumed export of 100,000 holds only what is left).
    let mut todo = Vec::new();
    let mut done_before = Vec::new();
    ctx.state.for_each(|it, d| {
        match d {
            Some(d) => done_before.push((d.outcome, d.bytes.unwrap_or(0))),
            None => todo.push(it),
        }
        Ok(())
    })?;
    ctx.progress.total((todo.len() + done_before.len()) as u64);
    for (outcome, bytes) in done_before {
        ctx.progress.item(outcome, bytes);
    }
    let mut downloadable = Vec::new();
    for it in todo {
        match triage(&it) {
            Some(d) => record(ctx, &it, &d)?,
            None => downloadable.push(it),
        }
    }
    match (ctx.cfg.source, &ctx.cfg.retrieval) {
        (SourceKind::Genesys, Retrieval::Batch) => {
            // Two batch jobs at a time: the next is submitted and polled while the current one's
            // files download, so the API work never waits for the downloads to finish.
            let results: Vec<Result<()>> = futures_util::stream::iter(downloadable.chunks(100))
                .map(|chunk| batch_chunk(ctx, chunk))
                .buffer_unordered(2)
                .collect()
                .await;
            results.into_iter().collect()
        }
        (SourceKind::Genesys, Retrieval::Transcode(format)) => {
            let format = Arc::new(format.clone());
            let results: Vec<Result<()>> = futures_util::stream::iter(downloadable)
                .map(|it| {
                    let format = format.clone();
                    async move {
                        let d = transcode_item(ctx, &it, &format).await?;
                        record(ctx, &it, &d)
                    }
                })
                .buffer_unordered(in_flight(ctx))
                .collect()
                .await;
            results.into_iter().collect()
        }
        (SourceKind::Search, _) => {
            let results: Vec<Result<()>> = futures_util::stream::iter(downloadable)
                .map(|it| async move {
                    let d = search_item(ctx, &it).await?;
                    record(ctx, &it, &d)
                })
                .buffer_unordered(in_flight(ctx))
                .collect()
                .await;
            results.into_iter().collect()
        }
    }
}

/// Result of trying one URL.
enum Got {
    Done(Done),
    /// The URL expired: get a new one.
    Expired,
}

/// Downloads `url` for `it` with bounded retries and stores the file, or says why not.
async fn download(
    ctx: &Ctx<'_>,
    it: &Item,
    url: &str,
    bearer: Option<&str>,
    stated: Stated,
) -> Result<Got> {
    if let Err(e) = crate::http::check_media_url("media URL", url) {
        return Ok(Got::Done(done(Outcome::Failed, format!("refused: {e}"))));
    }
    let dir = ctx.root.join("data/recordings").join(&it.conversation_id);
    crate::fetch::make_dirs(&dir)?;
    let part = dir.join(format!("{}.part", it.recording_id));
    let mut last = String::new();
    let mut media_json = Value::Null;
    let mut mismatches = 0;
    let mut throttled = 0;
    let mut attempt = 0;
    let mut backoff = Duration::ZERO;
    while attempt < MEDIA.max_attempts {
        attempt += 1;
        let mut r = {
            let _slot = ctx.downloads.acquire().await.expect("semaphore open");
            // API-hosted media counts against the API budget.
            let ticket = match bearer {
                Some(_) => Some(ctx.api.limiter.acquire().await),
                None => None,
            };
            let r = fetch(&ctx.api.http, url, bearer, &part, stated.size, ticket).await;
            if ticket.is_some() {
                ctx.api
                    .limiter
                    .observe(r.as_ref().ok().and_then(|f| f.window));
            }
            r
        };
        // A complete file is read as media and judged against what the API stated.
        let mut media = None;
        if r.is_ok() {
            let (info, verdict) = judge(ctx, &part, &stated).await;
            media = info.as_ref().map(|i| i.duration.as_millis() as u64);
            if let Err(why) = verdict {
                r = Err(FetchError::NotEvidence {
                    why,
                    media_ms: media,
                });
            }
            if let Some(i) = info {
                media_json = i.to_json();
            }
        }
        let (result, facts) = match &r {
            Ok(f) => (
                "complete".to_owned(),
                json!({"bytes": f.bytes, "sha256": f.sha256, "contentType": f.content_type}),
            ),
            Err(e) => (e.describe(), json!({})),
        };
        let mut fields = json!({
            "conversationId": it.conversation_id, "recordingId": it.recording_id, "url": redact_url(url),
            "attempt": attempt, "bearerSent": bearer.is_some(), "result": result,
            "media": std::mem::take(&mut media_json), "statedDurationMs": stated.duration_ms, "statedDurationSource": stated.source,
        });
        if let (Value::Object(m), Value::Object(f)) = (&mut fields, facts) {
            m.extend(f);
        }
        ctx.log("download-attempt", fields)?;
        let outcome = match r {
            Ok(f) => {
                let name = format!("{}.{}", it.recording_id, extension(&f.content_type));
                let dest = dir.join(&name);
                finalize(&part, &dest, &f.sha256)?;
                let rel = format!("data/recordings/{}/{name}", it.conversation_id);
                let reason = if extension(&f.content_type) == "bin" {
                    format!("unrecognised Content-Type '{}'", f.content_type)
                } else {
                    String::new()
                };
                return Ok(Got::Done(Done {
                    outcome: Outcome::Exported,
                    reason,
                    file: Some(rel),
                    sha256: Some(f.sha256),
                    bytes: Some(f.bytes),
                    content_type: Some(f.content_type),
                    downloaded_at: Some(format_ms(OffsetDateTime::now_utc())),
                    media_ms: media,
                    stated_ms: stated.duration_ms,
                    stated_source: Some(stated.source.clone()),
                }));
            }
            Err(FetchError::NotFound) => Some(done(
                Outcome::Purged,
                "404 at download: deleted at the source after listing",
            )),
            Err(FetchError::Archived) => Some(done(
                Outcome::Archived,
                "409 at download: archived; restore it before export",
            )),
            Err(FetchError::Expired) => {
                let _ = std::fs::remove_file(&part);
                return Ok(Got::Expired);
            }
            Err(FetchError::Refused(why)) => {
                Some(done(Outcome::Failed, format!("download refused: {why}")))
            }
            Err(FetchError::Io(e)) => return Err(e),
            Err(FetchError::Incomplete { why, what }) => {
                last = why;
                match MEDIA.decide(what, attempt, backoff, jitter()) {
                    Decision::Retry(d) => {
                        backoff = d;
                        None
                    }
                    // Not worth another try (a TLS failure, a client error).
                    Decision::Accept => {
                        Some(done(Outcome::Failed, format!("download failed: {last}")))
                    }
                    Decision::GiveUp => Some(done(
                        Outcome::Failed,
                        format!("download failed {attempt} times; last: {last}"),
                    )),
                }
            }
            Err(FetchError::Throttled(after)) => {
                // Rate limiting is not a failed attempt: the whole client waits, then tries again.
                throttled += 1;
                if throttled > 50 {
                    Some(done(
                        Outcome::Failed,
                        "media download throttled (429) more than 50 times",
                    ))
                } else {
                    ctx.api
                        .limiter
                        .pause(after.unwrap_or(Duration::from_secs(1)))
                        .await;
                    attempt -= 1;
                    continue;
                }
            }
            Err(FetchError::SizeMismatch { got, stated: size }) => {
                mismatches += 1;
                last = format!("received {got} bytes; the API states outputSizeInBytes {size}");
                if mismatches >= 2 {
                    // Consistent, complete, and not what the source says: keep it, out of the evidence set.
                    return quarantine(ctx, it, &part, &last, None, &stated).map(Got::Done);
                }
                None
            }
            Err(FetchError::NotEvidence { why, media_ms }) => {
                // Downloaded whole, but damaged or not the recording the API describes. Once
                // more, in case it was damaged on the way; the same again is kept, quarantined.
                mismatches += 1;
                last = why;
                if mismatches >= 2 {
                    return quarantine(ctx, it, &part, &last, media_ms, &stated).map(Got::Done);
                }
                None
            }
        };
        let _ = std::fs::remove_file(&part);
        if let Some(d) = outcome {
            return Ok(Got::Done(d));
        }
        tokio::time::sleep(backoff.max(MEDIA.base)).await;
    }
    Ok(Got::Done(done(
        Outcome::Failed,
        format!("download failed {} times; last: {last}", MEDIA.max_attempts),
    )))
}

fn quarantine(
    ctx: &Ctx<'_>,
    it: &Item,
    part: &Path,
    why: &str,
    media_ms: Option<u64>,
    stated: &Stated,
) -> Result<Done> {
    let dir = ctx.root.join("data/quarantine").join(&it.conversation_id);
    crate::fetch::make_dirs(&dir)?;
    let dest = dir.join(format!("{}.bin", it.recording_id));
    let (sha, bytes) = sha256_file(part)?;
    finalize(part, &dest, &sha)?;
    Ok(Done {
        outcome: Outcome::Corrupted,
        reason: why.to_owned(),
        file: Some(format!(
            "data/quarantine/{}/{}.bin",
            it.conversation_id, it.recording_id
        )),
        sha256: Some(sha),
        bytes: Some(bytes),
        content_type: None,
        downloaded_at: Some(format_ms(OffsetDateTime::now_utc())),
        media_ms,
        stated_ms: stated.duration_ms,
        stated_source: Some(stated.source.clone()),
    })
}

async fn batch_chunk(ctx: &Ctx<'_>, chunk: &[Item]) -> Result<()> {
    let mut pending: Vec<Item> = chunk.to_vec();
    for round in 1..=URL_ROUNDS {
        if pending.is_empty() {
            break;
        }
        let list: Vec<Value> = pending
            .iter()
            .map(|it| json!({"conversationId": it.conversation_id, "recordingId": it.recording_id}))
            .collect();
        let path = "/api/v2/recording/batchrequests";
        let sub = ctx
            .api
            .send_ok(
                Method::POST,
                path,
                Some(&json!({"batchDownloadRequestList": list})),
            )
            .await?
            .json(&Method::POST, &ctx.api.url(path))?;
        let job = sub["id"]
            .as_str()
            .ok_or_else(|| Error::Api {
                method: "POST".into(),
                url: ctx.api.url(path),
                message: "no job id".into(),
            })?
            .to_owned();
        let status_path = format!("{path}/{}", url_path(&job));
        let mut wait = Duration::from_millis(200);
        let deadline = tokio::time::Instant::now() + ctx.cfg.job_deadline;
        let status = loop {
            let v = ctx
                .api
                .send_ok(Method::GET, &status_path, None)
                .await?
                .json(&Method::GET, &ctx.api.url(&status_path))?;
            let complete = v["status"] == "Completed"
                || (v["expectedResultCount"].as_u64().is_some()
                    && v["resultCount"] == v["expectedResultCount"]);
            if complete {
                break v;
            }
            if tokio::time::Instant::now() >= deadline {
                // Never polled for ever: the job's items end Failed with the reason, as a
                // transcode that never finishes does.
                let why = format!(
                    "batch job {job} was still not complete after {} s ({} of {:?} results)",
                    ctx.cfg.job_deadline.as_secs(),
                    v["resultCount"],
                    v["expectedResultCount"].as_u64()
                );
                for it in &pending {
                    record(ctx, it, &done(Outcome::Failed, why.clone()))?;
                }
                return Ok(());
            }
            tokio::time::sleep(
                wait.min(deadline.saturating_duration_since(tokio::time::Instant::now())),
            )
            .await;
            wait = (wait * 2).min(Duration::from_secs(5));
        };
        let mut by_rec: BTreeMap<String, Value> = BTreeMap::new();
        for r in status["results"].as_array().into_iter().flatten() {
            if let Some(rid) = r["recordingId"].as_str() {
                by_rec.insert(rid.to_owned(), r.clone());
            }
        }
        let results: Vec<Result<Option<Item>>> =
            futures_util::stream::iter(pending.iter().cloned())
                .map(|it| {
                    let res = by_rec.get(&it.recording_id).cloned();
                    async move {
                        let d = match res {
                            None => done(
                                Outcome::Failed,
                                "the batch job returned no result for this recording",
                            ),
                            Some(r) => match (r["resultUrl"].as_str(), r["errorMsg"].as_str()) {
                                (Some(url), _) => {
                                    // Batch results state neither size nor duration: the
                                    // listed recording states its duration.
                                    let stated = Stated::of_listed(ctx, &it);
                                    match download(ctx, &it, url, None, stated).await? {
                                        Got::Done(d) => d,
                                        Got::Expired if round < URL_ROUNDS => return Ok(Some(it)),
                                        Got::Expired => done(
                                            Outcome::Failed,
                                            format!("media URL expired {URL_ROUNDS} times"),
                                        ),
                                    }
                                }
                                (None, Some(msg)) => classify_error_msg(msg),
                                (None, None) => done(
                                    Outcome::Failed,
                                    "batch result has neither resultUrl nor errorMsg",
                                ),
                            },
                        };
                        record(ctx, &it, &d)?;
                        Ok(None)
                    }
                })
                .buffer_unordered(ctx.cfg.concurrency.max(1))
                .collect()
                .await;
        pending = results
            .into_iter()
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect();
    }
    Ok(())
}

/// Maps a batch `errorMsg` to an outcome (Genesys does not document the texts; see docs).
fn classify_error_msg(msg: &str) -> Done {
    let m = msg.to_ascii_lowercase();
    if m.contains("archiv") {
        done(Outcome::Archived, format!("batch errorMsg: {msg}"))
    } else if m.contains("deleted") || m.contains("not found") || m.contains("purged") {
        done(Outcome::Purged, format!("batch errorMsg: {msg}"))
    } else {
        done(Outcome::Failed, format!("batch errorMsg: {msg}"))
    }
}

async fn transcode_item(ctx: &Ctx<'_>, it: &Item, format: &str) -> Result<Done> {
    let path = format!(
        "/api/v2/conversations/{}/recordings/{}?formatId={format}&download=true",
        url_path(&it.conversation_id),
        url_path(&it.recording_id)
    );
    let deadline = tokio::time::Instant::now() + ctx.cfg.job_deadline;
    let mut rounds = 0;
    loop {
        let r = ctx.api.send(Method::GET, &path, None).await?;
        match r.status.as_u16() {
            404 => {
                return Ok(done(
                    Outcome::Purged,
                    format!("404 from the API: {}", r.describe()),
                ));
            }
            202 => {
                if tokio::time::Instant::now() > deadline {
                    return Ok(done(
                        Outcome::Failed,
                        format!(
                            "still transcoding after {} s",
                            ctx.cfg.job_deadline.as_secs()
                        ),
                    ));
                }
                let est = serde_json::from_slice::<Value>(&r.body)
                    .ok()
                    .and_then(|v| v["estimatedTranscodeTimeMs"].as_u64())
                    .unwrap_or(2000);
                tokio::time::sleep(Duration::from_millis(est.clamp(250, 10_000))).await;
            }
            200 => {
                let v = r.json(&Method::GET, &ctx.api.url(&path))?;
                let state = v["fileState"].as_str().unwrap_or("");
                if state == "ARCHIVED" {
                    return Ok(done(
                        Outcome::Archived,
                        "fileState ARCHIVED; restore it before export",
                    ));
                }
                let uri = v["mediaUris"]["S"]["mediaUri"].as_str().or_else(|| {
                    v["mediaUris"]
                        .as_object()
                        .and_then(|m| m.values().find_map(|x| x["mediaUri"].as_str()))
                });
                let Some(uri) = uri else {
                    return Ok(done(
                        Outcome::Failed,
                        format!("no media URI (fileState {state})"),
                    ));
                };
                let (duration_ms, source) =
                    Stated::duration(&v, "outputDurationMs", "startTime", "endTime");
                let stated = Stated {
                    size: v["outputSizeInBytes"].as_u64().filter(|n| *n > 0),
                    duration_ms,
                    source,
                };
                match download(ctx, it, uri, None, stated).await? {
                    Got::Done(d) => return Ok(d),
                    Got::Expired => {
                        rounds += 1;
                        if rounds >= URL_ROUNDS {
                            return Ok(done(
                                Outcome::Failed,
                                format!("media URL expired {URL_ROUNDS} times"),
                            ));
                        }
                    }
                }
            }
            _ => {
                return Ok(done(
                    Outcome::Failed,
                    format!("recording request failed: {}", r.describe()),
                ));
            }
        }
    }
}

async fn search_item(ctx: &Ctx<'_>, it: &Item) -> Result<Done> {
    let meta_path = format!("/api/v2/recordings/{}", url_path(&it.recording_id));
    let r = ctx.api.send(Method::GET, &meta_path, None).await?;
    let mut stated = Stated {
        source: "not stated: the metadata is not JSON".into(),
        ..Stated::default()
    };
    match r.status.as_u16() {
        200 => {
            if let Ok(v) = serde_json::from_slice::<Value>(&r.body) {
                (stated.duration_ms, stated.source) =
                    Stated::duration(&v, "durationMs", "startTimestamp", "endTimestamp");
            }
            let p = ctx
                .root
                .join("data/metadata")
                .join(format!("{}.json", it.recording_id));
            if let Some(d) = p.parent() {
                crate::fetch::make_dirs(d)?;
            }
            crate::fetch::write_sealed(&p, &r.body)?;
        }
        404 => {
            return Ok(done(
                Outcome::Purged,
                "404 for the recording's metadata: deleted at the source",
            ));
        }
        _ => {
            return Ok(done(
                Outcome::Failed,
                format!("metadata request failed: {}", r.describe()),
            ));
        }
    }
    let token = ctx.api.token(None).await?;
    let url = ctx.api.url(&format!("{meta_path}/media"));
    match download(ctx, it, &url, Some(&token), stated).await? {
        Got::Done(d) => Ok(d),
        Got::Expired => Ok(done(Outcome::Failed, "403 for API-hosted media")),
    }
}
