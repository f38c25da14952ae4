//! rds-csi's telemetry: every metric in one place ([`metrics`]), the
//! readiness of the plugin's components ([`health`]), and, with the `http`
//! feature, the HTTP endpoint that serves them with liveness ([`http`]).
//!
//! Libraries take the metric group they record into ([`RdsMetrics`],
//! [`NodeMetrics`], [`RpcMetrics`]); the plugin makes one [`Metrics`], hands
//! out its groups, and serves it. Only the plugin turns on `http`, so a
//! library that records metrics does not depend on an HTTP server.

pub mod health;
#[cfg(feature = "http")]
pub mod http;
pub mod metrics;

pub use health::Health;
pub use metrics::{Metrics, NodeMetrics, RdsMetrics, RpcMetrics};
