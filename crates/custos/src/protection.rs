//! Genesys deletion protection: a legal hold at the source.
//!
//! `PUT /api/v2/recordings/deletionprotection?protect=true|false` with
//! `{"conversationIds": [...]}` (at most 100, `ConversationDeletionProtectionQuery`) applies or
//! revokes it; the answer (`ManageDeleteProtectionResult`) lists the conversations it could not
//! update in `failedUpdates`. `POST` of the same body lists which of them are protected. Genesys
//! says protection "overrides existing policy deletion dates" and covers every recording of the
//! conversation.
//!
//! `custos export --protect` protects every conversation of the sealed manifest before any
//! media is requested (crate::export), and writes the protected set to [`PROTECTION_FILE`].
//! [`release`] (`custos release --protect DIR`) revokes exactly that set later, with a
//! hash-chained receipt beside the bag (`receipts/release-<time>.jsonl`), signed when asked.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::custody::CustodyLog;
use crate::digest::Sha256;
use crate::error::{Error, Result};
use crate::http::Api;

/// The endpoint.
pub const ENDPOINT: &str = "/api/v2/recordings/deletionprotection";
/// Conversation ids per request ("The list cannot exceed 100 conversationids").
pub const IDS_PER_REQUEST: usize = 100;
/// The protected set, in the export's payload.
pub const PROTECTION_FILE: &str = "data/protection.json";

/// What one request changed.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// Conversations the request updated.
    pub updated: Vec<String>,
    /// Conversations Genesys does not know (gone since they were listed).
    pub not_found: Vec<String>,
    /// Conversations it would not update, with `errorCode: errorMessage` (the org's limit…).
    pub refused: Vec<(String, String)>,
    /// The answer as received, for the custody log.
    pub answer: Value,
}

/// Applies (`protect`) or revokes protection on at most [`IDS_PER_REQUEST`] conversations.
/// A refusal of the whole request (403: a missing permission) is [`Error::Protection`].
pub async fn set(api: &Api, ids: &[String], protect: bool) -> Result<Applied> {
    assert!(ids.len() <= IDS_PER_REQUEST, "at most 100 ids a request");
    let path = format!("{ENDPOINT}?protect={protect}");
    let r = match api
        .send_ok(Method::PUT, &path, Some(&json!({"conversationIds": ids})))
        .await
    {
        Ok(r) => r,
        Err(Error::Refused {
            status, message, ..
        }) => {
            return Err(Error::Protection(format!(
                "Genesys answered {status} to PUT {ENDPOINT}?protect={protect}: {message}"
            )));
        }
        Err(e) => return Err(e),
    };
    let answer: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let mut out = Applied::default();
    let mut failed = BTreeSet::new();
    for f in answer["failedUpdates"].as_array().into_iter().flatten() {
        let id = f["conversation"]["id"].as_str().unwrap_or("").to_owned();
        let code = f["errorCode"].as_str().unwrap_or("");
        let why = format!("{code}: {}", f["errorMessage"].as_str().unwrap_or(""));
        failed.insert(id.clone());
        if code.contains("not.found") {
            out.not_found.push(id);
        } else {
            out.refused.push((id, why));
        }
    }
    out.updated = ids
        .iter()
        .filter(|i| !failed.contains(*i))
        .cloned()
        .collect();
    out.answer = answer;
    Ok(out)
}

/// Which of `ids` Genesys lists as protected (`POST`, 100 ids a request).
pub async fn listed(api: &Api, ids: &[String]) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for chunk in ids.chunks(IDS_PER_REQUEST) {
        let r = api
            .send_ok(
                Method::POST,
                ENDPOINT,
                Some(&json!({"conversationIds": chunk})),
            )
            .await?;
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        for e in v.as_array().into_iter().flatten() {
            if let Some(id) = e["id"].as_str() {
                out.insert(id.to_owned());
            }
        }
    }
    Ok(out)
}

/// The protected set an export recorded: `conversationId`s of [`PROTECTION_FILE`].
pub fn recorded_set(root: &Path) -> Result<Vec<String>> {
    let p = root.join(PROTECTION_FILE);
    let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Config(format!("{}: not JSON: {e}", p.display())))?;
    let ids: Option<Vec<String>> = v["conversations"].as_array().map(|a| {
        a.iter()
            .filter_map(|c| c["conversationId"].as_str().map(str::to_owned))
            .collect()
    });
    ids.ok_or_else(|| Error::Config(format!("{}: holds no conversations list", p.display())))
}

/// What `custos release --protect` is told.
#[derive(Clone, Debug)]
pub struct ReleaseOptions {
    /// The export whose protection is released (sealed and verifying).
    pub export: PathBuf,
    /// Its signature's public key, to verify it first.
    pub pubkey: Option<PathBuf>,
    /// Sign the receipt with this minisign secret key.
    pub sign_key: Option<PathBuf>,
    /// Who releases (recorded in the receipt).
    pub operator: Option<String>,
}

/// What a release did.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseReport {
    /// The receipt.
    pub receipt: PathBuf,
    /// Its signature, if signed.
    pub signature: Option<PathBuf>,
    /// Conversations the export protected.
    pub conversations: usize,
    /// Those Genesys released.
    pub released: usize,
    /// Those it no longer knows.
    pub not_found: usize,
    /// Those still listed as protected after the release (0 when it worked).
    pub still_protected: usize,
}

/// Revokes the deletion protection the export at `o.export` put on, exactly its recorded
/// set, after verifying the export; every request and answer goes into the receipt.
pub async fn release(o: &ReleaseOptions, api: &Api) -> Result<ReleaseReport> {
    let root = &o.export;
    let v = crate::verify::verify(
        root,
        &crate::verify::VerifyOptions {
            pubkey: o.pubkey.clone(),
            ..Default::default()
        },
    )
    .map_err(|e| Error::Config(e.to_string()))?;
    if v.verdict == crate::verify::Verdict::Findings {
        return Err(Error::Tampered {
            path: root.clone(),
            message: format!(
                "the export does not verify ({} finding(s); run custos verify); its protected set cannot be trusted",
                v.findings.len()
            ),
        });
    }
    let ids = recorded_set(root)?;
    let sign_key = o
        .sign_key
        .as_deref()
        .map(crate::sign::load_secret_key)
        .transpose()?;
    let (tag_sha, _) = crate::durable::sha256_file(&root.join("tagmanifest-sha256.txt"))?;
    let (set_sha, _) = crate::durable::sha256_file(&root.join(PROTECTION_FILE))?;
    let now = OffsetDateTime::now_utc();
    let stamp = crate::query::format_ms(now).replace([':', '-', '.'], "");
    let dir = root.join("receipts");
    crate::durable::make_dirs(&dir)?;
    let receipt = dir.join(format!("release-protection-{stamp}.jsonl"));
    let actor = json!({"osUser": crate::export::os_identity(), "operator": o.operator, "oauthClientId": api.client_id()});
    let log = CustodyLog::open(&receipt, actor, crate::export::tool())?;
    log.append(
        "release-started",
        json!({"what": "deletion protection", "tagManifestSha256": tag_sha.hex(), "protectionSha256": set_sha.hex(), "conversations": ids.len()}),
    )?;
    let (mut released, mut not_found, mut refused) = (0, 0, Vec::new());
    for chunk in ids.chunks(IDS_PER_REQUEST) {
        let a = set(api, chunk, false).await?;
        log.append(
            "protection-released",
            json!({"conversationIds": chunk, "released": a.updated.len(), "answerSha256": Sha256::of(a.answer.to_string().as_bytes()).hex(), "failedUpdates": a.answer["failedUpdates"]}),
        )?;
        released += a.updated.len();
        not_found += a.not_found.len();
        refused.extend(a.refused);
    }
    let still = listed(api, &ids).await?;
    let complete = refused.is_empty() && still.is_empty();
    let head = log.append(
        if complete { "release-complete" } else { "release-incomplete" },
        json!({"released": released, "notFound": not_found, "stillProtected": still.iter().collect::<Vec<_>>()}),
    )?;
    let signature = match &sign_key {
        Some(k) => Some(crate::sign::sign_file(
            &receipt,
            k,
            &format!("custos deletion-protection release receipt, log head {head}"),
            "signed by custos release",
        )?),
        None => None,
    };
    if !complete {
        let why = refused
            .iter()
            .take(3)
            .map(|(id, w)| format!("{id} ({w})"))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::Protection(format!(
            "{} conversations are still protected after the release{}; the receipt {} records every answer",
            still.len().max(refused.len()),
            if why.is_empty() {
                String::new()
            } else {
                format!(": {why}")
            },
            receipt.display()
        )));
    }
    Ok(ReleaseReport {
        receipt,
        signature,
        conversations: ids.len(),
        released,
        not_found,
        still_protected: 0,
    })
}
