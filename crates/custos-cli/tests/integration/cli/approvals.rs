//! Counsel's approvals (`custos approve`): a statement signed with counsel's key, beside the
//! sealed bag, that the real `minisign -V` accepts; `custos verify --approver-key` accepts it
//! with that key and refuses it with another; `custos produce` includes exactly the approved
//! Corrupted items (marked as such) and never an unapproved one; the bag itself is unchanged
//! (bagit-python still validates it); the re-rendered report lists approved and unapproved.

use std::path::PathBuf;
use std::process::{Command, Output};

use super::{BIN, export_cmd, run, start, tmp};

fn custos(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// An export holding Corrupted items (recordings whose metadata claims more than the audio
/// holds), two key pairs (counsel's and another), and the Corrupted recording ids.
struct Fixture {
    _env: super::Env,
    dir: PathBuf,
    export: PathBuf,
    corrupted: Vec<String>,
    exported: usize,
}

impl Fixture {
    async fn new(name: &str) -> Fixture {
        let mut s = custos_sim::Scenario {
            conversations: 12,
            max_recording_s: 20,
            ..super::scenario()
        };
        s.faults.apply_list("duration-lie=0.4").unwrap();
        let env = start(s).await;
        let dir = tmp(name);
        std::fs::create_dir_all(&dir).unwrap();
        let export = dir.join("export");
        let o = run(export_cmd(&env, &export, &[])).await;
        assert_eq!(o.status.code(), Some(1), "Corrupted items: {}", text(&o));
        let outcomes = custos::package::outcomes(&export).unwrap();
        let corrupted: Vec<String> = outcomes
            .iter()
            .filter(|(_, o)| *o == "Corrupted")
            .map(|(id, _)| id.clone())
            .collect();
        let exported = outcomes.values().filter(|o| *o == "Exported").count();
        assert!(corrupted.len() >= 2, "{corrupted:?}");
        for k in ["counsel", "other"] {
            let o = custos(&["keygen", "--out", dir.join(k).to_str().unwrap()]);
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        }
        Fixture {
            _env: env,
            dir,
            export,
            corrupted,
            exported,
        }
    }

    fn key(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_owned()
    }

    fn public(&self, name: &str) -> String {
        format!("{}.pub", self.key(name))
    }

    fn approve(&self, id: &str, key: &str) -> Output {
        custos(&[
            "approve",
            self.export.to_str().unwrap(),
            "--recording",
            id,
            "--by",
            "Ada Counsel <ada@firm.example>",
            "--reason",
            "The first 20 s are intact and responsive; produce with its damage disclosed",
            "--sign-key",
            &self.key(key),
        ])
    }

    fn verify(&self, extra: &[&str]) -> Output {
        let mut args = vec!["verify", self.export.to_str().unwrap()];
        args.extend(extra);
        custos(&args)
    }

    fn produce(&self, out: &str, extra: &[&str]) -> (Output, PathBuf) {
        let vol = self.dir.join(out);
        let mut args = vec![
            "produce",
            self.export.to_str().unwrap(),
            "--out",
            vol.to_str().unwrap(),
            "--prefix",
            "ACME",
        ];
        args.extend(extra);
        (custos(&args), vol)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

use crate::common::bagit_valid;

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_verifies_with_counsels_key_and_not_with_another() {
    let f = Fixture::new("approve-keys").await;
    let id = f.corrupted[0].clone();
    let tag_before = std::fs::read(f.export.join("tagmanifest-sha256.txt")).unwrap();
    let o = f.approve(&id, "counsel");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("the sealed bag is unchanged"),
        "{}",
        text(&o)
    );
    // The bag is as sealed: the same tag manifest, and bagit-python validates it.
    assert_eq!(
        std::fs::read(f.export.join("tagmanifest-sha256.txt")).unwrap(),
        tag_before
    );
    assert!(bagit_valid(&f.export));
    // The real minisign checks the statement with counsel's public key.
    let statement = f.export.join(format!("approvals/{id}.json"));
    let m = Command::new("minisign")
        .arg("-Vm")
        .arg(&statement)
        .args(["-p", &f.public("counsel")])
        .output()
        .expect("minisign (apt install minisign)");
    assert!(m.status.success(), "{}", text(&m));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&statement).unwrap()).unwrap();
    assert_eq!(json["recordingId"], id.as_str());
    assert_eq!(
        json["tagManifestSha256"],
        custos::digest::Sha256::of(&tag_before).hex()
    );
    // custos verify: clean with counsel's key, a finding with another.
    let good = f.verify(&["--approver-key", &f.public("counsel")]);
    assert_eq!(good.status.code(), Some(0), "{}", text(&good));
    assert!(
        text(&good).contains("signature verified with --approver-key"),
        "{}",
        text(&good)
    );
    let bad = f.verify(&["--approver-key", &f.public("other")]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(
        text(&bad).contains("approval-signature-invalid"),
        "{}",
        text(&bad)
    );
    // Without a key it is listed, and said to be unchecked.
    let none = f.verify(&[]);
    assert_eq!(none.status.code(), Some(0), "{}", text(&none));
    assert!(text(&none).contains("NOT CHECKED"), "{}", text(&none));
}

#[tokio::test(flavor = "multi_thread")]
async fn produce_includes_exactly_the_approved_corrupted_items() {
    let f = Fixture::new("approve-produce").await;
    let approved = f.corrupted[0].clone();
    assert_eq!(f.approve(&approved, "counsel").status.code(), Some(0));
    // Signed by a key that is not counsel's: never produced.
    let forged = f.corrupted[1].clone();
    assert_eq!(f.approve(&forged, "other").status.code(), Some(0));

    // With counsel's key only, the forged approval is a finding: nothing is produced.
    let (o, vol) = f.produce("vol-refused", &["--approver-key", &f.public("counsel")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(!vol.exists());
    std::fs::remove_file(f.export.join(format!("approvals/{forged}.json"))).unwrap();
    std::fs::remove_file(f.export.join(format!("approvals/{forged}.json.minisig"))).unwrap();

    let (o, vol) = f.produce("vol", &["--approver-key", &f.public("counsel")]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("1 Corrupted item(s) produced on counsel's approval"),
        "{}",
        text(&o)
    );
    let docs = super::produce::read_dat(&vol.join("data/ACME.dat"));
    assert_eq!(docs.len(), f.exported + 1);
    let marked: Vec<&std::collections::BTreeMap<String, String>> = docs
        .iter()
        .filter(|d| d["EVIDENCE_STATUS"] != "Exported")
        .collect();
    assert_eq!(marked.len(), 1);
    let d = marked[0];
    assert_eq!(d["RECORDINGID"], approved);
    assert_eq!(
        d["EVIDENCE_STATUS"],
        "Corrupted; produced on counsel's approval"
    );
    assert_eq!(d["APPROVED_BY"], "Ada Counsel <ada@firm.example>");
    assert!(d["APPROVAL_REASON"].starts_with("The first 20 s"));
    // The native is the quarantined file, byte for byte, named by what it is.
    let native = vol.join("data").join(d["NATIVELINK"].replace('\\', "/"));
    let kept = f.export.join(format!(
        "data/quarantine/{}/{approved}.bin",
        d["CONVERSATIONID"]
    ));
    assert_eq!(
        std::fs::read(&native).unwrap(),
        std::fs::read(&kept).unwrap()
    );
    assert_ne!(d["FILEEXT"], "bin", "named by its content");
    // The volume carries the signed statement, which minisign checks there too.
    let statement = vol.join("data").join(d["APPROVALPATH"].replace('\\', "/"));
    let m = Command::new("minisign")
        .arg("-Vm")
        .arg(&statement)
        .args(["-p", &f.public("counsel")])
        .output()
        .unwrap();
    assert!(m.status.success(), "{}", text(&m));
    // Every other Corrupted item is absent.
    for id in &f.corrupted[1..] {
        assert!(docs.iter().all(|d| &d["RECORDINGID"] != id), "{id}");
    }
    assert!(bagit_valid(&vol));
    let v = custos(&["verify", vol.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
}

#[tokio::test(flavor = "multi_thread")]
async fn produce_without_an_approver_key_produces_no_corrupted_item() {
    let f = Fixture::new("approve-nokey").await;
    assert_eq!(f.approve(&f.corrupted[0], "counsel").status.code(), Some(0));
    let (o, vol) = f.produce("vol", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("1 approval(s) NOT CHECKED"),
        "{}",
        text(&o)
    );
    let docs = super::produce::read_dat(&vol.join("data/ACME.dat"));
    assert_eq!(docs.len(), f.exported);
    assert!(docs.iter().all(|d| d["EVIDENCE_STATUS"] == "Exported"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edited_approval_fails_verification() {
    let f = Fixture::new("approve-edited").await;
    let id = f.corrupted[0].clone();
    assert_eq!(f.approve(&id, "counsel").status.code(), Some(0));
    let path = f.export.join(format!("approvals/{id}.json"));
    let edited = std::fs::read_to_string(&path)
        .unwrap()
        .replace("Ada Counsel", "Eve Counsel");
    std::fs::write(&path, edited).unwrap();
    let o = f.verify(&["--approver-key", &f.public("counsel")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("approval-signature-invalid"),
        "{}",
        text(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_of_another_item_or_export_is_a_finding() {
    let f = Fixture::new("approve-moved").await;
    let (a, b) = (f.corrupted[0].clone(), f.corrupted[1].clone());
    assert_eq!(f.approve(&a, "counsel").status.code(), Some(0));
    // Renamed to approve another item: the statement names the first.
    let dir = f.export.join("approvals");
    std::fs::rename(dir.join(format!("{a}.json")), dir.join(format!("{b}.json"))).unwrap();
    std::fs::rename(
        dir.join(format!("{a}.json.minisig")),
        dir.join(format!("{b}.json.minisig")),
    )
    .unwrap();
    let o = f.verify(&["--approver-key", &f.public("counsel")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("approval-invalid"), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_corrupted_item_can_be_approved() {
    let f = Fixture::new("approve-exported").await;
    let outcomes = custos::package::outcomes(&f.export).unwrap();
    let exported = outcomes
        .iter()
        .find(|(_, o)| *o == "Exported")
        .map(|(id, _)| id.clone())
        .unwrap();
    let o = f.approve(&exported, "counsel");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("its outcome is Exported"), "{}", text(&o));
    assert!(!f.export.join("approvals").exists());
    // A hostile id is refused before anything is read.
    let o = f.approve("../../x", "counsel");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not a recording id"), "{}", text(&o));
    // An approval is written once.
    let id = f.corrupted[0].clone();
    assert_eq!(f.approve(&id, "counsel").status.code(), Some(0));
    let again = f.approve(&id, "counsel");
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("written once"), "{}", text(&again));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_lists_approved_and_unapproved_corrupted_items() {
    let f = Fixture::new("approve-report").await;
    let id = f.corrupted[0].clone();
    assert_eq!(f.approve(&id, "counsel").status.code(), Some(0));
    let html = f.dir.join("report.html");
    let o = custos(&[
        "report",
        f.export.to_str().unwrap(),
        "--out",
        html.to_str().unwrap(),
        "--approver-key",
        &f.public("counsel"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Counsel&#39;s approvals") || page.contains("Counsel's approvals"));
    assert!(
        page.contains("Approved by Ada Counsel"),
        "approved one listed"
    );
    assert!(page.contains("signature verified"));
    let unapproved = page.matches("Not approved: not produced").count();
    assert_eq!(unapproved, f.corrupted.len() - 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_or_a_link_among_approvals_is_a_finding_never_read() {
    let f = Fixture::new("approve-hostile").await;
    let id = f.corrupted[0].clone();
    let dir = f.export.join("approvals");
    std::fs::create_dir_all(&dir).unwrap();
    super::mkfifo(&dir.join(format!("{id}.json")));
    let started = std::time::Instant::now();
    let o = f.verify(&["--approver-key", &f.public("counsel")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("special-file"), "{}", text(&o));
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // approvals/ as a link to a directory of approvals elsewhere: not followed.
    std::fs::remove_dir_all(&dir).unwrap();
    let elsewhere = f.dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
    // The export does not verify with it (exit 1), and nothing is written through the link.
    let o = f.approve(&id, "counsel");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not a directory"), "{}", text(&o));
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    let o = f.verify(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("special-file"), "{}", text(&o));
}
