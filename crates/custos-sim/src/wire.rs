//! Genesys wire conventions shared by the handlers: `ErrorBody`, date-times, JSON bodies.
//!
//! Response bodies are built as `serde_json::Value`s field by field, in the order of the official
//! models; a test walks every response against the SDK's model definitions, so a misspelt field
//! fails there rather than at a customer's org.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::state::Inner;

/// Genesys date-time: `yyyy-MM-ddTHH:mm:ss.SSSZ`.
pub fn ts(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Parses an ISO-8601 / RFC 3339 date-time.
pub fn parse_ts(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).ok()
}

/// A Genesys `ErrorBody` response.
pub fn error(inner: &Inner, status: StatusCode, code: &str, message: &str) -> Response {
    error_with(inner, status, code, message, None)
}

/// An `ErrorBody` with an optional `limit` object.
pub fn error_with(
    inner: &Inner,
    status: StatusCode,
    code: &str,
    message: &str,
    limit: Option<Value>,
) -> Response {
    let context = inner.new_id();
    let mut body = json!({
        "message": message,
        "code": code,
        "status": status.as_u16(),
        "contextId": context,
        "details": [],
        "errors": [],
    });
    if let Some(limit) = limit {
        body["limit"] = limit;
    }
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut().insert(
        "inin-correlation-id",
        HeaderValue::from_str(&context).expect("uuid is a valid header"),
    );
    resp
}

/// A JSON 200.
pub fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Parses a JSON request body as Genesys does: 415 unless the Content-Type is JSON, 400 with
/// the parser's message when the JSON is malformed or of the wrong shape.
pub fn json_body<T: DeserializeOwned>(
    inner: &Inner,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("application/json") {
        return Err(error(
            inner,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported.media.type",
            &format!("Unsupported Media Type: '{ct}'; expected application/json"),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        error(
            inner,
            StatusCode::BAD_REQUEST,
            "bad.request",
            &format!(
                "The request could not be understood by the server due to malformed syntax: {e}"
            ),
        )
    })
}

/// Drops null fields, as the Genesys API omits unset optionals.
pub fn compact(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, compact(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(compact).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_millis_and_z() {
        let t = parse_ts("2023-10-01T12:34:56.789+02:00").unwrap();
        assert_eq!(ts(t), "2023-10-01T10:34:56.789Z");
        assert!(parse_ts("yesterday").is_none());
    }

    #[test]
    fn compact_drops_nulls_recursively() {
        assert_eq!(
            compact(json!({"a": null, "b": {"c": null, "d": 1}})),
            json!({"b": {"d": 1}})
        );
    }
}
