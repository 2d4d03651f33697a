//! Who sealed the package: the minisign signature over the tag manifest (its trusted comment
//! naming the custody log's head), and the upload receipts' chains, ties to this bag and
//! signatures.

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

const SIG: &str = "tagmanifest-sha256.txt.minisig";
const TAG: &str = "tagmanifest-sha256.txt";

/// Checks the bag's signature with `pubkey` (if given); a key given for an unsigned bag is a
/// finding.
pub(super) fn check_signature(
    bag: &Bag,
    pubkey: Option<&Path>,
    head: Option<&str>,
    f: &mut Findings,
) -> SignatureStatus {
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

/// Checks the signature `sig` over `file` (both in the bag) with `pubkey`; returns the
/// trusted comment.
fn check_signed(bag: &Bag, file: &str, sig: &str, pubkey: &Path) -> Result<String, String> {
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

/// Every `receipts/*.jsonl`: chained, naming this bag's tag manifest (`tag_sha256`), and signed
/// by `pubkey` where signed and a key is given.
pub(super) fn check_receipts(bag: &Bag, pubkey: Option<&Path>, tag_sha256: &str, f: &mut Findings) {
    let dir = match bag.lstat("receipts") {
        Ok(m) if m.is_dir() => bag.path("receipts"),
        Ok(m) if m.file_type().is_symlink() => {
            return f.push(
                K::SpecialFile,
                "receipts",
                "is a symbolic link; not followed",
            );
        }
        _ => return,
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    names.sort();
    for name in names {
        let rel = format!("receipts/{name}");
        let file = match bag.open(&rel) {
            Ok((file, _)) => file,
            Err(e) => {
                f.add(e.finding(&rel));
                continue;
            }
        };
        let mut started = None;
        let chain = check_chain_lines(std::io::BufReader::new(file), MAX_LINE, |e| {
            if started.is_none() && e["event"] == "upload-started" {
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
        let sig = format!("{rel}.minisig");
        if let (false, Some(pk)) = (matches!(bag.lstat(&sig), Err(Refused::Missing)), pubkey)
            && let Err(e) = check_signed(bag, &rel, &sig, pk)
        {
            f.push(K::ReceiptSignatureInvalid, rel, e);
        }
    }
}
