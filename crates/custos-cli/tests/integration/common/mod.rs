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

/// Lines of an export's custody log so far: a faithful clock of its progress.
pub fn log_lines(out: &Path) -> usize {
    std::fs::read(out.join("data/custody_log.jsonl"))
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

/// Runs `c` (its output discarded) until `at()` holds, then SIGKILLs it: `true` if it was
/// killed, `false` if it ended first (successfully: anything else fails the test).
pub async fn kill_when(
    mut c: Command,
    at: impl Fn() -> bool + Send + 'static,
    what: String,
) -> bool {
    c.stdout(Stdio::null()).stderr(Stdio::null());
    tokio::task::spawn_blocking(move || {
        let mut child = c.spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "the export failed on its own: {what}");
                return false;
            }
            if at() {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                return true;
            }
            assert!(std::time::Instant::now() < deadline, "{what} never reached");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    })
    .await
    .unwrap()
}

/// Whether bagit-python validates the bag at `dir`.
pub fn bagit_valid(dir: &Path) -> bool {
    Command::new("bagit.py")
        .args(["--quiet", "--validate"])
        .arg(dir)
        .status()
        .expect("bagit.py (pip install bagit)")
        .success()
}
