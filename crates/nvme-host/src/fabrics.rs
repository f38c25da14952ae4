//! The `/dev/nvme-fabrics` interaction, and the rules for judging its outcome.
//!
//! The kernel's protocol (`drivers/nvme/host/fabrics.c`): open the device
//! read-write, write the whole option string in **one** `write(2)` (each open
//! file accepts one write; a second is refused with EINVAL, so the string must
//! not be split), then read the reply `instance=N,cntlid=M` from the **same**
//! descriptor. The write blocks while the kernel connects the admin and I/O
//! queues, which takes seconds when the target is slow or away. A duplicate of a
//! live connection fails with EALREADY, which Rust's `ErrorKind` does not map,
//! so it is recognised by its raw errno.
//!
//! [`Fabrics`] is the seam: [`DevFabrics`] talks to the kernel,
//! `testing::FakeFabrics` answers from a script.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use rustix::io::Errno;

/// One connect through the fabrics device.
pub trait Fabrics: Send + Sync {
    /// Writes `options` in one write and returns what the kernel answers.
    /// Failures carry the kernel's errno (`io::Error::raw_os_error`).
    fn submit(&self, options: &str) -> io::Result<String>;
}

/// The real `/dev/nvme-fabrics`.
#[derive(Debug, Clone)]
pub struct DevFabrics {
    path: PathBuf,
}

impl DevFabrics {
    /// The fabrics device at `path` (`<root>/dev/nvme-fabrics`).
    pub fn new(path: impl Into<PathBuf>) -> DevFabrics {
        DevFabrics { path: path.into() }
    }
}

/// The longest reply read back; the kernel's is about 30 bytes.
const MAX_REPLY: u64 = 4096;

impl Fabrics for DevFabrics {
    fn submit(&self, options: &str) -> io::Result<String> {
        let mut file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        // One write(2), never retried or split: `File::write` is a single
        // system call, unlike `write_all`.
        let written = file.write(options.as_bytes())?;
        if written != options.len() {
            return Err(io::Error::other(format!(
                "the kernel took {written} of {} bytes of the option string",
                options.len()
            )));
        }
        let mut reply = String::new();
        file.take(MAX_REPLY).read_to_string(&mut reply)?;
        Ok(reply)
    }
}

/// The outcome of a successful connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connected {
    /// A new controller was created.
    New {
        /// The controller's instance: it is `nvme<instance>`.
        instance: u32,
        /// The controller id the target gave.
        cntlid: u32,
    },
    /// A controller with the same target, NQN and host identity existed already (EALREADY).
    Already,
}

/// Parses the kernel's reply `instance=N,cntlid=M` (trailing newline and
/// further keys allowed); `None` if either number is missing.
pub fn parse_connect_reply(reply: &str) -> Option<Connected> {
    let mut instance = None;
    let mut cntlid = None;
    for (key, value) in reply.trim().split(',').filter_map(|p| p.split_once('=')) {
        match key {
            "instance" => instance = value.parse().ok(),
            "cntlid" => cntlid = value.parse().ok(),
            _ => {}
        }
    }
    Some(Connected::New {
        instance: instance?,
        cntlid: cntlid?,
    })
}

/// The raw errno of EALREADY (114 on Linux).
pub const EALREADY: i32 = Errno::ALREADY.raw_os_error();

/// How a failed connect is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrnoClass {
    /// Whether repeating the connect may succeed.
    pub transient: bool,
    /// What to do about it, for the error message.
    pub hint: &'static str,
}

/// Judges the errno of a failed connect (`None`: a failure without errno).
///
/// Transient, retried by [`crate::Host::connect_with_retry`]:
/// - ECONNREFUSED: nothing listens yet (the export is not up).
/// - ECONNRESET, ECONNABORTED, EPIPE: the target dropped the connection.
/// - ETIMEDOUT: no answer to the TCP handshake (the kernel tries one SYN retry).
/// - EHOSTUNREACH, ENETUNREACH, EHOSTDOWN, ENETDOWN, EADDRNOTAVAIL: the network
///   is not (yet) there.
/// - EAGAIN: the kernel asks to try again.
/// - EINTR: what the kernel reports when the NVMe Connect command times out.
/// - EIO: what the kernel reports when the target answers the Connect command
///   with an NVMe error (subsystem not exported yet, host not allowed yet) or
///   the queue fails while being set up. Retried because right after a volume
///   is created or published the export may lag; it becomes a permanent error
///   at the deadline, with the errno in the message.
///
/// Permanent, returned at once: EINVAL (options refused, or no `tcp` transport:
/// the module is missing), EPERM and EACCES (not privileged), ENOENT, ENODEV and
/// ENXIO (no `/dev/nvme-fabrics`: nvme-fabrics/nvme-tcp not loaded), ENOMEM, and
/// every errno not listed, so unknown failures surface instead of spinning.
pub fn classify_errno(errno: Option<i32>) -> ErrnoClass {
    const fn is(e: Errno) -> i32 {
        e.raw_os_error()
    }
    let transient = |hint| ErrnoClass {
        transient: true,
        hint,
    };
    let permanent = |hint| ErrnoClass {
        transient: false,
        hint,
    };
    let Some(errno) = errno else {
        return permanent("see the kernel log (dmesg) for the reason");
    };
    match errno {
        e if e == is(Errno::CONNREFUSED) => transient(
            "nothing listens at that address and port: is the volume exported over NVMe/TCP there?",
        ),
        e if e == is(Errno::CONNRESET) || e == is(Errno::CONNABORTED) || e == is(Errno::PIPE) => {
            transient("the target dropped the connection; check the target's log")
        }
        e if e == is(Errno::TIMEDOUT) => {
            transient("the target did not answer: check the network path and firewalls to it")
        }
        e if e == is(Errno::HOSTUNREACH)
            || e == is(Errno::NETUNREACH)
            || e == is(Errno::HOSTDOWN)
            || e == is(Errno::NETDOWN)
            || e == is(Errno::ADDRNOTAVAIL) =>
        {
            transient("the target cannot be reached from this node: check its network and routes")
        }
        e if e == is(Errno::AGAIN) => transient("the kernel asked to try again"),
        e if e == is(Errno::INTR) => {
            transient("the NVMe Connect command timed out or was interrupted; check the target")
        }
        e if e == is(Errno::IO) => transient(
            "the target refused the NVMe Connect or failed during it: check that the NQN is exported and that this host's NQN is allowed",
        ),
        e if e == is(Errno::INVAL) => permanent(
            "the kernel refused the options (see dmesg); if it says no handler for transport tcp, load the nvme-tcp module (modprobe nvme-tcp)",
        ),
        e if e == is(Errno::PERM) || e == is(Errno::ACCESS) => {
            permanent("the node plugin must run privileged (CAP_SYS_ADMIN) with the host's /dev")
        }
        e if e == is(Errno::NOENT) || e == is(Errno::NODEV) || e == is(Errno::NXIO) => permanent(
            "/dev/nvme-fabrics does not exist: load the nvme-tcp module (modprobe nvme-tcp) and give the node plugin the host's /dev",
        ),
        e if e == is(Errno::NOMEM) => {
            permanent("the kernel ran out of memory or the option string was too long")
        }
        _ => permanent("see the kernel log (dmesg) for the reason"),
    }
}

/// How [`crate::Host::connect_with_retry`] spaces its attempts: exponential
/// backoff from `initial`, doubling up to `max`, each delay jittered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay after the first failure.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// 250 ms, doubling up to 5 s.
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The delay after `failures` failures in a row (1 for the first), with
    /// "equal jitter": half the nominal delay plus `unit` (in `[0, 1)`) times the
    /// other half, so concurrent retries spread out but never hurry.
    pub fn delay(&self, failures: u32, unit: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        let nominal = self
            .initial
            .saturating_mul(1 << doublings)
            .min(self.max.max(self.initial));
        let half = nominal / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        assert_eq!(
            parse_connect_reply("instance=3,cntlid=17\n"),
            Some(Connected::New {
                instance: 3,
                cntlid: 17
            })
        );
        assert_eq!(
            parse_connect_reply("instance=0,cntlid=1,more=2"),
            Some(Connected::New {
                instance: 0,
                cntlid: 1
            })
        );
        for bad in [
            "",
            "instance=3",
            "cntlid=1",
            "instance=x,cntlid=1",
            "transport=tcp",
        ] {
            assert_eq!(parse_connect_reply(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ealready_is_114() {
        assert_eq!(EALREADY, 114);
    }

    #[test]
    fn errno_classes() {
        let transient = [
            Errno::CONNREFUSED,
            Errno::CONNRESET,
            Errno::CONNABORTED,
            Errno::PIPE,
            Errno::TIMEDOUT,
            Errno::HOSTUNREACH,
            Errno::NETUNREACH,
            Errno::HOSTDOWN,
            Errno::NETDOWN,
            Errno::ADDRNOTAVAIL,
            Errno::AGAIN,
            Errno::INTR,
            Errno::IO,
        ];
        let permanent = [
            Errno::INVAL,
            Errno::PERM,
            Errno::ACCESS,
            Errno::NOENT,
            Errno::NODEV,
            Errno::NXIO,
            Errno::NOMEM,
            Errno::ALREADY, // never reaches the classifier: it means success
            Errno::OPNOTSUPP,
            Errno::PROTO,
        ];
        for e in transient {
            assert!(classify_errno(Some(e.raw_os_error())).transient, "{e:?}");
        }
        for e in permanent {
            assert!(!classify_errno(Some(e.raw_os_error())).transient, "{e:?}");
        }
        assert!(!classify_errno(None).transient);
        assert!(
            classify_errno(Some(Errno::NOENT.raw_os_error()))
                .hint
                .contains("modprobe nvme-tcp")
        );
    }

    #[test]
    fn backoff_doubles_to_max_with_jitter() {
        let p = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        assert_eq!(p.delay(1, 0.0), Duration::from_millis(50));
        assert_eq!(p.delay(1, 1.0), Duration::from_millis(100));
        assert_eq!(p.delay(2, 1.0), Duration::from_millis(200));
        assert_eq!(p.delay(4, 1.0), Duration::from_millis(800));
        assert_eq!(p.delay(5, 1.0), Duration::from_millis(1000));
        assert_eq!(p.delay(u32::MAX, 1.0), Duration::from_millis(1000));
        assert_eq!(p.delay(3, 0.5), Duration::from_millis(300));
        assert_eq!(p.delay(0, 1.0), Duration::from_millis(100));
        let d = RetryPolicy::default();
        assert!(d.initial < d.max);
    }

    #[test]
    fn dev_fabrics_without_the_device_is_enoent() {
        let dir = tempfile::tempdir().unwrap();
        let e = DevFabrics::new(dir.path().join("nvme-fabrics"))
            .submit("transport=tcp")
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(Errno::NOENT.raw_os_error()));
    }
}
