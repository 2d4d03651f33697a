//! `custos export` and `custos demo`: settings from flags > environment > config file >
//! defaults, credentials from the environment or an owner-only file (never a flag), one call
//! to `custos::export`, then a summary.

use std::path::{Path, PathBuf};

use clap::Args;
use custos::export::{ExportConfig, Report, RetrievalMode};
use custos::http::Credentials;
use custos::model::Outcome;
use custos::shown::Shown;

use crate::options::{ExportOptions, env, resolve_with};
use crate::progress::Bars;

fn print_report(r: &Report, json: bool) {
    if json {
        let counts = r.tally.outcomes_json();
        let v = serde_json::json!({
            "out": r.out, "items": r.tally.items, "outcomes": counts, "purged": r.tally[Outcome::Purged], "bytes": r.tally.exported_bytes,
            "querySha256": r.query_sha256, "manifestSha256": r.manifest_sha256, "resumed": r.resumed,
            "alreadyComplete": r.already_complete, "custodyLogHead": r.custody_log_head, "rateLimitWaitSeconds": r.rate_limit_wait.as_secs_f64(), "signature": r.signature, "timestamps": r.timestamps, "apiCalls": r.api_calls, "seconds": r.elapsed.as_secs_f64(),
            // The files not compared are listed whole in data/summary.json; the first few here.
            "durationChecked": {"checked": r.duration.checked, "of": r.duration.files, "notCheckedCount": r.duration.not_checked,
                                "notCheckedFirst": r.duration.first_not_checked, "notCheckedListedIn": "data/summary.json"},
            "completeness": r.completeness,
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
    out!("  items {}  |  {}", r.tally.items, r.tally.counts_text());
    out!(
        "  exported {:.1} MB in {:.1} s, {} API calls{}",
        r.tally.exported_bytes as f64 / 1e6,
        r.elapsed.as_secs_f64(),
        r.api_calls,
        if r.resumed { " (resumed)" } else { "" }
    );
    out!(
        "  duration checked {} of {} kept files against the API's stated duration",
        r.duration.checked,
        r.duration.files
    );
    for n in &r.duration.first_not_checked {
        out!(
            "    not checked: {} ({})",
            Shown(n["recordingId"].as_str().unwrap_or("")),
            Shown(n["why"].as_str().unwrap_or(""))
        );
    }
    let shown = r.duration.first_not_checked.len() as u64;
    if r.duration.not_checked > shown {
        out!(
            "    … {} more in data/summary.json",
            r.duration.not_checked - shown
        );
    }
    print_completeness(&r.completeness);
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
    crate::timestamp::print(&r.timestamps);
}

/// The completeness line: what the query matched that the export does not hold.
fn print_completeness(c: &custos::export::Completeness) {
    // fileState values are the API's words: shown, never obeyed by the terminal.
    let states = c
        .by_file_state
        .iter()
        .map(|(s, n)| format!("{} {n}", Shown(s)))
        .collect::<Vec<_>>()
        .join(", ");
    match (c.conversations_matched, c.conversations_without_recordings) {
        (Some(m), Some(w)) => out!(
            "  completeness: {m} conversations matched, {w} without a recording{}; {} recordings listed ({states}) (data/completeness.json)",
            match c.flagged_recorded_but_unlisted {
                Some(f) if f > 0 => format!(" ({f} flagged as recorded by analytics)"),
                _ => String::new(),
            },
            c.recordings_listed
        ),
        _ => out!(
            "  completeness: {} recordings listed ({states}) (data/completeness.json)",
            c.recordings_listed
        ),
    }
    match c.orphans_in_interval {
        Some(n) if c.orphans_added > 0 => out!(
            "  orphan recordings made in the query's interval (no conversation, so no query finds them): {n}, {} collected (data/orphans/)",
            c.orphans_added
        ),
        Some(n) => out!(
            "  orphan recordings made in the query's interval (no conversation, so no query finds them): {n}"
        ),
        None => {}
    }
    if c.conversations_matched == Some(0) {
        out!(
            "  WARNING: the query matched no conversation: the package is sealed and empty. Check its interval and the ids it names (exit 4)"
        );
    }
    for a in c
        .analytics_data_availability
        .iter()
        .filter(|a| !a.covers_interval)
    {
        out!(
            "  WARNING: the analytics data lake is complete only up to {} ({}), and the job's interval {} ends later: conversations after that date may be missing; export again once it has passed the interval's end (data/completeness.json)",
            a.data_availability_date
                .as_deref()
                .map_or("(not stated)".to_owned(), |d| Shown(d).to_string()),
            a.source,
            Shown(&a.interval)
        );
    }
    if !c.media_not_taken.is_empty() {
        let left: Vec<String> = c
            .media_not_taken
            .iter()
            .map(|(m, n)| format!("{m} {n}"))
            .collect();
        out!(
            "  left out by --media: {} (data/media_excluded.csv)",
            left.join(", ")
        );
    }
}

/// 4 when the query matched no conversation at all (a sealed, empty package is rarely what was
/// meant); 1 when an item failed or is corrupted, or when an analytics job's interval ended past
/// what the data lake holds in full (the query may have matched fewer conversations than exist).
fn exit_code(r: &Report) -> i32 {
    if r.completeness.conversations_matched == Some(0) {
        4
    } else if r.tally[Outcome::Failed] + r.tally[Outcome::Corrupted] > 0
        || r.completeness.analytics_short()
    {
        1
    } else {
        0
    }
}

/// Runs `custos export`.
pub async fn run_export(flags: ExportOptions) -> i32 {
    let (args, mut cfg) = match resolve_with(&flags, &env) {
        Ok(c) => c,
        Err(e) => {
            crate::error(&e);
            return 2;
        }
    };
    match args.from_archive.source(bulk_export(&args)).await {
        Ok(a) => cfg.archive = a,
        Err(e) => {
            crate::error(&e);
            return 2;
        }
    }
    if args.upload.is_none() && args.store.is_set() {
        eprintln!(
            "custos: error: storage options (--lock-mode, --sse, --endpoint …) need --upload URL"
        );
        return 2;
    }
    // The export's key, operator and TSAs receipt its upload too.
    let receipting = crate::upload::Receipting {
        sign_key: cfg.sign_key.clone(),
        operator: cfg.operator.clone(),
        tsa: cfg.tsa.clone(),
    };
    if let Some(url) = &args.upload {
        // Check the upload settings before the export runs, not hours later.
        let checked = custos_store::target::Target::parse(url)
            .map_err(|e| e.to_string())
            .and_then(|t| crate::upload::options(&t, &args.store, receipting.clone()));
        if let Err(e) = checked {
            crate::error(&e);
            return 2;
        }
    }
    if cfg.workers
        && let Some(url) = &args.job_state.state
    {
        // What to start where: the coordinator downloads nothing itself. A job that reads the
        // archive needs it named to each worker (the store's endpoint is each machine's own).
        let archive = match &args.from_archive.archive {
            Some(a) => {
                format!(
                    " --archive '{}'{}{} --archive-endpoint …",
                    Shown(a),
                    args.from_archive
                        .archive_layout
                        .as_deref()
                        .map(|l| format!(" --archive-layout '{}'", Shown(l)))
                        .unwrap_or_default(),
                    args.from_archive
                        .archive_missing
                        .map(|m| format!(" --archive-missing {}", m.as_str()))
                        .unwrap_or_default(),
                ) + match args.from_archive.archive_settled {
                    Some(crate::options::SettledCopies::Read) => " --archive-settled read",
                    _ => "",
                }
            }
            None => String::new(),
        };
        eprintln!(
            "custos: this run coordinates: it opens the job to workers and waits for them. On each machine that shares {dir}, with an OAuth client of its own, start:\n  custos worker {dir} --state '{url}' --api-base {api} --operator '…'{archive}\n(`custos job status {dir} --state '{url}'` says when the job is open and how far it is.)",
            dir = Shown(&cfg.out.display().to_string()),
            url = Shown(url),
            api = Shown(&cfg.api_base),
        );
    }
    let code = run(&cfg, args.json).await;
    match &args.upload {
        // A sealed package is uploaded, empty (4) or not.
        Some(url) if code <= 1 || code == 4 => {
            let up = crate::upload::upload(
                &cfg.out,
                url,
                &args.store,
                receipting,
                args.json,
                crate::upload::Opened::JustSealed,
            )
            .await;
            code.max(up)
        }
        _ => code,
    }
}

/// The export's `--bulk-export` job, as its flags set it.
fn bulk_export(args: &ExportOptions) -> Option<custos::archive::BulkExport> {
    args.bulk_export
        .as_ref()
        .map(|id| custos::archive::BulkExport {
            integration_id: id.clone(),
            deadline: std::time::Duration::from_secs(args.bulk_export_wait.unwrap_or(48 * 3600)),
            grace: std::time::Duration::from_secs(args.landing_grace.unwrap_or(600)),
            poll_max: std::time::Duration::from_secs(30),
        })
}

async fn run(cfg: &ExportConfig, json: bool) -> i32 {
    let bars = Bars::new(json);
    let result = custos::export::export_until(cfg, &bars, stop_signal()).await;
    bars.finish();
    match result {
        Ok(r) => {
            print_report(&r, json);
            exit_code(&r)
        }
        Err(e) => {
            crate::error(&format!("{e:#}"));
            match e {
                ref e if e.is_permanent() => 2,
                // The message says what to do; the exit says "not finished".
                custos::Error::RestoresPending(_) => 3,
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
pub(crate) async fn stop_signal() -> String {
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

/// The demo's org: 150 conversations with every kind of trouble an export meets.
fn demo_scenario() -> custos_sim::Scenario {
    let mut scenario = custos_sim::Scenario {
        conversations: 150,
        // A raised per-token limit (Genesys raises it by support case), matched by the export's --rate.
        api_rate: 6_000,
        max_recording_s: 30,
        seed: 2026,
        transcode_ms: 0,
        batch_ms_per_item: 0,
        async_job_ms: 200,
        // Not only calls: the agents' screens on a tenth of them, and chats, emails and
        // messaging threads.
        screen: 0.1,
        digital: 12,
        ..Default::default()
    };
    // Some recordings are deleted between listing and download (Purged); a few are served
    // shorter than the API states, every time, and a few hold less audio than their metadata
    // claims (both Corrupted, kept in quarantine); a few have a secure pause cut from their
    // audio (Exported: the pause is subtracted from the call's span); a few chat and messaging
    // ZIPs are damaged (Corrupted: a member fails its CRC). Transcode retrieval is used because
    // there the API also states each file's size to check against.
    scenario
        .faults
        .apply_list(
            "purge=0.05,length-under=0.02,duration-lie=0.02,pauses=0.05,fault-attempts=0,damaged-zip=0.2",
        )
        .expect("valid faults");
    scenario
}

/// Runs `custos demo`: the embedded simulator, a full export, and a check of the result.
pub async fn run_demo(args: DemoArgs) -> i32 {
    let scenario = demo_scenario();
    let client = scenario.clients[0].clone();
    let sim = match custos_sim::Sim::new(scenario) {
        Ok(s) => s,
        Err(e) => {
            crate::error(&e);
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
    // The demo's settings, through the same resolution as `custos export`'s flags.
    let demo = ExportOptions {
        query: Some("timestamp:[2023-10-01T00:00:00.000Z TO 2023-10-08T00:00:00.000Z}".into()),
        out: Some(args.out.clone()),
        matter: Some("DEMO-0001".into()),
        source_organization: Some("Custos demo".into()),
        api: crate::options::ApiArgs {
            region: None,
            api_base: Some(base.clone()),
            login_base: Some(base),
        },
        rate: Some(6000),
        concurrency: Some(4),
        retrieval: Some(RetrievalMode::Transcode),
        operator: Some("custos demo".into()),
        sign_key: args.sign_key.clone(),
        // What a reviewer reads beside the calls, and what the query cannot find.
        transcripts: true,
        orphans: true,
        collect_orphans: true,
        ..Default::default()
    };
    let credentials = Credentials {
        client_id: client.id,
        client_secret: client.secret,
    };
    let cfg: ExportConfig = match crate::options::config(&demo, credentials) {
        Ok(c) => c,
        Err(e) => {
            crate::error(&e);
            return 2;
        }
    };
    let code = run(&cfg, false).await;
    if code <= 1 {
        let checked = check_against_truth(&args.out, &sim.truth());
        match checked {
            Ok((files, n)) => {
                out!(
                    "Validated: {files} payload files re-hashed against the bag manifests; all {n} exported recordings, and every item's outcome, match the simulator's ground truth."
                );
                out!(
                    "Check it yourself: bagit.py --quiet --validate {0}  ·  cd {0}/data/recordings/<conversation> && sha256sum -c *.sha256",
                    args.out.display()
                );
                out!(
                    "Read it: {}/report.html (and report.pdf) says what was asked, what was found, what was exported and what was not, and why.",
                    args.out.display()
                );
                out!(
                    "Corrupted items are part of the demo: recordings that downloaded whole but are not what Genesys says they are (shorter than the stated duration, or damaged inside). They are kept in data/quarantine/, outside the evidence, each with its reason in the custody record; nothing failed."
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

/// Every exported file is the WAV rendition the simulator serves, and every item (each orphan
/// recording too) ended as the simulator's ground truth says a correct export must: (payload files re-hashed, recordings
/// exported), or what differs.
fn check_against_truth(out: &Path, truth: &custos_sim::Truth) -> Result<(u64, usize), String> {
    let files = custos::package::validate_bag(out).map_err(|e| e.to_string())?;
    let exported = custos::package::exported_hashes(out).map_err(|e| e.to_string())?;
    for (rid, sha) in &exported {
        // An orphan recording (collected by the interval) is served as WAV.
        if let Some(o) = truth.orphan_media.iter().find(|o| &o.id == rid) {
            if &o.wav_sha256 != sha {
                return Err(format!(
                    "orphan {rid}: exported SHA-256 {sha} differs from the ground truth {}",
                    o.wav_sha256
                ));
            }
            continue;
        }
        let t = truth
            .recordings
            .iter()
            .find(|r| &r.id == rid)
            .ok_or_else(|| format!("{rid} is not in the simulator's catalog"))?;
        // Calls transcoded to WAV; every other type as Genesys keeps it.
        let want = t
            .formats
            .get(&custos_sim::audio::Codec::Wav)
            .map_or(&t.sha256, |f| &f.sha256);
        if want != sha {
            return Err(format!(
                "{rid}: exported SHA-256 {sha} differs from the ground truth {want}"
            ));
        }
    }
    let outcomes = custos::package::outcomes(out).map_err(|e| e.to_string())?;
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
    // Every orphan made in the interval was collected (the demo's query spans the catalog's).
    for o in &truth.orphan_media {
        match outcomes.get(&o.id).map(String::as_str) {
            Some("Exported") => {}
            other => {
                return Err(format!(
                    "orphan {}: outcome {other:?}, the ground truth expects Exported",
                    o.id
                ));
            }
        }
    }
    Ok((files, exported.len()))
}
