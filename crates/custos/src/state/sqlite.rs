//! The job state in one SQLite file, `<out>/.custos/state.sqlite` (the default): WAL mode with
//! `synchronous=FULL`, so an outcome recorded here survives a crash or SIGKILL.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Done, JobStore, Key, RestoreRow};
use crate::error::Result;
use crate::model::{Item, Outcome};

/// The job database in one SQLite file (the default).
pub(super) struct Sqlite {
    db: Mutex<Connection>,
}

impl Sqlite {
    /// Opens (creating if needed) the state of the export in `dir`.
    pub(super) fn open(path: &Path) -> Result<Sqlite> {
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
        Ok(Sqlite { db: Mutex::new(db) })
    }

    /// Opens an existing job database to read it, beside a process that may be writing it.
    pub(super) fn open_read_only(path: &Path) -> Result<Sqlite> {
        let db = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        Ok(Sqlite { db: Mutex::new(db) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().expect("state lock")
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
}

impl JobStore for Sqlite {
    fn get(&self, key: Key) -> Result<Option<String>> {
        Ok(self
            .db()
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [key.name().as_ref()],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn set(&self, key: Key, value: &str) -> Result<()> {
        self.db().execute("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2", [key.name().as_ref(), value])?;
        Ok(())
    }

    fn seal_manifest(
        &self,
        items: &mut dyn Iterator<Item = Result<Item>>,
        manifest_sha256: &str,
    ) -> Result<()> {
        let mut db = self.db();
        // Dropped without a commit (an item that cannot be read), it rolls back.
        let tx = db.transaction()?;
        tx.execute("DELETE FROM items", [])?;
        {
            let mut ins = tx.prepare("INSERT INTO items (seq, conversation_id, recording_id, listed_state) VALUES (?1, ?2, ?3, ?4)")?;
            for (i, it) in items.enumerate() {
                let it = it?;
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

    fn finish(&self, item: &Item, done: &Done) -> Result<()> {
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

    fn for_each(&self, f: &mut dyn FnMut(Item, Option<Done>) -> Result<()>) -> Result<()> {
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

    fn protected(&self, conversation_ids: &[String], at: &str) -> Result<()> {
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

    fn protected_set(&self) -> Result<Vec<(String, String)>> {
        let db = self.db();
        let mut st =
            db.prepare("SELECT conversation_id, at FROM protected ORDER BY conversation_id")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn restore_intent(&self, item: &Item, archive_date: &str) -> Result<()> {
        self.db().execute(
            "INSERT OR IGNORE INTO restores (conversation_id, recording_id, archive_date) VALUES (?1, ?2, ?3)",
            params![item.conversation_id, item.recording_id, archive_date],
        )?;
        Ok(())
    }

    fn restore_requested(&self, item: &Item, at: &str) -> Result<()> {
        self.db().execute(
            "UPDATE restores SET requested_at = ?3 WHERE conversation_id = ?1 AND recording_id = ?2",
            params![item.conversation_id, item.recording_id, at],
        )?;
        Ok(())
    }

    fn restore_done(&self, item: &Item, at: &str) -> Result<()> {
        self.db().execute(
            "UPDATE restores SET restored_at = ?3 WHERE conversation_id = ?1 AND recording_id = ?2",
            params![item.conversation_id, item.recording_id, at],
        )?;
        Ok(())
    }

    fn restores(&self) -> Result<Vec<RestoreRow>> {
        self.restores_where("1", [])
    }

    fn restores_pending(&self) -> Result<Vec<RestoreRow>> {
        self.restores_where(
            "r.requested_at IS NOT NULL AND r.restored_at IS NULL AND i.outcome IS NULL",
            [],
        )
    }

    fn restore_of(&self, item: &Item) -> Result<Option<RestoreRow>> {
        Ok(self
            .restores_where(
                "r.conversation_id = ?1 AND r.recording_id = ?2",
                [item.conversation_id.as_str(), item.recording_id.as_str()],
            )?
            .pop())
    }

    fn conversations_with_items(
        &self,
        conversation_ids: &[String],
    ) -> Result<std::collections::BTreeSet<String>> {
        let db = self.db();
        // The (conversation_id, recording_id) index answers each.
        let mut st = db.prepare_cached("SELECT 1 FROM items WHERE conversation_id = ?1 LIMIT 1")?;
        let mut with = std::collections::BTreeSet::new();
        for id in conversation_ids {
            if st.exists([id])? {
                with.insert(id.clone());
            }
        }
        Ok(with)
    }

    fn file_hash(&self, file: &str) -> Result<Option<(crate::digest::Sha256, u64)>> {
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

    fn progress(&self, since: &str) -> Result<super::JobProgress> {
        let db = self.db();
        let mut p = super::JobProgress::default();
        let (items, last, recent): (i64, Option<String>, i64) = db.query_row(
            "SELECT COUNT(*), MAX(downloaded_at), COALESCE(SUM(downloaded_at >= ?1), 0) FROM items",
            [since],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        p.items = items as u64;
        p.last_download = last;
        p.downloads_since = recent as u64;
        let mut st = db.prepare(
            "SELECT outcome, COUNT(*) FROM items WHERE outcome IS NOT NULL GROUP BY outcome",
        )?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (o, n) = row?;
            p.outcomes.insert(o, n as u64);
        }
        Ok(p)
    }

    fn unfinished(&self, after: u64, limit: u64) -> Result<Vec<(u64, Item)>> {
        let db = self.db();
        let mut st = db.prepare_cached(
            "SELECT seq, conversation_id, recording_id, listed_state FROM items
             WHERE seq > ?1 AND outcome IS NULL ORDER BY seq LIMIT ?2",
        )?;
        let rows = st.query_map(params![after as i64, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                Item {
                    conversation_id: r.get(1)?,
                    recording_id: r.get(2)?,
                    listed_state: r.get(3)?,
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
