//! What is known about the RDS, readable at any time without I/O.
//!
//! The transport and the client report what they see (a connection made or
//! refused, a command answered, the RouterOS version); [`RdsStatus`] is the
//! result. It is kept in a `watch` channel, so readers (Probe, readiness)
//! take a copy without waiting, and followers are woken on every change.
//! Each transition is logged once, and the `up` gauge follows it.

use std::time::{Duration, Instant};

use telemetry::RdsMetrics;
use tokio::sync::watch;
use tracing::{info, warn};

/// Whether the RDS answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    /// Nothing has been tried yet.
    Unknown,
    /// The last connection attempt or command got an answer.
    Up,
    /// The last connection attempt failed, or a check got no answer.
    Down,
}

/// The RDS as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdsStatus {
    /// `host:port` of the RDS.
    pub address: String,
    /// Whether it answers.
    pub reachability: Reachability,
    /// When `reachability` last changed.
    pub since: Instant,
    /// The last error seen reaching it; kept after it answers again.
    pub last_error: Option<String>,
    /// The RouterOS version text, once read.
    pub version: Option<String>,
    /// Whether that version is older than the driver needs.
    pub too_old: bool,
}

impl RdsStatus {
    fn new(address: String) -> Self {
        Self {
            address,
            reachability: Reachability::Unknown,
            since: Instant::now(),
            last_error: None,
            version: None,
            too_old: false,
        }
    }

    /// Whether volume operations can be expected to work: it answers, and
    /// its RouterOS is new enough (or not read yet).
    pub fn is_usable(&self) -> bool {
        self.reachability == Reachability::Up && !self.too_old
    }

    /// How long the reachability has been what it is.
    pub fn for_how_long(&self) -> Duration {
        self.since.elapsed()
    }

    /// Why the RDS is not usable, in a sentence naming its address; `None`
    /// when it is usable.
    pub fn problem(&self) -> Option<String> {
        match self.reachability {
            Reachability::Unknown => Some(format!(
                "the RDS at {} has not been reached yet",
                self.address
            )),
            Reachability::Down => Some(format!(
                "the RDS at {} is not usable: it does not answer ({})",
                self.address,
                self.last_error.as_deref().unwrap_or("no error recorded")
            )),
            Reachability::Up if self.too_old => Some(format!(
                "the RDS at {} runs RouterOS {}, but this driver needs {} or newer",
                self.address,
                self.version.as_deref().unwrap_or("of an unknown version"),
                routeros::MINIMUM_VERSION
            )),
            Reachability::Up => None,
        }
    }
}

/// The shared status: the transport and client write it, anyone reads it.
#[derive(Debug)]
pub(crate) struct StatusCell {
    tx: watch::Sender<RdsStatus>,
    metrics: RdsMetrics,
}

/// What changed in one update, for logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Reachability(Reachability, Reachability),
    TooOld(bool),
    Version,
}

impl StatusCell {
    /// Unknown reachability; the `up` gauge reads 0 until the RDS answers.
    pub(crate) fn new(address: String, metrics: RdsMetrics) -> Self {
        metrics.up.set(0);
        let (tx, _) = watch::channel(RdsStatus::new(address));
        Self { tx, metrics }
    }

    /// A copy of the status now.
    pub(crate) fn get(&self) -> RdsStatus {
        self.tx.borrow().clone()
    }

    /// A receiver woken on every change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<RdsStatus> {
        self.tx.subscribe()
    }

    /// The RDS answered (a connection was made, or a command came back).
    pub(crate) fn answered(&self) {
        if self.tx.borrow().reachability == Reachability::Up {
            return;
        }
        self.set_reachability(Reachability::Up, None);
    }

    /// The RDS did not answer: `error` says how.
    pub(crate) fn unanswered(&self, error: &str) {
        self.set_reachability(Reachability::Down, Some(error));
    }

    /// The RouterOS version read from the RDS.
    pub(crate) fn version(&self, text: &str, too_old: bool) {
        let mut change = None;
        self.tx.send_if_modified(|s| {
            let modified = s.version.as_deref() != Some(text) || s.too_old != too_old;
            if s.too_old != too_old {
                change = Some(Change::TooOld(too_old));
            } else if modified {
                change = Some(Change::Version);
            }
            s.version = Some(text.to_owned());
            s.too_old = too_old;
            modified
        });
        if let Some(change) = change {
            self.log(change);
        }
    }

    fn set_reachability(&self, to: Reachability, error: Option<&str>) {
        let mut change = None;
        self.tx.send_if_modified(|s| {
            let mut modified = false;
            if let Some(e) = error
                && s.last_error.as_deref() != Some(e)
            {
                s.last_error = Some(e.to_owned());
                modified = true;
            }
            if s.reachability != to {
                change = Some(Change::Reachability(s.reachability, to));
                s.reachability = to;
                s.since = Instant::now();
                // Under the channel's lock, so the gauge and the status
                // never disagree after racing updates.
                self.metrics.up.set(i64::from(to == Reachability::Up));
                modified = true;
            }
            modified
        });
        if let Some(change) = change {
            self.log(change);
        }
    }

    fn log(&self, change: Change) {
        let s = self.tx.borrow().clone();
        let address = s.address.as_str();
        let error = s.last_error.as_deref().unwrap_or("");
        match change {
            Change::Reachability(Reachability::Down, Reachability::Up) => {
                info!(address, "the RDS answers again")
            }
            Change::Reachability(_, Reachability::Up) => info!(address, "the RDS answers"),
            Change::Reachability(_, Reachability::Down) => warn!(
                address,
                error, "the RDS does not answer; volume operations fail fast until it does"
            ),
            Change::Reachability(_, Reachability::Unknown) => {}
            Change::TooOld(true) => warn!(
                address,
                version = s.version.as_deref().unwrap_or(""),
                minimum = %routeros::MINIMUM_VERSION,
                "the RDS runs a RouterOS older than this driver needs; volume operations will fail"
            ),
            Change::Version if s.too_old => {}
            Change::Version => info!(
                address,
                version = s.version.as_deref().unwrap_or(""),
                "RouterOS version of the RDS"
            ),
            Change::TooOld(false) => info!(
                address,
                version = s.version.as_deref().unwrap_or(""),
                "the RDS's RouterOS is new enough"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell() -> (StatusCell, RdsMetrics) {
        let metrics = RdsMetrics::default();
        (
            StatusCell::new("10.0.0.1:22".into(), metrics.clone()),
            metrics,
        )
    }

    #[test]
    fn starts_unknown_and_not_up() {
        let (cell, metrics) = cell();
        let s = cell.get();
        assert_eq!(s.reachability, Reachability::Unknown);
        assert!(!s.is_usable());
        assert_eq!(metrics.up.get(), 0);
        assert!(s.problem().unwrap().contains("10.0.0.1:22"));
    }

    #[test]
    fn transitions_notify_once_and_move_the_gauge() {
        let (cell, metrics) = cell();
        let mut rx = cell.subscribe();
        rx.mark_unchanged();

        cell.answered();
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        assert_eq!(metrics.up.get(), 1);
        let up_since = cell.get().since;

        // Answering again is not a change: no wake-up, same `since`.
        cell.answered();
        assert!(!rx.has_changed().unwrap());
        assert_eq!(cell.get().since, up_since);

        cell.unanswered("connection refused");
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        let s = cell.get();
        assert_eq!(s.reachability, Reachability::Down);
        assert_eq!(metrics.up.get(), 0);
        let problem = s.problem().unwrap();
        assert!(
            problem.contains("10.0.0.1:22") && problem.contains("connection refused"),
            "{problem}"
        );

        // The same error again changes nothing; a new one is recorded.
        cell.unanswered("connection refused");
        assert!(!rx.has_changed().unwrap());
        cell.unanswered("no route to host");
        assert!(rx.has_changed().unwrap());
        assert_eq!(cell.get().reachability, Reachability::Down);
        assert_eq!(cell.get().since, s.since, "still down since the first");

        cell.answered();
        let s = cell.get();
        assert!(s.is_usable());
        assert_eq!(s.problem(), None);
        assert_eq!(s.last_error.as_deref(), Some("no route to host"));
        assert_eq!(metrics.up.get(), 1);
    }

    #[test]
    fn a_routeros_too_old_is_not_usable_though_up() {
        let (cell, metrics) = cell();
        cell.answered();
        cell.version("7.20.2 (stable)", true);
        let s = cell.get();
        assert!(!s.is_usable());
        assert_eq!(metrics.up.get(), 1, "it answers");
        assert!(s.problem().unwrap().contains("7.20.2"));
        cell.version("7.21.1 (stable)", false);
        assert!(cell.get().is_usable());
    }
}
