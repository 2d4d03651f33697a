//! End-to-end exports against the simulator over HTTP on 127.0.0.1: every exported file equals
//! the ground truth, every manifest item has exactly the outcome the truth expects, no bearer
//! token reaches a media URL, the bag validates, and a re-run changes nothing.

use std::collections::BTreeMap;

use custos::export::{NoProgress, Retrieval, Selection, SourceKind};
use custos::model::Outcome;
use custos_sim::{Scenario, Sim};

use crate::common::{config, out_dir};

type Env = custos_sim::Running;

async fn start(scenario: Scenario) -> Env {
    Sim::new(scenario).unwrap().spawn().await.unwrap()
}

fn scenario() -> Scenario {
    let mut s = Scenario {
        conversations: 60,
        api_rate: 6_000,
        max_recording_s: 20,
        transcode_ms: 50,
        batch_ms_per_item: 1,
        async_job_ms: 100,
        ..Scenario::default()
    };
    s.faults.purge = 0.1;
    s
}

/// Checks the export in `out` against the simulator's truth; `format` picks the rendition.
fn check_against_truth(
    env: &Env,
    out: &std::path::Path,
    format: Option<custos_sim::audio::Codec>,
) -> BTreeMap<Outcome, u64> {
    let truth = env.sim.truth();
    let mut rows = csv::Reader::from_path(out.join("data/chain_of_custody.csv")).unwrap();
    let mut seen = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for row in rows.records() {
        let row = row.unwrap();
        let rid = row.get(0).unwrap().to_owned();
        assert!(seen.insert(rid.clone(), ()).is_none(), "{rid} has two rows");
        let t = truth
            .recordings
            .iter()
            .find(|r| r.id == rid)
            .expect("in the catalog");
        let outcome = row.get(6).unwrap();
        assert_eq!(
            outcome,
            t.expected_outcome,
            "{rid}: {}",
            row.get(10).unwrap()
        );
        *counts.entry(Outcome::parse(outcome).unwrap()).or_default() += 1;
        if outcome == "Exported" {
            let want = match format {
                Some(f) => &t.formats[&f].sha256,
                None => &t.sha256,
            };
            assert_eq!(row.get(2).unwrap(), want, "{rid}");
            let file = out.join(row.get(1).unwrap());
            assert_eq!(&custos::durable::sha256_file(&file).unwrap().0, want);
            assert!(std::fs::metadata(&file).unwrap().permissions().readonly());
            let sidecar = std::fs::read_to_string(format!("{}.sha256", file.display())).unwrap();
            assert_eq!(
                sidecar,
                format!("{want}  {}\n", file.file_name().unwrap().to_str().unwrap())
            );
            assert!(out.join(format!("data/metadata/{rid}.json")).exists());
        }
    }
    // Every recording of the range is in the manifest (the truth's range is the whole catalog).
    assert_eq!(seen.len(), truth.recordings.len());
    assert_eq!(env.sim.stats().bearer_on_media, 0);
    custos::package::validate_bag(out).unwrap();
    check_custody_log(out, seen.len());
    counts
}

/// The custody log chains, names every stage and outcome, ends with the sealing event whose
/// hash bag-info records, and holds no secret.
fn check_custody_log(out: &std::path::Path, items: usize) {
    let path = out.join("data/custody_log.jsonl");
    let check = custos::custody::check_chain(&path).unwrap();
    assert_eq!(check.torn_bytes, 0);
    let events = custos::custody::read_events(&path).unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for k in [
        "export-run",
        "query-recorded",
        "manifest-sealed",
        "http",
        "outcome",
    ] {
        assert!(kinds.contains(&k), "no {k} event");
    }
    assert_eq!(*kinds.last().unwrap(), "package-sealing");
    assert_eq!(
        kinds.iter().filter(|k| **k == "outcome").count(),
        items,
        "one outcome event per item"
    );
    let info = std::fs::read_to_string(out.join("bag-info.txt")).unwrap();
    assert!(info.contains(&format!("Custody-Log-Head: {}", check.head)));
    let text = std::fs::read_to_string(&path).unwrap();
    for secret in ["custos-sim-secret", "signature=", "Bearer", "access_token"] {
        assert!(!text.contains(secret), "the custody log contains {secret}");
    }
    assert!(events.iter().all(
        |e| e["actor"]["oauthClientId"] == "custos-sim-client" && e["tool"]["name"] == "custos"
    ));
}

#[tokio::test]
async fn genesys_batch_export_matches_the_truth_and_reruns_change_nothing() {
    let env = start(scenario()).await;
    let out = out_dir("batch");
    let cfg = config(&env, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    let r = custos::export(&cfg, &NoProgress).await.unwrap();
    let counts = check_against_truth(&env, &out, None);
    for o in [Outcome::Exported, Outcome::Purged, Outcome::Archived] {
        assert!(
            counts.get(&o).copied().unwrap_or(0) > 0,
            "{o} missing from {counts:?}"
        );
    }
    assert_eq!(r.tally[Outcome::Exported], counts[&Outcome::Exported]);
    assert!(!r.resumed && !r.already_complete);
    let query: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("data/query.json")).unwrap()).unwrap();
    assert_eq!(query["exporter"]["oauthClientId"], "custos-sim-client");
    assert_eq!(
        query["exporter"]["operator"],
        "Test Operator <t@example.invalid>"
    );
    assert!(
        query["requests"][0]["url"]
            .as_str()
            .unwrap()
            .ends_with("/details/jobs")
    );
    assert!(
        !std::fs::read_to_string(out.join("data/query.json"))
            .unwrap()
            .contains("custos-sim-secret")
    );

    let before = std::fs::read(out.join("tagmanifest-sha256.txt")).unwrap();
    let again = custos::export(&cfg, &NoProgress).await.unwrap();
    assert!(again.already_complete);
    assert_eq!(again.api_calls, 0, "a finished export sends no API request");
    assert_eq!(
        std::fs::read(out.join("tagmanifest-sha256.txt")).unwrap(),
        before
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn genesys_transcode_export_matches_the_truth() {
    let env = start(scenario()).await;
    let out = out_dir("transcode");
    let cfg = config(
        &env,
        out.clone(),
        SourceKind::Genesys,
        Retrieval::Transcode("OGG_OPUS".into()),
    );
    custos::export(&cfg, &NoProgress).await.unwrap();
    check_against_truth(&env, &out, Some(custos_sim::audio::Codec::OggOpus));
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn search_export_matches_the_truth() {
    let env = start(scenario()).await;
    let out = out_dir("search");
    let cfg = config(&env, out.clone(), SourceKind::Search, Retrieval::Batch);
    custos::export(&cfg, &NoProgress).await.unwrap();
    check_against_truth(&env, &out, None);
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn download_faults_are_retried_and_never_exported_wrong() {
    let mut s = scenario();
    s.faults
        .apply_list("truncate=0.3,length-over=0.2,expired-urls=0.3")
        .unwrap();
    let env = start(s).await;
    let out = out_dir("faults");
    let cfg = config(&env, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    custos::export(&cfg, &NoProgress).await.unwrap();
    check_against_truth(&env, &out, None);
    let stats = env.sim.stats();
    assert!(
        stats.media_faults.values().sum::<u64>() > 0 && stats.expired_url_hits > 0,
        "{stats:?}"
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn persistent_size_lies_in_transcode_mode_are_corrupted_not_exported() {
    let mut s = scenario();
    s.faults
        .apply_list("length-under=1,fault-attempts=0,purge=0")
        .unwrap();
    let env = start(s).await;
    let out = out_dir("corrupt");
    let cfg = config(
        &env,
        out.clone(),
        SourceKind::Genesys,
        Retrieval::Transcode("WAV".into()),
    );
    let r = custos::export(&cfg, &NoProgress).await.unwrap();
    assert_eq!(r.tally[Outcome::Exported], 0);
    assert!(r.tally[Outcome::Corrupted] > 0);
    assert_eq!(
        std::fs::read_dir(out.join("data"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name() == "recordings")
            .count(),
        0
    );
    custos::package::validate_bag(&out).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_is_written() {
    let env = start(scenario()).await;
    let out = out_dir("bad");
    let mut cfg = config(&env, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    for (query, needle) in [
        ("timestamp:[2023-10-01T00:00:00Z TO", "column"),
        ("colour:red", "unknown field"),
        ("ani:x", "needs a timestamp range"),
    ] {
        cfg.selection = Selection::Query(query.into());
        let e = custos::export(&cfg, &NoProgress)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{query}: {e}");
        assert!(!out.exists());
    }
    cfg.selection =
        Selection::Query("timestamp:[2023-10-01T00:00:00Z TO 2023-10-02T00:00:00Z}".into());
    cfg.credentials.client_secret = "wrong".into();
    let e = custos::export(&cfg, &NoProgress)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("authentication failed") && !e.contains("wrong"),
        "{e}"
    );
    assert!(!out.exists());
    cfg.credentials.client_secret = env.sim.scenario().clients[0].secret.clone();
    cfg.api_base = "http://example.invalid".into();
    assert!(
        custos::export(&cfg, &NoProgress)
            .await
            .unwrap_err()
            .to_string()
            .contains("plain http")
    );
    assert!(!out.exists());
}

#[tokio::test]
async fn conversations_appearing_while_paging_are_neither_lost_nor_duplicated() {
    for source in [SourceKind::Genesys, SourceKind::Search] {
        let mut s = scenario();
        s.faults.apply_list("drift=6,duplicates,purge=0").unwrap();
        let env = start(s).await;
        let out = out_dir(&format!("drift-{}", source.as_str()));
        let mut cfg = config(&env, out.clone(), source, Retrieval::Batch);
        cfg.page_size = 10;
        // Within the simulator's 35 days, so genesys pages the synchronous query.
        cfg.now = Some(time::macros::datetime!(2023-10-09 00:00 UTC));
        custos::export(&cfg, &NoProgress).await.unwrap();
        if source == SourceKind::Genesys {
            let q: serde_json::Value =
                serde_json::from_slice(&std::fs::read(out.join("data/query.json")).unwrap())
                    .unwrap();
            assert!(
                q["requests"][0]["url"]
                    .as_str()
                    .unwrap()
                    .ends_with("/details/query")
            );
        }
        assert!(env.sim.truth().recordings.iter().any(|r| r.late));
        check_against_truth(&env, &out, None);
        assert_eq!(env.sim.stats().drift_revealed, 6);
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[tokio::test]
async fn ids_files_export_exactly_the_listed_recordings_and_account_for_unknown_ids() {
    for source in [SourceKind::Genesys, SourceKind::Search] {
        let env = start(Scenario {
            faults: Default::default(),
            ..scenario()
        })
        .await;
        let truth = env.sim.truth();
        let avail: Vec<_> = truth
            .recordings
            .iter()
            .filter(|r| r.file_state == "AVAILABLE")
            .collect();
        let out = out_dir(&format!("ids-{}", source.as_str()));
        let ids = out_dir(&format!("ids-{}.txt", source.as_str()));
        let (text, expected): (String, Vec<&str>) = match source {
            SourceKind::Genesys => {
                // A whole conversation, one named recording, and three ids the org does not
                // know (two whole conversations: both rows have no recording id).
                let whole = &avail[0].conversation_id;
                let all: Vec<&str> = truth
                    .recordings
                    .iter()
                    .filter(|r| &r.conversation_id == whole)
                    .map(|r| r.id.as_str())
                    .collect();
                let text = format!(
                    "# matter 42\n{whole}\n{},{}\nno-such-conversation\nno-such-conversation-2\n{whole},no-such-recording\n",
                    avail[5].conversation_id, avail[5].id
                );
                (
                    text,
                    all.into_iter().chain([avail[5].id.as_str()]).collect(),
                )
            }
            SourceKind::Search => (
                format!("{}\n{}\nno-such-recording\n", avail[0].id, avail[5].id),
                vec![avail[0].id.as_str(), avail[5].id.as_str()],
            ),
        };
        std::fs::write(&ids, text).unwrap();
        let mut cfg = config(&env, out.clone(), source, Retrieval::Batch);
        cfg.selection = Selection::Ids(ids.clone());
        let r = custos::export(&cfg, &NoProgress).await.unwrap();
        let unknown = if source == SourceKind::Genesys { 3 } else { 1 };
        assert_eq!(
            r.tally[Outcome::Exported],
            expected.len() as u64,
            "{source:?}"
        );
        assert_eq!(
            r.tally[Outcome::Purged],
            unknown,
            "unknown ids are accounted for as Purged"
        );
        let exported = custos::package::exported_hashes(&out).unwrap();
        for id in &expected {
            let t = truth.recordings.iter().find(|r| &r.id == id).unwrap();
            assert_eq!(exported[*id], t.sha256);
        }
        let q: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("data/query.json")).unwrap()).unwrap();
        assert!(q["query"].is_null());
        assert_eq!(q["ids"]["fileSha256"].as_str().unwrap().len(), 64);
        let csv = std::fs::read_to_string(out.join("data/chain_of_custody.csv")).unwrap();
        assert!(csv.contains("ids-file:"));
        custos::package::validate_bag(&out).unwrap();
        // Rows are told apart by conversation and recording id: two unknown conversations are
        // two items, not one duplicated.
        let v = custos::verify::verify(&out, &Default::default()).unwrap();
        assert!(v.findings.is_empty(), "{source:?}: {:?}", v.findings);
        std::fs::remove_dir_all(&out).unwrap();
        std::fs::remove_file(&ids).unwrap();
    }
}

#[tokio::test]
async fn a_directory_is_never_reused_for_another_query_or_source() {
    let env = start(scenario()).await;
    let out = out_dir("reuse");
    let cfg = config(&env, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    custos::export(&cfg, &NoProgress).await.unwrap();
    let mut other = cfg.clone();
    other.selection =
        Selection::Query("timestamp:[2023-10-01T00:00:00.000Z TO 2023-10-02T00:00:00.000Z}".into());
    assert!(
        custos::export(&other, &NoProgress)
            .await
            .unwrap_err()
            .to_string()
            .contains("different query")
    );
    let mut other = cfg.clone();
    other.source = SourceKind::Search;
    assert!(
        custos::export(&other, &NoProgress)
            .await
            .unwrap_err()
            .to_string()
            .contains("this export was started with --source genesys; this run gives search")
    );
    // A non-empty directory that is not an export is refused too.
    let stranger = out_dir("stranger");
    std::fs::create_dir_all(&stranger).unwrap();
    std::fs::write(stranger.join("notes.txt"), "mine").unwrap();
    let mut other = cfg.clone();
    other.out = stranger.clone();
    assert!(
        custos::export(&other, &NoProgress)
            .await
            .unwrap_err()
            .to_string()
            .contains("not empty")
    );
    assert_eq!(
        std::fs::read_dir(&stranger).unwrap().count(),
        1,
        "nothing was written into it"
    );
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_dir_all(&stranger).unwrap();
}

/// An export killed after making its directories but before its job database existed left an
/// empty skeleton: the same command resumes into it. Anything else in the way is still refused.
#[tokio::test]
async fn an_empty_skeleton_from_a_killed_run_is_resumed_not_refused() {
    let env = start(scenario()).await;
    let out = out_dir("skeleton");
    std::fs::create_dir_all(out.join(".custos")).unwrap();
    std::fs::create_dir_all(out.join("data")).unwrap();
    let cfg = config(&env, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    custos::export(&cfg, &NoProgress).await.unwrap();
    check_against_truth(&env, &out, None);
    std::fs::remove_dir_all(&out).unwrap();

    std::fs::create_dir_all(out.join("data")).unwrap();
    std::fs::write(out.join("data/someone-elses.txt"), "x").unwrap();
    let e = custos::export(&cfg, &NoProgress).await.unwrap_err();
    assert!(e.to_string().contains("is not empty"), "{e}");
    std::fs::remove_dir_all(&out).unwrap();
}

/// A batch job that never completes is not polled for ever: after the job deadline its items
/// end Failed with the reason (as a transcode that never finishes does), and the export ends.
#[tokio::test]
async fn a_batch_job_that_never_completes_is_given_up_at_the_deadline() {
    let env = start(Scenario {
        conversations: 4,
        batch_ms_per_item: 3_600_000,
        faults: Default::default(),
        ..scenario()
    })
    .await;
    let out = out_dir("batch-deadline");
    let mut cfg = config(&env, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    cfg.job_deadline = std::time::Duration::from_secs(2);
    let started = std::time::Instant::now();
    let r = custos::export(&cfg, &NoProgress).await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(r.tally[Outcome::Failed] > 0);
    assert_eq!(r.tally[Outcome::Exported], 0);
    let mut rows = csv::Reader::from_path(out.join("data/chain_of_custody.csv")).unwrap();
    let failed: Vec<String> = rows
        .records()
        .map(|x| x.unwrap())
        .filter(|x| &x[6] == "Failed")
        .map(|x| x[10].to_owned())
        .collect();
    assert!(
        failed
            .iter()
            .all(|w| w.contains("was still not complete after 2 s")),
        "{failed:?}"
    );
    std::fs::remove_dir_all(&out).unwrap();
}

/// The custody log's events named `event`, parsed.
fn events(out: &std::path::Path, event: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("data/custody_log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == event)
        .collect()
}

/// A query whose interval (read through an analytics job, the data lake) ends after the lake's
/// `dataAvailabilityDate`: the simulator's job leaves out the conversations after it, as
/// Genesys does, and the export says so (custody event, completeness file, report) instead of
/// sealing a short answer as the whole.
#[tokio::test]
async fn an_interval_past_the_data_lake_is_reported_short() {
    let mut s = scenario();
    s.analytics_now = Some(time::macros::datetime!(2023-10-06 00:00 UTC));
    let env = start(s).await;
    let out = out_dir("lake-short");
    let cfg = config(&env, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    let r = custos::export(&cfg, &NoProgress).await.unwrap();
    assert!(r.completeness.analytics_short(), "{:?}", r.completeness);
    let a = &r.completeness.analytics_data_availability;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(
        a[0].data_availability_date.as_deref(),
        Some("2023-10-05T23:00:00.000Z")
    );
    assert!(
        a[0].interval.ends_with("/2023-10-08T00:00:00.000Z"),
        "{a:?}"
    );
    let logged = events(&out, "analytics-data-availability");
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["coversInterval"], false);
    assert!(
        logged[0]["note"]
            .as_str()
            .unwrap()
            .contains("may be missing")
    );
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("data/completeness.json")).unwrap())
            .unwrap();
    assert_eq!(c["analyticsDataAvailability"][0]["coversInterval"], false);
    // The report in the bag says so, for a reader who never opens the JSON.
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        report.contains("WARNING: complete only up to 2023-10-05T23:00:00.000Z"),
        "the report does not warn"
    );
    // What the job left out is really missing: the truth holds more than the manifest.
    let truth = env.sim.truth();
    assert!(r.tally.items > 0 && (r.tally.items as usize) < truth.recordings.len());
    let v = custos::verify::verify(&out, &Default::default()).unwrap();
    assert!(v.findings.is_empty(), "{:?}", v.findings);
    std::fs::remove_dir_all(&out).unwrap();
}

/// The same query with the data lake complete past the interval's end: recorded as covered.
#[tokio::test]
async fn an_interval_inside_the_data_lake_is_recorded_as_covered() {
    let env = start(scenario()).await;
    let out = out_dir("lake-covered");
    let cfg = config(&env, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    let r = custos::export(&cfg, &NoProgress).await.unwrap();
    assert!(!r.completeness.analytics_short());
    let logged = events(&out, "analytics-data-availability");
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["coversInterval"], true);
    assert_eq!(
        logged[0]["source"], "the analytics job's results",
        "{logged:?}"
    );
    assert_eq!(r.tally.items as usize, env.sim.truth().recordings.len());
    std::fs::remove_dir_all(&out).unwrap();
}

/// An export without `--protect` says in its report that no hold was placed at the source,
/// rather than saying nothing about holds.
#[tokio::test]
async fn a_run_without_protect_says_no_hold_was_placed() {
    let env = start(scenario()).await;
    let out = out_dir("no-hold");
    let cfg = config(&env, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    custos::export(&cfg, &NoProgress).await.unwrap();
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        report.contains("none placed: the export ran without --protect"),
        "the report is silent about holds"
    );
    std::fs::remove_dir_all(&out).unwrap();
}

/// The draft certification of an export made with `retrieval`, from its report.
async fn certification(name: &str, retrieval: Retrieval) -> String {
    let env = start(scenario()).await;
    let out = out_dir(name);
    let cfg = config(&env, out.clone(), SourceKind::Genesys, retrieval);
    custos::export(&cfg, &NoProgress).await.unwrap();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    let cert = &html[html.find("902(14)").expect("a certification")..];
    // What was exported, and that no source-side hash exists, whatever the retrieval.
    assert!(cert.contains("Genesys provides no hash value of a recording at its source"));
    assert!(cert.contains("What was exported, by content type as received: "));
    cert.to_owned()
}

/// Transcoded calls are certified as Genesys' conversions, not as the original recordings.
#[tokio::test]
async fn the_certification_says_transcoded_calls_are_genesys_conversions() {
    let cert = certification("cert-transcode", Retrieval::Transcode("WAV".into())).await;
    assert!(cert.contains("as Genesys converted them on request to WAV"));
    assert!(cert.contains("audio/wav"));
}

/// Batch downloads are certified as the recordings in their original codec.
#[tokio::test]
async fn the_certification_says_batch_downloads_are_the_original_codec() {
    let cert = certification("cert-batch", Retrieval::Batch).await;
    assert!(cert.contains("(their original codec)"));
}
