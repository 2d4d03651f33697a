//! `POST /oauth/token`: the OAuth 2 client-credentials grant as Genesys' login host serves it.
//!
//! Success is `{access_token, token_type, expires_in}`; failures use the login host's own error
//! shape `{error, description, error_description}` (the Go SDK's `AuthErrorResponse`), not the
//! API's `ErrorBody` — the two hosts really do differ.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use serde_json::json;

use crate::Sim;
use crate::state::Token;

fn auth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(
            json!({"error": error, "description": description, "error_description": description}),
        ),
    )
        .into_response()
}

pub async fn token(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Response {
    let inner = &sim.0;
    let refuse = |status, e: &str, d: &str| {
        inner.stats().token_failures += 1;
        auth_error(status, e, d)
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded",
        );
    }
    let form: Vec<(String, String)> = form_urlencoded(&body);
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match field("grant_type") {
        Some("client_credentials") => {}
        Some(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant type not supported",
            );
        }
        None => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required",
            );
        }
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_owned(), b.to_owned())));
    let creds = basic.or_else(|| {
        Some((
            field("client_id")?.to_owned(),
            field("client_secret")?.to_owned(),
        ))
    });
    let Some((id, secret)) = creds else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client credentials are required",
        );
    };
    if !inner
        .scenario
        .clients
        .iter()
        .any(|c| c.id == id && c.secret == secret)
    {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client not found",
        );
    }
    let ttl = inner.scenario.token_ttl_s;
    let access_token = {
        let mut st = inner.state();
        let mut raw = Vec::with_capacity(48);
        for _ in 0..6 {
            raw.extend_from_slice(&st.rng.next_u64().to_le_bytes());
        }
        let t = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let expires = inner.clock.now() + std::time::Duration::from_secs(ttl);
        st.tokens.insert(
            t.clone(),
            Token {
                client_id: id,
                expires,
                requests: 0,
            },
        );
        t
    };
    inner.stats().tokens_issued += 1;
    (
        StatusCode::OK,
        axum::Json(
            json!({"access_token": access_token, "token_type": "bearer", "expires_in": ttl}),
        ),
    )
        .into_response()
}

/// Decodes `application/x-www-form-urlencoded` (malformed input gives no fields).
pub fn form_urlencoded(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let f = form_urlencoded(b"grant_type=client_credentials&x=a%20b+c");
        assert_eq!(f[0], ("grant_type".into(), "client_credentials".into()));
        assert_eq!(f[1].1, "a b c");
    }
}
