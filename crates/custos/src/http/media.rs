//! Downloading one media file as evidence: stream to `<name>.part` while hashing, check the
//! byte count against Content-Length (and the size the API stated, when it stated one), refuse a
//! body larger than stated, fsync, then rename to the final name, make it read-only, and write a
//! `sha256sum -c` sidecar. A partial file never carries a final name.

use std::path::Path;

use tokio::io::AsyncWriteExt;

use super::response::read_limited;
use super::retry::{Attempt, Transport, retry_after};
use crate::error::Error;

/// An error answer's body is read for its first words only.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The start of an error answer's body, bounded (a hostile server cannot make custos read a
/// 2 GB "error page").
async fn error_text(resp: reqwest::Response) -> String {
    match read_limited(resp, MAX_ERROR_BODY).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err((_, why)) => format!("(body not read: {why})"),
    }
}

/// A completed download, still under its `.part` name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// Lowercase hex MD5, from the same pass.
    pub md5: String,
    /// Lowercase hex SHA-1, from the same pass.
    pub sha1: String,
    /// Bytes written.
    pub bytes: u64,
    /// Content-Type as served (parameters stripped).
    pub content_type: String,
    /// The server's rate window (API-hosted media answers with one).
    pub window: Option<super::RateWindow>,
    /// The bytes kept from an earlier read that broke, and hashed again (0: read whole).
    pub resumed_from: u64,
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
        what: Attempt,
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
        "video/mp4" => "mp4",
        "message/rfc822" => "eml",
        "application/zip" | "application/x-zip-compressed" => "zip",
        "application/json" => "json",
        _ => "bin",
    }
}

/// Where a read that broke goes on from: the bytes of `part` already written (a prefix of the
/// object), and the object's ETag, so that the rest is read only from the same object
/// (`Range: bytes=FROM-` with `If-Match`). Used for objects of a store (the archive), whose
/// ETag names their bytes.
#[derive(Clone, Copy, Debug)]
pub struct Resume<'a> {
    /// Bytes of `part` kept: the next byte read is this one.
    pub from: u64,
    /// The object's ETag, as listed (without quotes).
    pub etag: &'a str,
}

/// GETs `url` into `part`. `bearer` only for API-hosted media (the search API's `/media`);
/// pre-signed URLs are fetched with no credentials at all. With `resume`, the bytes `part`
/// holds are kept and hashed again, and only the rest is asked for; a store that no longer
/// holds that object (412), or answers with the whole object, is read from the start.
pub async fn fetch(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    part: &Path,
    stated_size: Option<u64>,
    ticket: Option<u64>,
    resume: Option<Resume<'_>>,
) -> Result<Fetched, FetchError> {
    let mut resume = resume.filter(|r| r.from > 0);
    let sent = tokio::time::Instant::now();
    let ticket = ticket.unwrap_or(0);
    let mut resp = loop {
        let mut rb = http.get(url);
        if let Some(t) = bearer {
            rb = rb.bearer_auth(t);
        }
        if let Some(r) = resume {
            rb = rb
                .header(reqwest::header::RANGE, format!("bytes={}-", r.from))
                .header(reqwest::header::IF_MATCH, format!("\"{}\"", r.etag));
        }
        let resp = rb.send().await.map_err(|e| {
            let what = Attempt::Transport(Transport::of(&e));
            FetchError::Incomplete {
                why: format!("request failed: {}", e.without_url()),
                what,
            }
        })?;
        // The object is no longer the one whose first bytes were kept: all of it, again.
        if resume.is_some() && resp.status().as_u16() == 412 {
            resume = None;
            continue;
        }
        break resp;
    };
    let status = resp.status().as_u16();
    tracing::debug!(url = %crate::custody::redact_url(url), status, bearer = bearer.is_some(), resumed = resume.map(|r| r.from), "media");
    // A store that ignores the range answers with the whole object: read from the start.
    let from = match (status, resume) {
        (206, Some(r)) => {
            let range = resp
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            match content_range(range) {
                Some((start, _, total))
                    if start == r.from && stated_size.is_none_or(|s| s == total) =>
                {
                    r.from
                }
                _ => {
                    return Err(FetchError::Incomplete {
                        why: format!(
                            "asked for the bytes from {} on, the store answered Content-Range {:?}",
                            r.from,
                            snippet(range)
                        ),
                        what: Attempt::Transport(Transport::Short),
                    });
                }
            }
        }
        (200, _) => 0,
        _ => return Err(refusal(resp, status).await),
    };
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
        .unwrap_or_default();
    // Content-Length counts what this answer carries: the rest of the object when resumed.
    let declared = resp.content_length().map(|d| d + from);
    let window = super::RateWindow::from_headers(resp.headers(), sent, ticket);
    let limit = declared.or(stated_size);
    let (digests, n) = stream_to_part(&mut resp, part, limit, from).await?;
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
        sha256: digests.sha256.hex(),
        md5: digests.md5,
        sha1: digests.sha1,
        bytes: n,
        content_type,
        window,
        resumed_from: from,
    })
}

/// `bytes START-END/TOTAL` (RFC 9110 §14.4): the three numbers.
fn content_range(v: &str) -> Option<(u64, u64, u64)> {
    let (range, total) = v.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let n = |s: &str| s.trim().parse::<u64>().ok();
    let (start, end, total) = (n(start)?, n(end)?, n(total)?);
    (start <= end && end < total).then_some((start, end, total))
}

/// What a non-200 answer means for the download (its body read to a cap).
async fn refusal(resp: reqwest::Response, status: u16) -> FetchError {
    match status {
        404 | 410 => FetchError::NotFound,
        409 => FetchError::Archived,
        403 => {
            let body = error_text(resp).await;
            if body.to_ascii_lowercase().contains("expired") {
                FetchError::Expired
            } else {
                FetchError::Refused(format!("403 {}", snippet(&body)))
            }
        }
        429 => FetchError::Throttled(retry_after(resp.headers())),
        408 | 500..=599 => FetchError::Incomplete {
            why: format!("HTTP {status}"),
            what: Attempt::Status(status, None),
        },
        _ => {
            let body = error_text(resp).await;
            FetchError::Refused(format!("{status} {}", snippet(&body)))
        }
    }
}

/// Streams the body into `part` while hashing it (SHA-256, MD5, SHA-1 in the one pass),
/// refusing more than `limit` bytes in all; fsynced. With `from` > 0 the body is the rest of
/// the object: `part`'s first `from` bytes are kept, and hashed again before the body.
async fn stream_to_part(
    resp: &mut reqwest::Response,
    part: &Path,
    limit: Option<u64>,
    from: u64,
) -> Result<(crate::digest::Digests, u64), FetchError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let io = |e: std::io::Error| FetchError::Io(Error::io(part, e));
    let mut opts = tokio::fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(from == 0);
    #[cfg(unix)]
    opts.mode(crate::durable::WORKING_MODE);
    let mut file = opts.open(part).await.map_err(io)?;
    // SHA-256 here, MD5 and SHA-1 on a blocking thread fed the same chunks (shared, not
    // copied): the three digests of one pass, with the second core doing the extra work.
    let mut sha256 = <sha2::Sha256 as sha2::Digest>::new();
    let (side_tx, mut side_rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
    let side = tokio::task::spawn_blocking(move || {
        use md5::Digest as _;
        let (mut md5, mut sha1) = (md5::Md5::new(), sha1::Sha1::new());
        while let Some(c) = side_rx.blocking_recv() {
            md5.update(&c);
            sha1.update(&c);
        }
        (hex::encode(md5.finalize()), hex::encode(sha1.finalize()))
    });
    let mut n: u64 = 0;
    if from > 0 {
        // What was kept is hashed as it is on disk: exactly the bytes the file will hold.
        file.set_len(from).await.map_err(io)?;
        file.seek(std::io::SeekFrom::Start(0)).await.map_err(io)?;
        let mut buf = vec![0u8; 256 * 1024];
        while n < from {
            let want = buf.len().min((from - n) as usize);
            let got = file.read(&mut buf[..want]).await.map_err(io)?;
            if got == 0 {
                return Err(FetchError::Io(Error::io(
                    part,
                    std::io::Error::other("the bytes kept from the broken read are not all there"),
                )));
            }
            let chunk = bytes::Bytes::copy_from_slice(&buf[..got]);
            sha2::Digest::update(&mut sha256, &chunk);
            let _ = side_tx.send(chunk).await;
            n += got as u64;
        }
    }
    let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, file);
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                // What arrived is kept on disk, whole: a read that can go on from it does.
                let _ = out.flush().await;
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
        sha2::Digest::update(&mut sha256, &chunk);
        out.write_all(&chunk).await.map_err(io)?;
        // The side hashers only end when this sender is dropped, so a send cannot fail.
        let _ = side_tx.send(chunk).await;
    }
    drop(side_tx);
    out.flush().await.map_err(io)?;
    out.into_inner().sync_all().await.map_err(io)?;
    let (md5, sha1) = side
        .await
        .map_err(|e| FetchError::Io(Error::io(part, std::io::Error::other(e))))?;
    let digests = crate::digest::Digests {
        sha256: crate::digest::Sha256::finish(sha256),
        md5,
        sha1,
    };
    Ok((digests, n))
}

fn snippet(s: &str) -> String {
    s.chars()
        .take(200)
        .collect::<String>()
        .replace(['\n', '\r'], " ")
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
        assert_eq!(extension("video/webm"), "webm");
        assert_eq!(extension("message/rfc822"), "eml");
        assert_eq!(extension("application/zip"), "zip");
        assert_eq!(extension("application/octet-stream"), "bin");
        assert_eq!(extension(""), "bin");
    }

    /// A one-connection HTTP server on loopback that sends `head` and then `body_chunks` chunks
    /// of 64 KiB (chunked encoding), as a hostile media host might.
    async fn serve_once(head: &'static str, body_chunks: usize) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(head.as_bytes()).await;
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..body_chunks {
                let frame = format!("{:x}\r\n", chunk.len());
                if s.write_all(frame.as_bytes()).await.is_err()
                    || s.write_all(&chunk).await.is_err()
                    || s.write_all(b"\r\n").await.is_err()
                {
                    return;
                }
            }
            let _ = s.write_all(b"0\r\n\r\n").await;
        });
        format!("http://{addr}/media")
    }

    #[tokio::test]
    async fn an_error_answer_is_read_to_a_cap_and_retry_after_in_both_forms() {
        let dir = std::env::temp_dir().join(format!("custos-media-{}", std::process::id()));
        crate::durable::make_dirs(&dir).unwrap();
        let part = dir.join("x.part");
        let http = reqwest::Client::new();
        // A 2 GB "error page" (32,768 chunks of 64 KiB) is not read: the refusal says so.
        let url = serve_once(
            "HTTP/1.1 403 Forbidden\r\ntransfer-encoding: chunked\r\n\r\n",
            32_768,
        )
        .await;
        match fetch(&http, &url, None, &part, None, None, None).await {
            Err(FetchError::Refused(why)) => {
                assert!(why.contains("larger than 65536 bytes"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        // Retry-After as an HTTP date (RFC 9110), not only whole seconds.
        let when = time::OffsetDateTime::now_utc() + time::Duration::seconds(30);
        let date = when
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap();
        let head: &'static str = Box::leak(
            format!(
                "HTTP/1.1 429 Too Many Requests\r\nretry-after: {date}\r\ncontent-length: 0\r\n\r\n"
            )
            .into_boxed_str(),
        );
        let url = serve_once(head, 0).await;
        match fetch(&http, &url, None, &part, None, None, None).await {
            Err(FetchError::Throttled(Some(d))) => {
                assert!((20..=31).contains(&d.as_secs()), "{d:?}")
            }
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A loopback server answering one connection per answer in `answers`, in order: each
    /// answer's head, then its body, cut after `cut` body bytes (the connection closed). The
    /// requests' heads, as received.
    async fn serve_answers(
        answers: Vec<(String, Vec<u8>, Option<usize>)>,
    ) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            for (head, body, cut) in answers {
                let (mut s, _) = l.accept().await.unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    req.extend_from_slice(&buf[..n]);
                }
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&req).to_ascii_lowercase());
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body[..cut.unwrap_or(body.len())]).await;
                let _ = s.shutdown().await;
            }
        });
        (format!("http://{addr}/object"), seen)
    }

    fn body() -> Vec<u8> {
        (0..200_000u32).map(|i| (i % 251) as u8).collect()
    }

    fn whole(body: &[u8]) -> String {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: audio/wav\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
    }

    fn rest(body: &[u8], from: usize) -> String {
        format!(
            "HTTP/1.1 206 Partial Content\r\ncontent-type: audio/wav\r\ncontent-length: {}\r\ncontent-range: bytes {from}-{}/{}\r\nconnection: close\r\n\r\n",
            body.len() - from,
            body.len() - 1,
            body.len()
        )
    }

    /// A read cut after `cut` bytes, then `fetch` again resuming from what `part` kept, with
    /// the second answer `second`: what the second fetch gave, and the requests seen.
    async fn broken_then(
        name: &str,
        cut: usize,
        second: (String, Vec<u8>, Option<usize>),
    ) -> (Result<Fetched, FetchError>, Vec<String>, u64) {
        let dir = std::env::temp_dir().join(format!("custos-resume-{name}-{}", std::process::id()));
        crate::durable::make_dirs(&dir).unwrap();
        let part = dir.join("x.part");
        let b = body();
        let (url, seen) = serve_answers(vec![(whole(&b), b.clone(), Some(cut)), second]).await;
        let http = reqwest::Client::new();
        let size = Some(b.len() as u64);
        let first = fetch(&http, &url, None, &part, size, None, None).await;
        assert!(
            matches!(first, Err(FetchError::Incomplete { .. })),
            "{first:?}"
        );
        let kept = std::fs::metadata(&part).unwrap().len();
        let resume = Resume {
            from: kept,
            etag: "abc",
        };
        let r = fetch(&http, &url, None, &part, size, None, Some(resume)).await;
        if let Ok(f) = &r {
            assert_eq!(std::fs::read(&part).unwrap(), b, "the file is the object");
            assert_eq!(f.sha256, crate::digest::Sha256::of(&b).hex());
        }
        std::fs::remove_dir_all(&dir).unwrap();
        let seen = seen.lock().unwrap().clone();
        (r, seen, kept)
    }

    #[tokio::test]
    async fn a_broken_read_goes_on_from_the_bytes_kept_and_hashes_the_whole_object() {
        let b = body();
        let (r, seen, kept) = broken_then(
            "rest",
            120_000,
            (rest(&b, 120_000), b[120_000..].to_vec(), None),
        )
        .await;
        assert_eq!(kept, 120_000, "what arrived was kept");
        let f = r.unwrap();
        assert_eq!((f.bytes, f.resumed_from), (b.len() as u64, 120_000));
        assert!(seen[1].contains("range: bytes=120000-"), "{}", seen[1]);
        assert!(seen[1].contains("if-match: \"abc\""), "{}", seen[1]);
        assert!(!seen[0].contains("range:"), "{}", seen[0]);
    }

    #[tokio::test]
    async fn a_store_that_ignores_the_range_is_read_from_the_start() {
        let b = body();
        let (r, _, _) = broken_then("ignored", 90_000, (whole(&b), b.clone(), None)).await;
        assert_eq!(r.unwrap().resumed_from, 0);
    }

    #[tokio::test]
    async fn an_object_that_changed_is_read_again_whole() {
        let b = body();
        // 412 to the ranged request, then (asked again without a range) the whole object.
        let dir = std::env::temp_dir().join(format!("custos-resume-412-{}", std::process::id()));
        crate::durable::make_dirs(&dir).unwrap();
        let part = dir.join("x.part");
        std::fs::write(&part, &b[..50_000]).unwrap();
        let (url, seen) = serve_answers(vec![
            (
                "HTTP/1.1 412 Precondition Failed\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into(),
                Vec::new(),
                None,
            ),
            (whole(&b), b.clone(), None),
        ])
        .await;
        let http = reqwest::Client::new();
        let resume = Resume {
            from: 50_000,
            etag: "abc",
        };
        let f = fetch(
            &http,
            &url,
            None,
            &part,
            Some(b.len() as u64),
            None,
            Some(resume),
        )
        .await
        .unwrap();
        assert_eq!((f.resumed_from, f.bytes), (0, b.len() as u64));
        assert_eq!(f.sha256, crate::digest::Sha256::of(&b).hex());
        let seen = seen.lock().unwrap().clone();
        assert!(
            seen[0].contains("range:") && !seen[1].contains("range:"),
            "{seen:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_range_answer_that_does_not_start_where_asked_is_refused() {
        let b = body();
        let (r, _, _) = broken_then(
            "wrong",
            100_000,
            (rest(&b, 99_000), b[99_000..].to_vec(), None),
        )
        .await;
        match r {
            Err(FetchError::Incomplete { why, .. }) => {
                assert!(why.contains("Content-Range"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn content_ranges_parse_only_when_whole_and_ordered() {
        assert_eq!(content_range("bytes 10-99/100"), Some((10, 99, 100)));
        assert_eq!(content_range("bytes 10-100/100"), None);
        assert_eq!(content_range("bytes 20-10/100"), None);
        assert_eq!(content_range("bytes */100"), None);
        assert_eq!(content_range("items 1-2/3"), None);
    }
}
