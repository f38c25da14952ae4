//! Talks to the MikroTik RDS over SSH.
//!
//! - [`config`]: address, identity, host-key pinning, timeouts.
//! - [`transport`]: one persistent SSH connection carrying many concurrent
//!   commands, with reconnects and backoff; fails fast while the RDS is down.
//!   It sends only scripts built by the `routeros` command builder.
//! - [`client`]: the volume operations (create, get, list, grow, delete, who
//!   may connect, pool capacity, version), each one idempotent RouterOS script.
//! - [`snapshots`]: volumes in subvolumes of their own, snapshots, restores
//!   and clones on btrfs pools, each one idempotent script too.
//! - [`status`]: what is known about the RDS (up or down, since when, the
//!   last error, its RouterOS version), readable without I/O.
//! - [`monitor`]: the connection manager, a background task that checks the
//!   RDS and drives reconnects while it is down.
//!
//! Command text comes only from the `routeros` crate's builder; this crate adds
//! I/O and nothing else. Commands and connections are recorded in a
//! [`telemetry::RdsMetrics`] ([`RdsClient::with_metrics`]), the client's only
//! statistics.

pub mod backoff;
pub mod client;
pub mod config;
pub mod error;
pub mod monitor;
pub mod snapshots;
pub mod status;
pub mod transport;

pub use client::{RdsClient, SIZE_GRANULARITY, round_up_size};
pub use config::{ClientKey, HostKeyPolicy, SshConfig};
pub use error::{Error, Result};
pub use monitor::{ConnectionMonitor, DEFAULT_CHECK_INTERVAL};
pub use snapshots::SnapshotError;
pub use status::{RdsStatus, Reachability};
pub use transport::{ExecOutput, REGAIN_AFTER, SshTransport};
