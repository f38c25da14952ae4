//! `node_plugin_killed_between_rpcs`: the plugin is killed (SIGKILL) and
//! started again between every two RPCs, and once in the middle of a stage;
//! every RPC, repeated as kubelet repeats it, converges, and nothing is left
//! behind.

use std::time::Duration;

use super::Ctx;
use super::node_lifecycle::write_synced;
use crate::csi::{Cluster, mount};
use crate::fabrics;
use crate::support::{Context, Outcome, ensure};

const GIB: u64 = 1 << 30;

pub async fn run(ctx: Ctx) -> Outcome {
    Cluster::run(&ctx.scratch, 20 * GIB, steps).await
}

async fn restart(cluster: &mut Cluster) -> Outcome {
    cluster.kill_plugin()?;
    cluster.start_plugin().await
}

async fn steps(cluster: &mut Cluster) -> Outcome {
    let volume = cluster
        .create(
            "pvc-c1a5-aaaa-bbbb-cccc-dddd00000001",
            GIB,
            mount("xfs"),
            &[],
        )
        .await?;
    let (staging, target) = cluster.paths(&volume.id, "pod-a");

    // Killed in the middle of a stage (connect, mkfs or mount under way).
    let mut node = cluster.node.clone();
    let request = csi_proto::v1::NodeStageVolumeRequest {
        volume_id: volume.id.clone(),
        staging_target_path: staging.display().to_string(),
        volume_capability: Some(mount("xfs")),
        volume_context: volume.context.clone(),
        publish_context: volume.publish_context.clone(),
        ..Default::default()
    };
    let interrupted = tokio::spawn(async move { node.node_stage_volume(request).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    restart(cluster).await?;
    let _ = interrupted.await;
    cluster.stage(&volume, &staging, mount("xfs")).await?;

    restart(cluster).await?;
    cluster.stage(&volume, &staging, mount("xfs")).await?;
    cluster
        .publish(&volume, &staging, &target, mount("xfs"), false)
        .await?;
    restart(cluster).await?;
    cluster
        .publish(&volume, &staging, &target, mount("xfs"), false)
        .await?;
    let data = fabrics::pattern(41, 256 << 10);
    write_synced(&target.join("data"), &data)?;
    restart(cluster).await?;
    let stats = cluster.stats(&volume, &target).await?;
    ensure(
        stats.volume_condition.is_some_and(|c| !c.abnormal),
        "a restarted plugin reports the volume healthy",
    )?;
    cluster.unpublish(&volume, &target).await?;
    restart(cluster).await?;
    cluster.unpublish(&volume, &target).await?;
    cluster.unstage(&volume, &staging).await?;
    restart(cluster).await?;
    cluster.unstage(&volume, &staging).await?;

    // The data survived all of it.
    cluster.stage(&volume, &staging, mount("xfs")).await?;
    cluster
        .publish(&volume, &staging, &target, mount("xfs"), false)
        .await?;
    ensure(
        std::fs::read(target.join("data")).context("read back")? == data,
        "data differs",
    )?;
    cluster.unpublish(&volume, &target).await?;
    cluster.unstage(&volume, &staging).await?;
    restart(cluster).await?;
    cluster.delete(&volume).await?;
    ensure(
        cluster.rds.sim.engine.disks().is_empty(),
        "the volume is deleted",
    )
}
