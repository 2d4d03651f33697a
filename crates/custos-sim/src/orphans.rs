//! Orphan recordings: recordings whose conversation Genesys does not know
//! (`GET /api/v2/orphanrecordings`, `OrphanRecordingListing` of `OrphanRecording`). A
//! completeness report lists those made in its interval: they are calls the query cannot find.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::Sim;
use crate::audio::{Codec, MediaSpec};
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
    /// `mediaSizeBytes`: the edge's original, not what a transcode serves.
    pub size: u64,
    /// What its audio is: WAV, 8 kHz mono, a tone; served in any `formatId` (`media_as`).
    pub media: MediaSpec,
}

impl Orphan {
    /// Its audio in `codec` (a transcode keeps duration and tone).
    pub fn media_as(&self, codec: Codec) -> MediaSpec {
        self.media.transcoded(codec)
    }
}

/// The scenario's orphans, sorted by creation time (their own seeded draws).
pub fn draw(s: &Scenario) -> Vec<Orphan> {
    let mut r = Rng::fork(s.seed, "orphans");
    // The audio's draws come from a stream of their own: ids, times and sizes stay what they
    // were before orphans had audio.
    let mut a = Rng::fork(s.seed, "orphan-audio");
    let span = (s.end - s.start).whole_seconds().max(1) as u64;
    let mut out: Vec<Orphan> = (0..s.orphans)
        .map(|_| {
            let (id, created, size) = (
                r.uuid(),
                s.start + time::Duration::seconds(r.range(0, span) as i64),
                r.range(8_000, 2_000_000),
            );
            let media = MediaSpec {
                codec: Codec::Wav,
                sample_rate: 8_000,
                channels: 1,
                duration_ms: a.range(4_000, 90_000),
                tone_hz: 330 + a.range(0, 200) as u32,
                serial: a.next_u64() as u32,
                start_ms: (created.unix_timestamp_nanos() / 1_000_000) as i64,
                damaged: false,
                claimed_ms: None,
            };
            Orphan {
                id,
                created,
                size,
                media,
            }
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

/// The id of the hostile-ids orphan made of `id` (one of `scenario::HOSTILE_IDS`): still
/// hostile as a file name (a `/` in it whatever `id` is), and no recording's id.
pub fn hostile_orphan_id(id: &str) -> String {
    format!("{id}/orphan")
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
    // Under hostile-ids, orphans whose ids are hostile as file names come first (made a
    // second after the scenario's start; they have no media).
    let hostile: Vec<Value> = if inner.scenario.faults.hostile_ids
        && p.has_conversation != Some(true)
    {
        crate::scenario::HOSTILE_IDS
            .iter()
            .map(|id| {
                json!({"id": hostile_orphan_id(id), "createdTime": ts(inner.scenario.start + time::Duration::seconds(1)),
                       "mediaType": "CALL", "fileState": "AVAILABLE", "orphanStatus": "NO_CONVERSATION"})
            })
            .collect()
    } else {
        Vec::new()
    };
    let all: Vec<Value> = hostile
        .into_iter()
        .chain(all.iter().map(|o| entity(o)))
        .take(CAP)
        .collect();
    let pages = all.len().div_ceil(size as usize).max(1) as u32;
    let uri = |n: u32| format!("/api/v2/orphanrecordings?pageSize={size}&pageNumber={n}");
    let entities: Vec<Value> = all
        .iter()
        .skip(((number - 1) * size) as usize)
        .take(size as usize)
        .cloned()
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

/// `GET /api/v2/orphanrecordings/{orphanId}/media?formatId=`: a `Recording` (404 for an id
/// that is no orphan). As for a conversation's recording, the transcode takes the scenario's
/// `transcode_ms`: 202 with `estimatedTranscodeTimeMs` until then, 200 with `mediaUris`,
/// `outputDurationMs` and `outputSizeInBytes` after. `formatId` NONE: no media.
pub async fn media(
    State(sim): State<Sim>,
    axum::extract::Path(id): axum::extract::Path<String>,
    Query(p): Query<MediaParams>,
) -> Response {
    let inner = &sim.0;
    let now = inner.clock.utc();
    let Some(o) = inner
        .orphans
        .iter()
        .find(|o| o.id == id && (!inner.scenario.live || o.created <= now))
    else {
        return error(
            inner,
            StatusCode::NOT_FOUND,
            "not.found",
            &format!("Orphan recording {id} not found"),
        );
    };
    let format = p.format_id.as_deref().unwrap_or("WEBM");
    let mut v = json!({
        "id": o.id, "startTime": ts(o.created), "endTime": ts(o.created + time::Duration::milliseconds(o.media.duration_ms as i64)),
        "media": "audio", "fileState": "AVAILABLE",
        "selfUri": format!("/api/v2/orphanrecordings/{}/media", o.id),
    });
    if format == "NONE" {
        return ok(v);
    }
    let Some(codec) = Codec::from_format_id(format) else {
        return error(
            inner,
            StatusCode::BAD_REQUEST,
            "invalid.value",
            &format!("Invalid formatId '{format}'"),
        );
    };
    let ms = inner.scenario.transcode_ms;
    let ready = {
        let mut st = inner.state();
        let at = *st
            .orphan_transcodes
            .entry((o.id.clone(), codec))
            .or_insert(inner.clock.now() + std::time::Duration::from_millis(ms));
        at.checked_duration_since(inner.clock.now())
    };
    if let Some(left) = ready.filter(|d| !d.is_zero()) {
        v["estimatedTranscodeTimeMs"] = json!(left.as_millis() as u64);
        return (StatusCode::ACCEPTED, axum::Json(v)).into_response();
    }
    let spec = o.media_as(codec);
    v["mediaUris"] =
        json!({"S": {"mediaUri": crate::media::issue_orphan_url(inner, &o.id, codec)}});
    v["actualTranscodeTimeMs"] = json!(ms);
    v["outputDurationMs"] = json!(spec.duration_ms);
    v["outputSizeInBytes"] = json!(spec.size());
    ok(v)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaParams {
    format_id: Option<String>,
}

/// The bytes of orphan `id` in `codec`, whole (an orphan's audio is a few MB at most), for
/// its pre-signed URL.
pub fn bytes(inner: &crate::state::Inner, id: &str, codec: Codec) -> Option<bytes::Bytes> {
    let o = inner.orphans.iter().find(|o| o.id == id)?;
    let mut g = o.media_as(codec).generator();
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = g.next_chunk() {
        out.extend_from_slice(&chunk);
    }
    Some(out.freeze())
}
