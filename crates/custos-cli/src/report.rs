//! `custos report`: the export's report rendered again for a sealed package, with what only
//! sealing and verification know (the tag manifest's hash, the signature, the timestamps, the
//! verdict, the upload receipts). It verifies the package first, fully, and says what it found.

use std::path::PathBuf;

use clap::Args;
use custos::report::{Facts, Seal};
use custos::verify::{Verdict, VerifyOptions, fsys::Bag};

/// Options of `custos report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The export directory (sealed).
    pub dir: PathBuf,
    /// Where to write the HTML report (outside the export: the bag is sealed).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Also write the report as PDF here.
    #[arg(long, value_name = "FILE")]
    pub pdf: Option<PathBuf>,
    /// The signer's minisign public key, to check who sealed the package.
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
    /// The TSA certificates to check RFC 3161 timestamps against (PEM; `openssl ts -verify`).
    #[arg(long, value_name = "FILE")]
    pub tsa_ca: Option<PathBuf>,
    /// Counsel's minisign public key, to check the approvals of Corrupted items
    /// (`custos approve`); repeat for several.
    #[arg(long, value_name = "FILE")]
    pub approver_key: Vec<PathBuf>,
}

/// Runs `custos report` (0 written and the package verified, 1 written but the package has
/// findings, 2 could not run).
pub fn run_report(a: ReportArgs) -> i32 {
    for f in std::iter::once(&a.out).chain(a.pdf.as_ref()) {
        if custos::package::inside_bag(&a.dir, f) {
            eprintln!(
                "custos: error: {}: inside the export, which is sealed; write the report elsewhere",
                f.display()
            );
            return 2;
        }
    }
    let opts = VerifyOptions {
        pubkey: a.pubkey.clone(),
        tsa_ca: a.tsa_ca.clone(),
        approver_keys: a.approver_key.clone(),
        ..Default::default()
    };
    let v = match custos::verify::verify(&a.dir, &opts) {
        Ok(v) => v,
        Err(e) => {
            crate::error(&e);
            return 2;
        }
    };
    let now = custos::query::format_ms(time::OffsetDateTime::now_utc());
    let seal = Seal::of(&a.dir, &v, now);
    let facts = match Facts::read(&Bag::new(&a.dir)) {
        Ok(f) => f,
        Err(e) => {
            crate::error(&format!("cannot report on {}: {e}", a.dir.display()));
            return 2;
        }
    };
    let html = custos::report::html(&facts, Some(&seal));
    if let Err(e) = custos::durable::write_durably(&a.out, html.as_bytes()) {
        crate::error(&e);
        return 2;
    }
    out!("{}: report written", a.out.display());
    if let Some(p) = &a.pdf {
        if let Err(e) = custos::durable::write_durably(p, &custos::report::pdf(&facts, Some(&seal)))
        {
            crate::error(&e);
            return 2;
        }
        out!("{}: report written (PDF)", p.display());
    }
    out!(
        "verification: {} ({} findings)",
        seal.verdict,
        v.findings.len()
    );
    i32::from(v.verdict == Verdict::Findings)
}
