//! Stage 3, retrieval: every unfinished manifest item ends in exactly one outcome. Items the
//! listing already settles (deleted, archived, unsafe ids, ids the source does not know) are
//! decided without a request; the rest are fetched through batch requests, per-recording
//! transcodes, or the search API's `/media`, each download bounded in attempts and recorded in
//! the custody log and the job state.

mod archive;
mod batch;
mod download;
mod search;
mod stated;
mod transcode;

use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};

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
        return Some(unsafe_id());
    }
    by_listed_state(it)
}

/// What to do with an orphan item (`--collect-orphans`: no conversation id) before any media
/// request.
fn triage_orphan(it: &Item) -> Option<Done> {
    if !safe_id(&it.recording_id) {
        return Some(unsafe_id());
    }
    by_listed_state(it)
}

fn unsafe_id() -> Done {
    Done::no_file(
        Outcome::Failed,
        "unsafe id (only letters, digits, '-', '_' and '.' are allowed); nothing was written for it",
    )
}

/// What the listed fileState settles without a request (`None`: download it).
fn by_listed_state(it: &Item) -> Option<Done> {
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

/// Whether `it`, which the listing settles, is to be looked for in the archive first: with
/// `--archive-settled read`, a recording listed DELETED, ARCHIVED or RESTORING (never an unsafe
/// id, nor one the source does not know).
fn settled_copy_wanted(ctx: &Ctx<'_>, it: &Item) -> bool {
    ctx.cfg.archive.as_ref().is_some_and(|a| a.read_settled)
        && matches!(
            it.listed_state.as_str(),
            "DELETED" | "ARCHIVED" | "RESTORING"
        )
        && safe_id(&it.conversation_id)
        && safe_id(&it.recording_id)
}

/// Items worked on at a time in transcode and search retrieval. Most of an item's life is spent
/// waiting for the API (latency, transcoding), not downloading, so many more are in flight than
/// download slots: the API budget, not the task count, should be what limits the rate. Sized from
/// the budget and the response time observed (`Api::requests_in_flight`), and never fewer than 8
/// per download slot (a transcode's life is mostly its server-side wait). Downloads keep their own
/// cap (`Ctx::downloads`).
///
/// A worker of a distributed job holds no more than about four seconds of its budget's work
/// (at least 8 items): what it holds in flight is claimed, and items one worker holds while the
/// others have run out of work are the job's tail.
fn in_flight(ctx: &Ctx<'_>) -> usize {
    let n = ctx
        .api
        .requests_in_flight()
        .max(ctx.cfg.concurrency * 8)
        .min(256);
    match ctx.worker() {
        Some(_) => n.min(((ctx.api.limiter.per_second() * 4.0).ceil() as usize).max(8)),
        None => n,
    }
}

/// Unfinished items read from the job state at a time.
const WORK_PAGE: u64 = 1000;

/// Items a worker claims at a time: few, so that a worker holds little more than it is working
/// on and the last items spread over every worker (a batch request takes five claims).
const CLAIM: u64 = 20;

/// A worker's pages of work: items claimed under its lease, until none is free. It ends then,
/// even while other workers hold items, so that a batch being filled is sent with what it has
/// (two workers each waiting to fill a batch with what the other holds would wait for ever);
/// the worker calls [`retrieve`] again while others hold items, which come free if their leases
/// lapse.
fn claimed(
    shared: &crate::state::Shared,
) -> impl futures_util::Stream<Item = Result<Vec<Item>>> + '_ {
    futures_util::stream::try_unfold((), move |()| async move {
        let c = shared.claim(CLAIM)?;
        Ok((!c.items.is_empty()).then_some((c.items, ())))
    })
}

/// Reports the items an earlier run finished to the progress.
fn count_finished(ctx: &Ctx<'_>) -> Result<()> {
    let mut total = 0u64;
    let mut done_before = std::collections::BTreeMap::<Outcome, (u64, u64)>::new();
    ctx.state.for_each(|_, d| {
        total += 1;
        if let Some(d) = d {
            let e = done_before.entry(d.outcome).or_default();
            e.0 += 1;
            e.1 += d.bytes.unwrap_or(0);
        }
        Ok(())
    })?;
    ctx.progress.total(total);
    for (outcome, (n, bytes)) in done_before {
        for i in 0..n {
            ctx.progress.item(outcome, if i == 0 { bytes } else { 0 });
        }
    }
    Ok(())
}

/// Retrieves every item that has no outcome yet.
/// Items still restoring at the source (`--restore-archived`) are left for a later pass;
/// restored ones are downloaded like AVAILABLE ones.
pub(in crate::export) async fn retrieve(ctx: &Ctx<'_>, restores: &Ledger) -> Result<()> {
    // No run holds the work list whole: what is finished is counted as it streams by, and
    // what is left is read from the job state a page at a time, as the downloads take it. A
    // worker of a distributed job claims its pages instead (see `claimed`).
    let pages: futures_util::stream::BoxStream<'_, Result<Vec<Item>>> = match ctx.worker() {
        Some(shared) => Box::pin(claimed(shared)),
        None => {
            count_finished(ctx)?;
            Box::pin(futures_util::stream::try_unfold(0u64, |after| async move {
                let page = ctx.state.unfinished(after, WORK_PAGE)?;
                Ok::<_, crate::Error>(
                    page.last()
                        .map(|(seq, _)| *seq)
                        .map(|last| (page.into_iter().map(|(_, it)| it).collect(), last)),
                )
            }))
        }
    };
    // Orphans (`--collect-orphans`) are set aside as they come (a few hundred at most: Genesys
    // lists 500) and fetched once the rest is done, through their own endpoint.
    let orphans = std::sync::Mutex::new(Vec::new());
    let set_aside = &orphans;
    // Settled without a request (triage) or left for a later pass (restoring), else downloaded.
    let downloadable = pages
        .map_ok(|page| futures_util::stream::iter(page.into_iter().map(Ok::<_, crate::Error>)))
        .try_flatten()
        .try_filter_map(|it| async move {
            if it.is_orphan() && ctx.cfg.collect_orphans {
                match triage_orphan(&it) {
                    Some(d) => ctx.finish(&it, &d)?,
                    None => set_aside.lock().expect("not poisoned").push(it),
                }
                return Ok(None);
            }
            if restores.pending(&it) {
                return Ok(None);
            }
            if restores.restored(&it) {
                return Ok(Some(it));
            }
            match triage(&it) {
                // `--archive-settled read`: the archive's copy of what the source deleted or
                // archived is looked for first (the listing's outcome stands without one).
                Some(_) if settled_copy_wanted(ctx, &it) => Ok(Some(it)),
                Some(d) => {
                    ctx.finish(&it, &d)?;
                    Ok(None)
                }
                None => Ok(Some(it)),
            }
        });
    match &ctx.cfg.archive {
        Some(a) => {
            archive::retrieve(ctx, a, downloadable, in_flight(ctx), |missing| {
                through_api(ctx, futures_util::stream::iter(missing.into_iter().map(Ok)))
            })
            .await?;
        }
        None => through_api(ctx, downloadable).await?,
    }
    fetch_orphans(ctx, orphans.into_inner().expect("not poisoned")).await
}

/// `--collect-orphans`: the orphan items set aside, fetched through
/// `GET /api/v2/orphanrecordings/{id}/media` in `--format` (WAV with `--retrieval batch`,
/// which takes only a conversation's recordings), waited on and judged as a transcode is.
/// (The listing settled the others — DELETED, ARCHIVED, an unsafe id — as it does any item's.)
/// A worker of a distributed job fetches the ones it claimed.
async fn fetch_orphans(ctx: &Ctx<'_>, orphans: Vec<Item>) -> Result<()> {
    let format = match &ctx.cfg.retrieval {
        Retrieval::Transcode(f) => f.clone(),
        Retrieval::Batch => "WAV".to_owned(),
    };
    let format = &format;
    let results: Vec<Result<()>> = futures_util::stream::iter(orphans)
        .map(|it| async move {
            let d = transcode::transcode_item(ctx, &it, format).await?;
            ctx.finish(&it, &d)
        })
        .buffer_unordered(in_flight(ctx))
        .collect()
        .await;
    results.into_iter().collect()
}

/// Once every item has ended: names each object of the manifest conversations' archive folders
/// that no item read (docs/archive.md), once per export.
pub(in crate::export) async fn reconcile_archive(
    ctx: &Ctx<'_>,
    archive: &crate::archive::ArchiveSource,
) -> Result<()> {
    archive::reconcile(ctx, archive).await
}

/// Fetches `downloadable` through the source's API, as `--retrieval` says.
async fn through_api<'a>(
    ctx: &'a Ctx<'a>,
    downloadable: impl futures_util::Stream<Item = Result<Item>> + Send + 'a,
) -> Result<()> {
    match (ctx.cfg.source, &ctx.cfg.retrieval) {
        (SourceKind::Genesys, Retrieval::Batch) => {
            // Two batch jobs at a time: the next is submitted and polled while the current one's
            // files download, so the API work never waits for the downloads to finish.
            let results: Vec<Result<()>> = downloadable
                .try_chunks(100)
                .map(|chunk| async move {
                    let chunk = chunk.map_err(|e| e.1)?;
                    batch::batch_chunk(ctx, &chunk).await
                })
                .buffer_unordered(2)
                .collect()
                .await;
            results.into_iter().collect()
        }
        (SourceKind::Genesys, Retrieval::Transcode(format)) => {
            let format = Arc::new(format.clone());
            let results: Vec<Result<()>> = downloadable
                .map(|it| {
                    let format = format.clone();
                    async move {
                        let it = it?;
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
            let results: Vec<Result<()>> = downloadable
                .map(|it| async move {
                    let it = it?;
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
