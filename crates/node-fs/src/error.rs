//! The crate's error type.
//!
//! Every variant names the device or path it is about and keeps what the kernel
//! or the tool said, so a message that reaches a user (through a CSI error and
//! `kubectl describe`) says what failed, where, and usually what to do. The CSI
//! service maps these to gRPC codes; [`FsError::is_transient`] tells it which
//! ones are worth retrying unchanged.

use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Output};
use std::time::Duration;

use rustix::io::Errno;

use crate::FsType;
use crate::probe::Probe;
use crate::tool::ToolError;

/// Longest tool output kept in an error. The tail is kept: tools print the
/// reason last.
const MAX_OUTPUT: usize = 2000;

/// An error of the node's filesystem work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    /// The filesystem type is not one this driver supports.
    #[error("unsupported filesystem type {0:?}: this driver formats and mounts only ext4 and xfs")]
    UnsupportedFsType(String),

    /// An external program could not be run to completion: it is missing, could
    /// not be started, or timed out.
    #[error("{path}: {source}")]
    Tool {
        /// The device or mount point the program was working on.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: ToolError,
    },

    /// An external program ran and reported failure.
    #[error("`{program}` failed on {path} ({status}): {output}{hint}")]
    ToolFailed {
        /// The program.
        program: &'static str,
        /// The device or mount point it was working on.
        path: PathBuf,
        /// How it exited.
        status: ExitStatus,
        /// What it printed (standard error, or standard output if that was
        /// empty), lines joined with `; `, the last 2000 bytes at most.
        output: String,
        /// Advice for a known cause, starting with `; `, or empty.
        hint: &'static str,
    },

    /// `blkid`'s answer was not a definite one. Such a device is never formatted.
    #[error("cannot tell what {device} holds, so it is left alone: {reason}")]
    Probe {
        /// The device.
        device: PathBuf,
        /// Why the answer was not definite, with `blkid`'s output.
        reason: String,
    },

    /// A filesystem's superblock could not be read as one of its type.
    #[error(
        "cannot read the size of the {fs} filesystem on {device}: its superblock is not one of {fs}"
    )]
    Superblock {
        /// The device.
        device: PathBuf,
        /// The filesystem expected there.
        fs: FsType,
    },

    /// A device to be formatted is not empty.
    #[error("refusing to format {device}: it holds {found}")]
    NotEmpty {
        /// The device.
        device: PathBuf,
        /// What the probe found.
        found: Probe,
    },

    /// A device path does not name a block device.
    #[error("{path} is not a block device")]
    NotBlockDevice {
        /// The path.
        path: PathBuf,
    },

    /// Opening, reading or examining a file or device failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done, e.g. `reading`.
        op: &'static str,
        /// The file or device.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// Reading a device did not finish in time. The reading thread stays
    /// blocked until the kernel gives up on the I/O.
    #[error("{op} {path} did not finish within {timeout:?}; the device may be unreachable")]
    Timeout {
        /// What was being done.
        op: &'static str,
        /// The device.
        path: PathBuf,
        /// The limit.
        timeout: Duration,
    },

    /// A line of `/proc/self/mountinfo` could not be read.
    #[error("mountinfo line {line}: {reason}")]
    MountInfo {
        /// The line number, from 1.
        line: usize,
        /// What was wrong with it.
        reason: String,
    },

    /// A sysfs attribute held something unexpected.
    #[error("{path}: unexpected contents {contents:?}, expected {expected}")]
    BadSysfsValue {
        /// The attribute's file.
        path: PathBuf,
        /// What it held.
        contents: String,
        /// What was expected instead.
        expected: &'static str,
    },

    /// A mount option that cannot be passed to the kernel.
    #[error("mount option {option:?} is not accepted: {reason}")]
    InvalidOption {
        /// The option.
        option: String,
        /// Why not.
        reason: &'static str,
    },

    /// `mount(2)` of a filesystem failed.
    #[error(
        "mounting {device} on {target} as {fs_type} (flags {flags}, options {data:?}) failed: {source}{hint}"
    )]
    Mount {
        /// The block device.
        device: PathBuf,
        /// The mount point.
        target: PathBuf,
        /// The filesystem type.
        fs_type: FsType,
        /// The mount flags, as names.
        flags: String,
        /// The filesystem's option string.
        data: String,
        /// The kernel's error.
        #[source]
        source: io::Error,
        /// Advice for the error, starting with `; `, or empty.
        hint: &'static str,
    },

    /// A bind mount failed.
    #[error("bind-mounting {from} on {target} failed: {source}{hint}")]
    Bind {
        /// What was to be bound.
        from: PathBuf,
        /// Where.
        target: PathBuf,
        /// The kernel's error.
        #[source]
        source: io::Error,
        /// Advice for the error, starting with `; `, or empty.
        hint: &'static str,
    },

    /// A bind mount was made but could not be made read-only.
    #[error("making the bind mount on {target} read-only failed: {source}; {}",
        if *.undone { "the bind mount was undone" } else { "the bind mount could NOT be undone and is writable" })]
    ReadOnly {
        /// The bind mount's target.
        target: PathBuf,
        /// The kernel's error.
        #[source]
        source: io::Error,
        /// Whether the writable bind mount was unmounted again.
        undone: bool,
    },

    /// `umount2(2)` failed.
    #[error("unmounting {target} failed: {source}{hint}")]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The kernel's error.
        #[source]
        source: io::Error,
        /// Advice for the error, starting with `; `, or empty.
        hint: &'static str,
    },
}

impl FsError {
    /// Whether the same call may succeed later without anything being changed:
    /// a timeout, a device that is not answering yet, a busy mount. Everything
    /// else (a bad request, a missing tool, a volume holding something
    /// unexpected) needs a person or a different request.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Tool { source, .. } => {
                matches!(source, ToolError::Timeout { .. } | ToolError::Wait { .. })
            }
            Self::Probe { .. } | Self::Io { .. } | Self::Timeout { .. } => true,
            Self::Mount { source, .. }
            | Self::Bind { source, .. }
            | Self::Unmount { source, .. } => {
                matches!(
                    source.raw_os_error().map(Errno::from_raw_os_error),
                    Some(Errno::BUSY | Errno::AGAIN | Errno::INTR | Errno::IO)
                )
            }
            _ => false,
        }
    }

    /// The error for a tool that exited unsuccessfully.
    pub(crate) fn tool_failed(
        program: &'static str,
        path: impl Into<PathBuf>,
        output: &Output,
        hint: &'static str,
    ) -> Self {
        Self::ToolFailed {
            program,
            path: path.into(),
            status: output.status,
            output: summarize_output(output),
            hint,
        }
    }
}

/// Standard error, or standard output if that is empty, on one line and cut
/// to its last [`MAX_OUTPUT`] bytes.
pub(crate) fn summarize_output(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let text = if stderr.trim().is_empty() {
        String::from_utf8_lossy(&output.stdout)
    } else {
        stderr
    };
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if joined.is_empty() {
        return "no output".to_owned();
    }
    if joined.len() <= MAX_OUTPUT {
        return joined;
    }
    let mut start = joined.len() - MAX_OUTPUT;
    while !joined.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &joined[start..])
}

/// Converts a rustix error to the standard one kept in errors.
pub(crate) fn os_error(errno: Errno) -> io::Error {
    io::Error::from_raw_os_error(errno.raw_os_error())
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    fn output(stdout: &str, stderr: &str) -> Output {
        Output {
            status: ExitStatus::from_raw(1 << 8),
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    #[test]
    fn tool_output_is_one_line_and_prefers_stderr() {
        assert_eq!(
            summarize_output(&output("out\n", "first\n\n second \n")),
            "first; second"
        );
        assert_eq!(
            summarize_output(&output("only stdout\n", " \n")),
            "only stdout"
        );
        assert_eq!(summarize_output(&output("", "")), "no output");
    }

    #[test]
    fn long_tool_output_keeps_its_end() {
        let long = format!("{}THE REASON", "é".repeat(3000));
        let summary = summarize_output(&output("", &long));
        assert!(summary.ends_with("THE REASON"));
        assert!(summary.len() <= MAX_OUTPUT + "…".len());
    }

    #[test]
    fn tool_failure_message_names_program_path_status_and_output() {
        let err = FsError::tool_failed("mkfs.xfs", "/dev/loop9", &output("", "no space\n"), "");
        assert_eq!(
            err.to_string(),
            "`mkfs.xfs` failed on /dev/loop9 (exit status: 1): no space"
        );
    }

    #[test]
    fn busy_is_transient_and_invalid_is_not() {
        let unmount = |errno: Errno| FsError::Unmount {
            target: "/x".into(),
            source: os_error(errno),
            hint: "",
        };
        assert!(unmount(Errno::BUSY).is_transient());
        assert!(!unmount(Errno::PERM).is_transient());
        assert!(!FsError::UnsupportedFsType("zfs".into()).is_transient());
    }
}
