//! The links of an ongoing hold's chain (`custos verify LATEST --previous EARLIER …`, the
//! immediate predecessor first): each earlier bag is verified in full, and each link checked —
//! the later bag names the earlier one's tag-manifest SHA-256 and custody-log head, and its
//! list of recordings exported earlier is exactly the earlier bag's list plus what the earlier
//! bag exported; no recording is exported by two bags. So changing an earlier bag, or swapping
//! it for another, is reported by verifying a later one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::finding::{FindingKind as K, Findings};
use super::{VerifyOptions, verify};
use crate::export::read_prior;

/// Checks the bag at `root` (its bag-info `info`, custody rows `rows`) against `previous`.
pub(super) fn check_links(
    root: &std::path::Path,
    info: &BTreeMap<String, String>,
    rows: &[BTreeMap<String, String>],
    previous: &[PathBuf],
    opts: &VerifyOptions,
    f: &mut Findings,
) {
    let Some(prev) = previous.first() else {
        return;
    };
    let here = "bag-info.txt";
    let Some(named_tag) = info.get("Chain-Previous-Tag-Manifest-SHA256") else {
        f.push(
            K::ChainBroken,
            here,
            format!("--previous {} was given, but this bag continues no chain (no Chain-Previous-… labels)", prev.display()),
        );
        return;
    };
    let earlier = VerifyOptions {
        previous: previous[1..].to_vec(),
        sample: 1.0,
        seed: None,
        ..opts.clone()
    };
    match verify(prev, &earlier) {
        Err(e) => {
            f.push(
                K::ChainPreviousDamaged,
                prev.display().to_string(),
                e.to_string(),
            );
            return;
        }
        Ok(r) => {
            for x in r.findings {
                f.push(
                    K::ChainPreviousDamaged,
                    format!("{}: {}", prev.display(), x.r#where),
                    format!("{}: {}", x.kind, x.what),
                );
            }
        }
    }
    let actual = std::fs::read(prev.join("tagmanifest-sha256.txt"))
        .map(|b| crate::digest::Sha256::of(&b).hex())
        .unwrap_or_default();
    if &actual != named_tag {
        f.push(
            K::ChainBroken,
            here,
            format!(
                "names the previous bag's tag manifest {named_tag}; {}'s is {actual}",
                prev.display()
            ),
        );
    }
    check_labels(info, prev, f);
    check_prior(root, rows, prev, f);
}

/// The later bag names the earlier one's custody-log head and export id, and the next number.
fn check_labels(info: &BTreeMap<String, String>, prev: &std::path::Path, f: &mut Findings) {
    let here = "bag-info.txt";
    let prev_info: BTreeMap<String, String> = std::fs::read_to_string(prev.join("bag-info.txt"))
        .map(|t| crate::package::parse_tags(&t).into_iter().collect())
        .unwrap_or_default();
    for (mine, theirs) in [
        ("Chain-Previous-Custody-Log-Head", "Custody-Log-Head"),
        ("Chain-Previous-Export-Id", "Export-Id"),
    ] {
        if info.get(mine) != prev_info.get(theirs) {
            f.push(
                K::ChainBroken,
                here,
                format!(
                    "{mine} is {:?}; the previous bag's {theirs} is {:?}",
                    info.get(mine),
                    prev_info.get(theirs)
                ),
            );
        }
    }
    let prev_seq: u64 = prev_info
        .get("Chain-Sequence")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    if info
        .get("Chain-Sequence")
        .and_then(|s| s.parse::<u64>().ok())
        != Some(prev_seq + 1)
    {
        f.push(
            K::ChainBroken,
            here,
            format!(
                "Chain-Sequence is not {} (the previous bag's plus one)",
                prev_seq + 1
            ),
        );
    }
}

/// The list of what came before is the earlier bag's list plus what it exported, and nothing
/// exported here was exported before.
fn check_prior(
    root: &std::path::Path,
    rows: &[BTreeMap<String, String>],
    prev: &std::path::Path,
    f: &mut Findings,
) {
    // What came before: the earlier bag's list plus what it exported.
    let mut want = read_prior(prev).unwrap_or_default();
    if let Ok(o) = crate::package::outcomes(prev) {
        want.extend(
            o.into_iter()
                .filter(|(_, out)| out == "Exported")
                .map(|(id, _)| id),
        );
    }
    let prior = read_prior(root).unwrap_or_default();
    if prior != want {
        let missing = want.difference(&prior).count();
        let extra = prior.difference(&want).count();
        f.push(
            K::ChainBroken,
            crate::export::PRIOR_FILE,
            format!("does not list exactly what the earlier bags exported: {missing} missing, {extra} not exported by them"),
        );
    }
    let twice: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.get("Outcome").map(String::as_str) == Some("Exported"))
        .filter_map(|r| r.get("Recording_ID").map(String::as_str))
        .filter(|id| prior.contains(*id))
        .collect();
    if let Some(id) = twice.first() {
        f.push(
            K::ChainBroken,
            "data/chain_of_custody.csv",
            format!("{} recording(s) exported here were exported by an earlier bag of the chain, e.g. {id}", twice.len()),
        );
    }
}
