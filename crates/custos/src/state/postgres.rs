//! The job state in PostgreSQL (`--state postgres://…`): the same records as the SQLite file,
//! one row set per job in the schema `custos`, so a job outlives the machine that started it.
//!
//! The client is `postgres`, the blocking face of `tokio-postgres`, on a thread of its own: the
//! job state's calls are synchronous (as rusqlite's are), and a blocking client must never run
//! on a tokio worker thread, nor be dropped on one. Each call is sent to that thread and
//! answered before it returns; each write is one transaction committed with PostgreSQL's
//! default `synchronous_commit = on`, so an outcome recorded here survives a crash of this
//! process or of the database server.
//!
//! One process works a job at a time: it holds a session advisory lock on the job for as long
//! as it is connected (the server drops it when the connection ends, a SIGKILL included). A
//! distributed job ([`Shared`], docs/scale.md) is also worked by `custos worker` processes, one
//! per OAuth client (a lock of their own), which claim conversations and items under a lease and
//! an epoch; its custody log is one chain kept here.

use std::sync::mpsc;
use std::thread::JoinHandle;

use postgres::{Client, NoTls, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{Done, JobStore, Key, PgTarget, RestoreRow};
use crate::custody::{Draft, GENESIS, LineStore, line_hash};
use crate::error::{Error, Result};
use crate::model::{Item, Outcome};

/// Serialises the schema's creation between processes that start at once.
const SCHEMA_LOCK: i64 = 0x6375_7374_6f73; // "custos"
/// Rows per page when reading the items back (the job is never held in memory whole).
const PAGE: i64 = 1000;
/// Seconds a session may sit inside a transaction without a word before the server ends it
/// (a worker sets its lease instead).
const IDLE_IN_TRANSACTION_S: u32 = 60;
/// Rows per INSERT when sealing the manifest.
const CHUNK: usize = 10_000;

const SCHEMA: &str = "
CREATE SCHEMA IF NOT EXISTS custos;
CREATE TABLE IF NOT EXISTS custos.jobs (
    job_id TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    out_dir TEXT NOT NULL,
    host TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS custos.meta (
    job_id TEXT NOT NULL REFERENCES custos.jobs,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (job_id, key));
CREATE TABLE IF NOT EXISTS custos.items (
    job_id TEXT NOT NULL REFERENCES custos.jobs,
    seq BIGINT NOT NULL,
    conversation_id TEXT NOT NULL,
    recording_id TEXT NOT NULL,
    listed_state TEXT NOT NULL,
    outcome TEXT,
    reason TEXT,
    file TEXT,
    sha256 TEXT,
    md5 TEXT,
    sha1 TEXT,
    bytes BIGINT,
    content_type TEXT,
    downloaded_at TEXT,
    media_ms BIGINT,
    stated_ms BIGINT,
    stated_source TEXT,
    PRIMARY KEY (job_id, seq),
    UNIQUE (job_id, conversation_id, recording_id));
CREATE INDEX IF NOT EXISTS items_file ON custos.items (job_id, file);
CREATE TABLE IF NOT EXISTS custos.protected (
    job_id TEXT NOT NULL REFERENCES custos.jobs,
    conversation_id TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (job_id, conversation_id));
CREATE TABLE IF NOT EXISTS custos.restores (
    job_id TEXT NOT NULL REFERENCES custos.jobs,
    conversation_id TEXT NOT NULL,
    recording_id TEXT NOT NULL,
    archive_date TEXT NOT NULL,
    requested_at TEXT,
    restored_at TEXT,
    PRIMARY KEY (job_id, conversation_id, recording_id));
ALTER TABLE custos.items ADD COLUMN IF NOT EXISTS claim_epoch BIGINT;
ALTER TABLE custos.items ADD COLUMN IF NOT EXISTS finished_at TIMESTAMPTZ;
CREATE SEQUENCE IF NOT EXISTS custos.epochs;
CREATE TABLE IF NOT EXISTS custos.workers (
    job_id TEXT NOT NULL REFERENCES custos.jobs,
    epoch BIGINT NOT NULL,
    oauth_client TEXT NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until TIMESTAMPTZ NOT NULL,
    ended TEXT,
    throttled BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, epoch));
CREATE TABLE IF NOT EXISTS custos.listing (
    job_id TEXT NOT NULL REFERENCES custos.jobs,
    conversation_id TEXT NOT NULL,
    claim_epoch BIGINT,
    listed_by BIGINT,
    missing BOOLEAN,
    PRIMARY KEY (job_id, conversation_id));
-- Workers claim the conversations not yet listed, and the items without an outcome, in key
-- order: these indexes hold only those, so a claim does not step over every row already done
-- (at a million, the listing's claim took 147 ms with 437,350 rows done ahead of it).
CREATE INDEX IF NOT EXISTS listing_open ON custos.listing (job_id, conversation_id)
    WHERE missing IS NULL;
CREATE INDEX IF NOT EXISTS items_open ON custos.items (job_id, seq) WHERE outcome IS NULL;
CREATE TABLE IF NOT EXISTS custos.listed (
    job_id TEXT NOT NULL REFERENCES custos.jobs,
    conversation_id TEXT NOT NULL,
    recording_id TEXT NOT NULL,
    listed_state TEXT NOT NULL,
    media TEXT,
    epoch BIGINT NOT NULL,
    PRIMARY KEY (job_id, conversation_id, recording_id));
-- The coordinator reads the lists back a page at a time in byte order, whatever the database's
-- collation: this index serves those pages.
CREATE INDEX IF NOT EXISTS listed_bytewise
    ON custos.listed (job_id, conversation_id COLLATE \"C\", recording_id COLLATE \"C\");
CREATE TABLE IF NOT EXISTS custos.custody (
    job_id TEXT NOT NULL REFERENCES custos.jobs,
    seq BIGINT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (job_id, seq));
CREATE TABLE IF NOT EXISTS custos.custody_head (
    job_id TEXT PRIMARY KEY REFERENCES custos.jobs,
    seq BIGINT NOT NULL,
    head TEXT NOT NULL);
";

const ITEM_COLUMNS: &str = "conversation_id, recording_id, listed_state, outcome, reason, file, sha256, bytes, content_type, downloaded_at, media_ms, stated_ms, stated_source, md5, sha1";

/// Work for the connection's thread; `true` ends the thread.
type Call = Box<dyn FnOnce(&mut Client) -> bool + Send>;

/// A way to the connection's thread, which any thread may hold (the custody log's sink holds
/// one): each call is answered before it returns.
#[derive(Clone)]
struct Conn {
    calls: mpsc::Sender<Call>,
    job: String,
    /// The database as shown in messages (never with a password).
    shown: String,
}

/// One job's state in a PostgreSQL database.
pub(super) struct Pg {
    conn: Conn,
    thread: Option<JoinHandle<()>>,
}

/// TLS for `sslmode=require`: the server's certificate chain and name checked against the CA
/// file (PEM) or the system's roots (rustls, whose default protocols are TLS 1.2 and 1.3).
fn tls(shown: &str, ca: Option<&std::path::Path>) -> Result<MakeRustlsConnect> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let bad = |why: String| Error::Config(format!("--state-ca {}: {why}", path.display()));
            let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
            if !meta.is_file() || meta.len() > 1 << 20 {
                return Err(bad("not a regular file of at most 1 MiB".into()));
            }
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
                roots
                    .add(cert.map_err(|e| bad(e.to_string()))?)
                    .map_err(|e| bad(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(bad("holds no PEM certificate".into()));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(Error::Config(format!(
                    "--state {shown}: this machine has no CA certificates to check the server's against; give the CA in --state-ca FILE"
                )));
            }
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Whether an error comes from TLS refusing the server (its certificate, its name): a re-run
/// will not change that.
fn refused_by_tls(e: &postgres::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.downcast_ref::<rustls::Error>().is_some()
            || c.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// A PostgreSQL error as the library's: a refused login, a database that does not exist or a
/// server whose certificate is not trusted will not change on a re-run (exit 2); anything else
/// (the server unreachable, a restart) may.
fn pg_error(target: &str, e: postgres::Error) -> Error {
    let text = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => {
            let mut s = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                s = format!("{s}: {c}");
                cause = c.source();
            }
            s
        }
    };
    let permanent = refused_by_tls(&e)
        || e.code().is_some_and(|c| {
            let c = c.code();
            c.starts_with("28") || c == "3D000" || c.starts_with("42")
        });
    let hint = if refused_by_tls(&e) {
        " (the server's certificate is not trusted: if your own CA signed it, give that CA in --state-ca FILE)"
    } else {
        ""
    };
    let message = format!("job state in {target}: {text}{hint}");
    if permanent {
        Error::Config(message)
    } else {
        Error::JobState(message)
    }
}

impl Pg {
    /// Connects, creates the schema if it is not there, and takes `job` (creating it when
    /// `create` is set, refusing a job the database does not hold otherwise).
    pub(super) fn open(target: &PgTarget, job: &str, create: Option<&str>) -> Result<Pg> {
        let pg = Pg::connect(target, job)?;
        let job = job.to_owned();
        let create = create.map(|out| (out.to_owned(), crate::custody::os_identity()));
        let (held, known) = pg.conn.call(move |c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
            tx.batch_execute(SCHEMA)?;
            if let Some((out, host)) = &create {
                tx.execute(
                    "INSERT INTO custos.jobs (job_id, out_dir, host) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&job, out, host],
                )?;
            }
            tx.commit()?;
            let known: bool = c
                .query_one("SELECT EXISTS (SELECT 1 FROM custos.jobs WHERE job_id = $1)", &[&job])?
                .get(0);
            let held: bool = c
                .query_one(
                    "SELECT pg_try_advisory_lock(hashtextextended('custos job ' || $1, 0))",
                    &[&job],
                )?
                .get(0);
            Ok((held, known))
        })?;
        pg.taken(known, Some(held))
    }

    /// Connects to look at `job`: no schema is created and the job's lock is not taken.
    pub(super) fn look(target: &PgTarget, job: &str) -> Result<Pg> {
        let pg = Pg::connect(target, job)?;
        let job = job.to_owned();
        let known = pg.conn.call(move |c| {
            let schema: bool = c
                .query_one("SELECT to_regclass('custos.jobs') IS NOT NULL", &[])?
                .get(0);
            Ok(schema
                && c.query_one(
                    "SELECT EXISTS (SELECT 1 FROM custos.jobs WHERE job_id = $1)",
                    &[&job],
                )?
                .get::<_, bool>(0))
        })?;
        pg.taken(known, None)
    }

    /// `self` if the database holds the job (and, when asked for, its lock was taken).
    fn taken(mut self, known: bool, held: Option<bool>) -> Result<Pg> {
        let shown = self.conn.shown.clone();
        if !known {
            self.shutdown();
            return Err(Error::Config(format!(
                "job {} is not in {shown}: this export's job state was kept in another database (or removed); point --state at the database that holds it",
                self.conn.job
            )));
        }
        if held == Some(false) {
            self.shutdown();
            return Err(Error::JobState(format!(
                "job {} in {shown}: another custos process is working this job (it holds the job's lock); wait for it to finish",
                self.conn.job
            )));
        }
        Ok(self)
    }

    /// Connects (on the connection's own thread).
    fn connect(target: &PgTarget, job: &str) -> Result<Pg> {
        let shown = target.url.clone();
        let mut config: postgres::Config = target.url.parse().map_err(|e| {
            Error::Config(format!(
                "--state {shown}: not a PostgreSQL connection URL: {e}"
            ))
        })?;
        if let Some(p) = &target.password {
            config.password(p);
        }
        let host = crate::custody::os_identity();
        config.application_name(&format!("custos {} {host}", std::process::id()));
        config.connect_timeout(std::time::Duration::from_secs(10));
        // A process stopped inside a transaction (SIGSTOP, a frozen VM) would hold its locks —
        // the custody chain's head among them — for ever: the server ends such a session.
        config.options(&format!(
            "-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_S}s"
        ));
        let tls = target
            .tls
            .then(|| tls(&shown, target.ca.as_deref()))
            .transpose()?;
        let (calls, queue) = mpsc::channel::<Call>();
        let (ready, connected) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("custos-postgres".into())
            .spawn(move || {
                let connected = match tls {
                    Some(tls) => config.connect(tls),
                    None => config.connect(NoTls),
                };
                let mut client = match connected {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                while let Ok(call) = queue.recv() {
                    if call(&mut client) {
                        break;
                    }
                }
            })
            .map_err(|e| Error::JobState(format!("cannot start the PostgreSQL thread: {e}")))?;
        let pg = Pg {
            conn: Conn {
                calls,
                job: job.to_owned(),
                shown: shown.clone(),
            },
            thread: Some(thread),
        };
        match connected.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(pg_error(&shown, e)),
            Err(_) => {
                return Err(Error::JobState(format!(
                    "{shown}: the connection thread ended"
                )));
            }
        }
        Ok(pg)
    }

    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client, &str) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T> {
        self.conn.run(f)
    }

    /// Ends the connection's thread (every [`Conn`] still held then finds the connection gone).
    fn shutdown(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.conn.calls.send(Box::new(|_| true));
            let _ = t.join();
        }
    }
}

/// What [`Conn::run_fed`] feeds its call: a chunk, or the end (`None`). A feed that stops
/// without its end (reading failed) leaves the call to roll back.
type Feed<C> = mpsc::Receiver<Option<C>>;

impl Conn {
    /// Runs `f` on the connection's thread, feeding it what `read` reads here, a chunk at a
    /// time (two may wait: what is read is never held whole). `f` answers `None` when the feed
    /// stopped without its end; it has then rolled back, and the answer is `read`'s error.
    fn run_fed<C: Send + 'static, T: Send + 'static>(
        &self,
        read: &mut dyn FnMut() -> Result<Option<C>>,
        f: impl FnOnce(&mut Client, &str, &Feed<C>) -> Result<Option<T>, postgres::Error>
        + Send
        + 'static,
    ) -> Result<T> {
        let (feed, fed) = mpsc::sync_channel::<Option<C>>(2);
        std::thread::scope(|scope| {
            let call = scope.spawn(move || self.run(move |c, job| f(c, job, &fed)));
            let mut failed = None;
            loop {
                match read() {
                    Ok(Some(chunk)) => {
                        // The call ended early (its database error is its answer).
                        if feed.send(Some(chunk)).is_err() {
                            break;
                        }
                    }
                    Ok(None) => {
                        let _ = feed.send(None);
                        break;
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            drop(feed);
            let answer = call
                .join()
                .expect("the PostgreSQL feed's thread panicked")?;
            match (answer, failed) {
                (Some(t), None) => Ok(t),
                (_, Some(e)) => Err(e),
                (None, None) => Err(Error::JobState(format!(
                    "{}: a write was cut short",
                    self.shown
                ))),
            }
        })
    }

    /// Runs `f` on the connection's thread and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T> {
        let (answer, answered) = mpsc::sync_channel(1);
        let shown = &self.shown;
        let gone = || Error::JobState(format!("{shown}: the connection to PostgreSQL is gone"));
        self.calls
            .send(Box::new(move |c| {
                let _ = answer.send(f(c));
                false
            }))
            .map_err(|_| gone())?;
        answered
            .recv()
            .map_err(|_| gone())?
            .map_err(|e| pg_error(shown, e))
    }

    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client, &str) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T> {
        let job = self.job.clone();
        self.call(move |c| f(c, &job))
    }
}

impl Pg {
    /// Sets a restore's `column` (`requested_at`, `restored_at`) to `at`.
    fn restore_time(&self, item: &Item, column: &'static str, at: &str) -> Result<()> {
        let (item, at) = (item.clone(), at.to_owned());
        self.run(move |c, job| {
            c.execute(
                &format!(
                    "UPDATE custos.restores SET {column} = $4 WHERE job_id = $1 AND conversation_id = $2 AND recording_id = $3"
                ),
                &[&job, &item.conversation_id, &item.recording_id, &at],
            )?;
            Ok(())
        })
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn item_of(r: &Row) -> (Item, Option<Done>) {
    let item = Item {
        conversation_id: r.get(0),
        recording_id: r.get(1),
        listed_state: r.get(2),
    };
    let done = r.get::<_, Option<String>>(3).map(|o| Done {
        outcome: Outcome::parse(&o).unwrap_or(Outcome::Failed),
        reason: r.get::<_, Option<String>>(4).unwrap_or_default(),
        file: r.get(5),
        sha256: r.get(6),
        bytes: r.get::<_, Option<i64>>(7).map(|b| b as u64),
        content_type: r.get(8),
        downloaded_at: r.get(9),
        media_ms: r.get::<_, Option<i64>>(10).map(|b| b as u64),
        stated_ms: r.get::<_, Option<i64>>(11).map(|b| b as u64),
        stated_source: r.get(12),
        md5: r.get(13),
        sha1: r.get(14),
    });
    (item, done)
}

fn restore_of_row(r: &Row) -> RestoreRow {
    RestoreRow {
        item: Item {
            conversation_id: r.get(0),
            recording_id: r.get(1),
            listed_state: r.get(2),
        },
        archive_date: r.get(3),
        requested_at: r.get(4),
        restored_at: r.get(5),
    }
}

const RESTORES: &str = "SELECT r.conversation_id, r.recording_id, i.listed_state, r.archive_date, r.requested_at, r.restored_at
     FROM custos.restores r JOIN custos.items i USING (job_id, conversation_id, recording_id)
     WHERE r.job_id = $1";

impl JobStore for Pg {
    fn get(&self, key: Key) -> Result<Option<String>> {
        let key = key.name().into_owned();
        self.run(move |c, job| {
            Ok(c.query_opt(
                "SELECT value FROM custos.meta WHERE job_id = $1 AND key = $2",
                &[&job, &key],
            )?
            .map(|r| r.get(0)))
        })
    }

    fn set(&self, key: Key, value: &str) -> Result<()> {
        let (key, value) = (key.name().into_owned(), value.to_owned());
        self.run(move |c, job| {
            c.execute(
                "INSERT INTO custos.meta (job_id, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (job_id, key) DO UPDATE SET value = EXCLUDED.value",
                &[&job, &key, &value],
            )?;
            Ok(())
        })
    }

    fn seal_manifest(
        &self,
        items: &mut dyn Iterator<Item = Result<Item>>,
        manifest_sha256: &str,
    ) -> Result<()> {
        let (key, sha) = (
            Key::ManifestSha256.name().into_owned(),
            manifest_sha256.to_owned(),
        );
        let mut read = || chunk_of(items);
        self.conn.run_fed(&mut read, move |c, job, feed| {
            let mut tx = c.transaction()?;
            tx.execute("DELETE FROM custos.items WHERE job_id = $1", &[&job])?;
            let mut first = 1i64;
            loop {
                let chunk: Vec<Item> = match feed.recv() {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => break,
                    Err(_) => return Ok(None),
                };
                let seq: Vec<i64> = (first..first + chunk.len() as i64).collect();
                first += chunk.len() as i64;
                let conv: Vec<&str> = chunk.iter().map(|i| i.conversation_id.as_str()).collect();
                let rec: Vec<&str> = chunk.iter().map(|i| i.recording_id.as_str()).collect();
                let st: Vec<&str> = chunk.iter().map(|i| i.listed_state.as_str()).collect();
                tx.execute(
                    "INSERT INTO custos.items (job_id, seq, conversation_id, recording_id, listed_state)
                     SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[])",
                    &[&job, &seq, &conv, &rec, &st],
                )?;
            }
            tx.execute(
                "INSERT INTO custos.meta (job_id, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (job_id, key) DO UPDATE SET value = EXCLUDED.value",
                &[&job, &key, &sha],
            )?;
            tx.commit().map(Some)
        })
    }

    fn finish(&self, item: &Item, done: &Done) -> Result<()> {
        let (item, done) = (item.clone(), done.clone());
        self.run(move |c, job| set_outcome(c, job, &item, &done, None).map(|_| ()))
    }

    fn for_each(&self, f: &mut dyn FnMut(Item, Option<Done>) -> Result<()>) -> Result<()> {
        let mut after = 0i64;
        loop {
            let page = self.run(move |c, job| {
                let rows = c.query(
                    &format!(
                        "SELECT {ITEM_COLUMNS}, seq FROM custos.items WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT {PAGE}"
                    ),
                    &[&job, &after],
                )?;
                Ok(rows
                    .iter()
                    .map(|r| (r.get::<_, i64>(15), item_of(r)))
                    .collect::<Vec<_>>())
            })?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            after = *last;
            for (_, (item, done)) in page {
                f(item, done)?;
            }
        }
    }

    fn protected(&self, conversation_ids: &[String], at: &str) -> Result<()> {
        let (ids, at) = (conversation_ids.to_vec(), at.to_owned());
        self.run(move |c, job| {
            c.execute(
                "INSERT INTO custos.protected (job_id, conversation_id, at)
                 SELECT $1, id, $3 FROM unnest($2::text[]) AS id ON CONFLICT DO NOTHING",
                &[&job, &ids, &at],
            )?;
            Ok(())
        })
    }

    fn protected_set(&self) -> Result<Vec<(String, String)>> {
        self.run(|c, job| {
            Ok(c.query(
                "SELECT conversation_id, at FROM custos.protected WHERE job_id = $1 ORDER BY conversation_id COLLATE \"C\"",
                &[&job],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
        })
    }

    fn restore_intent(&self, item: &Item, archive_date: &str) -> Result<()> {
        let (item, date) = (item.clone(), archive_date.to_owned());
        self.run(move |c, job| {
            c.execute(
                "INSERT INTO custos.restores (job_id, conversation_id, recording_id, archive_date)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&job, &item.conversation_id, &item.recording_id, &date],
            )?;
            Ok(())
        })
    }

    fn restore_requested(&self, item: &Item, at: &str) -> Result<()> {
        self.restore_time(item, "requested_at", at)
    }

    fn restore_done(&self, item: &Item, at: &str) -> Result<()> {
        self.restore_time(item, "restored_at", at)
    }

    fn restores(&self) -> Result<Vec<RestoreRow>> {
        self.run(|c, job| {
            Ok(c.query(&format!("{RESTORES} ORDER BY i.seq"), &[&job])?
                .iter()
                .map(restore_of_row)
                .collect())
        })
    }

    fn restores_pending(&self) -> Result<Vec<RestoreRow>> {
        self.run(|c, job| {
            Ok(c.query(
                &format!(
                    "{RESTORES} AND r.requested_at IS NOT NULL AND r.restored_at IS NULL AND i.outcome IS NULL ORDER BY i.seq"
                ),
                &[&job],
            )?
            .iter()
            .map(restore_of_row)
            .collect())
        })
    }

    fn restore_of(&self, item: &Item) -> Result<Option<RestoreRow>> {
        let item = item.clone();
        self.run(move |c, job| {
            Ok(c.query_opt(
                &format!("{RESTORES} AND r.conversation_id = $2 AND r.recording_id = $3"),
                &[&job, &item.conversation_id, &item.recording_id],
            )?
            .as_ref()
            .map(restore_of_row))
        })
    }

    fn conversations_with_items(
        &self,
        conversation_ids: &[String],
    ) -> Result<std::collections::BTreeSet<String>> {
        let ids = conversation_ids.to_vec();
        self.run(move |c, job| {
            // The (job_id, conversation_id, recording_id) unique index answers it.
            Ok(c.query(
                "SELECT DISTINCT conversation_id FROM custos.items
                 WHERE job_id = $1 AND conversation_id = ANY($2)",
                &[&job, &ids],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })
    }

    fn file_hash(&self, file: &str) -> Result<Option<(crate::digest::Sha256, u64)>> {
        let file = file.to_owned();
        self.run(move |c, job| {
            Ok(c.query_opt(
                "SELECT sha256, bytes FROM custos.items
                 WHERE job_id = $1 AND file = $2 AND sha256 IS NOT NULL AND bytes IS NOT NULL LIMIT 1",
                &[&job, &file],
            )?
            .and_then(|r| {
                r.get::<_, String>(0)
                    .parse()
                    .ok()
                    .map(|h| (h, r.get::<_, i64>(1) as u64))
            }))
        })
    }

    fn progress(&self, since: &str) -> Result<super::JobProgress> {
        let since = since.to_owned();
        self.run(move |c, job| {
            let mut p = super::JobProgress::default();
            // One pass over the job's items (a million rows took about a third of a second),
            // grouped by outcome; the group without one is the items still open.
            for r in c.query(
                "SELECT outcome, COUNT(*), MAX(downloaded_at), COUNT(*) FILTER (WHERE downloaded_at >= $2)
                 FROM custos.items WHERE job_id = $1 GROUP BY outcome",
                &[&job, &since],
            )? {
                let n = r.get::<_, i64>(1) as u64;
                p.items += n;
                p.last_download = p.last_download.max(r.get::<_, Option<String>>(2));
                p.downloads_since += r.get::<_, i64>(3) as u64;
                if let Some(outcome) = r.get::<_, Option<String>>(0) {
                    p.outcomes.insert(outcome, n);
                }
            }
            // The session holding the job's advisory lock (the key split in two 32-bit halves).
            p.worked_by = c
                .query_opt(
                    "SELECT a.application_name || ' from ' || COALESCE(host(a.client_addr), 'a local socket')
                            || ', connected since ' || to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                       AND ((l.classid::bigint << 32) | l.objid::bigint)
                           = hashtextextended('custos job ' || $1, 0)",
                    &[&job],
                )?
                .map(|r| r.get(0));
            Ok(p)
        })
    }

    fn unfinished(&self, after: u64, limit: u64) -> Result<Vec<(u64, Item)>> {
        self.run(move |c, job| {
            Ok(c.query(
                "SELECT seq, conversation_id, recording_id, listed_state FROM custos.items
                 WHERE job_id = $1 AND seq > $2 AND outcome IS NULL ORDER BY seq LIMIT $3",
                &[&job, &(after as i64), &(limit as i64)],
            )?
            .iter()
            .map(|r| {
                (
                    r.get::<_, i64>(0) as u64,
                    Item {
                        conversation_id: r.get(1),
                        recording_id: r.get(2),
                        listed_state: r.get(3),
                    },
                )
            })
            .collect())
        })
    }
}

/// Records `item`'s outcome (a worker's, `epoch`, only on an item it holds that has none yet);
/// the rows changed.
fn set_outcome(
    c: &mut impl postgres::GenericClient,
    job: &str,
    item: &Item,
    done: &Done,
    epoch: Option<i64>,
) -> Result<u64, postgres::Error> {
    c.execute(
        "UPDATE custos.items SET outcome = $4, reason = $5, file = $6, sha256 = $7, bytes = $8,
             content_type = $9, downloaded_at = $10, media_ms = $11, stated_ms = $12,
             stated_source = $13, md5 = $14, sha1 = $15, finished_at = now()
         WHERE job_id = $1 AND conversation_id = $2 AND recording_id = $3
           AND ($16::bigint IS NULL OR (claim_epoch = $16 AND outcome IS NULL))",
        &[
            &job,
            &item.conversation_id,
            &item.recording_id,
            &done.outcome.as_str(),
            &done.reason,
            &done.file,
            &done.sha256,
            &done.bytes.map(|b| b as i64),
            &done.content_type,
            &done.downloaded_at,
            &done.media_ms.map(|b| b as i64),
            &done.stated_ms.map(|b| b as i64),
            &done.stated_source,
            &done.md5,
            &done.sha1,
            &epoch,
        ],
    )
}

/// Places `draft`'s line after the chain's head (locked until the caller commits) and moves
/// the head: one chain, whichever process appends.
fn append_line(
    tx: &mut postgres::Transaction<'_>,
    job: &str,
    draft: &Draft,
) -> Result<String, postgres::Error> {
    tx.execute(
        "INSERT INTO custos.custody_head (job_id, seq, head) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING",
        &[&job, &GENESIS],
    )?;
    let r = tx.query_one(
        "SELECT seq, head FROM custos.custody_head WHERE job_id = $1 FOR UPDATE",
        &[&job],
    )?;
    let seq = r.get::<_, i64>(0) + 1;
    let prev: String = r.get(1);
    let bytes = draft.line(seq as u64, &prev);
    let hash = line_hash(&bytes);
    let line = String::from_utf8(bytes).expect("serde_json writes UTF-8");
    tx.execute(
        "INSERT INTO custos.custody (job_id, seq, line) VALUES ($1, $2, $3)",
        &[&job, &seq, &line],
    )?;
    tx.execute(
        "UPDATE custos.custody_head SET seq = $2, head = $3 WHERE job_id = $1",
        &[&job, &seq, &hash],
    )?;
    Ok(hash)
}

/// SQL: the claim on a row of `alias` (an item or a conversation to list) is free: nobody's, or
/// that of a worker whose lease lapsed or who ended. (`$1` is the job.)
fn claim_free(alias: &str) -> String {
    format!(
        "({alias}.claim_epoch IS NULL OR NOT EXISTS (
             SELECT 1 FROM custos.workers w
             WHERE w.job_id = $1 AND w.epoch = {alias}.claim_epoch
               AND w.lease_until > now() AND w.ended IS NULL))"
    )
}

/// SQL: item `i` is not one the coordinator restores (`--restore-archived`): it has no restore
/// row. (`$1` is the job.)
const NOT_RESTORED: &str = "NOT EXISTS (
    SELECT 1 FROM custos.restores r
    WHERE r.job_id = $1 AND r.conversation_id = i.conversation_id AND r.recording_id = i.recording_id)";

/// Whether workers may still work the job (the coordinator has not closed it); the row is
/// locked against the close until the caller commits.
fn work_open(tx: &mut postgres::Transaction<'_>, job: &str) -> Result<bool, postgres::Error> {
    Ok(tx
        .query_opt(
            "SELECT value FROM custos.meta WHERE job_id = $1 AND key = 'work_open' FOR SHARE",
            &[&job],
        )?
        .is_some_and(|r| matches!(r.get::<_, String>(0).as_str(), "true" | "listing")))
}

/// Whether the worker `epoch` still holds its lease (and keeps the row from changing until the
/// caller commits).
fn lease_held(
    tx: &mut postgres::Transaction<'_>,
    job: &str,
    epoch: i64,
) -> Result<bool, postgres::Error> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM custos.workers
             WHERE job_id = $1 AND epoch = $2 AND lease_until > now() AND ended IS NULL FOR SHARE",
            &[&job, &epoch],
        )?
        .is_some())
}

/// One worker of a distributed job: its fencing token (the epoch the database gave it when it
/// joined) and how long its lease runs after each heartbeat.
#[derive(Clone, Copy, Debug)]
pub struct WorkerLease {
    /// The fencing token: every claim and outcome of this worker carries it.
    pub epoch: i64,
    /// Seconds a heartbeat extends the lease by.
    pub lease_s: u32,
}

/// A distributed job's shared parts (docs/scale.md), through a handle any thread may hold: the
/// custody log's one chain, sequenced in the database; and, for a worker, its claims, its
/// lease and its fenced outcomes.
#[derive(Clone)]
pub struct Shared {
    conn: Conn,
    worker: Option<WorkerLease>,
}

/// Items a claim took, and whether other items of the job have no outcome yet.
#[derive(Debug, Default)]
pub struct Claimed {
    /// Taken by this worker, in manifest order.
    pub items: Vec<Item>,
    /// Some item of the job without an outcome that this worker does not hold (others hold
    /// it, or it comes free when a lapsed worker's lease is seen).
    pub others_unfinished: bool,
}

/// A recording a worker listed: its row of the conversation's recordings list.
#[derive(Clone, Debug)]
pub struct ListedRow {
    /// The recording.
    pub item: Item,
    /// Its `media` as listed, when it is stated and not `audio`.
    pub media: Option<String>,
}

/// Up to [`CHUNK`] items of `items` (`None`: there are no more).
fn chunk_of<T>(items: &mut dyn Iterator<Item = Result<T>>) -> Result<Option<Vec<T>>> {
    let chunk = items.take(CHUNK).collect::<Result<Vec<T>>>()?;
    Ok((!chunk.is_empty()).then_some(chunk))
}

/// One worker of a job, as `custos job status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerRow {
    /// Its fencing token.
    pub epoch: i64,
    /// The OAuth client it collects with.
    pub oauth_client: String,
    /// `user@host` and pid.
    pub host: String,
    /// Process id on its host.
    pub pid: i64,
    /// When it joined (UTC).
    pub started_at: String,
    /// Its last heartbeat (UTC).
    pub heartbeat_at: String,
    /// Whether its lease still runs.
    pub live: bool,
    /// Why it ended, once it has.
    pub ended: Option<String>,
    /// Items it holds without an outcome.
    pub claimed: u64,
    /// Items it ended.
    pub done: u64,
    /// Items it ended in the window asked about.
    pub done_since: u64,
    /// 429 answers it met.
    pub throttled: u64,
}

const UTC: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'";

impl Shared {
    fn worker(&self) -> Result<WorkerLease> {
        self.worker
            .ok_or_else(|| Error::JobState("only a worker claims items".into()))
    }

    fn fenced(&self, epoch: i64) -> Error {
        Error::Fenced(format!(
            "worker {epoch} of job {}: its lease lapsed (it was stopped or cut off from the database for longer than the lease), so other workers may have taken its items; nothing it ended since then was recorded. Start it again to rejoin the job",
            self.conn.job
        ))
    }

    /// The worker's fencing token, if this is a worker's handle.
    pub fn lease(&self) -> Option<WorkerLease> {
        self.worker
    }

    /// Takes up to `limit` items without an outcome that no live worker holds (claimed by none,
    /// or by a worker whose lease lapsed), under this worker's epoch, once the coordinator has
    /// opened the job for retrieval (none before: the hold at the source and the restore
    /// requests come first). An item the coordinator restores (`--restore-archived`: it has a
    /// restore row) is the coordinator's, never claimed nor counted as left. [`Error::Fenced`]
    /// once this worker's own lease has lapsed.
    pub fn claim(&self, limit: u64) -> Result<Claimed> {
        let w = self.worker()?;
        let (held, claimed) = self.conn.run(move |c, job| {
            let mut tx = c.transaction()?;
            if !lease_held(&mut tx, job, w.epoch)? {
                return Ok((false, Claimed::default()));
            }
            let retrieving = tx
                .query_opt(
                    "SELECT value FROM custos.meta WHERE job_id = $1 AND key = 'work_open'",
                    &[&job],
                )?
                .is_some_and(|r| r.get::<_, String>(0) == "true");
            let limit = if retrieving { limit as i64 } else { 0 };
            let mut items: Vec<(i64, Item)> = tx
                .query(
                    &format!(
                        "WITH free AS (
                             SELECT i.seq FROM custos.items i
                             WHERE i.job_id = $1 AND i.outcome IS NULL AND {} AND {NOT_RESTORED}
                             ORDER BY i.seq LIMIT $3 FOR UPDATE OF i SKIP LOCKED)
                         UPDATE custos.items i SET claim_epoch = $2 FROM free
                         WHERE i.job_id = $1 AND i.seq = free.seq
                         RETURNING i.seq, i.conversation_id, i.recording_id, i.listed_state",
                        claim_free("i")
                    ),
                    &[&job, &w.epoch, &limit],
                )?
                .iter()
                .map(|r| {
                    (
                        r.get(0),
                        Item {
                            conversation_id: r.get(1),
                            recording_id: r.get(2),
                            listed_state: r.get(3),
                        },
                    )
                })
                .collect();
            // Whether one is left, not how many: the first open item in `seq` order is found
            // through `items_open`, where a count read every open row on each claim (on a
            // million-item job with 147,305 open, 362.8 ms against 1.9 ms).
            let others_unfinished = tx
                .query_opt(
                    &format!(
                        "SELECT i.seq FROM custos.items i
                         WHERE i.job_id = $1 AND i.outcome IS NULL AND i.claim_epoch IS DISTINCT FROM $2
                           AND {NOT_RESTORED}
                         ORDER BY i.seq LIMIT 1"
                    ),
                    &[&job, &w.epoch],
                )?
                .is_some();
            tx.commit()?;
            items.sort_by_key(|(seq, _)| *seq);
            Ok((
                true,
                Claimed {
                    items: items.into_iter().map(|(_, it)| it).collect(),
                    others_unfinished,
                },
            ))
        })?;
        if held {
            Ok(claimed)
        } else {
            Err(self.fenced(w.epoch))
        }
    }

    /// Extends this worker's lease (and records the 429 answers it met so far);
    /// [`Error::Fenced`] if it had lapsed: a lapsed lease is never revived.
    pub fn heartbeat(&self, throttled: u64) -> Result<()> {
        let w = self.worker()?;
        let extended = self.conn.run(move |c, job| {
            c.execute(
                "UPDATE custos.workers SET heartbeat_at = now(),
                     lease_until = now() + make_interval(secs => $3), throttled = $4
                 WHERE job_id = $1 AND epoch = $2 AND lease_until > now() AND ended IS NULL",
                &[&job, &w.epoch, &f64::from(w.lease_s), &(throttled as i64)],
            )
        })?;
        if extended == 1 {
            Ok(())
        } else {
            Err(self.fenced(w.epoch))
        }
    }

    /// Records why this worker ended; its claims are free for others at once.
    pub fn end(&self, why: &str) -> Result<()> {
        let w = self.worker()?;
        let why = why.to_owned();
        self.conn.run(move |c, job| {
            c.execute(
                "UPDATE custos.workers SET ended = $3, lease_until = LEAST(lease_until, now())
                 WHERE job_id = $1 AND epoch = $2 AND ended IS NULL",
                &[&job, &w.epoch, &why],
            )?;
            Ok(())
        })
    }

    /// Records `item`'s outcome and its custody line in one transaction, if this worker still
    /// holds its lease and the item: else nothing lands and the answer is [`Error::Fenced`].
    pub fn finish(&self, item: &Item, done: &Done, line: &Draft) -> Result<()> {
        let w = self.worker()?;
        let (item, done, line) = (item.clone(), done.clone(), line.clone());
        let landed = self.conn.run(move |c, job| {
            let mut tx = c.transaction()?;
            if !lease_held(&mut tx, job, w.epoch)?
                || set_outcome(&mut tx, job, &item, &done, Some(w.epoch))? != 1
            {
                return Ok(false);
            }
            append_line(&mut tx, job, &line)?;
            tx.commit()?;
            Ok(true)
        })?;
        if landed {
            Ok(())
        } else {
            Err(self.fenced(w.epoch))
        }
    }

    /// What this worker ended, per outcome (its items and the bytes of those it exported).
    pub fn tally(&self) -> Result<crate::model::Tally> {
        let w = self.worker()?;
        let rows: Vec<(String, i64, i64)> = self.conn.run(move |c, job| {
            Ok(c.query(
                "SELECT outcome, COUNT(*), COALESCE(SUM(bytes), 0)::bigint FROM custos.items
                 WHERE job_id = $1 AND claim_epoch = $2 AND outcome IS NOT NULL GROUP BY outcome",
                &[&job, &w.epoch],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
        })?;
        let mut tally = crate::model::Tally::default();
        for (outcome, n, bytes) in rows {
            let o = Outcome::parse(&outcome).unwrap_or(Outcome::Failed);
            tally.items += n as u64;
            *tally.counts.entry(o).or_default() += n as u64;
            if o == Outcome::Exported {
                tally.exported_bytes += bytes as u64;
            }
        }
        Ok(tally)
    }

    /// Puts the conversations of `listing` in the job state for the workers to list. Run again
    /// with the same conversations (the coordinator was restarted), it keeps what was listed;
    /// with others, it starts the listing anew. The conversations are read a page at a time.
    pub fn list_conversations(&self, listing: &mut crate::source::Listing) -> Result<()> {
        // The set's digest: its ids joined by line feeds, read in order.
        let mut digest = <sha2::Sha256 as sha2::Digest>::new();
        let mut after: Option<String> = None;
        loop {
            let page = listing.conversations_after(after.as_deref(), CHUNK)?;
            let Some(last) = page.last() else { break };
            for (n, id) in page.iter().enumerate() {
                if after.is_some() || n > 0 {
                    sha2::Digest::update(&mut digest, b"\n");
                }
                sha2::Digest::update(&mut digest, id.as_bytes());
            }
            after = Some(last.clone());
        }
        let set = crate::digest::Sha256::finish(digest).hex();
        let mut after: Option<String> = None;
        let mut read = || {
            let page = listing.conversations_after(after.as_deref(), CHUNK)?;
            Ok(page.last().cloned().map(|last| {
                after = Some(last);
                page
            }))
        };
        let before = self.conn.run(|c, job| {
            Ok(c.query_opt(
                "SELECT value FROM custos.meta WHERE job_id = $1 AND key = 'listing_set'",
                &[&job],
            )?
            .map(|r| r.get::<_, String>(0)))
        })?;
        if before.as_deref() == Some(set.as_str()) {
            return Ok(());
        }
        self.conn.run_fed(&mut read, move |c, job, feed| {
            let mut tx = c.transaction()?;
            tx.execute("DELETE FROM custos.listed WHERE job_id = $1", &[&job])?;
            tx.execute("DELETE FROM custos.listing WHERE job_id = $1", &[&job])?;
            loop {
                let chunk: Vec<String> = match feed.recv() {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => break,
                    Err(_) => return Ok(None),
                };
                tx.execute(
                    "INSERT INTO custos.listing (job_id, conversation_id)
                     SELECT $1, id FROM unnest($2::text[]) AS id",
                    &[&job, &chunk],
                )?;
            }
            tx.execute(
                "INSERT INTO custos.meta (job_id, key, value) VALUES ($1, 'listing_set', $2)
                 ON CONFLICT (job_id, key) DO UPDATE SET value = EXCLUDED.value",
                &[&job, &set],
            )?;
            tx.commit().map(Some)
        })
    }

    /// Conversations not yet listed.
    pub fn unlisted(&self) -> Result<u64> {
        self.conn.run(|c, job| {
            Ok(c.query_one(
                "SELECT COUNT(*) FROM custos.listing WHERE job_id = $1 AND missing IS NULL",
                &[&job],
            )?
            .get::<_, i64>(0) as u64)
        })
    }

    /// Up to [`CHUNK`] of the recordings the workers listed, after `after` (`None`: from the
    /// first), sorted (conversation, recording; bytewise); each with its media (if not audio)
    /// and the epoch of the worker whose answer landed (its metadata file is
    /// `<recordingId>.w<epoch>.json` in the staging area).
    pub fn listed_page(&self, after: Option<&Item>) -> Result<Vec<(ListedRow, i64)>> {
        let after = after.map(|a| (a.conversation_id.clone(), a.recording_id.clone()));
        self.conn.run(move |c, job| {
            const COLUMNS: &str =
                "SELECT conversation_id, recording_id, listed_state, media, epoch FROM custos.listed";
            const ORDER: &str = "ORDER BY conversation_id COLLATE \"C\", recording_id COLLATE \"C\"";
            let rows = match &after {
                None => c.query(
                    &format!("{COLUMNS} WHERE job_id = $1 {ORDER} LIMIT {CHUNK}"),
                    &[&job],
                )?,
                Some((c0, r0)) => c.query(
                    &format!(
                        "{COLUMNS} WHERE job_id = $1
                         AND (conversation_id COLLATE \"C\", recording_id COLLATE \"C\") > ($2 COLLATE \"C\", $3 COLLATE \"C\")
                         {ORDER} LIMIT {CHUNK}"
                    ),
                    &[&job, c0, r0],
                )?,
            };
            Ok(rows
                .iter()
                .map(|r| {
                    (
                        ListedRow {
                            item: Item {
                                conversation_id: r.get(0),
                                recording_id: r.get(1),
                                listed_state: r.get(2),
                            },
                            media: r.get(3),
                        },
                        r.get(4),
                    )
                })
                .collect())
        })
    }

    /// The conversations whose recordings list answered 404.
    pub fn missing_conversations(&self) -> Result<std::collections::BTreeSet<String>> {
        self.conn.run(|c, job| {
            Ok(c.query(
                "SELECT conversation_id FROM custos.listing WHERE job_id = $1 AND missing",
                &[&job],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })
    }

    /// Takes up to `limit` conversations to list that no live worker holds, under this
    /// worker's epoch; `None` once the job is past listing. [`Error::Fenced`] once this
    /// worker's lease has lapsed.
    pub fn claim_conversations(&self, limit: u64) -> Result<Option<Vec<String>>> {
        let w = self.worker()?;
        let (held, claimed) = self.conn.run(move |c, job| {
            let mut tx = c.transaction()?;
            if !lease_held(&mut tx, job, w.epoch)? {
                return Ok((false, None));
            }
            let phase = tx
                .query_opt(
                    "SELECT value FROM custos.meta WHERE job_id = $1 AND key = 'work_open'",
                    &[&job],
                )?
                .map(|r| r.get::<_, String>(0));
            if phase.as_deref() != Some("listing") {
                return Ok((true, None));
            }
            let ids: Vec<String> = tx
                .query(
                    &format!(
                        "WITH free AS (
                             SELECT l.conversation_id FROM custos.listing l
                             WHERE l.job_id = $1 AND l.missing IS NULL AND {}
                             ORDER BY l.conversation_id LIMIT $3 FOR UPDATE OF l SKIP LOCKED)
                         UPDATE custos.listing l SET claim_epoch = $2 FROM free
                         WHERE l.job_id = $1 AND l.conversation_id = free.conversation_id
                         RETURNING l.conversation_id",
                        claim_free("l")
                    ),
                    &[&job, &w.epoch, &(limit as i64)],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            tx.commit()?;
            Ok((true, Some(ids)))
        })?;
        if held {
            Ok(claimed)
        } else {
            Err(self.fenced(w.epoch))
        }
    }

    /// Records a conversation's recordings list (`None`: it answered 404) in one transaction
    /// that lands only while this worker holds its lease and the conversation.
    pub fn record_listing(&self, conversation: &str, rows: Option<Vec<ListedRow>>) -> Result<()> {
        let w = self.worker()?;
        let cid = conversation.to_owned();
        let landed = self.conn.run(move |c, job| {
            let mut tx = c.transaction()?;
            let missing = rows.is_none();
            if !lease_held(&mut tx, job, w.epoch)?
                || tx.execute(
                    "UPDATE custos.listing SET missing = $4, listed_by = $3
                     WHERE job_id = $1 AND conversation_id = $2 AND claim_epoch = $3 AND missing IS NULL",
                    &[&job, &cid, &w.epoch, &missing],
                )? != 1
            {
                return Ok(false);
            }
            for row in rows.unwrap_or_default() {
                tx.execute(
                    "INSERT INTO custos.listed (job_id, conversation_id, recording_id, listed_state, media, epoch)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    &[&job, &row.item.conversation_id, &row.item.recording_id, &row.item.listed_state, &row.media, &w.epoch],
                )?;
            }
            tx.commit()?;
            Ok(true)
        })?;
        if landed {
            Ok(())
        } else {
            Err(self.fenced(w.epoch))
        }
    }

    /// Items without an outcome that the coordinator restores (`--restore-archived`): no
    /// worker takes them; the coordinator downloads them once they are restored.
    pub fn held_for_restore(&self) -> Result<u64> {
        self.conn.run(|c, job| {
            Ok(c.query_one(
                "SELECT COUNT(*) FROM custos.restores r
                 JOIN custos.items i USING (job_id, conversation_id, recording_id)
                 WHERE r.job_id = $1 AND i.outcome IS NULL",
                &[&job],
            )?
            .get::<_, i64>(0) as u64)
        })
    }

    /// Workers whose lease still runs (none ended, none lapsed).
    pub fn live_workers(&self) -> Result<u64> {
        self.conn.run(|c, job| {
            Ok(c.query_one(
                "SELECT COUNT(*) FROM custos.workers WHERE job_id = $1 AND ended IS NULL AND lease_until > now()",
                &[&job],
            )?
            .get::<_, i64>(0) as u64)
        })
    }

    /// The job's workers, oldest first, with what each holds and ended (`since`: RFC 3339 UTC,
    /// the start of the rate window).
    pub fn workers(&self, since: &str) -> Result<Vec<WorkerRow>> {
        let since = since.to_owned();
        self.conn.run(move |c, job| {
            Ok(c.query(
                &format!(
                    "SELECT w.epoch, w.oauth_client, w.host, w.pid,
                            to_char(w.started_at AT TIME ZONE 'UTC', {UTC}),
                            to_char(w.heartbeat_at AT TIME ZONE 'UTC', {UTC}),
                            w.lease_until > now() AND w.ended IS NULL, w.ended, w.throttled,
                            COUNT(i.seq) FILTER (WHERE i.outcome IS NULL),
                            COUNT(i.seq) FILTER (WHERE i.outcome IS NOT NULL),
                            COUNT(i.seq) FILTER (WHERE i.finished_at >= $2::text::timestamptz)
                         FROM custos.workers w
                         LEFT JOIN custos.items i ON i.job_id = w.job_id AND i.claim_epoch = w.epoch
                         WHERE w.job_id = $1 GROUP BY w.job_id, w.epoch ORDER BY w.epoch"
                ),
                &[&job, &since],
            )?
            .iter()
            .map(|r| WorkerRow {
                epoch: r.get(0),
                oauth_client: r.get(1),
                host: r.get(2),
                pid: r.get(3),
                started_at: r.get(4),
                heartbeat_at: r.get(5),
                live: r.get(6),
                ended: r.get(7),
                throttled: r.get::<_, i64>(8) as u64,
                claimed: r.get::<_, i64>(9) as u64,
                done: r.get::<_, i64>(10) as u64,
                done_since: r.get::<_, i64>(11) as u64,
            })
            .collect())
        })
    }
}

impl LineStore for Shared {
    /// A worker's line is refused once the coordinator closed the job (it may have written the
    /// log out already): a worker ending that late records nothing.
    fn append(&self, draft: &Draft) -> Result<String> {
        let (draft, worker) = (draft.clone(), self.worker);
        let hash = self.conn.run(move |c, job| {
            let mut tx = c.transaction()?;
            if worker.is_some() && !work_open(&mut tx, job)? {
                return Ok(None);
            }
            let hash = append_line(&mut tx, job, &draft)?;
            tx.commit()?;
            Ok(Some(hash))
        })?;
        hash.ok_or_else(|| {
            Error::Fenced(format!(
                "job {}: the coordinator closed the job (every item ended); this worker's line was not recorded",
                self.conn.job
            ))
        })
    }

    fn head(&self) -> Result<String> {
        self.conn.run(|c, job| {
            Ok(c.query_opt(
                "SELECT head FROM custos.custody_head WHERE job_id = $1",
                &[&job],
            )?
            .map_or_else(|| GENESIS.to_owned(), |r| r.get(0)))
        })
    }

    fn write_out(&self, to: &mut dyn std::io::Write) -> Result<()> {
        let mut after = 0i64;
        loop {
            let page: Vec<(i64, String)> = self.conn.run(move |c, job| {
                Ok(c.query(
                    &format!(
                        "SELECT seq, line FROM custos.custody WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT {PAGE}"
                    ),
                    &[&job, &after],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
            })?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            after = *last;
            for (_, line) in page {
                to.write_all(line.as_bytes())
                    .and_then(|()| to.write_all(b"\n"))
                    .map_err(|e| Error::JobState(format!("writing the custody log out: {e}")))?;
            }
        }
    }
}

impl Pg {
    /// The job's shared parts, for the process that coordinates it: the custody chain (no
    /// claims).
    pub(super) fn shared(&self) -> Shared {
        Shared {
            conn: self.conn.clone(),
            worker: None,
        }
    }

    /// Joins distributed `job` as a worker collecting with `oauth_client`: one worker per client
    /// and job (a session advisory lock, which the server drops with the connection), given a
    /// new epoch and a lease of `lease_s` seconds.
    pub(super) fn join(
        target: &PgTarget,
        job: &str,
        oauth_client: &str,
        lease_s: u32,
    ) -> Result<(Pg, Shared)> {
        let pg = Pg::connect(target, job)?;
        let (job_s, client) = (job.to_owned(), oauth_client.to_owned());
        let host = crate::custody::os_identity();
        let joined = pg.conn.call(move |c| {
            // A worker stopped inside a transaction loses it (and its locks) with its lease.
            c.batch_execute(&format!("SET idle_in_transaction_session_timeout = '{lease_s}s'"))?;
            let schema: bool = c
                .query_one("SELECT to_regclass('custos.workers') IS NOT NULL", &[])?
                .get(0);
            if !schema {
                return Ok(Err("holds no custos job state"));
            }
            let open = c
                .query_opt(
                    "SELECT value FROM custos.meta WHERE job_id = $1 AND key = 'work_open'",
                    &[&job_s],
                )?
                .map(|r| r.get::<_, String>(0));
            match open.as_deref() {
                Some("true" | "listing") => {}
                Some(_) => return Ok(Err("holds this job finished: every item has ended and the coordinator seals (or sealed) the bag")),
                None => return Ok(Err("holds no such job open to workers yet: start it with custos export --workers, and start workers once it waits for them (custos job status says so)")),
            }
            let held: bool = c
                .query_one(
                    "SELECT pg_try_advisory_lock(hashtextextended('custos worker ' || $1 || ' ' || $2, 0))",
                    &[&job_s, &client],
                )?
                .get(0);
            if !held {
                return Ok(Err("already has a worker of this job collecting with this OAuth client: one worker per client (each client has its own rate budget); give this one another client"));
            }
            let epoch: i64 = c
                .query_one(
                    "INSERT INTO custos.workers (job_id, epoch, oauth_client, host, pid, lease_until)
                     VALUES ($1, nextval('custos.epochs'), $2, $3, $4, now() + make_interval(secs => $5))
                     RETURNING epoch",
                    &[&job_s, &client, &host, &(std::process::id() as i64), &f64::from(lease_s)],
                )?
                .get(0);
            Ok(Ok(epoch))
        })?;
        match joined {
            Ok(epoch) => {
                let shared = Shared {
                    conn: pg.conn.clone(),
                    worker: Some(WorkerLease { epoch, lease_s }),
                };
                Ok((pg, shared))
            }
            Err(why) => Err(Error::Config(format!(
                "--state {}: job {job}: the database {why}",
                pg.conn.shown
            ))),
        }
    }
}
