//! `data/completeness.json`: what the query matched that the export does not hold, and why —
//! conversations without any recording (with what their analytics record says of recording),
//! recordings per listed fileState and per media type, and how each manifest item ended. Read
//! from the package's own files and the job state when the export is sealed, so a reviewer can
//! recount every number from the bag.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::context::Ctx;
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
/// per media type, their conversations, and how many of them are orphans (no conversation).
fn media_excluded(
    root: &std::path::Path,
) -> Result<(BTreeMap<String, u64>, BTreeSet<String>, u64)> {
    let path = root.join(super::manifest::MEDIA_EXCLUDED_FILE);
    let (mut counts, mut convs, mut orphans) = (BTreeMap::new(), BTreeSet::new(), 0u64);
    if !path.exists() {
        return Ok((counts, convs, orphans));
    }
    // Written by this export's manifest step: every row is well formed. Read a row at a time.
    let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
    for row in csv::Reader::from_reader(std::io::BufReader::new(file))
        .records()
        .flatten()
    {
        match row.get(0).unwrap_or("") {
            "" => orphans += 1,
            c => {
                convs.insert(c.to_owned());
            }
        }
        *counts
            .entry(row.get(2).unwrap_or("").to_owned())
            .or_default() += 1;
    }
    Ok((counts, convs, orphans))
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
    let (not_taken, excluded_convs, excluded_orphans) = media_excluded(root)?;
    // A conversation whose every recording --media left out had recordings too.
    let excluded_convs: Vec<String> = excluded_convs.into_iter().collect();
    for batch in excluded_convs.chunks(CONVERSATIONS_AT_ONCE) {
        with_items += (batch.len() - ctx.state.conversations_with_items(batch)?.len()) as u64;
    }
    // The analytics record of every conversation the query matched (genesys --query only):
    // counted by name, a batch of names at a time in order; only those without a recording
    // are read, one at a time (an export of a million conversations never holds their names or
    // records in memory).
    let conv_dir = root.join("data/metadata/conversations");
    let mut matched: Option<u64> = None;
    // Those without a recording, counted (and how many of them flagged as recorded); each one's
    // entry goes to a scratch file as it is read, and is copied into the file at the end.
    let mut without: Option<(u64, u64)> = None;
    let scratch = root.join(WITHOUT_SCRATCH);
    if conv_dir.is_dir() {
        let mut count = 0u64;
        let (mut n_without, mut n_flagged) = (0u64, 0u64);
        let mut w = std::io::BufWriter::new(
            crate::durable::create_file(&scratch).map_err(|e| Error::io(&scratch, e))?,
        );
        let mut batch: Vec<(String, std::ffi::OsString)> = Vec::new();
        let mut flush = |batch: &mut Vec<(String, std::ffi::OsString)>| -> Result<()> {
            let ids: Vec<String> = batch.iter().map(|(cid, _)| cid.clone()).collect();
            let with = ctx.state.conversations_with_items(&ids)?;
            for (cid, name) in batch.drain(..) {
                if with.contains(&cid) || excluded_convs.binary_search(&cid).is_ok() {
                    continue;
                }
                let p = conv_dir.join(name);
                let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
                let c: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let flagged = flagged_recorded(&c);
                let entry = json!({"conversationId": cid, "conversationStart": c["conversationStart"],
                          "originatingDirection": c["originatingDirection"],
                          "sessionsFlaggedRecording": flagged});
                write_element(&mut w, n_without == 0, &entry)
                    .map_err(|e| Error::io(&scratch, e))?;
                n_without += 1;
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
        std::io::Write::flush(&mut w).map_err(|e| Error::io(&scratch, e))?;
        matched = Some(count);
        without = Some((n_without, n_flagged));
    }
    let flagged = without.map(|(_, f)| f);
    let counts = Completeness {
        conversations_matched: matched,
        conversations_without_recordings: without.map(|(n, _)| n),
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
        // Streamed in below, from the scratch file.
        "conversationsWithoutRecordings": without.map(|_| WITHOUT_MARK),
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
    let text = serde_json::to_string_pretty(&doc).expect("json");
    let path = root.join(COMPLETENESS_FILE);
    match without {
        None => write_durably(&path, format!("{text}\n").as_bytes())?,
        Some((n, _)) => crate::durable::write_durably_streamed(&path, &mut |out| {
            with_elements(&text, n, &mut std::fs::File::open(&scratch)?, out)
        })?,
    }
    if without.is_some() {
        std::fs::remove_file(&scratch).map_err(|e| Error::io(&scratch, e))?;
    }
    Ok(counts)
}

/// Where the entries of the conversations without a recording wait while the completeness file
/// is written (not payload: removed once the file is).
const WITHOUT_SCRATCH: &str = ".custos/completeness-without.tmp";

/// Stands for the list of conversations without a recording in the document until it is
/// written (a string no value of the document holds: it begins with a NUL).
const WITHOUT_MARK: &str = "\u{0}conversations without recordings";

/// Writes `text` (a pretty-printed document holding [`WITHOUT_MARK`] as the value of a top-level
/// key) to `out` with that value replaced by the array of the `n` elements `elements` holds (as
/// [`write_element`] wrote them), and a final line feed: what `serde_json` would print for the
/// whole document, never held whole.
fn with_elements(
    text: &str,
    n: u64,
    elements: &mut dyn std::io::Read,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let mark = serde_json::to_string(WITHOUT_MARK).expect("json");
    let (before, after) = text
        .split_once(&mark)
        .ok_or_else(|| std::io::Error::other("the list's mark is not in the document"))?;
    out.write_all(before.as_bytes())?;
    if n == 0 {
        out.write_all(b"[]")?;
    } else {
        out.write_all(b"[\n")?;
        std::io::copy(elements, out)?;
        out.write_all(b"\n  ]")?;
    }
    out.write_all(after.as_bytes())?;
    out.write_all(b"\n")
}

/// Writes `entry` as an element of a pretty-printed array that is the value of a top-level key
/// (`serde_json`'s layout: four spaces before each line), after a separator unless `first`.
fn write_element(out: &mut dyn std::io::Write, first: bool, entry: &Value) -> std::io::Result<()> {
    if !first {
        out.write_all(b",\n")?;
    }
    let text = serde_json::to_string_pretty(entry).expect("json");
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.write_all(b"\n")?;
        }
        out.write_all(b"    ")?;
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// The counts a sealed export recorded in `data/summary.json` (default if it has none: an
/// export sealed before they were).
pub(super) fn recorded(root: &std::path::Path) -> Completeness {
    std::fs::read(root.join("data/summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| serde_json::from_value(v["completeness"].clone()).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod streamed_tests {
    use super::*;

    /// The document as streamed, for `entries`.
    fn streamed(entries: &[Value]) -> String {
        let mut elements = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            write_element(&mut elements, i == 0, e).unwrap();
        }
        let doc =
            json!({"a": 1, "conversationsWithoutRecordings": WITHOUT_MARK, "z": {"b": [1, 2]}});
        let text = serde_json::to_string_pretty(&doc).unwrap();
        let mut out = Vec::new();
        with_elements(
            &text,
            entries.len() as u64,
            &mut elements.as_slice(),
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The document as `serde_json` prints it whole.
    fn whole(entries: &[Value]) -> String {
        let doc = json!({"a": 1, "conversationsWithoutRecordings": entries, "z": {"b": [1, 2]}});
        format!("{}\n", serde_json::to_string_pretty(&doc).unwrap())
    }

    #[test]
    fn the_streamed_list_is_what_serde_json_prints_whole() {
        let entry = |n: u64| {
            json!({"conversationId": format!("c{n}"), "conversationStart": if n.is_multiple_of(2) { json!("2023-01-01T00:00:00Z") } else { json!(null) },
                   "originatingDirection": {"nested": ["x\ny", n]}, "sessionsFlaggedRecording": n})
        };
        for n in [0, 1, 3] {
            let entries: Vec<Value> = (0..n).map(entry).collect();
            assert_eq!(streamed(&entries), whole(&entries), "{n} entries");
        }
    }
}
