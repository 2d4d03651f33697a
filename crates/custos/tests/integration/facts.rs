//! Call facts against the simulator's ground truth: for every item, the agent, the customer's
//! numbers, the queue, the skill and the wrap-up code in `data/call_facts.csv` are the ones the
//! simulated org holds, named as its directory names them; each distinct id was looked up once,
//! 100 to a request, and every answer is kept in the package and recorded in the custody log.

use std::collections::BTreeSet;

use custos::export::{NoProgress, Retrieval, SourceKind};
use custos_sim::{Scenario, Sim};

use crate::common::{config, out_dir};

#[tokio::test(flavor = "multi_thread")]
async fn call_facts_name_every_party_as_the_simulated_org_does() {
    let env = Sim::new(Scenario {
        conversations: 60,
        api_rate: 6_000,
        max_recording_s: 10,
        batch_ms_per_item: 1,
        async_job_ms: 100,
        ..Scenario::default()
    })
    .unwrap()
    .spawn()
    .await
    .unwrap();
    let out = out_dir("facts");
    let cfg = config(&env, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    custos::export(&cfg, &NoProgress).await.unwrap();
    let truth = env.sim.truth();

    let mut r = csv::Reader::from_path(out.join("data/call_facts.csv")).unwrap();
    let head: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(head, custos::facts::CallFacts::HEADER);
    let col = |row: &csv::StringRecord, name: &str| -> String {
        row[head.iter().position(|h| h == name).unwrap()].to_owned()
    };
    let mut rows = 0;
    let (mut agents, mut queues) = (BTreeSet::new(), BTreeSet::new());
    for row in r.records() {
        let row = row.unwrap();
        rows += 1;
        let rid = col(&row, "Recording_ID");
        let t = truth.recordings.iter().find(|x| x.id == rid).unwrap();
        let c = &t.call;
        assert_eq!(col(&row, "Conversation_ID"), t.conversation_id);
        assert_eq!(col(&row, "Conversation_Start"), t.conversation_start);
        assert_eq!(col(&row, "Recording_Start"), t.start_time, "{rid}");
        assert_eq!(col(&row, "Direction"), c.direction, "{rid}");
        assert_eq!(
            (col(&row, "ANI"), col(&row, "DNIS")),
            (c.ani.clone(), c.dnis.clone()),
            "{rid}"
        );
        assert!(!c.ani.is_empty() && !c.agent.1.is_empty());
        for (ids, names, (id, name)) in [
            ("Agent_IDs", "Agent_Names", &c.agent),
            ("Queue_IDs", "Queue_Names", &c.queue),
            ("Skill_IDs", "Skill_Names", &c.skill),
            ("Wrapup_Code_IDs", "Wrapup_Codes", &c.wrapup),
        ] {
            assert_eq!(
                (col(&row, ids), col(&row, names)),
                (id.clone(), name.clone()),
                "{rid} {names}"
            );
        }
        assert_eq!(
            (col(&row, "Division_IDs"), col(&row, "Division_Names")),
            (c.division_id.clone(), c.division_name.clone()),
            "{rid}"
        );
        assert!(!c.division_name.is_empty());
        assert!(col(&row, "Participants").contains(&format!("agent: {}", c.agent.1)));
        agents.insert(c.agent.0.clone());
        queues.insert(c.queue.0.clone());
    }
    assert_eq!(rows, truth.recordings.len(), "a row per manifest item");

    // One request per kind (fewer than 100 distinct ids each), every answer kept and logged.
    let events = custos::custody::read_events(&out.join("data/custody_log.jsonl")).unwrap();
    let directory: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| {
            let url = e["url"].as_str().unwrap_or("");
            e["event"] == "http"
                && (url.ends_with("/api/v2/users")
                    || url.contains("/api/v2/routing/")
                    || url.ends_with("/api/v2/authorization/divisions"))
        })
        .collect();
    assert_eq!(directory.len(), 5, "{directory:?}");
    let recorded = events
        .iter()
        .find(|e| e["event"] == "directory-recorded")
        .unwrap();
    assert_eq!(recorded["lookups"]["users"]["ids"], agents.len());
    assert_eq!(recorded["lookups"]["queues"]["ids"], queues.len());
    for kind in ["users", "queues", "skills", "wrapupcodes", "divisions"] {
        let kept =
            std::fs::read(out.join(format!("data/metadata/directory/{kind}-0001.json"))).unwrap();
        let logged = directory
            .iter()
            .find(|e| e["url"].as_str().unwrap().contains(&format!("/{kind}")))
            .unwrap();
        assert_eq!(
            logged["bodySha256"].as_str().unwrap(),
            custos::digest::Sha256::of(&kept).hex(),
            "{kind}: kept byte for byte as received"
        );
    }
}

/// A directory the OAuth client may not read (403) stops nothing: the refusal is in the custody
/// log, no answer is kept for it, and the agents are named by the analytics record's own
/// `participantName` instead; every other name comes from the directory; the package verifies.
#[tokio::test]
async fn a_refused_directory_lookup_is_recorded_and_the_export_goes_on() {
    let env = Sim::new(Scenario {
        conversations: 20,
        api_rate: 6_000,
        max_recording_s: 8,
        batch_ms_per_item: 1,
        async_job_ms: 100,
        denied_permissions: vec!["directory:user:view".into()],
        ..Scenario::default()
    })
    .unwrap()
    .spawn()
    .await
    .unwrap();
    let out = out_dir("facts-refused");
    let cfg = config(&env, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    custos::export(&cfg, &NoProgress).await.unwrap();
    let events = custos::custody::read_events(&out.join("data/custody_log.jsonl")).unwrap();
    let rec = events
        .iter()
        .find(|e| e["event"] == "directory-recorded")
        .unwrap();
    let refused = rec["lookups"]["users"]["refused"].as_array().unwrap();
    assert!(
        !refused.is_empty() && refused[0].as_str().unwrap().contains("403"),
        "{rec}"
    );
    assert_eq!(rec["lookups"]["users"]["files"], 0);
    assert_eq!(
        rec["lookups"]["queues"]["refused"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert!(!out.join("data/metadata/directory/users-0001.json").exists());
    let truth = env.sim.truth();
    let mut r = csv::Reader::from_path(out.join("data/call_facts.csv")).unwrap();
    let head: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    let col = |row: &csv::StringRecord, name: &str| -> String {
        row[head.iter().position(|h| h == name).unwrap()].to_owned()
    };
    let mut rows = 0;
    for row in r.records() {
        let row = row.unwrap();
        if col(&row, "Agent_IDs").is_empty() {
            continue;
        }
        rows += 1;
        let t = truth
            .recordings
            .iter()
            .find(|t| t.id == col(&row, "Recording_ID"))
            .unwrap();
        assert_eq!(
            col(&row, "Agent_Names"),
            t.call.agent.1,
            "the record's participantName"
        );
        assert!(
            !col(&row, "Queue_Names").is_empty(),
            "other names are given"
        );
    }
    assert!(rows > 0);
    assert!(
        custos::verify::verify(&out, &Default::default())
            .unwrap()
            .findings
            .is_empty()
    );
    std::fs::remove_dir_all(&out).unwrap();
}
