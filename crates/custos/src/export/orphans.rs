//! `--orphans`: the org's orphan recordings (Genesys knows no conversation for them, so no
//! query finds them), listed once after the manifest (`GET /api/v2/orphanrecordings`,
//! `hasConversation=false`: "all orphans for the organization, capped at 500 results"), every
//! page kept as received in `data/metadata/orphans/`. data/completeness.json lists those
//! created within the query's interval.

use reqwest::Method;
use serde_json::{Value, json};

use super::context::Ctx;
use crate::durable::{make_dirs, write_sealed};
use crate::error::Result;
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
