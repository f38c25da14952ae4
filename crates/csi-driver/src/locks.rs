//! One operation at a time per volume: the node crate's per-volume locks,
//! which the controller uses too, so both services refuse a second call on a
//! volume the same way (ABORTED, retried by the sidecar).

pub use node::locks::{Busy, VolumeGuard, VolumeLocks};
