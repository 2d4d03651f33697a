//! The API client: base URLs, the token, the shared limiter, every API request sent, retried,
//! re-authenticated and recorded in the custody log.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::time::Instant;

use super::limit::{Limiter, RateWindow};
use super::response::{ApiResponse, MAX_JSON_BYTES, read_limited};
use super::retry::{API, Attempt, Decision, Transport, jitter, retry_after};
use super::token::{Credentials, TokenSource};
use super::url::check_base_url;
use crate::digest::Sha256;
use crate::error::{Error, Result};

/// The API client: base URLs, credentials, the token, the shared limiter.
pub struct Api {
    /// The HTTP client (connection pool shared with media downloads).
    pub http: reqwest::Client,
    api_base: String,
    tokens: TokenSource,
    /// The shared rate budget.
    pub limiter: Limiter,
    calls: std::sync::atomic::AtomicU64,
    /// API answers that were 429 (too many requests).
    throttled: std::sync::atomic::AtomicU64,
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
            tokens: TokenSource::new(login_base.trim_end_matches('/'), creds),
            limiter: Limiter::new(per_minute),
            calls: std::sync::atomic::AtomicU64::new(0),
            throttled: std::sync::atomic::AtomicU64::new(0),
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

    pub(super) fn observe_latency(&self, took: Duration) {
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

    /// API answers so far that were 429 (too many requests).
    pub fn throttled(&self) -> u64 {
        self.throttled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// API requests sent so far (attempts included).
    pub fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The API base URL (no trailing `/`): where every request and the bearer token go.
    pub fn base(&self) -> &str {
        &self.api_base
    }

    /// The full URL of an API path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_base)
    }

    /// The OAuth client id.
    pub fn client_id(&self) -> &str {
        self.tokens.client_id()
    }

    /// A valid access token, fetched or refreshed (a minute before expiry) as needed.
    /// `refused`: a token the API just answered 401 to; it is replaced, unless another task has
    /// replaced it already (parallel 401s share one new token instead of each fetching one).
    pub async fn token(&self, refused: Option<&str>) -> Result<String> {
        self.tokens
            .get(&self.http, refused, |fields| self.record("token", fields))
            .await
    }

    /// Sends an API request under the rate budget, retrying per [`Policy::decide`](super::Policy::decide) and re-authenticating
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
            let sent = Instant::now();
            let result = self.exchange(&method, &url, &token, body).await;
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
            self.record_attempt(&method, &url, attempt, &result)?;
            match &result {
                Ok(r) => tracing::debug!(
                    method = method.as_str(),
                    path,
                    attempt,
                    status = r.status.as_u16(),
                    bytes = r.body.len(),
                    ms = sent.elapsed().as_millis() as u64,
                    "api"
                ),
                Err((t, e)) => {
                    tracing::debug!(method = method.as_str(), path, attempt, class = ?t, error = %e, "api request failed")
                }
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
                    self.throttled
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let d = retry_after(&r.headers).unwrap_or(Duration::from_secs(2));
                    self.limiter.pause(d).await;
                }
            }
            match API.decide(what, attempt, backoff, jitter()) {
                Decision::Accept => {}
                Decision::Retry(d) => {
                    tracing::info!(method = method.as_str(), path, attempt, after = ?what, wait_ms = d.as_millis() as u64, "retrying");
                    backoff = d;
                    tokio::time::sleep(d).await;
                    continue;
                }
                Decision::GiveUp => {
                    tracing::warn!(method = method.as_str(), path, attempt, last = ?what, "giving up on this request");
                }
            }
            return result.map_err(|(_, e)| Error::Api {
                method: method.to_string(),
                url,
                message: e,
            });
        }
    }

    /// One request and its answer, read whole to [`MAX_JSON_BYTES`].
    async fn exchange(
        &self,
        method: &Method,
        url: &str,
        token: &str,
        body: Option<&Value>,
    ) -> std::result::Result<ApiResponse, (Transport, String)> {
        let mut rb = self.http.request(method.clone(), url).bearer_auth(token);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        match rb.send().await {
            Ok(r) => {
                let status = r.status();
                let headers = r.headers().clone();
                let body = read_limited(r, MAX_JSON_BYTES).await?;
                Ok(ApiResponse {
                    status,
                    headers,
                    body,
                })
            }
            Err(e) => Err((Transport::of(&e), e.without_url().to_string())),
        }
    }

    /// One attempt in the custody log: the answer's status, size, type, correlation id,
    /// Retry-After and body hash, or the failure.
    fn record_attempt(
        &self,
        method: &Method,
        url: &str,
        attempt: u32,
        result: &std::result::Result<ApiResponse, (Transport, String)>,
    ) -> Result<()> {
        let header = |r: &ApiResponse, h: &str| {
            r.headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let url = crate::custody::redact_url(url);
        match result {
            Ok(r) => self.record(
                "http",
                serde_json::json!({
                    "method": method.as_str(), "url": url, "attempt": attempt,
                    "status": r.status.as_u16(), "contentLength": r.body.len(), "contentType": header(r, "content-type"),
                    "correlationId": header(r, "inin-correlation-id"), "retryAfter": header(r, "retry-after"), "bodySha256": Sha256::of(&r.body).hex(),
                }),
            ),
            Err((t, e)) => self.record("http", serde_json::json!({"method": method.as_str(), "url": url, "attempt": attempt, "error": e, "errorClass": format!("{t:?}")})),
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
