//! What an export is asked to do: [`ExportConfig`], built by the caller (the CLI merges flags,
//! environment and config file into one), read by every stage, never changed by them.

use std::path::PathBuf;

use time::OffsetDateTime;

use crate::http::Credentials;

/// What selects the recordings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// A query, as the user wrote it (docs/query.md).
    Query(String),
    /// A file of ids (crate::ids).
    Ids(PathBuf),
}

/// Which API to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum SourceKind {
    /// The real Genesys Cloud Platform API.
    Genesys,
    /// The design guide's search API (not offered by Genesys itself).
    Search,
}

impl SourceKind {
    /// The name used in files and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Genesys => "genesys",
            SourceKind::Search => "search",
        }
    }
}

/// How genesys media is fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Retrieval {
    /// Batch download requests (≤100 items), original codec.
    Batch,
    /// One transcode per recording in this `formatId`.
    Transcode(String),
}

/// The name of a [`Retrieval`], as the user chooses it (the format is a setting of its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum RetrievalMode {
    /// Batch download requests (≤100 items, original codec).
    Batch,
    /// One transcode per recording, in the chosen format.
    Transcode,
}

impl Retrieval {
    /// Which mode this is.
    pub fn mode(&self) -> RetrievalMode {
        match self {
            Retrieval::Batch => RetrievalMode::Batch,
            Retrieval::Transcode(_) => RetrievalMode::Transcode,
        }
    }
}

impl RetrievalMode {
    /// The name used in files and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            RetrievalMode::Batch => "batch",
            RetrievalMode::Transcode => "transcode",
        }
    }
}

/// Everything an export needs. Build it, then call [`export`](super::export).
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// The query or the ids file.
    pub selection: Selection,
    /// The export directory (the bag's root).
    pub out: PathBuf,
    /// Matter id (External-Identifier).
    pub matter: Option<String>,
    /// Source-Organization for bag-info.
    pub source_organization: Option<String>,
    /// Which API.
    pub source: SourceKind,
    /// e.g. `https://api.mypurecloud.ie`.
    pub api_base: String,
    /// e.g. `https://login.mypurecloud.ie`.
    pub login_base: String,
    /// OAuth client credentials.
    pub credentials: Credentials,
    /// API requests per minute, shared by every task.
    pub rate_per_minute: u32,
    /// Parallel downloads (and parallel listing calls).
    pub concurrency: usize,
    /// Genesys retrieval mode.
    pub retrieval: Retrieval,
    /// The human running the export, e.g. `Jane Doe <jane@firm.example>`.
    pub operator: Option<String>,
    /// Custodians (`--custodian`): user ids, names, emails or usernames, each resolved to one
    /// user before anything is written; the query is narrowed to them.
    pub custodians: Vec<String>,
    /// A minisign secret key: sign the bag's tag manifest with it.
    pub sign_key: Option<PathBuf>,
    /// Page size for discovery.
    pub page_size: u32,
    /// "Now" for the analytics 35-day rule; `None` = the clock.
    pub now: Option<OffsetDateTime>,
    /// How far a file's duration may differ from the API's before it is `Corrupted`.
    pub duration_tolerance: std::time::Duration,
    /// RFC 3161 Time Stamping Authorities, tried in order until one timestamps the tag manifest
    /// (and the signature); none: no timestamp.
    pub tsa: Vec<String>,
    /// Put Genesys deletion protection (a legal hold at the source) on every conversation of
    /// the sealed manifest before any media is requested (`--protect`).
    pub protect: bool,
    /// Restore ARCHIVED recordings, then export them (`--restore-archived`).
    pub restore: Option<RestoreArchived>,
    /// Collect each voice recording's Speech & Text Analytics transcript, with a plain-text
    /// rendering (`--transcripts`; one API call per recording).
    pub transcripts: bool,
    /// The media types exported (`--media`); empty: every type the query's conversations have.
    /// Recordings of other types are listed in data/media_excluded.csv, not retrieved.
    pub media: Vec<crate::model::Media>,
    /// List the org's orphan recordings (no known conversation) and report those made in the
    /// query's interval in data/completeness.json (`--orphans`).
    pub orphans: bool,
    /// Also collect the orphan recordings made in the query's interval: each is a manifest
    /// item (no conversation id), fetched through `GET /api/v2/orphanrecordings/{id}/media`
    /// (`--collect-orphans`; implies `orphans`).
    pub collect_orphans: bool,
    /// The previous bag of an ongoing hold's chain: this export holds only what no bag of the
    /// chain exported yet, and names that bag (`--increment-of`).
    pub increment_of: Option<PathBuf>,
    /// The public key the previous bag (`increment_of`) must be signed with.
    pub pubkey: Option<PathBuf>,
    /// How long one batch job or one transcode is waited for before its items end `Failed`
    /// ([`JOB_DEADLINE`]; tests shorten it).
    pub job_deadline: std::time::Duration,
    /// Where the job state is kept (`--state`): the SQLite file in the export directory, or a
    /// PostgreSQL database (docs/scale.md).
    pub state: crate::state::StateLocation,
    /// Leave the downloads to `custos worker` processes (`--workers`, PostgreSQL state only):
    /// this run lists, seals the manifest, opens the job to workers, waits for every item to
    /// end, and seals the bag.
    pub workers: bool,
    /// Read each item from the organization's own recording archive instead of the media API
    /// (`--archive`, docs/archive.md); the listing is the API's as always.
    pub archive: Option<crate::archive::ArchiveSource>,
}

/// How `--restore-archived` restores and waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreArchived {
    /// Days a restored recording stays restored: its new `archiveDate` is this long after the
    /// request (`--restore-days`).
    pub days: u32,
    /// Wait for every restore to finish (the default), or, once everything else is exported,
    /// stop with [`Error::RestoresPending`](crate::Error::RestoresPending) (`--no-wait`).
    pub wait: bool,
    /// The longest pause between two looks at the recordings still restoring (the pauses
    /// start at 1 s and double up to this).
    pub poll_max: std::time::Duration,
}

/// Days a restored recording stays restored unless `--restore-days` says otherwise.
pub const DEFAULT_RESTORE_DAYS: u32 = 7;

/// Genesys keeps a transcode or batch job's results for 30 minutes; waiting longer is pointless.
pub const JOB_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// The most downloads at a time (`--concurrency`).
pub const MAX_CONCURRENCY: usize = 256;
/// The highest `--rate` (requests per minute) accepted: above any Genesys org's limit.
pub const MAX_RATE_PER_MINUTE: u32 = 1_000_000;
