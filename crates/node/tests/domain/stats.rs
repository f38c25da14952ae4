//! NodeGetVolumeStats: usage, and a condition made of typed problems.

use std::time::Duration;

use node::health::Problem;
use node::{NodeError, Usage};
use nvme_host::CtrlState;

use crate::{GIB, Rig, block, filesystem, kind, publish, stage};

#[tokio::test(start_paused = true)]
async fn a_healthy_filesystem_volume_reports_its_usage() {
    let rig = Rig::new();
    let v = rig.in_use("pvc-1", filesystem(None)).await;
    let stats = rig.node.stats(&v.id, &v.target).unwrap();
    assert!(!stats.abnormal(), "{stats:?}");
    assert_eq!(stats.message(&v.id), "healthy");
    assert!(matches!(stats.usage, Usage::Filesystem(s) if s.total_bytes == GIB));
}

#[tokio::test(start_paused = true)]
async fn a_block_volume_reports_its_size() {
    let rig = Rig::new();
    let v = rig.in_use("pvc-1", block()).await;
    let stats = rig.node.stats(&v.id, &v.target).unwrap();
    assert_eq!(stats.usage, Usage::Block { total_bytes: GIB });
    assert!(!stats.abnormal(), "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn problems_are_typed_and_say_since_when() {
    let rig = Rig::new();
    let v = rig.in_use("pvc-1", filesystem(None)).await;

    // The filesystem went read-only: reported once, though both the staging
    // mount and the publication show it.
    rig.world.set_mount_read_only(&v.staging, true);
    rig.world.set_mount_read_only(&v.target, true);
    let stats = rig.node.stats(&v.id, &v.target).unwrap();
    assert_eq!(stats.problems, [Problem::ReadOnly]);
    rig.world.set_mount_read_only(&v.staging, false);
    rig.world.set_mount_read_only(&v.target, false);

    // The target is away: the controller reconnects.
    rig.world.set_state(&v.nqn, CtrlState::Connecting);
    let first = rig.node.stats(&v.id, &v.target).unwrap();
    assert!(
        matches!(
            &first.problems[..],
            [Problem::NotLive {
                state: CtrlState::Connecting,
                ..
            }]
        ),
        "{first:?}"
    );
    tokio::time::sleep(Duration::from_secs(42)).await;
    let later = rig.node.stats(&v.id, &v.target).unwrap();
    assert_eq!(later.for_how_long, Duration::from_secs(42));
    assert!(
        later.message(&v.id).ends_with("(for 42 s)"),
        "{}",
        later.message(&v.id)
    );

    // The publication's mount is gone from under the pod.
    rig.world.set_state(&v.nqn, CtrlState::Live);
    rig.world.unmount_directly(&v.target);
    let stats = rig.node.stats(&v.id, &v.target).unwrap();
    assert_eq!(
        stats.problems,
        [Problem::NothingMountedAt {
            path: v.target.clone()
        }]
    );
    assert_eq!(stats.usage, Usage::Unknown);
}

#[tokio::test(start_paused = true)]
async fn a_path_that_does_not_exist_is_not_found() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    let e = rig.node.stats(&v.id, &v.target).unwrap_err();
    assert!(matches!(e, NodeError::NotAtPath { .. }), "{}", kind(&e));
}

#[tokio::test(start_paused = true)]
async fn a_volume_not_staged_here_is_not_found_even_at_an_existing_path() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    let w = rig.volume("pvc-2");
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    rig.node
        .publish(publish(&v, &v.target, filesystem(None)))
        .await
        .unwrap();
    // pvc-2 was never staged: asked at pvc-1's path, it is still not found.
    let e = rig.node.stats(&w.id, &v.target).unwrap_err();
    assert!(matches!(e, NodeError::NotStaged { .. }), "{}", kind(&e));
    // A relative path is nowhere the volume is.
    let e = rig
        .node
        .stats(&v.id, std::path::Path::new("some/path"))
        .unwrap_err();
    assert!(matches!(e, NodeError::NotAtPath { .. }), "{}", kind(&e));
}
