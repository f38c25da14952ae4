//! NodePublishVolume and NodeUnpublishVolume: bind a staged volume into a
//! pod's target path, and take it away again.
//!
//! A filesystem volume's staging mount is bound onto a directory; a block
//! volume's device node onto a file (binding the device node itself, not
//! devtmpfs): its disk's, or an encrypted volume's mapping's. Before either,
//! a volume whose NVMe/TCP connection is gone (the kernel gave up on it) is
//! connected again and its new disk mounted in place of the dead one, so
//! restarting the pod is enough to recover. An encrypted volume is opened
//! again for that with the node-publish secret's passphrase, which kubelet
//! sends only if the StorageClass names one; without it, the error says so.
//!
//! A single-node-single-writer volume is published at one target path at a
//! time; any other mode may be published at several (pods on one node share
//! a ReadWriteOnce volume). Publications are found in the mount table, not
//! remembered: binds of the staging mount's filesystem, or of the volume's
//! device node.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use node_fs::mountinfo::MountInfo;
use nvme_host::HostIdentity;
use nvme_host::fence;
use tracing::{info, warn};

use crate::context::{FsType, VolumeContext};
use crate::crypt::Crypt;
use crate::error::{NodeError, Result};
use crate::fs::Filesystems;
use crate::node::Node;
use crate::nvme::NvmeHost;
use crate::record::{RecordStore, StagingRecord};
use crate::request::{Capability, PublishRequest, VolumeKeys, VolumeKind, secret_keys};
use crate::stage::{Earlier, KeySource};

/// NodePublishVolume's node-publish secret.
const PUBLISH_SECRET: KeySource = KeySource {
    request: "NodePublishVolume",
    secret: "node-publish",
};

impl<H: NvmeHost, F: Filesystems, R: RecordStore, C: Crypt> Node<H, F, R, C> {
    /// Publishes a staged volume at the request's target path; publishing
    /// again with the same arguments does nothing.
    pub async fn publish(&self, req: PublishRequest) -> Result<()> {
        let read_only = req.read_only || req.capability.read_only;
        let _guard = self.locks.try_lock(&req.volume_id)?;
        let record = self
            .records
            .load(&req.volume_id, &req.staging_path)?
            .ok_or_else(|| NodeError::NotStagedAt {
                volume: req.volume_id.clone(),
                staging: req.staging_path.clone(),
            })?;
        let record = self
            .reattach_if_gone(
                record,
                &req.context,
                &req.publish_context,
                &req.capability,
                &req.keys,
            )
            .await?;
        if req.capability.single_writer
            && let Some(elsewhere) = self
                .publications(&record)?
                .into_iter()
                .find(|p| *p != req.target_path)
        {
            return Err(NodeError::PublishedElsewhere {
                volume: req.volume_id,
                elsewhere,
            });
        }
        match req.capability.kind {
            VolumeKind::Block => {
                self.publish_block(&record, &req.target_path, read_only)
                    .await
            }
            VolumeKind::Filesystem { .. } => {
                self.publish_filesystem(&record, &req.target_path, read_only)
                    .await
            }
        }
    }

    /// Binds the volume's current device node onto a file at `target`.
    async fn publish_block(
        &self,
        record: &StagingRecord,
        target: &Path,
        read_only: bool,
    ) -> Result<()> {
        let device = self.current_device(record)?;
        if let Some(parent) = target.parent() {
            self.create_dir_all(parent).await?;
        }
        self.fs
            .create_file(target)
            .await
            .map_err(|source| NodeError::Path {
                op: "creating",
                path: target.to_path_buf(),
                source,
            })?;
        self.bind_once(&device, target, read_only).await
    }

    /// Binds the staging mount onto a directory at `target`.
    async fn publish_filesystem(
        &self,
        record: &StagingRecord,
        target: &Path,
        read_only: bool,
    ) -> Result<()> {
        if self.mounted(&record.staging_path)?.is_none() {
            return Err(NodeError::StagingNotMounted {
                volume: record.volume_id.clone(),
                staging: record.staging_path.clone(),
            });
        }
        self.create_dir_all(target).await?;
        self.bind_once(&record.staging_path, target, read_only)
            .await
    }

    /// Binds `source` onto `target` unless that is done already; a
    /// publication there with another read-only setting is refused.
    async fn bind_once(&self, source: &Path, target: &Path, read_only: bool) -> Result<()> {
        if let Some(mount) = self.mounted(target)? {
            if mount.read_only() == read_only {
                return Ok(());
            }
            return Err(NodeError::PublishedIncompatibly {
                target: target.to_path_buf(),
                read_only: mount.read_only(),
            });
        }
        self.fs.bind(source, target, read_only).await?;
        Ok(())
    }

    /// Where the volume is published now: the mounts of its staging mount's
    /// filesystem other than the staging path (a filesystem volume), or the
    /// binds of its device node (a block volume).
    fn publications(&self, record: &StagingRecord) -> Result<Vec<PathBuf>> {
        let mounts = self.fs.mounts()?;
        let of = |keep: &dyn Fn(&MountInfo) -> bool| {
            mounts
                .iter()
                .filter(|m| keep(m))
                .map(|m| m.mount_point.clone())
                .collect()
        };
        if record.fs_type.is_some() {
            let Some(staging) = node_fs::mountinfo::find(&mounts, &record.staging_path) else {
                return Ok(Vec::new());
            };
            let (major, minor, root) = (staging.major, staging.minor, staging.root.clone());
            return Ok(of(&|m| {
                (m.major, m.minor) == (major, minor)
                    && m.root == root
                    && m.mount_point != record.staging_path
            }));
        }
        let Some(device) = self.volume_device(record)? else {
            return Ok(Vec::new());
        };
        let node = Path::new("/").join(&device.name);
        Ok(of(&|m| m.fs_type == "devtmpfs" && m.root == node))
    }

    /// Publish's recovery: when the staged volume's NQN has no block device
    /// (the kernel gave up on its controller, or the node lost it), connects
    /// again with the publish request's volume context (or the one it was
    /// staged with), mounts the new device at the staging path in place of
    /// the dead one, and updates the record. A volume whose controller is
    /// only reconnecting keeps its device and is left alone.
    ///
    /// It connects as the identity the request's publish context names, else
    /// as the one it was staged with, else (a record of a version without
    /// attachment) as the host itself. A volume unpublished from this node
    /// is refused by the RDS whichever it is.
    async fn reattach_if_gone(
        &self,
        record: StagingRecord,
        request_context: &HashMap<String, String>,
        publish_context: &HashMap<String, String>,
        capability: &Capability,
        keys: &VolumeKeys,
    ) -> Result<StagingRecord> {
        let alive = match &record.mapping {
            // An encrypted volume lives as long as its mapping sits on the
            // NQN's disk: a dead mapping keeps its name and number.
            Some(_) => self.volume_device(&record)?.is_some(),
            None => {
                self.host.block_device(&record.nqn)?.is_some()
                    || self.staging_mount_alive(&record)?
            }
        };
        if alive {
            return Ok(record);
        }
        if record.mapping.is_some() && keys.current.is_none() {
            return Err(NodeError::MissingKey {
                volume: record.volume_id.clone(),
                request: PUBLISH_SECRET.request,
                secret: PUBLISH_SECRET.secret,
                key: secret_keys::PASSPHRASE,
                why: "; the volume's NVMe/TCP connection (or its mapping) is gone, and opening it \
                      again needs its passphrase, which NodePublishVolume carries only from a \
                      node-publish secret (else unstage and stage it again: stop the pods that \
                      use it on this node)",
            });
        }
        let context = if request_context.is_empty() {
            let saved =
                record
                    .connection
                    .clone()
                    .ok_or_else(|| NodeError::NoConnectionContext {
                        volume: record.volume_id.clone(),
                        nqn: record.nqn.clone(),
                    })?;
            VolumeContext::from_map(&saved.into_iter().collect())?
        } else {
            VolumeContext::from_map(request_context)?
        };
        if context.nqn != record.nqn {
            return Err(NodeError::NqnMismatch {
                volume: record.volume_id.clone(),
                staged: record.nqn.clone(),
                given: context.nqn,
            });
        }
        let names_one = publish_context.contains_key(fence::HOST_NQN_KEY)
            || publish_context.contains_key(fence::HOST_ID_KEY);
        let host = match &record.host {
            Some(staged_as) if !names_one => HostIdentity::from(staged_as),
            _ => self
                .identities
                .for_volume(&record.volume_id, publish_context)?
                .identity()
                .clone(),
        };
        warn!(nqn = %record.nqn, hostnqn = %host.nqn, "the staged volume's NVMe/TCP connection is gone; connecting again");
        let mut device = self.attach(&context, &host).await?;
        if record.mapping.is_some() {
            let opened = self
                .ensure_open(
                    &record.volume_id,
                    &record.staging_path,
                    &device,
                    keys,
                    PUBLISH_SECRET,
                )
                .await?;
            device = opened.device;
        }
        if let Some(fs) = record.fs_type.as_deref() {
            let fs = FsType::parse(fs)?;
            let flags = match &capability.kind {
                VolumeKind::Filesystem { mount_flags, .. } => mount_flags.clone(),
                VolumeKind::Block => Vec::new(),
            };
            self.ensure_mounted(
                &device,
                &record.staging_path,
                fs,
                &flags,
                record.read_only,
                Earlier::Known(&record),
            )
            .await?;
        }
        let record = StagingRecord {
            device: device.path,
            diskseq: device.diskseq,
            host: Some((&host).into()),
            ..record
        };
        self.records.save(&record).await?;
        let mounts = self.fs.mounts().unwrap_or_default();
        self.observe(&mounts, &record);
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
        let Some(mount) = self.mounted(&record.staging_path)? else {
            return Ok(false);
        };
        if Path::new(&mount.source) != record.device {
            return Ok(false);
        }
        Ok(match record.diskseq {
            Some(then) => self.fs.disk_sequence(&record.device) == Some(then),
            None => self.fs.block_device_exists(&record.device),
        })
    }

    /// The volume's block device now: whatever its NQN (and an encrypted
    /// volume's mapping name) resolves to, never a remembered name (the
    /// kernel reuses them).
    pub(crate) fn current_device(&self, record: &StagingRecord) -> Result<PathBuf> {
        match self.volume_device(record)? {
            Some(device) => Ok(device.path),
            None => Err(NodeError::Unreachable {
                volume: record.volume_id.clone(),
                nqn: record.nqn.clone(),
            }),
        }
    }

    /// Unpublishes the volume at `target`: unmounts it and removes the target
    /// (a directory or a file). Repeating it does nothing.
    pub async fn unpublish(&self, volume_id: &str, target: &Path) -> Result<()> {
        let _guard = self.locks.try_lock(volume_id)?;
        self.unmount_all(target).await?;
        self.fs
            .remove(target)
            .await
            .map_err(|source| NodeError::Path {
                op: "removing",
                path: target.to_path_buf(),
                source,
            })
    }
}
