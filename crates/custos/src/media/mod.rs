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
//! CRC; last granule position, minus pre-skip for Opus), WebM/Matroska (through the
//! `matroska-demuxer` crate: `Duration` minus `CodecDelay`, checked against the last block).
//! The format is told by the file's first bytes, never by its name.
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

mod mp3;
mod ogg;
mod wav;
mod webm;

use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

/// What a media file holds.
#[derive(Clone, Debug, PartialEq)]
pub struct MediaInfo {
    /// Container: `wav`, `rf64`, `mp3`, `ogg`, `webm` or `matroska`.
    pub container: &'static str,
    /// Codec, in ffprobe's words where there is one (`pcm_s16le`, `pcm_mulaw`, `pcm_alaw`,
    /// `mp3`, `opus`, `vorbis`, …).
    pub codec: String,
    /// Channels.
    pub channels: u32,
    /// Sample rate in Hz (48 000 for Opus, whose decoder always runs at 48 kHz).
    pub sample_rate: u32,
    /// The playable duration: what a decoder outputs (gapless trims and pre-skip removed).
    pub duration: Duration,
    /// Inconsistencies that make the file untrustworthy as evidence (truncation, a header that
    /// claims more than the file holds, CRC failures, junk between frames). Empty for a sound file.
    pub problems: Vec<String>,
}

impl MediaInfo {
    /// Duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.duration.as_secs_f64()
    }

    /// The facts as JSON (`custos probe --json`, the custody log).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "container": self.container,
            "codec": self.codec,
            "channels": self.channels,
            "sampleRate": self.sample_rate,
            "durationSeconds": (self.seconds() * 1e6).round() / 1e6,
            "problems": self.problems,
        })
    }
}

impl std::fmt::Display for MediaInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, {}, {} ch, {} Hz, {:.3} s",
            self.container,
            self.codec,
            self.channels,
            self.sample_rate,
            self.seconds()
        )
    }
}

/// Why a file could not be read as media at all.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Reading failed.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    /// Not a format we know (the first bytes say which they are not).
    #[error("not a recognised audio file ({0})")]
    Unrecognised(String),
    /// Recognised, but broken beyond reading a duration.
    #[error("{0}")]
    Invalid(String),
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

/// A duration of `samples` at `rate` Hz, exact to the nanosecond (saturating).
fn samples_to_duration(samples: u64, rate: u32) -> Duration {
    if rate == 0 {
        return Duration::ZERO;
    }
    let ns = u128::from(samples) * 1_000_000_000 / u128::from(rate);
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

/// A buffered, seekable source that knows its length and reads at absolute offsets.
struct Src<R> {
    inner: BufReader<R>,
    pos: u64,
    len: u64,
}

impl<R: Read + Seek> Src<R> {
    fn new(r: R, len: u64) -> Self {
        Src {
            inner: BufReader::with_capacity(64 * 1024, r),
            pos: 0,
            len,
        }
    }

    /// Reads up to `buf.len()` bytes at `at`; fewer only at the end of the file.
    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> io::Result<usize> {
        if at != self.pos {
            let delta = i128::from(at) - i128::from(self.pos);
            match i64::try_from(delta) {
                Ok(d) => self.inner.seek_relative(d)?,
                Err(_) => {
                    self.inner.seek(SeekFrom::Start(at))?;
                }
            }
            self.pos = at;
        }
        let mut n = 0;
        while n < buf.len() {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pos += n as u64;
        Ok(n)
    }

    /// Reads exactly `N` bytes at `at`, or `None` past the end of the file.
    fn array<const N: usize>(&mut self, at: u64) -> io::Result<Option<[u8; N]>> {
        let mut b = [0u8; N];
        Ok((self.read_at(at, &mut b)? == N).then_some(b))
    }
}

fn u16le(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

fn u32le(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u32be(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64le(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).map_or(0, |s| {
        u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
