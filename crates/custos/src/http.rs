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

/// Refuses plain http except on loopback, and anything that is not http(s).
pub fn check_base_url(what: &str, url: &str) -> Result<()> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| Error::Config(format!("{what} '{url}' is not a URL: {e}")))?;
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

/// What one attempt came to, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// An HTTP status, with the Retry-After it carried, if any.
    Status(u16, Option<Duration>),
    /// The connection failed or broke (reset, refused, timed out, truncated body).
    Transport,
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

/// Attempts before giving up on retryable failures.
pub const MAX_ATTEMPTS: u32 = 8;

/// The one place that decides retry-or-give-up. `attempt` counts from 1.
///
/// Retried: 429 (after Retry-After, else backoff), 408, 5xx except 501 and 505, and transport
/// failures, with exponential backoff (0.5 s doubling to 30 s) and jitter. Everything else —
/// success, 3xx, the other 4xx — is accepted for the caller to handle (401 is handled by
/// re-authenticating, 404 becomes `Purged`, and so on).
pub fn decide(what: Attempt, attempt: u32, jitter: f64) -> Decision {
    let retryable = match what {
        Attempt::Transport => true,
        Attempt::Status(s, _) => {
            s == 429 || s == 408 || (500..600).contains(&s) && s != 501 && s != 505
        }
    };
    if !retryable {
        return Decision::Accept;
    }
    if attempt >= MAX_ATTEMPTS {
        return Decision::GiveUp;
    }
    if let Attempt::Status(_, Some(after)) = what {
        return Decision::Retry(after);
    }
    let base = 0.5 * 2f64.powi(attempt.saturating_sub(1).min(6) as i32);
    Decision::Retry(Duration::from_secs_f64(
        base.min(30.0) * (0.5 + jitter.clamp(0.0, 1.0) / 2.0),
    ))
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

/// How long to hold every task when the server says this token's window is used up
/// (`inin-ratelimit-count` has reached `inin-ratelimit-allowed`): until `inin-ratelimit-reset`.
/// Waiting then avoids the 429 the next request would get.
pub fn window_pause(h: &HeaderMap) -> Option<Duration> {
    let num = |name: &str| h.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
    let (allowed, count, reset) = (
        num("inin-ratelimit-allowed")?,
        num("inin-ratelimit-count")?,
        num("inin-ratelimit-reset")?,
    );
    (allowed > 0 && count >= allowed).then(|| Duration::from_secs(reset.max(1)))
}

/// A cheap jitter source (not for cryptography).
fn jitter() -> f64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(n % 1000) / 1000.0
}

/// One rate budget shared by every task: evenly spaced slots at `per_minute`, and a pause for
/// everyone after a 429.
pub struct Limiter {
    interval: Duration,
    next: Mutex<Instant>,
    paused_until: Mutex<Option<Instant>>,
    /// Milliseconds of pause ordered by the server (429 Retry-After, exhausted windows).
    waited_ms: std::sync::atomic::AtomicU64,
}

impl Limiter {
    /// A limiter at `per_minute` requests per minute.
    pub fn new(per_minute: u32) -> Limiter {
        Limiter {
            interval: Duration::from_secs_f64(60.0 / f64::from(per_minute.max(1))),
            next: Mutex::new(Instant::now()),
            paused_until: Mutex::new(None),
            waited_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Waits for this task's slot.
    pub async fn acquire(&self) {
        loop {
            let pause = *self.paused_until.lock().await;
            if let Some(until) = pause.filter(|u| *u > Instant::now()) {
                tokio::time::sleep_until(until).await;
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
            return;
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
            let ct = self
                .headers
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?");
            Error::Api {
                method: method.to_string(),
                url: url.to_owned(),
                message: format!("the answer is not JSON ({ct}): {e}"),
            }
        })
    }

    /// "status code: message" from a Genesys ErrorBody, or the start of the body.
    pub fn describe(&self) -> String {
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(v) if v.get("code").is_some() => format!(
                "{} {}: {}",
                self.status.as_u16(),
                v["code"].as_str().unwrap_or(""),
                v["message"].as_str().unwrap_or("")
            ),
            _ => format!(
                "{} {}",
                self.status.as_u16(),
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
    pub async fn token(&self, force: bool) -> Result<String> {
        let mut guard = self.token.lock().await;
        if !force && let Some(t) = guard.as_ref().filter(|t| t.refresh_at > Instant::now()) {
            return Ok(t.value.clone());
        }
        let url = format!("{}/oauth/token", self.login_base);
        let mut attempt = 0;
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
                Err(_) => Attempt::Transport,
            };
            match decide(what, attempt, jitter()) {
                Decision::Accept => break r,
                Decision::Retry(d) => tokio::time::sleep(d).await,
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
        let mut reauthed = false;
        loop {
            attempt += 1;
            let token = self.token(false).await?;
            self.limiter.acquire().await;
            self.calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut rb = self.http.request(method.clone(), &url).bearer_auth(&token);
            if let Some(b) = body {
                rb = rb.json(b);
            }
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
                Err(e) => Err(e.without_url().to_string()),
            };
            let what = match &result {
                Ok(r) => Attempt::Status(r.status.as_u16(), retry_after(&r.headers)),
                Err(_) => Attempt::Transport,
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
                Err(e) => self.record("http", serde_json::json!({"method": method.as_str(), "url": crate::custody::redact_url(&url), "attempt": attempt, "error": e}))?,
            }
            if let Ok(r) = &result {
                if r.status == StatusCode::UNAUTHORIZED && !reauthed {
                    reauthed = true;
                    self.token(true).await?;
                    continue;
                }
                if r.status == StatusCode::TOO_MANY_REQUESTS {
                    let d = retry_after(&r.headers).unwrap_or(Duration::from_secs(2));
                    self.limiter.pause(d).await;
                } else if let Some(d) = window_pause(&r.headers) {
                    self.limiter.pause(d).await;
                }
            }
            match decide(what, attempt, jitter()) {
                Decision::Accept => {}
                Decision::Retry(d) => {
                    tokio::time::sleep(d).await;
                    continue;
                }
                Decision::GiveUp => {}
            }
            return result.map_err(|e| Error::Api {
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

/// Reads a body, refusing one larger than `cap`.
async fn read_limited(mut r: reqwest::Response, cap: usize) -> std::result::Result<Bytes, String> {
    if r.content_length().is_some_and(|n| n as usize > cap) {
        return Err(format!("the answer is larger than {cap} bytes"));
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| e.to_string())? {
        if buf.len() + chunk.len() > cap {
            return Err(format!("the answer is larger than {cap} bytes"));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decide_pins_every_status() {
        for s in 100..600u16 {
            let d = decide(Attempt::Status(s, None), 1, 0.5);
            let retry = s == 429 || s == 408 || (500..600).contains(&s) && s != 501 && s != 505;
            assert_eq!(matches!(d, Decision::Retry(_)), retry, "status {s}");
            assert_eq!(d == Decision::Accept, !retry, "status {s}");
            assert_eq!(
                decide(Attempt::Status(s, None), MAX_ATTEMPTS, 0.5) == Decision::GiveUp,
                retry,
                "status {s} at the last attempt"
            );
        }
        assert!(matches!(
            decide(Attempt::Transport, 1, 0.0),
            Decision::Retry(_)
        ));
        assert_eq!(
            decide(Attempt::Transport, MAX_ATTEMPTS, 0.0),
            Decision::GiveUp
        );
        // Retry-After wins, however long: it is honoured, not turned into a failure.
        assert_eq!(
            decide(
                Attempt::Status(429, Some(Duration::from_secs(3600))),
                2,
                0.0
            ),
            Decision::Retry(Duration::from_secs(3600))
        );
        // Backoff grows and is capped.
        let d = |n| match decide(Attempt::Transport, n, 1.0) {
            Decision::Retry(d) => d,
            other => panic!("{other:?}"),
        };
        assert!(d(1) < d(2) && d(2) < d(3));
        assert!(d(7) <= Duration::from_secs(30));
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
    }

    #[test]
    fn secrets_are_redacted() {
        let c = Credentials {
            client_id: "id".into(),
            client_secret: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn an_exhausted_window_pauses_until_its_reset() {
        let h = |allowed: &str, count: &str, reset: &str| {
            let mut m = HeaderMap::new();
            m.insert("inin-ratelimit-allowed", allowed.parse().unwrap());
            m.insert("inin-ratelimit-count", count.parse().unwrap());
            m.insert("inin-ratelimit-reset", reset.parse().unwrap());
            m
        };
        assert_eq!(window_pause(&h("300", "299", "12")), None);
        assert_eq!(
            window_pause(&h("300", "300", "12")),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            window_pause(&h("300", "301", "0")),
            Some(Duration::from_secs(1))
        );
        assert_eq!(window_pause(&h("x", "300", "12")), None);
        assert_eq!(window_pause(&HeaderMap::new()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_spaces_requests_and_pauses_everyone() {
        let l = Limiter::new(600); // one per 100 ms
        let t0 = Instant::now();
        for _ in 0..5 {
            l.acquire().await;
        }
        assert_eq!(Instant::now() - t0, Duration::from_millis(400));
        l.pause(Duration::from_secs(5)).await;
        l.pause(Duration::from_secs(3)).await; // within the first: adds nothing
        assert_eq!(l.waited(), Duration::from_secs(5));
        l.acquire().await;
        assert!(Instant::now() - t0 >= Duration::from_millis(5400));
    }
}
