//! `installs`: daily, weekly and monthly active installs, new installs per
//! week, and weekly retention of each week's new installs.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;
use tally_report::{Cell, Query, Table};

use super::Src;
use super::table::date;
use super::top::whole;
use crate::{Error, Kind, Need, Part, Row};

pub(super) fn answer<E: From<Error> + Send>(
    source: Src<'_, E>,
    query: &Query,
) -> Result<Vec<Table>, E> {
    let need = Need::new(Kind::Environment, &[&[Part::Day]]);
    let filter = &query.filter;
    let rows = source.rows(filter, &need, filter.since, filter.until)?;
    Ok(activity(&rows))
}

/// The Monday starting the week of `day` (1970-01-01 was a Thursday).
fn week_of(day: i32) -> i32 {
    day - (day + 3).rem_euclid(7)
}

fn activity(rows: &[Row]) -> Vec<Table> {
    let mut days: BTreeMap<i32, RoaringBitmap> = BTreeMap::new();
    for row in rows {
        *days.entry(row.day).or_default() |= &row.agg.installs;
    }
    // Active in the window of 1, 7 or 30 days ending on each active day.
    let window = |day: i32, len: i32| -> u64 {
        let mut set = RoaringBitmap::new();
        for (_, installs) in days.range(day - len + 1..=day) {
            set |= installs;
        }
        set.len()
    };
    let active = whole(
        "active",
        &["day", "daily", "weekly", "monthly"],
        days.iter()
            .map(|(&day, set)| {
                vec![
                    Cell::Text(date(day)),
                    Cell::Int(set.len() as i64),
                    Cell::Int(window(day, 7) as i64),
                    Cell::Int(window(day, 30) as i64),
                ]
            })
            .collect(),
    );
    // Cohorts: the week each install was first seen in.
    let mut seen = RoaringBitmap::new();
    let mut cohorts: BTreeMap<i32, RoaringBitmap> = BTreeMap::new();
    let mut weeks: BTreeMap<i32, RoaringBitmap> = BTreeMap::new();
    for (&day, set) in &days {
        let fresh = set - &seen;
        seen |= &fresh;
        *cohorts.entry(week_of(day)).or_default() |= fresh;
        *weeks.entry(week_of(day)).or_default() |= set;
    }
    cohorts.retain(|_, c| !c.is_empty());
    let new = whole(
        "new",
        &["week", "new_installs"],
        cohorts
            .iter()
            .map(|(&week, c)| vec![Cell::Text(date(week)), Cell::Int(c.len() as i64)])
            .collect(),
    );
    let mut retention = Vec::new();
    for (&cohort, members) in &cohorts {
        for (&week, active) in weeks.range(cohort..) {
            let n = members.intersection_len(active);
            if n > 0 {
                retention.push(vec![
                    Cell::Text(date(cohort)),
                    Cell::Int(i64::from((week - cohort) / 7)),
                    Cell::Int(n as i64),
                ]);
            }
        }
    }
    let retention = whole("retention", &["cohort", "week", "installs"], retention);
    vec![active, new, retention]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday() {
        // 2026-11-02 is a Monday, 2026-11-08 a Sunday.
        let monday = crate::day_of(crate::micros(time::macros::datetime!(2026-11-02 00:00 UTC)));
        assert_eq!(week_of(monday), monday);
        assert_eq!(week_of(monday + 6), monday);
        assert_eq!(week_of(monday + 7), monday + 7);
        assert_eq!(week_of(monday - 1), monday - 7);
    }
}
