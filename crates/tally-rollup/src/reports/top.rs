//! A query's limit: a table lists the values that count most and sums the
//! rest in one `(other)` row, so that an app with 100,000 versions in the
//! field answers with a page a reader (and a browser) can take in.
//!
//! Which rows are kept is decided by a ranking (most installs or runs
//! first); kept rows stay in the table's own order (newest version first,
//! by command ...), and the `(other)` row comes last, with
//! [`Table::total_rows`] saying how many rows there were. A rest of one row
//! is listed as itself, since folding it would hide its name for nothing.
//! Rows whose key cells all read [`OTHER`] (values the server stored as
//! `(other)` at ingest) always go to the rest, so a table has one
//! `(other)` row at most.
//!
//! In the `(other)` row, runs and the counts behind rates are sums, times
//! are the earliest and latest, and durations come from the merged
//! histograms. Its distinct installs are empty: an install can be in
//! several of the rows, so their installs do not add up, and a backend
//! that counts installs itself does not send the sets to union. (The
//! deprecation report, which reads the sets, gives the exact union.)

use std::cmp::Ordering;

use tally_report::{Cell, OTHER, Table};

use super::table::columns;
use crate::Agg;

/// A table's items split by a limit (see the module doc).
pub(super) struct Top<T> {
    /// The items listed as themselves, in the table's order.
    kept: Vec<T>,
    /// The items for the `(other)` row, none or at least two unless the
    /// one is itself `(other)`.
    rest: Vec<T>,
    /// How many items there were.
    total: usize,
}

impl<T> Top<T> {
    /// Splits `items`, given in the table's order, by `limit`: the first
    /// `limit` items by `rank` (ties in the table's order) are kept, save
    /// those `is_other`.
    pub(super) fn new(
        items: Vec<T>,
        limit: Option<usize>,
        is_other: impl Fn(&T) -> bool,
        rank: impl Fn(&T, &T) -> Ordering,
    ) -> Self {
        let total = items.len();
        let mut keep: Vec<bool> = items.iter().map(|item| !is_other(item)).collect();
        let mut candidates: Vec<usize> = (0..total).filter(|&i| keep[i]).collect();
        let overflow = limit.map_or(0, |limit| candidates.len().saturating_sub(limit));
        let stored_other = total - candidates.len();
        // One row beyond the limit, and no other, is listed as itself.
        if let Some(limit) = limit
            && overflow > 0
            && overflow + stored_other > 1
        {
            candidates.sort_by(|&a, &b| rank(&items[a], &items[b]));
            for &i in &candidates[limit..] {
                keep[i] = false;
            }
        }
        let (mut kept, mut rest) = (Vec::new(), Vec::new());
        for (item, keep) in items.into_iter().zip(keep) {
            if keep {
                kept.push(item);
            } else {
                rest.push(item);
            }
        }
        Self { kept, rest, total }
    }

    /// The items listed as themselves.
    pub(super) fn kept(&self) -> &[T] {
        &self.kept
    }

    /// The table: a row per kept item (`row`), then the rest as one row
    /// (`other`, given the rest and the `(other)` key cells).
    pub(super) fn table(
        self,
        name: &str,
        names: &[&str],
        mut row: impl FnMut(T) -> Vec<Cell>,
        other: impl FnOnce(Vec<T>) -> Vec<Cell>,
    ) -> Table {
        let mut rows: Vec<Vec<Cell>> = self.kept.into_iter().map(&mut row).collect();
        let mut rest = self.rest;
        if rest.len() == 1 {
            rows.extend(rest.pop().map(row));
        } else if !rest.is_empty() {
            rows.push(other(rest));
        }
        Table {
            name: name.to_owned(),
            columns: columns(names),
            rows,
            total_rows: self.total,
        }
    }
}

/// Whether every key cell of a row reads `(other)`.
pub(super) fn is_other(key: &[Cell]) -> bool {
    !key.is_empty()
        && key
            .iter()
            .all(|cell| matches!(cell, Cell::Text(text) if text == OTHER))
}

/// `n` key cells of the `(other)` row.
pub(super) fn other_key(n: usize) -> Vec<Cell> {
    vec![Cell::Text(OTHER.to_owned()); n]
}

/// The counts of `aggs` summed, installs left out.
pub(super) fn summed<'a>(aggs: impl IntoIterator<Item = &'a Agg>) -> Agg {
    let mut sum = Agg::default();
    for agg in aggs {
        sum.merge_counts(agg);
    }
    sum
}

/// A table of every row, for the tables no limit applies to (days, weeks,
/// single summaries).
pub(super) fn whole(name: &str, names: &[&str], rows: Vec<Vec<Cell>>) -> Table {
    Table {
        name: name.to_owned(),
        columns: columns(names),
        total_rows: rows.len(),
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values with their counts, the table ordered by name.
    fn split(items: &[(&str, u64)], limit: Option<usize>) -> Table {
        let items: Vec<(String, u64)> = items.iter().map(|(n, c)| ((*n).into(), *c)).collect();
        let top = Top::new(
            items,
            limit,
            |(name, _)| name == OTHER,
            |a, b| b.1.cmp(&a.1),
        );
        top.table(
            "t",
            &["name", "count"],
            |(name, count)| vec![Cell::Text(name), Cell::Int(count as i64)],
            |rest| {
                let mut cells = other_key(1);
                cells.push(Cell::Int(rest.iter().map(|r| r.1 as i64).sum()));
                cells
            },
        )
    }

    fn rows(table: &Table) -> Vec<(String, i64)> {
        table
            .rows
            .iter()
            .map(|r| match (&r[0], &r[1]) {
                (Cell::Text(n), Cell::Int(c)) => (n.clone(), *c),
                _ => panic!("unexpected row {r:?}"),
            })
            .collect()
    }

    fn owned(rows: &[(&str, i64)]) -> Vec<(String, i64)> {
        rows.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
    }

    #[test]
    fn the_most_counted_stay_in_table_order_and_the_rest_are_summed() {
        let items = [("a", 1), ("b", 5), ("c", 2), ("d", 4), ("e", 3)];
        let table = split(&items, Some(2));
        assert_eq!(rows(&table), owned(&[("b", 5), ("d", 4), (OTHER, 6)]));
        assert_eq!(table.total_rows, 5);
        assert_eq!(rows(&split(&items, None)).len(), 5);
    }

    #[test]
    fn a_rest_of_one_row_is_listed_as_itself() {
        let table = split(&[("a", 1), ("b", 5), ("c", 2)], Some(2));
        assert_eq!(rows(&table), owned(&[("a", 1), ("b", 5), ("c", 2)]));
        assert_eq!(table.total_rows, 3);
    }

    #[test]
    fn values_stored_as_other_join_the_other_row() {
        // Within the limit, the stored (other) is still listed last.
        let table = split(&[(OTHER, 9), ("a", 1)], Some(5));
        assert_eq!(rows(&table), owned(&[("a", 1), (OTHER, 9)]));
        // Beyond it, the stored (other) and the rest make one row.
        let table = split(&[(OTHER, 9), ("a", 1), ("b", 2), ("c", 3)], Some(1));
        assert_eq!(rows(&table), owned(&[("c", 3), (OTHER, 12)]));
        assert_eq!(table.total_rows, 4);
    }
}
