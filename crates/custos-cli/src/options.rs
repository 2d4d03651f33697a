//! The export's options, defined once: one struct is both the flags (clap) and the config
//! file's keys (serde, the same kebab-case names), merged here — flags > environment > config
//! file > defaults — and turned into the library's [`ExportConfig`].
//!
//! The storage options (`StoreArgs`, shared by `export --upload` and `upload`) live here too.
//!
//! Flag-only, with the reason ([`FLAG_ONLY`]): `--config` (a config file does not name
//! another) and `--json` (how this invocation prints, not a setting of the export).

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use custos::export::{
    DEFAULT_RESTORE_DAYS, ExportConfig, JOB_DEADLINE, RestoreArchived, Retrieval, RetrievalMode,
    Selection, SourceKind,
};
use custos::http::Credentials;
use custos::region::Region;
use custos::state::{PgTarget, StateLocation};
use custos_store::target::LockMode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where a job's state is kept: the export's options, and `job status`'s.
#[derive(Args, Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct StateArgs {
    /// Keep the job state in this PostgreSQL database, postgres://USER@HOST:PORT/DATABASE
    /// (add ?sslmode=require off this machine), instead of the SQLite file in the export
    /// directory (docs/scale.md). The password never goes in the URL: PGPASSWORD or
    /// --state-password-file.
    #[arg(long, value_name = "URL")]
    pub state: Option<String>,
    /// The PostgreSQL password for --state, from a file only you can read (chmod 600).
    #[arg(long, value_name = "FILE")]
    pub state_password_file: Option<PathBuf>,
    /// The CA certificate (PEM) the --state server's TLS certificate is checked against, with
    /// ?sslmode=require [default: the system's roots].
    #[arg(long, value_name = "FILE")]
    pub state_ca: Option<PathBuf>,
}

impl StateArgs {
    /// The place these name: the SQLite file (no --state), or a PostgreSQL database with its
    /// password from `--state-password-file` (owner-only), else `PGPASSWORD`, and its TLS CA.
    pub fn location(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<StateLocation, OptionsError> {
        let Some(url) = &self.state else {
            if self.state_password_file.is_some() || self.state_ca.is_some() {
                return Err("--state-password-file and --state-ca go with --state".into());
            }
            return Ok(StateLocation::Local);
        };
        let password = match &self.state_password_file {
            Some(f) => Some(
                secret_file(f, "--state-password-file")?
                    .trim_end_matches(['\n', '\r'])
                    .to_owned(),
            ),
            None => env("PGPASSWORD"),
        };
        Ok(StateLocation::Postgres(
            PgTarget::new(url, password, self.state_ca.clone()).map_err(|e| e.to_string())?,
        ))
    }
}

/// Where the Genesys API and its login are: `export`'s options, and `release`'s and `worker`'s
/// (each resolved by [`api_location`], from the operator's own settings, never a package).
#[derive(Args, Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct ApiArgs {
    /// Genesys region: a domain (mypurecloud.ie) or SDK name (eu_west_1) [env: GENESYSCLOUD_REGION; default: mypurecloud.com].
    #[arg(long)]
    pub region: Option<String>,
    /// API base URL instead of a region (gateways, the simulator); http only on loopback.
    #[arg(long)]
    pub api_base: Option<String>,
    /// Login base URL instead of a region [default: the API base with api. → login.].
    #[arg(long)]
    pub login_base: Option<String>,
}

/// Where the organization's recording archive is and how it is read: the export's options,
/// and each worker's (a worker is given the archive by its operator, never by the job).
#[derive(Args, Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct ArchiveArgs {
    /// Read each recording from the organization's own archive, the bucket Genesys' "AWS S3
    /// recording bulk actions" integration writes into (s3://BUCKET[/PREFIX]), instead of the
    /// media API; the query and the listing use the API as always (docs/archive.md).
    #[arg(long, value_name = "URL")]
    pub archive: Option<String>,
    /// The archive's key layout, a template of {org}, {conversation}, {year}, {month}, {day},
    /// {hour} and two-digit {MM}, {DD}, {HH}, from the conversation's start in UTC
    /// [default: {org}/year={year}/month={MM}/day={DD}/hour={HH}/conversation_id={conversation}/].
    #[arg(long, value_name = "TEMPLATE")]
    pub archive_layout: Option<String>,
    /// A recording the archive lacks: `fail` (it ends Failed, naming the folder looked in) or
    /// `api` (fetched through the API as --retrieval says; its custody says so) [default: fail].
    #[arg(long, value_enum, value_name = "WHAT")]
    pub archive_missing: Option<custos::archive::Missing>,
    /// A recording the source listed as DELETED or ARCHIVED whose copy the archive still holds:
    /// `name` (its outcome is the listing's; the copy is named in the custody log, not read) or
    /// `read` (the copy is read and judged like any, its reason saying what the source listed)
    /// [default: name].
    #[arg(long, value_enum, value_name = "WHAT")]
    pub archive_settled: Option<SettledCopies>,
    /// The archive's S3 endpoint, for S3-compatible stores [default: AWS_ENDPOINT_URL, else AWS].
    #[arg(long, value_name = "URL")]
    pub archive_endpoint: Option<String>,
    /// The archive bucket's AWS region [default: the AWS default chain].
    #[arg(long, value_name = "REGION")]
    pub archive_region: Option<String>,
}

impl ArchiveArgs {
    /// Refuses archive settings without `--archive`, and a layout that is not one.
    pub fn check(&self) -> Result<(), OptionsError> {
        if self.archive.is_none()
            && (self.archive_layout.is_some()
                || self.archive_missing.is_some()
                || self.archive_settled.is_some()
                || self.archive_endpoint.is_some()
                || self.archive_region.is_some())
        {
            return Err(
                "--archive-layout, --archive-missing, --archive-settled, --archive-endpoint and --archive-region go with --archive s3://BUCKET[/PREFIX]".into(),
            );
        }
        if let Some(l) = &self.archive_layout {
            custos::archive::Layout::parse(l).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The archive these name (`None` without `--archive`), its store connected, with `bulk`
    /// (the export's `--bulk-export`).
    pub async fn source(
        &self,
        bulk: Option<custos::archive::BulkExport>,
    ) -> Result<Option<custos::archive::ArchiveSource>, String> {
        let Some(url) = &self.archive else {
            return Ok(None);
        };
        let layout = match &self.archive_layout {
            Some(l) => custos::archive::Layout::parse(l).map_err(|e| e.to_string())?,
            None => custos::archive::Layout::default(),
        };
        let opts = custos_store::store::StoreOptions {
            endpoint: self.archive_endpoint.clone(),
            region: self.archive_region.clone(),
            ..Default::default()
        };
        let store = custos_store::archive::S3Archive::connect(url, &opts)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Some(custos::archive::ArchiveSource {
            store: std::sync::Arc::new(store),
            layout,
            missing: self
                .archive_missing
                .unwrap_or(custos::archive::Missing::Fail),
            read_settled: self.archive_settled == Some(SettledCopies::Read),
            bulk,
        }))
    }
}

/// What `--archive-settled` does with the archive's copy of a recording the source settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SettledCopies {
    /// Named in the custody log, not read; the listing's outcome stands.
    Name,
    /// Read and judged like any recording of the archive.
    Read,
}

/// Options of `custos export` (each also a config-file key, except [`FLAG_ONLY`]).
#[derive(Args, Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct ExportOptions {
    /// The query, e.g. 'timestamp:[2023-10-01T00:00:00Z TO 2023-10-02T00:00:00Z} AND userId:"…"' (docs/query.md).
    #[arg(long)]
    pub query: Option<String>,
    /// Export these ids instead of a query: one per line, `conversationId` or
    /// `conversationId,recordingId` (genesys), `recordingId` (search); `#` comments.
    #[arg(long, value_name = "FILE", conflicts_with = "query")]
    pub ids: Option<PathBuf>,
    /// The export directory (a BagIt bag). Re-run the same command to resume.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Matter id, recorded as the bag's External-Identifier.
    #[arg(long)]
    pub matter: Option<String>,
    /// Source API [default: genesys].
    #[arg(long, value_enum)]
    pub source: Option<SourceKind>,
    /// Where the API is (--region, --api-base, --login-base).
    #[command(flatten)]
    #[serde(flatten)]
    pub api: ApiArgs,
    /// API requests per minute, shared by all work [default: 300 for genesys, 6000 for search].
    #[arg(long)]
    pub rate: Option<u32>,
    /// Parallel downloads (media files being written at once; API requests in flight are sized
    /// from --rate and the API's response time, not from this) [default: 32].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Genesys retrieval mode [default: batch].
    #[arg(long, value_enum)]
    pub retrieval: Option<RetrievalMode>,
    /// formatId for --retrieval transcode [default: WAV].
    #[arg(long)]
    pub format: Option<String>,
    /// Seconds a file's duration may differ from the API's before the recording is Corrupted
    /// [default: 1].
    #[arg(long, value_name = "SECONDS")]
    pub duration_tolerance: Option<f64>,
    /// The person running the export, e.g. "Jane Doe <jane@firm.example>".
    #[arg(long)]
    pub operator: Option<String>,
    /// Source-Organization for bag-info.txt.
    #[arg(long)]
    pub source_organization: Option<String>,
    /// Sign the bag with this minisign secret key (made by `custos keygen`).
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
    /// After sealing, have this RFC 3161 Time Stamping Authority timestamp the tag manifest (and
    /// the signature); repeat it for fallbacks, tried in order (config file: a list).
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tsa: Vec<String>,
    /// Before any download, put Genesys deletion protection (a legal hold at the source) on
    /// every conversation found; `custos release --protect DIR` removes it later.
    #[arg(long)]
    pub protect: bool,
    /// Also list the org's orphan recordings (Genesys knows no conversation for them) and
    /// report those made in the query's interval (data/completeness.json).
    #[arg(long)]
    pub orphans: bool,
    /// Collect the orphan recordings made in the query's interval too (implies --orphans):
    /// each is a manifest item with no conversation id, asked for in --format (WAV by
    /// default, whatever --retrieval) through GET /api/v2/orphanrecordings/{id}/media, kept
    /// in data/orphans/.
    #[arg(long)]
    pub collect_orphans: bool,
    /// A custodian, the person whose conversations to export: a Genesys user id, name, email
    /// or username (repeat it for several). Each is resolved to one user through the Users API
    /// before anything is written (one that matches nobody, or several people, is refused),
    /// and the query is narrowed to them (`AND userId:(…)`); the package records both.
    #[arg(long, value_name = "PERSON")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub custodian: Vec<String>,
    /// Custodians from a file, one per line (`#` starts a comment), as --custodian.
    #[arg(long, value_name = "FILE")]
    pub custodians: Option<PathBuf>,
    /// Also collect each voice recording's Speech & Text Analytics transcript, kept as
    /// received with a plain-text, speaker-labelled, time-stamped rendering (one API call per
    /// recording).
    #[arg(long)]
    pub transcripts: bool,
    /// The media types to export, a comma list of audio, screen, chat, email, messaging
    /// [default: every type the query's conversations have]. The others are listed in
    /// data/media_excluded.csv, not retrieved.
    #[arg(long, value_delimiter = ',', value_name = "TYPES")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<custos::model::Media>,
    /// Make this export the next bag of an ongoing hold's chain: same query and settings as
    /// the bag in DIR, holding only recordings no bag of the chain exported yet.
    #[arg(long, value_name = "DIR")]
    pub increment_of: Option<PathBuf>,
    /// The minisign public key the earlier bag (--increment-of) must be signed with: a chain
    /// continues only from a bag that proves who sealed it. `custos release` reads it too.
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
    /// Restore ARCHIVED recordings (a new archive date), wait for them, and export them too.
    #[arg(long)]
    pub restore_archived: bool,
    /// Days restored recordings stay restored before Genesys archives them again [default: 7].
    #[arg(long, value_name = "DAYS")]
    pub restore_days: Option<u32>,
    /// With --restore-archived: do not wait for restores; export the rest and stop with exit 3
    /// while restores are under way (re-run the same command later to continue).
    #[arg(long)]
    pub no_wait: bool,
    /// Where the job state is kept (--state, --state-password-file, --state-ca).
    #[command(flatten)]
    #[serde(flatten)]
    pub job_state: StateArgs,
    /// Leave the downloads to `custos worker` processes, each with its own OAuth client: this
    /// run lists, seals the manifest, opens the job to workers, waits for every item to end,
    /// and seals the bag (needs --state postgres://…; docs/scale.md).
    #[arg(long)]
    pub workers: bool,
    /// The organization's archive to read recordings from (--archive, --archive-layout,
    /// --archive-missing, --archive-endpoint, --archive-region).
    #[command(flatten)]
    #[serde(flatten)]
    pub from_archive: ArchiveArgs,
    /// Before reading the archive, have Genesys write the query's recordings into it: a
    /// recording bulk job (action EXPORT, which sets each recording's export date) through the
    /// org's "AWS S3 recording bulk actions" integration with this id; needs --archive.
    #[arg(long, value_name = "INTEGRATION_ID")]
    pub bulk_export: Option<String>,
    /// How long the bulk job is waited for before the archive is read as it is [default: 172800
    /// (48 h)].
    #[arg(long, value_name = "SECONDS")]
    pub bulk_export_wait: Option<u64>,
    /// How long a recording the bulk job should have written (and did not list as failed) is
    /// looked for again after the job ends [default: 600].
    #[arg(long, value_name = "SECONDS")]
    pub landing_grace: Option<u64>,
    /// TOML config file: every option of this command except --config and --json, by its
    /// long name (e.g. `rate = 300`, `api-base = "…"`, `lock-mode = "compliance"`).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// TOML file with client-id and client-secret; must be readable by its owner only (chmod 600).
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// Print the report as JSON on stdout (no progress bars).
    #[arg(long)]
    #[serde(skip)]
    pub json: bool,
    /// When the export is sealed, upload it here (s3://BUCKET/PREFIX or
    /// azure://ACCOUNT/CONTAINER/PREFIX), as `custos upload` does with the options below.
    #[arg(long, value_name = "URL")]
    pub upload: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub store: StoreArgs,
}

/// How to reach the store.
#[derive(Args, Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct ClientArgs {
    /// Store endpoint: an S3-compatible URL (addressed path-style) or an Azure Blob endpoint
    /// (e.g. Azurite's http://127.0.0.1:10000/devstoreaccount1) [env: AWS_ENDPOINT_URL for S3].
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// AWS region of the bucket [default: the AWS default chain: AWS_REGION, profile].
    #[arg(long, value_name = "REGION")]
    pub aws_region: Option<String>,
}

impl ClientArgs {
    /// Whether any option was given.
    pub fn is_set(&self) -> bool {
        self.endpoint.is_some() || self.aws_region.is_some()
    }

    /// The store client's settings.
    pub fn options(&self) -> custos_store::store::StoreOptions {
        custos_store::store::StoreOptions {
            endpoint: self.endpoint.clone(),
            region: self.aws_region.clone(),
            ..Default::default()
        }
    }
}

/// S3 server-side encryption (the flag's spelling of [`Encryption`](custos_store::target::Encryption), whose KMS key is a
/// setting of its own).
#[derive(Clone, Copy, Debug, ValueEnum, Deserialize, Serialize)]
pub enum SseArg {
    /// Send no encryption header: the bucket's default encryption applies.
    #[serde(rename = "bucket-default")]
    BucketDefault,
    /// SSE-S3.
    #[value(name = "AES256", alias = "aes256")]
    #[serde(rename = "AES256", alias = "aes256")]
    Aes256,
    /// SSE-KMS (with --kms-key-id, else the AWS-managed key).
    #[value(name = "aws:kms", alias = "kms")]
    #[serde(rename = "aws:kms", alias = "kms")]
    Kms,
}

/// How every object is written (shared by `upload` and `export --upload`).
#[derive(Args, Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct StoreArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub client: ClientArgs,
    /// S3 server-side encryption [default: bucket-default].
    #[arg(long, value_enum)]
    pub sse: Option<SseArg>,
    /// SSE-KMS key id, ARN or alias (implies --sse aws:kms).
    #[arg(long, value_name = "KEY")]
    pub kms_key_id: Option<String>,
    /// Azure encryption scope for every blob.
    #[arg(long, value_name = "SCOPE")]
    pub encryption_scope: Option<String>,
    /// Object Lock mode (S3) / immutability policy (Azure: governance = unlocked,
    /// compliance = locked); needs --retain-until or --retain-days.
    #[arg(long, value_enum)]
    pub lock_mode: Option<LockMode>,
    /// Retain until this UTC date or time (2033-12-31 or 2033-12-31T00:00:00Z).
    #[arg(long, value_name = "DATE", conflicts_with = "retain_days")]
    pub retain_until: Option<String>,
    /// Retain for this many days from now.
    #[arg(long, value_name = "DAYS")]
    pub retain_days: Option<u32>,
    /// Put every object under legal hold.
    #[arg(long)]
    pub legal_hold: bool,
    /// Refuse to upload unless the destination is write-once and encrypted (versioning and
    /// Object Lock / version-level immutability, default encryption); otherwise a warning.
    #[arg(long)]
    pub require_worm: bool,
    /// Objects uploaded at once [default: 4].
    #[arg(long, value_name = "N")]
    pub upload_concurrency: Option<usize>,
    /// Objects larger than this many bytes go up in parts [default: 5 GiB (S3), 5000 MiB (Azure)].
    #[arg(long, value_name = "BYTES", hide = true)]
    pub multipart_threshold: Option<u64>,
    /// Part / block size in bytes [default: grows with the object].
    #[arg(long, value_name = "BYTES", hide = true)]
    pub part_size: Option<u64>,
}

impl StoreArgs {
    /// Whether any option was given (they mean nothing without a destination).
    pub fn is_set(&self) -> bool {
        self.client.is_set()
            || self.sse.is_some()
            || self.kms_key_id.is_some()
            || self.encryption_scope.is_some()
            || self.lock_mode.is_some()
            || self.retain_until.is_some()
            || self.retain_days.is_some()
            || self.legal_hold
            || self.require_worm
            || self.upload_concurrency.is_some()
            || self.multipart_threshold.is_some()
            || self.part_size.is_some()
    }
}

/// Options that are flags only, never config-file keys (the module says why).
pub const FLAG_ONLY: &[&str] = &["config", "json"];

/// Where the API is: one setting spelled two ways. The layer that names either wins both
/// (so `GENESYSCLOUD_REGION` beats a config file's `api-base`, and `--api-base` beats the
/// environment's region).
const API_LOCATION: &[&str] = &["api-base", "region"];

/// Downloads at a time by default: each holds a 256 KiB write buffer, so 32 cost about 8 MB,
/// and enough API-hosted downloads (the search API's media, one API request each) are in
/// flight to fill a 100/s budget at 300 ms per call (docs/benchmarks.md).
pub const DEFAULT_CONCURRENCY: usize = 32;

/// An error in the settings, said in the user's terms.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OptionsError(pub String);

impl From<String> for OptionsError {
    fn from(s: String) -> Self {
        OptionsError(s)
    }
}

impl From<&str> for OptionsError {
    fn from(s: &str) -> Self {
        OptionsError(s.to_owned())
    }
}

/// The environment, blank values as unset.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The config file's keys: every option's long name but [`FLAG_ONLY`] (from the flags
/// themselves, so a new option is a new key without another list).
pub fn file_keys() -> Vec<String> {
    let cmd = ExportOptions::augment_args(clap::Command::new("export"));
    cmd.get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !FLAG_ONLY.contains(l))
        .map(str::to_owned)
        .collect()
}

/// Reads a config file: TOML whose keys are [`file_keys`]; an unknown key is refused, not ignored.
pub fn read_file(path: &Path) -> Result<ExportOptions, OptionsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    parse_file(&text).map_err(|e| OptionsError(format!("config file {}: {e}", path.display())))
}

fn parse_file(text: &str) -> Result<ExportOptions, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.message().to_owned())?;
    let keys = file_keys();
    if let Some(k) = table.keys().find(|k| !keys.contains(k)) {
        return Err(format!(
            "unknown field `{k}`; the keys are the options' long names: {}",
            keys.join(", ")
        ));
    }
    table
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_owned())
}

/// Every set value of `o` as a JSON object (unset options and `false` switches left out).
fn set_values(o: &ExportOptions) -> Map<String, Value> {
    match serde_json::to_value(o).expect("options serialize") {
        Value::Object(m) => m
            .into_iter()
            .filter(|(_, v)| !v.is_null() && *v != Value::Bool(false))
            .collect(),
        _ => unreachable!("a struct serializes as an object"),
    }
}

/// Layers, highest first, merged: each option from the first layer that sets it, with
/// [`API_LOCATION`] taken as one. The flag-only options come from the first layer.
pub fn merge(layers: &[&ExportOptions]) -> ExportOptions {
    let mut merged = Map::new();
    let mut location_taken = false;
    for layer in layers {
        let values = set_values(layer);
        let names_location = API_LOCATION.iter().any(|k| values.contains_key(*k));
        for (k, v) in values {
            if API_LOCATION.contains(&k.as_str()) && location_taken {
                continue;
            }
            merged.entry(k).or_insert(v);
        }
        location_taken |= names_location;
    }
    let mut out: ExportOptions =
        serde_json::from_value(Value::Object(merged)).expect("merged options deserialize");
    if let Some(first) = layers.first() {
        out.config = first.config.clone();
        out.json = first.json;
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CredentialsFile {
    client_id: String,
    client_secret: String,
}

pub fn read_credentials(path: &Path) -> Result<Credentials, OptionsError> {
    let text = secret_file(path, "credentials file")?;
    let c: CredentialsFile = toml::from_str(&text)
        .map_err(|e| format!("credentials file {}: {}", path.display(), e.message()))?;
    Ok(Credentials {
        client_id: c.client_id,
        client_secret: c.client_secret,
    })
}

/// `GENESYSCLOUD_OAUTHCLIENT_ID` and `_SECRET`, when both are set.
pub fn env_credentials(env: &dyn Fn(&str) -> Option<String>) -> Option<Credentials> {
    match (
        env("GENESYSCLOUD_OAUTHCLIENT_ID"),
        env("GENESYSCLOUD_OAUTHCLIENT_SECRET"),
    ) {
        (Some(id), Some(secret)) => Some(Credentials {
            client_id: id,
            client_secret: secret,
        }),
        _ => None,
    }
}

/// The flags, the environment (read through `env`; tests pass their own) and the config file
/// merged, and the settings the export needs resolved from them (or what is wrong).
pub fn resolve_with(
    flags: &ExportOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(ExportOptions, ExportConfig), OptionsError> {
    let file = match &flags.config {
        Some(p) => read_file(p)?,
        None => ExportOptions::default(),
    };
    let (o, credentials) = layered(flags, env, &file)?;
    let mut cfg = config(&o, credentials)?;
    cfg.state = o.job_state.location(env)?;
    Ok((o, cfg))
}

/// A file holding a secret: refused if others can read it; its text.
fn secret_file(path: &Path, what: &str) -> Result<String, OptionsError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta =
            std::fs::metadata(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{what} {}: not a regular file", path.display()).into());
        }
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(OptionsError(format!(
                "{what} {} is readable by others (mode {:o}); run: chmod 600 {}",
                path.display(),
                mode & 0o777,
                path.display()
            )));
        }
    }
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_string(&mut text))
        .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    Ok(text)
}

/// The flags over the environment over the config file `file`, and the OAuth client:
/// credentials never come from a flag, only a file's path does: --credentials FILE, then
/// GENESYSCLOUD_OAUTHCLIENT_*, then the config file's credentials.
pub fn layered(
    flags: &ExportOptions,
    env: &dyn Fn(&str) -> Option<String>,
    file: &ExportOptions,
) -> Result<(ExportOptions, Credentials), OptionsError> {
    let from_env = ExportOptions {
        api: ApiArgs {
            region: env("GENESYSCLOUD_REGION"),
            ..Default::default()
        },
        ..Default::default()
    };
    let o = merge(&[flags, &from_env, file]);
    let credentials = match (&flags.credentials, env_credentials(env), &file.credentials) {
        (Some(p), _, _) => read_credentials(p)?,
        (None, Some(c), _) => c,
        (None, None, Some(p)) => read_credentials(p)?,
        (None, None, None) => {
            return Err("no credentials: set GENESYSCLOUD_OAUTHCLIENT_ID and GENESYSCLOUD_OAUTHCLIENT_SECRET, or pass --credentials FILE (chmod 600)".into());
        }
    };
    Ok((o, credentials))
}

/// Where the API and the login are, from the operator's own settings (never from a package):
/// The largest custodians file read.
const CUSTODIANS_FILE_CAP: u64 = 1 << 20;

/// `--custodians FILE`: a regular file (a FIFO or device is refused, never read) of at most
/// 1 MiB of UTF-8, one person a line, `#` comments and blank lines skipped.
fn custodians_file(path: &Path) -> Result<Vec<String>, OptionsError> {
    use std::io::Read;
    let err = |why: String| OptionsError(format!("--custodians {}: {why}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(|e| err(e.to_string()))?
        .take(CUSTODIANS_FILE_CAP + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(e.to_string()))?;
    if bytes.len() as u64 > CUSTODIANS_FILE_CAP {
        return Err(err("larger than 1 MiB".into()));
    }
    let text = String::from_utf8(bytes).map_err(|_| err("not UTF-8 text".into()))?;
    let people: Vec<String> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if people.is_empty() {
        return Err(err("names nobody".into()));
    }
    Ok(people)
}

/// `--api-base` (and `--login-base`), or the region, by default mypurecloud.com.
pub fn api_location(o: &ExportOptions) -> Result<(String, String), OptionsError> {
    let o = &o.api;
    Ok(match &o.api_base {
        Some(api) => {
            let login =
                (o.login_base.clone()).unwrap_or_else(|| api.replacen("//api.", "//login.", 1));
            (api.clone(), login)
        }
        None => {
            let r = Region::parse(o.region.as_deref().unwrap_or("mypurecloud.com"))
                .map_err(|e| e.to_string())?;
            (r.api_base(), o.login_base.clone().unwrap_or(r.login_base()))
        }
    })
}

/// The library's config from merged options: the defaults live here.
pub fn config(o: &ExportOptions, credentials: Credentials) -> Result<ExportConfig, OptionsError> {
    let selection = match (&o.ids, &o.query) {
        (Some(ids), _) => Selection::Ids(ids.clone()),
        (None, Some(q)) => Selection::Query(q.clone()),
        (None, None) => return Err("--query (docs/query.md) or --ids FILE is required".into()),
    };
    let out = o
        .out
        .clone()
        .ok_or("--out is required: the directory the evidence package is written to")?;
    let source = o.source.unwrap_or(SourceKind::Genesys);
    let (api_base, login_base) = api_location(o)?;
    let retrieval = match o.retrieval.unwrap_or(RetrievalMode::Batch) {
        RetrievalMode::Batch => Retrieval::Batch,
        RetrievalMode::Transcode => {
            Retrieval::Transcode(o.format.clone().unwrap_or_else(|| "WAV".into()))
        }
    };
    let tolerance = o.duration_tolerance.unwrap_or(1.0);
    if !(tolerance.is_finite() && (0.0..=3600.0).contains(&tolerance)) {
        return Err("--duration-tolerance must be between 0 and 3600 seconds".into());
    }
    if !o.restore_archived && (o.restore_days.is_some() || o.no_wait) {
        return Err("--restore-days and --no-wait go with --restore-archived".into());
    }
    o.from_archive.check()?;
    if o.from_archive.archive.is_none() && o.bulk_export.is_some() {
        return Err("--bulk-export goes with --archive s3://BUCKET[/PREFIX]".into());
    }
    if o.bulk_export.is_none() && (o.bulk_export_wait.is_some() || o.landing_grace.is_some()) {
        return Err("--bulk-export-wait and --landing-grace go with --bulk-export".into());
    }
    if let Some(id) = &o.bulk_export
        && !custos::model::safe_id(id)
    {
        return Err("--bulk-export: not an integration id".into());
    }
    let search = source == SourceKind::Search;
    let mut custodians = o.custodian.clone();
    if let Some(f) = &o.custodians {
        custodians.extend(custodians_file(f)?);
    }
    Ok(ExportConfig {
        custodians,
        selection,
        out,
        matter: o.matter.clone(),
        source_organization: o.source_organization.clone(),
        source,
        api_base,
        login_base,
        credentials,
        rate_per_minute: o.rate.unwrap_or(if search { 6000 } else { 300 }),
        concurrency: o.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
        retrieval,
        operator: o.operator.clone(),
        sign_key: o.sign_key.clone(),
        // The guide's search API pages up to 1000; analytics details pages stay at 100.
        page_size: if search { 1000 } else { 100 },
        now: None,
        duration_tolerance: std::time::Duration::from_secs_f64(tolerance),
        tsa: o.tsa.clone(),
        job_deadline: JOB_DEADLINE,
        state: StateLocation::Local,
        protect: o.protect,
        increment_of: o.increment_of.clone(),
        pubkey: o.pubkey.clone(),
        orphans: o.orphans || o.collect_orphans,
        collect_orphans: o.collect_orphans,
        transcripts: o.transcripts,
        media: o.media.clone(),
        workers: o.workers,
        // Connected by the command (`ArchiveArgs::source`): the store is reached over the
        // network.
        archive: None,
        restore: o.restore_archived.then(|| RestoreArchived {
            days: o.restore_days.unwrap_or(DEFAULT_RESTORE_DAYS),
            wait: !o.no_wait,
            poll_max: std::time::Duration::from_secs(60),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("custos-options-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn credentials_file(dir: &Path) -> PathBuf {
        let creds = dir.join("creds.toml");
        std::fs::write(
            &creds,
            "client-id = \"file-id\"\nclient-secret = \"file-secret\"\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        creds
    }

    #[test]
    fn a_fifo_given_as_a_credentials_file_is_refused_never_opened() {
        let dir = scratch("creds-fifo");
        let fifo = dir.join("creds.toml");
        let _ = std::fs::remove_file(&fifo);
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let e = read_credentials(&fifo).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_job_state_comes_from_the_config_file_with_its_password_from_the_environment() {
        let dir = scratch("state-key");
        let creds = credentials_file(&dir);
        let config = dir.join("custos.toml");
        std::fs::write(
            &config,
            format!(
                "state = \"postgres://custos@127.0.0.1:5432/custos\"\ncredentials = {creds:?}\n"
            ),
        )
        .unwrap();
        let args = ExportOptions {
            query: Some("timestamp:[2024-01-01T00:00:00Z TO 2024-01-02T00:00:00Z}".into()),
            out: Some(dir.join("out")),
            config: Some(config),
            ..Default::default()
        };
        let env = |k: &str| (k == "PGPASSWORD").then(|| "from-env".to_owned());
        let (_, cfg) = resolve_with(&args, &env).unwrap();
        let expected = custos::state::PgTarget::new(
            "postgres://custos@127.0.0.1:5432/custos",
            Some("from-env".into()),
            None,
        )
        .unwrap();
        assert_eq!(cfg.state, StateLocation::Postgres(expected));
        assert!(!format!("{cfg:?}").contains("from-env"), "never shown");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn flags_beat_the_environment_which_beats_the_config_file_which_beats_defaults() {
        let dir = scratch("precedence");
        let creds = credentials_file(&dir);
        let config = dir.join("custos.toml");
        std::fs::write(
            &config,
            format!("rate = 100\nconcurrency = 7\nmatter = \"FROM-FILE\"\nregion = \"mypurecloud.ie\"\nretrieval = \"transcode\"\ncredentials = {creds:?}\n"),
        )
        .unwrap();
        let args = ExportOptions {
            query: Some("timestamp:[2024-01-01T00:00:00Z TO 2024-01-02T00:00:00Z}".into()),
            out: Some(dir.join("out")),
            rate: Some(200),
            config: Some(config.clone()),
            ..Default::default()
        };
        let no_env = |_: &str| None;
        let (_, cfg) = resolve_with(&args, &no_env).unwrap();
        assert_eq!(cfg.rate_per_minute, 200, "flag beats file");
        assert_eq!(cfg.concurrency, 7, "file beats default");
        assert_eq!(cfg.matter.as_deref(), Some("FROM-FILE"));
        assert_eq!(
            cfg.retrieval,
            Retrieval::Transcode("WAV".into()),
            "default format"
        );
        assert_eq!(cfg.api_base, "https://api.mypurecloud.ie");
        assert_eq!(cfg.login_base, "https://login.mypurecloud.ie");
        assert_eq!(cfg.credentials.client_id, "file-id");
        // The documented precedence holds against the environment too: an explicit
        // --credentials FILE beats GENESYSCLOUD_OAUTHCLIENT_*, and GENESYSCLOUD_REGION beats a
        // config file's api-base (both were the other way round once).
        let fake_env = |k: &str| match k {
            "GENESYSCLOUD_OAUTHCLIENT_ID" => Some("env-id".to_owned()),
            "GENESYSCLOUD_OAUTHCLIENT_SECRET" => Some("env-secret".to_owned()),
            "GENESYSCLOUD_REGION" => Some("mypurecloud.jp".to_owned()),
            _ => None,
        };
        std::fs::write(&config, "api-base = \"https://api.gateway.example\"\n").unwrap();
        let mut flagged = ExportOptions {
            query: args.query.clone(),
            out: args.out.clone(),
            config: Some(config.clone()),
            credentials: Some(creds.clone()),
            ..Default::default()
        };
        let (_, cfg) = resolve_with(&flagged, &fake_env).unwrap();
        assert_eq!(
            cfg.credentials.client_id, "file-id",
            "the flag beats the env"
        );
        assert_eq!(
            cfg.api_base, "https://api.mypurecloud.jp",
            "the env beats the file"
        );
        flagged.api.api_base = Some("https://api.flag.example".into());
        let (_, cfg) = resolve_with(&flagged, &fake_env).unwrap();
        assert_eq!(
            cfg.api_base, "https://api.flag.example",
            "the flag beats the env"
        );
        assert_eq!(cfg.login_base, "https://login.flag.example");
        flagged.api.api_base = None;
        flagged.credentials = None;
        let (_, cfg) = resolve_with(&flagged, &fake_env).unwrap();
        assert_eq!(
            cfg.credentials.client_id, "env-id",
            "the env beats the file"
        );
        let e = resolve_with(&flagged, &no_env).unwrap_err().to_string();
        assert!(e.contains("no credentials"), "{e}");
        std::fs::write(
            &config,
            format!("api-base = \"https://api.gateway.example\"\ncredentials = {creds:?}\n"),
        )
        .unwrap();
        let (_, cfg) = resolve_with(&flagged, &no_env).unwrap();
        assert_eq!(
            cfg.api_base, "https://api.gateway.example",
            "the file beats the default"
        );
        assert_eq!(cfg.login_base, "https://login.gateway.example");
        assert_eq!(cfg.credentials.client_id, "file-id");
        // Unknown keys in the config file are refused, not ignored; so are flag-only ones.
        for bad in ["rat = 100\n", "json = true\n", "config = \"x.toml\"\n"] {
            std::fs::write(&config, bad).unwrap();
            let e = resolve_with(&args, &no_env).unwrap_err().to_string();
            assert!(e.contains("unknown field"), "{bad}: {e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Every option of `custos export` (read from clap, so a new one is covered the day it is
    /// added) can be set in the config file under its long name, or is in FLAG_ONLY.
    #[test]
    fn every_export_option_can_be_set_from_the_config_file() {
        let cmd = ExportOptions::augment_args(clap::Command::new("export"));
        let mut checked = 0;
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if FLAG_ONLY.contains(&long) {
                continue;
            }
            // A value of the option's own kind: its first possible value, a switch, a number,
            // a date, or text.
            let possible = arg.get_possible_values();
            let candidates: Vec<String> = if let Some(p) = possible.first() {
                vec![
                    p.get_name().to_owned(),
                    format!("{:?}", p.get_name()),
                    format!("[{:?}]", p.get_name()),
                ]
            } else {
                ["true", "7", "\"2099-01-31\"", "\"text\"", "[\"text\"]"]
                    .map(String::from)
                    .to_vec()
            };
            let parsed = candidates
                .iter()
                .find_map(|v| parse_file(&format!("{long} = {v}\n")).ok())
                .unwrap_or_else(|| panic!("--{long} cannot be set from the config file"));
            let set = set_values(&parsed);
            assert!(
                set.contains_key(long),
                "--{long} parsed from the config file but did not set the option: {set:?}"
            );
            assert_eq!(set.len(), 1, "--{long} set more than itself: {set:?}");
            // And it survives the merge under the flags (which set nothing).
            let merged = merge(&[&ExportOptions::default(), &parsed]);
            assert!(
                set_values(&merged).contains_key(long),
                "--{long} lost in the merge"
            );
            checked += 1;
        }
        assert!(checked >= 30, "only {checked} options found");
    }
}
