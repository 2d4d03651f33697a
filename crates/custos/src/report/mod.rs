//! The report a lawyer reads: `report.html` and `report.pdf` in every export, tag files the
//! tag manifest lists, and `custos report DIR` to render them again for a sealed package with
//! what only sealing and verification know (the tag manifest's hash, the signature, the
//! timestamps, the verdict, the upload receipts).
//!
//! One composition ([`doc`]) drawn twice: HTML that needs no network and no script, and a PDF
//! written here ([`pdf`], the standard Helvetica and Courier faces, nothing embedded), so no
//! browser is needed to make it.

pub mod doc;
pub mod facts;
mod html;
mod pdf;

use crate::package::files;
use std::io::BufReader;
use std::path::Path;

use serde_json::Value;

pub use facts::Facts;

use crate::durable::write_durably;
use crate::verify::fsys::Bag;
use crate::verify::{TimestampReport, VerifyReport};

/// The report's name in the bag.
pub const HTML: &str = "report.html";
/// The PDF's name in the bag.
pub const PDF: &str = "report.pdf";

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file the report is read from is missing, not a regular file, too large or malformed.
    #[error("{0}: {1}")]
    Unreadable(String, String),
    /// Writing it failed.
    #[error(transparent)]
    Write(#[from] crate::Error),
}

/// What only the sealed, verified package knows.
#[derive(Clone, Debug)]
pub struct Seal {
    /// SHA-256 of `tagmanifest-sha256.txt`.
    pub tag_manifest_sha256: String,
    /// When it was verified (UTC).
    pub checked_at: String,
    /// `custos verify`'s verdict.
    pub verdict: String,
    /// Its findings, one line each.
    pub findings: Vec<String>,
    /// The signature's status (`verified`, `absent`, `origin-unchecked`, `invalid`).
    pub signature: String,
    /// The timestamps, and whether they were checked.
    pub timestamps: Vec<TimestampReport>,
    /// The upload receipts beside the bag.
    pub receipts: Vec<ReceiptLine>,
    /// Counsel's approvals of Corrupted items beside the bag, as verification found them.
    pub approvals: Vec<crate::verify::ApprovalReport>,
}

/// One upload receipt (`receipts/*.jsonl`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptLine {
    /// Its path in the package.
    pub file: String,
    /// Where the upload went.
    pub target: String,
    /// `complete, N objects`, or how far it got.
    pub state: String,
}

impl Seal {
    /// The seal of the package at `root`, from its verification.
    pub fn of(root: &Path, v: &VerifyReport, checked_at: String) -> Seal {
        let bag = Bag::new(root);
        Seal {
            tag_manifest_sha256: bag
                .read(files::TAG_MANIFEST, 1 << 30)
                .map(|b| crate::digest::Sha256::of(&b).hex())
                .unwrap_or_else(|_| "(unreadable)".into()),
            checked_at,
            verdict: kebab(&v.verdict),
            findings: v
                .findings
                .iter()
                .map(|f| format!("{} at {}: {}", kebab(&f.kind), f.r#where, f.what))
                .collect(),
            signature: kebab(&v.signature),
            timestamps: v.timestamps.clone(),
            receipts: read_receipts(&bag),
            approvals: v.approvals.clone(),
        }
    }
}

/// The serde name of a unit enum variant (kebab-case in every custos enum).
fn kebab<T: serde::Serialize>(x: &T) -> String {
    serde_json::to_value(x)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Every `receipts/*.jsonl`: its destination and how far it got (its chain and signature are
/// `custos verify`'s to check, and its verdict says so).
fn read_receipts(bag: &Bag) -> Vec<ReceiptLine> {
    // A `receipts` that is a link is not followed (verify's finding says so).
    let paths = crate::verify::receipt_paths(bag, &mut crate::verify::Findings::default());
    paths
        .into_iter()
        .map(|rel| {
            let (mut target, mut state, mut objects) = (String::new(), "started".to_owned(), 0);
            if let Ok((f, _)) = bag.open(&rel) {
                let _ = crate::lines::for_each_line(BufReader::new(f), 4 << 20, |line, _| {
                    let e: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
                    match e.get("event").and_then(Value::as_str) {
                        Some("upload-started") => {
                            target = e.get("target").and_then(Value::as_str).unwrap_or("").into()
                        }
                        Some("release-started") => {
                            target = "deletion protection at the source: released".into()
                        }
                        Some("object-stored") => objects += 1,
                        Some("protection-released") => {
                            objects += e["conversationIds"].as_array().map_or(0, Vec::len)
                        }
                        Some("upload-complete" | "release-complete") => state = "complete".into(),
                        _ => {}
                    }
                    Ok::<(), String>(())
                });
            }
            let what = if target.starts_with("deletion") {
                "conversations"
            } else {
                "objects"
            };
            ReceiptLine {
                file: rel,
                target,
                state: format!("{state}, {objects} {what} receipted"),
            }
        })
        .collect()
}

/// The report as HTML.
pub fn html(f: &Facts, seal: Option<&Seal>) -> String {
    html::render(&doc::compose(f, seal), f)
}

/// The report as PDF.
pub fn pdf(f: &Facts, seal: Option<&Seal>) -> Vec<u8> {
    pdf::render(&doc::compose(f, seal), f)
}

/// Writes `report.html` and `report.pdf` into the bag at `root` (its payload, custody record
/// and bag-info written, its tag manifest not yet) and returns their names.
pub fn write_in_bag(root: &Path) -> Result<[&'static str; 2], ReportError> {
    let facts = Facts::read(&Bag::new(root))?;
    write_durably(&root.join(HTML), html(&facts, None).as_bytes())?;
    write_durably(&root.join(PDF), &pdf(&facts, None))?;
    Ok([HTML, PDF])
}
