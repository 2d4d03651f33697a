//! One export, stage by stage: query → sealed manifest → retrieval → seal. Each stage writes
//! its artefact (docs/formats.md) and records itself in the job state, so a re-run after a
//! crash continues where it stopped and a re-run of a finished export changes nothing.
//!
//! Dependencies run one way: this module drives the stages; every stage reads `config` and
//! `context`; no stage calls another.

mod bulk;
mod chain;
mod completeness;
mod config;
mod context;
mod directory;
mod guard;
mod json_list;
mod manifest;
mod orphans;
mod people;
mod protect;
mod query;
mod restore;
mod retrieve;
mod seal;
mod timestamp;
mod transcripts;
mod workers;

use crate::package::files;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;

pub use chain::{CHAIN_FILE, PRIOR_FILE, read_prior};
pub use completeness::{COMPLETENESS_FILE, Completeness};
pub use config::{
    DEFAULT_RESTORE_DAYS, ExportConfig, JOB_DEADLINE, MAX_CONCURRENCY, MAX_RATE_PER_MINUTE,
    RestoreArchived, Retrieval, RetrievalMode, Selection, SourceKind,
};
pub use context::{NoProgress, Progress, Stage};
pub use manifest::MEDIA_EXCLUDED_FILE;
pub use seal::DurationCoverage;
pub use timestamp::Stamp;
pub use workers::{WorkReport, WorkerConfig, work};

use crate::custody::{Actor, CustodyLog};
use crate::error::{Error, Result};
use crate::http::Api;
use crate::ids::IdList;
use crate::model::Tally;
use crate::query::Query;
use crate::source::{Selector, Source};
use crate::state::{Existing, Key, State};
use context::Ctx;
use guard::{
    check_out, compare_settings, empty_or_our_skeleton, lock, recheck_written, remove_partials,
    settings,
};

/// What an export came to.
#[derive(Clone, Debug)]
pub struct Report {
    /// The export directory.
    pub out: PathBuf,
    /// Manifest items per outcome (every outcome present, zeros included), and bytes exported.
    pub tally: Tally,
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
    /// RFC 3161 timestamps asked for this run (each TSA tried, and what it said).
    pub timestamps: Vec<timestamp::Stamp>,
    /// Wall time of this run.
    pub elapsed: Duration,
    /// Kept files whose duration was compared with the API's, and why the others were not.
    pub duration: DurationCoverage,
    /// What the query matched that the export does not hold (data/completeness.json).
    pub completeness: Completeness,
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

async fn run(
    cfg: &ExportConfig,
    progress: &dyn Progress,
    log_cell: &std::sync::OnceLock<Arc<CustodyLog>>,
) -> Result<Report> {
    let started = std::time::Instant::now();
    let now = cfg.now.unwrap_or_else(OffsetDateTime::now_utc);
    let (source, sign_key) = check_input(cfg, now)?;
    let api = Api::new(
        &cfg.api_base,
        &cfg.login_base,
        cfg.credentials.clone(),
        cfg.rate_per_minute,
    )?;
    let root = cfg.out.clone();
    check_out(&root)?;
    // Where this export's job state already is (the SQLite file, or a PostgreSQL job named in
    // .custos/job.json), and a --state that is not there refused, before anything is written.
    let existing = Existing::of(&root)?;
    existing.check(&root, &cfg.state)?;
    if existing == Existing::None && root.exists() && !empty_or_our_skeleton(&root)? {
        return Err(Error::OutputDir {
            path: root,
            message: "exists, is not empty and holds no custos export; choose a new directory"
                .into(),
        });
    }
    // Credentials are proven before the first file is written.
    api.token(None).await?;
    // Custodians are people the Users API names, one each, before anything is written; the
    // query is narrowed to them (on a resume too, so a changed answer is a changed query).
    let (source, custodians) = match (source, cfg.custodians.is_empty()) {
        (source, true) => (source, None),
        (Source::Genesys(Selector::Query(q)), false) => {
            let found = people::custodians(&api, &cfg.custodians).await?;
            let ids: Vec<String> = found.iter().map(|c| c.user_id.clone()).collect();
            let narrowed = q.with_users(&ids).map_err(Error::Config)?;
            (
                Source::Genesys(Selector::Query(narrowed)),
                Some((q.text().to_owned(), found)),
            )
        }
        _ => {
            return Err(Error::Config(
                "--custodian narrows a query on the genesys source; with --ids or --source search, list the recordings themselves".into(),
            ));
        }
    };
    // An increment's previous bag is verified before the first file is written.
    let previous = chain::previous_bag(cfg, &source.selector().canonical(), sign_key.as_ref())?;
    let resuming = existing != Existing::None;
    // So are the people a new export's query names (a name where an id belongs is refused).
    let people = match (&source, resuming) {
        (Source::Genesys(Selector::Query(q)), false) => people::check(&api, q).await?,
        _ => None,
    };
    for d in [root.join(".custos"), root.join("data")] {
        crate::durable::make_dirs(&d)?;
    }
    let _lock = lock(&root)?;
    tracing::info!(out = %root.display(), source = cfg.source.as_str(), resuming, "export");
    let state = State::open_export(&root, &cfg.state, &existing)?;
    let ctx = Ctx {
        cfg,
        api,
        state,
        root,
        progress,
        downloads: tokio::sync::Semaphore::new(cfg.concurrency),
        log: log_cell,
        previous,
    };
    if let Some(prev) = ctx.state.get(Key::QueryCanonical)?
        && prev != source.selector().canonical()
    {
        return Err(Error::OutputDir {
            path: ctx.root.clone(),
            message: format!(
                "holds an export of a different query ({prev}); choose a new directory"
            ),
        });
    }
    compare_settings(
        &ctx,
        &settings(cfg, sign_key.as_ref(), ctx.previous.as_ref()),
    )?;
    // A job open to workers keeps its custody log in the database from its first line.
    if cfg.workers && ctx.state.get(Key::Distributed)?.is_none() {
        ctx.state.set(Key::Distributed, "true")?;
    }
    if ctx.state.get(Key::Complete)?.as_deref() == Some("true")
        && ctx.root.join(files::TAG_MANIFEST).exists()
    {
        let stamps = timestamp::stamp_all(&ctx).await?;
        let mut r = report(&ctx, started, resuming, true)?;
        r.timestamps = stamps;
        return Ok(r);
    }
    if resuming {
        recheck_written(&ctx)?;
    }
    remove_partials(&ctx.root.join("data"))?;
    open_log(&ctx, resuming, sign_key.as_ref())?;
    identify(&ctx).await?;
    if let Some(people::Checked(fields)) = people {
        ctx.log("query-people-checked", fields)?;
    }
    if let Some((given, found)) = &custodians
        && !resuming
    {
        ctx.log(
            "custodians-resolved",
            json!({"queryAsGiven": given, "custodians": found,
                   "narrowedQuery": source.selector().canonical()}),
        )?;
    }

    progress.stage(Stage::Query, "recording the query");
    tracing::info!(stage = "query", "recording the query");
    if ctx.state.get(Key::QuerySha256)?.is_none() {
        query::write_query(&ctx, &source, custodians.as_ref(), now)?;
    }
    progress.stage(Stage::Manifest, "finding recordings");
    tracing::info!(stage = "manifest", "finding recordings");
    if ctx.state.get(Key::ManifestSha256)?.is_none() {
        manifest::build_manifest(&ctx, &source, now).await?;
    }
    before_retrieval(&ctx).await?;
    retrieval(&ctx).await?;
    // What this run paused for the rate budget (429 Retry-After, exhausted windows): the
    // report's timeline sums it over the runs that finished retrieving.
    ctx.log(
        "retrieval-done",
        json!({"rateLimitWaitMs": ctx.api.limiter.waited().as_millis() as u64, "apiCalls": ctx.api.calls()}),
    )?;
    progress.stage(Stage::Package, "writing the custody record and the bag");
    tracing::info!(stage = "package", "writing the custody record and the bag");
    seal::seal(&ctx, sign_key.as_ref())?;
    ctx.state.set(Key::Complete, "true")?;
    let stamps = timestamp::stamp_all(&ctx).await?;
    let mut r = report(&ctx, started, resuming, false)?;
    r.timestamps = stamps;
    Ok(r)
}

/// The selection read and every setting checked, before anything is written: the source with
/// its selection, and the signing key.
fn check_input(
    cfg: &ExportConfig,
    now: OffsetDateTime,
) -> Result<(Source, Option<minisign::SecretKey>)> {
    let selector = match &cfg.selection {
        Selection::Query(q) => Selector::Query(Query::parse(q)?),
        Selection::Ids(f) => Selector::Ids(IdList::read(f, cfg.source == SourceKind::Genesys)?),
    };
    let source = Source::new(cfg.source, selector);
    check_speed(cfg.concurrency, cfg.rate_per_minute)?;
    if let Source::Genesys(Selector::Query(query)) = &source {
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
    if cfg.workers && cfg.state == crate::state::StateLocation::Local {
        return Err(Error::Config(
            "--workers keeps the job where every worker reaches it: give --state postgres://… (docs/scale.md)".into(),
        ));
    }
    if cfg.archive.is_some() {
        let why = if cfg.source == SourceKind::Search {
            Some("the search API has no organization archive")
        } else if matches!(cfg.selection, Selection::Ids(_)) {
            Some(
                "the archive's folders are named by each conversation's start, which a query's analytics records give: select with --query",
            )
        } else if cfg.workers && cfg.archive.as_ref().is_some_and(|a| a.bulk.is_some()) {
            Some(
                "--bulk-export with --workers is not done yet: run the bulk export without --workers, or have the job written first and then collect with --workers",
            )
        } else {
            None
        };
        if let Some(why) = why {
            return Err(Error::Config(format!("--archive: {why}")));
        }
    }
    if cfg.restore.is_some() && cfg.archive.as_ref().is_some_and(|a| a.read_settled) {
        return Err(Error::Config(
            "--archive-settled read with --restore-archived: an archived recording is either restored at the source or read from the archive's copy; choose one (docs/archive.md)".into(),
        ));
    }
    if cfg.collect_orphans && !cfg.orphans {
        return Err(Error::Config(
            "collecting orphan recordings lists them first: set orphans with collect_orphans (the CLI's --collect-orphans does)".into(),
        ));
    }
    if cfg.collect_orphans && matches!(cfg.selection, Selection::Ids(_)) {
        return Err(Error::Config(
            "--collect-orphans collects the orphans made in a query's interval: select with --query".into(),
        ));
    }
    if cfg.source == SourceKind::Search
        && (cfg.protect || cfg.restore.is_some() || cfg.orphans || cfg.transcripts)
    {
        return Err(Error::Config(
            "--protect, --restore-archived, --orphans and --transcripts use the Genesys Platform API; the search API has no deletion protection, restores, orphan recordings or transcripts".into(),
        ));
    }
    if let Some(r) = &cfg.restore
        && !(1..=3650).contains(&r.days)
    {
        return Err(Error::Config(
            "--restore-days must be between 1 and 3650".into(),
        ));
    }
    // The custody record names the person who collected from a real organization.
    if cfg.operator.as_deref().is_none_or(|o| o.trim().is_empty())
        && !crate::identity::is_loopback(&cfg.api_base)
    {
        return Err(Error::Config(
            "--operator is required against a real Genesys organization: the custody record names the person who collected, e.g. --operator \"Jane Doe <jane@firm.example>\" (or operator in --config)".into(),
        ));
    }
    let sign_key = cfg
        .sign_key
        .as_deref()
        .map(crate::sign::load_secret_key)
        .transpose()?;
    Ok((source, sign_key))
}

/// `--concurrency` and `--rate` within their bounds.
fn check_speed(concurrency: usize, rate_per_minute: u32) -> Result<()> {
    if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
        return Err(Error::Config(format!(
            "--concurrency must be between 1 and {MAX_CONCURRENCY}"
        )));
    }
    if !(1..=MAX_RATE_PER_MINUTE).contains(&rate_per_minute) {
        return Err(Error::Config(format!(
            "--rate must be between 1 and {MAX_RATE_PER_MINUTE} requests per minute"
        )));
    }
    Ok(())
}

/// Who and where, in the custody log before anything is listed (every run, so a resume by
/// another client or machine is recorded too) and for bag-info: the organization and OAuth
/// client the token belongs to (Genesys source), the API and login hosts, the machine, the
/// binary, and the clock against the API's.
async fn identify(ctx: &Ctx<'_>) -> Result<()> {
    let source = match ctx.cfg.source {
        SourceKind::Genesys => crate::identity::whoami(&ctx.api).await?,
        SourceKind::Search => None,
    };
    let offset = source.as_ref().and_then(|s| s.clock_offset_s);
    if let Some(o) = offset.filter(|o| o.abs() > crate::identity::CLOCK_WARN_S) {
        tracing::warn!(
            offset_s = o,
            "this machine's clock differs from the API's; the times custos records are off by as much"
        );
    }
    let fields = json!({
        "organization": source.as_ref().map(|s| json!({"id": s.organization_id, "name": s.organization_name})),
        "oauthClient": source.as_ref().map(|s| json!({"id": s.oauth_client_id, "name": s.oauth_client_name, "authorizedScope": s.authorized_scope})).unwrap_or(json!({"id": ctx.api.client_id()})),
        "reportedBy": source.as_ref().map_or("not reported: the API does not answer GET /api/v2/tokens/me", |_| crate::identity::TOKENS_ME),
        "apiBase": ctx.cfg.api_base, "loginBase": ctx.cfg.login_base,
        "host": crate::custody::os_identity(), "operator": ctx.cfg.operator,
        "binary": crate::identity::binary(),
        "serverDate": source.as_ref().and_then(|s| s.server_date.clone()),
        "clockOffsetSeconds": offset,
    });
    ctx.log("source-identified", fields.clone())?;
    ctx.state.set(Key::Identity, &fields.to_string())
}

/// Opens the custody log (the API records every response in it from now on) and records this
/// run with its settings.
fn open_log(ctx: &Ctx<'_>, resuming: bool, sign_key: Option<&minisign::SecretKey>) -> Result<()> {
    let cfg = ctx.cfg;
    let actor = Actor::here(cfg.operator.as_deref(), Some(ctx.api.client_id()));
    let log = Arc::new(match ctx.state.shared().filter(|_| cfg.workers) {
        Some(shared) => CustodyLog::shared(Arc::new(shared.clone()), &actor),
        None => CustodyLog::open(&ctx.root.join(files::CUSTODY_LOG), &actor)?,
    });
    ctx.api.set_log(log.clone());
    let _ = ctx.log.set(log);
    ctx.log("export-run", json!({"resumed": resuming, "source": cfg.source.as_str(), "apiBase": cfg.api_base, "loginBase": cfg.login_base, "matter": cfg.matter, "pid": std::process::id(), "jobState": ctx.state.place(),
        "settings": settings(cfg, sign_key, ctx.previous.as_ref()).into_iter().map(|(k, v)| (k.trim_start_matches("--").to_owned(), json!(v))).collect::<serde_json::Map<_, _>>()}))?;

    Ok(())
}

/// After the manifest, before any media request: the hold at the source (`--protect`), the
/// orphan listing (`--orphans`), the directory's names, and the restore requests
/// (`--restore-archived`).
async fn before_retrieval(ctx: &Ctx<'_>) -> Result<()> {
    let (cfg, progress) = (ctx.cfg, ctx.progress);
    if cfg.protect {
        progress.stage(
            Stage::Manifest,
            "putting every conversation under deletion protection",
        );
        tracing::info!(stage = "protect", "deletion protection at the source");
        protect::protect(ctx).await?;
    }
    if cfg.orphans {
        progress.stage(Stage::Manifest, "listing orphan recordings");
        orphans::list(ctx).await?;
    }
    progress.stage(Stage::Manifest, "naming who and what the calls involve");
    tracing::info!(stage = "directory", "naming the ids the conversations hold");
    directory::record_names(ctx).await?;
    if let Some(r) = &cfg.restore {
        tracing::info!(
            stage = "restore",
            "asking for archived recordings to be restored"
        );
        restore::request(ctx, r).await?;
    }
    Ok(())
}

/// Every item to an outcome: the downloads, then (`--restore-archived`) the wait for the
/// restores and the restored recordings' downloads.
async fn retrieval(ctx: &Ctx<'_>) -> Result<()> {
    let progress = ctx.progress;
    if ctx.cfg.workers {
        progress.stage(Stage::Retrieval, "waiting for the workers");
        tracing::info!(stage = "retrieval", "waiting for the workers");
        workers::await_workers(ctx).await?;
        workers::assemble(ctx)?;
    } else {
        progress.stage(Stage::Retrieval, "downloading");
        tracing::info!(stage = "retrieval", "downloading");
        retrieve::retrieve(ctx, &restore::Ledger::read(ctx)?).await?;
    }
    if let Some(r) = &ctx.cfg.restore {
        restore::wait(ctx, r).await?;
        progress.stage(Stage::Retrieval, "downloading the restored recordings");
        retrieve::retrieve(ctx, &restore::Ledger::read(ctx)?).await?;
    }
    if let Some(a) = &ctx.cfg.archive {
        progress.stage(Stage::Retrieval, "reconciling the archive's folders");
        retrieve::reconcile_archive(ctx, a).await?;
    }
    if ctx.cfg.transcripts {
        progress.stage(Stage::Retrieval, "collecting transcripts");
        transcripts::collect(ctx).await?;
    }
    transcripts::render_digital(ctx)
}

fn report(
    ctx: &Ctx<'_>,
    started: std::time::Instant,
    resumed: bool,
    already: bool,
) -> Result<Report> {
    let mut tally = Tally::default();
    let mut duration = DurationCoverage::default();
    ctx.state.for_each(|it, d| {
        match d {
            Some(d) => {
                duration.add(&it, &d);
                tally.add(d.outcome, d.bytes);
            }
            // Not ended yet (a stopped run): counted as an item, in no outcome.
            None => tally.items += 1,
        }
        Ok(())
    })?;
    Ok(Report {
        out: ctx.root.clone(),
        tally,
        query_sha256: ctx.state.get(Key::QuerySha256)?.unwrap_or_default(),
        manifest_sha256: ctx.state.get(Key::ManifestSha256)?.unwrap_or_default(),
        resumed,
        already_complete: already,
        api_calls: ctx.api.calls(),
        custody_log_head: ctx.state.get(Key::CustodyLogHead)?.unwrap_or_default(),
        rate_limit_wait: ctx.api.limiter.waited(),
        signature: Some(ctx.root.join(files::SIGNATURE)).filter(|p| p.exists()),
        timestamps: Vec::new(),
        elapsed: started.elapsed(),
        duration,
        completeness: completeness::recorded(&ctx.root),
    })
}
