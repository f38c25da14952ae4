//! NodeUnstageVolume: unmount the staging path, close an encrypted volume's
//! mapping, disconnect the volume's NQN, and only once the kernel holds
//! nothing of it, forget the record.
//!
//! Success is reported only when neither the mapping nor a controller of the
//! NQN (of this node's host identities; see [`crate::fence`]) is left: saying
//! "unstaged" while the kernel still holds the volume lets Kubernetes attach
//! it on another node, and two writers corrupt the filesystem. The mapping is
//! closed before the disconnect, so that its last writes reach the disk.
//!
//! Without a staging record the volume may still be connected: a stage that
//! failed after its connect (the device never appeared, the probe could not
//! tell, mkfs failed) writes no record. The volume's NQN is then the one
//! this driver gives its volumes, `<NQN prefix><volume ID>`, and a
//! connection of it is disconnected too — unless the volume is staged at
//! another path, whose connection this is.

use std::path::Path;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::crypt::{self, Crypt};
use crate::error::{NodeError, Result};
use crate::fs::Filesystems;
use crate::node::Node;
use crate::nvme::NvmeHost;
use crate::record::RecordStore;

impl<H: NvmeHost, F: Filesystems, R: RecordStore, C: Crypt> Node<H, F, R, C> {
    /// Unstages the volume staged at `staging`. Repeating it, also after a
    /// crash at any point, converges on nothing held.
    pub async fn unstage(&self, volume_id: &str, staging: &Path) -> Result<()> {
        let _guard = self.locks.try_lock(volume_id)?;
        let record = self.records.load(volume_id, staging)?;
        self.unmount_all(staging).await?;
        let Some(record) = record else {
            return self.unstage_unrecorded(volume_id, staging).await;
        };
        if let Some(mapping) = &record.mapping {
            self.close_mapping(mapping).await?;
        }
        self.release(&record.nqn).await?;
        self.records.remove(volume_id, staging).await?;
        self.monitor.forget(volume_id);
        info!(nqn = %record.nqn, "unstaged and disconnected");
        Ok(())
    }

    /// Unstage of a volume without a record at `staging`: disconnects a
    /// connection its NQN would have, unless the volume is staged elsewhere.
    async fn unstage_unrecorded(&self, volume_id: &str, staging: &Path) -> Result<()> {
        if let Some(elsewhere) = self.records.load_indexed(volume_id)? {
            info!(
                staged_at = %elsewhere.staging_path.display(),
                "no staging record at this path; the volume is staged elsewhere, its connection stays"
            );
            return Ok(());
        }
        // A stage stopped after its open and before its record leaves the
        // volume's mapping open: closed before the disconnect.
        if let Ok(mapping) = crypt::mapping_name(volume_id)
            && let Some(m) = self.crypt.mapping(&mapping)?
        {
            if !m.is_ours() {
                warn!(%mapping, "a device-mapper device of this volume's mapping name was not made by cryptsetup for LUKS2; left alone");
            } else {
                warn!(%mapping, staging = %staging.display(), "no staging record, but the volume's encrypted mapping is open (a stage that failed after its open); closing it");
                self.close_mapping(&mapping).await?;
            }
        }
        let nqn = format!("{}{volume_id}", self.config.nqn_prefix);
        if self
            .host
            .controller_state_of(&nqn, &self.identities.ours())?
            .is_none()
        {
            info!("no staging record and no connection: already unstaged");
            return Ok(());
        }
        warn!(%nqn, staging = %staging.display(), "no staging record, but the volume is connected (a stage that failed after its connect); disconnecting");
        self.release(&nqn).await?;
        info!(%nqn, "disconnected");
        Ok(())
    }

    /// Disconnects `nqn` and makes sure the kernel holds no controller of it
    /// connected as one of this node's identities (whichever the volume was
    /// staged with: a record of an older version does not say, and a volume
    /// staged before and after an upgrade may have one of each). Controllers
    /// of other identities on this kernel are not this node's.
    pub(crate) async fn release(&self, nqn: &str) -> Result<()> {
        let ours = self.identities.ours();
        self.host
            .disconnect(nqn, &ours, Instant::now() + self.config.timeouts.disconnect)
            .await?;
        // The disconnect waits until sysfs shows no controller; this look is
        // what unstage's success rests on, so it is made here, not trusted.
        match self.host.controller_state_of(nqn, &ours)? {
            None => Ok(()),
            Some(state) => Err(NodeError::StillConnected {
                nqn: nqn.to_owned(),
                state,
            }),
        }
    }
}
