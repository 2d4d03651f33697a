//! Integration tests of the library, one binary (one link on a 2-core CI box) with a module per
//! area: exports against the simulator over real HTTP on 127.0.0.1, the fault matrix, hostile
//! servers, real media files, and the query's derived requests.

mod chain;
mod common;
mod export;
mod facts;
mod faults;
mod hostile;
mod media;
mod natives;
mod package;
mod preserve;
mod query_against_sim;
mod rsmf;
mod transcripts;
