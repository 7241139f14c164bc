//! End-to-end tests: the real `tally` binary, a real DuckDB file, loopback.

mod bad_input;
mod browser;
mod crash;
mod demo;
mod ingest;
mod support;
