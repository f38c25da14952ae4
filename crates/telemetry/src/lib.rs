//! rds-csi's telemetry: every metric in one place ([`metrics`]), and the HTTP
//! endpoint that serves them with liveness and readiness ([`http`]).
//!
//! Libraries take the metric group they record into ([`RdsMetrics`],
//! [`NodeMetrics`], [`RpcMetrics`]); the plugin makes one [`Metrics`], hands
//! out its groups, and serves it.

pub mod http;
pub mod metrics;

pub use http::Health;
pub use metrics::{Metrics, NodeMetrics, RdsMetrics, RpcMetrics};
