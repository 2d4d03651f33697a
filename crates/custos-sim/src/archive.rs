//! The organization's recording archive: what Genesys' "AWS S3 recording bulk actions"
//! integration writes into the org's bucket (reference §10), landed at start into a directory
//! that an S3-compatible server serves as a bucket (s3s-fs: `ROOT/BUCKET/`).
//!
//! Each recording whose media is there (AVAILABLE or RESTORED) lands as
//! `{prefix}{orgId}/year=YYYY/month=MM/day=DD/hour=HH/conversation_id={cid}/{rid}.{ext}` (the
//! conversation's start, UTC) with `{rid}.{ext}_metadata.json` beside it: the original codec's
//! bytes, exactly what a batch download serves. Faults (seeded per recording): not landed,
//! altered after landing (cut to half), metadata that disagrees with the API (a longer
//! `durationMs`), and a second copy under another extension. A conversation's folder may also
//! hold an object that is no recording of the catalog (`archive-stray`: an earlier export's
//! file, someone else's upload), with its metadata file: never to be read, always to be named.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use crate::audio::Codec;
use crate::catalog::{FileState, Recording};
use crate::natives::Kind;
use crate::rng::hash_unit;
use crate::state::Inner;

/// What a recording's archive faults are.
#[derive(Clone, Copy, Debug, Default)]
struct Faults {
    missing: bool,
    altered: bool,
    metadata: bool,
    duplicate: bool,
}

fn faults(inner: &Inner, r: &Recording) -> Faults {
    let (s, f) = (&inner.scenario, &inner.scenario.faults);
    let hit = |label: &str, p: f64| p > 0.0 && hash_unit(s.seed, label, &r.id) < p;
    Faults {
        missing: hit("archive-missing", f.archive_missing),
        altered: hit("archive-altered", f.archive_altered),
        metadata: hit("archive-metadata", f.archive_metadata),
        duplicate: hit("archive-duplicate", f.archive_duplicate),
    }
}

/// The truth about one recording in the archive.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveTruth {
    /// Its key in the bucket (landed or not).
    pub key: String,
    /// Whether it lands: at start, or (`archive-by-jobs`) when an executed EXPORT job that
    /// selects it ends (unless that job FAILs before it: `bulk-job-fails`).
    pub landed: bool,
    /// A bulk job lists it in `failedrecordings` and never writes it (`bulk-failed`).
    pub bulk_failed: bool,
    /// A bulk job writes it after it is FULFILLED (`bulk-late`).
    pub late: bool,
    /// The archive faults that hit it.
    pub faults: Vec<String>,
    /// What a correct export from the archive records with `--archive-missing fail`
    /// (a recording that did not land: `Failed`; with `--archive-missing api` it ends as the
    /// API path's `expectedOutcome`).
    pub expected_outcome: String,
    /// DELETED or ARCHIVED at the source, with its copy in the archive (`archive-keeps-settled`).
    #[serde(default)]
    pub settled_copy: bool,
    /// What a correct export records with `--archive-settled read` (the copy of a recording the
    /// source settled is read; without a copy, the listing's outcome stands).
    #[serde(default)]
    pub expected_reading_settled: String,
}

/// The file extension Genesys gives a recording in the bucket ("the name of the file is the
/// recording ID"; `.opus` and `.wav` are seen for calls, the others are undocumented).
fn extension(codec: Codec) -> &'static str {
    match codec {
        Codec::Wav | Codec::WavUlaw => "wav",
        Codec::OggOpus => "opus",
        Codec::Webm | Codec::ScreenWebm => "webm",
        Codec::Mp3 => "mp3",
        Codec::Eml => "eml",
        Codec::ChatZip | Codec::MessagingZip => "zip",
    }
}

/// A time as Genesys writes it in `_metadata.json` (offset form `+0000`).
fn offset_form(t: OffsetDateTime) -> String {
    crate::wire::ts(t).trim_end_matches('Z').to_owned() + "+0000"
}

/// Conversation `c`'s folder, under `prefix` (ends in `/`).
fn folder(inner: &Inner, c: usize) -> String {
    let conversation = &inner.catalog.conversations[c];
    let t = conversation.start.to_offset(time::UtcOffset::UTC);
    format!(
        "{}{}/year={}/month={:02}/day={:02}/hour={:02}/conversation_id={}/",
        inner.scenario.archive_prefix,
        inner.scenario.org_id,
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        conversation.id,
    )
}

/// Recording `i`'s key, under `prefix`.
pub fn key(inner: &Inner, i: usize) -> String {
    let r = &inner.catalog.recordings[i];
    format!(
        "{}{}.{}",
        folder(inner, r.conversation),
        r.id,
        extension(r.codec)
    )
}

/// The key of the object that is no recording in conversation `c`'s folder, when the
/// `archive-stray` fault hits the conversation (only conversations with a recording have a
/// folder an export looks in).
pub fn stray_key(inner: &Inner, c: usize) -> Option<String> {
    let s = &inner.scenario;
    let conversation = &inner.catalog.conversations[c];
    let p = s.faults.archive_stray;
    let hit = p > 0.0 && hash_unit(s.seed, "archive-stray", &conversation.id) < p;
    (hit && !conversation.recordings.is_empty() && inner.arrived(c)).then(|| {
        let id =
            crate::rng::Rng::fork(s.seed, &format!("archive-stray {}", conversation.id)).uuid();
        format!("{}{id}.wav", folder(inner, c))
    })
}

/// Lands the objects that are no recording (`archive-stray`) into `dir`: how many.
pub fn land_strays(inner: &Inner, dir: &Path) -> Result<usize, String> {
    let mut n = 0;
    for c in 0..inner.catalog.conversations.len() {
        let Some(key) = stray_key(inner, c) else {
            continue;
        };
        let path = dir.join(&key);
        let parent = path.parent().expect("a key has a folder");
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        let err = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
        std::fs::write(&path, b"not a recording of this organization\n").map_err(err)?;
        std::fs::write(
            dir.join(format!("{key}_metadata.json")),
            br#"{"mediaType":"Call","provider":"someone else"}"#,
        )
        .map_err(err)?;
        n += 1;
    }
    Ok(n)
}

/// Whether recording `i` is one the integration exported: its media is there in the catalog
/// (AVAILABLE or RESTORED), or it is DELETED or ARCHIVED now and the archive kept the copy
/// exported before (`archive-keeps-settled`); and (live) its conversation has happened.
fn exported(inner: &Inner, i: usize) -> bool {
    let r = &inner.catalog.recordings[i];
    (r.file_state.downloadable() || kept_settled(inner, i)) && inner.arrived(r.conversation)
}

/// Whether recording `i`, DELETED or ARCHIVED at the source, still has its copy in the archive.
fn kept_settled(inner: &Inner, i: usize) -> bool {
    let r = &inner.catalog.recordings[i];
    let (s, p) = (&inner.scenario, inner.scenario.faults.archive_keeps_settled);
    // Copies of the past land at start: an archive filled by jobs holds what the jobs wrote.
    !s.archive_by_jobs
        && matches!(r.file_state, FileState::Deleted | FileState::Archived)
        && p > 0.0
        && hash_unit(s.seed, "archive-keeps-settled", &r.id) < p
}

/// Lands every exported recording into `dir` (the bucket's directory): how many landed.
pub fn land(inner: &Inner, dir: &Path) -> Result<usize, String> {
    let mut landed = 0;
    for i in 0..inner.catalog.recordings.len() {
        if exported(inner, i) && land_one(inner, dir, i)? {
            landed += 1;
        }
    }
    Ok(landed)
}

/// Writes recording `i` and its metadata into `dir` with its archive faults: whether it
/// landed (the `archive-missing` fault keeps it out). Either way the recording is exported
/// from then on (`exportedDate`).
pub fn land_one(inner: &Inner, dir: &Path, i: usize) -> Result<bool, String> {
    let r = &inner.catalog.recordings[i];
    let f = faults(inner, r);
    let now = inner.clock.utc();
    inner.state().exported.entry(i).or_insert(now);
    if f.missing {
        return Ok(false);
    }
    let key = key(inner, i);
    let path = dir.join(&key);
    let parent = path.parent().expect("a key has a folder");
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let spec = r.media_as(r.codec);
    let keep = if f.altered {
        spec.size() / 2
    } else {
        spec.size()
    };
    write_media(&path, spec.generator(), keep)?;
    if f.duplicate {
        let other = if extension(r.codec) == "wav" {
            "opus"
        } else {
            "wav"
        };
        write_media(&path.with_extension(other), spec.generator(), keep)?;
    }
    let meta_path = dir.join(format!("{key}_metadata.json"));
    std::fs::write(&meta_path, metadata(inner, r, f.metadata))
        .map_err(|e| format!("cannot write {}: {e}", meta_path.display()))?;
    Ok(true)
}

fn write_media(path: &Path, mut media: crate::audio::MediaGen, keep: u64) -> Result<(), String> {
    let err = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(err)?);
    let mut written = 0u64;
    while written < keep {
        let Some(chunk) = media.next_chunk() else {
            break;
        };
        let n = (chunk.len() as u64).min(keep - written) as usize;
        out.write_all(&chunk[..n]).map_err(err)?;
        written += n as u64;
    }
    out.flush().map_err(err)
}

/// The `_metadata.json` Genesys writes beside a recording (the fields its consumers show).
fn metadata(inner: &Inner, r: &Recording, lie: bool) -> Vec<u8> {
    let c = &inner.catalog.conversations[r.conversation];
    let agent: Vec<&str> = c
        .participants
        .iter()
        .filter(|p| p.purpose == "agent")
        .filter_map(|p| p.user_id.as_deref())
        .collect();
    let media_type = match r.kind {
        Kind::Audio => "Call",
        Kind::Screen => "Screen",
        Kind::Chat => "Chat",
        Kind::Email => "Email",
        Kind::Messaging => "Message",
    };
    let duration = r.stated_ms + if lie { 30_000 } else { 0 };
    let v = json!({
        "mediaType": media_type,
        "provider": "Genesys Cloud",
        "userIds": agent,
        "conversationId": r.conversation_id,
        "recordingId": r.id,
        "startTime": offset_form(r.start),
        "endTime": offset_form(r.end),
        "durationMs": duration,
        "initialDirection": c.direction,
    });
    serde_json::to_vec_pretty(&v).expect("metadata serialises")
}

/// The archive's truth for recording `i`, when the scenario lands an archive.
pub fn truth(inner: &Inner, i: usize) -> Option<ArchiveTruth> {
    inner.scenario.archive_dir.as_ref()?;
    let r = &inner.catalog.recordings[i];
    let f = faults(inner, r);
    let by_jobs = inner.scenario.archive_by_jobs;
    let bulk_failed = by_jobs && crate::bulk::failed(inner, i);
    let late = by_jobs && crate::bulk::late(inner, i);
    let landed = exported(inner, i) && !f.missing && !bulk_failed;
    let names: Vec<String> = [
        (f.missing, "archive-missing"),
        (f.altered, "archive-altered"),
        (f.metadata, "archive-metadata"),
        (f.duplicate, "archive-duplicate"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, n)| n.to_owned())
    .collect();
    let rf = &r.faults;
    // What reading the copy gives (the archive's faults, then the file's own).
    let read = if !landed || f.duplicate {
        "Failed"
    } else if f.altered || f.metadata {
        "Corrupted"
    } else if rf.duration_lie
        || rf.header_lie
        || rf.damaged_zip
        || rf.truncated_eml
        || rf.short_screen
    {
        // The file itself is not what the API states (the transport faults of the media API
        // do not touch the archive).
        "Corrupted"
    } else {
        "Exported"
    };
    let settled = match r.file_state {
        FileState::Deleted => Some("Purged"),
        FileState::Archived => Some("Archived"),
        _ => None,
    };
    // Settled by the listing, before the archive is looked in.
    let outcome = settled.unwrap_or(read);
    let settled_copy = settled.is_some() && landed;
    let reading_settled = match settled {
        Some(_) if settled_copy => read,
        Some(s) => s,
        None => read,
    };
    Some(ArchiveTruth {
        key: key(inner, i),
        landed,
        bulk_failed,
        late,
        faults: names,
        expected_outcome: outcome.to_owned(),
        settled_copy,
        expected_reading_settled: reading_settled.to_owned(),
    })
}
