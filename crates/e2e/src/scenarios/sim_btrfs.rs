//! `sim_btrfs_snapshots_over_nvme_tcp`: on a simulator whose pool is a real
//! btrfs, a volume in its own subvolume, a snapshot of it, a volume restored
//! from the snapshot and a clone of the live volume are all real NVMe/TCP
//! namespaces: data written through the initiator before the snapshot is
//! read back from the restored volume, data written after it from the clone.

use std::time::Duration;

use rds_sim::LoopBtrfs;
use routeros::subvolume::SnapshotId;

use super::Ctx;
use crate::fabrics::{self, Connect, DirectDevice};
use crate::kmsg::{self, KmsgWatch};
use crate::rds::{self, POOL, Rds};
use crate::support::{Context, Outcome, ensure};

const MIB: u64 = 1 << 20;
const SIZE: u64 = 64 * MIB;
const SOURCE: &str = "pvc-e2e-btrfs-src";
const RESTORED: &str = "pvc-e2e-btrfs-restored";
const CLONE: &str = "pvc-e2e-btrfs-clone";

/// Runs the scenario; whatever happens, the initiator is disconnected, the
/// simulator's exports are removed and the btrfs is unmounted afterwards.
pub async fn run(ctx: Ctx) -> Outcome {
    let mut kernel_log = KmsgWatch::start()?;
    let root = ctx.scratch.join("rds");
    let btrfs = LoopBtrfs::create(
        &ctx.scratch.join("pool.btrfs"),
        &root.join(POOL),
        1 << 30,
        "pool1",
    )
    .context("make a loop-mounted btrfs")?;
    let rds = Rds::start_on_btrfs(&root).await?;
    let result = steps(&rds).await;
    for name in [SOURCE, RESTORED, CLONE] {
        let nqn = rds::nqn(name);
        if !fabrics::controllers(&nqn).is_empty() {
            let _ = fabrics::disconnect(&nqn).await;
        }
    }
    let stopped = rds.stop().await;
    drop(btrfs);
    result?;
    stopped?;
    let errors = kmsg::io_errors(&kernel_log.read_new()?);
    ensure(
        errors.is_empty(),
        format!("the kernel logged I/O errors:\n  {}", errors.join("\n  ")),
    )
}

/// Connects to volume `name`'s export and opens its namespace.
async fn attach(name: &str) -> Outcome<DirectDevice> {
    let nqn = rds::nqn(name);
    let (hostnqn, hostid) = fabrics::new_host_identity()?;
    fabrics::connect(&Connect {
        traddr: "127.0.0.1".into(),
        trsvcid: rds::PORT,
        nqn: nqn.clone(),
        hostnqn,
        hostid,
        ctrl_loss_tmo: 60,
        reconnect_delay: 1,
    })
    .await?;
    let device = fabrics::wait_for_namespace(&nqn, 1, Duration::from_secs(20)).await?;
    ensure(
        fabrics::size_bytes(&device) == Some(SIZE),
        format!("{device} has {:?} bytes", fabrics::size_bytes(&device)),
    )?;
    DirectDevice::open(&device)
}

async fn steps(rds: &Rds) -> Outcome {
    let c = &rds.client;
    let source = c
        .provision_volume(&rds::new_volume(SOURCE, SIZE)?)
        .await
        .context("create the source volume")?;
    ensure(
        source.file_path.as_deref() == Some(&format!("/{POOL}/volumes/{SOURCE}/volume.img")),
        format!("the source is at {:?}", source.file_path),
    )?;
    let before = fabrics::pattern(1, MIB as usize);
    let after = fabrics::pattern(2, MIB as usize);
    rds.open_to_any_host(SOURCE).await?;
    let dev = attach(SOURCE).await?;
    dev.write_at(0, &before)?;

    let snapshot = c
        .create_snapshot(&SnapshotId::for_name("snapshot-e2e"), &source)
        .await
        .context("take the snapshot")?;
    ensure(snapshot.ready_to_use(), "the snapshot is not ready")?;
    dev.write_at(0, &after)?;
    drop(dev);

    let restored = c
        .restore_snapshot(&rds::new_volume(RESTORED, SIZE)?, &snapshot)
        .await
        .context("restore the snapshot")?;
    ensure(
        !restored.nvme_tcp_export,
        "the restored volume is exported before any publish",
    )?;
    rds.open_to_any_host(RESTORED).await?;
    let dev = attach(RESTORED).await?;
    ensure(
        dev.read_at(0, MIB as usize)? == before,
        "the restored volume does not hold the data written before the snapshot",
    )?;
    drop(dev);

    c.clone_volume(&rds::new_volume(CLONE, SIZE)?, &source)
        .await
        .context("clone the volume")?;
    rds.open_to_any_host(CLONE).await?;
    let dev = attach(CLONE).await?;
    ensure(
        dev.read_at(0, MIB as usize)? == after,
        "the clone does not hold the data written after the snapshot",
    )?;
    drop(dev);

    for name in [SOURCE, RESTORED, CLONE] {
        fabrics::disconnect(&rds::nqn(name)).await?;
        let kept = c
            .delete_volume_and_subvolume(&rds::slot(name)?, &rds::owner(name)?, true)
            .await
            .context(format!("delete {name}"))?;
        ensure(kept.is_none(), format!("{name} was kept: {kept:?}"))?;
    }
    c.delete_snapshot(&snapshot.name.id)
        .await
        .context("delete the snapshot")?;
    ensure(
        rds.sim.engine.nvmet_exports().is_empty(),
        format!("still exported: {:?}", rds.sim.engine.nvmet_exports()),
    )
}
