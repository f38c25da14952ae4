//! `sim_exports_over_nvme_tcp`: a volume made through the driver's client is
//! a real NVMe/TCP namespace. The kernel's initiator attaches it, data
//! written reaches the image, growth is seen after a rescan, a target that
//! goes away and comes back is reconnected, and deleting the volume removes
//! the subsystem; the kernel logs no I/O error on the way.

use std::time::Duration;

use super::Ctx;
use crate::fabrics::{self, Connect, DirectDevice};
use crate::kmsg::{self, KmsgWatch};
use crate::rds::{self, Rds};
use crate::support::{Context, Outcome, ensure, wait_for};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const NAME: &str = "pvc-e2e-exports";
/// How long the target stays away.
const OUTAGE: Duration = Duration::from_millis(2500);

/// Runs the scenario; whatever happens, the initiator is disconnected and
/// the simulator's exports are removed afterwards.
pub async fn run(ctx: Ctx) -> Outcome {
    let mut kernel_log = KmsgWatch::start()?;
    let rds = Rds::start(&ctx.scratch.join("rds"), 20 * GIB).await?;
    let result = steps(&rds).await;
    let nqn = rds::nqn(NAME);
    if !fabrics::controllers(&nqn).is_empty() {
        let _ = rds.port_up();
        let _ = fabrics::disconnect(&nqn).await;
    }
    let stopped = rds.stop().await;
    result?;
    stopped?;
    let log = kernel_log.read_new()?;
    // The log was really read: the connect is in it.
    ensure(
        log.iter()
            .any(|m| m.contains("new ctrl") && m.contains(NAME)),
        "the kernel log does not show the connect",
    )?;
    let errors = kmsg::io_errors(&log);
    ensure(
        errors.is_empty(),
        format!("the kernel logged I/O errors:\n  {}", errors.join("\n  ")),
    )
}

async fn steps(rds: &Rds) -> Outcome {
    let nqn = rds::nqn(NAME);
    let slot = rds::slot(NAME)?;

    // The controller's create: the disk is made closed, exported to nobody;
    // opened (as a publish does), it is exported at once.
    let disk = rds
        .client
        .create_volume(&rds::volume(NAME, GIB)?)
        .await
        .context("create the volume")?;
    ensure(disk.size == GIB, format!("created {} bytes", disk.size))?;
    ensure(
        rds.sim.engine.nvmet_exports().is_empty(),
        format!(
            "exported before any publish: {:?}",
            rds.sim.engine.nvmet_exports()
        ),
    )?;
    rds.open_to_any_host(NAME).await?;
    ensure(
        rds.sim.engine.nvmet_exports() == [nqn.clone()],
        format!("exports: {:?}", rds.sim.engine.nvmet_exports()),
    )?;
    ensure(
        rds::subsystem_dir(&nqn).is_dir(),
        "no subsystem in configfs",
    )?;

    // The node's attach, by hand.
    let (hostnqn, hostid) = fabrics::new_host_identity()?;
    let answer = fabrics::connect(&Connect {
        traddr: "127.0.0.1".into(),
        trsvcid: rds::PORT,
        nqn: nqn.clone(),
        hostnqn,
        hostid,
        ctrl_loss_tmo: 60,
        reconnect_delay: 1,
    })
    .await?;
    tracing::info!(%answer, "connected");
    let device = fabrics::wait_for_namespace(&nqn, 1, Duration::from_secs(20)).await?;
    let controller = fabrics::controller(&nqn)?;
    ensure(
        fabrics::size_bytes(&device) == Some(GIB),
        format!("{device} has {:?} bytes", fabrics::size_bytes(&device)),
    )?;

    // Data goes through to the image, at both ends of the volume.
    let dev = DirectDevice::open(&device)?;
    let image = rds.image(NAME);
    let checks = [(0, 1), (GIB - MIB, 2)];
    for (offset, seed) in checks {
        write_and_check(&dev, &image, offset, seed)?;
    }

    // Growth: the controller's expand, then the node's rescan.
    let grown = rds
        .client
        .grow_volume(&slot, 2 * GIB, &rds::owner(NAME)?)
        .await
        .context("grow the volume")?;
    ensure(
        grown.size == 2 * GIB,
        format!("grown to {} bytes", grown.size),
    )?;
    fabrics::rescan(&controller)?;
    wait_for(
        "the new size",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async { (fabrics::size_bytes(&device) == Some(2 * GIB)).then_some(()) },
        || format!("{device} has {:?} bytes", fabrics::size_bytes(&device)),
    )
    .await?;
    write_and_check(&dev, &image, 2 * GIB - MIB, 3)?;

    // The target goes away for a while, and comes back.
    rds.port_down()?;
    wait_for(
        "the controller to be connecting",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async { (fabrics::state(&controller) == "connecting").then_some(()) },
        || format!("state {}", fabrics::state(&controller)),
    )
    .await?;
    // Long enough for reconnect attempts (one a second) to be refused.
    tokio::time::sleep(OUTAGE).await;
    ensure(
        fabrics::state(&controller) == "connecting",
        format!(
            "state {} while the target is away",
            fabrics::state(&controller)
        ),
    )?;
    rds.port_up()?;
    wait_for(
        "the controller to be live again",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async { (fabrics::state(&controller) == "live").then_some(()) },
        || format!("state {}", fabrics::state(&controller)),
    )
    .await?;
    // What was written before is still there, and new I/O works.
    for (offset, seed) in checks {
        let data = dev.read_at(offset, MIB as usize)?;
        ensure(
            data == fabrics::pattern(seed, MIB as usize),
            format!("data at {offset} changed across the reconnect"),
        )?;
    }
    write_and_check(&dev, &image, 512 * MIB, 4)?;
    drop(dev);

    // The node's detach, then the controller's delete.
    fabrics::disconnect(&nqn).await?;
    rds.client
        .delete_volume(&slot, &rds::owner(NAME)?, true)
        .await
        .context("delete the volume")?;
    ensure(
        !rds::subsystem_dir(&nqn).exists(),
        "the subsystem is still in configfs",
    )?;
    ensure(
        rds.sim.engine.nvmet_exports().is_empty(),
        format!("still exported: {:?}", rds.sim.engine.nvmet_exports()),
    )?;
    ensure(!image.exists(), "the image file is still there")
}

/// Writes a MiB pattern at `offset` with direct I/O, reads it back the same
/// way, and finds it in the target's image file.
fn write_and_check(dev: &DirectDevice, image: &std::path::Path, offset: u64, seed: u64) -> Outcome {
    let data = fabrics::pattern(seed, MIB as usize);
    dev.write_at(offset, &data)?;
    ensure(
        dev.read_at(offset, data.len())? == data,
        format!("read back at {offset} differs"),
    )?;
    let file = std::fs::File::open(image).context(format!("open {}", image.display()))?;
    let mut on_target = vec![0u8; data.len()];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut on_target, offset)
        .context(format!("read the image at {offset}"))?;
    ensure(
        on_target == data,
        format!("the image holds other bytes at {offset}"),
    )
}
