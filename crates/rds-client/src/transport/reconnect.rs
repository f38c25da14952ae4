//! When the next connection attempt is due, and who may make it: the
//! reconnect backoff and the fail-fast rule, as a state machine without I/O
//! on tokio's clock (so that tests run it on a paused one).
//!
//! After a failed attempt the transport backs off (exponentially, with
//! jitter, [`backoff_delay`]) and, until the next attempt is due, commands
//! fail fast with [`Error::Unavailable`] instead of piling up behind a dead
//! appliance. While the RDS is known to be down, a command that arrives while
//! someone else is making the attempt fails fast too, instead of queueing
//! behind that attempt's connect timeout. A connection that worked and then
//! dropped earns an immediate attempt.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::backoff::backoff_delay;
use crate::error::Error;

/// The reconnect state. Changed only by the holder of the connection lock;
/// read by anyone, without waiting for an attempt in progress.
#[derive(Debug, Default)]
pub(super) struct Reconnect {
    /// The last connection attempt failed.
    down: bool,
    /// A connection attempt is in progress.
    connecting: bool,
    /// When the next connection attempt is due, after a failed one.
    retry_at: Option<Instant>,
    /// The error of the last failed attempt.
    last_error: String,
    /// Consecutive failed attempts.
    failures: u32,
}

impl Reconnect {
    /// The error a command gets at `now` without trying anything: while the
    /// RDS is down, until the next attempt is due, and while another caller
    /// is making that attempt.
    pub(super) fn refusal(&self, now: Instant) -> Option<Error> {
        if !self.down {
            return None;
        }
        let retry_in = self
            .retry_at
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(now));
        (self.connecting || !retry_in.is_zero()).then(|| Error::Unavailable {
            last_error: self.last_error.clone(),
            retry_in,
        })
    }

    /// Starts an attempt at `now`, unless a command must fail fast instead.
    pub(super) fn begin(&mut self, now: Instant) -> Result<(), Error> {
        if let Some(refused) = self.refusal(now) {
            return Err(refused);
        }
        self.connecting = true;
        Ok(())
    }

    /// The attempt made a connection.
    pub(super) fn succeeded(&mut self) {
        *self = Self::default();
    }

    /// The attempt failed at `now` with `error`: backs off. `jitter` is a
    /// number in `[0, 1)`. Returns the delay until the next attempt is due.
    pub(super) fn failed(
        &mut self,
        now: Instant,
        error: &str,
        initial: Duration,
        max: Duration,
        jitter: f64,
    ) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let delay = backoff_delay(self.failures, initial, max, jitter);
        self.down = true;
        self.connecting = false;
        self.retry_at = Some(now + delay);
        error.clone_into(&mut self.last_error);
        delay
    }

    /// The attempt ended without an outcome (its caller was cancelled).
    pub(super) fn abandoned(&mut self) {
        self.connecting = false;
    }

    /// While the RDS is down: the time from `now` until the next attempt is
    /// due (zero when it is due, or being made). `None` while it is not down.
    pub(super) fn backoff_remaining(&self, now: Instant) -> Option<Duration> {
        self.down.then(|| {
            self.retry_at
                .map_or(Duration::ZERO, |at| at.saturating_duration_since(now))
        })
    }

    /// Consecutive failed attempts.
    pub(super) fn failures(&self) -> u32 {
        self.failures
    }
}

/// Marks an attempt abandoned when dropped before it ended, also when its
/// caller is cancelled mid-attempt.
pub(super) struct Attempt<'a> {
    state: &'a Mutex<Reconnect>,
    done: bool,
}

impl<'a> Attempt<'a> {
    /// Begins an attempt on `state` at `now`, or says why a command must
    /// fail fast instead.
    pub(super) fn begin(state: &'a Mutex<Reconnect>, now: Instant) -> Result<Self, Error> {
        lock(state).begin(now)?;
        Ok(Self { state, done: false })
    }

    /// Ends the attempt with a connection.
    pub(super) fn succeeded(mut self) {
        self.done = true;
        lock(self.state).succeeded();
    }

    /// Ends the attempt with a failure; returns the delay until the next one
    /// and the number of consecutive failures.
    pub(super) fn failed(
        mut self,
        error: &str,
        initial: Duration,
        max: Duration,
        jitter: f64,
    ) -> (Duration, u32) {
        self.done = true;
        let mut state = lock(self.state);
        let delay = state.failed(Instant::now(), error, initial, max, jitter);
        (delay, state.failures())
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.done {
            lock(self.state).abandoned();
        }
    }
}

/// Locks a std mutex that holds plain values: one left by a panicking holder
/// is still consistent.
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const INITIAL: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(30);

    fn retry_in(r: &Reconnect) -> Option<Duration> {
        match r.refusal(Instant::now()) {
            Some(Error::Unavailable { retry_in, .. }) => Some(retry_in),
            Some(other) => panic!("{other:?}"),
            None => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn commands_go_ahead_while_not_down() {
        let mut r = Reconnect::default();
        assert!(r.refusal(Instant::now()).is_none());
        // Someone reconnecting after a connection that worked: wait for it.
        r.begin(Instant::now()).unwrap();
        assert!(r.refusal(Instant::now()).is_none());
        assert_eq!(r.backoff_remaining(Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_failure_commands_fail_fast_until_the_next_attempt_is_due() {
        let mut r = Reconnect::default();
        r.begin(Instant::now()).unwrap();
        let delay = r.failed(Instant::now(), "connection refused", INITIAL, MAX, 1.0);
        assert_eq!(delay, INITIAL);
        assert_eq!(retry_in(&r), Some(INITIAL));
        match r.refusal(Instant::now()) {
            Some(Error::Unavailable { last_error, .. }) => {
                assert_eq!(last_error, "connection refused");
            }
            other => panic!("{other:?}"),
        }
        tokio::time::advance(INITIAL - MS).await;
        assert_eq!(retry_in(&r), Some(MS));
        assert_eq!(r.backoff_remaining(Instant::now()), Some(MS));
        assert!(r.begin(Instant::now()).is_err(), "not due yet");
        tokio::time::advance(MS).await;
        // Due: exactly one caller may try; the others fail fast meanwhile,
        // without waiting for its connect timeout.
        assert_eq!(retry_in(&r), None);
        r.begin(Instant::now()).unwrap();
        assert_eq!(retry_in(&r), Some(Duration::ZERO));
        assert_eq!(r.backoff_remaining(Instant::now()), Some(Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn the_backoff_doubles_up_to_its_cap_and_a_connection_resets_it() {
        let mut r = Reconnect::default();
        let mut delays = Vec::new();
        for _ in 0..9 {
            let now = Instant::now();
            if let Some(wait) = r.backoff_remaining(now) {
                tokio::time::advance(wait).await;
            }
            r.begin(Instant::now()).unwrap();
            delays.push(r.failed(Instant::now(), "timed out", INITIAL, MAX, 1.0));
        }
        let secs: Vec<f64> = delays.iter().map(Duration::as_secs_f64).collect();
        assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]);
        assert_eq!(r.failures(), 9);
        tokio::time::advance(MAX).await;
        r.begin(Instant::now()).unwrap();
        r.succeeded();
        assert!(r.refusal(Instant::now()).is_none());
        // The next failure starts from the beginning again.
        r.begin(Instant::now()).unwrap();
        assert_eq!(
            r.failed(Instant::now(), "x", INITIAL, MAX, 0.0),
            INITIAL / 2,
            "jitter spreads the delay down to half"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_attempt_lets_the_next_caller_try() {
        let state = Mutex::new(Reconnect::default());
        let attempt = Attempt::begin(&state, Instant::now()).unwrap();
        let (delay, failures) = attempt.failed("refused", INITIAL, MAX, 1.0);
        assert_eq!((delay, failures), (INITIAL, 1));
        tokio::time::advance(delay).await;
        let attempt = Attempt::begin(&state, Instant::now()).unwrap();
        assert!(
            Attempt::begin(&state, Instant::now()).is_err(),
            "one at a time"
        );
        drop(attempt); // cancelled mid-attempt
        assert!(!lock(&state).connecting);
        Attempt::begin(&state, Instant::now()).unwrap().succeeded();
        assert!(lock(&state).refusal(Instant::now()).is_none());
    }
}
