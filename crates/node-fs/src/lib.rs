//! The node's filesystem work: look at what a device holds, format it, mount and
//! bind it, tell how large its filesystem is and grow it, report its usage,
//! and read the mount table.
//!
//! The CSI node service (in `csi-driver`) decides *what* to do; this crate only
//! knows *how*. It keeps I/O thin and parsing pure: `mountinfo::parse`,
//! `mount::split_options` and `probe::interpret` are pure functions tested
//! against fixtures in `testdata/`; the functions around them make one system
//! call or run one program. `tests/loop_devices.rs` proves the I/O half on the
//! real kernel with loop devices (it needs root).
//!
//! # Invariants
//!
//! - **Every external program runs through [`tool::run`], with a timeout** that is
//!   tested to fire: the programs are `blkid`, `mkfs.ext4`, `mkfs.xfs`,
//!   `resize2fs` and `xfs_growfs`, nothing else.
//! - **A device is formatted only after a positive "empty" answer.** `blkid`'s
//!   "nothing found" must come with a readable block device whose first and last
//!   MiB are zeros; every other answer, failure or timeout is an error or a
//!   non-empty [`probe::Probe`]. [`format::mkfs`] probes again itself, because
//!   `mkfs.ext4` without a terminal overwrites an existing filesystem silently.
//! - **Mounts are system calls** (through rustix), never `mount(8)`.
//! - **Only what the caller asks is applied**: no mount flag is added on the
//!   caller's behalf, and a read-only bind keeps the flags it already had.
//! - **No globals**: `/proc` and `/sys` are passed in as roots.

pub mod error;
pub mod format;
pub mod fs_size;
mod fs_type;
pub mod mount;
pub mod mountinfo;
pub mod probe;
pub mod resize;
pub mod stats;
pub mod tool;

pub use error::FsError;
pub use fs_type::FsType;
