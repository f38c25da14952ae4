//! The seam to the node's filesystems, mounts and paths: [`Filesystems`], and
//! its production implementation [`LinuxFilesystems`] on `node-fs`.
//!
//! The node's operations decide *what* to do (format only on a positive
//! "empty", mount only what is not mounted, which mount is stale); this seam
//! only knows *how*. Changes are async so that a test can stop an operation
//! between any two of them (see [`crate::testing`]); questions (the mount
//! table, what exists) are quick and synchronous. The in-memory stand-in for
//! tests is [`crate::testing::FakeFilesystems`].

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use node_fs::format::Prepared;
use node_fs::mountinfo::MountInfo;
use node_fs::probe::Probe;
use node_fs::stats::FsStats;
use node_fs::{FsError, FsType};

/// Filesystems, mounts and paths on the node. Errors are node-fs's own, as
/// node-fs returns them.
#[allow(clippy::result_large_err)]
pub trait Filesystems: Send + Sync + 'static {
    /// The mount table now.
    fn mounts(&self) -> Result<Vec<MountInfo>, FsError>;

    /// What `device` holds. "Empty" is a positive answer; any doubt is an error.
    fn probe(
        &self,
        device: &Path,
        timeout: Duration,
    ) -> impl Future<Output = Result<Probe, FsError>> + Send;

    /// Makes a filesystem of type `fs` on `device`, checking once more right
    /// before that it is empty: what it found instead comes back as
    /// [`Prepared::Existing`], untouched.
    fn make_filesystem(
        &self,
        device: &Path,
        fs: FsType,
        timeout: Duration,
    ) -> impl Future<Output = Result<Prepared, FsError>> + Send;

    /// Mounts `device` (holding `fs`) at the directory `target`, with the
    /// caller's options, read-only if asked.
    fn mount(
        &self,
        device: &Path,
        target: &Path,
        fs: FsType,
        options: &[String],
        read_only: bool,
    ) -> impl Future<Output = Result<(), FsError>> + Send;

    /// Binds `source` (a directory or a device node) onto `target`.
    fn bind(
        &self,
        source: &Path,
        target: &Path,
        read_only: bool,
    ) -> impl Future<Output = Result<(), FsError>> + Send;

    /// Unmounts the top mount at `target`; `false` when nothing was mounted.
    fn unmount(&self, target: &Path) -> impl Future<Output = Result<bool, FsError>> + Send;

    /// Grows the filesystem `fs` of `device`, mounted at `mount_point`, to
    /// the device's size.
    fn grow(
        &self,
        fs: FsType,
        device: &Path,
        mount_point: &Path,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), FsError>> + Send;

    /// The size in bytes the `fs` filesystem on `device` spans, as its
    /// superblock says (less than the device's after a restore or clone to
    /// a larger size).
    fn filesystem_size(
        &self,
        fs: FsType,
        device: &Path,
        timeout: Duration,
    ) -> impl Future<Output = Result<u64, FsError>> + Send;

    /// Usage of the filesystem mounted at `path`.
    fn fs_stats(&self, path: &Path) -> Result<FsStats, FsError>;

    /// The size of the block device `device` (`/dev/<name>`), in bytes.
    fn block_size(&self, device: &Path) -> Result<u64, FsError>;

    /// Whether the block device `device` (`/dev/<name>`) exists.
    fn block_device_exists(&self, device: &Path) -> bool;

    /// The disk sequence number of the block device `device`, if it exists
    /// and the kernel has them.
    fn disk_sequence(&self, device: &Path) -> Option<u64>;

    /// Whether anything exists at `path`.
    fn exists(&self, path: &Path) -> bool;

    /// Creates the directory `path` and its parents; fine if it exists.
    fn create_dir_all(&self, path: &Path) -> impl Future<Output = io::Result<()>> + Send;

    /// Creates an empty file at `path` unless something is there.
    fn create_file(&self, path: &Path) -> impl Future<Output = io::Result<()>> + Send;

    /// Removes the empty directory or the file at `path`; fine if nothing is.
    fn remove(&self, path: &Path) -> impl Future<Output = io::Result<()>> + Send;
}

/// The host's filesystems, through `node-fs`, with `/proc` and `/sys` under
/// the host root.
#[derive(Debug, Clone)]
pub struct LinuxFilesystems {
    proc_root: PathBuf,
    sys_root: PathBuf,
}

impl LinuxFilesystems {
    /// The filesystems of the host whose `/proc` and `/sys` are under `host_root`.
    pub fn new(host_root: &Path) -> Self {
        Self {
            proc_root: host_root.join("proc"),
            sys_root: host_root.join("sys"),
        }
    }

    /// `<sys>/class/block/<name of device>`.
    fn sys_block(&self, device: &Path) -> Option<PathBuf> {
        let name = device.file_name()?;
        Some(self.sys_root.join("class/block").join(name))
    }
}

#[allow(clippy::result_large_err)]
impl Filesystems for LinuxFilesystems {
    fn mounts(&self) -> Result<Vec<MountInfo>, FsError> {
        node_fs::mountinfo::read(&self.proc_root)
    }

    async fn probe(&self, device: &Path, timeout: Duration) -> Result<Probe, FsError> {
        node_fs::probe::probe(device, timeout).await
    }

    async fn make_filesystem(
        &self,
        device: &Path,
        fs: FsType,
        timeout: Duration,
    ) -> Result<Prepared, FsError> {
        node_fs::format::format_if_empty(device, fs, timeout).await
    }

    async fn mount(
        &self,
        device: &Path,
        target: &Path,
        fs: FsType,
        options: &[String],
        read_only: bool,
    ) -> Result<(), FsError> {
        node_fs::mount::mount(device, target, fs, options, read_only)
    }

    async fn bind(&self, source: &Path, target: &Path, read_only: bool) -> Result<(), FsError> {
        node_fs::mount::bind(source, target, read_only)
    }

    async fn unmount(&self, target: &Path) -> Result<bool, FsError> {
        node_fs::mount::unmount(target)
    }

    async fn grow(
        &self,
        fs: FsType,
        device: &Path,
        mount_point: &Path,
        timeout: Duration,
    ) -> Result<(), FsError> {
        node_fs::resize::grow(fs, device, mount_point, timeout).await
    }

    async fn filesystem_size(
        &self,
        fs: FsType,
        device: &Path,
        timeout: Duration,
    ) -> Result<u64, FsError> {
        node_fs::fs_size::size(fs, device, timeout).await
    }

    fn fs_stats(&self, path: &Path) -> Result<FsStats, FsError> {
        node_fs::stats::fs_stats(path)
    }

    fn block_size(&self, device: &Path) -> Result<u64, FsError> {
        node_fs::stats::block_size(&self.sys_root, device)
    }

    fn block_device_exists(&self, device: &Path) -> bool {
        self.sys_block(device).is_some_and(|dir| dir.exists())
    }

    fn disk_sequence(&self, device: &Path) -> Option<u64> {
        let dir = self.sys_block(device)?;
        std::fs::read_to_string(dir.join("diskseq"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    async fn create_file(&self, path: &Path) -> io::Result<()> {
        if path.exists() {
            return Ok(());
        }
        std::fs::File::create(path).map(drop)
    }

    async fn remove(&self, path: &Path) -> io::Result<()> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir(path),
            Ok(_) => std::fs::remove_file(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}
