//! Time as stores keep it: microseconds since the epoch, and UTC days.

use time::OffsetDateTime;

/// Microseconds in a day.
pub const DAY_US: i64 = 86_400_000_000;

/// Microseconds since the epoch, the resolution stores keep.
///
/// ```
/// use time::macros::datetime;
/// let at = datetime!(1970-01-01 00:00:01.5 UTC);
/// assert_eq!(tally_rollup::micros(at), 1_500_000);
/// assert_eq!(tally_rollup::from_micros(1_500_000), at);
/// ```
pub fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

/// The inverse of [`micros`].
pub fn from_micros(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Days since 1970-01-01 (UTC) of a time in microseconds.
///
/// ```
/// assert_eq!(tally_rollup::day_of(tally_rollup::DAY_US * 3 + 1), 3);
/// assert_eq!(tally_rollup::day_of(-1), -1);
/// ```
pub fn day_of(us: i64) -> i32 {
    us.div_euclid(DAY_US) as i32
}

/// The first microsecond of a day.
pub fn day_start(day: i32) -> i64 {
    i64::from(day) * DAY_US
}

/// The first day kept when keeping `days` whole days before today, and
/// never before 1970-01-01 (day 0), before which no store holds an event:
/// a number of days past that keeps everything, where a cast overflowing
/// into a cutoff to come would have forgotten everything.
///
/// ```
/// let today = tally_rollup::retention_cutoff(0);
/// assert_eq!(tally_rollup::retention_cutoff(30), today - 30);
/// assert_eq!(tally_rollup::retention_cutoff(u32::MAX), 0);
/// ```
pub fn retention_cutoff(days: u32) -> i32 {
    let today = day_of(micros(OffsetDateTime::now_utc()));
    today
        .saturating_sub(i32::try_from(days).unwrap_or(i32::MAX))
        .max(0)
}

/// A report's time range in microseconds, split into whole days (read from
/// stored rollups) and the partial days at its edges (rolled up from raw
/// events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Whole days, first and last inclusive; `None` is unbounded on that side.
    pub days: (Option<i32>, Option<i32>),
    /// Whether there are whole days at all.
    pub any_days: bool,
    /// Raw ranges `[from, to)` in microseconds.
    pub edges: Vec<(i64, i64)>,
}

impl Span {
    /// Splits `[since, until)`.
    ///
    /// ```
    /// use time::macros::datetime;
    /// let span = tally_rollup::Span::new(Some(datetime!(2026-11-01 12:00 UTC)), None);
    /// assert_eq!(span.edges.len(), 1, "the afternoon of 11-01 comes from raw events");
    /// ```
    pub fn new(since: Option<OffsetDateTime>, until: Option<OffsetDateTime>) -> Span {
        let since = since.map(micros);
        let until = until.map(micros);
        if let (Some(s), Some(u)) = (since, until) {
            if s >= u {
                return Span {
                    days: (None, None),
                    any_days: false,
                    edges: vec![],
                };
            }
            if day_of(s) == day_of(u - 1) && (s % DAY_US != 0 || u % DAY_US != 0) {
                return Span {
                    days: (None, None),
                    any_days: false,
                    edges: vec![(s, u)],
                };
            }
        }
        let mut edges = Vec::new();
        let first = since.map(|s| {
            let d = day_of(s);
            if s == day_start(d) {
                d
            } else {
                edges.push((s, day_start(d + 1)));
                d + 1
            }
        });
        let last = until.map(|u| {
            let d = day_of(u);
            if u != day_start(d) {
                edges.push((day_start(d), u));
            }
            d - 1
        });
        let any_days = match (first, last) {
            (Some(f), Some(l)) => f <= l,
            _ => true,
        };
        Span {
            days: (first, last),
            any_days,
            edges,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_range_splits_into_whole_days_and_edges() {
        let span = Span::new(
            Some(datetime!(2026-11-01 12:00 UTC)),
            Some(datetime!(2026-11-04 06:00 UTC)),
        );
        let d = day_of(micros(datetime!(2026-11-01 00:00 UTC)));
        assert_eq!(span.days, (Some(d + 1), Some(d + 2)));
        assert_eq!(
            span.edges,
            vec![
                (
                    micros(datetime!(2026-11-01 12:00 UTC)),
                    micros(datetime!(2026-11-02 00:00 UTC))
                ),
                (
                    micros(datetime!(2026-11-04 00:00 UTC)),
                    micros(datetime!(2026-11-04 06:00 UTC))
                ),
            ]
        );
        let aligned = Span::new(Some(datetime!(2026-11-01 00:00 UTC)), None);
        assert_eq!(aligned.days, (Some(d), None));
        assert!(aligned.edges.is_empty());
        let inside = Span::new(
            Some(datetime!(2026-11-01 01:00 UTC)),
            Some(datetime!(2026-11-01 02:00 UTC)),
        );
        assert!(!inside.any_days);
        assert_eq!(inside.edges.len(), 1);
    }
}
