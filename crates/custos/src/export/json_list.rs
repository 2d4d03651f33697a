//! A JSON document with one list too long to hold: the list's elements go to a scratch file as
//! they are found, and the document is written around them at the end, byte for byte what
//! `serde_json::to_string_pretty` prints for the whole document (never held whole).
//! `data/completeness.json` (the conversations without a recording) and `data/summary.json`
//! (the files whose duration was not compared) are written this way.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

/// Stands for the list in the document until it is written. [`write_document`] replaces the
/// mark's first occurrence, and that is always the list's place when every value printed
/// before it is custos's own (counts, hashes, fixed strings): the document keeps its keys in
/// the order written (`serde_json`'s `preserve_order`). A string from the API later in the
/// document that equals the mark (it begins with a NUL) is left as it is.
pub(super) const MARK: &str = "\u{0}a list written in at the end";

/// The elements of a list, written to a scratch file as they come.
pub(super) struct ScratchList {
    path: PathBuf,
    w: std::io::BufWriter<std::fs::File>,
    /// How deep the list is in the document: 1 for the value of a top-level key.
    depth: usize,
    len: u64,
}

impl ScratchList {
    /// A new list in the scratch file `path` (made anew), for the value of a key `depth` objects
    /// deep (1: a top-level key).
    pub(super) fn create(path: &Path, depth: usize) -> Result<ScratchList> {
        let file = crate::durable::create_file(path).map_err(|e| Error::io(path, e))?;
        Ok(ScratchList {
            path: path.to_path_buf(),
            w: std::io::BufWriter::new(file),
            depth,
            len: 0,
        })
    }

    /// Adds `entry` to the list.
    pub(super) fn push(&mut self, entry: &Value) -> Result<()> {
        write_element(&mut self.w, self.len == 0, self.depth, entry)
            .map_err(|e| Error::io(&self.path, e))?;
        self.len += 1;
        Ok(())
    }

    /// How many elements it holds.
    pub(super) fn len(&self) -> u64 {
        self.len
    }
}

/// Writes `doc` (holding [`MARK`] where `list` belongs) durably to `path`, with the list
/// written in, and removes the list's scratch file.
pub(super) fn write_document(path: &Path, doc: &Value, list: ScratchList) -> Result<()> {
    let text = serde_json::to_string_pretty(doc).expect("json");
    let ScratchList {
        path: scratch,
        w,
        depth,
        len,
    } = list;
    w.into_inner()
        .map_err(|e| Error::io(&scratch, e.into_error()))?;
    crate::durable::write_durably_streamed(path, &mut |out| {
        let mut elements = std::fs::File::open(&scratch)?;
        with_elements(&text, depth, len, &mut elements, out)
    })?;
    std::fs::remove_file(&scratch).map_err(|e| Error::io(&scratch, e))
}

/// Writes `text` (a pretty-printed document holding [`MARK`] as the value of a key `depth`
/// objects deep) to `out` with the mark replaced by the array of the `n` elements `elements`
/// holds (as [`write_element`] wrote them), and a final line feed.
fn with_elements(
    text: &str,
    depth: usize,
    n: u64,
    elements: &mut dyn std::io::Read,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mark = serde_json::to_string(MARK).expect("json");
    let (before, after) = text
        .split_once(&mark)
        .ok_or_else(|| std::io::Error::other("the list's mark is not in the document"))?;
    out.write_all(before.as_bytes())?;
    if n == 0 {
        out.write_all(b"[]")?;
    } else {
        out.write_all(b"[\n")?;
        std::io::copy(elements, out)?;
        out.write_all(b"\n")?;
        out.write_all(" ".repeat(2 * depth).as_bytes())?;
        out.write_all(b"]")?;
    }
    out.write_all(after.as_bytes())?;
    out.write_all(b"\n")
}

/// Writes `entry` as an element of a pretty-printed array that is the value of a key `depth`
/// objects deep (`serde_json`'s layout: two spaces a level), after a separator unless `first`.
fn write_element(
    out: &mut dyn Write,
    first: bool,
    depth: usize,
    entry: &Value,
) -> std::io::Result<()> {
    if !first {
        out.write_all(b",\n")?;
    }
    let indent = " ".repeat(2 * (depth + 1));
    let text = serde_json::to_string_pretty(entry).expect("json");
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.write_all(b"\n")?;
        }
        out.write_all(indent.as_bytes())?;
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(n: u64) -> Value {
        json!({"conversationId": format!("c{n}"),
               "conversationStart": if n.is_multiple_of(2) { json!("2023-01-01T00:00:00Z") } else { json!(null) },
               "originatingDirection": {"nested": ["x\ny", n]}, "sessionsFlaggedRecording": n})
    }

    /// A scratch directory, removed when dropped.
    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    impl Dir {
        fn path(&self) -> &Path {
            &self.0
        }
    }

    /// `doc` with the list at `at` (a JSON pointer to a key holding [`MARK`]), written as
    /// streamed, and as `serde_json` prints it whole (in a directory named after `name`).
    fn both(name: &str, doc: Value, at: &str, entries: &[Value]) -> (String, String) {
        let dir =
            Dir(std::env::temp_dir()
                .join(format!("custos-json-list-{name}-{}", std::process::id())));
        let _ = std::fs::remove_dir_all(dir.path());
        std::fs::create_dir_all(dir.path()).unwrap();
        let depth = at.matches('/').count();
        let mut list = ScratchList::create(&dir.path().join("list.tmp"), depth).unwrap();
        for e in entries {
            list.push(e).unwrap();
        }
        assert_eq!(list.len(), entries.len() as u64);
        let path = dir.path().join("doc.json");
        write_document(&path, &doc, list).unwrap();
        assert!(!dir.path().join("list.tmp").exists(), "scratch removed");
        let mut whole = doc;
        *whole.pointer_mut(at).unwrap() = Value::Array(entries.to_vec());
        (
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", serde_json::to_string_pretty(&whole).unwrap()),
        )
    }

    #[test]
    fn a_top_level_list_is_what_serde_json_prints_whole() {
        for n in [0, 1, 3] {
            let entries: Vec<Value> = (0..n).map(entry).collect();
            let doc = json!({"a": 1, "list": MARK, "z": {"b": [1, 2]}});
            let (streamed, whole) = both(&format!("top-{n}"), doc, "/list", &entries);
            assert_eq!(streamed, whole, "{n} entries");
        }
    }

    #[test]
    fn a_nested_list_is_what_serde_json_prints_whole() {
        for n in [0, 1, 3] {
            let entries: Vec<Value> = (0..n).map(entry).collect();
            let doc = json!({"a": 1, "d": {"checked": 2, "list": MARK}, "z": [1]});
            let (streamed, whole) = both(&format!("nested-{n}"), doc, "/d/list", &entries);
            assert_eq!(streamed, whole, "{n} entries");
        }
    }

    #[test]
    fn a_later_value_equal_to_the_mark_is_left_as_it_is() {
        let doc = json!({"a": 1, "list": MARK, "z": {"orphan": MARK}});
        let (streamed, whole) = both("mark", doc, "/list", &[entry(1)]);
        assert_eq!(streamed, whole);
        assert!(streamed.contains(&serde_json::to_string(MARK).unwrap()));
    }
}
