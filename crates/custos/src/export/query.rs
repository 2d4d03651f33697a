//! Stage 1: the query (or ids file) recorded verbatim in `data/query.json`, with the requests
//! it becomes, and hashed before anything is listed or downloaded.

use crate::package::files;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::config::{Retrieval, SourceKind};
use super::context::{Ctx, Input};
use crate::custody::{Actor, COMMIT, TOOL, VERSION};
use crate::digest::Sha256;
use crate::durable::write_sealed;
use crate::error::{Error, Result};
use crate::query::format_ms;
use crate::source::url_path;
use crate::state::Key;

/// Writes and seals `data/query.json`.
pub(super) fn write_query(
    ctx: &Ctx<'_>,
    input: &Input,
    custodians: Option<&(String, Vec<super::people::Custodian>)>,
    now: OffsetDateTime,
) -> Result<()> {
    let cfg = ctx.cfg;
    let export_id = uuid::Uuid::new_v4().to_string();
    let (requests, selection): (Vec<Value>, &str) = match (input, cfg.source) {
        (Input::Query(query), SourceKind::Genesys) => (
            query
                .genesys_requests(now, cfg.page_size)
                .map_err(Error::Config)?
                .into_iter()
                .map(|r| json!({"method": r.method, "url": ctx.api.url(r.path), "body": r.body}))
                .collect(),
            "every recording of the conversations whose conversationStart lies in the timestamp range and that match the filters",
        ),
        (Input::Query(query), SourceKind::Search) => (
            vec![json!({"method": "GET", "url": ctx.api.url("/api/v2/search/recordings"), "query": {"q": query.text(), "pageSize": cfg.page_size}})],
            "the recordings the search API returns for q, every page",
        ),
        (Input::Ids(list), SourceKind::Genesys) => (
            list.entries
                .iter()
                .map(|e| &e.first)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|c| json!({"method": "GET", "url": ctx.api.url(&crate::source::recordings_list_path(c))}))
                .collect(),
            "the listed conversations' recordings (all of them, or the one named on the line)",
        ),
        (Input::Ids(list), SourceKind::Search) => (
            list.entries.iter().map(|e| json!({"method": "GET", "url": ctx.api.url(&format!("/api/v2/recordings/{}", url_path(&e.first)))})).collect(),
            "the listed recordings",
        ),
    };
    let (query_text, canonical, canonical_sha, ids) = match input {
        Input::Query(q) => (
            json!(q.text()),
            q.canonical(),
            q.canonical_sha256(),
            Value::Null,
        ),
        Input::Ids(l) => (
            Value::Null,
            l.canonical(),
            Sha256::of(l.canonical().as_bytes()).hex(),
            json!({"file": l.file, "fileSha256": l.file_sha256, "entries": l.entries.iter().map(|e| match &e.second { Some(r) => format!("{},{r}", e.first), None => e.first.clone() }).collect::<Vec<_>>()}),
        ),
    };
    let doc = json!({
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
    let mut bytes = serde_json::to_vec_pretty(&doc).expect("json");
    bytes.push(b'\n');
    let path = ctx.root.join(files::QUERY);
    write_sealed(&path, &bytes)?;
    let sha = Sha256::of(&bytes).hex();
    ctx.state.set(Key::ExportId, &export_id)?;
    ctx.state.set(Key::QueryCanonical, &input.canonical())?;
    ctx.state.set(Key::QueryUsed, &input.used())?;
    ctx.state.set(Key::QuerySha256, &sha)?;
    ctx.log(
        "query-recorded",
        json!({"file": files::QUERY, "sha256": sha, "canonicalQuery": input.canonical()}),
    )?;
    Ok(())
}
