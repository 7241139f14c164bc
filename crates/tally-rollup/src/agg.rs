//! What one rollup row counts.

use roaring::RoaringBitmap;
use tally_protocol::{Event, Outcome};

use crate::{Error, Histogram};

/// What a rollup row counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Agg {
    /// Runs counted.
    pub runs: u64,
    /// Runs with exit code 0.
    pub ok: u64,
    /// Runs that crashed.
    pub crashes: u64,
    /// Earliest event time, microseconds.
    pub first_us: i64,
    /// Latest event time, microseconds.
    pub last_us: i64,
    /// Install numbers (see [`Installs`](crate::Installs)).
    pub installs: RoaringBitmap,
    /// Durations, for [`Kind::Command`](crate::Kind::Command) rows only.
    pub durations: Histogram,
}

impl Agg {
    /// Counts one event, which happened at `at` (microseconds).
    pub(crate) fn add(&mut self, event: &Event, at: i64, install: u32, durations: bool) {
        if self.runs == 0 {
            (self.first_us, self.last_us) = (at, at);
        } else {
            self.first_us = self.first_us.min(at);
            self.last_us = self.last_us.max(at);
        }
        self.runs += 1;
        self.ok += u64::from(event.exit_code == 0);
        self.crashes += u64::from(event.outcome == Some(Outcome::Crash));
        self.installs.insert(install);
        if durations {
            self.durations.add(event.duration_ms, 1);
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Agg) {
        self.merge_counts(other);
        self.installs |= &other.installs;
    }

    /// Adds `other` into `self`, all but its installs: for sums of rows
    /// whose installs are not wanted, or were counted without sending the
    /// sets.
    ///
    /// ```
    /// let mut row = tally_rollup::Agg { runs: 2, ..Default::default() };
    /// row.installs.insert(7);
    /// let mut sum = tally_rollup::Agg::default();
    /// sum.merge_counts(&row);
    /// assert_eq!((sum.runs, sum.installs.len()), (2, 0));
    /// ```
    pub fn merge_counts(&mut self, other: &Agg) {
        if self.runs == 0 {
            self.first_us = other.first_us;
            self.last_us = other.last_us;
        } else if other.runs > 0 {
            self.first_us = self.first_us.min(other.first_us);
            self.last_us = self.last_us.max(other.last_us);
        }
        self.runs += other.runs;
        self.ok += other.ok;
        self.crashes += other.crashes;
        self.durations.merge(&other.durations);
    }

    /// The install bitmap as stored.
    ///
    /// ```
    /// let mut agg = tally_rollup::Agg::default();
    /// agg.installs.insert(7);
    /// let back = tally_rollup::Agg::installs_from(&agg.installs_bytes())?;
    /// assert_eq!(back, agg.installs);
    /// # Ok::<(), tally_rollup::Error>(())
    /// ```
    pub fn installs_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.installs.serialized_size());
        // Writing into a Vec cannot fail.
        let _ = self.installs.serialize_into(&mut out);
        out
    }

    /// Reads an install bitmap as stored.
    pub fn installs_from(bytes: &[u8]) -> Result<RoaringBitmap, Error> {
        RoaringBitmap::deserialize_from(bytes)
            .map_err(|e| Error::Corrupt(format!("rollup install set: {e}")))
    }
}
