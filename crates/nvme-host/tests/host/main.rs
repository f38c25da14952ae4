//! Integration tests of `nvme-host` against sysfs trees built in temporary
//! directories and a scripted fabrics device: no root, no NVMe device.
//!
//! `layout` builds the Linux 6.1 trees by hand, file by file; the other
//! modules use `testing::FakeSysfs`, which builds the same layout through the
//! kernel's symbolic links. Deadlines are generous and nothing asserts how
//! fast something happened, so the tests hold on a loaded machine.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

mod connect;
mod layout;
mod lifecycle;
mod scan;

use std::time::Duration;

use nvme_host::testing::{FakeController, FakeSysfs};

/// An NQN of this driver.
pub const OURS: &str = "nqn.2000-02.com.mikrotik:pvc-0e0f6c1e";
/// Another NQN of this driver.
pub const OURS_2: &str = "nqn.2000-02.com.mikrotik:pvc-7a7b7c7d";
/// The prefix of this driver's NQNs.
pub const PREFIX: &str = "nqn.2000-02.com.mikrotik:pvc-";
/// An NQN that is not this driver's: the host's own root volume.
pub const FOREIGN: &str = "nqn.2019-01.org.example:node-root";

/// A deadline far enough away that only a bug reaches it.
pub fn generous() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(30)
}

/// A fresh fake sysfs in a temporary directory.
pub fn fake(multipath: bool) -> (tempfile::TempDir, FakeSysfs) {
    let dir = tempfile::tempdir().unwrap();
    let sys = FakeSysfs::new(dir.path(), multipath).unwrap();
    (dir, sys)
}

/// Adds a live controller of `nqn`.
pub fn live(sys: &FakeSysfs, nqn: &str) -> String {
    sys.add_controller(&FakeController::new(nqn)).unwrap()
}

/// The node service keeps a `Host` in shared state and awaits these futures in
/// tonic handlers, so they must be `Send` (and `Host` `Send + Sync`).
#[test]
fn host_and_its_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<nvme_host::Host>();
    send_sync::<nvme_host::NvmeError>();
    let host = nvme_host::Host::new("/nonexistent-root");
    let now = tokio::time::Instant::now();
    send(&host.disconnect_and_wait(OURS, now));
    send(&host.wait_for_block_device(OURS, now));
    let cfg = nvme_host::ConnectionConfig::new(
        "10.0.0.5",
        4420,
        OURS,
        nvme_host::HostIdentity {
            nqn: "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-4d2b-a3f4-6e0f1b2c3d4e".into(),
            id: "1b4e28ba-2fa1-4d2b-a3f4-6e0f1b2c3d4e".into(),
        },
    );
    send(&host.connect_with_retry(&cfg, now, nvme_host::RetryPolicy::default()));
}
