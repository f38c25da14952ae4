//! Btrfs subvolumes: volumes in subvolumes of their own, snapshots, and
//! volumes restored or cloned from them, all by copy-on-write on the
//! appliance.
//!
//! - [`names`]: where volumes and snapshots live and how they are named
//!   (everything the driver needs to find a snapshot again is in its name),
//!   and the typed values for commands.
//! - [`scripts`]: one idempotent script per operation.
//! - [`record`]: the reader of `/disk/btrfs/subvolume print detail`.
//! - [`failure`]: the errors the scripts raise themselves.
//!
//! `docs/routeros-cli.md` ("Snapshots") is the written contract.

pub mod failure;
pub mod names;
pub mod record;
pub mod scripts;

pub use failure::ScriptFailure;
pub use names::{
    NamePattern, SNAPSHOT_ID_DIGITS, SNAPSHOT_PREFIX, SnapshotId, SnapshotName, SubvolumePath,
    SubvolumeVolume, VOLUME_IMAGE,
};
pub use record::{RouterOsTime, Snapshot, Subvolume, parse_subvolume_print};
pub use scripts::{NewVolume, PROBE_FILE_SIZE, SnapshotFilter};
