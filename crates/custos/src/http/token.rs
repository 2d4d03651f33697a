//! The OAuth client-credentials token: fetched once, shared by every task, refreshed a minute
//! before it expires, replaced once when the API refuses it.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::response::read_limited;
use super::retry::{API, Attempt, Decision, Transport, jitter, retry_after};
use crate::error::{Error, Result};

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

/// A token answer is a few hundred bytes; more is not a token.
const MAX_TOKEN_BYTES: usize = 64 * 1024;

struct Token {
    value: String,
    refresh_at: Instant,
}

/// Where tokens come from, and the current one.
pub(super) struct TokenSource {
    login_base: String,
    creds: Credentials,
    current: Mutex<Option<Token>>,
}

impl TokenSource {
    pub(super) fn new(login_base: &str, creds: Credentials) -> Self {
        TokenSource {
            login_base: login_base.to_owned(),
            creds,
            current: Mutex::new(None),
        }
    }

    pub(super) fn client_id(&self) -> &str {
        &self.creds.client_id
    }

    /// A valid token (see `Api::token`); `record` puts the token request in the custody log.
    pub(super) async fn get(
        &self,
        http: &reqwest::Client,
        refused: Option<&str>,
        record: impl FnOnce(Value) -> Result<()>,
    ) -> Result<String> {
        let mut guard = self.current.lock().await;
        if let Some(t) = guard
            .as_ref()
            .filter(|t| t.refresh_at > Instant::now() && Some(t.value.as_str()) != refused)
        {
            return Ok(t.value.clone());
        }
        let url = format!("{}/oauth/token", self.login_base);
        let resp = self.request(http, &url).await.map_err(|e| Error::Auth {
            url: url.clone(),
            message: format!("cannot reach the login host: {e}"),
        })?;
        let status = resp.status();
        let body: Value = match read_limited(resp, MAX_TOKEN_BYTES).await {
            Ok(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
            Err((_, why)) => {
                return Err(Error::Auth {
                    url,
                    message: format!("the token answer could not be read: {why}"),
                });
            }
        };
        record(
            serde_json::json!({"method": "POST", "url": url, "status": status.as_u16(), "grant": "client_credentials"}),
        )?;
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
        tracing::debug!(
            expires_in_s = expires,
            refreshed = guard.is_some(),
            "access token obtained"
        );
        let refresh_at = Instant::now() + Duration::from_secs(expires.saturating_sub(60).max(1));
        *guard = Some(Token {
            value: value.to_owned(),
            refresh_at,
        });
        Ok(value.to_owned())
    }

    /// The token request, retried as every API request is.
    async fn request(
        &self,
        http: &reqwest::Client,
        url: &str,
    ) -> reqwest::Result<reqwest::Response> {
        let mut attempt = 0;
        let mut backoff = Duration::ZERO;
        loop {
            attempt += 1;
            let r = http
                .post(url)
                .basic_auth(&self.creds.client_id, Some(&self.creds.client_secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await;
            let what = match &r {
                Ok(r) => Attempt::Status(r.status().as_u16(), retry_after(r.headers())),
                Err(e) => Attempt::Transport(Transport::of(e)),
            };
            match API.decide(what, attempt, backoff, jitter()) {
                Decision::Retry(d) => {
                    backoff = d;
                    tokio::time::sleep(d).await
                }
                Decision::Accept | Decision::GiveUp => return r,
            }
        }
    }
}
