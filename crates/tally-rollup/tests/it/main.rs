//! Every report against the hand-counted answers, over events in memory:
//! the report logic alone, no database.

use tally_report::{Query, Report};
use tally_rollup::{MemorySource, answer};

/// Reports over the hand-counted data, rolled up on the spot.
fn asking() -> impl Fn(&Query) -> Report {
    let events = MemorySource::number(tally_testkit::reports::data().into_iter().map(|e| e.event));
    move |query: &Query| answer(&MemorySource::new(&events), query).expect("report")
}

tally_testkit::report_tests!(asking());
