//! Benchmark of snapshots, restores and clones on the simulator's real btrfs:
//! they are copy-on-write, so their time does not depend on the volume's size
//! or on how much of it is written.
//!
//! ```text
//! sudo -E cargo run --release -p rds-client --example snapshot_bench -- --sizes-gib 1,100
//! ```
//!
//! Needs root (a loop-mounted btrfs) and btrfs-progs. For each size, makes a
//! volume and writes half of it: every other MiB is allocated (`fallocate`)
//! and its first 4 KiB written, so the image holds one real extent per
//! written MiB (tens of thousands for 100 GiB) while writing takes seconds,
//! not the minutes 50 GiB of data would. A copy of such an image, even a
//! reflink copy, costs time in proportion to its extents; a snapshot does
//! not. Then it times, over loopback SSH, each call as the controller makes
//! it: a snapshot of the volume, a restore of that snapshot into a new
//! volume, and a clone of the live volume, `--runs` times each, and prints
//! the median and range of each. The figures for the small and the large
//! volume should be equal within noise.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark stops at the first error

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;
use rds_client::{ClientKey, HostKeyPolicy, RdsClient, SshConfig};
use rds_sim::testing::TestSim;
use rds_sim::{LoopBtrfs, SimConfig};
use routeros::subvolume::{NewVolume, SnapshotId};
use routeros::{Comment, Nqn, RdsPath, Slot};
use rustix::fs::FallocateFlags;

#[derive(Parser)]
struct Args {
    /// Volume sizes, in GiB.
    #[arg(long, value_delimiter = ',', default_value = "1,100")]
    sizes_gib: Vec<u64>,
    /// Timed calls per operation and size.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Size of the sparse btrfs filesystem the pool is made on, in GiB. Only
    /// what is written takes space on the host.
    #[arg(long, default_value_t = 256)]
    fs_size_gib: u64,
    /// Folder for the filesystem's image (a temporary folder in it).
    #[arg(long, default_value = "/var/tmp")]
    dir: std::path::PathBuf,
}

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn volume(name: &str, size: u64) -> NewVolume {
    NewVolume::new(
        Slot::new(name).unwrap(),
        &RdsPath::new("/raid10/volumes").unwrap(),
        size,
        4420,
        Nqn::new(&format!("nqn.2000-02.com.mikrotik:{name}")).unwrap(),
        Comment::new(&format!("rds-csi:{name}")).unwrap(),
    )
    .unwrap()
}

/// Allocates every other MiB of `image` and writes the first 4 KiB of each:
/// half the volume in real extents.
fn write_half(image: &Path, size: u64) -> Duration {
    let started = Instant::now();
    let file = std::fs::OpenOptions::new().write(true).open(image).unwrap();
    let data = [0xa5u8; 4096];
    let mut offset = 0;
    while offset < size {
        rustix::fs::fallocate(&file, FallocateFlags::empty(), offset, MIB).unwrap();
        file.write_all_at(&data, offset).unwrap();
        offset += 2 * MIB;
    }
    file.sync_all().unwrap();
    started.elapsed()
}

/// The number of file extents of `path`: the lines of `filefrag -v`, which
/// lists each (its summary merges those that lie side by side on disk).
fn extents(path: &Path) -> String {
    let out = std::process::Command::new("filefrag")
        .arg("-v")
        .arg(path)
        .output()
        .ok()
        .filter(|o| o.status.success());
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| {
                let l = l.trim_start();
                let digits = l.bytes().take_while(u8::is_ascii_digit).count();
                digits > 0 && l[digits..].starts_with(':')
            })
            .count()
            .to_string()
    })
    .unwrap_or_else(|| "?".to_owned())
}

fn human(bytes: u64) -> String {
    if bytes >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}

/// One volume size: its source and the times measured.
struct Row {
    size_gib: u64,
    source: routeros::Disk,
    written: Duration,
    allocated: u64,
    extents: String,
    snapshot: Vec<Duration>,
    restore: Vec<Duration>,
    clone: Vec<Duration>,
}

/// Commits the filesystem at `mount` (`btrfs filesystem sync`).
fn commit(mount: &Path) {
    let status = std::process::Command::new("btrfs")
        .args(["filesystem", "sync"])
        .arg(mount)
        .status()
        .unwrap();
    assert!(status.success());
}

struct Timing(Vec<Duration>);

impl Timing {
    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1000.0
    }

    fn show(&self) -> String {
        let mut sorted = self.0.clone();
        sorted.sort();
        format!(
            "{:7.1} ({:.1}-{:.1})",
            Self::ms(sorted[sorted.len() / 2]),
            Self::ms(sorted[0]),
            Self::ms(sorted[sorted.len() - 1])
        )
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    assert!(
        rustix::process::geteuid().is_root(),
        "the snapshot benchmark needs root (a loop-mounted btrfs)"
    );
    let dir = tempfile::tempdir_in(&args.dir).unwrap();
    let root = dir.path().join("root");
    let mut btrfs = LoopBtrfs::create(
        &dir.path().join("pool.btrfs"),
        &root.join("raid10"),
        args.fs_size_gib * GIB,
        "pool1",
    )
    .unwrap();
    let sim = TestSim::start(SimConfig::single_btrfs_pool(&root, "raid10", 0))
        .await
        .unwrap();
    let mut config = SshConfig::new(
        sim.addr.ip().to_string(),
        sim.addr.port(),
        sim.user.clone(),
        ClientKey::from_key(sim.client_key.clone()),
        HostKeyPolicy::Key(sim.host_key.clone()),
    );
    config.command_timeout = Duration::from_secs(300);
    let client = RdsClient::new(config);
    client.system_resource().await.unwrap(); // connect outside the measurements

    println!(
        "snapshot, restore and clone on a loop-mounted btrfs ({} GiB, sparse), rds-sim over loopback SSH, {} calls each; median (min-max) in ms",
        args.fs_size_gib, args.runs
    );
    println!(
        "{:>8} {:>12} {:>9} {:>9} {:>24} {:>24} {:>24}",
        "volume", "allocated", "extents", "write s", "snapshot", "restore", "clone"
    );
    // Every volume is made and written first, and its writes committed, so
    // that no timed call pays for them. The sizes then take turns in each
    // run, so that both see the same number of subvolumes.
    let mut rows = Vec::new();
    for size_gib in &args.sizes_gib {
        let size = size_gib * GIB;
        let name = format!("pvc-src-{size_gib}g");
        let source = client.provision_volume(&volume(&name, size)).await.unwrap();
        let image = root.join(format!("raid10/volumes/{name}/volume.img"));
        let written = write_half(&image, size);
        let allocated = std::fs::metadata(&image).unwrap().blocks() * 512;
        rows.push(Row {
            size_gib: *size_gib,
            source,
            written,
            allocated,
            extents: extents(&image),
            snapshot: Vec::new(),
            restore: Vec::new(),
            clone: Vec::new(),
        });
    }
    commit(&root.join("raid10"));
    for run in 0..args.runs {
        for row in &mut rows {
            let (g, size) = (row.size_gib, row.size_gib * GIB);
            let id = SnapshotId::for_name(&format!("snapshot-{g}g-{run}"));
            let started = Instant::now();
            let snapshot = client.create_snapshot(&id, &row.source).await.unwrap();
            row.snapshot.push(started.elapsed());

            let started = Instant::now();
            let restored = client
                .restore_snapshot(&volume(&format!("pvc-r-{g}g-{run}"), size), &snapshot)
                .await
                .unwrap();
            row.restore.push(started.elapsed());
            assert_eq!(restored.size, size);

            let started = Instant::now();
            let cloned = client
                .clone_volume(&volume(&format!("pvc-c-{g}g-{run}"), size), &row.source)
                .await
                .unwrap();
            row.clone.push(started.elapsed());
            assert_eq!(cloned.size, size);
        }
    }
    for row in rows {
        println!(
            "{:>5} GiB {:>12} {:>9} {:>9.1} {:>24} {:>24} {:>24}",
            row.size_gib,
            human(row.allocated),
            row.extents,
            row.written.as_secs_f64(),
            Timing(row.snapshot).show(),
            Timing(row.restore).show(),
            Timing(row.clone).show()
        );
    }
    drop(sim);
    // Unmounting waits for btrfs to drop what the benchmark made.
    btrfs.unmount().unwrap();
}
