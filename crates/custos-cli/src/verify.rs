//! `custos verify`: argv → `custos::verify` (and `verify --remote` through custos-store) →
//! findings, a verdict and an exit code (0 clean, 1 findings, 2 could not run).
//!
//! Its options are flags only: a verification names what it checks on the command line, where
//! the record of the check (a shell history, a report) shows it.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use custos::shown::Shown;
use custos::verify::VerifyReport;
use custos_store::remote::RemoteReport;

/// Options of `custos verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The export directory.
    pub dir: PathBuf,
    /// The signer's minisign public key (custos keygen's .pub file).
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
    /// Hash only this fraction of the recordings (e.g. 0.05), for very large exports; the
    /// rest are checked for presence and size. Every other file is always hashed. Which
    /// recordings is drawn afresh each run (the seed is printed).
    #[arg(long, default_value_t = 1.0)]
    pub sample: f64,
    /// Check the RFC 3161 timestamps in the bag against these TSA certificates (PEM; runs
    /// `openssl ts -verify`). Without it a timestamp's time is reported but not proven.
    #[arg(long, value_name = "FILE")]
    pub tsa_ca: Option<PathBuf>,
    /// With --sample: draw the sample of an earlier run again (the 64 hex digits it printed).
    #[arg(long, requires = "sample", value_name = "HEX")]
    pub seed: Option<String>,
    /// An earlier bag of the same ongoing hold (`export --increment-of`): verify it too and
    /// check the link; repeat for each earlier bag, the immediate predecessor first.
    #[arg(long, value_name = "DIR")]
    pub previous: Vec<PathBuf>,
    /// Counsel's minisign public key: approvals beside the bag (`custos approve`) must verify
    /// with it (or with another --approver-key); one that does not is a finding.
    #[arg(long, value_name = "FILE")]
    pub approver_key: Vec<PathBuf>,
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also compare the objects at this s3:// or azure:// URL with the bag and the upload
    /// receipt (sizes, stored checksums, versions, retention, nothing extra).
    #[arg(long, value_name = "URL")]
    pub remote: Option<String>,
    /// With --remote: also download every object and hash its bytes here (for stores whose
    /// own checksum cannot be relied on).
    #[arg(long, requires = "remote")]
    pub download: bool,
    #[command(flatten)]
    pub client: crate::options::ClientArgs,
}

/// Runs `custos verify`.
pub async fn run_verify(a: VerifyArgs) -> i32 {
    if a.remote.is_none() && a.client.is_set() {
        eprintln!("custos: error: --endpoint and --aws-region need --remote URL");
        return 2;
    }
    if !(a.sample > 0.0 && a.sample <= 1.0) {
        eprintln!("custos: error: --sample must be within (0, 1]");
        return 2;
    }
    let seed = match a
        .seed
        .as_deref()
        .map(custos::verify::Seed::parse)
        .transpose()
    {
        Ok(s) => s,
        Err(e) => {
            crate::error(&e);
            return 2;
        }
    };
    let opts = custos::verify::VerifyOptions {
        pubkey: a.pubkey.clone(),
        tsa_ca: a.tsa_ca.clone(),
        sample: a.sample,
        seed,
        previous: a.previous.clone(),
        approver_keys: a.approver_key.clone(),
        ..Default::default()
    };
    let mut report = match custos::verify::verify(&a.dir, &opts) {
        Ok(r) => r,
        Err(e) => {
            crate::error(&e);
            return 2;
        }
    };
    let remote = match &a.remote {
        Some(url) => match crate::upload::verify_remote(&a.dir, url, &a.client, a.download).await {
            Ok(r) => {
                report.extend(r.findings.iter().cloned());
                Some(r)
            }
            Err(e) => {
                crate::error(&format!("the remote check could not run: {e}"));
                return 2;
            }
        },
        None => None,
    };
    print_report(&a.dir, &report, remote.as_ref(), a.json);
    if report.findings.is_empty() { 0 } else { 1 }
}

/// Opens the package at `dir` for a command that reads it: verified, and signed by `pubkey`
/// when one is given; or the exit code (1 it does not verify or is not signed by the key, 2
/// not an export) with the reason printed.
pub fn open_package(dir: &Path, pubkey: Option<&Path>) -> Result<custos::verify::Package, i32> {
    use custos::verify::{OpenError, Package, Require, VerifyOptions};
    let opts = VerifyOptions {
        pubkey: pubkey.map(Path::to_path_buf),
        ..Default::default()
    };
    let require = Require::by_key_if_given(pubkey);
    Package::open(dir, &opts, require).map_err(|e| {
        crate::error(&e);
        match e {
            OpenError::NotAnExport(_) => 2,
            _ => 1,
        }
    })
}

/// Who and where, as the package's bag-info states them (read safely, shown escaped).
fn print_source(out: &mut impl Write, dir: &Path) {
    let Ok(text) = custos::verify::fsys::Bag::new(dir).read_text("bag-info.txt", 1 << 20) else {
        return;
    };
    let info: std::collections::BTreeMap<String, String> =
        custos::package::parse_tags(&text).into_iter().collect();
    let get = |k: &str| info.get(k).map(|v| Shown(v).to_string());
    if let Some(id) = get("Genesys-Organization-Id") {
        let _ = writeln!(
            out,
            "source: organization {} ({id}), OAuth client {} ({}), API {}",
            get("Genesys-Organization-Name").unwrap_or_default(),
            get("Genesys-OAuth-Client-Name").unwrap_or_default(),
            get("Genesys-OAuth-Client-Id").unwrap_or_default(),
            get("Genesys-API-Base").unwrap_or_default()
        );
    }
    if let Some(host) = get("Export-Host") {
        let _ = writeln!(
            out,
            "collected by: {} on {host}, custos {} (binary SHA-256 {}), clock offset {} s against the API",
            get("Export-Operator").unwrap_or_else(|| "(no operator named)".into()),
            get("Export-Tool-Version").unwrap_or_default(),
            get("Export-Tool-SHA256").unwrap_or_default(),
            get("Clock-Offset-Seconds").unwrap_or_else(|| "(not measured)".into())
        );
    }
}

fn print_report(dir: &Path, report: &VerifyReport, remote: Option<&RemoteReport>, json: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        let mut v = serde_json::to_value(report).expect("json");
        if let Some(r) = remote {
            v["remote"] = serde_json::json!({"target": r.target, "objects": r.objects, "protected": r.protected, "receipt": r.receipt, "downloadedBytes": r.downloaded_bytes});
        }
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        for f in &report.findings {
            // Where and what quote the package; a crafted row must not draw on the terminal.
            let _ = writeln!(
                out,
                "FINDING {}: {}: {}\n  what to do: {}",
                f.kind,
                Shown(&f.r#where),
                Shown(&f.what),
                f.action
            );
        }
        print_source(&mut out, dir);
        use custos::verify::Verdict;
        let _ = writeln!(
            out,
            "{}: {} items, {} files ({:.1} MB) hashed, {} finding(s)",
            dir.display(),
            report.items,
            report.files_hashed,
            report.bytes_hashed as f64 / 1e6,
            report.findings.len()
        );
        for t in &report.timestamps {
            let _ = writeln!(
                out,
                "timestamp: {} existed at {} (RFC 3161){}",
                Shown(&t.file),
                Shown(&t.gen_time),
                if t.checked {
                    ", token verified against --tsa-ca"
                } else {
                    "; NOT CHECKED: give --tsa-ca with the TSA's certificates to prove the time"
                }
            );
        }
        for x in &report.approvals {
            let a = &x.approval;
            let _ = writeln!(
                out,
                "approval: {} (Corrupted) approved for production by {} at {}: {}{}",
                Shown(&a.recording_id),
                Shown(&a.approved_by),
                Shown(&a.approved_at),
                Shown(&a.reason),
                if x.checked {
                    "; signature verified with --approver-key"
                } else {
                    "; NOT CHECKED: give --approver-key with counsel's public key; until then nothing proves who approved, and produce does not act on it"
                }
            );
        }
        if let Some(s) = &report.sample {
            let _ = writeln!(
                out,
                "sample: {} of {} recordings hashed (fraction {}), seed {} (repeat with --seed); a tampered recording is missed with probability {:.3} per run",
                s.recordings_hashed,
                s.recordings,
                s.fraction,
                s.seed,
                1.0 - s.fraction
            );
        }
        let _ = writeln!(
            out,
            "{}",
            match report.verdict {
                Verdict::Verified => "VERIFIED: intact, and signed by the holder of the key given",
                Verdict::IntactUnsigned =>
                    "INTACT, UNSIGNED: no findings, but nothing proves who sealed the package",
                Verdict::IntactOriginUnchecked
                    if report.signature == custos::verify::SignatureStatus::OriginUnchecked =>
                    "INTACT, ORIGIN UNCHECKED: the package is signed, but no --pubkey was given, so the signature was not checked; anyone could have changed the package and re-sealed and re-signed it. Verify again with the exporter's public key",
                Verdict::IntactOriginUnchecked =>
                    "INTACT, ORIGIN UNCHECKED: the package is unsigned and carries an RFC 3161 timestamp that was not checked (no --tsa-ca); anyone could have re-sealed it and replaced the token. Verify again with the TSA's certificates",
                Verdict::Findings => "FINDINGS: the package is not as sealed (above)",
            }
        );
        if let Some(r) = remote {
            let _ = writeln!(
                out,
                "{}: {} objects compared, {} under retention or legal hold now, receipt {}{}",
                r.target,
                r.objects,
                r.protected,
                r.receipt,
                if r.downloaded_bytes > 0 {
                    format!(
                        ", {:.1} MB downloaded and hashed",
                        r.downloaded_bytes as f64 / 1e6
                    )
                } else {
                    String::new()
                }
            );
        }
    }
}
