//! Every fault knob, each alone, over real HTTP.

use custos_sim::Scenario;
use custos_sim::audio::Codec;
use serde_json::{Value, json};

use crate::common::*;

fn with_faults(list: &str) -> Scenario {
    let mut s = scenario();
    s.faults.apply_list(list).unwrap();
    s
}

/// The first downloadable recording and its media URL in `format`.
async fn first_url(t: &TestSim, tok: &str, format: &str) -> (custos_sim::RecordingTruth, String) {
    let truth = t.truth();
    let rec = truth
        .recordings
        .iter()
        .find(|r| r.catalog_file_state == "AVAILABLE")
        .unwrap()
        .clone();
    let v = t
        .get_json(
            tok,
            &format!(
                "/api/v2/conversations/{}/recordings/{}?formatId={format}",
                rec.conversation_id, rec.id
            ),
        )
        .await;
    (
        rec,
        v["mediaUris"]["S"]["mediaUri"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn purge_deletes_between_listing_and_download() {
    let t = start(with_faults("purge=1")).await;
    let tok = t.token().await;
    let (rec, url) = first_url(&t, &tok, "WAV").await;
    assert_eq!(rec.expected_outcome, "Purged");
    assert_eq!(rec.file_state, "AVAILABLE");
    let r = t.download(&url).await;
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("NoSuchKey"));
    // From now on the API agrees it is gone.
    let m = t
        .get_json(
            &tok,
            &format!(
                "/api/v2/conversations/{}/recordingmetadata/{}",
                rec.conversation_id, rec.id
            ),
        )
        .await;
    assert_eq!(m["fileState"], "DELETED");
    let r = t
        .get(
            &tok,
            &format!(
                "/api/v2/conversations/{}/recordings/{}?formatId=WAV",
                rec.conversation_id, rec.id
            ),
        )
        .await;
    assert_error(r, 404, "not.found").await;
    assert_eq!(t.sim.stats().purged, 1);
    assert_eq!(
        t.truth()
            .recordings
            .iter()
            .find(|r| r.id == rec.id)
            .unwrap()
            .file_state,
        "DELETED"
    );
}

#[tokio::test]
async fn truncate_cuts_the_body_then_a_retry_succeeds() {
    let t = start(with_faults("truncate=1")).await;
    let tok = t.token().await;
    let (rec, url) = first_url(&t, &tok, "WAV").await;
    let r = t.download(&url).await;
    assert_eq!(r.status(), 200);
    let declared: u64 = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(declared, rec.formats[&Codec::Wav].size_bytes);
    assert!(
        r.bytes().await.is_err(),
        "a truncated body must surface as an error"
    );
    let body = t.download(&url).await.bytes().await.unwrap();
    assert_eq!(sha256(&body), rec.formats[&Codec::Wav].sha256);
    assert_eq!(t.sim.stats().media_faults["truncate"], 1);
}

#[tokio::test]
async fn length_over_states_more_than_it_sends() {
    let t = start(with_faults("length-over=1,fault-attempts=0")).await;
    let tok = t.token().await;
    let (rec, url) = first_url(&t, &tok, "WAV").await;
    assert_eq!(rec.expected_outcome, "Failed");
    for _ in 0..2 {
        let r = t.download(&url).await;
        let declared: u64 = r.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(declared, rec.formats[&Codec::Wav].size_bytes + 1024);
        assert!(
            r.bytes().await.is_err(),
            "fewer bytes than Content-Length must be an error"
        );
    }
}

#[tokio::test]
async fn length_under_sends_a_consistent_but_short_file() {
    let t = start(with_faults("length-under=1")).await;
    let tok = t.token().await;
    let (rec, url) = first_url(&t, &tok, "WAV").await;
    let r = t.download(&url).await;
    let declared: u64 = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len() as u64, declared);
    assert!(
        declared < rec.formats[&Codec::Wav].size_bytes,
        "only outputSizeInBytes or the hash can tell"
    );
    // fault-attempts=1 (the default): the second attempt is whole.
    assert_eq!(
        sha256(&t.download(&url).await.bytes().await.unwrap()),
        rec.formats[&Codec::Wav].sha256
    );
}

#[tokio::test]
async fn duration_lie_states_more_than_the_audio_holds() {
    let t = start(with_faults("duration-lie=1")).await;
    let tok = t.token().await;
    let (rec, url) = first_url(&t, &tok, "WAV").await;
    assert_eq!(rec.expected_outcome, "Corrupted");
    assert!(rec.duration_ms + 1000 < rec.stated_duration_ms);
    let v = t
        .get_json(
            &tok,
            &format!(
                "/api/v2/conversations/{}/recordings/{}?formatId=WAV",
                rec.conversation_id, rec.id
            ),
        )
        .await;
    assert_eq!(v["outputDurationMs"], rec.stated_duration_ms);
    let body = t.download(&url).await.bytes().await.unwrap();
    assert_eq!(sha256(&body), rec.formats[&Codec::Wav].sha256);
    // 16-bit mono PCM: the data chunk holds the true duration, not the stated one.
    let per_ms = (body.len() as u64 - 44) / rec.duration_ms;
    assert!(
        per_ms == 16 || per_ms == 96,
        "8 or 48 kHz: {per_ms} bytes/ms"
    );
    assert_eq!(body.len() as u64, 44 + rec.duration_ms * per_ms);
}

/// A secure pause is cut from the audio: the recordings list states the whole call
/// (`endTime − startTime`) and a `pause` annotation of the cut length (and a `hold`, not cut);
/// the transcode states the playable length, and the bytes hold exactly that much.
#[tokio::test]
async fn pauses_are_annotated_and_cut_from_the_audio() {
    let t = start(with_faults("pauses=1")).await;
    let tok = t.token().await;
    let (rec, url) = first_url(&t, &tok, "WAV").await;
    assert_eq!(rec.expected_outcome, "Exported");
    assert!(rec.paused_ms > 1000, "{}", rec.paused_ms);
    assert_eq!(rec.duration_ms, rec.stated_duration_ms - rec.paused_ms);
    let list = t
        .get_json(
            &tok,
            &format!(
                "/api/v2/conversations/{}/recordings?formatId=NONE&maxWaitMs=0",
                rec.conversation_id
            ),
        )
        .await;
    let mine = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == rec.id.as_str())
        .unwrap();
    let span = |v: &Value| {
        let p = |k: &str| {
            time::OffsetDateTime::parse(
                v[k].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
        };
        (p("endTime") - p("startTime")).whole_milliseconds() as u64
    };
    assert_eq!(span(mine), rec.stated_duration_ms);
    let notes = mine["annotations"].as_array().unwrap();
    let pause: Vec<&Value> = notes.iter().filter(|a| a["type"] == "pause").collect();
    assert_eq!(pause.len(), 1);
    assert_eq!(pause[0]["durationMs"], rec.paused_ms);
    assert_eq!(pause[0]["reason"], "SecurePause");
    assert!(notes.iter().any(|a| a["type"] == "hold"));
    // recordingmetadata omits system annotations, as Genesys documents.
    let meta = t
        .get_json(
            &tok,
            &format!(
                "/api/v2/conversations/{}/recordingmetadata",
                rec.conversation_id
            ),
        )
        .await;
    assert!(
        meta.as_array()
            .unwrap()
            .iter()
            .all(|m| m["annotations"] == json!([]))
    );
    let v = t
        .get_json(
            &tok,
            &format!(
                "/api/v2/conversations/{}/recordings/{}?formatId=WAV",
                rec.conversation_id, rec.id
            ),
        )
        .await;
    assert_eq!(v["outputDurationMs"], rec.duration_ms);
    let body = t.download(&url).await.bytes().await.unwrap();
    let per_ms = (body.len() as u64 - 44) / rec.duration_ms;
    assert_eq!(body.len() as u64, 44 + rec.duration_ms * per_ms);
}

#[tokio::test]
async fn server_error_bursts_are_seeded_and_counted() {
    let t = start(with_faults("5xx=0.3")).await;
    let tok = t.token().await;
    let mut n503 = 0;
    for _ in 0..60 {
        let r = t.get(&tok, "/api/v2/recording/settings").await;
        match r.status().as_u16() {
            200 => {}
            503 => {
                n503 += 1;
                assert_error(r, 503, "service.unavailable").await;
            }
            s => panic!("unexpected {s}"),
        }
    }
    assert!(n503 > 0 && n503 < 60, "{n503} of 60");
    assert_eq!(t.sim.stats().injected_5xx, n503);
    // Same seed, same requests: same answers.
    let t2 = start(with_faults("5xx=0.3")).await;
    let tok2 = t2.token().await;
    let mut again = 0;
    for _ in 0..60 {
        if t2.get(&tok2, "/api/v2/recording/settings").await.status() == 503 {
            again += 1;
        }
    }
    assert_eq!(again, n503);
}

#[tokio::test]
async fn storms_refuse_everything_until_retry_after() {
    let t = start(with_faults("429-storm=3,storm-retry-after=30")).await;
    let tok = t.token().await;
    assert_eq!(
        t.get(&tok, "/api/v2/recording/settings").await.status(),
        200
    );
    assert_eq!(
        t.get(&tok, "/api/v2/recording/settings").await.status(),
        200
    );
    let r = t.get(&tok, "/api/v2/recording/settings").await;
    assert_eq!(r.headers()["retry-after"], "30");
    assert_error(r, 429, "too.many.requests.retry.after").await;
    t.sim.advance_clock(29_000);
    assert_eq!(
        t.get(&tok, "/api/v2/recording/settings").await.status(),
        429
    );
    t.sim.advance_clock(1_000);
    assert_eq!(
        t.get(&tok, "/api/v2/recording/settings").await.status(),
        200
    );
    assert_eq!(t.sim.stats().storm_429, 2);
    assert_eq!(t.sim.stats().rate_limited, 0);
}

#[tokio::test]
async fn token_expiry_mid_run() {
    let t = start(with_faults("token-expiry=3")).await;
    let tok = t.token().await;
    for _ in 0..3 {
        assert_eq!(
            t.get(&tok, "/api/v2/recording/settings").await.status(),
            200
        );
    }
    assert_error(
        t.get(&tok, "/api/v2/recording/settings").await,
        401,
        "bad.credentials",
    )
    .await;
    let fresh = t.token().await;
    assert_eq!(
        t.get(&fresh, "/api/v2/recording/settings").await.status(),
        200
    );
}

#[tokio::test]
async fn drift_reveals_conversations_while_paging() {
    let t = start(with_faults("drift=3")).await;
    let tok = t.token().await;
    let q = |n: i64| json!({"interval": WEEK, "paging": {"pageSize": 100, "pageNumber": n}});
    let first: Value = t
        .post(&tok, "/api/v2/analytics/conversations/details/query", q(1))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["totalHits"], 40);
    let second: Value = t
        .post(&tok, "/api/v2/analytics/conversations/details/query", q(1))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["totalHits"], 41);
    for _ in 0..3 {
        t.post(&tok, "/api/v2/analytics/conversations/details/query", q(1))
            .await;
    }
    let last: Value = t
        .post(&tok, "/api/v2/analytics/conversations/details/query", q(1))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(last["totalHits"], 43);
    assert_eq!(t.sim.stats().drift_revealed, 3);
    assert_eq!(t.truth().conversations, 43);
}

#[tokio::test]
async fn duplicates_repeat_the_previous_pages_last_item() {
    let t = start(with_faults("duplicates")).await;
    let tok = t.token().await;
    let page = |n: i64| json!({"interval": WEEK, "paging": {"pageSize": 10, "pageNumber": n}});
    let p1: Value = t
        .post(
            &tok,
            "/api/v2/analytics/conversations/details/query",
            page(1),
        )
        .await
        .json()
        .await
        .unwrap();
    let p2: Value = t
        .post(
            &tok,
            "/api/v2/analytics/conversations/details/query",
            page(2),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        p2["conversations"][0]["conversationId"],
        p1["conversations"][9]["conversationId"]
    );
    let ids = all_conversations(&t, &tok, json!({"interval": WEEK})).await;
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 40);
    assert!(ids.len() > 40);
}

#[tokio::test]
async fn slow_transcode_takes_ten_times_longer() {
    let mut s = with_faults("slow-transcode=1");
    s.transcode_ms = 1_000;
    let t = start(s).await;
    let tok = t.token().await;
    let rec = t
        .truth()
        .recordings
        .into_iter()
        .find(|r| r.file_state == "AVAILABLE")
        .unwrap();
    let path = format!(
        "/api/v2/conversations/{}/recordings/{}?formatId=WAV",
        rec.conversation_id, rec.id
    );
    assert_eq!(t.get(&tok, &path).await.status(), 202);
    t.sim.advance_clock(9_000);
    assert_eq!(t.get(&tok, &path).await.status(), 202);
    t.sim.advance_clock(1_000);
    assert_eq!(t.get(&tok, &path).await.status(), 200);
}

#[tokio::test]
async fn expired_urls_fail_once_then_a_new_url_works() {
    let t = start(with_faults("expired-urls=1")).await;
    let tok = t.token().await;
    let (rec, url) = first_url(&t, &tok, "OGG_OPUS").await;
    let r = t.download(&url).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Request has expired"));
    let (_, again) = first_url(&t, &tok, "OGG_OPUS").await;
    let body = t.download(&again).await.bytes().await.unwrap();
    assert_eq!(sha256(&body), rec.formats[&Codec::OggOpus].sha256);
}

#[tokio::test]
async fn latency_is_added_to_api_calls() {
    let mut s = scenario();
    s.latency_ms = 150;
    let t = start(s).await;
    let tok = t.token().await;
    let started = std::time::Instant::now();
    assert_eq!(
        t.get(&tok, "/api/v2/recording/settings").await.status(),
        200
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(150));
}

#[tokio::test]
async fn all_faults_at_once_is_a_valid_scenario() {
    let t = start(with_faults("all")).await;
    let truth = t.truth();
    let outcomes: std::collections::BTreeSet<&str> = truth
        .recordings
        .iter()
        .map(|r| r.expected_outcome.as_str())
        .collect();
    assert!(
        outcomes.contains("Exported")
            && outcomes.contains("Purged")
            && outcomes.contains("Archived")
    );
    assert!(truth.recordings.iter().any(|r| !r.faults.is_empty()));
}

#[tokio::test]
async fn hostile_ids_are_listed_on_the_first_conversation_only() {
    let t = start(with_faults("hostile-ids")).await;
    let tok = t.token().await;
    let v = t
        .post(
            &tok,
            "/api/v2/analytics/conversations/details/query",
            json!({"interval": WEEK, "paging": {"pageSize": 2, "pageNumber": 1}}),
        )
        .await;
    let convs: Value = v.json().await.unwrap();
    let ids: Vec<String> = convs["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conversationId"].as_str().unwrap().to_owned())
        .collect();
    let first = t
        .get_json(
            &tok,
            &format!("/api/v2/conversations/{}/recordingmetadata", ids[0]),
        )
        .await;
    let listed: Vec<&str> = first
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for id in custos_sim::scenario::HOSTILE_IDS {
        assert!(listed.contains(id), "{id:?} not listed");
    }
    let second = t
        .get_json(
            &tok,
            &format!("/api/v2/conversations/{}/recordingmetadata", ids[1]),
        )
        .await;
    assert!(
        second
            .as_array()
            .unwrap()
            .iter()
            .all(|m| !custos_sim::scenario::HOSTILE_IDS.contains(&m["id"].as_str().unwrap()))
    );
}
