//! Stage 1: the query (or ids file) recorded verbatim in `data/query.json`, with the requests
//! it becomes, and hashed before anything is listed or downloaded.

use crate::package::files;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::config::Retrieval;
use super::context::Ctx;
use crate::custody::{Actor, COMMIT, TOOL, VERSION};
use crate::digest::Sha256;
use crate::durable::write_sealed;
use crate::error::Result;
use crate::query::format_ms;
use crate::source::{Selector, Source};
use crate::state::Key;

/// Writes and seals `data/query.json`.
pub(super) fn write_query(
    ctx: &Ctx<'_>,
    source: &Source,
    custodians: Option<&(String, Vec<super::people::Custodian>)>,
    now: OffsetDateTime,
) -> Result<()> {
    let cfg = ctx.cfg;
    let export_id = uuid::Uuid::new_v4().to_string();
    let (requests, selection) = source.requests(&ctx.api, cfg.page_size, now)?;
    let (query_text, canonical, canonical_sha, ids) = match source.selector() {
        Selector::Query(q) => (
            json!(q.text()),
            q.canonical(),
            q.canonical_sha256(),
            Value::Null,
        ),
        Selector::Ids(l) => (
            Value::Null,
            l.canonical(),
            Sha256::of(l.canonical().as_bytes()).hex(),
            json!({"file": l.file, "fileSha256": l.file_sha256, "entries": l.entries.iter().map(|e| match &e.second { Some(r) => format!("{},{r}", e.first), None => e.first.clone() }).collect::<Vec<_>>()}),
        ),
    };
    let mut doc = json!({
        "format": "custos-query/1",
        "exportId": export_id,
        "matter": cfg.matter,
        "query": query_text,
        "ids": ids,
        // `--custodian`: the people as given, the users they are, and the query as given
        // before it was narrowed to them (`query` is the narrowed one, run as is).
        "custodians": custodians.map_or(Value::Null, |(given, found)| json!({"queryAsGiven": given, "resolved": found})),
        "canonicalQuery": canonical,
        "canonicalQuerySha256": canonical_sha,
        "source": cfg.source.as_str(),
        "apiBase": cfg.api_base,
        "loginBase": cfg.login_base,
        "retrieval": match &cfg.retrieval { Retrieval::Batch => json!({"mode": "batch"}), Retrieval::Transcode(f) => json!({"mode": "transcode", "formatId": f}) },
        "selection": selection,
        "requests": requests,
        "tool": {"name": TOOL, "version": VERSION, "commit": COMMIT},
        "exporter": Actor::here(cfg.operator.as_deref(), Some(ctx.api.client_id())),
        "startedAt": format_ms(OffsetDateTime::now_utc()),
    });
    // `--archive`: where the bytes are read from instead of the media API (docs/archive.md).
    if let Some(a) = &cfg.archive {
        doc["retrieval"]["archive"] = json!({"location": a.store.location(),
            "layout": a.layout.as_str(), "missing": a.missing.as_str(),
            "settledCopies": if a.read_settled { "read" } else { "name" },
            "bulkExport": a.bulk.as_ref().map(|b| json!({"action": "EXPORT", "integrationId": b.integration_id}))});
    }
    let mut bytes = serde_json::to_vec_pretty(&doc).expect("json");
    bytes.push(b'\n');
    let path = ctx.root.join(files::QUERY);
    write_sealed(&path, &bytes)?;
    let sha = Sha256::of(&bytes).hex();
    ctx.state.set(Key::ExportId, &export_id)?;
    ctx.state
        .set(Key::QueryCanonical, &source.selector().canonical())?;
    ctx.state.set(Key::QueryUsed, &source.selector().used())?;
    ctx.state.set(Key::QuerySha256, &sha)?;
    ctx.log(
        "query-recorded",
        json!({"file": files::QUERY, "sha256": sha, "canonicalQuery": source.selector().canonical()}),
    )?;
    Ok(())
}
