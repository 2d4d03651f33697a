//! `custos timestamp`: RFC 3161 timestamps for a sealed bag (an export or a production volume)
//! that has none yet for its current tag manifest and signature: what `export --tsa` and
//! `produce --tsa` do after sealing, on its own, to ask again after no TSA answered.

use std::path::{Path, PathBuf};

use clap::Args;

/// Options of `custos timestamp`.
#[derive(Args, Debug)]
pub struct TimestampArgs {
    /// The sealed bag (an export or a production volume).
    pub dir: PathBuf,
    /// The Time Stamping Authority; repeat it for fallbacks, tried in order.
    #[arg(long, value_name = "URL", required = true)]
    pub tsa: Vec<String>,
}

/// Prints what each TSA said.
pub fn print(stamps: &[custos::tsa::Stamp]) {
    for s in stamps {
        match (&s.time, &s.error) {
            (Some(t), _) => out!("  timestamp              {} at {t} by {}", s.file, s.tsa),
            (None, e) => out!(
                "  timestamp FAILED       {} by {}: {}",
                s.file,
                s.tsa,
                e.as_deref().unwrap_or("")
            ),
        }
    }
}

/// Stamps `dir`: the stamps, or the exit code (2 not a sealed bag, 3 no TSA answered) with the
/// error printed.
pub async fn stamp(dir: &Path, tsa: &[String]) -> Result<Vec<custos::tsa::Stamp>, i32> {
    if !dir.join("tagmanifest-sha256.txt").is_file() {
        eprintln!(
            "custos: error: {}: no tagmanifest-sha256.txt; not a sealed bag",
            dir.display()
        );
        return Err(2);
    }
    custos::tsa::stamp_bag(dir, tsa).await.map_err(|e| {
        eprintln!("custos: error: {e}");
        eprintln!(
            "custos: run `custos timestamp {} --tsa URL` to ask again",
            dir.display()
        );
        3
    })
}

/// Runs `custos timestamp`.
pub async fn run_timestamp(a: TimestampArgs) -> i32 {
    match stamp(&a.dir, &a.tsa).await {
        Ok(stamps) if stamps.is_empty() => {
            out!("already timestamped: every token matches the current files");
            0
        }
        Ok(stamps) => {
            print(&stamps);
            0
        }
        Err(code) => code,
    }
}
