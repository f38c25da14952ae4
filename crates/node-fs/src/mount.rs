//! Mounting, bind mounting and unmounting, by system call.
//!
//! Nothing here spawns `mount(8)`: the options are split by
//! [`split_options`] and passed to `mount(2)` through rustix, so what the
//! kernel receives is exactly what the caller asked for, plus `MS_RDONLY` when
//! `read_only` says so.
//!
//! A bind mount ignores `MS_RDONLY` on Linux, so a read-only bind takes a
//! second call, `MS_REMOUNT|MS_BIND|MS_RDONLY`. That call sets every per-mount
//! flag at once, so it carries the flags the bind already has (`nosuid`,
//! `nodev`, `noexec`, the atime ones, read back with `statvfs`); without them
//! a read-only bind of a `nodev` mount would silently become `dev`. If the
//! second call fails, the bind is undone rather than left writable.
//!
//! A block volume is published by binding its device node onto a file (not
//! by binding devtmpfs, which caused a mount storm in another driver). `MS_RDONLY` on such a bind does not stop writes to the
//! device through the node: the device itself must be read-only for that.

mod options;

use std::ffi::CString;
use std::path::Path;

use rustix::fs::StatVfsMountFlags;
use rustix::io::Errno;
use rustix::mount::UnmountFlags;

pub use options::{MountFlags, flag_names, split_options};

use crate::error::os_error;
use crate::{FsError, FsType};

/// Mounts the `fs` filesystem on `device` at `target` (an existing directory)
/// with the CSI mount flags `options`, read-only if `read_only` (which wins
/// over an `rw` among the options).
pub fn mount(
    device: &Path,
    target: &Path,
    fs: FsType,
    options: &[String],
    read_only: bool,
) -> Result<(), FsError> {
    let (mut flags, items) = options::split(options);
    if let Some(item) = items.iter().find(|item| options::OPERATIONS.contains(item)) {
        return Err(FsError::InvalidOption {
            option: (*item).to_owned(),
            reason: "it names a kind of mount operation, not an option of the filesystem",
        });
    }
    if read_only {
        flags |= MountFlags::RDONLY;
    }
    let data = items.join(",");
    let c_data = CString::new(data.as_str()).map_err(|_| FsError::InvalidOption {
        option: data.clone(),
        reason: "it contains a NUL byte",
    })?;
    let c_data = (!data.is_empty()).then_some(c_data.as_c_str());
    rustix::mount::mount(device, target, fs.as_str(), flags, c_data).map_err(|errno| {
        FsError::Mount {
            device: device.to_path_buf(),
            target: target.to_path_buf(),
            fs_type: fs,
            flags: flag_names(flags),
            data: data.clone(),
            source: os_error(errno),
            hint: mount_hint(errno),
        }
    })?;
    tracing::info!(
        device = %device.display(),
        target = %target.display(),
        %fs,
        flags = %flag_names(flags),
        data,
        "mounted"
    );
    Ok(())
}

/// Bind-mounts `source` (a directory, or a device node or file) onto `target`
/// (of the same kind, existing), read-only if `read_only`. Not recursive:
/// mounts below `source` are not carried along.
pub fn bind(source: &Path, target: &Path, read_only: bool) -> Result<(), FsError> {
    rustix::mount::mount_bind(source, target).map_err(|errno| FsError::Bind {
        from: source.to_path_buf(),
        target: target.to_path_buf(),
        source: os_error(errno),
        hint: bind_hint(errno),
    })?;
    if read_only && let Err(errno) = remount_read_only(target) {
        let undone = rustix::mount::unmount(target, UnmountFlags::empty()).is_ok();
        return Err(FsError::ReadOnly {
            target: target.to_path_buf(),
            source: os_error(errno),
            undone,
        });
    }
    tracing::info!(
        source = %source.display(),
        target = %target.display(),
        read_only,
        "bind-mounted"
    );
    Ok(())
}

/// Unmounts the mount on top of `target`, not lazily. Returns `Ok(false)` if
/// nothing was mounted there (`target` is no mount point, or does not exist),
/// `Ok(true)` if something was unmounted. If mounts are stacked at `target`,
/// only the top one goes; call again until `Ok(false)` to remove them all.
pub fn unmount(target: &Path) -> Result<bool, FsError> {
    match rustix::mount::unmount(target, UnmountFlags::empty()) {
        Ok(()) => {
            tracing::info!(target = %target.display(), "unmounted");
            Ok(true)
        }
        // EINVAL: not a mount point (no flags are passed that could be invalid).
        Err(Errno::INVAL | Errno::NOENT) => Ok(false),
        Err(errno) => Err(FsError::Unmount {
            target: target.to_path_buf(),
            source: os_error(errno),
            hint: match errno {
                Errno::BUSY => {
                    "; it is in use: a process has a file open there, or something is mounted below it"
                }
                Errno::PERM => "; unmounting needs CAP_SYS_ADMIN (a privileged container)",
                _ => "",
            },
        }),
    }
}

/// Makes the bind mount at `target` read-only, keeping its other flags.
fn remount_read_only(target: &Path) -> Result<(), Errno> {
    let current = rustix::fs::statvfs(target)?.f_flag;
    rustix::mount::mount_remount(
        target,
        MountFlags::BIND | MountFlags::RDONLY | per_mount_flags(current),
        "",
    )
}

/// `ST_NOSYMFOLLOW`, which rustix does not name.
const ST_NOSYMFOLLOW: u64 = 0x2000;

/// The per-mount flags among `statvfs`'s, as `MS_*` flags. With no atime flag
/// set, the kernel keeps the mount's atime mode on remount.
fn per_mount_flags(current: StatVfsMountFlags) -> MountFlags {
    let pairs = [
        (StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
        (StatVfsMountFlags::NODEV, MountFlags::NODEV),
        (StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
        (StatVfsMountFlags::NOATIME, MountFlags::NOATIME),
        (StatVfsMountFlags::NODIRATIME, MountFlags::NODIRATIME),
        (StatVfsMountFlags::RELATIME, MountFlags::RELATIME),
        (
            StatVfsMountFlags::from_bits_retain(ST_NOSYMFOLLOW),
            MountFlags::NOSYMFOLLOW,
        ),
    ];
    pairs
        .into_iter()
        .filter(|(st, _)| current.contains(*st))
        .fold(MountFlags::empty(), |all, (_, ms)| all | ms)
}

fn mount_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::BUSY => "; the device or the mount point is busy (mounted elsewhere already?)",
        Errno::INVAL => {
            "; the device may not hold this filesystem, an option may be unknown to it, or its \
             superblock may be damaged: the kernel log (dmesg) says which"
        }
        Errno::NODEV => "; the kernel does not support this filesystem type (module not loaded?)",
        Errno::NOTBLK => "; the source is not a block device",
        Errno::NOENT => "; the device or the mount point does not exist",
        Errno::NOTDIR => "; the mount point is not a directory",
        Errno::ROFS | Errno::ACCESS => "; the device is read-only: mount it read-only",
        Errno::PERM => "; mounting needs CAP_SYS_ADMIN (a privileged container)",
        Errno::UCLEAN => "; the filesystem is corrupted: repair it with e2fsck or xfs_repair",
        Errno::IO => "; I/O error on the device: is it still connected?",
        _ => "",
    }
}

fn bind_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::NOENT => "; the source or the target does not exist",
        Errno::NOTDIR | Errno::ISDIR => {
            "; a directory binds onto a directory, and a file or device node onto a file"
        }
        Errno::PERM => "; mounting needs CAP_SYS_ADMIN (a privileged container)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_remount_keeps_per_mount_flags_only() {
        let current = StatVfsMountFlags::RDONLY
            | StatVfsMountFlags::NOSUID
            | StatVfsMountFlags::NODEV
            | StatVfsMountFlags::NOATIME
            | StatVfsMountFlags::SYNCHRONOUS
            | StatVfsMountFlags::MANDLOCK;
        assert_eq!(
            per_mount_flags(current),
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOATIME
        );
        assert_eq!(
            per_mount_flags(StatVfsMountFlags::from_bits_retain(ST_NOSYMFOLLOW)),
            MountFlags::NOSYMFOLLOW
        );
    }

    #[test]
    fn operations_are_refused_before_any_system_call() {
        for option in ["bind", "remount", "rshared"] {
            let result = mount(
                Path::new("/dev/null-no-such"),
                Path::new("/nonexistent-target"),
                FsType::Ext4,
                &["noatime".to_owned(), option.to_owned()],
                false,
            );
            assert!(
                matches!(&result, Err(FsError::InvalidOption { option: o, .. }) if o == option),
                "{result:?}"
            );
        }
    }

    #[test]
    fn a_nul_byte_is_refused() {
        let result = mount(
            Path::new("/dev/null-no-such"),
            Path::new("/nonexistent-target"),
            FsType::Xfs,
            &["a\0b".to_owned()],
            false,
        );
        assert!(
            matches!(result, Err(FsError::InvalidOption { .. })),
            "{result:?}"
        );
    }
}
