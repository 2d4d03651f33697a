//! Counsel's approvals beside the bag (`approvals/*.json`, crate::approve): each bound to this
//! sealed package and to a `Corrupted` item of it, and, when approver keys are given, signed by
//! one of them.

use std::path::PathBuf;

use serde::Serialize;

use super::finding::{FindingKind as K, Findings};
use super::fsys::{Bag, Refused};
use crate::approve::{self, Approval};

/// One approval as verification found it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalReport {
    /// The statement's path in the package.
    pub file: String,
    /// What it states.
    pub approval: Approval,
    /// Its signature verified with an approver key given (`--approver-key`); without one,
    /// nothing proves who wrote it, and nothing acts on it.
    pub checked: bool,
}

/// Every approval beside the bag, checked against this package (`tag_sha256`, the custody
/// record's `rows`) and, where keys are given, their signatures.
pub(super) fn check_approvals(
    bag: &Bag,
    keys: &[PathBuf],
    tag_sha256: &str,
    rows: &[super::record::Row],
    f: &mut Findings,
) -> Vec<ApprovalReport> {
    let dir = match bag.lstat(approve::DIR) {
        Ok(m) if m.is_dir() => bag.path(approve::DIR),
        Ok(_) => {
            f.push(
                K::SpecialFile,
                approve::DIR,
                "is not a directory (a link or a file); not followed",
            );
            return Vec::new();
        }
        Err(_) => return Vec::new(),
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let rel = format!("{}/{name}", approve::DIR);
        let Some(id) = approve::recording_of(&name) else {
            f.push(K::ApprovalInvalid, rel, "its name is not a recording id");
            continue;
        };
        let bytes = match bag.read(&rel, approve::MAX_BYTES) {
            Ok(b) => b,
            Err(e) => {
                f.add(e.finding(&rel));
                continue;
            }
        };
        let a = match approve::parse(&bytes) {
            Ok(a) => a,
            Err(why) => {
                f.push(K::ApprovalInvalid, rel, why);
                continue;
            }
        };
        if a.recording_id != id {
            f.push(
                K::ApprovalInvalid,
                rel,
                format!("approves {}, not the item it is named for", a.recording_id),
            );
            continue;
        }
        if a.tag_manifest_sha256 != tag_sha256 {
            f.push(
                K::ApprovalInvalid,
                rel,
                "names another package's tag manifest: it approves an item of another export, or the bag changed after approval",
            );
            continue;
        }
        let row = rows.iter().find(|r| r.get("Recording_ID") == Some(id));
        let get = |k: &str| row.and_then(|r| r.get(k)).unwrap_or("");
        if get("Outcome") != "Corrupted"
            || get("File_Name") != a.file
            || get("SHA256_Hash") != a.sha256
        {
            f.push(
                K::ApprovalInvalid,
                rel,
                format!(
                    "approves {} ({}, SHA-256 {}), which is not a Corrupted item of this export's custody record",
                    a.recording_id, a.file, a.sha256
                ),
            );
            continue;
        }
        let sig = format!("{rel}.minisig");
        let checked = if keys.is_empty() {
            false
        } else if matches!(bag.lstat(&sig), Err(Refused::Missing)) {
            f.push(
                K::ApprovalUnsigned,
                rel,
                "not signed, so nothing proves who approved; it is not acted on",
            );
            continue;
        } else {
            let tried: Vec<String> = keys
                .iter()
                .filter_map(|k| super::signature::check_signed(bag, &rel, &sig, k).err())
                .collect();
            if tried.len() == keys.len() {
                f.push(
                    K::ApprovalSignatureInvalid,
                    rel,
                    format!("no approver key given verifies it ({})", tried.join("; ")),
                );
                continue;
            }
            true
        };
        out.push(ApprovalReport {
            file: rel,
            approval: a,
            checked,
        });
    }
    out
}
