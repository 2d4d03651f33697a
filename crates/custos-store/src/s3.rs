//! Amazon S3 (and S3-compatible stores) through `aws-sdk-s3`.
//!
//! One `PutObject` per file carrying `x-amz-checksum-sha256` = the bag's SHA-256 (and
//! `x-amz-sdk-checksum-algorithm: SHA256`, which Object Lock PUTs need), `If-None-Match: *` so
//! nothing is ever overwritten, SSE and Object Lock headers as asked. S3 recomputes the SHA-256
//! of what it receives and refuses a mismatch with `BadDigest`. Above the multipart threshold
//! (S3's 5 GiB single-PUT limit by default) the object goes up in parts with a full-object
//! CRC-64/NVME (S3 offers full-object checksums for multipart only with CRCs) and our SHA-256 in
//! its metadata, which we check against the file as we read it.

use std::io::Read;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::RequestId;
use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat, Length};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
    ObjectLockEnabled, ObjectLockLegalHoldStatus, ObjectLockMode, ServerSideEncryption,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::plan::Item;
use crate::store::{Check, PutError, StoreError, StoreOptions, Stored, part_size};
use crate::target::{Encryption, LockMode, Protection};

/// Adds SSE and Object Lock headers to a PutObject or CreateMultipartUpload builder (two types
/// with the same setters).
macro_rules! protect {
    ($req:expr, $p:expr) => {{
        let mut req = match &$p.encryption {
            Encryption::BucketDefault => $req,
            Encryption::Aes256 => $req.server_side_encryption(ServerSideEncryption::Aes256),
            Encryption::Kms(k) => $req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .set_ssekms_key_id(k.clone()),
        };
        if let (Some(mode), Some(until)) = ($p.lock_mode, $p.retain_until) {
            req = req
                .object_lock_mode(lock_mode(mode))
                .object_lock_retain_until_date(DateTime::from_secs(until.unix_timestamp()));
        }
        if $p.legal_hold {
            req = req.object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On);
        }
        req
    }};
}

/// A bucket.
pub struct S3Store {
    client: Client,
    bucket: String,
    multipart_threshold: u64,
    part_size: Option<u64>,
}

/// The smallest part we send (S3's own minimum is 5 MiB, except the last).
const MIN_PART: u64 = 64 * 1024 * 1024;

/// Parts of one multipart upload sent at once.
const PARTS_IN_FLIGHT: usize = 4;

pub(crate) fn describe<E: ProvideErrorMetadata + std::error::Error>(
    e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> String {
    match e {
        SdkError::ServiceError(s) if s.err().code().is_some() => format!(
            "{}: {}",
            s.err().code().unwrap_or("error"),
            s.err().message().unwrap_or("(no message)")
        ),
        SdkError::ServiceError(s) => {
            let mut why = aws_sdk_s3::error::DisplayErrorContext(s.err()).to_string();
            if let Some(cut) = why.char_indices().nth(300).map(|(i, _)| i) {
                why.truncate(cut);
                why.push('…');
            }
            format!(
                "HTTP {} with an answer that could not be read: {why}",
                s.raw().status().as_u16()
            )
        }
        SdkError::DispatchFailure(d) => {
            if d.is_timeout() {
                "timed out".into()
            } else if d.is_io() {
                "connection failed".into()
            } else {
                format!("could not send the request: {d:?}")
            }
        }
        SdkError::TimeoutError(_) => "timed out".into(),
        SdkError::ResponseError(_) => "the response could not be read".into(),
        SdkError::ConstructionFailure(c) => format!("could not build the request: {c:?}"),
        _ => "the request failed".into(),
    }
}

/// Codes after which no object can be stored: stop the upload (a re-run resumes).
const FATAL_CODES: &[&str] = &[
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "TokenRefreshRequired",
    "InvalidToken",
    "NoSuchBucket",
    "AccountProblem",
    "AllAccessDisabled",
    "PermanentRedirect",
    // Missing permissions (e.g. s3:PutObjectRetention for the lock headers) refuse every object.
    "AccessDenied",
    // The KMS key cannot be used: every object would be refused the same way.
    "KMS.NotFoundException",
    "KMS.DisabledException",
    "KMS.KMSInvalidStateException",
    "KMS.AccessDeniedException",
];

fn put_error<E: ProvideErrorMetadata + std::error::Error>(
    e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> PutError {
    match &e {
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("").to_owned();
            let status = s.raw().status().as_u16();
            if status == 412 || code == "PreconditionFailed" {
                return PutError::Exists;
            }
            if FATAL_CODES.contains(&code.as_str()) || status >= 500 {
                return PutError::Fatal(describe(&e));
            }
            if code.is_empty() {
                return PutError::Refused {
                    status,
                    code: format!("HTTP{status}"),
                    message: describe(&e),
                };
            }
            PutError::Refused {
                status,
                code,
                message: s.err().message().unwrap_or("").to_owned(),
            }
        }
        _ => PutError::Fatal(describe(&e)),
    }
}

fn status_of<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

pub(crate) fn rfc3339(d: &DateTime) -> Option<String> {
    d.fmt(DateTimeFormat::DateTime).ok()
}

fn hex_to_b64(hex_sha: &str) -> Result<String, PutError> {
    hex::decode(hex_sha)
        .map(|b| B64.encode(b))
        .map_err(|_| PutError::Fatal(format!("not a hex SHA-256: {hex_sha}")))
}

fn b64_to_hex(b64: &str) -> Option<String> {
    B64.decode(b64).ok().map(hex::encode)
}

crate::store::backend_by_inherent_methods!(S3Store);

impl S3Store {
    /// The SDK client (the archive reader lists and pre-signs with it).
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// A client from the AWS default chain (env, profile, config files, SSO, instance role);
    /// `endpoint` (or `AWS_ENDPOINT_URL`) for S3-compatible stores, addressed path-style.
    pub async fn connect(bucket: &str, opts: &StoreOptions) -> Result<S3Store, StoreError> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(ep) = &opts.endpoint {
            loader = loader.endpoint_url(ep);
        }
        if let Some(r) = &opts.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        let conf = loader.load().await;
        let custom_endpoint = opts.endpoint.is_some() || conf.endpoint_url().is_some();
        let mut b = aws_sdk_s3::config::Builder::from(&conf)
            // We send the checksum ourselves (the bag's); the SDK must not add its own.
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            // … and checks what it downloads itself (verify --remote --download), so that a
            // body that does not match the store's checksum is a finding, not a read error.
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            )
            .force_path_style(custom_endpoint);
        if conf.region().is_none() {
            if custom_endpoint {
                b = b.region(aws_config::Region::new("us-east-1"));
            } else {
                return Err(StoreError::Settings(
                    "no AWS region: set AWS_REGION, a profile region, or --region".into(),
                ));
            }
        }
        Ok(S3Store {
            client: Client::from_conf(b.build()),
            bucket: bucket.into(),
            multipart_threshold: opts
                .multipart_threshold
                .unwrap_or(crate::store::DEFAULT_MULTIPART_THRESHOLD),
            part_size: opts.part_size,
        })
    }

    /// Versioning, Object Lock, default encryption, access logging, Block Public Access.
    pub async fn preflight(&self) -> Result<Vec<Check>, StoreError> {
        self.preflight_checks()
            .await
            .map_err(StoreError::Unreachable)
    }

    async fn preflight_checks(&self) -> Result<Vec<Check>, String> {
        let mut checks = vec![
            self.check_versioning().await?,
            self.check_object_lock().await,
            self.check_encryption().await,
            self.check_logging().await,
            self.check_public_access().await,
        ];
        // Object Lock cannot be enabled without versioning, nor versioning suspended after: where
        // versioning could not be read (some S3-compatible stores answer it in another shape),
        // an enabled Object Lock settles it.
        let locked = checks
            .iter()
            .any(|c| c.name == "object-lock" && c.ok == Some(true));
        if let Some(v) = checks.iter_mut().find(|c| c.name == "versioning")
            && v.ok.is_none()
            && locked
        {
            v.ok = Some(true);
            v.detail = format!("enabled, as Object Lock is ({})", v.detail);
        }
        Ok(checks)
    }

    /// Versioning; `Err` when the bucket cannot be reached at all.
    async fn check_versioning(&self) -> Result<Check, String> {
        let b = &self.bucket;
        let versioning = self.client.get_bucket_versioning().bucket(b).send().await;
        if let Err(e) = &versioning {
            let ok_status = status_of(e).is_some_and(|s| s < 300);
            if !ok_status
                && let SdkError::ServiceError(_)
                | SdkError::DispatchFailure(_)
                | SdkError::TimeoutError(_) = e
                && !matches!(
                    e.as_service_error().and_then(|x| x.code()),
                    Some("AccessDenied" | "NotImplemented" | "MethodNotAllowed")
                )
            {
                return Err(format!("s3://{b}: {}", describe(e)));
            }
        }
        Ok(match versioning {
            Ok(v) => {
                let status = v.status().map(|s| s.as_str().to_owned());
                Check {
                    name: "versioning",
                    ok: Some(status.as_deref() == Some("Enabled")),
                    required: true,
                    detail: format!("versioning is {}", status.as_deref().unwrap_or("off")),
                }
            }
            Err(e) => unreadable("versioning", true, &describe(&e)),
        })
    }

    /// Object Lock, and its default retention.
    async fn check_object_lock(&self) -> Check {
        let b = &self.bucket;
        match self
            .client
            .get_object_lock_configuration()
            .bucket(b)
            .send()
            .await
        {
            Ok(v) => {
                let conf = v.object_lock_configuration();
                let enabled = conf
                    .and_then(|c| c.object_lock_enabled())
                    .is_some_and(|e| *e == ObjectLockEnabled::Enabled);
                let default = conf
                    .and_then(|c| c.rule())
                    .and_then(|r| r.default_retention())
                    .map(|d| {
                        format!(
                            "; default retention {} {}",
                            d.mode().map(|m| m.as_str()).unwrap_or("?"),
                            match (d.days(), d.years()) {
                                (Some(n), _) => format!("{n} days"),
                                (_, Some(n)) => format!("{n} years"),
                                _ => "?".into(),
                            }
                        )
                    })
                    .unwrap_or_else(|| "; no default retention".into());
                Check {
                    name: "object-lock",
                    ok: Some(enabled),
                    required: true,
                    detail: if enabled {
                        format!("Object Lock enabled{default}")
                    } else {
                        "Object Lock is not enabled".into()
                    },
                }
            }
            Err(e) => absent_or_unreadable(
                "object-lock",
                true,
                &e,
                "ObjectLockConfigurationNotFoundError",
                "the bucket has no Object Lock configuration (it must be created with Object Lock)",
            ),
        }
    }

    /// Default encryption.
    async fn check_encryption(&self) -> Check {
        let b = &self.bucket;
        match self.client.get_bucket_encryption().bucket(b).send().await {
            Ok(v) => {
                let algos: Vec<String> = v
                    .server_side_encryption_configuration()
                    .map(|c| {
                        c.rules()
                            .iter()
                            .filter_map(|r| r.apply_server_side_encryption_by_default())
                            .map(|d| {
                                format!(
                                    "{}{}",
                                    d.sse_algorithm().as_str(),
                                    d.kms_master_key_id()
                                        .map(|k| format!(" ({k})"))
                                        .unwrap_or_default()
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Check {
                    name: "default-encryption",
                    ok: Some(!algos.is_empty()),
                    required: true,
                    detail: if algos.is_empty() {
                        "no default encryption".into()
                    } else {
                        format!("default encryption {}", algos.join(", "))
                    },
                }
            }
            Err(e) => absent_or_unreadable(
                "default-encryption",
                true,
                &e,
                "ServerSideEncryptionConfigurationNotFoundError",
                "no default encryption configured",
            ),
        }
    }

    /// Server access logging.
    async fn check_logging(&self) -> Check {
        let b = &self.bucket;
        match self.client.get_bucket_logging().bucket(b).send().await {
            Ok(v) => {
                let target = v.logging_enabled().map(|l| {
                    format!(
                        "server access logs to s3://{}/{}",
                        l.target_bucket(),
                        l.target_prefix()
                    )
                });
                Check {
                    name: "access-logging",
                    ok: Some(target.is_some()),
                    required: false,
                    detail: target.unwrap_or_else(|| {
                        "server access logging is off (CloudTrail data events may log access instead; see docs/storage.md)".into()
                    }),
                }
            }
            Err(e) => unreadable("access-logging", false, &describe(&e)),
        }
    }

    /// Block Public Access.
    async fn check_public_access(&self) -> Check {
        let b = &self.bucket;
        match self.client.get_public_access_block().bucket(b).send().await {
            Ok(v) => {
                let all = v.public_access_block_configuration().is_some_and(|c| {
                    c.block_public_acls() == Some(true)
                        && c.ignore_public_acls() == Some(true)
                        && c.block_public_policy() == Some(true)
                        && c.restrict_public_buckets() == Some(true)
                });
                Check {
                    name: "block-public-access",
                    ok: Some(all),
                    required: false,
                    detail: if all {
                        "all four Block Public Access settings on".into()
                    } else {
                        "Block Public Access is not fully on".into()
                    },
                }
            }
            Err(e) => absent_or_unreadable(
                "block-public-access",
                false,
                &e,
                "NoSuchPublicAccessBlockConfiguration",
                "the bucket has no Block Public Access configuration (the account's may apply)",
            ),
        }
    }

    /// Writes one object, never over an existing one.
    pub async fn put(&self, item: &Item, key: &str, p: &Protection) -> Result<Stored, PutError> {
        if item.size > self.multipart_threshold {
            return self.put_multipart(item, key, p).await;
        }
        let body = ByteStream::read_from()
            .path(&item.path)
            .length(Length::Exact(item.size))
            .build()
            .await
            .map_err(|e| PutError::Fatal(format!("{}: {e}", item.path.display())))?;
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body)
            .content_length(item.size as i64)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(hex_to_b64(&item.sha256)?)
            .metadata("sha256", &item.sha256)
            .if_none_match("*");
        req = protect!(req, p);
        let out = req.send().await.map_err(put_error)?;
        Ok(Stored {
            key: key.into(),
            version_id: out.version_id().map(str::to_owned),
            request_id: out.request_id().map(str::to_owned),
            sha256: out.checksum_sha256().and_then(b64_to_hex),
            etag: out.e_tag().map(str::to_owned),
            encryption: out.server_side_encryption().map(|s| s.as_str().to_owned()),
            kms_key_id: out.ssekms_key_id().map(str::to_owned),
            ..Default::default()
        })
    }

    async fn put_multipart(
        &self,
        item: &Item,
        key: &str,
        p: &Protection,
    ) -> Result<Stored, PutError> {
        let part = self
            .part_size
            .unwrap_or_else(|| part_size(item.size, MIN_PART));
        // One pass over the file: our SHA-256 (checked against the sealed one: S3 does not check
        // metadata), the full-object CRC-64/NVME and each part's.
        let (sha, full_crc, part_crcs) = {
            let path = item.path.clone();
            tokio::task::spawn_blocking(move || crc_pass(&path, part))
                .await
                .map_err(|e| PutError::Fatal(e.to_string()))?
                .map_err(|e| PutError::Fatal(format!("{}: {e}", item.path.display())))?
        };
        if sha != item.sha256 {
            return Err(PutError::Refused {
                status: 0,
                code: crate::store::LOCAL_DIGEST_MISMATCH.into(),
                message: format!(
                    "the file's SHA-256 is {sha}, the bag sealed {}; not uploaded",
                    item.sha256
                ),
            });
        }
        let mut req = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_type(ChecksumType::FullObject)
            .metadata("sha256", &item.sha256);
        req = protect!(req, p);
        let created = req.send().await.map_err(put_error)?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| PutError::Fatal("CreateMultipartUpload returned no UploadId".into()))?
            .to_owned();
        let result = self
            .send_parts(item, key, &upload_id, part, &full_crc, &part_crcs)
            .await;
        if result.is_err() {
            // Leave nothing half-made behind (best effort; a lifecycle rule should also abort
            // incomplete uploads, see docs/storage.md).
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        let mut stored = result?;
        stored.sha256_metadata = Some(item.sha256.clone());
        Ok(stored)
    }

    async fn send_parts(
        &self,
        item: &Item,
        key: &str,
        upload_id: &str,
        part: u64,
        full_crc: &str,
        part_crcs: &[String],
    ) -> Result<Stored, PutError> {
        // Parts go up PARTS_IN_FLIGHT at a time, each streamed from its range of the file.
        use futures_util::StreamExt;
        let mut done: Vec<CompletedPart> =
            futures_util::stream::iter(part_crcs.iter().cloned().enumerate())
                .map(|(i, crc)| async move {
                    let offset = i as u64 * part;
                    let len = part.min(item.size - offset);
                    let body = ByteStream::read_from()
                        .path(&item.path)
                        .offset(offset)
                        .length(Length::Exact(len))
                        .build()
                        .await
                        .map_err(|e| PutError::Fatal(format!("{}: {e}", item.path.display())))?;
                    let n = i as i32 + 1;
                    let out = self
                        .client
                        .upload_part()
                        .bucket(&self.bucket)
                        .key(key)
                        .upload_id(upload_id)
                        .part_number(n)
                        .content_length(len as i64)
                        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
                        .checksum_crc64_nvme(crc.clone())
                        .body(body)
                        .send()
                        .await
                        .map_err(put_error)?;
                    Ok::<_, PutError>(
                        CompletedPart::builder()
                            .part_number(n)
                            .set_e_tag(out.e_tag().map(str::to_owned))
                            .checksum_crc64_nvme(crc)
                            .build(),
                    )
                })
                .buffer_unordered(PARTS_IN_FLIGHT)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_, _>>()?;
        done.sort_by_key(|p| p.part_number());
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .checksum_crc64_nvme(full_crc)
            .checksum_type(ChecksumType::FullObject)
            .if_none_match("*")
            .send()
            .await
            .map_err(put_error)?;
        Ok(Stored {
            key: key.into(),
            version_id: out.version_id().map(str::to_owned),
            request_id: out.request_id().map(str::to_owned),
            crc64nvme: out.checksum_crc64_nvme().map(str::to_owned),
            checksum_type: out.checksum_type().map(|t| t.as_str().to_owned()),
            etag: out.e_tag().map(str::to_owned),
            encryption: out.server_side_encryption().map(|s| s.as_str().to_owned()),
            kms_key_id: out.ssekms_key_id().map(str::to_owned),
            multipart: true,
            ..Default::default()
        })
    }

    /// HeadObject with checksum mode: size, checksums, lock, retention, hold, encryption.
    pub async fn head(&self, key: &str) -> Result<Option<Stored>, PutError> {
        let out = match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) if status_of(&e) == Some(404) => return Ok(None),
            Err(e) => {
                return Err(put_error(e));
            }
        };
        Ok(Some(Stored {
            key: key.into(),
            version_id: out.version_id().map(str::to_owned),
            request_id: out.request_id().map(str::to_owned),
            size: out.content_length().map(|n| n as u64),
            sha256: out.checksum_sha256().and_then(b64_to_hex),
            sha256_metadata: out.metadata().and_then(|m| m.get("sha256")).cloned(),
            crc64nvme: out.checksum_crc64_nvme().map(str::to_owned),
            checksum_type: out.checksum_type().map(|t| t.as_str().to_owned()),
            lock_mode: out.object_lock_mode().map(|m| m.as_str().to_owned()),
            retain_until: out.object_lock_retain_until_date().and_then(rfc3339),
            legal_hold: out
                .object_lock_legal_hold_status()
                .map(|h| *h == ObjectLockLegalHoldStatus::On),
            encryption: out.server_side_encryption().map(|s| s.as_str().to_owned()),
            kms_key_id: out.ssekms_key_id().map(str::to_owned),
            etag: out.e_tag().map(str::to_owned),
            multipart: out.e_tag().is_some_and(|t| t.contains('-')),
            ..Default::default()
        }))
    }

    /// GetObject, hashed as it streams.
    pub async fn download_sha256(&self, key: &str) -> Result<(String, u64), PutError> {
        use sha2::Digest;
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(put_error)?;
        let mut body = out.body;
        let mut sha = sha2::Sha256::new();
        let mut n = 0u64;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| PutError::Fatal(format!("reading the object: {e}")))?
        {
            sha.update(&chunk);
            n += chunk.len() as u64;
        }
        Ok((hex::encode(sha.finalize()), n))
    }

    /// Every key under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, PutError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(put_error)?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }
}

fn lock_mode(m: LockMode) -> ObjectLockMode {
    match m {
        LockMode::Governance => ObjectLockMode::Governance,
        LockMode::Compliance => ObjectLockMode::Compliance,
    }
}

/// A bucket setting S3 reports as not configured (the error `absent_code`) fails the check;
/// any other error leaves it unknown.
fn absent_or_unreadable<E: ProvideErrorMetadata + std::error::Error>(
    name: &'static str,
    required: bool,
    e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    absent_code: &str,
    absent_detail: &str,
) -> Check {
    let code = e.as_service_error().and_then(|x| x.code());
    // S3 names these codes with and without the "Error" suffix in different places.
    if code.is_some_and(|c| absent_code.trim_end_matches("Error") == c.trim_end_matches("Error")) {
        Check {
            name,
            ok: Some(false),
            required,
            detail: absent_detail.into(),
        }
    } else {
        unreadable(name, required, &describe(e))
    }
}

fn unreadable(name: &'static str, required: bool, why: &str) -> Check {
    Check {
        name,
        ok: None,
        required,
        detail: format!("could not read: {why}"),
    }
}

/// CRC-64/NVME as S3 writes it: the 8 bytes big-endian, base64.
pub fn crc64nvme_b64(crc: u64) -> String {
    B64.encode(crc.to_be_bytes())
}

/// Reads `path` once: SHA-256 (hex), full CRC-64/NVME and each `part`-sized part's (base64).
fn crc_pass(path: &std::path::Path, part: u64) -> std::io::Result<(String, String, Vec<String>)> {
    use sha2::Digest;
    let mut f = std::fs::File::open(path)?;
    let mut sha = sha2::Sha256::new();
    let mut full = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
    let mut cur = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
    let mut in_part = 0u64;
    let mut parts = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let mut chunk = &buf[..n];
        sha.update(chunk);
        full.update(chunk);
        while !chunk.is_empty() {
            let take = ((part - in_part) as usize).min(chunk.len());
            cur.update(&chunk[..take]);
            in_part += take as u64;
            chunk = &chunk[take..];
            if in_part == part {
                parts.push(crc64nvme_b64(cur.finalize_reset()));
                in_part = 0;
            }
        }
    }
    if in_part > 0 || parts.is_empty() {
        parts.push(crc64nvme_b64(cur.finalize()));
    }
    Ok((
        hex::encode(sha.finalize()),
        crc64nvme_b64(full.finalize()),
        parts,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64nvme_matches_the_published_check_value_and_parts_cover_the_file() {
        // CRC-64/NVME check value (CRC catalogue): "123456789" → 0xAE8B14860A799888.
        let d = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, b"123456789");
        assert_eq!(d, 0xAE8B_1486_0A79_9888);
        let dir = std::env::temp_dir().join(format!("custos-crc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let (sha, full, parts) = crc_pass(&p, 3_000).unwrap();
        assert_eq!(parts.len(), 4);
        assert_eq!(
            full,
            crc64nvme_b64(crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, &data))
        );
        assert_eq!(
            parts[3],
            crc64nvme_b64(crc_fast::checksum(
                crc_fast::CrcAlgorithm::Crc64Nvme,
                &data[9_000..]
            ))
        );
        assert_eq!(sha, custos::durable::sha256_file(&p).unwrap().0.hex());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
