//! The `custos` command: a thin adapter from argv to one library call each.
//!
//! Exit codes of `export` and `demo` (also in `custos --help`; `verify`: 0 clean, 1 findings,
//! 2 could not run; `upload`: 0 stored, 1 objects not stored, 2 settings, 3 stopped):
//! * 0 — done: every manifest item ended Exported, Purged or Archived;
//! * 1 — done, but some items ended Failed or Corrupted (see chain_of_custody.csv);
//! * 2 — bad usage or configuration, found before anything was written;
//! * 3 — the export stopped (API, network or disk): re-run the same command to resume.

/// println! that ignores a closed stdout (`custos … | head` must not panic).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

mod diagnostics;
mod export;
mod options;
mod progress;
mod upload;

use clap::{Parser, Subcommand};

/// Custos: evidence-grade export of Genesys Cloud call recordings for eDiscovery.
#[derive(Parser)]
#[command(
    name = "custos",
    version,
    after_help = "Exit codes: 0 done; 1 done with Failed/Corrupted items; 2 bad usage or configuration; 3 stopped, re-run to resume."
)]
struct Cli {
    /// Diagnostics on stderr: -v what happens, -vv every request, -vvv everything
    /// [env: RUST_LOG, e.g. custos::http=debug, wins]. Never secrets; not the custody log.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Export the recordings a query selects into a verifiable evidence package (a BagIt bag).
    Export(Box<options::ExportOptions>),
    /// Start the embedded simulator, export from it into ./custos-demo (or --out), validate it.
    Demo(export::DemoArgs),
    /// Upload a sealed export to write-once storage (S3 Object Lock, Azure immutability), have
    /// the store check every object against the bag's SHA-256, read each back, and keep a
    /// receipt in DIR/receipts/ (exit 0 stored, 1 objects not stored, 2 settings, 3 stopped:
    /// re-run to resume).
    Upload(Box<upload::UploadArgs>),
    /// Verify an export: bag, checksums, custody record, custody log, signature; with --remote,
    /// also what the store holds (exit 0 clean, 1 findings, 2 could not run).
    Verify {
        /// The export directory.
        dir: std::path::PathBuf,
        /// The signer's minisign public key (custos keygen's .pub file).
        #[arg(long, value_name = "FILE")]
        pubkey: Option<std::path::PathBuf>,
        /// Hash only this fraction of the recordings (e.g. 0.05), for very large exports; the
        /// rest are checked for presence and size. Every other file is always hashed. Which
        /// recordings is drawn afresh each run (the seed is printed).
        #[arg(long, default_value_t = 1.0)]
        sample: f64,
        /// With --sample: draw the sample of an earlier run again (the 64 hex digits it printed).
        #[arg(long, requires = "sample", value_name = "HEX")]
        seed: Option<String>,
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
        /// Also compare the objects at this s3:// or azure:// URL with the bag and the upload
        /// receipt (sizes, stored checksums, versions, retention, nothing extra).
        #[arg(long, value_name = "URL")]
        remote: Option<String>,
        /// With --remote: also download every object and hash its bytes here (for stores whose
        /// own checksum cannot be relied on).
        #[arg(long, requires = "remote")]
        download: bool,
        #[command(flatten)]
        client: upload::ClientArgs,
    },
    /// Print each media file's container, codec, channels, sample rate and duration, and any
    /// damage found (exit 0 all sound, 1 some damaged or unreadable, 2 could not run). The same
    /// reader the export uses to decide Corrupted.
    Probe {
        /// The files.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// One JSON object per file, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Make a signing key pair: the secret key at --out (mode 0600), the public key at --out.pub.
    Keygen {
        /// Path of the secret key.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Run the Genesys Cloud simulator (custos-sim): prints its base URL, serves until Ctrl-C.
    Sim(Box<custos_sim::cli::SimArgs>),
}

#[allow(clippy::too_many_arguments)] // one per flag of `custos verify`
async fn verify(
    dir: &std::path::Path,
    pubkey: Option<std::path::PathBuf>,
    sample: f64,
    seed: Option<String>,
    json: bool,
    remote: Option<String>,
    client: upload::ClientArgs,
    download: bool,
) -> i32 {
    use std::io::Write;
    if remote.is_none() && client.is_set() {
        eprintln!("custos: error: --endpoint and --aws-region need --remote URL");
        return 2;
    }
    if !(sample > 0.0 && sample <= 1.0) {
        eprintln!("custos: error: --sample must be within (0, 1]");
        return 2;
    }
    let seed = match seed.as_deref().map(custos::verify::Seed::parse).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("custos: error: {e}");
            return 2;
        }
    };
    let opts = custos::verify::VerifyOptions {
        pubkey,
        sample,
        seed,
        ..Default::default()
    };
    let mut report = match custos::verify::verify(dir, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("custos: error: {e}");
            return 2;
        }
    };
    let remote = match remote {
        Some(url) => match upload::verify_remote(dir, &url, &client, download).await {
            Ok(r) => {
                report.extend(r.findings.iter().cloned());
                Some(r)
            }
            Err(e) => {
                eprintln!("custos: error: the remote check could not run: {e}");
                return 2;
            }
        },
        None => None,
    };
    let mut out = std::io::stdout().lock();
    if json {
        let mut v = serde_json::to_value(&report).expect("json");
        if let Some(r) = &remote {
            v["remote"] = serde_json::json!({"target": r.target, "objects": r.objects, "protected": r.protected, "receipt": r.receipt, "downloadedBytes": r.downloaded_bytes});
        }
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        for f in &report.findings {
            let _ = writeln!(
                out,
                "FINDING {}: {}: {}\n  what to do: {}",
                f.kind, f.r#where, f.what, f.action
            );
        }
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
                Verdict::IntactOriginUnchecked =>
                    "INTACT, ORIGIN UNCHECKED: the package is signed, but no --pubkey was given, so the signature was not checked; anyone could have changed the package and re-sealed and re-signed it. Verify again with the exporter's public key",
                Verdict::Findings => "FINDINGS: the package is not as sealed (above)",
            }
        );
        if let Some(r) = &remote {
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
    if report.findings.is_empty() { 0 } else { 1 }
}

fn probe(files: &[std::path::PathBuf], json: bool) -> i32 {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let mut code = 0;
    for f in files {
        let r = custos::media::probe_file(f);
        if json {
            let mut v = match &r {
                Ok(info) => info.to_json(),
                Err(e) => serde_json::json!({"error": e.to_string()}),
            };
            v["file"] = serde_json::json!(f.display().to_string());
            let _ = writeln!(out, "{v}");
        } else {
            match &r {
                Ok(info) => {
                    let _ = writeln!(out, "{}: {info}", f.display());
                    for p in &info.problems {
                        let _ = writeln!(out, "  PROBLEM: {p}");
                    }
                }
                Err(e) => {
                    let _ = writeln!(out, "{}: ERROR: {e}", f.display());
                }
            }
        }
        match r {
            Ok(info) if info.problems.is_empty() => {}
            Err(custos::media::MediaError::Io(_)) => code = 2,
            _ => code = code.max(1),
        }
    }
    code
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if diagnostics::init(cli.verbose) {
        progress::quiet();
    }
    let code = match cli.command {
        Command::Export(args) => export::run_export(*args).await,
        Command::Demo(args) => export::run_demo(args).await,
        Command::Upload(args) => upload::run_upload(*args).await,
        Command::Verify {
            dir,
            pubkey,
            sample,
            seed,
            json,
            remote,
            download,
            client,
        } => verify(&dir, pubkey, sample, seed, json, remote, client, download).await,
        Command::Probe { files, json } => probe(&files, json),
        Command::Keygen { out } => match custos::sign::keygen(&out) {
            Ok(public) => {
                println!(
                    "secret key: {} (keep it secret)\npublic key: {} (give it to whoever verifies)",
                    out.display(),
                    public.display()
                );
                0
            }
            Err(e) => {
                eprintln!("custos: error: {e}");
                2
            }
        },
        Command::Sim(args) => match custos_sim::cli::run(*args).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("custos: error: {e}");
                2
            }
        },
    };
    std::process::exit(code);
}
