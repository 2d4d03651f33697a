//! `custos verify`: checks an export as a distrustful third party would, and stricter than the
//! standard tools: the bag (every checksum, both manifests, Payload-Oxum), the sidecars, the
//! custody record against the manifest and the files (every item in exactly one outcome, no file
//! without a row, no row without its file), the custody log's chain and head, the seals in
//! bag-info, the signature, and for every exported file a three-way comparison: the hash at
//! acquisition (custody log), the hash in the manifests, the hash recomputed now. Upload
//! receipts (`receipts/*.jsonl`, custos-store): chained, naming this bag's tag manifest, signed.
//!
//! Problems are **findings** (data: what, where, what to do), never early returns; only an
//! export that cannot be read at all is an error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::custody::{check_chain, read_events};
use crate::package::{payload_files, sha256_file};

/// One problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// A stable name for the kind of problem (e.g. `payload-hash-mismatch`).
    pub kind: &'static str,
    /// The file or item it concerns.
    pub r#where: String,
    /// What is wrong.
    pub what: String,
    /// What to do about it.
    pub action: &'static str,
}

/// How thoroughly to check.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// The minisign public key to check the signature with.
    pub pubkey: Option<PathBuf>,
    /// Hash only this fraction of the recordings (0 < f ≤ 1), chosen deterministically; the
    /// rest are checked for presence and size. Every other file is always hashed.
    pub sample: f64,
    /// Hashing threads.
    pub threads: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            pubkey: None,
            sample: 1.0,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        }
    }
}

/// The result of a verification.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// Everything found wrong; empty means the export verified.
    pub findings: Vec<Finding>,
    /// Files hashed.
    pub files_hashed: u64,
    /// Bytes hashed.
    pub bytes_hashed: u64,
    /// Manifest items.
    pub items: u64,
    /// `verified`, `absent`, `not-checked` (no --pubkey) or `invalid`.
    pub signature: String,
}

fn read(root: &Path, rel: &str, findings: &mut Vec<Finding>) -> Option<String> {
    match std::fs::read_to_string(root.join(rel)) {
        Ok(t) => Some(t),
        Err(e) => {
            findings.push(Finding {
                kind: "missing-file",
                r#where: rel.into(),
                what: format!("cannot read: {e}"),
                action: "restore the file from a known-good copy of the export",
            });
            None
        }
    }
}

/// `"<sha>  <path>"` lines → path → sha.
fn parse_manifest(text: &str, name: &str, findings: &mut Vec<Finding>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        match line.split_once("  ").or_else(|| line.split_once(' ')) {
            Some((sha, path)) if sha.len() == 64 => {
                out.insert(
                    path.trim_start_matches('*').to_owned(),
                    sha.to_ascii_lowercase(),
                );
            }
            _ => findings.push(Finding {
                kind: "malformed-manifest",
                r#where: format!("{name} line {}", i + 1),
                what: format!("not '<sha256>  <path>': {line}"),
                action: "restore the manifest from a known-good copy",
            }),
        }
    }
    out
}

/// Hashes files on `threads` threads.
fn hash_all(
    root: &Path,
    files: &[String],
    threads: usize,
) -> BTreeMap<String, Result<(String, u64), String>> {
    let chunks: Vec<&[String]> = files
        .chunks(files.len().div_ceil(threads.max(1)).max(1))
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|f| {
                            (
                                f.clone(),
                                sha256_file(&root.join(f)).map_err(|e| e.to_string()),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("hashing thread"))
            .collect()
    })
}

fn in_sample(path: &str, fraction: f64) -> bool {
    if fraction >= 1.0 {
        return true;
    }
    let h = crate::custody::line_hash(path.as_bytes());
    (u64::from_str_radix(&h[..8], 16).unwrap_or(0) as f64 / f64::from(u32::MAX)) < fraction
}

/// Verifies the export at `root`. `Err` only when it cannot be read as an export at all.
pub fn verify(root: &Path, opts: &VerifyOptions) -> Result<VerifyReport, String> {
    if !root.join("data").is_dir() {
        return Err(format!(
            "{}: no data/ directory; is this a custos export?",
            root.display()
        ));
    }
    let mut f = Vec::new();
    let push = |f: &mut Vec<Finding>, kind, r#where: String, what: String, action| {
        f.push(Finding {
            kind,
            r#where,
            what,
            action,
        })
    };

    // 1. The bag: bagit.txt, tag manifest, payload manifest, Payload-Oxum.
    if let Some(t) = read(root, "bagit.txt", &mut f)
        && !t.lines().any(|l| l.trim() == "BagIt-Version: 1.0")
    {
        push(
            &mut f,
            "bagit-declaration",
            "bagit.txt".into(),
            "does not declare BagIt-Version: 1.0".into(),
            "restore bagit.txt",
        );
    }
    let tag = read(root, "tagmanifest-sha256.txt", &mut f)
        .map(|t| parse_manifest(&t, "tagmanifest-sha256.txt", &mut f))
        .unwrap_or_default();
    for (rel, sha) in &tag {
        match sha256_file(&root.join(rel)) {
            Ok((got, _)) if &got == sha => {}
            Ok((got, _)) => push(
                &mut f,
                "tag-hash-mismatch",
                rel.clone(),
                format!("SHA-256 is {got}, the tag manifest says {sha}"),
                "the tag file was changed after sealing; restore it from a known-good copy",
            ),
            Err(e) => push(
                &mut f,
                "missing-file",
                rel.clone(),
                e.to_string(),
                "restore the tag file",
            ),
        }
    }
    for must in ["bag-info.txt", "bagit.txt", "manifest-sha256.txt"] {
        if !tag.contains_key(must) {
            push(
                &mut f,
                "tag-not-listed",
                must.into(),
                "not listed in tagmanifest-sha256.txt".into(),
                "the tag manifest was edited; restore it",
            );
        }
    }
    let manifest = read(root, "manifest-sha256.txt", &mut f)
        .map(|t| parse_manifest(&t, "manifest-sha256.txt", &mut f))
        .unwrap_or_default();
    let info_text = read(root, "bag-info.txt", &mut f).unwrap_or_default();
    let info: BTreeMap<&str, &str> = info_text
        .lines()
        .filter_map(|l| l.split_once(": "))
        .collect();
    let on_disk: Vec<String> = payload_files(root)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    let disk_set: BTreeSet<&String> = on_disk.iter().collect();
    for rel in manifest.keys() {
        if !disk_set.contains(rel) {
            push(
                &mut f,
                "payload-missing",
                rel.clone(),
                "listed in manifest-sha256.txt but not on disk".into(),
                "a payload file was deleted or renamed; restore it from a known-good copy",
            );
        }
    }
    for rel in &on_disk {
        if !manifest.contains_key(rel) {
            push(
                &mut f,
                "payload-unlisted",
                rel.clone(),
                "on disk but not in manifest-sha256.txt".into(),
                "a file was added after sealing; it is not part of the evidence",
            );
        }
    }

    // 2. The custody record, to know which files are recordings (for sampling).
    let coc_rows = read_csv(root, "data/chain_of_custody.csv", &mut f);
    let recording_files: BTreeMap<String, u64> = coc_rows
        .iter()
        .filter(|r| r.get("Outcome").map(String::as_str) == Some("Exported"))
        .filter_map(|r| Some((r.get("File_Name")?.clone(), r.get("Bytes")?.parse().ok()?)))
        .collect();
    let to_hash: Vec<String> = on_disk
        .iter()
        .filter(|p| manifest.contains_key(*p))
        .filter(|p| !recording_files.contains_key(*p) || in_sample(p, opts.sample))
        .cloned()
        .collect();
    let hashes = hash_all(root, &to_hash, opts.threads);
    let (mut files_hashed, mut bytes_hashed) = (0, 0);
    for (rel, r) in &hashes {
        match r {
            Ok((got, n)) => {
                files_hashed += 1;
                bytes_hashed += n;
                if manifest.get(rel) != Some(got) {
                    push(
                        &mut f,
                        "payload-hash-mismatch",
                        rel.clone(),
                        format!("SHA-256 now {got}, the manifest says {}", manifest[rel]),
                        "the file changed after export: it is not the evidence that was acquired; re-export or restore it",
                    );
                }
            }
            Err(e) => push(
                &mut f,
                "payload-unreadable",
                rel.clone(),
                e.clone(),
                "check the storage; restore the file",
            ),
        }
    }
    for (rel, bytes) in &recording_files {
        if !hashes.contains_key(rel)
            && let Ok(m) = std::fs::metadata(root.join(rel))
            && m.len() != *bytes
        {
            push(
                &mut f,
                "payload-size-mismatch",
                rel.clone(),
                format!("{} bytes, the custody record says {bytes}", m.len()),
                "the file changed after export; restore it",
            );
        }
    }
    let total: u64 = on_disk
        .iter()
        .filter_map(|p| std::fs::metadata(root.join(p)).ok())
        .map(|m| m.len())
        .sum();
    let oxum = format!("{total}.{}", on_disk.len());
    if info.get("Payload-Oxum") != Some(&oxum.as_str()) {
        push(
            &mut f,
            "payload-oxum",
            "bag-info.txt".into(),
            format!(
                "Payload-Oxum says {:?}, the payload is {oxum}",
                info.get("Payload-Oxum")
            ),
            "files were added, removed or resized after sealing",
        );
    }

    // 3. Seals recorded in bag-info.
    for (label, rel) in [
        ("Query-SHA256", "data/query.json"),
        ("Manifest-SHA256", "data/manifest.csv"),
    ] {
        let now = sha256_file(&root.join(rel))
            .map(|x| x.0)
            .unwrap_or_default();
        if info.get(label) != Some(&now.as_str()) {
            push(
                &mut f,
                "seal-mismatch",
                rel.into(),
                format!(
                    "{label} in bag-info.txt is {:?}, the file hashes to {now}",
                    info.get(label)
                ),
                "the sealed file or bag-info.txt was changed",
            );
        }
    }

    // 4. manifest.csv ↔ chain_of_custody.csv ↔ files ↔ sidecars.
    let items = read_csv(root, "data/manifest.csv", &mut f);
    let mut rows: BTreeMap<String, Vec<&BTreeMap<String, String>>> = BTreeMap::new();
    for r in &coc_rows {
        rows.entry(r.get("Recording_ID").cloned().unwrap_or_default())
            .or_default()
            .push(r);
    }
    let listed: BTreeSet<String> = items
        .iter()
        .filter_map(|i| i.get("Recording_ID").cloned())
        .collect();
    for id in &listed {
        match rows.get(id).map(Vec::len).unwrap_or(0) {
            1 => {}
            0 => push(
                &mut f,
                "item-without-outcome",
                id.clone(),
                "in manifest.csv but not in chain_of_custody.csv".into(),
                "a custody row was removed; the record is incomplete",
            ),
            n => push(
                &mut f,
                "item-duplicated",
                id.clone(),
                format!("{n} rows in chain_of_custody.csv"),
                "a custody row was added; the record was edited",
            ),
        }
    }
    for id in rows.keys() {
        if !listed.contains(id) {
            push(
                &mut f,
                "row-without-item",
                id.clone(),
                "in chain_of_custody.csv but not in manifest.csv".into(),
                "a custody row was added; the record was edited",
            );
        }
    }
    let mut referenced = BTreeSet::new();
    for r in &coc_rows {
        let id = r.get("Recording_ID").cloned().unwrap_or_default();
        let outcome = r.get("Outcome").cloned().unwrap_or_default();
        if crate::model::Outcome::parse(&outcome).is_none() {
            push(
                &mut f,
                "bad-outcome",
                id.clone(),
                format!("outcome '{outcome}'"),
                "the custody record was edited",
            );
        }
        let file = r.get("File_Name").cloned().unwrap_or_default();
        if file.is_empty() {
            continue;
        }
        referenced.insert(file.clone());
        let sha = r.get("SHA256_Hash").cloned().unwrap_or_default();
        if !disk_set.contains(&file) {
            push(
                &mut f,
                "row-without-file",
                id.clone(),
                format!("{file} does not exist"),
                "the evidence file was deleted or moved; restore it",
            );
            continue;
        }
        if manifest.get(&file) != Some(&sha) {
            push(
                &mut f,
                "custody-hash-mismatch",
                id.clone(),
                format!(
                    "chain_of_custody.csv says {sha}, manifest-sha256.txt says {:?}",
                    manifest.get(&file)
                ),
                "the custody record or the manifest was edited",
            );
        }
        let sidecar = format!("{file}.sha256");
        let name = file.rsplit('/').next().unwrap_or("");
        match std::fs::read_to_string(root.join(&sidecar)) {
            Ok(t) if t == format!("{sha}  {name}\n") => {}
            Ok(_) => push(
                &mut f,
                "sidecar-mismatch",
                sidecar,
                format!("does not read '{sha}  {name}'"),
                "the sidecar was edited; restore it",
            ),
            Err(_) => push(
                &mut f,
                "sidecar-missing",
                sidecar,
                "missing".into(),
                "restore the sidecar",
            ),
        }
    }
    for rel in &on_disk {
        let evidence = rel.starts_with("data/recordings/") || rel.starts_with("data/quarantine/");
        if evidence && !rel.ends_with(".sha256") && !referenced.contains(rel) {
            push(
                &mut f,
                "file-without-row",
                rel.clone(),
                "no custody row names this file".into(),
                "a file was added or renamed; it is not part of the evidence",
            );
        }
    }

    // 5. The custody log: the chain, its head, and the acquisition hashes (three-way check).
    let log_path = root.join("data/custody_log.jsonl");
    let mut head = None;
    match check_chain(&log_path) {
        Ok(c) => {
            if c.torn_bytes > 0 {
                push(
                    &mut f,
                    "log-truncated",
                    "data/custody_log.jsonl".into(),
                    format!("{} bytes after the last whole line", c.torn_bytes),
                    "the log was cut or appended to after sealing",
                );
            }
            if info.get("Custody-Log-Head") != Some(&c.head.as_str()) {
                push(
                    &mut f,
                    "log-head-mismatch",
                    "data/custody_log.jsonl".into(),
                    format!(
                        "head {} differs from bag-info's Custody-Log-Head {:?}",
                        c.head,
                        info.get("Custody-Log-Head")
                    ),
                    "lines were removed from or added to the end of the log",
                );
            }
            head = Some(c.head);
        }
        Err(e) => push(
            &mut f,
            "log-chain-broken",
            "data/custody_log.jsonl".into(),
            e,
            "the custody log was edited; the acquisition record cannot be trusted",
        ),
    }
    if let Ok(events) = read_events(&log_path) {
        let mut acquired: BTreeMap<String, String> = BTreeMap::new();
        let mut logged_outcome: BTreeMap<String, String> = BTreeMap::new();
        for e in &events {
            let rid = e["recordingId"].as_str().unwrap_or("").to_owned();
            match e["event"].as_str() {
                Some("download-attempt") if e["result"] == "complete" => {
                    acquired.insert(rid, e["sha256"].as_str().unwrap_or("").to_owned());
                }
                Some("outcome") => {
                    logged_outcome.insert(rid, e["outcome"].as_str().unwrap_or("").to_owned());
                }
                _ => {}
            }
        }
        for r in &coc_rows {
            let id = r.get("Recording_ID").cloned().unwrap_or_default();
            let outcome = r.get("Outcome").cloned().unwrap_or_default();
            if logged_outcome.get(&id) != Some(&outcome) {
                push(
                    &mut f,
                    "outcome-disagrees-with-log",
                    id.clone(),
                    format!(
                        "custody row says {outcome}, the log says {:?}",
                        logged_outcome.get(&id)
                    ),
                    "the custody record and the log disagree: one was edited",
                );
            }
            if outcome == "Exported" {
                let sha = r.get("SHA256_Hash").cloned().unwrap_or_default();
                if acquired.get(&id) != Some(&sha) {
                    let was = acquired.get(&id).cloned();
                    push(
                        &mut f,
                        "acquisition-hash-mismatch",
                        id,
                        format!("acquired as {was:?} (custody log), recorded as {sha}"),
                        "the file recorded is not the file acquired",
                    );
                }
            }
        }
    }

    // 6. The signature.
    let sig_path = root.join("tagmanifest-sha256.txt.minisig");
    let signature = match (sig_path.exists(), &opts.pubkey) {
        (false, Some(_)) => {
            push(
                &mut f,
                "unsigned",
                "tagmanifest-sha256.txt.minisig".into(),
                "no signature, but a public key was given".into(),
                "the signature was removed, or the export was never signed",
            );
            "absent".to_owned()
        }
        (false, None) => "absent".to_owned(),
        (true, None) => "not-checked".to_owned(),
        (true, Some(pk)) => match check_signature(root, pk, head.as_deref()) {
            Ok(()) => "verified".to_owned(),
            Err(e) => {
                push(
                    &mut f,
                    "signature-invalid",
                    "tagmanifest-sha256.txt.minisig".into(),
                    e,
                    "the bag or the signature was changed after signing, or the key is not the signer's",
                );
                "invalid".to_owned()
            }
        },
    };
    // 7. Upload receipts (custos upload): each chained, tied to this bag, signed if a key is given.
    let tag_sha = sha256_file(&root.join("tagmanifest-sha256.txt"))
        .map(|(h, _)| h)
        .unwrap_or_default();
    for receipt in receipts(root) {
        let rel = receipt
            .strip_prefix(root)
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Err(e) = check_chain(&receipt) {
            push(
                &mut f,
                "receipt-chain-broken",
                rel,
                e,
                "the upload receipt was edited; restore it from the copy stored beside the export",
            );
            continue;
        }
        let events = read_events(&receipt).unwrap_or_default();
        let started = events.iter().find(|e| e["event"] == "upload-started");
        if started.and_then(|e| e["tagManifestSha256"].as_str()) != Some(tag_sha.as_str()) {
            push(
                &mut f,
                "receipt-other-export",
                rel.clone(),
                "the receipt does not name this bag's tag manifest".into(),
                "the receipt belongs to another export, or the bag changed after upload",
            );
        }
        let sig = PathBuf::from(format!("{}.minisig", receipt.display()));
        if let (true, Some(pk)) = (sig.exists(), &opts.pubkey)
            && let Err(e) = check_file_signature(&receipt, &sig, pk)
        {
            push(
                &mut f,
                "receipt-signature-invalid",
                rel,
                e,
                "the receipt or its signature was changed after signing, or the key is not the signer's",
            );
        }
    }
    Ok(VerifyReport {
        findings: f,
        files_hashed,
        bytes_hashed,
        items: listed.len() as u64,
        signature,
    })
}

/// `receipts/*.jsonl` of the export, by name.
fn receipts(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root.join("receipts"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    out.sort();
    out
}

/// Checks `sig` over `file` with `pubkey`; returns the signature's trusted comment.
fn check_file_signature(file: &Path, sig: &Path, pubkey: &Path) -> Result<String, String> {
    let pk = minisign::PublicKey::from_file(pubkey)
        .map_err(|e| format!("public key {}: {e}", pubkey.display()))?;
    let sig = minisign::SignatureBox::from_file(sig)
        .map_err(|e| format!("cannot read the signature: {e}"))?;
    let data = std::fs::File::open(file).map_err(|e| e.to_string())?;
    minisign::verify(&pk, &sig, data, true, false, false)
        .map_err(|e| format!("does not verify: {e}"))?;
    sig.trusted_comment().map_err(|e| e.to_string())
}

fn check_signature(root: &Path, pubkey: &Path, head: Option<&str>) -> Result<(), String> {
    let comment = check_file_signature(
        &root.join("tagmanifest-sha256.txt"),
        &root.join("tagmanifest-sha256.txt.minisig"),
        pubkey,
    )?;
    if let Some(h) = head
        && !comment.contains(&format!("custody-log-head:{h}"))
    {
        return Err(format!(
            "verifies, but its trusted comment '{comment}' names another custody log head than {h}"
        ));
    }
    Ok(())
}

fn read_csv(root: &Path, rel: &str, f: &mut Vec<Finding>) -> Vec<BTreeMap<String, String>> {
    let mut r = match csv::Reader::from_path(root.join(rel)) {
        Ok(r) => r,
        Err(e) => {
            f.push(Finding {
                kind: "missing-file",
                r#where: rel.into(),
                what: e.to_string(),
                action: "restore the file from a known-good copy",
            });
            return Vec::new();
        }
    };
    let headers = r.headers().cloned().unwrap_or_default();
    r.records()
        .filter_map(|x| x.ok())
        .map(|rec| {
            headers
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}
