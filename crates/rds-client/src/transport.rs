//! One persistent SSH connection to the RDS, carrying many commands at once.
//!
//! Each command runs in its own `exec` channel on a shared connection: there is no
//! lock around commands, only a semaphore bounding how many are in flight. The
//! bound adapts to the appliance: a channel the RDS refuses lowers it by one (the
//! RDS's session limit is not documented), and a long run of successes raises it
//! again, up to the configured maximum. The
//! connection is made on first use and re-made when it drops. After a failed
//! attempt the transport backs off (exponentially, with jitter) and, until the
//! next attempt is due, fails fast with [`Error::Unavailable`] instead of letting
//! callers pile up behind a dead appliance. While the RDS is known to be down,
//! a command that arrives while someone else is trying to connect fails fast
//! too, instead of queueing behind that attempt's connect timeout; the checks
//! for both are made before a command waits for anything.
//!
//! What the transport sees (connections made and refused, commands answered)
//! is reported to the shared [`RdsStatus`](crate::status::RdsStatus) and to
//! the [`RdsMetrics`] it was given.
//!
//! Every command runs under a timeout. Dropping a command's future (a cancelled
//! RPC) closes its channel; the connection and the other commands are unaffected.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use telemetry::RdsMetrics;
use tokio::sync::{Mutex, Semaphore, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::backoff::backoff_delay;
use crate::config::{HostKeyPolicy, LOGIN_SUFFIX, SshConfig, fingerprint};
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

/// Counters of the transport's work, for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Commands sent (exec requests): one round trip each.
    pub commands: AtomicU64,
    /// Connections established.
    pub connects: AtomicU64,
    /// Connection attempts that failed.
    pub connect_failures: AtomicU64,
    /// Commands whose connection broke under them.
    pub connection_losses: AtomicU64,
    /// Commands that timed out.
    pub timeouts: AtomicU64,
    /// Channels the RDS refused on a live connection (a session limit).
    pub channel_refusals: AtomicU64,
}

/// A point-in-time copy of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// See [`Stats::commands`].
    pub commands: u64,
    /// See [`Stats::connects`].
    pub connects: u64,
    /// See [`Stats::connect_failures`].
    pub connect_failures: u64,
    /// See [`Stats::connection_losses`].
    pub connection_losses: u64,
    /// See [`Stats::timeouts`].
    pub timeouts: u64,
    /// See [`Stats::channel_refusals`].
    pub channel_refusals: u64,
}

impl Stats {
    /// Reads all counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            commands: get(&self.commands),
            connects: get(&self.connects),
            connect_failures: get(&self.connect_failures),
            connection_losses: get(&self.connection_losses),
            timeouts: get(&self.timeouts),
            channel_refusals: get(&self.channel_refusals),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The SSH client's event handler: checks the server's host key.
struct HostKeyCheck {
    policy: HostKeyPolicy,
    /// The fingerprint the server presented, for the mismatch message.
    seen: Arc<StdMutex<Option<String>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> std::result::Result<bool, Self::Error> {
        // RouterOS presents plain keys; certificates are not part of the pinning model.
        let PublicKeyOrCertificate::PublicKey { key, .. } = server_key else {
            return Ok(false);
        };
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(fingerprint(key));
        }
        if matches!(self.policy, HostKeyPolicy::InsecureAcceptAny) {
            warn!(
                host_key = %fingerprint(key),
                "host key checking is DISABLED: accepting the RDS's key without verification; pin it with the fingerprint shown here"
            );
        }
        Ok(self.policy.accepts(key))
    }
}

struct Session {
    handle: Handle<HostKeyCheck>,
    generation: u64,
}

#[derive(Default)]
struct ConnState {
    session: Option<Arc<Session>>,
    generation: u64,
    failures: u32,
}

/// Whether commands may go ahead, readable without waiting for a connection
/// attempt in progress. Written only by the holder of the connection lock.
#[derive(Debug, Default)]
struct Gate {
    /// The last connection attempt failed.
    down: bool,
    /// A connection attempt is in progress.
    connecting: bool,
    /// When the next connection attempt is due, after a failed one.
    retry_at: Option<Instant>,
    /// The error of the last failed attempt.
    last_error: String,
}

impl Gate {
    /// The error a command gets at `now` without trying anything: while the
    /// RDS is down, until the next attempt is due, and while another caller
    /// is making that attempt.
    fn refusal(&self, now: Instant) -> Option<Error> {
        if !self.down {
            return None;
        }
        let retry_in = self
            .retry_at
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(now));
        (self.connecting || !retry_in.is_zero()).then(|| Error::Unavailable {
            last_error: self.last_error.clone(),
            retry_in,
        })
    }
}

/// Clears [`Gate::connecting`] when a connection attempt ends, also when
/// its caller is cancelled mid-attempt.
struct Connecting<'a>(&'a StdMutex<Gate>);

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        lock(self.0).connecting = false;
    }
}

/// Locks a std mutex that holds plain values: one left by a panicking holder
/// is still consistent.
fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The SSH transport. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct SshTransport {
    config: Arc<SshConfig>,
    conn: Mutex<ConnState>,
    gate: StdMutex<Gate>,
    /// One permit per command allowed in flight; `capacity` of them exist.
    permits: Semaphore,
    capacity: AtomicUsize,
    /// Commands that went through since the limit last changed.
    successes: AtomicU64,
    stats: Arc<Stats>,
    metrics: RdsMetrics,
    status: StatusCell,
    /// The fingerprint of the host key the RDS presented at the last
    /// connection attempt that got that far.
    presented_host_key: Arc<StdMutex<Option<String>>>,
}

/// Commands that must go through before a lowered concurrency limit is
/// raised again by one.
pub const REGAIN_AFTER: u64 = 100;

/// Pause before asking again for a channel the RDS refused.
const REFUSED_CHANNEL_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

impl SshTransport {
    /// A transport that connects on first use, recording into metrics that
    /// nobody reads.
    pub fn new(config: SshConfig) -> Self {
        Self::with_metrics(config, RdsMetrics::default())
    }

    /// A transport that connects on first use and records its connections
    /// (and the `up` gauge) into `metrics`.
    pub fn with_metrics(config: SshConfig, metrics: RdsMetrics) -> Self {
        let capacity = config.max_concurrent_commands.max(1);
        let status = StatusCell::new(config.address(), metrics.clone());
        Self {
            config: Arc::new(config),
            conn: Mutex::new(ConnState::default()),
            gate: StdMutex::new(Gate::default()),
            permits: Semaphore::new(capacity),
            capacity: AtomicUsize::new(capacity),
            successes: AtomicU64::new(0),
            stats: Arc::new(Stats::default()),
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
        let gate = lock(&self.gate);
        gate.down.then(|| {
            gate.retry_at.map_or(Duration::ZERO, |at| {
                at.saturating_duration_since(Instant::now())
            })
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &SshConfig {
        &self.config
    }

    /// Counters of the transport's work.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Connects now if not connected (or reports why it cannot).
    pub async fn ensure_connected(&self) -> Result<()> {
        self.session().await.map(|_| ())
    }

    /// Whether a connection is currently established.
    pub async fn is_connected(&self) -> bool {
        let st = self.conn.lock().await;
        st.session.as_ref().is_some_and(|s| !s.handle.is_closed())
    }

    /// Runs one command (a RouterOS script) and returns what it printed.
    ///
    /// A stale connection found while opening the channel is replaced and the
    /// command sent on the new one; a connection that breaks after the command
    /// was sent gives [`Error::ConnectionLost`] with `outcome_unknown`.
    ///
    /// While the RDS is down and the next connection attempt is not due (or
    /// another caller is making it), fails at once with
    /// [`Error::Unavailable`]: nothing is sent and nothing is waited for.
    pub async fn exec(&self, command: &str) -> Result<ExecOutput> {
        if let Some(refused) = lock(&self.gate).refusal(Instant::now()) {
            return Err(refused);
        }
        let after = self.config.command_timeout;
        match tokio::time::timeout(after, self.exec_inner(command)).await {
            Ok(result) => result,
            Err(_) => {
                bump(&self.stats.timeouts);
                Err(Error::Timeout { after })
            }
        }
    }

    async fn acquire(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.permits
            .acquire()
            .await
            .map_err(|_| Error::ConnectionLost {
                outcome_unknown: false,
                detail: "transport closed".into(),
            })
    }

    async fn exec_inner(&self, command: &str) -> Result<ExecOutput> {
        let mut permit = self.acquire().await?;
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
                    bump(&self.stats.channel_refusals);
                    if self.shrink() {
                        permit.forget();
                        warn!(
                            error = %e,
                            limit = self.capacity.load(Ordering::Relaxed),
                            "the RDS refused a channel; lowering the number of concurrent commands"
                        );
                        permit = self.acquire().await?;
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
                    bump(&self.stats.connection_losses);
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
            bump(&self.stats.commands);
            if let Err(e) = guard.write.exec(true, command.as_bytes()).await {
                self.forget(&session, &e.to_string()).await;
                bump(&self.stats.connection_losses);
                return Err(Error::ConnectionLost {
                    outcome_unknown: true,
                    detail: format!("sending the command failed: {e}"),
                });
            }
            let result = read_reply(&mut read).await;
            guard.armed = false;
            return match result {
                Ok(out) => {
                    self.regain();
                    self.status.answered();
                    Ok(out)
                }
                Err(detail) => {
                    if session.handle.is_closed() {
                        self.forget(&session, &detail).await;
                    }
                    bump(&self.stats.connection_losses);
                    Err(Error::ConnectionLost {
                        outcome_unknown: true,
                        detail,
                    })
                }
            };
        }
    }

    /// The number of commands that may be in flight now: the configured
    /// maximum, lowered by one for every channel the RDS refused and raised
    /// again by one after every [`REGAIN_AFTER`] commands that went through.
    pub fn concurrency_limit(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    /// Lowers the concurrency limit by one; false when it is already 1.
    fn shrink(&self) -> bool {
        self.successes.store(0, Ordering::Relaxed);
        self.capacity
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cap| {
                (cap > 1).then(|| cap - 1)
            })
            .is_ok()
    }

    /// Counts a command that went through; every [`REGAIN_AFTER`] of them
    /// raise a lowered limit by one, in case the refusals were passing (an
    /// administrator's sessions, say).
    fn regain(&self) {
        let done = self.successes.fetch_add(1, Ordering::Relaxed) + 1;
        if !done.is_multiple_of(REGAIN_AFTER) {
            return;
        }
        let max = self.config.max_concurrent_commands.max(1);
        if self
            .capacity
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cap| {
                (cap < max).then(|| cap + 1)
            })
            .is_ok()
        {
            self.permits.add_permits(1);
        }
    }

    /// Closes the connection, if any. Commands in flight fail.
    pub async fn close(&self) {
        let session = self.conn.lock().await.session.take();
        if let Some(s) = session {
            let _ = s
                .handle
                .disconnect(russh::Disconnect::ByApplication, "closing", "en")
                .await;
        }
    }

    /// Drops `session` if it is still the current one, so the next command
    /// reconnects at once (a connection that worked earns an immediate retry).
    async fn forget(&self, session: &Session, reason: &str) {
        let mut st = self.conn.lock().await;
        if st
            .session
            .as_ref()
            .is_some_and(|s| s.generation == session.generation)
        {
            info!(reason, "connection to the RDS lost");
            st.session = None;
        }
    }

    /// The current session, connecting if needed.
    async fn session(&self) -> Result<Arc<Session>> {
        let mut st = self.conn.lock().await;
        if let Some(s) = &st.session {
            if !s.handle.is_closed() {
                return Ok(Arc::clone(s));
            }
            info!("connection to the RDS closed; reconnecting");
            st.session = None;
        }
        let connecting = {
            let mut gate = lock(&self.gate);
            if let Some(refused) = gate.refusal(Instant::now()) {
                return Err(refused);
            }
            gate.connecting = true;
            Connecting(&self.gate)
        };
        let result = match tokio::time::timeout(self.config.connect_timeout, self.connect()).await {
            Ok(result) => result,
            Err(_) => Err(Error::Connect {
                address: self.config.address(),
                reason: format!("no answer within {:?}", self.config.connect_timeout),
            }),
        };
        match result {
            Ok(handle) => {
                st.generation += 1;
                st.failures = 0;
                {
                    let mut gate = lock(&self.gate);
                    gate.down = false;
                    gate.retry_at = None;
                }
                drop(connecting);
                bump(&self.stats.connects);
                if st.generation > 1 {
                    self.metrics.ssh_reconnects.inc();
                }
                let session = Arc::new(Session {
                    handle,
                    generation: st.generation,
                });
                info!(address = %self.config.address(), connection = st.generation, "connected to the RDS");
                st.session = Some(Arc::clone(&session));
                self.status.answered();
                Ok(session)
            }
            Err(e) => {
                st.failures = st.failures.saturating_add(1);
                let delay = backoff_delay(
                    st.failures,
                    self.config.reconnect_initial,
                    self.config.reconnect_max,
                    rand::random::<f64>(),
                );
                let error = e.to_string();
                {
                    let mut gate = lock(&self.gate);
                    gate.down = true;
                    gate.retry_at = Some(Instant::now() + delay);
                    gate.last_error.clone_from(&error);
                }
                drop(connecting);
                bump(&self.stats.connect_failures);
                self.metrics.ssh_connect_failures.inc();
                // The transition to "down" is logged once by the status;
                // each attempt only at debug level.
                debug!(error = %e, failures = st.failures, retry_in = ?delay, "cannot connect to the RDS");
                self.status.unanswered(&error);
                Err(e)
            }
        }
    }

    async fn connect(&self) -> Result<Handle<HostKeyCheck>> {
        let cfg = &self.config;
        let address = cfg.address();
        let seen = Arc::clone(&self.presented_host_key);
        *lock(&seen) = None;
        let handler = HostKeyCheck {
            policy: cfg.host_key.clone(),
            seen: Arc::clone(&seen),
        };
        let ssh_config = Arc::new(client::Config {
            keepalive_interval: Some(cfg.keepalive_interval),
            keepalive_max: 3,
            inactivity_timeout: None,
            nodelay: true,
            ..client::Config::default()
        });
        let connect_error = |reason: String| Error::Connect {
            address: address.clone(),
            reason,
        };
        let mut handle =
            match client::connect(ssh_config, (cfg.host.as_str(), cfg.port), handler).await {
                Ok(h) => h,
                Err(russh::Error::UnknownKey) => {
                    let actual = seen
                        .lock()
                        .ok()
                        .and_then(|s| s.clone())
                        .unwrap_or_else(|| "a certificate".into());
                    return Err(Error::HostKeyMismatch {
                        address,
                        expected: cfg.host_key.describe(),
                        actual,
                    });
                }
                Err(e) => return Err(connect_error(e.to_string())),
            };
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .map_err(|e| connect_error(e.to_string()))?
            .flatten();
        let login = format!("{}{LOGIN_SUFFIX}", cfg.user);
        let auth = handle
            .authenticate_publickey(
                login,
                PrivateKeyWithHashAlg::new(Arc::clone(&cfg.key.0), hash),
            )
            .await
            .map_err(|e| connect_error(format!("authentication failed: {e}")))?;
        if !auth.success() {
            return Err(Error::AuthRejected {
                address,
                user: cfg.user.clone(),
            });
        }
        Ok(handle)
    }
}

/// Reads a channel until the server closes it. `Err` when the connection broke
/// before the command finished (no exit status and no end of output).
async fn read_reply(
    channel: &mut russh::ChannelReadHalf,
) -> std::result::Result<ExecOutput, String> {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut exit_status = None;
    let mut eof = false;
    loop {
        match channel.wait().await {
            Some(ChannelMsg::Data { data }) => stdout.extend_from_slice(&data),
            Some(ChannelMsg::ExtendedData { data, .. }) => stderr.extend_from_slice(&data),
            Some(ChannelMsg::ExitStatus { exit_status: s }) => exit_status = Some(s),
            Some(ChannelMsg::Eof) => eof = true,
            Some(ChannelMsg::Failure) => return Err("the RDS refused to run the command".into()),
            Some(ChannelMsg::Close) | None => break,
            Some(_) => {}
        }
    }
    if exit_status.is_none() && !eof {
        return Err("the connection closed before the command finished".into());
    }
    Ok(ExecOutput {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        exit_status,
    })
}

/// Closes a channel whose command is abandoned (its future dropped), so a
/// cancelled command does not leave the channel open on the server.
struct CloseOnDrop {
    write: Arc<russh::ChannelWriteHalf<client::Msg>>,
    armed: bool,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let write = Arc::clone(&self.write);
            rt.spawn(async move {
                let _ = write.close().await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down(retry_at: Option<Instant>, connecting: bool) -> Gate {
        Gate {
            down: true,
            connecting,
            retry_at,
            last_error: "connection refused".into(),
        }
    }

    #[test]
    fn commands_go_ahead_while_not_down() {
        let now = Instant::now();
        assert!(Gate::default().refusal(now).is_none());
        // Someone reconnecting after a connection that worked: wait for it.
        let gate = Gate {
            connecting: true,
            ..Gate::default()
        };
        assert!(gate.refusal(now).is_none());
    }

    #[test]
    fn while_down_commands_fail_fast_until_the_next_attempt_is_due() {
        let now = Instant::now();
        let later = now + Duration::from_secs(3);
        match down(Some(later), false).refusal(now) {
            Some(Error::Unavailable {
                last_error,
                retry_in,
            }) => {
                assert_eq!(last_error, "connection refused");
                assert_eq!(retry_in, Duration::from_secs(3));
            }
            other => panic!("{other:?}"),
        }
        // Due: one caller may try.
        assert!(down(Some(now), false).refusal(later).is_none());
        assert!(down(None, false).refusal(now).is_none());
    }

    #[test]
    fn while_down_commands_do_not_queue_behind_an_attempt_in_progress() {
        let now = Instant::now();
        match down(Some(now), true).refusal(now + Duration::from_secs(1)) {
            Some(Error::Unavailable { retry_in, .. }) => assert_eq!(retry_in, Duration::ZERO),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_abandoned_attempt_clears_connecting() {
        let gate = StdMutex::new(down(None, true));
        drop(Connecting(&gate));
        assert!(!lock(&gate).connecting);
    }
}
