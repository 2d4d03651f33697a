//! `--ids FILE`: the other deterministic input. One id per line; blank lines and `#` comments
//! are ignored. For the genesys source a line is `conversationId` (all its recordings) or
//! `conversationId,recordingId`; for the search source it is a `recordingId`. Every id must be
//! plain (letters, digits, `-`, `_`, `.`): anything else is refused with its line number before
//! anything is written.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::safe_id;

/// One line of the file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IdEntry {
    /// Conversation id (genesys) or recording id (search).
    pub first: String,
    /// Recording id (genesys `conversationId,recordingId` lines).
    pub second: Option<String>,
}

/// A parsed ids file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdList {
    /// Where it was read from.
    pub file: PathBuf,
    /// SHA-256 of the file's bytes.
    pub file_sha256: String,
    /// The entries, sorted and unique.
    pub entries: Vec<IdEntry>,
}

/// The largest ids file read (a million `conversationId,recordingId` lines of UUIDs are 74 MB).
const MAX_IDS_FILE: u64 = 256 << 20;

/// The bytes of a regular file of at most [`MAX_IDS_FILE`]; anything else is a clear refusal
/// (a directory, a FIFO that would block, a device that never ends).
fn read_list(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let bad = |what: String| Error::Config(format!("--ids {}: {what}", path.display()));
    let m = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if !m.is_file() {
        return Err(bad("is not a regular file; give a text file of ids".into()));
    }
    if m.len() > MAX_IDS_FILE {
        return Err(bad(format!("is larger than {MAX_IDS_FILE} bytes")));
    }
    let f = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    f.take(MAX_IDS_FILE + 1)
        .read_to_end(&mut out)
        .map_err(|e| bad(e.to_string()))?;
    if out.len() as u64 > MAX_IDS_FILE {
        return Err(bad(format!("is larger than {MAX_IDS_FILE} bytes")));
    }
    Ok(out)
}

impl IdList {
    /// Reads and validates `path`; `pairs` allows `conversationId,recordingId` lines.
    pub fn read(path: &Path, pairs: bool) -> Result<IdList> {
        let bytes = read_list(path)?;
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| Error::Config(format!("{}: not UTF-8 text", path.display())))?;
        let mut entries = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad =
                |what: &str| Error::Config(format!("{} line {}: {what}", path.display(), n + 1));
            let (first, second) = match line.split_once(',') {
                Some((a, b)) if pairs => (a.trim(), Some(b.trim())),
                Some(_) => return Err(bad("one recording id per line here")),
                None => (line, None),
            };
            for id in std::iter::once(first).chain(second) {
                if !safe_id(id) {
                    return Err(bad(&format!(
                        "'{id}' is not a valid id (letters, digits, '-', '_' and '.' only)"
                    )));
                }
            }
            entries.push(IdEntry {
                first: first.to_owned(),
                second: second.map(str::to_owned),
            });
        }
        if entries.is_empty() {
            return Err(Error::Config(format!(
                "{}: no ids in the file",
                path.display()
            )));
        }
        entries.sort();
        entries.dedup();
        Ok(IdList {
            file: path.to_owned(),
            file_sha256: crate::digest::Sha256::of(&bytes).hex(),
            entries,
        })
    }

    /// The entries, one per line, sorted: the canonical form of this input.
    pub fn canonical(&self) -> String {
        let lines: Vec<String> = self
            .entries
            .iter()
            .map(|e| match &e.second {
                Some(r) => format!("{},{r}", e.first),
                None => e.first.clone(),
            })
            .collect();
        format!("ids:{}", lines.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("custos-ids-{name}-{}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_sorts_and_dedups() {
        let p = write(
            "ok",
            "# matter 42\nconv-b\n\nconv-a,rec-1  # the one call\nconv-b\n",
        );
        let l = IdList::read(&p, true).unwrap();
        assert_eq!(l.entries.len(), 2);
        assert_eq!(
            l.entries[0],
            IdEntry {
                first: "conv-a".into(),
                second: Some("rec-1".into())
            }
        );
        assert_eq!(l.canonical(), "ids:conv-a,rec-1 conv-b");
        assert_eq!(l.file_sha256.len(), 64);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn hostile_and_malformed_lines_are_refused_with_their_line() {
        for (text, pairs, needle) in [
            ("ok\n../../x\n", true, "line 2: '../../x' is not a valid id"),
            ("a,b\n", false, "line 1: one recording id per line"),
            ("a,\n", true, "line 1: '' is not a valid id"),
            ("# nothing\n", true, "no ids"),
        ] {
            let p = write("bad", text);
            let e = IdList::read(&p, pairs).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
            std::fs::remove_file(p).unwrap();
        }
    }
}
