//! A crash between any two steps converges on retry.
//!
//! The fakes count every change they make; [`FakeWorld::crash_after`] lets
//! the `k`-th one complete and then hangs the operation, which the test
//! drops there, as if the plugin died between step `k` and step `k + 1`.
//! Then the call is repeated, either by the same process (the RPC was cut)
//! or by a restarted one (after its start-up cleanup), and must converge:
//! one connection, one filesystem, one mount, one record; and unstaging
//! afterwards leaves nothing held. Every `k` is tried, until the operation
//! finishes without reaching the crash point.

use std::future::Future;

use node::testing::FakeWorld;
use node::{ExpandRequest, StageRequest, VolumeKeys};

use crate::{GIB, KEY, Rig, Volume, block, encrypted, filesystem, publish, stage};

/// Runs `op`, crashing after change `k`: `Some` if it finished first.
async fn until_crash<T>(world: &FakeWorld, k: usize, op: impl Future<Output = T>) -> Option<T> {
    world.crash_after(k);
    let crashed = world.crashed();
    let finished = tokio::select! {
        biased;
        result = op => Some(result),
        () = crashed => None,
    };
    world.no_crash();
    finished
}

/// How a call is repeated after the crash.
#[derive(Debug, Clone, Copy)]
enum Retry {
    /// By the same process: the RPC was cancelled.
    SameProcess,
    /// By a restarted plugin, after its start-up cleanup.
    Restarted,
}

const RETRIES: [Retry; 2] = [Retry::SameProcess, Retry::Restarted];

async fn retry_after(rig: &mut Rig, retry: Retry) {
    if let Retry::Restarted = retry {
        rig.restart().await;
    }
}

/// Asserts that `v` is staged once, and nothing else is held.
fn assert_staged_once(rig: &Rig, v: &Volume, filesystem: bool, when: &str) {
    assert_eq!(
        rig.world.connected(),
        std::slice::from_ref(&v.nqn),
        "{when}"
    );
    assert_eq!(rig.world.saved_records().len(), 2, "{when}");
    if filesystem {
        assert_eq!(rig.world.formatted().len(), 1, "{when}");
        assert_eq!(
            rig.world.mount_points(),
            std::slice::from_ref(&v.staging),
            "{when}"
        );
    } else {
        assert!(rig.world.mount_points().is_empty(), "{when}");
    }
}

async fn stage_converges(request: fn(&Volume) -> StageRequest, filesystem: bool, steps: usize) {
    for retry in RETRIES {
        let mut crashes = 0;
        for k in 1.. {
            let mut rig = Rig::new();
            let v = rig.volume("pvc-1");
            if let Some(result) = until_crash(&rig.world, k, rig.node.stage(request(&v))).await {
                result.unwrap();
                break;
            }
            crashes += 1;
            let when = format!("{retry:?} after a crash after {:?}", rig.world.trace());
            retry_after(&mut rig, retry).await;
            rig.node
                .stage(request(&v))
                .await
                .unwrap_or_else(|e| panic!("{when}: {e}"));
            assert_staged_once(&rig, &v, filesystem, &when);
            rig.node.unstage(&v.id, &v.staging).await.unwrap();
            rig.assert_nothing_held();
        }
        assert_eq!(crashes, steps, "every step of the stage was crashed after");
    }
}

#[tokio::test(start_paused = true)]
async fn a_filesystem_stage_crashed_after_any_step_converges() {
    // connect, mkfs, mkdir, mount, and the record's two files.
    stage_converges(|v| stage(v, filesystem(None)), true, 6).await;
}

#[tokio::test(start_paused = true)]
async fn a_block_stage_crashed_after_any_step_converges() {
    stage_converges(|v| stage(v, block()), false, 3).await;
}

#[tokio::test(start_paused = true)]
async fn an_encrypted_filesystem_stage_crashed_after_any_step_converges() {
    // connect, luks-format, luks-open, mkfs, luks-label, mkdir, mount, and
    // the record's two files.
    stage_converges(|v| encrypted(v, filesystem(None), KEY), true, 9).await;
}

#[tokio::test(start_paused = true)]
async fn an_encrypted_block_stage_crashed_after_any_step_converges() {
    // connect, luks-format, luks-open, luks-label, and the record's files.
    stage_converges(|v| encrypted(v, block(), KEY), false, 6).await;
}

async fn unstage_converges(request: fn(&Volume) -> StageRequest, steps: usize) {
    for retry in RETRIES {
        let mut crashes = 0;
        for k in 1.. {
            let mut rig = Rig::new();
            let v = rig.volume("pvc-1");
            rig.node.stage(request(&v)).await.unwrap();
            let unstage = rig.node.unstage(&v.id, &v.staging);
            if let Some(result) = until_crash(&rig.world, k, unstage).await {
                result.unwrap();
                rig.assert_nothing_held();
                break;
            }
            crashes += 1;
            let when = format!("{retry:?} after a crash after {:?}", rig.world.trace());
            retry_after(&mut rig, retry).await;
            rig.node
                .unstage(&v.id, &v.staging)
                .await
                .unwrap_or_else(|e| panic!("{when}: {e}"));
            assert!(
                rig.held() == (vec![], vec![], 0) && rig.world.mappings().is_empty(),
                "{when}: {:?} {:?}",
                rig.held(),
                rig.world.mappings()
            );
        }
        assert_eq!(crashes, steps);
    }
}

#[tokio::test(start_paused = true)]
async fn an_unstage_crashed_after_any_step_converges() {
    // unmount, disconnect, and the record's two files.
    unstage_converges(|v| stage(v, filesystem(None)), 4).await;
}

#[tokio::test(start_paused = true)]
async fn an_encrypted_unstage_crashed_after_any_step_converges() {
    // unmount, luks-close, disconnect, and the record's two files.
    unstage_converges(|v| encrypted(v, filesystem(None), KEY), 5).await;
    // luks-close, disconnect, and the record's two files.
    unstage_converges(|v| encrypted(v, block(), KEY), 4).await;
}

#[tokio::test(start_paused = true)]
async fn an_encrypted_expansion_crashed_after_any_step_converges() {
    let expand = |v: &Volume| ExpandRequest {
        volume_id: v.id.clone(),
        volume_path: v.staging.clone(),
        staging_path: Some(v.staging.clone()),
        required_bytes: 2 * GIB,
        keys: VolumeKeys::of(KEY),
    };
    for retry in RETRIES {
        let mut crashes = 0;
        for k in 1.. {
            let mut rig = Rig::new();
            let v = rig.volume("pvc-1");
            rig.node
                .stage(encrypted(&v, filesystem(None), KEY))
                .await
                .unwrap();
            rig.world.grow_image(&v.nqn, 2 * GIB);
            if let Some(result) = until_crash(&rig.world, k, rig.node.expand(expand(&v))).await {
                result.unwrap();
                break;
            }
            crashes += 1;
            let when = format!("{retry:?} after a crash after {:?}", rig.world.trace());
            retry_after(&mut rig, retry).await;
            let size = rig
                .node
                .expand(expand(&v))
                .await
                .unwrap_or_else(|e| panic!("{when}: {e}"));
            assert_eq!(size, 2 * GIB, "{when}");
            assert_eq!(
                rig.world.plaintext(&v.nqn),
                Some(node::testing::Contents::Filesystem(
                    node_fs::FsType::Ext4,
                    2 * GIB - node::testing::LUKS_HEADER
                )),
                "{when}"
            );
        }
        // rescan, luks-resize, grow.
        assert_eq!(crashes, 3);
    }
}

#[tokio::test(start_paused = true)]
async fn a_publish_and_an_unpublish_crashed_after_any_step_converge() {
    for retry in RETRIES {
        for k in 1.. {
            let mut rig = Rig::new();
            let v = rig.volume("pvc-1");
            rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
            let op = rig.node.publish(publish(&v, &v.target, filesystem(None)));
            if let Some(result) = until_crash(&rig.world, k, op).await {
                result.unwrap();
                break;
            }
            let when = format!("{retry:?} after a crash after {:?}", rig.world.trace());
            retry_after(&mut rig, retry).await;
            rig.node
                .publish(publish(&v, &v.target, filesystem(None)))
                .await
                .unwrap_or_else(|e| panic!("{when}: {e}"));
            assert_eq!(rig.world.mounts_at(&v.target).len(), 1, "{when}");
        }
        for k in 1.. {
            let mut rig = Rig::new();
            let v = rig.volume("pvc-1");
            rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
            rig.node
                .publish(publish(&v, &v.target, filesystem(None)))
                .await
                .unwrap();
            if let Some(result) =
                until_crash(&rig.world, k, rig.node.unpublish(&v.id, &v.target)).await
            {
                result.unwrap();
                break;
            }
            let when = format!("{retry:?} after a crash after {:?}", rig.world.trace());
            retry_after(&mut rig, retry).await;
            rig.node
                .unpublish(&v.id, &v.target)
                .await
                .unwrap_or_else(|e| panic!("{when}: {e}"));
            assert!(rig.world.mounts_at(&v.target).is_empty(), "{when}");
            assert!(!rig.world.path_exists(&v.target), "{when}");
            rig.node.unstage(&v.id, &v.staging).await.unwrap();
            rig.assert_nothing_held();
        }
    }
}

/// A plugin killed after the mount of a stage and before its record: the
/// restarted plugin's start-up keeps the connection, whose device is
/// mounted, and the repeated stage finds it all in place.
#[tokio::test(start_paused = true)]
async fn start_up_keeps_the_connection_of_a_stage_killed_before_its_record() {
    let mut rig = Rig::new();
    let v = rig.volume("pvc-1");
    let mounted = ["connect", "mkfs", "mkdir", "mount"].len();
    assert!(
        until_crash(
            &rig.world,
            mounted,
            rig.node.stage(stage(&v, filesystem(None)))
        )
        .await
        .is_none()
    );
    assert_eq!(rig.world.trace().last(), Some(&"mount"));
    let report = rig.restart().await;
    assert!(report.cleaned.is_empty(), "{report:?}");
    assert_eq!(rig.world.controllers(&v.nqn), 1);
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    assert_eq!(rig.connects("already"), 1, "the same connection");
    assert_eq!(rig.world.mounts_at(&v.staging), [rig.device(&v)]);
    assert_staged_once(&rig, &v, true, "after the restart");
}

/// A stage stopped after its mount, before its record, whose connection the
/// kernel then gave up on (ctrl_loss_tmo): the repeated stage connects again
/// and mounts the new disk in place of the dead one, with no record to say
/// what the dead mount was.
#[tokio::test(start_paused = true)]
async fn a_dead_mount_left_by_a_stage_stopped_before_its_record_is_replaced() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    let mounted = ["connect", "mkfs", "mkdir", "mount"].len();
    let op = rig.node.stage(stage(&v, filesystem(None)));
    assert!(until_crash(&rig.world, mounted, op).await.is_none());
    let dead = rig.world.mounts_at(&v.staging);
    rig.world.lose_connection(&v.nqn);
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    assert_ne!(rig.world.mounts_at(&v.staging), dead);
    assert_eq!(rig.world.mounts_at(&v.staging), [rig.device(&v)]);
    assert_eq!(rig.world.formatted().len(), 1, "the data was kept");
}

/// The same, but the staging path holds a mount of a device that exists and
/// is not the volume's: refused, never unmounted.
#[tokio::test(start_paused = true)]
async fn a_live_foreign_mount_at_the_staging_path_is_never_replaced() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    let other = rig.volume("pvc-2");
    rig.node.stage(stage(&other, block())).await.unwrap();
    let foreign = rig.device(&other);
    rig.world.mount_foreign(&foreign, &v.staging);
    let e = rig.stage_fails(&v, filesystem(None)).await;
    assert!(
        matches!(e, node::NodeError::StagingOccupied { .. }),
        "{e:?}"
    );
    assert_eq!(rig.world.mounts_at(&v.staging), [foreign]);
}
