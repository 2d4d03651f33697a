//! Speech & Text Analytics transcripts of voice recordings
//! (`GET /api/v2/speechandtextanalytics/conversations/{cid}/communications/{commId}/transcripturl`
//! → `TranscriptUrl {url}`, a pre-signed URL to the transcript document) and recording
//! annotations (`GET /api/v2/conversations/{cid}/recordings/{rid}/annotations`).
//!
//! The document follows the shape the reference (genesys-cloud-api.md §9) and Genesys'
//! developer forum describe: `transcripts[].phrases[]` with `text`, epoch `startTimeMs`,
//! `duration.milliseconds`, `words[]` with `confidence`, and `participantPurpose` (`internal`
//! for the agent, `external` for the customer); `participants[]` with `userId`, `queueId`,
//! `ani`, `dnis`. Which recordings have one, and what it says, is a pure function of the seed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Sim;
use crate::recordings::{conversation_or_404, recording_or_404};
use crate::rng::hash_unit;
use crate::state::Inner;
use crate::wire::{error, ok};

/// What the two sides say, in turn (agent first).
const LINES: &[&str] = &[
    "Thank you for calling, you are speaking with {agent}. How can I help?",
    "Hi, I am calling about the charge on my last statement.",
    "I can look into that for you. Can you confirm the account holder's name?",
    "Yes, it is in my name, the account ending four two one seven.",
    "Thank you. I see the charge; it was applied twice, and I have reversed one of them.",
    "Great, thank you. When will I see the refund?",
    "Within three to five business days. Is there anything else?",
    "No, that is all. Thanks for your help.",
];

/// Seconds between two phrases.
const STEP_MS: u64 = 4_000;

/// One phrase of a transcript, as the truth states it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhraseTruth {
    /// Epoch milliseconds.
    pub start_time_ms: i64,
    /// Milliseconds from the recording's start.
    pub offset_ms: u64,
    /// `internal` (the agent) or `external` (the customer).
    pub participant_purpose: String,
    /// Who spoke, as a reviewer names them: `Agent <name>` or `Customer <ANI>`.
    pub speaker: String,
    /// What was said.
    pub text: String,
}

/// A transcript is per voice communication (the recorded session), which several recordings
/// of a conversation can share: the first of them stands for it.
fn canonical(inner: &Inner, rec: usize) -> usize {
    let r = &inner.catalog.recordings[rec];
    inner.catalog.conversations[r.conversation]
        .recordings
        .iter()
        .copied()
        .find(|&x| inner.catalog.recordings[x].session_id == r.session_id)
        .unwrap_or(rec)
}

/// Whether recording `rec`'s communication has a transcript (a seeded draw).
pub fn has_transcript(inner: &Inner, rec: usize) -> bool {
    let r = &inner.catalog.recordings[rec];
    r.kind == crate::natives::Kind::Audio
        && hash_unit(inner.scenario.seed, "transcript", &r.session_id) < inner.scenario.transcripts
}

/// The agent's (name, userId, queueId) and the customer's (ANI, DNIS) of the recording's call.
fn parties(inner: &Inner, rec: usize) -> ((String, String, String), (String, String)) {
    let c = &inner.catalog.conversations[inner.catalog.recordings[rec].conversation];
    let agent = c.participants.iter().find(|p| p.purpose == "agent");
    let customer = c.participants.iter().find(|p| p.purpose == "customer");
    (
        agent.map_or_else(Default::default, |a| {
            (
                a.name.clone(),
                a.user_id.clone().unwrap_or_default(),
                c.queue_id.clone(),
            )
        }),
        customer.map_or_else(Default::default, |p| (p.ani.clone(), p.dnis.clone())),
    )
}

/// The transcript's phrases: one every few seconds while the communication's (first)
/// recording plays; offsets from the transcript's `startTime`.
pub fn phrases(inner: &Inner, rec: usize) -> Vec<PhraseTruth> {
    let rec = canonical(inner, rec);
    let r = &inner.catalog.recordings[rec];
    let ((agent, _, _), (ani, _)) = parties(inner, rec);
    let start = (r.start.unix_timestamp_nanos() / 1_000_000) as i64;
    (0..LINES.len())
        .map(|i| (i, 1_000 + i as u64 * STEP_MS))
        .take_while(|(_, at)| at + STEP_MS / 2 <= r.playable_ms())
        .map(|(i, at)| {
            let internal = i % 2 == 0;
            PhraseTruth {
                start_time_ms: start + at as i64,
                offset_ms: at,
                participant_purpose: if internal { "internal" } else { "external" }.into(),
                speaker: if internal {
                    format!("Agent {agent}")
                } else {
                    format!("Customer {ani}")
                },
                text: LINES[i].replace("{agent}", &agent),
            }
        })
        .collect()
}

/// The transcript document of recording `rec`'s communication.
pub fn document(inner: &Inner, rec: usize) -> Value {
    let rec = canonical(inner, rec);
    let r = &inner.catalog.recordings[rec];
    let ((_, user, queue), (ani, dnis)) = parties(inner, rec);
    let start = (r.start.unix_timestamp_nanos() / 1_000_000) as i64;
    let phrases: Vec<Value> = phrases(inner, rec)
        .into_iter()
        .map(|p| {
            let words: Vec<Value> = p
                .text
                .split_whitespace()
                .enumerate()
                .map(|(k, w)| json!({"word": w, "confidence": 0.9, "startTimeMs": p.start_time_ms + 250 * k as i64, "duration": {"milliseconds": 240}}))
                .collect();
            json!({"text": p.text, "stability": 0.0, "startTimeMs": p.start_time_ms, "duration": {"milliseconds": STEP_MS - 500},
                   "words": words, "decoratedText": p.text, "participantPurpose": p.participant_purpose})
        })
        .collect();
    json!({
        "organizationId": "custos-sim-org",
        "conversationId": r.conversation_id,
        "communicationId": r.session_id,
        "mediaType": "call",
        "startTime": start,
        "duration": {"milliseconds": r.playable_ms()},
        "transcripts": [{
            "transcriptId": format!("{}-transcript", r.session_id),
            "language": "en-US",
            "engineProvider": "GENESYS",
            "phrases": phrases,
        }],
        "participants": [
            {"participantPurpose": "internal", "userId": user, "queueId": queue, "startTimeMs": start},
            {"participantPurpose": "external", "ani": ani, "dnis": dnis, "startTimeMs": start},
        ],
    })
}

/// `GET …/speechandtextanalytics/conversations/{cid}/communications/{commId}/transcripturl`.
pub async fn transcript_url(
    State(sim): State<Sim>,
    Path((cid, comm)): Path<(String, String)>,
) -> Response {
    let inner = &sim.0;
    let conv = match conversation_or_404(inner, &cid) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let mut st = inner.state();
    let recs: Vec<usize> = inner.catalog.conversations[conv]
        .recordings
        .iter()
        .copied()
        .filter(|&r| inner.catalog.recordings[r].session_id == comm)
        .collect();
    // Transcripts are deleted with their recording: with the last of the communication's.
    let live = recs
        .iter()
        .any(|&r| inner.file_state(&st, r).as_str() != "DELETED");
    match recs.first() {
        Some(&r) if has_transcript(inner, r) && live => {
            let url = crate::media::issue_transcript_url(inner, &mut st, r);
            ok(json!({"url": url}))
        }
        _ => {
            drop(st);
            error(
                inner,
                StatusCode::NOT_FOUND,
                "not.found",
                &format!("No transcript for communication {comm} of conversation {cid}"),
            )
        }
    }
}

/// `GET /api/v2/conversations/{cid}/recordings/{rid}/annotations` → `Annotation[]`.
pub async fn annotations(
    State(sim): State<Sim>,
    Path((cid, rid)): Path<(String, String)>,
) -> Response {
    let inner = &sim.0;
    match conversation_or_404(inner, &cid).and_then(|c| recording_or_404(inner, c, &rid)) {
        Ok(rec) => ok(crate::recordings::annotations(
            &inner.catalog.recordings[rec],
        )),
        Err(e) => e,
    }
}
