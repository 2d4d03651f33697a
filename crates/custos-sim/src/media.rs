//! Media delivery: pre-signed, expiring URLs served by the simulator itself (as Genesys hands
//! out S3/CloudFront links), and the byte stream behind them and behind the search API's
//! `/media`, with the download faults (purge, truncation, lying Content-Length) and the
//! bandwidth cap.
//!
//! A pre-signed URL authenticates by its signature alone; like S3, a request that also carries
//! an `Authorization` header is refused (400 InvalidArgument) and counted, so a test can prove a
//! client never leaks its bearer token to a media host.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::Sim;
use crate::audio::Codec;
use crate::catalog::FileState;
use crate::state::Inner;

type HmacSha256 = hmac::Hmac<Sha256>;

fn signature(inner: &Inner, cid: &str, rid: &str, format: &str, expires: i64) -> String {
    let mut mac = HmacSha256::new_from_slice(&inner.url_key).expect("any key length");
    mac.update(format!("{cid}/{rid}/{format}/{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Issues a media URL for a recording in `codec`, valid for the scenario's TTL — or, the first
/// time for a recording hit by the expired-urls fault, already expired.
pub fn issue_url(inner: &Inner, st: &mut crate::state::State, rec: usize, codec: Codec) -> String {
    let r = &inner.catalog.recordings[rec];
    let first = st.urls_issued.insert(rec);
    let now = inner.clock.unix();
    let expires = if first && r.faults.expired_url {
        now - 1
    } else {
        now + inner.scenario.url_ttl_s as i64
    };
    let f = codec.format_id();
    let sig = signature(inner, &r.conversation_id, &r.id, f, expires);
    format!(
        "{}/media/{}/{}/{f}?expires={expires}&signature={sig}",
        inner.base_url(),
        r.conversation_id,
        r.id
    )
}

/// Issues a pre-signed URL for a recording's Speech & Text Analytics transcript
/// (crate::transcripts), as Genesys hands out `TranscriptUrl.url`.
pub fn issue_transcript_url(inner: &Inner, _st: &mut crate::state::State, rec: usize) -> String {
    let r = &inner.catalog.recordings[rec];
    let expires = inner.clock.unix() + inner.scenario.url_ttl_s as i64;
    let sig = signature(inner, &r.conversation_id, &r.id, TRANSCRIPT, expires);
    format!(
        "{}/media/{}/{}/{TRANSCRIPT}?expires={expires}&signature={sig}",
        inner.base_url(),
        r.conversation_id,
        r.id
    )
}

/// The folder of orphan recordings' media URLs (no conversation names them; catalog
/// conversations have UUIDs, so none is named this).
pub const ORPHANS: &str = "orphans";

/// Issues a pre-signed URL for orphan recording `id` in `codec`.
pub fn issue_orphan_url(inner: &Inner, id: &str, codec: Codec) -> String {
    let expires = inner.clock.unix() + inner.scenario.url_ttl_s as i64;
    let f = codec.format_id();
    let sig = signature(inner, ORPHANS, id, f, expires);
    format!(
        "{}/media/{ORPHANS}/{id}/{f}?expires={expires}&signature={sig}",
        inner.base_url()
    )
}

/// The "format" of a transcript URL.
const TRANSCRIPT: &str = "TRANSCRIPT";

fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

/// `GET /media/{cid}/{rid}/{format}?expires=…&signature=…`
pub async fn presigned(
    State(sim): State<Sim>,
    Path((cid, rid, format)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let inner = &sim.0;
    inner.stats().media_requests += 1;
    if headers.contains_key(header::AUTHORIZATION) {
        inner.stats().bearer_on_media += 1;
        return s3_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
        );
    }
    let expires: Option<i64> = q.get("expires").and_then(|e| e.parse().ok());
    let good_sig = expires.is_some_and(|e| {
        q.get("signature")
            .is_some_and(|s| *s == signature(inner, &cid, &rid, &format, e))
    });
    if !good_sig {
        inner.stats().bad_signature += 1;
        return s3_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    if expires.is_some_and(|e| e < inner.clock.unix()) {
        inner.stats().expired_url_hits += 1;
        return s3_error(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired");
    }
    if cid == ORPHANS {
        let body = Codec::from_url_id(&format)
            .filter(|c| !c.is_native())
            .and_then(|codec| Some((codec, crate::orphans::bytes(inner, &rid, codec)?)));
        return match body {
            Some((codec, bytes)) => {
                inner.stats().media_bytes += bytes.len() as u64;
                ([(header::CONTENT_TYPE, codec.content_type())], bytes).into_response()
            }
            None => s3_error(
                StatusCode::NOT_FOUND,
                "NoSuchKey",
                "The specified key does not exist.",
            ),
        };
    }
    if let (TRANSCRIPT, Some(rec)) = (format.as_str(), inner.catalog.recording(&rid))
        && inner.catalog.recordings[rec].conversation_id == cid
        && crate::transcripts::has_transcript(inner, rec)
    {
        return crate::wire::ok(crate::transcripts::document(inner, rec));
    }
    let (Some(rec), Some(codec)) = (inner.catalog.recording(&rid), Codec::from_url_id(&format))
    else {
        return s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    };
    if inner.catalog.recordings[rec].conversation_id != cid {
        return s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    }
    match stream_media(&sim, rec, codec) {
        Some(resp) => resp,
        None => s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        ),
    }
}

/// Whether the purge fault deletes `r` now. Deletion protection (a legal hold) overrides the
/// retention policy that purges.
fn purge_hits(st: &crate::state::State, r: &crate::catalog::Recording) -> bool {
    r.faults.purge
        && r.file_state == FileState::Available
        && !st.protected.contains_key(&r.conversation)
}

/// The media response for a recording, with its faults; `None` if the recording is gone (or
/// is deleted right now by the purge fault).
pub fn stream_media(sim: &Sim, rec: usize, codec: Codec) -> Option<Response> {
    let inner = &sim.0;
    let r = &inner.catalog.recordings[rec];
    let attempt = {
        let mut st = inner.state();
        if !inner.file_state(&st, rec).downloadable() {
            return None;
        }
        if purge_hits(&st, r) {
            st.purged.insert(rec);
            drop(st);
            inner.stats().purged += 1;
            return None;
        }
        let a = st.download_attempts.entry((rec, codec)).or_default();
        *a += 1;
        *a
    };
    let fa = inner.scenario.faults.fault_attempts;
    let faulty = fa == 0 || attempt <= fa;
    let spec = r.media_as(codec);
    let size = spec.size();
    let (declared, send, fail_at, fault) = if faulty && r.faults.truncate {
        (size, size, Some(size / 2), Some("truncate"))
    } else if faulty && r.faults.length_over {
        (size + 1024, size, None, Some("length-over"))
    } else if faulty && r.faults.length_under {
        let d = size - (size / 4).max(1);
        (d, d, None, Some("length-under"))
    } else {
        (size, size, None, None)
    };
    if let Some(f) = fault {
        *inner.stats().media_faults.entry(f.to_owned()).or_default() += 1;
    }
    let bandwidth = inner.scenario.bandwidth;
    let max_chunk = if bandwidth > 0 {
        (bandwidth / 10).max(1024) as usize
    } else {
        usize::MAX
    };
    let sim2 = sim.clone();
    struct Cursor {
        media: crate::audio::MediaGen,
        pending: Bytes,
        sent: u64,
    }
    let cur = Cursor {
        media: spec.generator(),
        pending: Bytes::new(),
        sent: 0,
    };
    let body = futures_util::stream::unfold(Some(cur), move |cur| {
        let sim = sim2.clone();
        async move {
            let mut cur = cur?;
            if let Some(at) = fail_at
                && cur.sent >= at
            {
                // Let what was sent reach the client first: a real drop happens mid-body, after
                // the headers and some bytes, not before anything was written.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let e = std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "custos-sim: truncate fault",
                );
                return Some((Err(e), None));
            }
            if cur.sent >= send {
                return None;
            }
            if cur.pending.is_empty() {
                cur.pending = cur.media.next_chunk()?;
            }
            let mut limit = max_chunk.min(cur.pending.len()) as u64;
            limit = limit.min(send - cur.sent);
            if let Some(at) = fail_at {
                limit = limit.min(at - cur.sent);
            }
            let chunk = cur.pending.split_to(limit as usize);
            cur.sent += chunk.len() as u64;
            sim.0.stats().media_bytes += chunk.len() as u64;
            if bandwidth > 0 {
                tokio::time::sleep(std::time::Duration::from_secs_f64(
                    chunk.len() as f64 / bandwidth as f64,
                ))
                .await;
            }
            Some((Ok::<Bytes, std::io::Error>(chunk), Some(cur)))
        }
    });
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(spec.codec.content_type()),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(declared));
    Some(resp)
}
