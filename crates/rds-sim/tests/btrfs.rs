//! The simulator on a real btrfs: `/disk/btrfs/subvolume` makes, snapshots
//! and removes real subvolumes, prints them as RouterOS does, and `/disk`
//! works on images inside them.
//!
//! Needs root, loop devices and btrfs-progs (`mkfs.btrfs`, `btrfs`); fails
//! with what is missing, never passes by skipping. Each test mounts its own
//! btrfs in its own directory, so the tests run in parallel.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rds_sim::{Behaviour, Engine, ExecOptions, LoopBtrfs, SimConfig, SubvolumeInFolder};

const GIB: u64 = 1 << 30;

/// Whether the root tier was selected; if not, says the tests were skipped.
fn root_tier() -> bool {
    test_support::tier::Tier::Root.selected("-p rds-sim --test btrfs")
}

fn require_root_and_btrfs() {
    test_support::tier::require_root_and_btrfs("-p rds-sim --test btrfs");
}

/// A simulator whose pool `raid10` is a fresh 4 GiB btrfs labelled `pool1`.
struct Rig {
    // Dropped in order: the engine, then the filesystem, then the folder.
    engine: Engine,
    _btrfs: LoopBtrfs,
    dir: tempfile::TempDir,
}

fn rig_with(behaviour: Behaviour) -> Rig {
    require_root_and_btrfs();
    let dir = tempfile::tempdir().unwrap();
    let btrfs = LoopBtrfs::create(
        &dir.path().join("pool1.btrfs"),
        &dir.path().join("root/raid10"),
        4 * GIB,
        "pool1",
    )
    .unwrap();
    let mut config = SimConfig::single_btrfs_pool(dir.path().join("root"), "raid10", 0);
    config.behaviour = behaviour;
    let engine = Engine::open(config).unwrap();
    Rig {
        engine,
        _btrfs: btrfs,
        dir,
    }
}

fn rig() -> Rig {
    rig_with(Behaviour::default())
}

impl Rig {
    fn run(&self, script: &str) -> (bool, String) {
        let run = self.engine.execute(script, &ExecOptions { width: 200 });
        (!run.failed, run.output)
    }

    fn ok(&self, script: &str) -> String {
        let (ok, out) = self.run(script);
        assert!(ok, "{script}\n{out}");
        out
    }

    fn err(&self, script: &str) -> String {
        let (ok, out) = self.run(script);
        assert!(!ok, "{script} should fail:\n{out}");
        out.trim_end().lines().last().unwrap_or_default().to_owned()
    }

    fn host(&self, path: &str) -> PathBuf {
        self.dir.path().join("root/raid10").join(path)
    }
}

fn btrfs(args: &[&str]) -> String {
    let out = std::process::Command::new("btrfs")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "btrfs {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// `btrfs filesystem du -s --raw`: total and exclusive bytes.
fn du(path: &Path) -> (u64, u64) {
    let out = btrfs(&["filesystem", "du", "-s", "--raw", path.to_str().unwrap()]);
    let line = out.lines().nth(1).unwrap();
    let mut numbers = line.split_whitespace().map(|w| w.parse::<u64>().unwrap());
    (numbers.next().unwrap(), numbers.next().unwrap())
}

fn write_at(path: &Path, offset: u64, data: &[u8]) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(data, offset).unwrap();
    file.sync_all().unwrap();
}

#[test]
fn the_pool_shows_its_label_and_the_filesystems_space() {
    if !root_tier() {
        return;
    }
    let rig = rig();
    let out = rig.ok(":put [/disk get raid10 fs]; :put [/disk get raid10 fs-label]; :put [/disk get raid10 size]; :put [/disk get raid10 free]");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["btrfs", "pool1"]);
    let size: u64 = lines[2].parse().unwrap();
    let free: u64 = lines[3].parse().unwrap();
    assert!(size > 3 * GIB && size <= 4 * GIB, "{size}");
    assert!(free > 3 * GIB && free <= size, "{free}");
}

#[test]
fn subvolumes_snapshots_and_their_records() {
    if !root_tier() {
        return;
    }
    let rig = rig();
    rig.ok("/disk/btrfs/subvolume add fs=pool1 name=volumes/pvc-1");
    assert!(rig.host("volumes/pvc-1").is_dir());
    rig.ok(
        "/disk add type=file file-path=/raid10/volumes/pvc-1/volume.img file-size=64M slot=pvc-1",
    );
    write_at(&rig.host("volumes/pvc-1/volume.img"), 0, &[5u8; 1 << 20]);
    rig.ok(
        "/disk/btrfs/subvolume add fs=pool1 parent=[/disk/btrfs/subvolume find where name=pvc-1] read-only=yes name=volumes/snap-1",
    );
    // The snapshot shares every extent: nothing of its own.
    let (total, exclusive) = du(&rig.host("volumes/snap-1"));
    assert_eq!((total, exclusive), (1 << 20, 0));
    // Read-only, and independent of the source's later writes.
    assert!(std::fs::write(rig.host("volumes/snap-1/x"), b"x").is_err());
    write_at(&rig.host("volumes/pvc-1/volume.img"), 0, &[6u8; 4096]);
    let mut head = [0u8; 1];
    std::fs::File::open(rig.host("volumes/snap-1/volume.img"))
        .unwrap()
        .read_exact_at(&mut head, 0)
        .unwrap();
    assert_eq!(head, [5]);

    let out = rig.ok("/disk/btrfs/subvolume print detail");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Flags: D - DELETING; S - SNAPSHOT; r - READ-ONLY");
    assert!(
        lines[1].starts_with(" 0     name=\"pvc-1\" fullname=\"volumes/pvc-1\" fs=\"pool1\" top-level=5 parent=\"\" uuid="),
        "{out}"
    );
    assert!(
        lines[3].starts_with(" 1  Sr name=\"snap-1\" fullname=\"volumes/snap-1\" fs=\"pool1\" top-level=5 parent=\"pvc-1\" uuid="),
        "{out}"
    );
    // The time is printed bare, with its space, as RouterOS prints times.
    let created = lines[3].split("creation-time=").nth(1).unwrap();
    assert_eq!(created.len(), "2025-11-20 10:11:12".len(), "{created}");
    assert_eq!(&created[4..5], "-");
    assert_eq!(&created[10..11], " ");
    assert_eq!(
        rig.ok(":put [:len [/disk/btrfs/subvolume find where read-only=yes]]"),
        "1\r\n"
    );
    assert_eq!(
        rig.ok(":put [/disk/btrfs/subvolume get [find where name=snap-1] fullname]"),
        "volumes/snap-1\r\n"
    );

    // A writable snapshot of the snapshot holds the image as it was.
    rig.ok("/disk/btrfs/subvolume add fs=pool1 parent=snap-1 name=volumes/pvc-2");
    assert!(std::fs::metadata(rig.host("volumes/pvc-2/volume.img")).is_ok());
    std::fs::write(rig.host("volumes/pvc-2/x"), b"x").unwrap();

    // Deleting the source leaves the snapshot, whose parent is then "".
    rig.ok("/disk remove pvc-1");
    rig.ok("/disk/btrfs/subvolume remove [find where name=pvc-1]");
    assert!(!rig.host("volumes/pvc-1").exists());
    assert_eq!(
        rig.ok(":put [/disk/btrfs/subvolume get [find where name=snap-1] parent]"),
        "\r\n"
    );
    rig.ok("/disk/btrfs/subvolume remove [find where name~\"^snap-\"]");
    assert!(!rig.host("volumes/snap-1").exists());
    assert!(rig.host("volumes/pvc-2/volume.img").exists());
}

#[test]
fn removal_is_refused_for_nested_subvolumes_and_images_in_use() {
    if !root_tier() {
        return;
    }
    let rig = rig();
    rig.ok("/disk/btrfs/subvolume add fs=pool1 name=outer");
    rig.ok("/disk/btrfs/subvolume add fs=pool1 name=outer/inner");
    assert_eq!(
        rig.err("/disk/btrfs/subvolume remove [find where name=outer]"),
        "failure: subvolume contains other subvolumes"
    );
    rig.ok("/disk add type=file file-path=/raid10/outer/inner/volume.img file-size=1M slot=v");
    assert_eq!(
        rig.err("/disk/btrfs/subvolume remove [find where name=inner]"),
        "failure: subvolume is in use by a disk"
    );
    assert!(rig.host("outer/inner/volume.img").exists());
    rig.ok("/disk remove v; /disk/btrfs/subvolume remove [find where name=inner]");
    rig.ok("/disk/btrfs/subvolume remove [find where name=outer]");
    assert_eq!(rig.ok(":put [:len [/disk/btrfs/subvolume find]]"), "0\r\n");
}

#[test]
fn add_errors() {
    if !root_tier() {
        return;
    }
    let rig = rig();
    rig.ok("/disk/btrfs/subvolume add fs=pool1 name=a");
    for (script, error) in [
        (
            "/disk/btrfs/subvolume add fs=pool1 name=a",
            "failure: already have such entry",
        ),
        (
            "/disk/btrfs/subvolume add fs=pool2 name=b",
            "input does not match any value of fs",
        ),
        (
            "/disk/btrfs/subvolume add fs=pool1 name=nope/b",
            "failure: no such directory",
        ),
        (
            "/disk/btrfs/subvolume add fs=pool1 name=../b",
            "invalid value for argument name",
        ),
        (
            "/disk/btrfs/subvolume add fs=pool1 name=b parent=nothing",
            "no such item",
        ),
        (
            "/disk/btrfs/subvolume add fs=pool1 name=b read-only=maybe",
            "input does not match any value of read-only",
        ),
    ] {
        assert_eq!(rig.err(script), error, "{script}");
    }
    assert_eq!(rig.ok(":put [:len [/disk/btrfs/subvolume find]]"), "1\r\n");
}

#[test]
fn subvolumes_in_plain_folders_follow_the_switch() {
    if !root_tier() {
        return;
    }
    let allowing = rig();
    allowing.ok("/disk/btrfs/subvolume add fs=pool1 name=volumes/a");

    let refusing = rig_with(Behaviour {
        subvolume_in_folder: SubvolumeInFolder::Refuse,
        ..Behaviour::default()
    });
    assert_eq!(
        refusing.err("/disk/btrfs/subvolume add fs=pool1 name=volumes/a"),
        "failure: parent is not a subvolume"
    );
    // At the top, and inside another subvolume, it is allowed.
    refusing.ok("/disk/btrfs/subvolume add fs=pool1 name=k8s");
    refusing.ok("/disk/btrfs/subvolume add fs=pool1 name=k8s/a");
}

#[test]
fn state_and_listing_survive_a_restart() {
    if !root_tier() {
        return;
    }
    let rig = rig();
    rig.ok("/disk/btrfs/subvolume add fs=pool1 name=volumes/pvc-1");
    rig.ok(
        "/disk add type=file file-path=/raid10/volumes/pvc-1/volume.img file-size=1M slot=pvc-1",
    );
    let reopened = Engine::open(SimConfig::single_btrfs_pool(
        rig.dir.path().join("root"),
        "raid10",
        0,
    ))
    .unwrap();
    let out = reopened.execute(
        ":put [/disk get pvc-1 file-path]; :put [/disk/btrfs/subvolume get [find where name=pvc-1] fullname]",
        &ExecOptions::default(),
    );
    assert_eq!(
        out.output,
        "/raid10/volumes/pvc-1/volume.img\r\nvolumes/pvc-1\r\n"
    );
}
