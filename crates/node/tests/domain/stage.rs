//! NodeStageVolume's rules: connect (reusing a connection), format only on a
//! positive "empty", mount, record; any doubt stops the stage.

use std::time::Duration;

use node::NodeError;
use node::testing::{Contents, DeviceAppears};
use node_fs::probe::Probe;
use nvme_host::{Connected, NvmeError};

use crate::{FsType, GIB, Rig, attach_identity, block, filesystem, kind, stage};

#[tokio::test(start_paused = true)]
async fn a_filesystem_volume_is_formatted_once_mounted_and_recorded() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    assert_eq!(
        rig.world.formatted(),
        [("/dev/nvme0n1".to_owned(), FsType::Ext4.into())]
    );
    assert_eq!(rig.world.mounts_at(&v.staging), ["/dev/nvme0n1"]);
    let records = rig.world.saved_records();
    assert_eq!(records.len(), 2, "beside the staging path and in the index");
    let r = &records[0];
    assert_eq!(
        (r.nqn.as_str(), r.fs_type.as_deref(), r.read_only),
        (v.nqn.as_str(), Some("ext4"), false)
    );
    assert_eq!(
        r.connection.as_ref().unwrap()["nqn"],
        v.nqn,
        "the context is kept for reconnecting"
    );
    assert!(r.diskseq.is_some());

    // Again: nothing new is made.
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    assert_eq!(rig.world.formatted().len(), 1);
    assert_eq!(rig.world.mounts_at(&v.staging).len(), 1);
    assert_eq!(rig.world.controllers(&v.nqn), 1);
    assert_eq!((rig.connects("connected"), rig.connects("already")), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn stage_reuses_an_existing_connection() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    // Left behind by a stage that stopped after its connect.
    rig.world.connect_directly(&v.nqn, &attach_identity().nqn);
    rig.node.stage(stage(&v, block())).await.unwrap();
    assert_eq!(rig.world.connects(), [Connected::Already]);
    assert_eq!(rig.world.controllers(&v.nqn), 1);
    assert_eq!(rig.connects("already"), 1);
}

#[tokio::test(start_paused = true)]
async fn stage_never_formats_on_a_probe_error() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    // blkid cannot tell (a device not ready after a reconnect looks empty).
    rig.world.fail("probe", 3);
    for _ in 0..3 {
        let e = rig.stage_fails(&v, filesystem(None)).await;
        assert!(
            matches!(&e, NodeError::Fs(fs) if matches!(**fs, node_fs::FsError::Probe { .. })),
            "{e:?}"
        );
        assert!(rig.world.formatted().is_empty(), "formatted on doubt");
        assert!(rig.world.mounts_at(&v.staging).is_empty());
        assert!(rig.world.saved_records().is_empty());
    }
    // Once the probe answers, the stage completes, formatting once.
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    assert_eq!(rig.world.formatted().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_existing_filesystem_is_kept_whatever_was_asked() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.world
        .set_contents(&v.nqn, Contents::Filesystem(FsType::Xfs.into(), GIB));
    rig.node
        .stage(stage(&v, filesystem(Some(FsType::Ext4))))
        .await
        .unwrap();
    assert!(rig.world.formatted().is_empty());
    let r = &rig.world.saved_records()[0];
    assert_eq!(r.fs_type.as_deref(), Some("xfs"));
}

#[tokio::test(start_paused = true)]
async fn what_is_not_a_filesystem_of_ours_is_never_formatted_over() {
    for (contents, says) in [
        (
            Contents::Other("PTTYPE=gpt".into()),
            "something other than a filesystem (PTTYPE=gpt)",
        ),
        (
            Contents::ForeignFilesystem("btrfs".into()),
            "a btrfs filesystem, which this driver does not mount",
        ),
    ] {
        let rig = Rig::new();
        let v = rig.volume("pvc-1");
        rig.world.set_contents(&v.nqn, contents.clone());
        let e = rig.stage_fails(&v, filesystem(None)).await;
        assert!(
            matches!(&e, NodeError::RefusedToFormat { found, .. } if *found != Probe::Empty),
            "{e:?}"
        );
        assert!(e.to_string().contains(says), "{e}");
        assert!(e.to_string().contains("refusing to format over it"), "{e}");
        assert_eq!(rig.world.contents(&v.nqn), Some(contents));
        assert!(rig.world.mounts_at(&v.staging).is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn a_block_volume_is_connected_and_recorded_without_a_filesystem() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(stage(&v, block())).await.unwrap();
    assert!(rig.world.formatted().is_empty());
    assert!(rig.world.mount_points().is_empty());
    assert_eq!(rig.world.contents(&v.nqn), Some(Contents::Empty));
    let r = &rig.world.saved_records()[0];
    assert_eq!(
        (r.fs_type.as_deref(), r.device.to_str()),
        (None, Some("/dev/nvme0n1"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_late_device_is_waited_for_and_a_missing_one_fails_at_the_deadline() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.world
        .set_device_appears(DeviceAppears::After(Duration::from_secs(5)));
    rig.node.stage(stage(&v, block())).await.unwrap();

    let w = rig.volume("pvc-2");
    rig.world.set_device_appears(DeviceAppears::Never);
    let started = tokio::time::Instant::now();
    let e = rig.stage_fails(&w, block()).await;
    assert!(
        matches!(&e, NodeError::Nvme(n) if matches!(**n, NvmeError::NoBlockDevice { .. })),
        "{e:?}"
    );
    assert!(started.elapsed() >= rig.node.config().timeouts.device);
    assert!(
        rig.world
            .saved_records()
            .iter()
            .all(|r| r.volume_id != w.id)
    );
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_target_fails_at_the_connect_deadline() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.world.set_reachable(&v.nqn, false);
    let e = rig.stage_fails(&v, filesystem(None)).await;
    assert!(
        matches!(&e, NodeError::Nvme(n) if n.is_transient()),
        "{e:?}"
    );
    assert_eq!(rig.connects("failed"), 1);
    assert_eq!(rig.world.controllers(&v.nqn), 0);
}

#[tokio::test(start_paused = true)]
async fn a_staging_path_holding_another_mount_is_refused() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    // Not a device of ours, nor a disk that is gone: someone else's.
    rig.world.mount_foreign("tmpfs", &v.staging);
    let e = rig.stage_fails(&v, filesystem(None)).await;
    assert!(
        matches!(e, NodeError::StagingOccupied { .. }),
        "{}",
        kind(&e)
    );
    assert_eq!(rig.world.mounts_at(&v.staging), ["tmpfs"]);
}

#[tokio::test(start_paused = true)]
async fn a_dead_staging_mount_is_replaced_by_the_volume_s_current_disk() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    let before = rig.world.saved_records()[0].diskseq;
    // The kernel gave up on the controller (ctrl_loss_tmo); its mount stays.
    rig.world.lose_connection(&v.nqn);
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    // The dead filesystem kept the old disk's name: the new one has another.
    assert_eq!(rig.world.mounts_at(&v.staging), [rig.device(&v)]);
    let after = rig.world.saved_records()[0].diskseq;
    assert_ne!(before, after);
    assert_eq!(rig.world.formatted().len(), 1, "the data was kept");
}

#[tokio::test(start_paused = true)]
async fn a_record_that_cannot_be_written_fails_the_stage() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.world.fail("record", 1);
    let e = rig.stage_fails(&v, block()).await;
    assert!(matches!(e, NodeError::Record(_)), "{}", kind(&e));
    // Repeated, it completes.
    rig.node.stage(stage(&v, block())).await.unwrap();
    assert_eq!(rig.world.saved_records().len(), 2);
}

/// A volume restored (or cloned) into a larger size: its source's ext4 of
/// 1 GiB on a device of 2 GiB.
fn restored_larger(rig: &Rig) -> crate::Volume {
    let v = rig.volume("pvc-1");
    rig.world
        .set_contents(&v.nqn, Contents::Filesystem(FsType::Ext4.into(), GIB));
    rig.world.grow_image(&v.nqn, 2 * GIB);
    v
}

#[tokio::test(start_paused = true)]
async fn a_filesystem_smaller_than_its_device_is_grown_once_mounted() {
    let rig = Rig::new();
    let v = restored_larger(&rig);
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    assert!(rig.world.formatted().is_empty(), "the data is kept");
    assert_eq!(rig.world.grown(), 1);
    assert_eq!(
        rig.world.contents(&v.nqn),
        Some(Contents::Filesystem(FsType::Ext4.into(), 2 * GIB))
    );
    let trace = rig.world.trace();
    let at = |step| trace.iter().position(|s| *s == step).unwrap();
    assert!(at("mount") < at("grow"), "grown while mounted: {trace:?}");
    // Staged again: it fills its device now.
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    assert_eq!(rig.world.grown(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_filesystem_that_fills_its_device_is_not_grown() {
    let rig = Rig::new();
    // Formatted by this stage, and one of a restore of the same size.
    let fresh = rig.volume("pvc-1");
    rig.node
        .stage(stage(&fresh, filesystem(None)))
        .await
        .unwrap();
    let same = rig.volume("pvc-2");
    rig.world
        .set_contents(&same.nqn, Contents::Filesystem(FsType::Ext4.into(), GIB));
    rig.node
        .stage(stage(&same, filesystem(None)))
        .await
        .unwrap();
    assert_eq!(rig.world.grown(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_read_only_stage_leaves_the_filesystem_small() {
    let rig = Rig::new();
    let v = restored_larger(&rig);
    let mut capability = filesystem(None);
    capability.read_only = true;
    rig.node.stage(stage(&v, capability)).await.unwrap();
    assert_eq!(rig.world.grown(), 0);
    assert_eq!(
        rig.world.contents(&v.nqn),
        Some(Contents::Filesystem(FsType::Ext4.into(), GIB))
    );
}

#[tokio::test(start_paused = true)]
async fn a_growth_that_fails_fails_the_stage_and_the_retry_grows() {
    let rig = Rig::new();
    let v = restored_larger(&rig);
    rig.world.fail("grow", 1);
    let e = rig.stage_fails(&v, filesystem(None)).await;
    assert!(matches!(e, NodeError::Fs(_)), "{}", kind(&e));
    assert!(
        rig.world.saved_records().is_empty(),
        "not recorded as staged"
    );
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    assert_eq!(rig.world.grown(), 1);
    // A superblock that cannot be read stops the stage too, before any
    // growth.
    let w = rig.volume("pvc-2");
    rig.world
        .set_contents(&w.nqn, Contents::Filesystem(FsType::Ext4.into(), GIB));
    rig.world.fail("fs-size", 1);
    let e = rig.stage_fails(&w, filesystem(None)).await;
    assert!(matches!(e, NodeError::Fs(_)), "{}", kind(&e));
    assert_eq!(rig.world.grown(), 1);
}

#[tokio::test(start_paused = true)]
async fn xfs_is_mounted_without_its_duplicate_uuid_check() {
    let rig = Rig::new();
    // A clone or restore holds its source's filesystem, UUID and all: XFS
    // would refuse to mount it beside its source without `nouuid`.
    let xfs = rig.volume("pvc-1");
    rig.world
        .set_contents(&xfs.nqn, Contents::Filesystem(FsType::Xfs.into(), GIB));
    rig.node
        .stage(stage(&xfs, filesystem(Some(FsType::Xfs))))
        .await
        .unwrap();
    assert_eq!(
        rig.world.mount_options_at(&xfs.staging),
        [["noatime", "nouuid"]]
    );
    // ext4 has no such check, and gets only what was asked.
    let ext4 = rig.volume("pvc-2");
    rig.node
        .stage(stage(&ext4, filesystem(None)))
        .await
        .unwrap();
    assert_eq!(rig.world.mount_options_at(&ext4.staging), [["noatime"]]);
}
