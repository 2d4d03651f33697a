//! The crate's errors, typed by what the caller can do about them.

/// Why storage could not be used (per-object problems are [`PutError`](crate::store::PutError)s).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The destination URL names no store (`s3://BUCKET/PREFIX`, `azure://ACCOUNT/CONTAINER/PREFIX`).
    #[error("{0}")]
    Target(String),
    /// The settings do not fit together or cannot reach a store (no region, no credentials,
    /// a connection string for another account, retention without a lock mode).
    #[error("{0}")]
    Settings(String),
    /// The export cannot be uploaded or compared: not sealed, or damaged since it was.
    #[error("{0}")]
    Bag(String),
    /// The store could not be reached, or refused us (network, credentials, no such bucket).
    #[error("{0}")]
    Unreachable(String),
}
