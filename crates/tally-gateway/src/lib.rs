//! Access logs of API gateways and web servers, read as the usage of the
//! CLIs that made the requests.
//!
//! Every CLI that talks to its own API leaves a trail in those logs: its
//! name, version and platform in the User-Agent, the feature it used in
//! the method and path, the outcome in the status. This crate reads that
//! trail; `tally import-logs` turns it into events. It does no I/O.
//!
//! ```
//! use tally_gateway::agent::{self, Kind};
//! let client = agent::parse("gh/2.63.0 (linux; amd64)");
//! assert_eq!((client.kind, client.name.as_str()), (Kind::Cli, "gh"));
//! assert_eq!((client.os.as_deref(), client.arch.as_deref()), (Some("linux"), Some("x86_64")));
//! ```

pub mod access;
pub mod agent;
pub mod event;
pub mod json;
pub mod routes;
