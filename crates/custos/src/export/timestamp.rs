//! After sealing: RFC 3161 timestamps of the tag manifest (and of its signature) from the
//! TSAs given, first success wins, stored beside them as `<file>.tsr` (crate::tsa). Like the
//! signature, a token is outside what the tag manifest lists: it attests the sealed bag.

use super::context::Ctx;
use crate::durable::{sha256_file, write_durably};
use crate::error::{Error, Result};

/// One TSA asked to timestamp one file.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stamp {
    /// The file timestamped (`tagmanifest-sha256.txt`, or its `.minisig`).
    pub file: String,
    /// The TSA.
    pub tsa: String,
    /// The attested time (GeneralizedTime), when it did.
    pub time: Option<String>,
    /// Why not, when it did not.
    pub error: Option<String>,
}

/// Timestamps the tag manifest and the signature, where the TSAs were given and no valid token
/// for their current bytes is there yet. `Err` when no TSA timestamped one of them (a re-run
/// asks again).
pub(super) async fn stamp_all(ctx: &Ctx<'_>) -> Result<Vec<Stamp>> {
    let mut stamps = Vec::new();
    if ctx.cfg.tsa.is_empty() {
        return Ok(stamps);
    }
    for name in ["tagmanifest-sha256.txt", "tagmanifest-sha256.txt.minisig"] {
        let file = ctx.root.join(name);
        let token = ctx.root.join(format!("{name}.tsr"));
        if !file.exists() {
            continue;
        }
        let (digest, _) = sha256_file(&file)?;
        let current = std::fs::read(&token)
            .ok()
            .and_then(|t| crate::tsa::read(&t).ok())
            .is_some_and(|a| a.sha256 == digest.hex());
        if current {
            continue;
        }
        let mut stamped = false;
        for url in &ctx.cfg.tsa {
            let r = crate::tsa::stamp(&ctx.api.http, url, &digest).await;
            let (time, error) = match r {
                Ok((der, attested)) => {
                    write_durably(&token, &der)?;
                    stamped = true;
                    (Some(attested.gen_time), None)
                }
                Err(e) => (None, Some(e.to_string())),
            };
            tracing::info!(file = name, tsa = %url, ok = stamped, "timestamp");
            stamps.push(Stamp {
                file: name.into(),
                tsa: crate::custody::redact_url(url),
                time,
                error,
            });
            if stamped {
                break;
            }
        }
        if !stamped {
            let why = stamps
                .iter()
                .filter_map(|s| s.error.as_deref())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(Error::Timestamp(format!("{name}: {why}")));
        }
    }
    Ok(stamps)
}
