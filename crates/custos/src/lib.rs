//! Custos: evidence-grade export of Genesys Cloud CX call recordings for legal eDiscovery.
//!
//! This crate is the pipeline library (query → sealed manifest → retrieval → evidence package);
//! it never prints, parses argv or exits. [`export()`](crate::export::export) runs one export ([`export`](mod@export): its config,
//! context, guards and stages); [`http`] is the only code that sends requests; [`durable`] the
//! only code that writes evidence; [`verify`] checks a package it does not trust; [`proof`]
//! proves one recording belongs to a signed export ([`merkle`]). docs/architecture.md draws the
//! modules and their one-way dependencies.
//!
//! ```
//! let r = custos::region::Region::parse("mypurecloud.ie").unwrap();
//! assert_eq!(r.api_base(), "https://api.mypurecloud.ie");
//! assert_eq!(r.login_base(), "https://login.mypurecloud.ie");
//! ```

pub mod approve;
pub mod archive;
pub mod custody;
pub mod digest;
pub mod durable;
pub mod error;
pub mod export;
pub mod facts;
pub mod http;
pub mod identity;
pub mod ids;
pub mod lines;
pub mod media;
pub mod merkle;
pub mod model;
pub mod package;
pub mod produce;
pub mod proof;
pub mod protection;
pub mod query;
pub mod region;
pub mod report;
pub mod shown;
pub mod sign;
pub mod source;
pub mod state;
pub mod transcript;
pub mod tsa;
pub mod verify;

pub use error::{Error, Result};
pub use export::{ExportConfig, Report, Retrieval, Selection, SourceKind, export};
