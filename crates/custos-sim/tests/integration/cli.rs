//! The `custos-sim` binary: documented options, loopback only, base URL on stdout.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_custos-sim");

#[test]
fn help_documents_every_option() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--listen",
        "--scenario",
        "--client-id",
        "--client-secret",
        "--token-ttl",
        "--seed",
        "--conversations",
        "--start",
        "--end",
        "--max-recordings",
        "--min-recording",
        "--max-recording",
        "--sample-rate",
        "--channels",
        "--codecs",
        "--archived",
        "--deleted",
        "--latency-ms",
        "--bandwidth",
        "--api-rate",
        "--search-rate",
        "--transcode-ms",
        "--batch-ms-per-item",
        "--async-job-ms",
        "--url-ttl",
        "--no-search-api",
        "--faults",
        "--truth",
    ] {
        assert!(help.contains(opt), "--help does not document {opt}");
    }
}

#[test]
fn refuses_bad_input_clearly() {
    for (args, needle) in [
        (vec!["--listen", "0.0.0.0:0"], "loopback only"),
        (vec!["--faults", "gremlins"], "unknown fault 'gremlins'"),
        (
            vec![
                "--start",
                "2024-01-02T00:00:00Z",
                "--end",
                "2024-01-01T00:00:00Z",
            ],
            "end must be after start",
        ),
        (
            vec!["--scenario", "/nonexistent/scenario.toml"],
            "cannot read scenario",
        ),
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn prints_its_base_url_and_writes_the_truth() {
    let dir = std::env::temp_dir().join(format!("custos-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("s.toml");
    std::fs::write(
        &scenario,
        "conversations = 4\nseed = 42\n[faults]\npurge = 1.0\n",
    )
    .unwrap();
    let truth = dir.join("truth.json");
    let mut child = Command::new(BIN)
        .args([
            "--scenario",
            scenario.to_str().unwrap(),
            "--conversations",
            "6",
            "--truth",
            truth.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.trim().starts_with("http://127.0.0.1:"), "{line}");
    let t: serde_json::Value = serde_json::from_slice(&std::fs::read(&truth).unwrap()).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(t["seed"], 42, "the file's seed");
    assert_eq!(t["conversations"], 6, "the flag wins over the file");
    let recs = t["recordings"].as_array().unwrap();
    assert!(
        recs.iter()
            .filter(|r| r["catalogFileState"] == "AVAILABLE")
            .all(|r| r["expectedOutcome"] == "Purged")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
