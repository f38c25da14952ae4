//! Volumes in subvolumes, snapshots, restores and clones: the copy-on-write
//! operations on a btrfs pool.
//!
//! Each operation is one script ([`routeros::subvolume::scripts`]) sent in
//! one exec, idempotent like the volume operations, and retried the same way
//! when the connection breaks under it. What the scripts refuse themselves
//! comes back as [`SnapshotError::Script`] with the [`ScriptFailure`], so the
//! controller can answer each with its own gRPC code:
//!
//! - the volume cannot be snapshotted or cloned (not btrfs, made before
//!   snapshots, no pool label): FAILED_PRECONDITION;
//! - the source or snapshot does not exist: NOT_FOUND;
//! - a restore or clone that RouterOS did not carry out faithfully (the image
//!   was not kept, not of the expected size, or `/disk add` refused it): the
//!   script removed what it made, and nothing is reported as restored.
//!
//! Commands are recorded in the metrics under `create` and `delete` (the
//! volume operations, whatever the layout), `snapshot`, `snapshot-get`,
//! `snapshot-list`, `snapshot-delete`, `restore` and `clone`.

use routeros::subvolume::scripts::{self, NewVolume, SnapshotFilter};
use routeros::subvolume::{
    ScriptFailure, Snapshot, SnapshotId, Subvolume, SubvolumeVolume, parse_subvolume_print,
};
use routeros::{
    CliErrorKind, Disk, MAX_NEW_SLOT_LEN, OwnerTest, PrintOutput, Script, Slot, ValueError,
};
use tracing::{debug, info, instrument};

use crate::client::{
    RdsClient, check_status, error_in, not_a_file, output_lines, parse_print, round_up_size,
    single_disk,
};
use crate::error::Error;
use crate::transport::ExecOutput;

/// Why a subvolume operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Talking to the RDS failed, or RouterOS reported one of its own errors.
    #[error(transparent)]
    Rds(#[from] Error),
    /// The script refused, or undid, the operation.
    #[error("{subject}: {failure}")]
    Script {
        /// The volume or snapshot concerned (`volume pvc-1`,
        /// `snapshot snap-…`).
        subject: String,
        /// What the script reported.
        failure: ScriptFailure,
    },
    /// A snapshot with this ID exists, but of another volume: the CSI name
    /// was used before for another source.
    #[error(
        "snapshot {id} exists already, taken of volume {existing}, not of {requested}; use another snapshot name"
    )]
    OfAnotherVolume {
        /// The snapshot's ID.
        id: String,
        /// The volume it was taken of.
        existing: String,
        /// The volume asked for now.
        requested: String,
    },
    /// A volume asked to be made from a source smaller than its size allows,
    /// or smaller than the source.
    #[error("volume {slot}: {reason}")]
    Size {
        /// The new volume's slot.
        slot: String,
        /// What is wrong with the size.
        reason: String,
    },
    /// A clone was asked for on another pool than its source's; btrfs
    /// shares data only within one filesystem.
    #[error(
        "volume {slot} cannot be cloned from {source_slot}: the source is on pool {source_pool}, the new volume would be on {target_pool}"
    )]
    OtherPool {
        /// The new volume's slot.
        slot: String,
        /// The source's slot.
        source_slot: String,
        /// The source's pool.
        source_pool: String,
        /// The new volume's pool.
        target_pool: String,
    },
}

impl SnapshotError {
    /// What the script reported, if it was the script that refused.
    pub fn failure(&self) -> Option<ScriptFailure> {
        match self {
            Self::Script { failure, .. } => Some(*failure),
            _ => None,
        }
    }
}

type Result<T, E = SnapshotError> = std::result::Result<T, E>;

/// The error in an output: a script failure first, then RouterOS's own.
fn failure_in(printed: &PrintOutput, out: &ExecOutput, subject: &dyn Fn() -> String) -> Result<()> {
    if let Some(failure) = ScriptFailure::recognise(printed.messages.iter().map(String::as_str)) {
        return Err(SnapshotError::Script {
            subject: subject(),
            failure,
        });
    }
    match error_in(printed, out) {
        Some(err) => Err(Error::RouterOs(err).into()),
        None => Ok(()),
    }
}

/// The error in an output that should print nothing.
fn failure_in_lines(out: &ExecOutput, subject: &dyn Fn() -> String) -> Result<()> {
    let printed = PrintOutput {
        records: Vec::new(),
        messages: output_lines(out).map(str::to_owned).collect(),
    };
    failure_in(&printed, out, subject)?;
    check_status(out).map_err(|e| Error::RouterOs(e).into())
}

/// The snapshots printed: the subvolumes whose names have the snapshot shape.
fn snapshots_in(
    out: &ExecOutput,
    what: &'static str,
    subject: &dyn Fn() -> String,
) -> Result<Vec<Snapshot>> {
    let mut printed =
        parse_subvolume_print(&out.stdout).map_err(|e| Error::unexpected(what, e, &out.stdout))?;
    printed.messages.extend(
        out.stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned),
    );
    failure_in(&printed, out, subject)?;
    let mut snapshots = Vec::new();
    for record in &printed.records {
        let subvolume =
            Subvolume::from_record(record).map_err(|e| Error::unexpected(what, e, &out.stdout))?;
        snapshots.extend(Snapshot::of(subvolume));
    }
    Ok(snapshots)
}

/// The one snapshot with `id` among `snapshots`, if any.
fn only(
    snapshots: Vec<Snapshot>,
    id: &SnapshotId,
    what: &'static str,
    out: &ExecOutput,
) -> Result<Option<Snapshot>> {
    let mut matching = snapshots.into_iter().filter(|s| s.name.id == *id);
    let first = matching.next();
    if matching.next().is_some() {
        return Err(SnapshotError::Script {
            subject: format!("snapshot {id}"),
            failure: ScriptFailure::SnapshotAmbiguous,
        });
    }
    if first.is_none() && out.stdout.contains(id.as_str()) {
        return Err(Error::unexpected(
            what,
            "a subvolume with the snapshot's ID is not of the snapshot shape",
            &out.stdout,
        )
        .into());
    }
    Ok(first)
}

impl RdsClient {
    async fn run_script(
        &self,
        operation: &'static str,
        script: Script,
    ) -> Result<crate::client::Reply<'_>> {
        Ok(self.run(operation, script).await?)
    }

    /// The slot checks of a new volume, and its size rounded up.
    fn new_volume(volume: &NewVolume) -> Result<NewVolume> {
        let slot = volume.slot();
        if slot.as_str().len() > MAX_NEW_SLOT_LEN {
            return Err(Error::InvalidValue(ValueError::TooLong {
                what: "slot of a new disk",
                value: slot.to_string(),
                len: slot.as_str().len(),
                max: MAX_NEW_SLOT_LEN,
            })
            .into());
        }
        let size = round_up_size(volume.size()).ok_or_else(|| SnapshotError::Size {
            slot: slot.to_string(),
            reason: format!("cannot make a volume of {} bytes", volume.size()),
        })?;
        Ok(volume.clone().with_size(size))
    }

    /// Creates a volume, or returns the disk already in its slot. On a
    /// btrfs pool the volume gets a subvolume of its own (and so can be
    /// snapshotted and cloned); on any other pool, a flat image as
    /// [`RdsClient::create_volume`] makes. The pool decides, on the RDS, in
    /// the same exec. The size is rounded up to [`crate::SIZE_GRANULARITY`].
    ///
    /// As with [`RdsClient::create_volume`], the disk returned is whatever
    /// the slot holds: the caller compares it with what it asked for, and
    /// a folder at a flat image's path is [`Error::NotAFile`].
    #[instrument(skip_all, fields(volume = %volume.slot()))]
    pub async fn provision_volume(&self, volume: &NewVolume) -> Result<Disk> {
        let volume = Self::new_volume(volume)?;
        let slot = volume.slot();
        let subject = || format!("volume {slot}");
        let reply = self
            .run_script("create", scripts::create_volume(&volume))
            .await?;
        let created = reply.read_as(|out| -> Result<Disk> {
            let printed = parse_print(out, "create")?;
            // On a pool that is not btrfs, the flat create's own refusal.
            if let Some(path) = not_a_file(&printed.messages) {
                return Err(Error::NotAFile { path }.into());
            }
            failure_in(&printed, out, &subject)?;
            single_disk(&printed, slot, out, "create")?.ok_or_else(|| {
                Error::unexpected(
                    "create",
                    "the disk was not printed after creating it",
                    &out.stdout,
                )
                .into()
            })
        });
        let disk = match created {
            // Two creates raced: the other one added the disk first.
            Err(SnapshotError::Rds(Error::RouterOs(err)))
                if err.kind == CliErrorKind::AlreadyExists =>
            {
                match self.get_volume(slot).await? {
                    Some(disk) => return Ok(disk),
                    None => return Err(Error::RouterOs(err).into()),
                }
            }
            other => other?,
        };
        info!(size = disk.size, path = ?disk.file_path, "volume present");
        Ok(disk)
    }

    /// Takes snapshot `id` of the volume `source` (a disk as read from the
    /// RDS), or returns the snapshot with that ID if it exists and is of the
    /// same volume. A snapshot with that ID of another volume is
    /// [`SnapshotError::OfAnotherVolume`]; a volume that is not in a
    /// subvolume of its own is refused before anything is sent.
    #[instrument(skip_all, fields(volume = %source.slot, snapshot = %id))]
    pub async fn create_snapshot(&self, id: &SnapshotId, source: &Disk) -> Result<Snapshot> {
        let subject = || format!("volume {}", source.slot);
        let volume = SubvolumeVolume::of_disk(source).ok_or_else(|| SnapshotError::Script {
            subject: subject(),
            failure: ScriptFailure::NotInSubvolume,
        })?;
        let script = scripts::create_snapshot(id, &volume).map_err(Error::from)?;
        let reply = self.run_script("snapshot", script).await?;
        let snapshot = reply.read_as(|out| -> Result<Snapshot> {
            let snapshots = snapshots_in(out, "snapshot", &subject)?;
            only(snapshots, id, "snapshot", out)?.ok_or_else(|| {
                Error::unexpected(
                    "snapshot",
                    "the snapshot was not printed after taking it",
                    &out.stdout,
                )
                .into()
            })
        })?;
        if snapshot.name.source != *volume.slot() {
            return Err(SnapshotError::OfAnotherVolume {
                id: id.to_string(),
                existing: snapshot.name.source.to_string(),
                requested: volume.slot().to_string(),
            });
        }
        info!(size = snapshot.name.size, "snapshot present");
        Ok(snapshot)
    }

    /// The snapshot with ID `id`, if there is one.
    #[instrument(skip_all, fields(snapshot = %id))]
    pub async fn get_snapshot(&self, id: &SnapshotId) -> Result<Option<Snapshot>> {
        let subject = || format!("snapshot {id}");
        let reply = self
            .run_script("snapshot-get", scripts::get_snapshot(id))
            .await?;
        reply.read_as(|out| {
            let snapshots = snapshots_in(out, "snapshot-get", &subject)?;
            only(snapshots, id, "snapshot-get", out)
        })
    }

    /// The snapshots the filter selects, in the RDS's order: every one of
    /// the driver's, or those of one volume (also once it is deleted).
    #[instrument(skip_all)]
    pub async fn list_snapshots(&self, filter: &SnapshotFilter) -> Result<Vec<Snapshot>> {
        let subject = || "snapshots".to_owned();
        let reply = self
            .run_script("snapshot-list", scripts::list_snapshots(filter))
            .await?;
        let snapshots = reply.read_as(|out| snapshots_in(out, "snapshot-list", &subject))?;
        Ok(match filter {
            SnapshotFilter::All => snapshots,
            SnapshotFilter::Source(slot) => snapshots
                .into_iter()
                .filter(|s| s.name.source == *slot)
                .collect(),
        })
    }

    /// Deletes snapshot `id`; succeeds if it does not exist. Volumes
    /// restored from it are not affected.
    #[instrument(skip_all, fields(snapshot = %id))]
    pub async fn delete_snapshot(&self, id: &SnapshotId) -> Result<()> {
        let subject = || format!("snapshot {id}");
        let reply = self
            .run_script("snapshot-delete", scripts::delete_snapshot(id))
            .await?;
        reply.read_as(|out| failure_in_lines(out, &subject))?;
        info!("snapshot deleted");
        Ok(())
    }

    /// Makes volume `target` from `snapshot` (as read from the RDS), or
    /// returns the disk already in its slot. The new volume shares the
    /// snapshot's data; when `target` asks for more than the snapshot's
    /// size, the disk is grown (the node grows the filesystem when it stages
    /// it). Asking for less is [`SnapshotError::Size`].
    ///
    /// The script adds the disk unexported, checks that RouterOS kept the
    /// image's data, and only then exports it; if RouterOS did not, it
    /// removes what it made and fails ([`ScriptFailure::DataNotKept`] and
    /// friends). The disk returned is whatever the slot holds, to be
    /// compared by the caller.
    #[instrument(skip_all, fields(volume = %target.slot(), snapshot = %snapshot.name.id))]
    pub async fn restore_snapshot(&self, target: &NewVolume, snapshot: &Snapshot) -> Result<Disk> {
        let target = Self::new_volume(target)?;
        check_not_smaller(&target, snapshot.name.size, "the snapshot")?;
        let script = scripts::restore_snapshot(&target, &snapshot.name.id, snapshot.name.size);
        self.populate("restore", &target, script).await
    }

    /// Makes volume `target` as a copy of the live volume `source` (a disk
    /// as read from the RDS), or returns the disk already in its slot; as
    /// [`RdsClient::restore_snapshot`] otherwise. The source must be in a
    /// subvolume of its own, on the target's pool.
    #[instrument(skip_all, fields(volume = %target.slot(), source = %source.slot))]
    pub async fn clone_volume(&self, target: &NewVolume, source: &Disk) -> Result<Disk> {
        let target = Self::new_volume(target)?;
        let from = SubvolumeVolume::of_disk(source).ok_or_else(|| SnapshotError::Script {
            subject: format!("volume {}", source.slot),
            failure: ScriptFailure::NotInSubvolume,
        })?;
        if from.pool() != target.subvolume().pool() {
            return Err(SnapshotError::OtherPool {
                slot: target.slot().to_string(),
                source_slot: source.slot.clone(),
                source_pool: from.pool().to_string(),
                target_pool: target.subvolume().pool().to_string(),
            });
        }
        check_not_smaller(&target, source.size, "its source")?;
        let script = scripts::clone_volume(&target, &from, source.size);
        self.populate("clone", &target, script).await
    }

    async fn populate(
        &self,
        operation: &'static str,
        target: &NewVolume,
        script: Script,
    ) -> Result<Disk> {
        let slot = target.slot();
        let subject = || format!("volume {slot}");
        let reply = self.run_script(operation, script).await?;
        let disk = reply.read_as(|out| -> Result<Disk> {
            let printed = parse_print(out, operation)?;
            failure_in(&printed, out, &subject)?;
            single_disk(&printed, slot, out, operation)?.ok_or_else(|| {
                Error::unexpected(
                    operation,
                    "the disk was not printed after making it",
                    &out.stdout,
                )
                .into()
            })
        })?;
        debug!(
            size = disk.size,
            export = disk.nvme_tcp_export,
            "disk after the script"
        );
        info!(size = disk.size, path = ?disk.file_path, "volume present");
        Ok(disk)
    }

    /// Removes volume `slot`: its disk, its image, and its subvolume if it
    /// has one, when the disk passes one of `owner`'s tests; succeeds if none
    /// exists. Its snapshots stay. A disk that passes none is kept and
    /// returned, for the caller to judge. With `sweep`, what an interrupted
    /// delete left is cleaned up as by [`RdsClient::delete_volume`].
    #[instrument(skip_all, fields(volume = %slot))]
    pub async fn delete_volume_and_subvolume(
        &self,
        slot: &Slot,
        owner: &[OwnerTest],
        sweep: bool,
    ) -> Result<Option<Disk>> {
        let subject = || format!("volume {slot}");
        let reply = self
            .run_script("delete", scripts::delete_volume(slot, owner, sweep))
            .await?;
        let kept = reply.read_as(|out| {
            let printed = parse_print(out, "delete")?;
            failure_in(&printed, out, &subject)?;
            Ok::<_, SnapshotError>(single_disk(&printed, slot, out, "delete")?)
        })?;
        if kept.is_none() {
            info!("volume deleted");
        }
        Ok(kept)
    }
}

/// Refuses a new volume smaller than what it is made from.
fn check_not_smaller(target: &NewVolume, source_size: u64, what: &str) -> Result<()> {
    if target.size() < source_size {
        return Err(SnapshotError::Size {
            slot: target.slot().to_string(),
            reason: format!(
                "asked for {} bytes, but {what} holds {source_size} bytes",
                target.size()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(stdout: &str) -> ExecOutput {
        ExecOutput {
            stdout: stdout.to_owned(),
            stderr: String::new(),
            exit_status: Some(0),
        }
    }

    #[test]
    fn script_failures_come_first_and_name_the_subject() {
        let o = out("rds-csi: the snapshot does not exist\r\n");
        let err = failure_in_lines(&o, &|| "snapshot snap-x".to_owned()).unwrap_err();
        assert_eq!(err.failure(), Some(ScriptFailure::SnapshotNotFound));
        assert_eq!(
            err.to_string(),
            "snapshot snap-x: rds-csi: the snapshot does not exist"
        );
        let o = out("no such item\r\n");
        assert!(matches!(
            failure_in_lines(&o, &|| String::new()),
            Err(SnapshotError::Rds(Error::RouterOs(e))) if e.kind == CliErrorKind::NotFound
        ));
        assert!(failure_in_lines(&out(""), &|| String::new()).is_ok());
    }

    #[test]
    fn snapshot_lists_keep_only_the_drivers_shape() {
        let o = out(concat!(
            "Flags: D - DELETING; S - SNAPSHOT; r - READ-ONLY\r\n",
            " 0  Sr name=\"snap-0123456789abcdef0123456789ab-pvc-1-1048576\" creation-time=2025-11-20 10:11:12\r\n",
            "\r\n",
            " 1  S  name=\"snap-daily\"\r\n",
        ));
        let snaps = snapshots_in(&o, "x", &|| String::new()).unwrap();
        assert_eq!(snaps.len(), 1);
        assert_eq!(snaps[0].name.size, 1 << 20);
        let id = SnapshotId::new("snap-0123456789abcdef0123456789ab").unwrap();
        assert!(only(snaps.clone(), &id, "x", &o).unwrap().is_some());
        let twice = vec![snaps[0].clone(), snaps[0].clone()];
        assert_eq!(
            only(twice, &id, "x", &o).unwrap_err().failure(),
            Some(ScriptFailure::SnapshotAmbiguous)
        );
        // A subvolume named with the ID but not of the shape is not ignored.
        let odd = out(" 0 name=\"snap-0123456789abcdef0123456789ab-x\"\r\n");
        let none = snapshots_in(&odd, "x", &|| String::new()).unwrap();
        assert!(matches!(
            only(none, &id, "x", &odd),
            Err(SnapshotError::Rds(Error::UnexpectedOutput { .. }))
        ));
    }
}
