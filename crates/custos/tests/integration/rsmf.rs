//! The RSMF writer against a checker custos did not write (tests/rsmf/check_rsmf.py, with
//! Relativity's published schema): what custos writes passes it, and the checker is one that
//! fails: a manifest edited to break a reference or the schema is refused.

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use serde_json::{Value, json};

/// The checker, from the repository's root.
fn checker() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/rsmf/check_rsmf.py")
}

/// A file of this test run's own, in the temporary folder.
fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("custos-rsmf-it-{}-{name}", std::process::id()))
}

/// The checker's exit status and what it printed about `rsmf`.
fn check(rsmf: &Path, extra: &[&Path]) -> (i32, Value) {
    let mut c = Command::new("python3");
    c.arg(checker()).arg(rsmf);
    if let [meta, native] = extra {
        c.arg("--metadata").arg(meta).arg("--native").arg(native);
    }
    let o = c.output().expect("python3");
    let out: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code().unwrap_or(-1), out)
}

/// A messaging thread (one medium in its native, one not) written as RSMF, with the metadata
/// and native it was made from: (rsmf, metadata, native).
fn written(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let meta = json!({"id": "r1", "conversationId": "c1", "messagingTranscript": [
        {"id": "m1", "messageText": "Here is the photo", "from": "+15550100", "purpose": "customer",
         "timestamp": "2023-10-01T10:00:00.000Z", "messageMediaAttachments": [
            {"id": "a1", "name": "photo-1.png", "mediaType": "image/png", "contentLength": 8},
            {"id": "a2", "name": "gone.png", "mediaType": "image/png", "contentLength": 8}]},
        {"id": "m2", "messageText": "Thank you, Zoë", "from": "+18005550100", "purpose": "agent",
         "timestamp": "2023-10-01T10:01:00.000Z", "fromUser": {"id": "u1", "name": "Ann Agent"}},
    ]});
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (n, b) in [
        ("transcript.json", b"[]".as_slice()),
        ("media/photo-1.png", b"\x89PNG\r\n\x1a\n"),
    ] {
        w.start_file(n, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(b).unwrap();
    }
    let native = scratch(&format!("{name}.zip"));
    std::fs::write(&native, w.finish().unwrap().into_inner()).unwrap();
    let meta_path = scratch(&format!("{name}.json"));
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    let r = custos::produce::rsmf::build(&meta, &native, "custos test")
        .expect("a thread")
        .expect("written");
    let rsmf = scratch(&format!("{name}.rsmf"));
    std::fs::write(&rsmf, &r.bytes).unwrap();
    (rsmf, meta_path, native)
}

/// `rsmf` again with its manifest changed by `edit` (re-zipped and re-encoded, the rest kept).
fn edited(rsmf: &Path, edit: impl Fn(&mut Value)) -> PathBuf {
    let text = String::from_utf8(std::fs::read(rsmf).unwrap()).unwrap();
    let (head, rest) = text.split_once("filename=\"rsmf.zip\"").unwrap();
    let (part_head, body) = rest.split_once("\r\n\r\n").unwrap();
    let (b64, tail) = body.split_once("--=_custos_rsmf--").unwrap();
    let b64: String = b64.split_whitespace().collect();
    let zip_bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let mut z = zip::ZipArchive::new(Cursor::new(zip_bytes)).unwrap();
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..z.len() {
        let mut m = z.by_index(i).unwrap();
        let name = String::from_utf8_lossy(m.name_raw()).into_owned();
        let mut b = Vec::new();
        m.read_to_end(&mut b).unwrap();
        if name == "rsmf_manifest.json" {
            let mut v: Value = serde_json::from_slice(&b).unwrap();
            edit(&mut v);
            b = serde_json::to_vec(&v).unwrap();
        }
        w.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(&b).unwrap();
    }
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(w.finish().unwrap().into_inner());
    let out = rsmf.with_extension("edited.rsmf");
    std::fs::write(
        &out,
        format!(
            "{head}filename=\"rsmf.zip\"{part_head}\r\n\r\n{encoded}\r\n--=_custos_rsmf--{tail}"
        ),
    )
    .unwrap();
    out
}

#[test]
fn what_custos_writes_passes_the_checker_and_keeps_every_message_and_medium() {
    let (rsmf, meta, native) = written("good");
    let (code, out) = check(&rsmf, &[&meta, &native]);
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(out["version"], "2.0.0");
    assert_eq!(
        (out["events"].as_u64(), out["attachments"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(out["participants"], 2);
}

/// The checker refuses `name`'s RSMF once `edit` changed its manifest (compared with the
/// metadata and native it was made from when `sources`), its first problem containing `needle`.
fn assert_refused(name: &str, edit: impl Fn(&mut Value), sources: bool, needle: &str) {
    let (rsmf, meta, native) = written(name);
    let bad = edited(&rsmf, edit);
    let extra: &[&Path] = if sources { &[&meta, &native] } else { &[] };
    let (code, out) = check(&bad, extra);
    assert_eq!(code, 1, "{out:#}");
    let first = out["problems"][0].as_str().unwrap_or_default();
    assert!(first.contains(needle), "{out:#}");
}

#[test]
fn the_checker_refuses_an_event_whose_participant_is_not_defined() {
    assert_refused(
        "dangling",
        |m| m["events"][0]["participant"] = json!("P99"),
        false,
        "participant P99 is not defined",
    );
}

#[test]
fn the_checker_refuses_what_relativity_s_schema_forbids() {
    assert_refused(
        "schema",
        |m| m["events"][1]["type"] = json!("chat"),
        false,
        "schema: events/1/type",
    );
}

#[test]
fn the_checker_refuses_a_body_that_is_not_the_message_genesys_returned() {
    assert_refused(
        "body",
        |m| m["events"][1]["body"] = json!("Thank you, Zoe"),
        true,
        "message m2",
    );
}
