//! Shared by the `custos` binary's integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub mod store;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_custos");

/// The week every simulator catalog starts with.
pub const QUERY: &str = "timestamp:[2023-10-01T00:00:00.000Z TO 2023-10-08T00:00:00.000Z}";

/// A fresh (removed if present) path under the temp dir.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("custos-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// `custos export --query QUERY --out OUT --api-base BASE --rate 6000 EXTRA…` with the
/// simulator's OAuth client in the environment.
pub fn export_cmd(base: &str, query: &str, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["export", "--query", query, "--out"])
        .arg(out)
        .args(["--api-base", base, "--rate", "6000"])
        .args(extra)
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", "custos-sim-client")
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "custos-sim-secret")
        .env_remove("GENESYSCLOUD_REGION")
        .stdin(Stdio::null());
    c
}

/// Every recording of the simulator's `truth` has exactly one row in the package at `out`, with
/// the outcome the truth gives it, and every exported one the true hash.
pub fn assert_truth(truth: &custos_sim::Truth, out: &Path, what: &str) {
    let outcomes = custos::package::outcomes(out).unwrap();
    let hashes = custos::package::exported_hashes(out).unwrap();
    assert_eq!(
        outcomes.len(),
        truth.recordings.len(),
        "{what}: every recording has exactly one row"
    );
    for t in &truth.recordings {
        assert_eq!(
            outcomes.get(&t.id),
            Some(&t.expected_outcome),
            "{what}: {}",
            t.id
        );
        if t.expected_outcome == "Exported" {
            assert_eq!(hashes.get(&t.id), Some(&t.sha256), "{what}: {}", t.id);
        }
    }
}
