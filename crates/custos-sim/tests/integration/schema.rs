//! Every simulator response checked against the official model definitions (Genesys Python
//! SDK 257.1.0, copied from the shared reference into tests/data): each field name must exist
//! in the model, each value must have the model's type, each enum value must be allowed.

use serde_json::{Value, json};

use crate::common::*;

fn definitions() -> Value {
    let text = include_str!("../data/genesys-recording-api-subset-sdk257.json");
    serde_json::from_str::<Value>(text).unwrap()["definitions"].clone()
}

/// Checks `v` against the SDK type string `ty` (`str`, `int`, `list[X]`, `dict(str, X)`, a model).
fn check(defs: &Value, ty: &str, v: &Value, at: &str, errs: &mut Vec<String>) {
    if v.is_null() {
        errs.push(format!("{at}: null (Genesys omits unset fields)"));
        return;
    }
    if let Some(inner) = ty.strip_prefix("list[").and_then(|t| t.strip_suffix(']')) {
        match v.as_array() {
            Some(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, x)| check(defs, inner, x, &format!("{at}[{i}]"), errs)),
            None => errs.push(format!("{at}: expected array")),
        }
        return;
    }
    if let Some(inner) = ty
        .strip_prefix("dict(str, ")
        .and_then(|t| t.strip_suffix(')'))
    {
        match v.as_object() {
            Some(m) => m
                .iter()
                .for_each(|(k, x)| check(defs, inner, x, &format!("{at}.{k}"), errs)),
            None => errs.push(format!("{at}: expected object")),
        }
        return;
    }
    let ok = match ty {
        "str" => v.is_string(),
        "int" => v.is_i64() || v.is_u64(),
        "float" => v.is_number(),
        "bool" => v.is_boolean(),
        "datetime" => v.as_str().is_some_and(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
        }),
        model => {
            let Some(def) = defs.get(model) else {
                errs.push(format!(
                    "{at}: model {model} is not in the reference subset"
                ));
                return;
            };
            let Some(obj) = v.as_object() else {
                errs.push(format!("{at}: expected a {model} object"));
                return;
            };
            for (k, x) in obj {
                let Some(prop) = def["properties"].get(k) else {
                    errs.push(format!("{at}.{k}: no such field in {model}"));
                    continue;
                };
                if let Some(allowed) = prop["enum"].as_array()
                    && !allowed.contains(x)
                {
                    errs.push(format!(
                        "{at}.{k}: {x} is not one of {model}.{k}'s enum values"
                    ));
                }
                check(
                    defs,
                    prop["sdkType"].as_str().unwrap(),
                    x,
                    &format!("{at}.{k}"),
                    errs,
                );
            }
            true
        }
    };
    if !ok {
        errs.push(format!("{at}: {v} is not a {ty}"));
    }
}

fn assert_model(defs: &Value, ty: &str, v: &Value) {
    let mut errs = Vec::new();
    check(defs, ty, v, ty, &mut errs);
    assert!(
        errs.is_empty(),
        "{ty} does not match the official model:\n{}",
        errs.join("\n")
    );
}

#[tokio::test]
async fn every_response_matches_the_official_models() {
    let defs = definitions();
    let mut s = scenario();
    s.transcode_ms = 1_000;
    s.async_job_ms = 1_000;
    // Pause and hold annotations on half the recordings: their fields are checked too.
    s.faults.pauses = 0.5;
    let t = start(s).await;
    let tok = t.token().await;
    let truth = t.truth();

    let v: Value = t
        .post(
            &tok,
            "/api/v2/analytics/conversations/details/query",
            json!({"interval": WEEK, "paging": {"pageSize": 100, "pageNumber": 1}}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_model(&defs, "AnalyticsConversationQueryResponse", &v);

    let r = t
        .post(
            &tok,
            "/api/v2/analytics/conversations/details/jobs",
            json!({"interval": WEEK}),
        )
        .await;
    let job: Value = r.json().await.unwrap();
    assert_model(&defs, "AsyncQueryResponse", &job);
    let jid = job["jobId"].as_str().unwrap();
    assert_model(
        &defs,
        "AsyncQueryStatus",
        &t.get_json(
            &tok,
            &format!("/api/v2/analytics/conversations/details/jobs/{jid}"),
        )
        .await,
    );
    t.sim.advance_clock(1_000);
    assert_model(
        &defs,
        "AsyncQueryStatus",
        &t.get_json(
            &tok,
            &format!("/api/v2/analytics/conversations/details/jobs/{jid}"),
        )
        .await,
    );
    let res = t
        .get_json(
            &tok,
            &format!("/api/v2/analytics/conversations/details/jobs/{jid}/results?pageSize=5"),
        )
        .await;
    assert_model(&defs, "AnalyticsConversationAsyncQueryResponse", &res);
    assert_model(
        &defs,
        "DataAvailabilityResponse",
        &t.get_json(
            &tok,
            "/api/v2/analytics/conversations/details/jobs/availability",
        )
        .await,
    );

    assert!(
        truth
            .recordings
            .iter()
            .take(30)
            .any(|r| r.faults.iter().any(|f| f == "pauses")),
        "no paused recording among those checked"
    );
    for rec in truth.recordings.iter().take(30) {
        let list = t
            .get_json(
                &tok,
                &format!(
                    "/api/v2/conversations/{}/recordingmetadata",
                    rec.conversation_id
                ),
            )
            .await;
        assert_model(&defs, "list[RecordingMetadata]", &list);
        let listed = t
            .get_json(
                &tok,
                &format!(
                    "/api/v2/conversations/{}/recordings?formatId=NONE&maxWaitMs=0",
                    rec.conversation_id
                ),
            )
            .await;
        assert_model(&defs, "list[Recording]", &listed);
        let path = format!(
            "/api/v2/conversations/{}/recordings/{}?formatId=WAV",
            rec.conversation_id, rec.id
        );
        let first = t.get(&tok, &path).await;
        if first.status() != 404 {
            assert_model(&defs, "Recording", &first.json().await.unwrap());
        }
    }
    t.sim.advance_clock(1_000);
    for rec in truth
        .recordings
        .iter()
        .take(30)
        .filter(|r| r.file_state != "DELETED")
    {
        let v = t
            .get_json(
                &tok,
                &format!(
                    "/api/v2/conversations/{}/recordings/{}?formatId=OGG_OPUS",
                    rec.conversation_id, rec.id
                ),
            )
            .await;
        assert_model(&defs, "Recording", &v);
    }
    let items: Vec<Value> = truth
        .recordings
        .iter()
        .take(100)
        .map(|r| json!({"conversationId": r.conversation_id, "recordingId": r.id}))
        .collect();
    let sub: Value = t
        .post(
            &tok,
            "/api/v2/recording/batchrequests",
            json!({"batchDownloadRequestList": items}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_model(&defs, "BatchDownloadJobSubmissionResult", &sub);
    let status = t
        .get_json(
            &tok,
            &format!(
                "/api/v2/recording/batchrequests/{}",
                sub["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_model(&defs, "BatchDownloadJobStatusResult", &status);
    assert!(
        status["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.get("errorMsg").is_some())
    );
    assert_model(
        &defs,
        "RecordingSettings",
        &t.get_json(&tok, "/api/v2/recording/settings").await,
    );

    for r in [
        t.get(&tok, "/api/v2/conversations/x/recordingmetadata")
            .await,
        t.post(&tok, "/api/v2/recording/batchrequests", json!({}))
            .await,
        t.get(&tok, "/api/v2/recording/batchrequests/x").await,
        t.get("bad", "/api/v2/recording/settings").await,
    ] {
        assert_model(&defs, "ErrorBody", &r.json().await.unwrap());
    }
    let mut s = scenario();
    s.api_rate = 1;
    let t2 = start(s).await;
    let tok2 = t2.token().await;
    t2.get(&tok2, "/api/v2/recording/settings").await;
    let limited: Value = t2
        .get(&tok2, "/api/v2/recording/settings")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(limited["status"], 429);
    assert_model(&defs, "ErrorBody", &limited);
}

/// The checker itself must catch what it is for.
#[test]
fn the_checker_catches_misspelt_fields_wrong_types_and_bad_enums() {
    let defs = definitions();
    for bad in [
        json!({"id": "x", "filestate": "AVAILABLE"}),
        json!({"id": 5}),
        json!({"fileState": "GONE"}),
        json!({"mediaUris": {"S": {"mediauri": "x"}}}),
        json!({"archiveDate": "not a date"}),
        json!({"id": null}),
    ] {
        let mut errs = Vec::new();
        check(&defs, "Recording", &bad, "Recording", &mut errs);
        assert!(!errs.is_empty(), "{bad} passed");
    }
}
