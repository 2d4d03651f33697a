//! Preservation at the source against the simulator: `--protect` (deletion protection on every
//! manifest conversation before the first media request, read back, spared by the purge fault,
//! released later with a receipt) and `--restore-archived` (one restore per archived
//! recording, waited for, exported with the true bytes; `--no-wait` stops and resumes without
//! asking twice). Refusals (the org's limit, a missing permission) stop before any download.

use std::collections::BTreeSet;
use std::time::Duration;

use custos::export::{NoProgress, RestoreArchived, Retrieval, SourceKind};
use custos_sim::{Scenario, Sim};
use serde_json::Value;

use crate::common::{config, ffprobe_seconds, out_dir};

fn scenario() -> Scenario {
    Scenario {
        conversations: 30,
        max_recording_s: 8,
        api_rate: 6_000,
        batch_ms_per_item: 2,
        async_job_ms: 100,
        archived_fraction: 0.0,
        deleted_fraction: 0.0,
        ..Scenario::default()
    }
}

fn events(out: &std::path::Path) -> Vec<Value> {
    custos::custody::read_events(&out.join("data/custody_log.jsonl")).unwrap()
}

#[tokio::test]
async fn protect_holds_every_conversation_before_any_media_and_spares_purges_then_releases() {
    let mut s = scenario();
    s.faults.apply_list("purge=0.3").unwrap();
    let running = Sim::new(s).unwrap().spawn().await.unwrap();
    let out = out_dir("protect");
    let key = out_dir("protect-key");
    std::fs::create_dir_all(&key).unwrap();
    let pk = custos::sign::keygen(&key.join("custos.key")).unwrap();
    let mut cfg = config(&running, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    cfg.protect = true;
    cfg.sign_key = Some(key.join("custos.key"));
    custos::export(&cfg, &NoProgress).await.unwrap();
    let truth = running.sim.truth();
    let outcomes = custos::package::outcomes(&out).unwrap();
    let hashes = custos::package::exported_hashes(&out).unwrap();
    let spared: Vec<_> = truth
        .recordings
        .iter()
        .filter(|t| t.faults.iter().any(|f| f == "purge"))
        .collect();
    assert!(
        !spared.is_empty(),
        "the scenario has no purge-faulted recording"
    );
    for t in &truth.recordings {
        assert!(
            t.protected,
            "{} of {} is not protected",
            t.id, t.conversation_id
        );
        // A purge that hits a protected conversation deletes nothing.
        assert_eq!(outcomes[&t.id], "Exported", "{}", t.id);
        assert_eq!(hashes.get(&t.id), Some(&t.sha256), "{}", t.id);
    }
    assert_eq!(running.sim.stats().purged, 0);
    // Every protection was in place (and confirmed) before the first media request.
    let ev = events(&out);
    let pos = |pred: &dyn Fn(&Value) -> bool| ev.iter().position(pred);
    let confirmed = pos(&|e| e["event"] == "deletion-protection-confirmed").unwrap();
    let first_media = pos(&|e| {
        e["event"] == "download-attempt"
            || (e["event"] == "http" && e["url"].as_str().unwrap_or("").contains("batchrequests"))
    })
    .unwrap();
    assert!(
        confirmed < first_media,
        "protection confirmed at {confirmed}, first media request at {first_media}"
    );
    let protected_in_log: BTreeSet<String> = ev
        .iter()
        .filter(|e| e["event"] == "deletion-protection")
        .flat_map(|e| e["conversationIds"].as_array().unwrap().clone())
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    // Every conversation the query matched, those without any recording included.
    let conversations: BTreeSet<String> = truth
        .recordings
        .iter()
        .map(|t| t.conversation_id.clone())
        .chain(truth.conversations_without_recordings.iter().cloned())
        .collect();
    assert!(!truth.conversations_without_recordings.is_empty());
    assert_eq!(protected_in_log, conversations);
    let pkg = custos::verify::Package::open(
        &out,
        &custos::verify::VerifyOptions {
            pubkey: Some(pk.clone()),
            ..Default::default()
        },
        custos::verify::Require::Signed,
    )
    .unwrap();
    let releasable = custos::protection::releasable(&pkg).unwrap();
    assert!(releasable.refused.is_empty(), "{:?}", releasable.refused);
    let recorded: BTreeSet<String> = releasable.ids.into_iter().collect();
    assert_eq!(recorded, conversations);
    let info = std::fs::read_to_string(out.join("bag-info.txt")).unwrap();
    assert!(
        info.contains(&format!(
            "Deletion-Protection: {} conversations protected",
            conversations.len()
        )),
        "{info}"
    );
    assert!(
        custos::verify::verify(&out, &Default::default())
            .unwrap()
            .findings
            .is_empty()
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("Legal hold at the source"),
        "the report does not state the hold"
    );

    // Release: exactly that set, with a receipt that verify accepts beside the bag.
    let c = &running.sim.scenario().clients[0];
    let api = custos::http::Api::new(
        &running.base_url,
        &running.base_url,
        custos::http::Credentials {
            client_id: c.id.clone(),
            client_secret: c.secret.clone(),
        },
        6_000,
    )
    .unwrap();
    let opts = custos::protection::ReleaseOptions {
        export: out.clone(),
        pubkey: pk.clone(),
        sign_key: None,
        operator: Some("Test Operator".into()),
    };
    let r = custos::protection::release(&opts, &api).await.unwrap();
    assert_eq!(
        (r.conversations, r.released, r.still_protected),
        (conversations.len(), conversations.len(), 0)
    );
    assert!(running.sim.truth().recordings.iter().all(|t| !t.protected));
    let receipt = custos::custody::read_events(&r.receipt).unwrap();
    assert_eq!(receipt[0]["event"], "release-started");
    assert_eq!(receipt.last().unwrap()["event"], "release-complete");
    custos::custody::check_chain(&r.receipt).unwrap();
    let v = custos::verify::verify(&out, &Default::default()).unwrap();
    assert!(v.findings.is_empty(), "{:?}", v.findings);
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_dir_all(&key).unwrap();
}

#[tokio::test]
async fn protection_refused_by_the_limit_or_a_permission_stops_before_any_download() {
    for (name, limit, denied) in [
        ("limit", 5, vec![]),
        (
            "permission",
            1_000,
            vec!["recording:deletionProtection:apply".to_owned()],
        ),
    ] {
        let s = Scenario {
            protect_limit: limit,
            denied_permissions: denied,
            ..scenario()
        };
        let running = Sim::new(s).unwrap().spawn().await.unwrap();
        let out = out_dir(&format!("protect-refused-{name}"));
        let mut cfg = config(&running, out.clone(), SourceKind::Genesys, Retrieval::Batch);
        cfg.protect = true;
        let e = custos::export(&cfg, &NoProgress).await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, custos::Error::Protection(_)), "{name}: {msg}");
        assert!(e.is_permanent(), "{name}");
        let want = if name == "limit" { "limit" } else { "missing" };
        assert!(
            msg.contains(want) && msg.contains("Nothing was downloaded"),
            "{name}: {msg}"
        );
        let stats = running.sim.stats();
        assert_eq!(stats.media_requests, 0, "{name}");
        assert!(
            !stats.requests.keys().any(|k| k.contains("batchrequests")),
            "{name}: {:?}",
            stats.requests
        );
        // What was protected is what the simulator holds, and the log says so.
        let held = running
            .sim
            .truth()
            .recordings
            .iter()
            .filter(|t| t.protected)
            .map(|t| t.conversation_id.clone())
            .collect::<BTreeSet<_>>();
        assert_eq!(held.len(), if name == "limit" { 5 } else { 0 }, "{name}");
        assert!(
            events(&out)
                .iter()
                .any(|e| e["event"] == "deletion-protection-refused"
                    || e["event"] == "deletion-protection")
        );
        std::fs::remove_dir_all(&out).unwrap();
    }
}

fn archived_scenario(restore_ms: u64) -> Scenario {
    Scenario {
        archived_fraction: 0.3,
        restore_ms,
        ..scenario()
    }
}

fn restore(wait: bool) -> Option<RestoreArchived> {
    Some(RestoreArchived {
        days: 7,
        wait,
        poll_max: Duration::from_millis(500),
    })
}

/// Every recording ends Exported with its true bytes; each archived one was restored once.
fn check_restored(running: &custos_sim::Running, out: &std::path::Path) {
    let truth = running.sim.truth();
    let archived: Vec<_> = truth
        .recordings
        .iter()
        .filter(|t| t.catalog_file_state == "ARCHIVED")
        .collect();
    assert!(
        archived.len() >= 3,
        "the scenario has {} archived recordings",
        archived.len()
    );
    let outcomes = custos::package::outcomes(out).unwrap();
    let hashes = custos::package::exported_hashes(out).unwrap();
    for t in &truth.recordings {
        assert_eq!(outcomes[&t.id], "Exported", "{}", t.id);
        assert_eq!(hashes.get(&t.id), Some(&t.sha256), "{}", t.id);
    }
    for t in &archived {
        assert_eq!(
            t.restore_requests, 1,
            "{} was asked to be restored {} times",
            t.id, t.restore_requests
        );
        assert_eq!(t.file_state, "RESTORED");
    }
    let mut rows = csv::Reader::from_path(out.join("data/chain_of_custody.csv")).unwrap();
    let restored_rows = rows
        .deserialize::<std::collections::BTreeMap<String, String>>()
        .map(Result::unwrap)
        .filter(|r| {
            r["Reason"].starts_with("restored from archive")
                && r["Reason"].contains("archived again from")
        })
        .count();
    assert_eq!(restored_rows, archived.len());
    let info = std::fs::read_to_string(out.join("bag-info.txt")).unwrap();
    assert!(
        info.contains(&format!(
            "Restored-From-Archive: {0} of {0} restores asked for",
            archived.len()
        )),
        "{info}"
    );
    let v = custos::verify::verify(out, &Default::default()).unwrap();
    assert!(v.findings.is_empty(), "{:?}", v.findings);
}

#[tokio::test]
async fn restore_archived_waits_for_every_restore_and_exports_the_true_bytes() {
    let running = Sim::new(archived_scenario(1_500))
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let out = out_dir("restore-wait");
    let mut cfg = config(&running, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    cfg.restore = restore(true);
    custos::export(&cfg, &NoProgress).await.unwrap();
    check_restored(&running, &out);
    let ev = events(&out);
    assert!(ev.iter().any(|e| e["event"] == "restore-done"));
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn no_wait_stops_while_restoring_and_a_rerun_continues_without_asking_again() {
    // An hour of restore on the simulator's clock: the first run cannot wait it out.
    let running = Sim::new(archived_scenario(3_600_000))
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let out = out_dir("restore-nowait");
    let mut cfg = config(&running, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    cfg.restore = restore(false);
    let archived = running
        .sim
        .truth()
        .recordings
        .iter()
        .filter(|t| t.catalog_file_state == "ARCHIVED")
        .count() as u64;
    match custos::export(&cfg, &NoProgress).await {
        Err(custos::Error::RestoresPending(n)) => assert_eq!(n, archived),
        other => panic!("expected RestoresPending, got {other:?}"),
    }
    // Everything else is exported already; nothing is sealed yet.
    assert!(!out.join("tagmanifest-sha256.txt").exists());
    // A second look before the restores finish stops again, and asks nothing twice.
    assert!(matches!(
        custos::export(&cfg, &NoProgress).await,
        Err(custos::Error::RestoresPending(_))
    ));
    running.sim.advance_clock(3_600_000);
    custos::export(&cfg, &NoProgress).await.unwrap();
    check_restored(&running, &out);
    let ev = events(&out);
    assert_eq!(
        ev.iter()
            .filter(|e| e["event"] == "restores-pending")
            .count(),
        2
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn the_completeness_report_counts_what_the_truth_holds() {
    let s = Scenario {
        archived_fraction: 0.1,
        deleted_fraction: 0.1,
        ..scenario()
    };
    let running = Sim::new(s).unwrap().spawn().await.unwrap();
    let out = out_dir("completeness");
    let cfg = config(&running, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    let report = custos::export(&cfg, &NoProgress).await.unwrap();
    let truth = running.sim.truth();
    assert!(
        !truth.conversations_without_recordings.is_empty(),
        "the scenario has no conversation without a recording"
    );
    let doc: Value =
        serde_json::from_slice(&std::fs::read(out.join("data/completeness.json")).unwrap())
            .unwrap();
    assert_eq!(doc["conversationsMatched"], truth.conversations as u64);
    let without: Vec<&str> = doc["conversationsWithoutRecordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conversationId"].as_str().unwrap())
        .collect();
    assert_eq!(without, truth.conversations_without_recordings);
    for c in doc["conversationsWithoutRecordings"].as_array().unwrap() {
        assert_eq!(c["sessionsFlaggedRecording"], 0, "{c}");
        assert!(c["conversationStart"].is_string(), "{c}");
    }
    assert_eq!(doc["recordingsListed"], truth.recordings.len() as u64);
    let mut by_state = std::collections::BTreeMap::<String, u64>::new();
    for t in &truth.recordings {
        *by_state.entry(t.catalog_file_state.clone()).or_default() += 1;
    }
    assert_eq!(
        doc["recordingsByListedFileState"],
        serde_json::to_value(&by_state).unwrap()
    );
    assert_eq!(
        doc["recordingsByMedia"]["audio"],
        truth.recordings.len() as u64
    );
    // The run's report says the same, and the file is sealed payload.
    assert_eq!(report.completeness.by_file_state, by_state);
    assert_eq!(
        report.completeness.conversations_without_recordings,
        Some(truth.conversations_without_recordings.len() as u64)
    );
    let manifest = std::fs::read_to_string(out.join("manifest-sha256.txt")).unwrap();
    assert!(manifest.contains("  data/completeness.json\n"));
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn orphans_in_the_interval_are_reported_and_those_outside_are_not() {
    // Orphans over two weeks; the query takes the first.
    let s = Scenario {
        end: time::macros::datetime!(2023-10-15 00:00 UTC),
        orphans: 12,
        ..scenario()
    };
    let running = Sim::new(s).unwrap().spawn().await.unwrap();
    let out = out_dir("orphans");
    let mut cfg = config(&running, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    cfg.orphans = true;
    let report = custos::export(&cfg, &NoProgress).await.unwrap();
    let truth = running.sim.truth();
    let week_end = "2023-10-08T00:00:00";
    let want: Vec<&str> = truth
        .orphans
        .iter()
        .filter(|(_, created)| created.as_str() < week_end)
        .map(|(id, _)| id.as_str())
        .collect();
    assert!(
        !want.is_empty() && want.len() < truth.orphans.len(),
        "{:?}",
        truth.orphans
    );
    let doc: Value =
        serde_json::from_slice(&std::fs::read(out.join("data/completeness.json")).unwrap())
            .unwrap();
    let o = &doc["orphanRecordings"];
    assert_eq!(o["listed"], truth.orphans.len() as u64);
    let got: Vec<&str> = o["inInterval"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        report.completeness.orphans_in_interval,
        Some(want.len() as u64)
    );
    // The pages are kept as received, and sealed.
    let manifest = std::fs::read_to_string(out.join("manifest-sha256.txt")).unwrap();
    assert!(manifest.contains("  data/metadata/orphans/page-0001.json\n"));
    assert!(events(&out).iter().any(|e| e["event"] == "orphans-listed"));
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn orphans_in_the_interval_are_collected_hashed_and_checked_and_those_outside_are_not() {
    // Orphans over two weeks; the query takes the first, and collects its orphans.
    let s = Scenario {
        end: time::macros::datetime!(2023-10-15 00:00 UTC),
        orphans: 12,
        ..scenario()
    };
    let running = Sim::new(s).unwrap().spawn().await.unwrap();
    let out = out_dir("orphans-collected");
    let mut cfg = config(&running, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    cfg.orphans = true;
    cfg.collect_orphans = true;
    let report = custos::export(&cfg, &NoProgress).await.unwrap();
    let truth = running.sim.truth();
    let week_end = "2023-10-08T00:00:00";
    let want: Vec<&custos_sim::OrphanTruth> = truth
        .orphan_media
        .iter()
        .filter(|o| o.created.as_str() < week_end)
        .collect();
    assert!(!want.is_empty() && want.len() < truth.orphan_media.len());
    // Each orphan of the interval is a manifest item with no conversation id, and ends
    // Exported: its WAV, hashed as the simulator made it, playing as long as it states.
    let mut rows = csv::Reader::from_path(out.join("data/chain_of_custody.csv")).unwrap();
    let head = rows.headers().unwrap().clone();
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    let orphan_rows: Vec<csv::StringRecord> = rows
        .records()
        .map(Result::unwrap)
        .filter(|r| r[col("Conversation_ID")].is_empty())
        .collect();
    assert_eq!(orphan_rows.len(), want.len());
    for o in &want {
        let r = orphan_rows
            .iter()
            .find(|r| r[col("Recording_ID")] == o.id)
            .unwrap_or_else(|| panic!("no custody row for orphan {}", o.id));
        assert_eq!(&r[col("Outcome")], "Exported", "{r:?}");
        let file = format!("data/orphans/{}.wav", o.id);
        assert_eq!(&r[col("File_Name")], file);
        assert_eq!(&r[col("SHA256_Hash")], o.wav_sha256);
        let secs = ffprobe_seconds(&out.join(&file));
        assert!(
            (secs * 1000.0 - o.duration_ms as f64).abs() < 1000.0,
            "{file}: ffprobe {secs} s, stated {} ms",
            o.duration_ms
        );
    }
    // The sidecars are what `sha256sum -c` checks, in the folder.
    let check = std::process::Command::new("sh")
        .arg("-c")
        .arg("sha256sum -c --strict *.sha256")
        .current_dir(out.join("data/orphans"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    assert_eq!(
        String::from_utf8_lossy(&check.stdout)
            .matches(": OK")
            .count(),
        want.len()
    );
    // The custody log says how they were chosen; the counts reconcile.
    let added = events(&out)
        .into_iter()
        .find(|e| e["event"] == "orphans-added")
        .expect("an orphans-added event");
    assert_eq!(added["added"], want.len() as u64);
    assert_eq!(report.completeness.orphans_added, want.len() as u64);
    assert_eq!(
        report.completeness.orphans_in_interval,
        Some(want.len() as u64)
    );
    let doc: Value =
        serde_json::from_slice(&std::fs::read(out.join("data/completeness.json")).unwrap())
            .unwrap();
    assert_eq!(doc["orphanRecordings"]["collected"], true);
    // The draft certification says they came another way than the batch download.
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        report.contains(&format!(
            "The {} orphan recording(s) collected with them",
            want.len()
        )) && report.contains("converted them on request to WAV"),
        "the certification does not say how the orphans were fetched"
    );
    // No orphan counts as a conversation: those with recordings and those without are the
    // conversations matched.
    assert_eq!(
        doc["conversationsWithRecordings"].as_u64().unwrap()
            + doc["conversationsWithoutRecordings"]
                .as_array()
                .unwrap()
                .len() as u64,
        doc["conversationsMatched"].as_u64().unwrap()
    );
    custos::package::validate_bag(&out).unwrap();
    let v = custos::verify::verify(&out, &Default::default()).unwrap();
    assert!(v.findings.is_empty(), "{:?}", v.findings);
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn collecting_orphans_from_an_id_list_is_refused_before_anything_is_written() {
    let running = Sim::new(scenario()).unwrap().spawn().await.unwrap();
    let out = out_dir("orphans-ids");
    let ids = out.with_extension("ids");
    std::fs::write(&ids, "5f4d0c1e-aaaa-4bbb-8ccc-123456789abc\n").unwrap();
    let mut cfg = config(&running, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    cfg.selection = custos::export::Selection::Ids(ids.clone());
    cfg.orphans = true;
    cfg.collect_orphans = true;
    let e = custos::export(&cfg, &NoProgress).await.unwrap_err();
    assert!(
        e.to_string().contains("--collect-orphans") && e.to_string().contains("--query"),
        "{e}"
    );
    assert!(!out.exists(), "nothing is written");
    std::fs::remove_file(&ids).unwrap();
}
