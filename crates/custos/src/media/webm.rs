//! WebM/Matroska through the `matroska-demuxer` crate: the first audio track's codec, channels and
//! rate (or, in a file without audio, a screen recording, the first video track's codec and
//! size); the duration from the segment's `Duration` minus the track's `CodecDelay` (Opus
//! pre-skip), checked against the blocks themselves, which are all walked. Without a `Duration`
//! (a live-written file), the end of the last block is the duration.

use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use matroska_demuxer::{DemuxError, Frame, MatroskaFile, TrackType};

use super::info::{MediaError, MediaInfo};
use super::read::Src;

/// How far the blocks may end before the stated `Duration` (one Opus/Vorbis packet is ≤ 120 ms).
const SLACK: Duration = Duration::from_millis(150);

pub(super) fn probe<R: Read + Seek>(src: Src<R>) -> Result<MediaInfo, MediaError> {
    let mut r = src.inner;
    r.seek(SeekFrom::Start(0))?;
    let mut mkv = MatroskaFile::open(r).map_err(|e| MediaError::Invalid(describe(&e)))?;
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
