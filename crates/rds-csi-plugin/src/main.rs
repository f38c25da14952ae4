//! `rds-csi-plugin`: parses flags, sets up logging and signals, and runs the
//! plugin until SIGTERM or SIGINT. (All in [`rds_csi_plugin::main`], which
//! the end-to-end tests also start as a process of their own.)

use std::process::ExitCode;

fn main() -> ExitCode {
    rds_csi_plugin::main(std::env::args_os())
}
