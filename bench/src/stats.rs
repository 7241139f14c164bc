//! Small tallies shared by the benchmarks: latency percentiles and counts
//! of how requests ended.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Latencies of one kind of request, in microseconds.
#[derive(Default)]
pub(crate) struct Latencies(Vec<u32>);

impl Latencies {
    pub(crate) fn push(&mut self, took: Duration) {
        self.0
            .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
    }

    pub(crate) fn extend(&mut self, other: Self) {
        self.0.extend(other.0);
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The `p`-quantile (0.5 for the median) in ms; 0 when there are none.
    /// Sorts on first use.
    pub(crate) fn percentile_ms(&mut self, p: f64) -> f64 {
        self.0.sort_unstable();
        let last = self.0.len().saturating_sub(1);
        self.0
            .get(((self.0.len() as f64 * p) as usize).min(last))
            .map_or(0.0, |us| f64::from(*us) / 1000.0)
    }

    /// How many took longer than `limit`.
    pub(crate) fn over(&self, limit: Duration) -> usize {
        let limit = u32::try_from(limit.as_micros()).unwrap_or(u32::MAX);
        self.0.iter().filter(|us| **us > limit).count()
    }

    /// `p50 / p99 / max` in ms.
    pub(crate) fn summary(&mut self) -> String {
        format!(
            "{:.1} / {:.1} / {:.1}",
            self.percentile_ms(0.5),
            self.percentile_ms(0.99),
            self.percentile_ms(1.0)
        )
    }
}

/// How many requests ended how: by HTTP status ("200", "429") or by what
/// went wrong before one came ("refused", "timeout").
#[derive(Default, Clone)]
pub(crate) struct Outcomes(BTreeMap<String, u64>);

impl Outcomes {
    pub(crate) fn add(&mut self, outcome: impl Into<String>) {
        *self.0.entry(outcome.into()).or_default() += 1;
    }

    pub(crate) fn merge(&mut self, other: Self) {
        for (outcome, n) in other.0 {
            *self.0.entry(outcome).or_default() += n;
        }
    }

    pub(crate) fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// The outcome of a request that got no HTTP answer.
    pub(crate) fn of_error(error: &ureq::Error) -> &'static str {
        match error {
            ureq::Error::Timeout(_) => "timeout",
            ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => "refused",
            ureq::Error::Io(_) => "io error",
            _ => "other error",
        }
    }
}

impl fmt::Display for Outcomes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        let parts: Vec<String> = self.0.iter().map(|(o, n)| format!("{o}: {n}")).collect();
        f.write_str(&parts.join(", "))
    }
}
