//! `node_lifecycle_ext4`, `node_lifecycle_xfs`: a filesystem volume through
//! every RPC kubelet sends, twice: create, stage, publish, write, unpublish,
//! unstage (no controller of the NQN left), stage again on the same volume
//! and read the same data, healthy stats, then tear down and delete.

use super::Ctx;
use crate::csi::{Cluster, mount};
use crate::support::{Context, Outcome, ensure};

const GIB: u64 = 1 << 30;

/// ext4.
pub async fn ext4(ctx: Ctx) -> Outcome {
    run(ctx, "ext4").await
}

/// xfs.
pub async fn xfs(ctx: Ctx) -> Outcome {
    run(ctx, "xfs").await
}

async fn run(ctx: Ctx, fs: &str) -> Outcome {
    Cluster::run(&ctx.scratch, 20 * GIB, async |cluster| {
        steps(cluster, fs).await
    })
    .await
}

/// Writes `data` to `file` and makes sure it reached the device.
pub fn write_synced(file: &std::path::Path, data: &[u8]) -> Outcome {
    use std::io::Write;
    let mut f = std::fs::File::create(file).context(format!("create {}", file.display()))?;
    f.write_all(data).context("write")?;
    f.sync_all().context("fsync")
}

async fn steps(cluster: &mut Cluster, fs: &str) -> Outcome {
    let name = format!("pvc-{fs}0000-aaaa-bbbb-cccc-000000000001");
    let volume = cluster.create(&name, GIB, mount(fs), &[]).await?;
    ensure(volume.bytes == GIB, format!("size {}", volume.bytes))?;
    ensure(
        volume.context.get("fsType").map(String::as_str) == Some(fs),
        format!(
            "the context says fsType {:?}, not the capability's {fs}",
            volume.context.get("fsType")
        ),
    )?;
    let (staging, target) = cluster.paths(&volume.id, "pod-a");

    cluster.stage(&volume, &staging, mount(fs)).await?;
    // Staging twice is a no-op.
    cluster.stage(&volume, &staging, mount(fs)).await?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").context("mountinfo")?;
    ensure(
        mounts.lines().any(|l| {
            l.contains(&staging.display().to_string()) && l.contains(&format!(" - {fs} "))
        }),
        format!("{} is not a {fs} mount", staging.display()),
    )?;
    cluster
        .publish(&volume, &staging, &target, mount(fs), false)
        .await?;
    let data = crate::fabrics::pattern(7, 1 << 20);
    write_synced(&target.join("data.bin"), &data)?;

    let stats = cluster.stats(&volume, &target).await?;
    let condition = stats.volume_condition.context("no volume condition")?;
    ensure(
        !condition.abnormal,
        format!("abnormal while healthy: {}", condition.message),
    )?;
    let bytes = stats.usage.first().context("no usage")?;
    ensure(
        bytes.used >= 1 << 20 && bytes.total > (GIB / 2) as i64,
        format!("usage {bytes:?}"),
    )?;

    cluster.unpublish(&volume, &target).await?;
    ensure(!target.exists(), "the target is removed")?;
    cluster.unstage(&volume, &staging).await?;
    // Once more: both are idempotent.
    cluster.unpublish(&volume, &target).await?;
    cluster.unstage(&volume, &staging).await?;

    // The same volume again: the filesystem is kept, not made anew.
    cluster.stage(&volume, &staging, mount(fs)).await?;
    let (_, target_b) = cluster.paths(&volume.id, "pod-b");
    cluster
        .publish(&volume, &staging, &target_b, mount(fs), false)
        .await?;
    let back = std::fs::read(target_b.join("data.bin")).context("read the data back")?;
    ensure(back == data, "the data read back differs")?;
    cluster.unpublish(&volume, &target_b).await?;
    cluster.unstage(&volume, &staging).await?;
    cluster.delete(&volume).await?;
    ensure(
        cluster.rds.sim.engine.disks().is_empty(),
        "the disk is deleted",
    )?;
    ensure(
        cluster.rds.sim.engine.nvmet_exports().is_empty(),
        "the export is gone",
    )
}
