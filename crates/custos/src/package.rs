//! The BagIt 1.0 writer (RFC 8493): `bagit.txt`, `bag-info.txt`, `manifest-sha256.txt` over
//! every payload file under `data/`, and `tagmanifest-sha256.txt` over the tag files. Files are
//! listed in byte order of their paths, so the same payload gives the same manifests.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::fetch::write_durably;

/// Every regular file under `root/data`, as (path relative to `root` with `/`, absolute path),
/// in [`walk_payload`]'s order.
pub fn payload_files(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    walk_payload(root, &mut |rel, abs| {
        out.push((rel.to_owned(), abs.to_path_buf()));
        Ok(())
    })?;
    Ok(out)
}

/// Walks the payload (`data/`) in a fixed order — each directory's entries sorted by name —
/// calling `f(path under the root, path)` for every file, without listing the whole tree first.
pub fn walk_payload(root: &Path, f: &mut dyn FnMut(&str, &Path) -> Result<()>) -> Result<()> {
    fn walk(root: &Path, dir: &Path, f: &mut dyn FnMut(&str, &Path) -> Result<()>) -> Result<()> {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let ft = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
            entries.push((entry.file_name(), ft));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, ft) in entries {
            let path = dir.join(&name);
            if ft.is_dir() {
                walk(root, &path, f)?;
            } else if ft.is_file() {
                let rel = path
                    .strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .replace('\\', "/");
                f(&rel, &path)?;
            }
        }
        Ok(())
    }
    walk(root, &root.join("data"), f)
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

/// The SHA-256 and size already known for a payload file (path under the bag root), if any.
pub type Known<'a> = &'a dyn Fn(&str) -> Result<Option<(String, u64)>>;

/// Writes the bag's tag files. `known` gives hashes already computed (the recordings, hashed
/// as they were downloaded) by relative path; every other payload file is hashed here.
/// `info` is the bag-info labels after Payload-Oxum and Bagging-Date, in order. The manifests
/// are written as the payload is walked (each directory sorted by name), never held whole.
pub fn write_bag(
    root: &Path,
    known: Known<'_>,
    info: &[(&str, String)],
    bagging_date: &str,
) -> Result<PayloadSummary> {
    use std::io::Write;
    // Both lists are written as the payload is walked, never held whole.
    let open = |name: &str| -> Result<(PathBuf, std::io::BufWriter<std::fs::File>)> {
        let tmp = root.join(format!("{name}.tmp"));
        let f = crate::fetch::create_file(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok((tmp, std::io::BufWriter::new(f)))
    };
    let (manifest_tmp, mut manifest) = open("manifest-sha256.txt")?;
    // The same list for hashdeep: audit from the bag root with
    // `hashdeep -c sha256 -r -l -a -k hashdeep-sha256.txt data`.
    let (hashdeep_tmp, mut hashdeep) = open("hashdeep-sha256.txt")?;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| Error::io(&p, e)
    };
    write!(
        hashdeep,
        "%%%% HASHDEEP-1.0\n%%%% size,sha256,filename\n## Written by custos {}; audit from the bag root with:\n## $ hashdeep -c sha256 -r -l -a -k hashdeep-sha256.txt data\n## \n",
        env!("CARGO_PKG_VERSION")
    )
    .map_err(io(&hashdeep_tmp))?;
    let mut bytes = 0u64;
    let mut files = 0u64;
    walk_payload(root, &mut |rel, abs| {
        let (sha, n) = match known(rel)? {
            Some(k) => k,
            None => sha256_file(abs)?,
        };
        bytes += n;
        files += 1;
        writeln!(manifest, "{sha}  {rel}").map_err(io(&manifest_tmp))?;
        writeln!(hashdeep, "{n},{sha},{rel}").map_err(io(&hashdeep_tmp))?;
        Ok(())
    })?;
    for (tmp, w, name) in [
        (&manifest_tmp, manifest, "manifest-sha256.txt"),
        (&hashdeep_tmp, hashdeep, "hashdeep-sha256.txt"),
    ] {
        let f = w.into_inner().map_err(|e| Error::io(tmp, e.into_error()))?;
        f.sync_all().map_err(io(tmp))?;
        std::fs::rename(tmp, root.join(name)).map_err(io(tmp))?;
    }
    write_durably(
        &root.join("bagit.txt"),
        b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
    )?;
    let mut bag_info = format!("Bagging-Date: {bagging_date}\nPayload-Oxum: {bytes}.{files}\n");
    for (k, v) in info {
        // Values are single lines: a newline would forge another label.
        bag_info.push_str(&format!("{k}: {}\n", v.replace(['\r', '\n'], " ")));
    }
    write_durably(&root.join("bag-info.txt"), bag_info.as_bytes())?;
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
    Ok(PayloadSummary { files, bytes })
}

/// What the payload holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadSummary {
    /// Files under data/.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
}

/// The lines of the bag's manifest `name` (`manifest-sha256.txt`, `tagmanifest-sha256.txt`),
/// as written by [`write_bag`]: `(path, sha256)`, in file order. Strict: a line that is not
/// `<64 hex>  <path>` is an error naming it.
pub fn read_manifest(
    root: &Path,
    name: &str,
) -> std::result::Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(root.join(name)).map_err(|e| format!("{name}: {e}"))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| match line.split_once("  ") {
            Some((sha, rel)) if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok((rel.to_owned(), sha.to_ascii_lowercase()))
            }
            _ => Err(format!("{name} line {}: not '<sha256>  <path>'", i + 1)),
        })
        .collect()
}

/// Checks a bag as `bagit.py --validate` would: every line of `manifest-sha256.txt` and
/// `tagmanifest-sha256.txt` matches its file, every payload file is listed, and Payload-Oxum
/// holds. Returns the number of payload files. (The full `custos verify` is stricter.)
pub fn validate_bag(root: &Path) -> std::result::Result<u64, String> {
    let read =
        |name: &str| std::fs::read_to_string(root.join(name)).map_err(|e| format!("{name}: {e}"));
    let check = |name: &str| -> std::result::Result<Vec<String>, String> {
        let mut seen = Vec::new();
        for (rel, sha) in read_manifest(root, name)? {
            let (got, _) = sha256_file(&root.join(&rel)).map_err(|e| e.to_string())?;
            if got != sha {
                return Err(format!(
                    "{rel}: SHA-256 {got} does not match {name} ({sha})"
                ));
            }
            seen.push(rel);
        }
        Ok(seen)
    };
    let listed = check("manifest-sha256.txt")?;
    check("tagmanifest-sha256.txt")?;
    let files = payload_files(root).map_err(|e| e.to_string())?;
    let mut on_disk: Vec<String> = files.iter().map(|(r, _)| r.clone()).collect();
    on_disk.sort();
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
            &|_| Ok(None),
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
