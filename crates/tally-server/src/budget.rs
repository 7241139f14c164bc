//! The memory budget of requests in flight: every byte a request holds
//! (its body as sent, the body inflated, its events until they are
//! committed) is reserved here first, so what hostile clients can make the
//! server hold is bounded in bytes, not only in events or requests. A
//! request that finds no room is told to come back (429), never queued.

use std::sync::Arc;

use tally_protocol::StoredEvent;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// The bytes all requests together may hold; cheap to clone.
#[derive(Clone)]
pub(crate) struct Budget {
    room: Arc<Semaphore>,
    total: usize,
}

/// Bytes one request holds; they return to the budget on drop.
pub(crate) struct Held {
    permit: Option<OwnedSemaphorePermit>,
    budget: Budget,
}

impl Budget {
    pub(crate) fn new(total_bytes: usize) -> Self {
        // The semaphore counts in u32 permits (and caps them further).
        let total = total_bytes
            .min(Semaphore::MAX_PERMITS)
            .min(u32::MAX as usize);
        Self {
            room: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Holds `bytes` or says there is no room for them now.
    pub(crate) fn hold(&self, bytes: usize) -> Result<Held, ApiError> {
        let mut held = Held {
            permit: None,
            budget: self.clone(),
        };
        held.resize(bytes)?;
        Ok(held)
    }

    /// Bytes held by requests now.
    pub(crate) fn in_use(&self) -> usize {
        self.total - self.room.available_permits()
    }
}

impl Held {
    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.permit
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }

    /// Holds `bytes` in all from now on: gives back what is over, or takes
    /// what is missing if the budget has it.
    pub(crate) fn resize(&mut self, bytes: usize) -> Result<(), ApiError> {
        let now = self.bytes();
        if bytes <= now {
            if let Some(permit) = &mut self.permit {
                drop(permit.split(now - bytes));
            }
            return Ok(());
        }
        let more = u32::try_from(bytes - now)
            .ok()
            .filter(|&n| n as usize <= self.budget.total)
            .ok_or(ApiError::Busy { retry_after_s: 1 })?;
        let extra = Arc::clone(&self.budget.room)
            .try_acquire_many_owned(more)
            .map_err(|_| ApiError::Busy { retry_after_s: 1 })?;
        match &mut self.permit {
            Some(permit) => permit.merge(extra),
            None => self.permit = Some(extra),
        }
        Ok(())
    }
}

/// What `events` take in memory until they are committed: the events
/// themselves and, as much again, the store's encoding of them.
pub(crate) fn staged_bytes(events: &[StoredEvent]) -> usize {
    events.iter().map(|e| 2 * e.memory_bytes()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_held_returns_to_the_budget() {
        let budget = Budget::new(1000);
        let mut a = budget.hold(600).expect("room");
        assert!(budget.hold(500).is_err(), "only 400 bytes are left");
        a.resize(100).expect("shrinking always works");
        let b = budget.hold(500).expect("room after shrinking");
        assert_eq!(budget.in_use(), 600);
        assert!(a.resize(600).is_err(), "no room to grow back");
        assert_eq!(a.bytes(), 100, "a failed growth keeps what was held");
        drop((a, b));
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn more_than_the_whole_budget_is_refused_at_once() {
        let budget = Budget::new(1000);
        assert!(matches!(budget.hold(1001), Err(ApiError::Busy { .. })));
    }
}
