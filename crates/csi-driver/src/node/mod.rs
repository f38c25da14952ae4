//! The CSI Node service: attach a volume with the kernel's NVMe/TCP initiator,
//! format and mount it, publish it to pods, and take it all down again.
//!
//! Stage and unstage are asymmetric on purpose. Stage is forgiving: it may be
//! repeated at any point (after a crash, a timeout) and completes what is
//! missing — a connection that exists is reused (EALREADY), a filesystem that
//! exists is mounted, not made. Unstage is strict: it succeeds only once the
//! mount is gone and no controller of the volume's NQN is left in sysfs, because
//! reporting success while the kernel still holds the volume lets Kubernetes
//! attach it elsewhere, and two writers corrupt the filesystem (lesson 3).
//!
//! Formatting happens only on a positive "no signature" answer from the probe;
//! any probe error stops the stage (lesson 2).

pub mod health;
pub mod record;
pub mod startup;
mod stats;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use csi_proto::v1::node_server::Node;
use csi_proto::v1::node_service_capability::{self, rpc};
use csi_proto::v1::{self as csi};
use node_fs::format::Prepared;
use node_fs::probe::Probe;
use nvme_host::{BlockDevice, Connected, ConnectionConfig, Host, HostIdentity, RetryPolicy};
use telemetry::NodeMetrics;
use telemetry::metrics::OutcomeLabels;
use tokio::time::Instant;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::capability::{self, Access, Capability};
use crate::capacity::Bounds;
use crate::error::{DriverError, Result};
use crate::locks::VolumeLocks;
use crate::params::{FsType, VolumeContext};
use crate::rpc::call;
use health::HealthMonitor;
use record::{Records, StagingRecord};
pub use startup::StartupReport;

/// How long the node waits for each step.
#[derive(Debug, Clone, Copy)]
pub struct NodeTimeouts {
    /// Connecting, with retries, until the controller is up.
    pub connect: Duration,
    /// The block device appearing after the connect.
    pub device: Duration,
    /// The controllers being gone after a disconnect.
    pub disconnect: Duration,
    /// blkid.
    pub probe: Duration,
    /// mkfs.
    pub mkfs: Duration,
    /// resize2fs / xfs_growfs, and the device showing its new size.
    pub resize: Duration,
    /// The whole orphan cleanup at start-up; what is left then stays.
    pub orphan_cleanup: Duration,
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
        }
    }
}

/// The node's configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's name.
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

/// The Node service.
pub struct NodeService {
    config: NodeConfig,
    host: Host,
    identity: HostIdentity,
    records: Records,
    locks: VolumeLocks,
    metrics: NodeMetrics,
    monitor: Arc<HealthMonitor>,
}

impl NodeService {
    /// A node service recording into `metrics`; reads or creates the host's
    /// NVMe identity. Call [`NodeService::start_up`] before serving.
    pub fn new(config: NodeConfig, metrics: NodeMetrics) -> Result<Self> {
        let identity = HostIdentity::load_or_create(&config.etc_nvme, &config.state_dir)
            .map_err(|e| DriverError::FailedPrecondition(format!("NVMe host identity: {e}")))?;
        info!(hostnqn = %identity.nqn, "NVMe host identity");
        if config.nqn_prefix.is_empty() {
            return Err(DriverError::InvalidArgument(
                "the NQN prefix is empty, which would claim every NVMe connection of the host"
                    .into(),
            ));
        }
        Ok(Self {
            host: Host::new(config.host_root.clone()),
            records: Records::new(config.state_dir.clone()),
            identity,
            monitor: Arc::new(HealthMonitor::new(metrics.clone())),
            metrics,
            config,
            locks: VolumeLocks::default(),
        })
    }

    /// Start-up, before the socket takes calls: learns what is staged and
    /// disconnects this driver's orphaned connections, within the configured
    /// time; never fails (see [`startup`]). Then takes the first health
    /// reading, so the gauges are right from the first scrape.
    pub async fn start_up(&self) -> StartupReport {
        let report = startup::start_up(
            &self.host,
            &self.records,
            &self.proc_root(),
            &self.config.nqn_prefix,
            self.config.timeouts.orphan_cleanup,
            &self.metrics,
        )
        .await;
        self.monitor
            .sweep(&self.host, &self.proc_root(), &self.records);
        report
    }

    /// Starts the health monitor, which runs until `stop` turns true.
    pub fn spawn_health_monitor(
        &self,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(Arc::clone(&self.monitor).run(
            self.host.clone(),
            self.proc_root(),
            self.records.clone(),
            self.config.health_interval,
            stop,
        ))
    }

    /// The staging records, for start-up recovery.
    pub fn records(&self) -> &Records {
        &self.records
    }

    /// The host's NVMe view.
    pub fn host(&self) -> &Host {
        &self.host
    }

    fn proc_root(&self) -> PathBuf {
        self.config.host_root.join("proc")
    }

    fn sys_root(&self) -> PathBuf {
        self.config.host_root.join("sys")
    }

    fn is_mounted(&self, path: &Path) -> Result<Option<node_fs::mountinfo::MountInfo>> {
        let mounts = node_fs::mountinfo::read(&self.proc_root())?;
        Ok(node_fs::mountinfo::find(&mounts, path).cloned())
    }

    async fn stage(
        &self,
        req: csi::NodeStageVolumeRequest,
    ) -> Result<csi::NodeStageVolumeResponse> {
        let volume_id = required("volume ID", &req.volume_id)?;
        let staging = absolute("staging target path", &req.staging_target_path)?;
        let cap = capability_of(req.volume_capability.as_ref())?;
        let context = VolumeContext::from_map(&req.volume_context)?;
        let _guard = self.locks.try_lock(volume_id)?;

        let device = self.attach(&context).await?;

        let fs_type = match &cap.access {
            Access::Block => None,
            Access::Mount {
                fs_type,
                mount_flags,
            } => {
                let wanted = fs_type
                    .or(context.fs_type)
                    .unwrap_or(self.config.default_fs);
                let fs = self.ensure_filesystem(&device.path, wanted).await?;
                self.ensure_mounted(
                    &device,
                    &staging,
                    fs,
                    mount_flags,
                    cap.read_only(),
                    Earlier::Load(volume_id),
                )?;
                Some(fs)
            }
        };
        let record = StagingRecord {
            volume_id: volume_id.to_owned(),
            nqn: context.nqn.clone(),
            device: device.path,
            fs_type: fs_type.map(|f| f.to_string()),
            staging_path: staging,
            read_only: cap.read_only(),
            connection: Some(context.to_map().into_iter().collect()),
            diskseq: device.diskseq,
        };
        self.records
            .save(&record)
            .map_err(|e| DriverError::Internal(e.to_string()))?;
        // The health monitor picks the volume up at its next look; stage
        // time is what a pod start waits for.
        Ok(csi::NodeStageVolumeResponse {})
    }

    /// Looks at a volume's health now (logging a change) and returns it.
    fn observe(&self, record: &StagingRecord) -> health::Observation {
        let mounts = node_fs::mountinfo::read(&self.proc_root()).unwrap_or_default();
        self.monitor.observe(&self.host, &mounts, record)
    }

    /// Connects the volume's NQN (reusing a connection that exists) and waits
    /// for its block device.
    async fn attach(&self, context: &VolumeContext) -> Result<BlockDevice> {
        let connection = ConnectionConfig {
            traddr: context.nvme_address.clone(),
            trsvcid: context.nvme_port,
            nqn: context.nqn.clone(),
            host: self.identity.clone(),
            ctrl_loss_tmo: context.connection.ctrl_loss_tmo,
            reconnect_delay: Some(context.connection.reconnect_delay),
            keep_alive_tmo: context.connection.keep_alive_tmo,
            fast_io_fail_tmo: context.connection.fast_io_fail_tmo,
            nr_io_queues: None,
        };
        let retries = &self.metrics.nvme_connect_retries;
        let connected = self
            .host
            .connect_with_retry_observed(
                &connection,
                Instant::now() + self.config.timeouts.connect,
                RetryPolicy::default(),
                &|_| {
                    retries.inc();
                },
            )
            .await;
        let outcome = match &connected {
            Ok(Connected::New { .. }) => "connected",
            Ok(Connected::Already) => "already",
            Err(_) => "failed",
        };
        self.metrics
            .nvme_connects
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
        let connected = connected?;
        let device = self
            .host
            .wait_for_block_device(&context.nqn, Instant::now() + self.config.timeouts.device)
            .await?;
        info!(nqn = %context.nqn, device = %device.path.display(), ?connected, "connected");
        Ok(device)
    }

    /// Makes a filesystem only on a device the probe says is empty; an existing
    /// ext4 or xfs is kept, whatever was asked.
    async fn ensure_filesystem(&self, device: &Path, wanted: FsType) -> Result<FsType> {
        let prepared =
            node_fs::format::format_if_empty(device, to_node_fs(wanted), self.config.timeouts.mkfs)
                .await?;
        match prepared {
            Prepared::Formatted => {
                info!(device = %device.display(), fs = %wanted, "formatted an empty volume");
                Ok(wanted)
            }
            Prepared::Existing(Probe::Filesystem(found)) => match FsType::parse(&found) {
                Ok(fs) => {
                    if fs != wanted {
                        warn!(device = %device.display(), found = %fs, asked = %wanted, "keeping the existing filesystem");
                    }
                    Ok(fs)
                }
                Err(_) => Err(DriverError::FailedPrecondition(format!(
                    "{} holds a {found} filesystem, which this driver does not mount; refusing to format over it",
                    device.display()
                ))),
            },
            Prepared::Existing(what) => Err(DriverError::FailedPrecondition(format!(
                "{} holds {what}; refusing to format over it",
                device.display()
            ))),
        }
    }

    /// Mounts `device` at `staging` unless it is mounted there already. A
    /// mount there of the device this volume had before (`earlier` names it)
    /// is a dead filesystem left by a connection the kernel gave up on: it is
    /// unmounted and the volume's current device mounted instead. Any other
    /// mount there is refused.
    fn ensure_mounted(
        &self,
        device: &BlockDevice,
        staging: &Path,
        fs: FsType,
        flags: &[String],
        read_only: bool,
        earlier: Earlier<'_>,
    ) -> Result<()> {
        let mut options = flags.to_vec();
        if let Some(mount) = self.is_mounted(staging)? {
            // Only a staging path that is mounted already needs the record
            // of what was staged there.
            let loaded;
            let earlier = match earlier {
                Earlier::Known(r) => Some(r),
                Earlier::Load(volume_id) => {
                    loaded = self
                        .records
                        .load(volume_id, staging)
                        .map_err(|e| DriverError::Internal(e.to_string()))?;
                    loaded.as_ref()
                }
            };
            let stale = earlier.is_some_and(|r| health::is_stale_mount(&mount.source, device, r));
            if !stale && Path::new(&mount.source) == device.path {
                return Ok(());
            }
            if !stale {
                return Err(DriverError::FailedPrecondition(format!(
                    "{} is already a mount of {}, not of {}",
                    staging.display(),
                    mount.source,
                    device.path.display()
                )));
            }
            warn!(
                staging = %staging.display(),
                old = %mount.source,
                new = %device.path.display(),
                "the staging mount is of the volume's old device, whose connection is gone; mounting its current device instead"
            );
            self.unmount_all(staging)?;
            // Pods may still hold the old, dead mount; xfs refuses a second
            // mount of the same filesystem UUID unless told.
            if fs == FsType::Xfs && !options.iter().any(|o| o == "nouuid") {
                options.push("nouuid".into());
            }
        }
        std::fs::create_dir_all(staging).map_err(|e| io_error("creating", staging, e))?;
        node_fs::mount::mount(&device.path, staging, to_node_fs(fs), &options, read_only)?;
        Ok(())
    }

    /// Unmounts everything stacked on `path` (a path mounted twice needs two
    /// unmounts), and fails if something is still mounted after that.
    fn unmount_all(&self, path: &Path) -> Result<()> {
        for _ in 0..8 {
            if self.is_mounted(path)?.is_none() {
                return Ok(());
            }
            node_fs::mount::unmount(path)?;
        }
        Err(DriverError::Internal(format!(
            "{} is still mounted after 8 unmounts",
            path.display()
        )))
    }

    async fn unstage(
        &self,
        req: csi::NodeUnstageVolumeRequest,
    ) -> Result<csi::NodeUnstageVolumeResponse> {
        let volume_id = required("volume ID", &req.volume_id)?;
        let staging = absolute("staging target path", &req.staging_target_path)?;
        let _guard = self.locks.try_lock(volume_id)?;
        let record = self
            .records
            .load(volume_id, &staging)
            .map_err(|e| DriverError::Internal(e.to_string()))?;
        self.unmount_all(&staging)?;
        let Some(record) = record else {
            info!("no staging record: already unstaged");
            return Ok(csi::NodeUnstageVolumeResponse {});
        };
        self.host
            .disconnect_and_wait(
                &record.nqn,
                Instant::now() + self.config.timeouts.disconnect,
            )
            .await?;
        self.records
            .remove(volume_id, &staging)
            .map_err(|e| DriverError::Internal(e.to_string()))?;
        self.monitor.forget(volume_id);
        info!(nqn = %record.nqn, "unstaged and disconnected");
        Ok(csi::NodeUnstageVolumeResponse {})
    }

    async fn publish(
        &self,
        req: csi::NodePublishVolumeRequest,
    ) -> Result<csi::NodePublishVolumeResponse> {
        let volume_id = required("volume ID", &req.volume_id)?;
        let target = absolute("target path", &req.target_path)?;
        let staging = absolute("staging target path", &req.staging_target_path)?;
        let cap = capability_of(req.volume_capability.as_ref())?;
        let read_only = req.readonly || cap.read_only();
        let _guard = self.locks.try_lock(volume_id)?;
        let record = self
            .records
            .load(volume_id, &staging)
            .map_err(|e| DriverError::Internal(e.to_string()))?
            .ok_or_else(|| {
                DriverError::FailedPrecondition(format!(
                    "volume {volume_id} is not staged at {}",
                    staging.display()
                ))
            })?;
        let record = self
            .reattach_if_gone(record, &req.volume_context, &cap)
            .await?;
        let source = match cap.access {
            Access::Block => {
                let device = self.current_device(&record)?;
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io_error("creating", parent, e))?;
                }
                if !target.exists() {
                    std::fs::File::create(&target).map_err(|e| io_error("creating", &target, e))?;
                }
                device
            }
            Access::Mount { .. } => {
                if self.is_mounted(&staging)?.is_none() {
                    return Err(DriverError::FailedPrecondition(format!(
                        "volume {volume_id} is not mounted at its staging path {}; stage it again",
                        staging.display()
                    )));
                }
                std::fs::create_dir_all(&target).map_err(|e| io_error("creating", &target, e))?;
                staging
            }
        };
        if let Some(mount) = self.is_mounted(&target)? {
            if mount.read_only() == read_only {
                return Ok(csi::NodePublishVolumeResponse {});
            }
            return Err(DriverError::AlreadyExists(format!(
                "{} is already published {}",
                target.display(),
                if mount.read_only() {
                    "read-only"
                } else {
                    "read-write"
                }
            )));
        }
        node_fs::mount::bind(&source, &target, read_only)?;
        Ok(csi::NodePublishVolumeResponse {})
    }

    /// Publish's recovery: when the staged volume's NQN has no block device
    /// (the kernel gave up on its controller, or the node lost it), connects
    /// again with the publish request's volume context (or the one it was
    /// staged with), mounts the new device at the staging path in place of
    /// the dead one, and updates the record. A volume whose controller is
    /// only reconnecting keeps its device and is left alone.
    async fn reattach_if_gone(
        &self,
        record: StagingRecord,
        request_context: &HashMap<String, String>,
        cap: &Capability,
    ) -> Result<StagingRecord> {
        if self.host.block_device(&record.nqn)?.is_some() || self.staging_mount_alive(&record)? {
            return Ok(record);
        }
        let context = if request_context.is_empty() {
            let saved = record.connection.clone().ok_or_else(|| {
                DriverError::Unavailable(format!(
                    "volume {}'s NVMe/TCP connection ({}) is gone, and neither the request nor its staging record says how to connect; stage it again",
                    record.volume_id, record.nqn
                ))
            })?;
            VolumeContext::from_map(&saved.into_iter().collect())?
        } else {
            VolumeContext::from_map(request_context)?
        };
        if context.nqn != record.nqn {
            return Err(DriverError::InvalidArgument(format!(
                "the volume context names {}, but volume {} was staged from {}",
                context.nqn, record.volume_id, record.nqn
            )));
        }
        warn!(nqn = %record.nqn, "the staged volume's NVMe/TCP connection is gone; connecting again");
        let device = self.attach(&context).await?;
        if let Some(fs) = record.fs_type.as_deref() {
            let fs = FsType::parse(fs)?;
            let flags = match &cap.access {
                Access::Mount { mount_flags, .. } => mount_flags.clone(),
                Access::Block => Vec::new(),
            };
            self.ensure_mounted(
                &device,
                &record.staging_path,
                fs,
                &flags,
                record.read_only,
                Earlier::Known(&record),
            )?;
        }
        let record = StagingRecord {
            device: device.path,
            diskseq: device.diskseq,
            ..record
        };
        self.records
            .save(&record)
            .map_err(|e| DriverError::Internal(e.to_string()))?;
        self.observe(&record);
        info!(nqn = %record.nqn, device = %record.device.display(), "reconnected");
        Ok(record)
    }

    /// Whether a filesystem volume's staging path is still a mount of the
    /// disk it was staged on (same disk sequence number, or, without one, a
    /// block device of that name still exists).
    fn staging_mount_alive(&self, record: &StagingRecord) -> Result<bool> {
        if record.fs_type.is_none() {
            return Ok(false);
        }
        let Some(mount) = self.is_mounted(&record.staging_path)? else {
            return Ok(false);
        };
        if Path::new(&mount.source) != record.device {
            return Ok(false);
        }
        let Some(name) = record.device.file_name() else {
            return Ok(false);
        };
        let dir = self.sys_root().join("class/block").join(name);
        Ok(match record.diskseq {
            Some(then) => {
                std::fs::read_to_string(dir.join("diskseq"))
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    == Some(then)
            }
            None => dir.exists(),
        })
    }

    /// The volume's block device now: the recorded one if it still belongs to
    /// the NQN, else whatever the NQN resolves to after a reconnect.
    fn current_device(&self, record: &StagingRecord) -> Result<PathBuf> {
        match self.host.block_device(&record.nqn)? {
            Some(device) => Ok(device.path),
            None => Err(DriverError::Unavailable(format!(
                "volume {} has no block device: its NVMe/TCP connection ({}) is down",
                record.volume_id, record.nqn
            ))),
        }
    }

    async fn unpublish(
        &self,
        req: csi::NodeUnpublishVolumeRequest,
    ) -> Result<csi::NodeUnpublishVolumeResponse> {
        let volume_id = required("volume ID", &req.volume_id)?;
        let target = absolute("target path", &req.target_path)?;
        let _guard = self.locks.try_lock(volume_id)?;
        self.unmount_all(&target)?;
        let removed = match std::fs::symlink_metadata(&target) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir(&target),
            Ok(_) => std::fs::remove_file(&target),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        removed.map_err(|e| io_error("removing", &target, e))?;
        Ok(csi::NodeUnpublishVolumeResponse {})
    }

    async fn expand(
        &self,
        req: csi::NodeExpandVolumeRequest,
    ) -> Result<csi::NodeExpandVolumeResponse> {
        let volume_id = required("volume ID", &req.volume_id)?;
        let volume_path = absolute("volume path", &req.volume_path)?;
        let bounds = Bounds::of(req.capacity_range.as_ref())?;
        let _guard = self.locks.try_lock(volume_id)?;
        let record = match req.staging_target_path.as_str() {
            "" => self.records.load_indexed(volume_id),
            staging => self.records.load(volume_id, Path::new(staging)),
        }
        .map_err(|e| DriverError::Internal(e.to_string()))?
        .ok_or_else(|| DriverError::VolumeNotFound(volume_id.to_owned()))?;
        // The RDS grew the image; the kernel learns of it by a rescan.
        self.host.rescan(&record.nqn)?;
        let deadline = Instant::now() + self.config.timeouts.resize;
        let device = loop {
            let device = self.host.block_device(&record.nqn)?.ok_or_else(|| {
                DriverError::Unavailable(format!(
                    "volume {volume_id}'s NVMe/TCP connection is down"
                ))
            })?;
            if device.size_bytes >= bounds.required || Instant::now() >= deadline {
                break device;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        if device.size_bytes < bounds.required {
            return Err(DriverError::Unavailable(format!(
                "the device of volume {volume_id} is still {} bytes after a rescan, not the {} asked for",
                device.size_bytes, bounds.required
            )));
        }
        if let Some(fs) = record.fs_type.as_deref() {
            let fs = FsType::parse(fs)?;
            node_fs::resize::grow(
                to_node_fs(fs),
                &device.path,
                &volume_path,
                self.config.timeouts.resize,
            )
            .await?;
        }
        Ok(csi::NodeExpandVolumeResponse {
            capacity_bytes: i64::try_from(device.size_bytes).unwrap_or(i64::MAX),
        })
    }

    async fn volume_stats(
        &self,
        req: csi::NodeGetVolumeStatsRequest,
    ) -> Result<csi::NodeGetVolumeStatsResponse> {
        let volume_id = required("volume ID", &req.volume_id)?;
        let volume_path = absolute("volume path", &req.volume_path)?;
        if !volume_path.exists() {
            return Err(DriverError::VolumeNotFound(format!(
                "{volume_id} at {}",
                volume_path.display()
            )));
        }
        let record = self
            .records
            .load_indexed(volume_id)
            .map_err(|e| DriverError::Internal(e.to_string()))?;
        stats::volume_stats(self, volume_id, &volume_path, record.as_ref())
    }
}

fn to_node_fs(fs: FsType) -> node_fs::FsType {
    match fs {
        FsType::Ext4 => node_fs::FsType::Ext4,
        FsType::Xfs => node_fs::FsType::Xfs,
    }
}

fn required<'a>(what: &str, value: &'a str) -> Result<&'a str> {
    if value.is_empty() {
        return Err(DriverError::InvalidArgument(format!("{what} is required")));
    }
    Ok(value)
}

fn absolute(what: &str, value: &str) -> Result<PathBuf> {
    let value = required(what, value)?;
    let path = PathBuf::from(value);
    if !path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(DriverError::InvalidArgument(format!(
            "{what} {value:?} must be an absolute path without '..'"
        )));
    }
    Ok(path)
}

fn capability_of(cap: Option<&csi::VolumeCapability>) -> Result<Capability> {
    let cap =
        cap.ok_or_else(|| DriverError::InvalidArgument("volume capability is required".into()))?;
    capability::check(cap).map_err(DriverError::InvalidArgument)
}

fn io_error(doing: &str, path: &Path, e: std::io::Error) -> DriverError {
    DriverError::Internal(format!("{doing} {}: {e}", path.display()))
}

/// What was staged at a staging path before, for telling a stale mount there.
enum Earlier<'a> {
    /// Known to the caller.
    Known(&'a StagingRecord),
    /// To be read from the records of this volume, if needed.
    Load(&'a str),
}

/// The node capabilities this service implements.
pub const CAPABILITIES: &[rpc::Type] = &[
    rpc::Type::StageUnstageVolume,
    rpc::Type::ExpandVolume,
    rpc::Type::GetVolumeStats,
    rpc::Type::VolumeCondition,
    rpc::Type::SingleNodeMultiWriter,
];

#[tonic::async_trait]
impl Node for NodeService {
    async fn node_stage_volume(
        &self,
        request: Request<csi::NodeStageVolumeRequest>,
    ) -> std::result::Result<Response<csi::NodeStageVolumeResponse>, Status> {
        let req = request.into_inner();
        let volume = req.volume_id.clone();
        call("NodeStageVolume", &volume, self.stage(req)).await
    }

    async fn node_unstage_volume(
        &self,
        request: Request<csi::NodeUnstageVolumeRequest>,
    ) -> std::result::Result<Response<csi::NodeUnstageVolumeResponse>, Status> {
        let req = request.into_inner();
        let volume = req.volume_id.clone();
        call("NodeUnstageVolume", &volume, self.unstage(req)).await
    }

    async fn node_publish_volume(
        &self,
        request: Request<csi::NodePublishVolumeRequest>,
    ) -> std::result::Result<Response<csi::NodePublishVolumeResponse>, Status> {
        let req = request.into_inner();
        let volume = req.volume_id.clone();
        call("NodePublishVolume", &volume, self.publish(req)).await
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<csi::NodeUnpublishVolumeRequest>,
    ) -> std::result::Result<Response<csi::NodeUnpublishVolumeResponse>, Status> {
        let req = request.into_inner();
        let volume = req.volume_id.clone();
        call("NodeUnpublishVolume", &volume, self.unpublish(req)).await
    }

    async fn node_get_volume_stats(
        &self,
        request: Request<csi::NodeGetVolumeStatsRequest>,
    ) -> std::result::Result<Response<csi::NodeGetVolumeStatsResponse>, Status> {
        let req = request.into_inner();
        let volume = req.volume_id.clone();
        call("NodeGetVolumeStats", &volume, self.volume_stats(req)).await
    }

    async fn node_expand_volume(
        &self,
        request: Request<csi::NodeExpandVolumeRequest>,
    ) -> std::result::Result<Response<csi::NodeExpandVolumeResponse>, Status> {
        let req = request.into_inner();
        let volume = req.volume_id.clone();
        call("NodeExpandVolume", &volume, self.expand(req)).await
    }

    async fn node_get_capabilities(
        &self,
        _request: Request<csi::NodeGetCapabilitiesRequest>,
    ) -> std::result::Result<Response<csi::NodeGetCapabilitiesResponse>, Status> {
        call("NodeGetCapabilities", "", async {
            Ok(csi::NodeGetCapabilitiesResponse {
                capabilities: CAPABILITIES
                    .iter()
                    .map(|&t| csi::NodeServiceCapability {
                        r#type: Some(node_service_capability::Type::Rpc(
                            node_service_capability::Rpc { r#type: t as i32 },
                        )),
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn node_get_info(
        &self,
        _request: Request<csi::NodeGetInfoRequest>,
    ) -> std::result::Result<Response<csi::NodeGetInfoResponse>, Status> {
        call("NodeGetInfo", "", async {
            Ok(csi::NodeGetInfoResponse {
                node_id: self.config.node_id.clone(),
                max_volumes_per_node: self.config.max_volumes,
                accessible_topology: None,
            })
        })
        .await
    }
}
