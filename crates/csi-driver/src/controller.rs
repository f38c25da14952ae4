//! The CSI Controller service: volumes made, grown, listed and deleted on the
//! RDS; snapshots taken, listed and deleted, and volumes made from a
//! snapshot or another volume (`snapshot_rpcs`).
//!
//! Every handler has the same shape: check the request (INVALID_ARGUMENT with a
//! sentence saying what is wrong), claim the volume ([`VolumeLocks`]), then do
//! the work through [`RdsClient`], whose operations are idempotent. A disk is
//! only ever changed if [`naming::is_ours`] says this driver (or the Go driver
//! it replaces) made it.
//!
//! ControllerPublishVolume and ControllerUnpublishVolume decide with
//! [`attach`] from the export recorded on the disk, and write the decision
//! with a compare-and-set against the state they decided from
//! ([`RdsClient::set_export`]). The state last seen of each volume is kept
//! in memory, but only as a guess of what the compare should expect, so that
//! a publish usually takes one round trip: a wrong guess changes nothing on
//! the RDS, which answers with the real state, from which the decision is
//! made again. The RDS stays the only record.
//!
//! A new volume goes through [`RdsClient::provision_volume`]: on a btrfs pool
//! it gets a subvolume of its own (and can be snapshotted and cloned), on any
//! other pool a flat image as before; the RDS decides by the pool, in the
//! same script. Deletes remove the volume's subvolume with it.

mod snapshot_rpcs;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use csi_proto::v1::controller_server::Controller;
use csi_proto::v1::controller_service_capability::{self, rpc};
use csi_proto::v1::list_volumes_response;
use csi_proto::v1::validate_volume_capabilities_response::Confirmed;
use csi_proto::v1::{self as csi};
use rds_client::RdsClient;
use routeros::subvolume::NewVolume;
use routeros::{Disk, OwnerTest, Slot, SlotPrefix};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::attach::{self, Decision, Fence, Mode, Recorded, Target};
use crate::capability;
use crate::capacity::Bounds;
use crate::error::{DriverError, Result};
use crate::locks::VolumeLocks;
use crate::naming::{self, is_ours};
use crate::params::{Defaults, FsType, VolumeContext, VolumeParams, keys};
use crate::rpc::call;
use crate::snapshots::{ContentSource, PoolUseLimit};
use crate::token;

/// The Controller service.
pub struct ControllerService {
    rds: Arc<RdsClient>,
    defaults: Defaults,
    nqn_prefix: String,
    locks: VolumeLocks,
    fence: Fence,
    /// The export of each volume as last seen on the RDS, by slot: what a
    /// compare-and-set expects first. Only disks known to be ours are here.
    exports: Mutex<HashMap<String, Known>>,
    snapshot_pool_limit: PoolUseLimit,
}

/// A volume's export as last seen, and the ownership test that pins the
/// disk it was seen on: the compare-and-set changes that disk only.
#[derive(Debug, Clone)]
struct Known {
    recorded: Recorded,
    owner: Vec<OwnerTest>,
}

/// How many times a publish or unpublish decides again after finding the
/// disk changed under it, before giving up with ABORTED (the sidecar
/// retries).
const DECISION_ATTEMPTS: usize = 4;

impl ControllerService {
    /// A controller making volumes through `rds`, with NQNs `<nqn_prefix><slot>`.
    pub fn new(rds: Arc<RdsClient>, defaults: Defaults, nqn_prefix: impl Into<String>) -> Self {
        let nqn_prefix = nqn_prefix.into();
        Self {
            rds,
            defaults,
            fence: Fence::new(nqn_prefix.clone()),
            nqn_prefix,
            locks: VolumeLocks::default(),
            exports: Mutex::new(HashMap::new()),
            snapshot_pool_limit: PoolUseLimit::default(),
        }
    }

    /// The same controller, taking no new snapshot on a pool used above
    /// `limit` ([`PoolUseLimit::DEFAULT`] unless set).
    pub fn with_snapshot_pool_limit(mut self, limit: PoolUseLimit) -> Self {
        self.snapshot_pool_limit = limit;
        self
    }

    fn cached_export(&self, slot: &Slot) -> Option<Known> {
        self.exports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(slot.as_str())
            .cloned()
    }

    fn remember_export(&self, slot: &str, known: Option<Known>) {
        let mut exports = self.exports.lock().unwrap_or_else(PoisonError::into_inner);
        match known {
            Some(known) => exports.insert(slot.to_owned(), known),
            None => exports.remove(slot),
        };
    }

    /// Reads the export of a disk that is ours, and remembers it with the
    /// test that pins that disk: its exact comment, or, for a disk of the
    /// Go driver (which has none), its slot's shape.
    fn record_of(&self, slot: &Slot, disk: &Disk) -> Result<Known> {
        let known = Known {
            recorded: self.fence.read(disk)?,
            owner: naming::exact_owner(disk).unwrap_or_else(|| naming::owner_tests(slot)),
        };
        self.remember_export(&disk.slot, Some(known.clone()));
        Ok(known)
    }

    /// The export of volume `slot` as the RDS holds it now; `None` when the
    /// volume does not exist.
    async fn read_export(&self, slot: &Slot) -> Result<Option<Known>> {
        match self.own_disk(slot).await? {
            Some(disk) => Ok(Some(self.record_of(slot, &disk)?)),
            None => {
                self.remember_export(slot.as_str(), None);
                Ok(None)
            }
        }
    }

    /// Brings the export of `slot` to what `decide` asks of the state it is
    /// in, with a compare-and-set, deciding again from what the RDS answers
    /// when the disk was not in the state decided from. Returns the export
    /// as it is afterwards; `None` when the volume does not exist.
    async fn converge_export(
        &self,
        slot: &Slot,
        decide: impl Fn(&Target) -> Result<Decision>,
    ) -> Result<Option<Target>> {
        // The state to decide from: the one last seen (a guess, checked by
        // the compare), or read now.
        let (mut recorded, mut fresh) = match self.cached_export(slot) {
            Some(recorded) => (recorded, false),
            None => match self.read_export(slot).await? {
                Some(recorded) => (recorded, true),
                None => return Ok(None),
            },
        };
        for _ in 0..DECISION_ATTEMPTS {
            let decision = match decide(&recorded.recorded.target) {
                Ok(decision) => decision,
                // A refusal is only final when decided from what the RDS
                // holds now.
                Err(_) if !fresh => {
                    match self.read_export(slot).await? {
                        Some(now) => recorded = now,
                        None => return Ok(None),
                    }
                    fresh = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let (to, bounce) = match decision {
                Decision::Unchanged if fresh => return Ok(Some(recorded.recorded.target)),
                // A guess that needs no change is checked by reading, not by
                // writing the same values again: whether RouterOS restarts
                // an export on any `set` is not known.
                Decision::Unchanged => {
                    match self.read_export(slot).await? {
                        Some(now) => recorded = now,
                        None => return Ok(None),
                    }
                    fresh = true;
                    continue;
                }
                Decision::Change { to, bounce } => (to, bounce),
            };
            let new = self.fence.write(slot.as_str(), &to)?;
            let Some(disk) = self
                .rds
                .set_export(
                    slot,
                    &recorded.owner,
                    &recorded.recorded.state,
                    &new,
                    bounce,
                )
                .await?
            else {
                self.remember_export(slot.as_str(), None);
                return Ok(None);
            };
            if !is_ours(&disk) {
                self.remember_export(slot.as_str(), None);
                return Err(not_ours(slot));
            }
            let now = self.record_of(slot, &disk)?;
            if now.recorded.target == to {
                if now.recorded.target != recorded.recorded.target {
                    info!(
                        published = ?now.recorded.target.published_nodes(),
                        exported = now.recorded.target.exported,
                        bounced = bounce,
                        "export changed"
                    );
                }
                return Ok(Some(now.recorded.target));
            }
            if fresh
                && now.recorded.target == recorded.recorded.target
                && now.owner == recorded.owner
            {
                // Nobody changed the disk, yet the compare did not match:
                // RouterOS holds the list in a form the driver does not send.
                return Err(DriverError::Internal(format!(
                    "RouterOS did not match the export of volume {slot} as the driver read it \
                     back (nvme-tcp-server-allow-host-name={:?}); run \
                     `rds-csi-plugin doctor --check-fence` on a node to see how this RouterOS \
                     stores allow lists",
                    recorded.recorded.state.hosts.as_str()
                )));
            }
            recorded = now;
            fresh = true;
        }
        Err(DriverError::Aborted(format!(
            "the export of volume {slot} kept changing while it was being decided; try again"
        )))
    }

    async fn publish(
        &self,
        req: csi::ControllerPublishVolumeRequest,
    ) -> Result<csi::ControllerPublishVolumeResponse> {
        let id = req.volume_id.as_str();
        if id.is_empty() {
            return Err(invalid("volume ID is required"));
        }
        if req.node_id.is_empty() {
            return Err(invalid("node ID is required"));
        }
        let Some(cap) = req.volume_capability.as_ref() else {
            return Err(invalid("volume capability is required"));
        };
        let cap = capability::check(cap).map_err(DriverError::InvalidArgument)?;
        let slot = Slot::new(id).map_err(|_| DriverError::VolumeNotFound(id.to_owned()))?;
        let identity = nvme_host::fence::identity_of_node(&self.nqn_prefix, &req.node_id)
            .map_err(|e| DriverError::NotFound(e.to_string()))?;
        let mode = Mode::of(&cap, req.readonly);
        let _guard = self.locks.try_lock(id)?;
        let node = identity.nqn.as_str();
        self.converge_export(&slot, |recorded| {
            Ok(attach::decide_publish(id, recorded, node, mode)?)
        })
        .await?
        .ok_or_else(|| DriverError::VolumeNotFound(id.to_owned()))?;
        info!(node = %req.node_id, %mode, "volume published");
        Ok(csi::ControllerPublishVolumeResponse {
            publish_context: nvme_host::fence::to_publish_context(&identity),
        })
    }

    async fn unpublish(
        &self,
        req: csi::ControllerUnpublishVolumeRequest,
    ) -> Result<csi::ControllerUnpublishVolumeResponse> {
        let id = req.volume_id.as_str();
        if id.is_empty() {
            return Err(invalid("volume ID is required"));
        }
        // An ID that cannot be a slot names no disk: published nowhere.
        let Ok(slot) = Slot::new(id) else {
            return Ok(csi::ControllerUnpublishVolumeResponse {});
        };
        let node = match req.node_id.as_str() {
            "" => None,
            node => {
                if let Err(e) = nvme_host::fence::node_name_of(&self.nqn_prefix, node) {
                    // Nothing can be published to a node that is not one of
                    // ours; failing would leave Kubernetes detaching forever.
                    info!(node, reason = %e, "not a node of this driver: nothing to unpublish");
                    return Ok(csi::ControllerUnpublishVolumeResponse {});
                }
                Some(node)
            }
        };
        let _guard = self.locks.try_lock(id)?;
        match self
            .converge_export(&slot, |recorded| {
                Ok(attach::decide_unpublish(recorded, node))
            })
            .await
        {
            Ok(Some(_)) => info!(node = ?node, "volume unpublished"),
            Ok(None) => info!(node = ?node, "volume does not exist: nothing to unpublish"),
            Err(DriverError::FailedPrecondition(reason)) => {
                // A disk that is not ours was never published by us.
                warn!(%reason, "not unpublishing");
            }
            Err(e) => return Err(e),
        }
        Ok(csi::ControllerUnpublishVolumeResponse {})
    }

    async fn create(&self, req: csi::CreateVolumeRequest) -> Result<csi::CreateVolumeResponse> {
        let name = req.name.as_str();
        if name.is_empty() {
            return Err(invalid("volume name is required"));
        }
        let caps = capability::check_all(&req.volume_capabilities)
            .map_err(DriverError::InvalidArgument)?;
        let source = ContentSource::of(req.volume_content_source.as_ref())?;
        if !req.mutable_parameters.is_empty() {
            return Err(invalid("mutable parameters are not supported"));
        }
        let bounds = Bounds::of(req.capacity_range.as_ref())?;
        let mut params = VolumeParams::parse(&req.parameters, &self.defaults)?;
        params.fs_type = filesystem(&caps, &req.parameters, params.fs_type)?;
        let slot = naming::slot_for(name);
        let pvc = params.pvc.as_ref().map(|(ns, n)| (ns.as_str(), n.as_str()));
        let comment = naming::comment_for(name, pvc);
        let nqn = naming::nqn_for(&self.nqn_prefix, &slot)
            .map_err(|e| DriverError::Internal(format!("NQN for {slot}: {e}")))?;
        let volume = NewVolume::new(
            slot.clone(),
            &params.volume_path,
            0,
            params.nvme_port,
            nqn,
            comment,
        )
        .map_err(|e| invalid(format!("volumePath {}: {e}", params.volume_path)))?;

        let _guard = self.locks.try_lock(slot.as_str())?;
        // One round trip: the disk is created (in a subvolume of its own on
        // a btrfs pool, flat elsewhere), or the one already in the slot is
        // returned unchanged and checked against the request below. A
        // volume from a source first reads the source.
        let disk = match &source {
            None => {
                let sized = volume.clone().with_size(bounds.new_volume_size()?);
                self.rds.provision_volume(&sized).await?
            }
            Some(source) => self.populate(volume.clone(), &bounds, source).await?,
        };
        if !naming::records(disk.comment.as_deref(), name) {
            return Err(DriverError::AlreadyExists(format!(
                "slot {slot} on the RDS holds another volume ({}); not reusing it for {name}",
                disk.comment.as_deref().unwrap_or("no comment")
            )));
        }
        self.record_of(&slot, &disk)?;
        if !naming::is_image_of(disk.file_path.as_deref(), &volume) {
            return Err(DriverError::AlreadyExists(format!(
                "volume {name} exists at {}, not under {} as now requested",
                disk.file_path.as_deref().unwrap_or("an unknown path"),
                params.volume_path
            )));
        }
        if !bounds.admits(disk.size) {
            return Err(DriverError::AlreadyExists(format!(
                "volume {name} exists with {} bytes, outside the requested range",
                disk.size
            )));
        }
        let mut answer = self.volume(&disk, &params)?;
        answer.content_source = source.as_ref().map(ContentSource::to_csi);
        Ok(csi::CreateVolumeResponse {
            volume: Some(answer),
        })
    }

    /// The CSI view of a disk; the context carries what the node needs.
    fn volume(&self, disk: &Disk, params: &VolumeParams) -> Result<csi::Volume> {
        let nqn = disk.nqn.clone().ok_or_else(|| {
            DriverError::FailedPrecondition(format!(
                "disk {} has no NVMe/TCP export NQN; it cannot be attached",
                disk.slot
            ))
        })?;
        let context = VolumeContext {
            nvme_address: params.nvme_address.clone(),
            nvme_port: disk.nvme_tcp_port.unwrap_or(params.nvme_port),
            nqn,
            fs_type: Some(params.fs_type),
            connection: params.connection,
            image_path: disk.file_path.clone(),
            encryption: params.encryption,
        };
        Ok(csi::Volume {
            capacity_bytes: size_i64(disk.size),
            volume_id: disk.slot.clone(),
            volume_context: context.to_map(),
            ..Default::default()
        })
    }

    /// The disk of volume `id`, if it exists and is this driver's to manage.
    async fn own_disk(&self, slot: &Slot) -> Result<Option<Disk>> {
        match self.rds.get_volume(slot).await? {
            Some(disk) if !is_ours(&disk) => Err(not_ours(slot)),
            other => Ok(other),
        }
    }

    async fn delete(&self, req: csi::DeleteVolumeRequest) -> Result<csi::DeleteVolumeResponse> {
        let id = req.volume_id.as_str();
        if id.is_empty() {
            return Err(invalid("volume ID is required"));
        }
        // An ID that cannot be a slot names no disk: already deleted.
        let Ok(slot) = Slot::new(id) else {
            return Ok(csi::DeleteVolumeResponse {});
        };
        let _guard = self.locks.try_lock(id)?;
        // The guess of its export goes with the volume (it is only a guess:
        // forgetting it never loses a record).
        self.remember_export(id, None);
        // One exec: the RDS removes the disk and its image only if it passes
        // the ownership tests, checked in the same script, and then the
        // volume's subvolume if it has one (its snapshots are siblings and
        // stay). With the disk gone, only a slot of this driver's shape gets
        // its stray image looked for.
        let tests = naming::owner_tests(&slot);
        let sweep = naming::is_managed_slot(id);
        let Some(shown) = self
            .rds
            .delete_volume_and_subvolume(&slot, &tests, sweep)
            .await?
        else {
            return Ok(csi::DeleteVolumeResponse {});
        };
        // Shown, not removed: ours only if its comment names the volume in a
        // form the RDS cannot check (a full name, from before digests); then
        // removed on exactly that comment.
        let exact = naming::exact_owner(&shown).ok_or_else(|| not_ours(&slot))?;
        if self
            .rds
            .delete_volume_and_subvolume(&slot, &exact, false)
            .await?
            .is_some()
        {
            return Err(DriverError::Aborted(format!(
                "disk {slot} on the RDS changed while it was being deleted; try again"
            )));
        }
        info!("volume deleted");
        Ok(csi::DeleteVolumeResponse {})
    }

    async fn expand(
        &self,
        req: csi::ControllerExpandVolumeRequest,
    ) -> Result<csi::ControllerExpandVolumeResponse> {
        let id = req.volume_id.as_str();
        if id.is_empty() {
            return Err(invalid("volume ID is required"));
        }
        let Some(range) = req.capacity_range.as_ref() else {
            return Err(invalid("capacity range is required"));
        };
        let bounds = Bounds::of(Some(range))?;
        let size = bounds.expanded_size()?;
        let block = match req.volume_capability.as_ref() {
            Some(cap) => capability::check(cap)
                .map_err(DriverError::InvalidArgument)?
                .is_block(),
            None => false,
        };
        let slot = Slot::new(id).map_err(|_| DriverError::VolumeNotFound(id.to_owned()))?;
        let _guard = self.locks.try_lock(id)?;
        // One exec: the RDS grows the disk only if it passes the ownership
        // tests, and prints it either way.
        let mut disk = match self
            .rds
            .grow_volume(&slot, size, &naming::owner_tests(&slot))
            .await
        {
            Err(rds_client::Error::VolumeNotFound { .. }) => {
                return Err(DriverError::VolumeNotFound(id.to_owned()));
            }
            other => other?,
        };
        if !is_ours(&disk) {
            return Err(not_ours(&slot));
        }
        if disk.size < size
            && let Some(exact) = naming::exact_owner(&disk)
        {
            // Ours in a form the RDS cannot check: grown on exactly its comment.
            disk = self.rds.grow_volume(&slot, size, &exact).await?;
        }
        if disk.size < size {
            return Err(DriverError::Internal(format!(
                "asked the RDS to grow {slot} to {size} bytes, but it is {} bytes afterwards",
                disk.size
            )));
        }
        if let Some(limit) = bounds.limit
            && disk.size > limit
        {
            return Err(DriverError::OutOfRange(format!(
                "volume {slot} is already {} bytes, more than the limit of {limit} bytes; volumes never shrink",
                disk.size
            )));
        }
        Ok(csi::ControllerExpandVolumeResponse {
            capacity_bytes: size_i64(disk.size),
            // A filesystem must be grown by the node; a block device need not.
            node_expansion_required: !block,
        })
    }

    async fn validate(
        &self,
        req: csi::ValidateVolumeCapabilitiesRequest,
    ) -> Result<csi::ValidateVolumeCapabilitiesResponse> {
        let id = req.volume_id.as_str();
        if id.is_empty() {
            return Err(invalid("volume ID is required"));
        }
        if req.volume_capabilities.is_empty() {
            return Err(invalid("volume capabilities are required"));
        }
        let slot = Slot::new(id).map_err(|_| DriverError::VolumeNotFound(id.to_owned()))?;
        self.own_disk(&slot)
            .await?
            .ok_or_else(|| DriverError::VolumeNotFound(id.to_owned()))?;
        let refused = |message: String| csi::ValidateVolumeCapabilitiesResponse {
            confirmed: None,
            message,
        };
        if let Err(message) = capability::check_all(&req.volume_capabilities) {
            return Ok(refused(message));
        }
        if let Err(e) = VolumeParams::parse(&req.parameters, &self.defaults) {
            return Ok(refused(e.to_string()));
        }
        if !req.volume_context.is_empty()
            && let Err(e) = VolumeContext::from_map(&req.volume_context)
        {
            return Ok(refused(e.to_string()));
        }
        Ok(csi::ValidateVolumeCapabilitiesResponse {
            confirmed: Some(Confirmed {
                volume_context: req.volume_context,
                volume_capabilities: req.volume_capabilities,
                parameters: req.parameters,
                mutable_parameters: Default::default(),
            }),
            message: String::new(),
        })
    }

    async fn list(&self, req: csi::ListVolumesRequest) -> Result<csi::ListVolumesResponse> {
        let max = usize::try_from(req.max_entries).map_err(|_| {
            invalid(format!(
                "max_entries must not be negative, got {}",
                req.max_entries
            ))
        })?;
        let after = match req.starting_token.as_str() {
            "" => None,
            token => Some(token::read(token::Kind::Volumes, token).ok_or_else(|| {
                DriverError::Aborted(format!(
                    "starting_token {token:?} is not one this driver gave out; list again from the start"
                ))
            })?),
        };
        let all = SlotPrefix::new("").map_err(|e| DriverError::Internal(e.to_string()))?;
        let mut disks: Vec<Disk> = self
            .rds
            .list_volumes(&all)
            .await?
            .into_iter()
            .filter(is_ours)
            .collect();
        disks.sort_by(|a, b| a.slot.cmp(&b.slot));
        let start = after.map_or(0, |after| {
            disks.partition_point(|d| d.slot.as_str() <= after)
        });
        let page = &disks[start..];
        let take = if max == 0 {
            page.len()
        } else {
            max.min(page.len())
        };
        let next_token = if take < page.len() {
            token::issue(token::Kind::Volumes, &page[take - 1].slot)
        } else {
            String::new()
        };
        let entries = page[..take]
            .iter()
            .map(|d| list_volumes_response::Entry {
                volume: Some(csi::Volume {
                    capacity_bytes: size_i64(d.size),
                    volume_id: d.slot.clone(),
                    ..Default::default()
                }),
                status: Some(list_volumes_response::VolumeStatus {
                    published_node_ids: self.fence.published_nodes(d),
                    volume_condition: None,
                }),
            })
            .collect();
        Ok(csi::ListVolumesResponse {
            entries,
            next_token,
        })
    }

    async fn capacity(&self, req: csi::GetCapacityRequest) -> Result<csi::GetCapacityResponse> {
        let params = VolumeParams::parse(&req.parameters, &self.defaults)?;
        if !req.volume_capabilities.is_empty()
            && capability::check_all(&req.volume_capabilities).is_err()
        {
            // Unsupported capabilities: no capacity for them, as the spec asks.
            return Ok(csi::GetCapacityResponse::default());
        }
        let pool = self.rds.pool(&params.volume_path.pool()).await?;
        Ok(csi::GetCapacityResponse {
            available_capacity: size_i64(pool.free),
            maximum_volume_size: Some(size_i64(pool.free)),
            minimum_volume_size: None,
        })
    }

    async fn get(
        &self,
        req: csi::ControllerGetVolumeRequest,
    ) -> Result<csi::ControllerGetVolumeResponse> {
        let id = req.volume_id.as_str();
        if id.is_empty() {
            return Err(invalid("volume ID is required"));
        }
        let slot = Slot::new(id).map_err(|_| DriverError::VolumeNotFound(id.to_owned()))?;
        let disk = self
            .own_disk(&slot)
            .await?
            .ok_or_else(|| DriverError::VolumeNotFound(id.to_owned()))?;
        // Only a guess for a later publish: a record this driver cannot
        // write back is not an error here.
        let _ = self.record_of(&slot, &disk);
        let published = self.fence.published_nodes(&disk);
        Ok(csi::ControllerGetVolumeResponse {
            volume: Some(csi::Volume {
                capacity_bytes: size_i64(disk.size),
                volume_id: disk.slot,
                ..Default::default()
            }),
            status: Some(csi::controller_get_volume_response::VolumeStatus {
                published_node_ids: published,
                volume_condition: None,
            }),
        })
    }
}

/// The filesystem a new volume will get: the one its mount capabilities
/// name (external-provisioner puts a StorageClass's
/// `csi.storage.k8s.io/fstype` there, and kubelet passes the same to
/// NodeStageVolume, where it wins over the volume context), else
/// `from_params` (the `fsType` parameter or the default). The context must
/// say what the node will make; a class naming two filesystems is refused.
fn filesystem(
    caps: &[capability::Capability],
    parameters: &HashMap<String, String>,
    from_params: FsType,
) -> Result<FsType> {
    let mut named = caps.iter().filter_map(|c| match c.access {
        capability::Access::Mount { fs_type, .. } => fs_type,
        capability::Access::Block => None,
    });
    let Some(first) = named.next() else {
        return Ok(from_params);
    };
    if let Some(other) = named.find(|fs| *fs != first) {
        return Err(invalid(format!(
            "the volume capabilities ask for two filesystems, {first} and {other}"
        )));
    }
    if parameters.contains_key(keys::FS_TYPE) && first != from_params {
        return Err(invalid(format!(
            "the fsType parameter says {from_params} but the filesystem asked for \
             (csi.storage.k8s.io/fstype) is {first}; give one of them"
        )));
    }
    Ok(first)
}

fn invalid(message: impl Into<String>) -> DriverError {
    DriverError::InvalidArgument(message.into())
}

fn not_ours(slot: &Slot) -> DriverError {
    DriverError::FailedPrecondition(format!(
        "disk {slot} on the RDS was not made by this driver; refusing to change it"
    ))
}

/// Sizes on the RDS fit `int64` (they are at most the pool's size).
fn size_i64(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

/// The controller capabilities this service implements.
pub const CAPABILITIES: &[rpc::Type] = &[
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
];

fn volume_of(request: &impl HasVolumeId) -> String {
    request.volume_id().to_owned()
}

/// Requests that name a volume, for the RPC span.
trait HasVolumeId {
    fn volume_id(&self) -> &str;
}

macro_rules! has_volume_id {
    ($($t:ty),*) => {$(
        impl HasVolumeId for $t {
            fn volume_id(&self) -> &str {
                &self.volume_id
            }
        }
    )*};
}

has_volume_id!(
    csi::ControllerPublishVolumeRequest,
    csi::ControllerUnpublishVolumeRequest,
    csi::DeleteVolumeRequest,
    csi::ControllerExpandVolumeRequest,
    csi::ValidateVolumeCapabilitiesRequest,
    csi::ControllerGetVolumeRequest
);

#[tonic::async_trait]
impl Controller for ControllerService {
    async fn create_volume(
        &self,
        request: Request<csi::CreateVolumeRequest>,
    ) -> Result<Response<csi::CreateVolumeResponse>, Status> {
        let req = request.into_inner();
        let volume = if req.name.is_empty() {
            String::new()
        } else {
            naming::slot_for(&req.name).to_string()
        };
        call("CreateVolume", &volume, self.create(req)).await
    }

    async fn delete_volume(
        &self,
        request: Request<csi::DeleteVolumeRequest>,
    ) -> Result<Response<csi::DeleteVolumeResponse>, Status> {
        let req = request.into_inner();
        call("DeleteVolume", &volume_of(&req), self.delete(req)).await
    }

    async fn controller_publish_volume(
        &self,
        request: Request<csi::ControllerPublishVolumeRequest>,
    ) -> Result<Response<csi::ControllerPublishVolumeResponse>, Status> {
        let req = request.into_inner();
        call(
            "ControllerPublishVolume",
            &volume_of(&req),
            self.publish(req),
        )
        .await
    }

    async fn controller_unpublish_volume(
        &self,
        request: Request<csi::ControllerUnpublishVolumeRequest>,
    ) -> Result<Response<csi::ControllerUnpublishVolumeResponse>, Status> {
        let req = request.into_inner();
        call(
            "ControllerUnpublishVolume",
            &volume_of(&req),
            self.unpublish(req),
        )
        .await
    }

    async fn validate_volume_capabilities(
        &self,
        request: Request<csi::ValidateVolumeCapabilitiesRequest>,
    ) -> Result<Response<csi::ValidateVolumeCapabilitiesResponse>, Status> {
        let req = request.into_inner();
        call(
            "ValidateVolumeCapabilities",
            &volume_of(&req),
            self.validate(req),
        )
        .await
    }

    async fn list_volumes(
        &self,
        request: Request<csi::ListVolumesRequest>,
    ) -> Result<Response<csi::ListVolumesResponse>, Status> {
        call("ListVolumes", "", self.list(request.into_inner())).await
    }

    async fn get_capacity(
        &self,
        request: Request<csi::GetCapacityRequest>,
    ) -> Result<Response<csi::GetCapacityResponse>, Status> {
        call("GetCapacity", "", self.capacity(request.into_inner())).await
    }

    async fn controller_get_capabilities(
        &self,
        _request: Request<csi::ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<csi::ControllerGetCapabilitiesResponse>, Status> {
        call("ControllerGetCapabilities", "", async {
            Ok(csi::ControllerGetCapabilitiesResponse {
                capabilities: CAPABILITIES
                    .iter()
                    .map(|&t| csi::ControllerServiceCapability {
                        r#type: Some(controller_service_capability::Type::Rpc(
                            controller_service_capability::Rpc { r#type: t as i32 },
                        )),
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn create_snapshot(
        &self,
        request: Request<csi::CreateSnapshotRequest>,
    ) -> Result<Response<csi::CreateSnapshotResponse>, Status> {
        let req = request.into_inner();
        let volume = req.source_volume_id.clone();
        call("CreateSnapshot", &volume, self.create_snapshot_rpc(req)).await
    }

    async fn delete_snapshot(
        &self,
        request: Request<csi::DeleteSnapshotRequest>,
    ) -> Result<Response<csi::DeleteSnapshotResponse>, Status> {
        call(
            "DeleteSnapshot",
            "",
            self.delete_snapshot_rpc(request.into_inner()),
        )
        .await
    }

    async fn list_snapshots(
        &self,
        request: Request<csi::ListSnapshotsRequest>,
    ) -> Result<Response<csi::ListSnapshotsResponse>, Status> {
        call(
            "ListSnapshots",
            "",
            self.list_snapshots_rpc(request.into_inner()),
        )
        .await
    }

    async fn get_snapshot(
        &self,
        request: Request<csi::GetSnapshotRequest>,
    ) -> Result<Response<csi::GetSnapshotResponse>, Status> {
        call(
            "GetSnapshot",
            "",
            self.get_snapshot_rpc(request.into_inner()),
        )
        .await
    }

    async fn controller_expand_volume(
        &self,
        request: Request<csi::ControllerExpandVolumeRequest>,
    ) -> Result<Response<csi::ControllerExpandVolumeResponse>, Status> {
        let req = request.into_inner();
        call("ControllerExpandVolume", &volume_of(&req), self.expand(req)).await
    }

    async fn controller_get_volume(
        &self,
        request: Request<csi::ControllerGetVolumeRequest>,
    ) -> Result<Response<csi::ControllerGetVolumeResponse>, Status> {
        let req = request.into_inner();
        call("ControllerGetVolume", &volume_of(&req), self.get(req)).await
    }

    async fn controller_modify_volume(
        &self,
        _request: Request<csi::ControllerModifyVolumeRequest>,
    ) -> Result<Response<csi::ControllerModifyVolumeResponse>, Status> {
        Err(Status::unimplemented("volumes cannot be modified"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::tests::{block, mount};
    use csi_proto::v1::volume_capability::access_mode::Mode;

    fn caps(list: &[csi::VolumeCapability]) -> Vec<capability::Capability> {
        capability::check_all(list).unwrap()
    }

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_capability_names_the_filesystem_the_context_records() {
        let xfs = caps(&[mount("xfs", Mode::SingleNodeWriter)]);
        // What a class with csi.storage.k8s.io/fstype: xfs sends: the
        // default (ext4) must not end up in the context.
        assert_eq!(
            filesystem(&xfs, &params(&[]), FsType::Ext4).unwrap(),
            FsType::Xfs
        );
        // No filesystem in the capability, or a block volume: the parameter
        // (or the default) stands.
        let none = caps(&[mount("", Mode::SingleNodeWriter)]);
        assert_eq!(
            filesystem(&none, &params(&[]), FsType::Xfs).unwrap(),
            FsType::Xfs
        );
        let raw = caps(&[block(Mode::SingleNodeWriter)]);
        assert_eq!(
            filesystem(&raw, &params(&[]), FsType::Ext4).unwrap(),
            FsType::Ext4
        );
        // Both saying the same is fine.
        let p = params(&[("fsType", "xfs")]);
        assert_eq!(filesystem(&xfs, &p, FsType::Xfs).unwrap(), FsType::Xfs);
    }

    #[test]
    fn two_filesystems_are_refused() {
        let xfs = caps(&[mount("xfs", Mode::SingleNodeWriter)]);
        let e = filesystem(&xfs, &params(&[("fsType", "ext4")]), FsType::Ext4).unwrap_err();
        assert!(
            matches!(&e, DriverError::InvalidArgument(m) if m.contains("fsType parameter says ext4")),
            "{e:?}"
        );
        let both = caps(&[
            mount("xfs", Mode::SingleNodeWriter),
            mount("ext4", Mode::SingleNodeWriter),
        ]);
        assert!(filesystem(&both, &params(&[]), FsType::Ext4).is_err());
    }
}
