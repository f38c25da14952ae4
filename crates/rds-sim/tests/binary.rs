//! The `rds-sim` binary as a benchmark's stand-in for an appliance: its
//! injected latency, its stats file, its terminal width, and the counts it
//! prints when it exits, seen from a plain SSH client.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test stops at the first surprise

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{Algorithm, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};

/// Accepts any host key: the simulator's is made afresh for the test.
struct AnyHostKey;

impl client::Handler for AnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// A free port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The simulator process; killed if the test ends before it is stopped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Running {
    /// Stops the simulator with SIGTERM, as a service manager would, and
    /// returns what it printed on stderr.
    fn terminate(mut self) -> String {
        use std::io::Read;
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut stderr = String::new();
        self.0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        self.0.wait().unwrap();
        stderr
    }
}

fn start(dir: &Path, port: u16, key: &PrivateKey) -> Running {
    let authorized = dir.join("authorized_keys");
    std::fs::write(&authorized, key.public_key().to_openssh().unwrap()).unwrap();
    Command::new(env!("CARGO_BIN_EXE_rds-sim"))
        .args(["--root", dir.join("rds").to_str().unwrap()])
        .args(["--host-key", dir.join("host_key").to_str().unwrap()])
        .args(["--authorized-keys", authorized.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--latency-ms", "300"])
        .args(["--stats-file", dir.join("stats.json").to_str().unwrap()])
        .args(["--width", "40"])
        .env("RDS_SIM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Running)
        .unwrap()
}

/// Connects as `admin+ct`, retrying while the simulator starts.
async fn connect(port: u16, key: &PrivateKey) -> Handle<AnyHostKey> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let config = Arc::new(client::Config::default());
        match client::connect(config, ("127.0.0.1", port), AnyHostKey).await {
            Ok(mut handle) => {
                let auth = handle
                    .authenticate_publickey(
                        "admin+ct",
                        PrivateKeyWithHashAlg::new(Arc::new(key.clone()), None),
                    )
                    .await
                    .unwrap();
                assert!(auth.success());
                return handle;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "rds-sim never answered: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Runs `command` in an exec channel and returns what it printed.
async fn exec(handle: &Handle<AnyHostKey>, command: &str) -> String {
    let mut channel = handle.channel_open_session().await.unwrap();
    channel.exec(true, command).await.unwrap();
    let mut out = Vec::new();
    while let Some(msg) = channel.wait().await {
        match msg {
            ChannelMsg::Data { data } => out.extend_from_slice(&data),
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn latency_stats_and_width_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
    let port = free_port();
    let sim = start(dir.path(), port, &key);
    let handle = connect(port, &key).await;

    let started = Instant::now();
    let out = exec(&handle, "/disk print detail").await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the injected latency"
    );
    // At 40 columns the legend wraps.
    assert!(
        out.starts_with("Flags: B - BLOCK-DEVICE; M - MOUNTED;\r\nt - NVME-TCP-EXPORT\r\n"),
        "{out}"
    );
    let stats = std::fs::read_to_string(dir.path().join("stats.json")).unwrap();
    assert_eq!(stats, "{\"commands\":1,\"execs\":1}\n");
    exec(
        &handle,
        ":if ([:len [/disk find where slot=a]] = 0) do={:put nothing}",
    )
    .await;
    let stats = std::fs::read_to_string(dir.path().join("stats.json")).unwrap();
    assert_eq!(stats, "{\"commands\":2,\"execs\":2}\n");

    // SIGTERM: the simulator says what it served on its way out.
    let output = sim.terminate();
    assert!(
        output.contains("rds-sim: served 2 execs (2 commands)"),
        "{output}"
    );
}
