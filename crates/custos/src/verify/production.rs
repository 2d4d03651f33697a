//! A production volume (`custos produce`; bag-info `Custos-Package-Type: production`): its
//! production log's chain and head, and its cross-reference against the natives: every native
//! named by one control number, with the SHA-256 the source export recorded for it, and as many
//! documents as bag-info states.

use crate::package::files;
use std::collections::{BTreeMap, BTreeSet};

use super::finding::{FindingKind as K, Findings};
use super::fsys::Bag;

const LOG: &str = "data/production_log.jsonl";

/// Whether bag-info says this is a production volume.
pub(super) fn is_production(info: &BTreeMap<String, String>) -> bool {
    info.get("Custos-Package-Type").map(String::as_str) == Some("production")
}

/// The production log's chain and head; the head (when the chain holds) for the signature.
pub(super) fn check_log(
    bag: &Bag,
    info: &BTreeMap<String, String>,
    f: &mut Findings,
) -> Option<String> {
    super::record::check_chained_log(bag, LOG, info, "Production-Log-Head", f, |_| {})
}

/// The cross-reference against the natives and the payload manifest; the documents counted.
pub(super) fn check_xref(
    bag: &Bag,
    info: &BTreeMap<String, String>,
    manifest: &BTreeMap<String, String>,
    f: &mut Findings,
) -> u64 {
    let prefix = info.get("Production-Prefix").cloned().unwrap_or_default();
    // Beside the load files: in `data/` (volumes since load-file paths are relative to them),
    // or `data/DATA/` (volumes made before).
    let rel = [
        format!("data/{prefix}_xref.csv"),
        format!("data/DATA/{prefix}_xref.csv"),
    ]
    .into_iter()
    .find(|r| manifest.contains_key(r))
    .unwrap_or_else(|| format!("data/{prefix}_xref.csv"));
    let text = match bag.read_text(&rel, 1 << 30) {
        Ok(t) => t,
        Err(e) => {
            f.add(e.finding(&rel));
            return 0;
        }
    };
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let mut controls = BTreeSet::new();
    let mut by_control: BTreeMap<String, String> = BTreeMap::new();
    for rec in r.records() {
        let Ok(rec) = rec else {
            f.push(K::FileWithoutRow, &rel, "a line is not CSV");
            continue;
        };
        let (control, sha) = (rec.get(0).unwrap_or(""), rec.get(2).unwrap_or(""));
        if !controls.insert(control.to_owned()) {
            f.push(
                K::ItemDuplicated,
                &rel,
                format!("{control} is listed twice"),
            );
        }
        by_control.insert(control.to_owned(), sha.to_owned());
    }
    let natives: Vec<(&String, &String)> = manifest
        .iter()
        .filter(|(p, _)| p.starts_with("data/NATIVES/"))
        .collect();
    for (path, sha) in &natives {
        // `data/NATIVES/0001/ACME0000001.wav` (or, before subfolders, without `0001/`).
        let stem = path
            .rsplit('/')
            .next()
            .unwrap_or("")
            .split('.')
            .next()
            .unwrap_or("");
        match by_control.remove(stem) {
            None => f.push(
                K::FileWithoutRow,
                path.as_str(),
                "no control number in the cross-reference names it",
            ),
            Some(x) if x != **sha => f.push(
                K::CustodyHashMismatch,
                path.as_str(),
                format!(
                    "the cross-reference says the export's SHA-256 is {x:.64}, the manifest {sha}"
                ),
            ),
            Some(_) => {}
        }
    }
    for control in by_control.keys() {
        f.push(
            K::RowWithoutFile,
            control.clone(),
            "in the cross-reference, but no native has this control number",
        );
    }
    let stated = info
        .get("Production-Documents")
        .cloned()
        .unwrap_or_default();
    if stated != natives.len().to_string() {
        f.push(
            K::FileWithoutRow,
            files::BAG_INFO,
            format!(
                "Production-Documents says {stated}, data/NATIVES holds {}",
                natives.len()
            ),
        );
    }
    natives.len() as u64
}
