//! Swapping the Go driver for this one: its volumes (slot `pvc-<uuid>`, NQN
//! `nqn.2000-02.com.mikrotik:<slot>`, image `<volumePath>/<slot>.img`) keep
//! working, and its StorageClasses are accepted.

use csi_proto::v1::{
    ControllerExpandVolumeRequest, ControllerGetVolumeRequest, DeleteVolumeRequest,
    ListVolumesRequest, ValidateVolumeCapabilitiesRequest,
};

use crate::harness::{GIB, Options, Plugin};
use crate::requests::{create, params, pv_name, range, rwo};

const GO_ID: &str = "pvc-5f7e1c2a-9b3d-4e8f-a1b2-c3d4e5f60718";

/// A plugin over an RDS that holds a volume the Go driver made, on a
/// RouterOS release that still took 40-character slots.
async fn with_go_volume() -> Plugin {
    let plugin = Plugin::start_with(Options {
        max_slot_len: 40,
        ..Options::default()
    })
    .await;
    plugin.routeros(&format!(
        "/disk add type=file file-path=/storage-pool/metal-csi/{GO_ID}.img file-size=10G slot={GO_ID} \
         nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:{GO_ID}"
    ));
    plugin
}

#[tokio::test]
async fn go_volumes_are_listed_validated_grown_and_deleted() {
    let plugin = with_go_volume().await;
    let mut c = plugin.controller().await;
    let listed = c
        .list_volumes(ListVolumesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = listed
        .entries
        .iter()
        .map(|e| e.volume.as_ref().unwrap().volume_id.clone())
        .collect();
    assert_eq!(ids, [GO_ID]);

    let got = c
        .controller_get_volume(ControllerGetVolumeRequest {
            volume_id: GO_ID.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.volume.unwrap().capacity_bytes, 10 * GIB);

    let confirmed = c
        .validate_volume_capabilities(ValidateVolumeCapabilitiesRequest {
            volume_id: GO_ID.into(),
            volume_capabilities: vec![rwo()],
            volume_context: params(&[
                ("rdsAddress", "10.42.68.1"),
                ("nvmeAddress", "10.42.68.1"),
                ("nvmePort", "4420"),
                ("nqn", &format!("nqn.2000-02.com.mikrotik:{GO_ID}")),
                (
                    "volumePath",
                    &format!("/storage-pool/metal-csi/{GO_ID}.img"),
                ),
                ("ctrlLossTmo", "-1"),
                ("reconnectDelay", "5"),
                ("keepAliveTmo", "0"),
                ("migrationTimeoutSeconds", "300"),
            ]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(confirmed.confirmed.is_some(), "{}", confirmed.message);

    let grown = c
        .controller_expand_volume(ControllerExpandVolumeRequest {
            volume_id: GO_ID.into(),
            capacity_range: range(20 * GIB, 0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grown.capacity_bytes, 20 * GIB);

    c.delete_volume(DeleteVolumeRequest {
        volume_id: GO_ID.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(plugin.sim.engine.disks().is_empty());
    assert!(plugin.sim.engine.files().is_empty(), "the image went too");
}

#[tokio::test]
async fn go_storage_classes_make_volumes() {
    let plugin = Plugin::start().await;
    let mut req = create(&pv_name(1), 5 * GIB);
    req.parameters = params(&[
        ("rdsAddress", "10.42.68.1"),
        ("nvmePort", "4420"),
        ("volumePath", "/storage-pool/metal-csi"),
        ("sshPort", "22"),
        ("nqnPrefix", "nqn.2000-02.com.mikrotik"),
        ("ctrlLossTmo", "-1"),
        ("reconnectDelay", "5"),
        ("keepAliveTmo", "0"),
        ("migrationTimeoutSeconds", "300"),
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
        ctx["nvmeAddress"], "10.42.68.1",
        "rdsAddress is the target when nvmeAddress is absent"
    );
    assert_eq!(ctx["ctrlLossTmo"], "-1");
    assert!(
        ctx["nqn"].starts_with("nqn.2024-01.io.srvlab.csi.rds:"),
        "nqnPrefix is not honoured"
    );
}
