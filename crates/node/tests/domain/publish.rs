//! NodePublishVolume and NodeUnpublishVolume: binds into pods, idempotent,
//! and the reconnect of a volume the kernel gave up on.

use node::NodeError;

use crate::{PublishRequest, Rig, block, filesystem, kind, no_context, publish, stage};

#[tokio::test(start_paused = true)]
async fn a_filesystem_volume_is_bound_into_each_pod_and_unbound() {
    let rig = Rig::new();
    let v = rig.in_use("pvc-1", filesystem(None)).await;
    assert_eq!(rig.world.mounts_at(&v.target), ["/dev/nvme0n1"]);
    // Again: a no-op.
    rig.node
        .publish(publish(&v, &v.target, filesystem(None)))
        .await
        .unwrap();
    assert_eq!(rig.world.mounts_at(&v.target).len(), 1);
    // The same target read-only: refused.
    let e = rig
        .node
        .publish(PublishRequest {
            read_only: true,
            ..publish(&v, &v.target, filesystem(None))
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            NodeError::PublishedIncompatibly {
                read_only: false,
                ..
            }
        ),
        "{}",
        kind(&e)
    );
    // Another pod, read-only: fine (several writers and readers on one node).
    let other = v.target.with_file_name("other");
    rig.node
        .publish(PublishRequest {
            read_only: true,
            ..publish(&v, &other, filesystem(None))
        })
        .await
        .unwrap();

    for target in [&v.target, &other] {
        for _ in 0..2 {
            rig.node.unpublish(&v.id, target).await.unwrap();
            assert!(rig.world.mounts_at(target).is_empty());
            assert!(!rig.world.path_exists(target), "the target is removed");
        }
    }
    assert_eq!(rig.world.mounts_at(&v.staging).len(), 1, "still staged");
}

#[tokio::test(start_paused = true)]
async fn a_block_volume_binds_its_device_node_onto_a_file() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(stage(&v, block())).await.unwrap();
    let target = v.target.with_file_name("pod-uid");
    rig.node
        .publish(publish(&v, &target, block()))
        .await
        .unwrap();
    assert_eq!(rig.world.mounts_at(&target), ["udev"]);
    rig.node.unpublish(&v.id, &target).await.unwrap();
    assert!(!rig.world.path_exists(&target));
}

#[tokio::test(start_paused = true)]
async fn a_block_volume_without_a_connection_is_not_bound() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(stage(&v, block())).await.unwrap();
    // Connected again by publish, with the request's context...
    rig.world.lose_connection(&v.nqn);
    rig.node
        .publish(publish(&v, &v.target, block()))
        .await
        .unwrap();
    // ...but not when the target does not answer: nothing is bound then.
    let other = v.target.with_file_name("other");
    rig.world.lose_connection(&v.nqn);
    rig.world.set_reachable(&v.nqn, false);
    let e = rig
        .node
        .publish(publish(&v, &other, block()))
        .await
        .unwrap_err();
    assert!(matches!(e, NodeError::Nvme(_)), "{}", kind(&e));
    assert!(rig.world.mounts_at(&other).is_empty());
}

#[tokio::test(start_paused = true)]
async fn what_is_not_staged_is_not_published() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    let e = rig
        .node
        .publish(publish(&v, &v.target, filesystem(None)))
        .await
        .unwrap_err();
    assert!(matches!(e, NodeError::NotStagedAt { .. }), "{}", kind(&e));

    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    rig.world.unmount_directly(&v.staging);
    // The connection is alive, so no reconnect; the staging mount is gone.
    let e = rig
        .node
        .publish(publish(&v, &v.target, filesystem(None)))
        .await
        .unwrap_err();
    assert!(
        matches!(e, NodeError::StagingNotMounted { .. }),
        "{}",
        kind(&e)
    );
}

#[tokio::test(start_paused = true)]
async fn publish_reconnects_a_volume_the_kernel_gave_up_on() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(stage(&v, filesystem(None))).await.unwrap();
    let before = rig.world.saved_records()[0].diskseq;
    rig.world.lose_connection(&v.nqn);
    // A publish without a context connects with the one it was staged with.
    rig.node
        .publish(PublishRequest {
            context: no_context(),
            ..publish(&v, &v.target, filesystem(None))
        })
        .await
        .unwrap();
    assert_eq!(rig.world.controllers(&v.nqn), 1);
    assert_eq!(rig.world.mounts_at(&v.staging), [rig.device(&v)]);
    let record = &rig.world.saved_records()[0];
    assert_ne!(record.diskseq, before, "the record follows the new disk");
    assert_eq!(rig.world.formatted().len(), 1, "the data was kept");
}

#[tokio::test(start_paused = true)]
async fn a_context_naming_another_volume_is_refused_on_reconnect() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    let w = rig.volume("pvc-2");
    rig.node.stage(stage(&v, block())).await.unwrap();
    rig.world.lose_connection(&v.nqn);
    let e = rig
        .node
        .publish(PublishRequest {
            context: crate::context(&w).to_map(),
            ..publish(&v, &v.target, block())
        })
        .await
        .unwrap_err();
    assert!(matches!(e, NodeError::NqnMismatch { .. }), "{}", kind(&e));
    assert_eq!(rig.world.controllers(&w.nqn), 0);
}

#[tokio::test(start_paused = true)]
async fn a_single_writer_volume_is_published_at_one_target_at_a_time() {
    for capability in [filesystem(None), block()] {
        let rig = Rig::new();
        let v = rig.volume("pvc-1");
        let single = node::Capability {
            single_writer: true,
            ..capability.clone()
        };
        rig.node.stage(stage(&v, capability.clone())).await.unwrap();
        rig.node
            .publish(publish(&v, &v.target, single.clone()))
            .await
            .unwrap();
        // The same target again: idempotent.
        rig.node
            .publish(publish(&v, &v.target, single.clone()))
            .await
            .unwrap();
        let other = v.target.with_file_name("other");
        let e = rig
            .node
            .publish(publish(&v, &other, single.clone()))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, NodeError::PublishedElsewhere { elsewhere, .. } if *elsewhere == v.target),
            "{e:?}"
        );
        assert!(rig.world.mounts_at(&other).is_empty());
        // Several writers may share it: published there too.
        rig.node
            .publish(publish(&v, &other, capability.clone()))
            .await
            .unwrap();
        // Once the first publication is gone, a single writer may go there.
        rig.node.unpublish(&v.id, &v.target).await.unwrap();
        rig.node.unpublish(&v.id, &other).await.unwrap();
        rig.node.publish(publish(&v, &other, single)).await.unwrap();
    }
}
