//! Encrypted volumes (`encryption: luks2`) on real NVMe/TCP and dm-crypt:
//!
//! - `node_encrypted_filesystem`: an ext4 volume is created, staged with the
//!   node-stage secret (without one: INVALID_ARGUMENT), written, grown while
//!   mounted (with the node-expand secret), unstaged (no mapping, no
//!   controller left), and its image on the simulator's side holds a LUKS
//!   header and none of the plaintext written, which a plain volume's image
//!   beside it does hold; a wrong key is FAILED_PRECONDITION and leaves the
//!   image unchanged; staged again with the right key, the data reads back.
//! - `node_encrypted_block`: a block volume publishes its mapping's device
//!   node, not the NVMe namespace; data written through it is ciphertext in
//!   the image and reads back after unstage and stage.
//! - `node_encrypted_plugin_killed_between_open_and_mount`: the plugin (and
//!   what it runs) is killed with SIGKILL once the stage has opened the
//!   mapping and before it mounted; the restarted plugin's start-up closes
//!   the mapping and disconnects, and the repeated stage completes.

use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::Ctx;
use super::node_lifecycle::write_synced;
use crate::csi::{Cluster, Volume, block, mount, stage_request};
use crate::support::{Context, Outcome, ensure, wait_for};

const GIB: u64 = 1 << 30;

/// The StorageClass parameter that makes a volume encrypted.
pub const ENCRYPTED: &[(&str, &str)] = &[("encryption", "luks2")];

/// The node-stage (and node-expand) secret of the scenarios.
pub const SECRET: &[(&str, &str)] = &[("encryptionPassphrase", "guest passphrase, not a real one")];

/// Text that must never reach the RDS in the clear.
const MARKER: &str = "RDS-CSI-PLAINTEXT-MARKER-6f1d2c9a";

/// `MARKER` repeated to `len` bytes.
fn marked(len: usize) -> Vec<u8> {
    MARKER.bytes().cycle().take(len).collect()
}

/// The parts of the sparse file `file` that hold data (its holes read as
/// zeros and hold nothing): (offset, length), from `SEEK_DATA` and
/// `SEEK_HOLE`.
fn data_extents(file: &std::fs::File) -> Outcome<Vec<(u64, u64)>> {
    use rustix::fs::{SeekFrom, seek};
    let mut extents = Vec::new();
    let mut at = 0;
    loop {
        let start = match seek(file, SeekFrom::Data(at)) {
            Ok(start) => start,
            Err(rustix::io::Errno::NXIO) => return Ok(extents),
            Err(e) => return Err(format!("SEEK_DATA: {e}")),
        };
        let end = seek(file, SeekFrom::Hole(start)).context("SEEK_HOLE")?;
        extents.push((start, end - start));
        at = end;
    }
}

/// Runs `program` with `args` and the data of `image` (its extents, each
/// after a line with its offset and length) on its standard input: its
/// exit status and output. The holes of a 1 GiB image are skipped, so
/// this takes as long as the data written, not as the volume is large.
fn through(program: &str, args: &[&str], image: &Path) -> Outcome<std::process::Output> {
    use std::io::{Read, Seek, Write};
    use std::process::Stdio;
    let mut file = std::fs::File::open(image).context(format!("open {}", image.display()))?;
    let extents = data_extents(&file)?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context(format!("run {program}"))?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    for (offset, len) in extents {
        // A program that has its answer (grep -q) stops reading.
        let header = format!("\n@{offset}+{len}\n");
        file.seek(std::io::SeekFrom::Start(offset))
            .context("seek")?;
        let copied = stdin
            .write_all(header.as_bytes())
            .and_then(|()| std::io::copy(&mut (&mut file).take(len), &mut stdin).map(drop));
        match copied {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(format!("feeding {program}: {e}")),
        }
    }
    drop(stdin);
    child
        .wait_with_output()
        .context(format!("wait for {program}"))
}

/// Whether the image file `image` holds `MARKER` anywhere in its data.
pub fn image_holds_marker(image: &Path) -> Outcome<bool> {
    let out = through("grep", &["-a", "-q", "-F", MARKER], image)?;
    match out.status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(format!(
            "grep on {} failed: {}",
            image.display(),
            out.status
        )),
    }
}

/// The MD5 of the data of the sparse file `file` and where it lies.
fn md5(file: &Path) -> Outcome<String> {
    let out = through("md5sum", &[], file)?;
    ensure(out.status.success(), format!("md5sum: {}", out.status))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// The device-mapper devices open now: (kernel name, name).
pub fn mappings() -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir("/sys/class/block") else {
        return Vec::new();
    };
    let mut found: Vec<(String, String)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("dm-"))
        .filter_map(|n| {
            let name = std::fs::read_to_string(format!("/sys/class/block/{n}/dm/name")).ok()?;
            Some((n, name.trim().to_owned()))
        })
        .collect();
    found.sort();
    found
}

/// The mapping name the driver gives volume `id`.
fn mapping_of(id: &str) -> String {
    format!("rds-csi-{id}")
}

fn is_mounted(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let path = path.display().to_string();
    mounts
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(path.as_str()))
}

/// Checks what the simulator's image of `volume` holds: a LUKS header, and
/// not the marker.
fn ciphertext_only(cluster: &Cluster, volume: &Volume) -> Outcome {
    let image = cluster.rds.image(&volume.id);
    let mut magic = [0u8; 6];
    std::fs::File::open(&image)
        .context(format!("open {}", image.display()))?
        .read_exact_at(&mut magic, 0)
        .context("read the image's first bytes")?;
    ensure(
        magic == *b"LUKS\xba\xbe",
        format!("the image does not start with a LUKS header: {magic:?}"),
    )?;
    ensure(
        !image_holds_marker(&image)?,
        format!("{} holds the plaintext written", image.display()),
    )
}

pub async fn filesystem(ctx: Ctx) -> Outcome {
    Cluster::run(&ctx.scratch, 20 * GIB, async |cluster| {
        control_plain(cluster).await?;
        encrypted_filesystem(cluster).await
    })
    .await
}

/// The check's own check: the same marker written to a plain volume is
/// found in its image.
async fn control_plain(cluster: &mut Cluster) -> Outcome {
    let (volume, staging, target) = cluster
        .in_use("pvc-c0a70000-aaaa-bbbb-cccc-000000000001", "ext4", &[])
        .await?;
    write_synced(&target.join("marked"), &marked(64 << 10))?;
    cluster.unpublish(&volume, &target).await?;
    cluster.unstage(&volume, &staging).await?;
    ensure(
        image_holds_marker(&cluster.rds.image(&volume.id))?,
        "the plain volume's image does not show the plaintext: the check sees nothing",
    )?;
    cluster.delete(&volume).await
}

async fn encrypted_filesystem(cluster: &mut Cluster) -> Outcome {
    let cap = mount("ext4");
    let volume = cluster
        .create(
            "pvc-e0c40000-aaaa-bbbb-cccc-000000000001",
            GIB,
            cap.clone(),
            ENCRYPTED,
        )
        .await?;
    ensure(
        volume.context.get("encryption").map(String::as_str) == Some("luks2"),
        format!("the volume context: {:?}", volume.context),
    )?;
    let (staging, target) = cluster.paths(&volume.id, "pod-a");

    // No secret: a clear refusal, and nothing made.
    let refused = cluster
        .stage_with_secrets(&volume, &staging, cap.clone(), &[])
        .await
        .err()
        .context("a stage without the node-stage secret succeeded")?;
    ensure(
        refused.code() == tonic::Code::InvalidArgument
            && refused.message().contains("encryptionPassphrase"),
        format!("without a secret: {refused:?}"),
    )?;

    cluster
        .stage_with_secrets(&volume, &staging, cap.clone(), SECRET)
        .await
        .map_err(|s| format!("NodeStageVolume: {s:?}\n{}", cluster.plugin_log_tail()))?;
    let mapping = mapping_of(&volume.id);
    let open = mappings();
    let (dm, _) = open
        .iter()
        .find(|(_, name)| *name == mapping)
        .context(format!("no mapping {mapping} after the stage: {open:?}"))?
        .clone();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").context("mountinfo")?;
    ensure(
        mounts.lines().any(|l| {
            l.contains(&staging.display().to_string()) && l.contains(&format!(" - ext4 /dev/{dm} "))
        }),
        format!("the staging path is not an ext4 mount of /dev/{dm}:\n{mounts}"),
    )?;
    cluster
        .publish(&volume, &staging, &target, cap.clone(), false)
        .await?;
    let data = marked(1 << 20);
    write_synced(&target.join("marked"), &data)?;
    let stats = cluster.stats(&volume, &target).await?;
    ensure(
        stats.volume_condition.is_some_and(|c| !c.abnormal),
        "the encrypted volume is healthy",
    )?;

    // Grown while mounted: without the node-expand secret refused, with it
    // the disk, the mapping and the filesystem grow.
    let before = rustix::fs::statvfs(&target).context("statvfs")?;
    let refused = cluster
        .expand_with_secrets(&volume, &staging, &target, 2 * GIB, &[])
        .await
        .err()
        .context("an expansion without the node-expand secret succeeded")?;
    ensure(
        refused.contains("InvalidArgument") && refused.contains("node-expand-secret-name"),
        format!("expansion without a secret: {refused}"),
    )?;
    let size = cluster
        .expand_with_secrets(&volume, &staging, &target, 2 * GIB, SECRET)
        .await?;
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
        std::fs::read(target.join("marked")).context("read back")? == data,
        "the data changed while growing",
    )?;

    cluster.unpublish(&volume, &target).await?;
    cluster.unstage(&volume, &staging).await?;
    ensure(
        !mappings().iter().any(|(_, n)| *n == mapping),
        format!("the mapping is still open after unstage: {:?}", mappings()),
    )?;
    ciphertext_only(cluster, &volume)?;

    // A wrong key: refused, and the image is exactly as it was.
    let image = cluster.rds.image(&volume.id);
    let sum = md5(&image)?;
    let wrong = cluster
        .stage_with_secrets(
            &volume,
            &staging,
            cap.clone(),
            &[("encryptionPassphrase", "not the passphrase")],
        )
        .await
        .err()
        .context("a stage with a wrong key succeeded")?;
    ensure(
        wrong.code() == tonic::Code::FailedPrecondition
            && wrong.message().contains("does not open volume")
            && !wrong.message().contains("not the passphrase"),
        format!("a wrong key: {wrong:?}"),
    )?;
    ensure(!is_mounted(&staging), "mounted after a wrong key")?;
    ensure(
        !mappings().iter().any(|(_, n)| *n == mapping),
        "a mapping is open after a wrong key",
    )?;
    cluster.unstage(&volume, &staging).await?;
    ensure(md5(&image)? == sum, "the wrong key changed the image")?;

    // The right key: the data is there.
    cluster
        .stage_with_secrets(&volume, &staging, cap.clone(), SECRET)
        .await
        .map_err(|s| {
            format!(
                "NodeStageVolume again: {s:?}\n{}",
                cluster.plugin_log_tail()
            )
        })?;
    let (_, target_b) = cluster.paths(&volume.id, "pod-b");
    cluster
        .publish(&volume, &staging, &target_b, cap, false)
        .await?;
    ensure(
        std::fs::read(target_b.join("marked")).context("read back")? == data,
        "the data read back differs",
    )?;
    cluster.unpublish(&volume, &target_b).await?;
    cluster.unstage(&volume, &staging).await?;
    cluster.delete(&volume).await
}

pub async fn block_volume(ctx: Ctx) -> Outcome {
    Cluster::run(&ctx.scratch, 20 * GIB, encrypted_block).await
}

/// The block device number of `path`, as `major:minor`.
fn rdev(path: &Path) -> Outcome<String> {
    let meta = std::fs::metadata(path).context(format!("stat {}", path.display()))?;
    ensure(
        meta.file_type().is_block_device(),
        format!("{} is not a block device", path.display()),
    )?;
    let dev = meta.rdev();
    Ok(format!(
        "{}:{}",
        rustix::fs::major(dev),
        rustix::fs::minor(dev)
    ))
}

async fn encrypted_block(cluster: &mut Cluster) -> Outcome {
    let volume = cluster
        .create(
            "pvc-e0cb0000-aaaa-bbbb-cccc-000000000001",
            GIB,
            block(),
            ENCRYPTED,
        )
        .await?;
    let devices = cluster
        .scratch
        .join("kubelet/plugins/kubernetes.io/csi/volumeDevices");
    let staging = devices.join("staging").join(&volume.id);
    let target = devices.join("publish").join(&volume.id).join("pod-uid");
    std::fs::create_dir_all(&staging).context("mkdir staging")?;
    cluster
        .stage_with_secrets(&volume, &staging, block(), SECRET)
        .await
        .map_err(|s| format!("NodeStageVolume: {s:?}\n{}", cluster.plugin_log_tail()))?;
    cluster
        .publish(&volume, &staging, &target, block(), false)
        .await?;
    let mapping = mapping_of(&volume.id);
    let (dm, _) = mappings()
        .into_iter()
        .find(|(_, n)| *n == mapping)
        .context(format!("no mapping {mapping}"))?;
    let dm_dev = std::fs::read_to_string(format!("/sys/class/block/{dm}/dev"))
        .context("the mapping's device number")?;
    ensure(
        rdev(&target)? == dm_dev.trim(),
        format!(
            "the pod's device is {}, not the mapping's {}",
            rdev(&target)?,
            dm_dev.trim()
        ),
    )?;
    let data = marked(256 << 10);
    {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&target)
            .context("open the target")?;
        file.write_all_at(&data, 4 << 20)
            .context("write through the target")?;
        file.sync_all().context("fsync")?;
    }
    cluster.unpublish(&volume, &target).await?;
    cluster.unstage(&volume, &staging).await?;
    ciphertext_only(cluster, &volume)?;

    cluster
        .stage_with_secrets(&volume, &staging, block(), SECRET)
        .await
        .map_err(|s| {
            format!(
                "NodeStageVolume again: {s:?}\n{}",
                cluster.plugin_log_tail()
            )
        })?;
    cluster
        .publish(&volume, &staging, &target, block(), false)
        .await?;
    let mut back = vec![0u8; data.len()];
    std::fs::File::open(&target)
        .context("open the target")?
        .read_exact_at(&mut back, 4 << 20)
        .context("read through the target")?;
    ensure(back == data, "block data read back differs")?;
    cluster.unpublish(&volume, &target).await?;
    cluster.unstage(&volume, &staging).await?;
    cluster.delete(&volume).await
}

pub async fn killed_between_open_and_mount(ctx: Ctx) -> Outcome {
    Cluster::run(&ctx.scratch, 20 * GIB, killed).await
}

async fn killed(cluster: &mut Cluster) -> Outcome {
    let cap = mount("ext4");
    let volume = cluster
        .create(
            "pvc-e0c50000-aaaa-bbbb-cccc-000000000001",
            GIB,
            cap.clone(),
            ENCRYPTED,
        )
        .await?;
    let (staging, target) = cluster.paths(&volume.id, "pod-a");
    let mapping = mapping_of(&volume.id);

    let mut node = cluster.node.clone();
    let request = stage_request(&volume, &staging, cap.clone(), SECRET);
    let interrupted = tokio::spawn(async move { node.node_stage_volume(request).await });
    // The moment the mapping is open (after luksFormat and open, before
    // mkfs is done and long before the mount), the plugin dies.
    wait_for(
        "the stage to open the mapping",
        Duration::from_secs(120),
        Duration::from_millis(5),
        || {
            let open = mappings().iter().any(|(_, n)| *n == mapping);
            async move { open.then_some(()) }
        },
        || cluster.plugin_log_tail(),
    )
    .await?;
    cluster.kill_plugin()?;
    let _ = interrupted.await;
    ensure(
        !is_mounted(&staging),
        "the staging path was mounted before the kill: the window was missed",
    )?;
    ensure(
        mappings().iter().any(|(_, n)| *n == mapping),
        "the killed stage left no mapping",
    )?;

    // The restarted plugin closes the orphaned mapping, then disconnects.
    cluster.start_plugin().await?;
    ensure(
        !mappings().iter().any(|(_, n)| *n == mapping),
        format!(
            "start-up left the mapping open: {:?}\n{}",
            mappings(),
            cluster.plugin_log_tail()
        ),
    )?;
    ensure(
        crate::fabrics::controllers(&volume.nqn).is_empty(),
        "start-up left the orphaned connection",
    )?;

    // The stage, repeated as kubelet repeats it, completes.
    cluster
        .stage_with_secrets(&volume, &staging, cap.clone(), SECRET)
        .await
        .map_err(|s| {
            format!(
                "NodeStageVolume after the restart: {s:?}\n{}",
                cluster.plugin_log_tail()
            )
        })?;
    cluster
        .publish(&volume, &staging, &target, cap.clone(), false)
        .await?;
    let data = crate::fabrics::pattern(5, 256 << 10);
    write_synced(&target.join("data"), &data)?;
    cluster.unpublish(&volume, &target).await?;
    cluster.unstage(&volume, &staging).await?;
    cluster.kill_plugin()?;
    cluster.start_plugin().await?;
    cluster
        .stage_with_secrets(&volume, &staging, cap.clone(), SECRET)
        .await
        .map_err(|s| format!("NodeStageVolume: {s:?}"))?;
    cluster
        .publish(&volume, &staging, &target, cap, false)
        .await?;
    ensure(
        std::fs::read(target.join("data")).context("read back")? == data,
        "data differs",
    )?;
    cluster.unpublish(&volume, &target).await?;
    cluster.unstage(&volume, &staging).await?;
    ensure(
        !mappings().iter().any(|(_, n)| n.starts_with("rds-csi-")),
        format!("mappings left: {:?}", mappings()),
    )?;
    cluster.delete(&volume).await
}
