//! Diagnostics for an operator debugging a run: `tracing` events from every crate of custos,
//! written to stderr, chosen by `-v` (info, `-vv` debug, `-vvv` trace) or by `RUST_LOG`
//! (`target=level` directives, e.g. `custos::http=debug,custos_store=info`), which wins.
//!
//! They are not evidence and never part of the package: the custody log is. Nothing secret is
//! logged: no token, no client secret, no pre-signed URL's query (URLs pass through
//! `custos::custody::redact_url`).

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// The crates whose events `-v` shows (others, e.g. the AWS SDK's, only through `RUST_LOG`).
const OURS: &[&str] = &["custos", "custos_store", "custos_sim"];

/// Installs the stderr subscriber. Returns whether anything will be shown (the progress bars
/// give way to the log lines then).
pub fn init(verbose: u8) -> bool {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let filter = match from_env.as_deref().map(str::parse::<Targets>) {
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            eprintln!(
                "custos: warning: RUST_LOG is not `target=level,…` directives ({e}); using -v"
            );
            by_verbosity(verbose)
        }
        None => by_verbosity(verbose),
    };
    let shows = filter.default_level().is_some_and(|l| l > LevelFilter::OFF)
        || filter.iter().any(|(_, l)| l > LevelFilter::OFF);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .with_target(true),
        )
        .with(filter)
        .init();
    shows
}

fn by_verbosity(verbose: u8) -> Targets {
    let level = match verbose {
        0 => LevelFilter::OFF,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    OURS.iter()
        .fold(Targets::new(), |t, target| t.with_target(*target, level))
}
