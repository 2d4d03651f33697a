//! Call facts: who spoke, when, and why, per recording, normalised in one place from what the
//! API returned and the package keeps: the conversation's analytics record
//! (`data/metadata/conversations/<conversationId>.json`), the recording's metadata
//! (`data/metadata/<recordingId>.json`) and the directory's answers naming the ids
//! (`data/metadata/directory/*.json`). Written as `data/call_facts.csv` at sealing; anyone can
//! derive it again from those files.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

/// Where the directory's answers are kept, relative to the export.
pub const DIRECTORY_DIR: &str = "data/metadata/directory";
/// Where the conversations' analytics records are kept, relative to the export.
pub const CONVERSATIONS_DIR: &str = "data/metadata/conversations";

/// Names of ids, from the directory's answers (users, queues, skills, wrap-up codes,
/// divisions).
#[derive(Clone, Debug, Default)]
pub struct Names(HashMap<String, String>);

impl Names {
    /// Reads every answer in `dir` (entity listings: `entities[].id`, `.name`).
    pub fn read(dir: &Path) -> Names {
        let mut m = HashMap::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let Ok(bytes) = std::fs::read(e.path()) else {
                continue;
            };
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            for ent in v["entities"].as_array().into_iter().flatten() {
                if let (Some(id), Some(name)) = (ent["id"].as_str(), ent["name"].as_str()) {
                    m.insert(id.to_owned(), name.to_owned());
                }
            }
        }
        Names(m)
    }

    /// The name of `id`, if the directory gave one.
    pub fn get(&self, id: &str) -> Option<&str> {
        self.0.get(id).map(String::as_str)
    }
}

/// One recording's call facts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallFacts {
    /// The recording.
    pub recording_id: String,
    /// Its conversation.
    pub conversation_id: String,
    /// `conversationStart`.
    pub conversation_start: String,
    /// `conversationEnd`.
    pub conversation_end: String,
    /// The recording's `startTime`.
    pub recording_start: String,
    /// The recording's `endTime`.
    pub recording_end: String,
    /// `originatingDirection`.
    pub direction: String,
    /// `divisionIds`, each with its name (empty when the directory gave none).
    pub divisions: Vec<(String, String)>,
    /// The sessions' `mediaType`s.
    pub media_types: Vec<String>,
    /// Agents: (userId, name).
    pub agents: Vec<(String, String)>,
    /// Queues: (id, name).
    pub queues: Vec<(String, String)>,
    /// Requested routing skills: (id, name).
    pub skills: Vec<(String, String)>,
    /// Wrap-up codes: (id, name).
    pub wrapups: Vec<(String, String)>,
    /// The customer's (else the first) session's ANI.
    pub ani: String,
    /// Its DNIS.
    pub dnis: String,
    /// Every participant, `purpose: name`.
    pub participants: Vec<String>,
    /// The recording's `media`: audio, screen, chat, email, messaging.
    pub recording_media: String,
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_owned()
}

impl CallFacts {
    /// The facts of `recording` (its metadata) in `conversation` (its analytics record), with
    /// ids named by `names` (else by the record's own `participantName`).
    pub fn derive(
        recording_id: &str,
        conversation_id: &str,
        conversation: Option<&Value>,
        recording: Option<&Value>,
        names: &Names,
    ) -> CallFacts {
        let mut f = CallFacts {
            recording_id: recording_id.to_owned(),
            conversation_id: conversation_id.to_owned(),
            ..CallFacts::default()
        };
        if let Some(r) = recording {
            f.recording_start = s(&r["startTime"]);
            f.recording_end = s(&r["endTime"]);
            f.recording_media = s(&r["media"]);
            // An orphan recording's listing entry (`--collect-orphans`) states `createdTime`
            // and `mediaType` (CALL or SCREEN) instead.
            if f.recording_start.is_empty() {
                f.recording_start = s(&r["createdTime"]);
            }
            if f.recording_media.is_empty() && r["mediaType"].is_string() {
                f.recording_media = crate::model::Media::of_listed(r)
                    .map(|m| m.as_str().to_owned())
                    .unwrap_or_default();
            }
        }
        let Some(c) = conversation else {
            return f;
        };
        f.conversation_start = s(&c["conversationStart"]);
        f.conversation_end = s(&c["conversationEnd"]);
        f.direction = s(&c["originatingDirection"]);
        let named = |id: &str, fallback: &str| {
            (id.to_owned(), names.get(id).unwrap_or(fallback).to_owned())
        };
        f.divisions = c["divisionIds"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| named(&s(d), ""))
            .collect();
        let parts: &[Value] = c["participants"].as_array().map_or(&[], Vec::as_slice);
        for p in parts {
            let purpose = s(&p["purpose"]);
            let user = s(&p["userId"]);
            let name = match names.get(&user) {
                Some(n) if !user.is_empty() => n.to_owned(),
                _ => s(&p["participantName"]),
            };
            f.participants.push(format!("{purpose}: {name}"));
            if purpose == "agent" && !user.is_empty() {
                push_unique(&mut f.agents, (user.clone(), name.clone()));
            }
            for sess in p["sessions"].as_array().into_iter().flatten() {
                push_unique(&mut f.media_types, s(&sess["mediaType"]));
                for seg in sess["segments"].as_array().into_iter().flatten() {
                    if let Some(q) = seg["queueId"].as_str() {
                        push_unique(&mut f.queues, named(q, ""));
                    }
                    for k in seg["requestedRoutingSkillIds"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        if let Some(k) = k.as_str() {
                            push_unique(&mut f.skills, named(k, ""));
                        }
                    }
                    if let Some(w) = seg["wrapUpCode"].as_str() {
                        push_unique(&mut f.wrapups, named(w, ""));
                    }
                }
            }
        }
        f.media_types.retain(|m| !m.is_empty());
        // The caller's numbers: the customer's session, else an external party's, else any.
        let session = ["customer", "external"]
            .iter()
            .find_map(|want| {
                parts
                    .iter()
                    .filter(|p| p["purpose"] == *want)
                    .flat_map(|p| p["sessions"].as_array().into_iter().flatten())
                    .next()
            })
            .or_else(|| {
                parts
                    .iter()
                    .flat_map(|p| p["sessions"].as_array().into_iter().flatten())
                    .next()
            });
        if let Some(sess) = session {
            f.ani = s(&sess["ani"]);
            f.dnis = s(&sess["dnis"]);
        }
        f
    }

    /// The CSV's columns.
    pub const HEADER: [&'static str; 22] = [
        "Recording_ID",
        "Conversation_ID",
        "Conversation_Start",
        "Conversation_End",
        "Recording_Start",
        "Recording_End",
        "Direction",
        "Division_IDs",
        "Division_Names",
        "Media_Types",
        "Agent_IDs",
        "Agent_Names",
        "Queue_IDs",
        "Queue_Names",
        "Skill_IDs",
        "Skill_Names",
        "Wrapup_Code_IDs",
        "Wrapup_Codes",
        "ANI",
        "DNIS",
        "Participants",
        "Recording_Media",
    ];

    /// This row, in [`CallFacts::HEADER`]'s order (several values in a cell joined by `; `).
    pub fn row(&self) -> Vec<String> {
        let j = |v: &[String]| v.join("; ");
        let ids =
            |v: &[(String, String)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>().join("; ");
        let names =
            |v: &[(String, String)]| v.iter().map(|x| x.1.clone()).collect::<Vec<_>>().join("; ");
        vec![
            self.recording_id.clone(),
            self.conversation_id.clone(),
            self.conversation_start.clone(),
            self.conversation_end.clone(),
            self.recording_start.clone(),
            self.recording_end.clone(),
            self.direction.clone(),
            ids(&self.divisions),
            names(&self.divisions),
            j(&self.media_types),
            ids(&self.agents),
            names(&self.agents),
            ids(&self.queues),
            names(&self.queues),
            ids(&self.skills),
            names(&self.skills),
            ids(&self.wrapups),
            names(&self.wrapups),
            self.ani.clone(),
            self.dnis.clone(),
            j(&self.participants),
            self.recording_media.clone(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn facts_name_every_id_and_take_the_customers_numbers() {
        let conv = json!({
            "conversationStart": "2023-10-01T10:00:00.000Z", "conversationEnd": "2023-10-01T10:05:00.000Z",
            "originatingDirection": "inbound", "divisionIds": ["d1"],
            "participants": [
                {"purpose": "ivr", "participantName": "IVR", "sessions": [{"mediaType": "voice", "ani": "tel:+1", "dnis": "tel:+2", "segments": []}]},
                {"purpose": "customer", "participantName": "Customer", "sessions": [{"mediaType": "voice", "ani": "tel:+15550001", "dnis": "tel:+18005550000", "segments": [{"segmentType": "interact"}]}]},
                {"purpose": "agent", "userId": "u1", "participantName": "stale", "sessions": [{"mediaType": "voice", "segments": [
                    {"queueId": "q1", "requestedRoutingSkillIds": ["s1"]},
                    {"queueId": "q1", "wrapUpCode": "w1"}]}]},
            ],
        });
        let names = Names(
            [
                ("u1", "Ada Agent"),
                ("q1", "Sales"),
                ("s1", "Spanish"),
                ("w1", "Resolved"),
                ("d1", "Retail Banking"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect(),
        );
        let rec =
            json!({"startTime": "2023-10-01T10:01:00.000Z", "endTime": "2023-10-01T10:04:00.000Z"});
        let f = CallFacts::derive("r1", "c1", Some(&conv), Some(&rec), &names);
        assert_eq!(f.agents, vec![("u1".into(), "Ada Agent".into())]);
        assert_eq!(f.queues, vec![("q1".into(), "Sales".into())]);
        assert_eq!(f.skills, vec![("s1".into(), "Spanish".into())]);
        assert_eq!(f.wrapups, vec![("w1".into(), "Resolved".into())]);
        assert_eq!(f.divisions, vec![("d1".into(), "Retail Banking".into())]);
        assert_eq!(
            (f.ani.as_str(), f.dnis.as_str()),
            ("tel:+15550001", "tel:+18005550000")
        );
        assert_eq!(
            f.participants,
            ["ivr: IVR", "customer: Customer", "agent: Ada Agent"]
        );
        assert_eq!(f.row().len(), CallFacts::HEADER.len());
        // Without a record: the recording's own times, nothing invented.
        let bare = CallFacts::derive("r1", "c1", None, Some(&rec), &names);
        assert_eq!(bare.recording_start, "2023-10-01T10:01:00.000Z");
        assert!(bare.agents.is_empty() && bare.ani.is_empty());
    }
}
