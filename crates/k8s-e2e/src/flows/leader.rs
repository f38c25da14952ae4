//! Two controller replicas: the sidecars of one lead; when its pod stops,
//! the other replica's sidecars take every Lease over, and its plugin
//! serves the next volume. The stopped replica is started again, as its
//! Deployment would.

use crate::cluster::{Cluster, pvc, storage_class};
use crate::flows::provision::delete_and_check_gone;
use crate::http::metric;
use crate::support::{Context, Outcome, ensure};

/// Stops the leading replica and provisions with the other.
pub async fn hands_over(c: &mut Cluster) -> Outcome {
    ensure(
        c.replicas.len() >= 2,
        format!(
            "the Deployment runs {} replica(s); no one to hand over to",
            c.replicas.len()
        ),
    )?;
    let leases = c.leases();
    let first = leases
        .first()
        .context("the Deployment runs no sidecar that elects a leader")?;
    let leader = c.wait_leader(first, None).await?;
    let stopped = (0..c.replicas.len())
        .find(|i| Cluster::replica_name(*i) == leader)
        .context(format!(
            "the leader {leader} is not a replica the tier runs"
        ))?;
    c.stop_replica(stopped).await;
    let result = with_one_stopped(c, &leases, &leader).await;
    // Whatever happened, the Deployment would start the pod again.
    c.start_replica(stopped).await?;
    result
}

async fn with_one_stopped(c: &mut Cluster, leases: &[String], leader: &str) -> Outcome {
    let mut heir = None;
    for lease in leases {
        let holder = c.wait_leader(lease, Some(leader)).await?;
        ensure(
            heir.is_none() || heir.as_ref() == Some(&holder),
            format!("the Leases went to different replicas: {heir:?} and {holder}"),
        )?;
        heir = Some(holder);
    }
    let heir = heir.context("no Lease")?;
    let index = (0..c.replicas.len())
        .find(|i| Cluster::replica_name(*i) == heir)
        .context(format!(
            "the new leader {heir} is not a replica the tier runs"
        ))?;
    let creates = |text: &str| metric(text, "rds_csi_rpc_total", &["method=\"CreateVolume\""]);
    let before = creates(&c.plugin_http(index, "/metrics").await?.1).unwrap_or(0.0);

    let (class, name) = ("e2e-leader", "after-hand-over");
    c.apply(&[storage_class(class, &c.driver, &[], "Delete")])
        .await?;
    c.apply(&[pvc(name, class, "1Gi", false)]).await?;
    let (_, pv) = c.wait_bound(name).await?;
    let after = creates(&c.plugin_http(index, "/metrics").await?.1).unwrap_or(0.0);
    ensure(
        after > before,
        format!("the new leader's plugin ({heir}) served no CreateVolume"),
    )?;
    let pv_name = pv["metadata"]["name"]
        .as_str()
        .context("a PV without a name")?;
    let handle = pv["spec"]["csi"]["volumeHandle"]
        .as_str()
        .context("no volume handle")?;
    delete_and_check_gone(c, name, pv_name, handle).await?;
    c.kubectl.delete("storageclass", None, class).await
}
