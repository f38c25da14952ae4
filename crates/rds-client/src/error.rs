//! Errors of talking to the RDS.
//!
//! Every variant says whether the command may have taken effect, so that callers
//! can tell "it failed" from "we do not know" — the second must be answered by
//! retrying an idempotent operation, never by assuming either outcome.

use std::time::Duration;

use routeros::{CliError, CliErrorKind, ValueError};

/// An error from the RDS client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value was refused by the command builder; nothing was sent.
    #[error("invalid value: {0}")]
    InvalidValue(#[from] ValueError),

    /// The private key could not be loaded.
    #[error("cannot load SSH private key {path}: {reason}")]
    Key {
        /// The key file.
        path: String,
        /// What went wrong.
        reason: String,
    },

    /// The host key pin could not be read.
    #[error(
        "invalid host key pin {pin:?}: expected an OpenSSH public key line (\"ssh-ed25519 AAAA…\") or a fingerprint (\"SHA256:…\")"
    )]
    HostKeyPin {
        /// The text given.
        pin: String,
    },

    /// The TCP connection or the SSH handshake failed.
    #[error("cannot connect to the RDS at {address}: {reason}")]
    Connect {
        /// `host:port`.
        address: String,
        /// What went wrong.
        reason: String,
    },

    /// The server's host key is not the pinned one. Possibly a different device,
    /// possibly an attack; never connected past this point.
    #[error(
        "host key of the RDS at {address} is {actual}, but {expected} is pinned; if the RDS's key was changed on purpose, update the pinned key"
    )]
    HostKeyMismatch {
        /// `host:port`.
        address: String,
        /// The pinned key or fingerprint.
        expected: String,
        /// The fingerprint the server presented.
        actual: String,
    },

    /// The server refused the private key.
    #[error(
        "the RDS at {address} refused public-key authentication for user {user:?}; add the driver's public key to that RouterOS user (/user ssh-keys import)"
    )]
    AuthRejected {
        /// `host:port`.
        address: String,
        /// The login name, without suffix.
        user: String,
    },

    /// The RDS was unreachable recently and the client is backing off; nothing
    /// was sent.
    #[error("the RDS is unavailable ({last_error}); next connection attempt in {retry_in:?}")]
    Unavailable {
        /// The error of the last connection attempt.
        last_error: String,
        /// Time until the client tries again.
        retry_in: Duration,
    },

    /// The connection broke while a command was in flight.
    #[error("connection to the RDS lost during a command ({detail}); {}", outcome_text(*.outcome_unknown))]
    ConnectionLost {
        /// Whether the command may have run.
        outcome_unknown: bool,
        /// What was observed.
        detail: String,
    },

    /// The command did not finish in time. It may still run on the RDS.
    #[error("RouterOS command did not finish within {after:?}; it may still complete on the RDS")]
    Timeout {
        /// The timeout that fired.
        after: Duration,
    },

    /// RouterOS printed an error.
    #[error(transparent)]
    RouterOs(#[from] CliError),

    /// RouterOS printed something this client cannot read. Never guessed at.
    #[error("cannot read RouterOS output of {what}: {reason}; output was: {output:?}")]
    UnexpectedOutput {
        /// Which operation.
        what: &'static str,
        /// What was wrong.
        reason: String,
        /// The output, shortened.
        output: String,
    },

    /// No disk has this slot.
    #[error("volume {slot} does not exist on the RDS")]
    VolumeNotFound {
        /// The slot.
        slot: String,
    },

    /// No pool is mounted at this name.
    #[error(
        "no storage pool is mounted at {pool:?} on the RDS; the volume path must start with a pool's mount point"
    )]
    PoolNotFound {
        /// The first segment of the volume path.
        pool: String,
    },

    /// A size above what RouterOS can hold was asked for; nothing was sent.
    #[error(
        "volume {slot}: {size} bytes is more than the largest size RouterOS takes ({max} bytes, the largest whole MiB in a signed 64-bit number)"
    )]
    SizeOutOfRange {
        /// The slot.
        slot: String,
        /// The size asked for.
        size: u64,
        /// [`routeros::MAX_SIZE`].
        max: u64,
    },

    /// The image path of a new volume holds something that is not a regular
    /// file (a folder, say); it was left in place.
    #[error(
        "the image path {path} on the RDS holds something that is not a regular file; it was left in place: remove or rename it, or use another volumePath"
    )]
    NotAFile {
        /// The image path.
        path: String,
    },

    /// A volume operation found the disk but not as asked.
    #[error("volume {slot}: {reason}")]
    Conflict {
        /// The slot.
        slot: String,
        /// What does not match.
        reason: String,
    },
}

fn outcome_text(unknown: bool) -> &'static str {
    if unknown {
        "it may or may not have taken effect"
    } else {
        "it was not sent"
    }
}

impl Error {
    /// The RouterOS error kind, when RouterOS reported the error.
    pub fn cli_kind(&self) -> Option<CliErrorKind> {
        match self {
            Self::RouterOs(e) => Some(e.kind),
            _ => None,
        }
    }

    /// Whether the error is about reaching the RDS (as opposed to what it said).
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::Unavailable { .. }
                | Self::ConnectionLost { .. }
                | Self::Timeout { .. }
        )
    }

    pub(crate) fn unexpected(what: &'static str, reason: impl ToString, output: &str) -> Self {
        const MAX: usize = 400;
        let mut output = output.to_owned();
        if output.len() > MAX {
            let mut cut = MAX;
            while !output.is_char_boundary(cut) {
                cut -= 1;
            }
            output.truncate(cut);
            output.push('…');
        }
        Self::UnexpectedOutput {
            what,
            reason: reason.to_string(),
            output,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
