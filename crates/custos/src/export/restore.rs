//! `--restore-archived`: archived recordings restored at the source, then exported.
//!
//! Before retrieval, every manifest item listed ARCHIVED (or RESTORING) gets one restore
//! request: `PUT /api/v2/conversations/{cid}/recordings/{rid}` with a new `archiveDate`
//! ("a request to change the archival date of an archived recording will result in a
//! restoration of the recording until the new date set"). The intent is recorded in the job
//! state before the request is sent and the acceptance after, so a crash in between is found
//! on resume and settled by asking the recording's state, never by a second request. The rest
//! of the manifest is retrieved meanwhile; then the restoring recordings are looked at (pauses
//! from 1 s doubling to `poll_max`, within the rate budget) until RESTORED, and retrieved.
//! With `--no-wait`, a run whose restores are still under way stops with
//! [`Error::RestoresPending`] (exit 3); re-running continues waiting.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::config::RestoreArchived;
use super::context::{Ctx, Stage};
use crate::error::{Error, Result};
use crate::model::{Item, Outcome, safe_id};
use crate::query::format_ms;
use crate::source::url_path;
use crate::state::{Done, Key, RestoreRow};

/// Restores by state, for retrieval.
#[derive(Default)]
pub(super) struct Ledger {
    /// Asked for and not yet seen RESTORED: not retrieved yet.
    pending: HashSet<(String, String)>,
    /// Seen RESTORED: retrieved like an AVAILABLE recording.
    restored: HashSet<(String, String)>,
}

impl Ledger {
    /// The restores recorded in the job state.
    pub(super) fn read(ctx: &Ctx<'_>) -> Result<Ledger> {
        let mut l = Ledger::default();
        if ctx.cfg.restore.is_none() {
            return Ok(l);
        }
        for r in ctx.state.restores()? {
            let key = (r.item.conversation_id, r.item.recording_id);
            if r.restored_at.is_some() {
                l.restored.insert(key);
            } else if r.requested_at.is_some() {
                l.pending.insert(key);
            }
        }
        Ok(l)
    }

    fn key(it: &Item) -> (String, String) {
        (it.conversation_id.clone(), it.recording_id.clone())
    }

    /// Still restoring: leave it for later.
    pub(super) fn pending(&self, it: &Item) -> bool {
        self.pending.contains(&Self::key(it))
    }

    /// Restored: download it.
    pub(super) fn restored(&self, it: &Item) -> bool {
        self.restored.contains(&Self::key(it))
    }
}

fn metadata_path(it: &Item) -> String {
    format!(
        "/api/v2/conversations/{}/recordingmetadata/{}",
        url_path(&it.conversation_id),
        url_path(&it.recording_id)
    )
}

/// The recording's fileState now, or `None` if Genesys no longer has it.
async fn file_state(ctx: &Ctx<'_>, it: &Item) -> Result<Option<(String, Value)>> {
    match ctx.api.send_ok(Method::GET, &metadata_path(it), None).await {
        Ok(r) => {
            let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            Ok(Some((v["fileState"].as_str().unwrap_or("").to_owned(), v)))
        }
        Err(Error::Refused { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Asks for one restore of every archived item without an outcome, unless an earlier run did.
pub(super) async fn request(ctx: &Ctx<'_>, r: &RestoreArchived) -> Result<()> {
    if ctx.state.get(Key::RestoresRequested)?.is_some() {
        return Ok(());
    }
    let known: std::collections::HashMap<(String, String), RestoreRow> = ctx
        .state
        .restores()?
        .into_iter()
        .map(|r| {
            (
                (r.item.conversation_id.clone(), r.item.recording_id.clone()),
                r,
            )
        })
        .collect();
    let mut todo = Vec::new();
    ctx.state.for_each(|it, d| {
        let archived = matches!(it.listed_state.as_str(), "ARCHIVED" | "RESTORING");
        if d.is_none() && archived && safe_id(&it.conversation_id) && safe_id(&it.recording_id) {
            todo.push(it);
        }
        Ok(())
    })?;
    let until = format_ms(OffsetDateTime::now_utc() + time::Duration::days(r.days.into()));
    ctx.progress.stage(
        Stage::Manifest,
        &format!(
            "asking for {} archived recordings to be restored",
            todo.len()
        ),
    );
    for it in todo {
        let prior = known.get(&Ledger::key(&it));
        if prior.is_some_and(|p| p.requested_at.is_some()) {
            continue;
        }
        let date = match prior {
            // An intent without an acceptance: a crash came between the two. Ask the
            // recording, not the API again, whether the restore is under way.
            Some(p) => {
                if let Some((state, _)) = file_state(ctx, &it).await?
                    && matches!(state.as_str(), "RESTORING" | "RESTORED" | "AVAILABLE")
                {
                    ctx.state
                        .restore_requested(&it, &format_ms(OffsetDateTime::now_utc()))?;
                    ctx.log(
                        "restore-found-requested",
                        json!({"conversationId": it.conversation_id, "recordingId": it.recording_id, "fileState": state, "note": "a restore asked for before a crash is under way; not asked again"}),
                    )?;
                    continue;
                }
                p.archive_date.clone()
            }
            None => until.clone(),
        };
        ctx.state.restore_intent(&it, &date)?;
        restore_one(ctx, &it, &date).await?;
    }
    ctx.state.set(Key::RestoresRequested, "true")
}

/// One restore request.
async fn restore_one(ctx: &Ctx<'_>, it: &Item, date: &str) -> Result<()> {
    let path = format!(
        "/api/v2/conversations/{}/recordings/{}",
        url_path(&it.conversation_id),
        url_path(&it.recording_id)
    );
    match ctx
        .api
        .send_ok(Method::PUT, &path, Some(&json!({"archiveDate": date})))
        .await
    {
        Ok(resp) => {
            let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
            ctx.state
                .restore_requested(it, &format_ms(OffsetDateTime::now_utc()))?;
            ctx.log(
                "restore-requested",
                json!({"conversationId": it.conversation_id, "recordingId": it.recording_id, "archiveDate": date, "fileState": v["fileState"]}),
            )?;
            Ok(())
        }
        Err(Error::Refused { status: 404, .. }) => ctx.finish(
            it,
            &Done::no_file(
                Outcome::Purged,
                "not found at the source when its restore was asked for (404)",
            ),
        ),
        Err(Error::Refused {
            status, message, ..
        }) => Err(Error::Config(format!(
            "--restore-archived: Genesys refused to restore recording {} ({status}: {message}); a restore needs the recording:recording:restore (or editRetention) permission",
            it.recording_id
        ))),
        Err(e) => Err(e),
    }
}

/// Looks at every restore still under way until none is (or, with `--no-wait`, once): each
/// seen RESTORED is recorded; one gone is `Purged`; one archived again before it was fetched
/// is `Archived` with the reason.
pub(super) async fn wait(ctx: &Ctx<'_>, r: &RestoreArchived) -> Result<()> {
    let mut pause = Duration::from_secs(1);
    loop {
        // An item that ended meanwhile (gone, archived again) is not looked at again.
        let pending = ctx.state.restores_pending()?;
        let mut left = 0u64;
        for row in pending {
            if settle(ctx, &row).await? {
                continue;
            }
            left += 1;
        }
        if left == 0 {
            return Ok(());
        }
        if !r.wait {
            ctx.log("restores-pending", json!({"recordings": left, "note": "--no-wait: re-run the same command to continue"}))?;
            return Err(Error::RestoresPending(left));
        }
        ctx.progress.stage(
            Stage::Retrieval,
            &format!(
                "waiting for {left} restores at the source (next look in {} s)",
                pause.as_secs()
            ),
        );
        tracing::info!(
            restoring = left,
            pause_s = pause.as_secs(),
            "waiting for restores"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(r.poll_max);
    }
}

/// Whether the restore of `row` is settled (RESTORED, or the item ended otherwise).
async fn settle(ctx: &Ctx<'_>, row: &RestoreRow) -> Result<bool> {
    let it = &row.item;
    let now = format_ms(OffsetDateTime::now_utc());
    match file_state(ctx, it).await? {
        None => {
            ctx.finish(
                it,
                &Done::no_file(
                    Outcome::Purged,
                    "not found at the source while it was being restored (404)",
                ),
            )?;
            Ok(true)
        }
        Some((state, v)) => match state.as_str() {
            "RESTORED" | "AVAILABLE" => {
                ctx.state.restore_done(it, &now)?;
                ctx.log(
                    "restore-done",
                    json!({"conversationId": it.conversation_id, "recordingId": it.recording_id, "fileState": state, "restoreExpirationTime": v["restoreExpirationTime"], "archiveDate": v["archiveDate"]}),
                )?;
                Ok(true)
            }
            "RESTORING" => Ok(false),
            "DELETED" => {
                ctx.finish(
                    it,
                    &Done::no_file(
                        Outcome::Purged,
                        "fileState DELETED while it was being restored",
                    ),
                )?;
                Ok(true)
            }
            other => {
                ctx.finish(
                    it,
                    &Done::no_file(
                        Outcome::Archived,
                        format!("a restore was asked for at {}, but the recording was {other} when looked at {now}", row.requested_at.as_deref().unwrap_or("?")),
                    ),
                )?;
                Ok(true)
            }
        },
    }
}

/// The custody record's note for an item exported after a restore.
pub(super) fn note(row: &RestoreRow) -> String {
    format!(
        "restored from archive (asked {}, RESTORED by {}); archived again from {}",
        row.requested_at.as_deref().unwrap_or("?"),
        row.restored_at.as_deref().unwrap_or("?"),
        row.archive_date
    )
}
