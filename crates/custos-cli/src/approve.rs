//! `custos approve`: argv → custos::approve (counsel's signed approval of a Corrupted item).

use std::path::PathBuf;

use clap::Args;
use custos::approve::{ApproveError, ApproveOptions};
use custos::shown::Shown;

/// Options of `custos approve`.
#[derive(Args, Debug)]
pub struct ApproveArgs {
    /// The sealed export (verified first; it is not changed).
    pub dir: PathBuf,
    /// The Corrupted recording approved for production.
    #[arg(long, value_name = "ID")]
    pub recording: String,
    /// Who approves, e.g. "Ada Counsel <ada@firm.example>".
    #[arg(long, value_name = "NAME")]
    pub by: String,
    /// Why it may be produced although the export held it Corrupted.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Counsel's minisign secret key (custos keygen makes one); its public key is what
    /// `verify` and `produce` take as --approver-key.
    #[arg(long, value_name = "FILE")]
    pub sign_key: PathBuf,
    /// Check the export's signature with this minisign public key first.
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
}

/// Runs `custos approve` (0 approved, 1 the export does not verify, 2 bad options or not an
/// approvable item, 3 could not write).
pub fn run_approve(a: ApproveArgs) -> i32 {
    let o = ApproveOptions {
        export: a.dir,
        recording: a.recording,
        by: a.by,
        reason: a.reason,
        sign_key: a.sign_key,
        pubkey: a.pubkey,
    };
    match custos::approve::approve(&o) {
        Ok((approval, path, sig)) => {
            out!(
                "Approved: {} (Corrupted: {}) for production, by {}\n  statement: {}\n  signature: {}\n  bound to the export whose tag manifest has SHA-256 {}; the sealed bag is unchanged\nCheck it: custos verify {} --approver-key KEY.pub  ·  minisign -Vm {} -p KEY.pub",
                approval.recording_id,
                Shown(&approval.why_corrupted),
                Shown(&approval.approved_by),
                path.display(),
                sig.display(),
                approval.tag_manifest_sha256,
                o.export.display(),
                path.display()
            );
            0
        }
        Err(e) => {
            crate::error(&e);
            match e {
                ApproveError::NotVerified(_) => 1,
                ApproveError::Config(_) => 2,
                ApproveError::Failed(_) => 3,
            }
        }
    }
}
