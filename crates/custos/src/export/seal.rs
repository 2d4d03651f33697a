//! Stage 4: the custody record (`data/chain_of_custody.csv`, written row by row from the job
//! state), the summary, the bag (manifests, bag-info, tag manifest) and the signature.

use crate::package::files;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::context::Ctx;
use super::json_list::{self, ScratchList};
use crate::custody::csv_cell;
use crate::custody::{COMMIT, TOOL, VERSION};
use crate::durable::{sha256_file, sync_dir};
use crate::error::{Error, Result};
use crate::model::{Item, Outcome, Tally};
use crate::package::write_bag;
use crate::state::{Done, DurationCheck, Key};

/// Removes the empty conversation directories that items without a file left behind (done
/// here, single-threaded, rather than racing parallel downloads into the same directory).
fn remove_empty_dirs(dir: &Path) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        if p.is_dir() {
            remove_empty_dirs(&p)?;
        }
    }
    if std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .next()
        .is_none()
    {
        std::fs::remove_dir(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// Which kept files had their duration compared with the stated one, and why not the others.
#[derive(Clone, Debug, Default)]
pub struct DurationCoverage {
    /// Items that kept a file (Exported or Corrupted).
    pub files: u64,
    /// Of them, compared with a stated duration.
    pub checked: u64,
    /// The others: how many (each is listed, with why, in `data/summary.json`).
    pub not_checked: u64,
    /// The first of the others, at most [`DurationCoverage::SHOWN`]:
    /// `{recordingId, conversationId, why}`.
    pub first_not_checked: Vec<Value>,
}

impl DurationCoverage {
    /// How many of the files not compared a run keeps to show (all are in the summary file).
    pub const SHOWN: usize = 10;

    /// Counts `it`'s file, and answers its entry (`{recordingId, conversationId, why}`) when
    /// its duration was not compared.
    pub(super) fn add(&mut self, it: &Item, d: &Done) -> Option<Value> {
        match d.duration_check() {
            None => None,
            Some(DurationCheck::Checked) => {
                self.files += 1;
                self.checked += 1;
                None
            }
            Some(DurationCheck::NotChecked(why)) => {
                self.files += 1;
                self.not_checked += 1;
                let entry = json!({"recordingId": it.recording_id, "conversationId": it.conversation_id, "why": why});
                if self.first_not_checked.len() < Self::SHOWN {
                    self.first_not_checked.push(entry.clone());
                }
                Some(entry)
            }
        }
    }
}

/// What the custody record counted: the tally and the duration coverage, and the files whose
/// duration was not compared, listed as they passed.
struct Counted {
    tally: Tally,
    duration: DurationCoverage,
    not_checked: ScratchList,
}

/// Where the files whose duration was not compared wait while `data/summary.json` is written
/// (not payload: removed once it is).
const NOT_CHECKED_SCRATCH: &str = ".custos/summary-not-checked.tmp";

/// Seals the package: the custody record and summary, the log's last event, the bag, the
/// signature.
pub(super) fn seal(ctx: &Ctx<'_>, sign_key: Option<&minisign::SecretKey>) -> Result<()> {
    // A distributed job's log is in the database: written out before anything reads it.
    ctx.write_log_out()?;
    remove_empty_dirs(&ctx.root.join("data/recordings"))?;
    remove_empty_dirs(&ctx.root.join(crate::model::ORPHANS_DIR))?;
    remove_empty_dirs(&ctx.root.join("data/quarantine"))?;
    write_call_facts(ctx)?;
    let Counted {
        tally,
        duration,
        not_checked,
    } = write_custody_record(ctx)?;
    let completeness = super::completeness::write(ctx)?;
    write_summary(ctx, &tally, &duration, not_checked, &completeness)?;
    let mut info = bag_info(ctx, &duration)?;
    if let Some(p) = &ctx.previous {
        let excluded = ctx
            .state
            .get(Key::ChainExcluded)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        info.extend(super::chain::seal(ctx, p, excluded)?);
    }
    // The last event inside the payload: after it the bag seals the log.
    let coc = sha256_file(&ctx.root.join(files::CUSTODY_CSV))?.0;
    let head = ctx.log(
        "package-sealing",
        json!({"items": tally.items, "outcomes": tally.outcomes_json(), "chainOfCustodySha256": coc}),
    )?;
    ctx.state.set(Key::CustodyLogHead, &head)?;
    ctx.write_log_out()?;
    info.push(("Custody-Log-Head", head.clone()));
    let today = OffsetDateTime::now_utc().date();
    // Hashes recorded at download are not recomputed; every other payload file is hashed.
    write_bag(
        &ctx.root,
        &|rel| ctx.state.file_hash(rel),
        &info,
        &today.to_string(),
        &|| match crate::report::write_in_bag(&ctx.root) {
            Ok(names) => Ok(names.to_vec()),
            Err(crate::report::ReportError::Write(e)) => Err(e),
            Err(other) => Err(Error::Report(other.to_string())),
        },
    )?;
    sign_or_clear(ctx, sign_key, &head)?;
    sync_dir(&ctx.root)
}

/// `data/call_facts.csv`: who spoke, when and why, per manifest item (crate::facts), from the
/// analytics records, the recordings' metadata and the directory's answers in the package.
fn write_call_facts(ctx: &Ctx<'_>) -> Result<()> {
    use crate::facts::{CONVERSATIONS_DIR, CallFacts, DIRECTORY_DIR, Names};
    let names = Names::read(&ctx.root.join(DIRECTORY_DIR));
    let read = |p: std::path::PathBuf| -> Option<Value> {
        serde_json::from_slice(&std::fs::read(p).ok()?).ok()
    };
    let mut w = CsvFile::create(&ctx.root.join(crate::verify::files::CALL_FACTS))?;
    w.row(CallFacts::HEADER)?;
    // Items come in manifest order (by conversation): one record read per conversation.
    let mut conv: Option<(String, Option<Value>)> = None;
    ctx.state.for_each(|it, _| {
        let safe = crate::model::safe_id(&it.conversation_id);
        if conv
            .as_ref()
            .is_none_or(|(id, _)| *id != it.conversation_id)
        {
            let record = safe
                .then(|| {
                    read(
                        ctx.root
                            .join(CONVERSATIONS_DIR)
                            .join(format!("{}.json", it.conversation_id)),
                    )
                })
                .flatten();
            conv = Some((it.conversation_id.clone(), record));
        }
        let recording = crate::model::safe_id(&it.recording_id)
            .then(|| {
                read(
                    ctx.root
                        .join("data/metadata")
                        .join(format!("{}.json", it.recording_id)),
                )
            })
            .flatten();
        let f = CallFacts::derive(
            &it.recording_id,
            &it.conversation_id,
            conv.as_ref().and_then(|(_, c)| c.as_ref()),
            recording.as_ref(),
            &names,
        );
        w.row(f.row().iter().map(|v| csv_cell(v).into_owned()))
    })?;
    w.finish()
}

/// A CSV written row by row to `<path>.tmp` (never held whole), fsynced and renamed into
/// place by [`CsvFile::finish`].
struct CsvFile {
    path: PathBuf,
    tmp: PathBuf,
    w: csv::Writer<std::io::BufWriter<std::fs::File>>,
}

impl CsvFile {
    fn create(path: &Path) -> Result<CsvFile> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let file = crate::durable::create_file(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(CsvFile {
            path: path.to_path_buf(),
            tmp,
            w: csv::Writer::from_writer(std::io::BufWriter::new(file)),
        })
    }

    fn row<I: IntoIterator<Item = T>, T: AsRef<[u8]>>(&mut self, record: I) -> Result<()> {
        self.w
            .write_record(record)
            .map_err(|e| Error::io(&self.tmp, std::io::Error::other(e)))
    }

    fn finish(self) -> Result<()> {
        let tmp = self.tmp;
        let file = self
            .w
            .into_inner()
            .map_err(|e| Error::io(&tmp, std::io::Error::other(e.to_string())))?
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}

/// `data/chain_of_custody.csv`, written row by row from the job database (never held whole).
fn write_custody_record(ctx: &Ctx<'_>) -> Result<Counted> {
    let query_used = ctx.state.get(Key::QueryUsed)?.unwrap_or_default();
    let query_text = query_used.as_str();
    // Written row by row from the job database, never held whole.
    let mut w = CsvFile::create(&ctx.root.join(files::CUSTODY_CSV))?;
    w.row([
        "Recording_ID",
        "File_Name",
        "SHA256_Hash",
        "Download_Timestamp",
        "Query_String_Used",
        "Exporter_User_ID",
        "Outcome",
        "Bytes",
        "Content_Type",
        "Conversation_ID",
        "Reason",
        "Media_Duration_S",
        "Stated_Duration_S",
        "Duration_Checked",
        "Stated_Duration_Source",
        "MD5_Hash",
        "SHA1_Hash",
    ])?;
    let mut duration = DurationCoverage::default();
    // Each file not compared is listed in data/summary.json: written aside as it passes.
    let mut not_checked = ScratchList::create(&ctx.root.join(NOT_CHECKED_SCRATCH), 2)?;
    let mut tally = Tally::default();
    ctx.state.for_each(|it, d| {
        let d = d.unwrap_or_else(|| Done::no_file(Outcome::Failed, "no outcome recorded"));
        tally.add(d.outcome, d.bytes);
        let bytes = d.bytes.map(|b| b.to_string()).unwrap_or_default();
        let secs = |ms: Option<u64>| {
            ms.map(|ms| format!("{:.3}", ms as f64 / 1000.0))
                .unwrap_or_default()
        };
        let (media_s, stated_s) = (secs(d.media_ms), secs(d.stated_ms));
        let checked = match d.duration_check() {
            None => "",
            Some(DurationCheck::Checked) => "yes",
            Some(DurationCheck::NotChecked(_)) => "no",
        };
        if let Some(entry) = duration.add(&it, &d) {
            not_checked.push(&entry)?;
        }
        // Every text cell through csv_cell: values from the API or the user are never a
        // spreadsheet formula or a control character (docs/formats.md).
        let c = |v: &str| csv_cell(v).into_owned();
        w.row([
            c(&it.recording_id),
            c(d.file.as_deref().unwrap_or("")),
            c(d.sha256.as_deref().unwrap_or("")),
            c(d.downloaded_at.as_deref().unwrap_or("")),
            c(query_text),
            c(ctx.api.client_id()),
            d.outcome.as_str().to_owned(),
            bytes,
            c(d.content_type.as_deref().unwrap_or("")),
            c(&it.conversation_id),
            c(&d.reason),
            media_s,
            stated_s,
            checked.to_owned(),
            c(d.stated_source.as_deref().unwrap_or("")),
            c(d.md5.as_deref().unwrap_or("")),
            c(d.sha1.as_deref().unwrap_or("")),
        ])
    })?;
    w.finish()?;
    Ok(Counted {
        tally,
        duration,
        not_checked,
    })
}

/// `data/summary.json`: counts per outcome, bytes, the seals' hashes, the duration coverage
/// (its list of the files not compared written in from the scratch file: never held whole).
fn write_summary(
    ctx: &Ctx<'_>,
    tally: &Tally,
    duration: &DurationCoverage,
    not_checked: ScratchList,
    completeness: &super::completeness::Completeness,
) -> Result<()> {
    // Every value before the list is custos's own (json_list::MARK).
    let summary = json!({
        "items": tally.items,
        "outcomes": tally.outcomes_json(),
        "purged": tally[Outcome::Purged],
        "exportedBytes": tally.exported_bytes,
        "querySha256": ctx.state.get(Key::QuerySha256)?,
        "manifestSha256": ctx.state.get(Key::ManifestSha256)?,
        "durationChecked": {"checked": duration.checked, "of": duration.files, "notChecked": json_list::MARK},
        "completeness": completeness,
    });
    json_list::write_document(&ctx.root.join("data/summary.json"), &summary, not_checked)
}

/// bag-info.txt's labels (the custody log's head is added once the log is sealed).
fn bag_info(ctx: &Ctx<'_>, duration: &DurationCoverage) -> Result<Vec<(&'static str, String)>> {
    let cfg = ctx.cfg;
    let mut info: Vec<(&'static str, String)> = Vec::new();
    if let Some(org) = &cfg.source_organization {
        info.push(("Source-Organization", org.clone()));
    }
    let export_id = ctx.state.get(Key::ExportId)?.unwrap_or_default();
    info.push((
        "External-Identifier",
        cfg.matter.clone().unwrap_or_else(|| export_id.clone()),
    ));
    info.push(("Bag-Software-Agent", format!("{TOOL} {VERSION} ({COMMIT})")));
    info.push(("Export-Tool", TOOL.into()));
    info.push(("Export-Tool-Version", VERSION.into()));
    info.push(("Export-Tool-Commit", COMMIT.into()));
    info.push(("Export-Id", export_id));
    info.push(("Export-Source", cfg.source.as_str().into()));
    info.push(("Genesys-API-Base", cfg.api_base.clone()));
    // Who and where, as the last run identified them (custody log: source-identified).
    let id: serde_json::Value = ctx
        .state
        .get(Key::Identity)?
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default();
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    for (label, value) in [
        ("Genesys-Organization-Id", text(&id["organization"]["id"])),
        (
            "Genesys-Organization-Name",
            text(&id["organization"]["name"]),
        ),
        ("Genesys-OAuth-Client-Id", text(&id["oauthClient"]["id"])),
        (
            "Genesys-OAuth-Client-Name",
            text(&id["oauthClient"]["name"]),
        ),
        ("Export-Operator", cfg.operator.clone()),
        ("Export-Host", text(&id["host"])),
        ("Export-Tool-SHA256", text(&id["binary"]["sha256"])),
        (
            "Clock-Offset-Seconds",
            id["clockOffsetSeconds"].as_i64().map(|o| o.to_string()),
        ),
    ] {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            info.push((label, v));
        }
    }
    info.push((
        "Duration-Tolerance-Seconds",
        format!("{}", cfg.duration_tolerance.as_secs_f64()),
    ));
    info.push((
        "Duration-Checked",
        format!("{} of {}", duration.checked, duration.files),
    ));
    info.push((
        "Query-SHA256",
        ctx.state.get(Key::QuerySha256)?.unwrap_or_default(),
    ));
    if cfg.protect {
        let n = ctx.state.protected_set()?.len();
        info.push((
            "Deletion-Protection",
            format!(
                "{n} conversations protected at the source ({})",
                crate::protection::PROTECTION_FILE
            ),
        ));
    }
    if cfg.restore.is_some() {
        let rows = ctx.state.restores()?;
        let restored = rows.iter().filter(|r| r.restored_at.is_some()).count();
        info.push((
            "Restored-From-Archive",
            format!("{restored} of {} restores asked for", rows.len()),
        ));
    }
    info.push((
        "Manifest-SHA256",
        ctx.state.get(Key::ManifestSha256)?.unwrap_or_default(),
    ));
    Ok(info)
}

/// Signs the tag manifest with the key, or removes a signature an earlier run left.
fn sign_or_clear(ctx: &Ctx<'_>, sign_key: Option<&minisign::SecretKey>, head: &str) -> Result<()> {
    let cfg = ctx.cfg;
    let sig = ctx.root.join(files::SIGNATURE);
    match sign_key {
        Some(sk) => {
            let comment = format!(
                "custos matter:{} export:{} custody-log-head:{head} tool:{VERSION}",
                cfg.matter
                    .as_deref()
                    .unwrap_or("-")
                    .replace(char::is_whitespace, "_"),
                ctx.state.get(Key::ExportId)?.unwrap_or_default()
            );
            crate::sign::sign_bag(&ctx.root, sk, &comment)?;
        }
        // A stale signature from an earlier run would no longer match: never leave one behind.
        None if sig.exists() => std::fs::remove_file(&sig).map_err(|e| Error::io(&sig, e))?,
        None => {}
    }
    Ok(())
}
