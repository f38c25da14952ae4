//! `node_volume_condition`: NodeGetVolumeStats reports a filesystem the
//! kernel turned read-only and a publication whose mount is gone, each as
//! abnormal with a message saying which, and healthy again once mended.

use super::Ctx;
use crate::csi::{Cluster, mount};
use crate::support::{Context, Outcome, ensure};

const GIB: u64 = 1 << 30;

pub async fn run(ctx: Ctx) -> Outcome {
    Cluster::run(&ctx.scratch, 20 * GIB, steps).await
}

async fn steps(cluster: &mut Cluster) -> Outcome {
    let (volume, staging, target) = cluster
        .in_use("pvc-c0d1-aaaa-bbbb-cccc-dddd00000001", "ext4", &[])
        .await?;
    let (abnormal, message) = cluster.condition(&volume, &target).await?;
    ensure(
        !abnormal,
        format!("healthy volume reported abnormal: {message}"),
    )?;

    // What the kernel does to ext4 after I/O errors (errors=remount-ro):
    // the filesystem itself goes read-only.
    use rustix::mount::{MountFlags, mount_remount};
    mount_remount(&staging, MountFlags::RDONLY, "").context("remount the filesystem read-only")?;
    let (abnormal, message) = cluster.condition(&volume, &target).await?;
    ensure(
        abnormal && message.contains("read-only"),
        format!("read-only not reported: {message}"),
    )?;
    mount_remount(&staging, MountFlags::empty(), "").context("remount read-write")?;
    let (abnormal, message) = cluster.condition(&volume, &target).await?;
    ensure(
        !abnormal,
        format!("still abnormal after remounting: {message}"),
    )?;

    // The publication's mount disappears from under the pod.
    rustix::mount::unmount(&target, rustix::mount::UnmountFlags::empty())
        .context("unmount the target")?;
    let (abnormal, message) = cluster.condition(&volume, &target).await?;
    ensure(
        abnormal && message.contains("nothing is mounted"),
        format!("lost mount not reported: {message}"),
    )?;
    cluster
        .publish(&volume, &staging, &target, mount("ext4"), false)
        .await?;
    let (abnormal, message) = cluster.condition(&volume, &target).await?;
    ensure(
        !abnormal,
        format!("abnormal after publishing again: {message}"),
    )?;

    cluster.unpublish(&volume, &target).await?;
    cluster.unstage(&volume, &staging).await?;
    cluster.delete(&volume).await
}
