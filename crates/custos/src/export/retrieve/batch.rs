//! Genesys batch retrieval: up to 100 recordings per batch job, polled to a deadline, each
//! result URL downloaded; an expired URL is asked for again in a new job.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use super::super::context::Ctx;
use super::download::{Got, URL_ROUNDS, download};
use super::stated::Stated;
use crate::error::{Error, Result};
use crate::model::{Item, Outcome};
use crate::source::url_path;
use crate::state::Done;

/// Retrieves one chunk of (at most 100) items through batch jobs.
pub(super) async fn batch_chunk(ctx: &Ctx<'_>, chunk: &[Item]) -> Result<()> {
    let mut pending: Vec<Item> = chunk.to_vec();
    for round in 1..=URL_ROUNDS {
        if pending.is_empty() {
            break;
        }
        let status = match run_job(ctx, &pending).await? {
            Ok(status) => status,
            Err(why) => {
                // Never polled for ever: the job's items end Failed with the reason, as a
                // transcode that never finishes does.
                for it in &pending {
                    ctx.finish(it, &Done::no_file(Outcome::Failed, why.clone()))?;
                }
                return Ok(());
            }
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
                            None => Done::no_file(
                                Outcome::Failed,
                                "the batch job returned no result for this recording",
                            ),
                            Some(r) => match (r["resultUrl"].as_str(), r["errorMsg"].as_str()) {
                                (Some(url), _) => {
                                    // Batch results state neither size nor duration: the
                                    // listed recording states its duration.
                                    let stated = Stated::of_listed(ctx, &it);
                                    match download(ctx, &it, url, None, stated).await? {
                                        Got::Done(d) => *d,
                                        Got::Expired if round < URL_ROUNDS => return Ok(Some(it)),
                                        Got::Expired => Done::no_file(
                                            Outcome::Failed,
                                            format!("media URL expired {URL_ROUNDS} times"),
                                        ),
                                    }
                                }
                                (None, Some(msg)) => classify_error_msg(msg),
                                (None, None) => Done::no_file(
                                    Outcome::Failed,
                                    "batch result has neither resultUrl nor errorMsg",
                                ),
                            },
                        };
                        ctx.finish(&it, &d)?;
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
        Done::no_file(Outcome::Archived, format!("batch errorMsg: {msg}"))
    } else if m.contains("deleted") || m.contains("not found") || m.contains("purged") {
        Done::no_file(Outcome::Purged, format!("batch errorMsg: {msg}"))
    } else {
        Done::no_file(Outcome::Failed, format!("batch errorMsg: {msg}"))
    }
}

/// Submits a batch download job for `pending` and polls it until complete: its status, or
/// (inner `Err`) why it was given up at the job deadline.
async fn run_job(ctx: &Ctx<'_>, pending: &[Item]) -> Result<std::result::Result<Value, String>> {
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
            return Ok(Err(format!(
                "batch job {job} was still not complete after {} s ({} of {:?} results)",
                ctx.cfg.job_deadline.as_secs(),
                v["resultCount"],
                v["expectedResultCount"].as_u64()
            )));
        }
        tokio::time::sleep(
            wait.min(deadline.saturating_duration_since(tokio::time::Instant::now())),
        )
        .await;
        wait = (wait * 2).min(Duration::from_secs(5));
    };
    Ok(Ok(status))
}
