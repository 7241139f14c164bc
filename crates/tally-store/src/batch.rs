//! Events on their way to a [`Writer`](crate::Writer).

use crate::StoredEvent;
#[cfg(feature = "duckdb")]
use crate::journal::Encoded;

/// Events to insert: one request's, or a group of requests' joined for one
/// commit.
///
/// [`Store::batch`](crate::Store::batch) makes one and does there, in the
/// caller's thread, the work the store's writer would otherwise do for it
/// while every other request waits (the embedded store encodes the events
/// for its journal). A plain `Batch::from(events)` works with any writer.
///
/// ```
/// use time::macros::datetime;
/// use tally_store::{Batch, conformance::sample};
/// let at = datetime!(2026-11-20 10:00 UTC);
/// let mut batch = Batch::from(vec![sample(1, "mycli", at)]);
/// let tail = batch.split_off(0);
/// assert!(batch.is_empty());
/// batch.append(tail);
/// assert_eq!(batch.events()[0].event.app, "mycli");
/// ```
#[derive(Debug, Default)]
pub struct Batch {
    events: Vec<StoredEvent>,
    /// The events in the journal's form, when made beforehand.
    #[cfg(feature = "duckdb")]
    journal: Option<Encoded>,
}

impl From<Vec<StoredEvent>> for Batch {
    fn from(events: Vec<StoredEvent>) -> Self {
        Self {
            events,
            #[cfg(feature = "duckdb")]
            journal: None,
        }
    }
}

impl Batch {
    /// The events, in order.
    pub fn events(&self) -> &[StoredEvent] {
        &self.events
    }

    /// How many events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Adds `other`'s events after these.
    pub fn append(&mut self, mut other: Self) {
        #[cfg(feature = "duckdb")]
        {
            self.journal = match (self.journal.take(), other.journal) {
                (Some(mut mine), Some(theirs)) => {
                    mine.append(theirs);
                    Some(mine)
                }
                (None, Some(theirs)) if self.events.is_empty() => Some(theirs),
                _ => None,
            };
        }
        self.events.append(&mut other.events);
    }

    /// Splits off the events from `at` on into a batch of their own.
    ///
    /// # Panics
    /// If `at` is greater than [`len`](Self::len).
    pub fn split_off(&mut self, at: usize) -> Self {
        Self {
            events: self.events.split_off(at),
            #[cfg(feature = "duckdb")]
            journal: self.journal.as_mut().map(|j| j.split_off(at)),
        }
    }

    /// Takes the events out, leaving the batch empty.
    pub(crate) fn take(&mut self) -> Vec<StoredEvent> {
        std::mem::take(self).events
    }
}

#[cfg(feature = "duckdb")]
impl Batch {
    /// A batch with its events encoded for the journal.
    pub(crate) fn journaled(events: Vec<StoredEvent>) -> Self {
        Self {
            journal: Some(Encoded::new(&events)),
            events,
        }
    }

    /// The events in the journal's form, made now if they were not before.
    pub(crate) fn journal(&mut self) -> &Encoded {
        self.journal
            .get_or_insert_with(|| Encoded::new(&self.events))
    }
}
