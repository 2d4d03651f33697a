//! Ground truth and counters for tests: what every recording really is (SHA-256, size,
//! duration, codec, state, faults, and the outcome a correct export must give it), and the
//! simulator's control endpoints under `/sim/`.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Sim;
use crate::audio::Codec;
use crate::catalog::FileState;
use crate::state::Inner;
use crate::wire::{ok, ts};

/// The truth about one media rendition.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FormatTruth {
    /// Bytes.
    pub size_bytes: u64,
    /// Lowercase hex SHA-256.
    pub sha256: String,
}

/// The truth about one recording.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingTruth {
    /// Recording id.
    pub id: String,
    /// `media`: audio, screen, chat, email or messaging.
    pub media: String,
    /// Its conversation.
    pub conversation_id: String,
    /// Conversation start (ISO-8601).
    pub conversation_start: String,
    /// Recording start as the API states it.
    pub start_time: String,
    /// fileState now (a purge fault may have deleted it since the start).
    pub file_state: String,
    /// fileState in the catalog, before any fault.
    pub catalog_file_state: String,
    /// Original codec (what batch downloads and the search API serve).
    pub codec: Codec,
    /// Content-Type of the original.
    pub content_type: String,
    /// What the audio really lasts, ms.
    pub duration_ms: u64,
    /// What the metadata states, ms (`endTime − startTime`).
    pub stated_duration_ms: u64,
    /// The secure pause cut from the audio, ms (0 without one).
    pub paused_ms: u64,
    /// Size of the original, bytes.
    pub size_bytes: u64,
    /// SHA-256 of the original.
    pub sha256: String,
    /// Every rendition the transcode endpoint can produce.
    pub formats: BTreeMap<Codec, FormatTruth>,
    /// Faults that hit this recording.
    pub faults: Vec<String>,
    /// Hidden until revealed by the drift fault.
    pub late: bool,
    /// Its conversation has happened by the simulator's clock (always, unless the scenario is
    /// live).
    pub arrived: bool,
    /// What a correct export with default flags records: Exported, Purged, Archived,
    /// Corrupted or Failed. (Under `--protect` a purge-faulted recording is spared, and under
    /// `--restore-archived` an archived one is restored: both end Exported.)
    pub expected_outcome: String,
    /// Its conversation is under deletion protection now.
    pub protected: bool,
    /// When the protection was applied (simulated UTC), if it is.
    pub protected_at: Option<String>,
    /// Restore requests received for it.
    pub restore_requests: u32,
    /// The voice communication (`sessionId`) its transcript is asked for by.
    pub communication_id: String,
    /// Its Speech & Text Analytics transcript's phrases, if it has one.
    pub transcript: Option<Vec<crate::transcripts::PhraseTruth>>,
    /// Who spoke, when and why: the call's facts as the directory names them.
    pub call: CallTruth,
    /// Its copy in the org's archive, when the scenario lands one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub archive: Option<crate::archive::ArchiveTruth>,
}

/// The facts of a recording's call, with every id named as the directory APIs name it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CallTruth {
    /// `originatingDirection`.
    pub direction: String,
    /// The customer-side session's ANI.
    pub ani: String,
    /// Its DNIS.
    pub dnis: String,
    /// The agent: (userId, name).
    pub agent: (String, String),
    /// The queue: (id, name).
    pub queue: (String, String),
    /// The routing skill: (id, name).
    pub skill: (String, String),
    /// The wrap-up code: (id, name).
    pub wrapup: (String, String),
    /// The division id.
    pub division_id: String,
    /// Its name, as the divisions API names it.
    #[serde(default)]
    pub division_name: String,
}

fn call_truth(inner: &Inner, conv: usize) -> CallTruth {
    let c = &inner.catalog.conversations[conv];
    let dir = &inner.catalog.directory;
    let named = |list: &[(String, String)], id: &str| {
        let name = list
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, n)| n.clone())
            .unwrap_or_default();
        (id.to_owned(), name)
    };
    let customer = c.participants.iter().find(|p| p.purpose == "customer");
    let agent = c
        .participants
        .iter()
        .find(|p| p.purpose == "agent")
        .and_then(|p| p.user_id.clone())
        .unwrap_or_default();
    CallTruth {
        direction: c.direction.to_owned(),
        ani: customer.map(|p| p.ani.clone()).unwrap_or_default(),
        dnis: customer.map(|p| p.dnis.clone()).unwrap_or_default(),
        agent: named(&dir.users, &agent),
        queue: named(&dir.queues, &c.queue_id),
        skill: named(&dir.skills, &c.skill_id),
        wrapup: named(&dir.wrapups, &c.wrapup_id),
        division_id: c.division_id.clone(),
        division_name: named(&dir.divisions, &c.division_id).1,
    }
}

/// One orphan recording's audio, as `formatId=WAV` serves it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrphanTruth {
    /// Its id.
    pub id: String,
    /// `createdTime`.
    pub created: String,
    /// What its audio lasts (the `outputDurationMs` stated).
    pub duration_ms: u64,
    /// SHA-256 of the WAV served (lowercase hex).
    pub wav_sha256: String,
    /// Its bytes.
    pub wav_bytes: u64,
}

/// The truth about the whole catalog.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Truth {
    /// The scenario's seed.
    pub seed: u64,
    /// Conversations in the catalog (late ones included).
    pub conversations: usize,
    /// Every recording.
    pub recordings: Vec<RecordingTruth>,
    /// Conversations with no recording at all (their analytics sessions say `recording:
    /// false`), sorted: what a completeness report lists as matched but unrecorded.
    pub conversations_without_recordings: Vec<String>,
    /// Orphan recordings (no known conversation) that exist by now: id and `createdTime`.
    pub orphans: Vec<(String, String)>,
    /// The same orphans' audio: what collecting them (`custos export --collect-orphans`)
    /// must yield.
    pub orphan_media: Vec<OrphanTruth>,
    /// The keys of the archive's objects that are no recording of the org (`archive-stray`),
    /// each in a recorded conversation's folder, sorted: what an export from the archive must
    /// name and never read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub archive_strays: Vec<String>,
}

fn digest(inner: &Inner, rec: usize, codec: Codec) -> FormatTruth {
    if let Some((sha, size)) = inner.digests.lock().expect("digests").get(&(rec, codec)) {
        return FormatTruth {
            size_bytes: *size,
            sha256: sha.clone(),
        };
    }
    let (sha, size) = inner.catalog.recordings[rec].media_as(codec).digest();
    inner
        .digests
        .lock()
        .expect("digests")
        .insert((rec, codec), (sha.clone(), size));
    FormatTruth {
        size_bytes: size,
        sha256: sha,
    }
}

/// The faults that hit recording `r`, by name, and the outcome a correct export with default
/// flags gives it (`fa`: the scenario's fault-attempts).
fn expected(r: &crate::catalog::Recording, fa: u32) -> (Vec<String>, &'static str) {
    let f = r.faults;
    let faults = [
        (f.purge, "purge"),
        (f.truncate, "truncate"),
        (f.length_over, "length-over"),
        (f.length_under, "length-under"),
        (f.duration_lie, "duration-lie"),
        (f.header_lie, "header-lie"),
        (f.slow_transcode, "slow-transcode"),
        (f.paused, "pauses"),
        (f.expired_url, "expired-urls"),
        (f.damaged_zip, "damaged-zip"),
        (f.truncated_eml, "truncated-eml"),
        (f.short_screen, "short-screen"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| name.to_owned())
    .collect();
    let outcome = match r.file_state {
        FileState::Deleted => "Purged",
        FileState::Archived => "Archived",
        _ if f.purge => "Purged",
        // Every retrieval mode states a duration (batch: the recording's endTime −
        // startTime less its pauses), so a file that holds less is caught everywhere.
        _ if f.duration_lie => "Corrupted",
        // The container's header agrees with the metadata; only its content says otherwise.
        _ if f.header_lie => "Corrupted",
        // A native that fails its own check (ZIP CRC, MIME structure, video duration).
        _ if f.damaged_zip || f.truncated_eml || f.short_screen => "Corrupted",
        // Served short every time, yet consistently: complete bytes that are not the recording.
        _ if fa == 0 && f.length_under && !(f.truncate || f.length_over) => "Corrupted",
        _ if fa == 0 && (f.truncate || f.length_over || f.length_under) => "Failed",
        _ => "Exported",
    };
    (faults, outcome)
}

pub fn build(inner: &Inner) -> Truth {
    let fa = inner.scenario.faults.fault_attempts;
    let recordings = inner
        .catalog
        .recordings
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (faults, expected) = expected(r, fa);
            // A recording that is not audio has one file: its own.
            let renditions = match r.kind {
                crate::natives::Kind::Audio => Codec::ALL.to_vec(),
                _ => vec![r.codec],
            };
            let formats: BTreeMap<Codec, FormatTruth> = renditions
                .into_iter()
                .map(|c| (c, digest(inner, i, c)))
                .collect();
            let original = formats[&r.codec].clone();
            let st = inner.state();
            let state = inner.file_state(&st, i);
            let protected_at = st.protected.get(&r.conversation).map(|t| ts(*t));
            let restore_requests = st.restores.get(&i).map_or(0, |x| x.requests);
            drop(st);
            RecordingTruth {
                id: r.id.clone(),
                media: r.kind.as_str().to_owned(),
                conversation_id: r.conversation_id.clone(),
                conversation_start: ts(inner.catalog.conversations[r.conversation].start),
                start_time: ts(r.start),
                file_state: state.as_str().to_owned(),
                catalog_file_state: r.file_state.as_str().to_owned(),
                codec: r.codec,
                content_type: r.codec.content_type().to_owned(),
                duration_ms: r.media.duration_ms,
                stated_duration_ms: r.stated_ms,
                paused_ms: r.pause.map_or(0, |(_, len)| len),
                size_bytes: original.size_bytes,
                sha256: original.sha256,
                formats,
                faults,
                arrived: inner.arrived(r.conversation),
                late: inner.catalog.conversations[r.conversation]
                    .reveal_after
                    .is_some(),
                expected_outcome: expected.to_owned(),
                protected: protected_at.is_some(),
                protected_at,
                restore_requests,
                communication_id: r.session_id.clone(),
                transcript: crate::transcripts::has_transcript(inner, i)
                    .then(|| crate::transcripts::phrases(inner, i)),
                call: call_truth(inner, r.conversation),
                archive: crate::archive::truth(inner, i),
            }
        })
        .collect();
    let mut conversations_without_recordings: Vec<String> = inner
        .catalog
        .conversations
        .iter()
        .filter(|c| c.recordings.is_empty())
        .map(|c| c.id.clone())
        .collect();
    conversations_without_recordings.sort();
    Truth {
        seed: inner.scenario.seed,
        conversations: inner.catalog.conversations.len(),
        recordings,
        conversations_without_recordings,
        orphans: inner
            .orphans
            .iter()
            .filter(|o| !inner.scenario.live || o.created <= inner.clock.utc())
            .map(|o| (o.id.clone(), ts(o.created)))
            .collect(),
        orphan_media: inner
            .orphans
            .iter()
            .filter(|o| !inner.scenario.live || o.created <= inner.clock.utc())
            .map(|o| {
                let (wav_sha256, wav_bytes) = o.media_as(crate::audio::Codec::Wav).digest();
                OrphanTruth {
                    id: o.id.clone(),
                    created: ts(o.created),
                    duration_ms: o.media.duration_ms,
                    wav_sha256,
                    wav_bytes,
                }
            })
            .collect(),
        archive_strays: match inner.scenario.archive_dir {
            Some(_) => {
                let mut keys: Vec<String> = (0..inner.catalog.conversations.len())
                    .filter_map(|c| crate::archive::stray_key(inner, c))
                    .collect();
                keys.sort();
                keys
            }
            None => Vec::new(),
        },
    }
}

pub async fn stats_endpoint(State(sim): State<Sim>) -> Response {
    ok(serde_json::to_value(sim.stats()).expect("stats serialise"))
}

pub async fn truth_endpoint(State(sim): State<Sim>) -> Response {
    let truth = tokio::task::spawn_blocking(move || sim.truth())
        .await
        .expect("truth task");
    ok(serde_json::to_value(truth).expect("truth serialises"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockParams {
    advance_ms: u64,
}

pub async fn clock_endpoint(State(sim): State<Sim>, Query(p): Query<ClockParams>) -> Response {
    sim.advance_clock(p.advance_ms);
    ok(json!({"advancedMs": p.advance_ms, "now": ts(sim.0.clock.utc())}))
}
