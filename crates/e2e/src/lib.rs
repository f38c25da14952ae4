//! End-to-end scenarios on a real kernel: the simulator's disks exported
//! through Linux nvmet and attached with the kernel's NVMe/TCP initiator.
//!
//! They need what only the guest of `guest/run` has (configfs, nvmet,
//! nvme-tcp), so they run there, from the `guest-suite` binary;
//! `tests/guest.rs` boots the guest and runs it for `cargo test`.
//!
//! - [`scenarios`]: the registry; each scenario is an `async fn(Ctx) ->
//!   Result<(), String>` in a module of its own.
//! - [`support`]: error context and waiting with a deadline.
//! - [`fabrics`]: the initiator side, written directly against
//!   `/dev/nvme-fabrics` and sysfs (a few lines of test code, independent of
//!   the driver's own `nvme-host` crate, so each checks the other).
//! - [`foreign`]: a subsystem that is not the driver's, made directly in nvmet.
//! - [`kmsg`]: the kernel log, to prove a scenario caused no I/O errors.
//! - [`rds`]: a simulator with nvmet export, and a client for it.
//! - [`bench`]: NodeStageVolume's time beside the same steps by hand.
//! - [`bench_encryption`]: an encrypted volume's throughput beside a plain
//!   one's.
//! - [`demo`]: the README's first command, one volume through the driver.
//! - [`sanity`]: the community's csi-sanity against the whole driver, on the
//!   host (no initiator) or in the guest.
//! - [`csi`]: the whole driver: the simulator, the plugin as a process of its
//!   own, and CSI clients of its socket.
//! - [`nodes`]: node plugins as processes of their own, several host
//!   identities on one kernel, for the fencing scenarios. (The identity a
//!   node attaches as is derived with `nvme_host::fence`, the rule the
//!   controller and the node share; what the target admits is the kernel's
//!   nvmet's own judgement.)

pub mod bench;
pub mod bench_encryption;
pub mod csi;
pub mod demo;
pub mod fabrics;
pub mod foreign;
pub mod kmsg;
pub mod nodes;
pub mod rds;
pub mod sanity;
pub mod scenarios;
pub mod support;
