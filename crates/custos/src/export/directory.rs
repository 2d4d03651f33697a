//! Stage 2b, after the manifest: the names of the people, queues, skills, wrap-up codes and
//! divisions the conversations' analytics records name only by id, asked once per distinct id
//! from the Users, Routing and Authorization APIs (100 ids a request, as Genesys allows), under
//! the run's one rate
//! budget, every answer recorded in the custody log and kept byte for byte in
//! `data/metadata/directory/` (crate::facts reads them). A lookup the API refuses (a missing
//! permission) leaves those names blank and says so in the log; the export goes on.

use std::collections::BTreeSet;
use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};

use super::context::Ctx;
use crate::durable::{make_dirs, write_sealed};
use crate::error::{Error, Result};
use crate::facts::DIRECTORY_DIR;
use crate::state::Key;

/// Ids per request (Genesys' cap on `id` lists for these listings).
const IDS_PER_REQUEST: usize = 100;

/// The directory listings, by the file-name prefix their answers are kept under.
pub const KINDS: [(&str, &str); 5] = [
    ("users", "/api/v2/users"),
    ("queues", "/api/v2/routing/queues"),
    ("skills", "/api/v2/routing/skills"),
    ("wrapupcodes", "/api/v2/routing/wrapupcodes"),
    ("divisions", "/api/v2/authorization/divisions"),
];

/// Every id of each kind the conversation records name: (users, queues, skills, wrap-up codes,
/// divisions).
fn ids_named(conv_dir: &Path) -> Result<[BTreeSet<String>; 5]> {
    let mut ids: [BTreeSet<String>; 5] = Default::default();
    let Ok(rd) = std::fs::read_dir(conv_dir) else {
        return Ok(ids);
    };
    for e in rd {
        let p = e.map_err(|e| Error::io(conv_dir, e))?.path();
        let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
        let c: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let mut add = |k: usize, v: &Value| {
            if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
                ids[k].insert(s.to_owned());
            }
        };
        for division in c["divisionIds"].as_array().into_iter().flatten() {
            add(4, division);
        }
        for part in c["participants"].as_array().into_iter().flatten() {
            add(0, &part["userId"]);
            for sess in part["sessions"].as_array().into_iter().flatten() {
                for seg in sess["segments"].as_array().into_iter().flatten() {
                    add(1, &seg["queueId"]);
                    for skill in seg["requestedRoutingSkillIds"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        add(2, skill);
                    }
                    add(3, &seg["wrapUpCode"]);
                }
            }
        }
    }
    Ok(ids)
}

/// Looks every named id up, unless an earlier run of this export already did.
pub(super) async fn record_names(ctx: &Ctx<'_>) -> Result<()> {
    if ctx.state.get(Key::DirectoryRecorded)?.is_some() {
        return Ok(());
    }
    let meta = ctx.root.join("data/metadata");
    let ids = ids_named(&meta.join("conversations"))?;
    let out = ctx.root.join(DIRECTORY_DIR);
    let mut summary = serde_json::Map::new();
    for ((kind, path), ids) in KINDS.iter().zip(&ids) {
        let ids: Vec<&String> = ids.iter().collect();
        let (mut files, mut refused) = (0usize, Vec::new());
        for (n, chunk) in ids.chunks(IDS_PER_REQUEST).enumerate() {
            let mut q = format!("{path}?pageSize={IDS_PER_REQUEST}");
            for id in chunk {
                q.push_str("&id=");
                q.push_str(&crate::source::url_path(id));
            }
            match ctx.api.send_ok(Method::GET, &q, None).await {
                Ok(r) => {
                    make_dirs(&out)?;
                    write_sealed(&out.join(format!("{kind}-{:04}.json", n + 1)), &r.body)?;
                    files += 1;
                }
                // A refusal (no permission for this directory) leaves these names blank.
                Err(e @ Error::Refused { .. }) => refused.push(e.to_string()),
                Err(e) => return Err(e),
            }
        }
        summary.insert(
            (*kind).into(),
            json!({"ids": ids.len(), "files": files, "refused": refused}),
        );
    }
    ctx.log(
        "directory-recorded",
        json!({"dir": DIRECTORY_DIR, "lookups": summary}),
    )?;
    ctx.state.set(Key::DirectoryRecorded, "true")?;
    Ok(())
}
