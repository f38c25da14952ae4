//! `node_block_and_read_only`: a raw block volume is published as the device
//! node bound onto a file (no devtmpfs mount), published once only as a
//! single writer, data written through it survives unstage and stage; a filesystem volume published read-only
//! refuses writes while its read-write publication beside it accepts them.

use std::os::unix::fs::{FileExt, FileTypeExt};

use super::Ctx;
use csi_proto::v1::volume_capability::access_mode::Mode;

use crate::csi::{Cluster, block, mount, with_mode};
use crate::support::{Context, Outcome, ensure};

const GIB: u64 = 1 << 30;

pub async fn run(ctx: Ctx) -> Outcome {
    Cluster::run(&ctx.scratch, 20 * GIB, async |cluster| {
        block_volume(cluster).await?;
        read_only(cluster).await
    })
    .await
}

async fn block_volume(cluster: &mut Cluster) -> Outcome {
    let volume = cluster
        .create(
            "pvc-b10c0000-aaaa-bbbb-cccc-000000000001",
            GIB,
            block(),
            &[],
        )
        .await?;
    let staging = cluster
        .scratch
        .join("kubelet/plugins/kubernetes.io/csi/volumeDevices/staging")
        .join(&volume.id);
    let target = cluster
        .scratch
        .join("kubelet/plugins/kubernetes.io/csi/volumeDevices/publish")
        .join(&volume.id)
        .join("pod-uid");
    cluster.stage(&volume, &staging, block()).await?;
    cluster
        .publish(&volume, &staging, &target, block(), false)
        .await?;
    let meta = std::fs::metadata(&target).context("stat the target")?;
    ensure(
        meta.file_type().is_block_device(),
        "the target is the device node",
    )?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").context("mountinfo")?;
    let line = mounts
        .lines()
        .find(|l| l.contains(&target.display().to_string()))
        .context("the target is not a mount")?;
    ensure(
        line.contains(" - devtmpfs "),
        format!("a bind of the device node: {line}"),
    )?;
    // A single-node-single-writer publication elsewhere is refused: the
    // node finds this bind of the device node in the mount table.
    let elsewhere = target.with_file_name("other-pod-uid");
    let refused = cluster
        .publish(
            &volume,
            &staging,
            &elsewhere,
            with_mode(block(), Mode::SingleNodeSingleWriter),
            false,
        )
        .await;
    ensure(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("FailedPrecondition")),
        format!("a second single-writer publication: {refused:?}"),
    )?;

    let data = crate::fabrics::pattern(11, 64 << 10);
    {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&target)
            .context("open the target")?;
        file.write_all_at(&data, 1 << 20)
            .context("write through the target")?;
        file.sync_all().context("fsync")?;
    }
    let stats = cluster.stats(&volume, &target).await?;
    ensure(
        stats.usage.first().is_some_and(|u| u.total == GIB as i64),
        format!("block usage {:?}", stats.usage),
    )?;
    cluster.unpublish(&volume, &target).await?;
    cluster.unstage(&volume, &staging).await?;

    cluster.stage(&volume, &staging, block()).await?;
    cluster
        .publish(&volume, &staging, &target, block(), false)
        .await?;
    let mut back = vec![0u8; data.len()];
    std::fs::File::open(&target)
        .context("open the target")?
        .read_exact_at(&mut back, 1 << 20)
        .context("read through the target")?;
    ensure(back == data, "block data read back differs")?;
    cluster.unpublish(&volume, &target).await?;
    cluster.unstage(&volume, &staging).await?;
    cluster.delete(&volume).await
}

async fn read_only(cluster: &mut Cluster) -> Outcome {
    let volume = cluster
        .create(
            "pvc-0ead0000-aaaa-bbbb-cccc-000000000001",
            GIB,
            mount("ext4"),
            &[],
        )
        .await?;
    let (staging, rw) = cluster.paths(&volume.id, "pod-rw");
    let (_, ro) = cluster.paths(&volume.id, "pod-ro");
    cluster.stage(&volume, &staging, mount("ext4")).await?;
    cluster
        .publish(&volume, &staging, &rw, mount("ext4"), false)
        .await?;
    cluster
        .publish(&volume, &staging, &ro, mount("ext4"), true)
        .await?;
    super::node_lifecycle::write_synced(&rw.join("note"), b"written")?;
    ensure(
        std::fs::read(ro.join("note")).context("read through the read-only publication")?
            == b"written",
        "the read-only publication shows the data",
    )?;
    let refused = std::fs::write(ro.join("nope"), b"x");
    ensure(
        refused.as_ref().err().and_then(|e| e.raw_os_error())
            == Some(rustix::io::Errno::ROFS.raw_os_error()),
        format!("a write through the read-only publication: {refused:?}"),
    )?;
    cluster.unpublish(&volume, &ro).await?;
    cluster.unpublish(&volume, &rw).await?;
    cluster.unstage(&volume, &staging).await?;
    cluster.delete(&volume).await
}
