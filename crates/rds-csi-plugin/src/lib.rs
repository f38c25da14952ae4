//! The rds-csi plugin: flags to configuration ([`config`]), and [`run`], which
//! serves the CSI services on a unix socket until told to stop.
//!
//! [`main`] parses flags, sets up logging and signals, and calls [`run`]; the
//! binary is just that. Tests call [`serve_on`] with a listener of their own,
//! or start [`main`] in a process of their own to kill it.

pub mod config;

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
use rds_client::{ClientKey, RdsClient, SshConfig};
use tokio::net::UnixListener;
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

/// Binds the configured socket (replacing a stale one) and serves until
/// `shutdown` completes; calls in flight then finish before this returns.
pub async fn run(config: PluginConfig, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let listener = server::bind(&config.socket).map_err(|source| RunError::Bind {
        path: config.socket.display().to_string(),
        source,
    })?;
    serve_on(config, listener, shutdown).await
}

/// Serves on `listener` until `shutdown` completes.
pub async fn serve_on(
    config: PluginConfig,
    listener: UnixListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
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
            let client = Arc::new(RdsClient::new(ssh));
            check_rds_in_background(Arc::clone(&client));
            identity_rds = Some(Arc::clone(&client));
            Some(ControllerService::new(
                client,
                c.defaults.clone(),
                c.nqn_prefix.clone(),
            ))
        }
        None => None,
    };
    let node = match &config.node {
        Some(n) => Some(NodeService::new(n.clone())?),
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
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let serve = server::serve(listener, services, async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    });
    tokio::pin!(serve, shutdown);
    tokio::select! {
        result = &mut serve => return result.map_err(Into::into),
        () = &mut shutdown => {}
    }
    let _ = stop_tx.send(true);
    match tokio::time::timeout(config.shutdown_grace, serve).await {
        Ok(result) => result?,
        Err(_) => warn!(
            grace = ?config.shutdown_grace,
            "calls still in flight at the end of the grace period; stopping anyway"
        ),
    }
    info!("stopped");
    Ok(())
}

/// Connects to the RDS once at start-up, so a wrong address, key or host key
/// shows in the log at once instead of at the first volume. Never blocks
/// start-up: the client connects on demand anyway.
fn check_rds_in_background(client: Arc<RdsClient>) {
    tokio::spawn(async move {
        match client.system_resource().await {
            Ok(r) if r.version < routeros::MINIMUM_VERSION => warn!(
                version = %r.version_text,
                "the RDS runs a RouterOS older than {}; volume operations will fail",
                routeros::MINIMUM_VERSION
            ),
            Ok(r) => info!(version = %r.version_text, board = ?r.board_name, "RDS reachable"),
            Err(e) => warn!(error = %e, "the RDS is not reachable yet"),
        }
    });
}

fn init_logging(args: &Args) -> Result<(), String> {
    let filter = EnvFilter::try_new(&args.log_level)
        .map_err(|e| format!("--log-level {:?}: {e}", args.log_level))?;
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

/// The whole program: flags (`args`, program name first), logging, the
/// runtime, and [`run`] until SIGTERM or SIGINT. Exit status 2 for a bad
/// configuration, 1 for a failure.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if let Err(e) = init_logging(&args) {
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
