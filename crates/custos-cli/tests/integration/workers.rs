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

use crate::common::{BIN, QUERY, tmp};
use crate::postgres::{
    Cluster, PASSWORD, assert_truth, assert_verifies, files, run, scenario, stderr,
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

fn bagit_valid(dir: &Path) -> bool {
    Command::new("bagit.py")
        .args(["--quiet", "--validate"])
        .arg(dir)
        .status()
        .expect("bagit.py (pip install bagit)")
        .success()
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
    let pg = Cluster::start("workers-two");
    // More than a batch request each: the workers fill and send several batches, the last ones
    // partial, while the other holds the rest.
    let many = Scenario {
        conversations: 120,
        ..scenario()
    };
    let running = Sim::new(with_clients(many, 2))
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let out = tmp("workers-two");
    let mut p = Reaper(Vec::new());
    let coord = p.spawn(coordinator(&running.base_url, &out, &pg));
    until_open(&pg).await;
    let w1 = p.spawn(worker(&running.base_url, &out, &pg, 1, 30));
    let w2 = p.spawn(worker(&running.base_url, &out, &pg, 2, 30));
    for w in [w1, w2] {
        let o = p.output(w, Duration::from_secs(120)).await;
        assert_eq!(o.status.code(), Some(0), "worker: {}", stderr(&o));
    }
    let o = p.output(coord, Duration::from_secs(60)).await;
    assert_eq!(o.status.code(), Some(0), "coordinator: {}", stderr(&o));
    assert_truth(&running, &out, "two workers");
    assert_verifies(&out);
    assert!(bagit_valid(&out));
    no_partials_nor_staging(&out);
    one_outcome_line_each(&running, &out);
    // One chain, naming both workers and both clients; every outcome line names its worker.
    let ev = events(&out);
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
    let seal = ev.iter().rposition(|e| e["event"] == "package-sealing");
    assert_eq!(seal, Some(ev.len() - 1), "the seal is the log's last line");
}

#[tokio::test]
async fn job_status_names_each_worker_and_what_it_ended() {
    let pg = Cluster::start("workers-status");
    let small = Scenario {
        conversations: 10,
        ..scenario()
    };
    let running = Sim::new(with_clients(small, 2))
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let out = tmp("workers-status");
    let mut p = Reaper(Vec::new());
    let coord = p.spawn(coordinator(&running.base_url, &out, &pg));
    until_open(&pg).await;
    let w = p.spawn(worker(&running.base_url, &out, &pg, 2, 30));
    let o = p.output(w, Duration::from_secs(120)).await;
    assert_eq!(o.status.code(), Some(0), "worker: {}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let o = p.output(coord, Duration::from_secs(60)).await;
    assert_eq!(o.status.code(), Some(0), "coordinator: {}", stderr(&o));
    let mut c = Command::new(BIN);
    c.args([
        "job",
        "status",
        out.to_str().unwrap(),
        "--state",
        &pg.url(),
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
}

#[tokio::test]
async fn a_second_worker_with_the_same_client_is_refused() {
    let pg = Cluster::start("workers-same-client");
    let slow = Scenario {
        min_recording_s: 10,
        max_recording_s: 20,
        bandwidth: 300_000,
        ..scenario()
    };
    let running = Sim::new(with_clients(slow, 2))
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let out = tmp("workers-same-client");
    let mut p = Reaper(Vec::new());
    p.spawn(coordinator(&running.base_url, &out, &pg));
    until_open(&pg).await;
    p.spawn(worker(&running.base_url, &out, &pg, 1, 30));
    until(
        &pg,
        "SELECT COUNT(*) FROM custos.workers",
        |v| v == "1",
        "the first worker joined",
    )
    .await;
    let o = run(worker(&running.base_url, &out, &pg, 1, 30)).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("one worker per client"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn a_worker_stopped_past_its_lease_is_fenced_and_what_it_ends_late_never_lands() {
    let pg = Cluster::start("workers-fenced");
    let slow = Scenario {
        min_recording_s: 10,
        max_recording_s: 20,
        bandwidth: 300_000,
        ..scenario()
    };
    let running = Sim::new(with_clients(slow, 2))
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let out = tmp("workers-fenced");
    let mut p = Reaper(Vec::new());
    let coord = p.spawn(coordinator(&running.base_url, &out, &pg));
    until_open(&pg).await;
    let w1 = p.spawn(worker(&running.base_url, &out, &pg, 1, 2));
    until(
        &pg,
        "SELECT COUNT(*) FROM custos.items WHERE outcome = 'Exported'",
        |v| v.parse::<u32>().unwrap() >= 1,
        "the first worker exported something",
    )
    .await;
    let stop = Command::new("kill")
        .args(["-STOP", &p.pid(w1).to_string()])
        .status()
        .unwrap();
    assert!(stop.success());
    // What the stopped worker held: taken by the second worker once its lease lapses.
    let held = pg.psql(
        "SELECT string_agg(quote_literal(recording_id), ',') FROM custos.items WHERE outcome IS NULL AND claim_epoch = (SELECT MIN(epoch) FROM custos.workers)",
    );
    assert!(!held.is_empty(), "the stopped worker held nothing");
    let w2 = p.spawn(worker(&running.base_url, &out, &pg, 2, 30));
    until(
        &pg,
        &format!(
            "SELECT COUNT(*) FROM custos.items WHERE outcome IS NOT NULL AND recording_id IN ({held}) AND claim_epoch = (SELECT MAX(epoch) FROM custos.workers)"
        ),
        |v| v != "0",
        "the second worker ended an item the stopped one held",
    )
    .await;
    Command::new("kill")
        .args(["-CONT", &p.pid(w1).to_string()])
        .status()
        .unwrap();
    let o = p.output(w1, Duration::from_secs(60)).await;
    assert_eq!(
        o.status.code(),
        Some(3),
        "the fenced worker: {}",
        stderr(&o)
    );
    let fenced_by_lease = stderr(&o).contains("lease lapsed");
    assert!(
        fenced_by_lease || stderr(&o).contains("connection"),
        "{}",
        stderr(&o)
    );
    let o = p.output(w2, Duration::from_secs(120)).await;
    assert_eq!(o.status.code(), Some(0), "worker 2: {}", stderr(&o));
    let o = p.output(coord, Duration::from_secs(60)).await;
    assert_eq!(o.status.code(), Some(0), "coordinator: {}", stderr(&o));
    assert_truth(&running, &out, "a fenced worker");
    assert_verifies(&out);
    no_partials_nor_staging(&out);
    one_outcome_line_each(&running, &out);
    let ev = events(&out);
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
    let pg = Cluster::start("workers-killed");
    let slow = Scenario {
        min_recording_s: 10,
        max_recording_s: 20,
        bandwidth: 300_000,
        ..scenario()
    };
    let running = Sim::new(with_clients(slow, 2))
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let out = tmp("workers-killed");
    let mut p = Reaper(Vec::new());
    let coord = p.spawn(coordinator(&running.base_url, &out, &pg));
    until_open(&pg).await;
    let w1 = p.spawn(worker(&running.base_url, &out, &pg, 1, 2));
    until(
        &pg,
        "SELECT COUNT(*) FROM custos.items WHERE outcome = 'Exported'",
        |v| v.parse::<u32>().unwrap() >= 2,
        "the first worker exported something",
    )
    .await;
    p.0[w1].kill().unwrap();
    let w2 = p.spawn(worker(&running.base_url, &out, &pg, 2, 30));
    let o = p.output(w2, Duration::from_secs(120)).await;
    assert_eq!(o.status.code(), Some(0), "worker 2: {}", stderr(&o));
    let o = p.output(coord, Duration::from_secs(60)).await;
    assert_eq!(o.status.code(), Some(0), "coordinator: {}", stderr(&o));
    assert_truth(&running, &out, "a killed worker");
    assert_verifies(&out);
    assert!(bagit_valid(&out));
    no_partials_nor_staging(&out);
    one_outcome_line_each(&running, &out);
}

#[tokio::test]
async fn a_worker_pointed_at_another_api_is_refused_before_sending_credentials() {
    let pg = Cluster::start("workers-other-api");
    let running = Sim::new(with_clients(scenario(), 2))
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let other = Sim::new(with_clients(scenario(), 2))
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let out = tmp("workers-other-api");
    let mut p = Reaper(Vec::new());
    p.spawn(coordinator(&running.base_url, &out, &pg));
    until_open(&pg).await;
    let o = run(worker(&other.base_url, &out, &pg, 2, 30)).await;
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
async fn a_worker_killed_while_listing_leaves_its_conversations_to_another() {
    let pg = Cluster::start("workers-killed-listing");
    let running = Sim::new(with_clients(scenario(), 2))
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let out = tmp("workers-killed-listing");
    let mut p = Reaper(Vec::new());
    let coord = p.spawn(coordinator(&running.base_url, &out, &pg));
    until_open(&pg).await;
    // One request a second: it holds its claimed conversations for seconds.
    let w1 = p.spawn(worker_at(&running.base_url, &out, &pg, 1, 2, 60));
    until(
        &pg,
        "SELECT COUNT(*) FROM custos.listing WHERE missing IS NOT NULL",
        |v| v != "0",
        "the first worker listed a conversation",
    )
    .await;
    let held = pg.psql(
        "SELECT COUNT(*) FROM custos.listing WHERE missing IS NULL AND claim_epoch IS NOT NULL",
    );
    assert_ne!(
        held, "0",
        "the first worker held no conversation when killed"
    );
    p.0[w1].kill().unwrap();
    let w2 = p.spawn(worker(&running.base_url, &out, &pg, 2, 30));
    let o = p.output(w2, Duration::from_secs(120)).await;
    assert_eq!(o.status.code(), Some(0), "worker 2: {}", stderr(&o));
    let o = p.output(coord, Duration::from_secs(60)).await;
    assert_eq!(o.status.code(), Some(0), "coordinator: {}", stderr(&o));
    assert_truth(&running, &out, "a worker killed while listing");
    assert_verifies(&out);
    no_partials_nor_staging(&out);
    one_outcome_line_each(&running, &out);
    // Each recording's metadata is the element its conversation's landed list held.
    let metadata = std::fs::read_dir(out.join("data/metadata"))
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
    assert_eq!(metadata, 0, "a worker's staging name reached the package");
}

#[tokio::test]
async fn a_worker_stopped_by_sigterm_says_so_and_frees_its_items_at_once() {
    let pg = Cluster::start("workers-sigterm");
    let slow = Scenario {
        min_recording_s: 10,
        max_recording_s: 20,
        bandwidth: 300_000,
        ..scenario()
    };
    let running = Sim::new(with_clients(slow, 2))
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let out = tmp("workers-sigterm");
    let mut p = Reaper(Vec::new());
    let coord = p.spawn(coordinator(&running.base_url, &out, &pg));
    until_open(&pg).await;
    // A lease far longer than the test: its items come free because it ended, not because the
    // lease lapsed.
    let w1 = p.spawn(worker(&running.base_url, &out, &pg, 1, 3600));
    until(
        &pg,
        "SELECT COUNT(*) FROM custos.items WHERE outcome = 'Exported'",
        |v| v.parse::<u32>().unwrap() >= 1,
        "the first worker exported something",
    )
    .await;
    Command::new("kill")
        .args(["-TERM", &p.pid(w1).to_string()])
        .status()
        .unwrap();
    let o = p.output(w1, Duration::from_secs(30)).await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("run it again to rejoin"),
        "{}",
        stderr(&o)
    );
    let ended = pg.psql("SELECT ended FROM custos.workers");
    assert!(ended.starts_with("stopped: SIGTERM"), "{ended}");
    let w2 = p.spawn(worker(&running.base_url, &out, &pg, 2, 30));
    let o = p.output(w2, Duration::from_secs(120)).await;
    assert_eq!(o.status.code(), Some(0), "worker 2: {}", stderr(&o));
    let o = p.output(coord, Duration::from_secs(60)).await;
    assert_eq!(o.status.code(), Some(0), "coordinator: {}", stderr(&o));
    assert_truth(&running, &out, "a worker stopped by SIGTERM");
    one_outcome_line_each(&running, &out);
    assert!(
        events(&out)
            .iter()
            .any(|e| e["event"] == "worker-stopped" && e["by"] == "SIGTERM"),
        "the log says the worker was stopped"
    );
}

#[tokio::test]
async fn a_coordinator_killed_while_workers_work_is_run_again_and_seals_the_truth() {
    let pg = Cluster::start("workers-coordinator-killed");
    let slow = Scenario {
        min_recording_s: 10,
        max_recording_s: 20,
        bandwidth: 300_000,
        ..scenario()
    };
    let running = Sim::new(with_clients(slow, 2))
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let out = tmp("workers-coordinator-killed");
    let mut p = Reaper(Vec::new());
    let first = p.spawn(coordinator(&running.base_url, &out, &pg));
    until_open(&pg).await;
    let w1 = p.spawn(worker(&running.base_url, &out, &pg, 1, 30));
    let w2 = p.spawn(worker(&running.base_url, &out, &pg, 2, 30));
    until(
        &pg,
        "SELECT COUNT(*) FROM custos.items WHERE outcome = 'Exported'",
        |v| v.parse::<u32>().unwrap() >= 2,
        "the workers exported something",
    )
    .await;
    p.0[first].kill().unwrap();
    let _ = p.output(first, Duration::from_secs(10)).await;
    // The same command again: it checks what the workers staged so far and waits again.
    let again = p.spawn(coordinator(&running.base_url, &out, &pg));
    for w in [w1, w2] {
        let o = p.output(w, Duration::from_secs(120)).await;
        assert_eq!(o.status.code(), Some(0), "worker: {}", stderr(&o));
    }
    let o = p.output(again, Duration::from_secs(60)).await;
    assert_eq!(o.status.code(), Some(0), "coordinator: {}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["resumed"], true);
    assert_truth(&running, &out, "a killed coordinator");
    assert_verifies(&out);
    no_partials_nor_staging(&out);
    one_outcome_line_each(&running, &out);
    let runs = events(&out)
        .iter()
        .filter(|e| e["event"] == "export-run")
        .count();
    assert_eq!(runs, 2);
}
