//! recordingmetadata, the transcoding GET, and batch downloads.

use serde_json::{Value, json};

use crate::common::*;

fn pick<'a>(t: &'a custos_sim::Truth, state: &str) -> &'a custos_sim::RecordingTruth {
    t.recordings
        .iter()
        .find(|r| r.file_state == state)
        .unwrap_or_else(|| panic!("no {state} recording"))
}

#[tokio::test]
async fn metadata_lists_every_recording_of_a_conversation() {
    let t = start(scenario()).await;
    let tok = t.token().await;
    let truth = t.truth();
    let rec = pick(&truth, "AVAILABLE");
    let list = t
        .get_json(
            &tok,
            &format!(
                "/api/v2/conversations/{}/recordingmetadata",
                rec.conversation_id
            ),
        )
        .await;
    let expected: Vec<&str> = truth
        .recordings
        .iter()
        .filter(|r| r.conversation_id == rec.conversation_id)
        .map(|r| r.id.as_str())
        .collect();
    let got: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, expected);
    let one = t
        .get_json(
            &tok,
            &format!(
                "/api/v2/conversations/{}/recordingmetadata/{}",
                rec.conversation_id, rec.id
            ),
        )
        .await;
    assert_eq!(one["fileState"], "AVAILABLE");
    assert_eq!(one["media"], "audio");
    // Genesys gives startTime/endTime in metadata only for screen recordings.
    assert!(one.get("startTime").is_none());

    let archived = pick(&truth, "ARCHIVED");
    let m = t
        .get_json(
            &tok,
            &format!(
                "/api/v2/conversations/{}/recordingmetadata/{}",
                archived.conversation_id, archived.id
            ),
        )
        .await;
    assert_eq!(m["fileState"], "ARCHIVED");
    assert_eq!(m["archiveMedium"], "CLOUDARCHIVE");

    assert_error(
        t.get(&tok, "/api/v2/conversations/nope/recordingmetadata")
            .await,
        404,
        "conversation.not.found",
    )
    .await;
    assert_error(
        t.get(
            &tok,
            &format!(
                "/api/v2/conversations/{}/recordingmetadata/nope",
                rec.conversation_id
            ),
        )
        .await,
        404,
        "not.found",
    )
    .await;
}

#[tokio::test]
async fn single_recording_transcodes_with_202_then_200() {
    let t = start(custos_sim::Scenario {
        transcode_ms: 4_000,
        conversations: 60,
        ..scenario()
    })
    .await;
    let tok = t.token().await;
    let truth = t.truth();
    let rec = pick(&truth, "AVAILABLE");
    let path = format!(
        "/api/v2/conversations/{}/recordings/{}?formatId=WAV&download=true",
        rec.conversation_id, rec.id
    );
    let r = t.get(&tok, &path).await;
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert!(v.get("mediaUris").is_none());
    assert_eq!(v["estimatedTranscodeTimeMs"], 4000);
    t.sim.advance_clock(3_000);
    assert_eq!(t.get(&tok, &path).await.status(), 202);
    t.sim.advance_clock(1_000);
    let v = t.get_json(&tok, &path).await;
    assert_eq!(v["outputDurationMs"], rec.stated_duration_ms);
    assert_eq!(
        v["outputSizeInBytes"],
        rec.formats[&custos_sim::audio::Codec::Wav].size_bytes
    );
    assert_eq!(v["startTime"], rec.start_time);
    let url = v["mediaUris"]["S"]["mediaUri"].as_str().unwrap();
    let body = t.download(url).await.bytes().await.unwrap();
    assert_eq!(
        sha256(&body),
        rec.formats[&custos_sim::audio::Codec::Wav].sha256
    );

    // formatId=NONE: metadata only; formats the simulator cannot make are refused plainly.
    let v = t
        .get_json(
            &tok,
            &format!(
                "/api/v2/conversations/{}/recordings/{}?formatId=NONE",
                rec.conversation_id, rec.id
            ),
        )
        .await;
    assert!(v.get("mediaUris").is_none());
    let r = t
        .get(
            &tok,
            &format!(
                "/api/v2/conversations/{}/recordings/{}?formatId=OGG_VORBIS",
                rec.conversation_id, rec.id
            ),
        )
        .await;
    let e = assert_error(r, 400, "invalid.value").await;
    assert!(e["message"].as_str().unwrap().contains("OGG_VORBIS"));
    // No formatId: the API's default, WEBM, which the simulator makes.
    let r = t
        .get(
            &tok,
            &format!(
                "/api/v2/conversations/{}/recordings/{}",
                rec.conversation_id, rec.id
            ),
        )
        .await;
    assert!(r.status() == 202 || r.status() == 200, "{}", r.status());

    let archived = pick(&truth, "ARCHIVED");
    let v = t
        .get_json(
            &tok,
            &format!(
                "/api/v2/conversations/{}/recordings/{}?formatId=WAV",
                archived.conversation_id, archived.id
            ),
        )
        .await;
    assert_eq!(v["fileState"], "ARCHIVED");
    assert!(v.get("mediaUris").is_none());
    let deleted = pick(&truth, "DELETED");
    let r = t
        .get(
            &tok,
            &format!(
                "/api/v2/conversations/{}/recordings/{}?formatId=WAV",
                deleted.conversation_id, deleted.id
            ),
        )
        .await;
    assert_error(r, 404, "not.found").await;
}

#[tokio::test]
async fn conversation_recordings_list_waits_up_to_max_wait_ms() {
    let t = start(custos_sim::Scenario {
        transcode_ms: 50,
        ..scenario()
    })
    .await;
    let tok = t.token().await;
    let truth = t.truth();
    let rec = pick(&truth, "AVAILABLE");
    let v = t
        .get_json(
            &tok,
            &format!(
                "/api/v2/conversations/{}/recordings?formatId=OGG_OPUS",
                rec.conversation_id
            ),
        )
        .await;
    let mine = v
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == rec.id.as_str())
        .unwrap();
    assert!(
        mine["mediaUris"]["S"]["mediaUri"]
            .as_str()
            .unwrap()
            .contains("/OGG_OPUS?")
    );
}

#[tokio::test]
async fn batch_requests_validate_expand_fill_in_and_are_owner_only() {
    let t = start(custos_sim::Scenario {
        batch_ms_per_item: 100,
        ..scenario()
    })
    .await;
    let tok = t.token().await;
    let truth = t.truth();
    const BATCH: &str = "/api/v2/recording/batchrequests";
    assert_error(
        t.post(&tok, BATCH, json!({})).await,
        400,
        "batch.download.bad.request",
    )
    .await;
    assert_error(
        t.post(&tok, BATCH, json!({"batchDownloadRequestList": []}))
            .await,
        400,
        "batch.download.bad.request",
    )
    .await;
    let many: Vec<Value> = (0..101)
        .map(|_| json!({"conversationId": truth.recordings[0].conversation_id}))
        .collect();
    assert_error(
        t.post(&tok, BATCH, json!({"batchDownloadRequestList": many}))
            .await,
        400,
        "batch.download.too.many.items",
    )
    .await;

    // Whole conversations (no recordingId) expand to all their recordings.
    let mut convs: Vec<&str> = truth
        .recordings
        .iter()
        .map(|r| r.conversation_id.as_str())
        .collect();
    convs.dedup();
    let items: Vec<Value> = convs.iter().map(|c| json!({"conversationId": c})).collect();
    let r = t
        .post(&tok, BATCH, json!({"batchDownloadRequestList": items}))
        .await;
    assert_eq!(r.status(), 200);
    let sub: Value = r.json().await.unwrap();
    let job = sub["id"].as_str().unwrap().to_owned();
    assert_eq!(sub["selfUri"], format!("{BATCH}/{job}"));

    let v = t.get_json(&tok, &format!("{BATCH}/{job}")).await;
    assert_eq!(v["status"], "InProgress");
    assert_eq!(v["expectedResultCount"], truth.recordings.len());
    assert_eq!(v["resultCount"], 0);
    t.sim.advance_clock(100 * 5);
    let v = t.get_json(&tok, &format!("{BATCH}/{job}")).await;
    assert_eq!(v["resultCount"], 5);
    t.sim.advance_clock(100 * truth.recordings.len() as u64);
    let v = t.get_json(&tok, &format!("{BATCH}/{job}")).await;
    assert_eq!(v["status"], "Completed");
    assert_eq!(v["jobId"], job.as_str());
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), truth.recordings.len());
    let mut errors = 0;
    for res in results {
        let rec = truth
            .recordings
            .iter()
            .find(|r| r.id == res["recordingId"].as_str().unwrap())
            .unwrap();
        match rec.file_state.as_str() {
            "ARCHIVED" | "DELETED" => {
                errors += 1;
                assert!(res["errorMsg"].is_string() && res.get("resultUrl").is_none());
            }
            _ => {
                assert_eq!(res["contentType"], rec.content_type.as_str());
                let body = t
                    .download(res["resultUrl"].as_str().unwrap())
                    .await
                    .bytes()
                    .await
                    .unwrap();
                assert_eq!(sha256(&body), rec.sha256, "batch media of {}", rec.id);
            }
        }
    }
    assert_eq!(v["errorCount"], errors);
    assert!(
        errors > 0,
        "the default catalog has archived and deleted recordings"
    );
    assert_eq!(t.sim.stats().bearer_on_media, 0);

    let other = t.token_for("client-b", "secret-b").await;
    assert_error(
        t.get(&other, &format!("{BATCH}/{job}")).await,
        403,
        "batch.download.permission.denied",
    )
    .await;
    assert_error(
        t.get(&tok, &format!("{BATCH}/no-such-job")).await,
        404,
        "batch.download.job.not.found",
    )
    .await;
}

#[tokio::test]
async fn unknown_paths_are_genesys_404s_and_the_search_api_can_be_off() {
    let t = start(custos_sim::Scenario {
        search_api: false,
        ..scenario()
    })
    .await;
    let tok = t.token().await;
    assert_error(
        t.get(&tok, "/api/v2/search/recordings?q=direction:inbound")
            .await,
        404,
        "not.found",
    )
    .await;
    assert_error(
        t.get(&tok, "/api/v2/recordings/abc").await,
        404,
        "not.found",
    )
    .await;
    assert_error(t.get(&tok, "/api/v2/nothing/here").await, 404, "not.found").await;
}
