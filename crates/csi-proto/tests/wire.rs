//! Wire encoding of every CSI message the driver sends or receives.
//!
//! Each test builds a message, and [`check`] asserts that prost encodes it to
//! bytes worked out by hand from the protobuf encoding rules, then decodes
//! those bytes back to the same message. A wrong field number or type in
//! `proto/csi.proto` changes the bytes and fails here, long before a Kubernetes
//! sidecar would misread a field.
//!
//! How the expected bytes are derived:
//! - a field starts with its tag, `field_number << 3 | wire_type`, as a varint;
//!   wire type 0 is a varint (integers, bools, enums), 2 is length-delimited
//!   (strings, messages, maps). So field 1 is `0x08` (varint) or `0x0a`
//!   (length-delimited), field 2 is `0x10` or `0x12`, field 3 `0x18`/`0x1a`,
//!   field 4 `0x20`/`0x22`, field 5 `0x28`/`0x2a`, field 6 `0x30`/`0x32`,
//!   field 8 `0x42`.
//! - varints are little-endian groups of 7 bits, the high bit set on all but
//!   the last: 100 is `0x64`, 128 is `0x80 0x01`, 2^20 (1 MiB) is
//!   `0x80 0x80 0x40`, 2^30 (1 GiB) is `0x80 0x80 0x80 0x80 0x04`, 2^31 (2 GiB)
//!   is `0x80 0x80 0x80 0x80 0x08`.
//! - a length-delimited field is tag, byte length (a varint), payload.
//! - proto3 leaves out scalars at their default (0, "", false) and unset
//!   messages; a present but empty message is just tag and length 0.
//! - a map is a repeated entry message with the key as field 1 and the value
//!   as field 2. Every map here has one entry, so the bytes have one order.
//! - prost writes fields in field-number order; a oneof takes the place of its
//!   lowest number.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::fmt::Debug;

use csi_proto::v1::{
    CapacityRange, ControllerExpandVolumeRequest, ControllerExpandVolumeResponse,
    ControllerGetCapabilitiesResponse, ControllerServiceCapability, CreateVolumeRequest,
    CreateVolumeResponse, DeleteVolumeRequest, GetCapacityRequest, GetCapacityResponse,
    GetPluginCapabilitiesResponse, GetPluginInfoResponse, ListVolumesRequest, ListVolumesResponse,
    NodeExpandVolumeRequest, NodeExpandVolumeResponse, NodeGetCapabilitiesResponse,
    NodeGetInfoResponse, NodeGetVolumeStatsResponse, NodePublishVolumeRequest,
    NodeServiceCapability, NodeStageVolumeRequest, NodeUnpublishVolumeRequest,
    NodeUnstageVolumeRequest, PluginCapability, ProbeResponse, ValidateVolumeCapabilitiesRequest,
    ValidateVolumeCapabilitiesResponse, Volume, VolumeCapability, VolumeCondition, VolumeUsage,
    controller_service_capability, list_volumes_response, node_service_capability,
    plugin_capability, validate_volume_capabilities_response, volume_capability, volume_usage,
};
use prost::Message;
use volume_capability::access_mode::Mode;

/// Asserts that `msg` encodes to exactly `expected` and decodes back to itself.
fn check<M>(msg: M, expected: &[u8])
where
    M: Message + Default + PartialEq + Debug,
{
    let encoded = msg.encode_to_vec();
    assert_eq!(hex(&encoded), hex(expected), "encoding of {msg:?}");
    let decoded = M::decode(expected).expect("the expected bytes decode");
    assert_eq!(decoded, msg);
}

/// Bytes as spaced hex, so a failing assertion shows where the bytes differ.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A map with a single entry.
fn one(key: &str, value: &str) -> HashMap<String, String> {
    HashMap::from([(key.to_owned(), value.to_owned())])
}

const GIB: i64 = 1 << 30;
const MIB: i64 = 1 << 20;

/// A filesystem capability: `mount { fs_type, mount_flags }` with an access mode.
fn mount(
    fs_type: &str,
    flags: &[&str],
    mode: volume_capability::access_mode::Mode,
) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(volume_capability::AccessType::Mount(
            volume_capability::MountVolume {
                fs_type: fs_type.to_owned(),
                mount_flags: flags.iter().map(|f| (*f).to_owned()).collect(),
                volume_mount_group: String::new(),
            },
        )),
        access_mode: Some(volume_capability::AccessMode { mode: mode as i32 }),
    }
}

/// A raw block capability with an access mode.
fn block(mode: volume_capability::access_mode::Mode) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(volume_capability::AccessType::Block(
            volume_capability::BlockVolume {},
        )),
        access_mode: Some(volume_capability::AccessMode { mode: mode as i32 }),
    }
}

// The block SINGLE_NODE_WRITER capability, 6 bytes, appears in many messages:
//   0x0a, 0x00,             // 1: block, empty message
//   0x1a, 0x02, 0x08, 0x01, // 3: access_mode { 1: mode = SINGLE_NODE_WRITER (1) }

// ---------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------

#[test]
fn get_plugin_info_response() {
    check(
        GetPluginInfoResponse {
            name: "rds.csi".into(),
            vendor_version: "0.1.0".into(),
            manifest: one("git", "abc"),
        },
        &[
            0x0a, 0x07, b'r', b'd', b's', b'.', b'c', b's', b'i', // 1: name, len 7
            0x12, 0x05, b'0', b'.', b'1', b'.', b'0', // 2: vendor_version, len 5
            0x1a, 0x0a, // 3: manifest entry, len 10
            0x0a, 0x03, b'g', b'i', b't', //   1: key, len 3
            0x12, 0x03, b'a', b'b', b'c', //   2: value, len 3
        ],
    );
}

#[test]
fn get_plugin_capabilities_response() {
    use plugin_capability::{Service, Type, VolumeExpansion, service, volume_expansion};
    check(
        GetPluginCapabilitiesResponse {
            capabilities: vec![
                PluginCapability {
                    r#type: Some(Type::Service(Service {
                        r#type: service::Type::ControllerService as i32,
                    })),
                },
                PluginCapability {
                    r#type: Some(Type::VolumeExpansion(VolumeExpansion {
                        r#type: volume_expansion::Type::Online as i32,
                    })),
                },
            ],
        },
        &[
            0x0a, 0x04, // 1: capabilities[0], len 4
            0x0a, 0x02, //   1: service, len 2
            0x08, 0x01, //     1: type = CONTROLLER_SERVICE (1)
            0x0a, 0x04, // 1: capabilities[1], len 4
            0x12, 0x02, //   2: volume_expansion, len 2
            0x08, 0x01, //     1: type = ONLINE (1)
        ],
    );
}

#[test]
fn probe_response_ready_is_a_bool_wrapper() {
    // google.protobuf.BoolValue is a message { bool value = 1 }, so "not set",
    // "false" and "true" are three different encodings.
    check(ProbeResponse { ready: None }, &[]);
    check(
        ProbeResponse { ready: Some(false) },
        &[
            0x0a, 0x00, // 1: ready, present but empty: value false is left out
        ],
    );
    check(
        ProbeResponse { ready: Some(true) },
        &[
            0x0a, 0x02, // 1: ready, len 2
            0x08, 0x01, //   1: value = true
        ],
    );
}

// ---------------------------------------------------------------------------
// Controller
// ---------------------------------------------------------------------------

#[test]
fn create_volume_request() {
    check(
        CreateVolumeRequest {
            name: "pvc".into(),
            capacity_range: Some(CapacityRange {
                required_bytes: GIB,
                limit_bytes: 2 * GIB,
            }),
            volume_capabilities: vec![
                mount("ext4", &["noatime"], Mode::SingleNodeWriter),
                block(Mode::SingleNodeSingleWriter),
            ],
            parameters: one("pool", "nvme1"),
            secrets: one("token", "t0p"),
            volume_content_source: None,
            accessibility_requirements: None,
            mutable_parameters: one("qos", "gold"),
        },
        &[
            0x0a, 0x03, b'p', b'v', b'c', // 1: name, len 3
            0x12, 0x0c, // 2: capacity_range, len 12
            0x08, 0x80, 0x80, 0x80, 0x80, 0x04, //   1: required_bytes = 2^30
            0x10, 0x80, 0x80, 0x80, 0x80, 0x08, //   2: limit_bytes = 2^31
            0x1a, 0x15, // 3: volume_capabilities[0], len 21
            0x12, 0x0f, //   2: mount, len 15
            0x0a, 0x04, b'e', b'x', b't', b'4', //     1: fs_type, len 4
            0x12, 0x07, b'n', b'o', b'a', b't', b'i', b'm',
            b'e', //     2: mount_flags[0], len 7
            0x1a, 0x02, //   3: access_mode, len 2
            0x08, 0x01, //     1: mode = SINGLE_NODE_WRITER (1)
            0x1a, 0x06, // 3: volume_capabilities[1], len 6
            0x0a, 0x00, //   1: block, empty
            0x1a, 0x02, //   3: access_mode, len 2
            0x08, 0x06, //     1: mode = SINGLE_NODE_SINGLE_WRITER (6)
            0x22, 0x0d, // 4: parameters entry, len 13
            0x0a, 0x04, b'p', b'o', b'o', b'l', //   1: key, len 4
            0x12, 0x05, b'n', b'v', b'm', b'e', b'1', //   2: value, len 5
            0x2a, 0x0c, // 5: secrets entry, len 12
            0x0a, 0x05, b't', b'o', b'k', b'e', b'n', //   1: key, len 5
            0x12, 0x03, b't', b'0', b'p', //   2: value, len 3
            0x42, 0x0b, // 8: mutable_parameters entry, len 11
            0x0a, 0x03, b'q', b'o', b's', //   1: key, len 3
            0x12, 0x04, b'g', b'o', b'l', b'd', //   2: value, len 4
        ],
    );
}

#[test]
fn create_volume_response() {
    check(
        CreateVolumeResponse {
            volume: Some(Volume {
                capacity_bytes: GIB,
                volume_id: "pvc-1".into(),
                volume_context: one("nqn", "n1"),
                content_source: None,
                accessible_topology: vec![],
            }),
        },
        &[
            0x0a, 0x18, // 1: volume, len 24
            0x08, 0x80, 0x80, 0x80, 0x80, 0x04, //   1: capacity_bytes = 2^30
            0x12, 0x05, b'p', b'v', b'c', b'-', b'1', //   2: volume_id, len 5
            0x1a, 0x09, //   3: volume_context entry, len 9
            0x0a, 0x03, b'n', b'q', b'n', //     1: key, len 3
            0x12, 0x02, b'n', b'1', //     2: value, len 2
        ],
    );
}

#[test]
fn delete_volume_request() {
    check(
        DeleteVolumeRequest {
            volume_id: "pvc-1".into(),
            secrets: one("token", "t0p"),
        },
        &[
            0x0a, 0x05, b'p', b'v', b'c', b'-', b'1', // 1: volume_id, len 5
            0x12, 0x0c, // 2: secrets entry, len 12
            0x0a, 0x05, b't', b'o', b'k', b'e', b'n', //   1: key, len 5
            0x12, 0x03, b't', b'0', b'p', //   2: value, len 3
        ],
    );
}

#[test]
fn controller_expand_volume() {
    check(
        ControllerExpandVolumeRequest {
            volume_id: "pvc-1".into(),
            capacity_range: Some(CapacityRange {
                required_bytes: 2 * GIB,
                limit_bytes: 0,
            }),
            secrets: HashMap::new(),
            volume_capability: Some(block(Mode::SingleNodeWriter)),
        },
        &[
            0x0a, 0x05, b'p', b'v', b'c', b'-', b'1', // 1: volume_id, len 5
            0x12, 0x06, // 2: capacity_range, len 6
            0x08, 0x80, 0x80, 0x80, 0x80, 0x08, //   1: required_bytes = 2^31
            0x22, 0x06, // 4: volume_capability, len 6
            0x0a, 0x00, //   1: block, empty
            0x1a, 0x02, 0x08, 0x01, //   3: access_mode { mode = SINGLE_NODE_WRITER }
        ],
    );
    check(
        ControllerExpandVolumeResponse {
            capacity_bytes: 2 * GIB,
            node_expansion_required: true,
        },
        &[
            0x08, 0x80, 0x80, 0x80, 0x80, 0x08, // 1: capacity_bytes = 2^31
            0x10, 0x01, // 2: node_expansion_required = true
        ],
    );
}

#[test]
fn validate_volume_capabilities() {
    check(
        ValidateVolumeCapabilitiesRequest {
            volume_id: "pvc-1".into(),
            volume_context: one("nqn", "n1"),
            volume_capabilities: vec![block(Mode::SingleNodeWriter)],
            ..Default::default()
        },
        &[
            0x0a, 0x05, b'p', b'v', b'c', b'-', b'1', // 1: volume_id, len 5
            0x12, 0x09, // 2: volume_context entry, len 9 (before the capabilities)
            0x0a, 0x03, b'n', b'q', b'n', //   1: key, len 3
            0x12, 0x02, b'n', b'1', //   2: value, len 2
            0x1a, 0x06, // 3: volume_capabilities[0], len 6
            0x0a, 0x00, //   1: block, empty
            0x1a, 0x02, 0x08, 0x01, //   3: access_mode { mode = SINGLE_NODE_WRITER }
        ],
    );
    check(
        ValidateVolumeCapabilitiesResponse {
            confirmed: Some(validate_volume_capabilities_response::Confirmed {
                volume_capabilities: vec![block(Mode::SingleNodeWriter)],
                ..Default::default()
            }),
            message: String::new(),
        },
        &[
            0x0a, 0x08, // 1: confirmed, len 8
            0x12, 0x06, //   2: volume_capabilities[0], len 6
            0x0a, 0x00, //     1: block, empty
            0x1a, 0x02, 0x08, 0x01, //     3: access_mode { mode = SINGLE_NODE_WRITER }
        ],
    );
    check(
        ValidateVolumeCapabilitiesResponse {
            confirmed: None,
            message: "no".into(),
        },
        &[
            0x12, 0x02, b'n', b'o', // 2: message, len 2
        ],
    );
}

#[test]
fn list_volumes() {
    check(
        ListVolumesRequest {
            max_entries: 100,
            starting_token: "5".into(),
        },
        &[
            0x08, 0x64, // 1: max_entries = 100
            0x12, 0x01, b'5', // 2: starting_token, len 1
        ],
    );
    check(
        ListVolumesResponse {
            entries: vec![list_volumes_response::Entry {
                volume: Some(Volume {
                    capacity_bytes: MIB,
                    volume_id: "pvc-1".into(),
                    ..Default::default()
                }),
                status: None,
            }],
            next_token: "1".into(),
        },
        &[
            0x0a, 0x0d, // 1: entries[0], len 13
            0x0a, 0x0b, //   1: volume, len 11
            0x08, 0x80, 0x80, 0x40, //     1: capacity_bytes = 2^20
            0x12, 0x05, b'p', b'v', b'c', b'-', b'1', //     2: volume_id, len 5
            0x12, 0x01, b'1', // 2: next_token, len 1
        ],
    );
}

#[test]
fn get_capacity() {
    check(
        GetCapacityRequest {
            volume_capabilities: vec![block(Mode::SingleNodeWriter)],
            parameters: one("pool", "nvme1"),
            accessible_topology: None,
        },
        &[
            0x0a, 0x06, // 1: volume_capabilities[0], len 6
            0x0a, 0x00, //   1: block, empty
            0x1a, 0x02, 0x08, 0x01, //   3: access_mode { mode = SINGLE_NODE_WRITER }
            0x12, 0x0d, // 2: parameters entry, len 13
            0x0a, 0x04, b'p', b'o', b'o', b'l', //   1: key, len 4
            0x12, 0x05, b'n', b'v', b'm', b'e', b'1', //   2: value, len 5
        ],
    );
    check(
        GetCapacityResponse {
            available_capacity: 10 * GIB,
            maximum_volume_size: Some(GIB),
            // An Int64Value wrapper: zero is still sent, as an empty message.
            minimum_volume_size: Some(0),
        },
        &[
            0x08, 0x80, 0x80, 0x80, 0x80, 0x28, // 1: available_capacity = 2^33 + 2^31
            0x12, 0x06, // 2: maximum_volume_size, len 6
            0x08, 0x80, 0x80, 0x80, 0x80, 0x04, //   1: value = 2^30
            0x1a, 0x00, // 3: minimum_volume_size, present, value 0 left out
        ],
    );
}

#[test]
fn controller_get_capabilities_response() {
    use controller_service_capability::{Rpc, Type, rpc};
    let cap = |t: rpc::Type| ControllerServiceCapability {
        r#type: Some(Type::Rpc(Rpc { r#type: t as i32 })),
    };
    check(
        ControllerGetCapabilitiesResponse {
            capabilities: vec![
                cap(rpc::Type::CreateDeleteVolume),
                cap(rpc::Type::ExpandVolume),
            ],
        },
        &[
            0x0a, 0x04, // 1: capabilities[0], len 4
            0x0a, 0x02, //   1: rpc, len 2
            0x08, 0x01, //     1: type = CREATE_DELETE_VOLUME (1)
            0x0a, 0x04, // 1: capabilities[1], len 4
            0x0a, 0x02, //   1: rpc, len 2
            0x08, 0x09, //     1: type = EXPAND_VOLUME (9)
        ],
    );
}

// ---------------------------------------------------------------------------
// Node
// ---------------------------------------------------------------------------

#[test]
fn node_stage_volume_request() {
    check(
        NodeStageVolumeRequest {
            volume_id: "pvc-1".into(),
            publish_context: HashMap::new(),
            staging_target_path: "/stage".into(),
            volume_capability: Some(mount("ext4", &[], Mode::SingleNodeWriter)),
            secrets: HashMap::new(),
            volume_context: one("nqn", "n1"),
        },
        &[
            0x0a, 0x05, b'p', b'v', b'c', b'-', b'1', // 1: volume_id, len 5
            0x1a, 0x06, b'/', b's', b't', b'a', b'g', b'e', // 3: staging_target_path, len 6
            0x22, 0x0c, // 4: volume_capability, len 12
            0x12, 0x06, //   2: mount, len 6
            0x0a, 0x04, b'e', b'x', b't', b'4', //     1: fs_type, len 4
            0x1a, 0x02, 0x08, 0x01, //   3: access_mode { mode = SINGLE_NODE_WRITER }
            0x32, 0x09, // 6: volume_context entry, len 9
            0x0a, 0x03, b'n', b'q', b'n', //   1: key, len 3
            0x12, 0x02, b'n', b'1', //   2: value, len 2
        ],
    );
}

#[test]
fn node_unstage_volume_request() {
    check(
        NodeUnstageVolumeRequest {
            volume_id: "pvc-1".into(),
            staging_target_path: "/stage".into(),
        },
        &[
            0x0a, 0x05, b'p', b'v', b'c', b'-', b'1', // 1: volume_id, len 5
            0x12, 0x06, b'/', b's', b't', b'a', b'g', b'e', // 2: staging_target_path, len 6
        ],
    );
}

#[test]
fn node_publish_volume_request() {
    check(
        NodePublishVolumeRequest {
            volume_id: "pvc-1".into(),
            staging_target_path: "/stage".into(),
            target_path: "/target".into(),
            volume_capability: Some(block(Mode::SingleNodeWriter)),
            readonly: true,
            ..Default::default()
        },
        &[
            0x0a, 0x05, b'p', b'v', b'c', b'-', b'1', // 1: volume_id, len 5
            0x1a, 0x06, b'/', b's', b't', b'a', b'g', b'e', // 3: staging_target_path, len 6
            0x22, 0x07, b'/', b't', b'a', b'r', b'g', b'e', b't', // 4: target_path, len 7
            0x2a, 0x06, // 5: volume_capability, len 6
            0x0a, 0x00, //   1: block, empty
            0x1a, 0x02, 0x08, 0x01, //   3: access_mode { mode = SINGLE_NODE_WRITER }
            0x30, 0x01, // 6: readonly = true
        ],
    );
}

#[test]
fn node_unpublish_volume_request() {
    check(
        NodeUnpublishVolumeRequest {
            volume_id: "pvc-1".into(),
            target_path: "/target".into(),
        },
        &[
            0x0a, 0x05, b'p', b'v', b'c', b'-', b'1', // 1: volume_id, len 5
            0x12, 0x07, b'/', b't', b'a', b'r', b'g', b'e', b't', // 2: target_path, len 7
        ],
    );
}

#[test]
fn node_get_volume_stats_response() {
    check(
        NodeGetVolumeStatsResponse {
            usage: vec![
                VolumeUsage {
                    available: 3,
                    total: 10,
                    used: 7,
                    unit: volume_usage::Unit::Bytes as i32,
                },
                VolumeUsage {
                    available: 90,
                    total: 100,
                    used: 10,
                    unit: volume_usage::Unit::Inodes as i32,
                },
            ],
            volume_condition: Some(VolumeCondition {
                abnormal: true,
                message: "io".into(),
            }),
        },
        &[
            0x0a, 0x08, // 1: usage[0], len 8
            0x08, 0x03, //   1: available = 3
            0x10, 0x0a, //   2: total = 10
            0x18, 0x07, //   3: used = 7
            0x20, 0x01, //   4: unit = BYTES (1)
            0x0a, 0x08, // 1: usage[1], len 8
            0x08, 0x5a, //   1: available = 90
            0x10, 0x64, //   2: total = 100
            0x18, 0x0a, //   3: used = 10
            0x20, 0x02, //   4: unit = INODES (2)
            0x12, 0x06, // 2: volume_condition, len 6
            0x08, 0x01, //   1: abnormal = true
            0x12, 0x02, b'i', b'o', //   2: message, len 2
        ],
    );
}

#[test]
fn node_expand_volume() {
    check(
        NodeExpandVolumeRequest {
            volume_id: "pvc-1".into(),
            volume_path: "/target".into(),
            capacity_range: Some(CapacityRange {
                required_bytes: 2 * GIB,
                limit_bytes: 0,
            }),
            staging_target_path: "/stage".into(),
            volume_capability: Some(block(Mode::SingleNodeWriter)),
            secrets: one("token", "t0p"),
        },
        &[
            0x0a, 0x05, b'p', b'v', b'c', b'-', b'1', // 1: volume_id, len 5
            0x12, 0x07, b'/', b't', b'a', b'r', b'g', b'e', b't', // 2: volume_path, len 7
            0x1a, 0x06, // 3: capacity_range, len 6
            0x08, 0x80, 0x80, 0x80, 0x80, 0x08, //   1: required_bytes = 2^31
            0x22, 0x06, b'/', b's', b't', b'a', b'g', b'e', // 4: staging_target_path, len 6
            0x2a, 0x06, // 5: volume_capability, len 6
            0x0a, 0x00, //   1: block, empty
            0x1a, 0x02, 0x08, 0x01, //   3: access_mode { mode = SINGLE_NODE_WRITER }
            0x32, 0x0c, // 6: secrets entry, len 12
            0x0a, 0x05, b't', b'o', b'k', b'e', b'n', //   1: key, len 5
            0x12, 0x03, b't', b'0', b'p', //   2: value, len 3
        ],
    );
    check(
        NodeExpandVolumeResponse {
            capacity_bytes: 2 * GIB,
        },
        &[
            0x08, 0x80, 0x80, 0x80, 0x80, 0x08, // 1: capacity_bytes = 2^31
        ],
    );
}

#[test]
fn node_get_info_response() {
    check(
        NodeGetInfoResponse {
            node_id: "node-a".into(),
            max_volumes_per_node: 128,
            accessible_topology: None,
        },
        &[
            0x0a, 0x06, b'n', b'o', b'd', b'e', b'-', b'a', // 1: node_id, len 6
            0x10, 0x80, 0x01, // 2: max_volumes_per_node = 128, a two-byte varint
        ],
    );
}

#[test]
fn node_get_capabilities_response() {
    use node_service_capability::{Rpc, Type, rpc};
    let cap = |t: rpc::Type| NodeServiceCapability {
        r#type: Some(Type::Rpc(Rpc { r#type: t as i32 })),
    };
    check(
        NodeGetCapabilitiesResponse {
            capabilities: vec![
                cap(rpc::Type::StageUnstageVolume),
                cap(rpc::Type::GetVolumeStats),
                cap(rpc::Type::ExpandVolume),
            ],
        },
        &[
            0x0a, 0x04, // 1: capabilities[0], len 4
            0x0a, 0x02, //   1: rpc, len 2
            0x08, 0x01, //     1: type = STAGE_UNSTAGE_VOLUME (1)
            0x0a, 0x04, // 1: capabilities[1], len 4
            0x0a, 0x02, //   1: rpc, len 2
            0x08, 0x02, //     1: type = GET_VOLUME_STATS (2)
            0x0a, 0x04, // 1: capabilities[2], len 4
            0x0a, 0x02, //   1: rpc, len 2
            0x08, 0x03, //     1: type = EXPAND_VOLUME (3)
        ],
    );
}

// ---------------------------------------------------------------------------
// Enum values the driver relies on, beyond those encoded above.
// ---------------------------------------------------------------------------

#[test]
fn enum_values_match_the_spec() {
    use controller_service_capability::rpc::Type as Ctrl;
    use node_service_capability::rpc::Type as Node;
    use plugin_capability::service::Type as Svc;
    use plugin_capability::volume_expansion::Type as Expansion;

    let modes = [
        (Mode::Unknown, 0),
        (Mode::SingleNodeWriter, 1),
        (Mode::SingleNodeReaderOnly, 2),
        (Mode::MultiNodeReaderOnly, 3),
        (Mode::MultiNodeSingleWriter, 4),
        (Mode::MultiNodeMultiWriter, 5),
        (Mode::SingleNodeSingleWriter, 6),
        (Mode::SingleNodeMultiWriter, 7),
    ];
    for (mode, value) in modes {
        assert_eq!(mode as i32, value, "{mode:?}");
    }

    let controller = [
        (Ctrl::CreateDeleteVolume, 1),
        (Ctrl::PublishUnpublishVolume, 2),
        (Ctrl::ListVolumes, 3),
        (Ctrl::GetCapacity, 4),
        (Ctrl::CreateDeleteSnapshot, 5),
        (Ctrl::ListSnapshots, 6),
        (Ctrl::CloneVolume, 7),
        (Ctrl::PublishReadonly, 8),
        (Ctrl::ExpandVolume, 9),
        (Ctrl::ListVolumesPublishedNodes, 10),
        (Ctrl::VolumeCondition, 11),
        (Ctrl::GetVolume, 12),
        (Ctrl::SingleNodeMultiWriter, 13),
        (Ctrl::ModifyVolume, 14),
        (Ctrl::GetSnapshot, 15),
    ];
    for (cap, value) in controller {
        assert_eq!(cap as i32, value, "{cap:?}");
    }

    let node = [
        (Node::StageUnstageVolume, 1),
        (Node::GetVolumeStats, 2),
        (Node::ExpandVolume, 3),
        (Node::VolumeCondition, 4),
        (Node::SingleNodeMultiWriter, 5),
        (Node::VolumeMountGroup, 6),
    ];
    for (cap, value) in node {
        assert_eq!(cap as i32, value, "{cap:?}");
    }

    assert_eq!(Svc::ControllerService as i32, 1);
    assert_eq!(Svc::VolumeAccessibilityConstraints as i32, 2);
    assert_eq!(Svc::GroupControllerService as i32, 3);
    assert_eq!(Svc::SnapshotMetadataService as i32, 4);
    assert_eq!(Expansion::Online as i32, 1);
    assert_eq!(Expansion::Offline as i32, 2);
}
