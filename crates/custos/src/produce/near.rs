//! Near-natives: a playable copy of every native a review platform cannot play (Ogg Opus,
//! WebM, μ-law WAV …), made by a local decoder (ffmpeg) from the volume's own copy of the
//! native: audio decoded to 16-bit PCM WAV (no second lossy generation), video to H.264 MP4.
//! Each copy is labelled as derived, hashed, named in the load file, and its duration read back
//! and compared with the native's (within 1 s), or the production stops. The native of record
//! is never changed.
//!
//! Why a local decoder rather than Genesys' own conversion (`formatId=WAV` on the recording
//! API): the production is made offline from a sealed export, its near-natives are derived from
//! the very bytes produced (hashed before and after), and the conversion does not depend on the
//! source still holding the recording, nor cost a second download per recording.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::media::MediaInfo;

/// The tolerance between a near-native's duration and its native's.
pub const TOLERANCE_S: f64 = 1.0;

/// The decoder that makes near-natives: the ffmpeg binary and what `-version` says it is.
#[derive(Clone, Debug)]
pub struct Decoder {
    /// The binary.
    pub program: PathBuf,
    /// Its `-version` first line (`ffmpeg version 6.1.1-3ubuntu5 …`).
    pub version: String,
}

impl Decoder {
    /// Finds `program` (a path, or a name on PATH) and asks its version; an error says how to
    /// install it or do without.
    pub fn find(program: &Path) -> Result<Decoder, String> {
        let out = Command::new(program)
            .args(["-hide_banner", "-version"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                format!(
                    "{}: {e}; playable near-natives need ffmpeg (apt install ffmpeg, brew install ffmpeg), or pass --no-near-natives",
                    program.display()
                )
            })?;
        let version = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        if !out.status.success() || !version.starts_with("ffmpeg version") {
            return Err(format!(
                "{}: not ffmpeg (its -version says {version:?}); pass --ffmpeg PATH or --no-near-natives",
                program.display()
            ));
        }
        Ok(Decoder {
            program: program.to_path_buf(),
            version,
        })
    }
}

/// What a near-native is made as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 16-bit PCM WAV.
    Wav,
    /// H.264 video (and AAC audio, where the native has sound) in MP4.
    Mp4,
}

impl Kind {
    /// The near-native's extension.
    pub fn ext(self) -> &'static str {
        match self {
            Kind::Wav => "wav",
            Kind::Mp4 => "mp4",
        }
    }
}

/// Whether a native with these facts needs a playable copy, and of what kind: review
/// platforms (and the browsers they play in) play PCM WAV, MP3, and AAC or H.264 in MP4.
pub fn needed(info: &MediaInfo) -> Option<Kind> {
    if info.video.is_some() {
        return (!(info.container == "mp4" && info.codec == "h264")).then_some(Kind::Mp4);
    }
    let playable = match info.container {
        "wav" | "rf64" => matches!(info.codec.as_str(), "pcm_s16le" | "pcm_u8" | "pcm_s24le"),
        "mp3" => true,
        "mp4" | "m4a" => info.codec == "aac",
        _ => false,
    };
    (!playable).then_some(Kind::Wav)
}

/// Decodes the native at `data/native` into `data/out` as `kind` (paths relative to the
/// volume's `data/`, where the decoder runs; written as `out.part`, renamed when whole), and
/// reads its duration back: it must be within [`TOLERANCE_S`] of `native_s`. Returns the
/// arguments given to the decoder (recorded in the production log) and the copy's facts.
pub fn make(
    d: &Decoder,
    data: &Path,
    native: &str,
    out: &str,
    kind: Kind,
    native_s: f64,
) -> Result<(Vec<String>, MediaInfo), String> {
    let part_rel = format!("{out}.part");
    let part = data.join(&part_rel);
    let mut args: Vec<String> = ["-nostdin", "-hide_banner", "-loglevel", "error", "-i"]
        .map(str::to_owned)
        .to_vec();
    args.push(native.to_owned());
    let codec: &[&str] = match kind {
        Kind::Wav => &["-map", "0:a:0", "-vn", "-c:a", "pcm_s16le", "-f", "wav"],
        Kind::Mp4 => &[
            "-map",
            "0:v:0",
            "-map",
            "0:a:0?",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-vf",
            "scale=trunc(iw/2)*2:trunc(ih/2)*2",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
        ],
    };
    args.extend(codec.iter().map(|s| (*s).to_owned()));
    // No encoder name or date inside: the same native gives the same copy.
    args.extend(
        ["-map_metadata", "-1", "-fflags", "+bitexact", "-y"]
            .map(str::to_owned)
            .to_vec(),
    );
    args.push(part_rel);
    let run = Command::new(&d.program)
        .args(&args)
        .current_dir(data)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", d.program.display()))?;
    if !run.status.success() {
        let _ = std::fs::remove_file(&part);
        return Err(format!(
            "ffmpeg could not decode {native}: {}",
            crate::shown::text(String::from_utf8_lossy(&run.stderr).trim())
        ));
    }
    let info = crate::media::probe_file(&part).map_err(|e| {
        let _ = std::fs::remove_file(&part);
        format!("the playable copy of {native} cannot be read back: {e}")
    })?;
    let diff = (info.seconds() - native_s).abs();
    if diff > TOLERANCE_S || !info.problems.is_empty() {
        let _ = std::fs::remove_file(&part);
        return Err(format!(
            "the playable copy of {native} lasts {:.3} s, the native {native_s:.3} s{}",
            info.seconds(),
            if info.problems.is_empty() {
                String::new()
            } else {
                format!(" ({})", info.problems.join("; "))
            }
        ));
    }
    crate::durable::set_mode(&part, crate::durable::EVIDENCE_MODE).map_err(|e| e.to_string())?;
    std::fs::rename(&part, data.join(out)).map_err(|e| format!("{out}: {e}"))?;
    Ok((args, info))
}
