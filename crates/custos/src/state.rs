//! Durable job state (SQLite), so that re-running an interrupted export continues it.
//!
//! It lives in `<out>/.custos/state.sqlite`, outside the bag's payload. WAL mode with
//! `synchronous=FULL`: an outcome recorded here survives a crash or SIGKILL. What it holds: the
//! sealed query and manifest hashes, and per manifest item its outcome and file facts. The
//! files themselves are written before their outcome is recorded, so after a crash an item is
//! either recorded with its final file in place, or not recorded and retried.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Result;
use crate::model::{Item, Outcome};

/// What is known about one finished item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Done {
    /// Outcome.
    pub outcome: Outcome,
    /// Why (for everything but Exported), or a note.
    pub reason: String,
    /// Path under the bag root, if a file was kept.
    pub file: Option<String>,
    /// SHA-256 of the file.
    pub sha256: Option<String>,
    /// MD5 of the file, from the download's one pass (evidence files only).
    pub md5: Option<String>,
    /// SHA-1 of the file, from the same pass.
    pub sha1: Option<String>,
    /// Bytes of the file.
    pub bytes: Option<u64>,
    /// Content-Type it was served with.
    pub content_type: Option<String>,
    /// When it was downloaded (RFC 3339, UTC, `Z`).
    pub downloaded_at: Option<String>,
    /// The file's playable duration as read from its container (crate::media), ms.
    pub media_ms: Option<u64>,
    /// The playable duration the API stated for the recording, ms.
    pub stated_ms: Option<u64>,
    /// Where `stated_ms` came from (`outputDurationMs`, `endTime − startTime − 1 pause …`), or
    /// why there is none.
    pub stated_source: Option<String>,
}

/// A restore of an archived recording (`--restore-archived`), as far as it got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreRow {
    /// The manifest item.
    pub item: Item,
    /// The archive date asked for: the recording is archived again then.
    pub archive_date: String,
    /// When the request was accepted (none: about to be sent, or a crash came in between).
    pub requested_at: Option<String>,
    /// When the recording was first seen RESTORED.
    pub restored_at: Option<String>,
}

/// Whether a kept file's duration was compared with the one the API stated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DurationCheck {
    /// Compared (and within the tolerance, or the item is Corrupted for it).
    Checked,
    /// Not compared: why.
    NotChecked(String),
}

impl Done {
    /// An outcome without a file.
    pub fn no_file(outcome: Outcome, reason: impl Into<String>) -> Done {
        Done {
            outcome,
            reason: reason.into(),
            file: None,
            sha256: None,
            md5: None,
            sha1: None,
            bytes: None,
            content_type: None,
            downloaded_at: None,
            media_ms: None,
            stated_ms: None,
            stated_source: None,
        }
    }

    /// For an item that kept a file, whether its duration was compared with the stated one;
    /// `None` for an item without a file, or whose recording has no playing time.
    pub fn duration_check(&self) -> Option<DurationCheck> {
        self.file.as_ref()?;
        if self.media_ms.is_none()
            && self
                .stated_source
                .as_deref()
                .is_some_and(|s| s.ends_with(NO_PLAYING_TIME))
        {
            return None; // an email, a chat, a messaging thread: no duration to compare
        }
        Some(match (self.media_ms, self.stated_ms) {
            (Some(_), Some(_)) => DurationCheck::Checked,
            (None, _) => {
                DurationCheck::NotChecked("the file could not be read as audio or video".into())
            }
            (Some(_), None) => DurationCheck::NotChecked(
                self.stated_source
                    .clone()
                    .unwrap_or_else(|| "the API stated no duration".into()),
            ),
        })
    }
}

/// How a recording without a playing time (chat, email, messaging) ends its
/// `Stated_Duration_Source`: its duration check does not apply (`Duration_Checked` empty, not
/// counted among the files whose duration could be checked).
pub const NO_PLAYING_TIME: &str = "has no playing time";

/// What the job database records about the export, besides its items (the names are those
/// of its `meta` table, kept as they are so an older job database resumes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// The export's UUID.
    ExportId,
    /// The selection's canonical form (a re-run with another is refused).
    QueryCanonical,
    /// What the custody record's Query_String_Used holds.
    QueryUsed,
    /// SHA-256 of data/query.json, once written and sealed.
    QuerySha256,
    /// SHA-256 of data/manifest.csv, once sealed.
    ManifestSha256,
    /// The custody log's last line's SHA-256, when the package was sealed.
    CustodyLogHead,
    /// Set once the directory's names for the manifest's ids are recorded.
    DirectoryRecorded,
    /// `true` once every manifest conversation is under deletion protection (`--protect`).
    Protected,
    /// `true` once every restore `--restore-archived` needs has been asked for.
    RestoresRequested,
    /// Recordings listed but left out because an earlier bag of the chain exported them.
    ChainExcluded,
    /// `true` once the orphan recordings are listed (`--orphans`).
    OrphansListed,
    /// `true` once annotations and transcripts are collected.
    TranscriptsCollected,
    /// `true` once the package is sealed.
    Complete,
    /// Source and API host of a job database from before settings were recorded.
    Origin,
    /// Who and where, as the last run identified them (JSON: organization, OAuth client,
    /// host, binary, clock offset).
    Identity,
    /// What the analytics data lake said of each job's interval (JSON list of
    /// `source::DataAvailability`).
    AnalyticsAvailability,
    /// A setting that shapes the package, by its flag name (`--api-base`, …).
    Setting(&'static str),
}

impl Key {
    /// The key in the `meta` table.
    pub fn name(self) -> std::borrow::Cow<'static, str> {
        match self {
            Key::ExportId => "export_id".into(),
            Key::QueryCanonical => "query_canonical".into(),
            Key::QueryUsed => "query_used".into(),
            Key::QuerySha256 => "query_sha256".into(),
            Key::ManifestSha256 => "manifest_sha256".into(),
            Key::CustodyLogHead => "custody_log_head".into(),
            Key::DirectoryRecorded => "directory_recorded".into(),
            Key::Protected => "protected".into(),
            Key::RestoresRequested => "restores_requested".into(),
            Key::ChainExcluded => "chain_excluded".into(),
            Key::OrphansListed => "orphans_listed".into(),
            Key::TranscriptsCollected => "transcripts_collected".into(),
            Key::Complete => "complete".into(),
            Key::Origin => "origin".into(),
            Key::Identity => "identity".into(),
            Key::AnalyticsAvailability => "analytics_availability".into(),
            Key::Setting(flag) => format!("setting {flag}").into(),
        }
    }
}

/// The job database.
pub struct State {
    db: Mutex<Connection>,
}

impl State {
    /// Opens (creating if needed) the state of the export in `dir`.
    pub fn open(path: &Path) -> Result<State> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS items (
                 seq INTEGER PRIMARY KEY,
                 conversation_id TEXT NOT NULL,
                 recording_id TEXT NOT NULL,
                 listed_state TEXT NOT NULL,
                 outcome TEXT,
                 reason TEXT,
                 file TEXT,
                 sha256 TEXT,
                 bytes INTEGER,
                 content_type TEXT,
                 downloaded_at TEXT,
                 UNIQUE (conversation_id, recording_id));",
        )?;
        db.execute_batch(
            "CREATE INDEX IF NOT EXISTS items_file ON items (file);
             CREATE TABLE IF NOT EXISTS protected (
                 conversation_id TEXT PRIMARY KEY,
                 at TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS restores (
                 conversation_id TEXT NOT NULL,
                 recording_id TEXT NOT NULL,
                 archive_date TEXT NOT NULL,
                 requested_at TEXT,
                 restored_at TEXT,
                 PRIMARY KEY (conversation_id, recording_id));",
        )?;
        // Columns added after the first release of the table: add them to older job databases.
        for (col, ty) in [
            ("media_ms", "INTEGER"),
            ("stated_ms", "INTEGER"),
            ("stated_source", "TEXT"),
            ("md5", "TEXT"),
            ("sha1", "TEXT"),
        ] {
            let has: bool = db.query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('items') WHERE name = ?1",
                [col],
                |r| r.get(0),
            )?;
            if !has {
                db.execute_batch(&format!("ALTER TABLE items ADD COLUMN {col} {ty}"))?;
            }
        }
        Ok(State { db: Mutex::new(db) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().expect("state lock")
    }

    /// A recorded value.
    pub fn get(&self, key: Key) -> Result<Option<String>> {
        Ok(self
            .db()
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [key.name().as_ref()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Records a value.
    pub fn set(&self, key: Key, value: &str) -> Result<()> {
        self.db().execute("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2", [key.name().as_ref(), value])?;
        Ok(())
    }

    /// Stores the sealed manifest and marks it sealed, in one transaction.
    pub fn seal_manifest(&self, items: &[Item], manifest_sha256: &str) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute("DELETE FROM items", [])?;
        {
            let mut ins = tx.prepare("INSERT INTO items (seq, conversation_id, recording_id, listed_state) VALUES (?1, ?2, ?3, ?4)")?;
            for (i, it) in items.iter().enumerate() {
                ins.execute(params![
                    i as i64 + 1,
                    it.conversation_id,
                    it.recording_id,
                    it.listed_state
                ])?;
            }
        }
        tx.execute("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2", [Key::ManifestSha256.name().as_ref(), manifest_sha256])?;
        tx.commit()?;
        Ok(())
    }

    /// Records an item's outcome (durably, before returning).
    pub fn finish(&self, item: &Item, done: &Done) -> Result<()> {
        self.db().execute(
            "UPDATE items SET outcome = ?3, reason = ?4, file = ?5, sha256 = ?6, bytes = ?7, content_type = ?8, downloaded_at = ?9,
                 media_ms = ?10, stated_ms = ?11, stated_source = ?12, md5 = ?13, sha1 = ?14
             WHERE conversation_id = ?1 AND recording_id = ?2",
            params![
                item.conversation_id,
                item.recording_id,
                done.outcome.as_str(),
                done.reason,
                done.file,
                done.sha256,
                done.bytes.map(|b| b as i64),
                done.content_type,
                done.downloaded_at,
                done.media_ms.map(|b| b as i64),
                done.stated_ms.map(|b| b as i64),
                done.stated_source,
                done.md5,
                done.sha1
            ],
        )?;
        Ok(())
    }

    /// Every manifest item in order with its outcome, if it has one, one at a time (an export
    /// of 100,000 recordings is never held in memory whole).
    pub fn for_each(&self, mut f: impl FnMut(Item, Option<Done>) -> Result<()>) -> Result<()> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT conversation_id, recording_id, listed_state, outcome, reason, file, sha256, bytes, content_type, downloaded_at, media_ms, stated_ms, stated_source, md5, sha1 FROM items ORDER BY seq",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let item = Item {
                conversation_id: r.get(0)?,
                recording_id: r.get(1)?,
                listed_state: r.get(2)?,
            };
            let done = match r.get::<_, Option<String>>(3)? {
                None => None,
                Some(o) => Some(Done {
                    outcome: Outcome::parse(&o).unwrap_or(Outcome::Failed),
                    reason: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                    file: r.get(5)?,
                    sha256: r.get(6)?,
                    bytes: r.get::<_, Option<i64>>(7)?.map(|b| b as u64),
                    content_type: r.get(8)?,
                    downloaded_at: r.get(9)?,
                    media_ms: r.get::<_, Option<i64>>(10)?.map(|b| b as u64),
                    stated_ms: r.get::<_, Option<i64>>(11)?.map(|b| b as u64),
                    stated_source: r.get(12)?,
                    md5: r.get(13)?,
                    sha1: r.get(14)?,
                }),
            };
            f(item, done)?;
        }
        Ok(())
    }

    /// Records conversations as protected at `at` (those already recorded keep their time).
    pub fn protected(&self, conversation_ids: &[String], at: &str) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        for id in conversation_ids {
            tx.execute(
                "INSERT OR IGNORE INTO protected (conversation_id, at) VALUES (?1, ?2)",
                params![id, at],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The conversations recorded as protected, with when, sorted by id.
    pub fn protected_set(&self) -> Result<Vec<(String, String)>> {
        let db = self.db();
        let mut st =
            db.prepare("SELECT conversation_id, at FROM protected ORDER BY conversation_id")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records that a restore of `item` until `archive_date` is about to be asked for (the
    /// intent is durable before the request is sent, so a crash in between is noticed).
    pub fn restore_intent(&self, item: &Item, archive_date: &str) -> Result<()> {
        self.db().execute(
            "INSERT OR IGNORE INTO restores (conversation_id, recording_id, archive_date) VALUES (?1, ?2, ?3)",
            params![item.conversation_id, item.recording_id, archive_date],
        )?;
        Ok(())
    }

    /// Records that the restore of `item` was asked for (and accepted) at `at`.
    pub fn restore_requested(&self, item: &Item, at: &str) -> Result<()> {
        self.db().execute(
            "UPDATE restores SET requested_at = ?3 WHERE conversation_id = ?1 AND recording_id = ?2",
            params![item.conversation_id, item.recording_id, at],
        )?;
        Ok(())
    }

    /// Records that `item` was seen RESTORED at `at`.
    pub fn restore_done(&self, item: &Item, at: &str) -> Result<()> {
        self.db().execute(
            "UPDATE restores SET restored_at = ?3 WHERE conversation_id = ?1 AND recording_id = ?2",
            params![item.conversation_id, item.recording_id, at],
        )?;
        Ok(())
    }

    /// Every restore recorded, in manifest order.
    pub fn restores(&self) -> Result<Vec<RestoreRow>> {
        self.restores_where("1", [])
    }

    /// The restores asked for and not yet seen RESTORED, of items without an outcome.
    pub fn restores_pending(&self) -> Result<Vec<RestoreRow>> {
        self.restores_where(
            "r.requested_at IS NOT NULL AND r.restored_at IS NULL AND i.outcome IS NULL",
            [],
        )
    }

    /// The restore recorded for `item`, if any.
    pub fn restore_of(&self, item: &Item) -> Result<Option<RestoreRow>> {
        Ok(self
            .restores_where(
                "r.conversation_id = ?1 AND r.recording_id = ?2",
                [item.conversation_id.as_str(), item.recording_id.as_str()],
            )?
            .pop())
    }

    fn restores_where<P: rusqlite::Params>(&self, cond: &str, p: P) -> Result<Vec<RestoreRow>> {
        let db = self.db();
        let mut st = db.prepare(&format!(
            "SELECT r.conversation_id, r.recording_id, i.listed_state, r.archive_date, r.requested_at, r.restored_at
             FROM restores r JOIN items i USING (conversation_id, recording_id) WHERE {cond} ORDER BY i.seq"
        ))?;
        let rows = st.query_map(p, |r| {
            Ok(RestoreRow {
                item: Item {
                    conversation_id: r.get(0)?,
                    recording_id: r.get(1)?,
                    listed_state: r.get(2)?,
                },
                archive_date: r.get(3)?,
                requested_at: r.get(4)?,
                restored_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The SHA-256 and size recorded for a kept file (path under the bag root).
    /// (A value that is not a SHA-256 is no known hash: the file is hashed again.)
    pub fn file_hash(&self, file: &str) -> Result<Option<(crate::digest::Sha256, u64)>> {
        let db = self.db();
        let mut st = db.prepare_cached(
            "SELECT sha256, bytes FROM items WHERE file = ?1 AND sha256 IS NOT NULL AND bytes IS NOT NULL",
        )?;
        let mut rows = st.query([file])?;
        Ok(match rows.next()? {
            Some(r) => r
                .get::<_, String>(0)?
                .parse()
                .ok()
                .map(|h| (h, r.get::<_, i64>(1).map(|n| n as u64).unwrap_or(0))),
            None => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_and_outcomes_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("custos-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.sqlite");
        let items = vec![
            Item {
                conversation_id: "c1".into(),
                recording_id: "r1".into(),
                listed_state: "AVAILABLE".into(),
            },
            Item {
                conversation_id: "c1".into(),
                recording_id: "r2".into(),
                listed_state: "DELETED".into(),
            },
        ];
        {
            let s = State::open(&path).unwrap();
            s.set(Key::QuerySha256, "abc").unwrap();
            s.seal_manifest(&items, "def").unwrap();
            let done = Done::no_file(Outcome::Purged, "fileState DELETED");
            s.finish(&items[1], &done).unwrap();
        }
        let s = State::open(&path).unwrap();
        assert_eq!(s.get(Key::QuerySha256).unwrap().as_deref(), Some("abc"));
        assert_eq!(s.get(Key::ManifestSha256).unwrap().as_deref(), Some("def"));
        let mut rows = Vec::new();
        s.for_each(|it, d| {
            rows.push((it, d.map(|d| d.outcome)));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            rows,
            vec![
                (items[0].clone(), None),
                (items[1].clone(), Some(Outcome::Purged))
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
