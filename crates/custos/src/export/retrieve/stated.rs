//! What the source stated about a recording (size, playable duration, and where the duration
//! came from), and the judge that reads a downloaded file as media and holds it to that.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use super::super::context::Ctx;
use crate::media::Inspection;
use crate::model::{Item, Media};

/// What the source stated about a recording's media, to check the file against.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stated {
    /// Bytes (`outputSizeInBytes`).
    pub size: Option<u64>,
    /// The playable duration, ms (`outputDurationMs`, `durationMs`, or end − start less the
    /// pauses cut from the recording).
    pub duration_ms: Option<u64>,
    /// Where `duration_ms` came from, or why there is none (the custody record says it).
    pub source: String,
    /// What the recording holds (`media`); `None` when it names a type we do not know.
    pub media: Option<Media>,
    /// An email recording's attachments (name, bytes), as `emailTranscript` states them.
    pub attachments: Vec<(String, u64)>,
    /// The Content-Type the source's name for the file gives it (an archived object's
    /// extension), preferred to the one served, which an object store may not know.
    pub content_type: Option<&'static str>,
    /// The SHA-256 the store holding the file states for it (lowercase hex): the bytes read
    /// must be these.
    pub store_sha256: Option<String>,
    /// The MD5 the store states for it (a single-part ETag): the bytes read must be these.
    pub store_md5: Option<String>,
    /// The ETag of the store's object the URL reads (the archive): a read that breaks goes on
    /// from the bytes kept, from that object only (`If-Match`).
    pub resume_etag: Option<String>,
    /// Why the file cannot be evidence even when it reads whole (the archive's metadata
    /// disagrees with the API): it is kept in quarantine, `Corrupted`, with this reason.
    pub refused: Option<String>,
}

impl Stated {
    /// What a recording's JSON states about its file: its duration (`ms_key`, or end − start
    /// less pauses; none for chat, email and messaging, which have no playing time), its media
    /// type, and an email's attachments.
    pub(super) fn of_recording(v: &Value, ms_key: &str) -> Stated {
        let media = Media::of_listed(v);
        let (duration_ms, source) = match media {
            Some(m) if !m.timed() => (
                None,
                format!(
                    "not stated: a {m} recording {}",
                    crate::state::NO_PLAYING_TIME
                ),
            ),
            _ => Stated::duration(v, ms_key, "startTime", "endTime"),
        };
        let attachments = v["emailTranscript"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|m| m["attachments"].as_array().into_iter().flatten())
            .filter_map(|a| Some((a["name"].as_str()?.to_owned(), a["contentLength"].as_u64()?)))
            .collect();
        Stated {
            duration_ms,
            source,
            media,
            attachments,
            ..Stated::default()
        }
    }

    /// The playable duration a recording's JSON states: `ms_key` when present, else
    /// `end_key − start_key` less every `pause` annotation (Genesys cuts paused spans from the
    /// recording: `absoluteLocation` is "after removing the cumulative duration of all pauses").
    pub(super) fn duration(
        v: &Value,
        ms_key: &str,
        start_key: &str,
        end_key: &str,
    ) -> (Option<u64>, String) {
        if let Some(ms) = v[ms_key].as_u64() {
            return (Some(ms), ms_key.to_owned());
        }
        let t = |k: &str| {
            v[k].as_str().and_then(|s| {
                OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
            })
        };
        let (Some(a), Some(b)) = (t(start_key), t(end_key)) else {
            return (
                None,
                format!("not stated: neither {ms_key} nor {start_key} and {end_key}"),
            );
        };
        let Ok(span) = u64::try_from((b - a).whole_milliseconds()) else {
            return (None, format!("not stated: {end_key} is before {start_key}"));
        };
        let pauses: Vec<u64> = v["annotations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| {
                a["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("pause"))
            })
            .map(|a| a["durationMs"].as_u64().unwrap_or(0))
            .collect();
        let cut: u64 = pauses.iter().sum();
        let source = match pauses.len() {
            0 => format!("{end_key} − {start_key}"),
            n => format!(
                "{end_key} − {start_key} − {n} pause{} ({:.3} s)",
                if n == 1 { "" } else { "s" },
                cut as f64 / 1000.0
            ),
        };
        match span.checked_sub(cut) {
            Some(ms) => (Some(ms), source),
            None => (
                None,
                format!("not stated: pauses longer than the recording ({source})"),
            ),
        }
    }

    /// What a batch item states: its listed `Recording` (data/metadata/), read again here, since
    /// batch results state neither size nor duration.
    pub(super) fn of_listed(ctx: &Ctx<'_>, it: &Item) -> Stated {
        let path = ctx
            .root
            .join("data/metadata")
            .join(format!("{}.json", it.recording_id));
        let v: Value = match std::fs::read(&path).map(|b| serde_json::from_slice(&b)) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                return Stated {
                    source: format!("not stated: the listed metadata is not JSON ({e})"),
                    ..Stated::default()
                };
            }
            Err(_) => {
                return Stated {
                    source: "not stated: no listed metadata for this recording".into(),
                    ..Stated::default()
                };
            }
        };
        Stated::of_recording(&v, "outputDurationMs")
    }
}

/// What the file of a `media` recording must be, in words, and whether `info` is that.
fn expected_kind(media: Option<Media>, info: &Inspection) -> Result<(), String> {
    let (ok, want) = match (media, info) {
        (None, _) => (true, ""),
        (Some(Media::Audio), Inspection::Media(m)) => (m.video.is_none(), "audio"),
        (Some(Media::Screen), Inspection::Media(m)) => (m.video.is_some(), "video"),
        (Some(Media::Email), Inspection::Document(d)) => (d.container == "eml", "an email (EML)"),
        (Some(Media::Chat | Media::Messaging), Inspection::Document(d)) => {
            (d.container == "zip", "a ZIP archive")
        }
        (Some(m), _) => (false, what(Some(m))),
    };
    if ok {
        Ok(())
    } else {
        let found = match info {
            Inspection::Media(m) if m.video.is_some() => "video".to_owned(),
            Inspection::Media(_) => "audio".to_owned(),
            Inspection::Document(d) => d.container.to_uppercase(),
        };
        Err(format!(
            "the file is {found}, not {want} as the recording's media says"
        ))
    }
}

/// What a `media` recording's file is, in words.
fn what(media: Option<Media>) -> &'static str {
    match media {
        Some(Media::Audio) => "audio",
        Some(Media::Screen) => "video",
        Some(Media::Email) => "an email (EML)",
        Some(Media::Chat | Media::Messaging) => "a ZIP archive",
        None => "media",
    }
}

/// Reads the downloaded file (audio or video by its container, an email by its MIME, a ZIP by
/// every member) and judges it against what the API stated: what was read, and why it is not
/// evidence, if it is not.
pub(super) async fn judge(
    ctx: &Ctx<'_>,
    part: &Path,
    stated: &Stated,
) -> (Option<Inspection>, Result<(), String>) {
    let p = part.to_path_buf();
    let (media, attachments) = (stated.media, stated.attachments.clone());
    let probed =
        tokio::task::spawn_blocking(move || crate::media::inspect_file_as(&p, media, &attachments))
            .await
            .unwrap_or_else(|e| {
                Err(crate::media::MediaError::Invalid(format!(
                    "probe failed: {e}"
                )))
            });
    let info = match probed {
        Ok(i) => i,
        Err(e) => {
            return (
                None,
                Err(format!("not readable as {}: {e}", what(stated.media))),
            );
        }
    };
    let duration = info.duration();
    let verdict = if !info.problems().is_empty() {
        Err(format!(
            "damaged {}: {}",
            what(stated.media),
            info.problems().join("; ")
        ))
    } else if let Err(why) = expected_kind(stated.media, &info) {
        Err(why)
    } else if duration.is_some_and(|d| d.is_zero()) {
        Err("nothing to play: the file's duration is 0 s".to_owned())
    } else if let (Some(ms), Some(d)) = (stated.duration_ms, duration) {
        let said = Duration::from_millis(ms);
        let diff = d.abs_diff(said);
        if diff > ctx.cfg.duration_tolerance {
            Err(format!(
                "duration mismatch: the file holds {:.3} s, the API states {:.3} s (tolerance {} s)",
                d.as_secs_f64(),
                said.as_secs_f64(),
                ctx.cfg.duration_tolerance.as_secs_f64()
            ))
        } else {
            Ok(())
        }
    } else {
        Ok(())
    };
    (Some(info), verdict)
}
