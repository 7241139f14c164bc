//! Durations as a histogram that merges exactly and answers percentiles.

use crate::Error;

/// Counts of durations, each rounded down to three significant digits
/// ([`Histogram::bucket`]), so a percentile is off by less than 1% and a
/// histogram stays small however many runs it counts.
///
/// A row's histogram is a short sorted list; one that many rows are merged
/// into (a report's group, a compacted day) turns into an array indexed by
/// bucket, so that each merge costs the size of what is added, not of what
/// is there.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Counts,
}

#[derive(Debug, Clone)]
enum Counts {
    /// (bucket, count) pairs, ascending by bucket, no zero counts.
    Sparse(Vec<(u64, u64)>),
    /// Counts by [`index`] of bucket.
    Dense(Vec<u64>),
}

/// Past this many buckets a histogram that is merged into turns dense.
const SPARSE_MAX: usize = 64;

/// Buckets per power of ten above 1000 (100..=999 times the unit).
const PER_DECADE: u64 = 900;

/// The position of a bucket in a dense histogram: values under 1000 are
/// their own index, then 900 per power of ten.
fn index(bucket: u64) -> usize {
    if bucket < 1000 {
        return bucket as usize;
    }
    let (mut unit, mut decade) = (10, 0);
    while bucket / unit >= 1000 {
        unit *= 10;
        decade += 1;
    }
    (1000 + decade * PER_DECADE + (bucket / unit - 100)) as usize
}

/// The bucket at a position of a dense histogram.
fn bucket_at(index: usize) -> u64 {
    let i = index as u64;
    if i < 1000 {
        return i;
    }
    let (decade, step) = ((i - 1000) / PER_DECADE, (i - 1000) % PER_DECADE);
    (step + 100) * 10u64.pow(decade as u32 + 1)
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Counts::Sparse(Vec::new()),
        }
    }
}

impl PartialEq for Histogram {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Histogram {
    /// The value a duration is counted as: exact under 1000 ms, else
    /// rounded down to three significant digits.
    ///
    /// ```
    /// assert_eq!(tally_rollup::Histogram::bucket(98_765), 98_700);
    /// ```
    pub fn bucket(ms: u64) -> u64 {
        let mut unit = 1;
        while ms / unit >= 1000 {
            unit *= 10;
        }
        ms - ms % unit
    }

    /// Counts `count` runs that took `ms`.
    pub fn add(&mut self, ms: u64, count: u64) {
        if count == 0 {
            return;
        }
        let bucket = Self::bucket(ms);
        match &mut self.counts {
            Counts::Sparse(pairs) => match pairs.binary_search_by_key(&bucket, |p| p.0) {
                Ok(i) => pairs[i].1 += count,
                Err(i) => pairs.insert(i, (bucket, count)),
            },
            Counts::Dense(counts) => add_dense(counts, bucket, count),
        }
    }

    /// Adds `other`'s counts into these.
    pub fn merge(&mut self, other: &Histogram) {
        if let Counts::Sparse(pairs) = &self.counts {
            if pairs.is_empty() {
                *self = other.clone();
                return;
            }
            if pairs.len() + other.len() > SPARSE_MAX {
                let mut counts = Vec::new();
                for &(bucket, count) in pairs {
                    add_dense(&mut counts, bucket, count);
                }
                self.counts = Counts::Dense(counts);
            }
        }
        match &mut self.counts {
            Counts::Dense(counts) => {
                for (bucket, count) in other.iter() {
                    add_dense(counts, bucket, count);
                }
            }
            Counts::Sparse(_) => {
                for (bucket, count) in other.iter() {
                    self.add(bucket, count);
                }
            }
        }
    }

    /// How many buckets hold counts, at most.
    fn len(&self) -> usize {
        match &self.counts {
            Counts::Sparse(pairs) => pairs.len(),
            Counts::Dense(counts) => counts.len(),
        }
    }

    /// (bucket, count) pairs with counts, ascending.
    fn iter(&self) -> Box<dyn Iterator<Item = (u64, u64)> + '_> {
        match &self.counts {
            Counts::Sparse(pairs) => Box::new(pairs.iter().copied()),
            Counts::Dense(counts) => Box::new(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c > 0)
                    .map(|(i, c)| (bucket_at(i), *c)),
            ),
        }
    }

    /// The discrete quantile: the smallest value with at least `q` of the
    /// counts at or below it (as SQL's `quantile_disc`).
    ///
    /// ```
    /// let mut h = tally_rollup::Histogram::default();
    /// (1..=100).for_each(|ms| h.add(ms, 1));
    /// assert_eq!(h.quantile(0.95), Some(95));
    /// ```
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total: u64 = self.iter().map(|(_, c)| c).sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64 * q).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        let mut last = None;
        for (value, count) in self.iter() {
            seen += count;
            if seen >= rank {
                return Some(value);
            }
            last = Some(value);
        }
        last
    }

    /// The stored form: (value, count) pairs as little-endian u64s.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * 16);
        for (value, count) in self.iter() {
            out.extend_from_slice(&value.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
        }
        out
    }

    /// Reads the stored form back; anything [`to_bytes`](Self::to_bytes)
    /// cannot have written is [`Error::Corrupt`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Histogram, Error> {
        let corrupt = || Error::Corrupt(format!("duration histogram of {} bytes", bytes.len()));
        if !bytes.len().is_multiple_of(16) {
            return Err(corrupt());
        }
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        let pairs: Vec<(u64, u64)> = bytes
            .chunks_exact(16)
            .map(|pair| (word(&pair[..8]), word(&pair[8..])))
            .collect();
        // Written ascending by `to_bytes`; anything else is not ours.
        let ordered = pairs.windows(2).all(|w| w[0].0 < w[1].0);
        if !ordered || pairs.iter().any(|&(v, c)| c == 0 || Self::bucket(v) != v) {
            return Err(corrupt());
        }
        Ok(Histogram {
            counts: Counts::Sparse(pairs),
        })
    }
}

fn add_dense(counts: &mut Vec<u64>, bucket: u64, count: u64) {
    let i = index(bucket);
    if i >= counts.len() {
        counts.resize(i + 1, 0);
    }
    counts[i] += count;
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

    #[test]
    fn dense_positions_map_back_to_their_buckets() {
        for value in [0, 999, 1000, 1230, 9990, 10_000, 98_700, 123_000_000] {
            let bucket = Histogram::bucket(value);
            assert_eq!(bucket_at(index(bucket)), bucket, "{value}");
        }
        assert_eq!(index(1000), 1000);
        assert_eq!(index(9990), 1899);
        assert_eq!(index(10_000), 1900);
    }

    #[test]
    fn merging_many_gives_the_counts_of_adding_each() {
        let (mut merged, mut added) = (Histogram::default(), Histogram::default());
        for row in 0..50u64 {
            let mut h = Histogram::default();
            for i in 0..20 {
                let ms = (row * 7919 + i * 104_729) % 200_000;
                h.add(ms, i + 1);
                added.add(ms, i + 1);
            }
            merged.merge(&h);
        }
        assert!(matches!(merged.counts, Counts::Dense(_)));
        assert_eq!(merged, added);
        assert_eq!(merged.to_bytes(), added.to_bytes());
        for q in [0.5, 0.95, 0.99] {
            assert_eq!(merged.quantile(q), added.quantile(q));
        }
    }
}
