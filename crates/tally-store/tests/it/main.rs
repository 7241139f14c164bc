//! Each backend against the conformance suite (one test per check and per
//! report), and what is particular to each seen from outside.

#[cfg(feature = "clickhouse")]
mod clickhouse;
#[cfg(feature = "duckdb")]
mod duckdb;
