//! The fault matrix: an export against the simulator with each fault class alone, and all of
//! them together, must end with every item in the outcome the ground truth expects (nothing
//! lost, nothing falsely Exported, no partial file), no bearer token on a media URL, and — with
//! the client's rate set to the simulator's true limit — at most 1 % of requests refused 429.
//!
//! `duration-lie` is caught in every retrieval mode: transcodes state `outputDurationMs`, the
//! search API `durationMs`, and in batch mode (whose results state nothing) the listed
//! recording's `endTime − startTime` less its pause annotations. `pauses` recordings have a
//! secure pause cut from their audio: they must end Exported, which a check that forgot the
//! pauses would call Corrupted.

use custos::export::{NoProgress, Retrieval, SourceKind};
use custos_sim::{Scenario, Sim};

use crate::common::{config, out_dir};

async fn run_case(name: &str, faults: &str, source: SourceKind, retrieval: Retrieval) {
    let mut s = Scenario {
        conversations: 40,
        max_recording_s: 15,
        api_rate: 6_000,
        transcode_ms: 100,
        batch_ms_per_item: 2,
        async_job_ms: 100,
        ..Scenario::default()
    };
    s.faults.apply_list(faults).unwrap();
    let running = Sim::new(s).unwrap().spawn().await.unwrap();
    let out = out_dir(name);
    let mut cfg = config(&running, out.clone(), source, retrieval.clone());
    cfg.page_size = 10;
    // Inside the simulator's 35 days: the synchronous query, so drift and duplicates bite.
    cfg.now = Some(time::macros::datetime!(2023-10-09 00:00 UTC));
    let report = custos::export(&cfg, &NoProgress)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let truth = running.sim.truth();
    for fault in ["pauses", "duration-lie", "header-lie"] {
        if faults.contains(fault) {
            assert!(
                truth
                    .recordings
                    .iter()
                    .any(|t| t.faults.iter().any(|f| f == fault)
                        && t.expected_outcome != "Purged"
                        && t.expected_outcome != "Archived"),
                "{name}: the scenario has no {fault} recording to check"
            );
        }
    }
    let outcomes = custos::package::outcomes(&out).unwrap();
    let hashes = custos::package::exported_hashes(&out).unwrap();
    assert_eq!(
        outcomes.len(),
        truth.recordings.len(),
        "{name}: an item was lost or duplicated"
    );
    for t in &truth.recordings {
        assert_eq!(
            outcomes.get(&t.id),
            Some(&t.expected_outcome),
            "{name}: {}",
            t.id
        );
        if t.expected_outcome == "Exported" {
            let want = match (source, &retrieval) {
                (SourceKind::Genesys, Retrieval::Transcode(f)) => {
                    &t.formats[&custos_sim::audio::Codec::from_format_id(f).unwrap()].sha256
                }
                _ => &t.sha256,
            };
            assert_eq!(
                hashes.get(&t.id),
                Some(want),
                "{name}: {} is not the true recording",
                t.id
            );
        }
    }
    // Every duration read from a whole file is the audio's true one; a lying recording says why.
    let mut rows = csv::Reader::from_path(out.join("data/chain_of_custody.csv")).unwrap();
    let by_id: std::collections::BTreeMap<_, _> = truth
        .recordings
        .iter()
        .map(|t| (t.id.as_str(), t))
        .collect();
    for row in rows.deserialize::<std::collections::BTreeMap<String, String>>() {
        let row = row.unwrap();
        let t = by_id[row["Recording_ID"].as_str()];
        // (A file cut short is read as what it holds; it is Corrupted for the damage.)
        let whole = row["Outcome"] == "Exported" || t.faults.iter().all(|f| f == "duration-lie");
        if let (true, Ok(s)) = (whole, row["Media_Duration_S"].parse::<f64>()) {
            assert!(
                (s - t.duration_ms as f64 / 1000.0).abs() <= 0.05,
                "{name}: {} read as {s} s, truly {} ms",
                t.id,
                t.duration_ms
            );
        }
        // Every kept file's duration was compared with a stated one, in every mode.
        if !row["File_Name"].is_empty() && !row["Media_Duration_S"].is_empty() {
            assert_eq!(row["Duration_Checked"], "yes", "{name}: {row:?}");
        }
        if t.faults.iter().any(|f| f == "pauses") && row["Outcome"] == "Exported" {
            assert!(
                row["Stated_Duration_Source"].contains("pause")
                    || row["Stated_Duration_Source"] == "outputDurationMs"
                    || row["Stated_Duration_Source"] == "durationMs",
                "{name}: {row:?}"
            );
        }
        if t.faults.iter().any(|f| f == "header-lie") && row["Outcome"] == "Corrupted" {
            // The header's duration agrees with the metadata: the damage the content shows is
            // the reason, not a duration mismatch.
            assert!(
                row["Reason"].starts_with("damaged audio: "),
                "{name}: {row:?}"
            );
        }
        if t.faults.iter().any(|f| f == "duration-lie") && row["Outcome"] == "Corrupted" {
            assert!(
                row["Reason"].contains("duration mismatch") && !row["Stated_Duration_S"].is_empty(),
                "{name}: {row:?}"
            );
            assert!(row["File_Name"].starts_with("data/quarantine/"), "{row:?}");
        }
    }
    let v = custos::verify::verify(&out, &Default::default()).unwrap();
    assert!(v.findings.is_empty(), "{name}: {:?}", v.findings);
    let stats = running.sim.stats();
    assert_eq!(stats.bearer_on_media, 0, "{name}");
    if stats.storm_429 > 0 {
        // Every Retry-After is honoured in full, however long, and reported.
        let after = running.sim.scenario().faults.storm_retry_after_s;
        assert!(
            report.rate_limit_wait >= std::time::Duration::from_secs(after),
            "{name}: waited {:?} for a Retry-After of {after} s",
            report.rate_limit_wait
        );
    }
    assert!(
        stats.rate_limited * 100 <= stats.api_requests.max(1),
        "{name}: {} of {} requests were 429s",
        stats.rate_limited,
        stats.api_requests
    );
    eprintln!(
        "{name:>16}: {} items, {} API calls, injected: 5xx {} storm-429 {} media {:?} expired {} purged {} drift {}; window 429s {}; outcomes {:?}",
        report.tally.items,
        stats.api_requests,
        stats.injected_5xx,
        stats.storm_429,
        stats.media_faults,
        stats.expired_url_hits,
        stats.purged,
        stats.drift_revealed,
        stats.rate_limited,
        report.tally.counts
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn each_fault_alone_and_all_together() {
    let wav = || Retrieval::Transcode("WAV".into());
    use SourceKind::{Genesys, Search};
    let cases: Vec<(&str, &str, SourceKind, Retrieval)> = vec![
        ("none", "", Genesys, Retrieval::Batch),
        ("purge", "purge=0.2", Genesys, Retrieval::Batch),
        ("truncate", "truncate=0.3", Genesys, Retrieval::Batch),
        (
            "truncate-always",
            "truncate=0.2,fault-attempts=0",
            Genesys,
            Retrieval::Batch,
        ),
        ("length-over", "length-over=0.3", Genesys, Retrieval::Batch),
        (
            "length-under",
            "length-under=0.3,fault-attempts=0",
            Genesys,
            wav(),
        ),
        ("5xx", "5xx=0.1", Genesys, Retrieval::Batch),
        (
            "429-storm",
            "429-storm=40,storm-retry-after=1",
            Genesys,
            Retrieval::Batch,
        ),
        (
            "long-retry-after",
            "429-storm=45,storm-retry-after=6",
            Genesys,
            Retrieval::Batch,
        ),
        ("token-expiry", "token-expiry=25", Genesys, Retrieval::Batch),
        ("drift", "drift=5", Genesys, Retrieval::Batch),
        ("duplicates", "duplicates", Genesys, Retrieval::Batch),
        (
            "length-under-b",
            "length-under=0.3,fault-attempts=0",
            Genesys,
            Retrieval::Batch,
        ),
        ("duration-lie", "duration-lie=0.3", Genesys, wav()),
        (
            "duration-lie-batch",
            "duration-lie=0.3",
            Genesys,
            Retrieval::Batch,
        ),
        ("pauses", "pauses=0.5", Genesys, Retrieval::Batch),
        ("pauses-wav", "pauses=0.5", Genesys, wav()),
        ("pauses-s", "pauses=0.5", Search, Retrieval::Batch),
        (
            "duration-lie-webm",
            "duration-lie=0.3",
            Genesys,
            Retrieval::Transcode("WEBM".into()),
        ),
        (
            "duration-lie-mp3",
            "duration-lie=0.3",
            Genesys,
            Retrieval::Transcode("MP3".into()),
        ),
        (
            "duration-lie-s",
            "duration-lie=0.3",
            Search,
            Retrieval::Batch,
        ),
        ("slow-transcode", "slow-transcode=0.3", Genesys, wav()),
        (
            "expired-urls",
            "expired-urls=0.3",
            Genesys,
            Retrieval::Batch,
        ),
        (
            "all-batch",
            "purge=0.1,truncate=0.1,length-over=0.1,length-under=0.1,duration-lie=0.1,pauses=0.2,5xx=0.05,429-storm=60,storm-retry-after=1,token-expiry=40,drift=4,duplicates,expired-urls=0.1",
            Genesys,
            Retrieval::Batch,
        ),
        (
            "all-transcode",
            "purge=0.1,truncate=0.1,length-over=0.1,length-under=0.1,duration-lie=0.1,pauses=0.2,5xx=0.05,429-storm=60,storm-retry-after=1,token-expiry=40,drift=4,duplicates,slow-transcode=0.1,expired-urls=0.1",
            Genesys,
            wav(),
        ),
    ];
    for (name, faults, source, retrieval) in cases {
        run_case(name, faults, source, retrieval).await;
    }
}

/// With the client's rate set far above the server's (search API: 5 requests per second), the
/// exporter still gets no 429: it reads `inin-ratelimit-*` and waits for the window to reset.
#[tokio::test]
async fn exhausted_rate_windows_are_waited_out_before_a_429() {
    let s = Scenario {
        conversations: 6,
        max_recording_s: 6,
        search_rate: 5,
        ..Scenario::default()
    };
    let running = Sim::new(s).unwrap().spawn().await.unwrap();
    let out = out_dir("windows");
    let mut cfg = config(&running, out.clone(), SourceKind::Search, Retrieval::Batch);
    cfg.rate_per_minute = 60_000;
    cfg.concurrency = 1;
    cfg.page_size = 100;
    let report = custos::export(&cfg, &NoProgress).await.unwrap();
    let stats = running.sim.stats();
    assert_eq!(stats.rate_limited, 0, "{stats:?}");
    assert!(!report.rate_limit_wait.is_zero());
    assert!(report.tally.items > 5);
    std::fs::remove_dir_all(&out).unwrap();
}

/// Ids that are hostile as file names, served by the API itself, end `Failed` with the reason;
/// nothing is written for them, inside or outside the package, and the package still verifies.
#[tokio::test]
async fn hostile_ids_from_the_api_are_failed_and_write_nothing() {
    let mut s = Scenario {
        conversations: 10,
        max_recording_s: 6,
        api_rate: 6_000,
        batch_ms_per_item: 1,
        async_job_ms: 50,
        ..Scenario::default()
    };
    s.faults.apply_list("hostile-ids").unwrap();
    let running = Sim::new(s).unwrap().spawn().await.unwrap();
    let out = out_dir("hostile").join("export");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let cfg = config(&running, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    custos::export(&cfg, &NoProgress).await.unwrap();
    let outcomes = custos::package::outcomes(&out).unwrap();
    // The custody record writes them as cells no spreadsheet runs and no terminal obeys.
    for id in custos_sim::scenario::HOSTILE_IDS {
        let cell = custos::custody::csv_cell(id);
        assert_eq!(
            outcomes.get(cell.as_ref()).map(String::as_str),
            Some("Failed"),
            "{id:?}"
        );
    }
    let csv = std::fs::read_to_string(out.join("data/chain_of_custody.csv")).unwrap();
    assert!(csv.contains("unsafe id"));
    for file in ["data/chain_of_custody.csv", "data/manifest.csv"] {
        let mut r = csv::Reader::from_path(out.join(file)).unwrap();
        for row in r.records() {
            for cell in row.unwrap().iter() {
                assert!(
                    !cell.starts_with(['=', '+', '-', '@']) && !cell.chars().any(char::is_control),
                    "{file}: {cell:?}"
                );
            }
        }
    }
    // Nothing escaped: the export's parent holds only the export, and no file is named after a hostile id.
    let siblings: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(siblings, vec![std::ffi::OsString::from("export")]);
    for f in custos::package::payload_files(&out).unwrap() {
        assert!(
            !f.0.contains("..") && !f.0.ends_with("/x") && !f.0.contains('\\'),
            "{}",
            f.0
        );
    }
    // The real recordings are untouched by the hostile neighbours, and the package verifies.
    for t in running.sim.truth().recordings {
        assert_eq!(outcomes.get(&t.id), Some(&t.expected_outcome));
    }
    let v = custos::verify::verify(&out, &Default::default()).unwrap();
    assert!(v.findings.is_empty(), "{:?}", v.findings);
    assert!(custos::custody::check_chain(&out.join("data/custody_log.jsonl")).is_ok());
    std::fs::remove_dir_all(out.parent().unwrap()).unwrap();
}

/// `header-lie`: the container's own header (here the Ogg Opus last granule position) agrees
/// with the metadata; only the packets say the audio holds a third of it.
#[tokio::test]
async fn an_ogg_opus_granule_that_agrees_with_the_metadata_is_caught_by_its_packets() {
    run_case(
        "header-lie-ogg",
        "header-lie=0.5",
        SourceKind::Genesys,
        Retrieval::Transcode("OGG_OPUS".into()),
    )
    .await;
}

/// `header-lie` in a WebM: its `Duration` agrees with the metadata, its blocks do not.
#[tokio::test]
async fn a_webm_duration_that_agrees_with_the_metadata_is_caught_by_its_blocks() {
    run_case(
        "header-lie-webm",
        "header-lie=0.5",
        SourceKind::Genesys,
        Retrieval::Transcode("WEBM".into()),
    )
    .await;
}

/// `header-lie` in a WAV: its data size agrees with the metadata, its bytes do not.
#[tokio::test]
async fn a_wav_data_size_that_agrees_with_the_metadata_is_caught_by_its_bytes() {
    run_case(
        "header-lie-wav",
        "header-lie=0.5",
        SourceKind::Genesys,
        Retrieval::Transcode("WAV".into()),
    )
    .await;
}

/// Orphan recordings whose ids are hostile as file names (`--collect-orphans`) end `Failed`
/// with the reason, write nothing, and the real orphans are still collected.
#[tokio::test]
async fn hostile_orphan_ids_are_failed_and_write_nothing() {
    let mut s = Scenario {
        conversations: 10,
        max_recording_s: 6,
        api_rate: 6_000,
        batch_ms_per_item: 1,
        async_job_ms: 50,
        ..Scenario::default()
    };
    s.faults.apply_list("hostile-ids").unwrap();
    let running = Sim::new(s).unwrap().spawn().await.unwrap();
    let out = out_dir("hostile-orphans").join("export");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let mut cfg = config(&running, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    cfg.orphans = true;
    cfg.collect_orphans = true;
    custos::export(&cfg, &NoProgress).await.unwrap();
    let rows = custos::package::custody_rows(&out).unwrap();
    for id in custos_sim::scenario::HOSTILE_IDS {
        let id = custos_sim::hostile_orphan_id(id);
        let cell = custos::custody::csv_cell(&id);
        let row = rows
            .iter()
            .find(|r| r.conversation_id.is_empty() && r.recording_id == cell.as_ref())
            .unwrap_or_else(|| panic!("no orphan row for {id:?}"));
        assert_eq!(row.outcome, "Failed", "{id:?}");
        assert!(row.file_name.is_empty(), "{id:?}");
    }
    let truth = running.sim.truth();
    for o in &truth.orphan_media {
        let row = rows.iter().find(|r| r.recording_id == o.id).unwrap();
        assert_eq!(
            (row.outcome.as_str(), row.sha256.as_str()),
            ("Exported", o.wav_sha256.as_str())
        );
    }
    // Nothing escaped the package, nor was named after a hostile id inside it.
    let siblings: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(siblings, vec![std::ffi::OsString::from("export")]);
    let orphans: Vec<_> = std::fs::read_dir(out.join("data/orphans"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(orphans.len(), 2 * truth.orphan_media.len(), "{orphans:?}");
    let v = custos::verify::verify(&out, &Default::default()).unwrap();
    assert!(v.findings.is_empty(), "{:?}", v.findings);
    std::fs::remove_dir_all(out.parent().unwrap()).unwrap();
}
