//! Shared by the `custos` binary's integration tests.

use std::path::PathBuf;

pub mod store;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_custos");

/// The week every simulator catalog starts with.
#[allow(dead_code)] // not every test binary runs a query
pub const QUERY: &str = "timestamp:[2023-10-01T00:00:00.000Z TO 2023-10-08T00:00:00.000Z}";

/// A fresh (removed if present) path under the temp dir.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("custos-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}
