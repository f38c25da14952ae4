//! `node_orphans_cleaned_at_start_up`: NVMe/TCP connections of the driver
//! that no staged volume refers to are disconnected when the plugin starts,
//! before its socket takes calls; a staged volume in use and a foreign
//! subsystem connected beside them are untouched.
//!
//! The orphans are the two kinds a crash leaves: the plugin is SIGKILLed in
//! the middle of a NodeStageVolume, after its connect and before its record;
//! and a connection of the driver's NQN prefix that nothing refers to (what
//! a plugin killed between the unmount and the disconnect of an unstage
//! leaves, made here directly through /dev/nvme-fabrics).

use std::time::Duration;

use super::Ctx;
use super::node_lifecycle::write_synced;
use crate::csi::{Cluster, Volume, mount};
use crate::fabrics::{self, Connect};
use crate::foreign::{self, ForeignTarget};
use crate::rds;
use crate::support::{Context, Outcome, ensure, wait_for};

const GIB: u64 = 1 << 30;

pub async fn run(ctx: Ctx) -> Outcome {
    let mut cluster = Cluster::start(&ctx.scratch, 20 * GIB).await?;
    let target = match ForeignTarget::start(&ctx.scratch) {
        Ok(t) => t,
        Err(e) => {
            let _ = cluster.stop().await;
            return Err(e);
        }
    };
    let result = steps(&mut cluster, &target).await;
    let foreign_stopped = target.stop().await;
    let stopped = cluster.stop().await;
    result.and(foreign_stopped).and(stopped)
}

fn connected(nqn: &str) -> bool {
    !fabrics::controllers(nqn).is_empty()
}

fn live(nqn: &str) -> bool {
    fabrics::controller(nqn).is_ok_and(|c| fabrics::state(&c) == "live")
}

async fn steps(cluster: &mut Cluster, target: &ForeignTarget) -> Outcome {
    // In use: staged, published, written.
    let (used, staging, pod) = cluster
        .in_use("pvc-0e1a-aaaa-bbbb-cccc-dddd00000001", "ext4", &[])
        .await?;
    let data = fabrics::pattern(51, 256 << 10);
    write_synced(&pod.join("data"), &data)?;

    // Every volume is made while the plugin runs.
    let interrupted = cluster
        .create(
            "pvc-0e1a-aaaa-bbbb-cccc-dddd00000002",
            GIB,
            mount("xfs"),
            &[],
        )
        .await?;
    let unreferenced = cluster
        .create(
            "pvc-0e1a-aaaa-bbbb-cccc-dddd00000003",
            GIB,
            mount("ext4"),
            &[],
        )
        .await?;

    // Killed in the middle of a stage, right after its connect.
    let (interrupted_staging, _) = cluster.paths(&interrupted.id, "pod-b");
    kill_during_stage(cluster, &interrupted, &interrupted_staging).await?;

    // A connection of ours that nothing refers to: made as this node, the
    // identity the volume is published to (another identity's connection
    // would not be this node's to clean up, and the RDS lets in only the
    // node published to anyway).
    let identity = nvme_host::fence::from_publish_context(&unreferenced.publish_context)
        .map_err(|e| e.to_string())?
        .context("the volume was published without a host identity")?;
    let (hostnqn, hostid) = (identity.nqn, identity.id);
    fabrics::connect(&Connect {
        traddr: "127.0.0.1".into(),
        trsvcid: rds::PORT,
        nqn: unreferenced.nqn.clone(),
        hostnqn,
        hostid,
        ctrl_loss_tmo: 60,
        reconnect_delay: 1,
    })
    .await
    .context("connect the unreferenced volume")?;

    // Someone else's subsystem, beside ours.
    target.connect().await?;
    for nqn in [&interrupted.nqn, &unreferenced.nqn, foreign::NQN] {
        ensure(
            connected(nqn),
            format!("{nqn} is connected before the restart"),
        )?;
    }

    // start_plugin returns once the socket answers: the cleanup is done then.
    cluster.start_plugin().await?;
    ensure(
        !connected(&interrupted.nqn),
        "the interrupted stage's connection is still there after the restart",
    )?;
    ensure(
        !connected(&unreferenced.nqn),
        "the unreferenced connection is still there after the restart",
    )?;
    ensure(
        live(foreign::NQN),
        "the foreign subsystem was touched by the cleanup",
    )?;
    ensure(live(&used.nqn), "the volume in use lost its connection")?;
    ensure(
        std::fs::read(pod.join("data")).context("read back")? == data,
        "the volume in use lost data",
    )?;
    let stats = cluster.stats(&used, &pod).await?;
    ensure(
        stats.volume_condition.as_ref().is_some_and(|c| !c.abnormal),
        format!("the volume in use is not healthy: {stats:?}"),
    )?;
    let cleaned = cluster.metric("rds_csi_nvme_orphans_cleaned_total").await?;
    ensure(cleaned == 2.0, format!("orphans cleaned: {cleaned}, not 2"))?;
    let staged = cluster.metric("rds_csi_staged_volumes").await?;
    ensure(staged == 1.0, format!("staged volumes: {staged}, not 1"))?;

    // Kubelet repeats the interrupted stage: it converges.
    cluster
        .stage(&interrupted, &interrupted_staging, mount("xfs"))
        .await?;
    cluster.unstage(&interrupted, &interrupted_staging).await?;
    cluster.unpublish(&used, &pod).await?;
    cluster.unstage(&used, &staging).await?;
    for v in [&used, &interrupted, &unreferenced] {
        ensure(!connected(&v.nqn), format!("{} is still connected", v.nqn))?;
        cluster.delete(v).await?;
    }
    ensure(
        live(foreign::NQN),
        "the foreign subsystem did not survive the whole scenario",
    )
}

/// Starts a NodeStageVolume and kills the plugin as soon as the volume's
/// controller appears; proves that the stage had not finished.
async fn kill_during_stage(
    cluster: &mut Cluster,
    volume: &Volume,
    staging: &std::path::Path,
) -> Outcome {
    let mut node = cluster.node.clone();
    let request = csi_proto::v1::NodeStageVolumeRequest {
        volume_id: volume.id.clone(),
        staging_target_path: staging.display().to_string(),
        volume_capability: Some(mount("xfs")),
        volume_context: volume.context.clone(),
        publish_context: volume.publish_context.clone(),
        ..Default::default()
    };
    let stage = tokio::spawn(async move { node.node_stage_volume(request).await });
    // Once the kernel's connect has returned (a plugin killed during it
    // takes the half-made controller with it): the controller is live and
    // its namespace is there. The stage then probes and formats.
    let nqn = volume.nqn.clone();
    wait_for(
        "the interrupted volume's controller and namespace",
        Duration::from_secs(60),
        Duration::from_millis(2),
        || {
            let nqn = nqn.clone();
            async move { (live(&nqn) && fabrics::namespace(&nqn, 1).is_some()).then_some(()) }
        },
        || "none yet".into(),
    )
    .await?;
    cluster.kill_plugin()?;
    let _ = stage.await;
    let mut record = staging.as_os_str().to_owned();
    record.push(".rds-csi.json");
    ensure(
        !std::path::Path::new(&record).exists(),
        "the stage finished before the plugin was killed (no orphan to clean)",
    )?;
    ensure(
        connected(&volume.nqn),
        "the interrupted stage left no connection",
    )
}
