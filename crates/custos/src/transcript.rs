//! A plain-text, speaker-labelled, time-stamped rendering of a Speech & Text Analytics
//! transcript for review, with the recording's annotations (holds, secure pauses) in the same
//! timeline. The transcript as received stays beside it; the rendering is derived from it and
//! says so.
//!
//! Speakers: `participantPurpose` `internal` is the agent, named by the directory's answer for
//! the transcript's internal `userId`; `external` is the customer, named by the ANI. Times: UTC
//! (`startTimeMs`, epoch milliseconds) and the offset from the recording's start.

use serde_json::Value;
use time::OffsetDateTime;

use crate::facts::Names;
use crate::query::format_ms;

/// `+HH:MM:SS.mmm`.
pub fn offset(ms: u64) -> String {
    format!(
        "+{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Who speaks for `purpose`, as the transcript's participants and the directory name them.
fn speaker(doc: &Value, purpose: &str, names: &Names) -> String {
    let p = doc["participants"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["participantPurpose"] == purpose);
    let field = |k: &str| p.and_then(|p| p[k].as_str()).filter(|s| !s.is_empty());
    match purpose {
        "internal" => match field("userId").and_then(|u| names.get(u)) {
            Some(n) => format!("Agent {n}"),
            None => "Agent".into(),
        },
        "external" => match field("ani") {
            Some(a) => format!("Customer {a}"),
            None => "Customer".into(),
        },
        other => format!("Speaker ({other})"),
    }
}

/// One line: `UTC  +offset  text`.
fn line(at_ms: i64, start_ms: i64, text: &str) -> (i64, String) {
    let utc = OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .map(format_ms)
        .unwrap_or_else(|_| "?".into());
    let off = offset(u64::try_from(at_ms - start_ms).unwrap_or(0));
    (at_ms, format!("{utc}  {off}  {text}"))
}

/// A recording of the transcribed communication: its id, its start (epoch milliseconds) and
/// its `annotations` (`Annotation[]`, `location` from its start).
pub struct Recorded<'a> {
    /// Recording id.
    pub id: &'a str,
    /// Its start, epoch milliseconds.
    pub start_ms: i64,
    /// Its annotations as listed.
    pub annotations: &'a Value,
}

/// The rendering of transcript `doc` (one voice communication; times from its `startTime`, or
/// the first recording's start), with the annotations of its `recordings`.
pub fn render(doc: &Value, recordings: &[Recorded<'_>], names: &Names) -> String {
    let start_ms = doc["startTime"]
        .as_i64()
        .or(recordings.first().map(|r| r.start_ms))
        .unwrap_or(0);
    let mut lines: Vec<(i64, String)> = Vec::new();
    for t in doc["transcripts"].as_array().into_iter().flatten() {
        for p in t["phrases"].as_array().into_iter().flatten() {
            let (Some(at), Some(text)) = (p["startTimeMs"].as_i64(), p["text"].as_str()) else {
                continue;
            };
            let who = speaker(doc, p["participantPurpose"].as_str().unwrap_or(""), names);
            lines.push(line(at, start_ms, &format!("{who}: {}", clean(text))));
        }
    }
    for r in recordings {
        for a in r.annotations.as_array().into_iter().flatten() {
            let (Some(loc), Some(len)) = (a["location"].as_i64(), a["durationMs"].as_i64()) else {
                continue;
            };
            let what = a["reason"]
                .as_str()
                .or(a["name"].as_str())
                .unwrap_or("annotation");
            let whose = if recordings.len() > 1 {
                format!(" in recording {}", clean(r.id))
            } else {
                String::new()
            };
            lines.push(line(
                r.start_ms + loc,
                start_ms,
                &format!("[{} for {:.3} s{whose}]", clean(what), len as f64 / 1000.0),
            ));
        }
    }
    lines.sort_by_key(|(at, _)| *at);
    let ids: Vec<String> = recordings.iter().map(|r| clean(r.id)).collect();
    let mut out = format!(
        "Transcript of communication {} (conversation {}; {} {})\n\
         Derived by custos from the Speech & Text Analytics transcript kept beside this file as \
         received (.json) and the recordings' annotations; the .json governs.\n\
         Times: UTC, then the offset from the transcript's start.\n\n",
        clean(doc["communicationId"].as_str().unwrap_or("?")),
        clean(doc["conversationId"].as_str().unwrap_or("?")),
        if ids.len() == 1 {
            "recording"
        } else {
            "recordings"
        },
        ids.join(", "),
    );
    for (_, l) in lines {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// Epoch milliseconds of an RFC 3339 time.
fn epoch_ms(v: &Value) -> Option<i64> {
    let t =
        OffsetDateTime::parse(v.as_str()?, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// `Name <address>` (an `EmailAddress`).
fn address(a: &Value) -> String {
    match (a["name"].as_str(), a["email"].as_str()) {
        (Some(n), Some(e)) if !n.is_empty() => format!("{} <{}>", clean(n), clean(e)),
        (_, Some(e)) => clean(e),
        (Some(n), None) => clean(n),
        (None, None) => "?".into(),
    }
}

/// Who wrote a chat or messaging message: its purpose, named by the directory's answer for its
/// user where there is one, else as the message names the sender.
fn writer(m: &Value, names: &Names) -> String {
    let purpose = m["participantPurpose"]
        .as_str()
        .or(m["purpose"].as_str())
        .unwrap_or("participant");
    let user = m["user"]["id"].as_str().or(m["fromUser"]["id"].as_str());
    let name = user
        .and_then(|u| names.get(u))
        .map(str::to_owned)
        .or_else(|| m["user"]["displayName"].as_str().map(str::to_owned))
        .or_else(|| m["fromUser"]["name"].as_str().map(str::to_owned))
        .or_else(|| m["from"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut who = String::new();
    let mut chars = purpose.chars();
    if let Some(c) = chars.next() {
        who.extend(c.to_uppercase());
        who.push_str(chars.as_str());
    }
    if !name.is_empty() {
        who.push(' ');
        who.push_str(&clean(&name));
    }
    who
}

/// The rendering of a chat, email or messaging recording: its messages, as its metadata states
/// them (`transcript`, `emailTranscript`, `messagingTranscript`), speaker-labelled and
/// time-stamped, with every attachment named. `None` for a recording with none of them.
pub fn render_digital(meta: &Value, names: &Names) -> Option<String> {
    let (field, kind) = [
        ("transcript", "Chat"),
        ("emailTranscript", "Email"),
        ("messagingTranscript", "Messaging"),
    ]
    .into_iter()
    .find(|(f, _)| meta[*f].is_array())?;
    let msgs = meta[field].as_array()?;
    let time_of = |m: &Value| {
        epoch_ms(&m["utc"])
            .or(epoch_ms(&m["time"]))
            .or(epoch_ms(&m["timestamp"]))
    };
    let start = msgs.iter().filter_map(time_of).min().unwrap_or(0);
    let mut lines: Vec<(i64, String)> = Vec::new();
    for m in msgs {
        let at = time_of(m).unwrap_or(start);
        let text = match kind {
            "Email" => {
                let mut t = format!(
                    "{} to {}, subject \"{}\": {}",
                    address(&m["from"]),
                    m["to"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(address)
                        .collect::<Vec<_>>()
                        .join(", "),
                    clean(m["subject"].as_str().unwrap_or("")),
                    clean(m["textBody"].as_str().unwrap_or("")),
                );
                for a in m["attachments"].as_array().into_iter().flatten() {
                    t.push_str(&format!(
                        " [attachment {}, {}, {} bytes]",
                        clean(a["name"].as_str().unwrap_or("?")),
                        clean(a["contentType"].as_str().unwrap_or("?")),
                        a["contentLength"]
                    ));
                }
                t
            }
            "Chat" => format!(
                "{}: {}",
                writer(m, names),
                clean(m["body"].as_str().unwrap_or(""))
            ),
            _ => {
                let mut t = format!(
                    "{}: {}",
                    writer(m, names),
                    clean(m["messageText"].as_str().unwrap_or(""))
                );
                for a in m["messageMediaAttachments"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    t.push_str(&format!(
                        " [media {}, {}, {} bytes]",
                        clean(a["name"].as_str().unwrap_or("?")),
                        clean(a["mediaType"].as_str().unwrap_or("?")),
                        a["contentLength"]
                    ));
                }
                t
            }
        };
        lines.push(line(at, start, &text));
    }
    lines.sort_by_key(|(at, _)| *at);
    let mut out = format!(
        "{kind} transcript of recording {} (conversation {})\n\
         Derived by custos from the recording's metadata as received (data/metadata/{}.json, \
         its `{field}`); the JSON governs, and the recording's own file is the native.\n\
         Times: UTC, then the offset from the first message.\n\n",
        clean(meta["id"].as_str().unwrap_or("?")),
        clean(meta["conversationId"].as_str().unwrap_or("?")),
        clean(meta["id"].as_str().unwrap_or("?")),
    );
    for (_, l) in lines {
        out.push_str(&l);
        out.push('\n');
    }
    Some(out)
}

/// Text as one line: without control characters, and without what would start a line of its
/// own or reorder the text around it (U+2028/U+2029, bidi controls): a message cannot forge
/// another speaker's line.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if crate::shown::is_hazard(c) { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn speakers_times_and_annotations_in_one_timeline() {
        let doc = json!({
            "conversationId": "c1", "communicationId": "s1",
            "transcripts": [{"phrases": [
                {"text": "Hello\nthere", "startTimeMs": 1_696_150_803_120i64, "participantPurpose": "internal"},
                {"text": "Hi", "startTimeMs": 1_696_150_805_000i64, "participantPurpose": "external"},
            ]}],
            "participants": [{"participantPurpose": "internal", "userId": "u1"}, {"participantPurpose": "external", "ani": "+15550100"}],
        });
        let ann = json!([{"reason": "Hold", "location": 4000, "durationMs": 1500}]);
        let recs = [Recorded {
            id: "r1",
            start_ms: 1_696_150_800_000,
            annotations: &ann,
        }];
        let text = render(&doc, &recs, &Names::default());
        let body: Vec<&str> = text.lines().skip(4).collect();
        assert_eq!(
            body,
            [
                "2023-10-01T09:00:03.120Z  +00:00:03.120  Agent: Hello there",
                "2023-10-01T09:00:04.000Z  +00:00:04.000  [Hold for 1.500 s]",
                "2023-10-01T09:00:05.000Z  +00:00:05.000  Customer +15550100: Hi",
            ]
        );
        assert_eq!(offset(3_723_004), "+01:02:03.004");
    }

    #[test]
    fn a_line_separator_or_bidi_control_cannot_forge_a_speaker_line() {
        let t = clean("hello\u{2028}[00:00:05] Agent: I agree\u{202e}");
        assert!(!t.contains('\u{2028}') && !t.contains('\u{202e}'), "{t:?}");
        assert_eq!(t.lines().count(), 1);
    }

    #[test]
    fn threads_are_rendered_with_writers_times_and_attachments() {
        let email = json!({
            "id": "r1", "conversationId": "c1",
            "emailTranscript": [{
                "from": {"email": "jo@example.net", "name": "Jo"},
                "to": [{"email": "help@example.com"}],
                "subject": "Refund", "textBody": "Please\u{7}refund.",
                "time": "2023-10-01T10:00:00.000Z",
                "attachments": [{"name": "r.pdf", "contentType": "application/pdf", "contentLength": 12}],
            }],
        });
        let text = render_digital(&email, &Names::default()).unwrap();
        assert!(
            text.starts_with("Email transcript of recording r1 (conversation c1)"),
            "{text}"
        );
        assert!(text.contains(
            "2023-10-01T10:00:00.000Z  +00:00:00.000  Jo <jo@example.net> to help@example.com, subject \"Refund\": Please refund. [attachment r.pdf, application/pdf, 12 bytes]"
        ), "{text}");
        let chat = json!({
            "id": "r2", "conversationId": "c2",
            "transcript": [
                {"body": "Hi", "participantPurpose": "customer", "from": "Sam", "utc": "2023-10-01T10:00:05.000Z"},
                {"body": "Hello", "participantPurpose": "agent", "utc": "2023-10-01T10:00:01.000Z",
                 "user": {"id": "u1", "displayName": "Ada Agent"}},
            ],
        });
        let text = render_digital(&chat, &Names::default()).unwrap();
        let lines: Vec<&str> = text.lines().skip(4).collect();
        assert_eq!(
            lines,
            [
                "2023-10-01T10:00:01.000Z  +00:00:00.000  Agent Ada Agent: Hello",
                "2023-10-01T10:00:05.000Z  +00:00:04.000  Customer Sam: Hi",
            ]
        );
        assert!(render_digital(&json!({"id": "r3"}), &Names::default()).is_none());
    }
}
