//! Snapshots, restores and clones over real SSH against the simulator on a
//! real, loop-mounted btrfs: copy-on-write, idempotency, faults between the
//! steps of a script, and every answer RouterOS might give where its
//! behaviour is not known.
//!
//! Needs root, loop devices and btrfs-progs (`mkfs.btrfs`, `btrfs`); fails
//! with what is missing, never passes by skipping. Each test mounts its own
//! btrfs in its own directory, so the tests run in parallel.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rds_client::snapshots::SnapshotError;
use rds_client::{ClientKey, Error, HostKeyPolicy, RdsClient, SshConfig};
use rds_sim::testing::TestSim;
use rds_sim::{Behaviour, ExecOptions, ExistingImage, LoopBtrfs, SimConfig, SubvolumeInFolder};
use routeros::subvolume::scripts::SnapshotFilter;
use routeros::subvolume::{NewVolume, ScriptFailure, SnapshotId};
use routeros::{Comment, Disk, Nqn, OwnerTest, RdsPath, Slot};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Whether the root tier was selected; if not, says the tests were skipped.
fn root_tier() -> bool {
    test_support::tier::Tier::Root.selected("-p rds-client --test btrfs")
}

fn require_root_and_btrfs() {
    test_support::tier::require_root_and_btrfs("-p rds-client --test btrfs");
}

/// A simulator whose pool `raid10` is a fresh btrfs labelled `pool1`, and a
/// client of it.
struct Env {
    client: Arc<RdsClient>,
    sim: TestSim,
    // Dropped after the simulator: unmounted, then the folder removed.
    _btrfs: Option<LoopBtrfs>,
    dir: tempfile::TempDir,
}

async fn env_with(behaviour: Behaviour) -> Env {
    require_root_and_btrfs();
    let dir = tempfile::tempdir().unwrap();
    let btrfs = LoopBtrfs::create(
        &dir.path().join("pool1.btrfs"),
        &dir.path().join("root/raid10"),
        8 * GIB,
        "pool1",
    )
    .unwrap();
    let mut config = SimConfig::single_btrfs_pool(dir.path().join("root"), "raid10", 0);
    config.behaviour = behaviour;
    let sim = TestSim::start(config).await.unwrap();
    let client = Arc::new(RdsClient::new(config_for(&sim)));
    Env {
        client,
        sim,
        _btrfs: Some(btrfs),
        dir,
    }
}

async fn env() -> Env {
    env_with(Behaviour::default()).await
}

/// The same on an xfs pool (a plain folder): no btrfs at all.
async fn xfs_env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let sim = TestSim::start(SimConfig::single_pool(
        dir.path().join("root"),
        "raid10",
        100 * GIB,
    ))
    .await
    .unwrap();
    let client = Arc::new(RdsClient::new(config_for(&sim)));
    Env {
        client,
        sim,
        _btrfs: None,
        dir,
    }
}

fn config_for(sim: &TestSim) -> SshConfig {
    let mut config = SshConfig::new(
        sim.addr.ip().to_string(),
        sim.addr.port(),
        sim.user.clone(),
        ClientKey::from_key(sim.client_key.clone()),
        HostKeyPolicy::Key(sim.host_key.clone()),
    );
    config.command_timeout = Duration::from_secs(120);
    config.reconnect_initial = Duration::from_millis(50);
    config.reconnect_max = Duration::from_millis(200);
    config
}

fn volume(name: &str, size: u64) -> NewVolume {
    volume_at(name, "/raid10/volumes", size)
}

fn volume_at(name: &str, path: &str, size: u64) -> NewVolume {
    NewVolume::new(
        Slot::new(name).unwrap(),
        &RdsPath::new(path).unwrap(),
        size,
        4420,
        Nqn::new(&format!("nqn.2000-02.com.mikrotik:{name}")).unwrap(),
        Comment::new(&format!("rds-csi:{name}")).unwrap(),
    )
    .unwrap()
}

/// The owner test of a volume made by [`volume`]: its comment.
fn owner(name: &str) -> Vec<OwnerTest> {
    vec![OwnerTest::CommentIs(
        Comment::new(&format!("rds-csi:{name}")).unwrap(),
    )]
}

fn slot(name: &str) -> Slot {
    Slot::new(name).unwrap()
}

fn id(name: &str) -> SnapshotId {
    SnapshotId::for_name(name)
}

impl Env {
    fn host(&self, path: &str) -> PathBuf {
        self.dir.path().join("root/raid10").join(path)
    }

    fn image(&self, slot: &str) -> PathBuf {
        self.host(&format!("volumes/{slot}/volume.img"))
    }

    /// Writes `byte` over the first MiB of `slot`'s image, as a node would
    /// through NVMe/TCP.
    fn write(&self, slot: &str, byte: u8) {
        write_at(&self.image(slot), 0, &vec![byte; MIB as usize]);
    }

    /// The first byte of `slot`'s image.
    fn read(&self, slot: &str) -> u8 {
        let mut b = [0u8; 1];
        std::fs::File::open(self.image(slot))
            .unwrap()
            .read_exact_at(&mut b, 0)
            .unwrap();
        b[0]
    }

    /// Every subvolume's path, sorted, as the simulator lists them.
    fn subvolumes(&self) -> Vec<String> {
        let out = self.sim.engine.execute(
            ":foreach s in=[/disk/btrfs/subvolume find] do={:put [/disk/btrfs/subvolume get $s fullname]}",
            &ExecOptions::default(),
        );
        assert!(!out.failed, "{}", out.output);
        let mut names: Vec<String> = out.output.lines().map(str::to_owned).collect();
        names.sort();
        names
    }

    fn disks(&self) -> Vec<String> {
        let mut slots: Vec<String> = self
            .sim
            .engine
            .disks()
            .into_iter()
            .map(|d| d.slot)
            .collect();
        slots.sort();
        slots
    }

    async fn make(&self, name: &str, size: u64) -> Disk {
        self.client
            .provision_volume(&volume(name, size))
            .await
            .unwrap()
    }
}

fn write_at(path: &Path, offset: u64, data: &[u8]) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(data, offset).unwrap();
    file.sync_all().unwrap();
}

/// `btrfs filesystem du -s --raw`: total and exclusive bytes.
fn du(path: &Path) -> (u64, u64) {
    let out = std::process::Command::new("btrfs")
        .args(["filesystem", "du", "-s", "--raw", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut numbers = text
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|w| w.parse::<u64>().unwrap());
    (numbers.next().unwrap(), numbers.next().unwrap())
}

fn failure(result: Result<impl std::fmt::Debug, SnapshotError>) -> ScriptFailure {
    match result {
        Err(e) => e
            .failure()
            .unwrap_or_else(|| panic!("not a script failure: {e}")),
        Ok(v) => panic!("succeeded: {v:?}"),
    }
}

#[tokio::test]
async fn on_btrfs_a_volume_gets_a_subvolume_of_its_own_and_elsewhere_a_flat_image() {
    if !root_tier() {
        return;
    }
    let env = env().await;
    let disk = env.make("pvc-1", 64 * MIB).await;
    assert_eq!(
        disk.file_path.as_deref(),
        Some("/raid10/volumes/pvc-1/volume.img")
    );
    assert_eq!(disk.size, 64 * MIB);
    assert!(!disk.nvme_tcp_export, "closed until published");
    assert_eq!(env.subvolumes(), ["volumes/pvc-1"]);
    // Idempotent.
    assert_eq!(env.make("pvc-1", 64 * MIB).await, disk);
    assert_eq!(env.subvolumes(), ["volumes/pvc-1"]);

    let xfs = xfs_env().await;
    let flat = xfs.make("pvc-1", 64 * MIB).await;
    assert_eq!(flat.file_path.as_deref(), Some("/raid10/volumes/pvc-1.img"));
    assert!(
        xfs.dir
            .path()
            .join("root/raid10/volumes/pvc-1.img")
            .is_file()
    );
}

#[tokio::test]
async fn snapshot_restore_and_clone_share_data_and_outlive_the_source() {
    if !root_tier() {
        return;
    }
    let env = env().await;
    let c = &env.client;
    let source = env.make("pvc-src", 64 * MIB).await;
    env.write("pvc-src", b'A');

    let snap = c.create_snapshot(&id("snapshot-a"), &source).await.unwrap();
    assert_eq!(snap.name.id, id("snapshot-a"));
    assert_eq!(snap.name.source.as_str(), "pvc-src");
    assert_eq!(snap.name.size, 64 * MIB, "size_bytes is the source's");
    assert!(snap.ready_to_use());
    assert!(snap.subvolume.creation_time.is_some());
    let snap_dir = env.host(&format!("volumes/{}", snap.subvolume.name));
    // Copy-on-write: right after the snapshot it owns nothing of its own.
    let (total, exclusive) = du(&snap_dir);
    assert_eq!((total, exclusive), (MIB, 0), "snapshot {snap_dir:?}");

    env.write("pvc-src", b'B');
    let restored = c
        .restore_snapshot(&volume("pvc-restored", 64 * MIB), &snap)
        .await
        .unwrap();
    assert_eq!(
        restored.file_path.as_deref(),
        Some("/raid10/volumes/pvc-restored/volume.img")
    );
    assert_eq!(restored.size, 64 * MIB);
    assert!(!restored.nvme_tcp_export, "closed until published");
    assert_eq!(env.read("pvc-restored"), b'A');
    assert_eq!(
        du(&env.host("volumes/pvc-restored")).1,
        0,
        "shares the snapshot's data"
    );

    let cloned = c
        .clone_volume(&volume("pvc-clone", 64 * MIB), &source)
        .await
        .unwrap();
    assert_eq!(cloned.size, 64 * MIB);
    assert_eq!(env.read("pvc-clone"), b'B');

    // Larger than the snapshot: grown, data kept.
    let bigger = c
        .restore_snapshot(&volume("pvc-bigger", 128 * MIB), &snap)
        .await
        .unwrap();
    assert_eq!(bigger.size, 128 * MIB);
    assert_eq!(
        std::fs::metadata(env.image("pvc-bigger")).unwrap().len(),
        128 * MIB
    );
    assert_eq!(env.read("pvc-bigger"), b'A');
    // Smaller: refused before anything is sent.
    assert!(matches!(
        c.restore_snapshot(&volume("pvc-small", 32 * MIB), &snap)
            .await,
        Err(SnapshotError::Size { .. })
    ));

    // The source goes; its snapshot stays listable and restorable.
    c.delete_volume_and_subvolume(&slot("pvc-src"), &owner("pvc-src"), true)
        .await
        .unwrap();
    assert!(!env.host("volumes/pvc-src").exists());
    let listed = c
        .list_snapshots(&SnapshotFilter::Source(slot("pvc-src")))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].subvolume.parent, None, "the source is gone");
    let again = c
        .restore_snapshot(&volume("pvc-again", 64 * MIB), &listed[0])
        .await
        .unwrap();
    assert_eq!(again.size, 64 * MIB);
    assert_eq!(env.read("pvc-again"), b'A');

    // Deleting the snapshot leaves what was restored from it.
    c.delete_snapshot(&snap.name.id).await.unwrap();
    c.delete_snapshot(&snap.name.id).await.unwrap();
    assert_eq!(c.get_snapshot(&snap.name.id).await.unwrap(), None);
    assert_eq!(env.read("pvc-restored"), b'A');
    assert_eq!(env.read("pvc-again"), b'A');

    for name in ["pvc-restored", "pvc-clone", "pvc-bigger", "pvc-again"] {
        c.delete_volume_and_subvolume(&slot(name), &owner(name), true)
            .await
            .unwrap();
    }
    assert!(env.subvolumes().is_empty(), "{:?}", env.subvolumes());
    assert!(env.disks().is_empty());
}

#[tokio::test]
async fn snapshots_are_idempotent_by_name_and_source() {
    if !root_tier() {
        return;
    }
    let env = env().await;
    let c = &env.client;
    let one = env.make("pvc-1", 16 * MIB).await;
    let two = env.make("pvc-2", 16 * MIB).await;
    let first = c.create_snapshot(&id("snapshot-x"), &one).await.unwrap();
    let again = c.create_snapshot(&id("snapshot-x"), &one).await.unwrap();
    assert_eq!(first, again);
    let err = c
        .create_snapshot(&id("snapshot-x"), &two)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SnapshotError::OfAnotherVolume { existing, requested, .. } if existing == "pvc-1" && requested == "pvc-2"),
        "{err}"
    );
    assert_eq!(env.subvolumes().len(), 3, "{:?}", env.subvolumes());

    c.create_snapshot(&id("snapshot-y"), &two).await.unwrap();
    let all = c.list_snapshots(&SnapshotFilter::All).await.unwrap();
    assert_eq!(all.len(), 2);
    let of_two = c
        .list_snapshots(&SnapshotFilter::Source(slot("pvc-2")))
        .await
        .unwrap();
    assert_eq!(of_two.len(), 1);
    assert_eq!(of_two[0].name.id, id("snapshot-y"));
    assert_eq!(
        c.get_snapshot(&id("snapshot-x")).await.unwrap(),
        Some(first)
    );
    assert_eq!(c.get_snapshot(&id("snapshot-none")).await.unwrap(), None);
}

#[tokio::test]
async fn volumes_without_a_subvolume_cannot_be_snapshotted_and_say_why() {
    if !root_tier() {
        return;
    }
    let env = env().await;
    let c = &env.client;
    // A volume made before this change: flat, even on btrfs.
    let flat = c
        .create_volume(&volume("pvc-old", 16 * MIB).flat().clone())
        .await
        .unwrap();
    let before = env.sim.engine.commands_executed();
    assert_eq!(
        failure(c.create_snapshot(&id("s"), &flat).await),
        ScriptFailure::NotInSubvolume
    );
    assert_eq!(
        failure(c.clone_volume(&volume("pvc-c", 16 * MIB), &flat).await),
        ScriptFailure::NotInSubvolume
    );
    assert_eq!(
        env.sim.engine.commands_executed(),
        before,
        "decided from the disk alone"
    );
    // A disk that has the shape but no subvolume: the appliance says so.
    std::fs::create_dir_all(env.host("volumes/pvc-fake")).unwrap();
    let fake = c
        .create_volume(&volume("pvc-fake", 16 * MIB).in_subvolume())
        .await
        .unwrap();
    assert_eq!(
        failure(c.create_snapshot(&id("s"), &fake).await),
        ScriptFailure::NotInSubvolume
    );
    assert!(env.subvolumes().is_empty());

    // On a pool that is not btrfs, volumes are flat and cannot be snapshotted.
    let xfs = xfs_env().await;
    let v = xfs.make("pvc-1", 16 * MIB).await;
    assert_eq!(
        failure(xfs.client.create_snapshot(&id("s"), &v).await),
        ScriptFailure::NotInSubvolume
    );
    // And nothing can be restored into it.
    let snap = c
        .create_snapshot(&id("s2"), &env.make("pvc-2", 16 * MIB).await)
        .await
        .unwrap();
    assert_eq!(
        failure(
            xfs.client
                .restore_snapshot(&volume("pvc-r", 16 * MIB), &snap)
                .await
        ),
        ScriptFailure::NotBtrfs
    );
    assert_eq!(xfs.sim.engine.disks().len(), 1);
}

#[tokio::test]
async fn restores_and_clones_check_where_the_data_is() {
    if !root_tier() {
        return;
    }
    let env = env().await;
    let c = &env.client;
    let source = env.make("pvc-1", 16 * MIB).await;
    let snap = c.create_snapshot(&id("s"), &source).await.unwrap();
    // Another pool: refused by the client for a clone, by the script for a
    // restore (the pool is not there).
    assert!(matches!(
        c.clone_volume(&volume_at("pvc-2", "/other/volumes", 16 * MIB), &source)
            .await,
        Err(SnapshotError::OtherPool { .. })
    ));
    assert_eq!(
        failure(
            c.restore_snapshot(&volume_at("pvc-2", "/other/volumes", 16 * MIB), &snap)
                .await
        ),
        ScriptFailure::NoPool
    );
    // A snapshot that is gone.
    let mut gone = snap.clone();
    gone.name.id = id("gone");
    assert_eq!(
        failure(c.restore_snapshot(&volume("pvc-2", 16 * MIB), &gone).await),
        ScriptFailure::SnapshotNotFound
    );
    // A size that does not match the image: nothing is made.
    let mut wrong = snap.clone();
    wrong.name.size = 8 * MIB;
    assert_eq!(
        failure(c.restore_snapshot(&volume("pvc-2", 16 * MIB), &wrong).await),
        ScriptFailure::SizeMismatch
    );
    let mut stale = source.clone();
    stale.size = 8 * MIB;
    assert_eq!(
        failure(c.clone_volume(&volume("pvc-2", 16 * MIB), &stale).await),
        ScriptFailure::SizeMismatch
    );
    c.delete_volume_and_subvolume(&slot("pvc-1"), &owner("pvc-1"), true)
        .await
        .unwrap();
    assert_eq!(
        failure(c.clone_volume(&volume("pvc-2", 16 * MIB), &source).await),
        ScriptFailure::VolumeNotFound
    );
    assert!(env.disks().is_empty());
    assert_eq!(
        env.subvolumes(),
        [format!("volumes/{}", snap.subvolume.name)]
    );
}

#[tokio::test]
async fn a_snapshot_a_disk_uses_is_kept() {
    if !root_tier() {
        return;
    }
    let env = env().await;
    let c = &env.client;
    // A writable subvolume of a snapshot's name with a disk on an image in
    // it, made by hand (a read-only snapshot's image cannot take a disk).
    let name = "snap-0123456789abcdef0123456789ab-pvc-1-1048576";
    let out = env.sim.engine.execute(
        &format!(
            "/disk/btrfs/subvolume add fs=pool1 name=volumes/{name}; \
             /disk add type=file file-path=/raid10/volumes/{name}/volume.img file-size=1M slot=by-hand"
        ),
        &ExecOptions::default(),
    );
    assert!(!out.failed, "{}", out.output);
    let id = SnapshotId::new("snap-0123456789abcdef0123456789ab").unwrap();
    assert_eq!(failure(c.delete_snapshot(&id).await), ScriptFailure::InUse);
    assert_eq!(env.subvolumes(), [format!("volumes/{name}")]);
    assert!(c.get_snapshot(&id).await.unwrap().is_some());
}

#[tokio::test]
async fn a_restore_cut_off_between_the_subvolume_and_the_disk_converges() {
    if !root_tier() {
        return;
    }
    let env = env().await;
    let source = env.make("pvc-1", 16 * MIB).await;
    env.write("pvc-1", b'A');
    let snap = env.client.create_snapshot(&id("s"), &source).await.unwrap();
    env.write("pvc-1", b'B');
    let faults = env.sim.engine.faults();
    // The caller sees the unknown outcome, and the cut left a subvolume
    // without a disk.
    let strict = RdsClient::new(config_for(&env.sim)).with_retries(0);
    faults.drop_before("/disk add");
    let err = strict
        .restore_snapshot(&volume("pvc-r", 16 * MIB), &snap)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SnapshotError::Rds(Error::ConnectionLost {
                outcome_unknown: true,
                ..
            })
        ),
        "{err}"
    );
    assert!(env.subvolumes().contains(&"volumes/pvc-r".to_owned()));
    assert_eq!(env.disks(), ["pvc-1"]);
    // The retry: one subvolume, one disk, the snapshot's data.
    let disk = strict
        .restore_snapshot(&volume("pvc-r", 16 * MIB), &snap)
        .await
        .unwrap();
    assert!(!disk.nvme_tcp_export, "closed until published");
    assert_eq!(env.read("pvc-r"), b'A');
    assert_eq!(env.disks(), ["pvc-1", "pvc-r"]);
    let subvolumes = env.subvolumes();
    assert_eq!(
        subvolumes.iter().filter(|s| s.ends_with("/pvc-r")).count(),
        1,
        "{subvolumes:?}"
    );

    // Cut after the disk was added, before it was checked and exported: the
    // retry checks and exports it.
    faults.drop_after("/disk add");
    let err = strict
        .clone_volume(&volume("pvc-c", 16 * MIB), &source)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SnapshotError::Rds(Error::ConnectionLost { .. })),
        "{err}"
    );
    let half = env
        .sim
        .engine
        .disks()
        .into_iter()
        .find(|d| d.slot == "pvc-c")
        .unwrap();
    assert!(!half.export, "not exported before it is checked");
    let disk = strict
        .clone_volume(&volume("pvc-c", 16 * MIB), &source)
        .await
        .unwrap();
    assert!(!disk.nvme_tcp_export, "closed until published");
    assert_eq!(env.read("pvc-c"), b'B');

    // And with the client's own retries, the caller sees nothing of it.
    faults.drop_before("/disk add");
    faults.drop_after("/disk btrfs subvolume add");
    env.client
        .restore_snapshot(&volume("pvc-r2", 16 * MIB), &snap)
        .await
        .unwrap();
    assert_eq!(env.read("pvc-r2"), b'A');
    assert_eq!(env.disks(), ["pvc-1", "pvc-c", "pvc-r", "pvc-r2"]);
    assert_eq!(env.subvolumes().len(), 5, "{:?}", env.subvolumes());
}

#[tokio::test]
async fn a_create_and_a_delete_cut_off_midway_converge() {
    if !root_tier() {
        return;
    }
    let env = env().await;
    let faults = env.sim.engine.faults();
    let strict = RdsClient::new(config_for(&env.sim)).with_retries(0);
    faults.drop_before("/disk add");
    assert!(
        strict
            .provision_volume(&volume("pvc-1", 16 * MIB))
            .await
            .is_err()
    );
    // A leftover subvolume holding junk is replaced, never reused.
    std::fs::write(env.host("volumes/pvc-1/volume.img"), b"junk").unwrap();
    let disk = strict
        .provision_volume(&volume("pvc-1", 16 * MIB))
        .await
        .unwrap();
    assert_eq!(disk.size, 16 * MIB);
    assert_eq!(env.read("pvc-1"), 0);
    assert_eq!(env.subvolumes(), ["volumes/pvc-1"]);

    faults.drop_after("/disk remove");
    assert!(
        strict
            .delete_volume_and_subvolume(&slot("pvc-1"), &owner("pvc-1"), true)
            .await
            .is_err()
    );
    assert!(env.disks().is_empty());
    assert_eq!(
        env.subvolumes(),
        ["volumes/pvc-1"],
        "the cut left the subvolume"
    );
    strict
        .delete_volume_and_subvolume(&slot("pvc-1"), &owner("pvc-1"), true)
        .await
        .unwrap();
    assert!(env.subvolumes().is_empty());
    assert!(!env.host("volumes/pvc-1").exists());
}

/// Restores under one answer of `/disk add` on an existing image.
async fn restore_under(existing_image: ExistingImage) -> (Env, Result<Disk, SnapshotError>) {
    let env = env_with(Behaviour {
        existing_image,
        ..Behaviour::default()
    })
    .await;
    let source = env.make("pvc-1", 16 * MIB).await;
    env.write("pvc-1", b'A');
    let snap = env.client.create_snapshot(&id("s"), &source).await.unwrap();
    let result = env
        .client
        .restore_snapshot(&volume("pvc-r", 32 * MIB), &snap)
        .await;
    (env, result)
}

#[tokio::test]
async fn every_answer_to_disk_add_on_an_existing_image_is_safe() {
    if !root_tier() {
        return;
    }
    // Answers that keep the data: the restore works, grown as asked.
    for answer in [ExistingImage::KeepAndGrow, ExistingImage::Keep] {
        let (env, result) = restore_under(answer).await;
        let disk = result.unwrap_or_else(|e| panic!("{answer:?}: {e}"));
        assert_eq!(disk.size, 32 * MIB, "{answer:?}");
        assert!(!disk.nvme_tcp_export, "closed until published: {answer:?}");
        assert_eq!(env.read("pvc-r"), b'A', "{answer:?}");
    }
    // Answers that lose the data or refuse: an error, and nothing left of
    // the new volume; the snapshot and the source are untouched.
    for (answer, expected) in [
        (ExistingImage::Refuse, ScriptFailure::DiskAddFailed),
        (ExistingImage::Replace, ScriptFailure::DataNotKept),
        (ExistingImage::Truncate, ScriptFailure::DataNotKept),
    ] {
        let (env, result) = restore_under(answer).await;
        assert_eq!(failure(result), expected, "{answer:?}");
        assert_eq!(env.disks(), ["pvc-1"], "{answer:?}");
        let subvolumes = env.subvolumes();
        assert_eq!(subvolumes.len(), 2, "{answer:?}: {subvolumes:?}");
        assert!(
            !subvolumes.iter().any(|s| s.ends_with("/pvc-r")),
            "{answer:?}"
        );
        assert_eq!(env.read("pvc-1"), b'A', "{answer:?}");
        assert!(
            env.client
                .get_snapshot(&id("s"))
                .await
                .unwrap()
                .unwrap()
                .ready_to_use(),
            "{answer:?}"
        );
    }
}

#[tokio::test]
async fn subvolumes_in_plain_folders_refused_means_a_subvolume_for_the_volume_path() {
    if !root_tier() {
        return;
    }
    let env = env_with(Behaviour {
        subvolume_in_folder: SubvolumeInFolder::Refuse,
        ..Behaviour::default()
    })
    .await;
    let err = env
        .client
        .provision_volume(&volume("pvc-1", 16 * MIB))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("parent is not a subvolume"),
        "{err}"
    );
    assert!(env.disks().is_empty() && env.subvolumes().is_empty());
    // The operator's fix: make the volume path a subvolume.
    let out = env.sim.engine.execute(
        "/disk/btrfs/subvolume add fs=pool1 name=k8s",
        &ExecOptions::default(),
    );
    assert!(!out.failed, "{}", out.output);
    let disk = env
        .client
        .provision_volume(&volume_at("pvc-1", "/raid10/k8s", 16 * MIB))
        .await
        .unwrap();
    assert_eq!(
        disk.file_path.as_deref(),
        Some("/raid10/k8s/pvc-1/volume.img")
    );
    let snap = env.client.create_snapshot(&id("s"), &disk).await.unwrap();
    env.client
        .restore_snapshot(&volume_at("pvc-2", "/raid10/k8s", 16 * MIB), &snap)
        .await
        .unwrap();
    assert_eq!(
        env.subvolumes(),
        [
            "k8s",
            "k8s/pvc-1",
            "k8s/pvc-2",
            &*format!("k8s/{}", snap.subvolume.name)
        ]
    );
}
