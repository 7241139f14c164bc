//! Events on their way to a [`Writer`](crate::Writer).

use std::any::Any;

use tally_protocol::StoredEvent;

/// Events to insert: one request's, or a group of requests' joined for one
/// commit, with what the store prepared of them beforehand.
///
/// [`Store::stage`](crate::Store::stage) makes one and does there, in the
/// caller's thread, the work the store's writer would otherwise do for it
/// while every other request waits (the embedded store encodes the events
/// for its journal). A plain `Staged::from(events)` works with any writer,
/// which then prepares what it needs itself.
///
/// ```
/// # let event: tally_protocol::Event = serde_json::from_str(r#"{
/// #     "id": "0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01", "timestamp": "2026-11-20T10:00:00Z",
/// #     "app": "mycli", "app_version": "1.4.2", "install_id": "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
/// #     "command": "deploy", "flags": [], "exit_code": 0, "duration_ms": 3,
/// #     "os": "linux", "arch": "x86_64"}"#)?;
/// # let at = time::OffsetDateTime::UNIX_EPOCH;
/// use tally_protocol::StoredEvent;
/// use tally_store::Staged;
/// let stored = StoredEvent { event, client_timestamp: at, received_at: at };
/// let mut staged = Staged::from(vec![stored]);
/// let tail = staged.split_off(0);
/// assert!(staged.is_empty());
/// staged.append(tail);
/// assert_eq!(staged.events()[0].event.app, "mycli");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Staged {
    events: Vec<StoredEvent>,
    /// The backend's own form of the events, when made beforehand.
    prepared: Option<Box<dyn Prepared>>,
}

/// What a backend makes of a batch's events ahead of its insert (see
/// [`Staged`]). It must join and split at event boundaries as the events
/// do, so that a group of requests commits as one and a failed group can be
/// retried request by request.
pub trait Prepared: Any + Send + std::fmt::Debug {
    /// Adds `other`'s events after these; false (and `other` dropped) if
    /// it is not of this backend's making.
    fn append(&mut self, other: Box<dyn Prepared>) -> bool;

    /// Splits off the events from `at` on.
    fn split_off(&mut self, at: usize) -> Box<dyn Prepared>;
}

impl From<Vec<StoredEvent>> for Staged {
    fn from(events: Vec<StoredEvent>) -> Self {
        Self {
            events,
            prepared: None,
        }
    }
}

impl Staged {
    /// `events` with the backend's form of them, `prepared`.
    pub fn prepared(events: Vec<StoredEvent>, prepared: Box<dyn Prepared>) -> Self {
        Self {
            events,
            prepared: Some(prepared),
        }
    }

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

    /// Adds `other`'s events after these. What was prepared is kept when
    /// both were prepared alike (or these are empty), and dropped
    /// otherwise, for the writer to make again.
    pub fn append(&mut self, mut other: Self) {
        self.prepared = match (self.prepared.take(), other.prepared) {
            (Some(mut mine), Some(theirs)) => mine.append(theirs).then_some(mine),
            (None, Some(theirs)) if self.events.is_empty() => Some(theirs),
            _ => None,
        };
        self.events.append(&mut other.events);
    }

    /// Splits off the events from `at` on, staged on their own.
    ///
    /// # Panics
    /// If `at` is greater than [`len`](Self::len).
    pub fn split_off(&mut self, at: usize) -> Self {
        Self {
            events: self.events.split_off(at),
            prepared: self.prepared.as_mut().map(|p| p.split_off(at)),
        }
    }

    /// Takes the events out, leaving none.
    pub fn take(&mut self) -> Vec<StoredEvent> {
        std::mem::take(self).events
    }

    /// The backend's form of the events, if it was made beforehand (and by
    /// the backend that asks).
    pub fn prepared_as<P: Prepared>(&self) -> Option<&P> {
        let prepared: &dyn Any = self.prepared.as_deref()?;
        prepared.downcast_ref()
    }
}
