//! An answer read whole, and never more than a cap: a hostile or broken server cannot make
//! custos hold a 2 GB body.

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::retry::Transport;
use crate::error::{Error, Result};

/// The largest JSON body we accept from the API (a defence against hostile or broken servers).
pub const MAX_JSON_BYTES: usize = 64 * 1024 * 1024;

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
        self.json_as(method, url)
    }

    /// The body as a `T` (a struct naming only the fields wanted: the rest of a large answer
    /// is read past, never built), or the same error as [`ApiResponse::json`].
    pub fn json_as<T: serde::de::DeserializeOwned>(&self, method: &Method, url: &str) -> Result<T> {
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

/// Reads a body, refusing one larger than `cap` (not worth retrying: a server that sends one
/// will send it again).
pub(crate) async fn read_limited(
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
