//! The client against the simulator, over real SSH on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::sync::Arc;
use std::time::Duration;

use rds_client::{ClientKey, Error, HostKeyPolicy, RdsClient, SnapshotError, SshConfig};
use rds_sim::SimConfig;
use rds_sim::testing::TestSim;
use routeros::{
    CliErrorKind, Comment, CommentPattern, FileType, NewDisk, Nqn, OwnerTest, PoolName, RdsPath,
    Slot, SlotPrefix,
};
use tempfile::TempDir;
use test_support::sim::client_config as config_for;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

struct Env {
    dir: TempDir,
    sim: TestSim,
    client: Arc<RdsClient>,
}

async fn env(capacity: u64) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let sim = TestSim::start(SimConfig::single_pool(dir.path(), "raid10", capacity))
        .await
        .unwrap();
    let client = Arc::new(RdsClient::new(config_for(&sim)));
    Env { dir, sim, client }
}

fn spec(name: &str, size: u64) -> NewDisk {
    NewDisk {
        slot: Slot::new(name).unwrap(),
        file_path: path(name),
        size,
        nvme_port: 4420,
        nqn: Nqn::new(&format!("nqn.2000-02.com.mikrotik:{name}")).unwrap(),
        comment: Comment::new(&format!("rds-csi:{name}")).unwrap(),
    }
}

fn path(name: &str) -> RdsPath {
    RdsPath::new(&format!("/raid10/volumes/{name}.img")).unwrap()
}

fn slot(name: &str) -> Slot {
    Slot::new(name).unwrap()
}

/// The owner test the volumes made here pass (their comments start with
/// `rds-csi:`), and the Go driver's shape.
fn ours() -> Vec<OwnerTest> {
    vec![
        OwnerTest::CommentMatches(CommentPattern::new("^rds-csi:").unwrap()),
        OwnerTest::NoCommentImageOfSlot,
    ]
}

impl Env {
    /// Runs `op` for `0..n` all at once, each in its own task, and returns
    /// the results in order.
    async fn all_at_once<T, F, Fut>(&self, n: usize, op: F) -> Vec<T>
    where
        T: Send + 'static,
        F: Fn(Arc<RdsClient>, usize) -> Fut,
        Fut: std::future::Future<Output = T> + Send + 'static,
    {
        let tasks: Vec<_> = (0..n)
            .map(|i| tokio::spawn(op(Arc::clone(&self.client), i)))
            .collect();
        let mut results = Vec::with_capacity(n);
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results
    }

    /// Creates `pvc-0` … `pvc-{n-1}` all at once.
    async fn create_many(&self, n: usize) {
        for result in self
            .all_at_once(n, |c, i| async move {
                c.create_volume(&spec(&format!("pvc-{i}"), GIB)).await
            })
            .await
        {
            result.unwrap();
        }
    }

    fn image(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("raid10/volumes/{name}.img"))
    }

    fn disk_count(&self) -> usize {
        self.sim.engine.disks().len()
    }

    fn file_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .sim
            .engine
            .files()
            .into_iter()
            .map(|f| f.name)
            .collect();
        names.sort();
        names
    }
}

#[tokio::test]
async fn volume_lifecycle() {
    let env = env(100 * GIB).await;
    let c = &env.client;

    let disk = c.create_volume(&spec("pvc-1", 3 * GIB / 2)).await.unwrap();
    assert_eq!(disk.slot, "pvc-1");
    assert_eq!(disk.kind, "file");
    assert_eq!(disk.size, 3 * GIB / 2);
    assert_eq!(disk.file_path.as_deref(), Some("/raid10/volumes/pvc-1.img"));
    assert_eq!(disk.nqn.as_deref(), Some("nqn.2000-02.com.mikrotik:pvc-1"));
    assert_eq!(disk.nvme_tcp_port, Some(4420));
    assert!(!disk.nvme_tcp_export, "made closed to every host");
    assert!(disk.allowed_hosts.is_empty());
    assert_eq!(disk.mount_filesystem, Some(false));
    assert_eq!(disk.comment.as_deref(), Some("rds-csi:pvc-1"));
    let meta = std::fs::metadata(env.image("pvc-1")).unwrap();
    assert_eq!(meta.len(), 3 * GIB / 2);

    assert_eq!(
        c.get_volume(&slot("pvc-1")).await.unwrap(),
        Some(disk.clone())
    );
    assert_eq!(c.get_volume(&slot("pvc-none")).await.unwrap(), None);

    c.create_volume(&spec("pvc-2", 1)).await.unwrap();
    c.create_volume(&spec("other-1", GIB)).await.unwrap();
    let listed = c
        .list_volumes(&SlotPrefix::new("pvc-").unwrap())
        .await
        .unwrap();
    let slots: Vec<_> = listed.iter().map(|d| d.slot.as_str()).collect();
    assert_eq!(slots, ["pvc-1", "pvc-2"]);
    assert_eq!(listed[1].size, MIB, "1 byte rounds up to 1 MiB");

    let grown = c
        .grow_volume(&slot("pvc-1"), 2 * GIB, &ours())
        .await
        .unwrap();
    assert_eq!(grown.size, 2 * GIB);
    assert_eq!(
        std::fs::metadata(env.image("pvc-1")).unwrap().len(),
        2 * GIB
    );
    let unchanged = c.grow_volume(&slot("pvc-1"), GIB, &ours()).await.unwrap();
    assert_eq!(unchanged.size, 2 * GIB, "grow never shrinks");
    assert!(matches!(
        c.grow_volume(&slot("pvc-none"), GIB, &ours()).await,
        Err(Error::VolumeNotFound { .. })
    ));

    c.delete_volume(&slot("pvc-1"), &ours(), true)
        .await
        .unwrap();
    assert_eq!(c.get_volume(&slot("pvc-1")).await.unwrap(), None);
    assert!(!env.image("pvc-1").exists());
    c.delete_volume(&slot("pvc-1"), &ours(), true)
        .await
        .unwrap();
    assert_eq!(env.disk_count(), 2);
}

#[tokio::test]
async fn create_is_idempotent_and_never_changes_an_existing_disk() {
    let env = env(100 * GIB).await;
    let first = env.client.create_volume(&spec("pvc-1", GIB)).await.unwrap();
    let again = env.client.create_volume(&spec("pvc-1", GIB)).await.unwrap();
    assert_eq!(first, again);
    let bigger = env
        .client
        .create_volume(&spec("pvc-1", 2 * GIB))
        .await
        .unwrap();
    assert_eq!(
        bigger.size, GIB,
        "the caller sees the existing size and decides"
    );
    assert_eq!(env.disk_count(), 1);
}

#[tokio::test]
async fn create_replaces_a_stray_image_with_a_fresh_one() {
    let env = env(100 * GIB).await;
    // An image left behind by an interrupted delete, holding old data.
    std::fs::write(env.image("pvc-1"), b"old filesystem").unwrap();
    let disk = env.client.create_volume(&spec("pvc-1", GIB)).await.unwrap();
    assert_eq!(disk.size, GIB);
    let mut head = [0u8; 14];
    use std::io::Read;
    std::fs::File::open(env.image("pvc-1"))
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    assert_eq!(head, [0u8; 14], "a new volume must not carry old data");
}

#[tokio::test]
async fn create_refuses_a_path_used_by_another_disk() {
    let env = env(100 * GIB).await;
    env.client.create_volume(&spec("pvc-1", GIB)).await.unwrap();
    let clash = NewDisk {
        file_path: path("pvc-1"),
        ..spec("pvc-2", GIB)
    };
    let err = env.client.create_volume(&clash).await.unwrap_err();
    assert_eq!(err.cli_kind(), Some(CliErrorKind::AlreadyExists), "{err}");
    assert_eq!(env.disk_count(), 1);
    assert!(env.image("pvc-1").exists());
}

#[tokio::test]
async fn out_of_space_is_reported_and_leaves_nothing() {
    let env = env(10 * GIB).await;
    let err = env
        .client
        .create_volume(&spec("pvc-1", 20 * GIB))
        .await
        .unwrap_err();
    assert_eq!(err.cli_kind(), Some(CliErrorKind::OutOfSpace), "{err}");
    assert_eq!(env.disk_count(), 0);
    assert!(!env.image("pvc-1").exists());

    env.sim.engine.faults().set_disk_full(true);
    let err = env
        .client
        .create_volume(&spec("pvc-2", GIB))
        .await
        .unwrap_err();
    assert_eq!(err.cli_kind(), Some(CliErrorKind::OutOfSpace), "{err}");
    env.sim.engine.faults().set_disk_full(false);
    env.client.create_volume(&spec("pvc-2", GIB)).await.unwrap();
}

#[tokio::test]
async fn pool_capacity_and_version() {
    let env = env(100 * GIB).await;
    let pool = PoolName::new("raid10").unwrap();
    let before = env.client.pool(&pool).await.unwrap();
    assert_eq!(before.size, 100 * GIB);
    env.client
        .create_volume(&spec("pvc-1", 10 * GIB))
        .await
        .unwrap();
    let after = env.client.pool(&pool).await.unwrap();
    assert_eq!(before.free - after.free, 10 * GIB);

    assert!(matches!(
        env.client.pool(&PoolName::new("nvme9").unwrap()).await,
        Err(Error::PoolNotFound { .. })
    ));

    let resource = env.client.system_resource().await.unwrap();
    assert!(
        resource.version >= routeros::MINIMUM_VERSION,
        "{resource:?}"
    );
}

#[tokio::test]
async fn pools_and_what_a_path_holds() {
    let env = env(100 * GIB).await;
    env.client
        .create_volume(&spec("pvc-1", 10 * GIB))
        .await
        .unwrap();
    let pools = env.client.pools().await.unwrap();
    assert_eq!(pools.len(), 1, "{pools:?}");
    assert_eq!(pools[0].mount_point, "raid10");
    assert_eq!(
        (pools[0].pool.size, pools[0].pool.free),
        (100 * GIB, 90 * GIB)
    );

    let kind = |p: &'static str| {
        let client = Arc::clone(&env.client);
        async move { client.file_type(&RdsPath::new(p).unwrap()).await.unwrap() }
    };
    assert_eq!(kind("/raid10/volumes").await, FileType::Directory);
    assert_eq!(kind("/raid10").await, FileType::MountPoint);
    assert_eq!(kind("/raid10/nothing-here").await, FileType::Missing);
    assert_eq!(kind("/nvme9/volumes").await, FileType::Missing);
    assert_eq!(
        kind("/raid10/volumes/pvc-1.img").await,
        FileType::Other("file".into())
    );
}

#[tokio::test]
async fn fifty_volumes_at_once() {
    let env = env(1000 * GIB).await;
    // Commands that take a while, so that overlapping ones are seen to overlap.
    env.sim
        .engine
        .faults()
        .set_latency(Duration::from_millis(20));
    env.create_many(50).await;
    env.sim.engine.faults().set_latency(Duration::ZERO);
    assert_eq!(env.disk_count(), 50);
    let overlap = env.sim.engine.max_execs_in_flight();
    assert!(overlap > 1, "commands ran one at a time ({overlap})");
    assert_eq!(
        env.client.transport().metrics().ssh_reconnects.get(),
        0,
        "one connection carries them all"
    );
    let listed = env
        .client
        .list_volumes(&SlotPrefix::new("pvc-").unwrap())
        .await
        .unwrap();
    assert_eq!(listed.len(), 50);

    let deleted = env
        .all_at_once(50, |c, i| async move {
            let name = format!("pvc-{i}");
            c.delete_volume(&slot(&name), &ours(), true).await
        })
        .await;
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    assert_eq!(env.disk_count(), 0);
    assert!(env.file_names().is_empty(), "{:?}", env.file_names());
}

#[tokio::test]
async fn ten_creates_of_one_volume_make_one_disk() {
    let env = env(100 * GIB).await;
    let disks: Vec<_> = env
        .all_at_once(10, |c, _| async move {
            c.create_volume(&spec("pvc-same", GIB)).await
        })
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(disks.iter().all(|d| *d == disks[0]), "{disks:?}");
    assert_eq!(env.disk_count(), 1);
    assert_eq!(env.file_names(), ["raid10/volumes/pvc-same.img"]);
}

#[tokio::test]
async fn create_cut_off_after_the_disk_was_added_converges() {
    let env = env(100 * GIB).await;
    env.sim.engine.faults().drop_after("/disk add");
    let disk = env.client.create_volume(&spec("pvc-1", GIB)).await.unwrap();
    assert_eq!(disk.size, GIB);
    let metrics = env.client.transport().metrics();
    assert_eq!(metrics.ssh_connection_losses.get(), 1);
    assert_eq!(metrics.ssh_reconnects.get(), 1);
    assert_eq!(env.disk_count(), 1);
    assert_eq!(env.file_names(), ["raid10/volumes/pvc-1.img"]);
}

#[tokio::test]
async fn create_cut_off_before_the_disk_was_added_converges() {
    let env = env(100 * GIB).await;
    env.sim.engine.faults().drop_before("/disk add");
    env.client.create_volume(&spec("pvc-1", GIB)).await.unwrap();
    assert_eq!(env.disk_count(), 1);
    assert_eq!(env.file_names(), ["raid10/volumes/pvc-1.img"]);
}

#[tokio::test]
async fn delete_cut_off_between_disk_and_file_converges() {
    let env = env(100 * GIB).await;
    env.client.create_volume(&spec("pvc-1", GIB)).await.unwrap();
    env.sim.engine.faults().drop_after("/disk remove");
    env.client
        .delete_volume(&slot("pvc-1"), &ours(), true)
        .await
        .unwrap();
    assert_eq!(
        env.client.transport().metrics().ssh_connection_losses.get(),
        1
    );
    assert_eq!(env.disk_count(), 0);
    assert!(
        env.file_names().is_empty(),
        "stray image: {:?}",
        env.file_names()
    );
}

#[tokio::test]
async fn delete_cut_off_reported_to_the_caller_converges_on_its_retry() {
    let env = env(100 * GIB).await;
    env.client.create_volume(&spec("pvc-1", GIB)).await.unwrap();
    // More drops than the client retries: the caller sees the unknown outcome.
    let faults = env.sim.engine.faults();
    faults.drop_after("/disk remove");
    let strict = RdsClient::new(config_for(&env.sim)).with_retries(0);
    let err = strict
        .delete_volume(&slot("pvc-1"), &ours(), true)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ConnectionLost {
                outcome_unknown: true,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(env.disk_count(), 0);
    assert_eq!(
        env.file_names(),
        ["raid10/volumes/pvc-1.img"],
        "the cut left the image"
    );
    // The caller (the CSI sidecar) retries; the image is found by its name.
    strict
        .delete_volume(&slot("pvc-1"), &ours(), true)
        .await
        .unwrap();
    assert!(env.file_names().is_empty());
}

#[tokio::test]
async fn errors_are_judged_by_text_even_with_exit_status_zero() {
    let env = env(10 * GIB).await;
    env.sim.engine.faults().set_error_exit_zero(true);
    let err = env
        .client
        .create_volume(&spec("pvc-1", 20 * GIB))
        .await
        .unwrap_err();
    assert_eq!(err.cli_kind(), Some(CliErrorKind::OutOfSpace), "{err}");
    env.sim.engine.faults().fail_after(0);
    let err = env
        .client
        .delete_volume(&slot("pvc-1"), &ours(), true)
        .await
        .unwrap_err();
    assert_eq!(err.cli_kind(), Some(CliErrorKind::Other), "{err}");
    assert!(err.to_string().contains("simulated fault"), "{err}");
    env.sim.engine.faults().clear_fail_after();
    env.client
        .delete_volume(&slot("pvc-1"), &ours(), true)
        .await
        .unwrap();
}

#[tokio::test]
async fn host_key_must_match_the_pin() {
    let env = env(GIB).await;
    let good = config_for(&env.sim);
    let fp = rds_client::config::fingerprint(&env.sim.host_key);
    let by_fp = RdsClient::new(SshConfig {
        host_key: HostKeyPolicy::parse(&fp).unwrap(),
        ..good.clone()
    });
    by_fp.system_resource().await.unwrap();

    let stranger =
        russh::keys::PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519).unwrap();
    let pinned_wrong = RdsClient::new(SshConfig {
        host_key: HostKeyPolicy::Key(stranger.public_key().clone()),
        ..good.clone()
    });
    assert_eq!(pinned_wrong.transport().presented_host_key(), None);
    match pinned_wrong.system_resource().await {
        Err(Error::HostKeyMismatch { actual, .. }) => assert_eq!(actual, fp),
        other => panic!("expected a host key mismatch, got {other:?}"),
    }
    assert_eq!(
        pinned_wrong.transport().presented_host_key().as_deref(),
        Some(fp.as_str()),
        "the key presented is kept, for pinning"
    );
    assert_eq!(
        env.sim.engine.commands_executed(),
        1,
        "nothing ran on a mismatched host"
    );

    let insecure = RdsClient::new(SshConfig {
        host_key: HostKeyPolicy::InsecureAcceptAny,
        ..good
    });
    insecure.system_resource().await.unwrap();
    assert_eq!(
        insecure.transport().presented_host_key().as_deref(),
        Some(fp.as_str())
    );
}

#[tokio::test]
async fn unknown_client_key_is_rejected() {
    let env = env(GIB).await;
    let stranger =
        russh::keys::PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519).unwrap();
    let client = RdsClient::new(SshConfig {
        key: ClientKey::from_key(stranger),
        ..config_for(&env.sim)
    });
    let err = client.system_resource().await.unwrap_err();
    assert!(matches!(err, Error::AuthRejected { .. }), "{err}");
    assert!(err.to_string().contains("/user ssh-keys import"), "{err}");
}

#[tokio::test]
async fn keys_load_from_files_ed25519_and_rsa() {
    use russh::keys::{Algorithm, PrivateKey, ssh_key::LineEnding};
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        (
            "id_ed25519",
            PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap(),
        ),
        (
            "id_rsa",
            PrivateKey::random(&mut rand::rng(), Algorithm::Rsa { hash: None }).unwrap(),
        ),
    ];
    for (name, key) in keys {
        let file = dir.path().join(name);
        std::fs::write(&file, key.to_openssh(LineEnding::LF).unwrap()).unwrap();
        let loaded = ClientKey::load(&file).unwrap();
        assert_eq!(
            loaded.public_openssh(),
            key.public_key().to_openssh().unwrap()
        );

        let root = tempfile::tempdir().unwrap();
        let config = SimConfig::single_pool(root.path(), "raid10", GIB);
        let sim = TestSim::start_with_keys(config, vec![key.public_key().clone()])
            .await
            .unwrap();
        let client = RdsClient::new(SshConfig {
            key: loaded,
            ..config_for(&sim)
        });
        client
            .system_resource()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let missing = ClientKey::load(&dir.path().join("nope")).unwrap_err();
    assert!(missing.to_string().contains("nope"), "{missing}");
}

#[tokio::test]
async fn reconnects_after_the_rds_restarts() {
    let mut env = env(100 * GIB).await;
    // A backoff long enough that the second call below surely falls inside it.
    let client = RdsClient::new(SshConfig {
        reconnect_initial: Duration::from_secs(4),
        reconnect_max: Duration::from_secs(4),
        ..config_for(&env.sim)
    });
    client.create_volume(&spec("pvc-1", GIB)).await.unwrap();
    let addr = env.sim.addr;
    env.sim.stop().await;

    // Down: the client reports it, then backs off and fails fast.
    let err = client.get_volume(&slot("pvc-1")).await.unwrap_err();
    assert!(err.is_transport(), "{err}");
    let err = client.get_volume(&slot("pvc-1")).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    let failures = client.transport().metrics().ssh_connect_failures.get();
    assert_eq!(failures, 1, "backing off, not hammering the RDS");

    // Up again on the same port, with the same state and keys.
    let config = SimConfig::single_pool(env.dir.path(), "raid10", 100 * GIB);
    env.sim = env.sim.restart_on(config, &addr.to_string()).await.unwrap();
    let disk = loop {
        match client.get_volume(&slot("pvc-1")).await {
            Ok(d) => break d,
            Err(Error::Unavailable { retry_in, .. }) => tokio::time::sleep(retry_in).await,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(
        disk.map(|d| d.size),
        Some(GIB),
        "state survived the restart"
    );
    assert_eq!(client.transport().metrics().ssh_reconnects.get(), 1);
}

#[tokio::test]
async fn commands_time_out_and_the_connection_stays_usable() {
    let env = env(GIB).await;
    let mut config = config_for(&env.sim);
    config.command_timeout = Duration::from_millis(300);
    let client = RdsClient::new(config);
    client.system_resource().await.unwrap();
    env.sim.engine.faults().set_latency(Duration::from_secs(3));
    let err = client.system_resource().await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    env.sim.engine.faults().set_latency(Duration::ZERO);
    client.system_resource().await.unwrap();
    assert_eq!(client.transport().metrics().ssh_reconnects.get(), 0);
    assert_eq!(client.transport().metrics().command_timeouts.get(), 1);
}

#[tokio::test]
async fn a_cancelled_command_does_not_disturb_the_others() {
    let env = env(100 * GIB).await;
    env.sim
        .engine
        .faults()
        .set_latency(Duration::from_millis(500));
    let slow = {
        let client = Arc::clone(&env.client);
        tokio::spawn(async move { client.create_volume(&spec("pvc-slow", GIB)).await })
    };
    let cancelled = tokio::time::timeout(
        Duration::from_millis(100),
        env.client.create_volume(&spec("pvc-cancelled", GIB)),
    )
    .await;
    assert!(cancelled.is_err(), "the timeout cancelled the future");
    slow.await.unwrap().unwrap();
    env.sim.engine.faults().set_latency(Duration::ZERO);
    env.client
        .get_volume(&slot("pvc-slow"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(env.client.transport().metrics().ssh_reconnects.get(), 0);
}

#[tokio::test]
async fn a_session_limit_on_the_rds_is_learned_not_fatal() {
    let env = env(1000 * GIB).await;
    env.sim.engine.faults().set_max_channels(Some(3));
    env.create_many(40).await;
    assert_eq!(env.disk_count(), 40);
    let transport = env.client.transport();
    let metrics = transport.metrics();
    assert!(metrics.ssh_channel_refusals.get() > 0);
    assert_eq!(
        metrics.ssh_reconnects.get(),
        0,
        "a refused channel is not a broken connection"
    );
    assert!(
        transport.concurrency_limit() <= 3,
        "{}",
        transport.concurrency_limit()
    );

    // Once the limit is lifted, a run of successes raises the bound again.
    env.sim.engine.faults().set_max_channels(None);
    let before = transport.concurrency_limit();
    for _ in 0..rds_client::REGAIN_AFTER {
        env.client
            .get_volume(&slot("pvc-0"))
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(transport.concurrency_limit(), before + 1);
}

#[tokio::test]
async fn a_stray_image_is_found_in_any_folder_but_a_used_one_is_kept() {
    let env = env(100 * GIB).await;
    std::fs::create_dir_all(env.dir.path().join("raid10/fast")).unwrap();
    // A stray image of pvc-1 in another folder, as a volume made with another
    // volumePath and cut off while being deleted would leave.
    std::fs::write(env.dir.path().join("raid10/fast/pvc-1.img"), b"old").unwrap();
    // A file named like pvc-2's image that a disk (pvc-3) uses.
    let borrowed = NewDisk {
        file_path: RdsPath::new("/raid10/fast/pvc-2.img").unwrap(),
        ..spec("pvc-3", GIB)
    };
    env.client.create_volume(&borrowed).await.unwrap();
    // And files whose names merely resemble the pattern.
    std::fs::write(env.dir.path().join("raid10/fast/xpvc-1.img"), b"x").unwrap();
    std::fs::write(env.dir.path().join("raid10/fast/pvc-1ximg"), b"x").unwrap();

    env.client
        .delete_volume(&slot("pvc-1"), &ours(), true)
        .await
        .unwrap();
    env.client
        .delete_volume(&slot("pvc-2"), &ours(), true)
        .await
        .unwrap();
    assert_eq!(
        env.file_names(),
        [
            "raid10/fast/pvc-1ximg",
            "raid10/fast/pvc-2.img",
            "raid10/fast/xpvc-1.img"
        ]
    );
    assert_eq!(env.disk_count(), 1);
}

#[tokio::test]
async fn new_slots_are_at_most_32_characters_but_longer_ones_stay_manageable() {
    let dir = tempfile::tempdir().unwrap();
    // An appliance that took 40-character slots when the Go driver ran on it.
    let mut config = SimConfig::single_pool(dir.path(), "raid10", 100 * GIB);
    config.max_slot_len = 40;
    let sim = TestSim::start(config).await.unwrap();
    let client = RdsClient::new(config_for(&sim));
    let go_slot = "pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1";
    let err = client.create_volume(&spec(go_slot, GIB)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidValue(_)), "{err}");
    assert_eq!(sim.engine.commands_executed(), 0, "refused before sending");

    // Made the way the Go driver made them (no comment, 40-character slot).
    let run = sim.engine.execute(
        &format!(
            "/disk add type=file file-path=/raid10/volumes/{go_slot}.img file-size=1G slot={go_slot} nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:{go_slot}"
        ),
        &rds_sim::ExecOptions::default(),
    );
    assert!(!run.failed, "{}", run.output);
    let slot = Slot::new(go_slot).unwrap();
    let disk = client.get_volume(&slot).await.unwrap().unwrap();
    assert_eq!(disk.comment, None);
    assert_eq!(
        client
            .grow_volume(&slot, 2 * GIB, &ours())
            .await
            .unwrap()
            .size,
        2 * GIB
    );
    client.delete_volume(&slot, &ours(), true).await.unwrap();
    assert!(sim.engine.disks().is_empty());
    assert!(sim.engine.files().is_empty());
}

/// Polls `cond` until it holds, for at most a minute (a loaded machine is
/// slow; nothing here depends on how fast).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn command_count(metrics: &telemetry::RdsMetrics, operation: &str, outcome: &str) -> u64 {
    metrics
        .commands
        .get_or_create(&telemetry::metrics::CommandLabels {
            operation: operation.into(),
            outcome: outcome.into(),
        })
        .get()
}

#[tokio::test]
async fn commands_and_reconnects_are_counted() {
    let env = env(10 * GIB).await;
    let metrics = telemetry::RdsMetrics::default();
    let client = RdsClient::with_metrics(config_for(&env.sim), metrics.clone());
    client.create_volume(&spec("pvc-1", GIB)).await.unwrap();
    // Out of space: RouterOS answers with an error.
    client
        .create_volume(&spec("pvc-2", 20 * GIB))
        .await
        .unwrap_err();
    // Cut after the disk was added: the command is repeated on a new
    // connection, and finds the disk.
    env.sim.engine.faults().drop_after("/disk add");
    client.create_volume(&spec("pvc-3", GIB)).await.unwrap();
    client.get_volume(&slot("pvc-1")).await.unwrap().unwrap();
    client
        .delete_volume(&slot("pvc-1"), &ours(), true)
        .await
        .unwrap();

    assert_eq!(command_count(&metrics, "create", "ok"), 2);
    assert_eq!(
        command_count(&metrics, "create", "error"),
        2,
        "out of space, and the cut"
    );
    assert_eq!(command_count(&metrics, "get", "ok"), 1);
    assert_eq!(command_count(&metrics, "delete", "ok"), 1);
    assert_eq!(command_count(&metrics, "version", "ok"), 0);
    assert_eq!(metrics.ssh_reconnects.get(), 1);
    assert_eq!(metrics.ssh_connect_failures.get(), 0);
    assert_eq!(metrics.up.get(), 1);
}

#[tokio::test]
async fn the_monitor_notices_an_rds_that_went_away_fails_fast_and_finds_it_again() {
    use rds_client::{ConnectionMonitor, Reachability};

    let env = env(100 * GIB).await;
    let metrics = telemetry::RdsMetrics::default();
    // A backoff long enough that the calls below mostly fall inside it.
    let config = SshConfig {
        reconnect_initial: Duration::from_secs(4),
        reconnect_max: Duration::from_secs(4),
        ..config_for(&env.sim)
    };
    let client = Arc::new(RdsClient::with_metrics(config, metrics.clone()));
    assert_eq!(client.status().reachability, Reachability::Unknown);
    let monitor = ConnectionMonitor::spawn(&client, Duration::from_millis(300));
    let mut status = client.watch_status();
    eventually("the monitor finds the RDS and reads its version", || {
        let s = client.status();
        s.reachability == Reachability::Up && s.version.is_some()
    })
    .await;
    assert_eq!(metrics.up.get(), 1);
    status.mark_unchanged();
    let version = client.status().version.unwrap();
    assert!(version.starts_with("7."), "{version}");
    client.create_volume(&spec("pvc-1", GIB)).await.unwrap();

    // The RDS goes away: the monitor's next check is cut, and reconnecting
    // is refused.
    let faults = env.sim.engine.faults();
    faults.set_refuse_connections(true);
    faults.drop_before("/system resource print");
    eventually("the monitor notices", || {
        client.status().reachability == Reachability::Down
    })
    .await;
    assert_eq!(metrics.up.get(), 0);
    let down = client.status();
    assert!(
        down.last_error
            .as_deref()
            .unwrap()
            .contains("cannot connect"),
        "{down:?}"
    );
    assert!(status.has_changed().unwrap(), "followers are woken");

    // Operations while it is down fail fast, and do not each try to connect.
    let executed = env.sim.engine.commands_executed();
    let failures = metrics.ssh_connect_failures.get();
    let results = env
        .all_at_once(20, |_, i| {
            let client = Arc::clone(&client);
            async move { client.get_volume(&slot(&format!("pvc-{i}"))).await }
        })
        .await;
    for r in &results {
        assert!(
            matches!(
                r,
                Err(Error::Unavailable { .. }) | Err(Error::Connect { .. })
            ),
            "{r:?}"
        );
    }
    let unavailable = results
        .iter()
        .filter(|r| matches!(r, Err(Error::Unavailable { .. })))
        .count();
    let attempts = metrics.ssh_connect_failures.get() - failures;
    assert!(
        unavailable >= 20 - usize::try_from(attempts).unwrap(),
        "{attempts} attempts, {unavailable} refusals"
    );
    assert!(attempts < 20, "every call tried to connect ({attempts})");
    assert_eq!(env.sim.engine.commands_executed(), executed);
    let sent = command_count(&metrics, "get", "ok") + command_count(&metrics, "get", "error");
    assert_eq!(sent, 0, "nothing was sent");

    // Back: the monitor reconnects on its own, no operation needed.
    faults.set_refuse_connections(false);
    eventually("the monitor finds the RDS again", || {
        client.status().reachability == Reachability::Up
    })
    .await;
    assert_eq!(metrics.up.get(), 1);
    assert_eq!(metrics.ssh_reconnects.get(), 1);
    client.get_volume(&slot("pvc-1")).await.unwrap().unwrap();

    // The monitor ends with its client.
    drop(client);
    eventually("the monitor stops", || monitor.is_finished()).await;
}

#[tokio::test]
async fn a_routeros_too_old_shows_in_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SimConfig::single_pool(dir.path(), "raid10", GIB);
    config.version = "7.20.2 (stable)".into();
    let sim = TestSim::start(config).await.unwrap();
    let client = RdsClient::new(config_for(&sim));
    client.check().await.unwrap();
    let status = client.status();
    assert!(status.too_old && !status.is_usable(), "{status:?}");
    assert!(status.problem().unwrap().contains("7.20.2"));
}

#[tokio::test]
async fn create_leaves_a_folder_at_the_image_path_and_names_it() {
    let env = env(100 * GIB).await;
    // Not a stray image: a folder someone made with the image's name.
    std::fs::create_dir(env.image("pvc-1")).unwrap();
    let err = env
        .client
        .create_volume(&spec("pvc-1", GIB))
        .await
        .unwrap_err();
    match &err {
        Error::NotAFile { path } => assert_eq!(path, "/raid10/volumes/pvc-1.img"),
        other => panic!("{other}"),
    }
    assert!(
        err.to_string().contains("/raid10/volumes/pvc-1.img"),
        "{err}"
    );
    assert!(env.image("pvc-1").is_dir(), "the folder was left in place");
    assert_eq!(env.disk_count(), 0);
    // The same through the create that puts volumes on btrfs in subvolumes
    // of their own: on this pool (not btrfs), the flat create's refusal.
    let volume = routeros::subvolume::NewVolume::new(
        Slot::new("pvc-1").unwrap(),
        &RdsPath::new("/raid10/volumes").unwrap(),
        GIB,
        4420,
        spec("pvc-1", GIB).nqn,
        spec("pvc-1", GIB).comment,
    )
    .unwrap();
    match env.client.provision_volume(&volume).await.unwrap_err() {
        SnapshotError::Rds(Error::NotAFile { path }) => {
            assert_eq!(path, "/raid10/volumes/pvc-1.img")
        }
        other => panic!("{other}"),
    }
    assert!(env.image("pvc-1").is_dir(), "the folder was left in place");
    assert_eq!(env.disk_count(), 0);
}

#[tokio::test]
async fn the_stray_sweep_removes_regular_files_only() {
    let env = env(100 * GIB).await;
    std::fs::create_dir_all(env.dir.path().join("raid10/fast/pvc-1.img")).unwrap();
    std::fs::write(env.image("pvc-1"), b"stray").unwrap();
    assert_eq!(
        env.client
            .delete_volume(&slot("pvc-1"), &ours(), true)
            .await
            .unwrap(),
        None
    );
    assert_eq!(env.file_names(), Vec::<String>::new());
    assert!(
        env.dir.path().join("raid10/fast/pvc-1.img").is_dir(),
        "a folder named like an image is not an image"
    );
}

#[tokio::test]
async fn a_disk_that_passes_no_owner_test_is_left_alone_and_shown() {
    let env = env(100 * GIB).await;
    let foreign = NewDisk {
        comment: Comment::new("made by hand").unwrap(),
        ..spec("pvc-1", GIB)
    };
    env.client.create_volume(&foreign).await.unwrap();
    let kept = env
        .client
        .delete_volume(&slot("pvc-1"), &ours(), true)
        .await
        .unwrap()
        .expect("the disk is shown, not deleted");
    assert_eq!(kept.comment.as_deref(), Some("made by hand"));
    let not_grown = env
        .client
        .grow_volume(&slot("pvc-1"), 2 * GIB, &ours())
        .await
        .unwrap();
    assert_eq!(not_grown.size, GIB);
    assert_eq!(env.disk_count(), 1);
    assert!(env.image("pvc-1").exists());

    // Compare and delete: exactly the comment read, then gone.
    let exact = [OwnerTest::CommentIs(Comment::new("made by hand").unwrap())];
    let wrong = [OwnerTest::CommentIs(Comment::new("made by hand!").unwrap())];
    assert!(
        env.client
            .delete_volume(&slot("pvc-1"), &wrong, false)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        env.client
            .delete_volume(&slot("pvc-1"), &exact, false)
            .await
            .unwrap(),
        None
    );
    assert_eq!(env.disk_count(), 0);
    assert!(env.file_names().is_empty());
}

#[tokio::test]
async fn sizes_above_what_routeros_holds_are_refused_before_sending() {
    let env = env(100 * GIB).await;
    env.client.create_volume(&spec("pvc-1", GIB)).await.unwrap();
    let sent = env.sim.engine.commands_executed();
    for size in [routeros::MAX_SIZE + 1, 1 << 63, u64::MAX - 1] {
        let err = env
            .client
            .grow_volume(&slot("pvc-1"), size, &ours())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::SizeOutOfRange { .. }), "{err}");
        let err = env
            .client
            .create_volume(&spec("pvc-2", size))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::SizeOutOfRange { .. }), "{err}");
    }
    assert_eq!(env.sim.engine.commands_executed(), sent, "nothing was sent");
}

#[tokio::test]
async fn a_narrow_terminal_wraps_records_and_they_read_back() {
    let env = env(100 * GIB).await;
    env.sim.engine.set_terminal_width(40);
    std::fs::create_dir_all(
        env.dir
            .path()
            .join("raid10/a-rather-long-folder-name-for-volumes"),
    )
    .unwrap();
    let long = NewDisk {
        file_path: RdsPath::new("/raid10/a-rather-long-folder-name-for-volumes/pvc-1.img").unwrap(),
        comment: Comment::new(&format!("rds-csi:{} pvc=namespace/claim", "x".repeat(100))).unwrap(),
        ..spec("pvc-1", GIB)
    };
    let made = env.client.create_volume(&long).await.unwrap();
    assert_eq!(made.comment.as_deref(), Some(long.comment.as_str()));
    assert_eq!(made.file_path.as_deref(), Some(long.file_path.as_str()));
    let listed = env
        .client
        .list_volumes(&SlotPrefix::new("pvc-").unwrap())
        .await
        .unwrap();
    assert_eq!(listed, std::slice::from_ref(&made));
    let pools = env.client.pools().await.unwrap();
    assert_eq!(pools[0].mount_point, "raid10");
    assert_eq!(
        env.client
            .delete_volume(&slot("pvc-1"), &ours(), true)
            .await
            .unwrap(),
        None
    );
    assert_eq!(env.disk_count(), 0);
}

fn hosts(names: &[&str]) -> routeros::HostList {
    let nqns: Vec<Nqn> = names
        .iter()
        .map(|n| Nqn::new(&format!("nqn.2024-01.x:node:{n}")).unwrap())
        .collect();
    routeros::HostList::new(nqns.iter())
}

fn export(on: bool, names: &[&str]) -> routeros::ExportState {
    routeros::ExportState {
        export: on,
        hosts: hosts(names),
    }
}

#[tokio::test]
async fn set_export_changes_only_from_the_expected_state() {
    let env = env(10 * GIB).await;
    env.client.create_volume(&spec("pvc-1", GIB)).await.unwrap();
    // New disks are closed.
    let closed = export(false, &[]);
    let to_a = export(true, &["a"]);

    let disk = env
        .client
        .set_export(&slot("pvc-1"), &ours(), &closed, &to_a, false)
        .await
        .unwrap()
        .unwrap();
    assert!(disk.nvme_tcp_export);
    assert_eq!(disk.allowed_hosts, ["nqn.2024-01.x:node:a"]);
    assert_eq!(
        env.sim.engine.disks()[0].allow_host_name,
        "nqn.2024-01.x:node:a"
    );

    // The same change again: the disk is no longer as expected, so nothing
    // is changed, and the disk is printed as it is.
    let to_b = export(true, &["b"]);
    let disk = env
        .client
        .set_export(&slot("pvc-1"), &ours(), &closed, &to_b, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(disk.allowed_hosts, ["nqn.2024-01.x:node:a"]);

    // Two hosts, then one, with the bounce; then closed.
    let to_ab = export(true, &["a", "b"]);
    let disk = env
        .client
        .set_export(&slot("pvc-1"), &ours(), &to_a, &to_ab, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        disk.allowed_hosts,
        ["nqn.2024-01.x:node:a", "nqn.2024-01.x:node:b"]
    );
    let disk = env
        .client
        .set_export(&slot("pvc-1"), &ours(), &to_ab, &to_b, true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(disk.allowed_hosts, ["nqn.2024-01.x:node:b"]);
    assert!(disk.nvme_tcp_export, "switched on again after the bounce");
    let disk = env
        .client
        .set_export(&slot("pvc-1"), &ours(), &to_b, &closed, true)
        .await
        .unwrap()
        .unwrap();
    assert!(!disk.nvme_tcp_export);
    assert!(disk.allowed_hosts.is_empty());

    // No disk: nothing to print.
    assert_eq!(
        env.client
            .set_export(&slot("pvc-2"), &ours(), &closed, &to_a, false)
            .await
            .unwrap(),
        None
    );
    // One round trip each: create, then six changes.
    assert_eq!(env.sim.engine.execs_served(), 7);
}

#[tokio::test]
async fn set_export_converges_when_the_answer_is_lost() {
    let env = env(10 * GIB).await;
    env.client.create_volume(&spec("pvc-1", GIB)).await.unwrap();
    let to_ab = export(true, &["a", "b"]);
    env.client
        .set_export(&slot("pvc-1"), &ours(), &export(false, &[]), &to_ab, false)
        .await
        .unwrap();
    // The connection drops after the bounce's second command ran: the
    // client repeats the script, whose condition no longer holds, and reads
    // the state the first attempt left.
    env.sim.engine.faults().drop_after("/disk print");
    let to_b = export(true, &["b"]);
    let disk = env
        .client
        .set_export(&slot("pvc-1"), &ours(), &to_ab, &to_b, true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(disk.allowed_hosts, ["nqn.2024-01.x:node:b"]);
    assert!(disk.nvme_tcp_export);
    assert_eq!(
        env.client.transport().metrics().ssh_connection_losses.get(),
        1,
        "the answer was lost once"
    );
}

#[tokio::test]
async fn set_export_never_changes_a_disk_that_is_not_ours() {
    let env = env(10 * GIB).await;
    let foreign = NewDisk {
        comment: Comment::new("made by hand").unwrap(),
        ..spec("pvc-1", GIB)
    };
    env.client.create_volume(&foreign).await.unwrap();
    let closed = export(false, &[]);
    let to_a = export(true, &["a"]);
    // In the state expected, but passing no test: printed, not changed.
    let disk = env
        .client
        .set_export(&slot("pvc-1"), &ours(), &closed, &to_a, false)
        .await
        .unwrap()
        .unwrap();
    assert!(!disk.nvme_tcp_export && disk.allowed_hosts.is_empty());
    assert!(!env.sim.engine.disks()[0].export);
    // Without any test, nothing is sent that could change it.
    let before = env.sim.engine.commands_executed();
    env.client
        .set_export(&slot("pvc-1"), &[], &closed, &to_a, false)
        .await
        .unwrap();
    assert!(!env.sim.engine.disks()[0].export);
    assert_eq!(
        env.sim.engine.commands_executed(),
        before + 1,
        "a print alone"
    );
    // Its exact comment passes.
    let exact = [OwnerTest::CommentIs(Comment::new("made by hand").unwrap())];
    let disk = env
        .client
        .set_export(&slot("pvc-1"), &exact, &closed, &to_a, false)
        .await
        .unwrap()
        .unwrap();
    assert!(disk.nvme_tcp_export);
}
