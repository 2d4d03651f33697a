//! The library's one error type.
//!
//! Policy: an `Error` means the export as a whole cannot go on (bad input, no credentials, the
//! API refusing us, the disk failing). Problems with one recording are never errors: they become
//! that item's outcome (`Purged`, `Archived`, `Corrupted`, `Failed` with a reason), so one bad
//! recording never stops an export and nothing is lost silently.

use std::path::PathBuf;

/// Why an export could not go on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query is not valid.
    #[error("{0}")]
    Query(#[from] crate::query::QueryError),
    /// A setting is wrong; the message says which and what to do.
    #[error("{0}")]
    Config(String),
    /// The output directory cannot be used.
    #[error("{path}: {message}")]
    OutputDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Another run holds the export directory.
    #[error(
        "{path}: another custos run (pid {holder}) is writing this export; wait for it to finish, or choose another directory"
    )]
    Busy {
        /// The export directory.
        path: PathBuf,
        /// Who holds it (the pid the lock file names, or "unknown").
        holder: String,
    },
    /// A file the export already wrote is not as it was written.
    #[error("{path}: {message}")]
    Tampered {
        /// The file.
        path: PathBuf,
        /// What differs, and what to do.
        message: String,
    },
    /// A package that does not prove what the command needs (crate::verify::Package).
    #[error("{0}")]
    Unproven(#[from] crate::verify::OpenError),
    /// No Time Stamping Authority timestamped the sealed export: re-run to try again.
    #[error("not timestamped: {0}; the export is sealed; re-run the same command to ask again")]
    Timestamp(String),
    /// The report could not be written from the package's files (a bug: they were just written).
    #[error("cannot write the report: {0}")]
    Report(String),
    /// The run was stopped by a signal: re-run to resume.
    #[error("stopped by {0}; nothing already exported is lost")]
    Stopped(String),
    /// `--restore-archived --no-wait`: everything else is exported, and these restores are
    /// still under way at the source. Re-run the same command to continue (it asks no restore
    /// again).
    #[error(
        "{0} archived recordings are still being restored at the source; everything else is exported; re-run the same command later to continue (no restore is asked for twice)"
    )]
    RestoresPending(u64),
    /// Genesys would not put (or take) deletion protection on every conversation asked for.
    #[error("deletion protection refused: {0}")]
    Protection(String),
    /// The API refused a request with a client error that asking again will not change.
    #[error("{method} {url} was refused with {status}: {message}")]
    Refused {
        /// HTTP method.
        method: String,
        /// URL (never with a secret in it).
        url: String,
        /// The HTTP status.
        status: u16,
        /// Genesys error code/message.
        message: String,
    },
    /// Authentication failed.
    #[error("authentication failed at {url}: {message}")]
    Auth {
        /// The token URL.
        url: String,
        /// What the login host said.
        message: String,
    },
    /// The API answered something we cannot go on from.
    #[error("{method} {url} failed: {message}")]
    Api {
        /// HTTP method.
        method: String,
        /// URL (never with a secret in it).
        url: String,
        /// Status and Genesys error code/message, or the transport error.
        message: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The job database failed.
    #[error("job database: {0}")]
    State(#[from] rusqlite::Error),
    /// The job state in PostgreSQL could not be read or written (the server unreachable, the
    /// connection lost, the job held by another process): a re-run resumes.
    #[error("{0}")]
    JobState(String),
    /// A worker of a distributed job lost its lease: what it did since was not recorded, and
    /// other workers may have taken its items. Starting it again rejoins the job.
    #[error("{0}")]
    Fenced(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether re-running the same command cannot help (bad input, settings, a refusal): the
    /// CLI's exit 2. Everything else stopped an export that a re-run resumes (exit 3).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Error::Query(_)
                | Error::Protection(_)
                | Error::Config(_)
                | Error::OutputDir { .. }
                | Error::Auth { .. }
                | Error::Busy { .. }
                | Error::Tampered { .. }
                | Error::Unproven(_)
                | Error::Refused { .. }
        )
    }

    /// The disk (or the user's quota) is full: freeing space and re-running resumes the export.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Io { source, .. } => {
                matches!(
                    source.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                ) || matches!(source.raw_os_error(), Some(28 | 122)) // ENOSPC, EDQUOT
            }
            Error::State(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            _ => false,
        }
    }
}

/// Shorthand.
pub type Result<T, E = Error> = std::result::Result<T, E>;
