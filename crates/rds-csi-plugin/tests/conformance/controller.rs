//! Controller: argument validation for every RPC, idempotency, pagination,
//! capacity, expansion and the error codes.

use std::collections::HashSet;

use csi_proto::v1::controller_service_capability::{self, rpc};
use csi_proto::v1::volume_capability::access_mode::Mode;
use csi_proto::v1::{
    ControllerExpandVolumeRequest, ControllerGetCapabilitiesRequest, ControllerGetVolumeRequest,
    CreateVolumeRequest, DeleteVolumeRequest, GetCapacityRequest, ListVolumesRequest,
    ValidateVolumeCapabilitiesRequest, VolumeCapability, VolumeContentSource,
};
use tonic::Code;

use crate::harness::{GIB, MIB, Options, Plugin};
use crate::requests::{block, create, mount, params, pv_name, range, rwo};

#[tokio::test]
async fn create_makes_a_volume_and_says_how_to_reach_it() {
    let plugin = Plugin::start().await;
    let name = pv_name(1);
    let mut req = create(&name, 3 * GIB / 2);
    req.parameters = params(&[
        ("csi.storage.k8s.io/pvc/name", "data"),
        ("csi.storage.k8s.io/pvc/namespace", "apps"),
        ("ctrlLossTmo", "600"),
    ]);
    let volume = plugin
        .controller()
        .await
        .create_volume(req)
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(volume.volume_id, "pvc-000000013c434c2f9d2e53f0d3b1");
    assert_eq!(
        volume.capacity_bytes,
        3 * GIB / 2,
        "exact bytes, not rounded down"
    );
    let ctx = &volume.volume_context;
    assert_eq!(ctx["nvmeAddress"], "10.0.0.9");
    assert_eq!(ctx["nvmePort"], "4420");
    assert_eq!(
        ctx["nqn"],
        format!("nqn.2024-01.io.srvlab.csi.rds:{}", volume.volume_id)
    );
    assert_eq!(ctx["fsType"], "ext4");
    assert_eq!(ctx["ctrlLossTmo"], "600");
    assert_eq!(ctx["reconnectDelay"], "5");
    assert_eq!(ctx["keepAliveTmo"], "5");
    assert_eq!(ctx["fastIoFailTmo"], "-1");
    assert_eq!(
        ctx["volumePath"],
        format!("/storage-pool/metal-csi/{}.img", volume.volume_id)
    );

    let disks = plugin.sim.engine.disks();
    assert_eq!(disks.len(), 1);
    let disk = &disks[0];
    assert_eq!(disk.slot, volume.volume_id);
    assert_eq!(
        disk.comment.as_deref(),
        Some(format!("rds-csi:{name} pvc=apps/data").as_str())
    );
    assert!(
        !disk.mount_filesystem,
        "mount-filesystem=no on every volume"
    );
    assert!(!disk.export, "made closed to every host, until published");
    assert_eq!(disk.size, 3 << 29);
}

#[tokio::test]
async fn create_honours_storage_class_parameters() {
    let plugin = Plugin::start().await;
    let mut req = create(&pv_name(2), GIB);
    req.volume_capabilities = vec![mount("", Mode::SingleNodeWriter)];
    req.parameters = params(&[
        ("volumePath", "/storage-pool/fast"),
        ("nvmeAddress", "192.168.88.5"),
        ("nvmePort", "4421"),
        ("fsType", "xfs"),
        ("reconnectDelay", "2"),
        ("keepAliveTmo", "0"),
        ("fastIoFailTmo", "30"),
    ]);
    let volume = plugin
        .controller()
        .await
        .create_volume(req)
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let ctx = &volume.volume_context;
    assert_eq!(
        (ctx["nvmeAddress"].as_str(), ctx["nvmePort"].as_str()),
        ("192.168.88.5", "4421")
    );
    assert_eq!(ctx["fsType"], "xfs");
    assert_eq!(ctx["fastIoFailTmo"], "30");
    assert_eq!(ctx["keepAliveTmo"], "0");
    let disk = &plugin.sim.engine.disks()[0];
    assert_eq!(
        disk.file_path,
        format!("/storage-pool/fast/{}.img", volume.volume_id)
    );
    assert_eq!(disk.port, 4421);
}

#[tokio::test]
async fn create_rejects_bad_requests_and_changes_nothing() {
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let with = |f: &dyn Fn(&mut CreateVolumeRequest)| {
        let mut req = create(&pv_name(3), GIB);
        f(&mut req);
        req
    };
    let cases: Vec<(CreateVolumeRequest, &str)> = vec![
        (with(&|r| r.name.clear()), "volume name is required"),
        (
            with(&|r| r.volume_capabilities.clear()),
            "volume capabilities are required",
        ),
        (
            with(&|r| r.volume_capabilities = vec![mount("ext4", Mode::MultiNodeMultiWriter)]),
            "MULTI_NODE_MULTI_WRITER is not supported for filesystem volumes",
        ),
        (
            with(&|r| r.volume_capabilities = vec![mount("btrfs", Mode::SingleNodeWriter)]),
            "filesystem \"btrfs\" is not supported",
        ),
        (
            with(&|r| r.volume_capabilities = vec![VolumeCapability::default()]),
            "no access mode",
        ),
        (
            with(&|r| r.volume_content_source = Some(VolumeContentSource::default())),
            "names neither a snapshot nor a volume",
        ),
        (with(&|r| r.capacity_range = range(-1, 0)), "negative"),
        (with(&|r| r.capacity_range = range(2 * GIB, GIB)), "at most"),
        (
            with(&|r| r.mutable_parameters = params(&[("a", "b")])),
            "mutable parameters",
        ),
        (
            with(&|r| r.parameters = params(&[("volumPath", "/x")])),
            "unknown parameter \"volumPath\"",
        ),
        (
            with(&|r| r.parameters = params(&[("volumePath", "x")])),
            "invalid volumePath",
        ),
        (
            with(&|r| r.parameters = params(&[("nvmeAddress", "a,b")])),
            "invalid nvmeAddress",
        ),
        (
            with(&|r| r.parameters = params(&[("nvmePort", "0")])),
            "invalid nvmePort",
        ),
        (
            with(&|r| r.parameters = params(&[("fsType", "ntfs")])),
            "invalid fsType",
        ),
        (
            with(&|r| r.parameters = params(&[("ctrlLossTmo", "x")])),
            "invalid ctrlLossTmo",
        ),
        (
            with(&|r| r.parameters = params(&[("reconnectDelay", "0")])),
            "invalid reconnectDelay",
        ),
        (
            with(&|r| r.parameters = params(&[("keepAliveTmo", "-5")])),
            "invalid keepAliveTmo",
        ),
        (
            with(&|r| r.parameters = params(&[("fastIoFailTmo", "-3")])),
            "invalid fastIoFailTmo",
        ),
    ];
    for (req, expected) in cases {
        let status = c.create_volume(req.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{req:?}: {status:?}");
        assert!(
            status.message().contains(expected),
            "{expected}: {}",
            status.message()
        );
    }
    assert!(plugin.slots().is_empty() || plugin.slots() == ["storage-pool"]);
    assert!(plugin.sim.engine.disks().is_empty());
    assert!(plugin.sim.engine.files().is_empty());
}

#[tokio::test]
async fn create_is_idempotent_and_refuses_incompatible_repeats() {
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let name = pv_name(4);
    let first = c
        .create_volume(create(&name, 2 * GIB))
        .await
        .unwrap()
        .into_inner();
    let again = c
        .create_volume(create(&name, 2 * GIB))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    // A smaller request that the volume still satisfies: the same volume.
    let smaller = c
        .create_volume(create(&name, GIB))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(smaller.volume, first.volume);
    // Bigger: ALREADY_EXISTS.
    let status = c.create_volume(create(&name, 3 * GIB)).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    // A limit below the existing size: ALREADY_EXISTS.
    let mut capped = create(&name, GIB);
    capped.capacity_range = range(GIB, GIB + MIB);
    assert_eq!(
        c.create_volume(capped).await.unwrap_err().code(),
        Code::AlreadyExists
    );
    // Another volume path: ALREADY_EXISTS.
    let mut moved = create(&name, 2 * GIB);
    moved.parameters = params(&[("volumePath", "/storage-pool/fast")]);
    assert_eq!(
        c.create_volume(moved).await.unwrap_err().code(),
        Code::AlreadyExists
    );
    assert_eq!(plugin.sim.engine.disks().len(), 1);
}

#[tokio::test]
async fn sizes_are_rounded_up_and_ranges_honoured() {
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let maker = c.clone();
    let size = |r: CreateVolumeRequest| {
        let mut c = maker.clone();
        async move {
            c.create_volume(r)
                .await
                .map(|v| v.into_inner().volume.unwrap().capacity_bytes)
        }
    };
    assert_eq!(
        size(create(&pv_name(10), GIB + 1)).await.unwrap(),
        GIB + MIB
    );
    assert_eq!(
        size(create(&pv_name(11), 100 * MIB)).await.unwrap(),
        GIB,
        "the minimum"
    );
    let mut no_range = create(&pv_name(12), 0);
    no_range.capacity_range = None;
    assert_eq!(size(no_range).await.unwrap(), GIB, "the default");
    let mut small_limit = create(&pv_name(13), 100 * MIB);
    small_limit.capacity_range = range(100 * MIB, 300 * MIB);
    assert_eq!(
        size(small_limit).await.unwrap(),
        300 * MIB,
        "the limit wins over the minimum"
    );
    let mut impossible = create(&pv_name(14), MIB + 1);
    impossible.capacity_range = range(MIB + 1, MIB + 100);
    assert_eq!(size(impossible).await.unwrap_err().code(), Code::OutOfRange);
    let status = c
        .create_volume(create(&pv_name(15), 2 << 40))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
}

#[tokio::test]
async fn delete_removes_disk_and_image_and_is_idempotent() {
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let id = c
        .create_volume(create(&pv_name(20), GIB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap()
        .volume_id;
    let keep = c
        .create_volume(create(&pv_name(21), GIB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap()
        .volume_id;
    c.delete_volume(DeleteVolumeRequest {
        volume_id: id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(plugin.slots(), [keep]);
    assert_eq!(
        plugin.sim.engine.files().len(),
        1,
        "the image went with the disk"
    );
    for volume_id in [id, "pvc-unknown".into(), "not a slot!".into()] {
        c.delete_volume(DeleteVolumeRequest {
            volume_id,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let status = c
        .delete_volume(DeleteVolumeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn nothing_that_is_not_a_volume_of_ours_is_touched() {
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    // A file disk made by hand, and a file named like an image of ours.
    plugin.routeros(
        "/disk add type=file file-path=/storage-pool/metal-csi/vm.img file-size=1G slot=vm-disk",
    );
    std::fs::write(
        plugin
            .dir
            .path()
            .join("rds/storage-pool/metal-csi/manual.img"),
        b"keep",
    )
    .unwrap();
    for id in ["storage-pool", "vm-disk"] {
        let delete = DeleteVolumeRequest {
            volume_id: id.into(),
            ..Default::default()
        };
        let status = c.delete_volume(delete).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{id}: {status:?}");
        assert!(
            status.message().contains("not made by this driver"),
            "{}",
            status.message()
        );
        let expand = ControllerExpandVolumeRequest {
            volume_id: id.into(),
            capacity_range: range(10 * GIB, 0),
            ..Default::default()
        };
        assert_eq!(
            c.controller_expand_volume(expand).await.unwrap_err().code(),
            Code::FailedPrecondition
        );
    }
    // An ID of no disk and no shape of ours: nothing is looked for or removed.
    c.delete_volume(DeleteVolumeRequest {
        volume_id: "manual".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(plugin.slots(), ["vm-disk"]);
    assert_eq!(plugin.sim.engine.files().len(), 2);
    let listed = c
        .list_volumes(ListVolumesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.entries.is_empty(), "{listed:?}");
}

#[tokio::test]
async fn expand_grows_and_says_whether_the_node_must_follow() {
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let id = c
        .create_volume(create(&pv_name(30), GIB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap()
        .volume_id;
    let expand = |size: i64, cap: Option<VolumeCapability>| ControllerExpandVolumeRequest {
        volume_id: id.clone(),
        capacity_range: range(size, 0),
        volume_capability: cap,
        ..Default::default()
    };
    let r = c
        .controller_expand_volume(expand(2 * GIB, Some(rwo())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.capacity_bytes, r.node_expansion_required),
        (2 * GIB, true)
    );
    assert_eq!(plugin.sim.engine.disks()[0].size, 2 << 30);
    // Asking again, or for less, changes nothing and reports the size.
    let r = c
        .controller_expand_volume(expand(GIB, None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.capacity_bytes, r.node_expansion_required),
        (2 * GIB, true)
    );
    let r = c
        .controller_expand_volume(expand(3 * GIB + 1, Some(block(Mode::SingleNodeWriter))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.capacity_bytes, r.node_expansion_required),
        (3 * GIB + MIB, false)
    );

    let mut capped = expand(4 * GIB + 1, None);
    capped.capacity_range = range(4 * GIB + 1, 4 * GIB + 2);
    assert_eq!(
        c.controller_expand_volume(capped).await.unwrap_err().code(),
        Code::OutOfRange
    );
    let mut no_range = expand(GIB, None);
    no_range.capacity_range = None;
    assert_eq!(
        c.controller_expand_volume(no_range)
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    let mut no_id = expand(GIB, None);
    no_id.volume_id.clear();
    assert_eq!(
        c.controller_expand_volume(no_id).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let mut unknown = expand(GIB, None);
    unknown.volume_id = "pvc-00000000000000000000000000aa".into();
    assert_eq!(
        c.controller_expand_volume(unknown)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let status = c
        .controller_expand_volume(expand(100 << 40, None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
}

#[tokio::test]
async fn validate_volume_capabilities() {
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let id = c
        .create_volume(create(&pv_name(40), GIB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap()
        .volume_id;
    let validate = |caps: Vec<VolumeCapability>| ValidateVolumeCapabilitiesRequest {
        volume_id: id.clone(),
        volume_capabilities: caps,
        ..Default::default()
    };
    let ok = c
        .validate_volume_capabilities(validate(vec![rwo(), block(Mode::MultiNodeMultiWriter)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.confirmed.unwrap().volume_capabilities.len(), 2);
    let refused = c
        .validate_volume_capabilities(validate(vec![mount("ext4", Mode::MultiNodeReaderOnly)]))
        .await
        .unwrap()
        .into_inner();
    assert!(refused.confirmed.is_none());
    assert!(
        refused.message.contains("MULTI_NODE_READER_ONLY"),
        "{}",
        refused.message
    );
    let mut bad_params = validate(vec![rwo()]);
    bad_params.parameters = params(&[("fsType", "zfs")]);
    let refused = c
        .validate_volume_capabilities(bad_params)
        .await
        .unwrap()
        .into_inner();
    assert!(refused.confirmed.is_none() && refused.message.contains("fsType"));

    assert_eq!(
        c.validate_volume_capabilities(validate(vec![]))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    let mut no_id = validate(vec![rwo()]);
    no_id.volume_id.clear();
    assert_eq!(
        c.validate_volume_capabilities(no_id)
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    let mut unknown = validate(vec![rwo()]);
    unknown.volume_id = "pvc-nothere".into();
    assert_eq!(
        c.validate_volume_capabilities(unknown)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn list_volumes_pages_through_every_volume_once() {
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let mut made = HashSet::new();
    for n in 0..7 {
        let v = c
            .create_volume(create(&pv_name(50 + n), GIB))
            .await
            .unwrap()
            .into_inner()
            .volume
            .unwrap();
        made.insert(v.volume_id);
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = c
            .list_volumes(ListVolumesRequest {
                max_entries: 3,
                starting_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.entries.len() <= 3);
        for e in page.entries {
            let v = e.volume.unwrap();
            assert_eq!(v.capacity_bytes, GIB);
            seen.push(v.volume_id);
        }
        if page.next_token.is_empty() {
            break;
        }
        token = page.next_token;
        // The last volume of a page, deleted before the next page is asked
        // for, does not spoil the token.
        if pages == 1 {
            c.delete_volume(DeleteVolumeRequest {
                volume_id: seen.last().unwrap().clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
    }
    assert_eq!(pages, 3);
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no volume twice: {seen:?}");
    assert_eq!(unique, made);

    let all = c
        .list_volumes(ListVolumesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((all.entries.len(), all.next_token.as_str()), (6, ""));
    // A starting token the driver never gave out is ABORTED, as the spec
    // asks, even when it looks like a volume ID (csi-sanity sends
    // "invalid-token", which is a well-formed slot).
    let a_volume_id = seen[0].clone();
    for bad in ["not a token!", "invalid-token", a_volume_id.as_str()] {
        let status = c
            .list_volumes(ListVolumesRequest {
                max_entries: 0,
                starting_token: bad.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Aborted, "{bad:?}");
    }
    let status = c
        .list_volumes(ListVolumesRequest {
            max_entries: -1,
            starting_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn capacity_is_the_pools_free_space() {
    let plugin = Plugin::start_with(Options {
        pool_capacity: 100 << 30,
        ..Options::default()
    })
    .await;
    let mut c = plugin.controller().await;
    let reader = c.clone();
    let capacity = |parameters| {
        let mut c = reader.clone();
        async move {
            c.get_capacity(GetCapacityRequest {
                parameters,
                ..Default::default()
            })
            .await
        }
    };
    let before = capacity(params(&[])).await.unwrap().into_inner();
    assert_eq!(before.available_capacity, 100 * GIB);
    assert_eq!(before.maximum_volume_size, Some(100 * GIB));
    c.create_volume(create(&pv_name(60), 10 * GIB))
        .await
        .unwrap();
    let after = capacity(params(&[("volumePath", "/storage-pool/fast")]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.available_capacity, 90 * GIB);

    let unsupported = c
        .get_capacity(GetCapacityRequest {
            volume_capabilities: vec![mount("ext4", Mode::MultiNodeMultiWriter)],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unsupported.available_capacity, 0);
    let status = capacity(params(&[("volumePath", "/nvme9/k8s")]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let status = capacity(params(&[("nvmePort", "x")])).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn capabilities_and_get_volume() {
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let caps: HashSet<i32> = c
        .controller_get_capabilities(ControllerGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .capabilities
        .into_iter()
        .map(|cap| match cap.r#type.unwrap() {
            controller_service_capability::Type::Rpc(r) => r.r#type,
        })
        .collect();
    let expected: HashSet<i32> = [
        rpc::Type::CreateDeleteVolume,
        rpc::Type::ExpandVolume,
        rpc::Type::ListVolumes,
        rpc::Type::GetCapacity,
        rpc::Type::GetVolume,
        rpc::Type::SingleNodeMultiWriter,
        rpc::Type::PublishUnpublishVolume,
        rpc::Type::ListVolumesPublishedNodes,
        rpc::Type::CreateDeleteSnapshot,
        rpc::Type::ListSnapshots,
        rpc::Type::GetSnapshot,
        rpc::Type::CloneVolume,
    ]
    .into_iter()
    .map(|t| t as i32)
    .collect();
    assert_eq!(caps, expected);

    let id = c
        .create_volume(create(&pv_name(70), GIB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap()
        .volume_id;
    let got = c
        .controller_get_volume(ControllerGetVolumeRequest {
            volume_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.volume.unwrap().capacity_bytes, GIB);
    let status = c
        .controller_get_volume(ControllerGetVolumeRequest {
            volume_id: "pvc-none".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    // Implemented now (tests/conformance/attach.rs): an empty request is
    // refused for what it lacks.
    let status = c
        .controller_publish_volume(csi_proto::v1::ControllerPublishVolumeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn an_unreachable_rds_is_unavailable_not_a_failure() {
    let mut plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    plugin.sim.stop().await;
    let status = c
        .create_volume(create(&pv_name(80), GIB))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let status = c
        .delete_volume(DeleteVolumeRequest {
            volume_id: "pvc-00000000000000000000000000bb".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}
