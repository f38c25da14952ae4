//! The RDS going away and coming back: while it is down, volume calls fail
//! fast with UNAVAILABLE (nothing is sent, nothing piles up), Probe and
//! readiness say so; once it is back, the same calls succeed, and the RDS
//! holds exactly the volumes asked for: none leaked, none doubled.

use std::collections::BTreeSet;

use csi_proto::v1::{
    ControllerExpandVolumeRequest, CreateVolumeRequest, DeleteVolumeRequest, ProbeRequest,
};
use tonic::{Code, Response, Status};

use crate::harness::{GIB, Plugin, eventually};
use crate::requests::{create, pv_name, range};

/// The slot the controller makes for volume name `n` (see `pv_name`).
fn slot_of(n: u32) -> String {
    format!("pvc-{n:08x}3c434c2f9d2e53f0d3b1")
}

impl Plugin {
    /// Waits until Probe says ready (the monitor found the RDS).
    async fn until_ready(&self) {
        let identity = self.identity().await;
        eventually("Probe says ready", || {
            let mut identity = identity.clone();
            async move { identity.probe(ProbeRequest {}).await.ok() }
        })
        .await;
    }

    /// Waits until Probe says the RDS is not usable, and returns its status.
    async fn until_down(&self) -> Status {
        let identity = self.identity().await;
        eventually("Probe says the RDS is down", || {
            let mut identity = identity.clone();
            async move { identity.probe(ProbeRequest {}).await.err() }
        })
        .await
    }

    /// Takes the RDS away as a network cut and a reboot would: connections
    /// are refused, and the open one is cut at the monitor's next check.
    async fn take_rds_away(&self) -> Status {
        let faults = self.sim.engine.faults();
        faults.set_refuse_connections(true);
        faults.drop_before("/system resource print");
        self.until_down().await
    }

    /// Brings the RDS back and waits until the plugin has found it.
    async fn bring_rds_back(&self) {
        self.sim.engine.faults().set_refuse_connections(false);
        self.until_ready().await;
    }

    /// The image files on the RDS, as slots (`<slot>.img`).
    fn image_slots(&self) -> BTreeSet<String> {
        self.sim
            .engine
            .files()
            .into_iter()
            .map(|f| {
                let name = f.name.rsplit('/').next().unwrap().to_owned();
                name.strip_suffix(".img")
                    .unwrap_or_else(|| panic!("not an image: {}", f.name))
                    .to_owned()
            })
            .collect()
    }

    fn slot_set(&self) -> BTreeSet<String> {
        let slots = self.slots();
        let set: BTreeSet<String> = slots.iter().cloned().collect();
        assert_eq!(set.len(), slots.len(), "a slot twice: {slots:?}");
        set
    }
}

fn unavailable<T: std::fmt::Debug>(result: Result<Response<T>, Status>) -> Status {
    let status = result.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    status
}

/// Succeeds, or fails UNAVAILABLE (anything else fails the test).
fn ok_or_unavailable<T: std::fmt::Debug>(result: Result<Response<T>, Status>) -> Option<T> {
    match result {
        Ok(response) => Some(response.into_inner()),
        Err(status) if status.code() == Code::Unavailable => None,
        Err(status) => panic!("neither OK nor UNAVAILABLE: {status:?}"),
    }
}

#[tokio::test]
async fn an_rds_refusing_connections_makes_calls_unavailable_until_it_is_back() {
    let plugin = Plugin::start().await;
    plugin.until_ready().await;
    let mut c = plugin.controller().await;
    let kept = c
        .create_volume(create(&pv_name(1), GIB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap()
        .volume_id;

    let status = plugin.take_rds_away().await;
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let address = format!("127.0.0.1:{}", plugin.sim.addr.port());
    assert!(
        status.message().contains(&address) && status.message().contains("cannot connect"),
        "Probe names the address and the last error: {}",
        status.message()
    );
    let (code, body) = plugin.http_get("/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("rds: ") && body.contains(&address), "{body}");
    assert_eq!(plugin.metric("rds_csi_rds_up").await, 0.0);
    let (code, _) = plugin.http_get("/healthz").await;
    assert_eq!(code, 200, "an unreachable RDS is no reason to restart");

    // Every volume call fails fast with UNAVAILABLE; nothing reaches the RDS.
    let executed = plugin.sim.engine.commands_executed();
    let failures_before = plugin.metric("rds_csi_ssh_connect_failures_total").await;
    unavailable(c.create_volume(create(&pv_name(2), GIB)).await);
    unavailable(
        c.delete_volume(DeleteVolumeRequest {
            volume_id: kept.clone(),
            ..Default::default()
        })
        .await,
    );
    unavailable(
        c.controller_expand_volume(ControllerExpandVolumeRequest {
            volume_id: kept.clone(),
            capacity_range: range(2 * GIB, 0),
            ..Default::default()
        })
        .await,
    );
    let names: Vec<u32> = (100..120).collect();
    let requests: Vec<CreateVolumeRequest> =
        names.iter().map(|&n| create(&pv_name(n), GIB)).collect();
    let calls: Vec<_> = requests
        .iter()
        .cloned()
        .map(|req| {
            let mut c = c.clone();
            tokio::spawn(async move { c.create_volume(req).await })
        })
        .collect();
    for call in calls {
        unavailable(call.await.unwrap());
    }
    assert_eq!(
        plugin.sim.engine.commands_executed(),
        executed,
        "no command reached the RDS"
    );
    let attempts = plugin.metric("rds_csi_ssh_connect_failures_total").await - failures_before;
    assert!(
        attempts < 23.0,
        "each call tried to connect instead of failing fast ({attempts} attempts)"
    );
    assert_eq!(
        plugin
            .metric(r#"rds_csi_routeros_commands_total{operation="create",outcome="error"}"#)
            .await,
        0.0,
        "nothing was sent, so no command failed"
    );

    // Back: the monitor finds it without any call's help.
    plugin.bring_rds_back().await;
    let (code, body) = plugin.http_get("/readyz").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(plugin.metric("rds_csi_rds_up").await, 1.0);
    let calls: Vec<_> = requests
        .into_iter()
        .map(|req| {
            let mut c = c.clone();
            tokio::spawn(async move { c.create_volume(req).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let expand = c
        .controller_expand_volume(ControllerExpandVolumeRequest {
            volume_id: kept.clone(),
            capacity_range: range(2 * GIB, 0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(expand.capacity_bytes, 2 * GIB);

    // Exactly the volumes asked for: none leaked, none doubled.
    let mut expected: BTreeSet<String> = names.iter().map(|&n| slot_of(n)).collect();
    expected.insert(kept);
    assert_eq!(plugin.slot_set(), expected);
    assert_eq!(plugin.image_slots(), expected);
}

#[tokio::test]
async fn connections_cut_mid_command_converge_without_leaks() {
    let plugin = Plugin::start().await;
    plugin.until_ready().await;
    let mut c = plugin.controller().await;
    let faults = plugin.sim.engine.faults();

    // Cut before and after the disk is added, with the RDS still there:
    // the client repeats the idempotent script and the call succeeds.
    faults.drop_before("/disk add");
    c.create_volume(create(&pv_name(1), GIB)).await.unwrap();
    faults.drop_after("/disk add");
    c.create_volume(create(&pv_name(2), GIB)).await.unwrap();
    faults.drop_after("/disk set");
    let grown = c
        .controller_expand_volume(ControllerExpandVolumeRequest {
            volume_id: slot_of(1),
            capacity_range: range(2 * GIB, 0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grown.capacity_bytes, 2 * GIB);

    // Cut after the disk was added, and the RDS then refuses connections:
    // the outcome is unknown to the caller, which sees UNAVAILABLE.
    faults.set_refuse_connections(true);
    faults.drop_after("/disk add");
    let first = ok_or_unavailable(c.create_volume(create(&pv_name(3), GIB)).await);
    assert!(first.is_none(), "the cut with no way back: {first:?}");
    plugin.until_down().await;
    plugin.bring_rds_back().await;
    // The sidecar repeats the call; it finds the disk the cut call made.
    let made = c
        .create_volume(create(&pv_name(3), GIB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(made.volume_id, slot_of(3));
    assert_eq!(made.capacity_bytes, GIB);

    // Deletes cut between removing the disk and removing its image.
    faults.drop_after("/disk remove");
    c.delete_volume(DeleteVolumeRequest {
        volume_id: slot_of(1),
        ..Default::default()
    })
    .await
    .unwrap();
    faults.set_refuse_connections(true);
    faults.drop_before("/file remove");
    let first = ok_or_unavailable(
        c.delete_volume(DeleteVolumeRequest {
            volume_id: slot_of(2),
            ..Default::default()
        })
        .await,
    );
    assert!(first.is_none(), "the cut with no way back: {first:?}");
    assert!(
        plugin.image_slots().contains(&slot_of(2)),
        "the cut left the image"
    );
    plugin.until_down().await;
    // While down, the repeated call fails fast too.
    let retry = || DeleteVolumeRequest {
        volume_id: slot_of(2),
        ..Default::default()
    };
    assert!(ok_or_unavailable(c.delete_volume(retry()).await).is_none());
    plugin.bring_rds_back().await;
    c.delete_volume(retry()).await.unwrap();

    // A burst of calls, each cut once at a different point, repeated by
    // their callers until they succeed.
    for (n, cut) in [(10, "/disk add"), (11, "/disk add"), (12, "/disk remove")] {
        if n == 12 {
            c.create_volume(create(&pv_name(n), GIB)).await.unwrap();
            faults.drop_after(cut);
            eventually("the delete goes through", || {
                let mut c = c.clone();
                async move {
                    ok_or_unavailable(
                        c.delete_volume(DeleteVolumeRequest {
                            volume_id: slot_of(n),
                            ..Default::default()
                        })
                        .await,
                    )
                }
            })
            .await;
        } else {
            faults.drop_before(cut);
            eventually("the create goes through", || {
                let mut c = c.clone();
                async move { ok_or_unavailable(c.create_volume(create(&pv_name(n), GIB)).await) }
            })
            .await;
        }
    }

    let expected: BTreeSet<String> = [3, 10, 11].into_iter().map(slot_of).collect();
    assert_eq!(plugin.slot_set(), expected);
    assert_eq!(
        plugin.image_slots(),
        expected,
        "no stray image, no image twice"
    );
}
