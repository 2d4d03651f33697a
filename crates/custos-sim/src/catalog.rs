//! The simulated org's data: conversations, their participants, and their recordings, all a
//! pure function of the scenario's seed. The catalog never changes after it is built; what
//! changes while serving (purges, drift reveals) lives in the server state.

use std::collections::HashMap;

use time::{Duration, OffsetDateTime};

use crate::audio::{Codec, MediaSpec};
use crate::natives::Kind;
use crate::rng::{Rng, hash_unit};
use crate::scenario::Scenario;

/// A Genesys recording `fileState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileState {
    /// Downloadable.
    Available,
    /// Restored from archive: downloadable until re-archived.
    Restored,
    /// A restore was asked for and is under way (not downloadable yet).
    Restoring,
    /// In cold storage; must be restored before download.
    Archived,
    /// Gone.
    Deleted,
}

impl FileState {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Available => "AVAILABLE",
            FileState::Restored => "RESTORED",
            FileState::Restoring => "RESTORING",
            FileState::Archived => "ARCHIVED",
            FileState::Deleted => "DELETED",
        }
    }

    /// Whether media can be fetched.
    pub fn downloadable(self) -> bool {
        matches!(self, FileState::Available | FileState::Restored)
    }
}

/// One participant of a conversation, with its single voice session.
#[derive(Clone, Debug)]
pub struct Participant {
    /// `participantId`.
    pub participant_id: String,
    /// `participantName`.
    pub name: String,
    /// `purpose`: customer, acd, agent.
    pub purpose: &'static str,
    /// `userId` for agents.
    pub user_id: Option<String>,
    /// The session's `sessionId`.
    pub session_id: String,
    /// Session `direction`.
    pub direction: &'static str,
    /// Session `ani`.
    pub ani: String,
    /// Session `dnis`.
    pub dnis: String,
    /// Whether a recording was started in this session.
    pub recording: bool,
    /// The session's `mediaType`: voice, chat, email or message.
    pub media_type: &'static str,
    /// Whether the agent's screen was recorded (`screenRecording`).
    pub screen_recording: bool,
    /// Segments: (type, start, end, queueId).
    pub segments: Vec<Segment>,
}

/// An analytics segment.
#[derive(Clone, Debug)]
pub struct Segment {
    /// `segmentType`.
    pub kind: &'static str,
    /// `segmentStart`.
    pub start: OffsetDateTime,
    /// `segmentEnd`.
    pub end: OffsetDateTime,
    /// `queueId`, where the segment was in a queue.
    pub queue_id: Option<String>,
    /// `requestedRoutingSkillIds`, on the segments routed through the queue.
    pub skill_ids: Vec<String>,
    /// `wrapUpCode`, on the agent's wrap-up segment.
    pub wrapup_code: Option<String>,
}

impl Segment {
    /// A segment of `kind` over `[start, end]`, in queue `queue_id` if any; no skills or
    /// wrap-up code yet (the catalog adds them).
    pub fn new(
        kind: &'static str,
        start: OffsetDateTime,
        end: OffsetDateTime,
        queue_id: Option<String>,
    ) -> Segment {
        Segment {
            kind,
            start,
            end,
            queue_id,
            skill_ids: Vec::new(),
            wrapup_code: None,
        }
    }
}

/// A conversation.
#[derive(Clone, Debug)]
pub struct Conversation {
    /// `conversationId`.
    pub id: String,
    /// `conversationStart`.
    pub start: OffsetDateTime,
    /// `conversationEnd`.
    pub end: OffsetDateTime,
    /// `originatingDirection`.
    pub direction: &'static str,
    /// `divisionIds[0]`.
    pub division_id: String,
    /// The queue it went through.
    pub queue_id: String,
    /// The skill it was routed by.
    pub skill_id: String,
    /// The wrap-up code the agent chose.
    pub wrapup_id: String,
    /// Customer, ACD (inbound only) and agent.
    pub participants: Vec<Participant>,
    /// Indexes into [`Catalog::recordings`].
    pub recordings: Vec<usize>,
    /// With the drift fault: visible only after this many query pages have been served.
    pub reveal_after: Option<u64>,
}

/// A recording and everything needed to serve it.
#[derive(Clone, Debug)]
pub struct Recording {
    /// Recording id.
    pub id: String,
    /// What it holds (`media`): audio, or a screen, chat, email or messaging recording.
    pub kind: Kind,
    /// Its conversation.
    pub conversation_id: String,
    /// Index of its conversation in [`Catalog::conversations`].
    pub conversation: usize,
    /// `startTime` as the API states it.
    pub start: OffsetDateTime,
    /// `endTime` as the API states it (start + stated duration).
    pub end: OffsetDateTime,
    /// Duration the metadata states, ms (`endTime − startTime`).
    pub stated_ms: u64,
    /// A secure pause: (offset from the start, length), ms. Its span is cut from the audio.
    pub pause: Option<(u64, u64)>,
    /// `fileState` in the catalog (a purge fault can delete it later).
    pub file_state: FileState,
    /// The original (trunk) codec, served by batch downloads and the search API.
    pub codec: Codec,
    /// The media as it really is: its duration is shorter than `stated_ms` under duration-lie.
    pub media: MediaSpec,
    /// `sessionId` of the recorded (agent) session.
    pub session_id: String,
    /// Faults that hit this recording.
    pub faults: RecordingFaults,
}

impl Recording {
    /// The duration the recording should play for: `endTime − startTime` less the pause cut
    /// from it (what a transcode states as `outputDurationMs`, and the search API as
    /// `durationMs`).
    pub fn playable_ms(&self) -> u64 {
        self.stated_ms - self.pause.map_or(0, |(_, len)| len)
    }

    /// The media of this recording in `codec` (a transcode keeps duration and tone). A
    /// recording that is not audio has one file whatever is asked for: its own.
    pub fn media_as(&self, codec: Codec) -> MediaSpec {
        if self.kind != Kind::Audio {
            return self.media;
        }
        self.media.transcoded(codec)
    }
}

/// Which seeded faults hit one recording.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordingFaults {
    /// Deleted at its first media download.
    pub purge: bool,
    /// Downloads cut off halfway.
    pub truncate: bool,
    /// Content-Length larger than the body.
    pub length_over: bool,
    /// Content-Length smaller than the file.
    pub length_under: bool,
    /// Metadata duration longer than the audio.
    pub duration_lie: bool,
    /// Metadata and the container's header both longer than the audio.
    pub header_lie: bool,
    /// A secure pause cut from the audio (not a fault: the truth says Exported).
    pub paused: bool,
    /// Transcode takes 10x.
    pub slow_transcode: bool,
    /// First media URL issued already expired.
    pub expired_url: bool,
    /// A chat or messaging ZIP with a member whose bytes no longer match its CRC.
    pub damaged_zip: bool,
    /// An email recording's EML cut short (its MIME never closed, an attachment short).
    pub truncated_eml: bool,
    /// A screen recording that holds a third of its stated duration.
    pub short_screen: bool,
}

impl RecordingFaults {
    /// The faults of the download itself, which hit any recording (`id`, in `state`): purge,
    /// truncation, lying lengths, an expired URL.
    fn transport(s: &Scenario, id: &str, state: FileState) -> RecordingFaults {
        let f = &s.faults;
        let hit = |label: &str, p: f64| p > 0.0 && hash_unit(s.seed, label, id) < p;
        RecordingFaults {
            purge: state == FileState::Available && hit("purge", f.purge),
            truncate: hit("truncate", f.truncate),
            length_over: hit("length-over", f.length_over),
            length_under: hit("length-under", f.length_under),
            expired_url: hit("expired-urls", f.expired_urls),
            ..RecordingFaults::default()
        }
    }
}

/// The org's directory: what the Users, Routing queues, skills and wrap-up codes APIs name.
/// Each is `(id, name)`.
#[derive(Debug, Default)]
pub struct Directory {
    /// Agents.
    pub users: Vec<(String, String)>,
    /// Queues.
    pub queues: Vec<(String, String)>,
    /// Routing skills.
    pub skills: Vec<(String, String)>,
    /// Wrap-up codes.
    pub wrapups: Vec<(String, String)>,
    /// Divisions.
    pub divisions: Vec<(String, String)>,
}

/// The whole org.
#[derive(Debug)]
pub struct Catalog {
    /// Who and what the directory APIs name.
    pub directory: Directory,
    /// Conversations sorted by (start, id), late (drift) ones included.
    pub conversations: Vec<Conversation>,
    /// Every recording, in conversation order.
    pub recordings: Vec<Recording>,
    by_conversation: HashMap<String, usize>,
    by_recording: HashMap<String, usize>,
}

pub(crate) const FIRST: &[&str] = &[
    "Ada", "Ben", "Chloe", "Dev", "Elif", "Femi", "Grace", "Hugo", "Ines", "Jon", "Kira", "Luca",
];
const QUEUES: &[&str] = &["Sales", "Support", "Billing", "Retention"];
const SKILLS: &[&str] = &["English", "Spanish", "Claims", "Escalations", "Enterprise"];
const WRAPUPS: &[&str] = &[
    "Resolved",
    "Follow-up needed",
    "Complaint",
    "Transferred",
    "Sale",
    "No answer",
];

/// The org's agents (id, name), queues (id, name) and divisions, drawn first.
struct People<'a> {
    users: &'a [(String, String)],
    queues: &'a [(String, &'static str)],
    divisions: &'a [String],
}

/// A recording that is not audio, still to draw.
struct Native {
    kind: Kind,
    /// Index of its conversation.
    conversation: usize,
    /// What it covers.
    span: (OffsetDateTime, OffsetDateTime),
    /// The agent's session.
    session_id: String,
    /// Seeds its contents (crate::natives).
    serial: u32,
}

/// A recording still to draw: (conversation index, its number, connect, end, agent session).
type Pending = (usize, u64, OffsetDateTime, OffsetDateTime, String);

impl Catalog {
    /// Builds the catalog of `s`.
    pub fn build(s: &Scenario) -> Catalog {
        let mut ids = Rng::fork(s.seed, "ids");
        let users: Vec<(String, String)> = FIRST
            .iter()
            .map(|n| (ids.uuid(), format!("{n} {}", s.agent_surname)))
            .collect();
        let queues: Vec<(String, &str)> = QUEUES.iter().map(|q| (ids.uuid(), *q)).collect();
        let divisions: Vec<String> = (0..2).map(|_| ids.uuid()).collect();
        let people = People {
            users: &users,
            queues: &queues,
            divisions: &divisions,
        };

        let mut r = Rng::fork(s.seed, "conversations");
        let total = s.conversations + s.faults.drift;
        let mut convs = Vec::with_capacity(total);
        let mut pending = Vec::new();
        for i in 0..total {
            convs.push(Self::draw_conversation(s, &mut r, i, &people, &mut pending));
        }
        // Chat, email and messaging conversations from draws of their own, after the calls.
        let mut digital = Vec::new();
        let mut dr = Rng::fork(s.seed, "digital");
        for i in 0..s.digital {
            let (c, d) = Self::draw_digital(s, &mut dr, i, &people, convs.len());
            convs.push(c);
            digital.push(d);
        }
        // Skills and wrap-up codes from draws of their own, so the conversations' stay as they were.
        let mut d = Rng::fork(s.seed, "directory");
        let named = |d: &mut Rng, names: &[&str]| -> Vec<(String, String)> {
            names.iter().map(|n| (d.uuid(), (*n).to_owned())).collect()
        };
        let directory = Directory {
            skills: named(&mut d, SKILLS),
            wrapups: named(&mut d, WRAPUPS),
            divisions: divisions
                .iter()
                .zip(["Home", "Customer Care"])
                .map(|(id, n)| (id.clone(), n.to_owned()))
                .collect(),
            users: users.clone(),
            queues: queues
                .iter()
                .map(|(id, n)| (id.clone(), (*n).to_owned()))
                .collect(),
        };
        for c in &mut convs {
            Self::route(s.seed, c, &directory);
        }

        // Recordings: a second pass so their draws never shift the conversations'.
        let mut rr = Rng::fork(s.seed, "recordings");
        let mut recordings = Vec::with_capacity(pending.len());
        for (ci, k, connect, end, session_id) in pending {
            let rec =
                Self::draw_recording(s, &mut rr, &convs[ci].id, ci, k, (connect, end), session_id);
            convs[ci].recordings.push(recordings.len());
            recordings.push(rec);
        }
        for d in digital {
            let rec = Self::native_recording(s, &mut dr, &convs[d.conversation], d);
            convs[rec.conversation].recordings.push(recordings.len());
            recordings.push(rec);
        }
        Self::add_screens(s, &mut convs, &mut recordings);
        Self::index(directory, convs, recordings)
    }

    /// The skill the conversation was routed by (on its queue segments) and the wrap-up code its
    /// agent chose (on a wrap-up segment after the call), each a pure function of its id.
    fn route(seed: u64, c: &mut Conversation, dir: &Directory) {
        let pick = |label: &str, items: &[(String, String)]| {
            let i = (hash_unit(seed, label, &c.id) * items.len() as f64) as usize;
            items[i.min(items.len() - 1)].0.clone()
        };
        c.skill_id = pick("skill", &dir.skills);
        c.wrapup_id = pick("wrapup", &dir.wrapups);
        for p in &mut c.participants {
            for seg in &mut p.segments {
                if seg.queue_id.is_some() {
                    seg.skill_ids = vec![c.skill_id.clone()];
                }
            }
            if p.purpose == "agent" {
                p.segments.push(Segment {
                    kind: "wrapup",
                    start: c.end,
                    end: c.end + Duration::seconds(20),
                    queue_id: Some(c.queue_id.clone()),
                    skill_ids: Vec::new(),
                    wrapup_code: Some(c.wrapup_id.clone()),
                });
            }
        }
    }

    /// Screen recordings: the agent's screen during the call, for a `screen` fraction of the
    /// recorded calls (chosen by a hash of the conversation id, so the calls' draws stay).
    fn add_screens(s: &Scenario, convs: &mut [Conversation], recordings: &mut Vec<Recording>) {
        if s.screen <= 0.0 {
            return;
        }
        let mut r = Rng::fork(s.seed, "screen");
        for (ci, c) in convs.iter_mut().enumerate() {
            let first_audio = c.recordings.first().map(|&i| &recordings[i]);
            let Some(audio) = first_audio.filter(|a| a.kind == Kind::Audio) else {
                continue;
            };
            if hash_unit(s.seed, "screen", &c.id) >= s.screen {
                continue;
            }
            let d = Native {
                kind: Kind::Screen,
                conversation: ci,
                span: (audio.start, audio.end),
                session_id: audio.session_id.clone(),
                serial: r.next_u64() as u32,
            };
            if let Some(agent) = c.participants.iter_mut().find(|p| p.purpose == "agent") {
                agent.screen_recording = true;
            }
            let rec = Self::native_recording(s, &mut r, c, d);
            c.recordings.push(recordings.len());
            recordings.push(rec);
        }
    }

    /// Digital conversation `i` (chat, email, messaging in turn), index `ci` in the catalog,
    /// with its one recording still to draw.
    fn draw_digital(
        s: &Scenario,
        r: &mut Rng,
        i: usize,
        people: &People<'_>,
        ci: usize,
    ) -> (Conversation, Native) {
        let kind = Kind::DIGITAL[i % Kind::DIGITAL.len()];
        let span_ms = (s.end - s.start).whole_milliseconds() as u64;
        let id = r.uuid();
        let serial = r.next_u64() as u32;
        let parties = crate::natives::parties(serial);
        let user = &people.users[parties.agent_index % people.users.len()];
        let queue = r.pick(people.queues).clone();
        let division_id = r.pick(people.divisions).clone();
        let start = s.start + Duration::milliseconds(r.range(0, span_ms.saturating_sub(1)) as i64);
        let connect = start + Duration::milliseconds(r.range(5_000, 120_000) as i64);
        let end = connect + Duration::milliseconds(r.range(120_000, 1_800_000) as i64);
        let (ani, dnis) = match kind {
            Kind::Email => (
                parties.customer_email.clone(),
                "support@contact.example.com".to_owned(),
            ),
            Kind::Messaging => (
                format!("tel:{}", parties.customer_phone),
                "tel:+18005550100".to_owned(),
            ),
            _ => (parties.customer.clone(), "web-chat".to_owned()),
        };
        let media_type = kind.session_media_type();
        let agent_session = r.uuid();
        let participant =
            |r: &mut Rng, name: String, purpose, user_id, session_id, segments| Participant {
                participant_id: r.uuid(),
                name,
                purpose,
                user_id,
                session_id,
                direction: "inbound",
                ani: ani.clone(),
                dnis: dnis.clone(),
                recording: purpose == "agent",
                media_type,
                screen_recording: false,
                segments,
            };
        let customer_session = r.uuid();
        let participants = vec![
            participant(
                r,
                parties.customer.clone(),
                "customer",
                None,
                customer_session,
                vec![Segment::new("interact", start, end, None)],
            ),
            participant(
                r,
                user.1.clone(),
                "agent",
                Some(user.0.clone()),
                agent_session.clone(),
                vec![Segment::new(
                    "interact",
                    connect,
                    end,
                    Some(queue.0.clone()),
                )],
            ),
        ];
        let c = Conversation {
            id,
            start,
            end,
            direction: "inbound",
            division_id,
            queue_id: queue.0.clone(),
            skill_id: String::new(),
            wrapup_id: String::new(),
            participants,
            recordings: Vec::new(),
            reveal_after: None,
        };
        let d = Native {
            kind,
            conversation: ci,
            span: (connect, end),
            session_id: agent_session,
            serial,
        };
        (c, d)
    }

    /// A recording that is not audio (`d`), of conversation `c`: its file state and faults
    /// drawn as a call's are, with the faults of its kind.
    fn native_recording(s: &Scenario, r: &mut Rng, c: &Conversation, d: Native) -> Recording {
        let id = r.uuid();
        let (start, end) = d.span;
        let stated_ms = (end - start).whole_milliseconds() as u64;
        let roll = r.unit();
        let file_state = if roll < s.deleted_fraction {
            FileState::Deleted
        } else if roll < s.deleted_fraction + s.archived_fraction {
            FileState::Archived
        } else {
            FileState::Available
        };
        let f = &s.faults;
        let hit = |label: &str, p: f64| p > 0.0 && hash_unit(s.seed, label, &id) < p;
        let faults = RecordingFaults {
            damaged_zip: matches!(d.kind, Kind::Chat | Kind::Messaging)
                && hit("damaged-zip", f.damaged_zip),
            truncated_eml: d.kind == Kind::Email && hit("truncated-eml", f.truncated_eml),
            short_screen: d.kind == Kind::Screen && hit("short-screen", f.short_screen),
            ..RecordingFaults::transport(s, &id, file_state)
        };
        let codec = d.kind.native().expect("a native kind");
        let media = MediaSpec {
            codec,
            sample_rate: 0,
            channels: 0,
            duration_ms: if faults.short_screen {
                (stated_ms / 3).max(1)
            } else {
                stated_ms
            },
            tone_hz: 0,
            serial: d.serial,
            start_ms: (start.unix_timestamp_nanos() / 1_000_000) as i64,
            damaged: faults.damaged_zip || faults.truncated_eml,
            claimed_ms: None,
        };
        Recording {
            id,
            kind: d.kind,
            conversation_id: c.id.clone(),
            conversation: d.conversation,
            start,
            end,
            stated_ms,
            pause: None,
            file_state,
            codec,
            media,
            session_id: d.session_id,
            faults,
        }
    }

    /// Conversation `i` of the scenario (its recordings to come are added to `pending`).
    fn draw_conversation(
        s: &Scenario,
        r: &mut Rng,
        i: usize,
        people: &People<'_>,
        pending: &mut Vec<Pending>,
    ) -> Conversation {
        let span_ms = (s.end - s.start).whole_milliseconds() as u64;
        let (users, queues, divisions) = (people.users, people.queues, people.divisions);
        let id = r.uuid();
        let start = s.start + Duration::milliseconds(r.range(0, span_ms.saturating_sub(1)) as i64);
        let inbound = r.chance(0.7);
        let direction = if inbound { "inbound" } else { "outbound" };
        let queue = r.pick(queues).clone();
        let user = r.pick(users).clone();
        let division_id = r.pick(divisions).clone();
        let wait_ms = r.range(2_000, 30_000) as i64;
        let talk_ms = r.range(
            u64::from(s.min_recording_s) * 1000,
            u64::from(s.max_recording_s) * 1000,
        ) as i64;
        let connect = start + Duration::milliseconds(wait_ms);
        let end = connect + Duration::milliseconds(talk_ms);
        let customer_number = format!("tel:+1555{:07}", r.range(0, 9_999_999));
        let org_number = format!("tel:+1800555{:04}", r.range(0, 9_999));
        let (ani, dnis) = if inbound {
            (customer_number.clone(), org_number.clone())
        } else {
            (org_number.clone(), customer_number.clone())
        };
        let seg = |kind, a, b, q: Option<&String>| Segment::new(kind, a, b, q.cloned());
        let mut participants = vec![Participant {
            participant_id: r.uuid(),
            name: "Customer".into(),
            purpose: "customer",
            user_id: None,
            session_id: r.uuid(),
            direction,
            ani: ani.clone(),
            dnis: dnis.clone(),
            recording: false,
            media_type: "voice",
            screen_recording: false,
            segments: vec![seg("interact", start, end, None)],
        }];
        if inbound {
            participants.push(Participant {
                participant_id: r.uuid(),
                name: queue.1.to_string(),
                purpose: "acd",
                user_id: None,
                session_id: r.uuid(),
                direction,
                ani: ani.clone(),
                dnis: dnis.clone(),
                recording: false,
                media_type: "voice",
                screen_recording: false,
                segments: vec![seg("interact", start, connect, Some(&queue.0))],
            });
        }
        let nrec = if r.chance(0.1) {
            0
        } else {
            r.range(1, u64::from(s.max_recordings_per_conversation.max(1)))
        };
        let nrec = nrec.min(u64::from(s.max_recordings_per_conversation));
        let agent_session = r.uuid();
        participants.push(Participant {
            participant_id: r.uuid(),
            name: user.1.clone(),
            purpose: "agent",
            user_id: Some(user.0.clone()),
            session_id: agent_session.clone(),
            direction,
            ani,
            dnis,
            recording: nrec > 0,
            media_type: "voice",
            screen_recording: false,
            segments: vec![
                seg(
                    "alert",
                    connect - Duration::milliseconds(1500),
                    connect,
                    Some(&queue.0),
                ),
                seg("interact", connect, end, Some(&queue.0)),
            ],
        });
        for k in 0..nrec {
            pending.push((i, k, connect, end, agent_session.clone()));
        }
        let reveal_after = (i >= s.conversations).then(|| (i - s.conversations) as u64 + 1);
        Conversation {
            id,
            start,
            end,
            direction,
            division_id,
            queue_id: queue.0.clone(),
            skill_id: String::new(),
            wrapup_id: String::new(),
            participants,
            recordings: Vec::new(),
            reveal_after,
        }
    }

    /// Recording `k` of conversation `ci` (`conversation_id`), over `span` of its call.
    fn draw_recording(
        s: &Scenario,
        rr: &mut Rng,
        conversation_id: &str,
        ci: usize,
        k: u64,
        span: (OffsetDateTime, OffsetDateTime),
        session_id: String,
    ) -> Recording {
        let (connect, end) = span;
        let id = rr.uuid();
        // A second recording of the same conversation covers its second half (a consult leg).
        let start = if k == 0 {
            connect
        } else {
            connect + (end - connect) / 2
        };
        let stated_ms = (end - start).whole_milliseconds() as u64;
        let state_roll = rr.unit();
        let file_state = if state_roll < s.deleted_fraction {
            FileState::Deleted
        } else if state_roll < s.deleted_fraction + s.archived_fraction {
            FileState::Archived
        } else if rr.chance(0.03) {
            FileState::Restored
        } else {
            FileState::Available
        };
        let codec = *rr.pick(&s.codecs);
        let tone_hz = rr.range(300, 1000) as u32;
        let serial = rr.next_u64() as u32;
        let f = &s.faults;
        let hit = |label: &str, p: f64| p > 0.0 && hash_unit(s.seed, label, &id) < p;
        let faults = RecordingFaults {
            duration_lie: hit("duration-lie", f.duration_lie),
            header_lie: hit("header-lie", f.header_lie),
            paused: stated_ms >= 6_000 && hit("pauses", f.pauses),
            slow_transcode: hit("slow-transcode", f.slow_transcode),
            ..RecordingFaults::transport(s, &id, file_state)
        };
        // A pause covers a quarter of the call from a third in, and is cut from the audio.
        let pause = faults.paused.then_some((stated_ms / 3, stated_ms / 4));
        let playable_ms = stated_ms - pause.map_or(0, |(_, len)| len);
        // A lying recording holds a third of what its metadata claims (at least 2 s short).
        let audio_ms = if faults.duration_lie || faults.header_lie {
            (playable_ms / 3)
                .min(playable_ms.saturating_sub(2_000))
                .max(1)
        } else {
            playable_ms
        };
        let (sample_rate, channels) = codec.fixed_format().unwrap_or((s.sample_rate, s.channels));
        let media = MediaSpec {
            codec,
            sample_rate,
            channels,
            duration_ms: audio_ms,
            tone_hz,
            serial,
            start_ms: 0,
            damaged: false,
            claimed_ms: faults.header_lie.then_some(playable_ms),
        };
        Recording {
            id,
            kind: Kind::Audio,
            conversation_id: conversation_id.to_owned(),
            conversation: ci,
            start,
            end: start + Duration::milliseconds(stated_ms as i64),
            stated_ms,
            pause,
            file_state,
            codec,
            media,
            session_id,
            faults,
        }
    }

    /// Conversations sorted by (start, id), the recordings re-pointed at their new indexes, and
    /// both indexed by id.
    fn index(
        directory: Directory,
        convs: Vec<Conversation>,
        mut recordings: Vec<Recording>,
    ) -> Catalog {
        let mut order: Vec<usize> = (0..convs.len()).collect();
        order.sort_by(|&a, &b| (convs[a].start, &convs[a].id).cmp(&(convs[b].start, &convs[b].id)));
        let mut new_index = vec![0; convs.len()];
        for (new, &old) in order.iter().enumerate() {
            new_index[old] = new;
        }
        let mut slots: Vec<Option<Conversation>> = convs.into_iter().map(Some).collect();
        let conversations: Vec<Conversation> = order
            .iter()
            .map(|&o| slots[o].take().expect("each index once"))
            .collect();
        for rec in &mut recordings {
            rec.conversation = new_index[rec.conversation];
        }
        let by_conversation = conversations
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        let by_recording = recordings
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        Catalog {
            directory,
            conversations,
            recordings,
            by_conversation,
            by_recording,
        }
    }

    /// A conversation's index by id.
    pub fn conversation(&self, id: &str) -> Option<usize> {
        self.by_conversation.get(id).copied()
    }

    /// A recording's index by id.
    pub fn recording(&self, id: &str) -> Option<usize> {
        self.by_recording.get(id).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_sorted_and_consistent() {
        let s = Scenario {
            conversations: 300,
            ..Scenario::default()
        };
        let a = Catalog::build(&s);
        let b = Catalog::build(&s);
        assert_eq!(a.conversations.len(), 300);
        assert_eq!(
            a.recordings.iter().map(|r| &r.id).collect::<Vec<_>>(),
            b.recordings.iter().map(|r| &r.id).collect::<Vec<_>>()
        );
        assert!(a.conversations.windows(2).all(|w| w[0].start <= w[1].start));
        for (i, r) in a.recordings.iter().enumerate() {
            let c = &a.conversations[r.conversation];
            assert_eq!(c.id, r.conversation_id);
            assert!(c.recordings.contains(&i));
            assert!(r.start >= c.start && r.end <= c.end);
            assert!(c.start >= s.start && c.start < s.end);
        }
        let states: Vec<FileState> = a.recordings.iter().map(|r| r.file_state).collect();
        for st in [
            FileState::Available,
            FileState::Archived,
            FileState::Deleted,
        ] {
            assert!(
                states.contains(&st),
                "{st:?} missing from a 300-conversation catalog"
            );
        }
        assert_ne!(
            Catalog::build(&Scenario { seed: 2, ..s }).recordings[0].id,
            a.recordings[0].id
        );
    }

    #[test]
    fn duration_lie_shortens_audio_only() {
        let mut s = Scenario::default();
        s.faults.duration_lie = 1.0;
        let c = Catalog::build(&s);
        for r in &c.recordings {
            assert!(r.faults.duration_lie);
            assert!(r.media.duration_ms + 1_000 < r.stated_ms);
        }
    }

    #[test]
    fn drift_adds_hidden_conversations() {
        let mut s = Scenario::default();
        s.faults.drift = 4;
        let c = Catalog::build(&s);
        assert_eq!(c.conversations.len(), s.conversations + 4);
        assert_eq!(
            c.conversations
                .iter()
                .filter(|c| c.reveal_after.is_some())
                .count(),
            4
        );
    }
}
