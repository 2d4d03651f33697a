//! WebM/Matroska through the `matroska-demuxer` crate: the first audio track's codec, channels and
//! rate (or, in a file without audio, a screen recording, the first video track's codec and
//! size); the duration from the segment's `Duration` minus the track's `CodecDelay` (Opus
//! pre-skip), checked against the blocks themselves, which are all walked. Without a `Duration`
//! (a live-written file), the end of the last block is the duration.
//!
//! The demuxer reads through a [`Bounded`] reader: some damaged files send it round a loop that
//! re-reads one place forever (0.8.1's `search_seek_head` re-parses the same header when the
//! Segment opens with a CRC-32 element), so reads and seeks past what a walk of the file could
//! need end in an error, never a hung export.

use std::cell::Cell;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::rc::Rc;
use std::time::Duration;

use matroska_demuxer::{DemuxError, Frame, MatroskaFile, TrackType};

use super::info::{MediaError, MediaInfo};
use super::read::Src;

/// How far the blocks may end before the stated `Duration` (one Opus/Vorbis packet is ≤ 120 ms).
const SLACK: Duration = Duration::from_millis(150);

pub(super) fn probe<R: Read + Seek>(src: Src<R>) -> Result<MediaInfo, MediaError> {
    let mut inner = src.inner;
    inner.seek(SeekFrom::Start(0))?;
    let looped = Rc::new(Cell::new(false));
    let r = Bounded::new(inner, src.len, looped.clone());
    let mut mkv = MatroskaFile::open(r).map_err(|e| {
        if looped.get() {
            MediaError::Invalid(LOOPED.into())
        } else {
            MediaError::Invalid(describe(&e))
        }
    })?;
    let container = if mkv.ebml_header().doc_type() == "webm" {
        "webm"
    } else {
        "matroska"
    };
    let tracks = mkv.tracks();
    let track = tracks
        .iter()
        .find(|t| t.track_type() == TrackType::Audio)
        .or_else(|| tracks.iter().find(|t| t.track_type() == TrackType::Video))
        .ok_or_else(|| {
            MediaError::Invalid(format!("{container} without an audio or video track"))
        })?;
    let number = track.track_number().get();
    let codec = match track.codec_id() {
        "A_OPUS" => "opus".to_owned(),
        "A_VORBIS" => "vorbis".to_owned(),
        "A_PCM/INT/LIT" => "pcm".to_owned(),
        "A_MPEG/L3" => "mp3".to_owned(),
        "V_VP8" => "vp8".to_owned(),
        "V_VP9" => "vp9".to_owned(),
        "V_AV1" => "av1".to_owned(),
        other => other.to_owned(),
    };
    // The picture of the first video track, whichever track is timed (a screen recording
    // with sound is still video).
    let video = tracks
        .iter()
        .find(|t| t.track_type() == TrackType::Video)
        .and_then(|t| t.video())
        .map(|v| {
            let px = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
            (px(v.pixel_width().get()), px(v.pixel_height().get()))
        });
    let (channels, rate) = track.audio().map_or((0, 0.0), |a| {
        (
            u32::try_from(a.channels().get()).unwrap_or(u32::MAX),
            a.sampling_frequency(),
        )
    });
    let delay = Duration::from_nanos(track.codec_delay().unwrap_or(0));
    let scale = mkv.info().timestamp_scale().get();
    let stated = mkv
        .info()
        .duration()
        .filter(|d| d.is_finite() && *d >= 0.0)
        .map(|d| Duration::from_secs_f64((d * scale as f64 / 1e9).min(1e12)));
    let mut problems = Vec::new();
    // Walk every block: the end of the last one is what the file really holds.
    let mut frame = Frame::default();
    let (mut last, mut step, mut blocks) = (0u64, 0u64, 0u64);
    loop {
        match mkv.next_frame(&mut frame) {
            Ok(true) => {
                if frame.track != number {
                    continue;
                }
                blocks += 1;
                if frame.timestamp > last {
                    step = frame.timestamp - last;
                    last = frame.timestamp;
                }
            }
            Ok(false) => break,
            Err(e) => {
                problems.push(format!("after block {blocks}: {}", describe(&e)));
                break;
            }
        }
    }
    // The demuxer takes any I/O error in a walk for the end of the file: a loop cut short
    // must not pass for a short file.
    if looped.get() {
        return Err(MediaError::Invalid(LOOPED.into()));
    }
    let end_units = last.saturating_add(step);
    let walked = Duration::from_nanos(end_units.saturating_mul(scale));
    let duration = match stated {
        Some(s) if walked + SLACK >= s => s,
        Some(s) => {
            problems.push(format!(
                "the header states {:.3} s, the blocks end at {:.3} s",
                s.as_secs_f64(),
                walked.as_secs_f64()
            ));
            walked
        }
        None => walked,
    };
    if blocks == 0 {
        problems.push("no blocks in the track".into());
    }
    Ok(MediaInfo {
        container,
        codec,
        channels,
        sample_rate: rate as u32,
        duration: duration.saturating_sub(delay),
        video,
        problems,
    })
}

const LOOPED: &str =
    "WebM/Matroska: the demuxer kept re-reading the same bytes (a loop on damaged input)";

/// The demuxer's reader, with a budget: at most 8 times the file's bytes (plus 1 MiB) read,
/// one seek per byte (plus 4096), and no more than 256 seeks in a row to one place. An
/// element is at least two bytes and a walk seeks about once per element, so a sound file
/// stays far inside it; past it, every read and seek fails and `looped` is set.
struct Bounded<R> {
    inner: BufReader<R>,
    bytes_left: u64,
    seeks_left: u64,
    last_seek: Option<u64>,
    same_seeks: u32,
    looped: Rc<Cell<bool>>,
}

impl<R: Read + Seek> Bounded<R> {
    fn new(inner: BufReader<R>, len: u64, looped: Rc<Cell<bool>>) -> Self {
        Bounded {
            inner,
            bytes_left: len.saturating_mul(8).saturating_add(1 << 20),
            seeks_left: len.saturating_add(4096),
            last_seek: None,
            same_seeks: 0,
            looped,
        }
    }

    fn exhausted(&self) -> io::Error {
        self.looped.set(true);
        io::Error::other(LOOPED)
    }
}

impl<R: Read + Seek> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.looped.get() {
            return Err(self.exhausted());
        }
        let n = self.inner.read(buf)?;
        match self.bytes_left.checked_sub(n as u64) {
            Some(left) => {
                self.bytes_left = left;
                Ok(n)
            }
            None => Err(self.exhausted()),
        }
    }
}

impl<R: Read + Seek> Seek for Bounded<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        if pos == SeekFrom::Current(0) {
            return self.inner.stream_position();
        }
        if self.looped.get() || self.seeks_left == 0 {
            return Err(self.exhausted());
        }
        self.seeks_left -= 1;
        let to = self.inner.seek(pos)?;
        if self.last_seek == Some(to) {
            self.same_seeks += 1;
            if self.same_seeks > 256 {
                return Err(self.exhausted());
            }
        } else {
            self.last_seek = Some(to);
            self.same_seeks = 0;
        }
        Ok(to)
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        self.inner.stream_position()
    }
}

/// The demuxer's error in our words (its `Display` of I/O errors says nothing useful).
fn describe(e: &DemuxError) -> String {
    match e {
        DemuxError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "WebM/Matroska: truncated: the file ends inside an element it declares or references"
                .to_owned()
        }
        DemuxError::IoError(io) => format!("WebM/Matroska: read failed: {io}"),
        DemuxError::ElementSizeExceedsStream {
            declared,
            available,
        } => format!(
            "WebM/Matroska: truncated: an element declares {declared} bytes, {available} remain"
        ),
        other => format!("WebM/Matroska: {other}"),
    }
}
