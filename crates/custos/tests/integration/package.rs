//! `verify::Package`, the one way a command opens a package: what it proves, and that a file
//! changed after it was verified is never read as if it were the sealed one.

use custos::export::{NoProgress, Retrieval, SourceKind};
use custos::verify::{OpenError, Origin, Package, Require, VerifyOptions, files};
use custos_sim::{Scenario, Sim};

use crate::common::{config, out_dir};

async fn exported(name: &str, signed: bool) -> (std::path::PathBuf, std::path::PathBuf) {
    let running = Sim::new(Scenario {
        conversations: 8,
        min_recording_s: 2,
        max_recording_s: 4,
        api_rate: 6_000,
        batch_ms_per_item: 1,
        async_job_ms: 50,
        ..Scenario::default()
    })
    .unwrap()
    .spawn()
    .await
    .unwrap();
    let out = out_dir(name);
    let key = out_dir(&format!("{name}-key"));
    std::fs::create_dir_all(&key).unwrap();
    let pk = custos::sign::keygen(&key.join("k.key")).unwrap();
    let mut cfg = config(&running, out.clone(), SourceKind::Genesys, Retrieval::Batch);
    if signed {
        cfg.sign_key = Some(key.join("k.key"));
    }
    custos::export(&cfg, &NoProgress).await.unwrap();
    (out, pk)
}

fn opts(pubkey: Option<&std::path::Path>) -> VerifyOptions {
    VerifyOptions {
        pubkey: pubkey.map(|p| p.to_path_buf()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_file_changed_after_verification_is_never_read_as_sealed() {
    let (out, _) = exported("package-changed", false).await;
    let pkg = Package::open(&out, &opts(None), Require::Intact).unwrap();
    assert_eq!(pkg.origin(), &Origin::Unsigned);
    assert!(!pkg.custody_rows().unwrap().is_empty());
    // Changed once the package was opened: the read refuses it.
    let csv = out.join(files::CUSTODY_CSV);
    let mut perm = std::fs::metadata(&csv).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&csv, perm).unwrap();
    let mut text = std::fs::read_to_string(&csv).unwrap();
    text.push('\n');
    std::fs::write(&csv, text).unwrap();
    let e = pkg.read_csv(files::CUSTODY_CSV).unwrap_err();
    assert!(
        matches!(&e, OpenError::File { why, .. } if why.contains("changed since it was verified")),
        "{e}"
    );
    // A file the bag does not seal is not read at all.
    let e = pkg.read(".custos/state.sqlite", 1 << 30).unwrap_err();
    assert!(e.to_string().contains("not sealed"), "{e}");
    let _ = std::fs::remove_dir_all(&out);
}

#[tokio::test]
async fn signed_needs_the_key_and_the_signature() {
    let (unsigned, pk) = exported("package-unsigned", false).await;
    let e = Package::open(&unsigned, &opts(Some(&pk)), Require::Signed).unwrap_err();
    assert!(
        matches!(e, OpenError::Findings { .. } | OpenError::NotProven { .. }),
        "{e}"
    );
    let (signed, pk) = exported("package-signed", true).await;
    let e = Package::open(&signed, &opts(None), Require::Signed).unwrap_err();
    assert!(matches!(e, OpenError::NotProven { .. }), "{e}");
    let pkg = Package::open(&signed, &opts(Some(&pk)), Require::Signed).unwrap();
    assert!(matches!(pkg.origin(), Origin::SignedBy { key_id } if key_id.len() == 16));
    for d in [unsigned, signed] {
        let _ = std::fs::remove_dir_all(d);
    }
}
