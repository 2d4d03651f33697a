//! The text of PDF attachments, extracted by poppler's `pdftotext` (what review platforms'
//! processing does with a PDF, and a tool the other side can run on the same native to check
//! it): the attachment's bytes in on stdin, UTF-8 text out on stdout, nothing written to disk
//! but the text the volume keeps.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The most text read of one PDF: a PDF whose text is larger gets none, and says why.
const MAX_TEXT: u64 = 64 << 20;
/// The longest one PDF's extraction may take.
const TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

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
        // Fed and read on threads of their own while this one keeps the clock: a PDF made to
        // keep pdftotext busy (an attachment is the sender's content) is stopped at the limit.
        let (status, text) = std::thread::scope(|s| {
            s.spawn(move || {
                let _ = stdin.write_all(pdf);
            });
            let reader = s.spawn(move || {
                let mut text = Vec::new();
                (&mut stdout)
                    .take(MAX_TEXT)
                    .read_to_end(&mut text)
                    .map(|_| text)
                // `stdout` is closed here: a child still writing past the cap ends on it.
            });
            let deadline = std::time::Instant::now() + TIME_LIMIT;
            let status = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Ok(status),
                    Ok(None) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    Ok(None) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break Err(format!(
                            "pdftotext took more than {} s and was stopped",
                            TIME_LIMIT.as_secs()
                        ));
                    }
                    Err(e) => break Err(e.to_string()),
                }
            };
            (
                status,
                reader.join().expect("the reader thread does not panic"),
            )
        });
        let status = status?;
        let text = text.map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("pdftotext could not read it ({status})"));
        }
        Ok(text)
    }
}
