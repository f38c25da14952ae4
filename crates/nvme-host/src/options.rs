//! The connect option string, built and checked without I/O.
//!
//! The kernel reads the string written to `/dev/nvme-fabrics` by splitting it on
//! `,` and `\n` and matching each piece against `key=value` patterns, so a value
//! holding a comma, a newline or another separator could smuggle in an option of
//! its own choosing. Every value is therefore checked against the rules below
//! before it is put into the string, and the string is only ever produced here.
//!
//! One example of the wire format (one line, no trailing newline):
//!
//! ```text
//! transport=tcp,traddr=10.0.0.5,trsvcid=4420,nqn=nqn.2000-02.com.mikrotik:pvc-1,hostnqn=nqn.2014-08.org.nvmexpress:uuid:0f8e…,hostid=0f8e…,ctrl_loss_tmo=1980,reconnect_delay=5
//! ```
//!
//! The kernel does not resolve host names (it parses `traddr` with
//! `inet_pton_with_scope`), so the option string only accepts an IP address;
//! [`crate::Host::connect`] resolves a host name first.

use std::net::{IpAddr, Ipv6Addr};

use crate::error::NvmeError;
use crate::identity::{HostIdentity, is_uuid};

/// The longest NQN the kernel accepts (`NVMF_NQN_SIZE`), in bytes.
pub const MAX_NQN_LEN: usize = 223;

/// Everything needed to connect to one NVMe/TCP subsystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// The target's address: an IP address (IPv6 may carry a `%scope`), or a host
    /// name that [`crate::Host::connect`] resolves before connecting.
    pub traddr: String,
    /// The target's TCP port, usually 4420.
    pub trsvcid: u16,
    /// The subsystem NQN to connect to.
    pub nqn: String,
    /// This host's identity.
    pub host: HostIdentity,
    /// Seconds to keep reconnecting after the connection is lost; `None` keeps the
    /// kernel default (600 s), `-1` retries forever (which can hang a node's
    /// shutdown when the target is gone).
    pub ctrl_loss_tmo: Option<i32>,
    /// Seconds between reconnect attempts; `None` keeps the kernel default (10 s).
    pub reconnect_delay: Option<u32>,
    /// Keep-alive timeout in seconds; `None` keeps the kernel default (5 s).
    pub keep_alive_tmo: Option<u32>,
    /// Seconds after which I/O fails while reconnecting; `None` leaves it off.
    pub fast_io_fail_tmo: Option<u32>,
    /// Number of I/O queues; `None` lets the kernel use one per CPU.
    pub nr_io_queues: Option<u32>,
}

impl ConnectionConfig {
    /// A configuration with every tunable left to the kernel's default.
    pub fn new(
        traddr: impl Into<String>,
        trsvcid: u16,
        nqn: impl Into<String>,
        host: HostIdentity,
    ) -> ConnectionConfig {
        ConnectionConfig {
            traddr: traddr.into(),
            trsvcid,
            nqn: nqn.into(),
            host,
            ctrl_loss_tmo: None,
            reconnect_delay: None,
            keep_alive_tmo: None,
            fast_io_fail_tmo: None,
            nr_io_queues: None,
        }
    }

    /// Builds the option string written to `/dev/nvme-fabrics`:
    /// `transport=tcp,traddr=…,trsvcid=…,nqn=…,hostnqn=…,hostid=…` followed by
    /// the optional `ctrl_loss_tmo`, `reconnect_delay`, `keep_alive_tmo`,
    /// `fast_io_fail_tmo` and `nr_io_queues`, each only when set.
    ///
    /// Refuses any value the kernel would refuse or that could inject an option:
    /// see [`check_value`], [`check_nqn`]; `traddr` must be an IP address here.
    pub fn option_string(&self) -> Result<String, NvmeError> {
        check_ip_traddr(&self.traddr)?;
        if self.trsvcid == 0 {
            return Err(invalid("trsvcid", "port 0 cannot be connected to"));
        }
        check_nqn("nqn", &self.nqn)?;
        check_nqn("hostnqn", &self.host.nqn)?;
        if !is_uuid(&self.host.id) {
            return Err(invalid(
                "hostid",
                "must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
            ));
        }
        let mut parts = vec![
            "transport=tcp".to_owned(),
            format!("traddr={}", self.traddr),
            format!("trsvcid={}", self.trsvcid),
            format!("nqn={}", self.nqn),
            format!("hostnqn={}", self.host.nqn),
            format!("hostid={}", self.host.id),
        ];
        if let Some(v) = self.ctrl_loss_tmo {
            if v < -1 {
                return Err(invalid(
                    "ctrl_loss_tmo",
                    "must be -1 (forever) or at least 0",
                ));
            }
            parts.push(format!("ctrl_loss_tmo={v}"));
        }
        // The kernel parses these as C ints and refuses 0 where noted.
        let numbers = [
            ("reconnect_delay", self.reconnect_delay, 1),
            ("keep_alive_tmo", self.keep_alive_tmo, 0),
            ("fast_io_fail_tmo", self.fast_io_fail_tmo, 0),
            ("nr_io_queues", self.nr_io_queues, 1),
        ];
        for (key, value, min) in numbers {
            if let Some(v) = value {
                if v < min || v > i32::MAX as u32 {
                    return Err(invalid(
                        key,
                        format!("must be between {min} and {}", i32::MAX),
                    ));
                }
                parts.push(format!("{key}={v}"));
            }
        }
        Ok(parts.join(","))
    }

    /// The target as people write it, for messages: `nqn at addr:port`.
    pub fn target(&self) -> String {
        if self.traddr.contains(':') {
            format!("{} at [{}]:{}", self.nqn, self.traddr, self.trsvcid)
        } else {
            format!("{} at {}:{}", self.nqn, self.traddr, self.trsvcid)
        }
    }
}

/// Splits an option string back into `(key, value)` pairs, the way the kernel
/// does (on `,` and `\n`, empty pieces skipped, each piece at its first `=`).
/// Pieces without `=` come back with an empty value.
pub fn parse_option_string(options: &str) -> Vec<(String, String)> {
    options
        .split([',', '\n'])
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (p.to_owned(), String::new()),
        })
        .collect()
}

/// Checks a value that goes into the option string: not empty, and free of `,`,
/// `=`, whitespace and control characters.
pub fn check_value(field: &'static str, value: &str) -> Result<(), NvmeError> {
    if value.is_empty() {
        return Err(invalid(field, "is empty"));
    }
    if let Some(c) = value
        .chars()
        .find(|c| *c == ',' || *c == '=' || c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            field,
            format!("{value:?} holds the forbidden character {c:?}"),
        ));
    }
    Ok(())
}

/// Checks an NQN: a valid option value of at most [`MAX_NQN_LEN`] bytes.
pub fn check_nqn(field: &'static str, nqn: &str) -> Result<(), NvmeError> {
    check_value(field, nqn)?;
    if nqn.len() > MAX_NQN_LEN {
        return Err(invalid(
            field,
            format!("is {} bytes long, more than {MAX_NQN_LEN}", nqn.len()),
        ));
    }
    Ok(())
}

/// Checks that `traddr` is an IP address the kernel can parse: IPv4, or IPv6
/// optionally followed by `%` and an interface name or number.
pub fn check_ip_traddr(traddr: &str) -> Result<(), NvmeError> {
    check_value("traddr", traddr)?;
    if is_ip_literal(traddr) {
        return Ok(());
    }
    if is_host_name(traddr) {
        return Err(invalid(
            "traddr",
            format!(
                "{traddr:?} is a host name; the kernel takes only IP addresses, so resolve it first (Host::connect does)"
            ),
        ));
    }
    Err(invalid(
        "traddr",
        format!("{traddr:?} is neither an IP address nor a host name"),
    ))
}

/// Whether `s` is an IP address as the kernel's `inet_pton_with_scope` reads it.
pub fn is_ip_literal(s: &str) -> bool {
    if s.parse::<IpAddr>().is_ok() {
        return true;
    }
    match s.split_once('%') {
        Some((addr, scope)) => {
            addr.parse::<Ipv6Addr>().is_ok()
                && !scope.is_empty()
                && scope.len() <= 15
                && scope
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        }
        None => false,
    }
}

/// Whether `s` is a syntactically valid DNS host name (RFC 1123 labels).
pub fn is_host_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn invalid(field: &'static str, reason: impl Into<String>) -> NvmeError {
    NvmeError::Invalid {
        field,
        reason: reason.into(),
    }
}

#[cfg(test)]
#[path = "options_tests.rs"]
mod tests;
