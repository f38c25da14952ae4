//! Growing a filesystem to fill its (grown) device.
//!
//! Called after the node has rescanned the controller and seen the new size
//! (the target is not known to announce it; a filesystem grown before the
//! device shows its new size stays small). ext4 grows with `resize2fs <device>`, online
//! when mounted (this needs CAP_SYS_RESOURCE) or offline when not; XFS grows
//! only while mounted, with `xfs_growfs -d <mount point>`. Both are no-ops
//! when the filesystem already fills the device.

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use crate::{FsError, FsType, tool};

/// The program and arguments that grow `fs`, and the path they work on.
pub fn grow_command<'a>(
    fs: FsType,
    device: &'a Path,
    mount_point: &'a Path,
) -> (&'static str, Vec<&'a OsStr>, &'a Path) {
    match fs {
        FsType::Ext4 => ("resize2fs", vec![device.as_os_str()], device),
        FsType::Xfs => (
            "xfs_growfs",
            vec!["-d".as_ref(), mount_point.as_os_str()],
            mount_point,
        ),
    }
}

/// Grows the `fs` filesystem on `device`, mounted at `mount_point` (XFS must
/// be mounted; ext4 may be either), to the size of the device.
pub async fn grow(
    fs: FsType,
    device: &Path,
    mount_point: &Path,
    timeout: Duration,
) -> Result<(), FsError> {
    let (program, args, path) = grow_command(fs, device, mount_point);
    let output = tool::run(program, &args, timeout)
        .await
        .map_err(|source| FsError::Tool {
            path: path.to_path_buf(),
            source,
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(FsError::tool_failed(program, path, &output, hint(&stderr)));
    }
    tracing::info!(device = %device.display(), mount_point = %mount_point.display(), %fs, "grew filesystem");
    Ok(())
}

/// Advice for failures whose cause is known from the tool's message.
fn hint(stderr: &str) -> &'static str {
    if stderr.contains("Permission denied to resize filesystem") {
        "; growing a mounted ext4 filesystem needs CAP_SYS_RESOURCE: give the node plugin's container that capability"
    } else if stderr.contains("is not a mounted XFS filesystem") {
        "; XFS grows only while mounted: stage the volume first"
    } else if stderr.contains("Please run 'e2fsck -f") {
        "; resize2fs wants the unmounted filesystem checked first; mounting it and growing online avoids that"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(fs: FsType, expected: &str) {
        let (program, args, path) = grow_command(
            fs,
            Path::new("/dev/nvme1n1"),
            Path::new("/staging/globalmount"),
        );
        let args: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
        assert_eq!(
            format!("{program} {} @ {}", args.join(" "), path.display()),
            expected
        );
    }

    #[test]
    fn commands() {
        check(FsType::Ext4, "resize2fs /dev/nvme1n1 @ /dev/nvme1n1");
        check(
            FsType::Xfs,
            "xfs_growfs -d /staging/globalmount @ /staging/globalmount",
        );
    }

    #[test]
    fn known_failures_get_advice() {
        assert!(
            hint("resize2fs: Permission denied to resize filesystem\n")
                .contains("CAP_SYS_RESOURCE")
        );
        assert!(
            hint("xfs_growfs: /x is not a mounted XFS filesystem\n").contains("only while mounted")
        );
        assert_eq!(hint("something else"), "");
    }
}
