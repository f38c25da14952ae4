//! ControllerPublishVolume and ControllerUnpublishVolume over the socket,
//! against the simulator: the spec's error table, the record on the RDS (the
//! export and its allow list), multi-node block volumes, two controllers,
//! a restarted one, volumes made before attachment existed, and the round
//! trips each call costs.

use csi_proto::v1::volume_capability::access_mode::Mode;
use csi_proto::v1::{
    ControllerGetVolumeRequest, ControllerPublishVolumeRequest, ControllerUnpublishVolumeRequest,
    CreateVolumeRequest, ListVolumesRequest, VolumeCapability,
};
use nvme_host::fence;
use tonic::Code;
use tonic::transport::Channel;

use csi_proto::v1::controller_client::ControllerClient;

use crate::harness::{GIB, Plugin};
use crate::requests::{block, create, mount, pv_name, rwo};

const PREFIX: &str = "nqn.2024-01.io.srvlab.csi.rds:";

/// The node ID node plugin `name` reports.
fn node(name: &str) -> String {
    fence::node_host_nqn(PREFIX, name).unwrap()
}

fn publish_req(
    volume: &str,
    node_id: &str,
    cap: VolumeCapability,
) -> ControllerPublishVolumeRequest {
    ControllerPublishVolumeRequest {
        volume_id: volume.into(),
        node_id: node_id.into(),
        volume_capability: Some(cap),
        ..Default::default()
    }
}

fn unpublish_req(volume: &str, node_id: &str) -> ControllerUnpublishVolumeRequest {
    ControllerUnpublishVolumeRequest {
        volume_id: volume.into(),
        node_id: node_id.into(),
        ..Default::default()
    }
}

async fn create_volume(c: &mut ControllerClient<Channel>, req: CreateVolumeRequest) -> String {
    c.create_volume(req)
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap()
        .volume_id
}

fn block_request(n: u32) -> CreateVolumeRequest {
    let mut req = create(&pv_name(n), GIB);
    req.volume_capabilities = vec![block(Mode::MultiNodeMultiWriter)];
    req
}

impl Plugin {
    /// `(nvme-tcp-export, nvme-tcp-server-allow-host-name)` of volume `id`.
    fn export_of(&self, id: &str) -> (bool, String) {
        let disk = self
            .sim
            .engine
            .disks()
            .into_iter()
            .find(|d| d.slot == id)
            .unwrap();
        (disk.export, disk.allow_host_name)
    }
}

#[tokio::test]
async fn publish_opens_the_volume_to_that_node_alone_and_says_who_to_be() {
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let id = create_volume(&mut c, create(&pv_name(1), GIB)).await;
    // Made closed: no host can connect before a publish.
    assert_eq!(plugin.export_of(&id), (false, String::new()));

    let published = c
        .controller_publish_volume(publish_req(&id, &node("worker-1"), rwo()))
        .await
        .unwrap()
        .into_inner();
    let context = &published.publish_context;
    assert_eq!(context["hostNqn"], node("worker-1"));
    assert_eq!(context["hostId"], fence::host_id(&node("worker-1")));
    assert_eq!(
        fence::from_publish_context(context).unwrap().unwrap().nqn,
        node("worker-1")
    );
    assert_eq!(plugin.export_of(&id), (true, node("worker-1")));

    // A repeat converges on the same answer and changes nothing.
    let again = c
        .controller_publish_volume(publish_req(&id, &node("worker-1"), rwo()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, published);
    assert_eq!(plugin.export_of(&id), (true, node("worker-1")));
}

#[tokio::test]
async fn a_single_node_volume_published_elsewhere_is_failed_precondition_naming_the_node() {
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let id = create_volume(&mut c, create(&pv_name(2), GIB)).await;
    c.controller_publish_volume(publish_req(&id, &node("worker-1"), rwo()))
        .await
        .unwrap();
    let err = c
        .controller_publish_volume(publish_req(&id, &node("worker-2"), rwo()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains(&node("worker-1")),
        "{}",
        err.message()
    );
    assert_eq!(plugin.export_of(&id), (true, node("worker-1")));
}

#[tokio::test]
async fn an_incompatible_republish_is_already_exists() {
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let id = create_volume(&mut c, create(&pv_name(3), GIB)).await;
    c.controller_publish_volume(publish_req(&id, &node("worker-1"), rwo()))
        .await
        .unwrap();
    let mut readonly = publish_req(&id, &node("worker-1"), rwo());
    readonly.readonly = true;
    let err = c.controller_publish_volume(readonly).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
}

#[tokio::test]
async fn publish_checks_its_arguments_and_what_they_name() {
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let id = create_volume(&mut c, create(&pv_name(4), GIB)).await;
    let code = |r: Result<tonic::Response<_>, tonic::Status>| r.unwrap_err().code();

    let mut no_volume = publish_req("", &node("worker-1"), rwo());
    assert_eq!(
        code(c.controller_publish_volume(no_volume.clone()).await),
        Code::InvalidArgument
    );
    no_volume.volume_id = id.clone();
    no_volume.node_id = String::new();
    assert_eq!(
        code(c.controller_publish_volume(no_volume).await),
        Code::InvalidArgument
    );
    let mut no_cap = publish_req(&id, &node("worker-1"), rwo());
    no_cap.volume_capability = None;
    assert_eq!(
        code(c.controller_publish_volume(no_cap).await),
        Code::InvalidArgument
    );
    // A filesystem never goes to two nodes.
    assert_eq!(
        code(
            c.controller_publish_volume(publish_req(
                &id,
                &node("worker-1"),
                mount("ext4", Mode::MultiNodeMultiWriter)
            ))
            .await
        ),
        Code::InvalidArgument
    );

    // Missing volume, or a node ID no node plugin of this driver reports.
    assert_eq!(
        code(
            c.controller_publish_volume(publish_req(
                "pvc-00000000000000000000000000ff",
                &node("worker-1"),
                rwo()
            ))
            .await
        ),
        Code::NotFound
    );
    for not_a_node in [
        "worker-1",
        "fake-node-id-0123456789",
        "nqn.2000-02.com.mikrotik:node:worker-1",
    ] {
        let err = c
            .controller_publish_volume(publish_req(&id, not_a_node, rwo()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{not_a_node}: {err:?}");
        assert!(err.message().contains("names no node"), "{}", err.message());
    }
    // Nothing was changed by any of them: the volume is as it was made,
    // closed to every host.
    assert_eq!(plugin.export_of(&id), (false, String::new()));
}

#[tokio::test]
async fn unpublish_closes_the_export_and_repeats_converge() {
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let id = create_volume(&mut c, create(&pv_name(5), GIB)).await;
    c.controller_publish_volume(publish_req(&id, &node("worker-1"), rwo()))
        .await
        .unwrap();
    // Another node's unpublish leaves it published.
    c.controller_unpublish_volume(unpublish_req(&id, &node("worker-2")))
        .await
        .unwrap();
    assert_eq!(plugin.export_of(&id), (true, node("worker-1")));
    for _ in 0..2 {
        c.controller_unpublish_volume(unpublish_req(&id, &node("worker-1")))
            .await
            .unwrap();
        assert_eq!(plugin.export_of(&id), (false, String::new()));
    }
    // Now another node may have it.
    c.controller_publish_volume(publish_req(&id, &node("worker-2"), rwo()))
        .await
        .unwrap();
    assert_eq!(plugin.export_of(&id), (true, node("worker-2")));

    // Volumes and nodes that do not exist have nothing published: success,
    // so that Kubernetes does not detach forever.
    c.controller_unpublish_volume(unpublish_req(
        "pvc-00000000000000000000000000ff",
        &node("worker-1"),
    ))
    .await
    .unwrap();
    c.controller_unpublish_volume(unpublish_req(&id, "worker-2"))
        .await
        .unwrap();
    assert_eq!(plugin.export_of(&id), (true, node("worker-2")));
    let err = c
        .controller_unpublish_volume(unpublish_req("", &node("worker-2")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn unpublish_without_a_node_unpublishes_from_all() {
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let id = create_volume(&mut c, block_request(6)).await;
    for n in ["worker-1", "worker-2"] {
        c.controller_publish_volume(publish_req(
            &id,
            &node(n),
            block(Mode::MultiNodeMultiWriter),
        ))
        .await
        .unwrap();
    }
    c.controller_unpublish_volume(unpublish_req(&id, ""))
        .await
        .unwrap();
    assert_eq!(plugin.export_of(&id), (false, String::new()));
}

#[tokio::test]
async fn a_multi_node_block_volume_goes_to_two_nodes_and_one_can_leave() {
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let id = create_volume(&mut c, block_request(7)).await;
    let cap = || block(Mode::MultiNodeMultiWriter);
    for n in ["worker-1", "worker-2"] {
        c.controller_publish_volume(publish_req(&id, &node(n), cap()))
            .await
            .unwrap();
    }
    let (export, list) = plugin.export_of(&id);
    assert!(export);
    assert_eq!(
        list,
        format!(
            "{},{},{PREFIX}mode:multi-writer",
            node("worker-1"),
            node("worker-2")
        )
    );
    // Reported as published to both.
    let listed = c
        .list_volumes(ListVolumesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let entry = listed
        .entries
        .iter()
        .find(|e| e.volume.as_ref().unwrap().volume_id == id)
        .unwrap();
    assert_eq!(
        entry.status.as_ref().unwrap().published_node_ids,
        [node("worker-1"), node("worker-2")]
    );
    // A third node that wants it alone is refused.
    let err = c
        .controller_publish_volume(publish_req(
            &id,
            &node("worker-3"),
            block(Mode::SingleNodeWriter),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    // One leaves; the other stays.
    c.controller_unpublish_volume(unpublish_req(&id, &node("worker-1")))
        .await
        .unwrap();
    assert_eq!(
        plugin.export_of(&id),
        (
            true,
            format!("{},{PREFIX}mode:multi-writer", node("worker-2"))
        )
    );
    let got = c
        .controller_get_volume(ControllerGetVolumeRequest {
            volume_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.status.unwrap().published_node_ids, [node("worker-2")]);
}

#[tokio::test]
async fn a_restarted_controller_decides_the_same_from_the_rds() {
    let mut plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let id = create_volume(&mut c, create(&pv_name(8), GIB)).await;
    c.controller_publish_volume(publish_req(&id, &node("worker-1"), rwo()))
        .await
        .unwrap();
    drop(c);
    plugin.stop().await.unwrap();

    let mut restarted = plugin.another("restarted").await;
    let mut c = restarted.controller().await;
    let err = c
        .controller_publish_volume(publish_req(&id, &node("worker-2"), rwo()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains(&node("worker-1")),
        "{}",
        err.message()
    );
    // The first node's repeat is still fine, and its unpublish works.
    c.controller_publish_volume(publish_req(&id, &node("worker-1"), rwo()))
        .await
        .unwrap();
    c.controller_unpublish_volume(unpublish_req(&id, &node("worker-1")))
        .await
        .unwrap();
    assert_eq!(plugin.export_of(&id), (false, String::new()));
    restarted.stop().await.unwrap();
}

/// Two controllers (a replica that believes it leads, say) publish one
/// volume to two nodes at once, many times. RouterOS runs two scripts' commands
/// interleaved, so both compare-and-sets may pass their condition before
/// either writes, and both be told success; but the export is the fence and
/// the record at once: the RDS admits exactly one of the two nodes, and a
/// repeat decides from that. Never two writers.
#[tokio::test]
async fn two_controllers_racing_never_let_two_nodes_in() {
    let plugin = Plugin::start().await;
    let mut other = plugin.another("replica").await;
    let mut c1 = plugin.controller().await;
    let mut c2 = other.controller().await;
    let mut refused = 0;
    for n in 0..8 {
        let id = create_volume(&mut c1, create(&pv_name(100 + n), GIB)).await;
        // Both controllers have seen the volume closed, so each guesses the
        // same starting state.
        c2.controller_get_volume(ControllerGetVolumeRequest {
            volume_id: id.clone(),
        })
        .await
        .unwrap();
        let (r1, r2) = tokio::join!(
            c1.controller_publish_volume(publish_req(&id, &node("worker-1"), rwo())),
            c2.controller_publish_volume(publish_req(&id, &node("worker-2"), rwo())),
        );
        for r in [&r1, &r2] {
            if let Err(e) = r {
                assert_eq!(e.code(), Code::FailedPrecondition, "volume {id}: {e:?}");
                refused += 1;
            }
        }
        assert!(r1.is_ok() || r2.is_ok(), "volume {id}: neither won");
        let (export, list) = plugin.export_of(&id);
        assert!(export, "volume {id}");
        let admitted = ["worker-1", "worker-2"]
            .into_iter()
            .filter(|n| list == node(n))
            .collect::<Vec<_>>();
        assert_eq!(admitted.len(), 1, "volume {id}: the RDS admits {list:?}");
        let loser = if admitted[0] == "worker-1" {
            "worker-2"
        } else {
            "worker-1"
        };
        // Both controllers now decide the same from the RDS: the loser is
        // refused, the winner's repeat succeeds.
        for c in [&mut c1, &mut c2] {
            let err = c
                .controller_publish_volume(publish_req(&id, &node(loser), rwo()))
                .await
                .unwrap_err();
            assert_eq!(err.code(), Code::FailedPrecondition);
            c.controller_publish_volume(publish_req(&id, &node(admitted[0]), rwo()))
                .await
                .unwrap();
        }
    }
    // Most races are decided by the compare-and-set itself.
    println!("{refused} of 8 races refused the loser at once");
    other.stop().await.unwrap();
}

#[tokio::test]
async fn a_volume_made_before_attachment_is_fenced_at_its_first_publish() {
    let plugin = Plugin::start().await;
    // As the Go driver (or this one before attachment) left it: exported,
    // open to any host.
    let go_id = "pvc-5f7e1c2a-9b3d-4e8f-a1b2-c3d4e5f60718";
    plugin.routeros(&format!(
        "/disk add type=file file-path=/storage-pool/metal-csi/{go_id}.img file-size=1G \
         slot=pvc-5f7e1c2a9b3d4e8fa1b2c3d4e5f6 nvme-tcp-export=yes \
         nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:{go_id} comment=\"rds-csi:{go_id}\""
    ));
    let id = "pvc-5f7e1c2a9b3d4e8fa1b2c3d4e5f6";
    let mut c = plugin.controller().await;
    let listed = c
        .list_volumes(ListVolumesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.entries[0]
            .status
            .as_ref()
            .unwrap()
            .published_node_ids
            .is_empty(),
        "open to all is published to no node in particular"
    );
    c.controller_publish_volume(publish_req(id, &node("worker-1"), rwo()))
        .await
        .unwrap();
    assert_eq!(plugin.export_of(id), (true, node("worker-1")));
    c.controller_unpublish_volume(unpublish_req(id, &node("worker-1")))
        .await
        .unwrap();
    assert_eq!(plugin.export_of(id), (false, String::new()));
}

#[tokio::test]
async fn hosts_the_driver_did_not_list_block_a_publish_until_unpublished_from_all() {
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let id = create_volume(&mut c, create(&pv_name(9), GIB)).await;
    plugin.routeros(&format!(
        "/disk set {id} nvme-tcp-server-allow-host-name=\"nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427\""
    ));
    let err = c
        .controller_publish_volume(publish_req(&id, &node("worker-1"), rwo()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("did not record"),
        "{}",
        err.message()
    );
    c.controller_unpublish_volume(unpublish_req(&id, ""))
        .await
        .unwrap();
    c.controller_publish_volume(publish_req(&id, &node("worker-1"), rwo()))
        .await
        .unwrap();
    assert_eq!(plugin.export_of(&id), (true, node("worker-1")));
}

/// The round trips to the RDS, counted by the plugin's own metrics: one
/// per publish and per unpublish once the controller has seen the volume;
/// one more (a read) the first time after a restart.
#[tokio::test]
async fn publish_and_unpublish_take_one_round_trip_each() {
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let id = create_volume(&mut c, create(&pv_name(10), GIB)).await;
    let commands = |op: &'static str| {
        let plugin = &plugin;
        async move {
            plugin
                .metric(&format!(
                    "rds_csi_routeros_commands_total{{operation=\"{op}\",outcome=\"ok\"}}"
                ))
                .await
        }
    };
    let before = (commands("export").await, commands("get").await);
    c.controller_publish_volume(publish_req(&id, &node("worker-1"), rwo()))
        .await
        .unwrap();
    c.controller_unpublish_volume(unpublish_req(&id, &node("worker-1")))
        .await
        .unwrap();
    let after = (commands("export").await, commands("get").await);
    assert_eq!((after.0 - before.0, after.1 - before.1), (2.0, 0.0));

    let restarted = plugin.another("restarted").await;
    let mut c = restarted.controller().await;
    c.controller_publish_volume(publish_req(&id, &node("worker-1"), rwo()))
        .await
        .unwrap();
    let series =
        |op: &str| format!("rds_csi_routeros_commands_total{{operation=\"{op}\",outcome=\"ok\"}}");
    assert_eq!(restarted.metric(&series("get")).await, 1.0);
    assert_eq!(restarted.metric(&series("export")).await, 1.0);
}

/// The export the controller remembers is only a guess of what to compare
/// with: a disk put in the slot since, by someone else, in the very state
/// remembered, is still never changed, since the RDS checks in the same
/// script that the disk is the one the controller read.
#[tokio::test]
async fn a_disk_replaced_behind_the_controllers_back_is_not_changed() {
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let id = create_volume(&mut c, create(&pv_name(11), GIB)).await;
    c.controller_publish_volume(publish_req(&id, &node("worker-1"), rwo()))
        .await
        .unwrap();
    plugin.routeros(&format!("/disk remove {id}"));
    plugin.routeros(&format!(
        "/disk add type=file file-path=/storage-pool/metal-csi/by-hand.img file-size=1G \
         slot={id} nvme-tcp-export=yes nvme-tcp-server-allow-host-name=\"{}\" \
         nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:by-hand comment=\"made by hand\"",
        node("worker-1")
    ));
    // Kubernetes detaches: the controller must not close someone else's
    // export. It answers as for any disk it did not make.
    c.controller_unpublish_volume(unpublish_req(&id, &node("worker-1")))
        .await
        .unwrap();
    assert_eq!(plugin.export_of(&id), (true, node("worker-1")));
    let err = c
        .controller_publish_volume(publish_req(&id, &node("worker-2"), rwo()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(plugin.export_of(&id), (true, node("worker-1")));
}
