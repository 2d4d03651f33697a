//! The requests `Query::genesys_requests` derives are accepted by the simulator (which has its
//! own, independently written, reading of the API) and, with the documented client-side time
//! filter, select exactly the conversations the simulator's ground truth says they should.

use std::collections::BTreeSet;

use custos::query::{DETAILS_JOBS, DETAILS_QUERY, Query, format_ms};
use custos_sim::{Client, Scenario, Sim};
use serde_json::{Value, json};
use time::macros::datetime;

struct Env {
    running: custos_sim::Running,
    http: reqwest::Client,
    token: String,
}

async fn start() -> Env {
    let scenario = Scenario {
        conversations: 120,
        async_job_ms: 1_000,
        clients: vec![Client {
            id: "c".into(),
            secret: "s".into(),
        }],
        ..Scenario::default()
    };
    let running = Sim::new(scenario).unwrap().spawn().await.unwrap();
    let base = running.base_url.clone();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let v: Value = http
        .post(format!("{base}/oauth/token"))
        .basic_auth("c", Some("s"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = v["access_token"].as_str().unwrap().to_owned();
    Env {
        running,
        http,
        token,
    }
}

impl Env {
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.running.base_url))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.running.base_url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        r.json().await.unwrap()
    }
}

/// Runs every derived request to completion; returns the conversations that started in range.
async fn run(env: &Env, q: &Query, now: time::OffsetDateTime) -> BTreeSet<String> {
    let range = q.time_range().unwrap();
    let mut found = BTreeSet::new();
    let keep = |c: &Value, found: &mut BTreeSet<String>| {
        let start = time::OffsetDateTime::parse(
            c["conversationStart"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        if range.contains(start) {
            found.insert(c["conversationId"].as_str().unwrap().to_owned());
        }
    };
    for req in q.genesys_requests(now, 25).unwrap() {
        match req.path {
            DETAILS_QUERY => {
                for page in 1.. {
                    let mut body = req.body.clone();
                    body["paging"]["pageNumber"] = json!(page);
                    let (status, v) = env.post(DETAILS_QUERY, &body).await;
                    assert_eq!(status, 200, "{v}");
                    let Some(convs) = v["conversations"].as_array() else {
                        break;
                    };
                    convs.iter().for_each(|c| keep(c, &mut found));
                }
            }
            DETAILS_JOBS => {
                let (status, v) = env.post(DETAILS_JOBS, &req.body).await;
                assert_eq!(status, 202, "{v}");
                let job = v["jobId"].as_str().unwrap().to_owned();
                env.running.sim.advance_clock(1_000);
                assert_eq!(
                    env.get(&format!("{DETAILS_JOBS}/{job}")).await["state"],
                    "FULFILLED"
                );
                let mut cursor = String::new();
                loop {
                    let v = env
                        .get(&format!("{DETAILS_JOBS}/{job}/results?pageSize=20{cursor}"))
                        .await;
                    v["conversations"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .for_each(|c| keep(c, &mut found));
                    match v["cursor"].as_str() {
                        Some(c) => cursor = format!("&cursor={c}"),
                        None => break,
                    }
                }
            }
            other => panic!("unexpected path {other}"),
        }
    }
    found
}

fn truth_in_range(sim: &Sim, q: &Query) -> BTreeSet<String> {
    let range = q.time_range().unwrap();
    sim.truth()
        .recordings
        .iter()
        .filter(|r| {
            range.contains(
                time::OffsetDateTime::parse(
                    &r.conversation_start,
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap(),
            )
        })
        .map(|r| r.conversation_id.clone())
        .collect()
}

#[tokio::test]
async fn sync_windows_with_the_time_filter_find_exactly_the_range() {
    let env = start().await;
    // Ten days, inside the simulator's 35-day window: two sync windows with day overlap.
    let q =
        Query::parse("timestamp:[2023-10-01T06:30:00.000Z TO 2023-10-07T18:00:00.000Z}").unwrap();
    let now = datetime!(2023-10-09 00:00 UTC);
    assert!(
        q.genesys_requests(now, 25)
            .unwrap()
            .iter()
            .all(|r| r.path == DETAILS_QUERY)
    );
    let found = run(&env, &q, now).await;
    // Every conversation with a recording that started in range is found (truth lists recordings).
    let expected = truth_in_range(&env.running.sim, &q);
    assert!(!expected.is_empty());
    assert!(
        expected.is_subset(&found),
        "missing: {:?}",
        expected.difference(&found).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn old_ranges_go_through_a_job_and_filters_are_understood() {
    let env = start().await;
    let first = &env.running.sim.truth().recordings[0];
    let q = Query::parse(&format!(
        "timestamp:[2023-10-01T00:00:00Z TO 2023-10-08T00:00:00Z}} AND conversationId:(\"{}\" OR nope)",
        first.conversation_id
    ))
    .unwrap();
    let now = datetime!(2026-11-26 00:00 UTC);
    assert_eq!(q.genesys_requests(now, 25).unwrap()[0].path, DETAILS_JOBS);
    let found = run(&env, &q, now).await;
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        vec![first.conversation_id.clone()]
    );

    // Every segment- and conversation-level mapping is accepted by the simulator.
    let q = Query::parse(&format!(
        "timestamp:[{} TO {}}} AND participantId:u AND userId:u AND queueId:q AND mediaType:voice AND direction:inbound AND ani:a AND dnis:d AND divisionId:x",
        format_ms(datetime!(2023-10-02 00:00 UTC)),
        format_ms(datetime!(2023-10-03 00:00 UTC))
    ))
    .unwrap();
    for req in q
        .genesys_requests(datetime!(2023-10-09 00:00 UTC), 25)
        .unwrap()
    {
        let (status, v) = env.post(req.path, &req.body).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["totalHits"], 0);
    }
}
