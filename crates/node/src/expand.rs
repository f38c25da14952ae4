//! NodeExpandVolume: after the controller grew the image on the RDS, make the
//! kernel see the new size (a rescan: the RDS's target is not known to
//! announce a namespace's new size), wait until the device shows it, grow an
//! encrypted volume's mapping to the disk (`cryptsetup resize`, which needs
//! the passphrase from the node-expand secret, since the volume key is in
//! the kernel's keyring, not in the mapping's table), then grow a
//! filesystem volume's filesystem. A plain block volume needs only the
//! rescan. Each step is a no-op when done already, so a repeated call
//! converges.

use std::time::Duration;

use tokio::time::Instant;

use crate::context::FsType;
use crate::crypt::{Crypt, CryptError};
use crate::error::{NodeError, Result};
use crate::fs::Filesystems;
use crate::node::Node;
use crate::nvme::NvmeHost;
use crate::record::RecordStore;
use crate::request::{ExpandRequest, secret_keys};

/// How often the device's size is looked at while waiting for it to grow.
const SIZE_POLL: Duration = Duration::from_millis(200);

impl<H: NvmeHost, F: Filesystems, R: RecordStore, C: Crypt> Node<H, F, R, C> {
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
        let used = match &record.mapping {
            None => device.path.clone(),
            Some(name) => {
                self.resize_mapping(volume_id, name, &req).await?;
                self.volume_device(&record)?
                    .ok_or_else(|| NodeError::Unreachable {
                        volume: volume_id.to_owned(),
                        nqn: record.nqn.clone(),
                    })?
                    .path
            }
        };
        if let Some(fs) = record.fs_type.as_deref() {
            let fs = FsType::parse(fs)?;
            self.fs
                .grow(
                    fs.into(),
                    &used,
                    &req.volume_path,
                    self.config.timeouts.resize,
                )
                .await?;
        }
        Ok(device.size_bytes)
    }

    /// Grows the encrypted volume's mapping `name` to its disk, with the
    /// node-expand secret's passphrase (without one, as `cryptsetup` can
    /// when the volume key is not in the kernel's keyring).
    async fn resize_mapping(&self, volume_id: &str, name: &str, req: &ExpandRequest) -> Result<()> {
        let key = req.keys.current.as_ref();
        let resized = self
            .crypt
            .resize(name, key, self.config.timeouts.crypt)
            .await;
        match (resized, key) {
            (Ok(()), _) => Ok(()),
            (Err(CryptError::WrongKey { .. }), Some(_)) => Err(NodeError::WrongKey {
                volume: volume_id.to_owned(),
                secret: "node-expand",
                key: secret_keys::PASSPHRASE,
                previous: "",
            }),
            (Err(e), None) => {
                tracing::warn!(error = %e, "growing the encrypted mapping without a key failed");
                Err(NodeError::MissingKey {
                    volume: volume_id.to_owned(),
                    request: "NodeExpandVolume",
                    secret: "node-expand",
                    key: secret_keys::PASSPHRASE,
                    why: "; growing an encrypted volume's mapping needs its passphrase",
                })
            }
            (Err(e), Some(_)) => Err(e.into()),
        }
    }
}
