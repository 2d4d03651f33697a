//! Job state in a real PostgreSQL server (`--state postgres://…`): a throwaway cluster per test
//! (Debian's `postgresql`, which .ci/run installs; `initdb` as the `postgres` user, since it
//! refuses root), password-protected over TCP on 127.0.0.1. The package an export writes
//! through it is the package the SQLite default writes; SIGKILL and resume end every item as
//! the simulator's truth says; a moved, missing or wrong state is refused; the password is
//! never shown.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use custos_sim::{Scenario, Sim};

use crate::common::{BIN, QUERY, kill_when, log_lines, tmp};

/// The cluster's password for its `custos` role (scram-sha-256 over TCP).
pub(crate) const PASSWORD: &str = "pg-Secret-7f3a91";

/// A PostgreSQL cluster of this test's own, stopped and removed on drop.
pub(crate) struct Cluster {
    root: PathBuf,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    /// TLS only (`hostssl`), its certificate signed by the CA at `root/ca.pem`.
    tls: bool,
}

/// The newest PostgreSQL server's binaries on this machine.
fn server_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b).expect(
        "no PostgreSQL server under /usr/lib/postgresql: apt-get install postgresql (.ci/run does)",
    )
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `program` as the `postgres` account when we are root (initdb and the server refuse root).
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn ok(what: &str, o: std::io::Result<Output>) {
    let o = o.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        o.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    ok(
        "openssl",
        Command::new("openssl").args(args).current_dir(dir).output(),
    );
}

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 it signed (`server.crt`, `server.key`).
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=custos test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

impl Cluster {
    pub(crate) fn start(name: &str) -> Cluster {
        Cluster::start_with(name, false)
    }

    /// A cluster that takes TLS connections only.
    fn start_tls(name: &str) -> Cluster {
        Cluster::start_with(name, true)
    }

    fn start_with(name: &str, tls: bool) -> Cluster {
        let bin = server_bin();
        let root = tmp(&format!("pgdb-{name}"));
        let data = root.join("data");
        std::fs::create_dir_all(&root).unwrap();
        let pwfile = root.join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if tls {
            certificates(&root);
        }
        if is_root() {
            ok(
                "chown",
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&root)
                    .output(),
            );
        }
        ok(
            "initdb",
            as_postgres(&bin.join("initdb"))
                .args([
                    "--no-sync",
                    "--auth-host=scram-sha-256",
                    "--auth-local=trust",
                    "-U",
                    "custos",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ])
                .arg(format!("--pwfile={}", pwfile.display()))
                .arg("-D")
                .arg(&data)
                .output(),
        );
        let mut options = String::new();
        if tls {
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
            )
            .unwrap();
            options = format!(
                " -c ssl=on -c ssl_cert_file={0}/server.crt -c ssl_key_file={0}/server.key",
                root.display()
            );
        }
        // A free port: the OS's choice for a moment ago; taken again if another test won it.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let o = as_postgres(&bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(root.join("server.log"))
                .arg("-o")
                .arg(format!(
                    "-p {port} -k {} -c listen_addresses=127.0.0.1{options}",
                    data.display()
                ))
                .args(["-w", "start"])
                .output()
                .unwrap();
            if o.status.success() {
                return Cluster {
                    root,
                    data,
                    bin,
                    port,
                    tls,
                };
            }
        }
        panic!(
            "PostgreSQL did not start: {}",
            std::fs::read_to_string(root.join("server.log")).unwrap_or_default()
        );
    }

    /// The database URL, without the password.
    pub(crate) fn url(&self) -> String {
        let tls = if self.tls { "?sslmode=require" } else { "" };
        format!("postgres://custos@127.0.0.1:{}/postgres{tls}", self.port)
    }

    /// The CA that signed a TLS cluster's certificate.
    fn ca(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    /// One value from `psql`, as the password-holding operator asks it.
    pub(crate) fn psql(&self, sql: &str) -> String {
        let o = Command::new(self.bin.join("psql"))
            .args([&self.url(), "-At", "-c", sql])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

pub(crate) fn scenario() -> Scenario {
    let mut s = Scenario {
        conversations: 25,
        api_rate: 6_000,
        batch_ms_per_item: 1,
        async_job_ms: 100,
        ..Scenario::default()
    };
    s.faults.apply_list("purge=0.1").unwrap();
    s
}

/// `custos export` of the simulator's week, its job state in `pg` (none: the SQLite default).
fn export(base: &str, out: &Path, pg: Option<&Cluster>) -> Command {
    let mut c = crate::common::export_cmd(base, QUERY, out, &["--concurrency", "3", "--json"]);
    c.env_remove("PGPASSWORD");
    if let Some(pg) = pg {
        c.args(["--state", &pg.url()]).env("PGPASSWORD", PASSWORD);
    }
    c
}

pub(crate) async fn run(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every file under `dir`, recursively.
pub(crate) fn files(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            all.extend(files(&p));
        } else {
            all.push(p);
        }
    }
    all
}

/// The lines of a BagIt payload manifest under `under` (hash and path).
fn manifest_lines(bag: &Path, under: &str) -> Vec<String> {
    std::fs::read_to_string(bag.join("manifest-sha256.txt"))
        .unwrap()
        .lines()
        .filter(|l| l.contains(under))
        .map(str::to_owned)
        .collect()
}

/// The payload files under `under`, by path.
fn manifest_paths(bag: &Path, under: &str) -> Vec<String> {
    manifest_lines(bag, under)
        .iter()
        .filter_map(|l| l.split_once("  ").map(|(_, p)| p.to_owned()))
        .collect()
}

pub(crate) fn assert_truth(running: &custos_sim::Running, out: &Path, what: &str) {
    crate::common::assert_truth(&running.sim.truth(), out, what);
}

#[tokio::test]
async fn postgres_state_writes_the_package_the_sqlite_state_writes() {
    let pg = Cluster::start("same");
    // Two simulators of the same catalog: a purge fault changes what a second export sees.
    let running = Sim::new(scenario()).unwrap().spawn().await.unwrap();
    let reference = Sim::new(scenario()).unwrap().spawn().await.unwrap();
    let (local, shared) = (tmp("pg-same-local"), tmp("pg-same-shared"));
    let o = run(export(&reference.base_url, &local, None)).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(export(&running.base_url, &shared, Some(&pg))).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // The same work list, the same evidence files with the same hashes, the same outcomes.
    assert_eq!(
        std::fs::read(local.join("data/manifest.csv")).unwrap(),
        std::fs::read(shared.join("data/manifest.csv")).unwrap()
    );
    let (a, b) = (
        manifest_lines(&local, "data/recordings/"),
        manifest_lines(&shared, "data/recordings/"),
    );
    let only = |x: &[String], y: &[String]| -> Vec<String> {
        x.iter().filter(|l| !y.contains(l)).cloned().collect()
    };
    assert!(
        a == b,
        "only without PostgreSQL: {:?}\nonly with it: {:?}",
        only(&a, &b),
        only(&b, &a)
    );
    assert!(b.len() > 20);
    // The same metadata files (their bytes differ only where the API answers with the time, as
    // a RESTORED recording's restoreExpirationTime).
    assert_eq!(
        manifest_paths(&local, "data/metadata/"),
        manifest_paths(&shared, "data/metadata/")
    );
    assert_eq!(
        custos::package::outcomes(&local).unwrap(),
        custos::package::outcomes(&shared).unwrap()
    );
    assert_truth(&running, &shared, "through PostgreSQL");
    // verify and bagit-python accept it as they accept the other.
    assert_verifies(&shared);
    let b = Command::new("bagit.py")
        .args(["--validate", shared.to_str().unwrap()])
        .output()
        .expect("bagit.py (pip install bagit)");
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));

    // The state is in the database, not in the directory; the directory names the job.
    assert!(!shared.join(".custos/state.sqlite").exists());
    let link: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shared.join(".custos/job.json")).unwrap()).unwrap();
    let job = link["job"].as_str().unwrap().to_owned();
    assert_eq!(link["database"], pg.url().as_str());
    let rows = pg.psql(&format!(
        "SELECT count(*) FROM custos.items WHERE job_id = '{job}' AND outcome IS NOT NULL"
    ));
    assert_eq!(
        rows,
        custos::package::outcomes(&shared)
            .unwrap()
            .len()
            .to_string()
    );
    assert_eq!(
        pg.psql(&format!(
            "SELECT value FROM custos.meta WHERE job_id = '{job}' AND key = 'complete'"
        )),
        "true"
    );
    // The custody log says where the state was kept, without the password.
    let runs: Vec<serde_json::Value> =
        custos::custody::read_events(&shared.join("data/custody_log.jsonl"))
            .unwrap()
            .into_iter()
            .filter(|e| e["event"] == "export-run")
            .collect();
    assert_eq!(
        runs[0]["jobState"],
        format!("postgresql {} job {job}", pg.url()).as_str()
    );
    // The password is nowhere: not in a file of the package or the directory, not on a stream.
    for f in files(&shared) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes()),
            "{} holds the password",
            f.display()
        );
    }
    assert!(!String::from_utf8_lossy(&o.stdout).contains(PASSWORD));
    assert!(!stderr(&o).contains(PASSWORD));
    for d in [local, shared] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// `custos verify DIR` finds nothing.
pub(crate) fn assert_verifies(out: &Path) {
    let v = Command::new(BIN)
        .args(["verify", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
}

/// Slow media (10–20 s recordings at 300 KB/s), so a run can be watched and killed mid-way.
pub(crate) fn slow() -> Scenario {
    Scenario {
        min_recording_s: 10,
        max_recording_s: 20,
        bandwidth: 300_000,
        ..scenario()
    }
}

/// Starts `c` and waits until `ready(out)`; the running export.
async fn started(mut c: Command, out: &Path, ready: impl Fn(&Path) -> bool) -> std::process::Child {
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready(out) {
        assert!(Instant::now() < deadline, "the export never got going");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the export ended early"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

#[tokio::test]
async fn sigkill_then_resume_through_postgres_ends_every_item_as_the_truth_says() {
    let pg = Cluster::start("crash");
    let slow = Scenario {
        min_recording_s: 5,
        max_recording_s: 10,
        bandwidth: 1_000_000,
        ..scenario()
    };
    let running = Sim::new(slow).unwrap().spawn().await.unwrap();
    let reference = tmp("pg-crash-reference");
    let o = run(export(&running.base_url, &reference, Some(&pg))).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let total = log_lines(&reference);
    std::fs::remove_dir_all(&reference).unwrap();
    // Kill points spread over the custody log's length: query, manifest, downloads, sealing.
    let mut killed = 0;
    for k in 1..=6usize {
        let out = tmp(&format!("pg-crash-{k}"));
        let threshold = k * total / 7;
        let o2 = out.clone();
        let at = move || log_lines(&o2) >= threshold;
        let c = export(&running.base_url, &out, Some(&pg));
        killed += usize::from(kill_when(c, at, format!("kill point {k}")).await);
        // The killed process's connection, and its lock on the job, are gone: the resume
        // takes the job at once.
        let o = run(export(&running.base_url, &out, Some(&pg))).await;
        assert_eq!(o.status.code(), Some(0), "kill point {k}: {}", stderr(&o));
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report["resumed"], true, "kill point {k}");
        assert_verifies(&out);
        assert!(
            files(&out)
                .iter()
                .all(|f| f.extension().is_none_or(|x| x != "part")),
            "kill point {k}: a .part survived"
        );
        assert_truth(&running, &out, &format!("kill point {k}"));
        std::fs::remove_dir_all(&out).unwrap();
    }
    assert!(killed >= 5, "only {killed} of 6 runs were killed mid-way");
}

#[tokio::test]
async fn resuming_a_postgres_job_without_state_is_refused() {
    let pg = Cluster::start("no-state");
    let running = Sim::new(scenario()).unwrap().spawn().await.unwrap();
    let out = tmp("pg-no-state");
    let o = run(export(&running.base_url, &out, Some(&pg))).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let before = std::fs::read(out.join("data/custody_log.jsonl")).unwrap();
    let o = run(export(&running.base_url, &out, None)).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!("keeps its job state in PostgreSQL ({}", pg.url()))
            && stderr(&o).contains("resume with --state"),
        "{}",
        stderr(&o)
    );
    assert!(!out.join(".custos/state.sqlite").exists());
    assert_eq!(
        std::fs::read(out.join("data/custody_log.jsonl")).unwrap(),
        before
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn moving_a_sqlite_job_to_postgres_is_refused() {
    let pg = Cluster::start("to-pg");
    let running = Sim::new(scenario()).unwrap().spawn().await.unwrap();
    let out = tmp("pg-to-pg");
    let o = run(export(&running.base_url, &out, None)).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(export(&running.base_url, &out, Some(&pg))).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("keeps its job state in .custos/state.sqlite"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_namespace WHERE nspname = 'custos'"),
        "0"
    );
    std::fs::remove_dir_all(&out).unwrap();
}

/// A job link that points at a database which does not hold the job (another server, one
/// restored from an older backup): refused, and nothing in the directory changes.
#[tokio::test]
async fn a_database_that_does_not_hold_the_job_is_refused() {
    let (first, other) = (Cluster::start("first"), Cluster::start("other"));
    let running = Sim::new(scenario()).unwrap().spawn().await.unwrap();
    let out = tmp("pg-other");
    let o = run(export(&running.base_url, &out, Some(&first))).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let before = std::fs::read(out.join("data/custody_log.jsonl")).unwrap();
    let o = run(export(&running.base_url, &out, Some(&other))).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is not in")
            && stderr(&o).contains("point --state at the database that holds it"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(out.join("data/custody_log.jsonl")).unwrap(),
        before
    );
    assert_eq!(other.psql("SELECT count(*) FROM custos.jobs"), "0");
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn a_wrong_postgres_password_is_refused_and_never_shown() {
    let pg = Cluster::start("wrong");
    let running = Sim::new(scenario()).unwrap().spawn().await.unwrap();
    let out = tmp("pg-wrong");
    let mut c = export(&running.base_url, &out, Some(&pg));
    c.env("PGPASSWORD", "not-the-Password-42");
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("password authentication failed")
            && !stderr(&o).contains("not-the-Password-42"),
        "{}",
        stderr(&o)
    );
    assert!(!out.join("data/query.json").exists());
    let _ = std::fs::remove_dir_all(&out);
}

#[tokio::test]
async fn the_password_comes_from_a_file_only_its_owner_reads() {
    use std::os::unix::fs::PermissionsExt;
    let pg = Cluster::start("pwfile");
    let running = Sim::new(scenario()).unwrap().spawn().await.unwrap();
    let out = tmp("pg-pwfile");
    let pw = tmp("pg-pwfile.txt");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let with_file = || {
        let mut c = export(&running.base_url, &out, Some(&pg));
        c.env_remove("PGPASSWORD")
            .arg("--state-password-file")
            .arg(&pw);
        c
    };
    let o = run(with_file()).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    assert!(!out.exists());
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = run(with_file()).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_truth(&running, &out, "password from a file");
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_file(&pw).unwrap();
}

#[tokio::test]
async fn a_password_in_the_state_url_is_refused_before_anything_is_written() {
    let running = Sim::new(scenario()).unwrap().spawn().await.unwrap();
    let out = tmp("pg-url-password");
    let mut c = export(&running.base_url, &out, None);
    c.args([
        "--state",
        "postgres://custos:hunter2-Secret@127.0.0.1:5432/custos",
    ]);
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("the URL holds a password") && !stderr(&o).contains("hunter2-Secret"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}

#[tokio::test]
async fn an_unreachable_state_database_stops_with_exit_3_and_writes_no_evidence() {
    let running = Sim::new(scenario()).unwrap().spawn().await.unwrap();
    let out = tmp("pg-unreachable");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = export(&running.base_url, &out, None);
    c.args([
        "--state",
        &format!("postgres://custos@127.0.0.1:{port}/custos"),
    ]);
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "job state in postgres://custos@127.0.0.1:{port}/custos"
        )) && stderr(&o).contains("onnection refused"),
        "{}",
        stderr(&o)
    );
    assert!(!out.join("data/query.json").exists());
    let _ = std::fs::remove_dir_all(&out);
}

/// What every job state answers, whichever store keeps it: more items than one page of reads,
/// outcomes, bytewise order, restores and file hashes, all still there once reopened.
fn store_contract(root: &Path, location: &custos::state::StateLocation) {
    use custos::model::{Item, Outcome};
    use custos::state::{Done, Existing, Key, State};
    std::fs::create_dir_all(root.join(".custos")).unwrap();
    let items: Vec<Item> = (0..2_500)
        .map(|n| Item {
            conversation_id: format!("c{:05}", n / 2),
            recording_id: format!("r{n:05}"),
            listed_state: "AVAILABLE".into(),
        })
        .collect();
    let sha = "ab".repeat(32);
    {
        let s = State::open_export(root, location, &Existing::of(root).unwrap()).unwrap();
        s.set(Key::QuerySha256, "q").unwrap();
        s.seal_manifest(&items, "m").unwrap();
        let mut done = Done::no_file(Outcome::Exported, "");
        done.file = Some("data/recordings/c00000/r01234.wav".into());
        done.sha256 = Some(sha.clone());
        done.bytes = Some(42);
        s.finish(&items[1234], &done).unwrap();
        s.finish(&items[2499], &Done::no_file(Outcome::Purged, "deleted"))
            .unwrap();
        s.protected(&["b".into(), "B".into(), "_".into()], "t1")
            .unwrap();
        s.protected(&["b".into()], "t2").unwrap();
        s.restore_intent(&items[7], "2030-01-01").unwrap();
        s.restore_requested(&items[7], "t3").unwrap();
    }
    let s = State::open_export(root, location, &Existing::of(root).unwrap()).unwrap();
    assert_eq!(s.get(Key::QuerySha256).unwrap().as_deref(), Some("q"));
    assert_eq!(s.get(Key::ManifestSha256).unwrap().as_deref(), Some("m"));
    assert_eq!(s.get(Key::Complete).unwrap(), None);
    let mut seen = Vec::new();
    s.for_each(|it, d| {
        seen.push((it, d.map(|d| d.outcome)));
        Ok(())
    })
    .unwrap();
    assert_eq!(seen.len(), items.len());
    assert!(
        seen.iter().zip(&items).all(|((a, _), b)| a == b),
        "manifest order"
    );
    assert_eq!(seen[1234].1, Some(Outcome::Exported));
    assert_eq!(seen[2499].1, Some(Outcome::Purged));
    assert_eq!(seen.iter().filter(|(_, o)| o.is_some()).count(), 2);
    assert_eq!(
        s.protected_set().unwrap(),
        vec![
            ("B".to_owned(), "t1".to_owned()),
            ("_".to_owned(), "t1".to_owned()),
            ("b".to_owned(), "t1".to_owned())
        ]
    );
    let pending = s.restores_pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].item, items[7]);
    assert_eq!(pending[0].requested_at.as_deref(), Some("t3"));
    s.restore_done(&items[7], "t4").unwrap();
    assert!(s.restores_pending().unwrap().is_empty());
    assert_eq!(
        s.restore_of(&items[7])
            .unwrap()
            .unwrap()
            .restored_at
            .as_deref(),
        Some("t4")
    );
    assert_eq!(s.restores().unwrap().len(), 1);
    let (h, n) = s
        .file_hash("data/recordings/c00000/r01234.wav")
        .unwrap()
        .unwrap();
    assert_eq!((h.to_string(), n), (sha, 42));
    assert_eq!(s.file_hash("data/recordings/none.wav").unwrap(), None);
}

#[test]
fn the_sqlite_store_keeps_what_it_is_told() {
    let root = tmp("store-sqlite");
    store_contract(&root, &custos::state::StateLocation::Local);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn the_postgres_store_keeps_what_the_sqlite_store_keeps() {
    let pg = Cluster::start("store");
    let root = tmp("store-postgres");
    let target = custos::state::PgTarget::new(&pg.url(), Some(PASSWORD.into()), None).unwrap();
    store_contract(&root, &custos::state::StateLocation::Postgres(target));
    assert_eq!(pg.psql("SELECT count(*) FROM custos.items"), "2500");
    std::fs::remove_dir_all(&root).unwrap();
}

/// Sealing a manifest read a row at a time, whichever store keeps it: more rows than one
/// chunk of writes land in order; a read that fails part-way stores nothing and leaves the
/// sealed manifest as it was; and the store says which conversations have items.
fn sealing_contract(root: &Path, location: &custos::state::StateLocation) {
    use custos::model::Item;
    use custos::state::{Existing, Key, State};
    std::fs::create_dir_all(root.join(".custos")).unwrap();
    let item = |n: u32| Item {
        conversation_id: format!("c{:05}", n / 2),
        recording_id: format!("r{n:05}"),
        listed_state: "AVAILABLE".into(),
    };
    let s = State::open_export(root, location, &Existing::of(root).unwrap()).unwrap();
    s.seal_manifest(
        (0..12_345).map(|n| Ok::<_, custos::Error>(item(n))),
        "first",
    )
    .unwrap();
    let failing = (0..12_345).map(|n| {
        if n == 11_000 {
            Err(custos::Error::Config(
                "the listing could not be read".into(),
            ))
        } else {
            Ok(item(n + 7))
        }
    });
    let e = s.seal_manifest(failing, "second").unwrap_err();
    assert!(e.to_string().contains("could not be read"), "{e}");
    assert_eq!(
        s.get(Key::ManifestSha256).unwrap().as_deref(),
        Some("first")
    );
    let mut n = 0;
    s.for_each(|it, _| {
        assert_eq!(it, item(n), "row {n}");
        n += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(n, 12_345);
    let asked: Vec<String> = ["c00000", "c06172", "c06173", "zz", ""]
        .map(String::from)
        .to_vec();
    let with = s.conversations_with_items(&asked).unwrap();
    assert_eq!(
        with.into_iter().collect::<Vec<_>>(),
        ["c00000", "c06172"].map(String::from)
    );
}

#[test]
fn the_sqlite_store_seals_a_manifest_read_a_row_at_a_time() {
    let root = tmp("seal-sqlite");
    sealing_contract(&root, &custos::state::StateLocation::Local);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn the_postgres_store_seals_a_manifest_read_a_row_at_a_time() {
    let pg = Cluster::start("seal");
    let root = tmp("seal-postgres");
    let target = custos::state::PgTarget::new(&pg.url(), Some(PASSWORD.into()), None).unwrap();
    sealing_contract(&root, &custos::state::StateLocation::Postgres(target));
    assert_eq!(pg.psql("SELECT count(*) FROM custos.items"), "12345");
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test]
async fn a_tls_database_is_used_with_its_certificate_checked() {
    let pg = Cluster::start_tls("tls");
    let running = Sim::new(scenario()).unwrap().spawn().await.unwrap();
    let out = tmp("pg-tls");
    let mut c = export(&running.base_url, &out, Some(&pg));
    c.arg("--state-ca").arg(pg.ca());
    let o = run(c).await;
    // The server takes TLS connections only (hostssl): the export's state went over TLS.
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_truth(&running, &out, "over TLS");
    assert_eq!(
        pg.psql("SELECT value FROM custos.meta WHERE key = 'complete'"),
        "true"
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn a_database_whose_certificate_is_not_trusted_is_refused() {
    let pg = Cluster::start_tls("untrusted");
    let running = Sim::new(scenario()).unwrap().spawn().await.unwrap();
    let out = tmp("pg-untrusted");
    // Without --state-ca: the system's roots do not know the test CA.
    let o = run(export(&running.base_url, &out, Some(&pg))).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).to_lowercase().contains("certificate"),
        "{}",
        stderr(&o)
    );
    assert!(!out.join("data/query.json").exists());
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_namespace WHERE nspname = 'custos'"),
        "0"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[tokio::test]
async fn plaintext_to_a_database_on_another_machine_is_refused() {
    let running = Sim::new(scenario()).unwrap().spawn().await.unwrap();
    let out = tmp("pg-plaintext");
    let mut c = export(&running.base_url, &out, None);
    // TEST-NET-1: never reached, the URL is refused before any connection.
    c.args(["--state", "postgres://custos@192.0.2.10:5432/custos"]);
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("would cross the network unencrypted")
            && stderr(&o).contains("sslmode=require"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}

/// `custos job status DIR [--state URL] --json`, with the cluster's password.
fn job_status(dir: &Path, pg: Option<&Cluster>) -> Command {
    let mut c = Command::new(BIN);
    c.args(["job", "status"])
        .arg(dir)
        .arg("--json")
        .env_remove("PGPASSWORD");
    if let Some(pg) = pg {
        c.args(["--state", &pg.url()]).env("PGPASSWORD", PASSWORD);
    }
    c
}

fn status_of(o: &Output) -> serde_json::Value {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Outcome → count, from the package's custody record.
fn outcome_counts(out: &Path) -> serde_json::Value {
    let mut counts = serde_json::Map::new();
    for o in custos::package::outcomes(out).unwrap().values() {
        let n = counts.get(o).and_then(|v| v.as_u64()).unwrap_or(0);
        counts.insert(o.clone(), (n + 1).into());
    }
    serde_json::Value::Object(counts)
}

#[tokio::test]
async fn job_status_of_a_finished_export_agrees_with_its_package() {
    let running = Sim::new(scenario()).unwrap().spawn().await.unwrap();
    let out = tmp("status-sqlite");
    let o = run(export(&running.base_url, &out, None)).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = status_of(&run(job_status(&out, None)).await);
    assert_eq!(s["jobState"], "sqlite .custos/state.sqlite");
    assert_eq!(s["complete"], true);
    assert_eq!(s["remaining"], 0);
    assert_eq!(
        s["items"].as_u64().unwrap() as usize,
        custos::package::outcomes(&out).unwrap().len()
    );
    assert_eq!(s["outcomes"], outcome_counts(&out));
    // Looking changed nothing: the package still verifies.
    assert_verifies(&out);
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn job_status_names_the_process_working_a_postgres_job_and_what_remains() {
    let pg = Cluster::start("status");
    let running = Sim::new(slow()).unwrap().spawn().await.unwrap();
    let out = tmp("status-pg");
    let sidecars = |out: &Path| {
        files(&out.join("data/recordings"))
            .iter()
            .filter(|f| f.extension().is_some_and(|x| x == "sha256"))
            .count()
            >= 2
    };
    let mut child = started(export(&running.base_url, &out, Some(&pg)), &out, sidecars).await;
    // While it runs: the database names the process working the job, and what remains.
    let s = status_of(&run(job_status(&out, Some(&pg))).await);
    let worked_by = s["workedBy"].as_str().unwrap_or_default().to_owned();
    assert!(
        worked_by.starts_with(&format!("custos {} ", child.id())),
        "{s}"
    );
    assert_eq!(s["manifestSealed"], true);
    assert_eq!(s["complete"], false);
    let items = s["items"].as_u64().unwrap();
    assert!(s["remaining"].as_u64().unwrap() > 0, "{s}");
    assert!(s["progress"].is_null(), "flattened: {s}");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Killed: nobody works it, and what finished plus what remains is the manifest.
    let s = status_of(&run(job_status(&out, Some(&pg))).await);
    assert!(s["workedBy"].is_null(), "{s}");
    assert_eq!(
        s["finished"].as_u64().unwrap() + s["remaining"].as_u64().unwrap(),
        items
    );
    assert!(s["outcomes"]["Exported"].as_u64().unwrap_or(0) >= 1, "{s}");
    // Resumed to the end: the status agrees with the package.
    let o = run(export(&running.base_url, &out, Some(&pg))).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = status_of(&run(job_status(&out, Some(&pg))).await);
    assert_eq!(s["complete"], true);
    assert_eq!(s["remaining"], 0);
    assert_eq!(s["items"], items);
    assert_eq!(s["outcomes"], outcome_counts(&out));
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn job_status_of_a_postgres_job_needs_its_state_given() {
    let pg = Cluster::start("status-given");
    let running = Sim::new(scenario()).unwrap().spawn().await.unwrap();
    let out = tmp("status-given");
    let o = run(export(&running.base_url, &out, Some(&pg))).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The directory's job link names the database, but never decides where a password goes.
    let mut c = job_status(&out, None);
    c.env("PGPASSWORD", PASSWORD);
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("resume with --state"), "{}", stderr(&o));
    let o = run(job_status(&tmp("status-nothing"), None)).await;
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn job_status_names_the_run_holding_a_sqlite_export() {
    let running = Sim::new(slow()).unwrap().spawn().await.unwrap();
    let out = tmp("status-sqlite-running");
    let sealed = |out: &Path| out.join("data/manifest.csv").exists();
    let mut child = started(export(&running.base_url, &out, None), &out, sealed).await;
    let s = status_of(&run(job_status(&out, None)).await);
    assert!(
        s["workedBy"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("custos {} ", child.id())),
        "{s}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let s = status_of(&run(job_status(&out, None)).await);
    assert!(s["workedBy"].is_null(), "{s}");
    assert_eq!(s["complete"], false);
    std::fs::remove_dir_all(&out).unwrap();
}

/// Runs `c`, failing the test if it has not ended within 20 s (a FIFO opened would hang it).
async fn run_bounded(mut c: Command) -> Output {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let pid = child.id();
    match tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()),
    )
    .await
    {
        Ok(o) => o.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("the command hung");
        }
    }
}

fn mkfifo(at: &Path) {
    assert!(Command::new("mkfifo").arg(at).status().unwrap().success());
}

#[tokio::test]
async fn a_fifo_for_the_job_state_is_refused_never_opened() {
    let running = Sim::new(scenario()).unwrap().spawn().await.unwrap();
    let out = tmp("state-fifo");
    std::fs::create_dir_all(out.join(".custos")).unwrap();
    mkfifo(&out.join(".custos/state.sqlite"));
    let o = run_bounded(job_status(&out, None)).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is not a regular file"),
        "{}",
        stderr(&o)
    );
    let o = run_bounded(export(&running.base_url, &out, None)).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is not a regular file"),
        "{}",
        stderr(&o)
    );
    assert!(!out.join("data/query.json").exists());
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn a_fifo_for_the_run_lock_is_never_read_by_job_status() {
    let running = Sim::new(scenario()).unwrap().spawn().await.unwrap();
    let out = tmp("lock-fifo");
    let o = run(export(&running.base_url, &out, None)).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::remove_file(out.join(".custos/lock")).unwrap();
    mkfifo(&out.join(".custos/lock"));
    let s = status_of(&run_bounded(job_status(&out, None)).await);
    assert!(s["workedBy"].is_null(), "{s}");
    assert_eq!(s["complete"], true);
    std::fs::remove_dir_all(&out).unwrap();
}
