//! NodeUnstageVolume's rule: success only once the kernel holds nothing of
//! the volume; until then the record stays, so a retry finishes the job.

use node::NodeError;
use node::testing::{DeviceAppears, Disconnect};
use nvme_host::NvmeError;

use crate::{Rig, block, filesystem, kind, stage};

#[tokio::test(start_paused = true)]
async fn unstage_unmounts_disconnects_and_forgets_and_can_be_repeated() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    for _ in 0..2 {
        rig.node.unstage(&v.id, &v.staging).await.unwrap();
        rig.assert_nothing_held();
    }
}

#[tokio::test(start_paused = true)]
async fn unstage_reports_success_only_when_the_kernel_holds_nothing() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    // I/O queued to a dead target: the controller never goes.
    rig.world.set_disconnect(Disconnect::Stuck);
    let e = rig.node.unstage(&v.id, &v.staging).await.unwrap_err();
    assert!(
        matches!(&e, NodeError::Nvme(n) if matches!(**n, NvmeError::DisconnectTimedOut { .. })),
        "{e:?}"
    );
    assert_eq!(rig.world.controllers(&v.nqn), 1);
    assert_eq!(rig.world.saved_records().len(), 2, "the record stays");
    assert!(rig.world.mount_points().is_empty(), "the unmount is done");

    // Once the kernel lets go, the retry completes.
    rig.world.set_disconnect(Disconnect::Prompt);
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    rig.assert_nothing_held();
}

#[tokio::test(start_paused = true)]
async fn a_disconnect_that_claims_success_is_checked() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(stage(&v, block())).await.unwrap();
    rig.world.set_disconnect(Disconnect::Lies);
    let e = rig.node.unstage(&v.id, &v.staging).await.unwrap_err();
    assert!(
        matches!(e, NodeError::StillConnected { .. }),
        "{}",
        kind(&e)
    );
    assert_eq!(rig.world.saved_records().len(), 2, "the record stays");
    rig.world.set_disconnect(Disconnect::Prompt);
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    rig.assert_nothing_held();
}

#[tokio::test(start_paused = true)]
async fn a_busy_staging_mount_keeps_the_volume_connected() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    rig.world.set_busy(&v.staging, true);
    let e = rig.node.unstage(&v.id, &v.staging).await.unwrap_err();
    assert!(matches!(e, NodeError::Fs(_)), "{}", kind(&e));
    assert_eq!(rig.world.controllers(&v.nqn), 1, "never cut under a mount");
    assert_eq!(rig.world.mounts_at(&v.staging).len(), 1);
    rig.world.set_busy(&v.staging, false);
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    rig.assert_nothing_held();
}

#[tokio::test(start_paused = true)]
async fn a_stage_that_failed_after_connecting_leaves_no_connection_once_unstaged() {
    // Each way a stage can fail after its connect, before its record.
    for fail in ["never appears", "probe", "mkfs", "mount", "record"] {
        let rig = Rig::new();
        let v = rig.volume("pvc-1");
        match fail {
            "never appears" => rig.world.set_device_appears(DeviceAppears::Never),
            step => rig.world.fail(step, 1),
        }
        rig.node
            .stage(stage(&v, filesystem(None)))
            .await
            .unwrap_err();
        assert_eq!(rig.world.controllers(&v.nqn), 1, "{fail}: connected");
        rig.node.unstage(&v.id, &v.staging).await.unwrap();
        assert!(rig.world.connected().is_empty(), "{fail}: still connected");
        assert!(rig.world.mount_points().is_empty(), "{fail}: still mounted");
    }
}

#[tokio::test(start_paused = true)]
async fn an_unstage_at_another_path_keeps_the_connection_of_a_volume_staged_elsewhere() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    let elsewhere = v.staging.with_file_name("elsewhere");
    rig.node.unstage(&v.id, &elsewhere).await.unwrap();
    assert_eq!(rig.world.controllers(&v.nqn), 1);
    assert_eq!(rig.world.mounts_at(&v.staging).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unrecorded_connection_that_will_not_go_fails_the_unstage() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.world.fail("wait-device", 1);
    rig.node.stage(stage(&v, block())).await.unwrap_err();
    rig.world.set_disconnect(Disconnect::Stuck);
    let e = rig.node.unstage(&v.id, &v.staging).await.unwrap_err();
    assert!(matches!(e, NodeError::Nvme(_)), "{}", kind(&e));
    rig.world.set_disconnect(Disconnect::Prompt);
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    assert!(rig.world.connected().is_empty());
}
