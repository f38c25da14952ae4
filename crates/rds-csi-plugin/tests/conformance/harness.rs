//! The plugin served in-process on a unix socket, against the simulator, and
//! CSI clients connected to it the way the sidecars connect.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};
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
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub http: SocketAddr,
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
    /// Seconds between the controller's checks of the RDS.
    pub check_interval: u64,
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
        argv.push("--rds-check-interval".into());
        argv.push(options.check_interval.to_string());
        argv.extend(options.extra_flags);
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
        Self {
            sim,
            dir,
            socket,
            http,
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

    /// `GET path` on the plugin's HTTP endpoint: the status and the body.
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        http_get(self.http, path).await
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

/// The value of `series` in a scrape, 0 when absent.
pub fn metric_in(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// A plain HTTP/1.1 GET over TCP, as a scraper or the kubelet's probe makes
/// it: the status code and the body.
pub async fn http_get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

/// Decodes a chunked body.
fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
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
