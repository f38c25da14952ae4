//! The node service's publish, unpublish and stats on this machine's kernel,
//! with loop devices standing in for NVMe namespaces (this kernel has no
//! NVMe/TCP; staging through the real initiator is proved in the guest, see
//! crates/e2e). The volume is "staged" by hand: a filesystem mounted at the
//! staging path and a staging record, exactly what NodeStageVolume leaves.
//!
//! The root tier: needs root and loop devices, so it runs only when selected
//! with `RDS_CSI_TEST_ROOT=1` (`scripts/test` does), and then fails without
//! them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::path::{Path, PathBuf};
use std::process::Command;

use csi_driver::node::{NodeConfig, NodeService};
use csi_proto::v1::node_server::Node;
use csi_proto::v1::volume_capability::access_mode::Mode;
use csi_proto::v1::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
use csi_proto::v1::{
    NodeGetCapabilitiesRequest, NodeGetInfoRequest, NodeGetVolumeStatsRequest,
    NodePublishVolumeRequest, NodeStageVolumeRequest, NodeUnpublishVolumeRequest,
    NodeUnstageVolumeRequest, VolumeCapability, volume_usage,
};
use node::FsType;
use node::record::{Records, StagingRecord};
use tonic::{Code, Request};

/// Whether the root tier was selected; if not, says so once, with the command.
fn selected() -> bool {
    test_support::tier::Tier::Root.selected("-p csi-driver --test node_on_loop_devices")
}

/// A loop device on a sparse image, and everything mounted for a test; all
/// undone on drop, also when an assertion fails.
struct Rig {
    dir: tempfile::TempDir,
    device: PathBuf,
    mounts: Vec<PathBuf>,
}

impl Rig {
    /// A rig with a loop device of `size` bytes; `None` (and a line saying
    /// so) when the root tier was not selected.
    fn new(size: u64) -> Option<Rig> {
        if !selected() {
            return None;
        }
        assert!(
            rustix::process::geteuid().is_root(),
            "these tests need root (loop devices, mount(2))"
        );
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(size)
            .unwrap();
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&image)
            .output()
            .expect("losetup (util-linux) is needed");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let device = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Some(Rig {
            dir,
            device,
            mounts: Vec::new(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A node service whose state lives in the rig's folder.
    fn node(&self) -> NodeService {
        NodeService::new(
            NodeConfig {
                node_id: "node-1".into(),
                max_volumes: 50,
                host_root: "/".into(),
                state_dir: self.path("state"),
                etc_nvme: self.path("etc-nvme"),
                default_fs: FsType::Ext4,
                timeouts: Default::default(),
                nqn_prefix: "nqn.2024-01.io.srvlab.csi.rds:".into(),
                health_interval: std::time::Duration::from_secs(10),
            },
            telemetry::NodeMetrics::default(),
        )
        .unwrap()
    }

    /// What NodeStageVolume would leave for a filesystem volume.
    async fn stage_fs(&mut self) -> StagingRecord {
        node_fs::format::mkfs(
            &self.device,
            node_fs::FsType::Ext4,
            std::time::Duration::from_secs(120),
        )
        .await
        .unwrap();
        let staging = self.path("plugins/vol-1/globalmount");
        std::fs::create_dir_all(&staging).unwrap();
        node_fs::mount::mount(&self.device, &staging, node_fs::FsType::Ext4, &[], false).unwrap();
        self.mounts.push(staging.clone());
        self.record(Some("ext4"), staging)
    }

    /// What NodeStageVolume would leave for a block volume.
    fn stage_block(&self) -> StagingRecord {
        self.record(None, self.path("plugins/volumeDevices/staging/vol-1"))
    }

    fn record(&self, fs: Option<&str>, staging: PathBuf) -> StagingRecord {
        let record = StagingRecord {
            volume_id: "vol-1".into(),
            nqn: "nqn.2024-01.io.srvlab.csi.rds:vol-1".into(),
            device: self.device.clone(),
            fs_type: fs.map(Into::into),
            staging_path: staging,
            read_only: false,
            connection: None,
            diskseq: None,
            mapping: None,
            host: None,
        };
        Records::new(self.path("state")).save(&record).unwrap();
        record
    }

    fn track(&mut self, path: &Path) {
        self.mounts.push(path.to_path_buf());
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for path in self.mounts.iter().rev() {
            while node_fs::mount::unmount(path).unwrap_or(false) {}
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
    }
}

fn mount_cap(mode: Mode) -> VolumeCapability {
    VolumeCapability {
        access_mode: Some(AccessMode { mode: mode as i32 }),
        access_type: Some(AccessType::Mount(MountVolume::default())),
    }
}

fn block_cap() -> VolumeCapability {
    VolumeCapability {
        access_mode: Some(AccessMode {
            mode: Mode::SingleNodeWriter as i32,
        }),
        access_type: Some(AccessType::Block(BlockVolume {})),
    }
}

fn publish(
    record: &StagingRecord,
    target: &Path,
    cap: VolumeCapability,
    readonly: bool,
) -> Request<NodePublishVolumeRequest> {
    Request::new(NodePublishVolumeRequest {
        volume_id: record.volume_id.clone(),
        staging_target_path: record.staging_path.display().to_string(),
        target_path: target.display().to_string(),
        volume_capability: Some(cap),
        readonly,
        ..Default::default()
    })
}

fn unpublish(target: &Path) -> Request<NodeUnpublishVolumeRequest> {
    Request::new(NodeUnpublishVolumeRequest {
        volume_id: "vol-1".into(),
        target_path: target.display().to_string(),
    })
}

fn mounted(path: &Path) -> Option<node_fs::mountinfo::MountInfo> {
    let mounts = node_fs::mountinfo::read(Path::new("/proc")).unwrap();
    node_fs::mountinfo::find(&mounts, path).cloned()
}

#[tokio::test]
async fn filesystem_publish_read_only_publish_and_unpublish() {
    let Some(mut rig) = Rig::new(256 << 20) else {
        return;
    };
    let record = rig.stage_fs().await;
    let node = rig.node();
    let target = rig.path("pods/a/volumes/vol-1/mount");
    rig.track(&target);

    node.node_publish_volume(publish(
        &record,
        &target,
        mount_cap(Mode::SingleNodeWriter),
        false,
    ))
    .await
    .unwrap();
    std::fs::write(target.join("hello"), b"world").unwrap();
    assert_eq!(
        std::fs::read(record.staging_path.join("hello")).unwrap(),
        b"world"
    );
    // Publishing again is a no-op.
    node.node_publish_volume(publish(
        &record,
        &target,
        mount_cap(Mode::SingleNodeWriter),
        false,
    ))
    .await
    .unwrap();
    // ...but not with another read-only setting.
    let status = node
        .node_publish_volume(publish(
            &record,
            &target,
            mount_cap(Mode::SingleNodeWriter),
            true,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);

    let ro_target = rig.path("pods/b/volumes/vol-1/mount");
    rig.track(&ro_target);
    node.node_publish_volume(publish(
        &record,
        &ro_target,
        mount_cap(Mode::SingleNodeWriter),
        true,
    ))
    .await
    .unwrap();
    assert_eq!(std::fs::read(ro_target.join("hello")).unwrap(), b"world");
    let err = std::fs::write(ro_target.join("nope"), b"x").unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::ROFS.raw_os_error()),
        "{err}"
    );
    assert!(mounted(&ro_target).unwrap().read_only());
    assert!(
        !mounted(&target).unwrap().read_only(),
        "the other publication stays writable"
    );

    for t in [&target, &ro_target] {
        node.node_unpublish_volume(unpublish(t)).await.unwrap();
        assert!(mounted(t).is_none());
        assert!(!t.exists(), "the target directory is removed");
        node.node_unpublish_volume(unpublish(t)).await.unwrap();
    }
    assert!(
        mounted(&record.staging_path).is_some(),
        "unpublish leaves the staging mount"
    );
}

#[tokio::test]
async fn a_single_writer_filesystem_volume_is_published_at_one_target_only() {
    let Some(mut rig) = Rig::new(64 << 20) else {
        return;
    };
    let record = rig.stage_fs().await;
    let node = rig.node();
    let (first, second) = (rig.path("pods/a/mount"), rig.path("pods/b/mount"));
    rig.track(&first);
    rig.track(&second);
    let publish_at = async |target: &Path, mode: Mode| {
        node.node_publish_volume(publish(&record, target, mount_cap(mode), false))
            .await
            .map(drop)
    };
    publish_at(&first, Mode::SingleNodeSingleWriter)
        .await
        .unwrap();
    // The kernel's mount table shows the bind of the staging filesystem.
    let status = publish_at(&second, Mode::SingleNodeSingleWriter)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(mounted(&second).is_none());
    publish_at(&second, Mode::SingleNodeMultiWriter)
        .await
        .unwrap();
}

#[tokio::test]
async fn block_publish_never_binds_a_device_the_nqn_does_not_own() {
    // The record names a device, but device names are reused after a
    // reconnect: only the device sysfs shows for the volume's NQN may be bound.
    // This machine has no NVMe/TCP, so there is none, and publish refuses
    // instead of binding the recorded (possibly foreign) device. The binding
    // itself is proved in the guest (crates/e2e).
    let Some(rig) = Rig::new(16 << 20) else {
        return;
    };
    let record = rig.stage_block();
    let node = rig.node();
    let target = rig.path("plugins/volumeDevices/publish/vol-1/pod-uid");
    let status = node
        .node_publish_volume(publish(&record, &target, block_cap(), false))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("connection"),
        "{}",
        status.message()
    );
    assert!(mounted(&target).is_none());
}

#[tokio::test]
async fn stats_report_usage_and_an_unhealthy_connection() {
    let Some(mut rig) = Rig::new(256 << 20) else {
        return;
    };
    let record = rig.stage_fs().await;
    let node = rig.node();
    std::fs::write(record.staging_path.join("data"), vec![7u8; 8 << 20]).unwrap();
    let stats = node
        .node_get_volume_stats(Request::new(NodeGetVolumeStatsRequest {
            volume_id: "vol-1".into(),
            volume_path: record.staging_path.display().to_string(),
            staging_target_path: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    let bytes = stats
        .usage
        .iter()
        .find(|u| u.unit == volume_usage::Unit::Bytes as i32)
        .unwrap();
    assert!(
        bytes.total > 200 << 20 && bytes.total <= 256 << 20,
        "{bytes:?}"
    );
    assert!(bytes.used >= 8 << 20, "{bytes:?}");
    let inodes = stats
        .usage
        .iter()
        .find(|u| u.unit == volume_usage::Unit::Inodes as i32)
        .unwrap();
    assert!(inodes.used >= 2 && inodes.total > inodes.used, "{inodes:?}");
    // There is no NVMe/TCP connection on this machine: the condition says so.
    let condition = stats.volume_condition.unwrap();
    assert!(condition.abnormal);
    assert!(
        condition.message.contains("not connected over NVMe/TCP"),
        "{}",
        condition.message
    );

    let status = node
        .node_get_volume_stats(Request::new(NodeGetVolumeStatsRequest {
            volume_id: "vol-1".into(),
            volume_path: rig.path("nowhere").display().to_string(),
            staging_target_path: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn unstage_without_a_connection_unmounts_and_then_reports_the_disconnect() {
    let Some(mut rig) = Rig::new(64 << 20) else {
        return;
    };
    let record = rig.stage_fs().await;
    let node = rig.node();
    let unstage = || {
        Request::new(NodeUnstageVolumeRequest {
            volume_id: "vol-1".into(),
            staging_target_path: record.staging_path.display().to_string(),
        })
    };
    // No controller of the NQN exists here, so the disconnect has nothing to
    // wait for: unstage completes and forgets the record.
    node.node_unstage_volume(unstage()).await.unwrap();
    assert!(mounted(&record.staging_path).is_none());
    assert!(
        Records::new(rig.path("state"))
            .load("vol-1", &record.staging_path)
            .unwrap()
            .is_none()
    );
    node.node_unstage_volume(unstage()).await.unwrap();
}

#[tokio::test]
async fn bad_requests_are_refused() {
    let Some(rig) = Rig::new(16 << 20) else {
        return;
    };
    let node = rig.node();
    let stage = |f: &dyn Fn(&mut NodeStageVolumeRequest)| {
        let mut r = NodeStageVolumeRequest {
            volume_id: "vol-1".into(),
            staging_target_path: rig.path("staging").display().to_string(),
            volume_capability: Some(mount_cap(Mode::SingleNodeWriter)),
            volume_context: [
                ("nvmeAddress", "127.0.0.1"),
                ("nqn", "nqn.2024-01.io.srvlab.csi.rds:vol-1"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            ..Default::default()
        };
        f(&mut r);
        Request::new(r)
    };
    for (req, expected) in [
        (stage(&|r| r.volume_id.clear()), "volume ID is required"),
        (
            stage(&|r| r.staging_target_path = "relative".into()),
            "absolute",
        ),
        (
            stage(&|r| r.staging_target_path = "/a/../b".into()),
            "absolute",
        ),
        (
            stage(&|r| r.volume_capability = None),
            "volume capability is required",
        ),
        (stage(&|r| r.volume_context.clear()), "no nvmeAddress"),
        (
            stage(&|r| {
                r.volume_context
                    .insert("nvmeAddress".into(), "1.2.3.4,host_traddr=x".into());
            }),
            "invalid nvmeAddress",
        ),
        (
            stage(&|r| r.volume_capability = Some(mount_cap(Mode::MultiNodeMultiWriter))),
            "not supported",
        ),
    ] {
        let status = node.node_stage_volume(req).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains(expected),
            "{expected}: {}",
            status.message()
        );
    }
    // Publishing what was never staged.
    let status = node
        .node_publish_volume(Request::new(NodePublishVolumeRequest {
            volume_id: "vol-9".into(),
            staging_target_path: rig.path("staging").display().to_string(),
            target_path: rig.path("target").display().to_string(),
            volume_capability: Some(mount_cap(Mode::SingleNodeWriter)),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn info_and_capabilities() {
    let Some(rig) = Rig::new(16 << 20) else {
        return;
    };
    let node = rig.node();
    let info = node
        .node_get_info(Request::new(NodeGetInfoRequest {}))
        .await
        .unwrap()
        .into_inner();
    // The node ID is the host NQN the node attaches published volumes as.
    assert_eq!(
        (info.node_id.as_str(), info.max_volumes_per_node),
        ("nqn.2024-01.io.srvlab.csi.rds:node:node-1", 50)
    );
    let caps = node
        .node_get_capabilities(Request::new(NodeGetCapabilitiesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .capabilities;
    assert_eq!(caps.len(), 5);
    // The host identity was made once and kept.
    let nqn = std::fs::read_to_string(rig.path("state/hostnqn")).unwrap();
    assert!(nqn.starts_with("nqn.2014-08.org.nvmexpress:uuid:"), "{nqn}");
    drop(node);
    rig.node();
    assert_eq!(
        std::fs::read_to_string(rig.path("state/hostnqn")).unwrap(),
        nqn
    );
}
