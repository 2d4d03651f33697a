//! `--orphans`: the org's orphan recordings (Genesys knows no conversation for them, so no
//! query finds them), listed once after the manifest (`GET /api/v2/orphanrecordings`,
//! `hasConversation=false`: "all orphans for the organization, capped at 500 results"), every
//! page kept as received in `data/metadata/orphans/`. data/completeness.json lists those
//! created within the query's interval; with `--collect-orphans` each of them is a manifest
//! item too (its conversation id empty), listed before the manifest is sealed.

use reqwest::Method;
use serde_json::{Value, json};

use super::context::Ctx;
use crate::durable::{make_dirs, write_sealed};
use crate::error::{Error, Result};
use crate::model::Item;
use crate::state::Key;

/// Where the pages are kept.
pub const ORPHANS_DIR: &str = "data/metadata/orphans";
/// Orphans per page (the listing's largest).
const PAGE_SIZE: u32 = 100;
/// 500 orphans at most: 5 pages; a few more in case a page is short.
const MAX_PAGES: u32 = 10;

/// Lists the orphan recordings, unless an earlier run of this export did.
pub(super) async fn list(ctx: &Ctx<'_>) -> Result<()> {
    if !ctx.cfg.orphans || ctx.state.get(Key::OrphansListed)?.is_some() {
        return Ok(());
    }
    let dir = ctx.root.join(ORPHANS_DIR);
    make_dirs(&dir)?;
    let (mut pages, mut total) = (0u32, 0u64);
    for n in 1..=MAX_PAGES {
        let path = format!(
            "/api/v2/orphanrecordings?pageSize={PAGE_SIZE}&pageNumber={n}&hasConversation=false"
        );
        let r = ctx.api.send_ok(Method::GET, &path, None).await?;
        write_sealed(&dir.join(format!("page-{n:04}.json")), &r.body)?;
        pages = n;
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        total = v["total"].as_u64().unwrap_or(total);
        let count = v["pageCount"].as_u64().unwrap_or(0);
        if v["entities"].as_array().is_none_or(Vec::is_empty) || u64::from(n) >= count {
            break;
        }
    }
    ctx.log(
        "orphans-listed",
        json!({"dir": ORPHANS_DIR, "pages": pages, "total": total}),
    )?;
    ctx.state.set(Key::OrphansListed, "true")
}

/// What the kept pages list.
pub(super) struct Listed {
    /// The listing's `total` (Genesys caps it at 500).
    pub total: u64,
    /// The orphans created within the query's interval (every one, for a query without
    /// one), as listed.
    pub in_interval: Vec<Value>,
}

/// Reads the kept pages (`None` when the orphans were not listed).
pub(super) fn listed(ctx: &Ctx<'_>) -> Result<Option<Listed>> {
    let dir = ctx.root.join(ORPHANS_DIR);
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut names: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| Error::io(&dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    let query = ctx.state.get(Key::QueryUsed)?.unwrap_or_default();
    let range = crate::query::Query::parse(&query)
        .ok()
        .and_then(|q| q.time_range());
    let mut out = Listed {
        total: 0,
        in_interval: Vec::new(),
    };
    for p in names {
        let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        out.total = v["total"].as_u64().unwrap_or(out.total);
        for o in v["entities"].as_array().into_iter().flatten() {
            let created = o["createdTime"].as_str().and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            });
            if range
                .as_ref()
                .is_none_or(|r| created.is_some_and(|c| r.contains(c)))
            {
                out.in_interval.push(o.clone());
            }
        }
    }
    Ok(Some(out))
}

/// `--collect-orphans`: the orphans made in the query's interval as manifest items (no
/// conversation id; listed state their `fileState`), each with its listing entry (kept as
/// its metadata, in `staging` as the listing's are) and media type, added to what the query
/// found (`listing`). An orphan whose id a
/// recording of the query already has is left out (that recording is collected, and one id
/// names one file), and so is a repeat; both are counted in the custody log.
pub(super) async fn add_to_manifest(
    ctx: &Ctx<'_>,
    listing: &mut crate::source::Listing,
    staging: &std::path::Path,
) -> Result<()> {
    list(ctx).await?;
    let listed = listed(ctx)?.map_or_else(Vec::new, |l| l.in_interval);
    let (mut added, mut skipped) = (0u64, Vec::new());
    for o in &listed {
        let id = o["id"].as_str().unwrap_or("").to_owned();
        if id.is_empty() || listing.has_recording(&id)? {
            skipped.push(json!(id));
            continue;
        }
        // The listing says CALL or SCREEN; the manifest's media names audio or screen.
        let media = crate::model::Media::of_listed(o).filter(|m| *m != crate::model::Media::Audio);
        // Its metadata: its entry of the listing (the pages as received are kept beside).
        if crate::model::safe_id(&id) {
            crate::durable::make_dirs(staging)?;
            crate::durable::write_sealed(
                &staging.join(format!("{id}.json")),
                serde_json::to_string(o).expect("json").as_bytes(),
            )?;
        }
        let item = Item {
            conversation_id: String::new(),
            recording_id: id,
            listed_state: o["fileState"].as_str().unwrap_or("").to_owned(),
        };
        listing.push(&item, media.map(|m| m.as_str()))?;
        added += 1;
    }
    ctx.log(
        "orphans-added",
        json!({"inInterval": listed.len(), "added": added, "leftOut": skipped,
               "note": "orphan recordings are chosen by the query's interval alone: Genesys knows no conversation for them, so the query's other terms (people, queues, directions) cannot select them; --media applies to them"}),
    )?;
    Ok(())
}
