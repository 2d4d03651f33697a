//! The only code that sends requests to the API: one HTTP client, one shared rate budget, one
//! function that decides retry-or-give-up, and the OAuth token.
//!
//! Every API call, from any task, passes [`Limiter::acquire`], so parallel work never exceeds the
//! configured rate; a 429 pauses the *whole client* for its Retry-After, not just the task that
//! got it. Media URLs are not API calls: they bypass the limiter and never carry the token.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::{Error, Result};

/// The largest JSON body we accept from the API (a defence against hostile or broken servers).
pub const MAX_JSON_BYTES: usize = 64 * 1024 * 1024;

/// OAuth client credentials. The secret's `Debug` is redacted: it is never printed or logged.
#[derive(Clone)]
pub struct Credentials {
    /// Client id (recorded as the exporter's identity).
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// Refuses an API or login base that carries a user name, password, query or fragment, plain
/// http except on loopback, and anything that is not http(s). Never repeats what it refuses.
pub fn check_base_url(what: &str, url: &str) -> Result<()> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| Error::Config(format!("{what} is not a URL: {e}")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::Config(format!(
            "{what} must not carry a user name or password (it would be recorded in the package); give credentials through GENESYSCLOUD_OAUTHCLIENT_ID/SECRET or --credentials"
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(Error::Config(format!(
            "{what} must not carry a query string or fragment (it may hold a secret, and would be recorded in the package): give scheme, host, port and path only"
        )));
    }
    check_url_scheme(what, url, &parsed)
}

/// Refuses plain http except on loopback, and anything that is not http(s) (media URLs, which
/// carry their pre-signature in the query, are checked with this alone).
pub fn check_media_url(what: &str, url: &str) -> Result<()> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| Error::Config(format!("{what} is not a URL: {e}")))?;
    check_url_scheme(what, url, &parsed)
}

fn check_url_scheme(what: &str, url: &str, parsed: &reqwest::Url) -> Result<()> {
    let url = crate::custody::redact_url(url);
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "{what} '{url}' uses plain http; only https is allowed, except on loopback (127.0.0.1, ::1, localhost)"
                )))
            }
        }
        other => Err(Error::Config(format!(
            "{what} '{url}': scheme {other} is not supported; use https"
        ))),
    }
}

/// How a connection failed, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Refused or unreachable (nobody listening, no route).
    Connect,
    /// The name did not resolve.
    Dns,
    /// No answer in time.
    Timeout,
    /// Reset, aborted, closed mid-exchange.
    Reset,
    /// Fewer body bytes than Content-Length said (a cut transfer).
    Short,
    /// More body bytes than Content-Length or the API said: cut off and refused.
    Long,
    /// TLS failed: a bad certificate or protocol. Retrying would not help, and may hide an attack.
    Tls,
    /// Anything else the client reports (a bad redirect, an unbuildable request).
    Other,
}

impl Transport {
    /// Classifies an I/O error kind found in a failure's source chain.
    pub fn from_io(kind: std::io::ErrorKind) -> Transport {
        use std::io::ErrorKind as K;
        match kind {
            K::ConnectionRefused
            | K::AddrNotAvailable
            | K::NetworkUnreachable
            | K::HostUnreachable
            | K::NetworkDown => Transport::Connect,
            K::TimedOut | K::WouldBlock => Transport::Timeout,
            K::ConnectionReset
            | K::ConnectionAborted
            | K::BrokenPipe
            | K::NotConnected
            | K::Interrupted => Transport::Reset,
            K::UnexpectedEof => Transport::Short,
            // rustls reports certificate and protocol failures as InvalidData.
            K::InvalidData => Transport::Tls,
            _ => Transport::Other,
        }
    }

    /// Classifies a reqwest failure by walking its sources.
    pub fn of(e: &reqwest::Error) -> Transport {
        // Its sources only: reqwest's own message carries the URL, which says nothing here.
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            let text = s.to_string().to_ascii_lowercase();
            if text.contains("certificate") || text.contains("tls") {
                return Transport::Tls;
            }
            if text.contains("dns error") || text.contains("failed to lookup") {
                return Transport::Dns;
            }
            // An io::Error may wrap another (rustls's InvalidData inside hyper's Other); its
            // `source()` skips the wrapped one, so unwrap by hand.
            let mut io = s.downcast_ref::<std::io::Error>();
            while let Some(e) = io {
                let t = Transport::from_io(e.kind());
                if t != Transport::Other {
                    return t;
                }
                io = e.get_ref().and_then(|i| i.downcast_ref::<std::io::Error>());
            }
            src = s.source();
        }
        if e.is_timeout() {
            Transport::Timeout
        } else if e.is_connect() {
            Transport::Connect
        } else if e.is_body() || e.is_request() {
            // hyper's "connection closed before message completed" and its kin.
            Transport::Reset
        } else {
            Transport::Other
        }
    }
}

/// What one attempt came to, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// An HTTP status, with the Retry-After it carried, if any.
    Status(u16, Option<Duration>),
    /// The connection failed or broke.
    Transport(Transport),
}

/// What to do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Done: hand the result to the caller (success, or an error the caller must handle).
    Accept,
    /// Wait this long, then try again.
    Retry(Duration),
    /// Stop retrying: too many attempts.
    GiveUp,
}

/// How many attempts, and the backoff's floor and ceiling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Attempts before giving up on retryable failures.
    pub max_attempts: u32,
    /// The first backoff, and the least any backoff is.
    pub base: Duration,
    /// The most any backoff is (a Retry-After is honoured whatever its length).
    pub cap: Duration,
}

/// API requests: 8 attempts, backoff from 0.5 s up to 30 s.
pub const API: Policy = Policy {
    max_attempts: 8,
    base: Duration::from_millis(500),
    cap: Duration::from_secs(30),
};

/// Media downloads: 3 attempts, backoff from 0.2 s up to 5 s (a failed download costs a whole
/// transfer; a recording that fails 3 times is `Failed`, never `Exported`).
pub const MEDIA: Policy = Policy {
    max_attempts: 3,
    base: Duration::from_millis(200),
    cap: Duration::from_secs(5),
};

impl Policy {
    /// The one place that decides retry-or-give-up, for API calls and media downloads alike.
    /// `attempt` counts from 1; `prev` is the last backoff (zero before the first); `jitter` is
    /// uniform in [0, 1].
    ///
    /// Retried: 429 (after Retry-After, else backoff), 408, 5xx except 501 and 505, and
    /// transport failures except TLS and client-side errors. Backoff is exponential with
    /// decorrelated jitter (AWS Architecture Blog, "Exponential Backoff and Jitter"): a uniform
    /// draw in [base, 3 × previous], capped. Everything else — success, 3xx, the other 4xx — is
    /// accepted for the caller to handle (401 is handled by re-authenticating, 404 becomes
    /// `Purged`, and so on).
    pub fn decide(&self, what: Attempt, attempt: u32, prev: Duration, jitter: f64) -> Decision {
        let retryable = match what {
            Attempt::Transport(t) => !matches!(t, Transport::Tls | Transport::Other),
            Attempt::Status(s, _) => {
                s == 429 || s == 408 || (500..600).contains(&s) && s != 501 && s != 505
            }
        };
        if !retryable {
            return Decision::Accept;
        }
        if attempt >= self.max_attempts {
            return Decision::GiveUp;
        }
        if let Attempt::Status(_, Some(after)) = what {
            return Decision::Retry(after);
        }
        let base = self.base.as_secs_f64();
        let hi = (prev.as_secs_f64() * 3.0).max(base);
        let d = base + (hi - base) * jitter.clamp(0.0, 1.0);
        Decision::Retry(Duration::from_secs_f64(d.min(self.cap.as_secs_f64())))
    }
}

fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when =
        time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let secs = (when - time::OffsetDateTime::now_utc())
        .whole_seconds()
        .max(0) as u64;
    Some(Duration::from_secs(secs))
}

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

/// A cheap jitter source (not for cryptography).
pub(crate) fn jitter() -> f64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(n % 1000) / 1000.0
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
            // Count only the extension, so overlapping pauses from parallel tasks add up once.
            self.waited_ms.fetch_add(
                (until - current).as_millis() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            *p = Some(until);
        }
    }
}

/// An API response, read in full (bounded by [`MAX_JSON_BYTES`]).
#[derive(Debug)]
pub struct ApiResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes, exactly as received.
    pub body: Bytes,
}

impl ApiResponse {
    /// The body as JSON.
    pub fn json(&self, method: &Method, url: &str) -> Result<Value> {
        serde_json::from_slice(&self.body).map_err(|e| {
            let message = if self.is_html() {
                format!("{} ({e})", self.html_hint())
            } else {
                format!(
                    "the answer is not valid JSON ({}): {e}",
                    self.content_type()
                )
            };
            Error::Api {
                method: method.to_string(),
                url: url.to_owned(),
                message,
            }
        })
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("no Content-Type")
    }

    /// An HTML page where the API answers JSON: a proxy, gateway or captive portal answered.
    fn is_html(&self) -> bool {
        let start = String::from_utf8_lossy(&self.body[..self.body.len().min(64)])
            .trim_start()
            .to_ascii_lowercase();
        self.content_type().to_ascii_lowercase().contains("html")
            || start.starts_with("<!doctype html")
            || start.starts_with("<html")
    }

    fn html_hint(&self) -> String {
        let text = String::from_utf8_lossy(&self.body[..self.body.len().min(4096)]).into_owned();
        let lower = text.to_ascii_lowercase();
        let title = lower
            .find("<title>")
            .and_then(|a| lower[a + 7..].find("</title>").map(|b| (a + 7, a + 7 + b)))
            .map(|(a, b)| text[a..b].trim().to_owned());
        format!(
            "an HTML page ({}) instead of the API's JSON{}: a proxy, gateway or captive portal answered, not Genesys Cloud; check the region, the API base URL and any proxy",
            self.content_type(),
            title.map(|t| format!(", titled '{t}'")).unwrap_or_default()
        )
    }

    /// "status code: message" from a Genesys ErrorBody, or what else came back.
    pub fn describe(&self) -> String {
        let status = self.status.as_u16();
        if self.status.is_redirection() {
            let to = self
                .headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(crate::custody::redact_url)
                .unwrap_or_default();
            return format!(
                "{status}: redirected to '{to}'; redirects are never followed (they could carry the token elsewhere): use the API base URL directly"
            );
        }
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(v) if v.get("code").is_some() => format!(
                "{status} {}: {}",
                v["code"].as_str().unwrap_or(""),
                v["message"].as_str().unwrap_or("")
            ),
            _ if self.is_html() => format!("{status}: {}", self.html_hint()),
            _ => format!(
                "{status} {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(200)])
            ),
        }
    }
}

struct Token {
    value: String,
    refresh_at: Instant,
}

/// The API client: base URLs, credentials, the token, the shared limiter.
pub struct Api {
    /// The HTTP client (connection pool shared with media downloads).
    pub http: reqwest::Client,
    api_base: String,
    login_base: String,
    creds: Credentials,
    token: Mutex<Option<Token>>,
    /// The shared rate budget.
    pub limiter: Limiter,
    calls: std::sync::atomic::AtomicU64,
    /// Moving average of API response times, µs (0: none yet).
    latency_us: std::sync::atomic::AtomicU64,
    log: std::sync::OnceLock<std::sync::Arc<crate::custody::CustodyLog>>,
}

impl Api {
    /// A client for `api_base` (e.g. `https://api.mypurecloud.ie`) and `login_base`.
    pub fn new(
        api_base: &str,
        login_base: &str,
        creds: Credentials,
        per_minute: u32,
    ) -> Result<Api> {
        check_base_url("API base", api_base)?;
        check_base_url("login base", login_base)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("custos/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(20))
            .read_timeout(Duration::from_secs(120))
            // Never follow a redirect to another host with our headers; follow none at all on
            // the API (Genesys does not redirect API calls).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Api {
            http,
            api_base: api_base.trim_end_matches('/').to_owned(),
            login_base: login_base.trim_end_matches('/').to_owned(),
            creds,
            token: Mutex::new(None),
            limiter: Limiter::new(per_minute),
            calls: std::sync::atomic::AtomicU64::new(0),
            latency_us: std::sync::atomic::AtomicU64::new(0),
            log: std::sync::OnceLock::new(),
        })
    }

    /// From now on, every API response (and token request) is recorded in `log`.
    pub fn set_log(&self, log: std::sync::Arc<crate::custody::CustodyLog>) {
        let _ = self.log.set(log);
    }

    fn record(&self, event: &str, fields: Value) -> Result<()> {
        if let Some(log) = self.log.get() {
            log.append(event, fields)?;
        }
        Ok(())
    }

    /// The API's response time as observed so far (a moving average over the answers, each
    /// weighing 1/8), if any answer has come.
    pub fn latency(&self) -> Option<Duration> {
        match self.latency_us.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    fn observe_latency(&self, took: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let us = (took.as_micros() as u64).max(1);
        let _ = self.latency_us.fetch_update(Relaxed, Relaxed, |old| {
            Some(if old == 0 { us } else { (old * 7 + us) / 8 })
        });
    }

    /// How many API requests to keep in flight so that the budget, not the waiting, limits the
    /// rate: the rate times the observed response time (Little's law), doubled for headroom,
    /// between 4 and 256. Before any answer, 0.5 s is assumed.
    pub fn requests_in_flight(&self) -> usize {
        let per_s = self.limiter.per_second();
        let lat = self
            .latency()
            .unwrap_or(Duration::from_millis(500))
            .max(Duration::from_millis(50));
        ((per_s * lat.as_secs_f64() * 2.0).ceil() as usize).clamp(4, 256)
    }

    /// API requests sent so far (attempts included).
    pub fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The full URL of an API path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_base)
    }

    /// The OAuth client id.
    pub fn client_id(&self) -> &str {
        &self.creds.client_id
    }

    /// A valid access token, fetched or refreshed (a minute before expiry) as needed.
    /// `refused`: a token the API just answered 401 to; it is replaced, unless another task has
    /// replaced it already (parallel 401s share one new token instead of each fetching one).
    pub async fn token(&self, refused: Option<&str>) -> Result<String> {
        let mut guard = self.token.lock().await;
        if let Some(t) = guard
            .as_ref()
            .filter(|t| t.refresh_at > Instant::now() && Some(t.value.as_str()) != refused)
        {
            return Ok(t.value.clone());
        }
        let url = format!("{}/oauth/token", self.login_base);
        let mut attempt = 0;
        let mut backoff = Duration::ZERO;
        let resp = loop {
            attempt += 1;
            let r = self
                .http
                .post(&url)
                .basic_auth(&self.creds.client_id, Some(&self.creds.client_secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await;
            let what = match &r {
                Ok(r) => Attempt::Status(r.status().as_u16(), retry_after(r.headers())),
                Err(e) => Attempt::Transport(Transport::of(e)),
            };
            match API.decide(what, attempt, backoff, jitter()) {
                Decision::Accept => break r,
                Decision::Retry(d) => {
                    backoff = d;
                    tokio::time::sleep(d).await
                }
                Decision::GiveUp => break r,
            }
        };
        let resp = resp.map_err(|e| Error::Auth {
            url: url.clone(),
            message: format!("cannot reach the login host: {e}"),
        })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        self.record("token", serde_json::json!({"method": "POST", "url": url, "status": status.as_u16(), "grant": "client_credentials"}))?;
        if !status.is_success() {
            let why = body["error_description"]
                .as_str()
                .or(body["message"].as_str())
                .unwrap_or("");
            return Err(Error::Auth {
                url,
                message: format!(
                    "{} {} {why}; check GENESYSCLOUD_OAUTHCLIENT_ID / _SECRET and the region",
                    status.as_u16(),
                    body["error"].as_str().unwrap_or("")
                ),
            });
        }
        let (Some(value), Some(expires)) =
            (body["access_token"].as_str(), body["expires_in"].as_u64())
        else {
            return Err(Error::Auth {
                url,
                message: "the token response has no access_token/expires_in".into(),
            });
        };
        let refresh_at = Instant::now() + Duration::from_secs(expires.saturating_sub(60).max(1));
        *guard = Some(Token {
            value: value.to_owned(),
            refresh_at,
        });
        Ok(value.to_owned())
    }

    /// Sends an API request under the rate budget, retrying per [`decide`] and re-authenticating
    /// once on 401. Returns whatever final answer came (the caller handles 4xx).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<ApiResponse> {
        let url = self.url(path);
        let mut attempt = 0;
        let mut backoff = Duration::ZERO;
        let mut refused: Option<String> = None;
        let mut reauths = 0;
        loop {
            attempt += 1;
            let token = self.token(None).await?;
            let ticket = self.limiter.acquire().await;
            self.calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut rb = self.http.request(method.clone(), &url).bearer_auth(&token);
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let sent = Instant::now();
            let result = match rb.send().await {
                Ok(r) => {
                    let status = r.status();
                    let headers = r.headers().clone();
                    match read_limited(r, MAX_JSON_BYTES).await {
                        Ok(body) => Ok(ApiResponse {
                            status,
                            headers,
                            body,
                        }),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err((Transport::of(&e), e.without_url().to_string())),
            };
            if result.is_ok() {
                self.observe_latency(sent.elapsed());
            }
            self.limiter.observe(
                result
                    .as_ref()
                    .ok()
                    .and_then(|r| RateWindow::from_headers(&r.headers, sent, ticket)),
            );
            let what = match &result {
                Ok(r) => Attempt::Status(r.status.as_u16(), retry_after(&r.headers)),
                Err((t, _)) => Attempt::Transport(*t),
            };
            let header = |r: &ApiResponse, h: &str| {
                r.headers
                    .get(h)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            match &result {
                Ok(r) => self.record(
                    "http",
                    serde_json::json!({
                        "method": method.as_str(), "url": crate::custody::redact_url(&url), "attempt": attempt,
                        "status": r.status.as_u16(), "contentLength": r.body.len(), "contentType": header(r, "content-type"),
                        "correlationId": header(r, "inin-correlation-id"), "retryAfter": header(r, "retry-after"), "bodySha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&r.body)),
                    }),
                )?,
                Err((t, e)) => self.record("http", serde_json::json!({"method": method.as_str(), "url": crate::custody::redact_url(&url), "attempt": attempt, "error": e, "errorClass": format!("{t:?}")}))?,
            }
            if let Ok(r) = &result {
                // A 401 gets a new token (shared with any task refused the same one) and one
                // more try; at most 3 times per request, since a token can also expire during
                // a long retry. A refused token is never sent again.
                if r.status == StatusCode::UNAUTHORIZED
                    && refused.as_deref() != Some(token.as_str())
                    && reauths < 3
                {
                    reauths += 1;
                    refused = Some(token.clone());
                    self.token(Some(&token)).await?;
                    continue;
                }
                if r.status == StatusCode::TOO_MANY_REQUESTS {
                    let d = retry_after(&r.headers).unwrap_or(Duration::from_secs(2));
                    self.limiter.pause(d).await;
                }
            }
            match API.decide(what, attempt, backoff, jitter()) {
                Decision::Accept => {}
                Decision::Retry(d) => {
                    backoff = d;
                    tokio::time::sleep(d).await;
                    continue;
                }
                Decision::GiveUp => {}
            }
            return result.map_err(|(_, e)| Error::Api {
                method: method.to_string(),
                url,
                message: e,
            });
        }
    }

    /// Sends and requires a 2xx answer.
    pub async fn send_ok(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<ApiResponse> {
        let r = self.send(method.clone(), path, body).await?;
        let status = r.status.as_u16();
        if r.status.is_client_error() && status != 408 && status != 429 {
            return Err(Error::Refused {
                method: method.to_string(),
                url: self.url(path),
                status,
                message: r.describe(),
            });
        }
        if !r.status.is_success() {
            return Err(Error::Api {
                method: method.to_string(),
                url: self.url(path),
                message: r.describe(),
            });
        }
        Ok(r)
    }
}

/// Reads a body, refusing one larger than `cap` (not worth retrying: a server that sends one
/// will send it again).
async fn read_limited(
    mut r: reqwest::Response,
    cap: usize,
) -> std::result::Result<Bytes, (Transport, String)> {
    let too_big = || {
        (
            Transport::Other,
            format!("the answer is larger than {cap} bytes"),
        )
    };
    if r.content_length().is_some_and(|n| n as usize > cap) {
        return Err(too_big());
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = r
        .chunk()
        .await
        .map_err(|e| (Transport::of(&e), e.without_url().to_string()))?
    {
        if buf.len() + chunk.len() > cap {
            return Err(too_big());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retryable_status(s: u16) -> bool {
        s == 429 || s == 408 || (500..600).contains(&s) && s != 501 && s != 505
    }

    #[test]
    fn decide_pins_every_status() {
        for p in [API, MEDIA] {
            for s in 100..600u16 {
                let d = p.decide(Attempt::Status(s, None), 1, Duration::ZERO, 0.5);
                let retry = retryable_status(s);
                assert_eq!(matches!(d, Decision::Retry(_)), retry, "status {s}");
                assert_eq!(d == Decision::Accept, !retry, "status {s}");
                assert_eq!(
                    p.decide(
                        Attempt::Status(s, None),
                        p.max_attempts,
                        Duration::ZERO,
                        0.5
                    ) == Decision::GiveUp,
                    retry,
                    "status {s} at the last attempt"
                );
            }
        }
        // Retry-After wins, however long: it is honoured, not turned into a failure.
        assert_eq!(
            API.decide(
                Attempt::Status(429, Some(Duration::from_secs(3600))),
                2,
                Duration::ZERO,
                0.0
            ),
            Decision::Retry(Duration::from_secs(3600))
        );
    }

    #[test]
    fn decide_pins_every_transport_failure() {
        use Transport::*;
        for (t, retry) in [
            (Connect, true),
            (Dns, true),
            (Timeout, true),
            (Reset, true),
            (Short, true),
            (Long, true),
            (Tls, false),
            (Other, false),
        ] {
            for p in [API, MEDIA] {
                let d = p.decide(Attempt::Transport(t), 1, Duration::ZERO, 0.5);
                assert_eq!(matches!(d, Decision::Retry(_)), retry, "{t:?}");
                assert_eq!(d == Decision::Accept, !retry, "{t:?}");
                let last = p.decide(Attempt::Transport(t), p.max_attempts, Duration::ZERO, 0.5);
                assert_eq!(last == Decision::GiveUp, retry, "{t:?} at the last attempt");
            }
        }
    }

    #[test]
    fn io_error_kinds_map_to_transport_classes() {
        use std::io::ErrorKind as K;
        for (k, t) in [
            (K::ConnectionRefused, Transport::Connect),
            (K::HostUnreachable, Transport::Connect),
            (K::NetworkUnreachable, Transport::Connect),
            (K::AddrNotAvailable, Transport::Connect),
            (K::TimedOut, Transport::Timeout),
            (K::ConnectionReset, Transport::Reset),
            (K::ConnectionAborted, Transport::Reset),
            (K::BrokenPipe, Transport::Reset),
            (K::NotConnected, Transport::Reset),
            (K::UnexpectedEof, Transport::Short),
            (K::InvalidData, Transport::Tls),
            (K::PermissionDenied, Transport::Other),
            (K::InvalidInput, Transport::Other),
        ] {
            assert_eq!(Transport::from_io(k), t, "{k:?}");
        }
    }

    #[tokio::test]
    async fn real_failures_are_classified() {
        let http = reqwest::Client::new();
        // Nobody listening: refused.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = http
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(Transport::of(&e), Transport::Connect, "{e:?}");
        // TLS spoken to a plain-TCP peer that answers with garbage: TLS, not retried.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\nnot tls")
                    .await;
            }
        });
        let tls = reqwest::Client::builder().use_rustls_tls().build().unwrap();
        let e = tls
            .get(format!("https://{addr}/"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(Transport::of(&e), Transport::Tls, "{e:?}");
        // A peer that accepts and hangs up at once: reset mid-exchange.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                drop(s);
            }
        });
        let e = http
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(Transport::of(&e), Transport::Reset, "{e:?}");
    }

    #[test]
    fn backoff_is_decorrelated_jitter_within_base_and_cap() {
        for p in [API, MEDIA] {
            let mut prev = Duration::ZERO;
            for attempt in 1..p.max_attempts {
                for j in [0.0, 0.3, 1.0] {
                    let Decision::Retry(d) =
                        p.decide(Attempt::Transport(Transport::Reset), attempt, prev, j)
                    else {
                        panic!()
                    };
                    assert!(d >= p.base && d <= p.cap, "{d:?}");
                    assert!(d <= (prev * 3).max(p.base), "{d:?} after {prev:?}");
                }
                // The largest draw grows threefold each time, until the cap.
                let Decision::Retry(d) =
                    p.decide(Attempt::Transport(Transport::Reset), attempt, prev, 1.0)
                else {
                    panic!()
                };
                assert_eq!(d, (prev * 3).max(p.base).min(p.cap));
                prev = d;
            }
        }
    }

    #[test]
    fn requests_in_flight_follow_the_budget_and_the_observed_latency() {
        let creds = || Credentials {
            client_id: "c".into(),
            client_secret: "s".into(),
        };
        let api = |per_min| {
            Api::new("http://127.0.0.1:1", "http://127.0.0.1:1", creds(), per_min).unwrap()
        };
        let fast = api(6000);
        // Nothing observed yet: 0.5 s assumed, 99 req/s × 0.5 s × 2.
        assert!((99..=100).contains(&fast.requests_in_flight()));
        fast.observe_latency(Duration::from_millis(100));
        assert_eq!(fast.latency(), Some(Duration::from_millis(100)));
        assert_eq!(fast.requests_in_flight(), 20);
        for _ in 0..40 {
            fast.observe_latency(Duration::from_millis(300));
        }
        assert_eq!(fast.requests_in_flight(), 60);
        // A slow budget needs few; never fewer than 4, never more than 256.
        let slow = api(300);
        slow.observe_latency(Duration::from_millis(100));
        assert_eq!(slow.requests_in_flight(), 4);
        let huge = api(1_000_000);
        huge.observe_latency(Duration::from_secs(2));
        assert_eq!(huge.requests_in_flight(), 256);
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(check_base_url("x", "https://api.mypurecloud.com").is_ok());
        assert!(check_base_url("x", "http://127.0.0.1:8080").is_ok());
        assert!(check_base_url("x", "http://[::1]:8080").is_ok());
        assert!(check_base_url("x", "http://localhost:1").is_ok());
        assert!(
            check_base_url("x", "http://api.mypurecloud.com")
                .unwrap_err()
                .to_string()
                .contains("plain http")
        );
        assert!(check_base_url("x", "http://10.0.0.1").is_err());
        assert!(check_base_url("x", "ftp://127.0.0.1").is_err());
        assert!(check_base_url("x", "not a url").is_err());
        for bad in [
            "https://user:pw@api.example.com",
            "https://user@api.example.com",
            "https://api.example.com/?token=s3cret",
            "https://api.example.com/#s3cret",
        ] {
            let e = check_base_url("API base", bad).unwrap_err().to_string();
            assert!(!e.contains("s3cret") && !e.contains("pw"), "{e}");
        }
        assert!(check_media_url("m", "https://s3.example.com/x?X-Amz-Signature=1").is_ok());
    }

    #[test]
    fn secrets_are_redacted() {
        let c = Credentials {
            client_id: "id".into(),
            client_secret: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    fn headers(allowed: &str, count: &str, reset: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert("inin-ratelimit-allowed", allowed.parse().unwrap());
        m.insert("inin-ratelimit-count", count.parse().unwrap());
        m.insert("inin-ratelimit-reset", reset.parse().unwrap());
        m
    }

    #[test]
    fn rate_windows_are_read_from_the_headers() {
        let t = Instant::now();
        let w = RateWindow::from_headers(&headers("300", "299", "12"), t, 1).unwrap();
        assert_eq!(
            (w.allowed, w.count, w.reset),
            (300, 299, Duration::from_secs(12))
        );
        assert!(!w.exhausted());
        assert!(
            RateWindow::from_headers(&headers("300", "300", "12"), t, 1)
                .unwrap()
                .exhausted()
        );
        let w = RateWindow::from_headers(&headers("300", "301", "0"), t, 1).unwrap();
        assert!(w.exhausted() && w.reset == Duration::from_secs(1));
        assert_eq!(
            RateWindow::from_headers(&headers("x", "300", "12"), t, 1),
            None
        );
        assert_eq!(RateWindow::from_headers(&HeaderMap::new(), t, 1), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_is_spent_down_and_waited_out_to_its_observed_end() {
        let l = Limiter::new(60_000);
        let t0 = Instant::now();
        let w = |ticket, count, reset, sent| {
            Some(RateWindow {
                allowed: 5,
                count,
                reset: Duration::from_secs(reset),
                sent,
                ticket,
            })
        };
        // The first request goes alone; its answer opens the window (count 1 of 5, 1 s).
        let first = l.acquire().await;
        l.observe(w(first, 1, 1, t0));
        // Four more fit, answered or not: no waiting beyond the 1 ms spacing.
        for _ in 0..4 {
            l.acquire().await;
        }
        assert!(Instant::now() - t0 < Duration::from_millis(10));
        // The sixth would be one too many: it waits for the window's end + 1 % (10 ms).
        let sixth = l.acquire().await;
        assert_eq!(Instant::now() - t0, Duration::from_millis(1010));
        assert_eq!(sixth, 6);
        // A late answer from the old window does not stop the new one.
        l.observe(w(5, 5, 1, t0));
        let t1 = Instant::now();
        l.acquire().await;
        assert!(Instant::now() - t1 < Duration::from_millis(5));
        let waited = l.waited();
        assert!(waited > Duration::from_millis(1000) && waited <= Duration::from_millis(1010));

        // A window we did not see open: its reset is waited out in full.
        let l = Limiter::new(60_000);
        let t = l.acquire().await;
        let t2 = Instant::now();
        l.observe(w(t, 5, 7, t2));
        l.acquire().await;
        assert!(Instant::now() - t2 >= Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_allowing_nothing_is_ignored() {
        let l = Limiter::new(60_000);
        let t0 = Instant::now();
        for _ in 0..5 {
            let t = l.acquire().await;
            l.observe(Some(RateWindow {
                allowed: 0,
                count: 0,
                reset: Duration::from_secs(60),
                sent: Instant::now(),
                ticket: t,
            }));
        }
        assert!(Instant::now() - t0 < Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn until_the_first_answer_one_request_at_a_time() {
        let l = std::sync::Arc::new(Limiter::new(60_000));
        let first = l.acquire().await;
        let l2 = l.clone();
        let second = tokio::spawn(async move { l2.acquire().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "a second request before any answer");
        l.observe(None); // an answer without rate headers still lets the rest go
        assert_eq!(second.await.unwrap(), first + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_spaces_requests_and_pauses_everyone() {
        let l = Limiter::new(600); // 99 % of it: one per 101.01 ms
        let t0 = Instant::now();
        for _ in 0..5 {
            l.acquire().await;
            l.observe(None);
        }
        let spent = Instant::now() - t0;
        assert!(
            spent >= Duration::from_millis(404) && spent <= Duration::from_millis(408),
            "{spent:?}"
        );
        l.pause(Duration::from_secs(5)).await;
        l.pause(Duration::from_secs(3)).await; // within the first: adds nothing
        assert_eq!(l.waited(), Duration::from_secs(5));
        l.acquire().await;
        assert!(Instant::now() - t0 >= Duration::from_millis(5400));
    }
}
