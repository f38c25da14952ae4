//! The filesystems this driver formats, mounts and grows.

use std::fmt;
use std::str::FromStr;

use crate::FsError;

/// A filesystem type the driver supports. The names are the kernel's (and
/// `blkid`'s `TYPE=`), so a probe result compares directly with [`FsType::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FsType {
    /// ext4: grown with `resize2fs` on the device.
    Ext4,
    /// XFS: grown with `xfs_growfs` on the mount point, and only while mounted.
    Xfs,
}

impl FsType {
    /// Every supported type, for messages and tests.
    pub const ALL: [FsType; 2] = [FsType::Ext4, FsType::Xfs];

    /// Parses a kernel filesystem name, exactly `ext4` or `xfs`.
    pub fn parse(name: &str) -> Result<Self, FsError> {
        match name {
            "ext4" => Ok(Self::Ext4),
            "xfs" => Ok(Self::Xfs),
            other => Err(FsError::UnsupportedFsType(other.to_owned())),
        }
    }

    /// The kernel's name of the filesystem.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ext4 => "ext4",
            Self::Xfs => "xfs",
        }
    }
}

impl FromStr for FsType {
    type Err = FsError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::parse(name)
    }
}

impl fmt::Display for FsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for fs in FsType::ALL {
            assert_eq!(FsType::parse(fs.as_str()).ok(), Some(fs));
            assert_eq!(fs.to_string(), fs.as_str());
        }
    }

    #[test]
    fn other_names_are_refused_with_the_name() {
        for name in ["", "EXT4", "ext3", "btrfs", " xfs"] {
            let err = FsType::parse(name).err().map(|e| e.to_string());
            let text = err.unwrap_or_default();
            assert!(text.contains(&format!("{name:?}")), "{text}");
            assert!(text.contains("ext4 and xfs"), "{text}");
        }
    }
}
