//! The Node service's answers as kubelet and csi-sanity see them: gRPC codes
//! for the CSI spec's error cases, and the order of the argument checks.
//! The service runs over the node crate's in-memory fakes, so these need no
//! root, no kernel NVMe/TCP and no socket, and run on tokio's paused clock.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use csi_driver::node::NodeService;
use csi_proto::v1::node_server::Node as _;
use csi_proto::v1::volume_capability::access_mode::Mode;
use csi_proto::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use csi_proto::v1::{
    CapacityRange, NodeExpandVolumeRequest, NodeGetVolumeStatsRequest, NodePublishVolumeRequest,
    NodeStageVolumeRequest, NodeUnstageVolumeRequest, VolumeCapability,
};
use node::testing::{self, FakeCrypt, FakeFilesystems, FakeNvme, FakeRecords, FakeWorld, PREFIX};
use tonic::{Code, Request, Response};

type Service = NodeService<FakeNvme, FakeFilesystems, FakeRecords, FakeCrypt>;

struct Rig {
    world: FakeWorld,
    node: Service,
}

impl Rig {
    fn new() -> Rig {
        let world = FakeWorld::new();
        let node = world
            .node(testing::config(), telemetry::NodeMetrics::default())
            .unwrap();
        Rig {
            world,
            node: NodeService::from_node(node),
        }
    }

    /// Exports volume `id` and returns its staging and target paths.
    fn volume(&self, id: &str) -> (PathBuf, PathBuf) {
        self.world.export(&format!("{PREFIX}{id}"), 1 << 30);
        let kubelet = Path::new("/var/lib/kubelet");
        (
            kubelet.join(format!("plugins/rds.csi.srvlab.io/{id}/globalmount")),
            kubelet.join(format!("pods/pod-a/volumes/kubernetes.io~csi/{id}/mount")),
        )
    }

    async fn stage(&self, id: &str, staging: &Path, cap: VolumeCapability) -> Result<(), Code> {
        self.node
            .node_stage_volume(Request::new(NodeStageVolumeRequest {
                volume_id: id.into(),
                staging_target_path: path(staging),
                volume_capability: Some(cap),
                volume_context: context(id),
                ..Default::default()
            }))
            .await
            .map_or_else(|s| Err(s.code()), ok)
    }

    async fn publish(
        &self,
        id: &str,
        staging: &Path,
        target: &Path,
        cap: VolumeCapability,
    ) -> Result<(), Code> {
        self.node
            .node_publish_volume(Request::new(NodePublishVolumeRequest {
                volume_id: id.into(),
                staging_target_path: path(staging),
                target_path: path(target),
                volume_capability: Some(cap),
                volume_context: context(id),
                ..Default::default()
            }))
            .await
            .map_or_else(|s| Err(s.code()), ok)
    }

    async fn stats(&self, id: &str, volume_path: &str) -> Result<(), Code> {
        self.node
            .node_get_volume_stats(Request::new(NodeGetVolumeStatsRequest {
                volume_id: id.into(),
                volume_path: volume_path.into(),
                staging_target_path: String::new(),
            }))
            .await
            .map_or_else(|s| Err(s.code()), ok)
    }

    async fn expand(
        &self,
        id: &str,
        volume_path: &str,
        range: Option<CapacityRange>,
    ) -> Result<(), Code> {
        self.node
            .node_expand_volume(Request::new(NodeExpandVolumeRequest {
                volume_id: id.into(),
                volume_path: volume_path.into(),
                capacity_range: range,
                ..Default::default()
            }))
            .await
            .map_or_else(|s| Err(s.code()), ok)
    }

    async fn unstage(&self, id: &str, staging: &Path) -> Result<(), Code> {
        self.node
            .node_unstage_volume(Request::new(NodeUnstageVolumeRequest {
                volume_id: id.into(),
                staging_target_path: path(staging),
            }))
            .await
            .map_or_else(|s| Err(s.code()), ok)
    }
}

/// A successful reply's outcome (failures keep only their code).
fn ok<T>(_: Response<T>) -> Result<(), Code> {
    Ok(())
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn context(id: &str) -> HashMap<String, String> {
    [
        ("nvmeAddress", "10.0.0.5".to_owned()),
        ("nqn", format!("{PREFIX}{id}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn mount(mode: Mode) -> VolumeCapability {
    VolumeCapability {
        access_mode: Some(AccessMode { mode: mode as i32 }),
        access_type: Some(AccessType::Mount(MountVolume::default())),
    }
}

/// csi-sanity's NodeGetVolumeStats cases: missing arguments are
/// INVALID_ARGUMENT; a volume that does not exist, or a path where it is not,
/// NOT_FOUND (also for a relative path, which csi-sanity sends).
#[tokio::test(start_paused = true)]
async fn stats_of_what_does_not_exist_is_not_found() {
    let rig = Rig::new();
    assert_eq!(rig.stats("", "some/path").await, Err(Code::InvalidArgument));
    assert_eq!(rig.stats("pvc-1", "").await, Err(Code::InvalidArgument));
    assert_eq!(
        rig.stats("pvc-none", "some/path").await,
        Err(Code::NotFound)
    );

    let (staging, target) = rig.volume("pvc-1");
    let cap = mount(Mode::SingleNodeWriter);
    rig.stage("pvc-1", &staging, cap.clone()).await.unwrap();
    rig.publish("pvc-1", &staging, &target, cap).await.unwrap();
    assert_eq!(rig.stats("pvc-1", &path(&target)).await, Ok(()));
    assert_eq!(rig.stats("pvc-1", "some/path").await, Err(Code::NotFound));
    assert_eq!(
        rig.stats("pvc-1", "/var/lib/kubelet/pods/nowhere").await,
        Err(Code::NotFound)
    );
    // Another volume asked about at this one's path.
    assert_eq!(
        rig.stats("pvc-none", &path(&target)).await,
        Err(Code::NotFound)
    );
}

/// csi-sanity's NodeExpandVolume cases, in the spec's order: missing
/// arguments and a malformed capacity range are INVALID_ARGUMENT; then a
/// volume that does not exist (with no capacity range, which the spec makes
/// optional) or a path where it is not is NOT_FOUND.
#[tokio::test(start_paused = true)]
async fn expanding_what_does_not_exist_is_not_found() {
    let rig = Rig::new();
    let range = |required_bytes| {
        Some(CapacityRange {
            required_bytes,
            limit_bytes: 0,
        })
    };
    assert_eq!(
        rig.expand("", "some/path", range(1 << 30)).await,
        Err(Code::InvalidArgument)
    );
    assert_eq!(
        rig.expand("pvc-1", "", range(1 << 30)).await,
        Err(Code::InvalidArgument)
    );
    assert_eq!(
        rig.expand("pvc-none", "some/path", range(-1)).await,
        Err(Code::InvalidArgument)
    );
    assert_eq!(
        rig.expand("pvc-none", "some/path", None).await,
        Err(Code::NotFound)
    );

    let (staging, target) = rig.volume("pvc-1");
    let cap = mount(Mode::SingleNodeWriter);
    rig.stage("pvc-1", &staging, cap.clone()).await.unwrap();
    rig.publish("pvc-1", &staging, &target, cap).await.unwrap();
    assert_eq!(
        rig.expand("pvc-1", "some/path", None).await,
        Err(Code::NotFound)
    );
    assert_eq!(rig.expand("pvc-1", &path(&target), None).await, Ok(()));
}

/// csi-sanity's case: a SINGLE_NODE_SINGLE_WRITER volume published at one
/// target path is FAILED_PRECONDITION at another; SINGLE_NODE_MULTI_WRITER
/// (which the node advertises) and SINGLE_NODE_WRITER may be published at
/// several.
#[tokio::test(start_paused = true)]
async fn a_single_writer_volume_published_elsewhere_is_a_failed_precondition() {
    let rig = Rig::new();
    let (staging, target) = rig.volume("pvc-1");
    let other = target.with_file_name("other_target");
    let single = mount(Mode::SingleNodeSingleWriter);
    rig.stage("pvc-1", &staging, single.clone()).await.unwrap();
    rig.publish("pvc-1", &staging, &target, single.clone())
        .await
        .unwrap();
    assert_eq!(
        rig.publish("pvc-1", &staging, &other, single).await,
        Err(Code::FailedPrecondition)
    );
    for mode in [Mode::SingleNodeMultiWriter, Mode::SingleNodeWriter] {
        rig.publish("pvc-1", &staging, &other, mount(mode))
            .await
            .unwrap();
    }
}

/// NodeUnstageVolume of a volume whose stage failed after its connect (no
/// staging record): the connection of the volume's NQN
/// (`<prefix><volume ID>`) is gone before it reports success.
#[tokio::test(start_paused = true)]
async fn unstage_without_a_record_disconnects_the_volume_s_nqn() {
    let rig = Rig::new();
    let (staging, _) = rig.volume("pvc-1");
    rig.world.fail("probe", 1);
    assert_eq!(
        rig.stage("pvc-1", &staging, mount(Mode::SingleNodeWriter))
            .await,
        Err(Code::Unavailable)
    );
    assert_eq!(rig.world.controllers(&format!("{PREFIX}pvc-1")), 1);
    assert_eq!(rig.unstage("pvc-1", &staging).await, Ok(()));
    assert!(rig.world.connected().is_empty());
}

/// An encrypted volume's key comes from the request's secrets under
/// `encryptionPassphrase`: none is INVALID_ARGUMENT, a wrong one
/// FAILED_PRECONDITION; both messages say which Secret parameters and key
/// to check, and neither holds a key.
#[tokio::test(start_paused = true)]
async fn encrypted_volumes_take_their_key_from_the_node_stage_secret() {
    let rig = Rig::new();
    let (staging, _) = rig.volume("pvc-1");
    let stage = |secrets: &[(&str, &str)]| {
        let mut volume_context = context("pvc-1");
        volume_context.insert("encryption".into(), "luks2".into());
        NodeStageVolumeRequest {
            volume_id: "pvc-1".into(),
            staging_target_path: path(&staging),
            volume_capability: Some(mount(Mode::SingleNodeWriter)),
            volume_context,
            secrets: secrets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    };
    let status = rig
        .node
        .node_stage_volume(Request::new(stage(&[("password", "hunter2")])))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("`encryptionPassphrase`")
            && status
                .message()
                .contains("csi.storage.k8s.io/node-stage-secret-name"),
        "{}",
        status.message()
    );
    assert!(!status.message().contains("hunter2"));

    let key = [("encryptionPassphrase", "the right one")];
    rig.node
        .node_stage_volume(Request::new(stage(&key)))
        .await
        .unwrap();
    assert_eq!(rig.unstage("pvc-1", &staging).await, Ok(()));

    let status = rig
        .node
        .node_stage_volume(Request::new(stage(&[(
            "encryptionPassphrase",
            "a wrong one",
        )])))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("does not open volume pvc-1"));
    assert!(!status.message().contains("wrong one") && !status.message().contains("right one"));
}

#[tokio::test(start_paused = true)]
async fn the_publish_context_decides_who_the_node_connects_as() {
    let rig = Rig::new();
    let (staging, _) = rig.volume("pvc-1");
    let stage = |publish_context: HashMap<String, String>| {
        let staging = path(&staging);
        async {
            rig.node
                .node_stage_volume(Request::new(NodeStageVolumeRequest {
                    volume_id: "pvc-1".into(),
                    staging_target_path: staging,
                    volume_capability: Some(mount(Mode::SingleNodeWriter)),
                    volume_context: context("pvc-1"),
                    publish_context,
                    ..Default::default()
                }))
                .await
                .map_or_else(|s| Err(s.code()), ok)
        }
    };
    let other = nvme_host::fence::identity_of_node_name(PREFIX, "node-2").unwrap();
    // Published to another node: FAILED_PRECONDITION.
    assert_eq!(
        stage(nvme_host::fence::to_publish_context(&other)).await,
        Err(Code::FailedPrecondition)
    );
    // A context that breaks the rules: INVALID_ARGUMENT.
    let mut forged = testing::published_here();
    forged.insert(nvme_host::fence::HOST_ID_KEY.into(), other.id);
    assert_eq!(stage(forged).await, Err(Code::InvalidArgument));
    assert!(rig.world.connected().is_empty());
    // Published here: connected as the identity published to.
    assert_eq!(stage(testing::published_here()).await, Ok(()));
    assert_eq!(
        rig.world.hosts_of(&format!("{PREFIX}pvc-1")),
        [testing::attach_identity().nqn]
    );
}

#[tokio::test(start_paused = true)]
async fn the_node_id_is_the_host_nqn_published_volumes_are_attached_as() {
    let rig = Rig::new();
    let info = rig
        .node
        .node_get_info(Request::new(csi_proto::v1::NodeGetInfoRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.node_id, format!("{PREFIX}node:node-1"));
    assert_eq!(info.node_id, testing::attach_identity().nqn);
}
