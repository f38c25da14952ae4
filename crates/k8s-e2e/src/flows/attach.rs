//! Attachment with the real attach-detach controller (kube-controller-manager)
//! and the real external-attacher: a pod's volume on a node gets a
//! VolumeAttachment, our ControllerPublishVolume opens the volume's export
//! to that node's host identity alone, and the pod's deletion detaches it
//! and closes the export; a second node's VolumeAttachment of the same
//! ReadWriteOnce volume fails, with our error on the VolumeAttachment.
//!
//! No kubelet runs, so the flow stands in for what kubelet leaves on the API
//! server for a node: the Node annotated as one whose volumes the controller
//! manager attaches, and the CSINode in which the node plugin registered
//! our driver with its node ID (the host NQN it attaches volumes as).

use serde_json::{Value, json};

use crate::cluster::{Cluster, NODE, PVC_NAMESPACE, pvc, storage_class};
use crate::support::{Context, Outcome, PATIENCE, ensure, wait_for};

/// A second node, which never gets the volume.
const NODE_2: &str = "node-2";

/// The NQN prefix of the manifests' plugins (the plugin's default).
const PREFIX: &str = "nqn.2024-01.io.srvlab.csi.rds:";

const CLASS: &str = "e2e-attach";
const CLAIM: &str = "attached";
const POD: &str = "attach-user";
/// The VolumeAttachment made by hand for [`NODE_2`].
const SECOND: &str = "e2e-second-node";

/// The node ID our node plugin on `node` reports.
fn node_id(node: &str) -> Outcome<String> {
    nvme_host::fence::node_host_nqn(PREFIX, node).map_err(|e| e.to_string())
}

/// A Node as kubelet leaves it when the controller manager attaches its
/// volumes.
fn managed_node(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
    })
}

/// The CSINode our node plugin's registration leaves for `node`.
fn csinode(node: &str, driver: &str) -> Outcome<Value> {
    Ok(json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "CSINode",
        "metadata": {"name": node},
        "spec": {"drivers": [{"name": driver, "nodeID": node_id(node)?, "topologyKeys": null}]},
    }))
}

/// A pod using the claim, bound to `node` as the scheduler would bind it.
fn pod(node: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD, "namespace": PVC_NAMESPACE},
        "spec": {
            "nodeName": node,
            "automountServiceAccountToken": false,
            "containers": [{
                "name": "app",
                "image": "registry.k8s.io/pause:3.10",
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": CLAIM}}],
        },
    })
}

/// A VolumeAttachment of `pv` to `node`, as the attach-detach controller
/// makes one.
fn attachment(name: &str, driver: &str, pv: &str, node: &str) -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "VolumeAttachment",
        "metadata": {"name": name},
        "spec": {
            "attacher": driver,
            "nodeName": node,
            "source": {"persistentVolumeName": pv},
        },
    })
}

pub async fn attach_and_detach(c: &mut Cluster) -> Outcome {
    c.apply(&[
        // Every namespace has one; the controller manager of this tier does
        // not run the controller that makes it, and a pod needs it.
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": PVC_NAMESPACE},
        }),
        managed_node(NODE),
        managed_node(NODE_2),
        csinode(NODE, &c.driver)?,
        csinode(NODE_2, &c.driver)?,
        storage_class(CLASS, &c.driver, &[], "Delete"),
    ])
    .await?;
    let result = steps(c).await;
    // Whatever happened, the cluster is left as it was found: the pod, the
    // hand-made attachment, the claim (its PV and disk go with it), the
    // class, the second node and both CSINodes.
    let k = &c.kubectl;
    let _ = k
        .run(&[
            "delete",
            "pod",
            POD,
            "-n",
            PVC_NAMESPACE,
            "--ignore-not-found",
            "--force",
            "--grace-period=0",
        ])
        .await;
    let _ = k.delete("volumeattachment", None, SECOND).await;
    let _ = k.delete("pvc", Some(PVC_NAMESPACE), CLAIM).await;
    let _ = k.delete("storageclass", None, CLASS).await;
    let _ = k.delete("csinode", None, NODE).await;
    let _ = k.delete("csinode", None, NODE_2).await;
    let _ = k.delete("node", None, NODE_2).await;
    let _ = k
        .run(&[
            "annotate",
            "node",
            NODE,
            "volumes.kubernetes.io/controller-managed-attach-detach-",
        ])
        .await;
    result
}

/// The VolumeAttachments of `pv`.
async fn attachments_of(c: &Cluster, pv: &str) -> Outcome<Vec<Value>> {
    let all = c.kubectl.list("volumeattachment", None, "").await?;
    Ok(all
        .into_iter()
        .filter(|a| a["spec"]["source"]["persistentVolumeName"] == pv)
        .collect())
}

/// The VolumeAttachments of `pv`, for a report.
async fn describe(c: &Cluster, pv: &str) -> String {
    match attachments_of(c, pv).await {
        Ok(list) => list
            .iter()
            .map(|a| {
                format!(
                    "{} to {}: attached {}, attachError {}, detachError {}",
                    a["metadata"]["name"],
                    a["spec"]["nodeName"],
                    a["status"]["attached"],
                    a["status"]["attachError"]["message"],
                    a["status"]["detachError"]["message"]
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(e) => e,
    }
}

/// `(nvme-tcp-export, nvme-tcp-server-allow-host-name)` of disk `handle`.
fn export_of(c: &Cluster, handle: &str) -> Outcome<(bool, String)> {
    let disk = c
        .disk(handle)?
        .context(format!("the RDS has no disk {handle}"))?;
    Ok((disk.export, disk.allow_host_name))
}

async fn steps(c: &mut Cluster) -> Outcome {
    c.apply(&[pvc(CLAIM, CLASS, "1Gi", false)]).await?;
    let (_, pv) = c.wait_bound(CLAIM).await?;
    let pv_name = pv["metadata"]["name"]
        .as_str()
        .context("a PV without a name")?
        .to_owned();
    let handle = pv["spec"]["csi"]["volumeHandle"]
        .as_str()
        .context("the PV has no volume handle")?
        .to_owned();
    ensure(
        export_of(c, &handle)? == (false, String::new()),
        "the provisioned volume is exported before it is attached anywhere",
    )?;

    // A pod on node-1: the attach-detach controller makes a VolumeAttachment,
    // the attacher publishes the volume there.
    c.apply(&[pod(NODE)]).await?;
    let attached = wait_for(
        "the pod's volume to be attached to node-1",
        PATIENCE,
        || async {
            Ok(attachments_of(c, &pv_name).await?.into_iter().find(|a| {
                a["spec"]["nodeName"] == NODE
                    && a["spec"]["attacher"] == c.driver.as_str()
                    && a["status"]["attached"] == true
            }))
        },
        || describe(c, &pv_name),
    )
    .await?;
    let node_1 = node_id(NODE)?;
    let identity =
        nvme_host::fence::identity_of_node(PREFIX, &node_1).map_err(|e| e.to_string())?;
    let metadata = &attached["status"]["attachmentMetadata"];
    ensure(
        metadata["hostNqn"] == identity.nqn.as_str() && metadata["hostId"] == identity.id.as_str(),
        format!("the attachment's metadata (kubelet's publish context) is {metadata}"),
    )?;
    ensure(
        export_of(c, &handle)? == (true, node_1.clone()),
        format!(
            "the disk's export after the attach is {:?}, not node-1's host NQN alone",
            export_of(c, &handle)?
        ),
    )?;

    // A second node's attachment of the same ReadWriteOnce volume (the
    // attach-detach controller would not even make one: it reports a
    // Multi-Attach error on the pod) fails with our refusal, and changes
    // nothing on the RDS.
    c.apply(&[attachment(SECOND, &c.driver, &pv_name, NODE_2)])
        .await?;
    let refused = wait_for(
        "node-2's attachment to fail",
        PATIENCE,
        || async {
            let a = c.kubectl.get("volumeattachment", None, SECOND).await?;
            Ok(a.and_then(|a| {
                a["status"]["attachError"]["message"]
                    .as_str()
                    .map(str::to_owned)
            }))
        },
        || describe(c, &pv_name),
    )
    .await?;
    ensure(
        refused.contains("FailedPrecondition") && refused.contains(&node_1),
        format!(
            "node-2's attachment failed with {refused:?}, not FAILED_PRECONDITION naming node-1"
        ),
    )?;
    ensure(
        export_of(c, &handle)? == (true, node_1.clone()),
        "the refused attachment changed the export",
    )?;
    c.kubectl.delete("volumeattachment", None, SECOND).await?;
    wait_for(
        "node-2's attachment to be gone",
        PATIENCE,
        || async {
            Ok(c.kubectl
                .get("volumeattachment", None, SECOND)
                .await?
                .is_none()
                .then_some(()))
        },
        || describe(c, &pv_name),
    )
    .await?;
    ensure(
        export_of(c, &handle)? == (true, node_1.clone()),
        "detaching node-2's failed attachment changed node-1's export",
    )?;

    // The pod goes: the volume is detached from node-1 and its export
    // closed. (Without a kubelet, the pod is removed at once, and the node
    // updated so that the controller manager sees no volume in use there.)
    c.kubectl
        .run(&[
            "delete",
            "pod",
            POD,
            "-n",
            PVC_NAMESPACE,
            "--force",
            "--grace-period=0",
        ])
        .await?;
    c.kubectl
        .run(&[
            "annotate",
            "node",
            NODE,
            "--overwrite",
            "e2e.rds-csi/touched=detach",
        ])
        .await?;
    wait_for(
        "the volume to be detached from node-1",
        PATIENCE,
        || async { Ok(attachments_of(c, &pv_name).await?.is_empty().then_some(())) },
        || describe(c, &pv_name),
    )
    .await?;
    ensure(
        export_of(c, &handle)? == (false, String::new()),
        format!(
            "the disk's export after the detach is {:?}, not closed",
            export_of(c, &handle)?
        ),
    )?;

    c.delete_pvc(CLAIM).await?;
    c.wait_pv_gone(&pv_name).await?;
    ensure(c.disk(&handle)?.is_none(), "the disk outlived its PV")
}
