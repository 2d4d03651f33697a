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
use std::path::PathBuf;

use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::custody::CustodyLog;
use crate::digest::Sha256;
use crate::error::{Error, Result};
use crate::http::Api;
use crate::verify::{Package, Require, files};

/// The endpoint.
pub const ENDPOINT: &str = "/api/v2/recordings/deletionprotection";
/// Conversation ids per request ("The list cannot exceed 100 conversationids").
pub const IDS_PER_REQUEST: usize = 100;
/// The protected set, in the export's payload.
pub const PROTECTION_FILE: &str = files::PROTECTION;

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

/// What an export proves it protected, and may therefore release: the conversations that
/// [`PROTECTION_FILE`] lists **and** the sealed manifest holds **and** the custody log records
/// as protected by this export (`deletion-protection` events: the ids asked for, less those
/// Genesys refused), with the file itself the one the log confirmed (its SHA-256 in
/// `deletion-protection-confirmed`). Anything else the file lists is refused, with why.
#[derive(Clone, Debug, Default)]
pub struct Releasable {
    /// Conversations to release, sorted.
    pub ids: Vec<String>,
    /// Listed in the file but not proven: (id, why).
    pub refused: Vec<(String, String)>,
    /// SHA-256 of [`PROTECTION_FILE`].
    pub file_sha256: String,
}

/// Reads what `pkg` proves it protected (see [`Releasable`]).
pub fn releasable(pkg: &Package) -> Result<Releasable> {
    let bytes = pkg.read(files::PROTECTION, 256 << 20)?;
    let file_sha256 = Sha256::of(&bytes).hex();
    let doc: Value = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Config(format!(
            "{}: {}: not JSON: {e}",
            pkg.root().display(),
            files::PROTECTION
        ))
    })?;
    let listed: Vec<String> = doc["conversations"]
        .as_array()
        .ok_or_else(|| {
            Error::Config(format!(
                "{}: {} holds no conversations list",
                pkg.root().display(),
                files::PROTECTION
            ))
        })?
        .iter()
        .map(|c| c["conversationId"].as_str().unwrap_or("").to_owned())
        .collect();
    // What the query matched, as the sealed records show it: the manifest's conversations,
    // those whose recordings `--media` left out, and every matched conversation's analytics
    // record (those without any recording included).
    let mut manifest: BTreeSet<String> = pkg
        .read_csv(files::MANIFEST_CSV)?
        .into_iter()
        .filter_map(|mut r| r.remove("Conversation_ID"))
        .collect();
    let excluded = crate::export::MEDIA_EXCLUDED_FILE;
    if pkg.holds(excluded) {
        manifest.extend(
            pkg.read_csv(excluded)?
                .into_iter()
                .filter_map(|mut r| r.remove("Conversation_ID")),
        );
    }
    let matched = |id: &str| {
        manifest.contains(id) || pkg.holds(&format!("data/metadata/conversations/{id}.json"))
    };
    let mut logged = BTreeSet::new();
    let mut confirmed = None;
    pkg.custody_events(|e| match e["event"].as_str() {
        Some("deletion-protection") if e["protect"] == true => {
            let failed: BTreeSet<&str> = e["failedUpdates"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["conversation"]["id"].as_str())
                .collect();
            for id in e["conversationIds"].as_array().into_iter().flatten() {
                if let Some(id) = id.as_str().filter(|id| !failed.contains(id)) {
                    logged.insert(id.to_owned());
                }
            }
        }
        Some("deletion-protection-confirmed") => {
            confirmed = e["sha256"].as_str().map(str::to_owned);
        }
        _ => {}
    })?;
    if confirmed.as_deref() != Some(file_sha256.as_str()) {
        return Err(Error::Tampered {
            path: pkg.root().join(files::PROTECTION),
            message: format!(
                "SHA-256 {file_sha256} is not the protected set the custody log confirmed ({}); nothing is released",
                confirmed
                    .as_deref()
                    .unwrap_or("no deletion-protection-confirmed event")
            ),
        });
    }
    let mut out = Releasable {
        file_sha256,
        ..Default::default()
    };
    let mut seen = BTreeSet::new();
    for id in listed {
        let why = if !seen.insert(id.clone()) {
            "listed twice"
        } else if !crate::model::safe_id(&id) {
            "not a conversation id"
        } else if !matched(&id) {
            "not a conversation the export's sealed records show the query matched"
        } else if !logged.contains(&id) {
            "the custody log does not record this export protecting it"
        } else {
            out.ids.push(id);
            continue;
        };
        out.refused.push((id, why.to_owned()));
    }
    out.ids.sort();
    Ok(out)
}

/// What `custos release --protect` is told.
#[derive(Clone, Debug)]
pub struct ReleaseOptions {
    /// The export whose protection is released (sealed, verifying, signed by `pubkey`).
    pub export: PathBuf,
    /// The public key the export must be signed with: releasing a hold acts at the source, so
    /// only a package that proves who sealed it is acted on.
    pub pubkey: PathBuf,
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
    /// Who sealed the export, as proven.
    pub origin: crate::verify::Origin,
    /// Conversations the export protected.
    pub conversations: usize,
    /// Those Genesys released.
    pub released: usize,
    /// Those it no longer knows.
    pub not_found: usize,
    /// Those still listed as protected after the release (0 when it worked).
    pub still_protected: usize,
}

/// Opens the export for a release: verified and signed by `o.pubkey`, and made against the
/// API `api` talks to. Nothing is sent anywhere before this returns.
pub fn open_for_release(o: &ReleaseOptions, api_base: &str) -> Result<Package> {
    let pkg = Package::open(
        &o.export,
        &crate::verify::VerifyOptions {
            pubkey: Some(o.pubkey.clone()),
            ..Default::default()
        },
        Require::Signed,
    )?;
    let theirs = pkg
        .label("Genesys-API-Base")
        .unwrap_or("")
        .trim_end_matches('/');
    let ours = api_base.trim_end_matches('/');
    if theirs != ours {
        return Err(Error::Config(format!(
            "{}: the export was made against {} and this release would go to {ours}; a hold is released only through the API of the organization that placed it. Name that API yourself (--api-base or --region) if it is the one you mean; custos never takes a host from the package",
            o.export.display(),
            if theirs.is_empty() {
                "(no Genesys-API-Base)"
            } else {
                theirs
            },
        )));
    }
    Ok(pkg)
}

/// The organization the release's token belongs to must be the one the export names
/// (`Genesys-Organization-Id`): a hold is lifted only in the organization that placed it. An
/// export made before custos recorded the organization is compared by its API alone.
async fn check_organization(pkg: &Package, api: &Api) -> Result<()> {
    let Some(theirs) = pkg.label("Genesys-Organization-Id") else {
        return Ok(());
    };
    let ours = crate::identity::whoami(api).await?;
    match ours {
        Some(s) if s.organization_id == theirs => Ok(()),
        Some(s) => Err(Error::Config(format!(
            "{}: the export was made in Genesys organization {} ({}); these credentials belong to organization {} ({}). A hold is released only in the organization that placed it; nothing was released",
            pkg.root().display(),
            crate::shown::text(theirs),
            crate::shown::text(pkg.label("Genesys-Organization-Name").unwrap_or("?")),
            crate::shown::text(&s.organization_id),
            crate::shown::text(&s.organization_name),
        ))),
        None => Err(Error::Config(format!(
            "{}: the export names organization {}, and the API does not say which organization these credentials belong to (GET {}); nothing was released",
            pkg.root().display(),
            crate::shown::text(theirs),
            crate::identity::TOKENS_ME
        ))),
    }
}

/// Revokes the deletion protection the export at `o.export` put on: exactly what it proves it
/// protected ([`releasable`]), after [`open_for_release`]; every request and answer goes into
/// the receipt. Listed ids that are not proven are refused, named, and never sent.
pub async fn release(o: &ReleaseOptions, api: &Api) -> Result<ReleaseReport> {
    let pkg = open_for_release(o, api.base())?;
    check_organization(&pkg, api).await?;
    let root = pkg.root();
    let plan = releasable(&pkg)?;
    let ids = &plan.ids;
    let sign_key = o
        .sign_key
        .as_deref()
        .map(crate::sign::load_secret_key)
        .transpose()?;
    let tag_sha = pkg.tag_manifest_sha256()?;
    let now = OffsetDateTime::now_utc();
    let stamp = crate::query::format_ms(now).replace([':', '-', '.'], "");
    let dir = root.join("receipts");
    crate::durable::make_dirs(&dir)?;
    let receipt = dir.join(format!("release-protection-{stamp}.jsonl"));
    let actor = crate::custody::Actor::here(o.operator.as_deref(), Some(api.client_id()));
    let log = CustodyLog::open(&receipt, &actor)?;
    log.append(
        "release-started",
        json!({"what": "deletion protection", "tagManifestSha256": tag_sha, "origin": pkg.origin(),
               "apiBase": api.base(), "organizationId": pkg.label("Genesys-Organization-Id"), "protectionSha256": plan.file_sha256, "conversations": ids.len()}),
    )?;
    if !plan.refused.is_empty() {
        log.append(
            "release-refused",
            json!({"why": "listed in the protection file but not proven protected by this export; not sent",
                   "conversations": plan.refused.iter().map(|(id, why)| json!({"conversationId": id, "why": why})).collect::<Vec<_>>()}),
        )?;
    }
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
    let still = listed(api, ids).await?;
    let complete = refused.is_empty() && still.is_empty() && plan.refused.is_empty();
    let head = log.append(
        if complete { "release-complete" } else { "release-incomplete" },
        json!({"released": released, "notFound": not_found, "stillProtected": still.iter().collect::<Vec<_>>(),
               "notProven": plan.refused.len()}),
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
    if !plan.refused.is_empty() {
        let named = plan
            .refused
            .iter()
            .take(5)
            .map(|(id, why)| format!("{} ({why})", crate::shown::text(id)))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::Protection(format!(
            "{} listed conversation(s) were not released, because the export does not prove it protected them: {named}{}; the {released} it proves were released. The receipt {} records both",
            plan.refused.len(),
            if plan.refused.len() > 5 { "; …" } else { "" },
            receipt.display()
        )));
    }
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
        origin: pkg.origin().clone(),
        conversations: ids.len(),
        released,
        not_found,
        still_protected: 0,
    })
}
