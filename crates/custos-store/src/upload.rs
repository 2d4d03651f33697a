//! `custos upload`: a sealed export into write-once storage, with a receipt.
//!
//! The receipt, `receipts/upload-<store>-<place>-<hash>.jsonl` beside the bag, is a hash-chained
//! log in the custody log's format (`seq`, `time`, `event`, `actor`, `tool`, `prev`). Its first
//! line (`upload-started`) names the export's custody log head and the SHA-256 of the tag
//! manifest, which pins every file of the bag: the receipt is chained to the export without
//! changing a byte the bag seals (`receipts/` is not in the tag manifest, as BagIt allows). Then
//! one line per object: `object-stored` (what the store said on write and on read-back),
//! `object-refused`, `object-conflict` or `object-unverified`; and `upload-complete` when every
//! object is stored and verified. With a key, `<receipt>.minisig` signs it.
//!
//! A re-run continues the same receipt: objects already receipted are not sent again; one stored
//! but not yet receipted (a crash between the two) is found by its conditional create being
//! refused, read back, and receipted as `alreadyPresent` if it holds the same bytes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use serde_json::{Value, json};

use custos::custody::CustodyLog;

use crate::plan::{Item, Plan, plan};
use crate::store::{Backend, Check, PutError, StoreOptions, Stored, check_stored};
use crate::target::{Encryption, Protection, Target};

/// Everything `custos upload` is told.
#[derive(Clone, Debug)]
pub struct UploadOptions {
    /// How to protect every object.
    pub protection: Protection,
    /// Client settings.
    pub store: StoreOptions,
    /// Objects in flight at once.
    pub concurrency: usize,
    /// Sign the receipt with this minisign secret key.
    pub sign_key: Option<PathBuf>,
    /// Who is uploading (recorded in the receipt).
    pub operator: Option<String>,
    /// RFC 3161 Time Stamping Authorities to timestamp the completed receipt (and its
    /// signature), tried in order.
    pub tsa: Vec<String>,
}

/// What an upload did.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadReport {
    /// The destination.
    pub target: String,
    /// The receipt file.
    pub receipt: PathBuf,
    /// The receipt's signature, if signed.
    pub signature: Option<PathBuf>,
    /// Objects in the export.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Stored and verified in this run.
    pub stored: u64,
    /// Found already stored (same bytes) where this run would have written.
    pub already_present: u64,
    /// Receipted by an earlier run, so not sent.
    pub skipped: u64,
    /// Not stored, or stored but not as asked: path and why.
    #[serde(serialize_with = "path_reason")]
    pub failed: Vec<(String, String)>,
    /// The pre-flight checks.
    pub preflight: Vec<Check>,
    /// Every object is stored and verified.
    pub complete: bool,
    /// Keys of the receipt (and its signature and timestamps) stored beside the export once
    /// it is complete.
    pub receipt_copies: Vec<String>,
    /// RFC 3161 timestamps asked for the completed receipt (each TSA tried, and what it said).
    pub timestamps: Vec<custos::tsa::Stamp>,
}

/// `[(path, reason)]` as `[{"path", "reason"}]` in the JSON report.
fn path_reason<S: serde::Serializer>(v: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for (path, reason) in v {
        seq.serialize_element(&json!({"path": path, "reason": reason}))?;
    }
    seq.end()
}

/// Why an upload did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Bad settings or a bag that cannot be uploaded; nothing was sent.
    #[error("{0}")]
    Config(String),
    /// `--require-worm` and the destination is not write-once; nothing was sent.
    #[error("the destination is not write-once storage: {0}")]
    NotWorm(String),
    /// Stopped part-way (network, credentials, the receipt's disk); re-run to resume.
    #[error("{0}")]
    Stopped(String),
}

impl From<custos::Error> for UploadError {
    fn from(e: custos::Error) -> Self {
        UploadError::Stopped(e.to_string())
    }
}

fn protection_json(p: &Protection) -> Value {
    let (sse, kms) = match &p.encryption {
        Encryption::BucketDefault => ("bucket-default", None),
        Encryption::Aes256 => ("AES256", None),
        Encryption::Kms(k) => ("aws:kms", k.clone()),
    };
    json!({
        "lockMode": p.lock_mode,
        "retainUntil": p.retain_until.map(crate::store::rfc3339),
        "legalHold": p.legal_hold,
        "encryption": sse,
        "kmsKeyId": kms,
        "encryptionScope": p.encryption_scope,
        "requireWorm": p.require_worm,
    })
}

enum Outcome {
    Stored {
        stored: Stored,
        back: Stored,
    },
    Present {
        back: Stored,
    },
    Unverified {
        stored: Option<Stored>,
        back: Option<Stored>,
        problems: Vec<String>,
    },
    Conflict {
        back: Stored,
    },
    Refused {
        status: u16,
        code: String,
        message: String,
    },
}

/// Problems with what `back` (a read-back) holds for `item`, beyond [`check_stored`]: the
/// store-specific checksums.
fn store_checks(item: &Item, p: &Protection, back: &Stored, sent: Option<&Stored>) -> Vec<String> {
    let mut problems = check_stored(
        item,
        p,
        back,
        time::OffsetDateTime::now_utc(),
        sent.is_none(),
    );
    // A multipart object's CRC-64 (S3) / a blob's MD5 (Azure) must be what we sent.
    if let Some(s) = sent {
        if s.crc64nvme.is_some() && back.crc64nvme != s.crc64nvme {
            problems.push(format!(
                "the store's CRC-64/NVME is {:?}, we sent {:?}",
                back.crc64nvme, s.crc64nvme
            ));
        }
        if s.md5.is_some() && back.md5 != s.md5 {
            problems.push(format!(
                "the store's Content-MD5 is {:?}, we sent {:?}",
                back.md5, s.md5
            ));
        }
        if s.version_id.is_some() && back.version_id != s.version_id {
            problems.push(format!(
                "the read-back is version {:?}, the write made {:?}",
                back.version_id, s.version_id
            ));
        }
    }
    problems
}

async fn one(
    store: &dyn Backend,
    item: &Item,
    key: &str,
    p: &Protection,
) -> Result<Outcome, String> {
    tracing::debug!(key, bytes = item.size, "storing");
    let fatal = |e: PutError| match e {
        PutError::Fatal(m) => m,
        other => other.to_string(),
    };
    match store.put(item, key, p).await {
        Ok(stored) => {
            let back = store.head(key).await.map_err(fatal)?;
            let Some(back) = back else {
                return Ok(Outcome::Unverified {
                    stored: Some(stored),
                    back: None,
                    problems: vec!["the object is not there when read back".into()],
                });
            };
            let problems = store_checks(item, p, &back, Some(&stored));
            Ok(if problems.is_empty() {
                Outcome::Stored { stored, back }
            } else {
                Outcome::Unverified {
                    stored: Some(stored),
                    back: Some(back),
                    problems,
                }
            })
        }
        Err(PutError::Exists) => {
            let back = store.head(key).await.map_err(fatal)?;
            let Some(back) = back else {
                return Err(format!(
                    "{key}: the store refused to create it as it exists, yet it cannot be read back"
                ));
            };
            let same = back.size == Some(item.size)
                && (back.sha256.as_deref() == Some(&item.sha256)
                    || back.sha256.is_none()
                        && back.sha256_metadata.as_deref() == Some(&item.sha256));
            if !same {
                return Ok(Outcome::Conflict { back });
            }
            let problems = store_checks(item, p, &back, None);
            Ok(if problems.is_empty() {
                Outcome::Present { back }
            } else {
                Outcome::Unverified {
                    stored: None,
                    back: Some(back),
                    problems,
                }
            })
        }
        Err(PutError::Refused {
            status,
            code,
            message,
        }) => Ok(Outcome::Refused {
            status,
            code,
            message,
        }),
        Err(PutError::Fatal(m)) => Err(m),
    }
}

/// Why an object was not stored, in words: refused by the store, or not sent (the file is not
/// what the bag sealed).
fn refused(code: &str, message: &str) -> String {
    match code {
        crate::store::LOCAL_DIGEST_MISMATCH => format!("not sent ({code}): {message}"),
        _ => format!("refused by the store: {code}: {message}"),
    }
}

/// An exclusive lock on `<receipt>.lock`, held until dropped.
fn lock(receipt: &Path) -> Result<std::fs::File, UploadError> {
    let p = PathBuf::from(format!("{}.lock", receipt.display()));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| UploadError::Stopped(format!("{}: {e}", p.display())))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(UploadError::Config(format!(
            "another custos upload to this destination is running ({} is locked)",
            p.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(UploadError::Stopped(format!("{}: {e}", p.display())))
        }
    }
}

/// Path of the receipt for `target` in the export at `root`.
pub fn receipt_path(root: &Path, target: &Target) -> PathBuf {
    root.join("receipts").join(target.receipt_name())
}

/// The settings checked, the signing key loaded, the bag read, the store reached and looked
/// at: everything that can refuse an upload before anything is written.
async fn prepare(
    root: &Path,
    target: &Target,
    opts: &UploadOptions,
) -> Result<
    (
        Option<custos::sign::SecretKey>,
        Plan,
        Box<dyn Backend>,
        Vec<Check>,
    ),
    UploadError,
> {
    let config = |e: &dyn std::fmt::Display| UploadError::Config(e.to_string());
    opts.protection
        .validate(time::OffsetDateTime::now_utc())
        .map_err(|e| config(&e))?;
    let sk = match &opts.sign_key {
        Some(k) => Some(custos::sign::load_secret_key(k).map_err(|e| config(&e))?),
        None => None,
    };
    let plan: Plan = plan(root).map_err(|e| config(&e))?;
    let store = crate::connect::connect(target, &opts.store)
        .await
        .map_err(|e| config(&e))?;
    let preflight = store
        .preflight()
        .await
        .map_err(|e| UploadError::Config(format!("cannot use the destination: {e}")))?;
    let missing: Vec<String> = preflight
        .iter()
        .filter(|c| c.required && c.ok != Some(true))
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    if opts.protection.require_worm && !missing.is_empty() {
        return Err(UploadError::NotWorm(missing.join("; ")));
    }
    Ok((sk, plan, store, preflight))
}

/// The receipt, opened (and locked) for this upload: started now, or resumed when it was
/// started for this very tag manifest (refused when it was started for another).
struct Receipt {
    path: PathBuf,
    log: CustodyLog,
    /// Bag paths already receipted as stored.
    done: BTreeSet<String>,
    /// Already `upload-complete` for every object.
    complete: bool,
    _lock: std::fs::File,
}

fn open_receipt(
    root: &Path,
    target: &Target,
    plan: &Plan,
    opts: &UploadOptions,
) -> Result<Receipt, UploadError> {
    let path = receipt_path(root, target);
    let dir = path.parent().expect("receipts dir");
    std::fs::create_dir_all(dir)
        .map_err(|e| UploadError::Stopped(format!("{}: {e}", dir.display())))?;
    let existed = path.exists();
    // One upload per receipt at a time: a second run would interleave its lines into the chain.
    let lock = lock(&path)?;
    let log = CustodyLog::open(
        &path,
        &custos::custody::Actor::here(opts.operator.as_deref(), None),
    )?;
    let events = custos::custody::read_events(&path)?;
    let started = events.iter().find(|e| e["event"] == "upload-started");
    match started {
        Some(s) if s["tagManifestSha256"] != json!(plan.tag_manifest_sha256) => {
            return Err(UploadError::Config(format!(
                "{}: this receipt began for a tag manifest with SHA-256 {}, the export's is now {}: the export changed since its upload began; refusing to mix them",
                path.display(),
                s["tagManifestSha256"],
                plan.tag_manifest_sha256
            )));
        }
        Some(_) => {}
        None => {
            log.append(
                "upload-started",
                json!({
                    "target": target.to_string(),
                    "endpoint": opts.store.endpoint,
                    "exportId": plan.export_id,
                    "matter": plan.matter,
                    "custodyLogHead": plan.custody_log_head,
                    "tagManifestSha256": plan.tag_manifest_sha256,
                    "payloadOxum": plan.payload_oxum,
                    "objects": plan.items.len(),
                    "bytes": plan.bytes(),
                    "protection": protection_json(&opts.protection),
                }),
            )?;
        }
    }
    let done: BTreeSet<String> = events
        .iter()
        .filter(|e| e["event"] == "object-stored")
        .filter_map(|e| e["path"].as_str().map(str::to_owned))
        .collect();
    let complete = events
        .last()
        .is_some_and(|e| e["event"] == "upload-complete")
        && plan.items.iter().all(|i| done.contains(&i.rel));
    if existed && started.is_some() && !complete {
        log.append(
            "upload-resumed",
            json!({"alreadyStored": done.len(), "protection": protection_json(&opts.protection)}),
        )?;
    }
    Ok(Receipt {
        path,
        log,
        done,
        complete,
        _lock: lock,
    })
}

/// Uploads the sealed export at `root` to `target`. `progress(done_bytes, total_bytes)` is
/// called as objects finish.
pub async fn upload(
    root: &Path,
    target: &Target,
    opts: &UploadOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<UploadReport, UploadError> {
    let (sk, plan, store, preflight) = prepare(root, target, opts).await?;
    let receipt = open_receipt(root, target, &plan, opts)?;
    let mut report = UploadReport {
        target: target.to_string(),
        receipt: receipt.path.clone(),
        signature: None,
        objects: plan.items.len() as u64,
        bytes: plan.bytes(),
        stored: 0,
        already_present: 0,
        skipped: 0,
        failed: Vec::new(),
        preflight: preflight.clone(),
        complete: false,
        receipt_copies: Vec::new(),
        timestamps: Vec::new(),
    };
    if receipt.complete {
        report.skipped = report.objects;
        report.complete = true;
        let sig = PathBuf::from(format!("{}.minisig", receipt.path.display()));
        report.signature = sig.exists().then_some(sig);
        stamp_receipt(root, opts, &mut report).await?;
        copy_receipt(store.as_ref(), target, root, &opts.protection, &mut report).await;
        return Ok(report);
    }
    receipt
        .log
        .append("preflight", json!({"checks": preflight}))?;
    store_all(
        store.as_ref(),
        target,
        &plan,
        &receipt,
        opts,
        progress,
        &mut report,
    )
    .await?;
    report.complete = report.failed.is_empty();
    let log = &receipt.log;
    if report.complete {
        log.append(
            "upload-complete",
            json!({"objects": report.objects, "bytes": report.bytes, "tagManifestSha256": plan.tag_manifest_sha256}),
        )?;
    } else {
        log.append(
            "upload-incomplete",
            json!({"failed": report.failed.len(), "note": "fix the cause and re-run; stored objects are not sent again"}),
        )?;
    }
    if let Some(sk) = &sk {
        let comment = format!(
            "custos upload receipt target:{} export:{} tagmanifest-sha256:{} receipt-head:{} complete:{}",
            target,
            plan.export_id,
            plan.tag_manifest_sha256,
            log.head()?,
            report.complete
        );
        report.signature = Some(custos::sign::sign_file(
            &receipt.path,
            sk,
            &comment,
            "custos signature of an upload receipt",
        )?);
    }
    if report.complete {
        stamp_receipt(root, opts, &mut report).await?;
        copy_receipt(store.as_ref(), target, root, &opts.protection, &mut report).await;
    }
    Ok(report)
}

/// The completed receipt and its signature timestamped (`<file>.tsr`), where TSAs were given;
/// none granting one stops the upload (exit 3) with the receipt complete: a re-run asks again.
async fn stamp_receipt(
    root: &Path,
    opts: &UploadOptions,
    report: &mut UploadReport,
) -> Result<(), UploadError> {
    if opts.tsa.is_empty() {
        return Ok(());
    }
    let http = reqwest::Client::new();
    let files = [Some(report.receipt.clone()), report.signature.clone()];
    for file in files.into_iter().flatten() {
        let name = file
            .strip_prefix(root)
            .unwrap_or(&file)
            .to_string_lossy()
            .into_owned();
        let (tried, granted) =
            custos::tsa::stamp_file(&http, &opts.tsa, None, &file, &name).await?;
        report.timestamps.extend(tried);
        if !granted {
            return Err(UploadError::Stopped(format!(
                "the receipt is complete but not timestamped: {name}: {}",
                custos::tsa::refusals(&report.timestamps)
            )));
        }
    }
    Ok(())
}

/// Every object not yet receipted: payload first, tag files after, in plan order; the tag
/// manifest and its signature only once everything they pin is stored.
async fn store_all(
    store: &dyn Backend,
    target: &Target,
    plan: &Plan,
    receipt: &Receipt,
    opts: &UploadOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
    report: &mut UploadReport,
) -> Result<(), UploadError> {
    let done = &receipt.done;
    let todo: Vec<&Item> = plan
        .items
        .iter()
        .filter(|i| !done.contains(&i.rel))
        .collect();
    report.skipped = report.objects - todo.len() as u64;
    let total = plan.bytes();
    let mut done_bytes: u64 = plan
        .items
        .iter()
        .filter(|i| done.contains(&i.rel))
        .map(|i| i.size)
        .sum();
    progress(done_bytes, total);
    let (body, seal): (Vec<&Item>, Vec<&Item>) = todo
        .into_iter()
        .partition(|i| !i.rel.starts_with("tagmanifest-sha256.txt"));
    for batch in [body, seal] {
        let p = &opts.protection;
        let mut results = futures_util::stream::iter(batch.into_iter().map(|item| async move {
            let key = target.key(&item.rel);
            let r = one(store, item, &key, p).await;
            (item, key, r)
        }))
        .buffer_unordered(opts.concurrency.max(1));
        while let Some((item, key, r)) = results.next().await {
            receipt_one(receipt, item, &key, r, report)?;
            done_bytes += item.size;
            progress(done_bytes, total);
        }
        if !report.failed.is_empty() {
            // Never store the seal of a copy that is not whole.
            break;
        }
    }
    Ok(())
}

/// One object's outcome, in the receipt and the report; `Err` stops the upload.
fn receipt_one(
    receipt: &Receipt,
    item: &Item,
    key: &str,
    r: Result<Outcome, String>,
    report: &mut UploadReport,
) -> Result<(), UploadError> {
    let log = &receipt.log;
    let base = json!({"path": item.rel, "key": key, "sha256": item.sha256, "bytes": item.size, "hashSource": item.source});
    let merge = |extra: Value| {
        let mut v = base.clone();
        if let (Value::Object(m), Value::Object(x)) = (&mut v, extra) {
            m.extend(x);
        }
        v
    };
    match r {
        Ok(Outcome::Stored { stored, back }) => {
            log.append(
                "object-stored",
                merge(json!({"write": stored, "readBack": back})),
            )?;
            report.stored += 1;
        }
        Ok(Outcome::Present { back }) => {
            log.append(
                "object-stored",
                merge(json!({"alreadyPresent": true, "readBack": back, "note": "an earlier run stored it before receipting it; its bytes match"})),
            )?;
            report.already_present += 1;
        }
        Ok(Outcome::Unverified {
            stored,
            back,
            problems,
        }) => {
            log.append(
                "object-unverified",
                merge(json!({"write": stored, "readBack": back, "problems": problems})),
            )?;
            report.failed.push((
                item.rel.clone(),
                format!("stored, but not as asked: {}", problems.join("; ")),
            ));
        }
        Ok(Outcome::Conflict { back }) => {
            let why = format!(
                "another object is already stored at {key} (SHA-256 {}); nothing was overwritten",
                back.sha256
                    .as_deref()
                    .or(back.sha256_metadata.as_deref())
                    .unwrap_or("unknown")
            );
            log.append(
                "object-conflict",
                merge(json!({"readBack": back, "reason": why})),
            )?;
            report.failed.push((item.rel.clone(), why));
        }
        Ok(Outcome::Refused {
            status,
            code,
            message,
        }) => {
            log.append(
                "object-refused",
                merge(json!({"status": status, "code": code, "message": message})),
            )?;
            report
                .failed
                .push((item.rel.clone(), refused(&code, &message)));
        }
        Err(m) => {
            log.append("upload-stopped", json!({"reason": m, "at": item.rel}))?;
            return Err(UploadError::Stopped(format!(
                "{}: {m}; re-run the same command to resume (receipt {})",
                item.rel,
                receipt.path.display()
            )));
        }
    }
    Ok(())
}

/// Stores the receipt (final once the upload is complete: a completed receipt is never appended
/// to) and its signature beside the export, under the same protection, so that whoever holds
/// the store holds the record of how it was filled. Failures are listed in `report.failed`.
async fn copy_receipt(
    store: &dyn Backend,
    target: &Target,
    root: &Path,
    p: &Protection,
    report: &mut UploadReport,
) {
    let mut files = vec![report.receipt.clone()];
    files.extend(report.signature.clone());
    let tokens: Vec<PathBuf> = files.iter().map(|f| custos::tsa::token_path(f)).collect();
    files.extend(tokens.into_iter().filter(|t| t.exists()));
    for path in files {
        let rel = match path.strip_prefix(root) {
            Ok(r) => r.to_string_lossy().replace('\\', "/"),
            Err(_) => continue,
        };
        let (sha256, size) = match custos::durable::sha256_file(&path) {
            Ok(x) => x,
            Err(e) => {
                report.failed.push((rel, e.to_string()));
                continue;
            }
        };
        let item = Item {
            rel: rel.clone(),
            path,
            size,
            sha256: sha256.hex(),
            source: "computed",
        };
        let key = target.key(&rel);
        match one(store, &item, &key, p).await {
            Ok(Outcome::Stored { .. } | Outcome::Present { .. }) => report.receipt_copies.push(key),
            Ok(Outcome::Conflict { .. }) => report
                .failed
                .push((rel, format!("another receipt is already stored at {key}"))),
            Ok(Outcome::Unverified { problems, .. }) => report.failed.push((
                rel,
                format!("stored, but not as asked: {}", problems.join("; ")),
            )),
            Ok(Outcome::Refused { code, message, .. }) => {
                report.failed.push((rel, refused(&code, &message)))
            }
            Err(m) => report.failed.push((rel, m)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_report_names_each_failure_by_path_and_reason() {
        let r = UploadReport {
            target: "s3://b-1/m".into(),
            receipt: "r.jsonl".into(),
            signature: None,
            objects: 2,
            bytes: 3,
            stored: 1,
            already_present: 0,
            skipped: 0,
            failed: vec![(
                "data/a.wav".into(),
                "refused by the store: BadDigest: x".into(),
            )],
            preflight: Vec::new(),
            complete: false,
            receipt_copies: Vec::new(),
            timestamps: Vec::new(),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["failed"],
            json!([{"path": "data/a.wav", "reason": "refused by the store: BadDigest: x"}])
        );
        assert_eq!(v["alreadyPresent"], 0);
    }
}
