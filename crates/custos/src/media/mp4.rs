//! MP4 (the ISO base media file format, ISO/IEC 14496-12: `.mp4`, `.m4a`, `.mov`): every
//! top-level box walked with its size checked against the file; the movie box (`moov`) read
//! (at most [`MAX_MOOV`]) for the first audio track (else the first video track): its codec
//! (the sample description's format), channels and rate or picture size, and its duration:
//! what its edit list presents (a player's output: AAC priming and padding cut), else the media
//! header's, else the movie header's. Damage found: a box that reaches past the end of
//! the file (a cut file), sample data the chunk offsets place past the end, no media data.
//!
//! The stated duration is checked against the content: the sample table (`stts`: how many
//! samples, each lasting how long) gives the media the track really holds. A header that claims
//! more (an M4A whose `mdhd`, `mvhd` and edit list say 300 s over 3 s of samples) is a problem,
//! and the duration is the sample table's. So is a sound sample said to last more than
//! [`MAX_AUDIO_SAMPLE`] (no audio codec's frame does: a stretched table plays silence), a sample
//! count that `stts` and `stsz` disagree on, and sample sizes that add up to more than the file.
//! A fragmented file (`moof`) keeps its sample tables in the fragments; its `moov` table is
//! empty and is not checked.

use std::io::{Read, Seek};
use std::time::Duration;

use super::info::{MediaError, MediaInfo};
use super::read::{Src, samples_to_duration, u32be};

/// The largest movie box read (an hour of video indexes in a few MB).
const MAX_MOOV: u64 = 64 << 20;

/// The longest one sound sample may last: AAC's longest frame (2,048 samples at 8 kHz) is
/// 256 ms, Opus's 120 ms, MP3's 144 ms.
const MAX_AUDIO_SAMPLE: Duration = Duration::from_millis(300);

/// How much a header may claim past the sample table: rounding between the media's and the
/// movie's timescales.
const ROUNDING: Duration = Duration::from_millis(20);

/// One box: its type, where its payload starts, and its payload's length.
struct Bx {
    kind: [u8; 4],
    at: u64,
    len: u64,
}

fn name(k: [u8; 4]) -> String {
    k.iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

fn u16be(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_be_bytes([s[0], s[1]]))
}

fn u64be(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .map_or(0, |s| u64::from_be_bytes(s.try_into().expect("8 bytes")))
}

/// The boxes inside `buf` (a box's payload), each bounded by it; a child that overruns its
/// parent ends the list.
fn children(buf: &[u8]) -> Vec<(&[u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut p = 0usize;
    while p + 8 <= buf.len() {
        let size = u32be(buf, p) as u64;
        let kind: &[u8; 4] = buf[p + 4..p + 8].try_into().expect("4 bytes");
        let (head, size) = match size {
            1 => (16, u64be(buf, p + 8)),
            0 => (8, (buf.len() - p) as u64),
            s => (8, s),
        };
        let end = match usize::try_from(size).ok().and_then(|s| p.checked_add(s)) {
            Some(e) if e <= buf.len() && size >= head as u64 => e,
            _ => break,
        };
        out.push((kind, &buf[p + head..end]));
        p = end;
    }
    out
}

fn child<'a>(buf: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(buf)
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, b)| b)
}

/// A full box's (version, timescale, duration): `mvhd` and `mdhd` share the layout.
fn timing(b: &[u8]) -> (u32, u64) {
    if b.first() == Some(&1) {
        (u32be(b, 20), u64be(b, 24))
    } else {
        (u32be(b, 12), u64::from(u32be(b, 16)))
    }
}

/// What one track is.
struct Track {
    handler: [u8; 4],
    format: [u8; 4],
    timescale: u32,
    duration: u64,
    entry: Vec<u8>,
    chunk_offsets: Vec<u64>,
    /// What its edit list presents, in the movie's timescale: the media a player plays (an
    /// AAC track's encoder priming and padding cut), if it has one that says.
    edited: Option<u64>,
    /// The time-to-sample table (`stts`): samples, their total length in the media timescale,
    /// and the longest one.
    stts: Table,
    /// The sample-size table (`stsz`): samples and their total bytes.
    stsz: Option<(u64, u64)>,
}

/// What a track's `stts` says.
#[derive(Default)]
struct Table {
    samples: u64,
    ticks: u64,
    longest: u64,
}

/// The time-to-sample box: (sample count, sample delta) entries (ISO/IEC 14496-12 §8.6.1.2).
fn stts(b: &[u8]) -> Table {
    let n = u32be(b, 4) as usize;
    let mut t = Table::default();
    for i in 0..n.min(b.len().saturating_sub(8) / 8) {
        let (count, delta) = (
            u64::from(u32be(b, 8 + 8 * i)),
            u64::from(u32be(b, 12 + 8 * i)),
        );
        t.samples = t.samples.saturating_add(count);
        t.ticks = t.ticks.saturating_add(count.saturating_mul(delta));
        if count > 0 {
            t.longest = t.longest.max(delta);
        }
    }
    t
}

/// The sample-size box: (sample count, total bytes) (ISO/IEC 14496-12 §8.7.3.2).
fn stsz(b: &[u8]) -> (u64, u64) {
    let (size, n) = (u64::from(u32be(b, 4)), u32be(b, 8) as usize);
    if size != 0 {
        return (n as u64, size.saturating_mul(n as u64));
    }
    let listed = n.min(b.len().saturating_sub(12) / 4);
    let total = (0..listed).map(|i| u64::from(u32be(b, 12 + 4 * i))).sum();
    (n as u64, total)
}

/// The presented length of an edit list (`elst`): the sum of its edits that show media
/// (`media_time` ≥ 0), in the movie's timescale; `None` when an edit says "to the end" (0).
fn edit_list(elst: &[u8]) -> Option<u64> {
    let v1 = elst.first() == Some(&1);
    let n = u32be(elst, 4) as usize;
    let step = if v1 { 20 } else { 12 };
    let mut total = 0u64;
    for i in 0..n.min(elst.len().saturating_sub(8) / step) {
        let at = 8 + i * step;
        let (len, media_time) = if v1 {
            (u64be(elst, at), u64be(elst, at + 8) as i64)
        } else {
            (
                u64::from(u32be(elst, at)),
                i64::from(u32be(elst, at + 4) as i32),
            )
        };
        if media_time >= 0 {
            if len == 0 {
                return None;
            }
            total = total.saturating_add(len);
        }
    }
    (total > 0).then_some(total)
}

fn track(trak: &[u8]) -> Option<Track> {
    let mdia = child(trak, b"mdia")?;
    let (timescale, duration) = timing(child(mdia, b"mdhd")?);
    let handler: [u8; 4] = child(mdia, b"hdlr")?.get(8..12)?.try_into().ok()?;
    let stbl = child(child(mdia, b"minf")?, b"stbl")?;
    let stsd = child(stbl, b"stsd")?;
    let entry = stsd.get(8..).unwrap_or_default();
    let format: [u8; 4] = entry.get(4..8)?.try_into().ok()?;
    let mut chunk_offsets = Vec::new();
    if let Some(stco) = child(stbl, b"stco") {
        let n = u32be(stco, 4) as usize;
        chunk_offsets.extend((0..n.min(stco.len() / 4)).map(|i| u64::from(u32be(stco, 8 + 4 * i))));
    } else if let Some(co64) = child(stbl, b"co64") {
        let n = u32be(co64, 4) as usize;
        chunk_offsets.extend((0..n.min(co64.len() / 8)).map(|i| u64be(co64, 8 + 8 * i)));
    }
    let edited = child(trak, b"edts")
        .and_then(|e| child(e, b"elst"))
        .and_then(edit_list);
    Some(Track {
        handler,
        format,
        timescale,
        duration,
        entry: entry.to_vec(),
        chunk_offsets,
        edited,
        stts: child(stbl, b"stts").map(stts).unwrap_or_default(),
        stsz: child(stbl, b"stsz").map(stsz),
    })
}

/// An MPEG-4 descriptor's (tag, body) at `at` in `b` (ISO/IEC 14496-1 §8.3.3: a tag byte, a
/// length in 1–4 bytes of 7 bits each).
fn descriptor(b: &[u8], at: usize) -> Option<(u8, &[u8])> {
    let tag = *b.get(at)?;
    let (mut len, mut p) = (0usize, at + 1);
    for _ in 0..4 {
        let x = *b.get(p)?;
        p += 1;
        len = (len << 7) | usize::from(x & 0x7F);
        if x & 0x80 == 0 {
            break;
        }
    }
    Some((tag, b.get(p..p.checked_add(len)?)?))
}

/// An AAC track's channel count, from its AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) in the
/// sample entry's `esds`: muxers write 2 in the sample entry's own field whatever the stream is.
fn aac_channels(entry: &[u8]) -> Option<u32> {
    let esds = child(entry.get(36..)?, b"esds")?;
    let (tag, es) = descriptor(esds, 4)?; // after version and flags
    if tag != 0x03 {
        return None;
    }
    let flags = *es.get(2)?;
    let mut p = 3;
    if flags & 0x80 != 0 {
        p += 2; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        p += 1 + usize::from(*es.get(p)?); // URL
    }
    if flags & 0x20 != 0 {
        p += 2; // OCR_ES_Id
    }
    let (tag, dc) = descriptor(es, p)?;
    if tag != 0x04 {
        return None;
    }
    let (tag, asc) = descriptor(dc, 13)?;
    if tag != 0x05 {
        return None;
    }
    let bits = u32::from(*asc.first()?) << 24
        | u32::from(*asc.get(1)?) << 16
        | u32::from(*asc.get(2).unwrap_or(&0)) << 8
        | u32::from(*asc.get(3).unwrap_or(&0));
    // audioObjectType (5 bits; 31 escapes to 6 more), the frequency index (4; 15 escapes to a
    // 24-bit rate), then channelConfiguration (4).
    let mut at = 5;
    if bits >> 27 == 31 {
        at += 6;
    }
    let freq = (bits >> (32 - at - 4)) & 0xF;
    at += 4;
    if freq == 15 {
        return None; // an explicit rate: the channels lie past these 32 bits
    }
    let channels = (bits >> (32 - at - 4)) & 0xF;
    (1..=7)
        .contains(&channels)
        .then_some(if channels == 7 { 8 } else { channels })
}

fn codec(format: [u8; 4]) -> String {
    match &format {
        b"avc1" | b"avc3" => "h264".into(),
        b"hvc1" | b"hev1" => "hevc".into(),
        b"vp08" => "vp8".into(),
        b"vp09" => "vp9".into(),
        b"av01" => "av1".into(),
        b"mp4v" => "mpeg4".into(),
        b"mp4a" => "aac".into(),
        b"Opus" => "opus".into(),
        b".mp3" => "mp3".into(),
        b"alaw" => "pcm_alaw".into(),
        b"ulaw" => "pcm_mulaw".into(),
        other => name(*other),
    }
}

/// Walks the top-level boxes: (the movie box, whether media data was found), with every box
/// that reaches past the end of the file a problem (the walk stops there).
fn top_level<R: Read + Seek>(
    src: &mut Src<R>,
    problems: &mut Vec<String>,
) -> Result<(Option<Bx>, bool), MediaError> {
    let (mut moov, mut media) = (None, false);
    let mut at = 0u64;
    while at < src.len {
        let Some(h) = src.array::<16>(at)?.or(src.array::<8>(at)?.map(|b| {
            let mut x = [0u8; 16];
            x[..8].copy_from_slice(&b);
            x
        })) else {
            problems.push(format!(
                "truncated: {} stray bytes at the end of the file",
                src.len - at
            ));
            break;
        };
        let kind: [u8; 4] = h[4..8].try_into().expect("4 bytes");
        let (head, size) = match u32be(&h, 0) {
            1 => (16u64, u64be(&h, 8)),
            0 => (8, src.len - at),
            s => (8, u64::from(s)),
        };
        if size < head {
            return Err(MediaError::Invalid(format!(
                "MP4: the box '{}' at byte {at} declares {size} bytes",
                name(kind)
            )));
        }
        if size > src.len - at {
            problems.push(format!(
                "truncated: the box '{}' at byte {at} declares {size} bytes, {} remain",
                name(kind),
                src.len - at
            ));
            media |= &kind == b"mdat";
            break;
        }
        match &kind {
            b"moov" => {
                moov = Some(Bx {
                    kind,
                    at: at + head,
                    len: size - head,
                })
            }
            b"mdat" | b"moof" => media = true,
            _ => {}
        }
        at += size;
    }
    Ok((moov, media))
}

pub(super) fn probe<R: Read + Seek>(src: &mut Src<R>) -> Result<MediaInfo, MediaError> {
    let mut problems = Vec::new();
    let (moov, media) = top_level(src, &mut problems)?;
    let Some(moov) = moov else {
        return Err(MediaError::Invalid(format!(
            "MP4 without a whole movie box (moov){}",
            if problems.is_empty() {
                String::new()
            } else {
                format!(": {}", problems.join("; "))
            }
        )));
    };
    if moov.len > MAX_MOOV {
        return Err(MediaError::Invalid(format!(
            "MP4: the movie box '{}' holds {} bytes, more than the {} MiB read",
            name(moov.kind),
            moov.len,
            MAX_MOOV >> 20
        )));
    }
    let mut buf = vec![0u8; moov.len as usize];
    src.read_at(moov.at, &mut buf)?;
    let (movie_scale, movie_duration) = child(&buf, b"mvhd").map_or((0, 0), timing);
    let tracks: Vec<(Track, &[u8])> = children(&buf)
        .into_iter()
        .filter(|(k, _)| *k == b"trak")
        .filter_map(|(_, t)| Some((track(t)?, t)))
        .collect();
    let audio = tracks.iter().find(|(t, _)| &t.handler == b"soun");
    let video = tracks.iter().find(|(t, _)| &t.handler == b"vide");
    let Some((t, _)) = audio.or(video) else {
        return Err(MediaError::Invalid(
            "MP4 without an audio or video track".into(),
        ));
    };
    if !media {
        problems.push("no media data (neither mdat nor moof)".into());
    }
    if let Some(off) = t.chunk_offsets.iter().find(|&&o| o >= src.len) {
        problems.push(format!(
            "truncated: sample data at byte {off} is past the end of the file ({} bytes)",
            src.len
        ));
    }
    let (scale, ticks) = match t.edited {
        Some(e) if movie_scale > 0 => (movie_scale, e),
        _ if t.timescale > 0 && t.duration > 0 => (t.timescale, t.duration),
        _ => (movie_scale, movie_duration),
    };
    let mut duration = samples_to_duration(ticks, scale);
    let sound = &t.handler == b"soun";
    if t.stts.samples > 0 {
        let held = samples_to_duration(t.stts.ticks, t.timescale);
        if duration > held + ROUNDING {
            problems.push(format!(
                "the header claims {:.3} s, the sample table holds {:.3} s",
                duration.as_secs_f64(),
                held.as_secs_f64()
            ));
            duration = held;
        }
        let longest = samples_to_duration(t.stts.longest, t.timescale);
        if sound && longest > MAX_AUDIO_SAMPLE {
            problems.push(format!(
                "the sample table says a sound sample lasts {:.3} s (no audio frame lasts over {} ms)",
                longest.as_secs_f64(),
                MAX_AUDIO_SAMPLE.as_millis()
            ));
        }
        if let Some((count, _)) = t.stsz
            && count != t.stts.samples
        {
            problems.push(format!(
                "the sample tables disagree: {} samples timed (stts), {count} sized (stsz)",
                t.stts.samples
            ));
        }
    }
    if let Some((_, bytes)) = t.stsz
        && bytes > src.len
    {
        problems.push(format!(
            "the sample sizes add up to {bytes} bytes, the file holds {}",
            src.len
        ));
    }
    let picture = video.map(|(v, _)| {
        (
            u32::from(u16be(&v.entry, 32)),
            u32::from(u16be(&v.entry, 34)),
        )
    });
    Ok(MediaInfo {
        container: "mp4",
        codec: codec(t.format),
        channels: match (sound, &t.format) {
            (false, _) => 0,
            (true, b"mp4a") => aac_channels(&t.entry).unwrap_or(u32::from(u16be(&t.entry, 24))),
            (true, _) => u32::from(u16be(&t.entry, 24)),
        },
        sample_rate: if sound { u32be(&t.entry, 32) >> 16 } else { 0 },
        duration,
        video: picture,
        problems,
    })
}
