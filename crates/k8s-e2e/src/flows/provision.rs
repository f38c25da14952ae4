//! Provisioning: a PVC of a shipped StorageClass is provisioned once a node
//! is chosen and bound, with the volume context the node needs; a class's
//! parameters reach the disk; a bad parameter is reported on the PVC.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::cluster::{Cluster, NODE, OTHER_FOLDER, POOL, PVC_NAMESPACE, pvc, storage_class};
use crate::kubectl::describe_events;
use crate::support::{Context, Outcome, PATIENCE, ensure, wait_for};

const GIB: u64 = 1 << 30;

/// A PVC of the shipped class `rds-ext4` (WaitForFirstConsumer) waits for
/// its node, is provisioned and bound, and its PV carries what NodeStage
/// needs; the disk is where the ConfigMap's volume path says, named after
/// the PV and the PVC. Deleting it (the class's Delete policy) removes both.
pub async fn provision_and_bind(c: &mut Cluster) -> Outcome {
    let name = "shipped-class";
    let class = c.kubectl.get("storageclass", None, "rds-ext4").await?;
    let class = class.context("the manifests installed no StorageClass rds-ext4")?;
    ensure(
        class["volumeBindingMode"] == "WaitForFirstConsumer",
        format!(
            "rds-ext4 binds {}, not WaitForFirstConsumer",
            class["volumeBindingMode"]
        ),
    )?;
    let before = disk_slots(c)?;
    c.apply(&[pvc(name, "rds-ext4", "1Gi", false)]).await?;
    // Before a pod is scheduled, the PV controller says it waits, and
    // nothing is made on the RDS.
    wait_for(
        "the PV controller to wait for the first consumer",
        PATIENCE,
        || async {
            let events = c
                .kubectl
                .events(PVC_NAMESPACE, "PersistentVolumeClaim", name)
                .await?;
            Ok(events
                .iter()
                .any(|e| e["reason"] == "WaitForFirstConsumer")
                .then_some(()))
        },
        || c.describe_pvc(name),
    )
    .await?;
    ensure(
        disk_slots(c)? == before,
        "a disk was made before the PVC's node was chosen",
    )?;

    c.select_node(name).await?;
    let (claim, pv) = c.wait_bound(name).await?;
    let pv_name = pv["metadata"]["name"]
        .as_str()
        .context("a PV without a name")?;
    let csi = &pv["spec"]["csi"];
    ensure(
        csi["driver"] == c.driver.as_str(),
        format!(
            "PV {pv_name} names the driver {}, not {}",
            csi["driver"], c.driver
        ),
    )?;
    ensure(
        csi["fsType"] == "ext4",
        format!("PV {pv_name} has fsType {}", csi["fsType"]),
    )?;
    ensure(
        pv["spec"]["capacity"]["storage"] == "1Gi"
            && claim["status"]["capacity"]["storage"] == "1Gi",
        format!(
            "PV capacity {} / PVC capacity {}, not 1Gi",
            pv["spec"]["capacity"]["storage"], claim["status"]["capacity"]["storage"]
        ),
    )?;
    let handle = csi["volumeHandle"]
        .as_str()
        .context("the PV has no volume handle")?;
    let disk = c.disk(handle)?.context(format!(
        "the RDS has no disk {handle} (PV {pv_name}'s handle)"
    ))?;
    ensure(
        disk.size == GIB,
        format!("disk {handle} has {} bytes, not 1 GiB", disk.size),
    )?;
    let image = format!("{POOL}/metal-csi/{handle}.img");
    ensure(
        disk.file_path.trim_start_matches('/') == image,
        format!("disk {handle}'s image is {}, not /{image}", disk.file_path),
    )?;
    ensure(
        !disk.export && disk.allow_host_name.is_empty(),
        format!(
            "disk {handle} is exported (to {:?}) before any node is published to",
            disk.allow_host_name
        ),
    )?;
    let comment = format!("rds-csi:{pv_name} pvc={PVC_NAMESPACE}/{name}");
    ensure(
        disk.comment.as_deref() == Some(comment.as_str()),
        format!(
            "disk {handle} has the comment {:?}, not {comment:?}",
            disk.comment
        ),
    )?;
    // The volume context: everything NodeStageVolume reads.
    let attrs = &csi["volumeAttributes"];
    let want = [
        ("nvmeAddress", "127.0.0.1".to_owned()),
        ("nvmePort", disk.port.to_string()),
        ("nqn", disk.nqn.clone()),
        ("fsType", "ext4".to_owned()),
        ("ctrlLossTmo", "1800".to_owned()),
        ("reconnectDelay", "5".to_owned()),
        ("keepAliveTmo", "5".to_owned()),
        ("fastIoFailTmo", "-1".to_owned()),
    ];
    check_attributes(attrs, &want)?;
    ensure(
        disk.port == 4420,
        format!(
            "disk {handle} is exported on port {}, not the ConfigMap's 4420",
            disk.port
        ),
    )?;
    ensure(
        pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == c.driver.as_str(),
        format!("PV {pv_name} was not provisioned by {}", c.driver),
    )?;
    ensure(
        claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == NODE,
        "the PVC lost its selected node",
    )?;
    delete_and_check_gone(c, name, pv_name, handle).await
}

/// A class with every parameter set: the image goes to its `volumePath`,
/// the export to its `nvmePort`, and the PV's context carries its timers
/// and filesystem.
pub async fn class_parameters_reach_the_disk(c: &mut Cluster) -> Outcome {
    let (class, name) = ("e2e-parameters", "class-parameters");
    let folder = format!("/{POOL}/{OTHER_FOLDER}");
    let params = [
        ("csi.storage.k8s.io/fstype", "xfs"),
        ("volumePath", folder.as_str()),
        ("nvmeAddress", "192.0.2.7"),
        ("nvmePort", "4421"),
        ("ctrlLossTmo", "600"),
        ("reconnectDelay", "3"),
        ("keepAliveTmo", "7"),
        ("fastIoFailTmo", "30"),
    ];
    c.apply(&[storage_class(class, &c.driver, &params, "Delete")])
        .await?;
    c.apply(&[pvc(name, class, "3Gi", false)]).await?;
    let (_, pv) = c.wait_bound(name).await?;
    let pv_name = pv["metadata"]["name"]
        .as_str()
        .context("a PV without a name")?;
    let csi = &pv["spec"]["csi"];
    let handle = csi["volumeHandle"]
        .as_str()
        .context("the PV has no volume handle")?;
    let disk = c
        .disk(handle)?
        .context(format!("the RDS has no disk {handle}"))?;
    let image = format!("{}/{handle}.img", folder.trim_start_matches('/'));
    ensure(
        disk.file_path.trim_start_matches('/') == image,
        format!("disk {handle}'s image is {}, not /{image}", disk.file_path),
    )?;
    ensure(
        c.files()?
            .iter()
            .any(|f| f.name == image && f.size == 3 * GIB),
        format!("no 3 GiB image {image} on the RDS"),
    )?;
    ensure(
        disk.port == 4421,
        format!("disk {handle} is exported on {}, not 4421", disk.port),
    )?;
    ensure(
        csi["fsType"] == "xfs",
        format!("PV fsType {}, not xfs", csi["fsType"]),
    )?;
    check_attributes(
        &csi["volumeAttributes"],
        &[
            ("nvmeAddress", "192.0.2.7".to_owned()),
            ("nvmePort", "4421".to_owned()),
            ("fsType", "xfs".to_owned()),
            ("ctrlLossTmo", "600".to_owned()),
            ("reconnectDelay", "3".to_owned()),
            ("keepAliveTmo", "7".to_owned()),
            ("fastIoFailTmo", "30".to_owned()),
            ("volumePath", format!("/{image}")),
        ],
    )?;
    delete_and_check_gone(c, name, pv_name, handle).await?;
    c.kubectl.delete("storageclass", None, class).await
}

/// A misspelt parameter and a value out of range each give the PVC a
/// warning event that names the parameter and says what is allowed; the
/// PVC stays Pending and nothing is made on the RDS.
pub async fn bad_parameter_is_an_event(c: &mut Cluster) -> Outcome {
    let before = disk_slots(c)?;
    let cases = [
        (
            "e2e-typo",
            "typo",
            ("ctrlLossTimeout", "600"),
            "unknown parameter \"ctrlLossTimeout\"",
        ),
        (
            "e2e-invalid",
            "invalid",
            ("ctrlLossTmo", "forever"),
            "invalid ctrlLossTmo \"forever\": must be",
        ),
    ];
    for (class, claim, param, _) in &cases {
        c.apply(&[storage_class(class, &c.driver, &[*param], "Delete")])
            .await?;
        c.apply(&[pvc(claim, class, "1Gi", false)]).await?;
    }
    for (_, claim, _, says) in &cases {
        let event = wait_for(
            &format!("a ProvisioningFailed event on PVC {claim} saying {says}"),
            PATIENCE,
            || async {
                let events = c
                    .kubectl
                    .events(PVC_NAMESPACE, "PersistentVolumeClaim", claim)
                    .await?;
                Ok(events.into_iter().find(|e| {
                    e["reason"] == "ProvisioningFailed"
                        && e["type"] == "Warning"
                        && e["message"].as_str().is_some_and(|m| m.contains(says))
                }))
            },
            || c.describe_pvc(claim),
        )
        .await?;
        let message = event["message"].as_str().unwrap_or_default();
        ensure(
            message.contains("InvalidArgument"),
            format!("the event on {claim} does not give the gRPC code InvalidArgument: {message}"),
        )?;
        let phase = c
            .pvc(claim)
            .await?
            .context(format!("PVC {claim} vanished"))?;
        ensure(
            phase["status"]["phase"] == "Pending",
            format!("PVC {claim} is {}, not Pending", phase["status"]["phase"]),
        )?;
    }
    ensure(
        disk_slots(c)? == before,
        "a bad class made a disk on the RDS",
    )?;
    for (class, claim, _, _) in &cases {
        c.delete_pvc(claim).await?;
        c.kubectl.delete("storageclass", None, class).await?;
    }
    Ok(())
}

/// Every key of `want` has its value in the PV's volume attributes.
fn check_attributes(attrs: &Value, want: &[(&str, String)]) -> Outcome {
    let wrong: Vec<String> = want
        .iter()
        .filter(|(k, v)| attrs[*k].as_str() != Some(v.as_str()))
        .map(|(k, v)| format!("{k}={} (want {v})", attrs[*k]))
        .collect();
    ensure(
        wrong.is_empty(),
        format!(
            "the PV's volume context is wrong: {}; it is {attrs}",
            wrong.join(", ")
        ),
    )
}

/// The slots of the disks on the RDS.
pub fn disk_slots(c: &Cluster) -> Outcome<BTreeSet<String>> {
    Ok(c.disks()?.into_iter().map(|d| d.slot).collect())
}

/// Deletes the PVC (of a Delete class) and checks that its PV, disk and
/// image are gone.
pub async fn delete_and_check_gone(c: &Cluster, claim: &str, pv: &str, handle: &str) -> Outcome {
    c.delete_pvc(claim).await?;
    c.wait_pv_gone(pv).await?;
    ensure(
        c.disk(handle)?.is_none(),
        format!("disk {handle} is still on the RDS after its PV was deleted"),
    )?;
    // The volume's own files: its flat image, or anything in its subvolume.
    // A snapshot of it has the volume's slot in its name too, and outlives
    // it on purpose.
    let (flat, inside) = (format!("/{handle}.img"), format!("/{handle}/"));
    let left: Vec<String> = c
        .files()?
        .into_iter()
        .filter(|f| f.name.ends_with(&flat) || f.name.contains(&inside))
        .map(|f| f.name)
        .collect();
    ensure(
        left.is_empty(),
        format!("images of {handle} are still on the RDS: {left:?}"),
    )?;
    let events = c
        .kubectl
        .list("events", None, &format!("involvedObject.name={pv}"))
        .await?;
    let failures: Vec<&Value> = events
        .iter()
        .filter(|e| e["reason"] == "VolumeFailedDelete")
        .collect();
    ensure(
        failures.is_empty(),
        format!(
            "deleting PV {pv} failed on the way: {}",
            describe_events(&failures.into_iter().cloned().collect::<Vec<_>>())
        ),
    )
}
