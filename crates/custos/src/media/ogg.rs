//! Ogg (RFC 3533) carrying Opus (RFC 7845) or Vorbis: every page is walked and its CRC checked,
//! so a cut, a hole (a page-sequence gap) or a flipped bit is found, not only a short duration.
//! Duration = last granule position of the first logical stream, minus the Opus pre-skip, over
//! 48 kHz for Opus or the Vorbis sample rate.
//!
//! For Opus the granule is checked against the content: every packet's table-of-contents byte
//! (RFC 6716 §3.1) says how many 48 kHz samples it decodes to, so the packets that complete up to
//! the last granule-bearing page give the samples that really exist. A granule position that
//! claims more (an inflated last granule: a header that says 300 s over 3 s of packets) is a
//! problem, and the duration is what the packets hold. A packet that declares more than the
//! 120 ms RFC 6716 allows decodes to nothing and counts as nothing.
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
    let mut packets = Packets::default();
    // (granule, samples the packets completed up to that page) of the last page with a granule.
    let mut last_counted: Option<(u64, u64)> = None;
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
            packets.lost();
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
                    packets.lost();
                }
                next_seq = Some(seq.wrapping_add(1));
            }
        }
        let audio = matches!(stream, Some((_, Codec::Opus { .. }, ..)))
            && packets.page(flags & 1 != 0, &lacing[..nseg], &body[..body_len]);
        if audio && granule != u64::MAX && !packets.started {
            packets.started = true;
            // A start offset is read only from a page that is not also the last: on the last
            // page a granule above the samples is a claim, not an offset.
            if flags & 4 == 0 {
                packets.start_offset = granule.saturating_sub(packets.samples);
            }
        }
        if granule != u64::MAX {
            last_granule = Some(granule);
            last_counted = Some((granule, packets.samples));
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
        Codec::Opus { pre_skip } => {
            let claimed = granule.saturating_sub(packets.start_offset);
            let held = last_counted.map_or(0, |(_, n)| n);
            let pre_skip = u64::from(pre_skip);
            if packets.oversized > 0 {
                problems.push(format!(
                    "{} Opus packets declare more than 120 ms of audio (RFC 6716 §3.2.5): they decode to nothing",
                    packets.oversized
                ));
            }
            let samples = if claimed > held {
                let secs = |n: u64| n.saturating_sub(pre_skip) as f64 / 48_000.0;
                problems.push(format!(
                    "the last granule position claims {:.3} s of audio, the Opus packets hold {:.3} s",
                    secs(claimed),
                    secs(held)
                ));
                held
            } else {
                claimed
            };
            ("opus", samples.saturating_sub(pre_skip))
        }
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

/// Opus packets reassembled from a stream's pages (RFC 3533 lacing), keeping of each only what
/// its duration needs: its first two bytes.
#[derive(Default)]
struct Packets {
    /// Packets completed so far, the two headers (OpusHead, OpusTags) included.
    count: u64,
    /// 48 kHz samples the completed audio packets decode to.
    samples: u64,
    /// The first bytes of the packet still open at the end of the last page, and whether one is.
    open: Option<Vec<u8>>,
    /// Samples before the stream's first audio packet (RFC 7845 §4.4: the first audio page's
    /// granule may exceed the samples completed on it, for a stream that starts later).
    start_offset: u64,
    /// Whether the first page with a granule and a completed audio packet was seen.
    started: bool,
    /// Packets declaring more than 120 ms, counted as nothing.
    oversized: u64,
}

impl Packets {
    /// Pages were lost (a CRC failure, a sequence gap): a packet open across them is gone.
    fn lost(&mut self) {
        self.open = None;
    }

    /// One page's packets (`continued`: the page's continued-packet flag); whether an audio
    /// packet completed on it.
    fn page(&mut self, continued: bool, lacing: &[u8], body: &[u8]) -> bool {
        let mut at = 0usize;
        // A continuation without its beginning (lost) is skipped, up to its end.
        let mut skip = continued && self.open.is_none();
        if !continued {
            self.open = None;
        }
        let mut completed_audio = false;
        for &l in lacing {
            let seg = &body[at..at + usize::from(l)];
            at += usize::from(l);
            if !skip {
                let p = self.open.get_or_insert_with(Vec::new);
                let room = 2usize.saturating_sub(p.len());
                p.extend_from_slice(&seg[..room.min(seg.len())]);
            }
            if l < 255 {
                if skip {
                    skip = false;
                    continue;
                }
                let head = self.open.take().unwrap_or_default();
                self.count += 1;
                if self.count > 2 {
                    completed_audio = true;
                    match toc_samples(&head) {
                        Some(n) if n <= 5760 => self.samples += u64::from(n),
                        Some(_) => self.oversized += 1,
                        None => {}
                    }
                }
            }
        }
        completed_audio
    }
}

/// The 48 kHz samples an Opus packet decodes to, from its table-of-contents byte and, for code
/// 3, its frame-count byte (RFC 6716 §3.1, §3.2.5); `None` for an empty or cut-short packet.
fn toc_samples(head: &[u8]) -> Option<u32> {
    let toc = *head.first()?;
    let config = usize::from(toc >> 3);
    let per_frame = match config {
        0..=11 => [480, 960, 1920, 2880][config % 4],
        12..=15 => [480, 960][config % 2],
        _ => [120, 240, 480, 960][config % 4],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*head.get(1)? & 0x3F),
    };
    Some(per_frame * frames)
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
