//! Conversation discovery: `POST /api/v2/analytics/conversations/details/query` (synchronous,
//! body paging, `totalHits`) and the asynchronous details jobs (submit → poll → cursor pages).
//!
//! Limits follow the official tutorial: the synchronous query takes intervals of at most 7 days
//! starting at most 35 days back and reaches at most 10,000 records; history goes through jobs.
//! The synchronous query matches conversations that *started on a day touched by* the interval
//! (the model's documented wording), so clients must filter by time themselves; jobs match
//! conversations with activity in the interval. Only dimensions an eDiscovery query needs are
//! simulated; other official dimensions are refused with a 400 that says so.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime, Time};

use crate::Sim;
use crate::catalog::{Conversation, Participant, Segment};
use crate::gate::Caller;
use crate::state::{AsyncJob, Inner, State as SimState};
use crate::wire::{compact, error, json_body, ok, parse_ts, ts};

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct QueryBody {
    interval: Option<String>,
    #[serde(default)]
    conversation_filters: Vec<Filter>,
    #[serde(default)]
    segment_filters: Vec<Filter>,
    order: Option<String>,
    order_by: Option<String>,
    paging: Option<Paging>,
    limit: Option<u64>,
}

#[derive(Deserialize)]
struct Filter {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    clauses: Vec<Clause>,
    #[serde(default)]
    predicates: Vec<Predicate>,
}

#[derive(Deserialize)]
struct Clause {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    predicates: Vec<Predicate>,
}

#[derive(Deserialize)]
struct Predicate {
    #[serde(rename = "type")]
    kind: Option<String>,
    dimension: Option<String>,
    operator: Option<String>,
    value: Option<String>,
    range: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Paging {
    page_size: i64,
    page_number: i64,
}

const CONVERSATION_DIMS: &[&str] = &["conversationId", "divisionId", "originatingDirection"];
const SEGMENT_DIMS: &[&str] = &[
    "userId",
    "queueId",
    "mediaType",
    "direction",
    "ani",
    "dnis",
    "purpose",
    "recording",
    "participantName",
    "segmentType",
];
const MAX_INTERVAL_DAYS: i64 = 7;
const MAX_AGE_DAYS: i64 = 35;
const MAX_RECORDS: i64 = 10_000;
const MAX_PAGE_SIZE: i64 = 100;

type Reject = Box<Response>;

fn bad(inner: &Inner, code: &str, msg: &str) -> Reject {
    Box::new(error(inner, StatusCode::BAD_REQUEST, code, msg))
}

fn parse_interval(
    inner: &Inner,
    interval: Option<&str>,
) -> Result<(OffsetDateTime, OffsetDateTime), Reject> {
    let Some(interval) = interval else {
        return Err(bad(inner, "bad.request", "interval is required"));
    };
    let (a, b) = interval.split_once('/').ok_or_else(|| {
        bad(
            inner,
            "invalid.date",
            &format!("Invalid interval '{interval}': expected start/end in ISO-8601"),
        )
    })?;
    let (Some(a), Some(b)) = (parse_ts(a), parse_ts(b)) else {
        return Err(bad(
            inner,
            "invalid.date",
            &format!("Invalid interval '{interval}': expected start/end in ISO-8601"),
        ));
    };
    if b <= a {
        return Err(bad(
            inner,
            "invalid.date",
            "The interval end must be after its start",
        ));
    }
    Ok((a, b))
}

/// A compiled filter set: every filter must hold.
struct Matcher<'a> {
    conversation: &'a [Filter],
    segment: &'a [Filter],
}

fn check_predicates(
    inner: &Inner,
    filters: &[Filter],
    allowed: &[&str],
    level: &str,
) -> Result<(), Reject> {
    for f in filters {
        let kinds =
            std::iter::once(f.kind.as_str()).chain(f.clauses.iter().map(|c| c.kind.as_str()));
        for k in kinds {
            if k != "and" && k != "or" {
                return Err(bad(
                    inner,
                    "invalid.value",
                    &format!("Invalid filter type '{k}'; allowed: and, or"),
                ));
            }
        }
        if f.predicates.is_empty() && f.clauses.is_empty() {
            return Err(bad(
                inner,
                "bad.request",
                "A filter needs predicates or clauses",
            ));
        }
        for p in f
            .predicates
            .iter()
            .chain(f.clauses.iter().flat_map(|c| &c.predicates))
        {
            if p.kind.as_deref().is_some_and(|k| k != "dimension") || p.range.is_some() {
                return Err(bad(
                    inner,
                    "invalid.value",
                    &format!(
                        "custos-sim simulates only dimension predicates without ranges in {level} filters"
                    ),
                ));
            }
            let Some(dim) = p.dimension.as_deref() else {
                return Err(bad(inner, "bad.request", "A predicate needs a dimension"));
            };
            if !allowed.contains(&dim) {
                return Err(bad(
                    inner,
                    "invalid.value",
                    &format!(
                        "Dimension '{dim}' is not a {level} dimension simulated by custos-sim (simulated: {})",
                        allowed.join(", ")
                    ),
                ));
            }
            match p.operator.as_deref().unwrap_or("matches") {
                "matches" if p.value.is_none() => {
                    return Err(bad(
                        inner,
                        "bad.request",
                        &format!("Predicate on '{dim}' needs a value"),
                    ));
                }
                "matches" | "exists" | "notExists" => {}
                other => {
                    return Err(bad(
                        inner,
                        "invalid.value",
                        &format!("Invalid operator '{other}'; allowed: matches, exists, notExists"),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn eval_filter(f: &Filter, get: &dyn Fn(&str) -> Option<String>) -> bool {
    let pred = |p: &Predicate| {
        let have = get(p.dimension.as_deref().unwrap_or(""));
        match p.operator.as_deref().unwrap_or("matches") {
            "exists" => have.is_some(),
            "notExists" => have.is_none(),
            _ => have.as_deref() == p.value.as_deref(),
        }
    };
    let combine = |kind: &str, mut it: Box<dyn Iterator<Item = bool> + '_>| {
        if kind == "or" {
            it.any(|b| b)
        } else {
            it.all(|b| b)
        }
    };
    let parts = f.predicates.iter().map(pred).chain(
        f.clauses
            .iter()
            .map(|c| combine(&c.kind, Box::new(c.predicates.iter().map(pred)))),
    );
    combine(&f.kind, Box::new(parts))
}

impl Matcher<'_> {
    fn matches(&self, c: &Conversation) -> bool {
        let conv_get = |d: &str| -> Option<String> {
            match d {
                "conversationId" => Some(c.id.clone()),
                "divisionId" => Some(c.division_id.clone()),
                "originatingDirection" => Some(c.direction.to_owned()),
                _ => None,
            }
        };
        if !self.conversation.iter().all(|f| eval_filter(f, &conv_get)) {
            return false;
        }
        // A segment filter holds when one segment (with its session and participant) satisfies it.
        self.segment.iter().all(|f| {
            c.participants.iter().any(|p| {
                p.segments.iter().any(|s| {
                    let get = |d: &str| segment_dim(p, s, d);
                    eval_filter(f, &get)
                })
            })
        })
    }
}

fn segment_dim(p: &Participant, s: &Segment, d: &str) -> Option<String> {
    match d {
        "userId" => p.user_id.clone(),
        "queueId" => s.queue_id.clone(),
        "mediaType" => Some(p.media_type.into()),
        "direction" => Some(p.direction.into()),
        "ani" => Some(p.ani.clone()),
        "dnis" => Some(p.dnis.clone()),
        "purpose" => Some(p.purpose.into()),
        "recording" => p.recording.then(|| "true".into()),
        "participantName" => Some(p.name.clone()),
        "segmentType" => Some(s.kind.into()),
        _ => None,
    }
}

/// `AnalyticsConversationWithoutAttributes` (and `AnalyticsConversation`: same fields here).
pub fn conversation_json(c: &Conversation) -> Value {
    let participants: Vec<Value> = c
        .participants
        .iter()
        .map(|p| {
            let segments: Vec<Value> = p
                .segments
                .iter()
                .map(|s| json!({
                    "queueId": s.queue_id,
                    "requestedRoutingSkillIds": (!s.skill_ids.is_empty()).then_some(&s.skill_ids),
                    "segmentEnd": ts(s.end),
                    "segmentStart": ts(s.start),
                    "segmentType": s.kind,
                    "wrapUpCode": s.wrapup_code,
                }))
                .collect();
            json!({
                "participantId": p.participant_id,
                "participantName": p.name,
                "purpose": p.purpose,
                "screenRecording": p.screen_recording.then_some(true),
                "userId": p.user_id,
                "sessions": [{
                    "ani": p.ani,
                    "direction": p.direction,
                    "dnis": p.dnis,
                    "mediaType": p.media_type,
                    "recording": p.recording,
                    "sessionId": p.session_id,
                    "segments": segments,
                }],
            })
        })
        .collect();
    compact(json!({
        "conversationEnd": ts(c.end),
        "conversationId": c.id,
        "conversationStart": ts(c.start),
        "divisionIds": [c.division_id],
        "originatingDirection": c.direction,
        "participants": participants,
    }))
}

fn sort(
    inner: &Inner,
    idx: &mut [usize],
    order: Option<&str>,
    order_by: Option<&str>,
) -> Result<(), Reject> {
    let by_end = match order_by.unwrap_or("conversationStart") {
        "conversationStart" | "segmentStart" => false,
        "conversationEnd" | "segmentEnd" => true,
        other => {
            return Err(bad(
                inner,
                "invalid.value",
                &format!("Invalid orderBy '{other}'"),
            ));
        }
    };
    let desc = match order.unwrap_or("asc") {
        "asc" | "unordered" => false,
        "desc" => true,
        other => {
            return Err(bad(
                inner,
                "invalid.value",
                &format!("Invalid order '{other}'; allowed: asc, desc, unordered"),
            ));
        }
    };
    let convs = &inner.catalog.conversations;
    idx.sort_by(|&a, &b| {
        let (ca, cb) = (&convs[a], &convs[b]);
        let ka = (if by_end { ca.end } else { ca.start }, &ca.id);
        let kb = (if by_end { cb.end } else { cb.start }, &cb.id);
        if desc { kb.cmp(&ka) } else { ka.cmp(&kb) }
    });
    Ok(())
}

fn floor_day(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_time(Time::MIDNIGHT)
}

pub async fn details_query(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Response {
    let inner = &sim.0;
    match details_query_inner(inner, &headers, &body) {
        Ok(r) | Err(r) => r,
    }
}

fn details_query_inner(
    inner: &Inner,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, Response> {
    let q: QueryBody = json_body(inner, headers, body)?;
    let (a, b) = parse_interval(inner, q.interval.as_deref()).map_err(|r| *r)?;
    if b - a > Duration::days(MAX_INTERVAL_DAYS) {
        return Err(*bad(
            inner,
            "bad.request",
            &format!(
                "Interval exceeds the maximum of {MAX_INTERVAL_DAYS} days; use /api/v2/analytics/conversations/details/jobs"
            ),
        ));
    }
    if a < inner.analytics_now() - Duration::days(MAX_AGE_DAYS) {
        return Err(*bad(
            inner,
            "bad.request",
            &format!(
                "Interval start is more than {MAX_AGE_DAYS} days in the past; use /api/v2/analytics/conversations/details/jobs"
            ),
        ));
    }
    let (size, number) = match &q.paging {
        Some(p) => (p.page_size, p.page_number),
        None => (25, 1),
    };
    if !(1..=MAX_PAGE_SIZE).contains(&size) || number < 1 {
        return Err(*bad(
            inner,
            "invalid.value",
            &format!("paging: pageSize must be 1..={MAX_PAGE_SIZE} and pageNumber >= 1"),
        ));
    }
    if size * number > MAX_RECORDS {
        return Err(*bad(
            inner,
            "bad.request",
            &format!(
                "Paging beyond {MAX_RECORDS} records is not allowed; use /api/v2/analytics/conversations/details/jobs"
            ),
        ));
    }
    check_predicates(
        inner,
        &q.conversation_filters,
        CONVERSATION_DIMS,
        "conversation",
    )
    .map_err(|r| *r)?;
    check_predicates(inner, &q.segment_filters, SEGMENT_DIMS, "segment").map_err(|r| *r)?;
    let m = Matcher {
        conversation: &q.conversation_filters,
        segment: &q.segment_filters,
    };
    let (day_a, day_b) = (
        floor_day(a),
        floor_day(b - Duration::nanoseconds(1)) + Duration::days(1),
    );

    let mut st = inner.state();
    let mut hits: Vec<usize> = (0..inner.catalog.conversations.len())
        .filter(|&i| {
            let c = &inner.catalog.conversations[i];
            inner.visible(&st, i) && c.start >= day_a && c.start < day_b && m.matches(c)
        })
        .collect();
    sort(inner, &mut hits, q.order.as_deref(), q.order_by.as_deref()).map_err(|r| *r)?;
    let off = ((number - 1) * size) as usize;
    let mut page: Vec<usize> = hits.iter().skip(off).take(size as usize).copied().collect();
    if inner.scenario.faults.duplicates && number > 1 && !page.is_empty() && off <= hits.len() {
        page.insert(0, hits[off - 1]);
    }
    let total = hits.len();
    reveal_one(inner, &mut st);
    drop(st);
    let mut body = json!({});
    if !page.is_empty() {
        body["conversations"] = Value::Array(
            page.iter()
                .map(|&i| conversation_json(&inner.catalog.conversations[i]))
                .collect(),
        );
    }
    body["totalHits"] = json!(total);
    Ok(ok(body))
}

/// Counts a page served; with the drift fault, that may reveal a late conversation.
pub fn reveal_one(inner: &Inner, st: &mut SimState) {
    st.pages_served += 1;
    let revealed = inner
        .catalog
        .conversations
        .iter()
        .filter(|c| c.reveal_after.is_some_and(|n| n <= st.pages_served))
        .count() as u64;
    inner.stats().drift_revealed = revealed;
}

pub async fn submit_job(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let inner = &sim.0;
    let q: QueryBody = match json_body(inner, &headers, &body) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let matches = match async_matches(inner, &q) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let id = inner.new_id();
    let job = AsyncJob {
        owner: caller.client_id,
        submitted: inner.clock.now(),
        submitted_utc: inner.clock.utc(),
        matches,
        cancelled: false,
    };
    inner.state().async_jobs.insert(id.clone(), job);
    (StatusCode::ACCEPTED, axum::Json(json!({"jobId": id}))).into_response()
}

/// The conversations an asynchronous query selects (a details job's, or a recording bulk job's
/// `conversationQuery`), in its order: a snapshot of the data lake, every conversation that
/// overlaps the interval, reached the lake, and matches the filters.
pub(crate) fn async_matches(inner: &Inner, q: &QueryBody) -> Result<Vec<usize>, Reject> {
    let (a, b) = parse_interval(inner, q.interval.as_deref())?;
    check_predicates(
        inner,
        &q.conversation_filters,
        CONVERSATION_DIMS,
        "conversation",
    )?;
    check_predicates(inner, &q.segment_filters, SEGMENT_DIMS, "segment")?;
    let m = Matcher {
        conversation: &q.conversation_filters,
        segment: &q.segment_filters,
    };
    // The data lake answers from a consistent snapshot, with every conversation (no drift)
    // that had reached it: those that ended before its dataAvailabilityDate.
    let lake = data_availability(inner);
    let mut matches: Vec<usize> = (0..inner.catalog.conversations.len())
        .filter(|&i| {
            let c = &inner.catalog.conversations[i];
            c.start < b && c.end > a && c.end <= lake && inner.arrived(i) && m.matches(c)
        })
        .collect();
    sort(
        inner,
        &mut matches,
        q.order.as_deref(),
        q.order_by.as_deref(),
    )?;
    if let Some(limit) = q.limit {
        matches.truncate(limit as usize);
    }
    Ok(matches)
}

fn job_state(inner: &Inner, job: &AsyncJob) -> &'static str {
    let elapsed = (inner.clock.now() - job.submitted).as_millis() as u64;
    let total = inner.scenario.async_job_ms;
    if job.cancelled {
        "CANCELLED"
    } else if elapsed >= total {
        "FULFILLED"
    } else if elapsed >= total / 3 {
        "PENDING"
    } else {
        "QUEUED"
    }
}

fn with_job<T>(
    inner: &Inner,
    id: &str,
    caller: &Caller,
    f: impl FnOnce(&mut AsyncJob) -> T,
) -> Result<T, Response> {
    let mut st = inner.state();
    match st.async_jobs.get_mut(id) {
        Some(job) if job.owner == caller.client_id => Ok(f(job)),
        _ => {
            drop(st);
            Err(error(
                inner,
                StatusCode::NOT_FOUND,
                "not.found",
                &format!("Job {id} not found"),
            ))
        }
    }
}

pub async fn job_status(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let inner = &sim.0;
    let r = with_job(inner, &id, &caller, |job| {
        let state = job_state(inner, job);
        let done = job.submitted_utc + Duration::milliseconds(inner.scenario.async_job_ms as i64);
        compact(json!({
            "state": state,
            "expirationDate": ts(job.submitted_utc + Duration::days(2)),
            "submissionDate": ts(job.submitted_utc),
            "completionDate": (state == "FULFILLED").then(|| ts(done)),
        }))
    });
    r.map(ok).unwrap_or_else(|e| e)
}

pub async fn cancel_job(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let inner = &sim.0;
    match with_job(inner, &id, &caller, |job| job.cancelled = true) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultsParams {
    cursor: Option<String>,
    page_size: Option<usize>,
}

pub async fn job_results(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(p): Query<ResultsParams>,
) -> Response {
    let inner = &sim.0;
    let size = p.page_size.unwrap_or(100);
    if !(1..=1000).contains(&size) {
        return error(
            inner,
            StatusCode::BAD_REQUEST,
            "invalid.value",
            "pageSize must be 1..=1000",
        );
    }
    let start = match p.cursor.as_deref() {
        None => 0,
        Some(c) => match base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.strip_prefix("offset:")
                    .and_then(|n| n.parse::<usize>().ok())
            }) {
            Some(n) => n,
            None => {
                return error(
                    inner,
                    StatusCode::BAD_REQUEST,
                    "invalid.value",
                    "Invalid cursor",
                );
            }
        },
    };
    let page = with_job(inner, &id, &caller, |job| {
        let state = job_state(inner, job);
        (
            state,
            job.matches
                .iter()
                .skip(start)
                .take(size)
                .copied()
                .collect::<Vec<_>>(),
            job.matches.len(),
        )
    });
    let (state, page, total) = match page {
        Ok(v) => v,
        Err(e) => return e,
    };
    if state != "FULFILLED" {
        return error(
            inner,
            StatusCode::BAD_REQUEST,
            "bad.request",
            &format!("Job {id} is {state}; results are available once it is FULFILLED"),
        );
    }
    let mut body = json!({
        "conversations": page.iter().map(|&i| conversation_json(&inner.catalog.conversations[i])).collect::<Vec<_>>(),
    });
    if start + page.len() < total {
        body["cursor"] = json!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(format!("offset:{}", start + page.len()))
        );
    }
    body["dataAvailabilityDate"] = json!(ts(data_availability(inner)));
    ok(body)
}

/// The data lake's `dataAvailabilityDate`: an hour behind the analytics clock. A job answers
/// only with conversations that ended by then.
fn data_availability(inner: &Inner) -> OffsetDateTime {
    inner.analytics_now() - Duration::hours(1)
}

pub async fn availability(State(sim): State<Sim>) -> Response {
    ok(json!({"dataAvailabilityDate": ts(data_availability(&sim.0))}))
}
