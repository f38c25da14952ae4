//! A loop device on a sparse image in a private temporary directory, and the
//! clean-up that goes with it.
//!
//! Everything a test creates is undone when its [`Rig`] drops, also when an
//! assertion fails: the mount points it handed out are unmounted (top mounts
//! first, lazily only if a plain unmount fails, so that the loop device can
//! go), then the loop device is detached, then the directory is removed. Each
//! test has its own directory and device, so tests run in parallel.
//!
//! These tests need root (loop devices, mounts) and the tools listed in
//! [`require_tools`]: they run when the root tier is selected
//! ([`selected`]), and then fail without them, saying what is missing.

use std::error::Error;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use node_fs::tool;
use rustix::mount::UnmountFlags;

/// How long a tool may take here: generous, for a loaded two-core machine.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// A test's error: shown with its whole chain of causes.
pub struct Failure(Box<dyn Error>);

impl<E: Into<Box<dyn Error>>> From<E> for Failure {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// What every test returns.
pub type TestResult = Result<(), Failure>;

/// Whether the root tier was selected (`RDS_CSI_TEST_ROOT=1`); if not, the
/// tests say once that they were skipped, and how to run them.
pub fn selected() -> bool {
    test_support::tier::Tier::Root.selected("-p node-fs --test loop_devices")
}

/// Fails the test unless it runs as root.
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the loop-device tests need root (loop devices, mount(2)): run them as root, \
         e.g. `sudo -E RDS_CSI_TEST_ROOT=1 cargo test -p node-fs --test loop_devices`"
    );
    assert!(
        Path::new("/dev/loop-control").exists(),
        "the loop-device tests need loop devices: /dev/loop-control is missing (`modprobe loop`)"
    );
}

/// Fails the test unless every program is installed, naming the package.
pub fn require_tools(programs: &[&str]) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for program in programs {
        let found = std::env::split_paths(&path).any(|dir| dir.join(program).is_file());
        let package = tool::debian_package(program).unwrap_or("the package that provides it");
        assert!(
            found,
            "`{program}` is not installed (not in PATH): install it with `apt-get install {package}`"
        );
    }
}

/// Whether this process may grow a mounted ext4 filesystem (CAP_SYS_RESOURCE).
pub fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// A loop device over a sparse image, and the paths a test mounts on.
pub struct Rig {
    /// Paths that may have something mounted on them, in the order handed out.
    mount_points: Vec<PathBuf>,
    device: Option<PathBuf>,
    image: PathBuf,
    dir: tempfile::TempDir,
}

impl Rig {
    /// A fresh loop device of `size` bytes, all zeros.
    pub async fn new(size: u64) -> Result<Self, Failure> {
        require_root();
        require_tools(&["losetup", "blkid"]);
        let dir = tempfile::Builder::new().prefix("node-fs-test-").tempdir()?;
        let image = dir.path().join("image");
        File::create(&image)?.set_len(size)?;
        let mut rig = Self {
            mount_points: Vec::new(),
            device: None,
            image,
            dir,
        };
        rig.device = Some(rig.attach().await?);
        Ok(rig)
    }

    /// Attaches the image. Parallel tests race for free devices; losetup
    /// retries some of that itself, and this retries the rest.
    async fn attach(&self) -> Result<PathBuf, Failure> {
        let mut last = String::new();
        for _ in 0..10 {
            let args = ["--find".as_ref(), "--show".as_ref(), self.image.as_os_str()];
            let output = tool::run("losetup", &args, TOOL_TIMEOUT).await?;
            let stdout = String::from_utf8_lossy(&output.stdout);
            if output.status.success() && stdout.trim().starts_with("/dev/loop") {
                return Ok(PathBuf::from(stdout.trim()));
            }
            last = String::from_utf8_lossy(&output.stderr).into_owned();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!("losetup could not attach {}: {last}", self.image.display()).into())
    }

    /// The loop device.
    pub fn device(&self) -> &Path {
        self.device.as_deref().unwrap_or(Path::new("/dev/null"))
    }

    /// A new directory to mount on, unmounted when the rig drops.
    pub fn mount_dir(&mut self, name: &str) -> Result<PathBuf, Failure> {
        let path = self.dir.path().join(name);
        std::fs::create_dir(&path)?;
        self.mount_points.push(path.clone());
        Ok(path)
    }

    /// A new empty file to bind a device node onto, unmounted when the rig drops.
    pub fn mount_file(&mut self, name: &str) -> Result<PathBuf, Failure> {
        let path = self.dir.path().join(name);
        File::create(&path)?;
        self.mount_points.push(path.clone());
        Ok(path)
    }

    /// Writes `data` at `offset` through the device node, and flushes it.
    pub fn write_device(&self, offset: u64, data: &[u8]) -> Result<(), Failure> {
        let device = OpenOptions::new().write(true).open(self.device())?;
        device.write_all_at(data, offset)?;
        device.sync_all()?;
        Ok(())
    }

    /// Enlarges the image to `size` bytes and tells the loop device.
    pub async fn grow_device(&self, size: u64) -> Result<(), Failure> {
        File::options()
            .write(true)
            .open(&self.image)?
            .set_len(size)?;
        let output = tool::run(
            "losetup",
            &["-c".as_ref(), self.device().as_os_str()],
            TOOL_TIMEOUT,
        )
        .await?;
        if !output.status.success() {
            return Err(format!(
                "losetup -c failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        Ok(())
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for path in self.mount_points.iter().rev() {
            // Stacked mounts come off one by one; a bounded loop in case the
            // kernel keeps saying yes for some other reason.
            for _ in 0..8 {
                match node_fs::mount::unmount(path) {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(err) => {
                        eprintln!("clean-up: {err}; detaching lazily");
                        let _ = rustix::mount::unmount(path.as_path(), UnmountFlags::DETACH);
                    }
                }
            }
        }
        if let Some(device) = self.device.take() {
            let detached = Command::new("losetup").arg("-d").arg(&device).status();
            if !matches!(detached, Ok(status) if status.success()) {
                eprintln!(
                    "clean-up: could not detach {}: {detached:?}",
                    device.display()
                );
            }
        }
    }
}

/// `len` bytes of deterministic noise without a zero first byte (xorshift).
pub fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    if let Some(first) = bytes.first_mut() {
        *first |= 1;
    }
    bytes
}
