//! The errors of this crate: one enum, each message saying what to do next.
//!
//! [`NvmeError::is_transient`] tells the caller whether repeating the whole
//! operation later may succeed (the CSI layer maps that to `UNAVAILABLE`), which
//! is kept apart from errors that need a person to change something.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::sysfs::CtrlState;

/// Why [`crate::Host::connect_with_retry`] stopped trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GaveUp {
    /// The last failure was permanent: repeating it cannot help.
    Permanent,
    /// The next attempt would have started after the deadline.
    Deadline,
    /// The deadline came while an attempt was still inside the kernel. That
    /// attempt may still succeed; a later connect then reports
    /// [`crate::Connected::Already`].
    AttemptOverran,
}

impl fmt::Display for GaveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Permanent => "a permanent error",
            Self::Deadline => "the deadline came",
            Self::AttemptOverran => {
                "the deadline came during an attempt, which may still succeed in the kernel"
            }
        })
    }
}

/// An error of the NVMe host library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NvmeError {
    /// A value is malformed, or could inject an option into the connect string.
    #[error("invalid {field}: {reason}; fix the volume context or the plugin's configuration")]
    Invalid {
        /// Which value.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// A host identity file holds something unusable.
    #[error(
        "host identity file {path} is unusable: {reason}; fix it, or remove it to use another identity (targets that allow hosts by NQN must then be told)"
    )]
    BadIdentity {
        /// The file.
        path: PathBuf,
        /// What is wrong with its content.
        reason: String,
    },

    /// A host identity file could not be read or saved.
    #[error(
        "cannot {action} {path}: {source}; the node plugin needs /etc/nvme readable and its state directory writable"
    )]
    IdentityIo {
        /// What was being done ("read", "write", …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The target's host name could not be resolved to an address.
    #[error(
        "cannot resolve the target host name {host:?}: {reason}; check the node's DNS, or give the address as an IP address"
    )]
    Resolve {
        /// The host name.
        host: String,
        /// What the resolver said.
        reason: String,
    },

    /// The kernel refused a connect written to `/dev/nvme-fabrics`.
    #[error("connecting to {target} failed: {source}; {hint}")]
    Connect {
        /// The subsystem and address, for people.
        target: String,
        /// The raw errno, when the failure had one.
        errno: Option<i32>,
        /// Whether repeating the connect may succeed (see `fabrics::classify_errno`).
        transient: bool,
        /// What to do about it.
        hint: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// `/dev/nvme-fabrics` accepted the options but answered something other
    /// than `instance=N,cntlid=M`.
    #[error(
        "/dev/nvme-fabrics answered {reply:?} instead of instance=N,cntlid=M; the controller may exist: connect again (it then reports Already) or look at the kernel log"
    )]
    BadReply {
        /// What the kernel answered.
        reply: String,
    },

    /// [`crate::Host::connect_with_retry`] stopped trying.
    #[error("connecting to {target}: gave up after {attempts} attempt(s) ({why}); last error{}: {}", errno_note(.last_errno), last_note(.last))]
    ConnectGaveUp {
        /// The subsystem and address, for people.
        target: String,
        /// How many connects were written.
        attempts: u32,
        /// Why it stopped.
        why: GaveUp,
        /// The errno of the last failure, if it had one.
        last_errno: Option<i32>,
        /// The last failure, if an attempt finished.
        last: Option<Box<NvmeError>>,
    },

    /// The kernel log could not be read.
    #[error(
        "cannot read the kernel log {path}: {source}; the node plugin needs the host's /dev and may need CAP_SYSLOG"
    )]
    KernelLog {
        /// The log device.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A sysfs file could not be read.
    #[error("cannot read {path}: {source}; the node plugin needs the host's /sys")]
    SysfsRead {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A sysfs file could not be written.
    #[error(
        "cannot write {path}: {source}; the node plugin must run privileged with the host's /sys mounted read-write"
    )]
    SysfsWrite {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A sysfs file holds text this library does not understand.
    #[error(
        "unexpected content {text:?} in {path}; this kernel's sysfs is not understood, please report it"
    )]
    BadSysfs {
        /// The file.
        path: PathBuf,
        /// What it held.
        text: String,
    },

    /// No usable block device appeared before the deadline.
    #[error(
        "no block device for {nqn} by the deadline: {seen}; check that the volume is exported with a namespace and that the controller is live"
    )]
    NoBlockDevice {
        /// The subsystem NQN.
        nqn: String,
        /// What was seen last.
        seen: String,
    },

    /// Controllers of the NQN were still present at the deadline of a disconnect.
    #[error("{nqn} still has controller(s) {remaining} at the deadline{}; make sure nothing uses its device any more, then try again", last_note_suffix(.last_write_error))]
    DisconnectTimedOut {
        /// The subsystem NQN.
        nqn: String,
        /// The controllers left, with their states, e.g. `nvme0 (deleting)`.
        remaining: String,
        /// The last error of writing `delete_controller`, if any.
        last_write_error: Option<Box<NvmeError>>,
    },

    /// No controller of the NQN is live, so it cannot be rescanned.
    #[error("{nqn} has no live controller (best state: {}); rescan after it reconnects", state_note(.state))]
    NotLive {
        /// The subsystem NQN.
        nqn: String,
        /// The best state seen, `None` if not connected at all.
        state: Option<CtrlState>,
    },

    /// A blocking helper task panicked or was cancelled.
    #[error("a blocking task failed: {0}; this is a bug in nvme-host")]
    Task(String),
}

impl NvmeError {
    /// Whether repeating the whole operation later may succeed without anyone
    /// changing anything (a target that is not there yet, a slow disconnect).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { transient, .. } => *transient,
            Self::ConnectGaveUp { why, .. } => *why != GaveUp::Permanent,
            Self::Resolve { .. }
            | Self::NoBlockDevice { .. }
            | Self::DisconnectTimedOut { .. }
            | Self::NotLive { .. } => true,
            Self::Invalid { .. }
            | Self::BadIdentity { .. }
            | Self::IdentityIo { .. }
            | Self::BadReply { .. }
            | Self::SysfsRead { .. }
            | Self::KernelLog { .. }
            | Self::SysfsWrite { .. }
            | Self::BadSysfs { .. }
            | Self::Task(_) => false,
        }
    }

    /// The errno of a connect failure (the last one, after retries).
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Connect { errno, .. } => *errno,
            Self::ConnectGaveUp { last_errno, .. } => *last_errno,
            _ => None,
        }
    }
}

fn errno_note(errno: &Option<i32>) -> String {
    errno.map(|e| format!(" (errno {e})")).unwrap_or_default()
}

fn last_note(last: &Option<Box<NvmeError>>) -> String {
    match last {
        Some(e) => e.to_string(),
        None => "none finished".to_owned(),
    }
}

fn last_note_suffix(last: &Option<Box<NvmeError>>) -> String {
    last.as_ref()
        .map(|e| format!(" (last delete error: {e})"))
        .unwrap_or_default()
}

fn state_note(state: &Option<CtrlState>) -> String {
    match state {
        Some(s) => s.to_string(),
        None => "not connected".to_owned(),
    }
}
