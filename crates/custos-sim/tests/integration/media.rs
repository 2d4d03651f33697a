//! Pre-signed media URLs and the audio behind them.

use custos_sim::audio::Codec;
use serde_json::Value;

use crate::common::*;

async fn media_url(
    t: &TestSim,
    tok: &str,
    rec: &custos_sim::RecordingTruth,
    format: &str,
) -> String {
    let v = t
        .get_json(
            tok,
            &format!(
                "/api/v2/conversations/{}/recordings/{}?formatId={format}&download=true",
                rec.conversation_id, rec.id
            ),
        )
        .await;
    v["mediaUris"]["S"]["mediaUri"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn urls_are_signed_expiring_and_refuse_bearer_tokens() {
    let t = start(custos_sim::Scenario {
        url_ttl_s: 120,
        ..scenario()
    })
    .await;
    let tok = t.token().await;
    let truth = t.truth();
    let rec = truth
        .recordings
        .iter()
        .find(|r| r.file_state == "AVAILABLE")
        .unwrap();
    let url = media_url(&t, &tok, rec, "WAV_ULAW").await;
    assert!(!url.contains(&tok));

    let r = t.download(&url).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "audio/wav");
    assert_eq!(
        r.headers()["content-length"],
        rec.formats[&Codec::WavUlaw].size_bytes.to_string().as_str()
    );
    // Sending the bearer token to the media host is refused, and counted.
    let r = t.http.get(&url).bearer_auth(&tok).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("InvalidArgument"));
    assert_eq!(t.sim.stats().bearer_on_media, 1);

    let tampered = url.replace("WAV_ULAW?", "WAV?");
    let r = t.download(&tampered).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("SignatureDoesNotMatch"));

    t.sim.advance_clock(121_000);
    let r = t.download(&url).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Request has expired"));
    assert_eq!(t.sim.stats().expired_url_hits, 1);
}

/// Every simulated format decodes with ffprobe, with the duration the ground truth states.
#[tokio::test]
async fn generated_audio_is_real_audio() {
    let t = start(custos_sim::Scenario {
        channels: 2,
        sample_rate: 16_000,
        ..scenario()
    })
    .await;
    let tok = t.token().await;
    let truth = t.truth();
    let rec = truth
        .recordings
        .iter()
        .find(|r| r.file_state == "AVAILABLE" && r.codec != Codec::OggOpus)
        .unwrap();
    let dir = std::env::temp_dir().join(format!("custos-sim-audio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (format, codec_name, channels) in [
        ("WAV", "pcm_s16le", 2),
        ("WAV_ULAW", "pcm_mulaw", 2),
        ("OGG_OPUS", "opus", 1),
        ("WEBM", "opus", 1),
        ("MP3", "mp3", 1),
    ] {
        let url = media_url(&t, &tok, rec, format).await;
        let body = t.download(&url).await.bytes().await.unwrap();
        let path = dir.join(format!("r.{format}"));
        std::fs::write(&path, &body).unwrap();
        let out = std::process::Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name,channels:format=duration",
                "-of",
                "json",
            ])
            .arg(&path)
            .output()
            .expect("ffprobe is installed by .ci/run");
        assert!(
            out.status.success(),
            "ffprobe failed on {format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["streams"][0]["codec_name"], codec_name);
        assert_eq!(v["streams"][0]["channels"], channels);
        let secs: f64 = v["format"]["duration"].as_str().unwrap().parse().unwrap();
        // ffprobe counts Opus pre-skip (6.5 ms) in the duration; see the reference notes. MP3
        // ends on a whole 36 ms frame.
        let want = rec.duration_ms as f64 / 1000.0;
        let tol = if format == "MP3" { 0.037 } else { 0.01 };
        assert!(
            (secs - want).abs() < tol,
            "{format}: ffprobe {secs} s, truth {want} s"
        );
        // A full decode finds no errors.
        let dec = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&path)
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
        assert!(
            dec.status.success() && dec.stderr.is_empty(),
            "{format}: {}",
            String::from_utf8_lossy(&dec.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn bandwidth_cap_slows_media_only() {
    let t = start(custos_sim::Scenario {
        bandwidth: 200_000,
        codecs: vec![Codec::Wav],
        ..scenario()
    })
    .await;
    let tok = t.token().await;
    let truth = t.truth();
    let rec = truth
        .recordings
        .iter()
        .find(|r| r.file_state == "AVAILABLE")
        .unwrap();
    let url = media_url(&t, &tok, rec, "WAV").await;
    let started = std::time::Instant::now();
    let body = t.download(&url).await.bytes().await.unwrap();
    let floor = body.len() as f64 / 200_000.0 * 0.9;
    // A lower bound only: the cap must hold; how much slower the machine is does not matter.
    assert!(
        started.elapsed().as_secs_f64() >= floor,
        "{} bytes in {:?}",
        body.len(),
        started.elapsed()
    );
    assert_eq!(sha256(&body), rec.formats[&Codec::Wav].sha256);
}
