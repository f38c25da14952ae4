//! The health monitor looks at every staged volume once per interval, on
//! tokio's clock, and stops when told.

use std::time::Duration;

use nvme_host::CtrlState;

use crate::{Rig, block, stage};

#[tokio::test(start_paused = true)]
async fn the_monitor_sweeps_once_per_interval_and_stops_when_told() {
    let rig = Rig::new();
    let interval = rig.node.config().health_interval;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let monitor = rig.node.spawn_health_monitor(stopped);
    // The first look is at once: nothing is staged yet.
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(rig.metrics.staged_volumes.get(), 0);

    let v = rig.volume("pvc-1");
    rig.node.stage(stage(&v, block())).await.unwrap();
    // Not seen before the next interval...
    tokio::time::sleep(interval - Duration::from_secs(1)).await;
    assert_eq!(rig.metrics.staged_volumes.get(), 0);
    // ...and seen at it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rig.metrics.staged_volumes.get(), 1);
    assert_eq!(rig.metrics.abnormal_volumes.get(), 0);

    stop.send(true).unwrap();
    monitor.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_monitor_cuts_off_a_volume_the_rds_refuses_at_two_looks_in_a_row() {
    let rig = Rig::new();
    let interval = rig.node.config().health_interval;
    let fenced = rig.volume("pvc-1");
    let away = rig.volume("pvc-2");
    rig.node.stage(stage(&fenced, block())).await.unwrap();
    rig.node.stage(stage(&away, block())).await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let monitor = rig.node.spawn_health_monitor(stopped);
    tokio::time::sleep(Duration::from_millis(1)).await;

    // pvc-1 is unpublished from this node and published to another: the
    // export is bounced and this node refused at every reconnect. pvc-2's
    // target is only away.
    let other = nvme_host::fence::node_host_nqn(node::testing::PREFIX, "node-2").unwrap();
    rig.world.set_allowed(&fenced.nqn, Some(&[other.as_str()]));
    rig.world.bounce(&fenced.nqn);
    rig.world.set_state(&away.nqn, CtrlState::Connecting);

    // The first look sees the refusal and waits for a second one.
    tokio::time::sleep(interval + Duration::from_secs(1)).await;
    assert_eq!(rig.world.controllers(&fenced.nqn), 1);
    assert_eq!(rig.metrics.abnormal_volumes.get(), 2);
    // The second cuts it off: its I/O fails now, not at ctrlLossTmo.
    tokio::time::sleep(interval).await;
    assert_eq!(rig.world.controllers(&fenced.nqn), 0);
    // An outage is waited out, however long.
    tokio::time::sleep(interval * 10).await;
    assert_eq!(rig.world.controllers(&away.nqn), 1);

    stop.send(true).unwrap();
    monitor.await.unwrap();
}
