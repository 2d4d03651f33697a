//! Ids, outcomes and manifest items.

use std::fmt;

/// How a manifest item ended. Every item ends in exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Downloaded, complete, hashed, in the evidence set.
    Exported,
    /// Gone at the source: 404, or fileState DELETED.
    Purged,
    /// In cold storage at the source: needs a restore before it can be exported.
    Archived,
    /// Downloaded, but not what the source says it is (kept in quarantine, outside the
    /// evidentiary set).
    Corrupted,
    /// Could not be exported; the reason says why.
    Failed,
}

/// How a set of manifest items ended: every outcome counted (zeros included) and the bytes of
/// the exported files. The one tally: the seal writes it to the custody record and
/// `data/summary.json`, the export returns it, the report recounts it from the custody CSV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    /// Items counted.
    pub items: u64,
    /// Items per outcome, every outcome present.
    pub counts: std::collections::BTreeMap<Outcome, u64>,
    /// Bytes of the items that ended `Exported`.
    pub exported_bytes: u64,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            items: 0,
            counts: Outcome::ALL.into_iter().map(|o| (o, 0)).collect(),
            exported_bytes: 0,
        }
    }
}

impl Tally {
    /// Counts one item that ended `outcome` (`bytes`: its file's size, if it has one).
    pub fn add(&mut self, outcome: Outcome, bytes: Option<u64>) {
        self.items += 1;
        *self.counts.entry(outcome).or_default() += 1;
        if outcome == Outcome::Exported {
            self.exported_bytes += bytes.unwrap_or(0);
        }
    }

    /// The counts as JSON (`{"Exported": n, …}`, every outcome).
    pub fn outcomes_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.counts
            .iter()
            .map(|(o, n)| (o.as_str().to_owned(), (*n).into()))
            .collect()
    }

    /// The counts as a person reads them: `Exported 12  Purged 1  …`, every outcome.
    pub fn counts_text(&self) -> String {
        self.counts
            .iter()
            .map(|(o, n)| format!("{o} {n}"))
            .collect::<Vec<_>>()
            .join("  ")
    }
}

impl std::ops::Index<Outcome> for Tally {
    type Output = u64;
    fn index(&self, o: Outcome) -> &u64 {
        self.counts.get(&o).unwrap_or(&0)
    }
}

impl Outcome {
    /// Every outcome, in report order.
    pub const ALL: [Outcome; 5] = [
        Outcome::Exported,
        Outcome::Purged,
        Outcome::Archived,
        Outcome::Corrupted,
        Outcome::Failed,
    ];

    /// The name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Exported => "Exported",
            Outcome::Purged => "Purged",
            Outcome::Archived => "Archived",
            Outcome::Corrupted => "Corrupted",
            Outcome::Failed => "Failed",
        }
    }

    /// Parses [`Outcome::as_str`].
    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a recording holds (`Recording.media`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Media {
    /// A call: audio, its duration checked.
    Audio,
    /// The agent's screen: WebM video, its duration checked.
    Screen,
    /// A web chat: a ZIP of its transcript.
    Chat,
    /// An email: the message as EML.
    Email,
    /// Messaging (SMS, social, web messaging): a ZIP of its transcript and media.
    Messaging,
}

impl Media {
    /// Every media type, in this order.
    pub const ALL: [Media; 5] = [
        Media::Audio,
        Media::Screen,
        Media::Chat,
        Media::Email,
        Media::Messaging,
    ];

    /// The wire spelling (`Recording.media`).
    pub fn as_str(self) -> &'static str {
        match self {
            Media::Audio => "audio",
            Media::Screen => "screen",
            Media::Chat => "chat",
            Media::Email => "email",
            Media::Messaging => "messaging",
        }
    }

    /// Parses the wire spelling (case-insensitive). A recording whose `media` is missing is
    /// audio (the search API's, and older answers, state none).
    pub fn parse(s: Option<&str>) -> Option<Media> {
        match s {
            None => Some(Media::Audio),
            Some(s) => Media::ALL
                .into_iter()
                .find(|m| m.as_str().eq_ignore_ascii_case(s)),
        }
    }

    /// What a listed recording's JSON states it holds: its `media`, or, for an orphan
    /// recording's listing entry (`OrphanRecording`, which has none), its `mediaType` (CALL is
    /// audio, SCREEN is screen). `None`: a type we do not know.
    pub fn of_listed(v: &serde_json::Value) -> Option<Media> {
        match (v["media"].as_str(), v["mediaType"].as_str()) {
            (None, Some(t)) if t.eq_ignore_ascii_case("CALL") => Some(Media::Audio),
            (None, Some(t)) if t.eq_ignore_ascii_case("SCREEN") => Some(Media::Screen),
            // Another type of orphan is one we do not know: judged by what its file holds.
            (None, Some(_)) => None,
            (media, None) | (media @ Some(_), _) => Media::parse(media),
        }
    }

    /// Whether its file has a playing time to check against the stated one.
    pub fn timed(self) -> bool {
        matches!(self, Media::Audio | Media::Screen)
    }
}

impl fmt::Display for Media {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an id from the API is safe to use as a file name: ASCII letters, digits, `-`, `_`
/// and `.`, not `.` or `..`, at most 128 characters. Anything else (`../../x`, `a/b`, NUL,
/// control characters) is refused: the item is `Failed`, and nothing is written for it.
pub fn safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// One row of the sealed manifest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Item {
    /// Conversation id.
    pub conversation_id: String,
    /// Recording id.
    pub recording_id: String,
    /// fileState when listed.
    pub listed_state: String,
}

/// Where an orphan recording's file goes (`--collect-orphans`): its own folder, beside (not
/// inside) `data/recordings/`, so no conversation's folder can be named like it.
pub const ORPHANS_DIR: &str = "data/orphans";

impl Item {
    /// An orphan recording of `--collect-orphans`: Genesys knows no conversation for it, and
    /// its conversation id is empty, in the manifest as everywhere. (Elsewhere an empty
    /// conversation id is no orphan but an id the source did not give: such an item is
    /// settled without a request, and never gets a file.)
    pub fn is_orphan(&self) -> bool {
        self.conversation_id.is_empty()
    }

    /// The payload folder its file goes in: `data/recordings/<conversation>`, or
    /// [`ORPHANS_DIR`] for an orphan.
    pub fn folder(&self) -> String {
        if self.is_orphan() {
            ORPHANS_DIR.to_owned()
        } else {
            format!("data/recordings/{}", self.conversation_id)
        }
    }

    /// The folder its file goes in when it is kept out of the evidence (`Corrupted`):
    /// `data/quarantine/<conversation>`, or `data/quarantine/orphans` (no recording id of the
    /// manifest is an orphan's, so no file of a conversation named so can be one of them).
    pub fn quarantine_folder(&self) -> String {
        if self.is_orphan() {
            "data/quarantine/orphans".to_owned()
        } else {
            format!("data/quarantine/{}", self.conversation_id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_ids_are_refused() {
        assert!(safe_id("5f4d0c1e-aaaa-4bbb-8ccc-123456789abc"));
        for bad in [
            "",
            ".",
            "..",
            "../../x",
            "a/b",
            "a\\b",
            "a\0b",
            "a\nb",
            "ä",
            &"x".repeat(129),
        ] {
            assert!(!safe_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_orphan_listing_s_call_is_audio() {
        let v = serde_json::json!({"id": "o", "mediaType": "CALL"});
        assert_eq!(Media::of_listed(&v), Some(Media::Audio));
    }

    #[test]
    fn an_orphan_listing_s_screen_is_screen() {
        let v = serde_json::json!({"id": "o", "mediaType": "Screen"});
        assert_eq!(Media::of_listed(&v), Some(Media::Screen));
    }

    #[test]
    fn a_recording_s_media_wins_over_any_media_type() {
        let v = serde_json::json!({"media": "email", "mediaType": "SCREEN"});
        assert_eq!(Media::of_listed(&v), Some(Media::Email));
    }

    #[test]
    fn an_unknown_media_type_is_not_taken_for_audio() {
        let v = serde_json::json!({"mediaType": "HOLOGRAM"});
        assert_eq!(Media::of_listed(&v), None);
    }

    #[test]
    fn outcomes_round_trip() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
    }
}
