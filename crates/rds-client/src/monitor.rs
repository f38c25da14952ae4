//! The connection manager: a background task that keeps
//! [`RdsClient::status`] true.
//!
//! While the RDS answers, the monitor checks it every interval with the
//! cheapest command there is ([`RdsClient::check`]), so an RDS that went away
//! is noticed even when no volume operation runs. While it is down, the
//! monitor wakes when the transport's backoff says the next connection
//! attempt is due and makes that attempt, so the RDS is found again without
//! a volume operation having to pay for it; operations meanwhile fail fast.
//! Transitions are logged once, by the status.
//!
//! The monitor holds the client weakly: it ends when the client is dropped,
//! or when its [`ConnectionMonitor`] handle is dropped.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::debug;

use crate::client::RdsClient;

/// How often the monitor checks an RDS that answers, unless told otherwise.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// The shortest wait between two checks, so that a backoff that is due (or
/// an attempt another caller is making) does not make the monitor spin.
pub const MIN_WAIT: Duration = Duration::from_millis(250);

/// A running monitor; dropping it stops the task.
#[derive(Debug)]
pub struct ConnectionMonitor {
    task: JoinHandle<()>,
}

impl ConnectionMonitor {
    /// Starts monitoring `client`: a first check at once, then one every
    /// `interval` while the RDS answers, and one whenever a reconnect is due
    /// while it does not. Must be called within a Tokio runtime.
    pub fn spawn(client: &Arc<RdsClient>, interval: Duration) -> Self {
        let client = Arc::downgrade(client);
        let interval = interval.max(MIN_WAIT);
        Self {
            task: tokio::spawn(watch(client, interval)),
        }
    }

    /// Whether the task has ended (its client was dropped).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for ConnectionMonitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the monitor watches: something it can check, and that knows when
/// its next connection attempt is due. The client in production; a fake in
/// the tests of the monitor's timing.
pub(crate) trait Watched: Send + Sync + 'static {
    /// Checks once; the outcome only matters to the status it records.
    fn check_once(&self) -> impl std::future::Future<Output = ()> + Send;
    /// See [`crate::transport::SshTransport::backoff_remaining`].
    fn backoff_remaining(&self) -> Option<Duration>;
}

impl Watched for RdsClient {
    async fn check_once(&self) {
        match self.check().await {
            Ok(r) => debug!(version = %r.version_text, "RDS check: answers"),
            Err(e) => debug!(error = %e, "RDS check: no answer"),
        }
    }

    fn backoff_remaining(&self) -> Option<Duration> {
        self.transport().backoff_remaining()
    }
}

async fn watch<W: Watched>(watched: Weak<W>, interval: Duration) {
    loop {
        let wait = {
            let Some(watched) = watched.upgrade() else {
                debug!("the RDS client is gone; monitor stops");
                return;
            };
            watched.check_once().await;
            next_wait(watched.backoff_remaining(), interval)
        };
        tokio::time::sleep(wait).await;
    }
}

/// How long to wait before the next check: `interval` while the RDS is not
/// down; while it is, until the next connection attempt is due (`backoff`),
/// but never longer than `interval` nor shorter than [`MIN_WAIT`].
pub fn next_wait(backoff: Option<Duration>, interval: Duration) -> Duration {
    match backoff {
        None => interval,
        Some(remaining) => remaining.min(interval).max(MIN_WAIT),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::time::Instant;

    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// A watched RDS whose backoff the test sets, recording when it was
    /// checked.
    #[derive(Default)]
    struct FakeRds {
        checks: Mutex<Vec<Instant>>,
        backoff: Mutex<Option<Duration>>,
    }

    impl Watched for FakeRds {
        async fn check_once(&self) {
            self.checks.lock().unwrap().push(Instant::now());
        }

        fn backoff_remaining(&self) -> Option<Duration> {
            *self.backoff.lock().unwrap()
        }
    }

    impl FakeRds {
        /// Seconds after `start` of each check so far.
        fn check_times(&self, start: Instant) -> Vec<u64> {
            let checks = self.checks.lock().unwrap();
            checks.iter().map(|t| (*t - start).as_secs()).collect()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn checks_every_interval_while_up_then_when_each_reconnect_is_due() {
        let start = Instant::now();
        let rds = Arc::new(FakeRds::default());
        let task = tokio::spawn(watch(Arc::downgrade(&rds), 10 * S));
        tokio::time::sleep(25 * S).await;
        assert_eq!(rds.check_times(start), [0, 10, 20]);
        // Down: the transport's next attempt is due in 3 s each time.
        *rds.backoff.lock().unwrap() = Some(3 * S);
        tokio::time::sleep(10 * S).await;
        assert_eq!(rds.check_times(start), [0, 10, 20, 30, 33]);
        // A long backoff is followed only up to the interval.
        *rds.backoff.lock().unwrap() = Some(60 * S);
        tokio::time::sleep(30 * S).await;
        assert_eq!(rds.check_times(start), [0, 10, 20, 30, 33, 36, 46, 56]);
        // The client is gone: the monitor ends at its next wake-up.
        drop(rds);
        tokio::time::sleep(10 * S).await;
        assert!(task.is_finished());
    }

    #[test]
    fn checks_every_interval_while_up_and_follow_the_backoff_while_down() {
        assert_eq!(next_wait(None, 10 * S), 10 * S);
        assert_eq!(next_wait(Some(3 * S), 10 * S), 3 * S);
        assert_eq!(next_wait(Some(30 * S), 10 * S), 10 * S);
        assert_eq!(next_wait(Some(Duration::ZERO), 10 * S), MIN_WAIT);
        assert_eq!(next_wait(Some(S), Duration::ZERO), MIN_WAIT);
    }
}
