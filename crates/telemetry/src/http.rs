//! The plugin's HTTP endpoint, on one port: `/healthz` (liveness), `/readyz`
//! (readiness) and `/metrics` (Prometheus, OpenMetrics text).
//!
//! `/healthz` answers 200 while the process serves at all: a plugin that
//! cannot reach the RDS is alive, and restarting it would not bring the RDS
//! back. `/readyz` answers 200 only when every component registered with
//! [`Health`] says it is ready, and 503 with the reasons otherwise.
//!
//! Behind the `http` feature, so that libraries that only record metrics
//! (the RDS client) do not pull an HTTP server into their dependencies; the
//! plugin, which serves the endpoint, turns it on.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

pub use crate::health::Health;
use crate::metrics::Metrics;

#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    health: Health,
}

/// The endpoint's routes, for serving or for calling in tests.
pub fn router(metrics: Arc<Metrics>, health: Health) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Shared { metrics, health })
}

/// Serves the endpoint on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(metrics, health))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Shared>) -> Response {
    match shared.health.check() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(problems) => {
            let mut body = String::from("not ready\n");
            for p in problems {
                body.push_str(&p);
                body.push('\n');
            }
            (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
        }
    }
}

async fn metrics_text(State(shared): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.encode(),
    )
        .into_response()
}
