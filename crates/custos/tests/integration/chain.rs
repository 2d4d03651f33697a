//! Ongoing holds: three increments over simulated weeks (`--increment-of`), against a live
//! simulator whose calls arrive as its clock moves. Each recording is exported exactly once
//! across the chain, with its true bytes; a fourth run with nothing new is an empty, valid,
//! signed increment that says so; every bag verifies with its predecessors; a changed or
//! swapped earlier bag is reported by verifying a later one; another query is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use custos::export::{NoProgress, Retrieval, Selection, SourceKind};
use custos::verify::finding::FindingKind;
use custos_sim::{Scenario, Sim};
use serde_json::Value;

use crate::common::{config, out_dir};

const WEEK_MS: u64 = 7 * 24 * 3600 * 1000;
const QUERY: &str = "timestamp:[2023-10-01T00:00:00.000Z TO 2023-10-22T00:00:00.000Z}";

fn verify(
    dir: &Path,
    previous: &[&PathBuf],
    pubkey: Option<&Path>,
) -> custos::verify::VerifyReport {
    let opts = custos::verify::VerifyOptions {
        previous: previous.iter().map(|p| (*p).clone()).collect(),
        pubkey: pubkey.map(Path::to_path_buf),
        ..Default::default()
    };
    custos::verify::verify(dir, &opts).unwrap()
}

#[tokio::test]
async fn three_increments_hold_each_recording_once_and_the_chain_verifies() {
    let s = Scenario {
        conversations: 36,
        start: time::macros::datetime!(2023-10-01 00:00 UTC),
        end: time::macros::datetime!(2023-10-22 00:00 UTC),
        max_recording_s: 6,
        api_rate: 6_000,
        batch_ms_per_item: 2,
        async_job_ms: 100,
        archived_fraction: 0.0,
        deleted_fraction: 0.0,
        live: true,
        ..Scenario::default()
    };
    let running = Sim::new(s).unwrap().spawn().await.unwrap();
    let key = out_dir("chain-key");
    std::fs::create_dir_all(&key).unwrap();
    let sk = key.join("custos.key");
    let pk = custos::sign::keygen(&sk).unwrap();
    let mut bags: Vec<PathBuf> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for week in 0..4 {
        if week < 3 {
            running.sim.advance_clock(WEEK_MS);
        }
        let out = out_dir(&format!("chain-{week}"));
        let mut cfg = config(&running, out.clone(), SourceKind::Genesys, Retrieval::Batch);
        cfg.selection = Selection::Query(QUERY.into());
        cfg.sign_key = Some(sk.clone());
        cfg.pubkey = Some(pk.clone());
        cfg.increment_of = bags.last().cloned();
        let r = custos::export(&cfg, &NoProgress).await.unwrap();
        let truth = running.sim.truth();
        let arrived = truth.recordings.iter().filter(|t| t.arrived).count();
        let outcomes = custos::package::outcomes(&out).unwrap();
        let hashes = custos::package::exported_hashes(&out).unwrap();
        for (id, o) in &outcomes {
            assert_eq!(o, "Exported", "week {week}: {id}");
            *seen.entry(id.clone()).or_default() += 1;
            let t = truth.recordings.iter().find(|t| &t.id == id).unwrap();
            assert_eq!(hashes.get(id), Some(&t.sha256), "week {week}: {id}");
        }
        // Everything that has happened is in the chain, and nothing twice.
        assert_eq!(seen.len(), arrived, "week {week}");
        assert!(seen.values().all(|&n| n == 1), "week {week}: {seen:?}");
        let info = std::fs::read_to_string(out.join("bag-info.txt")).unwrap();
        let chain: Option<Value> = std::fs::read(out.join("data/chain.json"))
            .ok()
            .map(|b| serde_json::from_slice(&b).unwrap());
        match week {
            0 => {
                assert!(chain.is_none() && !info.contains("Chain-"), "{info}");
                assert!(r.tally.items > 0);
            }
            3 => {
                let c = chain.unwrap();
                assert_eq!(c["newlyExported"], 0, "{c}");
                assert!(c["note"].as_str().unwrap().contains("nothing new"));
                assert_eq!(r.tally.items, 0, "the empty increment lists nothing");
                assert!(info.contains("Chain-Sequence: 4"), "{info}");
            }
            _ => {
                let html = std::fs::read_to_string(out.join("report.html")).unwrap();
                assert!(
                    html.contains(&format!("bag {} of a chain", week + 1)),
                    "week {week}"
                );
                let c = chain.unwrap();
                assert!(c["newlyExported"].as_u64().unwrap() > 0, "{c}");
                assert_eq!(c["priorExported"], (seen.len() - outcomes.len()) as u64);
                assert_eq!(c["listedButExportedEarlier"], c["priorExported"]);
            }
        }
        let earlier: Vec<&PathBuf> = bags.iter().rev().collect();
        let v = verify(&out, &earlier, Some(&pk));
        assert!(v.findings.is_empty(), "week {week}: {:?}", v.findings);
        assert!(out.join("tagmanifest-sha256.txt.minisig").exists());
        bags.push(out);
    }
    assert_eq!(seen.len(), running.sim.truth().recordings.len());

    // Verifying the newest bag with a wrong or missing predecessor is a broken link.
    let v = verify(&bags[3], &[&bags[1], &bags[0]], None);
    assert!(
        v.findings
            .iter()
            .any(|f| f.kind == FindingKind::ChainBroken),
        "{:?}",
        v.findings
    );
    // An earlier bag changed: verifying a later one reports it.
    let summary = bags[0].join("data/summary.json");
    let mut perm = std::fs::metadata(&summary).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&summary, perm).unwrap();
    let mut text = std::fs::read_to_string(&summary).unwrap();
    text.push(' ');
    std::fs::write(&summary, text).unwrap();
    let v = verify(&bags[2], &[&bags[1], &bags[0]], None);
    assert!(
        v.findings
            .iter()
            .any(|f| f.kind == FindingKind::ChainPreviousDamaged
                && f.r#where.contains("summary.json")),
        "{:?}",
        v.findings
    );
    // And a chain cannot continue from a bag that does not verify, or with another query.
    let out = out_dir("chain-refused");
    let mut cfg = config(&running, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    cfg.selection = Selection::Query(QUERY.into());
    cfg.increment_of = Some(bags[0].clone());
    // Without the key the earlier bag must be signed with, nothing is read from it.
    let e = custos::export(&cfg, &NoProgress).await.unwrap_err();
    assert!(e.to_string().contains("--pubkey"), "{e}");
    cfg.pubkey = Some(pk.clone());
    let e = custos::export(&cfg, &NoProgress).await.unwrap_err();
    assert!(
        matches!(
            e,
            custos::Error::Unproven(custos::verify::OpenError::Findings { .. })
        ),
        "{e}"
    );
    cfg.increment_of = Some(bags[3].clone());
    cfg.selection =
        Selection::Query("timestamp:[2023-10-01T00:00:00.000Z TO 2023-10-15T00:00:00.000Z}".into());
    let e = custos::export(&cfg, &NoProgress).await.unwrap_err();
    assert!(e.to_string().contains("another query"), "{e}");
    for b in bags.iter().chain([&key, &out]) {
        let _ = std::fs::remove_dir_all(b);
    }
}
