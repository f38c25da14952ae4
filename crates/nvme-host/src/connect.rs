//! Connecting: one attempt ([`Host::connect`]) and attempts until a deadline
//! ([`Host::connect_with_retry`]).
//!
//! An attempt blocks in the kernel for as long as the TCP and NVMe handshakes
//! take, so the retrying version runs each attempt on tokio's blocking pool. A
//! write in progress cannot be called back: when the deadline comes during an
//! attempt, the error says so, and a later connect reports
//! [`Connected::Already`] if that attempt succeeded after all.

use std::borrow::Cow;
use std::io;
use std::net::ToSocketAddrs;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::error::{GaveUp, NvmeError};
use crate::fabrics::{Connected, EALREADY, RetryPolicy, classify_errno, parse_connect_reply};
use crate::host::Host;
use crate::options::{ConnectionConfig, check_value, is_host_name, is_ip_literal};

impl Host {
    /// Connects once: resolves a host name in `traddr` if needed, opens
    /// `<root>/dev/nvme-fabrics` read-write, writes the option string in one
    /// write and reads back `instance=N,cntlid=M`. EALREADY (errno 114: a live
    /// controller with the same target, NQN and host identity exists) is
    /// `Ok(Connected::Already)`.
    ///
    /// This blocks, possibly for seconds; from async code use
    /// [`Host::connect_with_retry`] or `spawn_blocking`.
    pub fn connect(&self, cfg: &ConnectionConfig) -> Result<Connected, NvmeError> {
        let cfg = resolve_traddr(cfg)?;
        let options = cfg.option_string()?;
        debug!(%options, "writing to /dev/nvme-fabrics");
        match self.fabrics.submit(&options) {
            Ok(reply) => match parse_connect_reply(&reply) {
                Some(connected) => {
                    info!(target = %cfg.target(), ?connected, "NVMe/TCP controller connected");
                    Ok(connected)
                }
                None => Err(NvmeError::BadReply { reply }),
            },
            Err(e) if e.raw_os_error() == Some(EALREADY) => {
                debug!(target = %cfg.target(), "already connected");
                Ok(Connected::Already)
            }
            Err(e) => Err(connect_error(&cfg, e)),
        }
    }

    /// Connects, retrying transient failures (see
    /// [`crate::fabrics::classify_errno`]) with exponential backoff and jitter
    /// from `policy`. It never sleeps past `deadline`, never starts an attempt
    /// after it, and stops waiting for an attempt at it (see the module
    /// documentation). Permanent failures stop at once. Failures come back as
    /// [`NvmeError::ConnectGaveUp`], with the number of attempts and the last
    /// errno.
    pub async fn connect_with_retry(
        &self,
        cfg: &ConnectionConfig,
        deadline: Instant,
        policy: RetryPolicy,
    ) -> Result<Connected, NvmeError> {
        self.connect_with_retry_observed(cfg, deadline, policy, &|_| {})
            .await
    }

    /// [`Host::connect_with_retry`], calling `on_retry` with each transient
    /// error that is about to be retried (for metrics).
    pub async fn connect_with_retry_observed(
        &self,
        cfg: &ConnectionConfig,
        deadline: Instant,
        policy: RetryPolicy,
        on_retry: &(dyn Fn(&NvmeError) + Sync),
    ) -> Result<Connected, NvmeError> {
        let target = cfg.target();
        let gave_up = |attempts, why, last: Option<NvmeError>| NvmeError::ConnectGaveUp {
            target: target.clone(),
            attempts,
            why,
            last_errno: last.as_ref().and_then(NvmeError::errno),
            last: last.map(Box::new),
        };
        let mut attempts = 0u32;
        let mut last = None;
        loop {
            if Instant::now() >= deadline {
                return Err(gave_up(attempts, GaveUp::Deadline, last));
            }
            attempts += 1;
            let (host, attempt_cfg) = (self.clone(), cfg.clone());
            let attempt = tokio::task::spawn_blocking(move || host.connect(&attempt_cfg));
            let error = match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(Ok(connected))) => return Ok(connected),
                Ok(Ok(Err(e))) => e,
                Ok(Err(join)) => NvmeError::Task(join.to_string()),
                Err(_) => {
                    warn!(%target, attempts, "deadline reached during a connect attempt");
                    return Err(gave_up(attempts, GaveUp::AttemptOverran, last));
                }
            };
            if !error.is_transient() {
                return Err(gave_up(attempts, GaveUp::Permanent, Some(error)));
            }
            let delay = policy.delay(attempts, rand::random::<f64>());
            let resume = Instant::now() + delay;
            if resume >= deadline {
                return Err(gave_up(attempts, GaveUp::Deadline, Some(error)));
            }
            warn!(%target, attempts, error = %error, retry_in = ?delay, "connect failed; retrying");
            on_retry(&error);
            last = Some(error);
            tokio::time::sleep_until(resume).await;
        }
    }
}

/// The configuration with `traddr` as an IP address: unchanged if it is one,
/// resolved (first address the resolver gives) if it is a host name.
fn resolve_traddr(cfg: &ConnectionConfig) -> Result<Cow<'_, ConnectionConfig>, NvmeError> {
    if is_ip_literal(&cfg.traddr) {
        return Ok(Cow::Borrowed(cfg));
    }
    check_value("traddr", &cfg.traddr)?;
    if !is_host_name(&cfg.traddr) {
        return Err(NvmeError::Invalid {
            field: "traddr",
            reason: format!("{:?} is neither an IP address nor a host name", cfg.traddr),
        });
    }
    let resolve_error = |reason: String| NvmeError::Resolve {
        host: cfg.traddr.clone(),
        reason,
    };
    let address = (cfg.traddr.as_str(), cfg.trsvcid)
        .to_socket_addrs()
        .map_err(|e| resolve_error(e.to_string()))?
        .next()
        .ok_or_else(|| resolve_error("no address".into()))?;
    debug!(host = %cfg.traddr, ip = %address.ip(), "resolved the target's host name");
    let mut resolved = cfg.clone();
    resolved.traddr = address.ip().to_string();
    Ok(Cow::Owned(resolved))
}

fn connect_error(cfg: &ConnectionConfig, source: io::Error) -> NvmeError {
    let errno = source.raw_os_error();
    let class = classify_errno(errno);
    NvmeError::Connect {
        target: cfg.target(),
        errno,
        transient: class.transient,
        hint: class.hint,
        source,
    }
}
