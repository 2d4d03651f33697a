//! `custos verify`: checks an export as a distrustful third party would, on a package an
//! adversary may have prepared, and never laxer than bagit-python: the bag (every manifest
//! and tag manifest, safe and unique entries, completeness, Payload-Oxum), the sidecars, the
//! custody record against the manifest and the files (every item in exactly one outcome, no
//! file without a row, no row without its file), the custody log's chain and head, the seals in
//! bag-info, the signature, and for every exported file a three-way comparison: the hash at
//! acquisition (custody log), the hash in the manifests, the hash recomputed now. Upload
//! receipts (`receipts/*.jsonl`, custos-store): chained, naming this bag's tag manifest, signed.
//!
//! Only regular files inside the bag are read ([`fsys`]): no link is followed, no FIFO or
//! device opened, no path with `..` or a leading `/` used, and every text file is read up to a
//! cap, so a hostile package gives findings, never a hang or a read outside it.
//!
//! Problems are **findings** (data: what, where, what to do), never early returns; only a
//! directory that is not an export at all is an error.

mod approval;
mod bag;
mod chain;
pub mod finding;
pub mod fsys;
pub mod open;
mod production;
mod record;
mod signature;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::Digest;

pub use crate::package::files;
pub use approval::ApprovalReport;
pub use finding::{Finding, FindingKind, Findings};
pub use open::{OpenError, Origin, Package, Require};
pub use signature::{SignatureStatus, TimestampReport, receipt_paths};

use fsys::{Bag, Refused, Walk};

/// How thoroughly to check.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// The minisign public key to check the signature with.
    pub pubkey: Option<PathBuf>,
    /// Hash only this fraction of the recordings (0 < f ≤ 1), drawn with [`VerifyOptions::seed`];
    /// the rest are checked for presence and size. Every other file is always hashed.
    pub sample: f64,
    /// The sample's seed; `None` draws a fresh one from the OS's CSPRNG (reported, so the
    /// same sample can be drawn again).
    pub seed: Option<Seed>,
    /// Hashing threads.
    pub threads: usize,
    /// The earlier bags of an ongoing hold's chain, the immediate predecessor first: each is
    /// verified, and each link checked (crate::export's `--increment-of`).
    pub previous: Vec<PathBuf>,
    /// The certificates to check RFC 3161 timestamps against (`openssl ts -verify -CAfile`).
    pub tsa_ca: Option<PathBuf>,
    /// Counsel's minisign public keys: an approval beside the bag (`custos approve`) counts
    /// only when one of them verifies it, and one none verifies is a finding.
    pub approver_keys: Vec<PathBuf>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            pubkey: None,
            sample: 1.0,
            seed: None,
            previous: Vec::new(),
            tsa_ca: None,
            approver_keys: Vec::new(),
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        }
    }
}

/// A sample's seed: 32 bytes, shown as 64 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seed(pub [u8; 32]);

impl Seed {
    /// A fresh seed from the operating system's CSPRNG.
    pub fn random() -> Result<Seed, VerifyError> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|e| VerifyError::Random(e.to_string()))?;
        Ok(Seed(b))
    }

    /// Parses 64 hex digits.
    pub fn parse(s: &str) -> Result<Seed, VerifyError> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut b)
            .map_err(|_| VerifyError::BadSeed(s.chars().take(80).collect()))?;
        Ok(Seed(b))
    }

    /// Whether the file at `rel` is in a sample of `fraction`: a keyed hash of its path, so
    /// that without the seed no one can tell which files a run will hash.
    pub fn picks(&self, rel: &str, fraction: f64) -> bool {
        if fraction >= 1.0 {
            return true;
        }
        let mut h = sha2::Sha256::new();
        h.update(self.0);
        h.update(rel.as_bytes());
        let d = h.finalize();
        let x = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
        (x as f64) < fraction * 18_446_744_073_709_551_616.0
    }
}

impl std::fmt::Display for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Which recordings a sampled run hashed.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SampleReport {
    /// The fraction asked for.
    pub fraction: f64,
    /// The seed (pass it as `--seed` to draw the same sample again).
    pub seed: String,
    /// Exported recordings in the custody record.
    pub recordings: u64,
    /// Of them, hashed.
    pub recordings_hashed: u64,
}

/// The one-word answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// No findings, and the signature verifies with the key given.
    Verified,
    /// No findings; the package is intact, but it is not signed: nothing proves who sealed it.
    IntactUnsigned,
    /// No findings; the package is signed but no key was given, so who sealed it is unchecked:
    /// an adversary could have re-sealed a changed package with a key of their own.
    IntactOriginUnchecked,
    /// Findings.
    Findings,
}

/// The result of a verification.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// The one-word answer.
    pub verdict: Verdict,
    /// Everything found wrong; empty means the export verified.
    pub findings: Vec<Finding>,
    /// Files hashed.
    pub files_hashed: u64,
    /// Bytes hashed.
    pub bytes_hashed: u64,
    /// Manifest items.
    pub items: u64,
    /// What is known of the package's origin.
    pub signature: SignatureStatus,
    /// The sample, when only a fraction of the recordings was hashed.
    pub sample: Option<SampleReport>,
    /// What the RFC 3161 timestamps in the bag attest.
    pub timestamps: Vec<signature::TimestampReport>,
    /// Counsel's approvals of `Corrupted` items beside the bag (`custos approve`).
    pub approvals: Vec<ApprovalReport>,
}

impl VerifyReport {
    /// Adds findings made elsewhere (the remote check) and settles the verdict again.
    pub fn extend(&mut self, more: impl IntoIterator<Item = Finding>) {
        self.findings.extend(more);
        self.verdict = verdict(&self.findings, self.signature, &self.timestamps);
    }
}

/// A timestamp nobody checked proves no time, as a signature nobody checked proves no origin:
/// an unsigned package with an unchecked timestamp is `IntactOriginUnchecked` too.
fn verdict(
    findings: &[Finding],
    sig: SignatureStatus,
    timestamps: &[signature::TimestampReport],
) -> Verdict {
    match sig {
        _ if !findings.is_empty() => Verdict::Findings,
        SignatureStatus::Absent if timestamps.iter().any(|t| !t.checked) => {
            Verdict::IntactOriginUnchecked
        }
        SignatureStatus::Verified => Verdict::Verified,
        SignatureStatus::OriginUnchecked => Verdict::IntactOriginUnchecked,
        SignatureStatus::Absent | SignatureStatus::Invalid => Verdict::IntactUnsigned,
    }
}

/// Why verification could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The directory is not an export.
    #[error("{path}: {why}")]
    NotAnExport {
        /// The directory.
        path: PathBuf,
        /// Why not.
        why: String,
    },
    /// `--seed` is not 64 hex digits.
    #[error("--seed must be 64 hex digits, not '{0}'")]
    BadSeed(String),
    /// A tool verification needs could not run.
    #[error("{0}")]
    Tool(String),
    /// The OS gave no random seed.
    #[error("cannot draw a random sample seed: {0}")]
    Random(String),
}

/// Verifies the export at `root`. `Err` only when it is not an export at all. A command that
/// acts on the package opens it with [`Package::open`] instead.
pub fn verify(root: &Path, opts: &VerifyOptions) -> Result<VerifyReport, VerifyError> {
    verify_sealed(root, opts).map(|(report, _)| report)
}

/// [`verify`], with what it read of the seals: bag-info's labels and every sealed SHA-256
/// (the payload manifest, the tag manifest, and the tag manifest's own hash).
fn verify_sealed(
    root: &Path,
    opts: &VerifyOptions,
) -> Result<(VerifyReport, open::Sealed), VerifyError> {
    let not = |why: &str| VerifyError::NotAnExport {
        path: root.to_path_buf(),
        why: why.to_owned(),
    };
    if !root.is_dir() {
        return Err(not("not a directory"));
    }
    let bag = Bag::new(root);
    if matches!(bag.lstat("data"), Err(Refused::Missing)) {
        return Err(not("no data/ directory; is this a custos export?"));
    }
    let seed = match (opts.sample < 1.0, opts.seed) {
        (false, _) => None,
        (true, Some(s)) => Some(s),
        (true, None) => Some(Seed::random()?),
    };
    let mut f = Findings::default();

    // The bag.
    bag::check_declaration(&bag, &mut f);
    let info = bag::read_info(&bag, &mut f);
    let manifests = bag::read_manifests(&bag, &mut f);
    let walk = match fsys::walk_data(&bag) {
        Ok(w) => w,
        Err(e) => {
            f.add(e.finding("data"));
            Walk::default()
        }
    };
    for x in &walk.findings {
        f.add(x.clone());
    }
    bag::check_completeness(&manifests, &walk, &mut f);
    bag::check_oxum(&info, &walk, &mut f);
    bag::check_merkle(&info, &manifests, &mut f);

    // Which payload files to hash: all but the recordings left out of the sample.
    let production = production::is_production(&info);
    let rows = if production {
        Vec::new()
    } else {
        record::read_csv(&bag, files::CUSTODY_CSV, &mut f)
    };
    let (hashed, sample) = hash_payload(&bag, &manifests, &walk, &rows, seed, opts, &mut f);
    let sizes: BTreeMap<&str, u64> = walk.files.iter().map(|(r, n)| (r.as_str(), *n)).collect();

    // The custody record and log (a production volume: its log and cross-reference).
    let (n_items, log) = if production {
        let n = production::check_xref(&bag, &info, manifests.sha256(), &mut f);
        let head = production::check_log(&bag, &info, &mut f);
        (
            n,
            head.map(|head| record::LogFacts {
                head,
                sealed_with: None,
            }),
        )
    } else {
        record::check_seals(&info, &hashed.sha256, &mut f);
        let items = record::read_csv(&bag, files::MANIFEST_CSV, &mut f);
        let disk: BTreeSet<&str> = sizes.keys().copied().collect();
        let n = record::check_rows(&bag, &rows, &items, manifests.sha256(), &disk, &mut f);
        (n, record::check_log(&bag, &info, &rows, &mut f))
    };

    // Who sealed it, and the upload receipts.
    let signature = signature::check_signature(&bag, opts.pubkey.as_deref(), log.as_ref(), &mut f);
    let tag_sha = bag
        .read(files::TAG_MANIFEST, 1 << 30)
        .map(|b| crate::digest::Sha256::of(&b).hex())
        .unwrap_or_default();
    let receipts = signature::receipt_paths(&bag, &mut f);
    signature::check_receipts(&bag, &receipts, opts.pubkey.as_deref(), &tag_sha, &mut f);
    let timestamps = signature::check_timestamps(&bag, &receipts, opts.tsa_ca.as_deref(), &mut f)
        .map_err(|e| VerifyError::Tool(e.0))?;

    let approvals = if production {
        Vec::new()
    } else {
        approval::check_approvals(&bag, &opts.approver_keys, &tag_sha, &rows, &mut f)
    };
    if !production {
        chain::check_links(root, &info, &rows, &opts.previous, opts, &mut f);
    }
    let findings = f.into_vec();
    let mut sealed = manifests.into_sha256();
    if !tag_sha.is_empty() {
        sealed.insert(files::TAG_MANIFEST.to_owned(), tag_sha);
    }
    let report = VerifyReport {
        verdict: verdict(&findings, signature, &timestamps),
        findings,
        files_hashed: hashed.files,
        bytes_hashed: hashed.bytes,
        items: n_items,
        signature,
        sample,
        timestamps,
        approvals,
    };
    Ok((
        report,
        open::Sealed {
            info,
            sha256: sealed,
        },
    ))
}

/// Hashes the payload (every file but the recordings a sample leaves out, whose sizes are
/// compared with the custody record instead) against every manifest.
fn hash_payload(
    bag: &Bag,
    manifests: &bag::Manifests,
    walk: &Walk,
    rows: &[record::Row],
    seed: Option<Seed>,
    opts: &VerifyOptions,
    f: &mut Findings,
) -> (bag::Hashed, Option<SampleReport>) {
    let recordings: BTreeMap<String, u64> = rows
        .iter()
        .filter(|r| r.get("Outcome") == Some("Exported"))
        .filter_map(|r| {
            Some((
                r.get("File_Name")?.to_owned(),
                r.get("Bytes")?.parse().ok()?,
            ))
        })
        .collect();
    let listed: BTreeSet<&String> = manifests
        .payload
        .iter()
        .flat_map(|m| m.entries.keys())
        .collect();
    let picked = |rel: &str| seed.is_none_or(|s| s.picks(rel, opts.sample));
    let to_hash: Vec<String> = walk
        .files
        .iter()
        .map(|(r, _)| r)
        .filter(|r| listed.contains(r))
        .filter(|r| !recordings.contains_key(*r) || picked(r))
        .cloned()
        .collect();
    let hashed = bag::hash_and_compare(bag, manifests, &to_hash, opts.threads, f);
    let sizes: BTreeMap<&str, u64> = walk.files.iter().map(|(r, n)| (r.as_str(), *n)).collect();
    for (rel, bytes) in &recordings {
        if !hashed.sha256.contains_key(rel)
            && let Some(n) = sizes.get(rel.as_str())
            && n != bytes
        {
            f.push(
                FindingKind::PayloadSizeMismatch,
                rel.clone(),
                format!("{n} bytes, the custody record says {bytes}"),
            );
        }
    }
    let sample = seed.map(|s| SampleReport {
        fraction: opts.sample,
        seed: s.to_string(),
        recordings: recordings.len() as u64,
        recordings_hashed: recordings
            .keys()
            .filter(|r| hashed.sha256.contains_key(*r))
            .count() as u64,
    });

    (hashed, sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_depends_on_the_seed_not_on_the_path_alone() {
        let paths: Vec<String> = (0..2000)
            .map(|i| format!("data/recordings/c/{i}.wav"))
            .collect();
        let a = Seed([1; 32]);
        let b = Seed([2; 32]);
        let pick = |s: Seed| -> Vec<bool> { paths.iter().map(|p| s.picks(p, 0.5)).collect() };
        let (pa, pb) = (pick(a), pick(b));
        assert_eq!(pa, pick(a), "the same seed draws the same sample");
        assert_ne!(pa, pb, "another seed draws another sample");
        let n = pa.iter().filter(|x| **x).count();
        assert!((850..1150).contains(&n), "about half: {n}");
        assert_eq!(Seed::parse(&a.to_string()).unwrap(), a);
        assert!(Seed::parse("zz").is_err());
    }
}
