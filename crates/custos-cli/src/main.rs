//! The `custos` command: a thin adapter from argv to one library call each.
//!
//! Exit codes: 0 success; 2 usage or configuration error (clap uses 2 as well).

use clap::{Parser, Subcommand};

/// Custos: evidence-grade export of Genesys Cloud call recordings for eDiscovery.
#[derive(Parser)]
#[command(name = "custos", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Genesys Cloud simulator (custos-sim): prints its base URL, serves until Ctrl-C.
    Sim(custos_sim::cli::SimArgs),
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => custos_sim::cli::run(args).await,
    };
    if let Err(e) = result {
        eprintln!("custos: error: {e}");
        std::process::exit(2);
    }
}
