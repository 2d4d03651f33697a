//! MP3 (MPEG-1/2/2.5, layers I–III): skip ID3v2, find the first frame (confirmed by the next),
//! read a Xing/Info tag (with LAME's encoder delay and padding) or a VBRI tag, then walk every
//! frame header to the end. The walk is what the duration rests on; the tags only trim the
//! gapless delay and padding and are checked against it (a Xing frame count larger than the
//! frames present means the file was cut short).

use std::io::{Read, Seek};

use super::info::{MediaError, MediaInfo};
use super::read::{Src, samples_to_duration, u32be};

/// How far past the ID3 tag we look for the first frame.
const SYNC_SEARCH: u64 = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    /// 1 = MPEG-1, 2 = MPEG-2, 25 = MPEG-2.5.
    version: u8,
    layer: u8,
    rate: u32,
    channels: u32,
    /// Frame length in bytes, header included.
    len: u32,
    /// Samples per channel in the frame.
    samples: u32,
}

fn parse(b: [u8; 4]) -> Option<Header> {
    if b[0] != 0xFF || b[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = match (b[1] >> 3) & 3 {
        0 => 25,
        2 => 2,
        3 => 1,
        _ => return None,
    };
    let layer = match (b[1] >> 1) & 3 {
        1 => 3,
        2 => 2,
        3 => 1,
        _ => return None,
    };
    let br_index = usize::from(b[2] >> 4);
    let sr_index = usize::from((b[2] >> 2) & 3);
    if br_index == 0 || br_index == 15 || sr_index == 3 {
        return None; // free format is not supported; 15 and 3 are invalid
    }
    const V1: [[u32; 15]; 3] = [
        [
            0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
        ],
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
        ],
        [
            0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ],
    ];
    const V2_L1: [u32; 15] = [
        0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
    ];
    const V2_L23: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    let kbps = match (version, layer) {
        (1, l) => V1[usize::from(l - 1)][br_index],
        (_, 1) => V2_L1[br_index],
        _ => V2_L23[br_index],
    };
    let rate = match version {
        1 => [44_100, 48_000, 32_000][sr_index],
        2 => [22_050, 24_000, 16_000][sr_index],
        _ => [11_025, 12_000, 8_000][sr_index],
    };
    let pad = u32::from((b[2] >> 1) & 1);
    let bps = kbps * 1000;
    let (len, samples) = match (layer, version) {
        (1, _) => ((12 * bps / rate + pad) * 4, 384),
        (2, _) => (144 * bps / rate + pad, 1152),
        (_, 1) => (144 * bps / rate + pad, 1152),
        _ => (72 * bps / rate + pad, 576),
    };
    let channels = if b[3] >> 6 == 3 { 1 } else { 2 };
    Some(Header {
        version,
        layer,
        rate,
        channels,
        len,
        samples,
    })
}

/// What the first frame's Xing/Info/VBRI tag says.
#[derive(Default)]
struct Tag {
    frames: Option<u32>,
    delay: u32,
    padding: u32,
}

fn read_tag<R: Read + Seek>(
    src: &mut Src<R>,
    at: u64,
    h: &Header,
) -> Result<Option<Tag>, MediaError> {
    let mut f = vec![0u8; (h.len as usize).min(512)];
    let n = src.read_at(at, &mut f)?;
    f.truncate(n);
    let side = match (h.version, h.channels) {
        (1, 1) => 17,
        (1, _) => 32,
        (_, 1) => 9,
        _ => 17,
    };
    let x = 4 + side;
    if let Some(id) = f.get(x..x + 4)
        && (id == b"Xing" || id == b"Info")
    {
        let flags = u32be(&f, x + 4);
        let mut p = x + 8;
        let mut tag = Tag::default();
        if flags & 1 != 0 {
            tag.frames = Some(u32be(&f, p));
            p += 4;
        }
        if flags & 2 != 0 {
            p += 4;
        }
        if flags & 4 != 0 {
            p += 100;
        }
        if flags & 8 != 0 {
            p += 4;
        }
        // LAME extension: 9-byte encoder string, then the delay/padding 12+12 bits at +21.
        if let Some(d) = f.get(p + 21..p + 24)
            && f.get(p..p + 4)
                .is_some_and(|e| e == b"LAME" || e == b"Lavc")
        {
            tag.delay = (u32::from(d[0]) << 4) | (u32::from(d[1]) >> 4);
            tag.padding = ((u32::from(d[1]) & 0xF) << 8) | u32::from(d[2]);
        }
        return Ok(Some(tag));
    }
    if f.get(36..40) == Some(b"VBRI") {
        return Ok(Some(Tag {
            frames: Some(u32be(&f, 36 + 14)),
            ..Tag::default()
        }));
    }
    Ok(None)
}

/// Where the audio starts: after every ID3v2 tag (there may be more than one).
fn skip_id3v2<R: Read + Seek>(src: &mut Src<R>) -> Result<u64, MediaError> {
    let mut pos = 0u64;
    while let Some(h) = src.array::<10>(pos)? {
        if &h[..3] != b"ID3" {
            break;
        }
        let size = h[6..10]
            .iter()
            .fold(0u64, |a, b| (a << 7) | u64::from(b & 0x7F));
        let footer = if h[5] & 0x10 != 0 { 10 } else { 0 };
        pos += 10 + size + footer;
    }
    Ok(pos)
}

/// The first frame at or after `start`: its offset and header.
fn first_frame<R: Read + Seek>(src: &mut Src<R>, start: u64) -> Result<(u64, Header), MediaError> {
    // The first frame: a valid header whose successor is valid too (or ends the file).
    let mut pos = start;
    let first = loop {
        if pos >= src.len || pos - start > SYNC_SEARCH {
            return Err(MediaError::Invalid("MP3: no MPEG audio frame found".into()));
        }
        if let Some(h) = src.array::<4>(pos)?.and_then(parse) {
            let next = pos + u64::from(h.len);
            let confirmed = next >= src.len
                || src
                    .array::<4>(next)?
                    .and_then(parse)
                    .is_some_and(|n| n.version == h.version && n.layer == h.layer);
            if confirmed {
                break h;
            }
        }
        pos += 1;
    };
    Ok((pos, first))
}

pub(super) fn probe<R: Read + Seek>(src: &mut Src<R>) -> Result<MediaInfo, MediaError> {
    let mut problems = Vec::new();
    let start = skip_id3v2(src)?;
    let (pos, first) = first_frame(src, start)?;
    if pos > start {
        problems.push(format!(
            "{} bytes of junk before the first frame",
            pos - start
        ));
    }
    let tag = read_tag(src, pos, &first)?;
    let mut frames = 0u64;
    let mut samples = 0u64;
    let mut at = pos;
    if tag.is_some() {
        at += u64::from(first.len); // the tag frame holds no audio
    }
    loop {
        if at >= src.len {
            break;
        }
        let Some(b) = src.array::<4>(at)? else {
            problems.push(format!("{} stray bytes at the end", src.len - at));
            break;
        };
        if &b[..3] == b"TAG" || &b == b"APET" || &b == b"LYRI" {
            break; // trailing ID3v1 / APE / Lyrics tags
        }
        let Some(h) = parse(b) else {
            problems.push(format!(
                "no MPEG frame at byte {at} ({} bytes to the end)",
                src.len - at
            ));
            break;
        };
        if h.version != first.version || h.layer != first.layer || h.rate != first.rate {
            problems.push(format!(
                "frame at byte {at} changes stream parameters (MPEG {} layer {} {} Hz)",
                h.version, h.layer, h.rate
            ));
            break;
        }
        if at + u64::from(h.len) > src.len {
            problems.push(format!(
                "truncated: the last frame needs {} bytes, {} remain",
                h.len,
                src.len - at
            ));
            break;
        }
        frames += 1;
        samples += u64::from(h.samples);
        at += u64::from(h.len);
    }
    if frames == 0 {
        return Err(MediaError::Invalid("MP3 with no audio frames".into()));
    }
    let tag = tag.unwrap_or_default();
    let mut trim = u64::from(tag.delay);
    match tag.frames.map(u64::from) {
        Some(n) if n == frames => trim += u64::from(tag.padding),
        Some(n) if n > frames => problems.push(format!(
            "truncated: the Xing/VBRI header states {n} frames, the file holds {frames}"
        )),
        Some(n) => problems.push(format!(
            "the Xing/VBRI header states {n} frames, the file holds {frames}"
        )),
        None => {}
    }
    let codec = match first.layer {
        3 => "mp3",
        2 => "mp2",
        _ => "mp1",
    };
    Ok(MediaInfo {
        container: "mp3",
        codec: codec.to_owned(),
        channels: first.channels,
        sample_rate: first.rate,
        duration: samples_to_duration(samples.saturating_sub(trim), first.rate),
        video: None,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_headers() {
        // MPEG-1 layer III, 128 kbps, 44.1 kHz, stereo: 417 bytes, 1152 samples.
        let h = parse([0xFF, 0xFB, 0x90, 0x00]).unwrap();
        assert_eq!(
            (h.version, h.layer, h.rate, h.len, h.samples),
            (1, 3, 44_100, 417, 1152)
        );
        // MPEG-2.5 layer III, 32 kbps, 8 kHz, mono: 288 bytes, 576 samples.
        let h = parse([0xFF, 0xE3, 0x48, 0xC0]).unwrap();
        assert_eq!(
            (h.version, h.rate, h.channels, h.len, h.samples),
            (25, 8000, 1, 288, 576)
        );
        for bad in [
            [0xFF, 0xFB, 0xF0, 0],
            [0xFF, 0xFB, 0x0C, 0],
            [0xFF, 0xF9, 0x90, 0],
            [0xFE, 0xFB, 0x90, 0],
        ] {
            assert_eq!(parse(bad), None, "{bad:02x?}");
        }
    }
}
