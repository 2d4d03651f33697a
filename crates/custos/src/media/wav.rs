//! WAV: RIFF, RF64 and BW64 (EBU Tech 3306), walked chunk by chunk; only the header is read, so a
//! 2 GB file costs a few small reads. Duration = data bytes / block align / sample rate: what the
//! data chunk really holds, never the header's word for it (a data size past the end of the file
//! is a problem). For compressed payloads, the `fact` chunk's sample count, checked against what
//! the data holds at the header's byte rate: a `fact` that claims more is a problem, and the
//! duration is the data's.

use std::io::{Read, Seek};

use super::info::{MediaError, MediaInfo};
use super::read::{Src, samples_to_duration, u16le, u32le, u64le};

/// "Size not known" in a 32-bit RIFF field: RF64 puts the real one in `ds64`; a streaming writer
/// leaves it when it could not seek back.
const UNSET: u32 = 0xFFFF_FFFF;

struct Fmt {
    tag: u16,
    channels: u16,
    rate: u32,
    byte_rate: u32,
    block_align: u16,
    bits: u16,
}

pub(super) fn probe<R: Read + Seek>(src: &mut Src<R>) -> Result<MediaInfo, MediaError> {
    let head: [u8; 12] = src.array(0)?.ok_or_else(|| short("header"))?;
    let container = if &head[..4] == b"RIFF" { "wav" } else { "rf64" };
    let mut problems = Vec::new();
    let mut ds64_data: Option<u64> = None;
    let mut fmt: Option<Fmt> = None;
    let mut fact: Option<u32> = None;
    let mut data: Option<(u64, u64, bool)> = None; // (start, declared bytes, size unset)
    let mut pos = 12u64;
    // Every iteration moves `pos` forward by at least 8 bytes, so this ends.
    while pos + 8 <= src.len {
        let Some(h) = src.array::<8>(pos)? else { break };
        let id = [h[0], h[1], h[2], h[3]];
        let size32 = u32le(&h, 4);
        let body = pos + 8;
        match &id {
            b"ds64" => {
                let mut b = [0u8; 24];
                if src.read_at(body, &mut b)? == 24 {
                    ds64_data = Some(u64le(&b, 8));
                }
            }
            b"fmt " => fmt = Some(read_fmt(src, body, size32)?),
            b"fact" if size32 >= 4 => {
                if let Some(b) = src.array::<4>(body)? {
                    fact = Some(u32::from_le_bytes(b));
                }
            }
            b"data" => {
                let (declared, unset) = match (size32, ds64_data) {
                    (UNSET, Some(n)) if container == "rf64" => (n, false),
                    (UNSET, _) => (src.len - body, true),
                    (n, _) => (u64::from(n), false),
                };
                data = Some((body, declared, unset));
                if fmt.is_some() || unset {
                    break;
                }
            }
            _ => {}
        }
        let size = if &id == b"data" {
            data.map_or(0, |d| d.1)
        } else {
            u64::from(size32)
        };
        pos = body.saturating_add(size).saturating_add(size & 1);
    }
    let fmt = fmt.ok_or_else(|| MediaError::Invalid("WAV without a fmt chunk".into()))?;
    // A data size left unset by a streaming writer is not a problem of the audio: the audio
    // runs to the end of the file.
    let (start, declared, _unset) =
        data.ok_or_else(|| MediaError::Invalid("WAV without a data chunk".into()))?;
    if fmt.channels == 0 || fmt.rate == 0 || fmt.block_align == 0 {
        return Err(MediaError::Invalid(format!(
            "WAV header with {} channels, {} Hz, block align {}",
            fmt.channels, fmt.rate, fmt.block_align
        )));
    }
    let available = src.len.saturating_sub(start);
    let bytes = declared.min(available);
    let secs = |b: u64| b as f64 / f64::from(fmt.block_align) / f64::from(fmt.rate);
    if declared > available {
        problems.push(format!(
            "truncated: the header declares {declared} bytes of audio ({:.3} s), the file holds {available} ({:.3} s)",
            secs(declared),
            secs(available)
        ));
    }
    let codec = match (fmt.tag, fmt.bits) {
        (1, 8) => "pcm_u8".to_owned(),
        (1, b) => format!("pcm_s{b}le"),
        (3, b) => format!("pcm_f{b}le"),
        (6, _) => "pcm_alaw".to_owned(),
        (7, _) => "pcm_mulaw".to_owned(),
        (t, _) => format!("wav format 0x{t:04x}"),
    };
    let pcm = matches!(fmt.tag, 1 | 3 | 6 | 7);
    check_pcm_header(&fmt, &mut problems);
    let frames = if pcm {
        bytes / u64::from(fmt.block_align)
    } else if let Some(n) = fact {
        let stated = u64::from(n);
        if fmt.byte_rate > 0 {
            let held = bytes * u64::from(fmt.rate) / u64::from(fmt.byte_rate);
            // The byte rate of a compressed format is an average: 2 % and 100 ms of slack.
            if stated > held + held / 50 + u64::from(fmt.rate) / 10 {
                problems.push(format!(
                    "the fact chunk claims {:.3} s, the data holds {:.3} s at {} bytes/s",
                    stated as f64 / f64::from(fmt.rate),
                    held as f64 / f64::from(fmt.rate),
                    fmt.byte_rate
                ));
                held
            } else {
                stated
            }
        } else {
            stated
        }
    } else if fmt.byte_rate > 0 {
        bytes * u64::from(fmt.rate) / u64::from(fmt.byte_rate)
    } else {
        return Err(MediaError::Invalid(format!(
            "{codec}: no fact chunk and no byte rate"
        )));
    };
    Ok(MediaInfo {
        container,
        codec,
        channels: u32::from(fmt.channels),
        sample_rate: fmt.rate,
        duration: samples_to_duration(frames, fmt.rate),
        video: None,
        problems,
    })
}

/// The fmt chunk at `body` (`size32` bytes), with WAVE_FORMAT_EXTENSIBLE's real tag.
fn read_fmt<R: Read + Seek>(src: &mut Src<R>, body: u64, size32: u32) -> Result<Fmt, MediaError> {
    let mut b = [0u8; 26];
    let n = src.read_at(body, &mut b)?.min(size32 as usize);
    if n < 16 {
        return Err(MediaError::Invalid(format!(
            "WAV fmt chunk of {size32} bytes (at least 16 needed)"
        )));
    }
    let mut tag = u16le(&b, 0);
    if tag == 0xFFFE && n >= 26 {
        // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID begins with the real tag.
        let mut guid = [0u8; 2];
        if src.read_at(body + 24, &mut guid)? == 2 {
            tag = u16::from_le_bytes(guid);
        }
    }
    Ok(Fmt {
        tag,
        channels: u16le(&b, 2),
        rate: u32le(&b, 4),
        byte_rate: u32le(&b, 8),
        block_align: u16le(&b, 12),
        bits: u16le(&b, 14),
    })
}

/// PCM's block align and byte rate must follow from channels, bits and rate.
fn check_pcm_header(fmt: &Fmt, problems: &mut Vec<String>) {
    if !matches!(fmt.tag, 1 | 3 | 6 | 7) {
        return; // not PCM: other layouts have other rules
    }
    let expect = u32::from(fmt.channels) * u32::from(fmt.bits).div_ceil(8);
    if fmt.bits == 0 || u32::from(fmt.block_align) != expect {
        problems.push(format!(
            "inconsistent header: block align {} for {} channels of {} bits",
            fmt.block_align, fmt.channels, fmt.bits
        ));
    }
    if fmt.byte_rate != fmt.rate.saturating_mul(u32::from(fmt.block_align)) {
        problems.push(format!(
            "inconsistent header: {} bytes/s for {} Hz × {} bytes",
            fmt.byte_rate, fmt.rate, fmt.block_align
        ));
    }
}

fn short(what: &str) -> MediaError {
    MediaError::Invalid(format!("file ends inside the WAV {what}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::probe;
    use std::io::Cursor;

    /// A WAV: `tag` format, `ch` channels, `rate` Hz, `bits`, `frames` of silence; `declared`
    /// overrides the data size written in the header.
    pub(crate) fn wav(tag: u16, ch: u16, rate: u32, bits: u16, frames: u32) -> Vec<u8> {
        let align = ch * bits.div_ceil(8);
        let n = frames * u32::from(align);
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + n).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&ch.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
        v.extend_from_slice(&align.to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&n.to_le_bytes());
        v.resize(v.len() + n as usize, 0);
        v
    }

    #[test]
    fn pcm_mulaw_alaw_and_stereo() {
        for (tag, bits, codec) in [
            (1, 16, "pcm_s16le"),
            (7, 8, "pcm_mulaw"),
            (6, 8, "pcm_alaw"),
        ] {
            let i = probe(Cursor::new(wav(tag, 2, 8000, bits, 12_000))).unwrap();
            assert_eq!(i.codec, codec);
            assert_eq!((i.channels, i.sample_rate), (2, 8000));
            assert_eq!(i.duration.as_millis(), 1500);
            assert!(i.problems.is_empty(), "{:?}", i.problems);
        }
    }

    #[test]
    fn a_header_claiming_more_than_the_file_holds_is_a_problem() {
        let mut v = wav(1, 1, 8000, 16, 8000);
        v.truncate(v.len() - 8000); // half the audio gone
        let i = probe(Cursor::new(v)).unwrap();
        assert_eq!(i.duration.as_millis(), 500);
        assert!(i.problems[0].starts_with("truncated"), "{:?}", i.problems);
    }

    #[test]
    fn rf64_reads_the_size_from_ds64() {
        let n: u64 = 16_000;
        let mut v = Vec::new();
        v.extend_from_slice(b"RF64");
        v.extend_from_slice(&u32::MAX.to_le_bytes());
        v.extend_from_slice(b"WAVEds64");
        v.extend_from_slice(&28u32.to_le_bytes());
        v.extend_from_slice(&(n + 72).to_le_bytes());
        v.extend_from_slice(&n.to_le_bytes());
        v.extend_from_slice(&(n / 2).to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        let w = wav(1, 1, 16_000, 16, 8000);
        v.extend_from_slice(&w[12..36]); // fmt chunk
        v.extend_from_slice(b"data");
        v.extend_from_slice(&u32::MAX.to_le_bytes());
        v.resize(v.len() + n as usize, 0);
        let i = probe(Cursor::new(v)).unwrap();
        assert_eq!(i.container, "rf64");
        assert_eq!(i.duration.as_millis(), 500);
        assert!(i.problems.is_empty(), "{:?}", i.problems);
    }

    /// A compressed WAV (GSM 6.10, 1,625 bytes/s at 8 kHz) with a `fact` chunk stating
    /// `stated` samples over 2 s of data.
    fn gsm(stated: u32) -> Vec<u8> {
        let data = 3250u32;
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(4 + 8 + 20 + 12 + 8 + data).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&20u32.to_le_bytes());
        for x in [0x31u16, 1] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        for x in [8000u32, 1625] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        for x in [65u16, 0, 2, 320] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(b"fact");
        v.extend_from_slice(&4u32.to_le_bytes());
        v.extend_from_slice(&stated.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&data.to_le_bytes());
        v.resize(v.len() + data as usize, 0);
        v
    }

    #[test]
    fn a_fact_chunk_that_agrees_with_the_data_is_the_duration() {
        let i = probe(Cursor::new(gsm(16_000))).unwrap();
        assert_eq!(i.duration.as_millis(), 2000);
        assert!(i.problems.is_empty(), "{:?}", i.problems);
    }

    #[test]
    fn a_fact_chunk_claiming_more_than_the_data_holds_is_a_problem() {
        let i = probe(Cursor::new(gsm(300 * 8000))).unwrap();
        assert_eq!(i.duration.as_millis(), 2000);
        assert!(
            i.problems[0].contains("claims 300.000 s") && i.problems[0].contains("holds 2.000 s"),
            "{:?}",
            i.problems
        );
    }

    #[test]
    fn missing_chunks_and_zero_rates_are_invalid() {
        let v = wav(1, 1, 0, 16, 10);
        assert!(probe(Cursor::new(v)).is_err());
        let mut v = wav(1, 1, 8000, 16, 10);
        v[12..16].copy_from_slice(b"junk");
        assert!(
            probe(Cursor::new(v))
                .unwrap_err()
                .to_string()
                .contains("fmt")
        );
    }
}
