//! Inclusion proofs end to end: every exported recording of a signed export is proven and
//! checked on a copy of that one file alone, by `custos verify-proof`, by a checker written
//! apart from custos (tests/proof/check_proof.py) and by `minisign -V` for the signature; and
//! the forgeries fail.

use std::path::Path;
use std::process::{Command, Output};

use super::{BIN, keygen, run, scenario, start, tmp};

const CHECKER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/proof/check_proof.py"
);

fn custos(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn prove(root: &Path, rid: &str, out: &Path) {
    let o = custos(&[
        "prove",
        root.to_str().unwrap(),
        rid,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn verify_proof(file: &Path, proof: &Path, key: &Path) -> Output {
    custos(&[
        "verify-proof",
        file.to_str().unwrap(),
        proof.to_str().unwrap(),
        "--pubkey",
        key.to_str().unwrap(),
    ])
}

/// (recording id, file) of every Exported row.
fn exported(root: &Path) -> Vec<(String, String)> {
    let mut r = csv::Reader::from_path(root.join("data/chain_of_custody.csv")).unwrap();
    r.records()
        .map(|x| x.unwrap())
        .filter(|x| &x[6] == "Exported")
        .map(|x| (x[0].to_owned(), x[1].to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_exported_recording_proves_alone_and_forgeries_fail() {
    let env = start(scenario()).await;
    let dir = tmp("proofs");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("k.key");
    keygen(&key);
    let pubkey = dir.join("k.key.pub");
    let (a, b) = (dir.join("a"), dir.join("b"));
    for (out, matter) in [(&a, "M-A"), (&b, "M-B")] {
        let c = crate::common::export_cmd(
            &env.base_url,
            crate::common::QUERY,
            out,
            &["--matter", matter, "--sign-key", key.to_str().unwrap()],
        );
        let o = run(c).await;
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let items = exported(&a);
    assert!(items.len() >= 5, "{} exported", items.len());
    for (i, (rid, file)) in items.iter().enumerate() {
        let proof = dir.join(format!("{rid}.proof.json"));
        prove(&a, rid, &proof);
        // The one file, alone, under another name.
        let alone = dir.join(format!("handed-over-{i}.wav"));
        std::fs::copy(a.join(file), &alone).unwrap();
        let o = verify_proof(&alone, &proof, &pubkey);
        let text = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{rid}: {text}");
        assert!(
            text.contains("HOLDS: signed by the holder of the key given (custos matter:M-A"),
            "{text}"
        );
        // Checked apart from custos, as a third party would.
        let o = Command::new("python3")
            .args([CHECKER, alone.to_str().unwrap(), proof.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "check_proof.py {rid}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }

    let (rid, _) = &items[0];
    let proof = dir.join(format!("{rid}.proof.json"));
    let alone = dir.join("handed-over-0.wav");
    // The signature over the tag manifest it carries, by minisign itself.
    let p: serde_json::Value = serde_json::from_slice(&std::fs::read(&proof).unwrap()).unwrap();
    std::fs::write(dir.join("tagmanifest"), p["tagManifest"].as_str().unwrap()).unwrap();
    std::fs::write(
        dir.join("tagmanifest.minisig"),
        p["signature"].as_str().unwrap(),
    )
    .unwrap();
    let o = Command::new("minisign")
        .args(["-V", "-p", pubkey.to_str().unwrap(), "-m"])
        .arg(dir.join("tagmanifest"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "minisign: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    // A flipped byte.
    let mut bytes = std::fs::read(&alone).unwrap();
    bytes[100] ^= 1;
    let flipped = dir.join("flipped.wav");
    std::fs::write(&flipped, &bytes).unwrap();
    assert_eq!(
        verify_proof(&flipped, &proof, &pubkey).status.code(),
        Some(1)
    );
    let o = Command::new("python3")
        .args([CHECKER, flipped.to_str().unwrap(), proof.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    // A proof for another file.
    let other = dir.join("handed-over-1.wav");
    assert_eq!(verify_proof(&other, &proof, &pubkey).status.code(), Some(1));
    // The proof against another export's signed bag-info, tag manifest and signature.
    let mut forged = p.clone();
    for (field, file) in [
        ("bagInfo", "bag-info.txt"),
        ("tagManifest", "tagmanifest-sha256.txt"),
        ("signature", "tagmanifest-sha256.txt.minisig"),
    ] {
        forged[field] = std::fs::read_to_string(b.join(file)).unwrap().into();
    }
    // A changed proof, checked against the file handed over: it must fail (exit 1).
    let fails = |proof: &serde_json::Value| -> String {
        let path = dir.join("forged.json");
        std::fs::write(&path, serde_json::to_vec(proof).unwrap()).unwrap();
        let o = verify_proof(&alone, &path, &pubkey);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(o.status.code(), Some(1), "{text}");
        text
    };
    fails(&forged);
    // … or with its root too: then the audit path does not lead there.
    forged["root"] = std::fs::read_to_string(b.join("bag-info.txt"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Payload-Manifest-Merkle-Root-SHA256: "))
        .unwrap()
        .into();
    fails(&forged);
    // A tag manifest changed under its signature.
    let mut bent = p.clone();
    bent["tagManifest"] = format!("{}\n", p["tagManifest"].as_str().unwrap()).into();
    assert!(fails(&bent).contains("does not verify with this key"));
    // Without a key the proof holds, and says the origin is unchecked.
    let o = custos(&[
        "verify-proof",
        alone.to_str().unwrap(),
        proof.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("ORIGIN UNCHECKED"));
    // A recording that is not Exported cannot be proven.
    let o = custos(&[
        "prove",
        a.to_str().unwrap(),
        "no-such-recording",
        "--out",
        dir.join("x.json").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    // `custos verify` recomputes the root: a re-sealed bag-info stating another one is found.
    let c = super::copy_export(&a, "proofs-resealed");
    let info = std::fs::read_to_string(c.join("bag-info.txt")).unwrap();
    let root_line = info.lines().find(|l| l.contains("Merkle-Root")).unwrap();
    let other_root = custos::digest::Sha256::of(b"another tree");
    let info = info.replace(
        root_line,
        &format!("Payload-Manifest-Merkle-Root-SHA256: {other_root}"),
    );
    std::fs::write(c.join("bag-info.txt"), &info).unwrap();
    let sha = custos::digest::Sha256::of(info.as_bytes());
    super::with_lines(&c.join("tagmanifest-sha256.txt"), |lines| {
        for l in lines.iter_mut() {
            if l.ends_with("  bag-info.txt") {
                *l = format!("{sha}  bag-info.txt");
            }
        }
    });
    std::fs::remove_file(c.join("tagmanifest-sha256.txt.minisig")).unwrap();
    let o = custos(&["verify", c.to_str().unwrap(), "--json"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("merkle-root-mismatch"), "{text}");
    // Hostile input: a FIFO for the file or the proof is refused at once, never waited on; a
    // proof file of 20 MB is refused unread.
    let fifo = dir.join("fifo");
    super::mkfifo(&fifo);
    for (file, proof_file) in [(&fifo, &proof), (&alone, &fifo)] {
        let o = Command::new("timeout")
            .args(["20", BIN, "verify-proof"])
            .arg(file)
            .arg(proof_file)
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(String::from_utf8_lossy(&o.stderr).contains("not a regular file"));
    }
    let huge = dir.join("huge.json");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(20 << 20)
        .unwrap();
    let o = verify_proof(&alone, &huge, &pubkey);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("a proof is at most"));
}
