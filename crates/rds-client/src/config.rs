//! How to reach the RDS: address, identity, the pinned host key, and timing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{HashAlg, PrivateKey, PublicKey};

use crate::error::{Error, Result};

/// The suffix RouterOS reads from the login name: `c` turns off colours, `t`
/// terminal detection. Output then has no escape sequences.
pub const LOGIN_SUFFIX: &str = "+ct";

/// Which server host keys are accepted.
#[derive(Clone, Debug)]
pub enum HostKeyPolicy {
    /// Exactly this public key.
    Key(PublicKey),
    /// A key with this SHA-256 fingerprint (`SHA256:…`, as `ssh-keygen -l` prints).
    Fingerprint(String),
    /// Any key. Only for first set-up and tests; logged as a warning on every
    /// connection, because it lets anyone on the path impersonate the RDS.
    InsecureAcceptAny,
}

impl HostKeyPolicy {
    /// Reads a pin: an OpenSSH public key line (`ssh-ed25519 AAAA… [comment]`) or a
    /// fingerprint (`SHA256:…`).
    pub fn parse(pin: &str) -> Result<Self> {
        let pin = pin.trim();
        if let Some(b64) = pin.strip_prefix("SHA256:") {
            let valid = !b64.is_empty()
                && b64
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
            return if valid {
                Ok(Self::Fingerprint(format!(
                    "SHA256:{}",
                    b64.trim_end_matches('=')
                )))
            } else {
                Err(Error::HostKeyPin {
                    pin: pin.to_owned(),
                })
            };
        }
        PublicKey::from_openssh(pin)
            .map(Self::Key)
            .map_err(|_| Error::HostKeyPin {
                pin: pin.to_owned(),
            })
    }

    /// Whether `key` is accepted.
    pub fn accepts(&self, key: &PublicKey) -> bool {
        match self {
            Self::Key(pinned) => pinned.key_data() == key.key_data(),
            Self::Fingerprint(fp) => fingerprint(key) == *fp,
            Self::InsecureAcceptAny => true,
        }
    }

    /// The pin, as shown in messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Key(k) => fingerprint(k),
            Self::Fingerprint(fp) => fp.clone(),
            Self::InsecureAcceptAny => "any key (host key checking disabled)".to_owned(),
        }
    }
}

/// `SHA256:…` fingerprint of a public key, without base64 padding.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The driver's SSH identity.
#[derive(Clone)]
pub struct ClientKey(pub(crate) Arc<PrivateKey>);

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientKey({})", fingerprint(self.0.public_key()))
    }
}

impl ClientKey {
    /// Loads an unencrypted private key (OpenSSH or PEM; ed25519 or RSA).
    pub fn load(path: &Path) -> Result<Self> {
        russh::keys::load_secret_key(path, None)
            .map(|k| Self(Arc::new(k)))
            .map_err(|e| Error::Key {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
    }

    /// Uses a key already in memory.
    pub fn from_key(key: PrivateKey) -> Self {
        Self(Arc::new(key))
    }

    /// The public half, in OpenSSH form, for `/user ssh-keys import`.
    pub fn public_openssh(&self) -> String {
        self.0.public_key().to_openssh().unwrap_or_default()
    }
}

/// Everything needed to reach the RDS.
#[derive(Clone, Debug)]
pub struct SshConfig {
    /// Host name or address of the RDS.
    pub host: String,
    /// SSH port.
    pub port: u16,
    /// RouterOS user, without suffix; [`LOGIN_SUFFIX`] is appended when logging in.
    pub user: String,
    /// The driver's private key.
    pub key: ClientKey,
    /// Which host keys are accepted.
    pub host_key: HostKeyPolicy,
    /// Limit for TCP connect, handshake and authentication together.
    pub connect_timeout: Duration,
    /// Limit for one command, from opening its channel to its last byte.
    pub command_timeout: Duration,
    /// Most commands in flight at once on the connection.
    pub max_concurrent_commands: usize,
    /// Interval of SSH keepalives; a dead connection is noticed after
    /// `keepalive_interval * 3`.
    pub keepalive_interval: Duration,
    /// First delay before reconnecting after a failed connection attempt.
    pub reconnect_initial: Duration,
    /// Longest delay between connection attempts.
    pub reconnect_max: Duration,
}

impl SshConfig {
    /// A configuration with the defaults for everything but the essentials.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        key: ClientKey,
        host_key: HostKeyPolicy,
    ) -> Self {
        Self {
            host: host.into(),
            port,
            user: user.into(),
            key,
            host_key,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(30),
            max_concurrent_commands: 16,
            keepalive_interval: Duration::from_secs(10),
            reconnect_initial: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
        }
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PrivateKey {
        PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519).unwrap()
    }

    #[test]
    fn pins_by_key_or_fingerprint() {
        let server = key();
        let other = key();
        let line = server.public_key().to_openssh().unwrap();
        let by_key = HostKeyPolicy::parse(&format!("{line} rds@lab")).unwrap();
        assert!(by_key.accepts(server.public_key()));
        assert!(!by_key.accepts(other.public_key()));

        let fp = fingerprint(server.public_key());
        assert!(fp.starts_with("SHA256:"));
        let by_fp = HostKeyPolicy::parse(&fp).unwrap();
        assert!(by_fp.accepts(server.public_key()));
        assert!(!by_fp.accepts(other.public_key()));
        // Padding, as some tools print it, is ignored.
        assert!(
            HostKeyPolicy::parse(&format!("{fp}="))
                .unwrap()
                .accepts(server.public_key())
        );

        assert!(HostKeyPolicy::InsecureAcceptAny.accepts(other.public_key()));
    }

    #[test]
    fn bad_pins_are_refused() {
        for pin in [
            "",
            "SHA256:",
            "SHA256:a b",
            "ssh-ed25519 notbase64",
            "MD5:aa:bb",
        ] {
            assert!(
                matches!(HostKeyPolicy::parse(pin), Err(Error::HostKeyPin { .. })),
                "{pin}"
            );
        }
    }

    #[test]
    fn addresses() {
        let c = SshConfig::new(
            "10.0.0.1",
            22,
            "admin",
            ClientKey::from_key(key()),
            HostKeyPolicy::InsecureAcceptAny,
        );
        assert_eq!(c.address(), "10.0.0.1:22");
        let c = SshConfig {
            host: "fd00::1".into(),
            ..c
        };
        assert_eq!(c.address(), "[fd00::1]:22");
    }
}
