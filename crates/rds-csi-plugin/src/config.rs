//! Command-line flags (each also an environment variable) and the typed
//! configuration they make.
//!
//! Turning flags into a [`PluginConfig`] does no I/O: files named by flags are
//! read when the plugin starts, so a bad flag is reported before anything
//! happens, and tests can check the rules without a file system.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use csi_driver::snapshots::PoolUseLimit;
use csi_driver::{Defaults, FsType};
use rds_client::HostKeyPolicy;
use routeros::{Nqn, RdsPath};

/// The driver name Kubernetes knows the plugin by.
pub const DEFAULT_DRIVER_NAME: &str = "rds.csi.srvlab.io";

/// Where the HTTP endpoint (`/healthz`, `/readyz`, `/metrics`) listens unless
/// told otherwise: every address, port 9810.
pub const DEFAULT_HTTP_ENDPOINT: &str = "0.0.0.0:9810";

/// NQN prefix of this driver's exports. It names the driver (not the
/// appliance), so that orphan cleanup on nodes can tell this driver's
/// connections from any other NVMe-oF connection.
pub const DEFAULT_NQN_PREFIX: &str = "nqn.2024-01.io.srvlab.csi.rds:";

/// Which services the plugin serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Identity and Controller (the Deployment beside the sidecars).
    Controller,
    /// Identity and Node (the DaemonSet on every node).
    Node,
    /// All three (a single process, for demos and tests).
    All,
}

impl Mode {
    /// Whether the controller is served.
    pub fn controller(self) -> bool {
        matches!(self, Mode::Controller | Mode::All)
    }

    /// Whether the node service is served.
    pub fn node(self) -> bool {
        matches!(self, Mode::Node | Mode::All)
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of `rds-csi-plugin`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "rds-csi-plugin",
    version,
    about = "CSI driver for MikroTik RDS storage over NVMe/TCP",
    after_help = "`rds-csi-plugin doctor [FLAGS]` checks the set-up these flags describe \
                  (the RDS, and this machine for the node) and prints what to fix.",
    args_override_self = true
)]
pub struct Args {
    /// gRPC endpoint: `unix:///path/to/csi.sock`.
    #[arg(long, env = "CSI_ENDPOINT", default_value = "unix:///csi/csi.sock")]
    pub endpoint: String,

    /// Services to serve.
    #[arg(long, env = "RDS_CSI_MODE", value_enum, default_value = "all")]
    pub mode: Mode,

    /// This node's name (Kubernetes: the node name); required for the node
    /// service. The node ID it reports is the host NQN it attaches volumes
    /// as, `<nqn-prefix>node:<node name>`.
    #[arg(long, env = "NODE_ID")]
    pub node_id: Option<String>,

    /// Name of the driver in Kubernetes.
    #[arg(long, env = "RDS_CSI_DRIVER_NAME", default_value = DEFAULT_DRIVER_NAME)]
    pub driver_name: String,

    /// Address of the RDS's SSH service (controller).
    #[arg(long, env = "RDS_ADDRESS")]
    pub rds_address: Option<String>,

    /// SSH port of the RDS.
    #[arg(long, env = "RDS_SSH_PORT", default_value_t = 22)]
    pub rds_ssh_port: u16,

    /// RouterOS user the controller logs in as.
    #[arg(long, env = "RDS_USER", default_value = "admin")]
    pub rds_user: String,

    /// File holding the controller's SSH private key (ed25519 or RSA, unencrypted).
    #[arg(long, env = "RDS_PRIVATE_KEY")]
    pub rds_private_key: Option<PathBuf>,

    /// The RDS's SSH host key: an OpenSSH public key line, or its fingerprint `SHA256:…`.
    #[arg(long, env = "RDS_HOST_KEY")]
    pub rds_host_key: Option<String>,

    /// Accept any host key. Lets anyone on the network path impersonate the RDS;
    /// for a first set-up only.
    #[arg(
        long,
        env = "RDS_INSECURE_SKIP_HOST_KEY_CHECK",
        default_value_t = false
    )]
    pub rds_insecure_skip_host_key_check: bool,

    /// Limit for one RouterOS command, in seconds.
    #[arg(long, env = "RDS_COMMAND_TIMEOUT", default_value_t = 30)]
    pub rds_command_timeout: u64,

    /// Most RouterOS commands in flight at once on the SSH connection.
    #[arg(long, env = "RDS_MAX_CONCURRENT_COMMANDS", default_value_t = 16)]
    pub rds_max_concurrent_commands: usize,

    /// Seconds between two checks of the RDS while it answers (controller).
    /// While it does not, it is tried again as the reconnect backoff allows
    /// (0.5 s doubling up to 30 s), and volume operations fail fast.
    #[arg(long, env = "RDS_CHECK_INTERVAL", default_value_t = 10)]
    pub rds_check_interval: u64,

    /// Folder on the RDS for volume images, when a StorageClass gives no `volumePath`.
    #[arg(
        long,
        env = "RDS_VOLUME_PATH",
        default_value = "/storage-pool/metal-csi"
    )]
    pub volume_path: String,

    /// NVMe/TCP address nodes connect to, when a StorageClass gives no
    /// `nvmeAddress` (default: the RDS address).
    #[arg(long, env = "RDS_NVME_ADDRESS")]
    pub nvme_address: Option<String>,

    /// NVMe/TCP port, when a StorageClass gives no `nvmePort`.
    #[arg(long, env = "RDS_NVME_PORT", default_value_t = 4420)]
    pub nvme_port: u16,

    /// Filesystem, when neither the volume capability nor the StorageClass names one.
    #[arg(long, env = "RDS_DEFAULT_FS_TYPE", default_value = "ext4")]
    pub default_fs_type: String,

    /// Prefix of the NQNs of new volumes.
    #[arg(long, env = "RDS_NQN_PREFIX", default_value = DEFAULT_NQN_PREFIX)]
    pub nqn_prefix: String,

    /// Percent of a pool's size above which no new snapshot is taken on it
    /// (RESOURCE_EXHAUSTED): snapshots share the pool with the volumes, and
    /// every block a volume changes after a snapshot is kept twice. 100:
    /// never refused for this reason.
    #[arg(long, env = "RDS_SNAPSHOT_MAX_POOL_USE", default_value_t = 90)]
    pub snapshot_max_pool_use: u8,

    /// The node plugin's own state folder: staging records and, unless
    /// /etc/nvme has one, the host's NVMe identity. Must survive restarts of
    /// the plugin (a hostPath in Kubernetes).
    #[arg(long, env = "RDS_CSI_STATE_DIR", default_value = "/var/lib/rds-csi")]
    pub state_dir: PathBuf,

    /// Where the host's NVMe identity (`hostnqn`, `hostid`) is, if set up.
    #[arg(long, env = "RDS_CSI_ETC_NVME", default_value = "/etc/nvme")]
    pub etc_nvme: PathBuf,

    /// Root under which the node finds the host's /dev, /sys and /proc.
    #[arg(long, env = "RDS_CSI_HOST_ROOT", default_value = "/")]
    pub host_root: PathBuf,

    /// Most volumes the scheduler may place on this node (0: no limit).
    #[arg(long, env = "RDS_CSI_MAX_VOLUMES_PER_NODE", default_value_t = 0)]
    pub max_volumes_per_node: i64,

    /// Seconds between two looks of the node's health monitor at every
    /// staged volume (controller state, staging mount).
    #[arg(long, env = "RDS_CSI_HEALTH_CHECK_INTERVAL", default_value_t = 10)]
    pub health_check_interval: u64,

    /// Seconds the node may spend at start-up disconnecting this driver's
    /// orphaned NVMe/TCP connections before it serves anyway.
    #[arg(long, env = "RDS_CSI_ORPHAN_CLEANUP_TIMEOUT", default_value_t = 30)]
    pub orphan_cleanup_timeout: u64,

    /// Seconds that calls in flight get to finish after SIGTERM.
    #[arg(long, env = "RDS_CSI_SHUTDOWN_GRACE", default_value_t = 25)]
    pub shutdown_grace: u64,

    /// Address of the HTTP endpoint serving `/healthz`, `/readyz` and
    /// `/metrics` (Prometheus): `ip:port`, or `:port` for every address;
    /// port 0 picks a free port (logged). Empty: no HTTP endpoint.
    #[arg(long, env = "RDS_CSI_HTTP_ENDPOINT", default_value = DEFAULT_HTTP_ENDPOINT)]
    pub http_endpoint: String,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log level or filter (`info`, `debug`, `rds_client=debug,info`, ...).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

/// Why the flags do not make a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A flag needed in this mode is missing.
    #[error("--{flag} (or ${env}) is required {when}")]
    Missing {
        /// The flag.
        flag: &'static str,
        /// Its environment variable.
        env: &'static str,
        /// In which case.
        when: &'static str,
    },
    /// A flag's value is invalid.
    #[error("--{flag}: {reason}")]
    Invalid {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// How the controller reaches the RDS.
#[derive(Debug, Clone)]
pub struct RdsConfig {
    /// Host name or address.
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// RouterOS user.
    pub user: String,
    /// Private key file, read at start-up.
    pub private_key: PathBuf,
    /// Accepted host keys.
    pub host_key: HostKeyPolicy,
    /// Limit per command.
    pub command_timeout: Duration,
    /// Most commands at once.
    pub max_concurrent_commands: usize,
    /// Time between two checks of the RDS while it answers.
    pub check_interval: Duration,
}

/// The plugin's configuration, checked.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// Path of the unix socket.
    pub socket: PathBuf,
    /// Services served.
    pub mode: Mode,
    /// The driver's name.
    pub driver_name: String,
    /// This node's name (node mode).
    pub node_id: Option<String>,
    /// The controller's settings (controller mode).
    pub controller: Option<ControllerConfig>,
    /// The node's settings (node mode).
    pub node: Option<csi_driver::NodeConfig>,
    /// Time calls in flight get after SIGTERM.
    pub shutdown_grace: Duration,
    /// Where `/healthz`, `/readyz` and `/metrics` are served; `None`: not at all.
    pub http_endpoint: Option<SocketAddr>,
}

/// What the controller needs.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// How to reach the RDS.
    pub rds: RdsConfig,
    /// Defaults for what StorageClasses leave out.
    pub defaults: Defaults,
    /// NQN prefix of new volumes.
    pub nqn_prefix: String,
    /// How full a pool may be for a new snapshot on it.
    pub snapshot_pool_limit: PoolUseLimit,
}

fn invalid(flag: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        flag,
        reason: reason.into(),
    }
}

/// The address of the HTTP endpoint: `ip:port`, or `:port` for every
/// address; `None` for an empty value (no endpoint). Names are not looked
/// up: parsing does no I/O.
pub fn http_endpoint(text: &str) -> Result<Option<SocketAddr>, ConfigError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let parsed = match text.strip_prefix(':') {
        Some(port) => port
            .parse::<u16>()
            .ok()
            .map(|port| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))),
        None => text.parse::<SocketAddr>().ok(),
    };
    parsed.map(Some).ok_or_else(|| {
        invalid(
            "http-endpoint",
            format!(
                "{text:?} is not an address such as {DEFAULT_HTTP_ENDPOINT}, :9810 or [::]:9810 \
                 (an IP address, not a name), or empty to serve none"
            ),
        )
    })
}

/// The socket path of a `unix://` endpoint.
pub fn socket_path(endpoint: &str) -> Result<PathBuf, ConfigError> {
    let path = endpoint
        .strip_prefix("unix://")
        .or_else(|| endpoint.strip_prefix("unix:"))
        .unwrap_or(endpoint);
    if !path.starts_with('/') {
        return Err(invalid(
            "endpoint",
            format!(
                "{endpoint:?} is not an absolute unix socket path such as unix:///csi/csi.sock"
            ),
        ));
    }
    Ok(PathBuf::from(path))
}

impl PluginConfig {
    /// Checks the flags. Does no I/O.
    pub fn from_args(args: &Args) -> Result<Self, ConfigError> {
        let socket = socket_path(&args.endpoint)?;
        let http_endpoint = http_endpoint(&args.http_endpoint)?;
        if args.driver_name.is_empty()
            || args.driver_name.len() > 63
            || !args
                .driver_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(invalid(
                "driver-name",
                "must be a domain-like name of at most 63 characters, such as rds.csi.srvlab.io",
            ));
        }
        // The prefix plus a 32-character slot must be a valid NQN.
        Nqn::new(&format!("{}{}", args.nqn_prefix, "x".repeat(32)))
            .map_err(|e| invalid("nqn-prefix", e.to_string()))?;
        let default_fs = FsType::parse(&args.default_fs_type)
            .map_err(|e| invalid("default-fs-type", e.to_string()))?;
        let node_id = match (&args.node_id, args.mode.node()) {
            (Some(id), _) if !id.is_empty() => Some(id.clone()),
            (_, true) => {
                return Err(ConfigError::Missing {
                    flag: "node-id",
                    env: "NODE_ID",
                    when: "for the node service",
                });
            }
            _ => None,
        };
        let controller = if args.mode.controller() {
            let (rds, defaults) = controller_config(args)?;
            let snapshot_pool_limit = PoolUseLimit::new(args.snapshot_max_pool_use)
                .ok_or_else(|| invalid("snapshot-max-pool-use", "must be 1 to 100 (percent)"))?;
            Some(ControllerConfig {
                rds,
                defaults,
                nqn_prefix: args.nqn_prefix.clone(),
                snapshot_pool_limit,
            })
        } else {
            None
        };
        let node = match (&node_id, args.mode.node()) {
            (Some(id), true) => {
                // The node attaches published volumes as a host NQN made of
                // its name (`nvme_host::fence`): a name that cannot make one
                // is refused here, with the reason.
                nvme_host::fence::node_host_nqn(&args.nqn_prefix, id)
                    .map_err(|e| invalid("node-id", e.to_string()))?;
                if args.max_volumes_per_node < 0 {
                    return Err(invalid("max-volumes-per-node", "must not be negative"));
                }
                if args.health_check_interval == 0 {
                    return Err(invalid(
                        "health-check-interval",
                        "must be at least 1 second",
                    ));
                }
                for (flag, path) in [
                    ("state-dir", &args.state_dir),
                    ("etc-nvme", &args.etc_nvme),
                    ("host-root", &args.host_root),
                ] {
                    if !path.is_absolute() {
                        return Err(invalid(
                            flag,
                            format!("{} is not an absolute path", path.display()),
                        ));
                    }
                }
                Some(csi_driver::NodeConfig {
                    node_id: id.clone(),
                    max_volumes: args.max_volumes_per_node,
                    host_root: args.host_root.clone(),
                    state_dir: args.state_dir.clone(),
                    etc_nvme: args.etc_nvme.clone(),
                    default_fs,
                    timeouts: csi_driver::node::NodeTimeouts {
                        orphan_cleanup: Duration::from_secs(args.orphan_cleanup_timeout),
                        ..Default::default()
                    },
                    nqn_prefix: args.nqn_prefix.clone(),
                    health_interval: Duration::from_secs(args.health_check_interval),
                })
            }
            _ => None,
        };
        Ok(Self {
            socket,
            mode: args.mode,
            driver_name: args.driver_name.clone(),
            node_id,
            controller,
            node,
            shutdown_grace: Duration::from_secs(args.shutdown_grace),
            http_endpoint,
        })
    }
}

fn controller_config(args: &Args) -> Result<(RdsConfig, Defaults), ConfigError> {
    const WHEN: &str = "for the controller";
    let address = args.rds_address.clone().ok_or(ConfigError::Missing {
        flag: "rds-address",
        env: "RDS_ADDRESS",
        when: WHEN,
    })?;
    csi_driver::params::check_address("rds-address", &address)
        .map_err(|e| invalid("rds-address", e.to_string()))?;
    let private_key = args.rds_private_key.clone().ok_or(ConfigError::Missing {
        flag: "rds-private-key",
        env: "RDS_PRIVATE_KEY",
        when: WHEN,
    })?;
    let host_key = match (&args.rds_host_key, args.rds_insecure_skip_host_key_check) {
        (Some(_), true) => {
            return Err(invalid(
                "rds-insecure-skip-host-key-check",
                "cannot be combined with --rds-host-key",
            ));
        }
        (Some(pin), false) => {
            HostKeyPolicy::parse(pin).map_err(|e| invalid("rds-host-key", e.to_string()))?
        }
        (None, true) => HostKeyPolicy::InsecureAcceptAny,
        (None, false) => {
            return Err(ConfigError::Missing {
                flag: "rds-host-key",
                env: "RDS_HOST_KEY",
                when: "for the controller (the RDS's host key or its SHA256 fingerprint; \
                       `ssh-keyscan <rds>` shows it), unless --rds-insecure-skip-host-key-check",
            });
        }
    };
    if args.rds_command_timeout == 0 || args.rds_command_timeout > 3600 {
        return Err(invalid("rds-command-timeout", "must be 1 to 3600 seconds"));
    }
    if args.rds_max_concurrent_commands == 0 || args.rds_max_concurrent_commands > 256 {
        return Err(invalid("rds-max-concurrent-commands", "must be 1 to 256"));
    }
    if args.rds_check_interval == 0 || args.rds_check_interval > 3600 {
        return Err(invalid("rds-check-interval", "must be 1 to 3600 seconds"));
    }
    let volume_path =
        RdsPath::new(&args.volume_path).map_err(|e| invalid("volume-path", e.to_string()))?;
    let nvme_address = match &args.nvme_address {
        Some(a) => csi_driver::params::check_address("nvme-address", a)
            .map_err(|e| invalid("nvme-address", e.to_string()))?,
        None => address.clone(),
    };
    if args.nvme_port == 0 {
        return Err(invalid("nvme-port", "must be 1 to 65535"));
    }
    let fs_type = FsType::parse(&args.default_fs_type)
        .map_err(|e| invalid("default-fs-type", e.to_string()))?;
    Ok((
        RdsConfig {
            address,
            port: args.rds_ssh_port,
            user: args.rds_user.clone(),
            private_key,
            host_key,
            command_timeout: Duration::from_secs(args.rds_command_timeout),
            max_concurrent_commands: args.rds_max_concurrent_commands,
            check_interval: Duration::from_secs(args.rds_check_interval),
        },
        Defaults {
            volume_path,
            nvme_address,
            nvme_port: args.nvme_port,
            fs_type,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "SHA256:pSY43iobEtHIjSVi8+waoU065/b6K2/LlQ7Bs1g8BFY";

    fn args(extra: &[&str]) -> Result<Args, clap::Error> {
        let mut argv = vec!["rds-csi-plugin"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv)
    }

    fn controller(extra: &[&str]) -> Result<PluginConfig, ConfigError> {
        let mut all = vec![
            "--mode",
            "controller",
            "--rds-address",
            "10.0.0.1",
            "--rds-private-key",
            "/keys/id",
            "--rds-host-key",
            FP,
        ];
        all.extend_from_slice(extra);
        PluginConfig::from_args(&args(&all).unwrap())
    }

    #[test]
    fn controller_defaults() {
        let c = controller(&[]).unwrap();
        assert_eq!(c.socket, PathBuf::from("/csi/csi.sock"));
        assert_eq!(c.driver_name, "rds.csi.srvlab.io");
        assert_eq!(c.node_id, None);
        let c = c.controller.unwrap();
        let rds = c.rds;
        assert_eq!(
            (rds.address.as_str(), rds.port, rds.user.as_str()),
            ("10.0.0.1", 22, "admin")
        );
        assert!(matches!(rds.host_key, HostKeyPolicy::Fingerprint(_)));
        let d = c.defaults;
        assert_eq!(d.volume_path.as_str(), "/storage-pool/metal-csi");
        assert_eq!(
            (d.nvme_address.as_str(), d.nvme_port, d.fs_type),
            ("10.0.0.1", 4420, FsType::Ext4)
        );
        assert_eq!(c.nqn_prefix, DEFAULT_NQN_PREFIX);
        assert_eq!(c.snapshot_pool_limit, PoolUseLimit::DEFAULT);
    }

    #[test]
    fn the_snapshot_pool_limit_is_a_percentage() {
        let limit = |v: &str| {
            controller(&["--snapshot-max-pool-use", v])
                .map(|c| c.controller.unwrap().snapshot_pool_limit.percent())
        };
        assert_eq!(limit("75").unwrap(), 75);
        assert_eq!(limit("100").unwrap(), 100);
        for bad in ["0", "101"] {
            let err = limit(bad).unwrap_err().to_string();
            assert!(err.starts_with("--snapshot-max-pool-use"), "{bad}: {err}");
        }
        assert!(args(&["--snapshot-max-pool-use", "x"]).is_err());
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            socket_path("unix:///csi/csi.sock").unwrap(),
            PathBuf::from("/csi/csi.sock")
        );
        assert_eq!(
            socket_path("unix:/csi/csi.sock").unwrap(),
            PathBuf::from("/csi/csi.sock")
        );
        assert_eq!(
            socket_path("/csi/csi.sock").unwrap(),
            PathBuf::from("/csi/csi.sock")
        );
        assert!(socket_path("tcp://0.0.0.0:10000").is_err());
        assert!(socket_path("unix://relative.sock").is_err());
    }

    #[test]
    fn missing_and_invalid_flags_say_which() {
        let msg = |r: Result<PluginConfig, ConfigError>| r.unwrap_err().to_string();
        let bare = |extra: &[&str]| {
            let mut all = vec!["--mode", "controller"];
            all.extend_from_slice(extra);
            PluginConfig::from_args(&args(&all).unwrap())
        };
        assert!(
            msg(bare(&[]))
                .starts_with("--rds-address (or $RDS_ADDRESS) is required for the controller")
        );
        assert!(msg(bare(&["--rds-address", "r"])).starts_with("--rds-private-key"));
        assert!(
            msg(bare(&["--rds-address", "r", "--rds-private-key", "/k"])).contains("ssh-keyscan")
        );
        assert!(
            bare(&[
                "--rds-address",
                "r",
                "--rds-private-key",
                "/k",
                "--rds-insecure-skip-host-key-check"
            ])
            .is_ok()
        );
        assert!(
            msg(controller(&["--rds-insecure-skip-host-key-check"])).contains("cannot be combined")
        );
        assert!(msg(controller(&["--rds-host-key", "MD5:xx"])).starts_with("--rds-host-key"));
        assert!(msg(controller(&["--volume-path", "relative"])).starts_with("--volume-path"));
        assert!(msg(controller(&["--default-fs-type", "btrfs"])).starts_with("--default-fs-type"));
        assert!(msg(controller(&["--nqn-prefix", "iqn.x:"])).starts_with("--nqn-prefix"));
        assert!(msg(controller(&["--nvme-address", "a,b"])).starts_with("--nvme-address"));
        assert!(msg(controller(&["--driver-name", "Bad Name"])).starts_with("--driver-name"));
        assert!(
            msg(controller(&["--rds-command-timeout", "0"])).starts_with("--rds-command-timeout")
        );
        assert!(msg(controller(&["--endpoint", "tcp://x"])).starts_with("--endpoint"));
        let node = PluginConfig::from_args(&args(&["--mode", "node"]).unwrap());
        assert_eq!(
            msg(node),
            "--node-id (or $NODE_ID) is required for the node service"
        );
        assert!(
            PluginConfig::from_args(&args(&["--mode", "node", "--node-id", "n1"]).unwrap()).is_ok()
        );
        // Not a Kubernetes node name: no host NQN can be made of it.
        let node = PluginConfig::from_args(&args(&["--mode", "node", "--node-id", "N_1"]).unwrap());
        assert!(msg(node).starts_with("--node-id"));
        assert!(args(&["--mode", "sideways"]).is_err());
    }

    #[test]
    fn http_endpoint_and_check_interval() {
        let c = controller(&[]).unwrap();
        assert_eq!(c.http_endpoint, Some("0.0.0.0:9810".parse().unwrap()));
        assert_eq!(
            c.controller.unwrap().rds.check_interval,
            Duration::from_secs(10)
        );

        let c = controller(&[
            "--http-endpoint",
            "127.0.0.1:0",
            "--rds-check-interval",
            "2",
        ])
        .unwrap();
        assert_eq!(c.http_endpoint, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(
            c.controller.unwrap().rds.check_interval,
            Duration::from_secs(2)
        );
        let c = controller(&["--http-endpoint", ""]).unwrap();
        assert_eq!(c.http_endpoint, None, "empty: no endpoint");

        assert_eq!(
            http_endpoint(":9090").unwrap(),
            Some("0.0.0.0:9090".parse().unwrap())
        );
        assert_eq!(
            http_endpoint("[::1]:9810").unwrap(),
            Some("[::1]:9810".parse().unwrap())
        );
        assert_eq!(http_endpoint("  ").unwrap(), None);
        for bad in ["localhost:9810", "9810", "0.0.0.0", ":x", "1.2.3.4:99999"] {
            let err = http_endpoint(bad).unwrap_err().to_string();
            assert!(err.starts_with("--http-endpoint"), "{bad}: {err}");
        }
        let err = controller(&["--rds-check-interval", "0"]).unwrap_err();
        assert!(err.to_string().starts_with("--rds-check-interval"), "{err}");
        // The node has no RDS to check, and takes the endpoint too.
        let node = PluginConfig::from_args(
            &args(&[
                "--mode",
                "node",
                "--node-id",
                "n1",
                "--http-endpoint",
                ":9811",
            ])
            .unwrap(),
        )
        .unwrap();
        assert_eq!(node.http_endpoint, Some("0.0.0.0:9811".parse().unwrap()));
    }

    #[test]
    fn nvme_address_defaults_to_the_rds() {
        let c = controller(&["--nvme-address", "10.0.1.1", "--nvme-port", "4421"]).unwrap();
        let d = c.controller.unwrap().defaults;
        assert_eq!((d.nvme_address.as_str(), d.nvme_port), ("10.0.1.1", 4421));
    }
}
