//! Every metric of the plugin, defined in one place.
//!
//! Each group ([`RpcMetrics`], [`RdsMetrics`], [`NodeMetrics`]) is cheap to
//! clone (the metrics inside are shared) and has a `Default` that is not
//! registered anywhere, so a library used without a registry (tests, the
//! benchmark) records into metrics nobody reads. [`Metrics::new`] makes the
//! groups and registers them under the `rds_csi_` prefix.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// A histogram family whose histograms share the latency buckets.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets from 1 ms to about 65 s (a mkfs, a slow RDS).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn histogram_family<L>() -> HistogramFamily<L>
where
    L: Clone + std::hash::Hash + Eq,
{
    Family::new_with_constructor(latency_histogram)
}

/// Labels of an RPC: its method and the gRPC code it ended with.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// `CreateVolume`, `NodeStageVolume`, ...
    pub method: String,
    /// `OK`, `UNAVAILABLE`, ... (the gRPC code's canonical name).
    pub code: String,
}

/// The CSI RPCs served.
#[derive(Debug, Clone)]
pub struct RpcMetrics {
    /// Calls by method and code.
    pub calls: Family<RpcLabels, Counter>,
    /// Call latency by method and code.
    pub duration: HistogramFamily<RpcLabels>,
}

impl Default for RpcMetrics {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            duration: histogram_family(),
        }
    }
}

impl RpcMetrics {
    /// Records one finished call.
    pub fn observe(&self, method: &str, code: &str, elapsed: Duration) {
        let labels = RpcLabels {
            method: method.to_owned(),
            code: code.to_owned(),
        };
        self.calls.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "rpc",
            "CSI calls served, by method and gRPC code",
            self.calls.clone(),
        );
        registry.register_with_unit(
            "rpc_duration",
            "Latency of CSI calls, by method and gRPC code",
            Unit::Seconds,
            self.duration.clone(),
        );
    }
}

/// Labels of a RouterOS command: the operation and how it ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    /// `create`, `get`, `list`, `grow`, `delete`, `pool`, `version`.
    pub operation: String,
    /// `ok` or `error`.
    pub outcome: String,
}

/// Labels naming just an operation.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// See [`CommandLabels::operation`].
    pub operation: String,
}

/// Labels naming a storage pool of the RDS.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// Its mount point (`storage-pool`), the first segment of volume paths.
    pub pool: String,
}

/// The controller's SSH connection to the RDS and the commands sent on it.
#[derive(Debug, Clone)]
pub struct RdsMetrics {
    /// RouterOS commands sent, by operation and outcome.
    pub commands: Family<CommandLabels, Counter>,
    /// RouterOS command latency (one round trip), by operation.
    pub command_duration: HistogramFamily<OperationLabels>,
    /// SSH connections made after the first (reconnects).
    pub ssh_reconnects: Counter,
    /// SSH connection attempts that failed.
    pub ssh_connect_failures: Counter,
    /// Commands whose connection broke under them (or could not open a
    /// channel on a connection that had gone away).
    pub ssh_connection_losses: Counter,
    /// Channels the RDS refused on a live connection: its session limit,
    /// which the transport learns by lowering its own.
    pub ssh_channel_refusals: Counter,
    /// Commands that did not finish within the command timeout.
    pub command_timeouts: Counter,
    /// 1 while the RDS answers, 0 while it does not.
    pub up: Gauge,
    /// Size of each pool of the RDS, in bytes.
    pub pool_size: Family<PoolLabels, Gauge>,
    /// Free space of each pool of the RDS, in bytes.
    pub pool_free: Family<PoolLabels, Gauge>,
    /// The pools last set, so that one no longer listed can be removed.
    pools_shown: Arc<Mutex<Vec<String>>>,
}

impl Default for RdsMetrics {
    fn default() -> Self {
        Self {
            commands: Family::default(),
            command_duration: histogram_family(),
            ssh_reconnects: Counter::default(),
            ssh_connect_failures: Counter::default(),
            ssh_connection_losses: Counter::default(),
            ssh_channel_refusals: Counter::default(),
            command_timeouts: Counter::default(),
            up: Gauge::default(),
            pool_size: Family::default(),
            pool_free: Family::default(),
            pools_shown: Arc::default(),
        }
    }
}

impl RdsMetrics {
    /// Records one RouterOS command.
    pub fn observe_command(&self, operation: &str, ok: bool, elapsed: Duration) {
        self.commands
            .get_or_create(&CommandLabels {
                operation: operation.to_owned(),
                outcome: if ok { "ok" } else { "error" }.to_owned(),
            })
            .inc();
        self.command_duration
            .get_or_create(&OperationLabels {
                operation: operation.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Shows `pools` (mount point, size and free bytes) as the pool
    /// gauges; a pool shown before and not listed now is removed, so a pool
    /// taken away does not keep its last figures.
    pub fn set_pools(&self, pools: &[(String, u64, u64)]) {
        let mut shown = self
            .pools_shown
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (pool, size, free) in pools {
            let labels = PoolLabels { pool: pool.clone() };
            self.pool_size.get_or_create(&labels).set(saturating(*size));
            self.pool_free.get_or_create(&labels).set(saturating(*free));
        }
        for gone in shown
            .iter()
            .filter(|p| !pools.iter().any(|(n, ..)| n == *p))
        {
            let labels = PoolLabels { pool: gone.clone() };
            self.pool_size.remove(&labels);
            self.pool_free.remove(&labels);
        }
        *shown = pools.iter().map(|(n, ..)| n.clone()).collect();
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "routeros_commands",
            "RouterOS commands sent to the RDS, by operation and outcome",
            self.commands.clone(),
        );
        registry.register_with_unit(
            "routeros_command_duration",
            "Latency of RouterOS commands (one SSH round trip each), by operation",
            Unit::Seconds,
            self.command_duration.clone(),
        );
        registry.register(
            "ssh_reconnects",
            "SSH connections to the RDS made after the first",
            self.ssh_reconnects.clone(),
        );
        registry.register(
            "ssh_connect_failures",
            "SSH connection attempts to the RDS that failed",
            self.ssh_connect_failures.clone(),
        );
        registry.register(
            "ssh_connection_losses",
            "RouterOS commands whose SSH connection to the RDS broke under them",
            self.ssh_connection_losses.clone(),
        );
        registry.register(
            "ssh_channel_refusals",
            "Channels the RDS refused on a live SSH connection (its session limit)",
            self.ssh_channel_refusals.clone(),
        );
        registry.register(
            "routeros_command_timeouts",
            "RouterOS commands that did not finish within the command timeout",
            self.command_timeouts.clone(),
        );
        registry.register(
            "rds_up",
            "1 while the RDS answers over SSH, 0 while it does not",
            self.up.clone(),
        );
        registry.register_with_unit(
            "pool_size",
            "Size of each storage pool of the RDS (controller)",
            Unit::Bytes,
            self.pool_size.clone(),
        );
        registry.register_with_unit(
            "pool_free",
            "Free space of each storage pool of the RDS (controller)",
            Unit::Bytes,
            self.pool_free.clone(),
        );
    }
}

/// Bytes as a gauge's `i64` (pools are far below 8 EiB).
fn saturating(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// Labels of an outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// What happened.
    pub outcome: String,
}

/// Labels of an NVMe controller state.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `live`, `connecting`, `resetting`, `deleting`, `new`, `dead`,
    /// `unknown`, or `absent` (no controller at all).
    pub state: String,
}

/// The node: NVMe/TCP connections and staged volumes.
#[derive(Debug, Clone, Default)]
pub struct NodeMetrics {
    /// NodeStageVolume connects, by outcome (`connected`, `already`, `failed`).
    pub nvme_connects: Family<OutcomeLabels, Counter>,
    /// Connect attempts repeated after a transient error.
    pub nvme_connect_retries: Counter,
    /// Orphaned NVMe connections disconnected at start-up.
    pub orphans_cleaned: Counter,
    /// Orphaned NVMe connections that could not be disconnected.
    pub orphan_cleanup_failures: Counter,
    /// Staged volumes by the state of their NVMe controller.
    pub controller_states: Family<StateLabels, Gauge>,
    /// Volumes staged on this node.
    pub staged_volumes: Gauge,
    /// Staged volumes whose condition is abnormal.
    pub abnormal_volumes: Gauge,
}

impl NodeMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "nvme_connects",
            "NVMe/TCP connects made by NodeStageVolume, by outcome",
            self.nvme_connects.clone(),
        );
        registry.register(
            "nvme_connect_retries",
            "NVMe/TCP connect attempts repeated after a transient error",
            self.nvme_connect_retries.clone(),
        );
        registry.register(
            "nvme_orphans_cleaned",
            "Orphaned NVMe/TCP connections of this driver disconnected at start-up",
            self.orphans_cleaned.clone(),
        );
        registry.register(
            "nvme_orphan_cleanup_failures",
            "Orphaned NVMe/TCP connections that could not be disconnected at start-up",
            self.orphan_cleanup_failures.clone(),
        );
        registry.register(
            "nvme_controllers",
            "Staged volumes by the state of their NVMe/TCP controller",
            self.controller_states.clone(),
        );
        registry.register(
            "staged_volumes",
            "Volumes staged on this node",
            self.staged_volumes.clone(),
        );
        registry.register(
            "abnormal_volumes",
            "Staged volumes whose condition is abnormal",
            self.abnormal_volumes.clone(),
        );
    }

    /// Sets the per-state gauges from `counts` (state, volumes); states not
    /// named are set to 0, so a state that emptied reads 0, not its old value.
    pub fn set_controller_states(&self, counts: &[(&str, i64)]) {
        for state in CONTROLLER_STATES {
            let n = counts
                .iter()
                .filter(|(s, _)| s == state)
                .map(|(_, n)| n)
                .sum();
            self.controller_states
                .get_or_create(&StateLabels {
                    state: (*state).to_owned(),
                })
                .set(n);
        }
    }
}

/// The states [`NodeMetrics::controller_states`] always reports.
pub const CONTROLLER_STATES: &[&str] = &[
    "live",
    "connecting",
    "resetting",
    "deleting",
    "new",
    "dead",
    "unknown",
    "absent",
];

/// All metrics, registered.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The CSI RPCs.
    pub rpc: RpcMetrics,
    /// The RDS connection (controller).
    pub rds: RdsMetrics,
    /// The node.
    pub node: NodeMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Makes every metric and registers it under the `rds_csi_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rds_csi");
        let rpc = RpcMetrics::default();
        let rds = RdsMetrics::default();
        let node = NodeMetrics::default();
        rpc.register(&mut registry);
        rds.register(&mut registry);
        node.register(&mut registry);
        node.set_controller_states(&[]);
        Self {
            registry,
            rpc,
            rds,
            node,
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an error would be a bug in a
        // metric's encoder, and a scrape with what was written is better
        // than none.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_is_encoded_with_the_prefix() {
        let m = Metrics::new();
        m.rpc
            .observe("CreateVolume", "OK", Duration::from_millis(12));
        m.rds
            .observe_command("create", true, Duration::from_millis(3));
        m.rds.ssh_reconnects.inc();
        m.rds.ssh_connection_losses.inc();
        m.rds.command_timeouts.inc();
        m.rds.up.set(1);
        m.node.staged_volumes.set(2);
        m.node
            .set_controller_states(&[("live", 1), ("connecting", 1)]);
        let text = m.encode();
        for line in [
            r#"rds_csi_rpc_total{method="CreateVolume",code="OK"} 1"#,
            r#"rds_csi_rpc_duration_seconds_count{method="CreateVolume",code="OK"} 1"#,
            r#"rds_csi_routeros_commands_total{operation="create",outcome="ok"} 1"#,
            r#"rds_csi_routeros_command_duration_seconds_count{operation="create"} 1"#,
            "rds_csi_ssh_reconnects_total 1",
            "rds_csi_ssh_connection_losses_total 1",
            "rds_csi_ssh_channel_refusals_total 0",
            "rds_csi_routeros_command_timeouts_total 1",
            "rds_csi_rds_up 1",
            "rds_csi_staged_volumes 2",
            r#"rds_csi_nvme_controllers{state="live"} 1"#,
            r#"rds_csi_nvme_controllers{state="connecting"} 1"#,
            r#"rds_csi_nvme_controllers{state="dead"} 0"#,
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn pools_are_shown_and_a_pool_taken_away_is_removed() {
        let m = Metrics::new();
        m.rds.set_pools(&[
            ("storage-pool".into(), 4 << 40, 1 << 40),
            ("nvme".into(), 1 << 40, 1 << 30),
        ]);
        let text = m.encode();
        for line in [
            r#"rds_csi_pool_size_bytes{pool="storage-pool"} 4398046511104"#,
            r#"rds_csi_pool_free_bytes{pool="storage-pool"} 1099511627776"#,
            r#"rds_csi_pool_free_bytes{pool="nvme"} 1073741824"#,
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        m.rds
            .set_pools(&[("storage-pool".into(), 4 << 40, 2 << 40)]);
        let text = m.encode();
        assert!(text.contains(r#"rds_csi_pool_free_bytes{pool="storage-pool"} 2199023255552"#));
        assert!(!text.contains(r#"pool="nvme""#), "{text}");
    }

    #[test]
    fn a_state_that_empties_reads_zero() {
        let m = NodeMetrics::default();
        m.set_controller_states(&[("connecting", 3)]);
        m.set_controller_states(&[("live", 3)]);
        let get = |s: &str| {
            m.controller_states
                .get_or_create(&StateLabels { state: s.into() })
                .get()
        };
        assert_eq!(get("connecting"), 0);
        assert_eq!(get("live"), 3);
    }

    #[test]
    fn unregistered_groups_record_without_a_registry() {
        let rds = RdsMetrics::default();
        rds.observe_command("get", false, Duration::from_millis(1));
        let n = rds
            .commands
            .get_or_create(&CommandLabels {
                operation: "get".into(),
                outcome: "error".into(),
            })
            .get();
        assert_eq!(n, 1);
    }
}
