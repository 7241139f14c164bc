//! Reports over events held in memory: every row rolled up from the raw
//! events on the spot. It is what a store's stored rollups must agree with,
//! and lets reports be tested without a database.

use tally_protocol::Event;
use tally_report::Filter;

use crate::{Installs, Need, Row, Source, day_start, micros, rows_from_events};

/// A [`Source`] over events in memory, each with its install number; see
/// the [crate docs](crate) for an example.
#[derive(Debug, Clone, Copy)]
pub struct MemorySource<'a> {
    events: &'a [(Event, u32)],
}

impl<'a> MemorySource<'a> {
    /// A source over `events`.
    pub fn new(events: &'a [(Event, u32)]) -> Self {
        Self { events }
    }

    /// `events` with install numbers handed out in order of first
    /// appearance, as a store hands them out.
    pub fn number(events: impl IntoIterator<Item = Event>) -> Vec<(Event, u32)> {
        let mut installs = Installs::default();
        events
            .into_iter()
            .map(|event| {
                let number = installs.number(event.install_id.as_u128());
                (event, number)
            })
            .collect()
    }

    /// `app`'s events in `[from, to)`.
    fn between<'q>(
        &self,
        app: &'q str,
        from: i64,
        to: i64,
    ) -> impl Iterator<Item = (&'a Event, u32)> + use<'a, 'q> {
        self.events.iter().filter_map(move |(event, install)| {
            let at = micros(event.timestamp);
            (event.app == app && (from..to).contains(&at)).then_some((event, *install))
        })
    }
}

impl Source for MemorySource<'_> {
    type Error = crate::Error;

    fn stored(
        &self,
        filter: &Filter,
        need: &Need,
        (first, last): (Option<i32>, Option<i32>),
        each: &mut dyn FnMut(Row) -> Result<(), crate::Error>,
    ) -> Result<(), crate::Error> {
        let from = first.map_or(i64::MIN, day_start);
        let to = last.map_or(i64::MAX, |l| day_start(l + 1));
        rows_from_events(self.between(&filter.app, from, to), need.kind, filter)
            .into_iter()
            .try_for_each(each)
    }

    fn events(&self, app: &str, from: i64, to: i64) -> Result<Vec<(Event, u32)>, crate::Error> {
        Ok(self
            .between(app, from, to)
            .map(|(event, install)| (event.clone(), install))
            .collect())
    }
}
