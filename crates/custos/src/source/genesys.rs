//! The real Genesys Cloud Platform API: analytics details queries or jobs, then the recordings
//! list (`GET …/conversations/{id}/recordings?formatId=NONE`) per conversation.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{Error, Result};
use crate::http::Api;
use crate::model::Item;
use crate::query::{DETAILS_JOBS, DETAILS_QUERY, Query};
use crate::state::ListedRow;

use super::{Listing, MAX_PASSES, NOT_FOUND, Selector, url_encode, url_path};
use crate::ids::IdList;

const SYNC_RECORD_CAP: u64 = 10_000;
/// Analytics pages requested at a time once page 1 has told how many there are.
const PAGES_AT_ONCE: usize = 8;

/// What the query reads of one conversation of an analytics page to decide on it (the rest of
/// its record is kept as received, never parsed here).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    #[serde(default, deserialize_with = "string_or_none")]
    conversation_id: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    conversation_start: Option<String>,
}

/// A field's string, or `None` when it holds another JSON type: one odd field leaves the rest
/// of the record readable, as reading the record as a `Value` did.
fn string_or_none<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    Ok(match <Value as serde::Deserialize>::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

impl Head {
    fn of(raw: &RawValue) -> Head {
        let none = Head {
            conversation_id: None,
            conversation_start: None,
        };
        // Only an object is a record: serde would read an array's elements as the fields.
        if !raw.get().trim_start().starts_with('{') {
            return none;
        }
        serde_json::from_str(raw.get()).unwrap_or(none)
    }
}

/// What an analytics page says besides its conversations (read past them). Each as whatever
/// JSON value it is: one of another type is not there, as before.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PageMeta {
    total_hits: Option<Value>,
    cursor: Option<Value>,
    data_availability_date: Option<Value>,
}

impl PageMeta {
    /// What the page `body` says, read past its conversations; nothing when it is not a JSON
    /// object (serde would read an array's elements as the fields).
    fn read(body: &[u8]) -> PageMeta {
        let object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        object
            .then(|| serde_json::from_slice::<PageMeta>(body).ok())
            .flatten()
            .unwrap_or_default()
    }

    fn total_hits(body: &[u8]) -> u64 {
        PageMeta::read(body)
            .total_hits
            .and_then(|t| t.as_u64())
            .unwrap_or(0)
    }
}

/// Keeps a conversation that started in `range`: its id, in `found`, and its record (byte for
/// byte) in `staging`.
fn keep_in_range(
    range: &crate::query::TimeRange,
    staging: &std::path::Path,
    raw: &RawValue,
    found: &mut Listing,
) -> Result<()> {
    let c = Head::of(raw);
    let start = c
        .conversation_start
        .as_deref()
        .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok());
    if let (Some(id), Some(start)) = (c.conversation_id, start)
        && range.contains(start)
    {
        if crate::model::safe_id(&id) {
            crate::durable::write_sealed(
                &staging.join(format!("{id}.json")),
                raw.get().as_bytes(),
            )?;
        }
        found.add_conversation(&id)?;
    }
    Ok(())
}

/// The conversations of one analytics page, each its JSON text exactly as received (parsed one
/// at a time by whoever reads it: a page of 1,000 records is never held parsed).
fn page_conversations(body: &[u8]) -> Vec<&RawValue> {
    #[derive(serde::Deserialize)]
    struct Page<'a> {
        #[serde(borrow, default)]
        conversations: Vec<&'a RawValue>,
    }
    serde_json::from_slice::<Page<'_>>(body)
        .map(|p| p.conversations)
        .unwrap_or_default()
}

/// The path that says up to when the analytics data lake is complete.
pub const DETAILS_JOBS_AVAILABILITY: &str =
    "/api/v2/analytics/conversations/details/jobs/availability";

/// What Genesys' analytics data lake says it holds in full, against the end of the interval an
/// analytics job asked for. A job reads the data lake, which lags real time: conversations after
/// its `dataAvailabilityDate` may not be there yet, and a job answers without them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataAvailability {
    /// The job's interval, as sent (`start/end`, UTC).
    pub interval: String,
    /// `dataAvailabilityDate` as the API sent it, if it sent one.
    pub data_availability_date: Option<String>,
    /// Where that date came from: the job's results, or the availability endpoint.
    pub source: String,
    /// Whether the data lake is complete up to the interval's end. `false` when the date is
    /// earlier than the end, or unknown: conversations after it may be missing.
    pub covers_interval: bool,
}

/// Finds the conversations of `query` (those that started in its range) through the analytics
/// API, and adds them to `found`. Each one's analytics record (participants, sessions, segments:
/// who spoke, when, why) is written to `staging/<conversationId>.json`, byte for byte as it
/// arrived. Each analytics job's interval is checked against the data lake's
/// `dataAvailabilityDate`: the answer is one [`DataAvailability`] per analytics job (none when
/// every window was read through the synchronous query).
pub async fn genesys_conversations(
    api: &Api,
    query: &Query,
    now: OffsetDateTime,
    page_size: u32,
    staging: &std::path::Path,
    found: &mut Listing,
) -> Result<Vec<DataAvailability>> {
    let range = query
        .time_range()
        .ok_or_else(|| Error::Config("the genesys source needs a timestamp range".into()))?;
    crate::durable::make_dirs(staging)?;
    let mut availability = Vec::new();
    let keep = |raw: &RawValue, found: &mut Listing| keep_in_range(&range, staging, raw, found);
    let requests = query
        .genesys_requests(now, page_size)
        .map_err(Error::Config)?;
    for req in requests {
        let mut job_body = None;
        if req.path == DETAILS_QUERY {
            // Conversations can appear while we page (totalHits grows, pages shift): repeat the
            // window until one whole pass saw a steady totalHits and we hold at least that many
            // ids. Duplicates across pages fall out in the set.
            let mut seen: BTreeSet<String> = BTreeSet::new();
            let fetch_page = |page: u64| {
                let mut body = req.body.clone();
                body["paging"]["pageNumber"] = json!(page);
                async move {
                    let r = api
                        .send_ok(Method::POST, DETAILS_QUERY, Some(&body))
                        .await?;
                    // JSON, or refused here (read past, not built).
                    r.json_as::<serde::de::IgnoredAny>(&Method::POST, &api.url(DETAILS_QUERY))?;
                    Ok::<_, Error>(r.body)
                }
            };
            'passes: for _pass in 0..MAX_PASSES {
                let mut totals = Vec::new();
                // Page 1 tells how many pages there are; the rest (and one more, in case the
                // window grew) are fetched several at a time, in order; then, only if the extra
                // page was not empty, one by one until an empty page.
                let first = fetch_page(1).await?;
                let known = PageMeta::total_hits(&first).div_ceil(u64::from(page_size.max(1)));
                let rest: Vec<Result<bytes::Bytes>> = futures_util::stream::iter(2..=known + 1)
                    .map(fetch_page)
                    .buffered(PAGES_AT_ONCE)
                    .collect()
                    .await;
                let mut pages = std::iter::once(Ok(first)).chain(rest);
                let mut next = known + 2;
                loop {
                    let body = match pages.next() {
                        Some(b) => b?,
                        None => {
                            next += 1;
                            fetch_page(next - 1).await?
                        }
                    };
                    let total = PageMeta::total_hits(&body);
                    if total > SYNC_RECORD_CAP {
                        // The synchronous query cannot reach past 10,000 records: use a job for this window.
                        let mut b = req.body.clone();
                        b.as_object_mut().expect("object").remove("paging");
                        job_body = Some(b);
                        break 'passes;
                    }
                    totals.push(total);
                    let convs = page_conversations(&body);
                    if convs.is_empty() {
                        break;
                    }
                    for raw in convs {
                        if let Some(id) = Head::of(raw).conversation_id {
                            seen.insert(id);
                        }
                        keep(raw, found)?;
                    }
                }
                let steady = totals.windows(2).all(|w| w[0] == w[1]);
                if steady && seen.len() as u64 >= totals.last().copied().unwrap_or(0) {
                    break;
                }
            }
        } else {
            job_body = Some(req.body.clone());
        }
        if let Some(body) = job_body {
            let stated = run_job(api, &body, &mut |raw| keep(raw, found)).await?;
            availability.push(data_availability(api, &body, stated).await?);
        }
    }
    Ok(availability)
}

/// The data lake's `dataAvailabilityDate` (the job's results' `stated`, else the availability
/// endpoint's) against the end of the job's interval.
async fn data_availability(
    api: &Api,
    job: &Value,
    stated: Option<String>,
) -> Result<DataAvailability> {
    let interval = job["interval"].as_str().unwrap_or_default().to_owned();
    let (date, source) = match stated {
        Some(d) => (Some(d), "the analytics job's results".to_owned()),
        None => {
            let path = DETAILS_JOBS_AVAILABILITY;
            let r = api.send(Method::GET, path, None).await?;
            if r.status.is_success() {
                let date = r.json(&Method::GET, &api.url(path))?["dataAvailabilityDate"]
                    .as_str()
                    .map(str::to_owned);
                (date, format!("GET {path}"))
            } else {
                // Not answered (a missing permission): the date is unknown, and the record
                // says why, so the warning it causes can be traced.
                (None, format!("GET {path}, answered {}", r.status.as_u16()))
            }
        }
    };
    let parse = |t: &str| OffsetDateTime::parse(t, &Rfc3339).ok();
    let end = interval.split_once('/').and_then(|(_, e)| parse(e));
    let covers_interval = matches!(
        (date.as_deref().and_then(parse), end),
        (Some(d), Some(e)) if d >= e
    );
    Ok(DataAvailability {
        interval,
        data_availability_date: date,
        source,
        covers_interval,
    })
}

/// Runs an analytics job to its end, each conversation of its results to `each`; the
/// `dataAvailabilityDate` its results state, if any.
async fn run_job(
    api: &Api,
    body: &Value,
    each: &mut dyn FnMut(&RawValue) -> Result<()>,
) -> Result<Option<String>> {
    let url = api.url(DETAILS_JOBS);
    let v = api
        .send_ok(Method::POST, DETAILS_JOBS, Some(body))
        .await?
        .json(&Method::POST, &url)?;
    let job = v["jobId"]
        .as_str()
        .ok_or_else(|| Error::Api {
            method: "POST".into(),
            url: url.clone(),
            message: "no jobId in the answer".into(),
        })?
        .to_owned();
    let status_path = format!("{DETAILS_JOBS}/{job}");
    let mut wait = Duration::from_millis(250);
    loop {
        let st = api
            .send_ok(Method::GET, &status_path, None)
            .await?
            .json(&Method::GET, &api.url(&status_path))?;
        match st["state"].as_str().unwrap_or("") {
            "FULFILLED" => break,
            "QUEUED" | "PENDING" => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            other => {
                return Err(Error::Api {
                    method: "GET".into(),
                    url: api.url(&status_path),
                    message: format!(
                        "analytics job {job} ended {other}: {}",
                        st["errorMessage"].as_str().unwrap_or("")
                    ),
                });
            }
        }
    }
    let mut cursor: Option<String> = None;
    let mut available = None;
    loop {
        let mut path = format!("{status_path}/results?pageSize=1000");
        if let Some(c) = &cursor {
            path.push_str(&format!("&{}", url_encode("cursor", c)));
        }
        let r = api.send_ok(Method::GET, &path, None).await?;
        // JSON, or refused here (read past, not built).
        r.json_as::<serde::de::IgnoredAny>(&Method::GET, &api.url(&path))?;
        let meta = PageMeta::read(&r.body);
        for raw in page_conversations(&r.body) {
            each(raw)?;
        }
        if let Some(d) = meta.data_availability_date.as_ref().and_then(Value::as_str) {
            available.get_or_insert_with(|| d.to_owned());
        }
        match meta.cursor.as_ref().and_then(Value::as_str) {
            Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
            _ => return Ok(available),
        }
    }
}

/// The path that lists a conversation's recordings with their times and annotations, without
/// media: one call per conversation, as `recordingmetadata` would be, but a `Recording` states
/// `startTime`, `endTime` and the pause annotations its duration is checked against.
pub fn recordings_list_path(conversation_id: &str) -> String {
    format!(
        "/api/v2/conversations/{}/recordings?formatId=NONE&maxWaitMs=0",
        url_path(conversation_id)
    )
}

/// Conversations read from the listing at a time.
const CONVERSATIONS_AT_ONCE: usize = 1000;

/// Lists the recordings of each conversation of `listing` ([`recordings_list_path`]),
/// `concurrency` at a time, each a row of `listing`; the answer is the conversations that
/// answered 404. Each recording's JSON is written to `staging/<recordingId>.json` as its listing
/// arrives (ids unsafe as file names are skipped), so a listing of 100,000 recordings is never
/// held in memory; the manifest step moves the ones it keeps into the bag.
pub async fn genesys_recordings(
    api: &Api,
    listing: &mut Listing,
    concurrency: usize,
    staging: &std::path::Path,
) -> Result<BTreeSet<String>> {
    crate::durable::make_dirs(staging)?;
    let mut missing_conversations = BTreeSet::new();
    let mut after = None;
    loop {
        let convs = listing.conversations_after(after.as_deref(), CONVERSATIONS_AT_ONCE)?;
        let Some(last) = convs.last() else { break };
        after = Some(last.clone());
        let mut lists = futures_util::stream::iter(convs)
            .map(|cid| async move { Ok::<_, Error>((list_of(api, &cid).await?, cid)) })
            .buffer_unordered(concurrency.max(1));
        while let Some(listed) = lists.next().await {
            let (list, cid) = listed?;
            let Some(list) = list else {
                missing_conversations.insert(cid);
                continue;
            };
            for (row, raw) in rows_of(&cid, &list) {
                if crate::model::safe_id(&row.item.recording_id) {
                    crate::durable::write_sealed(
                        &staging.join(format!("{}.json", row.item.recording_id)),
                        raw.get().as_bytes(),
                    )?;
                }
                // Only what is not a call has a media: a row without one is audio.
                listing.push(&row.item, row.media.as_deref())?;
            }
        }
    }
    Ok(missing_conversations)
}

/// One conversation's recordings list as the API answered it, element by element (`None`: the
/// conversation answered 404, it is gone).
pub async fn list_of(api: &Api, cid: &str) -> Result<Option<Vec<Box<RawValue>>>> {
    let path = recordings_list_path(cid);
    let r = api.send(Method::GET, &path, None).await?;
    if r.status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !r.status.is_success() {
        return Err(Error::Api {
            method: "GET".into(),
            url: api.url(&path),
            message: r.describe(),
        });
    }
    serde_json::from_slice(&r.body)
        .map(Some)
        .map_err(|e| Error::Api {
            method: "GET".into(),
            url: api.url(&path),
            message: format!("not a list of Recording: {e}"),
        })
}

/// The manifest rows a conversation's recordings list gives (an element without an `id` gives
/// none), each with its element as received.
pub fn rows_of<'a>(cid: &str, list: &'a [Box<RawValue>]) -> Vec<(ListedRow, &'a RawValue)> {
    list.iter()
        .filter_map(|raw| {
            let v: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
            let rid = v["id"].as_str()?;
            Some((
                ListedRow {
                    item: Item {
                        conversation_id: cid.to_owned(),
                        recording_id: rid.to_owned(),
                        listed_state: v["fileState"].as_str().unwrap_or("UNKNOWN").to_owned(),
                    },
                    media: v["media"]
                        .as_str()
                        .filter(|m| *m != "audio")
                        .map(str::to_owned),
                },
                raw.as_ref(),
            ))
        })
        .collect()
}

/// [`genesys_recordings`], by the workers of a distributed job (docs/scale.md): the
/// conversations are put in the job state, the workers list them (each with its own OAuth
/// client) and leave each recording's element in `staging` as `<id>.w<epoch>.json`; this
/// waits for every list to land, then names the landed elements `<id>.json` and answers as
/// [`genesys_recordings`] does.
pub async fn recordings_by_workers(
    shared: &crate::state::Shared,
    listing: &mut Listing,
    staging: &std::path::Path,
    opened: &dyn Fn() -> Result<()>,
) -> Result<BTreeSet<String>> {
    crate::durable::make_dirs(staging)?;
    shared.list_conversations(listing)?;
    opened()?;
    while shared.unlisted()? > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let mut after = None;
    loop {
        let page = shared.listed_page(after.as_ref())?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.item.clone());
        for (row, epoch) in &page {
            let rid = &row.item.recording_id;
            if crate::model::safe_id(rid) {
                let by = staging.join(format!("{rid}.w{epoch}.json"));
                let named = staging.join(format!("{rid}.json"));
                let kind = std::fs::symlink_metadata(&by).map(|m| m.file_type());
                if kind.as_ref().is_ok_and(|k| !k.is_file()) {
                    return Err(Error::Tampered {
                        path: by,
                        message: "a worker's listed element is not a regular file (a link, a FIFO, a device): refused".into(),
                    });
                }
                if kind.is_ok() {
                    std::fs::rename(&by, &named).map_err(|e| Error::io(&named, e))?;
                } else if !named.exists() {
                    return Err(Error::Tampered {
                        path: by,
                        message: "a worker listed this recording, but its element is not in the staging area: the shared directory lost a file".into(),
                    });
                }
            }
            listing.push(&row.item, row.media.as_deref())?;
        }
    }
    crate::durable::sync_dir(staging)?;
    shared.missing_conversations()
}

/// The requests that list `selector` (for `data/query.json`), and what it selects, in words.
pub(super) fn requests(
    selector: &Selector,
    api: &Api,
    page_size: u32,
    now: OffsetDateTime,
) -> Result<(Vec<Value>, &'static str)> {
    Ok(match selector {
        Selector::Query(query) => (
            query
                .genesys_requests(now, page_size)
                .map_err(Error::Config)?
                .into_iter()
                .map(|r| json!({"method": r.method, "url": api.url(r.path), "body": r.body}))
                .collect(),
            "every recording of the conversations whose conversationStart lies in the timestamp range and that match the filters",
        ),
        Selector::Ids(list) => (
            list.entries
                .iter()
                .map(|e| &e.first)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .map(|c| json!({"method": "GET", "url": api.url(&recordings_list_path(c))}))
                .collect(),
            "the listed conversations' recordings (all of them, or the one named on the line)",
        ),
    })
}

/// Lists what `selector` names into `listing`: a query's conversations through the analytics
/// API (each one's record in `staging/conversations/`; what the data lake said of each job's
/// interval goes to `availability`), or an ids file's conversations; then each conversation's
/// recordings (their JSON in `staging`).
#[allow(clippy::too_many_arguments)]
pub(super) async fn discover(
    selector: &Selector,
    api: &Api,
    now: OffsetDateTime,
    page_size: u32,
    staging: &std::path::Path,
    listing: &mut Listing,
    availability: &dyn Fn(&[DataAvailability]) -> Result<()>,
    workers: Option<super::Workers<'_>>,
) -> Result<()> {
    match selector {
        Selector::Query(query) => {
            let found = genesys_conversations(
                api,
                query,
                now,
                page_size,
                &staging.join("conversations"),
                listing,
            )
            .await?;
            availability(&found)?;
        }
        Selector::Ids(list) => {
            for e in &list.entries {
                listing.add_conversation(&e.first)?;
            }
        }
    }
    let missing = match workers {
        Some(w) => recordings_by_workers(w.shared, listing, staging, w.opened).await?,
        None => genesys_recordings(api, listing, api.requests_in_flight(), staging).await?,
    };
    if let Selector::Ids(list) = selector {
        keep_listed(listing, &missing, list)?;
    }
    Ok(())
}

/// Keeps what an ids file asked for (a whole conversation, or one recording of it), and
/// accounts for every id the source does not know as an item of its own.
fn keep_listed(listing: &mut Listing, missing: &BTreeSet<String>, list: &IdList) -> Result<()> {
    // Keep what was asked for; account for every id the source does not know.
    let whole: BTreeSet<&str> = list
        .entries
        .iter()
        .filter(|e| e.second.is_none())
        .map(|e| e.first.as_str())
        .collect();
    let named: BTreeSet<(&str, &str)> = list
        .entries
        .iter()
        .filter_map(|e| e.second.as_deref().map(|r| (e.first.as_str(), r)))
        .collect();
    listing.retain(|it, _| {
        Ok(whole.contains(it.conversation_id.as_str())
            || named.contains(&(it.conversation_id.as_str(), it.recording_id.as_str())))
    })?;
    for (c, r) in &named {
        if !listing.has(c, r)? {
            let item = Item {
                conversation_id: c.to_string(),
                recording_id: r.to_string(),
                listed_state: NOT_FOUND.into(),
            };
            listing.push(&item, None)?;
        }
    }
    for c in missing {
        if whole.contains(c.as_str()) {
            let item = Item {
                conversation_id: c.clone(),
                recording_id: String::new(),
                listed_state: NOT_FOUND.into(),
            };
            listing.push(&item, None)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(json: &str) -> Head {
        let raw: Box<RawValue> = serde_json::from_str(json).unwrap();
        Head::of(&raw)
    }

    #[test]
    fn a_record_s_id_is_read_when_its_start_is_not_a_string() {
        let h = head(r#"{"conversationId": "c1", "conversationStart": 17, "participants": []}"#);
        assert_eq!(h.conversation_id.as_deref(), Some("c1"));
        assert_eq!(h.conversation_start, None);
    }

    #[test]
    fn a_results_page_that_is_not_an_object_has_no_cursor_or_total() {
        let m = PageMeta::read(br#" [7, "next-page", "2023-10-01T00:00:00Z"]"#);
        assert!(m.total_hits.is_none() && m.cursor.is_none() && m.data_availability_date.is_none());
        let m = PageMeta::read(br#"{"totalHits": 7, "cursor": "c", "conversations": [{"x": 1}]}"#);
        assert_eq!(m.cursor.as_ref().and_then(Value::as_str), Some("c"));
        assert_eq!(PageMeta::total_hits(br#"{"totalHits": 7}"#), 7);
    }

    #[test]
    fn a_record_that_is_not_an_object_has_no_id() {
        let h = head(r#"["c1"]"#);
        assert_eq!((h.conversation_id, h.conversation_start), (None, None));
    }
}
