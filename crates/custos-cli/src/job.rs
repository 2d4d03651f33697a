//! `custos job status`: how far an export is, read from its job state while it runs (or after
//! it stopped), without taking it: nothing is created, locked or written.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use custos::shown::Shown;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `custos job …`.
#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// How far an export is: its items and their outcomes, what remains, the rate over the
    /// last minutes and the time left at it, and the process working it (exit 0 read, 2 not
    /// an export, or its state could not be opened as given).
    Status(StatusArgs),
}

/// Options of `custos job status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The export directory.
    pub dir: PathBuf,
    /// Where the export keeps its state, as given to `export` (the directory's own job link
    /// never chooses where a password goes).
    #[command(flatten)]
    pub state: crate::options::StateArgs,
    /// The window the rate is measured over, in minutes.
    #[arg(long, default_value_t = 10, value_name = "MINUTES")]
    pub window: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `job status` says, as JSON.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    job_state: String,
    manifest_sealed: bool,
    complete: bool,
    #[serde(flatten)]
    progress: custos::state::JobProgress,
    finished: u64,
    remaining: u64,
    window_minutes: u32,
    per_minute: f64,
    minutes_left: Option<f64>,
    /// A distributed job's state for workers: `listing` (they list the conversations'
    /// recordings), `open` (they retrieve), `closed`, or none (not distributed, or not open
    /// yet).
    work: Option<String>,
    /// A distributed job's workers, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    workers: Vec<custos::state::WorkerRow>,
}

/// Runs `custos job …`.
pub fn run(c: JobCommand) -> i32 {
    match c {
        JobCommand::Status(a) => status(a),
    }
}

fn status(a: StatusArgs) -> i32 {
    if !(1..=1440).contains(&a.window) {
        crate::error(&"--window must be between 1 and 1440 minutes");
        return 2;
    }
    let location = match a.state.location(&crate::options::env) {
        Ok(l) => l,
        Err(e) => {
            crate::error(&e);
            return 2;
        }
    };
    let now = OffsetDateTime::now_utc();
    let since = (now - time::Duration::minutes(a.window.into()))
        .format(&Rfc3339)
        .expect("a time formats");
    let read = || -> custos::Result<Status> {
        let state = custos::state::State::look(&a.dir, &location)?;
        let progress = state.progress(&since)?;
        let manifest_sealed = state.get(custos::state::Key::ManifestSha256)?.is_some();
        let complete = state.get(custos::state::Key::Complete)?.as_deref() == Some("true");
        let finished: u64 = progress.outcomes.values().sum();
        let remaining = progress.items.saturating_sub(finished);
        let per_minute = progress.downloads_since as f64 / f64::from(a.window);
        let work = state
            .get(custos::state::Key::WorkOpen)?
            .map(|v| if v == "true" { "open".into() } else { v });
        let workers = match (&work, state.shared()) {
            (Some(_), Some(shared)) => shared.workers(&since)?,
            _ => Vec::new(),
        };
        Ok(Status {
            work,
            workers,
            job_state: state.place().to_owned(),
            manifest_sealed,
            complete,
            finished,
            remaining,
            window_minutes: a.window,
            per_minute,
            minutes_left: (per_minute > 0.0 && remaining > 0)
                .then(|| remaining as f64 / per_minute),
            progress,
        })
    };
    let s = match read() {
        Ok(s) => s,
        Err(e) => {
            crate::error(&e);
            return if e.is_permanent() { 2 } else { 3 };
        }
    };
    if a.json {
        out!("{}", serde_json::to_string_pretty(&s).expect("json"));
        return 0;
    }
    out!("job state   {}", Shown(&s.job_state));
    out!(
        "worked by   {}",
        Shown(
            s.progress
                .worked_by
                .as_deref()
                .unwrap_or("no process is working this job")
        )
    );
    if let Some(w) = &s.work {
        out!(
            "workers     {}",
            match w.as_str() {
                "open" => "the job is open: start custos worker processes, one per OAuth client",
                "listing" =>
                    "the job is open for listing: start custos worker processes, one per OAuth client",
                _ => "the job is closed to workers",
            }
        );
    }
    for w in &s.workers {
        out!(
            "  worker {} client {} on {} pid {}: {} ended ({:.1} a minute), {} held, {} answered 429, last heartbeat {}, {}",
            w.epoch,
            Shown(&w.oauth_client),
            Shown(&w.host),
            w.pid,
            w.done,
            w.done_since as f64 / f64::from(s.window_minutes),
            w.claimed,
            w.throttled,
            Shown(&w.heartbeat_at),
            match (&w.ended, w.live) {
                (Some(why), _) => format!("ended: {}", Shown(why)),
                (None, true) => "working".into(),
                (None, false) =>
                    "lease lapsed (stopped, killed or cut off); its items are free".into(),
            }
        );
    }
    if !s.manifest_sealed {
        out!("manifest    not sealed yet: the recordings are still being listed");
        return 0;
    }
    let pct = |n: u64| n as f64 * 100.0 / s.progress.items.max(1) as f64;
    out!(
        "finished    {} of {} items ({:.1} %)",
        s.finished,
        s.progress.items,
        pct(s.finished)
    );
    for (outcome, n) in &s.progress.outcomes {
        out!("  {:<10}{n:>8}", Shown(outcome).to_string());
    }
    out!("remaining   {}", s.remaining);
    out!(
        "rate        {:.1} files a minute over the last {} minutes{}",
        s.per_minute,
        s.window_minutes,
        s.progress
            .last_download
            .as_deref()
            .map(|t| format!(" (last download {})", Shown(t)))
            .unwrap_or_default()
    );
    match s.minutes_left {
        Some(m) => out!("time left   about {:.0} minutes at that rate", m.ceil()),
        None if s.remaining > 0 => {
            out!("time left   unknown: nothing was downloaded in the window")
        }
        None => {}
    }
    out!(
        "package     {}",
        if s.complete {
            "sealed"
        } else {
            "not sealed yet"
        }
    );
    0
}
