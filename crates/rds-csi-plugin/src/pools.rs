//! The pool gauges (`rds_csi_pool_size_bytes`, `rds_csi_pool_free_bytes`):
//! the controller lists the RDS's pools every check interval, so an
//! operator sees a pool filling up before CreateVolume starts failing with
//! RESOURCE_EXHAUSTED. One `/disk print` of the mounted entries, on the
//! connection that is open anyway; skipped while the RDS is down (the
//! figures then keep their last values, and `rds_csi_rds_up` says why).

use std::sync::{Arc, Weak};
use std::time::Duration;

use rds_client::RdsClient;
use telemetry::RdsMetrics;
use tokio::task::JoinHandle;
use tracing::debug;

/// The task that keeps the pool gauges; dropping it stops the task.
#[derive(Debug)]
pub struct PoolWatch {
    task: JoinHandle<()>,
}

impl PoolWatch {
    /// Lists the pools of `client` now and every `interval`, into
    /// `metrics`. Ends when the client is dropped.
    pub fn spawn(client: &Arc<RdsClient>, metrics: RdsMetrics, interval: Duration) -> Self {
        let client = Arc::downgrade(client);
        let interval = interval.max(Duration::from_secs(1));
        Self {
            task: tokio::spawn(watch(client, metrics, interval)),
        }
    }
}

impl Drop for PoolWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn watch(client: Weak<RdsClient>, metrics: RdsMetrics, interval: Duration) {
    loop {
        {
            let Some(client) = client.upgrade() else {
                return;
            };
            if client.status().problem().is_none() {
                match client.pools().await {
                    Ok(pools) => metrics.set_pools(
                        &pools
                            .into_iter()
                            .map(|p| (p.mount_point, p.pool.size, p.pool.free))
                            .collect::<Vec<_>>(),
                    ),
                    Err(e) => debug!(error = %e, "listing the pools failed"),
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}
