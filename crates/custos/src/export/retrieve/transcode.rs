//! Genesys transcode retrieval: one recording request per item in the chosen `formatId`,
//! waited on (202) to the job deadline, then its media URI downloaded. A recording that is not
//! audio is asked for as what Genesys keeps it as: a screen recording as `WEBM` (video), chat
//! and messaging as `ZIP`, email as `EML` (`chatFormatId`, `messageFormatId`, `emailFormatId`,
//! named on every request so no default is relied on).

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::super::context::Ctx;
use super::download::{Got, URL_ROUNDS, download};
use super::stated::Stated;
use crate::error::Result;
use crate::model::{Item, Media, Outcome};
use crate::source::url_path;
use crate::state::Done;

/// Retrieves one item by transcoding it to `format`: a conversation's recording through
/// `GET /api/v2/conversations/{c}/recordings/{r}`, an orphan (`--collect-orphans`) through
/// `GET /api/v2/orphanrecordings/{id}/media`, which answers with the same `Recording`.
pub(super) async fn transcode_item(ctx: &Ctx<'_>, it: &Item, format: &str) -> Result<Done> {
    let format = match Stated::of_listed(ctx, it).media {
        Some(Media::Screen) => "WEBM",
        _ => format,
    };
    let path = if it.is_orphan() {
        format!(
            "/api/v2/orphanrecordings/{}/media?formatId={format}&emailFormatId=EML&chatFormatId=ZIP&messageFormatId=ZIP&download=true",
            url_path(&it.recording_id)
        )
    } else {
        format!(
            "/api/v2/conversations/{}/recordings/{}?formatId={format}&emailFormatId=EML&chatFormatId=ZIP&messageFormatId=ZIP&download=true",
            url_path(&it.conversation_id),
            url_path(&it.recording_id)
        )
    };
    let deadline = tokio::time::Instant::now() + ctx.cfg.job_deadline;
    let mut rounds = 0;
    loop {
        let r = ctx.api.send(Method::GET, &path, None).await?;
        match r.status.as_u16() {
            404 => {
                return Ok(Done::no_file(
                    Outcome::Purged,
                    format!("404 from the API: {}", r.describe()),
                ));
            }
            202 => {
                if tokio::time::Instant::now() > deadline {
                    return Ok(Done::no_file(
                        Outcome::Failed,
                        format!(
                            "still transcoding after {} s",
                            ctx.cfg.job_deadline.as_secs()
                        ),
                    ));
                }
                let est = serde_json::from_slice::<Value>(&r.body)
                    .ok()
                    .and_then(|v| v["estimatedTranscodeTimeMs"].as_u64())
                    .unwrap_or(2000);
                tokio::time::sleep(Duration::from_millis(est.clamp(250, 10_000))).await;
            }
            200 => {
                let v = r.json(&Method::GET, &ctx.api.url(&path))?;
                let state = v["fileState"].as_str().unwrap_or("");
                if state == "ARCHIVED" {
                    return Ok(Done::no_file(
                        Outcome::Archived,
                        "fileState ARCHIVED; restore it before export",
                    ));
                }
                let uri = v["mediaUris"]["S"]["mediaUri"].as_str().or_else(|| {
                    v["mediaUris"]
                        .as_object()
                        .and_then(|m| m.values().find_map(|x| x["mediaUri"].as_str()))
                });
                let Some(uri) = uri else {
                    return Ok(Done::no_file(
                        Outcome::Failed,
                        format!("no media URI (fileState {state})"),
                    ));
                };
                let stated = Stated {
                    size: v["outputSizeInBytes"].as_u64().filter(|n| *n > 0),
                    ..Stated::of_recording(&v, "outputDurationMs")
                };
                match download(ctx, it, uri, None, stated).await? {
                    Got::Done(d) => return Ok(*d),
                    Got::Expired => {
                        rounds += 1;
                        if rounds >= URL_ROUNDS {
                            return Ok(Done::no_file(
                                Outcome::Failed,
                                format!("media URL expired {URL_ROUNDS} times"),
                            ));
                        }
                    }
                }
            }
            _ => {
                return Ok(Done::no_file(
                    Outcome::Failed,
                    format!("recording request failed: {}", r.describe()),
                ));
            }
        }
    }
}
