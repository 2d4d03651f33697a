//! Stage 2: every page listed, deduplicated, sorted, and sealed as `data/manifest.csv`, the
//! work list of the run; the listed metadata kept as received.

use crate::package::files;
use std::path::Path;

use time::OffsetDateTime;

use serde_json::json;

use super::context::Ctx;
use crate::custody::csv_cell;
use crate::durable::{sync_dir, write_sealed};
use crate::error::{Error, Result};
use crate::model::safe_id;
use crate::source::{Listing, Source};

/// The listing's scratch file ([`Listing`]), beside the job state.
const LISTING_FILE: &str = ".custos/listing.sqlite";

/// A CSV file being written to `path` ([`write_csv_sealed`]).
struct CsvRows<'a> {
    w: csv::Writer<&'a mut dyn std::io::Write>,
    path: &'a Path,
}

impl CsvRows<'_> {
    /// Writes a record.
    fn put<const N: usize>(&mut self, record: [&str; N]) -> Result<()> {
        self.w
            .write_record(record)
            .map_err(|e| Error::io(self.path, e.into()))
    }
}

/// Writes the CSV file `write` fills to `path` as evidence (streamed and hashed as it is written,
/// never held whole), and answers its SHA-256. An error of `write`'s own (a listing that cannot
/// be read) is answered as it is, rather than as the writer's error it caused.
fn write_csv_sealed(
    path: &Path,
    write: &mut dyn FnMut(&mut CsvRows<'_>) -> Result<()>,
) -> Result<crate::digest::Sha256> {
    let mut failed = None;
    let written = crate::durable::write_sealed_streamed(path, &mut |out| {
        let mut w = CsvRows {
            w: csv::Writer::from_writer(out),
            path,
        };
        match write(&mut w) {
            Ok(()) => w.w.flush(),
            Err(e) => {
                let shown = e.to_string();
                failed = Some(e);
                Err(std::io::Error::other(shown))
            }
        }
    });
    match (written, failed) {
        (_, Some(e)) | (Err(e), None) => Err(e),
        (Ok(sha), None) => Ok(sha),
    }
}

/// Records what the analytics data lake said of each job's interval: a custody event per job
/// (`analytics-data-availability`), kept in the job state for the completeness file, which the
/// seal writes (perhaps in a later run).
fn record_availability(
    ctx: &Ctx<'_>,
    availability: &[crate::source::DataAvailability],
) -> Result<()> {
    for a in availability {
        let mut fields = serde_json::to_value(a).expect("json");
        if !a.covers_interval {
            fields["note"] = json!(
                "the analytics data lake is not known to be complete up to the interval's end: conversations after its dataAvailabilityDate may be missing; export again once that date has passed the interval's end"
            );
        }
        ctx.log("analytics-data-availability", fields)?;
    }
    ctx.state.set(
        crate::state::Key::AnalyticsAvailability,
        &serde_json::to_string(availability).expect("json"),
    )
}

/// Lists what the selection names and seals the manifest.
pub(super) async fn build_manifest(
    ctx: &Ctx<'_>,
    source: &Source,
    now: OffsetDateTime,
) -> Result<()> {
    let cfg = ctx.cfg;
    if let Some(p) = &ctx.previous {
        super::chain::log_link(ctx, p)?;
    }
    // Listed metadata waits here, outside the payload, until the manifest says what is kept.
    let staging = ctx.root.join(".custos/metadata-staging");
    // With --workers, the workers fetch the conversations' recordings lists.
    let opened = || super::workers::open_listing(ctx);
    let workers = ctx
        .state
        .shared()
        .filter(|_| cfg.workers)
        .map(|shared| crate::source::Workers {
            shared,
            opened: &opened,
        });
    // The listing goes to disk as it is found (a million rows are never held in memory).
    let listing = Listing::create(&ctx.root.join(LISTING_FILE))?;
    let mut listing = source
        .discover(
            &ctx.api,
            now,
            cfg.page_size,
            &staging,
            listing,
            &|a| record_availability(ctx, a),
            workers,
        )
        .await?;
    if cfg.collect_orphans {
        super::orphans::add_to_manifest(ctx, &mut listing, &staging).await?;
    }
    if let Some(p) = &ctx.previous {
        super::chain::exclude(ctx, p, &mut listing)?;
    }
    select_media(ctx, &mut listing)?;
    keep_metadata(ctx, &mut listing, &staging)?;
    let sha = write_csv_sealed(&ctx.root.join(files::MANIFEST_CSV), &mut |w| {
        w.put([
            "Sequence",
            "Conversation_ID",
            "Recording_ID",
            "Listed_File_State",
        ])?;
        for (i, it) in listing.items().enumerate() {
            let it = it?;
            w.put([
                (i + 1).to_string().as_str(),
                &csv_cell(&it.conversation_id),
                &csv_cell(&it.recording_id),
                &csv_cell(&it.listed_state),
            ])?;
        }
        Ok(())
    })?
    .hex();
    write_sealed(
        &ctx.root.join("data/manifest.csv.sha256"),
        format!("{sha}  manifest.csv\n").as_bytes(),
    )?;
    ctx.state.seal_manifest(listing.items(), &sha)?;
    ctx.log(
        "manifest-sealed",
        json!({"file": files::MANIFEST_CSV, "sha256": sha, "items": listing.len()?}),
    )?;
    Ok(())
}

/// Keeps the listed metadata of the items kept (and every matched conversation's record) in
/// `data/metadata/`, and removes the staging area.
fn keep_metadata(ctx: &Ctx<'_>, listing: &mut Listing, staging: &Path) -> Result<()> {
    let meta_dir = ctx.root.join("data/metadata");
    crate::durable::make_dirs(&meta_dir)?;
    if staging.exists() {
        for it in listing.items() {
            let it = it?;
            let from = staging.join(format!("{}.json", it.recording_id));
            if safe_id(&it.recording_id) && from.exists() {
                let to = meta_dir.join(format!("{}.json", it.recording_id));
                std::fs::rename(&from, &to).map_err(|e| Error::io(&to, e))?;
            }
        }
        sync_dir(&meta_dir)?;
        keep_conversation_records(&staging.join("conversations"), &meta_dir)?;
        std::fs::remove_dir_all(staging).map_err(|e| Error::io(staging, e))?;
    }
    Ok(())
}

/// The recordings of media types `--media` leaves out, in the payload: each one listed, so the
/// package says what the query found that it does not hold.
pub const MEDIA_EXCLUDED_FILE: &str = "data/media_excluded.csv";

/// With `--media`, keeps the items of the types asked for; the others are written to
/// [`MEDIA_EXCLUDED_FILE`] and counted in the custody log. A recording whose type is not stated,
/// or not one we know, is kept (it is judged by what its file holds).
fn select_media(ctx: &Ctx<'_>, listing: &mut Listing) -> Result<()> {
    let wanted = &ctx.cfg.media;
    if wanted.is_empty() {
        return Ok(());
    }
    let mut counts: std::collections::BTreeMap<&str, u64> = Default::default();
    // Each row left out is written as it is removed.
    let sha = write_csv_sealed(&ctx.root.join(MEDIA_EXCLUDED_FILE), &mut |w| {
        w.put([
            "Conversation_ID",
            "Recording_ID",
            "Media",
            "Listed_File_State",
        ])?;
        listing.retain(|it, listed| match crate::model::Media::parse(listed) {
            Some(m) if !wanted.contains(&m) => {
                w.put([
                    csv_cell(&it.conversation_id).as_ref(),
                    &csv_cell(&it.recording_id),
                    m.as_str(),
                    &csv_cell(&it.listed_state),
                ])?;
                *counts.entry(m.as_str()).or_default() += 1;
                Ok(false)
            }
            _ => Ok(true),
        })?;
        Ok(())
    })?;
    let selected: Vec<&str> = wanted.iter().map(|m| m.as_str()).collect();
    ctx.log(
        "media-excluded",
        json!({"selected": selected, "excluded": counts, "file": MEDIA_EXCLUDED_FILE,
               "sha256": sha.hex()}),
    )?;
    Ok(())
}

/// Moves the analytics record of every conversation the query matched (who spoke, when, why;
/// those without any recording too, which data/completeness.json lists) from staging into
/// `data/metadata/conversations/`.
fn keep_conversation_records(staging: &Path, meta_dir: &Path) -> Result<()> {
    if !staging.exists() {
        return Ok(());
    }
    let conv_dir = meta_dir.join("conversations");
    crate::durable::make_dirs(&conv_dir)?;
    for e in std::fs::read_dir(staging).map_err(|e| Error::io(staging, e))? {
        let from = e.map_err(|e| Error::io(staging, e))?.path();
        let cid = from.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if safe_id(cid) && from.extension().is_some_and(|x| x == "json") {
            let to = conv_dir.join(format!("{cid}.json"));
            std::fs::rename(&from, &to).map_err(|e| Error::io(&to, e))?;
        }
    }
    sync_dir(&conv_dir)
}
