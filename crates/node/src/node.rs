//! [`Node`]: the node's configuration, its seams, and what every operation
//! shares (the per-volume lock, the mount table, the health monitor). The
//! operations themselves are in `stage`, `unstage`, `publish`, `expand` and
//! `stats`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use node_fs::mountinfo::MountInfo;
use nvme_host::{Host, HostIdentity};
use telemetry::NodeMetrics;
use tracing::info;

use crate::context::FsType;
use crate::crypt::{Crypt, LinuxCrypt};
use crate::error::{NodeError, Result};
use crate::fence::Identities;
use crate::fs::{Filesystems, LinuxFilesystems};
use crate::health::{HealthMonitor, Observation};
use crate::locks::VolumeLocks;
use crate::nvme::NvmeHost;
use crate::record::{RecordStore, Records, StagingRecord};
use crate::startup::{self, StartupReport};

/// How long the node waits for each step.
#[derive(Debug, Clone, Copy)]
pub struct NodeTimeouts {
    /// Connecting, with retries, until the controller is up.
    pub connect: Duration,
    /// The block device appearing after the connect.
    pub device: Duration,
    /// The controllers being gone after a disconnect.
    pub disconnect: Duration,
    /// blkid and the zero check.
    pub probe: Duration,
    /// mkfs.
    pub mkfs: Duration,
    /// resize2fs / xfs_growfs, and the device showing its new size.
    pub resize: Duration,
    /// The whole orphan cleanup at start-up; what is left then stays.
    pub orphan_cleanup: Duration,
    /// Each `cryptsetup` run (its key derivation takes about a second).
    pub crypt: Duration,
}

impl Default for NodeTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(60),
            device: Duration::from_secs(30),
            disconnect: Duration::from_secs(60),
            probe: Duration::from_secs(30),
            mkfs: Duration::from_secs(600),
            resize: Duration::from_secs(600),
            orphan_cleanup: Duration::from_secs(30),
            crypt: Duration::from_secs(120),
        }
    }
}

/// The node's configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's name (the Kubernetes node name). The node ID it reports
    /// is the host NQN it attaches published volumes as, made from this
    /// name ([`crate::fence`]).
    pub node_id: String,
    /// Most volumes the scheduler may put on this node (0: no limit).
    pub max_volumes: i64,
    /// Root of `/dev`, `/sys` and `/proc` (`/` in production).
    pub host_root: PathBuf,
    /// The plugin's own state folder (staging records, host identity).
    pub state_dir: PathBuf,
    /// Where `hostnqn` and `hostid` of the host are, if set up (`/etc/nvme`).
    pub etc_nvme: PathBuf,
    /// Filesystem when neither the capability nor the volume context names one.
    pub default_fs: FsType,
    /// Step timeouts.
    pub timeouts: NodeTimeouts,
    /// This driver's NQN prefix: connections without it are never touched.
    pub nqn_prefix: String,
    /// How often the health monitor looks at every staged volume.
    pub health_interval: Duration,
}

/// The node over its seams: the NVMe host `H`, the filesystems `F`, the
/// staging records `R` and the encryption `C`.
pub struct Node<H, F, R, C = LinuxCrypt> {
    pub(crate) config: NodeConfig,
    pub(crate) host: Arc<H>,
    pub(crate) fs: Arc<F>,
    pub(crate) records: Arc<R>,
    pub(crate) crypt: Arc<C>,
    pub(crate) identities: Identities,
    pub(crate) locks: VolumeLocks,
    pub(crate) metrics: NodeMetrics,
    pub(crate) monitor: Arc<HealthMonitor>,
}

/// The node on this machine's kernel, filesystems, record files and
/// `cryptsetup`.
pub type LinuxNode = Node<Host, LinuxFilesystems, Records, LinuxCrypt>;

impl LinuxNode {
    /// The node of `config` on this machine: the NVMe host and filesystems
    /// under `config.host_root`, records under `config.state_dir`; reads or
    /// creates the host's NVMe identity. Call [`Node::start_up`] before
    /// taking calls.
    pub fn open(config: NodeConfig, metrics: NodeMetrics) -> Result<Self> {
        let identity = HostIdentity::load_or_create(&config.etc_nvme, &config.state_dir)?;
        let host = Host::new(config.host_root.clone());
        let fs = LinuxFilesystems::new(&config.host_root);
        let records = Records::new(config.state_dir.clone());
        let crypt = LinuxCrypt::new(&config.host_root);
        Node::new(config, host, fs, records, crypt, identity, metrics)
    }
}

impl<H: NvmeHost, F: Filesystems, R: RecordStore, C: Crypt> Node<H, F, R, C> {
    /// The node of `config` over the given seams; `identity` is the host's
    /// own NVMe identity, and the identity it attaches published volumes as
    /// follows from the node name (a node name that cannot make one is a
    /// configuration error).
    pub fn new(
        config: NodeConfig,
        host: H,
        fs: F,
        records: R,
        crypt: C,
        identity: HostIdentity,
        metrics: NodeMetrics,
    ) -> Result<Self> {
        if config.nqn_prefix.is_empty() {
            return Err(NodeError::Config(
                "the NQN prefix is empty, which would claim every NVMe connection of the host"
                    .into(),
            ));
        }
        let identities = Identities::new(identity, &config.nqn_prefix, &config.node_id)?;
        info!(
            hostnqn = %identities.own().nqn,
            attach_hostnqn = %identities.attach().nqn,
            "NVMe host identities: the host's own, and the one published volumes are attached as"
        );
        Ok(Self {
            host: Arc::new(host),
            fs: Arc::new(fs),
            records: Arc::new(records),
            crypt: Arc::new(crypt),
            identities,
            monitor: Arc::new(HealthMonitor::new(metrics.clone())),
            metrics,
            config,
            locks: VolumeLocks::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The node's host identities.
    pub fn identities(&self) -> &Identities {
        &self.identities
    }

    /// The node ID this node reports: the host NQN it attaches published
    /// volumes as.
    pub fn node_id(&self) -> &str {
        &self.identities.attach().nqn
    }

    /// The NVMe host seam.
    pub fn host(&self) -> &H {
        &self.host
    }

    /// The filesystems seam.
    pub fn filesystems(&self) -> &F {
        &self.fs
    }

    /// The staging records.
    pub fn records(&self) -> &R {
        &self.records
    }

    /// The encryption seam.
    pub fn crypt(&self) -> &C {
        &self.crypt
    }

    /// Start-up, before taking calls: learns what is staged and disconnects
    /// this driver's orphaned connections, within the configured time; never
    /// fails (see [`startup`]). Then takes the first health reading, so the
    /// gauges are right from the first scrape.
    pub async fn start_up(&self) -> StartupReport {
        let report = startup::start_up(
            &*self.host,
            &*self.fs,
            &*self.records,
            &*self.crypt,
            &self.identities.ours(),
            &self.config.nqn_prefix,
            self.config.timeouts.orphan_cleanup,
            &self.metrics,
        )
        .await;
        self.monitor
            .sweep(&*self.host, &*self.fs, &*self.records, &*self.crypt);
        report
    }

    /// Starts the health monitor, which runs until `stop` turns true.
    pub fn spawn_health_monitor(
        &self,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(Arc::clone(&self.monitor).run(
            Arc::clone(&self.host),
            Arc::clone(&self.fs),
            Arc::clone(&self.records),
            Arc::clone(&self.crypt),
            self.config.health_interval,
            self.identities.ours(),
            self.config.timeouts.disconnect,
            stop,
        ))
    }

    /// The mount at `path` now, if any.
    pub(crate) fn mounted(&self, path: &Path) -> Result<Option<MountInfo>> {
        let mounts = self.fs.mounts()?;
        Ok(node_fs::mountinfo::find(&mounts, path).cloned())
    }

    /// Unmounts everything stacked on `path` (a path mounted twice needs two
    /// unmounts), and fails if something is still mounted after that.
    pub(crate) async fn unmount_all(&self, path: &Path) -> Result<()> {
        const UNMOUNTS: usize = 8;
        for _ in 0..UNMOUNTS {
            if self.mounted(path)?.is_none() {
                return Ok(());
            }
            self.fs.unmount(path).await?;
        }
        Err(NodeError::StillMounted {
            path: path.to_path_buf(),
            unmounts: UNMOUNTS,
        })
    }

    /// Looks at a volume's health now (logging a change) and returns it.
    pub(crate) fn observe(&self, mounts: &[MountInfo], record: &StagingRecord) -> Observation {
        self.monitor
            .observe(&*self.host, &*self.crypt, mounts, record)
    }

    /// The block device a staged volume is used through now: its NQN's
    /// disk, or for an encrypted volume its mapping while that sits on a
    /// disk that is still there. Never a remembered name (the kernel reuses
    /// them).
    pub(crate) fn volume_device(
        &self,
        record: &StagingRecord,
    ) -> Result<Option<nvme_host::BlockDevice>> {
        crate::health::volume_device(&*self.host, &*self.crypt, record)
    }

    /// Fails with [`NodeError::NotAtPath`] unless `path` is absolute and
    /// exists: a request naming another path asks about a volume that is not
    /// there.
    pub(crate) fn check_at_path(&self, volume_id: &str, path: &Path) -> Result<()> {
        if path.is_absolute() && self.fs.exists(path) {
            return Ok(());
        }
        Err(NodeError::NotAtPath {
            volume: volume_id.to_owned(),
            path: path.to_path_buf(),
        })
    }

    /// Creates the directory `path` and its parents.
    pub(crate) async fn create_dir_all(&self, path: &Path) -> Result<()> {
        self.fs
            .create_dir_all(path)
            .await
            .map_err(|source| NodeError::Path {
                op: "creating",
                path: path.to_path_buf(),
                source,
            })
    }
}
