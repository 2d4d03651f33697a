//! `custos produce` end to end: the volume is read back with a DAT reader written here from the
//! documented conventions (not the writer's code), every native is checked with `md5sum`,
//! `sha1sum` and `sha256sum`, control numbers are unique, contiguous and stable across runs,
//! the load file names every party as the simulated org does, bagit-python and `custos verify`
//! accept the volume, and hostile or wrong input is refused with nothing written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use super::{BIN, run, scenario, start, tmp};

fn custos(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// The delimiters a volume states in bag-info (`Load-File-Delimiters: column 020, quote 254,
/// newline 174`, decimal codes): (column, quote, newline).
fn stated_delimiters(volume: &Path) -> (char, char, char) {
    let info = std::fs::read_to_string(volume.join("bag-info.txt")).unwrap();
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix("Load-File-Delimiters: "))
        .expect("bag-info states the load file's delimiters");
    let code = |name: &str| {
        let n: u32 = line
            .split(", ")
            .find_map(|p| p.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {line:?}"))
            .trim()
            .parse()
            .unwrap();
        char::from_u32(n).unwrap()
    };
    (code("column "), code("quote "), code("newline "))
}

/// A Concordance DAT, read from its documented conventions: UTF-8 with a BOM, CRLF records,
/// fields separated and quoted by the characters the volume's bag-info states (Relativity's
/// defaults ASCII 20 and þ, unless a value holds them); its newline character stands for a
/// line break in a value.
pub(super) fn read_dat(path: &Path) -> Vec<BTreeMap<String, String>> {
    let volume = path
        .ancestors()
        .find(|p| p.join("bag-info.txt").is_file())
        .expect("the load file is inside a volume");
    let (column, quote, newline) = stated_delimiters(volume);
    let bytes = std::fs::read(path).unwrap();
    let text = std::str::from_utf8(bytes.strip_prefix(b"\xEF\xBB\xBF").expect("a BOM")).unwrap();
    let records: Vec<Vec<String>> = text
        .strip_suffix("\r\n")
        .expect("CRLF after the last record")
        .split("\r\n")
        .map(|line| {
            line.split(column)
                .map(|f| {
                    let inner = f
                        .strip_prefix(quote)
                        .and_then(|f| f.strip_suffix(quote))
                        .unwrap_or_else(|| panic!("unquoted field {f:?}"));
                    assert!(!inner.contains(quote) && !inner.contains('\n'));
                    inner.replace(newline, "\n")
                })
                .collect()
        })
        .collect();
    let head = &records[0];
    records[1..]
        .iter()
        .map(|r| {
            assert_eq!(r.len(), head.len(), "every record has every field");
            head.iter().cloned().zip(r.iter().cloned()).collect()
        })
        .collect()
}

/// `tool FILES…` → file → digest.
fn sums(tool: &str, files: &[std::path::PathBuf]) -> BTreeMap<String, String> {
    let o = Command::new(tool).args(files).output().unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (h, f) = l.split_once("  ").unwrap();
            (f.to_owned(), h.to_owned())
        })
        .collect()
}

fn produce(export: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "produce",
        export.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--prefix",
        "ACME",
    ];
    args.extend(extra);
    custos(&args)
}

/// bagit-python validates the bag at `bag` and `custos verify` finds nothing.
fn assert_checks_out(bag: &Path) {
    let o = Command::new("bagit.py")
        .args(["--quiet", "--validate"])
        .arg(bag)
        .output()
        .expect("bagit.py (pip install bagit)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = custos(&["verify", bag.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// An export of the week, matter M-9 (`extra` options), into `dir/export`.
async fn exported(env: &super::Env, dir: &Path, extra: &[&str]) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let export = dir.join("export");
    let mut args = vec!["--matter", "M-9"];
    args.extend(extra);
    let o = run(crate::common::export_cmd(
        &env.base_url,
        crate::common::QUERY,
        &export,
        &args,
    ))
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    export
}

/// An export of `env` into a fresh `tmp(name)`, and a volume `vol` produced from it with
/// `extra`, which must succeed: (dir, export, volume, produce's output).
async fn produced(
    env: &super::Env,
    name: &str,
    extra: &[&str],
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
    Output,
) {
    let dir = tmp(name);
    let export = exported(env, &dir, &[]).await;
    let vol = dir.join("vol");
    let o = produce(&export, &vol, extra);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    (dir, export, vol, o)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_production_loads_checks_out_and_names_every_party() {
    // Screen recordings and chat, email and messaging threads beside the calls.
    let env = start(custos_sim::Scenario {
        screen: 0.3,
        digital: 9,
        ..scenario()
    })
    .await;
    let dir = tmp("produce");
    let export = exported(&env, &dir, &["--transcripts"]).await;
    let truth = env.sim.truth();

    let (a, b) = (dir.join("vol-a"), dir.join("vol-b"));
    for v in [&a, &b] {
        let o = produce(&export, v, &["--start", "5"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // Stable: the same export and options give the same load file, byte for byte.
    assert_eq!(
        std::fs::read(a.join("data/ACME.dat")).unwrap(),
        std::fs::read(b.join("data/ACME.dat")).unwrap()
    );
    let all = read_dat(&a.join("data/ACME.dat"));
    // The recordings' own documents (an email's attachments and later messages are checked by
    // their own test).
    let docs: Vec<BTreeMap<String, String>> = all
        .iter()
        .filter(|d| !d["MEDIATYPE"].starts_with("email "))
        .cloned()
        .collect();
    let exported = truth
        .recordings
        .iter()
        .filter(|r| r.expected_outcome == "Exported")
        .count();
    assert_eq!(docs.len(), exported);
    let controls: Vec<&str> = all.iter().map(|d| d["BEGDOC"].as_str()).collect();
    let expected: Vec<String> = (5..5 + all.len()).map(|n| format!("ACME{n:07}")).collect();
    assert_eq!(controls, expected, "unique, contiguous, from --start");

    let natives: Vec<std::path::PathBuf> = docs
        .iter()
        .map(|d| a.join("data").join(d["NATIVELINK"].replace('\\', "/")))
        .collect();
    assert!(
        natives.iter().all(|p| p.is_file()),
        "every NATIVELINK exists, relative to the load file's folder"
    );
    // Natives sit in subfolders (`NATIVES\0001\…`) of at most 1,000 files, as every other
    // folder of documents does.
    for d in &docs {
        assert!(
            d["NATIVELINK"].starts_with("NATIVES\\0001\\"),
            "{}",
            d["NATIVELINK"]
        );
    }
    fn most_files_in_a_folder(dir: &Path) -> usize {
        let mut files = 0;
        let mut most = 0;
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                most = most.max(most_files_in_a_folder(&e.path()));
            } else {
                files += 1;
            }
        }
        most.max(files)
    }
    assert!(most_files_in_a_folder(&a.join("data")) <= 1000);
    // Dates as the load file holds them: UTC, `YYYY-MM-DD HH:MM:SS`, TIMEZONE saying so.
    for d in &docs {
        assert_eq!(d["TIMEZONE"], "UTC");
        for f in ["DATESENT", "START", "END"] {
            let v = &d[f];
            assert!(
                v.len() == 19 && v.as_bytes()[10] == b' ' && !v.contains('Z'),
                "{f} {v:?}"
            );
        }
    }
    // Extracted text: the transcript's rendering, for exactly the calls that have one, and
    // every thread's; a screen recording has none. MEDIATYPE says what each document is.
    let (mut texts, mut threads, mut shared, mut partial) = (0, 0, 0, 0);
    for d in &docs {
        let t = truth
            .recordings
            .iter()
            .find(|t| t.id == d["RECORDINGID"])
            .unwrap();
        let source = export.join(format!(
            "data/transcripts/{}/{}.txt",
            t.conversation_id, t.communication_id
        ));
        assert_eq!(d["MEDIATYPE"], t.media, "{}", t.id);
        let thread = matches!(t.media.as_str(), "chat" | "email" | "messaging");
        threads += usize::from(thread);
        // A call's transcript belongs to the one produced recording of its communication whose
        // span holds most of its words (the others of that communication have no text); when
        // it does not hold them all, the text is marked as the whole communication's.
        let produced: BTreeSet<&str> = docs.iter().map(|d| d["RECORDINGID"].as_str()).collect();
        let owner = |t: &custos_sim::RecordingTruth| -> String {
            let words = |r: &custos_sim::RecordingTruth| {
                let start = time::OffsetDateTime::parse(
                    &r.start_time,
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap();
                let r0 = (start.unix_timestamp_nanos() / 1_000_000) as i64;
                let r1 = r0 + r.stated_duration_ms as i64;
                r.transcript
                    .iter()
                    .flatten()
                    .filter(|p| (r0..=r1).contains(&p.start_time_ms))
                    .count()
            };
            truth
                .recordings
                .iter()
                .filter(|r| {
                    r.conversation_id == t.conversation_id
                        && r.communication_id == t.communication_id
                        && r.media == "audio"
                        && r.transcript.is_some()
                        && produced.contains(r.id.as_str())
                })
                .max_by_key(|r| (words(r), std::cmp::Reverse(r.start_time.clone())))
                .map(|r| r.id.clone())
                .unwrap()
        };
        let call_text = t.media == "audio" && t.transcript.is_some();
        if call_text && owner(t) != t.id {
            assert_eq!(
                d["TEXTPATH"], "",
                "{}: another recording holds its words",
                t.id
            );
            assert_eq!(d["HAS_TEXT"], "N");
            shared += 1;
        } else if call_text || thread {
            texts += 1;
            if call_text {
                assert!(
                    d["TRANSCRIPT_SOURCE"].starts_with("machine transcription"),
                    "{}",
                    d["TRANSCRIPT_SOURCE"]
                );
                let start = time::OffsetDateTime::parse(
                    &t.start_time,
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap();
                let r0 = (start.unix_timestamp_nanos() / 1_000_000) as i64;
                let r1 = r0 + t.stated_duration_ms as i64;
                let all_here = t
                    .transcript
                    .iter()
                    .flatten()
                    .all(|p| (r0..=r1).contains(&p.start_time_ms));
                if !all_here {
                    partial += 1;
                    assert!(
                        d["TRANSCRIPT_SOURCE"].contains("the whole communication's transcript"),
                        "{}: {}",
                        t.id,
                        d["TRANSCRIPT_SOURCE"]
                    );
                }
            } else {
                assert!(d["TRANSCRIPT_SOURCE"].contains("not a transcription"));
            }
            // The export's rendering, after a UTF-8 byte-order mark (review platforms tell a
            // text's encoding by it).
            let path = a.join("data").join(d["TEXTPATH"].replace('\\', "/"));
            let text = std::fs::read(&path).unwrap();
            assert_eq!(
                text.strip_prefix(b"\xEF\xBB\xBF").expect("a BOM"),
                std::fs::read(&source).unwrap()
            );
        } else {
            assert_eq!(d["TEXTPATH"], "", "{}", t.id);
        }
    }
    assert!(
        texts > threads && threads > 0 && shared > 0,
        "{texts} texts, {threads} threads, {shared} recordings of a communication whose words another holds"
    );
    eprintln!("{partial} transcripts produced with a recording that holds only part of them");
    let (md5, sha1, sha256) = (
        sums("md5sum", &natives),
        sums("sha1sum", &natives),
        sums("sha256sum", &natives),
    );
    for (d, p) in docs.iter().zip(&natives) {
        let p = p.to_str().unwrap();
        assert_eq!(d["MD5HASH"], md5[p]);
        assert_eq!(d["SHA1HASH"], sha1[p]);
        assert_eq!(d["SHA256HASH"], sha256[p]);
        assert_eq!(
            d["FILESIZE"],
            std::fs::metadata(p).unwrap().len().to_string()
        );
        let t = truth
            .recordings
            .iter()
            .find(|r| r.id == d["RECORDINGID"])
            .unwrap();
        assert_eq!(d["SHA256HASH"], t.sha256, "the ground truth's bytes");
        let c = &t.call;
        assert_eq!(
            [
                &d["CUSTODIAN"],
                &d["FROM"],
                &d["TO"],
                &d["QUEUE"],
                &d["SKILL"],
                &d["WRAPUP"],
                &d["DIVISION"],
                &d["DIRECTION"]
            ],
            [
                &c.agent.1,
                &c.ani,
                &c.dnis,
                &c.queue.1,
                &c.skill.1,
                &c.wrapup.1,
                &c.division_name,
                &c.direction
            ],
            "{}",
            d["RECORDINGID"]
        );
        assert!(
            !d["CUSTODIAN"].is_empty()
                && !d["FROM"].is_empty()
                && !d["TO"].is_empty()
                && !d["DIVISION"].is_empty()
        );
        assert_eq!(d["CONVERSATIONID"], t.conversation_id);
        // The reviewer fields: the agent's id, the customer's number whichever way the call
        // went (without `tel:`), whether there is text, and the time zone of every date.
        assert_eq!(d["AGENTID"], c.agent.0);
        let customer = if c.direction == "outbound" {
            &c.dnis
        } else {
            &c.ani
        };
        assert_eq!(
            d["CUSTOMER_NUMBER"],
            customer.strip_prefix("tel:").unwrap_or(customer)
        );
        assert_eq!(
            d["HAS_TEXT"],
            if d["TEXTPATH"].is_empty() { "N" } else { "Y" }
        );
        assert_eq!(d["TIMEZONE"], "UTC");
    }
    // Families, rebuilt from the DAT alone: a conversation is one family, its parent the first
    // document (a call recording where it has one), every other document attached to it, and
    // BEGATTACH..ENDATTACH spanning exactly the family's control numbers.
    let mut families: BTreeMap<&str, Vec<&BTreeMap<String, String>>> = BTreeMap::new();
    for d in &all {
        families.entry(d["GROUPID"].as_str()).or_default().push(d);
    }
    let mut screens_attached = 0;
    for (group, members) in &families {
        let parent = members[0];
        assert_eq!(parent["BEGDOC"], **group, "the parent comes first");
        assert_eq!(parent["PARENT_ID"], "");
        let controls: Vec<&str> = members.iter().map(|d| d["BEGDOC"].as_str()).collect();
        assert_eq!(parent["ATTACHIDS"], controls[1..].join("; "));
        for d in members {
            assert_eq!(
                d["CONVERSATIONID"], parent["CONVERSATIONID"],
                "one conversation"
            );
            assert_eq!(
                (d["BEGATTACH"].as_str(), d["ENDATTACH"].as_str()),
                (controls[0], *controls.last().unwrap())
            );
        }
        for d in &members[1..] {
            assert_eq!(d["PARENT_ID"], **group);
            assert_eq!(d["ATTACHIDS"], "");
            if d["MEDIATYPE"] == "screen" && parent["MEDIATYPE"] == "audio" {
                screens_attached += 1;
            }
        }
        // Every document of the conversation is in this family.
        let all = all
            .iter()
            .filter(|d| d["CONVERSATIONID"] == parent["CONVERSATIONID"])
            .count();
        assert_eq!(all, members.len());
    }
    assert!(
        screens_attached > 0,
        "a screen recording attached to its call"
    );
    // MD5 and SHA-1 were computed at download, in the SHA-256's pass: the custody record
    // holds the same digests coreutils computes for the native.
    let mut coc = csv::Reader::from_path(export.join("data/chain_of_custody.csv")).unwrap();
    let head = coc.headers().unwrap().clone();
    let at = |n: &str| head.iter().position(|h| h == n).unwrap();
    let recorded: BTreeMap<String, (String, String)> = coc
        .records()
        .map(|r| r.unwrap())
        .filter(|r| &r[at("Outcome")] == "Exported")
        .map(|r| {
            (
                r[at("Recording_ID")].to_owned(),
                (r[at("MD5_Hash")].to_owned(), r[at("SHA1_Hash")].to_owned()),
            )
        })
        .collect();
    for d in &docs {
        assert_eq!(
            recorded[&d["RECORDINGID"]],
            (d["MD5HASH"].clone(), d["SHA1HASH"].clone())
        );
    }
    // The CSV states the same fields, with the same values: a load file holds true values.
    let mut csv = csv::Reader::from_path(a.join("data/ACME.csv")).unwrap();
    let head = csv.headers().unwrap().clone();
    let rows: Vec<BTreeMap<String, String>> = csv
        .records()
        .map(|r| {
            let r = r.unwrap();
            head.iter()
                .map(str::to_owned)
                .zip(r.iter().map(str::to_owned))
                .collect()
        })
        .collect();
    assert_eq!(rows, all, "the CSV and the DAT hold the same values");

    // Third-party and our own verification, of the volume and of the export.
    for v in [&a, &export] {
        assert_checks_out(v);
    }
    let log = std::fs::read_to_string(a.join("data/production_log.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    let tags = std::fs::read(export.join("tagmanifest-sha256.txt")).unwrap();
    assert_eq!(
        first["sourceTagManifestSha256"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&tags))
    );

    // A changed native and a cross-reference row removed: custos verify says so.
    let copy = dir.join("vol-tampered");
    let o = Command::new("cp")
        .arg("-a")
        .arg(&a)
        .arg(&copy)
        .output()
        .unwrap();
    assert!(o.status.success());
    let native = copy.join(natives[0].strip_prefix(&a).unwrap());
    let mut bytes = std::fs::read(&native).unwrap();
    bytes[100] ^= 1;
    let _ = std::fs::remove_file(&native);
    std::fs::write(&native, bytes).unwrap();
    let o = custos(&["verify", copy.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("payload-hash-mismatch"));

    // The responsive subset: three ids, numbered in order from --start.
    let ids = dir.join("ids.txt");
    let pick: Vec<&str> = docs
        .iter()
        .rev()
        .take(3)
        .map(|d| d["RECORDINGID"].as_str())
        .collect();
    std::fs::write(&ids, format!("# responsive\n{}\n", pick.join("\n"))).unwrap();
    let sub = dir.join("vol-sub");
    let o = produce(&export, &sub, &["--ids", ids.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got = read_dat(&sub.join("data/ACME.dat"));
    let got_ids: BTreeSet<&str> = got.iter().map(|d| d["RECORDINGID"].as_str()).collect();
    assert_eq!(got_ids, pick.iter().copied().collect());
    assert_eq!(got[0]["BEGDOC"], "ACME0000001");
    assert_eq!(got[2]["BEGDOC"], "ACME0000003");

    // Refusals, each with nothing written: an id that is not an exported recording, an
    // existing volume, a bad prefix, and an export that does not verify.
    std::fs::write(&ids, "00000000-0000-4000-8000-000000000000\n").unwrap();
    let none = dir.join("vol-none");
    let o = produce(&export, &none, &["--ids", ids.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("are not Exported recordings"));
    assert!(!none.exists());
    std::fs::write(&ids, "../../etc/passwd\n").unwrap();
    let o = produce(&export, &none, &["--ids", ids.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a valid id"));
    assert!(!none.exists());
    let o = produce(&export, &a, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("exists"));
    let inside = export.join("data/volume");
    let o = produce(&export, &inside, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("inside the export"));
    assert!(!inside.exists());
    // A FIFO as the ids file: refused at once, never read (it would block).
    let fifo = dir.join("ids.fifo");
    super::mkfifo(&fifo);
    let o = produce(&export, &none, &["--ids", fifo.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a regular file"));
    assert!(!none.exists());
    let o = custos(&[
        "produce",
        export.to_str().unwrap(),
        "--out",
        none.to_str().unwrap(),
        "--prefix",
        "../x",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!none.exists());
    let bad = super::copy_export(&export, "produce-bad");
    let rec = super::first_recording(&bad);
    let mut bytes = std::fs::read(&rec).unwrap();
    bytes[60] ^= 1;
    std::fs::write(&rec, bytes).unwrap();
    let o = produce(&bad, &none, &[]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not verify"));
    assert!(!none.exists());
    // 355 MB a run: left behind, a day of runs filled the disk.
    std::fs::remove_dir_all(&bad).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Agents whose names hold the characters the default DAT delimiters use (þ, ®; a DC4 from the
/// API reaches the export's records already escaped as the text `\u{14}`): the volume picks
/// other delimiters, states them in bag-info, and every value reads back exactly as the CSV load
/// file holds it.
#[tokio::test(flavor = "multi_thread")]
async fn reserved_characters_in_values_read_back_true() {
    let env = start(custos_sim::Scenario {
        agent_surname: "Agent® þorn\u{14}x".into(),
        ..scenario()
    })
    .await;
    let (dir, _, vol, o) = produced(&env, "produce-reserved", &[]).await;
    // Produced without a key: said plainly, with how to sign.
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains("NOT SIGNED: nothing proves who produced this volume"),
        "{said}"
    );
    let stated = stated_delimiters(&vol);
    assert_ne!(
        stated,
        ('\u{14}', 'þ', '®'),
        "the defaults occur in the values"
    );
    let docs = read_dat(&vol.join("data/ACME.dat"));
    assert!(!docs.is_empty());
    let custodians: Vec<&str> = docs.iter().map(|d| d["CUSTODIAN"].as_str()).collect();
    assert!(
        custodians.iter().any(|c| c.contains("Agent® þorn\\u{14}x")),
        "{custodians:?}"
    );
    // The CSV beside it holds the same values.
    let mut csv = csv::Reader::from_path(vol.join("data/ACME.csv")).unwrap();
    let head = csv.headers().unwrap().clone();
    let at = head.iter().position(|h| h == "CUSTODIAN").unwrap();
    let from_csv: Vec<String> = csv.records().map(|r| r.unwrap()[at].to_owned()).collect();
    assert_eq!(custodians, from_csv);
    let info = std::fs::read_to_string(vol.join("bag-info.txt")).unwrap();
    assert!(
        info.contains("Load-File-Delimiters: column 020, quote 222, newline 172"),
        "{info}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `ffprobe`'s duration of a file, in seconds (decoding every packet: `-count_packets` would
/// only count them).
fn ffprobe_seconds(file: &Path) -> f64 {
    let o = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe (apt install ffmpeg)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

/// Decodes the whole file with ffmpeg (to nothing): exit 0 means every frame decodes.
fn decodes(file: &Path) -> bool {
    Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .status()
        .unwrap()
        .success()
}

#[tokio::test(flavor = "multi_thread")]
async fn near_natives_play_and_are_hashed_and_natives_are_unchanged() {
    // Calls in their original codec (Ogg Opus and WebM) and screen recordings (WebM VP8).
    let env = start(custos_sim::Scenario {
        conversations: 12,
        screen: 0.5,
        max_recording_s: 40,
        ..scenario()
    })
    .await;
    let (dir, _, vol, o) = produced(&env, "produce-near", &[]).await;
    assert!(String::from_utf8_lossy(&o.stdout).contains("playable near-native(s)"));
    let docs = read_dat(&vol.join("data/ACME.dat"));
    let at = |rel: &str| vol.join("data").join(rel.replace('\\', "/"));
    let (mut audio, mut video) = (0, 0);
    for d in &docs {
        let native = at(&d["NATIVELINK"]);
        // What review platforms play, by ffprobe's codec names: PCM WAV, MP3, AAC, H.264.
        let codecs = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name",
                "-of",
                "csv=p=0",
            ])
            .arg(&native)
            .output()
            .unwrap();
        let codecs = String::from_utf8_lossy(&codecs.stdout).to_string();
        if codecs.trim().is_empty() {
            // Not audio or video (a chat, email or messaging thread).
            assert!(d["NEAR_NATIVE_LINK"].is_empty());
            continue;
        }
        let unplayable = codecs.lines().any(|c| {
            !matches!(
                c.trim(),
                "pcm_s16le" | "pcm_u8" | "pcm_s24le" | "mp3" | "aac" | "h264"
            )
        });
        assert_eq!(
            !d["NEAR_NATIVE_LINK"].is_empty(),
            unplayable,
            "{}: a near-native exactly where the native does not play",
            d["BEGDOC"]
        );
        if !unplayable {
            continue;
        }
        let near = at(&d["NEAR_NATIVE_LINK"]);
        // Decodes in a decoder custos did not write, to within 1 s of the native.
        assert!(decodes(&near), "{}", near.display());
        let (n, m) = (ffprobe_seconds(&native), ffprobe_seconds(&near));
        assert!(
            (n - m).abs() <= 1.0,
            "{}: native {n} s, near-native {m} s",
            d["BEGDOC"]
        );
        // Hashed in the load file.
        let sums_of = |tool: &str| sums(tool, std::slice::from_ref(&near));
        assert_eq!(
            sums_of("sha256sum")[near.to_str().unwrap()],
            d["NEAR_NATIVE_SHA256"]
        );
        assert_eq!(
            sums_of("md5sum")[near.to_str().unwrap()],
            d["NEAR_NATIVE_MD5"]
        );
        match near.extension().unwrap().to_str().unwrap() {
            "wav" => audio += 1,
            "mp4" => video += 1,
            x => panic!("near-native .{x}"),
        }
    }
    assert!(audio > 0 && video > 0, "audio {audio}, video {video}");
    // The natives are the export's bytes, unchanged.
    let natives: Vec<std::path::PathBuf> = docs.iter().map(|d| at(&d["NATIVELINK"])).collect();
    let got = sums("sha256sum", &natives);
    let xref = csv::Reader::from_path(vol.join("data/ACME_xref.csv"))
        .unwrap()
        .into_records()
        .map(|r| r.unwrap())
        .map(|r| (r[0].to_owned(), r[2].to_owned()))
        .collect::<BTreeMap<String, String>>();
    for (d, p) in docs.iter().zip(&natives) {
        assert_eq!(got[p.to_str().unwrap()], xref[&d["BEGDOC"]]);
    }
    // The volume, near-natives included, checks out.
    assert_checks_out(&vol);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_decoder_is_refused_before_anything_is_written() {
    let env = start(custos_sim::Scenario {
        conversations: 4,
        ..scenario()
    })
    .await;
    let dir = tmp("produce-no-ffmpeg");
    let export = exported(&env, &dir, &[]).await;
    let vol = dir.join("vol");
    let o = produce(&export, &vol, &["--ffmpeg", "/nonexistent/ffmpeg"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--no-near-natives"), "{err}");
    assert!(!vol.exists());
    // Without near-natives: none made, and the summary says what that means.
    let o = produce(&export, &vol, &["--no-near-natives"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("no near-natives"));
    assert!(!vol.join("data/NEAR_NATIVES").exists());
    let docs = read_dat(&vol.join("data/ACME.dat"));
    assert!(docs.iter().all(|d| d["NEAR_NATIVE_LINK"].is_empty()));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every attachment of an EML, decoded by Python's `email` package (not custos' parser):
/// (file name, SHA-256), in MIME order.
fn attachments_by_python(eml: &Path) -> Vec<(String, String)> {
    let script = "import email, email.policy, hashlib, sys\n\
        m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)\n\
        for p in m.iter_attachments():\n\
        \x20   print(p.get_filename() + '\\t' + hashlib.sha256(p.get_payload(decode=True)).hexdigest())\n";
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(eml)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (n, h) = l.split_once('\t').unwrap();
            (n.to_owned(), h.to_owned())
        })
        .collect()
}

/// An email's attachments are documents of their own (decoded as Python's `email` decodes
/// them, hashed, in the email's family), and so is every later message of its thread (a
/// rendering of the metadata with its sender, recipients, subject and body as text).
#[tokio::test(flavor = "multi_thread")]
async fn every_email_attachment_and_message_is_a_document() {
    let env = start(custos_sim::Scenario {
        conversations: 6,
        digital: 9,
        ..scenario()
    })
    .await;
    let (dir, export, vol, _) = produced(
        &env,
        "produce-email",
        &["--no-near-natives", "--produced-to", "Opposing Counsel LLP"],
    )
    .await;
    let docs = read_dat(&vol.join("data/ACME.dat"));
    let at = |rel: &str| vol.join("data").join(rel.replace('\\', "/"));
    let (mut emails, mut attachments, mut messages) = (0, 0, 0);
    for (i, d) in docs.iter().enumerate() {
        if d["MEDIATYPE"] != "email" {
            continue;
        }
        emails += 1;
        let rid = &d["RECORDINGID"];
        let kids: Vec<&BTreeMap<String, String>> = docs[i + 1..]
            .iter()
            .take_while(|k| k["RECORDINGID"] == *rid && k["MEDIATYPE"].starts_with("email "))
            .collect();
        // Attachments first, in the message's order, each as Python decodes it.
        let want = attachments_by_python(&at(&d["NATIVELINK"]));
        let got: Vec<&&BTreeMap<String, String>> = kids
            .iter()
            .filter(|k| k["MEDIATYPE"] == "email attachment")
            .collect();
        assert_eq!(got.len(), want.len(), "{rid}");
        for (k, (name, sha)) in got.iter().zip(&want) {
            assert_eq!(&k["FILENAME"], name);
            assert_eq!(&k["SHA256HASH"], sha);
            let native = at(&k["NATIVELINK"]);
            assert_eq!(
                sums("sha256sum", std::slice::from_ref(&native))[native.to_str().unwrap()],
                *sha
            );
            assert_eq!(
                sums("md5sum", std::slice::from_ref(&native))[native.to_str().unwrap()],
                k["MD5HASH"]
            );
            attachments += 1;
        }
        // Then every later message of the thread.
        let meta: serde_json::Value = serde_json::from_slice(
            &std::fs::read(export.join(format!("data/metadata/{rid}.json"))).unwrap(),
        )
        .unwrap();
        let thread = meta["emailTranscript"].as_array().unwrap();
        let got: Vec<&&BTreeMap<String, String>> = kids
            .iter()
            .filter(|k| k["MEDIATYPE"] == "email message")
            .collect();
        assert_eq!(got.len(), thread.len() - 1, "{rid}");
        for (k, m) in got.iter().zip(&thread[1..]) {
            assert_eq!(k["HAS_TEXT"], "Y");
            let text = std::fs::read_to_string(at(&k["TEXTPATH"])).unwrap();
            assert!(text.starts_with('\u{feff}'), "a BOM");
            for needle in [
                m["textBody"].as_str().unwrap(),
                m["subject"].as_str().unwrap(),
                m["from"]["email"].as_str().unwrap(),
            ] {
                assert!(text.contains(needle), "{needle} in {text}");
            }
            assert_eq!(
                k["FROM"],
                format!(
                    "{} <{}>",
                    m["from"]["name"].as_str().unwrap(),
                    m["from"]["email"].as_str().unwrap()
                )
            );
            // In the email's family.
            assert_eq!(k["GROUPID"], d["GROUPID"]);
            assert_eq!(k["PARENT_ID"], d["GROUPID"]);
            messages += 1;
        }
    }
    assert!(
        emails > 0 && attachments > 0 && messages > 0,
        "{emails} {attachments} {messages}"
    );
    // The transmittal says what the volume holds, for whom, and its numbering range, and
    // counts the documents of each custodian as the load file names them.
    let mut by_custodian: BTreeMap<String, usize> = BTreeMap::new();
    for d in &docs {
        let named: BTreeSet<&str> = d["CUSTODIAN"]
            .split("; ")
            .filter(|c| !c.is_empty())
            .collect();
        if named.is_empty() {
            *by_custodian.entry("(no agent named)".into()).or_default() += 1;
        }
        for c in named {
            *by_custodian.entry(c.to_owned()).or_default() += 1;
        }
    }
    assert!(by_custodian.len() > 1, "{by_custodian:?}");
    let custodians = by_custodian
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let t = std::fs::read_to_string(vol.join("data/TRANSMITTAL.txt")).unwrap();
    for needle in [
        format!("counts for each): {custodians}\r\n"),
        "Produced to: Opposing Counsel LLP".to_owned(),
        format!(
            "Numbering: ACME0000001 through ACME{:07} ({} documents",
            docs.len(),
            docs.len()
        ),
        format!("as their own documents: {attachments} and {messages}"),
        format!(
            "{} the source export's files, copied unchanged; {} derived from them",
            docs.len() - attachments - messages,
            attachments + messages
        ),
        "NOT SIGNED".to_owned(),
    ] {
        assert!(t.contains(&needle), "{needle} in {t}");
    }
    // The volume, children included, checks out.
    assert_checks_out(&vol);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The header fields of the message at `eml` as Python's `email` reads them: Subject, Cc, Bcc,
/// Message-ID, and Date in UTC (`YYYY-MM-DD HH:MM:SS`).
fn header_by_python(eml: &Path) -> Vec<String> {
    let script = "import email, email.policy, email.utils, datetime, sys\n\
        m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)\n\
        d = email.utils.parsedate_to_datetime(m['Date']).astimezone(datetime.timezone.utc)\n\
        for v in (m['Subject'] or '', m['Cc'] or '', m['Bcc'] or '', m['Message-ID'] or '', d.strftime('%Y-%m-%d %H:%M:%S')):\n\
        \x20   print(str(v))\n";
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(eml)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// An email's load-file row holds its header's subject, copies, id and date (as Python reads
/// them); a later message of its thread, its own subject and copies; every document the
/// designation given, which the transmittal states.
#[tokio::test(flavor = "multi_thread")]
async fn email_header_fields_and_the_designation_are_in_the_load_file() {
    let env = start(custos_sim::Scenario {
        conversations: 4,
        digital: 6,
        ..scenario()
    })
    .await;
    let label = "CONFIDENTIAL - ATTORNEYS' EYES ONLY";
    let (dir, export, vol, _) = produced(
        &env,
        "produce-email-header",
        &["--no-near-natives", "--confidentiality", label],
    )
    .await;
    let docs = read_dat(&vol.join("data/ACME.dat"));
    let (mut emails, mut messages) = (0, 0);
    for d in &docs {
        assert_eq!(d["CONFIDENTIALITY"], label);
        match d["MEDIATYPE"].as_str() {
            "email" => {
                let native = vol.join("data").join(d["NATIVELINK"].replace('\\', "/"));
                let want = header_by_python(&native);
                let got = [
                    &d["SUBJECT"],
                    &d["CC"],
                    &d["BCC"],
                    &d["MESSAGE_ID"],
                    &d["DATESENT"],
                ];
                assert_eq!(
                    got.map(String::as_str),
                    [&want[0], &want[1], &want[2], &want[3], &want[4]].map(String::as_str)
                );
                assert!(!d["SUBJECT"].is_empty() && !d["MESSAGE_ID"].is_empty());
                emails += 1;
            }
            "email message" => {
                let rid = &d["RECORDINGID"];
                let meta: serde_json::Value = serde_json::from_slice(
                    &std::fs::read(export.join(format!("data/metadata/{rid}.json"))).unwrap(),
                )
                .unwrap();
                let thread = meta["emailTranscript"].as_array().unwrap();
                assert!(
                    thread[1..]
                        .iter()
                        .any(|m| m["subject"].as_str() == Some(d["SUBJECT"].as_str())),
                    "{}",
                    d["SUBJECT"]
                );
                assert_eq!(d["MESSAGE_ID"], "", "no RFC 5322 id is known for it");
                messages += 1;
            }
            "audio" | "screen" => assert_eq!(d["SUBJECT"], ""),
            _ => {}
        }
    }
    assert!(emails > 0 && messages > 0, "{emails} {messages}");
    let t = std::fs::read_to_string(vol.join("data/TRANSMITTAL.txt")).unwrap();
    assert!(
        t.contains(&format!("every document is designated \"{label}\"")),
        "{t}"
    );
    assert_checks_out(&vol);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A PDF attachment's text is extracted (by pdftotext, as the other side would extract it from
/// the same native) and kept in TEXT, its TRANSCRIPT_SOURCE naming the extractor.
#[tokio::test(flavor = "multi_thread")]
async fn a_pdf_attachment_s_text_is_what_pdftotext_reads_from_its_native() {
    let env = start(custos_sim::Scenario {
        conversations: 4,
        digital: 6,
        ..scenario()
    })
    .await;
    let (dir, _, vol, _) = produced(&env, "produce-pdf-text", &["--no-near-natives"]).await;
    let docs = read_dat(&vol.join("data/ACME.dat"));
    let at = |rel: &str| vol.join("data").join(rel.replace('\\', "/"));
    let mut pdfs = 0;
    for d in docs
        .iter()
        .filter(|d| d["CONTENTTYPE"] == "application/pdf")
    {
        let o = Command::new("pdftotext")
            .args(["-enc", "UTF-8", "-q"])
            .arg(at(&d["NATIVELINK"]))
            .arg("-")
            .output()
            .expect("pdftotext (apt install poppler-utils)");
        assert!(o.status.success());
        let theirs = String::from_utf8(o.stdout).unwrap();
        assert!(theirs.contains("Statement"), "{theirs:?}");
        assert_eq!(d["HAS_TEXT"], "Y");
        let ours = std::fs::read_to_string(at(&d["TEXTPATH"])).unwrap();
        assert_eq!(ours.strip_prefix('\u{feff}'), Some(theirs.as_str()));
        assert!(
            d["TRANSCRIPT_SOURCE"].starts_with("text extracted from the PDF by pdftotext version"),
            "{}",
            d["TRANSCRIPT_SOURCE"]
        );
        pdfs += 1;
    }
    assert!(pdfs > 0, "no PDF attachment produced");
    assert_checks_out(&vol);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_pdf_extractor_is_refused_before_anything_is_written() {
    let env = start(custos_sim::Scenario {
        conversations: 2,
        digital: 3,
        ..scenario()
    })
    .await;
    let dir = tmp("produce-no-pdftotext");
    let export = exported(&env, &dir, &[]).await;
    let vol = dir.join("vol");
    let o = produce(
        &export,
        &vol,
        &["--no-near-natives", "--pdftotext", "/nonexistent/pdftotext"],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--no-pdf-text") && err.contains("poppler-utils"),
        "{err}"
    );
    assert!(!vol.exists());
    // Without it: no PDF's text, and nothing claims one.
    let o = produce(&export, &vol, &["--no-near-natives", "--no-pdf-text"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let docs = read_dat(&vol.join("data/ACME.dat"));
    let pdfs: Vec<_> = docs
        .iter()
        .filter(|d| d["CONTENTTYPE"] == "application/pdf")
        .collect();
    assert!(!pdfs.is_empty());
    assert!(
        pdfs.iter()
            .all(|d| d["HAS_TEXT"] == "N" && d["TEXTPATH"].is_empty())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What tests/rsmf/check_rsmf.py (Relativity's published schema, and the references and
/// header fields its validator checks) says of `rsmf`, compared with the metadata and the
/// native it was made from: its exit status and JSON summary.
fn rsmf_check(rsmf: &Path, meta: &Path, native: &Path) -> (i32, serde_json::Value) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/rsmf/check_rsmf.py");
    let o = Command::new("python3")
        .arg(script)
        .arg(rsmf)
        .arg("--metadata")
        .arg(meta)
        .arg("--native")
        .arg(native)
        .output()
        .expect("python3");
    let out = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&o.stderr));
    });
    (o.status.code().unwrap_or(-1), out)
}

/// Every chat and messaging thread gets an RSMF near-native that Relativity's schema accepts,
/// holds every message Genesys returned (same id, same body) and the media of its native byte
/// for byte, and is hashed in the load file; emails get none.
#[tokio::test(flavor = "multi_thread")]
async fn chat_and_messaging_threads_are_rsmf_that_relativity_s_schema_accepts() {
    let env = start(custos_sim::Scenario {
        conversations: 4,
        digital: 9,
        ..scenario()
    })
    .await;
    let (dir, export, vol, o) = produced(&env, "produce-rsmf", &[]).await;
    let docs = read_dat(&vol.join("data/ACME.dat"));
    let at = |rel: &str| vol.join("data").join(rel.replace('\\', "/"));
    let (mut threads, mut media) = (BTreeMap::<String, usize>::new(), 0);
    for d in &docs {
        let kind = d["MEDIATYPE"].as_str();
        if !matches!(kind, "chat" | "messaging") {
            assert!(
                !d["NEAR_NATIVE_LINK"].ends_with(".rsmf"),
                "{}: {kind} has an RSMF",
                d["BEGDOC"]
            );
            continue;
        }
        *threads.entry(kind.to_owned()).or_default() += 1;
        let rsmf = at(&d["NEAR_NATIVE_LINK"]);
        assert_eq!(rsmf.extension().unwrap(), "rsmf", "{}", d["BEGDOC"]);
        let meta = export.join(format!("data/metadata/{}.json", d["RECORDINGID"]));
        let (code, out) = rsmf_check(&rsmf, &meta, &at(&d["NATIVELINK"]));
        assert_eq!(code, 0, "{}: {out:#}", d["BEGDOC"]);
        media += out["attachments"].as_u64().unwrap();
        // Hashed in the load file, as sha256sum and md5sum read it.
        let one = std::slice::from_ref(&rsmf);
        assert_eq!(
            sums("sha256sum", one)[rsmf.to_str().unwrap()],
            d["NEAR_NATIVE_SHA256"]
        );
        assert_eq!(
            sums("md5sum", one)[rsmf.to_str().unwrap()],
            d["NEAR_NATIVE_MD5"]
        );
    }
    assert!(
        threads.get("chat") > Some(&0) && threads.get("messaging") > Some(&0),
        "{threads:?}"
    );
    assert!(media > 0, "a messaging thread's media are in its RSMF");
    let n: usize = threads.values().sum();
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains(&format!("{n} chat and messaging thread(s) as RSMF 2.0.0")),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let transmittal = std::fs::read_to_string(vol.join("data/TRANSMITTAL.txt")).unwrap();
    assert!(
        transmittal.contains(&format!("Chat and messaging threads in RSMF 2.0.0: {n} ")),
        "{transmittal}"
    );
    assert_checks_out(&vol);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--no-rsmf`: no RSMF is written, and the summary says where the threads are instead.
#[tokio::test(flavor = "multi_thread")]
async fn no_rsmf_writes_none_and_says_so() {
    let env = start(custos_sim::Scenario {
        conversations: 2,
        digital: 3,
        ..scenario()
    })
    .await;
    let (dir, _, vol, o) = produced(&env, "produce-no-rsmf", &["--no-rsmf"]).await;
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("no RSMF"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let docs = read_dat(&vol.join("data/ACME.dat"));
    assert!(docs.iter().any(|d| d["MEDIATYPE"] == "chat"));
    assert!(
        docs.iter()
            .all(|d| !d["NEAR_NATIVE_LINK"].ends_with(".rsmf"))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
