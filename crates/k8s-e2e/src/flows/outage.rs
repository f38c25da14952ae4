//! The RDS away for a while: the plugins notice (`rds_up` 0, not ready), a
//! PVC made meanwhile waits with events that say the RDS is unavailable,
//! and is provisioned once the RDS is back, without anyone's help.

use crate::cluster::{Cluster, PVC_NAMESPACE, pvc, storage_class};
use crate::flows::provision::delete_and_check_gone;
use crate::http::metric;
use crate::support::{Context, Outcome, PATIENCE, ensure, wait_for};

/// Stops the simulator, makes a PVC, starts the simulator again.
pub async fn waits_then_completes(c: &mut Cluster) -> Outcome {
    let (class, name) = ("e2e-outage", "outage");
    c.apply(&[storage_class(class, &c.driver, &[], "Delete")])
        .await?;
    c.stop_rds().await;
    let result = during_outage(c, name, class).await;
    // Whatever happened, the RDS comes back for the flows after this one.
    c.start_rds().await?;
    result?;
    let (_, pv) = c.wait_bound(name).await?;
    let pv_name = pv["metadata"]["name"]
        .as_str()
        .context("a PV without a name")?;
    let handle = pv["spec"]["csi"]["volumeHandle"]
        .as_str()
        .context("no volume handle")?;
    ensure(
        c.disk(handle)?.is_some(),
        format!("no disk {handle} on the RDS"),
    )?;
    wait_rds_up(c, 1.0).await?;
    delete_and_check_gone(c, name, pv_name, handle).await?;
    c.kubectl.delete("storageclass", None, class).await
}

async fn during_outage(c: &Cluster, name: &str, class: &str) -> Outcome {
    wait_rds_up(c, 0.0).await?;
    for i in 0..c.replicas.len() {
        if c.replicas[i].is_some() {
            let (code, body) = c.plugin_http(i, "/readyz").await?;
            ensure(
                code != 200,
                format!("replica {i}'s plugin is ready while the RDS is away: {body}"),
            )?;
        }
    }
    c.apply(&[pvc(name, class, "1Gi", false)]).await?;
    wait_for(
        &format!("an event on PVC {name} saying the RDS is unavailable"),
        PATIENCE,
        || async {
            let events = c
                .kubectl
                .events(PVC_NAMESPACE, "PersistentVolumeClaim", name)
                .await?;
            Ok(events
                .iter()
                .any(|e| {
                    e["reason"] == "ProvisioningFailed"
                        && e["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("code = Unavailable"))
                })
                .then_some(()))
        },
        || c.describe_pvc(name),
    )
    .await?;
    let claim = c.pvc(name).await?.context(format!("PVC {name} vanished"))?;
    ensure(
        claim["status"]["phase"] == "Pending",
        format!(
            "PVC {name} is {} while the RDS is away",
            claim["status"]["phase"]
        ),
    )
}

/// Waits until every running plugin reports `rds_csi_rds_up` as `want`.
async fn wait_rds_up(c: &Cluster, want: f64) -> Outcome {
    wait_for(
        &format!("every plugin to report rds_csi_rds_up {want}"),
        PATIENCE,
        || async {
            for i in 0..c.replicas.len() {
                if c.replicas[i].is_some() {
                    let (_, text) = c.plugin_http(i, "/metrics").await?;
                    if metric(&text, "rds_csi_rds_up", &[]) != Some(want) {
                        return Ok(None);
                    }
                }
            }
            Ok(Some(()))
        },
        || async { String::new() },
    )
    .await
}
