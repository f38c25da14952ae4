//! A conformance suite of our own: the plugin driven over its unix socket the
//! way the CSI sidecars and the community sanity suite drive it, against the
//! RDS simulator over real SSH.
//!
//! Each test starts its own simulator and plugin, so tests run in parallel.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

mod attach;
mod compat;
mod concurrency;
mod controller;
mod harness;
mod http_endpoint;
mod identity;
mod requests;
mod resilience;
mod routeros_limits;
mod snapshots;
