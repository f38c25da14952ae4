//! `rds-csi-plugin doctor`, the real binary, against the simulator and a
//! fake host root: the checklist it prints and its exit status.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::net::TcpListener;
use std::path::Path;

use rds_sim::SimConfig;
use rds_sim::testing::TestSim;
use tempfile::TempDir;
use test_support::sim::Login;

const BIN: &str = env!("CARGO_BIN_EXE_rds-csi-plugin");

/// A host NQN of the valid UUID form.
const HOST_NQN: &str = "nqn.2014-08.org.nvmexpress:uuid:6a1b2c3d-0000-4000-8000-0123456789ab";

/// A well-formed fingerprint of no key the simulator has.
const STRANGER: &str = "SHA256:pSY43iobEtHIjSVi8+waoU065/b6K2/LlQ7Bs1g8BFY";

/// Every check, in the order printed.
const CHECKS: [&str; 10] = [
    "SSH reachable",
    "host key",
    "key accepted",
    "RouterOS version",
    "volume path",
    "NVMe/TCP port",
    "kernel NVMe/TCP",
    "host NQN",
    "node tools",
    "encryption",
];

struct Setup {
    dir: TempDir,
    sim: TestSim,
    login: Login,
    /// Stands in for the RDS's NVMe/TCP port: connections queue in its
    /// backlog, which is all a TCP connect test needs.
    nvme: TcpListener,
}

/// The simulator with a 1 TiB pool `storage-pool` holding `metal-csi` (the
/// default volume path), its client key in a file, and a fake host root
/// with what the node's kernel checks look for (this machine's kernel has
/// neither NVMe/TCP nor dm-crypt) and a valid `/etc/nvme/hostnqn`.
async fn setup() -> Setup {
    setup_with_routeros("7.21.1 (stable)").await
}

/// [`setup`], with the simulator reporting RouterOS `version`.
async fn setup_with_routeros(version: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SimConfig::single_pool(dir.path().join("rds"), "storage-pool", 1 << 40);
    config.pools[0].directories = vec!["metal-csi".into()];
    config.version = version.into();
    let sim = TestSim::start(config).await.unwrap();
    let login = Login::write(&sim, dir.path()).unwrap();

    let root = dir.path().join("host");
    std::fs::create_dir_all(root.join("sys/module/nvme_tcp")).unwrap();
    std::fs::create_dir_all(root.join("sys/module/dm_crypt")).unwrap();
    std::fs::create_dir_all(root.join("dev")).unwrap();
    std::fs::write(root.join("dev/nvme-fabrics"), "").unwrap();
    std::fs::create_dir_all(dir.path().join("etc-nvme")).unwrap();
    std::fs::write(dir.path().join("etc-nvme/hostnqn"), format!("{HOST_NQN}\n")).unwrap();
    let nvme = TcpListener::bind("127.0.0.1:0").unwrap();
    Setup {
        dir,
        sim,
        login,
        nvme,
    }
}

impl Setup {
    fn fingerprint(&self) -> String {
        self.login.host_key.clone()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The flags of a plugin in `all` mode set up for this simulator and
    /// fake host.
    fn flags(&self) -> Vec<String> {
        let mut flags = self.login.flags();
        flags.extend(
            [
                "--mode",
                "all",
                "--node-id",
                "node-1",
                "--nvme-port",
                &self.nvme.local_addr().unwrap().port().to_string(),
                "--host-root",
                &self.path("host"),
                "--etc-nvme",
                &self.path("etc-nvme"),
                "--state-dir",
                &self.path("state"),
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        flags
    }
}

/// `flags` with `--name value` replaced (or added).
fn with(mut flags: Vec<String>, name: &str, value: &str) -> Vec<String> {
    match flags.iter().position(|f| f == name) {
        Some(i) => flags[i + 1] = value.to_owned(),
        None => flags.extend([name.to_owned(), value.to_owned()]),
    }
    flags
}

/// `flags` without `--name value`.
fn without(mut flags: Vec<String>, name: &str) -> Vec<String> {
    if let Some(i) = flags.iter().position(|f| f == name) {
        flags.drain(i..i + 2);
    }
    flags
}

/// Runs `rds-csi-plugin doctor <flags>` with nothing of this process's
/// environment but `PATH` (the tools check uses it). Awaited, not blocked
/// on: the simulator runs on this test's runtime.
async fn doctor(flags: &[String]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.env_clear().arg("doctor").args(flags);
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    let out = cmd.output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The line of check `name`, which must have `tag`.
fn line<'a>(out: &'a str, tag: &str, name: &str) -> &'a str {
    let start = format!("{tag:<6} {name}: ");
    out.lines()
        .find(|l| l.starts_with(&start))
        .unwrap_or_else(|| panic!("no line starting {start:?} in:\n{out}"))
}

/// The fix printed under the failed check `name`.
fn fix_of<'a>(out: &'a str, name: &str) -> &'a str {
    let failed = line(out, "[FAIL]", name);
    let mut lines = out.lines().skip_while(|l| *l != failed).skip(1);
    let next = lines.next().unwrap_or_default();
    next.strip_prefix("       fix: ")
        .unwrap_or_else(|| panic!("no fix under {failed:?} in:\n{out}"))
}

#[tokio::test]
async fn everything_in_order_passes_with_exit_0() {
    let s = setup().await;
    let (code, out, err) = doctor(&s.flags()).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let checks: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|l| {
            assert!(l.starts_with("[ok]   "), "not ok: {l}\n{out}");
            l[7..].split(':').next().unwrap_or_default()
        })
        .collect();
    assert_eq!(checks, CHECKS, "{out}");
    assert!(!out.contains("fix:"), "{out}");
    assert!(
        line(&out, "[ok]", "host key").contains(&s.fingerprint()),
        "{out}"
    );
    assert!(
        line(&out, "[ok]", "RouterOS version").contains("7.21.1"),
        "{out}"
    );
    assert!(
        line(&out, "[ok]", "volume path")
            .contains("/storage-pool/metal-csi is a folder on pool /storage-pool: 1.0 TiB free"),
        "{out}"
    );
    assert!(line(&out, "[ok]", "host NQN").contains(HOST_NQN), "{out}");
    assert!(
        out.ends_with("doctor: 0 failed, 10 ok, 0 skipped\n"),
        "{out}"
    );
    assert!(
        !s.dir.path().join("state").exists(),
        "the doctor changes nothing"
    );
}

#[tokio::test]
async fn a_wrong_host_key_fails_shows_the_presented_one_and_skips_the_login() {
    let s = setup().await;
    let flags = with(s.flags(), "--rds-host-key", STRANGER);
    let (code, out, err) = doctor(&flags).await;
    assert_eq!(code, 1, "{out}\n{err}");
    line(&out, "[ok]", "SSH reachable");
    assert!(
        line(&out, "[FAIL]", "host key").contains(STRANGER),
        "names the pin: {out}"
    );
    let fix = fix_of(&out, "host key");
    assert!(
        fix.contains(&format!("--rds-host-key {}", s.fingerprint())),
        "{fix}"
    );
    for later in ["key accepted", "RouterOS version", "volume path"] {
        line(&out, "[skip]", later);
    }
    // Checks that need no SSH still run.
    line(&out, "[ok]", "NVMe/TCP port");
    line(&out, "[ok]", "kernel NVMe/TCP");
    assert_eq!(
        s.sim.engine.commands_executed(),
        0,
        "nothing ran on a host whose key is not the pinned one"
    );
}

#[tokio::test]
async fn without_host_key_checking_the_presented_key_is_shown_for_pinning() {
    let s = setup().await;
    let flags = without(s.flags(), "--rds-host-key");
    let flags = [flags, vec!["--rds-insecure-skip-host-key-check".into()]].concat();
    let (code, out, err) = doctor(&flags).await;
    assert_eq!(code, 0, "not checked is not a failure: {out}\n{err}");
    let skipped = line(&out, "[skip]", "host key");
    assert!(
        skipped.contains("not checked") && skipped.contains(&s.fingerprint()),
        "{out}"
    );
    line(&out, "[ok]", "key accepted");
}

#[tokio::test]
async fn a_missing_volume_path_says_how_to_create_it_or_which_pools_exist() {
    let s = setup().await;
    let flags = with(s.flags(), "--volume-path", "/storage-pool/csi-volumes");
    let (code, out, err) = doctor(&flags).await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        line(&out, "[FAIL]", "volume path").contains("/storage-pool/csi-volumes does not exist"),
        "{out}"
    );
    let fix = fix_of(&out, "volume path");
    assert!(
        fix.contains("/file add type=directory name=/storage-pool/csi-volumes"),
        "{fix}"
    );

    // On no pool at all: the pools that exist.
    let flags = with(s.flags(), "--volume-path", "/raid10/metal-csi");
    let (code, out, _) = doctor(&flags).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        line(&out, "[FAIL]", "volume path").contains("no pool is mounted at /raid10"),
        "{out}"
    );
    let fix = fix_of(&out, "volume path");
    assert!(
        fix.contains("--volume-path")
            && fix.contains("pools on the RDS: /storage-pool (1.0 TiB free)"),
        "{fix}"
    );
    // The other checks are unaffected.
    line(&out, "[ok]", "RouterOS version");
    line(&out, "[ok]", "NVMe/TCP port");
}

#[tokio::test]
async fn an_old_routeros_fails_naming_what_it_lacks() {
    let s = setup_with_routeros("7.20.2 (stable)").await;
    let (code, out, err) = doctor(&s.flags()).await;
    assert_eq!(code, 1, "{out}\n{err}");
    let failed = line(&out, "[FAIL]", "RouterOS version");
    assert!(
        failed.contains("7.20.2")
            && failed.contains("nvme-tcp-server-nqn")
            && failed.contains("needs 7.21"),
        "{out}"
    );
    assert!(
        fix_of(&out, "RouterOS version").contains("7.21 or newer"),
        "{out}"
    );
    line(&out, "[ok]", "volume path");
}

#[tokio::test]
async fn an_nvme_port_nobody_listens_on_fails_with_the_fix() {
    let s = setup().await;
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let flags = with(s.flags(), "--nvme-port", &closed.to_string());
    let (code, out, err) = doctor(&flags).await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        line(&out, "[FAIL]", "NVMe/TCP port")
            .contains(&format!("nothing listens on 127.0.0.1:{closed}")),
        "{out}"
    );
    let fix = fix_of(&out, "NVMe/TCP port");
    assert!(
        fix.contains("--nvme-address") && fix.contains("--nvme-port"),
        "{fix}"
    );
    assert!(
        out.ends_with("doctor: 1 failed, 9 ok, 0 skipped\n"),
        "{out}"
    );
}

#[tokio::test]
async fn a_node_without_nvme_tcp_fails_the_kernel_check_and_skips_the_controller() {
    let s = setup().await;
    let empty = s.dir.path().join("empty-root");
    std::fs::create_dir_all(&empty).unwrap();
    // Node mode needs none of the RDS's flags.
    let flags: Vec<String> = [
        "--mode",
        "node",
        "--node-id",
        "node-1",
        "--host-root",
        empty.to_str().unwrap(),
        "--etc-nvme",
        &s.path("no-etc-nvme"),
        "--state-dir",
        &s.path("state"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, out, err) = doctor(&flags).await;
    assert_eq!(code, 1, "{out}\n{err}");
    for check in &CHECKS[..6] {
        assert!(line(&out, "[skip]", check).contains("--mode node"), "{out}");
    }
    line(&out, "[FAIL]", "kernel NVMe/TCP");
    assert!(
        fix_of(&out, "kernel NVMe/TCP").contains("modprobe nvme-tcp"),
        "{out}"
    );
    assert!(
        line(&out, "[ok]", "host NQN").contains("will be generated at first start"),
        "{out}"
    );
    // No dm-crypt under that root either: the fix says how to load it.
    line(&out, "[FAIL]", "encryption");
    assert!(
        fix_of(&out, "encryption").contains("modprobe dm-crypt"),
        "{out}"
    );
    assert!(!Path::new(&s.path("state")).exists(), "nothing generated");
}

#[tokio::test]
async fn bad_flags_exit_2_and_help_exits_0() {
    let s = setup().await;
    let (code, _, err) = doctor(&with(s.flags(), "--mode", "sideways")).await;
    assert_eq!(code, 2, "{err}");
    let (code, out, err) = doctor(&without(s.flags(), "--rds-address")).await;
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("--rds-address"), "{err}");
    assert!(
        out.is_empty(),
        "no checklist for flags the plugin refuses: {out}"
    );
    let (code, out, _) = doctor(&["--help".to_owned()]).await;
    assert_eq!(code, 0);
    assert!(out.contains("rds-csi-plugin doctor"), "{out}");
}

/// `--check-fence` needs SSH and this machine's initiator: in controller
/// mode its checks are skipped, saying why, and nothing fails for it.
#[tokio::test]
async fn the_fence_check_needs_mode_all() {
    let s = setup().await;
    let mut flags = with(s.flags(), "--mode", "controller");
    flags.push("--check-fence".into());
    let (code, out, err) = doctor(&flags).await;
    assert_eq!(code, 0, "{out}\n{err}");
    for name in [
        "fence: scratch disk",
        "fence: listed host only",
        "fence: list of two",
        "fence: unpublish cuts off",
        "fence: clean-up",
    ] {
        assert!(
            line(&out, "[skip]", name).contains("--check-fence needs --mode all"),
            "{out}"
        );
    }
    assert!(s.sim.engine.disks().is_empty(), "nothing was made");
}

/// Where no connect can be made (this kernel has no NVMe/TCP; the fake host
/// root's fabrics device answers nothing), the fence cannot be judged: the
/// check fails saying so, and still removes its scratch disk.
#[tokio::test]
async fn a_fence_that_cannot_be_judged_fails_and_cleans_up() {
    let s = setup().await;
    let mut flags = s.flags();
    flags.push("--check-fence".into());
    let (code, out, err) = doctor(&flags).await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        line(&out, "[ok]", "fence: scratch disk").contains("doctor-fence-"),
        "{out}"
    );
    assert!(
        line(&out, "[FAIL]", "fence: listed host only").contains("was refused too"),
        "{out}"
    );
    assert!(
        fix_of(&out, "fence: listed host only").contains("host names"),
        "{out}"
    );
    line(&out, "[skip]", "fence: list of two");
    line(&out, "[ok]", "fence: clean-up");
    assert!(
        s.sim.engine.disks().is_empty(),
        "{:?}",
        s.sim.engine.disks()
    );
    assert!(
        s.sim.engine.files().is_empty(),
        "{:?}",
        s.sim.engine.files()
    );
}

/// The `--check-snapshots` checks, in the order printed.
const SNAPSHOT_CHECKS: [&str; 7] = [
    "snapshots: scratch volume",
    "snapshots: marker written",
    "snapshots: snapshot",
    "snapshots: restore",
    "snapshots: clone",
    "snapshots: outlives its volume",
    "snapshots: clean-up",
];

#[tokio::test]
async fn check_snapshots_on_a_pool_that_is_not_btrfs_says_so_and_removes_its_volume() {
    let s = setup().await;
    let mut flags = s.flags();
    flags.push("--check-snapshots".into());
    let (code, out, err) = doctor(&flags).await;
    assert_eq!(code, 1, "{out}\n{err}");
    for check in CHECKS {
        line(&out, "[ok]", check);
    }
    let scratch = line(&out, "[FAIL]", SNAPSHOT_CHECKS[0]);
    assert!(
        scratch.contains("came out as a flat image")
            && scratch.contains("/storage-pool/metal-csi is not on a btrfs pool"),
        "{out}"
    );
    assert!(
        fix_of(&out, SNAPSHOT_CHECKS[0]).contains("on a btrfs pool"),
        "{out}"
    );
    for check in &SNAPSHOT_CHECKS[1..6] {
        assert!(
            line(&out, "[skip]", check).contains("a subvolume of its own"),
            "{out}"
        );
    }
    assert!(
        line(&out, "[ok]", SNAPSHOT_CHECKS[6]).contains("removed volume doctor-snap-"),
        "{out}"
    );
    assert!(
        s.sim.engine.disks().is_empty(),
        "{:?}",
        s.sim.engine.disks()
    );
    assert!(
        s.sim.engine.files().is_empty(),
        "{:?}",
        s.sim.engine.files()
    );
}

#[tokio::test]
async fn check_snapshots_needs_both_sides() {
    let s = setup().await;
    let mut flags = with(s.flags(), "--mode", "controller");
    flags.push("--check-snapshots".into());
    let (code, out, err) = doctor(&flags).await;
    assert_eq!(code, 0, "{out}\n{err}");
    for check in SNAPSHOT_CHECKS {
        assert!(
            line(&out, "[skip]", check).contains("needs --mode all"),
            "{out}"
        );
    }
    // Without the flag, none of them.
    let (_, out, _) = doctor(&s.flags()).await;
    assert!(!out.contains("snapshots:"), "{out}");
}
