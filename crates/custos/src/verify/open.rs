//! The one way a command opens a package it acts on: [`Package::open`] verifies it (everything
//! `custos verify` checks), says what was proven (intact; signed by which key, or not), and
//! from then on reads its files only through verify's safe reader ([`super::fsys`]: regular
//! files inside the bag, no link followed, no FIFO or device opened, capped), each read checked
//! against the SHA-256 the bag sealed for that file. A file changed after verification is an
//! error at the read, never acted on.
//!
//! Commands that act at the source (`release --protect`, `export --increment-of`) require
//! [`Require::Signed`]: a bag signed by a key the operator names. Whoever can edit an export
//! folder can re-seal it (every manifest recomputed) but cannot sign it with the operator's key.
//! Commands that carry a package further (`produce`, `prove`, `timestamp`, `upload`) require
//! [`Require::Intact`], or `Signed` when the operator gives a key. `custos report` alone renders
//! a package that has findings (it states them), so it verifies and reads through the safe
//! reader without opening a `Package`.
//!
//! The package's file names are [`files`], in one place; the readers use them (some of the
//! writer's paths are still spelled out where it writes them).

use crate::package::files;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::Digest;

use super::fsys::Bag;
use super::{Verdict, VerifyError, VerifyOptions, VerifyReport};
use crate::custody::{ChainError, check_chain_lines};

/// What a command needs proven before it acts on a package.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Require {
    /// No findings: enough to read and report.
    Intact,
    /// No findings, and signed by the key the operator gave: needed to act at the source.
    Signed,
}

impl Require {
    /// Signed by the key when the operator gives one, else intact: what a command that only
    /// reads or carries a package asks.
    pub fn by_key_if_given(pubkey: Option<&Path>) -> Require {
        if pubkey.is_some() {
            Require::Signed
        } else {
            Require::Intact
        }
    }
}

/// What is proven of who sealed the package.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "origin")]
pub enum Origin {
    /// Signed, and the signature verifies with the operator's key (its minisign key id).
    SignedBy {
        /// The key id, as minisign prints it (16 hex digits).
        key_id: String,
    },
    /// Signed, but no key was given: anyone could have re-sealed and signed it.
    Unchecked,
    /// Not signed.
    Unsigned,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::SignedBy { key_id } => write!(f, "signed by key {key_id}"),
            Origin::Unchecked => f.write_str("signed, but no key was given to check it with"),
            Origin::Unsigned => f.write_str("not signed"),
        }
    }
}

/// Why a package was not opened, or a file of it not read.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Not an export at all.
    #[error(transparent)]
    NotAnExport(#[from] VerifyError),
    /// It does not verify.
    #[error(
        "{path}: the package does not verify ({count} finding(s), e.g. {first}); run custos verify {path}"
    )]
    Findings {
        /// The package.
        path: String,
        /// How many.
        count: usize,
        /// The first, shown.
        first: String,
    },
    /// It verifies, but is not signed by a key the operator named.
    #[error("{path}: {why}")]
    NotProven {
        /// The package.
        path: String,
        /// What is missing.
        why: String,
    },
    /// A file of the package could not be read safely, or no longer holds what was sealed.
    #[error("{path}: {rel}: {why}")]
    File {
        /// The package.
        path: String,
        /// The file, under the bag root.
        rel: String,
        /// What is wrong.
        why: String,
    },
}

/// A verified package: what was proven, its labels, and its files read only as sealed.
#[derive(Debug)]
pub struct Package {
    root: PathBuf,
    bag: Bag,
    report: VerifyReport,
    info: BTreeMap<String, String>,
    /// Path → SHA-256 as sealed: the payload manifest and the tag manifest.
    sealed: BTreeMap<String, String>,
    origin: Origin,
}

/// Everything verification read that a [`Package`] keeps.
pub(super) struct Sealed {
    pub info: BTreeMap<String, String>,
    pub sha256: BTreeMap<String, String>,
}

impl Package {
    /// Verifies the package at `root` with `opts` and opens it if it proves what `require`
    /// asks. [`Require::Signed`] needs `opts.pubkey`.
    pub fn open(root: &Path, opts: &VerifyOptions, require: Require) -> Result<Package, OpenError> {
        let shown = super::finding::shown(root.as_os_str());
        if require == Require::Signed && opts.pubkey.is_none() {
            return Err(OpenError::NotProven {
                path: shown,
                why: "this command acts at the source, so the package must be signed by your key: pass --pubkey KEY.pub (the key custos keygen made for the export's --sign-key)".into(),
            });
        }
        let (report, sealed) = super::verify_sealed(root, opts)?;
        if report.verdict == Verdict::Findings {
            let first = report
                .findings
                .first()
                .map(|f| format!("{} {}: {}", f.kind, f.r#where, f.what))
                .unwrap_or_default();
            return Err(OpenError::Findings {
                path: shown,
                count: report.findings.len(),
                first,
            });
        }
        let bag = Bag::new(root);
        let origin = match report.signature {
            super::SignatureStatus::Verified => Origin::SignedBy {
                key_id: super::signature::key_id(&bag).unwrap_or_default(),
            },
            super::SignatureStatus::OriginUnchecked => Origin::Unchecked,
            super::SignatureStatus::Absent | super::SignatureStatus::Invalid => Origin::Unsigned,
        };
        if require == Require::Signed && !matches!(origin, Origin::SignedBy { .. }) {
            return Err(OpenError::NotProven {
                path: shown,
                why: format!(
                    "the package is intact but {origin}; this command acts at the source and needs a package signed by the key you give (--pubkey)"
                ),
            });
        }
        Ok(Package {
            root: root.to_path_buf(),
            bag,
            report,
            info: sealed.info,
            sealed: sealed.sha256,
            origin,
        })
    }

    /// The package's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What verification found (no findings, or it would not have opened).
    pub fn report(&self) -> &VerifyReport {
        &self.report
    }

    /// Who sealed it, as far as proven.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// A `bag-info.txt` label's value.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.info.get(name).map(String::as_str)
    }

    /// Every `bag-info.txt` label.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.info
    }

    /// The SHA-256 the bag sealed for `rel` (a payload or tag file).
    pub fn sealed_sha256(&self, rel: &str) -> Option<&str> {
        self.sealed.get(rel).map(String::as_str)
    }

    /// Whether the package holds `rel` (sealed in a manifest).
    pub fn holds(&self, rel: &str) -> bool {
        self.sealed.contains_key(rel)
    }

    fn err(&self, rel: &str, why: impl Into<String>) -> OpenError {
        OpenError::File {
            path: super::finding::shown(self.root.as_os_str()),
            rel: rel.to_owned(),
            why: why.into(),
        }
    }

    /// The whole of the sealed file `rel` (at most `cap` bytes), read safely and checked
    /// against its sealed SHA-256.
    pub fn read(&self, rel: &str, cap: u64) -> Result<Vec<u8>, OpenError> {
        let want = self
            .sealed_sha256(rel)
            .ok_or_else(|| self.err(rel, "is not sealed in the package"))?;
        let bytes = self
            .bag
            .read(rel, cap)
            .map_err(|e| self.err(rel, e.finding(rel).what))?;
        let got = hex::encode(sha2::Sha256::digest(&bytes));
        if got != want {
            return Err(self.err(
                rel,
                format!("changed since it was verified (SHA-256 {got}, sealed {want})"),
            ));
        }
        Ok(bytes)
    }

    /// [`Package::read`] as UTF-8 text.
    pub fn read_text(&self, rel: &str, cap: u64) -> Result<String, OpenError> {
        String::from_utf8(self.read(rel, cap)?).map_err(|_| self.err(rel, "is not UTF-8 text"))
    }

    /// [`Package::read`], or `None` when the package does not hold `rel`.
    pub fn read_if_held(&self, rel: &str, cap: u64) -> Result<Option<Vec<u8>>, OpenError> {
        if self.holds(rel) {
            self.read(rel, cap).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The rows of the sealed CSV `rel`, by header name.
    pub fn read_csv(&self, rel: &str) -> Result<Vec<BTreeMap<String, String>>, OpenError> {
        let bytes = self.read(rel, CSV_CAP)?;
        let mut r = csv::Reader::from_reader(bytes.as_slice());
        let headers = r
            .headers()
            .map_err(|e| self.err(rel, e.to_string()))?
            .clone();
        r.records()
            .map(|rec| {
                let rec = rec.map_err(|e| self.err(rel, e.to_string()))?;
                Ok(headers
                    .iter()
                    .zip(rec.iter())
                    .map(|(h, v)| (h.to_owned(), v.to_owned()))
                    .collect())
            })
            .collect()
    }

    /// The custody record's rows (`data/chain_of_custody.csv`), typed.
    pub fn custody_rows(&self) -> Result<Vec<crate::package::CustodyRow>, OpenError> {
        let rel = files::CUSTODY_CSV;
        let bytes = self.read(rel, CSV_CAP)?;
        csv::Reader::from_reader(bytes.as_slice())
            .deserialize()
            .map(|row| row.map_err(|e| self.err(rel, e.to_string())))
            .collect()
    }

    /// Checks that the sealed file `rel` (any size) still hashes as sealed, reading it through
    /// the safe reader.
    pub fn check_file(&self, rel: &str) -> Result<(), OpenError> {
        let want = self
            .sealed_sha256(rel)
            .ok_or_else(|| self.err(rel, "is not sealed in the package"))?;
        let (file, _) = self
            .bag
            .open(rel)
            .map_err(|e| self.err(rel, e.finding(rel).what))?;
        let (sums, _) = super::fsys::hash_reader(file, &[super::fsys::Alg::Sha256])
            .map_err(|e| self.err(rel, e.to_string()))?;
        let got = &sums[0].1;
        if got != want {
            return Err(self.err(
                rel,
                format!("changed since it was verified (SHA-256 {got}, sealed {want})"),
            ));
        }
        Ok(())
    }

    /// The signature over the tag manifest, as the bag holds it (checked by [`Package::open`]
    /// when a key was given; see [`Package::origin`]).
    pub fn signature_text(&self) -> Result<Option<String>, OpenError> {
        let rel = files::SIGNATURE;
        match self.bag.read_text(rel, 1 << 20) {
            Ok(t) => Ok(Some(t)),
            Err(super::fsys::Refused::Missing) => Ok(None),
            Err(e) => Err(self.err(rel, e.finding(rel).what)),
        }
    }

    /// The custody log, line by line: `visit` sees each event as it is read, and the result is
    /// `Ok` only when the whole log chained and hashed to its sealed SHA-256. Act on what
    /// `visit` collected only after `Ok`.
    pub fn custody_events(&self, visit: impl FnMut(&Value)) -> Result<u64, OpenError> {
        let rel = files::CUSTODY_LOG;
        let want = self
            .sealed_sha256(rel)
            .ok_or_else(|| self.err(rel, "is not sealed in the package"))?
            .to_owned();
        let (file, _) = self
            .bag
            .open(rel)
            .map_err(|e| self.err(rel, e.finding(rel).what))?;
        let mut hashing = Hashing {
            inner: file,
            sha: sha2::Sha256::new(),
        };
        let check = check_chain_lines(
            std::io::BufReader::new(&mut hashing),
            crate::custody::MAX_LINE,
            visit,
        )
        .map_err(|e: ChainError| self.err(rel, e.to_string()))?;
        let got = hex::encode(hashing.sha.finalize());
        if got != want {
            return Err(self.err(
                rel,
                format!("changed since it was verified (SHA-256 {got}, sealed {want})"),
            ));
        }
        Ok(check.lines)
    }

    /// The SHA-256 of the tag manifest: the one hash that names this sealed package.
    /// The tag manifest is read again and must still be the one verified (what a receipt or a
    /// chain link names is then what was proven).
    pub fn tag_manifest_sha256(&self) -> Result<String, OpenError> {
        self.read(files::TAG_MANIFEST, 1 << 30)?;
        Ok(self
            .sealed_sha256(files::TAG_MANIFEST)
            .unwrap_or_default()
            .to_owned())
    }
}

/// The largest CSV a command reads whole (a million-item custody record is ~300 MB).
const CSV_CAP: u64 = 1 << 30;

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    sha: sha2::Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
}
