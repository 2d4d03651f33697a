//! One media download: bounded attempts, rate-limit pauses, the file judged as media against
//! what the API stated, and kept (Exported), quarantined (Corrupted) or refused.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::super::context::Ctx;
use super::stated::{Stated, judge};
use crate::custody::redact_url;
use crate::durable::sha256_file;
use crate::error::Result;
use crate::http::media::{FetchError, Fetched, Resume, extension, fetch};
use crate::http::{Decision, MEDIA, jitter};
use crate::model::{Item, Outcome};
use crate::query::format_ms;
use crate::state::Done;

/// How often a media URL that expired is asked for again.
pub(super) const URL_ROUNDS: u32 = 3;

/// Result of trying one URL.
pub(super) enum Got {
    /// The item ended (boxed: a Done is large, an expiry is nothing).
    Done(Box<Done>),
    /// The URL expired: get a new one.
    Expired,
}

/// Downloads `url` for `it` with bounded retries and stores the file, or says why not.
pub(super) async fn download(
    ctx: &Ctx<'_>,
    it: &Item,
    url: &str,
    bearer: Option<&str>,
    stated: Stated,
) -> Result<Got> {
    if let Err(e) = crate::http::check_media_url("media URL", url) {
        return Ok(Got::Done(Box::new(Done::no_file(
            Outcome::Failed,
            format!("refused: {e}"),
        ))));
    }
    let part = ctx.part_for(it)?;
    let mut last = String::new();
    let mut mismatches = 0;
    let mut throttled = 0;
    let mut attempt = 0;
    let mut backoff = Duration::ZERO;
    // The bytes kept from a read that broke, when the rest can be read from the same object.
    let mut from = 0u64;
    while attempt < MEDIA.max_attempts {
        attempt += 1;
        let resume = stated
            .resume_etag
            .as_deref()
            .map(|etag| Resume { from, etag })
            .filter(|r| r.from > 0);
        let (r, media, media_json) = attempt_once(ctx, url, bearer, &part, &stated, resume).await;
        log_attempt(ctx, it, url, bearer, attempt, from, &r, media_json, &stated)?;
        from = 0;
        let e = match r {
            Ok(_) if stated.refused.is_some() => {
                let why = stated.refused.as_deref().unwrap_or_default();
                return quarantine(ctx, it, &part, why, media, &stated)
                    .map(|d| Got::Done(Box::new(d)));
            }
            Ok(f) => {
                return keep(ctx, it, &part, f, media, &stated).map(|d| Got::Done(Box::new(d)));
            }
            Err(e) => e,
        };
        let outcome = match e {
            FetchError::Expired => {
                let _ = std::fs::remove_file(&part);
                return Ok(Got::Expired);
            }
            FetchError::Io(e) => return Err(e),
            FetchError::Incomplete { why, what } => {
                last = why;
                match MEDIA.decide(what, attempt, backoff, jitter()) {
                    Decision::Retry(d) => {
                        backoff = d;
                        // A transfer that broke, from a store's object: the next read goes on
                        // from what arrived (never past the size stated, never a body that was
                        // too long).
                        if stated.resume_etag.is_some()
                            && !matches!(
                                what,
                                crate::http::Attempt::Transport(crate::http::Transport::Long)
                            )
                        {
                            let kept = std::fs::metadata(&part).map_or(0, |m| m.len());
                            if kept < stated.size.unwrap_or(u64::MAX) {
                                from = kept;
                            }
                        }
                        None
                    }
                    // Not worth another try (a TLS failure, a client error).
                    Decision::Accept => Some(Done::no_file(
                        Outcome::Failed,
                        format!("download failed: {last}"),
                    )),
                    Decision::GiveUp => Some(Done::no_file(
                        Outcome::Failed,
                        format!("download failed {attempt} times; last: {last}"),
                    )),
                }
            }
            FetchError::Throttled(after) => {
                // Rate limiting is not a failed attempt: the whole client waits, then tries again.
                throttled += 1;
                if throttled > 50 {
                    Some(Done::no_file(
                        Outcome::Failed,
                        "media download throttled (429) more than 50 times",
                    ))
                } else {
                    ctx.api
                        .limiter
                        .pause(after.unwrap_or(Duration::from_secs(1)))
                        .await;
                    attempt -= 1;
                    continue;
                }
            }
            FetchError::SizeMismatch { got, stated: size } => {
                mismatches += 1;
                last = format!("received {got} bytes; the API states outputSizeInBytes {size}");
                if mismatches >= 2 {
                    // Consistent, complete, and not what the source says: keep it, out of the evidence set.
                    return quarantine(ctx, it, &part, &last, None, &stated)
                        .map(|d| Got::Done(Box::new(d)));
                }
                None
            }
            FetchError::NotEvidence { why, media_ms } => {
                // Downloaded whole, but damaged or not the recording the API describes. Once
                // more, in case it was damaged on the way; the same again is kept, quarantined.
                mismatches += 1;
                last = why;
                if mismatches >= 2 {
                    return quarantine(ctx, it, &part, &last, media_ms, &stated)
                        .map(|d| Got::Done(Box::new(d)));
                }
                None
            }
            // Settled at the source: no retry.
            settled => Some(settled_outcome(settled)),
        };
        if from == 0 {
            let _ = std::fs::remove_file(&part);
        }
        if let Some(d) = outcome {
            let _ = std::fs::remove_file(&part);
            return Ok(Got::Done(Box::new(d)));
        }
        tokio::time::sleep(backoff.max(MEDIA.base)).await;
    }
    Ok(Got::Done(Box::new(Done::no_file(
        Outcome::Failed,
        format!("download failed {} times; last: {last}", MEDIA.max_attempts),
    ))))
}

/// What a download that the source settled (gone, archived, refused) comes to.
fn settled_outcome(e: FetchError) -> Done {
    match e {
        FetchError::NotFound => Done::no_file(
            Outcome::Purged,
            "404 at download: deleted at the source after listing",
        ),
        FetchError::Archived => Done::no_file(
            Outcome::Archived,
            "409 at download: archived; restore it before export",
        ),
        FetchError::Refused(why) => {
            Done::no_file(Outcome::Failed, format!("download refused: {why}"))
        }
        other => Done::no_file(Outcome::Failed, other.describe()),
    }
}

/// One GET of the media (in a download slot; API-hosted media under the API budget), the
/// complete file read as media and judged against what the API stated: the result, the
/// duration read (ms), and what the reader found, for the custody log.
async fn attempt_once(
    ctx: &Ctx<'_>,
    url: &str,
    bearer: Option<&str>,
    part: &Path,
    stated: &Stated,
    resume: Option<Resume<'_>>,
) -> (Result<Fetched, FetchError>, Option<u64>, Value) {
    let mut r = {
        let _slot = ctx.downloads.acquire().await.expect("semaphore open");
        let ticket = match bearer {
            Some(_) => Some(ctx.api.limiter.acquire().await),
            None => None,
        };
        let r = fetch(
            &ctx.api.http,
            url,
            bearer,
            part,
            stated.size,
            ticket,
            resume,
        )
        .await;
        if ticket.is_some() {
            ctx.api
                .limiter
                .observe(r.as_ref().ok().and_then(|f| f.window));
        }
        r
    };
    // The store that held the file stated its digest: the bytes read must be those.
    if let Ok(f) = &r {
        let differs = |what: &str, stated: &Option<String>, got: &str| {
            stated
                .as_deref()
                .filter(|s| *s != got)
                .map(|s| format!("{what} {got} of the bytes read is not the {s} the store states"))
        };
        if let Some(why) = differs("SHA-256", &stated.store_sha256, &f.sha256)
            .or_else(|| differs("MD5", &stated.store_md5, &f.md5))
        {
            return (
                Err(FetchError::NotEvidence {
                    why,
                    media_ms: None,
                }),
                None,
                Value::Null,
            );
        }
    }
    let (mut media, mut media_json) = (None, Value::Null);
    if r.is_ok() {
        let (info, verdict) = judge(ctx, part, stated).await;
        media = info
            .as_ref()
            .and_then(|i| i.duration())
            .map(|d| d.as_millis() as u64);
        if let Err(why) = verdict {
            r = Err(FetchError::NotEvidence {
                why,
                media_ms: media,
            });
        }
        if let Some(i) = info {
            media_json = i.to_json();
        }
    }
    (r, media, media_json)
}

/// One attempt in the custody log (never the URL's query: a pre-signed URL's query is a
/// credential).
#[allow(clippy::too_many_arguments)] // the attempt's facts, each recorded
fn log_attempt(
    ctx: &Ctx<'_>,
    it: &Item,
    url: &str,
    bearer: Option<&str>,
    attempt: u32,
    asked_from: u64,
    r: &Result<Fetched, FetchError>,
    media_json: Value,
    stated: &Stated,
) -> Result<()> {
    let (result, mut facts) = match r {
        Ok(f) => (
            "complete".to_owned(),
            json!({"bytes": f.bytes, "sha256": f.sha256, "md5": f.md5, "sha1": f.sha1, "contentType": f.content_type}),
        ),
        Err(e) => (e.describe(), json!({})),
    };
    // The bytes kept from the read before, hashed again from disk as part of this one.
    if let Ok(f) = r
        && f.resumed_from > 0
    {
        facts["resumedFrom"] = json!(f.resumed_from);
    }
    // A read that asked for the rest of the object (`Range`), whatever the store answered.
    if asked_from > 0 {
        facts["rangeFrom"] = json!(asked_from);
    }
    let mut fields = json!({
        "conversationId": it.conversation_id, "recordingId": it.recording_id, "url": redact_url(url),
        "attempt": attempt, "bearerSent": bearer.is_some(), "result": result,
        "media": media_json, "statedDurationMs": stated.duration_ms, "statedDurationSource": stated.source,
    });
    if let (Value::Object(m), Value::Object(f)) = (&mut fields, facts) {
        m.extend(f);
    }
    tracing::debug!(recording = %it.recording_id, attempt, result = %result, "download attempt");
    ctx.log("download-attempt", fields)?;
    Ok(())
}

/// A file that passed every check: put in place ([`Ctx::place`]), Exported.
fn keep(
    ctx: &Ctx<'_>,
    it: &Item,
    part: &Path,
    f: Fetched,
    media: Option<u64>,
    stated: &Stated,
) -> Result<Done> {
    let content_type = stated
        .content_type
        .map_or_else(|| f.content_type.clone(), str::to_owned);
    let name = format!("{}.{}", it.recording_id, extension(&content_type));
    let file = format!("{}/{name}", it.folder());
    ctx.place(part, &file, &f.sha256)?;
    let reason = if extension(&content_type) == "bin" {
        format!("unrecognised Content-Type '{content_type}'")
    } else {
        String::new()
    };
    Ok(Done {
        outcome: Outcome::Exported,
        reason,
        file: Some(file),
        sha256: Some(f.sha256),
        md5: Some(f.md5),
        sha1: Some(f.sha1),
        bytes: Some(f.bytes),
        content_type: Some(content_type),
        downloaded_at: Some(format_ms(OffsetDateTime::now_utc())),
        media_ms: media,
        stated_ms: stated.duration_ms,
        stated_source: Some(stated.source.clone()),
    })
}

fn quarantine(
    ctx: &Ctx<'_>,
    it: &Item,
    part: &Path,
    why: &str,
    media_ms: Option<u64>,
    stated: &Stated,
) -> Result<Done> {
    let file = format!("{}/{}.bin", it.quarantine_folder(), it.recording_id);
    let (sha, bytes) = sha256_file(part)?;
    ctx.place(part, &file, &sha.hex())?;
    Ok(Done {
        outcome: Outcome::Corrupted,
        reason: why.to_owned(),
        file: Some(file),
        sha256: Some(sha.hex()),
        md5: None,
        sha1: None,
        bytes: Some(bytes),
        content_type: None,
        downloaded_at: Some(format_ms(OffsetDateTime::now_utc())),
        media_ms,
        stated_ms: stated.duration_ms,
        stated_source: Some(stated.source.clone()),
    })
}
