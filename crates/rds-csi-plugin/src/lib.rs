//! The rds-csi plugin: flags to configuration ([`config`]), and [`run`], which
//! serves the CSI services on a unix socket until told to stop, with the
//! HTTP endpoint (`/healthz`, `/readyz`, `/metrics`) beside it.
//!
//! [`main`] parses flags, sets up logging and signals, and calls [`run`]; the
//! binary is just that. Tests call [`serve_on`] with listeners of their own
//! ([`Listeners`]), or start [`main`] in a process of their own to kill it.
//! `rds-csi-plugin doctor [flags]` checks a set-up instead ([`doctor`]).

pub mod config;
pub mod doctor;
pub mod pools;

use std::ffi::OsString;
use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use config::LogFormat;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

use csi_driver::server::{self, Services};
use csi_driver::{ControllerService, IdentityService, NodeService};
use rds_client::{ClientKey, ConnectionMonitor, RdsClient, RdsStatus, SshConfig};
use telemetry::{Health, Metrics};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tracing::{info, warn};

pub use config::{Args, ConfigError, PluginConfig};

/// The plugin's version, as GetPluginInfo reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why the plugin stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The socket could not be bound.
    #[error("cannot listen on {path}: {source}")]
    Bind {
        /// The socket path.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The HTTP endpoint could not be bound.
    #[error("cannot serve HTTP (--http-endpoint) on {address}: {source}")]
    BindHttp {
        /// The address.
        address: std::net::SocketAddr,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The RDS client could not be set up (the key file, most likely).
    #[error(transparent)]
    Rds(#[from] rds_client::Error),
    /// The node service could not be set up (its state folder, most likely).
    #[error("node service: {0}")]
    Node(#[from] csi_driver::DriverError),
    /// The gRPC server failed.
    #[error(transparent)]
    Serve(#[from] server::ServeError),
}

/// What the plugin listens on: the gRPC socket, and the HTTP endpoint if
/// there is one.
#[derive(Debug)]
pub struct Listeners {
    /// The CSI gRPC socket.
    pub grpc: GrpcSocket,
    /// `/healthz`, `/readyz` and `/metrics`; `None`: not served.
    pub http: Option<TcpListener>,
}

/// The CSI gRPC socket: bound already, or a path to bind once the plugin is
/// ready to take calls (after the node's start-up, so no call can reach a
/// node that is still cleaning up).
#[derive(Debug)]
pub enum GrpcSocket {
    /// A listener bound by the caller.
    Bound(UnixListener),
    /// Bound by [`serve_on`], replacing a stale socket (never a file).
    Path(std::path::PathBuf),
}

impl GrpcSocket {
    fn bind(self) -> Result<UnixListener, RunError> {
        match self {
            Self::Bound(listener) => Ok(listener),
            Self::Path(path) => server::bind(&path).map_err(|source| RunError::Bind {
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

impl Listeners {
    /// Binds the configured HTTP endpoint; the gRPC socket is bound by
    /// [`serve_on`] once the plugin is ready to take calls.
    pub async fn bind(config: &PluginConfig) -> Result<Self, RunError> {
        let grpc = GrpcSocket::Path(config.socket.clone());
        let http = match config.http_endpoint {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .map_err(|source| RunError::BindHttp { address, source })?,
            ),
            None => None,
        };
        Ok(Self { grpc, http })
    }
}

/// Binds the configured socket and HTTP endpoint, and serves until
/// `shutdown` completes; calls in flight then finish before this returns.
pub async fn run(config: PluginConfig, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let listeners = Listeners::bind(&config).await?;
    serve_on(config, listeners, shutdown).await
}

/// Serves on `listeners` until `shutdown` completes.
///
/// The plugin's metrics and readiness are made here, once: the RDS client
/// records into `metrics.rds`, every CSI call into `metrics.rpc`; readiness
/// has the component `csi` (ready once the gRPC server serves) and, in the
/// controller, `rds` (ready while the RDS answers and is new enough).
pub async fn serve_on(
    config: PluginConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::new());
    let health = Health::new();
    health.not_ready("csi", "starting");
    // Served from the start (liveness must answer during start-up) until
    // after the gRPC server's grace period (probes and scrapes keep
    // answering while calls finish).
    let http = listeners
        .http
        .map(|listener| HttpEndpoint::start(listener, Arc::clone(&metrics), health.clone()));
    // Kept until this returns: the monitor and the pool watch stop when
    // they are dropped.
    let mut rds_monitor = None;
    let mut identity_rds = None;
    let controller = match &config.controller {
        Some(c) => {
            let rds = &c.rds;
            let key = ClientKey::load(&rds.private_key)?;
            let mut ssh = SshConfig::new(
                rds.address.clone(),
                rds.port,
                rds.user.clone(),
                key,
                rds.host_key.clone(),
            );
            ssh.command_timeout = rds.command_timeout;
            ssh.max_concurrent_commands = rds.max_concurrent_commands;
            let client = Arc::new(RdsClient::with_metrics(ssh, metrics.rds.clone()));
            rds_monitor = Some((
                ConnectionMonitor::spawn(&client, rds.check_interval),
                pools::PoolWatch::spawn(&client, metrics.rds.clone(), rds.check_interval),
            ));
            follow_rds(client.watch_status(), health.clone());
            identity_rds = Some(Arc::clone(&client));
            Some(
                ControllerService::new(client, c.defaults.clone(), c.nqn_prefix.clone())
                    .with_snapshot_pool_limit(c.snapshot_pool_limit),
            )
        }
        None => None,
    };
    // The node's start-up (orphan cleanup, recovery) runs before the gRPC
    // server takes calls; its health monitor runs until this returns.
    let (node_stop, node_stopped) = watch::channel(false);
    let node = match &config.node {
        Some(n) => {
            health.not_ready("node", "cleaning up orphaned NVMe/TCP connections");
            let node = NodeService::new(n.clone(), metrics.node.clone())?;
            node.start_up().await;
            node.spawn_health_monitor(node_stopped);
            health.ready("node");
            Some(node)
        }
        None => None,
    };
    let services = Services {
        identity: IdentityService::new(config.driver_name.clone(), VERSION, identity_rds),
        controller,
        node,
    };
    info!(
        socket = %config.socket.display(),
        mode = ?config.mode,
        driver = %config.driver_name,
        version = VERSION,
        "serving CSI"
    );
    // Two phases: until `shutdown`, serve; then stop taking calls and give
    // those in flight `shutdown_grace` to finish. A client that keeps its
    // connection open (or a call stuck on an unreachable RDS) must not keep
    // the process alive past Kubernetes' termination grace period.
    let (stop_tx, mut stop_rx) = watch::channel(false);
    // Only now, with the node's start-up done, can calls come in.
    let grpc = match listeners.grpc.bind() {
        Ok(grpc) => grpc,
        Err(e) => {
            let _ = node_stop.send(true);
            if let Some(http) = http {
                http.stop().await;
            }
            return Err(e);
        }
    };
    let serve = server::serve(grpc, services, metrics.rpc.clone(), async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    });
    tokio::pin!(serve, shutdown);
    // The socket is bound, so calls are taken from here on.
    health.ready("csi");
    let served = tokio::select! {
        result = &mut serve => Some(result),
        () = &mut shutdown => None,
    };
    health.not_ready("csi", "stopping");
    let result = match served {
        Some(result) => result.map_err(Into::into),
        None => {
            let _ = stop_tx.send(true);
            within_grace(config.shutdown_grace, serve)
                .await
                .map_err(Into::into)
        }
    };
    drop(rds_monitor);
    let _ = node_stop.send(true);
    if let Some(http) = http {
        http.stop().await;
    }
    if result.is_ok() {
        info!("stopped");
    }
    result
}

/// Waits up to `grace` for a server told to stop (`serving`) to finish the
/// calls in flight, and returns how it ended; a server still busy then is
/// left behind with a warning, so that a client that keeps its connection
/// open, or a call stuck on an unreachable RDS, cannot keep the process alive
/// past Kubernetes' termination grace period.
async fn within_grace<E>(
    grace: std::time::Duration,
    serving: impl Future<Output = Result<(), E>>,
) -> Result<(), E> {
    match tokio::time::timeout(grace, serving).await {
        Ok(result) => result,
        Err(_) => {
            warn!(
                ?grace,
                "calls still in flight at the end of the grace period; stopping anyway"
            );
            Ok(())
        }
    }
}

/// Keeps readiness component `rds` in step with the RDS client's status
/// (ready while the RDS answers and its RouterOS is new enough), until the
/// client is gone.
fn follow_rds(mut status: watch::Receiver<RdsStatus>, health: Health) {
    tokio::spawn(async move {
        loop {
            match status.borrow_and_update().problem() {
                None => health.ready("rds"),
                Some(problem) => health.not_ready("rds", problem),
            }
            if status.changed().await.is_err() {
                return;
            }
        }
    });
}

/// How long the HTTP endpoint gets to finish answering once told to stop.
const HTTP_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// `/healthz`, `/readyz` and `/metrics`, served in a task of their own.
/// Dropping this tells the task to stop; [`HttpEndpoint::stop`] also waits.
struct HttpEndpoint {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl HttpEndpoint {
    fn start(listener: TcpListener, metrics: Arc<Metrics>, health: Health) -> Self {
        match listener.local_addr() {
            Ok(address) => info!(%address, "serving /healthz, /readyz and /metrics over HTTP"),
            Err(e) => warn!(error = %e, "serving HTTP on a listener without an address"),
        }
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(telemetry::http::serve(
            listener,
            metrics,
            health,
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        ));
        Self {
            stop,
            task: Some(task),
        }
    }

    /// Stops serving, and waits (a little) for answers in progress.
    async fn stop(mut self) {
        let _ = self.stop.send(true);
        let Some(task) = self.task.take() else {
            return;
        };
        let abort = task.abort_handle();
        match tokio::time::timeout(HTTP_STOP_GRACE, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => warn!(error = %e, "the HTTP endpoint failed"),
            Ok(Err(e)) => warn!(error = %e, "the HTTP endpoint's task failed"),
            Err(_) => {
                abort.abort();
                warn!("the HTTP endpoint did not stop in time; cut off");
            }
        }
    }
}

impl Drop for HttpEndpoint {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Logs to standard error in `args`'s format, filtered by `level` (the
/// value of `--log-level`, or what a subcommand uses instead).
fn init_logging(args: &Args, level: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(level).map_err(|e| format!("--log-level {level:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| format!("cannot set up logging: {e}"))
}

/// Completes on the first SIGTERM or SIGINT.
async fn stop_signal() {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the plugin still runs; it is then stopped
        // by SIGKILL, as any process without handlers would be.
        std::future::pending::<()>().await;
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    info!(
        signal = name,
        "stopping: no new calls, finishing those in flight"
    );
}

/// The word that, as the first argument, makes the program
/// [`doctor::main`] instead of the plugin.
pub const DOCTOR: &str = "doctor";

/// The whole program: flags (`args`, program name first), logging, the
/// runtime, and [`run`] until SIGTERM or SIGINT. Exit status 2 for a bad
/// configuration, 1 for a failure.
///
/// With `doctor` as the first argument (before any flag), the flags that
/// follow go to [`doctor::main`] instead; every other command line is the
/// plugin's, exactly as without the subcommand.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let mut args: Vec<OsString> = args.into_iter().collect();
    if args.get(1).is_some_and(|a| a == DOCTOR) {
        args.remove(1);
        return doctor::main(args);
    }
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if let Err(e) = init_logging(&args, &args.log_level) {
        eprintln!("rds-csi-plugin: {e}");
        return ExitCode::from(2);
    }
    let config = match PluginConfig::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rds-csi-plugin: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rds-csi-plugin: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config, stop_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rds-csi-plugin: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::within_grace;

    const GRACE: Duration = Duration::from_secs(25);

    #[tokio::test(start_paused = true)]
    async fn calls_that_finish_within_the_grace_period_are_waited_for() {
        let started = Instant::now();
        let ended = within_grace(GRACE, async {
            tokio::time::sleep(GRACE - Duration::from_millis(1)).await;
            Err::<(), _>("the server's own error")
        })
        .await;
        assert_eq!(ended, Err("the server's own error"));
        assert_eq!(started.elapsed(), GRACE - Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn calls_stuck_past_the_grace_period_are_left_at_its_end() {
        let started = Instant::now();
        let ended = within_grace(GRACE, std::future::pending::<Result<(), ()>>()).await;
        assert_eq!(ended, Ok(()));
        assert_eq!(started.elapsed(), GRACE);
    }
}
