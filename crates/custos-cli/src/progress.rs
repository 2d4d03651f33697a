//! Progress on a terminal: a spinner with the stage while the work list is being found, then a
//! bar (items, bytes, rate, ETA) during retrieval; nothing when stderr is not a terminal (pipes,
//! CI) or with --json.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use custos::export::{Progress, Stage};
use custos::model::Outcome;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// No bars at all (diagnostics are being written to stderr; bars would tear their lines).
static QUIET: AtomicBool = AtomicBool::new(false);

/// From now on, no progress bars are drawn.
pub fn quiet() {
    QUIET.store(true, Ordering::Relaxed);
}

/// Whether bars are off for the whole run.
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Draws the stage spinner and the retrieval bar.
pub struct Bars {
    bar: ProgressBar,
    bytes: AtomicU64,
}

impl Bars {
    /// Bars if stderr is a terminal and `quiet` is off.
    pub fn new(quiet: bool) -> Bars {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if quiet || is_quiet() || !std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:>10} {msg}  {elapsed}")
                .expect("template"),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Bars {
            bar,
            bytes: AtomicU64::new(0),
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bars {
    fn stage(&self, stage: Stage, detail: &str) {
        self.bar.set_prefix(format!("{stage:?}"));
        self.bar.set_message(detail.to_owned());
    }

    fn total(&self, items: u64) {
        // Called again by a later retrieval pass (restored recordings), which re-reports the
        // items already ended: start the count over.
        self.bar.set_position(0);
        self.bytes.store(0, Ordering::Relaxed);
        self.bar.set_length(items);
        self.bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>10} [{bar:30}] {pos}/{len} items  {msg}  {elapsed} elapsed  ETA {eta}",
            )
            .expect("template")
            .progress_chars("=> "),
        );
        self.bar.set_message("0.0 MB");
    }

    fn item(&self, outcome: Outcome, bytes: u64) {
        if outcome == Outcome::Exported {
            let total = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
            self.bar
                .set_message(format!("{:.1} MB", total as f64 / 1e6));
        }
        self.bar.inc(1);
    }
}
