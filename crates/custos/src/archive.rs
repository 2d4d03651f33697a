//! The organization's own recording archive: the bucket Genesys' "AWS S3 recording bulk
//! actions" integration writes recordings and their `_metadata.json` files into
//! (docs/archive.md). An export with an archive lists through the API as always (the sealed
//! manifest is the same) and reads each item's bytes from the archive instead of the media API.
//!
//! This crate does not speak S3: [`Archive`] is what the retrieval needs of a store (list a key
//! prefix, a URL that reads exactly one object version), and `custos-store` implements it. The
//! layout of the keys is [`Layout`], a template, since Genesys documents it only in part.

use futures_util::future::BoxFuture;
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// One object of the archive, as the store lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Object {
    /// Its key, from the bucket's root.
    pub key: String,
    /// Bytes.
    pub size: u64,
    /// The version read (versioned buckets), so that what is read is what was listed.
    pub version_id: Option<String>,
    /// The ETag as stored (quotes removed).
    pub etag: Option<String>,
    /// When the store last wrote it (RFC 3339): when Genesys (or anyone) put it there.
    pub last_modified: Option<String>,
    /// The store's own checksums of the object (algorithm, value as the store states it,
    /// base64), e.g. `("SHA256", "…")`, `("CRC64NVME", "…")`.
    pub checksums: Vec<(String, String)>,
}

impl Object {
    /// The object's name: its key after the last `/`.
    pub fn name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or(&self.key)
    }

    /// The MD5 its ETag is, when the ETag is one (a single-part upload without SSE-KMS: 32 hex
    /// digits); `None` otherwise.
    pub fn etag_md5(&self) -> Option<String> {
        self.etag
            .as_deref()
            .map(|e| e.trim_matches('"').to_ascii_lowercase())
            .filter(|e| e.len() == 32 && e.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    /// The SHA-256 the store states, as lowercase hex (`ChecksumSHA256` of a single-part
    /// object); `None` if it states none.
    pub fn sha256(&self) -> Option<String> {
        use base64::Engine;
        let (_, v) = self
            .checksums
            .iter()
            .find(|(a, v)| a == "SHA256" && !v.contains('-'))?;
        base64::engine::general_purpose::STANDARD
            .decode(v)
            .ok()
            .filter(|b| b.len() == 32)
            .map(hex::encode)
    }
}

/// What the retrieval needs of the store that holds the archive (implemented by `custos-store`
/// for S3). Errors are the store's words, recorded as they are.
pub trait Archive: Send + Sync + std::fmt::Debug {
    /// Where the archive is, e.g. `s3://bucket/prefix`, as the custody record names it.
    fn location(&self) -> String;

    /// The key prefix every layout key is under (`PREFIX/` of `s3://BUCKET/PREFIX`, or empty).
    fn prefix(&self) -> String;

    /// Every object whose key starts with `prefix` (from the bucket's root), with its version,
    /// ETag, time and checksums; at most `limit`.
    fn list<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, std::result::Result<Vec<Object>, String>>;

    /// The keys under `prefix` as the store's listing gives them (key, size, ETag, time; no
    /// version and no checksums, so no request per object), at most `limit`, paged.
    fn list_names<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, std::result::Result<Vec<Object>, String>>;

    /// A URL that reads exactly `object` (its version, when it has one) with no other
    /// credential, valid long enough for one download.
    fn url<'a>(&'a self, object: &'a Object) -> BoxFuture<'a, std::result::Result<String, String>>;
}

/// Where the archive keeps a conversation's recordings: a key template, filled from the
/// organization id, the conversation's start (UTC) and its id.
///
/// Tokens: `{org}`, `{conversation}`, `{year}`, `{month}`, `{day}`, `{hour}` (as numbers:
/// `month=9`) and `{MM}`, `{DD}`, `{HH}` (two digits: `month=09`). Genesys documents
/// `{orgId}/year=Y/month=M/day=D/hour=H/conversation_id={id}/` without saying whether numbers
/// are padded; [`Layout::DEFAULT`] pads them, and `--archive-layout` says otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout(String);

/// The tokens a layout may hold.
const TOKENS: &[&str] = &[
    "org",
    "conversation",
    "year",
    "month",
    "day",
    "hour",
    "MM",
    "DD",
    "HH",
];

impl Layout {
    /// The documented layout, with two-digit month, day and hour.
    pub const DEFAULT: &'static str =
        "{org}/year={year}/month={MM}/day={DD}/hour={HH}/conversation_id={conversation}/";

    /// Checks a template: known tokens only, `{conversation}` present (two conversations never
    /// share a folder), ending in `/`, no `..` segment, no leading `/`.
    pub fn parse(template: &str) -> Result<Layout> {
        let bad = |why: &str| Error::Config(format!("--archive-layout '{template}': {why}"));
        if !template.ends_with('/') {
            return Err(bad("must end with '/' (it names a conversation's folder)"));
        }
        if template.starts_with('/') || template.split('/').any(|s| s == ".." || s == ".") {
            return Err(bad("no leading '/' and no '.' or '..' segment"));
        }
        if template.chars().any(char::is_control) {
            return Err(bad("control characters are not allowed"));
        }
        let mut rest = template;
        let mut has_conversation = false;
        while let Some(open) = rest.find('{') {
            if rest[..open].contains('}') {
                return Err(bad("a '}' is not opened"));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(bad("a '{' is not closed"));
            };
            let token = &rest[open + 1..open + close];
            if !TOKENS.contains(&token) {
                return Err(bad(&format!(
                    "unknown token {{{token}}}; use {}",
                    TOKENS
                        .iter()
                        .map(|t| format!("{{{t}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            has_conversation |= token == "conversation";
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(bad("a '}' is not opened"));
        }
        if !has_conversation {
            return Err(bad("must hold {conversation}"));
        }
        Ok(Layout(template.to_owned()))
    }

    /// The template as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The folder (relative to the archive's prefix) of `conversation`, which started at
    /// `start`, in organization `org`.
    pub fn folder(&self, org: &str, start: OffsetDateTime, conversation: &str) -> String {
        let t = start.to_offset(time::UtcOffset::UTC);
        let mut out = self.0.clone();
        for (token, value) in [
            ("{org}", org.to_owned()),
            ("{conversation}", conversation.to_owned()),
            ("{year}", t.year().to_string()),
            ("{month}", u8::from(t.month()).to_string()),
            ("{day}", t.day().to_string()),
            ("{hour}", t.hour().to_string()),
            ("{MM}", format!("{:02}", u8::from(t.month()))),
            ("{DD}", format!("{:02}", t.day())),
            ("{HH}", format!("{:02}", t.hour())),
        ] {
            out = out.replace(token, &value);
        }
        out
    }
}

impl Default for Layout {
    fn default() -> Layout {
        Layout(Layout::DEFAULT.to_owned())
    }
}

/// What to do with a manifest item the archive does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Missing {
    /// It ends `Failed`, naming the folder it was looked for in.
    Fail,
    /// It is fetched through the API (`--retrieval`), and its custody says so.
    Api,
}

impl Missing {
    /// The name used in flags and the custody record.
    pub fn as_str(self) -> &'static str {
        match self {
            Missing::Fail => "fail",
            Missing::Api => "api",
        }
    }
}

/// An export's archive: the store, its layout, and what to do with what it lacks.
#[derive(Clone, Debug)]
pub struct ArchiveSource {
    /// The store.
    pub store: std::sync::Arc<dyn Archive>,
    /// Where a conversation's recordings are.
    pub layout: Layout,
    /// Items it lacks.
    pub missing: Missing,
    /// Read the copy the archive holds of a recording the listing settled (DELETED or
    /// ARCHIVED at the source) instead of ending it as the listing says (`--archive-settled
    /// read`); without a copy, the listing's outcome stands.
    pub read_settled: bool,
    /// Have Genesys write the query's recordings into it first (`--bulk-export`).
    pub bulk: Option<BulkExport>,
}

/// A recording bulk job (`POST /api/v2/recording/jobs`, action EXPORT) that has the org's S3
/// integration write the query's recordings into the archive before they are read
/// (docs/archive.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkExport {
    /// The org's "AWS S3 recording bulk actions" integration.
    pub integration_id: String,
    /// How long the job is waited for before the archive is read as it is.
    pub deadline: std::time::Duration,
    /// How long a recording the job should have written, and did not list as failed, is
    /// looked for again after the job ended (Genesys may write after FULFILLED).
    pub grace: std::time::Duration,
    /// The longest pause between two looks at the job (from 1 s, doubling).
    pub poll_max: std::time::Duration,
}

/// The file extension an archived object's name gives it, mapped to the Content-Type the API
/// path would have served (so a recording is named alike whichever path it came by); `None`
/// for a name we do not know.
pub fn content_type_of(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "opus" | "ogg" | "oga" => "audio/ogg",
        "wav" => "audio/wav",
        "mp3" => "audio/mpeg",
        "webm" => "video/webm",
        "mp4" => "video/mp4",
        "m4a" => "audio/mp4",
        "eml" => "message/rfc822",
        "zip" => "application/zip",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    }

    #[test]
    fn the_default_layout_pads_and_uses_the_conversation_start_in_utc() {
        let l = Layout::default();
        assert_eq!(
            l.folder("org-1", at("2023-09-07T01:30:00+02:00"), "c-1"),
            "org-1/year=2023/month=09/day=06/hour=23/conversation_id=c-1/"
        );
    }

    #[test]
    fn an_unpadded_layout_is_one_flag_away() {
        let l = Layout::parse(
            "{org}/year={year}/month={month}/day={day}/hour={hour}/conversation_id={conversation}/",
        )
        .unwrap();
        assert_eq!(
            l.folder("o", at("2023-09-07T04:00:00Z"), "c"),
            "o/year=2023/month=9/day=7/hour=4/conversation_id=c/"
        );
    }

    fn refused(template: &str) -> String {
        Layout::parse(template).unwrap_err().to_string()
    }

    #[test]
    fn a_layout_without_its_conversation_is_refused() {
        assert!(refused("{org}/year={year}/").contains("must hold {conversation}"));
    }

    #[test]
    fn a_layout_that_names_no_folder_is_refused() {
        assert!(refused("{org}/{conversation}").contains("must end with '/'"));
    }

    #[test]
    fn a_layout_with_an_unknown_token_is_refused_naming_the_known_ones() {
        let e = refused("{org}/{conv}/{conversation}/");
        assert!(
            e.contains("unknown token {conv}") && e.contains("{HH}"),
            "{e}"
        );
    }

    #[test]
    fn a_layout_that_climbs_or_starts_at_the_root_is_refused() {
        assert!(refused("../{conversation}/").contains("'..'"));
        assert!(refused("/{conversation}/").contains("leading '/'"));
    }

    #[test]
    fn a_layout_with_unbalanced_braces_is_refused() {
        assert!(refused("{org/{conversation}/").contains("unknown token"));
        assert!(refused("a}/{conversation}/").contains("not opened"));
    }

    #[test]
    fn the_stated_sha256_and_etag_md5_are_read_only_when_they_are_digests() {
        use base64::Engine;
        let sha = [7u8; 32];
        let o = Object {
            etag: Some("\"0123456789abcdef0123456789ABCDEF\"".into()),
            checksums: vec![(
                "SHA256".into(),
                base64::engine::general_purpose::STANDARD.encode(sha),
            )],
            ..Default::default()
        };
        assert_eq!(o.sha256(), Some(hex::encode(sha)));
        assert_eq!(
            o.etag_md5().as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        let multipart = Object {
            etag: Some("\"0123456789abcdef0123456789abcdef-2\"".into()),
            checksums: vec![("SHA256".into(), "abc=-2".into())],
            ..Default::default()
        };
        assert_eq!(multipart.etag_md5(), None);
        assert_eq!(multipart.sha256(), None);
    }
}
