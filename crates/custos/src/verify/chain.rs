//! The links of an ongoing hold's chain (`custos verify LATEST --previous EARLIER …`, the
//! immediate predecessor first): each earlier bag is verified in full, and each link checked —
//! the later bag names the earlier one's tag-manifest SHA-256 and custody-log head, and its
//! list of recordings exported earlier is exactly the earlier bag's list plus what the earlier
//! bag exported; no recording is exported by two bags. So changing an earlier bag, or swapping
//! it for another, is reported by verifying a later one.

use crate::package::files;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::files::CHAIN_PRIOR as PRIOR_FILE;
use super::finding::{FindingKind as K, Findings};
use super::fsys::Bag;
use super::{VerifyOptions, verify};

/// The longest list of earlier exports read (about 14 million recording ids).
const PRIOR_CAP: u64 = 512 << 20;

/// A bag's list of what its predecessors exported, read as verify reads everything: a regular
/// file inside the bag, never a link or a FIFO, capped (empty if absent).
fn prior(bag: &Bag) -> BTreeSet<String> {
    bag.read_text(PRIOR_FILE, PRIOR_CAP)
        .map(|s| {
            s.lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Checks the bag at `root` (its bag-info `info`, custody rows `rows`) against `previous`.
pub(super) fn check_links(
    root: &std::path::Path,
    info: &BTreeMap<String, String>,
    rows: &[super::record::Row],
    previous: &[PathBuf],
    opts: &VerifyOptions,
    f: &mut Findings,
) {
    let Some(prev) = previous.first() else {
        return;
    };
    let here = files::BAG_INFO;
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
    let prev_bag = Bag::new(prev);
    let actual = prev_bag
        .read(files::TAG_MANIFEST, 1 << 30)
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
    check_labels(info, &prev_bag, f);
    check_prior(&Bag::new(root), rows, &prev_bag, f);
}

/// The later bag names the earlier one's custody-log head and export id, and the next number.
fn check_labels(info: &BTreeMap<String, String>, prev: &Bag, f: &mut Findings) {
    let here = files::BAG_INFO;
    let prev_info: BTreeMap<String, String> = prev
        .read_text(files::BAG_INFO, super::bag::SMALL_TEXT)
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
fn check_prior(root: &Bag, rows: &[super::record::Row], prev: &Bag, f: &mut Findings) {
    // What came before: the earlier bag's list plus what it exported.
    let mut want = prior(prev);
    let prev_rows = super::record::read_csv(prev, files::CUSTODY_CSV, &mut Findings::default());
    want.extend(
        prev_rows
            .iter()
            .filter(|r| r.get("Outcome") == Some("Exported"))
            .filter_map(|r| r.get("Recording_ID").map(str::to_owned)),
    );
    let prior = prior(root);
    if prior != want {
        let missing = want.difference(&prior).count();
        let extra = prior.difference(&want).count();
        f.push(
            K::ChainBroken,
            PRIOR_FILE,
            format!("does not list exactly what the earlier bags exported: {missing} missing, {extra} not exported by them"),
        );
    }
    let twice: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.get("Outcome") == Some("Exported"))
        .filter_map(|r| r.get("Recording_ID"))
        .filter(|id| prior.contains(*id))
        .collect();
    if let Some(id) = twice.first() {
        f.push(
            K::ChainBroken,
            files::CUSTODY_CSV,
            format!("{} recording(s) exported here were exported by an earlier bag of the chain, e.g. {id}", twice.len()),
        );
    }
}
