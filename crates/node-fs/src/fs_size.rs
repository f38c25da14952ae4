//! How large a filesystem is, read from its superblock.
//!
//! A volume restored from a snapshot or cloned into a larger size holds a
//! filesystem of its source's size on a larger device; the node grows it
//! when it stages the volume, and must first know that it is smaller than
//! its device. The superblock says so without any tool:
//!
//! - ext4: the superblock is at byte 1024, little-endian; the block count is
//!   `s_blocks_count_lo` (offset 4) with `s_blocks_count_hi` (offset 0x150)
//!   when the `64bit` feature (0x80 of `s_feature_incompat`, offset 0x60) is
//!   on, the block size `1024 << s_log_block_size` (offset 24), the magic
//!   0xEF53 at offset 0x38.
//! - XFS: the superblock is at byte 0, big-endian; the magic `XFSB`, the
//!   block size `sb_blocksize` (offset 4) and the data blocks `sb_dblocks`
//!   (offset 8). The log inside the data section counts as part of it.
//!
//! The parsers are pure ([`ext4_bytes`], [`xfs_bytes`]); [`size`] reads the
//! bytes from the device with a timeout (a device whose target is gone must
//! not hang the node).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use crate::probe::blocking;
use crate::{FsError, FsType};

/// Bytes read from the start of the device: enough for both superblocks.
const HEAD: usize = 2048;

/// Where ext4's superblock starts.
const EXT4_OFFSET: usize = 1024;

/// The size in bytes of the ext4 filesystem whose first [`HEAD`] bytes are
/// `head`, if they hold an ext4 superblock.
pub fn ext4_bytes(head: &[u8]) -> Option<u64> {
    let sb = head.get(EXT4_OFFSET..EXT4_OFFSET + 1024)?;
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(sb.get(at..at + 4)?.try_into().ok()?))
    };
    let magic = u16::from_le_bytes(sb.get(0x38..0x3a)?.try_into().ok()?);
    if magic != 0xEF53 {
        return None;
    }
    let log_block_size = u32_at(24)?;
    if log_block_size > 6 {
        // Blocks of more than 64 KiB: not a superblock ext4 would write.
        return None;
    }
    let block_size = 1024_u64 << log_block_size;
    let mut blocks = u64::from(u32_at(4)?);
    if u32_at(0x60)? & 0x80 != 0 {
        blocks |= u64::from(u32_at(0x150)?) << 32;
    }
    blocks.checked_mul(block_size)
}

/// The size in bytes of the XFS filesystem whose first bytes are `head`, if
/// they hold an XFS superblock.
pub fn xfs_bytes(head: &[u8]) -> Option<u64> {
    if head.get(0..4)? != b"XFSB" {
        return None;
    }
    let block_size = u32::from_be_bytes(head.get(4..8)?.try_into().ok()?);
    let blocks = u64::from_be_bytes(head.get(8..16)?.try_into().ok()?);
    if !(512..=65536).contains(&block_size) || !block_size.is_power_of_two() {
        return None;
    }
    blocks.checked_mul(u64::from(block_size))
}

/// The size in bytes of the `fs` filesystem on `device`, from its
/// superblock, within `timeout`.
pub async fn size(fs: FsType, device: &Path, timeout: Duration) -> Result<u64, FsError> {
    let deadline = Instant::now() + timeout;
    let path = device.to_path_buf();
    let head = blocking("reading", device, timeout, deadline, move || {
        let io_error = |source| FsError::Io {
            op: "reading",
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io_error)?;
        let mut head = vec![0u8; HEAD];
        file.read_exact_at(&mut head, 0).map_err(io_error)?;
        Ok(head)
    })
    .await?;
    let parsed = match fs {
        FsType::Ext4 => ext4_bytes(&head),
        FsType::Xfs => xfs_bytes(&head),
    };
    parsed.ok_or_else(|| FsError::Superblock {
        device: device.to_path_buf(),
        fs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ext4 superblock as mkfs writes one: `blocks` blocks of
    /// `1024 << log` bytes, with the `64bit` feature when `hi` is given.
    fn ext4(blocks_lo: u32, log: u32, hi: Option<u32>) -> Vec<u8> {
        let mut head = vec![0u8; HEAD];
        let sb = &mut head[EXT4_OFFSET..];
        sb[4..8].copy_from_slice(&blocks_lo.to_le_bytes());
        sb[24..28].copy_from_slice(&log.to_le_bytes());
        sb[0x38..0x3a].copy_from_slice(&0xEF53_u16.to_le_bytes());
        if let Some(hi) = hi {
            sb[0x60..0x64].copy_from_slice(&0x2c2_u32.to_le_bytes());
            sb[0x150..0x154].copy_from_slice(&hi.to_le_bytes());
        } else {
            sb[0x60..0x64].copy_from_slice(&0x242_u32.to_le_bytes());
            // Without the feature, whatever is there is not read.
            sb[0x150..0x154].copy_from_slice(&7_u32.to_le_bytes());
        }
        head
    }

    fn xfs(block_size: u32, blocks: u64) -> Vec<u8> {
        let mut head = vec![0u8; HEAD];
        head[0..4].copy_from_slice(b"XFSB");
        head[4..8].copy_from_slice(&block_size.to_be_bytes());
        head[8..16].copy_from_slice(&blocks.to_be_bytes());
        head
    }

    #[test]
    fn ext4_sizes() {
        // 1 GiB of 4 KiB blocks.
        assert_eq!(ext4_bytes(&ext4(262_144, 2, Some(0))), Some(1 << 30));
        // 64 MiB of 1 KiB blocks, without the 64bit feature.
        assert_eq!(ext4_bytes(&ext4(65_536, 0, None)), Some(64 << 20));
        // 20 TiB: the high word counts.
        assert_eq!(
            ext4_bytes(&ext4(0x4000_0000, 2, Some(1))),
            Some(((1_u64 << 32) + 0x4000_0000) * 4096)
        );
        let mut other = ext4(262_144, 2, Some(0));
        other[EXT4_OFFSET + 0x38] = 0;
        assert_eq!(ext4_bytes(&other), None, "no magic");
        assert_eq!(
            ext4_bytes(&ext4(1, 7, None)),
            None,
            "a block size ext4 never has"
        );
        assert_eq!(ext4_bytes(&[0u8; 100]), None, "too short");
        assert_eq!(ext4_bytes(&xfs(4096, 100)), None);
    }

    #[test]
    fn xfs_sizes() {
        assert_eq!(xfs_bytes(&xfs(4096, 262_144)), Some(1 << 30));
        assert_eq!(xfs_bytes(&xfs(512, 3)), Some(1536));
        assert_eq!(xfs_bytes(&xfs(3000, 1)), None, "not a power of two");
        assert_eq!(xfs_bytes(&xfs(4096, u64::MAX)), None, "overflow");
        assert_eq!(xfs_bytes(&ext4(262_144, 2, None)), None);
        assert_eq!(xfs_bytes(b"XFS"), None);
    }
}
