//! The shared rate budget: evenly spaced slots at the configured rate, a pause for everyone
//! after a 429, and the server's own window (`inin-ratelimit-*`).

use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// What `inin-ratelimit-allowed/count/reset` said about this token's rate window, for the
/// request with this ticket (from [`Limiter::acquire`]), sent at `sent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateWindow {
    /// Requests the window allows.
    pub allowed: u64,
    /// Requests counted in it so far, this one included.
    pub count: u64,
    /// Until it resets, rounded up to whole seconds by the server (at least 1 s here).
    pub reset: Duration,
    /// When the request was sent.
    pub sent: Instant,
    /// The request's ticket.
    pub ticket: u64,
}

impl RateWindow {
    /// Reads the headers; `None` if any is missing or malformed.
    pub fn from_headers(h: &HeaderMap, sent: Instant, ticket: u64) -> Option<RateWindow> {
        let num = |name: &str| h.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
        Some(RateWindow {
            allowed: num("inin-ratelimit-allowed")?,
            count: num("inin-ratelimit-count")?,
            reset: Duration::from_secs(num("inin-ratelimit-reset")?.max(1)),
            sent,
            ticket,
        })
    }

    /// The window is used up: the next request would be refused.
    pub fn exhausted(&self) -> bool {
        self.allowed > 0 && self.count >= self.allowed
    }
}

/// The share of the configured rate the limiter uses (see [`Limiter::new`]).
pub const SAFETY: f64 = 0.99;

/// One rate budget shared by every task: evenly spaced slots at the configured rate (GCRA with
/// no burst), a pause for everyone after a 429, and the server's own window, read from
/// `inin-ratelimit-*`, spent down by every request sent since the newest answer.
pub struct Limiter {
    interval: Duration,
    next: Mutex<Instant>,
    paused_until: Mutex<Option<Instant>>,
    window: std::sync::Mutex<WindowState>,
    /// The first answer has come back (until then, one request at a time: nothing is known
    /// about the server's window yet).
    answered: std::sync::atomic::AtomicBool,
    first_answer: tokio::sync::Notify,
    /// Milliseconds of pause ordered by the server (429 Retry-After, used-up windows).
    waited_ms: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct WindowState {
    /// Tickets issued so far.
    issued: u64,
    /// The current window's start and length, as observed (the answer that counted 1).
    opened: Option<(Instant, Duration)>,
    /// The newest answer: its request's ticket, what was left of the window then, and by when
    /// the window resets at the latest.
    newest: Option<(u64, u64, Instant)>,
    /// The window size last seen.
    allowed: Option<u64>,
    /// The reset last seen (a window's length, at most).
    reset_len: Duration,
}

impl Limiter {
    /// A limiter at `per_minute` requests per minute, less a 1 % safety margin: set to a
    /// server's exact limit, evenly spaced requests would otherwise now and then put one request
    /// too many into a fixed window (timer jitter), and each such 429 costs a whole Retry-After.
    pub fn new(per_minute: u32) -> Limiter {
        Limiter {
            interval: Duration::from_secs_f64(60.0 / (f64::from(per_minute.max(1)) * SAFETY)),
            next: Mutex::new(Instant::now()),
            paused_until: Mutex::new(None),
            window: std::sync::Mutex::new(WindowState::default()),
            answered: std::sync::atomic::AtomicBool::new(false),
            first_answer: tokio::sync::Notify::new(),
            waited_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The requests per second this limiter lets through (before any server window).
    pub fn per_second(&self) -> f64 {
        1.0 / self.interval.as_secs_f64()
    }

    /// Waits for this task's slot; returns the request's ticket, for [`Limiter::observe`].
    /// The window budget is checked when the slot comes, just before the request is sent, so
    /// tickets count requests sent, not requests queued.
    pub async fn acquire(&self) -> u64 {
        use std::sync::atomic::Ordering::SeqCst;
        loop {
            let pause = *self.paused_until.lock().await;
            if let Some(until) = pause.filter(|u| *u > Instant::now()) {
                tokio::time::sleep_until(until).await;
                continue;
            }
            // Until the first answer, one request at a time (but never stuck on a lost one).
            let notified = self.first_answer.notified();
            if self.window.lock().expect("window lock").issued >= 1 && !self.answered.load(SeqCst) {
                if tokio::time::timeout(Duration::from_secs(5), notified)
                    .await
                    .is_err()
                {
                    self.answered.store(true, SeqCst);
                }
                continue;
            }
            let slot = {
                let mut next = self.next.lock().await;
                let now = Instant::now();
                let slot = (*next).max(now);
                *next = slot + self.interval;
                slot
            };
            tokio::time::sleep_until(slot).await;
            if self
                .paused_until
                .lock()
                .await
                .is_some_and(|u| u > Instant::now())
            {
                continue; // a pause began while we waited for the slot
            }
            let hold = {
                let mut st = self.window.lock().expect("window lock");
                let now = Instant::now();
                let window_over = st.opened.is_some_and(|(start, len)| start + len <= now);
                match st.newest {
                    _ if st.issued >= 1 && !self.answered.load(SeqCst) => Some(now),
                    // The observed window is over: what its answers said is spent no longer.
                    Some((ticket, left, _)) if st.issued - ticket >= left && window_over => {
                        let (issued, allowed, len) =
                            (st.issued, st.allowed.unwrap_or(u64::MAX), st.reset_len);
                        st.newest = Some((issued, allowed, now + len));
                        st.opened = None;
                        st.issued += 1;
                        return st.issued;
                    }
                    // The server's window: requests sent since the newest answer spend what it
                    // left; when nothing is left, everyone waits for the next window.
                    Some((ticket, left, reset_by)) if st.issued - ticket >= left => {
                        let until = match st.opened {
                            Some((start, len)) if start + len > now && start + len <= reset_by => {
                                let margin = (len / 100)
                                    .clamp(Duration::from_millis(5), Duration::from_millis(500));
                                start + len + margin
                            }
                            _ => reset_by,
                        };
                        // After the wait, a fresh window as big as the last one was.
                        st.newest = Some((
                            st.issued,
                            st.allowed.unwrap_or(u64::MAX),
                            until + st.reset_len,
                        ));
                        st.opened = None;
                        Some(until)
                    }
                    _ => {
                        st.issued += 1;
                        return st.issued;
                    }
                }
            };
            if let Some(until) = hold {
                self.pause(until.saturating_duration_since(Instant::now()))
                    .await;
            }
        }
    }

    /// Every answer to a ticketed request comes back here, with its rate window if it had one.
    /// A window is spent down by the requests sent after the one answered; when it is used up,
    /// every task waits for the next: until the observed window's end (its start, from the
    /// answer that counted 1, plus its length) and a 1 % margin — exact to the request's send
    /// time rather than to the whole second the reset header is rounded to (a 1-second window
    /// would otherwise lose up to half its throughput) — or, without an observed start, until
    /// the reset.
    pub fn observe(&self, w: Option<RateWindow>) {
        // A window that allows nothing says nothing usable (a broken server): ignore it rather
        // than wait for ever; its 429s still pause everyone.
        if let Some(w) = w.filter(|w| w.allowed > 0) {
            let mut st = self.window.lock().expect("window lock");
            if w.count == 1 {
                st.opened = Some((w.sent, w.reset));
            }
            st.allowed = Some(w.allowed);
            st.reset_len = w.reset;
            // Only a newer answer counts (answers arrive out of order; those from before a
            // window turned over say nothing about the new one).
            if st.newest.is_none_or(|(t, ..)| w.ticket > t) {
                st.newest = Some((
                    w.ticket,
                    w.allowed.saturating_sub(w.count),
                    Instant::now() + w.reset,
                ));
            }
        }
        if !self
            .answered
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            self.first_answer.notify_waiters();
        }
    }

    /// Total pause the server ordered so far.
    pub fn waited(&self) -> Duration {
        Duration::from_millis(self.waited_ms.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Pauses every task for `d` (a 429's Retry-After).
    pub async fn pause(&self, d: Duration) {
        let now = Instant::now();
        let until = now + d;
        let mut p = self.paused_until.lock().await;
        let current = p.filter(|cur| *cur > now).unwrap_or(now);
        if until > current {
            tracing::info!(
                wait_s = d.as_secs_f64(),
                "the API asked us to slow down: every request waits"
            );
            // Count only the extension, so overlapping pauses from parallel tasks add up once.
            self.waited_ms.fetch_add(
                (until - current).as_millis() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            *p = Some(until);
        }
    }
}
