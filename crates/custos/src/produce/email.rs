//! An email document's children in a production: each attachment of its message, decoded,
//! as a document of its own (its own native, hashes and, for text, extracted text), and every
//! later message of its thread as a document, rendered faithfully from the recording's
//! metadata (`emailTranscript`), since Genesys keeps only the thread's first message as the
//! recording's file. Each child follows its email, in the email's family.

use serde_json::Value;

use crate::media::Attachment;
use crate::verify::Package;

/// One child document of an email.
pub(super) enum Child {
    /// The `n`-th attachment (from 1) of the email's message.
    Attachment(usize, Attachment),
    /// The `k`-th message (from 0) of the thread's `emailTranscript`, of `of`.
    Message { k: usize, of: usize, message: Value },
}

/// The children of the email whose file is `rel` and metadata `meta_rel` in the verified
/// export `pkg` (both read through its one reader, checked against their seals): its
/// attachments, then the thread's later messages. An email whose message does not parse has no
/// attachment children (the export's media check would have made it Corrupted).
pub(super) fn children(
    pkg: &Package,
    rel: &str,
    meta_rel: &str,
) -> Result<Vec<Child>, super::ProduceError> {
    let unread = |e: crate::verify::OpenError| super::ProduceError::NotVerified(e.to_string());
    let mut out = Vec::new();
    let bytes = pkg
        .read(rel, crate::media::MAX_DOCUMENT_BYTES)
        .map_err(unread)?;
    if let Ok(attachments) = crate::media::eml_attachments(&bytes) {
        out.extend(
            attachments
                .into_iter()
                .enumerate()
                .map(|(i, a)| Child::Attachment(i + 1, a)),
        );
    }
    let meta = super::sealed_json(pkg, meta_rel)?;
    let thread = meta["emailTranscript"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let of = thread.len();
    out.extend(
        thread
            .into_iter()
            .enumerate()
            .skip(1)
            .map(|(k, message)| Child::Message { k, of, message }),
    );
    Ok(out)
}

/// The header fields of the email whose file is `rel` in the verified export `pkg`, or `None`
/// when it has no RFC 5322 header that parses.
pub(super) fn headers(
    pkg: &Package,
    rel: &str,
) -> Result<Option<crate::media::EmlHeaders>, super::ProduceError> {
    let bytes = pkg
        .read(rel, crate::media::MAX_DOCUMENT_BYTES)
        .map_err(|e| super::ProduceError::NotVerified(e.to_string()))?;
    Ok(crate::media::eml_headers(&bytes).ok())
}

/// An RFC 5322 date as the load files hold dates (`YYYY-MM-DD HH:MM:SS`, UTC); `None` when it
/// is not one.
pub(super) fn load_date(rfc5322: &str) -> Option<String> {
    let secs = mailparse::dateparse(rfc5322).ok()?;
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()?
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]"
        ))
        .ok()
}

/// A value from the API on one line: every control character a space.
pub(super) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Text from the API as a rendering holds it: line breaks and tabs kept, every other control
/// character a space.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// `Name <address>` of an `emailTranscript` party.
pub(super) fn party(p: &Value) -> String {
    let (name, email) = (
        clean(p["name"].as_str().unwrap_or("")),
        clean(p["email"].as_str().unwrap_or("")),
    );
    match (name.is_empty(), email.is_empty()) {
        (true, _) => email,
        (false, true) => name,
        (false, false) => format!("{name} <{email}>"),
    }
}

/// Every party of `list`, `; `-separated.
pub(super) fn parties(list: &Value) -> String {
    list.as_array()
        .into_iter()
        .flatten()
        .map(party)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The plain-text rendering of message `k` of `of` of the thread of recording `rid`.
pub(super) fn render(
    rid: &str,
    cid: &str,
    meta_rel: &str,
    k: usize,
    of: usize,
    m: &Value,
) -> String {
    let attachments: Vec<String> = m["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            format!(
                "{} ({}, {} bytes)",
                clean(a["name"].as_str().unwrap_or("")),
                clean(a["contentType"].as_str().unwrap_or("type not stated")),
                a["contentLength"]
                    .as_u64()
                    .map_or("size not stated".into(), |n| n.to_string())
            )
        })
        .collect();
    format!(
        "Message {} of {of} of the email thread of recording {rid} (conversation {cid})\n\
         Rendered by custos from the recording's metadata as received ({meta_rel}, its \
         `emailTranscript[{k}]`); the JSON governs. Not a native: Genesys keeps the thread's first \
         message as the recording's file.\n\n\
         Date: {}\nFrom: {}\nTo: {}\nCc: {}\nBcc: {}\nSubject: {}\nMessage id: {}\nAttachments: {}\n\n{}\n",
        k + 1,
        clean(m["time"].as_str().unwrap_or("")),
        party(&m["from"]),
        parties(&m["to"]),
        parties(&m["cc"]),
        parties(&m["bcc"]),
        clean(m["subject"].as_str().unwrap_or("")),
        clean(m["id"].as_str().unwrap_or("")),
        if attachments.is_empty() {
            "none".to_owned()
        } else {
            format!(
                "{} (as the metadata states them; their content is not in the export)",
                attachments.join("; ")
            )
        },
        clean(m["textBody"].as_str().unwrap_or("")).trim_end()
    )
}

/// An attachment's file extension from its name: up to 10 letters or digits, else `bin`.
pub(super) fn extension(name: &str) -> String {
    std::path::Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| !e.is_empty() && e.len() <= 10 && e.chars().all(|c| c.is_ascii_alphanumeric()))
        .map_or_else(|| "bin".to_owned(), str::to_ascii_lowercase)
}
