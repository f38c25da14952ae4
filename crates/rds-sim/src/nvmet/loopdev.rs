//! Loop devices over image files, the block devices nvmet namespaces sit on.
//!
//! Attaching, refreshing and detaching go through util-linux's `losetup`
//! (the ioctls would need `unsafe`); which file a device holds is read from
//! sysfs. The exporter only uses the [`Backing`] trait, so tests substitute
//! a fake.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the exporter needs to put an image under a block device.
pub trait Backing: Send {
    /// Attaches `image` to a free device and returns its path (`/dev/loop3`).
    fn attach(&self, image: &Path) -> Result<String, String>;
    /// Makes `device` take the image's current size, after it grew.
    fn refresh(&self, device: &str) -> Result<(), String>;
    /// Detaches `device`.
    fn detach(&self, device: &str) -> Result<(), String>;
    /// The file `device` holds, if it is attached.
    fn backing_file(&self, device: &str) -> Option<PathBuf>;
}

/// Loop devices, through `losetup` and `/sys/block`.
#[derive(Debug, Clone)]
pub struct LoopDevices {
    /// `/sys/block`, where `loopN/loop/backing_file` names the file.
    pub sys_block: PathBuf,
}

impl Default for LoopDevices {
    fn default() -> Self {
        LoopDevices {
            sys_block: PathBuf::from("/sys/block"),
        }
    }
}

fn losetup(args: &[&str]) -> Result<String, String> {
    let output = Command::new("losetup")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run losetup: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "losetup {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn path_text(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

impl Backing for LoopDevices {
    fn attach(&self, image: &Path) -> Result<String, String> {
        let device = losetup(&["--find", "--show", path_text(image)?])?;
        if device.starts_with("/dev/") {
            Ok(device)
        } else {
            Err(format!("losetup printed {device:?}, not a device"))
        }
    }

    fn refresh(&self, device: &str) -> Result<(), String> {
        losetup(&["--set-capacity", device]).map(drop)
    }

    fn detach(&self, device: &str) -> Result<(), String> {
        losetup(&["--detach", device]).map(drop)
    }

    fn backing_file(&self, device: &str) -> Option<PathBuf> {
        let name = device.strip_prefix("/dev/")?;
        let text =
            std::fs::read_to_string(self.sys_block.join(name).join("loop/backing_file")).ok()?;
        Some(PathBuf::from(text.trim_end_matches('\n')))
    }
}
