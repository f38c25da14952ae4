//! One operation at a time per volume; different volumes in parallel.

use std::time::Duration;

use csi_proto::v1::DeleteVolumeRequest;
use tonic::Code;

use crate::harness::{GIB, Plugin};
use crate::requests::{create, pv_name};

#[tokio::test]
async fn a_second_operation_on_a_busy_volume_is_aborted() {
    let plugin = Plugin::start().await;
    let c = plugin.controller().await;
    // Slow the RDS so the first create is still in flight.
    plugin
        .sim
        .engine
        .faults()
        .set_latency(Duration::from_millis(1500));
    let name = pv_name(1);
    let first = {
        let mut c = c.clone();
        let name = name.clone();
        tokio::spawn(async move { c.create_volume(create(&name, GIB)).await })
    };
    let other = {
        let mut c = c.clone();
        tokio::spawn(async move { c.create_volume(create(&pv_name(2), GIB)).await })
    };
    // Give the first call time to claim its volume; then repeat it, and try to
    // delete the volume while it is being made.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = c
        .clone()
        .create_volume(create(&name, GIB))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    let slot = "pvc-000000013c434c2f9d2e53f0d3b1";
    let status = c
        .clone()
        .delete_volume(DeleteVolumeRequest {
            volume_id: slot.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted, "{status:?}");

    // The first call and the other volume were not held up by the refusals.
    let made = first.await.unwrap().unwrap().into_inner().volume.unwrap();
    assert_eq!(made.volume_id, slot);
    other.await.unwrap().unwrap();
    plugin.sim.engine.faults().set_latency(Duration::ZERO);
    // Once the first is done, the retry succeeds with the same volume.
    let again = c
        .clone()
        .create_volume(create(&name, GIB))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.volume.unwrap(), made);
}

#[tokio::test]
async fn different_volumes_proceed_in_parallel() {
    let plugin = Plugin::start().await;
    let c = plugin.controller().await;
    plugin
        .sim
        .engine
        .faults()
        .set_latency(Duration::from_millis(300));
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let mut c = c.clone();
            tokio::spawn(async move { c.create_volume(create(&pv_name(100 + n), GIB)).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(plugin.sim.engine.disks().len(), 20);
    // The RDS saw the commands overlap: no lock serialised them, in the
    // controller or in the SSH client (which allows 16 at once).
    let overlap = plugin.sim.engine.max_execs_in_flight();
    assert!(
        overlap >= 8,
        "at most {overlap} commands were in flight at once"
    );
}

#[tokio::test]
async fn stopping_lets_calls_in_flight_finish() {
    let mut plugin = Plugin::start().await;
    let c = plugin.controller().await;
    plugin
        .sim
        .engine
        .faults()
        .set_latency(Duration::from_millis(1000));
    let call = {
        let mut c = c.clone();
        tokio::spawn(async move { c.create_volume(create(&pv_name(7), GIB)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    plugin.stop().await.unwrap();
    let volume = call.await.unwrap().unwrap().into_inner().volume.unwrap();
    assert_eq!(volume.capacity_bytes, GIB);
    assert_eq!(plugin.sim.engine.disks().len(), 1);
    // Stopped: no new calls are taken.
    let refused = c.clone().create_volume(create(&pv_name(8), GIB)).await;
    assert!(refused.is_err());
}
