//! The plugin served in-process on a unix socket, against the simulator, and
//! CSI clients connected to it the way the sidecars connect.

use std::path::PathBuf;

use clap::Parser;
use csi_proto::v1::controller_client::ControllerClient;
use csi_proto::v1::identity_client::IdentityClient;
use hyper_util::rt::TokioIo;
use rds_csi_plugin::{Args, PluginConfig, RunError};
use rds_sim::SimConfig;
use rds_sim::testing::TestSim;
use russh::keys::HashAlg;
use russh::keys::ssh_key::LineEnding;
use tempfile::TempDir;
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint, Uri};

pub const GIB: i64 = 1 << 30;
pub const MIB: i64 = 1 << 20;

/// A running plugin with its simulator.
pub struct Plugin {
    pub sim: TestSim,
    pub dir: TempDir,
    pub socket: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), RunError>>>,
}

/// Options of [`Plugin::start_with`].
pub struct Options {
    pub pool_capacity: u64,
    pub max_slot_len: usize,
    pub routeros_version: String,
    pub mode: &'static str,
    pub extra_flags: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            pool_capacity: 1 << 40,
            max_slot_len: rds_sim::DEFAULT_MAX_SLOT_LEN,
            routeros_version: "7.21.1 (stable)".into(),
            mode: "all",
            extra_flags: Vec::new(),
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
        let mut sim_config = SimConfig::single_pool(&root, "storage-pool", options.pool_capacity);
        sim_config.pools[0].directories = vec!["metal-csi".into(), "fast".into()];
        sim_config.max_slot_len = options.max_slot_len;
        sim_config.version = options.routeros_version.clone();
        let sim = TestSim::start(sim_config).await.unwrap();

        let key_file = dir.path().join("id_ed25519");
        std::fs::write(
            &key_file,
            sim.client_key.to_openssh(LineEnding::LF).unwrap(),
        )
        .unwrap();
        let socket = dir.path().join("csi/csi.sock");
        let fingerprint = sim.host_key.fingerprint(HashAlg::Sha256).to_string();
        let mut argv: Vec<String> = [
            "rds-csi-plugin",
            "--mode",
            options.mode,
            "--node-id",
            "node-1",
            "--rds-address",
            "127.0.0.1",
            "--rds-user",
            &sim.user,
            "--rds-private-key",
            key_file.to_str().unwrap(),
            "--rds-host-key",
            &fingerprint,
            "--nvme-address",
            "10.0.0.9",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        argv.push("--rds-ssh-port".into());
        argv.push(sim.addr.port().to_string());
        argv.push("--endpoint".into());
        argv.push(format!("unix://{}", socket.display()));
        // The node service's state stays in the test's folder.
        argv.push("--state-dir".into());
        argv.push(dir.path().join("state").display().to_string());
        argv.push("--etc-nvme".into());
        argv.push(dir.path().join("etc-nvme").display().to_string());
        argv.extend(options.extra_flags);
        let config = PluginConfig::from_args(&Args::try_parse_from(&argv).unwrap()).unwrap();

        let (stop, stopped) = oneshot::channel::<()>();
        let listener = csi_driver::server::bind(&socket).unwrap();
        let task = tokio::spawn(rds_csi_plugin::serve_on(config, listener, async {
            let _ = stopped.await;
        }));
        Self {
            sim,
            dir,
            socket,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A gRPC channel over the plugin's unix socket.
    pub async fn channel(&self) -> Channel {
        connect(self.socket.clone()).await
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

/// Connects to a unix socket as the sidecars do (gRPC over HTTP/2).
pub async fn connect(socket: PathBuf) -> Channel {
    Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await
        .unwrap()
}
