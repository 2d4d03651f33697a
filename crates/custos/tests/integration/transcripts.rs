//! `--transcripts`: every voice recording with a Speech & Text Analytics transcript in the
//! simulator has it in the package byte for byte, and its plain-text rendering names the
//! speakers and times the simulator's truth names, with the recording's holds and secure
//! pauses in the same timeline; recordings without one have none; the package verifies.

use custos::export::{NoProgress, Retrieval, SourceKind};
use custos_sim::{Scenario, Sim};

use crate::common::{config, out_dir};

#[tokio::test]
async fn transcripts_are_kept_as_received_and_rendered_with_speakers_and_times() {
    let mut s = Scenario {
        conversations: 24,
        min_recording_s: 12,
        max_recording_s: 30,
        api_rate: 6_000,
        batch_ms_per_item: 2,
        async_job_ms: 100,
        transcripts: 0.7,
        ..Scenario::default()
    };
    s.faults.apply_list("pauses=0.5").unwrap();
    let running = Sim::new(s).unwrap().spawn().await.unwrap();
    let out = out_dir("transcripts");
    let mut cfg = config(&running, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    cfg.transcripts = true;
    custos::export(&cfg, &NoProgress).await.unwrap();
    let truth = running.sim.truth();
    let (mut with, mut without, mut paused) = (0, 0, 0);
    for t in &truth.recordings {
        // One transcript per voice communication, which recordings can share.
        let base = out.join(format!(
            "data/transcripts/{}/{}",
            t.conversation_id, t.communication_id
        ));
        let (json, txt) = (base.with_extension("json"), base.with_extension("txt"));
        match (&t.transcript, t.expected_outcome.as_str()) {
            (Some(phrases), o) if o != "Purged" => {
                with += 1;
                assert_eq!(
                    std::fs::read(&json).unwrap(),
                    running.sim.transcript_bytes(&t.id).unwrap(),
                    "{}: not the transcript as served",
                    t.id
                );
                let text = std::fs::read_to_string(&txt).unwrap();
                assert!(!phrases.is_empty(), "{}", t.id);
                for p in phrases {
                    let at = time::OffsetDateTime::from_unix_timestamp_nanos(
                        i128::from(p.start_time_ms) * 1_000_000,
                    )
                    .unwrap();
                    let line = format!(
                        "{}  {}  {}: {}",
                        custos::query::format_ms(at),
                        custos::transcript::offset(p.offset_ms),
                        p.speaker,
                        p.text
                    );
                    assert!(
                        text.lines().any(|l| l == line),
                        "{}: no line {line:?} in\n{text}",
                        t.id
                    );
                }
                if t.paused_ms > 0 {
                    paused += 1;
                    assert!(
                        text.contains("[Hold for") && text.contains("[SecurePause for"),
                        "{text}"
                    );
                }
                assert!(text.lines().next().unwrap().contains(&t.id), "{text}");
            }
            (None, _) => {
                without += 1;
                assert!(!json.exists() && !txt.exists(), "{}", t.id);
            }
            _ => {}
        }
    }
    assert!(
        with > 3 && without > 0 && paused > 0,
        "{with} with, {without} without, {paused} paused"
    );
    // The run's counts: one communication per voice session that exists at the source, read
    // back a conversation at a time from a scratch file that is gone once they are collected.
    let voice: std::collections::BTreeSet<(&str, &str)> = truth
        .recordings
        .iter()
        .filter(|t| t.media == "audio" && t.expected_outcome != "Purged")
        .map(|t| (t.conversation_id.as_str(), t.communication_id.as_str()))
        .collect();
    let with_transcript: std::collections::BTreeSet<(&str, &str)> = truth
        .recordings
        .iter()
        .filter(|t| t.media == "audio" && t.expected_outcome != "Purged" && t.transcript.is_some())
        .map(|t| (t.conversation_id.as_str(), t.communication_id.as_str()))
        .collect();
    let events = custos::custody::read_events(&out.join("data/custody_log.jsonl")).unwrap();
    let collected = events
        .iter()
        .find(|e| e["event"] == "transcripts-collected")
        .expect("a transcripts-collected event");
    assert_eq!(
        collected["communications"],
        voice.len() as u64,
        "{collected}"
    );
    assert_eq!(
        collected["transcripts"],
        with_transcript.len() as u64,
        "{collected}"
    );
    assert_eq!(
        collected["withoutTranscript"],
        (voice.len() - with_transcript.len()) as u64,
        "{collected}"
    );
    assert!(!out.join(".custos/transcripts-to-collect.jsonl").exists());
    let manifest = std::fs::read_to_string(out.join("manifest-sha256.txt")).unwrap();
    assert!(manifest.contains("  data/transcripts/"));
    let v = custos::verify::verify(&out, &Default::default()).unwrap();
    assert!(v.findings.is_empty(), "{:?}", v.findings);
    // The bearer token never went to the transcript host.
    assert_eq!(running.sim.stats().bearer_on_media, 0);
    std::fs::remove_dir_all(&out).unwrap();
}
