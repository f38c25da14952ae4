//! Reclaim policies: deleting a PVC whose PV has `Delete` removes the disk
//! and its image from the RDS; with `Retain` both stay, also after the PV
//! itself is deleted, until someone removes them on the RDS.

use crate::cluster::{Cluster, pvc, storage_class};
use crate::flows::provision::delete_and_check_gone;
use crate::http::metric;
use crate::support::{Context, Outcome, PATIENCE, ensure, wait_for};

/// Delete: PVC gone → PV gone → disk and image gone.
pub async fn delete_removes(c: &mut Cluster) -> Outcome {
    let (class, name) = ("e2e-delete", "reclaim-delete");
    c.apply(&[storage_class(class, &c.driver, &[], "Delete")])
        .await?;
    c.apply(&[pvc(name, class, "1Gi", true)]).await?;
    let (_, pv) = c.wait_bound(name).await?;
    ensure(
        pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete",
        format!(
            "the PV's policy is {}",
            pv["spec"]["persistentVolumeReclaimPolicy"]
        ),
    )?;
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
    delete_and_check_gone(c, name, pv_name, handle).await?;
    c.kubectl.delete("storageclass", None, class).await
}

/// Retain: PVC gone → PV Released, disk and image kept; the PV deleted by
/// hand → still kept.
pub async fn retain_keeps(c: &mut Cluster) -> Outcome {
    let (class, name) = ("e2e-retain", "reclaim-retain");
    c.apply(&[storage_class(class, &c.driver, &[], "Retain")])
        .await?;
    c.apply(&[pvc(name, class, "1Gi", false)]).await?;
    let (_, pv) = c.wait_bound(name).await?;
    let pv_name = pv["metadata"]["name"]
        .as_str()
        .context("a PV without a name")?
        .to_owned();
    let handle = pv["spec"]["csi"]["volumeHandle"]
        .as_str()
        .context("no volume handle")?
        .to_owned();
    let image = c
        .disk(&handle)?
        .context(format!("no disk {handle} on the RDS"))?
        .file_path;
    c.delete_pvc(name).await?;
    wait_for(
        &format!("PV {pv_name} to be Released"),
        PATIENCE,
        || async {
            let pv = c
                .pv(&pv_name)
                .await?
                .context(format!("PV {pv_name} was deleted"))?;
            Ok((pv["status"]["phase"] == "Released").then_some(()))
        },
        || async {
            format!(
                "{:?}",
                c.pv(&pv_name).await.map(|p| p.map(|p| p["status"].clone()))
            )
        },
    )
    .await?;
    let kept = |c: &Cluster| -> Outcome {
        ensure(
            c.disk(&handle)?.is_some(),
            format!("disk {handle} was removed"),
        )?;
        ensure(
            c.files()?
                .iter()
                .any(|f| f.name == image.trim_start_matches('/')),
            format!("the image {image} was removed"),
        )
    };
    kept(c)?;
    let deletes = delete_calls(c).await?;
    c.kubectl.delete("pv", None, &pv_name).await?;
    c.wait_pv_gone(&pv_name).await?;
    // A provisioner that wrongly acted on a Retain PV would call
    // DeleteVolume right after the PV went; give it the time to.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    kept(c)?;
    ensure(
        delete_calls(c).await? == deletes,
        "DeleteVolume was called for a Retain PV",
    )?;
    c.kubectl.delete("storageclass", None, class).await
}

/// DeleteVolume calls the running plugins served so far.
async fn delete_calls(c: &Cluster) -> Outcome<f64> {
    let mut total = 0.0;
    for i in 0..c.replicas.len() {
        if c.replicas[i].is_some() {
            let (_, text) = c.plugin_http(i, "/metrics").await?;
            total +=
                metric(&text, "rds_csi_rpc_total", &["method=\"DeleteVolume\""]).unwrap_or(0.0);
        }
    }
    Ok(total)
}
