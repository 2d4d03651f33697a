//! One export, stage by stage: query → sealed manifest → retrieval → package. Each stage writes
//! its artefact (docs/formats.md) and records itself in the job state, so a re-run after a
//! crash continues where it stopped and a re-run of a finished export changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::custody::{CustodyLog, csv_cell};
use crate::error::{Error, Result};
use crate::fetch::{sync_dir, write_durably, write_sealed};
use crate::http::{Api, Credentials};
use crate::ids::IdList;
use crate::model::{Item, Outcome, safe_id};
use crate::package::{sha256_file, write_bag};
use crate::query::{Query, format_ms};
use crate::source::{
    NOT_FOUND, genesys_conversations, genesys_recordings, search_by_ids, search_recordings,
    url_path,
};
use crate::state::{Done, DurationCheck, State};

/// Which API to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// The real Genesys Cloud Platform API.
    Genesys,
    /// The design guide's search API.
    Search,
}

impl SourceKind {
    /// The name used in files and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Genesys => "genesys",
            SourceKind::Search => "search",
        }
    }
}

/// How genesys media is fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Retrieval {
    /// Batch download requests (≤100 items), original codec.
    Batch,
    /// One transcode per recording in this `formatId`.
    Transcode(String),
}

/// Everything an export needs. Build it, then call [`export`].
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// The query, as the user wrote it (or `None` with `ids_file`).
    pub query: Option<String>,
    /// A file of ids to export instead of a query (crate::ids).
    pub ids_file: Option<PathBuf>,
    /// The export directory (the bag's root).
    pub out: PathBuf,
    /// Matter id (External-Identifier).
    pub matter: Option<String>,
    /// Source-Organization for bag-info.
    pub source_organization: Option<String>,
    /// Which API.
    pub source: SourceKind,
    /// e.g. `https://api.mypurecloud.ie`.
    pub api_base: String,
    /// e.g. `https://login.mypurecloud.ie`.
    pub login_base: String,
    /// OAuth client credentials.
    pub credentials: Credentials,
    /// API requests per minute, shared by every task.
    pub rate_per_minute: u32,
    /// Parallel downloads (and parallel listing calls).
    pub concurrency: usize,
    /// Genesys retrieval mode.
    pub retrieval: Retrieval,
    /// The human running the export, e.g. `Jane Doe <jane@firm.example>`.
    pub operator: Option<String>,
    /// A minisign secret key: sign the bag's tag manifest with it.
    pub sign_key: Option<PathBuf>,
    /// Page size for discovery.
    pub page_size: u32,
    /// "Now" for the analytics 35-day rule; `None` = the clock.
    pub now: Option<OffsetDateTime>,
    /// How far a file's duration may differ from the API's before it is `Corrupted`.
    pub duration_tolerance: std::time::Duration,
    /// How long one batch job or one transcode is waited for before its items end `Failed`
    /// ([`JOB_DEADLINE`]; tests shorten it).
    pub job_deadline: std::time::Duration,
}

/// Genesys keeps a transcode or batch job's results for 30 minutes; waiting longer is pointless.
pub const JOB_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Stages, for progress reporting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Recording the query.
    Query,
    /// Finding and sealing the work list.
    Manifest,
    /// Downloading.
    Retrieval,
    /// Writing the custody record and the bag.
    Package,
}

/// Progress callbacks (the CLI draws bars; the library never prints).
pub trait Progress: Send + Sync {
    /// A stage starts.
    fn stage(&self, _stage: Stage, _detail: &str) {}
    /// Items in the manifest (those finished in an earlier run are then reported through `item`).
    fn total(&self, _items: u64) {}
    /// One item ended.
    fn item(&self, _outcome: Outcome, _bytes: u64) {}
}

/// Reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// What an export came to.
#[derive(Clone, Debug)]
pub struct Report {
    /// The export directory.
    pub out: PathBuf,
    /// Items per outcome (every outcome present, zeros included).
    pub counts: BTreeMap<Outcome, u64>,
    /// Manifest items.
    pub items: u64,
    /// Bytes exported.
    pub bytes: u64,
    /// SHA-256 of `data/query.json`.
    pub query_sha256: String,
    /// SHA-256 of `data/manifest.csv`.
    pub manifest_sha256: String,
    /// This run continued an interrupted export.
    pub resumed: bool,
    /// The export was already complete: nothing was done.
    pub already_complete: bool,
    /// API requests this run sent.
    pub api_calls: u64,
    /// SHA-256 of the custody log's last line.
    pub custody_log_head: String,
    /// Time every task spent paused because the server said so (429 Retry-After, exhausted
    /// rate windows): long waits are honoured, and reported here rather than hidden.
    pub rate_limit_wait: Duration,
    /// The detached signature, when the bag was signed.
    pub signature: Option<PathBuf>,
    /// Wall time of this run.
    pub elapsed: Duration,
    /// Kept files whose duration was compared with the API's, and why the others were not.
    pub duration: DurationCoverage,
}

const TOOL: &str = "custos";
const VERSION: &str = env!("CARGO_PKG_VERSION");
const COMMIT: &str = env!("CUSTOS_GIT_COMMIT");

/// `{name, version, commit}` of this build, as the custody log records it.
pub fn tool() -> serde_json::Value {
    json!({"name": TOOL, "version": VERSION, "commit": COMMIT})
}

/// `user@host` of the account the process runs as (its real uid, named from the password
/// database; never `$USER`, which anyone can set).
pub fn os_identity() -> String {
    let user = account()
        .or_else(env_user)
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{host}")
}

/// `$USER` (or `$LOGNAME`), when it names someone other than the account: recorded beside it.
pub fn env_user_if_different() -> Option<String> {
    let env = env_user()?;
    (account().as_deref() != Some(env.as_str())).then_some(env)
}

fn env_user() -> Option<String> {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
}

/// The name of the process's real uid (Linux: /proc/self/status and /etc/passwd), or
/// `uid N` when the database does not name it.
fn account() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_owned();
    let name = std::fs::read_to_string("/etc/passwd").ok().and_then(|p| {
        p.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid).then(|| f[0].to_owned())
        })
    });
    Some(name.unwrap_or_else(|| format!("uid {uid}")))
}

/// What selects the recordings: a query, or a list of ids.
enum Input {
    Query(Query),
    Ids(IdList),
}

impl Input {
    fn canonical(&self) -> String {
        match self {
            Input::Query(q) => q.canonical(),
            Input::Ids(l) => l.canonical(),
        }
    }

    /// What the custody record's Query_String_Used holds.
    fn used(&self) -> String {
        match self {
            Input::Query(q) => q.text().to_owned(),
            Input::Ids(l) => format!("ids-file:{} sha256:{}", l.file.display(), l.file_sha256),
        }
    }
}

/// What every stage works with.
pub(crate) struct Ctx<'a> {
    pub(crate) cfg: &'a ExportConfig,
    pub(crate) api: Api,
    pub(crate) state: State,
    pub(crate) root: PathBuf,
    pub(crate) progress: &'a dyn Progress,
    /// Media downloads at a time (`concurrency`): their own cap, apart from the API budget.
    pub(crate) downloads: tokio::sync::Semaphore,
    /// Opened once we know the export is not already sealed (appending to a sealed bag's log
    /// would break it).
    log: &'a std::sync::OnceLock<Arc<CustodyLog>>,
}

impl Ctx<'_> {
    /// Appends an event to the custody log.
    pub(crate) fn log(&self, event: &str, fields: Value) -> Result<String> {
        self.log
            .get()
            .expect("custody log is open during the stages")
            .append(event, fields)
    }
}

/// Runs (or resumes) an export. Invalid input is refused before anything is written.
pub async fn export(cfg: &ExportConfig, progress: &dyn Progress) -> Result<Report> {
    export_until(cfg, progress, std::future::pending()).await
}

/// [`export`], stopped cleanly when `stop` completes (the CLI passes SIGINT/SIGTERM): no new
/// work is taken, work in flight is cut (a partial download never carries a final name, and
/// every outcome already recorded stays), the stop is recorded in the custody log with what
/// `stop` returned, and the result is [`Error::Stopped`]. Re-running resumes, as after a kill.
pub async fn export_until(
    cfg: &ExportConfig,
    progress: &dyn Progress,
    stop: impl std::future::Future<Output = String>,
) -> Result<Report> {
    let log = std::sync::OnceLock::new();
    tokio::select! {
        r = run(cfg, progress, &log) => r,
        why = stop => {
            if let Some(l) = log.get() {
                l.append("export-stopped", json!({"by": why, "note": "work in flight was cut; re-run the same command to resume"}))?;
            }
            Err(Error::Stopped(why))
        }
    }
}

/// Every setting that shapes the package, as recorded at the start and compared on resume:
/// (name as the user gives it, value).
fn settings(
    cfg: &ExportConfig,
    sign_key: Option<&minisign::SecretKey>,
) -> Vec<(&'static str, String)> {
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    vec![
        ("--source", cfg.source.as_str().into()),
        // As the client uses them: a trailing '/' is no other API.
        ("--api-base", cfg.api_base.trim_end_matches('/').to_owned()),
        (
            "--login-base",
            cfg.login_base.trim_end_matches('/').to_owned(),
        ),
        (
            "--retrieval",
            match cfg.retrieval {
                Retrieval::Batch => "batch".into(),
                Retrieval::Transcode(_) => "transcode".into(),
            },
        ),
        (
            "--format",
            match &cfg.retrieval {
                Retrieval::Batch => "(original codec)".into(),
                Retrieval::Transcode(f) => f.clone(),
            },
        ),
        ("--matter", or_none(&cfg.matter)),
        ("--operator", or_none(&cfg.operator)),
        ("--source-organization", or_none(&cfg.source_organization)),
        (
            "--duration-tolerance",
            format!("{}", cfg.duration_tolerance.as_secs_f64()),
        ),
        ("page size", cfg.page_size.to_string()),
        (
            "--sign-key",
            sign_key
                .map(|k| format!("key id {}", hex::encode_upper(k.keynum())))
                .unwrap_or_else(|| "(unsigned)".into()),
        ),
    ]
}

/// Takes the export directory for this run: an OS lock on `.custos/lock`, held until the run
/// ends (also by a crash: the OS releases it). A second run is refused at once, naming the pid.
fn lock(root: &Path) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = root.join(".custos").join("lock");
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(crate::fetch::WORKING_MODE);
    }
    let mut f = o.open(&path).map_err(|e| Error::io(&path, e))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            let holder = holder
                .split_whitespace()
                .next()
                .unwrap_or("unknown")
                .chars()
                .take(20)
                .collect();
            return Err(Error::Busy {
                path: root.to_path_buf(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
    }
    let me = format!("{} {}\n", std::process::id(), os_identity());
    f.set_len(0)
        .and_then(|_| f.rewind())
        .and_then(|_| f.write_all(me.as_bytes()))
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(&path, e))?;
    Ok(f)
}

/// The output directory must be a directory (or not exist yet), and not a dangling link.
fn check_out(root: &Path) -> Result<()> {
    let bad = |message: &str| Error::OutputDir {
        path: root.to_path_buf(),
        message: message.into(),
    };
    match std::fs::symlink_metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(root, e)),
        Ok(m) if m.is_dir() => Ok(()),
        Ok(m) if m.file_type().is_symlink() => match std::fs::metadata(root) {
            Ok(t) if t.is_dir() => Ok(()),
            Ok(_) => Err(bad(
                "is a link to something that is not a directory; give a directory",
            )),
            Err(_) => Err(bad(
                "is a link to nothing (a dangling symlink); give a directory",
            )),
        },
        Ok(_) => Err(bad(
            "is a file, not a directory; give a directory for the export",
        )),
    }
}

async fn run(
    cfg: &ExportConfig,
    progress: &dyn Progress,
    log_cell: &std::sync::OnceLock<Arc<CustodyLog>>,
) -> Result<Report> {
    let started = std::time::Instant::now();
    let input = match (&cfg.query, &cfg.ids_file) {
        (Some(q), None) => Input::Query(Query::parse(q)?),
        (None, Some(f)) => Input::Ids(IdList::read(f, cfg.source == SourceKind::Genesys)?),
        _ => {
            return Err(Error::Config(
                "give exactly one of --query and --ids".into(),
            ));
        }
    };
    if !(1..=MAX_CONCURRENCY).contains(&cfg.concurrency) {
        return Err(Error::Config(format!(
            "--concurrency must be between 1 and {MAX_CONCURRENCY}"
        )));
    }
    if !(1..=MAX_RATE_PER_MINUTE).contains(&cfg.rate_per_minute) {
        return Err(Error::Config(format!(
            "--rate must be between 1 and {MAX_RATE_PER_MINUTE} requests per minute"
        )));
    }
    let now = cfg.now.unwrap_or_else(OffsetDateTime::now_utc);
    if let (Input::Query(query), SourceKind::Genesys) = (&input, cfg.source) {
        query
            .genesys_requests(now, cfg.page_size)
            .map_err(Error::Config)?;
    }
    if let Retrieval::Transcode(f) = &cfg.retrieval
        && !["WAV", "WEBM", "WAV_ULAW", "OGG_VORBIS", "OGG_OPUS", "MP3"].contains(&f.as_str())
    {
        return Err(Error::Config(format!(
            "unknown --format {f}; use WAV, WEBM, WAV_ULAW, OGG_VORBIS, OGG_OPUS or MP3"
        )));
    }
    let sign_key = cfg
        .sign_key
        .as_deref()
        .map(crate::sign::load_secret_key)
        .transpose()?;
    let api = Api::new(
        &cfg.api_base,
        &cfg.login_base,
        cfg.credentials.clone(),
        cfg.rate_per_minute,
    )?;
    let root = cfg.out.clone();
    check_out(&root)?;
    let state_path = root.join(".custos").join("state.sqlite");
    if !state_path.exists() && root.exists() && !empty_or_our_skeleton(&root)? {
        return Err(Error::OutputDir {
            path: root,
            message: "exists, is not empty and holds no custos export; choose a new directory"
                .into(),
        });
    }
    // Credentials are proven before the first file is written.
    api.token(None).await?;
    for d in [root.join(".custos"), root.join("data")] {
        crate::fetch::make_dirs(&d)?;
    }
    let _lock = lock(&root)?;
    let resuming = state_path.exists();
    let state = State::open(&state_path)?;
    let ctx = Ctx {
        cfg,
        api,
        state,
        root,
        progress,
        downloads: tokio::sync::Semaphore::new(cfg.concurrency),
        log: log_cell,
    };
    if let Some(prev) = ctx.state.get("query_canonical")?
        && prev != input.canonical()
    {
        return Err(Error::OutputDir {
            path: ctx.root.clone(),
            message: format!(
                "holds an export of a different query ({prev}); choose a new directory"
            ),
        });
    }
    compare_settings(&ctx, &settings(cfg, sign_key.as_ref()))?;
    if ctx.state.get("complete")?.as_deref() == Some("true")
        && ctx.root.join("tagmanifest-sha256.txt").exists()
    {
        return report(&ctx, started, resuming, true);
    }
    if resuming {
        recheck_written(&ctx)?;
    }
    remove_partials(&ctx.root.join("data"))?;
    let mut actor = json!({"oauthClientId": ctx.api.client_id(), "osUser": os_identity(), "operator": cfg.operator});
    if let Some(env) = env_user_if_different() {
        actor["envUser"] = json!(env);
    }
    let log = Arc::new(CustodyLog::open(
        &ctx.root.join("data/custody_log.jsonl"),
        actor,
        tool(),
    )?);
    ctx.api.set_log(log.clone());
    let _ = ctx.log.set(log);
    ctx.log("export-run", json!({"resumed": resuming, "source": cfg.source.as_str(), "apiBase": cfg.api_base, "loginBase": cfg.login_base, "matter": cfg.matter, "pid": std::process::id(),
        "settings": settings(cfg, sign_key.as_ref()).into_iter().map(|(k, v)| (k.trim_start_matches("--").to_owned(), json!(v))).collect::<serde_json::Map<_, _>>()}))?;

    progress.stage(Stage::Query, "recording the query");
    if ctx.state.get("query_sha256")?.is_none() {
        write_query(&ctx, &input, now)?;
    }
    progress.stage(Stage::Manifest, "finding recordings");
    if ctx.state.get("manifest_sha256")?.is_none() {
        build_manifest(&ctx, &input, now).await?;
    }
    progress.stage(Stage::Retrieval, "downloading");
    crate::retrieve::retrieve(&ctx).await?;
    progress.stage(Stage::Package, "writing the custody record and the bag");
    package(&ctx, sign_key.as_ref())?;
    ctx.state.set("complete", "true")?;
    report(&ctx, started, resuming, false)
}

/// The most downloads at a time (`--concurrency`).
pub const MAX_CONCURRENCY: usize = 256;
/// The highest `--rate` (requests per minute) accepted: above any Genesys org's limit.
pub const MAX_RATE_PER_MINUTE: u32 = 1_000_000;

/// Records the settings on the first run; on a resume, refuses any that differ, naming it.
fn compare_settings(ctx: &Ctx<'_>, now: &[(&'static str, String)]) -> Result<()> {
    let started_before = ctx.state.get("query_sha256")?.is_some();
    for (name, value) in now {
        let key = format!("setting {name}");
        match ctx.state.get(&key)? {
            Some(prev) if &prev != value => {
                return Err(Error::OutputDir {
                    path: ctx.root.clone(),
                    message: format!(
                        "this export was started with {name} {prev}; this run gives {value}. One package is made with one set of settings: re-run with {name} {prev}, or export into a new directory"
                    ),
                });
            }
            Some(_) => {}
            // A job database from before settings were recorded: the API host was.
            None if started_before && *name == "--api-base" => {
                if let Some(origin) = ctx.state.get("origin")? {
                    let host = url::Url::parse(value)
                        .ok()
                        .and_then(|u| u.host_str().map(str::to_owned))
                        .unwrap_or_default();
                    if origin != format!("{} at {host}", ctx.cfg.source.as_str()) {
                        return Err(Error::OutputDir {
                            path: ctx.root.clone(),
                            message: format!(
                                "holds an export from {origin}; choose a new directory"
                            ),
                        });
                    }
                }
                ctx.state.set(&key, value)?;
            }
            None => ctx.state.set(&key, value)?,
        }
    }
    Ok(())
}

/// Before a resume trusts what an earlier run wrote: the sealed query record and manifest,
/// and every finished download, hashed again and compared with the job database.
fn recheck_written(ctx: &Ctx<'_>) -> Result<()> {
    let check = |rel: &str, want: &str, what: &str| -> Result<()> {
        let path = ctx.root.join(rel);
        let got = match sha256_file(&path) {
            Ok((h, _)) => h,
            Err(_) => {
                return Err(Error::Tampered {
                    path,
                    message: format!(
                        "{what} written by an earlier run of this export is gone; the export cannot be resumed. Restore the file, or export again into a new directory"
                    ),
                });
            }
        };
        if got != want {
            return Err(Error::Tampered {
                path,
                message: format!(
                    "{what} changed since an earlier run of this export wrote it (SHA-256 {want} then, {got} now); the export cannot be resumed. Restore the file, or export again into a new directory"
                ),
            });
        }
        Ok(())
    };
    if let Some(sha) = ctx.state.get("query_sha256")? {
        check("data/query.json", &sha, "the query record")?;
    }
    if let Some(sha) = ctx.state.get("manifest_sha256")? {
        check("data/manifest.csv", &sha, "the sealed manifest")?;
    }
    ctx.state.for_each(|_, d| match d {
        Some(Done {
            file: Some(file),
            sha256: Some(sha),
            ..
        }) => check(&file, &sha, "a downloaded file"),
        _ => Ok(()),
    })
}

fn remove_partials(dir: &Path) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        if p.is_dir() {
            remove_partials(&p)?;
        } else if p.extension().is_some_and(|x| x == "part" || x == "tmp") {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

fn write_query(ctx: &Ctx<'_>, input: &Input, now: OffsetDateTime) -> Result<()> {
    let cfg = ctx.cfg;
    let export_id = uuid::Uuid::new_v4().to_string();
    let (requests, selection): (Vec<Value>, &str) = match (input, cfg.source) {
        (Input::Query(query), SourceKind::Genesys) => (
            query
                .genesys_requests(now, cfg.page_size)
                .map_err(Error::Config)?
                .into_iter()
                .map(|r| json!({"method": r.method, "url": ctx.api.url(r.path), "body": r.body}))
                .collect(),
            "every recording of the conversations whose conversationStart lies in the timestamp range and that match the filters",
        ),
        (Input::Query(query), SourceKind::Search) => (
            vec![json!({"method": "GET", "url": ctx.api.url("/api/v2/search/recordings"), "query": {"q": query.text(), "pageSize": cfg.page_size}})],
            "the recordings the search API returns for q, every page",
        ),
        (Input::Ids(list), SourceKind::Genesys) => (
            list.entries
                .iter()
                .map(|e| &e.first)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|c| json!({"method": "GET", "url": ctx.api.url(&crate::source::recordings_list_path(c))}))
                .collect(),
            "the listed conversations' recordings (all of them, or the one named on the line)",
        ),
        (Input::Ids(list), SourceKind::Search) => (
            list.entries.iter().map(|e| json!({"method": "GET", "url": ctx.api.url(&format!("/api/v2/recordings/{}", url_path(&e.first)))})).collect(),
            "the listed recordings",
        ),
    };
    let (query_text, canonical, canonical_sha, ids) = match input {
        Input::Query(q) => (
            json!(q.text()),
            q.canonical(),
            q.canonical_sha256(),
            Value::Null,
        ),
        Input::Ids(l) => (
            Value::Null,
            l.canonical(),
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                l.canonical().as_bytes(),
            )),
            json!({"file": l.file, "fileSha256": l.file_sha256, "entries": l.entries.iter().map(|e| match &e.second { Some(r) => format!("{},{r}", e.first), None => e.first.clone() }).collect::<Vec<_>>()}),
        ),
    };
    let doc = json!({
        "format": "custos-query/1",
        "exportId": export_id,
        "matter": cfg.matter,
        "query": query_text,
        "ids": ids,
        "canonicalQuery": canonical,
        "canonicalQuerySha256": canonical_sha,
        "source": cfg.source.as_str(),
        "apiBase": cfg.api_base,
        "loginBase": cfg.login_base,
        "retrieval": match &cfg.retrieval { Retrieval::Batch => json!({"mode": "batch"}), Retrieval::Transcode(f) => json!({"mode": "transcode", "formatId": f}) },
        "selection": selection,
        "requests": requests,
        "tool": {"name": TOOL, "version": VERSION, "commit": COMMIT},
        "exporter": {"oauthClientId": ctx.api.client_id(), "osUser": os_identity(), "envUser": env_user_if_different(), "operator": cfg.operator},
        "startedAt": format_ms(OffsetDateTime::now_utc()),
    });
    let mut bytes = serde_json::to_vec_pretty(&doc).expect("json");
    bytes.push(b'\n');
    let path = ctx.root.join("data/query.json");
    write_sealed(&path, &bytes)?;
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    ctx.state.set("export_id", &export_id)?;
    ctx.state.set("query_canonical", &input.canonical())?;
    ctx.state.set("query_used", &input.used())?;
    ctx.state.set("query_sha256", &sha)?;
    ctx.log(
        "query-recorded",
        json!({"file": "data/query.json", "sha256": sha, "canonicalQuery": input.canonical()}),
    )?;
    Ok(())
}

async fn build_manifest(ctx: &Ctx<'_>, input: &Input, now: OffsetDateTime) -> Result<()> {
    let cfg = ctx.cfg;
    // Listed metadata waits here, outside the payload, until the manifest says what is kept.
    let staging = ctx.root.join(".custos/metadata-staging");
    let found = match (input, cfg.source) {
        (Input::Query(query), SourceKind::Genesys) => {
            let convs = genesys_conversations(&ctx.api, query, now, cfg.page_size).await?;
            genesys_recordings(&ctx.api, &convs, ctx.api.requests_in_flight(), &staging).await?
        }
        (Input::Query(query), SourceKind::Search) => {
            search_recordings(&ctx.api, query.text(), cfg.page_size.min(1000)).await?
        }
        (Input::Ids(list), SourceKind::Genesys) => {
            let convs = list.entries.iter().map(|e| e.first.clone()).collect();
            let mut found =
                genesys_recordings(&ctx.api, &convs, ctx.api.requests_in_flight(), &staging)
                    .await?;
            // Keep what was asked for; account for every id the source does not know.
            let whole: std::collections::BTreeSet<&str> = list
                .entries
                .iter()
                .filter(|e| e.second.is_none())
                .map(|e| e.first.as_str())
                .collect();
            let named: std::collections::BTreeSet<(&str, &str)> = list
                .entries
                .iter()
                .filter_map(|e| e.second.as_deref().map(|r| (e.first.as_str(), r)))
                .collect();
            found.items.retain(|it| {
                whole.contains(it.conversation_id.as_str())
                    || named.contains(&(it.conversation_id.as_str(), it.recording_id.as_str()))
            });
            let listed: std::collections::BTreeSet<(String, String)> = found
                .items
                .iter()
                .map(|i| (i.conversation_id.clone(), i.recording_id.clone()))
                .collect();
            for (c, r) in &named {
                if !listed.contains(&(c.to_string(), r.to_string())) {
                    found.items.push(Item {
                        conversation_id: c.to_string(),
                        recording_id: r.to_string(),
                        listed_state: NOT_FOUND.into(),
                    });
                }
            }
            for c in &found.missing_conversations {
                if whole.contains(c.as_str()) {
                    found.items.push(Item {
                        conversation_id: c.clone(),
                        recording_id: String::new(),
                        listed_state: NOT_FOUND.into(),
                    });
                }
            }
            found.items.sort();
            found.items.dedup();
            found
        }
        (Input::Ids(list), SourceKind::Search) => {
            let ids: Vec<String> = list.entries.iter().map(|e| e.first.clone()).collect();
            search_by_ids(&ctx.api, &ids, ctx.api.requests_in_flight()).await?
        }
    };
    let meta_dir = ctx.root.join("data/metadata");
    crate::fetch::make_dirs(&meta_dir)?;
    for (rid, raw) in &found.metadata {
        if safe_id(rid) {
            write_sealed(&meta_dir.join(format!("{rid}.json")), raw.as_bytes())?;
        }
    }
    if staging.exists() {
        for it in &found.items {
            let from = staging.join(format!("{}.json", it.recording_id));
            if safe_id(&it.recording_id) && from.exists() {
                let to = meta_dir.join(format!("{}.json", it.recording_id));
                std::fs::rename(&from, &to).map_err(|e| Error::io(&to, e))?;
            }
        }
        sync_dir(&meta_dir)?;
        std::fs::remove_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "Sequence",
        "Conversation_ID",
        "Recording_ID",
        "Listed_File_State",
    ])
    .expect("csv");
    for (i, it) in found.items.iter().enumerate() {
        w.write_record([
            (i + 1).to_string().as_str(),
            &csv_cell(&it.conversation_id),
            &csv_cell(&it.recording_id),
            &csv_cell(&it.listed_state),
        ])
        .expect("csv");
    }
    let bytes = w.into_inner().expect("csv");
    let path = ctx.root.join("data/manifest.csv");
    write_sealed(&path, &bytes)?;
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    write_sealed(
        &ctx.root.join("data/manifest.csv.sha256"),
        format!("{sha}  manifest.csv\n").as_bytes(),
    )?;
    ctx.state.seal_manifest(&found.items, &sha)?;
    ctx.log(
        "manifest-sealed",
        json!({"file": "data/manifest.csv", "sha256": sha, "items": found.items.len()}),
    )?;
    Ok(())
}

/// True if `root` is empty, or holds only the `.custos/` (empty, or with only the run lock) and
/// the empty `data/` an export creates before its job database (a run killed at that instant
/// must be resumable).
fn empty_or_our_skeleton(root: &Path) -> Result<bool> {
    for e in std::fs::read_dir(root).map_err(|e| Error::io(root, e))? {
        let e = e.map_err(|e| Error::io(root, e))?;
        let allowed: &[&str] = match e.file_name().to_str() {
            Some(".custos") => &["lock"],
            Some("data") => &[],
            _ => return Ok(false),
        };
        if !e
            .file_type()
            .map_err(|err| Error::io(e.path(), err))?
            .is_dir()
        {
            return Ok(false);
        }
        for inner in std::fs::read_dir(e.path()).map_err(|err| Error::io(e.path(), err))? {
            let inner = inner.map_err(|err| Error::io(e.path(), err))?;
            if !inner
                .file_name()
                .to_str()
                .is_some_and(|n| allowed.contains(&n))
            {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Removes the empty conversation directories that items without a file left behind (done
/// here, single-threaded, rather than racing parallel downloads into the same directory).
fn remove_empty_dirs(dir: &Path) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        if p.is_dir() {
            remove_empty_dirs(&p)?;
        }
    }
    if std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .next()
        .is_none()
    {
        std::fs::remove_dir(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// Which kept files had their duration compared with the stated one, and why not the others.
#[derive(Clone, Debug, Default)]
pub struct DurationCoverage {
    /// Items that kept a file (Exported or Corrupted).
    pub files: u64,
    /// Of them, compared with a stated duration.
    pub checked: u64,
    /// The others: `{recordingId, conversationId, why}`.
    pub not_checked: Vec<Value>,
}

impl DurationCoverage {
    fn add(&mut self, it: &Item, d: &Done) {
        match d.duration_check() {
            None => {}
            Some(DurationCheck::Checked) => {
                self.files += 1;
                self.checked += 1;
            }
            Some(DurationCheck::NotChecked(why)) => {
                self.files += 1;
                self.not_checked.push(json!({"recordingId": it.recording_id, "conversationId": it.conversation_id, "why": why}));
            }
        }
    }
}

fn package(ctx: &Ctx<'_>, sign_key: Option<&minisign::SecretKey>) -> Result<()> {
    let cfg = ctx.cfg;
    remove_empty_dirs(&ctx.root.join("data/recordings"))?;
    remove_empty_dirs(&ctx.root.join("data/quarantine"))?;
    let query_used = ctx.state.get("query_used")?.unwrap_or_default();
    let query_text = query_used.as_str();
    // Written row by row from the job database, never held whole.
    let coc_path = ctx.root.join("data/chain_of_custody.csv");
    let coc_tmp = ctx.root.join("data/chain_of_custody.csv.tmp");
    let file = crate::fetch::create_file(&coc_tmp).map_err(|e| Error::io(&coc_tmp, e))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(file));
    let csv_err = |e: csv::Error| Error::io(&coc_tmp, std::io::Error::other(e));
    w.write_record([
        "Recording_ID",
        "File_Name",
        "SHA256_Hash",
        "Download_Timestamp",
        "Query_String_Used",
        "Exporter_User_ID",
        "Outcome",
        "Bytes",
        "Content_Type",
        "Conversation_ID",
        "Reason",
        "Media_Duration_S",
        "Stated_Duration_S",
        "Duration_Checked",
        "Stated_Duration_Source",
    ])
    .map_err(csv_err)?;
    let mut duration = DurationCoverage::default();
    let mut counts: BTreeMap<Outcome, u64> = Outcome::ALL.into_iter().map(|o| (o, 0)).collect();
    let (mut items, mut exported_bytes) = (0u64, 0u64);
    ctx.state.for_each(|it, d| {
        let d = d.unwrap_or_else(|| crate::retrieve::done(Outcome::Failed, "no outcome recorded"));
        items += 1;
        *counts.entry(d.outcome).or_default() += 1;
        if d.outcome == Outcome::Exported {
            exported_bytes += d.bytes.unwrap_or(0);
        }
        let bytes = d.bytes.map(|b| b.to_string()).unwrap_or_default();
        let secs = |ms: Option<u64>| {
            ms.map(|ms| format!("{:.3}", ms as f64 / 1000.0))
                .unwrap_or_default()
        };
        let (media_s, stated_s) = (secs(d.media_ms), secs(d.stated_ms));
        let checked = match d.duration_check() {
            None => "",
            Some(DurationCheck::Checked) => "yes",
            Some(DurationCheck::NotChecked(_)) => "no",
        };
        duration.add(&it, &d);
        // Every text cell through csv_cell: values from the API or the user are never a
        // spreadsheet formula or a control character (docs/formats.md).
        let c = |v: &str| csv_cell(v).into_owned();
        w.write_record([
            c(&it.recording_id),
            c(d.file.as_deref().unwrap_or("")),
            c(d.sha256.as_deref().unwrap_or("")),
            c(d.downloaded_at.as_deref().unwrap_or("")),
            c(query_text),
            c(ctx.api.client_id()),
            d.outcome.as_str().to_owned(),
            bytes,
            c(d.content_type.as_deref().unwrap_or("")),
            c(&it.conversation_id),
            c(&d.reason),
            media_s,
            stated_s,
            checked.to_owned(),
            c(d.stated_source.as_deref().unwrap_or("")),
        ])
        .map_err(csv_err)
    })?;
    let file = w
        .into_inner()
        .map_err(|e| Error::io(&coc_tmp, std::io::Error::other(e.to_string())))?
        .into_inner()
        .map_err(|e| Error::io(&coc_tmp, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(&coc_tmp, e))?;
    std::fs::rename(&coc_tmp, &coc_path).map_err(|e| Error::io(&coc_path, e))?;
    let summary = json!({
        "items": items,
        "outcomes": counts.iter().map(|(o, n)| (o.as_str().to_owned(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "purged": counts[&Outcome::Purged],
        "exportedBytes": exported_bytes,
        "querySha256": ctx.state.get("query_sha256")?,
        "manifestSha256": ctx.state.get("manifest_sha256")?,
        "durationChecked": {"checked": duration.checked, "of": duration.files, "notChecked": duration.not_checked},
    });
    let mut s = serde_json::to_vec_pretty(&summary).expect("json");
    s.push(b'\n');
    write_durably(&ctx.root.join("data/summary.json"), &s)?;
    let mut info: Vec<(&str, String)> = Vec::new();
    if let Some(org) = &cfg.source_organization {
        info.push(("Source-Organization", org.clone()));
    }
    let export_id = ctx.state.get("export_id")?.unwrap_or_default();
    info.push((
        "External-Identifier",
        cfg.matter.clone().unwrap_or_else(|| export_id.clone()),
    ));
    info.push(("Bag-Software-Agent", format!("{TOOL} {VERSION} ({COMMIT})")));
    info.push(("Export-Tool", TOOL.into()));
    info.push(("Export-Tool-Version", VERSION.into()));
    info.push(("Export-Tool-Commit", COMMIT.into()));
    info.push(("Export-Id", export_id));
    info.push(("Export-Source", cfg.source.as_str().into()));
    info.push(("Genesys-API-Base", cfg.api_base.clone()));
    info.push((
        "Duration-Tolerance-Seconds",
        format!("{}", cfg.duration_tolerance.as_secs_f64()),
    ));
    info.push((
        "Duration-Checked",
        format!("{} of {}", duration.checked, duration.files),
    ));
    info.push((
        "Query-SHA256",
        ctx.state.get("query_sha256")?.unwrap_or_default(),
    ));
    info.push((
        "Manifest-SHA256",
        ctx.state.get("manifest_sha256")?.unwrap_or_default(),
    ));
    // The last event inside the payload: after it the bag seals the log.
    let coc = sha256_file(&ctx.root.join("data/chain_of_custody.csv"))?.0;
    let head = ctx.log(
        "package-sealing",
        json!({"items": items, "outcomes": counts.iter().map(|(o, n)| (o.as_str().to_owned(), json!(n))).collect::<serde_json::Map<_, _>>(),
               "chainOfCustodySha256": coc}),
    )?;
    ctx.state.set("custody_log_head", &head)?;
    info.push(("Custody-Log-Head", head.clone()));
    let today = OffsetDateTime::now_utc().date();
    // Hashes recorded at download are not recomputed; every other payload file is hashed.
    write_bag(
        &ctx.root,
        &|rel| ctx.state.file_hash(rel),
        &info,
        &today.to_string(),
    )?;
    let sig = ctx.root.join("tagmanifest-sha256.txt.minisig");
    match sign_key {
        Some(sk) => {
            let comment = format!(
                "custos matter:{} export:{} custody-log-head:{head} tool:{VERSION}",
                cfg.matter
                    .as_deref()
                    .unwrap_or("-")
                    .replace(char::is_whitespace, "_"),
                ctx.state.get("export_id")?.unwrap_or_default()
            );
            crate::sign::sign_bag(&ctx.root, sk, &comment)?;
        }
        // A stale signature from an earlier run would no longer match: never leave one behind.
        None if sig.exists() => std::fs::remove_file(&sig).map_err(|e| Error::io(&sig, e))?,
        None => {}
    }
    sync_dir(&ctx.root)
}

fn report(
    ctx: &Ctx<'_>,
    started: std::time::Instant,
    resumed: bool,
    already: bool,
) -> Result<Report> {
    let mut counts: BTreeMap<Outcome, u64> = Outcome::ALL.into_iter().map(|o| (o, 0)).collect();
    let (mut items, mut bytes) = (0u64, 0u64);
    let mut duration = DurationCoverage::default();
    ctx.state.for_each(|it, d| {
        items += 1;
        if let Some(d) = d {
            duration.add(&it, &d);
            *counts.entry(d.outcome).or_default() += 1;
            if d.outcome == Outcome::Exported {
                bytes += d.bytes.unwrap_or(0);
            }
        }
        Ok(())
    })?;
    Ok(Report {
        out: ctx.root.clone(),
        counts,
        items,
        bytes,
        query_sha256: ctx.state.get("query_sha256")?.unwrap_or_default(),
        manifest_sha256: ctx.state.get("manifest_sha256")?.unwrap_or_default(),
        resumed,
        already_complete: already,
        api_calls: ctx.api.calls(),
        custody_log_head: ctx.state.get("custody_log_head")?.unwrap_or_default(),
        rate_limit_wait: ctx.api.limiter.waited(),
        signature: Some(ctx.root.join("tagmanifest-sha256.txt.minisig")).filter(|p| p.exists()),
        elapsed: started.elapsed(),
        duration,
    })
}
