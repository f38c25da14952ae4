//! What can go wrong on the node, typed by what failed.
//!
//! Every variant carries what a user needs to act on it (the volume, the
//! path, the device, what was found there), and says it in its message. The
//! gRPC layer (`csi-driver`'s `error` module) turns each into a status code in
//! one place; nothing here knows about gRPC. Callers branch on the variant,
//! never on the text.

use std::path::PathBuf;

use node_fs::probe::Probe;
use nvme_host::CtrlState;

use crate::context::ParamError;
use crate::crypt::CryptError;
use crate::locks::Busy;
use crate::record::RecordError;

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A request argument is missing or malformed; nothing was changed.
    #[error("{what} {problem}")]
    BadArgument {
        /// Which argument (`volume ID`, `staging target path`, …).
        what: &'static str,
        /// What is wrong with it, starting with a verb (`is required`).
        problem: String,
    },
    /// The volume context is unusable (a key missing or malformed).
    #[error(transparent)]
    Context(#[from] ParamError),
    /// Another operation on the same volume is in progress; the caller retries.
    #[error(transparent)]
    Busy(#[from] Busy),
    /// The volume is not staged on this node: it has no staging record.
    #[error("volume {volume} does not exist on this node (it is not staged here)")]
    NotStaged {
        /// The volume.
        volume: String,
    },
    /// The volume is not at the path the request names.
    #[error("volume {volume} at {} does not exist", .path.display())]
    NotAtPath {
        /// The volume.
        volume: String,
        /// The path asked about.
        path: PathBuf,
    },
    /// Publish of a volume that was not staged at the staging path given.
    #[error("volume {volume} is not staged at {}", .staging.display())]
    NotStagedAt {
        /// The volume.
        volume: String,
        /// The staging path of the request.
        staging: PathBuf,
    },
    /// A filesystem volume's staging path is not mounted any more.
    #[error("volume {volume} is not mounted at its staging path {}; stage it again", .staging.display())]
    StagingNotMounted {
        /// The volume.
        volume: String,
        /// Its staging path.
        staging: PathBuf,
    },
    /// The staging path is a mount of another device than the volume's.
    #[error("{} is already a mount of {mounted}, not of {}", .staging.display(), .device.display())]
    StagingOccupied {
        /// The staging path.
        staging: PathBuf,
        /// What is mounted there.
        mounted: String,
        /// The volume's device.
        device: PathBuf,
    },
    /// The volume's device holds something this driver must not format over.
    #[error("{} holds {}; refusing to format over it", .device.display(), refused(.found))]
    RefusedToFormat {
        /// The device.
        device: PathBuf,
        /// What the probe found.
        found: Probe,
    },
    /// The target path is published already, with another read-only setting.
    #[error("{} is already published {}", .target.display(), if *.read_only { "read-only" } else { "read-write" })]
    PublishedIncompatibly {
        /// The target path.
        target: PathBuf,
        /// Whether the existing publication is read-only.
        read_only: bool,
    },
    /// A single-writer volume is published at another target path already.
    #[error(
        "volume {volume} is single-node-single-writer and already published at {}; unpublish it there first",
        .elsewhere.display()
    )]
    PublishedElsewhere {
        /// The volume.
        volume: String,
        /// Where it is published.
        elsewhere: PathBuf,
    },
    /// The publish context names another node's host identity: the volume
    /// is published to that node, and the RDS lets only it in.
    #[error(
        "volume {volume} is published to the host {published}, not to this node ({this_node}); it can be staged only where it is published"
    )]
    PublishedToAnother {
        /// The volume.
        volume: String,
        /// The host NQN the publish context names.
        published: String,
        /// This node's host NQN (its node ID).
        this_node: String,
    },
    /// The volume's NVMe/TCP connection is down: it has no block device.
    #[error("volume {volume} has no block device: its NVMe/TCP connection ({nqn}) is down")]
    Unreachable {
        /// The volume.
        volume: String,
        /// Its NQN.
        nqn: String,
    },
    /// The volume's connection is gone and nothing says how to connect again.
    #[error(
        "volume {volume}'s NVMe/TCP connection ({nqn}) is gone, and neither the request nor its staging record says how to connect; stage it again"
    )]
    NoConnectionContext {
        /// The volume.
        volume: String,
        /// Its NQN.
        nqn: String,
    },
    /// The request's volume context names another NQN than the staged one.
    #[error("the volume context names {given}, but volume {volume} was staged from {staged}")]
    NqnMismatch {
        /// The volume.
        volume: String,
        /// The NQN it was staged from.
        staged: String,
        /// The NQN of the request's context.
        given: String,
    },
    /// The device did not show the size asked for in time after a rescan.
    #[error(
        "the device of volume {volume} is still {size} bytes after a rescan, not the {wanted} asked for"
    )]
    NotGrown {
        /// The volume.
        volume: String,
        /// The size the device shows.
        size: u64,
        /// The size asked for.
        wanted: u64,
    },
    /// The kernel still holds a controller of the volume after a disconnect
    /// that reported success.
    #[error("{nqn} still has a controller ({state}) after its disconnect; try again")]
    StillConnected {
        /// The NQN.
        nqn: String,
        /// The best state of what is left.
        state: CtrlState,
    },
    /// A path is still mounted after repeated unmounts.
    #[error("{} is still mounted after {unmounts} unmounts", .path.display())]
    StillMounted {
        /// The path.
        path: PathBuf,
        /// How many unmounts were made.
        unmounts: usize,
    },
    /// Creating or removing a directory or file failed.
    #[error("{op} {}: {source}", .path.display())]
    Path {
        /// What was being done (`creating`, `removing`).
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The node's configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// The NVMe/TCP host work failed.
    #[error(transparent)]
    Nvme(Box<nvme_host::NvmeError>),
    /// Filesystem or mount work failed.
    #[error(transparent)]
    Fs(Box<node_fs::FsError>),
    /// A staging record could not be read or written.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// LUKS2 work (`cryptsetup`, the device-mapper state) failed.
    #[error(transparent)]
    Crypt(Box<CryptError>),
    /// An encrypted volume's request carries no passphrase.
    #[error(
        "volume {volume} is encrypted (encryption=luks2), but {request} carries no `{key}`: the \
         StorageClass must name a Secret holding it with the parameters \
         csi.storage.k8s.io/{secret}-secret-name and csi.storage.k8s.io/{secret}-secret-namespace; \
         check those parameters, that the Secret exists in that namespace, and that it has the key \
         `{key}` with a value that is not empty{why}"
    )]
    MissingKey {
        /// The volume.
        volume: String,
        /// The request (`NodeStageVolume`, …).
        request: &'static str,
        /// Which secret kubelet sends with it (`node-stage`, …).
        secret: &'static str,
        /// The key's name in the Secret.
        key: &'static str,
        /// Why it is needed here, starting with `; `, or empty.
        why: &'static str,
    },
    /// No key slot of the volume's LUKS header takes the passphrase given.
    #[error(
        "the `{key}` of the {secret} secret does not open volume {volume}: no key slot of its LUKS \
         header takes it{previous}; check that csi.storage.k8s.io/{secret}-secret-name and \
         -namespace of the volume's StorageClass name the Secret the volume was made with, and \
         that its `{key}` is unchanged (to change it, see the key rotation in docs/deploy.md). The \
         volume was not changed"
    )]
    WrongKey {
        /// The volume.
        volume: String,
        /// Which secret (`node-stage`, …).
        secret: &'static str,
        /// The key's name in the Secret.
        key: &'static str,
        /// What else was tried, starting with `, `, or empty.
        previous: &'static str,
    },
    /// A volume that holds a LUKS header is staged without encryption.
    #[error(
        "volume {volume} is encrypted ({} holds a LUKS header), but its volume context does not say \
         encryption=luks2: refusing to mount or format it in the clear; it must be staged from a \
         PersistentVolume whose volumeAttributes have encryption: luks2 (as its StorageClass made \
         it), with the node-stage secret holding its passphrase",
        .device.display()
    )]
    EncryptedWithoutParameter {
        /// The volume.
        volume: String,
        /// Its disk.
        device: PathBuf,
    },
    /// A volume staged with encryption holds something other than a LUKS
    /// header (a volume made without encryption, or data).
    #[error(
        "volume {volume} is to be staged encrypted (encryption=luks2), but {} holds {found}, not a \
         LUKS header: refusing to format over it (a volume made without encryption cannot become an \
         encrypted one in place)",
        .device.display()
    )]
    NotEncrypted {
        /// The volume.
        volume: String,
        /// Its disk.
        device: PathBuf,
        /// What the probe found.
        found: Probe,
    },
    /// The mapping name of the volume is taken by a mapping on another disk
    /// that is still there.
    #[error(
        "the device-mapper name {mapping} of volume {volume} is taken by a mapping on {other}, \
         not on the volume's disk {}; it was left alone",
        .device.display()
    )]
    MappingOccupied {
        /// The volume.
        volume: String,
        /// The mapping's name.
        mapping: String,
        /// The disk the existing mapping is on.
        other: String,
        /// The volume's disk.
        device: PathBuf,
    },
    /// The volume's mapping is still open after it was closed.
    #[error("the encrypted mapping {mapping} is still open after it was closed; try again")]
    MappingStillOpen {
        /// The mapping.
        mapping: String,
    },
}

impl From<CryptError> for NodeError {
    fn from(e: CryptError) -> Self {
        Self::Crypt(Box::new(e))
    }
}

// The library errors are boxed: they are large, and every operation's result
// carries a `NodeError`.
impl From<nvme_host::NvmeError> for NodeError {
    fn from(e: nvme_host::NvmeError) -> Self {
        Self::Nvme(Box::new(e))
    }
}

impl From<node_fs::FsError> for NodeError {
    fn from(e: node_fs::FsError) -> Self {
        Self::Fs(Box::new(e))
    }
}

/// What a probe found, as the refusal to format names it.
fn refused(found: &Probe) -> String {
    match found {
        Probe::Filesystem(fs) => {
            format!("a {fs} filesystem, which this driver does not mount")
        }
        other => other.to_string(),
    }
}

/// Result alias of the node's operations.
pub type Result<T, E = NodeError> = std::result::Result<T, E>;
