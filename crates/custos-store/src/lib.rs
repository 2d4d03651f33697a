//! Custos' write-once storage: `custos upload` puts a sealed export into an S3 bucket with
//! Object Lock or an Azure Blob container with immutability, has the store check every object's
//! bytes against the bag's own hashes, reads every object back, and keeps a hash-chained,
//! optionally signed receipt beside the bag (never inside what the bag seals).
//! `custos verify --remote` compares what a store holds with the bag and the receipt.
//!
//! ```
//! let t = custos_store::target::Target::parse("s3://evidence-bucket/matter-42/export-1").unwrap();
//! assert_eq!(t.key("bagit.txt"), "matter-42/export-1/bagit.txt");
//! assert!(custos_store::target::Target::parse("s3://evidence-bucket").is_err());
//! ```

pub mod archive;
pub mod azure;
mod connect;
pub mod error;
pub mod plan;
pub mod remote;
pub mod s3;
pub mod store;
pub mod target;
pub mod upload;

pub use connect::connect;
pub use error::StoreError;
pub use store::rfc3339;
