//! `custos export --archive`: collecting from the organization's own recording archive (the
//! bucket Genesys' S3 bulk-actions integration writes into), served by a real S3-compatible
//! server (s3s-fs) over the directory the simulator lands the archive in, with the archive's
//! faults; every outcome compared with the simulator's truth.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use custos_sim::{Running, Scenario, Sim, Truth};
use serde_json::Value;

use crate::common::store::{custos, run, text};
use crate::common::{QUERY, bagit_valid, tmp};
use crate::storage::{Server, s3s_fs};

/// The bucket the archive is in.
const BUCKET: &str = "org-archive";

/// A simulator that landed its archive, and the S3 server that serves it.
struct Archive {
    dir: PathBuf,
    sim: Running,
    s3: Server,
    truth: Truth,
}

impl Archive {
    /// A catalog of calls, screen recordings, chats, emails and messaging threads, its archive
    /// landed with `faults` (the simulator's `--faults` list) under `prefix`.
    async fn new(name: &str, faults: &str, prefix: &str) -> Archive {
        Archive::start(name, faults, prefix, None, |_| {}).await
    }

    /// An archive that fills only through recording bulk jobs (nothing lands at start).
    async fn by_jobs(name: &str, faults: &str) -> Archive {
        Archive::start(name, faults, "", Some(2_000), |_| {}).await
    }

    /// `job_ms`: the archive fills through recording bulk jobs that take this long.
    /// `tweak`: anything else of the scenario.
    async fn start(
        name: &str,
        faults: &str,
        prefix: &str,
        job_ms: Option<u64>,
        tweak: impl FnOnce(&mut Scenario),
    ) -> Archive {
        let by_jobs = job_ms.is_some();
        let dir = tmp(name);
        std::fs::create_dir_all(&dir).unwrap();
        let s3 = s3s_fs(&dir, &[BUCKET]);
        let mut scenario = Scenario {
            conversations: 24,
            min_recording_s: 2,
            max_recording_s: 8,
            screen: 0.3,
            digital: 6,
            archive_dir: Some(dir.join("s3s-fs").join(BUCKET)),
            archive_prefix: prefix.to_owned(),
            archive_by_jobs: by_jobs,
            recording_job_ms: job_ms.unwrap_or(1_000),
            ..Default::default()
        };
        scenario.faults.apply_list(faults).unwrap();
        tweak(&mut scenario);
        let sim = Sim::new(scenario).unwrap();
        let landed = sim.land_archive().unwrap();
        assert_eq!(
            landed > 0,
            !by_jobs,
            "the archive landed at start, unless by jobs"
        );
        let truth = sim.truth();
        let sim = sim.spawn().await.unwrap();
        Archive {
            dir,
            sim,
            s3,
            truth,
        }
    }

    /// `custos export` of the whole catalog into `out`, with `extra` arguments.
    fn command(&self, out: &Path, extra: &[&str]) -> std::process::Command {
        let mut c = custos(&[
            "export",
            "--query",
            QUERY,
            "--out",
            out.to_str().unwrap(),
            "--api-base",
            &self.sim.base_url,
            "--rate",
            "6000",
        ]);
        c.args(extra)
            .env("GENESYSCLOUD_OAUTHCLIENT_ID", "custos-sim-client")
            .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "custos-sim-secret")
            .env_remove("GENESYSCLOUD_REGION");
        c
    }

    async fn export(&self, out: &Path, extra: &[&str]) -> Output {
        run(self.command(out, extra)).await
    }

    /// `export` from the archive at `s3://org-archive/PREFIX`.
    fn collect_command(&self, out: &Path, prefix: &str, extra: &[&str]) -> std::process::Command {
        let url = format!("s3://{BUCKET}/{prefix}");
        let mut args = vec!["--archive", &url, "--archive-endpoint", &self.s3.url];
        args.extend_from_slice(extra);
        self.command(out, &args)
    }

    async fn collect(&self, out: &Path, prefix: &str, extra: &[&str]) -> Output {
        run(self.collect_command(out, prefix, extra)).await
    }

    /// Every recording's outcome is the archive truth's (`api_for_missing`: a recording that
    /// did not land ends as the API path's truth).
    fn assert_truth(&self, out: &Path, api_for_missing: bool) {
        let outcomes = custos::package::outcomes(out).unwrap();
        let hashes = custos::package::exported_hashes(out).unwrap();
        assert_eq!(outcomes.len(), self.truth.recordings.len());
        for t in &self.truth.recordings {
            let a = t.archive.as_ref().expect("an archive truth");
            let want = if api_for_missing && !a.landed && a.expected_outcome == "Failed" {
                &t.expected_outcome
            } else {
                &a.expected_outcome
            };
            assert_eq!(
                outcomes.get(&t.id),
                Some(want),
                "{} {:?} {:?}: {}",
                t.id,
                a.faults,
                t.faults,
                reason(out, &t.id)
            );
            if want == "Exported" {
                assert_eq!(hashes.get(&t.id), Some(&t.sha256), "{}", t.id);
            }
        }
    }

    /// The outcome of every recording `selected` is the archive truth's; the package holds no
    /// other.
    fn assert_truth_of(&self, out: &Path, selected: impl Fn(&custos_sim::RecordingTruth) -> bool) {
        let outcomes = custos::package::outcomes(out).unwrap();
        let want: BTreeMap<String, String> = self
            .truth
            .recordings
            .iter()
            .filter(|t| selected(t))
            .map(|t| {
                (
                    t.id.clone(),
                    t.archive.as_ref().unwrap().expected_outcome.clone(),
                )
            })
            .collect();
        assert_eq!(outcomes, want);
    }

    /// Recordings hit by the archive fault `name`.
    fn hit_by(&self, name: &str) -> usize {
        self.truth
            .recordings
            .iter()
            .filter(|t| t.archive.as_ref().unwrap().faults.iter().any(|f| f == name))
            .count()
    }
}

impl Drop for Archive {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The custody CSV's reason for `rid`.
fn reason(out: &Path, rid: &str) -> String {
    let mut r = csv::Reader::from_path(out.join("data/chain_of_custody.csv")).unwrap();
    let headers = r.headers().unwrap().clone();
    let (id, why) = (
        headers.iter().position(|h| h == "Recording_ID").unwrap(),
        headers.iter().position(|h| h == "Reason").unwrap(),
    );
    r.records()
        .map(|x| x.unwrap())
        .find(|x| &x[id] == rid)
        .map(|x| x[why].to_owned())
        .unwrap_or_default()
}

fn events(out: &Path, kind: &str) -> Vec<Value> {
    std::fs::read_to_string(out.join("data/custody_log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == kind)
        .collect()
}

/// Exported file → SHA-256, as the custody record names them.
fn exported_files(out: &Path) -> BTreeMap<String, String> {
    custos::package::custody_rows(out)
        .unwrap()
        .into_iter()
        .filter(|r| r.outcome == "Exported")
        .map(|r| (r.file_name, r.sha256))
        .collect()
}

/// An archive hit by one fault (`name` at 0.3), collected with `--archive-missing fail`: every
/// outcome is the truth's. The archive and the package.
async fn collected_with_fault(name: &str) -> (Archive, PathBuf) {
    let a = Archive::new(name, &format!("{name}=0.3"), "").await;
    assert!(a.hit_by(name) > 0, "the fault hits some recording");
    let out = a.dir.join("out");
    let o = a.collect(&out, "", &[]).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    a.assert_truth(&out, false);
    (a, out)
}

fn verified(out: &Path) {
    let o = std::process::Command::new(crate::common::BIN)
        .args(["verify", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.code().unwrap_or(9) <= 0, "verify: {}", text(&o));
    assert!(bagit_valid(out), "bagit.py --validate");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_archive_gives_the_api_paths_files_byte_for_byte_without_a_media_request() {
    let a = Archive::new("archive-same", "", "").await;
    let api = a.dir.join("api");
    let o = a.export(&api, &[]).await;
    assert!(o.status.code().unwrap_or(9) <= 1, "{}", text(&o));
    let before = a.sim.sim.stats();
    let from_archive = a.dir.join("archive");
    let o = a.collect(&from_archive, "", &[]).await;
    assert!(o.status.code().unwrap_or(9) <= 1, "{}", text(&o));
    let after = a.sim.sim.stats();

    a.assert_truth(&from_archive, false);
    let files = exported_files(&from_archive);
    assert!(files.len() > 20, "{files:?}");
    assert_eq!(
        files,
        exported_files(&api),
        "the same files, named alike, with the same bytes"
    );
    // No media was asked of the API: no batch job, no transcode, no media URL.
    assert_eq!(after.media_requests, before.media_requests);
    let batch = |s: &custos_sim::Stats| {
        s.requests
            .iter()
            .filter(|(k, _)| k.contains("batchrequests"))
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    assert_eq!(batch(&after), batch(&before));
    // Each exported recording names the object it was read from, its version and when it
    // was written there, and the archive's metadata is kept as received.
    let objects = events(&from_archive, "archive-object");
    assert_eq!(objects.len(), files.len());
    for e in &objects {
        assert!(
            e["key"].as_str().unwrap().contains("/conversation_id="),
            "{e}"
        );
        assert!(e["lastModified"].is_string(), "{e}");
        assert_eq!(e["comparedWithTheBytesRead"]["md5FromEtag"], true, "{e}");
        let kept = from_archive.join(e["metadata"]["file"].as_str().unwrap());
        assert_eq!(
            custos::durable::sha256_file(&kept).unwrap().0.hex(),
            e["metadata"]["sha256"].as_str().unwrap()
        );
    }
    let t = &a
        .truth
        .recordings
        .iter()
        .find(|t| t.expected_outcome == "Exported")
        .unwrap();
    assert!(
        reason(&from_archive, &t.id).starts_with("read from the archive: s3://org-archive/ key "),
        "{}",
        reason(&from_archive, &t.id)
    );
    verified(&from_archive);
}

/// The keys every `archive-unexpected` line names, with the kind of each.
fn unexpected_keys(out: &Path) -> BTreeMap<String, String> {
    events(out, "archive-unexpected")
        .iter()
        .flat_map(|e| e["objects"].as_array().unwrap().clone())
        .map(|o| {
            (
                o["key"].as_str().unwrap().to_owned(),
                o["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_in_a_collected_folder_that_no_item_is_are_named_and_never_read() {
    let a = Archive::new("archive-stray", "archive-stray=0.5", "").await;
    // Calls only: the screen recordings beside them are in the same folders, left out.
    let out = a.dir.join("out");
    let o = a.collect(&out, "", &["--media", "audio"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let with_calls: std::collections::BTreeSet<&str> = a
        .truth
        .recordings
        .iter()
        .filter(|t| t.media == "audio")
        .map(|t| t.conversation_id.as_str())
        .collect();
    let in_folder = |key: &str| {
        with_calls
            .iter()
            .any(|c| key.contains(&format!("/conversation_id={c}/")))
    };
    // Truth: the strays of the folders looked in, and the left-out recordings landed there.
    let mut want: BTreeMap<String, String> = BTreeMap::new();
    for key in a.truth.archive_strays.iter().filter(|k| in_folder(k)) {
        want.insert(key.clone(), "unknown".into());
        want.insert(format!("{key}_metadata.json"), "unknown".into());
    }
    let strays = want.len();
    for t in &a.truth.recordings {
        let archived = t.archive.as_ref().unwrap();
        if t.media != "audio" && archived.landed && in_folder(&archived.key) {
            want.insert(archived.key.clone(), "excluded".into());
            want.insert(format!("{}_metadata.json", archived.key), "excluded".into());
        }
    }
    assert!(strays > 0, "the fault hits a folder that is looked in");
    assert!(
        want.len() > strays,
        "a left-out screen recording is in a folder looked in"
    );
    assert_eq!(unexpected_keys(&out), want);
    let reconciled = events(&out, "archive-reconciled");
    assert_eq!(reconciled.len(), 1, "{reconciled:?}");
    assert_eq!(reconciled[0]["unexpected"], want.len(), "{}", reconciled[0]);
    assert_eq!(
        reconciled[0]["foldersListed"],
        with_calls.len(),
        "{}",
        reconciled[0]
    );
    // Never read: no object line, no download names them.
    let log = std::fs::read_to_string(out.join("data/custody_log.jsonl")).unwrap();
    for key in want.keys() {
        let named = log.lines().filter(|l| l.contains(key.as_str())).count();
        assert_eq!(
            named, 1,
            "{key} is named once, in its archive-unexpected line"
        );
    }
    a.assert_truth_of(&out, |t| t.media == "audio");
    // The report names them and says why.
    let page = a.dir.join("report.html");
    let o = std::process::Command::new(crate::common::BIN)
        .args([
            "report",
            out.to_str().unwrap(),
            "--out",
            page.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("The archive&#39;s folders, reconciled")
            || html.contains("The archive's folders, reconciled")
    );
    assert!(
        html.contains(
            a.truth
                .archive_strays
                .iter()
                .find(|k| in_folder(k))
                .unwrap()
                .as_str()
        )
    );
    assert!(html.contains("recordings the operator left out by media type"));
    // A resumed run does not reconcile again.
    let o = a.collect(&out, "", &["--media", "audio"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(events(&out, "archive-reconciled").len(), 1);
    verified(&out);
}

/// A TCP proxy on loopback in front of `upstream` (`http://host:port`) that forwards every
/// byte as it is, except that it cuts, once, the answer to the first request whose head holds
/// `needle`, after `cut` bytes of that answer. Its URL, and the request heads it forwarded.
async fn cutting_proxy(
    upstream: &str,
    needle: String,
    cut: usize,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    let used = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = l.accept().await else {
                return;
            };
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let armed = Arc::new(AtomicBool::new(false));
            let (a1, a2, used, needle, heads) = (
                armed.clone(),
                armed,
                used.clone(),
                needle.clone(),
                heads.clone(),
            );
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = cr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                    if text.starts_with("get ") {
                        if text.contains(&needle) && !used.swap(true, Ordering::SeqCst) {
                            a1.store(true, Ordering::SeqCst);
                        }
                        heads.lock().unwrap().push(text);
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = sw.shutdown().await;
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut sent = 0usize;
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let mut n = n;
                    if a2.load(Ordering::SeqCst) {
                        if sent + n >= cut {
                            n = cut - sent;
                            let _ = cw.write_all(&buf[..n]).await;
                            break;
                        }
                        sent += n;
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = cw.shutdown().await;
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_that_breaks_goes_on_from_the_bytes_kept_of_the_same_object() {
    let a = Archive::new("archive-resume", "", "").await;
    let t = a
        .truth
        .recordings
        .iter()
        .filter(|t| t.archive.as_ref().unwrap().expected_outcome == "Exported")
        .max_by_key(|t| t.size_bytes)
        .unwrap();
    let name = t.archive.as_ref().unwrap().key.rsplit('/').next().unwrap();
    let (proxy, heads) = cutting_proxy(
        &a.s3.url,
        format!("{}?", name.to_ascii_lowercase()),
        t.size_bytes as usize / 2,
    )
    .await;
    let out = a.dir.join("out");
    let o = run(a.command(
        &out,
        &[
            "--archive",
            &format!("s3://{BUCKET}/"),
            "--archive-endpoint",
            &proxy,
        ],
    ))
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    a.assert_truth(&out, false);
    // Two reads: the first broke; the second asked for the rest of that object only, and the
    // file is the whole object (its SHA-256 is the truth's: assert_truth).
    let attempts: Vec<Value> = events(&out, "download-attempt")
        .into_iter()
        .filter(|e| e["recordingId"] == t.id.as_str())
        .collect();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(
        attempts[0]["result"].as_str().unwrap().contains("broke"),
        "{}",
        attempts[0]
    );
    let from = attempts[1]["rangeFrom"].as_u64().unwrap();
    assert!(from > 0 && from < t.size_bytes, "{from}");
    assert_eq!(attempts[1]["resumedFrom"], from, "{}", attempts[1]);
    assert_eq!(attempts[1]["bytes"], t.size_bytes);
    let etag = events(&out, "archive-object")
        .into_iter()
        .find(|e| e["recordingId"] == t.id.as_str())
        .unwrap()["etag"]
        .as_str()
        .unwrap()
        .to_owned();
    let heads = heads.lock().unwrap().clone();
    let ranged: Vec<&String> = heads
        .iter()
        .filter(|h| h.contains("range: bytes="))
        .collect();
    assert_eq!(ranged.len(), 1, "one read asked for a range");
    assert!(
        ranged[0].contains(&format!("range: bytes={from}-"))
            && ranged[0].contains(&format!("if-match: \"{}\"", etag.to_ascii_lowercase())),
        "{}",
        ranged[0]
    );
    verified(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_archives_copy_of_what_the_source_deleted_is_named_by_default_and_read_when_asked() {
    // More recordings deleted and archived at the source than the default catalog's few.
    let a = Archive::start(
        "archive-settled",
        "archive-keeps-settled=1",
        "",
        None,
        |s| {
            s.deleted_fraction = 0.2;
            s.archived_fraction = 0.2;
        },
    )
    .await;
    let copies: Vec<&custos_sim::RecordingTruth> = a
        .truth
        .recordings
        .iter()
        .filter(|t| t.archive.as_ref().unwrap().settled_copy)
        .collect();
    for state in ["DELETED", "ARCHIVED"] {
        assert!(
            copies.iter().any(|t| t.catalog_file_state == state),
            "the archive keeps a copy of a recording {state} at the source"
        );
    }
    // By default the listing settles them; their copies are named, never read.
    let named = a.dir.join("named");
    let o = a.collect(&named, "", &[]).await;
    assert!(o.status.code().unwrap_or(9) <= 1, "{}", text(&o));
    a.assert_truth(&named, false);
    let kinds = unexpected_keys(&named);
    for t in &copies {
        let key = &t.archive.as_ref().unwrap().key;
        assert_eq!(kinds.get(key).map(String::as_str), Some("settled"), "{key}");
    }
    // A resume that would read them is another export: refused.
    let o = a.collect(&named, "", &["--archive-settled", "read"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // Asked for, they are read and judged like any recording of the archive.
    let read = a.dir.join("read");
    let o = a.collect(&read, "", &["--archive-settled", "read"]).await;
    assert!(o.status.code().unwrap_or(9) <= 1, "{}", text(&o));
    let outcomes = custos::package::outcomes(&read).unwrap();
    let hashes = custos::package::exported_hashes(&read).unwrap();
    for t in &a.truth.recordings {
        let want = &t.archive.as_ref().unwrap().expected_reading_settled;
        assert_eq!(
            outcomes.get(&t.id),
            Some(want),
            "{}: {}",
            t.id,
            reason(&read, &t.id)
        );
        if want == "Exported" {
            assert_eq!(hashes.get(&t.id), Some(&t.sha256), "{}", t.id);
        }
    }
    let exported_copy = copies
        .iter()
        .find(|t| t.archive.as_ref().unwrap().expected_reading_settled == "Exported")
        .expect("a copy reads whole");
    let why = reason(&read, &exported_copy.id);
    assert!(
        why.starts_with(&format!(
            "the source listed it {} (--archive-settled read): read from the archive: ",
            exported_copy.catalog_file_state
        )),
        "{why}"
    );
    assert!(
        !unexpected_keys(&read).values().any(|k| k == "settled"),
        "nothing left unread"
    );
    let query: Value =
        serde_json::from_slice(&std::fs::read(read.join("data/query.json")).unwrap()).unwrap();
    assert_eq!(query["retrieval"]["archive"]["settledCopies"], "read");
    let report = std::fs::read_to_string(read.join("report.html")).unwrap();
    assert!(report.contains("were read from their copies in the archive"));
    verified(&read);
}

/// An S3 endpoint on loopback that answers every ListObjectsV2 with `page` (an XML body) and
/// anything else 404; the requests it answered.
async fn listing_server(
    page: &'static str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let served = std::sync::Arc::new(AtomicU64::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 8192];
                loop {
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let end = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head = String::from_utf8_lossy(&req[..end]).into_owned();
                    req.drain(..end);
                    count.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = if head.contains("list-type=2") {
                        ("200 OK", page)
                    } else {
                        ("404 Not Found", "<Error><Code>NoSuchKey</Code></Error>")
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, served)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_says_more_for_ever_is_not_followed_round_a_loop() {
    let a = Archive::new("archive-endless", "", "").await;
    // Empty pages, each saying there is more, with the same token every time.
    let (endpoint, served) = listing_server(
        r#"<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>org-archive</Name><Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>again</NextContinuationToken></ListBucketResult>"#,
    )
    .await;
    let out = a.dir.join("out");
    let o = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        run(a.command(
            &out,
            &[
                "--archive",
                "s3://org-archive",
                "--archive-endpoint",
                &endpoint,
            ],
        )),
    )
    .await
    .expect("the export ends");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // Every recording the listing did not settle is missing from that archive: Failed.
    let outcomes = custos::package::outcomes(&out).unwrap();
    let looked = a
        .truth
        .recordings
        .iter()
        .filter(|t| !matches!(t.catalog_file_state.as_str(), "DELETED" | "ARCHIVED"))
        .count();
    assert_eq!(outcomes.values().filter(|o| *o == "Failed").count(), looked);
    // One listing request per recording looked for and per folder reconciled, no more.
    let conversations: std::collections::BTreeSet<&str> = a
        .truth
        .recordings
        .iter()
        .map(|t| t.conversation_id.as_str())
        .collect();
    let n = served.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(n as usize, looked + conversations.len(), "{n} requests");
    verified(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_lists_keys_outside_the_folder_asked_for_is_refused() {
    let a = Archive::new("archive-elsewhere", "", "").await;
    let (endpoint, _) = listing_server(
        r#"<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>org-archive</Name><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><Contents><Key>other-org/secret.wav</Key><Size>10</Size><ETag>"0123456789abcdef0123456789abcdef"</ETag></Contents></ListBucketResult>"#,
    )
    .await;
    let out = a.dir.join("out");
    let o = run(a.command(
        &out,
        &[
            "--archive",
            "s3://org-archive",
            "--archive-endpoint",
            &endpoint,
        ],
    ))
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = a
        .truth
        .recordings
        .iter()
        .find(|t| t.expected_outcome == "Exported")
        .unwrap();
    let why = reason(&out, &t.id);
    assert!(
        why.contains("listing the archive failed")
            && why.contains("other-org/secret.wav")
            && why.contains("not under it"),
        "{why}"
    );
    assert!(events(&out, "archive-object").is_empty(), "nothing read");
    verified(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_name_with_markup_and_control_characters_reaches_no_page_or_terminal_raw() {
    let a = Archive::new("archive-hostile-name", "", "").await;
    let t = a
        .truth
        .recordings
        .iter()
        .find(|t| t.media == "audio" && t.expected_outcome == "Exported")
        .unwrap();
    let folder = t
        .archive
        .as_ref()
        .unwrap()
        .key
        .rsplit_once('/')
        .unwrap()
        .0
        .to_owned();
    let name = "<script>alert(1)\u{1b}[31mred\u{7}.wav";
    std::fs::write(
        a.dir.join("s3s-fs").join(BUCKET).join(&folder).join(name),
        b"planted",
    )
    .unwrap();
    let out = a.dir.join("out");
    let o = a.collect(&out, "", &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The server's listing of that folder is not XML 1.0 (a control character in a key): the
    // folder is said not listed, with the store's words, and nothing is read from it but the
    // recording (looked for by its own name).
    let lines = events(&out, "archive-unexpected");
    let unlisted: Vec<&Value> = lines.iter().filter(|e| e["listed"] == false).collect();
    assert_eq!(unlisted.len(), 1, "{lines:?}");
    assert_eq!(unlisted[0]["conversationId"], t.conversation_id.as_str());
    assert_eq!(events(&out, "archive-reconciled")[0]["foldersNotListed"], 1);
    assert_eq!(custos::package::outcomes(&out).unwrap()[&t.id], "Exported");
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        page.contains("1 folders could not be listed"),
        "the report warns"
    );
    for (what, bytes) in [
        ("stderr", o.stderr.clone()),
        ("stdout", o.stdout.clone()),
        ("report.html", page.into_bytes()),
        (
            "chain_of_custody.csv",
            std::fs::read(out.join("data/chain_of_custody.csv")).unwrap(),
        ),
    ] {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{what}: a raw control character"
        );
        assert!(!text.contains("<script>"), "{what}: raw markup");
    }
    verified(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recording_the_archive_lacks_fails_naming_the_folder_looked_in() {
    let (a, out) = collected_with_fault("archive-missing").await;
    let t = a
        .truth
        .recordings
        .iter()
        .find(|t| !t.archive.as_ref().unwrap().landed && t.expected_outcome == "Exported")
        .unwrap();
    let why = reason(&out, &t.id);
    let folder = t.archive.as_ref().unwrap().key.rsplit_once('/').unwrap().0;
    assert!(
        why.starts_with("not in the archive") && why.contains(folder),
        "{why}"
    );
    // The integration exported it (Genesys says so), and the object is gone: both are said.
    assert!(
        why.contains("Genesys states it exported it at ")
            && why.ends_with("(exportedDate), yet no object is there"),
        "{why}"
    );
    let missing = events(&out, "archive-missing");
    assert!(
        missing
            .iter()
            .all(|e| e["source"]["exportedDate"].is_string()),
        "{missing:?}"
    );
    verified(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_archive_missing_api_what_the_archive_lacks_comes_through_the_api() {
    let a = Archive::new("archive-fallback", "archive-missing=0.3", "").await;
    let out = a.dir.join("out");
    let before = a.sim.sim.stats();
    let o = a.collect(&out, "", &["--archive-missing", "api"]).await;
    assert!(o.status.code().unwrap_or(9) <= 1, "{}", text(&o));
    a.assert_truth(&out, true);
    // Only what the archive lacked was asked of the media API, and the log says which.
    let missing = events(&out, "archive-missing");
    let lacked = a
        .truth
        .recordings
        .iter()
        .filter(|t| {
            !t.archive.as_ref().unwrap().landed
                && ["AVAILABLE", "RESTORED"].contains(&t.catalog_file_state.as_str())
        })
        .count();
    assert_eq!(missing.len(), lacked);
    assert!(
        missing
            .iter()
            .all(|e| e["then"] == "fetched through the API")
    );
    let media = a.sim.sim.stats().media_requests - before.media_requests;
    assert!(
        media >= lacked as u64 && media < (lacked as u64) * 3,
        "{media} for {lacked}"
    );
    verified(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_altered_after_landing_is_corrupted_and_quarantined() {
    let (_archive, out) = collected_with_fault("archive-altered").await;
    assert!(out.join("data/quarantine").is_dir());
    verified(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_that_disagrees_with_the_api_keeps_the_recording_out_of_the_evidence() {
    let (a, out) = collected_with_fault("archive-metadata").await;
    let t = a
        .truth
        .recordings
        .iter()
        .find(|t| {
            t.archive.as_ref().unwrap().faults == ["archive-metadata"]
                && t.expected_outcome == "Exported"
        })
        .unwrap();
    let why = reason(&out, &t.id);
    assert!(
        why.contains("the archive's metadata disagrees") && why.contains("durationMs"),
        "{why}"
    );
    verified(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recording_that_landed_twice_is_not_chosen_between() {
    let (_archive, out) = collected_with_fault("archive-duplicate").await;
    assert!(!events(&out, "archive-ambiguous").is_empty());
    verified(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_archive_under_a_prefix_is_read_there() {
    let a = Archive::new("archive-prefix", "", "genesys/recordings/").await;
    let out = a.dir.join("out");
    let o = a.collect(&out, "genesys/recordings", &[]).await;
    assert!(o.status.code().unwrap_or(9) <= 1, "{}", text(&o));
    a.assert_truth(&out, false);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_metadata_file_of_megabytes_is_refused_unread_and_the_recording_kept_apart() {
    let a = Archive::new("archive-huge-meta", "", "").await;
    let t = a
        .truth
        .recordings
        .iter()
        .find(|t| t.archive.as_ref().unwrap().expected_outcome == "Exported")
        .unwrap();
    let key = &t.archive.as_ref().unwrap().key;
    let meta = a
        .dir
        .join("s3s-fs")
        .join(BUCKET)
        .join(format!("{key}_metadata.json"));
    std::fs::write(&meta, vec![b'{'; 5 * 1024 * 1024]).unwrap();
    let out = a.dir.join("out");
    let o = a.collect(&out, "", &[]).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let outcomes = custos::package::outcomes(&out).unwrap();
    assert_eq!(outcomes[&t.id], "Corrupted");
    let why = reason(&out, &t.id);
    assert!(why.contains("more than the 1048576"), "{why}");
    verified(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_layout_that_is_not_the_archives_finds_nothing_and_says_where_it_looked() {
    let a = Archive::new("archive-layout", "", "").await;
    let out = a.dir.join("out");
    let layout =
        "{org}/year={year}/month={month}/day={day}/hour={hour}/conversation_id={conversation}/";
    let o = a.collect(&out, "", &["--archive-layout", layout]).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = a
        .truth
        .recordings
        .iter()
        .find(|t| t.expected_outcome == "Exported")
        .unwrap();
    let why = reason(&out, &t.id);
    assert!(why.contains("/month=10/day="), "{why}");
    assert!(
        custos::package::outcomes(&out)
            .unwrap()
            .values()
            .all(|o| o != "Exported")
    );
}

/// `custos export ARGS` into a fresh directory that must still not exist afterwards: the
/// refusal's text.
async fn refused(name: &str, args: &[&str]) -> String {
    let dir = tmp(name);
    std::fs::create_dir_all(&dir).unwrap();
    let ids = dir.join("ids.txt");
    std::fs::write(&ids, "c-1\n").unwrap();
    let out = dir.join("out");
    let mut all = vec![
        "export",
        "--out",
        out.to_str().unwrap(),
        "--api-base",
        "http://127.0.0.1:9",
    ];
    let ids = ids.to_str().unwrap().to_owned();
    all.extend(
        args.iter()
            .map(|a| if *a == "IDS" { ids.as_str() } else { a }),
    );
    let mut c = custos(&all);
    c.env("GENESYSCLOUD_OAUTHCLIENT_ID", "custos-sim-client")
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "custos-sim-secret");
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!out.exists(), "nothing written");
    std::fs::remove_dir_all(&dir).unwrap();
    text(&o)
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_settled_copies_and_restoring_archived_recordings_at_once_is_refused() {
    let t = refused(
        "archive-settled-restore",
        &[
            "--query",
            QUERY,
            "--restore-archived",
            "--archive",
            "s3://org-archive",
            "--archive-endpoint",
            "http://127.0.0.1:9",
            "--archive-settled",
            "read",
        ],
    )
    .await;
    assert!(t.contains("choose one"), "{t}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_archive_with_an_ids_file_is_refused() {
    let t = refused(
        "archive-ids",
        &[
            "--ids",
            "IDS",
            "--archive",
            "s3://org-archive",
            "--archive-endpoint",
            "http://127.0.0.1:9",
        ],
    )
    .await;
    assert!(t.contains("select with --query"), "{t}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_archive_setting_without_an_archive_is_refused() {
    let t = refused(
        "archive-setting",
        &["--query", QUERY, "--archive-missing", "api"],
    )
    .await;
    assert!(t.contains("go with --archive"), "{t}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_layout_that_climbs_out_of_the_bucket_is_refused() {
    let t = refused(
        "archive-climb",
        &[
            "--query",
            QUERY,
            "--archive",
            "s3://org-archive",
            "--archive-layout",
            "../{conversation}/",
        ],
    )
    .await;
    assert!(t.contains("'..'"), "{t}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_archive_collection_killed_while_reading_resumes_to_the_truth() {
    let a = Archive::new(
        "archive-crash",
        "archive-metadata=0.1,archive-missing=0.1",
        "",
    )
    .await;
    let out = a.dir.join("out");
    let command = || a.collect_command(&out, "", &["--concurrency", "1"]);
    let log = out.join("data/custody_log.jsonl");
    // Killed once a few recordings have been read from the archive.
    let killed = crate::common::kill_when(
        command(),
        move || {
            std::fs::read_to_string(&log)
                .map(|t| t.matches("\"archive-object\"").count() >= 3)
                .unwrap_or(false)
        },
        "three archive reads".into(),
    )
    .await;
    assert!(killed, "the export was killed while it read the archive");
    let o = run(command()).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    a.assert_truth(&out, false);
    // No recording ended twice, and nothing partial was left.
    let ended: Vec<Value> = events(&out, "outcome");
    let mut ids: Vec<&str> = ended
        .iter()
        .filter_map(|e| e["recordingId"].as_str())
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "one outcome line per recording");
    assert_eq!(n, a.truth.recordings.len());
    verified(&out);
}

/// The simulator's integration id (an EXPORT job must name it).
const INTEGRATION: &str = "7a1c0de5-0000-4000-8000-0000000053b3";

/// `--bulk-export` arguments, with a short grace for late recordings.
const BULK: &[&str] = &["--bulk-export", INTEGRATION, "--landing-grace", "8"];

/// Requests the simulator answered on `route` (e.g. `POST /api/v2/recording/jobs`).
fn served(a: &Archive, route: &str) -> u64 {
    a.sim.sim.stats().requests.get(route).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_export_job_writes_the_querys_recordings_and_each_ends_as_the_truth_says() {
    let a = Archive::by_jobs("bulk-truth", "bulk-failed=0.15,bulk-late=0.2").await;
    let (failed, late) = (
        a.truth
            .recordings
            .iter()
            .filter(|t| t.archive.as_ref().unwrap().bulk_failed)
            .count(),
        a.truth
            .recordings
            .iter()
            .filter(|t| t.archive.as_ref().unwrap().late)
            .count(),
    );
    assert!(failed > 0 && late > 0, "{failed} failed, {late} late");
    let out = a.dir.join("out");
    let o = a.collect(&out, "", BULK).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    a.assert_truth(&out, false);
    // One job, executed once, by this client; its failures named as the job's.
    assert_eq!(served(&a, "POST /api/v2/recording/jobs"), 1);
    assert_eq!(served(&a, "PUT /api/v2/recording/jobs/{job_id}"), 1);
    let created = events(&out, "bulk-export-created");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["request"]["action"], "EXPORT");
    assert_eq!(events(&out, "bulk-export-ended")[0]["state"], "FULFILLED");
    let t = a
        .truth
        .recordings
        .iter()
        .find(|t| t.archive.as_ref().unwrap().bulk_failed && t.expected_outcome == "Exported")
        .unwrap();
    assert!(
        reason(&out, &t.id).contains("listed it as failed")
            && reason(&out, &t.id).ends_with("Genesys states no export of it (no exportedDate)"),
        "{}",
        reason(&out, &t.id)
    );
    let query: Value =
        serde_json::from_slice(&std::fs::read(out.join("data/query.json")).unwrap()).unwrap();
    assert_eq!(
        query["retrieval"]["archive"]["bulkExport"]["integrationId"],
        INTEGRATION
    );
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        report.contains("sets the export date of each recording"),
        "the report says the job changed the source"
    );
    verified(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_job_that_fails_part_way_leaves_what_it_wrote_collected_and_the_rest_failed() {
    let a = Archive::by_jobs("bulk-fails", "bulk-job-fails").await;
    let out = a.dir.join("out");
    let o = a.collect(&out, "", BULK).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(events(&out, "bulk-export-ended")[0]["state"], "FAILED");
    // What the job wrote is exported; what it did not is Failed, naming the job.
    let bucket = a.dir.join("s3s-fs").join(BUCKET);
    let outcomes = custos::package::outcomes(&out).unwrap();
    let (mut written, mut not) = (0, 0);
    for t in &a.truth.recordings {
        let at = t.archive.as_ref().unwrap();
        if at.expected_outcome != "Exported" {
            continue;
        }
        if bucket.join(&at.key).exists() {
            written += 1;
            assert_eq!(outcomes[&t.id], "Exported", "{}", t.id);
        } else {
            not += 1;
            assert_eq!(outcomes[&t.id], "Failed", "{}", t.id);
            // The job never wrote it: Genesys states no export of it.
            assert!(
                reason(&out, &t.id).contains("ended FAILED")
                    && reason(&out, &t.id).contains("Genesys states no export of it"),
                "{}",
                reason(&out, &t.id)
            );
        }
    }
    assert!(written > 0 && not > 0, "{written} written, {not} not");
    verified(&out);
}

/// A bulk-export collection SIGKILLed once the custody log has `event`, then run again: every
/// outcome is the truth's, and Genesys was asked for one job, executed once. `forget`: the
/// job's id is erased from the job state before the run again, as if the kill had come between
/// the job's creation and the recording of its id.
async fn killed_at(name: &str, event: &'static str, forget: bool) {
    let a = Archive::by_jobs(name, "bulk-late=0.2").await;
    let out = a.dir.join("out");
    let mut args = vec!["--concurrency", "1"];
    args.extend_from_slice(BULK);
    let command = || a.collect_command(&out, "", &args);
    let log = out.join("data/custody_log.jsonl");
    let needle = format!("\"event\":\"{event}\"");
    let killed = crate::common::kill_when(
        command(),
        move || std::fs::read_to_string(&log).is_ok_and(|t| t.contains(&needle)),
        event.into(),
    )
    .await;
    assert!(killed, "killed at {event}");
    if forget {
        use custos::state::{Key, State};
        // (The kill may itself have come before the id was recorded: either way, none is.)
        let state = State::open(&out.join(".custos/state.sqlite")).unwrap();
        state.set(Key::BulkJob, "").unwrap();
    }
    let o = run(command()).await;
    assert!(o.status.code().unwrap_or(9) <= 1, "{}", text(&o));
    a.assert_truth(&out, false);
    assert_eq!(
        served(&a, "POST /api/v2/recording/jobs"),
        1,
        "no second job"
    );
    assert_eq!(
        served(&a, "PUT /api/v2/recording/jobs/{job_id}"),
        1,
        "executed once"
    );
    if forget {
        assert!(
            events(&out, "bulk-export-created")
                .iter()
                .any(|e| e["found"].is_string()),
            "the job was found among the client's jobs"
        );
    }
    verified(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_export_killed_while_its_job_is_pending_resumes_the_same_job() {
    killed_at("bulk-kill-pending", "bulk-export-created", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_export_killed_before_it_recorded_its_jobs_id_finds_that_job() {
    killed_at("bulk-kill-unrecorded", "bulk-export-created", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_export_killed_while_its_job_processes_resumes_the_same_job() {
    killed_at("bulk-kill-processing", "bulk-export-executed", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_export_killed_while_it_reads_the_archive_resumes_without_a_second_job() {
    killed_at("bulk-kill-collecting", "archive-object", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_export_past_the_orgs_two_job_limit_is_refused_with_genesys_words() {
    // Jobs that stay PENDING for a minute.
    let a = Archive::start("bulk-limit", "", "", Some(120_000), |_| {}).await;
    // The org's own two jobs, pending, made by another process with the same client.
    let token = std::process::Command::new("curl")
        .args([
            "-s",
            "-X",
            "POST",
            "-d",
            "grant_type=client_credentials",
            "-u",
        ])
        .arg("custos-sim-client:custos-sim-secret")
        .arg(format!("{}/oauth/token", a.sim.base_url))
        .output()
        .unwrap();
    let token: Value = serde_json::from_slice(&token.stdout).unwrap();
    let token = token["access_token"].as_str().unwrap();
    let body = serde_json::json!({"action": "EXPORT", "actionDate": "2024-01-01T00:00:00.000Z",
        "integrationId": INTEGRATION,
        "conversationQuery": {"interval": "2023-10-01T00:00:00.000Z/2023-10-02T00:00:00.000Z"}});
    for _ in 0..2 {
        let o = std::process::Command::new("curl")
            .args([
                "-s",
                "-f",
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-H",
            ])
            .arg(format!("Authorization: Bearer {token}"))
            .args(["-d", &body.to_string()])
            .arg(format!("{}/api/v2/recording/jobs", a.sim.base_url))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let out = a.dir.join("out");
    let o = a.collect(&out, "", BULK).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("recording.jobs.limit.exceeded"),
        "{}",
        text(&o)
    );
    // The manifest and the custody log survive; the same command later resumes.
    assert!(out.join("data/manifest.csv").is_file());
    assert_eq!(events(&out, "bulk-export-created").len(), 0);
}
