//! Snapshots, restores and clones through Kubernetes: the VolumeSnapshotClass
//! of our manifests, snapshot-controller and our csi-snapshotter sidecar
//! take a VolumeSnapshot of a PVC on the simulator's btrfs pool; PVCs made
//! from the snapshot and from the PVC (`dataSource`) are provisioned; on the
//! pool each is a subvolume of its own, the snapshot a read-only snapshot of
//! the volume's subvolume and the restore and the clone writable snapshots
//! (btrfs's parent UUIDs say which of which: no data was copied). The
//! snapshot outlives its source PVC, and deleting everything leaves no
//! subvolume behind. A snapshot of a volume on a pool that is not btrfs is
//! refused with the driver's FAILED_PRECONDITION message on the
//! VolumeSnapshot.

use serde_json::{Value, json};

use crate::btrfs::Subvolume;
use crate::cluster::{BTRFS_FOLDER, BTRFS_POOL, Cluster, PVC_NAMESPACE, pvc, storage_class};
use crate::flows::provision::delete_and_check_gone;
use crate::kubectl::describe_events;
use crate::snapshots;
use crate::support::{Context, Outcome, PATIENCE, ensure, wait_for};
use crate::template;

const GIB: u64 = 1 << 30;

/// The VolumeSnapshotClass our manifests install for the driver.
pub fn snapshot_class(c: &Cluster) -> Outcome<String> {
    c.objects
        .iter()
        .find(|o| o["kind"] == "VolumeSnapshotClass" && o["driver"] == c.driver.as_str())
        .and_then(|o| o["metadata"]["name"].as_str())
        .map(str::to_owned)
        .context(format!(
            "the manifests install no VolumeSnapshotClass of {}",
            c.driver
        ))
}

/// A VolumeSnapshot of the PVC `source` with `class`, in the flows'
/// namespace.
pub fn volume_snapshot(name: &str, source: &str, class: &str) -> Value {
    json!({
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": name, "namespace": PVC_NAMESPACE},
        "spec": {
            "volumeSnapshotClassName": class,
            "source": {"persistentVolumeClaimName": source},
        },
    })
}

/// A PVC of `class` made from `source`: a VolumeSnapshot (`snapshot` true)
/// or a PVC.
pub fn pvc_from(name: &str, class: &str, size: &str, source: &str, snapshot: bool) -> Value {
    let mut claim = pvc(name, class, size, false);
    claim["spec"]["dataSource"] = if snapshot {
        json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": source})
    } else {
        json!({"kind": "PersistentVolumeClaim", "name": source})
    };
    claim
}

/// Bytes of a Kubernetes quantity as the snapshot objects carry sizes
/// (`1Gi`, `1073741824`, `1G`); `None` for anything else.
pub fn quantity_bytes(q: &str) -> Option<u64> {
    const UNITS: &[(&str, u64)] = &[
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    let (digits, factor) = UNITS
        .iter()
        .find_map(|(suffix, f)| q.strip_suffix(suffix).map(|d| (d, *f)))
        .unwrap_or((q, 1));
    digits.parse::<u64>().ok()?.checked_mul(factor)
}

/// The snapshot's phase, error and events, for a report.
async fn describe_snapshot(c: &Cluster, name: &str) -> String {
    let status = match c
        .kubectl
        .get("volumesnapshot", Some(PVC_NAMESPACE), name)
        .await
    {
        Ok(Some(s)) => s["status"].to_string(),
        Ok(None) => "absent".to_owned(),
        Err(e) => e,
    };
    let events = match c
        .kubectl
        .events(PVC_NAMESPACE, "VolumeSnapshot", name)
        .await
    {
        Ok(e) => describe_events(&e),
        Err(e) => e,
    };
    format!("status {status}; events: {events}")
}

/// Waits until the VolumeSnapshot `name` is ready to use, and returns it.
async fn wait_ready(c: &Cluster, name: &str) -> Outcome<Value> {
    wait_for(
        &format!("VolumeSnapshot {name} to be readyToUse"),
        PATIENCE,
        || async {
            let s = c
                .kubectl
                .get("volumesnapshot", Some(PVC_NAMESPACE), name)
                .await?;
            Ok(s.filter(|s| s["status"]["readyToUse"] == true))
        },
        || describe_snapshot(c, name),
    )
    .await
}

/// Deletes the VolumeSnapshot `name` and waits until it and its content are
/// gone (the content's finalizer goes once DeleteSnapshot succeeded).
async fn delete_snapshot(c: &Cluster, name: &str, content: Option<&str>) -> Outcome {
    c.kubectl
        .delete("volumesnapshot", Some(PVC_NAMESPACE), name)
        .await?;
    wait_for(
        &format!("VolumeSnapshot {name} to be gone"),
        PATIENCE,
        || async {
            let s = c
                .kubectl
                .get("volumesnapshot", Some(PVC_NAMESPACE), name)
                .await?;
            Ok(s.is_none().then_some(()))
        },
        || describe_snapshot(c, name),
    )
    .await?;
    if let Some(content) = content {
        wait_for(
            &format!("VolumeSnapshotContent {content} to be gone"),
            PATIENCE,
            || async {
                let s = c
                    .kubectl
                    .get("volumesnapshotcontent", None, content)
                    .await?;
                Ok(s.is_none().then_some(()))
            },
            || async {
                format!(
                    "{:?}",
                    c.kubectl
                        .get("volumesnapshotcontent", None, content)
                        .await
                        .map(|s| s.map(|s| s["status"].clone()))
                )
            },
        )
        .await?;
    }
    Ok(())
}

/// The subvolumes in the btrfs pool's volume folder.
async fn volume_subvolumes(c: &Cluster) -> Outcome<Vec<Subvolume>> {
    let prefix = format!("{BTRFS_FOLDER}/");
    Ok(c.subvolumes()
        .await?
        .into_iter()
        .filter(|s| s.path.starts_with(&prefix))
        .collect())
}

/// The subvolume `volumes/<name>`.
async fn subvolume(c: &Cluster, name: &str) -> Outcome<Option<Subvolume>> {
    let path = format!("{BTRFS_FOLDER}/{name}");
    Ok(volume_subvolumes(c)
        .await?
        .into_iter()
        .find(|s| s.path == path))
}

/// A bound PVC's PV name and volume handle.
fn pv_and_handle(pv: &Value) -> Outcome<(String, String)> {
    let name = pv["metadata"]["name"]
        .as_str()
        .context("a PV without a name")?;
    let handle = pv["spec"]["csi"]["volumeHandle"]
        .as_str()
        .context(format!("PV {name} has no volume handle"))?;
    Ok((name.to_owned(), handle.to_owned()))
}

/// Checks that volume `handle` is a disk of `size` bytes on an image in a
/// writable subvolume of its own, and returns that subvolume.
async fn check_in_subvolume(c: &Cluster, handle: &str, size: u64) -> Outcome<Subvolume> {
    let disk = c
        .disk(handle)?
        .context(format!("the RDS has no disk {handle}"))?;
    let image = format!("{BTRFS_POOL}/{BTRFS_FOLDER}/{handle}/volume.img");
    ensure(
        disk.file_path.trim_start_matches('/') == image,
        format!("disk {handle}'s image is {}, not /{image}", disk.file_path),
    )?;
    ensure(
        disk.size == size,
        format!("disk {handle} has {} bytes, not {size}", disk.size),
    )?;
    ensure(
        !disk.export,
        format!("disk {handle} is exported before any node is published to"),
    )?;
    let sub = subvolume(c, handle).await?.context(format!(
        "{BTRFS_FOLDER}/{handle} is not a subvolume of the btrfs pool"
    ))?;
    ensure(
        !sub.read_only,
        format!("volume {handle}'s subvolume is read-only"),
    )?;
    Ok(sub)
}

/// The VolumeSnapshotClass from our manifests is in the cluster and names
/// the driver; snapshot-controller and every replica's csi-snapshotter run
/// and hold their Leases. Needs no snapshot RPC: it proves the installation.
pub async fn class_and_controllers_in_place(c: &mut Cluster) -> Outcome {
    let class = snapshot_class(c)?;
    let installed = c
        .kubectl
        .get("volumesnapshotclass", None, &class)
        .await?
        .context(format!(
            "the VolumeSnapshotClass {class} of the manifests is not in the cluster"
        ))?;
    ensure(
        installed["driver"] == c.driver.as_str(),
        format!(
            "VolumeSnapshotClass {class} names the driver {}, not {}",
            installed["driver"], c.driver
        ),
    )?;
    ensure(
        installed["deletionPolicy"] == "Delete",
        format!(
            "VolumeSnapshotClass {class} has deletionPolicy {}, not Delete",
            installed["deletionPolicy"]
        ),
    )?;
    let snapshotter = c
        .template
        .containers
        .iter()
        .find(|ct| template::image_name(&ct.image) == "csi-snapshotter")
        .context("the controller Deployment runs no csi-snapshotter")?
        .name
        .clone();
    for pod in c.pods() {
        ensure(
            pod.container(&snapshotter).is_some(),
            format!("{} runs no {snapshotter}", pod.name),
        )?;
    }
    let lease = c
        .leases()
        .into_iter()
        .find(|l| l.starts_with("external-snapshotter-leader-"))
        .context("no Lease of csi-snapshotter")?;
    c.wait_leader(&lease, None).await?;
    c.wait_snapshot_controller_leader().await?;
    ensure(
        c.snapshot_controller.is_some(),
        "snapshot-controller is not running",
    )?;
    c.ensure_running()?;
    // Every replica's csi-snapshotter found the driver able to snapshot
    // (it exits otherwise) and waits or leads.
    let controller = Cluster::snapshot_controller_name();
    ensure(
        c.leader_in(snapshots::CONTROLLER_NAMESPACE, snapshots::CONTROLLER_LEASE)
            .await?
            .as_deref()
            == Some(controller.as_str()),
        "snapshot-controller lost its Lease",
    )
}

const SNAP_CLASS: &str = "e2e-btrfs";
const SOURCE: &str = "snap-source";
const SNAPSHOT: &str = "snap-1";
const RESTORED: &str = "snap-restored";
const CLONE: &str = "snap-clone";
const RESTORED_AGAIN: &str = "snap-restored-again";

/// Snapshot, restore (to a larger size), clone, the source deleted, a
/// restore again, everything deleted: checked on the API objects and on
/// the btrfs pool.
pub async fn snapshot_restore_clone(c: &mut Cluster) -> Outcome {
    let result = restore_and_clone(c).await;
    if result.is_err() {
        // Out of the way of the flows after this one; what is left on the
        // RDS is in the report.
        for claim in [RESTORED_AGAIN, CLONE, RESTORED, SOURCE] {
            let _ = c.kubectl.delete("pvc", Some(PVC_NAMESPACE), claim).await;
        }
        let _ = c
            .kubectl
            .delete("volumesnapshot", Some(PVC_NAMESPACE), SNAPSHOT)
            .await;
        let _ = c.kubectl.delete("storageclass", None, SNAP_CLASS).await;
    }
    result
}

async fn restore_and_clone(c: &mut Cluster) -> Outcome {
    let vsclass = snapshot_class(c)?;
    let folder = format!("/{BTRFS_POOL}/{BTRFS_FOLDER}");
    ensure(
        volume_subvolumes(c).await?.is_empty(),
        format!("{folder} holds subvolumes before the flow"),
    )?;
    c.apply(&[storage_class(
        SNAP_CLASS,
        &c.driver,
        &[("volumePath", folder.as_str())],
        "Delete",
    )])
    .await?;

    // The source: a volume in a subvolume of its own.
    c.apply(&[pvc(SOURCE, SNAP_CLASS, "1Gi", false)]).await?;
    let (_, pv) = c.wait_bound(SOURCE).await?;
    let (source_pv, source) = pv_and_handle(&pv)?;
    let source_sub = check_in_subvolume(c, &source, GIB).await?;

    // The snapshot: ready, with the source's size, a read-only snapshot of
    // the source's subvolume, beside it.
    c.apply(&[volume_snapshot(SNAPSHOT, SOURCE, &vsclass)])
        .await?;
    let snap = wait_ready(c, SNAPSHOT).await?;
    let restore_size = snap["status"]["restoreSize"].as_str().unwrap_or_default();
    ensure(
        quantity_bytes(restore_size) == Some(GIB),
        format!("VolumeSnapshot {SNAPSHOT} has restoreSize {restore_size:?}, not 1Gi"),
    )?;
    ensure(
        snap["status"]["creationTime"].is_string(),
        format!("VolumeSnapshot {SNAPSHOT} has no creationTime"),
    )?;
    let content_name = snap["status"]["boundVolumeSnapshotContentName"]
        .as_str()
        .context(format!("VolumeSnapshot {SNAPSHOT} names no content"))?
        .to_owned();
    let content = c
        .kubectl
        .get("volumesnapshotcontent", None, &content_name)
        .await?
        .context(format!("VolumeSnapshotContent {content_name} is missing"))?;
    let handle = content["status"]["snapshotHandle"]
        .as_str()
        .context(format!(
            "VolumeSnapshotContent {content_name} has no snapshotHandle"
        ))?
        .to_owned();
    ensure(
        content["spec"]["driver"] == c.driver.as_str()
            && content["spec"]["deletionPolicy"] == "Delete",
        format!(
            "VolumeSnapshotContent {content_name}: driver {}, deletionPolicy {}",
            content["spec"]["driver"], content["spec"]["deletionPolicy"]
        ),
    )?;
    let snapshot_sub = |subs: Vec<Subvolume>| {
        let prefix = format!("{BTRFS_FOLDER}/{handle}");
        let mut found: Vec<Subvolume> = subs
            .into_iter()
            .filter(|s| s.path.starts_with(&prefix))
            .collect();
        ensure(
            found.len() == 1,
            format!(
                "{} subvolumes of the pool start with {prefix} (snapshot {handle}), not 1: {found:?}",
                found.len()
            ),
        )?;
        Ok::<_, String>(found.remove(0))
    };
    let snap_sub = snapshot_sub(volume_subvolumes(c).await?)?;
    ensure(
        snap_sub.read_only,
        format!("snapshot {} is not read-only", snap_sub.path),
    )?;
    ensure(
        snap_sub.parent_uuid.as_deref() == Some(source_sub.uuid.as_str()),
        format!(
            "snapshot {} is not a btrfs snapshot of {} ({:?} is not {})",
            snap_sub.path, source_sub.path, snap_sub.parent_uuid, source_sub.uuid
        ),
    )?;

    // A restore to a larger size, and a clone of the live source: each a
    // writable snapshot, of the snapshot and of the source.
    c.apply(&[
        pvc_from(RESTORED, SNAP_CLASS, "2Gi", SNAPSHOT, true),
        pvc_from(CLONE, SNAP_CLASS, "1Gi", SOURCE, false),
    ])
    .await?;
    let (claim, pv) = c.wait_bound(RESTORED).await?;
    ensure(
        claim["status"]["capacity"]["storage"] == "2Gi",
        format!(
            "PVC {RESTORED} has capacity {}, not 2Gi",
            claim["status"]["capacity"]["storage"]
        ),
    )?;
    let (restored_pv, restored) = pv_and_handle(&pv)?;
    let restored_sub = check_in_subvolume(c, &restored, 2 * GIB).await?;
    ensure(
        restored_sub.parent_uuid.as_deref() == Some(snap_sub.uuid.as_str()),
        format!(
            "the restored volume {} is not a btrfs snapshot of {}",
            restored_sub.path, snap_sub.path
        ),
    )?;
    let (_, pv) = c.wait_bound(CLONE).await?;
    let (clone_pv, clone) = pv_and_handle(&pv)?;
    let clone_sub = check_in_subvolume(c, &clone, GIB).await?;
    ensure(
        clone_sub.parent_uuid.as_deref() == Some(source_sub.uuid.as_str()),
        format!(
            "the clone {} is not a btrfs snapshot of {}",
            clone_sub.path, source_sub.path
        ),
    )?;

    // The source goes; the snapshot stays usable.
    delete_and_check_gone(c, SOURCE, &source_pv, &source).await?;
    ensure(
        subvolume(c, &source).await?.is_none(),
        format!("the deleted volume's subvolume {BTRFS_FOLDER}/{source} is still there"),
    )?;
    let still = snapshot_sub(volume_subvolumes(c).await?)?;
    ensure(
        still.uuid == snap_sub.uuid,
        "the snapshot's subvolume changed when its source was deleted",
    )?;
    wait_ready(c, SNAPSHOT).await?;
    c.apply(&[pvc_from(RESTORED_AGAIN, SNAP_CLASS, "1Gi", SNAPSHOT, true)])
        .await?;
    let (_, pv) = c.wait_bound(RESTORED_AGAIN).await?;
    let (again_pv, again) = pv_and_handle(&pv)?;
    let again_sub = check_in_subvolume(c, &again, GIB).await?;
    ensure(
        again_sub.parent_uuid.as_deref() == Some(snap_sub.uuid.as_str()),
        format!(
            "the volume restored after its source was deleted, {}, is not a btrfs snapshot of {}",
            again_sub.path, snap_sub.path
        ),
    )?;

    // Everything goes, and nothing is left on the pool.
    for (claim, pv, handle) in [
        (RESTORED, &restored_pv, &restored),
        (CLONE, &clone_pv, &clone),
        (RESTORED_AGAIN, &again_pv, &again),
    ] {
        delete_and_check_gone(c, claim, pv, handle).await?;
    }
    delete_snapshot(c, SNAPSHOT, Some(&content_name)).await?;
    let left = volume_subvolumes(c).await?;
    ensure(
        left.is_empty(),
        format!("subvolumes are left on the pool: {left:?}"),
    )?;
    let files: Vec<String> = c
        .files()?
        .into_iter()
        .map(|f| f.name)
        .filter(|n| n.starts_with(&format!("{BTRFS_POOL}/")))
        .collect();
    ensure(
        files.is_empty(),
        format!("files are left on the btrfs pool: {files:?}"),
    )?;
    c.kubectl.delete("storageclass", None, SNAP_CLASS).await
}

const XFS_CLASS: &str = "e2e-not-btrfs";
const XFS_SOURCE: &str = "snap-on-xfs";
const XFS_SNAPSHOT: &str = "snap-of-xfs";

/// A VolumeSnapshot of a volume on the xfs pool: the VolumeSnapshot carries
/// the driver's FAILED_PRECONDITION message, is never ready, and nothing is
/// made on the RDS.
pub async fn snapshot_off_btrfs_is_refused(c: &mut Cluster) -> Outcome {
    let result = refused(c).await;
    if result.is_err() {
        let _ = c
            .kubectl
            .delete("volumesnapshot", Some(PVC_NAMESPACE), XFS_SNAPSHOT)
            .await;
        let _ = c
            .kubectl
            .delete("pvc", Some(PVC_NAMESPACE), XFS_SOURCE)
            .await;
        let _ = c.kubectl.delete("storageclass", None, XFS_CLASS).await;
    }
    result
}

async fn refused(c: &mut Cluster) -> Outcome {
    let vsclass = snapshot_class(c)?;
    // The ConfigMap's volume path, on the xfs pool.
    c.apply(&[storage_class(XFS_CLASS, &c.driver, &[], "Delete")])
        .await?;
    c.apply(&[pvc(XFS_SOURCE, XFS_CLASS, "1Gi", false)]).await?;
    let (_, pv) = c.wait_bound(XFS_SOURCE).await?;
    let (pv_name, handle) = pv_and_handle(&pv)?;
    let subvolumes_before = c.subvolumes().await?;
    let disks_before = c.disks()?.len();
    c.apply(&[volume_snapshot(XFS_SNAPSHOT, XFS_SOURCE, &vsclass)])
        .await?;
    let snap = wait_for(
        &format!("VolumeSnapshot {XFS_SNAPSHOT} to report an error"),
        PATIENCE,
        || async {
            let s = c
                .kubectl
                .get("volumesnapshot", Some(PVC_NAMESPACE), XFS_SNAPSHOT)
                .await?;
            Ok(s.filter(|s| s["status"]["error"]["message"].is_string()))
        },
        || describe_snapshot(c, XFS_SNAPSHOT),
    )
    .await?;
    let message = snap["status"]["error"]["message"]
        .as_str()
        .unwrap_or_default();
    ensure(
        message.contains("FailedPrecondition") && message.contains("cannot be snapshotted"),
        format!(
            "VolumeSnapshot {XFS_SNAPSHOT}'s error is not the driver's FAILED_PRECONDITION \
             saying why the volume cannot be snapshotted: {message}"
        ),
    )?;
    ensure(
        snap["status"]["readyToUse"] != true,
        format!("VolumeSnapshot {XFS_SNAPSHOT} is ready though the snapshot failed"),
    )?;
    ensure(
        c.subvolumes().await? == subvolumes_before && c.disks()?.len() == disks_before,
        "the refused snapshot made something on the RDS",
    )?;
    let content = snap["status"]["boundVolumeSnapshotContentName"]
        .as_str()
        .map(str::to_owned);
    delete_snapshot(c, XFS_SNAPSHOT, content.as_deref()).await?;
    delete_and_check_gone(c, XFS_SOURCE, &pv_name, &handle).await?;
    c.kubectl.delete("storageclass", None, XFS_CLASS).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_in_bytes() {
        assert_eq!(quantity_bytes("1Gi"), Some(GIB));
        assert_eq!(quantity_bytes("1073741824"), Some(GIB));
        assert_eq!(quantity_bytes("512Mi"), Some(GIB / 2));
        assert_eq!(quantity_bytes("2G"), Some(2_000_000_000));
        assert_eq!(quantity_bytes(""), None);
        assert_eq!(quantity_bytes("1.5Gi"), None);
        assert_eq!(quantity_bytes("Gi"), None);
    }

    #[test]
    fn objects_for_snapshots() {
        let s = volume_snapshot("s", "src", "rds-snapshot");
        assert_eq!(s["spec"]["source"]["persistentVolumeClaimName"], "src");
        assert_eq!(s["spec"]["volumeSnapshotClassName"], "rds-snapshot");
        let r = pvc_from("r", "c", "2Gi", "s", true);
        assert_eq!(r["spec"]["dataSource"]["kind"], "VolumeSnapshot");
        assert_eq!(
            r["spec"]["dataSource"]["apiGroup"],
            "snapshot.storage.k8s.io"
        );
        assert_eq!(r["spec"]["resources"]["requests"]["storage"], "2Gi");
        let k = pvc_from("k", "c", "1Gi", "src", false);
        assert_eq!(
            k["spec"]["dataSource"],
            json!({"kind": "PersistentVolumeClaim", "name": "src"})
        );
    }
}
