//! End-to-end tests: the real `tally` binary, a real DuckDB file, a real
//! ClickHouse server, loopback.

mod browser;
mod cluster;
mod crash;
mod demo;
mod disk_full;
mod forward;
mod hostile;
mod import_logs;
mod ingest;
mod privacy;
mod secrets;
mod support;
