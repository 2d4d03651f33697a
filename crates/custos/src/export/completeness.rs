//! `data/completeness.json`: what the query matched that the export does not hold, and why —
//! conversations without any recording (with what their analytics record says of recording),
//! recordings per listed fileState and per media type, and how each manifest item ended. Read
//! from the package's own files and the job state when the export is sealed, so a reviewer can
//! recount every number from the bag.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::context::Ctx;
use super::json_list::{self, ScratchList};
use crate::durable::write_durably;
use crate::error::{Error, Result};

/// The file, in the payload.
pub const COMPLETENESS_FILE: &str = "data/completeness.json";

/// The counts a run prints (the file holds the lists too).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Completeness {
    /// Conversations the query matched (genesys `--query`: their analytics records are kept);
    /// `None` where the source names recordings, not conversations.
    pub conversations_matched: Option<u64>,
    /// Of those, conversations without any recording.
    pub conversations_without_recordings: Option<u64>,
    /// Of those, the ones whose analytics record flags a session as recorded: a recording the
    /// listing did not show.
    pub flagged_recorded_but_unlisted: Option<u64>,
    /// Recordings listed (the manifest's items).
    pub recordings_listed: u64,
    /// Listed recordings per fileState when listed.
    pub by_file_state: BTreeMap<String, u64>,
    /// Orphan recordings (no known conversation) created within the query's interval
    /// (`--orphans`; `None` without it).
    pub orphans_in_interval: Option<u64>,
    /// Of those, the ones `--collect-orphans` added to what the query found (manifest items,
    /// or left out by `--media`).
    pub orphans_added: u64,
    /// Recordings of media types `--media` left out, per type (data/media_excluded.csv).
    pub media_not_taken: BTreeMap<String, u64>,
    /// What the analytics data lake said of each job's interval (empty: no job was needed).
    pub analytics_data_availability: Vec<crate::source::DataAvailability>,
}

impl Completeness {
    /// Whether an analytics job's interval ended past what the data lake holds in full (or it
    /// did not say): the query may have matched fewer conversations than exist.
    pub fn analytics_short(&self) -> bool {
        self.analytics_data_availability
            .iter()
            .any(|a| !a.covers_interval)
    }
}

/// The recordings `--media` left out ([`super::manifest::MEDIA_EXCLUDED_FILE`]): their count
/// per media type, and how many of them are orphans (no conversation).
fn media_excluded(root: &std::path::Path) -> Result<(BTreeMap<String, u64>, u64)> {
    let (mut counts, mut orphans) = (BTreeMap::new(), 0u64);
    let Some(rows) = media_excluded_rows(root)? else {
        return Ok((counts, orphans));
    };
    for row in rows {
        let row = row?;
        orphans += u64::from(row.get(0).unwrap_or("").is_empty());
        *counts
            .entry(row.get(2).unwrap_or("").to_owned())
            .or_default() += 1;
    }
    Ok((counts, orphans))
}

/// The rows of [`super::manifest::MEDIA_EXCLUDED_FILE`] (`None`: `--media` was not given), read
/// a row at a time. Written by this export's manifest step in manifest order: sorted by
/// conversation, every row well formed.
fn media_excluded_rows(
    root: &std::path::Path,
) -> Result<Option<impl Iterator<Item = Result<csv::StringRecord>>>> {
    let path = root.join(super::manifest::MEDIA_EXCLUDED_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
    Ok(Some(
        csv::Reader::from_reader(std::io::BufReader::new(file))
            .into_records()
            .map(move |r| r.map_err(|e| Error::io(&path, std::io::Error::other(e)))),
    ))
}

/// The conversations of the recordings `--media` left out, read from
/// [`super::manifest::MEDIA_EXCLUDED_FILE`] as they are asked for (never held: with `--media
/// audio`, every conversation with a screen recording is one). The file is in manifest order, so
/// a conversation's rows are together and the conversations sorted.
struct ExcludedConversations<I> {
    rows: Option<I>,
    /// The cell last answered by [`ExcludedConversations::next`].
    last: Option<String>,
    /// The conversation [`ExcludedConversations::contains`] read up to.
    ahead: Option<String>,
}

impl<I: Iterator<Item = Result<csv::StringRecord>>> ExcludedConversations<I> {
    fn new(rows: Option<I>) -> ExcludedConversations<I> {
        ExcludedConversations {
            rows,
            last: None,
            ahead: None,
        }
    }

    /// The next conversation's cell as written, each once (orphans, with none, are skipped).
    fn next(&mut self) -> Result<Option<String>> {
        let Some(rows) = self.rows.as_mut() else {
            return Ok(None);
        };
        for row in rows {
            let row = row?;
            let c = row.get(0).unwrap_or("");
            if c.is_empty() || self.last.as_deref() == Some(c) {
                continue;
            }
            self.last = Some(c.to_owned());
            return Ok(self.last.clone());
        }
        Ok(None)
    }

    /// Whether `cid` (a safe id: one a conversation's record is named by) is one of them;
    /// asked in ascending order of `cid`. A cell that is no safe id is passed over (its
    /// conversation has no record), as is one out of order: the file is sorted by the ids as
    /// listed, and [`crate::custody::csv_cell`] prefixes a quote to one that begins like a
    /// formula (undone here for a safe id), or escapes a control character.
    fn contains(&mut self, cid: &str) -> Result<bool> {
        while self.ahead.as_deref().is_none_or(|a| a < cid) {
            let Some(cell) = self.next()? else {
                return Ok(false);
            };
            let id = match cell.strip_prefix('\'') {
                Some(rest) if rest.starts_with('-') => rest,
                _ => cell.as_str(),
            };
            if !crate::model::safe_id(id) || self.ahead.as_deref().is_some_and(|a| id <= a) {
                continue;
            }
            self.ahead = Some(id.to_owned());
        }
        Ok(self.ahead.as_deref() == Some(cid))
    }
}

/// The orphan recordings listed (`--orphans`), those created within the query's interval,
/// and whether they were collected (`--collect-orphans`: each is a manifest item then).
fn orphans(ctx: &Ctx<'_>) -> Result<Option<Value>> {
    let Some(listed) = super::orphans::listed(ctx)? else {
        return Ok(None);
    };
    let inside: Vec<Value> = listed
        .in_interval
        .iter()
        .map(|o| {
            json!({"id": o["id"], "createdTime": o["createdTime"], "mediaType": o["mediaType"],
                   "orphanStatus": o["orphanStatus"], "mediaSizeBytes": o["mediaSizeBytes"], "fileState": o["fileState"]})
        })
        .collect();
    Ok(Some(json!({
        "source": "GET /api/v2/orphanrecordings?hasConversation=false, pages as received in data/metadata/orphans/",
        "listed": listed.total,
        "cappedByGenesys": listed.total >= 500,
        "inIntervalCount": inside.len(),
        "collected": ctx.cfg.collect_orphans,
        "inInterval": inside,
    })))
}

/// Whether an analytics conversation record flags any session as recorded.
fn flagged_recorded(c: &Value) -> u64 {
    c["participants"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["sessions"].as_array().into_iter().flatten())
        .filter(|s| s["recording"] == true)
        .count() as u64
}

/// Conversations asked of the job state at a time.
const CONVERSATIONS_AT_ONCE: usize = 1000;

/// Names of the conversations' records held at once while they are read in order.
const HELD_NAMES: usize = 32_768;

/// Writes the file and returns its counts.
pub(super) fn write(ctx: &Ctx<'_>) -> Result<Completeness> {
    let root = &ctx.root;
    let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_media: BTreeMap<String, u64> = BTreeMap::new();
    // Conversations with a manifest item, counted as the items pass in manifest order (sorted
    // by conversation): a job's conversations are never held in memory.
    let (mut with_items, mut last_conversation) = (0u64, None::<String>);
    let (mut listed, mut orphan_items) = (0u64, 0u64);
    ctx.state.for_each(|it, _| {
        listed += 1;
        orphan_items += u64::from(ctx.cfg.collect_orphans && it.is_orphan());
        *by_state.entry(it.listed_state.clone()).or_default() += 1;
        let meta = root.join(format!("data/metadata/{}.json", it.recording_id));
        let media = crate::model::safe_id(&it.recording_id)
            .then(|| std::fs::read(&meta).ok())
            .flatten()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["media"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "(not stated)".into());
        *by_media.entry(media).or_default() += 1;
        if !it.is_orphan() && last_conversation.as_ref() != Some(&it.conversation_id) {
            with_items += 1;
            last_conversation = Some(it.conversation_id);
        }
        Ok(())
    })?;
    let (not_taken, excluded_orphans) = media_excluded(root)?;
    // A conversation whose every recording --media left out had recordings too: asked of the
    // job state a batch at a time.
    let mut excluded = ExcludedConversations::new(media_excluded_rows(root)?);
    let mut batch = Vec::with_capacity(CONVERSATIONS_AT_ONCE);
    loop {
        let next = excluded.next()?;
        let end = next.is_none();
        batch.extend(next);
        if batch.len() >= CONVERSATIONS_AT_ONCE || (end && !batch.is_empty()) {
            with_items += (batch.len() - ctx.state.conversations_with_items(&batch)?.len()) as u64;
            batch.clear();
        }
        if end {
            break;
        }
    }
    // Read again, alongside the conversations' records (both in order).
    let mut excluded = ExcludedConversations::new(media_excluded_rows(root)?);
    // The analytics record of every conversation the query matched (genesys --query only):
    // counted by name, a batch of names at a time in order; only those without a recording
    // are read, one at a time (an export of a million conversations never holds their names or
    // records in memory).
    let conv_dir = root.join("data/metadata/conversations");
    let mut matched: Option<u64> = None;
    // Those without a recording, counted (and how many of them flagged as recorded); each one's
    // entry goes to a scratch file as it is read, and is copied into the file at the end.
    let mut without: Option<(ScratchList, u64)> = None;
    if conv_dir.is_dir() {
        let mut count = 0u64;
        let mut n_flagged = 0u64;
        let mut list = ScratchList::create(&root.join(WITHOUT_SCRATCH), 1)?;
        let mut batch: Vec<(String, std::ffi::OsString)> = Vec::new();
        let mut flush = |batch: &mut Vec<(String, std::ffi::OsString)>| -> Result<()> {
            let ids: Vec<String> = batch.iter().map(|(cid, _)| cid.clone()).collect();
            let with = ctx.state.conversations_with_items(&ids)?;
            for (cid, name) in batch.drain(..) {
                if with.contains(&cid) || excluded.contains(&cid)? {
                    continue;
                }
                let p = conv_dir.join(name);
                let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
                let c: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let flagged = flagged_recorded(&c);
                let entry = json!({"conversationId": cid, "conversationStart": c["conversationStart"],
                          "originatingDirection": c["originatingDirection"],
                          "sessionsFlaggedRecording": flagged});
                list.push(&entry)?;
                n_flagged += u64::from(flagged > 0);
            }
            Ok(())
        };
        let mut name = |e: &std::fs::DirEntry| {
            let n = e.file_name();
            Ok(std::path::Path::new(&n)
                .file_stem()
                .and_then(|s| s.to_str())
                .map(|cid| (cid.to_owned(), n.clone())))
        };
        crate::package::in_key_order(&conv_dir, HELD_NAMES, &mut name, &mut |k| {
            count += 1;
            batch.push(k);
            if batch.len() >= CONVERSATIONS_AT_ONCE {
                flush(&mut batch)?;
            }
            Ok(())
        })?;
        flush(&mut batch)?;
        matched = Some(count);
        without = Some((list, n_flagged));
    }
    let flagged = without.as_ref().map(|(_, f)| *f);
    let counts = Completeness {
        conversations_matched: matched,
        conversations_without_recordings: without.as_ref().map(|(l, _)| l.len()),
        flagged_recorded_but_unlisted: flagged,
        recordings_listed: listed,
        by_file_state: by_state,
        orphans_in_interval: None,
        orphans_added: orphan_items
            + if ctx.cfg.collect_orphans {
                excluded_orphans
            } else {
                0
            },
        media_not_taken: not_taken.clone(),
        analytics_data_availability: ctx
            .state
            .get(crate::state::Key::AnalyticsAvailability)?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default(),
    };
    let orphans = orphans(ctx)?;
    let mut counts = counts;
    counts.orphans_in_interval = orphans.as_ref().and_then(|o| o["inIntervalCount"].as_u64());
    let doc = json!({
        "conversationsMatched": counts.conversations_matched,
        "conversationsMatchedSource": if matched.is_some() { "the analytics conversation records kept in data/metadata/conversations/ (every conversation the query matched)" } else { "not known: the selection names recordings, not conversations" },
        "conversationsWithRecordings": matched.map(|_| with_items),
        // Written in below, from the scratch file.
        "conversationsWithoutRecordings": without.as_ref().map(|_| json_list::MARK),
        "flaggedRecordedButUnlisted": flagged,
        "recordingsListed": listed,
        "recordingsByListedFileState": counts.by_file_state,
        "recordingsByMedia": by_media,
        "otherMediaNotTaken": not_taken.values().sum::<u64>(),
        "otherMediaNotTakenByMedia": not_taken,
        "otherMediaNote": if not_taken.is_empty() {
            "every listed recording is a manifest item, whatever its media: none is left out".to_owned()
        } else {
            format!("--media left out the recordings listed in {}; every other listed recording is a manifest item", super::manifest::MEDIA_EXCLUDED_FILE)
        },
        "orphanRecordings": orphans,
        "analyticsDataAvailability": counts.analytics_data_availability,
        "analyticsDataAvailabilityNote": if counts.analytics_data_availability.is_empty() {
            "every window of the interval was read through the synchronous analytics query (no data-lake job)"
        } else if counts.analytics_short() {
            "an analytics job's interval ends after the data lake's dataAvailabilityDate (or the date is unknown): conversations after that date may be missing from this export; export again once it has passed the interval's end"
        } else {
            "the analytics data lake was complete up to the end of every job's interval"
        },
    });
    let path = root.join(COMPLETENESS_FILE);
    match without {
        None => {
            let text = serde_json::to_string_pretty(&doc).expect("json");
            write_durably(&path, format!("{text}\n").as_bytes())?;
        }
        Some((list, _)) => json_list::write_document(&path, &doc, list)?,
    }
    Ok(counts)
}

/// Where the entries of the conversations without a recording wait while the completeness file
/// is written (not payload: removed once the file is).
const WITHOUT_SCRATCH: &str = ".custos/completeness-without.tmp";

/// The counts a sealed export recorded in `data/summary.json` (default if it has none: an
/// export sealed before they were).
pub(super) fn recorded(root: &std::path::Path) -> Completeness {
    /// The summary's one key read here: the others (a list of a million files, perhaps) are
    /// parsed past, never held.
    #[derive(Deserialize)]
    struct Summary {
        #[serde(default)]
        completeness: Completeness,
    }
    std::fs::File::open(root.join("data/summary.json"))
        .ok()
        .and_then(|f| serde_json::from_reader::<_, Summary>(std::io::BufReader::new(f)).ok())
        .map(|s| s.completeness)
        .unwrap_or_default()
}

#[cfg(test)]
mod excluded_tests {
    use super::*;

    type Rows = std::vec::IntoIter<Result<csv::StringRecord>>;

    /// Rows of media_excluded.csv naming `conversations` (one recording each).
    fn rows(conversations: &[&str]) -> Option<Rows> {
        let v: Vec<Result<csv::StringRecord>> = conversations
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Ok(csv::StringRecord::from(vec![
                    (*c).to_owned(),
                    format!("r{i}"),
                    "screen".to_owned(),
                    "AVAILABLE".to_owned(),
                ]))
            })
            .collect();
        Some(v.into_iter())
    }

    fn all(mut c: ExcludedConversations<Rows>) -> Vec<String> {
        let mut seen = Vec::new();
        while let Some(id) = c.next().unwrap() {
            seen.push(id);
        }
        seen
    }

    #[test]
    fn each_excluded_conversation_comes_once_and_orphans_are_skipped() {
        let c = ExcludedConversations::new(rows(&["", "", "a", "a", "b", "é", "é"]));
        assert_eq!(all(c), ["a", "b", "é"]);
    }

    #[test]
    fn membership_is_answered_walking_forward() {
        let mut c = ExcludedConversations::new(rows(&["b", "b", "d", "f"]));
        let asked: Vec<bool> = ["a", "b", "c", "d", "e", "g"]
            .iter()
            .map(|id| c.contains(id).unwrap())
            .collect();
        assert_eq!(asked, [false, true, false, true, false, false]);
    }

    #[test]
    fn a_quoted_formula_cell_is_read_as_its_safe_id() {
        // Listed as "-x" and "a": sorted, then written through csv_cell.
        let mut c = ExcludedConversations::new(rows(&["'-x", "a"]));
        assert!(c.contains("-x").unwrap());
        assert!(c.contains("a").unwrap());
    }

    #[test]
    fn cells_csv_cell_changed_out_of_order_are_counted_and_not_mistaken() {
        // Listed "'z" (no safe id) then "-a", written as "'z" and "'-a", which sorts before
        // it: the count still sees each once, and membership neither errs nor misses "-a".
        let cells = ["'z", "'-a", "b\\u{7}"];
        let c = ExcludedConversations::new(rows(&cells));
        assert_eq!(all(c), cells);
        let mut c = ExcludedConversations::new(rows(&cells));
        assert!(c.contains("-a").unwrap());
        assert!(!c.contains("b").unwrap());
    }

    #[test]
    fn no_file_names_no_conversation() {
        let mut c = ExcludedConversations::<Rows>::new(None);
        assert_eq!(c.next().unwrap(), None);
        assert!(!c.contains("a").unwrap());
    }
}
