//! Volume capabilities: which access types and modes the driver supports.
//!
//! - Filesystem volumes (ext4, xfs) are single-node: neither filesystem may be
//!   mounted by two nodes at once, not even read-only (a read-only mount may
//!   replay a journal).
//! - Block volumes may also be shared between nodes, read-only or read-write:
//!   KubeVirt's live migration attaches a VM's disk on two nodes at once, and
//!   coordinates the writes itself.

use csi_proto::v1::VolumeCapability;
use csi_proto::v1::volume_capability::AccessType;
use csi_proto::v1::volume_capability::access_mode::Mode;

use crate::params::{FsType, ParamError};

/// A validated capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// Filesystem or raw block.
    pub access: Access,
    /// Who may use the volume at once.
    pub mode: Mode,
}

/// How the volume is presented to the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// A mounted filesystem.
    Mount {
        /// The filesystem asked for; `None` takes the volume's default.
        fs_type: Option<FsType>,
        /// Mount options, applied as given (they may hold secrets: never log).
        mount_flags: Vec<String>,
    },
    /// A raw block device.
    Block,
}

impl Capability {
    /// Whether the workload may only read.
    pub fn read_only(&self) -> bool {
        matches!(
            self.mode,
            Mode::SingleNodeReaderOnly | Mode::MultiNodeReaderOnly
        )
    }

    /// Whether this is a block volume.
    pub fn is_block(&self) -> bool {
        matches!(self.access, Access::Block)
    }
}

/// Access modes of filesystem volumes.
const MOUNT_MODES: &[Mode] = &[
    Mode::SingleNodeWriter,
    Mode::SingleNodeReaderOnly,
    Mode::SingleNodeSingleWriter,
    Mode::SingleNodeMultiWriter,
];

/// Access modes of block volumes.
const BLOCK_MODES: &[Mode] = &[
    Mode::SingleNodeWriter,
    Mode::SingleNodeReaderOnly,
    Mode::SingleNodeSingleWriter,
    Mode::SingleNodeMultiWriter,
    Mode::MultiNodeReaderOnly,
    Mode::MultiNodeMultiWriter,
];

/// Validates one capability; the error says what is wrong in a sentence.
pub fn check(cap: &VolumeCapability) -> Result<Capability, String> {
    let mode = cap
        .access_mode
        .as_ref()
        .map(|m| Mode::try_from(m.mode).unwrap_or(Mode::Unknown))
        .unwrap_or(Mode::Unknown);
    if mode == Mode::Unknown {
        return Err("volume capability has no access mode".into());
    }
    let (access, allowed) = match &cap.access_type {
        None => return Err("volume capability is neither block nor mount".into()),
        Some(AccessType::Block(_)) => (Access::Block, BLOCK_MODES),
        Some(AccessType::Mount(m)) => {
            let fs_type = match m.fs_type.as_str() {
                "" => None,
                fs => Some(FsType::parse(fs).map_err(|e| match e {
                    ParamError::Invalid { value, .. } => {
                        format!("filesystem {value:?} is not supported; use ext4 or xfs")
                    }
                    other => other.to_string(),
                })?),
            };
            (
                Access::Mount {
                    fs_type,
                    mount_flags: m.mount_flags.clone(),
                },
                MOUNT_MODES,
            )
        }
    };
    if !allowed.contains(&mode) {
        let kind = if matches!(access, Access::Block) {
            "block"
        } else {
            "filesystem"
        };
        return Err(format!(
            "access mode {} is not supported for {kind} volumes",
            mode.as_str_name()
        ));
    }
    Ok(Capability { access, mode })
}

/// Validates a non-empty list of capabilities.
pub fn check_all(caps: &[VolumeCapability]) -> Result<Vec<Capability>, String> {
    if caps.is_empty() {
        return Err("volume capabilities are required".into());
    }
    caps.iter().map(check).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use csi_proto::v1::volume_capability::{AccessMode, BlockVolume, MountVolume};

    use super::*;

    pub(crate) fn mount(fs: &str, mode: Mode) -> VolumeCapability {
        VolumeCapability {
            access_mode: Some(AccessMode { mode: mode as i32 }),
            access_type: Some(AccessType::Mount(MountVolume {
                fs_type: fs.into(),
                mount_flags: vec!["noatime".into()],
                volume_mount_group: String::new(),
            })),
        }
    }

    pub(crate) fn block(mode: Mode) -> VolumeCapability {
        VolumeCapability {
            access_mode: Some(AccessMode { mode: mode as i32 }),
            access_type: Some(AccessType::Block(BlockVolume {})),
        }
    }

    #[test]
    fn supported() {
        let c = check(&mount("xfs", Mode::SingleNodeWriter)).unwrap();
        assert_eq!(
            c.access,
            Access::Mount {
                fs_type: Some(FsType::Xfs),
                mount_flags: vec!["noatime".into()]
            }
        );
        assert!(!c.read_only() && !c.is_block());
        assert!(
            check(&mount("", Mode::SingleNodeReaderOnly))
                .unwrap()
                .read_only()
        );
        assert!(
            check(&block(Mode::MultiNodeMultiWriter))
                .unwrap()
                .is_block()
        );
        assert!(
            check(&block(Mode::MultiNodeReaderOnly))
                .unwrap()
                .read_only()
        );
    }

    #[test]
    fn unsupported_say_why() {
        let err = |c| check(&c).unwrap_err();
        assert_eq!(
            err(mount("ext4", Mode::MultiNodeMultiWriter)),
            "access mode MULTI_NODE_MULTI_WRITER is not supported for filesystem volumes"
        );
        assert_eq!(
            err(mount("ext4", Mode::MultiNodeReaderOnly)),
            "access mode MULTI_NODE_READER_ONLY is not supported for filesystem volumes"
        );
        assert_eq!(
            err(block(Mode::MultiNodeSingleWriter)),
            "access mode MULTI_NODE_SINGLE_WRITER is not supported for block volumes"
        );
        assert_eq!(
            err(mount("btrfs", Mode::SingleNodeWriter)),
            "filesystem \"btrfs\" is not supported; use ext4 or xfs"
        );
        assert_eq!(
            err(block(Mode::Unknown)),
            "volume capability has no access mode"
        );
        let mut no_type = block(Mode::SingleNodeWriter);
        no_type.access_type = None;
        assert_eq!(err(no_type), "volume capability is neither block nor mount");
        let mut no_mode = block(Mode::SingleNodeWriter);
        no_mode.access_mode = None;
        assert_eq!(err(no_mode), "volume capability has no access mode");
        let mut bad_mode = block(Mode::SingleNodeWriter);
        bad_mode.access_mode = Some(AccessMode { mode: 99 });
        assert!(check(&bad_mode).is_err());
        assert_eq!(
            check_all(&[]).unwrap_err(),
            "volume capabilities are required"
        );
    }
}
