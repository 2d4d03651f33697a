//! Real audio, generated as a stream: WAV (PCM 16-bit, G.711 µ-law), Ogg Opus, WebM Opus and
//! MP3.
//!
//! Recordings can be gigabytes, so nothing here holds a whole file: a [`MediaGen`] yields the
//! file in chunks, and the same generator gives the size and the SHA-256 the ground truth
//! reports. WAV samples are a tone computed once per second of audio and repeated. Opus has no
//! encoder here: we repeat one second of real libopus packets (fixtures/, made by
//! `make-opus-packets.py`) and write the Ogg or Matroska framing ourselves, so any duration is
//! exact to the sample (end trimming through the last granule position, RFC 7845 §4, or the
//! last block's DiscardPadding in WebM). MP3 repeats 30 real LAME frames (fixtures/, made by
//! `make-mp3-frames.sh`; 16 kHz mono, 36 ms each), so its duration is the stated one rounded
//! up to a whole frame.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A media format: both a recording's original codec and a `formatId` it can be transcoded to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Codec {
    /// RIFF/WAVE, PCM signed 16-bit little-endian.
    #[serde(rename = "WAV")]
    Wav,
    /// RIFF/WAVE, G.711 µ-law 8-bit.
    #[serde(rename = "WAV_ULAW")]
    WavUlaw,
    /// Ogg Opus (RFC 7845), 48 kHz, mono.
    #[serde(rename = "OGG_OPUS")]
    OggOpus,
    /// WebM (Matroska) Opus, 48 kHz, mono: the API's default `formatId`.
    #[serde(rename = "WEBM")]
    Webm,
    /// MPEG-2 layer III, 16 kHz, mono, 32 kbit/s CBR.
    #[serde(rename = "MP3")]
    Mp3,
    /// A screen recording: WebM, VP8 video (crate::natives). Not a `formatId`: what a screen
    /// recording is kept as.
    #[serde(rename = "SCREEN_WEBM")]
    ScreenWebm,
    /// An email recording: the message as EML (`emailFormatId=EML`).
    #[serde(rename = "EML")]
    Eml,
    /// A chat recording: a ZIP of its transcript (`chatFormatId=ZIP`).
    #[serde(rename = "CHAT_ZIP")]
    ChatZip,
    /// A messaging recording: a ZIP of its transcript and media (`messageFormatId=ZIP`).
    #[serde(rename = "MESSAGING_ZIP")]
    MessagingZip,
}

impl Codec {
    /// Every simulated codec.
    pub const ALL: [Codec; 5] = [
        Codec::Wav,
        Codec::WavUlaw,
        Codec::OggOpus,
        Codec::Webm,
        Codec::Mp3,
    ];

    /// The files of recordings that are not audio (never transcoded).
    pub const NATIVES: [Codec; 4] = [
        Codec::ScreenWebm,
        Codec::Eml,
        Codec::ChatZip,
        Codec::MessagingZip,
    ];

    /// The Genesys `formatId` spelling (natives: the simulator's own name, used in media URLs).
    pub fn format_id(self) -> &'static str {
        match self {
            Codec::Wav => "WAV",
            Codec::WavUlaw => "WAV_ULAW",
            Codec::OggOpus => "OGG_OPUS",
            Codec::Webm => "WEBM",
            Codec::Mp3 => "MP3",
            Codec::ScreenWebm => "SCREEN_WEBM",
            Codec::Eml => "EML",
            Codec::ChatZip => "CHAT_ZIP",
            Codec::MessagingZip => "MESSAGING_ZIP",
        }
    }

    /// Parses a `formatId` the simulator can transcode audio to.
    pub fn from_format_id(s: &str) -> Option<Codec> {
        Codec::ALL.into_iter().find(|c| c.format_id() == s)
    }

    /// Parses the format of a media URL (audio formats and natives).
    pub fn from_url_id(s: &str) -> Option<Codec> {
        Codec::ALL
            .into_iter()
            .chain(Codec::NATIVES)
            .find(|c| c.format_id() == s)
    }

    /// Whether this is the file of a recording that is not audio.
    pub fn is_native(self) -> bool {
        Codec::NATIVES.contains(&self)
    }

    /// The Content-Type the media is served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Codec::Wav | Codec::WavUlaw => "audio/wav",
            Codec::OggOpus => "audio/ogg",
            Codec::Webm => "audio/webm",
            Codec::Mp3 => "audio/mpeg",
            Codec::ScreenWebm => "video/webm",
            Codec::Eml => "message/rfc822",
            Codec::ChatZip | Codec::MessagingZip => "application/zip",
        }
    }

    /// The (sample rate, channels) this codec forces, if it does (`None`: the recording's own).
    pub fn fixed_format(self) -> Option<(u32, u16)> {
        match self {
            Codec::OggOpus | Codec::Webm => Some((48_000, 1)),
            Codec::Mp3 => Some((MP3_RATE, 1)),
            _ => None,
        }
    }
}

/// What one media file is: enough to regenerate it byte for byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaSpec {
    /// Container and codec.
    pub codec: Codec,
    /// Samples per second (WAV only; Opus is 48 kHz).
    pub sample_rate: u32,
    /// 1 or 2 (WAV only; Opus is mono).
    pub channels: u16,
    /// What the audio really lasts, milliseconds.
    pub duration_ms: u64,
    /// Tone frequency, Hz.
    pub tone_hz: u32,
    /// Seeds the Ogg stream serial number (natives: their contents).
    pub serial: u32,
    /// When the recording starts, Unix ms (natives: their messages' times).
    pub start_ms: i64,
    /// Natives: damaged (a ZIP member changed after its CRC, an EML cut short).
    pub damaged: bool,
    /// What the container's header claims the audio lasts, milliseconds, when it lies (the
    /// `header-lie` fault): the Ogg Opus last granule position, the WebM `Duration`, the WAV
    /// data size. `None`: the header tells the truth.
    pub claimed_ms: Option<u64>,
}

const CHUNK: usize = 64 * 1024;
const OPUS_PRE_SKIP: u64 = 312;
const OPUS_FRAME: u64 = 960; // 20 ms at 48 kHz
const OPUS_PACKETS_PER_PAGE: u64 = 50;
static OPUS_PACKETS: &[u8] = include_bytes!("../fixtures/tone-440hz-1s.opuspackets");
static MP3_FRAMES: &[u8] = include_bytes!("../fixtures/tone-440hz-16k-32k.mp3frames");
const MP3_RATE: u32 = 16_000;
const MP3_FRAME_SAMPLES: u64 = 576;
const MP3_FRAME_BYTES: u64 = 144;
/// WebM clusters hold one second: one pass over the Opus fixture's 50 packets.
const WEBM_CLUSTER_PACKETS: u64 = 50;

impl MediaSpec {
    /// This audio transcoded to `codec`: the same duration and tone; Opus and MP3 at their
    /// fixed rate and layout here (their audio comes from one encode).
    pub fn transcoded(self, codec: Codec) -> MediaSpec {
        match codec.fixed_format() {
            Some((sample_rate, channels)) => MediaSpec {
                codec,
                sample_rate,
                channels,
                ..self
            },
            None => MediaSpec { codec, ..self },
        }
    }

    fn frames(&self) -> u64 {
        self.duration_ms * u64::from(self.sample_rate) / 1000
    }

    /// What the header says the audio lasts, milliseconds.
    fn header_ms(&self) -> u64 {
        self.claimed_ms.unwrap_or(self.duration_ms)
    }

    fn wav_data_len(&self) -> u64 {
        self.wav_bytes(self.frames())
    }

    fn wav_bytes(&self, frames: u64) -> u64 {
        let bps = match self.codec {
            Codec::Wav => 2,
            _ => 1,
        };
        frames * u64::from(self.channels) * bps
    }

    /// Size of the file in bytes, computed without generating it.
    pub fn size(&self) -> u64 {
        match self.codec {
            Codec::Wav => 44 + self.wav_data_len(),
            Codec::WavUlaw => {
                let data = self.wav_data_len();
                58 + data + (data & 1)
            }
            Codec::OggOpus => {
                let head = 27 + 1 + 19 + 27 + 1 + opus_tags().len() as u64;
                let packets = opus_packet_count(self.duration_ms);
                let lens = opus_packets();
                let mut total = head;
                let mut p = 0;
                while p < packets {
                    let n = (packets - p).min(OPUS_PACKETS_PER_PAGE);
                    for i in p..p + n {
                        let len = lens[(i % lens.len() as u64) as usize].len() as u64;
                        total += len + len / 255 + 1;
                    }
                    total += 27;
                    p += n;
                }
                total
            }
            Codec::Webm => {
                let total = opus_packet_count(self.duration_ms);
                let clusters = total.div_ceil(WEBM_CLUSTER_PACKETS);
                let mut size = webm_header(self).len() as u64;
                if clusters > 1 {
                    size += (clusters - 1) * webm_cluster_len(0, WEBM_CLUSTER_PACKETS, false);
                }
                let first = (clusters - 1) * WEBM_CLUSTER_PACKETS;
                size + webm_cluster_len(first, total - first, true)
            }
            Codec::Mp3 => mp3_frame_count(self.duration_ms) * MP3_FRAME_BYTES,
            _ => crate::natives::bytes(self).len() as u64,
        }
    }

    /// A generator of the file's bytes.
    pub fn generator(&self) -> MediaGen {
        MediaGen {
            spec: *self,
            stage: 0,
            pos: 0,
            table: Vec::new(),
        }
    }

    /// SHA-256 (lowercase hex) and size, by generating the file once.
    pub fn digest(&self) -> (String, u64) {
        let mut h = Sha256::new();
        let mut n = 0u64;
        let mut g = self.generator();
        while let Some(chunk) = g.next_chunk() {
            n += chunk.len() as u64;
            h.update(&chunk);
        }
        (hex::encode(h.finalize()), n)
    }
}

/// Yields a media file in chunks of at most 64 KiB.
pub struct MediaGen {
    spec: MediaSpec,
    stage: u8,
    pos: u64,
    table: Vec<u8>,
}

impl MediaGen {
    /// The next chunk, or `None` at the end of the file.
    pub fn next_chunk(&mut self) -> Option<Bytes> {
        match self.spec.codec {
            Codec::Wav | Codec::WavUlaw => self.next_wav(),
            Codec::OggOpus => self.next_ogg(),
            Codec::Webm => self.next_webm(),
            Codec::Mp3 => self.next_mp3(),
            _ => self.next_native(),
        }
    }

    /// Natives are small: built whole once, then yielded in chunks.
    fn next_native(&mut self) -> Option<Bytes> {
        if self.stage == 0 {
            self.stage = 1;
            self.table = crate::natives::bytes(&self.spec).to_vec();
        }
        let at = self.pos as usize;
        if at >= self.table.len() {
            return None;
        }
        let end = (at + CHUNK).min(self.table.len());
        self.pos = end as u64;
        Some(Bytes::copy_from_slice(&self.table[at..end]))
    }

    fn next_mp3(&mut self) -> Option<Bytes> {
        let total = mp3_frame_count(self.spec.duration_ms);
        if self.pos >= total {
            return None;
        }
        let per_chunk = CHUNK as u64 / MP3_FRAME_BYTES;
        let n = (total - self.pos).min(per_chunk);
        let frames = MP3_FRAMES.len() as u64 / MP3_FRAME_BYTES;
        let mut out = BytesMut::with_capacity((n * MP3_FRAME_BYTES) as usize);
        for i in self.pos..self.pos + n {
            let at = ((i % frames) * MP3_FRAME_BYTES) as usize;
            out.put_slice(&MP3_FRAMES[at..at + MP3_FRAME_BYTES as usize]);
        }
        self.pos += n;
        Some(out.freeze())
    }

    fn next_webm(&mut self) -> Option<Bytes> {
        if self.stage == 0 {
            self.stage = 1;
            return Some(webm_header(&self.spec));
        }
        let total = opus_packet_count(self.spec.duration_ms);
        if self.pos >= total {
            return None;
        }
        let n = (total - self.pos).min(WEBM_CLUSTER_PACKETS);
        let last = self.pos + n == total;
        let trim = if last {
            total * OPUS_FRAME - OPUS_PRE_SKIP - self.spec.duration_ms * 48
        } else {
            0
        };
        let c = webm_cluster(self.pos, n, last.then_some(trim));
        self.pos += n;
        Some(c)
    }

    fn next_wav(&mut self) -> Option<Bytes> {
        let s = self.spec;
        if self.stage == 0 {
            self.stage = 1;
            self.table = wav_second(&s);
            return Some(wav_header(&s));
        }
        let total = s.wav_data_len();
        let padded = if s.codec == Codec::WavUlaw {
            total + (total & 1)
        } else {
            total
        };
        if self.pos >= padded {
            return None;
        }
        let n = (padded - self.pos).min(CHUNK as u64) as usize;
        let mut out = BytesMut::with_capacity(n);
        let tl = self.table.len() as u64;
        while out.len() < n {
            if self.pos >= total {
                out.put_u8(0); // RIFF pad byte
                self.pos += 1;
                continue;
            }
            let off = (self.pos % tl) as usize;
            let take = (self.table.len() - off)
                .min(n - out.len())
                .min((total - self.pos) as usize);
            out.extend_from_slice(&self.table[off..off + take]);
            self.pos += take as u64;
        }
        Some(out.freeze())
    }

    fn next_ogg(&mut self) -> Option<Bytes> {
        let serial = self.spec.serial;
        match self.stage {
            0 => {
                self.stage = 1;
                Some(ogg_page(0x02, 0, serial, 0, &[&opus_head()]))
            }
            1 => {
                self.stage = 2;
                Some(ogg_page(0x00, 0, serial, 1, &[&opus_tags()]))
            }
            _ => {
                let total = opus_packet_count(self.spec.duration_ms);
                if self.pos >= total {
                    return None;
                }
                let packets = opus_packets();
                let n = (total - self.pos).min(OPUS_PACKETS_PER_PAGE);
                let page: Vec<&[u8]> = (self.pos..self.pos + n)
                    .map(|i| packets[(i % packets.len() as u64) as usize])
                    .collect();
                self.pos += n;
                let last = self.pos == total;
                let granule = if last {
                    OPUS_PRE_SKIP + self.spec.header_ms() * 48
                } else {
                    self.pos * OPUS_FRAME
                };
                let seq = 2 + (self.pos - 1) / OPUS_PACKETS_PER_PAGE;
                let flags = if last { 0x04 } else { 0x00 };
                Some(ogg_page(flags, granule, serial, seq as u32, &page))
            }
        }
    }
}

fn wav_header(s: &MediaSpec) -> Bytes {
    // The sizes the header states (a lying header states more than follows).
    let frames = s.header_ms() * u64::from(s.sample_rate) / 1000;
    let data = s.wav_bytes(frames);
    let mut h = BytesMut::with_capacity(58);
    let ch = u32::from(s.channels);
    match s.codec {
        Codec::Wav => {
            h.put_slice(b"RIFF");
            h.put_u32_le((36 + data) as u32);
            h.put_slice(b"WAVEfmt ");
            h.put_u32_le(16);
            h.put_u16_le(1); // WAVE_FORMAT_PCM
            h.put_u16_le(s.channels);
            h.put_u32_le(s.sample_rate);
            h.put_u32_le(s.sample_rate * ch * 2);
            h.put_u16_le(s.channels * 2);
            h.put_u16_le(16);
        }
        _ => {
            let padded = data + (data & 1);
            h.put_slice(b"RIFF");
            h.put_u32_le((50 + padded) as u32);
            h.put_slice(b"WAVEfmt ");
            h.put_u32_le(18);
            h.put_u16_le(7); // WAVE_FORMAT_MULAW
            h.put_u16_le(s.channels);
            h.put_u32_le(s.sample_rate);
            h.put_u32_le(s.sample_rate * ch);
            h.put_u16_le(s.channels);
            h.put_u16_le(8);
            h.put_u16_le(0); // cbSize
            h.put_slice(b"fact");
            h.put_u32_le(4);
            h.put_u32_le(frames as u32);
        }
    }
    h.put_slice(b"data");
    h.put_u32_le(data as u32);
    h.freeze()
}

/// One second of sample data: a tone on the left (and a fifth above on the right), with the
/// last quarter second silent so the audio is not one flat line.
fn wav_second(s: &MediaSpec) -> Vec<u8> {
    let sr = s.sample_rate as usize;
    let mut out = Vec::with_capacity(sr * usize::from(s.channels) * 2);
    for n in 0..sr {
        let silent = n >= sr * 3 / 4;
        for c in 0..s.channels {
            let f = if c == 0 { s.tone_hz } else { s.tone_hz * 3 / 2 };
            let v = if silent {
                0.0
            } else {
                0.3 * (2.0 * std::f64::consts::PI * f64::from(f) * n as f64 / sr as f64).sin()
            };
            let pcm = (v * 32767.0) as i16;
            match s.codec {
                Codec::Wav => out.extend_from_slice(&pcm.to_le_bytes()),
                _ => out.push(linear_to_ulaw(pcm)),
            }
        }
    }
    out
}

/// G.711 µ-law encoding of one 16-bit sample.
fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

fn mp3_frame_count(duration_ms: u64) -> u64 {
    (duration_ms * u64::from(MP3_RATE) / 1000).div_ceil(MP3_FRAME_SAMPLES)
}

/// An EBML element with an 8-byte size field (valid for any size; keeps sizes easy to compute).
pub(crate) fn ebml(out: &mut BytesMut, id: &[u8], payload: &[u8]) {
    out.put_slice(id);
    out.put_u8(0x01);
    out.put_slice(&(payload.len() as u64).to_be_bytes()[1..]);
    out.put_slice(payload);
}

pub(crate) fn ebml_uint(out: &mut BytesMut, id: &[u8], v: u64) {
    ebml(out, id, &v.to_be_bytes());
}

pub(crate) fn ebml_float(out: &mut BytesMut, id: &[u8], v: f64) {
    ebml(out, id, &v.to_be_bytes());
}

/// Element overhead with an 8-byte size: the id plus 8.
const fn ebml_len(id_len: u64, payload: u64) -> u64 {
    id_len + 8 + payload
}

const CLUSTER_ID: [u8; 4] = [0x1F, 0x43, 0xB6, 0x75];

/// A WebM file's EBML header element, written into `out`.
pub(crate) fn webm_ebml_header(out: &mut BytesMut) {
    let mut e = BytesMut::new();
    ebml_uint(&mut e, &[0x42, 0x86], 1); // EBMLVersion
    ebml_uint(&mut e, &[0x42, 0xF7], 1); // EBMLReadVersion
    ebml_uint(&mut e, &[0x42, 0xF2], 4); // EBMLMaxIDLength
    ebml_uint(&mut e, &[0x42, 0xF3], 8); // EBMLMaxSizeLength
    ebml(&mut e, &[0x42, 0x82], b"webm"); // DocType
    ebml_uint(&mut e, &[0x42, 0x87], 4); // DocTypeVersion
    ebml_uint(&mut e, &[0x42, 0x85], 2); // DocTypeReadVersion
    ebml(out, &[0x1A, 0x45, 0xDF, 0xA3], &e);
}

/// EBML header, Segment header (its size covers the whole rest of the file), Info and Tracks.
fn webm_header(s: &MediaSpec) -> Bytes {
    let mut h = BytesMut::new();
    webm_ebml_header(&mut h);

    let mut body = BytesMut::new();
    let mut info = BytesMut::new();
    ebml_uint(&mut info, &[0x2A, 0xD7, 0xB1], 1_000_000); // TimestampScale: 1 ms
    // Duration (ms) includes the codec delay, as libavformat writes it.
    ebml_float(
        &mut info,
        &[0x44, 0x89],
        s.header_ms() as f64 + OPUS_PRE_SKIP as f64 / 48.0,
    );
    ebml(&mut info, &[0x4D, 0x80], b"custos-sim"); // MuxingApp
    ebml(&mut info, &[0x57, 0x41], b"custos-sim"); // WritingApp
    ebml(&mut body, &[0x15, 0x49, 0xA9, 0x66], &info);
    let mut audio = BytesMut::new();
    ebml_float(&mut audio, &[0xB5], 48_000.0); // SamplingFrequency
    ebml_uint(&mut audio, &[0x9F], 1); // Channels
    let mut track = BytesMut::new();
    ebml_uint(&mut track, &[0xD7], 1); // TrackNumber
    ebml_uint(&mut track, &[0x73, 0xC5], u64::from(s.serial) + 1); // TrackUID
    ebml_uint(&mut track, &[0x83], 2); // TrackType: audio
    ebml(&mut track, &[0x86], b"A_OPUS"); // CodecID
    ebml(&mut track, &[0x63, 0xA2], &opus_head()); // CodecPrivate
    ebml_uint(
        &mut track,
        &[0x56, 0xAA],
        OPUS_PRE_SKIP * 1_000_000_000 / 48_000,
    ); // CodecDelay, ns
    ebml_uint(&mut track, &[0x56, 0xBB], 80_000_000); // SeekPreRoll, ns
    ebml(&mut track, &[0xE1], &audio);
    let mut tracks = BytesMut::new();
    ebml(&mut tracks, &[0xAE], &track);
    ebml(&mut body, &[0x16, 0x54, 0xAE, 0x6B], &tracks);

    let total = opus_packet_count(s.duration_ms);
    let clusters = total.div_ceil(WEBM_CLUSTER_PACKETS);
    let first_last = (clusters - 1) * WEBM_CLUSTER_PACKETS;
    let segment = body.len() as u64
        + (clusters - 1) * webm_cluster_len(0, WEBM_CLUSTER_PACKETS, false)
        + webm_cluster_len(first_last, total - first_last, true);
    h.put_slice(&[0x18, 0x53, 0x80, 0x67]); // Segment
    h.put_u8(0x01);
    h.put_slice(&segment.to_be_bytes()[1..]);
    h.put_slice(&body);
    h.freeze()
}

/// Bytes of the cluster holding packets `first .. first + n` (the last block with its padding).
fn webm_cluster_len(first: u64, n: u64, last: bool) -> u64 {
    let packets = opus_packets();
    let mut payload = ebml_len(1, 8); // Timestamp
    for i in first..first + n {
        let len = packets[(i % packets.len() as u64) as usize].len() as u64;
        payload += if last && i + 1 == first + n {
            // BlockGroup { Block, DiscardPadding }
            ebml_len(1, ebml_len(1, 4 + len) + ebml_len(2, 8))
        } else {
            ebml_len(1, 4 + len) // SimpleBlock
        };
    }
    ebml_len(4, payload)
}

/// The cluster holding packets `first .. first + n`; `discard` = samples to trim from the last.
fn webm_cluster(first: u64, n: u64, discard: Option<u64>) -> Bytes {
    let packets = opus_packets();
    let mut c = BytesMut::new();
    let start_ms = first * 20;
    ebml_uint(&mut c, &[0xE7], start_ms); // Timestamp
    for i in first..first + n {
        let p = packets[(i % packets.len() as u64) as usize];
        let mut block = BytesMut::with_capacity(4 + p.len());
        block.put_u8(0x81); // track 1
        block.put_i16((i * 20 - start_ms) as i16); // relative timestamp, ms
        match discard {
            Some(trim) if i + 1 == first + n => {
                block.put_u8(0x00);
                block.put_slice(p);
                let mut group = BytesMut::new();
                ebml(&mut group, &[0xA1], &block); // Block
                // DiscardPadding, ns: the samples past the end of the audio.
                ebml_uint(&mut group, &[0x75, 0xA2], trim * 1_000_000_000 / 48_000);
                ebml(&mut c, &[0xA0], &group);
            }
            _ => {
                block.put_u8(0x80); // keyframe
                block.put_slice(p);
                ebml(&mut c, &[0xA3], &block); // SimpleBlock
            }
        }
    }
    let mut out = BytesMut::with_capacity(12 + c.len());
    ebml(&mut out, &CLUSTER_ID, &c);
    out.freeze()
}

fn opus_packet_count(duration_ms: u64) -> u64 {
    (OPUS_PRE_SKIP + duration_ms * 48).div_ceil(OPUS_FRAME)
}

fn opus_packets() -> Vec<&'static [u8]> {
    let mut out = Vec::with_capacity(50);
    let mut p = 0;
    while p + 2 <= OPUS_PACKETS.len() {
        let len = u16::from_le_bytes([OPUS_PACKETS[p], OPUS_PACKETS[p + 1]]) as usize;
        out.push(&OPUS_PACKETS[p + 2..p + 2 + len]);
        p += 2 + len;
    }
    out
}

fn opus_head() -> Vec<u8> {
    let mut h = Vec::with_capacity(19);
    h.extend_from_slice(b"OpusHead");
    h.push(1); // version
    h.push(1); // channels
    h.extend_from_slice(&(OPUS_PRE_SKIP as u16).to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes()); // input sample rate (informational)
    h.extend_from_slice(&0i16.to_le_bytes()); // output gain
    h.push(0); // channel mapping family
    h
}

fn opus_tags() -> Vec<u8> {
    let vendor = b"custos-sim";
    let mut t = Vec::new();
    t.extend_from_slice(b"OpusTags");
    t.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    t.extend_from_slice(vendor);
    t.extend_from_slice(&0u32.to_le_bytes());
    t
}

fn ogg_page(flags: u8, granule: u64, serial: u32, seq: u32, packets: &[&[u8]]) -> Bytes {
    let mut lacing = Vec::new();
    for p in packets {
        lacing.extend(std::iter::repeat_n(255u8, p.len() / 255));
        lacing.push((p.len() % 255) as u8);
    }
    assert!(lacing.len() <= 255, "too many segments for one Ogg page");
    let body: usize = packets.iter().map(|p| p.len()).sum();
    let mut page = BytesMut::with_capacity(27 + lacing.len() + body);
    page.put_slice(b"OggS");
    page.put_u8(0);
    page.put_u8(flags);
    page.put_u64_le(granule);
    page.put_u32_le(serial);
    page.put_u32_le(seq);
    page.put_u32_le(0); // CRC, filled below
    page.put_u8(lacing.len() as u8);
    page.put_slice(&lacing);
    for p in packets {
        page.put_slice(p);
    }
    let crc = ogg_crc(&page);
    page[22..26].copy_from_slice(&crc.to_le_bytes());
    page.freeze()
}

/// The Ogg CRC-32: polynomial 0x04C11DB7, no reflection, initial value 0.
fn ogg_crc(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut r = (i as u32) << 24;
            for _ in 0..8 {
                r = if r & 0x8000_0000 != 0 {
                    (r << 1) ^ 0x04C1_1DB7
                } else {
                    r << 1
                };
            }
            *e = r;
        }
        t
    });
    data.iter().fold(0u32, |crc, &b| {
        (crc << 8) ^ table[((crc >> 24) as u8 ^ b) as usize]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(codec: Codec, ms: u64, channels: u16) -> MediaSpec {
        MediaSpec {
            codec,
            sample_rate: 8000,
            channels,
            duration_ms: ms,
            tone_hz: 440,
            serial: 7,
            start_ms: 0,
            damaged: false,
            claimed_ms: None,
        }
    }

    #[test]
    fn computed_size_equals_generated_size() {
        for codec in Codec::ALL {
            for ms in [1, 999, 1000, 1001, 5_000, 61_234] {
                for ch in [1, 2] {
                    let s = spec(codec, ms, ch);
                    assert_eq!(s.size(), s.digest().1, "{codec:?} {ms} ms {ch} ch");
                }
            }
        }
    }

    #[test]
    fn ulaw_matches_g711_reference_points() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(32767), 0x80);
        assert_eq!(linear_to_ulaw(-32768), 0x00);
    }

    #[test]
    fn ogg_crc_matches_libogg() {
        // Ogg's CRC is CRC-32/CKSUM without the final inversion, so its check value for
        // "123456789" is !0x765E7680 (ffprobe and the ogg crate verify every page we write).
        assert_eq!(ogg_crc(b""), 0);
        assert_eq!(ogg_crc(b"123456789"), 0x89A1_897F);
    }

    #[test]
    fn opus_fixture_has_fifty_packets() {
        assert_eq!(opus_packets().len(), 50);
    }

    #[test]
    fn wav_header_fields() {
        let h = wav_header(&spec(Codec::Wav, 1000, 2));
        assert_eq!(&h[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(h[40..44].try_into().unwrap()), 32_000);
    }
}
