//! Small groups left out (see `Query::min_installs`): a source that drops
//! the groups with fewer distinct installs than the app shows, before any
//! report sees them, and the rows with counts of installs under it that
//! tables make of rows themselves (active installs of a day, a cohort, a
//! deprecation's usage).

use std::sync::atomic::{AtomicU64, Ordering};

use tally_protocol::Event;
use tally_report::{Cell, Filter, Table};
use time::OffsetDateTime;

use super::Src;
use crate::{Group, Need, Row, Source};

/// The columns that count installs.
const INSTALL_COUNTS: &[&str] = &[
    "installs",
    "active_installs",
    "new_installs",
    "daily",
    "weekly",
    "monthly",
];

/// `inner`, less its groups of fewer than `min_installs` installs.
pub(super) struct Hiding<'s, E> {
    pub(super) inner: Src<'s, E>,
    pub(super) min_installs: u64,
    /// Groups left out so far.
    pub(super) hidden: AtomicU64,
}

impl<E: From<crate::Error> + Send> Source for Hiding<'_, E> {
    type Error = E;

    fn stored(
        &self,
        filter: &Filter,
        need: &Need,
        days: (Option<i32>, Option<i32>),
        each: &mut dyn FnMut(Row) -> Result<(), E>,
    ) -> Result<(), E> {
        self.inner.stored(filter, need, days, each)
    }

    fn events(&self, app: &str, from: i64, to: i64) -> Result<Vec<(Event, u32)>, E> {
        self.inner.events(app, from, to)
    }

    fn each_row(
        &self,
        filter: &Filter,
        need: &Need,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
        each: &mut dyn FnMut(Row) -> Result<(), E>,
    ) -> Result<(), E> {
        self.inner.each_row(filter, need, since, until, each)
    }

    fn grouped(
        &self,
        filter: &Filter,
        need: &Need,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
    ) -> Result<Vec<Vec<Group>>, E> {
        // Install counts decide what is hidden, also for reports that
        // read counts alone.
        let need = Need {
            installs: true,
            ..need.clone()
        };
        let mut groupings = self.inner.grouped(filter, &need, since, until)?;
        for groups in &mut groupings {
            let before = groups.len();
            groups.retain(|g| g.installs >= self.min_installs);
            self.hidden
                .fetch_add((before - groups.len()) as u64, Ordering::Relaxed);
        }
        Ok(groupings)
    }
}

/// Leaves out of `tables` every row with a count of installs under
/// `min_installs` (but not zero): rows tables make of rows themselves
/// (active installs of a day, a cohort, a deprecation's usage), which no
/// group stood for; returns how many.
pub(super) fn drop_small_rows(tables: &mut [Table], min_installs: u64) -> u64 {
    let mut dropped = 0;
    for table in tables {
        let columns: Vec<usize> = (0..table.columns.len())
            .filter(|&c| INSTALL_COUNTS.contains(&table.columns[c].as_str()))
            .collect();
        let before = table.rows.len();
        table.rows.retain(|row| {
            !columns.iter().any(
                |&c| matches!(row.get(c), Some(Cell::Int(n @ 1..)) if (*n as u64) < min_installs),
            )
        });
        let gone = before - table.rows.len();
        table.total_rows = table.total_rows.saturating_sub(gone);
        dropped += gone as u64;
    }
    dropped
}
