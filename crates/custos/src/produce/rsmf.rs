//! RSMF (Relativity Short Message Format, version 2.0.0): a chat or messaging thread as the
//! short-message file review platforms display message by message, written beside the native
//! as its near-native.
//!
//! An RSMF file is an RFC 5322 message whose `X-RSMF-*` header fields describe the thread and
//! whose one attachment, `rsmf.zip`, holds `rsmf_manifest.json` (participants, conversations,
//! events; Relativity's published JSON schema) and, at the archive's root, every file an event
//! names.
//!
//! What it is made from, and nothing else: the recording's metadata as Genesys returned it
//! (`transcript` for a web chat, `messagingTranscript` for messaging; the export keeps it
//! sealed) and, for the media a message carried, the files of the volume's own copy of the
//! native (checked against the export's SHA-256 before). Each message is one `message` event
//! (a chat's member join and leave notices are `join` and `leave`) with its id, body as
//! received, sender and time; its sender is a participant (a directory user by user id, anyone
//! else by the address or name the message gives). A time that is not RFC 3339 is not guessed:
//! it is kept as a custom property and the event has no timestamp. A medium the native does
//! not hold (or holds damaged) is not invented either: the event names it in a custom property.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Seek, Write};

use base64::Engine;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::{Rfc2822, Rfc3339};

/// The RSMF version written.
pub const VERSION: &str = "2.0.0";

/// The most bytes one medium read from the native may have.
const MAX_MEDIUM: u64 = 256 << 20;

/// An RSMF file and what it holds.
#[derive(Debug)]
pub struct Rsmf {
    /// The whole `.rsmf` file.
    pub bytes: Vec<u8>,
    /// Events written.
    pub events: usize,
    /// Media written into `rsmf.zip`.
    pub attachments: usize,
    /// Media a message names that the native did not give (named in the events instead).
    pub media_missing: usize,
}

/// The thread's kind, by the metadata field that holds its messages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Messaging,
}

/// A participant, as first seen.
struct Participant {
    id: String,
    display: String,
    account_id: Option<String>,
    custom: Vec<(String, String)>,
    agent: bool,
}

/// The RSMF of the recording whose metadata is `meta` and whose native (a ZIP, as the volume
/// holds it) is at `native`; `None` when the metadata holds no chat or messaging transcript.
pub fn build(
    meta: &Value,
    native: &std::path::Path,
    generator: &str,
) -> Option<Result<Rsmf, String>> {
    let (kind, msgs) = if let Some(m) = meta["transcript"].as_array() {
        (Kind::Chat, m)
    } else {
        (Kind::Messaging, meta["messagingTranscript"].as_array()?)
    };
    Some(write(meta, kind, msgs, native, generator))
}

fn write(
    meta: &Value,
    kind: Kind,
    msgs: &[Value],
    native: &std::path::Path,
    generator: &str,
) -> Result<Rsmf, String> {
    let rid = meta["id"].as_str().unwrap_or_default();
    let cid = meta["conversationId"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or(rid);
    let conversation = if cid.is_empty() { "C1" } else { cid };
    let mut native_zip = match std::fs::File::open(native) {
        Ok(f) => ::zip::ZipArchive::new(f).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let mut people: Vec<Participant> = Vec::new();
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut events: Vec<(Option<OffsetDateTime>, usize, Value)> = Vec::new();
    let mut media_missing = 0usize;
    for (i, m) in msgs.iter().enumerate() {
        let s = |k: &str| m[k].as_str().filter(|v| !v.is_empty());
        let (user, user_name, address, purpose) = match kind {
            Kind::Chat => (
                m["user"]["id"].as_str().filter(|v| !v.is_empty()),
                m["user"]["displayName"]
                    .as_str()
                    .or(m["user"]["name"].as_str()),
                s("from"),
                s("participantPurpose"),
            ),
            Kind::Messaging => (
                m["fromUser"]["id"].as_str().filter(|v| !v.is_empty()),
                m["fromUser"]["name"].as_str(),
                s("from"),
                s("purpose"),
            ),
        };
        let contact = m["fromExternalContact"]["name"]
            .as_str()
            .filter(|v| !v.is_empty());
        let key = match (user, address) {
            (Some(u), _) => format!("user:{u}"),
            (None, Some(a)) => format!("address:{a}"),
            (None, None) => format!("purpose:{}", purpose.unwrap_or("unknown")),
        };
        let agent = user.is_some() || purpose == Some("agent");
        let at = *by_key.entry(key).or_insert_with(|| {
            let mut custom = Vec::new();
            if let Some(p) = purpose {
                custom.push(("Genesys participant purpose".to_owned(), p.to_owned()));
            }
            if let (Kind::Messaging, Some(a)) = (kind, address) {
                custom.push(("Address".to_owned(), a.to_owned()));
            }
            let display = user_name
                .filter(|n| !n.is_empty())
                .or(contact)
                .or(address)
                .or(purpose)
                .unwrap_or("unknown sender")
                .to_owned();
            people.push(Participant {
                id: format!("P{}", people.len() + 1),
                display,
                account_id: user.map(str::to_owned),
                custom,
                agent,
            });
            people.len() - 1
        });
        let who = &people[at];
        let body_type = s("bodyType");
        let event_type = match (kind, body_type) {
            (Kind::Chat, Some("MEMBERJOIN")) => "join",
            (Kind::Chat, Some("MEMBERLEAVE")) => "leave",
            (Kind::Chat, None | Some("STANDARD")) | (Kind::Messaging, _) => "message",
            (Kind::Chat, Some(_)) => "unknown",
        };
        let mut e =
            json!({"type": event_type, "participant": who.id, "conversation": conversation});
        if let Some(id) = s("id") {
            e["id"] = json!(id);
        }
        let body = match kind {
            Kind::Chat => m["body"].as_str(),
            Kind::Messaging => m["messageText"].as_str(),
        };
        if let Some(b) = body {
            e["body"] = json!(b);
        }
        let stated = match kind {
            Kind::Chat => s("utc"),
            Kind::Messaging => s("timestamp"),
        };
        let when = stated.and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
        let mut custom: Vec<(String, String)> = Vec::new();
        match (when, stated) {
            (Some(t), _) => e["timestamp"] = json!(utc(t)),
            (None, Some(raw)) => custom.push(("Stated time (not RFC 3339)".into(), raw.into())),
            (None, None) => {}
        }
        if who.agent {
            e["direction"] = json!("outgoing");
        } else if matches!(purpose, Some("customer" | "external")) {
            e["direction"] = json!("incoming");
        }
        if let (Kind::Chat, Some(b)) = (kind, body_type) {
            custom.push(("Genesys body type".into(), b.into()));
        }
        if let Some(st) = s("status") {
            custom.push(("Delivery status".into(), st.into()));
        }
        let mut attachments = Vec::new();
        for a in m["messageMediaAttachments"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = a["name"].as_str().unwrap_or_default();
            let id = a["id"].as_str().unwrap_or_default();
            let stated = format!(
                "{} ({}, {} bytes stated)",
                if name.is_empty() { "unnamed" } else { name },
                a["mediaType"].as_str().unwrap_or("type not stated"),
                a["contentLength"]
            );
            let read = match native_zip.as_mut() {
                Ok(z) => medium(z, name, id),
                Err(e) => Err(format!("the native is not a readable ZIP: {e}")),
            };
            match read {
                Ok(bytes) => {
                    let file = zip_name(files.len() + 1, name);
                    attachments.push(json!({
                        "id": file,
                        "display": if name.is_empty() { file.as_str() } else { name },
                        "size": bytes.len(),
                    }));
                    files.push((file, bytes));
                }
                Err(why) => {
                    media_missing += 1;
                    custom.push(("Medium not in this file".into(), format!("{stated}: {why}")));
                }
            }
        }
        if !attachments.is_empty() {
            e["attachments"] = Value::Array(attachments);
        }
        if !custom.is_empty() {
            e["custom"] = custom_json(&custom);
        }
        events.push((when, i, e));
    }
    // In time order; a message without a time stays where the thread has it.
    events.sort_by_key(|(t, i, _)| (t.map(|t| t.unix_timestamp_nanos()), *i));
    let times: Vec<OffsetDateTime> = events.iter().filter_map(|(t, _, _)| *t).collect();
    let (begin, end) = (times.iter().min().copied(), times.iter().max().copied());
    let custodian = people.iter().find(|p| p.agent).map(|p| p.id.clone());
    let platform = match kind {
        Kind::Chat => "Genesys Cloud web chat",
        Kind::Messaging => "Genesys Cloud messaging",
    };
    let field = match kind {
        Kind::Chat => "transcript",
        Kind::Messaging => "messagingTranscript",
    };
    let mut conv = json!({
        "id": conversation,
        "display": format!("{platform}, conversation {cid}"),
        "platform": platform,
        "type": "direct",
        "participants": people.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        "custom": custom_json(&[
            ("Genesys conversation id".into(), cid.to_owned()),
            ("Genesys recording id".into(), rid.to_owned()),
            ("Derived from".into(), format!(
                "the recording's metadata as received (its `{field}`) and the media of its native; the native is the record"
            )),
        ]),
    });
    if let Some(c) = &custodian {
        conv["custodian"] = json!(c);
    }
    let manifest = json!({
        "version": VERSION,
        "participants": people.iter().map(|p| {
            let mut v = json!({"id": p.id, "display": p.display});
            if let Some(a) = &p.account_id {
                v["account_id"] = json!(a);
            }
            if !p.custom.is_empty() {
                v["custom"] = custom_json(&p.custom);
            }
            v
        }).collect::<Vec<_>>(),
        "conversations": [conv],
        "events": events.iter().map(|(_, _, e)| e.clone()).collect::<Vec<_>>(),
        "eventcollectionid": conversation,
    });
    let manifest = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    let zipped = rsmf_zip(&manifest, &files, begin).map_err(|e| e.to_string())?;
    let names: Vec<&str> = people.iter().map(|p| p.display.as_str()).collect();
    let mut eml = String::new();
    let mut head = |name: &str, value: &str| {
        eml.push_str(&format!("{name}: {}\r\n", header_value(name, value)));
    };
    head("MIME-Version", "1.0");
    head("X-RSMF-Version", VERSION);
    head("X-RSMF-Generator", generator);
    if let (Some(b), Some(e)) = (begin, end) {
        head("X-RSMF-BeginDate", &utc(b));
        head("X-RSMF-EndDate", &utc(e));
        if let Ok(d) = b.format(&Rfc2822) {
            head("Date", &d);
        }
    }
    head("X-RSMF-EventCount", &events.len().to_string());
    head("X-RSMF-Application", platform);
    if let Some(c) = custodian
        .as_ref()
        .and_then(|c| people.iter().find(|p| &p.id == c))
    {
        head("X-RSMF-Custodian", &c.display);
    }
    head("X-RSMF-Participants", &names.join(", "));
    head("X-RSMF-AttachmentCount", &files.len().to_string());
    head("X-RSMF-EventCollectionID", conversation);
    head("Subject", &format!("{platform}, conversation {cid}"));
    head("To", &names.join(", "));
    let boundary = "=_custos_rsmf";
    eml.push_str(&format!(
        "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
    ));
    eml.push_str(&format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ));
    let note = format!(
        "Short messages of {platform} conversation {cid}, recording {rid}: {} events, {} media files. \
         Written by {generator} from the recording's metadata as received and its native; \
         rsmf.zip holds rsmf_manifest.json (RSMF {VERSION}).\r\n",
        events.len(),
        files.len()
    );
    push_base64(&mut eml, note.as_bytes());
    eml.push_str(&format!(
        "--{boundary}\r\nContent-Type: application/zip; name=\"rsmf.zip\"\r\nContent-Disposition: attachment; filename=\"rsmf.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ));
    push_base64(&mut eml, &zipped);
    eml.push_str(&format!("--{boundary}--\r\n"));
    Ok(Rsmf {
        bytes: eml.into_bytes(),
        events: events.len(),
        attachments: files.len(),
        media_missing,
    })
}

/// An instant as RSMF's times are written: RFC 3339 in UTC, to the millisecond.
fn utc(t: OffsetDateTime) -> String {
    crate::query::format_ms(t)
}

/// `[{name, value}]`, leaving out empty values (the schema wants at least one character).
fn custom_json(pairs: &[(String, String)]) -> Value {
    Value::Array(
        pairs
            .iter()
            .filter(|(n, v)| !n.is_empty() && !v.is_empty())
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect(),
    )
}

/// The medium `name` (or the member naming `id`) of the native ZIP, read whole and its CRC-32
/// checked; why not, otherwise.
fn medium<R: Read + Seek>(
    z: &mut ::zip::ZipArchive<R>,
    name: &str,
    id: &str,
) -> Result<Vec<u8>, String> {
    let index = (0..z.len()).find(|&i| {
        z.by_index_raw(i).is_ok_and(|m| {
            let member = String::from_utf8_lossy(m.name_raw()).into_owned();
            let member = member.as_str();
            let file = member.rsplit('/').next().unwrap_or(member);
            !m.is_dir()
                && ((!name.is_empty() && file == name) || (!id.is_empty() && member.contains(id)))
        })
    });
    let Some(index) = index else {
        return Err("the native holds no file of that name".into());
    };
    let m = z.by_index(index).map_err(|e| e.to_string())?;
    let declared = m.size();
    if declared > MAX_MEDIUM {
        return Err(format!(
            "its member declares {declared} bytes, more than {MAX_MEDIUM}"
        ));
    }
    let mut bytes = Vec::new();
    // The zip crate checks the CRC-32 when the member has been read to its end.
    m.take(declared + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("its member does not read back: {e}"))?;
    if bytes.len() as u64 != declared {
        return Err(format!(
            "its member inflates to {} bytes, its header says {declared}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// A medium's file name in `rsmf.zip`: numbered (unique, at the archive's root) and made of
/// characters every file system keeps, its extension kept.
fn zip_name(n: usize, name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let safe = safe.trim_start_matches('.');
    if safe.is_empty() {
        format!("{n:04}.bin")
    } else {
        format!("{n:04}_{safe}")
    }
}

/// `rsmf.zip`: the manifest, then the media, dated at the thread's first event.
fn rsmf_zip(
    manifest: &[u8],
    files: &[(String, Vec<u8>)],
    at: Option<OffsetDateTime>,
) -> ::zip::result::ZipResult<Vec<u8>> {
    let when = at
        .and_then(|t| {
            ::zip::DateTime::from_date_and_time(
                u16::try_from(t.year()).ok()?,
                t.month() as u8,
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
            )
            .ok()
        })
        .unwrap_or_default();
    let opts = ::zip::write::SimpleFileOptions::default().last_modified_time(when);
    let mut w = ::zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file(
        "rsmf_manifest.json",
        opts.compression_method(::zip::CompressionMethod::Deflated),
    )?;
    w.write_all(manifest)?;
    for (name, bytes) in files {
        w.start_file(
            name.as_str(),
            opts.compression_method(::zip::CompressionMethod::Stored),
        )?;
        w.write_all(bytes)?;
    }
    Ok(w.finish()?.into_inner())
}

/// Base64 in lines of 76 characters (RFC 2045), each ended by CRLF.
fn push_base64(out: &mut String, bytes: &[u8]) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    for line in b64.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push_str("\r\n");
    }
}

/// A header field's value as RFC 5322 and RFC 2047 allow it: hazards (line breaks, controls)
/// made spaces; printable ASCII folded at its spaces; anything else as UTF-8 encoded words,
/// folded, so that no text from the source can end the field or forge another.
fn header_value(name: &str, value: &str) -> String {
    let clean: String = value
        .chars()
        .map(|c| if crate::shown::is_hazard(c) { ' ' } else { c })
        .collect();
    if clean.is_ascii() && !clean.contains("=?") && clean.split(' ').all(|w| w.len() <= 900) {
        // Folded at spaces into lines of at most 76 characters where the words allow.
        let mut out = String::new();
        let mut line = name.len() + 2;
        for (i, word) in clean.split(' ').enumerate() {
            if i > 0 {
                if line + 1 + word.len() > 76 {
                    out.push_str("\r\n");
                    line = 0;
                }
                out.push(' ');
                line += 1;
            }
            out.push_str(word);
            line += word.len();
        }
        return out;
    }
    // Encoded words of at most 45 bytes of text each (60 characters of base64, 72 with
    // `=?utf-8?b?` and `?=`), never splitting a character.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in clean.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() || words.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| {
            format!(
                "=?utf-8?b?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w.as_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ZIP of `members` in the temporary folder, named for the test `name`.
    fn native_with(name: &str, members: &[(&str, &[u8])]) -> std::path::PathBuf {
        let mut w = ::zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in members {
            w.start_file(*name, ::zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(bytes).unwrap();
        }
        let bytes = w.finish().unwrap().into_inner();
        let f = std::env::temp_dir().join(format!("custos-rsmf-{}-{name}.zip", std::process::id()));
        std::fs::write(&f, bytes).unwrap();
        f
    }

    fn manifest_of(r: &Rsmf) -> Value {
        let text = String::from_utf8(r.bytes.clone()).unwrap();
        let b64: String = text
            .split("filename=\"rsmf.zip\"")
            .nth(1)
            .unwrap()
            .split("\r\n\r\n")
            .nth(1)
            .unwrap()
            .split("--=_custos_rsmf--")
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        let zip = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let mut z = ::zip::ZipArchive::new(Cursor::new(zip)).unwrap();
        let mut s = String::new();
        z.by_name("rsmf_manifest.json")
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        serde_json::from_str(&s).unwrap()
    }

    #[test]
    fn a_chat_becomes_events_of_its_senders_in_time_order() {
        let meta = json!({"id": "r1", "conversationId": "c1", "transcript": [
            {"id": "m2", "body": "Thanks", "utc": "2023-10-01T10:00:05.000Z", "from": "Jo",
             "participantPurpose": "customer"},
            {"id": "m1", "body": "Hello", "utc": "2023-10-01T10:00:01.000Z", "from": "Ann",
             "participantPurpose": "agent", "user": {"id": "u1", "displayName": "Ann Agent"}},
            {"id": "m3", "body": "", "bodyType": "MEMBERLEAVE", "utc": "2023-10-01T10:00:09Z",
             "from": "Jo", "participantPurpose": "customer"},
        ]});
        let native = native_with("chat", &[("transcript.json", b"[]")]);
        let r = build(&meta, &native, "custos test").unwrap().unwrap();
        let m = manifest_of(&r);
        assert_eq!(m["version"], "2.0.0");
        let events = m["events"].as_array().unwrap();
        let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["m1", "m2", "m3"]);
        assert_eq!(events[0]["direction"], "outgoing");
        assert_eq!(events[1]["direction"], "incoming");
        assert_eq!(events[2]["type"], "leave");
        let people = m["participants"].as_array().unwrap();
        assert_eq!(people.len(), 2, "{people:?}");
        assert_ne!(events[0]["participant"], events[1]["participant"]);
        assert_eq!(events[1]["participant"], events[2]["participant"]);
        let agent = people
            .iter()
            .find(|p| p["id"] == events[0]["participant"])
            .unwrap();
        assert_eq!(agent["display"], "Ann Agent");
        assert_eq!(agent["account_id"], "u1");
        assert_eq!(m["conversations"][0]["custodian"], agent["id"]);
        let text = String::from_utf8(r.bytes).unwrap();
        assert!(text.contains("X-RSMF-EventCount: 3\r\n"), "{text}");
        assert!(text.contains("X-RSMF-BeginDate: 2023-10-01T10:00:01.000Z\r\n"));
        assert!(text.contains("X-RSMF-EndDate: 2023-10-01T10:00:09.000Z\r\n"));
    }

    #[test]
    fn messaging_media_come_from_the_native_and_a_missing_one_is_named_not_invented() {
        let meta = json!({"id": "r2", "conversationId": "c2", "messagingTranscript": [
            {"id": "m1", "messageText": "See photo", "from": "+15550100", "purpose": "customer",
             "timestamp": "2023-10-01T10:00:00Z", "messageMediaAttachments": [
                {"id": "a1", "name": "photo 1.png", "mediaType": "image/png", "contentLength": 4},
                {"id": "a2", "name": "gone.png", "mediaType": "image/png", "contentLength": 9},
             ]},
        ]});
        let native = native_with(
            "media",
            &[
                ("transcript.json", b"[]"),
                ("media/photo 1.png", b"\x89PNG"),
            ],
        );
        let r = build(&meta, &native, "custos test").unwrap().unwrap();
        assert_eq!((r.attachments, r.media_missing), (1, 1));
        let m = manifest_of(&r);
        let e = &m["events"][0];
        assert_eq!(e["attachments"][0]["id"], "0001_photo_1.png");
        assert_eq!(e["attachments"][0]["display"], "photo 1.png");
        assert_eq!(e["attachments"][0]["size"], 4);
        let note = e["custom"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "Medium not in this file")
            .unwrap();
        assert!(
            note["value"].as_str().unwrap().starts_with("gone.png"),
            "{note}"
        );
    }

    #[test]
    fn a_time_that_is_not_rfc_3339_is_kept_not_guessed() {
        let meta = json!({"id": "r3", "conversationId": "c3", "transcript": [
            {"id": "m1", "body": "Hi", "utc": "yesterday", "from": "Jo", "participantPurpose": "customer"},
        ]});
        let native = native_with("time", &[]);
        let m = manifest_of(&build(&meta, &native, "t").unwrap().unwrap());
        let e = &m["events"][0];
        assert!(e.get("timestamp").is_none());
        assert_eq!(e["custom"][0]["value"], "yesterday");
    }

    #[test]
    fn a_header_value_cannot_end_its_field_or_forge_another() {
        let v = header_value("X-RSMF-Participants", "Jo\r\nBcc: x@example.net");
        assert_eq!(v, "Jo  Bcc: x@example.net");
        let long = "Genesys Cloud web chat, conversation 4b6abb20-06c8-45e3-b542-8d94bde8dffb";
        let v = header_value("Subject", long);
        assert!(
            v.lines().all(|l| l.len() <= 76) && v.contains("\r\n "),
            "{v:?}"
        );
        assert_eq!(v.replace("\r\n", ""), long);
        let v = header_value("X-RSMF-Participants", &"Zoë Åström, ".repeat(20));
        assert!(v.lines().all(|l| l.len() <= 76), "{v}");
        assert!(v.starts_with("=?utf-8?b?"), "{v}");
    }

    #[test]
    fn a_sender_s_name_cannot_add_a_header_field_to_the_file() {
        let meta = json!({"id": "r5", "conversationId": "c5", "transcript": [
            {"id": "m1", "body": "Hi", "utc": "2023-10-01T10:00:00Z", "participantPurpose": "agent",
             "user": {"id": "u1", "displayName": "Ann\r\nX-RSMF-Version: 9.9.9\r\nBcc: x@example.net"}},
        ]});
        let native = native_with("forge", &[]);
        let r = build(&meta, &native, "t").unwrap().unwrap();
        // Read back by a MIME parser custos does not use to write it.
        let m = mailparse::parse_mail(&r.bytes).unwrap();
        let versions: Vec<String> = m
            .headers
            .iter()
            .filter(|h| h.get_key().eq_ignore_ascii_case("X-RSMF-Version"))
            .map(|h| h.get_value())
            .collect();
        assert_eq!(versions, ["2.0.0"]);
        assert!(
            !m.headers
                .iter()
                .any(|h| h.get_key().eq_ignore_ascii_case("Bcc"))
        );
        let custodian = m
            .headers
            .iter()
            .find(|h| h.get_key() == "X-RSMF-Custodian")
            .unwrap()
            .get_value();
        assert!(
            custodian.starts_with("Ann  X-RSMF-Version: 9.9.9"),
            "{custodian:?}"
        );
        // The manifest keeps the name as Genesys gave it.
        let p = &manifest_of(&r)["participants"][0];
        assert_eq!(
            p["display"],
            "Ann\r\nX-RSMF-Version: 9.9.9\r\nBcc: x@example.net"
        );
    }

    #[test]
    fn an_email_has_no_rsmf() {
        let meta = json!({"id": "r4", "emailTranscript": []});
        assert!(build(&meta, std::path::Path::new("/nonexistent"), "t").is_none());
    }
}
