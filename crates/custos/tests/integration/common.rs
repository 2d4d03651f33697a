//! Shared by the `custos` crate's integration tests: an export of the simulator's whole first
//! week, at exactly the simulator's rate limit.

use std::path::PathBuf;

use custos::export::{ExportConfig, Retrieval, Selection, SourceKind};
use custos::http::Credentials;

/// The week every simulator catalog starts with.
pub const WEEK: &str = "timestamp:[2023-10-01T00:00:00.000Z TO 2023-10-08T00:00:00.000Z}";

/// A fresh (removed if present) output directory under the temp dir.
pub fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("custos-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// An export of [`WEEK`] from `sim` into `out`, 6000 requests/min, 4 downloads at a time.
pub fn config(
    sim: &custos_sim::Running,
    out: PathBuf,
    source: SourceKind,
    retrieval: Retrieval,
) -> ExportConfig {
    let c = &sim.sim.scenario().clients[0];
    config_at(&sim.base_url, &c.id, &c.secret, out, source, retrieval)
}

/// The same export from any server at `base` (API and login on one host).
pub fn config_at(
    base: &str,
    id: &str,
    secret: &str,
    out: PathBuf,
    source: SourceKind,
    retrieval: Retrieval,
) -> ExportConfig {
    ExportConfig {
        selection: Selection::Query(WEEK.into()),
        out,
        matter: Some("M-42".into()),
        source_organization: None,
        source,
        api_base: base.to_owned(),
        login_base: base.to_owned(),
        credentials: Credentials {
            client_id: id.to_owned(),
            client_secret: secret.to_owned(),
        },
        rate_per_minute: 6_000,
        concurrency: 4,
        retrieval,
        operator: Some("Test Operator <t@example.invalid>".into()),
        custodians: Vec::new(),
        sign_key: None,
        page_size: 25,
        now: None,
        duration_tolerance: std::time::Duration::from_secs(1),
        tsa: Vec::new(),
        job_deadline: custos::export::JOB_DEADLINE,
        state: Default::default(),
        workers: false,
        archive: None,
        protect: false,
        restore: None,
        increment_of: None,
        pubkey: None,
        orphans: false,
        collect_orphans: false,
        media: Vec::new(),
        transcripts: false,
    }
}

/// ffprobe's reading of a file's duration, seconds.
pub fn ffprobe_seconds(f: &std::path::Path) -> f64 {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(f)
        .output()
        .expect("ffprobe must be installed (.ci/run installs it)");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe gave no duration for {}", f.display()))
}
