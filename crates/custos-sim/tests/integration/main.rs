//! Integration tests of the simulator over real HTTP on 127.0.0.1, one binary with a module per
//! area. Timers are driven by the simulator's clock (`Sim::advance_clock`), never by sleeping.

mod analytics;
mod auth;
mod cli;
mod common;
mod faults;
mod media;
mod rate_limit;
mod recordings;
mod schema;
mod search;
