//! Counsel's approval of a `Corrupted` item: `custos approve` writes a signed statement beside
//! the sealed bag, `approvals/<recording id>.json` with its minisign signature
//! `approvals/<recording id>.json.minisig`, and never changes the bag itself.
//!
//! The statement is bound to one sealed package by the SHA-256 of its tag manifest, and to one
//! file by the SHA-256 the custody record holds for it; it names who approved, why, and when.
//! `custos verify --approver-key KEY.pub` checks every approval (an approval another key signed
//! is a finding); `custos produce --approver-key KEY.pub` produces exactly the `Corrupted`
//! items whose approval that key signed, marked as such, and never an unapproved one.
//! `minisign -Vm approvals/ID.json -p counsel.pub` checks one without custos.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::verify::{Package, Require, VerifyOptions};

/// The folder beside the bag's tag files that holds the approvals (not part of the bag).
pub const DIR: &str = "approvals";

/// What a statement says it is.
pub const STATEMENT: &str = "custos approval: a Corrupted item may be produced";

/// The largest approval statement read.
pub const MAX_BYTES: u64 = 64 << 10;

/// The path of `recording`'s approval, relative to the package.
pub fn path_of(recording: &str) -> String {
    format!("{DIR}/{recording}.json")
}

/// One signed approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Approval {
    /// [`STATEMENT`].
    pub statement: String,
    /// The statement's format version (1).
    pub version: u32,
    /// The matter (bag-info `External-Identifier`).
    pub matter: String,
    /// The export (bag-info `Export-Id`).
    pub export_id: String,
    /// The SHA-256 of the sealed package's `tagmanifest-sha256.txt`.
    pub tag_manifest_sha256: String,
    /// The recording approved.
    pub recording_id: String,
    /// Its conversation.
    pub conversation_id: String,
    /// Its file in the package (under `data/quarantine/`).
    pub file: String,
    /// The file's SHA-256, as the custody record holds it.
    pub sha256: String,
    /// Why the export held it `Corrupted` (the custody record's reason).
    pub why_corrupted: String,
    /// Who approved (`Name <email>`).
    pub approved_by: String,
    /// Counsel's reason.
    pub reason: String,
    /// When (UTC, RFC 3339).
    pub approved_at: String,
}

/// What `custos approve` is told.
#[derive(Clone, Debug)]
pub struct ApproveOptions {
    /// The sealed export.
    pub export: PathBuf,
    /// The `Corrupted` recording approved.
    pub recording: String,
    /// Who approves.
    pub by: String,
    /// Why.
    pub reason: String,
    /// Counsel's minisign secret key.
    pub sign_key: PathBuf,
    /// Check the export's signature with this key first.
    pub pubkey: Option<PathBuf>,
}

/// Why no approval was written.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    /// A setting is wrong, or the item cannot be approved; nothing was written.
    #[error("{0}")]
    Config(String),
    /// The export does not verify; nothing was written.
    #[error("the export does not verify, so nothing in it is approved: {0}")]
    NotVerified(String),
    /// Writing failed.
    #[error(transparent)]
    Failed(#[from] crate::Error),
}

/// A value a person typed: not empty, at most `max` characters, no control characters (the
/// statement's values are shown on terminals and in a signature's one-line trusted comment).
fn typed(flag: &str, value: &str, max: usize) -> Result<(), ApproveError> {
    if value.trim().is_empty() {
        return Err(ApproveError::Config(format!("{flag} is empty")));
    }
    if value.chars().count() > max {
        return Err(ApproveError::Config(format!(
            "{flag} is longer than {max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ApproveError::Config(format!(
            "{flag} holds a control character (a newline, tab or escape); write it on one line"
        )));
    }
    Ok(())
}

/// Writes and signs the approval of `o.recording`, a `Corrupted` item of the verified export.
/// Returns the statement's path and its signature's.
pub fn approve(o: &ApproveOptions) -> Result<(Approval, PathBuf, PathBuf), ApproveError> {
    if !crate::model::safe_id(&o.recording) {
        return Err(ApproveError::Config(format!(
            "--recording '{}': not a recording id (letters, digits, '-', '_' and '.')",
            crate::shown::text(&o.recording)
        )));
    }
    typed("--by", &o.by, 200)?;
    typed("--reason", &o.reason, 2000)?;
    let sk = crate::sign::load_secret_key(&o.sign_key)?;
    let require = Require::by_key_if_given(o.pubkey.as_deref());
    let opts = VerifyOptions {
        pubkey: o.pubkey.clone(),
        ..VerifyOptions::default()
    };
    let pkg = Package::open(&o.export, &opts, require)
        .map_err(|e| ApproveError::NotVerified(e.to_string()))?;
    let rows = pkg
        .read_csv(crate::verify::files::CUSTODY_CSV)
        .map_err(|e| ApproveError::NotVerified(e.to_string()))?;
    let get = |r: &std::collections::BTreeMap<String, String>, k: &str| {
        r.get(k).cloned().unwrap_or_default()
    };
    let row = rows
        .iter()
        .find(|r| get(r, "Recording_ID") == o.recording)
        .ok_or_else(|| {
            ApproveError::Config(format!("{}: not an item of this export", o.recording))
        })?;
    let outcome = get(row, "Outcome");
    if outcome != "Corrupted" {
        return Err(ApproveError::Config(format!(
            "{}: its outcome is {outcome}; only a Corrupted item needs counsel's approval to be produced",
            o.recording
        )));
    }
    let file = get(row, "File_Name");
    pkg.check_file(&file)
        .map_err(|e| ApproveError::NotVerified(e.to_string()))?;
    let label = |k: &str| pkg.label(k).unwrap_or_default().to_owned();
    let approval = Approval {
        statement: STATEMENT.to_owned(),
        version: 1,
        matter: label("External-Identifier"),
        export_id: label("Export-Id"),
        tag_manifest_sha256: pkg
            .tag_manifest_sha256()
            .map_err(|e| ApproveError::NotVerified(e.to_string()))?,
        recording_id: o.recording.clone(),
        conversation_id: get(row, "Conversation_ID"),
        file,
        sha256: get(row, "SHA256_Hash"),
        why_corrupted: get(row, "Reason"),
        approved_by: o.by.trim().to_owned(),
        reason: o.reason.trim().to_owned(),
        approved_at: crate::query::format_ms(time::OffsetDateTime::now_utc()),
    };
    let dir = o.export.join(DIR);
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(ApproveError::Config(format!(
                "{}: is not a directory (a link or a file); approvals are not written through it",
                dir.display()
            )));
        }
        Err(_) => crate::durable::make_dirs(&dir)?,
    }
    let path = o.export.join(path_of(&o.recording));
    let mut text = serde_json::to_string_pretty(&approval).expect("json");
    text.push('\n');
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                ApproveError::Config(format!(
                    "{}: {e}; an approval is written once (it is already approved, or the name is taken)",
                    path.display()
                ))
            })?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| crate::Error::io(&path, e))?;
    }
    let sig = crate::sign::sign_file(
        &path,
        &sk,
        &format!(
            "custos approval of {} in export {} (tagmanifest-sha256 {}) by {}",
            approval.recording_id,
            approval.export_id,
            approval.tag_manifest_sha256,
            approval.approved_by
        ),
        "custos approval of a Corrupted item",
    )?;
    crate::durable::sync_dir(&dir)?;
    Ok((approval, path, sig))
}

/// Reads an approval statement: the whole of it, strictly.
pub fn parse(bytes: &[u8]) -> Result<Approval, String> {
    let a: Approval = serde_json::from_slice(bytes).map_err(|e| format!("not an approval: {e}"))?;
    if a.statement != STATEMENT || a.version != 1 {
        return Err("not a version 1 custos approval".into());
    }
    Ok(a)
}

/// Whether `path` is an approval statement's file name (`<id>.json`), and of which id.
pub fn recording_of(name: &str) -> Option<&str> {
    name.strip_suffix(".json")
        .filter(|id| crate::model::safe_id(id))
}
