//! The `custos` command: a thin adapter from argv to one library call each.
//!
//! Exit codes (also in `custos --help`):
//! * 0 — done: every manifest item ended Exported, Purged or Archived;
//! * 1 — done, but some items ended Failed or Corrupted (see chain_of_custody.csv);
//! * 2 — bad usage or configuration, found before anything was written;
//! * 3 — the export stopped (API, network or disk): re-run the same command to resume.

mod export;
mod progress;

use clap::{Parser, Subcommand};

/// Custos: evidence-grade export of Genesys Cloud call recordings for eDiscovery.
#[derive(Parser)]
#[command(
    name = "custos",
    version,
    after_help = "Exit codes: 0 done; 1 done with Failed/Corrupted items; 2 bad usage or configuration; 3 stopped, re-run to resume."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Export the recordings a query selects into a verifiable evidence package (a BagIt bag).
    Export(Box<export::ExportArgs>),
    /// Start the embedded simulator, export from it into ./custos-demo (or --out), validate it.
    Demo(export::DemoArgs),
    /// Make a signing key pair: the secret key at --out (mode 0600), the public key at --out.pub.
    Keygen {
        /// Path of the secret key.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Run the Genesys Cloud simulator (custos-sim): prints its base URL, serves until Ctrl-C.
    Sim(Box<custos_sim::cli::SimArgs>),
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Export(args) => export::run_export(*args).await,
        Command::Demo(args) => export::run_demo(args).await,
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
