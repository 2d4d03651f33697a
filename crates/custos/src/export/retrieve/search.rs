//! The design guide's search API: each recording's metadata, kept as received, then its
//! API-hosted `/media` (bearer token sent, counted against the budget).

use reqwest::Method;
use serde_json::Value;

use super::super::context::Ctx;
use super::download::{Got, download};
use super::stated::Stated;
use crate::error::Result;
use crate::model::{Item, Outcome};
use crate::source::url_path;
use crate::state::Done;

/// Retrieves one item through the search API.
pub(super) async fn search_item(ctx: &Ctx<'_>, it: &Item) -> Result<Done> {
    let meta_path = format!("/api/v2/recordings/{}", url_path(&it.recording_id));
    let r = ctx.api.send(Method::GET, &meta_path, None).await?;
    // The design guide's search API serves call recordings only.
    let mut stated = Stated {
        source: "not stated: the metadata is not JSON".into(),
        media: Some(crate::model::Media::Audio),
        ..Stated::default()
    };
    match r.status.as_u16() {
        200 => {
            if let Ok(v) = serde_json::from_slice::<Value>(&r.body) {
                (stated.duration_ms, stated.source) =
                    Stated::duration(&v, "durationMs", "startTimestamp", "endTimestamp");
            }
            let p = ctx
                .root
                .join("data/metadata")
                .join(format!("{}.json", it.recording_id));
            if let Some(d) = p.parent() {
                crate::durable::make_dirs(d)?;
            }
            crate::durable::write_sealed(&p, &r.body)?;
        }
        404 => {
            return Ok(Done::no_file(
                Outcome::Purged,
                "404 for the recording's metadata: deleted at the source",
            ));
        }
        _ => {
            return Ok(Done::no_file(
                Outcome::Failed,
                format!("metadata request failed: {}", r.describe()),
            ));
        }
    }
    let token = ctx.api.token(None).await?;
    let url = ctx.api.url(&format!("{meta_path}/media"));
    match download(ctx, it, &url, Some(&token), stated).await? {
        Got::Done(d) => Ok(*d),
        Got::Expired => Ok(Done::no_file(Outcome::Failed, "403 for API-hosted media")),
    }
}
