//! NodeStageVolume: connect, and for a filesystem volume make the filesystem
//! (only on a positive "empty") and mount it at the staging path; then write
//! the staging record.
//!
//! The stage is a short pipeline of steps, each a method here that takes what
//! the one before produced and may be repeated after a crash at any point:
//!
//! - block volume: [`Node::attach`] → [`Node::record_stage`];
//! - filesystem volume: [`Node::attach`] → [`Node::ensure_filesystem`] →
//!   [`Node::ensure_mounted`] → [`Node::ensure_grown`] (a filesystem smaller
//!   than its device, as a restore or clone to a larger size leaves it, is
//!   grown: [`crate::stage_growth`]) → [`Node::record_stage`].
//!
//! The host identity the volume is connected as is the one ControllerPublish
//! handed over in the publish context ([`crate::fence`]), chosen before
//! anything else is done, and kept in the record. Where the next features
//! go: an encrypted volume
//! opens its mapping between `attach` and `ensure_filesystem`, which then
//! work on the mapping's device (and unstage closes it before the
//! disconnect).

use std::path::Path;

use node_fs::format::Prepared;
use node_fs::probe::Probe;
use nvme_host::{BlockDevice, Connected, ConnectionConfig, HostIdentity};
use telemetry::metrics::OutcomeLabels;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::context::{FsType, VolumeContext};
use crate::error::{NodeError, Result};
use crate::fs::Filesystems;
use crate::health;
use crate::node::Node;
use crate::nvme::NvmeHost;
use crate::record::{RecordStore, StagingRecord};
use crate::request::{StageRequest, VolumeKind};

/// What was staged at a staging path before, for telling a stale mount there.
pub(crate) enum Earlier<'a> {
    /// Known to the caller.
    Known(&'a StagingRecord),
    /// To be read from the records of this volume, if needed.
    Load(&'a str),
}

impl<H: NvmeHost, F: Filesystems, R: RecordStore> Node<H, F, R> {
    /// Stages a volume: see the module documentation. Repeating a stage that
    /// succeeded, or one that stopped anywhere, completes what is missing.
    pub async fn stage(&self, req: StageRequest) -> Result<()> {
        let _guard = self.locks.try_lock(&req.volume_id)?;
        match &req.capability.kind {
            VolumeKind::Block => self.stage_block(&req).await,
            VolumeKind::Filesystem {
                fs_type,
                mount_flags,
            } => {
                let wanted = fs_type
                    .or(req.context.fs_type)
                    .unwrap_or(self.config.default_fs);
                self.stage_filesystem(&req, wanted, mount_flags).await
            }
        }
        // The health monitor picks the volume up at its next look; stage
        // time is what a pod start waits for.
    }

    /// A block volume: connected, and recorded.
    async fn stage_block(&self, req: &StageRequest) -> Result<()> {
        let host = self.host_for(req)?;
        let device = self.attach(&req.context, &host).await?;
        self.record_stage(req, &host, &device, None).await
    }

    /// The identity to connect the volume of `req` as.
    fn host_for(&self, req: &StageRequest) -> Result<HostIdentity> {
        let chosen = self
            .identities
            .for_volume(&req.volume_id, &req.publish_context)?;
        Ok(chosen.identity().clone())
    }

    /// A filesystem volume: connected, its filesystem made if it is empty,
    /// mounted at the staging path, and recorded.
    async fn stage_filesystem(
        &self,
        req: &StageRequest,
        wanted: FsType,
        mount_flags: &[String],
    ) -> Result<()> {
        let host = self.host_for(req)?;
        let device = self.attach(&req.context, &host).await?;
        let fs = self.ensure_filesystem(&device.path, wanted).await?;
        self.ensure_mounted(
            &device,
            &req.staging_path,
            fs,
            mount_flags,
            req.capability.read_only,
            Earlier::Load(&req.volume_id),
        )
        .await?;
        self.ensure_grown(&device, &req.staging_path, fs, req.capability.read_only)
            .await?;
        self.record_stage(req, &host, &device, Some(fs)).await
    }

    /// How to connect the volume of `context`, as `host`.
    pub(crate) fn connection_for(
        &self,
        context: &VolumeContext,
        host: &HostIdentity,
    ) -> ConnectionConfig {
        ConnectionConfig {
            traddr: context.nvme_address.clone(),
            trsvcid: context.nvme_port,
            nqn: context.nqn.clone(),
            host: host.clone(),
            ctrl_loss_tmo: context.connection.ctrl_loss_tmo,
            reconnect_delay: Some(context.connection.reconnect_delay),
            keep_alive_tmo: context.connection.keep_alive_tmo,
            fast_io_fail_tmo: context.connection.fast_io_fail_tmo,
            nr_io_queues: None,
        }
    }

    /// Connects the volume's NQN as `host` (reusing a connection that
    /// exists) and waits for its block device.
    pub(crate) async fn attach(
        &self,
        context: &VolumeContext,
        host: &HostIdentity,
    ) -> Result<BlockDevice> {
        let connection = self.connection_for(context, host);
        let retries = &self.metrics.nvme_connect_retries;
        let connected = self
            .host
            .connect(
                &connection,
                Instant::now() + self.config.timeouts.connect,
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
        info!(nqn = %context.nqn, hostnqn = %host.nqn, device = %device.path.display(), ?connected, "connected");
        Ok(device)
    }

    /// The filesystem on `device`: an existing ext4 or xfs is kept, whatever
    /// was asked; an empty device (a positive answer of the probe) gets
    /// `wanted`; anything else, and any probe error, stops the stage.
    async fn ensure_filesystem(&self, device: &Path, wanted: FsType) -> Result<FsType> {
        let found = self.fs.probe(device, self.config.timeouts.probe).await?;
        if found != Probe::Empty {
            return keep_existing(device, found, wanted);
        }
        match self
            .fs
            .make_filesystem(device, wanted.into(), self.config.timeouts.mkfs)
            .await?
        {
            Prepared::Formatted => {
                info!(device = %device.display(), fs = %wanted, "formatted an empty volume");
                Ok(wanted)
            }
            // Written to between the two looks: judged as found.
            Prepared::Existing(found) => keep_existing(device, found, wanted),
        }
    }

    /// Mounts `device` at `staging` unless it is mounted there already. A
    /// mount there of the device this volume had before (`earlier` names it;
    /// without a record, of a disk that is gone) is a dead filesystem left by
    /// a connection the kernel gave up on: it is unmounted and the volume's
    /// current device mounted instead. Any other mount there is refused.
    pub(crate) async fn ensure_mounted(
        &self,
        device: &BlockDevice,
        staging: &Path,
        fs: FsType,
        flags: &[String],
        read_only: bool,
        earlier: Earlier<'_>,
    ) -> Result<()> {
        let mut options = flags.to_vec();
        // XFS refuses to mount a second filesystem with the UUID of one
        // mounted already, and a volume restored from a snapshot or cloned
        // holds its source's filesystem, UUID and all (as does this
        // volume's own dead mount after a lost connection, which pods may
        // still hold). `nouuid` lifts only that check.
        if fs == FsType::Xfs && !options.iter().any(|o| o == "nouuid") {
            options.push("nouuid".into());
        }
        if let Some(mount) = self.mounted(staging)? {
            // Only a staging path that is mounted already needs the record
            // of what was staged there.
            let loaded;
            let earlier = match earlier {
                Earlier::Known(r) => Some(r),
                Earlier::Load(volume_id) => {
                    loaded = self.records.load(volume_id, staging)?;
                    loaded.as_ref()
                }
            };
            let stale = match earlier {
                Some(r) => health::is_stale_mount(&mount.source, device, r),
                // No record at this path (a stage that stopped before
                // writing it): a mount there of a disk that no longer exists
                // is a dead one of this volume's, since the path is its own.
                None => Path::new(&mount.source) != device.path && self.is_gone(&mount.source),
            };
            if !stale && Path::new(&mount.source) == device.path {
                return Ok(());
            }
            if !stale {
                return Err(NodeError::StagingOccupied {
                    staging: staging.to_path_buf(),
                    mounted: mount.source,
                    device: device.path.clone(),
                });
            }
            warn!(
                staging = %staging.display(),
                old = %mount.source,
                new = %device.path.display(),
                "the staging mount is of the volume's old device, whose connection is gone; mounting its current device instead"
            );
            self.unmount_all(staging).await?;
        }
        self.create_dir_all(staging).await?;
        self.fs
            .mount(&device.path, staging, fs.into(), &options, read_only)
            .await?;
        Ok(())
    }

    /// Whether a mount's `source` is a device node whose block device no
    /// longer exists.
    fn is_gone(&self, source: &str) -> bool {
        source.starts_with("/dev/") && !self.fs.block_device_exists(Path::new(source))
    }

    /// Writes the staging record: what unstage, publish, stats and start-up
    /// read later.
    async fn record_stage(
        &self,
        req: &StageRequest,
        host: &HostIdentity,
        device: &BlockDevice,
        fs: Option<FsType>,
    ) -> Result<()> {
        let record = StagingRecord {
            volume_id: req.volume_id.clone(),
            nqn: req.context.nqn.clone(),
            device: device.path.clone(),
            fs_type: fs.map(|f| f.to_string()),
            staging_path: req.staging_path.clone(),
            read_only: req.capability.read_only,
            connection: Some(req.context.to_map().into_iter().collect()),
            diskseq: device.diskseq,
            host: Some(host.into()),
        };
        self.records.save(&record).await?;
        Ok(())
    }
}

/// The filesystem a probe found on `device`, if this driver mounts it; a
/// refusal to format otherwise.
fn keep_existing(device: &Path, found: Probe, wanted: FsType) -> Result<FsType> {
    let refuse = |found| NodeError::RefusedToFormat {
        device: device.to_path_buf(),
        found,
    };
    let Probe::Filesystem(name) = &found else {
        return Err(refuse(found));
    };
    match FsType::parse(name) {
        Ok(fs) => {
            if fs != wanted {
                warn!(device = %device.display(), found = %fs, asked = %wanted, "keeping the existing filesystem");
            }
            Ok(fs)
        }
        Err(_) => Err(refuse(found)),
    }
}
