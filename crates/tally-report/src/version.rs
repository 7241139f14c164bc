//! Ordering CLI versions the way their releases happened.

use std::cmp::Ordering;

/// Compares two version strings: numeric parts numerically ("1.10" after
/// "1.9"), a pre-release before its release ("2.0.0-rc.1" before "2.0.0"),
/// anything unparseable by its text.
///
/// ```
/// use std::cmp::Ordering;
/// use tally_report::compare_versions;
/// assert_eq!(compare_versions("1.10.0", "1.9.3"), Ordering::Greater);
/// assert_eq!(compare_versions("2.0.0-rc.1", "2.0.0"), Ordering::Less);
/// assert_eq!(compare_versions("v1.2", "1.2"), Ordering::Equal);
/// ```
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (a_core, a_pre) = split(a);
    let (b_core, b_pre) = split(b);
    let parts = |core: &str| -> Vec<u64> {
        core.split('.')
            .map(|p| p.parse::<u64>().unwrap_or(0))
            .collect()
    };
    let (pa, pb) = (parts(a_core), parts(b_core));
    let len = pa.len().max(pb.len());
    for i in 0..len {
        let ord = pa.get(i).unwrap_or(&0).cmp(pb.get(i).unwrap_or(&0));
        if ord != Ordering::Equal {
            return ord;
        }
    }
    match (a_pre, b_pre) {
        (None, None) => Ordering::Equal,
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (Some(x), Some(y)) => x.cmp(y),
    }
}

fn split(v: &str) -> (&str, Option<&str>) {
    let v = v.trim().trim_start_matches(['v', 'V']);
    let v = v.split('+').next().unwrap_or(v);
    match v.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (v, None),
    }
}
