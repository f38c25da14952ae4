//! The node's volume operations as plain async Rust, with no transport in
//! them: stage, unstage, publish, unpublish, expand and stats, the start-up
//! cleanup and the health monitor.
//!
//! They work over four seams, each a small trait with a production
//! implementation and an in-memory fake ([`testing`]) that can fail, be slow,
//! or stop an operation between any two steps:
//!
//! - [`NvmeHost`] (`nvme`): connecting, waiting for the block device,
//!   disconnecting; on [`nvme_host::Host`].
//! - [`Filesystems`] (`fs`): probing, formatting, mounting, binding, growing,
//!   the mount table and paths; [`LinuxFilesystems`] on `node-fs`.
//! - [`RecordStore`] (`record`): the staging records; [`Records`] on files.
//! - [`Crypt`] (`crypt`): LUKS2 under encrypted volumes (format, open,
//!   close, resize, the mappings in sysfs); [`LinuxCrypt`] on `node-fs`'s
//!   `cryptsetup` wrappers.
//!
//! [`Node`] holds them and the node's rules; `csi-driver` translates CSI
//! requests into [`request`]'s types and [`NodeError`]s into gRPC codes, and
//! nothing else. Block and filesystem volumes take separate paths through
//! each operation.
//!
//! Stage and unstage are asymmetric on purpose. Stage is forgiving: it may be
//! repeated at any point (after a crash, a timeout) and completes what is
//! missing — a connection that exists is reused, a filesystem that exists is
//! mounted, not made. Unstage is strict: it succeeds only once the mount is
//! gone and no controller of the volume's NQN is left, because reporting
//! success while the kernel still holds the volume lets Kubernetes attach it
//! elsewhere, where a second writer corrupts the filesystem. A device is
//! formatted only on a positive "empty" answer from the probe; any probe
//! error stops the stage, because a device that is not ready yet can look
//! empty to `blkid`.

pub mod context;
pub mod crypt;
pub mod error;
mod expand;
pub mod fence;
pub mod fs;
pub mod health;
pub mod locks;
mod node;
pub mod nvme;
mod publish;
pub mod record;
pub mod request;
mod stage;
pub mod stage_growth;
pub mod startup;
pub mod stats;
pub mod testing;
mod unstage;

pub use context::{ConnectionParams, Encryption, FsType, ParamError, VolumeContext};
pub use crypt::{Crypt, LinuxCrypt};
pub use error::NodeError;
pub use fence::{Chosen, Identities};
pub use fs::{Filesystems, LinuxFilesystems};
pub use node::{LinuxNode, Node, NodeConfig, NodeTimeouts};
pub use node_fs::secret::Passphrase;
pub use nvme::NvmeHost;
pub use record::{RecordStore, Records, StagingRecord};
pub use request::{
    Capability, ExpandRequest, PublishRequest, StageRequest, VolumeKeys, VolumeKind,
};
pub use startup::StartupReport;
pub use stats::{Usage, VolumeStats};
