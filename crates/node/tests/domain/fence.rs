//! The fence, as the node sees it: a volume is connected as the host
//! identity ControllerPublish named, only this node's connections are
//! touched, and a connection the RDS refuses is removed at start-up.

use std::collections::HashMap;

use node::testing::PREFIX;
use node::{NodeError, NvmeHost as _};
use nvme_host::{CtrlState, HostIdentity, NvmeError, fence};

use crate::{Rig, attach_identity, block, filesystem, identity, kind, no_context, publish, stage};

/// Another node's identity.
fn node_2() -> HostIdentity {
    fence::identity_of_node_name(PREFIX, "node-2").unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_published_volume_is_connected_as_the_identity_published_to() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    assert_eq!(rig.world.hosts_of(&v.nqn), [attach_identity().nqn]);
    let record = &rig.world.saved_records()[0];
    assert_eq!(
        record.host.as_ref().map(HostIdentity::from),
        Some(attach_identity()),
        "the record keeps the identity, for a reconnect"
    );
    assert_eq!(rig.node.node_id(), attach_identity().nqn);
}

#[tokio::test(start_paused = true)]
async fn a_volume_published_without_an_identity_is_connected_as_the_host() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    let mut req = stage(&v, block());
    req.publish_context = HashMap::new();
    rig.node.stage(req).await.unwrap();
    assert_eq!(rig.world.hosts_of(&v.nqn), [identity().nqn]);
    let record = &rig.world.saved_records()[0];
    assert_eq!(
        record.host.as_ref().map(HostIdentity::from),
        Some(identity())
    );
}

#[tokio::test(start_paused = true)]
async fn a_volume_published_to_another_node_is_refused_before_anything_is_done() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    let mut req = stage(&v, filesystem(None));
    req.publish_context = fence::to_publish_context(&node_2());
    let e = rig.node.stage(req).await.unwrap_err();
    assert!(
        matches!(&e, NodeError::PublishedToAnother { published, .. } if *published == node_2().nqn),
        "{}",
        kind(&e)
    );
    rig.assert_nothing_held();
}

#[tokio::test(start_paused = true)]
async fn a_publish_context_that_breaks_the_rules_is_a_bad_argument() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    let mut req = stage(&v, filesystem(None));
    // The host ID of another host NQN: the kernel would refuse the pair, or
    // worse, accept a forged one.
    req.publish_context
        .insert(fence::HOST_ID_KEY.into(), node_2().id);
    let e = rig.node.stage(req).await.unwrap_err();
    assert!(
        matches!(
            e,
            NodeError::BadArgument {
                what: "publish context",
                ..
            }
        ),
        "{}",
        kind(&e)
    );
    rig.assert_nothing_held();
}

#[tokio::test(start_paused = true)]
async fn the_rds_lets_in_only_the_identity_it_was_told() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.world
        .set_allowed(&v.nqn, Some(&[attach_identity().nqn.as_str()]));
    // As the host itself (no identity published): refused, at every attempt
    // until the connect deadline.
    let mut req = stage(&v, filesystem(None));
    req.publish_context = HashMap::new();
    let e = rig.node.stage(req).await.unwrap_err();
    assert!(
        matches!(&e, NodeError::Nvme(n) if matches!(**n, NvmeError::ConnectGaveUp { .. })),
        "{e:?}"
    );
    assert_eq!(rig.world.refusals(), [(v.nqn.clone(), identity().nqn)]);
    assert!(rig.world.saved_records().is_empty());
    // As published: let in.
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    assert_eq!(rig.world.hosts_of(&v.nqn), [attach_identity().nqn]);
}

#[tokio::test(start_paused = true)]
async fn unstage_disconnects_this_nodes_connections_only() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    // Another node on the same kernel has the volume too (a multi-node
    // block volume, two identities on one machine).
    rig.world.connect_directly(&v.nqn, &node_2().nqn);
    rig.node.stage(stage(&v, block())).await.unwrap();
    assert_eq!(
        rig.world.hosts_of(&v.nqn),
        [node_2().nqn, attach_identity().nqn]
    );
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    assert_eq!(rig.world.hosts_of(&v.nqn), [node_2().nqn], "node-2's stays");
    assert!(rig.world.saved_records().is_empty());
    // Without a record (a stage that failed after its connect), the same.
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    assert_eq!(rig.world.hosts_of(&v.nqn), [node_2().nqn]);
}

#[tokio::test(start_paused = true)]
async fn unstage_disconnects_both_of_this_nodes_identities() {
    // Staged as the host before an upgrade, staged again as published
    // after it: the node holds one controller of each identity.
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    let mut before = stage(&v, block());
    before.publish_context = HashMap::new();
    rig.node.stage(before).await.unwrap();
    rig.node.stage(stage(&v, block())).await.unwrap();
    assert_eq!(
        rig.world.hosts_of(&v.nqn),
        [identity().nqn, attach_identity().nqn]
    );
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    rig.assert_nothing_held();
}

#[tokio::test(start_paused = true)]
async fn a_reconnect_uses_the_identity_the_volume_was_staged_with() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    rig.world.lose_connection(&v.nqn);
    // A publish that carries neither context (kubelet passes both, but an
    // older one may not).
    let mut req = publish(&v, &v.target, filesystem(None));
    req.context = no_context();
    req.publish_context = HashMap::new();
    rig.node.publish(req).await.unwrap();
    assert_eq!(rig.world.hosts_of(&v.nqn), [attach_identity().nqn]);
}

#[tokio::test(start_paused = true)]
async fn a_node_let_out_stays_out() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    // Unpublished here and published to node-2: the export is bounced.
    rig.world
        .set_allowed(&v.nqn, Some(&[node_2().nqn.as_str()]));
    rig.world.bounce(&v.nqn);
    assert_eq!(
        rig.node.host().controller_state(&v.nqn).unwrap(),
        Some(CtrlState::Connecting)
    );
    // kubelet's publish of a pod starting again here finds the device
    // still there (held, not gone), so it does not reconnect; when the
    // kernel gives up, a reconnect is refused too.
    rig.world.lose_connection(&v.nqn);
    let e = rig
        .node
        .publish(publish(&v, &v.target, filesystem(None)))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, NodeError::Nvme(n) if matches!(**n, NvmeError::ConnectGaveUp { .. })),
        "{e:?}"
    );
    assert_eq!(rig.world.controllers(&v.nqn), 0);
}

#[tokio::test(start_paused = true)]
async fn start_up_disconnects_a_connection_the_rds_refuses_even_under_a_mount() {
    let mut rig = Rig::new();
    let v = rig.in_use("pvc-1", filesystem(None)).await;
    let kept = rig.in_use("pvc-2", filesystem(None)).await;
    // pvc-1 was force-detached from this node while it was away, and
    // published to node-2: its connection is refused at every reconnect.
    rig.world
        .set_allowed(&v.nqn, Some(&[node_2().nqn.as_str()]));
    rig.world.bounce(&v.nqn);
    // pvc-2's target only went away (a network outage): not refused.
    rig.world.set_state(&kept.nqn, CtrlState::Connecting);

    let report = rig.restart().await;
    assert_eq!(report.refused, std::slice::from_ref(&v.nqn));
    assert_eq!(report.cleaned, std::slice::from_ref(&v.nqn));
    assert_eq!(rig.world.controllers(&v.nqn), 0, "its I/O fails now");
    assert_eq!(
        rig.world.controllers(&kept.nqn),
        1,
        "an outage is waited out"
    );
    // The dead filesystem stays mounted, and the record with it, for
    // kubelet's unstage, which then succeeds.
    assert_eq!(rig.world.mounts_at(&v.staging).len(), 1);
    assert!(report.abnormal.contains(&v.id));
    rig.node.unpublish(&v.id, &v.target).await.unwrap();
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    assert!(rig.world.mounts_at(&v.staging).is_empty());
}

#[tokio::test(start_paused = true)]
async fn start_up_leaves_another_identitys_connections() {
    let mut rig = Rig::new();
    let v = rig.volume("pvc-1");
    // Not staged by this node, connected as node-2 (on the same kernel).
    rig.world.connect_directly(&v.nqn, &node_2().nqn);
    let report = rig.restart().await;
    assert!(report.cleaned.is_empty(), "{report:?}");
    assert_eq!(rig.world.hosts_of(&v.nqn), [node_2().nqn]);
    // The same connection as this node's own identity is an orphan.
    rig.world.connect_directly(&v.nqn, &identity().nqn);
    let report = rig.restart().await;
    assert_eq!(report.cleaned, std::slice::from_ref(&v.nqn));
    assert_eq!(rig.world.hosts_of(&v.nqn), [node_2().nqn]);
}

#[tokio::test(start_paused = true)]
async fn without_the_kernel_log_a_refused_connection_is_judged_as_any_other() {
    let mut rig = Rig::new();
    let v = rig.in_use("pvc-1", filesystem(None)).await;
    rig.world
        .set_allowed(&v.nqn, Some(&[node_2().nqn.as_str()]));
    rig.world.bounce(&v.nqn);
    rig.world.fail("refused", usize::MAX);
    let report = rig.restart().await;
    assert!(
        report.refused.is_empty() && report.cleaned.is_empty(),
        "{report:?}"
    );
    assert_eq!(rig.world.controllers(&v.nqn), 1, "staged and mounted: kept");
}

/// An encrypted volume refused the same way: its mapping is in use under
/// the mount and cannot be closed, and the connection is cut all the same
/// (the mapping goes dead with it); kubelet's unstage then closes it.
#[tokio::test(start_paused = true)]
async fn start_up_disconnects_a_refused_encrypted_volume_under_a_mount() {
    let mut rig = Rig::new();
    let v = rig.in_use_encrypted("pvc-1").await;
    rig.world
        .set_allowed(&v.nqn, Some(&[node_2().nqn.as_str()]));
    rig.world.bounce(&v.nqn);

    let report = rig.restart().await;
    assert_eq!(report.refused, std::slice::from_ref(&v.nqn));
    assert_eq!(report.cleaned, std::slice::from_ref(&v.nqn));
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(rig.world.controllers(&v.nqn), 0, "its I/O fails now");
    assert_eq!(rig.world.mappings().len(), 1, "in use: it stays, dead");
    rig.node.unpublish(&v.id, &v.target).await.unwrap();
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    assert!(rig.world.mappings().is_empty());
    assert!(rig.world.mounts_at(&v.staging).is_empty());
}
