//! Times a client sends: which are believable, and how a skewed clock is
//! corrected without any arithmetic that can overflow.
//!
//! Every time that reaches a store passes through here first, so a store
//! never holds a time that its own column types, the reports' day numbers
//! or the export's RFC 3339 lines cannot represent. Client clocks are wrong
//! in the field (a reset RTC reads 1970, a bad NTP server reads years
//! ahead), so the window is wide; it ends where the narrowest store column
//! ends (ClickHouse 18.16's `Date`, which stops at 2105).

use time::{Duration, OffsetDateTime, UtcOffset};

/// The earliest time a client clock may read, inclusive.
///
/// ```
/// assert_eq!(tally_protocol::clock::EARLIEST.year(), 1970);
/// ```
pub const EARLIEST: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;

/// The first time a client clock may not read: years 1970 to 2099 are
/// believable.
///
/// ```
/// assert_eq!(tally_protocol::clock::END.year(), 2100);
/// ```
pub const END: OffsetDateTime = time::macros::datetime!(2100-01-01 0:00 UTC);

/// The time `t` on UTC, if it lies in [`EARLIEST`, [`END`]); otherwise a
/// sentence saying why not (for a rejection's reason).
///
/// ```
/// use time::macros::datetime;
/// use tally_protocol::clock::believable;
/// assert_eq!(believable(datetime!(2026-11-25 13:00 +01:00)), Ok(datetime!(2026-11-25 12:00 UTC)));
/// assert!(believable(datetime!(0000-01-01 0:00 +00:01)).is_err());
/// assert!(believable(datetime!(9999-12-31 23:59:59 -23:59)).is_err());
/// ```
pub fn believable(t: OffsetDateTime) -> Result<OffsetDateTime, String> {
    // On UTC 9999-12-31T23:59:59-23:59 is in year 10000, which `time`
    // cannot hold: `to_offset` would panic where this says no.
    match t.checked_to_offset(UtcOffset::UTC) {
        Some(utc) if utc < EARLIEST => Err(format!(
            "is before {}, the earliest time a client clock is believed",
            rfc3339(EARLIEST)
        )),
        Some(utc) if utc < END => Ok(utc),
        _ => Err(format!(
            "is at or after {}, the end of the times a client clock is believed",
            rfc3339(END)
        )),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// How much to shift a client's timestamps onto the server's clock: the
/// difference between `now` and the client's `sent_at` when it exceeds
/// `tolerance`, else nothing. Both times must be [`believable`], which keeps
/// the difference far from overflowing.
///
/// ```
/// use time::{Duration, macros::datetime};
/// let now = datetime!(2026-11-25 12:00 UTC);
/// let shift = tally_protocol::clock::shift(now, datetime!(1970-01-01 0:00 UTC), Duration::seconds(10));
/// assert_eq!(datetime!(1970-01-01 0:00 UTC) + shift, now);
/// assert_eq!(tally_protocol::clock::shift(now, now - Duration::seconds(3), Duration::seconds(10)), Duration::ZERO);
/// ```
pub fn shift(now: OffsetDateTime, sent_at: OffsetDateTime, tolerance: Duration) -> Duration {
    let skew = now - sent_at;
    if skew.abs() > tolerance {
        skew
    } else {
        Duration::ZERO
    }
}

/// The believable client time `client` moved by `shift` onto the server's
/// clock at `now`, checked against the limits on age and future; the error
/// is a rejection's reason (the field is "timestamp").
pub(crate) fn corrected(
    client: OffsetDateTime,
    shift: Duration,
    now: OffsetDateTime,
    max_future: Duration,
    max_age: Duration,
) -> Result<OffsetDateTime, String> {
    let Some(on_server) = client.checked_add(shift) else {
        return Err("cannot be moved onto the server's clock".into());
    };
    let ahead = on_server - now;
    if ahead > max_future {
        return Err(format!(
            "is in the future ({ahead} after the server's clock, after correcting the client's clock)"
        ));
    }
    if -ahead > max_age {
        return Err(format!("is older than {} days", max_age.whole_days()));
    }
    believable(on_server).map_err(|reason| format!("{reason}, after correcting the client's clock"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-25 12:00 UTC);

    fn correct(client: OffsetDateTime, sent_at: OffsetDateTime) -> Result<OffsetDateTime, String> {
        let shift = shift(NOW, sent_at, Duration::seconds(10));
        corrected(
            client,
            shift,
            NOW,
            Duration::minutes(5),
            Duration::days(365),
        )
    }

    #[test]
    fn the_window_is_half_open() {
        assert_eq!(believable(EARLIEST), Ok(EARLIEST));
        assert!(believable(EARLIEST - Duration::NANOSECOND).is_err());
        assert!(believable(END - Duration::NANOSECOND).is_ok());
        assert!(believable(END).is_err());
    }

    #[test]
    fn a_clock_that_reads_1970_is_corrected() {
        let client = datetime!(1970-01-01 0:00 UTC);
        assert_eq!(
            correct(client, client + Duration::seconds(2)),
            Ok(NOW - Duration::seconds(2))
        );
    }

    #[test]
    fn a_corrected_time_outside_the_limits_says_which() {
        let reason = correct(NOW + Duration::hours(1), NOW).expect_err("future");
        assert!(reason.contains("future"), "{reason}");
        let reason = correct(NOW - Duration::days(400), NOW).expect_err("old");
        assert!(reason.contains("older than 365 days"), "{reason}");
    }
}
