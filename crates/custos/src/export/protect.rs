//! Stage 2a, right after the manifest is sealed (`--protect`): a legal hold at the source.
//! Every conversation the query matched (the manifest's, those whose recordings `--media` left
//! out, and those without any recording) is put under Genesys deletion protection (crate::
//! protection), read back, each request and answer recorded in the custody log, and the set
//! written to `data/protection.json` (named in bag-info) before any media is requested. A
//! refusal (a missing permission, the org's limit) stops the export there with a clear error;
//! what was protected stays protected, is recorded, and a re-run continues.

use std::collections::BTreeSet;

use serde_json::json;
use time::OffsetDateTime;

use super::context::Ctx;
use crate::digest::Sha256;
use crate::durable::write_durably;
use crate::error::{Error, Result};
use crate::model::safe_id;
use crate::protection::{IDS_PER_REQUEST, PROTECTION_FILE, listed, set};
use crate::query::format_ms;
use crate::state::Key;

/// Protects every matched conversation, unless an earlier run of this export did.
pub(super) async fn protect(ctx: &Ctx<'_>) -> Result<()> {
    if !ctx.cfg.protect || ctx.state.get(Key::Protected)?.is_some() {
        return Ok(());
    }
    let mut ids = BTreeSet::new();
    ctx.state.for_each(|it, _| {
        if safe_id(&it.conversation_id) {
            ids.insert(it.conversation_id);
        }
        Ok(())
    })?;
    // Every conversation the query matched, not only those with a recording to download: the
    // ones `--media` left out, and those without any recording (their analytics records).
    let excluded = ctx.root.join(super::manifest::MEDIA_EXCLUDED_FILE);
    if excluded.exists() {
        let bytes = std::fs::read(&excluded).map_err(|e| Error::io(&excluded, e))?;
        for row in csv::Reader::from_reader(bytes.as_slice())
            .records()
            .flatten()
        {
            if let Some(c) = row.get(0).filter(|c| safe_id(c)) {
                ids.insert(c.to_owned());
            }
        }
    }
    let matched = ctx.root.join("data/metadata/conversations");
    if matched.is_dir() {
        for e in std::fs::read_dir(&matched).map_err(|e| Error::io(&matched, e))? {
            let p = e.map_err(|e| Error::io(&matched, e))?.path();
            if let Some(c) = p
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|c| safe_id(c))
            {
                ids.insert(c.to_owned());
            }
        }
    }
    let ids: Vec<String> = ids.into_iter().collect();
    let mut not_found = Vec::new();
    for chunk in ids.chunks(IDS_PER_REQUEST) {
        let a = match set(&ctx.api, chunk, true).await {
            Ok(a) => a,
            // A refusal is final; a network failure is not (a re-run continues).
            Err(Error::Protection(why)) => {
                ctx.log(
                    "deletion-protection-refused",
                    json!({"conversationIds": chunk, "error": why}),
                )?;
                return Err(refusal(ctx, &why));
            }
            Err(e) => return Err(e),
        };
        ctx.state
            .protected(&a.updated, &format_ms(OffsetDateTime::now_utc()))?;
        ctx.log(
            "deletion-protection",
            json!({"protect": true, "conversationIds": chunk, "protected": a.updated.len(),
                   "answerSha256": Sha256::of(a.answer.to_string().as_bytes()).hex(), "failedUpdates": a.answer["failedUpdates"]}),
        )?;
        not_found.extend(a.not_found);
        if let Some((id, why)) = a.refused.first() {
            return Err(refusal(
                ctx,
                &format!(
                    "{} conversation(s) not protected, e.g. {id}: {why}",
                    a.refused.len()
                ),
            ));
        }
    }
    let recorded = ctx.state.protected_set()?;
    let asked: Vec<String> = recorded.iter().map(|(id, _)| id.clone()).collect();
    let confirmed = listed(&ctx.api, &asked).await?;
    let missing: Vec<&String> = asked.iter().filter(|id| !confirmed.contains(*id)).collect();
    if !missing.is_empty() {
        return Err(Error::Protection(format!(
            "Genesys accepted protection for {} conversations but does not list {} of them as protected (e.g. {}); nothing was downloaded",
            asked.len(),
            missing.len(),
            missing[0]
        )));
    }
    let doc = json!({
        "what": "Genesys deletion protection (PUT /api/v2/recordings/deletionprotection?protect=true), confirmed by POST /api/v2/recordings/deletionprotection",
        "count": recorded.len(),
        "conversations": recorded.iter().map(|(id, at)| json!({"conversationId": id, "protectedAt": at})).collect::<Vec<_>>(),
        "notFound": not_found,
        "release": "custos release --protect <this export>",
    });
    let mut bytes = serde_json::to_vec_pretty(&doc).expect("json");
    bytes.push(b'\n');
    write_durably(&ctx.root.join(PROTECTION_FILE), &bytes)?;
    ctx.log(
        "deletion-protection-confirmed",
        json!({"conversations": recorded.len(), "notFound": doc["notFound"], "file": PROTECTION_FILE, "sha256": Sha256::of(&bytes).hex()}),
    )?;
    ctx.state.set(Key::Protected, "true")
}

fn refusal(ctx: &Ctx<'_>, why: &str) -> Error {
    let n = ctx.state.protected_set().map(|s| s.len()).unwrap_or(0);
    Error::Protection(format!(
        "{why}. Nothing was downloaded. {n} conversation(s) were protected before the refusal and stay protected (the custody log lists them); grant the permission or raise the org's limit and re-run the same command"
    ))
}
