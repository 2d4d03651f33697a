//! What every stage works with: the [`Ctx`] (settings, API client, job state, custody log), the
//! parsed selection, progress callbacks, and who and what is running the export.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};

use super::config::ExportConfig;
use crate::custody::CustodyLog;
use crate::error::Result;
use crate::http::Api;
use crate::model::{Item, Outcome};
use crate::state::{Done, State};

/// Where a distributed job's workers stage what they download (outside the bag's payload).
pub(crate) const STAGING: &str = ".custos/staging";

/// Stages, for progress reporting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Recording the query.
    Query,
    /// Finding and sealing the work list.
    Manifest,
    /// Downloading.
    Retrieval,
    /// Writing the custody record and the bag.
    Package,
}

/// Progress callbacks (the CLI draws bars; the library never prints).
pub trait Progress: Send + Sync {
    /// A stage starts.
    fn stage(&self, _stage: Stage, _detail: &str) {}
    /// Items in the manifest (those finished in an earlier run are then reported through `item`).
    fn total(&self, _items: u64) {}
    /// One item ended.
    fn item(&self, _outcome: Outcome, _bytes: u64) {}
}

/// Reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// What every stage works with.
pub(crate) struct Ctx<'a> {
    pub(crate) cfg: &'a ExportConfig,
    pub(crate) api: Api,
    pub(crate) state: State,
    pub(crate) root: PathBuf,
    pub(crate) progress: &'a dyn Progress,
    /// Media downloads at a time (`concurrency`): their own cap, apart from the API budget.
    pub(crate) downloads: tokio::sync::Semaphore,
    /// Opened once we know the export is not already sealed (appending to a sealed bag's log
    /// would break it).
    pub(super) log: &'a std::sync::OnceLock<Arc<CustodyLog>>,
    /// The bag this export continues (`--increment-of`), read and verified.
    pub(super) previous: Option<super::chain::Previous>,
}

impl Ctx<'_> {
    /// Appends an event to the custody log.
    pub(crate) fn log(&self, event: &str, fields: Value) -> Result<String> {
        self.log
            .get()
            .expect("custody log is open during the stages")
            .append(event, fields)
    }

    /// An item exported after its restore (`--restore-archived`) says so in its reason.
    fn restore_note(&self, it: &Item, d: &Done) -> Result<Option<Done>> {
        if self.cfg.restore.is_none() || d.outcome != Outcome::Exported {
            return Ok(None);
        }
        let Some(row) = self
            .state
            .restore_of(it)?
            .filter(|r| r.restored_at.is_some())
        else {
            return Ok(None);
        };
        let note = super::restore::note(&row);
        let mut n = d.clone();
        n.reason = if d.reason.is_empty() {
            note
        } else {
            format!("{note}; {}", d.reason)
        };
        Ok(Some(n))
    }

    /// Writes a custody log kept in the database (a distributed job's) out as
    /// `data/custody_log.jsonl`, whole; nothing for a log kept in its file.
    pub(crate) fn write_log_out(&self) -> Result<()> {
        match self.log.get() {
            Some(log) => log.write_out(&self.root.join(crate::package::files::CUSTODY_LOG)),
            None => Ok(()),
        }
    }

    /// The job's shared state, when this process is a worker of a distributed job (it holds a
    /// lease).
    pub(crate) fn worker(&self) -> Option<&crate::state::Shared> {
        self.state.shared().filter(|s| s.lease().is_some())
    }

    /// Where a distributed job's workers leave the files they download (named by SHA-256)
    /// until the coordinator puts them in place (docs/scale.md): `Some` in a worker only.
    pub(crate) fn staging(&self) -> Option<PathBuf> {
        self.worker().map(|_| self.root.join(STAGING))
    }

    /// A download's partial file: beside its final name, or, in a worker, in the staging
    /// directory under a name of the worker's own (so two workers never write one file).
    pub(crate) fn part_for(&self, it: &Item) -> Result<PathBuf> {
        let (dir, name) = match self.worker().and_then(|w| w.lease()) {
            Some(lease) => (
                self.root.join(STAGING),
                format!("{}.w{}.part", it.recording_id, lease.epoch),
            ),
            None => (
                self.root.join(it.folder()),
                format!("{}.part", it.recording_id),
            ),
        };
        crate::durable::make_dirs(&dir)?;
        Ok(dir.join(name))
    }

    /// Puts a checked download in place: renamed to `rel` (under the bag root) beside its
    /// sidecar; in a worker, renamed to its SHA-256 in the staging directory, where a late
    /// write of a fenced worker can only ever add the same bytes or an object nobody names.
    pub(crate) fn place(&self, part: &std::path::Path, rel: &str, sha256: &str) -> Result<()> {
        match self.staging() {
            Some(staging) => {
                crate::durable::set_mode(part, crate::durable::EVIDENCE_MODE)?;
                let to = staging.join(sha256);
                std::fs::rename(part, &to).map_err(|e| crate::Error::io(&to, e))?;
                crate::durable::sync_dir(&staging)
            }
            None => {
                let dest = self.root.join(rel);
                if let Some(dir) = dest.parent() {
                    crate::durable::make_dirs(dir)?;
                }
                crate::durable::finalize(part, &dest, sha256)
            }
        }
    }

    /// Where the file recorded at `rel` with `sha256` is now: in place, or (a distributed job
    /// not yet assembled) in the staging directory.
    pub(crate) fn kept_at(&self, rel: &str, sha256: &str) -> PathBuf {
        let placed = self.root.join(rel);
        let staged = self.root.join(STAGING).join(sha256);
        if std::fs::symlink_metadata(&placed).is_err()
            && sha256.parse::<crate::digest::Sha256>().is_ok()
            && std::fs::symlink_metadata(&staged).is_ok()
        {
            staged
        } else {
            placed
        }
    }

    /// Records an item's one outcome: in the custody log, the job state, and the progress.
    /// A worker records both in one transaction that lands only while it holds its lease.
    pub(crate) fn finish(&self, it: &Item, d: &Done) -> Result<()> {
        let noted = self.restore_note(it, d)?;
        let d = noted.as_ref().unwrap_or(d);
        tracing::debug!(
            conversation = %it.conversation_id,
            recording = %it.recording_id,
            outcome = d.outcome.as_str(),
            reason = %d.reason,
            "item finished"
        );
        let fields = json!({"conversationId": it.conversation_id, "recordingId": it.recording_id, "outcome": d.outcome.as_str(), "reason": d.reason,
               "file": d.file, "sha256": d.sha256, "bytes": d.bytes, "contentType": d.content_type,
               "durationChecked": d.duration_check().map(|c| c == crate::state::DurationCheck::Checked), "statedDurationSource": d.stated_source});
        match self.worker() {
            Some(shared) => {
                let log = self
                    .log
                    .get()
                    .expect("custody log is open during the stages");
                shared.finish(it, d, &log.draft("outcome", fields))?;
            }
            None => {
                self.log("outcome", fields)?;
                self.state.finish(it, d)?;
            }
        }
        self.progress.item(d.outcome, d.bytes.unwrap_or(0));
        Ok(())
    }
}
