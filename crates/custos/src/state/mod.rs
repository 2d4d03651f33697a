//! Durable job state, so that re-running an interrupted export continues it.
//!
//! What it holds: the sealed query and manifest hashes, and per manifest item its outcome and
//! file facts. The files themselves are written before their outcome is recorded, so after a
//! crash an item is either recorded with its final file in place, or not recorded and retried.
//!
//! One interface ([`JobStore`]), two places: by default one SQLite file,
//! `<out>/.custos/state.sqlite`, outside the bag's payload; with `--state postgres://…`, a job
//! in a PostgreSQL database (docs/scale.md), which `<out>/.custos/job.json` names.

use std::path::Path;

use crate::error::{Error, Result};
use crate::model::{Item, Outcome};

mod postgres;
mod sqlite;

pub use postgres::{Claimed, ListedRow, Shared, WorkerLease, WorkerRow};

/// What is known about one finished item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Done {
    /// Outcome.
    pub outcome: Outcome,
    /// Why (for everything but Exported), or a note.
    pub reason: String,
    /// Path under the bag root, if a file was kept.
    pub file: Option<String>,
    /// SHA-256 of the file.
    pub sha256: Option<String>,
    /// MD5 of the file, from the download's one pass (evidence files only).
    pub md5: Option<String>,
    /// SHA-1 of the file, from the same pass.
    pub sha1: Option<String>,
    /// Bytes of the file.
    pub bytes: Option<u64>,
    /// Content-Type it was served with.
    pub content_type: Option<String>,
    /// When it was downloaded (RFC 3339, UTC, `Z`).
    pub downloaded_at: Option<String>,
    /// The file's playable duration as read from its container (crate::media), ms.
    pub media_ms: Option<u64>,
    /// The playable duration the API stated for the recording, ms.
    pub stated_ms: Option<u64>,
    /// Where `stated_ms` came from (`outputDurationMs`, `endTime − startTime − 1 pause …`), or
    /// why there is none.
    pub stated_source: Option<String>,
}

/// A restore of an archived recording (`--restore-archived`), as far as it got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreRow {
    /// The manifest item.
    pub item: Item,
    /// The archive date asked for: the recording is archived again then.
    pub archive_date: String,
    /// When the request was accepted (none: about to be sent, or a crash came in between).
    pub requested_at: Option<String>,
    /// When the recording was first seen RESTORED.
    pub restored_at: Option<String>,
}

/// Whether a kept file's duration was compared with the one the API stated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DurationCheck {
    /// Compared (and within the tolerance, or the item is Corrupted for it).
    Checked,
    /// Not compared: why.
    NotChecked(String),
}

impl Done {
    /// An outcome without a file.
    pub fn no_file(outcome: Outcome, reason: impl Into<String>) -> Done {
        Done {
            outcome,
            reason: reason.into(),
            file: None,
            sha256: None,
            md5: None,
            sha1: None,
            bytes: None,
            content_type: None,
            downloaded_at: None,
            media_ms: None,
            stated_ms: None,
            stated_source: None,
        }
    }

    /// For an item that kept a file, whether its duration was compared with the stated one;
    /// `None` for an item without a file, or whose recording has no playing time.
    pub fn duration_check(&self) -> Option<DurationCheck> {
        self.file.as_ref()?;
        if self.media_ms.is_none()
            && self
                .stated_source
                .as_deref()
                .is_some_and(|s| s.ends_with(NO_PLAYING_TIME))
        {
            return None; // an email, a chat, a messaging thread: no duration to compare
        }
        Some(match (self.media_ms, self.stated_ms) {
            (Some(_), Some(_)) => DurationCheck::Checked,
            (None, _) => {
                DurationCheck::NotChecked("the file could not be read as audio or video".into())
            }
            (Some(_), None) => DurationCheck::NotChecked(
                self.stated_source
                    .clone()
                    .unwrap_or_else(|| "the API stated no duration".into()),
            ),
        })
    }
}

/// How a recording without a playing time (chat, email, messaging) ends its
/// `Stated_Duration_Source`: its duration check does not apply (`Duration_Checked` empty, not
/// counted among the files whose duration could be checked).
pub const NO_PLAYING_TIME: &str = "has no playing time";

/// What the job database records about the export, besides its items (the names are those
/// of its `meta` table, kept as they are so an older job database resumes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// The export's UUID.
    ExportId,
    /// The selection's canonical form (a re-run with another is refused).
    QueryCanonical,
    /// What the custody record's Query_String_Used holds.
    QueryUsed,
    /// SHA-256 of data/query.json, once written and sealed.
    QuerySha256,
    /// SHA-256 of data/manifest.csv, once sealed.
    ManifestSha256,
    /// The custody log's last line's SHA-256, when the package was sealed.
    CustodyLogHead,
    /// Set once the directory's names for the manifest's ids are recorded.
    DirectoryRecorded,
    /// `true` once every manifest conversation is under deletion protection (`--protect`).
    Protected,
    /// `true` once every restore `--restore-archived` needs has been asked for.
    RestoresRequested,
    /// Recordings listed but left out because an earlier bag of the chain exported them.
    ChainExcluded,
    /// `true` once the orphan recordings are listed (`--orphans`).
    OrphansListed,
    /// `true` once annotations and transcripts are collected.
    TranscriptsCollected,
    /// `true` once the package is sealed.
    Complete,
    /// Source and API host of a job database from before settings were recorded.
    Origin,
    /// Who and where, as the last run identified them (JSON: organization, OAuth client,
    /// host, binary, clock offset).
    Identity,
    /// What the analytics data lake said of each job's interval (JSON list of
    /// `source::DataAvailability`).
    AnalyticsAvailability,
    /// `true` once the job is open to workers (`custos export --workers`): its items are
    /// claimed by `custos worker` processes, and its custody log is chained in the database.
    Distributed,
    /// `true` while workers may join and claim (the manifest is sealed and the coordinator
    /// waits); `closed` once the coordinator has seen every item end and every worker stop.
    WorkOpen,
    /// The recording bulk job's request (`--bulk-export`), recorded before it is sent, so that
    /// a run killed before the job's id was recorded finds that job, not a second one.
    BulkRequest,
    /// The recording bulk job's id, recorded before it is executed.
    BulkJob,
    /// `true` once every manifest conversation's folder of the archive has been reconciled
    /// with the manifest (`--archive`): what no item read is named in the custody log.
    ArchiveReconciled,
    /// A setting that shapes the package, by its flag name (`--api-base`, …).
    Setting(&'static str),
}

impl Key {
    /// The key in the `meta` table.
    pub fn name(self) -> std::borrow::Cow<'static, str> {
        match self {
            Key::ExportId => "export_id".into(),
            Key::QueryCanonical => "query_canonical".into(),
            Key::QueryUsed => "query_used".into(),
            Key::QuerySha256 => "query_sha256".into(),
            Key::ManifestSha256 => "manifest_sha256".into(),
            Key::CustodyLogHead => "custody_log_head".into(),
            Key::DirectoryRecorded => "directory_recorded".into(),
            Key::Protected => "protected".into(),
            Key::RestoresRequested => "restores_requested".into(),
            Key::ChainExcluded => "chain_excluded".into(),
            Key::OrphansListed => "orphans_listed".into(),
            Key::TranscriptsCollected => "transcripts_collected".into(),
            Key::Complete => "complete".into(),
            Key::Origin => "origin".into(),
            Key::Identity => "identity".into(),
            Key::AnalyticsAvailability => "analytics_availability".into(),
            Key::Distributed => "distributed".into(),
            Key::WorkOpen => "work_open".into(),
            Key::BulkRequest => "bulk_request".into(),
            Key::BulkJob => "bulk_job".into(),
            Key::ArchiveReconciled => "archive_reconciled".into(),
            Key::Setting(flag) => format!("setting {flag}").into(),
        }
    }
}

/// What a job's state records and answers, wherever it is kept. Every write is durable before
/// it returns.
pub trait JobStore: Send + Sync {
    /// A recorded value.
    fn get(&self, key: Key) -> Result<Option<String>>;
    /// Records a value.
    fn set(&self, key: Key, value: &str) -> Result<()>;
    /// Stores the sealed manifest (its items in order, read one at a time: a manifest of a
    /// million items is never held in memory whole) and marks it sealed, in one transaction.
    /// An item that cannot be read stops it, and nothing is stored. [`State::seal_manifest`]
    /// takes a slice too.
    fn seal_manifest(
        &self,
        items: &mut dyn Iterator<Item = Result<Item>>,
        manifest_sha256: &str,
    ) -> Result<()>;
    /// Records an item's outcome.
    fn finish(&self, item: &Item, done: &Done) -> Result<()>;
    /// Every manifest item in order with its outcome, if it has one, one at a time (an export
    /// of 100,000 recordings is never held in memory whole). [`State::for_each`] takes a closure.
    fn for_each(&self, f: &mut dyn FnMut(Item, Option<Done>) -> Result<()>) -> Result<()>;
    /// Records conversations as protected at `at` (those already recorded keep their time).
    fn protected(&self, conversation_ids: &[String], at: &str) -> Result<()>;
    /// The conversations recorded as protected, with when, sorted by id (bytewise).
    fn protected_set(&self) -> Result<Vec<(String, String)>>;
    /// Records that a restore of `item` until `archive_date` is about to be asked for (the
    /// intent is durable before the request is sent, so a crash in between is noticed).
    fn restore_intent(&self, item: &Item, archive_date: &str) -> Result<()>;
    /// Records that the restore of `item` was asked for (and accepted) at `at`.
    fn restore_requested(&self, item: &Item, at: &str) -> Result<()>;
    /// Records that `item` was seen RESTORED at `at`.
    fn restore_done(&self, item: &Item, at: &str) -> Result<()>;
    /// Every restore recorded, in manifest order.
    fn restores(&self) -> Result<Vec<RestoreRow>>;
    /// The restores asked for and not yet seen RESTORED, of items without an outcome.
    fn restores_pending(&self) -> Result<Vec<RestoreRow>>;
    /// The restore recorded for `item`, if any.
    fn restore_of(&self, item: &Item) -> Result<Option<RestoreRow>>;
    /// Which of `conversation_ids` have a manifest item (asked a batch at a time, so that no
    /// caller holds every conversation of a job).
    fn conversations_with_items(
        &self,
        conversation_ids: &[String],
    ) -> Result<std::collections::BTreeSet<String>>;
    /// The SHA-256 and size recorded for a kept file (path under the bag root).
    /// (A value that is not a SHA-256 is no known hash: the file is hashed again.)
    fn file_hash(&self, file: &str) -> Result<Option<(crate::digest::Sha256, u64)>>;
    /// Up to `limit` manifest items without an outcome, after sequence number `after` (0: from
    /// the start), in manifest order, each with its sequence number: the work left, read a page
    /// at a time so that no run holds it whole.
    fn unfinished(&self, after: u64, limit: u64) -> Result<Vec<(u64, Item)>>;
    /// How far the job is: its items, their outcomes, the files downloaded at or after
    /// `since` (RFC 3339 UTC), and the process working it, if the store knows one.
    fn progress(&self, since: &str) -> Result<JobProgress>;
}

/// How far a job is ([`JobStore::progress`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobProgress {
    /// Items of the sealed manifest (0 before it is sealed).
    pub items: u64,
    /// Finished items per outcome.
    pub outcomes: std::collections::BTreeMap<String, u64>,
    /// When the last file was downloaded.
    pub last_download: Option<String>,
    /// Files downloaded at or after the time asked about.
    pub downloads_since: u64,
    /// The process working the job, as the database sees it (PostgreSQL: its application name,
    /// address and when it connected); `None` when none is, or the store cannot tell.
    pub worked_by: Option<String>,
}

/// Where an export keeps its job state (`--state`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StateLocation {
    /// `<out>/.custos/state.sqlite` (the default).
    #[default]
    Local,
    /// A job in a PostgreSQL database.
    Postgres(PgTarget),
}

/// A PostgreSQL database for job state: its URL, which holds no password; the password, which
/// comes from the environment or a file and is never shown; and the CA the server's TLS
/// certificate is checked against, if not the system's.
#[derive(Clone, PartialEq, Eq)]
pub struct PgTarget {
    url: String,
    password: Option<String>,
    tls: bool,
    ca: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "(set)"))
            .field("tls", &self.tls)
            .field("ca", &self.ca)
            .finish()
    }
}

/// Whether a PostgreSQL host is this machine: a Unix socket, `localhost`, or a loopback address.
fn local_host(h: &::postgres::config::Host) -> bool {
    match h {
        ::postgres::config::Host::Unix(_) => true,
        ::postgres::config::Host::Tcp(name) => crate::http::is_loopback_host(name),
    }
}

impl PgTarget {
    /// A database URL (`postgres://user@host:port/database[?sslmode=require]`), its password,
    /// and the CA file (PEM) its certificate is checked against (`--state-ca`; none: the
    /// system's roots). Refused: a URL that holds a password (it would stay in shell history,
    /// process lists and the job link), and a connection off this machine without
    /// `sslmode=require` (the job state and the password would cross the network in clear).
    /// With `sslmode=require` the server's certificate and name are always verified.
    pub fn new(
        url: &str,
        password: Option<String>,
        ca: Option<std::path::PathBuf>,
    ) -> Result<PgTarget> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::Config(format!(
                "--state {}: give a PostgreSQL URL, postgres://USER@HOST:PORT/DATABASE (without --state, the job state is the SQLite file in the export directory)",
                crate::shown::text(url)
            )));
        }
        let config: ::postgres::Config = url.parse().map_err(|e| {
            Error::Config(format!(
                "--state: not a PostgreSQL connection URL ({e}); use postgres://USER@HOST:PORT/DATABASE"
            ))
        })?;
        if config.get_password().is_some() {
            return Err(Error::Config(
                "--state: the URL holds a password; take it out, and give it in PGPASSWORD or --state-password-file (a URL stays in shell history and process lists)".into(),
            ));
        }
        let tls = config.get_ssl_mode() == ::postgres::config::SslMode::Require;
        if !tls && !config.get_hosts().iter().all(local_host) {
            return Err(Error::Config(format!(
                "--state {}: this database is on another machine, and the job state and its password would cross the network unencrypted; add ?sslmode=require (the server's certificate is then verified, against --state-ca FILE or the system's roots)",
                crate::shown::text(url)
            )));
        }
        if ca.is_some() && !tls {
            return Err(Error::Config(
                "--state-ca goes with a --state URL that asks for TLS (?sslmode=require)".into(),
            ));
        }
        Ok(PgTarget {
            url: url.to_owned(),
            password,
            tls,
            ca,
        })
    }

    /// The URL, without a password.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// The job state of one export.
pub struct State {
    store: Box<dyn JobStore>,
    place: String,
    /// Who held the export directory's run lock when the state was opened to look at.
    holder: Option<String>,
    /// A PostgreSQL job's shared parts (the custody chain; a worker's claims and lease).
    shared: Option<Shared>,
}

impl std::ops::Deref for State {
    type Target = dyn JobStore;
    fn deref(&self) -> &Self::Target {
        self.store.as_ref()
    }
}

/// Names the PostgreSQL job of an export directory: `<out>/.custos/job.json`.
pub const JOB_LINK: &str = "job.json";
/// The SQLite job state of an export directory, under `<out>/.custos/`.
pub const STATE_FILE: &str = "state.sqlite";

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JobLink {
    /// Always `postgresql`.
    state: String,
    /// The job's id in the database.
    job: String,
    /// The database's URL when the job was made (no password).
    database: String,
}

/// An export directory's job state, as found before anything is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Existing {
    /// None yet: a new export.
    None,
    /// `.custos/state.sqlite`.
    Local,
    /// A job in PostgreSQL, named by `.custos/job.json`.
    Postgres {
        /// The job's id.
        job: String,
        /// The database it was made in.
        database: String,
    },
}

impl Existing {
    /// What `root` holds.
    pub fn of(root: &Path) -> Result<Existing> {
        let dir = root.join(".custos");
        let state = dir.join(STATE_FILE);
        if let Ok(meta) = std::fs::symlink_metadata(&state) {
            // Never opened if it is not a plain file: a FIFO would block the open, a link
            // would send the job's writes elsewhere.
            if !meta.file_type().is_file() {
                return Err(Error::OutputDir {
                    path: state,
                    message: "is not a regular file; it should be this export's job state".into(),
                });
            }
            return Ok(Existing::Local);
        }
        let link = dir.join(JOB_LINK);
        if std::fs::symlink_metadata(&link).is_err() {
            return Ok(Existing::None);
        }
        let bad = |why: String| Error::OutputDir {
            path: link.clone(),
            message: format!("{why}; it names this export's job in PostgreSQL"),
        };
        let meta = std::fs::symlink_metadata(&link).map_err(|e| Error::io(&link, e))?;
        if !meta.file_type().is_file() || meta.len() > 4096 {
            return Err(bad("is not a small regular file".into()));
        }
        let text = std::fs::read(&link).map_err(|e| Error::io(&link, e))?;
        let l: JobLink =
            serde_json::from_slice(&text).map_err(|e| bad(format!("unreadable ({e})")))?;
        if l.state != "postgresql" || !crate::model::safe_id(&l.job) {
            return Err(bad("is not a job link custos wrote".into()));
        }
        Ok(Existing::Postgres {
            job: l.job,
            database: l.database,
        })
    }

    /// Refuses a `--state` that is not where this export's state already is: a job's state
    /// does not move mid-way.
    pub fn check(&self, root: &Path, location: &StateLocation) -> Result<()> {
        let refuse = |message: String| {
            Err(Error::OutputDir {
                path: root.to_owned(),
                message,
            })
        };
        match (self, location) {
            (Existing::Postgres { job, database }, StateLocation::Local) => refuse(format!(
                "keeps its job state in PostgreSQL ({}, job {job}); resume with --state {}",
                crate::shown::text(database),
                crate::shown::text(database)
            )),
            (Existing::Local, StateLocation::Postgres(_)) => refuse(format!(
                "keeps its job state in .custos/{STATE_FILE}; resume without --state (a job's state does not move mid-way)"
            )),
            _ => Ok(()),
        }
    }
}

/// The process holding the run lock `path` (an export directory's `.custos/lock`), as the
/// kernel's lock table says (Linux `/proc/locks`, matched by the file's inode), with the pid and
/// account the lock file names; `None` when nobody holds it, or it cannot be told. Looking
/// never takes the lock, so it never stands in a run's way.
fn lock_holder(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.file_type().is_file() {
        return None; // a FIFO or a link is no lock custos took: never opened
    }
    let ino = meta.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let held = locks.lines().any(|l| {
        l.split_whitespace()
            .nth(5)
            .and_then(|dev_ino| dev_ino.rsplit(':').next())
            .and_then(|i| i.parse::<u64>().ok())
            == Some(ino)
    });
    if !held {
        return None;
    }
    let named = read_small(path, 256).unwrap_or_default();
    let named: String = named.trim().chars().take(200).collect();
    Some(format!("custos {named} (holds .custos/lock)"))
}

/// At most `cap` bytes of a regular file, as text (lossy).
fn read_small(path: &Path, cap: u64) -> Option<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(cap)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

impl State {
    /// Opens (creating if needed) a SQLite job state at `path`.
    pub fn open(path: &Path) -> Result<State> {
        Ok(State {
            store: Box::new(sqlite::Sqlite::open(path)?),
            place: format!("sqlite {}", path.display()),
            holder: None,
            shared: None,
        })
    }

    /// Opens the job state of the export in `root`, where `location` says (checked against
    /// `existing` with [`Existing::check`] first): a new PostgreSQL job is made and named in
    /// `.custos/job.json`; an existing one is taken (one process at a time).
    pub fn open_export(
        root: &Path,
        location: &StateLocation,
        existing: &Existing,
    ) -> Result<State> {
        existing.check(root, location)?;
        let dir = root.join(".custos");
        match (location, existing) {
            (StateLocation::Local, _) => Ok(State {
                place: format!("sqlite .custos/{STATE_FILE}"),
                ..State::open(&dir.join(STATE_FILE))?
            }),
            (StateLocation::Postgres(t), Existing::Postgres { job, .. }) => {
                let pg = postgres::Pg::open(t, job, None)?;
                Ok(State {
                    shared: Some(pg.shared()),
                    store: Box::new(pg),
                    place: format!("postgresql {} job {job}", t.url()),
                    holder: None,
                })
            }
            (StateLocation::Postgres(t), _) => {
                let job = uuid::Uuid::new_v4().to_string();
                let out = std::path::absolute(root).unwrap_or_else(|_| root.to_owned());
                let store = postgres::Pg::open(t, &job, Some(&out.display().to_string()))?;
                let link = JobLink {
                    state: "postgresql".into(),
                    job: job.clone(),
                    database: t.url().to_owned(),
                };
                crate::durable::write_durably(
                    &dir.join(JOB_LINK),
                    &serde_json::to_vec_pretty(&link).expect("a job link serializes"),
                )?;
                Ok(State {
                    shared: Some(store.shared()),
                    store: Box::new(store),
                    place: format!("postgresql {} job {job}", t.url()),
                    holder: None,
                })
            }
        }
    }

    /// Joins the distributed job of the export in `root` (a directory every worker shares) as
    /// a worker collecting with `oauth_client`, with a lease of `lease_s` seconds
    /// ([`Shared::claim`], [`Shared::heartbeat`]). The job is where `location` says; the
    /// directory's job link only has to agree with it.
    pub fn join(
        root: &Path,
        location: &StateLocation,
        oauth_client: &str,
        lease_s: u32,
    ) -> Result<State> {
        let existing = Existing::of(root)?;
        existing.check(root, location)?;
        let (StateLocation::Postgres(t), Existing::Postgres { job, .. }) = (location, &existing)
        else {
            return Err(Error::Config(format!(
                "{}: holds no distributed custos export (a worker joins a job kept in PostgreSQL: custos export --workers --state postgres://…)",
                root.display()
            )));
        };
        let (pg, shared) = postgres::Pg::join(t, job, oauth_client, lease_s)?;
        Ok(State {
            store: Box::new(pg),
            place: format!("postgresql {} job {job}", t.url()),
            holder: None,
            shared: Some(shared),
        })
    }

    /// A PostgreSQL job's shared parts: the custody chain kept in the database and, for a
    /// worker, its claims and lease. `None` for a SQLite job.
    pub fn shared(&self) -> Option<&Shared> {
        self.shared.as_ref()
    }

    /// Opens the job state of the export in `root` to look at it, while another process may be
    /// working it: nothing is created, locked or written (SQLite read-only; PostgreSQL without
    /// the job's lock).
    pub fn look(root: &Path, location: &StateLocation) -> Result<State> {
        let existing = Existing::of(root)?;
        existing.check(root, location)?;
        let dir = root.join(".custos");
        match (location, &existing) {
            (_, Existing::None) => Err(Error::OutputDir {
                path: root.to_owned(),
                message: "holds no custos export (no job state)".into(),
            }),
            (StateLocation::Local, _) => Ok(State {
                store: Box::new(sqlite::Sqlite::open_read_only(&dir.join(STATE_FILE))?),
                place: format!("sqlite .custos/{STATE_FILE}"),
                holder: lock_holder(&dir.join("lock")),
                shared: None,
            }),
            (StateLocation::Postgres(t), Existing::Postgres { job, .. }) => {
                let pg = postgres::Pg::look(t, job)?;
                Ok(State {
                    shared: Some(pg.shared()),
                    store: Box::new(pg),
                    place: format!("postgresql {} job {job}", t.url()),
                    holder: None,
                })
            }
            (StateLocation::Postgres(_), Existing::Local) => {
                unreachable!("Existing::check refuses it")
            }
        }
    }

    /// Where this state is kept, for the custody log: `sqlite PATH` or
    /// `postgresql URL job ID` (never a password).
    pub fn place(&self) -> &str {
        &self.place
    }

    /// How far the job is ([`JobStore::progress`]); for a SQLite job, the process holding the
    /// export directory's run lock when it was opened to look at.
    pub fn progress(&self, since: &str) -> Result<JobProgress> {
        let mut p = self.store.progress(since)?;
        if p.worked_by.is_none() {
            p.worked_by = self.holder.clone();
        }
        Ok(p)
    }

    /// Every manifest item in order with its outcome, if it has one, one at a time.
    pub fn for_each(&self, mut f: impl FnMut(Item, Option<Done>) -> Result<()>) -> Result<()> {
        self.store.for_each(&mut f)
    }

    /// [`JobStore::seal_manifest`] of the items in order: a listing's rows as they are read
    /// (`Result<Item>`), or a slice's.
    pub fn seal_manifest<I>(&self, items: I, manifest_sha256: &str) -> Result<()>
    where
        I: IntoIterator,
        I::Item: ManifestRow,
    {
        let mut items = items.into_iter().map(ManifestRow::row);
        self.store.seal_manifest(&mut items, manifest_sha256)
    }
}

/// An item of a manifest being sealed ([`State::seal_manifest`]).
pub trait ManifestRow {
    /// The item, or why it could not be read.
    fn row(self) -> Result<Item>;
}

impl ManifestRow for Result<Item> {
    fn row(self) -> Result<Item> {
        self
    }
}

impl ManifestRow for &Item {
    fn row(self) -> Result<Item> {
        Ok(self.clone())
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_and_outcomes_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("custos-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.sqlite");
        let items = vec![
            Item {
                conversation_id: "c1".into(),
                recording_id: "r1".into(),
                listed_state: "AVAILABLE".into(),
            },
            Item {
                conversation_id: "c1".into(),
                recording_id: "r2".into(),
                listed_state: "DELETED".into(),
            },
        ];
        {
            let s = State::open(&path).unwrap();
            s.set(Key::QuerySha256, "abc").unwrap();
            s.seal_manifest(&items, "def").unwrap();
            let done = Done::no_file(Outcome::Purged, "fileState DELETED");
            s.finish(&items[1], &done).unwrap();
        }
        let s = State::open(&path).unwrap();
        assert_eq!(s.get(Key::QuerySha256).unwrap().as_deref(), Some("abc"));
        assert_eq!(s.get(Key::ManifestSha256).unwrap().as_deref(), Some("def"));
        let mut rows = Vec::new();
        s.for_each(|it, d| {
            rows.push((it, d.map(|d| d.outcome)));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            rows,
            vec![
                (items[0].clone(), None),
                (items[1].clone(), Some(Outcome::Purged))
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
