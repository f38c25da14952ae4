//! `node_expand_ext4`, `node_expand_xfs`: a published filesystem grows
//! online: the controller grows the image, the node rescans, waits for the
//! new size and grows the filesystem; the data stays.

use super::Ctx;
use crate::csi::Cluster;
use crate::support::{Context, Outcome, ensure};

const GIB: u64 = 1 << 30;

/// ext4 (resize2fs, online).
pub async fn ext4(ctx: Ctx) -> Outcome {
    run(ctx, "ext4").await
}

/// xfs (xfs_growfs).
pub async fn xfs(ctx: Ctx) -> Outcome {
    run(ctx, "xfs").await
}

async fn run(ctx: Ctx, fs: &str) -> Outcome {
    Cluster::run(&ctx.scratch, 20 * GIB, async |cluster| {
        steps(cluster, fs).await
    })
    .await
}

async fn steps(cluster: &mut Cluster, fs: &str) -> Outcome {
    let name = format!("pvc-e{fs}000-aaaa-bbbb-cccc-000000000001");
    let (volume, staging, target) = cluster.in_use(&name, fs, &[]).await?;
    let data = crate::fabrics::pattern(3, 256 << 10);
    super::node_lifecycle::write_synced(&target.join("keep"), &data)?;
    let before = rustix::fs::statvfs(&target).context("statvfs")?;

    let size = cluster.expand(&volume, &staging, &target, 2 * GIB).await?;
    ensure(size == 2 * GIB, format!("the node reports {size} bytes"))?;
    let after = rustix::fs::statvfs(&target).context("statvfs")?;
    let total = |s: &rustix::fs::StatVfs| s.f_blocks * s.f_frsize;
    ensure(
        total(&after) > total(&before) + GIB / 2,
        format!(
            "the filesystem did not grow: {} -> {} bytes",
            total(&before),
            total(&after)
        ),
    )?;
    ensure(
        std::fs::read(target.join("keep")).context("read back")? == data,
        "data changed",
    )?;
    // Expanding again to the same size is a no-op.
    let size = cluster.expand(&volume, &staging, &target, 2 * GIB).await?;
    ensure(size == 2 * GIB, format!("again: {size}"))?;

    cluster.unpublish(&volume, &target).await?;
    cluster.unstage(&volume, &staging).await?;
    cluster.delete(&volume).await
}
