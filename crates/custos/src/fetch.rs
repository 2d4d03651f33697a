//! Downloading one media file as evidence: stream to `<name>.part` while hashing, check the
//! byte count against Content-Length (and the size the API stated, when it stated one), refuse a
//! body larger than stated, fsync, then rename to the final name, make it read-only, and write a
//! `sha256sum -c` sidecar. A partial file never carries a final name.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::Error;
use crate::http::{Attempt, Transport};

/// A completed download, still under its `.part` name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// Bytes written.
    pub bytes: u64,
    /// Content-Type as served (parameters stripped).
    pub content_type: String,
    /// The server's rate window (API-hosted media answers with one).
    pub window: Option<crate::http::RateWindow>,
}

/// Why a download did not produce a file.
#[derive(Debug)]
pub enum FetchError {
    /// 404/410: gone at the source.
    NotFound,
    /// 403 with an expiry message: the URL must be re-requested.
    Expired,
    /// 409 from the search API: archived.
    Archived,
    /// The transfer broke, or its length disagreed with Content-Length, or the server failed
    /// (408, 5xx): `Policy::decide` says whether to try again.
    Incomplete {
        /// What happened, for the custody log.
        why: String,
        /// The failure, for the retry decision.
        what: crate::http::Attempt,
    },
    /// 429 from an API-hosted media endpoint: wait (Retry-After) and retry.
    Throttled(Option<std::time::Duration>),
    /// The file arrived whole but its size is not what the API stated.
    SizeMismatch {
        /// Bytes received.
        got: u64,
        /// Bytes the API stated (`outputSizeInBytes`).
        stated: u64,
    },
    /// The file arrived whole but is not evidence: unreadable as audio, damaged, or of another
    /// duration than the API states (crate::media).
    NotEvidence {
        /// Why, with both durations where there are two.
        why: String,
        /// The duration read from the file, ms, if one could be read.
        media_ms: Option<u64>,
    },
    /// Any other refusal (the status and body).
    Refused(String),
    /// The local disk failed: the export cannot go on.
    Io(Error),
}

impl FetchError {
    /// One line for the custody log.
    pub fn describe(&self) -> String {
        match self {
            FetchError::NotFound => "404 not found".into(),
            FetchError::Expired => "403 URL expired".into(),
            FetchError::Archived => "409 archived".into(),
            FetchError::Incomplete { why, .. } => format!("incomplete: {why}"),
            FetchError::Throttled(after) => format!("429 throttled (Retry-After {after:?})"),
            FetchError::SizeMismatch { got, stated } => {
                format!("{got} bytes; the API states {stated}")
            }
            FetchError::NotEvidence { why, .. } => why.clone(),
            FetchError::Refused(w) => format!("refused: {w}"),
            FetchError::Io(e) => format!("local I/O error: {e}"),
        }
    }
}

/// The file extension for a Content-Type: from the type, never assumed.
pub fn extension(content_type: &str) -> &'static str {
    match content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => "wav",
        "audio/ogg" | "audio/opus" | "application/ogg" => "ogg",
        "audio/mpeg" | "audio/mp3" => "mp3",
        "audio/webm" | "video/webm" => "webm",
        "audio/mp4" | "audio/x-m4a" => "m4a",
        _ => "bin",
    }
}

/// GETs `url` into `part`. `bearer` only for API-hosted media (the search API's `/media`);
/// pre-signed URLs are fetched with no credentials at all.
pub async fn fetch(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    part: &Path,
    stated_size: Option<u64>,
    ticket: Option<u64>,
) -> Result<Fetched, FetchError> {
    let mut rb = http.get(url);
    if let Some(t) = bearer {
        rb = rb.bearer_auth(t);
    }
    let sent = tokio::time::Instant::now();
    let ticket = ticket.unwrap_or(0);
    let mut resp = rb.send().await.map_err(|e| {
        let what = Attempt::Transport(Transport::of(&e));
        FetchError::Incomplete {
            why: format!("request failed: {}", e.without_url()),
            what,
        }
    })?;
    let status = resp.status().as_u16();
    match status {
        200 => {}
        404 | 410 => return Err(FetchError::NotFound),
        409 => return Err(FetchError::Archived),
        403 => {
            let body = resp.text().await.unwrap_or_default();
            return Err(if body.to_ascii_lowercase().contains("expired") {
                FetchError::Expired
            } else {
                FetchError::Refused(format!("403 {}", snippet(&body)))
            });
        }
        429 => {
            let after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            return Err(FetchError::Throttled(
                after.map(std::time::Duration::from_secs),
            ));
        }
        408 | 500..=599 => {
            return Err(FetchError::Incomplete {
                why: format!("HTTP {status}"),
                what: Attempt::Status(status, None),
            });
        }
        _ => {
            let body = resp.text().await.unwrap_or_default();
            return Err(FetchError::Refused(format!("{status} {}", snippet(&body))));
        }
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
        .unwrap_or_default();
    let declared = resp.content_length();
    let window = crate::http::RateWindow::from_headers(resp.headers(), sent, ticket);
    let limit = declared.or(stated_size);
    let io = |e: std::io::Error| FetchError::Io(Error::io(part, e));
    let mut opts = tokio::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(WORKING_MODE);
    let file = opts.open(part).await.map_err(io)?;
    let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, file);
    let mut hasher = Sha256::new();
    let mut n: u64 = 0;
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                // Never the URL: a pre-signed URL's query is a credential.
                let what = Attempt::Transport(Transport::of(&e));
                return Err(FetchError::Incomplete {
                    why: format!("transfer broke after {n} bytes: {}", e.without_url()),
                    what,
                });
            }
        };
        n += chunk.len() as u64;
        if let Some(max) = limit
            && n > max
        {
            return Err(FetchError::Incomplete {
                why: format!("the body is larger than the {max} bytes stated; refused"),
                what: Attempt::Transport(Transport::Long),
            });
        }
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(io)?;
    }
    out.flush().await.map_err(io)?;
    out.into_inner().sync_all().await.map_err(io)?;
    if let Some(d) = declared
        && d != n
    {
        return Err(FetchError::Incomplete {
            why: format!("received {n} bytes of the {d} in Content-Length"),
            what: Attempt::Transport(Transport::Short),
        });
    }
    if let Some(s) = stated_size
        && s != n
    {
        return Err(FetchError::SizeMismatch { got: n, stated: s });
    }
    Ok(Fetched {
        sha256: hex::encode(hasher.finalize()),
        bytes: n,
        content_type,
        window,
    })
}

fn snippet(s: &str) -> String {
    s.chars()
        .take(200)
        .collect::<String>()
        .replace(['\n', '\r'], " ")
}

/// Modes custos gives what it writes, whatever the umask: evidence read-only for everyone,
/// working files writable by the owner only, directories never writable by others.
pub const EVIDENCE_MODE: u32 = 0o444;
/// Files custos still appends to or rewrites (the custody log, the custody record, tag files).
pub const WORKING_MODE: u32 = 0o644;
/// Directories.
pub const DIR_MODE: u32 = 0o755;

/// Creates (truncating) `path` for writing with [`WORKING_MODE`] at most.
pub fn create_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(WORKING_MODE);
    }
    o.open(path)
}

/// Sets `path`'s mode exactly (not through the umask).
pub fn set_mode(path: &Path, mode: u32) -> Result<(), Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(path, e))
    }
    #[cfg(not(unix))]
    {
        let mut p = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .permissions();
        p.set_readonly(mode & 0o222 == 0);
        std::fs::set_permissions(path, p).map_err(|e| Error::io(path, e))
    }
}

/// `create_dir_all` with [`DIR_MODE`] at most for every directory it creates.
pub fn make_dirs(dir: &Path) -> Result<(), Error> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(DIR_MODE);
    }
    b.create(dir).map_err(|e| Error::io(dir, e))
}

/// Renames `part` to `dest`, makes it read-only ([`EVIDENCE_MODE`]), writes `<dest>.sha256`
/// (two spaces, as `sha256sum -c` and `shasum -c` both accept), and fsyncs the directory.
pub fn finalize(part: &Path, dest: &Path, sha256: &str) -> Result<(), Error> {
    set_mode(part, EVIDENCE_MODE)?;
    std::fs::rename(part, dest).map_err(|e| Error::io(dest, e))?;
    let name = dest
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    write_sealed(&sidecar(dest), format!("{sha256}  {name}\n").as_bytes())
}

/// `<file>.sha256`.
pub fn sidecar(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

/// Writes a file via a temporary name, fsync, rename and an fsync of the directory: readers
/// see the old file or the new one, never half of one, and after a power loss the new name is
/// there if this returned. Mode [`WORKING_MODE`].
pub fn write_durably(path: &Path, data: &[u8]) -> Result<(), Error> {
    write_with_mode(path, data, WORKING_MODE)
}

/// [`write_durably`], read-only ([`EVIDENCE_MODE`]): for files written once (the query
/// record, the manifest, metadata as received, sidecars).
pub fn write_sealed(path: &Path, data: &[u8]) -> Result<(), Error> {
    write_with_mode(path, data, EVIDENCE_MODE)
}

fn write_with_mode(path: &Path, data: &[u8], mode: u32) -> Result<(), Error> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // A read-only leftover of a crashed run cannot be truncated by its owner: start afresh.
    let _ = std::fs::remove_file(&tmp);
    {
        let mut f = create_file(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(data).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    if mode != WORKING_MODE {
        set_mode(&tmp, mode)?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

/// fsyncs a directory so a rename in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_come_from_the_content_type() {
        assert_eq!(extension("audio/wav"), "wav");
        assert_eq!(extension("Audio/OGG; codecs=opus"), "ogg");
        assert_eq!(extension("audio/mpeg"), "mp3");
        assert_eq!(extension("audio/webm"), "webm");
        assert_eq!(extension("application/octet-stream"), "bin");
        assert_eq!(extension(""), "bin");
    }
}
