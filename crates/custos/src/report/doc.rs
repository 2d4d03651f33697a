//! The report as a document: blocks of text, tables and a chart, composed once from the facts
//! and drawn twice, as HTML (`html`) and as PDF (`pdf`), so the two always say the same.

use super::Seal;
use super::facts::{Facts, MAX_LISTED};
use crate::model::Outcome;

/// A piece of text (a `\n` in it breaks the line); `mono` for hashes, ids and commands.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    /// The text.
    pub text: String,
    /// Set in a fixed-width face, and broken anywhere when too long.
    pub mono: bool,
}

impl Cell {
    fn text(s: impl Into<String>) -> Cell {
        Cell {
            text: s.into(),
            mono: false,
        }
    }
    fn mono(s: impl Into<String>) -> Cell {
        Cell {
            text: s.into(),
            mono: true,
        }
    }
}

/// The colour of a bar and of an outcome.
pub fn colour(o: Outcome) -> (u8, u8, u8) {
    match o {
        Outcome::Exported => (0x2e, 0x7d, 0x32),
        Outcome::Purged => (0x75, 0x75, 0x75),
        Outcome::Archived => (0x15, 0x65, 0xc0),
        Outcome::Corrupted => (0xc6, 0x28, 0x28),
        Outcome::Failed => (0xef, 0x6c, 0x00),
    }
}

/// One block of the document.
#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    /// The document's title.
    Title(String),
    /// A section heading.
    Heading(String),
    /// A paragraph.
    Para(String),
    /// A paragraph set apart (a warning, a caveat).
    Note(String),
    /// Label/value pairs.
    Pairs(Vec<(String, Cell)>),
    /// A table: column heads, relative column widths, rows.
    Table {
        /// Column heads.
        head: Vec<String>,
        /// Relative widths (summing to 1).
        widths: Vec<f32>,
        /// Rows.
        rows: Vec<Vec<Cell>>,
    },
    /// Command lines, as typed.
    Commands(Vec<String>),
    /// A bar chart of items per outcome.
    Bars(Vec<(Outcome, u64)>),
    /// A line to be filled in by hand: its label.
    Blank(String),
}

/// The whole report. `sealed`: the seal and its verification, known only once the bag is
/// sealed (`custos report`); the copy inside the bag, which the tag manifest lists, cannot
/// state the tag manifest's own hash.
pub fn compose(f: &Facts, sealed: Option<&Seal>) -> Vec<Block> {
    let mut d = Vec::new();
    let matter = f.info("External-Identifier").unwrap_or("(no matter)");
    d.push(Block::Title(format!("Export report: {matter}")));
    d.push(Block::Para(format!(
        "Custos {} exported call recordings from Genesys Cloud for matter {matter}. This report \
         states what was asked, what was found, what is missing and why, and how anyone can check \
         the package with tools custos did not write. It is read from the package's own files; \
         where it and those files differ, the files govern.",
        f.info("Export-Tool-Version").unwrap_or("?")
    )));
    summary(f, sealed, &mut d);
    asked(f, &mut d);
    custodians(f, &mut d);
    who(f, &mut d);
    timeline(f, &mut d);
    exceptions(f, &mut d);
    archive_unread(f, &mut d);
    preservation(f, &mut d);
    durations(f, &mut d);
    fingerprints(f, sealed, &mut d);
    if let Some(s) = sealed {
        approvals(f, s, &mut d);
        receipts(s, &mut d);
    }
    how_to_check(f, &mut d);
    certification(f, sealed, &mut d);
    d
}

fn outcome_phrase(f: &Facts) -> String {
    let n = |o| f.tally[o];
    format!(
        "{} exported as received; {} purged at the source (deleted or gone); {} archived at the \
         source (a restore is needed before they can be exported); {} corrupted (the file is not \
         what the source states; kept in quarantine, outside the evidentiary set); {} failed",
        n(Outcome::Exported),
        n(Outcome::Purged),
        n(Outcome::Archived),
        n(Outcome::Corrupted),
        n(Outcome::Failed)
    )
}

/// From what the query matched to what was exported, each step counted, on the first page.
fn reconciliation(f: &Facts, d: &mut Vec<Block>) {
    let r = &f.reconciliation;
    let mut rows: Vec<(String, String)> = Vec::new();
    if let Some(m) = r.conversations_matched {
        rows.push((
            format!(
                "Conversations the query matched ({} of them without any recording)",
                r.conversations_without_recordings.unwrap_or(0)
            ),
            m.to_string(),
        ));
    }
    rows.push((
        "Recordings of those conversations, as the source listed them".into(),
        r.found.to_string(),
    ));
    if r.orphans_added > 0 {
        rows.push((
            "+ orphan recordings made in the interval, collected (--collect-orphans; Genesys knows no conversation for them, so they are chosen by the interval alone)".into(),
            r.orphans_added.to_string(),
        ));
    }
    let excluded: u64 = r.excluded.values().sum();
    if excluded > 0 {
        let by: Vec<String> = r.excluded.iter().map(|(k, v)| format!("{k} {v}")).collect();
        rows.push((
            format!(
                "− left out by the operator (--media; {}; data/media_excluded.csv)",
                by.join(", ")
            ),
            excluded.to_string(),
        ));
    }
    rows.push((
        "= the sealed work list (data/manifest.csv)".into(),
        r.items.to_string(),
    ));
    for (label, n) in [
        (
            "− deleted at the source before the listing (listed DELETED): Purged",
            r.deleted_before_listing,
        ),
        (
            "− deleted at the source during collection (listed available, gone at download): Purged",
            r.deleted_during_collection,
        ),
        (
            "− archived at the source and not restored: Archived",
            r.archived,
        ),
        (
            "− not what the source states (kept in quarantine, outside the evidence): Corrupted",
            r.corrupted,
        ),
        ("− failed", r.failed),
    ] {
        rows.push((label.into(), n.to_string()));
    }
    rows.push((
        "= exported, hashed and sealed: Exported".into(),
        r.exported.to_string(),
    ));
    if let Some(n) = r.orphans_in_interval.filter(|_| r.orphans_added == 0) {
        rows.push((
            "Not found by any query: orphan recordings made in the interval (Genesys knows no conversation for them; data/completeness.json)".into(),
            n.to_string(),
        ));
    }
    d.push(Block::Table {
        head: vec![
            "From what the query matched to what was exported".into(),
            "Recordings".into(),
        ],
        widths: vec![0.82, 0.18],
        rows: rows
            .into_iter()
            .map(|(a, b)| vec![Cell::text(a), Cell::mono(b)])
            .collect(),
    });
    if !r.adds_up() {
        d.push(Block::Note(
            "WARNING: these steps do not add up; the package's records disagree with each other. Run custos verify on it.".into(),
        ));
    }
}

fn summary(f: &Facts, sealed: Option<&Seal>, d: &mut Vec<Block>) {
    d.push(Block::Heading("Summary".into()));
    let selection = f
        .query_str("/selection")
        .unwrap_or("the recordings selected");
    d.push(Block::Para(format!(
        "Custos was asked for {selection}. The source listed {} recordings, and each ended in \
         exactly one outcome: {}.",
        f.tally.items,
        outcome_phrase(f)
    )));
    d.push(Block::Bars(
        Outcome::ALL.into_iter().map(|o| (o, f.tally[o])).collect(),
    ));
    reconciliation(f, d);
    if let Some(s) = sealed {
        let (what, good) = s.verdict_text();
        d.push(if good {
            Block::Para(what)
        } else {
            Block::Note(what)
        });
    }
}

fn asked(f: &Facts, d: &mut Vec<Block>) {
    d.push(Block::Heading("What was asked".into()));
    let mut p = Vec::new();
    match f.query_str("/query") {
        Some(q) => {
            p.push(("Query, as given".into(), Cell::mono(q)));
            if let Some(c) = f.query_str("/canonicalQuery") {
                p.push(("Query, canonical form".into(), Cell::mono(c)));
            }
        }
        None => {
            let n = f
                .query
                .pointer("/ids/entries")
                .and_then(|v| v.as_array())
                .map_or(0, Vec::len);
            p.push((
                "Selection".into(),
                Cell::text(format!(
                    "a list of {n} ids, from {} (SHA-256 {})",
                    f.query_str("/ids/file").unwrap_or("?"),
                    f.query_str("/ids/fileSha256").unwrap_or("?")
                )),
            ));
        }
    }
    p.push((
        "Query record SHA-256 (data/query.json)".into(),
        Cell::mono(f.info("Query-SHA256").unwrap_or("")),
    ));
    p.push((
        "Source".into(),
        Cell::text(format!(
            "{} API at {}",
            f.query_str("/source").unwrap_or("?"),
            f.query_str("/apiBase").unwrap_or("?")
        )),
    ));
    p.push((
        "Retrieval".into(),
        Cell::text(
            [
                f.query_str("/retrieval/archive/location")
                    .map(|l| format!("from the archive {l}")),
                f.query_str("/retrieval/mode").map(str::to_owned),
                f.query_str("/retrieval/formatId").map(str::to_owned),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", "),
        ),
    ));
    p.push((
        "Recorded at (UTC)".into(),
        Cell::text(f.query_str("/startedAt").unwrap_or("")),
    ));
    d.push(Block::Pairs(p));
}

/// The custodians the query was narrowed to (`--custodian`): who each is, and what the export
/// holds of them.
fn custodians(f: &Facts, d: &mut Vec<Block>) {
    if f.custodians.is_empty() {
        return;
    }
    d.push(Block::Heading("Custodians".into()));
    d.push(Block::Para(format!(
        "The operator named {} custodian(s); before anything was written, each was resolved \
         to exactly one user of the organization through the Genesys Users API (the answer is \
         kept in data/query.json), and the query was narrowed to their user ids. As given: {}",
        f.custodians.len(),
        f.query_str("/custodians/queryAsGiven").unwrap_or("")
    )));
    d.push(Block::Table {
        head: vec![
            "Given as".into(),
            "User (matched by)".into(),
            "Conversations".into(),
            "Recordings listed".into(),
            "Exported".into(),
        ],
        widths: vec![0.2, 0.44, 0.12, 0.12, 0.12],
        rows: f
            .custodians
            .iter()
            .map(|c| {
                vec![
                    Cell::text(&c.given),
                    Cell::text(format!(
                        "{} <{}>\n{} ({})",
                        c.name, c.email, c.user_id, c.matched_by
                    )),
                    Cell::text(c.conversations.to_string()),
                    Cell::text(c.recordings.to_string()),
                    Cell::text(c.exported.to_string()),
                ]
            })
            .collect(),
    });
    if let Some(c) = f.custodians.iter().find(|c| c.conversations == 0) {
        d.push(Block::Note(format!(
            "No conversation of {} ({}) is in the interval: the export holds nothing of them.",
            c.given, c.user_id
        )));
    }
}

fn who(f: &Facts, d: &mut Vec<Block>) {
    d.push(Block::Heading("Who ran it, with what".into()));
    let s = |p: &str| f.query_str(p).unwrap_or("").to_owned();
    let mut p = vec![
        ("Operator".into(), Cell::text(s("/exporter/operator"))),
        (
            "Operating-system user".into(),
            Cell::text(s("/exporter/osUser")),
        ),
        (
            "Genesys OAuth client (Exporter_User_ID)".into(),
            Cell::mono(s("/exporter/oauthClientId")),
        ),
    ];
    if let Some(org) = f.info("Source-Organization") {
        p.push(("Source organization".into(), Cell::text(org)));
    }
    if let Some(id) = f.info("Genesys-Organization-Id") {
        p.push((
            "Genesys organization (as the API reports the token's)".into(),
            Cell::text(format!(
                "{} ({id})",
                f.info("Genesys-Organization-Name").unwrap_or("?")
            )),
        ));
    }
    if let Some(name) = f.info("Genesys-OAuth-Client-Name") {
        p.push(("OAuth client name".into(), Cell::text(name)));
    }
    if let Some(host) = f.info("Export-Host") {
        p.push(("Machine (last run)".into(), Cell::text(host)));
    }
    if let Some(sha) = f.info("Export-Tool-SHA256") {
        p.push(("Tool binary SHA-256".into(), Cell::mono(sha)));
    }
    if let Some(o) = f.info("Clock-Offset-Seconds") {
        let off: i64 = o.parse().unwrap_or(0);
        p.push((
            "Clock offset against the API".into(),
            Cell::text(if off.abs() > crate::identity::CLOCK_WARN_S {
                format!("{o} s: WARNING, the times this export records are off by about as much")
            } else {
                format!("{o} s")
            }),
        ));
    }
    p.push((
        "Tool".into(),
        Cell::text(format!(
            "{} {}",
            f.info("Export-Tool").unwrap_or("custos"),
            f.info("Export-Tool-Version").unwrap_or("?")
        )),
    ));
    p.push((
        "Tool commit".into(),
        Cell::mono(f.info("Export-Tool-Commit").unwrap_or("")),
    ));
    p.push((
        "Export id".into(),
        Cell::mono(f.info("Export-Id").unwrap_or("")),
    ));
    p.push((
        "Signing key".into(),
        Cell::text(
            f.timeline
                .signing_key
                .clone()
                .unwrap_or_else(|| "(not recorded)".into()),
        ),
    ));
    d.push(Block::Pairs(p));
}

fn timeline(f: &Facts, d: &mut Vec<Block>) {
    let t = &f.timeline;
    d.push(Block::Heading(
        "Timeline (UTC, from the custody log)".into(),
    ));
    let mut rows: Vec<(String, String)> = Vec::new();
    for r in &t.runs {
        let what = if r.resumed {
            "Run resumed"
        } else {
            "Run started"
        };
        rows.push((r.time.clone(), format!("{what} by {}", r.by)));
    }
    for (time, by) in &t.stops {
        rows.push((time.clone(), format!("Run stopped ({by}); resumed later")));
    }
    for w in &t.workers {
        rows.push((
            w.started.clone(),
            format!(
                "Worker {} joined: OAuth client {}, on {}",
                w.worker, w.oauth_client, w.host
            ),
        ));
        if !w.ended.is_empty() {
            let items = w
                .items
                .map(|n| format!(" after ending {n} items"))
                .unwrap_or_default();
            rows.push((
                w.ended_at.clone(),
                format!("Worker {} {}{items}", w.worker, w.ended),
            ));
        }
    }
    if let Some(q) = &t.query_recorded {
        rows.push((q.clone(), "Query recorded and hashed".into()));
    }
    if let Some((time, n)) = &t.manifest_sealed {
        rows.push((
            time.clone(),
            format!("Listing finished: manifest of {n} items sealed"),
        ));
    }
    if let (Some(a), Some(b)) = (&t.first_download, &t.last_download) {
        rows.push((a.clone(), "First download".into()));
        rows.push((
            b.clone(),
            format!("Last download ({} attempts in all)", t.download_attempts),
        ));
    }
    if let Some(s) = &t.sealed {
        rows.push((s.clone(), "Custody record written; package sealed".into()));
    }
    // RFC 3339 UTC times of one format sort as text.
    rows.sort();
    d.push(Block::Table {
        head: vec!["Time".into(), "Event".into()],
        widths: vec![0.32, 0.68],
        rows: rows
            .into_iter()
            .map(|(a, b)| vec![Cell::mono(a), Cell::text(b)])
            .collect(),
    });
    if !t.workers.is_empty() {
        let clients: std::collections::BTreeSet<&str> =
            t.workers.iter().map(|w| w.oauth_client.as_str()).collect();
        d.push(Block::Para(format!(
            "The recordings were listed and downloaded by {} worker processes with {} OAuth \
             client(s), each under its own rate budget; the custody log names the worker and \
             the client of every request and every outcome, and one hash chain holds them all.",
            t.workers.len(),
            clients.len()
        )));
    }
    d.push(Block::Para(format!(
        "{} API requests were sent. {} were answered 429 Too Many Requests, asking for {:.0} s of \
         waiting in all; the workers paused {:.1} s in all for the shared rate budget (429s and \
         exhausted rate windows). {} requests failed without an answer and were retried. Rate \
         limiting slows an export; it never changes its content.",
        t.requests,
        t.throttled,
        t.retry_after_s,
        t.rate_limit_wait_ms as f64 / 1000.0,
        t.transport_errors
    )));
}

/// What the query matched that the package does not hold, the hold at the source, restores,
/// and the package's place in an ongoing hold (data/completeness.json, bag-info).
fn preservation(f: &Facts, d: &mut Vec<Block>) {
    d.push(Block::Heading("Completeness and preservation".into()));
    let c = f
        .summary
        .pointer("/completeness")
        .cloned()
        .unwrap_or_default();
    let mut pairs = Vec::new();
    if let (Some(m), Some(w)) = (
        c["conversationsMatched"].as_u64(),
        c["conversationsWithoutRecordings"].as_u64(),
    ) {
        pairs.push((
            "Conversations matched".to_owned(),
            Cell::text(format!(
                "{m}, of which {w} have no recording at all (listed in data/completeness.json)"
            )),
        ));
    }
    if let Some(states) = c["byFileState"].as_object() {
        let listed: Vec<String> = states.iter().map(|(k, v)| format!("{k} {v}")).collect();
        pairs.push((
            "Recordings listed, by state at the source".to_owned(),
            Cell::text(format!("{} ({})", c["recordingsListed"], listed.join(", "))),
        ));
    }
    if let Some(left) = c["mediaNotTaken"].as_object().filter(|m| !m.is_empty()) {
        let left: Vec<String> = left.iter().map(|(k, v)| format!("{k} {v}")).collect();
        pairs.push((
            "Recordings left out by media type".to_owned(),
            Cell::text(format!(
                "{}: the export was asked for other media types only (each one listed in data/media_excluded.csv)",
                left.join(", ")
            )),
        ));
    }
    if let Some(n) = c["orphansInInterval"].as_u64() {
        pairs.push((
            "Orphan recordings in the interval".to_owned(),
            Cell::text(format!("{n}: recordings Genesys knows no conversation for, so no query finds them (data/completeness.json)")),
        ));
    }
    let mut lake_short = false;
    for job in c["analyticsDataAvailability"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let date = job["dataAvailabilityDate"]
            .as_str()
            .unwrap_or("(not stated)");
        let interval = job["interval"].as_str().unwrap_or("");
        let covered = job["coversInterval"] == true;
        lake_short |= !covered;
        pairs.push((
            "Analytics data lake".to_owned(),
            Cell::text(if covered {
                format!("complete up to {date}, past the end of the job's interval {interval}")
            } else {
                format!("WARNING: complete only up to {date}, and the job's interval {interval} ends later: conversations after that date may be missing")
            }),
        ));
    }
    if lake_short {
        d.push(Block::Note("The query's interval ends after the date up to which Genesys' analytics data lake holds every conversation: conversations after that date may be missing from this export. Export the same query again once that date has passed the interval's end (data/completeness.json).".into()));
    }
    let completeness_stated = !pairs.is_empty();
    for (label, name) in [
        ("Deletion-Protection", "Legal hold at the source"),
        ("Restored-From-Archive", "Restored from archive"),
    ] {
        if let Some(v) = f.info(label) {
            pairs.push((name.to_owned(), Cell::text(v)));
        }
    }
    if f.info("Deletion-Protection").is_none() {
        pairs.push((
            "Legal hold at the source".to_owned(),
            Cell::text("none placed: the export ran without --protect, so Genesys' retention policies may still delete these recordings at the source"),
        ));
    }
    if let (Some(seq), Some(prev)) = (
        f.info("Chain-Sequence"),
        f.info("Chain-Previous-Tag-Manifest-SHA256"),
    ) {
        pairs.push((
            "Ongoing hold".to_owned(),
            Cell::text(format!("bag {seq} of a chain: it holds only recordings no earlier bag exported, and pins the previous bag (data/chain.json)")),
        ));
        pairs.push((
            "Previous bag's tag manifest SHA-256".to_owned(),
            Cell::mono(prev),
        ));
    }
    if !completeness_stated {
        d.push(Block::Para("The package states nothing about completeness (it was made before custos recorded it).".into()));
    }
    d.push(Block::Pairs(pairs));
}

fn exceptions(f: &Facts, d: &mut Vec<Block>) {
    d.push(Block::Heading("Items not exported, and why".into()));
    if f.exceptions_total == 0 {
        d.push(Block::Para("Every item listed was exported.".into()));
        return;
    }
    d.push(Block::Para(format!(
        "{} of {} items did not end Exported. Each is listed here and in \
         data/chain_of_custody.csv with its reason; none was dropped silently.",
        f.exceptions_total, f.tally.items
    )));
    d.push(Block::Table {
        head: vec![
            "Recording / conversation".into(),
            "Outcome".into(),
            "When, agent, customer".into(),
            "Reason".into(),
        ],
        widths: vec![0.37, 0.1, 0.22, 0.31],
        rows: f
            .exceptions
            .iter()
            .map(|e| {
                let reason = if e.delete_date.is_empty() {
                    e.reason.clone()
                } else {
                    format!("{} (deleteDate as listed: {})", e.reason, e.delete_date)
                };
                vec![
                    Cell::mono(format!("{}\n{}", e.recording_id, e.conversation_id)),
                    Cell::text(&e.outcome),
                    Cell::text(format!(
                        "{}\n{}\n{}",
                        e.conversation_start, e.agents, e.customer
                    )),
                    Cell::text(reason),
                ]
            })
            .collect(),
    });
    if f.exceptions_total > f.exceptions.len() as u64 {
        d.push(Block::Note(format!(
            "Only the first {MAX_LISTED} are listed here; data/chain_of_custody.csv lists all {}.",
            f.exceptions_total
        )));
    }
}

/// With `--archive`: what the archive's folders of the manifest's conversations held besides
/// the items' own objects, each named, none read.
fn archive_unread(f: &Facts, d: &mut Vec<Block>) {
    let Some(r) = &f.timeline.archive_reconciled else {
        return;
    };
    d.push(Block::Heading("The archive's folders, reconciled".into()));
    let n = |k: &str| r.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let kinds: Vec<String> = r
        .get("byKind")
        .and_then(serde_json::Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let words = match k.as_str() {
                "unknown" => "naming no recording of the work list",
                "settled" => "copies of recordings the source listed as deleted or archived",
                "excluded" => "recordings the operator left out by media type",
                "below" => "in folders below a conversation's",
                _ => "of another kind",
            };
            format!("{} {words}", v.as_u64().unwrap_or(0))
        })
        .collect();
    let unexpected = n("unexpected");
    let settled = f.timeline.archive_settled_read.len();
    if settled > 0 {
        d.push(Block::Para(format!(
            "{settled} recording(s) the source listed as deleted or archived were read from their \
             copies in the archive (--archive-settled read) and judged like any other; each one's \
             reason in data/chain_of_custody.csv names the state the source listed and the copy \
             read."
        )));
    }
    d.push(Block::Para(format!(
        "Once every item had ended, the archive's folder of each conversation of the work list was listed ({} folders, {} objects) and held to the work list. {}{}{}",
        n("foldersListed"),
        n("objectsListed"),
        if unexpected == 0 {
            "Every object there belonged to an item of the work list.".to_owned()
        } else {
            format!(
                "{unexpected} objects belonged to no item of the work list ({}): they were not read, and each is named in the custody log (archive-unexpected).",
                kinds.join("; ")
            )
        },
        match n("foldersNotListed") {
            0 => String::new(),
            k => format!(" WARNING: {k} folders could not be listed (custody log, archive-unexpected)."),
        },
        match n("foldersPastTheLimit") {
            0 => String::new(),
            k => format!(" WARNING: {k} folders held more objects than were listed."),
        },
    )));
    let rows: Vec<Vec<Cell>> = f
        .timeline
        .archive_unexpected
        .values()
        .flatten()
        .take(MAX_LISTED)
        .map(|o| {
            vec![
                Cell::mono(&o.key),
                Cell::text(format!("{}\n{} bytes", o.last_modified, o.bytes)),
                Cell::text(&o.why),
            ]
        })
        .collect();
    if !rows.is_empty() {
        d.push(Block::Table {
            head: vec![
                "Key".into(),
                "Written, size".into(),
                "Why it was not read".into(),
            ],
            widths: vec![0.5, 0.18, 0.32],
            rows,
        });
    }
}

/// Every Corrupted item, approved for production by counsel or not (`custos approve`).
fn approvals(f: &Facts, s: &Seal, d: &mut Vec<Block>) {
    let corrupted = f.tally[Outcome::Corrupted];
    if corrupted == 0 && s.approvals.is_empty() {
        return;
    }
    d.push(Block::Heading(
        "Counsel's approvals of Corrupted items".into(),
    ));
    let approved: std::collections::BTreeMap<&str, &crate::verify::ApprovalReport> = s
        .approvals
        .iter()
        .map(|a| (a.approval.recording_id.as_str(), a))
        .collect();
    let checked = s.approvals.iter().filter(|a| a.checked).count();
    d.push(Block::Para(format!(
        "A Corrupted item stays out of the evidentiary set unless counsel approves it (custos approve: a statement signed with counsel's key, bound to this package's tag manifest and the item's SHA-256, beside the bag). {corrupted} item(s) are Corrupted; {} approval(s) are beside the bag, {checked} of them verified with counsel's key (--approver-key). custos produce includes exactly the approved items whose approval verifies, marked as such.",
        s.approvals.len()
    )));
    let rows = f
        .exceptions
        .iter()
        .filter(|e| e.outcome == "Corrupted")
        .map(|e| {
            let status = match approved.get(e.recording_id.as_str()) {
                Some(a) => format!(
                    "Approved by {} at {}: {} ({})",
                    a.approval.approved_by,
                    a.approval.approved_at,
                    a.approval.reason,
                    if a.checked {
                        "signature verified"
                    } else {
                        "signature NOT CHECKED: no approver key given"
                    }
                ),
                None => "Not approved: not produced".into(),
            };
            vec![
                Cell::mono(format!("{}\n{}", e.recording_id, e.conversation_id)),
                Cell::text(status),
            ]
        })
        .collect();
    d.push(Block::Table {
        head: vec!["Recording / conversation".into(), "Approval".into()],
        widths: vec![0.37, 0.63],
        rows,
    });
}

fn durations(f: &Facts, d: &mut Vec<Block>) {
    d.push(Block::Heading("Durations checked".into()));
    let checked = f.summary.pointer("/durationChecked/checked");
    let of = f.summary.pointer("/durationChecked/of");
    let tolerance = f.info("Duration-Tolerance-Seconds").unwrap_or("1");
    d.push(Block::Para(format!(
        "The duration of every kept file is read from the audio itself and compared with the \
         duration the API states; a difference of more than {tolerance} s makes the item \
         Corrupted. {} of {} kept files were compared.",
        checked.map(|v| v.to_string()).unwrap_or_else(|| "?".into()),
        of.map(|v| v.to_string()).unwrap_or_else(|| "?".into()),
    )));
    if !f.unchecked.is_empty() {
        d.push(Block::Table {
            head: vec!["Recording not compared".into(), "Why".into()],
            widths: vec![0.4, 0.6],
            rows: f
                .unchecked
                .iter()
                .map(|u| vec![Cell::mono(&u.recording_id), Cell::text(&u.why)])
                .collect(),
        });
    }
}

fn fingerprints(f: &Facts, sealed: Option<&Seal>, d: &mut Vec<Block>) {
    d.push(Block::Heading("Fingerprints".into()));
    let i = |l: &str| Cell::mono(f.info(l).unwrap_or(""));
    let mut p = vec![
        (
            "Manifest of items, SHA-256 (data/manifest.csv)".into(),
            i("Manifest-SHA256"),
        ),
        ("Custody log head, SHA-256".into(), i("Custody-Log-Head")),
        (
            "Merkle root of the payload manifest (RFC 6962)".into(),
            i(crate::package::MERKLE_ROOT_LABEL),
        ),
        ("Payload files and bytes (Payload-Oxum)".into(), {
            let oxum = f.info("Payload-Oxum").unwrap_or("");
            let (b, n) = oxum.split_once('.').unwrap_or(("?", "?"));
            Cell::text(format!("{n} files, {b} bytes"))
        }),
    ];
    match sealed {
        Some(s) => {
            p.push((
                "Tag manifest, SHA-256 (seals every file above)".into(),
                Cell::mono(&s.tag_manifest_sha256),
            ));
            p.push(("Signature".into(), Cell::text(s.signature_text())));
            for t in &s.timestamps {
                p.push((
                    format!("RFC 3161 timestamp of {}", t.file),
                    Cell::text(format!(
                        "{} ({})",
                        t.gen_time,
                        if t.checked {
                            "checked against the TSA certificates given"
                        } else {
                            "not checked: no TSA certificates given"
                        }
                    )),
                ));
            }
        }
        None => d.push(Block::Para(
            "This report is itself listed in the tag manifest (tagmanifest-sha256.txt), so the \
             tag manifest's own SHA-256, the signature over it and any RFC 3161 timestamp of it \
             cannot appear here. Print them with `sha256sum tagmanifest-sha256.txt`, or run \
             `custos report` on the package for a copy of this report that states them and the \
             result of verifying it."
                .into(),
        )),
    }
    d.push(Block::Pairs(p));
}

fn receipts(s: &Seal, d: &mut Vec<Block>) {
    d.push(Block::Heading("Storage receipts".into()));
    if s.receipts.is_empty() {
        d.push(Block::Para(
            "No upload receipt is beside this package (receipts/).".into(),
        ));
        return;
    }
    d.push(Block::Table {
        head: vec!["Receipt".into(), "Destination".into(), "State".into()],
        widths: vec![0.45, 0.35, 0.2],
        rows: s
            .receipts
            .iter()
            .map(|r| {
                vec![
                    Cell::mono(&r.file),
                    Cell::text(&r.target),
                    Cell::text(&r.state),
                ]
            })
            .collect(),
    });
}

fn how_to_check(f: &Facts, d: &mut Vec<Block>) {
    d.push(Block::Heading("How to check this package yourself".into()));
    d.push(Block::Para(
        "Each step uses a tool custos did not write. Run them from the directory that holds the \
         package (shown as EXPORT)."
            .into(),
    ));
    let signed = f
        .timeline
        .signing_key
        .as_deref()
        .is_some_and(|k| k.starts_with("key id"));
    let mut steps: Vec<(&str, Vec<&str>)> = vec![
        (
            "The bag: every file present, complete and unaltered (bagit-python, RFC 8493)",
            vec!["bagit.py --validate EXPORT"],
        ),
        (
            "The same with hashdeep, and one recording with coreutils",
            vec![
                "(cd EXPORT && hashdeep -c sha256 -r -l -a -k hashdeep-sha256.txt data)",
                "(cd EXPORT/data/recordings/CONVERSATION && sha256sum -c RECORDING.wav.sha256)",
            ],
        ),
    ];
    if signed {
        steps.push((
            "Who sealed it: the signature over the tag manifest (minisign)",
            vec!["minisign -Vm EXPORT/tagmanifest-sha256.txt -p custos.pub"],
        ));
    }
    steps.push((
        "When it existed, if the export was timestamped: the RFC 3161 token (OpenSSL)",
        vec!["openssl ts -verify -data EXPORT/tagmanifest-sha256.txt -in EXPORT/tagmanifest-sha256.txt.tsr -CAfile tsa-ca.pem"],
    ));
    steps.push((
        "Everything at once, and the custody log's chain (custos; add --tsa-ca tsa-ca.pem if timestamped)",
        vec![if signed {
            "custos verify EXPORT --pubkey custos.pub"
        } else {
            "custos verify EXPORT"
        }],
    ));
    let mut c = Vec::new();
    for (n, (what, cmds)) in steps.into_iter().enumerate() {
        c.push(format!("# {}. {what}", n + 1));
        c.extend(cmds.into_iter().map(str::to_owned));
    }
    d.push(Block::Commands(c));
}

fn certification(f: &Facts, sealed: Option<&Seal>, d: &mut Vec<Block>) {
    d.push(Block::Heading(
        "Draft certification under Federal Rule of Evidence 902(14)".into(),
    ));
    d.push(Block::Note(
        "A draft for counsel to review and adapt; not legal advice. Rule 902(14) requires a \
         certification by a qualified person that meets Rule 902(11) or (12), and notice to the \
         adverse party."
            .into(),
    ));
    let seal = match sealed {
        Some(s) => format!(
            "the tag manifest of the package, which lists the SHA-256 of every file in it, has \
             SHA-256 {}",
            s.tag_manifest_sha256
        ),
        None => "the tag manifest of the package lists the SHA-256 of every file in it".into(),
    };
    let exported = f.tally[Outcome::Exported];
    let types = if f.exported_types.is_empty() {
        "none".to_owned()
    } else {
        f.exported_types
            .iter()
            .map(|(t, n)| format!("{n} {t}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let org = match (
        f.info("Genesys-Organization-Name"),
        f.info("Genesys-Organization-Id"),
    ) {
        (Some(name), Some(id)) => format!("the Genesys Cloud organization {name} ({id})"),
        (None, Some(id)) => format!("the Genesys Cloud organization {id}"),
        _ => "a Genesys Cloud organization".to_owned(),
    };
    // How the bytes were asked for: as Genesys recorded them, or as it converted them.
    let retrieval = match (
        f.query_str("/retrieval/mode"),
        f.query_str("/retrieval/formatId"),
    ) {
        (Some("transcode"), Some(fmt)) => format!(
            "Call recordings were downloaded as Genesys converted them on request to {fmt}: Genesys' renditions of the recordings, not their original encoding. Screen recordings, emails, chats and messaging threads were downloaded as Genesys keeps them."
        ),
        (Some("batch"), _) => "Recordings were downloaded through Genesys' batch download, in the format Genesys recorded them in (their original codec)."
            .to_owned(),
        _ => "Recordings were downloaded as Genesys served them.".to_owned(),
    };
    // Read from the organization's own bucket: custody by this process began there.
    let retrieval = match f.query_str("/retrieval/archive/location") {
        Some(location) => format!(
            "Recordings were read from the organization's own recording archive at {location}, \
             where Genesys' recording bulk-actions integration had written them in their \
             original encoding; custody by this process began when each was read. Before that, \
             the store's LastModified time (recorded for each recording) says when it was \
             written there, and nothing Genesys provides proves that the bytes were not changed \
             in the bucket since: each was held to the API's record of the same recording \
             (its duration, and the archive's metadata file beside it, kept as received). {}{}",
            match f.query_str("/retrieval/archive/bulkExport/integrationId") {
                Some(id) => format!(
                    "Before reading it, this collection had Genesys run a recording bulk job \
                     (action EXPORT, through the integration {id}) for the query's \
                     conversations: such a job sets the export date of each recording it \
                     exports, a change at the source made by this collection; the job's id and \
                     end are in the custody log (bulk-export-created, bulk-export-ended). "
                ),
                None => String::new(),
            },
            match f.query_str("/retrieval/archive/missing") {
                Some("api") => format!(
                    "Recordings the archive lacked were fetched through the API instead: {retrieval}"
                ),
                _ => "Recordings the archive lacked were not exported.".to_owned(),
            }
        ),
        None => retrieval,
    };
    // Collected orphans (--collect-orphans) came another way, whatever the mode above says.
    let retrieval = match f.reconciliation.orphans_added {
        0 => retrieval,
        n => {
            let fmt = match f.query_str("/retrieval/mode") {
                Some("transcode") => f.query_str("/retrieval/formatId").unwrap_or("WAV"),
                _ => "WAV",
            };
            format!(
                "{retrieval} The {n} orphan recording(s) collected with them (recordings Genesys \
                 knows no conversation for, chosen by the query's interval alone) were downloaded \
                 through its orphan media endpoint, as Genesys converted them on request to \
                 {fmt}."
            )
        }
    };
    let tolerance = f.info("Duration-Tolerance-Seconds").unwrap_or("1");
    let paragraphs = [
        "I, ______________________, declare:".to_owned(),
        "1. I am ______________________ (title) at ______________________ (organization). I am \
         familiar with the process described here and qualified to certify it."
            .to_owned(),
        format!(
            "2. On {}, using {} version {} (commit {}), I caused the recordings of matter {} \
             to be copied from {org}, served at {}, selected by the query recorded in \
             data/query.json (SHA-256 {}). What was exported, by content type as received: \
             {types}. {retrieval}",
            f.query_str("/startedAt").unwrap_or("______"),
            f.info("Export-Tool").unwrap_or("custos"),
            f.info("Export-Tool-Version").unwrap_or("?"),
            f.info("Export-Tool-Commit").unwrap_or("?"),
            f.info("External-Identifier").unwrap_or("______"),
            f.query_str("/apiBase").unwrap_or("______"),
            f.info("Query-SHA256").unwrap_or("?"),
        ),
        format!(
            "3. Each recording was authenticated by a process of digital identification: its \
             SHA-256 hash value was computed over the bytes as received from the source, checked \
             against the size the source stated, and recorded at that moment in a hash-chained \
             custody log (head {}). Genesys provides no hash value of a recording at its \
             source, so none was compared: what was checked instead is each file's size against \
             the size the source stated and, for audio and video, its playable duration, read \
             from the file, against the duration the source stated (a difference over {tolerance} \
             s, or damage inside the file, made it Corrupted, kept apart and not exported). \
             {exported} recordings were exported; the {} other items are listed with the reason \
             for each in data/chain_of_custody.csv.",
            f.info("Custody-Log-Head").unwrap_or("?"),
            f.exceptions_total,
        ),
        format!(
            "4. The payload manifest's Merkle root is {}; {seal}. A copy whose files produce the \
             same hash values is an exact duplicate of the data copied.",
            f.info(crate::package::MERKLE_ROOT_LABEL).unwrap_or("?")
        ),
        "I declare under penalty of perjury under the laws of ______________________ that the \
         foregoing is true and correct."
            .to_owned(),
    ];
    for p in paragraphs {
        d.push(Block::Para(p));
    }
    for b in [
        "Executed on (date)",
        "At (place)",
        "Signature",
        "Printed name",
    ] {
        d.push(Block::Blank(b.into()));
    }
}

impl Seal {
    /// The verification result in one sentence, and whether it is good news.
    fn verdict_text(&self) -> (String, bool) {
        let s = self;
        let n = s.findings.len();
        match s.verdict.as_str() {
            "verified" => (
                format!(
                    "Verified on {}: every check passed and the signature verifies with the key given.",
                    s.checked_at
                ),
                true,
            ),
            "intact-unsigned" => (
                format!(
                    "Checked on {}: the package is intact, but it is not signed, so nothing proves who sealed it.",
                    s.checked_at
                ),
                true,
            ),
            "intact-origin-unchecked" => (
                format!(
                    "Checked on {}: the package is intact, but who sealed it was not checked (no public key given).",
                    s.checked_at
                ),
                true,
            ),
            _ => (
                format!(
                    "NOT INTACT. Checked on {}: {n} finding(s). {}",
                    s.checked_at,
                    s.findings
                        .iter()
                        .take(20)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                false,
            ),
        }
    }

    fn signature_text(&self) -> String {
        match self.signature.as_str() {
            "verified" => "present; verifies with the key given".into(),
            "origin-unchecked" => "present; not checked (no public key given)".into(),
            "invalid" => "present; does NOT verify with the key given".into(),
            _ => "none".into(),
        }
    }
}
