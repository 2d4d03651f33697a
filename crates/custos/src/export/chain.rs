//! Ongoing holds: `--increment-of PREVIOUS` makes this export the next bag of a chain. Same
//! query, same settings; it holds only the recordings no earlier bag of the chain exported, and
//! names the previous bag's tag-manifest SHA-256 and custody-log head (bag-info, custody log,
//! `data/chain.json`), so a later bag pins every earlier one. `data/chain_prior_exported.txt`
//! lists (sorted) every recording the earlier bags exported, so each bag carries what the next
//! needs and `custos verify --previous` can check each link from the bags alone.
//!
//! A period with nothing new gives an empty increment, sealed and signed like any other, that
//! says so.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use super::context::Ctx;
use crate::digest::Sha256;
use crate::durable::{sha256_file, write_durably};
use crate::error::{Error, Result};

/// The chain's facts for this bag, in its payload.
pub const CHAIN_FILE: &str = "data/chain.json";
/// Every recording the earlier bags of the chain exported, one id a line, sorted.
pub const PRIOR_FILE: &str = "data/chain_prior_exported.txt";

/// Settings that may differ between the bags of a chain: who runs it and with which key.
const MAY_DIFFER: [&str; 3] = ["operator", "sign-key", "increment-of"];

/// The bag this export continues, as read (and verified) from it.
#[derive(Clone, Debug)]
pub struct Previous {
    /// Its `Export-Id`.
    pub export_id: String,
    /// SHA-256 of its `tagmanifest-sha256.txt`.
    pub tag_manifest_sha256: String,
    /// Its `Custody-Log-Head`.
    pub custody_log_head: String,
    /// Its place in the chain (1 for a bag that continues none).
    pub sequence: u64,
    /// Every recording exported by it or by a bag before it.
    pub exported: BTreeSet<String>,
}

/// The first `name` event of a custody log, read line by line up to it (the events asked for
/// are near the top; the log of a large export is not read whole).
fn first_event(log: &Path, name: &str) -> Result<Value> {
    use std::io::BufRead;
    let f = std::fs::File::open(log).map_err(|e| Error::io(log, e))?;
    for line in std::io::BufReader::new(f).lines() {
        let line = line.map_err(|e| Error::io(log, e))?;
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if v["event"] == name {
            return Ok(v);
        }
    }
    Err(Error::Config(format!("{}: no {name} event", log.display())))
}

/// The bag `--increment-of` names, read and verified (none without the option); an output
/// directory inside it is refused.
pub(super) fn previous_bag(
    cfg: &super::ExportConfig,
    canonical_query: &str,
    sign_key: Option<&minisign::SecretKey>,
) -> Result<Option<Previous>> {
    let Some(dir) = &cfg.increment_of else {
        return Ok(None);
    };
    if crate::package::inside_bag(dir, &cfg.out) {
        return Err(Error::Config(format!(
            "--out {} is inside the previous bag {}, which is sealed; write the increment elsewhere",
            cfg.out.display(),
            dir.display()
        )));
    }
    let settings = super::guard::settings(cfg, sign_key, None);
    read_previous(dir, canonical_query, &settings).map(Some)
}

/// Reads the previous bag after verifying it, and checks that this export repeats its query
/// and settings.
fn read_previous(
    dir: &Path,
    canonical_query: &str,
    settings: &[(&'static str, String)],
) -> Result<Previous> {
    let refuse = |why: String| Error::Config(format!("--increment-of {}: {why}", dir.display()));
    let v = crate::verify::verify(dir, &Default::default()).map_err(|e| refuse(e.to_string()))?;
    if v.verdict == crate::verify::Verdict::Findings {
        return Err(Error::Tampered {
            path: dir.to_path_buf(),
            message: format!(
                "the previous bag does not verify ({} finding(s), e.g. {}); a chain cannot continue from it",
                v.findings.len(),
                v.findings
                    .first()
                    .map(|f| format!("{} {}", f.r#where, f.what))
                    .unwrap_or_default()
            ),
        });
    }
    let text = std::fs::read_to_string(dir.join("bag-info.txt")).map_err(|e| Error::io(dir, e))?;
    let info: std::collections::BTreeMap<String, String> =
        crate::package::parse_tags(&text).into_iter().collect();
    let label = |k: &str| info.get(k).cloned().unwrap_or_default();
    if !label("Custos-Package-Type").is_empty() || label("Export-Id").is_empty() {
        return Err(refuse(
            "not a custos export (a production volume, or another bag)".into(),
        ));
    }
    let log = dir.join("data/custody_log.jsonl");
    let prev_query = first_event(&log, "query-recorded")?["canonicalQuery"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    if prev_query != canonical_query {
        return Err(refuse(format!(
            "it was made with another query ({prev_query}); an increment repeats its chain's query"
        )));
    }
    let prev_settings = first_event(&log, "export-run")?["settings"].clone();
    for (name, value) in settings {
        let key = name.trim_start_matches("--");
        if MAY_DIFFER.contains(&key) {
            continue;
        }
        // A bag made before a setting was recorded ran without it.
        let theirs = prev_settings[key].as_str().unwrap_or(match value.as_str() {
            "no" | "(none)" => value.as_str(),
            _ => "(not recorded)",
        });
        if theirs != value {
            return Err(refuse(format!(
                "it was made with {name} {theirs}; this run gives {value}. An increment repeats its chain's settings"
            )));
        }
    }
    let mut exported: BTreeSet<String> = read_prior(dir)?;
    for (rid, outcome) in crate::package::outcomes(dir).map_err(|e| refuse(e.to_string()))? {
        if outcome == "Exported" {
            exported.insert(rid);
        }
    }
    Ok(Previous {
        export_id: label("Export-Id"),
        tag_manifest_sha256: sha256_file(&dir.join("tagmanifest-sha256.txt"))?.0.hex(),
        custody_log_head: label("Custody-Log-Head"),
        sequence: label("Chain-Sequence").parse().unwrap_or(1),
        exported,
    })
}

/// The recordings a bag's predecessors exported (`PRIOR_FILE`; empty for a first bag).
pub fn read_prior(dir: &Path) -> Result<BTreeSet<String>> {
    let p = dir.join(PRIOR_FILE);
    // A regular file of a sane size (the bag verified; this is read after it did).
    if let Ok(m) = std::fs::symlink_metadata(&p)
        && (!m.is_file() || m.len() > 512 << 20)
    {
        return Err(Error::Config(format!(
            "{}: not a regular file of at most 512 MiB",
            p.display()
        )));
    }
    match std::fs::read_to_string(&p) {
        Ok(s) => Ok(s
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(e) => Err(Error::io(&p, e)),
    }
}

fn prior_bytes(ids: &BTreeSet<String>) -> Vec<u8> {
    ids.iter()
        .flat_map(|id| [id.as_bytes(), b"\n"].concat())
        .collect()
}

/// Leaves out of the listing what an earlier bag of the chain exported, and records how many.
pub(super) fn exclude(
    ctx: &Ctx<'_>,
    p: &Previous,
    items: &mut Vec<crate::model::Item>,
) -> Result<()> {
    let before = items.len();
    items.retain(|it| !p.exported.contains(&it.recording_id));
    let excluded = before - items.len();
    ctx.state
        .set(crate::state::Key::ChainExcluded, &excluded.to_string())?;
    ctx.log(
        "chain-excluded",
        json!({"listed": before, "exportedEarlier": excluded, "new": items.len()}),
    )?;
    Ok(())
}

/// The custody-log event that ties this export to its predecessor (once, before the listing).
pub(super) fn log_link(ctx: &Ctx<'_>, p: &Previous) -> Result<()> {
    ctx.log(
        "chain-continued",
        json!({"previousExportId": p.export_id, "previousTagManifestSha256": p.tag_manifest_sha256,
               "previousCustodyLogHead": p.custody_log_head, "sequence": p.sequence + 1,
               "priorExported": p.exported.len(), "priorExportedSha256": Sha256::of(&prior_bytes(&p.exported)).hex()}),
    )?;
    Ok(())
}

/// Writes `data/chain.json` and `data/chain_prior_exported.txt`, and returns the bag-info
/// labels.
pub(super) fn seal(
    ctx: &Ctx<'_>,
    p: &Previous,
    excluded: u64,
) -> Result<Vec<(&'static str, String)>> {
    let prior = prior_bytes(&p.exported);
    write_durably(&ctx.root.join(PRIOR_FILE), &prior)?;
    let mut new = 0u64;
    ctx.state.for_each(|_, d| {
        new += u64::from(d.is_some_and(|d| d.outcome == crate::model::Outcome::Exported));
        Ok(())
    })?;
    let doc = json!({
        "sequence": p.sequence + 1,
        "previous": {"exportId": p.export_id, "tagManifestSha256": p.tag_manifest_sha256, "custodyLogHead": p.custody_log_head},
        "priorExported": p.exported.len(),
        "priorExportedFile": PRIOR_FILE,
        "priorExportedSha256": Sha256::of(&prior).hex(),
        "listedButExportedEarlier": excluded,
        "newlyExported": new,
        "note": if new == 0 { "nothing new since the previous bag of this chain: this increment holds no recording" } else { "this bag holds only recordings no earlier bag of the chain exported" },
    });
    let mut bytes = serde_json::to_vec_pretty(&doc).expect("json");
    bytes.push(b'\n');
    write_durably(&ctx.root.join(CHAIN_FILE), &bytes)?;
    Ok(vec![
        ("Chain-Sequence", (p.sequence + 1).to_string()),
        ("Chain-Previous-Export-Id", p.export_id.clone()),
        (
            "Chain-Previous-Tag-Manifest-SHA256",
            p.tag_manifest_sha256.clone(),
        ),
        (
            "Chain-Previous-Custody-Log-Head",
            p.custody_log_head.clone(),
        ),
    ])
}
