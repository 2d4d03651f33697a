//! Progress bars on a terminal; nothing when stderr is not one (pipes, CI) or with --json.

use std::io::IsTerminal;

use custos::model::Outcome;
use custos::pipeline::{Progress, Stage};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Draws the retrieval bar (items, bytes, rate, ETA) and stage lines.
pub struct Bars {
    bar: ProgressBar,
    bytes: std::sync::atomic::AtomicU64,
}

impl Bars {
    /// Bars if stderr is a terminal and `quiet` is off.
    pub fn new(quiet: bool) -> Bars {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        if quiet || !std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>10} [{bar:30}] {pos}/{len} items  {msg}  {per_sec}  ETA {eta}",
            )
            .expect("template")
            .progress_chars("=> "),
        );
        Bars {
            bar,
            bytes: std::sync::atomic::AtomicU64::new(0),
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
        self.bar.inc_length(items);
    }

    fn item(&self, outcome: Outcome, bytes: u64) {
        if outcome == Outcome::Exported {
            let total = self
                .bytes
                .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed)
                + bytes;
            self.bar
                .set_message(format!("{:.1} MB", total as f64 / 1e6));
        }
        self.bar.inc(1);
    }
}
