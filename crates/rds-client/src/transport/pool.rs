//! The connection: one persistent SSH connection to the RDS, made on first
//! use and made again when it drops.
//!
//! Connecting is serialised by the connection lock; commands that find a
//! live connection share it without waiting for anything. Whether an attempt
//! may be made now (or a command must fail fast) is [`super::reconnect`]'s
//! decision; what an attempt found is reported to the status and to the
//! metrics here.

use std::sync::Arc;

use russh::client::{self, Handle};
use russh::keys::PrivateKeyWithHashAlg;
use tokio::time::Instant;
use tracing::{debug, info};

use super::SshTransport;
use super::host_key::HostKeyCheck;
use super::reconnect::{Attempt, lock};
use crate::config::LOGIN_SUFFIX;
use crate::error::{Error, Result};

/// One established connection.
pub(super) struct Session {
    pub(super) handle: Handle<HostKeyCheck>,
    /// Which connection this is (1 for the first), so that a command can
    /// drop exactly the connection that failed it.
    pub(super) generation: u64,
}

/// The current connection, if any. Behind the connection lock.
#[derive(Default)]
pub(super) struct ConnState {
    session: Option<Arc<Session>>,
    generation: u64,
}

impl SshTransport {
    /// Connects now if not connected (or reports why it cannot).
    pub async fn ensure_connected(&self) -> Result<()> {
        self.session().await.map(|_| ())
    }

    /// Whether a connection is currently established.
    pub async fn is_connected(&self) -> bool {
        let st = self.conn.lock().await;
        st.session.as_ref().is_some_and(|s| !s.handle.is_closed())
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
    pub(super) async fn forget(&self, session: &Session, reason: &str) {
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
    pub(super) async fn session(&self) -> Result<Arc<Session>> {
        let mut st = self.conn.lock().await;
        if let Some(s) = &st.session {
            if !s.handle.is_closed() {
                return Ok(Arc::clone(s));
            }
            info!("connection to the RDS closed; reconnecting");
            st.session = None;
        }
        let attempt = Attempt::begin(&self.reconnect, Instant::now())?;
        let result = match tokio::time::timeout(self.config.connect_timeout, self.connect()).await {
            Ok(result) => result,
            Err(_) => Err(Error::Connect {
                address: self.config.address(),
                reason: format!("no answer within {:?}", self.config.connect_timeout),
            }),
        };
        match result {
            Ok(handle) => {
                attempt.succeeded();
                st.generation += 1;
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
                let error = e.to_string();
                let (delay, failures) = attempt.failed(
                    &error,
                    self.config.reconnect_initial,
                    self.config.reconnect_max,
                    rand::random::<f64>(),
                );
                self.metrics.ssh_connect_failures.inc();
                // The transition to "down" is logged once by the status;
                // each attempt only at debug level.
                debug!(error = %e, failures, retry_in = ?delay, "cannot connect to the RDS");
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
                    let actual = lock(&seen)
                        .clone()
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
