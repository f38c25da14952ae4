//! The Linux NVMe/TCP host side, for the node plugin.
//!
//! - [`HostIdentity`]: the host NQN and host id, from `/etc/nvme` or kept in the
//!   plugin's state directory; [`find_host_nqn`] says which, without writing.
//! - [`fence`]: the identity a node attaches published volumes with, derived
//!   from its node name, and how it travels in the `publish_context` (pure).
//! - [`refusal`]: which controllers the target refuses (unpublished from
//!   this node), from the kernel log.
//! - [`ConnectionConfig::option_string`]: the connect string, validated so no
//!   value can inject an option (pure).
//! - [`Host`]: everything under an injected root. [`Host::connect`] writes the
//!   string to `/dev/nvme-fabrics` (no nvme-cli);
//!   [`Host::connect_with_retry`] retries transient errnos until a deadline;
//!   [`Host::block_device`] resolves an NQN to its block device through
//!   sysfs; [`Host::disconnect_and_wait`] deletes the NQN's controllers and
//!   waits until sysfs shows none; [`Host::check_orphan`] judges leftovers,
//!   touching nothing without this driver's NQN prefix.
//!
//! Invariants: controller, subsystem and namespace numbers are never trusted
//! across calls, everything is looked up by NQN; every path hangs off the root;
//! parsing and choosing (the `options`, `sysfs` and `fabrics` rules) do no I/O;
//! waits poll sysfs until a deadline and fail rather than hope. [`testing`]
//! holds fakes of sysfs and of the fabrics device for tests.

mod connect;
pub mod error;
pub mod fabrics;
pub mod fence;
mod host;
pub mod identity;
mod lifecycle;
pub mod options;
pub mod refusal;
mod scan;
pub mod sysfs;
pub mod testing;

pub use error::{GaveUp, NvmeError};
pub use fabrics::{Connected, DevFabrics, Fabrics, RetryPolicy};
pub use host::{Host, judge_orphan};
pub use identity::{HostIdentity, HostNqnSource, find_host_nqn, nqn_format_problem};
pub use lifecycle::POLL;
pub use options::ConnectionConfig;
pub use sysfs::{Address, BlockDevice, Controller, CtrlState, Orphan, OrphanReason, Subsystem};
