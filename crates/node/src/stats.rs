//! NodeGetVolumeStats: usage, and whether the volume is healthy.
//!
//! The volume condition is abnormal when the NVMe/TCP controller is not live
//! (the RDS or the network is gone; I/O is queued or failing), when the volume
//! is no longer mounted where it was published, or when a filesystem that was
//! mounted read-write has gone read-only (the kernel does that to ext4 and xfs
//! after I/O errors). Kubernetes shows the message on the pod's events.

use std::path::Path;
use std::time::Duration;

use node_fs::stats::FsStats;

use crate::crypt::Crypt;
use crate::error::{NodeError, Result};
use crate::fs::Filesystems;
use crate::health::{self, Problem};
use crate::node::Node;
use crate::nvme::NvmeHost;
use crate::record::RecordStore;

/// How full a volume is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Usage {
    /// Nothing to report (a filesystem volume with nothing mounted at the
    /// path).
    Unknown,
    /// A block volume: its size.
    Block {
        /// The device's size in bytes.
        total_bytes: u64,
    },
    /// A filesystem volume: bytes and inodes.
    Filesystem(FsStats),
}

/// NodeGetVolumeStats' answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeStats {
    /// How full it is.
    pub usage: Usage,
    /// What is wrong with it; empty when it is healthy.
    pub problems: Vec<Problem>,
    /// How long it has been in this condition, as far as this process saw.
    pub for_how_long: Duration,
}

impl VolumeStats {
    /// Whether something is wrong.
    pub fn abnormal(&self) -> bool {
        !self.problems.is_empty()
    }

    /// The condition's message for people: `healthy`, or the volume and what
    /// is wrong with it, and for how long.
    pub fn message(&self, volume_id: &str) -> String {
        if self.problems.is_empty() {
            return "healthy".into();
        }
        let problems = health::describe(&self.problems);
        match self.for_how_long.as_secs() {
            0 => format!("volume {volume_id}: {problems}"),
            secs => format!("volume {volume_id}: {problems} (for {secs} s)"),
        }
    }
}

impl<H: NvmeHost, F: Filesystems, R: RecordStore, C: Crypt> Node<H, F, R, C> {
    /// The usage and condition of the volume at `volume_path`. A volume not
    /// staged here, and a path that is not absolute or does not exist, are
    /// [`NodeError::NotStaged`] and [`NodeError::NotAtPath`]: the CSI spec's
    /// "volume does not exist" (on that path).
    pub fn stats(&self, volume_id: &str, volume_path: &Path) -> Result<VolumeStats> {
        let record = self
            .records
            .load_indexed(volume_id)?
            .ok_or_else(|| NodeError::NotStaged {
                volume: volume_id.to_owned(),
            })?;
        self.check_at_path(volume_id, volume_path)?;
        let mounts = self.fs.mounts()?;
        let mount = node_fs::mountinfo::find(&mounts, volume_path);
        let block = record.fs_type.is_none();

        // The volume's own health (controller, staging mount) from the
        // monitor, which also logs a change and remembers since when.
        let seen = self.observe(&mounts, &record);
        let (mut problems, for_how_long) = (seen.health.problems, seen.for_how_long);
        match mount {
            None => problems.push(Problem::NothingMountedAt {
                path: volume_path.to_path_buf(),
            }),
            Some(m)
                if !block
                    && m.read_only()
                    && !record.read_only
                    && !problems.contains(&Problem::ReadOnly) =>
            {
                problems.push(Problem::ReadOnly)
            }
            Some(_) => {}
        }

        let usage = if block {
            Usage::Block {
                total_bytes: self.fs.block_size(&record.device)?,
            }
        } else if mount.is_some() {
            Usage::Filesystem(self.fs.fs_stats(volume_path)?)
        } else {
            Usage::Unknown
        };
        Ok(VolumeStats {
            usage,
            problems,
            for_how_long,
        })
    }
}
