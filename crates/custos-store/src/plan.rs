//! What an upload sends: every file of a sealed export, with the SHA-256 the bag sealed it with
//! (not one computed now). S3 checks the bytes of a single PUT against that hash, so a file
//! changed since sealing is refused by the store rather than preserved; for multipart uploads
//! and Azure, custos hashes the file while preparing the upload and does not send a mismatch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One file to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Bag-relative path, `/`-separated (`data/recordings/c/r.wav`, `bagit.txt`).
    pub rel: String,
    /// The file on disk.
    pub path: PathBuf,
    /// Its size now.
    pub size: u64,
    /// SHA-256 (hex) the bag sealed it with, or (for the signature, which no manifest lists)
    /// computed now.
    pub sha256: String,
    /// `manifest-sha256.txt`, `tagmanifest-sha256.txt` or `computed`.
    pub source: &'static str,
}

/// The sealed export, as an upload sees it.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The files, payload first, then the tag files, the tag manifest and the signature last
    /// (so a partial copy never looks sealed).
    pub items: Vec<Item>,
    /// `Export-Id` from bag-info.txt.
    pub export_id: String,
    /// `External-Identifier` (the matter) from bag-info.txt.
    pub matter: Option<String>,
    /// `Custody-Log-Head` from bag-info.txt.
    pub custody_log_head: String,
    /// SHA-256 of tagmanifest-sha256.txt now: what pins every tag file and, through the payload
    /// manifest, every payload file.
    pub tag_manifest_sha256: String,
    /// `Payload-Oxum`.
    pub payload_oxum: String,
}

impl Plan {
    /// Total bytes.
    pub fn bytes(&self) -> u64 {
        self.items.iter().map(|i| i.size).sum()
    }
}

fn parse_manifest(root: &Path, name: &str) -> Result<Vec<(String, String)>, String> {
    custos::package::read_manifest(root, name).map_err(|e| {
        format!("{e}; is this a sealed custos export? (run `custos export` to finish it)")
    })
}

/// A relative path from a manifest that stays inside the bag.
fn safe_rel(rel: &str) -> bool {
    !rel.is_empty()
        && !rel.starts_with('/')
        && !rel.contains('\\')
        && !rel.chars().any(|c| c.is_control())
        && rel
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
}

/// Reads the sealed export at `root`. Refuses an unsealed or damaged one: the tag files must
/// match the tag manifest (they are small) and every payload file must exist with a size.
pub fn plan(root: &Path) -> Result<Plan, crate::error::StoreError> {
    read_plan(root).map_err(crate::error::StoreError::Bag)
}

fn read_plan(root: &Path) -> Result<Plan, String> {
    let tag = parse_manifest(root, "tagmanifest-sha256.txt")?;
    let manifest = parse_manifest(root, "manifest-sha256.txt")?;
    let mut items = Vec::with_capacity(manifest.len() + tag.len() + 2);
    for (rel, sha, source) in manifest
        .iter()
        .map(|(r, s)| (r, s, "manifest-sha256.txt"))
        .chain(tag.iter().map(|(r, s)| (r, s, "tagmanifest-sha256.txt")))
    {
        if !safe_rel(rel) {
            return Err(format!("{source}: unsafe path '{rel}'"));
        }
        let path = root.join(rel);
        let size = std::fs::metadata(&path)
            .map_err(|e| format!("{rel}: {e} (listed in {source}); run `custos verify`"))?
            .len();
        if source == "tagmanifest-sha256.txt" {
            let (now, _) = custos::durable::sha256_file(&path).map_err(|e| e.to_string())?;
            if &now != sha {
                return Err(format!(
                    "{rel} changed since the bag was sealed (SHA-256 {now}, sealed {sha}); refusing to upload; run `custos verify`"
                ));
            }
        }
        items.push(Item {
            rel: rel.clone(),
            path,
            size,
            sha256: sha.clone(),
            source,
        });
    }
    for (rel, source) in [
        ("tagmanifest-sha256.txt", "computed"),
        ("tagmanifest-sha256.txt.minisig", "computed"),
    ] {
        let path = root.join(rel);
        if !path.exists() {
            continue;
        }
        let (sha, size) = custos::durable::sha256_file(&path).map_err(|e| e.to_string())?;
        items.push(Item {
            rel: rel.into(),
            path,
            size,
            sha256: sha.hex(),
            source,
        });
    }
    let tag_manifest_sha256 = items
        .iter()
        .find(|i| i.rel == "tagmanifest-sha256.txt")
        .map(|i| i.sha256.clone())
        .ok_or("no tagmanifest-sha256.txt")?;
    let info_text = std::fs::read_to_string(root.join("bag-info.txt"))
        .map_err(|e| format!("bag-info.txt: {e}"))?;
    let info: BTreeMap<&str, &str> = info_text
        .lines()
        .filter_map(|l| l.split_once(": "))
        .collect();
    let need = |k: &str| {
        info.get(k)
            .map(|v| v.to_string())
            .ok_or_else(|| format!("bag-info.txt has no {k}; is this a custos export?"))
    };
    Ok(Plan {
        export_id: need("Export-Id")?,
        matter: info.get("External-Identifier").map(|s| s.to_string()),
        custody_log_head: need("Custody-Log-Head")?,
        payload_oxum: need("Payload-Oxum")?,
        tag_manifest_sha256,
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::safe_rel;

    #[test]
    fn manifest_paths_must_stay_inside_the_bag() {
        assert!(safe_rel("data/recordings/c/r.wav"));
        assert!(safe_rel("bagit.txt"));
        for bad in [
            "",
            "/etc/passwd",
            "data/../../x",
            "./x",
            "a//b",
            "a\\b",
            "a\nb",
        ] {
            assert!(!safe_rel(bad), "{bad:?}");
        }
    }
}
