//! `custos upload` and `custos verify --remote` against real local stores started here on
//! 127.0.0.1: moto's S3 server (Object Lock, versioning, legal hold, SSE echo), s3s-fs (which
//! checks `x-amz-checksum-sha256` and SigV4) and Azurite (Shared Key, Content-MD5, block lists).
//! What custos stored is read back with the vendors' own SDKs (tests/storage_helper.py): every
//! object downloaded and hashed outside custos. `.ci/run` installs all of it.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use custos_sim::{Scenario, Sim};
use serde_json::Value;

use crate::common::store::{custos, receipt, run, text};
use crate::common::{BIN, QUERY, tmp};

const HELPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/storage_helper.py");
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A local server, killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The path of a tool the tests need; a clear failure (not a skip) when it is not installed.
pub(crate) fn tool(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not installed: run .ci/run, which installs the storage test servers")
        })
}

pub(crate) fn start(bin: &str, args: &[String], port: u16, log: &Path) -> Server {
    let out = std::fs::File::create(log).unwrap();
    let child = Command::new(tool(bin))
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{bin} did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
        port,
    }
}

pub(crate) fn moto(dir: &Path) -> Server {
    let port = free_port();
    let args = ["-H", "127.0.0.1", "-p", &port.to_string()].map(String::from);
    start("moto_server", &args, port, &dir.join("moto.log"))
}

pub(crate) fn s3s_fs(dir: &Path, buckets: &[&str]) -> Server {
    let root = dir.join("s3s-fs");
    for b in buckets {
        std::fs::create_dir_all(root.join(b)).unwrap();
    }
    let port = free_port();
    let args = [
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--access-key",
        "test",
        "--secret-key",
        "testtest",
        root.to_str().unwrap(),
    ]
    .map(String::from);
    start("s3s-fs", &args, port, &dir.join("s3s-fs.log"))
}

pub(crate) fn azurite(dir: &Path) -> Server {
    let port = free_port();
    let args = [
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        &port.to_string(),
        "--location",
        dir.join("azurite").to_str().unwrap(),
        "--disableTelemetry",
        "--skipApiVersionCheck",
    ]
    .map(String::from);
    start("azurite-blob", &args, port, &dir.join("azurite.log"))
}

pub(crate) fn azurite_conn(s: &Server) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{}/devstoreaccount1;",
        s.port
    )
}

pub(crate) fn helper(args: &[&str]) -> Value {
    let out = Command::new("python3")
        .arg(HELPER)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "storage_helper.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A small signed export from a fresh simulator.
async fn export(dir: &Path, key: Option<&Path>) -> PathBuf {
    let sim = Sim::new(Scenario {
        conversations: 10,
        min_recording_s: 2,
        max_recording_s: 8,
        ..Default::default()
    })
    .unwrap()
    .spawn()
    .await
    .unwrap();
    let out = dir.join("export");
    let mut c = crate::common::export_cmd(&sim.base_url, QUERY, &out, &["--matter", "M-7"]);
    if let Some(k) = key {
        c.args(["--sign-key", k.to_str().unwrap()]);
    }
    let o = run(c).await;
    assert!(
        o.status.code() == Some(0),
        "export: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Every file of the bag an upload sends → its SHA-256 (from the manifests; the tag manifest
/// and signature hashed here).
fn bag_files(root: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for name in ["manifest-sha256.txt", "tagmanifest-sha256.txt"] {
        for line in std::fs::read_to_string(root.join(name)).unwrap().lines() {
            let (sha, rel) = line.split_once("  ").unwrap();
            m.insert(rel.to_owned(), sha.to_owned());
        }
    }
    for rel in ["tagmanifest-sha256.txt", "tagmanifest-sha256.txt.minisig"] {
        if root.join(rel).exists() {
            m.insert(
                rel.to_owned(),
                custos::durable::sha256_file(&root.join(rel))
                    .unwrap()
                    .0
                    .hex(),
            );
        }
    }
    m
}

fn events<'a>(ev: &'a [Value], kind: &str) -> Vec<&'a Value> {
    ev.iter().filter(|e| e["event"] == kind).collect()
}

/// `custos verify ROOT --remote URL --endpoint ENDPOINT EXTRA…`.
fn remote_verify(root: &Path, url: &str, endpoint: &str, extra: &[&str]) -> Command {
    let mut c = custos(&[
        "verify",
        root.to_str().unwrap(),
        "--remote",
        url,
        "--endpoint",
        endpoint,
    ]);
    c.args(extra);
    c
}

/// Changes one byte of a (read-only) evidence file in place, as tampering would; returns the
/// bytes before and after.
fn change_one_byte(path: &Path) -> (Vec<u8>, Vec<u8>) {
    let original = std::fs::read(path).unwrap();
    let mut changed = original.clone();
    changed[100] ^= 0x55;
    let mut perm = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(path, perm).unwrap();
    std::fs::write(path, &changed).unwrap();
    (original, changed)
}

fn b64(hex_sha: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(hex::decode(hex_sha).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_compliance_lock_on_moto_holds_every_object_and_the_receipt_is_signed() {
    let dir = tmp("s3-moto-lock");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("k.key");
    assert!(
        Command::new(BIN)
            .args(["keygen", "--out", key.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    let root = export(&dir, Some(&key)).await;
    let files = bag_files(&root);
    let s3 = moto(&dir);
    helper(&["s3-bucket", &s3.url, "evidence", "--lock", "--encryption"]);
    let url = "s3://evidence/matter-7/export-1";
    let args = [
        "upload",
        root.to_str().unwrap(),
        url,
        "--endpoint",
        &s3.url,
        "--lock-mode",
        "compliance",
        "--retain-days",
        "1",
        "--legal-hold",
        "--sse",
        "aws:kms",
        "--kms-key-id",
        "key-1",
        "--require-worm",
        "--sign-key",
        key.to_str().unwrap(),
        "--operator",
        "Jane Doe",
    ];
    let o = run(custos(&args)).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // The receipt: chained to this export, one object-stored per file, complete, signed.
    let (rpath, ev) = receipt(&root);
    let started = &ev[0];
    assert_eq!(started["event"], "upload-started");
    assert_eq!(
        started["tagManifestSha256"],
        files["tagmanifest-sha256.txt"]
    );
    let info = std::fs::read_to_string(root.join("bag-info.txt")).unwrap();
    assert!(info.contains(&format!(
        "Custody-Log-Head: {}",
        started["custodyLogHead"].as_str().unwrap()
    )));
    assert_eq!(started["actor"]["operator"], "Jane Doe");
    let stored = events(&ev, "object-stored");
    assert_eq!(stored.len(), files.len());
    for e in &stored {
        let rel = e["path"].as_str().unwrap();
        assert_eq!(e["sha256"], files[rel], "{rel}");
        assert_eq!(e["readBack"]["lockMode"], "COMPLIANCE");
        assert_eq!(e["readBack"]["legalHold"], true);
        assert!(e["write"]["versionId"].is_string() && e["write"]["requestId"].is_string());
    }
    assert_eq!(ev.last().unwrap()["event"], "upload-complete");
    // The receipt lives beside the bag, outside what it seals: bagit-python still validates it.
    let b = Command::new("bagit.py")
        .args(["--validate", root.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let v = Command::new("minisign")
        .args([
            "-Vm",
            rpath.to_str().unwrap(),
            "-p",
            &format!("{}.pub", key.display()),
        ])
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let head = custos::custody::check_chain(&rpath).unwrap().head;
    assert!(String::from_utf8_lossy(&v.stdout).contains(&format!("receipt-head:{head}")));

    // What moto holds, read with boto3 and hashed here: one version per file, the bytes sealed,
    // locked, held, encrypted with the key asked for; and the receipt and its signature beside
    // them, the same bytes as the local ones, under the same lock.
    let objs = helper(&["s3-objects", &s3.url, "evidence", "matter-7/export-1/"]);
    let objs = objs.as_array().unwrap();
    assert_eq!(
        objs.len(),
        files.len() + 2,
        "one version per file, receipt, signature"
    );
    let receipt_rel = rpath
        .strip_prefix(&root)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let sig_rel = format!("{receipt_rel}.minisig");
    for o in objs {
        let rel = o["key"]
            .as_str()
            .unwrap()
            .strip_prefix("matter-7/export-1/")
            .unwrap();
        let sealed = if rel == receipt_rel || rel == sig_rel {
            custos::durable::sha256_file(&root.join(rel))
                .unwrap()
                .0
                .hex()
        } else {
            files[rel].clone()
        };
        assert_eq!(o["sha256"], sealed, "{rel}");
        assert_eq!(o["checksumSha256"], b64(&sealed), "{rel}");
        assert_eq!(o["lockMode"], "COMPLIANCE");
        assert_eq!(o["legalHold"], "ON");
        assert_eq!(o["sse"], "aws:kms");
        assert_eq!(o["kmsKeyId"], "key-1");
    }
    // COMPLIANCE: nobody deletes a version, with or without the governance bypass.
    let victim = objs
        .iter()
        .find(|o| o["key"].as_str().unwrap().ends_with(".wav"))
        .unwrap();
    for extra in [None, Some("--bypass")] {
        let mut a = vec![
            "s3-delete",
            &s3.url,
            "evidence",
            victim["key"].as_str().unwrap(),
            victim["versionId"].as_str().unwrap(),
        ];
        a.extend(extra);
        assert_eq!(helper(&a), "AccessDenied");
    }

    let o = run(remote_verify(&root, url, &s3.url, &[])).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!(
        "{} objects compared, {} under retention",
        files.len(),
        files.len()
    )));

    // A re-run sends nothing.
    let o = run(custos(&args)).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("from earlier runs {}", files.len())),
        "{}",
        text(&o)
    );
    let n = helper(&["s3-objects", &s3.url, "evidence", "matter-7/export-1/"]);
    assert_eq!(
        n.as_array().unwrap().len(),
        files.len() + 2,
        "nothing sent twice"
    );

    // `custos verify` checks the receipt too: its signature, and its chain once edited.
    let pubkey = format!("{}.pub", key.display());
    let verify = [
        "verify",
        root.to_str().unwrap(),
        "--pubkey",
        pubkey.as_str(),
    ];
    let o = run(custos(&verify)).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let edited = std::fs::read_to_string(&rpath).unwrap().replacen(
        "\"legalHold\":true",
        "\"legalHold\":false",
        1,
    );
    std::fs::write(&rpath, edited).unwrap();
    let o = run(custos(&verify)).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("FINDING receipt-chain-broken"), "{out}");
    // With --remote: reported once (by the local checks), the broken receipt is not used, and
    // the copy in the store (under its lock) is found to differ: the one to restore from.
    let o = run(remote_verify(&root, url, &s3.url, &["--json"])).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let kinds: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["receipt-chain-broken", "remote-receipt-mismatch"],
        "{}",
        text(&o)
    );
    assert_eq!(v["remote"]["receipt"], "broken chain: not used");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_storing_and_receipting_is_recovered_without_a_second_version() {
    let dir = tmp("s3-moto-crash");
    std::fs::create_dir_all(&dir).unwrap();
    let root = export(&dir, None).await;
    let files = bag_files(&root);
    let s3 = moto(&dir);
    helper(&["s3-bucket", &s3.url, "evidence", "--lock", "--encryption"]);
    let args = [
        "upload",
        root.to_str().unwrap(),
        "s3://evidence/m7",
        "--endpoint",
        &s3.url,
        "--lock-mode",
        "governance",
        "--retain-days",
        "1",
    ];
    let o = run(custos(&args)).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The state a crash leaves when objects were stored but their lines never reached the
    // receipt: the receipt cut after 10 lines, and (as the receipt is stored only once the
    // upload completes) no receipt in the store — GOVERNANCE lets a bypass remove it, without
    // the bypass it is refused.
    let (rpath, _) = receipt(&root);
    let lines: Vec<String> = std::fs::read_to_string(&rpath)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    std::fs::write(&rpath, lines[..10].join("\n") + "\n").unwrap();
    let receipt_key = format!(
        "m7/{}",
        rpath.strip_prefix(&root).unwrap().to_str().unwrap()
    );
    let copy = helper(&["s3-objects", &s3.url, "evidence", &receipt_key]);
    let version = copy[0]["versionId"].as_str().unwrap().to_owned();
    let del = ["s3-delete", &s3.url, "evidence", &receipt_key, &version];
    assert_eq!(helper(&del), "AccessDenied");
    assert_eq!(helper(&[&del[..], &["--bypass"]].concat()), "deleted");

    // The re-run finds the objects stored (conditional create refused), reads them back, and
    // receipts them as already present; one version per file; the receipt stored anew.
    let o = run(custos(&args)).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!(
            "stored 0  already there {}  from earlier runs 8",
            files.len() - 8
        )),
        "{}",
        text(&o)
    );
    let (_, ev) = receipt(&root);
    assert_eq!(events(&ev, "object-stored").len(), files.len());
    assert_eq!(ev.last().unwrap()["event"], "upload-complete");
    let objs = helper(&["s3-objects", &s3.url, "evidence", "m7/"]);
    assert_eq!(
        objs.as_array().unwrap().len(),
        files.len() + 1,
        "nothing uploaded twice"
    );
    let o = run(remote_verify(&root, "s3://evidence/m7", &s3.url, &[])).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_without_object_lock_is_refused_with_require_worm_and_verify_remote_finds_changes()
{
    let dir = tmp("s3-moto-plain");
    std::fs::create_dir_all(&dir).unwrap();
    let s3 = moto(&dir);
    helper(&["s3-bucket", &s3.url, "plain"]);
    // --require-worm: refused before anything is written, and the bag is untouched.
    let sim_dir = dir.join("one");
    std::fs::create_dir_all(&sim_dir).unwrap();
    let root = export(&sim_dir, None).await;
    let url = "s3://plain/m7";
    let o = run(custos(&[
        "upload",
        root.to_str().unwrap(),
        url,
        "--endpoint",
        &s3.url,
        "--require-worm",
    ]))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not write-once storage"),
        "{}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("object-lock"),
        "{}",
        text(&o)
    );
    assert!(!root.join("receipts").exists());
    assert_eq!(
        helper(&["s3-objects", &s3.url, "plain", ""]),
        serde_json::json!([])
    );

    // `export --upload` in one go, without --require-worm: uploads, and says what is missing.
    let root = dir.join("two");
    let sim = Sim::new(Scenario {
        conversations: 6,
        max_recording_s: 6,
        ..Default::default()
    })
    .unwrap()
    .spawn()
    .await
    .unwrap();
    let mut c = custos(&[
        "export",
        "--query",
        QUERY,
        "--out",
        root.to_str().unwrap(),
        "--api-base",
        &sim.base_url,
        "--rate",
        "6000",
        "--upload",
        url,
        "--endpoint",
        &s3.url,
    ]);
    c.env("GENESYSCLOUD_OAUTHCLIENT_ID", "custos-sim-client")
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "custos-sim-secret");
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("object-lock") && out.contains("WARNING"),
        "{out}"
    );
    let files = bag_files(&root);
    assert_eq!(
        helper(&["s3-objects", &s3.url, "plain", "m7/"])
            .as_array()
            .unwrap()
            .len(),
        files.len() + 1,
        "the files and the receipt"
    );
    let (rpath, _) = receipt(&root);
    let receipt_key = format!(
        "m7/{}",
        rpath.strip_prefix(&root).unwrap().to_str().unwrap()
    );

    // Without a lock anyone with write access can replace an object, the stored receipt, or add
    // an object: verify --remote says which.
    let wav = files.keys().find(|k| k.ends_with(".wav")).unwrap();
    helper(&[
        "s3-put",
        &s3.url,
        "plain",
        &format!("m7/{wav}"),
        "not the recording",
    ]);
    helper(&[
        "s3-put",
        &s3.url,
        "plain",
        "m7/data/extra.txt",
        "added later",
    ]);
    helper(&["s3-put", &s3.url, "plain", &receipt_key, "{}"]);
    let o = run(remote_verify(&root, url, &s3.url, &["--json"])).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let found: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["where"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            ("remote-mismatch".to_owned(), format!("m7/{wav}")),
            ("remote-receipt-mismatch".to_owned(), receipt_key.clone()),
            (
                "remote-unexpected".to_owned(),
                "m7/data/extra.txt".to_owned()
            ),
        ]
    );

    // A store that does not check what it is sent (moto) can hold other bytes under the sealed
    // checksum: comparing checksums cannot see it; --download hashes the bytes themselves.
    let other = files
        .keys()
        .filter(|k| k.ends_with(".wav"))
        .nth(1)
        .unwrap()
        .clone();
    let fake = dir.join("same-size-other-bytes");
    let mut bytes = std::fs::read(root.join(&other)).unwrap();
    bytes[100] ^= 0x55;
    std::fs::write(&fake, &bytes).unwrap();
    helper(&[
        "s3-put-claiming",
        &s3.url,
        "plain",
        &format!("m7/{other}"),
        fake.to_str().unwrap(),
        &b64(&files[&other]),
    ]);
    let remote = |download: bool| {
        let extra: &[&str] = if download {
            &["--json", "--download"]
        } else {
            &["--json"]
        };
        remote_verify(&root, url, &s3.url, extra)
    };
    let kinds = |o: &std::process::Output| -> Vec<String> {
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                format!(
                    "{} {}",
                    f["kind"].as_str().unwrap(),
                    f["where"].as_str().unwrap()
                )
            })
            .collect()
    };
    let o = run(remote(false)).await;
    assert_eq!(kinds(&o).len(), 3, "{}", text(&o));
    let o = run(remote(true)).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let found = kinds(&o);
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(
        found.contains(&format!("remote-mismatch m7/{other}")),
        "{found:?}"
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["remote"]["downloadedBytes"].as_u64().unwrap() > 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn s3s_fs_refuses_a_file_changed_after_sealing_with_bad_digest_and_the_rerun_finishes() {
    let dir = tmp("s3s-fs-digest");
    std::fs::create_dir_all(&dir).unwrap();
    let root = export(&dir, None).await;
    let files = bag_files(&root);
    let s3 = s3s_fs(&dir, &["evidence"]);
    let url = "s3://evidence/m7";
    let upload = || custos(&["upload", root.to_str().unwrap(), url, "--endpoint", &s3.url]);

    // SigV4 is checked: a wrong secret stops before anything is written.
    let mut c = upload();
    c.env("AWS_SECRET_ACCESS_KEY", "wrong");
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("SignatureDoesNotMatch"),
        "{}",
        text(&o)
    );
    assert!(!root.join("receipts").exists());

    // One recording changed after sealing (same size): `custos upload` verifies the package
    // first and sends nothing (the store's own digest check, which would refuse the bytes, is
    // the backend suite's). No receipt, no object.
    let wav = files.keys().find(|k| k.ends_with(".wav")).unwrap().clone();
    let path = root.join(&wav);
    let (original, _) = change_one_byte(&path);
    let o = run(upload()).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("does not verify") && err.contains("nothing was uploaded"),
        "{}",
        text(&o)
    );
    assert!(!root.join("receipts").exists());
    let stored = dir.join("s3s-fs/evidence/m7");
    assert!(
        std::fs::read_dir(&stored).map_or(true, |mut d| d.next().is_none()),
        "something was sent to {}",
        stored.display()
    );

    // The file restored: everything goes up.
    std::fs::write(&path, &original).unwrap();
    let o = run(upload()).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!(
            "stored {}  already there 0  from earlier runs 0",
            files.len()
        )),
        "{}",
        text(&o)
    );
    let kept = dir.join("s3s-fs/evidence/m7").join(&wav);
    assert_eq!(std::fs::read(&kept).unwrap(), original);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_on_azurite_md5_checked_blocks_no_overwrite_and_remote_verify() {
    let dir = tmp("azurite");
    std::fs::create_dir_all(&dir).unwrap();
    let root = export(&dir, None).await;
    let files = bag_files(&root);
    let az = azurite(&dir);
    let conn = azurite_conn(&az);
    helper(&["az-container", &conn, "evidence"]);
    // Files above 60 kB go up as 16 KiB blocks, the rest with one Put Blob.
    let args = [
        "upload",
        root.to_str().unwrap(),
        "azure://devstoreaccount1/evidence/m7",
        "--multipart-threshold",
        "60000",
        "--part-size",
        "16384",
    ];
    let mut c = custos(&args);
    c.env("AZURE_STORAGE_CONNECTION_STRING", &conn);
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (_, ev) = receipt(&root);
    let stored = events(&ev, "object-stored");
    assert_eq!(stored.len(), files.len());
    assert!(
        stored.iter().any(|e| e["write"]["multipart"] == true),
        "some blobs went up as blocks"
    );
    assert!(
        stored.iter().any(|e| e["write"]["multipart"].is_null()),
        "some with one Put Blob"
    );
    let blobs = helper(&["az-blobs", &conn, "evidence", "m7/"]);
    let blobs = blobs.as_array().unwrap();
    assert_eq!(blobs.len(), files.len() + 1, "the files and the receipt");
    for b in blobs {
        let rel = b["name"].as_str().unwrap().strip_prefix("m7/").unwrap();
        if rel.starts_with("receipts/") {
            continue;
        }
        assert_eq!(b["sha256"], files[rel], "{rel}");
        assert_eq!(b["metaSha256"], files[rel], "{rel}");
        assert_eq!(b["md5"], b["md5OfBytes"], "{rel}");
    }
    // Re-run: nothing sent.
    let mut c = custos(&args);
    c.env("AZURE_STORAGE_CONNECTION_STRING", &conn);
    let o = run(c).await;
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("from earlier runs {}", files.len())),
        "{}",
        text(&o)
    );

    // Never overwrite: a blob already at a key is reported, and left as it was.
    helper(&[
        "az-put",
        &conn,
        "evidence",
        "m8/data/manifest.csv",
        "someone else's",
    ]);
    let mut c = custos(&[
        "upload",
        root.to_str().unwrap(),
        "azure://devstoreaccount1/evidence/m8",
    ]);
    c.env("AZURE_STORAGE_CONNECTION_STRING", &conn);
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("FAILED data/manifest.csv: another object is already stored"),
        "{}",
        text(&o)
    );
    let m8 = helper(&["az-blobs", &conn, "evidence", "m8/data/manifest.csv"]);
    assert_eq!(
        m8[0]["sha256"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"someone else's"))
    );

    let mut c = custos(&[
        "verify",
        root.to_str().unwrap(),
        "--remote",
        "azure://devstoreaccount1/evidence/m7",
        "--download",
    ]);
    c.env("AZURE_STORAGE_CONNECTION_STRING", &conn);
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("MB downloaded and hashed"),
        "{}",
        text(&o)
    );
    // A file changed after sealing: `custos upload` verifies the package first and sends
    // nothing of it.
    let wav = files.keys().find(|k| k.ends_with(".wav")).unwrap().clone();
    let path = root.join(&wav);
    let (original, _) = change_one_byte(&path);
    let mut c = custos(&[
        "upload",
        root.to_str().unwrap(),
        "azure://devstoreaccount1/evidence/m-changed",
    ]);
    c.env("AZURE_STORAGE_CONNECTION_STRING", &conn);
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("nothing was uploaded"),
        "{}",
        text(&o)
    );
    let sent = helper(&["az-blobs", &conn, "evidence", "m-changed/"]);
    assert!(
        sent.as_array().unwrap().is_empty(),
        "nothing of the changed package was stored: {sent}"
    );
    std::fs::write(&path, &original).unwrap();

    // Azurite accepts immutability headers and ignores them: the read-back shows no policy, so
    // custos reports every object as stored but not as asked, never as protected.
    let mut c = custos(&[
        "upload",
        root.to_str().unwrap(),
        "azure://devstoreaccount1/evidence/m-lock",
        "--lock-mode",
        "compliance",
        "--retain-days",
        "1",
    ]);
    c.env("AZURE_STORAGE_CONNECTION_STRING", &conn);
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("FAILED data/manifest.csv: stored, but not as asked: lock mode is None"),
        "{out}"
    );
    assert!(out.contains("stored 0  already there 0"), "{out}");

    // A container SAS (no account key) works too.
    let sas = helper(&["az-sas", &conn, "evidence"]);
    let mut c = custos(&[
        "upload",
        root.to_str().unwrap(),
        "azure://devstoreaccount1/evidence/m-sas",
        "--endpoint",
        &format!("http://127.0.0.1:{}/devstoreaccount1", az.port),
    ]);
    c.env("AZURE_STORAGE_SAS_TOKEN", sas.as_str().unwrap());
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let sas_blobs = helper(&["az-blobs", &conn, "evidence", "m-sas/"]);
    assert_eq!(sas_blobs.as_array().unwrap().len(), files.len() + 1);
    // Credentials are checked before anything is written.
    let mut c = custos(&[
        "upload",
        root.to_str().unwrap(),
        "azure://devstoreaccount1/evidence/m9",
    ]);
    c.env(
        "AZURE_STORAGE_CONNECTION_STRING",
        conn.replace(AZURITE_KEY, "d3Jvbmc="),
    );
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_completed_receipt_is_timestamped_checked_by_openssl_and_stored_beside_the_export() {
    let dir = tmp("receipt-tsa");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("k.key");
    let o = Command::new(BIN)
        .args(["keygen", "--out", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
    let root = export(&dir, Some(&key)).await;
    let t = crate::cli::timestamps::tsa(&dir.join("tsa"));
    let s3 = s3s_fs(&dir, &["evidence"]);
    let url = "s3://evidence/m8";
    let upload = |tsas: &[&str]| {
        let mut c = custos(&[
            "upload",
            root.to_str().unwrap(),
            url,
            "--endpoint",
            &s3.url,
            "--sign-key",
            key.to_str().unwrap(),
        ]);
        for u in tsas {
            c.args(["--tsa", u]);
        }
        c
    };
    // No TSA answers: every object is stored and the receipt complete, but not timestamped;
    // exit 3, and the re-run asks again without sending anything.
    let o = run(upload(&["http://127.0.0.1:9/"])).await;
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("the receipt is complete but not timestamped"),
        "{}",
        text(&o)
    );
    let (path, ev) = receipt(&root);
    assert!(!events(&ev, "upload-complete").is_empty());
    let token = custos::tsa::token_path(&path);
    assert!(!token.exists());
    let o = run(upload(&["http://127.0.0.1:9/", &t.url])).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("from earlier runs"), "{out}");
    assert!(out.contains("timestamp FAILED"), "{out}");
    let sig = PathBuf::from(format!("{}.minisig", path.display()));
    for (data, tsr) in [
        (&path, token.clone()),
        (&sig, custos::tsa::token_path(&sig)),
    ] {
        let o = Command::new("openssl")
            .args(["ts", "-verify", "-in"])
            .arg(&tsr)
            .arg("-data")
            .arg(data)
            .arg("-CAfile")
            .arg(&t.ca)
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Verification: OK"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        // Stored beside the export, byte for byte.
        let rel = tsr.strip_prefix(&root).unwrap();
        let stored = dir.join("s3s-fs/evidence/m8").join(rel);
        assert_eq!(
            std::fs::read(&stored).unwrap(),
            std::fs::read(&tsr).unwrap()
        );
    }
    // custos verify checks the receipt's tokens too, and finds one for other bytes.
    let verify = || {
        Command::new(BIN)
            .args(["verify", root.to_str().unwrap(), "--tsa-ca"])
            .arg(&t.ca)
            .output()
            .unwrap()
    };
    let o = verify();
    let said = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{said}");
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(
        said.contains(&format!("timestamp: receipts/{name} existed at")),
        "{said}"
    );
    // The report of the sealed package lists the receipt, complete, and its timestamps.
    let page = dir.join("report.html");
    let o = Command::new(BIN)
        .args([
            "report",
            root.to_str().unwrap(),
            "--out",
            page.to_str().unwrap(),
            "--tsa-ca",
        ])
        .arg(&t.ca)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains(&format!("receipts/{name}")),
        "the receipt is listed"
    );
    assert!(html.contains("complete, "), "its state");
    assert!(html.contains(&format!("RFC 3161 timestamp of receipts/{name}")));
    // The signature's token put in the place of the receipt's: it attests other bytes.
    let other = dir.join("other.tsr");
    std::fs::copy(custos::tsa::token_path(&sig), &other).unwrap();
    std::fs::copy(&other, &token).unwrap();
    let o = verify();
    let said = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{said}");
    assert!(said.contains("timestamp-mismatch"), "{said}");
    std::fs::remove_dir_all(&dir).unwrap();
}
