//! Stage 3, retrieval: every unfinished manifest item ends in exactly one outcome. Items the
//! listing already settles (deleted, archived, unsafe ids, ids the source does not know) are
//! decided without a request; the rest are fetched through batch requests, per-recording
//! transcodes, or the search API's `/media`, each download bounded in attempts and recorded in
//! the custody log and the job state.

mod batch;
mod download;
mod search;
mod transcode;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::config::{Retrieval, SourceKind};
use super::context::Ctx;
use crate::error::Result;
use crate::model::{Item, Outcome, safe_id};
use crate::source::NOT_FOUND;
use crate::state::Done;

/// How often a media URL that expired is asked for again.
const URL_ROUNDS: u32 = 3;

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
    pub(super) fn duration(
        v: &Value,
        ms_key: &str,
        start_key: &str,
        end_key: &str,
    ) -> (Option<u64>, String) {
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
    pub(super) fn of_listed(ctx: &Ctx<'_>, it: &Item) -> Stated {
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
pub(super) async fn judge(
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
        return Some(Done::no_file(
            Outcome::Purged,
            "requested id not found at the source (404)",
        ));
    }
    if !safe_id(&it.conversation_id) || !safe_id(&it.recording_id) {
        return Some(Done::no_file(
            Outcome::Failed,
            "unsafe id (only letters, digits, '-', '_' and '.' are allowed); nothing was written for it",
        ));
    }
    match it.listed_state.as_str() {
        "AVAILABLE" | "RESTORED" => None,
        "DELETED" => Some(Done::no_file(
            Outcome::Purged,
            "fileState DELETED when listed",
        )),
        "ARCHIVED" => Some(Done::no_file(
            Outcome::Archived,
            "fileState ARCHIVED when listed; restore it, then export it again",
        )),
        "RESTORING" => Some(Done::no_file(
            Outcome::Archived,
            "fileState RESTORING when listed: a restore is under way; export it again once RESTORED",
        )),
        other => Some(Done::no_file(
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
pub(in crate::export) async fn retrieve(ctx: &Ctx<'_>) -> Result<()> {
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
                .map(|chunk| batch::batch_chunk(ctx, chunk))
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
                        let d = transcode::transcode_item(ctx, &it, &format).await?;
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
                    let d = search::search_item(ctx, &it).await?;
                    record(ctx, &it, &d)
                })
                .buffer_unordered(in_flight(ctx))
                .collect()
                .await;
            results.into_iter().collect()
        }
    }
}
