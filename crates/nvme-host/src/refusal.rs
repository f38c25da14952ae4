//! Which controllers the target refuses: read from the kernel log, since
//! sysfs does not say why a controller is not live.
//!
//! When a target refuses a host (the host is not in the subsystem's allowed
//! hosts: the volume was unpublished from this node), the kernel logs, for
//! each connect or reconnect attempt:
//!
//! ```text
//! nvme nvme0: Connect for subsystem nqn.2024-01.io.srvlab.csi.rds:pvc-1 is not allowed, hostnqn: nqn.2024-01.io.srvlab.csi.rds:node:worker-1
//! ```
//!
//! Kernels from about 6.10 stop at the first such refusal (the reply carries
//! the do-not-retry bit) and remove the controller; older ones (Debian 12's
//! 6.1) keep the controller `connecting` and ask again every reconnect delay
//! until `ctrl_loss_tmo`, refused each time, with the volume's I/O held all
//! along. Such a controller will never serve again: the node disconnects it
//! at start-up, so its I/O fails now rather than at the end of
//! `ctrl_loss_tmo`.
//!
//! A controller counts as refused only while it is not live and the last
//! thing the log says about it is a refusal: a later "new ctrl" or
//! "Successfully reconnected" of the same controller name (names are
//! reused) means it was let in again.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

/// One line of the kernel log about an NVMe controller, as far as refusals
/// are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The target refused `hostnqn` for `subsysnqn` on controller `ctrl`.
    Refused {
        /// The controller, e.g. `nvme0`.
        ctrl: String,
        /// The subsystem NQN.
        subsysnqn: String,
        /// The host NQN refused.
        hostnqn: String,
    },
    /// Controller `ctrl` was connected, or connected again.
    Connected {
        /// The controller, e.g. `nvme0`.
        ctrl: String,
    },
}

/// The event a kernel log message (without its `priority,seq,time;` prefix)
/// stands for, if any.
pub fn parse_event(message: &str) -> Option<Event> {
    let rest = message.trim_end().strip_prefix("nvme ")?;
    let (ctrl, text) = rest.split_once(": ")?;
    if !ctrl.starts_with("nvme")
        || ctrl.len() <= 4
        || !ctrl[4..].bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    if let Some(rest) = text.strip_prefix("Connect for subsystem ") {
        let (subsysnqn, hostnqn) = rest.split_once(" is not allowed, hostnqn: ")?;
        return Some(Event::Refused {
            ctrl: ctrl.to_owned(),
            subsysnqn: subsysnqn.to_owned(),
            hostnqn: hostnqn.to_owned(),
        });
    }
    if text.starts_with("new ctrl: ") || text.starts_with("Successfully reconnected") {
        return Some(Event::Connected {
            ctrl: ctrl.to_owned(),
        });
    }
    None
}

/// Whether the last event of `ctrl` in `events` (oldest first) is a refusal
/// of `hostnqn` for `subsysnqn`.
pub fn last_refused(events: &[Event], ctrl: &str, subsysnqn: &str, hostnqn: &str) -> bool {
    let last = events.iter().rev().find(|e| match e {
        Event::Refused { ctrl: c, .. } | Event::Connected { ctrl: c } => c == ctrl,
    });
    matches!(
        last,
        Some(Event::Refused { subsysnqn: s, hostnqn: h, .. }) if s == subsysnqn && h == hostnqn
    )
}

/// The NVMe events in the kernel log at `kmsg` (`/dev/kmsg`), oldest first,
/// read without blocking from the oldest record still kept. An error when
/// the log cannot be opened (no permission, no such file); records lost to
/// the ring buffer wrapping are skipped.
pub fn read_events(kmsg: &Path) -> std::io::Result<Vec<Event>> {
    let fd = rustix::fs::open(
        kmsg,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let mut file = File::from(fd);
    let mut text = Vec::new();
    let mut buf = vec![0_u8; 8192];
    loop {
        // `/dev/kmsg` gives one whole record per read; a plain file (a
        // test's log) gives whatever fits. Either way the records, joined,
        // are lines.
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PIPE.raw_os_error()) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(parse_log(&String::from_utf8_lossy(&text)))
}

/// The NVMe events of kernel log records as `/dev/kmsg` gives them: each
/// record's first line is `priority,seq,time,flags;text`, and the lines
/// after it that start with a space (` KEY=value`) are metadata.
pub fn parse_log(records: &str) -> Vec<Event> {
    records
        .lines()
        .filter(|line| !line.starts_with(' '))
        .filter_map(|line| parse_event(line.split_once(';').map_or(line, |(_, text)| text)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "nqn.2024-01.io.srvlab.csi.rds:pvc-1";
    const HOST: &str = "nqn.2024-01.io.srvlab.csi.rds:node:a";

    fn refused(ctrl: &str) -> String {
        format!("nvme {ctrl}: Connect for subsystem {SUB} is not allowed, hostnqn: {HOST}")
    }

    #[test]
    fn kernel_lines_are_read_as_events() {
        assert_eq!(
            parse_event(&refused("nvme0")),
            Some(Event::Refused {
                ctrl: "nvme0".into(),
                subsysnqn: SUB.into(),
                hostnqn: HOST.into()
            })
        );
        assert_eq!(
            parse_event(&format!(
                "nvme nvme12: new ctrl: NQN \"{SUB}\", addr 127.0.0.1:4420"
            )),
            Some(Event::Connected {
                ctrl: "nvme12".into()
            })
        );
        assert_eq!(
            parse_event("nvme nvme0: Successfully reconnected (2 attempt)"),
            Some(Event::Connected {
                ctrl: "nvme0".into()
            })
        );
        for other in [
            "nvme nvme0: Reconnecting in 1 seconds...",
            "nvme nvme0: failed to connect queue: 0 ret=16772",
            "nvmet: connect by host nqn.x for subsystem nqn.y not allowed",
            "block nvme0n1: no available path - failing I/O",
            "nvme nvmeX: new ctrl: NQN \"x\"",
            "",
        ] {
            assert_eq!(parse_event(other), None, "{other}");
        }
    }

    #[test]
    fn only_a_refusal_not_followed_by_a_connect_counts() {
        let events: Vec<Event> = [
            format!("nvme nvme0: new ctrl: NQN \"{SUB}\", addr 127.0.0.1:4420"),
            refused("nvme0"),
            refused("nvme0"),
        ]
        .iter()
        .filter_map(|l| parse_event(l))
        .collect();
        assert!(last_refused(&events, "nvme0", SUB, HOST));
        assert!(!last_refused(&events, "nvme1", SUB, HOST));
        assert!(!last_refused(&events, "nvme0", "nqn.other", HOST));
        assert!(!last_refused(&events, "nvme0", SUB, "nqn.other:host"));

        let mut back = events.clone();
        back.push(Event::Connected {
            ctrl: "nvme0".into(),
        });
        assert!(!last_refused(&back, "nvme0", SUB, HOST));
    }

    #[test]
    fn kmsg_records_are_read_with_their_metadata_left_out() {
        let log = format!(
            "6,100,5000,-;nvme nvme0: new ctrl: NQN \"{SUB}\", addr 127.0.0.1:4420\n SUBSYSTEM=nvme\n DEVICE=c243:0\n\
             3,101,6000,-;{}\n\
             4,102,7000,-;nvme nvme0: Reconnecting in 1 seconds...\n",
            refused("nvme0")
        );
        let events = parse_log(&log);
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(last_refused(&events, "nvme0", SUB, HOST));

        let dir = tempfile::tempdir().unwrap();
        let kmsg = dir.path().join("kmsg");
        std::fs::write(&kmsg, &log).unwrap();
        assert_eq!(read_events(&kmsg).unwrap(), events);
    }

    #[test]
    fn a_missing_log_is_an_error_not_a_verdict() {
        assert!(read_events(Path::new("/nonexistent/kmsg")).is_err());
    }
}
