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
    // The guide's search API lives under /api/v2/recordings/{id}; deletion protection, beside
    // it, is the Platform API's.
    let search = route.starts_with("/api/v2/search/")
        || (route.starts_with("/api/v2/recordings/")
            && route != "/api/v2/recordings/deletionprotection");
    let ns = if search {
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

    let limit = Limit::of(s, ns);
    let headers = match spend_window(&mut st, ns, &limit, token, now) {
        Ok(h) => h,
        Err(refusal) => {
            drop(st);
            return Err(refusal(inner));
        }
    };
    if let Some(refusal) = injected_fault(&mut st, s, now, &limit, &headers) {
        drop(st);
        return Err(refusal(inner));
    }
    Ok((Caller { client_id }, headers))
}

/// A refusal, built once the state lock is released (building one counts it in the stats).
type Refusal = Box<dyn FnOnce(&Inner) -> Response>;

/// A namespace's per-token fixed window: 60 s for the Platform API, 1 s for the search API.
struct Limit {
    allowed: u32,
    len_ms: u64,
    key: &'static str,
    namespace: &'static str,
}

impl Limit {
    fn of(s: &crate::Scenario, ns: Namespace) -> Limit {
        match ns {
            Namespace::Platform => Limit {
                allowed: s.api_rate,
                len_ms: 60_000,
                key: "client.credentials.token.rate.per.minute",
                namespace: "platform.api",
            },
            Namespace::Search => Limit {
                allowed: s.search_rate,
                len_ms: 1_000,
                key: "search.token.rate.per.second",
                namespace: "search.api",
            },
        }
    }

    fn details(&self) -> serde_json::Value {
        json!({"key": self.key, "namespace": self.namespace, "value": self.allowed})
    }
}

/// Counts the request in its token's window: the rate headers, or the 429 when it is spent.
fn spend_window(
    st: &mut crate::state::State,
    ns: Namespace,
    l: &Limit,
    token: String,
    now: tokio::time::Instant,
) -> Result<axum::http::HeaderMap, Refusal> {
    let windows = match ns {
        Namespace::Platform => &mut st.api_windows,
        Namespace::Search => &mut st.search_windows,
    };
    let w = windows.entry(token).or_insert(Window {
        start: now,
        count: 0,
    });
    let len = std::time::Duration::from_millis(l.len_ms);
    if now >= w.start + len {
        *w = Window {
            start: now,
            count: 0,
        };
    }
    let reset_s = (w.start + len - now).as_secs_f64().ceil().max(1.0) as u64;
    let limit = l.allowed;
    if w.count >= limit {
        let count = w.count;
        let msg = format!(
            "Rate limit exceeded the maximum [{limit}] requests within [{}] seconds",
            l.len_ms / 1000
        );
        let details = l.details();
        return Err(Box::new(move |inner: &Inner| {
            inner.stats().rate_limited += 1;
            let mut resp = error_with(
                inner,
                StatusCode::TOO_MANY_REQUESTS,
                "too.many.requests",
                &msg,
                Some(details),
            );
            let h = resp.headers_mut();
            h.extend(rate_headers(limit, count, reset_s));
            h.insert(header::RETRY_AFTER, HeaderValue::from(reset_s));
            resp
        }));
    }
    w.count += 1;
    Ok(rate_headers(limit, w.count, reset_s))
}

/// The scenario's faults, after admission: a 429 storm refuses everything until it passes; a
/// burst of 503s.
fn injected_fault(
    st: &mut crate::state::State,
    s: &crate::Scenario,
    now: tokio::time::Instant,
    l: &Limit,
    headers: &axum::http::HeaderMap,
) -> Option<Refusal> {
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
        let (headers, details) = (headers.clone(), l.details());
        return Some(Box::new(move |inner: &Inner| {
            inner.stats().storm_429 += 1;
            let mut resp = error_with(
                inner,
                StatusCode::TOO_MANY_REQUESTS,
                "too.many.requests.retry.after",
                &format!("Rate limit exceeded; retry after [{retry}] seconds"),
                Some(details),
            );
            resp.headers_mut().extend(headers);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry));
            resp
        }));
    }
    if st.burst_left == 0 && f.server_errors > 0.0 && st.rng.chance(f.server_errors) {
        st.burst_left = st.rng.range(1, 3) as u32;
    }
    if st.burst_left > 0 {
        st.burst_left -= 1;
        let headers = headers.clone();
        return Some(Box::new(move |inner: &Inner| {
            inner.stats().injected_5xx += 1;
            let mut resp = error(
                inner,
                StatusCode::SERVICE_UNAVAILABLE,
                "service.unavailable",
                "Service Unavailable",
            );
            resp.headers_mut().extend(headers);
            resp
        }));
    }
    None
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
