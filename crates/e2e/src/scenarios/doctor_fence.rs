//! `doctor_check_fence`: `rds-csi-plugin doctor --check-fence` against the
//! simulator exporting through nvmet, from this kernel's initiator. With
//! the simulator fencing as the driver assumes RouterOS does, every fence
//! check passes and nothing is left behind; with the simulator letting any
//! host in (a RouterOS that ignores the allow list), the doctor says so and
//! fails, and still cleans up.

use std::path::Path;
use std::process::{Command, Stdio};

use russh::keys::HashAlg;
use russh::keys::ssh_key::LineEnding;

use super::Ctx;
use crate::fabrics;
use crate::rds::{self, Rds};
use crate::support::{Context, Outcome, ensure};

const GIB: u64 = 1 << 30;

/// A volume of somebody else's, exported the whole time.
const KEEPER: &str = "pvc-e2e-doctor-keeper";

/// The fence checks' names, as printed.
const FENCE_CHECKS: [&str; 5] = [
    "fence: scratch disk",
    "fence: listed host only",
    "fence: list of two",
    "fence: unpublish cuts off",
    "fence: clean-up",
];

/// Runs the scenario; the simulator's exports are removed afterwards.
pub async fn run(ctx: Ctx) -> Outcome {
    let rds = Rds::start(&ctx.scratch.join("rds"), 20 * GIB).await?;
    let result = steps(&rds, &ctx.scratch).await;
    let stopped = rds.stop().await;
    result?;
    stopped
}

async fn steps(rds: &Rds, scratch: &Path) -> Outcome {
    std::fs::create_dir_all(scratch.join("rds").join(rds::POOL).join("volumes"))
        .context("cannot make the volume folder")?;
    let key = scratch.join("id_ed25519");
    let key_text = rds
        .sim
        .client_key
        .to_openssh(LineEnding::LF)
        .context("cannot write the SSH key")?;
    std::fs::write(&key, key_text.as_bytes()).context("cannot write the SSH key")?;
    // Another volume exported on the port, as on an RDS in use: nvmet (and
    // perhaps RouterOS) listens only while something is exported there,
    // and the doctor's NVMe/TCP port check would fail on an idle one.
    let run = rds.sim.engine.execute(
        &format!(
            "/disk add type=file file-path=/{}/volumes/{KEEPER}.img file-size=64M slot={KEEPER} \
             nvme-tcp-export=yes nvme-tcp-server-port={} nvme-tcp-server-nqn=\"{}\" \
             nvme-tcp-server-allow-host-name=\"nqn.2024-01.io.srvlab.csi.rds:node:nobody\"",
            rds::POOL,
            rds::PORT,
            rds::nqn(KEEPER)
        ),
        &rds_sim::ExecOptions::default(),
    );
    ensure(
        !run.failed,
        format!("cannot export {KEEPER}: {}", run.output),
    )?;

    let (status, out) = doctor(rds, scratch, &key).await?;
    for check in FENCE_CHECKS {
        ensure(
            out.lines()
                .any(|l| l.starts_with(&format!("[ok]   {check}:"))),
            format!("{check} did not pass:\n{out}"),
        )?;
    }
    ensure(status == Some(0), format!("exit status {status:?}:\n{out}"))?;
    left_nothing(rds, &out)?;

    // A RouterOS that does not enforce the list.
    rds.sim.engine.faults().set_ignore_allow_list(true);
    let (status, out) = doctor(rds, scratch, &key).await?;
    rds.sim.engine.faults().set_ignore_allow_list(false);
    ensure(
        out.lines().any(|l| {
            l.starts_with("[FAIL] fence: listed host only:") && l.contains("connected anyway")
        }),
        format!("an open export was not reported:\n{out}"),
    )?;
    ensure(
        out.lines()
            .any(|l| l.starts_with("[ok]   fence: clean-up:")),
        format!("no clean-up after the failure:\n{out}"),
    )?;
    ensure(status == Some(1), format!("exit status {status:?}:\n{out}"))?;
    left_nothing(rds, &out)
}

/// Nothing of the doctor's remains: no disk, no export, no connection.
fn left_nothing(rds: &Rds, out: &str) -> Outcome {
    let disks: Vec<String> = rds.sim.engine.disks().into_iter().map(|d| d.slot).collect();
    ensure(disks == [KEEPER], format!("disks: {disks:?}\n{out}"))?;
    ensure(
        rds.sim.engine.nvmet_exports() == [rds::nqn(KEEPER)],
        format!("exports: {:?}", rds.sim.engine.nvmet_exports()),
    )?;
    let connected: Vec<String> = fabrics::connected_nqns()
        .into_iter()
        .filter(|n| n.contains("doctor-fence-"))
        .collect();
    ensure(
        connected.is_empty(),
        format!("connections left: {connected:?}"),
    )
}

/// Runs the doctor with the plugin's flags for `rds`, `--mode all` and
/// `--check-fence`: its exit status and what it printed.
async fn doctor(rds: &Rds, scratch: &Path, key: &Path) -> Outcome<(Option<i32>, String)> {
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let mut command = Command::new(exe);
    command
        .args(["plugin", "doctor", "--check-fence", "--mode", "all"])
        .args(["--node-id", "guest"])
        .args(["--rds-address", "127.0.0.1"])
        .args(["--rds-ssh-port", &rds.sim.addr.port().to_string()])
        .args(["--rds-user", &rds.sim.user])
        .arg("--rds-private-key")
        .arg(key)
        .args([
            "--rds-host-key",
            &rds.sim.host_key.fingerprint(HashAlg::Sha256).to_string(),
        ])
        .args(["--volume-path", &format!("/{}/volumes", rds::POOL)])
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
