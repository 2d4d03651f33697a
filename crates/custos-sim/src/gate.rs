//! What every `/api/v2` request passes through before its handler, in the order Genesys
//! applies it: latency, authentication, the per-token rate window, then injected faults
//! (token expiry, 429 storms, 5xx bursts). Every response leaves with `inin-ratelimit-*`
//! and `inin-correlation-id` headers.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

use crate::Sim;
use crate::state::{Inner, Window};
use crate::wire::{error, error_with};

/// Who is calling (inserted for handlers).
#[derive(Clone, Debug)]
pub struct Caller {
    /// The OAuth client the token belongs to.
    pub client_id: String,
}

/// The rate-limit namespace a route counts against.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Namespace {
    Platform,
    Search,
}

pub async fn api_gate(State(sim): State<Sim>, mut req: Request, next: Next) -> Response {
    let inner = &sim.0;
    let s = &inner.scenario;
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let ns = if route.starts_with("/api/v2/search/") || route.starts_with("/api/v2/recordings/") {
        Namespace::Search
    } else {
        Namespace::Platform
    };
    if ns == Namespace::Search && !s.search_api {
        return not_found_response(inner);
    }
    {
        let mut st = inner.stats();
        st.api_requests += 1;
        *st.requests
            .entry(format!("{} {}", req.method(), route))
            .or_default() += 1;
    }
    if s.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(s.latency_ms)).await;
    }

    let resp = match admit(inner, &req, ns) {
        Ok((caller, headers)) => {
            req.extensions_mut().insert(caller);
            let mut resp = next.run(req).await;
            resp.headers_mut().extend(headers);
            resp
        }
        Err(resp) => resp,
    };
    let mut resp = resp;
    if !resp.headers().contains_key("inin-correlation-id") {
        let id = inner.new_id();
        resp.headers_mut().insert(
            "inin-correlation-id",
            HeaderValue::from_str(&id).expect("uuid header"),
        );
    }
    *inner
        .stats()
        .statuses
        .entry(resp.status().as_u16())
        .or_default() += 1;
    resp
}

type Admitted = (Caller, axum::http::HeaderMap);

fn admit(inner: &Inner, req: &Request, ns: Namespace) -> Result<Admitted, Response> {
    let s = &inner.scenario;
    let now = inner.clock.now();
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .map(str::to_owned);
    let Some(token) = token else {
        inner.stats().unauthorized += 1;
        return Err(error(
            inner,
            StatusCode::UNAUTHORIZED,
            "authentication.required",
            "No authentication bearer token specified in authorization header.",
        ));
    };

    let mut st = inner.state();
    let client_id = match st.tokens.get_mut(&token) {
        Some(t) if t.expires > now => {
            t.requests += 1;
            if s.faults.token_expiry_after > 0 && t.requests > s.faults.token_expiry_after {
                t.expires = now; // the fault: this token is now expired
                None
            } else {
                Some(t.client_id.clone())
            }
        }
        _ => None,
    };
    let Some(client_id) = client_id else {
        drop(st);
        inner.stats().unauthorized += 1;
        return Err(error(
            inner,
            StatusCode::UNAUTHORIZED,
            "bad.credentials",
            "Invalid login credentials.",
        ));
    };

    // The per-token fixed window: 60 s for the Platform API, 1 s for the search API.
    let (limit, len_ms, key, namespace) = match ns {
        Namespace::Platform => (
            s.api_rate,
            60_000u64,
            "client.credentials.token.rate.per.minute",
            "platform.api",
        ),
        Namespace::Search => (
            s.search_rate,
            1_000u64,
            "search.token.rate.per.second",
            "search.api",
        ),
    };
    let windows = match ns {
        Namespace::Platform => &mut st.api_windows,
        Namespace::Search => &mut st.search_windows,
    };
    let w = windows.entry(token).or_insert(Window {
        start: now,
        count: 0,
    });
    let len = std::time::Duration::from_millis(len_ms);
    if now >= w.start + len {
        *w = Window {
            start: now,
            count: 0,
        };
    }
    let reset_s = (w.start + len - now).as_secs_f64().ceil().max(1.0) as u64;
    if w.count >= limit {
        let count = w.count;
        drop(st);
        inner.stats().rate_limited += 1;
        let msg = format!(
            "Rate limit exceeded the maximum [{limit}] requests within [{}] seconds",
            len_ms / 1000
        );
        let mut resp = error_with(
            inner,
            StatusCode::TOO_MANY_REQUESTS,
            "too.many.requests",
            &msg,
            Some(json!({"key": key, "namespace": namespace, "value": limit})),
        );
        let h = resp.headers_mut();
        h.extend(rate_headers(limit, count, reset_s));
        h.insert(header::RETRY_AFTER, HeaderValue::from(reset_s));
        return Err(resp);
    }
    w.count += 1;
    let headers = rate_headers(limit, w.count, reset_s);

    // Faults, after admission: a storm refuses everything until it passes.
    st.api_requests += 1;
    let f = &s.faults;
    if f.storm_every > 0
        && st.api_requests.is_multiple_of(f.storm_every)
        && st.storm_until.is_none_or(|u| u <= now)
    {
        st.storm_until = Some(now + std::time::Duration::from_secs(f.storm_retry_after_s.max(1)));
    }
    if let Some(until) = st.storm_until.filter(|u| *u > now) {
        let retry = (until - now).as_secs_f64().ceil().max(1.0) as u64;
        drop(st);
        inner.stats().storm_429 += 1;
        let mut resp = error_with(
            inner,
            StatusCode::TOO_MANY_REQUESTS,
            "too.many.requests.retry.after",
            &format!("Rate limit exceeded; retry after [{retry}] seconds"),
            Some(json!({"key": key, "namespace": namespace, "value": limit})),
        );
        resp.headers_mut().extend(headers);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry));
        return Err(resp);
    }
    if st.burst_left == 0 && f.server_errors > 0.0 && st.rng.chance(f.server_errors) {
        st.burst_left = st.rng.range(1, 3) as u32;
    }
    if st.burst_left > 0 {
        st.burst_left -= 1;
        drop(st);
        inner.stats().injected_5xx += 1;
        let mut resp = error(
            inner,
            StatusCode::SERVICE_UNAVAILABLE,
            "service.unavailable",
            "Service Unavailable",
        );
        resp.headers_mut().extend(headers);
        return Err(resp);
    }
    Ok((Caller { client_id }, headers))
}

fn rate_headers(allowed: u32, count: u32, reset_s: u64) -> axum::http::HeaderMap {
    let mut h = axum::http::HeaderMap::new();
    h.insert("inin-ratelimit-allowed", HeaderValue::from(allowed));
    h.insert("inin-ratelimit-count", HeaderValue::from(count));
    h.insert("inin-ratelimit-reset", HeaderValue::from(reset_s));
    h
}

fn not_found_response(inner: &Inner) -> Response {
    error(
        inner,
        StatusCode::NOT_FOUND,
        "not.found",
        "The requested operation failed with status 404",
    )
}

/// Anything no route matches: Genesys' 404 (this is what the guide's search endpoints get from
/// a real org, or here when `search-api` is off).
pub async fn not_found(State(sim): State<Sim>) -> Response {
    not_found_response(&sim.0)
}
