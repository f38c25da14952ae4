//! Talks to the MikroTik RDS over SSH.
//!
//! - [`config`]: address, identity, host-key pinning, timeouts.
//! - [`transport`]: one persistent SSH connection carrying many concurrent
//!   commands, with reconnects and backoff.
//! - [`client`]: the volume operations (create, get, list, grow, delete, pool
//!   capacity, version), each one idempotent RouterOS script.
//!
//! Command text comes only from the `routeros` crate's builder; this crate adds
//! I/O and nothing else.

pub mod backoff;
pub mod client;
pub mod config;
pub mod error;
pub mod transport;

pub use client::{RdsClient, SIZE_GRANULARITY, round_up_size};
pub use config::{ClientKey, HostKeyPolicy, SshConfig};
pub use error::{Error, Result};
pub use transport::{ExecOutput, SshTransport, Stats, StatsSnapshot};
