//! A distributed export (`custos export --workers` and `custos worker`) against a real
//! PostgreSQL server and the simulator with several OAuth clients: the package is the package
//! one process writes (every item as the truth says, bagit-python and `custos verify` accept
//! it), its custody log is one chain naming every worker and client; one worker per client; a
//! worker stopped past its lease is fenced and records nothing; a killed worker's items are
//! taken by another; a worker refuses a job of another API.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use custos_sim::{Client, Scenario, Sim};

use crate::common::{BIN, QUERY, bagit_valid, tmp};
use crate::postgres::{
    Cluster, PASSWORD, assert_truth, assert_verifies, files, run, scenario, slow, stderr,
};

/// The simulator's OAuth clients 1..=n (client 1 is the default one).
fn clients(n: usize) -> Vec<Client> {
    (1..=n)
        .map(|i| Client {
            id: client_id(i),
            secret: format!("custos-sim-secret-{i}"),
        })
        .collect()
}

fn client_id(i: usize) -> String {
    if i == 1 {
        "custos-sim-client".into()
    } else {
        format!("custos-sim-client-{i}")
    }
}

/// A scenario with `n` OAuth clients, the secrets [`clients`] gives them.
fn with_clients(s: Scenario, n: usize) -> Scenario {
    Scenario {
        clients: clients(n),
        ..s
    }
}

/// The coordinator: `custos export --workers --state URL --json`.
fn coordinator(base: &str, out: &Path, pg: &Cluster) -> Command {
    let mut c = crate::common::export_cmd(base, QUERY, out, &["--json", "--workers"]);
    c.args(["--state", &pg.url()])
        .env("PGPASSWORD", PASSWORD)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "custos-sim-secret-1");
    c
}

/// `custos worker OUT --state URL --api-base BASE` with client `i`'s credentials.
fn worker(base: &str, out: &Path, pg: &Cluster, i: usize, lease: u64) -> Command {
    worker_at(base, out, pg, i, lease, 6000)
}

/// [`worker`], sending at most `rate` API requests a minute.
fn worker_at(base: &str, out: &Path, pg: &Cluster, i: usize, lease: u64, rate: u32) -> Command {
    let mut c = Command::new(BIN);
    c.arg("worker")
        .arg(out)
        .args([
            "--state",
            &pg.url(),
            "--api-base",
            base,
            "--rate",
            &rate.to_string(),
        ])
        .args([
            "--concurrency",
            "3",
            "--lease",
            &lease.to_string(),
            "--json",
        ])
        .env("PGPASSWORD", PASSWORD)
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", client_id(i))
        .env(
            "GENESYSCLOUD_OAUTHCLIENT_SECRET",
            format!("custos-sim-secret-{i}"),
        )
        .env_remove("GENESYSCLOUD_REGION")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Children killed when the test ends, however it ends.
struct Reaper(Vec<Child>);

impl Reaper {
    fn spawn(&mut self, mut c: Command) -> usize {
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.0.push(c.spawn().unwrap());
        self.0.len() - 1
    }

    fn pid(&self, i: usize) -> u32 {
        self.0[i].id()
    }

    /// Waits for child `i` to end (at most `within`), with what it printed.
    async fn output(&mut self, i: usize, within: Duration) -> Output {
        let deadline = Instant::now() + within;
        while self.0[i].try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "process {i} did not end");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let child = std::mem::replace(&mut self.0[i], Command::new("true").spawn().unwrap());
        child.wait_with_output().unwrap()
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A job of a test's own: a PostgreSQL cluster, the simulator of `s` with two OAuth clients,
/// and a coordinator (process 0 of `p`) that has opened the job to workers.
struct Job {
    pg: Cluster,
    running: custos_sim::Running,
    out: std::path::PathBuf,
    p: Reaper,
}

impl Job {
    async fn open(name: &str, s: Scenario) -> Job {
        Job::open_with(name, s, &[]).await
    }

    /// [`Job::open`], the coordinator given `args` too.
    async fn open_with(name: &str, s: Scenario, args: &[&str]) -> Job {
        let pg = Cluster::start(name);
        let running = Sim::new(with_clients(s, 2)).unwrap().spawn().await.unwrap();
        let out = tmp(name);
        let mut p = Reaper(Vec::new());
        let mut c = coordinator(&running.base_url, &out, &pg);
        c.args(args);
        p.spawn(c);
        until_open(&pg).await;
        Job {
            pg,
            running,
            out,
            p,
        }
    }

    /// Starts a worker with client `i` and `lease` seconds; its index in `p`.
    fn worker(&mut self, i: usize, lease: u64) -> usize {
        let c = worker(&self.running.base_url, &self.out, &self.pg, i, lease);
        self.p.spawn(c)
    }

    /// Waits for `sql` to answer at least `n`.
    async fn until_at_least(&self, sql: &str, n: u32, what: &str) {
        until(&self.pg, sql, |v| v.parse::<u32>().unwrap() >= n, what).await;
    }

    /// Waits for worker `w` to end with exit 0, then the coordinator; the package is the
    /// truth's, verifies, holds no partial or staged file, and its log one outcome line each.
    async fn ends_as_the_truth_says(&mut self, w: usize, what: &str) {
        let o = self.p.output(w, Duration::from_secs(120)).await;
        assert_eq!(
            o.status.code(),
            Some(0),
            "{what}, the last worker: {}",
            stderr(&o)
        );
        let o = self.p.output(0, Duration::from_secs(60)).await;
        assert_eq!(
            o.status.code(),
            Some(0),
            "{what}, the coordinator: {}",
            stderr(&o)
        );
        assert_truth(&self.running, &self.out, what);
        assert_verifies(&self.out);
        no_partials_nor_staging(&self.out);
        one_outcome_line_each(&self.running, &self.out);
    }
}

const EXPORTED: &str = "SELECT COUNT(*) FROM custos.items WHERE outcome = 'Exported'";

/// Waits until `sql` (one value) answers `want`.
async fn until(pg: &Cluster, sql: &str, want: impl Fn(&str) -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let v = pg.psql(sql);
        if want(&v) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never reached (last {v:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn until_open(pg: &Cluster) {
    until(
        pg,
        "SELECT to_regclass('custos.meta') IS NOT NULL",
        |v| v == "t",
        "the job state made",
    )
    .await;
    until(
        pg,
        "SELECT COALESCE((SELECT value FROM custos.meta WHERE key = 'work_open'), '')",
        |v| v == "listing" || v == "true",
        "the job open to workers",
    )
    .await;
}

/// The custody log's lines, parsed.
fn events(out: &Path) -> Vec<serde_json::Value> {
    custos::custody::read_events(&out.join("data/custody_log.jsonl")).unwrap()
}

/// Each recording has exactly one `outcome` line in the log.
fn one_outcome_line_each(running: &custos_sim::Running, out: &Path) {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for e in events(out).iter().filter(|e| e["event"] == "outcome") {
        *seen
            .entry(e["recordingId"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let truth = running.sim.truth();
    assert_eq!(seen.len(), truth.recordings.len());
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
}

fn no_partials_nor_staging(out: &Path) {
    assert!(
        files(out)
            .iter()
            .all(|f| f.extension().is_none_or(|x| x != "part")),
        "a .part survived"
    );
    assert!(!out.join(".custos/staging").exists(), "staging was left");
}

#[tokio::test]
async fn two_workers_with_their_own_clients_write_the_package_one_export_writes() {
    // More than a batch request each: the workers fill and send several batches, the last ones
    // partial, while the other holds the rest.
    let many = Scenario {
        conversations: 120,
        ..scenario()
    };
    let mut j = Job::open("workers-two", many).await;
    let w1 = j.worker(1, 30);
    let w2 = j.worker(2, 30);
    let o = j.p.output(w1, Duration::from_secs(120)).await;
    assert_eq!(o.status.code(), Some(0), "worker 1: {}", stderr(&o));
    j.ends_as_the_truth_says(w2, "two workers").await;
    let out = &j.out;
    assert!(bagit_valid(out));
    // One chain, naming both workers and both clients; every outcome line names its worker.
    let ev = events(out);
    let started: Vec<_> = ev
        .iter()
        .filter(|e| e["event"] == "worker-started")
        .collect();
    assert_eq!(started.len(), 2);
    let mut clients: Vec<_> = started
        .iter()
        .map(|e| e["actor"]["oauthClientId"].as_str().unwrap().to_owned())
        .collect();
    clients.sort();
    assert_eq!(clients, [client_id(1), client_id(2)]);
    let workers: std::collections::BTreeSet<_> = started
        .iter()
        .map(|e| e["worker"].as_i64().unwrap())
        .collect();
    assert_eq!(workers.len(), 2);
    for e in ev.iter().filter(|e| e["event"] == "outcome") {
        let w = e["actor"]["worker"].as_i64();
        assert!(w.is_some_and(|w| workers.contains(&w)), "{e}");
    }
    assert_eq!(ev.iter().filter(|e| e["event"] == "worker-done").count(), 2);
    // The conversations' recordings lists (most of the API budget) were the workers' calls.
    let lists: Vec<_> = ev
        .iter()
        .filter(|e| {
            e["event"] == "http"
                && e["url"]
                    .as_str()
                    .is_some_and(|u| u.ends_with("/recordings"))
        })
        .collect();
    assert!(!lists.is_empty());
    for e in &lists {
        assert!(e["actor"]["worker"].is_i64(), "the coordinator listed: {e}");
    }
    // The report a lawyer reads says who collected: each worker and its client.
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        report.contains("by 2 worker processes with 2 OAuth"),
        "the report names no workers"
    );
    for i in [1, 2] {
        assert!(report.contains(&format!("OAuth client {}", client_id(i))));
    }
    let seal = ev.iter().rposition(|e| e["event"] == "package-sealing");
    assert_eq!(seal, Some(ev.len() - 1), "the seal is the log's last line");
}

#[tokio::test]
async fn job_status_names_each_worker_and_what_it_ended() {
    let small = Scenario {
        conversations: 10,
        ..scenario()
    };
    let mut j = Job::open("workers-status", small).await;
    let w = j.worker(2, 30);
    let o = j.p.output(w, Duration::from_secs(120)).await;
    assert_eq!(o.status.code(), Some(0), "worker: {}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let o = j.p.output(0, Duration::from_secs(60)).await;
    assert_eq!(o.status.code(), Some(0), "coordinator: {}", stderr(&o));
    // The coordinator said what to start, and where.
    let hint = format!("custos worker {} --state '{}'", j.out.display(), j.pg.url());
    assert!(stderr(&o).contains(&hint), "{}", stderr(&o));
    let mut c = Command::new(BIN);
    c.args([
        "job",
        "status",
        j.out.to_str().unwrap(),
        "--state",
        &j.pg.url(),
        "--json",
    ])
    .env("PGPASSWORD", PASSWORD);
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(status["work"], "closed");
    let ws = status["workers"].as_array().unwrap();
    assert_eq!(ws.len(), 1);
    assert_eq!(ws[0]["oauthClient"], client_id(2));
    assert_eq!(ws[0]["done"], status["finished"]);
    assert_eq!(ws[0]["done"], report["items"]);
    assert_eq!(ws[0]["claimed"], 0);
    assert!(ws[0]["ended"].as_str().unwrap().starts_with("done"));
    // The same, as a person reads it.
    let mut c = Command::new(BIN);
    c.args([
        "job",
        "status",
        j.out.to_str().unwrap(),
        "--state",
        &j.pg.url(),
    ])
    .env("PGPASSWORD", PASSWORD);
    let o = run(c).await;
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("the job is closed to workers"), "{text}");
    assert!(
        text.contains(&format!("client {}", client_id(2))) && text.contains("ended: done"),
        "{text}"
    );
}

#[tokio::test]
async fn a_second_worker_with_the_same_client_is_refused() {
    let mut j = Job::open("workers-same-client", slow()).await;
    j.worker(1, 30);
    j.until_at_least(
        "SELECT COUNT(*) FROM custos.workers",
        1,
        "the first worker joined",
    )
    .await;
    let o = run(worker(&j.running.base_url, &j.out, &j.pg, 1, 30)).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("one worker per client"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn a_worker_stopped_past_its_lease_is_fenced_and_what_it_ends_late_never_lands() {
    let mut j = Job::open("workers-fenced", slow()).await;
    let w1 = j.worker(1, 2);
    j.until_at_least(EXPORTED, 1, "the first worker exported something")
        .await;
    let stopped = Command::new("kill")
        .args(["-STOP", &j.p.pid(w1).to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    // What the stopped worker held: taken by the second worker once its lease lapses.
    let held = j.pg.psql(
        "SELECT string_agg(quote_literal(recording_id), ',') FROM custos.items WHERE outcome IS NULL AND claim_epoch = (SELECT MIN(epoch) FROM custos.workers)",
    );
    assert!(!held.is_empty(), "the stopped worker held nothing");
    let w2 = j.worker(2, 30);
    j.until_at_least(
        &format!(
            "SELECT COUNT(*) FROM custos.items WHERE outcome IS NOT NULL AND recording_id IN ({held}) AND claim_epoch = (SELECT MAX(epoch) FROM custos.workers)"
        ),
        1,
        "the second worker ended an item the stopped one held",
    )
    .await;
    Command::new("kill")
        .args(["-CONT", &j.p.pid(w1).to_string()])
        .status()
        .unwrap();
    let o = j.p.output(w1, Duration::from_secs(60)).await;
    assert_eq!(
        o.status.code(),
        Some(3),
        "the fenced worker: {}",
        stderr(&o)
    );
    // Fenced by its lease (the usual case), or, stopped inside a transaction, by the server
    // ending its session.
    let fenced_by_lease = stderr(&o).contains("lease lapsed");
    assert!(
        fenced_by_lease || stderr(&o).contains("connection"),
        "{}",
        stderr(&o)
    );
    j.ends_as_the_truth_says(w2, "a fenced worker").await;
    let ev = events(&j.out);
    let first = ev
        .iter()
        .filter(|e| e["event"] == "worker-started")
        .map(|e| e["worker"].as_i64().unwrap())
        .min()
        .unwrap();
    if fenced_by_lease {
        assert!(
            ev.iter()
                .any(|e| e["event"] == "worker-fenced" && e["worker"] == first),
            "the log says the worker was fenced"
        );
    }
    // Nothing the fenced worker ended after its lease lapsed is in the log: every item it held
    // when it was stopped ended by the other worker's hand.
    let held: Vec<String> = held
        .split(',')
        .map(|r| r.trim_matches('\'').to_owned())
        .collect();
    for e in ev.iter().filter(|e| e["event"] == "outcome") {
        if held.iter().any(|r| e["recordingId"] == r.as_str()) {
            assert_ne!(e["actor"]["worker"], first, "{e}");
        }
    }
}

#[tokio::test]
async fn a_killed_worker_s_items_are_taken_by_another() {
    let mut j = Job::open("workers-killed", slow()).await;
    let w1 = j.worker(1, 2);
    j.until_at_least(EXPORTED, 2, "the first worker exported something")
        .await;
    j.p.0[w1].kill().unwrap();
    let w2 = j.worker(2, 30);
    j.ends_as_the_truth_says(w2, "a killed worker").await;
    assert!(bagit_valid(&j.out));
}

#[tokio::test]
async fn a_worker_killed_while_listing_leaves_its_conversations_to_another() {
    let mut j = Job::open("workers-killed-listing", scenario()).await;
    // One request a second: it holds its claimed conversations for seconds.
    let slow_worker = worker_at(&j.running.base_url, &j.out, &j.pg, 1, 2, 60);
    let w1 = j.p.spawn(slow_worker);
    j.until_at_least(
        "SELECT COUNT(*) FROM custos.listing WHERE missing IS NOT NULL",
        1,
        "the first worker listed a conversation",
    )
    .await;
    let held = j.pg.psql(
        "SELECT COUNT(*) FROM custos.listing WHERE missing IS NULL AND claim_epoch IS NOT NULL",
    );
    assert_ne!(
        held, "0",
        "the first worker held no conversation when killed"
    );
    j.p.0[w1].kill().unwrap();
    let w2 = j.worker(2, 30);
    j.ends_as_the_truth_says(w2, "a worker killed while listing")
        .await;
    // Each recording's metadata is kept under its own name, never a worker's staging name.
    let staged_names = std::fs::read_dir(j.out.join("data/metadata"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .contains(".w")
        })
        .count();
    assert_eq!(
        staged_names, 0,
        "a worker's staging name reached the package"
    );
}

#[tokio::test]
async fn a_worker_stopped_by_sigterm_says_so_and_frees_its_items_at_once() {
    let mut j = Job::open("workers-sigterm", slow()).await;
    // A lease far longer than the test: its items come free because it ended, not because the
    // lease lapsed.
    let w1 = j.worker(1, 3600);
    j.until_at_least(EXPORTED, 1, "the first worker exported something")
        .await;
    Command::new("kill")
        .args(["-TERM", &j.p.pid(w1).to_string()])
        .status()
        .unwrap();
    let o = j.p.output(w1, Duration::from_secs(30)).await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("run it again to rejoin"),
        "{}",
        stderr(&o)
    );
    let ended = j.pg.psql("SELECT ended FROM custos.workers");
    assert!(ended.starts_with("stopped: SIGTERM"), "{ended}");
    let w2 = j.worker(2, 30);
    j.ends_as_the_truth_says(w2, "a worker stopped by SIGTERM")
        .await;
    assert!(
        events(&j.out)
            .iter()
            .any(|e| e["event"] == "worker-stopped" && e["by"] == "SIGTERM"),
        "the log says the worker was stopped"
    );
}

#[tokio::test]
async fn a_coordinator_killed_while_workers_work_is_run_again_and_seals_the_truth() {
    let mut j = Job::open("workers-coordinator-killed", slow()).await;
    let w1 = j.worker(1, 30);
    let w2 = j.worker(2, 30);
    j.until_at_least(EXPORTED, 2, "the workers exported something")
        .await;
    j.p.0[0].kill().unwrap();
    let _ = j.p.output(0, Duration::from_secs(10)).await;
    // The same command again (in the coordinator's place): it checks what the workers staged
    // so far and waits again.
    let again = coordinator(&j.running.base_url, &j.out, &j.pg);
    j.p.spawn(again);
    j.p.0.swap(0, 3);
    let o = j.p.output(w1, Duration::from_secs(120)).await;
    assert_eq!(o.status.code(), Some(0), "worker 1: {}", stderr(&o));
    j.ends_as_the_truth_says(w2, "a killed coordinator").await;
    let runs = events(&j.out)
        .iter()
        .filter(|e| e["event"] == "export-run")
        .count();
    assert_eq!(runs, 2);
}

#[tokio::test]
async fn a_worker_pointed_at_another_api_is_refused_before_sending_credentials() {
    let j = Job::open("workers-other-api", scenario()).await;
    let other = Sim::new(with_clients(scenario(), 2))
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let o = run(worker(&other.base_url, &j.out, &j.pg, 2, 30)).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the job collects from"),
        "{}",
        stderr(&o)
    );
    let stats = other.sim.stats();
    assert_eq!(
        (stats.tokens_issued, stats.token_failures),
        (0, 0),
        "credentials were sent"
    );
}

#[tokio::test]
async fn workers_without_postgres_job_state_are_refused() {
    let out = tmp("workers-sqlite");
    let o = run(crate::common::export_cmd(
        "http://127.0.0.1:9",
        QUERY,
        &out,
        &["--workers"],
    ))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--state postgres://"), "{}", stderr(&o));
    assert!(!out.exists());
}

#[tokio::test]
async fn a_worker_against_a_real_organization_needs_an_operator() {
    let out = tmp("workers-operator");
    let mut c = Command::new(BIN);
    c.arg("worker")
        .arg(&out)
        .args(["--state", "postgres://custos@127.0.0.1:9/postgres"])
        .args(["--api-base", "https://api.mypurecloud.ie"])
        .env("PGPASSWORD", PASSWORD)
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", client_id(1))
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "custos-sim-secret-1")
        .stdin(Stdio::null());
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--operator is required"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn a_coordinator_killed_while_sealing_is_run_again_and_seals_the_truth() {
    let mut j = Job::open("workers-killed-sealing", scenario()).await;
    // The coordinator (process 0) is watched by kill_when instead: take it out of the reaper.
    let first = std::mem::replace(&mut j.p.0[0], Command::new("true").spawn().unwrap());
    let w = j.worker(1, 30);
    // The log is written out when sealing starts: kill the coordinator then.
    let log = j.out.join("data/custody_log.jsonl");
    let killed = tokio::task::spawn_blocking(move || {
        let mut child = first;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            if log.exists() {
                child.kill().unwrap();
                child.wait().unwrap();
                return true;
            }
            assert!(Instant::now() < deadline, "the coordinator never sealed");
            std::thread::sleep(Duration::from_millis(1));
        }
    })
    .await
    .unwrap();
    assert!(killed, "the coordinator sealed before it could be killed");
    let o = j.p.output(w, Duration::from_secs(60)).await;
    assert_eq!(o.status.code(), Some(0), "worker: {}", stderr(&o));
    assert!(
        !j.out.join("tagmanifest-sha256.txt").exists(),
        "killed after sealing"
    );
    let o = run(coordinator(&j.running.base_url, &j.out, &j.pg)).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "the coordinator again: {}",
        stderr(&o)
    );
    assert_truth(&j.running, &j.out, "a coordinator killed while sealing");
    assert_verifies(&j.out);
    assert!(bagit_valid(&j.out));
    no_partials_nor_staging(&j.out);
    one_outcome_line_each(&j.running, &j.out);
}

#[tokio::test]
async fn a_worker_of_another_build_than_the_coordinator_is_refused() {
    let j = Job::open("workers-other-build", scenario()).await;
    // The coordinator's build as the job state records it, changed.
    j.pg.psql(
        "UPDATE custos.meta SET value = jsonb_set(value::jsonb, '{binary,commit}', '\"0000000\"')::text WHERE key = 'identity'",
    );
    let o = run(worker(&j.running.base_url, &j.out, &j.pg, 2, 30)).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("One build works a job"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn a_coordinator_killed_while_the_workers_list_keeps_what_they_listed() {
    let mut j = Job::open("workers-coordinator-killed-listing", scenario()).await;
    // Five requests a second: the listing lasts long enough to kill the coordinator in it.
    let slow_worker = worker_at(&j.running.base_url, &j.out, &j.pg, 1, 30, 300);
    let w = j.p.spawn(slow_worker);
    j.until_at_least(
        "SELECT COUNT(*) FROM custos.listing WHERE missing IS NOT NULL",
        2,
        "the worker listed conversations",
    )
    .await;
    j.p.0[0].kill().unwrap();
    let _ = j.p.output(0, Duration::from_secs(10)).await;
    let listed_before: u32 =
        j.pg.psql("SELECT COUNT(*) FROM custos.listing WHERE missing IS NOT NULL")
            .parse()
            .unwrap();
    let again = coordinator(&j.running.base_url, &j.out, &j.pg);
    j.p.0[0] = {
        let mut c = again;
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    j.ends_as_the_truth_says(w, "a coordinator killed while the workers list")
        .await;
    // The same conversations: what was listed before the kill was kept, never listed again.
    let conversations: usize =
        j.pg.psql("SELECT COUNT(*) FROM custos.listing")
            .parse()
            .unwrap();
    let list_calls = events(&j.out)
        .iter()
        .filter(|e| {
            e["event"] == "http"
                && e["url"]
                    .as_str()
                    .is_some_and(|u| u.ends_with("/recordings"))
        })
        .count();
    assert!(listed_before >= 2);
    assert_eq!(list_calls, conversations, "a conversation was listed twice");
}

/// A job whose worker finished while no coordinator waited (it was killed once the job was
/// open for retrieval): its files are still staged, and the paths of the staged objects.
async fn staged_by_a_worker(name: &str) -> (Job, Vec<std::path::PathBuf>) {
    let mut j = Job::open(name, scenario()).await;
    let w = j.worker(1, 30);
    until(
        &j.pg,
        "SELECT value FROM custos.meta WHERE key = 'work_open'",
        |v| v == "true",
        "the job open for retrieval",
    )
    .await;
    j.p.0[0].kill().unwrap();
    let _ = j.p.output(0, Duration::from_secs(10)).await;
    let o = j.p.output(w, Duration::from_secs(120)).await;
    assert_eq!(o.status.code(), Some(0), "worker: {}", stderr(&o));
    let staged: Vec<_> = std::fs::read_dir(j.out.join(".custos/staging"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none())
        .collect();
    assert!(!staged.is_empty());
    (j, staged)
}

/// The coordinator run again over `j` refuses (exit 2, within seconds: nothing waited on),
/// naming `victim`, and seals nothing.
async fn refuses_to_seal(j: &Job, victim: &Path, why: &str) {
    let mut c = coordinator(&j.running.base_url, &j.out, &j.pg);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let o = tokio::time::timeout(Duration::from_secs(60), run(c))
        .await
        .expect("the coordinator hung on the staging directory");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let name = victim.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        stderr(&o).contains(&name) && stderr(&o).contains(why),
        "{}",
        stderr(&o)
    );
    assert!(
        !j.out.join("tagmanifest-sha256.txt").exists(),
        "sealed over a staged object that is not what the worker recorded"
    );
}

#[tokio::test]
async fn a_staged_file_changed_before_it_is_put_in_place_is_refused() {
    let (j, staged) = staged_by_a_worker("workers-staged-changed").await;
    let victim = &staged[0];
    let mut perms = std::fs::metadata(victim).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(victim, perms).unwrap();
    let mut bytes = std::fs::read(victim).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(victim, bytes).unwrap();
    refuses_to_seal(&j, victim, "changed since an earlier run").await;
}

#[tokio::test]
async fn a_fifo_in_place_of_a_staged_file_is_refused_never_waited_on() {
    let (j, staged) = staged_by_a_worker("workers-staged-fifo").await;
    let victim = &staged[0];
    std::fs::remove_file(victim).unwrap();
    let made = Command::new("mkfifo").arg(victim).status().unwrap();
    assert!(made.success());
    refuses_to_seal(&j, victim, "not a regular file").await;
}

#[tokio::test]
async fn a_link_in_place_of_a_staged_file_is_refused_never_placed() {
    let (j, staged) = staged_by_a_worker("workers-staged-link").await;
    // A link to a file with the very bytes recorded: still not what a worker staged.
    let victim = &staged[0];
    let elsewhere = j.out.with_extension("outside");
    std::fs::copy(victim, &elsewhere).unwrap();
    std::fs::remove_file(victim).unwrap();
    std::os::unix::fs::symlink(&elsewhere, victim).unwrap();
    refuses_to_seal(&j, victim, "not a regular file").await;
    let _ = std::fs::remove_file(&elsewhere);
}

/// `c` reading the archive at `s3://org-archive/PREFIX` of the S3 server at `endpoint`, with
/// that server's test credentials.
fn reading_archive(mut c: Command, prefix: &str, endpoint: &str) -> Command {
    c.args([
        "--archive",
        &format!("s3://org-archive/{prefix}"),
        "--archive-endpoint",
        endpoint,
    ])
    .env("AWS_ACCESS_KEY_ID", "test")
    .env("AWS_SECRET_ACCESS_KEY", "testtest")
    .env("AWS_REGION", "us-east-1")
    .env("AWS_EC2_METADATA_DISABLED", "true")
    .env_remove("AWS_PROFILE")
    .env_remove("AWS_ENDPOINT_URL");
    c
}

#[tokio::test]
async fn workers_read_the_archive_the_job_reads_and_no_other() {
    let dir = tmp("workers-archive");
    std::fs::create_dir_all(&dir).unwrap();
    let s3 = crate::storage::s3s_fs(&dir, &["org-archive"]);
    let mut s = Scenario {
        conversations: 40,
        archive_dir: Some(dir.join("s3s-fs").join("org-archive")),
        ..scenario()
    };
    s.faults = Default::default();
    s.faults
        .apply_list("archive-altered=0.1,archive-missing=0.1,archive-stray=0.2")
        .unwrap();
    let sim = Sim::new(with_clients(s, 2)).unwrap();
    assert!(sim.land_archive().unwrap() > 0);
    let truth = sim.truth();
    let running = sim.spawn().await.unwrap();
    let pg = Cluster::start("workers-archive");
    let out = dir.join("out");
    let base = running.base_url.clone();
    let mut p = Reaper(Vec::new());
    p.spawn(reading_archive(coordinator(&base, &out, &pg), "", &s3.url));
    until_open(&pg).await;

    // A worker given no archive, or another one, is refused before it sends a credential.
    let tokens = running.sim.stats().tokens_issued;
    let o = run(worker(&base, &out, &pg, 1, 30)).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the job reads its recordings from the archive s3://org-archive/"),
        "{}",
        stderr(&o)
    );
    let o = run(reading_archive(
        worker(&base, &out, &pg, 1, 30),
        "elsewhere",
        &s3.url,
    ))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the job's is s3://org-archive/,"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        running.sim.stats().tokens_issued,
        tokens,
        "no token was asked for by a refused worker"
    );

    let w1 = p.spawn(reading_archive(
        worker(&base, &out, &pg, 1, 30),
        "",
        &s3.url,
    ));
    let w2 = p.spawn(reading_archive(
        worker(&base, &out, &pg, 2, 30),
        "",
        &s3.url,
    ));
    for w in [w1, w2] {
        let o = p.output(w, Duration::from_secs(120)).await;
        assert_eq!(o.status.code(), Some(0), "worker: {}", stderr(&o));
    }
    let o = p.output(0, Duration::from_secs(60)).await;
    assert!(
        o.status.code().unwrap_or(9) <= 1,
        "coordinator: {}",
        stderr(&o)
    );

    // Every outcome is the archive truth's, and no media was asked of the API.
    let outcomes = custos::package::outcomes(&out).unwrap();
    let want: std::collections::BTreeMap<String, String> = truth
        .recordings
        .iter()
        .map(|t| {
            (
                t.id.clone(),
                t.archive.as_ref().unwrap().expected_outcome.clone(),
            )
        })
        .collect();
    assert_eq!(outcomes, want);
    for o in ["Exported", "Corrupted", "Failed"] {
        assert!(want.values().any(|v| v == o), "the truth holds a {o} item");
    }
    assert_eq!(running.sim.stats().media_requests, 0);
    // Each object read names the worker that read it; the coordinator reconciled the folders.
    let ev = events(&out);
    let read: Vec<_> = ev
        .iter()
        .filter(|e| e["event"] == "archive-object")
        .collect();
    assert!(!read.is_empty());
    for e in &read {
        assert!(e["actor"]["worker"].is_i64(), "read by a worker: {e}");
    }
    let reconciled: Vec<_> = ev
        .iter()
        .filter(|e| e["event"] == "archive-reconciled")
        .collect();
    assert_eq!(reconciled.len(), 1);
    assert_eq!(
        reconciled[0]["byKind"]["unknown"],
        2 * truth.archive_strays.len(),
        "{}",
        reconciled[0]
    );
    assert_verifies(&out);
    assert!(bagit_valid(&out));
    no_partials_nor_staging(&out);
    one_outcome_line_each(&running, &out);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn archived_recordings_are_restored_and_fetched_by_the_coordinator_while_workers_take_the_rest()
 {
    let s = Scenario {
        archived_fraction: 0.3,
        restore_ms: 1_500,
        ..scenario()
    };
    let mut j = Job::open_with("workers-restore", s, &["--restore-archived"]).await;
    let w = j.worker(1, 30);
    // The worker ends once it has done all but what the coordinator restores.
    let o = j.p.output(w, Duration::from_secs(120)).await;
    assert_eq!(o.status.code(), Some(0), "worker: {}", stderr(&o));
    let o = j.p.output(0, Duration::from_secs(120)).await;
    assert_eq!(o.status.code(), Some(0), "coordinator: {}", stderr(&o));
    let truth = j.running.sim.truth();
    let archived: Vec<_> = truth
        .recordings
        .iter()
        .filter(|t| t.catalog_file_state == "ARCHIVED")
        .collect();
    assert!(archived.len() >= 3, "{} archived", archived.len());
    let outcomes = custos::package::outcomes(&j.out).unwrap();
    let hashes = custos::package::exported_hashes(&j.out).unwrap();
    assert_eq!(outcomes.len(), truth.recordings.len());
    for t in &truth.recordings {
        if t.catalog_file_state == "ARCHIVED" {
            // Restored once at the source, then exported with its true bytes.
            assert_eq!(outcomes[&t.id], "Exported", "{}", t.id);
            assert_eq!(hashes.get(&t.id), Some(&t.sha256), "{}", t.id);
            assert_eq!(t.restore_requests, 1, "{}", t.id);
        } else {
            assert_eq!(outcomes[&t.id], t.expected_outcome, "{}", t.id);
        }
    }
    // The worker ended the rest; the coordinator (no worker) the restored ones.
    let restored: std::collections::BTreeSet<&str> =
        archived.iter().map(|t| t.id.as_str()).collect();
    for e in events(&j.out).iter().filter(|e| e["event"] == "outcome") {
        let by_worker = e["actor"]["worker"].is_i64();
        let id = e["recordingId"].as_str().unwrap();
        assert_eq!(by_worker, !restored.contains(id), "{e}");
    }
    assert_verifies(&j.out);
    assert!(bagit_valid(&j.out));
    no_partials_nor_staging(&j.out);
    one_outcome_line_each(&j.running, &j.out);
}

#[tokio::test]
async fn workers_fetch_the_orphan_recordings_the_coordinator_collects() {
    let s = Scenario {
        orphans: 4,
        ..scenario()
    };
    let mut j = Job::open_with("workers-orphans", s, &["--collect-orphans"]).await;
    let w1 = j.worker(1, 30);
    let w2 = j.worker(2, 30);
    let o = j.p.output(w1, Duration::from_secs(120)).await;
    assert_eq!(o.status.code(), Some(0), "worker 1: {}", stderr(&o));
    let o = j.p.output(w2, Duration::from_secs(120)).await;
    assert_eq!(o.status.code(), Some(0), "worker 2: {}", stderr(&o));
    let o = j.p.output(0, Duration::from_secs(60)).await;
    assert_eq!(o.status.code(), Some(0), "coordinator: {}", stderr(&o));
    let truth = j.running.sim.truth();
    assert!(!truth.orphan_media.is_empty());
    let outcomes = custos::package::outcomes(&j.out).unwrap();
    let hashes = custos::package::exported_hashes(&j.out).unwrap();
    assert_eq!(
        outcomes.len(),
        truth.recordings.len() + truth.orphan_media.len()
    );
    for t in &truth.recordings {
        assert_eq!(outcomes[&t.id], t.expected_outcome, "{}", t.id);
    }
    // Each orphan exported with its true bytes, by a worker, in data/orphans/.
    let log = events(&j.out);
    for o in &truth.orphan_media {
        assert_eq!(outcomes[&o.id], "Exported", "orphan {}", o.id);
        assert_eq!(hashes[&o.id], o.wav_sha256, "orphan {}", o.id);
        let ended: Vec<_> = log
            .iter()
            .filter(|e| e["event"] == "outcome" && e["recordingId"] == o.id.as_str())
            .collect();
        assert_eq!(ended.len(), 1, "orphan {}", o.id);
        assert!(ended[0]["actor"]["worker"].is_i64(), "{}", ended[0]);
        assert!(j.out.join(format!("data/orphans/{}.wav", o.id)).is_file());
    }
    assert_verifies(&j.out);
    assert!(bagit_valid(&j.out));
    no_partials_nor_staging(&j.out);
}
