//! Every media type (#16): against a simulator with screen, chat, email and messaging
//! recordings and their faults (short screen video, damaged ZIP, truncated EML), every item
//! ends in the truth's outcome, per id, in batch and transcode retrieval. The natives kept pass
//! checks outside custos (ffprobe for screen video, Python's `email` parser for EML,
//! `zipfile.testzip()` for ZIP) and the quarantined ones fail them; every chat, email and
//! messaging recording has a plain-text rendering naming each message's writer and time;
//! bagit-python and `custos verify` accept the package. `--media` narrows the export and the
//! package lists what it left out.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use custos::export::{NoProgress, Retrieval, SourceKind};
use custos::model::Media;
use custos_sim::{Scenario, Sim};

use crate::common::{config, out_dir};

fn scenario() -> Scenario {
    let mut s = Scenario {
        conversations: 16,
        min_recording_s: 5,
        max_recording_s: 40,
        api_rate: 6_000,
        batch_ms_per_item: 2,
        async_job_ms: 100,
        transcode_ms: 50,
        screen: 0.6,
        digital: 30,
        ..Scenario::default()
    };
    s.faults
        .apply_list("damaged-zip=0.3,truncated-eml=0.3,short-screen=0.5")
        .unwrap();
    s
}

/// The custody record's rows by recording id.
fn rows(out: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(out.join("data/chain_of_custody.csv")).unwrap();
    r.deserialize::<BTreeMap<String, String>>()
        .map(|row| {
            let row = row.unwrap();
            (row["Recording_ID"].clone(), row)
        })
        .collect()
}

/// Runs Python's email parser, zipfile.testzip() and ffprobe over `files` (media, path, the
/// stated duration in ms or the stated attachments as JSON): one line per file, `ok` or why not.
fn third_party(files: &[(String, String, String)]) -> Vec<String> {
    let script = r#"
import email, json, subprocess, sys, zipfile
from email import policy
for line in sys.stdin:
    media, path, stated = json.loads(line)
    try:
        if media == "screen":
            out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type",
                                  "-of", "json", path], capture_output=True, text=True, check=True).stdout
            info = json.loads(out)
            dur = float(info["format"]["duration"])
            video = any(s["codec_type"] == "video" for s in info["streams"])
            print("ok" if video and abs(dur - int(stated) / 1000) <= 1 else f"ffprobe: {dur} s, stated {int(stated)/1000} s, video {video}")
        elif media == "email":
            with open(path, "rb") as f:
                m = email.message_from_bytes(f.read(), policy=policy.default)
            defects = [type(d).__name__ for p in m.walk() for d in p.defects]
            got = {p.get_filename(): len(p.get_content()) for p in m.iter_attachments()}
            want = {a: n for a, n in json.loads(stated)}
            print("ok" if not defects and got == want and m["From"] and m["Date"] else f"email: defects {defects}, attachments {got}, stated {want}")
        else:
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
                for n in z.namelist():
                    if n.endswith(".json"):
                        json.loads(z.read(n))
            print("ok" if bad is None else f"zipfile: bad member {bad}")
    except Exception as e:
        print(f"error: {type(e).__name__}: {e}")
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (installed by .ci/run)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        for f in files {
            writeln!(stdin, "{}", serde_json::json!([f.0, f.1, f.2])).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Checks the export in `out` against the truth: outcomes per id, the natives' bytes and
/// extensions, the third-party checks, the renderings, and the package.
fn check(running: &custos_sim::Running, out: &Path) -> BTreeMap<(String, String), u64> {
    let truth = running.sim.truth();
    let rows = rows(out);
    assert_eq!(rows.len(), truth.recordings.len());
    let mut tally = BTreeMap::new();
    let mut outside = Vec::new();
    for t in &truth.recordings {
        let row = &rows[&t.id];
        assert_eq!(
            row["Outcome"], t.expected_outcome,
            "{} ({}, faults {:?}): {}",
            t.id, t.media, t.faults, row["Reason"]
        );
        *tally
            .entry((t.media.clone(), t.expected_outcome.clone()))
            .or_default() += 1;
        if t.media == "audio" || row["File_Name"].is_empty() {
            continue;
        }
        let file = out.join(&row["File_Name"]);
        // A screen recording's duration is checked; a thread has none to check.
        let checked = if t.media == "screen" { "yes" } else { "" };
        assert_eq!(row["Duration_Checked"], checked, "{row:?}");
        if t.expected_outcome == "Exported" {
            assert_eq!(row["SHA256_Hash"], t.sha256, "{}", t.id);
            let ext = match t.media.as_str() {
                "screen" => "webm",
                "email" => "eml",
                _ => "zip",
            };
            assert!(row["File_Name"].ends_with(&format!(".{ext}")), "{row:?}");
        } else {
            assert!(row["File_Name"].starts_with("data/quarantine/"), "{row:?}");
        }
        let meta: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join(format!("data/metadata/{}.json", t.id))).unwrap(),
        )
        .unwrap();
        let stated = match t.media.as_str() {
            "screen" => t.stated_duration_ms.to_string(),
            "email" => serde_json::to_string(
                &meta["emailTranscript"][0]["attachments"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| (a["name"].clone(), a["contentLength"].clone()))
                    .collect::<Vec<_>>(),
            )
            .unwrap(),
            _ => String::new(),
        };
        outside.push((
            (t.id.clone(), t.expected_outcome.clone()),
            (t.media.clone(), file.display().to_string(), stated),
        ));
        if t.media != "screen" {
            render_names_every_message(out, t, &meta);
        }
    }
    let verdicts = third_party(&outside.iter().map(|(_, f)| f.clone()).collect::<Vec<_>>());
    assert_eq!(verdicts.len(), outside.len());
    for (((id, outcome), (media, _, _)), verdict) in outside.iter().zip(&verdicts) {
        assert_eq!(
            verdict == "ok",
            outcome == "Exported",
            "{id} ({media}, {outcome}): the third-party check says {verdict}"
        );
    }
    let v = Command::new("bagit.py")
        .args(["--validate", out.to_str().unwrap()])
        .output()
        .expect("bagit.py (pip install bagit)");
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let v = custos::verify::verify(out, &Default::default()).unwrap();
    assert!(v.findings.is_empty(), "{:?}", v.findings);
    assert_eq!(running.sim.stats().bearer_on_media, 0);
    tally
}

/// A chat, email or messaging recording's rendering has a line for every message its metadata
/// states, at its UTC time, with its text.
fn render_names_every_message(
    out: &Path,
    t: &custos_sim::RecordingTruth,
    meta: &serde_json::Value,
) {
    let txt = out.join(format!(
        "data/transcripts/{}/{}.txt",
        t.conversation_id, t.communication_id
    ));
    let text = std::fs::read_to_string(&txt).unwrap_or_else(|e| panic!("{}: {e}", txt.display()));
    let (field, time, body) = match t.media.as_str() {
        "chat" => ("transcript", "utc", "body"),
        "email" => ("emailTranscript", "time", "textBody"),
        _ => ("messagingTranscript", "timestamp", "messageText"),
    };
    for m in meta[field].as_array().unwrap() {
        let at = time::OffsetDateTime::parse(
            m[time].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let utc = custos::query::format_ms(at);
        let said = m[body].as_str().unwrap();
        assert!(
            text.lines()
                .any(|l| l.starts_with(&utc) && l.contains(said)),
            "{}: no line at {utc} with {said:?} in\n{text}",
            t.id
        );
        if t.media != "email" {
            let who = if m["participantPurpose"] == "agent" || m["purpose"] == "agent" {
                "Agent "
            } else {
                "Customer "
            };
            assert!(
                text.lines().any(|l| l.starts_with(&utc) && l.contains(who)),
                "{}: {who} not named in\n{text}",
                t.id
            );
        }
    }
}

#[tokio::test]
async fn every_media_type_ends_in_its_true_outcome_and_passes_third_party_checks() {
    let running = Sim::new(scenario()).unwrap().spawn().await.unwrap();
    let out = out_dir("natives-batch");
    let cfg = config(&running, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    custos::export(&cfg, &NoProgress).await.unwrap();
    let tally = check(&running, &out);
    // Each kind, and each native fault, was exercised.
    for media in ["screen", "chat", "email", "messaging"] {
        assert!(
            tally.get(&(media.into(), "Exported".into())).copied() > Some(0),
            "{media}: {tally:?}"
        );
    }
    for media in ["screen", "email"] {
        assert!(
            tally.get(&(media.into(), "Corrupted".into())).copied() > Some(0),
            "{media}: {tally:?}"
        );
    }
    let zips = tally
        .get(&("chat".into(), "Corrupted".into()))
        .copied()
        .unwrap_or(0)
        + tally
            .get(&("messaging".into(), "Corrupted".into()))
            .copied()
            .unwrap_or(0);
    assert!(zips > 0, "{tally:?}");

    // The same through per-recording requests (formatId, chatFormatId, emailFormatId,
    // messageFormatId), against a fresh simulator.
    let running = Sim::new(scenario()).unwrap().spawn().await.unwrap();
    let out = out_dir("natives-transcode");
    let cfg = config(
        &running,
        out.clone(),
        SourceKind::Genesys,
        Retrieval::Transcode("WAV".into()),
    );
    custos::export(&cfg, &NoProgress).await.unwrap();
    let rows = rows(&out);
    for t in &running.sim.truth().recordings {
        let row = &rows[&t.id];
        assert_eq!(
            row["Outcome"], t.expected_outcome,
            "{}: {}",
            t.id, row["Reason"]
        );
        if t.expected_outcome == "Exported" {
            // Audio as WAV; every other type as what Genesys keeps it as.
            let want = match t.media.as_str() {
                "audio" => &t.formats[&custos_sim::audio::Codec::Wav].sha256,
                _ => &t.sha256,
            };
            assert_eq!(&row["SHA256_Hash"], want, "{}", t.id);
        }
    }
    let v = custos::verify::verify(&out, &Default::default()).unwrap();
    assert!(v.findings.is_empty(), "{:?}", v.findings);
}

#[tokio::test]
async fn media_narrows_the_export_and_the_package_lists_what_it_left_out() {
    let running = Sim::new(scenario()).unwrap().spawn().await.unwrap();
    let out = out_dir("natives-media");
    let mut cfg = config(&running, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    cfg.media = vec![Media::Email, Media::Chat];
    custos::export(&cfg, &NoProgress).await.unwrap();
    let truth = running.sim.truth();
    let rows = rows(&out);
    let mut left: BTreeMap<String, u64> = BTreeMap::new();
    for t in &truth.recordings {
        if t.media == "email" || t.media == "chat" {
            assert_eq!(rows[&t.id]["Outcome"], t.expected_outcome, "{}", t.id);
        } else {
            assert!(!rows.contains_key(&t.id), "{} ({}) exported", t.id, t.media);
            *left.entry(t.media.clone()).or_default() += 1;
        }
    }
    let mut excluded: BTreeMap<String, u64> = BTreeMap::new();
    let mut r = csv::Reader::from_path(out.join("data/media_excluded.csv")).unwrap();
    for row in r.records() {
        *excluded.entry(row.unwrap()[2].to_owned()).or_default() += 1;
    }
    assert_eq!(excluded, left);
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("data/completeness.json")).unwrap())
            .unwrap();
    assert_eq!(
        c["otherMediaNotTaken"].as_u64(),
        Some(left.values().sum::<u64>())
    );
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("Recordings left out by media type"));
    // A conversation whose recordings were all left out is not "without recordings".
    for w in c["conversationsWithoutRecordings"].as_array().unwrap() {
        assert!(
            truth
                .conversations_without_recordings
                .contains(&w["conversationId"].as_str().unwrap().to_owned()),
            "{w}"
        );
    }
    let v = custos::verify::verify(&out, &Default::default()).unwrap();
    assert!(v.findings.is_empty(), "{:?}", v.findings);
}
