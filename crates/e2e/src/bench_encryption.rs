//! Throughput of an encrypted volume against a plain one, in the same guest.
//!
//! Two 1 GiB block volumes are created, staged and published side by side,
//! one plain and one with `encryption: luks2`; then, in alternating order
//! so that neither always runs on a cooler or warmer machine, `dd` writes
//! and reads the same amount through each pod's device node with direct
//! I/O (`oflag=direct conv=fsync`, `iflag=direct`, 1 MiB blocks). The
//! medians are printed, with each encrypted figure as a ratio of the plain
//! one. Under software emulation the absolute figures mean little; the
//! ratio says what dm-crypt costs on top of NVMe/TCP. Run it with
//! `scripts/bench-encryption`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::csi::{Cluster, Volume, block};
use crate::scenarios::node_encrypted::{ENCRYPTED, SECRET};
use crate::support::{Context, Outcome, ensure};

const GIB: u64 = 1 << 30;

/// Writes and reads `mib` MiB through each volume `runs` times.
pub async fn encryption(scratch: &Path, runs: usize, mib: u64) -> Outcome {
    let mut cluster = Cluster::start(scratch, 100 * GIB).await?;
    let result = measure(&mut cluster, runs, mib).await;
    let stopped = cluster.stop().await;
    let [plain_w, plain_r, enc_w, enc_r] = result?;
    stopped?;
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let rate = |d: Duration| mib as f64 / d.as_secs_f64();
    let runs_of = |v: &[Duration]| {
        v.iter()
            .map(|d| (rate(*d) * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    };
    println!(
        "{mib} MiB of direct I/O in 1 MiB blocks through a pod's block device, {runs} runs each, in the guest:"
    );
    for (what, plain, enc) in [("write", plain_w, enc_w), ("read", plain_r, enc_r)] {
        let (p, e) = (rate(median(plain.clone())), rate(median(enc.clone())));
        println!(
            "  {what:5}  plain     median {p:8.1} MiB/s   runs {:?}",
            runs_of(&plain)
        );
        println!(
            "  {what:5}  encrypted median {e:8.1} MiB/s   runs {:?}",
            runs_of(&enc)
        );
        println!("  {what:5}  encrypted / plain: {:.2}", e / p);
    }
    Ok(())
}

/// A block volume, staged and published at a pod's path: the volume and
/// the device node.
async fn published(
    cluster: &mut Cluster,
    name: &str,
    parameters: &[(&str, &str)],
) -> Outcome<(Volume, PathBuf, PathBuf)> {
    let volume = cluster.create(name, GIB, block(), parameters).await?;
    let devices = cluster
        .scratch
        .join("kubelet/plugins/kubernetes.io/csi/volumeDevices");
    let staging = devices.join("staging").join(&volume.id);
    let target = devices.join("publish").join(&volume.id).join("bench");
    cluster
        .stage_with_secrets(&volume, &staging, block(), SECRET)
        .await
        .map_err(|s| format!("NodeStageVolume {name}: {s:?}"))?;
    cluster
        .publish(&volume, &staging, &target, block(), false)
        .await?;
    Ok((volume, staging, target))
}

/// `dd` through `device`: the time it took.
fn dd(device: &Path, write: bool, mib: u64) -> Outcome<Duration> {
    let device = device.display().to_string();
    let count = format!("count={mib}");
    let args: Vec<String> = if write {
        vec![
            "if=/dev/zero".into(),
            format!("of={device}"),
            "bs=1M".into(),
            count,
            "oflag=direct".into(),
            "conv=fsync,notrunc".into(),
            "status=none".into(),
        ]
    } else {
        vec![
            format!("if={device}"),
            "of=/dev/null".into(),
            "bs=1M".into(),
            count,
            "iflag=direct".into(),
            "status=none".into(),
        ]
    };
    let started = Instant::now();
    let status = Command::new("dd").args(&args).status().context("run dd")?;
    let took = started.elapsed();
    ensure(status.success(), format!("dd {args:?}: {status}"))?;
    Ok(took)
}

async fn measure(cluster: &mut Cluster, runs: usize, mib: u64) -> Outcome<[Vec<Duration>; 4]> {
    let (plain, plain_staging, plain_dev) =
        published(cluster, "pvc-be0c000a-aaaa-bbbb-cccc-000000000001", &[]).await?;
    let (enc, enc_staging, enc_dev) = published(
        cluster,
        "pvc-be0c000e-aaaa-bbbb-cccc-000000000001",
        ENCRYPTED,
    )
    .await?;
    // One round unmeasured: the first writes allocate the images' blocks.
    for dev in [&plain_dev, &enc_dev] {
        dd(dev, true, mib)?;
        dd(dev, false, mib)?;
    }
    let mut out: [Vec<Duration>; 4] = Default::default();
    for run in 0..runs {
        let order = if run % 2 == 0 {
            [(&plain_dev, 0), (&enc_dev, 2)]
        } else {
            [(&enc_dev, 2), (&plain_dev, 0)]
        };
        for (dev, at) in order {
            out[at].push(dd(dev, true, mib)?);
            out[at + 1].push(dd(dev, false, mib)?);
        }
    }
    for (volume, staging, dev) in [
        (plain, plain_staging, plain_dev),
        (enc, enc_staging, enc_dev),
    ] {
        cluster.unpublish(&volume, &dev).await?;
        cluster.unstage(&volume, &staging).await?;
        cluster.delete(&volume).await?;
    }
    Ok(out)
}
