//! Recordings that are documents, not audio or video: an email recording's EML (RFC 5322 and
//! MIME, parsed by the `mailparse` crate), a chat or messaging recording's ZIP (read by the `zip`
//! crate: every member inflated and its CRC-32 checked), and JSON (parsed whole).
//!
//! As with audio, the file is judged by what it holds, never by its name, and everything found
//! wrong is a problem that keeps it out of the evidentiary set: an EML whose multipart never
//! closes (a message cut short), an attachment that does not decode or is not the size the
//! recording's metadata states, a ZIP member whose bytes do not match its CRC, a JSON member
//! that does not parse. Hostile input is bounded: an EML or JSON larger than
//! [`MAX_DOCUMENT_BYTES`] is not read, and a ZIP is never inflated past [`MAX_INFLATED_BYTES`].

use std::io::{Read, Seek};

use super::info::MediaError;

/// The largest EML or JSON read whole (an email with attachments is tens of MB at most).
pub const MAX_DOCUMENT_BYTES: u64 = 512 << 20;
/// The most a ZIP is inflated to, all members together (a ZIP bomb stops here).
pub const MAX_INFLATED_BYTES: u64 = 4 << 30;
/// The largest JSON member parsed.
const MAX_JSON_MEMBER: u64 = 64 << 20;

/// One part of a document: an EML attachment or a ZIP member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// Its name (file name, or member path).
    pub name: String,
    /// Its MIME type (EML) or compression method (ZIP).
    pub kind: String,
    /// Its decoded (inflated) size in bytes.
    pub bytes: u64,
}

/// What a document holds.
#[derive(Clone, Debug, PartialEq)]
pub struct DocumentInfo {
    /// `eml`, `zip` or `json`.
    pub container: &'static str,
    /// EML: From, Date and Subject; ZIP: member count; JSON: its top-level shape.
    pub summary: String,
    /// EML: the attachments; ZIP: the members.
    pub parts: Vec<Part>,
    /// Everything that makes it untrustworthy as evidence. Empty for a sound file.
    pub problems: Vec<String>,
}

impl DocumentInfo {
    /// The facts as JSON (`custos probe --json`, the custody log).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "container": self.container,
            "summary": self.summary,
            "parts": self.parts.iter().map(|p| serde_json::json!({
                "name": p.name, "kind": p.kind, "bytes": p.bytes,
            })).collect::<Vec<_>>(),
            "problems": self.problems,
        })
    }
}

impl std::fmt::Display for DocumentInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, {}", self.container, self.summary)?;
        for p in &self.parts {
            write!(f, "\n  part {} ({}, {} bytes)", p.name, p.kind, p.bytes)?;
        }
        Ok(())
    }
}

/// Reads a whole document, refusing one over [`MAX_DOCUMENT_BYTES`].
fn read_whole<R: Read>(r: R, len: u64) -> Result<Vec<u8>, MediaError> {
    if len > MAX_DOCUMENT_BYTES {
        return Err(MediaError::Invalid(format!(
            "{len} bytes: larger than the {} MiB a document is read to",
            MAX_DOCUMENT_BYTES >> 20
        )));
    }
    let mut b = Vec::with_capacity(len as usize);
    r.take(MAX_DOCUMENT_BYTES).read_to_end(&mut b)?;
    Ok(b)
}

/// Reads an EML: its headers, its MIME tree (every multipart closed), and its attachments
/// (each decoded). `stated` are the attachments the recording's metadata names, with their
/// sizes (`emailTranscript[].attachments[]`): each must be in the message, at that size.
pub fn eml<R: Read>(r: R, len: u64, stated: &[(String, u64)]) -> Result<DocumentInfo, MediaError> {
    let bytes = read_whole(r, len)?;
    // A header folded over and over costs the MIME parser ~40 times its size in memory (a
    // 20 MB folded Subject: 854 MB, measured): such a message is refused before it is parsed.
    if let Some(why) = oversized_header(&bytes) {
        return Ok(DocumentInfo {
            container: "eml",
            summary: "not parsed".into(),
            parts: Vec::new(),
            problems: vec![why],
        });
    }
    let mail = mailparse::parse_mail(&bytes)
        .map_err(|e| MediaError::Invalid(format!("EML: not a MIME message: {e}")))?;
    let mut problems = Vec::new();
    let header = |name: &str| {
        mailparse::MailHeaderMap::get_first_value(mail.headers.as_slice(), name).unwrap_or_default()
    };
    let (from, date, subject) = (header("From"), header("Date"), header("Subject"));
    if from.is_empty() {
        problems.push("EML: no From header".to_owned());
    }
    if date.is_empty() {
        problems.push("EML: no Date header".to_owned());
    } else if mailparse::dateparse(&date).is_err() {
        problems.push(format!("EML: Date '{date}' is not an RFC 5322 date"));
    }
    let mut parts = Vec::new();
    walk(&mail, &mut parts, &mut problems);
    for (name, size) in stated {
        match parts.iter().find(|p| &p.name == name) {
            None => problems.push(format!(
                "attachment '{name}' ({size} bytes) that the recording states is not in the message"
            )),
            Some(p) if p.bytes != *size => problems.push(format!(
                "attachment '{name}' holds {} bytes; the recording states {size}",
                p.bytes
            )),
            Some(_) => {}
        }
    }
    Ok(DocumentInfo {
        container: "eml",
        summary: format!(
            "from {}, {}, subject {:?}",
            one_line(&from),
            one_line(&date),
            one_line(&subject)
        ),
        parts,
        problems,
    })
}

/// The most one header field may take with its folded lines; no mail system writes more (RFC
/// 5322 lines are at most 998 characters, and a field of a few hundred lines is already rare).
const MAX_HEADER_BYTES: usize = 256 << 10;
/// The most folded lines one header field of a MIME part may have.
const MAX_HEADER_FOLDS: usize = 10_000;

/// A header field past [`MAX_HEADER_BYTES`] (the message's own headers) or past
/// [`MAX_HEADER_FOLDS`] folded lines (a part's headers, after a `--boundary` line), found by a
/// scan that allocates nothing.
fn oversized_header(bytes: &[u8]) -> Option<String> {
    let mut in_headers = true;
    let mut top = true;
    let (mut size, mut folds, mut started) = (0usize, 0usize, 0usize);
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !in_headers {
            // A part's headers follow its boundary delimiter (not an HTML comment's end).
            if line.len() > 2 && line.len() <= 200 && line.starts_with(b"--") && line[2] != b'>' {
                (in_headers, top, size, folds) = (true, false, 0, 0);
            }
            continue;
        }
        if line.is_empty() {
            in_headers = false;
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            size += line.len() + 2;
            folds += 1;
        } else {
            (size, folds, started) = (line.len(), 0, i + 1);
        }
        if (top && size > MAX_HEADER_BYTES) || folds > MAX_HEADER_FOLDS {
            return Some(format!(
                "EML: the header field at line {started} takes {size} bytes in {folds} folded lines (at most {} KiB and {MAX_HEADER_FOLDS} folds are read): not a message any mail system writes; refused unparsed",
                MAX_HEADER_BYTES >> 10
            ));
        }
    }
    None
}

/// Walks the MIME tree: every multipart must have its closing delimiter (RFC 2046 §5.1.1), and
/// every attachment must decode.
fn walk(part: &mailparse::ParsedMail<'_>, out: &mut Vec<Part>, problems: &mut Vec<String>) {
    let mime = part.ctype.mimetype.to_ascii_lowercase();
    if mime.starts_with("multipart/") {
        match part.ctype.params.get("boundary") {
            Some(b) => {
                let close = format!("--{b}--");
                if !contains(part.raw_bytes, close.as_bytes()) {
                    problems.push(format!(
                        "EML: {mime} is never closed (no '{close}'): the message is cut short"
                    ));
                }
            }
            None => problems.push(format!("EML: {mime} without a boundary")),
        }
        for sub in &part.subparts {
            walk(sub, out, problems);
        }
        return;
    }
    let Some(name) = attachment_name(part) else {
        if let Err(e) = part.get_body_raw() {
            problems.push(format!("EML: a {mime} part does not decode: {e}"));
        }
        return;
    };
    match part.get_body_raw() {
        Ok(body) => out.push(Part {
            name: one_line(&name),
            kind: mime,
            bytes: body.len() as u64,
        }),
        Err(e) => problems.push(format!(
            "attachment '{}' does not decode: {e}",
            one_line(&name)
        )),
    }
}

/// A leaf part's attachment file name: a `Content-Disposition: attachment` part's `filename`
/// (or its type's `name`), or any part whose type names a file.
fn attachment_name(part: &mailparse::ParsedMail<'_>) -> Option<String> {
    let disposition = part.get_content_disposition();
    let name = disposition
        .params
        .get("filename")
        .or_else(|| part.ctype.params.get("name"))
        .cloned();
    let attachment = disposition.disposition == mailparse::DispositionType::Attachment;
    name.filter(|_| attachment || part.ctype.params.contains_key("name"))
}

/// One attachment of a message, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// Its file name as the message states it (one line, no control characters).
    pub name: String,
    /// Its MIME type.
    pub kind: String,
    /// Its decoded bytes.
    pub body: Vec<u8>,
}

/// Every attachment of the RFC 5322 message `bytes`, decoded, in MIME order (what `custos
/// produce` makes child documents of). A message [`eml`] would refuse unparsed is refused.
pub fn eml_attachments(bytes: &[u8]) -> Result<Vec<Attachment>, MediaError> {
    if let Some(why) = oversized_header(bytes) {
        return Err(MediaError::Invalid(why));
    }
    let mail = mailparse::parse_mail(bytes)
        .map_err(|e| MediaError::Invalid(format!("EML: not a MIME message: {e}")))?;
    fn collect(
        part: &mailparse::ParsedMail<'_>,
        out: &mut Vec<Attachment>,
    ) -> Result<(), MediaError> {
        if part
            .ctype
            .mimetype
            .to_ascii_lowercase()
            .starts_with("multipart/")
        {
            for sub in &part.subparts {
                collect(sub, out)?;
            }
            return Ok(());
        }
        if let Some(name) = attachment_name(part) {
            let body = part.get_body_raw().map_err(|e| {
                MediaError::Invalid(format!(
                    "attachment '{}' does not decode: {e}",
                    one_line(&name)
                ))
            })?;
            out.push(Attachment {
                name: one_line(&name),
                kind: part.ctype.mimetype.to_ascii_lowercase(),
                body,
            });
        }
        Ok(())
    }
    let mut out = Vec::new();
    collect(&mail, &mut out)?;
    Ok(out)
}

/// The header fields of an RFC 5322 message that a review platform loads, decoded (RFC 2047
/// encoded words included), each on one line without control characters; a field the message
/// does not have is empty, and one given twice is joined with `, `.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmlHeaders {
    /// `From`.
    pub from: String,
    /// `To`.
    pub to: String,
    /// `Cc`.
    pub cc: String,
    /// `Bcc` (a sent message rarely keeps it).
    pub bcc: String,
    /// `Subject`.
    pub subject: String,
    /// `Date`, as written (RFC 5322).
    pub date: String,
    /// `Message-ID`.
    pub message_id: String,
}

/// The header fields of the RFC 5322 message `bytes` ([`EmlHeaders`]). A message [`eml`] would
/// refuse unparsed is refused.
pub fn eml_headers(bytes: &[u8]) -> Result<EmlHeaders, MediaError> {
    use mailparse::MailHeaderMap;
    if let Some(why) = oversized_header(bytes) {
        return Err(MediaError::Invalid(why));
    }
    let (headers, _) = mailparse::parse_headers(bytes)
        .map_err(|e| MediaError::Invalid(format!("EML: no RFC 5322 header: {e}")))?;
    let get = |name: &str| {
        let joined = headers.as_slice().get_all_values(name).join(", ");
        joined
            .chars()
            .take(MAX_HEADER_FIELD)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .trim()
            .to_owned()
    };
    Ok(EmlHeaders {
        from: get("From"),
        to: get("To"),
        cc: get("Cc"),
        bcc: get("Bcc"),
        subject: get("Subject"),
        date: get("Date"),
        message_id: get("Message-ID"),
    })
}

/// The most characters of one header field [`eml_headers`] keeps.
const MAX_HEADER_FIELD: usize = 4096;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Text as one line, without control characters, at most 200 characters.
fn one_line(s: &str) -> String {
    s.chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Reads a ZIP: every member inflated (bounded) and its CRC-32 checked; members named `.json`
/// parsed.
pub fn zip<R: Read + Seek>(r: R) -> Result<DocumentInfo, MediaError> {
    let mut z = ::zip::ZipArchive::new(r)
        .map_err(|e| MediaError::Invalid(format!("ZIP: not a readable archive: {e}")))?;
    let mut problems = Vec::new();
    let mut parts = Vec::new();
    let mut declared_total = 0u64;
    // Each member's local header offset, compressed size and central-directory name.
    let mut layout: Vec<(u64, u64, Vec<u8>)> = Vec::new();
    for i in 0..z.len() {
        let mut m = match z.by_index(i) {
            Ok(m) => m,
            Err(e) => {
                problems.push(format!("ZIP: member {i} cannot be read: {e}"));
                continue;
            }
        };
        let name = one_line(&String::from_utf8_lossy(m.name_raw()));
        let kind = m.compression().to_string();
        // A name that escapes the folder it is extracted into (`..`, absolute, a drive) is
        // ambiguous evidence: what a reviewer's tool writes is not what the archive names.
        if m.enclosed_name().is_none() {
            problems.push(format!(
                "ZIP: member '{name}' names a path outside the archive's folder"
            ));
        }
        layout.push((m.header_start(), m.compressed_size(), m.name_raw().to_vec()));
        if m.is_dir() {
            continue;
        }
        let declared = m.size();
        // Each member is read to at most its declared size (+1, to see a lie), so capping
        // what the members declare caps what is inflated.
        declared_total = declared_total.saturating_add(declared);
        if declared_total > MAX_INFLATED_BYTES {
            problems.push(format!(
                "ZIP: the members declare more than {} GiB; '{name}' and the rest were not read",
                MAX_INFLATED_BYTES >> 30
            ));
            break;
        }
        let json = name.to_ascii_lowercase().ends_with(".json") && declared <= MAX_JSON_MEMBER;
        let mut body = Vec::new();
        // The zip crate checks the CRC-32 when the member has been read to its end.
        let read = if json {
            (&mut m).take(declared + 1).read_to_end(&mut body)
        } else {
            std::io::copy(
                &mut (&mut m).take(declared.saturating_add(1)),
                &mut std::io::sink(),
            )
            .map(|n| n as usize)
        };
        match read {
            Ok(n) => {
                if n as u64 != declared {
                    problems.push(format!(
                        "ZIP: member '{name}' inflates to {n} bytes; its header says {declared}"
                    ));
                }
                if json && let Err(e) = serde_json::from_slice::<serde_json::Value>(&body) {
                    problems.push(format!("ZIP: member '{name}' is not JSON: {e}"));
                }
            }
            Err(e) => problems.push(format!("ZIP: member '{name}' is damaged: {e}")),
        }
        parts.push(Part {
            name,
            kind,
            bytes: declared,
        });
    }
    if parts.is_empty() {
        problems.push("ZIP: no members".to_owned());
    }
    problems.extend(ambiguities(&mut z.into_inner(), layout));
    Ok(DocumentInfo {
        container: "zip",
        summary: format!("{} members", parts.len()),
        parts,
        problems,
    })
}

/// What makes an archive read two ways (Python's zipfile refuses both): a member whose local
/// header names another file than the central directory does, and members whose bytes overlap
/// (one stored range read as two files, or a member hidden inside another).
fn ambiguities<R: Read + Seek>(r: &mut R, mut layout: Vec<(u64, u64, Vec<u8>)>) -> Vec<String> {
    let mut problems = Vec::new();
    layout.sort();
    let mut prev_end = 0u64;
    for (start, compressed, central) in layout {
        let shown = one_line(&String::from_utf8_lossy(&central));
        let mut head = [0u8; 30];
        let read = r
            .seek(std::io::SeekFrom::Start(start))
            .and_then(|_| r.read_exact(&mut head));
        if read.is_err() || head[..4] != [0x50, 0x4b, 0x03, 0x04] {
            problems.push(format!(
                "ZIP: member '{shown}' has no local header where the central directory says"
            ));
            continue;
        }
        let n = u16::from_le_bytes([head[26], head[27]]) as usize;
        let extra = u64::from(u16::from_le_bytes([head[28], head[29]]));
        let mut local = vec![0u8; n];
        if r.read_exact(&mut local).is_err() || local != central {
            problems.push(format!(
                "ZIP: member '{shown}' is named '{}' in its local header: the archive reads two ways",
                one_line(&String::from_utf8_lossy(&local))
            ));
        }
        if start < prev_end {
            problems.push(format!(
                "ZIP: member '{shown}' overlaps the member before it: the same bytes are read as two files"
            ));
        }
        prev_end = prev_end.max(start + 30 + n as u64 + extra + compressed);
    }
    problems
}

/// Reads JSON whole and parses it.
pub fn json<R: Read>(r: R, len: u64) -> Result<DocumentInfo, MediaError> {
    let bytes = read_whole(r, len)?;
    let (summary, problems) = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Array(a)) => (format!("an array of {}", a.len()), Vec::new()),
        Ok(serde_json::Value::Object(o)) => {
            (format!("an object of {} fields", o.len()), Vec::new())
        }
        Ok(_) => ("a scalar".to_owned(), Vec::new()),
        Err(e) => ("not JSON".to_owned(), vec![format!("JSON: {e}")]),
    };
    Ok(DocumentInfo {
        container: "json",
        summary,
        parts: Vec::new(),
        problems,
    })
}

/// Whether `head` (a file's first bytes, at least a line of them) looks like an RFC 5322
/// message: a first line that is all printable ASCII and ends, made of a header field name of
/// two or more letters, digits or `-`, a colon, and the field's value. (Audio is told by its
/// magic numbers before this is asked: a WAV whose size bytes happen to spell `RIFF:` is not
/// mail.)
pub fn looks_like_eml(head: &[u8]) -> bool {
    let Some(end) = head.iter().position(|&b| b == b'\n') else {
        return false;
    };
    let line = head[..end].strip_suffix(b"\r").unwrap_or(&head[..end]);
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    colon >= 2
        && line
            .iter()
            .all(|&b| b == b'\t' || (0x20..0x7F).contains(&b))
        && line[..colon]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    const EML: &str = "From: A <a@example.net>\r\nTo: b@example.com\r\nSubject: hi\r\nDate: Sun, 1 Oct 2023 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XX\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--XX--\r\n";

    #[test]
    fn header_fields_are_decoded_and_kept_on_one_line() {
        let m = b"From: =?utf-8?q?J=C3=B6rg?= <j@example.net>\r\nTo: a@example.com\r\nCc: b@example.com\r\nCc: c@example.com\r\nSubject: =?utf-8?b?UmU6IG5vdGljZQ==?=\r\n x\tline\r\nDate: Sun, 1 Oct 2023 10:00:00 +0200\r\nMessage-ID: <m1@example.net>\r\n\r\nbody\r\n";
        let h = eml_headers(m).unwrap();
        assert_eq!(h.from, "Jörg <j@example.net>");
        assert_eq!(h.to, "a@example.com");
        assert_eq!(h.cc, "b@example.com, c@example.com");
        assert_eq!(h.bcc, "");
        assert_eq!(h.subject, "Re: notice x line");
        assert_eq!(h.date, "Sun, 1 Oct 2023 10:00:00 +0200");
        assert_eq!(h.message_id, "<m1@example.net>");
    }

    #[test]
    fn a_whole_email_passes_and_a_cut_one_does_not() {
        let stated = [("a.pdf".to_owned(), 9)];
        let ok = eml(Cursor::new(EML), EML.len() as u64, &stated).unwrap();
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        assert_eq!(ok.parts[0].bytes, 9);
        let cut = &EML[..EML.len() - 12];
        let bad = eml(Cursor::new(cut), cut.len() as u64, &stated).unwrap();
        assert!(
            bad.problems.iter().any(|p| p.contains("never closed")),
            "{:?}",
            bad.problems
        );
        let wrong = eml(Cursor::new(EML), EML.len() as u64, &[("a.pdf".into(), 10)]).unwrap();
        assert!(wrong.problems.iter().any(|p| p.contains("states 10")));
        assert!(looks_like_eml(EML.as_bytes()));
        assert!(!looks_like_eml(b"{\"a\": 1}"));
        assert!(!looks_like_eml(b"RIFF:\x01\x00\x00WAVEfmt \n"));
        assert!(!looks_like_eml(b"From: no end of line"));
        let received = format!(
            "Received: from {} by mx.example.com\r\n",
            "relay.".repeat(40)
        );
        assert!(
            looks_like_eml(received.as_bytes()),
            "a long first header line"
        );
    }

    #[test]
    fn zip_crc_damage_and_json_members_are_problems() {
        let good = zip_of(&[("transcript.json", b"[{\"body\": \"hello there\"}]")]);
        assert!(zip(Cursor::new(good.clone())).unwrap().problems.is_empty());
        let mut bad = good.clone();
        let at = 30 + "transcript.json".len() + 12;
        bad[at] ^= 0x01;
        let info = zip(Cursor::new(bad)).unwrap();
        assert!(
            info.problems.iter().any(|p| p.contains("damaged")),
            "{:?}",
            info.problems
        );
        assert!(zip(Cursor::new(b"PK\x03\x04junk".to_vec())).is_err());
    }

    /// A ZIP of `members` (name, bytes), stored uncompressed, as the `zip` crate writes it.
    fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = ::zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = ::zip::write::SimpleFileOptions::default()
            .compression_method(::zip::CompressionMethod::Stored);
        for (name, bytes) in members {
            w.start_file(*name, opts).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn two_members_zip() -> Vec<u8> {
        zip_of(&[("transcript.json", b"{\"a\":1}"), ("media/b.txt", b"hello")])
    }

    fn zip_problems(bytes: Vec<u8>) -> Vec<String> {
        zip(Cursor::new(bytes)).unwrap().problems
    }

    /// `head`, the field it ends with folded `folds` times, then `tail`: the problems found.
    fn folded(head: &[u8], folds: usize, tail: &[u8]) -> Vec<String> {
        let mut m = head.to_vec();
        for _ in 0..folds {
            m.extend_from_slice(b"\r\n y");
        }
        m.extend_from_slice(tail);
        let n = m.len() as u64;
        eml(Cursor::new(m), n, &[]).unwrap().problems
    }

    #[test]
    fn a_header_folded_over_and_over_is_refused_unparsed() {
        let p = folded(
            b"From: a@b.example\r\nDate: Mon, 2 Oct 2023 10:00:00 +0000\r\nSubject: x",
            200_000,
            b"\r\n\r\nhello\r\n",
        );
        assert!(p.iter().any(|p| p.contains("refused unparsed")), "{p:?}");
    }

    #[test]
    fn a_parts_header_folded_over_and_over_is_refused_unparsed() {
        let p = folded(
            b"From: a@b.example\r\nDate: Mon, 2 Oct 2023 10:00:00 +0000\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain; name=x",
            20_000,
            b"\r\n\r\nhello\r\n--B--\r\n",
        );
        assert!(p.iter().any(|p| p.contains("refused unparsed")), "{p:?}");
    }

    #[test]
    fn ordinary_folding_and_html_comments_are_not_refused() {
        let mut m = b"From: a@b.example\r\nDate: Mon, 2 Oct 2023 10:00:00 +0000\r\nSubject: a\r\n long\r\n subject\r\nContent-Type: text/html\r\n\r\n<!--".to_vec();
        m.extend_from_slice(b"\r\n-->\r\n");
        for _ in 0..20_000 {
            m.extend_from_slice(b"  <p>indented</p>\r\n");
        }
        assert_eq!(oversized_header(&m), None);
    }

    #[test]
    fn a_sound_zip_has_no_ambiguity() {
        assert!(zip_problems(two_members_zip()).is_empty());
    }

    #[test]
    fn a_local_name_other_than_the_central_one_is_a_problem() {
        let mut b = two_members_zip();
        // The first local header's name (offset 30): transcript.json → transcriptXjson.
        assert_eq!(&b[30..45], b"transcript.json");
        b[40] = b'X';
        let p = zip_problems(b);
        assert!(p.iter().any(|x| x.contains("reads two ways")), "{p:?}");
    }

    #[test]
    fn a_member_escaping_the_folder_is_a_problem() {
        let p = zip_problems(zip_of(&[("../../etc/x.json", b"{}")]));
        assert!(p.iter().any(|x| x.contains("outside the archive")), "{p:?}");
    }

    #[test]
    fn overlapping_members_are_a_problem() {
        let b = two_members_zip();
        // A third central entry, under another name, pointing at the first member's local
        // header: two files, one stored range.
        let eocd = b.len() - 22;
        let cd_start = u32::from_le_bytes(b[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
        let cd_len = u32::from_le_bytes(b[eocd + 12..eocd + 16].try_into().unwrap()) as usize;
        let first_len = 46
            + u16::from_le_bytes([b[cd_start + 28], b[cd_start + 29]]) as usize
            + u16::from_le_bytes([b[cd_start + 30], b[cd_start + 31]]) as usize
            + u16::from_le_bytes([b[cd_start + 32], b[cd_start + 33]]) as usize;
        let mut out = b[..cd_start + cd_len].to_vec();
        let mut third = b[cd_start..cd_start + first_len].to_vec();
        // Another name (a duplicate one would be one member to the reader).
        third[46 + 10] = b'X';
        out.extend_from_slice(&third);
        let mut end = b[eocd..].to_vec();
        for at in [8, 10] {
            let n = u16::from_le_bytes([end[at], end[at + 1]]) + 1;
            end[at..at + 2].copy_from_slice(&n.to_le_bytes());
        }
        end[12..16].copy_from_slice(&((cd_len + first_len) as u32).to_le_bytes());
        out.extend_from_slice(&end);
        let p = zip_problems(out);
        assert!(p.iter().any(|x| x.contains("overlaps")), "{p:?}");
    }

    /// A ZIP whose members declare more than [`MAX_INFLATED_BYTES`] in all (a bomb) is not
    /// inflated past the cap: a problem, at once.
    #[test]
    fn a_zip_bomb_is_refused_unread() {
        let mut z = zip_of(&[("a.bin", b"0123456789"), ("b.bin", b"0123456789")]);
        // Each central directory entry now declares 3 GiB uncompressed.
        let mut at = 0;
        while let Some(p) = z[at..].windows(4).position(|w| w == b"PK\x01\x02") {
            let entry = at + p;
            z[entry + 24..entry + 28].copy_from_slice(&(3u32 << 30).to_le_bytes());
            at = entry + 4;
        }
        let info = zip(Cursor::new(z)).unwrap();
        assert!(
            info.problems
                .iter()
                .any(|p| p.contains("declare more than")),
            "{:?}",
            info.problems
        );
    }

    /// An "email" larger than [`MAX_DOCUMENT_BYTES`] (sparse: nothing is written) is refused
    /// without being read.
    #[test]
    fn an_oversized_email_is_refused_unread() {
        let p = std::env::temp_dir().join(format!("custos-big-eml-{}", std::process::id()));
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(MAX_DOCUMENT_BYTES + 1).unwrap();
        let e =
            super::super::inspect_file_as(&p, Some(crate::model::Media::Email), &[]).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
        std::fs::remove_file(&p).unwrap();
    }
}
