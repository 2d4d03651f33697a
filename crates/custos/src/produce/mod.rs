//! `custos produce`: from a sealed export that verifies, a production volume a review platform
//! loads (Relativity, Nuix, Everlaw, Reveal), itself a BagIt bag:
//!
//! ```text
//! VOLUME/data/PFX.dat                         Concordance/Relativity load file (dat.rs)
//! VOLUME/data/PFX.csv                         the same fields as CSV
//! VOLUME/data/PFX_xref.csv                    control number → the export's bag path and SHA-256
//! VOLUME/data/NATIVES/0001/PFX0000001.wav …   the natives, named by control number
//! VOLUME/data/TEXT/0001/PFX0000001.txt …      extracted text (UTF-8 with a byte-order mark)
//! VOLUME/data/NEAR_NATIVES/0001/…             playable copies (near.rs), RSMF of chats (rsmf.rs)
//! VOLUME/data/APPROVALS/0001/…                counsel's approvals of produced Corrupted items
//! VOLUME/data/production_log.jsonl       hash-chained, naming the export's tag manifest and log head
//! ```
//!
//! Every path in the load files is relative to the load files' own folder (`data/`, the volume
//! root), with `\\`; each subfolder holds the files of at most [`FOLDER_DOCUMENTS`] documents.
//!
//! Control numbers are stable: the same export, `--prefix`, `--start` and `--ids` give the same
//! numbers (documents are ordered by conversation start, conversation, recording start and
//! recording). Each native is copied in one pass that computes its MD5, SHA-1 and SHA-256 (the
//! de-duplication keys review platforms use, and the export's own) and refuses a copy whose
//! SHA-256 is not the export's.

pub mod dat;
mod email;
pub mod near;
mod pdf;
pub mod rsmf;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::custody::CustodyLog;
use crate::digest::Sha256;
use crate::durable::{EVIDENCE_MODE, make_dirs, sha256_file, sync_dir, write_sealed};
use crate::verify::files::{self, CALL_FACTS};
use crate::verify::fsys::Bag;
use crate::verify::{Package, Require, VerifyOptions};

/// What `custos produce` is told.
#[derive(Clone, Debug)]
pub struct ProduceOptions {
    /// The sealed export.
    pub export: PathBuf,
    /// The production volume to create (must not exist).
    pub out: PathBuf,
    /// The control-number prefix (`ABC` → `ABC0000001`).
    pub prefix: String,
    /// The first number.
    pub start: u64,
    /// Only these recording ids (one per line), the responsive subset.
    pub ids: Option<PathBuf>,
    /// Check the export's signature with this key first.
    pub pubkey: Option<PathBuf>,
    /// Sign the volume's tag manifest.
    pub sign_key: Option<PathBuf>,
    /// Who produces it (recorded).
    pub operator: Option<String>,
    /// Counsel's public keys: a `Corrupted` item is produced when one of them signed its
    /// approval (`custos approve`), and never otherwise.
    pub approver_keys: Vec<PathBuf>,
    /// The decoder (ffmpeg) that makes playable near-natives; `None`: none are made.
    pub near_natives: Option<PathBuf>,
    /// Whether each chat and messaging thread gets an RSMF near-native (rsmf.rs).
    pub rsmf: bool,
    /// Whom the volume is produced to (the transmittal names them).
    pub produced_to: Option<String>,
    /// The `pdftotext` that extracts the text of PDF attachments; `None`: none is extracted.
    pub pdf_text: Option<PathBuf>,
    /// The confidentiality designation of every document (`CONFIDENTIALITY`, and the
    /// transmittal), e.g. `CONFIDENTIAL - ATTORNEYS' EYES ONLY`; `None`: none designated.
    pub confidentiality: Option<String>,
}

/// What a production came to.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProduceReport {
    /// The volume.
    pub out: PathBuf,
    /// Documents produced.
    pub documents: u64,
    /// First control number.
    pub begdoc: String,
    /// Last control number.
    pub enddoc: String,
    /// Bytes of natives.
    pub bytes: u64,
    /// The source export's tag manifest SHA-256.
    pub source_tag_manifest_sha256: String,
    /// The volume's signature, if signed.
    pub signature: Option<PathBuf>,
    /// RFC 3161 timestamps of the volume's seal (each TSA tried), when asked for.
    pub timestamps: Vec<crate::tsa::Stamp>,
    /// `Corrupted` items produced on counsel's approval.
    pub approved: u64,
    /// Approvals beside the export that no approver key checked (nothing produced for them).
    pub approvals_unchecked: u64,
    /// Playable near-natives made.
    pub near_natives: u64,
    /// The decoder that made them (its `-version` line), or `None` when none were asked for.
    pub decoder: Option<String>,
    /// RSMF near-natives written (chat and messaging threads), when asked for (`None`: not).
    pub rsmf: Option<u64>,
}

/// Why no volume was produced.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// A setting or the selection is wrong; nothing was written.
    #[error("{0}")]
    Config(String),
    /// The export does not verify; nothing was written.
    #[error("the export does not verify, so nothing is produced from it: {0}")]
    NotVerified(String),
    /// Writing the volume failed part-way (remove it and run again).
    #[error("{0}; the volume is incomplete: remove it and run again")]
    Failed(#[from] crate::Error),
}

/// The fields of the load files, in order.
pub const FIELDS: [&str; 51] = [
    "BEGDOC",
    "ENDDOC",
    "NATIVELINK",
    "FILENAME",
    "FILEEXT",
    "FILESIZE",
    "MD5HASH",
    "SHA1HASH",
    "SHA256HASH",
    "CUSTODIAN",
    "PARTICIPANTS",
    "FROM",
    "TO",
    "DIRECTION",
    "DATESENT",
    "START",
    "END",
    "DURATION",
    "QUEUE",
    "SKILL",
    "WRAPUP",
    "DIVISION",
    "CONVERSATIONID",
    "RECORDINGID",
    "MEDIATYPE",
    "CONTENTTYPE",
    "SOURCE_EXPORT_ID",
    "SOURCE_PATH",
    "TEXTPATH",
    "HAS_TEXT",
    "TRANSCRIPT_SOURCE",
    "AGENTID",
    "CUSTOMER_NUMBER",
    "TIMEZONE",
    "NEAR_NATIVE_LINK",
    "NEAR_NATIVE_MD5",
    "NEAR_NATIVE_SHA256",
    "EVIDENCE_STATUS",
    "APPROVED_BY",
    "APPROVAL_REASON",
    "APPROVALPATH",
    "SUBJECT",
    "CC",
    "BCC",
    "MESSAGE_ID",
    "CONFIDENTIALITY",
    "GROUPID",
    "PARENT_ID",
    "BEGATTACH",
    "ENDATTACH",
    "ATTACHIDS",
];

/// Documents a subfolder (`NATIVES/0001`, `TEXT/0001`, …) holds the files of: at most 1,000
/// files a folder, an approval's signature beside its statement included.
pub const FOLDER_DOCUMENTS: usize = 500;

/// The subfolder of the `i`-th document (from 0): `0001`, `0002`, …
fn folder_of(i: usize) -> String {
    format!("{:04}", i / FOLDER_DOCUMENTS + 1)
}

/// The kinds of file a volume holds per document, each in its folder under `data/`.
const KINDS: [&str; 4] = ["NATIVES", "TEXT", "NEAR_NATIVES", "APPROVALS"];

/// Where one document's files go: `data/<KIND>/<folder>/<file>`.
struct Place<'a> {
    data: &'a Path,
    folder: String,
}

impl Place<'_> {
    /// Relative to `data/`, the load files' folder, with `/`.
    fn rel(&self, kind: &str, file: &str) -> String {
        format!("{kind}/{}/{file}", self.folder)
    }

    /// The file's path, its folder made.
    fn path(&self, kind: &str, file: &str) -> crate::Result<PathBuf> {
        let dir = self.data.join(kind).join(&self.folder);
        make_dirs(&dir)?;
        Ok(dir.join(file))
    }

    /// As the load files name it: relative to their folder, with `\`.
    fn link(&self, kind: &str, file: &str) -> String {
        self.rel(kind, file).replace('/', "\\")
    }

    /// As the payload manifest names it.
    fn sealed(&self, kind: &str, file: &str) -> String {
        format!("data/{}", self.rel(kind, file))
    }
}

/// Fills the family fields of `rows` (in control-number order, a conversation's documents
/// together, its first call recording first): a conversation is a family; its first document
/// is the parent (`GROUPID` = its control number, `ATTACHIDS` = the others'), every other
/// document its attachment (`PARENT_ID` = the parent's control number); `BEGATTACH` and
/// `ENDATTACH` span the family, on every document of it (Concordance/Relativity conventions).
/// An orphan recording (`--collect-orphans`: Genesys knows no conversation for it) is a
/// family of one.
fn families(rows: &mut [Vec<String>]) {
    let at = |name: &str| FIELDS.iter().position(|f| *f == name).expect("a field");
    let (conv, control) = (at("CONVERSATIONID"), at("BEGDOC"));
    let mut start = 0;
    while start < rows.len() {
        // An orphan recording (no conversation id) is a family of its own.
        let end = start
            + 1
            + rows[start + 1..]
                .iter()
                .take_while(|r| !r[conv].is_empty() && r[conv] == rows[start][conv])
                .count();
        let parent = rows[start][control].clone();
        let last = rows[end - 1][control].clone();
        let children: Vec<String> = rows[start + 1..end]
            .iter()
            .map(|r| r[control].clone())
            .collect();
        for (i, r) in rows[start..end].iter_mut().enumerate() {
            r.extend([
                parent.clone(),
                if i == 0 {
                    String::new()
                } else {
                    parent.clone()
                },
                parent.clone(),
                last.clone(),
                if i == 0 {
                    children.join("; ")
                } else {
                    String::new()
                },
            ]);
        }
        start = end;
    }
}

/// One recording of the source to produce, with its call facts: an `Exported` one, or a
/// `Corrupted` one with counsel's checked approval.
struct Source {
    row: BTreeMap<String, String>,
    facts: BTreeMap<String, String>,
    approval: Option<crate::verify::ApprovalReport>,
}

impl Source {
    fn get(&self, k: &str) -> &str {
        self.row
            .get(k)
            .or_else(|| self.facts.get(k))
            .map_or("", String::as_str)
    }
}

/// The exported recordings of the verified export `pkg`, and its `Corrupted` ones whose
/// approval an approver key verified, ordered for numbering, `--ids` applied (its files read
/// as sealed).
fn documents(pkg: &Package, ids: Option<&Path>) -> Result<Vec<Source>, ProduceError> {
    let unread = |e: crate::verify::OpenError| ProduceError::NotVerified(e.to_string());
    let facts: BTreeMap<String, BTreeMap<String, String>> = if pkg.holds(CALL_FACTS) {
        pkg.read_csv(CALL_FACTS)
            .map_err(unread)?
            .into_iter()
            .map(|f| (f.get("Recording_ID").cloned().unwrap_or_default(), f))
            .collect()
    } else {
        BTreeMap::new()
    };
    let approved: BTreeMap<&str, &crate::verify::ApprovalReport> = pkg
        .report()
        .approvals
        .iter()
        .filter(|a| a.checked)
        .map(|a| (a.approval.recording_id.as_str(), a))
        .collect();
    let mut docs: Vec<Source> = pkg
        .read_csv(files::CUSTODY_CSV)
        .map_err(unread)?
        .into_iter()
        .filter_map(|row| {
            let id = row.get("Recording_ID").map_or("", String::as_str);
            let approval = match row.get("Outcome").map(String::as_str) {
                Some("Exported") => None,
                // Verification checked the approval names this item, its file and hash.
                Some("Corrupted") => Some((*approved.get(id)?).clone()),
                _ => return None,
            };
            let facts = facts.get(id).cloned().unwrap_or_default();
            Some(Source {
                row,
                facts,
                approval,
            })
        })
        .collect();
    if let Some(list) = ids {
        // The same reader as `export --ids`: a regular file under its cap, one plain id a line.
        let list = crate::ids::IdList::read(list, false)
            .map_err(|e| ProduceError::Config(e.to_string()))?;
        let wanted: BTreeSet<&str> = list.entries.iter().map(|e| e.first.as_str()).collect();
        let have: BTreeSet<&str> = docs.iter().map(|d| d.get("Recording_ID")).collect();
        let unknown: Vec<&&str> = wanted.iter().filter(|w| !have.contains(**w)).collect();
        if !unknown.is_empty() {
            return Err(ProduceError::Config(format!(
                "{}: {} id(s) are not Exported recordings of this export, nor approved Corrupted ones (first: {}); nothing was produced",
                list.file.display(),
                unknown.len(),
                unknown[0]
            )));
        }
        let wanted: BTreeSet<String> = wanted.into_iter().map(str::to_owned).collect();
        docs.retain(|d| wanted.contains(d.get("Recording_ID")));
    }
    // A conversation's documents together, its call recordings first (the family's parent);
    // an orphan recording (no conversation) by when it was made, among the conversations.
    docs.sort_by(|a, b| {
        let key = |d: &Source| {
            let media = d.get("Recording_Media");
            let rank = if media.is_empty() || media == "audio" {
                "0"
            } else {
                "1"
            };
            let start = match d.get("Conversation_ID") {
                "" => d.get("Recording_Start"),
                _ => d.get("Conversation_Start"),
            };
            [
                start,
                d.get("Conversation_ID"),
                rank,
                d.get("Recording_Start"),
                d.get("Recording_ID"),
            ]
            .map(str::to_owned)
        };
        key(a).cmp(&key(b))
    });
    Ok(docs)
}

/// The three digests of one copy, made in one pass, and the SHA-256 of what was read.
struct Copied {
    bytes: u64,
    md5: String,
    sha1: String,
    sha256: Sha256,
    source_sha256: Sha256,
}

/// Copies the export's file `rel` (a regular file inside the bag, no link followed) to `to`,
/// after `prefix` (a byte-order mark, or nothing), hashing as it goes, and makes the copy
/// read-only.
fn copy_native(bag: &Bag, rel: &str, to: &Path, prefix: &[u8]) -> crate::Result<Copied> {
    let (mut from, _) = bag
        .open(rel)
        .map_err(|e| crate::Error::io(bag.path(rel), std::io::Error::other(e.to_string())))?;
    let mut out = crate::durable::create_file(to).map_err(|e| crate::Error::io(to, e))?;
    let mut hashes = crate::digest::Hashes::new();
    let mut source = sha2::Sha256::default();
    let mut buf = vec![0u8; 1 << 16];
    hashes.update(prefix);
    out.write_all(prefix).map_err(|e| crate::Error::io(to, e))?;
    let mut bytes = prefix.len() as u64;
    loop {
        let n = from
            .read(&mut buf)
            .map_err(|e| crate::Error::io(bag.path(rel), e))?;
        if n == 0 {
            break;
        }
        hashes.update(&buf[..n]);
        sha2::Digest::update(&mut source, &buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| crate::Error::io(to, e))?;
        bytes += n as u64;
    }
    out.sync_all().map_err(|e| crate::Error::io(to, e))?;
    drop(out);
    crate::durable::set_mode(to, EVIDENCE_MODE)?;
    let d = hashes.finish();
    Ok(Copied {
        bytes,
        md5: d.md5,
        sha1: d.sha1,
        sha256: d.sha256,
        source_sha256: Sha256::finish(source),
    })
}

fn check_options(o: &ProduceOptions) -> Result<(), ProduceError> {
    let p = &o.prefix;
    if p.is_empty()
        || p.len() > 20
        || !p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ProduceError::Config(format!(
            "--prefix '{p}': 1 to 20 letters, digits, '_' or '-'"
        )));
    }
    if o.start == 0 || o.start > 9_999_999 {
        return Err(ProduceError::Config(
            "--start must be between 1 and 9999999".into(),
        ));
    }
    if crate::package::inside_bag(&o.export, &o.out) {
        return Err(ProduceError::Config(format!(
            "{}: inside the export, which is sealed; write the volume elsewhere",
            o.out.display()
        )));
    }
    if o.out.exists() {
        return Err(ProduceError::Config(format!(
            "{}: exists; a production volume is written once, into a new directory",
            o.out.display()
        )));
    }
    Ok(())
}

/// Produces the volume. Nothing is written unless the export verifies and the options hold.
pub fn produce(o: &ProduceOptions) -> Result<ProduceReport, ProduceError> {
    check_options(o)?;
    // Opened the one verified way; signed by the key when one is given.
    let require = Require::by_key_if_given(o.pubkey.as_deref());
    let opts = VerifyOptions {
        pubkey: o.pubkey.clone(),
        approver_keys: o.approver_keys.clone(),
        ..VerifyOptions::default()
    };
    let pkg = Package::open(&o.export, &opts, require)
        .map_err(|e| ProduceError::NotVerified(e.to_string()))?;
    let docs = documents(&pkg, o.ids.as_deref())?;
    if docs.is_empty() {
        return Err(ProduceError::Config(
            "no Exported recording to produce".into(),
        ));
    }
    let last_number = o.start + docs.len() as u64 - 1;
    if last_number > 9_999_999 {
        return Err(ProduceError::Config(format!(
            "--start {} leaves no room for {} documents under 9999999",
            o.start,
            docs.len()
        )));
    }
    let sign_key = o
        .sign_key
        .as_deref()
        .map(crate::sign::load_secret_key)
        .transpose()?;
    let decoder = o
        .near_natives
        .as_deref()
        .map(near::Decoder::find)
        .transpose()
        .map_err(ProduceError::Config)?;
    let extractor = o
        .pdf_text
        .as_deref()
        .map(pdf::Extractor::find)
        .transpose()
        .map_err(ProduceError::Config)?;
    // Created, not reused: a second run at the same path fails here.
    std::fs::create_dir(&o.out).map_err(|e| {
        ProduceError::Config(format!(
            "{}: {e}; a production volume is written into a new directory",
            o.out.display()
        ))
    })?;
    write_volume(
        o,
        &pkg,
        &docs,
        sign_key.as_ref(),
        decoder.as_ref(),
        extractor,
    )
}

fn write_volume(
    o: &ProduceOptions,
    pkg: &Package,
    docs: &[Source],
    sign_key: Option<&minisign::SecretKey>,
    decoder: Option<&near::Decoder>,
    extractor: Option<pdf::Extractor>,
) -> Result<ProduceReport, ProduceError> {
    let src = |k: &str| pkg.label(k).unwrap_or_default().to_owned();
    let tag_sha = pkg
        .tag_manifest_sha256()
        .map_err(|e| ProduceError::NotVerified(e.to_string()))?;
    let data = o.out.join("data");
    make_dirs(&data)?;
    let log = CustodyLog::open(
        &o.out.join("data/production_log.jsonl"),
        &crate::custody::Actor::here(o.operator.as_deref(), None),
    )?;
    let ids_sha = match &o.ids {
        Some(p) => Some(sha256_file(p)?.0.hex()),
        None => None,
    };
    log.append(
        "production-started",
        json!({
            "sourceExportId": src("Export-Id"), "sourceTagManifestSha256": tag_sha.clone(),
            "sourceCustodyLogHead": src("Custody-Log-Head"),
            "sourceMerkleRoot": src(crate::package::MERKLE_ROOT_LABEL),
            "prefix": o.prefix, "start": o.start, "documents": docs.len(),
            "selection": ids_sha.map_or_else(|| json!("every Exported recording, and every Corrupted one with a checked approval"), |s| json!({"idsFileSha256": s})),
            "approverKeys": o.approver_keys.len(),
            "approvalsUnchecked": pkg.report().approvals.iter().filter(|a| !a.checked).count(),
            "nearNatives": decoder.map_or_else(|| json!("none (--no-near-natives)"), |d| json!({"decoder": d.version, "audio": "PCM WAV", "video": "H.264 MP4", "toleranceSeconds": near::TOLERANCE_S})),
            "rsmf": if o.rsmf { json!({"version": rsmf::VERSION, "of": "chat and messaging threads"}) } else { json!("none") },
            "pdfText": extractor.as_ref().map_or_else(|| json!("none (--no-pdf-text)"), |x| json!({"extractor": x.version})),
        }),
    )?;
    let Written {
        rows,
        xref,
        known,
        total,
        ..
    } = copy_natives(o, pkg, docs, &log, &data, decoder, extractor)?;
    for kind in KINDS {
        let dir = data.join(kind);
        if !dir.exists() {
            continue;
        }
        for e in std::fs::read_dir(&dir).map_err(|e| crate::Error::io(&dir, e))? {
            sync_dir(&e.map_err(|e| crate::Error::io(&dir, e))?.path())?;
        }
        sync_dir(&dir)?;
    }
    let mut rows = rows;
    families(&mut rows);
    let delimiters = write_load_files(o, &data, &rows, &xref)?;
    let begdoc = rows.first().map(|r| r[0].clone()).unwrap_or_default();
    let enddoc = rows.last().map(|r| r[0].clone()).unwrap_or_default();
    let transmittal = transmittal(
        o,
        &rows,
        total,
        &[
            ("matter", src("External-Identifier")),
            ("export", src("Export-Id")),
            ("tag", tag_sha.clone()),
            ("delimiters", delimiters.describe()),
            ("begdoc", begdoc.clone()),
            ("enddoc", enddoc.clone()),
            (
                "decoder",
                decoder.map_or_else(|| "none".into(), |d| d.version.clone()),
            ),
            ("signed", sign_key.is_some().to_string()),
        ],
    );
    write_sealed(&data.join("TRANSMITTAL.txt"), transmittal.as_bytes())?;
    let t = Sha256::of(transmittal.as_bytes());
    log.append(
        "transmittal-written",
        json!({"file": "data/TRANSMITTAL.txt", "sha256": t.hex()}),
    )?;
    let head = log.append(
        "production-sealing",
        json!({"documents": rows.len(), "bytes": total, "begdoc": begdoc, "enddoc": enddoc,
               "loadFileDelimiters": delimiters.describe()}),
    )?;
    let info: Vec<(&str, String)> = vec![
        ("External-Identifier", src("External-Identifier")),
        ("Custos-Package-Type", "production".into()),
        (
            "Bag-Software-Agent",
            format!(
                "custos {} ({})",
                crate::custody::VERSION,
                crate::custody::COMMIT
            ),
        ),
        ("Production-Prefix", o.prefix.clone()),
        ("Production-Begdoc", begdoc.clone()),
        ("Production-Enddoc", enddoc.clone()),
        ("Production-Documents", rows.len().to_string()),
        ("Source-Export-Id", src("Export-Id")),
        ("Source-Tag-Manifest-SHA256", tag_sha.clone()),
        ("Source-Custody-Log-Head", src("Custody-Log-Head")),
        ("Production-Log-Head", head.clone()),
        ("Load-File-Delimiters", delimiters.describe()),
        (
            "Near-Natives",
            match (decoder, o.rsmf) {
                (None, false) => "none".to_owned(),
                (dec, rsmf) => {
                    let mut made = Vec::new();
                    if let Some(d) = dec {
                        made.push(format!(
                            "audio as PCM WAV, video as H.264 MP4, by {}",
                            d.version
                        ));
                    }
                    if rsmf {
                        made.push(format!(
                            "chat and messaging threads as RSMF {}",
                            rsmf::VERSION
                        ));
                    }
                    format!(
                        "derived copies, not evidence of record: {}",
                        made.join("; ")
                    )
                }
            },
        ),
    ];
    let today = time::OffsetDateTime::now_utc().date().to_string();
    crate::package::write_bag(
        &o.out,
        &|rel| Ok(known.get(rel).copied()),
        &info,
        &today,
        &|| Ok(Vec::new()),
    )?;
    let signature = match sign_key {
        Some(sk) => Some(crate::sign::sign_bag(
            &o.out,
            sk,
            &format!(
                "custos production {}..{} of export {} (tagmanifest-sha256 {}) custody-log-head:{head}",
                begdoc,
                enddoc,
                src("Export-Id"),
                tag_sha.clone()
            ),
        )?),
        None => None,
    };
    sync_dir(&o.out)?;
    Ok(ProduceReport {
        out: o.out.clone(),
        documents: rows.len() as u64,
        begdoc,
        enddoc,
        bytes: total,
        source_tag_manifest_sha256: tag_sha.clone(),
        signature,
        timestamps: Vec::new(),
        approved: docs.iter().filter(|d| d.approval.is_some()).count() as u64,
        approvals_unchecked: pkg.report().approvals.iter().filter(|a| !a.checked).count() as u64,
        near_natives: rows
            .iter()
            .filter(|r| !r[near_at()].is_empty() && !is_rsmf(&r[near_at()]))
            .count() as u64,
        decoder: decoder.map(|d| d.version.clone()),
        rsmf: o
            .rsmf
            .then(|| rows.iter().filter(|r| is_rsmf(&r[near_at()])).count() as u64),
    })
}

/// The `n`-th document's control number (from 0), or an error when it would pass 9999999.
fn control_number(o: &ProduceOptions, n: usize) -> Result<String, ProduceError> {
    let number = o.start + n as u64;
    if number > 9_999_999 {
        return Err(crate::Error::Config(format!(
            "--start {} leaves no room under 9999999 for every document (emails' attachments and messages included)",
            o.start
        ))
        .into());
    }
    Ok(format!("{}{number:07}", o.prefix))
}

/// What the volume's files came to: the load-file rows and cross-reference rows (one per
/// document, in control-number order), the payload's known hashes, the natives' bytes.
#[derive(Default)]
struct Written {
    rows: Vec<Vec<String>>,
    xref: Vec<Vec<String>>,
    known: BTreeMap<String, (Sha256, u64)>,
    total: u64,
    /// What extracts the text of PDF attachments (`None`: `--no-pdf-text`).
    pdf: Option<pdf::Extractor>,
}

/// Every document's native copied under its control number (checked against the export's
/// digests, each copy logged), an email's attachments and later messages after it.
fn copy_natives(
    o: &ProduceOptions,
    pkg: &Package,
    docs: &[Source],
    log: &CustodyLog,
    data: &Path,
    decoder: Option<&near::Decoder>,
    extractor: Option<pdf::Extractor>,
) -> Result<Written, ProduceError> {
    let export_id = pkg.label("Export-Id").unwrap_or_default();
    let bag = Bag::new(&o.export);
    let mut w = Written {
        pdf: extractor,
        ..Written::default()
    };
    let texts = texts_of(pkg, docs)?;
    let mut n = 0usize;
    for (i, d) in docs.iter().enumerate() {
        let control = control_number(o, n)?;
        let i_doc = n;
        n += 1;
        let place = Place {
            data,
            folder: folder_of(i_doc),
        };
        let rel = d.get("File_Name");
        let ext = match &d.approval {
            // Kept as `.bin`: named by what its first bytes are.
            Some(_) => {
                let mut head = Vec::with_capacity(16);
                if let Ok((f, _)) = bag.open(rel) {
                    let _ = f.take(16).read_to_end(&mut head);
                }
                crate::media::extension_of(&head)
                    .unwrap_or("bin")
                    .to_owned()
            }
            None => Path::new(rel)
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("bin")
                .to_ascii_lowercase(),
        };
        let name = format!("{control}.{ext}");
        let c = copy_native(&bag, rel, &place.path("NATIVES", &name)?, b"")?;
        // MD5 and SHA-1 recorded at download (exports since they were) must agree too.
        let recorded = [
            ("MD5", d.get("MD5_Hash"), &c.md5),
            ("SHA-1", d.get("SHA1_Hash"), &c.sha1),
        ];
        if let Some((alg, want, got)) = recorded
            .iter()
            .find(|(_, want, got)| !want.is_empty() && want != got)
        {
            return Err(crate::Error::Tampered {
                path: bag.path(rel),
                message: format!("read as {alg} {got}, the export recorded {want} at download"),
            }
            .into());
        }
        if c.sha256.hex() != d.get("SHA256_Hash") {
            return Err(crate::Error::Tampered {
                path: bag.path(rel),
                message: format!(
                    "read as SHA-256 {}, the export records {}",
                    c.sha256.hex(),
                    d.get("SHA256_Hash")
                ),
            }
            .into());
        }
        log.append(
            "native-copied",
            json!({"control": control, "source": rel, "native": place.rel("NATIVES", &name), "bytes": c.bytes, "sha256": c.sha256.hex(), "md5": c.md5, "sha1": c.sha1}),
        )?;
        let known = &mut w.known;
        known.insert(place.sealed("NATIVES", &name), (c.sha256, c.bytes));
        w.total += c.bytes;
        let mut row = fields(
            d,
            &control,
            &place.link("NATIVES", &name),
            &ext,
            &c,
            export_id,
        );
        let (text, source) = match &texts[i] {
            Some(t) => (
                copy_text(pkg, &bag, t, &control, &place, log, known)?,
                t.source.clone(),
            ),
            None => (String::new(), String::new()),
        };
        let has_text = if text.is_empty() { "N" } else { "Y" };
        row.extend([
            text,
            has_text.to_owned(),
            source,
            d.get("Agent_IDs").to_owned(),
            customer_number(d.get("Direction"), d.get("ANI"), d.get("DNIS")),
            // Every date and time of the load file is UTC (`YYYY-MM-DD HH:MM:SS`).
            "UTC".to_owned(),
        ]);
        let thread = matches!(d.get("Recording_Media"), "chat" | "messaging");
        row.extend(match decoder {
            _ if thread && o.rsmf => rsmf_near_native(pkg, &place, &name, &control, d, log, known)?,
            Some(dec) => near_native(dec, &place, &name, &control, d, log, known)?,
            None => Default::default(),
        });
        row.extend(match &d.approval {
            None => [
                "Exported".to_owned(),
                String::new(),
                String::new(),
                String::new(),
            ],
            Some(a) => {
                let path = copy_approval(&bag, a, &control, &place, log, known)?;
                [
                    "Corrupted; produced on counsel's approval".to_owned(),
                    a.approval.approved_by.clone(),
                    a.approval.reason.clone(),
                    path,
                ]
            }
        });
        // An email's subject, copies, date and id from its own header (FROM and TO stay the
        // conversation's addresses, as for every document of it).
        let head = match d.get("Recording_Media") {
            "email" => email::headers(pkg, rel)?,
            _ => None,
        };
        if let Some(sent) = head.as_ref().and_then(|h| email::load_date(&h.date)) {
            let at = |name: &str| FIELDS.iter().position(|f| *f == name).expect("a field");
            row[at("DATESENT")] = sent;
        }
        let h = head.unwrap_or_default();
        row.extend([
            h.subject,
            h.cc,
            h.bcc,
            h.message_id,
            o.confidentiality.clone().unwrap_or_default(),
        ]);
        w.xref.push(vec![
            control.clone(),
            rel.to_owned(),
            d.get("SHA256_Hash").to_owned(),
            d.get("Recording_ID").to_owned(),
            d.get("Conversation_ID").to_owned(),
        ]);
        w.rows.push(row.clone());
        // An email's attachments and its thread's later messages, each a document after it.
        let children = if d.get("Recording_Media") == "email" && d.approval.is_none() {
            let rid = d.get("Recording_ID");
            let meta = format!("data/metadata/{rid}.json");
            if crate::model::safe_id(rid) {
                email::children(pkg, rel, &meta)?
            } else {
                Vec::new()
            }
        } else {
            Vec::new()
        };
        for child in children {
            let control = control_number(o, n)?;
            let place = Place {
                data,
                folder: folder_of(n),
            };
            n += 1;
            email_child(&child, d, &row, &control, &place, log, &mut w)?;
        }
    }
    Ok(w)
}

/// Writes one child document of the email `d` (whose load-file row so far is `parent`): its
/// native (and text), its row (the email's facts, with its own file, hashes, type, source and
/// text) and cross-reference row.
fn email_child(
    child: &email::Child,
    d: &Source,
    parent: &[String],
    control: &str,
    place: &Place,
    log: &CustodyLog,
    w: &mut Written,
) -> Result<(), ProduceError> {
    let at = |name: &str| FIELDS.iter().position(|f| *f == name).expect("a field");
    let rid = d.get("Recording_ID");
    let cid = d.get("Conversation_ID");
    let rel = d.get("File_Name");
    let meta_rel = format!("data/metadata/{rid}.json");
    let mut row = parent.to_vec();
    /// What one child document is made of.
    struct Made {
        file_name: String,
        ext: String,
        bytes: Vec<u8>,
        media: &'static str,
        kind: String,
        source: String,
        text: Option<Vec<u8>>,
    }
    // What made an attachment's text, when something did (a PDF's extractor, or why not).
    let mut text_source = String::new();
    let made = match child {
        email::Child::Attachment(i, a) => Made {
            file_name: a.name.clone(),
            ext: email::extension(&a.name),
            bytes: a.body.clone(),
            media: "email attachment",
            kind: a.kind.clone(),
            source: format!("{rel}#attachment-{i}"),
            text: match (&w.pdf, a.kind.as_str()) {
                (Some(x), "application/pdf") => match x.text(&a.body) {
                    Ok(t) => {
                        text_source = format!("text extracted from the PDF by {}", x.version);
                        Some(t)
                    }
                    Err(why) => {
                        text_source = format!("no text: {why}");
                        None
                    }
                },
                _ => a
                    .kind
                    .starts_with("text/")
                    .then(|| a.body.clone())
                    .filter(|b| std::str::from_utf8(b).is_ok()),
            },
        },
        email::Child::Message { k, of, message } => {
            let text = email::render(rid, cid, &meta_rel, *k, *of, message).into_bytes();
            row[at("FROM")] = email::party(&message["from"]);
            row[at("TO")] = email::parties(&message["to"]);
            row[at("CC")] = email::parties(&message["cc"]);
            row[at("BCC")] = email::parties(&message["bcc"]);
            row[at("SUBJECT")] = email::one_line(message["subject"].as_str().unwrap_or(""));
            // Genesys keeps no RFC 5322 Message-ID for a later message of the thread.
            row[at("MESSAGE_ID")] = String::new();
            row[at("DATESENT")] = load_date(message["time"].as_str().unwrap_or(""));
            row[at("START")] = load_date(message["time"].as_str().unwrap_or(""));
            row[at("END")] = String::new();
            row[at("DURATION")] = String::new();
            Made {
                file_name: format!("{rid} message {} of {of}.txt", k + 1),
                ext: "txt".to_owned(),
                bytes: text.clone(),
                media: "email message",
                kind: "text/plain; charset=utf-8".to_owned(),
                source: format!("{meta_rel}#/emailTranscript/{k}"),
                text: Some(text),
            }
        }
    };
    let Made {
        file_name,
        ext,
        bytes,
        media,
        kind,
        source,
        text,
    } = made;
    let name = format!("{control}.{ext}");
    let path = place.path("NATIVES", &name)?;
    let mut hashes = crate::digest::Hashes::new();
    hashes.update(&bytes);
    let h = hashes.finish();
    crate::durable::write_sealed(&path, &bytes)?;
    let sealed = place.sealed("NATIVES", &name);
    w.known.insert(sealed, (h.sha256, bytes.len() as u64));
    w.total += bytes.len() as u64;
    log.append(
        "native-copied",
        json!({"control": control, "source": source, "native": place.rel("NATIVES", &name),
               "bytes": bytes.len(), "sha256": h.sha256.hex(), "md5": h.md5, "sha1": h.sha1,
               "derived": media}),
    )?;
    let text_link = match text {
        Some(t) => {
            let tname = format!("{control}.txt");
            let tpath = place.path("TEXT", &tname)?;
            let mut with_bom = dat::BOM.as_bytes().to_vec();
            with_bom.extend_from_slice(&t);
            crate::durable::write_sealed(&tpath, &with_bom)?;
            w.known.insert(
                place.sealed("TEXT", &tname),
                (Sha256::of(&with_bom), with_bom.len() as u64),
            );
            place.link("TEXT", &tname)
        }
        None => String::new(),
    };
    for (field, value) in [
        ("BEGDOC", control.to_owned()),
        ("ENDDOC", control.to_owned()),
        ("NATIVELINK", place.link("NATIVES", &name)),
        ("FILENAME", file_name),
        ("FILEEXT", ext),
        ("FILESIZE", bytes.len().to_string()),
        ("MD5HASH", h.md5.clone()),
        ("SHA1HASH", h.sha1.clone()),
        ("SHA256HASH", h.sha256.hex()),
        ("MEDIATYPE", media.to_owned()),
        ("CONTENTTYPE", kind),
        ("SOURCE_PATH", source.clone()),
        ("HAS_TEXT", if text_link.is_empty() { "N" } else { "Y" }.to_owned()),
        ("TEXTPATH", text_link),
        (
            "TRANSCRIPT_SOURCE",
            match child {
                email::Child::Attachment(..) => text_source,
                email::Child::Message { .. } => "rendering of one message of the thread from the recording's metadata as received (not a native)".into(),
            },
        ),
        ("NEAR_NATIVE_LINK", String::new()),
        ("NEAR_NATIVE_MD5", String::new()),
        ("NEAR_NATIVE_SHA256", String::new()),
        (
            "EVIDENCE_STATUS",
            match child {
                email::Child::Attachment(..) => "Exported (an attachment of the exported message, decoded)".into(),
                email::Child::Message { .. } => "Rendered from the exported metadata".into(),
            },
        ),
    ] {
        row[at(field)] = value;
    }
    w.xref.push(vec![
        control.to_owned(),
        source,
        h.sha256.hex(),
        rid.to_owned(),
        cid.to_owned(),
    ]);
    w.rows.push(row);
    Ok(())
}

/// The production transmittal (`data/TRANSMITTAL.txt`): what the volume holds, for whom, its
/// numbering range, where it came from, and how to check it; drawn from the rows written.
fn transmittal(
    o: &ProduceOptions,
    rows: &[Vec<String>],
    bytes: u64,
    f: &[(&str, String)],
) -> String {
    let get = |k: &str| {
        f.iter()
            .find(|(n, _)| *n == k)
            .map_or("", |(_, v)| v.as_str())
    };
    let at = |name: &str| FIELDS.iter().position(|x| *x == name).expect("a field");
    let mut by_media: BTreeMap<&str, u64> = BTreeMap::new();
    // Each agent a document names (`; `-separated) counts it once; a document naming none is
    // counted as such, so the counts account for every document.
    let mut by_custodian: BTreeMap<&str, u64> = BTreeMap::new();
    for r in rows {
        *by_media.entry(r[at("MEDIATYPE")].as_str()).or_default() += 1;
        let named: BTreeSet<&str> = r[at("CUSTODIAN")]
            .split("; ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        if named.is_empty() {
            *by_custodian.entry("(no agent named)").or_default() += 1;
        }
        for c in named {
            *by_custodian.entry(c).or_default() += 1;
        }
    }
    let count = |field: &str, pred: &dyn Fn(&str) -> bool| {
        rows.iter().filter(|r| pred(&r[at(field)])).count()
    };
    let families = count("PARENT_ID", &|v| v.is_empty());
    format!(
        "PRODUCTION TRANSMITTAL\r\n\r\n\
         Matter: {matter}\r\n\
         Produced to: {to}\r\n\
         Produced by: {by}, with custos {version} ({commit})\r\n\
         Date (UTC): {date}\r\n\
         Volume: {volume}\r\n\
         Numbering: {begdoc} through {enddoc} ({n} documents, {families} families; prefix {prefix})\r\n\r\n\
         Documents by type: {by_media}\r\n\
         Documents by custodian (CUSTODIAN; a document naming two agents counts for each): {by_custodian}\r\n\
         Natives: {n} files, {bytes} bytes (data/NATIVES): {copied} the source export's files, copied unchanged; {derived} derived from them (email attachments decoded, later thread messages rendered)\r\n\
         Extracted text: {texts} documents (data/TEXT, UTF-8 with a byte-order mark); machine transcriptions are marked in TRANSCRIPT_SOURCE\r\n\
         Playable near-natives: {near} (data/NEAR_NATIVES; derived copies, made by {decoder})\r\n\
         Chat and messaging threads in RSMF {rsmf_version}: {rsmf} of {threads} (data/NEAR_NATIVES, NEAR_NATIVE_LINK; derived from each thread's metadata as received and its native's media; the production log's rsmf-not-made says why a thread has none)\r\n\
         Corrupted items produced on counsel's approval: {approved} (EVIDENCE_STATUS; statements in data/APPROVALS)\r\n\
         Confidentiality: {confidentiality}\r\n\
         Email attachments and later thread messages as their own documents: {attachments} and {messages}\r\n\r\n\
         Load files: data/{prefix}.dat (Concordance; delimiters {delimiters}), data/{prefix}.csv (the same fields), data/{prefix}_xref.csv (each document's source in the export and SHA-256). Paths are relative to data/. Dates are UTC (TIMEZONE). No page images, so no Opticon file.\r\n\r\n\
         Source: custos export {export}, whose tag manifest has SHA-256 {tag}; verified before production.\r\n\
         Integrity: the volume is a BagIt bag (bagit.py --validate); its production log (data/production_log.jsonl) is hash-chained; {signed}\r\n",
        matter = get("matter"),
        to = o
            .produced_to
            .as_deref()
            .unwrap_or("(not stated: --produced-to)"),
        by = o
            .operator
            .as_deref()
            .unwrap_or("(no operator named: --operator)"),
        version = crate::custody::VERSION,
        commit = crate::custody::COMMIT,
        date = crate::query::format_ms(time::OffsetDateTime::now_utc()),
        volume = o
            .out
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        begdoc = get("begdoc"),
        enddoc = get("enddoc"),
        n = rows.len(),
        prefix = o.prefix,
        by_media = by_media
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        by_custodian = by_custodian
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        texts = count("HAS_TEXT", &|v| v == "Y"),
        near = count("NEAR_NATIVE_LINK", &|v| !v.is_empty() && !is_rsmf(v)),
        rsmf = count("NEAR_NATIVE_LINK", &is_rsmf),
        threads = count("MEDIATYPE", &|v| matches!(v, "chat" | "messaging")),
        rsmf_version = rsmf::VERSION,
        decoder = get("decoder"),
        approved = count("APPROVED_BY", &|v| !v.is_empty()),
        confidentiality = match &o.confidentiality {
            Some(c) => format!("every document is designated \"{c}\" (CONFIDENTIALITY)"),
            None => "no designation was given (--confidentiality)".to_owned(),
        },
        attachments = count("MEDIATYPE", &|v| v == "email attachment"),
        copied = count("MEDIATYPE", &|v| !v.starts_with("email ")),
        derived = count("MEDIATYPE", &|v| v.starts_with("email ")),
        messages = count("MEDIATYPE", &|v| v == "email message"),
        delimiters = get("delimiters"),
        export = get("export"),
        tag = get("tag"),
        signed = if get("signed") == "true" {
            "its tag manifest is signed (tagmanifest-sha256.txt.minisig; minisign -V with the producer's public key)"
        } else {
            "NOT SIGNED: nothing proves who produced it"
        },
    )
}

/// The position of `NEAR_NATIVE_LINK` in [`FIELDS`].
fn near_at() -> usize {
    FIELDS
        .iter()
        .position(|f| *f == "NEAR_NATIVE_LINK")
        .expect("a field")
}

/// A playable copy of the native `name` (at `place`), when a review platform cannot play it:
/// its NEAR_NATIVE_LINK, MD5 and SHA-256, or three empty fields. A native that does not decode
/// stops the production, unless it is an approved Corrupted item (damaged by definition),
/// whose failure is logged and leaves it without a copy.
fn near_native(
    dec: &near::Decoder,
    place: &Place,
    name: &str,
    control: &str,
    d: &Source,
    log: &CustodyLog,
    known: &mut BTreeMap<String, (Sha256, u64)>,
) -> Result<[String; 3], ProduceError> {
    let native = place.path("NATIVES", name)?;
    let Ok(crate::media::Inspection::Media(info)) = crate::media::inspect_file(&native, &[]) else {
        return Ok(Default::default());
    };
    let Some(kind) = near::needed(&info) else {
        return Ok(Default::default());
    };
    let file = format!("{control}.{}", kind.ext());
    let path = place.path("NEAR_NATIVES", &file)?;
    let out = place.rel("NEAR_NATIVES", &file);
    let made = near::make(
        dec,
        place.data,
        &place.rel("NATIVES", name),
        &out,
        kind,
        info.seconds(),
    );
    let (args, copy) = match made {
        Ok(m) => m,
        Err(why) if d.approval.is_some() => {
            log.append(
                "near-native-not-made",
                json!({"control": control, "why": why}),
            )?;
            return Ok(Default::default());
        }
        Err(why) => return Err(crate::Error::Config(why).into()),
    };
    let mut f = std::fs::File::open(&path).map_err(|e| crate::Error::io(&path, e))?;
    let mut hashes = crate::digest::Hashes::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| crate::Error::io(&path, e))?;
        if n == 0 {
            break;
        }
        hashes.update(&buf[..n]);
        bytes += n as u64;
    }
    let h = hashes.finish();
    log.append(
        "near-native-made",
        json!({"control": control, "native": place.rel("NATIVES", name), "nearNative": out,
               "bytes": bytes, "sha256": h.sha256.hex(), "md5": h.md5,
               "decoder": dec.version, "arguments": args,
               "nativeSeconds": info.seconds(), "nearNativeSeconds": copy.seconds()}),
    )?;
    known.insert(place.sealed("NEAR_NATIVES", &file), (h.sha256, bytes));
    Ok([place.link("NEAR_NATIVES", &file), h.md5, h.sha256.hex()])
}

/// Whether a NEAR_NATIVE_LINK names an RSMF rendering.
fn is_rsmf(link: &str) -> bool {
    link.ends_with(".rsmf")
}

/// The RSMF rendering of a chat or messaging document (its native at `place`/`name`), from its
/// sealed metadata as received and the media of the volume's copy of the native: its
/// NEAR_NATIVE_LINK, MD5 and SHA-256, or three empty fields when its metadata holds no thread.
fn rsmf_near_native(
    pkg: &Package,
    place: &Place,
    name: &str,
    control: &str,
    d: &Source,
    log: &CustodyLog,
    known: &mut BTreeMap<String, (Sha256, u64)>,
) -> Result<[String; 3], ProduceError> {
    // A thread left without one is logged with why: the transmittal counts it as such.
    let not_made = |why: &str| -> Result<[String; 3], ProduceError> {
        log.append("rsmf-not-made", json!({"control": control, "why": why}))?;
        Ok(Default::default())
    };
    let rid = d.get("Recording_ID");
    if !crate::model::safe_id(rid) {
        return not_made(
            "its recording id is not safe as a file name, so no metadata is read for it",
        );
    }
    let meta_rel = format!("data/metadata/{rid}.json");
    let meta = sealed_json(pkg, &meta_rel)?;
    let generator = format!(
        "custos {} ({})",
        crate::custody::VERSION,
        crate::custody::COMMIT
    );
    let made = match rsmf::build(&meta, &place.path("NATIVES", name)?, &generator) {
        None => {
            return not_made(&format!(
                "{meta_rel} is not JSON holding a `transcript` or `messagingTranscript` list"
            ));
        }
        Some(Ok(r)) => r,
        Some(Err(why)) => {
            return Err(crate::Error::Config(format!(
                "{control}: no RSMF could be written: {why}"
            ))
            .into());
        }
    };
    let file = format!("{control}.rsmf");
    write_sealed(&place.path("NEAR_NATIVES", &file)?, &made.bytes)?;
    let mut hashes = crate::digest::Hashes::new();
    hashes.update(&made.bytes);
    let h = hashes.finish();
    let bytes = made.bytes.len() as u64;
    log.append(
        "rsmf-made",
        json!({"control": control, "native": place.rel("NATIVES", name), "metadata": meta_rel,
               "rsmf": place.rel("NEAR_NATIVES", &file), "version": rsmf::VERSION,
               "events": made.events, "media": made.attachments,
               "mediaNotInNative": made.media_missing,
               "bytes": bytes, "sha256": h.sha256.hex(), "md5": h.md5}),
    )?;
    known.insert(place.sealed("NEAR_NATIVES", &file), (h.sha256, bytes));
    Ok([place.link("NEAR_NATIVES", &file), h.md5, h.sha256.hex()])
}

/// Copies counsel's signed approval of a `Corrupted` document (statement and signature) to
/// `data/APPROVALS/<folder>/<control>.json` and `.json.minisig`, so the volume carries the proof; its
/// APPROVALPATH.
fn copy_approval(
    bag: &Bag,
    a: &crate::verify::ApprovalReport,
    control: &str,
    place: &Place,
    log: &CustodyLog,
    known: &mut BTreeMap<String, (Sha256, u64)>,
) -> Result<String, ProduceError> {
    let name = format!("{control}.json");
    let to = place.path("APPROVALS", &name)?;
    let statement = copy_native(bag, &a.file, &to, b"")?;
    // The copy states what verification checked, or the statement changed since.
    let copied = std::fs::read(&to).map_err(|e| crate::Error::io(&to, e))?;
    if crate::approve::parse(&copied).as_ref() != Ok(&a.approval) {
        return Err(crate::Error::Tampered {
            path: bag.path(&a.file),
            message: "changed since it was verified".into(),
        }
        .into());
    }
    let sig = copy_native(
        bag,
        &format!("{}.minisig", a.file),
        &place.path("APPROVALS", &format!("{name}.minisig"))?,
        b"",
    )?;
    log.append(
        "approval-honoured",
        json!({"control": control, "recordingId": a.approval.recording_id,
               "approvedBy": a.approval.approved_by, "approvedAt": a.approval.approved_at,
               "statementSha256": statement.sha256.hex(), "signatureSha256": sig.sha256.hex()}),
    )?;
    known.insert(
        place.sealed("APPROVALS", &name),
        (statement.sha256, statement.bytes),
    );
    known.insert(
        place.sealed("APPROVALS", &format!("{name}.minisig")),
        (sig.sha256, sig.bytes),
    );
    Ok(place.link("APPROVALS", &name))
}

/// The sealed JSON file `rel` of the verified export, read through its one reader (checked
/// against the SHA-256 it was sealed with): `Null` when the package does not hold it or it is
/// not JSON; an error when it changed since it was verified.
fn sealed_json(pkg: &Package, rel: &str) -> Result<serde_json::Value, ProduceError> {
    Ok(pkg
        .read_if_held(rel, 64 << 20)
        .map_err(|e| ProduceError::NotVerified(e.to_string()))?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default())
}

/// A document's extracted text in the export, and what made it.
#[derive(Clone, Debug)]
struct Text {
    /// `data/transcripts/<conversation>/<communication>.txt`.
    rel: String,
    /// TRANSCRIPT_SOURCE: a machine transcription (and by which engine), or a rendering of a
    /// thread's messages.
    source: String,
}

/// Epoch milliseconds of an RFC 3339 time.
fn epoch_ms(t: &serde_json::Value) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(t.as_str()?, &time::format_description::well_known::Rfc3339)
            .ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Each document's extracted text, where the export holds one: a chat, email or messaging
/// thread's rendering is its own; a voice communication's transcript (`export --transcripts`)
/// belongs to the one recording of that communication whose span overlaps the transcript's
/// most (ties: the earlier recording), never to every recording of it: a second recording of
/// the same communication does not hold those words. A screen recording has none.
fn texts_of(pkg: &Package, docs: &[Source]) -> Result<Vec<Option<Text>>, ProduceError> {
    let mut out: Vec<Option<Text>> = vec![None; docs.len()];
    // (conversation, communication) → the best recording's rank, index and text.
    // Overlap, then the earlier start, then the earlier document: the larger wins.
    type Rank = (i64, i64, i64);
    let mut best: BTreeMap<(String, String), (Rank, usize, Text)> = BTreeMap::new();
    for (i, d) in docs.iter().enumerate() {
        let rid = d.get("Recording_ID");
        let cid = d.get("Conversation_ID");
        if !crate::model::safe_id(cid) || !crate::model::safe_id(rid) {
            continue;
        }
        let meta = sealed_json(pkg, &format!("data/metadata/{rid}.json"))?;
        let Some(session) = meta["sessionId"]
            .as_str()
            .filter(|s| crate::model::safe_id(s))
        else {
            continue;
        };
        if meta["media"] == "screen" {
            // A screen recording shares its call's communication, whose transcript is the
            // call's text, not the video's.
            continue;
        }
        let rel = format!("data/transcripts/{cid}/{session}.txt");
        if !pkg.holds(&rel) {
            continue;
        }
        if matches!(meta["media"].as_str(), Some("chat" | "email" | "messaging")) {
            out[i] = Some(Text {
                rel,
                source: "rendering of the thread's messages as received (not a transcription)"
                    .into(),
            });
            continue;
        }
        let doc = sealed_json(pkg, &format!("data/transcripts/{cid}/{session}.json"))?;
        let first = &doc["transcripts"][0];
        let source = format!(
            "machine transcription: Genesys Speech & Text Analytics ({}, {}), not reviewed by a person",
            crate::shown::text(
                first["engineProvider"]
                    .as_str()
                    .unwrap_or("engine not stated")
            ),
            crate::shown::text(first["language"].as_str().unwrap_or("language not stated"))
        );
        let (r0, r1) = (epoch_ms(&meta["startTime"]), epoch_ms(&meta["endTime"]));
        let t0 = doc["startTime"].as_i64();
        let t1 = t0
            .zip(doc["duration"]["milliseconds"].as_i64())
            .map(|(a, b)| a + b);
        let overlap = match (r0, r1, t0, t1) {
            (Some(r0), Some(r1), Some(t0), Some(t1)) => r1.min(t1) - r0.max(t0),
            _ => 0,
        };
        let rank = (overlap, -r0.unwrap_or(0), -(i as i64));
        let key = (cid.to_owned(), session.to_owned());
        // The recording that holds it all may not be produced (not Exported, or not selected):
        // then the text goes with this one, marked as the whole communication's.
        let source = match t0.zip(t1) {
            Some((t0, t1)) if overlap < t1 - t0 - 1000 => format!(
                "{source}; the whole communication's transcript ({:.1} s), of which this recording holds {:.1} s",
                (t1 - t0) as f64 / 1000.0,
                overlap.max(0) as f64 / 1000.0
            ),
            _ => source,
        };
        if best.get(&key).is_none_or(|(r, _, _)| rank > *r) {
            best.insert(key, (rank, i, Text { rel, source }));
        }
    }
    for (_, i, text) in best.into_values() {
        out[i] = Some(text);
    }
    Ok(out)
}

/// Copies a document's extracted text (`t`) to `data/TEXT/<folder>/<control>.txt` with a
/// UTF-8 byte-order mark in front (review platforms tell a text file's encoding by it). Its
/// TEXTPATH.
fn copy_text(
    pkg: &Package,
    bag: &Bag,
    t: &Text,
    control: &str,
    place: &Place,
    log: &CustodyLog,
    known: &mut BTreeMap<String, (Sha256, u64)>,
) -> Result<String, ProduceError> {
    let rel = t.rel.clone();
    let name = format!("{control}.txt");
    let mut head = [0u8; 3];
    let has_bom = bag
        .open(&rel)
        .ok()
        .and_then(|(mut f, _)| f.read_exact(&mut head).ok())
        .is_some_and(|()| head == *dat::BOM.as_bytes());
    let bom: &[u8] = if has_bom { b"" } else { dat::BOM.as_bytes() };
    let c = copy_native(bag, &rel, &place.path("TEXT", &name)?, bom)?;
    // What was copied is what was sealed (the text is copied after a BOM, so the copy's own
    // hash differs; the bytes read must not).
    if pkg.sealed_sha256(&rel) != Some(c.source_sha256.hex().as_str()) {
        return Err(crate::Error::Tampered {
            path: bag.path(&rel),
            message: format!(
                "read as SHA-256 {}, sealed as {}",
                c.source_sha256.hex(),
                pkg.sealed_sha256(&rel).unwrap_or("(not sealed)")
            ),
        }
        .into());
    }
    log.append(
        "text-copied",
        json!({"control": control, "source": rel, "sourceSha256": c.source_sha256.hex(),
               "text": place.rel("TEXT", &name), "bytes": c.bytes, "sha256": c.sha256.hex(),
               "byteOrderMarkAdded": !bom.is_empty()}),
    )?;
    known.insert(place.sealed("TEXT", &name), (c.sha256, c.bytes));
    Ok(place.link("TEXT", &name))
}

/// The customer's number whatever the call's direction (inbound: who called, the ANI;
/// outbound: who was called, the DNIS), without its URI scheme (`tel:+15550100` → `+15550100`,
/// `sip:+15550100@host` → `+15550100`).
fn customer_number(direction: &str, ani: &str, dnis: &str) -> String {
    let n = if direction == "outbound" { dnis } else { ani };
    if let Some(sip) = n.strip_prefix("sip:") {
        return sip.split('@').next().unwrap_or("").to_owned();
    }
    n.strip_prefix("tel:").unwrap_or(n).to_owned()
}

/// One document's load-file fields, in [`FIELDS`] order, up to `TEXTPATH`.
fn fields(
    d: &Source,
    control: &str,
    link: &str,
    ext: &str,
    c: &Copied,
    export_id: &str,
) -> Vec<String> {
    let g = |k: &str| d.get(k).to_owned();
    let file_name = Path::new(d.get("File_Name"))
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_owned();
    vec![
        control.to_owned(),
        control.to_owned(),
        link.to_owned(),
        file_name,
        ext.to_owned(),
        c.bytes.to_string(),
        c.md5.clone(),
        c.sha1.clone(),
        c.sha256.hex(),
        g("Agent_Names"),
        g("Participants"),
        g("ANI"),
        g("DNIS"),
        g("Direction"),
        load_date(d.get("Conversation_Start")),
        load_date(d.get("Recording_Start")),
        load_date(d.get("Recording_End")),
        g("Media_Duration_S"),
        g("Queue_Names"),
        g("Skill_Names"),
        g("Wrapup_Codes"),
        g("Division_Names"),
        g("Conversation_ID"),
        g("Recording_ID"),
        // What the document is (a screen recording of a call is `screen`), else the sessions'.
        if d.get("Recording_Media").is_empty() {
            g("Media_Types")
        } else {
            g("Recording_Media")
        },
        g("Content_Type"),
        export_id.to_owned(),
        g("File_Name"),
    ]
}

/// A date and time as the load files hold it: `YYYY-MM-DD HH:MM:SS` in UTC (the `TIMEZONE`
/// field says so), a form Relativity's and Nuix's date fields import without a format setting;
/// the instant to the millisecond stays in the export's call facts. A value that is not an
/// RFC 3339 time is kept as it is, never guessed.
fn load_date(rfc3339: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    match time::OffsetDateTime::parse(rfc3339, &Rfc3339) {
        Ok(t) => t
            .to_offset(time::UtcOffset::UTC)
            .format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]"
            ))
            .unwrap_or_else(|_| rfc3339.to_owned()),
        Err(_) => rfc3339.to_owned(),
    }
}

/// A load file as CSV (RFC 4180): `head`, then `rows`, every value as it is. A load file's
/// values are loaded, not opened in a spreadsheet: the formula guard of the custody record's
/// CSVs (`custody::csv_cell`) would change them (`+15550100` to `'+15550100`), so the CSV and
/// the DAT would disagree.
fn load_csv(head: &[&str], rows: &mut dyn Iterator<Item = Vec<String>>) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(head).expect("csv to memory");
    for r in rows {
        w.write_record(&r).expect("csv to memory");
    }
    w.into_inner().expect("csv to memory")
}

/// The DAT, the CSV of the same fields, and the cross-reference, into `data/`; the DAT's
/// delimiters, chosen so that every value reads back as it is.
fn write_load_files(
    o: &ProduceOptions,
    data: &Path,
    rows: &[Vec<String>],
    xref: &[Vec<String>],
) -> crate::Result<dat::Delimiters> {
    let p = &o.prefix;
    let delimiters =
        dat::Delimiters::choose(rows.iter().flatten().map(String::as_str)).ok_or_else(|| {
            crate::Error::Config(
                "no load-file delimiters are free: the volume's values hold every candidate quote, separator or newline character".into(),
            )
        })?;
    let mut dat = String::from(dat::BOM);
    dat.push_str(&delimiters.record(&FIELDS.map(str::to_owned)));
    for r in rows {
        dat.push_str(&delimiters.record(r));
    }
    write_sealed(&data.join(format!("{p}.dat")), dat.as_bytes())?;
    let csv_of = load_csv;
    let fields_csv = csv_of(&FIELDS, &mut rows.iter().cloned());
    write_sealed(&data.join(format!("{p}.csv")), &fields_csv)?;
    let xref_csv = csv_of(
        &[
            "BEGDOC",
            "SOURCE_PATH",
            "SHA256HASH",
            "RECORDINGID",
            "CONVERSATIONID",
        ],
        &mut xref.iter().cloned(),
    );
    write_sealed(&data.join(format!("{p}_xref.csv")), &xref_csv)?;
    sync_dir(data)?;
    Ok(delimiters)
}

#[cfg(test)]
mod tests {
    use super::{customer_number, folder_of, load_csv, load_date};

    #[test]
    fn load_file_dates_are_utc_without_a_zone_letter() {
        assert_eq!(load_date("2024-03-01T10:00:05.123Z"), "2024-03-01 10:00:05");
        assert_eq!(
            load_date("2024-03-01T12:00:05+02:00"),
            "2024-03-01 10:00:05"
        );
        assert_eq!(load_date(""), "");
        assert_eq!(load_date("yesterday"), "yesterday");
    }

    #[test]
    fn a_subfolder_holds_at_most_the_files_of_its_documents() {
        assert_eq!(folder_of(0), "0001");
        assert_eq!(folder_of(super::FOLDER_DOCUMENTS - 1), "0001");
        assert_eq!(folder_of(super::FOLDER_DOCUMENTS), "0002");
        assert_eq!(folder_of(10 * super::FOLDER_DOCUMENTS), "0011");
    }

    #[test]
    fn the_customer_number_follows_the_direction() {
        assert_eq!(
            customer_number("inbound", "tel:+15550100", "tel:+18005550100"),
            "+15550100"
        );
        assert_eq!(
            customer_number("outbound", "tel:+18005550100", "tel:+15550100"),
            "+15550100"
        );
        assert_eq!(
            customer_number("inbound", "sip:+15550100@carrier.example", ""),
            "+15550100"
        );
    }

    #[test]
    fn a_load_file_csv_holds_true_values() {
        let row = vec![
            "=SUM(A1)".to_owned(),
            "+15550100".to_owned(),
            "-x, \"y\"".to_owned(),
        ];
        let bytes = load_csv(&["A", "B", "C"], &mut std::iter::once(row.clone()));
        let mut r = csv::Reader::from_reader(bytes.as_slice());
        let back: Vec<String> = r
            .records()
            .next()
            .unwrap()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(back, row);
    }
}
