//! The fault plan: failures a test switches on to see how the client copes.
//!
//! The engine applies the faults that concern commands (dropped connections
//! around a command, a full disk, failing commands). Latency, exit status and
//! refused connections are only stored here; the SSH server applies them.
//!
//! A [`Faults`] handle is cheap to clone and shared with the engine, so a test
//! can change the plan while scripts run.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// When a one-shot drop fires relative to its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DropWhen {
    /// The command does not run.
    Before,
    /// The command runs (and is persisted), but no reply is sent.
    After,
}

#[derive(Debug, Default)]
struct FaultPlan {
    /// Pending one-shot drops, oldest first: canonical command name and when.
    drops: Vec<(String, DropWhen)>,
    /// Most channels one connection may have open; more are refused.
    max_channels: Option<usize>,
    disk_full: bool,
    /// Commands still allowed before every command fails.
    fail_after: Option<u64>,
    latency: Duration,
    error_exit_zero: bool,
    refuse_connections: bool,
    ignore_allow_list: bool,
}

/// What the engine does with a command about to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Run it.
    Proceed,
    /// Do not run it; drop the connection.
    Drop,
    /// Do not run it; fail with `failure: simulated fault`.
    Fail,
}

/// A shared handle to the fault plan. All methods take `&self`.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    plan: Arc<Mutex<FaultPlan>>,
}

impl Faults {
    fn plan(&self) -> MutexGuard<'_, FaultPlan> {
        // The plan holds plain values; one left by a panicking holder is
        // still consistent.
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next command named `cmd` (e.g. `"/disk add"`) is not run, the
    /// script stops and the connection is dropped. One-shot.
    pub fn drop_before(&self, cmd: &str) {
        self.plan().drops.push((cmd.to_string(), DropWhen::Before));
    }

    /// The next command named `cmd` runs and is persisted, then the script
    /// stops and the connection is dropped without a reply. One-shot.
    pub fn drop_after(&self, cmd: &str) {
        self.plan().drops.push((cmd.to_string(), DropWhen::After));
    }

    /// While on, `/disk add` and growing `/disk set file-size=` fail with
    /// `not enough space`.
    pub fn set_disk_full(&self, full: bool) {
        self.plan().disk_full = full;
    }

    /// Whether the disk-full fault is on.
    pub fn disk_full(&self) -> bool {
        self.plan().disk_full
    }

    /// After `n` more commands, every command fails with
    /// `failure: simulated fault` until [`Faults::clear_fail_after`].
    pub fn fail_after(&self, n: u64) {
        self.plan().fail_after = Some(n);
    }

    /// Stops failing commands.
    pub fn clear_fail_after(&self) {
        self.plan().fail_after = None;
    }

    /// Delay the SSH server adds before answering (stored only).
    pub fn set_latency(&self, latency: Duration) {
        self.plan().latency = latency;
    }

    /// The delay set by [`Faults::set_latency`].
    pub fn latency(&self) -> Duration {
        self.plan().latency
    }

    /// Whether the SSH server reports exit status 0 even after an error
    /// (stored only), as some RouterOS errors do.
    pub fn set_error_exit_zero(&self, on: bool) {
        self.plan().error_exit_zero = on;
    }

    /// The setting of [`Faults::set_error_exit_zero`].
    pub fn error_exit_zero(&self) -> bool {
        self.plan().error_exit_zero
    }

    /// Whether the SSH server refuses new connections (stored only).
    pub fn set_refuse_connections(&self, on: bool) {
        self.plan().refuse_connections = on;
    }

    /// The setting of [`Faults::set_refuse_connections`].
    pub fn refuse_connections(&self) -> bool {
        self.plan().refuse_connections
    }

    /// Limits how many channels (commands) one connection may have open at
    /// once; the server refuses more with "resource shortage", as an
    /// appliance with a session limit would. `None` lifts the limit.
    pub fn set_max_channels(&self, max: Option<usize>) {
        self.plan().max_channels = max;
    }

    /// The setting of [`Faults::set_max_channels`].
    pub fn max_channels(&self) -> Option<usize> {
        self.plan().max_channels
    }

    /// While on, exports made or changed afterwards let any host in,
    /// whatever `nvme-tcp-server-allow-host-name` says: a RouterOS that
    /// does not enforce the list, for tests of what notices one.
    pub fn set_ignore_allow_list(&self, on: bool) {
        self.plan().ignore_allow_list = on;
    }

    /// The setting of [`Faults::set_ignore_allow_list`].
    pub fn ignore_allow_list(&self) -> bool {
        self.plan().ignore_allow_list
    }

    /// Turns every fault off and forgets pending drops.
    pub fn clear(&self) {
        *self.plan() = FaultPlan::default();
    }

    /// Decides about a command named `name` that is about to run. A pending
    /// drop-before for it wins (and is used up); otherwise the `fail_after`
    /// budget is spent or exhausted.
    pub(crate) fn before_command(&self, name: &str) -> Verdict {
        let mut plan = self.plan();
        if take_drop(&mut plan.drops, name, DropWhen::Before) {
            return Verdict::Drop;
        }
        match plan.fail_after {
            Some(0) => Verdict::Fail,
            Some(n) => {
                plan.fail_after = Some(n - 1);
                Verdict::Proceed
            }
            None => Verdict::Proceed,
        }
    }

    /// Whether a drop-after is pending for `name`, which just ran; uses it up.
    pub(crate) fn after_command(&self, name: &str) -> bool {
        take_drop(&mut self.plan().drops, name, DropWhen::After)
    }
}

fn take_drop(drops: &mut Vec<(String, DropWhen)>, name: &str, when: DropWhen) -> bool {
    match drops.iter().position(|(n, w)| n == name && *w == when) {
        Some(idx) => {
            drops.remove(idx);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_one_shot_and_match_by_name() {
        let f = Faults::default();
        f.drop_before("/disk add");
        f.drop_after("/disk remove");
        assert_eq!(f.before_command("/disk print"), Verdict::Proceed);
        assert!(!f.after_command("/disk add"));
        assert_eq!(f.before_command("/disk add"), Verdict::Drop);
        assert_eq!(f.before_command("/disk add"), Verdict::Proceed);
        assert!(f.after_command("/disk remove"));
        assert!(!f.after_command("/disk remove"));
    }

    #[test]
    fn fail_after_counts_down_then_fails_until_cleared() {
        let f = Faults::default();
        f.fail_after(2);
        assert_eq!(f.before_command("/disk print"), Verdict::Proceed);
        assert_eq!(f.before_command("/disk print"), Verdict::Proceed);
        assert_eq!(f.before_command("/disk print"), Verdict::Fail);
        assert_eq!(f.before_command("/file print"), Verdict::Fail);
        f.clear_fail_after();
        assert_eq!(f.before_command("/disk print"), Verdict::Proceed);
    }

    #[test]
    fn stored_settings_and_clear() {
        let f = Faults::default();
        let shared = f.clone();
        f.set_latency(Duration::from_millis(5));
        f.set_error_exit_zero(true);
        f.set_refuse_connections(true);
        f.set_disk_full(true);
        f.drop_before("/disk add");
        assert_eq!(shared.latency(), Duration::from_millis(5));
        assert!(shared.error_exit_zero() && shared.refuse_connections() && shared.disk_full());
        shared.clear();
        assert_eq!(f.latency(), Duration::ZERO);
        assert!(!f.error_exit_zero() && !f.refuse_connections() && !f.disk_full());
        assert_eq!(f.before_command("/disk add"), Verdict::Proceed);
    }
}
