//! Where an export goes: `s3://bucket/prefix` or `azure://account/container/prefix`, and how the
//! objects there are to be protected.

use std::fmt;

use time::OffsetDateTime;

/// A parsed destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An S3 (or S3-compatible) bucket.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix, without leading or trailing `/`.
        prefix: String,
    },
    /// An Azure Blob Storage container.
    Azure {
        /// Storage account name.
        account: String,
        /// Container name.
        container: String,
        /// Blob name prefix, without leading or trailing `/`.
        prefix: String,
    },
}

impl Target {
    /// Parses `s3://bucket/prefix` or `azure://account/container/prefix`. The prefix is required:
    /// an export is never spread over a bucket's root, where two exports' `bagit.txt` would meet.
    pub fn parse(url: &str) -> Result<Target, crate::error::StoreError> {
        Self::read(url).map_err(crate::error::StoreError::Target)
    }

    fn read(url: &str) -> Result<Target, String> {
        let bad = |why: &str| {
            Err(format!(
                "'{url}': {why}; expected s3://BUCKET/PREFIX or azure://ACCOUNT/CONTAINER/PREFIX"
            ))
        };
        let (scheme, rest) = match url.split_once("://") {
            Some(x) => x,
            None => return bad("no scheme"),
        };
        if rest.contains(['?', '#', '\\']) || rest.chars().any(|c| c.is_control()) {
            return bad("'?', '#', '\\' and control characters are not allowed");
        }
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.iter().skip(1).any(|p| *p == "." || *p == "..") {
            return bad("'.' and '..' are not allowed in the prefix");
        }
        let prefix_of = |from: usize| -> String {
            parts[from..]
                .iter()
                .filter(|p| !p.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("/")
        };
        match scheme {
            "s3" => {
                let bucket = parts[0];
                if !valid_bucket(bucket) {
                    return bad("not a valid bucket name (3-63 of a-z 0-9 . -)");
                }
                let prefix = prefix_of(1);
                if prefix.is_empty() {
                    return bad(
                        "give a prefix for this export (e.g. s3://bucket/matter-42/export-1)",
                    );
                }
                Ok(Target::S3 {
                    bucket: bucket.into(),
                    prefix,
                })
            }
            "azure" => {
                if parts.len() < 2 {
                    return bad("no container");
                }
                let (account, container) = (parts[0], parts[1]);
                if account.is_empty()
                    || account.len() > 24
                    || !account
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                {
                    return bad("not a valid storage account name (3-24 of a-z 0-9)");
                }
                if !valid_container(container) {
                    return bad("not a valid container name (3-63 of a-z 0-9 -)");
                }
                let prefix = prefix_of(2);
                if prefix.is_empty() {
                    return bad(
                        "give a prefix for this export (e.g. azure://acct/evidence/matter-42/export-1)",
                    );
                }
                Ok(Target::Azure {
                    account: account.into(),
                    container: container.into(),
                    prefix,
                })
            }
            _ => bad("unknown scheme"),
        }
    }

    /// The object key (blob name) of a file at `rel` (a bag-relative path, `/`-separated).
    pub fn key(&self, rel: &str) -> String {
        match self {
            Target::S3 { prefix, .. } | Target::Azure { prefix, .. } => format!("{prefix}/{rel}"),
        }
    }

    /// The key prefix with a trailing `/`.
    pub fn prefix(&self) -> String {
        match self {
            Target::S3 { prefix, .. } | Target::Azure { prefix, .. } => format!("{prefix}/"),
        }
    }

    /// A file name for this target's receipt: readable, and unique per URL.
    pub fn receipt_name(&self) -> String {
        use sha2::Digest;
        let url = self.to_string();
        let h = hex::encode(sha2::Sha256::digest(url.as_bytes()));
        let (kind, place) = match self {
            Target::S3 { bucket, .. } => ("s3", bucket.clone()),
            Target::Azure {
                account, container, ..
            } => ("azure", format!("{account}-{container}")),
        };
        format!("upload-{kind}-{place}-{}.jsonl", &h[..12])
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Target::Azure {
                account,
                container,
                prefix,
            } => write!(f, "azure://{account}/{container}/{prefix}"),
        }
    }
}

fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !b.contains("..")
}

fn valid_container(c: &str) -> bool {
    (3..=63).contains(&c.len())
        && c.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && c.starts_with(|c: char| c.is_ascii_alphanumeric())
        && c.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !c.contains("--")
}

/// Object Lock mode (S3) / immutability policy mode (Azure: GOVERNANCE is `Unlocked`,
/// COMPLIANCE is `Locked`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum LockMode {
    /// S3 GOVERNANCE / Azure unlocked policy: lifted only with a special permission.
    #[serde(alias = "governance")]
    #[cfg_attr(feature = "clap", value(alias = "GOVERNANCE"))]
    Governance,
    /// S3 COMPLIANCE / Azure locked policy: nobody can delete or shorten it.
    #[serde(alias = "compliance")]
    #[cfg_attr(feature = "clap", value(alias = "COMPLIANCE"))]
    Compliance,
}

impl LockMode {
    /// The S3 header value.
    pub fn as_s3(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
    /// The Azure header value.
    pub fn as_azure(self) -> &'static str {
        match self {
            LockMode::Governance => "Unlocked",
            LockMode::Compliance => "Locked",
        }
    }
}

/// Server-side encryption asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encryption {
    /// Send no encryption header (the bucket's default applies; S3 encrypts with SSE-S3 at least).
    BucketDefault,
    /// SSE-S3 (`AES256`).
    Aes256,
    /// SSE-KMS, with a key id/ARN/alias or the AWS-managed key.
    Kms(Option<String>),
}

/// How every object is to be written.
#[derive(Clone, Debug)]
pub struct Protection {
    /// Object Lock / immutability mode.
    pub lock_mode: Option<LockMode>,
    /// Retain until (needed with a mode).
    pub retain_until: Option<OffsetDateTime>,
    /// Legal hold on.
    pub legal_hold: bool,
    /// S3 server-side encryption.
    pub encryption: Encryption,
    /// Azure encryption scope.
    pub encryption_scope: Option<String>,
    /// Refuse to upload unless the destination is write-once (versioning + Object Lock /
    /// version-level immutability) and encrypted by default; otherwise warn.
    pub require_worm: bool,
}

impl Protection {
    /// Checks the settings make sense together.
    pub fn validate(&self, now: OffsetDateTime) -> Result<(), crate::error::StoreError> {
        self.check(now).map_err(crate::error::StoreError::Settings)
    }

    fn check(&self, now: OffsetDateTime) -> Result<(), String> {
        match (self.lock_mode, self.retain_until) {
            (Some(_), None) => Err("--lock-mode needs --retain-until or --retain-days".into()),
            (None, Some(_)) => Err("--retain-until needs --lock-mode".into()),
            (Some(_), Some(t)) if t <= now => Err(format!(
                "the retain-until date {t} is in the past; objects would not be protected"
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets_and_refuses_bad_ones() {
        assert_eq!(
            Target::parse("s3://ev-bucket/matter-1/exp/").unwrap(),
            Target::S3 {
                bucket: "ev-bucket".into(),
                prefix: "matter-1/exp".into()
            }
        );
        let az = Target::parse("azure://acct1/evidence/m1").unwrap();
        assert_eq!(az.key("data/x.wav"), "m1/data/x.wav");
        assert_eq!(az.to_string(), "azure://acct1/evidence/m1");
        for bad in [
            "s3://bucket",
            "s3://bucket/",
            "s3://Bucket/p",
            "s3://b/p",
            "s3://bucket/../x",
            "s3://bucket/a/./b",
            "s3://bucket/p?versionId=1",
            "gs://bucket/p",
            "bucket/p",
            "azure://acct/evidence",
            "azure://ACCT/evidence/p",
            "azure://acct/Evidence/p",
            "azure://acct/ev--x/p",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        let a = Target::parse("s3://ev-bucket/m1").unwrap().receipt_name();
        let b = Target::parse("s3://ev-bucket/m2").unwrap().receipt_name();
        assert!(a.starts_with("upload-s3-ev-bucket-") && a != b);
    }

    #[test]
    fn protection_needs_a_date_in_the_future() {
        let now = OffsetDateTime::now_utc();
        let p = |m, d| Protection {
            lock_mode: m,
            retain_until: d,
            legal_hold: false,
            encryption: Encryption::Aes256,
            encryption_scope: None,
            require_worm: false,
        };
        assert!(p(Some(LockMode::Compliance), None).validate(now).is_err());
        assert!(p(None, Some(now)).validate(now).is_err());
        assert!(
            p(
                Some(LockMode::Compliance),
                Some(now - time::Duration::days(1))
            )
            .validate(now)
            .is_err()
        );
        assert!(
            p(
                Some(LockMode::Governance),
                Some(now + time::Duration::days(1))
            )
            .validate(now)
            .is_ok()
        );
        assert!(p(None, None).validate(now).is_ok());
    }
}
