//! NodeStageVolume: connect, open an encrypted volume's LUKS2 mapping, and
//! for a filesystem volume make the filesystem (only on a positive "empty")
//! and mount it at the staging path; then write the staging record.
//!
//! The stage is a short pipeline of steps, each a method here that takes what
//! the one before produced and may be repeated after a crash at any point:
//!
//! - block volume: [`Node::attach`] → [`Node::record_stage`];
//! - filesystem volume: [`Node::attach`] → [`Node::ensure_filesystem`] →
//!   [`Node::ensure_mounted`] → [`Node::ensure_grown`] (a filesystem smaller
//!   than its device, as a restore or clone to a larger size leaves it, is
//!   grown: [`crate::stage_growth`]) → [`Node::record_stage`];
//! - an encrypted volume (`encryption=luks2` in its context) takes
//!   [`Node::ensure_open`] after `attach`: the disk gets a LUKS2 header only
//!   on the same positive "empty" that guards plain volumes, is opened with
//!   the node-stage secret's passphrase, and every later step works on the
//!   mapping's device; a volume the header calls new gets its filesystem
//!   by [`Node::filesystem_on_fresh`], and is then labelled in use
//!   ([`Node::mark_in_use`]).
//!
//! A volume that holds a LUKS header is never mounted or formatted in the
//! clear: a filesystem stage without `encryption=luks2` refuses it. (A plain
//! block volume is handed out as it is, whatever it holds: a workload may
//! run its own encryption inside.) A volume staged with `encryption=luks2`
//! that holds anything but a LUKS header is refused too.
//!
//! The host identity the volume is connected as is the one ControllerPublish
//! handed over in the publish context ([`crate::fence`]), chosen before
//! anything else is done, and kept in the record.

use std::path::Path;

use node_fs::format::Prepared;
use node_fs::probe::Probe;
use node_fs::secret::Passphrase;
use nvme_host::{BlockDevice, Connected, ConnectionConfig, HostIdentity};
use telemetry::metrics::OutcomeLabels;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::context::{FsType, VolumeContext};
use crate::crypt::{self, Crypt, CryptError, Mapping};
use crate::error::{NodeError, Result};
use crate::fs::Filesystems;
use crate::health;
use crate::node::Node;
use crate::nvme::NvmeHost;
use crate::record::{RecordStore, StagingRecord};
use crate::request::{StageRequest, VolumeKeys, VolumeKind, secret_keys};

/// What was staged at a staging path before, for telling a stale mount there.
pub(crate) enum Earlier<'a> {
    /// Known to the caller.
    Known(&'a StagingRecord),
    /// To be read from the records of this volume, if needed.
    Load(&'a str),
}

/// An encrypted volume's open mapping, as [`Node::ensure_open`] leaves it.
pub(crate) struct Opened {
    /// The mapping's block device (`/dev/dm-N`).
    pub(crate) device: BlockDevice,
    /// The mapping's name.
    pub(crate) name: String,
    /// Whether the header says the volume was never handed out.
    pub(crate) fresh: bool,
}

/// Which request's secret a key comes from, for messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeySource {
    /// The request.
    pub(crate) request: &'static str,
    /// The secret kubelet sends with it.
    pub(crate) secret: &'static str,
}

/// NodeStageVolume's node-stage secret.
pub(crate) const STAGE_SECRET: KeySource = KeySource {
    request: "NodeStageVolume",
    secret: "node-stage",
};

impl<H: NvmeHost, F: Filesystems, R: RecordStore, C: Crypt> Node<H, F, R, C> {
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

    /// A block volume: connected (and opened, if encrypted), and recorded.
    async fn stage_block(&self, req: &StageRequest) -> Result<()> {
        let host = self.host_for(req)?;
        let disk = self.attach(&req.context, &host).await?;
        if req.context.encryption.is_none() {
            return self.record_stage(req, &host, &disk, None, None).await;
        }
        let opened = self
            .ensure_open(
                &req.volume_id,
                &req.staging_path,
                &disk,
                &req.keys,
                STAGE_SECRET,
            )
            .await?;
        if opened.fresh {
            self.mark_in_use(&req.volume_id, &disk).await?;
        }
        self.record_stage(req, &host, &opened.device, None, Some(opened.name))
            .await
    }

    /// The identity to connect the volume of `req` as.
    fn host_for(&self, req: &StageRequest) -> Result<HostIdentity> {
        let chosen = self
            .identities
            .for_volume(&req.volume_id, &req.publish_context)?;
        Ok(chosen.identity().clone())
    }

    /// A filesystem volume: connected (and opened, if encrypted), its
    /// filesystem made if it is empty, mounted at the staging path, and
    /// recorded.
    async fn stage_filesystem(
        &self,
        req: &StageRequest,
        wanted: FsType,
        mount_flags: &[String],
    ) -> Result<()> {
        let host = self.host_for(req)?;
        let disk = self.attach(&req.context, &host).await?;
        let (device, fs, mapping) = if req.context.encryption.is_none() {
            let fs = self
                .ensure_filesystem(&disk.path, wanted)
                .await
                .map_err(|e| match e {
                    NodeError::RefusedToFormat {
                        device,
                        found: Probe::Luks { .. },
                    } => NodeError::EncryptedWithoutParameter {
                        volume: req.volume_id.clone(),
                        device,
                    },
                    e => e,
                })?;
            (disk, fs, None)
        } else {
            let opened = self
                .ensure_open(
                    &req.volume_id,
                    &req.staging_path,
                    &disk,
                    &req.keys,
                    STAGE_SECRET,
                )
                .await?;
            let fs = if opened.fresh {
                let fs = self
                    .filesystem_on_fresh(&opened.device.path, wanted)
                    .await?;
                self.mark_in_use(&req.volume_id, &disk).await?;
                fs
            } else {
                self.ensure_filesystem(&opened.device.path, wanted).await?
            };
            (opened.device, fs, Some(opened.name))
        };
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
        self.record_stage(req, &host, &device, Some(fs), mapping)
            .await
    }

    /// Opens the encrypted volume on `disk` as its mapping, giving the disk a
    /// LUKS2 header first if it is positively empty; a mapping already open
    /// on the disk (an earlier stage) is kept. A mapping of the volume's
    /// name on a disk that is gone (the kernel gave up on the connection) is
    /// closed first, after unmounting its dead filesystem from `staging`;
    /// while pods still hold it, that fails and the stage is to be repeated.
    /// A disk that holds anything but a LUKS header, and any probe error,
    /// stop the stage; so does a passphrase no key slot takes, unless the
    /// secret's previous passphrase opens the volume, which then gets the new
    /// one added (key rotation).
    pub(crate) async fn ensure_open(
        &self,
        volume_id: &str,
        staging: &Path,
        disk: &BlockDevice,
        keys: &VolumeKeys,
        source: KeySource,
    ) -> Result<Opened> {
        let name = crypt::mapping_name(volume_id).map_err(|e| NodeError::BadArgument {
            what: "volume ID",
            problem: format!("cannot name the volume's encrypted mapping: {e}"),
        })?;
        let key = keys.current.as_ref().ok_or(NodeError::MissingKey {
            volume: volume_id.to_owned(),
            request: source.request,
            secret: source.secret,
            key: secret_keys::PASSPHRASE,
            why: "",
        })?;
        let existing = self.crypt.mapping(&name)?;
        let open = match existing {
            Some(m) if m.is_on(disk) && m.is_ours() => true,
            Some(m) => {
                self.close_stale_mapping(volume_id, &m, disk, staging)
                    .await?;
                false
            }
            None => false,
        };
        let fresh = match self
            .fs
            .probe(&disk.path, self.config.timeouts.probe)
            .await?
        {
            Probe::Luks { label } => label.as_deref() == Some(crypt::LABEL_NEW),
            Probe::Empty if !open => {
                self.crypt
                    .format(
                        &disk.path,
                        key,
                        crypt::LABEL_NEW,
                        self.config.timeouts.crypt,
                    )
                    .await?;
                info!(device = %disk.path.display(), "gave an empty volume a LUKS2 header");
                true
            }
            found => {
                return Err(NodeError::NotEncrypted {
                    volume: volume_id.to_owned(),
                    device: disk.path.clone(),
                    found,
                });
            }
        };
        if !open {
            self.open_with(volume_id, disk, &name, keys, key, source)
                .await?;
        }
        let mapping = self
            .crypt
            .mapping(&name)?
            .filter(|m| m.is_on(disk))
            .ok_or_else(|| NodeError::MappingStillOpen {
                mapping: name.clone(),
            })?;
        info!(mapping = %name, device = %mapping.device.path.display(), fresh, "encrypted volume open");
        Ok(Opened {
            device: mapping.device,
            name,
            fresh,
        })
    }

    /// Opens `disk` as `name` with `key`; a key no slot takes is tried
    /// again after adding it with the previous passphrase, if the secret
    /// has one that a slot takes.
    async fn open_with(
        &self,
        volume_id: &str,
        disk: &BlockDevice,
        name: &str,
        keys: &VolumeKeys,
        key: &Passphrase,
        source: KeySource,
    ) -> Result<()> {
        let timeout = self.config.timeouts.crypt;
        let wrong = |previous| NodeError::WrongKey {
            volume: volume_id.to_owned(),
            secret: source.secret,
            key: secret_keys::PASSPHRASE,
            previous,
        };
        match self.crypt.open(&disk.path, name, key, timeout).await {
            Err(CryptError::WrongKey { .. }) => {}
            other => return Ok(other?),
        }
        let Some(previous) = &keys.previous else {
            return Err(wrong(""));
        };
        match self.crypt.add_key(&disk.path, previous, key, timeout).await {
            Ok(()) => {}
            Err(CryptError::WrongKey { .. }) => {
                return Err(wrong(", nor its `previousEncryptionPassphrase`"));
            }
            Err(e) => return Err(e.into()),
        }
        info!(
            mapping = name,
            "the secret's passphrase was added to the volume's LUKS header, with its previous one (key rotation)"
        );
        match self.crypt.open(&disk.path, name, key, timeout).await {
            Err(CryptError::WrongKey { .. }) => Err(wrong("")),
            other => Ok(other?),
        }
    }

    /// Closes the volume's mapping `stale`, which does not sit on the
    /// volume's `disk`: only if its own disk is gone (then its filesystem at
    /// `staging` is dead and is unmounted first); a mapping on a disk that
    /// is there is another's, and refused, as is a device of that name that
    /// `cryptsetup` did not make for LUKS2.
    async fn close_stale_mapping(
        &self,
        volume_id: &str,
        stale: &Mapping,
        disk: &BlockDevice,
        staging: &Path,
    ) -> Result<()> {
        let occupied = |other: String| NodeError::MappingOccupied {
            volume: volume_id.to_owned(),
            mapping: stale.name.clone(),
            other,
            device: disk.path.clone(),
        };
        if !stale.is_ours() {
            return Err(occupied(format!(
                "{} (a device-mapper device cryptsetup did not make for LUKS2)",
                stale.backing.as_deref().unwrap_or("a disk that is gone")
            )));
        }
        if let Some(other) = &stale.backing {
            return Err(occupied(other.clone()));
        }
        warn!(mapping = %stale.name, staging = %staging.display(),
            "the volume's encrypted mapping sits on a disk that is gone; closing it to open the volume's current disk");
        if self
            .mounted(staging)?
            .is_some_and(|m| Path::new(&m.source) == stale.device.path)
        {
            self.unmount_all(staging).await?;
        }
        self.close_mapping(&stale.name).await
    }

    /// Closes mapping `name` and makes sure it is gone.
    pub(crate) async fn close_mapping(&self, name: &str) -> Result<()> {
        self.crypt.close(name, self.config.timeouts.crypt).await?;
        if self.crypt.mapping(name)?.is_some() {
            return Err(NodeError::MappingStillOpen {
                mapping: name.to_owned(),
            });
        }
        Ok(())
    }

    /// Labels the LUKS header of `disk` in use: the volume has been handed
    /// out (or got its filesystem), and is never again taken for new.
    async fn mark_in_use(&self, volume_id: &str, disk: &BlockDevice) -> Result<()> {
        self.crypt
            .set_label(&disk.path, crypt::LABEL_IN_USE, self.config.timeouts.crypt)
            .await?;
        info!(
            volume = volume_id,
            "the encrypted volume is labelled in use"
        );
        Ok(())
    }

    /// The filesystem on the mapping of a volume never handed out: one a
    /// crashed stage made is kept; without any signature, `wanted` is made
    /// (its plaintext is noise, so there are no zeros to check); anything
    /// else stops the stage.
    pub(crate) async fn filesystem_on_fresh(
        &self,
        device: &Path,
        wanted: FsType,
    ) -> Result<FsType> {
        match self
            .fs
            .make_fresh_filesystem(device, wanted.into(), self.config.timeouts.mkfs)
            .await?
        {
            Prepared::Formatted => {
                info!(device = %device.display(), fs = %wanted, "formatted a new encrypted volume");
                Ok(wanted)
            }
            Prepared::Existing(found) => keep_existing(device, found, wanted),
        }
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
    /// read later. `device` is what the volume is used through (the
    /// mapping's, for an encrypted volume named `mapping`).
    async fn record_stage(
        &self,
        req: &StageRequest,
        host: &HostIdentity,
        device: &BlockDevice,
        fs: Option<FsType>,
        mapping: Option<String>,
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
            mapping,
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
