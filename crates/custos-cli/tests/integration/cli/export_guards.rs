//! One writer per export directory, one set of settings per package, nothing trusted on
//! resume without being hashed again, clean stops on SIGINT, and bad input refused with exit 2
//! before anything is written.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use custos_sim::Scenario;

use super::{BIN, copy_export, export_cmd, recordings, run, scenario, start, tmp, verify_code};

/// A recording whose download finished (its sidecar is written after it), never a `.part`.
fn finished_recording(root: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = Vec::new();
    for conv in std::fs::read_dir(root.join("data/recordings")).unwrap() {
        for f in std::fs::read_dir(conv.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|x| x == "wav" || x == "ogg")
                && PathBuf::from(format!("{}.sha256", p.display())).exists()
            {
                files.push(p);
            }
        }
    }
    files.sort();
    files.remove(0)
}

/// `custos export --query QUERY --out OUT ARGS…` with the simulator's client; `--api-base base`
/// and `--rate 6000` unless ARGS give their own.
fn export_with(base: &str, out: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["export", "--query", super::QUERY, "--out"])
        .arg(out)
        .args(args);
    if !args.contains(&"--api-base") {
        c.args(["--api-base", base]);
    }
    if !args.contains(&"--rate") {
        c.args(["--rate", "6000"]);
    }
    c.env("GENESYSCLOUD_OAUTHCLIENT_ID", "custos-sim-client")
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "custos-sim-secret")
        .env_remove("GENESYSCLOUD_REGION")
        .stdin(Stdio::null());
    c
}

fn slow() -> Scenario {
    // About 1 s per recording, so that a run is still downloading when the test acts.
    Scenario {
        bandwidth: 300_000,
        max_recording_s: 20,
        ..scenario()
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn wait_for_recordings(out: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while recordings(&out.join("data/recordings")) < n {
        assert!(Instant::now() < deadline, "the export never got going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_second_run_into_the_same_directory_is_refused_at_once() {
    let env = start(slow()).await;
    let out = tmp("two-writers");
    let mut first = export_cmd(&env, &out, &["--concurrency", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_recordings(&out, 1).await;
    let started = Instant::now();
    let o = run(export_cmd(&env, &out, &["--concurrency", "2"])).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused at once, not after waiting"
    );
    let err = stderr(&o);
    assert!(
        err.contains(&format!("pid {}", first.id())) && err.contains("another custos run"),
        "{err}"
    );
    let status = tokio::task::spawn_blocking(move || first.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(verify_code(&out), 0);
    // One run's events only: a single export-run in the log.
    let runs = custos::custody::read_events(&out.join("data/custody_log.jsonl"))
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "export-run")
        .count();
    assert_eq!(runs, 1);
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn every_changed_setting_on_resume_is_refused_naming_it() {
    let env = start(scenario()).await;
    let other = start(scenario()).await;
    let out = tmp("settings");
    let key = tmp("settings-key");
    super::keygen(&key);
    let base = [
        "--matter",
        "M-1",
        "--retrieval",
        "transcode",
        "--format",
        "WAV",
        "--operator",
        "Jane Doe",
    ];
    let cmd = |args: &[&str]| export_with(&env.base_url, &out, args);
    let o = run(cmd(&base)).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let sealed = std::fs::read(out.join("tagmanifest-sha256.txt")).unwrap();
    let other_path = format!("{}/other", env.base_url);
    let key_arg = key.to_str().unwrap().to_owned();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--matter", "M-2"], "--matter"),
        (vec!["--operator", "John Roe"], "--operator"),
        (vec!["--retrieval", "batch"], "--retrieval"),
        (vec!["--format", "MP3"], "--format"),
        (
            vec!["--source-organization", "Other Org"],
            "--source-organization",
        ),
        (vec!["--duration-tolerance", "2"], "--duration-tolerance"),
        (vec!["--api-base", &other.base_url], "--api-base"),
        (
            vec!["--api-base", &other_path, "--login-base", &env.base_url],
            "--api-base",
        ),
        (vec!["--login-base", &other.base_url], "--login-base"),
        (vec!["--source", "search"], "--source"),
        (vec!["--sign-key", &key_arg], "--sign-key"),
        (vec!["--protect"], "--protect"),
        (vec!["--restore-archived"], "--restore-archived"),
        (vec!["--media", "audio,email"], "--media"),
        (vec!["--collect-orphans"], "--orphans"),
    ];
    for (change, name) in cases {
        // The base settings, with one changed (a later flag wins in clap only for the same
        // flag: rebuild the list instead).
        let mut args: Vec<&str> = Vec::new();
        let mut i = 0;
        while i < base.len() {
            if !change.contains(&base[i]) {
                args.extend([base[i], base[i + 1]]);
            }
            i += 2;
        }
        args.extend(change.iter().copied());
        let o = run(cmd(&args)).await;
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{change:?}: {err}");
        assert!(
            err.contains(&format!("this export was started with {name} ")),
            "{change:?}: {err}"
        );
        assert_eq!(
            std::fs::read(out.join("tagmanifest-sha256.txt")).unwrap(),
            sealed,
            "{change:?} changed the package"
        );
    }
    // The same settings again (the API base with a trailing '/' is the same API): already
    // complete, nothing changed.
    let slash = format!("{}/", env.base_url);
    for args in [base.to_vec(), [&base[..], &["--api-base", &slash]].concat()] {
        let o = run(cmd(&args)).await;
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("already complete"));
        assert_eq!(
            std::fs::read(out.join("tagmanifest-sha256.txt")).unwrap(),
            sealed
        );
    }
    std::fs::remove_dir_all(&out).unwrap();
    for k in [key.clone(), PathBuf::from(format!("{}.pub", key.display()))] {
        std::fs::remove_file(k).unwrap();
    }
}

#[tokio::test]
async fn sigint_stops_cleanly_and_a_resume_rehashes_what_it_trusts() {
    let env = start(slow()).await;
    let out = tmp("sigint");
    let child = export_cmd(&env, &out, &["--concurrency", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_recordings(&out, 2).await;
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped promptly"
    );
    assert_eq!(o.status.code(), Some(3), "exit 3: re-run to resume");
    let err = stderr(&o);
    assert!(
        err.contains("stopped by SIGINT") && err.contains("re-run"),
        "{err}"
    );
    let events = custos::custody::read_events(&out.join("data/custody_log.jsonl")).unwrap();
    assert_eq!(events.last().unwrap()["event"], "export-stopped");
    assert_eq!(events.last().unwrap()["by"], "SIGINT");
    assert!(custos::custody::check_chain(&out.join("data/custody_log.jsonl")).is_ok());
    assert!(!out.join("tagmanifest-sha256.txt").exists());

    // A resume hashes what the earlier run wrote before trusting it: each change is named.
    let recording = finished_recording(&out);
    let rec_rel = recording.strip_prefix(&out).unwrap().to_owned();
    type Tamper = (&'static str, Box<dyn Fn(&Path)>, String);
    let tampers: Vec<Tamper> = vec![
        (
            "query",
            Box::new(|d: &Path| {
                let p = d.join("data/query.json");
                let t = std::fs::read_to_string(&p).unwrap();
                std::fs::write(&p, t.replacen("M-1", "M-9", 1)).unwrap();
            }),
            "data/query.json".into(),
        ),
        (
            "manifest",
            Box::new(|d: &Path| {
                let p = d.join("data/manifest.csv");
                let t = std::fs::read_to_string(&p).unwrap();
                std::fs::write(&p, t + "999,c,r,AVAILABLE\n").unwrap();
            }),
            "data/manifest.csv".into(),
        ),
        (
            "recording",
            Box::new(move |d: &Path| {
                let p = d.join(&rec_rel);
                let mut b = std::fs::read(&p).unwrap();
                b[100] ^= 1;
                std::fs::write(&p, b).unwrap();
            }),
            recording.strip_prefix(&out).unwrap().display().to_string(),
        ),
        (
            "deleted-recording",
            Box::new({
                let rel = recording.strip_prefix(&out).unwrap().to_owned();
                move |d: &Path| std::fs::remove_file(d.join(&rel)).unwrap()
            }),
            recording.strip_prefix(&out).unwrap().display().to_string(),
        ),
    ];
    for (name, tamper, file) in tampers {
        let d = copy_export(&out, &format!("sigint-{name}"));
        tamper(&d);
        let o = run(export_cmd(&env, &d, &["--concurrency", "2"])).await;
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains(&file) && err.contains("cannot be resumed"),
            "{name}: {err}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
    // Untouched, it resumes and seals a package that verifies.
    let o = run(export_cmd(&env, &out, &["--concurrency", "4", "--json"])).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(verify_code(&out), 0);
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn bad_input_exits_2_writes_nothing_and_never_echoes_a_secret() {
    let env = start(scenario()).await;
    let root = tmp("bad-input");
    std::fs::create_dir_all(&root).unwrap();
    let out = root.join("out");
    let a_file = root.join("a-file");
    std::fs::write(&a_file, "x").unwrap();
    let dangling = root.join("dangling");
    std::os::unix::fs::symlink(root.join("nowhere"), &dangling).unwrap();
    let port = env.base_url.rsplit(':').next().unwrap().to_owned();
    let with_user = format!("http://user:s3cr3t-pw@127.0.0.1:{port}");
    let with_query = format!("{}/?token=s3cr3t-q", env.base_url);
    let cases: Vec<(PathBuf, Vec<&str>, &str)> = vec![
        (
            out.clone(),
            vec!["--concurrency", "18446744073709551615"],
            "--concurrency must be between 1 and 256",
        ),
        (
            out.clone(),
            vec!["--concurrency", "0"],
            "--concurrency must be between",
        ),
        (out.clone(), vec!["--rate", "0"], "--rate must be between"),
        (a_file.clone(), vec![], "is a file, not a directory"),
        (dangling.clone(), vec![], "dangling symlink"),
        (
            out.clone(),
            vec!["--api-base", &with_user],
            "must not carry a user name or password",
        ),
        (
            out.clone(),
            vec!["--api-base", &with_query],
            "must not carry a query string",
        ),
    ];
    for (dir, extra, needle) in cases {
        let o = run(export_with(&env.base_url, &dir, &extra)).await;
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert!(!err.contains("s3cr3t"), "{extra:?} echoed a secret: {err}");
        assert!(!out.exists(), "{extra:?} wrote something");
    }
    assert_eq!(std::fs::read(&a_file).unwrap(), b"x");
    // --ids naming a directory, or a FIFO that would block.
    let fifo = root.join("fifo");
    super::mkfifo(&fifo);
    for ids in [root.clone(), fifo] {
        let mut c = Command::new(BIN);
        c.args([
            "export",
            "--ids",
            ids.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--api-base",
            &env.base_url,
        ])
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", "custos-sim-client")
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "custos-sim-secret")
        .stdin(Stdio::null());
        let o = run(c).await;
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("is not a regular file"),
            "{}",
            stderr(&o)
        );
        assert!(!out.exists());
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test]
async fn modes_ignore_the_umask_and_the_account_is_recorded_not_user() {
    let env = start(scenario()).await;
    let out = tmp("umask");
    let inner = export_cmd(&env, &out, &[]);
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("umask 000; exec \"$@\"")
        .arg("sh")
        .arg(inner.get_program())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.env("USER", "mallory").stdin(Stdio::null());
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    let rec = super::first_recording(&out);
    for (p, want) in [
        (rec.clone(), 0o444),
        (PathBuf::from(format!("{}.sha256", rec.display())), 0o444),
        (out.join("data/query.json"), 0o444),
        (out.join("data/manifest.csv"), 0o444),
        (out.join("data/custody_log.jsonl"), 0o644),
        (out.join("data/chain_of_custody.csv"), 0o644),
        (out.join("manifest-sha256.txt"), 0o644),
        (out.join("data"), 0o755),
        (rec.parent().unwrap().to_path_buf(), 0o755),
        (out.join("data/metadata"), 0o755),
    ] {
        assert_eq!(mode(&p), want, "{}", p.display());
    }
    // No file or directory anywhere is writable by others.
    fn walk(p: &Path, f: &mut dyn FnMut(&Path)) {
        f(p);
        if std::fs::symlink_metadata(p).unwrap().is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), f);
            }
        }
    }
    walk(&out, &mut |p| {
        assert_eq!(mode(p) & 0o022, 0, "{} is writable by others", p.display())
    });
    // The account behind the process is recorded, and $USER beside it because it differs.
    let events = custos::custody::read_events(&out.join("data/custody_log.jsonl")).unwrap();
    let actor = &events[0]["actor"];
    assert!(
        !actor["osUser"].as_str().unwrap().starts_with("mallory@"),
        "{actor}"
    );
    assert_eq!(actor["envUser"], "mallory", "{actor}");
    let q: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("data/query.json")).unwrap()).unwrap();
    assert!(
        !q["exporter"]["osUser"]
            .as_str()
            .unwrap()
            .starts_with("mallory@")
    );
    assert_eq!(verify_code(&out), 0);
    std::fs::remove_dir_all(&out).unwrap();
}

/// The design guide's edge cases hold with default flags: `custos export` with nothing but a
/// query, an output and the API base, against the simulator with every fault on (as
/// `custos sim --faults all`, on a smaller org), ends every recording in the ground truth's
/// outcome — every duration-lie recording Corrupted, every paused one Exported — and says so in
/// the custody record.
#[tokio::test]
async fn default_flags_against_every_fault_give_the_truth_per_id() {
    let mut s = Scenario {
        conversations: 40,
        max_recording_s: 30,
        ..Scenario::default()
    };
    s.faults.apply_list("all").unwrap();
    let env = start(s).await;
    let out = tmp("defaults-all-faults");
    let mut c = Command::new(BIN);
    c.args(["export", "--query", super::QUERY, "--out"])
        .arg(&out)
        .args(["--api-base", &env.base_url, "--json"])
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", "custos-sim-client")
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "custos-sim-secret")
        .env_remove("GENESYSCLOUD_REGION")
        .stdin(Stdio::null());
    let o = run(c).await;
    // Failed items (the hostile ids) make it exit 1.
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let truth = env.sim.truth();
    let outcomes = custos::package::outcomes(&out).unwrap();
    let (mut lies, mut paused) = (0, 0);
    for t in &truth.recordings {
        assert_eq!(
            outcomes.get(&t.id),
            Some(&t.expected_outcome),
            "{} (faults {:?})",
            t.id,
            t.faults
        );
        let has = |f: &str| t.faults.iter().any(|x| x == f);
        if has("duration-lie") && t.expected_outcome == "Corrupted" {
            lies += 1;
        }
        if has("pauses") && t.expected_outcome == "Exported" {
            paused += 1;
        }
    }
    assert!(lies > 0 && paused > 0, "lies {lies}, paused {paused}");
    // Coverage is visible: every kept file that could be read was checked.
    let checked = &report["durationChecked"];
    let not_checked = checked["notCheckedCount"].as_u64().unwrap();
    assert_eq!(
        checked["checked"].as_u64().unwrap() + not_checked,
        checked["of"].as_u64().unwrap()
    );
    // Every one is listed in the summary file, the first few in the report.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("data/summary.json")).unwrap()).unwrap();
    let listed = summary["durationChecked"]["notChecked"].as_array().unwrap();
    assert_eq!(listed.len() as u64, not_checked);
    assert_eq!(summary["durationChecked"]["checked"], checked["checked"]);
    let first = checked["notCheckedFirst"].as_array().unwrap();
    assert_eq!(first.len() as u64, not_checked.min(10));
    assert_eq!(first[..], listed[..first.len()]);
    for n in listed {
        assert_eq!(
            n["why"], "the file could not be read as audio or video",
            "{n}"
        );
    }
    let info = std::fs::read_to_string(out.join("bag-info.txt")).unwrap();
    assert!(
        info.contains(&format!(
            "Duration-Checked: {} of {}",
            checked["checked"], checked["of"]
        )),
        "{info}"
    );
    assert_eq!(verify_code(&out), 0);
    std::fs::remove_dir_all(&out).unwrap();
}

/// An interval that ends after the analytics data lake's `dataAvailabilityDate`: the export
/// finishes with what the lake held, says on the terminal that later conversations may be
/// missing, and exits 1, not 0.
#[tokio::test]
async fn an_interval_past_the_data_lake_exits_1_with_a_warning() {
    let mut s = scenario();
    s.analytics_now = Some(time::macros::datetime!(2023-10-06 00:00 UTC));
    let env = start(s).await;
    let out = tmp("lake-short");
    let o = run(export_cmd(&env, &out, &[])).await;
    let said = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{said}{}", stderr(&o));
    assert!(
        said.contains(
            "WARNING: the analytics data lake is complete only up to 2023-10-05T23:00:00.000Z"
        ) && said.contains("may be missing"),
        "{said}"
    );
    assert_eq!(verify_code(&out), 0);
    std::fs::remove_dir_all(&out).unwrap();
}

/// An agent of the week's calls, as the simulator's truth names them: (id, name, email; the
/// Users API writes `first.last@example.com`).
async fn a_user(env: &super::Env) -> (String, String, String) {
    let truth = env.sim.truth();
    let (id, name) = truth
        .recordings
        .iter()
        .map(|r| r.call.agent.clone())
        .find(|(id, _)| !id.is_empty())
        .expect("a call with an agent");
    let email = format!("{}@example.com", name.to_lowercase().replace(' ', "."));
    (id, name, email)
}

fn people_query(value: &str) -> String {
    format!("{} AND userId:\"{value}\"", crate::common::QUERY)
}

/// `userId:"Jon Agent"`: a name where the analytics API matches ids only would select nothing.
/// Refused before anything is written, naming the id to write instead.
#[tokio::test]
async fn a_person_named_by_name_is_refused_with_the_id_to_use() {
    let env = start(scenario()).await;
    let (id, name, _) = a_user(&env).await;
    let out = tmp("people-name");
    let o = run(super::export_query(&env, &people_query(&name), &out, &[])).await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "\"{name}\" is not a user id; write userId:\"{id}\""
        )),
        "{err}"
    );
    assert!(!out.exists(), "a refused export wrote {}", out.display());
}

/// The same for an email.
#[tokio::test]
async fn a_person_named_by_email_is_refused_with_the_id_to_use() {
    let env = start(scenario()).await;
    let (id, _, email) = a_user(&env).await;
    let out = tmp("people-email");
    let o = run(super::export_query(&env, &people_query(&email), &out, &[])).await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("write userId:\"{id}\"")), "{err}");
    assert!(!out.exists());
}

/// Someone the organization does not have: refused, said so.
#[tokio::test]
async fn a_person_who_is_no_user_is_refused() {
    let env = start(scenario()).await;
    let out = tmp("people-nobody");
    let o = run(super::export_query(
        &env,
        &people_query("Nobody Here"),
        &out,
        &[],
    ))
    .await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("\"Nobody Here\" is no user of this organization"),
        "{err}"
    );
    assert!(!out.exists());
}

/// A user id: checked, recorded in the custody log, exported.
#[tokio::test]
async fn a_person_named_by_id_is_checked_and_recorded() {
    let env = start(scenario()).await;
    let (id, _, _) = a_user(&env).await;
    let out = tmp("people-id");
    let o = run(super::export_query(&env, &people_query(&id), &out, &[])).await;
    assert!(matches!(o.status.code(), Some(0 | 1 | 4)), "{}", stderr(&o));
    let ev = custos::custody::read_events(&out.join("data/custody_log.jsonl")).unwrap();
    let checked = ev
        .iter()
        .find(|e| e["event"] == "query-people-checked")
        .expect("query-people-checked");
    assert_eq!(checked["named"], serde_json::json!([id]));
    assert_eq!(checked["allUserIds"], true);
    std::fs::remove_dir_all(&out).unwrap();
}

/// An interval with no conversation: the package is sealed, and the run says loudly that it
/// is empty, with its own exit status.
#[tokio::test]
async fn a_query_that_matches_nothing_warns_and_exits_4() {
    let env = start(scenario()).await;
    let out = tmp("empty-query");
    let q = "timestamp:[2023-09-01T00:00:00.000Z TO 2023-09-02T00:00:00.000Z}";
    let o = run(super::export_query(&env, q, &out, &[])).await;
    let said = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(4), "{said}{}", stderr(&o));
    assert!(
        said.contains("WARNING: the query matched no conversation"),
        "{said}"
    );
    assert_eq!(
        verify_code(&out),
        0,
        "the empty package is sealed and verifies"
    );
    std::fs::remove_dir_all(&out).unwrap();
}

/// `custos sim` prints, for a newcomer to paste, an export of everything it holds (its
/// credentials, its URL, its dates): run as printed, it exports and exits 0.
#[tokio::test]
async fn the_export_line_custos_sim_prints_works_as_printed() {
    use std::io::BufRead;
    let dir = tmp("sim-line");
    std::fs::create_dir_all(&dir).unwrap();
    let mut sim = Command::new(BIN)
        .args(["sim", "--conversations", "4"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = std::io::BufReader::new(sim.stderr.take().unwrap());
    let line = err
        .lines()
        .map(Result::unwrap)
        .find_map(|l| l.strip_prefix("  ").map(str::to_owned))
        .expect("an export line");
    assert!(line.contains(" custos export "), "{line}");
    let line = line.replace(" custos export ", &format!(" {BIN} export "));
    let o = run({
        let mut c = Command::new("sh");
        c.args(["-c", &line]).current_dir(&dir).stdin(Stdio::null());
        c
    })
    .await;
    let _ = sim.kill();
    let _ = sim.wait();
    assert_eq!(o.status.code(), Some(0), "{line}\n{}", stderr(&o));
    assert_eq!(verify_code(&dir.join("sim-export")), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--custodian` by name, by email and by id: the same person, so the same recordings; the
/// package records who each resolved to, and the report counts them.
#[tokio::test]
async fn a_custodian_by_name_email_or_id_selects_the_same_recordings() {
    let env = start(scenario()).await;
    let (id, name, email) = a_user(&env).await;
    let mut selected = Vec::new();
    for (how, value) in [("id", &id), ("name", &name), ("email", &email)] {
        let out = tmp(&format!("custodian-{how}"));
        let o = run(export_cmd(&env, &out, &["--custodian", value])).await;
        assert_eq!(o.status.code(), Some(0), "{how}: {}", stderr(&o));
        let q: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("data/query.json")).unwrap()).unwrap();
        let c = &q["custodians"]["resolved"][0];
        assert_eq!(c["userId"], id.as_str(), "{how}");
        assert_eq!(c["matchedBy"], how);
        assert_eq!(c["given"], value.as_str());
        assert!(
            q["query"]
                .as_str()
                .unwrap()
                .ends_with(&format!("AND userId:(\"{id}\")")),
            "{}",
            q["query"]
        );
        let ids: BTreeSet<String> = custos::package::outcomes(&out)
            .unwrap()
            .into_keys()
            .collect();
        // Every recording selected is of a conversation the person took part in.
        let mut facts = csv::Reader::from_path(out.join("data/call_facts.csv")).unwrap();
        for r in facts.deserialize::<std::collections::BTreeMap<String, String>>() {
            let r = r.unwrap();
            assert!(r["Agent_IDs"].split("; ").any(|a| a == id), "{r:?}");
        }
        // The report names the custodian and counts what the export holds of them.
        let html = std::fs::read_to_string(out.join("report.html")).unwrap();
        assert!(html.contains("Custodians"), "{how}");
        assert!(html.contains(&format!("{id} ({how})")), "{how}");
        selected.push(ids);
        std::fs::remove_dir_all(&out).unwrap();
    }
    assert!(!selected[0].is_empty());
    assert_eq!(selected[0], selected[1], "by id and by name");
    assert_eq!(selected[0], selected[2], "by id and by email");
    // And that is the whole of the person's recordings in the interval.
    let all = tmp("custodian-all");
    assert_eq!(
        run(export_cmd(&env, &all, &[])).await.status.code(),
        Some(0)
    );
    let mut facts = csv::Reader::from_path(all.join("data/call_facts.csv")).unwrap();
    let theirs: BTreeSet<String> = facts
        .deserialize::<std::collections::BTreeMap<String, String>>()
        .map(|r| r.unwrap())
        .filter(|r| r["Agent_IDs"].split("; ").any(|a| a == id))
        .map(|r| r["Recording_ID"].clone())
        .collect();
    assert_eq!(selected[0], theirs);
    std::fs::remove_dir_all(&all).unwrap();
}

/// A custodian nobody is: refused before anything is written, never a silent empty export.
#[tokio::test]
async fn an_unknown_custodian_is_refused_before_anything_is_written() {
    let env = start(scenario()).await;
    let out = tmp("custodian-unknown");
    let o = run(export_cmd(&env, &out, &["--custodian", "Nobody Atall"])).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("\"Nobody Atall\" is no user of this organization"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}

/// People named twice (in the query and with --custodian) are refused: AND-ing them would
/// select only conversations of both.
#[tokio::test]
async fn a_custodian_and_a_user_in_the_query_are_refused() {
    let env = start(scenario()).await;
    let (id, _, _) = a_user(&env).await;
    let out = tmp("custodian-twice");
    let o = run(super::export_query(
        &env,
        &people_query(&id),
        &out,
        &["--custodian", &id],
    ))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("name the people one way"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}

/// `--custodians FILE` that is a FIFO: refused, never read (no hang).
#[tokio::test]
async fn a_custodians_fifo_is_refused_not_read() {
    let env = start(scenario()).await;
    let dir = tmp("custodians-fifo");
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("people");
    super::mkfifo(&fifo);
    let out = dir.join("out");
    let o = run(export_cmd(
        &env,
        &out,
        &["--custodians", fifo.to_str().unwrap()],
    ))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
