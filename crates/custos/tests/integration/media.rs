//! The media reader against real files made by ffmpeg (installed by `.ci/run`), checked against
//! a decode-based reference (ffmpeg decoding every sample) and against ffprobe, plus damaged,
//! hostile and huge inputs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use custos::media::{MediaError, probe, probe_file};

use crate::common::ffprobe_seconds;
use proptest::prelude::*;

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg must be installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a decoder really outputs: every sample decoded (resampled to 48 kHz mono, which keeps
/// the count), in seconds. ffmpeg applies the gapless trims and pre-skip a player would.
fn decoded_seconds(f: &Path) -> f64 {
    let mut child = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(f)
        .args(["-f", "s16le", "-ac", "1", "-ar", "48000", "-"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ffmpeg");
    let mut n = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    let mut out = child.stdout.take().unwrap();
    loop {
        match out.read(&mut buf).unwrap() {
            0 => break,
            k => n += k as u64,
        }
    }
    child.wait().unwrap();
    n as f64 / 2.0 / 48_000.0
}

/// Every format Genesys delivers, as (name, extension, ffmpeg output options).
const FORMATS: &[(&str, &str, &[&str])] = &[
    ("wav-s16", "wav", &["-c:a", "pcm_s16le"]),
    ("wav-ulaw", "wav", &["-c:a", "pcm_mulaw"]),
    ("wav-alaw", "wav", &["-c:a", "pcm_alaw"]),
    ("rf64", "wav", &["-c:a", "pcm_s16le", "-rf64", "always"]),
    ("mp3-cbr", "mp3", &["-c:a", "libmp3lame", "-b:a", "32k"]),
    ("mp3-vbr", "mp3", &["-c:a", "libmp3lame", "-q:a", "6"]),
    (
        "mp3-noxing",
        "mp3",
        &["-c:a", "libmp3lame", "-b:a", "32k", "-write_xing", "0"],
    ),
    ("ogg-opus", "ogg", &["-c:a", "libopus", "-b:a", "16k"]),
    ("ogg-vorbis", "ogg", &["-c:a", "libvorbis"]),
    ("webm-opus", "webm", &["-c:a", "libopus", "-b:a", "16k"]),
    ("webm-vorbis", "webm", &["-c:a", "libvorbis"]),
    ("mp4-aac", "m4a", &["-c:a", "aac"]),
];

/// Signals: (duration s, sample rate, channels, tone or silence).
const SIGNALS: &[(f64, u32, u32, bool)] = &[
    (0.3, 8_000, 1, true),
    (5.0, 16_000, 2, false),
    (5.0, 48_000, 1, true),
];

fn make(dir: &Path, fmt: &(&str, &str, &[&str]), sig: (f64, u32, u32, bool)) -> PathBuf {
    let (d, rate, ch, tone) = sig;
    let name = format!(
        "{}-{d}s-{rate}-{ch}ch-{}.{}",
        fmt.0,
        if tone { "tone" } else { "silence" },
        fmt.1
    );
    let path = dir.join(name);
    let src = if tone {
        format!("sine=f=440:d={d}:r={rate}")
    } else {
        format!("anullsrc=r={rate}:cl=mono:d={d}")
    };
    let mut args: Vec<&str> = vec!["-f", "lavfi", "-i", &src];
    let chs = ch.to_string();
    args.extend(["-ac", &chs]);
    args.extend(fmt.2.iter().copied());
    let p = path.to_str().unwrap().to_owned();
    args.push(&p);
    ffmpeg(&args);
    path
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("custos-media-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Files made once for the tests that only read them.
fn corpus() -> &'static Vec<PathBuf> {
    static C: OnceLock<Vec<PathBuf>> = OnceLock::new();
    C.get_or_init(|| {
        let dir = tmp("corpus");
        let jobs: Vec<_> = FORMATS
            .iter()
            .flat_map(|f| SIGNALS.iter().map(move |s| (f, *s)))
            .collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = jobs
                .chunks(jobs.len().div_ceil(2))
                .map(|chunk| {
                    let dir = &dir;
                    s.spawn(move || {
                        chunk
                            .iter()
                            .map(|(f, sig)| make(dir, f, *sig))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        })
    })
}

#[test]
fn every_format_agrees_with_decoding_within_50_ms_and_with_ffprobe() {
    let mut report = Vec::new();
    for f in corpus() {
        let info = probe_file(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(
            info.problems.is_empty(),
            "{}: {:?}",
            f.display(),
            info.problems
        );
        let ours = info.seconds();
        let decoded = decoded_seconds(f);
        let probed = ffprobe_seconds(f);
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        report.push(format!(
            "{name}: ours {ours:.4} decoded {decoded:.4} ffprobe {probed:.4}"
        ));
        // ffmpeg's AAC decode keeps the encoder's end padding that the MP4 edit list cuts (up
        // to one 1024-sample frame and a bit: 0.09 s at 8 kHz); ffprobe, below, reads the edit
        // list as we do.
        let decode_tol = if name.starts_with("mp4-aac") {
            0.15
        } else {
            0.05
        };
        assert!(
            (ours - decoded).abs() <= decode_tol,
            "{name}: {ours} s, decoding gives {decoded} s"
        );
        // ffprobe reports the container's view: MP3 without gapless trims (up to ~0.26 s
        // longer, see the reference notes), Opus with its pre-skip (~7 ms).
        let tol = if name.starts_with("mp3") { 0.3 } else { 0.05 };
        assert!(
            (ours - probed).abs() <= tol,
            "{name}: {ours} s, ffprobe {probed} s"
        );
        // And the basics match what the file was made with.
        let want_ch: u32 = if name.contains("-2ch-") { 2 } else { 1 };
        assert_eq!(info.channels, want_ch, "{name}");
    }
    eprintln!("{}", report.join("\n"));
    assert_eq!(report.len(), FORMATS.len() * SIGNALS.len());
}

#[test]
fn one_hour_files_at_low_bitrate() {
    let dir = tmp("hour");
    let jobs: [(&str, &str, &[&str]); 3] = [
        (
            "sine=f=440:d=3600:r=8000",
            "hour-ulaw.wav",
            &["-c:a", "pcm_mulaw"],
        ),
        (
            "sine=f=440:d=3600:r=8000",
            "hour.mp3",
            &["-c:a", "libmp3lame", "-b:a", "8k"],
        ),
        (
            "anullsrc=r=8000:cl=mono:d=3600",
            "hour.ogg",
            &[
                "-c:a",
                "libopus",
                "-b:a",
                "6k",
                "-compression_level",
                "0",
                "-frame_duration",
                "60",
            ],
        ),
    ];
    std::thread::scope(|s| {
        for (src, name, opts) in jobs {
            let dir = &dir;
            s.spawn(move || {
                let p = dir.join(name);
                let mut args = vec!["-f", "lavfi", "-i", src];
                args.extend(opts.iter().copied());
                let ps = p.to_str().unwrap().to_owned();
                args.push(&ps);
                ffmpeg(&args);
                let info = probe_file(&p).unwrap();
                assert!(info.problems.is_empty(), "{name}: {:?}", info.problems);
                let decoded = decoded_seconds(&p);
                assert!(
                    (info.seconds() - decoded).abs() <= 0.05
                        && (info.seconds() - 3600.0).abs() <= 0.05,
                    "{name}: {} s, decoding gives {decoded} s",
                    info.seconds()
                );
            });
        }
    });
}

#[test]
fn truncated_files_are_problems_and_still_agree_with_decoding() {
    let dir = tmp("cut");
    for f in corpus()
        .iter()
        .filter(|f| f.to_string_lossy().contains("-5s-48000-"))
    {
        let bytes = std::fs::read(f).unwrap();
        let cut = dir.join(f.file_name().unwrap());
        std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();
        let name = cut.file_name().unwrap().to_string_lossy().into_owned();
        match probe_file(&cut) {
            Ok(info) => {
                assert!(
                    info.problems.iter().any(|p| p.contains("truncated")),
                    "{name}: no problem found in a file cut to 60 %: {info}"
                );
                let decoded = decoded_seconds(&cut);
                assert!(
                    (info.seconds() - decoded).abs() <= 0.05,
                    "{name}: {} s, decoding gives {decoded} s",
                    info.seconds()
                );
            }
            // A WebM cut before the elements its SeekHead points at cannot be opened at all,
            // nor an MP4 whose movie box (written last) was cut away.
            Err(e) => assert!(
                (name.starts_with("webm") || name.starts_with("mp4"))
                    && e.to_string().contains("truncated"),
                "{name}: {e}"
            ),
        }
    }
}

#[test]
fn a_wav_whose_header_lies_is_read_as_what_it_holds() {
    let dir = tmp("lie");
    let p = dir.join("lie.wav");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:d=2:r=8000",
        "-c:a",
        "pcm_s16le",
        p.to_str().unwrap(),
    ]);
    let mut b = std::fs::read(&p).unwrap();
    // The data chunk claims 5 minutes; the file holds 2 seconds.
    let at = b.windows(4).position(|w| w == b"data").unwrap();
    b[at + 4..at + 8].copy_from_slice(&(300u32 * 16_000).to_le_bytes());
    std::fs::write(&p, &b).unwrap();
    let info = probe_file(&p).unwrap();
    assert!(
        info.problems[0].contains("300.000 s"),
        "{:?}",
        info.problems
    );
    assert!(
        (info.seconds() - decoded_seconds(&p)).abs() <= 0.05,
        "{info}"
    );
}

#[test]
fn garbage_is_an_error_with_a_reason() {
    let dir = tmp("garbage");
    let cases: [(&str, Vec<u8>); 5] = [
        ("empty.wav", Vec::new()),
        (
            "html.mp3",
            b"<html><body>502 Bad Gateway</body></html>".to_vec(),
        ),
        ("zeros.ogg", vec![0; 4096]),
        ("json.wav", br#"{"errors":[{"message":"oops"}]}"#.to_vec()),
        (
            "noise.bin",
            (0..50_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
    ];
    for (name, bytes) in cases {
        let p = dir.join(name);
        std::fs::write(&p, &bytes).unwrap();
        let e = probe_file(&p).expect_err(name);
        assert!(!e.to_string().is_empty());
        assert!(!matches!(e, MediaError::Io(_)), "{name}: {e}");
    }
}

/// Counts the bytes a reader hands out.
struct Counting<R> {
    inner: R,
    read: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

impl<R: std::io::Seek> std::io::Seek for Counting<R> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[test]
fn a_2_gb_wav_is_read_from_its_header_alone() {
    let dir = tmp("big");
    let p = dir.join("big.wav");
    let data: u64 = 2 * 1024 * 1024 * 1024 - 64;
    let mut head = Vec::new();
    head.extend_from_slice(b"RIFF");
    head.extend_from_slice(&((data + 36) as u32).to_le_bytes());
    head.extend_from_slice(b"WAVEfmt ");
    head.extend_from_slice(&16u32.to_le_bytes());
    for v in [1u16, 2] {
        head.extend_from_slice(&v.to_le_bytes());
    }
    for v in [48_000u32, 192_000] {
        head.extend_from_slice(&v.to_le_bytes());
    }
    for v in [4u16, 16] {
        head.extend_from_slice(&v.to_le_bytes());
    }
    head.extend_from_slice(b"data");
    head.extend_from_slice(&(data as u32).to_le_bytes());
    let f = std::fs::File::create(&p).unwrap();
    std::io::Write::write_all(&mut &f, &head).unwrap();
    f.set_len(44 + data).unwrap(); // sparse: 2 GB that take no disk
    let read = std::rc::Rc::new(std::cell::Cell::new(0));
    let info = probe(Counting {
        inner: std::fs::File::open(&p).unwrap(),
        read: read.clone(),
    })
    .unwrap();
    assert!(info.problems.is_empty(), "{:?}", info.problems);
    assert_eq!(info.duration.as_secs(), data / 192_000);
    // One buffered read of the header, whatever the file's size.
    assert!(read.get() <= 64 * 1024, "{} bytes read", read.get());
    std::fs::remove_file(&p).unwrap();
}

/// Small real files of every container, for mutation.
fn seeds() -> &'static Vec<Vec<u8>> {
    static S: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    S.get_or_init(|| {
        corpus()
            .iter()
            .filter(|f| f.to_string_lossy().contains("-0.3s-"))
            .map(|f| std::fs::read(f).unwrap())
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Mutated real files (bytes flipped, cut, spliced) never panic and never hang: each gives
    /// facts or an error.
    #[test]
    fn mutated_files_never_panic(
        seed in 0usize..64,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..16),
        cut in proptest::option::of(any::<prop::sample::Index>()),
        splice in proptest::option::of((any::<prop::sample::Index>(), any::<prop::sample::Index>())),
    ) {
        let seeds = seeds();
        let mut b = seeds[seed % seeds.len()].clone();
        for (i, v) in flips {
            let at = i.index(b.len());
            b[at] = v;
        }
        if let Some((a, c)) = splice {
            let (a, c) = (a.index(b.len()), c.index(b.len()));
            let (lo, hi) = (a.min(c), a.max(c));
            b.drain(lo..hi);
        }
        if let Some(c) = cut {
            b.truncate(c.index(b.len() + 1));
        }
        let _ = probe(std::io::Cursor::new(b));
    }
}

/// Screen recordings as video: WebM (VP8, VP9) and MP4 (H.264, MPEG-4 part 2, with and without
/// sound, the movie box first or last), and an M4A, made by ffmpeg, agree with ffprobe within
/// 50 ms and name their picture size; an MP4 cut short is a "truncated" problem (movie box
/// first) or an error that says the movie box is missing (movie box last, cut away).
#[test]
fn screen_video_and_mp4_agree_with_ffprobe_and_cut_files_are_problems() {
    let dir = tmp("video");
    let src = ["-f", "lavfi", "-i", "testsrc=size=320x180:rate=10:d=4.2"];
    let sound = ["-f", "lavfi", "-i", "sine=f=440:d=4.2:r=48000"];
    type Case<'a> = (&'a str, &'a [&'a str], Option<(u32, u32)>);
    let cases: &[Case] = &[
        (
            "vp8.webm",
            &["-c:v", "libvpx", "-b:v", "200k"],
            Some((320, 180)),
        ),
        (
            "vp9.webm",
            &["-c:v", "libvpx-vp9", "-b:v", "200k"],
            Some((320, 180)),
        ),
        (
            "h264.mp4",
            &["-c:v", "libx264", "-movflags", "+faststart"],
            Some((320, 180)),
        ),
        ("mpeg4.mp4", &["-c:v", "mpeg4"], Some((320, 180))),
        (
            "sound.mp4",
            &["-c:v", "libx264", "-c:a", "aac"],
            Some((320, 180)),
        ),
        ("sound.m4a", &["-vn", "-c:a", "aac"], None),
    ];
    for (file, opts, picture) in cases {
        let out = dir.join(file);
        let mut args: Vec<&str> = Vec::new();
        if *file != "sound.m4a" {
            args.extend(src);
        }
        if file.starts_with("sound") {
            args.extend(sound);
        }
        args.extend(*opts);
        args.push(out.to_str().unwrap());
        ffmpeg(&args);
        let info = probe_file(&out).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(info.problems.is_empty(), "{file}: {:?}", info.problems);
        assert_eq!(info.video, *picture, "{file}");
        let probed = ffprobe_seconds(&out);
        assert!(
            (info.seconds() - probed).abs() <= 0.05,
            "{file}: ours {} ffprobe {probed}",
            info.seconds()
        );
    }
    let whole = std::fs::read(dir.join("h264.mp4")).unwrap();
    let cut = dir.join("cut.mp4");
    std::fs::write(&cut, &whole[..whole.len() * 6 / 10]).unwrap();
    let info = probe_file(&cut).unwrap();
    assert!(
        info.problems.iter().any(|p| p.contains("truncated")),
        "{:?}",
        info.problems
    );
    let whole = std::fs::read(dir.join("mpeg4.mp4")).unwrap();
    std::fs::write(&cut, &whole[..whole.len() * 6 / 10]).unwrap();
    let e = probe_file(&cut).unwrap_err();
    assert!(e.to_string().contains("moov"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The Ogg page CRC (RFC 3533: polynomial 0x04C11DB7, not reflected, initial 0), to re-seal an
/// edited page as a forger would.
fn ogg_crc(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |mut c, &b| {
        c ^= u32::from(b) << 24;
        for _ in 0..8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04C1_1DB7
            } else {
                c << 1
            };
        }
        c
    })
}

/// Sets the granule position of the Ogg page at `at` and re-seals its CRC.
fn set_granule(b: &mut [u8], at: usize, granule: u64) {
    b[at + 6..at + 14].copy_from_slice(&granule.to_le_bytes());
    let len = 27
        + usize::from(b[at + 26])
        + b[at + 27..at + 27 + usize::from(b[at + 26])]
            .iter()
            .map(|&l| usize::from(l))
            .sum::<usize>();
    b[at + 22..at + 26].fill(0);
    let crc = ogg_crc(&b[at..at + len]);
    b[at + 22..at + 26].copy_from_slice(&crc.to_le_bytes());
}

/// A 3 s, 48 kHz tone at `p`, encoded with `codec` (ffmpeg options); read as sound first.
fn three_seconds(p: &Path, codec: &[&str]) {
    let mut args = vec!["-f", "lavfi", "-i", "sine=f=440:d=3:r=48000"];
    args.extend(codec);
    args.push(p.to_str().unwrap());
    ffmpeg(&args);
    let sound = probe_file(p).unwrap();
    assert!(sound.problems.is_empty(), "{:?}", sound.problems);
}

/// The file at `p` (edited to claim 300 s) has a problem containing `needle`, and its duration
/// is what ffmpeg decodes (about 3 s), within `tolerance` seconds.
fn claim_is_caught(p: &Path, needle: &str, tolerance: f64) {
    let info = probe_file(p).unwrap();
    assert!(
        info.problems.iter().any(|x| x.contains(needle)),
        "{:?}",
        info.problems
    );
    let decoded = decoded_seconds(p);
    assert!(decoded < 3.2, "ffmpeg decodes {decoded} s");
    assert!(
        (info.seconds() - decoded).abs() <= tolerance,
        "{info}, decoding gives {decoded} s"
    );
}

/// An Ogg Opus of 3 s whose last granule position says 300 s, CRC re-sealed: every page is
/// valid, so only the packets' own durations (their TOC bytes) tell the truth.
#[test]
fn an_opus_granule_claiming_more_than_the_packets_hold_is_a_problem() {
    let dir = tmp("granule");
    let p = dir.join("inflated.ogg");
    three_seconds(&p, &["-c:a", "libopus", "-b:a", "16k"]);
    let mut b = std::fs::read(&p).unwrap();
    let last = b.windows(4).rposition(|w| w == b"OggS").unwrap();
    set_granule(&mut b, last, 300 * 48_000 + 312);
    std::fs::write(&p, &b).unwrap();
    claim_is_caught(&p, "granule position claims 300.000 s", 0.05);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An M4A of 3 s whose movie header, media header and edit list all say 300 s: the sample
/// table (stts) says what the track holds.
#[test]
fn an_m4a_header_claiming_more_than_the_sample_table_holds_is_a_problem() {
    let dir = tmp("m4a-lie");
    let p = dir.join("inflated.m4a");
    three_seconds(&p, &["-c:a", "aac"]);
    let mut b = std::fs::read(&p).unwrap();
    // mvhd and mdhd (version 0): timescale at +12, duration at +16 of the payload; the edit
    // list's first segment duration at +8 (after version, flags and the entry count).
    let mut edited = 0;
    for kind in [&b"mvhd"[..], b"mdhd"] {
        let at = b.windows(4).position(|w| w == kind).unwrap() + 4;
        assert_eq!(b[at], 0, "version 0 {}", String::from_utf8_lossy(kind));
        let scale = u32::from_be_bytes(b[at + 12..at + 16].try_into().unwrap());
        b[at + 16..at + 20].copy_from_slice(&(300 * scale).to_be_bytes());
        edited += 1;
    }
    if let Some(at) = b.windows(4).position(|w| w == b"elst") {
        let scale = {
            let m = b.windows(4).position(|w| w == b"mvhd").unwrap() + 4;
            u32::from_be_bytes(b[m + 12..m + 16].try_into().unwrap())
        };
        b[at + 12..at + 16].copy_from_slice(&(300 * scale).to_be_bytes());
        edited += 1;
    }
    assert!(edited >= 2);
    std::fs::write(&p, &b).unwrap();
    claim_is_caught(
        &p,
        "the header claims 300.000 s, the sample table holds",
        0.15,
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A WebM whose Segment opens with a CRC-32 element (one byte changed: the SeekHead's first ID
/// byte made 0xBF) sent matroska-demuxer 0.8.1 round one header forever, and a CI run hung for
/// 85 minutes on a mutation like it. Now it is refused as a loop on damaged input, in well
/// under the time the test allows.
#[test]
fn a_webm_that_loops_the_demuxer_is_refused_not_hung() {
    let file = corpus()
        .iter()
        .find(|f| {
            let n = f.to_string_lossy();
            n.contains("webm-opus-0.3s-")
        })
        .unwrap();
    let mut b = std::fs::read(file).unwrap();
    let seg = b
        .windows(4)
        .position(|w| w == [0x18, 0x53, 0x80, 0x67])
        .unwrap();
    // The Segment's size is an EBML variable-length integer: its first byte says how long.
    let size_len = b[seg + 4].leading_zeros() as usize + 1;
    let data = seg + 4 + size_len;
    assert_eq!(
        b[data..data + 4],
        [0x11, 0x4D, 0x9B, 0x74],
        "a SeekHead opens the Segment"
    );
    b[data] = 0xBF;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(probe(std::io::Cursor::new(b)).map_err(|e| e.to_string()));
    });
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the probe hung on a WebM whose Segment opens with a CRC-32 element");
    let e = got.unwrap_err();
    assert!(e.contains("loop on damaged input"), "{e}");
}
