//! Repeated and concurrent calls converge: one operation per volume at a
//! time (a second is refused as busy and retried, as the sidecars do), other
//! volumes in parallel, and every operation idempotent.

use std::time::Duration;

use node::NodeError;

use crate::{Rig, filesystem, kind, publish, stage};

#[tokio::test(start_paused = true)]
async fn a_second_call_on_a_volume_in_flight_is_refused_and_its_retry_converges() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.world.delay("connect", Duration::from_secs(5));
    let (first, second) = tokio::join!(rig.node.stage(stage(&v, filesystem(None))), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rig.node.stage(stage(&v, filesystem(None))).await
    });
    first.unwrap();
    let e = second.unwrap_err();
    assert!(matches!(e, NodeError::Busy(_)), "{}", kind(&e));
    // The sidecar retries once the first is done.
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    assert_eq!(rig.world.controllers(&v.nqn), 1);
    assert_eq!(rig.world.formatted().len(), 1);
    assert_eq!(rig.world.mounts_at(&v.staging).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn different_volumes_are_staged_in_parallel() {
    let rig = Rig::new();
    let (a, b, c) = (
        rig.volume("pvc-1"),
        rig.volume("pvc-2"),
        rig.volume("pvc-3"),
    );
    rig.world.delay("connect", Duration::from_secs(5));
    let started = tokio::time::Instant::now();
    let results = tokio::join!(
        rig.node.stage(stage(&a, filesystem(None))),
        rig.node.stage(stage(&b, filesystem(None))),
        rig.node.stage(stage(&c, filesystem(None))),
    );
    results.0.unwrap();
    results.1.unwrap();
    results.2.unwrap();
    // Three connects of 5 s each, side by side (on the paused clock): no
    // global lock.
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(rig.world.connected().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn repeated_calls_converge() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    for _ in 0..3 {
        rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    }
    for _ in 0..3 {
        rig.node
            .publish(publish(&v, &v.target, filesystem(None)))
            .await
            .unwrap();
    }
    assert_eq!(rig.world.formatted().len(), 1);
    assert_eq!(rig.world.mounts_at(&v.staging).len(), 1);
    assert_eq!(rig.world.mounts_at(&v.target).len(), 1);
    for _ in 0..3 {
        rig.node.unpublish(&v.id, &v.target).await.unwrap();
    }
    for _ in 0..3 {
        rig.node.unstage(&v.id, &v.staging).await.unwrap();
    }
    rig.assert_nothing_held();
}
