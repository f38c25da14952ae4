//! The README's first command (`scripts/demo`): one volume through the whole
//! driver on a real kernel — the simulator exporting through nvmet, the
//! plugin (controller and node) as a process of its own, CSI calls over its
//! socket as the sidecars and kubelet make them, and the kernel's NVMe/TCP
//! initiator attaching the volume. Each step is printed with its duration; a
//! step that takes long prints a progress line every few seconds.
//!
//! Interrupted (Ctrl-C, SIGTERM), it stops where it is and cleans up: mounts
//! and connections are taken down, the plugin and the simulator stopped, and
//! the scratch folder removed.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};

use crate::csi::{Cluster, mount};
use crate::fabrics;
use crate::support::{Context, Outcome, ensure};

const GIB: u64 = 1 << 30;
/// How often a slow step says it is still running.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Runs the demo in `scratch`; `place` says where the kernel is (printed).
pub async fn run(scratch: &Path, place: &str) -> Outcome {
    println!("rds-csi demo: one volume through the driver, on {place}");
    println!("(simulated RDS over SSH; real kernel NVMe/TCP, ext4 and mounts)\n");
    let started = Instant::now();
    let mut steps = Steps { n: 0 };
    let cluster = steps
        .step(
            "start the RDS simulator (nvmet target) and the plugin (controller + node)",
            Cluster::start(scratch, 20 * GIB),
        )
        .await?;
    let mut cluster = cluster;
    let walked = tokio::select! {
        walked = walk(&mut cluster, &mut steps) => walked,
        signal = interrupted() => Err(format!("interrupted by {signal}; cleaning up")),
    };
    if let Err(e) = &walked {
        println!("\n  ✘ {e}");
    }
    let stopped = steps
        .step("stop the plugin and the simulator", cluster.stop())
        .await;
    match walked.and(stopped) {
        Ok(()) => {
            println!(
                "\nDone in {:.1} s: created, staged, published, written and read back, \
                 expanded, unpublished, unstaged, deleted.",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}

async fn interrupted() -> &'static str {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "Ctrl-C",
        _ = term.recv() => "SIGTERM",
    }
}

struct Steps {
    n: usize,
}

impl Steps {
    /// Runs one step, printing its title, then its duration (or failure); a
    /// line every [`PROGRESS_EVERY`] while it runs.
    async fn step<T>(&mut self, title: &str, work: impl Future<Output = Outcome<T>>) -> Outcome<T> {
        self.n += 1;
        println!("{:>2}. {title}", self.n);
        let _ = std::io::stdout().flush();
        let started = Instant::now();
        tokio::pin!(work);
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
        let result = loop {
            tokio::select! {
                result = &mut work => break result,
                _ = tick.tick() => {
                    println!("      … still running ({} s)", started.elapsed().as_secs());
                    let _ = std::io::stdout().flush();
                }
            }
        };
        let took = started.elapsed().as_secs_f64();
        match &result {
            Ok(_) => println!("    ✔ {took:.2} s"),
            Err(_) => println!("    ✘ failed after {took:.2} s"),
        }
        let _ = std::io::stdout().flush();
        result
    }
}

/// Prints one detail line under a step.
fn detail(text: impl std::fmt::Display) {
    println!("      {text}");
}

async fn walk(cluster: &mut Cluster, steps: &mut Steps) -> Outcome {
    let mut volume = steps
        .step(
            "CreateVolume: 1 GiB, ext4 (a file-backed disk on the RDS, closed to every host)",
            cluster.create_unpublished(
                "pvc-de300000-0000-4000-8000-000000000001",
                GIB,
                mount("ext4"),
                &[("ctrlLossTmo", "60"), ("reconnectDelay", "2")],
            ),
        )
        .await?;
    detail(format!("volume {}, NQN {}", volume.id, volume.nqn));
    let node_id = cluster.node_id.clone();
    volume.publish_context = steps
        .step(
            "ControllerPublishVolume: the RDS lets in this node's host NQN, and no other",
            cluster.controller_publish(&volume, &node_id, mount("ext4")),
        )
        .await?;
    detail(format!("exported to {node_id}"));
    let (staging, target) = cluster.paths(&volume.id, "demo-pod");

    steps
        .step(
            "NodeStageVolume: connect with the kernel's NVMe/TCP initiator, format, mount",
            cluster.stage(&volume, &staging, mount("ext4")),
        )
        .await?;
    let device = fabrics::namespace(&volume.nqn, 1).unwrap_or_else(|| "?".into());
    detail(format!(
        "/dev/{device} mounted at {} (controller {})",
        staging.display(),
        fabrics::controller(&volume.nqn)
            .map(|c| fabrics::state(&c))
            .unwrap_or_else(|_| "?".into())
    ));

    steps
        .step(
            "NodePublishVolume: bind-mount into the pod's volume folder",
            cluster.publish(&volume, &staging, &target, mount("ext4"), false),
        )
        .await?;

    let data = fabrics::pattern(2026, 8 << 20);
    let file = target.join("hello.bin");
    steps
        .step(
            "write 8 MiB in the pod's volume, sync, drop caches, read back",
            async {
                let (file, expected) = (file.clone(), data.clone());
                tokio::task::spawn_blocking(move || -> Outcome {
                    let mut f = std::fs::File::create(&file).context("create")?;
                    f.write_all(&expected).context("write")?;
                    f.sync_all().context("sync")?;
                    drop(f);
                    // Read from the target, not from the page cache.
                    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
                    let read = std::fs::read(&file).context("read back")?;
                    ensure(read == expected, "the data read back differs")
                })
                .await
                .context("the writer failed")?
            },
        )
        .await?;

    let before = cluster.stats(&volume, &target).await?;
    let total = |s: &csi_proto::v1::NodeGetVolumeStatsResponse| {
        s.usage.first().map(|u| u.total).unwrap_or_default()
    };
    steps
        .step(
            "ControllerExpandVolume + NodeExpandVolume: 1 GiB → 2 GiB, online",
            cluster.expand(&volume, &staging, &target, 2 * GIB),
        )
        .await?;
    let after = cluster.stats(&volume, &target).await?;
    detail(format!(
        "filesystem size {} MiB → {} MiB",
        total(&before) >> 20,
        total(&after) >> 20
    ));
    ensure(
        total(&after) > total(&before),
        "the filesystem did not grow",
    )?;

    let stats = steps
        .step(
            "NodeGetVolumeStats: usage and condition",
            cluster.stats(&volume, &target),
        )
        .await?;
    if let Some(c) = &stats.volume_condition {
        detail(format!(
            "condition: {}",
            if c.abnormal { &c.message } else { "healthy" }
        ));
    }

    steps
        .step("NodeUnpublishVolume", cluster.unpublish(&volume, &target))
        .await?;
    steps
        .step(
            "NodeUnstageVolume: unmount, disconnect, wait until the kernel holds nothing",
            cluster.unstage(&volume, &staging),
        )
        .await?;
    ensure(
        fabrics::controllers(&volume.nqn).is_empty(),
        "a controller is left after unstage",
    )?;
    detail("no NVMe/TCP controller of the volume is left");
    steps
        .step(
            "ControllerUnpublishVolume: the export is closed again",
            cluster.controller_unpublish(&volume, &node_id),
        )
        .await?;
    steps.step("DeleteVolume", cluster.delete(&volume)).await?;
    ensure(
        cluster.rds.sim.engine.disks().is_empty(),
        "the disk is still on the RDS",
    )?;
    detail("the disk and its image file are gone from the RDS");
    Ok(())
}
