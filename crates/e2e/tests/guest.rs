//! Boots the test guest with `guest/run` and runs every `guest-suite`
//! scenario in it. The guest tier: slow (minutes under emulation), so it is
//! skipped unless selected with `RDS_CSI_TEST_GUEST=1`, and `scripts/test`
//! (what CI runs) selects it. Selected, a guest that cannot run is a
//! failure, with the guest console's last lines in the message.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::path::{Path, PathBuf};
use std::process::Command;

/// guest/run's status when the guest itself failed.
const GUEST_FAILED: i32 = 99;

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

#[test]
fn guest_suite_passes_in_the_guest() {
    if !test_support::tier::Tier::Guest.selected("-p e2e --test guest") {
        return;
    }
    let run = repository_root().join("guest/run");
    let suite = env!("CARGO_BIN_EXE_guest-suite");
    let work = tempfile::tempdir().expect("a work folder");
    let output = Command::new(&run)
        .args(["-t", "600"])
        .arg(work.path())
        .arg("--")
        .arg(suite)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", run.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    if output.status.success() {
        return;
    }
    let console = std::fs::read_to_string(work.path().join(".guest/console.log"))
        .unwrap_or_else(|e| format!("(no console: {e})"));
    let tail: Vec<&str> = console.lines().rev().take(40).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    let what = if output.status.code() == Some(GUEST_FAILED) {
        "the guest failed"
    } else {
        "scenarios failed"
    };
    panic!(
        "{what} ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- guest console (last lines)\n{}",
        output.status,
        tail.join("\n")
    );
}
