//! The two source APIs: finding the recordings a query selects (the manifest's rows, with each
//! recording's metadata JSON exactly as received) and getting a download URL for each.
//!
//! `genesys` is the real Platform API: analytics details queries or jobs, then
//! the recordings list (`GET …/conversations/{id}/recordings?formatId=NONE`) per conversation.
//! `search` is the design guide's search API.
//! Wire JSON is read field by field from `serde_json::Value`, tolerant of fields we do not know.
//!
//! Each API is one module: [`genesys`] and [`search`]; [`Source`] is an export's source with
//! what selects its recordings, the one place that chooses between them.

mod genesys;
mod listing;
mod search;

use std::path::Path;

use serde_json::Value;
use time::OffsetDateTime;

use crate::error::Result;
use crate::export::SourceKind;
use crate::http::Api;
use crate::ids::IdList;
use crate::query::Query;

pub use genesys::{
    DETAILS_JOBS_AVAILABILITY, DataAvailability, genesys_conversations, genesys_recordings,
    list_of, recordings_by_workers, recordings_list_path, rows_of,
};
pub use listing::{Listing, Rows};
pub use search::{search_by_ids, search_recordings};

/// A distributed job's workers, who fetch the conversations' recordings lists (the genesys
/// source's per-conversation listing calls, most of its API budget): the job state they claim
/// from, and what to do once the conversations are in it (open the job to them).
#[derive(Clone, Copy)]
pub struct Workers<'a> {
    /// The job's shared state.
    pub shared: &'a crate::state::Shared,
    /// Called once the conversations to list are in the job state.
    pub opened: &'a dyn Fn() -> Result<()>,
}

/// Most passes over a window (or the search) while results are still moving.
const MAX_PASSES: usize = 5;

/// `k=v`, form-encoded.
fn url_encode(k: &str, v: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair(k, v)
        .finish()
}

/// Percent-encodes an id for a URL path segment (ids are checked before files are named, but a
/// hostile id must not change which URL we call either).
pub fn url_path(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The listed state of a requested id the source does not know.
pub const NOT_FOUND: &str = "NOT_FOUND";

/// What selects an export's recordings: a query, or a list of ids.
pub enum Selector {
    /// A query (docs/query.md).
    Query(Query),
    /// An ids file (crate::ids).
    Ids(IdList),
}

impl Selector {
    /// The canonical form a resume is compared against.
    pub fn canonical(&self) -> String {
        match self {
            Selector::Query(q) => q.canonical(),
            Selector::Ids(l) => l.canonical(),
        }
    }

    /// What the custody record's Query_String_Used holds.
    pub fn used(&self) -> String {
        match self {
            Selector::Query(q) => q.text().to_owned(),
            Selector::Ids(l) => format!("ids-file:{} sha256:{}", l.file.display(), l.file_sha256),
        }
    }
}

/// An export's source: which API, with what selects the recordings in it. Each API's listing is
/// its own module; this is the one place that chooses between them.
pub enum Source {
    /// The Genesys Cloud Platform API ([`genesys`]).
    Genesys(Selector),
    /// The design guide's search API ([`search`]).
    Search(Selector),
}

impl Source {
    /// `selector` read from `kind`.
    pub fn new(kind: SourceKind, selector: Selector) -> Source {
        match kind {
            SourceKind::Genesys => Source::Genesys(selector),
            SourceKind::Search => Source::Search(selector),
        }
    }

    /// Which API.
    pub fn kind(&self) -> SourceKind {
        match self {
            Source::Genesys(_) => SourceKind::Genesys,
            Source::Search(_) => SourceKind::Search,
        }
    }

    /// What selects the recordings.
    pub fn selector(&self) -> &Selector {
        match self {
            Source::Genesys(s) | Source::Search(s) => s,
        }
    }

    /// The requests that list the selection, as `data/query.json` records them (method, full
    /// URL, body), and what the selection is, in words.
    pub fn requests(
        &self,
        api: &Api,
        page_size: u32,
        now: OffsetDateTime,
    ) -> Result<(Vec<Value>, &'static str)> {
        match self {
            Source::Genesys(s) => genesys::requests(s, api, page_size, now),
            Source::Search(s) => Ok(search::requests(s, api, page_size)),
        }
    }

    /// Lists what the selection names into `listing`, and answers it: the manifest's rows,
    /// sorted and unique, each with its `media` as listed where it is stated and not `audio`
    /// (screen, chat, email, messaging, or a type we do not know), on disk and never held in
    /// memory whole; each recording's JSON as received (and, for a genesys query, each
    /// conversation's analytics record) is in `staging`. A genesys query tells `availability` what the analytics data lake said of
    /// each job's interval as soon as its conversations are known, before their recordings
    /// are listed.
    #[allow(clippy::too_many_arguments)]
    pub async fn discover(
        &self,
        api: &Api,
        now: OffsetDateTime,
        page_size: u32,
        staging: &Path,
        mut listing: Listing,
        availability: &dyn Fn(&[DataAvailability]) -> Result<()>,
        workers: Option<Workers<'_>>,
    ) -> Result<Listing> {
        crate::durable::make_dirs(staging)?;
        match self {
            Source::Genesys(s) => {
                genesys::discover(
                    s,
                    api,
                    now,
                    page_size,
                    staging,
                    &mut listing,
                    availability,
                    workers,
                )
                .await?
            }
            Source::Search(s) => {
                search::discover(s, api, page_size, staging, &mut listing).await?;
            }
        }
        Ok(listing)
    }
}
