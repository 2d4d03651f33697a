//! What a media file really holds: container, codec, channels, sample rate and duration, read
//! from the container without decoding or loading the file, plus every inconsistency found on the
//! way (a header that claims more than the file holds, a CRC failure, a missing end of stream).
//!
//! A recording can hash perfectly and still be the wrong evidence: metadata says five minutes,
//! the file holds thirty seconds. The export compares [`MediaInfo::duration`] with what the API
//! stated and keeps the file out of the evidentiary set when they differ or when
//! [`MediaInfo::problems`] is not empty; `custos probe` prints the same facts for a reviewer.
//!
//! Formats (everything Genesys delivers): WAV in RIFF or RF64/BW64 (PCM, IEEE float, µ-law,
//! A-law, extensible), MP3 (MPEG 1/2/2.5 layers I–III; Xing/Info with LAME gapless delay and
//! padding, or VBRI; every frame walked), Ogg Opus and Ogg Vorbis (every page walked with its
//! CRC; last granule position, minus pre-skip for Opus, checked against what the Opus packets'
//! TOC bytes say they decode to), WebM/Matroska (through the `matroska-demuxer` crate:
//! `Duration` minus `CodecDelay`, checked against the last block), MP4 (every top-level box's
//! size checked; the edit list's or media header's duration, checked against the sample table;
//! chunk offsets inside the file). A header that claims more than the content holds is a
//! problem, and the duration is the content's.
//! The format is told by the file's first bytes, never by its name.
//!
//! Recordings that are not calls are read too ([`inspect`]): a screen recording is WebM video
//! (its video track read as above), an email an EML (MIME parsed, every attachment decoded), a
//! chat or messaging transcript a ZIP (every member inflated and CRC-checked) holding JSON
//! (parsed); see [`DocumentInfo`].
//!
//! Hostile input never panics and never makes us allocate more than the file holds: every length
//! read from a file is checked against the file's size before it is used.
//!
//! ```
//! # fn main() -> Result<(), custos::media::MediaError> {
//! // A 0.5 s, 8 kHz mono µ-law WAV, built by hand.
//! let mut wav = Vec::new();
//! wav.extend_from_slice(b"RIFF");
//! wav.extend_from_slice(&(4u32 + 8 + 16 + 8 + 4000).to_le_bytes());
//! wav.extend_from_slice(b"WAVEfmt ");
//! wav.extend_from_slice(&16u32.to_le_bytes());
//! for v in [7u16, 1] { wav.extend_from_slice(&v.to_le_bytes()); }
//! for v in [8000u32, 8000] { wav.extend_from_slice(&v.to_le_bytes()); }
//! for v in [1u16, 8] { wav.extend_from_slice(&v.to_le_bytes()); }
//! wav.extend_from_slice(b"data");
//! wav.extend_from_slice(&4000u32.to_le_bytes());
//! wav.resize(wav.len() + 4000, 0xFF);
//! let info = custos::media::probe(std::io::Cursor::new(wav))?;
//! assert_eq!(info.codec, "pcm_mulaw");
//! assert_eq!(info.duration.as_millis(), 500);
//! assert!(info.problems.is_empty());
//! # Ok(()) }
//! ```

mod document;
mod info;
mod mp3;
mod mp4;
mod ogg;
mod read;
mod wav;
mod webm;

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

pub use document::{
    Attachment, DocumentInfo, EmlHeaders, MAX_DOCUMENT_BYTES, MAX_INFLATED_BYTES, Part,
    eml_attachments, eml_headers,
};
pub use info::{MediaError, MediaInfo};
use read::Src;

/// What any recording's file holds: audio or video, or a document (EML, ZIP, JSON).
#[derive(Clone, Debug, PartialEq)]
pub enum Inspection {
    /// Audio, or a screen recording's video.
    Media(MediaInfo),
    /// An email, an archive or JSON.
    Document(DocumentInfo),
}

impl Inspection {
    /// What makes it untrustworthy as evidence.
    pub fn problems(&self) -> &[String] {
        match self {
            Inspection::Media(m) => &m.problems,
            Inspection::Document(d) => &d.problems,
        }
    }

    /// The facts as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Inspection::Media(m) => m.to_json(),
            Inspection::Document(d) => d.to_json(),
        }
    }

    /// The playable duration, for audio and video.
    pub fn duration(&self) -> Option<std::time::Duration> {
        match self {
            Inspection::Media(m) => Some(m.duration),
            Inspection::Document(_) => None,
        }
    }
}

impl std::fmt::Display for Inspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Inspection::Media(m) => m.fmt(f),
            Inspection::Document(d) => d.fmt(f),
        }
    }
}

/// Reads any recording's file at `path`, its format told by its first bytes: ZIP, JSON, an
/// RFC 5322 message, or audio/video ([`probe`]). `stated_attachments` are the attachments (name,
/// bytes) the recording's metadata states, which an EML must hold.
pub fn inspect_file(
    path: &Path,
    stated_attachments: &[(String, u64)],
) -> Result<Inspection, MediaError> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    // Enough for an RFC 5322 header line (at most 998 characters, RFC 5322 §2.1.1).
    let mut head = Vec::with_capacity(1024);
    (&mut f).take(1024).read_to_end(&mut head)?;
    f.seek(SeekFrom::Start(0))?;
    let head = head.as_slice();
    let first = head.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return document::zip(f).map(Inspection::Document);
    }
    if media_magic(head) {
        return probe(f).map(Inspection::Media);
    }
    if matches!(first, Some(b'{' | b'[')) {
        return document::json(f, len).map(Inspection::Document);
    }
    if document::looks_like_eml(head) {
        return document::eml(f, len, stated_attachments).map(Inspection::Document);
    }
    probe(f).map(Inspection::Media)
}

/// Reads a recording's file with the reader for what its `media` says it is (audio and screen
/// video: [`probe`]; email: EML; chat and messaging: ZIP), or, when that is not known, by its
/// first bytes ([`inspect_file`]).
pub fn inspect_file_as(
    path: &Path,
    media: Option<crate::model::Media>,
    stated_attachments: &[(String, u64)],
) -> Result<Inspection, MediaError> {
    use crate::model::Media;
    let open = || -> Result<(std::fs::File, u64), MediaError> {
        let f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        Ok((f, len))
    };
    match media {
        None => inspect_file(path, stated_attachments),
        Some(Media::Audio | Media::Screen) => probe_file(path).map(Inspection::Media),
        Some(Media::Email) => {
            let (f, len) = open()?;
            document::eml(f, len, stated_attachments).map(Inspection::Document)
        }
        Some(Media::Chat | Media::Messaging) => document::zip(open()?.0).map(Inspection::Document),
    }
}

/// The usual file extension of a file that starts with `head`, where its first bytes tell it:
/// what a file kept as `.bin` (a `Corrupted` item) is named when it is produced.
pub fn extension_of(head: &[u8]) -> Option<&'static str> {
    Some(match head {
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'A',
            b'V',
            b'E',
            ..,
        ]
        | [b'R', b'F', b'6', b'4', ..]
        | [b'B', b'W', b'6', b'4', ..] => "wav",
        [b'O', b'g', b'g', b'S', ..] => "ogg",
        [0x1A, 0x45, 0xDF, 0xA3, ..] => "webm",
        [_, _, _, _, b'f', b't', b'y', b'p', b'M', b'4', b'A', ..] => "m4a",
        [_, _, _, _, b'f', b't', b'y', b'p', ..] => "mp4",
        [b'I', b'D', b'3', ..] => "mp3",
        [0xFF, b, ..] if b & 0xE0 == 0xE0 => "mp3",
        [b'P', b'K', 3, 4, ..] => "zip",
        _ => return None,
    })
}

/// Whether `head` starts like a media file [`probe`] reads.
fn media_magic(head: &[u8]) -> bool {
    matches!(
        head,
        [b'R', b'I', b'F', b'F', ..]
            | [b'R', b'F', b'6', b'4', ..]
            | [b'B', b'W', b'6', b'4', ..]
            | [b'O', b'g', b'g', b'S', ..]
            | [0x1A, 0x45, 0xDF, 0xA3, ..]
            | [b'I', b'D', b'3', ..]
            | [_, _, _, _, b'f', b't', b'y', b'p', ..]
    ) || matches!(head, [0xFF, b, ..] if b & 0xE0 == 0xE0)
}

/// Probes the file at `path`.
pub fn probe_file(path: &Path) -> Result<MediaInfo, MediaError> {
    probe(std::fs::File::open(path)?)
}

/// Probes a seekable source from its start.
pub fn probe<R: Read + Seek>(mut r: R) -> Result<MediaInfo, MediaError> {
    let len = r.seek(SeekFrom::End(0))?;
    r.seek(SeekFrom::Start(0))?;
    if len == 0 {
        return Err(MediaError::Invalid("empty file (0 bytes)".into()));
    }
    let mut src = Src::new(r, len);
    let mut head = [0u8; 12];
    let n = src.read_at(0, &mut head)?;
    let head = &head[..n];
    match head {
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'A', b'V', b'E']
        | [b'R', b'F', b'6', b'4', _, _, _, _, b'W', b'A', b'V', b'E']
        | [b'B', b'W', b'6', b'4', _, _, _, _, b'W', b'A', b'V', b'E'] => wav::probe(&mut src),
        [b'O', b'g', b'g', b'S', ..] => ogg::probe(&mut src),
        [0x1A, 0x45, 0xDF, 0xA3, ..] => {
            // The one reader that is not ours: a panic on damaged input (matroska-demuxer 0.8
            // has `expect`s on file contents) becomes an error, never a crash of the export.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| webm::probe(src)))
                .unwrap_or_else(|_| {
                    Err(MediaError::Invalid(
                        "WebM/Matroska: the demuxer failed on damaged input".into(),
                    ))
                })
        }
        [_, _, _, _, b'f', b't', b'y', b'p', ..] => mp4::probe(&mut src),
        [b'I', b'D', b'3', ..] => mp3::probe(&mut src),
        [0xFF, b, ..] if b & 0xE0 == 0xE0 => mp3::probe(&mut src),
        _ => Err(MediaError::Unrecognised(format!(
            "first bytes {}",
            head.iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::read::samples_to_duration;
    use super::*;
    use std::io;
    use std::time::Duration;

    #[test]
    fn empty_and_unknown_files_are_errors_not_panics() {
        assert!(matches!(
            probe(io::Cursor::new(Vec::new())),
            Err(MediaError::Invalid(_))
        ));
        let e = probe(io::Cursor::new(b"<html>oops</html>".to_vec())).unwrap_err();
        assert!(e.to_string().contains("3c 68 74 6d"), "{e}");
        for short in [
            &b"R"[..],
            b"RIFF",
            b"OggS",
            b"\x1a\x45\xdf\xa3",
            b"ID3",
            b"\xff\xfb",
        ] {
            assert!(probe(io::Cursor::new(short.to_vec())).is_err());
        }
    }

    #[test]
    fn samples_convert_exactly() {
        assert_eq!(samples_to_duration(8000, 8000), Duration::from_secs(1));
        assert_eq!(samples_to_duration(1, 3), Duration::from_nanos(333_333_333));
        assert_eq!(
            samples_to_duration(u64::MAX, 1),
            Duration::from_nanos(u64::MAX)
        );
        assert_eq!(samples_to_duration(5, 0), Duration::ZERO);
    }
}
