//! Who sealed the package: the minisign signature over the tag manifest (its trusted comment
//! naming the custody log's head), and the upload receipts' chains, ties to this bag and
//! signatures.

use crate::package::files;
use std::path::Path;

use serde::Serialize;

use super::bag::SMALL_TEXT;
use super::finding::{FindingKind as K, Findings};
use super::fsys::{Bag, Refused};
use crate::custody::{MAX_LINE, check_chain_lines};

/// What is known of the package's origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureStatus {
    /// Signed, and the signature verifies with the key given.
    Verified,
    /// Not signed: nothing says who sealed it.
    Absent,
    /// Signed, but no key was given: the signature was not checked, and anyone could have
    /// re-sealed the package and signed it with a key of their own.
    OriginUnchecked,
    /// Signed, and the signature does not verify with the key given.
    Invalid,
}

const SIG: &str = files::SIGNATURE;
const TAG: &str = files::TAG_MANIFEST;

/// Checks the bag's signature with `pubkey` (if given); a key given for an unsigned bag is a
/// finding, and so is a bag without a signature, or signed with another key, whose custody
/// log says which key sealed it.
pub(super) fn check_signature(
    bag: &Bag,
    pubkey: Option<&Path>,
    log: Option<&super::record::LogFacts>,
    f: &mut Findings,
) -> SignatureStatus {
    let head = log.map(|l| l.head.as_str());
    let logged_key = log
        .and_then(|l| l.sealed_with.as_deref())
        .and_then(|s| s.strip_prefix("key id "));
    let present = match bag.lstat(SIG) {
        Err(Refused::Missing) => false,
        Ok(m) if m.is_file() => true,
        Ok(_) | Err(_) => {
            f.push(
                K::SpecialFile,
                SIG,
                "the signature is not a regular file; not read",
            );
            return SignatureStatus::Invalid;
        }
    };
    if let Some(logged) = logged_key {
        match (present, key_id(bag)) {
            (false, _) => f.push(
                K::SignatureRemoved,
                SIG,
                format!("the custody log says the export was sealed and signed with key id {logged}, but the bag has no signature"),
            ),
            (true, Some(id)) if id != logged => f.push(
                K::SignatureInvalid,
                SIG,
                format!("signed with key id {id}; the custody log says the export was signed with key id {logged}"),
            ),
            _ => {}
        }
    }
    match (present, pubkey) {
        (false, Some(_)) => {
            f.push(K::Unsigned, SIG, "no signature, but a public key was given");
            SignatureStatus::Absent
        }
        (false, None) => SignatureStatus::Absent,
        (true, None) => SignatureStatus::OriginUnchecked,
        (true, Some(pk)) => match check_signed(bag, TAG, SIG, pk).and_then(|comment| {
            match head {
                Some(h) if !comment.contains(&format!("custody-log-head:{h}")) => Err(format!(
                    "verifies, but its trusted comment '{comment}' names another custody log head than {h}"
                )),
                _ => Ok(()),
            }
        }) {
            Ok(()) => SignatureStatus::Verified,
            Err(e) => {
                f.push(K::SignatureInvalid, SIG, e);
                SignatureStatus::Invalid
            }
        },
    }
}

/// The key id of the bag's signature (hex, as the custody log's `sign-key` setting writes it),
/// if it has a readable one.
pub(super) fn key_id(bag: &Bag) -> Option<String> {
    let text = bag.read_text(SIG, SMALL_TEXT).ok()?;
    let sig = minisign::SignatureBox::from_string(&text).ok()?;
    Some(hex::encode_upper(sig.keynum()))
}

/// Checks the signature `sig` over `file` (both in the bag) with `pubkey`; returns the
/// trusted comment.
pub(super) fn check_signed(
    bag: &Bag,
    file: &str,
    sig: &str,
    pubkey: &Path,
) -> Result<String, String> {
    let pk = minisign::PublicKey::from_file(pubkey)
        .map_err(|e| format!("public key {}: {e}", pubkey.display()))?;
    let sig_text = bag
        .read_text(sig, SMALL_TEXT)
        .map_err(|e| e.finding(sig).what)?;
    let sig = minisign::SignatureBox::from_string(&sig_text)
        .map_err(|e| format!("cannot read the signature: {e}"))?;
    let data = bag.read(file, 1 << 30).map_err(|e| e.finding(file).what)?;
    minisign::verify(&pk, &sig, std::io::Cursor::new(data), true, false, false)
        .map_err(|e| format!("does not verify: {e}"))?;
    sig.trusted_comment().map_err(|e| e.to_string())
}

/// A tool a check needs could not run (`openssl` for `--tsa-ca`).
#[derive(Debug)]
pub(super) struct ToolMissing(pub String);

/// What a timestamp in the bag attests.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimestampReport {
    /// The file it timestamps.
    pub file: String,
    /// The attested time (GeneralizedTime, UTC).
    pub gen_time: String,
    /// Checked against the TSA certificates given (`--tsa-ca`) with `openssl ts -verify`.
    pub checked: bool,
}

/// Every `<file>.tsr` beside the tag manifest, the signature, the upload receipts and their
/// signatures: a token attesting that file's
/// SHA-256; with `tsa_ca`, verified by `openssl ts -verify` (its signature, the TSA's
/// certificate chain to `tsa_ca`, the timeStamping usage).
pub(super) fn check_timestamps(
    bag: &Bag,
    receipts: &[String],
    tsa_ca: Option<&Path>,
    f: &mut Findings,
) -> Result<Vec<TimestampReport>, ToolMissing> {
    let mut out = Vec::new();
    let mut files: Vec<String> = vec![TAG.into(), SIG.into()];
    for r in receipts {
        files.push(r.clone());
        files.push(format!("{r}.minisig"));
    }
    for file in &files {
        let file = file.as_str();
        let name = format!("{file}.tsr");
        if matches!(bag.lstat(&name), Err(Refused::Missing)) {
            continue;
        }
        let token = match bag.read(&name, 1 << 20) {
            Ok(t) => t,
            Err(e) => {
                f.add(e.finding(&name));
                continue;
            }
        };
        let data = match bag.read(file, 1 << 30) {
            Ok(d) => d,
            Err(e) => {
                f.add(e.finding(file));
                continue;
            }
        };
        let attested = match crate::tsa::read(&token) {
            Ok(a) => a,
            Err(e) => {
                f.push(K::TimestampMismatch, name, e.to_string());
                continue;
            }
        };
        let digest = crate::digest::Sha256::of(&data).hex();
        if attested.sha256 != digest {
            f.push(
                K::TimestampMismatch,
                name,
                format!(
                    "attests SHA-256 {} at {}; {file} is {digest}",
                    attested.sha256, attested.gen_time
                ),
            );
            continue;
        }
        if let Err(why) = crate::tsa::check_time(&attested) {
            f.push(K::TimestampInvalid, name, why);
            continue;
        }
        if let Some(ca) = tsa_ca
            && let Err(why) = crate::tsa::openssl_verify(&token, &digest, Some(ca))
                .map_err(|e| ToolMissing(e.to_string()))?
        {
            f.push(K::TimestampInvalid, name, why);
            continue;
        }
        out.push(TimestampReport {
            file: file.into(),
            gen_time: attested.gen_time,
            checked: tsa_ca.is_some(),
        });
    }
    Ok(out)
}

/// Every `receipts/*.jsonl`: chained, naming this bag's tag manifest (`tag_sha256`), and signed
/// by `pubkey` where signed and a key is given.
/// The upload receipts beside the bag (`receipts/*.jsonl`), by path; a `receipts` that is a
/// link is a finding, and not followed.
pub fn receipt_paths(bag: &Bag, f: &mut Findings) -> Vec<String> {
    let dir = match bag.lstat("receipts") {
        Ok(m) if m.is_dir() => bag.path("receipts"),
        Ok(m) if m.file_type().is_symlink() => {
            f.push(
                K::SpecialFile,
                "receipts",
                "is a symbolic link; not followed",
            );
            return Vec::new();
        }
        _ => return Vec::new(),
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n.ends_with(".jsonl"))
        .map(|n| format!("receipts/{n}"))
        .collect();
    names.sort();
    names
}

pub(super) fn check_receipts(
    bag: &Bag,
    receipts: &[String],
    pubkey: Option<&Path>,
    tag_sha256: &str,
    f: &mut Findings,
) {
    for rel in receipts {
        let rel = rel.clone();
        let file = match bag.open(&rel) {
            Ok((file, _)) => file,
            Err(e) => {
                f.add(e.finding(&rel));
                continue;
            }
        };
        let mut started = None;
        let chain = check_chain_lines(std::io::BufReader::new(file), MAX_LINE, |e| {
            // An upload receipt, or a release of the export's deletion protection.
            if started.is_none()
                && (e["event"] == "upload-started" || e["event"] == "release-started")
            {
                started = Some(e["tagManifestSha256"].as_str().unwrap_or("").to_owned());
            }
        });
        if let Err(e) = chain {
            f.push(K::ReceiptChainBroken, rel, e.to_string());
            continue;
        }
        if started.as_deref() != Some(tag_sha256) {
            f.push(
                K::ReceiptOtherExport,
                rel.clone(),
                "the receipt does not name this bag's tag manifest",
            );
        }
        // With a key given, a receipt counts only when that key signed it: anyone can write
        // an unsigned receipt beside a bag, naming uploads that never happened.
        let sig = format!("{rel}.minisig");
        let signed = !matches!(bag.lstat(&sig), Err(Refused::Missing));
        match (signed, pubkey) {
            (true, Some(pk)) => {
                if let Err(e) = check_signed(bag, &rel, &sig, pk) {
                    f.push(K::ReceiptSignatureInvalid, rel, e);
                }
            }
            (false, Some(_)) => f.push(
                K::ReceiptUnsigned,
                rel,
                "not signed, so nothing proves who wrote it; a key was given, and an unsigned receipt is not taken as proof of an upload or a release",
            ),
            (_, None) => {}
        }
    }
}
