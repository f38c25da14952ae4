//! `csi_snapshots_restores_and_clones`: the whole driver on a simulator
//! whose pool is a real btrfs, through the CSI RPCs, on real NVMe/TCP. Data
//! A is written into a volume's filesystem; a snapshot is taken (btrfs shows
//! it sharing every extent with the volume: nothing exclusive); B
//! overwrites A; a restore of the snapshot reads A, a clone of the live
//! volume reads B, a restore to a larger size reads A from a filesystem the
//! node grew when it staged it; the source is deleted and a second restore
//! still reads A; then everything is deleted and nothing is left on the RDS.
//! Last, an XFS clone is mounted beside its source (XFS refuses a second
//! filesystem of the same UUID unless mounted `nouuid`).

use std::path::{Path, PathBuf};

use csi_proto::v1::volume_content_source::{SnapshotSource, Type, VolumeSource};
use csi_proto::v1::{self as csi};

use super::Ctx;
use super::node_lifecycle::write_synced;
use crate::csi::{Cluster, Volume, mount};
use crate::rds::POOL;
use crate::support::{Context, Outcome, ensure};

const GIB: u64 = 1 << 30;
const FS: &str = "ext4";

/// Runs the scenario on an 8 GiB btrfs (sparse, on the guest's tmpfs).
pub async fn run(ctx: Ctx) -> Outcome {
    Cluster::run_on_btrfs(&ctx.scratch, 8 * GIB, async |cluster| steps(cluster).await).await
}

fn name(n: u32) -> String {
    format!("pvc-5a0{n:05}-aaaa-bbbb-cccc-000000000001")
}

/// A volume staged and published into a pod of its own, as a pod using it
/// has it.
struct InUse {
    volume: Volume,
    staging: PathBuf,
    target: PathBuf,
}

async fn use_volume(cluster: &mut Cluster, volume: Volume) -> Outcome<InUse> {
    use_volume_as(cluster, volume, FS).await
}

async fn use_volume_as(cluster: &mut Cluster, volume: Volume, fs: &str) -> Outcome<InUse> {
    let (staging, target) = cluster.paths(&volume.id, &format!("pod-{}", volume.id));
    cluster.stage(&volume, &staging, mount(fs)).await?;
    cluster
        .publish(&volume, &staging, &target, mount(fs), false)
        .await?;
    Ok(InUse {
        volume,
        staging,
        target,
    })
}

async fn release(cluster: &mut Cluster, used: &InUse) -> Outcome {
    cluster.unpublish(&used.volume, &used.target).await?;
    cluster.unstage(&used.volume, &used.staging).await
}

fn read(used: &InUse) -> Outcome<Vec<u8>> {
    std::fs::read(used.target.join("data")).context(format!("read {}'s data", used.volume.id))
}

/// The size of the filesystem mounted at `path`.
fn fs_bytes(path: &Path) -> Outcome<u64> {
    let s = rustix::fs::statvfs(path).context("statvfs")?;
    Ok(s.f_blocks * s.f_frsize)
}

/// `btrfs filesystem du -s --raw` of `path`: (total, exclusive) bytes.
fn btrfs_du(path: &Path) -> Outcome<(u64, u64)> {
    let out = std::process::Command::new("btrfs")
        .args(["filesystem", "du", "-s", "--raw"])
        .arg(path)
        .output()
        .context("run btrfs filesystem du")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure(
        out.status.success(),
        format!(
            "btrfs filesystem du: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    )?;
    // "Total Exclusive Set-shared Filename", then one line of numbers.
    let numbers: Vec<u64> = text
        .lines()
        .nth(1)
        .context(format!("btrfs filesystem du printed {text:?}"))?
        .split_whitespace()
        .take(2)
        .map(|n| n.parse().map_err(|e| format!("{n:?} in {text:?}: {e}")))
        .collect::<Outcome<_>>()?;
    ensure(
        numbers.len() == 2,
        format!("btrfs filesystem du printed {text:?}"),
    )?;
    Ok((numbers[0], numbers[1]))
}

fn from_snapshot(snapshot: &csi::Snapshot) -> Option<Type> {
    Some(Type::Snapshot(SnapshotSource {
        snapshot_id: snapshot.snapshot_id.clone(),
    }))
}

async fn steps(cluster: &mut Cluster) -> Outcome {
    let a = crate::fabrics::pattern(1, 256 << 10);
    let b = crate::fabrics::pattern(2, 256 << 10);
    let source = cluster.create(&name(1), GIB, mount(FS), &[]).await?;
    let source = use_volume(cluster, source).await?;
    write_synced(&source.target.join("data"), &a)?;

    let snapshot = cluster
        .snapshot(
            &source.volume,
            "snapshot-5a000000-aaaa-bbbb-cccc-000000000001",
        )
        .await?;
    ensure(
        snapshot.ready_to_use && snapshot.size_bytes == GIB as i64,
        format!("the snapshot: {snapshot:?}"),
    )?;
    ensure(
        snapshot.source_volume_id == source.volume.id,
        format!("the snapshot's source: {snapshot:?}"),
    )?;
    // Copy-on-write: the snapshot shares every extent with the volume.
    let subvolume = cluster
        .scratch
        .join("rds")
        .join(POOL)
        .join("volumes")
        .join(format!(
            "{}-{}-{}",
            snapshot.snapshot_id, snapshot.source_volume_id, snapshot.size_bytes
        ));
    let (total, exclusive) = btrfs_du(&subvolume)?;
    ensure(
        total > 0 && exclusive == 0,
        format!("right after the snapshot, {total} bytes, {exclusive} of them exclusive"),
    )?;
    write_synced(&source.target.join("data"), &b)?;

    // A restore holds A, a clone B.
    let restored = cluster
        .create_from(&name(2), GIB, mount(FS), &[], from_snapshot(&snapshot))
        .await?;
    let restored = use_volume(cluster, restored).await?;
    ensure(read(&restored)? == a, "the restore does not hold A")?;
    let clone = cluster
        .create_from(
            &name(3),
            GIB,
            mount(FS),
            &[],
            Some(Type::Volume(VolumeSource {
                volume_id: source.volume.id.clone(),
            })),
        )
        .await?;
    let clone = use_volume(cluster, clone).await?;
    ensure(read(&clone)? == b, "the clone does not hold B")?;

    // Larger: the node grows the filesystem when it stages it.
    let larger = cluster
        .create_from(&name(4), 2 * GIB, mount(FS), &[], from_snapshot(&snapshot))
        .await?;
    ensure(
        larger.bytes == 2 * GIB,
        format!("the larger restore has {} bytes", larger.bytes),
    )?;
    let larger = use_volume(cluster, larger).await?;
    ensure(read(&larger)? == a, "the larger restore does not hold A")?;
    let (small, grown) = (fs_bytes(&restored.target)?, fs_bytes(&larger.target)?);
    ensure(
        grown > small + GIB / 2,
        format!(
            "the larger restore's filesystem was not grown: {grown} bytes, the restore's {small}"
        ),
    )?;

    // The source deleted: the snapshot still restores A.
    release(cluster, &source).await?;
    cluster.delete(&source.volume).await?;
    let again = cluster
        .create_from(&name(5), GIB, mount(FS), &[], from_snapshot(&snapshot))
        .await?;
    let again = use_volume(cluster, again).await?;
    ensure(
        read(&again)? == a,
        "the restore after the source's deletion does not hold A",
    )?;

    // Everything deleted; the snapshot first, under volumes made from it.
    cluster.delete_snapshot(&snapshot).await?;
    ensure(
        read(&again)? == a,
        "deleting the snapshot changed a restore",
    )?;
    for used in [restored, clone, larger, again] {
        release(cluster, &used).await?;
        cluster.delete(&used.volume).await?;
    }

    // XFS: a clone beside its mounted source.
    let xfs = cluster.create(&name(6), GIB, mount("xfs"), &[]).await?;
    let xfs = use_volume_as(cluster, xfs, "xfs").await?;
    write_synced(&xfs.target.join("data"), &a)?;
    let xfs_clone = cluster
        .create_from(
            &name(7),
            GIB,
            mount("xfs"),
            &[],
            Some(Type::Volume(VolumeSource {
                volume_id: xfs.volume.id.clone(),
            })),
        )
        .await?;
    let xfs_clone = use_volume_as(cluster, xfs_clone, "xfs").await?;
    ensure(read(&xfs_clone)? == a, "the XFS clone does not hold A")?;
    for used in [xfs_clone, xfs] {
        release(cluster, &used).await?;
        cluster.delete(&used.volume).await?;
    }

    let disks = cluster.rds.sim.engine.disks();
    ensure(disks.is_empty(), format!("disks left: {disks:?}"))?;
    let left = cluster.rds.sim.engine.execute(
        ":put [:len [/disk/btrfs/subvolume find]]",
        &rds_sim::ExecOptions::default(),
    );
    ensure(
        left.output.trim() == "0",
        format!("subvolumes left: {}", left.output),
    )?;
    let exports = cluster.rds.sim.engine.nvmet_exports();
    ensure(exports.is_empty(), format!("still exported: {exports:?}"))
}
