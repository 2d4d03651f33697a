//! Integration tests of the `custos` command, one binary (one link on a 2-core CI box) with a
//! module per area: the CLI end to end against the simulator (with its export guards and the
//! hostile-package corpus for `verify`), the crash harness, the recording fake store, and real
//! storage servers (s3s-fs, moto, Azurite).

mod archive;
mod backends;
mod cli;
mod common;
mod crash;
mod fake_store;
mod postgres;
mod storage;
mod workers;
