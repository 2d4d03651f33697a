//! Findings: what `custos verify` (and `custos verify --remote`) found wrong, each of a typed
//! kind whose advice is written once, here.

use serde::Serialize;

/// The kinds of problem verification reports. Serialized in kebab-case (`payload-hash-mismatch`);
/// the names are stable: scripts match on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A file the bag needs is absent or cannot be read.
    MissingFile,
    /// A path that is not a plain relative path inside the bag (`..`, absolute, empty parts).
    UnsafePath,
    /// A symlink, FIFO, socket or device where a regular file or directory belongs.
    SpecialFile,
    /// A file name that is not UTF-8, or holds control characters or a backslash.
    BadFileName,
    /// A text file (or one line of it) larger than verification reads.
    TooLarge,
    /// `bagit.txt` is not a BagIt 1.0 declaration in UTF-8.
    BagitDeclaration,
    /// `bag-info.txt` is malformed (a label twice, a required label absent, a bad value).
    BagInfoInvalid,
    /// A `fetch.txt`: a custos export is always complete.
    FetchFile,
    /// A manifest line that is not `<checksum> <path>`.
    MalformedManifest,
    /// A manifest lists a path twice.
    ManifestDuplicate,
    /// A manifest of an algorithm custos cannot compute.
    ManifestAlgorithmUnsupported,
    /// A tag manifest entry whose file's checksum differs.
    TagHashMismatch,
    /// A tag file the tag manifest must list is not listed.
    TagNotListed,
    /// Listed in a payload manifest, not on disk.
    PayloadMissing,
    /// On disk under data/, not listed in a payload manifest.
    PayloadUnlisted,
    /// A payload file's checksum differs from a manifest's.
    PayloadHashMismatch,
    /// A payload file cannot be read.
    PayloadUnreadable,
    /// A payload file's size differs from the custody record's.
    PayloadSizeMismatch,
    /// Payload-Oxum does not describe the payload.
    PayloadOxum,
    /// The Merkle root or leaf count in bag-info is not that of the payload manifest.
    MerkleRootMismatch,
    /// An RFC 3161 timestamp attests another SHA-256 than its file's, or is not a token.
    TimestampMismatch,
    /// An RFC 3161 timestamp does not verify against the TSA certificates given (`--tsa-ca`).
    TimestampInvalid,
    /// Query-SHA256 / Manifest-SHA256 in bag-info differ from the files.
    SealMismatch,
    /// A manifest item without a custody row.
    ItemWithoutOutcome,
    /// A manifest item with more than one custody row.
    ItemDuplicated,
    /// A custody row without a manifest item.
    RowWithoutItem,
    /// A custody row with an outcome that does not exist.
    BadOutcome,
    /// A custody row naming a file that is not there.
    RowWithoutFile,
    /// The custody record and the manifest disagree on a file's hash.
    CustodyHashMismatch,
    /// A sidecar that does not read `<sha256>  <name>`.
    SidecarMismatch,
    /// A sidecar that is absent.
    SidecarMissing,
    /// An evidence file no custody row names.
    FileWithoutRow,
    /// Bytes after the custody log's last whole line.
    LogTruncated,
    /// The custody log's head differs from bag-info's.
    LogHeadMismatch,
    /// The custody log's hash chain is broken.
    LogChainBroken,
    /// A custody row's outcome differs from the log's.
    OutcomeDisagreesWithLog,
    /// The hash recorded differs from the hash at acquisition.
    AcquisitionHashMismatch,
    /// The custody log says the export was signed, but the bag has no signature: it was
    /// removed, and whatever changed with it is unproven.
    SignatureRemoved,
    /// A public key was given but there is no signature.
    Unsigned,
    /// The signature does not verify.
    SignatureInvalid,
    /// An upload receipt's chain is broken.
    ReceiptChainBroken,
    /// An upload receipt of another export.
    ReceiptOtherExport,
    /// An upload or release receipt without a signature, when a key was given.
    ReceiptUnsigned,
    /// An upload receipt's signature does not verify.
    ReceiptSignatureInvalid,
    /// Counsel's approval beside the bag is malformed, names another package, or approves
    /// what is not a `Corrupted` item of this one.
    ApprovalInvalid,
    /// An approval without a signature, when approver keys were given.
    ApprovalUnsigned,
    /// An approval's signature does not verify with any approver key given.
    ApprovalSignatureInvalid,
    /// Remote: a sealed file is not in the store.
    RemoteMissing,
    /// Remote: a stored object differs from what was sealed or receipted.
    RemoteMismatch,
    /// Remote: the completed upload's receipt is not in the store.
    RemoteReceiptMissing,
    /// Remote: the stored receipt differs from the local one.
    RemoteReceiptMismatch,
    /// Remote: an object the bag does not list.
    RemoteUnexpected,
    /// A bag of an ongoing hold's chain does not match the earlier bag it names, or a
    /// recording is exported twice across the chain (`--previous`).
    ChainBroken,
    /// An earlier bag of the chain has findings of its own (`--previous`).
    ChainPreviousDamaged,
}

impl FindingKind {
    /// What to do about it: one sentence, the same wherever the kind is found.
    pub fn action(self) -> &'static str {
        use FindingKind::*;
        match self {
            MissingFile => "restore the file from a known-good copy of the export",
            UnsafePath => {
                "the package names a path outside itself or not in plain form; it was not read. Treat the package as hostile"
            }
            SpecialFile => {
                "an export holds only regular files and directories; it was not followed or read. Treat the package as hostile"
            }
            BadFileName => {
                "a file whose name can pass for another's; it is not part of the evidence. Treat the package as hostile"
            }
            TooLarge => {
                "larger than any file custos writes; it was not read whole. Restore it from a known-good copy"
            }
            BagitDeclaration => "restore bagit.txt",
            BagInfoInvalid => "bag-info.txt was edited; restore it",
            FetchFile => {
                "a custos export is never completed by fetching; remove the claim or restore the bag"
            }
            MalformedManifest => "restore the manifest from a known-good copy",
            ManifestDuplicate => "the manifest was edited; restore it",
            ManifestAlgorithmUnsupported => {
                "custos cannot check this manifest, so the bag is not verified; remove it only if you know where it came from"
            }
            TagHashMismatch => {
                "the tag file was changed after sealing; restore it from a known-good copy"
            }
            TagNotListed => "the tag manifest was edited; restore it",
            PayloadMissing => {
                "a payload file was deleted or renamed; restore it from a known-good copy"
            }
            PayloadUnlisted => "a file was added after sealing; it is not part of the evidence",
            PayloadHashMismatch => {
                "the file changed after export: it is not the evidence that was acquired; re-export or restore it"
            }
            PayloadUnreadable => "check the storage; restore the file",
            PayloadSizeMismatch => "the file changed after export; restore it",
            PayloadOxum => "files were added, removed or resized after sealing",
            TimestampMismatch => {
                "the timestamped file was changed after it was timestamped (or the token was replaced); it does not attest this package"
            }
            TimestampInvalid => {
                "the token is not signed by a TSA the certificates given vouch for; check --tsa-ca, or treat the time as unproven"
            }
            MerkleRootMismatch => {
                "the payload manifest or bag-info.txt was changed after sealing; inclusion proofs made from this export do not hold"
            }
            SealMismatch => "the sealed file or bag-info.txt was changed",
            ItemWithoutOutcome => "a custody row was removed; the record is incomplete",
            ItemDuplicated | RowWithoutItem => "a custody row was added; the record was edited",
            BadOutcome => "the custody record was edited",
            RowWithoutFile => "the evidence file was deleted or moved; restore it",
            CustodyHashMismatch => "the custody record or the manifest was edited",
            SidecarMismatch => "the sidecar was edited; restore it",
            SidecarMissing => "restore the sidecar",
            FileWithoutRow => "a file was added or renamed; it is not part of the evidence",
            LogTruncated => "the log was cut or appended to after sealing",
            LogHeadMismatch => "lines were removed from or added to the end of the log",
            LogChainBroken => {
                "the custody log was edited; the acquisition record cannot be trusted"
            }
            OutcomeDisagreesWithLog => "the custody record and the log disagree: one was edited",
            AcquisitionHashMismatch => "the file recorded is not the file acquired",
            Unsigned => "the signature was removed, or the export was never signed",
            SignatureRemoved => {
                "the signature the export was sealed with is gone; restore the package from a known-good copy and treat this one as altered"
            }
            SignatureInvalid => {
                "the bag or the signature was changed after signing, or the key is not the signer's"
            }
            ReceiptChainBroken => {
                "the upload receipt was edited; restore it from the copy stored beside the export"
            }
            ReceiptOtherExport => {
                "the receipt belongs to another export, or the bag changed after upload"
            }
            ReceiptUnsigned => {
                "re-run the upload or release with --sign-key to have a receipt that proves itself; a receipt you did not write is not evidence"
            }
            ReceiptSignatureInvalid => {
                "the receipt or its signature was changed after signing, or the key is not the signer's"
            }
            ApprovalInvalid => {
                "it is not an approval of this package's Corrupted item; remove it, and have counsel approve again with custos approve if the item is to be produced"
            }
            ApprovalUnsigned | ApprovalSignatureInvalid => {
                "the approval was written or changed by someone without the approver's key, or the key given is not counsel's; nothing acts on it until counsel signs again with custos approve"
            }
            RemoteMissing => {
                "upload again (custos upload resumes); if it was stored before, someone deleted it: check the store's access logs"
            }
            RemoteMismatch => {
                "the stored object is not what was sealed; check the store's version history and access logs"
            }
            RemoteReceiptMissing => "re-run custos upload: it stores the receipt beside the export",
            RemoteReceiptMismatch => {
                "one of the two receipts was changed (the stored one is under the store's lock); compare them and check their signatures"
            }
            RemoteUnexpected => {
                "it is not part of the evidence; find out who wrote it (access logs)"
            }
            ChainBroken => {
                "the earlier bag is not the one this bag was made after (changed, re-sealed or another bag), or the chain holds a recording twice; compare the bags with known-good copies"
            }
            ChainPreviousDamaged => {
                "the earlier bag of the chain fails verification: run custos verify on it and restore it from a known-good copy"
            }
        }
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(s)) => f.write_str(&s),
            _ => write!(f, "{self:?}"),
        }
    }
}

/// One problem: what, where, what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The kind of problem.
    pub kind: FindingKind,
    /// The file or item it concerns.
    pub r#where: String,
    /// What is wrong.
    pub what: String,
    /// What to do about it ([`FindingKind::action`]).
    pub action: &'static str,
}

impl Finding {
    /// A finding of `kind` at `where`.
    pub fn new(kind: FindingKind, r#where: impl Into<String>, what: impl Into<String>) -> Finding {
        Finding {
            kind,
            r#where: r#where.into(),
            what: what.into(),
            action: kind.action(),
        }
    }
}

/// Collects findings as the checks run.
#[derive(Debug, Default)]
pub struct Findings(Vec<Finding>);

impl Findings {
    /// Records one.
    pub fn push(&mut self, kind: FindingKind, r#where: impl Into<String>, what: impl Into<String>) {
        self.0.push(Finding::new(kind, r#where, what));
    }

    /// Records one already made.
    pub fn add(&mut self, f: Finding) {
        self.0.push(f);
    }

    /// Whether any is of `kind`.
    pub fn any(&self, kind: FindingKind) -> bool {
        self.0.iter().any(|f| f.kind == kind)
    }

    /// All of them, in the order found.
    pub fn into_vec(self) -> Vec<Finding> {
        self.0
    }
}

/// A path for a message: lossless for UTF-8, escaped otherwise, never with a character that
/// changes how the text around it is shown (crate::shown).
pub fn shown(name: &std::ffi::OsStr) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for chunk in name.as_encoded_bytes().utf8_chunks() {
        out.push_str(&crate::shown::text(chunk.valid()));
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_in_kebab_case_with_their_action() {
        let f = Finding::new(FindingKind::PayloadHashMismatch, "data/x", "changed");
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["kind"], "payload-hash-mismatch");
        assert_eq!(v["action"], FindingKind::PayloadHashMismatch.action());
        assert_eq!(
            serde_json::to_value(FindingKind::RemoteReceiptMismatch).unwrap(),
            "remote-receipt-mismatch"
        );
    }

    #[test]
    fn shown_escapes_what_a_terminal_would_hide() {
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(
            shown(std::ffi::OsStr::from_bytes(b"a\xffb\x1bc")),
            "a\\xffb\\u{1b}c"
        );
    }
}
