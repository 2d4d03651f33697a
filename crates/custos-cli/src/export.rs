//! `custos export` and `custos demo`: settings from flags > environment > config file >
//! defaults, credentials from the environment or an owner-only file (never a flag), one call
//! to `custos::export`, then a summary.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use custos::http::Credentials;
use custos::model::Outcome;
use custos::pipeline::{ExportConfig, Report, Retrieval, SourceKind};
use custos::region::Region;
use serde::Deserialize;

use crate::progress::Bars;

#[derive(Clone, Copy, Debug, ValueEnum, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SourceArg {
    /// The real Genesys Cloud Platform API.
    Genesys,
    /// The design guide's search API (not offered by Genesys itself).
    Search,
}

#[derive(Clone, Copy, Debug, ValueEnum, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RetrievalArg {
    /// Batch download requests (≤100 items, original codec).
    Batch,
    /// One transcode per recording, in --format.
    Transcode,
}

/// Options of `custos export`.
#[derive(Args, Debug, Default)]
pub struct ExportArgs {
    /// The query, e.g. 'timestamp:[2023-10-01T00:00:00Z TO 2023-10-02T00:00:00Z} AND userId:"…"' (docs/query.md).
    #[arg(long)]
    pub query: Option<String>,
    /// Export these ids instead of a query: one per line, `conversationId` or
    /// `conversationId,recordingId` (genesys), `recordingId` (search); `#` comments.
    #[arg(long, value_name = "FILE", conflicts_with = "query")]
    pub ids: Option<PathBuf>,
    /// The export directory (a BagIt bag). Re-run the same command to resume.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Matter id, recorded as the bag's External-Identifier.
    #[arg(long)]
    pub matter: Option<String>,
    /// Source API [default: genesys].
    #[arg(long, value_enum)]
    pub source: Option<SourceArg>,
    /// Genesys region: a domain (mypurecloud.ie) or SDK name (eu_west_1) [env: GENESYSCLOUD_REGION; default: mypurecloud.com].
    #[arg(long)]
    pub region: Option<String>,
    /// API base URL instead of a region (gateways, the simulator); http only on loopback.
    #[arg(long)]
    pub api_base: Option<String>,
    /// Login base URL instead of a region [default: the API base with api. → login.].
    #[arg(long)]
    pub login_base: Option<String>,
    /// API requests per minute, shared by all work [default: 300 for genesys, 6000 for search].
    #[arg(long)]
    pub rate: Option<u32>,
    /// Parallel downloads (media files being written at once; API requests in flight are sized
    /// from --rate and the API's response time, not from this) [default: 32].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Genesys retrieval mode [default: batch].
    #[arg(long, value_enum)]
    pub retrieval: Option<RetrievalArg>,
    /// formatId for --retrieval transcode [default: WAV].
    #[arg(long)]
    pub format: Option<String>,
    /// Seconds a file's duration may differ from the API's before the recording is Corrupted
    /// [default: 1].
    #[arg(long, value_name = "SECONDS")]
    pub duration_tolerance: Option<f64>,
    /// The person running the export, e.g. "Jane Doe <jane@firm.example>".
    #[arg(long)]
    pub operator: Option<String>,
    /// Source-Organization for bag-info.txt.
    #[arg(long)]
    pub source_organization: Option<String>,
    /// Sign the bag with this minisign secret key (made by `custos keygen`).
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
    /// TOML config file with any of these options (kebab-case keys).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// TOML file with client-id and client-secret; must be readable by its owner only (chmod 600).
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// Print the report as JSON on stdout (no progress bars).
    #[arg(long)]
    pub json: bool,
    /// When the export is sealed, upload it here (s3://BUCKET/PREFIX or
    /// azure://ACCOUNT/CONTAINER/PREFIX), as `custos upload` does with the options below.
    #[arg(long, value_name = "URL")]
    pub upload: Option<String>,
    #[command(flatten)]
    pub store: crate::upload::StoreArgs,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    query: Option<String>,
    out: Option<PathBuf>,
    matter: Option<String>,
    source: Option<SourceArg>,
    region: Option<String>,
    api_base: Option<String>,
    login_base: Option<String>,
    rate: Option<u32>,
    concurrency: Option<usize>,
    retrieval: Option<RetrievalArg>,
    format: Option<String>,
    duration_tolerance: Option<f64>,
    operator: Option<String>,
    source_organization: Option<String>,
    credentials: Option<PathBuf>,
    sign_key: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CredentialsFile {
    client_id: String,
    client_secret: String,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn read_credentials(path: &Path) -> Result<Credentials, String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| format!("credentials file {}: {e}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "credentials file {} is readable by others (mode {:o}); run: chmod 600 {}",
                path.display(),
                mode & 0o777,
                path.display()
            ));
        }
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("credentials file {}: {e}", path.display()))?;
    let c: CredentialsFile = toml::from_str(&text)
        .map_err(|e| format!("credentials file {}: {}", path.display(), e.message()))?;
    Ok(Credentials {
        client_id: c.client_id,
        client_secret: c.client_secret,
    })
}

/// Downloads at a time by default: each holds a 256 KiB write buffer, so 32 cost about 8 MB,
/// and enough API-hosted downloads (the search API's media, one API request each) are in
/// flight to fill a 100/s budget at 300 ms per call (docs/benchmarks.md).
const DEFAULT_CONCURRENCY: usize = 32;

/// Resolves every setting (flag > env > file > default) into a config, or says what is wrong.
pub fn resolve(args: &ExportArgs) -> Result<ExportConfig, String> {
    resolve_with(args, &env)
}

/// [`resolve`], reading the environment through `env` (tests pass their own).
fn resolve_with(
    args: &ExportArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ExportConfig, String> {
    let file: FileConfig = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("config file {}: {e}", p.display()))?;
            toml::from_str(&text)
                .map_err(|e| format!("config file {}: {}", p.display(), e.message()))?
        }
        None => FileConfig::default(),
    };
    let ids_file = args.ids.clone();
    let query = match ids_file {
        Some(_) => None,
        None => Some(
            args.query
                .clone()
                .or(file.query)
                .ok_or("--query (docs/query.md) or --ids FILE is required")?,
        ),
    };
    let out = args
        .out
        .clone()
        .or(file.out)
        .ok_or("--out is required: the directory the evidence package is written to")?;
    let source = match args.source.or(file.source).unwrap_or(SourceArg::Genesys) {
        SourceArg::Genesys => SourceKind::Genesys,
        SourceArg::Search => SourceKind::Search,
    };
    // Where the API is: a flag (--api-base or --region), then GENESYSCLOUD_REGION, then the
    // config file (api-base or region), then the default region.
    let with_login = |api: String| {
        let login = args
            .login_base
            .clone()
            .or(file.login_base.clone())
            .unwrap_or_else(|| api.replacen("//api.", "//login.", 1));
        (api, login)
    };
    let region_bases = |name: &str| -> Result<(String, String), String> {
        let r = Region::parse(name).map_err(|e| e.to_string())?;
        Ok((r.api_base(), r.login_base()))
    };
    let (api_base, login_base) = if let Some(api) = args.api_base.clone() {
        with_login(api)
    } else if let Some(r) = args.region.clone().or_else(|| env("GENESYSCLOUD_REGION")) {
        region_bases(&r)?
    } else if let Some(api) = file.api_base.clone() {
        with_login(api)
    } else {
        region_bases(file.region.as_deref().unwrap_or("mypurecloud.com"))?
    };
    // Credentials: an explicit --credentials FILE, then the environment, then the config file's.
    let from_env = match (
        env("GENESYSCLOUD_OAUTHCLIENT_ID"),
        env("GENESYSCLOUD_OAUTHCLIENT_SECRET"),
    ) {
        (Some(id), Some(secret)) => Some(Credentials {
            client_id: id,
            client_secret: secret,
        }),
        _ => None,
    };
    let credentials = match (
        args.credentials.as_deref(),
        from_env,
        file.credentials.as_deref(),
    ) {
        (Some(p), _, _) => read_credentials(p)?,
        (None, Some(c), _) => c,
        (None, None, Some(p)) => read_credentials(p)?,
        (None, None, None) => {
            return Err("no credentials: set GENESYSCLOUD_OAUTHCLIENT_ID and GENESYSCLOUD_OAUTHCLIENT_SECRET, or pass --credentials FILE (chmod 600)".into());
        }
    };
    let retrieval = match args
        .retrieval
        .or(file.retrieval)
        .unwrap_or(RetrievalArg::Batch)
    {
        RetrievalArg::Batch => Retrieval::Batch,
        RetrievalArg::Transcode => Retrieval::Transcode(
            args.format
                .clone()
                .or(file.format)
                .unwrap_or_else(|| "WAV".into()),
        ),
    };
    let default_rate = if source == SourceKind::Search {
        6000
    } else {
        300
    };
    let rate = args.rate.or(file.rate).unwrap_or(default_rate);
    let concurrency = args
        .concurrency
        .or(file.concurrency)
        .unwrap_or(DEFAULT_CONCURRENCY);
    let tolerance = args
        .duration_tolerance
        .or(file.duration_tolerance)
        .unwrap_or(1.0);
    if !(tolerance.is_finite() && (0.0..=3600.0).contains(&tolerance)) {
        return Err("--duration-tolerance must be between 0 and 3600 seconds".into());
    }
    Ok(ExportConfig {
        query,
        ids_file,
        out,
        matter: args.matter.clone().or(file.matter),
        source_organization: args
            .source_organization
            .clone()
            .or(file.source_organization),
        source,
        api_base,
        login_base,
        credentials,
        rate_per_minute: rate,
        concurrency,
        retrieval,
        operator: args.operator.clone().or(file.operator),
        sign_key: args.sign_key.clone().or(file.sign_key),
        // The guide's search API pages up to 1000; analytics details pages stay at 100.
        page_size: if source == SourceKind::Search {
            1000
        } else {
            100
        },
        now: None,
        duration_tolerance: std::time::Duration::from_secs_f64(tolerance),
        job_deadline: custos::pipeline::JOB_DEADLINE,
    })
}

fn print_report(r: &Report, json: bool) {
    if json {
        let counts: serde_json::Map<String, serde_json::Value> = r
            .counts
            .iter()
            .map(|(o, n)| (o.as_str().to_owned(), (*n).into()))
            .collect();
        let v = serde_json::json!({
            "out": r.out, "items": r.items, "outcomes": counts, "purged": r.counts[&Outcome::Purged], "bytes": r.bytes,
            "querySha256": r.query_sha256, "manifestSha256": r.manifest_sha256, "resumed": r.resumed,
            "alreadyComplete": r.already_complete, "custodyLogHead": r.custody_log_head, "rateLimitWaitSeconds": r.rate_limit_wait.as_secs_f64(), "signature": r.signature, "apiCalls": r.api_calls, "seconds": r.elapsed.as_secs_f64(),
            "durationChecked": {"checked": r.duration.checked, "of": r.duration.files, "notChecked": r.duration.not_checked},
        });
        out!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return;
    }
    if r.already_complete {
        out!(
            "{}: this export is already complete; nothing was changed.",
            r.out.display()
        );
    }
    out!("Export: {}", r.out.display());
    out!(
        "  items {}  |  {}",
        r.items,
        r.counts
            .iter()
            .map(|(o, n)| format!("{o} {n}"))
            .collect::<Vec<_>>()
            .join("  ")
    );
    out!(
        "  exported {:.1} MB in {:.1} s, {} API calls{}",
        r.bytes as f64 / 1e6,
        r.elapsed.as_secs_f64(),
        r.api_calls,
        if r.resumed { " (resumed)" } else { "" }
    );
    out!(
        "  duration checked {} of {} kept files against the API's stated duration",
        r.duration.checked,
        r.duration.files
    );
    for n in r.duration.not_checked.iter().take(10) {
        out!(
            "    not checked: {} ({})",
            n["recordingId"].as_str().unwrap_or(""),
            n["why"].as_str().unwrap_or("")
        );
    }
    if r.duration.not_checked.len() > 10 {
        out!(
            "    … {} more in data/summary.json",
            r.duration.not_checked.len() - 10
        );
    }
    out!("  query.json SHA-256     {}", r.query_sha256);
    out!("  manifest.csv SHA-256   {}", r.manifest_sha256);
    out!(
        "  custody record         {}",
        r.out.join("data/chain_of_custody.csv").display()
    );
    out!("  custody log head       {}", r.custody_log_head);
    if !r.rate_limit_wait.is_zero() {
        out!(
            "  waited for rate limits {:.1} s (as the API asked: Retry-After / inin-ratelimit-reset)",
            r.rate_limit_wait.as_secs_f64()
        );
    }
    if let Some(sig) = &r.signature {
        out!("  signature              {}", sig.display());
    }
}

fn exit_code(r: &Report) -> i32 {
    if r.counts[&Outcome::Failed] + r.counts[&Outcome::Corrupted] > 0 {
        1
    } else {
        0
    }
}

/// Runs `custos export`.
pub async fn run_export(args: ExportArgs) -> i32 {
    let cfg = match resolve(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("custos: error: {e}");
            return 2;
        }
    };
    if args.upload.is_none() && args.store.is_set() {
        eprintln!(
            "custos: error: storage options (--lock-mode, --sse, --endpoint …) need --upload URL"
        );
        return 2;
    }
    if let Some(url) = &args.upload {
        // Check the upload settings before the export runs, not hours later.
        let checked = custos_store::target::Target::parse(url).and_then(|t| {
            crate::upload::options(&t, &args.store, cfg.sign_key.clone(), cfg.operator.clone())
        });
        if let Err(e) = checked {
            eprintln!("custos: error: {e}");
            return 2;
        }
    }
    let code = run(&cfg, args.json).await;
    match &args.upload {
        Some(url) if code <= 1 => {
            let up = crate::upload::upload(
                &cfg.out,
                url,
                &args.store,
                cfg.sign_key.clone(),
                cfg.operator.clone(),
                args.json,
            )
            .await;
            code.max(up)
        }
        _ => code,
    }
}

async fn run(cfg: &ExportConfig, json: bool) -> i32 {
    let bars = Bars::new(json);
    let result = custos::pipeline::export_until(cfg, &bars, stop_signal()).await;
    bars.finish();
    match result {
        Ok(r) => {
            print_report(&r, json);
            exit_code(&r)
        }
        Err(e) => {
            eprintln!("custos: error: {e:#}");
            match e {
                ref e if e.is_permanent() => 2,
                custos::Error::Stopped(_) => {
                    eprintln!("custos: the export stopped; re-run the same command to resume it");
                    3
                }
                ref e if e.is_disk_full() => {
                    eprintln!(
                        "custos: the disk is full: nothing already exported is lost; free some space (or move the export to a larger disk) and re-run the same command to resume it"
                    );
                    3
                }
                _ => {
                    eprintln!("custos: the export stopped; re-run the same command to resume it");
                    3
                }
            }
        }
    }
}

/// Completes with the signal's name on SIGINT (Ctrl-C) or SIGTERM; never, where signals cannot
/// be listened to.
async fn stop_signal() -> String {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            return tokio::select! {
                _ = int.recv() => "SIGINT".to_owned(),
                _ = term.recv() => "SIGTERM".to_owned(),
            };
        }
    }
    #[cfg(not(unix))]
    if tokio::signal::ctrl_c().await.is_ok() {
        return "Ctrl-C".to_owned();
    }
    std::future::pending().await
}

/// Options of `custos demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where to write the demo export.
    #[arg(long, default_value = "custos-demo")]
    pub out: PathBuf,
    /// Sign the bag with this minisign secret key (made by `custos keygen`).
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
}

/// Where `custos demo` serves its simulator when the port is free.
const DEMO_ADDR: &str = "127.0.0.1:47017";

/// Runs `custos demo`: the embedded simulator, a full export, and a check of the result.
pub async fn run_demo(args: DemoArgs) -> i32 {
    let mut scenario = custos_sim::Scenario {
        conversations: 150,
        // A raised per-token limit (Genesys raises it by support case), matched by the export's --rate.
        api_rate: 6_000,
        max_recording_s: 30,
        seed: 2026,
        transcode_ms: 0,
        batch_ms_per_item: 0,
        async_job_ms: 200,
        ..Default::default()
    };
    // Some recordings are deleted between listing and download (Purged); a few are served
    // shorter than the API states, every time, and a few hold less audio than their metadata
    // claims (both Corrupted, kept in quarantine); a few have a secure pause cut from their
    // audio (Exported: the pause is subtracted from the call's span). Transcode retrieval is
    // used because there the API also states each file's size to check against.
    scenario
        .faults
        .apply_list("purge=0.05,length-under=0.02,duration-lie=0.02,pauses=0.05,fault-attempts=0")
        .expect("valid faults");
    let client = scenario.clients[0].clone();
    let sim = match custos_sim::Sim::new(scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("custos: error: {e}");
            return 2;
        }
    };
    // One port for every demo run when it is free: the API base is a setting of the package,
    // so a re-run into the same directory resumes (or finds it complete) instead of being refused.
    let running = match sim.clone().spawn_on(DEMO_ADDR).await {
        Ok(r) => Ok(r),
        Err(_) => sim.clone().spawn().await,
    };
    let running = match running {
        Ok(r) => r,
        Err(e) => {
            eprintln!("custos: error: cannot listen on 127.0.0.1: {e}");
            return 3;
        }
    };
    let base = running.base_url.clone();
    out!(
        "Simulator: {base} (a Genesys Cloud org of {} recordings)",
        sim.truth().recordings.len()
    );
    let cfg = ExportConfig {
        query: Some("timestamp:[2023-10-01T00:00:00.000Z TO 2023-10-08T00:00:00.000Z}".into()),
        ids_file: None,
        out: args.out.clone(),
        matter: Some("DEMO-0001".into()),
        source_organization: Some("Custos demo".into()),
        source: SourceKind::Genesys,
        api_base: base.clone(),
        login_base: base,
        credentials: Credentials {
            client_id: client.id,
            client_secret: client.secret,
        },
        rate_per_minute: 6000,
        concurrency: 4,
        retrieval: Retrieval::Transcode("WAV".into()),
        operator: Some("custos demo".into()),
        sign_key: args.sign_key.clone(),
        page_size: 100,
        now: None,
        duration_tolerance: std::time::Duration::from_secs(1),
        job_deadline: custos::pipeline::JOB_DEADLINE,
    };
    let code = run(&cfg, false).await;
    if code <= 1 {
        let truth = sim.truth();
        // Every exported file is the WAV rendition the simulator serves, and every item ended
        // as the simulator's ground truth says a correct export must.
        let checked = (|| -> Result<(u64, usize), String> {
            let files = custos::package::validate_bag(&args.out).map_err(|e| e.to_string())?;
            let exported =
                custos::package::exported_hashes(&args.out).map_err(|e| e.to_string())?;
            for (rid, sha) in &exported {
                let t = truth
                    .recordings
                    .iter()
                    .find(|r| &r.id == rid)
                    .ok_or_else(|| format!("{rid} is not in the simulator's catalog"))?;
                let want = &t.formats[&custos_sim::audio::Codec::Wav].sha256;
                if want != sha {
                    return Err(format!(
                        "{rid}: exported SHA-256 {sha} differs from the ground truth {want}"
                    ));
                }
            }
            let outcomes = custos::package::outcomes(&args.out).map_err(|e| e.to_string())?;
            for t in &truth.recordings {
                match outcomes.get(&t.id) {
                    Some(o) if o == &t.expected_outcome => {}
                    other => {
                        return Err(format!(
                            "{}: outcome {other:?}, the ground truth expects {}",
                            t.id, t.expected_outcome
                        ));
                    }
                }
            }
            Ok((files, exported.len()))
        })();
        match checked {
            Ok((files, n)) => {
                out!(
                    "Validated: {files} payload files re-hashed against the bag manifests; all {n} exported recordings, and every item's outcome, match the simulator's ground truth."
                );
                out!(
                    "Check it yourself: bagit.py --validate {0}  ·  cd {0}/data/recordings/<conversation> && sha256sum -c *.sha256",
                    args.out.display()
                );
                // Corrupted items are part of the demo: the export did what it should.
                return 0;
            }
            Err(e) => {
                eprintln!("custos: demo validation failed: {e}");
                return 1;
            }
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_config_file_which_beats_defaults() {
        let dir = std::env::temp_dir().join(format!("custos-resolve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let creds = dir.join("creds.toml");
        std::fs::write(
            &creds,
            "client-id = \"file-id\"\nclient-secret = \"file-secret\"\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let config = dir.join("custos.toml");
        std::fs::write(
            &config,
            format!("rate = 100\nconcurrency = 7\nmatter = \"FROM-FILE\"\nregion = \"mypurecloud.ie\"\nretrieval = \"transcode\"\ncredentials = {:?}\n", creds),
        )
        .unwrap();
        let args = ExportArgs {
            query: Some("timestamp:[2024-01-01T00:00:00Z TO 2024-01-02T00:00:00Z}".into()),
            out: Some(dir.join("out")),
            rate: Some(200),
            config: Some(config.clone()),
            ..Default::default()
        };
        let cfg = resolve(&args).unwrap();
        assert_eq!(cfg.rate_per_minute, 200, "flag beats file");
        assert_eq!(cfg.concurrency, 7, "file beats default");
        assert_eq!(cfg.matter.as_deref(), Some("FROM-FILE"));
        assert_eq!(
            cfg.retrieval,
            Retrieval::Transcode("WAV".into()),
            "default format"
        );
        if env("GENESYSCLOUD_REGION").is_none() {
            assert_eq!(cfg.api_base, "https://api.mypurecloud.ie");
            assert_eq!(cfg.login_base, "https://login.mypurecloud.ie");
        }
        if env("GENESYSCLOUD_OAUTHCLIENT_ID").is_none() {
            assert_eq!(cfg.credentials.client_id, "file-id");
        }
        // The documented precedence holds against the environment too: an explicit
        // --credentials FILE beats GENESYSCLOUD_OAUTHCLIENT_*, and GENESYSCLOUD_REGION beats a
        // config file's api-base (both were the other way round).
        let fake_env = |k: &str| match k {
            "GENESYSCLOUD_OAUTHCLIENT_ID" => Some("env-id".to_owned()),
            "GENESYSCLOUD_OAUTHCLIENT_SECRET" => Some("env-secret".to_owned()),
            "GENESYSCLOUD_REGION" => Some("mypurecloud.jp".to_owned()),
            _ => None,
        };
        std::fs::write(&config, "api-base = \"https://api.gateway.example\"\n").unwrap();
        let mut flagged = ExportArgs {
            query: args.query.clone(),
            out: args.out.clone(),
            config: Some(config.clone()),
            credentials: Some(creds.clone()),
            ..Default::default()
        };
        let cfg = resolve_with(&flagged, &fake_env).unwrap();
        assert_eq!(
            cfg.credentials.client_id, "file-id",
            "the flag beats the env"
        );
        assert_eq!(
            cfg.api_base, "https://api.mypurecloud.jp",
            "the env beats the file"
        );
        flagged.credentials = None;
        let cfg = resolve_with(&flagged, &fake_env).unwrap();
        assert_eq!(
            cfg.credentials.client_id, "env-id",
            "the env beats the file"
        );
        let cfg = resolve_with(&flagged, &|_| None).unwrap_err();
        assert!(cfg.contains("no credentials"), "{cfg}");
        std::fs::write(
            &config,
            format!("api-base = \"https://api.gateway.example\"\ncredentials = {creds:?}\n"),
        )
        .unwrap();
        let cfg = resolve_with(&flagged, &|_| None).unwrap();
        assert_eq!(
            cfg.api_base, "https://api.gateway.example",
            "the file beats the default"
        );
        assert_eq!(cfg.login_base, "https://login.gateway.example");
        assert_eq!(cfg.credentials.client_id, "file-id");
        // Unknown keys in the config file are refused, not ignored.
        std::fs::write(&config, "rat = 100\n").unwrap();
        assert!(resolve(&args).unwrap_err().contains("unknown field"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
