//! The check of the RDS's SSH host key, run by russh during the handshake.
//!
//! The key the server presents is accepted only if the configured
//! [`HostKeyPolicy`] accepts it; its fingerprint is kept either way, so that
//! a mismatch (or a first set-up) can tell the user which key to pin.
//! Accepting any key is an explicit policy, logged as a warning on every
//! connection.

use std::sync::{Arc, Mutex};

use russh::client;
use russh::keys::PublicKeyOrCertificate;
use tracing::warn;

use crate::config::{HostKeyPolicy, fingerprint};

/// The SSH client's event handler: checks the server's host key.
pub(super) struct HostKeyCheck {
    pub(super) policy: HostKeyPolicy,
    /// The fingerprint the server presented, for the mismatch message.
    pub(super) seen: Arc<Mutex<Option<String>>>,
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
