//! The node's health monitor: how every staged volume is doing.
//!
//! A volume is healthy when its NVMe/TCP controller is live, an encrypted
//! volume's mapping is open on the NQN's disk and, for a filesystem volume,
//! its staging path is still a read-write (or, if staged so, read-only)
//! mount of the volume's current block device (the NQN's disk, or the
//! encrypted volume's mapping). The monitor looks at
//! every staged volume each interval, and NodeGetVolumeStats asks it about one
//! volume on demand; both go through [`HealthMonitor::observe`], which keeps
//! the last health of each volume and logs a change once, when it happens,
//! not at every poll. The sweep also sets the node's gauges: staged volumes,
//! volumes by controller state, abnormal volumes.
//!
//! What is wrong is a [`Problem`], a typed value: callers match on it, and its
//! text is for people only.
//!
//! One problem is acted on: a volume whose controller the target refuses
//! ([`Problem::Refused`]) at two looks in a row was unpublished from this
//! node (Kubernetes detached it, perhaps by force, and another node may own
//! it now). Linux before 6.10 keeps asking the target again every
//! reconnect delay until `ctrlLossTmo`, holding the volume's I/O all along;
//! the monitor disconnects such a controller, so that the I/O fails at once
//! instead, as newer kernels do by themselves. Two looks, not one, so that a
//! refusal seen while the RDS's list was being changed is not taken for a
//! decision.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use node_fs::mountinfo::MountInfo;
use nvme_host::{BlockDevice, CtrlState};
use telemetry::NodeMetrics;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::crypt::Crypt;
use crate::fs::Filesystems;
use crate::nvme::NvmeHost;
use crate::record::{RecordStore, StagingRecord};

/// One thing wrong with a staged volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The controllers of its NQN could not be read from sysfs.
    StateUnreadable {
        /// What reading them said.
        error: String,
    },
    /// Its controller is connected but not live (the target is away).
    NotLive {
        /// The NQN.
        nqn: String,
        /// The best state of its controllers.
        state: CtrlState,
    },
    /// No controller of its NQN is left.
    NotConnected {
        /// The NQN.
        nqn: String,
    },
    /// Its controller shows no namespace.
    NoNamespace {
        /// The NQN.
        nqn: String,
    },
    /// Nothing is mounted at its staging path (filesystem volumes).
    StagingNotMounted {
        /// The staging path.
        staging: PathBuf,
    },
    /// Its filesystem went read-only although it was mounted read-write.
    ReadOnly,
    /// Its staging mount is of a disk that is gone.
    StaleMount {
        /// The device as it was when staged.
        recorded: PathBuf,
        /// The NQN's device now.
        current: PathBuf,
    },
    /// Nothing is mounted at the path NodeGetVolumeStats asked about.
    NothingMountedAt {
        /// The path.
        path: PathBuf,
    },
    /// An encrypted volume's mapping is not open.
    MappingClosed {
        /// The mapping's name.
        mapping: String,
    },
    /// An encrypted volume's mapping sits on a disk that is gone.
    MappingOfGoneDisk {
        /// The mapping's name.
        mapping: String,
    },
    /// The device-mapper state could not be read from sysfs.
    MappingUnreadable {
        /// What reading it said.
        error: String,
    },
    /// The target refuses the identity it was staged with.
    Refused {
        /// The NQN.
        nqn: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StateUnreadable { error } => {
                write!(f, "its NVMe/TCP state cannot be read: {error}")
            }
            Self::NotLive { nqn, state } => write!(
                f,
                "its NVMe/TCP controller ({nqn}) is {state}, not live: the RDS or the network is unreachable"
            ),
            Self::NotConnected { nqn } => write!(
                f,
                "it is not connected over NVMe/TCP ({nqn}): the kernel gave up reconnecting (ctrl_loss_tmo) or the connection was removed; stage the volume again"
            ),
            Self::NoNamespace { nqn } => write!(
                f,
                "its NVMe/TCP controller ({nqn}) shows no namespace: the volume's disk is missing on the RDS"
            ),
            Self::StagingNotMounted { staging } => write!(
                f,
                "nothing is mounted at its staging path {}",
                staging.display()
            ),
            Self::ReadOnly => f.write_str(
                "its filesystem is read-only although it was mounted read-write (the kernel does this after I/O errors)",
            ),
            Self::StaleMount { recorded, current } => write!(
                f,
                "its staging mount is of a disk that is gone ({} as it was when staged; {} now): stage or publish it again",
                recorded.display(),
                current.display()
            ),
            Self::NothingMountedAt { path } => {
                write!(f, "nothing is mounted at {}", path.display())
            }
            Self::MappingClosed { mapping } => write!(
                f,
                "its encrypted mapping {mapping} is not open: stage the volume again"
            ),
            Self::MappingOfGoneDisk { mapping } => write!(
                f,
                "its encrypted mapping {mapping} sits on a disk that is gone (the NVMe/TCP connection was lost): stage or publish it again once no pod uses it"
            ),
            Self::MappingUnreadable { error } => {
                write!(f, "its encrypted mapping cannot be read: {error}")
            }
            Self::Refused { nqn } => write!(
                f,
                "the RDS refuses this node for it ({nqn}): it was unpublished from this node, and its I/O can no longer reach the volume; unstage it here"
            ),
        }
    }
}

/// What the monitor found about one volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeHealth {
    /// The best state among the NQN's controllers; `None`: no controller.
    pub controller: Option<CtrlState>,
    /// What is wrong; empty when healthy.
    pub problems: Vec<Problem>,
}

impl VolumeHealth {
    /// Whether nothing is wrong.
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }

    /// The controller state as the metrics name it.
    pub fn state_label(&self) -> &'static str {
        state_label(self.controller.as_ref())
    }

    /// The problems, for people, joined by `; `.
    pub fn describe(&self) -> String {
        describe(&self.problems)
    }
}

/// Problems for people, joined by `; `.
pub fn describe(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The metrics' name of a controller state (`absent` for none).
pub fn state_label(state: Option<&CtrlState>) -> &'static str {
    match state {
        None => "absent",
        Some(CtrlState::Live) => "live",
        Some(CtrlState::Connecting) => "connecting",
        Some(CtrlState::Resetting) => "resetting",
        Some(CtrlState::Deleting | CtrlState::DeletingNoIo) => "deleting",
        Some(CtrlState::New) => "new",
        Some(CtrlState::Dead) => "dead",
        Some(CtrlState::Unknown(_)) => "unknown",
    }
}

/// The block device a staged volume is used through now: its NQN's disk,
/// or for an encrypted volume its mapping while that sits on the NQN's disk.
pub fn volume_device(
    host: &impl NvmeHost,
    crypt: &impl Crypt,
    record: &StagingRecord,
) -> Result<Option<BlockDevice>, crate::error::NodeError> {
    let disk = host.block_device(&record.nqn)?;
    let Some(name) = &record.mapping else {
        return Ok(disk);
    };
    let Some(disk) = disk else {
        return Ok(None);
    };
    Ok(crypt
        .mapping(name)?
        .filter(|m| m.is_on(&disk))
        .map(|m| m.device))
}

/// Judges one staged volume from sysfs (through `host` and `crypt`) and the
/// mount table.
pub fn judge(
    host: &impl NvmeHost,
    crypt: &impl Crypt,
    mounts: &[MountInfo],
    record: &StagingRecord,
) -> VolumeHealth {
    let mut problems = Vec::new();
    let controller = match host.controller_state(&record.nqn) {
        Ok(state) => state,
        Err(e) => {
            problems.push(Problem::StateUnreadable {
                error: e.to_string(),
            });
            None
        }
    };
    match &controller {
        Some(CtrlState::Live) => {}
        Some(state) => problems.push(Problem::NotLive {
            nqn: record.nqn.clone(),
            state: state.clone(),
        }),
        None if problems.is_empty() => problems.push(Problem::NotConnected {
            nqn: record.nqn.clone(),
        }),
        None => {}
    }
    if let (Some(state), Some(staged_as)) = (&controller, &record.host)
        && *state != CtrlState::Live
    {
        match host.refused(&record.nqn, &staged_as.nqn) {
            Ok(true) => problems.push(Problem::Refused {
                nqn: record.nqn.clone(),
            }),
            Ok(false) => {}
            // Without the kernel log the state says enough: not live.
            Err(e) => {
                debug!(nqn = %record.nqn, error = %e, "cannot tell whether the target refuses this node")
            }
        }
    }
    let disk = host.block_device(&record.nqn);
    if controller.is_some() && matches!(disk, Ok(None)) {
        problems.push(Problem::NoNamespace {
            nqn: record.nqn.clone(),
        });
    }
    let current = match (&record.mapping, disk) {
        (None, disk) => disk.ok().flatten(),
        (Some(name), disk) => match crypt.mapping(name) {
            Ok(None) => {
                problems.push(Problem::MappingClosed {
                    mapping: name.clone(),
                });
                None
            }
            Ok(Some(m)) if m.backing.is_none() => {
                problems.push(Problem::MappingOfGoneDisk {
                    mapping: name.clone(),
                });
                None
            }
            Ok(Some(m)) => disk.ok().flatten().filter(|d| m.is_on(d)).map(|_| m.device),
            Err(e) => {
                problems.push(Problem::MappingUnreadable {
                    error: e.to_string(),
                });
                None
            }
        },
    };
    if record.fs_type.is_some() {
        problems.extend(staging_mount_problem(current, mounts, record));
    }
    VolumeHealth {
        controller,
        problems,
    }
}

/// What is wrong with a filesystem volume's staging mount, if anything;
/// `current` is the volume's device now, if it has one.
fn staging_mount_problem(
    current: Option<BlockDevice>,
    mounts: &[MountInfo],
    record: &StagingRecord,
) -> Option<Problem> {
    let staging = &record.staging_path;
    let Some(mount) = node_fs::mountinfo::find(mounts, staging) else {
        return Some(Problem::StagingNotMounted {
            staging: staging.clone(),
        });
    };
    if mount.read_only() && !record.read_only {
        return Some(Problem::ReadOnly);
    }
    if let Some(device) = current
        && is_stale_mount(&mount.source, &device, record)
    {
        return Some(Problem::StaleMount {
            recorded: record.device.clone(),
            current: device.path,
        });
    }
    None
}

/// Whether a mount of `source`, found where `record` staged its volume, is of
/// a disk that is gone rather than of the NQN's `current` one. After the
/// kernel gives up on a controller and a later connect makes another, the new
/// disk often gets the old name back, so names alone cannot tell; the disk
/// sequence number can. Without one (old kernels, old records) a mount of the
/// recorded device under another name than the current one is stale.
pub fn is_stale_mount(source: &str, current: &BlockDevice, record: &StagingRecord) -> bool {
    if Path::new(source) != current.path {
        return Path::new(source) == record.device;
    }
    matches!((record.diskseq, current.diskseq), (Some(then), Some(now)) if then != now)
}

struct Seen {
    health: VolumeHealth,
    since: Instant,
}

/// The last health of every staged volume, and the node's gauges.
pub struct HealthMonitor {
    seen: Mutex<HashMap<String, Seen>>,
    metrics: NodeMetrics,
}

/// One look at a volume: its health and since when it has been so.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The health now.
    pub health: VolumeHealth,
    /// How long the volume has been in this health (as far as this process
    /// has seen).
    pub for_how_long: Duration,
}

impl HealthMonitor {
    /// A monitor recording into `metrics`.
    pub fn new(metrics: NodeMetrics) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        // A panic while holding the lock leaves a whole map; keep using it.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Looks at `record`'s volume now, logs a change of its health, and
    /// remembers it.
    pub fn observe(
        &self,
        host: &impl NvmeHost,
        crypt: &impl Crypt,
        mounts: &[MountInfo],
        record: &StagingRecord,
    ) -> Observation {
        let health = judge(host, crypt, mounts, record);
        let now = Instant::now();
        let mut seen = self.seen();
        let since = match seen.get(&record.volume_id) {
            Some(last) if last.health == health => last.since,
            last => {
                log_change(
                    &record.volume_id,
                    &record.nqn,
                    last.map(|l| &l.health),
                    &health,
                );
                now
            }
        };
        seen.insert(
            record.volume_id.clone(),
            Seen {
                health: health.clone(),
                since,
            },
        );
        Observation {
            health,
            for_how_long: now - since,
        }
    }

    /// Forgets a volume (unstaged).
    pub fn forget(&self, volume_id: &str) {
        self.seen().remove(volume_id);
    }

    /// Looks at every staged volume once and sets the gauges. Returns how
    /// many volumes were looked at.
    pub fn sweep(
        &self,
        host: &impl NvmeHost,
        fs: &impl Filesystems,
        records: &impl RecordStore,
        crypt: &impl Crypt,
    ) -> usize {
        self.look(host, fs, records, crypt).looked_at
    }

    /// [`HealthMonitor::sweep`], also saying which volumes the target has
    /// refused at this look and the one before.
    fn look(
        &self,
        host: &impl NvmeHost,
        fs: &impl Filesystems,
        records: &impl RecordStore,
        crypt: &impl Crypt,
    ) -> Look {
        let mounts = match fs.mounts() {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "health check: cannot read the mount table");
                return Look::default();
            }
        };
        let mut staged = Vec::new();
        for record in records.all() {
            match record {
                Ok(r) => staged.push(r),
                Err(e) => warn!(error = %e, "health check: unreadable staging record"),
            }
        }
        let mut by_state: Vec<(&str, i64)> = Vec::new();
        let mut abnormal = 0;
        let mut refused = Vec::new();
        for record in &staged {
            let seen = self.observe(host, crypt, &mounts, record);
            if !seen.health.is_healthy() {
                abnormal += 1;
            }
            // Unchanged since the last look, and refused then as now.
            if seen.for_how_long > Duration::ZERO
                && seen
                    .health
                    .problems
                    .iter()
                    .any(|p| matches!(p, Problem::Refused { .. }))
            {
                refused.push(record.clone());
            }
            let label = seen.health.state_label();
            match by_state.iter_mut().find(|(s, _)| *s == label) {
                Some((_, n)) => *n += 1,
                None => by_state.push((label, 1)),
            }
        }
        self.seen()
            .retain(|id, _| staged.iter().any(|r| &r.volume_id == id));
        self.metrics.set_controller_states(&by_state);
        self.metrics
            .staged_volumes
            .set(i64::try_from(staged.len()).unwrap_or(i64::MAX));
        self.metrics.abnormal_volumes.set(abnormal);
        Look {
            looked_at: staged.len(),
            refused,
        }
    }

    /// Sweeps every `interval` until `stop` turns true; the first sweep is
    /// at once. Sweeps read sysfs and the mount table, which block, so they
    /// run on tokio's blocking pool. After a sweep, the controllers of `ours`
    /// (host NQNs) of volumes the target refused at two looks in a row are
    /// disconnected, each within `disconnect`.
    #[allow(clippy::too_many_arguments)] // the monitor's seams and its settings
    pub async fn run<H: NvmeHost, F: Filesystems, R: RecordStore, C: Crypt>(
        self: Arc<Self>,
        host: Arc<H>,
        fs: Arc<F>,
        records: Arc<R>,
        crypt: Arc<C>,
        interval: Duration,
        ours: Vec<String>,
        disconnect: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let (monitor, sweep_host, fs, records, crypt) = (
                Arc::clone(&self),
                Arc::clone(&host),
                Arc::clone(&fs),
                Arc::clone(&records),
                Arc::clone(&crypt),
            );
            let look = tokio::task::spawn_blocking(move || {
                monitor.look(&*sweep_host, &*fs, &*records, &*crypt)
            })
            .await;
            match look {
                Ok(look) => {
                    for record in look.refused {
                        self.cut_off(&*host, &record, &ours, disconnect).await;
                    }
                }
                Err(e) => warn!(error = %e, "health check task failed"),
            }
        }
    }

    /// Disconnects the refused controllers of `record`'s volume, so that
    /// its I/O fails now instead of at `ctrlLossTmo`.
    async fn cut_off(
        &self,
        host: &impl NvmeHost,
        record: &StagingRecord,
        ours: &[String],
        within: Duration,
    ) {
        warn!(
            volume = %record.volume_id,
            nqn = %record.nqn,
            "the RDS refuses this node for the volume (it was unpublished from here): disconnecting it, so that its I/O fails instead of waiting for ctrlLossTmo"
        );
        match host
            .disconnect(&record.nqn, ours, Instant::now() + within)
            .await
        {
            Ok(()) => {
                info!(volume = %record.volume_id, nqn = %record.nqn, "refused connection disconnected")
            }
            Err(e) => {
                warn!(volume = %record.volume_id, nqn = %record.nqn, error = %e, "could not disconnect a refused connection; trying again at the next look")
            }
        }
    }
}

/// What one look at every staged volume found.
#[derive(Debug, Default)]
struct Look {
    /// How many volumes were looked at.
    looked_at: usize,
    /// Those the target refused at this look and the one before.
    refused: Vec<StagingRecord>,
}

fn log_change(volume_id: &str, nqn: &str, last: Option<&VolumeHealth>, now: &VolumeHealth) {
    let state = now.state_label();
    match (last, now.is_healthy()) {
        (None, true) => info!(volume = volume_id, nqn, state, "volume healthy"),
        (Some(_), true) => info!(volume = volume_id, nqn, state, "volume healthy again"),
        (_, false) => warn!(
            volume = volume_id,
            nqn,
            state,
            problem = %now.describe(),
            "volume abnormal"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::LinuxFilesystems;
    use crate::record::Records;
    use nvme_host::Host;
    use nvme_host::testing::{FakeController, FakeSysfs};

    const NQN: &str = "nqn.2024-01.io.srvlab.csi.rds:pvc-1";
    const STAGING: &str = "/var/lib/kubelet/staging/pvc-1";

    struct Sys {
        _dir: tempfile::TempDir,
        fake: FakeSysfs,
    }

    impl Sys {
        fn new() -> Sys {
            let dir = tempfile::tempdir().unwrap();
            let fake = FakeSysfs::new(dir.path(), true).unwrap();
            Sys { _dir: dir, fake }
        }

        /// Adds a controller of `nqn` in `state`; returns its name.
        fn controller(&self, nqn: &str, state: &str) -> String {
            let name = self.fake.add_controller(&FakeController::new(nqn)).unwrap();
            self.fake.set_state(&name, state).unwrap();
            name
        }

        fn host(&self) -> Host {
            Host::new(self.fake.root())
        }

        fn crypt(&self) -> crate::crypt::LinuxCrypt {
            crate::crypt::LinuxCrypt::new(self.fake.root())
        }
    }

    fn record(nqn: &str, fs: Option<&str>, device: &str) -> StagingRecord {
        StagingRecord {
            volume_id: "pvc-1".into(),
            nqn: nqn.into(),
            device: device.into(),
            fs_type: fs.map(str::to_owned),
            staging_path: STAGING.into(),
            read_only: false,
            connection: None,
            diskseq: None,
            mapping: None,
            host: None,
        }
    }

    fn mount(source: &str, opts: &str) -> MountInfo {
        let line = format!("36 25 259:1 / {STAGING} {opts},relatime shared:1 - ext4 {source} rw\n");
        node_fs::mountinfo::parse(&line).unwrap().pop().unwrap()
    }

    #[test]
    fn a_live_controller_and_a_block_volume_are_healthy() {
        let sys = Sys::new();
        sys.controller(NQN, "live");
        let dev = sys.fake.add_namespace(NQN, 1, 1 << 30).unwrap();
        let h = judge(
            &sys.host(),
            &sys.crypt(),
            &[],
            &record(NQN, None, &format!("/dev/{dev}")),
        );
        assert!(h.is_healthy(), "{h:?}");
        assert_eq!(h.state_label(), "live");
    }

    #[test]
    fn a_reconnecting_controller_is_abnormal() {
        let sys = Sys::new();
        sys.controller(NQN, "connecting");
        let h = judge(
            &sys.host(),
            &sys.crypt(),
            &[],
            &record(NQN, None, "/dev/nvme0n1"),
        );
        assert_eq!(h.state_label(), "connecting");
        assert_eq!(
            h.problems[0],
            Problem::NotLive {
                nqn: NQN.into(),
                state: CtrlState::Connecting
            }
        );
        assert!(
            h.describe().contains("is connecting, not live"),
            "{}",
            h.describe()
        );
    }

    #[test]
    fn no_controller_says_to_stage_again() {
        let sys = Sys::new();
        let h = judge(
            &sys.host(),
            &sys.crypt(),
            &[],
            &record(NQN, None, "/dev/nvme0n1"),
        );
        assert_eq!(h.state_label(), "absent");
        assert_eq!(h.problems, [Problem::NotConnected { nqn: NQN.into() }]);
        assert!(h.describe().contains("not connected over NVMe/TCP"));
        assert!(h.describe().contains("stage the volume again"));
    }

    #[test]
    fn a_filesystem_volume_needs_its_staging_mount() {
        let sys = Sys::new();
        sys.controller(NQN, "live");
        let dev = format!("/dev/{}", sys.fake.add_namespace(NQN, 1, 1 << 30).unwrap());
        let r = record(NQN, Some("ext4"), &dev);
        let h = judge(&sys.host(), &sys.crypt(), &[], &r);
        assert_eq!(
            h.problems,
            [Problem::StagingNotMounted {
                staging: STAGING.into()
            }]
        );
        assert!(judge(&sys.host(), &sys.crypt(), &[mount(&dev, "rw")], &r).is_healthy());

        let h = judge(&sys.host(), &sys.crypt(), &[mount(&dev, "ro")], &r);
        assert_eq!(h.problems, [Problem::ReadOnly]);
        let staged_ro = StagingRecord {
            read_only: true,
            ..r
        };
        assert!(judge(&sys.host(), &sys.crypt(), &[mount(&dev, "ro")], &staged_ro).is_healthy());
    }

    #[test]
    fn a_mount_of_the_old_device_after_a_reconnect_is_abnormal() {
        let sys = Sys::new();
        let first = sys.controller(NQN, "live");
        sys.fake.add_namespace(NQN, 1, 1 << 30).unwrap();
        let then = sys.host().block_device(NQN).unwrap().unwrap();
        // The kernel gave up on the first controller; a new connect made
        // another, whose disk has the same name (the kernel reuses them).
        sys.fake.remove_controller(&first).unwrap();
        sys.controller(NQN, "live");
        sys.fake.add_namespace(NQN, 1, 1 << 30).unwrap();
        let now = sys.host().block_device(NQN).unwrap().unwrap();
        assert_eq!(then.path, now.path);
        assert_ne!(then.diskseq, now.diskseq);
        let dev = then.path.display().to_string();
        let staged = StagingRecord {
            diskseq: then.diskseq,
            ..record(NQN, Some("ext4"), &dev)
        };
        let h = judge(&sys.host(), &sys.crypt(), &[mount(&dev, "rw")], &staged);
        assert_eq!(
            h.problems,
            [Problem::StaleMount {
                recorded: then.path.clone(),
                current: now.path.clone()
            }]
        );
        // Restaged on the new disk: healthy.
        let restaged = StagingRecord {
            diskseq: now.diskseq,
            ..staged
        };
        assert!(judge(&sys.host(), &sys.crypt(), &[mount(&dev, "rw")], &restaged).is_healthy());
    }

    #[test]
    fn stale_mounts_are_told_by_sequence_number_then_by_name() {
        let current = BlockDevice {
            name: "nvme0n1".into(),
            path: "/dev/nvme0n1".into(),
            size_bytes: 1 << 30,
            diskseq: Some(9),
        };
        let r = |device: &str, diskseq| StagingRecord {
            diskseq,
            ..record(NQN, Some("ext4"), device)
        };
        assert!(!is_stale_mount(
            "/dev/nvme0n1",
            &current,
            &r("/dev/nvme0n1", Some(9))
        ));
        assert!(is_stale_mount(
            "/dev/nvme0n1",
            &current,
            &r("/dev/nvme0n1", Some(4))
        ));
        assert!(!is_stale_mount(
            "/dev/nvme0n1",
            &current,
            &r("/dev/nvme0n1", None)
        ));
        assert!(is_stale_mount(
            "/dev/nvme1n1",
            &current,
            &r("/dev/nvme1n1", None)
        ));
        // Someone else's mount is not ours to call stale.
        assert!(!is_stale_mount(
            "/dev/sdb",
            &current,
            &r("/dev/nvme1n1", None)
        ));
    }

    #[test]
    fn a_controller_without_a_namespace_is_abnormal() {
        let sys = Sys::new();
        sys.controller(NQN, "live");
        let h = judge(
            &sys.host(),
            &sys.crypt(),
            &[],
            &record(NQN, None, "/dev/nvme0n1"),
        );
        assert_eq!(h.problems, [Problem::NoNamespace { nqn: NQN.into() }]);
    }

    #[test]
    fn changes_are_remembered_with_their_time() {
        let sys = Sys::new();
        let ctrl = sys.controller(NQN, "connecting");
        sys.fake.add_namespace(NQN, 1, 1 << 30).unwrap();
        let monitor = HealthMonitor::new(NodeMetrics::default());
        let r = record(NQN, None, "/dev/nvme0n1");
        let first = monitor.observe(&sys.host(), &sys.crypt(), &[], &r);
        assert!(!first.health.is_healthy());
        let again = monitor.observe(&sys.host(), &sys.crypt(), &[], &r);
        assert_eq!(again.health, first.health);
        assert!(again.for_how_long >= first.for_how_long);
        sys.fake.set_state(&ctrl, "live").unwrap();
        let recovered = monitor.observe(&sys.host(), &sys.crypt(), &[], &r);
        assert!(recovered.health.is_healthy());
        assert!(recovered.for_how_long <= again.for_how_long + Duration::from_secs(1));
        assert!(monitor.seen().contains_key("pvc-1"));
        monitor.forget("pvc-1");
        assert!(!monitor.seen().contains_key("pvc-1"));
    }

    #[test]
    fn a_sweep_sets_the_gauges_and_forgets_unstaged_volumes() {
        let state_dir = tempfile::tempdir().unwrap();
        let records = Records::new(state_dir.path());
        let sys = Sys::new();
        sys.controller(NQN, "live");
        sys.fake.add_namespace(NQN, 1, 1 << 30).unwrap();
        let other = "nqn.2024-01.io.srvlab.csi.rds:pvc-2";
        sys.controller(other, "connecting");
        let mut r1 = record(NQN, None, "/dev/nvme0n1");
        r1.staging_path = state_dir.path().join("s1");
        let mut r2 = record(other, None, "/dev/nvme1n1");
        r2.volume_id = "pvc-2".into();
        r2.staging_path = state_dir.path().join("s2");
        records.save(&r1).unwrap();
        records.save(&r2).unwrap();
        let root = state_dir.path().join("host");
        std::fs::create_dir_all(root.join("proc/self")).unwrap();
        std::fs::write(root.join("proc/self/mountinfo"), "").unwrap();
        let fs = LinuxFilesystems::new(&root);

        let metrics = NodeMetrics::default();
        let monitor = HealthMonitor::new(metrics.clone());
        assert_eq!(monitor.sweep(&sys.host(), &fs, &records, &sys.crypt()), 2);
        assert_eq!(metrics.staged_volumes.get(), 2);
        assert_eq!(metrics.abnormal_volumes.get(), 1);
        let state = |s: &str| {
            metrics
                .controller_states
                .get_or_create(&telemetry::metrics::StateLabels { state: s.into() })
                .get()
        };
        assert_eq!((state("live"), state("connecting")), (1, 1));

        records.remove("pvc-2", &r2.staging_path).unwrap();
        assert_eq!(monitor.sweep(&sys.host(), &fs, &records, &sys.crypt()), 1);
        assert_eq!((state("live"), state("connecting")), (1, 0));
        assert_eq!(metrics.abnormal_volumes.get(), 0);
        assert!(!monitor.seen().contains_key("pvc-2"));
    }
}
