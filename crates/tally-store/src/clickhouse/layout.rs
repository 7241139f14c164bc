//! How a database's rollups keep what they merge, by the generation it was
//! made in: its install sets ([`Installs`]) and its durations
//! ([`Durations`]). Both are read off the `rollups` table, so a collector
//! works with the database it finds, whichever Tally made it.

use super::http::{Http, quote};
use super::installs::Installs;
use crate::StoreError;

/// The rollups' install sets and durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    pub(super) installs: Installs,
    pub(super) durations: Durations,
}

impl Layout {
    /// The first layout, which Tally still makes on servers before 21.8.
    pub(super) const FIRST: Layout = Layout {
        installs: Installs::Hashes,
        durations: Durations::States,
    };

    /// What the database's `rollups` table holds.
    pub(super) fn detect(http: &Http) -> Result<Layout, StoreError> {
        let rows = http.rows(&format!(
            "SELECT name, type FROM system.columns
             WHERE database = {} AND table = 'rollups' AND name IN ('installs', 'durations')",
            quote(http.database())
        ))?;
        let type_of = |column: &str| {
            rows.iter()
                .find(|r| r["name"] == column)
                .and_then(|r| r["type"].as_str())
                .unwrap_or_default()
                .to_owned()
        };
        Ok(Layout {
            installs: if type_of("installs").contains("groupBitmap") {
                Installs::Numbers
            } else {
                Installs::Hashes
            },
            durations: if type_of("durations").starts_with("SimpleAggregateFunction") {
                Durations::Arrays
            } else {
                Durations::States
            },
        })
    }
}

/// How the rollups keep durations: a histogram as bucket and count arrays,
/// summed by bucket as rows merge (`sumMap`).
///
/// - [`Durations::States`] (databases made on ClickHouse before 21.8, such
///   as Debian's 18.16, and those made before Tally kept arrays): `sumMap`
///   states. Reading one rebuilds its tree of values, which made the
///   durations report take most of a second at 10M events on any engine.
/// - [`Durations::Arrays`] (databases this Tally makes on 21.8 and
///   later): `SimpleAggregateFunction(sumMap)`, the two arrays as they
///   are, read as plain columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Durations {
    /// `sumMap` states.
    States,
    /// The bucket and count arrays.
    Arrays,
}

impl Durations {
    /// The type of the rollups' `durations` column.
    pub(super) fn column_type(self) -> &'static str {
        match self {
            Durations::States => "AggregateFunction(sumMap, Array(UInt64), Array(UInt64))",
            Durations::Arrays => {
                "SimpleAggregateFunction(sumMap, Tuple(Array(UInt64), Array(UInt64)))"
            }
        }
    }

    /// The durations of the events with bucket and count arrays `arrays`
    /// (SQL, comma-separated), for the views.
    pub(super) fn of(self, arrays: &str) -> String {
        match self {
            Durations::States => format!("sumMapState({arrays})"),
            Durations::Arrays => format!("sumMap({arrays})"),
        }
    }

    /// The merged `durations` of rows, as bucket and count arrays.
    pub(super) fn merged(self) -> &'static str {
        match self {
            Durations::States => "sumMapMerge(durations)",
            Durations::Arrays => "sumMap(durations.1, durations.2)",
        }
    }
}
