//! Reading text a line at a time without trusting it: a line longer than a cap is an error
//! naming it, never read whole (custody logs, receipts and manifests of packages that may be
//! hostile).

use std::io::BufRead;

/// Why a line-by-line read stopped.
#[derive(Debug, thiserror::Error)]
pub enum LineError<E: std::fmt::Display> {
    /// Reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A line longer than the cap (never read whole).
    #[error("line {line} is longer than {cap} bytes; not read further")]
    TooLong {
        /// 1-based.
        line: u64,
        /// The cap.
        cap: usize,
    },
    /// The caller's function refused a line.
    #[error("{0}")]
    Line(E),
}

/// Calls `f` with each line of `r` (without its `\n`) and whether it ended with one; a line
/// longer than `cap` is an error naming it, never read whole.
pub fn for_each_line<E: std::fmt::Display>(
    mut r: impl BufRead,
    cap: usize,
    mut f: impl FnMut(&[u8], bool) -> Result<(), E>,
) -> Result<(), LineError<E>> {
    let mut line = Vec::new();
    let mut n = 0u64;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            if !line.is_empty() {
                f(&line, false).map_err(LineError::Line)?;
            }
            return Ok(());
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if line.len() + take > cap {
            return Err(LineError::TooLong { line: n + 1, cap });
        }
        line.extend_from_slice(&buf[..take]);
        r.consume(take + usize::from(done));
        if done {
            n += 1;
            f(&line, true).map_err(LineError::Line)?;
            line.clear();
        }
    }
}
