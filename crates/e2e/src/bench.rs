//! The node's staging time, beside the same steps done by hand.
//!
//! For a fresh 1 GiB volume: NodeStageVolume until it returns (connect,
//! wait for the device, probe, mkfs.ext4, mount), against writing the
//! connect string to `/dev/nvme-fabrics`, waiting for the namespace,
//! `mkfs.ext4 -E nodiscard -q` and mount(2) directly. After a warm-up round,
//! runs alternate, and the medians are compared. The driver's one extra step
//! is the probe (`blkid`) that makes formatting safe; under emulation, with
//! programs loaded over 9p, starting it costs about 80 ms, on a real node a
//! few. Run it with `scripts/bench-node`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::csi::{Cluster, mount};
use crate::fabrics::{self, Connect};
use crate::rds;
use crate::support::{Context, Outcome, ensure};

const GIB: u64 = 1 << 30;

/// Staging and by-hand times of `runs` volumes each.
pub async fn node_stage(scratch: &Path, runs: usize) -> Outcome {
    let mut cluster = Cluster::start(scratch, 100 * GIB).await?;
    let result = measure(&mut cluster, runs).await;
    if std::env::var_os("RDS_CSI_E2E_SHOW_PLUGIN_LOG").is_some() {
        println!(
            "{}",
            std::fs::read_to_string(cluster.scratch.join("plugin.log")).unwrap_or_default()
        );
    }
    let stopped = cluster.stop().await;
    let (driver, by_hand) = result?;
    stopped?;
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (d, h) = (median(driver.clone()), median(by_hand.clone()));
    println!("NodeStageVolume of a fresh 1 GiB ext4 volume, {runs} runs each, in the guest:");
    println!(
        "  driver:  median {:8.1} ms   runs {:?}",
        ms(d),
        driver.iter().map(|x| ms(*x).round()).collect::<Vec<_>>()
    );
    println!(
        "  by hand: median {:8.1} ms   runs {:?}",
        ms(h),
        by_hand.iter().map(|x| ms(*x).round()).collect::<Vec<_>>()
    );
    let ratio = d.as_secs_f64() / h.as_secs_f64();
    println!(
        "  ratio {ratio:.2} (target: within 1.5x) -> {}",
        if ratio <= 1.5 { "met" } else { "NOT MET" }
    );
    Ok(())
}

async fn measure(cluster: &mut Cluster, runs: usize) -> Outcome<(Vec<Duration>, Vec<Duration>)> {
    let (hostnqn, hostid) = fabrics::new_host_identity()?;
    // One round unmeasured, so that neither side pays for loading the tools
    // (mkfs, blkid) from the guest's 9p root the first time.
    stage_with_driver(cluster, runs).await?;
    stage_by_hand(cluster, runs, &hostnqn, &hostid).await?;
    let mut driver = Vec::new();
    let mut by_hand = Vec::new();
    for run in 0..runs {
        // Alternate which goes first, so neither always runs on a cooler or
        // warmer machine.
        if run % 2 == 0 {
            driver.push(stage_with_driver(cluster, run).await?);
            by_hand.push(stage_by_hand(cluster, run, &hostnqn, &hostid).await?);
        } else {
            by_hand.push(stage_by_hand(cluster, run, &hostnqn, &hostid).await?);
            driver.push(stage_with_driver(cluster, run).await?);
        }
    }
    Ok((driver, by_hand))
}

async fn stage_with_driver(cluster: &mut Cluster, run: usize) -> Outcome<Duration> {
    let name = format!("pvc-{run:08x}-0000-4000-8000-00000000be0c");
    let volume = cluster.create(&name, GIB, mount("ext4"), &[]).await?;
    let (staging, _) = cluster.paths(&volume.id, "bench");
    let started = Instant::now();
    cluster.stage(&volume, &staging, mount("ext4")).await?;
    let took = started.elapsed();
    cluster.unstage(&volume, &staging).await?;
    cluster.delete(&volume).await?;
    Ok(took)
}

async fn stage_by_hand(
    cluster: &mut Cluster,
    run: usize,
    hostnqn: &str,
    hostid: &str,
) -> Outcome<Duration> {
    let name = format!("bench-by-hand-{run}");
    let disk = cluster
        .rds
        .client
        .create_volume(&rds::volume(&name, GIB)?)
        .await
        .context("create the by-hand volume")?;
    cluster.rds.open_to_any_host(&name).await?;
    let nqn = disk.nqn.clone().context("no NQN")?;
    let dir = cluster.scratch.join(format!("by-hand-{run}"));
    std::fs::create_dir_all(&dir).context("mkdir")?;

    let started = Instant::now();
    fabrics::connect(&Connect {
        traddr: "127.0.0.1".into(),
        trsvcid: rds::PORT,
        nqn: nqn.clone(),
        hostnqn: hostnqn.into(),
        hostid: hostid.into(),
        ctrl_loss_tmo: 1800,
        reconnect_delay: 5,
    })
    .await?;
    let device = fabrics::wait_for_namespace(&nqn, 1, Duration::from_secs(30)).await?;
    let dev = Path::new("/dev").join(&device);
    let mkfs = tokio::task::spawn_blocking({
        let dev = dev.clone();
        move || {
            Command::new("mkfs.ext4")
                .args(["-E", "nodiscard", "-q"])
                .arg(&dev)
                .status()
        }
    })
    .await
    .context("mkfs task")?
    .context("mkfs.ext4")?;
    ensure(mkfs.success(), format!("mkfs.ext4: {mkfs}"))?;
    rustix::mount::mount(
        &dev,
        &dir,
        "ext4",
        rustix::mount::MountFlags::empty(),
        None::<&std::ffi::CStr>,
    )
    .context("mount")?;
    let took = started.elapsed();

    rustix::mount::unmount(&dir, rustix::mount::UnmountFlags::empty()).context("umount")?;
    fabrics::disconnect(&nqn).await?;
    cluster
        .rds
        .client
        .delete_volume(&rds::slot(&name)?, &rds::owner(&name)?, true)
        .await
        .context("delete the by-hand volume")?;
    Ok(took)
}
