//! What both stores (S3, Azure Blob) offer an upload: a pre-flight look at the destination, a
//! write-once put, and a read-back of what is stored.

use serde::Serialize;

pub use crate::error::StoreError;
use crate::plan::Item;
use crate::target::Protection;

/// What a store says it holds for one object (all as the store reported it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    /// The object key / blob name.
    pub key: String,
    /// The version the write created (S3 VersionId, Azure x-ms-version-id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// The request id of the write (x-amz-request-id, x-ms-request-id), to find it in
    /// CloudTrail / Azure Monitor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The store's own full-object SHA-256 (hex), which it checked on receipt (S3
    /// `x-amz-checksum-sha256`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The SHA-256 we put in the object's metadata (hex; not checked by the store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256_metadata: Option<String>,
    /// The store's full-object CRC-64/NVME (base64), for S3 multipart objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crc64nvme: Option<String>,
    /// The store's Content-MD5 (base64), which Azure checked on receipt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// `FULL_OBJECT` or `COMPOSITE` (S3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<String>,
    /// Object Lock mode / immutability policy mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_mode: Option<String>,
    /// Retain-until (RFC 3339, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retain_until: Option<String>,
    /// Legal hold on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legal_hold: Option<bool>,
    /// `AES256`, `aws:kms` (S3) or `true` (Azure x-ms-server-encrypted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// The KMS key (S3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// The encryption scope (Azure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_scope: Option<String>,
    /// The ETag (never evidence: not an MD5 for KMS or multipart objects).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Written as one multipart upload / block list.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub multipart: bool,
}

/// The `code` of a [`PutError::Refused`] raised by custos itself: the file's SHA-256, computed
/// while preparing its upload, is not the one the bag sealed, so it is not sent.
pub const LOCAL_DIGEST_MISMATCH: &str = "LocalDigestMismatch";

/// Why a put did not store the object.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// An object already has this key (the conditional create was refused); nothing was written.
    #[error("an object already exists at this key")]
    Exists,
    /// The store refused this object (e.g. `BadDigest`: the bytes did not match our SHA-256).
    #[error("{status} {code}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The store's error code.
        code: String,
        /// The store's message.
        message: String,
    },
    /// The upload cannot go on (network, credentials, no such bucket): stop; a re-run resumes.
    #[error("{0}")]
    Fatal(String),
}

/// One pre-flight check of the destination.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What was checked (`versioning`, `object-lock`, `default-encryption`, …).
    pub name: &'static str,
    /// `Some(true)` holds, `Some(false)` does not, `None` could not be read (e.g. no permission).
    pub ok: Option<bool>,
    /// Needed for write-once storage (`--require-worm` refuses when it does not hold).
    pub required: bool,
    /// What was found.
    pub detail: String,
}

/// A future a backend returns (boxed, so backends can sit behind `dyn Backend`).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A write-once destination: S3 (`crate::s3`) or Azure Blob (`crate::azure`). Upload and
/// remote verification work through this alone; [`crate::connect`] picks the backend.
/// Every backend passes the same conformance suite (custos-cli's storage tests).
pub trait Backend: Send + Sync {
    /// Looks at the destination: write-once, encrypted, logged? `Err` when it cannot be reached
    /// at all (credentials refused, no such bucket or container, network).
    fn preflight(&self) -> BoxFuture<'_, Result<Vec<Check>, StoreError>>;
    /// Writes `item` at `key`, never over an existing object, with the bag's SHA-256 for the
    /// store to check.
    fn put<'a>(
        &'a self,
        item: &'a Item,
        key: &'a str,
        p: &'a Protection,
    ) -> BoxFuture<'a, Result<Stored, PutError>>;
    /// Reads back what is stored at `key` (`None`: nothing there).
    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Stored>, PutError>>;
    /// Downloads the object at `key` and returns the SHA-256 (hex) and length of its bytes,
    /// hashed as they arrive (nothing kept).
    fn download_sha256<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(String, u64), PutError>>;
    /// Every key under `prefix`.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, PutError>>;
}

/// `impl Backend for $t` by its inherent methods of the same names (each backend writes its
/// own; this only boxes their futures).
macro_rules! backend_by_inherent_methods {
    ($t:ty) => {
        impl $crate::store::Backend for $t {
            fn preflight(
                &self,
            ) -> $crate::store::BoxFuture<'_, Result<Vec<$crate::store::Check>, $crate::store::StoreError>>
            {
                Box::pin(<$t>::preflight(self))
            }
            fn put<'a>(
                &'a self,
                item: &'a $crate::plan::Item,
                key: &'a str,
                p: &'a $crate::target::Protection,
            ) -> $crate::store::BoxFuture<'a, Result<$crate::store::Stored, $crate::store::PutError>> {
                Box::pin(<$t>::put(self, item, key, p))
            }
            fn head<'a>(
                &'a self,
                key: &'a str,
            ) -> $crate::store::BoxFuture<'a, Result<Option<$crate::store::Stored>, $crate::store::PutError>>
            {
                Box::pin(<$t>::head(self, key))
            }
            fn download_sha256<'a>(
                &'a self,
                key: &'a str,
            ) -> $crate::store::BoxFuture<'a, Result<(String, u64), $crate::store::PutError>> {
                Box::pin(<$t>::download_sha256(self, key))
            }
            fn list<'a>(
                &'a self,
                prefix: &'a str,
            ) -> $crate::store::BoxFuture<'a, Result<Vec<String>, $crate::store::PutError>> {
                Box::pin(<$t>::list(self, prefix))
            }
        }
    };
}
pub(crate) use backend_by_inherent_methods;

/// Settings of the client side.
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {
    /// Endpoint URL (S3-compatible stores, Azurite); else the standard one.
    pub endpoint: Option<String>,
    /// AWS region (else the AWS default chain; `us-east-1` with a custom endpoint).
    pub region: Option<String>,
    /// Objects larger than this go up in parts (S3 multipart with a full-object CRC-64/NVME,
    /// Azure block lists). Default: 5 GiB (S3's single-PUT limit).
    pub multipart_threshold: Option<u64>,
    /// Part size; default grows with the object so it fits 10,000 parts.
    pub part_size: Option<u64>,
}

/// S3's single-PUT limit.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 5 * 1024 * 1024 * 1024;

/// The part size for an object of `size` bytes: at least `min`, and few enough parts (≤ 10,000).
pub fn part_size(size: u64, min: u64) -> u64 {
    const MAX_PARTS: u64 = 10_000;
    min.max(size.div_ceil(MAX_PARTS))
}

/// Compares what the store holds with what was sent and asked for. Returns the problems.
/// `earlier_write`: the object was written by an earlier run (whose retain-until date was its
/// own): its retention must be in force, not as long as this run's.
pub fn check_stored(
    item: &Item,
    p: &Protection,
    s: &Stored,
    now: time::OffsetDateTime,
    earlier_write: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    if s.size != Some(item.size) {
        problems.push(format!(
            "size is {:?}, the file has {} bytes",
            s.size, item.size
        ));
    }
    // The hash the store itself checked: S3's SHA-256; for S3 multipart its CRC-64 (compared by
    // the caller, which knows it), with our SHA-256 in metadata; Azure's MD5 (compared by the
    // caller) with our SHA-256 in metadata.
    match (&s.sha256, &s.sha256_metadata) {
        (Some(h), _) if h != &item.sha256 => problems.push(format!(
            "the store's SHA-256 is {h}, the bag sealed {}",
            item.sha256
        )),
        (Some(_), _) => {}
        (None, Some(h)) if h != &item.sha256 => problems.push(format!(
            "the SHA-256 in the object's metadata is {h}, the bag sealed {}",
            item.sha256
        )),
        (None, Some(_)) => {}
        (None, None) => problems.push("the store reports no SHA-256 for the object".into()),
    }
    if let Some(mode) = p.lock_mode {
        let held = s.lock_mode.as_deref().is_some_and(|m| {
            m.eq_ignore_ascii_case(mode.as_s3()) || m.eq_ignore_ascii_case(mode.as_azure())
        });
        if !held {
            problems.push(format!(
                "lock mode is {:?}, asked for {}",
                s.lock_mode,
                mode.as_s3()
            ));
        }
    }
    if let Some(until) = p.retain_until.filter(|_| !earlier_write) {
        let got = s.retain_until.as_deref().and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        });
        match got {
            Some(g) if g >= until - time::Duration::seconds(1) => {}
            _ => problems.push(format!(
                "retained until {:?}, asked for {}",
                s.retain_until,
                crate::store::rfc3339(until)
            )),
        }
    } else if let Some(t) = s.retain_until.as_deref().and_then(|t| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    }) && t < now
    {
        problems.push(format!(
            "its retention ended at {}",
            crate::store::rfc3339(t)
        ));
    }
    match &p.encryption {
        crate::target::Encryption::BucketDefault => {}
        crate::target::Encryption::Aes256 => {
            if s.encryption.as_deref() != Some("AES256") {
                problems.push(format!(
                    "encryption is {:?}, asked for AES256",
                    s.encryption
                ));
            }
        }
        crate::target::Encryption::Kms(want) => {
            if s.encryption.as_deref() != Some("aws:kms") {
                problems.push(format!(
                    "encryption is {:?}, asked for aws:kms",
                    s.encryption
                ));
            } else if let Some(w) = want
                && !kms_matches(w, s.kms_key_id.as_deref())
            {
                problems.push(format!("the KMS key is {:?}, asked for {w}", s.kms_key_id));
            }
        }
    }
    if let Some(scope) = &p.encryption_scope
        && s.encryption_scope.as_deref() != Some(scope.as_str())
    {
        problems.push(format!(
            "encryption scope is {:?}, asked for {scope}",
            s.encryption_scope
        ));
    }
    if p.legal_hold && s.legal_hold != Some(true) {
        problems.push("legal hold is not on".into());
    }
    problems
}

/// Whether the key S3 reports (an ARN) is the one asked for (an id, ARN, or alias — an alias
/// cannot be resolved without KMS permissions, so any key passes for it).
pub fn kms_matches(want: &str, got: Option<&str>) -> bool {
    let Some(got) = got else { return false };
    got == want || got.ends_with(&format!("/{want}")) || want.starts_with("alias/")
}

/// RFC 3339, UTC, whole seconds.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .expect("date")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::{Encryption, LockMode};

    fn item() -> Item {
        Item {
            rel: "data/a.wav".into(),
            path: "a.wav".into(),
            size: 10,
            sha256: "ab".repeat(32),
            source: "manifest-sha256.txt",
        }
    }

    fn stored() -> Stored {
        Stored {
            key: "m/data/a.wav".into(),
            size: Some(10),
            sha256: Some("ab".repeat(32)),
            lock_mode: Some("COMPLIANCE".into()),
            retain_until: Some("2099-01-31T00:00:00Z".into()),
            legal_hold: Some(true),
            encryption: Some("aws:kms".into()),
            kms_key_id: Some("arn:aws:kms:eu-west-1:111122223333:key/k-1".into()),
            ..Default::default()
        }
    }

    fn asked() -> Protection {
        Protection {
            lock_mode: Some(LockMode::Compliance),
            retain_until: Some(time::macros::datetime!(2099-01-31 00:00 UTC)),
            legal_hold: true,
            encryption: Encryption::Kms(Some("k-1".into())),
            encryption_scope: None,
            require_worm: false,
        }
    }

    #[test]
    fn what_is_stored_must_be_what_was_sent_and_asked_for() {
        let now = time::OffsetDateTime::now_utc();
        assert_eq!(
            check_stored(&item(), &asked(), &stored(), now, false),
            Vec::<String>::new()
        );
        type Change = Box<dyn Fn(&mut Stored)>;
        let cases: Vec<(&str, Change)> = vec![
            ("size", Box::new(|s| s.size = Some(9))),
            ("SHA-256", Box::new(|s| s.sha256 = Some("cd".repeat(32)))),
            ("no SHA-256", Box::new(|s| s.sha256 = None)),
            (
                "lock mode",
                Box::new(|s| s.lock_mode = Some("GOVERNANCE".into())),
            ),
            (
                "retained until",
                Box::new(|s| s.retain_until = Some("2098-01-01T00:00:00Z".into())),
            ),
            ("legal hold", Box::new(|s| s.legal_hold = Some(false))),
            (
                "encryption",
                Box::new(|s| s.encryption = Some("AES256".into())),
            ),
            (
                "KMS key",
                Box::new(|s| s.kms_key_id = Some("arn:aws:kms:eu-west-1:1:key/k-2".into())),
            ),
        ];
        for (what, change) in cases {
            let mut s = stored();
            change(&mut s);
            let problems = check_stored(&item(), &asked(), &s, now, false);
            assert_eq!(problems.len(), 1, "{what}: {problems:?}");
        }
        // Azure reports the policy mode as Locked/Unlocked and keeps our SHA-256 in metadata.
        let mut az = stored();
        az.lock_mode = Some("locked".into());
        az.sha256 = None;
        az.sha256_metadata = Some("ab".repeat(32));
        az.encryption = Some("aws:kms".into());
        assert!(check_stored(&item(), &asked(), &az, now, false).is_empty());
        // An object an earlier run wrote keeps that run's date: in force is enough …
        let mut earlier = stored();
        earlier.retain_until = Some("2098-01-01T00:00:00Z".into());
        assert!(check_stored(&item(), &asked(), &earlier, now, true).is_empty());
        // … but not a retention that has ended.
        earlier.retain_until = Some("2001-01-01T00:00:00Z".into());
        assert_eq!(
            check_stored(&item(), &asked(), &earlier, now, true).len(),
            1
        );
    }

    #[test]
    fn kms_keys_match_by_id_arn_or_alias() {
        let arn = Some("arn:aws:kms:eu-west-1:111122223333:key/k-1");
        assert!(kms_matches("k-1", arn));
        assert!(kms_matches(
            "arn:aws:kms:eu-west-1:111122223333:key/k-1",
            arn
        ));
        assert!(kms_matches("alias/evidence", arn));
        assert!(!kms_matches("k-2", arn));
        assert!(!kms_matches("k-1", None));
    }

    #[test]
    fn parts_fit_ten_thousand() {
        assert_eq!(part_size(1, 64), 64);
        assert_eq!(
            part_size(5 * 1024 * 1024 * 1024 * 1024, 64 * 1024 * 1024),
            549_755_814
        );
    }
}
