//! `rds-csi-plugin doctor --check-snapshots`: whether this RouterOS makes
//! snapshots, restores and clones the way the driver assumes
//! (docs/routeros-cli.md, "Snapshots, restores and clones"), tried on a
//! scratch volume with this machine's NVMe/TCP initiator.
//!
//! It needs both sides: SSH to the RDS (the controller's flags) and a kernel
//! with `nvme-tcp` (the node's), so it runs with `--mode all`, on a node or
//! any Linux machine that reaches the RDS's NVMe/TCP port. It changes
//! things, and only its own: volumes `doctor-snap-<random>` (64 MiB, and a
//! restore of 128 MiB) in `--volume-path` and one snapshot, all removed at
//! the end, also when a check fails.
//!
//! 1. The scratch volume is made in a subvolume of its own (the volume
//!    path is on a labelled btrfs pool, and RouterOS makes subvolumes there).
//! 2. A marker is written to it over NVMe/TCP, at its start and its end.
//! 3. A snapshot: read-only, of the recorded size, with its creation time.
//! 4. A restore of the snapshot at twice the size: it must hold both markers
//!    (RouterOS kept the image's data when a disk was added on it, the
//!    question the simulator leaves open with `--existing-image`) and be
//!    as large as asked (`/disk set file-size=` grew it).
//! 5. A clone of the live volume holds both markers.
//! 6. The source deleted, the snapshot is still there and ready.
//! 7. Everything is disconnected and removed.

pub mod verdict;

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Duration;

use csi_driver::NodeConfig;
use nvme_host::{ConnectionConfig, Host, HostIdentity, RetryPolicy};
use rds_client::RdsClient;
use routeros::subvolume::{NewVolume, Snapshot, SnapshotId, SubvolumeVolume};
use routeros::{Comment, Disk, ExportState, HostList, Nqn, OwnerTest, Slot};
use tokio::time::Instant;
use verdict::{CleanupSeen, CopySeen, OutlivesSeen, ScratchSeen, SnapshotSeen};

use super::{Report, name};
use crate::config::ControllerConfig;

/// The scratch volume's size: small, but a whole number of MiB.
const SCRATCH_BYTES: u64 = 64 << 20;

/// The marker's size, written at the volume's start and at its end.
const MARKER_BYTES: usize = 4096;

/// How long connecting, the device appearing, and one read or write may
/// take.
const IO_WAIT: Duration = Duration::from_secs(60);

/// The snapshot checks, in order.
pub const CHECKS: [&str; 7] = [
    name::SNAPSHOT_SCRATCH,
    name::SNAPSHOT_MARKER,
    name::SNAPSHOT_TAKEN,
    name::SNAPSHOT_RESTORE,
    name::SNAPSHOT_CLONE,
    name::SNAPSHOT_OUTLIVES,
    name::SNAPSHOT_CLEANUP,
];

/// The comment on every scratch volume: it is what the clean-up checks
/// before it removes one.
const COMMENT: &str = "rds-csi doctor --check-snapshots scratch volume, safe to remove";

/// What the run works with.
struct Scratch {
    suffix: String,
    volume_path: routeros::RdsPath,
    nqn_prefix: String,
    port: u16,
    traddr: String,
    comment: Comment,
    host: Host,
    identity: HostIdentity,
}

impl Scratch {
    fn slot(&self, tail: &str) -> Result<Slot, String> {
        Slot::new(&format!("doctor-snap-{}{tail}", self.suffix)).map_err(|e| e.to_string())
    }

    fn nqn(&self, slot: &Slot) -> Result<Nqn, String> {
        Nqn::new(&format!("{}{slot}", self.nqn_prefix)).map_err(|e| e.to_string())
    }

    fn volume(&self, slot: &Slot, size: u64) -> Result<NewVolume, String> {
        NewVolume::new(
            slot.clone(),
            &self.volume_path,
            size,
            self.port,
            self.nqn(slot)?,
            self.comment.clone(),
        )
        .map_err(|e| e.to_string())
    }

    fn owner(&self) -> Vec<OwnerTest> {
        vec![OwnerTest::CommentIs(self.comment.clone())]
    }

    /// The marker: the same bytes for the whole run, different between runs.
    fn marker(&self, at_end: bool) -> Vec<u8> {
        let head = format!(
            "rds-csi doctor --check-snapshots marker {} {}\n",
            self.suffix,
            if at_end { "end" } else { "start" }
        );
        let mut bytes = head.into_bytes();
        let seed = bytes
            .iter()
            .fold(7u8, |a, b| a.wrapping_mul(31).wrapping_add(*b));
        let mut next = seed;
        while bytes.len() < MARKER_BYTES {
            next = next.wrapping_mul(167).wrapping_add(13);
            bytes.push(next);
        }
        bytes
    }

    /// Opens `slot`'s export to this machine's identity alone, as a publish
    /// to this node would (every new volume, restore and clone is made
    /// closed to every host), then connects it and returns its device node
    /// and size.
    async fn attach(&self, client: &RdsClient, slot: &Slot) -> Result<(PathBuf, u64), String> {
        let nqn = self.nqn(slot)?;
        let me = Nqn::new(&self.identity.nqn)
            .map_err(|e| format!("this machine's host NQN {}: {e}", self.identity.nqn))?;
        let open = ExportState {
            export: true,
            hosts: HostList::new([&me]),
        };
        let disk = client
            .set_export(slot, &self.owner(), &ExportState::default(), &open, false)
            .await
            .map_err(|e| format!("opening the export of {slot} to this machine: {e}"))?
            .ok_or_else(|| format!("{slot} is gone"))?;
        if !disk.nvme_tcp_export || disk.allowed_hosts != [me.to_string()] {
            return Err(format!(
                "{slot} was not opened to this machine ({}): its export is {}, open to {:?}",
                me,
                if disk.nvme_tcp_export { "on" } else { "off" },
                disk.allowed_hosts
            ));
        }
        let mut cfg = ConnectionConfig::new(
            self.traddr.clone(),
            self.port,
            nqn.as_str(),
            self.identity.clone(),
        );
        cfg.ctrl_loss_tmo = Some(60);
        cfg.reconnect_delay = Some(1);
        let deadline = Instant::now() + IO_WAIT;
        self.host
            .connect_with_retry(&cfg, deadline, RetryPolicy::default())
            .await
            .map_err(|e| e.to_string())?;
        let device = self
            .host
            .wait_for_block_device(nqn.as_str(), deadline)
            .await
            .map_err(|e| e.to_string())?;
        Ok((device.path, device.size_bytes))
    }

    async fn detach(&self, slot: &Slot) -> Result<(), String> {
        let nqn = self.nqn(slot)?;
        self.host
            .disconnect_and_wait(nqn.as_str(), Instant::now() + IO_WAIT)
            .await
            .map_err(|e| e.to_string())
    }

    /// Writes both markers to `slot` (the end one at `end`), then
    /// disconnects it.
    async fn write_markers(&self, client: &RdsClient, slot: &Slot, end: u64) -> Result<(), String> {
        let (device, _) = self.attach(client, slot).await?;
        let (start_marker, end_marker) = (self.marker(false), self.marker(true));
        let written = blocking(move || {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&device)?;
            file.write_all_at(&start_marker, 0)?;
            file.write_all_at(&end_marker, end - MARKER_BYTES as u64)?;
            file.sync_all()
        })
        .await;
        let detached = self.detach(slot).await;
        written.and(detached)
    }

    /// Attaches `slot`, reads whether both markers are where the source's
    /// end was (`end`), and disconnects: (device size, markers found).
    async fn read_markers(
        &self,
        client: &RdsClient,
        slot: &Slot,
        end: u64,
    ) -> Result<(u64, bool), String> {
        let (device, size) = self.attach(client, slot).await?;
        let (start_marker, end_marker) = (self.marker(false), self.marker(true));
        let read = blocking(move || {
            let file = std::fs::File::open(&device)?;
            let mut start = vec![0u8; MARKER_BYTES];
            let mut at_end = vec![0u8; MARKER_BYTES];
            file.read_exact_at(&mut start, 0)?;
            file.read_exact_at(&mut at_end, end - MARKER_BYTES as u64)?;
            Ok(start == start_marker && at_end == end_marker)
        })
        .await;
        let detached = self.detach(slot).await;
        let found = read?;
        detached?;
        Ok((size, found))
    }
}

/// Runs blocking device I/O off the async threads, for at most [`IO_WAIT`].
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, String> {
    match tokio::time::timeout(IO_WAIT, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Err(e)) => Err(format!("the I/O did not finish: {e}")),
        Err(_) => Err(format!("the device did not answer within {IO_WAIT:?}")),
    }
}

/// Runs the snapshot checks against the RDS `client` reaches, from this
/// machine's initiator under the node's host root.
pub async fn run(c: &ControllerConfig, n: &NodeConfig, client: &RdsClient, report: &mut Report) {
    let prepared = (|| {
        let identity = HostIdentity::load_or_create(&n.etc_nvme, &n.state_dir)
            .map_err(|e| format!("this machine's NVMe host identity: {e}"))?;
        let comment = Comment::new(COMMENT).map_err(|e| e.to_string())?;
        Ok::<_, String>(Scratch {
            suffix: nvme_host::identity::new_uuid_v4()
                .chars()
                .filter(char::is_ascii_hexdigit)
                .take(8)
                .collect(),
            volume_path: c.defaults.volume_path.clone(),
            nqn_prefix: c.nqn_prefix.clone(),
            port: c.defaults.nvme_port,
            traddr: c.defaults.nvme_address.clone(),
            comment,
            host: Host::new(&n.host_root),
            identity,
        })
    })();
    let scratch = match prepared {
        Ok(s) => s,
        Err(e) => {
            report.push(verdict::scratch(
                c.defaults.volume_path.as_str(),
                &ScratchSeen::Failed(e),
            ));
            report.skip_all(&CHECKS[1..], "needs the scratch volume");
            return;
        }
    };
    let mut made: Vec<Slot> = Vec::new();
    let mut snapshot_made: Option<SnapshotId> = None;
    checks(&scratch, client, report, &mut made, &mut snapshot_made).await;

    // The clean-up, whatever happened: every connection of ours, every
    // volume made, the snapshot.
    let mut seen = CleanupSeen::default();
    for slot in &made {
        if let Err(e) = scratch.detach(slot).await {
            seen.failed.push(format!("the connection to {slot}: {e}"));
        }
        match client
            .delete_volume_and_subvolume(slot, &scratch.owner(), false)
            .await
        {
            Ok(None) => seen.removed.push(format!("volume {slot}")),
            Ok(Some(_)) => seen.failed.push(format!(
                "volume {slot}: its comment is no longer the doctor's"
            )),
            Err(e) => seen.failed.push(format!("volume {slot}: {e}")),
        }
    }
    if let Some(id) = &snapshot_made {
        match client.delete_snapshot(id).await {
            Ok(()) => seen.removed.push(format!("snapshot {id}")),
            Err(e) => seen.failed.push(format!("snapshot {id}: {e}")),
        }
    }
    report.push(verdict::cleanup(&seen));
}

/// Checks 1 to 6; records in `made` every volume that may exist (deleted
/// or not) and in `snapshot` the snapshot, for the clean-up.
async fn checks(
    scratch: &Scratch,
    client: &RdsClient,
    report: &mut Report,
    made: &mut Vec<Slot>,
    snapshot_made: &mut Option<SnapshotId>,
) {
    let volume_path = scratch.volume_path.as_str();
    let slots = (scratch.slot(""), scratch.slot("-r"), scratch.slot("-c"));
    let (Ok(source_slot), Ok(restore_slot), Ok(clone_slot)) = slots else {
        report.push(verdict::scratch(
            volume_path,
            &ScratchSeen::Failed("cannot name the scratch volumes".into()),
        ));
        report.skip_all(&CHECKS[1..6], "needs the scratch volume");
        return;
    };
    made.push(source_slot.clone());
    let source = match scratch.volume(&source_slot, SCRATCH_BYTES) {
        Ok(volume) => client
            .provision_volume(&volume)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    let source: Disk = match source {
        Ok(disk) => {
            let in_subvolume = SubvolumeVolume::of_disk(&disk).is_some();
            report.push(verdict::scratch(
                volume_path,
                &ScratchSeen::Made {
                    slot: source_slot.to_string(),
                    image: disk.file_path.clone().unwrap_or_default(),
                    in_subvolume,
                },
            ));
            if !in_subvolume {
                report.skip_all(&CHECKS[1..6], "needs a volume in a subvolume of its own");
                return;
            }
            disk
        }
        Err(e) => {
            report.push(verdict::scratch(volume_path, &ScratchSeen::Failed(e)));
            report.skip_all(&CHECKS[1..6], "needs the scratch volume");
            return;
        }
    };
    let end = source.size;

    let written = scratch.write_markers(client, &source_slot, end).await;
    let marker_ok = written.is_ok();
    report.push(verdict::marker(source_slot.as_str(), &written));
    if !marker_ok {
        report.skip_all(&CHECKS[2..6], "needs the marker");
        return;
    }

    let id = SnapshotId::for_name(&format!("doctor-snap-{}", scratch.suffix));
    *snapshot_made = Some(id.clone());
    let snapshot: Snapshot = match client.create_snapshot(&id, &source).await {
        Ok(snapshot) => {
            let check = verdict::snapshot(&SnapshotSeen::Taken {
                id: id.to_string(),
                ready: snapshot.ready_to_use(),
                size: snapshot.name.size,
                source_size: source.size,
                creation_time: snapshot.subvolume.creation_time.is_some(),
            });
            let ok = check.status == super::Status::Ok;
            report.push(check);
            if !ok {
                report.skip_all(&CHECKS[3..6], "needs a snapshot as the driver takes it");
                return;
            }
            snapshot
        }
        Err(e) => {
            report.push(verdict::snapshot(&SnapshotSeen::Failed(e.to_string())));
            report.skip_all(&CHECKS[3..6], "needs the snapshot");
            return;
        }
    };

    // Twice the size: also whether /disk set file-size= grows a restore.
    made.push(restore_slot.clone());
    let restored = copy(
        scratch,
        client,
        &restore_slot,
        2 * end,
        end,
        Origin::Snapshot(&snapshot),
    )
    .await;
    report.push(verdict::restore(&restored));

    made.push(clone_slot.clone());
    let cloned = copy(
        scratch,
        client,
        &clone_slot,
        end,
        end,
        Origin::Volume(&source),
    )
    .await;
    report.push(verdict::clone(&cloned));

    let outlives = match client
        .delete_volume_and_subvolume(&source_slot, &scratch.owner(), false)
        .await
    {
        Ok(Some(_)) => OutlivesSeen::Failed(format!(
            "volume {source_slot} was not deleted: its comment is no longer the doctor's"
        )),
        Err(e) => OutlivesSeen::Failed(e.to_string()),
        Ok(None) => {
            let by_id = client.get_snapshot(&id).await;
            let of_source = client
                .list_snapshots(&routeros::subvolume::scripts::SnapshotFilter::Source(
                    source_slot.clone(),
                ))
                .await;
            match (by_id, of_source) {
                (Ok(found), Ok(listed)) => OutlivesSeen::Looked {
                    found: found.is_some() && listed.iter().any(|s| s.name.id == id),
                    ready: found.is_some_and(|s| s.ready_to_use()),
                },
                (Err(e), _) | (_, Err(e)) => OutlivesSeen::Failed(e.to_string()),
            }
        }
    };
    report.push(verdict::outlives(&outlives));
}

/// What a copy is made from.
enum Origin<'a> {
    /// A restore of this snapshot.
    Snapshot(&'a Snapshot),
    /// A clone of this live volume.
    Volume(&'a Disk),
}

/// Makes volume `slot` of `size` bytes from `origin`, then reads the
/// markers (the end one at `end`) from it over NVMe/TCP.
async fn copy(
    scratch: &Scratch,
    client: &RdsClient,
    slot: &Slot,
    size: u64,
    end: u64,
    origin: Origin<'_>,
) -> CopySeen {
    let volume = match scratch.volume(slot, size) {
        Ok(volume) => volume,
        Err(message) => {
            return CopySeen::Failed {
                failure: None,
                message,
            };
        }
    };
    let made = match origin {
        Origin::Snapshot(snapshot) => client.restore_snapshot(&volume, snapshot).await,
        Origin::Volume(source) => client.clone_volume(&volume, source).await,
    };
    match made {
        Ok(_) => match scratch.read_markers(client, slot, end).await {
            Ok((found_size, marker)) => CopySeen::Made {
                slot: slot.to_string(),
                size: found_size,
                asked: size,
                marker,
            },
            Err(message) => CopySeen::Failed {
                failure: None,
                message: format!("reading it over NVMe/TCP: {message}"),
            },
        },
        Err(e) => CopySeen::Failed {
            failure: e.failure(),
            message: e.to_string(),
        },
    }
}
