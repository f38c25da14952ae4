//! Making a filesystem on an empty device.
//!
//! `mkfs` runs without its force flag, but that alone does not protect a
//! volume: `mkfs.xfs` without `-f` refuses a device with a signature, while
//! `mkfs.ext4` without `-F` asks only when standard input and output are a
//! terminal, and otherwise overwrites an existing filesystem without a word
//! (e2fsprogs 1.47, checked on this machine). So [`mkfs`] probes the device
//! itself right before formatting and refuses unless the probe says
//! [`Probe::Empty`], even if the caller has just probed it.
//!
//! Neither tool discards (`-E nodiscard`, `-K`): a new volume is already empty,
//! and discarding a large one over the network is slow.

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use crate::probe::{self, Probe};
use crate::{FsError, FsType, tool};

/// The program and arguments that make `fs` on `device`.
pub fn mkfs_command(fs: FsType, device: &Path) -> (&'static str, Vec<&OsStr>) {
    let device = device.as_os_str();
    match fs {
        FsType::Ext4 => (
            "mkfs.ext4",
            vec!["-E".as_ref(), "nodiscard".as_ref(), "-q".as_ref(), device],
        ),
        FsType::Xfs => ("mkfs.xfs", vec!["-K".as_ref(), "-q".as_ref(), device]),
    }
}

/// What [`format_if_empty`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// The device was empty and now holds a new filesystem.
    Formatted,
    /// The device was not empty and was left alone; this is what it holds.
    Existing(Probe),
}

/// Makes an `fs` filesystem on `device`, which must probe as empty. `timeout`
/// bounds the whole call, probe and mkfs together.
pub async fn mkfs(device: &Path, fs: FsType, timeout: Duration) -> Result<(), FsError> {
    match format_if_empty(device, fs, timeout).await? {
        Prepared::Formatted => Ok(()),
        Prepared::Existing(found) => Err(FsError::NotEmpty {
            device: device.to_path_buf(),
            found,
        }),
    }
}

/// Probes `device` once and makes an `fs` filesystem only if the probe says
/// [`Probe::Empty`]; otherwise reports what is there and changes nothing.
/// For a caller that must decide on the probe's answer anyway (stage), this
/// is [`mkfs`] without a second probe. `timeout` bounds probe and mkfs.
pub async fn format_if_empty(
    device: &Path,
    fs: FsType,
    timeout: Duration,
) -> Result<Prepared, FsError> {
    let deadline = Instant::now() + timeout;
    match probe::probe(device, timeout).await? {
        Probe::Empty => {}
        found => return Ok(Prepared::Existing(found)),
    }
    make(device, fs, deadline).await?;
    tracing::info!(device = %device.display(), %fs, "made a filesystem");
    Ok(Prepared::Formatted)
}

/// Runs mkfs of `fs` on `device`, by `deadline`.
async fn make(device: &Path, fs: FsType, deadline: Instant) -> Result<(), FsError> {
    let (program, args) = mkfs_command(fs, device);
    let remaining = deadline.saturating_duration_since(Instant::now());
    let output = tool::run(program, &args, remaining)
        .await
        .map_err(|source| FsError::Tool {
            path: device.to_path_buf(),
            source,
        })?;
    if !output.status.success() {
        return Err(FsError::tool_failed(program, device, &output, ""));
    }
    Ok(())
}

/// Makes an `fs` filesystem on `device` unless `blkid` finds any signature
/// there, for the opened mapping of a LUKS volume this driver formatted and
/// has handed to no one yet: its plaintext is noise (the decryption of
/// whatever the disk held), so the zero check of [`probe::probe`] could
/// never pass, and only a signature (a filesystem made by an earlier,
/// interrupted stage) counts. What was found instead comes back as
/// [`Prepared::Existing`], untouched. `timeout` bounds probe and mkfs.
pub async fn format_fresh(
    device: &Path,
    fs: FsType,
    timeout: Duration,
) -> Result<Prepared, FsError> {
    let deadline = Instant::now() + timeout;
    match probe::signature(device, timeout).await? {
        Probe::Empty => {}
        found => return Ok(Prepared::Existing(found)),
    }
    make(device, fs, deadline).await?;
    tracing::info!(device = %device.display(), %fs, "made a filesystem on a fresh encrypted volume");
    Ok(Prepared::Formatted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(fs: FsType, expected: &str) {
        let (program, args) = mkfs_command(fs, Path::new("/dev/nvme1n1"));
        let args: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
        assert_eq!(format!("{program} {}", args.join(" ")), expected);
    }

    #[test]
    fn commands_neither_force_nor_discard() {
        check(FsType::Ext4, "mkfs.ext4 -E nodiscard -q /dev/nvme1n1");
        check(FsType::Xfs, "mkfs.xfs -K -q /dev/nvme1n1");
    }
}
