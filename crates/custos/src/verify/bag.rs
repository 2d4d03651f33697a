//! The BagIt checks (RFC 8493), never laxer than bagit-python: the declaration, bag-info,
//! every manifest and tag manifest present (any algorithm custos can compute), safe and unique
//! entries, completeness against the payload on disk, Payload-Oxum, and every checksum.

use crate::package::files;
use std::collections::{BTreeMap, BTreeSet};

use super::finding::{FindingKind as K, Findings};
use super::fsys::{Alg, Bag, Refused, Walk, check_rel, hash_reader};
use crate::lines::for_each_line;

/// Caps on what verification reads whole (no custos export comes near them).
pub(super) const SMALL_TEXT: u64 = 1 << 20;
const MANIFEST_CAP: u64 = 1 << 30;
const MANIFEST_LINE: usize = 64 << 10;
const TAG_FILE_CAP: u64 = 1 << 30;

/// One manifest: its file name, algorithm and entries (path → lowercase hex).
#[derive(Debug)]
pub(super) struct Manifest {
    pub name: String,
    pub alg: Alg,
    pub entries: BTreeMap<String, String>,
}

/// The payload manifests and tag manifests present.
#[derive(Debug, Default)]
pub(super) struct Manifests {
    pub payload: Vec<Manifest>,
    pub tag: Vec<Manifest>,
}

impl Manifests {
    /// The SHA-256 payload manifest's entries (custos always writes it; none if it is missing).
    pub fn sha256(&self) -> &BTreeMap<String, String> {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        self.payload
            .iter()
            .find(|m| m.alg == Alg::Sha256)
            .map_or(&NONE, |m| &m.entries)
    }

    /// Every SHA-256 the manifests seal, payload and tag files, taken from them.
    pub fn into_sha256(self) -> BTreeMap<String, String> {
        let mut sealed = BTreeMap::new();
        for m in self.payload.into_iter().chain(self.tag) {
            if m.alg == Alg::Sha256 {
                sealed.extend(m.entries);
            }
        }
        sealed
    }

    /// Every (alg, checksum) the manifests state for `rel`.
    fn expected(&self, rel: &str) -> Vec<(Alg, &str, &str)> {
        self.payload
            .iter()
            .chain(&self.tag)
            .filter_map(|m| {
                m.entries
                    .get(rel)
                    .map(|h| (m.alg, h.as_str(), m.name.as_str()))
            })
            .collect()
    }
}

/// `bagit.txt`: no byte-order mark, `BagIt-Version: 1.0`, `Tag-File-Character-Encoding: UTF-8`.
pub(super) fn check_declaration(bag: &Bag, f: &mut Findings) {
    let text = match bag.read(files::BAGIT, 4096) {
        Ok(b) => b,
        Err(e) => return f.add(e.finding(files::BAGIT)),
    };
    if text.starts_with(b"\xef\xbb\xbf") {
        f.push(
            K::BagitDeclaration,
            files::BAGIT,
            "starts with a byte-order mark",
        );
    }
    let text = String::from_utf8_lossy(&text);
    let tags = crate::package::parse_tags(&text);
    let one = |label: &str| -> Option<&str> {
        let v: Vec<&str> = tags
            .iter()
            .filter(|(k, _)| k == label)
            .map(|(_, v)| v.as_str())
            .collect();
        (v.len() == 1).then(|| v[0])
    };
    if one("BagIt-Version") != Some("1.0") {
        f.push(
            K::BagitDeclaration,
            files::BAGIT,
            "does not declare BagIt-Version: 1.0 (once)",
        );
    }
    if one("Tag-File-Character-Encoding") != Some("UTF-8") {
        f.push(
            K::BagitDeclaration,
            files::BAGIT,
            "does not declare Tag-File-Character-Encoding: UTF-8 (once)",
        );
    }
}

/// `bag-info.txt` as label → value; a label custos relies on given twice, or a line that is
/// not a label, is a finding (a second Payload-Oxum could say what a reader wants).
pub(super) fn read_info(bag: &Bag, f: &mut Findings) -> BTreeMap<String, String> {
    let text = match bag.read_text(files::BAG_INFO, SMALL_TEXT) {
        Ok(t) => t,
        Err(e) => {
            f.add(e.finding(files::BAG_INFO));
            return BTreeMap::new();
        }
    };
    let mut out = BTreeMap::new();
    for (k, v) in crate::package::parse_tags(&text) {
        if k.is_empty() {
            f.push(
                K::BagInfoInvalid,
                files::BAG_INFO,
                format!("not 'Label: value': {v:.80}"),
            );
        } else if out.insert(k.clone(), v).is_some() {
            f.push(
                K::BagInfoInvalid,
                files::BAG_INFO,
                format!("{k} is given more than once"),
            );
        }
    }
    out
}

/// Reads every `manifest-*.txt` and `tagmanifest-*.txt` in the root.
pub(super) fn read_manifests(bag: &Bag, f: &mut Findings) -> Manifests {
    let mut names: Vec<(String, bool, String)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(bag.path("")) {
        for e in rd.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let (tag, rest) = if let Some(r) = name.strip_prefix("tagmanifest-") {
                (true, r)
            } else if let Some(r) = name.strip_prefix("manifest-") {
                (false, r)
            } else {
                continue;
            };
            if let Some(alg) = rest.strip_suffix(".txt") {
                names.push((name.clone(), tag, alg.to_owned()));
            }
        }
    }
    names.sort();
    for required in [files::MANIFEST, files::TAG_MANIFEST] {
        if !names.iter().any(|(n, ..)| n == required) {
            f.push(K::MissingFile, required, "the bag has no such manifest");
        }
    }
    if bag.lstat("fetch.txt").is_ok() {
        f.push(
            K::FetchFile,
            "fetch.txt",
            "the bag claims files are to be fetched from elsewhere",
        );
    }
    let mut out = Manifests::default();
    for (name, tag, alg_name) in names {
        let Some(alg) = Alg::from_name(&alg_name) else {
            f.push(
                K::ManifestAlgorithmUnsupported,
                name,
                format!("algorithm '{alg_name}': custos checks md5, sha1, sha224, sha256, sha384 and sha512"),
            );
            continue;
        };
        if let Some(m) = read_manifest(bag, &name, alg, tag, f) {
            if tag {
                out.tag.push(m)
            } else {
                out.payload.push(m)
            }
        }
    }
    out
}

fn read_manifest(bag: &Bag, name: &str, alg: Alg, tag: bool, f: &mut Findings) -> Option<Manifest> {
    let (file, len) = match bag.open(name) {
        Ok(x) => x,
        Err(e) => {
            f.add(e.finding(name));
            return None;
        }
    };
    if len > MANIFEST_CAP {
        f.add(
            Refused::TooLarge {
                size: len,
                cap: MANIFEST_CAP,
            }
            .finding(name),
        );
        return None;
    }
    let mut entries = BTreeMap::new();
    let mut n = 0;
    let read = for_each_line::<std::convert::Infallible>(
        std::io::BufReader::new(file),
        MANIFEST_LINE,
        |line, _| {
            n += 1;
            let at = format!("{name} line {n}");
            let (path, sum) = match manifest_line(line, alg, tag) {
                Ok(x) => x,
                Err((kind, why)) => {
                    f.push(kind, at, why);
                    return Ok(());
                }
            };
            if let Some(prev) = entries.insert(path.clone(), sum.clone()) {
                f.push(
                    K::ManifestDuplicate,
                    at,
                    if prev == sum {
                        format!("{path} is listed more than once")
                    } else {
                        format!("{path} is listed more than once, with different checksums")
                    },
                );
            }
            Ok(())
        },
    );
    if let Err(e) = read {
        f.push(K::TooLarge, name, e.to_string());
        return None;
    }
    Some(Manifest {
        name: name.to_owned(),
        alg,
        entries,
    })
}

/// One manifest line: `<checksum> <path>` with a checksum of `alg`'s length and a safe path on
/// the right side of the bag (payload or tag), percent-decoding as RFC 8493 §2.1.3 says; or
/// the finding it is.
fn manifest_line(line: &[u8], alg: Alg, tag: bool) -> Result<(String, String), (K, String)> {
    let Ok(line) = std::str::from_utf8(line) else {
        return Err((K::MalformedManifest, "not UTF-8".into()));
    };
    let line = line.strip_suffix('\r').unwrap_or(line);
    let Some((sum, path)) = line.split_once([' ', '\t']) else {
        return Err((
            K::MalformedManifest,
            format!("not '<checksum> <path>': {line:.120}"),
        ));
    };
    let path = path.trim_start_matches([' ', '\t']);
    if sum.len() != alg.hex_len() || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err((
            K::MalformedManifest,
            format!("'{sum:.130}' is not a {alg:?} checksum"),
        ));
    }
    // RFC 8493 §2.1.3: CR, LF and % in names are percent-encoded.
    let path = path
        .replace("%0A", "\n")
        .replace("%0a", "\n")
        .replace("%0D", "\r")
        .replace("%0d", "\r")
        .replace("%25", "%");
    if let Err(e) = check_rel(&path) {
        let why = match e {
            Refused::Unsafe(w) => w,
            _ => String::new(),
        };
        return Err((
            K::UnsafePath,
            format!("'{}': {why}; not read", path.escape_debug()),
        ));
    }
    let payload = path.starts_with("data/");
    if payload == tag {
        return Err((
            K::UnsafePath,
            if tag {
                format!("{path}: a tag manifest lists a payload file")
            } else {
                format!("{path}: a payload manifest lists a file outside data/")
            },
        ));
    }
    if tag && path.starts_with("tagmanifest-") {
        return Err((
            K::UnsafePath,
            format!("{path}: a tag manifest lists a tag manifest"),
        ));
    }
    Ok((path, sum.to_ascii_lowercase()))
}

/// Every payload manifest lists exactly the payload on disk; the tag manifest lists the tag
/// files custos writes.
pub(super) fn check_completeness(m: &Manifests, walk: &Walk, f: &mut Findings) {
    let disk: BTreeSet<&str> = walk.files.iter().map(|(r, _)| r.as_str()).collect();
    for man in &m.payload {
        for rel in man.entries.keys() {
            if !disk.contains(rel.as_str()) {
                f.push(
                    K::PayloadMissing,
                    rel.clone(),
                    format!("listed in {} but not a regular file on disk", man.name),
                );
            }
        }
        for rel in &disk {
            if !man.entries.contains_key(*rel) {
                f.push(
                    K::PayloadUnlisted,
                    *rel,
                    format!("on disk but not in {}", man.name),
                );
            }
        }
    }
    if let Some(tag) = m.tag.iter().find(|t| t.alg == Alg::Sha256) {
        for must in [files::BAG_INFO, files::BAGIT, files::MANIFEST] {
            if !tag.entries.contains_key(must) {
                f.push(K::TagNotListed, must, format!("not listed in {}", tag.name));
            }
        }
    }
}

/// Payload-Oxum: present once, well formed, and the regular files' count and bytes.
pub(super) fn check_oxum(info: &BTreeMap<String, String>, walk: &Walk, f: &mut Findings) {
    let bytes: u64 = walk.files.iter().map(|(_, n)| n).sum();
    let oxum = format!("{bytes}.{}", walk.files.len());
    match info.get("Payload-Oxum") {
        Some(v) if *v == oxum => {}
        other => f.push(
            K::PayloadOxum,
            files::BAG_INFO,
            format!("Payload-Oxum says {other:?}, the payload is {oxum}"),
        ),
    }
}

/// The Merkle root and leaf count in bag-info (when the export has them) are those of the
/// payload manifest's lines, sorted by path (crate::merkle).
pub(super) fn check_merkle(info: &BTreeMap<String, String>, m: &Manifests, f: &mut Findings) {
    use crate::package::{MERKLE_ROOT_LABEL, MERKLE_SIZE_LABEL};
    let (Some(want_root), want_size) = (info.get(MERKLE_ROOT_LABEL), info.get(MERKLE_SIZE_LABEL))
    else {
        return;
    };
    // Sorted by path: a BTreeMap of Strings orders by bytes. The leaves are hashed as they
    // pass (crate::merkle::Head), never held as lines.
    let mut head = crate::merkle::Head::default();
    for (path, sum) in m.sha256() {
        head.push(crate::merkle::leaf_hash(&format!("{sum}  {path}")));
    }
    let root = head.root().hex();
    if *want_root != root || want_size != Some(&head.size().to_string()) {
        f.push(
            K::MerkleRootMismatch,
            files::BAG_INFO,
            format!(
                "{MERKLE_ROOT_LABEL} {want_root:.80} over {want_size:?} leaves; the payload manifest's {} lines give {root}",
                head.size()
            ),
        );
    }
}

/// What hashing found: the SHA-256 of every file hashed, and totals.
#[derive(Debug, Default)]
pub(super) struct Hashed {
    pub sha256: BTreeMap<String, String>,
    pub files: u64,
    pub bytes: u64,
}

/// Hashes `payload` (the payload files to hash) and every tag manifest entry, each with every
/// algorithm a manifest states for it, on `threads` threads; every difference is a finding.
pub(super) fn hash_and_compare(
    bag: &Bag,
    m: &Manifests,
    payload: &[String],
    threads: usize,
    f: &mut Findings,
) -> Hashed {
    let tag_entries: BTreeSet<&String> = m.tag.iter().flat_map(|t| t.entries.keys()).collect();
    let mut jobs: Vec<(String, Vec<Alg>, bool)> = Vec::new();
    for rel in payload {
        jobs.push((rel.clone(), algs(m, rel), false));
    }
    for rel in tag_entries {
        jobs.push((rel.clone(), algs(m, rel), true));
    }
    let results = in_threads(&jobs, threads, |(rel, algs, tag)| {
        let (file, len) = bag.open(rel)?;
        if *tag && len > TAG_FILE_CAP {
            return Err(Refused::TooLarge {
                size: len,
                cap: TAG_FILE_CAP,
            });
        }
        hash_reader(file, algs).map_err(Refused::Io)
    });
    let mut out = Hashed::default();
    for ((rel, _, tag), r) in jobs.iter().zip(results) {
        match r {
            Ok((sums, n)) => {
                out.files += 1;
                out.bytes += n;
                for (alg, got) in sums {
                    if alg == Alg::Sha256 {
                        out.sha256.insert(rel.clone(), got.clone());
                    }
                    for (a, want, name) in m.expected(rel) {
                        if a == alg && want != got {
                            let kind = if *tag {
                                K::TagHashMismatch
                            } else {
                                K::PayloadHashMismatch
                            };
                            f.push(
                                kind,
                                rel.clone(),
                                format!("{alg:?} is now {got}, {name} says {want}"),
                            );
                        }
                    }
                }
            }
            Err(Refused::Missing) if *tag => f.push(
                K::MissingFile,
                rel.clone(),
                "listed in a tag manifest but absent",
            ),
            Err(Refused::Io(e)) if !*tag => {
                f.push(K::PayloadUnreadable, rel.clone(), e.to_string())
            }
            Err(e) => f.add(e.finding(rel)),
        }
    }
    out
}

fn algs(m: &Manifests, rel: &str) -> Vec<Alg> {
    let mut a: Vec<Alg> = m.expected(rel).into_iter().map(|(a, ..)| a).collect();
    a.push(Alg::Sha256);
    a.sort();
    a.dedup();
    a
}

/// Runs `f` over `jobs` on `threads` threads; results in the jobs' order.
fn in_threads<J: Sync, R: Send>(jobs: &[J], threads: usize, f: impl Fn(&J) -> R + Sync) -> Vec<R> {
    let size = jobs.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(size)
            .map(|chunk| {
                let f = &f;
                s.spawn(move || chunk.iter().map(f).collect::<Vec<R>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("hashing thread"))
            .collect()
    })
}
