//! Where CSI meets RouterOS's limits: names at CSI's maximum of 128 bytes (any
//! UTF-8), sizes at the largest RouterOS holds, an image path that is taken
//! by a folder, disks made before digests were recorded, and what each
//! operation costs in SSH execs, as the simulator counts them.

use csi_driver::naming::slot_for;
use csi_proto::v1::{ControllerExpandVolumeRequest, DeleteVolumeRequest, ListVolumesRequest};
use tonic::Code;

use crate::harness::{GIB, Options, Plugin, eventually};
use crate::requests::{create, pv_name, range};

/// Creates `name` and returns its volume ID.
async fn create_id(plugin: &Plugin, name: &str) -> String {
    plugin
        .controller()
        .await
        .create_volume(create(name, GIB))
        .await
        .unwrap_or_else(|s| panic!("{name}: {s:?}"))
        .into_inner()
        .volume
        .unwrap()
        .volume_id
}

async fn delete(plugin: &Plugin, id: &str) {
    plugin
        .controller()
        .await
        .delete_volume(DeleteVolumeRequest {
            volume_id: id.into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn names_of_128_bytes_in_any_utf8_work_and_are_idempotent() {
    let plugin = Plugin::start().await;
    let ascii = "n".repeat(128);
    let unicode = "é".repeat(64);
    let mixed = format!("{}€;$\"[x] {}", "a".repeat(50), "ü".repeat(34));
    for name in [&ascii, &unicode, &mixed] {
        assert_eq!(name.len(), 128, "{name}");
        let first = create_id(&plugin, name).await;
        let again = create_id(&plugin, name).await;
        assert_eq!(first, again, "{name}");
        assert_eq!(first, slot_for(name).as_str());
        assert!(first.len() <= 32);
        let disk = plugin
            .sim
            .engine
            .disks()
            .into_iter()
            .find(|d| d.slot == first)
            .unwrap();
        // The comment holds the digest of the whole name, which fits.
        let comment = disk.comment.unwrap();
        assert!(comment.starts_with("rds-csi:sha256:"), "{comment}");
        assert!(comment.len() <= 128, "{comment}");
        assert!(disk.file_path.ends_with(&format!("/{first}.img")));
    }
    assert_eq!(plugin.slots().len(), 3);
    let listed = plugin
        .controller()
        .await
        .list_volumes(ListVolumesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.entries.len(), 3);
    for id in plugin.slots() {
        delete(&plugin, &id).await;
    }
    assert!(plugin.slots().is_empty());
    assert!(plugin.sim.engine.files().is_empty());
}

#[tokio::test]
async fn long_names_that_share_a_120_byte_prefix_are_two_volumes() {
    let plugin = Plugin::start().await;
    let prefix = "p".repeat(120);
    let a = create_id(&plugin, &format!("{prefix}-volume1")).await;
    let b = create_id(&plugin, &format!("{prefix}-volume2")).await;
    assert_ne!(a, b);
    assert_eq!(plugin.slots().len(), 2);
    // Each is recognised as itself only.
    assert_eq!(create_id(&plugin, &format!("{prefix}-volume1")).await, a);
    assert_eq!(plugin.slots().len(), 2);
}

#[tokio::test]
async fn a_disk_made_before_digests_is_still_recognised_and_deleted() {
    let plugin = Plugin::start().await;
    let name = "my-volume";
    let slot = slot_for(name);
    plugin.routeros(&format!(
        "/disk add type=file file-path=/storage-pool/metal-csi/{slot}.img file-size=1G slot={slot} \
         nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn=nqn.2024-01.io.srvlab.csi.rds:{slot} \
         mount-filesystem=no comment=\"rds-csi:{name} pvc=apps/data\""
    ));
    assert_eq!(create_id(&plugin, name).await, slot.as_str());
    let mut c = plugin.controller().await;
    let expanded = c
        .controller_expand_volume(ControllerExpandVolumeRequest {
            volume_id: slot.to_string(),
            capacity_range: range(2 * GIB, 0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(expanded.capacity_bytes, 2 * GIB);
    delete(&plugin, slot.as_str()).await;
    assert!(plugin.slots().is_empty());
    assert!(plugin.sim.engine.files().is_empty());
}

#[tokio::test]
async fn a_folder_at_the_image_path_is_left_and_named() {
    let plugin = Plugin::start().await;
    let name = pv_name(70);
    let slot = slot_for(&name);
    let folder = plugin
        .dir
        .path()
        .join(format!("rds/storage-pool/metal-csi/{slot}.img"));
    std::fs::create_dir(&folder).unwrap();
    let status = plugin
        .controller()
        .await
        .create_volume(create(&name, GIB))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status
            .message()
            .contains(&format!("/storage-pool/metal-csi/{slot}.img")),
        "{}",
        status.message()
    );
    assert!(folder.is_dir());
    assert!(plugin.slots().is_empty());
}

#[tokio::test]
async fn expansions_beyond_what_can_be_are_out_of_range_never_a_silent_success() {
    let plugin = Plugin::start().await;
    let id = create_id(&plugin, &pv_name(71)).await;
    let mut c = plugin.controller().await;
    let expand = |required: i64, limit: i64| ControllerExpandVolumeRequest {
        volume_id: id.clone(),
        capacity_range: range(required, limit),
        ..Default::default()
    };
    // Beyond the largest size RouterOS holds (and the CSI API reports).
    let largest = routeros::MAX_SIZE as i64;
    for required in [largest + 1, i64::MAX] {
        let status = c
            .controller_expand_volume(expand(required, 0))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::OutOfRange, "{required}: {status:?}");
    }
    // The largest itself is asked for, and the pool is too small for it.
    let status = c
        .controller_expand_volume(expand(largest, 0))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // Already larger than the limit: volumes never shrink, so it cannot be met.
    c.controller_expand_volume(expand(2 * GIB, 0))
        .await
        .unwrap();
    let status = c
        .controller_expand_volume(expand(GIB, 3 * GIB / 2))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert_eq!(plugin.sim.engine.disks()[0].size, 2 << 30);
}

#[tokio::test]
async fn create_expand_and_delete_each_cost_one_exec() {
    // No periodic checks of the RDS while counting.
    let plugin = Plugin::start_with(Options {
        check_interval: 3600,
        ..Options::default()
    })
    .await;
    eventually("the first check of the RDS", || async {
        (plugin.metric("rds_csi_rds_up").await == 1.0).then_some(())
    })
    .await;
    let execs = || plugin.sim.engine.execs_served();
    let mut c = plugin.controller().await;

    let before = execs();
    let id = create_id(&plugin, &pv_name(72)).await;
    assert_eq!(execs() - before, 1, "create");

    let before = execs();
    c.controller_expand_volume(ControllerExpandVolumeRequest {
        volume_id: id.clone(),
        capacity_range: range(2 * GIB, 0),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(execs() - before, 1, "expand");

    let before = execs();
    delete(&plugin, &id).await;
    assert_eq!(execs() - before, 1, "delete");
    assert!(plugin.slots().is_empty());

    let before = execs();
    delete(&plugin, &id).await;
    assert_eq!(execs() - before, 1, "delete of a volume already gone");

    // A volume named otherwise (a digest in its comment): one exec too.
    let id = create_id(&plugin, "static-volume").await;
    let before = execs();
    delete(&plugin, &id).await;
    assert_eq!(execs() - before, 1, "delete by digest");
}
