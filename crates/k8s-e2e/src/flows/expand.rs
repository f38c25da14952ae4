//! Expansion: a larger request on a Bound PVC grows the disk on the RDS
//! (ControllerExpandVolume, through external-resizer), the PV gets the new
//! capacity, and the PVC says the node's step (growing the filesystem) is
//! pending, which only kubelet can do.

use crate::cluster::{Cluster, PVC_NAMESPACE, pvc};
use crate::flows::provision::delete_and_check_gone;
use crate::support::{Context, Outcome, PATIENCE, ensure, wait_for};

const GIB: u64 = 1 << 30;

/// 1 GiB grown to 3 GiB on the shipped class `rds-ext4`.
pub async fn expansion_grows_the_disk(c: &mut Cluster) -> Outcome {
    let name = "expand";
    c.apply(&[pvc(name, "rds-ext4", "1Gi", false)]).await?;
    c.select_node(name).await?;
    let (_, pv) = c.wait_bound(name).await?;
    let pv_name = pv["metadata"]["name"]
        .as_str()
        .context("a PV without a name")?
        .to_owned();
    let handle = pv["spec"]["csi"]["volumeHandle"]
        .as_str()
        .context("the PV has no volume handle")?
        .to_owned();

    c.kubectl
        .run(&[
            "patch",
            "pvc",
            name,
            "-n",
            PVC_NAMESPACE,
            "--type=merge",
            "-p",
            r#"{"spec":{"resources":{"requests":{"storage":"3Gi"}}}}"#,
        ])
        .await?;
    wait_for(
        "the disk to grow to 3 GiB on the RDS",
        PATIENCE,
        || async { Ok(c.disk(&handle)?.filter(|d| d.size == 3 * GIB).map(|_| ())) },
        || async {
            format!(
                "disk: {:?}; PVC: {}",
                c.disk(&handle),
                c.describe_pvc(name).await
            )
        },
    )
    .await?;
    let image = c
        .disk(&handle)?
        .context(format!("disk {handle} vanished"))?
        .file_path;
    ensure(
        c.files()?
            .iter()
            .any(|f| f.name == image.trim_start_matches('/') && f.size == 3 * GIB),
        format!("the image {image} did not grow to 3 GiB"),
    )?;
    let claim = wait_for(
        "the PV to show 3Gi and the PVC to wait for the node (FileSystemResizePending)",
        PATIENCE,
        || async {
            let pv = c
                .pv(&pv_name)
                .await?
                .context(format!("PV {pv_name} vanished"))?;
            let claim = c.pvc(name).await?.context(format!("PVC {name} vanished"))?;
            let pending = claim["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|cond| cond["type"] == "FileSystemResizePending" && cond["status"] == "True");
            Ok((pv["spec"]["capacity"]["storage"] == "3Gi" && pending).then_some(claim))
        },
        || c.describe_pvc(name),
    )
    .await?;
    // Until kubelet grows the filesystem, the PVC still reports the old size.
    ensure(
        claim["status"]["capacity"]["storage"] == "1Gi",
        format!(
            "the PVC reports {} before the node grew the filesystem",
            claim["status"]["capacity"]["storage"]
        ),
    )?;
    delete_and_check_gone(c, name, &pv_name, &handle).await
}
