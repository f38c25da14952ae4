//! In-memory fakes of the node's seams, for tests that need no root, no
//! kernel NVMe/TCP, no device-mapper and no loop device: [`FakeNvme`],
//! [`FakeFilesystems`], [`FakeRecords`] and [`FakeCrypt`], four views of one
//! [`FakeWorld`].
//!
//! The world plays the RDS (the exported images and what they hold), the
//! kernel (controllers, block devices, the mount table, directories and
//! files) and the state folder (the records), closely enough that the node's
//! rules can be checked against it: a connect of a live connection reports
//! `Already`, a disk keeps its contents across reconnects under a new name
//! and disk sequence number, a mount outlives the disk it is of, `mount`
//! refuses a device without that filesystem. An encrypted image holds a
//! LUKS header (its key slots and label) and the plaintext its mapping shows
//! (noise until a filesystem is made on it); a mapping (`/dev/dm-N`)
//! outlives its disk, dead, and cannot be closed while mounted, bound or
//! held ([`FakeWorld::hold_mapping`]).
//!
//! The fakes can say no:
//! - [`FakeWorld::fail`]: the next calls of a step fail as that step really
//!   fails (a refused connect, a probe that cannot tell, a busy unmount, …);
//! - [`FakeWorld::delay`]: a step takes that long first (on tokio's clock, so
//!   tests run on a paused one);
//! - [`FakeWorld::set_allowed`], [`FakeWorld::bounce`]: an export that lets
//!   in only some hosts, as the RDS fences them, and cuts off the others;
//! - [`FakeWorld::set_device_appears`], [`FakeWorld::set_disconnect`]: a
//!   device that appears late or never, a disconnect the kernel never
//!   finishes, or one that reports success while a controller stays;
//! - [`FakeWorld::crash_after`]: the `k`-th change any fake makes completes,
//!   and then the operation hangs, so a test drops it there, as if the
//!   process died between two steps, and retries.
//!
//! The steps a test can fail or delay are `connect`, `disconnect`, `rescan`,
//! `wait-device`, `refused` (reading the kernel log; fail only), `probe`,
//! `mkfs`, `mount`, `bind`, `unmount`, `grow`, `mkdir`, `create`, `remove`,
//! `record` (saving), `unrecord` (removing), and `luks-format`, `luks-open`,
//! `luks-close`, `luks-resize`, `luks-add-key`, `luks-label`.
//! The changes counted for crashes are the same, with a record's two files
//! counted apart (`record-beside`, `record-index`, `unrecord-beside`,
//! `unrecord-index`); reads (probe, waits) change nothing and are not counted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use node_fs::format::Prepared;
use node_fs::mountinfo::MountInfo;
use node_fs::probe::Probe;
use node_fs::secret::Passphrase;
use node_fs::stats::FsStats;
use node_fs::{FsError, FsType};
use nvme_host::{
    BlockDevice, Connected, ConnectionConfig, CtrlState, GaveUp, HostIdentity, NvmeError,
};
use telemetry::NodeMetrics;
use tokio::sync::watch;
use tokio::time::Instant;

mod crypt;
mod fs;
mod nvme;
mod records;

pub use crypt::FakeCrypt;
pub use fs::FakeFilesystems;
pub use nvme::FakeNvme;
pub use records::FakeRecords;

use crate::context::FsType as VolumeFs;
use crate::error::NodeError;
use crate::node::{Node, NodeConfig, NodeTimeouts};
use crate::record::{RecordError, RecordStore, StagingRecord};

/// This driver's NQN prefix, as the tests' nodes have it.
pub const PREFIX: &str = "nqn.2024-01.io.srvlab.csi.rds:";

/// The host's own identity, as the tests' nodes have it.
pub fn identity() -> HostIdentity {
    HostIdentity {
        nqn: "nqn.2014-08.org.nvmexpress:uuid:6a1b2c3d-0000-4000-8000-0123456789ab".into(),
        id: "6a1b2c3d-0000-4000-8000-0123456789ab".into(),
    }
}

/// The identity the tests' nodes (node `node-1`) attach published volumes
/// as, and report as their node ID.
pub fn attach_identity() -> HostIdentity {
    nvme_host::fence::identity_of_node_name(PREFIX, "node-1")
        .unwrap_or_else(|e| unreachable!("node-1 makes a host NQN: {e}"))
}

/// The publish context a controller with attachment hands over for a
/// volume published to the tests' node.
pub fn published_here() -> HashMap<String, String> {
    nvme_host::fence::to_publish_context(&attach_identity())
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
pub type FakeNode = Node<FakeNvme, FakeFilesystems, FakeRecords, FakeCrypt>;

/// What a LUKS2 header takes of an encrypted image (`cryptsetup`'s default
/// data offset): its mapping is this much smaller than its disk.
pub const LUKS_HEADER: u64 = 16 << 20;

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
    /// Data without a signature: what the mapping of a freshly formatted
    /// LUKS volume reads as (the decryption of zeros).
    Noise,
    /// A LUKS2 header, and what its mapping shows.
    Luks {
        /// The keys its slots take.
        keys: Vec<Passphrase>,
        /// Its label.
        label: String,
        /// The plaintext.
        plain: Box<Contents>,
    },
}

impl Contents {
    /// What a mapping of this shows: the plaintext of an encrypted image.
    fn plaintext(&self) -> Option<&Contents> {
        match self {
            Self::Luks { plain, .. } => Some(plain),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Image {
    size: u64,
    contents: Contents,
    reachable: bool,
    /// The host NQNs the export lets in; `None`: any host.
    allowed: Option<BTreeSet<String>>,
}

impl Image {
    fn admits(&self, hostnqn: &str) -> bool {
        self.allowed.as_ref().is_none_or(|a| a.contains(hostnqn))
    }
}

#[derive(Debug, Clone)]
struct Controller {
    instance: u32,
    nqn: String,
    hostnqn: String,
    state: CtrlState,
    /// The target refused its last reconnect (the kernel logged so).
    refused: bool,
}

#[derive(Debug, Clone)]
struct Disk {
    name: String,
    nqn: String,
    /// The controller it came with.
    instance: u32,
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
    /// The image a filesystem mount is of (for statistics), and whether
    /// through its mapping.
    image: Option<(String, bool)>,
    /// The options the mount was asked for.
    options: Vec<String>,
}

/// An open mapping (`/dev/dm-<index>`).
#[derive(Debug, Clone)]
struct FakeMapping {
    name: String,
    index: u32,
    /// The image of the disk it was opened on.
    nqn: String,
    /// That disk's name and sequence number: when no disk has both any
    /// more, the mapping is dead.
    disk: (String, u64),
    size: u64,
    diskseq: u64,
    /// Made by `cryptsetup` for LUKS2 (else someone else's device).
    luks2: bool,
}

/// What a device node resolves to.
#[derive(Debug, Clone)]
enum Target {
    /// A disk of the image `nqn`.
    Disk { nqn: String },
    /// A mapping of the image `nqn`; `alive` while its disk is there.
    Mapping { nqn: String, alive: bool },
}

/// A block device as sysfs shows it.
#[derive(Debug, Clone)]
struct DeviceInfo {
    name: String,
    size: u64,
    diskseq: u64,
    target: Target,
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
    refusals: Vec<(String, String)>,
    formatted: Vec<(String, FsType)>,
    grown: usize,
    mounts: Vec<Mount>,
    dirs: BTreeSet<PathBuf>,
    files: BTreeSet<PathBuf>,
    busy: BTreeSet<PathBuf>,
    beside: BTreeMap<PathBuf, StagingRecord>,
    index: BTreeMap<String, StagingRecord>,
    mappings: Vec<FakeMapping>,
    held_mappings: BTreeSet<String>,
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

    /// Whether the mapping sits on its disk, which is still there.
    fn mapping_alive(&self, m: &FakeMapping) -> bool {
        self.disks
            .iter()
            .any(|d| d.name == m.disk.0 && d.diskseq == m.disk.1)
    }

    /// The block device at `device` (`/dev/<disk>` or `/dev/dm-N`), as
    /// sysfs shows it: a dead mapping is still there.
    fn device(&self, device: &Path, now: Instant) -> Option<DeviceInfo> {
        if let Some(d) = self.disk_by_path(device, now) {
            return Some(DeviceInfo {
                name: d.name.clone(),
                size: d.size,
                diskseq: d.diskseq,
                target: Target::Disk { nqn: d.nqn.clone() },
            });
        }
        let name = device.strip_prefix("/dev").ok()?.to_str()?;
        let m = self
            .mappings
            .iter()
            .find(|m| format!("dm-{}", m.index) == name)?;
        Some(DeviceInfo {
            name: name.to_owned(),
            size: m.size,
            diskseq: m.diskseq,
            target: Target::Mapping {
                nqn: m.nqn.clone(),
                alive: self.mapping_alive(m),
            },
        })
    }

    /// What the device at `target` shows: the image's contents, or a
    /// mapping's plaintext; `None` if it cannot be read.
    fn contents_at(&self, target: &Target) -> Option<Contents> {
        match target {
            Target::Disk { nqn } => self.images.get(nqn).map(|i| i.contents.clone()),
            Target::Mapping { nqn, alive, .. } => {
                if !alive {
                    return None;
                }
                self.images
                    .get(nqn)
                    .and_then(|i| i.contents.plaintext().cloned())
            }
        }
    }

    /// Writes what the device at `target` shows.
    fn set_contents_at(&mut self, target: &Target, contents: Contents) {
        match target {
            Target::Disk { nqn } => {
                if let Some(image) = self.images.get_mut(nqn) {
                    image.contents = contents;
                }
            }
            Target::Mapping { nqn, .. } => {
                if let Some(Contents::Luks { plain, .. }) =
                    self.images.get_mut(nqn).map(|i| &mut i.contents)
                {
                    **plain = contents;
                }
            }
        }
    }

    fn is_dir(&self, path: &Path) -> bool {
        path == Path::new("/") || self.dirs.contains(path)
    }

    fn exists(&self, path: &Path, now: Instant) -> bool {
        self.is_dir(path) || self.files.contains(path) || self.device(path, now).is_some()
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
            self.crypt(),
            identity(),
            metrics,
        )
    }

    /// The encryption view.
    pub fn crypt(&self) -> FakeCrypt {
        FakeCrypt(self.clone())
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
                allowed: None,
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

    /// Which hosts the export of `nqn` lets in from now on (`None`: any).
    /// Like the kernel's target, it is checked when a host connects: live
    /// connections stay until [`FakeWorld::bounce`].
    pub fn set_allowed(&self, nqn: &str, hosts: Option<&[&str]>) {
        if let Some(image) = self.world().images.get_mut(nqn) {
            image.allowed = hosts.map(|h| h.iter().map(|s| (*s).to_owned()).collect());
        }
    }

    /// The export of `nqn` switched off and on: every controller of it
    /// loses its connection and reconnects; those of hosts the export lets
    /// in are live again, the others are refused and keep asking
    /// (`connecting`, as Linux before 6.10 does).
    pub fn bounce(&self, nqn: &str) {
        let mut w = self.world();
        let admitted: Vec<bool> = w
            .controllers
            .iter()
            .map(|c| w.images.get(nqn).is_some_and(|i| i.admits(&c.hostnqn)))
            .collect();
        let mut refusals = Vec::new();
        for (c, admitted) in w.controllers.iter_mut().zip(admitted) {
            if c.nqn == nqn && !admitted {
                c.state = CtrlState::Connecting;
                c.refused = true;
                refusals.push((c.nqn.clone(), c.hostnqn.clone()));
            }
        }
        w.refusals.extend(refusals);
    }

    /// The (NQN, host NQN) pairs the target refused so far, in order.
    pub fn refusals(&self) -> Vec<(String, String)> {
        self.world().refusals.clone()
    }

    /// The host NQNs of the controllers of `nqn`, in connection order.
    pub fn hosts_of(&self, nqn: &str) -> Vec<String> {
        self.world()
            .controllers
            .iter()
            .filter(|c| c.nqn == nqn)
            .map(|c| c.hostnqn.clone())
            .collect()
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
            options: Vec::new(),
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

    /// The names of the open mappings, in the order they were opened.
    pub fn mappings(&self) -> Vec<String> {
        self.world()
            .mappings
            .iter()
            .map(|m| m.name.clone())
            .collect()
    }

    /// The label of the LUKS header of the image of `nqn`, if it has one.
    pub fn luks_label(&self, nqn: &str) -> Option<String> {
        match self.contents(nqn)? {
            Contents::Luks { label, .. } => Some(label),
            _ => None,
        }
    }

    /// How many keys the LUKS header of the image of `nqn` takes.
    pub fn luks_keys(&self, nqn: &str) -> usize {
        match self.contents(nqn) {
            Some(Contents::Luks { keys, .. }) => keys.len(),
            _ => 0,
        }
    }

    /// What the mapping of the image of `nqn` shows, if it is encrypted.
    pub fn plaintext(&self, nqn: &str) -> Option<Contents> {
        self.contents(nqn)?.plaintext().cloned()
    }

    /// A process holds mapping `name` open (a pod using a block volume), so
    /// closing it fails as busy; or no longer.
    pub fn hold_mapping(&self, name: &str, held: bool) {
        let mut w = self.world();
        if held {
            w.held_mappings.insert(name.to_owned());
        } else {
            w.held_mappings.remove(name);
        }
    }

    /// Opens a mapping `name` on the current disk of `nqn` behind the
    /// node's back: one `cryptsetup` made for LUKS2, or (`luks2` false)
    /// another kind of device-mapper device.
    pub fn open_directly(&self, nqn: &str, name: &str, luks2: bool) {
        let now = Instant::now();
        let mut w = self.world();
        let Some(disk) = w
            .disks
            .iter()
            .find(|d| d.nqn == nqn && d.visible_at.is_some_and(|t| t <= now))
            .cloned()
        else {
            return;
        };
        add_mapping(&mut w, name, &disk, luks2);
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

    /// The options each mount at `target` was asked for, oldest first.
    pub fn mount_options_at(&self, target: &Path) -> Vec<Vec<String>> {
        self.world()
            .mounts
            .iter()
            .filter(|m| m.target == target)
            .map(|m| m.options.clone())
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

/// Opens mapping `name` on `disk`, at the lowest free `dm-N`, as the kernel
/// numbers them.
fn add_mapping(w: &mut World, name: &str, disk: &Disk, luks2: bool) {
    let index = (0..)
        .find(|i| !w.mappings.iter().any(|m| m.index == *i))
        .unwrap_or(0);
    w.next_diskseq += 1;
    let diskseq = w.next_diskseq;
    w.mappings.push(FakeMapping {
        name: name.to_owned(),
        index,
        nqn: disk.nqn.clone(),
        disk: (disk.name.clone(), disk.diskseq),
        size: disk.size.saturating_sub(LUKS_HEADER),
        diskseq,
        luks2,
    });
}

fn next_mount_id(w: &mut World) -> u32 {
    w.next_mount_id += 1;
    w.next_mount_id + 100
}

/// Adds a live controller of `nqn` and, unless it never shows, its disk;
/// names are the lowest free numbers, as the kernel's are. Like the kernel,
/// a disk's name is not given out again while a mount still holds the disk
/// it named (a dead filesystem keeps it), so the next disk gets another.
fn add_controller(w: &mut World, nqn: &str, hostnqn: &str, visible_at: Option<Instant>) -> u32 {
    let instance = (0..)
        .find(|i| !w.controllers.iter().any(|c| c.instance == *i))
        .unwrap_or(0);
    w.controllers.push(Controller {
        instance,
        nqn: nqn.to_owned(),
        hostnqn: hostnqn.to_owned(),
        state: CtrlState::Live,
        refused: false,
    });
    if let Some(size) = w.images.get(nqn).map(|i| i.size) {
        w.next_diskseq += 1;
        let diskseq = w.next_diskseq;
        let taken = |name: &str| {
            let node = format!("/dev/{name}");
            w.disks.iter().any(|d| d.name == name) || w.mounts.iter().any(|m| m.source == node)
        };
        let name = (1..)
            .map(|n| format!("nvme{instance}n{n}"))
            .find(|name| !taken(name))
            .unwrap_or_default();
        w.disks.push(Disk {
            name,
            nqn: nqn.to_owned(),
            instance,
            size,
            diskseq,
            visible_at,
        });
    }
    instance
}

pub(super) fn refused(config: &ConnectionConfig, why: GaveUp, errno: i32) -> NvmeError {
    NvmeError::ConnectGaveUp {
        target: format!("{} at {}:{}", config.nqn, config.traddr, config.trsvcid),
        attempts: 1,
        why,
        last_errno: Some(errno),
        last: None,
    }
}

pub(super) fn os(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

pub(super) const EIO: i32 = 5;
pub(super) const ENOENT: i32 = 2;
pub(super) const EBUSY: i32 = 16;
pub(super) const EINVAL: i32 = 22;
pub(super) const ECONNREFUSED: i32 = 111;
