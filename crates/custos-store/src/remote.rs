//! `custos verify DIR --remote URL`: what the store holds, compared with the bag's manifests and
//! the upload receipt: every file present with its size and the store's own checksum equal to
//! the sealed SHA-256, the version the receipt names still the current one, retention and legal
//! hold still in force, and nothing else under the prefix. With `download`, every object's bytes
//! are also fetched and hashed here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use custos::verify::{Finding, FindingKind};
use serde_json::Value;

use crate::error::StoreError;
use crate::plan::{Item, Plan, plan};
use crate::store::{Backend, PutError, StoreOptions, Stored};
use crate::target::Target;
use crate::upload::receipt_path;

/// What the remote check found.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteReport {
    /// The destination.
    pub target: String,
    /// Objects compared.
    pub objects: u64,
    /// Objects whose retention or legal hold is in force now.
    pub protected: u64,
    /// The receipt for this target: `verified-chain` (used), `absent`, `broken chain: not used`
    /// or `of another export: not used` (the local checks report why).
    pub receipt: String,
    /// Bytes downloaded and hashed (with `--download`; else 0).
    pub downloaded_bytes: u64,
    /// Problems.
    pub findings: Vec<Finding>,
}

/// What the upload receipt for this target says, if it can be used.
struct Receipt {
    /// `verified-chain`, `absent`, `broken chain: not used`, `of another export: not used`.
    status: &'static str,
    /// `readBack` of every `object-stored` event, by bag path.
    objects: BTreeMap<String, Value>,
    /// The receipt ends `upload-complete`.
    complete: bool,
    path: PathBuf,
}

/// Compares the objects at `target` with the export at `root`. `Err` when the comparison
/// cannot run (no export, no credentials, the store unreachable).
pub async fn verify_remote(
    root: &Path,
    target: &Target,
    opts: &StoreOptions,
    download: bool,
) -> Result<RemoteReport, StoreError> {
    let plan = plan(root)?;
    let store = crate::connect::connect(target, opts).await?;
    let store = store.as_ref();
    let receipt = read_receipt(root, target, &plan)?;
    let mut report = RemoteReport {
        target: target.to_string(),
        objects: plan.items.len() as u64,
        protected: 0,
        receipt: receipt.status.to_owned(),
        downloaded_bytes: 0,
        findings: Vec::new(),
    };
    let now = time::OffsetDateTime::now_utc();
    for item in &plan.items {
        compare_object(store, target, item, &receipt, download, now, &mut report).await?;
    }
    compare_receipt_copies(store, root, target, &receipt, &mut report.findings).await?;
    find_unexpected(store, target, &plan, &mut report.findings).await?;
    Ok(report)
}

/// The receipt: what each object was when written. Its own integrity (chain, tie to this bag,
/// signature) is `custos::verify`'s, which `custos verify --remote` runs first; here it is only
/// used if it holds.
fn read_receipt(root: &Path, target: &Target, plan: &Plan) -> Result<Receipt, StoreError> {
    let path = receipt_path(root, target);
    let mut r = Receipt {
        status: "absent",
        objects: BTreeMap::new(),
        complete: false,
        path,
    };
    if !r.path.exists() {
        return Ok(r);
    }
    if custos::custody::check_chain(&r.path).is_err() {
        r.status = "broken chain: not used";
        return Ok(r);
    }
    let events =
        custos::custody::read_events(&r.path).map_err(|e| StoreError::Bag(e.to_string()))?;
    let started = events.iter().find(|e| e["event"] == "upload-started");
    if started.and_then(|s| s["tagManifestSha256"].as_str())
        != Some(plan.tag_manifest_sha256.as_str())
    {
        r.status = "of another export: not used";
        return Ok(r);
    }
    r.complete = events
        .last()
        .is_some_and(|e| e["event"] == "upload-complete");
    for e in events.iter().filter(|e| e["event"] == "object-stored") {
        if let Some(p) = e["path"].as_str() {
            r.objects.insert(p.to_owned(), e["readBack"].clone());
        }
    }
    r.status = "verified-chain";
    Ok(r)
}

fn unreachable(key: &str) -> impl FnOnce(PutError) -> StoreError + '_ {
    move |e| StoreError::Unreachable(format!("{key}: {e}"))
}

/// One object: present, its size, its bytes (with `download`), the store's SHA-256, what the
/// receipt recorded, and whether retention or a legal hold is in force.
async fn compare_object(
    store: &dyn Backend,
    target: &Target,
    item: &Item,
    receipt: &Receipt,
    download: bool,
    now: time::OffsetDateTime,
    report: &mut RemoteReport,
) -> Result<(), StoreError> {
    let key = target.key(&item.rel);
    let Some(back) = store.head(&key).await.map_err(unreachable(&key))? else {
        report.findings.push(Finding::new(
            FindingKind::RemoteMissing,
            key,
            format!("{} is not in the store", item.rel),
        ));
        return Ok(());
    };
    let mut problems = Vec::new();
    if back.size != Some(item.size) {
        problems.push(format!("size {:?}, the file has {}", back.size, item.size));
    }
    if download {
        // The bytes themselves, hashed here: for stores whose own checksum cannot be relied
        // on (one that does not check what it is sent, or keeps only metadata).
        let (sha, n) = store
            .download_sha256(&key)
            .await
            .map_err(unreachable(&key))?;
        report.downloaded_bytes += n;
        if sha != item.sha256 {
            problems.push(format!(
                "its bytes hash to {sha}, the bag sealed {}",
                item.sha256
            ));
        }
    }
    match (&back.sha256, &back.sha256_metadata) {
        (Some(h), _) if h != &item.sha256 => problems.push(format!(
            "the store's SHA-256 is {h}, the bag sealed {}",
            item.sha256
        )),
        (None, Some(h)) if h != &item.sha256 => problems.push(format!(
            "the SHA-256 in its metadata is {h}, the bag sealed {}",
            item.sha256
        )),
        (None, None) => problems.push("the store holds no SHA-256 for it".into()),
        _ => {}
    }
    problems.extend(receipt_problems(receipt, item, &back));
    let until = back.retain_until.as_deref().and_then(|t| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    });
    if until.is_some_and(|u| u > now) || back.legal_hold == Some(true) {
        report.protected += 1;
    }
    if !problems.is_empty() {
        report.findings.push(Finding::new(
            FindingKind::RemoteMismatch,
            key,
            problems.join("; "),
        ));
    }
    Ok(())
}

/// Where the object differs from what the receipt recorded when it was written.
fn receipt_problems(receipt: &Receipt, item: &Item, back: &Stored) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(r) = receipt.objects.get(&item.rel) else {
        if receipt.status == "verified-chain" {
            problems.push("the receipt does not record this object as stored".into());
        }
        return problems;
    };
    for (field, got) in [
        ("versionId", back.version_id.as_deref()),
        ("md5", back.md5.as_deref()),
        ("crc64nvme", back.crc64nvme.as_deref()),
    ] {
        if let Some(want) = r[field].as_str()
            && Some(want) != got
        {
            problems.push(format!("{field} is {got:?}, the receipt recorded {want}"));
        }
    }
    if r["legalHold"] == Value::Bool(true) && back.legal_hold != Some(true) {
        problems.push("the legal hold the receipt recorded is off".into());
    }
    problems
}

/// The receipt's copy in the store (made when the upload completed) is the local receipt. Also
/// compared when the local one is broken: the stored copy is then the one to restore from.
async fn compare_receipt_copies(
    store: &dyn Backend,
    root: &Path,
    target: &Target,
    receipt: &Receipt,
    findings: &mut Vec<Finding>,
) -> Result<(), StoreError> {
    let signature = PathBuf::from(format!("{}.minisig", receipt.path.display()));
    for local in [receipt.path.clone(), signature]
        .into_iter()
        .filter(|p| p.exists())
    {
        let rel = local
            .strip_prefix(root)
            .map(|r| r.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        let key = target.key(&rel);
        let (sha, size) =
            custos::durable::sha256_file(&local).map_err(|e| StoreError::Bag(e.to_string()))?;
        let sha = sha.hex();
        match store.head(&key).await.map_err(unreachable(&key))? {
            None if !receipt.complete => {}
            None => findings.push(Finding::new(
                FindingKind::RemoteReceiptMissing,
                key,
                format!("the completed upload's {rel} is not in the store"),
            )),
            Some(b)
                if b.size != Some(size)
                    || b.sha256.as_ref().or(b.sha256_metadata.as_ref()) != Some(&sha) =>
            {
                findings.push(Finding::new(
                    FindingKind::RemoteReceiptMismatch,
                    key,
                    format!("the stored {rel} differs from the local one (SHA-256 {sha})"),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Objects under the export's prefix that the bag does not list (the receipt's copies aside).
async fn find_unexpected(
    store: &dyn Backend,
    target: &Target,
    plan: &Plan,
    findings: &mut Vec<Finding>,
) -> Result<(), StoreError> {
    let expected: BTreeSet<String> = plan.items.iter().map(|i| target.key(&i.rel)).collect();
    let receipt_key = target.key(&format!("receipts/{}", target.receipt_name()));
    let receipt_keys = [receipt_key.clone(), format!("{receipt_key}.minisig")];
    let prefix = target.prefix();
    for key in store.list(&prefix).await.map_err(unreachable(&prefix))? {
        if !expected.contains(&key) && !receipt_keys.contains(&key) {
            findings.push(Finding::new(
                FindingKind::RemoteUnexpected,
                key,
                "an object under the export's prefix that the bag does not list",
            ));
        }
    }
    Ok(())
}
