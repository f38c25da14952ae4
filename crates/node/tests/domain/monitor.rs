//! The health monitor looks at every staged volume once per interval, on
//! tokio's clock, and stops when told.

use std::time::Duration;

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
