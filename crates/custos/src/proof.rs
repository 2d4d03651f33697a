//! Inclusion proofs: one recording, shown to be exactly the one in a signed export, without
//! handing over the rest (docs/formats.md, "Inclusion proof").
//!
//! A proof carries the recording's payload-manifest line, its place in the Merkle tree over the
//! manifest (crate::merkle) with the audit path, and, verbatim, the three small files that tie
//! the tree's root to the signer: `bag-info.txt` (which states the root), the tag manifest (which
//! states bag-info's SHA-256) and its minisign signature. Checking it needs the one recording,
//! the proof and the signer's public key.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::digest::Sha256;
use crate::merkle::{audit_path, leaf_hash, root, root_from_path};
use crate::package::{MERKLE_ROOT_LABEL, MERKLE_SIZE_LABEL};
use crate::verify::{Package, files};

/// The format tag of a proof file.
pub const FORMAT: &str = "custos-inclusion-proof/1";

/// The proof file (`custos prove … --out proof.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Proof {
    /// [`FORMAT`].
    pub format: String,
    /// The recording.
    pub recording_id: String,
    /// Its conversation.
    pub conversation_id: String,
    /// The manifest line of the recording's file: `<sha256>  <bag path>`.
    pub entry: String,
    /// The entry's place among the manifest's lines sorted by path, from 0.
    pub leaf_index: usize,
    /// The number of manifest lines (leaves).
    pub tree_size: usize,
    /// Sibling hashes from the leaf up (RFC 6962 §2.1.1), hex.
    pub audit_path: Vec<String>,
    /// The tree's root, hex, as bag-info.txt states it.
    pub root: String,
    /// `bag-info.txt`, verbatim.
    pub bag_info: String,
    /// `tagmanifest-sha256.txt`, verbatim.
    pub tag_manifest: String,
    /// `tagmanifest-sha256.txt.minisig`, verbatim, if the export is signed.
    pub signature: Option<String>,
}

/// Why a proof cannot be made or does not hold.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// The export cannot give a proof (not sealed with a Merkle root, no such recording).
    #[error("{0}")]
    Export(String),
    /// The proof does not hold: what fails.
    #[error("the proof does not hold: {0}")]
    Fails(String),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The largest proof file read (a proof is a few kilobytes: bag-info, the tag manifest, a
/// signature and ~20 hashes).
pub const MAX_PROOF_BYTES: u64 = 16 << 20;

/// A regular file (never a FIFO or device, which could block for ever), opened.
fn open_regular(path: &Path) -> Result<(std::fs::File, u64), ProofError> {
    let io = |source| ProofError::Io {
        path: path.to_path_buf(),
        source,
    };
    let m = std::fs::metadata(path).map_err(io)?;
    if !m.is_file() {
        return Err(ProofError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other("not a regular file; refused"),
        });
    }
    Ok((std::fs::File::open(path).map_err(io)?, m.len()))
}

/// Reads a proof file handed over by someone else: a regular file of at most
/// [`MAX_PROOF_BYTES`], in the proof format.
pub fn read_proof(path: &Path) -> Result<Proof, ProofError> {
    use std::io::Read;
    let (f, len) = open_regular(path)?;
    if len > MAX_PROOF_BYTES {
        return Err(ProofError::Fails(format!(
            "{} is {len} bytes; a proof is at most {MAX_PROOF_BYTES}",
            path.display()
        )));
    }
    let mut bytes = Vec::new();
    f.take(MAX_PROOF_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ProofError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ProofError::Fails(format!("{}: not a proof: {e}", path.display())))
}

fn label<'a>(bag_info: &'a str, name: &str) -> Option<&'a str> {
    bag_info
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// The proof that `recording_id`'s file belongs to the sealed export `pkg` (opened verified).
/// The export's manifest must give the root its bag-info states, and the file must hash as its
/// line says.
pub fn prove(pkg: &Package, recording_id: &str) -> Result<Proof, ProofError> {
    let export = |m: String| ProofError::Export(m);
    let rows = pkg.custody_rows().map_err(|e| export(e.to_string()))?;
    let row = rows
        .iter()
        .find(|r| r.recording_id == recording_id && r.outcome == "Exported")
        .ok_or_else(|| {
            export(format!(
                "{} is not an Exported recording of this export (only kept evidence can be proven)",
                crate::shown::text(recording_id)
            ))
        })?;
    let read = |rel: &str| {
        pkg.read_text(rel, 1 << 30)
            .map_err(|e| export(e.to_string()))
    };
    let bag_info = read(files::BAG_INFO)?;
    let stated_root = label(&bag_info, MERKLE_ROOT_LABEL).ok_or_else(|| {
        export(format!(
            "bag-info.txt has no {MERKLE_ROOT_LABEL}: the export was sealed before custos made Merkle roots; export it again to prove recordings of it"
        ))
    })?;
    let mut entries: Vec<(String, String)> = read(files::MANIFEST)?
        .lines()
        .filter_map(|l| {
            l.split_once("  ")
                .map(|(_, p)| (p.to_owned(), l.to_owned()))
        })
        .collect();
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let lines: Vec<String> = entries.iter().map(|(_, l)| l.clone()).collect();
    let tree_root = root(&lines).hex();
    if tree_root != stated_root {
        return Err(export(format!(
            "the payload manifest gives the root {tree_root}, bag-info.txt states {stated_root}: the export changed after sealing; run custos verify"
        )));
    }
    let index = entries
        .iter()
        .position(|(p, _)| *p == row.file_name)
        .ok_or_else(|| export(format!("{} is not in the payload manifest", row.file_name)))?;
    pkg.check_file(&row.file_name)
        .map_err(|e| export(e.to_string()))?;
    Ok(Proof {
        format: FORMAT.into(),
        recording_id: recording_id.into(),
        conversation_id: row.conversation_id.clone(),
        entry: lines[index].clone(),
        leaf_index: index,
        tree_size: lines.len(),
        audit_path: audit_path(&lines, index).iter().map(Sha256::hex).collect(),
        root: tree_root,
        bag_info,
        tag_manifest: read(files::TAG_MANIFEST)?,
        signature: pkg.signature_text().map_err(|e| export(e.to_string()))?,
    })
}

/// What a proof that holds shows.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Proven {
    /// The recording's path in the export.
    pub file: String,
    /// Its SHA-256.
    pub sha256: String,
    /// The export's root.
    pub root: String,
    /// The signature's trusted comment (matter, export id, custody-log head), when a public
    /// key checked the signature; `None`: origin not checked.
    pub signed: Option<String>,
}

/// Checks `file` against `proof`: its hash is the entry's, the entry and audit path lead to the
/// root bag-info.txt states (with the tree size), the tag manifest states bag-info's hash, and,
/// with `pubkey`, the signature over the tag manifest is the key holder's.
pub fn check(file: &Path, proof: &Proof, pubkey: Option<&Path>) -> Result<Proven, ProofError> {
    let fails = |m: String| ProofError::Fails(m);
    if proof.format != FORMAT {
        return Err(fails(format!(
            "format {:?}, expected {FORMAT}",
            proof.format
        )));
    }
    let (sum, path) = proof
        .entry
        .split_once("  ")
        .ok_or_else(|| fails("the entry is not '<sha256>  <path>'".into()))?;
    open_regular(file)?;
    let (got, _) = crate::durable::sha256_file(file).map_err(|e| fails(e.to_string()))?;
    if got != sum {
        return Err(fails(format!(
            "{} hashes to {got}; the proof is for {path} with SHA-256 {sum}",
            file.display()
        )));
    }
    let siblings = proof
        .audit_path
        .iter()
        .map(|h| h.parse::<Sha256>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fails(e.to_string()))?;
    let leaf = leaf_hash(&proof.entry);
    match root_from_path(leaf, proof.leaf_index, proof.tree_size, &siblings) {
        Some(r) if r == proof.root.as_str() => {}
        _ => return Err(fails("the audit path does not lead to the root".into())),
    }
    if label(&proof.bag_info, MERKLE_ROOT_LABEL) != Some(proof.root.as_str())
        || label(&proof.bag_info, MERKLE_SIZE_LABEL) != Some(proof.tree_size.to_string().as_str())
    {
        return Err(fails(format!(
            "bag-info.txt does not state this root and tree size ({MERKLE_ROOT_LABEL}, {MERKLE_SIZE_LABEL})"
        )));
    }
    let info_sha = Sha256::of(proof.bag_info.as_bytes());
    if !proof
        .tag_manifest
        .lines()
        .any(|l| l == format!("{info_sha}  bag-info.txt"))
    {
        return Err(fails(
            "the tag manifest does not state this bag-info.txt's SHA-256".into(),
        ));
    }
    let signed = match pubkey {
        None => None,
        Some(k) => Some(check_signature(proof, k)?),
    };
    Ok(Proven {
        file: path.to_owned(),
        sha256: sum.to_owned(),
        root: proof.root.clone(),
        signed,
    })
}

/// The minisign signature over the tag manifest, by the holder of `pubkey`: its trusted comment.
fn check_signature(proof: &Proof, pubkey: &Path) -> Result<String, ProofError> {
    let fails = |m: String| ProofError::Fails(m);
    let sig = proof.signature.as_deref().ok_or_else(|| {
        fails("the proof carries no signature, so nothing shows who sealed it".into())
    })?;
    let pk = minisign::PublicKey::from_file(pubkey).map_err(|e| {
        fails(format!(
            "{}: not a minisign public key: {e}",
            pubkey.display()
        ))
    })?;
    let sbox = minisign::SignatureBox::from_string(sig)
        .map_err(|e| fails(format!("the signature is not minisign's: {e}")))?;
    minisign::verify(
        &pk,
        &sbox,
        std::io::Cursor::new(proof.tag_manifest.as_bytes()),
        true,
        false,
        false,
    )
    .map_err(|e| {
        fails(format!(
            "the signature over the tag manifest does not verify with this key: {e}"
        ))
    })?;
    Ok(sbox.trusted_comment().unwrap_or_default())
}
