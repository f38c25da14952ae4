//! How many commands may be in flight on the connection at once.
//!
//! Each command holds a permit of a semaphore while it runs: there is no lock
//! around commands, only this bound. The bound adapts to the appliance: a
//! channel the RDS refuses lowers it by one (the RDS's session limit is not
//! documented), and every [`REGAIN_AFTER`] commands that go through raise a
//! lowered bound by one again, up to the configured maximum, in case the
//! refusals were passing (an administrator's sessions, say).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::{Error, Result};

/// Commands that must go through before a lowered concurrency limit is
/// raised again by one.
pub const REGAIN_AFTER: u64 = 100;

/// The adaptive bound on commands in flight.
#[derive(Debug)]
pub(super) struct Limit {
    /// One permit per command allowed in flight; `capacity` of them exist.
    permits: Semaphore,
    capacity: AtomicUsize,
    max: usize,
    /// Commands that went through since the limit last changed.
    successes: AtomicU64,
}

impl Limit {
    /// A bound of `max` (at least 1) commands.
    pub(super) fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            permits: Semaphore::new(max),
            capacity: AtomicUsize::new(max),
            max,
            successes: AtomicU64::new(0),
        }
    }

    /// Waits for a permit to run one command.
    pub(super) async fn acquire(&self) -> Result<SemaphorePermit<'_>> {
        self.permits
            .acquire()
            .await
            .map_err(|_| Error::ConnectionLost {
                outcome_unknown: false,
                detail: "transport closed".into(),
            })
    }

    /// The number of commands that may be in flight now.
    pub(super) fn current(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    /// Lowers the bound by one; false when it is already 1. The caller then
    /// forgets the permit it holds, so that one fewer exists.
    pub(super) fn shrink(&self) -> bool {
        self.successes.store(0, Ordering::Relaxed);
        self.capacity
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cap| {
                (cap > 1).then(|| cap - 1)
            })
            .is_ok()
    }

    /// Counts a command that went through; every [`REGAIN_AFTER`] of them
    /// raise a lowered bound by one.
    pub(super) fn regain(&self) {
        let done = self.successes.fetch_add(1, Ordering::Relaxed) + 1;
        if !done.is_multiple_of(REGAIN_AFTER) {
            return;
        }
        if self
            .capacity
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cap| {
                (cap < self.max).then(|| cap + 1)
            })
            .is_ok()
        {
            self.permits.add_permits(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refusals_lower_the_bound_and_successes_raise_it_again() {
        let limit = Limit::new(3);
        assert_eq!(limit.current(), 3);
        // A refusal: the holder forgets its permit, one fewer remains.
        let permit = limit.acquire().await.unwrap();
        assert!(limit.shrink());
        permit.forget();
        assert_eq!((limit.current(), limit.permits.available_permits()), (2, 2));
        assert!(limit.shrink());
        limit.acquire().await.unwrap().forget();
        assert!(!limit.shrink(), "never below one");
        assert_eq!(limit.current(), 1);
        for _ in 0..REGAIN_AFTER - 1 {
            limit.regain();
        }
        assert_eq!(limit.current(), 1);
        limit.regain();
        assert_eq!((limit.current(), limit.permits.available_permits()), (2, 2));
        for _ in 0..10 * REGAIN_AFTER {
            limit.regain();
        }
        assert_eq!(limit.current(), 3, "never above the maximum");
    }
}
