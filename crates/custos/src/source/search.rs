//! The design guide's search API (`GET /api/v2/search/recordings`, `GET /api/v2/recordings/{id}`),
//! which Genesys itself does not offer.

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::http::Api;
use crate::model::Item;

use super::{Listing, MAX_PASSES, NOT_FOUND, Selector, url_encode, url_path};

/// Pages through the search API (`q` = the query as given), each recording it finds a row of
/// `listing`.
pub async fn search_recordings(
    api: &Api,
    query_text: &str,
    page_size: u32,
    listing: &mut Listing,
) -> Result<()> {
    let first = format!(
        "/api/v2/search/recordings?{}&pageSize={page_size}",
        url_encode("q", query_text)
    );
    // The search API gives no total: repeat the search until a whole pass finds nothing new,
    // so recordings that appear while we page are not lost.
    for _pass in 0..MAX_PASSES {
        let mut new_ids = 0;
        let mut path = first.clone();
        loop {
            let v = api
                .send_ok(Method::GET, &path, None)
                .await?
                .json(&Method::GET, &api.url(&path))?;
            for e in v["elements"].as_array().into_iter().flatten() {
                if let (Some(rid), Some(cid)) = (e["id"].as_str(), e["conversationId"].as_str())
                    && !listing.has_recording(rid)?
                {
                    new_ids += 1;
                    let item = Item {
                        conversation_id: cid.to_owned(),
                        recording_id: rid.to_owned(),
                        listed_state: e["fileState"].as_str().unwrap_or("AVAILABLE").to_owned(),
                    };
                    listing.push(&item, None)?;
                }
            }
            match v["nextPageUri"].as_str() {
                // Only follow links on the same API, never to another host.
                Some(next) if next.starts_with("/api/v2/search/recordings?") => {
                    path = next.to_owned()
                }
                Some(next) => {
                    return Err(Error::Api {
                        method: "GET".into(),
                        url: api.url(&path),
                        message: format!(
                            "refusing to follow nextPageUri '{next}' off the search API"
                        ),
                    });
                }
                None => break,
            }
        }
        if new_ids == 0 {
            break;
        }
    }
    Ok(())
}

/// The search source with `--ids`: each recording's metadata (`GET /api/v2/recordings/{id}`),
/// written to `staging/<recordingId>.json` as received. An id the API does not know becomes a
/// `NOT_FOUND` row, so it is accounted for.
pub async fn search_by_ids(
    api: &Api,
    ids: &[String],
    concurrency: usize,
    staging: &std::path::Path,
    listing: &mut Listing,
) -> Result<()> {
    let mut got = futures_util::stream::iter(ids.iter().cloned())
        .map(|rid| async move {
            let path = format!("/api/v2/recordings/{}", url_path(&rid));
            let r = api.send(Method::GET, &path, None).await?;
            match r.status.as_u16() {
                200 => Ok((rid, Some(r.body))),
                404 => Ok((rid, None)),
                _ => Err(Error::Api {
                    method: "GET".into(),
                    url: api.url(&path),
                    message: r.describe(),
                }),
            }
        })
        .buffer_unordered(concurrency.max(1));
    while let Some(answer) = got.next().await {
        let (rid, body) = answer?;
        let item = match body {
            Some(b) => {
                let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
                if crate::model::safe_id(&rid) {
                    // Kept as received, as the genesys source keeps its listing's elements
                    // (text that is not UTF-8 is kept as it always was: made valid).
                    crate::durable::write_sealed(
                        &staging.join(format!("{rid}.json")),
                        String::from_utf8_lossy(&b).as_bytes(),
                    )?;
                }
                Item {
                    conversation_id: v["conversationId"].as_str().unwrap_or("").to_owned(),
                    listed_state: v["fileState"].as_str().unwrap_or("AVAILABLE").to_owned(),
                    recording_id: rid,
                }
            }
            None => Item {
                conversation_id: String::new(),
                recording_id: rid,
                listed_state: NOT_FOUND.into(),
            },
        };
        listing.push(&item, None)?;
    }
    Ok(())
}

/// The requests that list `selector` (for `data/query.json`), and what it selects, in words.
pub(super) fn requests(
    selector: &Selector,
    api: &Api,
    page_size: u32,
) -> (Vec<serde_json::Value>, &'static str) {
    match selector {
        Selector::Query(query) => (
            vec![serde_json::json!({"method": "GET", "url": api.url("/api/v2/search/recordings"), "query": {"q": query.text(), "pageSize": page_size}})],
            "the recordings the search API returns for q, every page",
        ),
        Selector::Ids(list) => (
            list.entries
                .iter()
                .map(|e| serde_json::json!({"method": "GET", "url": api.url(&format!("/api/v2/recordings/{}", url_path(&e.first)))}))
                .collect(),
            "the listed recordings",
        ),
    }
}

/// Lists what `selector` names into `listing`: the search's every page, or each listed
/// recording (its metadata in `staging`).
pub(super) async fn discover(
    selector: &Selector,
    api: &Api,
    page_size: u32,
    staging: &std::path::Path,
    listing: &mut Listing,
) -> Result<()> {
    match selector {
        Selector::Query(query) => {
            search_recordings(api, query.text(), page_size.min(1000), listing).await
        }
        Selector::Ids(list) => {
            let ids: Vec<String> = list.entries.iter().map(|e| e.first.clone()).collect();
            search_by_ids(api, &ids, api.requests_in_flight(), staging, listing).await
        }
    }
}
