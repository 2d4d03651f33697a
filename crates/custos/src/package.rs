//! The BagIt 1.0 writer (RFC 8493): `bagit.txt`, `bag-info.txt`, `manifest-sha256.txt` over
//! every payload file under `data/`, and `tagmanifest-sha256.txt` over the tag files. Files are
//! listed in byte order of their paths, so the same payload gives the same manifests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::digest::Sha256;
use crate::durable::{sha256_file, write_durably};
use crate::error::{Error, Result};

/// The files of an export package, by their path under the bag root.
pub mod files {
    /// The BagIt declaration.
    pub const BAGIT: &str = "bagit.txt";
    /// The bag's labels.
    pub const BAG_INFO: &str = "bag-info.txt";
    /// The payload manifest.
    pub const MANIFEST: &str = "manifest-sha256.txt";
    /// The tag manifest: what the signature covers.
    pub const TAG_MANIFEST: &str = "tagmanifest-sha256.txt";
    /// The minisign signature over [`TAG_MANIFEST`].
    pub const SIGNATURE: &str = "tagmanifest-sha256.txt.minisig";
    /// The query, recorded and hashed before anything was listed.
    pub const QUERY: &str = "data/query.json";
    /// The sealed work list.
    pub const MANIFEST_CSV: &str = "data/manifest.csv";
    /// One row per manifest item, with its outcome.
    pub const CUSTODY_CSV: &str = "data/chain_of_custody.csv";
    /// Who spoke, when and why, per manifest item.
    pub const CALL_FACTS: &str = "data/call_facts.csv";
    /// The hash-chained custody log.
    pub const CUSTODY_LOG: &str = "data/custody_log.jsonl";
    /// The set `--protect` put under deletion protection.
    pub const PROTECTION: &str = "data/protection.json";
    /// An increment's link to the bag before it.
    pub const CHAIN: &str = "data/chain.json";
    /// Every recording the earlier bags of a chain exported.
    pub const CHAIN_PRIOR: &str = "data/chain_prior_exported.txt";
}

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

/// Entries of one directory the walk holds at most: a larger directory (`data/metadata/` has a
/// file per recording) is read in passes, each taking the next this many names in order.
const WALK_HELD: usize = 32_768;

/// A directory entry as the walk orders it: by name, a directory's compared as if it ended
/// in `/`.
#[derive(Clone)]
struct Entry {
    name: std::ffi::OsString,
    dir: bool,
    file: bool,
}

impl Entry {
    fn key(&self) -> impl Iterator<Item = &u8> {
        let slash: &'static [u8] = if self.dir { b"/" } else { b"" };
        self.name.as_encoded_bytes().iter().chain(slash)
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(other.key())
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Entry {}

/// Walks the payload (`data/`) in the byte order of the files' paths, calling `f(path under
/// the root, path)` for every file, without listing the whole tree first: each directory's
/// entries are taken in order of name, a directory's name compared as if it ended in `/`, so
/// that `data/a.csv` comes before `data/a/x`, as their paths do. At most [`WALK_HELD`] names of
/// a directory are held at once: a larger one is read again for each next batch, so the walk's
/// memory does not grow with the export.
pub fn walk_payload(root: &Path, f: &mut dyn FnMut(&str, &Path) -> Result<()>) -> Result<()> {
    walk_held(root, WALK_HELD, f)
}

/// Calls `f` with the key of every entry of `dir` that `key` gives one for, in the keys' order,
/// holding at most `held` keys at once: a larger directory is read again for each next batch
/// (each pass takes the least keys above the last one taken), so memory does not grow with the
/// directory. Keys must be unique within the directory.
pub fn in_key_order<K: Ord + Clone>(
    dir: &Path,
    held: usize,
    key: &mut dyn FnMut(&std::fs::DirEntry) -> Result<Option<K>>,
    f: &mut dyn FnMut(K) -> Result<()>,
) -> Result<()> {
    let held = held.max(1);
    let mut after: Option<K> = None;
    loop {
        // The greatest of those kept so far is on top, to make room for a smaller one.
        let mut kept = std::collections::BinaryHeap::with_capacity(held.min(1024) + 1);
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let Some(k) = key(&entry)? else { continue };
            if after.as_ref().is_some_and(|a| k <= *a) {
                continue;
            }
            if kept.len() < held {
                kept.push(k);
            } else if kept.peek().is_some_and(|top| k < *top) {
                kept.pop();
                kept.push(k);
            }
        }
        let batch = kept.into_sorted_vec();
        let whole = batch.len() < held;
        after = batch.last().cloned();
        for k in batch {
            f(k)?;
        }
        if whole {
            return Ok(());
        }
    }
}

/// [`walk_payload`], holding at most `held` names of a directory at once.
fn walk_held(root: &Path, held: usize, f: &mut dyn FnMut(&str, &Path) -> Result<()>) -> Result<()> {
    fn walk(
        root: &Path,
        dir: &Path,
        held: usize,
        f: &mut dyn FnMut(&str, &Path) -> Result<()>,
    ) -> Result<()> {
        let mut entry = |entry: &std::fs::DirEntry| {
            let ft = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
            Ok(Some(Entry {
                name: entry.file_name(),
                dir: ft.is_dir(),
                file: ft.is_file(),
            }))
        };
        in_key_order(dir, held, &mut entry, &mut |e: Entry| {
            let path = dir.join(&e.name);
            if e.dir {
                walk(root, &path, held, f)?;
            } else if e.file {
                let rel = path
                    .strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .replace('\\', "/");
                f(&rel, &path)?;
            }
            Ok(())
        })
    }
    walk(root, &root.join("data"), held, f)
}

/// The SHA-256 and size already known for a payload file (path under the bag root), if any.
pub type Known<'a> = &'a dyn Fn(&str) -> Result<Option<(Sha256, u64)>>;

/// The bag-info label holding the root of the Merkle tree over the payload manifest
/// (crate::merkle): signed with the tag manifest, it lets one recording be proven to belong.
pub const MERKLE_ROOT_LABEL: &str = "Payload-Manifest-Merkle-Root-SHA256";
/// The bag-info label holding that tree's number of leaves (manifest lines).
pub const MERKLE_SIZE_LABEL: &str = "Payload-Manifest-Merkle-Leaves";

/// Writes the bag's tag files. `known` gives hashes already computed (the recordings, hashed
/// as they were downloaded) by relative path; every other payload file is hashed here.
/// `info` is the bag-info labels after Payload-Oxum and Bagging-Date, in order. The manifests
/// are written as the payload is walked (in path order), never held whole, and the Merkle
/// root is computed as it goes.
/// `more_tags` runs once bag-info is written and before the tag manifest: it writes further
/// tag files (the report) and names them, for the tag manifest to list.
pub fn write_bag(
    root: &Path,
    known: Known<'_>,
    info: &[(&str, String)],
    bagging_date: &str,
    more_tags: &dyn Fn() -> Result<Vec<&'static str>>,
) -> Result<PayloadSummary> {
    use std::io::Write;
    // Both lists are written as the payload is walked, never held whole.
    let open = |name: &str| -> Result<(PathBuf, std::io::BufWriter<std::fs::File>)> {
        let tmp = root.join(format!("{name}.tmp"));
        let f = crate::durable::create_file(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok((tmp, std::io::BufWriter::new(f)))
    };
    let (manifest_tmp, mut manifest) = open(files::MANIFEST)?;
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
    // The Merkle tree over the manifest (crate::merkle), its leaves in path order: the walk's.
    let mut head = crate::merkle::Head::default();
    let mut last = String::new();
    walk_payload(root, &mut |rel, abs| {
        // A name whose lossy or `\`-converted form breaks the order would give a tree that
        // verification (which sorts the manifest's paths) does not rebuild: refused.
        if files > 0 && last.as_bytes() >= rel.as_bytes() {
            return Err(Error::Config(format!(
                "{rel}: a payload file name out of path order after {last} (not UTF-8, or holding a backslash); the bag is not sealed"
            )));
        }
        last.clear();
        last.push_str(rel);
        let (sha, n) = match known(rel)? {
            Some(k) => k,
            None => sha256_file(abs)?,
        };
        bytes += n;
        files += 1;
        let entry = format!("{sha}  {rel}");
        head.push(crate::merkle::leaf_hash(&entry));
        writeln!(manifest, "{entry}").map_err(io(&manifest_tmp))?;
        writeln!(hashdeep, "{n},{sha},{rel}").map_err(io(&hashdeep_tmp))?;
        Ok(())
    })?;
    for (tmp, w, name) in [
        (&manifest_tmp, manifest, files::MANIFEST),
        (&hashdeep_tmp, hashdeep, "hashdeep-sha256.txt"),
    ] {
        let f = w.into_inner().map_err(|e| Error::io(tmp, e.into_error()))?;
        f.sync_all().map_err(io(tmp))?;
        std::fs::rename(tmp, root.join(name)).map_err(io(tmp))?;
    }
    write_durably(
        &root.join(files::BAGIT),
        b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
    )?;
    let mut bag_info = format!(
        "Bagging-Date: {bagging_date}\nPayload-Oxum: {bytes}.{files}\n{MERKLE_ROOT_LABEL}: {}\n{MERKLE_SIZE_LABEL}: {}\n",
        head.root(),
        head.size()
    );
    for (k, v) in info {
        // Values are single lines: a newline would forge another label.
        bag_info.push_str(&format!("{k}: {}\n", v.replace(['\r', '\n'], " ")));
    }
    write_durably(&root.join(files::BAG_INFO), bag_info.as_bytes())?;
    let mut names = vec![
        files::BAG_INFO,
        files::BAGIT,
        "hashdeep-sha256.txt",
        files::MANIFEST,
    ];
    names.extend(more_tags()?);
    names.sort_unstable();
    let mut tags = String::new();
    for name in names {
        let (sha, _) = sha256_file(&root.join(name))?;
        tags.push_str(&format!("{sha}  {name}\n"));
    }
    write_durably(&root.join(files::TAG_MANIFEST), tags.as_bytes())?;
    Ok(PayloadSummary { files, bytes })
}

/// A BagIt tag file's (bag-info.txt, bagit.txt) `Label: value` lines, in order, with folded continuations; a line that is neither is kept with an
/// empty label (a finding for whoever reads it).
pub fn parse_tags(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            last.1.push(' ');
            last.1.push_str(line.trim());
            continue;
        }
        match line.split_once(':') {
            Some((k, v)) => out.push((k.trim().to_owned(), v.trim().to_owned())),
            None => out.push((String::new(), line.to_owned())),
        }
    }
    out
}

/// Whether writing `path` would write inside the bag at `root` (its parent resolved, links
/// included): a sealed bag is never written into (`custos report --out`, `produce --out`).
pub fn inside_bag(root: &Path, path: &Path) -> bool {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match (root.canonicalize(), parent.canonicalize()) {
        (Ok(root), Ok(parent)) => parent.starts_with(root),
        _ => false,
    }
}

/// What the payload holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadSummary {
    /// Files under data/.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
}

/// Why a bag, or its custody record, could not be read or does not hold.
#[derive(Debug, thiserror::Error)]
pub enum BagError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A manifest line that is not `<sha256>  <path>`.
    #[error("{manifest} line {line}: not '<sha256>  <path>'")]
    Malformed {
        /// The manifest's name.
        manifest: String,
        /// 1-based.
        line: usize,
    },
    /// A file whose SHA-256 is not the manifest's.
    #[error("{path}: SHA-256 {got} does not match {manifest} ({want})")]
    Mismatch {
        /// Path under the bag root.
        path: String,
        /// Its SHA-256 now.
        got: String,
        /// The manifest's.
        want: String,
        /// The manifest's name.
        manifest: String,
    },
    /// The payload on disk and the manifest list different files.
    #[error("the payload and manifest-sha256.txt list different files")]
    Listing,
    /// Payload-Oxum does not describe the payload.
    #[error("bag-info.txt does not state {0}")]
    Oxum(String),
    /// The custody record could not be read.
    #[error("{path}: {why}")]
    Record {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> BagError + '_ {
    move |source| BagError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The lines of the bag's manifest `name` (`manifest-sha256.txt`, `tagmanifest-sha256.txt`),
/// as written by [`write_bag`]: `(path, sha256)`, in file order. Strict: a line that is not
/// `<64 hex>  <path>` is an error naming it.
pub fn read_manifest(
    root: &Path,
    name: &str,
) -> std::result::Result<Vec<(String, String)>, BagError> {
    let path = root.join(name);
    let text = std::fs::read_to_string(&path).map_err(read_error(&path))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| match line.split_once("  ") {
            Some((sha, rel)) if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok((rel.to_owned(), sha.to_ascii_lowercase()))
            }
            _ => Err(BagError::Malformed {
                manifest: name.to_owned(),
                line: i + 1,
            }),
        })
        .collect()
}

/// Checks a bag as `bagit.py --validate` would: every line of `manifest-sha256.txt` and
/// `tagmanifest-sha256.txt` matches its file, every payload file is listed, and Payload-Oxum
/// holds. Returns the number of payload files. (The full `custos verify` is stricter.)
pub fn validate_bag(root: &Path) -> std::result::Result<u64, BagError> {
    let check = |name: &str| -> std::result::Result<Vec<String>, BagError> {
        let mut seen = Vec::new();
        for (rel, sha) in read_manifest(root, name)? {
            let path = root.join(&rel);
            let (got, _) = sha256_file(&path).map_err(|e| match e {
                Error::Io { path, source } => BagError::Io { path, source },
                other => BagError::Io {
                    path: path.clone(),
                    source: std::io::Error::other(other.to_string()),
                },
            })?;
            if got != sha {
                return Err(BagError::Mismatch {
                    path: rel,
                    got: got.hex(),
                    want: sha,
                    manifest: name.to_owned(),
                });
            }
            seen.push(rel);
        }
        Ok(seen)
    };
    let listed = check(files::MANIFEST)?;
    check(files::TAG_MANIFEST)?;
    let data = root.join("data");
    let files = payload_files(root).map_err(|e| BagError::Io {
        path: data.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let mut on_disk: Vec<String> = files.iter().map(|(r, _)| r.clone()).collect();
    on_disk.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    if sorted != on_disk {
        return Err(BagError::Listing);
    }
    let bytes: u64 = files
        .iter()
        .map(|(_, p)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let oxum = format!("Payload-Oxum: {bytes}.{}", files.len());
    let info = root.join(files::BAG_INFO);
    if !std::fs::read_to_string(&info)
        .map_err(read_error(&info))?
        .lines()
        .any(|l| l == oxum)
    {
        return Err(BagError::Oxum(oxum));
    }
    Ok(files.len() as u64)
}

/// One row of `data/chain_of_custody.csv`, read by its header names (docs/formats.md).
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustodyRow {
    /// `Recording_ID`.
    #[serde(rename = "Recording_ID")]
    pub recording_id: String,
    /// `File_Name`.
    #[serde(rename = "File_Name")]
    pub file_name: String,
    /// `SHA256_Hash`.
    #[serde(rename = "SHA256_Hash")]
    pub sha256: String,
    /// `Outcome`.
    pub outcome: String,
    /// `Conversation_ID`.
    #[serde(rename = "Conversation_ID", default)]
    pub conversation_id: String,
}

/// Every row of `data/chain_of_custody.csv`, by header name.
pub fn custody_rows(root: &Path) -> std::result::Result<Vec<CustodyRow>, BagError> {
    let path = root.join(files::CUSTODY_CSV);
    let bad = |why: String| BagError::Record {
        path: path.clone(),
        why,
    };
    let mut r = csv::Reader::from_path(&path).map_err(|e| bad(e.to_string()))?;
    r.deserialize()
        .map(|row| row.map_err(|e| bad(e.to_string())))
        .collect()
}

/// Recording id → SHA-256 of every `Exported` row of `data/chain_of_custody.csv`.
pub fn exported_hashes(root: &Path) -> std::result::Result<BTreeMap<String, String>, BagError> {
    Ok(custody_rows(root)?
        .into_iter()
        .filter(|r| r.outcome == "Exported")
        .map(|r| (r.recording_id, r.sha256))
        .collect())
}

/// Recording id → outcome of every row of `data/chain_of_custody.csv`.
pub fn outcomes(root: &Path) -> std::result::Result<BTreeMap<String, String>, BagError> {
    Ok(custody_rows(root)?
        .into_iter()
        .map(|r| (r.recording_id, r.outcome))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_walked_in_the_byte_order_of_its_paths() {
        let root = std::env::temp_dir().join(format!("custos-walk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for f in [
            "data/a.csv",
            "data/a/x",
            "data/a-b/y",
            "data/a0",
            "data/b/c/d",
            "data/b.txt",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, f).unwrap();
        }
        let mut seen = Vec::new();
        walk_payload(&root, &mut |rel, _| {
            seen.push(rel.to_owned());
            Ok(())
        })
        .unwrap();
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted);
        assert_eq!(seen.len(), 6);
        // Holding one, two or three names at a time (each directory read in passes), the walk
        // is the same.
        for held in [1, 2, 3] {
            let mut again = Vec::new();
            walk_held(&root, held, &mut |rel, _| {
                again.push(rel.to_owned());
                Ok(())
            })
            .unwrap();
            assert_eq!(again, seen, "held {held}");
        }
        // The tree head written is the one verification rebuilds from the sorted manifest.
        write_bag(&root, &|_| Ok(None), &[], "2026-01-01", &|| Ok(Vec::new())).unwrap();
        let info = std::fs::read_to_string(root.join(files::BAG_INFO)).unwrap();
        let manifest = std::fs::read_to_string(root.join(files::MANIFEST)).unwrap();
        let mut lines: Vec<String> = manifest.lines().map(str::to_owned).collect();
        lines.sort_by(|a, b| a.as_bytes()[66..].cmp(&b.as_bytes()[66..]));
        let want = format!("{MERKLE_ROOT_LABEL}: {}", crate::merkle::root(&lines));
        assert!(info.contains(&want), "{info}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_payload_name_that_breaks_the_path_order_is_refused_and_nothing_sealed() {
        let root = std::env::temp_dir().join(format!("custos-walk-bad-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        // `data/a\b` is walked after `data/a/c` (a directory sorts as `a/`, and `/` < `\`),
        // but written with `/` it is `data/a/b`, before it: no tree verification rebuilds.
        for f in ["data/a/c", "data/a\\b"] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, f).unwrap();
        }
        let e = write_bag(&root, &|_| Ok(None), &[], "2026-01-01", &|| Ok(Vec::new())).unwrap_err();
        assert!(
            matches!(&e, Error::Config(m) if m.contains("data/a/b: a payload file name out of path order after data/a/c")),
            "{e}"
        );
        for tag in [files::MANIFEST, files::BAG_INFO, files::BAGIT] {
            assert!(!root.join(tag).exists(), "{tag} written");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn tag_files_keep_order_and_join_continuations() {
        let i = parse_tags("A: 1\nB: two\n  words\nA: again\nnot a label\n");
        assert_eq!(
            i[..2],
            [("A".into(), "1".into()), ("B".into(), "two words".into())]
        );
        assert_eq!(
            i[3],
            (String::new(), "not a label".into()),
            "kept, for a finding"
        );
    }

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
            &|| {
                std::fs::write(root.join("notes.txt"), "n").unwrap();
                Ok(vec!["notes.txt"])
            },
        )
        .unwrap();
        assert_eq!(s, PayloadSummary { files: 2, bytes: 7 });
        let m = std::fs::read_to_string(root.join(files::MANIFEST)).unwrap();
        let lines: Vec<&str> = m.lines().collect();
        assert!(lines[0].ends_with("  data/a.txt") && lines[1].ends_with("  data/b/x.txt"));
        assert!(
            lines[1]
                .starts_with("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        );
        let info = std::fs::read_to_string(root.join(files::BAG_INFO)).unwrap();
        assert!(info.contains("Payload-Oxum: 7.2\n"));
        assert!(info.contains("External-Identifier: M-1 Forged: yes\n"));
        assert_eq!(
            std::fs::read_to_string(root.join(files::TAG_MANIFEST))
                .unwrap()
                .lines()
                .map(|l| l.split_once("  ").unwrap().1)
                .collect::<Vec<_>>(),
            [
                files::BAG_INFO,
                files::BAGIT,
                "hashdeep-sha256.txt",
                files::MANIFEST,
                "notes.txt"
            ]
        );
        let known = std::fs::read_to_string(root.join("hashdeep-sha256.txt")).unwrap();
        assert!(known.starts_with("%%%% HASHDEEP-1.0\n%%%% size,sha256,filename\n"));
        assert!(known.contains(
            "\n5,2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824,data/b/x.txt\n"
        ));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
