//! A corpus of hostile bags, each checked with `custos verify` and with bagit-python: custos
//! never hangs (every case within seconds), never exits 0 where bagit-python calls the bag
//! invalid (nor on any hostile case at all), and never opens a path outside the bag — a FIFO
//! outside it, with a writer counting every open, would notice.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{BIN, copy_export, export_cmd, mkfifo, run, scenario, start, tmp};

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A FIFO outside the bag, and a writer that counts every time something opens it to read.
pub(super) struct Sentinel {
    fifo: PathBuf,
    opens: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Sentinel {
    fn new(dir: &Path) -> Sentinel {
        let fifo = dir.join("pipe");
        mkfifo(&fifo);
        let (opens, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (f, o, s) = (fifo.clone(), opens.clone(), stop.clone());
        let writer = std::thread::spawn(move || {
            // Blocks until a reader opens the FIFO; each completed open is one read attempt.
            while let Ok(mut w) = std::fs::OpenOptions::new().write(true).open(&f) {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                o.fetch_add(1, Ordering::SeqCst);
                let _ = w.write_all(b"outside the bag\n");
            }
        });
        Sentinel {
            fifo,
            opens,
            stop,
            writer: Some(writer),
        }
    }

    pub(super) fn opens(&self) -> usize {
        std::thread::sleep(Duration::from_millis(30));
        self.opens.load(Ordering::SeqCst)
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Sentinel {
    /// Stops the writer (it waits on the FIFO for a reader: one non-blocking open wakes it).
    /// The FIFO must still exist.
    fn stop(&mut self) {
        use std::os::unix::fs::OpenOptionsExt;
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc_o_nonblock())
            .open(&self.fifo);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// O_NONBLOCK on Linux (the tests run there; the value is the same on every Linux arch).
fn libc_o_nonblock() -> i32 {
    0o4000
}

/// Runs `cmd` for at most `limit`; `None` if it had to be killed.
pub(super) fn run_for(mut cmd: Command, limit: Duration) -> (Option<i32>, String, Duration) {
    use std::io::Read;
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drained while it runs: a report larger than a pipe's buffer must not stall the child.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = r.read_to_end(&mut b);
            b
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let _ = (out.join(), err.join());
            return (None, String::new(), started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.join().unwrap()),
        String::from_utf8_lossy(&err.join().unwrap())
    );
    (code, text, started.elapsed())
}

/// Rewrites the manifest `name` through `f` (lines without their newline).
fn edit_manifest(d: &Path, name: &str, f: impl FnOnce(&mut Vec<String>)) {
    super::with_lines(&d.join(name), f)
}

/// Replaces data/query.json's line of manifest-sha256.txt with `line`, and reseals.
fn replace_query_entry(d: &Path, line: &str) {
    edit_manifest(d, "manifest-sha256.txt", |l| {
        for x in l.iter_mut() {
            if x.ends_with("  data/query.json") {
                *x = line.to_owned();
            }
        }
    });
    reseal(d);
}

/// Re-hashes every entry of tagmanifest-sha256.txt (through links, as a forger's tool would),
/// so that the case's one flaw is all that is wrong with the bag.
fn reseal(d: &Path) {
    let p = d.join("tagmanifest-sha256.txt");
    let text = std::fs::read_to_string(&p).unwrap();
    let out: String = text
        .lines()
        .map(|l| {
            let (_, rel) = l.split_once("  ").unwrap();
            match std::fs::read(d.join(rel)) {
                Ok(b) if !rel.starts_with('/') && !rel.contains("..") => {
                    format!("{}  {rel}\n", sha256(&b))
                }
                _ => format!("{l}\n"),
            }
        })
        .collect();
    std::fs::write(&p, out).unwrap();
}

/// Adds `bytes` bytes and `files` files to Payload-Oxum.
fn bump_oxum(d: &Path, bytes: i64, files: i64) {
    let p = d.join("bag-info.txt");
    let text = std::fs::read_to_string(&p).unwrap();
    let out: String = text
        .lines()
        .map(|l| match l.strip_prefix("Payload-Oxum: ") {
            Some(v) => {
                let (b, n) = v.split_once('.').unwrap();
                format!(
                    "Payload-Oxum: {}.{}\n",
                    b.parse::<i64>().unwrap() + bytes,
                    n.parse::<i64>().unwrap() + files
                )
            }
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&p, out).unwrap();
}

/// Adds a payload file (by `make`, at `rel`) to the manifest with the hash of `content`, and
/// fixes Payload-Oxum and the tag manifest: everything consistent but the file's nature.
fn plant(d: &Path, rel: &str, content: &[u8], make: impl FnOnce(&Path)) {
    make(&d.join(rel));
    edit_manifest(d, "manifest-sha256.txt", |l| {
        l.push(format!("{}  {rel}", sha256(content)));
        l.sort_by(|a, b| a[66..].cmp(&b[66..]));
    });
    bump_oxum(d, content.len() as i64, 1);
    reseal(d);
}

/// Writes the manifest `name` listing every payload file with the same (wrong) checksum `sum`.
fn same_sum_manifest(d: &Path, name: &str, sum: &str) {
    let m = std::fs::read_to_string(d.join("manifest-sha256.txt")).unwrap();
    let text: String = m
        .lines()
        .map(|l| format!("{sum}  {}\n", &l[66..]))
        .collect();
    std::fs::write(d.join(name), text).unwrap();
}

/// Replaces the bag's file `rel` by what `make` puts at its path (a FIFO, a link).
fn swap(d: &Path, rel: &str, make: impl FnOnce(&Path)) {
    std::fs::remove_file(d.join(rel)).unwrap();
    make(&d.join(rel));
}

fn symlink(target: impl AsRef<Path>, at: &Path) {
    std::os::unix::fs::symlink(target, at).unwrap();
}

fn first_recording_rel(d: &Path) -> String {
    let p = super::first_recording(d);
    p.strip_prefix(d).unwrap().to_str().unwrap().to_owned()
}

/// (name, how to make the bag hostile, the finding kind custos must report).
/// A hostile case: its name, how to make it from a copy of a sound bag, the finding expected.
pub(super) type Case = (&'static str, Box<dyn Fn(&Path)>, &'static str);

/// The hostile corpus's surroundings: a file and a counting FIFO outside any bag, and another
/// bag (a case links to it).
pub(super) struct Corpus {
    /// Counts every open of a FIFO outside the bag.
    pub(super) sentinel: Sentinel,
    outside: PathBuf,
    secret: PathBuf,
    secret_sha: String,
    other: PathBuf,
}

impl Corpus {
    /// Sets up the surroundings for hostile copies of `base` (`name` tells temp dirs apart).
    pub(super) fn new(base: &Path, name: &str) -> Corpus {
        let outside = tmp(&format!("{name}-outside"));
        std::fs::create_dir_all(&outside).unwrap();
        let secret = outside.join("secret.txt");
        std::fs::write(&secret, b"not part of any bag\n").unwrap();
        Corpus {
            sentinel: Sentinel::new(&outside),
            outside,
            secret,
            secret_sha: sha256(b"not part of any bag\n"),
            other: copy_export(base, &format!("{name}-other")),
        }
    }

    /// Every hostile case: (name, how to make it from a copy of the sound bag, the finding
    /// `custos verify` must report).
    pub(super) fn cases(&self) -> Vec<Case> {
        let (secret, secret_sha, sentinel) = (&self.secret, &self.secret_sha, &self.sentinel);
        let (s1, s2, sp) = (secret.clone(), secret_sha.clone(), sentinel.fifo.clone());
        let (s3, s4, sp2, sp3) = (
            secret.clone(),
            secret_sha.clone(),
            sentinel.fifo.clone(),
            sentinel.fifo.clone(),
        );
        let other_data = self.other.join("data");
        vec![
            (
                "fifo-for-query-json",
                Box::new(|d| swap(d, "data/query.json", mkfifo)),
                "special-file",
            ),
            (
                "tag-entry-dev-zero",
                Box::new(|d| {
                    edit_manifest(d, "tagmanifest-sha256.txt", |l| {
                        l.push(format!("{}  /dev/zero", sha256(b"")))
                    });
                }),
                "unsafe-path",
            ),
            (
                "custody-log-links-to-dev-zero",
                Box::new(|d| swap(d, "data/custody_log.jsonl", |at| symlink("/dev/zero", at))),
                "special-file",
            ),
            (
                "tag-entry-dotdot-with-right-hash",
                Box::new(move |d| {
                    let rel = format!(
                        "../{}/secret.txt",
                        s1.parent().unwrap().file_name().unwrap().to_str().unwrap()
                    );
                    edit_manifest(d, "tagmanifest-sha256.txt", |l| {
                        l.push(format!("{s2}  {rel}"))
                    });
                }),
                "unsafe-path",
            ),
            (
                "tag-entry-absolute-with-right-hash",
                Box::new(move |d| {
                    edit_manifest(d, "tagmanifest-sha256.txt", |l| {
                        l.push(format!("{s4}  {}", s3.display()))
                    });
                }),
                "unsafe-path",
            ),
            (
                "tag-entry-dotdot-fifo",
                Box::new(move |d| {
                    let rel = format!(
                        "../{}/pipe",
                        sp.parent().unwrap().file_name().unwrap().to_str().unwrap()
                    );
                    edit_manifest(d, "tagmanifest-sha256.txt", |l| {
                        l.push(format!("{}  {rel}", sha256(b"")))
                    });
                }),
                "unsafe-path",
            ),
            (
                "payload-symlink-outside-listed",
                Box::new({
                    let secret = secret.clone();
                    move |d| {
                        plant(d, "data/planted.txt", b"not part of any bag\n", |at| {
                            symlink(&secret, at)
                        })
                    }
                }),
                "special-file",
            ),
            (
                "payload-symlink-to-outside-fifo",
                Box::new(move |d| plant(d, "data/planted.txt", b"", |at| symlink(&sp2, at))),
                "special-file",
            ),
            (
                "fifo-in-payload-unlisted",
                Box::new(|d| {
                    let rec = super::first_recording(d);
                    mkfifo(&rec.with_file_name("planted.wav"));
                }),
                "special-file",
            ),
            (
                "fifo-in-payload-listed",
                Box::new(|d| plant(d, "data/planted.wav", b"", mkfifo)),
                "special-file",
            ),
            (
                "data-is-a-link-to-another-bag",
                Box::new(move |d| {
                    std::fs::rename(d.join("data"), d.join("data.moved")).unwrap();
                    symlink(&other_data, &d.join("data"));
                }),
                "special-file",
            ),
            (
                "duplicate-entry-same-hash",
                Box::new(|d| {
                    edit_manifest(d, "manifest-sha256.txt", |l| {
                        let x = l[0].clone();
                        l.push(x)
                    });
                    reseal(d);
                }),
                "manifest-duplicate",
            ),
            (
                "duplicate-entry-conflicting",
                Box::new(|d| {
                    edit_manifest(d, "manifest-sha256.txt", |l| {
                        let x = format!("{}{}", "0".repeat(64), &l[0][64..]);
                        l.push(x)
                    });
                    reseal(d);
                }),
                "manifest-duplicate",
            ),
            (
                "extra-md5-manifest-wrong",
                Box::new(|d| same_sum_manifest(d, "manifest-md5.txt", &"a".repeat(32))),
                "payload-hash-mismatch",
            ),
            (
                "extra-tagmanifest-md5-wrong",
                Box::new(|d| {
                    std::fs::write(
                        d.join("tagmanifest-md5.txt"),
                        format!("{}  bagit.txt\n", "b".repeat(32)),
                    )
                    .unwrap();
                }),
                "tag-hash-mismatch",
            ),
            (
                "unsupported-algorithm-manifest",
                Box::new(|d| same_sum_manifest(d, "manifest-blake2b.txt", &"c".repeat(128))),
                "manifest-algorithm-unsupported",
            ),
            (
                "non-utf8-name-beside-a-look-alike",
                Box::new(|d| {
                    use std::os::unix::ffi::OsStrExt;
                    let rec = super::first_recording(d);
                    let bytes = std::fs::read(&rec).unwrap();
                    let dir = rec.parent().unwrap();
                    let raw = std::ffi::OsStr::from_bytes(b"look\xffalike.wav");
                    std::fs::write(dir.join(raw), &bytes).unwrap();
                    let rel = format!(
                        "{}/look\u{fffd}alike.wav",
                        dir.strip_prefix(d).unwrap().display()
                    );
                    edit_manifest(d, "manifest-sha256.txt", |l| {
                        l.push(format!("{}  {rel}", sha256(&bytes)))
                    });
                    bump_oxum(d, bytes.len() as i64, 1);
                    reseal(d);
                }),
                "bad-file-name",
            ),
            (
                "dot-segment-in-entry",
                Box::new(|d| {
                    let sum = sha256(&std::fs::read(d.join("data/query.json")).unwrap());
                    replace_query_entry(d, &format!("{sum}  data/./query.json"));
                }),
                "unsafe-path",
            ),
            (
                "entry-climbs-to-a-tag-file",
                Box::new(|d| {
                    let sum = sha256(&std::fs::read(d.join("bagit.txt")).unwrap());
                    replace_query_entry(d, &format!("{sum}  data/../bagit.txt"));
                }),
                "unsafe-path",
            ),
            (
                "payload-oxum-wrong",
                Box::new(|d| {
                    bump_oxum(d, 1, 0);
                    reseal(d)
                }),
                "payload-oxum",
            ),
            (
                "payload-oxum-missing",
                Box::new(|d| {
                    let p = d.join("bag-info.txt");
                    let t = std::fs::read_to_string(&p).unwrap();
                    std::fs::write(
                        &p,
                        t.lines()
                            .filter(|l| !l.starts_with("Payload-Oxum"))
                            .map(|l| format!("{l}\n"))
                            .collect::<String>(),
                    )
                    .unwrap();
                    reseal(d);
                }),
                "payload-oxum",
            ),
            (
                "payload-oxum-given-twice",
                Box::new(|d| {
                    let p = d.join("bag-info.txt");
                    let t = std::fs::read_to_string(&p).unwrap();
                    std::fs::write(&p, format!("Payload-Oxum: 1.1\n{t}")).unwrap();
                    reseal(d);
                }),
                "bag-info-invalid",
            ),
            (
                "bagit-txt-with-bom",
                Box::new(|d| {
                    let p = d.join("bagit.txt");
                    let t = std::fs::read(&p).unwrap();
                    std::fs::write(&p, [b"\xef\xbb\xbf".as_slice(), &t].concat()).unwrap();
                    reseal(d);
                }),
                "bagit-declaration",
            ),
            (
                "bagit-txt-without-encoding",
                Box::new(|d| {
                    std::fs::write(d.join("bagit.txt"), "BagIt-Version: 1.0\n").unwrap();
                    reseal(d);
                }),
                "bagit-declaration",
            ),
            (
                "bagit-txt-is-a-fifo",
                Box::new(|d| swap(d, "bagit.txt", mkfifo)),
                "special-file",
            ),
            (
                "tagmanifest-links-to-dev-zero",
                Box::new(|d| swap(d, "tagmanifest-sha256.txt", |at| symlink("/dev/zero", at))),
                "special-file",
            ),
            (
                "manifest-one-huge-line",
                Box::new(|d| {
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .open(d.join("manifest-sha256.txt"))
                        .unwrap();
                    f.write_all(&vec![b'a'; 8 << 20]).unwrap();
                    reseal(d);
                }),
                "too-large",
            ),
            (
                "custody-log-one-huge-line",
                Box::new(|d| {
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .open(d.join("data/custody_log.jsonl"))
                        .unwrap();
                    f.write_all(&vec![b'{'; 16 << 20]).unwrap();
                }),
                "log-chain-broken",
            ),
            (
                "device-node-in-payload",
                Box::new(|d| {
                    let ok = Command::new("mknod")
                        .arg(d.join("data/zero"))
                        .args(["c", "1", "5"])
                        .status()
                        .is_ok_and(|s| s.success());
                    if !ok {
                        // Not root: a socket stands in for the device.
                        let _ = std::os::unix::net::UnixListener::bind(d.join("data/zero"));
                    }
                }),
                "special-file",
            ),
            (
                "socket-in-payload",
                Box::new(|d| {
                    std::mem::forget(
                        std::os::unix::net::UnixListener::bind(d.join("data/recordings/sock"))
                            .unwrap(),
                    );
                }),
                "special-file",
            ),
            (
                "sidecar-links-to-dev-zero",
                Box::new(|d| {
                    let rel = format!("{}.sha256", first_recording_rel(d));
                    std::fs::remove_file(d.join(&rel)).unwrap();
                    symlink("/dev/zero", &d.join(&rel));
                }),
                "special-file",
            ),
            (
                "directory-link-loop",
                Box::new(|d| symlink("..", &d.join("data/recordings/loop"))),
                "special-file",
            ),
            (
                "receipt-is-a-fifo",
                Box::new(|d| {
                    std::fs::create_dir_all(d.join("receipts")).unwrap();
                    mkfifo(&d.join("receipts/upload-x.jsonl"));
                }),
                "special-file",
            ),
            (
                "receipts-link-outside",
                Box::new(move |d| symlink(sp3.parent().unwrap(), &d.join("receipts"))),
                "special-file",
            ),
            (
                "signature-is-a-fifo",
                Box::new(|d| swap(d, "tagmanifest-sha256.txt.minisig", mkfifo)),
                "special-file",
            ),
            (
                "fetch-txt-claims-a-file",
                Box::new(|d| {
                    std::fs::write(
                        d.join("fetch.txt"),
                        "https://example.invalid/x 4 data/query.json\n",
                    )
                    .unwrap();
                }),
                "fetch-file",
            ),
            (
                "tag-manifest-lists-a-payload-file",
                Box::new(|d| {
                    edit_manifest(d, "tagmanifest-sha256.txt", |l| {
                        l.push(format!("{}  data/query.json", "0".repeat(64)))
                    });
                }),
                "unsafe-path",
            ),
        ]
    }
}

impl Drop for Corpus {
    fn drop(&mut self) {
        // Before its FIFO goes: a writer waiting on a removed FIFO never wakes.
        self.sentinel.stop();
        let _ = std::fs::remove_dir_all(&self.other);
        let _ = std::fs::remove_dir_all(&self.outside);
    }
}

#[tokio::test]
async fn hostile_bags_never_hang_never_pass_and_are_never_read_outside() {
    let env = start(scenario()).await;
    let base = tmp("hostile-base");
    let key = tmp("hostile-key");
    super::keygen(&key);
    let o = run(export_cmd(
        &env,
        &base,
        &["--sign-key", key.to_str().unwrap()],
    ))
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let public = format!("{}.pub", key.display());
    let corpus = Corpus::new(&base, "hostile");
    let sentinel = &corpus.sentinel;

    let verify = |d: &Path, extra: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(["verify", d.to_str().unwrap(), "--json"])
            .args(extra);
        run_for(c, Duration::from_secs(20))
    };
    let bagit = |d: &Path| {
        let mut c = Command::new("bagit.py");
        c.args(["--validate", d.to_str().unwrap()]);
        run_for(c, Duration::from_secs(4)).0 == Some(0)
    };
    // Controls: a sound bag, and one with a correct extra manifest, pass both tools.
    for (name, add_md5) in [("sound", false), ("extra-md5-right", true)] {
        let d = copy_export(&base, &format!("hostile-{name}"));
        if add_md5 {
            let m = std::fs::read_to_string(d.join("manifest-sha256.txt")).unwrap();
            let md5: String = m
                .lines()
                .map(|l| {
                    let rel = &l[66..];
                    let b = std::fs::read(d.join(rel)).unwrap();
                    format!(
                        "{}  {rel}\n",
                        hex::encode(<md5::Md5 as md5::Digest>::digest(&b))
                    )
                })
                .collect();
            std::fs::write(d.join("manifest-md5.txt"), md5).unwrap();
        }
        let (code, out, _) = verify(&d, &["--pubkey", &public]);
        assert_eq!(code, Some(0), "{name}: {out}");
        assert!(bagit(&d), "{name}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    let cases = corpus.cases();
    assert!(cases.len() >= 25, "{} cases", cases.len());
    let mut report = Vec::new();
    for (name, make, expect) in &cases {
        let d = copy_export(&base, &format!("hostile-{name}"));
        make(&d);
        let before = sentinel.opens();
        let (code, out, took) = verify(&d, &["--pubkey", &public]);
        assert!(
            sentinel.opens() == before,
            "{name}: custos opened a file outside the bag"
        );
        assert!(
            code.is_some(),
            "{name}: custos verify hung (killed after {took:?})"
        );
        assert!(took < Duration::from_secs(5), "{name}: took {took:?}");
        assert!(
            matches!(code, Some(1) | Some(2)),
            "{name}: custos verify exited {code:?} on a hostile bag: {out}"
        );
        let kinds: Vec<String> =
            serde_json::from_str::<serde_json::Value>(&out[..out.rfind('}').map_or(0, |i| i + 1)])
                .ok()
                .and_then(|v| v["findings"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .map(|f| f["kind"].as_str().unwrap_or("").to_owned())
                .collect();
        assert!(
            kinds.iter().any(|k| k == expect),
            "{name}: expected {expect}, got {kinds:?} {out}"
        );
        let bagit_valid = bagit(&d);
        report.push(format!(
            "{name}: custos {code:?}, bagit {}",
            if bagit_valid { "valid" } else { "invalid" }
        ));
        let _ = std::fs::remove_dir_all(&d);
    }
    eprintln!("{}", report.join("\n"));
    drop(corpus);
    let _ = std::fs::remove_dir_all(&base);
}

/// `--sample 0.5` draws a fresh sample each run: one tampered recording is caught in at least
/// one of twenty runs (each run misses it with probability ½: all twenty miss it once in about
/// a million; with ten, once in 1,024, which happened), and a printed seed repeats a run.
#[tokio::test]
async fn sampling_cannot_be_predicted_and_can_be_repeated() {
    let env = start(scenario()).await;
    let base = tmp("sample-base");
    let o = run(export_cmd(&env, &base, &[])).await;
    assert_eq!(o.status.code(), Some(0));
    let rec = super::first_recording(&base);
    let mut b = std::fs::read(&rec).unwrap();
    b[100] ^= 0x20;
    std::fs::write(&rec, &b).unwrap();
    let mut caught = 0;
    let mut seeds = std::collections::BTreeSet::new();
    let mut a_seed = None;
    for _ in 0..20 {
        let o = Command::new(BIN)
            .args([
                "verify",
                base.to_str().unwrap(),
                "--sample",
                "0.5",
                "--json",
            ])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let seed = v["sample"]["seed"].as_str().unwrap().to_owned();
        let hit = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "payload-hash-mismatch");
        assert_eq!(o.status.code(), Some(if hit { 1 } else { 0 }));
        if hit {
            caught += 1;
            a_seed = Some(seed.clone());
        }
        seeds.insert(seed);
    }
    assert!(
        caught >= 1,
        "a tampered recording was never sampled in 20 runs"
    );
    assert_eq!(seeds.len(), 20, "every run draws its own seed");
    // The seed of a run that caught it catches it again.
    let o = Command::new(BIN)
        .args([
            "verify",
            base.to_str().unwrap(),
            "--sample",
            "0.5",
            "--seed",
            &a_seed.unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("repeat with --seed") && text.contains("payload-hash-mismatch"),
        "{text}"
    );
    std::fs::remove_dir_all(&base).unwrap();
}
