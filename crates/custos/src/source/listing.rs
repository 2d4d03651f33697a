//! What a listing found, kept on disk as it is found rather than in memory: the conversations a
//! query matched and the manifest's rows to be, each with its listed media. A listing of a
//! million recordings is never held in memory whole (docs/scale.md, "Memory").
//!
//! It is a scratch SQLite file beside the job state (`.custos/listing.sqlite`), made anew by
//! each listing and removed once the manifest is sealed: nothing in it is evidence, and a run
//! that stops before the seal lists again. SQLite orders text bytewise (its `BINARY`
//! collation), the order of Rust's `String`, so its rows come out in manifest order.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};
use crate::model::Item;

/// Rows read from the file at a time.
const PAGE: usize = 4096;

/// Rows written between commits.
const BATCH: u32 = 4096;

/// The conversations and rows a listing found, on disk ([module docs](self)).
pub struct Listing {
    db: Connection,
    path: PathBuf,
    /// Writes since the last commit (a transaction is open while this is above zero).
    pending: u32,
}

impl Listing {
    /// A new, empty listing at `path`; one an earlier run left there is removed.
    pub fn create(path: &Path) -> Result<Listing> {
        if let Some(dir) = path.parent() {
            crate::durable::make_dirs(dir)?;
        }
        for p in [path.to_owned(), path.with_extension("sqlite-journal")] {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(&p, e));
                }
                _ => {}
            }
        }
        let db = Connection::open(path)?;
        // Scratch: a crash lists again, so nothing here needs to survive one.
        db.pragma_update(None, "journal_mode", "OFF")?;
        db.pragma_update(None, "synchronous", "OFF")?;
        db.pragma_update(None, "cache_size", -2048)?;
        db.execute_batch(
            "CREATE TABLE conversations (id TEXT PRIMARY KEY) WITHOUT ROWID;
             CREATE TABLE items (
                 conversation_id TEXT NOT NULL,
                 recording_id TEXT NOT NULL,
                 listed_state TEXT NOT NULL,
                 media TEXT,
                 PRIMARY KEY (conversation_id, recording_id)) WITHOUT ROWID;
             CREATE INDEX items_recording ON items (recording_id);",
        )?;
        Ok(Listing {
            db,
            path: path.to_owned(),
            pending: 0,
        })
    }

    /// Counts a write, and commits every [`BATCH`] writes.
    fn wrote(&mut self) -> Result<()> {
        self.pending += 1;
        if self.pending >= BATCH {
            self.commit()?;
        }
        Ok(())
    }

    /// Opens a transaction if none is open (writes are committed in batches).
    fn begin(&mut self) -> Result<()> {
        if self.pending == 0 && self.db.is_autocommit() {
            self.db.execute_batch("BEGIN")?;
        }
        Ok(())
    }

    /// Commits what was written. (Reads need not: a connection sees its own transaction's
    /// writes.)
    fn commit(&mut self) -> Result<()> {
        if !self.db.is_autocommit() {
            self.db.execute_batch("COMMIT")?;
        }
        self.pending = 0;
        Ok(())
    }

    /// Adds a matched conversation (once: a second time changes nothing).
    pub fn add_conversation(&mut self, id: &str) -> Result<()> {
        self.begin()?;
        self.db
            .prepare_cached("INSERT INTO conversations (id) VALUES (?1) ON CONFLICT DO NOTHING")?
            .execute([id])?;
        self.wrote()
    }

    /// Up to `limit` conversations after `after` (`None`: from the first), in byte order: the
    /// conversations read a page at a time.
    pub fn conversations_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        // Two statements, each a search of the key (with `?1 IS NULL OR`, SQLite scans from
        // the first row for every page).
        let rows = match after {
            None => self
                .db
                .prepare_cached("SELECT id FROM conversations ORDER BY id LIMIT ?1")?
                .query_map([limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?,
            Some(a) => self
                .db
                .prepare_cached("SELECT id FROM conversations WHERE id > ?1 ORDER BY id LIMIT ?2")?
                .query_map(params![a, limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?,
        };
        Ok(rows)
    }

    /// Adds a row with its listed media (`None`: audio, or not stated). A row listed twice (the
    /// same conversation and recording) is kept once, with the least listed state, as sorting
    /// and removing duplicates would keep it.
    pub fn push(&mut self, item: &Item, media: Option<&str>) -> Result<()> {
        self.begin()?;
        self.db
            .prepare_cached(
                "INSERT INTO items (conversation_id, recording_id, listed_state, media) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (conversation_id, recording_id) DO UPDATE SET
                     listed_state = min(listed_state, excluded.listed_state),
                     media = coalesce(excluded.media, media)",
            )?
            .execute(params![
                item.conversation_id,
                item.recording_id,
                item.listed_state,
                media
            ])?;
        self.wrote()
    }

    /// Whether a row has this recording id (in any conversation).
    pub fn has_recording(&self, recording_id: &str) -> Result<bool> {
        Ok(self
            .db
            .prepare_cached("SELECT 1 FROM items WHERE recording_id = ?1 LIMIT 1")?
            .query_row([recording_id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Whether this conversation's recording is a row.
    pub fn has(&self, conversation_id: &str, recording_id: &str) -> Result<bool> {
        Ok(self
            .db
            .prepare_cached("SELECT 1 FROM items WHERE conversation_id = ?1 AND recording_id = ?2")?
            .query_row([conversation_id, recording_id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// How many rows there are.
    pub fn len(&self) -> Result<u64> {
        Ok(self
            .db
            .query_row("SELECT count(*) FROM items", [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Up to `limit` rows after `after` (`None`: from the first), in manifest order, each with
    /// its listed media.
    fn page(&self, after: Option<&Item>, limit: usize) -> Result<Vec<(Item, Option<String>)>> {
        let row = |r: &rusqlite::Row<'_>| {
            Ok((
                Item {
                    conversation_id: r.get(0)?,
                    recording_id: r.get(1)?,
                    listed_state: r.get(2)?,
                },
                r.get(3)?,
            ))
        };
        let rows = match after {
            None => self
                .db
                .prepare_cached(
                    "SELECT conversation_id, recording_id, listed_state, media FROM items
                     ORDER BY conversation_id, recording_id LIMIT ?1",
                )?
                .query_map([limit as i64], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?,
            Some(a) => self
                .db
                .prepare_cached(
                    "SELECT conversation_id, recording_id, listed_state, media FROM items
                     WHERE (conversation_id, recording_id) > (?1, ?2)
                     ORDER BY conversation_id, recording_id LIMIT ?3",
                )?
                .query_map(
                    params![a.conversation_id, a.recording_id, limit as i64],
                    row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?,
        };
        Ok(rows)
    }

    /// Every row in manifest order (sorted, unique), with its listed media, a page at a time.
    pub fn rows(&self) -> Rows<'_> {
        Rows {
            listing: self,
            page: Vec::new().into_iter(),
            last: None,
            done: false,
        }
    }

    /// Every row in manifest order, without its media.
    pub fn items(&self) -> impl Iterator<Item = Result<Item>> + '_ {
        self.rows().map(|r| r.map(|(item, _)| item))
    }

    /// Removes the rows `keep` answers `false` for (given each row and its listed media), and
    /// answers how many it removed.
    pub fn retain(
        &mut self,
        mut keep: impl FnMut(&Item, Option<&str>) -> Result<bool>,
    ) -> Result<u64> {
        let mut gone = Vec::new();
        let mut removed = 0;
        let mut after: Option<Item> = None;
        loop {
            let page = self.page(after.as_ref(), PAGE)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (item, media) in &page {
                if !keep(item, media.as_deref())? {
                    gone.push((item.conversation_id.clone(), item.recording_id.clone()));
                }
            }
            if !gone.is_empty() {
                self.begin()?;
                {
                    let mut del = self.db.prepare_cached(
                        "DELETE FROM items WHERE conversation_id = ?1 AND recording_id = ?2",
                    )?;
                    for (c, r) in gone.drain(..) {
                        removed += del.execute([c, r])? as u64;
                    }
                }
                self.commit()?;
            }
        }
        Ok(removed)
    }
}

impl Drop for Listing {
    fn drop(&mut self) {
        // Scratch, and never evidence: it goes with the listing (a later run makes its own).
        let _ = std::fs::remove_file(&self.path);
    }
}

/// [`Listing::rows`]: the rows, read a page at a time.
pub struct Rows<'a> {
    listing: &'a Listing,
    page: std::vec::IntoIter<(Item, Option<String>)>,
    last: Option<Item>,
    done: bool,
}

impl Iterator for Rows<'_> {
    type Item = Result<(Item, Option<String>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.page.next() {
                self.last = Some(row.0.clone());
                return Some(Ok(row));
            }
            if self.done {
                return None;
            }
            match self.listing.page(self.last.as_ref(), PAGE) {
                Ok(p) => {
                    self.done = p.len() < PAGE;
                    self.page = p.into_iter();
                    if self.page.len() == 0 {
                        return None;
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(c: &str, r: &str, s: &str) -> Item {
        Item {
            conversation_id: c.into(),
            recording_id: r.into(),
            listed_state: s.into(),
        }
    }

    /// A directory of the test's own, removed when dropped.
    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dir(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("custos-listing-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        Dir(d)
    }

    fn scratch(name: &str) -> (Dir, Listing) {
        let d = dir(name);
        let l = Listing::create(&d.0.join("listing.sqlite")).unwrap();
        (d, l)
    }

    #[test]
    fn rows_come_out_sorted_and_unique_as_a_sorted_vec_would() {
        let (_d, mut l) = scratch("rows_come_out_sorted");
        // More than a page and a batch, pushed out of order, with duplicates and non-ASCII ids
        // (byte order: 'Z' < 'a' < 'é').
        let mut want = Vec::new();
        for n in (0..10_000u32).rev() {
            let c = ["a", "Z", "é"][n as usize % 3];
            let it = item(&format!("{c}{}", n % 97), &format!("r{n}"), "AVAILABLE");
            l.push(&it, None).unwrap();
            if n % 5 == 0 {
                l.push(
                    &item(&it.conversation_id, &it.recording_id, "ARCHIVED"),
                    Some("chat"),
                )
                .unwrap();
                want.push(item(&it.conversation_id, &it.recording_id, "ARCHIVED"));
            } else {
                want.push(it);
            }
        }
        want.sort();
        let got: Vec<Item> = l.items().collect::<Result<_>>().unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "rows differ from the sorted vector");
        assert_eq!(l.len().unwrap(), 10_000);
    }

    #[test]
    fn retain_removes_what_it_is_told_and_keeps_the_order() {
        let (_d, mut l) = scratch("retain_removes_what_");
        for n in 0..9_000u32 {
            let media = (n % 3 == 0).then_some("screen");
            l.push(&item(&format!("c{n:05}"), "r", "AVAILABLE"), media)
                .unwrap();
        }
        let removed = l.retain(|_, m| Ok(m.is_none())).unwrap();
        assert_eq!(removed, 3_000);
        let got: Vec<Item> = l.items().collect::<Result<_>>().unwrap();
        assert_eq!(got.len(), 6_000);
        assert!(got.windows(2).all(|w| w[0] < w[1]));
        assert!(
            got.iter()
                .all(|i| i.conversation_id[1..].parse::<u32>().unwrap() % 3 != 0)
        );
    }

    #[test]
    fn conversations_are_kept_once_and_read_in_pages() {
        let (_d, mut l) = scratch("conversations_are_ke");
        for n in 0..5_000u32 {
            l.add_conversation(&format!("c{:04}", n % 2_500)).unwrap();
        }
        l.add_conversation("").unwrap();
        let (mut all, mut after) = (Vec::new(), None);
        loop {
            let page = l.conversations_after(after.as_deref(), 1_000).unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.clone());
            all.extend(page);
        }
        // An empty id is a conversation too (it is listed, and its failure recorded).
        assert_eq!(all.len(), 2_501);
        assert_eq!(all[..2], ["", "c0000"]);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_new_listing_replaces_what_an_earlier_run_left() {
        let d = dir("replaced");
        let path = d.0.join(".custos/listing.sqlite");
        let mut l = Listing::create(&path).unwrap();
        l.push(&item("c", "r", "AVAILABLE"), None).unwrap();
        assert!(l.has("c", "r").unwrap() && l.has_recording("r").unwrap());
        std::mem::forget(l);
        let again = Listing::create(&path).unwrap();
        assert!(again.is_empty().unwrap());
        drop(again);
        assert!(!path.exists(), "the scratch file goes with the listing");
    }
}
