//! A simulator on a loopback port, for tests and benchmarks of other crates.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use rds_sim::{SimConfig, testing::TestSim};
//! let dir = std::env::temp_dir().join("rds-sim-example");
//! let sim = TestSim::start(SimConfig::single_pool(&dir, "raid10", 10 << 30)).await?;
//! // Connect to `sim.addr` as `sim.user` with `sim.client_key`, pinning `sim.host_key`.
//! println!("{} as {}", sim.addr, sim.user);
//! # Ok(())
//! # }
//! ```

use std::net::SocketAddr;

use russh::keys::{Algorithm, PrivateKey, PublicKey};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::server::{ServerConfig, serve};
use crate::{Engine, SimConfig, SimError};

/// A running simulator with a fresh host key and one authorized client key.
pub struct TestSim {
    /// The engine: state, faults and counters.
    pub engine: Engine,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The RouterOS user to log in as.
    pub user: String,
    /// A key the simulator accepts.
    pub client_key: PrivateKey,
    /// The simulator's host key (to pin).
    pub host_key: PublicKey,
    host_private: PrivateKey,
    authorized: Vec<PublicKey>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Why a test simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The engine could not open its state.
    #[error(transparent)]
    Engine(#[from] SimError),
    /// Binding or key generation failed.
    #[error("cannot start the simulator: {0}")]
    Setup(String),
}

impl TestSim {
    /// Starts a simulator on `127.0.0.1` at a free port.
    pub async fn start(config: SimConfig) -> Result<Self, StartError> {
        Self::start_with_keys(config, Vec::new()).await
    }

    /// Starts a simulator that also accepts `extra` client keys.
    pub async fn start_with_keys(
        config: SimConfig,
        extra: Vec<PublicKey>,
    ) -> Result<Self, StartError> {
        let host = new_key()?;
        let client_key = new_key()?;
        let mut authorized = vec![client_key.public_key().clone()];
        authorized.extend(extra);
        Self::launch(config, "127.0.0.1:0", host, client_key, authorized).await
    }

    /// Stops this simulator (if running) and starts a new one on `addr` with the
    /// same keys and a fresh engine opened from `config`, as after a reboot.
    pub async fn restart_on(mut self, config: SimConfig, addr: &str) -> Result<Self, StartError> {
        self.stop().await;
        let (host, client, authorized) = (
            self.host_private.clone(),
            self.client_key.clone(),
            self.authorized.clone(),
        );
        Self::launch(config, addr, host, client, authorized).await
    }

    async fn launch(
        config: SimConfig,
        addr: &str,
        host: PrivateKey,
        client_key: PrivateKey,
        authorized: Vec<PublicKey>,
    ) -> Result<Self, StartError> {
        let engine = Engine::open(config)?;
        let listener = TcpListener::bind(addr).await.map_err(setup)?;
        let addr = listener.local_addr().map_err(setup)?;
        let user = "admin".to_owned();
        let server = ServerConfig {
            host_key: host.clone(),
            authorized_keys: authorized.clone(),
            user: user.clone(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, engine.clone(), server, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            engine,
            addr,
            user,
            client_key,
            host_key: host.public_key().clone(),
            host_private: host,
            authorized,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Stops the simulator as a reboot would: no new connections, and the open
    /// ones are cut.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

fn setup(e: impl std::fmt::Display) -> StartError {
    StartError::Setup(e.to_string())
}

fn new_key() -> Result<PrivateKey, StartError> {
    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(setup)
}

impl Drop for TestSim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
