//! The plugin's HTTP endpoint, on one port: `/healthz` (liveness), `/readyz`
//! (readiness) and `/metrics` (Prometheus, OpenMetrics text).
//!
//! `/healthz` answers 200 while the process serves at all: a plugin that
//! cannot reach the RDS is alive, and restarting it would not bring the RDS
//! back. `/readyz` answers 200 only when every component registered with
//! [`Health`] says it is ready, and 503 with the reasons otherwise.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Readiness of the plugin's components, shared between them and `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct Health {
    components: Arc<Mutex<BTreeMap<&'static str, Result<(), String>>>>,
}

impl Health {
    /// A health with no components: ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `component` is ready.
    pub fn ready(&self, component: &'static str) {
        self.set(component, Ok(()));
    }

    /// Records that `component` is not ready, and why.
    pub fn not_ready(&self, component: &'static str, why: impl Into<String>) {
        self.set(component, Err(why.into()));
    }

    fn set(&self, component: &'static str, state: Result<(), String>) {
        // A poisoned lock only means a panic elsewhere while holding it; the
        // map itself is always whole, so keep using it.
        let mut components = self
            .components
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        components.insert(component, state);
    }

    /// `Ok` when every component is ready, else each one that is not, with
    /// its reason.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let components = self
            .components
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let problems: Vec<String> = components
            .iter()
            .filter_map(|(name, state)| state.as_ref().err().map(|why| format!("{name}: {why}")))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_ready_only_when_every_component_is() {
        let h = Health::new();
        assert_eq!(h.check(), Ok(()));
        h.not_ready("rds", "no answer from 10.0.0.1:22");
        h.ready("node");
        assert_eq!(
            h.check(),
            Err(vec!["rds: no answer from 10.0.0.1:22".to_owned()])
        );
        h.ready("rds");
        assert_eq!(h.check(), Ok(()));
    }
}
