//! The simulator as the driver logs in to it. `rds_sim::testing::TestSim`
//! starts it with a throwaway host key and client key; [`Login`] writes the
//! client key where the plugin reads it and gives the plugin's flags or
//! environment for it, and [`client_config`] is `rds-client`'s configuration
//! for it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rds_client::{ClientKey, HostKeyPolicy, SshConfig};
use rds_sim::testing::TestSim;
use russh::keys::HashAlg;
use russh::keys::ssh_key::LineEnding;

/// How the plugin logs in to a simulator: its address, user, key file and
/// the host key to pin.
#[derive(Debug, Clone)]
pub struct Login {
    /// The simulator's address.
    pub address: String,
    /// Its SSH port.
    pub port: u16,
    /// The RouterOS user.
    pub user: String,
    /// The client key's file.
    pub key_file: PathBuf,
    /// The simulator's host key fingerprint (`SHA256:…`), to pin.
    pub host_key: String,
}

impl Login {
    /// Writes `sim`'s client key to `<dir>/id_ed25519` (OpenSSH format,
    /// unencrypted) and returns the login.
    pub fn write(sim: &TestSim, dir: &Path) -> std::io::Result<Login> {
        let key_file = dir.join("id_ed25519");
        let text = sim
            .client_key
            .to_openssh(LineEnding::LF)
            .map_err(std::io::Error::other)?;
        std::fs::write(&key_file, text.as_bytes())?;
        Ok(Login {
            address: sim.addr.ip().to_string(),
            port: sim.addr.port(),
            user: sim.user.clone(),
            key_file,
            host_key: sim.host_key.fingerprint(HashAlg::Sha256).to_string(),
        })
    }

    /// The plugin's flags for this login.
    pub fn flags(&self) -> Vec<String> {
        self.pairs()
            .into_iter()
            .flat_map(|(flag, _, value)| [flag.to_owned(), value])
            .collect()
    }

    /// The plugin's environment variables for this login.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        self.pairs()
            .into_iter()
            .map(|(_, var, value)| (var, value))
            .collect()
    }

    fn pairs(&self) -> [(&'static str, &'static str, String); 5] {
        [
            ("--rds-address", "RDS_ADDRESS", self.address.clone()),
            ("--rds-ssh-port", "RDS_SSH_PORT", self.port.to_string()),
            ("--rds-user", "RDS_USER", self.user.clone()),
            (
                "--rds-private-key",
                "RDS_PRIVATE_KEY",
                self.key_file.display().to_string(),
            ),
            ("--rds-host-key", "RDS_HOST_KEY", self.host_key.clone()),
        ]
    }
}

/// `rds-client`'s configuration for `sim`, pinning its host key, with
/// timeouts generous for a loaded two-core machine or an emulated guest
/// (tests of timeouts set their own) and quick reconnects.
pub fn client_config(sim: &TestSim) -> SshConfig {
    let mut config = SshConfig::new(
        sim.addr.ip().to_string(),
        sim.addr.port(),
        sim.user.clone(),
        ClientKey::from_key(sim.client_key.clone()),
        HostKeyPolicy::Key(sim.host_key.clone()),
    );
    config.command_timeout = Duration::from_secs(60);
    config.reconnect_initial = Duration::from_millis(50);
    config.reconnect_max = Duration::from_millis(200);
    config
}
