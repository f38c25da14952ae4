//! `node_reconnect_on_publish_after_ctrl_loss`: the kernel gives up on a
//! staged volume's controller (the target was away past `ctrl_loss_tmo`);
//! the plugin restarts, learns from its records that the volume is staged
//! and broken, and when kubelet publishes it to a new pod, connects it again,
//! mounts the new disk in place of the dead one, and the pod sees the data
//! written before the outage. Unstage then leaves no controller behind.

use std::time::Duration;

use super::Ctx;
use super::node_lifecycle::write_synced;
use crate::csi::{Cluster, mount};
use crate::fabrics;
use crate::support::{Context, Outcome, ensure, wait_for};

const GIB: u64 = 1 << 30;

pub async fn run(ctx: Ctx) -> Outcome {
    Cluster::run(&ctx.scratch, 20 * GIB, async |cluster| {
        let result = steps(cluster).await;
        let _ = cluster.rds.port_up();
        result
    })
    .await
}

async fn steps(cluster: &mut Cluster) -> Outcome {
    let (volume, staging, pod_a) = cluster
        .in_use(
            "pvc-4ec0-aaaa-bbbb-cccc-dddd00000001",
            "ext4",
            &[("ctrlLossTmo", "3"), ("reconnectDelay", "1")],
        )
        .await?;
    let (_, pod_b) = cluster.paths(&volume.id, "pod-b");
    let kept = fabrics::pattern(61, 512 << 10);
    write_synced(&pod_a.join("kept"), &kept)?;

    cluster.rds.port_down()?;
    let nqn = volume.nqn.clone();
    wait_for(
        "the kernel to give up on the controller",
        Duration::from_secs(90),
        Duration::from_millis(100),
        || {
            let nqn = nqn.clone();
            async move { fabrics::controllers(&nqn).is_empty().then_some(()) }
        },
        || "still there".into(),
    )
    .await?;
    cluster.rds.port_up()?;

    // The pod is torn down; the staging mount (of a dead disk) stays.
    cluster.unpublish(&volume, &pod_a).await?;
    cluster.kill_plugin()?;
    cluster.start_plugin().await?;
    let log = cluster.plugin_log_text();
    ensure(
        log.contains("staged volume found, not healthy"),
        "the restarted plugin did not report the broken staged volume",
    )?;
    let (abnormal, message) = cluster.condition(&volume, &staging).await?;
    ensure(
        abnormal && message.contains("not connected over NVMe/TCP"),
        format!("before the publish: {message}"),
    )?;

    // A new pod: publish connects again and mounts the new disk.
    cluster
        .publish(&volume, &staging, &pod_b, mount("ext4"), false)
        .await?;
    ensure(
        fabrics::controller(&volume.nqn).is_ok_and(|c| fabrics::state(&c) == "live"),
        "no live controller after the publish",
    )?;
    ensure(
        std::fs::read(pod_b.join("kept")).context("read in the new pod")? == kept,
        "the data written before the outage is not what the new pod reads",
    )?;
    write_synced(&pod_b.join("after"), b"written after the recovery")?;
    let (abnormal, message) = cluster.condition(&volume, &pod_b).await?;
    ensure(!abnormal, format!("abnormal after the recovery: {message}"))?;

    cluster.unpublish(&volume, &pod_b).await?;
    cluster.unstage(&volume, &staging).await?;
    ensure(
        fabrics::controllers(&volume.nqn).is_empty(),
        "a controller is left after unstage",
    )?;
    cluster.delete(&volume).await
}
