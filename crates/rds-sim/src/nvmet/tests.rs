//! Exporter tests without a kernel: the layout written to a temp folder, and
//! the engine driving a folder that behaves like nvmet's configfs, with fake
//! loop devices. The real thing is proved in the guest (`crates/e2e`).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::layout::{ConfigFs, Layout, apply};
use super::loopdev::Backing;
use super::record::Record;
use super::*;
use crate::config::SimConfig;
use crate::engine::{Engine, ExecOptions};
use crate::state::persist::STATE_DIR;

const NQN: &str = "nqn.2000-02.com.mikrotik:pvc-1";

/// A folder standing in for `…/nvmet`: directories made where configfs
/// makes them make their default groups, and removing one removes its
/// attributes, as configfs does. A path containing `fail_on` fails.
#[derive(Clone)]
struct FakeConfigFs {
    fail_on: Arc<Mutex<Option<String>>>,
    /// Every link made, in order.
    links: Arc<Mutex<Vec<PathBuf>>>,
}

impl FakeConfigFs {
    fn new(root: &Path) -> FakeConfigFs {
        fs::create_dir_all(root.join("subsystems")).unwrap();
        fs::create_dir_all(root.join("ports")).unwrap();
        fs::create_dir_all(root.join("hosts")).unwrap();
        FakeConfigFs {
            fail_on: Arc::new(Mutex::new(None)),
            links: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn fail_on(&self, fragment: Option<&str>) {
        *self.fail_on.lock().unwrap() = fragment.map(str::to_owned);
    }

    fn check(&self, path: &Path) -> io::Result<()> {
        match &*self.fail_on.lock().unwrap() {
            Some(f) if path.to_string_lossy().contains(f.as_str()) => {
                Err(io::Error::other("injected failure"))
            }
            _ => Ok(()),
        }
    }
}

fn parent_name(path: &Path) -> String {
    path.parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

const DEFAULT_GROUPS: [&str; 4] = ["namespaces", "allowed_hosts", "subsystems", "referrals"];

impl ConfigFs for FakeConfigFs {
    fn mkdir(&self, path: &Path) -> io::Result<()> {
        self.check(path)?;
        fs::create_dir(path)?;
        match parent_name(path).as_str() {
            "subsystems" if parent_name(path.parent().unwrap()) != "subsystems" => {
                fs::create_dir(path.join("namespaces"))?;
                fs::create_dir(path.join("allowed_hosts"))?;
            }
            "ports" => {
                fs::create_dir(path.join("subsystems"))?;
                fs::create_dir(path.join("referrals"))?;
            }
            _ => {}
        }
        Ok(())
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        self.check(path)?;
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_file() {
                fs::remove_file(entry.path())?;
            } else if DEFAULT_GROUPS.contains(&name.as_str()) {
                fs::remove_dir(entry.path())?;
            }
        }
        fs::remove_dir(path)
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        self.check(path)?;
        if !path.parent().is_some_and(Path::is_dir) {
            return Err(io::ErrorKind::NotFound.into());
        }
        fs::write(path, value)
    }

    fn read(&self, path: &Path) -> io::Result<String> {
        fs::read_to_string(path)
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.check(link)?;
        self.links.lock().unwrap().push(link.to_path_buf());
        std::os::unix::fs::symlink(target, link)
    }

    fn unlink(&self, link: &Path) -> io::Result<()> {
        self.check(link)?;
        fs::remove_file(link)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        layout::list_dir(dir)
    }

    fn exists(&self, path: &Path) -> bool {
        fs::symlink_metadata(path).is_ok()
    }
}

/// Loop devices that only exist in a map; counts refreshes.
#[derive(Clone, Default)]
struct FakeLoops {
    inner: Arc<Mutex<FakeLoopState>>,
}

#[derive(Default)]
struct FakeLoopState {
    next: u32,
    attached: BTreeMap<String, PathBuf>,
    refreshes: Vec<String>,
}

impl FakeLoops {
    fn attached(&self) -> BTreeMap<String, PathBuf> {
        self.inner.lock().unwrap().attached.clone()
    }

    fn refreshes(&self) -> Vec<String> {
        self.inner.lock().unwrap().refreshes.clone()
    }
}

impl Backing for FakeLoops {
    fn attach(&self, image: &Path) -> Result<String, String> {
        let mut state = self.inner.lock().unwrap();
        let device = format!("/dev/loop{}", state.next);
        state.next += 1;
        state.attached.insert(device.clone(), image.to_path_buf());
        Ok(device)
    }

    fn refresh(&self, device: &str) -> Result<(), String> {
        self.inner.lock().unwrap().refreshes.push(device.to_owned());
        Ok(())
    }

    fn detach(&self, device: &str) -> Result<(), String> {
        let mut state = self.inner.lock().unwrap();
        state
            .attached
            .remove(device)
            .map(drop)
            .ok_or_else(|| format!("{device} is not attached"))
    }

    fn backing_file(&self, device: &str) -> Option<PathBuf> {
        self.inner.lock().unwrap().attached.get(device).cloned()
    }
}

struct Rig {
    dir: tempfile::TempDir,
    fs: FakeConfigFs,
    loops: FakeLoops,
    engine: Engine,
}

fn config(dir: &Path) -> SimConfig {
    let mut config = SimConfig::single_pool(dir.join("root"), "raid10", 100 << 30);
    config.nvmet = Some(NvmetConfig {
        configfs: dir.join("nvmet"),
        traddr: "127.0.0.1".into(),
    });
    config
}

fn open(dir: &Path, fs: &FakeConfigFs, loops: &FakeLoops) -> Result<Engine, crate::SimError> {
    Engine::open_with(
        config(dir),
        Some((Box::new(fs.clone()), Box::new(loops.clone()))),
    )
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let fs = FakeConfigFs::new(&dir.path().join("nvmet"));
    let loops = FakeLoops::default();
    let engine = open(dir.path(), &fs, &loops).unwrap();
    Rig {
        dir,
        fs,
        loops,
        engine,
    }
}

impl Rig {
    fn run(&self, script: &str) -> crate::Execution {
        self.engine.execute(script, &ExecOptions::default())
    }

    fn ok(&self, script: &str) {
        let run = self.run(script);
        assert!(!run.failed, "{script}\n{}", run.output);
    }

    fn add(&self, slot: &str, nqn: &str, port: u16) {
        self.ok(&format!(
            "/disk add type=file file-path=/raid10/volumes/{slot}.img file-size=1G slot={slot} \
             nvme-tcp-export=yes nvme-tcp-server-port={port} nvme-tcp-server-nqn=\"{nqn}\""
        ));
    }

    fn nvmet(&self, rel: &str) -> PathBuf {
        self.dir.path().join("nvmet").join(rel)
    }

    fn image(&self, slot: &str) -> PathBuf {
        fs::canonicalize(
            self.dir
                .path()
                .join(format!("root/raid10/volumes/{slot}.img")),
        )
        .unwrap()
    }

    fn record(&self) -> Record {
        Record::load(&self.dir.path().join("root").join(STATE_DIR)).unwrap()
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

#[test]
fn the_layout_of_a_disk_written_to_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nvmet");
    let fake = FakeConfigFs::new(&root);
    let layout = Layout::new(&root);
    let mut steps = layout.add_subsystem(NQN, "/dev/loop7", true);
    steps.extend(layout.add_port(4420, "127.0.0.1", 4420));
    steps.extend(layout.link(4420, NQN));
    apply(&fake, &steps).unwrap();

    let subsystem = root.join("subsystems").join(NQN);
    assert_eq!(read(&subsystem.join("attr_allow_any_host")), "1");
    let namespace = subsystem.join("namespaces/1");
    assert_eq!(read(&namespace.join("device_path")), "/dev/loop7");
    assert_eq!(read(&namespace.join("enable")), "1");
    let port = root.join("ports/4420");
    assert_eq!(read(&port.join("addr_trtype")), "tcp");
    assert_eq!(read(&port.join("addr_adrfam")), "ipv4");
    assert_eq!(read(&port.join("addr_traddr")), "127.0.0.1");
    assert_eq!(read(&port.join("addr_trsvcid")), "4420");
    assert_eq!(
        fs::read_link(port.join("subsystems").join(NQN)).unwrap(),
        subsystem
    );
    assert_eq!(
        layout.add_port(1, "::1", 4420)[2],
        layout::Step::Write(root.join("ports/1/addr_adrfam"), "ipv6".into())
    );

    // Removal, in the order configfs needs.
    let mut steps = layout.unlink(4420, NQN);
    steps.extend(layout.remove_subsystem(NQN));
    steps.extend(layout.remove_port(4420));
    apply(&fake, &steps).unwrap();
    assert!(
        layout::list_dir(&root.join("subsystems"))
            .unwrap()
            .is_empty()
    );
    assert!(layout::list_dir(&root.join("ports")).unwrap().is_empty());
}

#[test]
fn a_failed_step_undoes_what_the_plan_made() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nvmet");
    let fake = FakeConfigFs::new(&root);
    fake.fail_on(Some("enable"));
    let err = apply(
        &fake,
        &Layout::new(&root).add_subsystem(NQN, "/dev/loop0", true),
    )
    .unwrap_err();
    assert!(err.to_string().contains("namespaces/1/enable"), "{err}");
    assert!(
        layout::list_dir(&root.join("subsystems"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn exports_follow_the_disk_settings() {
    let mut disks = vec![
        Disk::new(1, "a".into(), "/p/a.img".into(), 5),
        Disk::new(2, "b".into(), "/p/b.img".into(), 6),
        Disk::new(3, "c".into(), "/p/c.img".into(), 7),
        Disk::new(4, "gone".into(), "/p/gone.img".into(), 8),
    ];
    disks[0].nvme_tcp_export = true;
    disks[0].nvme_tcp_server_nqn = "nqn.x:a".into();
    disks[1].nvme_tcp_export = true; // no NQN: named by its slot
    disks[1].nvme_tcp_server_port = 4421;
    disks[2].nvme_tcp_export = true;
    disks[2].disabled = true;
    disks[3].nvme_tcp_export = true;
    let found = exports(&disks, |p| {
        (p != "/p/gone.img").then(|| PathBuf::from(format!("/nonexistent{p}")))
    });
    assert_eq!(
        found,
        vec![
            Export {
                nqn: "nqn.x:a".into(),
                image: "/nonexistent/p/a.img".into(),
                port: 4420,
                size: 5,
                hosts: None,
            },
            Export {
                nqn: "b".into(),
                image: "/nonexistent/p/b.img".into(),
                port: 4421,
                size: 6,
                hosts: None,
            },
        ]
    );
    assert!(check_nqn("nqn.2014-08.org.nvmexpress.discovery").is_err());
    assert!(check_nqn("a/b").is_err());
    assert!(check_nqn("").is_err());
    assert!(check_nqn(NQN).is_ok());
}

#[test]
fn add_set_and_remove_keep_nvmet_in_step() {
    let r = rig();
    r.add("pvc-1", NQN, 4420);
    assert_eq!(r.engine.nvmet_exports(), vec![NQN.to_string()]);
    assert_eq!(
        read(&r.nvmet(&format!("subsystems/{NQN}/namespaces/1/device_path"))),
        "/dev/loop0"
    );
    assert_eq!(r.loops.attached()["/dev/loop0"], r.image("pvc-1"));
    assert!(r.nvmet(&format!("ports/4420/subsystems/{NQN}")).exists());
    assert!(r.record().subsystems.contains_key(NQN));
    assert!(r.record().ports.contains(&4420));

    // Growth is announced.
    r.ok("/disk set pvc-1 file-size=2G");
    assert_eq!(r.loops.refreshes(), vec!["/dev/loop0".to_string()]);
    assert_eq!(
        read(&r.nvmet(&format!("subsystems/{NQN}/namespaces/1/revalidate_size"))),
        "1"
    );

    // Another port: made on demand; the unused one goes.
    r.ok("/disk set pvc-1 nvme-tcp-server-port=4421");
    assert!(r.nvmet(&format!("ports/4421/subsystems/{NQN}")).exists());
    assert!(!r.nvmet("ports/4420").exists());
    assert_eq!(r.record().ports.iter().copied().collect::<Vec<_>>(), [4421]);

    // A new NQN is a new subsystem.
    r.ok("/disk set pvc-1 nvme-tcp-server-nqn=\"nqn.2000-02.com.mikrotik:other\"");
    assert_eq!(
        r.engine.nvmet_exports(),
        vec!["nqn.2000-02.com.mikrotik:other".to_string()]
    );
    assert!(!r.nvmet(&format!("subsystems/{NQN}")).exists());

    // Export off, then on again.
    r.ok("/disk set pvc-1 nvme-tcp-export=no");
    assert!(r.engine.nvmet_exports().is_empty());
    assert!(r.loops.attached().is_empty());
    assert!(layout::list_dir(&r.nvmet("ports")).unwrap().is_empty());
    r.ok("/disk set pvc-1 nvme-tcp-export=yes");
    assert_eq!(r.engine.nvmet_exports().len(), 1);

    r.ok("/disk remove pvc-1");
    assert!(r.engine.nvmet_exports().is_empty());
    assert!(layout::list_dir(&r.nvmet("subsystems")).unwrap().is_empty());
    assert!(r.loops.attached().is_empty());
    assert_eq!(r.record(), Record::default());
}

#[test]
fn a_configfs_failure_fails_the_command_and_changes_nothing() {
    let r = rig();
    r.add("pvc-1", NQN, 4420);
    r.fs.fail_on(Some("enable"));
    let run = r.run(
        "/disk add type=file file-path=/raid10/volumes/pvc-2.img file-size=1G slot=pvc-2 \
         nvme-tcp-export=yes nvme-tcp-server-nqn=\"nqn.x:pvc-2\"",
    );
    assert!(run.failed);
    assert!(
        run.output.starts_with("failure: nvmet: cannot write"),
        "{}",
        run.output
    );
    assert_eq!(r.engine.disks().len(), 1);
    assert_eq!(r.engine.nvmet_exports(), vec![NQN.to_string()]);
    assert!(!r.nvmet("subsystems/nqn.x:pvc-2").exists());
    assert_eq!(r.loops.attached().len(), 1);
    assert_eq!(r.record().subsystems.len(), 1);

    // A failed move to another port leaves the disk where it was.
    r.fs.fail_on(Some("ports/4421"));
    assert!(r.run("/disk set pvc-1 nvme-tcp-server-port=4421").failed);
    assert_eq!(r.engine.disks()[0].port, 4420);
    assert!(r.nvmet(&format!("ports/4420/subsystems/{NQN}")).exists());

    r.fs.fail_on(None);
    r.ok("/disk set pvc-1 nvme-tcp-server-port=4421");
}

#[test]
fn foreign_subsystems_and_duplicate_nqns_are_refused() {
    let r = rig();
    fs::create_dir(r.nvmet("subsystems/nqn.foreign:x")).unwrap();
    let run = r.run(
        "/disk add type=file file-path=/raid10/volumes/a.img file-size=1G slot=a \
         nvme-tcp-export=yes nvme-tcp-server-nqn=\"nqn.foreign:x\"",
    );
    assert!(
        run.output.contains("was not made by this simulator"),
        "{}",
        run.output
    );
    assert!(r.nvmet("subsystems/nqn.foreign:x").exists());
    assert!(r.loops.attached().is_empty());

    r.add("b", NQN, 4420);
    let run = r.run(
        "/disk add type=file file-path=/raid10/volumes/c.img file-size=1G slot=c \
         nvme-tcp-export=yes nvme-tcp-server-nqn=\"nqn.2000-02.com.mikrotik:pvc-1\"",
    );
    assert!(run.output.contains("two disks export"), "{}", run.output);
    assert_eq!(r.engine.nvmet_exports(), vec![NQN.to_string()]);
}

#[test]
fn a_restarted_simulator_adopts_its_own_and_removes_what_is_gone() {
    let r = rig();
    r.add("keep", "nqn.x:keep", 4420);
    r.add("drop", "nqn.x:drop", 4420);
    fs::create_dir(r.nvmet("subsystems/nqn.foreign:y")).unwrap();
    let Rig {
        dir,
        fs: cfs,
        loops,
        engine,
    } = r;
    drop(engine);
    // The state changes while no exporter watches: "drop" is removed.
    let mut plain = config(dir.path());
    plain.nvmet = None;
    let engine = Engine::open(plain).unwrap();
    engine.execute("/disk remove drop", &ExecOptions::default());
    drop(engine);

    let engine = open(dir.path(), &cfs, &loops).unwrap();
    let r = Rig {
        dir,
        fs: cfs,
        loops,
        engine,
    };
    let engine = &r.engine;
    assert_eq!(engine.nvmet_exports(), vec!["nqn.x:keep".to_string()]);
    // Adopted: the same device, announced again in case it grew meanwhile.
    assert_eq!(
        r.loops.attached().keys().cloned().collect::<Vec<_>>(),
        ["/dev/loop0"]
    );
    assert_eq!(r.loops.refreshes(), vec!["/dev/loop0".to_string()]);
    assert!(r.nvmet("ports/4420/subsystems/nqn.x:keep").exists());
    assert!(!r.nvmet("subsystems/nqn.x:drop").exists());
    assert!(r.nvmet("subsystems/nqn.foreign:y").exists());

    // A subsystem of ours that vanished from configfs is made again.
    engine.nvmet_shutdown().unwrap();
    let again = open(r.dir.path(), &r.fs, &r.loops).unwrap();
    assert_eq!(again.nvmet_exports(), vec!["nqn.x:keep".to_string()]);
}

#[test]
fn ports_can_be_taken_away_and_brought_back() {
    let r = rig();
    r.add("a", "nqn.x:a", 4420);
    r.add("b", "nqn.x:b", 4421);
    r.engine.nvmet_port_down(4420).unwrap();
    assert!(!r.nvmet("ports/4420").exists());
    assert!(r.nvmet("ports/4421/subsystems/nqn.x:b").exists());
    // Still exported, only not served.
    assert_eq!(r.engine.nvmet_exports().len(), 2);
    r.add("c", "nqn.x:c", 4420);
    assert!(!r.nvmet("ports/4420").exists());

    r.engine.nvmet_port_up(4420).unwrap();
    assert!(r.nvmet("ports/4420/subsystems/nqn.x:a").exists());
    assert!(r.nvmet("ports/4420/subsystems/nqn.x:c").exists());

    r.engine.nvmet_shutdown().unwrap();
    assert!(layout::list_dir(&r.nvmet("subsystems")).unwrap().is_empty());
    assert!(layout::list_dir(&r.nvmet("ports")).unwrap().is_empty());
    assert!(r.loops.attached().is_empty());
    // Shut down: commands leave nvmet alone.
    r.add("d", "nqn.x:d", 4420);
    assert!(r.engine.nvmet_exports().is_empty());
    assert!(matches!(
        r.engine.nvmet_port_down(4420),
        Err(NvmetError::Disabled)
    ));
}

#[test]
fn without_nvmet_nothing_is_exported() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(SimConfig::single_pool(dir.path(), "raid10", 1 << 30)).unwrap();
    assert!(engine.nvmet_exports().is_empty());
    assert!(matches!(
        engine.nvmet_port_down(4420),
        Err(NvmetError::Disabled)
    ));
    engine.nvmet_shutdown().unwrap();
}

#[test]
fn opening_without_nvmet_in_configfs_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Engine::open_with(
        config(dir.path()),
        Some((
            Box::new(layout::RealConfigFs),
            Box::new(FakeLoops::default()),
        )),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no nvmet in configfs"), "{err}");
}

#[test]
fn images_in_a_volume_subvolume_are_exported_once_the_disk_is() {
    // A volume in a subvolume of its own: to nvmet only the image's path
    // differs (the subvolume is a folder), so a plain folder stands in here;
    // the real btrfs is in tests/btrfs.rs.
    let rig = rig();
    fs::create_dir(rig.dir.path().join("root/raid10/volumes/pvc-1")).unwrap();
    // A restore adds its disk unexported, checks it, then exports it.
    rig.ok(
        "/disk add type=file file-path=/raid10/volumes/pvc-1/volume.img file-size=1G slot=pvc-1 \
         nvme-tcp-export=no nvme-tcp-server-port=4420 nvme-tcp-server-nqn=\"nqn.2000-02.com.mikrotik:pvc-1\"",
    );
    assert!(rig.engine.nvmet_exports().is_empty());
    assert!(rig.loops.attached().is_empty());
    rig.ok("/disk set pvc-1 nvme-tcp-export=yes");
    assert_eq!(
        rig.engine.nvmet_exports(),
        ["nqn.2000-02.com.mikrotik:pvc-1"]
    );
    let image =
        fs::canonicalize(rig.dir.path().join("root/raid10/volumes/pvc-1/volume.img")).unwrap();
    assert_eq!(
        rig.loops.attached().into_values().collect::<Vec<_>>(),
        [image]
    );
    rig.ok("/disk remove pvc-1");
    assert!(rig.engine.nvmet_exports().is_empty());
    assert!(rig.loops.attached().is_empty());
}

const HOST_A: &str = "nqn.2024-01.x:node:a";
const HOST_B: &str = "nqn.2024-01.x:node:b";

impl Rig {
    /// The hosts `nqn` lets in, from configfs: `None` for any host.
    fn allowed(&self, nqn: &str) -> Option<Vec<String>> {
        let sub = self.nvmet(&format!("subsystems/{nqn}"));
        if read(&sub.join("attr_allow_any_host")) == "1" {
            return None;
        }
        let hosts = layout::list_dir(&sub.join("allowed_hosts")).unwrap();
        for host in &hosts {
            assert_eq!(
                fs::read_link(sub.join("allowed_hosts").join(host)).unwrap(),
                self.nvmet(&format!("hosts/{host}"))
            );
        }
        Some(hosts)
    }
}

#[test]
fn the_allow_list_becomes_allowed_hosts() {
    assert_eq!(hosts::allowed_hosts(""), None);
    assert_eq!(hosts::allowed_hosts(" , "), None);
    assert_eq!(
        hosts::allowed_hosts("b, a,a"),
        Some(["a".to_string(), "b".to_string()].into())
    );

    let r = rig();
    r.add("pvc-1", NQN, 4420);
    assert_eq!(r.allowed(NQN), None, "empty: any host");

    r.ok(&format!(
        "/disk set pvc-1 nvme-tcp-server-allow-host-name=\"{HOST_A}\""
    ));
    assert_eq!(r.allowed(NQN), Some(vec![HOST_A.to_string()]));
    assert!(r.record().hosts.contains(HOST_A));

    r.ok(&format!(
        "/disk set pvc-1 nvme-tcp-server-allow-host-name=\"{HOST_A},{HOST_B}\""
    ));
    assert_eq!(
        r.allowed(NQN),
        Some(vec![HOST_A.to_string(), HOST_B.to_string()])
    );

    // A host no export lets in any more goes, with its record.
    r.ok(&format!(
        "/disk set pvc-1 nvme-tcp-server-allow-host-name=\"{HOST_B}\""
    ));
    assert_eq!(r.allowed(NQN), Some(vec![HOST_B.to_string()]));
    assert!(!r.nvmet(&format!("hosts/{HOST_A}")).exists());
    assert_eq!(r.record().hosts.iter().collect::<Vec<_>>(), [HOST_B]);

    // Back to any host.
    r.ok("/disk set pvc-1 nvme-tcp-server-allow-host-name=\"\"");
    assert_eq!(r.allowed(NQN), None);
    assert!(layout::list_dir(&r.nvmet("hosts")).unwrap().is_empty());
    assert!(r.record().hosts.is_empty());
}

#[test]
fn a_new_export_is_closed_before_it_is_served() {
    let r = rig();
    // The port link is the step that starts serving: when it is made, the
    // host must already be the only one let in.
    r.fs.fail_on(Some("ports/4420/subsystems"));
    let run = r.run(&format!(
        "/disk add type=file file-path=/raid10/volumes/pvc-1.img file-size=1G slot=pvc-1 \
         nvme-tcp-export=yes nvme-tcp-server-nqn=\"{NQN}\" \
         nvme-tcp-server-allow-host-name=\"{HOST_A}\""
    ));
    assert!(run.failed, "{}", run.output);
    // Everything made for it was taken back.
    assert!(layout::list_dir(&r.nvmet("subsystems")).unwrap().is_empty());
    assert!(layout::list_dir(&r.nvmet("hosts")).unwrap().is_empty());
    r.fs.fail_on(None);
    r.ok(&format!(
        "/disk add type=file file-path=/raid10/volumes/pvc-1.img file-size=1G slot=pvc-1 \
         nvme-tcp-export=yes nvme-tcp-server-nqn=\"{NQN}\" \
         nvme-tcp-server-allow-host-name=\"{HOST_A}\""
    ));
    assert_eq!(r.allowed(NQN), Some(vec![HOST_A.to_string()]));
    assert_eq!(
        read(&r.nvmet(&format!("subsystems/{NQN}/attr_allow_any_host"))),
        "0"
    );
    let links = r.fs.links.lock().unwrap().clone();
    let last_two: Vec<String> = links[links.len() - 2..]
        .iter()
        .map(|l| l.strip_prefix(r.nvmet("")).unwrap().display().to_string())
        .collect();
    assert_eq!(
        last_two,
        [
            format!("subsystems/{NQN}/allowed_hosts/{HOST_A}"),
            format!("ports/4420/subsystems/{NQN}")
        ],
        "the host is let in before the subsystem is served"
    );
}

#[test]
fn foreign_host_objects_are_used_and_left() {
    let r = rig();
    fs::create_dir(r.nvmet(&format!("hosts/{HOST_A}"))).unwrap();
    r.add("pvc-1", NQN, 4420);
    r.ok(&format!(
        "/disk set pvc-1 nvme-tcp-server-allow-host-name=\"{HOST_A}\""
    ));
    assert_eq!(r.allowed(NQN), Some(vec![HOST_A.to_string()]));
    assert!(r.record().hosts.is_empty(), "not made here");
    r.ok("/disk remove pvc-1");
    assert!(r.nvmet(&format!("hosts/{HOST_A}")).exists());
    // A host entry that cannot name a host object fails the command.
    r.add("pvc-2", NQN, 4420);
    let run = r.run("/disk set pvc-2 nvme-tcp-server-allow-host-name=\"a/b\"");
    assert!(
        run.output.contains("cannot name an nvmet host"),
        "{}",
        run.output
    );
    assert_eq!(r.allowed(NQN), None);
}

#[test]
fn switching_the_export_off_and_on_keeps_the_namespace() {
    let r = rig();
    r.add("pvc-1", NQN, 4420);
    r.ok(&format!(
        "/disk set pvc-1 nvme-tcp-server-allow-host-name=\"{HOST_A},{HOST_B}\""
    ));
    let uuid = read(&r.nvmet(&format!("subsystems/{NQN}/namespaces/1/device_uuid")));
    assert_eq!(uuid, layout::namespace_uuid(NQN));
    // The bounce an unpublish sends: B let out, the export off and on.
    r.ok(&format!(
        "/disk set pvc-1 nvme-tcp-server-allow-host-name=\"{HOST_A}\" nvme-tcp-export=no; \
         /disk set pvc-1 nvme-tcp-export=yes"
    ));
    assert_eq!(r.allowed(NQN), Some(vec![HOST_A.to_string()]));
    assert_eq!(
        read(&r.nvmet(&format!("subsystems/{NQN}/namespaces/1/device_uuid"))),
        uuid
    );
    assert!(!r.nvmet(&format!("hosts/{HOST_B}")).exists());
    assert_ne!(layout::namespace_uuid("nqn.x:other"), uuid);
}

#[test]
fn a_restarted_simulator_adopts_the_allowed_hosts() {
    let r = rig();
    r.add("pvc-1", NQN, 4420);
    r.ok(&format!(
        "/disk set pvc-1 nvme-tcp-server-allow-host-name=\"{HOST_A}\""
    ));
    let Rig {
        dir,
        fs: cfs,
        loops,
        engine,
    } = r;
    drop(engine);
    let engine = open(dir.path(), &cfs, &loops).unwrap();
    let r = Rig {
        dir,
        fs: cfs,
        loops,
        engine,
    };
    assert_eq!(r.allowed(NQN), Some(vec![HOST_A.to_string()]));
    r.ok("/disk set pvc-1 nvme-tcp-server-allow-host-name=\"\"");
    assert_eq!(r.allowed(NQN), None);
    assert!(
        !r.nvmet(&format!("hosts/{HOST_A}")).exists(),
        "still ours after the restart"
    );
    r.engine.nvmet_shutdown().unwrap();
    assert_eq!(r.record(), Record::default());
}

#[test]
fn a_fault_lets_any_host_in_whatever_the_list() {
    let r = rig();
    r.engine.faults().set_ignore_allow_list(true);
    r.add("pvc-1", NQN, 4420);
    r.ok(&format!(
        "/disk set pvc-1 nvme-tcp-server-allow-host-name=\"{HOST_A}\""
    ));
    assert_eq!(r.allowed(NQN), None);
    r.engine.faults().set_ignore_allow_list(false);
    r.ok(&format!(
        "/disk set pvc-1 nvme-tcp-server-allow-host-name=\"{HOST_B}\""
    ));
    assert_eq!(r.allowed(NQN), Some(vec![HOST_B.to_string()]));
}
