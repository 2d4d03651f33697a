//! Act only on what proves itself (#26): packages edited and re-sealed as a forger would
//! (every manifest, Payload-Oxum and the Merkle root recomputed; then unsigned, or signed with
//! the forger's own key), handed to the commands that act at the source. `release --protect`
//! never sends a credential to a host the package names and lifts only what the export proves
//! it protected; `--increment-of` continues only from a bag signed by the operator's key; a
//! removed signature and an unsigned receipt are findings.

use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

use super::*;

const FIRST_HALF: &str = "timestamp:[2023-10-01T00:00:00.000Z TO 2023-10-04T00:00:00.000Z}";
const SECOND_HALF: &str = "timestamp:[2023-10-04T00:00:00.000Z TO 2023-10-08T00:00:00.000Z}";

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A host that records every connection made to it, and every byte sent (a credential would
/// arrive as a token request's body).
struct Listener {
    url: String,
    connections: Arc<AtomicUsize>,
    received: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Listener {
    fn start() -> Listener {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, r) = (connections.clone(), received.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                c.fetch_add(1, Ordering::SeqCst);
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut b = [0u8; 4096];
                if let Ok(n) = s.read(&mut b) {
                    r.lock().unwrap().extend_from_slice(&b[..n]);
                }
            }
        });
        Listener {
            url,
            connections,
            received,
        }
    }

    fn untouched(&self) -> bool {
        std::thread::sleep(Duration::from_millis(50));
        self.connections.load(Ordering::SeqCst) == 0 && self.received.lock().unwrap().is_empty()
    }
}

/// Re-seals `d` after its files `edited` changed, as a forger would: their payload-manifest
/// and hashdeep lines, Payload-Oxum, the Merkle root, the tag manifest; then signs it with
/// `key` (naming the custody log head, as custos does) or removes the signature.
fn forge(d: &Path, edited: &[&str], key: Option<&Path>) {
    for rel in edited {
        let bytes = std::fs::read(d.join(rel)).unwrap();
        let (sum, n) = (sha256(&bytes), bytes.len());
        super::with_lines(&d.join("manifest-sha256.txt"), |l| {
            for x in l.iter_mut().filter(|x| x.ends_with(&format!("  {rel}"))) {
                *x = format!("{sum}  {rel}");
            }
        });
        super::with_lines(&d.join("hashdeep-sha256.txt"), |l| {
            for x in l.iter_mut().filter(|x| x.ends_with(&format!(",{rel}"))) {
                *x = format!("{n},{sum},{rel}");
            }
        });
    }
    let manifest = std::fs::read_to_string(d.join("manifest-sha256.txt")).unwrap();
    let entries: Vec<String> = manifest.lines().map(str::to_owned).collect();
    let (mut bytes, mut files) = (0u64, 0u64);
    for e in &entries {
        bytes += std::fs::metadata(d.join(&e[66..])).unwrap().len();
        files += 1;
    }
    let root = custos::merkle::root(&entries);
    super::with_lines(&d.join("bag-info.txt"), |l| {
        for x in l.iter_mut() {
            if x.starts_with("Payload-Oxum: ") {
                *x = format!("Payload-Oxum: {bytes}.{files}");
            } else if x.starts_with("Payload-Manifest-Merkle-Root-SHA256: ") {
                *x = format!("Payload-Manifest-Merkle-Root-SHA256: {root}");
            } else if x.starts_with("Payload-Manifest-Merkle-Leaves: ") {
                *x = format!("Payload-Manifest-Merkle-Leaves: {files}");
            }
        }
    });
    super::with_lines(&d.join("tagmanifest-sha256.txt"), |l| {
        for x in l.iter_mut() {
            let rel = x[66..].to_owned();
            *x = format!("{}  {rel}", sha256(&std::fs::read(d.join(&rel)).unwrap()));
        }
    });
    let sig = d.join("tagmanifest-sha256.txt.minisig");
    let _ = std::fs::remove_file(&sig);
    if let Some(k) = key {
        let sk = custos::sign::load_secret_key(k).unwrap();
        let head = std::fs::read_to_string(d.join("bag-info.txt"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Custody-Log-Head: ").map(str::to_owned))
            .unwrap();
        custos::sign::sign_bag(d, &sk, &format!("custos custody-log-head:{head}")).unwrap();
    }
}

/// Rewrites the custody log as a forger who re-signs or removes the signature must, so that
/// the log names the forger's key (or none): every run's `sign-key` setting replaced, every
/// line's `prev` recomputed, and bag-info's Custody-Log-Head.
fn forge_log_key(d: &Path, key: Option<&Path>) {
    let setting = match key {
        Some(k) => format!(
            "key id {}",
            hex::encode_upper(custos::sign::load_secret_key(k).unwrap().keynum())
        ),
        None => "(unsigned)".into(),
    };
    let p = d.join("data/custody_log.jsonl");
    let mut prev = "0".repeat(64);
    let mut out = String::new();
    for line in std::fs::read_to_string(&p).unwrap().lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["event"] == "export-run" {
            v["settings"]["sign-key"] = setting.clone().into();
        }
        v["prev"] = prev.clone().into();
        let line = serde_json::to_string(&v).unwrap();
        prev = sha256(line.as_bytes());
        out.push_str(&line);
        out.push('\n');
    }
    std::fs::write(&p, out).unwrap();
    super::with_lines(&d.join("bag-info.txt"), |l| {
        for x in l.iter_mut().filter(|x| x.starts_with("Custody-Log-Head: ")) {
            *x = format!("Custody-Log-Head: {prev}");
        }
    });
}

/// A forgery: `edited` files and the custody log rewritten for `key` (the forger's, or none),
/// re-sealed, and signed with it.
fn forge_as(d: &Path, edited: &[&str], key: Option<&Path>) {
    let mut edited = edited.to_vec();
    forge_log_key(d, key);
    edited.push("data/custody_log.jsonl");
    forge(d, &edited, key);
}

/// The forgery passes `custos verify` without a key: a consistent bag, whose only flaw is who
/// sealed it.
fn assert_consistent(d: &Path, case: &str) {
    let o = Command::new(BIN).arg("verify").arg(d).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{case}: {}", text(&o));
}

/// Exports into `out` with `extra`, and insists it succeeded.
async fn export_ok(env: &Env, out: &Path, extra: &[&str]) {
    let o = run(export_cmd(env, out, extra)).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// `custos release --protect DIR --pubkey PUB --api-base API` with the simulator's client.
fn release_cmd(dir: &Path, pubkey: &Path, api_base: &str) -> Command {
    let mut c = Command::new(BIN);
    c.args(["release", "--protect"])
        .arg(dir)
        .arg("--pubkey")
        .arg(pubkey)
        .args(["--api-base", api_base, "--rate", "6000"])
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", "custos-sim-client")
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "custos-sim-secret")
        .env_remove("GENESYSCLOUD_REGION")
        .stdin(Stdio::null());
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The conversations the simulator holds under protection now.
fn protected(env: &Env) -> BTreeSet<String> {
    env.sim
        .truth()
        .recordings
        .iter()
        .filter(|t| t.protected)
        .map(|t| t.conversation_id.clone())
        .collect()
}

/// Two keys: the operator's and a forger's.
fn keys(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = tmp(name);
    std::fs::create_dir_all(&dir).unwrap();
    let (ours, theirs) = (dir.join("custos.key"), dir.join("forger.key"));
    super::keygen(&ours);
    super::keygen(&theirs);
    (dir, ours, theirs)
}

fn pub_of(key: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pub", key.display()))
}

/// A protected export signed with the operator's key, in `tmp(name)`: (keys' folder, the
/// operator's key, a forger's key, the export).
async fn signed_protected(env: &Env, name: &str) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let (kdir, ours, theirs) = keys(&format!("{name}-keys"));
    let out = tmp(name);
    export_ok(
        env,
        &out,
        &["--protect", "--sign-key", ours.to_str().unwrap()],
    )
    .await;
    (kdir, ours, theirs, out)
}

/// Two matters' exports of one org, each signed and protected: (first, second).
async fn two_matters(env: &Env, key: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (a, b) = (tmp(&format!("{name}-a")), tmp(&format!("{name}-b")));
    for (out, q) in [(&a, FIRST_HALF), (&b, SECOND_HALF)] {
        let o = run(export_query(
            env,
            q,
            out,
            &["--protect", "--sign-key", key.to_str().unwrap()],
        ))
        .await;
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    (a, b)
}

fn protection_ids(dir: &Path) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("data/protection.json")).unwrap()).unwrap();
    v["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conversationId"].as_str().unwrap().to_owned())
        .collect()
}

/// Makes `a`'s protection file list `b`'s conversations too.
fn list_other_matter(a: &Path, b: &Path) {
    let p = a.join("data/protection.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let list = v["conversations"].as_array_mut().unwrap();
    for id in protection_ids(b) {
        list.push(
            serde_json::json!({"conversationId": id, "protectedAt": "2023-10-09T00:00:00.000Z"}),
        );
    }
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[tokio::test]
async fn release_never_sends_credentials_to_a_host_the_package_names() {
    let env = start(scenario()).await;
    let (kdir, ours, theirs, genuine) = signed_protected(&env, "trust-host").await;
    let held = protected(&env);
    assert!(!held.is_empty());
    let fake = Listener::start();
    // The package points its API at the forger's host, re-sealed unsigned and re-signed with
    // the forger's key: refused before anything is sent, wherever the package points.
    for (case, key) in [
        ("unsigned", None),
        ("forger-signed", Some(theirs.as_path())),
    ] {
        let d = copy_export(&genuine, &format!("trust-host-{case}"));
        super::with_lines(&d.join("bag-info.txt"), |l| {
            for x in l.iter_mut().filter(|x| x.starts_with("Genesys-API-Base: ")) {
                *x = format!("Genesys-API-Base: {}", fake.url);
            }
        });
        forge_as(&d, &[], key);
        assert_consistent(&d, case);
        let o = run(release_cmd(&d, &pub_of(&ours), &env.base_url)).await;
        assert_eq!(o.status.code(), Some(1), "{case}: {}", text(&o));
        let said = text(&o);
        assert!(
            said.contains("not signed") || said.contains("does not verify"),
            "{case}: {said}"
        );
        // Even when the operator names the forger's host, custos sends nothing there.
        let o = run(release_cmd(&d, &pub_of(&ours), &fake.url)).await;
        assert_ne!(o.status.code(), Some(0), "{case}: {}", text(&o));
        assert!(fake.untouched(), "{case}: the forger's host was contacted");
        let _ = std::fs::remove_dir_all(&d);
    }
    // The genuine, signed export, released through an API other than the one it was made
    // against: refused, both named, nothing sent.
    let o = run(release_cmd(&genuine, &pub_of(&ours), &fake.url)).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let said = text(&o);
    assert!(
        said.contains(&env.base_url) && said.contains(&fake.url),
        "both APIs named: {said}"
    );
    assert!(fake.untouched(), "the other API was contacted");
    // No key given: refused before anything is read or sent.
    let mut c = Command::new(BIN);
    c.args(["release", "--protect"])
        .arg(&genuine)
        .args(["--api-base", &env.base_url])
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", "custos-sim-client")
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "custos-sim-secret");
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--pubkey"), "{}", text(&o));
    assert_eq!(protected(&env), held, "nothing was lifted");
    // And the genuine export through its own API: released.
    let o = run(release_cmd(&genuine, &pub_of(&ours), &env.base_url)).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(protected(&env).is_empty());
    for d in [genuine, kdir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test]
async fn release_lifts_only_what_the_export_proves_it_protected() {
    let env = start(scenario()).await;
    let (kdir, ours, theirs) = keys("trust-set-keys");
    let (a, b) = two_matters(&env, &ours, "trust-set").await;
    let (held_a, held_b): (BTreeSet<String>, BTreeSet<String>) = (
        protection_ids(&a).into_iter().collect(),
        protection_ids(&b).into_iter().collect(),
    );
    assert!(!held_a.is_empty() && !held_b.is_empty() && held_a.is_disjoint(&held_b));
    // The simulator's truth tells protection by recording: the held conversations that have one.
    let recorded: BTreeSet<String> = env
        .sim
        .truth()
        .recordings
        .iter()
        .map(|t| t.conversation_id.clone())
        .collect();
    assert_eq!(protected(&env), &(&held_a | &held_b) & &recorded);
    // Matter A's bag, edited to list matter B's holds too: re-sealed unsigned, re-signed by a
    // forger, and even re-signed with the operator's own key (the protection file is then not
    // the one the custody log confirmed). Nothing is lifted, of either matter.
    for (case, key) in [
        ("unsigned", None),
        ("forger-signed", Some(theirs.as_path())),
        ("operator-signed", Some(ours.as_path())),
    ] {
        let d = copy_export(&a, &format!("trust-set-{case}"));
        list_other_matter(&d, &b);
        forge_as(&d, &["data/protection.json"], key);
        if key != Some(ours.as_path()) {
            assert_consistent(&d, case);
        }
        let o = run(release_cmd(&d, &pub_of(&ours), &env.base_url)).await;
        assert_eq!(o.status.code(), Some(1), "{case}: {}", text(&o));
        assert_eq!(
            protected(&env),
            &(&held_a | &held_b) & &recorded,
            "{case}: a hold was lifted"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
    // The genuine bag of matter A: exactly its own set, matter B untouched.
    let o = run(release_cmd(&a, &pub_of(&ours), &env.base_url)).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "Released deletion protection on {0} of {0} conversations",
            held_a.len()
        )),
        "{}",
        text(&o)
    );
    assert_eq!(
        protected(&env),
        &held_b & &recorded,
        "matter B's holds stay"
    );
    for d in [a, b, kdir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test]
async fn an_increment_continues_only_from_a_bag_signed_by_the_operators_key() {
    let env = start(scenario()).await;
    let (kdir, ours, theirs) = keys("trust-chain-keys");
    let first = tmp("trust-chain-1");
    export_ok(&env, &first, &["--sign-key", ours.to_str().unwrap()]).await;
    let exported: Vec<String> = custos::package::outcomes(&first)
        .unwrap()
        .into_iter()
        .filter(|(_, o)| o == "Exported")
        .map(|(id, _)| id)
        .collect();
    assert!(!exported.is_empty());
    let increment = |prev: &Path, out: &Path, pubkey: Option<&Path>| {
        let mut extra = vec![
            "--increment-of".to_owned(),
            prev.to_str().unwrap().to_owned(),
            "--sign-key".into(),
            ours.to_str().unwrap().into(),
        ];
        if let Some(p) = pubkey {
            extra.extend(["--pubkey".into(), p.to_str().unwrap().into()]);
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        export_cmd(&env, out, &extra)
    };
    // A forged earlier bag claims every recording of the week was exported already, which
    // would make the next bag leave them all out: unsigned, or signed by a forger, refused.
    let all: BTreeSet<String> = env
        .sim
        .truth()
        .recordings
        .iter()
        .map(|t| t.id.clone())
        .collect();
    for (case, key) in [
        ("unsigned", None),
        ("forger-signed", Some(theirs.as_path())),
    ] {
        let d = copy_export(&first, &format!("trust-chain-{case}"));
        let prior = all.iter().map(|id| format!("{id}\n")).collect::<String>();
        std::fs::write(d.join("data/chain_prior_exported.txt"), &prior).unwrap();
        super::with_lines(&d.join("manifest-sha256.txt"), |l| {
            l.push(format!(
                "{}  data/chain_prior_exported.txt",
                sha256(prior.as_bytes())
            ));
            l.sort_by(|a, b| a[66..].cmp(&b[66..]));
        });
        super::with_lines(&d.join("hashdeep-sha256.txt"), |l| {
            l.push(format!(
                "{},{},data/chain_prior_exported.txt",
                prior.len(),
                sha256(prior.as_bytes())
            ))
        });
        forge_as(&d, &[], key);
        assert_consistent(&d, case);
        let out = tmp(&format!("trust-chain-{case}-next"));
        let o = run(increment(&d, &out, Some(&pub_of(&ours)))).await;
        assert_ne!(o.status.code(), Some(0), "{case}: {}", text(&o));
        assert!(
            !out.exists(),
            "{case}: a refused increment wrote {}",
            out.display()
        );
        let _ = std::fs::remove_dir_all(&d);
    }
    // No key given: refused, saying which flag.
    let out = tmp("trust-chain-nokey");
    let o = run(increment(&first, &out, None)).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--pubkey"), "{}", text(&o));
    assert!(!out.exists());
    // The genuine bag, with the operator's key: continued.
    let o = run(increment(&first, &out, Some(&pub_of(&ours)))).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for d in [first, out, kdir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test]
async fn a_removed_signature_and_an_unsigned_receipt_are_findings() {
    let env = start(scenario()).await;
    let (kdir, ours, _) = keys("trust-sig-keys");
    let signed = tmp("trust-sig");
    export_ok(&env, &signed, &["--sign-key", ours.to_str().unwrap()]).await;
    let verify = |d: &Path, pubkey: bool| {
        let mut c = Command::new(BIN);
        c.arg("verify").arg(d);
        if pubkey {
            c.arg("--pubkey").arg(pub_of(&ours));
        }
        c
    };
    // The signature deleted: the custody log says the export was signed.
    let d = copy_export(&signed, "trust-sig-removed");
    std::fs::remove_file(d.join("tagmanifest-sha256.txt.minisig")).unwrap();
    let o = run(verify(&d, false)).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("FINDING signature-removed"),
        "{}",
        text(&o)
    );
    // A made-up upload receipt, chained and naming this bag, unsigned.
    let d2 = copy_export(&signed, "trust-sig-receipt");
    let tag = sha256(&std::fs::read(d2.join("tagmanifest-sha256.txt")).unwrap());
    let receipt = d2.join("receipts/upload-20991231T000000000Z.jsonl");
    std::fs::create_dir_all(receipt.parent().unwrap()).unwrap();
    let log = custos::custody::CustodyLog::open(
        &receipt,
        &custos::custody::Actor::here(Some("someone"), None),
    )
    .unwrap();
    log.append(
        "upload-started",
        serde_json::json!({"tagManifestSha256": tag, "target": "s3://evidence/x", "lockMode": "compliance"}),
    )
    .unwrap();
    log.append("upload-complete", serde_json::json!({"objects": 1}))
        .unwrap();
    drop(log);
    let o = run(verify(&d2, true)).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("FINDING receipt-unsigned"),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains("VERIFIED"), "{}", text(&o));
    // The genuine package verifies with the key.
    let o = run(verify(&signed, true)).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for x in [signed, d, d2, kdir] {
        let _ = std::fs::remove_dir_all(x);
    }
}

/// A signed, protected export and copies of it with one file each replaced by a FIFO or a
/// link to /dev/zero, where the commands read: (case, copy).
async fn hostile_copies(
    env: &Env,
    name: &str,
) -> (PathBuf, PathBuf, PathBuf, Vec<(String, PathBuf)>) {
    let (kdir, ours, _, base) = signed_protected(env, name).await;
    let mut out = Vec::new();
    for rel in [
        "bag-info.txt",
        "data/chain_of_custody.csv",
        "data/manifest.csv",
        "data/protection.json",
        "data/custody_log.jsonl",
        "tagmanifest-sha256.txt.tsr",
    ] {
        for kind in ["fifo", "dev-zero"] {
            let case = format!("{kind}-at-{}", rel.replace('/', "-"));
            let d = copy_export(&base, &format!("{name}-{case}"));
            let at = d.join(rel);
            let _ = std::fs::remove_file(&at);
            match kind {
                "fifo" => mkfifo(&at),
                _ => std::os::unix::fs::symlink("/dev/zero", &at).unwrap(),
            }
            out.push((case, d));
        }
    }
    (base, kdir, pub_of(&ours), out)
}

/// What a command is run on: a hostile copy, the key, the simulator, a recording id.
struct On<'a> {
    dir: &'a Path,
    pubkey: &'a Path,
    env: &'a Env,
    recording: &'a str,
}

/// Runs `make(copy)` on every hostile copy (a FIFO or a link to /dev/zero where the commands
/// read) and on every bag of the hostile corpus `custos verify` is tested with: each ends
/// within 5 s, refused (non-zero), without opening anything outside the bag.
async fn never_hangs(name: &str, make: impl Fn(&On) -> Command) {
    let env = start(scenario()).await;
    let (base, kdir, pubkey, mut copies) = hostile_copies(&env, name).await;
    let recording = custos::package::outcomes(&base)
        .unwrap()
        .into_iter()
        .find(|(_, o)| o == "Exported")
        .unwrap()
        .0;
    let corpus = super::verify_hostile::Corpus::new(&base, name);
    let cases = corpus.cases();
    assert!(cases.len() >= 35, "{} cases", cases.len());
    for (case, hostile, _) in &cases {
        let d = copy_export(&base, &format!("{name}-{case}"));
        hostile(&d);
        copies.push((case.to_string(), d));
    }
    for (case, d) in &copies {
        let cmd = make(&On {
            dir: d,
            pubkey: &pubkey,
            env: &env,
            recording: &recording,
        });
        let before = corpus.sentinel.opens();
        let (code, said, took) = tokio::task::block_in_place(|| {
            super::verify_hostile::run_for(cmd, Duration::from_secs(5))
        });
        assert!(code.is_some(), "{name} {case}: still running after 5 s");
        assert_ne!(code, Some(0), "{name} {case}: accepted: {said}");
        assert!(took < Duration::from_secs(5), "{name} {case}: {took:?}");
        assert_eq!(
            corpus.sentinel.opens(),
            before,
            "{name} {case}: opened a file outside the bag"
        );
    }
    assert!(
        env.sim.truth().recordings.iter().all(|t| t.protected),
        "{name}: a hold was lifted"
    );
    for (_, d) in copies {
        let _ = std::fs::remove_dir_all(d);
    }
    let _ = std::fs::remove_dir_all(base);
    let _ = std::fs::remove_dir_all(kdir);
}

fn custos_on(args: &[&str], d: &Path, more: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).arg(d).args(more).stdin(Stdio::null());
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn release_never_hangs_on_a_fifo_or_dev_zero() {
    never_hangs("hang-release", |o| {
        release_cmd(o.dir, o.pubkey, &o.env.base_url)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn prove_never_hangs_on_a_fifo_or_dev_zero() {
    never_hangs("hang-prove", |o| {
        let out = o.dir.with_extension("proof.json");
        let (out, pk) = (out.to_str().unwrap(), o.pubkey.to_str().unwrap());
        custos_on(
            &["prove"],
            o.dir,
            &[o.recording, "--out", out, "--pubkey", pk],
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn timestamp_never_hangs_on_a_fifo_or_dev_zero() {
    never_hangs("hang-timestamp", |o| {
        custos_on(&["timestamp"], o.dir, &["--tsa", "http://127.0.0.1:9/"])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_never_hangs_on_a_fifo_or_dev_zero() {
    never_hangs("hang-upload", |o| {
        let mut c = custos_on(
            &["upload"],
            o.dir,
            &["s3://evidence/x", "--endpoint", "http://127.0.0.1:9"],
        );
        c.env("AWS_ACCESS_KEY_ID", "k")
            .env("AWS_SECRET_ACCESS_KEY", "s")
            .env("AWS_REGION", "us-east-1");
        c
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn produce_never_hangs_on_a_fifo_or_dev_zero() {
    never_hangs("hang-produce", |o| {
        let out = o.dir.with_extension("volume");
        custos_on(
            &["produce"],
            o.dir,
            &["--out", out.to_str().unwrap(), "--prefix", "H"],
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn increment_never_hangs_on_a_fifo_or_dev_zero() {
    never_hangs("hang-increment", |o| {
        let out = o.dir.with_extension("next");
        let (prev, pk) = (o.dir.to_str().unwrap(), o.pubkey.to_str().unwrap());
        export_cmd(o.env, &out, &["--increment-of", prev, "--pubkey", pk])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn report_never_hangs_on_a_fifo_or_dev_zero() {
    never_hangs("hang-report", |o| {
        let out = o.dir.with_extension("report.html");
        custos_on(&["report"], o.dir, &["--out", out.to_str().unwrap()])
    })
    .await;
}

#[tokio::test]
async fn a_crafted_custody_row_never_draws_on_the_terminal() {
    let env = start(scenario()).await;
    let base = tmp("trust-ansi");
    export_ok(&env, &base, &[]).await;
    let d = copy_export(&base, "trust-ansi-row");
    // The first row's outcome becomes: clear the screen, home the cursor, print VERIFIED.
    let csv = d.join("data/chain_of_custody.csv");
    let mut lines: Vec<String> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    for outcome in ["Exported", "Purged", "Archived", "Corrupted", "Failed"] {
        let needle = format!(",{outcome},");
        if lines[1].contains(&needle) {
            lines[1] = lines[1].replacen(&needle, ",\u{1b}[2J\u{1b}[HVERIFIED: intact\u{202e},", 1);
            break;
        }
    }
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();
    forge(&d, &["data/chain_of_custody.csv"], None);
    let o = Command::new(BIN).arg("verify").arg(&d).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        !o.stdout.contains(&0x1b) && !o.stderr.contains(&0x1b),
        "an escape byte reached the terminal"
    );
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        !said.contains('\u{202e}'),
        "a bidi override reached the terminal"
    );
    assert!(said.contains("\\u{1b}[2J"), "the escape is shown: {said}");
    // JSON stays exact: the value as it is in the file.
    let o = Command::new(BIN)
        .args(["verify", "--json"])
        .arg(&d)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["what"].as_str().unwrap_or("").contains("\u{1b}[2J")),
        "{v}"
    );
    for x in [base, d] {
        let _ = std::fs::remove_dir_all(x);
    }
}

#[tokio::test]
async fn the_custody_record_names_the_organization_client_operator_host_binary_and_clock() {
    let env = start(scenario()).await;
    let out = tmp("trust-identity");
    export_ok(&env, &out, &["--operator", "Jane Doe <jane@firm.example>"]).await;
    let s = env.sim.scenario();
    let info = std::fs::read_to_string(out.join("bag-info.txt")).unwrap();
    for want in [
        format!("Genesys-Organization-Id: {}", s.org_id),
        format!("Genesys-Organization-Name: {}", s.org_name),
        "Genesys-OAuth-Client-Id: custos-sim-client".to_owned(),
        "Export-Operator: Jane Doe <jane@firm.example>".to_owned(),
        "Export-Host: ".to_owned(),
    ] {
        assert!(info.contains(&want), "{want} not in {info}");
    }
    // The binary's hash is the one of the binary that ran.
    let bin_sha = sha256(&std::fs::read(BIN).unwrap());
    assert!(
        info.contains(&format!("Export-Tool-SHA256: {bin_sha}")),
        "{info}"
    );
    let offset: i64 = info
        .lines()
        .find_map(|l| l.strip_prefix("Clock-Offset-Seconds: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(offset.abs() <= 2, "loopback clock offset {offset}");
    let ev = custos::custody::read_events(&out.join("data/custody_log.jsonl")).unwrap();
    let id = ev
        .iter()
        .find(|e| e["event"] == "source-identified")
        .expect("source-identified");
    assert_eq!(id["organization"]["id"], s.org_id.as_str());
    assert_eq!(id["binary"]["sha256"], bin_sha.as_str());
    // Before anything is listed.
    let pos = |name: &str| ev.iter().position(|e| e["event"] == name).unwrap();
    assert!(pos("source-identified") < pos("query-recorded"));
    // What the token may do, as the API reports it.
    assert_eq!(
        id["oauthClient"]["authorizedScope"],
        serde_json::json!(["recordings", "analytics"]),
        "{id}"
    );
    // The report names them, and custos verify shows them.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains(&format!("{} ({})", s.org_name, s.org_id)) && html.contains(&bin_sha),
        "the report does not name the organization and the binary"
    );
    let o = Command::new(BIN).arg("verify").arg(&out).output().unwrap();
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains(&format!(
            "source: organization {} ({})",
            s.org_name, s.org_id
        )) && said.contains("collected by: Jane Doe <jane@firm.example> on "),
        "{said}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn an_export_against_a_real_organization_needs_an_operator() {
    let out = tmp("trust-operator");
    let mut c = crate::common::export_cmd(
        "https://api.mypurecloud.ie",
        crate::common::QUERY,
        &out,
        &[],
    );
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--operator is required"), "{}", text(&o));
    assert!(!out.exists());
}

#[tokio::test]
async fn release_refuses_an_export_of_another_organization() {
    let env = start(scenario()).await;
    let (kdir, ours, _, out) = signed_protected(&env, "trust-org").await;
    // The same export, as if made in another organization (signed with the operator's key, so
    // only the organization differs).
    let d = copy_export(&out, "trust-org-other");
    super::with_lines(&d.join("bag-info.txt"), |l| {
        for x in l
            .iter_mut()
            .filter(|x| x.starts_with("Genesys-Organization-Id: "))
        {
            *x = "Genesys-Organization-Id: 00000000-0000-4000-8000-0000000000ff".into();
        }
    });
    forge(&d, &[], Some(&ours));
    let o = run(release_cmd(&d, &pub_of(&ours), &env.base_url)).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let said = text(&o);
    assert!(
        said.contains("00000000-0000-4000-8000-0000000000ff")
            && said.contains(&env.sim.scenario().org_id),
        "both organizations named: {said}"
    );
    assert!(
        env.sim.truth().recordings.iter().all(|t| t.protected),
        "a hold was lifted"
    );
    for x in [out, d, kdir] {
        let _ = std::fs::remove_dir_all(x);
    }
}

/// Control characters in what the API says (the organization's name here) are recorded as
/// received, and shown escaped: `custos verify` never writes them to the terminal raw.
#[tokio::test]
async fn control_characters_from_the_api_never_reach_the_terminal() {
    let env = start(Scenario {
        org_name: "Acme\u{1b}[2J\u{1b}[HVERIFIED\u{202e}".into(),
        ..scenario()
    })
    .await;
    let out = tmp("trust-api-ansi");
    let o = run(export_cmd(&env, &out, &[])).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        !o.stdout.contains(&0x1b) && !o.stderr.contains(&0x1b),
        "export wrote an escape byte"
    );
    let ev = custos::custody::read_events(&out.join("data/custody_log.jsonl")).unwrap();
    let id = ev
        .iter()
        .find(|e| e["event"] == "source-identified")
        .unwrap();
    assert_eq!(
        id["organization"]["name"], "Acme\u{1b}[2J\u{1b}[HVERIFIED\u{202e}",
        "the custody log keeps the name as received"
    );
    let o = Command::new(BIN).arg("verify").arg(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        !o.stdout.contains(&0x1b) && !said.contains('\u{202e}'),
        "verify wrote the API's control characters raw: {said:?}"
    );
    assert!(said.contains("Acme\\u{1b}[2J"), "{said}");
    let _ = std::fs::remove_dir_all(&out);
}
