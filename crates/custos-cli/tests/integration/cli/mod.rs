//! The `custos` binary end to end: clear refusals before anything is written, SIGKILL mid-
//! download then resume, and the evidence package checked by tools we did not write.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use custos_sim::{Scenario, Sim};

use crate::common::{BIN, QUERY, tmp};

mod approvals;
mod export_guards;
mod preserve;
mod produce;
mod proofs;
mod report;
pub(crate) mod timestamps;
mod trust;
mod verify_hostile;

type Env = custos_sim::Running;

async fn start(s: Scenario) -> Env {
    Sim::new(s).unwrap().spawn().await.unwrap()
}

fn export_cmd(env: &Env, out: &Path, extra: &[&str]) -> Command {
    export_query(env, QUERY, out, extra)
}

fn export_query(env: &Env, query: &str, out: &Path, extra: &[&str]) -> Command {
    let mut c = crate::common::export_cmd(&env.base_url, query, out, &["--matter", "M-1"]);
    c.args(extra);
    c
}

async fn run(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

fn rows(out: &Path) -> BTreeSet<(String, String, String)> {
    let mut r = csv::Reader::from_path(out.join("data/chain_of_custody.csv")).unwrap();
    r.records()
        .map(|x| x.unwrap())
        .map(|x| (x[0].to_owned(), x[2].to_owned(), x[6].to_owned()))
        .collect()
}

fn parts(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            n += parts(&p);
        } else if p.extension().is_some_and(|x| x == "part") {
            n += 1;
        }
    }
    n
}

fn recordings(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            n += recordings(&p);
        } else if p.extension().is_some_and(|x| x == "wav" || x == "ogg") {
            n += 1;
        }
    }
    n
}

fn scenario() -> Scenario {
    Scenario {
        conversations: 40,
        api_rate: 6_000,
        batch_ms_per_item: 1,
        async_job_ms: 100,
        ..Scenario::default()
    }
}

#[tokio::test]
async fn bad_input_exits_2_with_a_clear_error_and_writes_nothing() {
    let env = start(scenario()).await;
    let out = tmp("bad");
    for (query, needle) in [
        (
            "timestamp:[2023-10-01T00:00:00Z TO",
            "invalid query at column",
        ),
        ("colour:red", "unknown field 'colour'"),
    ] {
        let o = run(export_query(&env, query, &out, &[])).await;
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{err}");
        assert!(!out.exists());
    }
    // Storage options without a destination, upload settings that cannot hold: refused before
    // the export starts.
    for (extra, needle) in [
        (&["--lock-mode", "compliance"][..], "need --upload URL"),
        (
            &[
                "--upload",
                "s3://evidence-bucket/m1",
                "--lock-mode",
                "compliance",
            ][..],
            "--lock-mode needs --retain-until",
        ),
        (&["--upload", "s3://evidence-bucket"][..], "give a prefix"),
    ] {
        let o = run(export_cmd(&env, &out, extra)).await;
        assert_eq!(o.status.code(), Some(2), "{extra:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{err}");
        assert!(!out.exists());
    }
    let o = run({
        let mut c = Command::new(BIN);
        c.args([
            "verify",
            out.to_str().unwrap(),
            "--endpoint",
            "http://127.0.0.1:9",
        ]);
        c
    })
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("need --remote URL"));
    // A bad region (no --api-base).
    let o = run({
        let mut c = Command::new(BIN);
        c.args([
            "export",
            "--query",
            QUERY,
            "--out",
            out.to_str().unwrap(),
            "--region",
            "mypurecloud.moon",
        ])
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", "x")
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "y");
        c
    })
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("unknown Genesys Cloud region 'mypurecloud.moon'")
    );
    // Missing credentials.
    let mut c = export_cmd(&env, &out, &[]);
    c.env_remove("GENESYSCLOUD_OAUTHCLIENT_ID")
        .env_remove("GENESYSCLOUD_OAUTHCLIENT_SECRET");
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("no credentials: set GENESYSCLOUD_OAUTHCLIENT_ID")
    );
    // Wrong secret: refused at login, and the secret is never echoed.
    let mut c = export_cmd(&env, &out, &[]);
    c.env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "s3cr3t-wrong");
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("authentication failed") && !err.contains("s3cr3t-wrong"),
        "{err}"
    );
    // A world-readable credentials file is refused.
    let creds = tmp("creds.toml");
    std::fs::write(
        &creds,
        "client-id = \"custos-sim-client\"\nclient-secret = \"custos-sim-secret\"\n",
    )
    .unwrap();
    let mut c = export_cmd(&env, &out, &["--credentials", creds.to_str().unwrap()]);
    c.env_remove("GENESYSCLOUD_OAUTHCLIENT_ID")
        .env_remove("GENESYSCLOUD_OAUTHCLIENT_SECRET");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
        let o = run(c).await;
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("chmod 600"));
    }
    assert!(!out.exists());
    std::fs::remove_file(&creds).unwrap();
}

#[tokio::test]
async fn sigkill_mid_download_then_resume_gives_the_same_package() {
    // Slow media (about 1 s per recording) so the kill lands mid-download.
    let slow = Scenario {
        bandwidth: 300_000,
        max_recording_s: 20,
        ..scenario()
    };
    let env = start(slow.clone()).await;
    let out = tmp("killed");
    let mut child = export_cmd(&env, &out, &["--concurrency", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while recordings(&out.join("data/recordings")) < 3 {
        assert!(Instant::now() < deadline, "the export never got going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !out.join("tagmanifest-sha256.txt").exists(),
        "killed before the package was sealed"
    );

    let o = run(export_cmd(&env, &out, &["--concurrency", "4", "--json"])).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["resumed"], true);
    assert_eq!(parts(&out), 0, "no .part survives");
    // The custody log survived the kill and its chain continues across both runs.
    let chain = custos::custody::check_chain(&out.join("data/custody_log.jsonl")).unwrap();
    assert_eq!(chain.torn_bytes, 0);
    let runs = custos::custody::read_events(&out.join("data/custody_log.jsonl"))
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "export-run")
        .count();
    assert_eq!(runs, 2);

    // An uninterrupted export of the same catalog, for comparison.
    let reference = start(Scenario {
        bandwidth: 0,
        ..slow
    })
    .await;
    let clean = tmp("clean");
    let o = run(export_cmd(&reference, &clean, &["--concurrency", "4"])).await;
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(rows(&out), rows(&clean));
    assert_eq!(
        std::fs::read(out.join("data/manifest.csv")).unwrap(),
        std::fs::read(clean.join("data/manifest.csv")).unwrap()
    );
    assert_eq!(env.sim.stats().bearer_on_media, 0);
    custos::package::validate_bag(&out).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_dir_all(&clean).unwrap();
}

/// bagit-python, GNU `sha256sum -c` and perl `shasum -c` accept the package (installed by .ci/run).
#[tokio::test]
async fn third_party_tools_accept_the_package() {
    let env = start(scenario()).await;
    let out = tmp("verifiers");
    let o = run(export_cmd(&env, &out, &[])).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = Command::new("bagit.py")
        .args(["--validate", out.to_str().unwrap()])
        .output()
        .expect("bagit.py (pip install bagit)");
    assert!(
        v.status.success(),
        "bagit.py: {}",
        String::from_utf8_lossy(&v.stderr)
    );
    let mut dirs = 0;
    for conv in std::fs::read_dir(out.join("data/recordings")).unwrap() {
        let dir = conv.unwrap().path();
        let sidecars: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sha256"))
            .collect();
        assert!(!sidecars.is_empty());
        let s = Command::new("sha256sum")
            .arg("-c")
            .arg("--strict")
            .args(&sidecars)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            s.status.success(),
            "sha256sum -c in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&s.stdout)
        );
        let s = Command::new("shasum")
            .args(["-a", "256", "-c"])
            .args(&sidecars)
            .current_dir(&dir)
            .output()
            .expect("perl shasum");
        assert!(
            s.status.success(),
            "shasum -c in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&s.stdout)
        );
        dirs += 1;
    }
    assert!(dirs > 10);
    let s = Command::new("sha256sum")
        .args(["-c", "manifest.csv.sha256"])
        .current_dir(out.join("data"))
        .output()
        .unwrap();
    assert!(s.status.success());
    let hashdeep = |dir: &Path| {
        Command::new("hashdeep")
            .args([
                "-c",
                "sha256",
                "-r",
                "-l",
                "-a",
                "-k",
                "hashdeep-sha256.txt",
                "data",
            ])
            .current_dir(dir)
            .output()
            .expect("hashdeep (apt install hashdeep)")
    };
    let h = hashdeep(&out);
    assert!(
        h.status.success(),
        "hashdeep audit: {}",
        String::from_utf8_lossy(&h.stdout)
    );
    // A flipped byte is caught by all of them.
    let victim = std::fs::read_dir(out.join("data/recordings"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let file = std::fs::read_dir(&victim)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x != "sha256"))
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 1;
    let mut perm = std::fs::metadata(&file).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&file, perm).unwrap();
    std::fs::write(&file, bytes).unwrap();
    assert!(
        !Command::new("bagit.py")
            .args(["--validate", out.to_str().unwrap()])
            .output()
            .unwrap()
            .status
            .success()
    );
    assert!(
        !hashdeep(&out).status.success(),
        "hashdeep audit must fail on a changed file"
    );
    assert!(
        !Command::new("sha256sum")
            .arg("-c")
            .arg(format!(
                "{}.sha256",
                file.file_name().unwrap().to_str().unwrap()
            ))
            .current_dir(&victim)
            .output()
            .unwrap()
            .status
            .success()
    );
    std::fs::remove_dir_all(&out).unwrap();
}

/// The README's run command: the demo exports, validates, and shows every kind of outcome.
#[test]
fn demo_runs_and_validates() {
    let out = tmp("demo");
    let o = Command::new(BIN)
        .args(["demo", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("Validated:"), "{stdout}");
    let outcomes = custos::package::outcomes(&out).unwrap();
    for kind in ["Exported", "Purged", "Archived", "Corrupted"] {
        assert!(
            outcomes.values().any(|o| o == kind),
            "no {kind} item in the demo"
        );
    }
    // Its report, both forms, states the demo's counts, query hash and every item not exported.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    report::assert_states_the_facts(&html, &out, "the demo's report.html");
    let pdf = report::pdftotext(&out.join("report.pdf"));
    report::assert_states_the_facts(&pdf, &out, "the demo's report.pdf");
    // Produced, it loads: the DAT (read by the test's own reader) lists every exported
    // recording once, each NATIVELINK there, and the volume is a valid bag.
    let vol = tmp("demo-volume");
    let o = Command::new(BIN)
        .args([
            "produce",
            out.to_str().unwrap(),
            "--out",
            vol.to_str().unwrap(),
            "--prefix",
            "DEMO",
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let docs = produce::read_dat(&vol.join("data/DEMO.dat"));
    let exported = outcomes.values().filter(|o| *o == "Exported").count();
    // One document per exported recording, and an email's attachments and later messages.
    let recordings = docs
        .iter()
        .filter(|d| !d["MEDIATYPE"].starts_with("email "))
        .count();
    assert_eq!(recordings, exported);
    for d in &docs {
        assert!(
            vol.join("data")
                .join(d["NATIVELINK"].replace('\\', "/"))
                .is_file()
        );
        // An orphan recording has no conversation: no agent, no numbers; a family of one.
        if d["CONVERSATIONID"].is_empty() {
            assert!(d["SOURCE_PATH"].starts_with("data/orphans/"), "{d:?}");
            assert_eq!(d["GROUPID"], d["BEGDOC"]);
            assert!(d["PARENT_ID"].is_empty() && d["ATTACHIDS"].is_empty());
        } else {
            assert!(!d["CUSTODIAN"].is_empty() && !d["FROM"].is_empty() && !d["TO"].is_empty());
        }
    }
    // The demo collects its orphans (--collect-orphans): each one exported is a document.
    let orphans_exported = custos::package::custody_rows(&out)
        .unwrap()
        .iter()
        .filter(|r| r.conversation_id.is_empty() && r.outcome == "Exported")
        .count();
    assert!(orphans_exported > 0);
    assert_eq!(
        docs.iter()
            .filter(|d| d["CONVERSATIONID"].is_empty())
            .count(),
        orphans_exported
    );
    let o = Command::new("bagit.py")
        .arg("--validate")
        .arg(&vol)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_dir_all(&vol).unwrap();
    // Run again: already complete, nothing changes.
    let before = std::fs::read(out.join("tagmanifest-sha256.txt")).unwrap();
    let o = Command::new(BIN)
        .args(["demo", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("already complete"));
    assert_eq!(
        std::fs::read(out.join("tagmanifest-sha256.txt")).unwrap(),
        before
    );
    std::fs::remove_dir_all(&out).unwrap();
}

/// `custos keygen`, `--sign-key`, and the real `minisign -V` (installed by .ci/run).
#[tokio::test]
async fn signed_exports_verify_with_minisign() {
    let env = start(scenario()).await;
    let out = tmp("signed");
    let key = tmp("key");
    keygen(&key);
    let public = PathBuf::from(format!("{}.pub", key.display()));
    let o = run(export_cmd(
        &env,
        &out,
        &["--sign-key", key.to_str().unwrap(), "--json"],
    ))
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let head = report["custodyLogHead"].as_str().unwrap().to_owned();
    let verify = |dir: &Path| {
        Command::new("minisign")
            .args([
                "-V",
                "-p",
                public.to_str().unwrap(),
                "-m",
                "tagmanifest-sha256.txt",
                "-x",
                "tagmanifest-sha256.txt.minisig",
            ])
            .current_dir(dir)
            .output()
            .expect("minisign (apt install minisign)")
    };
    let v = verify(&out);
    let said = String::from_utf8_lossy(&v.stdout).to_string();
    assert!(
        v.status.success(),
        "minisign -V: {said} {}",
        String::from_utf8_lossy(&v.stderr)
    );
    assert!(
        said.contains(&format!("custody-log-head:{head}")) && said.contains("matter:M-1"),
        "{said}"
    );
    // The signature sits outside the tag manifest: the bag still validates with it present.
    assert!(
        Command::new("bagit.py")
            .args(["--validate", out.to_str().unwrap()])
            .output()
            .unwrap()
            .status
            .success()
    );
    // Change what it signs: minisign refuses.
    let tm = out.join("tagmanifest-sha256.txt");
    let text = std::fs::read_to_string(&tm).unwrap();
    std::fs::write(&tm, text.replacen('0', "1", 1)).unwrap();
    assert!(!verify(&out).status.success());
    // An existing key is never overwritten.
    let o = Command::new(BIN)
        .args(["keygen", "--out", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_file(&key).unwrap();
    std::fs::remove_file(&public).unwrap();
}

/// A FIFO at `at` (coreutils' mkfifo).
/// `custos verify DIR`'s exit code.
fn verify_code(dir: &Path) -> i32 {
    Command::new(BIN)
        .args(["verify", dir.to_str().unwrap()])
        .output()
        .unwrap()
        .status
        .code()
        .unwrap()
}

fn mkfifo(at: &Path) {
    assert!(Command::new("mkfifo").arg(at).status().unwrap().success());
}

/// `custos keygen --out KEY` (and KEY.pub).
fn keygen(key: &Path) {
    let o = Command::new(BIN)
        .args(["keygen", "--out", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn copy_export(src: &Path, name: &str) -> PathBuf {
    let dst = tmp(name);
    assert!(
        Command::new("cp")
            .args(["-a", src.to_str().unwrap(), dst.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        Command::new("chmod")
            .args(["-R", "u+w", dst.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    dst
}

fn first_recording(root: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = Vec::new();
    for conv in std::fs::read_dir(root.join("data/recordings")).unwrap() {
        for f in std::fs::read_dir(conv.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|x| x != "sha256") {
                files.push(p);
            }
        }
    }
    files.sort();
    files.remove(0)
}

/// Rewrites the custody log's lines through `f`.
fn with_log_lines(root: &Path, f: impl FnOnce(&mut Vec<String>)) {
    with_lines(&root.join("data/custody_log.jsonl"), f)
}

/// Rewrites a text file's lines (without their newlines) through `f`; a missing file is empty.
fn with_lines(p: &Path, f: impl FnOnce(&mut Vec<String>)) {
    let mut lines: Vec<String> = std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    f(&mut lines);
    std::fs::write(p, lines.join("\n") + "\n").unwrap();
}

fn edit_line(path: &Path, n: usize, f: impl Fn(&str) -> String) {
    let text = std::fs::read_to_string(path).unwrap();
    let out: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| if i == n { f(l) } else { l.to_owned() })
        .collect();
    std::fs::write(path, out.join("\n") + "\n").unwrap();
}

/// Every kind of tampering is reported by `custos verify`; bagit.py agrees where it can see it.
#[tokio::test]
async fn verify_reports_every_kind_of_tampering() {
    let env = start(scenario()).await;
    let base = tmp("tamper-base");
    let key = tmp("tamper-key");
    let other_key = tmp("tamper-other-key");
    for k in [&key, &other_key] {
        keygen(k);
    }
    let o = run(export_cmd(
        &env,
        &base,
        &["--sign-key", key.to_str().unwrap()],
    ))
    .await;
    assert_eq!(o.status.code(), Some(0));
    let public = format!("{}.pub", key.display());
    let verify = |dir: &Path| -> (i32, Vec<String>) {
        let o = Command::new(BIN)
            .args([
                "verify",
                dir.to_str().unwrap(),
                "--pubkey",
                &public,
                "--json",
            ])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
        (
            o.status.code().unwrap(),
            v["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["kind"].as_str().unwrap().to_owned())
                .collect(),
        )
    };
    let bagit_ok = |dir: &Path| {
        Command::new("bagit.py")
            .args(["--validate", dir.to_str().unwrap()])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert_eq!(
        verify(&base),
        (0, vec![]),
        "an untouched export has no findings"
    );
    // --sample hashes fewer files, still checks every file's presence and size.
    let hashed = |extra: &[&str]| {
        let o = Command::new(BIN)
            .args(["verify", base.to_str().unwrap(), "--json"])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["filesHashed"]
            .as_u64()
            .unwrap()
    };
    assert!(hashed(&["--sample", "0.1"]) < hashed(&[]));
    assert!(bagit_ok(&base));

    type Tamper = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Tamper, &str, bool)> = vec![
        (
            "flip-byte",
            Box::new(|d| {
                let f = first_recording(d);
                let mut b = std::fs::read(&f).unwrap();
                b[200] ^= 0x01;
                std::fs::write(&f, b).unwrap();
            }),
            "payload-hash-mismatch",
            true,
        ),
        (
            "delete-recording",
            Box::new(|d| std::fs::remove_file(first_recording(d)).unwrap()),
            "row-without-file",
            true,
        ),
        (
            "add-file",
            Box::new(|d| {
                let f = first_recording(d);
                std::fs::write(f.with_file_name("planted.wav"), b"RIFF").unwrap();
            }),
            "file-without-row",
            true,
        ),
        (
            "swap-recordings",
            Box::new(|d| {
                let a = first_recording(d);
                let mut all: Vec<PathBuf> =
                    std::fs::read_dir(a.parent().unwrap().parent().unwrap())
                        .unwrap()
                        .flat_map(|c| std::fs::read_dir(c.unwrap().path()).unwrap())
                        .map(|e| e.unwrap().path())
                        .filter(|p| p.extension().is_some_and(|x| x != "sha256"))
                        .collect();
                all.sort();
                let b = all.last().unwrap().clone();
                let (x, y) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
                std::fs::write(&a, y).unwrap();
                std::fs::write(&b, x).unwrap();
            }),
            "payload-hash-mismatch",
            true,
        ),
        (
            "edit-csv-row",
            Box::new(|d| {
                edit_line(&d.join("data/chain_of_custody.csv"), 3, |l| {
                    l.replacen("Exported", "Purged", 1)
                        .replacen("Archived", "Exported", 1)
                })
            }),
            "payload-hash-mismatch",
            true,
        ),
        (
            "edit-metadata",
            Box::new(|d| {
                let m = std::fs::read_dir(d.join("data/metadata"))
                    .unwrap()
                    .next()
                    .unwrap()
                    .unwrap()
                    .path();
                let t = std::fs::read_to_string(&m).unwrap();
                std::fs::write(
                    &m,
                    t.replacen("AVAILABLE", "DELETED", 1)
                        .replacen("ARCHIVED", "AVAILABLE", 1),
                )
                .unwrap();
            }),
            "payload-hash-mismatch",
            true,
        ),
        (
            "edit-log-line",
            Box::new(|d| {
                edit_line(&d.join("data/custody_log.jsonl"), 5, |l| {
                    l.replacen("\"attempt\":1", "\"attempt\":9", 1).replacen(
                        "\"seq\":6",
                        "\"seq\":6 ",
                        1,
                    )
                })
            }),
            "log-chain-broken",
            true,
        ),
        (
            "delete-log-line",
            Box::new(|d| with_log_lines(d, |l| drop(l.remove(4)))),
            "log-chain-broken",
            true,
        ),
        (
            "reorder-log-lines",
            Box::new(|d| with_log_lines(d, |l| l.swap(3, 4))),
            "log-chain-broken",
            true,
        ),
        (
            "truncate-log",
            Box::new(|d| with_log_lines(d, |l| drop(l.pop()))),
            "log-head-mismatch",
            true,
        ),
        (
            "edit-bag-info",
            Box::new(|d| {
                let p = d.join("bag-info.txt");
                let t = std::fs::read_to_string(&p).unwrap();
                std::fs::write(
                    &p,
                    t.replace("External-Identifier: M-1", "External-Identifier: M-2"),
                )
                .unwrap();
            }),
            "tag-hash-mismatch",
            true,
        ),
        (
            "replace-signature",
            Box::new({
                let other = other_key.clone();
                move |d: &Path| {
                    let sk = custos::sign::load_secret_key(&other).unwrap();
                    custos::sign::sign_bag(d, &sk, "custos matter:M-1").unwrap();
                }
            }),
            "signature-invalid",
            false,
        ),
        (
            "corrupt-signature",
            Box::new(|d| {
                let p = d.join("tagmanifest-sha256.txt.minisig");
                let t = std::fs::read_to_string(&p).unwrap();
                let mut lines: Vec<String> = t.lines().map(str::to_owned).collect();
                // A character inside the Ed25519 signature bytes (not the base64 padding bits).
                let mut sig: Vec<char> = lines[1].chars().collect();
                sig[40] = if sig[40] == 'A' { 'B' } else { 'A' };
                lines[1] = sig.into_iter().collect();
                std::fs::write(&p, lines.join("\n") + "\n").unwrap();
            }),
            "signature-invalid",
            false,
        ),
        (
            "remove-signature",
            Box::new(|d| std::fs::remove_file(d.join("tagmanifest-sha256.txt.minisig")).unwrap()),
            "unsigned",
            false,
        ),
    ];
    assert!(cases.len() >= 12);
    for (name, tamper, expect, bagit_sees) in cases {
        let d = copy_export(&base, &format!("tamper-{name}"));
        tamper(&d);
        let (code, kinds) = verify(&d);
        assert_eq!(code, 1, "{name}: verify must report it");
        assert!(
            kinds.iter().any(|k| k == expect),
            "{name}: expected {expect}, got {kinds:?}"
        );
        if bagit_sees {
            assert!(!bagit_ok(&d), "{name}: bagit.py should reject it too");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
    std::fs::remove_dir_all(&base).unwrap();
    for k in [&key, &other_key] {
        std::fs::remove_file(k).unwrap();
        std::fs::remove_file(format!("{}.pub", k.display())).unwrap();
    }
}

/// `custos probe` prints what the export reads from a file, as text or JSON lines, and says by
/// its exit code whether every file was sound.
#[test]
fn probe_reports_files_and_damage() {
    let dir = tmp("probe");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dir.join("call.wav");
    let ogg = dir.join("call.ogg");
    for (out, codec) in [(&wav, "pcm_mulaw"), (&ogg, "libopus")] {
        let ok = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "sine=f=440:d=2.5:r=8000",
                "-c:a",
                codec,
            ])
            .arg(out)
            .status()
            .expect("ffmpeg must be installed (.ci/run installs it)");
        assert!(ok.success());
    }
    let cut = dir.join("cut.ogg");
    let b = std::fs::read(&ogg).unwrap();
    std::fs::write(&cut, &b[..b.len() / 2]).unwrap();
    let html = dir.join("proxy.wav");
    std::fs::write(&html, "<html>502 Bad Gateway</html>").unwrap();

    let o = std::process::Command::new(BIN)
        .arg("probe")
        .args([&wav, &ogg])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains("wav, pcm_mulaw, 1 ch, 8000 Hz, 2.500 s"),
        "{text}"
    );
    assert!(
        text.contains("ogg, opus, 1 ch, 48000 Hz, 2.500 s"),
        "{text}"
    );

    let o = std::process::Command::new(BIN)
        .args(["probe", "--json"])
        .args([&wav, &cut, &html])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["durationSeconds"], 2.5);
    assert_eq!(lines[0]["problems"], serde_json::json!([]));
    assert!(
        lines[1]["problems"][0]
            .as_str()
            .unwrap()
            .contains("truncated"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2]["error"]
            .as_str()
            .unwrap()
            .contains("not a recognised audio file")
    );

    let o = std::process::Command::new(BIN)
        .args(["probe"])
        .arg(dir.join("missing.wav"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `custos probe` reads every media type: screen video (made by ffmpeg), an EML (whole, and cut
/// short), a ZIP (made by Python's zipfile: whole, and with a member's byte changed) and JSON;
/// damage is a problem and exit 1.
#[test]
fn probe_reads_screen_email_zip_and_json() {
    let dir = tmp("probe-natives");
    std::fs::create_dir_all(&dir).unwrap();
    let webm = dir.join("screen.webm");
    let ok = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x90:rate=5:d=3",
        ])
        .args(["-c:v", "libvpx", "-b:v", "100k"])
        .arg(&webm)
        .status()
        .expect("ffmpeg must be installed (.ci/run installs it)");
    assert!(ok.success());
    let eml = dir.join("mail.eml");
    let mail = "From: A <a@example.net>\r\nDate: Sun, 1 Oct 2023 10:00:00 +0000\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n--B\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--B--\r\n";
    std::fs::write(&eml, mail).unwrap();
    let cut = dir.join("cut.eml");
    std::fs::write(&cut, &mail[..mail.len() - 10]).unwrap();
    let (zip, bad) = (dir.join("chat.zip"), dir.join("bad.zip"));
    let made = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w') as z: z.writestr('transcript.json', '[{\"body\": \"hello there\"}]')\nb = bytearray(open(sys.argv[1], 'rb').read()); b[30 + len('transcript.json') + 12] ^= 1; open(sys.argv[2], 'wb').write(b)",
        ])
        .args([&zip, &bad])
        .status()
        .expect("python3 (installed by .ci/run)");
    assert!(made.success());
    let json = dir.join("t.json");
    std::fs::write(&json, "[1, 2]").unwrap();

    let o = std::process::Command::new(BIN)
        .args(["probe", "--json"])
        .args([&webm, &eml, &zip, &json])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        (lines[0]["codec"].as_str(), lines[0]["width"].as_u64()),
        (Some("vp8"), Some(160))
    );
    assert!(
        (lines[0]["durationSeconds"].as_f64().unwrap() - 3.0).abs() < 0.25,
        "{}",
        lines[0]
    );
    assert_eq!(lines[1]["container"], "eml");
    assert_eq!(lines[1]["parts"][0]["name"], "a.pdf");
    assert_eq!(lines[1]["parts"][0]["bytes"], 9);
    assert_eq!(lines[2]["container"], "zip");
    assert_eq!(lines[2]["parts"][0]["name"], "transcript.json");
    assert_eq!(lines[3]["container"], "json");

    for (f, says) in [(&cut, "never closed"), (&bad, "damaged")] {
        let o = std::process::Command::new(BIN)
            .arg("probe")
            .arg(f)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{o:?}");
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(text.contains("PROBLEM") && text.contains(says), "{text}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `-v`/`-vv` and `RUST_LOG` show what a run does on stderr for an operator; without them
/// nothing is added; never a secret, a token or a pre-signed URL's signature either way.
#[tokio::test(flavor = "multi_thread")]
async fn diagnostics_follow_v_and_rust_log_and_never_show_a_secret() {
    let env = start(scenario()).await;
    let run_with = |name: &str, verbosity: Option<&str>, rust_log: Option<&str>| {
        let out = tmp(name);
        let mut c = export_cmd(&env, &out, &["--concurrency", "2"]);
        if let Some(v) = verbosity {
            c.arg(v);
        }
        c.env_remove("RUST_LOG");
        if let Some(r) = rust_log {
            c.env("RUST_LOG", r);
        }
        c
    };
    let o = run(run_with("diag-vv", Some("-vv"), None)).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    for want in [
        " INFO custos::export: recording the query",
        "DEBUG custos::http::client: api method=\"POST\"",
        "DEBUG custos::http::token: access token obtained",
        "DEBUG custos::http::media: media url=",
        "DEBUG custos::export::context: item finished",
    ] {
        assert!(err.contains(want), "-vv shows {want:?}:\n{err}");
    }
    for secret in ["custos-sim-secret", "signature=", "access_token", "Bearer "] {
        assert!(
            !err.contains(secret),
            "-vv must never show {secret:?}:\n{err}"
        );
    }
    // RUST_LOG wins over -v and takes target=level directives.
    let o = run(run_with(
        "diag-env",
        Some("-vv"),
        Some("custos::export=info"),
    ))
    .await;
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        err.contains(" INFO custos::export: finding recordings"),
        "{err}"
    );
    assert!(
        !err.contains("DEBUG"),
        "RUST_LOG=custos::export=info shows no debug:\n{err}"
    );
    // Nothing without either, and a RUST_LOG that is not directives is said, not obeyed blindly.
    let o = run(run_with("diag-none", None, None)).await;
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !err.contains("custos::"),
        "no diagnostics by default:\n{err}"
    );
    let o = run(run_with("diag-bad", None, Some("custos=[{x}]"))).await;
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("warning: RUST_LOG is not"), "{err}");
}

/// `custos upload --config FILE` takes the storage keys of the export's config file (flags
/// winning), checked before anything is read or sent.
#[test]
fn upload_takes_storage_settings_from_the_config_file() {
    let dir = tmp("upload-config");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("custos.toml");
    std::fs::write(
        &config,
        "query = \"ignored here\"\nlock-mode = \"compliance\"\n",
    )
    .unwrap();
    let upload = |extra: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(["upload", dir.to_str().unwrap(), "s3://bucket/m"])
            .args(extra)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null());
        c.output().unwrap()
    };
    let o = upload(&["--config", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--lock-mode needs --retain-until"),
        "the file's lock-mode applies: {err}"
    );
    // The file's sse and kms-key-id together are refused; the flag's --sse beats the file's,
    // and the settings then pass, so the upload goes on to read the (empty) export.
    std::fs::write(
        &config,
        "lock-mode = \"compliance\"\nsse = \"AES256\"\nkms-key-id = \"k-1\"\n",
    )
    .unwrap();
    let o = upload(&["--config", config.to_str().unwrap(), "--retain-days", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--kms-key-id needs --sse aws:kms"), "{err}");
    let o = upload(&[
        "--config",
        config.to_str().unwrap(),
        "--retain-days",
        "1",
        "--sse",
        "aws:kms",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("--lock-mode needs"), "{err}");
    assert!(
        !err.contains("--kms-key-id needs"),
        "a flag beats the file: {err}"
    );
    std::fs::write(&config, "lock-mod = \"compliance\"\n").unwrap();
    let o = upload(&["--config", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown field `lock-mod`"), "{err}");
}
