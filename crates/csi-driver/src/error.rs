//! The driver's errors, and the one place they become gRPC status codes.
//!
//! Handlers return [`DriverError`]; [`rpc`](crate::rpc) turns it into a
//! `tonic::Status`. Retryable failures (the RDS unreachable, another operation
//! on the volume in flight) are kept apart from permanent ones, because the
//! sidecars retry the former quickly and surface the latter to users.
//!
//! The node's errors are the node crate's typed [`NodeError`]s, and the RDS
//! client's its typed errors (those of snapshots, restores and clones
//! included, with the failure the RDS's script reported); each is mapped
//! here, by what failed. The variants named after a gRPC code that carry
//! only a message are the controller's and the identity service's argument
//! and state checks, which nobody branches on.

use node::NodeError;
use node::locks::Busy;
use rds_client::Error as RdsError;
use rds_client::SnapshotError;
use routeros::CliErrorKind;
use routeros::subvolume::ScriptFailure;
use tonic::{Code, Status};

use crate::params::ParamError;

/// Why an RPC failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The request is malformed or asks for something unsupported.
    #[error("{0}")]
    InvalidArgument(String),
    /// A StorageClass parameter or volume context value is invalid.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// The volume does not exist.
    #[error("volume {0} does not exist")]
    VolumeNotFound(String),
    /// Something else the request names does not exist (a node).
    #[error("{0}")]
    NotFound(String),
    /// A publish the volume's record does not allow.
    #[error(transparent)]
    Refused(#[from] crate::attach::Refusal),
    /// A record on the RDS the driver cannot write back.
    #[error(transparent)]
    Record(#[from] crate::attach::RecordError),
    /// The snapshot does not exist.
    #[error("snapshot {0} does not exist")]
    SnapshotNotFound(String),
    /// A volume of that name exists but does not match the request.
    #[error("{0}")]
    AlreadyExists(String),
    /// The capacity asked for cannot be given.
    #[error("{0}")]
    OutOfRange(String),
    /// The request cannot go on as asked (a stale pagination token, say).
    #[error("{0}")]
    Aborted(String),
    /// Another operation on the same volume is in progress; the caller retries.
    #[error(transparent)]
    Busy(#[from] Busy),
    /// The system is not in a state the operation needs (set-up problems).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The RDS client failed.
    #[error(transparent)]
    Rds(Box<RdsError>),
    /// A node operation failed.
    #[error(transparent)]
    Node(Box<NodeError>),
    /// A snapshot, restore or clone (or a volume operation on a btrfs pool)
    /// failed on the RDS.
    #[error(transparent)]
    Snapshot(Box<SnapshotError>),
    /// A pool is too full for a new snapshot.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A bug or an unexpected state.
    #[error("{0}")]
    Internal(String),
}

// The library errors are boxed: they are large, and every handler's result
// carries a `DriverError`.
impl From<RdsError> for DriverError {
    fn from(e: RdsError) -> Self {
        Self::Rds(Box::new(e))
    }
}

impl From<NodeError> for DriverError {
    fn from(e: NodeError) -> Self {
        Self::Node(Box::new(e))
    }
}

impl From<SnapshotError> for DriverError {
    fn from(e: SnapshotError) -> Self {
        Self::Snapshot(Box::new(e))
    }
}

impl DriverError {
    /// The gRPC code for this error.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) | Self::Param(_) => Code::InvalidArgument,
            Self::VolumeNotFound(_) | Self::SnapshotNotFound(_) | Self::NotFound(_) => {
                Code::NotFound
            }
            Self::Refused(refusal) => refused_code(refusal),
            Self::Record(_) => Code::FailedPrecondition,
            Self::AlreadyExists(_) => Code::AlreadyExists,
            Self::OutOfRange(_) => Code::OutOfRange,
            Self::Busy(_) | Self::Aborted(_) => Code::Aborted,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::Internal(_) => Code::Internal,
            Self::ResourceExhausted(_) => Code::ResourceExhausted,
            Self::Rds(e) => rds_code(e),
            Self::Node(e) => node_code(e),
            Self::Snapshot(e) => snapshot_code(e),
        }
    }
}

/// Codes for the node's errors, by what failed.
fn node_code(e: &NodeError) -> Code {
    use NodeError as E;
    match e {
        E::BadArgument { .. }
        | E::Context(_)
        | E::NqnMismatch { .. }
        // The request lacks what kubelet puts in it from the StorageClass's
        // secret parameters: the caller's to fix.
        | E::MissingKey { .. } => Code::InvalidArgument,
        E::Busy(_) => Code::Aborted,
        E::NotStaged { .. } | E::NotAtPath { .. } => Code::NotFound,
        E::NotStagedAt { .. }
        | E::StagingNotMounted { .. }
        | E::StagingOccupied { .. }
        | E::RefusedToFormat { .. }
        | E::PublishedElsewhere { .. }
        | E::PublishedToAnother { .. }
        // The volume is not what the request says it is, or its key is
        // another: a person must look, retrying the same changes nothing.
        | E::WrongKey { .. }
        | E::EncryptedWithoutParameter { .. }
        | E::NotEncrypted { .. }
        | E::MappingOccupied { .. } => Code::FailedPrecondition,
        E::PublishedIncompatibly { .. } => Code::AlreadyExists,
        // The connection is down or the kernel is not done yet: worth
        // kubelet's retry.
        E::Unreachable { .. }
        | E::NoConnectionContext { .. }
        | E::NotGrown { .. }
        | E::StillConnected { .. }
        | E::MappingStillOpen { .. } => Code::Unavailable,
        E::StillMounted { .. } | E::Path { .. } | E::Record(_) | E::Config(_) => Code::Internal,
        E::Nvme(e) => nvme_code(e),
        E::Fs(e) => fs_code(e),
        E::Crypt(e) => crypt_code(e),
    }
}

/// Codes for the node's LUKS2 errors.
fn crypt_code(e: &node::crypt::CryptError) -> Code {
    use node::crypt::CryptError as E;
    use node_fs::tool::ToolError;
    match e {
        E::Tool {
            source: ToolError::Timeout { .. },
            ..
        } => Code::DeadlineExceeded,
        // cryptsetup is not installed: the node's set-up, which `doctor`
        // checks.
        E::Tool {
            source: ToolError::NotFound { .. },
            ..
        } => Code::FailedPrecondition,
        E::WrongKey { .. } | E::Taken { .. } => Code::FailedPrecondition,
        E::BadName { .. } => Code::InvalidArgument,
        e if e.is_transient() => Code::Unavailable,
        _ => Code::Internal,
    }
}

/// Codes for refused publishes, as the CSI spec's ControllerPublishVolume
/// table has them: published to another node without a multi-node
/// capability is FAILED_PRECONDITION; published to this node in another way
/// is ALREADY_EXISTS.
fn refused_code(refusal: &crate::attach::Refusal) -> Code {
    use crate::attach::Refusal as R;
    match refusal {
        R::PublishedElsewhere { .. } | R::OtherMode { .. } | R::Foreign { .. } => {
            Code::FailedPrecondition
        }
        R::Incompatible { .. } => Code::AlreadyExists,
    }
}

/// Codes for the node's NVMe errors: a target not reachable yet, a device not
/// there yet, a disconnect not finished yet are all worth kubelet's retry.
fn nvme_code(e: &nvme_host::NvmeError) -> Code {
    use nvme_host::NvmeError as E;
    match e {
        E::Invalid { .. } => Code::InvalidArgument,
        E::DisconnectTimedOut { .. } => Code::DeadlineExceeded,
        e if e.is_transient() => Code::Unavailable,
        _ => Code::Internal,
    }
}

/// Codes for the node's filesystem errors.
fn fs_code(e: &node_fs::FsError) -> Code {
    use node_fs::FsError as E;
    match e {
        E::Timeout { .. } => Code::DeadlineExceeded,
        // The device holds something that must not be formatted over.
        E::NotEmpty { .. } => Code::FailedPrecondition,
        e if e.is_transient() => Code::Unavailable,
        _ => Code::Internal,
    }
}

/// Codes for the RDS client's errors.
fn rds_code(e: &RdsError) -> Code {
    match e {
        // Every way of not reaching the RDS, or of not knowing whether a
        // command ran, is worth a retry: each operation is idempotent.
        RdsError::Connect { .. }
        | RdsError::Unavailable { .. }
        | RdsError::ConnectionLost { .. }
        | RdsError::Timeout { .. }
        // Set-up errors that an operator fixes while the sidecars keep trying.
        | RdsError::HostKeyMismatch { .. }
        | RdsError::AuthRejected { .. }
        | RdsError::Key { .. }
        | RdsError::HostKeyPin { .. } => Code::Unavailable,
        RdsError::InvalidValue(_) => Code::InvalidArgument,
        RdsError::VolumeNotFound { .. } => Code::NotFound,
        RdsError::PoolNotFound { .. } => Code::FailedPrecondition,
        RdsError::Conflict { .. } => Code::AlreadyExists,
        RdsError::SizeOutOfRange { .. } => Code::OutOfRange,
        RdsError::NotAFile { .. } => Code::FailedPrecondition,
        RdsError::UnexpectedOutput { .. } => Code::Internal,
        RdsError::RouterOs(cli) => match cli.kind {
            CliErrorKind::NotFound => Code::NotFound,
            CliErrorKind::AlreadyExists => Code::AlreadyExists,
            CliErrorKind::OutOfSpace => Code::ResourceExhausted,
            CliErrorKind::Permission => Code::PermissionDenied,
            // The driver validated what it sent: RouterOS refusing it means a
            // RouterOS the driver does not know, not a bad request.
            CliErrorKind::InvalidArgument | CliErrorKind::Syntax | CliErrorKind::Other => {
                Code::Internal
            }
        },
    }
}

/// Codes for the failures of snapshots, restores and clones, by what failed.
fn snapshot_code(e: &SnapshotError) -> Code {
    match e {
        SnapshotError::Rds(e) => rds_code(e),
        SnapshotError::Script { failure, .. } => script_code(*failure),
        // The snapshot name was used before, for another volume.
        SnapshotError::OfAnotherVolume { .. } => Code::AlreadyExists,
        SnapshotError::Size { .. } => Code::OutOfRange,
        // Another pool than the source's: the request cannot be met as
        // made (btrfs shares data only within one filesystem).
        SnapshotError::OtherPool { .. } => Code::InvalidArgument,
    }
}

/// Codes for what the subvolume scripts refuse on the RDS.
fn script_code(failure: ScriptFailure) -> Code {
    use ScriptFailure as F;
    match failure {
        F::VolumeNotFound | F::SnapshotNotFound => Code::NotFound,
        // The volume cannot be snapshotted or cloned (a flat image, a pool
        // that is not btrfs or has no label), the snapshot is in use, or
        // the RDS holds what the driver did not make (two subvolumes of
        // one ID, a snapshot's image not of its recorded size): the
        // system is not in the state the operation needs.
        F::NoPool
        | F::NotBtrfs
        | F::NoLabel
        | F::NotInSubvolume
        | F::SnapshotAmbiguous
        | F::SizeMismatch
        | F::InUse => Code::FailedPrecondition,
        // The snapshot is on another pool than the new volume's path.
        F::SnapshotElsewhere => Code::InvalidArgument,
        // This RouterOS did not keep the image's data: it cannot restore
        // as the driver assumes (the script removed what it made).
        F::DataNotKept => Code::FailedPrecondition,
        // RouterOS refused a step the driver needs, for a reason the
        // script could not see (space, most likely): undone, worth a retry.
        F::DiskAddFailed | F::NotGrown => Code::Internal,
    }
}

/// Advice added to a message whose cause an operator can check.
fn snapshot_hint(e: &DriverError) -> Option<&'static str> {
    let DriverError::Snapshot(e) = e else {
        return None;
    };
    match e.failure()? {
        ScriptFailure::DataNotKept | ScriptFailure::DiskAddFailed | ScriptFailure::NotGrown => {
            Some(
                " (rds-csi-plugin doctor --check-snapshots shows which of the driver's \
                 assumptions about this RouterOS hold)",
            )
        }
        _ => None,
    }
}

impl From<DriverError> for Status {
    fn from(e: DriverError) -> Status {
        let rds = match &e {
            DriverError::Rds(rds) => Some(&**rds),
            DriverError::Snapshot(s) => match &**s {
                SnapshotError::Rds(rds) => Some(rds),
                _ => None,
            },
            _ => None,
        };
        let syntax =
            matches!(rds, Some(RdsError::RouterOs(cli)) if cli.kind == CliErrorKind::Syntax);
        let message = if syntax {
            format!(
                "{e} (RouterOS did not understand a command: is it {} or newer?)",
                routeros::MINIMUM_VERSION
            )
        } else if let Some(hint) = snapshot_hint(&e) {
            format!("{e}{hint}")
        } else {
            e.to_string()
        };
        Status::new(e.code(), message)
    }
}

/// Result alias for handlers.
pub type Result<T, E = DriverError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use routeros::CliError;

    use super::*;

    fn cli(kind: CliErrorKind) -> DriverError {
        RdsError::RouterOs(CliError {
            kind,
            text: "text".into(),
        })
        .into()
    }

    #[test]
    fn codes() {
        let cases = [
            (
                DriverError::InvalidArgument("x".into()),
                Code::InvalidArgument,
            ),
            (
                DriverError::Busy(Busy {
                    volume: "pvc-1".into(),
                }),
                Code::Aborted,
            ),
            (DriverError::VolumeNotFound("pvc-1".into()), Code::NotFound),
            (DriverError::NotFound("node".into()), Code::NotFound),
            (
                crate::attach::Refusal::PublishedElsewhere {
                    volume: "pvc-1".into(),
                    others: vec!["n".into()],
                    mode: crate::attach::Mode::SINGLE_WRITER,
                }
                .into(),
                Code::FailedPrecondition,
            ),
            (
                crate::attach::Refusal::Incompatible {
                    volume: "pvc-1".into(),
                    node: "n".into(),
                    recorded: crate::attach::Mode::SINGLE_WRITER,
                    asked: crate::attach::Mode::SINGLE_WRITER,
                }
                .into(),
                Code::AlreadyExists,
            ),
            (
                DriverError::SnapshotNotFound("snap-1".into()),
                Code::NotFound,
            ),
            (
                RdsError::Timeout {
                    after: Duration::from_secs(1),
                }
                .into(),
                Code::Unavailable,
            ),
            (
                RdsError::ConnectionLost {
                    outcome_unknown: true,
                    detail: "x".into(),
                }
                .into(),
                Code::Unavailable,
            ),
            (cli(CliErrorKind::OutOfSpace), Code::ResourceExhausted),
            (cli(CliErrorKind::AlreadyExists), Code::AlreadyExists),
            (cli(CliErrorKind::NotFound), Code::NotFound),
            (cli(CliErrorKind::Permission), Code::PermissionDenied),
            (cli(CliErrorKind::Syntax), Code::Internal),
        ];
        for (err, code) in cases {
            assert_eq!(Status::from(err).code(), code);
        }
    }

    #[test]
    fn encryption_codes() {
        use node::crypt::CryptError;
        let crypt = |e: CryptError| DriverError::from(NodeError::from(e)).code();
        assert_eq!(
            crypt(CryptError::Tool {
                target: "/dev/nvme0n1".into(),
                source: node_fs::tool::ToolError::NotFound {
                    program: "cryptsetup".into(),
                    package: Some("cryptsetup-bin"),
                },
            }),
            Code::FailedPrecondition,
            "cryptsetup missing is the node's set-up"
        );
        assert_eq!(
            crypt(CryptError::Busy {
                name: "rds-csi-pvc-1".into(),
                output: String::new(),
            }),
            Code::Unavailable,
            "a mapping in use is worth a retry"
        );
        assert_eq!(
            DriverError::from(NodeError::WrongKey {
                volume: "pvc-1".into(),
                secret: "node-stage",
                key: "encryptionPassphrase",
                previous: "",
            })
            .code(),
            Code::FailedPrecondition
        );
    }

    #[test]
    fn messages_keep_the_detail() {
        let status = Status::from(DriverError::Busy(Busy {
            volume: "pvc-1".into(),
        }));
        assert_eq!(
            status.message(),
            "an operation on volume pvc-1 is already in progress"
        );
        let status = Status::from(cli(CliErrorKind::Syntax));
        assert!(
            status.message().contains("7.21.0 or newer"),
            "{}",
            status.message()
        );
    }

    fn script(failure: ScriptFailure) -> DriverError {
        SnapshotError::Script {
            subject: "volume pvc-1".into(),
            failure,
        }
        .into()
    }

    #[test]
    fn snapshot_codes() {
        use ScriptFailure as F;
        let cases = [
            (script(F::VolumeNotFound), Code::NotFound),
            (script(F::SnapshotNotFound), Code::NotFound),
            (script(F::NotInSubvolume), Code::FailedPrecondition),
            (script(F::NotBtrfs), Code::FailedPrecondition),
            (script(F::NoLabel), Code::FailedPrecondition),
            (script(F::NoPool), Code::FailedPrecondition),
            (script(F::InUse), Code::FailedPrecondition),
            (script(F::SnapshotAmbiguous), Code::FailedPrecondition),
            (script(F::SizeMismatch), Code::FailedPrecondition),
            (script(F::DataNotKept), Code::FailedPrecondition),
            (script(F::SnapshotElsewhere), Code::InvalidArgument),
            (script(F::DiskAddFailed), Code::Internal),
            (script(F::NotGrown), Code::Internal),
            (
                SnapshotError::OfAnotherVolume {
                    id: "snap-1".into(),
                    existing: "pvc-1".into(),
                    requested: "pvc-2".into(),
                }
                .into(),
                Code::AlreadyExists,
            ),
            (
                SnapshotError::Size {
                    slot: "pvc-2".into(),
                    reason: "smaller".into(),
                }
                .into(),
                Code::OutOfRange,
            ),
            (
                SnapshotError::OtherPool {
                    slot: "pvc-2".into(),
                    source_slot: "pvc-1".into(),
                    source_pool: "a".into(),
                    target_pool: "b".into(),
                }
                .into(),
                Code::InvalidArgument,
            ),
            (
                SnapshotError::Rds(RdsError::Timeout {
                    after: Duration::from_secs(1),
                })
                .into(),
                Code::Unavailable,
            ),
            (
                SnapshotError::Rds(RdsError::RouterOs(CliError {
                    kind: CliErrorKind::OutOfSpace,
                    text: "not enough space".into(),
                }))
                .into(),
                Code::ResourceExhausted,
            ),
            (
                DriverError::ResourceExhausted("full".into()),
                Code::ResourceExhausted,
            ),
        ];
        // Every failure a script can raise has its code here.
        for failure in ScriptFailure::ALL {
            assert!(
                cases.iter().any(
                    |(e, _)| matches!(e, DriverError::Snapshot(s) if s.failure() == Some(failure))
                ),
                "{failure:?} has no case"
            );
        }
        for (err, code) in cases {
            assert_eq!(Status::from(err).code(), code);
        }
    }

    #[test]
    fn snapshot_messages_say_what_to_check() {
        let status = Status::from(script(ScriptFailure::DataNotKept));
        assert!(
            status
                .message()
                .starts_with("volume pvc-1: rds-csi: /disk add did not keep")
                && status.message().contains("doctor --check-snapshots"),
            "{}",
            status.message()
        );
        let status = Status::from(script(ScriptFailure::NotInSubvolume));
        assert!(
            status.message().contains("cannot be snapshotted or cloned")
                && !status.message().contains("doctor"),
            "{}",
            status.message()
        );
        let syntax: DriverError = SnapshotError::Rds(RdsError::RouterOs(CliError {
            kind: CliErrorKind::Syntax,
            text: "bad command name subvolume".into(),
        }))
        .into();
        assert!(Status::from(syntax).message().contains("7.21.0 or newer"));
    }
}
