//! The report a lawyer reads: report.html and report.pdf in the bag (listed in the tag
//! manifest), and `custos report` for the sealed package. Checked by tools we did not write:
//! headless Chromium renders the page (a screenshot with a real layout, and a print to PDF),
//! `pdftotext` (Poppler) reads both PDFs, and the facts are compared with the package's files.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::timestamps::tsa;
use super::{BIN, keygen, run, scenario, start, tmp};

const INK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/report/ink.py");

fn custos(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

pub(super) fn pdftotext(pdf: &Path) -> String {
    let o = Command::new("pdftotext")
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext (apt-get install poppler-utils)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Lines broken by the layout joined, so a sentence is found whole.
    String::from_utf8(o.stdout)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Headless Chromium, as the machine's probe starts it (no network of its own).
fn chromium(args: &[&str], page: &Path, profile: &Path) -> Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium (apt-get install chromium)")
}

/// (recording id, conversation id, outcome) of every row not Exported, and the Exported count.
fn exceptions(root: &Path) -> (Vec<(String, String, String)>, usize) {
    let mut r = csv::Reader::from_path(root.join("data/chain_of_custody.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    let exported = rows.iter().filter(|x| &x[6] == "Exported").count();
    let others = rows
        .iter()
        .filter(|x| &x[6] != "Exported")
        .map(|x| (x[0].to_owned(), x[9].to_owned(), x[6].to_owned()))
        .collect();
    (others, exported)
}

fn bag_info(root: &Path, label: &str) -> String {
    std::fs::read_to_string(root.join("bag-info.txt"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{label}: ")).map(str::to_owned))
        .unwrap()
}

/// The facts every rendering must state. Compared without whitespace: a layout may break a
/// hash or a sentence anywhere.
pub(super) fn assert_states_the_facts(text: &str, root: &Path, what: &str) {
    let text: String = text.split_whitespace().collect();
    let has = |needle: &str| text.contains(&needle.split_whitespace().collect::<String>());
    let (others, exported) = exceptions(root);
    assert!(
        !others.is_empty(),
        "the scenario must purge or corrupt something"
    );
    assert!(
        has(&format!("{exported} exported as received")),
        "{what}: the count of exported items"
    );
    for label in ["Query-SHA256", "Custody-Log-Head", "Manifest-SHA256"] {
        let v = bag_info(root, label);
        assert!(has(&v), "{what}: {label} {v}");
    }
    for (rid, cid, outcome) in &others {
        assert!(has(rid) && has(cid), "{what}: {outcome} item {rid}");
    }
    assert!(has(&format!(
        "{} of {} items did not end Exported",
        others.len(),
        others.len() + exported
    )));
    assert!(has(
        "Draft certification under Federal Rule of Evidence 902(14)"
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_states_the_facts_in_html_and_pdf_and_chromium_renders_it() {
    let env = start(scenario()).await;
    let dir = tmp("report");
    std::fs::create_dir_all(&dir).unwrap();
    let t = tsa(&dir.join("tsa"));
    let key = dir.join("k.key");
    keygen(&key);
    let out = dir.join("export");
    // A hostile matter name: it must be text on the page, never markup.
    let matter = "M-<script>alert(1)</script>&\"x\"";
    let o = run(crate::common::export_cmd(
        &env.base_url,
        crate::common::QUERY,
        &out,
        &[
            "--matter",
            matter,
            "--sign-key",
            key.to_str().unwrap(),
            "--tsa",
            &t.url,
        ],
    ))
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // In the bag, listed in the tag manifest (so signed and timestamped with it).
    let tags = std::fs::read_to_string(out.join("tagmanifest-sha256.txt")).unwrap();
    for name in ["report.html", "report.pdf"] {
        assert!(tags.contains(&format!("  {name}\n")), "{tags}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(!html.contains("<script"), "the matter became markup");
    assert!(html.contains("M-&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;x&quot;"));
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none'"));
    assert!(!html.contains("http-equiv=\"refresh\"") && !html.contains(" src="));
    let html_text = html.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_states_the_facts(&html_text, &out, "report.html");
    let pdf_text = pdftotext(&out.join("report.pdf"));
    assert_states_the_facts(&pdf_text, &out, "report.pdf");
    // The in-bag copy cannot state the tag manifest's hash, and says where to find it.
    assert!(pdf_text.contains("sha256sum tagmanifest-sha256.txt"));

    // Chromium lays it out: a screenshot with ink from top to bottom, the text as a reader
    // sees it (the DOM), and a print to PDF that pdftotext reads back with the facts.
    let profile = dir.join("chromium");
    let shot = dir.join("report.png");
    let o = chromium(
        &[
            "--window-size=900,1400",
            &format!("--screenshot={}", shot.display()),
        ],
        &out.join("report.html"),
        &profile,
    );
    assert!(shot.exists(), "{}", String::from_utf8_lossy(&o.stderr));
    let ink = Command::new("python3")
        .arg(INK)
        .arg(&shot)
        .output()
        .unwrap();
    let ink = String::from_utf8(ink.stdout).unwrap();
    let v: Vec<&str> = ink.split_whitespace().collect();
    let (fraction, first, last): (f64, u32, u32) = (
        v[1].parse().unwrap(),
        v[3].parse().unwrap(),
        v[4].parse().unwrap(),
    );
    assert!(
        fraction > 0.02 && first < 100 && last > 1200,
        "an empty or broken layout: {ink}"
    );
    let o = chromium(&["--dump-dom"], &out.join("report.html"), &profile);
    let dom = String::from_utf8_lossy(&o.stdout);
    assert!(dom.contains("<h1>Export report: M-&lt;script&gt;"), "{dom}");
    let printed = dir.join("printed.pdf");
    chromium(
        &[
            "--no-pdf-header-footer",
            &format!("--print-to-pdf={}", printed.display()),
        ],
        &out.join("report.html"),
        &profile,
    );
    assert_states_the_facts(
        &pdftotext(&printed),
        &out,
        "report.html printed by Chromium",
    );

    // `custos report`: outside the bag, verified, with the seal the bag's copy cannot state.
    let (again, again_pdf) = (dir.join("again.html"), dir.join("again.pdf"));
    let pubkey = dir.join("k.key.pub");
    let o = custos(&[
        "report",
        out.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
        "--pdf",
        again_pdf.to_str().unwrap(),
        "--pubkey",
        pubkey.to_str().unwrap(),
        "--tsa-ca",
        t.ca.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let tag_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(tags.as_bytes()));
    let text = pdftotext(&again_pdf);
    assert_states_the_facts(&text, &out, "custos report --pdf");
    assert!(text.contains(&tag_sha), "the tag manifest's hash");
    assert!(text.contains("every check passed and the signature verifies"));
    assert!(text.contains("checked against the TSA certificates given"));
    assert!(std::fs::read_to_string(&again).unwrap().contains(&tag_sha));
}

#[tokio::test(flavor = "multi_thread")]
async fn custos_report_says_not_intact_and_refuses_to_write_into_the_bag_or_hang() {
    let env = start(scenario()).await;
    let dir = tmp("report-hostile");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("export");
    let o = run(crate::common::export_cmd(
        &env.base_url,
        crate::common::QUERY,
        &out,
        &[],
    ))
    .await;
    assert_eq!(o.status.code(), Some(0));

    // Into the sealed bag: refused, nothing written.
    let inside = out.join("data/again.html");
    let o = custos(&[
        "report",
        out.to_str().unwrap(),
        "--out",
        inside.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("inside the export, which is sealed"));
    assert!(!inside.exists());

    // A changed recording: the report is written, says NOT INTACT with the finding, exit 1.
    let copy = super::copy_export(&out, "report-tampered");
    let rec = super::first_recording(&copy);
    let mut bytes = std::fs::read(&rec).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&rec, bytes).unwrap();
    let page = dir.join("tampered.pdf");
    let o = custos(&[
        "report",
        copy.to_str().unwrap(),
        "--out",
        dir.join("tampered.html").to_str().unwrap(),
        "--pdf",
        page.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let text = pdftotext(&page);
    assert!(
        text.contains("NOT INTACT") && text.contains("payload-hash-mismatch"),
        "{text}"
    );

    // A FIFO where the custody log should be: a clear refusal at once, never a hang.
    let fifo = super::copy_export(&out, "report-fifo");
    std::fs::remove_file(fifo.join("data/custody_log.jsonl")).unwrap();
    super::mkfifo(&fifo.join("data/custody_log.jsonl"));
    let started = Instant::now();
    let o = custos(&[
        "report",
        fifo.to_str().unwrap(),
        "--out",
        dir.join("fifo.html").to_str().unwrap(),
    ]);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("data/custody_log.jsonl: is a FIFO"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!dir.join("fifo.html").exists());
}

/// The count on the first page's reconciliation row whose label starts with `label`.
fn reconciled(html: &str, label: &str) -> u64 {
    let at = html
        .find(&format!("<tr><td>{label}"))
        .unwrap_or_else(|| panic!("no row {label:?}"));
    let rest = &html[at..];
    let row = &rest[..rest.find("</tr>").unwrap()];
    let last = row.rsplit("<td>").next().unwrap();
    let digits: String = last
        .trim_start_matches("<span class=\"mono\">")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or_else(|_| panic!("{row}"))
}

/// The first page reconciles what the query matched with what was exported, every step
/// counted as the simulator's truth has it: `--media` leaving chat, email and messaging out,
/// recordings deleted before the listing and during collection, archived ones, Corrupted ones,
/// and the orphans in the interval (`--orphans`); with no hold placed, it says so.
#[tokio::test(flavor = "multi_thread")]
async fn the_first_page_reconciles_with_the_truth_under_media_and_orphans() {
    let mut s = custos_sim::Scenario {
        screen: 0.3,
        digital: 9,
        orphans: 6,
        archived_fraction: 0.1,
        deleted_fraction: 0.1,
        ..scenario()
    };
    s.faults.apply_list("purge=0.1,duration-lie=0.1").unwrap();
    let env = start(s).await;
    let out = tmp("report-reconcile");
    let o = run(super::export_cmd(
        &env,
        &out,
        &["--media", "audio,screen", "--orphans"],
    ))
    .await;
    assert_eq!(
        o.status.code(),
        Some(1),
        "Corrupted items: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let truth = env.sim.truth();
    let taken: Vec<&custos_sim::RecordingTruth> = truth
        .recordings
        .iter()
        .filter(|t| t.media == "audio" || t.media == "screen")
        .collect();
    let count = |f: &dyn Fn(&custos_sim::RecordingTruth) -> bool| {
        taken.iter().filter(|t| f(t)).count() as u64
    };
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let want = [
        (
            "Recordings of those conversations",
            truth.recordings.len() as u64,
        ),
        (
            "− left out by the operator",
            (truth.recordings.len() - taken.len()) as u64,
        ),
        ("= the sealed work list", taken.len() as u64),
        (
            "− deleted at the source before the listing",
            count(&|t| t.catalog_file_state == "DELETED"),
        ),
        (
            "− deleted at the source during collection",
            count(&|t| t.expected_outcome == "Purged" && t.catalog_file_state != "DELETED"),
        ),
        (
            "− archived at the source",
            count(&|t| t.expected_outcome == "Archived"),
        ),
        (
            "− not what the source states",
            count(&|t| t.expected_outcome == "Corrupted"),
        ),
        ("− failed", count(&|t| t.expected_outcome == "Failed")),
        (
            "= exported, hashed and sealed",
            count(&|t| t.expected_outcome == "Exported"),
        ),
        (
            "Not found by any query",
            truth
                .orphans
                .iter()
                .filter(|(_, created)| created.as_str() < "2023-10-08T00:00:00")
                .count() as u64,
        ),
    ];
    for (label, n) in want {
        assert_eq!(reconciled(&html, label), n, "{label}");
    }
    for (label, _) in &want[3..7] {
        assert!(
            reconciled(&html, label) > 0,
            "the scenario exercises {label:?}"
        );
    }
    assert!(!html.contains("these steps do not add up"));
    // Every item not exported is listed with its date, agent and number; a purged one with its
    // deleteDate as listed.
    assert!(html.contains("deleteDate as listed: "));
    // No hold was placed, and the report says so.
    assert!(
        html.contains("no legal hold") || html.contains("none placed"),
        "hold"
    );
    std::fs::remove_dir_all(&out).unwrap();
}
