//! NodeExpandVolume: rescan, wait for the size, grow the filesystem.

use node::{ExpandRequest, NodeError};

use crate::{GIB, Rig, Volume, block, filesystem, kind, stage};

fn expand(v: &Volume, bytes: u64) -> ExpandRequest {
    ExpandRequest {
        volume_id: v.id.clone(),
        volume_path: v.staging.clone(),
        staging_path: Some(v.staging.clone()),
        required_bytes: bytes,
        keys: node::VolumeKeys::default(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_filesystem_volume_grows_after_a_rescan() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    rig.world.grow_image(&v.nqn, 2 * GIB);
    assert_eq!(rig.node.expand(expand(&v, 2 * GIB)).await.unwrap(), 2 * GIB);
    assert_eq!(rig.world.grown(), 1);
    // Without the staging path, the index finds the volume.
    let again = ExpandRequest {
        staging_path: None,
        ..expand(&v, 2 * GIB)
    };
    assert_eq!(rig.node.expand(again).await.unwrap(), 2 * GIB);
}

#[tokio::test(start_paused = true)]
async fn a_block_volume_needs_only_the_rescan() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    // kubelet makes a block volume's staging directory itself.
    rig.world.make_dir(&v.staging);
    rig.node.stage(stage(&v, block())).await.unwrap();
    rig.world.grow_image(&v.nqn, 3 * GIB);
    assert_eq!(rig.node.expand(expand(&v, 3 * GIB)).await.unwrap(), 3 * GIB);
    assert_eq!(rig.world.grown(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_device_that_does_not_grow_fails_at_the_deadline() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    let e = rig.node.expand(expand(&v, 2 * GIB)).await.unwrap_err();
    assert!(
        matches!(e, NodeError::NotGrown { size, wanted, .. } if size == GIB && wanted == 2 * GIB),
        "{e:?}"
    );
    assert_eq!(
        rig.world.grown(),
        0,
        "the filesystem is not grown past its disk"
    );
}

#[tokio::test(start_paused = true)]
async fn a_volume_not_staged_here_is_not_found() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    let e = rig.node.expand(expand(&v, 2 * GIB)).await.unwrap_err();
    assert!(matches!(e, NodeError::NotStaged { .. }), "{}", kind(&e));
}

#[tokio::test(start_paused = true)]
async fn a_path_where_the_volume_is_not_is_not_found() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    rig.world.grow_image(&v.nqn, 2 * GIB);
    for path in ["some/path", "/var/lib/kubelet/pods/nowhere"] {
        let e = rig
            .node
            .expand(ExpandRequest {
                volume_path: path.into(),
                ..expand(&v, 2 * GIB)
            })
            .await
            .unwrap_err();
        assert!(matches!(e, NodeError::NotAtPath { .. }), "{}", kind(&e));
    }
    assert_eq!(rig.world.grown(), 0);
}
