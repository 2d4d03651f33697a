//! Stage 3, retrieval: every unfinished manifest item ends in exactly one outcome. Items the
//! listing already settles (deleted, archived, unsafe ids, ids the source does not know) are
//! decided without a request; the rest are fetched through batch requests, per-recording
//! transcodes, or the search API's `/media`, each download bounded in attempts and recorded in
//! the custody log and the job state.

mod batch;
mod download;
mod search;
mod stated;
mod transcode;

use std::sync::Arc;

use futures_util::StreamExt;

use super::config::{Retrieval, SourceKind};
use super::context::Ctx;
use super::restore::Ledger;
use crate::error::Result;
use crate::model::{Item, Outcome, safe_id};
use crate::source::NOT_FOUND;
use crate::state::Done;

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
/// Items still restoring at the source (`--restore-archived`) are left for a later pass;
/// restored ones are downloaded like AVAILABLE ones.
pub(in crate::export) async fn retrieve(ctx: &Ctx<'_>, restores: &Ledger) -> Result<()> {
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
        if restores.pending(&it) {
            continue;
        }
        if restores.restored(&it) {
            downloadable.push(it);
            continue;
        }
        match triage(&it) {
            Some(d) => ctx.finish(&it, &d)?,
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
                        ctx.finish(&it, &d)
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
                    ctx.finish(&it, &d)
                })
                .buffer_unordered(in_flight(ctx))
                .collect()
                .await;
            results.into_iter().collect()
        }
    }
}
