//! The simulator's mutable state (tokens, rate windows, jobs, purges) and its counters.
//!
//! One `std::sync::Mutex` guards all mutable state: every critical section is a few map
//! operations with no `.await` inside, so contention is negligible and the lock order question
//! never arises.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use serde::Serialize;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::audio::Codec;
use crate::catalog::{Catalog, FileState};
use crate::rng::Rng;
use crate::scenario::Scenario;

/// A clock that tests can move forward. Every timer in the simulator reads it.
pub struct Clock {
    base: Instant,
    wall: OffsetDateTime,
    offset_ms: AtomicU64,
}

impl Clock {
    fn new(start: Option<OffsetDateTime>) -> Clock {
        Clock {
            base: Instant::now(),
            wall: start.unwrap_or_else(OffsetDateTime::now_utc),
            offset_ms: AtomicU64::new(0),
        }
    }

    /// Now, as a monotonic instant.
    pub fn now(&self) -> Instant {
        Instant::now() + std::time::Duration::from_millis(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Now, as UTC wall time.
    pub fn utc(&self) -> OffsetDateTime {
        self.wall + (self.now() - self.base)
    }

    /// Now, as Unix seconds.
    pub fn unix(&self) -> i64 {
        self.utc().unix_timestamp()
    }

    /// Moves the clock forward.
    pub fn advance(&self, ms: u64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

/// Counters of what was served: what a test asserts on.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// API requests per route template (e.g. `GET /api/v2/recording/batchrequests/{job_id}`).
    pub requests: BTreeMap<String, u64>,
    /// API responses per status code.
    pub statuses: BTreeMap<u16, u64>,
    /// All requests under /api/v2 that reached a route.
    pub api_requests: u64,
    /// 429s sent because a token exceeded its rate window.
    pub rate_limited: u64,
    /// 429s sent by the 429-storm fault.
    pub storm_429: u64,
    /// 503s sent by the 5xx fault.
    pub injected_5xx: u64,
    /// 401s sent to API requests (missing, unknown or expired token).
    pub unauthorized: u64,
    /// Tokens issued by /oauth/token.
    pub tokens_issued: u64,
    /// Token requests refused.
    pub token_failures: u64,
    /// Requests to media URLs (pre-signed and search `/media`).
    pub media_requests: u64,
    /// Media requests that carried an `Authorization` header: must stay 0 for pre-signed URLs.
    pub bearer_on_media: u64,
    /// Media bytes put on the wire.
    pub media_bytes: u64,
    /// Media requests refused as expired.
    pub expired_url_hits: u64,
    /// Media requests refused for a bad signature.
    pub bad_signature: u64,
    /// Media responses cut short or mis-stated, per fault.
    pub media_faults: BTreeMap<String, u64>,
    /// Recordings deleted by the purge fault.
    pub purged: u64,
    /// Conversations revealed by the drift fault.
    pub drift_revealed: u64,
}

/// An issued access token.
pub struct Token {
    /// Whose.
    pub client_id: String,
    /// When it stops working.
    pub expires: Instant,
    /// API requests made with it (for the token-expiry fault).
    pub requests: u64,
}

/// A fixed rate window.
pub struct Window {
    /// Start of the window.
    pub start: Instant,
    /// Requests admitted in it.
    pub count: u32,
}

/// A batch download job.
pub struct BatchJob {
    /// The submitting client (only it may read the job).
    pub owner: String,
    /// Results in order, each with the instant it becomes visible.
    pub results: Vec<BatchResult>,
}

/// One batch result.
pub struct BatchResult {
    /// When it appears in the job.
    pub ready: Instant,
    /// Conversation id.
    pub conversation_id: String,
    /// Recording id (or None when the conversation was unknown).
    pub recording: Option<usize>,
    /// Error text instead of a URL.
    pub error: Option<String>,
    /// The URL, issued when the result first becomes visible.
    pub url: Option<(String, &'static str)>,
}

/// An analytics details job.
pub struct AsyncJob {
    /// Submitter.
    pub owner: String,
    /// Submitted at.
    pub submitted: Instant,
    /// Submitted at, wall time.
    pub submitted_utc: OffsetDateTime,
    /// Matching conversation indexes, a snapshot taken at submission.
    pub matches: Vec<usize>,
    /// Cancelled by DELETE.
    pub cancelled: bool,
}

/// Mutable state.
pub struct State {
    pub tokens: HashMap<String, Token>,
    pub api_windows: HashMap<String, Window>,
    pub search_windows: HashMap<String, Window>,
    /// Recordings deleted by the purge fault.
    pub purged: HashSet<usize>,
    /// Conversations under deletion protection (legal hold): the purge fault spares them.
    pub protected: BTreeMap<usize, OffsetDateTime>,
    /// Restores asked for, by recording.
    pub restores: HashMap<usize, Restore>,
    /// Transcodes started: (recording, format) → ready at.
    pub transcodes: HashMap<(usize, Codec), Instant>,
    /// Orphan transcodes started: (orphan id, format) → ready at.
    pub orphan_transcodes: HashMap<(String, Codec), Instant>,
    pub batch_jobs: HashMap<String, BatchJob>,
    pub async_jobs: HashMap<String, AsyncJob>,
    /// Recording bulk jobs (crate::bulk).
    pub recording_jobs: HashMap<String, crate::bulk::RecordingJob>,
    /// When the org's S3 integration exported each recording (its `exportedDate`): at start, or
    /// when a recording bulk job wrote it. The `archive-missing` fault removes the object, not
    /// the date: Genesys still says it exported it.
    pub exported: HashMap<usize, OffsetDateTime>,
    /// Query pages served (drift reveals one late conversation per page).
    pub pages_served: u64,
    /// Media download attempts per (recording, format).
    pub download_attempts: HashMap<(usize, Codec), u32>,
    /// Recordings that have had a media URL issued (expired-urls hits the first one only).
    pub urls_issued: HashSet<usize>,
    /// Seeded randomness for per-request faults and ids.
    pub rng: Rng,
    /// 503s left in the current burst.
    pub burst_left: u32,
    /// A 429 storm lasts until then.
    pub storm_until: Option<Instant>,
    /// API requests seen (storm trigger).
    pub api_requests: u64,
}

/// A restore of an archived recording (`PUT …/recordings/{id}` with a new `archiveDate`).
#[derive(Clone, Debug)]
pub struct Restore {
    /// When the restore was first asked for (simulated wall time).
    pub requested: OffsetDateTime,
    /// When the recording becomes RESTORED.
    pub ready: OffsetDateTime,
    /// When it is archived again (the `archiveDate` asked for).
    pub until: OffsetDateTime,
    /// Restore requests received for this recording (a second is the exporter's mistake).
    pub requests: u32,
}

/// Everything shared by the handlers.
pub struct Inner {
    pub scenario: Scenario,
    pub catalog: Catalog,
    /// Orphan recordings (crate::orphans).
    pub orphans: Vec<crate::orphans::Orphan>,
    pub clock: Clock,
    pub state: Mutex<State>,
    pub stats: Mutex<Stats>,
    /// HMAC key of media URL signatures (fixed per seed: URLs are reproducible).
    pub url_key: [u8; 32],
    base_url: OnceLock<String>,
    /// SHA-256 of each (recording, format), computed on demand.
    pub digests: Mutex<HashMap<(usize, Codec), (String, u64)>>,
    /// Source of context and job ids; its own lock, so an error can be built while `state`
    /// is held.
    ids: Mutex<Rng>,
}

impl Inner {
    pub fn new(scenario: Scenario) -> Inner {
        let clock = Clock::new(scenario.live.then_some(scenario.start));
        let orphans = crate::orphans::draw(&scenario);
        let catalog = Catalog::build(&scenario);
        let scenario_seed = scenario.seed;
        let mut key_rng = Rng::fork(scenario.seed, "url-key");
        let mut url_key = [0u8; 32];
        for chunk in url_key.chunks_mut(8) {
            chunk.copy_from_slice(&key_rng.next_u64().to_le_bytes());
        }
        let state = State {
            tokens: HashMap::new(),
            api_windows: HashMap::new(),
            search_windows: HashMap::new(),
            purged: HashSet::new(),
            protected: BTreeMap::new(),
            restores: HashMap::new(),
            transcodes: HashMap::new(),
            orphan_transcodes: HashMap::new(),
            batch_jobs: HashMap::new(),
            recording_jobs: HashMap::new(),
            exported: HashMap::new(),
            async_jobs: HashMap::new(),
            pages_served: 0,
            download_attempts: HashMap::new(),
            urls_issued: HashSet::new(),
            rng: Rng::fork(scenario.seed, "requests"),
            burst_left: 0,
            storm_until: None,
            api_requests: 0,
        };
        Inner {
            scenario,
            catalog,
            orphans,
            clock,
            state: Mutex::new(state),
            stats: Mutex::new(Stats::default()),
            url_key,
            base_url: OnceLock::new(),
            digests: Mutex::new(HashMap::new()),
            ids: Mutex::new(Rng::fork(scenario_seed, "ids-served")),
        }
    }

    pub fn set_base_url(&self, url: String) {
        let _ = self.base_url.set(url);
    }

    pub fn base_url(&self) -> &str {
        self.base_url
            .get()
            .map(String::as_str)
            .unwrap_or("http://127.0.0.1")
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("state lock")
    }

    pub fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().expect("stats lock")
    }

    /// The recording's fileState now (the purge fault deletes recordings while serving; a
    /// restore makes an archived one RESTORING, then RESTORED until the date asked for).
    pub fn file_state(&self, st: &State, rec: usize) -> FileState {
        if st.purged.contains(&rec) {
            return FileState::Deleted;
        }
        if let Some(r) = st.restores.get(&rec) {
            let now = self.clock.utc();
            return if now < r.ready {
                FileState::Restoring
            } else if now < r.until {
                FileState::Restored
            } else {
                FileState::Archived
            };
        }
        self.catalog.recordings[rec].file_state
    }

    /// Whether a conversation is visible yet (drift, and in a live scenario its arrival).
    pub fn visible(&self, st: &State, conv: usize) -> bool {
        self.arrived(conv)
            && self.catalog.conversations[conv]
                .reveal_after
                .is_none_or(|n| st.pages_served >= n)
    }

    /// Whether a conversation has happened yet: always, unless the scenario is live and the
    /// simulator's clock has not reached its end.
    pub fn arrived(&self, conv: usize) -> bool {
        !self.scenario.live || self.catalog.conversations[conv].end <= self.clock.utc()
    }

    /// "Now" for analytics' 35-day rule and data availability: the clock in a live scenario.
    pub fn analytics_now(&self) -> OffsetDateTime {
        if self.scenario.live {
            self.clock.utc()
        } else {
            self.scenario.analytics_now()
        }
    }

    /// A fresh id for contexts and jobs (seeded, so runs reproduce).
    pub fn new_id(&self) -> String {
        self.ids.lock().expect("ids lock").uuid()
    }
}
