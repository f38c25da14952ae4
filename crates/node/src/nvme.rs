//! The seam to the kernel's NVMe/TCP host: [`NvmeHost`], what the node's
//! operations ask of it, and its production implementation on
//! [`nvme_host::Host`].
//!
//! Everything is looked up by NQN, never by a remembered controller or device
//! number (the kernel reuses both). Changes (connect, disconnect, rescan) are
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

    /// Deletes every controller of `nqn` and waits until none is left,
    /// until `deadline`; succeeds at once when none is connected.
    fn disconnect(
        &self,
        nqn: &str,
        deadline: Instant,
    ) -> impl Future<Output = Result<(), NvmeError>> + Send;

    /// Asks each live controller of `nqn` to read its namespaces' sizes again.
    fn rescan(&self, nqn: &str) -> impl Future<Output = Result<(), NvmeError>> + Send;

    /// The block device of `nqn` now, if it has one.
    fn block_device(&self, nqn: &str) -> Result<Option<BlockDevice>, NvmeError>;

    /// The best state among the controllers of `nqn`; `None`: not connected.
    fn controller_state(&self, nqn: &str) -> Result<Option<CtrlState>, NvmeError>;

    /// The NQNs with at least one controller, sorted.
    fn connected_subsystems(&self) -> Result<Vec<String>, NvmeError>;

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

    async fn disconnect(&self, nqn: &str, deadline: Instant) -> Result<(), NvmeError> {
        self.disconnect_and_wait(nqn, deadline).await
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

    fn connected_subsystems(&self) -> Result<Vec<String>, NvmeError> {
        self.list_connected_subsystems()
    }
}
