//! The organization's recording archive in S3 (`custos export --archive s3://BUCKET[/PREFIX]`,
//! docs/archive.md): [`custos::archive::Archive`] over `aws-sdk-s3`. Listing is
//! `ListObjectsV2` under a recording's prefix, then `HeadObject` (checksum mode) of each object
//! for its version and the store's checksums; reading is a pre-signed `GetObject` for exactly
//! that version, which the export downloads, hashes and judges like any media URL.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::ChecksumMode;
use custos::archive::{Archive, Object};
use futures_util::future::BoxFuture;

use crate::error::StoreError;
use crate::s3::S3Store;
use crate::store::StoreOptions;

/// How long a pre-signed URL for one object stays valid: one download, with its retries.
const URL_VALID: Duration = Duration::from_secs(15 * 60);

/// An S3 bucket (and prefix) that holds an organization's recordings.
pub struct S3Archive {
    store: S3Store,
    bucket: String,
    prefix: String,
}

impl std::fmt::Debug for S3Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.location())
    }
}

impl S3Archive {
    /// `s3://BUCKET` or `s3://BUCKET/PREFIX`, with the AWS default credential chain.
    pub async fn connect(url: &str, opts: &StoreOptions) -> Result<S3Archive, StoreError> {
        let (bucket, prefix) = parse(url)?;
        Ok(S3Archive {
            store: S3Store::connect(&bucket, opts).await?,
            bucket,
            prefix,
        })
    }
}

/// `s3://BUCKET[/PREFIX]` → (bucket, `PREFIX/` or empty).
fn parse(url: &str) -> Result<(String, String), StoreError> {
    let bad = |why: &str| StoreError::Settings(format!("--archive '{url}': {why}"));
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| bad("give s3://BUCKET or s3://BUCKET/PREFIX"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !bucket_ok {
        return Err(bad("not an S3 bucket name"));
    }
    let prefix = prefix.trim_end_matches('/');
    if prefix.split('/').any(|s| s == ".." || s == ".")
        || prefix.chars().any(char::is_control)
        || prefix.contains("//")
    {
        return Err(bad(
            "the prefix may not hold '.', '..', '//' or control characters",
        ));
    }
    Ok((
        bucket.to_owned(),
        if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        },
    ))
}

impl Archive for S3Archive {
    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    fn prefix(&self) -> String {
        self.prefix.clone()
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Object>, String>> {
        Box::pin(async move {
            // The listing names them; each is then asked for its version and checksums.
            let client = self.store.client();
            let mut out = self.list_names(prefix, limit).await?;
            for o in &mut out {
                let key = o.key.as_str();
                let head = client
                    .head_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .checksum_mode(ChecksumMode::Enabled)
                    .send()
                    .await
                    .map_err(|e| format!("HeadObject {key}: {}", crate::s3::describe(&e)))?;
                o.checksums = [
                    ("SHA256", head.checksum_sha256()),
                    ("SHA1", head.checksum_sha1()),
                    ("CRC64NVME", head.checksum_crc64_nvme()),
                    ("CRC32", head.checksum_crc32()),
                    ("CRC32C", head.checksum_crc32_c()),
                ]
                .into_iter()
                .filter_map(|(a, v)| Some((a.to_owned(), v?.to_owned())))
                .collect();
                o.size = head.content_length().unwrap_or(0).max(0) as u64;
                o.version_id = head.version_id().map(str::to_owned);
                o.etag = head.e_tag().map(|e| e.trim_matches('"').to_owned());
                o.last_modified = head.last_modified().and_then(crate::s3::rfc3339);
            }
            Ok(out)
        })
    }

    fn list_names<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Object>, String>> {
        Box::pin(async move {
            let client = self.store.client();
            let mut out = Vec::new();
            let mut token: Option<String> = None;
            let mut tokens = std::collections::HashSet::new();
            while out.len() < limit {
                let page = client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(prefix)
                    .max_keys((limit - out.len()).min(1000) as i32)
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .map_err(|e| crate::s3::describe(&e))?;
                for o in page.contents() {
                    let Some(key) = o.key() else { continue };
                    // What a store lists must be what was asked for: another key is refused,
                    // never read in its place.
                    if !key.starts_with(prefix) {
                        return Err(format!(
                            "the store listed {} for the prefix {}: not under it",
                            custos::shown::Shown(key),
                            custos::shown::Shown(prefix)
                        ));
                    }
                    out.push(Object {
                        key: key.to_owned(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                        version_id: None,
                        etag: o.e_tag().map(|e| e.trim_matches('"').to_owned()),
                        last_modified: o.last_modified().and_then(crate::s3::rfc3339),
                        checksums: Vec::new(),
                    });
                }
                // A page that lists nothing, or a token given before, ends the listing: a store
                // that says "more" for ever is not followed round a loop.
                match page.next_continuation_token() {
                    Some(t)
                        if page.is_truncated() == Some(true)
                            && !t.is_empty()
                            && !page.contents().is_empty()
                            && tokens.insert(t.to_owned()) =>
                    {
                        token = Some(t.to_owned())
                    }
                    _ => break,
                }
            }
            out.truncate(limit);
            Ok(out)
        })
    }

    fn url<'a>(&'a self, object: &'a Object) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let conf = PresigningConfig::expires_in(URL_VALID).map_err(|e| e.to_string())?;
            let req = self
                .store
                .client()
                .get_object()
                .bucket(&self.bucket)
                .key(&object.key)
                .set_version_id(object.version_id.clone())
                .presigned(conf)
                .await
                .map_err(|e| crate::s3::describe(&e))?;
            Ok(req.uri().to_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_bucket_alone_or_with_a_prefix_is_an_archive() {
        assert_eq!(
            parse("s3://org-archive").unwrap(),
            ("org-archive".into(), String::new())
        );
        assert_eq!(
            parse("s3://org-archive/genesys/").unwrap(),
            ("org-archive".into(), "genesys/".into())
        );
    }

    #[test]
    fn another_scheme_a_bad_bucket_or_a_climbing_prefix_is_refused() {
        for bad in [
            "https://x/y",
            "s3://",
            "s3://Upper",
            "s3://ok-bucket/../x",
            "s3://ok-bucket/a//b",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
