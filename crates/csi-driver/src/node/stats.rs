//! NodeGetVolumeStats: usage, and whether the volume is healthy.
//!
//! The volume condition is abnormal when the NVMe/TCP controller is not live
//! (the RDS or the network is gone; I/O is queued or failing), when the volume
//! is no longer mounted where it was published, or when a filesystem that was
//! mounted read-write has gone read-only (the kernel does that to ext4 and xfs
//! after I/O errors). Kubernetes shows the message on the pod's events.

use std::path::Path;

use csi_proto::v1::{self as csi, volume_usage};

use super::NodeService;
use super::record::StagingRecord;
use crate::error::Result;

pub(super) fn volume_stats(
    node: &NodeService,
    volume_id: &str,
    volume_path: &Path,
    record: Option<&StagingRecord>,
) -> Result<csi::NodeGetVolumeStatsResponse> {
    let mounts = node_fs::mountinfo::read(&node.proc_root())?;
    let mount = node_fs::mountinfo::find(&mounts, volume_path);
    let block = record
        .map(|r| r.fs_type.is_none())
        .unwrap_or_else(|| volume_path.is_file());

    // The volume's own health (controller, staging mount) from the monitor,
    // which also logs a change and remembers since when.
    let (mut problems, for_how_long) = match record {
        Some(r) => {
            let seen = node.monitor.observe(&node.host, &mounts, r);
            (seen.health.problems, seen.for_how_long)
        }
        None => (Vec::new(), std::time::Duration::ZERO),
    };
    match mount {
        None => problems.push(format!("nothing is mounted at {}", volume_path.display())),
        Some(m)
            if !block
                && m.read_only()
                && !record.is_some_and(|r| r.read_only)
                && !problems.iter().any(|p| p.contains("read-only")) =>
        {
            problems.push(
                "its filesystem is read-only although it was mounted read-write (the kernel does this after I/O errors)"
                    .into(),
            )
        }
        Some(_) => {}
    }

    let usage = if block {
        let device = record.map(|r| r.device.clone());
        match device {
            Some(device) => {
                let size = node_fs::stats::block_size(&node.sys_root(), &device)?;
                vec![csi::VolumeUsage {
                    total: i64::try_from(size).unwrap_or(i64::MAX),
                    unit: volume_usage::Unit::Bytes as i32,
                    ..Default::default()
                }]
            }
            None => Vec::new(),
        }
    } else if mount.is_some() {
        let s = node_fs::stats::fs_stats(volume_path)?;
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        vec![
            csi::VolumeUsage {
                available: n(s.available_bytes),
                total: n(s.total_bytes),
                used: n(s.used_bytes),
                unit: volume_usage::Unit::Bytes as i32,
            },
            csi::VolumeUsage {
                available: n(s.free_inodes),
                total: n(s.total_inodes),
                used: n(s.used_inodes),
                unit: volume_usage::Unit::Inodes as i32,
            },
        ]
    } else {
        Vec::new()
    };

    let condition = if problems.is_empty() {
        csi::VolumeCondition {
            abnormal: false,
            message: "healthy".into(),
        }
    } else {
        csi::VolumeCondition {
            abnormal: true,
            message: if for_how_long.as_secs() > 0 {
                format!(
                    "volume {volume_id}: {} (for {} s)",
                    problems.join("; "),
                    for_how_long.as_secs()
                )
            } else {
                format!("volume {volume_id}: {}", problems.join("; "))
            },
        }
    };
    Ok(csi::NodeGetVolumeStatsResponse {
        usage,
        volume_condition: Some(condition),
    })
}
