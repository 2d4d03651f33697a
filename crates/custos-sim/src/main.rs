//! `custos-sim`: run the Genesys Cloud simulator from the command line.

use clap::Parser;

/// A local simulator of the Genesys Cloud recording APIs (and the design guide's search API),
/// for tests, demos and benchmarks. Prints its base URL on stdout; serves until Ctrl-C.
#[derive(Parser)]
#[command(name = "custos-sim", version)]
struct Cli {
    #[command(flatten)]
    sim: custos_sim::cli::SimArgs,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = custos_sim::cli::run(cli.sim).await {
        eprintln!("custos-sim: error: {e}");
        std::process::exit(2);
    }
}
