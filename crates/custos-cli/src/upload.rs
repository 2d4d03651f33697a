//! `custos upload`, `custos export --upload` and `custos verify --remote`: argv → custos-store.

use std::path::PathBuf;

use clap::Args;
use custos::shown::Shown;
use custos_store::target::{Encryption, Protection, Target};
use custos_store::upload::{UploadError, UploadOptions, UploadReport};

use crate::options::{ClientArgs, SseArg, StoreArgs};

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
    /// The export must be signed by this minisign public key before anything is sent.
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
    /// Have this RFC 3161 Time Stamping Authority timestamp the completed receipt (and its
    /// signature); repeat it for fallbacks, tried in order.
    #[arg(long, value_name = "URL")]
    pub tsa: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The TOML config file of `custos export --config`: its storage keys (and `sign-key`,
    /// `operator`, `tsa`) apply here too, flags winning; its other keys are ignored.
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

/// Who receipts the upload, and how: what `custos upload` shares with `custos export`.
#[derive(Clone, Debug, Default)]
pub struct Receipting {
    /// Sign the receipt with this key.
    pub sign_key: Option<PathBuf>,
    /// Who is uploading.
    pub operator: Option<String>,
    /// Timestamp the completed receipt with these TSAs.
    pub tsa: Vec<String>,
}

/// The upload settings, checked against the target.
pub fn options(target: &Target, a: &StoreArgs, r: Receipting) -> Result<UploadOptions, String> {
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
        sign_key: r.sign_key,
        operator: r.operator,
        tsa: r.tsa,
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
        out!(
            "  pre-flight {:<20} {:<8} {}",
            c.name,
            mark,
            Shown(&c.detail)
        );
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
        out!("  FAILED {}: {}", Shown(path), Shown(why));
    }
    out!("  receipt                {}", r.receipt.display());
    if let Some(s) = &r.signature {
        out!("  receipt signature      {}", s.display());
    }
    crate::timestamp::print(&r.timestamps);
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

/// What is known of the package before it is sent.
pub enum Opened<'a> {
    /// Sealed by this very run (`export --upload`): custos wrote it a moment ago.
    JustSealed,
    /// Handed to `custos upload`: verified first (signed by the key, when one is given).
    Verify(Option<&'a std::path::Path>),
}

/// Uploads `dir` to `url`; the exit code (0 complete, 1 objects not stored or the package does
/// not verify, 2 settings or not write-once, 3 stopped). The settings are checked first, then
/// the package is opened as `opened` says, then objects are sent.
pub async fn upload(
    dir: &std::path::Path,
    url: &str,
    a: &StoreArgs,
    r: Receipting,
    json: bool,
    opened: Opened<'_>,
) -> i32 {
    let target = match Target::parse(url) {
        Ok(t) => t,
        Err(e) => {
            crate::error(&e);
            return 2;
        }
    };
    let opts = match options(&target, a, r) {
        Ok(o) => o,
        Err(e) => {
            crate::error(&e);
            return 2;
        }
    };
    if let Opened::Verify(pubkey) = opened
        && let Err(code) = crate::verify::open_package(dir, pubkey)
    {
        eprintln!("custos: nothing was uploaded");
        return code;
    }
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
            crate::error(&e);
            eprintln!("custos: nothing was uploaded");
            2
        }
        Err(e @ UploadError::Stopped(_)) => {
            crate::error(&e);
            eprintln!("custos: the upload stopped; re-run the same command to resume it");
            3
        }
    }
}

/// Runs `custos upload`: the package is opened verified first (and signed by `pubkey`, when
/// given); one that does not verify is not sent (exit 1).
pub async fn run_upload(a: UploadArgs) -> i32 {
    // The same merge as `custos export`: these flags over the config file's same keys.
    let flags = crate::options::ExportOptions {
        store: a.store,
        sign_key: a.sign_key,
        operator: a.operator,
        tsa: a.tsa,
        pubkey: a.pubkey,
        ..Default::default()
    };
    let file = match &a.config {
        Some(p) => match crate::options::read_file(p) {
            Ok(f) => f,
            Err(e) => {
                crate::error(&e);
                return 2;
            }
        },
        None => Default::default(),
    };
    let o = crate::options::merge(&[&flags, &file]);
    let r = Receipting {
        sign_key: o.sign_key,
        operator: o.operator,
        tsa: o.tsa,
    };
    let opened = Opened::Verify(o.pubkey.as_deref());
    upload(&a.dir, &a.url, &o.store, r, a.json, opened).await
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
    use custos_store::target::LockMode;

    #[test]
    fn store_settings_are_checked_against_the_target() {
        let s3 = Target::parse("s3://bucket-1/m").unwrap();
        let az = Target::parse("azure://acct/evidence/m").unwrap();
        let mut a = StoreArgs {
            kms_key_id: Some("k-1".into()),
            ..Default::default()
        };
        let o = options(&s3, &a, Receipting::default()).unwrap();
        assert_eq!(o.protection.encryption, Encryption::Kms(Some("k-1".into())));
        assert!(options(&az, &a, Receipting::default()).is_err());
        a.sse = Some(SseArg::Aes256);
        assert!(
            options(&s3, &a, Receipting::default()).is_err(),
            "AES256 with a KMS key"
        );
        a = StoreArgs {
            encryption_scope: Some("matter-42".into()),
            lock_mode: Some(LockMode::Compliance),
            retain_until: Some("2099-01-31".into()),
            ..Default::default()
        };
        assert!(options(&s3, &a, Receipting::default()).is_err());
        let o = options(&az, &a, Receipting::default()).unwrap();
        assert_eq!(
            o.protection
                .retain_until
                .map(custos_store::rfc3339)
                .as_deref(),
            Some("2099-01-31T00:00:00Z")
        );
        a.retain_until = Some("31/01/2099".into());
        assert!(options(&az, &a, Receipting::default()).is_err());
    }
}
