//! `custos worker DIR --state postgres://…`: one worker of a distributed export
//! (docs/scale.md). Its OAuth client, rate and concurrency are its own; the job, its settings
//! and its API are the coordinator's, read from the job state and checked against what the
//! operator gave this worker (credentials go only to the API named here).

use std::path::PathBuf;

use clap::Args;
use custos::export::{JOB_DEADLINE, WorkerConfig};

use crate::options::{ExportOptions, StateArgs, api_location, env, env_credentials};

/// Options of `custos worker`.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The export directory the coordinator (`custos export --workers`) made, shared by every
    /// worker (the same path, or the same network file system, on each machine).
    pub dir: PathBuf,
    /// The job state, as given to the coordinator.
    #[command(flatten)]
    pub state: StateArgs,
    /// Where the API is, as for export; it must be the job's.
    #[command(flatten)]
    pub api: crate::options::ApiArgs,
    /// TOML file with this worker's client-id and client-secret (chmod 600) [default:
    /// GENESYSCLOUD_OAUTHCLIENT_ID and _SECRET]. One worker per OAuth client.
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// This worker's API requests per minute (its client's budget) [default: 300].
    #[arg(long)]
    pub rate: Option<u32>,
    /// Parallel downloads [default: 32].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// The person running this worker, e.g. "Jane Doe <jane@firm.example>".
    #[arg(long)]
    pub operator: Option<String>,
    /// Seconds the lease runs after each heartbeat (one every third of it): a worker silent
    /// longer is fenced, and its items are claimed by others.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub lease: u64,
    /// The organization's archive, when the job reads its recordings from there: the job's
    /// --archive, --archive-layout and --archive-missing, and where this machine reaches the
    /// store (--archive-endpoint, --archive-region; credentials from the AWS default chain).
    #[command(flatten)]
    pub from_archive: crate::options::ArchiveArgs,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `custos worker`.
pub async fn run(a: WorkerArgs) -> i32 {
    let mut cfg = match config(&a) {
        Ok(c) => c,
        Err(e) => {
            crate::error(&e);
            return 2;
        }
    };
    match a.from_archive.source(None).await {
        Ok(archive) => cfg.archive = archive,
        Err(e) => {
            crate::error(&e);
            return 2;
        }
    }
    let bars = crate::progress::Bars::new(a.json);
    let result = custos::export::work(&cfg, &bars, crate::export::stop_signal()).await;
    bars.finish();
    match result {
        Ok(r) => {
            if a.json {
                out!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "worker": r.worker, "oauthClient": r.oauth_client, "items": r.tally.items,
                        "outcomes": r.tally.outcomes_json(), "bytes": r.tally.exported_bytes,
                        "apiCalls": r.api_calls, "throttled": r.throttled,
                        "rateLimitWaitSeconds": r.rate_limit_wait.as_secs_f64(),
                        "seconds": r.elapsed.as_secs_f64(),
                    }))
                    .expect("json")
                );
            } else {
                out!(
                    "Worker {} ({}): ended {} items  |  {}",
                    r.worker,
                    custos::shown::Shown(&r.oauth_client),
                    r.tally.items,
                    r.tally.counts_text()
                );
                out!(
                    "  {:.1} MB in {:.1} s, {} API calls, {} answered 429",
                    r.tally.exported_bytes as f64 / 1e6,
                    r.elapsed.as_secs_f64(),
                    r.api_calls,
                    r.throttled
                );
                out!("  the job has no item left; the coordinator seals the bag");
            }
            0
        }
        Err(e) => {
            crate::error(&format!("{e:#}"));
            if e.is_permanent() {
                2
            } else {
                eprintln!("custos: this worker stopped; run it again to rejoin the job");
                3
            }
        }
    }
}

fn config(a: &WorkerArgs) -> Result<WorkerConfig, crate::options::OptionsError> {
    let mut api = a.api.clone();
    if api.api_base.is_none() && api.region.is_none() {
        api.region = env("GENESYSCLOUD_REGION");
    }
    let location = ExportOptions {
        api,
        ..Default::default()
    };
    let (api_base, login_base) = api_location(&location)?;
    let credentials = match &a.credentials {
        Some(p) => crate::options::read_credentials(p)?,
        None => env_credentials(&env).ok_or(
            "no credentials: set GENESYSCLOUD_OAUTHCLIENT_ID and GENESYSCLOUD_OAUTHCLIENT_SECRET, or pass --credentials FILE (chmod 600)",
        )?,
    };
    a.from_archive.check()?;
    let state = a.state.location(&env)?;
    if state == custos::state::StateLocation::Local {
        return Err("--state postgres://… is required: a worker joins a job kept in PostgreSQL (the coordinator's --state)".into());
    }
    Ok(WorkerConfig {
        out: a.dir.clone(),
        state,
        api_base,
        login_base,
        credentials,
        rate_per_minute: a.rate.unwrap_or(300),
        concurrency: a.concurrency.unwrap_or(crate::options::DEFAULT_CONCURRENCY),
        operator: a.operator.clone(),
        lease: std::time::Duration::from_secs(a.lease),
        job_deadline: JOB_DEADLINE,
        // Connected by `run`: the store is reached over the network.
        archive: None,
    })
}
