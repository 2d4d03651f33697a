//! Hostile or broken servers in front of the API: an HTML page from a proxy, malformed JSON, a
//! 2 GB body, a redirect to another host. Each stops the export with an error that says what
//! happened, and the bearer token never leaves for another host.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use custos::export::{ExportConfig, NoProgress, Retrieval, SourceKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{config_at, out_dir};

/// What the server answers to every request but the token's.
#[derive(Clone)]
enum Reply {
    /// Raw bytes: status line, headers, body.
    Raw(Vec<u8>),
    /// 200, `Content-Length: 2147483648`, then a trickle that never ends.
    Declared2Gb,
    /// 200, chunked, 1 MiB chunks without end.
    EndlessChunks,
}

fn raw(status: &str, ctype: &str, extra: &str, body: &str) -> Reply {
    Reply::Raw(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// Reads one request; returns its first line.
async fn read_request(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        let n = s.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut tmp).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    head.lines().next().map(str::to_owned)
}

async fn serve(l: TcpListener, reply: Reply, api_hits: Arc<AtomicUsize>) {
    while let Ok((mut s, _)) = l.accept().await {
        let reply = reply.clone();
        let hits = api_hits.clone();
        tokio::spawn(async move {
            let Some(line) = read_request(&mut s).await else {
                return;
            };
            // The token and who it is are answered plainly: the hostile answer is the first
            // question about recordings.
            let plain = if line.contains("/oauth/token") {
                Some(r#"{"access_token":"tok-123","token_type":"bearer","expires_in":86400}"#)
            } else if line.contains("/api/v2/tokens/me") {
                Some(
                    r#"{"organization":{"id":"org-1","name":"Org"},"OAuthClient":{"id":"id","name":"c"}}"#,
                )
            } else {
                None
            };
            if let Some(body) = plain {
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
                return;
            }
            hits.fetch_add(1, Ordering::SeqCst);
            match reply {
                Reply::Raw(b) => {
                    let _ = s.write_all(&b).await;
                }
                Reply::Declared2Gb => {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2147483648\r\n\r\n{\"conversations\": [")
                        .await;
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(60), async {
                        loop {
                            if s.write_all(b" ").await.is_err() {
                                break;
                            }
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    })
                    .await;
                }
                Reply::EndlessChunks => {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                        .await;
                    let chunk = vec![b' '; 1 << 20];
                    loop {
                        let mut c = format!("{:x}\r\n", chunk.len()).into_bytes();
                        c.extend_from_slice(&chunk);
                        c.extend_from_slice(b"\r\n");
                        if s.write_all(&c).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
}

fn config(base: &str, out: std::path::PathBuf) -> ExportConfig {
    let mut c = config_at(
        base,
        "id",
        "secret",
        out,
        SourceKind::Genesys,
        Retrieval::Batch,
    );
    // Inside the analytics 35 days: the synchronous query is the first API call.
    c.now = Some(time::macros::datetime!(2023-10-09 00:00 UTC));
    c
}

/// Runs an export against a server that answers `reply`; returns the error it stopped with.
async fn stopped_by(name: &str, reply: Reply) -> String {
    stopped_by_error(name, reply).await.to_string()
}

async fn stopped_by_error(name: &str, reply: Reply) -> custos::Error {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    tokio::spawn(serve(l, reply, hits.clone()));
    let out = out_dir(&format!("hostile-{name}"));
    let started = std::time::Instant::now();
    let e = custos::export(&config(&base, out.clone()), &NoProgress)
        .await
        .expect_err(name);
    // Answered, not retried into a long stall: none of these gets better by asking again.
    assert_eq!(hits.load(Ordering::SeqCst), 1, "{name}: {e}");
    assert!(started.elapsed().as_secs() < 20, "{name}");
    // What was written before the stop is intact: the query record, hashed.
    assert!(out.join("data/query.json").exists(), "{name}");
    let _ = std::fs::remove_dir_all(&out);
    e
}

#[tokio::test]
async fn an_html_page_from_a_proxy_is_named_as_such() {
    let e = stopped_by(
        "html-403",
        raw(
            "403 Forbidden",
            "text/html; charset=utf-8",
            "",
            "<!DOCTYPE html><html><head><title>Access Denied by Corporate Proxy</title></head><body>blocked</body></html>",
        ),
    )
    .await;
    assert!(
        e.contains("403")
            && e.contains("HTML page")
            && e.contains("Access Denied by Corporate Proxy")
            && e.contains("proxy"),
        "{e}"
    );
    // A captive portal answering 200 with a login page.
    let e = stopped_by(
        "html-200",
        raw(
            "200 OK",
            "text/html",
            "",
            "<html><title>Hotel WiFi login</title></html>",
        ),
    )
    .await;
    assert!(
        e.contains("HTML page") && e.contains("Hotel WiFi login"),
        "{e}"
    );
}

#[tokio::test]
async fn malformed_json_and_a_wrong_content_type_are_clear_errors() {
    let e = stopped_by(
        "malformed",
        raw(
            "200 OK",
            "application/json",
            "",
            r#"{"conversations": [{"conversationId": "#,
        ),
    )
    .await;
    assert!(e.contains("not valid JSON (application/json)"), "{e}");
    let e = stopped_by("text", raw("200 OK", "text/plain", "", "OK")).await;
    assert!(e.contains("not valid JSON (text/plain)"), "{e}");
}

#[tokio::test]
async fn a_2_gb_body_is_refused_without_reading_it() {
    let e = stopped_by("2gb", Reply::Declared2Gb).await;
    assert!(e.contains("larger than 67108864 bytes"), "{e}");
    // No Content-Length, endless chunks: cut off at the cap.
    let e = stopped_by("chunks", Reply::EndlessChunks).await;
    assert!(e.contains("larger than 67108864 bytes"), "{e}");
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed_and_gets_no_token() {
    // The other host: counts every connection it gets.
    let other = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let other_addr = other.local_addr().unwrap();
    let stolen = Arc::new(AtomicUsize::new(0));
    let s2 = stolen.clone();
    tokio::spawn(async move {
        while let Ok((_s, _)) = other.accept().await {
            s2.fetch_add(1, Ordering::SeqCst);
        }
    });
    let e = stopped_by(
        "redirect",
        raw(
            "302 Found",
            "text/plain",
            &format!("Location: http://{other_addr}/steal?sig=secret\r\n"),
            "",
        ),
    )
    .await;
    assert!(e.contains("302") && e.contains("never followed"), "{e}");
    assert!(
        !e.contains("secret"),
        "the Location's query is not repeated: {e}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        stolen.load(Ordering::SeqCst),
        0,
        "the other host was contacted"
    );
}

/// A query the server refuses (here as too large) is not something a re-run fixes: a refusal
/// (exit 2 in the CLI), not a stop to resume (exit 3), asked once, and named with the server's
/// words.
#[tokio::test]
async fn a_query_the_server_refuses_is_permanent_not_resumable() {
    let e = stopped_by_error(
        "refused-400",
        raw(
            "400 Bad Request",
            "application/json",
            "",
            r#"{"code":"bad.request","message":"The query is too large: at most 100 predicates","status":400}"#,
        ),
    )
    .await;
    assert!(e.is_permanent(), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("refused with 400") && text.contains("too large"),
        "{text}"
    );
    // A server error is worth resuming.
    let e = stopped_by_error(
        "refused-501",
        raw(
            "501 Not Implemented",
            "application/json",
            "",
            r#"{"status":501}"#,
        ),
    )
    .await;
    assert!(!e.is_permanent(), "{e}");
}
