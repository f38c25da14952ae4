//! One persistent SSH connection to the RDS, carrying many commands at once.
//!
//! Each command runs in its own `exec` channel on a shared connection. The
//! concerns are split by file:
//!
//! - this module: [`SshTransport`], and running one command ([`SshTransport::exec`]):
//!   under the command timeout, within the concurrency bound, on a fresh
//!   connection when the current one turns out stale;
//! - [`pool`]: the connection, made on first use and again when it drops;
//! - [`reconnect`]: the reconnect backoff and the fail-fast rule, without
//!   I/O, on tokio's clock;
//! - [`limit`]: the adaptive bound on commands in flight;
//! - [`channel`]: one command on one channel, and closing an abandoned one;
//! - [`host_key`]: the check of the RDS's host key.
//!
//! What the transport sees (connections made and refused, commands answered,
//! lost or timed out, channels refused) is reported to the shared
//! [`RdsStatus`](crate::status::RdsStatus) and counted in the
//! [`RdsMetrics`] it was given: those metrics are the transport's only
//! statistics, so that what a benchmark reads and what Prometheus scrapes
//! are the same numbers.
//!
//! Only a [`Script`] built by the `routeros` command builder can be sent:
//! there is no way to run raw text.
//!
//! Every command runs under a timeout. Dropping a command's future (a cancelled
//! RPC) closes its channel; the connection and the other commands are unaffected.

mod channel;
mod host_key;
mod limit;
mod pool;
mod reconnect;

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use routeros::Script;
use telemetry::RdsMetrics;
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;
use tracing::{debug, warn};

pub use limit::REGAIN_AFTER;

use self::channel::{CloseOnDrop, read_reply};
use self::limit::Limit;
use self::pool::ConnState;
use self::reconnect::{Reconnect, lock};
use crate::config::SshConfig;
use crate::error::{Error, Result};
use crate::status::{RdsStatus, StatusCell};

/// What a command printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded (RouterOS normally prints errors to stdout).
    pub stderr: String,
    /// The exit status, if the server sent one. Not trusted by RouterOS callers.
    pub exit_status: Option<u32>,
}

/// The SSH transport. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct SshTransport {
    config: Arc<SshConfig>,
    conn: Mutex<ConnState>,
    reconnect: StdMutex<Reconnect>,
    limit: Limit,
    metrics: RdsMetrics,
    status: StatusCell,
    /// The fingerprint of the host key the RDS presented at the last
    /// connection attempt that got that far.
    presented_host_key: Arc<StdMutex<Option<String>>>,
}

/// Pause before asking again for a channel the RDS refused.
const REFUSED_CHANNEL_PAUSE: Duration = Duration::from_millis(20);

impl SshTransport {
    /// A transport that connects on first use, recording into metrics that
    /// nobody reads.
    pub fn new(config: SshConfig) -> Self {
        Self::with_metrics(config, RdsMetrics::default())
    }

    /// A transport that connects on first use and records its connections,
    /// its failures and the `up` gauge into `metrics`.
    pub fn with_metrics(config: SshConfig, metrics: RdsMetrics) -> Self {
        let status = StatusCell::new(config.address(), metrics.clone());
        Self {
            limit: Limit::new(config.max_concurrent_commands),
            config: Arc::new(config),
            conn: Mutex::new(ConnState::default()),
            reconnect: StdMutex::new(Reconnect::default()),
            metrics,
            status,
            presented_host_key: Arc::new(StdMutex::new(None)),
        }
    }

    /// The `SHA256:…` fingerprint of the host key the RDS presented at the
    /// last connection attempt that got as far as the key exchange, whether
    /// the key was accepted or not; `None` before any did. For telling a
    /// user which key to pin.
    pub fn presented_host_key(&self) -> Option<String> {
        lock(&self.presented_host_key).clone()
    }

    /// The metrics this transport records into.
    pub fn metrics(&self) -> &RdsMetrics {
        &self.metrics
    }

    /// The RDS as last seen, without I/O.
    pub fn status(&self) -> RdsStatus {
        self.status.get()
    }

    /// A receiver of the status, woken on every change.
    pub fn watch_status(&self) -> watch::Receiver<RdsStatus> {
        self.status.subscribe()
    }

    pub(crate) fn status_cell(&self) -> &StatusCell {
        &self.status
    }

    /// While the RDS is down: the time until the next connection attempt is
    /// due (zero when it is due, or being made). `None` while it is not down.
    pub fn backoff_remaining(&self) -> Option<Duration> {
        lock(&self.reconnect).backoff_remaining(Instant::now())
    }

    /// The configuration in use.
    pub fn config(&self) -> &SshConfig {
        &self.config
    }

    /// The number of commands that may be in flight now: the configured
    /// maximum, lowered by one for every channel the RDS refused and raised
    /// again by one after every [`REGAIN_AFTER`] commands that went through.
    pub fn concurrency_limit(&self) -> usize {
        self.limit.current()
    }

    /// Runs one script and returns what it printed.
    ///
    /// A stale connection found while opening the channel is replaced and the
    /// command sent on the new one; a connection that breaks after the command
    /// was sent gives [`Error::ConnectionLost`] with `outcome_unknown`.
    ///
    /// While the RDS is down and the next connection attempt is not due (or
    /// another caller is making it), fails at once with
    /// [`Error::Unavailable`]: nothing is sent and nothing is waited for.
    ///
    /// Only a script built by the `routeros` command builder can be sent;
    /// text cannot:
    ///
    /// ```compile_fail,E0308
    /// # async fn f(transport: &rds_client::SshTransport) {
    /// transport.exec("/system reboot").await;
    /// # }
    /// ```
    pub async fn exec(&self, script: &Script) -> Result<ExecOutput> {
        if let Some(refused) = lock(&self.reconnect).refusal(Instant::now()) {
            return Err(refused);
        }
        let after = self.config.command_timeout;
        match tokio::time::timeout(after, self.exec_inner(script.as_str())).await {
            Ok(result) => result,
            Err(_) => {
                self.metrics.command_timeouts.inc();
                Err(Error::Timeout { after })
            }
        }
    }

    async fn exec_inner(&self, command: &str) -> Result<ExecOutput> {
        let mut permit = self.limit.acquire().await?;
        let mut stale_retries = 1;
        loop {
            let session = self.session().await?;
            let channel = match session.handle.channel_open_session().await {
                Ok(channel) => channel,
                Err(e) if !session.handle.is_closed() => {
                    // The connection is up but the RDS would not open another
                    // channel: it has a session limit below ours. Learn it: give
                    // up this permit for good, and wait for a command in flight to
                    // finish. (The command timeout bounds the waiting.)
                    self.metrics.ssh_channel_refusals.inc();
                    if self.limit.shrink() {
                        permit.forget();
                        warn!(
                            error = %e,
                            limit = self.limit.current(),
                            "the RDS refused a channel; lowering the number of concurrent commands"
                        );
                        permit = self.limit.acquire().await?;
                    }
                    tokio::time::sleep(REFUSED_CHANNEL_PAUSE).await;
                    continue;
                }
                Err(e) => {
                    self.forget(&session, &e.to_string()).await;
                    if stale_retries > 0 {
                        stale_retries -= 1;
                        debug!(error = %e, "connection was stale; reconnecting");
                        continue;
                    }
                    self.metrics.ssh_connection_losses.inc();
                    return Err(Error::ConnectionLost {
                        outcome_unknown: false,
                        detail: format!("cannot open a channel: {e}"),
                    });
                }
            };
            let (mut read, write) = channel.split();
            let mut guard = CloseOnDrop {
                write: Arc::new(write),
                armed: true,
            };
            if let Err(e) = guard.write.exec(true, command.as_bytes()).await {
                self.forget(&session, &e.to_string()).await;
                self.metrics.ssh_connection_losses.inc();
                return Err(Error::ConnectionLost {
                    outcome_unknown: true,
                    detail: format!("sending the command failed: {e}"),
                });
            }
            let result = read_reply(&mut read).await;
            guard.armed = false;
            return match result {
                Ok(out) => {
                    self.limit.regain();
                    self.status.answered();
                    Ok(out)
                }
                Err(detail) => {
                    if session.handle.is_closed() {
                        self.forget(&session, &detail).await;
                    }
                    self.metrics.ssh_connection_losses.inc();
                    Err(Error::ConnectionLost {
                        outcome_unknown: true,
                        detail,
                    })
                }
            };
        }
    }
}
