//! How verification touches a package it does not trust: only regular files inside the bag
//! root, reached through real directories (no symlink followed at any level), opened without
//! blocking (a FIFO or device is refused before it could be read), and read up to a cap.

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::digest::DynDigest;

use super::finding::{Finding, FindingKind, shown};

/// Why a path of the package was not read.
#[derive(Debug)]
pub enum Refused {
    /// Not a plain relative path inside the bag.
    Unsafe(String),
    /// Something other than a regular file (or, on the way, a directory): named.
    Special(&'static str),
    /// Not there.
    Missing,
    /// Larger than the cap.
    TooLarge {
        /// Its size (or at least this much).
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// Not UTF-8 where text is required.
    NotText,
    /// Reading failed.
    Io(std::io::Error),
}

impl Refused {
    /// The finding this refusal is, for the file `rel`.
    pub fn finding(&self, rel: &str) -> Finding {
        match self {
            Refused::Unsafe(why) => Finding::new(FindingKind::UnsafePath, rel, why.clone()),
            Refused::Special(what) => Finding::new(
                FindingKind::SpecialFile,
                rel,
                format!("is {what}, not a regular file"),
            ),
            Refused::Missing => Finding::new(FindingKind::MissingFile, rel, "does not exist"),
            Refused::TooLarge { size, cap } => Finding::new(
                FindingKind::TooLarge,
                rel,
                format!("{size} bytes or more; verification reads at most {cap}"),
            ),
            Refused::NotText => Finding::new(FindingKind::MissingFile, rel, "is not UTF-8 text"),
            Refused::Io(e) => {
                Finding::new(FindingKind::MissingFile, rel, format!("cannot read: {e}"))
            }
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.finding("").what)
    }
}

fn kind_of(m: &Metadata) -> &'static str {
    let t = m.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// Checks that `rel` is a plain relative path: `/`-separated, no empty, `.` or `..` part, no
/// backslash, no control character.
pub fn check_rel(rel: &str) -> Result<(), Refused> {
    if rel.is_empty() {
        return Err(Refused::Unsafe("an empty path".into()));
    }
    if rel.starts_with('/') {
        return Err(Refused::Unsafe("an absolute path".into()));
    }
    if rel.contains('\\') || rel.chars().any(char::is_control) {
        return Err(Refused::Unsafe(
            "holds a backslash or a control character".into(),
        ));
    }
    if rel
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(Refused::Unsafe(
            "has an empty, '.' or '..' part: it may point outside the bag".into(),
        ));
    }
    Ok(())
}

/// The package's root: every read goes through it.
#[derive(Clone, Debug)]
pub struct Bag {
    root: PathBuf,
}

impl Bag {
    /// The bag at `root` (the root itself is the user's choice and may be reached through a
    /// link; nothing below it is).
    pub fn new(root: &Path) -> Bag {
        Bag {
            root: root.to_path_buf(),
        }
    }

    /// `root/rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The metadata of `rel` itself (not followed), after checking every directory on the way
    /// is a real directory.
    pub fn lstat(&self, rel: &str) -> Result<Metadata, Refused> {
        check_rel(rel)?;
        let mut at = self.root.clone();
        let parts: Vec<&str> = rel.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            at.push(part);
            let m = match std::fs::symlink_metadata(&at) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Refused::Missing),
                Err(e) => return Err(Refused::Io(e)),
            };
            if i + 1 < parts.len() && !m.file_type().is_dir() {
                return Err(Refused::Special(kind_of(&m)));
            }
            if i + 1 == parts.len() {
                return Ok(m);
            }
        }
        unreachable!("a checked path has at least one part")
    }

    /// Opens the regular file `rel` for reading, never following a link and never blocking.
    pub fn open(&self, rel: &str) -> Result<(File, u64), Refused> {
        let m = self.lstat(rel)?;
        if !m.file_type().is_file() {
            return Err(Refused::Special(kind_of(&m)));
        }
        let mut o = std::fs::OpenOptions::new();
        o.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY);
        }
        let f = o.open(self.path(rel)).map_err(Refused::Io)?;
        let now = f.metadata().map_err(Refused::Io)?;
        // Swapped between the look and the open: refuse what is not the file looked at.
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if (now.dev(), now.ino()) != (m.dev(), m.ino()) {
                return Err(Refused::Special("replaced while being opened"));
            }
        }
        if !now.is_file() {
            return Err(Refused::Special(kind_of(&now)));
        }
        Ok((f, now.len()))
    }

    /// The whole of the regular file `rel`, if it is at most `cap` bytes.
    pub fn read(&self, rel: &str, cap: u64) -> Result<Vec<u8>, Refused> {
        let (f, len) = self.open(rel)?;
        if len > cap {
            return Err(Refused::TooLarge { size: len, cap });
        }
        let mut out = Vec::with_capacity(len as usize);
        f.take(cap + 1).read_to_end(&mut out).map_err(Refused::Io)?;
        if out.len() as u64 > cap {
            return Err(Refused::TooLarge {
                size: out.len() as u64,
                cap,
            });
        }
        Ok(out)
    }

    /// [`Bag::read`] as UTF-8 text.
    pub fn read_text(&self, rel: &str, cap: u64) -> Result<String, Refused> {
        String::from_utf8(self.read(rel, cap)?).map_err(|_| Refused::NotText)
    }
}

/// A checksum algorithm of a BagIt manifest that custos can compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Alg {
    /// MD5.
    Md5,
    /// SHA-1.
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Alg {
    /// From a manifest's name part (`manifest-<name>.txt`).
    pub fn from_name(name: &str) -> Option<Alg> {
        Some(match name {
            "md5" => Alg::Md5,
            "sha1" => Alg::Sha1,
            "sha224" => Alg::Sha224,
            "sha256" => Alg::Sha256,
            "sha384" => Alg::Sha384,
            "sha512" => Alg::Sha512,
            _ => return None,
        })
    }

    /// Hex digits of a checksum.
    pub fn hex_len(self) -> usize {
        match self {
            Alg::Md5 => 32,
            Alg::Sha1 => 40,
            Alg::Sha224 => 56,
            Alg::Sha256 => 64,
            Alg::Sha384 => 96,
            Alg::Sha512 => 128,
        }
    }

    fn hasher(self) -> Box<dyn DynDigest> {
        match self {
            Alg::Md5 => Box::new(md5::Md5::default()),
            Alg::Sha1 => Box::new(sha1::Sha1::default()),
            Alg::Sha224 => Box::new(sha2::Sha224::default()),
            Alg::Sha256 => Box::new(sha2::Sha256::default()),
            Alg::Sha384 => Box::new(sha2::Sha384::default()),
            Alg::Sha512 => Box::new(sha2::Sha512::default()),
        }
    }
}

/// Every checksum of `algs` over what `r` yields, in one pass: (alg, lowercase hex), bytes.
pub fn hash_reader(mut r: impl Read, algs: &[Alg]) -> std::io::Result<(Vec<(Alg, String)>, u64)> {
    let mut hs: Vec<(Alg, Box<dyn DynDigest>)> = algs.iter().map(|a| (*a, a.hasher())).collect();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for (_, h) in &mut hs {
            h.update(&buf[..k]);
        }
        n += k as u64;
    }
    Ok((
        hs.into_iter()
            .map(|(a, h)| (a, hex::encode(h.finalize())))
            .collect(),
        n,
    ))
}

/// What walking `data/` found: the regular files with their sizes, in byte order of their
/// paths, and every entry that is not a regular file or directory, or has an unsafe name.
#[derive(Debug, Default)]
pub struct Walk {
    /// (path under the root, size).
    pub files: Vec<(String, u64)>,
    /// Special files and bad names (none of them followed or read).
    pub findings: Vec<Finding>,
}

/// Walks `data/` without following anything: symlinks, FIFOs, sockets and devices are
/// findings, as are names that are not UTF-8 or hold control characters or a backslash.
pub fn walk_data(bag: &Bag) -> Result<Walk, Refused> {
    let top = bag.lstat("data")?;
    if !top.file_type().is_dir() {
        return Err(Refused::Special(kind_of(&top)));
    }
    let mut w = Walk::default();
    let mut stack = vec![("data".to_owned(), bag.path("data"))];
    while let Some((rel, dir)) = stack.pop() {
        let mut entries = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(Refused::Io)? {
            let e = e.map_err(Refused::Io)?;
            entries.push(e);
        }
        entries.sort_by_key(|e| e.file_name());
        let mut subdirs = Vec::new();
        for e in entries {
            let name = e.file_name();
            let shown_rel = format!("{rel}/{}", shown(&name));
            let Some(s) = name.to_str() else {
                w.findings.push(Finding::new(
                    FindingKind::BadFileName,
                    shown_rel,
                    "the name is not UTF-8 (it can pass for another file's name)",
                ));
                continue;
            };
            if s.contains('\\') || s.chars().any(char::is_control) {
                w.findings.push(Finding::new(
                    FindingKind::BadFileName,
                    shown_rel,
                    "the name holds a backslash or a control character",
                ));
                continue;
            }
            let m = std::fs::symlink_metadata(e.path()).map_err(Refused::Io)?;
            let child = format!("{rel}/{s}");
            if m.file_type().is_dir() {
                subdirs.push((child, e.path()));
            } else if m.file_type().is_file() {
                w.files.push((child, m.len()));
            } else {
                w.findings.push(Finding::new(
                    FindingKind::SpecialFile,
                    child,
                    format!(
                        "is {}, not a regular file; not followed or read",
                        kind_of(&m)
                    ),
                ));
            }
        }
        // Depth first, in name order (the stack pops the last pushed first).
        stack.extend(subdirs.into_iter().rev());
    }
    w.files.sort();
    Ok(w)
}
