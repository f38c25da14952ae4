//! The RDS's target goes away while a volume is in use.
//!
//! - `node_outage_shorter_than_ctrl_loss_tmo`: the kernel keeps reconnecting;
//!   the volume shows as abnormal meanwhile, a write issued during the outage
//!   completes once the target is back, the volume is healthy again and no
//!   data is lost.
//! - `node_outage_past_ctrl_loss_tmo`: the kernel gives up and removes the
//!   controller; the volume shows as abnormal with a clear message, writes
//!   fail, unpublish and unstage still converge, and once the target is back
//!   the volume stages again with the data written before the outage.

use std::time::Duration;

use super::Ctx;
use super::node_lifecycle::write_synced;
use crate::csi::{Cluster, Volume, mount};
use crate::fabrics;
use crate::support::{Context, Outcome, ensure, wait_for};

const GIB: u64 = 1 << 30;

pub async fn shorter(ctx: Ctx) -> Outcome {
    Cluster::run(&ctx.scratch, 20 * GIB, async |cluster| {
        let result = short_outage(cluster).await;
        let _ = cluster.rds.port_up();
        result
    })
    .await
}

pub async fn longer(ctx: Ctx) -> Outcome {
    Cluster::run(&ctx.scratch, 20 * GIB, async |cluster| {
        let result = long_outage(cluster).await;
        let _ = cluster.rds.port_up();
        result
    })
    .await
}

/// The state of the volume's controller, or "gone".
fn state(volume: &Volume) -> String {
    fabrics::controller(&volume.nqn)
        .map(|c| fabrics::state(&c))
        .unwrap_or_else(|_| "gone".into())
}

async fn wait_state(volume: &Volume, want: &str, within: Duration) -> Outcome {
    wait_for(
        &format!("the controller to be {want}"),
        within,
        Duration::from_millis(100),
        || async { (state(volume) == want).then_some(()) },
        || format!("it is {}", state(volume)),
    )
    .await
}

async fn short_outage(cluster: &mut Cluster) -> Outcome {
    let (volume, staging, target) = cluster
        .in_use(
            "pvc-5407-aaaa-bbbb-cccc-dddd00000001",
            "ext4",
            &[("ctrlLossTmo", "120"), ("reconnectDelay", "1")],
        )
        .await?;
    let before = fabrics::pattern(21, 512 << 10);
    write_synced(&target.join("before"), &before)?;

    cluster.rds.port_down()?;
    wait_state(&volume, "connecting", Duration::from_secs(60)).await?;
    let (abnormal, message) = cluster.condition(&volume, &target).await?;
    ensure(abnormal, format!("the outage is not reported: {message}"))?;
    ensure(message.contains("not live"), format!("message: {message}"))?;

    // A write during the outage waits in the kernel...
    let during = fabrics::pattern(22, 512 << 10);
    let file = target.join("during");
    let data = during.clone();
    let writer = tokio::task::spawn_blocking(move || write_synced(&file, &data));
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure(
        !writer.is_finished(),
        "a synced write finished while the target was away",
    )?;
    // ...and completes when the target is back.
    cluster.rds.port_up()?;
    tokio::time::timeout(Duration::from_secs(120), writer)
        .await
        .context("the write did not complete after the target came back")?
        .context("the writer panicked")??;
    wait_state(&volume, "live", Duration::from_secs(60)).await?;
    let (abnormal, message) = cluster.condition(&volume, &target).await?;
    ensure(
        !abnormal,
        format!("still abnormal after recovery: {message}"),
    )?;
    // The health monitor looked every second through the outage, and
    // logged each change once: abnormal (resetting, then connecting, at
    // most), then healthy again.
    let log = cluster.plugin_log_text();
    let count = |what: &str| {
        log.lines()
            .filter(|l| l.contains(what) && l.contains(&volume.id))
            .count()
    };
    let (abnormal_lines, recovered_lines) =
        (count("volume abnormal"), count("volume healthy again"));
    ensure(
        (1..=2).contains(&abnormal_lines) && recovered_lines == 1,
        format!(
            "logged {abnormal_lines} abnormal and {recovered_lines} recovered lines, not 1-2 and 1"
        ),
    )?;
    ensure(
        std::fs::read(target.join("before")).context("read")? == before,
        "data before the outage changed",
    )?;
    ensure(
        std::fs::read(target.join("during")).context("read")? == during,
        "data written during the outage differs",
    )?;

    cluster.unpublish(&volume, &target).await?;
    cluster.unstage(&volume, &staging).await?;
    cluster.delete(&volume).await
}

async fn long_outage(cluster: &mut Cluster) -> Outcome {
    let (volume, staging, target) = cluster
        .in_use(
            "pvc-1009-aaaa-bbbb-cccc-dddd00000001",
            "ext4",
            &[("ctrlLossTmo", "4"), ("reconnectDelay", "1")],
        )
        .await?;
    let kept = fabrics::pattern(31, 512 << 10);
    write_synced(&target.join("kept"), &kept)?;

    cluster.rds.port_down()?;
    // After ctrl_loss_tmo the kernel removes the controller for good.
    wait_state(&volume, "gone", Duration::from_secs(90)).await?;
    let (abnormal, message) = cluster.condition(&volume, &target).await?;
    ensure(
        abnormal,
        format!("the lost volume is not reported: {message}"),
    )?;
    ensure(
        message.contains("not connected over NVMe/TCP"),
        format!("message: {message}"),
    )?;
    let file = target.join("lost");
    let attempt = tokio::task::spawn_blocking(move || write_synced(&file, b"after the loss"))
        .await
        .context("the writer panicked")?;
    ensure(
        attempt.is_err(),
        "a synced write succeeded on a lost volume",
    )?;

    cluster.rds.port_up()?;
    // Kubelet tears the pod down; both steps must converge on a dead volume.
    cluster.unpublish(&volume, &target).await?;
    cluster.unstage(&volume, &staging).await?;
    // And brings it up again: the data synced before the outage is there.
    cluster.stage(&volume, &staging, mount("ext4")).await?;
    cluster
        .publish(&volume, &staging, &target, mount("ext4"), false)
        .await?;
    ensure(
        std::fs::read(target.join("kept")).context("read")? == kept,
        "data before the outage was lost",
    )?;
    let (abnormal, message) = cluster.condition(&volume, &target).await?;
    ensure(!abnormal, format!("abnormal after restaging: {message}"))?;
    cluster.unpublish(&volume, &target).await?;
    cluster.unstage(&volume, &staging).await?;
    cluster.delete(&volume).await
}
