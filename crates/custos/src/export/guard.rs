//! Guards that keep one export directory one package: the run lock, the output directory's
//! shape, the settings recorded at the start and compared on resume, and the files an earlier
//! run wrote, hashed again before a resume trusts them.

use crate::package::files;
use std::path::Path;

use super::config::{ExportConfig, Retrieval};
use super::context::Ctx;
use crate::custody::os_identity;
use crate::durable::sha256_file;
use crate::error::{Error, Result};
use crate::state::{Done, Key};

/// Every setting that shapes the package, as recorded at the start and compared on resume:
/// (name as the user gives it, value).
pub(super) fn settings(
    cfg: &ExportConfig,
    sign_key: Option<&minisign::SecretKey>,
    previous: Option<&super::chain::Previous>,
) -> Vec<(&'static str, String)> {
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    vec![
        ("--source", cfg.source.as_str().into()),
        // As the client uses them: a trailing '/' is no other API.
        ("--api-base", cfg.api_base.trim_end_matches('/').to_owned()),
        (
            "--login-base",
            cfg.login_base.trim_end_matches('/').to_owned(),
        ),
        ("--retrieval", cfg.retrieval.mode().as_str().into()),
        (
            "--format",
            match &cfg.retrieval {
                Retrieval::Batch => "(original codec)".into(),
                Retrieval::Transcode(f) => f.clone(),
            },
        ),
        ("--archive", archive_setting(cfg.archive.as_ref())),
        ("--matter", or_none(&cfg.matter)),
        ("--operator", or_none(&cfg.operator)),
        ("--source-organization", or_none(&cfg.source_organization)),
        (
            "--duration-tolerance",
            format!("{}", cfg.duration_tolerance.as_secs_f64()),
        ),
        ("page size", cfg.page_size.to_string()),
        ("--protect", if cfg.protect { "yes" } else { "no" }.into()),
        (
            "--restore-archived",
            cfg.restore.as_ref().map_or_else(
                || "no".into(),
                |r| format!("yes, --restore-days {}", r.days),
            ),
        ),
        (
            "--orphans",
            match (cfg.orphans, cfg.collect_orphans) {
                (_, true) => "yes, collected (--collect-orphans)",
                (true, false) => "yes",
                (false, false) => "no",
            }
            .into(),
        ),
        ("--workers", if cfg.workers { "yes" } else { "no" }.into()),
        (
            "--transcripts",
            if cfg.transcripts { "yes" } else { "no" }.into(),
        ),
        ("--media", media_setting(&cfg.media)),
        (
            "--increment-of",
            previous.map_or_else(
                || "(none)".into(),
                |p| {
                    format!(
                        "the bag with tag manifest SHA-256 {}",
                        p.tag_manifest_sha256
                    )
                },
            ),
        ),
        (
            "--sign-key",
            sign_key
                .map(|k| format!("key id {}", hex::encode_upper(k.keynum())))
                .unwrap_or_else(|| "(unsigned)".into()),
        ),
    ]
}

/// Takes the export directory for this run: an OS lock on `.custos/lock`, held until the run
/// ends (also by a crash: the OS releases it). A second run is refused at once, naming the pid.
pub(super) fn lock(root: &Path) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = root.join(".custos").join("lock");
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(crate::durable::WORKING_MODE);
    }
    let mut f = o.open(&path).map_err(|e| Error::io(&path, e))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            let holder = holder
                .split_whitespace()
                .next()
                .unwrap_or("unknown")
                .chars()
                .take(20)
                .collect();
            return Err(Error::Busy {
                path: root.to_path_buf(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
    }
    let me = format!("{} {}\n", std::process::id(), os_identity());
    f.set_len(0)
        .and_then(|_| f.rewind())
        .and_then(|_| f.write_all(me.as_bytes()))
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(&path, e))?;
    Ok(f)
}

/// The output directory must be a directory (or not exist yet), and not a dangling link.
pub(super) fn check_out(root: &Path) -> Result<()> {
    let bad = |message: &str| Error::OutputDir {
        path: root.to_path_buf(),
        message: message.into(),
    };
    match std::fs::symlink_metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(root, e)),
        Ok(m) if m.is_dir() => Ok(()),
        Ok(m) if m.file_type().is_symlink() => match std::fs::metadata(root) {
            Ok(t) if t.is_dir() => Ok(()),
            Ok(_) => Err(bad(
                "is a link to something that is not a directory; give a directory",
            )),
            Err(_) => Err(bad(
                "is a link to nothing (a dangling symlink); give a directory",
            )),
        },
        Ok(_) => Err(bad(
            "is a file, not a directory; give a directory for the export",
        )),
    }
}

/// Records the settings on the first run; on a resume, refuses any that differ, naming it.
pub(super) fn compare_settings(ctx: &Ctx<'_>, now: &[(&'static str, String)]) -> Result<()> {
    let started_before = ctx.state.get(Key::QuerySha256)?.is_some();
    for (name, value) in now {
        let key = Key::Setting(name);
        match ctx.state.get(key)? {
            Some(prev) if &prev != value => {
                return Err(Error::OutputDir {
                    path: ctx.root.clone(),
                    message: format!(
                        "this export was started with {name} {prev}; this run gives {value}. One package is made with one set of settings: re-run with {name} {prev}, or export into a new directory"
                    ),
                });
            }
            Some(_) => {}
            // A job database from before settings were recorded: the API host was.
            None if started_before && *name == "--api-base" => {
                if let Some(origin) = ctx.state.get(Key::Origin)? {
                    let host = url::Url::parse(value)
                        .ok()
                        .and_then(|u| u.host_str().map(str::to_owned))
                        .unwrap_or_default();
                    if origin != format!("{} at {host}", ctx.cfg.source.as_str()) {
                        return Err(Error::OutputDir {
                            path: ctx.root.clone(),
                            message: format!(
                                "holds an export from {origin}; choose a new directory"
                            ),
                        });
                    }
                }
                ctx.state.set(key, value)?;
            }
            // A job database from before these were recorded ran without them.
            None if started_before
                && [
                    "--protect",
                    "--restore-archived",
                    "--increment-of",
                    "--orphans",
                    "--workers",
                    "--transcripts",
                    "--media",
                ]
                .contains(name)
                && value != "no"
                && value != "(none)"
                && value != EVERY_MEDIA =>
            {
                return Err(Error::OutputDir {
                    path: ctx.root.clone(),
                    message: format!(
                        "this export was started with {name} no (before it was recorded); this run gives {value}. One package is made with one set of settings: export into a new directory"
                    ),
                });
            }
            None => ctx.state.set(key, value)?,
        }
    }
    Ok(())
}

/// Before a resume trusts what an earlier run wrote: the sealed query record and manifest,
/// and every finished download, hashed again and compared with the job database.
pub(super) fn recheck_written(ctx: &Ctx<'_>) -> Result<()> {
    let check = |rel: &str, want: &str, what: &str| -> Result<()> {
        let path = ctx.kept_at(rel, want);
        let got = match sha256_file(&path) {
            Ok((h, _)) => h,
            Err(e) => {
                let now = if std::fs::symlink_metadata(&path).is_ok() {
                    format!("is no longer that file ({e})")
                } else {
                    "is gone".to_owned()
                };
                return Err(Error::Tampered {
                    path,
                    message: format!(
                        "{what} written by an earlier run of this export {now}; the export cannot be resumed. Restore the file, or export again into a new directory"
                    ),
                });
            }
        };
        if got != want {
            return Err(Error::Tampered {
                path,
                message: format!(
                    "{what} changed since an earlier run of this export wrote it (SHA-256 {want} then, {got} now); the export cannot be resumed. Restore the file, or export again into a new directory"
                ),
            });
        }
        Ok(())
    };
    if let Some(sha) = ctx.state.get(Key::QuerySha256)? {
        check(files::QUERY, &sha, "the query record")?;
    }
    if let Some(sha) = ctx.state.get(Key::ManifestSha256)? {
        check(files::MANIFEST_CSV, &sha, "the sealed manifest")?;
    }
    ctx.state.for_each(|_, d| match d {
        Some(Done {
            file: Some(file),
            sha256: Some(sha),
            ..
        }) => check(&file, &sha, "a downloaded file"),
        _ => Ok(()),
    })
}

pub(super) fn remove_partials(dir: &Path) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        if p.is_dir() {
            remove_partials(&p)?;
        } else if p.extension().is_some_and(|x| x == "part" || x == "tmp") {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

/// True if `root` is empty, or holds only the `.custos/` (empty, or with only the run lock) and
/// the empty `data/` an export creates before its job database (a run killed at that instant
/// must be resumable).
pub(super) fn empty_or_our_skeleton(root: &Path) -> Result<bool> {
    for e in std::fs::read_dir(root).map_err(|e| Error::io(root, e))? {
        let e = e.map_err(|e| Error::io(root, e))?;
        let allowed: &[&str] = match e.file_name().to_str() {
            Some(".custos") => &["lock"],
            Some("data") => &[],
            _ => return Ok(false),
        };
        if !e
            .file_type()
            .map_err(|err| Error::io(e.path(), err))?
            .is_dir()
        {
            return Ok(false);
        }
        for inner in std::fs::read_dir(e.path()).map_err(|err| Error::io(e.path(), err))? {
            let inner = inner.map_err(|err| Error::io(e.path(), err))?;
            if !inner
                .file_name()
                .to_str()
                .is_some_and(|n| allowed.contains(&n))
            {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// `--media` as the settings record it: every type, or the sorted list.
const EVERY_MEDIA: &str = "(every type)";

fn media_setting(media: &[crate::model::Media]) -> String {
    if media.is_empty() {
        return EVERY_MEDIA.into();
    }
    let mut m = media.to_vec();
    m.sort();
    m.dedup();
    m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(",")
}

/// The `--archive` setting as the job records it (a worker's archive must be the job's).
pub(super) fn archive_setting(archive: Option<&crate::archive::ArchiveSource>) -> String {
    archive.map_or_else(
        || "(none)".into(),
        |a| {
            format!(
                "{}, --archive-layout {}, --archive-missing {}{}{}",
                a.store.location(),
                a.layout.as_str(),
                a.missing.as_str(),
                // Said only when asked for, so that a job recorded before it resumes.
                if a.read_settled {
                    ", --archive-settled read"
                } else {
                    ""
                },
                a.bulk
                    .as_ref()
                    .map(|b| format!(", --bulk-export {}", b.integration_id))
                    .unwrap_or_default()
            )
        },
    )
}
