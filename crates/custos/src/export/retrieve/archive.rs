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

/// Objects of one conversation's folder listed at most when it is reconciled with the manifest
/// (a conversation holds a handful of recordings; a folder past this is said to be so).
const MAX_FOLDER: usize = 10_000;

/// Objects named per conversation in its `archive-unexpected` line; the rest are counted.
const MAX_NAMED: usize = 100;

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
            match (item(ctx, archive, org, &it).await?, settled(archive, &it)) {
                (Look::Ended(d), _) => ctx.finish(&it, &d).map(|()| None),
                // A recording the listing settled, without a copy: the listing's outcome.
                (Look::Missing(folder), Some(mut settled)) => {
                    settled.reason = format!(
                        "{}; the archive holds no copy of it either (no object {}.* under {folder})",
                        settled.reason, it.recording_id
                    );
                    ctx.finish(&it, &settled).map(|()| None)
                }
                (Look::Missing(folder), None) => Ok(Some((it, folder))),
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
    let exported = exported_dates(ctx, &missing).await;
    for (it, folder) in missing {
        let (said, stated) = match exported.get(&it.recording_id) {
            Some(Ok(Some(date))) => (
                format!(
                    "; Genesys states it exported it at {date} (exportedDate), yet no object is there"
                ),
                json!({"exportedDate": date}),
            ),
            Some(Ok(None)) => (
                "; Genesys states no export of it (no exportedDate)".to_owned(),
                json!({"exportedDate": null}),
            ),
            Some(Err(e)) => (
                format!("; its exportedDate could not be read ({e})"),
                json!({"error": e}),
            ),
            None => (String::new(), Value::Null),
        };
        let by_job = job.filter(|j| j.failed.contains(&it.recording_id));
        let why = match (job, by_job) {
            (_, Some(j)) => format!(
                "not in the archive: the recording bulk job {} listed it as failed (Genesys gives no reason){said}",
                j.job_id
            ),
            (Some(j), None) => format!(
                "not in the archive: no object {}.* in {location} under {folder}, {} s after the recording bulk job {} ended {}{said}",
                it.recording_id,
                archive.bulk.as_ref().map_or(0, |b| b.grace.as_secs()),
                j.job_id,
                j.state
            ),
            (None, None) => format!(
                "not in the archive: no object {}.* in {location} under {folder}{said}",
                it.recording_id
            ),
        };
        ctx.log(
            "archive-missing",
            json!({"conversationId": it.conversation_id, "recordingId": it.recording_id,
                   "archive": location, "folder": folder,
                   "bulkJob": job.map(|j| json!({"jobId": j.job_id, "state": j.state, "listedAsFailed": by_job.is_some()})),
                   "source": stated,
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

/// After every item has ended (`--archive`), each manifest conversation's folder is listed once
/// and held to the manifest: every object there that no item looked for (one that names no
/// recording of the manifest, a copy of a recording the listing settled as DELETED or ARCHIVED,
/// one the operator left out with `--media`, one in a folder below) is named in the custody log
/// (`archive-unexpected`, with its key, size, ETag and time) and never read; an
/// `archive-reconciled` line counts them. Done once per export (a run killed part-way does it
/// again, whole).
///
/// The manifest's ids are held for the pass, by conversation (a few dozen bytes a recording).
pub(super) async fn reconcile(ctx: &Ctx<'_>, archive: &ArchiveSource) -> Result<()> {
    if ctx.state.get(Key::ArchiveReconciled)?.as_deref() == Some("true") {
        return Ok(());
    }
    let org = organization(ctx)?;
    let excluded = media_excluded(ctx);
    let mut conversations: std::collections::BTreeMap<String, Vec<Owner>> = Default::default();
    ctx.state.for_each(|it, done| {
        // Settled by the listing: the item's outcome is the one triage gives, so its copy in
        // the archive (if any) was not looked for.
        let settled = super::triage(&it).filter(|t| {
            done.as_ref()
                .is_some_and(|d| d.outcome == t.outcome && d.reason == t.reason)
        });
        let owner = Owner {
            settled_as: settled.map(|_| it.listed_state.clone()),
            recording_id: it.recording_id,
        };
        conversations
            .entry(it.conversation_id)
            .or_default()
            .push(owner);
        Ok(())
    })?;
    let store = &archive.store;
    let location = store.location();
    let (mut folders, mut objects, mut unexpected, mut unlisted, mut full) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut why_counts: std::collections::BTreeMap<&'static str, u64> = Default::default();
    for (cid, owners) in conversations {
        if !crate::model::safe_id(&cid) {
            continue;
        }
        let Some(start) = conversation_start(ctx, &cid) else {
            continue;
        };
        let folder = format!(
            "{}{}",
            store.prefix(),
            archive.layout.folder(&org, start, &cid)
        );
        let listed = match store.list_names(&folder, MAX_FOLDER + 1).await {
            Ok(l) => l,
            Err(e) => {
                unlisted += 1;
                ctx.log(
                    "archive-unexpected",
                    json!({"conversationId": cid, "archive": location, "folder": folder,
                           "listed": false, "error": e}),
                )?;
                continue;
            }
        };
        folders += 1;
        let more = listed.len() > MAX_FOLDER;
        full += u64::from(more);
        let mut named = Vec::new();
        let mut count = 0u64;
        for o in listed.iter().take(MAX_FOLDER) {
            objects += 1;
            let Some(why) = unexpected_why(o, &folder, &owners, &excluded) else {
                continue;
            };
            count += 1;
            *why_counts.entry(why.0).or_default() += 1;
            if named.len() < MAX_NAMED {
                named.push(json!({"key": o.key, "bytes": o.size, "etag": o.etag,
                           "lastModified": o.last_modified, "kind": why.0, "why": why.1}));
            }
        }
        unexpected += count;
        if count > 0 || more {
            ctx.log(
                "archive-unexpected",
                json!({"conversationId": cid, "archive": location, "folder": folder,
                       "listed": true, "unexpected": count, "objects": named,
                       "moreThan": more.then_some(MAX_FOLDER)}),
            )?;
        }
    }
    if unlisted > 0 {
        tracing::warn!(
            folders = unlisted,
            "some of the archive's folders could not be listed: their objects are not reconciled (custody log, archive-unexpected)"
        );
    }
    if unexpected > 0 {
        tracing::warn!(
            objects = unexpected,
            "the archive's folders of the manifest's conversations hold objects no recording of the manifest is: named in the custody log (archive-unexpected), not read"
        );
    }
    ctx.log(
        "archive-reconciled",
        json!({"archive": location, "foldersListed": folders, "foldersNotListed": unlisted,
               "foldersPastTheLimit": full, "objectsListed": objects,
               "unexpected": unexpected, "byKind": why_counts}),
    )?;
    ctx.state.set(Key::ArchiveReconciled, "true")
}

/// A manifest recording of a conversation, as the reconciliation of its folder needs it.
struct Owner {
    recording_id: String,
    /// Its listed state, when the listing settled it (its copy was not looked for).
    settled_as: Option<String>,
}

/// The recordings `--media` left out (`data/media_excluded.csv`); none without `--media`.
fn media_excluded(ctx: &Ctx<'_>) -> std::collections::BTreeSet<String> {
    let Ok(file) = std::fs::File::open(ctx.root.join(super::super::manifest::MEDIA_EXCLUDED_FILE))
    else {
        return Default::default();
    };
    csv::Reader::from_reader(file)
        .records()
        .filter_map(|r| r.ok()?.get(1).map(str::to_owned))
        .collect()
}

/// Why an object of a manifest conversation's folder was not read (its kind and the words
/// the custody log gives), or `None` when it is an item's own (read, or found ambiguous).
fn unexpected_why(
    o: &Object,
    folder: &str,
    owners: &[Owner],
    excluded: &std::collections::BTreeSet<String>,
) -> Option<(&'static str, String)> {
    let rest = o.key.strip_prefix(folder).unwrap_or(&o.key);
    if rest.contains('/') {
        return Some((
            "below",
            "in a folder below the conversation's, where no recording is kept: not read".into(),
        ));
    }
    // The longest recording id the name starts with (`<id>.<ext>`, `<id>.<ext>_metadata.json`).
    let owner = owners
        .iter()
        .filter(|w| {
            rest.strip_prefix(w.recording_id.as_str())
                .is_some_and(|r| r.starts_with('.'))
        })
        .max_by_key(|w| w.recording_id.len());
    match owner {
        Some(Owner {
            settled_as: None, ..
        }) => None,
        Some(Owner {
            recording_id,
            settled_as: Some(state),
        }) => Some((
            "settled",
            format!(
                "a copy of recording {recording_id}, which the source listed as {state}: the listing settled it, its copy was not read"
            ),
        )),
        None => {
            let id = rest.split('.').next().unwrap_or(rest);
            if excluded.contains(id) {
                Some((
                    "excluded",
                    format!("recording {id}, which the operator left out (--media): not read"),
                ))
            } else {
                Some((
                    "unknown",
                    "names no recording of the manifest: not read".into(),
                ))
            }
        }
    }
}

/// What Genesys states of each recording the archive lacks: its `exportedDate` (`None`: it
/// states none), read from a fresh listing of its conversation (one request per conversation
/// with a missing recording: the manifest's listing came before any export), or why it could
/// not be read. Genesys sets `exportedDate` when its integration has exported the recording, so
/// a date with no object says the object was written and is gone (or went elsewhere); no date
/// says Genesys never exported it.
async fn exported_dates(
    ctx: &Ctx<'_>,
    missing: &[(Item, String)],
) -> std::collections::BTreeMap<String, std::result::Result<Option<String>, String>> {
    let conversations: std::collections::BTreeSet<&str> = missing
        .iter()
        .map(|(it, _)| it.conversation_id.as_str())
        .collect();
    let mut out = std::collections::BTreeMap::new();
    for cid in conversations {
        let listed = crate::source::list_of(&ctx.api, cid).await;
        let of = |rid: &str| -> std::result::Result<Option<String>, String> {
            match &listed {
                Err(e) => Err(e.to_string()),
                Ok(None) => Err("its conversation answered 404: it is gone".into()),
                Ok(Some(list)) => {
                    let found = list.iter().find_map(|raw| {
                        let v: Value = serde_json::from_str(raw.get()).ok()?;
                        (v["id"].as_str() == Some(rid)).then_some(v)
                    });
                    match found {
                        None => Err("its conversation no longer lists it".into()),
                        Some(v) => Ok(v["exportedDate"]
                            .as_str()
                            .map(|d| crate::shown::Shown(d).to_string())),
                    }
                }
            }
        };
        for (it, _) in missing.iter().filter(|(it, _)| it.conversation_id == cid) {
            out.insert(it.recording_id.clone(), of(&it.recording_id));
        }
    }
    out
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

/// With `--archive-settled read`, the outcome the listing gives `it` when it settles it
/// (DELETED, ARCHIVED, RESTORING): what it ends as without a copy in the archive. `None`
/// otherwise (without the setting, no settled item is looked for in the archive).
fn settled(archive: &ArchiveSource, it: &Item) -> Option<Done> {
    archive.read_settled.then(|| super::triage(it)).flatten()
}

/// The state the source listed `it` in, when [`settled`]: its copy's reason says so.
fn settled_at_source<'a>(archive: &ArchiveSource, it: &'a Item) -> Option<&'a str> {
    settled(archive, it).map(|_| it.listed_state.as_str())
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
    stated.resume_etag = media.etag.clone().filter(|e| !e.is_empty());
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
               "metadata": meta_facts, "disagreements": findings,
               "settledAtSource": settled_at_source(archive, it)}),
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
                let from = match settled_at_source(archive, it) {
                    Some(state) => {
                        format!("the source listed it {state} (--archive-settled read): {from}")
                    }
                    None => from,
                };
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

    const FOLDER: &str = "o/year=2023/conversation_id=c-1/";

    fn object(name: &str) -> Object {
        Object {
            key: format!("{FOLDER}{name}"),
            ..Default::default()
        }
    }

    fn owners() -> Vec<Owner> {
        vec![
            Owner {
                recording_id: "r-1".into(),
                settled_as: None,
            },
            Owner {
                recording_id: "r-1.b".into(),
                settled_as: Some("DELETED".into()),
            },
        ]
    }

    fn kind(name: &str, excluded: &[&str]) -> Option<&'static str> {
        let excluded = excluded.iter().map(|s| s.to_string()).collect();
        unexpected_why(&object(name), FOLDER, &owners(), &excluded).map(|w| w.0)
    }

    #[test]
    fn an_items_own_object_and_its_metadata_are_expected() {
        assert_eq!(kind("r-1.wav", &[]), None);
        assert_eq!(kind("r-1.wav_metadata.json", &[]), None);
    }

    #[test]
    fn a_copy_of_a_recording_the_listing_settled_is_named_with_its_state() {
        assert_eq!(kind("r-1.b.opus", &[]), Some("settled"));
        let excluded = Default::default();
        let (_, why) = unexpected_why(&object("r-1.b.opus"), FOLDER, &owners(), &excluded).unwrap();
        assert!(why.contains("r-1.b") && why.contains("DELETED"), "{why}");
    }

    #[test]
    fn an_object_named_for_no_item_is_unknown_unless_the_operator_left_it_out() {
        assert_eq!(kind("r-9.wav", &[]), Some("unknown"));
        assert_eq!(kind("r-1wav", &[]), Some("unknown"));
        assert_eq!(kind("r-9.wav", &["r-9"]), Some("excluded"));
    }

    #[test]
    fn an_object_below_the_conversations_folder_is_named_even_with_an_items_name() {
        assert_eq!(kind("sub/r-1.wav", &[]), Some("below"));
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
