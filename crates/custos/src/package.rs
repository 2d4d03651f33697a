//! The BagIt 1.0 writer (RFC 8493): `bagit.txt`, `bag-info.txt`, `manifest-sha256.txt` over
//! every payload file under `data/`, and `tagmanifest-sha256.txt` over the tag files. Files are
//! listed in byte order of their paths, so the same payload gives the same manifests.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::fetch::write_durably;

/// Every regular file under `root/data`, as (path relative to `root` with `/`, absolute path).
pub fn payload_files(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("data")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let path = entry.path();
            let ft = entry.file_type().map_err(|e| Error::io(&path, e))?;
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                let rel = path
                    .strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((rel, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// Writes the bag's tag files. `known` gives hashes already computed (the recordings, hashed
/// as they were downloaded) by relative path; every other payload file is hashed here.
/// `info` is the bag-info labels after Payload-Oxum and Bagging-Date, in order.
pub fn write_bag(
    root: &Path,
    known: &BTreeMap<String, (String, u64)>,
    info: &[(&str, String)],
    bagging_date: &str,
) -> Result<PayloadSummary> {
    let mut manifest = String::new();
    // The same list for hashdeep: audit from the bag root with
    // `hashdeep -c sha256 -r -l -a -k hashdeep-sha256.txt data`.
    let mut hashdeep = format!(
        "%%%% HASHDEEP-1.0\n%%%% size,sha256,filename\n## Written by custos {}; audit from the bag root with:\n## $ hashdeep -c sha256 -r -l -a -k hashdeep-sha256.txt data\n## \n",
        env!("CARGO_PKG_VERSION")
    );
    let mut bytes = 0u64;
    let files = payload_files(root)?;
    for (rel, abs) in &files {
        let (sha, n) = match known.get(rel) {
            Some(k) => k.clone(),
            None => sha256_file(abs)?,
        };
        bytes += n;
        manifest.push_str(&format!("{sha}  {rel}\n"));
        hashdeep.push_str(&format!("{n},{sha},{rel}\n"));
    }
    write_durably(
        &root.join("bagit.txt"),
        b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
    )?;
    let mut bag_info = format!(
        "Bagging-Date: {bagging_date}\nPayload-Oxum: {bytes}.{}\n",
        files.len()
    );
    for (k, v) in info {
        // Values are single lines: a newline would forge another label.
        bag_info.push_str(&format!("{k}: {}\n", v.replace(['\r', '\n'], " ")));
    }
    write_durably(&root.join("bag-info.txt"), bag_info.as_bytes())?;
    write_durably(&root.join("manifest-sha256.txt"), manifest.as_bytes())?;
    write_durably(&root.join("hashdeep-sha256.txt"), hashdeep.as_bytes())?;
    let mut tags = String::new();
    for name in [
        "bag-info.txt",
        "bagit.txt",
        "hashdeep-sha256.txt",
        "manifest-sha256.txt",
    ] {
        let (sha, _) = sha256_file(&root.join(name))?;
        tags.push_str(&format!("{sha}  {name}\n"));
    }
    write_durably(&root.join("tagmanifest-sha256.txt"), tags.as_bytes())?;
    Ok(PayloadSummary {
        files: files.len() as u64,
        bytes,
    })
}

/// What the payload holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadSummary {
    /// Files under data/.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
}

/// Checks a bag as `bagit.py --validate` would: every line of `manifest-sha256.txt` and
/// `tagmanifest-sha256.txt` matches its file, every payload file is listed, and Payload-Oxum
/// holds. Returns the number of payload files. (The full `custos verify` is stricter.)
pub fn validate_bag(root: &Path) -> std::result::Result<u64, String> {
    let read =
        |name: &str| std::fs::read_to_string(root.join(name)).map_err(|e| format!("{name}: {e}"));
    let check = |list: &str, name: &str| -> std::result::Result<Vec<String>, String> {
        let mut seen = Vec::new();
        for line in list.lines() {
            let (sha, rel) = line
                .split_once("  ")
                .ok_or_else(|| format!("{name}: malformed line '{line}'"))?;
            let (got, _) = sha256_file(&root.join(rel)).map_err(|e| e.to_string())?;
            if got != sha {
                return Err(format!(
                    "{rel}: SHA-256 {got} does not match {name} ({sha})"
                ));
            }
            seen.push(rel.to_owned());
        }
        Ok(seen)
    };
    let listed = check(&read("manifest-sha256.txt")?, "manifest-sha256.txt")?;
    check(&read("tagmanifest-sha256.txt")?, "tagmanifest-sha256.txt")?;
    let files = payload_files(root).map_err(|e| e.to_string())?;
    let on_disk: Vec<String> = files.iter().map(|(r, _)| r.clone()).collect();
    let mut sorted = listed.clone();
    sorted.sort();
    if sorted != on_disk {
        return Err("the payload and manifest-sha256.txt list different files".into());
    }
    let bytes: u64 = files
        .iter()
        .map(|(_, p)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let oxum = format!("Payload-Oxum: {bytes}.{}", files.len());
    if !read("bag-info.txt")?.lines().any(|l| l == oxum) {
        return Err(format!("bag-info.txt does not state {oxum}"));
    }
    Ok(files.len() as u64)
}

/// Recording id → SHA-256 of every `Exported` row of `data/chain_of_custody.csv`.
pub fn exported_hashes(root: &Path) -> std::result::Result<BTreeMap<String, String>, String> {
    let path = root.join("data/chain_of_custody.csv");
    let mut r = csv::Reader::from_path(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BTreeMap::new();
    for row in r.records() {
        let row = row.map_err(|e| format!("{}: {e}", path.display()))?;
        if row.get(6) == Some("Exported") {
            out.insert(
                row.get(0).unwrap_or("").to_owned(),
                row.get(2).unwrap_or("").to_owned(),
            );
        }
    }
    Ok(out)
}

/// Recording id → outcome of every row of `data/chain_of_custody.csv`.
pub fn outcomes(root: &Path) -> std::result::Result<BTreeMap<String, String>, String> {
    let path = root.join("data/chain_of_custody.csv");
    let mut r = csv::Reader::from_path(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BTreeMap::new();
    for row in r.records() {
        let row = row.map_err(|e| format!("{}: {e}", path.display()))?;
        out.insert(
            row.get(0).unwrap_or("").to_owned(),
            row.get(6).unwrap_or("").to_owned(),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_bag_with_oxum_and_sorted_manifests() {
        let root = std::env::temp_dir().join(format!("custos-bag-{}", std::process::id()));
        std::fs::create_dir_all(root.join("data/b")).unwrap();
        std::fs::write(root.join("data/b/x.txt"), "hello").unwrap();
        std::fs::write(root.join("data/a.txt"), "hi").unwrap();
        let s = write_bag(
            &root,
            &BTreeMap::new(),
            &[("External-Identifier", "M-1\nForged: yes".into())],
            "2026-11-26",
        )
        .unwrap();
        assert_eq!(s, PayloadSummary { files: 2, bytes: 7 });
        let m = std::fs::read_to_string(root.join("manifest-sha256.txt")).unwrap();
        let lines: Vec<&str> = m.lines().collect();
        assert!(lines[0].ends_with("  data/a.txt") && lines[1].ends_with("  data/b/x.txt"));
        assert!(
            lines[1]
                .starts_with("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        );
        let info = std::fs::read_to_string(root.join("bag-info.txt")).unwrap();
        assert!(info.contains("Payload-Oxum: 7.2\n"));
        assert!(info.contains("External-Identifier: M-1 Forged: yes\n"));
        assert_eq!(
            std::fs::read_to_string(root.join("tagmanifest-sha256.txt"))
                .unwrap()
                .lines()
                .count(),
            4
        );
        let known = std::fs::read_to_string(root.join("hashdeep-sha256.txt")).unwrap();
        assert!(known.starts_with("%%%% HASHDEEP-1.0\n%%%% size,sha256,filename\n"));
        assert!(known.contains(
            "\n5,2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824,data/b/x.txt\n"
        ));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
