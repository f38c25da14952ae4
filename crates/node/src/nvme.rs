//! The seam to the kernel's NVMe/TCP host: [`NvmeHost`], what the node's
//! operations ask of it, and its production implementation on
//! [`nvme_host::Host`].
//!
//! Everything is looked up by NQN, never by a remembered controller or device
//! number (the kernel reuses both). What the node changes, it changes only for
//! the host identities it connects as: one kernel may hold controllers of
//! the same NQN for several identities (see `Node::ours`). Changes (connect, disconnect, rescan) are
//! async, since they wait on the kernel; questions (which device, which
//! state) are quick reads of sysfs. The in-memory stand-in for tests is
//! [`crate::testing::FakeNvme`].

use std::future::Future;

use nvme_host::{
    BlockDevice, Connected, ConnectionConfig, CtrlState, Host, NvmeError, Orphan, RetryPolicy,
};
use tokio::time::Instant;

/// The NVMe/TCP host as the node uses it.
pub trait NvmeHost: Send + Sync + 'static {
    /// Connects `config`, retrying transient failures until `deadline`
    /// (calling `on_retry` with each one), and reports whether a controller
    /// was made or one with the same target, NQN and host identity existed.
    fn connect(
        &self,
        config: &ConnectionConfig,
        deadline: Instant,
        on_retry: &(dyn Fn(&NvmeError) + Sync),
    ) -> impl Future<Output = Result<Connected, NvmeError>> + Send;

    /// Waits until `nqn` has a usable block device, until `deadline`.
    fn wait_for_block_device(
        &self,
        nqn: &str,
        deadline: Instant,
    ) -> impl Future<Output = Result<BlockDevice, NvmeError>> + Send;

    /// Deletes every controller of `nqn` connected as one of `hosts` (host
    /// NQNs) and waits until none of them is left, until `deadline`;
    /// succeeds at once when none is connected. Controllers of other host
    /// identities are left alone.
    fn disconnect(
        &self,
        nqn: &str,
        hosts: &[String],
        deadline: Instant,
    ) -> impl Future<Output = Result<(), NvmeError>> + Send;

    /// Asks each live controller of `nqn` to read its namespaces' sizes again.
    fn rescan(&self, nqn: &str) -> impl Future<Output = Result<(), NvmeError>> + Send;

    /// The block device of `nqn` now, if it has one.
    fn block_device(&self, nqn: &str) -> Result<Option<BlockDevice>, NvmeError>;

    /// The best state among the controllers of `nqn`; `None`: not connected.
    fn controller_state(&self, nqn: &str) -> Result<Option<CtrlState>, NvmeError>;

    /// The best state among the controllers of `nqn` connected as one of
    /// `hosts`; `None`: none is.
    fn controller_state_of(
        &self,
        nqn: &str,
        hosts: &[String],
    ) -> Result<Option<CtrlState>, NvmeError>;

    /// The NQNs with at least one controller connected as one of `hosts`,
    /// sorted.
    fn connected_subsystems(&self, hosts: &[String]) -> Result<Vec<String>, NvmeError>;

    /// Whether the target refuses `hostnqn` for `nqn`: a controller of it is
    /// waiting to reconnect and the kernel's last word on it is a refusal
    /// (see [`nvme_host::Host::refused`]).
    fn refused(&self, nqn: &str, hostnqn: &str) -> Result<bool, NvmeError>;

    /// Whether a connected `nqn` may be cleaned up at start-up (see
    /// [`nvme_host::judge_orphan`]: only NQNs with `our_prefix` ever are).
    fn check_orphan(
        &self,
        nqn: &str,
        our_prefix: &str,
        referenced: bool,
    ) -> Result<Orphan, NvmeError> {
        nvme_host::judge_orphan(
            nqn,
            our_prefix,
            referenced,
            || self.block_device(nqn),
            || self.controller_state(nqn),
        )
    }
}

impl NvmeHost for Host {
    async fn connect(
        &self,
        config: &ConnectionConfig,
        deadline: Instant,
        on_retry: &(dyn Fn(&NvmeError) + Sync),
    ) -> Result<Connected, NvmeError> {
        self.connect_with_retry_observed(config, deadline, RetryPolicy::default(), on_retry)
            .await
    }

    async fn wait_for_block_device(
        &self,
        nqn: &str,
        deadline: Instant,
    ) -> Result<BlockDevice, NvmeError> {
        Host::wait_for_block_device(self, nqn, deadline).await
    }

    async fn disconnect(
        &self,
        nqn: &str,
        hosts: &[String],
        deadline: Instant,
    ) -> Result<(), NvmeError> {
        self.disconnect_hosts_and_wait(nqn, hosts, deadline).await
    }

    async fn rescan(&self, nqn: &str) -> Result<(), NvmeError> {
        Host::rescan(self, nqn)
    }

    fn block_device(&self, nqn: &str) -> Result<Option<BlockDevice>, NvmeError> {
        Host::block_device(self, nqn)
    }

    fn controller_state(&self, nqn: &str) -> Result<Option<CtrlState>, NvmeError> {
        Host::controller_state(self, nqn)
    }

    fn controller_state_of(
        &self,
        nqn: &str,
        hosts: &[String],
    ) -> Result<Option<CtrlState>, NvmeError> {
        Ok(self
            .controllers_of(nqn)?
            .into_iter()
            .filter(|c| hosts.contains(&c.hostnqn))
            .map(|c| c.state)
            .max_by_key(CtrlState::rank))
    }

    fn connected_subsystems(&self, hosts: &[String]) -> Result<Vec<String>, NvmeError> {
        self.connected_subsystems_of(hosts)
    }

    fn refused(&self, nqn: &str, hostnqn: &str) -> Result<bool, NvmeError> {
        Host::refused(self, nqn, hostnqn)
    }
}
