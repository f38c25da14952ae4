//! `sim_restart_reconciles_nvmet`: a simulator restarted in the same guest
//! adopts the exports it made (a connected initiator never notices),
//! removes the one whose disk went away while it was down, and leaves a
//! subsystem it did not make alone.

use std::path::Path;
use std::time::Duration;

use rds_sim::{Engine, ExecOptions, SimConfig};

use super::Ctx;
use crate::fabrics::{self, Connect, DirectDevice};
use crate::kmsg::{self, KmsgWatch};
use crate::rds::{self, Rds};
use crate::support::{Context, Outcome, ensure};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const CAPACITY: u64 = 20 * GIB;
const KEEP: &str = "pvc-e2e-keep";
const GONE: &str = "pvc-e2e-gone";
const FOREIGN: &str = "nqn.2024-01.io.example.e2e:not-the-simulators";

/// Runs the scenario and cleans up after it, whatever happens.
pub async fn run(ctx: Ctx) -> Outcome {
    let mut kernel_log = KmsgWatch::start()?;
    let foreign = rds::subsystem_dir(FOREIGN);
    std::fs::create_dir(&foreign).context("make a foreign subsystem")?;
    let root = ctx.scratch.join("rds");
    let result = steps(&root).await;
    let keep = rds::nqn(KEEP);
    if !fabrics::controllers(&keep).is_empty() {
        let _ = fabrics::disconnect(&keep).await;
    }
    let foreign_survived = foreign.is_dir();
    let removed = std::fs::remove_dir(&foreign).context("remove the foreign subsystem");
    result?;
    ensure(foreign_survived, "the foreign subsystem was removed")?;
    removed?;
    let errors = kmsg::io_errors(&kernel_log.read_new()?);
    ensure(
        errors.is_empty(),
        format!("the kernel logged I/O errors:\n  {}", errors.join("\n  ")),
    )
}

async fn steps(root: &Path) -> Outcome {
    let keep = rds::nqn(KEEP);

    // The first simulator exports two volumes; one is attached and written.
    let first = Rds::start(root, CAPACITY).await?;
    for name in [KEEP, GONE] {
        first
            .client
            .create_volume(&rds::volume(name, GIB)?)
            .await
            .context(format!("create {name}"))?;
        first.open_to_any_host(name).await?;
    }
    let (hostnqn, hostid) = fabrics::new_host_identity()?;
    fabrics::connect(&Connect {
        traddr: "127.0.0.1".into(),
        trsvcid: rds::PORT,
        nqn: keep.clone(),
        hostnqn,
        hostid,
        ctrl_loss_tmo: 60,
        reconnect_delay: 1,
    })
    .await?;
    let device = fabrics::wait_for_namespace(&keep, 1, Duration::from_secs(20)).await?;
    let controller = fabrics::controller(&keep)?;
    let dev = DirectDevice::open(&device)?;
    let data = fabrics::pattern(7, MIB as usize);
    dev.write_at(0, &data)?;
    first.stop_leaving_exports().await;

    // While no simulator runs, the other volume's disk goes away.
    let engine = Engine::open(SimConfig::single_pool(root, rds::POOL, CAPACITY))
        .context("open the simulator's state without nvmet")?;
    let removed = engine.execute(
        &format!("/disk remove [find where slot=\"{GONE}\"]"),
        &ExecOptions::default(),
    );
    ensure(
        !removed.failed,
        format!("remove {GONE}: {}", removed.output),
    )?;
    drop(engine);

    // The second simulator reconciles.
    let second = Rds::start(root, CAPACITY).await?;
    let outcome = check_second(&second, &controller, &dev, &data).await;
    drop(dev);
    fabrics::disconnect(&keep).await?;
    second
        .client
        .delete_volume(&rds::slot(KEEP)?, &rds::owner(KEEP)?, true)
        .await
        .context(format!("delete {KEEP}"))?;
    let stopped = second.stop().await;
    outcome?;
    stopped
}

async fn check_second(second: &Rds, controller: &Path, dev: &DirectDevice, data: &[u8]) -> Outcome {
    let keep = rds::nqn(KEEP);
    ensure(
        second.sim.engine.nvmet_exports() == [keep.clone()],
        format!("exports: {:?}", second.sim.engine.nvmet_exports()),
    )?;
    ensure(
        !rds::subsystem_dir(&rds::nqn(GONE)).exists(),
        "the removed disk's subsystem is still there",
    )?;
    ensure(
        loop_devices_holding(&second.image(GONE)).is_empty(),
        "a loop device still holds the removed disk's image",
    )?;
    // Adopted, not re-created: the controller stayed live throughout.
    ensure(
        fabrics::state(controller) == "live",
        format!("controller state {}", fabrics::state(controller)),
    )?;
    ensure(
        dev.read_at(0, data.len())? == data,
        "the data differs after the restart",
    )?;
    dev.write_at(MIB, data)?;
    ensure(
        dev.read_at(MIB, data.len())? == data,
        "a write after the restart reads back differently",
    )
}

/// `/dev/loopN` of every loop device whose backing file is `image`.
fn loop_devices_holding(image: &Path) -> Vec<String> {
    let image = std::fs::canonicalize(image).unwrap_or_else(|_| image.to_path_buf());
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_to_string(e.path().join("loop/backing_file"))
                .is_ok_and(|f| Path::new(f.trim_end()) == image)
        })
        .map(|e| format!("/dev/{}", e.file_name().to_string_lossy()))
        .collect()
}
