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

use serde_json::{Value, json};

use super::context::Ctx;
use crate::digest::Sha256;
use crate::durable::write_durably;
use crate::error::{Error, Result};
use crate::verify::{Package, Require, files};

/// The chain's facts for this bag, in its payload.
pub const CHAIN_FILE: &str = files::CHAIN;
/// Every recording the earlier bags of the chain exported, one id a line, sorted.
pub const PRIOR_FILE: &str = files::CHAIN_PRIOR;

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

/// The bag `--increment-of` names, opened as proven (none without the option): it must
/// verify and be signed by `cfg.pubkey`, since what it says it exported decides what this
/// export leaves out. An output directory inside it is refused.
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
    let Some(pubkey) = &cfg.pubkey else {
        return Err(Error::Config(format!(
            "--increment-of {}: an increment leaves out what the earlier bag says it exported, so that bag must prove who sealed it: pass --pubkey KEY.pub, the public key it was signed with",
            dir.display()
        )));
    };
    let pkg = Package::open(
        dir,
        &crate::verify::VerifyOptions {
            pubkey: Some(pubkey.clone()),
            ..Default::default()
        },
        Require::Signed,
    )?;
    let settings = super::guard::settings(cfg, sign_key, None);
    read_previous(&pkg, canonical_query, &settings).map(Some)
}

/// Reads the previous bag, opened as proven, and checks that this export repeats its query
/// and settings.
fn read_previous(
    pkg: &Package,
    canonical_query: &str,
    settings: &[(&'static str, String)],
) -> Result<Previous> {
    let dir = pkg.root();
    let refuse = |why: String| Error::Config(format!("--increment-of {}: {why}", dir.display()));
    let label = |k: &str| pkg.label(k).unwrap_or_default().to_owned();
    if !label("Custos-Package-Type").is_empty() || label("Export-Id").is_empty() {
        return Err(refuse(
            "not a custos export (a production volume, or another bag)".into(),
        ));
    }
    // The first of each: the query as recorded, the settings of the run that started it.
    let (mut query, mut first_run) = (None, None);
    pkg.custody_events(|e| match e["event"].as_str() {
        Some("query-recorded") if query.is_none() => query = Some(e["canonicalQuery"].clone()),
        Some("export-run") if first_run.is_none() => first_run = Some(e["settings"].clone()),
        _ => {}
    })?;
    let prev_query = query.as_ref().and_then(Value::as_str).unwrap_or("");
    if prev_query != canonical_query {
        return Err(refuse(format!(
            "it was made with another query ({}); an increment repeats its chain's query",
            crate::shown::text(prev_query)
        )));
    }
    let prev_settings = first_run.unwrap_or(Value::Null);
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
                "it was made with {name} {}; this run gives {value}. An increment repeats its chain's settings",
                crate::shown::text(theirs)
            )));
        }
    }
    let mut exported: BTreeSet<String> = read_prior(pkg)?;
    for row in pkg.read_csv(files::CUSTODY_CSV)? {
        if row.get("Outcome").map(String::as_str) == Some("Exported")
            && let Some(rid) = row.get("Recording_ID")
        {
            exported.insert(rid.clone());
        }
    }
    Ok(Previous {
        export_id: label("Export-Id"),
        tag_manifest_sha256: pkg.tag_manifest_sha256()?,
        custody_log_head: label("Custody-Log-Head"),
        sequence: label("Chain-Sequence").parse().unwrap_or(1),
        exported,
    })
}

/// The recordings a bag's predecessors exported ([`PRIOR_FILE`]; empty for a first bag), read
/// as sealed.
pub fn read_prior(pkg: &Package) -> Result<BTreeSet<String>> {
    Ok(match pkg.read_if_held(PRIOR_FILE, 512 << 20)? {
        Some(bytes) => String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        None => BTreeSet::new(),
    })
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
    listing: &mut crate::source::Listing,
) -> Result<()> {
    let before = listing.len()?;
    let excluded = listing.retain(|it, _| Ok(!p.exported.contains(&it.recording_id)))?;
    ctx.state
        .set(crate::state::Key::ChainExcluded, &excluded.to_string())?;
    ctx.log(
        "chain-excluded",
        json!({"listed": before, "exportedEarlier": excluded, "new": before - excluded}),
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
