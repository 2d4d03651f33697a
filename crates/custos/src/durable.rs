//! Writing evidence so it survives a crash, and hashing files: every file custos writes goes
//! through here (a temporary name, fsync, rename, fsync of the directory, an exact mode).

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::digest::Sha256;
use crate::error::{Error, Result};

/// Modes custos gives what it writes, whatever the umask: evidence read-only for everyone,
/// working files writable by the owner only, directories never writable by others.
pub const EVIDENCE_MODE: u32 = 0o444;
/// Files custos still appends to or rewrites (the custody log, the custody record, tag files).
pub const WORKING_MODE: u32 = 0o644;
/// Directories.
pub const DIR_MODE: u32 = 0o755;

/// Creates (truncating) `path` for writing with [`WORKING_MODE`] at most.
pub fn create_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(WORKING_MODE);
    }
    o.open(path)
}

/// Sets `path`'s mode exactly (not through the umask).
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(path, e))
    }
    #[cfg(not(unix))]
    {
        let mut p = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .permissions();
        p.set_readonly(mode & 0o222 == 0);
        std::fs::set_permissions(path, p).map_err(|e| Error::io(path, e))
    }
}

/// `create_dir_all` with [`DIR_MODE`] at most for every directory it creates.
pub fn make_dirs(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(DIR_MODE);
    }
    b.create(dir).map_err(|e| Error::io(dir, e))
}

/// Renames `part` to `dest`, makes it read-only ([`EVIDENCE_MODE`]), writes `<dest>.sha256`
/// (two spaces, as `sha256sum -c` and `shasum -c` both accept), and fsyncs the directory.
pub fn finalize(part: &Path, dest: &Path, sha256: &str) -> Result<()> {
    set_mode(part, EVIDENCE_MODE)?;
    std::fs::rename(part, dest).map_err(|e| Error::io(dest, e))?;
    let name = dest
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    write_sealed(&sidecar(dest), format!("{sha256}  {name}\n").as_bytes())
}

/// `<file>.sha256`.
pub fn sidecar(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

/// Writes a file via a temporary name, fsync, rename and an fsync of the directory: readers
/// see the old file or the new one, never half of one, and after a power loss the new name is
/// there if this returned. Mode [`WORKING_MODE`].
pub fn write_durably(path: &Path, data: &[u8]) -> Result<()> {
    write_with_mode(path, data, WORKING_MODE)
}

/// [`write_durably`], read-only ([`EVIDENCE_MODE`]): for files written once (the query
/// record, the manifest, metadata as received, sidecars).
pub fn write_sealed(path: &Path, data: &[u8]) -> Result<()> {
    write_with_mode(path, data, EVIDENCE_MODE)
}

fn write_with_mode(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    write_streamed(path, mode, &mut |w| w.write_all(data)).map(|_| ())
}

/// [`write_sealed`] of what `fill` writes, streamed through a buffer and hashed as it goes,
/// never held whole: its SHA-256.
pub fn write_sealed_streamed(
    path: &Path,
    fill: &mut dyn FnMut(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<Sha256> {
    write_streamed(path, EVIDENCE_MODE, fill)
}

/// [`write_durably`] of what `fill` writes, streamed through a buffer, never held whole.
pub fn write_durably_streamed(
    path: &Path,
    fill: &mut dyn FnMut(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<()> {
    write_streamed(path, WORKING_MODE, fill).map(|_| ())
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    sha: sha2::Sha256,
}

impl<W: std::io::Write> std::io::Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        sha2::Digest::update(&mut self.sha, &buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn write_streamed(
    path: &Path,
    mode: u32,
    fill: &mut dyn FnMut(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<Sha256> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // A read-only leftover of a crashed run cannot be truncated by its owner: start afresh.
    let _ = std::fs::remove_file(&tmp);
    let sha = {
        let f = create_file(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut w = Hashing {
            inner: std::io::BufWriter::new(f),
            sha: <sha2::Sha256 as sha2::Digest>::new(),
        };
        fill(&mut w).map_err(|e| Error::io(&tmp, e))?;
        w.flush().map_err(|e| Error::io(&tmp, e))?;
        let f = w
            .inner
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        Sha256::finish(w.sha)
    };
    if mode != WORKING_MODE {
        set_mode(&tmp, mode)?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir)?,
        _ => sync_dir(Path::new("."))?,
    }
    Ok(sha)
}

/// fsyncs a directory so a rename in it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(test)]
    SYNCED_DIRS
        .lock()
        .expect("test record")
        .push(dir.to_path_buf());
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Every directory fsynced, for the tests (a power loss cannot be staged in one).
#[cfg(test)]
static SYNCED_DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// SHA-256 of a file, streamed.
///
/// Only a regular file is read: a FIFO, a device or a directory (put where a file should be,
/// e.g. in a shared directory) is refused at once, never waited on.
pub fn sha256_file(path: &Path) -> Result<(Sha256, u64)> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let mut f = o.open(path).map_err(|e| Error::io(path, e))?;
    let meta = f.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file (a FIFO, a device or a directory); refused, not read",
            ),
        ));
    }
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((Sha256::finish(h), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rename is durable only once its directory is fsynced: query.json and manifest.csv
    /// are recorded as sealed right after `write_sealed` returns (this failed before the fix).
    #[test]
    fn a_durable_write_fsyncs_the_directory_it_renames_in() {
        let dir = std::env::temp_dir().join(format!("custos-durable-sync-{}", std::process::id()));
        make_dirs(&dir).unwrap();
        for (name, write) in [
            ("a", write_durably as fn(&Path, &[u8]) -> Result<()>),
            ("b", write_sealed),
        ] {
            write(&dir.join(name), b"x").unwrap();
            let synced = SYNCED_DIRS
                .lock()
                .unwrap()
                .iter()
                .filter(|d| **d == dir)
                .count();
            assert!(
                synced >= 1,
                "{name}: the directory was not fsynced after the rename"
            );
            SYNCED_DIRS.lock().unwrap().retain(|d| *d != dir);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_hashes_as_its_bytes_do() {
        let dir = std::env::temp_dir().join(format!("custos-durable-{}", std::process::id()));
        make_dirs(&dir).unwrap();
        let p = dir.join("f");
        write_durably(&p, b"abc").unwrap();
        assert_eq!(sha256_file(&p).unwrap(), (Sha256::of(b"abc"), 3));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
