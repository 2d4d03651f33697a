//! The `custos-sim` command line (also `custos sim`): flags over an optional scenario file over
//! defaults. Binds loopback only, prints the base URL on stdout, serves until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::audio::Codec;
use crate::scenario::{Client, Scenario, ScenarioError};

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("'{s}' is not an RFC 3339 time (e.g. 2023-10-01T00:00:00Z): {e}"))
}

fn parse_codec(s: &str) -> Result<Codec, String> {
    Codec::from_format_id(s).ok_or_else(|| {
        format!("'{s}' is not a simulated codec (WAV, WAV_ULAW, OGG_OPUS, WEBM, MP3)")
    })
}

/// Options of the simulator. Every scenario-file field has a flag; flags win.
#[derive(Args, Debug, Clone)]
pub struct SimArgs {
    /// Address to listen on; loopback only (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Scenario file (TOML) with any of the options below (kebab-case keys, faults under `[faults]`).
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Accepted OAuth client id [default: custos-sim-client].
    #[arg(long)]
    pub client_id: Option<String>,
    /// Accepted OAuth client secret [default: custos-sim-secret].
    #[arg(long)]
    pub client_secret: Option<String>,
    /// Access-token lifetime, seconds [default: 86400].
    #[arg(long, value_name = "SECONDS")]
    pub token_ttl: Option<u64>,
    /// Catalog and fault seed [default: 1].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of conversations [default: 200].
    #[arg(long)]
    pub conversations: Option<usize>,
    /// Earliest conversation start, RFC 3339 [default: 2023-10-01T00:00:00Z].
    #[arg(long, value_parser = parse_time)]
    pub start: Option<OffsetDateTime>,
    /// Latest conversation start (exclusive), RFC 3339 [default: 2023-10-08T00:00:00Z].
    #[arg(long, value_parser = parse_time)]
    pub end: Option<OffsetDateTime>,
    /// Most recordings per conversation [default: 2].
    #[arg(long)]
    pub max_recordings: Option<u32>,
    /// Shortest recording, seconds [default: 5].
    #[arg(long, value_name = "SECONDS")]
    pub min_recording: Option<u32>,
    /// Longest recording, seconds [default: 90]. Size follows: 8 kHz 16-bit mono WAV is 16 kB/s.
    #[arg(long, value_name = "SECONDS")]
    pub max_recording: Option<u32>,
    /// WAV sample rate [default: 8000].
    #[arg(long)]
    pub sample_rate: Option<u32>,
    /// WAV channels, 1 or 2 [default: 1].
    #[arg(long)]
    pub channels: Option<u16>,
    /// Original codecs to draw from, comma-separated [default: WAV,WAV_ULAW,OGG_OPUS].
    #[arg(long, value_delimiter = ',', value_parser = parse_codec)]
    pub codecs: Option<Vec<Codec>>,
    /// Fraction of recordings ARCHIVED [default: 0.05].
    #[arg(long)]
    pub archived: Option<f64>,
    /// Fraction of recordings DELETED [default: 0.04].
    #[arg(long)]
    pub deleted: Option<f64>,
    /// Latency added to every API response, ms [default: 0].
    #[arg(long)]
    pub latency_ms: Option<u64>,
    /// Bandwidth cap per media download, bytes/s; 0 = none [default: 0].
    #[arg(long)]
    pub bandwidth: Option<u64>,
    /// Platform API requests per token per minute [default: 300].
    #[arg(long)]
    pub api_rate: Option<u32>,
    /// Search-API requests per token per second [default: 100].
    #[arg(long)]
    pub search_rate: Option<u32>,
    /// Transcode time before a recording GET answers 200, ms [default: 1000].
    #[arg(long)]
    pub transcode_ms: Option<u64>,
    /// Time per batch-download result, ms [default: 10].
    #[arg(long)]
    pub batch_ms_per_item: Option<u64>,
    /// Time for an analytics details job to be FULFILLED, ms [default: 1000].
    #[arg(long)]
    pub async_job_ms: Option<u64>,
    /// Media URL lifetime, seconds: 120..=3600, or 0 [default: 3600].
    #[arg(long, value_name = "SECONDS")]
    pub url_ttl: Option<u64>,
    /// Restore time of an archived recording (RESTORING → RESTORED), ms of the simulator's
    /// clock [default: 3000].
    #[arg(long)]
    pub restore_ms: Option<u64>,
    /// Fraction of voice recordings with a Speech & Text Analytics transcript [default: 0.8].
    #[arg(long)]
    pub transcripts: Option<f64>,
    /// Fraction of recorded calls whose agent's screen was recorded too (WebM video)
    /// [default: 0].
    #[arg(long)]
    pub screen: Option<f64>,
    /// Chat, email and messaging conversations (in turn) besides the calls [default: 0].
    #[arg(long)]
    pub digital: Option<usize>,
    /// Orphan recordings (no known conversation) [default: 3].
    #[arg(long)]
    pub orphans: Option<usize>,
    /// Conversations the org may protect from deletion at once [default: 1000].
    #[arg(long)]
    pub protect_limit: Option<usize>,
    /// Calls arrive in simulated time: the clock starts at --start and a conversation exists
    /// once it has ended by the clock (move it with POST /sim/clock?advanceMs=N).
    #[arg(long)]
    pub live: bool,
    /// Do not serve the design guide's search API (as a real Genesys org does not).
    #[arg(long)]
    pub no_search_api: bool,
    /// Faults: `all`, or a comma list of NAME or NAME=VALUE. Names: purge, truncate,
    /// length-over, length-under, fault-attempts, duration-lie, header-lie, pauses, 5xx, 429-storm,
    /// storm-retry-after, token-expiry, drift, duplicates, slow-transcode, expired-urls, damaged-zip,
    /// truncated-eml, short-screen, hostile-ids, archive-missing, archive-altered, archive-metadata,
    /// archive-duplicate, archive-stray, archive-keeps-settled, bulk-failed, bulk-late, bulk-late-ms, bulk-job-fails
    /// (see docs/simulator.md).
    #[arg(long, value_name = "LIST|all")]
    pub faults: Option<String>,
    /// Land the org's recording archive at start into DIR, a bucket's directory of an
    /// S3-compatible server (s3s-fs: ROOT/BUCKET): each AVAILABLE recording and its
    /// `_metadata.json` under the documented keys (docs/simulator.md).
    #[arg(long, value_name = "DIR")]
    pub archive_dir: Option<PathBuf>,
    /// Key prefix of the archive in its bucket, ending in '/' [default: none].
    #[arg(long, value_name = "PREFIX")]
    pub archive_prefix: Option<String>,
    /// The archive fills only through recording bulk jobs (EXPORT): nothing lands at start.
    #[arg(long)]
    pub archive_by_jobs: bool,
    /// The org's "AWS S3 recording bulk actions" integration id, which an EXPORT job must name
    /// [default: 7a1c0de5-0000-4000-8000-0000000053b3].
    #[arg(long)]
    pub integration_id: Option<String>,
    /// Time a recording bulk job takes (READY after half of it; FULFILLED this long after it is
    /// executed), ms [default: 1000].
    #[arg(long)]
    pub recording_job_ms: Option<u64>,
    /// Write the ground truth (JSON) to FILE before printing the base URL.
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
}

impl SimArgs {
    /// The scenario these options describe: defaults, then the file, then the flags.
    pub fn scenario(&self) -> Result<Scenario, ScenarioError> {
        self.read_scenario().map_err(ScenarioError)
    }

    fn read_scenario(&self) -> Result<Scenario, String> {
        let mut s = match &self.scenario {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read scenario {}: {e}", path.display()))?;
                Scenario::from_toml(&text)
                    .map_err(|e| format!("scenario {}: {e}", path.display()))?
            }
            None => Scenario::default(),
        };
        if self.client_id.is_some() || self.client_secret.is_some() {
            let first = s.clients.first().cloned().unwrap_or(Client {
                id: String::new(),
                secret: String::new(),
            });
            s.clients = vec![Client {
                id: self.client_id.clone().unwrap_or(first.id),
                secret: self.client_secret.clone().unwrap_or(first.secret),
            }];
        }
        macro_rules! set {
            ($($flag:ident => $field:ident),* $(,)?) => { $(if let Some(v) = self.$flag.clone() { s.$field = v; })* };
        }
        set!(token_ttl => token_ttl_s, seed => seed, conversations => conversations, start => start, end => end,
            max_recordings => max_recordings_per_conversation, min_recording => min_recording_s,
            max_recording => max_recording_s, sample_rate => sample_rate, channels => channels, codecs => codecs,
            archived => archived_fraction, deleted => deleted_fraction, latency_ms => latency_ms,
            bandwidth => bandwidth, api_rate => api_rate, search_rate => search_rate, transcode_ms => transcode_ms,
            batch_ms_per_item => batch_ms_per_item, async_job_ms => async_job_ms, url_ttl => url_ttl_s,
            restore_ms => restore_ms, protect_limit => protect_limit, orphans => orphans,
            transcripts => transcripts, screen => screen, digital => digital);
        if self.live {
            s.live = true;
        }
        if let Some(d) = &self.archive_dir {
            s.archive_dir = Some(d.clone());
        }
        if let Some(p) = &self.archive_prefix {
            s.archive_prefix = p.clone();
        }
        if self.archive_by_jobs {
            s.archive_by_jobs = true;
        }
        if let Some(id) = &self.integration_id {
            s.integration_id = id.clone();
        }
        if let Some(ms) = self.recording_job_ms {
            s.recording_job_ms = ms;
        }
        if self.no_search_api {
            s.search_api = false;
        }
        if let Some(list) = &self.faults {
            s.faults.apply_list(list)?;
        }
        s.validate()?;
        Ok(s)
    }
}

/// Runs the simulator until Ctrl-C (or SIGTERM).
pub async fn run(args: SimArgs) -> Result<(), ScenarioError> {
    serve_until_stopped(args).await.map_err(ScenarioError)
}

async fn serve_until_stopped(args: SimArgs) -> Result<(), String> {
    if !args.listen.ip().is_loopback() {
        return Err(format!(
            "refusing to listen on {}: the simulator serves loopback only (127.0.0.1 or ::1)",
            args.listen
        ));
    }
    let scenario = args.scenario()?;
    let sim = crate::Sim::new(scenario)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if sim.0.scenario.archive_dir.is_some() {
        let s2 = sim.clone();
        let landed = tokio::task::spawn_blocking(move || s2.land_archive())
            .await
            .map_err(|e| e.to_string())??;
        eprintln!("custos-sim: {landed} recordings landed in the archive");
    }
    if let Some(path) = &args.truth {
        let s2 = sim.clone();
        let truth = tokio::task::spawn_blocking(move || s2.truth())
            .await
            .map_err(|e| e.to_string())?;
        let text = serde_json::to_string_pretty(&truth).expect("truth serialises");
        std::fs::write(path, text)
            .map_err(|e| format!("cannot write truth {}: {e}", path.display()))?;
    }
    // The one line on stdout: scripts read the base URL from it.
    println!("http://{addr}");
    let s = &sim.0.scenario;
    let client = &s.clients[0];
    eprintln!(
        "custos-sim: {} conversations, {} recordings; token URL http://{addr}/oauth/token; Ctrl-C to stop",
        sim.0.catalog.conversations.len(),
        sim.0.catalog.recordings.len()
    );
    // A ready export of everything this simulator holds, for a newcomer to paste.
    eprintln!(
        "custos-sim: export all of it (its OAuth client: {id} / {secret}):\n  {}",
        export_line(&addr, s),
        id = client.id,
        secret = client.secret
    );
    sim.serve(listener, shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

/// `custos export` of this simulator's whole catalog: its credentials, its URL, its dates.
pub fn export_line(addr: &std::net::SocketAddr, s: &crate::Scenario) -> String {
    let client = &s.clients[0];
    format!(
        "GENESYSCLOUD_OAUTHCLIENT_ID={} GENESYSCLOUD_OAUTHCLIENT_SECRET={} custos export --api-base http://{addr} --matter SIM-1 --out ./sim-export --query 'timestamp:[{} TO {}}}'",
        client.id,
        client.secret,
        crate::wire::ts(s.start),
        crate::wire::ts(s.end)
    )
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
