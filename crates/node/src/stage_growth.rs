//! The last filesystem step of a stage: a filesystem smaller than its device
//! is grown to fill it.
//!
//! A volume restored from a snapshot, or cloned, into a larger size holds its
//! source's filesystem on a larger device; CSI promises the larger size, so
//! the node grows the filesystem when it stages the volume, once it is
//! mounted (XFS grows only while mounted; ext4 grows online too). The same
//! step finishes an expansion whose NodeExpandVolume never came. The size
//! the filesystem spans is read from its superblock, so a filesystem that
//! fills its device is left alone, and a repeated stage grows nothing.
//!
//! A read-only stage does not grow (its mount cannot be written); the next
//! writable stage does.

use std::path::Path;

use nvme_host::BlockDevice;
use tracing::info;

use crate::context::FsType;
use crate::error::Result;
use crate::fs::Filesystems;
use crate::node::Node;
use crate::nvme::NvmeHost;
use crate::record::RecordStore;

/// How much larger than its filesystem a device must be for the stage to
/// grow it. Volumes are made and grown in whole MiB, so a device that was
/// grown is at least this much larger; less is what a filesystem leaves
/// unused at its end (ext4 drops a last block group too small to hold its
/// own metadata).
pub const GROW_THRESHOLD: u64 = 1 << 20;

/// What a stage does about a filesystem's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Growth {
    /// It fills its device: nothing.
    Fits,
    /// Its device is larger: grow it.
    Grow,
    /// Its device is larger, but the stage is read-only: left for a
    /// writable stage.
    ReadOnly,
}

/// The decision for a filesystem of `fs_bytes` on a device of
/// `device_bytes`.
pub fn growth(device_bytes: u64, fs_bytes: u64, read_only: bool) -> Growth {
    if device_bytes.saturating_sub(fs_bytes) < GROW_THRESHOLD {
        Growth::Fits
    } else if read_only {
        Growth::ReadOnly
    } else {
        Growth::Grow
    }
}

impl<H: NvmeHost, F: Filesystems, R: RecordStore> Node<H, F, R> {
    /// Grows the `fs` filesystem of `device`, mounted at `staging`, when it
    /// is smaller than the device (see the module documentation).
    pub(crate) async fn ensure_grown(
        &self,
        device: &BlockDevice,
        staging: &Path,
        fs: FsType,
        read_only: bool,
    ) -> Result<()> {
        let fs_bytes = self
            .fs
            .filesystem_size(fs.into(), &device.path, self.config.timeouts.probe)
            .await?;
        match growth(device.size_bytes, fs_bytes, read_only) {
            Growth::Fits => Ok(()),
            Growth::ReadOnly => {
                info!(
                    device = %device.path.display(),
                    fs_bytes,
                    device_bytes = device.size_bytes,
                    "the filesystem is smaller than its device; a read-only stage leaves it so"
                );
                Ok(())
            }
            Growth::Grow => {
                self.fs
                    .grow(
                        fs.into(),
                        &device.path,
                        staging,
                        self.config.timeouts.resize,
                    )
                    .await?;
                info!(
                    device = %device.path.display(),
                    from = fs_bytes,
                    to = device.size_bytes,
                    "grew a filesystem smaller than its device (a restore or clone to a larger size)"
                );
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn only_a_device_larger_by_a_mib_or_more_grows_its_filesystem() {
        assert_eq!(growth(GIB, GIB, false), Growth::Fits);
        // What a filesystem leaves unused at its end is not growth.
        assert_eq!(growth(GIB, GIB - GROW_THRESHOLD + 1, false), Growth::Fits);
        assert_eq!(growth(GIB, GIB - GROW_THRESHOLD, false), Growth::Grow);
        assert_eq!(growth(2 * GIB, GIB, false), Growth::Grow);
        assert_eq!(growth(2 * GIB, GIB, true), Growth::ReadOnly);
        // A filesystem larger than its device (a device not yet showing its
        // size) is never "grown" smaller.
        assert_eq!(growth(GIB, 2 * GIB, false), Growth::Fits);
    }
}
