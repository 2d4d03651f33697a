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

/// Says what went wrong, to a person: `custos: error: …` on stderr, escaped (the text may
/// quote an API, a package or a file: it must not draw on the terminal).
pub(crate) fn error(e: &dyn std::fmt::Display) {
    eprintln!("custos: error: {}", custos::shown::Shown(&e.to_string()));
}

mod approve;
mod diagnostics;
mod export;
mod job;
mod options;
mod produce;
mod progress;
mod prove;
mod release;
mod report;
mod timestamp;
mod upload;
mod verify;
mod worker;

use clap::{Parser, Subcommand};

/// Custos: evidence-grade export of Genesys Cloud call recordings for eDiscovery.
#[derive(Parser)]
#[command(
    name = "custos",
    version,
    after_help = "Exit codes: 0 done; 1 done with Failed/Corrupted items, or an analytics job's interval ends after the data lake's dataAvailabilityDate (conversations may be missing); 2 bad usage or configuration; 3 stopped, re-run to resume; 4 the query matched no conversation (the package is sealed and empty)."
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
    Verify(Box<verify::VerifyArgs>),
    /// Write a proof that one recording belongs to a sealed export (its Merkle audit path and
    /// the signed bag-info and tag manifest), to hand over with that recording alone.
    Prove(prove::ProveArgs),
    /// Check a recording against a proof from `custos prove`, without the export (exit 0
    /// holds, 1 does not, 2 could not run).
    VerifyProof(prove::VerifyProofArgs),
    /// Produce a volume a review platform loads from a sealed export that verifies: natives
    /// named by control number, a Concordance/Relativity DAT and a CSV load file, a
    /// cross-reference, all in a BagIt bag (exit 0 produced, 1 the export does not verify,
    /// 2 bad options, 3 failed part-way).
    Produce(produce::ProduceArgs),
    /// Record counsel's approval to produce a Corrupted item: a statement signed with
    /// counsel's key, bound to the sealed export's tag manifest and the item's SHA-256, kept in
    /// DIR/approvals/ (the bag is not changed); verify and produce check it with --approver-key
    /// (exit 0 approved, 1 the export does not verify, 2 bad options or not a Corrupted item).
    Approve(approve::ApproveArgs),
    /// Have an RFC 3161 Time Stamping Authority timestamp a sealed bag's tag manifest and
    /// signature, where no token for their current bytes is there yet (exit 0 stamped, 2 not a
    /// sealed bag, 3 no TSA answered).
    Timestamp(timestamp::TimestampArgs),
    /// Render the report of a sealed export again, outside it, with its seal and a fresh
    /// verification: the tag manifest's hash, signature, timestamps, receipts, the verdict
    /// (exit 0 verified or intact, 1 findings, 2 could not run).
    Report(report::ReportArgs),
    /// Revoke the Genesys deletion protection `export --protect` put on, exactly the set the
    /// export recorded, after verifying it; receipt in DIR/receipts/ (exit 0 released, 1 some
    /// still protected or the export does not verify, 2 bad usage, 3 API unreachable).
    Release(release::ReleaseArgs),
    /// An export's job: `custos job status DIR` says how far it is, while it runs or after.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Work a distributed export (`custos export --workers --state postgres://…`): claim its
    /// items from the job state, download them with this worker's own OAuth client into the
    /// shared export directory, until none is left (exit 0 the job has no item left, 2 bad
    /// options or not such a job, 3 stopped or fenced: run it again to rejoin).
    Worker(Box<worker::WorkerArgs>),
    /// Print what each recording's file holds, and any damage found: audio (container, codec,
    /// channels, rate, duration), screen video (codec, size, duration), email EML (headers,
    /// attachments), chat/messaging ZIP (every member, CRC checked), JSON (exit 0 all sound, 1
    /// some damaged or unreadable, 2 could not run). The same reader the export uses to decide
    /// Corrupted.
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

fn probe(files: &[std::path::PathBuf], json: bool) -> i32 {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let mut code = 0;
    for f in files {
        let r = custos::media::inspect_file(f, &[]);
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
                    for p in info.problems() {
                        let _ = writeln!(out, "  PROBLEM: {p}");
                    }
                }
                Err(e) => {
                    let _ = writeln!(out, "{}: ERROR: {e}", f.display());
                }
            }
        }
        match r {
            Ok(info) if info.problems().is_empty() => {}
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
        Command::Verify(args) => verify::run_verify(*args).await,
        Command::Prove(args) => prove::run_prove(args),
        Command::VerifyProof(args) => prove::run_verify_proof(args),
        Command::Report(args) => report::run_report(args),
        Command::Release(args) => release::run_release(args).await,
        Command::Produce(args) => produce::run_produce(args).await,
        Command::Approve(args) => approve::run_approve(args),
        Command::Job(c) => job::run(c),
        Command::Worker(args) => worker::run(*args).await,
        Command::Timestamp(args) => timestamp::run_timestamp(args).await,
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
                crate::error(&e);
                2
            }
        },
        Command::Sim(args) => match custos_sim::cli::run(*args).await {
            Ok(()) => 0,
            Err(e) => {
                crate::error(&e);
                2
            }
        },
    };
    std::process::exit(code);
}
