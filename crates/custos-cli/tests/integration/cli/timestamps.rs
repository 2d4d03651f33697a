//! RFC 3161 timestamps end to end, against a Time Stamping Authority on loopback made of
//! OpenSSL's own implementation (tests/tsa/tsa_server.py runs `openssl ts -reply`), checked by
//! `openssl ts -verify` and by `custos verify --tsa-ca`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use super::{BIN, keygen, run, scenario, start, tmp};

const TSA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/tsa/tsa_server.py");

/// The TSA, killed when dropped.
pub(crate) struct Tsa {
    child: Child,
    pub(crate) url: String,
    pub(crate) ca: PathBuf,
}

impl Drop for Tsa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn tsa(dir: &Path) -> Tsa {
    tsa_in_mode(dir, "honest")
}

/// The TSA, honest or (`tampered`) hostile: its tokens parse but their signature does not hold.
pub(crate) fn tsa_in_mode(dir: &Path, mode: &str) -> Tsa {
    let mut child = Command::new("python3")
        .arg(TSA)
        .arg(dir)
        .arg(mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("port ")
        .expect("the TSA prints its port");
    Tsa {
        child,
        url: format!("http://127.0.0.1:{port}/"),
        ca: dir.join("ca.crt"),
    }
}

fn openssl_verify(tsr: &Path, data: &Path, ca: &Path) -> Output {
    Command::new("openssl")
        .args(["ts", "-verify", "-in"])
        .arg(tsr)
        .arg("-data")
        .arg(data)
        .arg("-CAfile")
        .arg(ca)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn exports_are_timestamped_and_openssl_and_verify_check_the_tokens() {
    let env = start(scenario()).await;
    let dir = tmp("timestamps");
    std::fs::create_dir_all(&dir).unwrap();
    let t = tsa(&dir.join("tsa"));
    let key = dir.join("k.key");
    keygen(&key);
    let out = dir.join("export");
    let export = |tsas: &[&str]| {
        let mut extra = vec!["--sign-key", key.to_str().unwrap(), "--json"];
        for u in tsas {
            extra.extend(["--tsa", u]);
        }
        crate::common::export_cmd(&env.base_url, crate::common::QUERY, &out, &extra)
    };
    // No TSA answers: the export is sealed, not timestamped, and says re-run (exit 3).
    let o = run(export(&["http://127.0.0.1:9/"])).await;
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("not timestamped"));
    assert!(!out.join("tagmanifest-sha256.txt.tsr").exists());
    // The re-run asks again: the first TSA fails, the second timestamps; both are reported.
    let o = run(export(&["http://127.0.0.1:9/", &t.url])).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let stamps = r["timestamps"].as_array().unwrap();
    assert_eq!(stamps.len(), 4, "{stamps:?}");
    assert!(
        stamps[0]["error"].is_string() && stamps[1]["time"].is_string(),
        "{stamps:?}"
    );
    for name in ["tagmanifest-sha256.txt", "tagmanifest-sha256.txt.minisig"] {
        let o = openssl_verify(&out.join(format!("{name}.tsr")), &out.join(name), &t.ca);
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Verification: OK"),
            "openssl ts -verify {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let verify = |root: &Path, extra: &[&str]| {
        Command::new(BIN)
            .args(["verify", root.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap()
    };
    let pubkey = dir.join("k.key.pub");
    let o = verify(
        &out,
        &[
            "--pubkey",
            pubkey.to_str().unwrap(),
            "--tsa-ca",
            t.ca.to_str().unwrap(),
        ],
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("timestamp: tagmanifest-sha256.txt existed at 20"),
        "{text}"
    );
    assert!(text.contains("token verified against --tsa-ca"), "{text}");
    // Without --tsa-ca the time is reported, not proven.
    let o = verify(&out, &["--pubkey", pubkey.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("NOT CHECKED"));
    // Unsigned, with an unchecked token: the verdict says the time (and so the origin) is
    // unproven, and does not speak of a signature.
    let unsigned = dir.join("unsigned");
    let o = run(crate::common::export_cmd(
        &env.base_url,
        crate::common::QUERY,
        &unsigned,
        &["--tsa", &t.url],
    ))
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = verify(&unsigned, &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("INTACT, ORIGIN UNCHECKED: the package is unsigned and carries an RFC 3161 timestamp that was not checked"),
        "{text}"
    );
    // bagit-python still accepts the bag (the tokens, like the signature, are outside it).
    let o = Command::new("bagit.py")
        .args(["--validate", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Another CA: the token does not verify.
    let other = tsa(&dir.join("other-tsa"));
    let o = verify(&out, &["--tsa-ca", other.ca.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("timestamp-invalid"), "{text}");
    // One byte of the tag manifest changed: openssl and custos verify both refuse.
    let c = super::copy_export(&out, "timestamps-changed");
    let tm = c.join("tagmanifest-sha256.txt");
    let mut b = std::fs::read(&tm).unwrap();
    b[0] = if b[0] == b'0' { b'1' } else { b'0' };
    std::fs::write(&tm, b).unwrap();
    let o = openssl_verify(&c.join("tagmanifest-sha256.txt.tsr"), &tm, &t.ca);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("Verification: OK"));
    let o = verify(&c, &["--tsa-ca", t.ca.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("timestamp-mismatch"), "{text}");
}

/// A production volume is timestamped like an export: `produce --tsa`, and `custos timestamp`
/// to ask again when no TSA answered; OpenSSL and `custos verify --tsa-ca` check the tokens.
#[tokio::test(flavor = "multi_thread")]
async fn production_volumes_are_timestamped_and_custos_timestamp_asks_again() {
    let env = start(scenario()).await;
    let dir = tmp("timestamps-produce");
    std::fs::create_dir_all(&dir).unwrap();
    let t = tsa(&dir.join("tsa"));
    let key = dir.join("k.key");
    keygen(&key);
    let export = dir.join("export");
    let o = run(crate::common::export_cmd(
        &env.base_url,
        crate::common::QUERY,
        &export,
        &[],
    ))
    .await;
    assert_eq!(o.status.code(), Some(0));
    let vol = dir.join("vol");
    let custos = |args: &[&str]| Command::new(BIN).args(args).output().unwrap();
    let o = custos(&[
        "produce",
        export.to_str().unwrap(),
        "--out",
        vol.to_str().unwrap(),
        "--prefix",
        "TS",
        "--sign-key",
        key.to_str().unwrap(),
        "--tsa",
        "http://127.0.0.1:9/",
    ]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("only its timestamp is missing") && err.contains("custos timestamp"),
        "{err}"
    );
    assert!(vol.join("tagmanifest-sha256.txt.minisig").exists());
    assert!(!vol.join("tagmanifest-sha256.txt.tsr").exists());

    let stamp = |tsas: &[&str]| {
        let mut args = vec!["timestamp", vol.to_str().unwrap()];
        for u in tsas {
            args.extend(["--tsa", u]);
        }
        custos(&args)
    };
    let o = stamp(&["http://127.0.0.1:9/", &t.url]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains("timestamp FAILED") && said.contains("tagmanifest-sha256.txt.minisig at"),
        "{said}"
    );
    for name in ["tagmanifest-sha256.txt", "tagmanifest-sha256.txt.minisig"] {
        let o = openssl_verify(&vol.join(format!("{name}.tsr")), &vol.join(name), &t.ca);
        assert!(String::from_utf8_lossy(&o.stdout).contains("Verification: OK"));
    }
    let o = custos(&[
        "verify",
        vol.to_str().unwrap(),
        "--pubkey",
        dir.join("k.key.pub").to_str().unwrap(),
        "--tsa-ca",
        t.ca.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("token verified against --tsa-ca"));
    // Nothing to do the second time; not a bag: refused.
    let o = stamp(&[&t.url]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("already timestamped"));
    let o = custos(&["timestamp", dir.to_str().unwrap(), "--tsa", &t.url]);
    assert_eq!(o.status.code(), Some(2));
}

/// A token that does not verify is never kept, and never stops a real one from being asked
/// for: a hostile TSA's answer (it parses, attests the digest and nonce asked, but its
/// signature does not hold) is refused, and a bad token already beside the bag is set aside
/// (kept, renamed) when `custos timestamp` asks a real TSA.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_that_does_not_verify_is_never_kept_and_never_blocks_a_real_one() {
    let env = start(scenario()).await;
    let dir = tmp("timestamps-hostile");
    std::fs::create_dir_all(&dir).unwrap();
    let honest = tsa(&dir.join("tsa"));
    let hostile = tsa_in_mode(&dir.join("hostile-tsa"), "tampered");
    let key = dir.join("k.key");
    keygen(&key);
    let out = dir.join("export");
    let tsr = out.join("tagmanifest-sha256.txt.tsr");
    // The hostile TSA alone: sealed, not timestamped (exit 3), nothing kept.
    let o = run(crate::common::export_cmd(
        &env.base_url,
        crate::common::QUERY,
        &out,
        &["--sign-key", key.to_str().unwrap(), "--tsa", &hostile.url],
    ))
    .await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("the token is refused"), "{err}");
    assert!(!tsr.exists(), "a token that does not verify was kept");
    // `custos timestamp` with the hostile TSA: refused the same way.
    let stamp = |url: &str| {
        Command::new(BIN)
            .args(["timestamp", out.to_str().unwrap(), "--tsa", url])
            .output()
            .unwrap()
    };
    let o = stamp(&hostile.url);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert!(!tsr.exists());
    // The honest TSA: granted; then the token is damaged as a hostile answer would have been.
    let o = stamp(&honest.url);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let mut b = std::fs::read(&tsr).unwrap();
    let last = b.len() - 1;
    b[last] ^= 1;
    std::fs::write(&tsr, &b).unwrap();
    let tm = out.join("tagmanifest-sha256.txt");
    let o = openssl_verify(&tsr, &tm, &honest.ca);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("Verification: OK"));
    // Asking again sets the bad token aside (kept) and stores one that verifies.
    let o = stamp(&honest.url);
    let said = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{said}");
    assert!(said.contains("set aside"), "{said}");
    let o = openssl_verify(&tsr, &tm, &honest.ca);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Verification: OK"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let aside: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("tagmanifest-sha256.txt.tsr.rejected-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "the bad token is kept aside");
    assert_eq!(std::fs::read(aside[0].path()).unwrap(), b);
    let _ = std::fs::remove_dir_all(&dir);
}
