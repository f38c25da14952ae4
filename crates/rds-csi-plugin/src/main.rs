//! `rds-csi-plugin`: parses flags, sets up logging and signals, and runs the
//! plugin until SIGTERM or SIGINT.

use std::process::ExitCode;

use clap::Parser;
use rds_csi_plugin::config::LogFormat;
use rds_csi_plugin::{Args, PluginConfig, run};
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;
use tracing_subscriber::EnvFilter;

fn init_logging(args: &Args) -> Result<(), String> {
    let filter = EnvFilter::try_new(&args.log_level)
        .map_err(|e| format!("--log-level {:?}: {e}", args.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
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

fn main() -> ExitCode {
    let args = Args::parse();
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
