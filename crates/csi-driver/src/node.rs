//! The CSI Node service: the gRPC face of the `node` crate.
//!
//! Each handler checks the request's arguments in the order the CSI spec's
//! error tables want, turns the CSI types into the node crate's plain ones,
//! calls the operation and turns its answer back. What the node does, and
//! every rule about it, lives in the `node` crate; its errors become gRPC
//! codes in [`crate::error`].

use std::path::Path;

use ::node::request::{absolute, required};
use ::node::{
    Capability, Crypt, ExpandRequest, Filesystems, LinuxCrypt, LinuxFilesystems, LinuxNode, Node,
    NvmeHost, PublishRequest, RecordStore, Records, StageRequest, Usage, VolumeContext, VolumeKeys,
    VolumeKind,
};
use csi_proto::v1::node_server::Node as CsiNode;
use csi_proto::v1::node_service_capability::{self, rpc};
use csi_proto::v1::volume_capability::access_mode::Mode;
use csi_proto::v1::{self as csi, volume_usage};
use nvme_host::Host;
use telemetry::NodeMetrics;
use tonic::{Request, Response, Status};

use crate::capability::{self, Access};
use crate::capacity::Bounds;
use crate::error::{DriverError, Result};
use crate::rpc::call;

pub use ::node::{NodeConfig, NodeTimeouts, StartupReport};

/// The Node service over the node's seams (the kernel's NVMe host, the
/// host's filesystems, the record files and `cryptsetup` unless a test gives
/// others).
pub struct NodeService<H = Host, F = LinuxFilesystems, R = Records, C = LinuxCrypt> {
    node: Node<H, F, R, C>,
}

impl NodeService {
    /// The node service of this machine, recording into `metrics`; reads or
    /// creates the host's NVMe identity. Call [`NodeService::start_up`]
    /// before serving.
    pub fn new(config: NodeConfig, metrics: NodeMetrics) -> Result<Self> {
        Ok(Self::from_node(LinuxNode::open(config, metrics)?))
    }
}

impl<H: NvmeHost, F: Filesystems, R: RecordStore, C: Crypt> NodeService<H, F, R, C> {
    /// The service of `node`.
    pub fn from_node(node: Node<H, F, R, C>) -> Self {
        Self { node }
    }

    /// The node behind the service.
    pub fn node(&self) -> &Node<H, F, R, C> {
        &self.node
    }

    /// See [`Node::start_up`].
    pub async fn start_up(&self) -> StartupReport {
        self.node.start_up().await
    }

    /// See [`Node::spawn_health_monitor`].
    pub fn spawn_health_monitor(
        &self,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        self.node.spawn_health_monitor(stop)
    }

    async fn stage(
        &self,
        req: csi::NodeStageVolumeRequest,
    ) -> Result<csi::NodeStageVolumeResponse> {
        let volume_id = required("volume ID", &req.volume_id)?;
        let staging_path = absolute("staging target path", &req.staging_target_path)?;
        let capability = capability_of(req.volume_capability.as_ref())?;
        let context = VolumeContext::from_map(&req.volume_context)?;
        self.node
            .stage(StageRequest {
                volume_id: volume_id.to_owned(),
                staging_path,
                capability,
                context,
                keys: VolumeKeys::from_secrets(req.secrets),
                publish_context: req.publish_context,
            })
            .await?;
        Ok(csi::NodeStageVolumeResponse {})
    }

    async fn unstage(
        &self,
        req: csi::NodeUnstageVolumeRequest,
    ) -> Result<csi::NodeUnstageVolumeResponse> {
        let volume_id = required("volume ID", &req.volume_id)?;
        let staging = absolute("staging target path", &req.staging_target_path)?;
        self.node.unstage(volume_id, &staging).await?;
        Ok(csi::NodeUnstageVolumeResponse {})
    }

    async fn publish(
        &self,
        req: csi::NodePublishVolumeRequest,
    ) -> Result<csi::NodePublishVolumeResponse> {
        let volume_id = required("volume ID", &req.volume_id)?;
        let target_path = absolute("target path", &req.target_path)?;
        let staging_path = absolute("staging target path", &req.staging_target_path)?;
        let capability = capability_of(req.volume_capability.as_ref())?;
        self.node
            .publish(PublishRequest {
                volume_id: volume_id.to_owned(),
                staging_path,
                target_path,
                capability,
                read_only: req.readonly,
                context: req.volume_context,
                keys: VolumeKeys::from_secrets(req.secrets),
                publish_context: req.publish_context,
            })
            .await?;
        Ok(csi::NodePublishVolumeResponse {})
    }

    async fn unpublish(
        &self,
        req: csi::NodeUnpublishVolumeRequest,
    ) -> Result<csi::NodeUnpublishVolumeResponse> {
        let volume_id = required("volume ID", &req.volume_id)?;
        let target = absolute("target path", &req.target_path)?;
        self.node.unpublish(volume_id, &target).await?;
        Ok(csi::NodeUnpublishVolumeResponse {})
    }

    async fn expand(
        &self,
        req: csi::NodeExpandVolumeRequest,
    ) -> Result<csi::NodeExpandVolumeResponse> {
        // Arguments first: missing ones and a malformed capacity range are
        // INVALID_ARGUMENT (an absent range is allowed: the spec makes it
        // optional); a volume or path that is not there is NOT_FOUND, from
        // the node.
        let volume_id = required("volume ID", &req.volume_id)?;
        let volume_path = required("volume path", &req.volume_path)?;
        let bounds = Bounds::of(req.capacity_range.as_ref())?;
        let staging_path = match req.staging_target_path.as_str() {
            "" => None,
            staging => Some(staging.into()),
        };
        let size = self
            .node
            .expand(ExpandRequest {
                volume_id: volume_id.to_owned(),
                volume_path: volume_path.into(),
                staging_path,
                required_bytes: bounds.required,
                keys: VolumeKeys::from_secrets(req.secrets),
            })
            .await?;
        Ok(csi::NodeExpandVolumeResponse {
            capacity_bytes: i64::try_from(size).unwrap_or(i64::MAX),
        })
    }

    async fn volume_stats(
        &self,
        req: csi::NodeGetVolumeStatsRequest,
    ) -> Result<csi::NodeGetVolumeStatsResponse> {
        // Only a missing argument is INVALID_ARGUMENT; a path that is not
        // absolute or not the volume's is the volume not found there.
        let volume_id = required("volume ID", &req.volume_id)?;
        let volume_path = required("volume path", &req.volume_path)?;
        let stats = self.node.stats(volume_id, Path::new(volume_path))?;
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let usage = match stats.usage {
            Usage::Unknown => Vec::new(),
            Usage::Block { total_bytes } => vec![csi::VolumeUsage {
                total: n(total_bytes),
                unit: volume_usage::Unit::Bytes as i32,
                ..Default::default()
            }],
            Usage::Filesystem(s) => vec![
                csi::VolumeUsage {
                    available: n(s.available_bytes),
                    total: n(s.total_bytes),
                    used: n(s.used_bytes),
                    unit: volume_usage::Unit::Bytes as i32,
                },
                csi::VolumeUsage {
                    available: n(s.free_inodes),
                    total: n(s.total_inodes),
                    used: n(s.used_inodes),
                    unit: volume_usage::Unit::Inodes as i32,
                },
            ],
        };
        Ok(csi::NodeGetVolumeStatsResponse {
            usage,
            volume_condition: Some(csi::VolumeCondition {
                abnormal: stats.abnormal(),
                message: stats.message(volume_id),
            }),
        })
    }
}

/// The request's capability, checked, as the node crate takes it.
fn capability_of(cap: Option<&csi::VolumeCapability>) -> Result<Capability> {
    let cap =
        cap.ok_or_else(|| DriverError::InvalidArgument("volume capability is required".into()))?;
    let cap = capability::check(cap).map_err(DriverError::InvalidArgument)?;
    Ok(Capability {
        read_only: cap.read_only(),
        single_writer: cap.mode == Mode::SingleNodeSingleWriter,
        kind: match cap.access {
            Access::Block => VolumeKind::Block,
            Access::Mount {
                fs_type,
                mount_flags,
            } => VolumeKind::Filesystem {
                fs_type,
                mount_flags,
            },
        },
    })
}

/// The node capabilities this service implements.
pub const CAPABILITIES: &[rpc::Type] = &[
    rpc::Type::StageUnstageVolume,
    rpc::Type::ExpandVolume,
    rpc::Type::GetVolumeStats,
    rpc::Type::VolumeCondition,
    rpc::Type::SingleNodeMultiWriter,
];

#[tonic::async_trait]
impl<H: NvmeHost, F: Filesystems, R: RecordStore, C: Crypt> CsiNode for NodeService<H, F, R, C> {
    async fn node_stage_volume(
        &self,
        request: Request<csi::NodeStageVolumeRequest>,
    ) -> std::result::Result<Response<csi::NodeStageVolumeResponse>, Status> {
        let req = request.into_inner();
        let volume = req.volume_id.clone();
        call("NodeStageVolume", &volume, self.stage(req)).await
    }

    async fn node_unstage_volume(
        &self,
        request: Request<csi::NodeUnstageVolumeRequest>,
    ) -> std::result::Result<Response<csi::NodeUnstageVolumeResponse>, Status> {
        let req = request.into_inner();
        let volume = req.volume_id.clone();
        call("NodeUnstageVolume", &volume, self.unstage(req)).await
    }

    async fn node_publish_volume(
        &self,
        request: Request<csi::NodePublishVolumeRequest>,
    ) -> std::result::Result<Response<csi::NodePublishVolumeResponse>, Status> {
        let req = request.into_inner();
        let volume = req.volume_id.clone();
        call("NodePublishVolume", &volume, self.publish(req)).await
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<csi::NodeUnpublishVolumeRequest>,
    ) -> std::result::Result<Response<csi::NodeUnpublishVolumeResponse>, Status> {
        let req = request.into_inner();
        let volume = req.volume_id.clone();
        call("NodeUnpublishVolume", &volume, self.unpublish(req)).await
    }

    async fn node_get_volume_stats(
        &self,
        request: Request<csi::NodeGetVolumeStatsRequest>,
    ) -> std::result::Result<Response<csi::NodeGetVolumeStatsResponse>, Status> {
        let req = request.into_inner();
        let volume = req.volume_id.clone();
        call("NodeGetVolumeStats", &volume, self.volume_stats(req)).await
    }

    async fn node_expand_volume(
        &self,
        request: Request<csi::NodeExpandVolumeRequest>,
    ) -> std::result::Result<Response<csi::NodeExpandVolumeResponse>, Status> {
        let req = request.into_inner();
        let volume = req.volume_id.clone();
        call("NodeExpandVolume", &volume, self.expand(req)).await
    }

    async fn node_get_capabilities(
        &self,
        _request: Request<csi::NodeGetCapabilitiesRequest>,
    ) -> std::result::Result<Response<csi::NodeGetCapabilitiesResponse>, Status> {
        call("NodeGetCapabilities", "", async {
            Ok(csi::NodeGetCapabilitiesResponse {
                capabilities: CAPABILITIES
                    .iter()
                    .map(|&t| csi::NodeServiceCapability {
                        r#type: Some(node_service_capability::Type::Rpc(
                            node_service_capability::Rpc { r#type: t as i32 },
                        )),
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn node_get_info(
        &self,
        _request: Request<csi::NodeGetInfoRequest>,
    ) -> std::result::Result<Response<csi::NodeGetInfoResponse>, Status> {
        let config = self.node.config();
        // The node ID is the host NQN this node attaches published volumes
        // as: the controller lets exactly that host in when it publishes a
        // volume to this node.
        let node_id = self.node.node_id().to_owned();
        call("NodeGetInfo", "", async {
            Ok(csi::NodeGetInfoResponse {
                node_id,
                max_volumes_per_node: config.max_volumes,
                accessible_topology: None,
            })
        })
        .await
    }
}
