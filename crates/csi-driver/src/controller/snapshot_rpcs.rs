//! CreateSnapshot, DeleteSnapshot, ListSnapshots and GetSnapshot, and
//! CreateVolume from a snapshot or from another volume: the controller's
//! copy-on-write RPCs.
//!
//! The work is one idempotent script each on the RDS
//! (`rds_client::snapshots`); the rules are [`crate::snapshots`]'s. What
//! the driver needs to find a snapshot again is in its subvolume's name (its
//! ID, its source's slot, its size), so every answer here comes from what
//! the RDS shows, also after a restart and after the source was deleted.
//!
//! Idempotency across deletions: a repeated CreateVolume whose source is
//! gone by now, and a repeated CreateSnapshot whose source volume is gone,
//! find what the first call made and answer with it; only when nothing was
//! made is the missing source NOT_FOUND.

use csi_proto::v1::{self as csi, list_snapshots_response};
use rds_client::SnapshotError;
use routeros::subvolume::scripts::SnapshotFilter;
use routeros::subvolume::{NewVolume, ScriptFailure, Snapshot, SnapshotId, SubvolumeVolume};
use routeros::{Disk, Slot};
use tracing::info;

use super::{ControllerService, invalid};
use crate::capacity::Bounds;
use crate::error::{DriverError, Result};
use crate::snapshots::{self, ContentSource, size_from_source, snapshot_id};
use crate::token;

impl ControllerService {
    /// Makes `volume` from `source`: a restore of a snapshot or a clone of
    /// a live volume, sized by [`size_from_source`]. Returns the disk in the
    /// volume's slot, for the caller to compare with the request.
    pub(super) async fn populate(
        &self,
        volume: NewVolume,
        bounds: &Bounds,
        source: &ContentSource,
    ) -> Result<Disk> {
        let slot = volume.slot().clone();
        match source {
            ContentSource::Snapshot(id) => {
                let missing = || DriverError::SnapshotNotFound(id.clone());
                let Some(id) = snapshot_id(id) else {
                    return self.existing_or(&slot, missing()).await;
                };
                let Some(snapshot) = self.rds.get_snapshot(&id).await? else {
                    return self.existing_or(&slot, missing()).await;
                };
                if !snapshot.ready_to_use() {
                    return self
                        .existing_or(
                            &slot,
                            DriverError::FailedPrecondition(format!(
                                "snapshot {id} is not ready to use (it is being removed)"
                            )),
                        )
                        .await;
                }
                let size = size_from_source(bounds, snapshot.name.size, &source.describe())?;
                let restored = self
                    .rds
                    .restore_snapshot(&volume.with_size(size), &snapshot)
                    .await;
                match restored {
                    // Deleted between the look and the restore.
                    Err(e) if e.failure() == Some(ScriptFailure::SnapshotNotFound) => {
                        self.existing_or(&slot, e.into()).await
                    }
                    other => Ok(other?),
                }
            }
            ContentSource::Volume(id) => {
                let missing = || DriverError::VolumeNotFound(id.clone());
                let Ok(source_slot) = Slot::new(id) else {
                    return self.existing_or(&slot, missing()).await;
                };
                let Some(disk) = self.own_disk(&source_slot).await? else {
                    return self.existing_or(&slot, missing()).await;
                };
                let size = size_from_source(bounds, disk.size, &source.describe())?;
                let cloned = self.rds.clone_volume(&volume.with_size(size), &disk).await;
                match cloned {
                    Err(e) if e.failure() == Some(ScriptFailure::VolumeNotFound) => {
                        self.existing_or(&slot, e.into()).await
                    }
                    other => Ok(other?),
                }
            }
        }
    }

    /// The disk already in `slot` (a repeated request whose source has gone
    /// since the first one made the volume), else `error`.
    async fn existing_or(&self, slot: &Slot, error: DriverError) -> Result<Disk> {
        match self.rds.get_volume(slot).await? {
            Some(disk) => Ok(disk),
            None => Err(error),
        }
    }

    /// CreateSnapshot: a read-only snapshot of the source volume's
    /// subvolume, named from the request's name; the same name and source
    /// give the same snapshot, the same name and another source
    /// ALREADY_EXISTS.
    pub(super) async fn create_snapshot_rpc(
        &self,
        req: csi::CreateSnapshotRequest,
    ) -> Result<csi::CreateSnapshotResponse> {
        if req.name.is_empty() {
            return Err(invalid("snapshot name is required"));
        }
        if req.source_volume_id.is_empty() {
            return Err(invalid("source volume ID is required"));
        }
        snapshots::check_parameters(&req.parameters)?;
        let source = req.source_volume_id.as_str();
        let id = SnapshotId::for_name(&req.name);
        let _guard = self.locks.try_lock(id.as_str())?;
        let missing = || DriverError::VolumeNotFound(source.to_owned());
        let Ok(slot) = Slot::new(source) else {
            return self.existing_snapshot_or(&id, source, missing()).await;
        };
        // The source too: its size, read when the snapshot is taken, must
        // not change under it (an expansion of the same volume waits).
        let _source_guard = self.locks.try_lock(slot.as_str())?;
        let Some(disk) = self.own_disk(&slot).await? else {
            return self.existing_snapshot_or(&id, source, missing()).await;
        };
        let Some(volume) = SubvolumeVolume::of_disk(&disk) else {
            return Err(SnapshotError::Script {
                subject: format!("volume {slot}"),
                failure: ScriptFailure::NotInSubvolume,
            }
            .into());
        };
        if self.snapshot_pool_limit.applies() {
            let pool = self.rds.pool(volume.pool()).await?;
            if let Some(used) = self.snapshot_pool_limit.exceeded_by(&pool) {
                let full = DriverError::ResourceExhausted(format!(
                    "pool {} is {used}% used, above the {}% up to which new snapshots are \
                     taken (--snapshot-max-pool-use); free space on the pool or delete \
                     snapshots, then try again",
                    volume.pool(),
                    self.snapshot_pool_limit.percent()
                ));
                return self.existing_snapshot_or(&id, source, full).await;
            }
        }
        let snapshot = self.rds.create_snapshot(&id, &disk).await?;
        info!(snapshot = %id, size = snapshot.name.size, "snapshot present");
        Ok(csi::CreateSnapshotResponse {
            snapshot: Some(snapshots::to_csi(&snapshot)),
        })
    }

    /// The snapshot `id` if it exists and is of `source` (a repeated
    /// request), ALREADY_EXISTS if it is of another volume, else `error`.
    async fn existing_snapshot_or(
        &self,
        id: &SnapshotId,
        source: &str,
        error: DriverError,
    ) -> Result<csi::CreateSnapshotResponse> {
        match self.rds.get_snapshot(id).await? {
            Some(snapshot) if snapshot.name.source.as_str() == source => {
                Ok(csi::CreateSnapshotResponse {
                    snapshot: Some(snapshots::to_csi(&snapshot)),
                })
            }
            Some(snapshot) => Err(SnapshotError::OfAnotherVolume {
                id: id.to_string(),
                existing: snapshot.name.source.to_string(),
                requested: source.to_owned(),
            }
            .into()),
            None => Err(error),
        }
    }

    /// DeleteSnapshot: removes the snapshot's subvolume; success when it is
    /// gone already or the ID is not one this driver gives out. Volumes
    /// restored from it are subvolumes of their own and keep their data.
    pub(super) async fn delete_snapshot_rpc(
        &self,
        req: csi::DeleteSnapshotRequest,
    ) -> Result<csi::DeleteSnapshotResponse> {
        if req.snapshot_id.is_empty() {
            return Err(invalid("snapshot ID is required"));
        }
        let Some(id) = snapshot_id(&req.snapshot_id) else {
            return Ok(csi::DeleteSnapshotResponse {});
        };
        let _guard = self.locks.try_lock(id.as_str())?;
        self.rds.delete_snapshot(&id).await?;
        info!(snapshot = %id, "snapshot deleted");
        Ok(csi::DeleteSnapshotResponse {})
    }

    /// ListSnapshots: every snapshot of the driver's on the RDS, or the one
    /// with an ID, or those of one source volume (also once it is deleted),
    /// in pages ordered by ID.
    pub(super) async fn list_snapshots_rpc(
        &self,
        req: csi::ListSnapshotsRequest,
    ) -> Result<csi::ListSnapshotsResponse> {
        let max = usize::try_from(req.max_entries).map_err(|_| {
            invalid(format!(
                "max_entries must not be negative, got {}",
                req.max_entries
            ))
        })?;
        let after = match req.starting_token.as_str() {
            "" => None,
            token => Some(token::read(token::Kind::Snapshots, token).ok_or_else(|| {
                DriverError::Aborted(format!(
                    "starting_token {token:?} is not one this driver gave out; list again from the start"
                ))
            })?),
        };
        let mut found: Vec<Snapshot> = if !req.snapshot_id.is_empty() {
            match snapshot_id(&req.snapshot_id) {
                Some(id) => self.rds.get_snapshot(&id).await?.into_iter().collect(),
                None => Vec::new(),
            }
        } else if !req.source_volume_id.is_empty() {
            match Slot::new(&req.source_volume_id) {
                Ok(slot) => {
                    self.rds
                        .list_snapshots(&SnapshotFilter::Source(slot))
                        .await?
                }
                Err(_) => Vec::new(),
            }
        } else {
            self.rds.list_snapshots(&SnapshotFilter::All).await?
        };
        if !req.source_volume_id.is_empty() {
            found.retain(|s| s.name.source.as_str() == req.source_volume_id);
        }
        let (page, resume) = snapshots::page(found, after, max);
        Ok(csi::ListSnapshotsResponse {
            entries: page
                .iter()
                .map(|s| list_snapshots_response::Entry {
                    snapshot: Some(snapshots::to_csi(s)),
                })
                .collect(),
            next_token: resume
                .map(|id| token::issue(token::Kind::Snapshots, &id))
                .unwrap_or_default(),
        })
    }

    /// GetSnapshot: the snapshot with an ID, NOT_FOUND when there is none.
    pub(super) async fn get_snapshot_rpc(
        &self,
        req: csi::GetSnapshotRequest,
    ) -> Result<csi::GetSnapshotResponse> {
        if req.snapshot_id.is_empty() {
            return Err(invalid("snapshot ID is required"));
        }
        let missing = || DriverError::SnapshotNotFound(req.snapshot_id.clone());
        let id = snapshot_id(&req.snapshot_id).ok_or_else(missing)?;
        let snapshot = self.rds.get_snapshot(&id).await?.ok_or_else(missing)?;
        Ok(csi::GetSnapshotResponse {
            snapshot: Some(snapshots::to_csi(&snapshot)),
        })
    }
}
