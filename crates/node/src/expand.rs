//! NodeExpandVolume: after the controller grew the image on the RDS, make the
//! kernel see the new size (a rescan: the RDS's target is not known to
//! announce a namespace's new size), wait until the device shows it, then
//! grow a filesystem volume's filesystem. A block volume needs only the
//! rescan.

use std::time::Duration;

use tokio::time::Instant;

use crate::context::FsType;
use crate::error::{NodeError, Result};
use crate::fs::Filesystems;
use crate::node::Node;
use crate::nvme::NvmeHost;
use crate::record::RecordStore;
use crate::request::ExpandRequest;

/// How often the device's size is looked at while waiting for it to grow.
const SIZE_POLL: Duration = Duration::from_millis(200);

impl<H: NvmeHost, F: Filesystems, R: RecordStore> Node<H, F, R> {
    /// Expands a staged volume to at least `req.required_bytes`; returns the
    /// device's size. A volume not staged here, and a volume path that is not
    /// absolute or does not exist, are [`NodeError::NotStaged`] and
    /// [`NodeError::NotAtPath`] (the CSI spec's "volume does not exist").
    pub async fn expand(&self, req: ExpandRequest) -> Result<u64> {
        let volume_id = req.volume_id.as_str();
        let _guard = self.locks.try_lock(volume_id)?;
        let record = match &req.staging_path {
            None => self.records.load_indexed(volume_id)?,
            Some(staging) => self.records.load(volume_id, staging)?,
        }
        .ok_or_else(|| NodeError::NotStaged {
            volume: volume_id.to_owned(),
        })?;
        self.check_at_path(volume_id, &req.volume_path)?;
        self.host.rescan(&record.nqn).await?;
        let deadline = Instant::now() + self.config.timeouts.resize;
        let device = loop {
            let device =
                self.host
                    .block_device(&record.nqn)?
                    .ok_or_else(|| NodeError::Unreachable {
                        volume: volume_id.to_owned(),
                        nqn: record.nqn.clone(),
                    })?;
            if device.size_bytes >= req.required_bytes || Instant::now() >= deadline {
                break device;
            }
            tokio::time::sleep(SIZE_POLL).await;
        };
        if device.size_bytes < req.required_bytes {
            return Err(NodeError::NotGrown {
                volume: volume_id.to_owned(),
                size: device.size_bytes,
                wanted: req.required_bytes,
            });
        }
        if let Some(fs) = record.fs_type.as_deref() {
            let fs = FsType::parse(fs)?;
            self.fs
                .grow(
                    fs.into(),
                    &device.path,
                    &req.volume_path,
                    self.config.timeouts.resize,
                )
                .await?;
        }
        Ok(device.size_bytes)
    }
}
