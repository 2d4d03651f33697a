//! Retrieval from the organization's archive (`--archive`, docs/archive.md): each item is
//! looked for in its conversation's folder of the layout, its `_metadata.json` is kept as
//! received and held to the API's record of the same recording, and the object is read through
//! a URL for exactly its version, hashed and judged as media like any other download. No API
//! request is made for an item the archive holds.

use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::super::context::Ctx;
use super::download::{Got, URL_ROUNDS, download};
use super::stated::Stated;
use crate::archive::{ArchiveSource, Missing, Object, content_type_of};
use crate::error::{Error, Result};
use crate::model::{Item, Outcome};
use crate::state::{Done, Key};

/// The largest `_metadata.json` read: Genesys writes a few hundred bytes.
const MAX_METADATA: usize = 1024 * 1024;

/// Objects listed for one recording at most (its file, its metadata, and what should not be
/// there).
const MAX_OBJECTS: usize = 16;

/// Where the archive's copies of the recording's metadata are kept, as received.
pub(crate) const ARCHIVE_METADATA_DIR: &str = "data/metadata/archive";

/// Retrieves every item of `items` from the archive; those it lacks end `Failed`, or with
/// `--archive-missing api` are fetched through the API afterwards, by `through_api`. With
/// `--bulk-export`, the recording bulk job runs first (or is resumed), and what it should have
/// written and did not list as failed is looked for again until the grace period ends.
pub(super) async fn retrieve<'a, S, F, Fut>(
    ctx: &'a Ctx<'a>,
    archive: &'a ArchiveSource,
    items: S,
    in_flight: usize,
    through_api: F,
) -> Result<()>
where
    S: Stream<Item = Result<Item>> + Send + 'a,
    F: FnOnce(Vec<Item>) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let org = organization(ctx)?;
    let org = org.as_str();
    let job = match &archive.bulk {
        Some(b) => {
            let canonical = ctx.state.get(Key::QueryCanonical)?.unwrap_or_default();
            let query = crate::query::Query::parse(&canonical)?;
            Some(super::super::bulk::run(ctx, b, &query).await?)
        }
        None => None,
    };
    let job = job.as_ref();
    let looked: Vec<Result<Option<(Item, String)>>> = items
        .map(|it| async move {
            let it = it?;
            match item(ctx, archive, org, &it).await? {
                Look::Ended(d) => ctx.finish(&it, &d).map(|()| None),
                Look::Missing(folder) => Ok(Some((it, folder))),
            }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let mut missing: Vec<(Item, String)> = looked
        .into_iter()
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    // The bulk job may write after it says it is done: what it did not list as failed is
    // looked for again, until the grace period ends.
    if let (Some(b), Some(job)) = (&archive.bulk, job) {
        let deadline = tokio::time::Instant::now() + b.grace;
        let mut pause = std::time::Duration::from_secs(1);
        loop {
            let awaited = missing
                .iter()
                .filter(|(it, _)| !job.failed.contains(&it.recording_id))
                .count();
            if awaited == 0 || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(pause.min(deadline - tokio::time::Instant::now())).await;
            pause = (pause * 2).min(b.poll_max);
            let mut still = Vec::new();
            for (it, folder) in missing {
                if job.failed.contains(&it.recording_id) {
                    still.push((it, folder));
                    continue;
                }
                match item(ctx, archive, org, &it).await? {
                    Look::Ended(d) => ctx.finish(&it, &d)?,
                    Look::Missing(folder) => still.push((it, folder)),
                }
            }
            missing = still;
        }
    }
    let mut to_api = Vec::new();
    let location = archive.store.location();
    for (it, folder) in missing {
        let by_job = job.filter(|j| j.failed.contains(&it.recording_id));
        let why = match (job, by_job) {
            (_, Some(j)) => format!(
                "not in the archive: the recording bulk job {} listed it as failed (Genesys gives no reason)",
                j.job_id
            ),
            (Some(j), None) => format!(
                "not in the archive: no object {}.* in {location} under {folder}, {} s after the recording bulk job {} ended {}",
                it.recording_id,
                archive.bulk.as_ref().map_or(0, |b| b.grace.as_secs()),
                j.job_id,
                j.state
            ),
            (None, None) => format!(
                "not in the archive: no object {}.* in {location} under {folder}",
                it.recording_id
            ),
        };
        ctx.log(
            "archive-missing",
            json!({"conversationId": it.conversation_id, "recordingId": it.recording_id,
                   "archive": location, "folder": folder,
                   "bulkJob": job.map(|j| json!({"jobId": j.job_id, "state": j.state, "listedAsFailed": by_job.is_some()})),
                   "then": match archive.missing { Missing::Api => "fetched through the API", Missing::Fail => "Failed" }}),
        )?;
        match archive.missing {
            Missing::Api => to_api.push(it),
            Missing::Fail => ctx.finish(&it, &Done::no_file(Outcome::Failed, why))?,
        }
    }
    if to_api.is_empty() {
        return Ok(());
    }
    tracing::warn!(
        items = to_api.len(),
        "not in the archive: fetching them through the API (--archive-missing api)"
    );
    through_api(to_api).await
}

impl Look {
    fn ended(d: Done) -> Look {
        Look::Ended(Box::new(d))
    }
}

/// What looking for one item in the archive came to.
enum Look {
    /// It ended (read, refused, or in error).
    Ended(Box<Done>),
    /// The archive has no object for it in this folder.
    Missing(String),
}

/// The organization id the layout's keys start with: the one the token belongs to, as
/// recorded when the run identified its source.
fn organization(ctx: &Ctx<'_>) -> Result<String> {
    let id = ctx
        .state
        .get(Key::Identity)?
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| v["organization"]["id"].as_str().map(str::to_owned))
        .filter(|s| crate::model::safe_id(s));
    id.ok_or_else(|| {
        Error::Config(
            "--archive: the archive's keys start with the organization id, and GET /api/v2/tokens/me did not name one".into(),
        )
    })
}

/// The conversation's start, from its analytics record (`data/metadata/conversations/`).
fn conversation_start(ctx: &Ctx<'_>, cid: &str) -> Option<OffsetDateTime> {
    let path = ctx
        .root
        .join(crate::facts::CONVERSATIONS_DIR)
        .join(format!("{cid}.json"));
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    parse_time(v["conversationStart"].as_str()?)
}

/// An instant as Genesys writes it: RFC 3339 (`…Z`, `…+00:00`), or with a `+0000` offset.
fn parse_time(s: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    OffsetDateTime::parse(s, &Rfc3339).ok().or_else(|| {
        let (head, tail) = s.split_at(s.len().checked_sub(5)?);
        let colon = tail.starts_with(['+', '-']) && tail[1..].bytes().all(|b| b.is_ascii_digit());
        colon
            .then(|| format!("{head}{}:{}", &tail[..3], &tail[3..]))
            .and_then(|t| OffsetDateTime::parse(&t, &Rfc3339).ok())
    })
}

/// One item from the archive: its outcome, or the folder it is missing from.
async fn item(ctx: &Ctx<'_>, archive: &ArchiveSource, org: &str, it: &Item) -> Result<Look> {
    let store = &archive.store;
    let Some(start) = conversation_start(ctx, &it.conversation_id) else {
        return Ok(Look::ended(Done::no_file(
            Outcome::Failed,
            "the conversation's start is not known (no analytics record), so its folder in the archive is not either",
        )));
    };
    let folder = format!(
        "{}{}",
        store.prefix(),
        archive.layout.folder(org, start, &it.conversation_id)
    );
    let listed = match store
        .list(&format!("{folder}{}.", it.recording_id), MAX_OBJECTS)
        .await
    {
        Ok(l) => l,
        Err(e) => {
            return Ok(Look::ended(Done::no_file(
                Outcome::Failed,
                format!("listing the archive failed: {e}"),
            )));
        }
    };
    // Only this recording's own names, directly in the folder.
    let (metadata, media): (Vec<Object>, Vec<Object>) = listed
        .into_iter()
        .filter(|o| !o.key[folder.len().min(o.key.len())..].contains('/'))
        .partition(|o| o.key.ends_with("_metadata.json"));
    let location = store.location();
    let media = match <[Object; 1]>::try_from(media) {
        Ok([m]) => m,
        Err(media) if media.is_empty() => return Ok(Look::Missing(folder)),
        Err(media) => {
            let keys: Vec<&str> = media.iter().map(|o| o.key.as_str()).collect();
            ctx.log(
                "archive-ambiguous",
                json!({"conversationId": it.conversation_id, "recordingId": it.recording_id,
                       "archive": location, "keys": keys}),
            )?;
            return Ok(Look::ended(Done::no_file(
                Outcome::Failed,
                format!(
                    "the archive holds {} objects for this recording ({}); custos does not choose between them",
                    keys.len(),
                    keys.join(", ")
                ),
            )));
        }
    };
    let mut stated = Stated::of_listed(ctx, it);
    stated.size = Some(media.size);
    stated.content_type = content_type_of(media.name());
    stated.store_sha256 = media.sha256();
    stated.store_md5 = media.etag_md5();
    let meta_key = format!("{}_metadata.json", media.key);
    let meta = metadata.iter().find(|o| o.key == meta_key);
    let (meta_facts, findings) = match meta {
        Some(m) => read_metadata(ctx, archive, it, m).await?,
        None => (json!({"key": meta_key, "found": false}), Vec::new()),
    };
    if !findings.is_empty() {
        stated.refused = Some(format!(
            "the archive's metadata disagrees with the API's record of this recording: {}",
            findings.join("; ")
        ));
    }
    ctx.log(
        "archive-object",
        json!({"conversationId": it.conversation_id, "recordingId": it.recording_id,
               "archive": location, "key": media.key, "versionId": media.version_id,
               "bytes": media.size, "etag": media.etag, "lastModified": media.last_modified,
               "storeChecksums": media.checksums.iter().map(|(a, v)| json!({"algorithm": a, "value": v})).collect::<Vec<_>>(),
               "comparedWithTheBytesRead": {"sha256": stated.store_sha256.is_some(), "md5FromEtag": stated.store_md5.is_some()},
               "metadata": meta_facts, "disagreements": findings}),
    )?;
    for _ in 0..URL_ROUNDS {
        let url = match store.url(&media).await {
            Ok(u) => u,
            Err(e) => {
                return Ok(Look::ended(Done::no_file(
                    Outcome::Failed,
                    format!("no URL for the archived object {}: {e}", media.key),
                )));
            }
        };
        if let Got::Done(d) = download(ctx, it, &url, None, stated.clone()).await? {
            let mut d = *d;
            if d.outcome == Outcome::Exported {
                let from = format!(
                    "read from the archive: {location} key {}{}; written there {}{}",
                    media.key,
                    media
                        .version_id
                        .as_deref()
                        .map(|v| format!(" version {v}"))
                        .unwrap_or_default(),
                    media
                        .last_modified
                        .as_deref()
                        .unwrap_or("(time not stated)"),
                    if meta.is_none() {
                        "; no _metadata.json beside it"
                    } else {
                        ""
                    }
                );
                d.reason = if d.reason.is_empty() {
                    from
                } else {
                    format!("{from}; {}", d.reason)
                };
            }
            return Ok(Look::ended(d));
        }
    }
    Ok(Look::ended(Done::no_file(
        Outcome::Failed,
        format!(
            "the archive's URL for {} expired {URL_ROUNDS} times",
            media.key
        ),
    )))
}

/// Reads the recording's `_metadata.json` (bounded), keeps it as received, and compares it with
/// the API's record: what was read, and each disagreement in words.
async fn read_metadata(
    ctx: &Ctx<'_>,
    archive: &ArchiveSource,
    it: &Item,
    m: &Object,
) -> Result<(Value, Vec<String>)> {
    let mut facts = json!({"key": m.key, "found": true, "versionId": m.version_id,
                           "lastModified": m.last_modified, "bytes": m.size});
    let body = match read_object(ctx, archive, m).await {
        Ok(b) => b,
        Err(why) => {
            facts["read"] = json!(why);
            return Ok((
                facts,
                vec![format!("its _metadata.json could not be read ({why})")],
            ));
        }
    };
    let sha = crate::digest::Sha256::of(&body).hex();
    let file = format!("{ARCHIVE_METADATA_DIR}/{}.json", it.recording_id);
    let path = ctx.root.join(&file);
    if let Some(dir) = path.parent() {
        crate::durable::make_dirs(dir)?;
    }
    let _ = std::fs::remove_file(&path);
    crate::durable::write_sealed(&path, &body)?;
    facts["sha256"] = json!(sha);
    facts["file"] = json!(file);
    let listed: Value = std::fs::read(
        ctx.root
            .join("data/metadata")
            .join(format!("{}.json", it.recording_id)),
    )
    .ok()
    .and_then(|b| serde_json::from_slice(&b).ok())
    .unwrap_or(Value::Null);
    let findings = match serde_json::from_slice::<Value>(&body) {
        Ok(archived) => disagreements(&archived, &listed, it, ctx.cfg.duration_tolerance),
        Err(e) => vec![format!("its _metadata.json is not JSON ({e})")],
    };
    Ok((facts, findings))
}

/// An archived object's bytes, at most [`MAX_METADATA`].
async fn read_object(
    ctx: &Ctx<'_>,
    archive: &ArchiveSource,
    m: &Object,
) -> std::result::Result<bytes::Bytes, String> {
    if m.size > MAX_METADATA as u64 {
        return Err(format!(
            "{} bytes, more than the {MAX_METADATA} a metadata file may have",
            m.size
        ));
    }
    let url = archive.store.url(m).await?;
    crate::http::check_media_url("archive URL", &url).map_err(|e| e.to_string())?;
    let r = ctx
        .api
        .http
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("GET failed: {e}"))?;
    if !r.status().is_success() {
        return Err(format!("the store answered {}", r.status()));
    }
    crate::http::response::read_limited(r, MAX_METADATA)
        .await
        .map_err(|(_, why)| why)
}

/// Where the archive's `_metadata.json` and the API's listed record of the same recording
/// disagree: identity (recording, conversation), media type, start and end (to the second),
/// and duration (within the duration tolerance, against `endTime − startTime` or the playable
/// duration the API states). A field the archive does not state is not compared.
fn disagreements(
    archived: &Value,
    listed: &Value,
    it: &Item,
    tolerance: std::time::Duration,
) -> Vec<String> {
    let mut out = Vec::new();
    for (key, want) in [
        ("recordingId", it.recording_id.as_str()),
        ("conversationId", it.conversation_id.as_str()),
    ] {
        if let Some(got) = archived.get(key)
            && got.as_str() != Some(want)
        {
            out.push(format!("{key} {got} is not {want}"));
        }
    }
    if let (Some(got), Some(api)) = (archived["mediaType"].as_str(), listed["media"].as_str()) {
        let same = matches!(
            (got.to_ascii_lowercase().as_str(), api),
            ("call", "audio")
                | ("callback", "audio")
                | ("screen", "screen")
                | ("chat", "chat")
                | ("email", "email")
                | ("message", "messaging")
        );
        if !same {
            out.push(format!("mediaType {got} is not the API's media {api}"));
        }
    }
    let time_of = |v: &Value, k: &str| v[k].as_str().and_then(parse_time);
    for key in ["startTime", "endTime"] {
        if let (Some(raw), Some(api)) = (archived.get(key), time_of(listed, key)) {
            match raw.as_str().and_then(parse_time) {
                Some(t) if (t - api).abs() <= time::Duration::SECOND => {}
                Some(_) => out.push(format!(
                    "{key} {raw} is not the API's {}",
                    listed[key].as_str().unwrap_or_default()
                )),
                None => out.push(format!("{key} {raw} is not a time")),
            }
        }
    }
    if let Some(raw) = archived.get("durationMs") {
        let api_span = match (time_of(listed, "startTime"), time_of(listed, "endTime")) {
            (Some(a), Some(b)) => Some((b - a).whole_milliseconds().max(0) as u64),
            _ => None,
        };
        let playable = Stated::of_recording(listed, "outputDurationMs").duration_ms;
        let tol = tolerance.as_millis() as u64;
        match raw.as_u64() {
            Some(ms) => {
                let agrees = [api_span, playable]
                    .into_iter()
                    .flatten()
                    .any(|api| ms.abs_diff(api) <= tol);
                let known = api_span.is_some() || playable.is_some();
                if known && !agrees {
                    out.push(format!(
                        "durationMs {ms} is not the API's {} ms (endTime − startTime) within {} ms",
                        api_span.or(playable).unwrap_or_default(),
                        tol
                    ));
                }
            }
            None => out.push(format!("durationMs {raw} is not a number")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> Item {
        Item {
            conversation_id: "c-1".into(),
            recording_id: "r-1".into(),
            listed_state: "AVAILABLE".into(),
        }
    }

    fn listed() -> Value {
        json!({"id": "r-1", "conversationId": "c-1", "media": "audio",
               "startTime": "2023-09-07T10:00:00.000Z", "endTime": "2023-09-07T10:01:00.000Z"})
    }

    fn archived() -> Value {
        json!({"recordingId": "r-1", "conversationId": "c-1", "mediaType": "Call",
               "startTime": "2023-09-07T10:00:00.000+0000", "endTime": "2023-09-07T10:01:00.000+0000",
               "durationMs": 60000})
    }

    #[test]
    fn metadata_that_agrees_in_genesys_offset_form_has_no_finding() {
        let none: Vec<String> = Vec::new();
        assert_eq!(
            disagreements(
                &archived(),
                &listed(),
                &item(),
                std::time::Duration::from_secs(1)
            ),
            none
        );
    }

    #[test]
    fn a_longer_duration_another_recording_and_another_start_are_each_found() {
        let mut a = archived();
        a["durationMs"] = json!(65000);
        a["recordingId"] = json!("r-2");
        a["startTime"] = json!("2023-09-07T11:00:00.000+0000");
        a["mediaType"] = json!("Screen");
        let found = disagreements(&a, &listed(), &item(), std::time::Duration::from_secs(1));
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found[0].starts_with("recordingId"), "{found:?}");
    }

    #[test]
    fn genesys_offset_times_parse() {
        assert_eq!(
            parse_time("2023-09-07T10:00:00.000+0000"),
            parse_time("2023-09-07T10:00:00Z")
        );
        assert_eq!(parse_time("2023-09-07T10:00:00.000+0x00"), None);
    }
}
