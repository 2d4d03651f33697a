//! Who and where, for the custody record: the Genesys organization and OAuth client a token
//! belongs to (`GET /api/v2/tokens/me`, `TokenInfo`), the clock against the API's HTTP `Date`,
//! and the binary that ran (its version, commit and SHA-256). An export records them before it
//! lists anything (the custody log's `source-identified`, bag-info's labels); `custos release`
//! compares the organization with the export's before it lifts anything.

use std::sync::OnceLock;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::http::Api;

/// The endpoint that names the token's organization and OAuth client.
pub const TOKENS_ME: &str = "/api/v2/tokens/me";

/// A clock offset beyond this many seconds is a warning: the times custos records are then
/// off by as much.
pub const CLOCK_WARN_S: i64 = 60;

/// The organization and OAuth client a token belongs to, as the API reports them, and the
/// clock offset measured on the answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// `organization.id`.
    pub organization_id: String,
    /// `organization.name`.
    pub organization_name: String,
    /// `OAuthClient.id`.
    pub oauth_client_id: String,
    /// `OAuthClient.name`.
    pub oauth_client_name: String,
    /// `authorizedScope`: what the token may do, as the API reports it.
    #[serde(default)]
    pub authorized_scope: Vec<String>,
    /// The API's HTTP `Date`, as sent.
    pub server_date: Option<String>,
    /// This machine's clock minus the API's, seconds (the `Date` header's resolution).
    pub clock_offset_s: Option<i64>,
}

/// Asks the API who the token is. `None` when the API does not answer that question (a
/// gateway without the endpoint, 403/404): the custody record then says so.
pub async fn whoami(api: &Api) -> Result<Option<Source>> {
    let r = match api.send_ok(Method::GET, TOKENS_ME, None).await {
        Ok(r) => r,
        Err(Error::Refused { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let local = time::OffsetDateTime::now_utc();
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let server_date = r
        .headers
        .get(reqwest::header::DATE)
        .and_then(|d| d.to_str().ok())
        .map(str::to_owned);
    let clock_offset_s = server_date.as_deref().and_then(|d| {
        let t = httpdate::parse_http_date(d).ok()?;
        let server = time::OffsetDateTime::from(t);
        Some((local - server).whole_seconds())
    });
    Ok(Some(Source {
        organization_id: s(&v["organization"]["id"]),
        organization_name: s(&v["organization"]["name"]),
        oauth_client_id: s(&v["OAuthClient"]["id"]),
        oauth_client_name: s(&v["OAuthClient"]["name"]),
        authorized_scope: v["authorizedScope"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        server_date,
        clock_offset_s,
    }))
}

/// The running binary: `{version, commit, path, sha256}` (the SHA-256 of the executable file,
/// computed once).
pub fn binary() -> Value {
    static SHA: OnceLock<(String, String)> = OnceLock::new();
    let (path, sha) = SHA.get_or_init(|| match std::env::current_exe() {
        Ok(p) => {
            let sha = crate::durable::sha256_file(&p)
                .map(|(s, _)| s.hex())
                .unwrap_or_default();
            (p.display().to_string(), sha)
        }
        Err(_) => (String::new(), String::new()),
    });
    json!({"version": crate::custody::VERSION, "commit": crate::custody::COMMIT, "path": path, "sha256": sha})
}

/// Whether `url` names a loopback host (the simulator, a test server): no real organization.
pub fn is_loopback(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| crate::http::is_loopback(&u))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_told_from_real_ones() {
        assert!(is_loopback("http://127.0.0.1:8080"));
        assert!(is_loopback("http://[::1]:1/"));
        assert!(is_loopback("http://localhost:9"));
        assert!(!is_loopback("https://api.mypurecloud.ie"));
    }

    #[test]
    fn the_binary_is_named_with_its_hash() {
        let b = binary();
        assert_eq!(b["sha256"].as_str().unwrap().len(), 64, "{b}");
    }
}
