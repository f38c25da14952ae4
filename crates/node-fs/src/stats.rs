//! How full a filesystem is, and how large a block device is.
//!
//! [`fs_stats`] answers NodeGetVolumeStats for a mounted volume; [`block_size`]
//! answers it for a block volume and tells expansion when the device has
//! grown. Sizes come from sysfs under an injected root, so tests can build the
//! tree in a temporary directory.

use std::path::{Path, PathBuf};

use crate::FsError;
use crate::error::os_error;

/// Usage of a mounted filesystem, from `statvfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    /// Size of the filesystem's data area.
    pub total_bytes: u64,
    /// Bytes an unprivileged user can still write (excludes reserved blocks).
    pub available_bytes: u64,
    /// Bytes in use: total minus free (reserved blocks count as free).
    pub used_bytes: u64,
    /// Inodes in total (XFS makes more as it needs them, so this changes).
    pub total_inodes: u64,
    /// Inodes free.
    pub free_inodes: u64,
    /// Inodes in use.
    pub used_inodes: u64,
}

/// The usage of the filesystem that holds `path`.
pub fn fs_stats(path: &Path) -> Result<FsStats, FsError> {
    let stat = rustix::fs::statvfs(path).map_err(|errno| FsError::Io {
        op: "statvfs",
        path: path.to_path_buf(),
        source: os_error(errno),
    })?;
    let bytes = |blocks: u64| blocks.saturating_mul(stat.f_frsize);
    Ok(FsStats {
        total_bytes: bytes(stat.f_blocks),
        available_bytes: bytes(stat.f_bavail),
        used_bytes: bytes(stat.f_blocks.saturating_sub(stat.f_bfree)),
        total_inodes: stat.f_files,
        free_inodes: stat.f_ffree,
        used_inodes: stat.f_files.saturating_sub(stat.f_ffree),
    })
}

/// The size in bytes of the block device `device` (e.g. `/dev/nvme1n1`, or a
/// symbolic link to it), from `<sys_root>/class/block/<name>/size`, which
/// counts 512-byte sectors whatever the device's block size.
pub fn block_size(sys_root: &Path, device: &Path) -> Result<u64, FsError> {
    let device = resolve_link(device)?;
    let name = device.file_name().ok_or_else(|| FsError::NotBlockDevice {
        path: device.clone(),
    })?;
    let path = sys_root.join("class/block").join(name).join("size");
    let text = std::fs::read_to_string(&path).map_err(|source| FsError::Io {
        op: "reading",
        path: path.clone(),
        source,
    })?;
    parse_sectors(&text).ok_or(FsError::BadSysfsValue {
        path,
        contents: text,
        expected: "a number of 512-byte sectors",
    })
}

/// Bytes in the sysfs `size` attribute's text, if it is a whole number of
/// sectors that fits in 64 bits of bytes.
fn parse_sectors(text: &str) -> Option<u64> {
    text.trim().parse::<u64>().ok()?.checked_mul(512)
}

/// `device` with a symbolic link (as under `/dev/disk/by-id`) resolved, so the
/// kernel's name is looked up; other paths unchanged.
fn resolve_link(device: &Path) -> Result<PathBuf, FsError> {
    match std::fs::symlink_metadata(device) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::canonicalize(device).map_err(|source| FsError::Io {
                op: "resolving",
                path: device.to_path_buf(),
                source,
            })
        }
        _ => Ok(device.to_path_buf()),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn sectors_are_parsed_strictly() {
        assert_eq!(parse_sectors("2097152\n"), Some(1 << 30));
        assert_eq!(parse_sectors("0\n"), Some(0));
        for bad in ["", "-1", "12 34", "0x10", "36028797018963968"] {
            assert_eq!(parse_sectors(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn size_is_read_from_the_injected_sysfs() -> Result<(), Box<dyn std::error::Error>> {
        let sys = tempfile::tempdir()?;
        let attr = sys.path().join("class/block/nvme1n1");
        fs::create_dir_all(&attr)?;
        fs::write(attr.join("size"), "20971520\n")?;
        assert_eq!(block_size(sys.path(), Path::new("/dev/nvme1n1"))?, 10 << 30);

        // A link under /dev/disk/by-id is followed to the kernel name.
        let dev = tempfile::tempdir()?;
        fs::write(dev.path().join("nvme1n1"), "")?;
        std::os::unix::fs::symlink(dev.path().join("nvme1n1"), dev.path().join("by-id"))?;
        assert_eq!(block_size(sys.path(), &dev.path().join("by-id"))?, 10 << 30);
        Ok(())
    }

    #[test]
    fn a_missing_or_garbled_size_is_an_error_naming_the_file()
    -> Result<(), Box<dyn std::error::Error>> {
        let sys = tempfile::tempdir()?;
        let err = block_size(sys.path(), Path::new("/dev/nvme9n9")).err();
        assert!(
            matches!(err, Some(FsError::Io { op: "reading", .. })),
            "{err:?}"
        );

        let attr = sys.path().join("class/block/nvme9n9");
        fs::create_dir_all(&attr)?;
        fs::write(attr.join("size"), "lots\n")?;
        let text = block_size(sys.path(), Path::new("/dev/nvme9n9"))
            .err()
            .map(|e| e.to_string());
        assert!(
            text.as_deref()
                .unwrap_or_default()
                .contains("nvme9n9/size: unexpected contents \"lots\\n\""),
            "{text:?}"
        );

        assert!(block_size(sys.path(), Path::new("/")).is_err());
        Ok(())
    }

    #[test]
    fn stats_of_the_root_filesystem_add_up() -> Result<(), FsError> {
        let stats = fs_stats(Path::new("/"))?;
        assert!(stats.total_bytes > 0);
        assert!(stats.used_bytes <= stats.total_bytes);
        assert!(stats.available_bytes <= stats.total_bytes);
        assert_eq!(stats.used_inodes + stats.free_inodes, stats.total_inodes);
        Ok(())
    }
}
