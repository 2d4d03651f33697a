//! Ogg (RFC 3533) carrying Opus (RFC 7845) or Vorbis: every page is walked and its CRC checked,
//! so a cut, a hole (a page-sequence gap) or a flipped bit is found, not only a short duration.
//! Duration = last granule position of the first logical stream, minus the Opus pre-skip, over
//! 48 kHz for Opus or the Vorbis sample rate.
//!
//! Our own page walker rather than the `ogg` crate: its packet reader hides the page facts this
//! check rests on (sequence numbers, which page failed its CRC, where the file was cut).

use std::io::{Read, Seek};

use super::info::{MediaError, MediaInfo};
use super::read::{Src, samples_to_duration, u16le, u32le};

/// CRC-32 of Ogg pages: polynomial 0x04C11DB7, not reflected, initial value 0.
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut r = (i as u32) << 24;
        let mut k = 0;
        while k < 8 {
            r = if r & 0x8000_0000 != 0 {
                (r << 1) ^ 0x04C1_1DB7
            } else {
                r << 1
            };
            k += 1;
        }
        t[i] = r;
        i += 1;
    }
    t
};

fn crc(mut c: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        c = (c << 8) ^ CRC_TABLE[((c >> 24) as u8 ^ b) as usize];
    }
    c
}

enum Codec {
    Opus { pre_skip: u16 },
    Vorbis,
}

pub(super) fn probe<R: Read + Seek>(src: &mut Src<R>) -> Result<MediaInfo, MediaError> {
    let mut problems = Vec::new();
    let mut stream: Option<(u32, Codec, u32, u32)> = None; // serial, codec, channels, rate
    let mut next_seq: Option<u32> = None;
    let mut last_granule: Option<u64> = None;
    let mut eos = false;
    let mut body = vec![0u8; 255 * 255];
    let mut pos = 0u64;
    while pos < src.len {
        let Some(h) = src.array::<27>(pos)? else {
            problems.push(format!("truncated: a partial page header at byte {pos}"));
            break;
        };
        if &h[..4] != b"OggS" || h[4] != 0 {
            // Resynchronise on the next capture pattern; what lay between is damage.
            let from = pos;
            let found;
            (pos, found) = resync(src, pos + 1)?;
            problems.push(format!(
                "{} bytes that are not Ogg pages at byte {from}",
                (if found { pos } else { src.len }) - from
            ));
            if !found {
                break;
            }
            continue;
        }
        let flags = h[5];
        let granule = u64::from_le_bytes([h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13]]);
        let serial = u32le(&h, 14);
        let seq = u32le(&h, 18);
        let stored_crc = u32le(&h, 22);
        let nseg = usize::from(h[26]);
        let mut lacing = [0u8; 255];
        if src.read_at(pos + 27, &mut lacing[..nseg])? < nseg {
            problems.push(format!("truncated: a partial page header at byte {pos}"));
            break;
        }
        let body_len: usize = lacing[..nseg].iter().map(|&l| usize::from(l)).sum();
        let got = src.read_at(pos + 27 + nseg as u64, &mut body[..body_len])?;
        if got < body_len {
            problems.push(format!(
                "truncated: the page at byte {pos} needs {body_len} bytes of data, {got} remain"
            ));
            break;
        }
        let mut hz = h;
        hz[22..26].fill(0);
        let c = crc(crc(crc(0, &hz), &lacing[..nseg]), &body[..body_len]);
        let page_start = pos;
        pos += 27 + nseg as u64 + body_len as u64;
        if c != stored_crc {
            problems.push(format!("CRC mismatch on the page at byte {page_start}"));
            continue;
        }
        match &stream {
            None => {
                if flags & 2 == 0 {
                    problems.push("the first page is not a beginning of stream".into());
                }
                let parsed = stream_header(&body[..body_len])?;
                stream = Some((serial, parsed.0, parsed.1, parsed.2));
                next_seq = Some(seq.wrapping_add(1));
            }
            Some((s, ..)) if *s != serial => continue, // another logical stream: not ours to time
            Some(_) => {
                if eos {
                    problems.push(format!("a page after end of stream at byte {page_start}"));
                }
                if next_seq != Some(seq) {
                    problems.push(format!(
                        "page sequence jumps from {} to {seq} at byte {page_start}: pages are missing",
                        next_seq.map_or(0, |n| n.wrapping_sub(1))
                    ));
                }
                next_seq = Some(seq.wrapping_add(1));
            }
        }
        if granule != u64::MAX {
            last_granule = Some(granule);
        }
        if flags & 4 != 0 {
            eos = true;
        }
    }
    let Some((_, codec, channels, rate)) = stream else {
        return Err(MediaError::Invalid(
            "Ogg file without a valid first page".into(),
        ));
    };
    if !eos && !problems.iter().any(|p| p.starts_with("truncated")) {
        problems.push("truncated: no end-of-stream page".into());
    }
    let granule = last_granule.unwrap_or(0);
    let (codec, samples) = match codec {
        Codec::Opus { pre_skip } => ("opus", granule.saturating_sub(u64::from(pre_skip))),
        Codec::Vorbis => ("vorbis", granule),
    };
    Ok(MediaInfo {
        container: "ogg",
        codec: codec.to_owned(),
        channels,
        sample_rate: rate,
        duration: samples_to_duration(samples, rate),
        video: None,
        problems,
    })
}

/// The next capture pattern at or after `pos`: (its offset, or the end of the file; found).
fn resync<R: Read + Seek>(src: &mut Src<R>, mut pos: u64) -> std::io::Result<(u64, bool)> {
    while pos + 4 <= src.len {
        if src.array::<4>(pos)? == Some(*b"OggS") {
            return Ok((pos, true));
        }
        pos += 1;
    }
    Ok((pos, false))
}

/// The stream's identification header: codec, channels, sample rate.
fn stream_header(p: &[u8]) -> Result<(Codec, u32, u32), MediaError> {
    let parsed = if p.starts_with(b"OpusHead") && p.len() >= 19 {
        let ch = u32::from(p[9]);
        (
            Codec::Opus {
                pre_skip: u16le(p, 10),
            },
            ch,
            48_000,
        )
    } else if p.starts_with(b"\x01vorbis") && p.len() >= 30 {
        (Codec::Vorbis, u32::from(p[11]), u32le(p, 12))
    } else {
        let id: String = p
            .iter()
            .take(8)
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
            .collect();
        return Err(MediaError::Unrecognised(format!(
            "Ogg stream of an unsupported codec ('{id}')"
        )));
    };
    if parsed.1 == 0 || parsed.2 == 0 {
        return Err(MediaError::Invalid(
            "Ogg stream header with 0 channels or 0 Hz".into(),
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_ogg_reference_vector() {
        // CRC-32/MPEG-2 without the final inversion and with initial 0 (Ogg's variant) of "123456789".
        assert_eq!(crc(0, b"123456789"), 0x89A1_897F);
    }
}
