//! The kernel log since a point in time, searched for I/O errors.
//!
//! `/dev/kmsg` gives every reader its own position: a watch opens it, moves
//! to the end, and later reads what was logged since, record by record,
//! without blocking.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};

use rustix::fs::{Mode, OFlags};

use crate::support::{Context, Outcome};

/// Texts that mean the block layer or a filesystem saw an I/O error.
/// Reconnect messages ("failed to connect socket", "Reconnecting in …")
/// are expected when a target goes away and are not listed.
const ERROR_MARKERS: &[&str] = &[
    "i/o error",
    "operation not supported error",
    "critical target error",
    "critical medium error",
    "blk_update_request",
    "buffer i/o error",
    "ext4-fs error",
    "xfs (",
];

/// Markers of `ERROR_MARKERS` that are fine when followed by these (XFS logs
/// mounts and unmounts with its prefix).
const BENIGN: &[&str] = &["mounting v5", "ending clean mount", "unmounting filesystem"];

/// Kernel log records from the moment [`KmsgWatch::start`] was called.
#[derive(Debug)]
pub struct KmsgWatch {
    file: File,
}

impl KmsgWatch {
    /// Starts watching: earlier records are skipped.
    pub fn start() -> Outcome<KmsgWatch> {
        let fd = rustix::fs::open(
            "/dev/kmsg",
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .context("cannot open /dev/kmsg")?;
        let mut file = File::from(fd);
        file.seek(SeekFrom::End(0))
            .context("cannot seek to the end of /dev/kmsg")?;
        Ok(KmsgWatch { file })
    }

    /// The messages logged since the start (or the last call), without
    /// their `priority,sequence,time;` prefix.
    pub fn read_new(&mut self) -> Outcome<Vec<String>> {
        let mut messages = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let record = String::from_utf8_lossy(&buf[..n]);
                    // Continuation lines (" KEY=value") carry device
                    // metadata, not text.
                    let first = record.lines().next().unwrap_or_default();
                    let text = first.split_once(';').map_or(first, |(_, text)| text);
                    messages.push(text.to_owned());
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // The buffer wrapped and records were lost: say so, go on.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PIPE.raw_os_error()) => {
                    messages.push("(kernel log records were lost)".to_owned());
                }
                Err(e) => return Err(format!("cannot read /dev/kmsg: {e}")),
            }
        }
        Ok(messages)
    }
}

/// The messages among `messages` that report I/O errors.
pub fn io_errors(messages: &[String]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| {
            let lower = m.to_lowercase();
            ERROR_MARKERS.iter().any(|marker| lower.contains(marker))
                && !BENIGN.iter().any(|benign| lower.contains(benign))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_io_errors_and_ignores_reconnects() {
        let log: Vec<String> = [
            "nvme nvme0: failed to connect socket: -111",
            "nvme nvme0: Reconnecting in 1 seconds...",
            "nvme0c0n1: I/O Cmd(0x8) @ LBA 4246, 1 blocks, I/O Error (sct 0x1 / sc 0x83) MORE DNR",
            "operation not supported error, dev nvme0c0n1, sector 33968 op 0x9:(WRITE_ZEROES)",
            "XFS (nvme0n1): Mounting V5 Filesystem",
            "XFS (nvme0n1): metadata I/O error in \"xfs_buf_ioend\"",
        ]
        .map(String::from)
        .to_vec();
        let errors = io_errors(&log);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("I/O Error"));
    }
}
