//! In-memory fakes of the node's seams, for tests that need no root, no
//! kernel NVMe/TCP and no loop device: [`FakeNvme`], [`FakeFilesystems`] and
//! [`FakeRecords`], three views of one [`FakeWorld`].
//!
//! The world plays the RDS (the exported images and what they hold), the
//! kernel (controllers, block devices, the mount table, directories and
//! files) and the state folder (the records), closely enough that the node's
//! rules can be checked against it: a connect of a live connection reports
//! `Already`, a disk keeps its contents across reconnects under a new name
//! and disk sequence number, a mount outlives the disk it is of, `mount`
//! refuses a device without that filesystem.
//!
//! The fakes can say no:
//! - [`FakeWorld::fail`]: the next calls of a step fail as that step really
//!   fails (a refused connect, a probe that cannot tell, a busy unmount, …);
//! - [`FakeWorld::delay`]: a step takes that long first (on tokio's clock, so
//!   tests run on a paused one);
//! - [`FakeWorld::set_device_appears`], [`FakeWorld::set_disconnect`]: a
//!   device that appears late or never, a disconnect the kernel never
//!   finishes, or one that reports success while a controller stays;
//! - [`FakeWorld::crash_after`]: the `k`-th change any fake makes completes,
//!   and then the operation hangs, so a test drops it there, as if the
//!   process died between two steps, and retries.
//!
//! Steps are named: `connect`, `disconnect`, `rescan`, `wait-device`,
//! `probe`, `mkfs`, `mount`, `bind`, `unmount`, `grow`, `mkdir`, `create`,
//! `remove`, `record-beside`, `record-index`, `unrecord-beside`,
//! `unrecord-index`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use node_fs::format::Prepared;
use node_fs::mountinfo::MountInfo;
use node_fs::probe::Probe;
use node_fs::stats::FsStats;
use node_fs::{FsError, FsType};
use nvme_host::{
    BlockDevice, Connected, ConnectionConfig, CtrlState, GaveUp, HostIdentity, NvmeError,
};
use telemetry::NodeMetrics;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::context::FsType as VolumeFs;
use crate::error::NodeError;
use crate::node::{Node, NodeConfig, NodeTimeouts};
use crate::record::{RecordError, RecordStore, StagingRecord};

/// This driver's NQN prefix, as the tests' nodes have it.
pub const PREFIX: &str = "nqn.2024-01.io.srvlab.csi.rds:";

/// The identity the tests' nodes connect as.
pub fn identity() -> HostIdentity {
    HostIdentity {
        nqn: "nqn.2014-08.org.nvmexpress:uuid:6a1b2c3d-0000-4000-8000-0123456789ab".into(),
        id: "6a1b2c3d-0000-4000-8000-0123456789ab".into(),
    }
}

/// A node's configuration for tests: the production timeouts (tests run on
/// tokio's paused clock), [`PREFIX`], ext4 by default.
pub fn config() -> NodeConfig {
    NodeConfig {
        node_id: "node-1".into(),
        max_volumes: 0,
        host_root: "/".into(),
        state_dir: "/var/lib/rds-csi".into(),
        etc_nvme: "/etc/nvme".into(),
        default_fs: VolumeFs::Ext4,
        timeouts: NodeTimeouts::default(),
        nqn_prefix: PREFIX.into(),
        health_interval: Duration::from_secs(10),
    }
}

/// A node over the fakes, as the tests drive it.
pub type FakeNode = Node<FakeNvme, FakeFilesystems, FakeRecords>;

/// How quickly a connected volume's block device appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceAppears {
    /// With the connect.
    AtOnce,
    /// This long after the connect.
    After(Duration),
    /// Never (the export has no namespace the kernel can use).
    Never,
}

/// What the kernel does with a disconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    /// Tears the controllers down at once.
    Prompt,
    /// Never finishes: the controllers stay `deleting` (I/O stuck to a dead
    /// target), and the wait ends at its deadline.
    Stuck,
    /// Reports success but leaves the controllers (a host that lies).
    Lies,
}

/// What an image on the fake RDS holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    /// Zeros, no signature.
    Empty,
    /// A filesystem, and the size it spans.
    Filesystem(FsType, u64),
    /// A filesystem this driver does not mount (`btrfs`, …).
    ForeignFilesystem(String),
    /// Something else (`PTTYPE=gpt`, data without a signature, …).
    Other(String),
}

#[derive(Debug, Clone)]
struct Image {
    size: u64,
    contents: Contents,
    reachable: bool,
}

#[derive(Debug, Clone)]
struct Controller {
    instance: u32,
    nqn: String,
    hostnqn: String,
    state: CtrlState,
}

#[derive(Debug, Clone)]
struct Disk {
    name: String,
    nqn: String,
    /// The size the kernel knows (until a rescan).
    size: u64,
    diskseq: u64,
    /// When it shows in sysfs; `None`: never.
    visible_at: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Mount {
    mount_id: u32,
    target: PathBuf,
    source: String,
    fs_type: String,
    root: PathBuf,
    dev: (u32, u32),
    read_only: bool,
    /// The image a filesystem mount is of (for statistics).
    image: Option<String>,
}

#[derive(Default)]
struct World {
    images: BTreeMap<String, Image>,
    controllers: Vec<Controller>,
    disks: Vec<Disk>,
    next_diskseq: u64,
    next_mount_id: u32,
    appears: Option<DeviceAppears>,
    disconnect: Option<Disconnect>,
    faults: HashMap<&'static str, usize>,
    delays: HashMap<&'static str, Duration>,
    connects: Vec<Connected>,
    formatted: Vec<(String, FsType)>,
    grown: usize,
    mounts: Vec<Mount>,
    dirs: BTreeSet<PathBuf>,
    files: BTreeSet<PathBuf>,
    busy: BTreeSet<PathBuf>,
    beside: BTreeMap<PathBuf, StagingRecord>,
    index: BTreeMap<String, StagingRecord>,
}

impl World {
    /// Takes one planned failure of `step`, if any is left.
    fn take_fault(&mut self, step: &'static str) -> bool {
        match self.faults.get_mut(step) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    fn disk_by_path(&self, device: &Path, now: Instant) -> Option<&Disk> {
        let name = device.strip_prefix("/dev").ok()?.to_str()?;
        self.disks
            .iter()
            .find(|d| d.name == name && d.visible_at.is_some_and(|t| t <= now))
    }

    fn is_dir(&self, path: &Path) -> bool {
        path == Path::new("/") || self.dirs.contains(path)
    }

    fn exists(&self, path: &Path, now: Instant) -> bool {
        self.is_dir(path) || self.files.contains(path) || self.disk_by_path(path, now).is_some()
    }

    fn top_mount(&self, target: &Path) -> Option<&Mount> {
        self.mounts.iter().rev().find(|m| m.target == target)
    }

    fn best_state(&self, nqn: &str) -> Option<CtrlState> {
        self.controllers
            .iter()
            .filter(|c| c.nqn == nqn)
            .map(|c| c.state.clone())
            .max_by_key(CtrlState::rank)
    }
}

/// When [`FakeWorld::crash_after`] stops an operation.
#[derive(Default)]
struct Crash {
    steps: usize,
    at: Option<usize>,
    trace: Vec<&'static str>,
}

struct Shared {
    world: Mutex<World>,
    crash: Mutex<Crash>,
    crashed: watch::Sender<bool>,
}

/// One fake RDS, kernel and state folder; its views are the fakes.
#[derive(Clone)]
pub struct FakeWorld {
    shared: Arc<Shared>,
}

impl Default for FakeWorld {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeWorld {
    /// An empty world: no images, nothing connected or mounted, `/` the only
    /// directory; devices appear at once and disconnects are prompt.
    pub fn new() -> Self {
        let (crashed, _) = watch::channel(false);
        Self {
            shared: Arc::new(Shared {
                world: Mutex::new(World::default()),
                crash: Mutex::new(Crash::default()),
                crashed,
            }),
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.shared.world)
    }

    /// A node of `config` over this world's views, connecting as
    /// [`identity`], recording into `metrics`.
    pub fn node(&self, config: NodeConfig, metrics: NodeMetrics) -> Result<FakeNode, NodeError> {
        Node::new(
            config,
            self.nvme(),
            self.filesystems(),
            self.records(),
            identity(),
            metrics,
        )
    }

    /// The NVMe host view.
    pub fn nvme(&self) -> FakeNvme {
        FakeNvme(self.clone())
    }

    /// The filesystems view.
    pub fn filesystems(&self) -> FakeFilesystems {
        FakeFilesystems(self.clone())
    }

    /// The staging records view.
    pub fn records(&self) -> FakeRecords {
        FakeRecords(self.clone())
    }

    /// The RDS exports an empty image of `size` bytes as `nqn`.
    pub fn export(&self, nqn: &str, size: u64) {
        self.world().images.insert(
            nqn.to_owned(),
            Image {
                size,
                contents: Contents::Empty,
                reachable: true,
            },
        );
    }

    /// What the image of `nqn` holds; `None` if there is no such export.
    pub fn contents(&self, nqn: &str) -> Option<Contents> {
        self.world().images.get(nqn).map(|i| i.contents.clone())
    }

    /// Makes the image of `nqn` hold `contents`.
    pub fn set_contents(&self, nqn: &str, contents: Contents) {
        if let Some(image) = self.world().images.get_mut(nqn) {
            image.contents = contents;
        }
    }

    /// Grows the image of `nqn` on the RDS (the kernel sees it after a rescan).
    pub fn grow_image(&self, nqn: &str, size: u64) {
        if let Some(image) = self.world().images.get_mut(nqn) {
            image.size = size;
        }
    }

    /// Whether the export of `nqn` answers connects.
    pub fn set_reachable(&self, nqn: &str, reachable: bool) {
        if let Some(image) = self.world().images.get_mut(nqn) {
            image.reachable = reachable;
        }
    }

    /// How quickly block devices appear after a connect.
    pub fn set_device_appears(&self, appears: DeviceAppears) {
        self.world().appears = Some(appears);
    }

    /// What the kernel does with disconnects.
    pub fn set_disconnect(&self, disconnect: Disconnect) {
        self.world().disconnect = Some(disconnect);
    }

    /// The next `times` calls of `step` fail (`usize::MAX`: all of them).
    pub fn fail(&self, step: &'static str, times: usize) {
        self.world().faults.insert(step, times);
    }

    /// Every call of `step` first waits `delay` on tokio's clock.
    pub fn delay(&self, step: &'static str, delay: Duration) {
        self.world().delays.insert(step, delay);
    }

    /// The kernel gives up on every controller of `nqn` (ctrl_loss_tmo): the
    /// controllers and their block devices go, mounts of them stay.
    pub fn lose_connection(&self, nqn: &str) {
        let mut w = self.world();
        w.controllers.retain(|c| c.nqn != nqn);
        w.disks.retain(|d| d.nqn != nqn);
    }

    /// Sets the state of every controller of `nqn`.
    pub fn set_state(&self, nqn: &str, state: CtrlState) {
        for c in self.world().controllers.iter_mut().filter(|c| c.nqn == nqn) {
            c.state = state.clone();
        }
    }

    /// Connects `nqn` as a connect by someone else would (for tests that
    /// start from a connection left behind).
    pub fn connect_directly(&self, nqn: &str, hostnqn: &str) {
        let now = Instant::now();
        let mut w = self.world();
        add_controller(&mut w, nqn, hostnqn, Some(now));
    }

    /// Makes `path` a directory (with its parents).
    pub fn make_dir(&self, path: &Path) {
        let mut w = self.world();
        add_dirs(&mut w, path);
    }

    /// Mounts something foreign at `target` (a directory made if needed).
    pub fn mount_foreign(&self, source: &str, target: &Path) {
        let mut w = self.world();
        add_dirs(&mut w, target);
        let mount_id = next_mount_id(&mut w);
        w.mounts.push(Mount {
            mount_id,
            target: target.to_path_buf(),
            source: source.to_owned(),
            fs_type: "ext4".into(),
            root: "/".into(),
            dev: (8, 1),
            read_only: false,
            image: None,
        });
    }

    /// Makes every mount at `target` read-only or read-write (what the
    /// kernel does to a filesystem after I/O errors).
    pub fn set_mount_read_only(&self, target: &Path, read_only: bool) {
        for m in self
            .world()
            .mounts
            .iter_mut()
            .filter(|m| m.target == target)
        {
            m.read_only = read_only;
        }
    }

    /// Unmounts at `target` behind the node's back.
    pub fn unmount_directly(&self, target: &Path) {
        self.world().mounts.retain(|m| m.target != target);
    }

    /// Unmounts at `target` fail with EBUSY until told otherwise.
    pub fn set_busy(&self, target: &Path, busy: bool) {
        let mut w = self.world();
        if busy {
            w.busy.insert(target.to_path_buf());
        } else {
            w.busy.remove(target);
        }
    }

    /// How many controllers of `nqn` the kernel holds.
    pub fn controllers(&self, nqn: &str) -> usize {
        self.world()
            .controllers
            .iter()
            .filter(|c| c.nqn == nqn)
            .count()
    }

    /// Every controller's NQN, once per controller.
    pub fn connected(&self) -> Vec<String> {
        self.world()
            .controllers
            .iter()
            .map(|c| c.nqn.clone())
            .collect()
    }

    /// The outcomes of the successful connects so far.
    pub fn connects(&self) -> Vec<Connected> {
        self.world().connects.clone()
    }

    /// The filesystems made so far: (device, type).
    pub fn formatted(&self) -> Vec<(String, FsType)> {
        self.world().formatted.clone()
    }

    /// How many times a filesystem was grown.
    pub fn grown(&self) -> usize {
        self.world().grown
    }

    /// The sources of the mounts at `target`, bottom first.
    pub fn mounts_at(&self, target: &Path) -> Vec<String> {
        self.world()
            .mounts
            .iter()
            .filter(|m| m.target == target)
            .map(|m| m.source.clone())
            .collect()
    }

    /// Every mount point, once per mount.
    pub fn mount_points(&self) -> Vec<PathBuf> {
        self.world()
            .mounts
            .iter()
            .map(|m| m.target.clone())
            .collect()
    }

    /// Whether a directory or file exists at `path`.
    pub fn path_exists(&self, path: &Path) -> bool {
        self.world().exists(path, Instant::now())
    }

    /// Every record, from the index and from beside the staging paths.
    pub fn saved_records(&self) -> Vec<StagingRecord> {
        let w = self.world();
        w.index.values().chain(w.beside.values()).cloned().collect()
    }

    /// The change after which operations hang (`k` from 1), from now on.
    pub fn crash_after(&self, k: usize) {
        let mut crash = lock(&self.shared.crash);
        crash.steps = 0;
        crash.at = Some(k);
        crash.trace.clear();
        self.shared.crashed.send_replace(false);
    }

    /// No more crashes.
    pub fn no_crash(&self) {
        lock(&self.shared.crash).at = None;
        self.shared.crashed.send_replace(false);
    }

    /// Completes once an operation hung at the crash point.
    pub fn crashed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shared.crashed.subscribe();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    }

    /// The changes made since [`FakeWorld::crash_after`], by step name.
    pub fn trace(&self) -> Vec<&'static str> {
        lock(&self.shared.crash).trace.clone()
    }

    /// Waits `step`'s delay, then takes one of its planned failures.
    async fn before(&self, step: &'static str) -> bool {
        let delay = self.world().delays.get(step).copied();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        self.world().take_fault(step)
    }

    /// Counts a change; at the crash point, never returns.
    async fn changed(&self, step: &'static str) {
        let hang = {
            let mut crash = lock(&self.shared.crash);
            crash.steps += 1;
            crash.trace.push(step);
            crash.at == Some(crash.steps)
        };
        if hang {
            self.shared.crashed.send_replace(true);
            std::future::pending::<()>().await;
        }
    }
}

fn add_dirs(w: &mut World, path: &Path) {
    for dir in path.ancestors() {
        if dir != Path::new("/") && !dir.as_os_str().is_empty() {
            w.dirs.insert(dir.to_path_buf());
        }
    }
}

fn next_mount_id(w: &mut World) -> u32 {
    w.next_mount_id += 1;
    w.next_mount_id + 100
}

/// Adds a live controller of `nqn` and, unless it never shows, its disk;
/// names are the lowest free numbers, as the kernel's are.
fn add_controller(w: &mut World, nqn: &str, hostnqn: &str, visible_at: Option<Instant>) -> u32 {
    let instance = (0..)
        .find(|i| !w.controllers.iter().any(|c| c.instance == *i))
        .unwrap_or(0);
    w.controllers.push(Controller {
        instance,
        nqn: nqn.to_owned(),
        hostnqn: hostnqn.to_owned(),
        state: CtrlState::Live,
    });
    if let Some(size) = w.images.get(nqn).map(|i| i.size) {
        w.next_diskseq += 1;
        let diskseq = w.next_diskseq;
        w.disks.push(Disk {
            name: format!("nvme{instance}n1"),
            nqn: nqn.to_owned(),
            size,
            diskseq,
            visible_at,
        });
    }
    instance
}

fn refused(config: &ConnectionConfig, why: GaveUp, errno: i32) -> NvmeError {
    NvmeError::ConnectGaveUp {
        target: format!("{} at {}:{}", config.nqn, config.traddr, config.trsvcid),
        attempts: 1,
        why,
        last_errno: Some(errno),
        last: None,
    }
}

fn os(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

const EIO: i32 = 5;
const ENOENT: i32 = 2;
const EBUSY: i32 = 16;
const EINVAL: i32 = 22;
const ECONNREFUSED: i32 = 111;

/// The fake NVMe/TCP host: a view of a [`FakeWorld`].
#[derive(Clone)]
pub struct FakeNvme(FakeWorld);

impl crate::nvme::NvmeHost for FakeNvme {
    async fn connect(
        &self,
        config: &ConnectionConfig,
        deadline: Instant,
        _on_retry: &(dyn Fn(&NvmeError) + Sync),
    ) -> Result<Connected, NvmeError> {
        if self.0.before("connect").await {
            return Err(refused(config, GaveUp::Permanent, EIO));
        }
        let reachable = self
            .0
            .world()
            .images
            .get(&config.nqn)
            .is_some_and(|i| i.reachable);
        if !reachable {
            // The kernel's connect is refused until the deadline.
            tokio::time::sleep_until(deadline).await;
            return Err(refused(config, GaveUp::Deadline, ECONNREFUSED));
        }
        let connected = {
            let now = Instant::now();
            let mut w = self.0.world();
            let exists = w.controllers.iter().any(|c| {
                c.nqn == config.nqn && c.hostnqn == config.host.nqn && !c.state.is_deleting()
            });
            let connected = if exists {
                Connected::Already
            } else {
                let visible_at = match w.appears.unwrap_or(DeviceAppears::AtOnce) {
                    DeviceAppears::AtOnce => Some(now),
                    DeviceAppears::After(d) => Some(now + d),
                    DeviceAppears::Never => None,
                };
                let instance = add_controller(&mut w, &config.nqn, &config.host.nqn, visible_at);
                Connected::New {
                    instance,
                    cntlid: instance + 1,
                }
            };
            w.connects.push(connected);
            connected
        };
        if matches!(connected, Connected::New { .. }) {
            self.0.changed("connect").await;
        }
        Ok(connected)
    }

    async fn wait_for_block_device(
        &self,
        nqn: &str,
        deadline: Instant,
    ) -> Result<BlockDevice, NvmeError> {
        if self.0.before("wait-device").await {
            return Err(NvmeError::NoBlockDevice {
                nqn: nqn.to_owned(),
                seen: "the fake was told to fail".into(),
            });
        }
        loop {
            if let Some(device) = self.block_device(nqn)? {
                return Ok(device);
            }
            if Instant::now() >= deadline {
                let seen = match self.0.world().best_state(nqn) {
                    Some(state) => format!("the controller is {state} and has no namespace"),
                    None => "no controller is connected".into(),
                };
                return Err(NvmeError::NoBlockDevice {
                    nqn: nqn.to_owned(),
                    seen,
                });
            }
            tokio::time::sleep_until(deadline.min(Instant::now() + Duration::from_millis(10)))
                .await;
        }
    }

    async fn disconnect(&self, nqn: &str, deadline: Instant) -> Result<(), NvmeError> {
        if self.0.before("disconnect").await {
            return Err(NvmeError::SysfsWrite {
                path: PathBuf::from("/sys/class/nvme/nvme0/delete_controller"),
                source: os(EIO),
            });
        }
        let (mode, any) = {
            let w = self.0.world();
            (
                w.disconnect.unwrap_or(Disconnect::Prompt),
                w.controllers.iter().any(|c| c.nqn == nqn),
            )
        };
        if !any {
            return Ok(());
        }
        match mode {
            Disconnect::Prompt => {
                {
                    let mut w = self.0.world();
                    w.controllers.retain(|c| c.nqn != nqn);
                    w.disks.retain(|d| d.nqn != nqn);
                }
                self.0.changed("disconnect").await;
                Ok(())
            }
            Disconnect::Lies => Ok(()),
            Disconnect::Stuck => {
                self.0.set_state(nqn, CtrlState::Deleting);
                self.0.changed("disconnect").await;
                tokio::time::sleep_until(deadline).await;
                let remaining = self
                    .0
                    .world()
                    .controllers
                    .iter()
                    .filter(|c| c.nqn == nqn)
                    .map(|c| format!("nvme{} ({})", c.instance, c.state))
                    .collect::<Vec<_>>()
                    .join(", ");
                Err(NvmeError::DisconnectTimedOut {
                    nqn: nqn.to_owned(),
                    remaining,
                    last_write_error: None,
                })
            }
        }
    }

    async fn rescan(&self, nqn: &str) -> Result<(), NvmeError> {
        let failed = self.0.before("rescan").await;
        {
            let mut w = self.0.world();
            let state = w.best_state(nqn);
            if failed || state != Some(CtrlState::Live) {
                return Err(NvmeError::NotLive {
                    nqn: nqn.to_owned(),
                    state,
                });
            }
            let size = w.images.get(nqn).map_or(0, |i| i.size);
            for d in w.disks.iter_mut().filter(|d| d.nqn == nqn) {
                d.size = size;
            }
        }
        self.0.changed("rescan").await;
        Ok(())
    }

    fn block_device(&self, nqn: &str) -> Result<Option<BlockDevice>, NvmeError> {
        let now = Instant::now();
        Ok(self
            .0
            .world()
            .disks
            .iter()
            .filter(|d| d.nqn == nqn && d.visible_at.is_some_and(|t| t <= now))
            .min_by(|a, b| a.name.cmp(&b.name))
            .map(|d| BlockDevice {
                name: d.name.clone(),
                path: Path::new("/dev").join(&d.name),
                size_bytes: d.size,
                diskseq: Some(d.diskseq),
            }))
    }

    fn controller_state(&self, nqn: &str) -> Result<Option<CtrlState>, NvmeError> {
        Ok(self.0.world().best_state(nqn))
    }

    fn connected_subsystems(&self) -> Result<Vec<String>, NvmeError> {
        let mut nqns = self.0.connected();
        nqns.sort();
        nqns.dedup();
        Ok(nqns)
    }
}

/// The fake filesystems, mount table and paths: a view of a [`FakeWorld`].
#[derive(Clone)]
pub struct FakeFilesystems(FakeWorld);

#[allow(clippy::result_large_err)]
impl FakeFilesystems {
    /// The image behind `device`, if it is a device that exists now.
    fn image_of(&self, device: &Path) -> Result<(String, Image), FsError> {
        let w = self.0.world();
        let disk = w
            .disk_by_path(device, Instant::now())
            .ok_or_else(|| FsError::Io {
                op: "opening",
                path: device.to_path_buf(),
                source: os(ENOENT),
            })?;
        let image = w.images.get(&disk.nqn).cloned().ok_or(FsError::Io {
            op: "reading",
            path: device.to_path_buf(),
            source: os(EIO),
        })?;
        Ok((disk.nqn.clone(), image))
    }
}

fn probe_of(contents: &Contents) -> Probe {
    match contents {
        Contents::Empty => Probe::Empty,
        Contents::Filesystem(fs, _) => Probe::Filesystem(fs.as_str().to_owned()),
        Contents::ForeignFilesystem(name) => Probe::Filesystem(name.clone()),
        Contents::Other(what) => Probe::Other(what.clone()),
    }
}

#[allow(clippy::result_large_err)]
impl crate::fs::Filesystems for FakeFilesystems {
    fn mounts(&self) -> Result<Vec<MountInfo>, FsError> {
        let w = self.0.world();
        Ok(w.mounts
            .iter()
            .map(|m| MountInfo {
                mount_id: m.mount_id,
                parent_id: 1,
                major: m.dev.0,
                minor: m.dev.1,
                root: m.root.clone(),
                mount_point: m.target.clone(),
                options: vec![if m.read_only { "ro" } else { "rw" }.to_owned()],
                fs_type: m.fs_type.clone(),
                source: m.source.clone(),
                super_options: vec!["rw".to_owned()],
            })
            .collect())
    }

    async fn probe(&self, device: &Path, _timeout: Duration) -> Result<Probe, FsError> {
        if self.0.before("probe").await {
            return Err(FsError::Probe {
                device: device.to_path_buf(),
                reason: "blkid exited with status 8 (the fake was told to fail)".into(),
            });
        }
        let (_, image) = self.image_of(device)?;
        Ok(probe_of(&image.contents))
    }

    async fn make_filesystem(
        &self,
        device: &Path,
        fs: FsType,
        _timeout: Duration,
    ) -> Result<Prepared, FsError> {
        if self.0.before("mkfs").await {
            return Err(FsError::Io {
                op: "writing",
                path: device.to_path_buf(),
                source: os(EIO),
            });
        }
        let (nqn, image) = self.image_of(device)?;
        if image.contents != Contents::Empty {
            return Ok(Prepared::Existing(probe_of(&image.contents)));
        }
        {
            let mut w = self.0.world();
            if let Some(i) = w.images.get_mut(&nqn) {
                i.contents = Contents::Filesystem(fs, image.size);
            }
            w.formatted.push((device.display().to_string(), fs));
        }
        self.0.changed("mkfs").await;
        Ok(Prepared::Formatted)
    }

    async fn mount(
        &self,
        device: &Path,
        target: &Path,
        fs: FsType,
        _options: &[String],
        read_only: bool,
    ) -> Result<(), FsError> {
        let failed = self.0.before("mount").await;
        let error = |errno| FsError::Mount {
            device: device.to_path_buf(),
            target: target.to_path_buf(),
            fs_type: fs,
            flags: String::new(),
            data: String::new(),
            source: os(errno),
            hint: "",
        };
        if failed {
            return Err(error(EIO));
        }
        if !self.0.world().is_dir(target) {
            return Err(error(ENOENT));
        }
        let (nqn, image) = self.image_of(device).map_err(|_| error(ENOENT))?;
        if !matches!(image.contents, Contents::Filesystem(found, _) if found == fs) {
            return Err(error(EINVAL));
        }
        {
            let mut w = self.0.world();
            let diskseq = w
                .disk_by_path(device, Instant::now())
                .map_or(0, |d| d.diskseq);
            let mount_id = next_mount_id(&mut w);
            w.mounts.push(Mount {
                mount_id,
                target: target.to_path_buf(),
                source: device.display().to_string(),
                fs_type: fs.as_str().to_owned(),
                root: "/".into(),
                dev: (259, u32::try_from(diskseq).unwrap_or(u32::MAX)),
                read_only,
                image: Some(nqn),
            });
        }
        self.0.changed("mount").await;
        Ok(())
    }

    async fn bind(&self, source: &Path, target: &Path, read_only: bool) -> Result<(), FsError> {
        let failed = self.0.before("bind").await;
        let error = |errno| FsError::Bind {
            from: source.to_path_buf(),
            target: target.to_path_buf(),
            source: os(errno),
            hint: "",
        };
        if failed {
            return Err(error(EIO));
        }
        {
            let now = Instant::now();
            let mut w = self.0.world();
            if !w.exists(target, now) {
                return Err(error(ENOENT));
            }
            let mount = if let Some(from) = w.top_mount(source).cloned() {
                Mount {
                    target: target.to_path_buf(),
                    read_only,
                    ..from
                }
            } else if let Some(disk) = w.disk_by_path(source, now) {
                Mount {
                    mount_id: 0,
                    target: target.to_path_buf(),
                    source: "udev".into(),
                    fs_type: "devtmpfs".into(),
                    root: Path::new("/").join(&disk.name),
                    dev: (0, 5),
                    read_only,
                    image: None,
                }
            } else {
                return Err(error(ENOENT));
            };
            let mount_id = next_mount_id(&mut w);
            w.mounts.push(Mount { mount_id, ..mount });
        }
        self.0.changed("bind").await;
        Ok(())
    }

    async fn unmount(&self, target: &Path) -> Result<bool, FsError> {
        let failed = self.0.before("unmount").await;
        let error = |errno| FsError::Unmount {
            target: target.to_path_buf(),
            source: os(errno),
            hint: "",
        };
        {
            let mut w = self.0.world();
            if failed || w.busy.contains(target) {
                return Err(error(EBUSY));
            }
            let Some(at) = w.mounts.iter().rposition(|m| m.target == target) else {
                return Ok(false);
            };
            w.mounts.remove(at);
        }
        self.0.changed("unmount").await;
        Ok(true)
    }

    async fn grow(
        &self,
        fs: FsType,
        device: &Path,
        mount_point: &Path,
        _timeout: Duration,
    ) -> Result<(), FsError> {
        if self.0.before("grow").await {
            return Err(FsError::Io {
                op: "growing",
                path: mount_point.to_path_buf(),
                source: os(EIO),
            });
        }
        let (nqn, _) = self.image_of(device)?;
        {
            let mut w = self.0.world();
            let size = w.disk_by_path(device, Instant::now()).map_or(0, |d| d.size);
            if let Some(image) = w.images.get_mut(&nqn)
                && matches!(image.contents, Contents::Filesystem(found, _) if found == fs)
            {
                image.contents = Contents::Filesystem(fs, size);
            }
            w.grown += 1;
        }
        self.0.changed("grow").await;
        Ok(())
    }

    fn fs_stats(&self, path: &Path) -> Result<FsStats, FsError> {
        let w = self.0.world();
        let size = w
            .top_mount(path)
            .and_then(|m| m.image.as_ref())
            .and_then(|nqn| w.images.get(nqn))
            .and_then(|i| match i.contents {
                Contents::Filesystem(_, size) => Some(size),
                _ => None,
            })
            .ok_or_else(|| FsError::Io {
                op: "statvfs",
                path: path.to_path_buf(),
                source: os(ENOENT),
            })?;
        Ok(FsStats {
            total_bytes: size,
            available_bytes: size / 2,
            used_bytes: size / 2,
            total_inodes: 1000,
            free_inodes: 900,
            used_inodes: 100,
        })
    }

    fn block_size(&self, device: &Path) -> Result<u64, FsError> {
        self.0
            .world()
            .disk_by_path(device, Instant::now())
            .map(|d| d.size)
            .ok_or_else(|| FsError::NotBlockDevice {
                path: device.to_path_buf(),
            })
    }

    fn block_device_exists(&self, device: &Path) -> bool {
        self.0
            .world()
            .disk_by_path(device, Instant::now())
            .is_some()
    }

    fn disk_sequence(&self, device: &Path) -> Option<u64> {
        self.0
            .world()
            .disk_by_path(device, Instant::now())
            .map(|d| d.diskseq)
    }

    fn exists(&self, path: &Path) -> bool {
        self.0.world().exists(path, Instant::now())
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        if self.0.before("mkdir").await {
            return Err(os(EIO));
        }
        let created = {
            let mut w = self.0.world();
            if w.files.contains(path) {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            let created = !w.is_dir(path);
            add_dirs(&mut w, path);
            created
        };
        if created {
            self.0.changed("mkdir").await;
        }
        Ok(())
    }

    async fn create_file(&self, path: &Path) -> io::Result<()> {
        if self.0.before("create").await {
            return Err(os(EIO));
        }
        {
            let mut w = self.0.world();
            if w.exists(path, Instant::now()) {
                return Ok(());
            }
            if !path.parent().is_some_and(|p| w.is_dir(p)) {
                return Err(os(ENOENT));
            }
            w.files.insert(path.to_path_buf());
        }
        self.0.changed("create").await;
        Ok(())
    }

    async fn remove(&self, path: &Path) -> io::Result<()> {
        if self.0.before("remove").await {
            return Err(os(EIO));
        }
        {
            let mut w = self.0.world();
            if w.mounts.iter().any(|m| m.target == path) {
                return Err(os(EBUSY));
            }
            if w.files.remove(path) {
            } else if w.dirs.contains(path) {
                let inside = |p: &PathBuf| p != path && p.starts_with(path);
                if w.dirs.iter().any(inside) || w.files.iter().any(inside) {
                    return Err(io::Error::from(io::ErrorKind::DirectoryNotEmpty));
                }
                w.dirs.remove(path);
            } else {
                return Ok(());
            }
        }
        self.0.changed("remove").await;
        Ok(())
    }
}

/// The fake state folder: a view of a [`FakeWorld`]. Like the real one, a
/// record is written beside the staging path first and into the index
/// second, and removed in the same order; a crash between the two leaves
/// one of them.
#[derive(Clone)]
pub struct FakeRecords(FakeWorld);

fn record_error(path: &Path) -> RecordError {
    RecordError {
        path: path.to_path_buf(),
        reason: "No space left on device (the fake was told to fail)".into(),
    }
}

impl RecordStore for FakeRecords {
    fn load(
        &self,
        volume_id: &str,
        staging_path: &Path,
    ) -> Result<Option<StagingRecord>, RecordError> {
        let w = self.0.world();
        if let Some(r) = w.beside.get(staging_path) {
            return Ok(Some(r.clone()));
        }
        Ok(w.index
            .get(volume_id)
            .filter(|r| r.staging_path == staging_path)
            .cloned())
    }

    fn load_indexed(&self, volume_id: &str) -> Result<Option<StagingRecord>, RecordError> {
        Ok(self.0.world().index.get(volume_id).cloned())
    }

    fn all(&self) -> Vec<Result<StagingRecord, RecordError>> {
        self.0.world().index.values().cloned().map(Ok).collect()
    }

    async fn save(&self, record: &StagingRecord) -> Result<(), RecordError> {
        if self.0.before("record").await {
            return Err(record_error(&record.staging_path));
        }
        self.0
            .world()
            .beside
            .insert(record.staging_path.clone(), record.clone());
        self.0.changed("record-beside").await;
        self.0
            .world()
            .index
            .insert(record.volume_id.clone(), record.clone());
        self.0.changed("record-index").await;
        Ok(())
    }

    async fn remove(&self, volume_id: &str, staging_path: &Path) -> Result<(), RecordError> {
        if self.0.before("unrecord").await {
            return Err(record_error(staging_path));
        }
        let removed = self.0.world().beside.remove(staging_path).is_some();
        if removed {
            self.0.changed("unrecord-beside").await;
        }
        let removed = self.0.world().index.remove(volume_id).is_some();
        if removed {
            self.0.changed("unrecord-index").await;
        }
        Ok(())
    }
}
