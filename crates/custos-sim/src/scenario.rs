//! Everything the simulator can be told: the catalog to generate, the API's limits and timing,
//! and the faults to inject. One `Scenario` value, loadable from a TOML file and overridable by
//! flags, fully determines a run (together with the order of the client's requests).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::audio::Codec;

/// An OAuth client the simulator accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// The client id (public; recorded by exporters as their identity).
    pub id: String,
    /// The client secret.
    pub secret: String,
}

/// A whole simulated org and its behaviour. Field docs are the scenario-file documentation
/// (docs/simulator.md repeats them with examples).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Scenario {
    /// OAuth clients accepted by `POST /oauth/token`.
    pub clients: Vec<Client>,
    /// The organization's id, as `GET /api/v2/tokens/me` names it.
    pub org_id: String,
    /// The organization's name.
    pub org_name: String,
    /// What follows every agent's first name in the Users API (`Ada Agent`): a test puts a load
    /// file's reserved characters (þ, DC4, ®) here.
    pub agent_surname: String,
    /// Lifetime of an access token, seconds (Genesys default: 86400).
    pub token_ttl_s: u64,
    /// Seed of the catalog and of every seeded fault.
    pub seed: u64,
    /// Number of conversations in the catalog.
    pub conversations: usize,
    /// Earliest conversation start (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    /// Latest conversation start (UTC, exclusive).
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
    /// Each conversation has 0..=this many recordings.
    pub max_recordings_per_conversation: u32,
    /// Shortest recording, seconds.
    pub min_recording_s: u32,
    /// Longest recording, seconds.
    pub max_recording_s: u32,
    /// Sample rate of the WAV recordings (Opus is always 48 kHz internally).
    pub sample_rate: u32,
    /// Channels of the WAV recordings (1 or 2).
    pub channels: u16,
    /// The "original trunk codecs" recordings are stored in, picked per recording.
    pub codecs: Vec<Codec>,
    /// Fraction of recordings in fileState ARCHIVED.
    pub archived_fraction: f64,
    /// Fraction of recordings in fileState DELETED.
    pub deleted_fraction: f64,
    /// Added to every API response, milliseconds.
    pub latency_ms: u64,
    /// Cap on each media download, bytes per second (0 = unlimited).
    pub bandwidth: u64,
    /// Platform API requests per token per minute (Genesys: 300).
    pub api_rate: u32,
    /// Search-API requests per token per second (the design guide: 100).
    pub search_rate: u32,
    /// Time a transcode takes before `GET …/recordings/{id}` answers 200, milliseconds.
    pub transcode_ms: u64,
    /// Time each batch-download result takes to appear, milliseconds per item.
    pub batch_ms_per_item: u64,
    /// Time an analytics details job takes to reach FULFILLED, milliseconds.
    pub async_job_ms: u64,
    /// Lifetime of media URLs (`mediaUri`, `resultUrl`), seconds (Genesys: 60 min, min 2).
    pub url_ttl_s: u64,
    /// Serve the design guide's search API (`/api/v2/search/recordings` …), which real
    /// Genesys does not have.
    pub search_api: bool,
    /// "Now" for the analytics 35-day rule. Default: one day after `end`, so that the
    /// catalog's last five weeks are reachable by the synchronous query.
    #[serde(with = "time::serde::rfc3339::option")]
    pub analytics_now: Option<OffsetDateTime>,
    /// Conversations the org may hold under deletion protection at once (the reference found
    /// 1,000 per org, unconfirmed); a request past it fails for the conversations over.
    pub protect_limit: usize,
    /// Time a restore of an archived recording takes (RESTORING → RESTORED), milliseconds of
    /// the simulator's clock (Genesys: "can take several hours"; `POST /sim/clock` moves it).
    pub restore_ms: u64,
    /// Permissions the OAuth clients lack, e.g. `recording:deletionProtection:apply` or
    /// `recording:recording:restore`: requests that need one get 403.
    pub denied_permissions: Vec<String>,
    /// Calls arrive in simulated time: the clock starts at `start`, and a conversation exists
    /// (analytics, recordings, search) only once it has ended by the simulator's clock
    /// (`POST /sim/clock` moves it on); analytics' "now" is the clock. For ongoing holds.
    pub live: bool,
    /// Fraction of voice recordings with a Speech & Text Analytics transcript.
    pub transcripts: f64,
    /// Orphan recordings (no known conversation), created between `start` and `end`.
    pub orphans: usize,
    /// Fraction of recorded calls whose agent's screen was recorded too (a `screen` recording,
    /// WebM video).
    pub screen: f64,
    /// Chat, email and messaging conversations (in turn), each with one recording, besides
    /// the calls.
    pub digital: usize,
    /// Land the org's recording archive at start (what the "AWS S3 recording bulk actions"
    /// integration writes into the org's bucket) into this directory: a bucket's directory of an
    /// S3-compatible server (s3s-fs: `ROOT/BUCKET`). Not set: no archive.
    pub archive_dir: Option<std::path::PathBuf>,
    /// Key prefix of the archive in its bucket (`""`, or ending in `/`).
    pub archive_prefix: String,
    /// The archive fills only through recording bulk jobs (`POST /api/v2/recording/jobs`,
    /// EXPORT): nothing lands at start; each executed job lands its recordings when it ends.
    pub archive_by_jobs: bool,
    /// The id of the org's "AWS S3 recording bulk actions" integration, which an EXPORT job
    /// must name.
    pub integration_id: String,
    /// Time a recording bulk job takes: READY after half of it, FULFILLED this long after it
    /// is executed, milliseconds of the simulator's clock.
    pub recording_job_ms: u64,
    /// Faults to inject.
    pub faults: Faults,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            clients: vec![Client {
                id: "custos-sim-client".into(),
                secret: "custos-sim-secret".into(),
            }],
            org_id: "5b0f2c3e-0000-4000-8000-00000000c057".into(),
            org_name: "Custos Simulated Org".into(),
            agent_surname: "Agent".into(),
            token_ttl_s: 86_400,
            seed: 1,
            conversations: 200,
            start: datetime!(2023-10-01 00:00:00 UTC),
            end: datetime!(2023-10-08 00:00:00 UTC),
            max_recordings_per_conversation: 2,
            min_recording_s: 5,
            max_recording_s: 90,
            sample_rate: 8_000,
            channels: 1,
            codecs: vec![Codec::Wav, Codec::WavUlaw, Codec::OggOpus],
            archived_fraction: 0.05,
            deleted_fraction: 0.04,
            latency_ms: 0,
            bandwidth: 0,
            api_rate: 300,
            search_rate: 100,
            transcode_ms: 1_000,
            batch_ms_per_item: 10,
            async_job_ms: 1_000,
            url_ttl_s: 3_600,
            search_api: true,
            analytics_now: None,
            protect_limit: 1_000,
            restore_ms: 3_000,
            denied_permissions: Vec::new(),
            live: false,
            orphans: 3,
            transcripts: 0.8,
            screen: 0.0,
            digital: 0,
            archive_dir: None,
            archive_prefix: String::new(),
            archive_by_jobs: false,
            integration_id: "7a1c0de5-0000-4000-8000-0000000053b3".into(),
            recording_job_ms: 1_000,
            faults: Faults::default(),
        }
    }
}

/// A scenario, fault list or simulator setting that cannot be used, in the user's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError(pub String);

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScenarioError {}

impl From<ScenarioError> for String {
    fn from(e: ScenarioError) -> String {
        e.0
    }
}

impl From<String> for ScenarioError {
    fn from(s: String) -> Self {
        ScenarioError(s)
    }
}

impl Scenario {
    /// Reads a scenario file (TOML); fields left out keep their defaults.
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// Refuses values that cannot describe a real org (or that would make the simulator lie).
    pub fn validate(&self) -> Result<(), ScenarioError> {
        self.check().map_err(ScenarioError)
    }

    fn check(&self) -> Result<(), String> {
        if self.clients.is_empty() {
            return Err("at least one OAuth client is needed".into());
        }
        if self.end <= self.start {
            return Err("end must be after start".into());
        }
        let p = &self.archive_prefix;
        let climbs = p.starts_with('/') || p.split('/').any(|s| s == "..");
        if !p.is_empty() && (climbs || !p.ends_with('/')) {
            return Err(
                "archive-prefix must be empty or end in '/', with no leading '/' and no '..'"
                    .into(),
            );
        }
        if self.min_recording_s == 0 || self.min_recording_s > self.max_recording_s {
            return Err("recording length: need 1 <= min-recording-s <= max-recording-s".into());
        }
        if !(1..=2).contains(&self.channels) {
            return Err("channels must be 1 or 2".into());
        }
        if !(8_000..=48_000).contains(&self.sample_rate) {
            return Err("sample-rate must be within 8000..=48000".into());
        }
        // RIFF sizes are 32-bit: a longer WAV would need RF64, which we do not generate.
        let wav_bytes = u64::from(self.max_recording_s)
            * u64::from(self.sample_rate)
            * u64::from(self.channels)
            * 2;
        if wav_bytes > u64::from(u32::MAX) - 64 {
            return Err(format!(
                "max-recording-s {} at {} Hz x {} channels makes a WAV over 4 GiB, which RIFF cannot describe",
                self.max_recording_s, self.sample_rate, self.channels
            ));
        }
        if self.codecs.is_empty() {
            return Err("codecs must name at least one codec".into());
        }
        if let Some(c) = self.codecs.iter().find(|c| c.is_native()) {
            return Err(format!(
                "codecs: {} is not an audio codec (screen, chat, email and messaging recordings come from screen and digital)",
                c.format_id()
            ));
        }
        if self.api_rate == 0 || self.search_rate == 0 {
            return Err("api-rate and search-rate must be positive".into());
        }
        if !(2 * 60..=60 * 60).contains(&self.url_ttl_s) && self.url_ttl_s != 0 {
            // Genesys allows 2..=60 minutes; 0 is accepted for tests that want instant expiry.
            return Err("url-ttl-s must be within 120..=3600 (Genesys' limits) or 0".into());
        }
        let fractions = [
            ("archived-fraction", self.archived_fraction),
            ("deleted-fraction", self.deleted_fraction),
            ("transcripts", self.transcripts),
            ("screen", self.screen),
        ];
        for (name, f) in fractions {
            if !(0.0..=1.0).contains(&f) {
                return Err(format!("{name} must be within 0..=1"));
            }
        }
        if self.archived_fraction + self.deleted_fraction > 1.0 {
            return Err("archived-fraction + deleted-fraction must not exceed 1".into());
        }
        self.faults.check()
    }

    /// The instant the analytics 35-day rule measures from.
    pub fn analytics_now(&self) -> OffsetDateTime {
        self.analytics_now
            .unwrap_or(self.end + time::Duration::days(1))
    }
}

/// Injected faults. Every fraction selects recordings (or requests) by a seeded hash, so a
/// scenario reproduces exactly. Zero everywhere means a well-behaved org.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Faults {
    /// Fraction of AVAILABLE recordings deleted at their first media download: the listing
    /// said AVAILABLE, the download gets 404, and the API says DELETED from then on.
    pub purge: f64,
    /// Fraction of recordings whose media download is cut off halfway (connection closed).
    pub truncate: f64,
    /// Fraction of recordings whose media response states a Content-Length larger than the
    /// body (the whole file is sent, then the connection closes).
    pub length_over: f64,
    /// Fraction of recordings whose media response states a Content-Length smaller than the
    /// file, and sends only that many bytes: consistent HTTP, wrong file.
    pub length_under: f64,
    /// How many download attempts of a recording hit by truncate/length faults fail before
    /// one succeeds (0 = every attempt fails).
    pub fault_attempts: u32,
    /// Fraction of recordings whose metadata duration (startTime/endTime, outputDurationMs)
    /// is longer than the audio actually holds.
    pub duration_lie: f64,
    /// Fraction of recordings that hold a third of their stated duration while their
    /// container's header agrees with the metadata (Ogg Opus last granule, WebM `Duration`, WAV
    /// data size): only the content tells.
    pub header_lie: f64,
    /// Fraction of recordings (of 6 s or more) with a secure pause: a `pause` annotation whose
    /// span (a quarter of the call) is cut from the audio served, and a `hold` annotation that
    /// is not. Not a fault: an exporter that checks `endTime − startTime` without subtracting
    /// pauses calls these Corrupted; the truth says Exported.
    pub pauses: f64,
    /// Probability per API request that a burst of 1..=3 `503 service.unavailable` starts.
    pub server_errors: f64,
    /// Every Nth API request starts a 429 storm (0 = off): every API request is refused until
    /// `storm-retry-after-s` has passed.
    pub storm_every: u64,
    /// The Retry-After of a storm, seconds.
    pub storm_retry_after_s: u64,
    /// A token stops working after this many API requests, as if it had expired (0 = off).
    pub token_expiry_after: u64,
    /// Conversations that appear while the client pages: this many extra conversations, one
    /// revealed per query page served.
    pub drift: usize,
    /// Each page after the first repeats the previous page's last item.
    pub duplicates: bool,
    /// Fraction of recordings whose transcode takes 10x `transcode-ms`.
    pub slow_transcode: f64,
    /// Fraction of recordings whose first media URL is issued already expired.
    pub expired_urls: f64,
    /// Fraction of chat and messaging recordings whose ZIP has a member whose bytes no longer
    /// match its CRC (served whole, every time).
    pub damaged_zip: f64,
    /// Fraction of email recordings whose EML ends 60 % of the way through (served with a
    /// matching Content-Length, every time).
    pub truncated_eml: f64,
    /// Fraction of screen recordings that hold a third of the duration the API states.
    pub short_screen: f64,
    /// The first conversation's `recordingmetadata` and `recordings` lists also hold
    /// recordings whose ids are hostile as file names (`../../x`, `a/b`, `a\b`, NUL, control
    /// characters). They have no media; an exporter must refuse them without writing anything.
    /// The orphan listing holds orphans with such ids too (`orphans::hostile_orphan_id`: each
    /// of those with `/orphan` added; made a second after `start`).
    pub hostile_ids: bool,
    /// Fraction of the archive's recordings that never land in the bucket.
    pub archive_missing: f64,
    /// Fraction of the archive's recordings altered after landing (cut to half their bytes).
    pub archive_altered: f64,
    /// Fraction of the archive's recordings whose `_metadata.json` states a `durationMs` 30 s
    /// longer than the API's record.
    pub archive_metadata: f64,
    /// Fraction of the archive's recordings that landed twice, under two extensions.
    pub archive_duplicate: f64,
    /// Fraction of the conversations with recordings whose archive folder also holds an object
    /// that is no recording of the org (and its `_metadata.json`), landed at start.
    pub archive_stray: f64,
    /// Fraction of the recordings DELETED or ARCHIVED at the source whose copy the archive still
    /// holds (the integration exported them before they were deleted or archived).
    pub archive_keeps_settled: f64,
    /// Fraction of a recording bulk job's recordings that fail to export: listed by
    /// `failedrecordings` (no reason), never landed.
    pub bulk_failed: f64,
    /// Fraction of a recording bulk job's recordings that land `bulk-late-ms` after the job is
    /// FULFILLED.
    pub bulk_late: f64,
    /// How late a late recording lands, milliseconds.
    pub bulk_late_ms: u64,
    /// A recording bulk job FAILs part-way: the first half of its recordings landed.
    pub bulk_job_fails: bool,
}

impl Default for Faults {
    /// No faults; should one be switched on, it hits the first download attempt only and a
    /// storm lasts 2 s.
    fn default() -> Self {
        Faults {
            purge: 0.0,
            truncate: 0.0,
            length_over: 0.0,
            length_under: 0.0,
            fault_attempts: 1,
            duration_lie: 0.0,
            header_lie: 0.0,
            pauses: 0.0,
            server_errors: 0.0,
            storm_every: 0,
            storm_retry_after_s: 2,
            token_expiry_after: 0,
            drift: 0,
            duplicates: false,
            slow_transcode: 0.0,
            expired_urls: 0.0,
            damaged_zip: 0.0,
            truncated_eml: 0.0,
            short_screen: 0.0,
            hostile_ids: false,
            archive_missing: 0.0,
            archive_altered: 0.0,
            archive_metadata: 0.0,
            archive_duplicate: 0.0,
            archive_stray: 0.0,
            archive_keeps_settled: 0.0,
            bulk_failed: 0.0,
            bulk_late: 0.0,
            bulk_late_ms: 1_500,
            bulk_job_fails: false,
        }
    }
}

/// Recording ids a file system must never see as names, nor a spreadsheet as a formula (served
/// by the hostile-ids fault).
pub const HOSTILE_IDS: &[&str] = &[
    "../../x",
    "a/b",
    "a\\b",
    "nul\u{0}id",
    "bell\u{7}id",
    "..",
    "=HYPERLINK(\"http://127.0.0.1/\",\"open\")",
    "+1+1",
    "-1+1",
    "@SUM(1,1)",
    "tab\tid",
];

/// Names accepted by `--faults`, with the intensity `all` (or a bare name) switches on.
pub const FAULT_NAMES: &[(&str, &str)] = &[
    ("purge", "0.05"),
    ("truncate", "0.05"),
    ("length-over", "0.03"),
    ("length-under", "0.03"),
    ("fault-attempts", "1"),
    ("duration-lie", "0.03"),
    ("header-lie", "0.03"),
    ("pauses", "0.1"),
    ("5xx", "0.02"),
    ("429-storm", "100"),
    ("storm-retry-after", "2"),
    ("token-expiry", "150"),
    ("drift", "5"),
    ("duplicates", "true"),
    ("slow-transcode", "0.1"),
    ("expired-urls", "0.05"),
    ("damaged-zip", "0.2"),
    ("truncated-eml", "0.2"),
    ("short-screen", "0.2"),
    ("hostile-ids", "true"),
    ("archive-missing", "0.05"),
    ("archive-altered", "0.03"),
    ("archive-metadata", "0.03"),
    ("archive-duplicate", "0.02"),
    ("archive-stray", "0.1"),
    ("archive-keeps-settled", "0.5"),
    ("bulk-failed", "0.05"),
    ("bulk-late", "0.05"),
    ("bulk-late-ms", "1500"),
    ("bulk-job-fails", "true"),
];

impl Faults {
    /// Parses `--faults`: `all`, or a comma list of `name` or `name=value`
    /// (e.g. `purge=0.1,truncate,429-storm=50`). Applied over `self`.
    pub fn apply_list(&mut self, list: &str) -> Result<(), ScenarioError> {
        self.apply(list).map_err(ScenarioError)
    }

    fn apply(&mut self, list: &str) -> Result<(), String> {
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "all" {
                for (name, default) in FAULT_NAMES {
                    self.set(name, default)?;
                }
                continue;
            }
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n.trim(), v.trim()),
                None => {
                    let default = FAULT_NAMES
                        .iter()
                        .find(|(n, _)| *n == item)
                        .map(|(_, d)| *d)
                        .ok_or_else(|| unknown_fault(item))?;
                    (item, default)
                }
            };
            self.set(name, value)?;
        }
        self.check()
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let frac = |v: &str| -> Result<f64, String> {
            v.parse::<f64>()
                .map_err(|_| format!("fault {name}: '{v}' is not a number"))
        };
        let int = |v: &str| -> Result<u64, String> {
            v.parse::<u64>()
                .map_err(|_| format!("fault {name}: '{v}' is not a whole number"))
        };
        match name {
            "purge" => self.purge = frac(value)?,
            "truncate" => self.truncate = frac(value)?,
            "length-over" => self.length_over = frac(value)?,
            "length-under" => self.length_under = frac(value)?,
            "fault-attempts" => self.fault_attempts = int(value)? as u32,
            "duration-lie" => self.duration_lie = frac(value)?,
            "header-lie" => self.header_lie = frac(value)?,
            "pauses" => self.pauses = frac(value)?,
            "5xx" => self.server_errors = frac(value)?,
            "429-storm" => self.storm_every = int(value)?,
            "storm-retry-after" => self.storm_retry_after_s = int(value)?,
            "token-expiry" => self.token_expiry_after = int(value)?,
            "drift" => self.drift = int(value)? as usize,
            "duplicates" => {
                self.duplicates = value
                    .parse()
                    .map_err(|_| format!("fault duplicates: '{value}' is not true/false"))?
            }
            "slow-transcode" => self.slow_transcode = frac(value)?,
            "expired-urls" => self.expired_urls = frac(value)?,
            "damaged-zip" => self.damaged_zip = frac(value)?,
            "truncated-eml" => self.truncated_eml = frac(value)?,
            "short-screen" => self.short_screen = frac(value)?,
            "hostile-ids" => {
                self.hostile_ids = value
                    .parse()
                    .map_err(|_| format!("fault hostile-ids: '{value}' is not true/false"))?
            }
            "archive-missing" => self.archive_missing = frac(value)?,
            "archive-altered" => self.archive_altered = frac(value)?,
            "archive-metadata" => self.archive_metadata = frac(value)?,
            "archive-duplicate" => self.archive_duplicate = frac(value)?,
            "archive-stray" => self.archive_stray = frac(value)?,
            "archive-keeps-settled" => self.archive_keeps_settled = frac(value)?,
            "bulk-failed" => self.bulk_failed = frac(value)?,
            "bulk-late" => self.bulk_late = frac(value)?,
            "bulk-late-ms" => self.bulk_late_ms = int(value)?,
            "bulk-job-fails" => {
                self.bulk_job_fails = value
                    .parse()
                    .map_err(|_| format!("fault bulk-job-fails: '{value}' is not true/false"))?
            }
            other => return Err(unknown_fault(other)),
        }
        Ok(())
    }

    /// Refuses fractions outside 0..=1.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        self.check().map_err(ScenarioError)
    }

    fn check(&self) -> Result<(), String> {
        let fractions = [
            ("purge", self.purge),
            ("truncate", self.truncate),
            ("length-over", self.length_over),
            ("length-under", self.length_under),
            ("duration-lie", self.duration_lie),
            ("header-lie", self.header_lie),
            ("pauses", self.pauses),
            ("5xx", self.server_errors),
            ("slow-transcode", self.slow_transcode),
            ("expired-urls", self.expired_urls),
            ("damaged-zip", self.damaged_zip),
            ("truncated-eml", self.truncated_eml),
            ("short-screen", self.short_screen),
            ("archive-missing", self.archive_missing),
            ("archive-altered", self.archive_altered),
            ("archive-metadata", self.archive_metadata),
            ("archive-duplicate", self.archive_duplicate),
            ("archive-stray", self.archive_stray),
            ("archive-keeps-settled", self.archive_keeps_settled),
            ("bulk-failed", self.bulk_failed),
            ("bulk-late", self.bulk_late),
        ];
        for (name, f) in fractions {
            if !(0.0..=1.0).contains(&f) {
                return Err(format!(
                    "fault {name} must be a fraction within 0..=1, not {f}"
                ));
            }
        }
        Ok(())
    }
}

fn unknown_fault(name: &str) -> String {
    let names: Vec<&str> = FAULT_NAMES.iter().map(|(n, _)| *n).collect();
    format!("unknown fault '{name}'; known: all, {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_switches_every_fault_on() {
        let mut f = Faults::default();
        f.apply_list("all").unwrap();
        assert!(f.purge > 0.0 && f.truncate > 0.0 && f.length_over > 0.0 && f.length_under > 0.0);
        assert!(f.duration_lie > 0.0 && f.server_errors > 0.0 && f.storm_every > 0);
        assert!(f.token_expiry_after > 0 && f.drift > 0 && f.duplicates);
        assert!(f.slow_transcode > 0.0 && f.expired_urls > 0.0 && f.hostile_ids);
    }

    #[test]
    fn values_and_errors() {
        let mut f = Faults::default();
        f.apply_list("purge=0.5, 429-storm=7").unwrap();
        assert_eq!(f.purge, 0.5);
        assert_eq!(f.storm_every, 7);
        assert!(
            f.apply_list("nonsense")
                .unwrap_err()
                .0
                .contains("unknown fault")
        );
        assert!(f.apply_list("purge=2").unwrap_err().0.contains("0..=1"));
        assert!(
            f.apply_list("purge=abc")
                .unwrap_err()
                .0
                .contains("not a number")
        );
    }

    #[test]
    fn scenario_file_round_trips_and_rejects_unknown_keys() {
        let s = Scenario::from_toml(
            "seed = 9\nconversations = 3\nstart = \"2024-01-01T00:00:00Z\"\nend = \"2024-01-02T00:00:00Z\"\n[faults]\npurge = 0.2\n",
        )
        .unwrap();
        assert_eq!((s.seed, s.conversations, s.faults.purge), (9, 3, 0.2));
        assert!(Scenario::from_toml("bogus = 1").is_err());
        assert!(
            Scenario::from_toml("channels = 3")
                .unwrap_err()
                .0
                .contains("channels")
        );
    }
}
