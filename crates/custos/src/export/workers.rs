//! A distributed export (docs/scale.md): one coordinator, `custos export --workers`, records and
//! runs the query and opens the job to workers; any number of `custos worker` processes, each
//! with an OAuth client of its own (so a rate budget of its own), claim conversations from the
//! PostgreSQL job state and list their recordings; the coordinator seals the manifest from what
//! they listed; the workers claim its items and download them into the shared export
//! directory; the coordinator waits for every item to end, puts the files in place and seals
//! the bag.
//!
//! What keeps it one package:
//! - **Claims and fencing.** A worker joins with an epoch (its fencing token) and a lease it
//!   renews; it claims items `FOR UPDATE SKIP LOCKED`; each outcome lands with its custody line
//!   in one transaction that checks the lease and the claim. A worker whose lease lapsed (stopped,
//!   cut off) records nothing more: its items are claimed again by others.
//! - **Staging.** A worker renames each checked download to its SHA-256 in `.custos/staging/`,
//!   never to its final name, so a fenced worker's late write can only add the same bytes or
//!   an object no outcome names. The coordinator checks each staged object's hash and links it
//!   to its final name; what no outcome names is removed and counted.
//! - **One custody chain.** Every process appends to one hash chain kept in the database; the
//!   coordinator writes it out as `data/custody_log.jsonl` when it seals. Each line's actor names
//!   the OAuth client and, for a worker, its epoch.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;

use super::config::{ExportConfig, Retrieval, Selection, SourceKind};
use super::context::{Ctx, Progress, STAGING};
use crate::custody::{Actor, CustodyLog};
use crate::durable::sha256_file;
use crate::error::{Error, Result};
use crate::http::{Api, Credentials};
use crate::model::{Outcome, Tally};
use crate::state::{Done, Key, State, StateLocation};

/// How often, at most, the coordinator looks at how far the workers are.
const POLL: Duration = Duration::from_secs(1);

/// The coordinator waits this many times as long as its last look took before the next: each
/// look counts the job's items (at a million, about a third of a second of the database's
/// time), so that the workers' own database work keeps at least 90 % of it.
const POLL_SHARE: u32 = 10;

/// Opens the job to workers for listing: the conversations to list are in the job state.
pub(super) fn open_listing(ctx: &Ctx<'_>) -> Result<()> {
    if ctx.state.get(Key::WorkOpen)?.is_none() {
        ctx.state.set(Key::WorkOpen, "listing")?;
    }
    ctx.log(
        "workers-awaited",
        json!({"phase": "listing", "jobState": ctx.state.place(),
               "note": "the conversations' recordings lists are left to custos worker processes, each with its own OAuth client"}),
    )?;
    Ok(())
}

/// Opens the job to workers and waits until every item has an outcome, reporting them to the
/// progress as they end. The coordinator downloads nothing here; the items it restores
/// (`--restore-archived`) are its own, and it downloads them once restored (`retrieval`).
pub(super) async fn await_workers(ctx: &Ctx<'_>) -> Result<()> {
    let shared = ctx
        .state
        .shared()
        .expect("--workers is refused without PostgreSQL job state");
    let first = ctx.state.progress("9999-12-31T00:00:00Z")?;
    ctx.progress.total(first.items);
    if ctx.state.get(Key::WorkOpen)?.as_deref() != Some("closed") {
        ctx.state.set(Key::WorkOpen, "true")?;
    }
    let unfinished = first.items - first.outcomes.values().sum::<u64>();
    ctx.log(
        "workers-awaited",
        json!({"phase": "retrieval", "items": first.items, "unfinished": unfinished, "jobState": ctx.state.place(),
               "note": "the downloads are left to custos worker processes, each with its own OAuth client"}),
    )?;
    let mut seen = std::collections::BTreeMap::<String, u64>::new();
    loop {
        let looked = std::time::Instant::now();
        let p = ctx.state.progress("9999-12-31T00:00:00Z")?;
        for (outcome, n) in &p.outcomes {
            let before = seen.entry(outcome.clone()).or_default();
            if let Some(o) = Outcome::parse(outcome) {
                for _ in *before..*n {
                    ctx.progress.item(o, 0);
                }
            }
            *before = *n;
        }
        // Every item ended (but those the coordinator restores), and every worker gone
        // (ended, or its lease lapsed): what a worker logs as it ends is in the log the bag
        // seals.
        if p.outcomes.values().sum::<u64>() + shared.held_for_restore()? >= p.items
            && shared.live_workers()? == 0
        {
            break;
        }
        tokio::time::sleep(POLL.max(looked.elapsed() * POLL_SHARE)).await;
    }
    ctx.state.set(Key::WorkOpen, "closed")?;
    let workers = shared.workers(&crate::query::format_ms(time::OffsetDateTime::now_utc()))?;
    ctx.log(
        "workers-done",
        json!({"workers": workers.iter().map(|w| json!({
            "worker": w.epoch, "oauthClient": w.oauth_client, "host": w.host, "pid": w.pid,
            "started": w.started_at, "lastHeartbeat": w.heartbeat_at, "itemsEnded": w.done,
            "throttled": w.throttled, "ended": w.ended})).collect::<Vec<_>>()}),
    )?;
    Ok(())
}

/// Puts every file the workers staged at its final name (its SHA-256 checked first), with its
/// sidecar, then clears the staging directory, counting what no outcome named. Safe to repeat
/// after a crash: files already in place are left as they are.
pub(super) fn assemble(ctx: &Ctx<'_>) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let staging = ctx.root.join(STAGING);
    let mut placed = 0u64;
    ctx.state.for_each(|_, d| {
        let Some(Done {
            file: Some(file),
            sha256: Some(sha),
            ..
        }) = d
        else {
            return Ok(());
        };
        let dest = ctx.root.join(&file);
        if std::fs::symlink_metadata(&dest).is_ok() {
            // Placed by an assembly a crash cut short: its sidecar may be all that is missing
            // (the file's hash was checked again when this run started).
            let sidecar = crate::durable::sidecar(&dest);
            if !sidecar.exists() {
                let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                crate::durable::write_sealed(&sidecar, format!("{sha}  {name}\n").as_bytes())?;
            }
            return Ok(());
        }
        let staged = staging.join(&sha);
        if let Some(dir) = dest.parent() {
            crate::durable::make_dirs(dir)?;
        }
        // A link, not a rename: two recordings with the same bytes share one staged object.
        // Linked first, then checked: what is checked is what is put in place.
        let mut part = dest.as_os_str().to_owned();
        part.push(".part");
        let part = PathBuf::from(part);
        let _ = std::fs::remove_file(&part);
        if std::fs::hard_link(&staged, &part).is_err() {
            return Err(Error::Tampered {
                path: staged,
                message: format!(
                    "a worker recorded {file} with this SHA-256, but the staging directory does not hold it: the shared directory lost a file"
                ),
            });
        }
        let refuse = |message: String| {
            let _ = std::fs::remove_file(&part);
            Err(Error::Tampered {
                path: staged.clone(),
                message,
            })
        };
        // A link to a symbolic link is the link: never put one in the bag.
        if !std::fs::symlink_metadata(&part).is_ok_and(|m| m.file_type().is_file()) {
            return refuse(format!(
                "staged for {file}, but not a regular file (a link, a FIFO, a device): refused"
            ));
        }
        let got = match sha256_file(&part) {
            Ok((h, _)) => h.hex(),
            Err(e) => return refuse(format!("staged for {file}, but unreadable: {e}")),
        };
        if got != sha {
            return refuse(format!(
                "changed since a worker staged it for {file} (SHA-256 {sha} then, {got} now)"
            ));
        }
        crate::durable::finalize(&part, &dest, &sha)?;
        placed += 1;
        Ok(())
    })?;
    let (mut unreferenced, mut partial, mut removed) = (0u64, 0u64, 0u64);
    if let Ok(rd) = std::fs::read_dir(&staging) {
        for e in rd {
            let p = e.map_err(|e| Error::io(&staging, e))?.path();
            let meta = std::fs::symlink_metadata(&p).map_err(|e| Error::io(&p, e))?;
            if p.extension().is_some_and(|x| x == "part") {
                partial += 1;
            } else if meta.nlink() < 2 {
                unreferenced += 1;
            }
            removed += 1;
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
        std::fs::remove_dir(&staging).map_err(|e| Error::io(&staging, e))?;
    }
    ctx.log(
        "staging-assembled",
        json!({"filesPlaced": placed, "stagedEntriesRemoved": removed,
               "unreferencedObjects": unreferenced, "partialFiles": partial,
               "note": "unreferenced objects and partial files are what workers wrote without an outcome recorded for it (a worker fenced or killed mid-download); none is in the package"}),
    )?;
    Ok(())
}

/// What a `custos worker` is given: the shared export directory and the job state, and what
/// is its own (credentials, rate, concurrency, lease).
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The export directory the coordinator made (shared by every worker).
    pub out: PathBuf,
    /// Where the job state is: the PostgreSQL database the coordinator used.
    pub state: StateLocation,
    /// The API base this worker sends its credentials to: it must be the job's.
    pub api_base: String,
    /// The login base.
    pub login_base: String,
    /// This worker's OAuth client: one worker per client.
    pub credentials: Credentials,
    /// This worker's API requests per minute.
    pub rate_per_minute: u32,
    /// Parallel downloads.
    pub concurrency: usize,
    /// The human running this worker.
    pub operator: Option<String>,
    /// How long the lease runs after each heartbeat: a worker silent longer is fenced.
    pub lease: Duration,
    /// As [`ExportConfig::job_deadline`].
    pub job_deadline: Duration,
    /// The organization's archive, as this worker's operator named it (`--archive`, its
    /// endpoint and region): it must be the job's, and the store's credentials go only where
    /// the operator said.
    pub archive: Option<crate::archive::ArchiveSource>,
}

/// What a worker did.
#[derive(Clone, Debug)]
pub struct WorkReport {
    /// Its epoch (fencing token).
    pub worker: i64,
    /// The OAuth client it collected with.
    pub oauth_client: String,
    /// Items this worker ended, per outcome.
    pub tally: Tally,
    /// API requests it sent.
    pub api_calls: u64,
    /// 429 answers it met.
    pub throttled: u64,
    /// Time spent paused for the rate budget.
    pub rate_limit_wait: Duration,
    /// Wall time.
    pub elapsed: Duration,
}

/// Conversations a worker claims to list at a time.
const LIST_CLAIM: u64 = 10;

/// While the job is listing: claims conversations, fetches each one's recordings list with
/// this worker's client, leaves each element in the metadata staging area as
/// `<recordingId>.w<epoch>.json` (a name of this worker's own) and records the list in the
/// job state, fenced like an outcome. Returns once the coordinator has moved past listing.
async fn list_for_job(ctx: &Ctx<'_>, shared: &crate::state::Shared, epoch: i64) -> Result<()> {
    let staging = ctx.root.join(".custos/metadata-staging");
    loop {
        let Some(convs) = shared.claim_conversations(LIST_CLAIM)? else {
            return Ok(());
        };
        if convs.is_empty() {
            // Others hold what is left, or the coordinator has yet to seal the manifest.
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        crate::durable::make_dirs(&staging)?;
        let staging = &staging;
        let results: Vec<Result<()>> = futures_util::stream::iter(convs)
            .map(|cid| async move {
                let rows = match crate::source::list_of(&ctx.api, &cid).await? {
                    None => None,
                    Some(list) => {
                        let rows = crate::source::rows_of(&cid, &list);
                        for (row, raw) in &rows {
                            let rid = &row.item.recording_id;
                            if crate::model::safe_id(rid) {
                                crate::durable::write_sealed(
                                    &staging.join(format!("{rid}.w{epoch}.json")),
                                    raw.get().as_bytes(),
                                )?;
                            }
                        }
                        Some(rows.into_iter().map(|(row, _)| row).collect())
                    }
                };
                shared.record_listing(&cid, rows)
            })
            .buffer_unordered(ctx.api.requests_in_flight())
            .collect()
            .await;
        results.into_iter().collect::<Result<()>>()?;
    }
}

/// The job's value of a setting, as the coordinator recorded it.
fn setting(state: &State, flag: &'static str) -> Result<String> {
    state.get(Key::Setting(flag))?.ok_or_else(|| {
        Error::Config(format!(
            "the job records no {flag}: it was not started by custos export --workers of this version"
        ))
    })
}

/// The job's settings that shape retrieval, read from its state, and checked against what this
/// worker was given: a worker sends its credentials only to the API the operator named, and
/// collects only for a job of that API.
fn job_config(cfg: &WorkerConfig, state: &State) -> Result<ExportConfig> {
    let api_base = setting(state, "--api-base")?;
    let login_base = setting(state, "--login-base")?;
    for (flag, given, job) in [
        ("--api-base", &cfg.api_base, &api_base),
        ("--login-base", &cfg.login_base, &login_base),
    ] {
        if given.trim_end_matches('/') != job {
            return Err(Error::Config(format!(
                "this worker was given {flag} {given}; the job collects from {job}. A worker collects for a job of the API it is pointed at: give {flag} {job}"
            )));
        }
    }
    // One build works a job, so that every item is listed, checked and recorded the same way.
    let coordinator = state
        .get(Key::Identity)?
        .and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok())
        .map(|v| {
            let s = |k: &str| v["binary"][k].as_str().unwrap_or("").to_owned();
            (s("version"), s("commit"))
        })
        .unwrap_or_default();
    let this = (
        crate::custody::VERSION.to_owned(),
        crate::custody::COMMIT.to_owned(),
    );
    if coordinator != this {
        return Err(Error::Config(format!(
            "this worker is custos {} (commit {}); the job's coordinator is custos {} (commit {}). One build works a job: run the coordinator's build here",
            this.0, this.1, coordinator.0, coordinator.1
        )));
    }
    let source = match setting(state, "--source")?.as_str() {
        "genesys" => SourceKind::Genesys,
        "search" => SourceKind::Search,
        other => {
            return Err(Error::Config(format!(
                "the job's source {other} is unknown"
            )));
        }
    };
    let retrieval = match setting(state, "--retrieval")?.as_str() {
        "batch" => Retrieval::Batch,
        "transcode" => Retrieval::Transcode(setting(state, "--format")?),
        other => {
            return Err(Error::Config(format!(
                "the job's retrieval {other} is unknown"
            )));
        }
    };
    // The archive: what the job reads, and where this worker was told it is. The job's
    // record decides nothing: a worker given none, or another, is refused.
    let job_archive = state
        .get(Key::Setting("--archive"))?
        .unwrap_or_else(|| "(none)".into());
    let given = super::guard::archive_setting(cfg.archive.as_ref());
    if given != job_archive {
        return Err(Error::Config(match &cfg.archive {
            None => format!(
                "the job reads its recordings from the archive {job_archive}: give this worker the same --archive, --archive-layout, --archive-missing and --archive-settled (and the store's --archive-endpoint)"
            ),
            Some(_) => format!(
                "this worker was given --archive {given}; the job's is {job_archive}. A worker reads the archive the job reads: give the job's settings"
            ),
        }));
    }
    // Whether the job collects orphan recordings (`--collect-orphans`): its items without a
    // conversation id are fetched through the orphan media endpoint.
    let collect_orphans = state
        .get(Key::Setting("--orphans"))?
        .is_some_and(|v| v.contains("--collect-orphans"));
    let tolerance: f64 = setting(state, "--duration-tolerance")?
        .parse()
        .map_err(|_| Error::Config("the job's --duration-tolerance is not a number".into()))?;
    Ok(ExportConfig {
        // The selection is the job's, run by the coordinator: a worker lists the
        // conversations it claims and retrieves the items it claims.
        selection: Selection::Query(String::new()),
        out: cfg.out.clone(),
        matter: None,
        source_organization: None,
        source,
        api_base: cfg.api_base.clone(),
        login_base: cfg.login_base.clone(),
        credentials: cfg.credentials.clone(),
        rate_per_minute: cfg.rate_per_minute,
        concurrency: cfg.concurrency,
        retrieval,
        operator: cfg.operator.clone(),
        custodians: Vec::new(),
        sign_key: None,
        page_size: 100,
        now: None,
        duration_tolerance: Duration::from_secs_f64(tolerance),
        tsa: Vec::new(),
        protect: false,
        restore: None,
        transcripts: false,
        media: Vec::new(),
        // The coordinator lists the orphans; a worker fetches the ones it claims.
        orphans: collect_orphans,
        collect_orphans,
        increment_of: None,
        pubkey: None,
        job_deadline: cfg.job_deadline,
        state: cfg.state.clone(),
        workers: true,
        // Checked above to be the job's.
        archive: cfg.archive.clone(),
    })
}

/// Runs one worker of a distributed job until the job has no item left without an outcome,
/// `stop` completes (its claims come free at once), or its lease lapses ([`Error::Fenced`]).
pub async fn work(
    cfg: &WorkerConfig,
    progress: &dyn Progress,
    stop: impl std::future::Future<Output = String>,
) -> Result<WorkReport> {
    let started = std::time::Instant::now();
    super::check_speed(cfg.concurrency, cfg.rate_per_minute)?;
    // As for an export: the custody record names the person who collected from a real org.
    if cfg.operator.as_deref().is_none_or(|o| o.trim().is_empty())
        && !crate::identity::is_loopback(&cfg.api_base)
    {
        return Err(Error::Config(
            "--operator is required against a real Genesys organization: the custody record names the person who collected, e.g. --operator \"Jane Doe <jane@firm.example>\"".into(),
        ));
    }
    let lease_s = cfg.lease.as_secs();
    if !(2..=3600).contains(&lease_s) {
        return Err(Error::Config(
            "--lease must be between 2 and 3600 seconds".into(),
        ));
    }
    let api = Api::new(
        &cfg.api_base,
        &cfg.login_base,
        cfg.credentials.clone(),
        cfg.rate_per_minute,
    )?;
    let root = cfg.out.clone();
    // The job and the API are the operator's to name: both are checked before the
    // credentials are sent anywhere.
    let peek = State::look(&root, &cfg.state)?;
    let job = job_config(cfg, &peek)?;
    drop(peek);
    api.token(None).await?;
    let client = api.client_id().to_owned();
    let state = State::join(&root, &cfg.state, &client, lease_s as u32)?;
    let lease = state
        .shared()
        .and_then(|s| s.lease())
        .expect("a joined state holds a lease");
    let cell = std::sync::OnceLock::new();
    let mut actor = Actor::here(cfg.operator.as_deref(), Some(&client));
    actor.worker = Some(lease.epoch);
    let shared = state.shared().expect("joined").clone();
    let log = Arc::new(CustodyLog::shared(Arc::new(shared.clone()), &actor));
    api.set_log(log.clone());
    let _ = cell.set(log);
    let ctx = Ctx {
        cfg: &job,
        api,
        state,
        root,
        progress,
        downloads: tokio::sync::Semaphore::new(cfg.concurrency),
        log: &cell,
        previous: None,
    };
    // The organization the token belongs to must be the job's.
    let who = if job.source == SourceKind::Genesys {
        crate::identity::whoami(&ctx.api).await?
    } else {
        None
    };
    let job_org = ctx
        .state
        .get(Key::Identity)?
        .and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok())
        .and_then(|v| v["organization"]["id"].as_str().map(str::to_owned));
    if let (Some(w), Some(j)) = (&who, &job_org)
        && &w.organization_id != j
    {
        shared.end("refused: another organization")?;
        return Err(Error::Config(format!(
            "this worker's OAuth client belongs to organization {}; the job collects from organization {j}",
            w.organization_id
        )));
    }
    ctx.log(
        "worker-started",
        json!({"worker": lease.epoch, "oauthClient": {"id": client, "name": who.as_ref().map(|w| w.oauth_client_name.clone())},
               "host": crate::custody::os_identity(), "pid": std::process::id(), "leaseSeconds": lease_s,
               "apiBase": job.api_base, "ratePerMinute": cfg.rate_per_minute, "concurrency": cfg.concurrency,
               "binary": crate::identity::binary()}),
    )?;
    let heartbeat = async {
        loop {
            tokio::time::sleep(cfg.lease / 3).await;
            shared.heartbeat(ctx.api.throttled())?;
        }
    };
    let no_restores = super::restore::Ledger::default();
    let work = async {
        list_for_job(&ctx, &shared, lease.epoch).await?;
        loop {
            super::retrieve::retrieve(&ctx, &no_restores).await?;
            // What is left is held by other workers: wait while they work it, and take it if
            // their leases lapse.
            if !shared.claim(0)?.others_unfinished {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let result: Result<()> = tokio::select! {
        r = work => r,
        r = heartbeat => r,
        why = stop => Err(Error::Stopped(why)),
    };
    let summary = shared.workers("9999-12-31T00:00:00Z")?;
    let mine = summary.iter().find(|w| w.epoch == lease.epoch);
    match &result {
        Ok(()) => {
            ctx.log(
                "worker-done",
                json!({"worker": lease.epoch, "itemsEnded": mine.map(|w| w.done), "apiCalls": ctx.api.calls(),
                       "throttled": ctx.api.throttled(), "rateLimitWaitMs": ctx.api.limiter.waited().as_millis() as u64}),
            )?;
            shared.end("done: the job has no item left")?;
        }
        Err(Error::Fenced(why)) => {
            ctx.log(
                "worker-fenced",
                json!({"worker": lease.epoch, "why": why, "note": "nothing this worker ended after its lease lapsed was recorded; other workers take its items"}),
            )?;
        }
        Err(Error::Stopped(why)) => {
            // Logged while this worker still counts as working: the coordinator closes the job
            // (and refuses a worker's line) only once no worker does.
            ctx.log(
                "worker-stopped",
                json!({"worker": lease.epoch, "by": why, "note": "its items in flight come free for other workers"}),
            )?;
            shared.end(&format!("stopped: {why}"))?;
        }
        Err(e) => {
            let _ = shared.end(&format!("failed: {e}"));
        }
    }
    result?;
    let tally = shared.tally()?;
    Ok(WorkReport {
        worker: lease.epoch,
        oauth_client: client,
        tally,
        api_calls: ctx.api.calls(),
        throttled: ctx.api.throttled(),
        rate_limit_wait: ctx.api.limiter.waited(),
        elapsed: started.elapsed(),
    })
}
