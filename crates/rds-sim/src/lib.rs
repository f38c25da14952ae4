//! Simulator of the RDS RouterOS CLI.

pub mod server;
