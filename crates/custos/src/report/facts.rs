//! What the report states, read from the package's own files (never from the job state), so
//! that `custos report` on a received copy says what the export said when it was sealed. The
//! package may be hostile: every file is read through [`crate::verify::fsys::Bag`] (regular
//! files inside the bag, no links followed) and line by line under a cap.

use crate::package::files;
use std::io::BufReader;

use serde_json::Value;

use super::ReportError;
use crate::lines::for_each_line;
use crate::model::{Outcome, Tally};
use crate::verify::fsys::Bag;

/// At most this many items are listed in a table of the report; the rest are counted and
/// left to `data/chain_of_custody.csv`, which lists every one.
pub const MAX_LISTED: usize = 10_000;
/// A line of the custody log or the custody record longer than this is refused.
const LINE_CAP: usize = 4 << 20;
/// Small JSON and text files (query.json, summary.json, bag-info.txt).
const SMALL: u64 = 64 << 20;

/// An item that did not end `Exported`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Exception {
    /// The recording id.
    pub recording_id: String,
    /// The conversation id.
    pub conversation_id: String,
    /// Its outcome.
    pub outcome: String,
    /// Why.
    pub reason: String,
    /// When its conversation started (call facts).
    pub conversation_start: String,
    /// The agents (call facts).
    pub agents: String,
    /// The customer's number, whichever way the call went (call facts).
    pub customer: String,
    /// The `deleteDate` the recording's metadata stated when listed (Purged items).
    pub delete_date: String,
}

/// From what the query matched to what was exported, every step counted (the report's first
/// page): the source's recordings of the matched conversations, less what the operator left out
/// (`--media`), is the sealed work list; less what was deleted at the source before the listing
/// and during collection, archived and not restored, Corrupted and Failed, is what was
/// exported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// Conversations the query matched (genesys `--query`).
    pub conversations_matched: Option<u64>,
    /// Of them, without any recording.
    pub conversations_without_recordings: Option<u64>,
    /// Recordings of the matched conversations the source listed, before `--media`.
    pub found: u64,
    /// Left out by `--media`, per media type.
    pub excluded: std::collections::BTreeMap<String, u64>,
    /// The sealed work list's items.
    pub items: u64,
    /// Listed as DELETED.
    pub deleted_before_listing: u64,
    /// Listed as available, gone at download (404).
    pub deleted_during_collection: u64,
    /// Archived at the source, not restored.
    pub archived: u64,
    /// Corrupted (kept in quarantine, outside the evidence).
    pub corrupted: u64,
    /// Failed.
    pub failed: u64,
    /// Exported.
    pub exported: u64,
    /// Orphan recordings created in the query's interval (`--orphans`), which no query finds.
    pub orphans_in_interval: Option<u64>,
    /// Of those, the ones collected (`--collect-orphans`): in `found`'s place, added to what
    /// the query found before `--media`.
    pub orphans_added: u64,
}

impl Reconciliation {
    /// Whether the steps add up to what was exported (they always should; the report says so
    /// loudly when not).
    pub fn adds_up(&self) -> bool {
        let excluded: u64 = self.excluded.values().sum();
        self.found + self.orphans_added == self.items + excluded
            && self.items
                == self.deleted_before_listing
                    + self.deleted_during_collection
                    + self.archived
                    + self.corrupted
                    + self.failed
                    + self.exported
    }
}

/// A custodian (`--custodian`) and what the export holds of them.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CustodianCount {
    /// As the operator gave it.
    pub given: String,
    /// The user it resolved to.
    pub user_id: String,
    /// The user's name and email, as the Users API stated them.
    pub name: String,
    /// Email.
    pub email: String,
    /// What matched (`id`, `name`, `email`, `username`).
    pub matched_by: String,
    /// Conversations in which the user took part as an agent.
    pub conversations: u64,
    /// Their recordings listed.
    pub recordings: u64,
    /// Of them, exported.
    pub exported: u64,
}

/// A kept file whose duration was not compared with the API's, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unchecked {
    /// The recording id.
    pub recording_id: String,
    /// Why it was not compared.
    pub why: String,
}

/// One run of the export (a resume is a run of its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// When it started (UTC, from the custody log).
    pub time: String,
    /// It continued an interrupted export.
    pub resumed: bool,
    /// Who ran it (`operator`, else the OS user).
    pub by: String,
}

/// One worker of a distributed export (`custos worker`), from the custody log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerRun {
    /// Its epoch (the fencing token the job state gave it).
    pub worker: i64,
    /// The OAuth client it collected with.
    pub oauth_client: String,
    /// `user@host` it ran as.
    pub host: String,
    /// When it joined.
    pub started: String,
    /// How it ended: `done`, `stopped (SIGTERM)`, `fenced`, or empty (no word: killed).
    pub ended: String,
    /// When it ended.
    pub ended_at: String,
    /// Items it ended, as its `worker-done` said.
    pub items: Option<u64>,
}

/// The run's timeline and its traffic, from the custody log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timeline {
    /// Every run.
    pub runs: Vec<Run>,
    /// A distributed export's workers, in the order they joined.
    pub workers: Vec<WorkerRun>,
    /// Runs stopped by a signal: `(time, by)`.
    pub stops: Vec<(String, String)>,
    /// When the query was recorded.
    pub query_recorded: Option<String>,
    /// When the manifest was sealed, and its items.
    pub manifest_sealed: Option<(String, u64)>,
    /// The first and the last download attempt.
    pub first_download: Option<String>,
    /// The last download attempt.
    pub last_download: Option<String>,
    /// Download attempts.
    pub download_attempts: u64,
    /// When the package was sealed.
    pub sealed: Option<String>,
    /// API requests (every attempt).
    pub requests: u64,
    /// Of them, answered 429 Too Many Requests.
    pub throttled: u64,
    /// The waits those 429s asked for (Retry-After, in seconds), summed.
    pub retry_after_s: f64,
    /// Requests that failed without an answer (connection, timeout).
    pub transport_errors: u64,
    /// Time the runs that finished retrieving paused for the rate budget, ms (`retrieval-done`).
    pub rate_limit_wait_ms: u64,
    /// The signing key's id, as the last run recorded it (`(unsigned)` when none).
    pub signing_key: Option<String>,
    /// The archive's reconciliation with the manifest (`--archive`): the `archive-reconciled`
    /// line's counts, as recorded.
    pub archive_reconciled: Option<Value>,
    /// The objects of the manifest conversations' archive folders that no item read, per
    /// conversation (a resumed run's later line for a conversation replaces the earlier one).
    pub archive_unexpected: std::collections::BTreeMap<String, Vec<UnreadObject>>,
    /// Recordings the source listed as DELETED or ARCHIVED whose copy in the archive was read
    /// (`--archive-settled read`; `archive-object` lines with `settledAtSource`), by id.
    pub archive_settled_read: std::collections::BTreeSet<String>,
}

/// An object of the archive that no item read (`archive-unexpected`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnreadObject {
    /// Its key.
    pub key: String,
    /// Bytes, as listed.
    pub bytes: u64,
    /// When the store last wrote it.
    pub last_modified: String,
    /// Why it was not read.
    pub why: String,
}

/// Everything the report states, read from one package.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// bag-info.txt's labels, in order (a label given twice: the first value counts).
    pub bag_info: Vec<(String, String)>,
    /// `data/query.json`, as recorded.
    pub query: Value,
    /// What the report uses of `data/summary.json`: its `completeness`, and `durationChecked`'s
    /// `checked` and `of` (its list is read into [`Facts::unchecked`]).
    pub summary: Value,
    /// The custody record's rows per outcome (every outcome, zeros included; bytes exported
    /// from its Bytes column).
    pub tally: Tally,
    /// The items not exported (at most [`MAX_LISTED`]).
    pub exceptions: Vec<Exception>,
    /// How many items were not exported (all of them, listed or not).
    pub exceptions_total: u64,
    /// Exported items per content type as received (`audio/wav`, `video/webm`, …).
    pub exported_types: std::collections::BTreeMap<String, u64>,
    /// Kept files whose duration was not checked (at most [`MAX_LISTED`]).
    pub unchecked: Vec<Unchecked>,
    /// The timeline, from the custody log.
    pub timeline: Timeline,
    /// The custodians the query was narrowed to, with their counts (`--custodian`).
    pub custodians: Vec<CustodianCount>,
    /// From what the query matched to what was exported.
    pub reconciliation: Reconciliation,
}

impl Facts {
    /// A bag-info label's value.
    pub fn info(&self, label: &str) -> Option<&str> {
        self.bag_info
            .iter()
            .find(|(k, _)| k == label)
            .map(|(_, v)| v.as_str())
    }

    /// A string of `query.json` by JSON pointer (`/exporter/operator`).
    pub fn query_str(&self, pointer: &str) -> Option<&str> {
        self.query.pointer(pointer).and_then(Value::as_str)
    }

    /// Reads the facts of the package at `bag`.
    pub fn read(bag: &Bag) -> Result<Facts, ReportError> {
        let text = |rel: &str| {
            bag.read_text(rel, SMALL)
                .map_err(|e| ReportError::Unreadable(rel.into(), e.to_string()))
        };
        let json = |rel: &str| -> Result<Value, ReportError> {
            serde_json::from_str(&text(rel)?)
                .map_err(|e| ReportError::Unreadable(rel.into(), e.to_string()))
        };
        let (summary, unchecked) = read_summary(bag)?;
        let mut facts = Facts {
            bag_info: crate::package::parse_tags(&text(files::BAG_INFO)?),
            query: json(files::QUERY)?,
            summary,
            unchecked,
            ..Facts::default()
        };
        let (exported, purged) = read_record(bag, &mut facts)?;
        facts.timeline = read_log(bag)?;
        facts.custodians = custodians(bag, &facts.query, &exported)?;
        facts.reconciliation = reconcile(bag, &facts, &purged)?;
        exception_details(bag, &mut facts)?;
        Ok(facts)
    }
}

/// The summary file, at most this large (a million files not compared take ~200 MB).
const SUMMARY_CAP: u64 = 1 << 30;

/// What the report uses of `data/summary.json` (its completeness and durationChecked's
/// counts) and the first [`MAX_LISTED`] files whose duration was not compared, read as the file
/// streams past: the list of those can hold one entry per file, and is never held whole.
fn read_summary(bag: &Bag) -> Result<(Value, Vec<Unchecked>), ReportError> {
    use serde::Deserialize;

    /// The first [`MAX_LISTED`] elements of a list; the rest are parsed past.
    #[derive(Default)]
    struct First(Vec<Value>);

    impl<'de> Deserialize<'de> for First {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<First, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = First;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a list")
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<First, A::Error> {
                    let mut kept = Vec::new();
                    while kept.len() < MAX_LISTED {
                        match seq.next_element::<Value>()? {
                            Some(v) => kept.push(v),
                            None => return Ok(First(kept)),
                        }
                    }
                    while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                    Ok(First(kept))
                }
            }
            d.deserialize_seq(Visit)
        }
    }

    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct Duration {
        checked: Option<Value>,
        of: Option<Value>,
        not_checked: First,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Summary {
        #[serde(default)]
        completeness: Value,
        #[serde(default)]
        duration_checked: Duration,
    }

    let rel = "data/summary.json";
    let unreadable = |why: String| ReportError::Unreadable(rel.into(), why);
    let (file, len) = bag.open(rel).map_err(|e| unreadable(e.to_string()))?;
    if len > SUMMARY_CAP {
        return Err(unreadable(format!(
            "is {len} bytes, more than the {SUMMARY_CAP} read"
        )));
    }
    let s: Summary =
        serde_json::from_reader(BufReader::new(std::io::Read::take(file, SUMMARY_CAP)))
            .map_err(|e| unreadable(e.to_string()))?;
    let unchecked = s
        .duration_checked
        .not_checked
        .0
        .iter()
        .map(|v| Unchecked {
            recording_id: str_of(v, "recordingId"),
            why: str_of(v, "why"),
        })
        .collect();
    // A count the file does not state stays absent (the report shows "?").
    let counts: serde_json::Map<String, Value> = [
        ("checked", s.duration_checked.checked),
        ("of", s.duration_checked.of),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_owned(), v?)))
    .collect();
    let summary = serde_json::json!({"completeness": s.completeness, "durationChecked": counts});
    Ok((summary, unchecked))
}

fn str_of(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_owned()
}

/// Opens `rel` and calls `f` with each line, under [`LINE_CAP`].
fn each_line(
    bag: &Bag,
    rel: &str,
    mut f: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<(), ReportError> {
    let (file, _) = bag
        .open(rel)
        .map_err(|e| ReportError::Unreadable(rel.into(), e.to_string()))?;
    for_each_line(BufReader::new(file), LINE_CAP, |line, _| f(line))
        .map_err(|e| ReportError::Unreadable(rel.into(), e.to_string()))
}

/// Every line of the CSV `rel` after its header, as (header, row), to `f`.
fn each_row(
    bag: &Bag,
    rel: &str,
    mut f: impl FnMut(&csv::StringRecord, &csv::StringRecord),
) -> Result<(), ReportError> {
    let mut header: Option<csv::StringRecord> = None;
    each_line(bag, rel, |line| {
        // custos never writes a line break inside a cell (custody::csv_cell), so a line is a row.
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(line);
        let Some(Ok(row)) = r.records().next() else {
            return Ok(());
        };
        match &header {
            None => header = Some(row),
            Some(head) => f(head, &row),
        }
        Ok(())
    })
}

/// A row's value by header name.
fn cell<'a>(head: &csv::StringRecord, row: &'a csv::StringRecord, name: &str) -> &'a str {
    head.iter()
        .position(|h| h == name)
        .and_then(|i| row.get(i))
        .unwrap_or("")
}

/// The steps from what the query matched to what was exported: the counts of
/// `data/summary.json`'s completeness and the custody record, the Purged items split by their
/// state when listed (`data/manifest.csv`).
fn reconcile(
    bag: &Bag,
    facts: &Facts,
    purged: &std::collections::HashSet<String>,
) -> Result<Reconciliation, ReportError> {
    let c = facts
        .summary
        .pointer("/completeness")
        .cloned()
        .unwrap_or_default();
    let excluded: std::collections::BTreeMap<String, u64> = c["mediaNotTaken"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
        .collect();
    let mut before = 0;
    if !purged.is_empty() {
        each_row(bag, files::MANIFEST_CSV, |head, row| {
            if purged.contains(cell(head, row, "Recording_ID"))
                && cell(head, row, "Listed_File_State") == "DELETED"
            {
                before += 1;
            }
        })?;
    }
    let t = &facts.tally;
    Ok(Reconciliation {
        conversations_matched: c["conversationsMatched"].as_u64(),
        conversations_without_recordings: c["conversationsWithoutRecordings"].as_u64(),
        // What the query found: the work list and what --media left out, less the orphans
        // added to it (a count that does not fit shows as a reconciliation that does not add
        // up, never as a wrapped number).
        found: (t.items + excluded.values().sum::<u64>())
            .saturating_sub(c["orphansAdded"].as_u64().unwrap_or(0)),
        excluded,
        items: t.items,
        deleted_before_listing: before,
        deleted_during_collection: t[Outcome::Purged] - before,
        archived: t[Outcome::Archived],
        corrupted: t[Outcome::Corrupted],
        failed: t[Outcome::Failed],
        exported: t[Outcome::Exported],
        orphans_in_interval: c["orphansInInterval"].as_u64(),
        orphans_added: c["orphansAdded"].as_u64().unwrap_or(0),
    })
}

/// Each listed exception's date, agents and customer number (call facts), and a Purged one's
/// `deleteDate` as listed (its metadata).
fn exception_details(bag: &Bag, facts: &mut Facts) -> Result<(), ReportError> {
    if facts.exceptions.is_empty() {
        return Ok(());
    }
    let at: std::collections::HashMap<String, usize> = facts
        .exceptions
        .iter()
        .enumerate()
        .map(|(i, e)| (e.recording_id.clone(), i))
        .collect();
    if bag.lstat(files::CALL_FACTS).is_ok() {
        let ex = &mut facts.exceptions;
        each_row(bag, files::CALL_FACTS, |head, row| {
            let Some(&i) = at.get(cell(head, row, "Recording_ID")) else {
                return;
            };
            let e = &mut ex[i];
            e.conversation_start = cell(head, row, "Conversation_Start").to_owned();
            e.agents = cell(head, row, "Agent_Names").to_owned();
            let (ani, dnis) = (cell(head, row, "ANI"), cell(head, row, "DNIS"));
            e.customer = if cell(head, row, "Direction") == "outbound" {
                dnis
            } else {
                ani
            }
            .to_owned();
        })?;
    }
    for e in facts
        .exceptions
        .iter_mut()
        .filter(|e| e.outcome == "Purged")
    {
        if !crate::model::safe_id(&e.recording_id) {
            continue;
        }
        let meta: Value = bag
            .read(&format!("data/metadata/{}.json", e.recording_id), 1 << 20)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        e.delete_date = str_of(&meta, "deleteDate");
    }
    Ok(())
}

/// Per custodian of `query.json` (`--custodian`): the conversations in which they took part
/// as an agent, and those conversations' recordings listed and `exported`, from the call facts.
fn custodians(
    bag: &Bag,
    query: &Value,
    exported: &std::collections::HashSet<String>,
) -> Result<Vec<CustodianCount>, ReportError> {
    let Some(resolved) = query
        .pointer("/custodians/resolved")
        .and_then(Value::as_array)
    else {
        return Ok(Vec::new());
    };
    let mut out: Vec<CustodianCount> = resolved
        .iter()
        .map(|c| CustodianCount {
            given: str_of(c, "given"),
            user_id: str_of(c, "userId"),
            name: str_of(c, "name"),
            email: str_of(c, "email"),
            matched_by: str_of(c, "matchedBy"),
            ..CustodianCount::default()
        })
        .collect();
    let mut conversations: Vec<std::collections::HashSet<String>> =
        vec![Default::default(); out.len()];
    if bag.lstat(files::CALL_FACTS).is_err() {
        return Ok(out);
    }
    each_row(bag, files::CALL_FACTS, |head, row| {
        let agents: Vec<&str> = cell(head, row, "Agent_IDs").split("; ").collect();
        for (i, c) in out.iter_mut().enumerate() {
            if agents.contains(&c.user_id.as_str()) {
                c.recordings += 1;
                c.exported += u64::from(exported.contains(cell(head, row, "Recording_ID")));
                conversations[i].insert(cell(head, row, "Conversation_ID").to_owned());
            }
        }
    })?;
    for (c, convs) in out.iter_mut().zip(conversations) {
        c.conversations = convs.len() as u64;
    }
    Ok(out)
}

/// The custody record: counts per outcome, and the items not exported; the ids of the
/// exported recordings (when the export has custodians to count them for) and of the Purged.
#[allow(clippy::type_complexity)]
fn read_record(
    bag: &Bag,
    facts: &mut Facts,
) -> Result<
    (
        std::collections::HashSet<String>,
        std::collections::HashSet<String>,
    ),
    ReportError,
> {
    const REL: &str = files::CUSTODY_CSV;
    let count_custodians = facts.query.pointer("/custodians/resolved").is_some();
    let mut exported = std::collections::HashSet::new();
    let mut purged = std::collections::HashSet::new();
    facts.tally = Tally::default();
    let mut header: Option<csv::StringRecord> = None;
    let mut n = 0u64;
    each_line(bag, REL, |line| {
        n += 1;
        // custos never writes a line break inside a cell (custody::csv_cell), so a line is a row.
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(line);
        let row = match r.records().next() {
            Some(Ok(row)) => row,
            Some(Err(e)) => return Err(format!("line {n}: {e}")),
            None => return Ok(()),
        };
        let Some(head) = &header else {
            header = Some(row);
            return Ok(());
        };
        let get = |name: &str| {
            head.iter()
                .position(|h| h == name)
                .and_then(|i| row.get(i))
                .unwrap_or("")
                .to_owned()
        };
        let outcome = get("Outcome");
        match Outcome::parse(&outcome) {
            Some(o) => facts.tally.add(o, get("Bytes").parse().ok()),
            None => return Err(format!("line {n}: unknown outcome {outcome:?}")),
        }
        if outcome == "Exported" {
            if count_custodians {
                exported.insert(get("Recording_ID"));
            }
            let kind = get("Content_Type");
            let kind = if kind.is_empty() {
                "type not stated".to_owned()
            } else {
                kind
            };
            *facts.exported_types.entry(kind).or_default() += 1;
        } else {
            if outcome == "Purged" {
                purged.insert(get("Recording_ID"));
            }
            facts.exceptions_total += 1;
            if facts.exceptions.len() < MAX_LISTED {
                facts.exceptions.push(Exception {
                    recording_id: get("Recording_ID"),
                    conversation_id: get("Conversation_ID"),
                    outcome,
                    reason: get("Reason"),
                    ..Exception::default()
                });
            }
        }
        Ok(())
    })?;
    Ok((exported, purged))
}

/// The timeline, from the custody log's events.
fn read_log(bag: &Bag) -> Result<Timeline, ReportError> {
    let mut t = Timeline::default();
    each_line(bag, files::CUSTODY_LOG, |line| {
        // A torn or unparsable line says nothing here; `custos verify` reports it.
        let Ok(e) = serde_json::from_slice::<Value>(line) else {
            return Ok(());
        };
        event(&mut t, &e);
        Ok(())
    })?;
    Ok(t)
}

fn event(t: &mut Timeline, e: &Value) {
    let time = str_of(e, "time");
    match e.get("event").and_then(Value::as_str).unwrap_or("") {
        "export-run" => {
            let actor = e.get("actor").cloned().unwrap_or(Value::Null);
            let by = [
                actor.get("operator").and_then(Value::as_str),
                actor.get("osUser").and_then(Value::as_str),
            ]
            .into_iter()
            .flatten()
            .find(|s| !s.is_empty())
            .unwrap_or("")
            .to_owned();
            t.runs.push(Run {
                time,
                resumed: e.get("resumed").and_then(Value::as_bool).unwrap_or(false),
                by,
            });
            t.signing_key = e
                .pointer("/settings/sign-key")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        "export-stopped" => t.stops.push((time, str_of(e, "by"))),
        "query-recorded" => t.query_recorded = Some(time),
        "manifest-sealed" => {
            let items = e.get("items").and_then(Value::as_u64).unwrap_or(0);
            t.manifest_sealed = Some((time, items));
        }
        "download-attempt" => {
            t.download_attempts += 1;
            if t.first_download.is_none() {
                t.first_download = Some(time.clone());
            }
            t.last_download = Some(time);
        }
        "package-sealing" => t.sealed = Some(time),
        "retrieval-done" => {
            t.rate_limit_wait_ms += e
                .get("rateLimitWaitMs")
                .and_then(Value::as_u64)
                .unwrap_or(0);
        }
        "worker-started" => t.workers.push(WorkerRun {
            worker: e.get("worker").and_then(Value::as_i64).unwrap_or(0),
            oauth_client: e
                .pointer("/oauthClient/id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            host: str_of(e, "host"),
            started: time,
            ..WorkerRun::default()
        }),
        ended @ ("worker-done" | "worker-stopped" | "worker-fenced") => {
            let n = e.get("worker").and_then(Value::as_i64);
            if let Some(w) = t.workers.iter_mut().rev().find(|w| Some(w.worker) == n) {
                w.ended = match ended {
                    "worker-done" => "done".into(),
                    "worker-stopped" => format!("stopped ({})", str_of(e, "by")),
                    _ => "fenced: its lease lapsed".into(),
                };
                w.ended_at = time;
                w.items = e.get("itemsEnded").and_then(Value::as_u64);
            }
            t.rate_limit_wait_ms += e
                .get("rateLimitWaitMs")
                .and_then(Value::as_u64)
                .unwrap_or(0);
        }
        "archive-reconciled" => t.archive_reconciled = Some(e.clone()),
        "archive-object"
            if e.get("settledAtSource").and_then(Value::as_str).is_some()
                && t.archive_settled_read.len() < MAX_LISTED =>
        {
            t.archive_settled_read.insert(str_of(e, "recordingId"));
        }
        "archive-unexpected" => {
            let objects: Vec<UnreadObject> = e
                .get("objects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|o| UnreadObject {
                    key: str_of(o, "key"),
                    bytes: o.get("bytes").and_then(Value::as_u64).unwrap_or(0),
                    last_modified: str_of(o, "lastModified"),
                    why: str_of(o, "why"),
                })
                .collect();
            let cid = str_of(e, "conversationId");
            let held: usize = t.archive_unexpected.values().map(Vec::len).sum();
            if held < MAX_LISTED || t.archive_unexpected.contains_key(&cid) {
                t.archive_unexpected.insert(cid, objects);
            }
        }
        "http" => {
            t.requests += 1;
            match e.get("status").and_then(Value::as_u64) {
                Some(429) => {
                    t.throttled += 1;
                    t.retry_after_s += e
                        .get("retryAfter")
                        .and_then(Value::as_str)
                        .and_then(|s| s.trim().parse::<f64>().ok())
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .unwrap_or(0.0);
                }
                Some(_) => {}
                None => t.transport_errors += 1,
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_given_twice_counts_once_its_first_value() {
        let f = Facts {
            bag_info: crate::package::parse_tags("A: 1\nB: two\n  words\nA: again\n"),
            ..Facts::default()
        };
        assert_eq!((f.info("A"), f.info("B")), (Some("1"), Some("two words")));
    }

    #[test]
    fn the_timeline_counts_throttling_and_runs() {
        let mut t = Timeline::default();
        for e in [
            r#"{"event":"export-run","time":"T1","resumed":false,"actor":{"operator":"","osUser":"ann@h"},"settings":{"sign-key":"key id AB"}}"#,
            r#"{"event":"http","time":"T2","status":429,"retryAfter":"3"}"#,
            r#"{"event":"http","time":"T3","status":429,"retryAfter":"Wed, 21 Oct 2015 07:28:00 GMT"}"#,
            r#"{"event":"http","time":"T4","error":"timeout"}"#,
            r#"{"event":"export-run","time":"T5","resumed":true,"actor":{"operator":"Bob"}}"#,
            r#"{"event":"retrieval-done","time":"T6","rateLimitWaitMs":1500}"#,
            r#"{"event":"retrieval-done","time":"T7","rateLimitWaitMs":250}"#,
            r#"{"event":"worker-started","time":"T8","worker":4,"oauthClient":{"id":"c2"},"host":"w@b"}"#,
            r#"{"event":"worker-done","time":"T9","worker":4,"itemsEnded":12,"rateLimitWaitMs":5}"#,
        ] {
            event(&mut t, &serde_json::from_str(e).unwrap());
        }
        assert_eq!((t.requests, t.throttled, t.transport_errors), (3, 2, 1));
        assert_eq!(t.retry_after_s, 3.0);
        assert_eq!(t.rate_limit_wait_ms, 1755, "summed over runs and workers");
        assert_eq!(
            t.workers,
            [WorkerRun {
                worker: 4,
                oauth_client: "c2".into(),
                host: "w@b".into(),
                started: "T8".into(),
                ended: "done".into(),
                ended_at: "T9".into(),
                items: Some(12),
            }]
        );
        assert_eq!(t.runs.len(), 2);
        assert_eq!((t.runs[0].by.as_str(), t.runs[1].resumed), ("ann@h", true));
        assert_eq!(t.signing_key, None, "the last run's settings count");
    }

    #[test]
    fn a_folder_reconciled_again_counts_once_with_its_last_line() {
        let mut t = Timeline::default();
        for e in [
            r#"{"event":"archive-unexpected","conversationId":"c-1","objects":[{"key":"a/x.wav","bytes":3,"why":"w1"}]}"#,
            r#"{"event":"archive-unexpected","conversationId":"c-2","objects":[{"key":"b/y.wav","bytes":4,"why":"w2"}]}"#,
            r#"{"event":"archive-unexpected","conversationId":"c-1","objects":[{"key":"a/x.wav","bytes":3,"why":"w1"},{"key":"a/z.wav","bytes":5,"lastModified":"T","why":"w3"}]}"#,
            r#"{"event":"archive-reconciled","unexpected":3}"#,
        ] {
            event(&mut t, &serde_json::from_str(e).unwrap());
        }
        let keys: Vec<&str> = t
            .archive_unexpected
            .values()
            .flatten()
            .map(|o| o.key.as_str())
            .collect();
        assert_eq!(keys, ["a/x.wav", "a/z.wav", "b/y.wav"]);
        assert_eq!(t.archive_unexpected["c-1"][1].last_modified, "T");
        assert_eq!(t.archive_reconciled.unwrap()["unexpected"], 3);
    }
}

#[cfg(test)]
mod summary_tests {
    use super::*;

    /// A bag directory holding only `summary` as data/summary.json, removed when dropped.
    struct Dir(std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn bag_with(name: &str, summary: &Value) -> (Dir, Bag) {
        let d = std::env::temp_dir().join(format!("custos-summary-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("data")).unwrap();
        std::fs::write(
            d.join("data/summary.json"),
            serde_json::to_vec_pretty(summary).unwrap(),
        )
        .unwrap();
        let bag = Bag::new(&d);
        (Dir(d), bag)
    }

    #[test]
    fn the_summary_keeps_the_first_listed_files_not_compared_and_its_counts() {
        let n = MAX_LISTED + 5;
        let listed: Vec<Value> = (0..n)
            .map(|i| serde_json::json!({"recordingId": format!("r{i}"), "conversationId": "c", "why": format!("why {i}")}))
            .collect();
        let (_d, bag) = bag_with(
            "first",
            &serde_json::json!({"items": n + 3, "durationChecked": {"checked": 3, "of": n + 3, "notChecked": listed},
                                "completeness": {"recordingsListed": n + 3}}),
        );
        let (summary, unchecked) = read_summary(&bag).unwrap();
        assert_eq!(unchecked.len(), MAX_LISTED);
        assert_eq!(unchecked[0].recording_id, "r0");
        assert_eq!(
            unchecked[MAX_LISTED - 1].why,
            format!("why {}", MAX_LISTED - 1)
        );
        assert_eq!(
            summary,
            serde_json::json!({"completeness": {"recordingsListed": n + 3},
                               "durationChecked": {"checked": 3, "of": n + 3}})
        );
    }

    #[test]
    fn a_summary_without_duration_counts_leaves_them_absent() {
        let (_d, bag) = bag_with("absent", &serde_json::json!({"items": 1}));
        let (summary, unchecked) = read_summary(&bag).unwrap();
        assert!(unchecked.is_empty());
        assert_eq!(summary.pointer("/durationChecked/checked"), None);
    }

    #[test]
    fn a_summary_whose_list_is_not_a_list_is_refused() {
        let (_d, bag) = bag_with(
            "not-a-list",
            &serde_json::json!({"durationChecked": {"checked": 1, "of": 2, "notChecked": "x"}}),
        );
        assert!(matches!(
            read_summary(&bag),
            Err(ReportError::Unreadable(rel, _)) if rel == "data/summary.json"
        ));
    }
}
