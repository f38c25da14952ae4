//! Changing and waiting: disconnect, rescan, and the waits that poll sysfs.
//!
//! Waits poll every [`POLL`] with tokio sleeps and end at the caller's deadline
//! with an error that says what was seen last; none reports success on a hope.
//!
//! Writing `delete_controller` blocks in the kernel until the controller is
//! torn down (it fails with EBUSY while the controller's first connect is
//! still running; the wait then writes again on a later poll), so
//! the async disconnect writes on tokio's blocking pool, one task per
//! controller, and watches sysfs meanwhile.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::error::NvmeError;
use crate::host::Host;
use crate::scan::{Written, write_trigger};
use crate::sysfs::{BlockDevice, Controller, CtrlState};

/// How often waits look at sysfs once they have waited a while.
pub const POLL: Duration = Duration::from_millis(100);

/// How often a wait looks at sysfs after `waited`: every 10 ms for the first
/// second (a namespace usually appears, and a controller goes, within tens of
/// milliseconds, and staging time is what a pod start waits for), then every
/// [`POLL`].
pub fn poll_interval(waited: Duration) -> Duration {
    if waited < Duration::from_secs(1) {
        Duration::from_millis(10)
    } else {
        POLL
    }
}

impl Host {
    /// Writes `1` to `delete_controller` of every controller whose subsystem
    /// NQN is `nqn`, and returns how many were asked to go (ones answering
    /// EBUSY count; ones that vanished meanwhile do not). Blocks while
    /// the kernel tears each controller down; other controllers are untouched.
    pub fn disconnect(&self, nqn: &str) -> Result<usize, NvmeError> {
        let mut count = 0;
        let mut first_error = None;
        for c in self.controllers_of(nqn)? {
            match self.delete_controller(&c.name) {
                Ok(Written::Done | Written::Busy) => count += 1,
                Ok(Written::Gone) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(count),
        }
    }

    fn delete_controller(&self, name: &str) -> Result<Written, NvmeError> {
        let written = write_trigger(&self.class_nvme().join(name).join("delete_controller"))?;
        debug!(controller = name, ?written, "delete_controller written");
        Ok(written)
    }

    /// Disconnects `nqn` and waits until none of its controllers remains in
    /// sysfs. Controllers still there after their delete returned (or that
    /// appeared meanwhile) are deleted again. Fails with
    /// [`NvmeError::DisconnectTimedOut`] if any remains at `deadline`.
    pub async fn disconnect_and_wait(&self, nqn: &str, deadline: Instant) -> Result<(), NvmeError> {
        self.disconnect_matching_and_wait(nqn, |_| true, deadline)
            .await
    }

    /// [`Host::disconnect_and_wait`] for the controllers of `nqn` connected
    /// as one of `hosts` (host NQNs) only: those of other host identities on
    /// this kernel are neither deleted nor waited for.
    pub async fn disconnect_hosts_and_wait(
        &self,
        nqn: &str,
        hosts: &[String],
        deadline: Instant,
    ) -> Result<(), NvmeError> {
        self.disconnect_matching_and_wait(nqn, |c| hosts.contains(&c.hostnqn), deadline)
            .await
    }

    async fn disconnect_matching_and_wait(
        &self,
        nqn: &str,
        ours: impl Fn(&Controller) -> bool,
        deadline: Instant,
    ) -> Result<(), NvmeError> {
        let mut deletes: HashMap<String, JoinHandle<Result<Written, NvmeError>>> = HashMap::new();
        let mut last_write_error = None;
        let started = Instant::now();
        loop {
            let mut remaining = self.controllers_of(nqn)?;
            remaining.retain(&ours);
            if remaining.is_empty() {
                info!(nqn, "disconnected");
                return Ok(());
            }
            let finished: Vec<String> = deletes
                .iter()
                .filter(|(_, task)| task.is_finished())
                .map(|(name, _)| name.clone())
                .collect();
            for name in finished {
                if let Some(task) = deletes.remove(&name) {
                    match task.await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => last_write_error = Some(e),
                        Err(join) => last_write_error = Some(NvmeError::Task(join.to_string())),
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(NvmeError::DisconnectTimedOut {
                    nqn: nqn.to_owned(),
                    remaining: describe(&remaining),
                    last_write_error: last_write_error.map(Box::new),
                });
            }
            for c in &remaining {
                if !deletes.contains_key(&c.name) && !c.state.is_deleting() {
                    let (host, name) = (self.clone(), c.name.clone());
                    let task = tokio::task::spawn_blocking(move || host.delete_controller(&name));
                    deletes.insert(c.name.clone(), task);
                }
            }
            sleep_towards(deadline, started).await;
        }
    }

    /// Writes `1` to `rescan_controller` of each live controller of `nqn`, so
    /// the kernel reads the namespaces' sizes again (after a resize). Fails with
    /// [`NvmeError::NotLive`] when no controller is live.
    pub fn rescan(&self, nqn: &str) -> Result<(), NvmeError> {
        let controllers = self.controllers_of(nqn)?;
        let mut rescanned = 0;
        for c in controllers.iter().filter(|c| c.state == CtrlState::Live) {
            let path = self.class_nvme().join(&c.name).join("rescan_controller");
            if write_trigger(&path)? == Written::Done {
                debug!(controller = %c.name, nqn, "rescan requested");
                rescanned += 1;
            }
        }
        if rescanned == 0 {
            return Err(NvmeError::NotLive {
                nqn: nqn.to_owned(),
                state: controllers
                    .into_iter()
                    .map(|c| c.state)
                    .max_by_key(CtrlState::rank),
            });
        }
        Ok(())
    }

    /// Waits until `nqn` has a block device ([`Host::block_device`]) whose
    /// device node `<root>/dev/<name>` exists, and returns it; fails with
    /// [`NvmeError::NoBlockDevice`] at `deadline`, saying what was seen.
    pub async fn wait_for_block_device(
        &self,
        nqn: &str,
        deadline: Instant,
    ) -> Result<BlockDevice, NvmeError> {
        let started = Instant::now();
        loop {
            let seen = match self.block_device(nqn)? {
                Some(device) if self.dev_node(&device.name).exists() => return Ok(device),
                Some(device) => format!(
                    "sysfs shows {} but {} does not exist (the node plugin needs the host's /dev)",
                    device.name,
                    self.dev_node(&device.name).display()
                ),
                None => match self.controller_state(nqn)? {
                    Some(state) => format!("the controller is {state} and has no namespace"),
                    None => "no controller is connected".to_owned(),
                },
            };
            if Instant::now() >= deadline {
                warn!(nqn, %seen, "no block device by the deadline");
                return Err(NvmeError::NoBlockDevice {
                    nqn: nqn.to_owned(),
                    seen,
                });
            }
            sleep_towards(deadline, started).await;
        }
    }
}

/// Sleeps one poll interval of a wait that began at `started`, or until the
/// deadline if that comes first.
async fn sleep_towards(deadline: Instant, started: Instant) {
    let next = Instant::now() + poll_interval(started.elapsed());
    tokio::time::sleep_until(deadline.min(next)).await;
}

/// `nvme0 (live), nvme3 (deleting)`.
fn describe(controllers: &[Controller]) -> String {
    controllers
        .iter()
        .map(|c| format!("{} ({})", c.name, c.state))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_fast_at_first_then_settles() {
        assert_eq!(poll_interval(Duration::ZERO), Duration::from_millis(10));
        assert_eq!(
            poll_interval(Duration::from_millis(999)),
            Duration::from_millis(10)
        );
        assert_eq!(poll_interval(Duration::from_secs(1)), POLL);
        assert_eq!(poll_interval(Duration::from_secs(60)), POLL);
    }
}
