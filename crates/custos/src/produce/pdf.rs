//! The text of PDF attachments, extracted by poppler's `pdftotext` (what review platforms'
//! processing does with a PDF, and a tool the other side can run on the same native to check
//! it): the attachment's bytes in on stdin, UTF-8 text out on stdout, nothing written to disk
//! but the text the volume keeps.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The most text kept of one PDF (what is past it is cut, and the cut said).
const MAX_TEXT: u64 = 64 << 20;

/// The extractor: the `pdftotext` binary and the version it states.
#[derive(Clone, Debug)]
pub struct Extractor {
    /// The binary.
    pub program: PathBuf,
    /// Its `-v` first line (`pdftotext version 22.02.0`).
    pub version: String,
}

impl Extractor {
    /// Finds `program` (a path, or a name on PATH) and asks its version; an error says how to
    /// install it or do without.
    pub fn find(program: &Path) -> Result<Extractor, String> {
        let out = Command::new(program)
            .arg("-v")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                format!(
                    "{}: {e}; the text of PDF attachments needs pdftotext (apt install poppler-utils, brew install poppler), or pass --no-pdf-text",
                    program.display()
                )
            })?;
        // pdftotext prints its version on stderr.
        let version = String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        if !version.starts_with("pdftotext version") {
            return Err(format!(
                "{}: not pdftotext (its -v says {version:?}); pass --pdftotext PATH or --no-pdf-text",
                program.display()
            ));
        }
        Ok(Extractor {
            program: program.to_path_buf(),
            version,
        })
    }

    /// The text of the PDF `pdf` (UTF-8), or why there is none.
    pub fn text(&self, pdf: &[u8]) -> Result<Vec<u8>, String> {
        let mut child = Command::new(&self.program)
            .args(["-enc", "UTF-8", "-q", "-", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.program.display()))?;
        let mut stdin = child.stdin.take().expect("piped");
        let mut stdout = child.stdout.take().expect("piped");
        // Fed from one thread while read from this one: neither pipe can fill and stall.
        let text = std::thread::scope(|s| {
            s.spawn(move || {
                let _ = stdin.write_all(pdf);
            });
            let mut text = Vec::new();
            (&mut stdout)
                .take(MAX_TEXT)
                .read_to_end(&mut text)
                .map(|_| text)
        });
        // Closed before the wait: a child still writing past the cap ends on the closed pipe.
        drop(stdout);
        let status = child.wait().map_err(|e| e.to_string())?;
        let text = text.map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("pdftotext could not read it ({status})"));
        }
        Ok(text)
    }
}
