//! The node's operations against the in-memory fakes of their seams
//! (`node::testing`): no root, no kernel NVMe/TCP, no loop device, no gRPC.
//! Every test runs on tokio's paused clock, so deadlines of minutes pass at
//! once and nothing depends on how fast the machine is.
//!
//! - `stage`, `unstage`, `publish`, `expand`, `stats`: each operation's rules;
//! - `crash`: an operation stopped after each of its steps in turn (the
//!   process dying there), then retried, converges;
//! - `concurrency`: repeated and concurrent calls converge;
//! - `fence`: the host identity a volume is connected as, this node's
//!   connections only, and connections the RDS refuses;
//! - `monitor`: the health monitor's interval;
//! - `encryption`: LUKS2 volumes through every operation (the key, the
//!   refusals, rotation, start-up, recovery).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

mod concurrency;
mod crash;
mod encryption;
mod expand;
mod fence;
mod monitor;
mod publish;
mod stage;
mod stats;
mod unstage;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use node::NvmeHost as _;
use node::context::ConnectionParams;
use node::testing::FakeWorld;
use node::{
    Capability, FsType, NodeError, PublishRequest, StageRequest, VolumeContext, VolumeKeys,
    VolumeKind,
};
use telemetry::NodeMetrics;

pub use node::testing::{FakeNode, PREFIX, attach_identity, config, identity, published_here};

/// A volume's size.
pub const GIB: u64 = 1 << 30;

/// A fake world and a node over it.
pub struct Rig {
    /// The fake RDS, kernel and state folder.
    pub world: FakeWorld,
    /// The node over it.
    pub node: FakeNode,
    /// The node's metrics.
    pub metrics: NodeMetrics,
}

/// One volume's names and paths, as kubelet would pass them.
#[derive(Debug, Clone)]
pub struct Volume {
    /// Its ID.
    pub id: String,
    /// Its NQN, with this driver's prefix.
    pub nqn: String,
    /// Its staging path.
    pub staging: PathBuf,
    /// A pod's target path.
    pub target: PathBuf,
}

impl Default for Rig {
    fn default() -> Self {
        Self::new()
    }
}

impl Rig {
    /// A node over an empty world.
    pub fn new() -> Rig {
        let world = FakeWorld::new();
        let metrics = NodeMetrics::default();
        let node = node_over(&world, metrics.clone());
        Rig {
            world,
            node,
            metrics,
        }
    }

    /// The plugin restarted: a new node over the same kernel and records.
    pub async fn restart(&mut self) -> node::StartupReport {
        self.metrics = NodeMetrics::default();
        self.node = node_over(&self.world, self.metrics.clone());
        self.node.start_up().await
    }

    /// A volume exported by the RDS, with an empty 1 GiB image.
    pub fn volume(&self, id: &str) -> Volume {
        let nqn = format!("{PREFIX}{id}");
        self.world.export(&nqn, GIB);
        let kubelet = Path::new("/var/lib/kubelet");
        Volume {
            id: id.into(),
            nqn,
            staging: kubelet.join(format!("plugins/rds.csi.srvlab.io/{id}/globalmount")),
            target: kubelet.join(format!("pods/pod-a/volumes/kubernetes.io~csi/{id}/mount")),
        }
    }

    /// A volume staged and published into a pod, as a pod using it has it.
    pub async fn in_use(&self, id: &str, capability: Capability) -> Volume {
        let v = self.volume(id);
        self.node
            .stage(stage(&v, capability.clone()))
            .await
            .unwrap();
        self.node
            .publish(publish(&v, &v.target, capability))
            .await
            .unwrap();
        v
    }

    /// The device node of `v`'s block device now.
    pub fn device(&self, v: &Volume) -> String {
        let device = self.node.host().block_device(&v.nqn).unwrap().unwrap();
        device.path.display().to_string()
    }

    /// Stages `v`, which must fail: the error.
    pub async fn stage_fails(&self, v: &Volume, capability: Capability) -> NodeError {
        self.stage_fails_with(stage(v, capability)).await
    }

    /// Makes a stage request that must fail: the error.
    pub async fn stage_fails_with(&self, req: StageRequest) -> NodeError {
        let id = req.volume_id.clone();
        match self.node.stage(req).await {
            Ok(()) => panic!("staging {id} succeeded"),
            Err(e) => e,
        }
    }

    /// An encrypted filesystem volume staged and published into a pod.
    pub async fn in_use_encrypted(&self, id: &str) -> Volume {
        let v = self.volume(id);
        self.node
            .stage(encrypted(&v, filesystem(None), KEY))
            .await
            .unwrap();
        self.node
            .publish(publish(&v, &v.target, filesystem(None)))
            .await
            .unwrap();
        v
    }

    /// Everything the kernel and the state folder hold: controllers, mount
    /// points, records.
    pub fn held(&self) -> (Vec<String>, Vec<PathBuf>, usize) {
        (
            self.world.connected(),
            self.world.mount_points(),
            self.world.saved_records().len(),
        )
    }

    /// Asserts that nothing is held any more: no controller, mount, record
    /// or mapping.
    pub fn assert_nothing_held(&self) {
        assert_eq!(self.held(), (vec![], vec![], 0), "something is still held");
        assert_eq!(
            self.world.mappings(),
            Vec::<String>::new(),
            "a mapping is still open"
        );
    }

    /// How many connects ended with `outcome` (`connected`, `already`, `failed`).
    pub fn connects(&self, outcome: &str) -> u64 {
        self.metrics
            .nvme_connects
            .get_or_create(&telemetry::metrics::OutcomeLabels {
                outcome: outcome.into(),
            })
            .get()
    }
}

fn node_over(world: &FakeWorld, metrics: NodeMetrics) -> FakeNode {
    world.node(config(), metrics).unwrap()
}

/// The volume context the controller hands over for `volume`.
pub fn context(volume: &Volume) -> VolumeContext {
    VolumeContext {
        nvme_address: "10.0.0.5".into(),
        nvme_port: 4420,
        nqn: volume.nqn.clone(),
        fs_type: None,
        connection: ConnectionParams::default(),
        image_path: Some(format!("/raid10/volumes/{}.img", volume.id)),
        encryption: None,
    }
}

/// A filesystem capability (read-write, several writers allowed).
pub fn filesystem(fs: Option<FsType>) -> Capability {
    Capability {
        kind: VolumeKind::Filesystem {
            fs_type: fs,
            mount_flags: vec!["noatime".into()],
        },
        read_only: false,
        single_writer: false,
    }
}

/// A raw block capability.
pub fn block() -> Capability {
    Capability {
        kind: VolumeKind::Block,
        read_only: false,
        single_writer: false,
    }
}

/// NodeStageVolume of `volume` with `capability`, published to this node
/// by a controller with attachment.
pub fn stage(volume: &Volume, capability: Capability) -> StageRequest {
    StageRequest {
        volume_id: volume.id.clone(),
        staging_path: volume.staging.clone(),
        capability,
        context: context(volume),
        keys: VolumeKeys::default(),
        publish_context: published_here(),
    }
}

/// The passphrase of the tests' encrypted volumes.
pub const KEY: &str = "correct horse battery staple";

/// NodeStageVolume of `volume` as an encrypted volume (`encryption=luks2`),
/// with `key` in the node-stage secret.
pub fn encrypted(volume: &Volume, capability: Capability, key: &str) -> StageRequest {
    let mut req = stage(volume, capability);
    req.context.encryption = Some(node::Encryption::Luks2);
    req.keys = VolumeKeys::of(key);
    req
}

/// NodePublishVolume of `volume` at `target`, with the volume context.
pub fn publish(volume: &Volume, target: &Path, capability: Capability) -> PublishRequest {
    PublishRequest {
        volume_id: volume.id.clone(),
        staging_path: volume.staging.clone(),
        target_path: target.to_path_buf(),
        capability,
        read_only: false,
        context: context(volume).to_map(),
        keys: VolumeKeys::default(),
        publish_context: published_here(),
    }
}

/// An empty volume context, as some publishes carry.
pub fn no_context() -> HashMap<String, String> {
    HashMap::new()
}

/// The name of an error's variant, for messages.
pub fn kind(e: &NodeError) -> String {
    format!("{e:?}")
        .split([' ', '(', '{'])
        .next()
        .unwrap_or("")
        .to_owned()
}
