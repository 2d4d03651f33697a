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

    /// Records an item's one outcome: in the custody log, the job state, and the progress.
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
        self.log(
            "outcome",
            json!({"conversationId": it.conversation_id, "recordingId": it.recording_id, "outcome": d.outcome.as_str(), "reason": d.reason,
                   "file": d.file, "sha256": d.sha256, "bytes": d.bytes, "contentType": d.content_type,
                   "durationChecked": d.duration_check().map(|c| c == crate::state::DurationCheck::Checked), "statedDurationSource": d.stated_source}),
        )?;
        self.state.finish(it, d)?;
        self.progress.item(d.outcome, d.bytes.unwrap_or(0));
        Ok(())
    }
}
