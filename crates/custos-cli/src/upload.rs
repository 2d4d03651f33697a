//! `custos upload`, `custos export --upload` and `custos verify --remote`: argv → custos-store.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use custos_store::store::StoreOptions;
use custos_store::target::{Encryption, LockMode, Protection, Target};
use custos_store::upload::{UploadError, UploadOptions, UploadReport};
use serde::{Deserialize, Serialize};

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

    fn options(&self) -> StoreOptions {
        StoreOptions {
            endpoint: self.endpoint.clone(),
            region: self.aws_region.clone(),
            ..Default::default()
        }
    }
}

/// S3 server-side encryption (the flag's spelling of [`Encryption`], whose KMS key is a
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

/// Options of `custos upload`.
#[derive(Args, Debug)]
pub struct UploadArgs {
    /// The export directory (a sealed bag made by `custos export`).
    pub dir: PathBuf,
    /// s3://BUCKET/PREFIX or azure://ACCOUNT/CONTAINER/PREFIX.
    pub url: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Sign the receipt with this minisign secret key.
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
    /// The person uploading, recorded in the receipt.
    #[arg(long)]
    pub operator: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The TOML config file of `custos export --config`: its storage keys (and `sign-key`,
    /// `operator`) apply here too, flags winning; its other keys are ignored.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

fn parse_until(s: &str) -> Result<time::OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| format!("--retain-until '{s}': expected 2033-12-31 or 2033-12-31T00:00:00Z"))
}

/// The upload settings, checked against the target.
pub fn options(
    target: &Target,
    a: &StoreArgs,
    sign_key: Option<PathBuf>,
    operator: Option<String>,
) -> Result<UploadOptions, String> {
    let is_s3 = matches!(target, Target::S3 { .. });
    if !is_s3 && (a.sse.is_some() || a.kms_key_id.is_some()) {
        return Err("--sse and --kms-key-id are for S3; Azure encrypts every blob (use --encryption-scope for a customer-managed key)".into());
    }
    if is_s3 && a.encryption_scope.is_some() {
        return Err("--encryption-scope is for Azure; use --sse/--kms-key-id for S3".into());
    }
    let encryption = match (a.sse, &a.kms_key_id) {
        (Some(SseArg::Aes256 | SseArg::BucketDefault), Some(_)) => {
            return Err("--kms-key-id needs --sse aws:kms".into());
        }
        (Some(SseArg::Kms), k) | (None, k @ Some(_)) => Encryption::Kms(k.clone()),
        (Some(SseArg::Aes256), None) => Encryption::Aes256,
        (Some(SseArg::BucketDefault) | None, None) => Encryption::BucketDefault,
    };
    let now = time::OffsetDateTime::now_utc();
    let retain_until = match (&a.retain_until, a.retain_days) {
        (Some(s), _) => Some(parse_until(s)?),
        (None, Some(d)) => Some(now + time::Duration::days(d.into())),
        (None, None) => None,
    };
    let concurrency = a.upload_concurrency.unwrap_or(4);
    if concurrency == 0 {
        return Err("--upload-concurrency must be at least 1".into());
    }
    if a.part_size.is_some_and(|n| n < 5 * 1024 * 1024) && is_s3 {
        return Err("--part-size must be at least 5 MiB for S3".into());
    }
    let mut store = a.client.options();
    store.multipart_threshold = a.multipart_threshold;
    store.part_size = a.part_size;
    let protection = Protection {
        lock_mode: a.lock_mode,
        retain_until,
        legal_hold: a.legal_hold,
        encryption,
        encryption_scope: a.encryption_scope.clone(),
        require_worm: a.require_worm,
    };
    protection.validate(now).map_err(|e| e.to_string())?;
    Ok(UploadOptions {
        protection,
        store,
        concurrency,
        sign_key,
        operator,
    })
}

fn print(r: &UploadReport, json: bool) {
    if json {
        out!("{}", serde_json::to_string_pretty(r).expect("json"));
        return;
    }
    for c in &r.preflight {
        let mark = match c.ok {
            Some(true) => "ok",
            Some(false) if c.required => "WARNING",
            Some(false) => "note",
            None => "unknown",
        };
        out!("  pre-flight {:<20} {:<8} {}", c.name, mark, c.detail);
    }
    out!("Upload: {}", r.target);
    out!(
        "  objects {}  |  stored {}  already there {}  from earlier runs {}  failed {}",
        r.objects,
        r.stored,
        r.already_present,
        r.skipped,
        r.failed.len()
    );
    for (path, why) in &r.failed {
        out!("  FAILED {path}: {why}");
    }
    out!("  receipt                {}", r.receipt.display());
    if let Some(s) = &r.signature {
        out!("  receipt signature      {}", s.display());
    }
    for k in &r.receipt_copies {
        out!("  stored beside it as    {k}");
    }
    out!(
        "  {}",
        if r.complete {
            "every object is stored, read back and verified"
        } else {
            "INCOMPLETE: fix the cause above and re-run; stored objects are not sent again"
        }
    );
}

/// Uploads `dir` to `url`; the exit code (0 complete, 1 objects not stored, 2 settings or not
/// write-once, 3 stopped).
pub async fn upload(
    dir: &std::path::Path,
    url: &str,
    a: &StoreArgs,
    sign_key: Option<PathBuf>,
    operator: Option<String>,
    json: bool,
) -> i32 {
    let target = match Target::parse(url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("custos: error: {e}");
            return 2;
        }
    };
    let opts = match options(&target, a, sign_key, operator) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("custos: error: {e}");
            return 2;
        }
    };
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    if json || crate::progress::is_quiet() || !std::io::IsTerminal::is_terminal(&std::io::stderr())
    {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "uploading {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("template"),
    );
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let result = custos_store::upload::upload(dir, &target, &opts, &progress).await;
    bar.finish_and_clear();
    match result {
        Ok(r) => {
            print(&r, json);
            if r.complete && r.failed.is_empty() {
                0
            } else {
                1
            }
        }
        Err(e @ (UploadError::Config(_) | UploadError::NotWorm(_))) => {
            eprintln!("custos: error: {e}");
            eprintln!("custos: nothing was uploaded");
            2
        }
        Err(e @ UploadError::Stopped(_)) => {
            eprintln!("custos: error: {e}");
            eprintln!("custos: the upload stopped; re-run the same command to resume it");
            3
        }
    }
}

/// Runs `custos upload`.
pub async fn run_upload(a: UploadArgs) -> i32 {
    // The same merge as `custos export`: these flags over the config file's same keys.
    let flags = crate::options::ExportOptions {
        store: a.store,
        sign_key: a.sign_key,
        operator: a.operator,
        ..Default::default()
    };
    let file = match &a.config {
        Some(p) => match crate::options::read_file(p) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("custos: error: {e}");
                return 2;
            }
        },
        None => Default::default(),
    };
    let o = crate::options::merge(&[&flags, &file]);
    upload(&a.dir, &a.url, &o.store, o.sign_key, o.operator, a.json).await
}

/// `custos verify --remote`: the remote comparison's findings (or why it could not run).
pub async fn verify_remote(
    dir: &std::path::Path,
    url: &str,
    client: &ClientArgs,
    download: bool,
) -> Result<custos_store::remote::RemoteReport, custos_store::StoreError> {
    let target = Target::parse(url)?;
    custos_store::remote::verify_remote(dir, &target, &client.options(), download).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_settings_are_checked_against_the_target() {
        let s3 = Target::parse("s3://bucket-1/m").unwrap();
        let az = Target::parse("azure://acct/evidence/m").unwrap();
        let mut a = StoreArgs {
            kms_key_id: Some("k-1".into()),
            ..Default::default()
        };
        let o = options(&s3, &a, None, None).unwrap();
        assert_eq!(o.protection.encryption, Encryption::Kms(Some("k-1".into())));
        assert!(options(&az, &a, None, None).is_err());
        a.sse = Some(SseArg::Aes256);
        assert!(
            options(&s3, &a, None, None).is_err(),
            "AES256 with a KMS key"
        );
        a = StoreArgs {
            encryption_scope: Some("matter-42".into()),
            lock_mode: Some(LockMode::Compliance),
            retain_until: Some("2099-01-31".into()),
            ..Default::default()
        };
        assert!(options(&s3, &a, None, None).is_err());
        let o = options(&az, &a, None, None).unwrap();
        assert_eq!(
            o.protection
                .retain_until
                .map(custos_store::rfc3339)
                .as_deref(),
            Some("2099-01-31T00:00:00Z")
        );
        a.retain_until = Some("31/01/2099".into());
        assert!(options(&az, &a, None, None).is_err());
    }
}
