//! Durations as a histogram that merges exactly and answers percentiles.

use std::collections::BTreeMap;

use crate::StoreError;

/// Counts of durations, each rounded down to three significant digits
/// ([`Histogram::bucket`]), so a percentile is off by less than 1% and a
/// histogram stays small however many runs it counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Histogram {
    counts: BTreeMap<u64, u64>,
}

impl Histogram {
    /// The value a duration is counted as: exact under 1000 ms, else
    /// rounded down to three significant digits.
    pub(crate) fn bucket(ms: u64) -> u64 {
        let mut unit = 1;
        while ms / unit >= 1000 {
            unit *= 10;
        }
        ms - ms % unit
    }

    pub(crate) fn add(&mut self, ms: u64, count: u64) {
        *self.counts.entry(Self::bucket(ms)).or_default() += count;
    }

    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (&value, &count) in &other.counts {
            *self.counts.entry(value).or_default() += count;
        }
    }

    /// The discrete quantile: the smallest value with at least `q` of the
    /// counts at or below it (as SQL's `quantile_disc`).
    pub(crate) fn quantile(&self, q: f64) -> Option<u64> {
        let total: u64 = self.counts.values().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64 * q).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (&value, &count) in &self.counts {
            seen += count;
            if seen >= rank {
                return Some(value);
            }
        }
        self.counts.keys().next_back().copied()
    }

    /// The stored form: (value, count) pairs as little-endian u64s.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.counts.len() * 16);
        for (value, count) in &self.counts {
            out.extend_from_slice(&value.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
        }
        out
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Histogram, StoreError> {
        if !bytes.len().is_multiple_of(16) {
            return Err(StoreError::Corrupt(format!(
                "duration histogram of {} bytes",
                bytes.len()
            )));
        }
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        Ok(Histogram {
            counts: bytes
                .chunks_exact(16)
                .map(|pair| (word(&pair[..8]), word(&pair[8..])))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_keep_three_significant_digits() {
        assert_eq!(Histogram::bucket(0), 0);
        assert_eq!(Histogram::bucket(999), 999);
        assert_eq!(Histogram::bucket(1234), 1230);
        assert_eq!(Histogram::bucket(98_765), 98_700);
    }

    #[test]
    fn quantiles_match_quantile_disc() {
        // quantile_disc over 1..=n: p50 of 4 values is the 2nd, p95 of 2 the
        // 2nd, p99 of 100 the 99th.
        let of = |n: u64| {
            let mut h = Histogram::default();
            (1..=n).for_each(|v| h.add(v, 1));
            h
        };
        assert_eq!(of(4).quantile(0.5), Some(2));
        assert_eq!(of(2).quantile(0.95), Some(2));
        assert_eq!(of(100).quantile(0.95), Some(95));
        assert_eq!(of(100).quantile(0.99), Some(99));
        assert_eq!(of(101).quantile(0.5), Some(51));
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn stored_form_round_trips() {
        let mut h = Histogram::default();
        h.add(5, 2);
        h.add(123_456, 1);
        let back = Histogram::from_bytes(&h.to_bytes()).expect("decodes");
        assert_eq!(back, h);
        assert!(Histogram::from_bytes(&[1, 2, 3]).is_err());
    }
}
