//! Recordings that are not audio, as Genesys keeps them: screen recordings (WebM, VP8 video),
//! email (an EML message, MIME with its attachments), chat and messaging (a ZIP holding the
//! transcript JSON, and for messaging the media the customer sent).
//!
//! Each file is a pure function of its [`MediaSpec`] (seed, start, duration, damage), and so is
//! the transcript the API states beside it (`Recording.transcript`, `emailTranscript`,
//! `messagingTranscript`): the two always agree, and regenerating either gives the same bytes.
//! Screen video repeats one real VP8 key frame (fixtures/, made by `make-vp8-frame.sh`) once a
//! second in a WebM we frame ourselves; the ZIP is written by the `zip` crate; the EML by hand,
//! as RFC 5322 and MIME (RFC 2045/2046) describe it.
//!
//! Faults: a damaged ZIP has one byte of a member changed after its CRC was computed; a
//! truncated EML ends 60 % of the way through (inside an attachment, its multiparts never
//! closed); a short screen recording holds a third of its stated duration (its `Duration`
//! element says so honestly; the API's `endTime − startTime` does not).

use std::io::Write;

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::audio::{Codec, MediaSpec, ebml, ebml_float, ebml_uint, webm_ebml_header};
use crate::rng::Rng;

/// What a recording holds: `Recording.media`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A call.
    Audio,
    /// The agent's screen during a call.
    Screen,
    /// A web chat.
    Chat,
    /// An email thread.
    Email,
    /// A messaging (SMS, social, web messaging) thread.
    Messaging,
}

impl Kind {
    /// The wire spelling of `Recording.media`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Audio => "audio",
            Kind::Screen => "screen",
            Kind::Chat => "chat",
            Kind::Email => "email",
            Kind::Messaging => "messaging",
        }
    }

    /// The analytics session `mediaType` of the conversation it belongs to.
    pub fn session_media_type(self) -> &'static str {
        match self {
            Kind::Audio | Kind::Screen => "voice",
            Kind::Chat => "chat",
            Kind::Email => "email",
            Kind::Messaging => "message",
        }
    }

    /// The one file Genesys keeps for it, if it is not audio (audio is transcoded).
    pub fn native(self) -> Option<Codec> {
        match self {
            Kind::Audio => None,
            Kind::Screen => Some(Codec::ScreenWebm),
            Kind::Chat => Some(Codec::ChatZip),
            Kind::Email => Some(Codec::Eml),
            Kind::Messaging => Some(Codec::MessagingZip),
        }
    }

    /// The digital kinds, in the order digital conversations cycle through them.
    pub const DIGITAL: [Kind; 3] = [Kind::Chat, Kind::Email, Kind::Messaging];
}

/// The one VP8 key frame every block of a screen recording carries.
static VP8_FRAME: &[u8] = include_bytes!("../fixtures/screen-160x90.vp8frame");
/// One block a second.
const FRAME_MS: u64 = 1_000;
/// Blocks per cluster.
const CLUSTER_FRAMES: u64 = 30;

const CUSTOMERS: &[&str] = &[
    "Jordan Lee",
    "Sam Patel",
    "Alex Moreau",
    "Riley Okafor",
    "Taylor Nguyen",
    "Morgan Silva",
];
const TOPICS: &[&str] = &[
    "a charge I do not recognise",
    "changing my delivery address",
    "cancelling my subscription",
    "a refund for order 4471",
    "my account being locked",
];

/// Who took part: the customer and the agent, as a digital conversation names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parties {
    /// The customer's name.
    pub customer: String,
    /// The customer's email address.
    pub customer_email: String,
    /// The customer's phone number (messaging).
    pub customer_phone: String,
    /// The agent's name (one of the directory's agents: index [`Parties::agent_index`]).
    pub agent: String,
    /// The agent's email address.
    pub agent_email: String,
    /// Index of the agent in the directory's users.
    pub agent_index: usize,
}

/// The parties of the native with seed `serial` (its agent one of the directory's).
pub fn parties(serial: u32) -> Parties {
    let agents = crate::catalog::FIRST;
    let mut r = Rng::fork(u64::from(serial), "parties");
    let customer = (*r.pick(CUSTOMERS)).to_owned();
    let agent_index = r.range(0, agents.len() as u64 - 1) as usize;
    let agent = format!("{} Agent", agents[agent_index]);
    let dotted = |n: &str| n.to_ascii_lowercase().replace(' ', ".");
    Parties {
        customer_email: format!("{}@example.net", dotted(&customer)),
        customer_phone: format!("+1555{:07}", r.range(0, 9_999_999)),
        agent_email: format!("{}@contact.example.com", dotted(&agent)),
        customer,
        agent,
        agent_index,
    }
}

/// One message of a digital thread.
#[derive(Clone, Debug)]
pub struct Message {
    /// The message id.
    pub id: String,
    /// `customer` or `agent`.
    pub purpose: &'static str,
    /// When it was sent.
    pub at: OffsetDateTime,
    /// What it says.
    pub text: String,
}

/// An attachment: its name, MIME type and bytes.
#[derive(Clone, Debug)]
pub struct Attachment {
    /// Id.
    pub id: String,
    /// File name.
    pub name: String,
    /// MIME type.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// The thread a digital recording holds: messages spread over its duration, and the
/// attachments of its first (customer's) message.
pub struct Thread {
    /// Who took part.
    pub parties: Parties,
    /// The email subject.
    pub subject: String,
    /// The messages, in time order.
    pub messages: Vec<Message>,
    /// The first message's attachments (email) or media (messaging).
    pub attachments: Vec<Attachment>,
}

/// The thread of the native `spec` (a digital kind).
pub fn thread(spec: &MediaSpec) -> Thread {
    let parties = parties(spec.serial);
    let mut r = Rng::fork(u64::from(spec.serial), "thread");
    let topic = *r.pick(TOPICS);
    let n = r.range(3, 7);
    let start = OffsetDateTime::from_unix_timestamp_nanos(i128::from(spec.start_ms) * 1_000_000)
        .expect("a catalog time");
    let mut ids = Rng::fork(u64::from(spec.serial), "ids");
    let messages = (0..n)
        .map(|i| {
            let at = start + Duration::milliseconds((spec.duration_ms * i / n) as i64);
            let (purpose, text) = match (i, i % 2) {
                (0, _) => ("customer", format!("Hello, I am writing about {topic}.")),
                (_, 1) => (
                    "agent",
                    format!(
                        "Thank you, {}. I am looking into it now (step {i}).",
                        parties.customer
                    ),
                ),
                _ => (
                    "customer",
                    format!(
                        "Thanks. One more detail: reference {}.",
                        r.range(1000, 9999)
                    ),
                ),
            };
            Message {
                id: ids.uuid(),
                purpose,
                at,
                text,
            }
        })
        .collect();
    let count = match spec.codec {
        Codec::Eml => r.range(1, 2),
        Codec::MessagingZip => 1,
        _ => 0,
    };
    let attachments = (0..count)
        .map(|i| {
            let len = r.range(2_000, 40_000) as usize;
            if spec.codec == Codec::Eml && i == 0 {
                // A one-page PDF whose text a PDF reader extracts (pdftotext, a review
                // platform's processing).
                let n = r.range(100, 999);
                let text = format!("Statement {n} for account {}", r.range(1000, 9999));
                return Attachment {
                    id: ids.uuid(),
                    name: format!("statement-{n}.pdf"),
                    content_type: "application/pdf",
                    bytes: pdf(&text),
                };
            }
            let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
            while bytes.len() < len {
                bytes.extend_from_slice(&r.next_u64().to_le_bytes());
            }
            bytes.truncate(len);
            Attachment {
                id: ids.uuid(),
                name: format!("photo-{}.png", r.range(100, 999)),
                content_type: "image/png",
                bytes,
            }
        })
        .collect();
    Thread {
        parties,
        subject: format!("Question about {topic}"),
        messages,
        attachments,
    }
}

fn iso(t: OffsetDateTime) -> String {
    crate::wire::ts(t)
}

/// The transcript the API states beside the file: the `Recording` field's name and value.
/// `agent_id` is the agent's directory user id (the file itself does not carry it).
pub fn transcript_field(spec: &MediaSpec, agent_id: &str) -> (&'static str, Value) {
    let t = thread(spec);
    let p = &t.parties;
    match spec.codec {
        Codec::ChatZip => ("transcript", chat_json(&t, Some(agent_id))),
        Codec::Eml => {
            let addr = |email: &str, name: &str| json!({"email": email, "name": name});
            let msgs: Vec<Value> = t
                .messages
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let (from, to) = if m.purpose == "customer" {
                        (addr(&p.customer_email, &p.customer), addr(&p.agent_email, &p.agent))
                    } else {
                        (addr(&p.agent_email, &p.agent), addr(&p.customer_email, &p.customer))
                    };
                    let attachments: Vec<Value> = if i == 0 {
                        t.attachments
                            .iter()
                            .map(|a| json!({
                                "name": a.name, "contentType": a.content_type,
                                "attachmentId": a.id, "contentLength": a.bytes.len(),
                                "contentPath": format!("attachments/{}", a.id),
                            }))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    json!({
                        "id": m.id, "from": from, "to": [to], "cc": [], "bcc": [],
                        "subject": if i == 0 { t.subject.clone() } else { format!("Re: {}", t.subject) },
                        "textBody": m.text, "htmlBody": format!("<p>{}</p>", m.text),
                        "attachments": attachments, "time": iso(m.at),
                    })
                })
                .collect();
            ("emailTranscript", Value::Array(msgs))
        }
        _ => ("messagingTranscript", messaging_json(&t, Some(agent_id))),
    }
}

fn chat_json(t: &Thread, agent_id: Option<&str>) -> Value {
    let p = &t.parties;
    Value::Array(
        t.messages
            .iter()
            .map(|m| {
                let mut v = json!({
                    "id": m.id, "body": m.text, "bodyType": "STANDARD", "type": "message",
                    "utc": iso(m.at), "participantPurpose": m.purpose,
                    "from": if m.purpose == "agent" { &p.agent } else { &p.customer },
                });
                if let (Some(id), "agent") = (agent_id, m.purpose) {
                    v["user"] = json!({"id": id, "displayName": p.agent, "name": p.agent});
                }
                v
            })
            .collect(),
    )
}

fn messaging_json(t: &Thread, agent_id: Option<&str>) -> Value {
    let p = &t.parties;
    Value::Array(
        t.messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let (from, to) = if m.purpose == "customer" {
                    (p.customer_phone.clone(), "+18005550100".to_owned())
                } else {
                    ("+18005550100".to_owned(), p.customer_phone.clone())
                };
                let mut v = json!({
                    "id": m.id, "from": from, "to": to, "timestamp": iso(m.at),
                    "messageText": m.text, "purpose": m.purpose, "status": "delivered",
                });
                if i == 0 {
                    v["messageMediaAttachments"] = Value::Array(
                        t.attachments
                            .iter()
                            .map(|a| {
                                json!({"id": a.id, "name": a.name, "mediaType": a.content_type,
                                "contentLength": a.bytes.len()})
                            })
                            .collect(),
                    );
                }
                if let (Some(id), "agent") = (agent_id, m.purpose) {
                    v["fromUser"] = json!({"id": id, "name": p.agent});
                }
                v
            })
            .collect(),
    )
}

/// The whole native file of `spec` (a native codec).
pub fn bytes(spec: &MediaSpec) -> Bytes {
    match spec.codec {
        Codec::ScreenWebm => screen_webm(spec),
        Codec::Eml => {
            let mut b = eml(&thread(spec), spec.serial);
            if spec.damaged {
                b.truncate(b.len() * 6 / 10);
            }
            Bytes::from(b)
        }
        _ => Bytes::from(zip_transcript(spec, &thread(spec))),
    }
}

/// RFC 2822 date-time.
fn rfc2822(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc2822)
        .expect("a catalog time formats")
}

/// A valid one-page PDF 1.4 showing `text` (ASCII letters, digits and spaces) in Helvetica:
/// five objects, a cross-reference table with their byte offsets, and a trailer.
pub fn pdf(text: &str) -> Vec<u8> {
    let content = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// The customer's message as an EML: text and HTML alternatives, then its attachments.
fn eml(t: &Thread, serial: u32) -> Vec<u8> {
    let p = &t.parties;
    let first = &t.messages[0];
    let mixed = format!("=_custos_mixed_{serial:08x}");
    let alt = format!("=_custos_alt_{serial:08x}");
    let mut s = String::new();
    s += &format!("From: \"{}\" <{}>\r\n", p.customer, p.customer_email);
    s += &format!("To: \"{}\" <{}>\r\n", p.agent, p.agent_email);
    s += &format!("Subject: {}\r\n", t.subject);
    s += &format!("Date: {}\r\n", rfc2822(first.at));
    s += &format!("Message-ID: <{}@custos-sim.invalid>\r\n", first.id);
    s += "MIME-Version: 1.0\r\n";
    s += &format!("Content-Type: multipart/mixed; boundary=\"{mixed}\"\r\n\r\n");
    s += "This is a multi-part message in MIME format.\r\n";
    s += &format!("--{mixed}\r\nContent-Type: multipart/alternative; boundary=\"{alt}\"\r\n\r\n");
    s += &format!(
        "--{alt}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n{}\r\n",
        first.text
    );
    s += &format!(
        "--{alt}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n<p>{}</p>\r\n",
        first.text
    );
    s += &format!("--{alt}--\r\n");
    for a in &t.attachments {
        s += &format!(
            "--{mixed}\r\nContent-Type: {}; name=\"{}\"\r\nContent-Disposition: attachment; filename=\"{}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
            a.content_type, a.name, a.name
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(&a.bytes);
        for line in b64.as_bytes().chunks(76) {
            s += std::str::from_utf8(line).expect("base64 is ASCII");
            s += "\r\n";
        }
    }
    s += &format!("--{mixed}--\r\n");
    s.into_bytes()
}

/// A ZIP of `transcript.json` (and, for messaging, the media sent), members stored. A damaged
/// one has a byte of `transcript.json` changed after the ZIP was written (its CRC no longer
/// matches).
fn zip_transcript(spec: &MediaSpec, t: &Thread) -> Vec<u8> {
    let transcript = match spec.codec {
        Codec::ChatZip => chat_json(t, None),
        _ => messaging_json(t, None),
    };
    let json = serde_json::to_vec_pretty(&transcript).expect("json");
    let at = t.messages[0].at;
    let when = zip::DateTime::from_date_and_time(
        at.year() as u16,
        at.month() as u8,
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
    )
    .unwrap_or_default();
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(when);
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("transcript.json", opts)
        .expect("zip in memory");
    w.write_all(&json).expect("zip in memory");
    for a in &t.attachments {
        w.start_file(format!("media/{}", a.name), opts)
            .expect("zip in memory");
        w.write_all(&a.bytes).expect("zip in memory");
    }
    let mut out = w.finish().expect("zip in memory").into_inner();
    if spec.damaged {
        // transcript.json is stored right after the first local header (30 bytes + its name).
        let at = 30 + "transcript.json".len() + json.len() / 2;
        out[at] ^= 0x20;
    }
    out
}

/// A WebM of one VP8 video track, one key frame a second, lasting `spec.duration_ms`.
fn screen_webm(spec: &MediaSpec) -> Bytes {
    let mut out = BytesMut::new();
    webm_ebml_header(&mut out);

    let mut body = BytesMut::new();
    let mut info = BytesMut::new();
    ebml_uint(&mut info, &[0x2A, 0xD7, 0xB1], 1_000_000); // TimestampScale: 1 ms
    ebml_float(&mut info, &[0x44, 0x89], spec.duration_ms as f64); // Duration
    ebml(&mut info, &[0x4D, 0x80], b"custos-sim"); // MuxingApp
    ebml(&mut info, &[0x57, 0x41], b"custos-sim"); // WritingApp
    ebml(&mut body, &[0x15, 0x49, 0xA9, 0x66], &info);
    let mut video = BytesMut::new();
    ebml_uint(&mut video, &[0xB0], 160); // PixelWidth
    ebml_uint(&mut video, &[0xBA], 90); // PixelHeight
    let mut track = BytesMut::new();
    ebml_uint(&mut track, &[0xD7], 1); // TrackNumber
    ebml_uint(&mut track, &[0x73, 0xC5], u64::from(spec.serial) + 1); // TrackUID
    ebml_uint(&mut track, &[0x83], 1); // TrackType: video
    ebml(&mut track, &[0x86], b"V_VP8"); // CodecID
    ebml_uint(&mut track, &[0x23, 0xE3, 0x83], FRAME_MS * 1_000_000); // DefaultDuration, ns
    ebml(&mut track, &[0xE0], &video);
    let mut tracks = BytesMut::new();
    ebml(&mut tracks, &[0xAE], &track);
    ebml(&mut body, &[0x16, 0x54, 0xAE, 0x6B], &tracks);

    let frames = spec.duration_ms.div_ceil(FRAME_MS).max(1);
    let mut first = 0;
    while first < frames {
        let n = (frames - first).min(CLUSTER_FRAMES);
        let mut c = BytesMut::new();
        let start = first * FRAME_MS;
        ebml_uint(&mut c, &[0xE7], start); // Timestamp
        for i in first..first + n {
            let mut block = BytesMut::with_capacity(4 + VP8_FRAME.len());
            block.put_u8(0x81); // track 1
            block.put_i16((i * FRAME_MS - start) as i16);
            block.put_u8(0x80); // keyframe
            block.put_slice(VP8_FRAME);
            ebml(&mut c, &[0xA3], &block); // SimpleBlock
        }
        ebml(&mut body, &[0x1F, 0x43, 0xB6, 0x75], &c); // Cluster
        first += n;
    }
    ebml(&mut out, &[0x18, 0x53, 0x80, 0x67], &body); // Segment
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(codec: Codec, damaged: bool) -> MediaSpec {
        MediaSpec {
            codec,
            sample_rate: 0,
            channels: 0,
            duration_ms: 95_500,
            tone_hz: 0,
            serial: 7,
            start_ms: 1_696_118_400_000,
            damaged,
            claimed_ms: None,
        }
    }

    #[test]
    fn files_are_deterministic_and_faults_change_them() {
        for c in Codec::NATIVES {
            let a = bytes(&spec(c, false));
            assert_eq!(a, bytes(&spec(c, false)), "{c:?}");
            if c != Codec::ScreenWebm {
                assert_ne!(a, bytes(&spec(c, true)), "{c:?}");
            }
        }
        let eml = bytes(&spec(Codec::Eml, false));
        let text = String::from_utf8(eml.to_vec()).unwrap();
        assert!(text.contains("Content-Disposition: attachment"));
        assert!(text.ends_with("--\r\n"));
        let short = bytes(&spec(Codec::Eml, true));
        assert_eq!(short.len(), eml.len() * 6 / 10);
    }

    #[test]
    fn transcript_field_matches_the_file() {
        let s = spec(Codec::Eml, false);
        let (name, v) = transcript_field(&s, "agent-id");
        assert_eq!(name, "emailTranscript");
        let t = thread(&s);
        let stated: usize = v[0]["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["contentLength"].as_u64().unwrap() as usize)
            .sum();
        assert_eq!(
            stated,
            t.attachments.iter().map(|a| a.bytes.len()).sum::<usize>()
        );
        let (name, v) = transcript_field(&spec(Codec::ChatZip, false), "agent-id");
        assert_eq!(name, "transcript");
        assert_eq!(v[1]["user"]["id"], "agent-id");
    }
}
