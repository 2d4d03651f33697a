//! What a probe finds ([`MediaInfo`]) and why a file could not be read as media ([`MediaError`]).

use std::io;
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
    /// A video (a screen recording): its width and height in pixels. Channels and sample
    /// rate are then 0.
    pub video: Option<(u32, u32)>,
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
        let mut v = serde_json::json!({
            "container": self.container,
            "codec": self.codec,
            "channels": self.channels,
            "sampleRate": self.sample_rate,
            "durationSeconds": (self.seconds() * 1e6).round() / 1e6,
            "problems": self.problems,
        });
        if let Some((w, h)) = self.video {
            v["width"] = w.into();
            v["height"] = h.into();
        }
        v
    }
}

impl std::fmt::Display for MediaInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some((w, h)) = self.video {
            return write!(
                f,
                "{}, {}, {w}x{h}, {:.3} s",
                self.container,
                self.codec,
                self.seconds()
            );
        }
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
