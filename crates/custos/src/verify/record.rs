//! The custody record: the seals in bag-info, `manifest.csv` ↔ `chain_of_custody.csv` ↔ the
//! files ↔ their sidecars, and the custody log (its chain and head, and for every item the
//! outcome and the hash at acquisition: the three-way comparison).

use crate::package::files;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::finding::{FindingKind as K, Findings};
use super::fsys::Bag;
use crate::custody::{ChainCheck, check_chain_lines, csv_cell};

const CSV_CAP: u64 = 1 << 30;
const LOG_LINE: usize = 4 << 20;

/// A CSV row, its cells read by header name: one buffer a row, the header shared by every row
/// of the file (a million-row custody record is held as its bytes and offsets, not as a map of
/// seventeen names and values a row).
#[derive(Clone, Debug)]
pub(super) struct Row {
    headers: std::sync::Arc<csv::StringRecord>,
    cells: csv::StringRecord,
}

impl Row {
    /// The cell under `header` (the last, if the header names it twice, as a map of the row
    /// would keep it); `None` when the row is too short to have one.
    pub(super) fn get(&self, header: &str) -> Option<&str> {
        self.headers
            .iter()
            .zip(self.cells.iter())
            .filter(|(h, _)| *h == header)
            .map(|(_, v)| v)
            .last()
    }
}

/// An item's key in every record: (conversation id, recording id), as the CSVs write them.
fn key(conv: &str, rec: &str) -> (String, String) {
    (conv.to_owned(), rec.to_owned())
}

fn row_key(r: &Row) -> (String, String) {
    key(
        r.get("Conversation_ID").unwrap_or(""),
        r.get("Recording_ID").unwrap_or(""),
    )
}

fn shown_key(k: &(String, String)) -> String {
    match (k.0.is_empty(), k.1.is_empty()) {
        (_, false) => k.1.clone(),
        (false, true) => format!("conversation {}", k.0),
        (true, true) => "(no id)".into(),
    }
}

/// The rows of the CSV at `rel`, by header name.
pub(super) fn read_csv(bag: &Bag, rel: &str, f: &mut Findings) -> Vec<Row> {
    let bytes = match bag.read(rel, CSV_CAP) {
        Ok(b) => b,
        Err(e) => {
            f.add(e.finding(rel));
            return Vec::new();
        }
    };
    let mut r = csv::Reader::from_reader(bytes.as_slice());
    let headers = std::sync::Arc::new(r.headers().cloned().unwrap_or_default());
    r.records()
        .filter_map(|x| x.ok())
        .map(|cells| Row {
            headers: headers.clone(),
            cells,
        })
        .collect()
}

/// Query-SHA256 and Manifest-SHA256 in bag-info against the files' hashes now.
pub(super) fn check_seals(
    info: &BTreeMap<String, String>,
    sha256: &BTreeMap<String, String>,
    f: &mut Findings,
) {
    for (label, rel) in [
        ("Query-SHA256", files::QUERY),
        ("Manifest-SHA256", files::MANIFEST_CSV),
    ] {
        let now = sha256.get(rel).map(String::as_str).unwrap_or("");
        if info.get(label).map(String::as_str) != Some(now) {
            f.push(
                K::SealMismatch,
                rel,
                format!(
                    "{label} in bag-info.txt is {:?}, the file hashes to {now:?}",
                    info.get(label)
                ),
            );
        }
    }
}

/// Every manifest item has exactly one custody row, every row an item, a valid outcome, and
/// (if it names a file) that file, with the manifest's hash and a sidecar saying so; every
/// evidence file has a row. Returns the number of manifest items.
pub(super) fn check_rows(
    bag: &Bag,
    rows: &[Row],
    items: &[Row],
    manifest: &BTreeMap<String, String>,
    disk: &BTreeSet<&str>,
    f: &mut Findings,
) -> u64 {
    let mut by_key: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in rows {
        *by_key.entry(row_key(r)).or_default() += 1;
    }
    let listed: BTreeSet<(String, String)> = items.iter().map(row_key).collect();
    if listed.len() != items.len() {
        f.push(
            K::ItemDuplicated,
            files::MANIFEST_CSV,
            "an item is listed more than once",
        );
    }
    for k in &listed {
        match by_key.get(k).copied().unwrap_or(0) {
            1 => {}
            0 => f.push(
                K::ItemWithoutOutcome,
                shown_key(k),
                "in manifest.csv but not in chain_of_custody.csv",
            ),
            n => f.push(
                K::ItemDuplicated,
                shown_key(k),
                format!("{n} rows in chain_of_custody.csv"),
            ),
        }
    }
    for k in by_key.keys() {
        if !listed.contains(k) {
            f.push(
                K::RowWithoutItem,
                shown_key(k),
                "in chain_of_custody.csv but not in manifest.csv",
            );
        }
    }
    let mut referenced = BTreeSet::new();
    for r in rows {
        if let Some(file) = check_row_file(bag, r, manifest, disk, f) {
            referenced.insert(file);
        }
    }
    for rel in disk {
        let evidence = rel.starts_with("data/recordings/")
            || rel.starts_with("data/orphans/")
            || rel.starts_with("data/quarantine/");
        if evidence && !rel.ends_with(".sha256") && !referenced.contains(*rel) {
            f.push(K::FileWithoutRow, *rel, "no custody row names this file");
        }
    }
    listed.len() as u64
}

/// One custody row: a valid outcome, and the file it names in the payload, with the
/// manifest's hash and a sidecar saying so. Returns the file it names, if any.
fn check_row_file(
    bag: &Bag,
    r: &Row,
    manifest: &BTreeMap<String, String>,
    disk: &BTreeSet<&str>,
    f: &mut Findings,
) -> Option<String> {
    let id = shown_key(&row_key(r));
    let get = |h: &str| r.get(h).unwrap_or_default().to_owned();
    let outcome = get("Outcome");
    if crate::model::Outcome::parse(&outcome).is_none() {
        f.push(
            K::BadOutcome,
            id.clone(),
            format!("outcome '{outcome:.40}'"),
        );
    }
    let file = get("File_Name");
    if file.is_empty() {
        return None;
    }
    let sha = get("SHA256_Hash");
    if !disk.contains(file.as_str()) {
        f.push(
            K::RowWithoutFile,
            id,
            format!("{file:.200} is not a file of the payload"),
        );
        return Some(file);
    }
    if manifest.get(&file) != Some(&sha) {
        f.push(
            K::CustodyHashMismatch,
            id.clone(),
            format!(
                "chain_of_custody.csv says {sha}, manifest-sha256.txt says {:?}",
                manifest.get(&file)
            ),
        );
    }
    let sidecar = format!("{file}.sha256");
    let name = file.rsplit('/').next().unwrap_or("");
    match bag.read(&sidecar, 4096) {
        Ok(t) if t == format!("{sha}  {name}\n").as_bytes() => {}
        Ok(_) => f.push(
            K::SidecarMismatch,
            sidecar,
            format!("does not read '{sha}  {name}'"),
        ),
        Err(super::fsys::Refused::Missing) => f.push(K::SidecarMissing, sidecar, "missing"),
        Err(e) => f.add(e.finding(&sidecar)),
    }
    Some(file)
}

/// A hash-chained log of the bag (`rel`): its chain, and its head against bag-info's `label`;
/// `each` sees every event. Returns the head when the chain holds.
pub(super) fn check_chained_log(
    bag: &Bag,
    rel: &str,
    info: &BTreeMap<String, String>,
    label: &str,
    f: &mut Findings,
    each: impl FnMut(&Value),
) -> Option<String> {
    let file = match bag.open(rel) {
        Ok((file, _)) => file,
        Err(e) => {
            f.add(e.finding(rel));
            return None;
        }
    };
    match check_chain_lines(std::io::BufReader::new(file), LOG_LINE, each) {
        Ok(ChainCheck {
            head, torn_bytes, ..
        }) => {
            if torn_bytes > 0 {
                f.push(
                    K::LogTruncated,
                    rel,
                    format!("{torn_bytes} bytes after the last whole line"),
                );
            }
            if info.get(label) != Some(&head) {
                f.push(
                    K::LogHeadMismatch,
                    rel,
                    format!(
                        "head {head} differs from bag-info's {label} {:?}",
                        info.get(label)
                    ),
                );
            }
            Some(head)
        }
        Err(e) => {
            f.push(K::LogChainBroken, rel, e.to_string());
            None
        }
    }
}

/// The custody log: its chain, its head against bag-info, and each row's outcome and (for
/// Exported rows) hash against what the log recorded at acquisition. Returns the head.
pub(super) fn check_log(
    bag: &Bag,
    info: &BTreeMap<String, String>,
    rows: &[Row],
    f: &mut Findings,
) -> Option<LogFacts> {
    let mut acquired: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut logged: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut sealed_with = None;
    let s = |v: &Value, k: &str| csv_cell(v[k].as_str().unwrap_or("")).into_owned();
    let head = check_chained_log(bag, files::CUSTODY_LOG, info, "Custody-Log-Head", f, |e| {
        let k = key(&s(e, "conversationId"), &s(e, "recordingId"));
        match e["event"].as_str() {
            Some("download-attempt") if e["result"] == "complete" => {
                acquired.insert(k, s(e, "sha256"));
            }
            Some("outcome") => {
                logged.insert(k, s(e, "outcome"));
            }
            // The last run's key is the one that sealed the package.
            Some("export-run") => {
                sealed_with = e["settings"]["sign-key"].as_str().map(str::to_owned);
            }
            _ => {}
        }
    })?;
    for r in rows {
        let k = row_key(r);
        let outcome = r.get("Outcome").unwrap_or_default().to_owned();
        if logged.get(&k) != Some(&outcome) {
            f.push(
                K::OutcomeDisagreesWithLog,
                shown_key(&k),
                format!(
                    "custody row says {outcome:.40}, the log says {:?}",
                    logged.get(&k)
                ),
            );
        }
        if outcome == "Exported" {
            let sha = r.get("SHA256_Hash").unwrap_or_default().to_owned();
            if acquired.get(&k) != Some(&sha) {
                f.push(
                    K::AcquisitionHashMismatch,
                    shown_key(&k),
                    format!(
                        "acquired as {:?} (custody log), recorded as {sha:.64}",
                        acquired.get(&k)
                    ),
                );
            }
        }
    }
    Some(LogFacts { head, sealed_with })
}

/// What the custody log says about the package's seal.
#[derive(Debug)]
pub(super) struct LogFacts {
    /// The hash of its last line.
    pub head: String,
    /// The last run's `--sign-key` setting as logged: `key id <hex>`, `(unsigned)`, or `None`
    /// when the log does not say (a production volume, an export made before it was logged).
    pub sealed_with: Option<String>,
}
