//! Conversation discovery: the synchronous details query and the async details jobs.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::common::*;

const QUERY: &str = "/api/v2/analytics/conversations/details/query";
const JOBS: &str = "/api/v2/analytics/conversations/details/jobs";

#[tokio::test]
async fn paging_returns_every_conversation_once_with_total_hits() {
    let t = start(scenario()).await;
    let tok = t.token().await;
    let ids = all_conversations(&t, &tok, json!({"interval": WEEK})).await;
    assert_eq!(ids.len(), 40);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 40);
    let truth: HashSet<String> = t
        .truth()
        .recordings
        .iter()
        .map(|r| r.conversation_id.clone())
        .collect();
    assert!(truth.iter().all(|c| ids.contains(c)));

    let r = t
        .post(
            &tok,
            QUERY,
            json!({"interval": WEEK, "paging": {"pageSize": 7, "pageNumber": 6}}),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["totalHits"], 40);
    assert_eq!(v["conversations"].as_array().unwrap().len(), 5);
    // Past the end: no `conversations` at all, as Genesys answers.
    let v: Value = t
        .post(
            &tok,
            QUERY,
            json!({"interval": WEEK, "paging": {"pageSize": 7, "pageNumber": 7}}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(v.get("conversations").is_none());
    assert_eq!(v["totalHits"], 40);
    // Default page size is 25.
    let v: Value = t
        .post(&tok, QUERY, json!({"interval": WEEK}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["conversations"].as_array().unwrap().len(), 25);
}

#[tokio::test]
async fn order_and_day_touched_interval_semantics() {
    let t = start(scenario()).await;
    let tok = t.token().await;
    let v: Value = t
        .post(&tok, QUERY, json!({"interval": WEEK, "order": "desc", "paging": {"pageSize": 100, "pageNumber": 1}}))
        .await
        .json()
        .await
        .unwrap();
    let starts: Vec<&str> = v["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conversationStart"].as_str().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] >= w[1]), "desc order");

    // A one-hour interval returns every conversation that started that *day* (documented
    // behaviour of the synchronous query), so clients must filter by time themselves.
    let day = &starts[0][..10];
    let hour = format!("{day}T12:00:00.000Z/{day}T13:00:00.000Z");
    let ids = all_conversations(&t, &tok, json!({"interval": hour})).await;
    let same_day = starts.iter().filter(|s| s.starts_with(day)).count();
    assert_eq!(ids.len(), same_day);
}

#[tokio::test]
async fn segment_and_conversation_filters() {
    let t = start(scenario()).await;
    let tok = t.token().await;
    let v: Value = t
        .post(
            &tok,
            QUERY,
            json!({"interval": WEEK, "paging": {"pageSize": 100, "pageNumber": 1}}),
        )
        .await
        .json()
        .await
        .unwrap();
    let convs = v["conversations"].as_array().unwrap().clone();
    let agent_of = |c: &Value| -> String {
        c["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["purpose"] == "agent")
            .unwrap()["userId"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let user = agent_of(&convs[0]);
    let expect: HashSet<String> = convs
        .iter()
        .filter(|c| agent_of(c) == user)
        .map(|c| c["conversationId"].as_str().unwrap().to_owned())
        .collect();
    let body = json!({"interval": WEEK, "segmentFilters": [{"type": "and", "predicates": [{"dimension": "userId", "value": user}]}]});
    let got: HashSet<String> = all_conversations(&t, &tok, body)
        .await
        .into_iter()
        .collect();
    assert_eq!(got, expect);

    let one = convs[3]["conversationId"].as_str().unwrap();
    let body = json!({"interval": WEEK, "conversationFilters": [{"type": "or", "predicates": [{"dimension": "conversationId", "value": one}]}]});
    assert_eq!(
        all_conversations(&t, &tok, body).await,
        vec![one.to_owned()]
    );

    let inbound = convs
        .iter()
        .filter(|c| c["originatingDirection"] == "inbound")
        .count();
    let body = json!({"interval": WEEK, "segmentFilters": [{"type": "and", "clauses": [{"type": "or", "predicates": [
        {"dimension": "direction", "value": "inbound"}, {"dimension": "purpose", "value": "nobody"}]}]}]});
    assert_eq!(all_conversations(&t, &tok, body).await.len(), inbound);

    let recorded = convs
        .iter()
        .filter(|c| {
            c["participants"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["sessions"][0]["recording"] == true)
        })
        .count();
    let body = json!({"interval": WEEK, "segmentFilters": [{"type": "and", "predicates": [{"dimension": "recording", "operator": "exists"}]}]});
    assert_eq!(all_conversations(&t, &tok, body).await.len(), recorded);
}

#[tokio::test]
async fn documented_limits_are_400s() {
    let t = start(scenario()).await;
    let tok = t.token().await;
    let cases = [
        (json!({}), "bad.request"),
        (json!({"interval": "2023-10-01T00:00:00Z"}), "invalid.date"),
        (
            json!({"interval": "2023-10-01T00:00:00Z/2023-10-09T00:00:00Z"}),
            "bad.request",
        ), // > 7 days
        (
            json!({"interval": "2023-08-01T00:00:00Z/2023-08-02T00:00:00Z"}),
            "bad.request",
        ), // > 35 days back
        (
            json!({"interval": WEEK, "paging": {"pageSize": 101, "pageNumber": 1}}),
            "invalid.value",
        ),
        (
            json!({"interval": WEEK, "paging": {"pageSize": 100, "pageNumber": 101}}),
            "bad.request",
        ), // > 10,000 records
        (
            json!({"interval": WEEK, "order": "sideways"}),
            "invalid.value",
        ),
        (
            json!({"interval": WEEK, "segmentFilters": [{"type": "and", "predicates": [{"dimension": "colour", "value": "x"}]}]}),
            "invalid.value",
        ),
        (
            json!({"interval": WEEK, "segmentFilters": [{"type": "xor", "predicates": [{"dimension": "userId", "value": "x"}]}]}),
            "invalid.value",
        ),
    ];
    for (body, code) in cases {
        let r = t.post(&tok, QUERY, body.clone()).await;
        assert_error(r, 400, code).await;
    }
    let r = t
        .http
        .post(format!("{}{QUERY}", t.base))
        .bearer_auth(&tok)
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "bad.request").await;
    let r = t
        .http
        .post(format!("{}{QUERY}", t.base))
        .bearer_auth(&tok)
        .body("interval=x")
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_error(r, 415, "unsupported.media.type").await;
    // request.bytes.max is 512000.
    let big = format!(
        "{{\"interval\":\"{WEEK}\",\"pad\":\"{}\"}}",
        "x".repeat(600_000)
    );
    let r = t
        .http
        .post(format!("{}{QUERY}", t.base))
        .bearer_auth(&tok)
        .body(big)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn async_jobs_go_queued_pending_fulfilled_and_page_by_cursor() {
    let t = start(custos_sim::Scenario {
        async_job_ms: 3_000,
        ..scenario()
    })
    .await;
    let tok = t.token().await;
    let old = "2023-01-01T00:00:00Z/2024-01-01T00:00:00Z"; // a year: fine for jobs
    let r = t.post(&tok, JOBS, json!({"interval": old})).await;
    assert_eq!(r.status(), 202);
    let job = r.json::<Value>().await.unwrap()["jobId"]
        .as_str()
        .unwrap()
        .to_owned();
    let status = |v: Value| v["state"].as_str().unwrap().to_owned();
    assert_eq!(
        status(t.get_json(&tok, &format!("{JOBS}/{job}")).await),
        "QUEUED"
    );
    assert_error(
        t.get(&tok, &format!("{JOBS}/{job}/results")).await,
        400,
        "bad.request",
    )
    .await;
    t.sim.advance_clock(1_500);
    assert_eq!(
        status(t.get_json(&tok, &format!("{JOBS}/{job}")).await),
        "PENDING"
    );
    t.sim.advance_clock(1_500);
    let v = t.get_json(&tok, &format!("{JOBS}/{job}")).await;
    assert_eq!(v["state"], "FULFILLED");
    assert!(
        v["completionDate"].is_string()
            && v["submissionDate"].is_string()
            && v["expirationDate"].is_string()
    );

    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{JOBS}/{job}/results?pageSize=15&cursor={c}"),
            None => format!("{JOBS}/{job}/results?pageSize=15"),
        };
        let v = t.get_json(&tok, &path).await;
        assert!(v["dataAvailabilityDate"].is_string());
        ids.extend(
            v["conversations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["conversationId"].as_str().unwrap().to_owned()),
        );
        match v["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(ids.len(), 40);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 40);

    // Only the submitter sees the job; cancel works.
    let other = t.token_for("client-b", "secret-b").await;
    assert_error(
        t.get(&other, &format!("{JOBS}/{job}")).await,
        404,
        "not.found",
    )
    .await;
    let r = t
        .call(
            reqwest::Method::DELETE,
            &tok,
            &format!("{JOBS}/{job}"),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        status(t.get_json(&tok, &format!("{JOBS}/{job}")).await),
        "CANCELLED"
    );
    let v = t.get_json(&tok, &format!("{JOBS}/availability")).await;
    assert!(
        v["dataAvailabilityDate"]
            .as_str()
            .unwrap()
            .starts_with("2023-10-08")
    );
}
