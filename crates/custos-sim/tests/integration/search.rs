//! The design guide's search API.

use std::collections::HashSet;

use serde_json::Value;

use crate::common::*;

fn enc(q: &str) -> String {
    serde_urlencoded::to_string([("q", q)]).unwrap()
}

#[tokio::test]
async fn search_pages_by_next_page_uri_over_every_match() {
    let t = start(scenario()).await;
    let tok = t.token().await;
    let truth = t.truth();
    let q = "timestamp:[2023-10-01T00:00:00.000Z TO 2023-10-04T00:00:00.000Z}";
    let mut path = format!("/api/v2/search/recordings?{}&pageSize=7", enc(q));
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let v = t.get_json(&tok, &path).await;
        pages += 1;
        ids.extend(
            v["elements"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned()),
        );
        match v["nextPageUri"].as_str() {
            Some(next) => {
                assert!(
                    next.starts_with("/api/v2/search/recordings?"),
                    "relative next link: {next}"
                );
                path = next.to_owned();
            }
            None => break,
        }
    }
    let expect: Vec<&str> = truth
        .recordings
        .iter()
        .filter(|r| r.start_time.as_str() < "2023-10-04")
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(ids.len(), expect.len());
    assert_eq!(
        ids.iter().collect::<HashSet<_>>(),
        expect
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .iter()
            .collect::<HashSet<_>>()
    );
    assert_eq!(pages, expect.len().div_ceil(7));
}

#[tokio::test]
async fn participant_filter_metadata_and_media() {
    let t = start(custos_sim::Scenario {
        search_rate: 10_000,
        ..scenario()
    })
    .await;
    let tok = t.token().await;
    let truth = t.truth();
    let v = t
        .get_json(
            &tok,
            "/api/v2/search/recordings?q=mediaType:voice&pageSize=1000",
        )
        .await;
    let all = v["elements"].as_array().unwrap().clone();
    assert_eq!(all.len(), truth.recordings.len());
    let agent = all[0]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["purpose"] == "agent")
        .unwrap()["userId"]
        .as_str()
        .unwrap()
        .to_owned();
    let q = format!("participantId:\"{agent}\" AND direction:(inbound OR outbound)");
    let v = t
        .get_json(
            &tok,
            &format!("/api/v2/search/recordings?{}&pageSize=1000", enc(&q)),
        )
        .await;
    let got = v["elements"].as_array().unwrap();
    assert!(!got.is_empty());
    assert!(got.iter().all(|e| {
        e["participants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["userId"] == agent.as_str())
    }));

    for rec in &truth.recordings {
        let r = t.get(&tok, &format!("/api/v2/recordings/{}", rec.id)).await;
        let m = t
            .get(&tok, &format!("/api/v2/recordings/{}/media", rec.id))
            .await;
        match rec.file_state.as_str() {
            "DELETED" => {
                assert_error(r, 404, "not.found").await;
                assert_error(m, 404, "not.found").await;
            }
            "ARCHIVED" => {
                assert_eq!(r.json::<Value>().await.unwrap()["fileState"], "ARCHIVED");
                assert_error(m, 409, "recording.archived").await;
            }
            _ => {
                let meta: Value = r.json().await.unwrap();
                assert_eq!(meta["conversationId"], rec.conversation_id.as_str());
                assert_eq!(meta["durationMs"], rec.stated_duration_ms);
                assert_eq!(m.headers()["content-type"], rec.content_type.as_str());
                assert_eq!(
                    m.headers()["content-length"],
                    rec.size_bytes.to_string().as_str()
                );
                assert_eq!(sha256(&m.bytes().await.unwrap()), rec.sha256);
            }
        }
    }
}

#[tokio::test]
async fn malformed_queries_are_400s_that_point_at_the_column() {
    let t = start(scenario()).await;
    let tok = t.token().await;
    for (q, needle) in [
        ("colour:red", "column 1: unknown field 'colour'"),
        ("direction:inbound OR direction:outbound", "column 19"),
        (
            "timestamp:[2023-10-01T00:00:00Z 2023-10-02T00:00:00Z]",
            "expected TO",
        ),
        ("timestamp:[yesterday TO today]", "invalid timestamp"),
    ] {
        let r = t
            .get(&tok, &format!("/api/v2/search/recordings?{}", enc(q)))
            .await;
        let v = assert_error(r, 400, "bad.request").await;
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{q}: {}",
            v["message"]
        );
    }
    assert_error(
        t.get(&tok, "/api/v2/search/recordings").await,
        400,
        "bad.request",
    )
    .await;
    assert_error(
        t.get(
            &tok,
            "/api/v2/search/recordings?q=mediaType:voice&pageSize=1001",
        )
        .await,
        400,
        "bad.request",
    )
    .await;
}
