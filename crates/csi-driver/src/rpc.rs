//! What every RPC goes through: a span with the method and volume, one log line
//! with the outcome and duration, and the error turned into a gRPC status.
//!
//! Requests are never logged whole: they carry secrets (`secrets` maps, and
//! mount options may hold credentials).

use std::future::Future;
use std::time::Instant;

use tonic::{Response, Status};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::error::DriverError;

/// Runs a handler for `method` on `volume` (empty when the RPC concerns none).
pub async fn call<T, F>(
    method: &'static str,
    volume: &str,
    handler: F,
) -> Result<Response<T>, Status>
where
    F: Future<Output = Result<T, DriverError>>,
{
    let span = info_span!("rpc", method, volume = %volume);
    async move {
        let start = Instant::now();
        let result = handler.await;
        let elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok(reply) => {
                // Probes come every few seconds; keep them out of the info log.
                if method == "Probe" {
                    debug!(elapsed_ms, "ok");
                } else {
                    info!(elapsed_ms, "ok");
                }
                Ok(Response::new(reply))
            }
            Err(e) => {
                let status = Status::from(e);
                warn!(elapsed_ms, code = ?status.code(), error = %status.message(), "failed");
                Err(status)
            }
        }
    }
    .instrument(span)
    .await
}
