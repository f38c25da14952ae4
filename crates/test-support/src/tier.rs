//! The test tiers. Plain `cargo test` runs every test that needs nothing but
//! this machine's user and a Rust toolchain; the tests that need more are
//! selected by an environment variable, and without it say that they were
//! skipped and the command that runs them:
//!
//! | tier  | needs                               | selected by           |
//! |-------|-------------------------------------|-----------------------|
//! | root  | root, loop devices, mkfs, mount(2)   | `RDS_CSI_TEST_ROOT=1` |
//! | guest | qemu and a few minutes (`guest/run`) | `RDS_CSI_TEST_GUEST=1`|
//!
//! `scripts/test` (what CI runs) selects both. A selected test that cannot
//! run (not root, no qemu) fails, saying why; it never passes by skipping.

use std::io::Write;
use std::sync::Mutex;

/// A tier of tests that need more than plain `cargo test` has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Root, loop devices and the filesystem tools, on this machine.
    Root,
    /// The qemu guest of `guest/run`, where NVMe/TCP is real.
    Guest,
}

impl Tier {
    /// The environment variable that selects the tier.
    pub fn variable(self) -> &'static str {
        match self {
            Self::Root => "RDS_CSI_TEST_ROOT",
            Self::Guest => "RDS_CSI_TEST_GUEST",
        }
    }

    fn needs(self) -> &'static str {
        match self {
            Self::Root => "root and loop devices",
            Self::Guest => "the qemu guest (a few minutes)",
        }
    }

    /// Whether the tier was selected (its variable is `1`). If not, prints
    /// once per test binary, past the test harness's capture, that the tests
    /// of `target` (`-p <crate> --test <name>`) were skipped, and the
    /// command that runs them.
    pub fn selected(self, target: &str) -> bool {
        if std::env::var(self.variable()).is_ok_and(|v| v == "1") {
            return true;
        }
        static SAID: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
        if !said.iter().any(|t| t == target) {
            said.push(target.to_owned());
            // Straight to the standard error stream: libtest captures what
            // print! and eprint! write, and shows it only for failures.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: the tests of `{target}` need {}; run them with: {}=1 cargo test {target}",
                self.needs(),
                self.variable(),
            );
        }
        false
    }
}

/// Stops a selected root-tier test of `target` (`-p <crate> --test <name>`)
/// that cannot run: it needs root and btrfs-progs, for a loop-mounted btrfs.
pub fn require_root_and_btrfs(target: &str) {
    assert!(
        rustix::process::geteuid().is_root(),
        "the btrfs tests need root (loop devices, mount): run them as root, \
         e.g. `sudo -E cargo test {target}`"
    );
    for tool in ["mkfs.btrfs", "btrfs"] {
        assert!(
            std::process::Command::new(tool)
                .arg("--version")
                .output()
                .is_ok(),
            "{tool} is missing: install btrfs-progs (apt-get install btrfs-progs)"
        );
    }
}
