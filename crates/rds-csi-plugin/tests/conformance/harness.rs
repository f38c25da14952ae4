//! The plugin served in-process on a unix socket, against the simulator, and
//! CSI clients connected to it the way the sidecars connect.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use csi_proto::v1::controller_client::ControllerClient;
use csi_proto::v1::identity_client::IdentityClient;
use rds_csi_plugin::{Args, PluginConfig, RunError};
use rds_sim::testing::TestSim;
use rds_sim::{LoopBtrfs, SimConfig};
use tempfile::TempDir;
use test_support::sim::Login;
use test_support::{grpc, http};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub const GIB: i64 = 1 << 30;
pub const MIB: i64 = 1 << 20;

/// A running plugin with its simulator.
pub struct Plugin {
    pub sim: TestSim,
    /// The pool's btrfs, when it has one: unmounted after the simulator
    /// stops and before the folder goes.
    _btrfs: Option<LoopBtrfs>,
    pub dir: TempDir,
    pub socket: PathBuf,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub http: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), RunError>>>,
    config: PluginConfig,
}

/// Options of [`Plugin::start_with`].
pub struct Options {
    pub pool_capacity: u64,
    pub max_slot_len: usize,
    pub routeros_version: String,
    pub mode: &'static str,
    pub extra_flags: Vec<String>,
    /// Seconds between the controller's checks of the RDS.
    pub check_interval: u64,
    /// A pool on a real, loop-mounted btrfs of this many bytes, labelled
    /// `pool1` (root only), instead of a plain folder.
    pub btrfs_bytes: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            pool_capacity: 1 << 40,
            max_slot_len: rds_sim::DEFAULT_MAX_SLOT_LEN,
            routeros_version: "7.21.1 (stable)".into(),
            mode: "all",
            extra_flags: Vec::new(),
            // Notice an RDS that went away within a second or so.
            check_interval: 1,
            btrfs_bytes: None,
        }
    }
}

impl Plugin {
    /// The plugin in `all` mode with default flags and a 1 TiB pool
    /// `storage-pool` holding the folder `metal-csi` (the Go driver's default
    /// volume path).
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rds");
        let btrfs = options.btrfs_bytes.map(|bytes| {
            LoopBtrfs::create(
                &dir.path().join("pool.btrfs"),
                &root.join("storage-pool"),
                bytes,
                "pool1",
            )
            .expect("a loop-mounted btrfs (as root, with btrfs-progs)")
        });
        let mut sim_config = if btrfs.is_some() {
            SimConfig::single_btrfs_pool(&root, "storage-pool", 0)
        } else {
            SimConfig::single_pool(&root, "storage-pool", options.pool_capacity)
        };
        sim_config.pools[0].directories = vec!["metal-csi".into(), "fast".into()];
        sim_config.max_slot_len = options.max_slot_len;
        sim_config.version = options.routeros_version.clone();
        let sim = TestSim::start(sim_config).await.unwrap();

        let login = Login::write(&sim, dir.path()).unwrap();
        let socket = dir.path().join("csi/csi.sock");
        let mut argv: Vec<String> = [
            "rds-csi-plugin",
            "--mode",
            options.mode,
            "--node-id",
            "node-1",
            "--nvme-address",
            "10.0.0.9",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        argv.extend(login.flags());
        argv.push("--endpoint".into());
        argv.push(format!("unix://{}", socket.display()));
        // The node service's state stays in the test's folder.
        argv.push("--state-dir".into());
        argv.push(dir.path().join("state").display().to_string());
        argv.push("--etc-nvme".into());
        argv.push(dir.path().join("etc-nvme").display().to_string());
        argv.push("--rds-check-interval".into());
        argv.push(options.check_interval.to_string());
        argv.extend(options.extra_flags);
        let config = PluginConfig::from_args(&Args::try_parse_from(&argv).unwrap()).unwrap();
        let mut plugin = Self {
            sim,
            _btrfs: btrfs,
            dir,
            socket,
            http: "127.0.0.1:0".parse().unwrap(),
            stop: None,
            task: None,
            config,
        };
        plugin.serve().await;
        plugin
    }

    /// Serves the plugin on its socket and a new HTTP port.
    async fn serve(&mut self) {
        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = rds_csi_plugin::Listeners {
            grpc: rds_csi_plugin::GrpcSocket::Bound(
                csi_driver::server::bind(&self.socket).unwrap(),
            ),
            http: Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
        };
        self.http = listeners.http.as_ref().unwrap().local_addr().unwrap();
        self.task = Some(tokio::spawn(rds_csi_plugin::serve_on(
            self.config.clone(),
            listeners,
            async {
                let _ = stopped.await;
            },
        )));
        self.stop = Some(stop);
    }

    /// Stops the plugin and starts it again on the same simulator, as a
    /// restarted pod would be: nothing of the first one's memory is left.
    pub async fn restart(&mut self) {
        self.stop().await.unwrap();
        self.serve().await;
    }

    /// Another plugin serving the same RDS simulator, with its own socket
    /// and state under `name`: a second controller replica, or this one
    /// restarted.
    pub async fn another(&self, name: &str) -> Instance {
        Instance::launch(&self.sim, self.dir.path(), name, &Options::default()).await
    }

    /// A gRPC channel over the plugin's unix socket.
    pub async fn channel(&self) -> Channel {
        grpc::connect(&self.socket).await.unwrap()
    }

    pub async fn identity(&self) -> IdentityClient<Channel> {
        IdentityClient::new(self.channel().await)
    }

    pub async fn controller(&self) -> ControllerClient<Channel> {
        ControllerClient::new(self.channel().await)
    }

    /// Stops the plugin and waits until it has finished.
    pub async fn stop(&mut self) -> Result<(), RunError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap(),
            None => Ok(()),
        }
    }

    /// The disk slots on the simulated RDS.
    pub fn slots(&self) -> Vec<String> {
        self.sim
            .engine
            .disks()
            .into_iter()
            .map(|d| d.slot)
            .collect()
    }

    /// `GET path` on the plugin's HTTP endpoint: the status and the body.
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        http::get(self.http, path).await.unwrap()
    }

    /// The value of one series in `/metrics`, named with its labels exactly
    /// as exposed (`rds_csi_rpc_total{method="Probe",code="OK"}`); 0 when
    /// the series is not exposed (yet).
    pub async fn metric(&self, series: &str) -> f64 {
        let (status, body) = self.http_get("/metrics").await;
        assert_eq!(status, 200, "{body}");
        metric_in(&body, series)
    }

    /// Runs a RouterOS script on the simulator directly (as an operator would).
    pub fn routeros(&self, script: &str) -> String {
        let run = self
            .sim
            .engine
            .execute(script, &rds_sim::ExecOptions::default());
        assert!(!run.failed, "{script}: {}", run.output);
        run.output
    }
}

/// One plugin process's worth: its socket, and how to stop it.
pub struct Instance {
    pub socket: PathBuf,
    pub http: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), RunError>>>,
}

impl Instance {
    /// Serves the plugin against `sim`, with its files under `dir/sub`.
    async fn launch(sim: &TestSim, dir: &Path, sub: &str, options: &Options) -> Instance {
        let dir = dir.join(sub);
        std::fs::create_dir_all(&dir).unwrap();
        let login = Login::write(sim, &dir).unwrap();
        let socket = dir.join("csi/csi.sock");
        let mut argv: Vec<String> = [
            "rds-csi-plugin",
            "--mode",
            options.mode,
            "--node-id",
            "node-1",
            "--nvme-address",
            "10.0.0.9",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        argv.extend(login.flags());
        argv.push("--endpoint".into());
        argv.push(format!("unix://{}", socket.display()));
        // The node service's state stays in the test's folder.
        argv.push("--state-dir".into());
        argv.push(dir.join("state").display().to_string());
        argv.push("--etc-nvme".into());
        argv.push(dir.join("etc-nvme").display().to_string());
        argv.push("--rds-check-interval".into());
        argv.push(options.check_interval.to_string());
        argv.extend(options.extra_flags.iter().cloned());
        let config = PluginConfig::from_args(&Args::try_parse_from(&argv).unwrap()).unwrap();

        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = rds_csi_plugin::Listeners {
            grpc: rds_csi_plugin::GrpcSocket::Bound(csi_driver::server::bind(&socket).unwrap()),
            http: Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
        };
        let http = listeners.http.as_ref().unwrap().local_addr().unwrap();
        let task = tokio::spawn(rds_csi_plugin::serve_on(config, listeners, async {
            let _ = stopped.await;
        }));
        Instance {
            socket,
            http,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn controller(&self) -> ControllerClient<Channel> {
        ControllerClient::new(grpc::connect(&self.socket).await.unwrap())
    }

    /// The value of one series in this plugin's `/metrics` (see
    /// [`Plugin::metric`]).
    pub async fn metric(&self, series: &str) -> f64 {
        let (status, body) = http::get(self.http, "/metrics").await.unwrap();
        assert_eq!(status, 200, "{body}");
        metric_in(&body, series)
    }

    /// Stops the plugin and waits until it has finished.
    pub async fn stop(&mut self) -> Result<(), RunError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap(),
            None => Ok(()),
        }
    }
}

/// The value of `series` in a scrape, 0 when absent (a counter not yet
/// counted).
pub fn metric_in(scrape: &str, series: &str) -> f64 {
    http::metric(scrape, series).unwrap_or(0.0)
}

/// Polls `check` until it gives a value, for at most two minutes: nothing
/// here depends on how fast a loaded machine is.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
