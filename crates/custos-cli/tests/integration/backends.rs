//! One conformance suite over every storage backend (object_store's `integration.rs` is the
//! model): the `custos_store::store::Backend` contract, run the same way against s3s-fs, moto
//! and Azurite, through the trait alone.
//!
//! The backends read their credentials from the environment, as in production, and a test
//! process may not change its own environment; so each backend's test starts its server and
//! runs the suite in a child process of this test binary (`suite_in_child`, ignored in normal
//! runs) with that backend's environment.

use std::path::{Path, PathBuf};
use std::process::Command;

use custos_store::plan::Item;
use custos_store::store::{Backend, PutError, StoreOptions};
use custos_store::target::{Encryption, Protection, Target};

use crate::common::tmp;
use crate::storage::{azurite, azurite_conn, helper, moto, s3s_fs};

/// The child's settings, passed through its environment.
const URL_VAR: &str = "CUSTOS_SUITE_URL";
const ENDPOINT_VAR: &str = "CUSTOS_SUITE_ENDPOINT";
const DIR_VAR: &str = "CUSTOS_SUITE_DIR";
const QUIRKS_VAR: &str = "CUSTOS_SUITE_QUIRKS";

fn file(dir: &Path, name: &str, bytes: &[u8]) -> Item {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    Item {
        rel: format!("data/{name}"),
        path,
        size: bytes.len() as u64,
        sha256: custos::digest::Sha256::of(bytes).hex(),
        source: "manifest-sha256.txt",
    }
}

fn plain() -> Protection {
    Protection {
        lock_mode: None,
        retain_until: None,
        legal_hold: false,
        encryption: Encryption::BucketDefault,
        encryption_scope: None,
        require_worm: false,
    }
}

/// What a test server does differently from the cloud it stands for.
#[derive(Clone, Copy, Debug)]
struct Quirks {
    /// Refuses a body whose SHA-256 is not the one sent with it (S3 and Azure do).
    checks_sent_digest: bool,
    /// Keeps the body of a put it refused.
    keeps_refused_bytes: bool,
}

impl Quirks {
    fn to_env(self) -> String {
        format!(
            "{}{}",
            u8::from(self.checks_sent_digest),
            u8::from(self.keeps_refused_bytes)
        )
    }

    fn from_env(s: &str) -> Quirks {
        Quirks {
            checks_sent_digest: s.as_bytes()[0] == b'1',
            keeps_refused_bytes: s.as_bytes()[1] == b'1',
        }
    }
}

/// The contract every backend keeps.
async fn suite(store: &dyn Backend, target: &Target, dir: &Path, quirks: Quirks) {
    let p = plain();
    // Keys a quirk of the server leaves behind.
    let mut extra = Vec::new();
    // Pre-flight answers for a reachable destination (what it finds depends on the store).
    let checks = store
        .preflight()
        .await
        .expect("pre-flight reaches the store");
    assert!(!checks.is_empty(), "pre-flight checks something");

    // Nothing there yet.
    let small = file(
        dir,
        "small.bin",
        b"custos backend suite: one small object\n",
    );
    let key = target.key(&small.rel);
    assert!(
        store.head(&key).await.unwrap().is_none(),
        "{key} absent at first"
    );

    // A put stores exactly the bytes, and says what it stored.
    let stored = store.put(&small, &key, &p).await.expect("put");
    assert_eq!(stored.key, key);
    let back = store
        .head(&key)
        .await
        .unwrap()
        .expect("stored object reads back");
    assert_eq!(back.size, Some(small.size));
    assert_eq!(
        back.sha256.as_ref().or(back.sha256_metadata.as_ref()),
        Some(&small.sha256),
        "the store holds the bag's SHA-256 for it"
    );
    assert_eq!(
        store.download_sha256(&key).await.unwrap(),
        (small.sha256.clone(), small.size),
        "its bytes hash as the file's"
    );

    // Never over an existing object, and the object is unchanged by the refused write.
    let other = file(dir, "other.bin", b"different bytes under the same key");
    match store.put(&other, &key, &p).await {
        Err(PutError::Exists) => {}
        r => panic!("a second put at {key} must be refused as Exists: {r:?}"),
    }
    assert_eq!(
        store.download_sha256(&key).await.unwrap().0,
        small.sha256,
        "the refused write changed nothing"
    );

    // Bytes that are not what the bag sealed: never stored as if they were. A store that checks
    // the digest it is sent refuses them; one that does not (moto) keeps them, and the bytes
    // read back hash as what they are, which `verify --remote --download` reports.
    let mut lying = file(dir, "lying.bin", b"these bytes are not the sealed ones");
    let real = lying.sha256.clone();
    lying.sha256 = custos::digest::Sha256::of(b"the sealed bytes").hex();
    let lkey = target.key(&lying.rel);
    let put = store.put(&lying, &lkey, &p).await;
    let after = store.head(&lkey).await.unwrap();
    match (quirks.checks_sent_digest, put) {
        (true, Err(PutError::Refused { .. })) => match &after {
            None => {}
            // s3s-fs 0.14.1 answers BadDigest yet leaves the bytes, without a checksum.
            Some(b) if quirks.keeps_refused_bytes => assert!(
                b.sha256.as_ref().or(b.sha256_metadata.as_ref()) != Some(&lying.sha256),
                "refused bytes kept as if sealed: {b:?}"
            ),
            Some(b) => panic!("nothing may be stored for a refused put: {b:?}"),
        },
        (false, Ok(_)) => {
            assert_eq!(
                store.download_sha256(&lkey).await.unwrap().0,
                real,
                "the bytes read back hash as what they are"
            );
            extra.push(lkey.clone());
        }
        (_, r) => panic!("a put whose bytes differ from the sealed SHA-256: {r:?}"),
    }
    if quirks.keeps_refused_bytes && after.is_some() {
        extra.push(lkey);
    }

    // A large object goes up in parts (the threshold is set low for the suite) and is whole.
    let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let big = file(dir, "big.bin", &big);
    let bkey = target.key(&big.rel);
    let stored = store.put(&big, &bkey, &p).await.expect("multipart put");
    assert!(stored.multipart, "above the threshold: in parts");
    let back = store.head(&bkey).await.unwrap().expect("reads back");
    assert_eq!(back.size, Some(big.size));
    assert_eq!(
        store.download_sha256(&bkey).await.unwrap(),
        (big.sha256.clone(), big.size)
    );

    // Listing finds exactly what was stored under the prefix.
    let mut listed = store.list(&target.prefix()).await.unwrap();
    listed.sort();
    let mut want = vec![key, bkey];
    want.extend(extra);
    want.sort();
    assert_eq!(listed, want);
}

/// The suite, in a child process with the backend's environment (see the module's text).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "run by the backend tests below, in a child process with the backend's environment"]
async fn suite_in_child() {
    let url = std::env::var(URL_VAR).expect("started by a backend test");
    let dir = PathBuf::from(std::env::var(DIR_VAR).unwrap());
    let target = Target::parse(&url).unwrap();
    let opts = StoreOptions {
        endpoint: std::env::var(ENDPOINT_VAR).ok(),
        region: None,
        multipart_threshold: Some(256 * 1024),
        // S3's smallest part; Azure blocks are any size.
        part_size: Some(if url.starts_with("s3://") {
            5 << 20
        } else {
            64 * 1024
        }),
    };
    let store = custos_store::connect(&target, &opts).await.unwrap();
    let quirks = Quirks::from_env(&std::env::var(QUIRKS_VAR).unwrap());
    suite(store.as_ref(), &target, &dir, quirks).await;
}

/// Runs `suite_in_child` with `env`, and fails with its output if the suite fails.
fn run_suite(url: &str, endpoint: &str, dir: &Path, quirks: Quirks, env: &[(&str, &str)]) {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "backends::suite_in_child",
        "--ignored",
        "--nocapture",
    ])
    .env(URL_VAR, url)
    .env(ENDPOINT_VAR, endpoint)
    .env(DIR_VAR, dir)
    .env(QUIRKS_VAR, quirks.to_env())
    .env("AWS_EC2_METADATA_DISABLED", "true")
    .env_remove("AWS_PROFILE")
    .env_remove("AWS_ENDPOINT_URL")
    .env_remove("AZURE_STORAGE_CONNECTION_STRING");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    let out = format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success(),
        "the backend suite failed on {url}:\n{out}"
    );
    assert!(out.contains("1 passed"), "the suite did not run:\n{out}");
}

const AWS_TEST_ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "testtest"),
    ("AWS_REGION", "us-east-1"),
];

#[test]
fn the_backend_contract_holds_on_s3s_fs() {
    let dir = tmp("suite-s3s-fs");
    std::fs::create_dir_all(&dir).unwrap();
    let s3 = s3s_fs(&dir, &["suite"]);
    let quirks = Quirks {
        checks_sent_digest: true,
        keeps_refused_bytes: true,
    };
    run_suite("s3://suite/run-1", &s3.url, &dir, quirks, AWS_TEST_ENV);
}

#[test]
fn the_backend_contract_holds_on_moto() {
    let dir = tmp("suite-moto");
    std::fs::create_dir_all(&dir).unwrap();
    let m = moto(&dir);
    helper(&["s3-bucket", &m.url, "suite"]);
    // moto 5.2.5 stores what it is sent without checking x-amz-checksum-sha256.
    let quirks = Quirks {
        checks_sent_digest: false,
        keeps_refused_bytes: false,
    };
    run_suite("s3://suite/run-1", &m.url, &dir, quirks, AWS_TEST_ENV);
}

#[test]
fn the_backend_contract_holds_on_azurite() {
    let dir = tmp("suite-azurite");
    std::fs::create_dir_all(&dir).unwrap();
    let az = azurite(&dir);
    let conn = azurite_conn(&az);
    helper(&["az-container", &conn, "suite"]);
    let endpoint = format!("{}/devstoreaccount1", az.url);
    run_suite(
        "azure://devstoreaccount1/suite/run-1",
        &endpoint,
        &dir,
        Quirks {
            checks_sent_digest: true,
            keeps_refused_bytes: false,
        },
        &[("AZURE_STORAGE_CONNECTION_STRING", &conn)],
    );
}
