//! The `rds-csi-plugin` binary itself: configured from the environment, on
//! its socket, and stopped by SIGTERM only after the calls in flight finish.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use csi_proto::v1::identity_client::IdentityClient;
use csi_proto::v1::volume_capability::access_mode::Mode;
use csi_proto::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use csi_proto::v1::{CapacityRange, CreateVolumeRequest, GetPluginInfoRequest, VolumeCapability};
use rds_sim::SimConfig;
use rds_sim::testing::TestSim;
use test_support::grpc;
use test_support::sim::Login;
use tokio::net::UnixStream;
use tonic::transport::Channel;

const BIN: &str = env!("CARGO_BIN_EXE_rds-csi-plugin");

struct Setup {
    _dir: tempfile::TempDir,
    sim: TestSim,
    socket: PathBuf,
    login: Login,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SimConfig::single_pool(dir.path().join("rds"), "storage-pool", 1 << 40);
    config.pools[0].directories = vec!["metal-csi".into()];
    let sim = TestSim::start(config).await.unwrap();
    let login = Login::write(&sim, dir.path()).unwrap();
    let socket = dir.path().join("plugin/csi.sock");
    Setup {
        _dir: dir,
        sim,
        socket,
        login,
    }
}

impl Setup {
    /// The plugin, configured only through environment variables.
    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .envs(self.login.env())
            .env("CSI_ENDPOINT", format!("unix://{}", self.socket.display()))
            .env("RDS_CSI_MODE", "controller")
            .env("LOG_FORMAT", "json")
            // Tests run side by side: any free port, not the default.
            .env("RDS_CSI_HTTP_ENDPOINT", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }
}

async fn channel(socket: &Path) -> Channel {
    grpc::connect(socket).await.unwrap()
}

/// Waits until the plugin answers on its socket.
async fn wait_ready(socket: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("plugin exited early: {status}");
        }
        if UnixStream::connect(socket).await.is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "plugin did not listen on {}",
            socket.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the plugin to exit, without blocking the runtime: the test's own
/// gRPC connections must stay serviced while the plugin shuts down.
async fn wait_exit(mut child: Child) -> (i32, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "plugin did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn sigterm_waits_for_calls_in_flight() {
    let s = setup().await;
    let mut child = s.command().spawn().unwrap();
    wait_ready(&s.socket, &mut child).await;
    let ch = channel(&s.socket).await;
    let info = IdentityClient::new(ch.clone())
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "rds.csi.srvlab.io");

    s.sim
        .engine
        .faults()
        .set_latency(Duration::from_millis(1500));
    let create = tokio::spawn(async move {
        csi_proto::v1::controller_client::ControllerClient::new(ch)
            .create_volume(CreateVolumeRequest {
                name: "pvc-5f7e1c2a-9b3d-4e8f-a1b2-c3d4e5f60718".into(),
                capacity_range: Some(CapacityRange {
                    required_bytes: 1 << 30,
                    limit_bytes: 0,
                }),
                volume_capabilities: vec![VolumeCapability {
                    access_mode: Some(AccessMode {
                        mode: Mode::SingleNodeWriter as i32,
                    }),
                    access_type: Some(AccessType::Mount(MountVolume::default())),
                }],
                ..Default::default()
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    sigterm(&child);
    let volume = create.await.unwrap().unwrap().into_inner().volume.unwrap();
    assert_eq!(volume.capacity_bytes, 1 << 30);
    let (code, stderr) = wait_exit(child).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    // JSON logs, one object per line, with the volume on the RPC's lines.
    let rpc_line = stderr
        .lines()
        .find(|l| l.contains("CreateVolume") && l.contains("\"ok\""))
        .unwrap_or_else(|| panic!("no CreateVolume line in {stderr}"));
    assert!(
        rpc_line.starts_with('{') && rpc_line.contains("pvc-5f7e1c2a9b3d4e8fa1b2c3d4e5f6"),
        "{rpc_line}"
    );
}

#[tokio::test]
async fn a_stale_socket_is_replaced() {
    let s = setup().await;
    std::fs::create_dir_all(s.socket.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&s.socket).unwrap());
    assert!(s.socket.exists());
    let mut child = s.command().spawn().unwrap();
    wait_ready(&s.socket, &mut child).await;
    IdentityClient::new(channel(&s.socket).await)
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap();
    sigterm(&child);
    assert_eq!(wait_exit(child).await.0, 0);
}

#[tokio::test]
async fn a_file_where_the_socket_should_be_is_kept_and_reported() {
    let s = setup().await;
    std::fs::create_dir_all(s.socket.parent().unwrap()).unwrap();
    std::fs::write(&s.socket, b"precious").unwrap();
    let child = s.command().spawn().unwrap();
    let (code, stderr) = wait_exit(child).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is not a socket"), "{stderr}");
    assert_eq!(std::fs::read(&s.socket).unwrap(), b"precious");
}

#[tokio::test]
async fn bad_configuration_exits_2_and_says_what_to_fix() {
    let s = setup().await;
    let (code, stderr) = wait_exit(s.command().env_remove("RDS_HOST_KEY").spawn().unwrap()).await;
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--rds-host-key (or $RDS_HOST_KEY) is required"),
        "{stderr}"
    );
    let (code, stderr) = wait_exit(s.command().env("RDS_CSI_MODE", "node").spawn().unwrap()).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("--node-id"), "{stderr}");
    let (code, stderr) = wait_exit(
        s.command()
            .env("RDS_PRIVATE_KEY", "/nonexistent/key")
            .spawn()
            .unwrap(),
    )
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("/nonexistent/key"), "{stderr}");
}

#[tokio::test]
async fn a_call_stuck_past_the_grace_period_does_not_keep_the_plugin_alive() {
    let s = setup().await;
    let mut child = s
        .command()
        .env("RDS_CSI_SHUTDOWN_GRACE", "1")
        .spawn()
        .unwrap();
    wait_ready(&s.socket, &mut child).await;
    let ch = channel(&s.socket).await;
    // The RDS hangs: the call cannot finish within the grace period.
    s.sim.engine.faults().set_latency(Duration::from_secs(30));
    let stuck = tokio::spawn(async move {
        csi_proto::v1::controller_client::ControllerClient::new(ch)
            .create_volume(CreateVolumeRequest {
                name: "pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1".into(),
                capacity_range: Some(CapacityRange {
                    required_bytes: 1 << 30,
                    limit_bytes: 0,
                }),
                volume_capabilities: vec![VolumeCapability {
                    access_mode: Some(AccessMode {
                        mode: Mode::SingleNodeWriter as i32,
                    }),
                    access_type: Some(AccessType::Mount(MountVolume::default())),
                }],
                ..Default::default()
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    sigterm(&child);
    let (code, stderr) = wait_exit(child).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(stderr.contains("end of the grace period"), "{stderr}");
    assert!(stuck.await.unwrap().is_err(), "the stuck call was cut off");
}
