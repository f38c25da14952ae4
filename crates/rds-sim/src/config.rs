//! The simulator's configuration: where it keeps its files and which pools
//! the simulated appliance has.

use std::path::PathBuf;

use crate::error::SimError;
use crate::nvmet::NvmetConfig;

/// The slot limit of RouterOS 7.24.
pub const DEFAULT_MAX_SLOT_LEN: usize = 32;

/// Configuration of a simulated RDS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// Folder holding the pools (`<root>/<pool>/…`) and the saved state
    /// (`<root>/.rds-sim/state.json`).
    pub root: PathBuf,
    /// The storage pools, in the order `/disk print` lists them.
    pub pools: Vec<PoolConfig>,
    /// What `/system resource print` reports as `version`, e.g.
    /// `7.21.1 (stable)`.
    pub version: String,
    /// Longest slot `/disk add` and `set` accept: 32 on 7.24, as users of
    /// that release report. Older releases took 40, which is how the Go
    /// driver's `pvc-<uuid>` slots came to be; tests of those volumes raise it.
    pub max_slot_len: usize,
    /// Export the disks through the kernel's NVMe/TCP target (nvmet), for
    /// tests in a guest with a real initiator. None: nothing outside the
    /// root is touched.
    pub nvmet: Option<NvmetConfig>,
    /// The answers the simulator gives where RouterOS's behaviour is not
    /// known, one switch each.
    pub behaviour: Behaviour,
}

/// Where RouterOS's behaviour is not known, which answer the simulator
/// gives. The defaults are the likeliest answers; tests switch them to prove
/// the client fails safe under every one. `docs/routeros-cli.md` lists them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Behaviour {
    /// What `/disk add type=file` does with an image that exists already.
    pub existing_image: ExistingImage,
    /// Whether `/disk/btrfs/subvolume add` makes a subvolume inside a plain
    /// folder (rather than at the top or inside another subvolume).
    pub subvolume_in_folder: SubvolumeInFolder,
}

/// What `/disk add type=file file-path=<existing file> file-size=N` does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ExistingImage {
    /// Keeps the file's data and grows it to `N` when `N` is larger; the
    /// disk is the larger of the two. The simulator's answer since before
    /// snapshots, and the likeliest.
    #[default]
    KeepAndGrow,
    /// Keeps the file as it is, whatever `N`; the disk is the file's size.
    Keep,
    /// Refuses with `failure: file already exists` (*assumed* text).
    Refuse,
    /// Replaces the file with a new, empty one of `N` bytes: the data is lost.
    Replace,
    /// Sets the file's length to `N`, cutting off what lies beyond.
    Truncate,
}

/// Whether a subvolume may be made inside a plain folder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SubvolumeInFolder {
    /// Allowed, as Linux allows it.
    #[default]
    Allow,
    /// Refused with `failure: parent is not a subvolume` (*assumed* text):
    /// subvolumes only at the top or inside other subvolumes.
    Refuse,
}

/// The filesystem name of a btrfs pool ([`PoolConfig::fs`]).
pub const BTRFS: &str = "btrfs";

/// One storage pool: a mounted RAID entry in `/disk`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Slot and mount point, e.g. `raid10`; also the pool's folder under the
    /// root and the first segment of image paths on it.
    pub name: String,
    /// Filesystem shown as `fs=` (e.g. `xfs`). With `btrfs`, the pool's
    /// folder must be the top of a mounted btrfs filesystem (see
    /// [`crate::LoopBtrfs`]); `/disk/btrfs/subvolume` works on it, and its
    /// size and free space are the filesystem's own.
    pub fs: String,
    /// Capacity in bytes. Free space is this minus the logical sizes of the
    /// files in the pool. Not used on btrfs, where snapshots share data:
    /// there size and free space come from the filesystem.
    pub capacity: u64,
    /// Folders created under the pool when the simulator opens, e.g.
    /// `["volumes"]`.
    pub directories: Vec<String>,
}

impl SimConfig {
    /// One pool named `pool` with the folder `volumes`, filesystem xfs,
    /// version `7.21.1 (stable)`, and no nvmet export.
    pub fn single_pool(root: impl Into<PathBuf>, pool: &str, capacity: u64) -> Self {
        SimConfig {
            root: root.into(),
            pools: vec![PoolConfig {
                name: pool.to_string(),
                fs: "xfs".to_string(),
                capacity,
                directories: vec!["volumes".to_string()],
            }],
            version: "7.21.1 (stable)".to_string(),
            max_slot_len: DEFAULT_MAX_SLOT_LEN,
            nvmet: None,
            behaviour: Behaviour::default(),
        }
    }

    /// [`SimConfig::single_pool`] on btrfs: the pool's folder,
    /// `<root>/<pool>`, must be a mounted btrfs filesystem by the time the
    /// engine opens.
    pub fn single_btrfs_pool(root: impl Into<PathBuf>, pool: &str, capacity: u64) -> Self {
        let mut config = Self::single_pool(root, pool, capacity);
        config.pools[0].fs = BTRFS.to_string();
        config
    }

    /// Checks what the engine relies on: pool names are single, distinct
    /// path segments, and pool folders stay inside their pool.
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        let mut seen = std::collections::HashSet::new();
        for pool in &self.pools {
            if !is_segment(&pool.name) || pool.name.starts_with('.') {
                return Err(SimError::Config(format!("bad pool name {:?}", pool.name)));
            }
            if !seen.insert(pool.name.as_str()) {
                return Err(SimError::Config(format!(
                    "pool {:?} given twice",
                    pool.name
                )));
            }
            for dir in &pool.directories {
                if dir.split('/').any(|s| !is_segment(s)) {
                    return Err(SimError::Config(format!(
                        "bad directory {dir:?} in pool {:?}",
                        pool.name
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A non-empty path segment that is not `.` or `..` and holds no separator.
pub(crate) fn is_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_pool_defaults() {
        let c = SimConfig::single_pool("/tmp/x", "raid10", 1 << 30);
        assert_eq!(c.pools[0].fs, "xfs");
        assert_eq!(c.pools[0].directories, ["volumes"]);
        assert_eq!(c.version, "7.21.1 (stable)");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn rejects_unsafe_names() {
        for (name, dir) in [
            ("..", "v"),
            ("a/b", "v"),
            (".rds-sim", "v"),
            ("p", "../x"),
            ("p", ""),
        ] {
            let mut c = SimConfig::single_pool("/tmp/x", name, 1);
            c.pools[0].directories = vec![dir.to_string()];
            assert!(c.validate().is_err(), "{name} {dir}");
        }
        let mut c = SimConfig::single_pool("/tmp/x", "p", 1);
        c.pools.push(c.pools[0].clone());
        assert!(c.validate().is_err());
    }
}
