//! `custos timestamp`: RFC 3161 timestamps for a sealed bag (an export or a production volume)
//! that has none yet for its current tag manifest and signature: what `export --tsa` and
//! `produce --tsa` do after sealing, on its own, to ask again after no TSA answered.

use std::path::{Path, PathBuf};

use clap::Args;
use custos::shown::Shown;

/// Options of `custos timestamp`.
#[derive(Args, Debug)]
pub struct TimestampArgs {
    /// The sealed bag (an export or a production volume).
    pub dir: PathBuf,
    /// The Time Stamping Authority; repeat it for fallbacks, tried in order.
    #[arg(long, value_name = "URL", required = true)]
    pub tsa: Vec<String>,
    /// Keep only tokens that verify against these TSA certificates (PEM); without it a token
    /// must verify against the certificate it carries.
    #[arg(long, value_name = "FILE")]
    pub tsa_ca: Option<PathBuf>,
    /// The bag must be signed by this minisign public key.
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
}

/// Prints what each TSA said.
pub fn print(stamps: &[custos::tsa::Stamp]) {
    for s in stamps {
        match (&s.time, &s.error) {
            (Some(t), _) => out!(
                "  timestamp              {} at {} by {}",
                Shown(&s.file),
                Shown(t),
                Shown(&s.tsa)
            ),
            (None, e) => out!(
                "  timestamp FAILED       {} by {}: {}",
                Shown(&s.file),
                Shown(&s.tsa),
                Shown(e.as_deref().unwrap_or(""))
            ),
        }
    }
}

/// Stamps `dir` (a bag custos just sealed, or one [`run_timestamp`] opened verified): the
/// stamps, or the exit code (3 no TSA granted a token that verifies) with the error printed.
pub async fn stamp(
    dir: &Path,
    tsa: &[String],
    tsa_ca: Option<&Path>,
) -> Result<Vec<custos::tsa::Stamp>, i32> {
    custos::tsa::stamp_bag(dir, tsa, tsa_ca).await.map_err(|e| {
        crate::error(&e);
        eprintln!(
            "custos: run `custos timestamp {} --tsa URL` to ask again",
            dir.display()
        );
        3
    })
}

/// Runs `custos timestamp` (0 timestamped, 1 the bag does not verify or is not signed by
/// --pubkey, 2 not a bag, 3 no TSA granted a token that verifies).
pub async fn run_timestamp(a: TimestampArgs) -> i32 {
    if let Err(code) = crate::verify::open_package(&a.dir, a.pubkey.as_deref()) {
        return code;
    }
    match stamp(&a.dir, &a.tsa, a.tsa_ca.as_deref()).await {
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
