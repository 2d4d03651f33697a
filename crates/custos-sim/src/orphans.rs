//! Orphan recordings: recordings whose conversation Genesys does not know
//! (`GET /api/v2/orphanrecordings`, `OrphanRecordingListing` of `OrphanRecording`). A
//! completeness report lists those made in its interval: they are calls the query cannot find.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::Sim;
use crate::rng::Rng;
use crate::scenario::Scenario;
use crate::wire::{error, ok, ts};

/// "False returns all orphans for the organization, capped at 500 results."
const CAP: usize = 500;

/// One orphan recording.
#[derive(Clone, Debug)]
pub struct Orphan {
    /// Its id.
    pub id: String,
    /// `createdTime`.
    pub created: OffsetDateTime,
    /// `mediaSizeBytes`.
    pub size: u64,
}

/// The scenario's orphans, sorted by creation time (their own seeded draws).
pub fn draw(s: &Scenario) -> Vec<Orphan> {
    let mut r = Rng::fork(s.seed, "orphans");
    let span = (s.end - s.start).whole_seconds().max(1) as u64;
    let mut out: Vec<Orphan> = (0..s.orphans)
        .map(|_| Orphan {
            id: r.uuid(),
            created: s.start + time::Duration::seconds(r.range(0, span) as i64),
            size: r.range(8_000, 2_000_000),
        })
        .collect();
    out.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    page_size: Option<u32>,
    page_number: Option<u32>,
    has_conversation: Option<bool>,
}

fn entity(o: &Orphan) -> Value {
    json!({
        "id": o.id, "name": format!("orphan {}", o.id), "createdTime": ts(o.created),
        "providerType": "EDGE", "mediaSizeBytes": o.size, "mediaType": "CALL", "mediaSubtype": "Trunk",
        "fileState": "AVAILABLE", "orphanStatus": "NO_CONVERSATION",
        "selfUri": format!("/api/v2/orphanrecordings/{}", o.id),
    })
}

/// `GET /api/v2/orphanrecordings?pageSize=&pageNumber=&hasConversation=`.
pub async fn list(State(sim): State<Sim>, Query(p): Query<ListParams>) -> Response {
    let inner = &sim.0;
    let size = p.page_size.unwrap_or(25);
    let number = p.page_number.unwrap_or(1);
    if !(1..=100).contains(&size) || number == 0 {
        return error(
            inner,
            StatusCode::BAD_REQUEST,
            "bad.request",
            "pageSize must be 1 to 100 and pageNumber at least 1",
        );
    }
    let now = inner.clock.utc();
    // Every orphan here has no conversation (orphanStatus NO_CONVERSATION).
    let all: Vec<&Orphan> = if p.has_conversation == Some(true) {
        Vec::new()
    } else {
        inner
            .orphans
            .iter()
            .filter(|o| !inner.scenario.live || o.created <= now)
            .take(CAP)
            .collect()
    };
    let pages = all.len().div_ceil(size as usize).max(1) as u32;
    let uri = |n: u32| format!("/api/v2/orphanrecordings?pageSize={size}&pageNumber={n}");
    let entities: Vec<Value> = all
        .iter()
        .skip(((number - 1) * size) as usize)
        .take(size as usize)
        .map(|o| entity(o))
        .collect();
    let mut v = json!({
        "entities": entities, "pageSize": size, "pageNumber": number, "total": all.len(),
        "pageCount": pages, "firstUri": uri(1), "lastUri": uri(pages), "selfUri": uri(number),
    });
    if number < pages {
        v["nextUri"] = json!(uri(number + 1));
    }
    if number > 1 {
        v["previousUri"] = json!(uri(number - 1));
    }
    ok(v)
}
