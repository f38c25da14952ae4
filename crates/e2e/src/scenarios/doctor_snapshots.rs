//! `doctor_check_snapshots`: `rds-csi-plugin doctor --check-snapshots`
//! against the simulator on a real btrfs, exporting through nvmet, from this
//! kernel's initiator, under the answers the simulator can give where
//! RouterOS's is not known (`--existing-image`): where `/disk add` keeps an
//! existing image, every snapshot check passes; where it refuses or
//! replaces it, the restore check fails naming that answer. (`keep` and
//! `truncate` give the same lines as `keep-and-grow` and `replace`: the
//! doctor's unit tests cover every line.) Each run leaves nothing behind: no
//! volume, no subvolume, no export, no connection.

use std::path::Path;
use std::process::{Command, Stdio};

use rds_sim::{Behaviour, ExecOptions, ExistingImage, LoopBtrfs};
use test_support::sim::Login;

use super::Ctx;
use crate::fabrics;
use crate::rds::{self, POOL, Rds};
use crate::support::{Context, Outcome, ensure};

/// A volume of somebody else's, exported the whole time: nvmet listens on
/// the port only while something is exported, and the doctor's NVMe/TCP
/// port check would fail on an idle one.
const KEEPER: &str = "pvc-e2e-doctor-keeper";

/// The snapshot checks' names, as printed.
const CHECKS: [&str; 7] = [
    "snapshots: scratch volume",
    "snapshots: marker written",
    "snapshots: snapshot",
    "snapshots: restore",
    "snapshots: clone",
    "snapshots: outlives its volume",
    "snapshots: clean-up",
];

/// Runs the scenario on a 4 GiB btrfs; the btrfs is unmounted afterwards.
pub async fn run(ctx: Ctx) -> Outcome {
    let root = ctx.scratch.join("rds");
    let btrfs = LoopBtrfs::create(
        &ctx.scratch.join("pool.btrfs"),
        &root.join(POOL),
        4 << 30,
        crate::csi::BTRFS_LABEL,
    )
    .context("make the pool's btrfs")?;
    let result = answers(&ctx.scratch, &root).await;
    drop(btrfs);
    result
}

async fn answers(scratch: &Path, root: &Path) -> Outcome {
    for (answer, passes, says) in [
        (ExistingImage::KeepAndGrow, true, "keep-and-grow or keep"),
        (ExistingImage::Refuse, false, "--existing-image refuse"),
        (ExistingImage::Replace, false, "replace or truncate"),
    ] {
        let rds = Rds::start_on_btrfs_behaving(
            root,
            Behaviour {
                existing_image: answer,
                ..Behaviour::default()
            },
        )
        .await?;
        let result = one_answer(&rds, scratch, passes, says)
            .await
            .map_err(|e| format!("with --existing-image {answer:?}: {e}"));
        let stopped = rds.stop().await;
        result?;
        stopped?;
    }
    Ok(())
}

async fn one_answer(rds: &Rds, scratch: &Path, passes: bool, says: &str) -> Outcome {
    let run = rds.sim.engine.execute(
        &format!(
            ":if ([:len [/disk find where slot={KEEPER}]] = 0) do={{/disk add type=file \
             file-path=/{POOL}/volumes/{KEEPER}.img file-size=64M slot={KEEPER} \
             nvme-tcp-export=yes nvme-tcp-server-port={} nvme-tcp-server-nqn=\"{}\"}}",
            rds::PORT,
            rds::nqn(KEEPER)
        ),
        &ExecOptions::default(),
    );
    ensure(
        !run.failed,
        format!("cannot export {KEEPER}: {}", run.output),
    )?;
    let (status, out) = doctor(rds, scratch).await?;
    let tagged = |tag: &str, check: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{tag:<6} {check}:")))
            .map(str::to_owned)
    };
    if passes {
        for check in CHECKS {
            ensure(
                tagged("[ok]", check).is_some(),
                format!("{check} did not pass:\n{out}"),
            )?;
        }
        let restore = tagged("[ok]", CHECKS[3]).unwrap_or_default();
        ensure(
            restore.contains(says),
            format!("the restore does not say {says:?}:\n{out}"),
        )?;
        ensure(status == Some(0), format!("exit status {status:?}:\n{out}"))?;
    } else {
        let restore =
            tagged("[FAIL]", CHECKS[3]).context(format!("the restore did not fail:\n{out}"))?;
        ensure(
            restore.contains(says),
            format!("the restore does not say {says:?}:\n{out}"),
        )?;
        for check in [CHECKS[0], CHECKS[1], CHECKS[2], CHECKS[6]] {
            ensure(
                tagged("[ok]", check).is_some(),
                format!("{check} did not pass:\n{out}"),
            )?;
        }
        ensure(status == Some(1), format!("exit status {status:?}:\n{out}"))?;
    }
    left_nothing(rds, &out)
}

/// Nothing of the doctor's remains: only the keeper's disk and export, no
/// subvolume, no connection.
fn left_nothing(rds: &Rds, out: &str) -> Outcome {
    let disks: Vec<String> = rds.sim.engine.disks().into_iter().map(|d| d.slot).collect();
    ensure(disks == [KEEPER], format!("disks: {disks:?}\n{out}"))?;
    let subvolumes = rds.sim.engine.execute(
        ":put [:len [/disk/btrfs/subvolume find]]",
        &ExecOptions::default(),
    );
    ensure(
        subvolumes.output.trim() == "0",
        format!("subvolumes left: {}\n{out}", subvolumes.output),
    )?;
    ensure(
        rds.sim.engine.nvmet_exports() == [rds::nqn(KEEPER)],
        format!("exports: {:?}", rds.sim.engine.nvmet_exports()),
    )?;
    let connected: Vec<String> = fabrics::connected_nqns()
        .into_iter()
        .filter(|n| n.contains("doctor-snap-"))
        .collect();
    ensure(
        connected.is_empty(),
        format!("connections left: {connected:?}"),
    )
}

/// Runs the doctor with the plugin's flags for `rds`, `--mode all` and
/// `--check-snapshots`: its exit status and what it printed.
async fn doctor(rds: &Rds, scratch: &Path) -> Outcome<(Option<i32>, String)> {
    let login = Login::write(&rds.sim, scratch).context("cannot write the simulator's SSH key")?;
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let mut command = Command::new(exe);
    command
        .args(["plugin", "doctor", "--check-snapshots", "--mode", "all"])
        .args(["--node-id", "guest"])
        .args(login.flags())
        .args(["--volume-path", &format!("/{POOL}/volumes")])
        .args(["--nvme-address", "127.0.0.1"])
        .arg("--state-dir")
        .arg(scratch.join("doctor-state"))
        .arg("--etc-nvme")
        .arg(scratch.join("doctor-etc-nvme"))
        .stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .context("the doctor did not finish")?
        .context("cannot run the doctor")?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok((output.status.code(), text))
}
