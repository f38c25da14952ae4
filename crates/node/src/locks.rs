//! One operation at a time per volume, for the node's operations and the
//! controller's (which uses these locks through `csi-driver`).
//!
//! The sidecars retry everything, and Kubernetes can ask for two things about
//! one volume at once (a delete while a create times out, say). Operations on
//! one volume are therefore serialised: a second one while the first is in
//! flight is refused as [`Busy`] (ABORTED over gRPC) and retried by its sidecar. Different volumes proceed
//! in parallel; there is no global lock.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

/// A second operation on a volume while one is in flight.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an operation on volume {volume} is already in progress")]
pub struct Busy {
    /// The volume.
    pub volume: String,
}

/// The set of volumes with an operation in flight.
#[derive(Debug, Clone, Default)]
pub struct VolumeLocks {
    busy: Arc<Mutex<HashSet<String>>>,
}

/// Held while an operation runs; releases the volume when dropped (also when
/// the RPC is cancelled).
#[derive(Debug)]
pub struct VolumeGuard {
    busy: Arc<Mutex<HashSet<String>>>,
    volume: String,
}

impl VolumeLocks {
    /// Claims `volume`, or fails with [`Busy`].
    pub fn try_lock(&self, volume: &str) -> Result<VolumeGuard, Busy> {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        if !busy.insert(volume.to_owned()) {
            return Err(Busy {
                volume: volume.to_owned(),
            });
        }
        Ok(VolumeGuard {
            busy: Arc::clone(&self.busy),
            volume: volume.to_owned(),
        })
    }
}

impl Drop for VolumeGuard {
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.volume);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_at_a_time_per_volume() {
        let locks = VolumeLocks::default();
        let a = locks.try_lock("a").unwrap();
        assert_eq!(
            locks.try_lock("a").unwrap_err(),
            Busy { volume: "a".into() }
        );
        let b = locks.try_lock("b").unwrap();
        drop(a);
        let _a = locks.try_lock("a").unwrap();
        drop(b);
        let _b = locks.try_lock("b").unwrap();
    }
}
