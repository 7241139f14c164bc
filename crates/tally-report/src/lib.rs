//! Tally's reports as data: which reports exist, the filters they take, and
//! the tables they answer with. `tally-rollup` computes them; the
//! server, the CLI and the dashboard ask for and show them.
//!
//! ```
//! use std::collections::BTreeMap;
//! use tally_report::{Query, ReportName};
//! let params = BTreeMap::from([("app".to_owned(), "mycli".to_owned()), ("env".to_owned(), "ci".to_owned())]);
//! let query = Query::from_params(ReportName::Commands, &params)?;
//! assert_eq!(query.filter.app, "mycli");
//! # Ok::<(), tally_report::QueryError>(())
//! ```

mod escape;
mod query;
mod table;
mod version;

pub use query::{DEFAULT_LIMIT, Env, Filter, Query, QueryError, ReportName, Source};
pub use table::{Cell, Hidden, OTHER, Report, Table};
pub use version::compare_versions;
