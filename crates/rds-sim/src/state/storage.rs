//! The simulated storage: pools are folders under the root, images are real
//! sparse files in them.
//!
//! Everything a script names is checked to stay under the root: paths are
//! split into plain segments (no `.`, `..` or empty ones) and symbolic links
//! are neither followed nor listed, so no script can reach outside the
//! simulator's folder.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use std::collections::BTreeMap;

use crate::btrfs;
use crate::config::{BTRFS, PoolConfig, SimConfig, is_segment};
use crate::error::{CmdError, SimError};
use crate::records::PoolSpace;
use crate::state::persist::STATE_DIR;

/// What a `/file` entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A pool's mount point.
    Disk,
    /// A folder in a pool.
    Directory,
    /// A regular file.
    File,
}

/// One entry of `/file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// RouterOS name: the path under the root without a leading slash,
    /// e.g. `raid10/volumes/x.img`.
    pub name: String,
    /// Kind of entry.
    pub kind: EntryKind,
    /// Logical size in bytes (0 for folders).
    pub size: u64,
    /// Last modification, shown as `creation-time`.
    pub modified: Option<SystemTime>,
}

/// An image path from a script, checked and resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePath {
    /// The pool it is on.
    pub pool: String,
    /// Absolute RouterOS form, `/raid10/volumes/x.img`.
    pub name: String,
    /// Where the file is on the host.
    pub path: PathBuf,
}

/// The pools' folders under the simulator's root.
#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
    pools: Vec<PoolConfig>,
    /// The labels of the btrfs pools' filesystems, by pool name, read when
    /// the simulator opens ([`Storage::open_filesystems`]).
    labels: BTreeMap<String, String>,
}

fn io_error(e: std::io::Error) -> CmdError {
    CmdError::Io(e.to_string())
}

impl Storage {
    /// Storage for `config` (nothing is touched until [`Storage::prepare`]).
    pub fn new(config: &SimConfig) -> Storage {
        Storage {
            root: config.root.clone(),
            pools: config.pools.clone(),
            labels: BTreeMap::new(),
        }
    }

    /// Checks that every btrfs pool's folder is the top of a mounted btrfs
    /// filesystem, and reads its label.
    pub fn open_filesystems(&mut self) -> Result<(), SimError> {
        for pool in &self.pools {
            if pool.fs != BTRFS {
                continue;
            }
            let path = self.root.join(&pool.name);
            let config = |reason: String| {
                SimError::Config(format!(
                    "pool {:?} is configured as btrfs, but {}: {reason}",
                    pool.name,
                    path.display()
                ))
            };
            if !btrfs::is_btrfs_top(&path).map_err(config)? {
                return Err(config(
                    "it is not the top of a mounted btrfs filesystem".to_owned(),
                ));
            }
            let label = btrfs::label(&path).map_err(config)?;
            self.labels.insert(pool.name.clone(), label);
        }
        Ok(())
    }

    /// Whether `pool` is a btrfs pool.
    pub fn is_btrfs(&self, pool: &str) -> bool {
        self.labels.contains_key(pool)
    }

    /// The btrfs pool whose filesystem has label `label`.
    pub fn btrfs_pool_by_label(&self, label: &str) -> Option<&PoolConfig> {
        let (name, _) = self.labels.iter().find(|(_, l)| *l == label)?;
        self.pool(name)
    }

    /// The label of `pool`'s filesystem; empty for pools that are not btrfs.
    pub fn label(&self, pool: &str) -> &str {
        self.labels.get(pool).map_or("", String::as_str)
    }

    /// Where `pool`'s folder is on the host.
    pub fn pool_root(&self, pool: &str) -> PathBuf {
        self.root.join(pool)
    }

    /// Size, free space and label of `pool`. A btrfs pool reports its
    /// filesystem's own figures, since snapshots share data and the logical
    /// sizes of its files say nothing about its use.
    pub fn space(&self, pool: &PoolConfig) -> Result<PoolSpace, CmdError> {
        if self.is_btrfs(&pool.name) {
            let (size, free) = btrfs::space(&self.pool_root(&pool.name)).map_err(CmdError::Io)?;
            return Ok(PoolSpace {
                size,
                free,
                label: self.label(&pool.name).to_owned(),
            });
        }
        Ok(PoolSpace {
            size: pool.capacity,
            free: pool.capacity.saturating_sub(self.used(&pool.name)?),
            label: String::new(),
        })
    }

    /// Creates the pool folders, their configured subfolders and the state
    /// folder.
    pub fn prepare(&self) -> Result<(), SimError> {
        let mut dirs = vec![self.root.join(STATE_DIR)];
        for pool in &self.pools {
            dirs.push(self.root.join(&pool.name));
            dirs.extend(
                pool.directories
                    .iter()
                    .map(|d| self.root.join(&pool.name).join(d)),
            );
        }
        for path in dirs {
            fs::create_dir_all(&path).map_err(|source| SimError::CreateDir { path, source })?;
        }
        Ok(())
    }

    /// The configured pools.
    pub fn pools(&self) -> &[PoolConfig] {
        &self.pools
    }

    /// The pool called `name`.
    pub fn pool(&self, name: &str) -> Option<&PoolConfig> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// Bytes used in `pool`: the logical sizes of its files, sparse or not,
    /// because the pool must be able to hold every image written in full.
    pub fn used(&self, pool: &str) -> Result<u64, CmdError> {
        let mut entries = Vec::new();
        walk(&self.root.join(pool), pool, &mut entries)?;
        Ok(entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.size)
            .fold(0u64, u64::saturating_add))
    }

    /// Every entry of `/file`, sorted by name: pool mount points, folders and
    /// files.
    pub fn entries(&self) -> Result<Vec<FileEntry>, CmdError> {
        let mut entries = Vec::new();
        for pool in &self.pools {
            let path = self.root.join(&pool.name);
            let modified = fs::symlink_metadata(&path).and_then(|m| m.modified()).ok();
            entries.push(FileEntry {
                name: pool.name.clone(),
                kind: EntryKind::Disk,
                size: 0,
                modified,
            });
            walk(&path, &pool.name, &mut entries)?;
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// The one entry of `/file` called `name`, if it exists: a single lookup
    /// instead of a walk, for `find where name="…"`. Folders and files only;
    /// a pool's mount point is found by [`Storage::entries`].
    pub fn entry(&self, name: &str) -> Result<Option<FileEntry>, CmdError> {
        let mut segments = name.split('/');
        let on_pool = segments
            .next()
            .is_some_and(|pool| self.pool(pool).is_some());
        if !on_pool || !name.split('/').all(is_segment) {
            return Ok(None);
        }
        let meta = match fs::symlink_metadata(self.root.join(name)) {
            Ok(meta) => meta,
            // A name below a regular file names nothing, like a missing one.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(io_error(e)),
        };
        let kind = if meta.is_dir() {
            EntryKind::Directory
        } else if meta.is_file() {
            EntryKind::File
        } else {
            return Ok(None);
        };
        Ok(Some(FileEntry {
            name: name.to_owned(),
            kind,
            size: if kind == EntryKind::File {
                meta.len()
            } else {
                0
            },
            modified: meta.modified().ok(),
        }))
    }

    /// Checks an image path given to `/disk add`: plain segments, the first
    /// naming a pool, and an existing parent folder. The leading slash is
    /// optional (RouterOS's examples show both forms); the result has it.
    pub fn resolve_image(&self, file_path: &str) -> Result<ImagePath, CmdError> {
        let relative = file_path.strip_prefix('/').unwrap_or(file_path);
        let segments: Vec<&str> = relative.split('/').collect();
        if !segments.iter().all(|s| is_segment(s)) {
            return Err(CmdError::InvalidValue("file-path"));
        }
        let Some(pool) = segments.first().and_then(|s| self.pool(s)) else {
            return Err(CmdError::NotOnPool);
        };
        if segments.len() < 2 {
            return Err(CmdError::NotAFile);
        }
        let mut parent = self.root.clone();
        for segment in &segments[..segments.len() - 1] {
            parent.push(segment);
            match fs::symlink_metadata(&parent) {
                Ok(meta) if meta.is_dir() => {}
                Ok(meta) if meta.is_file() => return Err(CmdError::NotADirectory),
                _ => return Err(CmdError::NoSuchDirectory),
            }
        }
        Ok(ImagePath {
            pool: pool.name.clone(),
            name: format!("/{}", segments.join("/")),
            path: self.root.join(relative),
        })
    }

    /// The length of the image if it exists as a regular file.
    pub fn existing_len(&self, image: &ImagePath) -> Result<Option<u64>, CmdError> {
        match fs::symlink_metadata(&image.path) {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Err(CmdError::NotAFile),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(e)),
        }
    }

    /// Creates the image if needed and grows it to `size` bytes, sparsely.
    /// Never shrinks: a larger existing file keeps its data.
    pub fn ensure_size(&self, image: &ImagePath, size: u64) -> Result<(), CmdError> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&image.path)
            .map_err(io_error)?;
        let len = file.metadata().map_err(io_error)?.len();
        if size > len {
            file.set_len(size).map_err(io_error)?;
        }
        Ok(())
    }

    /// Replaces the image with a new, empty sparse file of `size` bytes.
    pub fn replace(&self, image: &ImagePath, size: u64) -> Result<(), CmdError> {
        fs::remove_file(&image.path).map_err(io_error)?;
        self.ensure_size(image, size)
    }

    /// Sets the image's length to `size`, shrinking or growing it.
    pub fn set_len(&self, image: &ImagePath, size: u64) -> Result<(), CmdError> {
        let file = OpenOptions::new()
            .write(true)
            .open(&image.path)
            .map_err(io_error)?;
        file.set_len(size).map_err(io_error)
    }

    /// Deletes the `/file` entry called `name`: a file, or an empty folder.
    pub fn remove(&self, entry: &FileEntry) -> Result<(), CmdError> {
        let path = self.host_path(&entry.name)?;
        match entry.kind {
            EntryKind::Disk => Err(CmdError::MountPointRemove),
            EntryKind::File => fs::remove_file(path).map_err(io_error),
            EntryKind::Directory => {
                let mut children = fs::read_dir(&path).map_err(io_error)?;
                if children.next().is_some() {
                    return Err(CmdError::DirectoryNotEmpty);
                }
                fs::remove_dir(path).map_err(io_error)
            }
        }
    }

    fn host_path(&self, name: &str) -> Result<PathBuf, CmdError> {
        if !name.split('/').all(is_segment) {
            return Err(CmdError::NoSuchItem);
        }
        Ok(self.root.join(name))
    }
}

/// Lists everything under `dir` (named `prefix` in RouterOS form) into
/// `out`, without following symbolic links. Names that are not UTF-8 cannot
/// be written in a script and are left out.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<FileEntry>) -> Result<(), CmdError> {
    let reader = match fs::read_dir(dir) {
        Ok(reader) => reader,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(e)),
    };
    for item in reader {
        let item = item.map_err(io_error)?;
        let Some(file_name) = item.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let meta = item.path().symlink_metadata().map_err(io_error)?;
        let name = format!("{prefix}/{file_name}");
        let modified = meta.modified().ok();
        if meta.is_dir() {
            out.push(FileEntry {
                name: name.clone(),
                kind: EntryKind::Directory,
                size: 0,
                modified,
            });
            walk(&item.path(), &name, out)?;
        } else if meta.is_file() {
            out.push(FileEntry {
                name,
                kind: EntryKind::File,
                size: meta.len(),
                modified,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(dir: &Path) -> Storage {
        let s = Storage::new(&SimConfig::single_pool(dir, "raid10", 1 << 30));
        s.prepare().unwrap();
        s
    }

    #[test]
    fn image_paths_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(dir.path());
        let img = s.resolve_image("/raid10/volumes/a.img").unwrap();
        assert_eq!(img.name, "/raid10/volumes/a.img");
        assert_eq!(img.path, dir.path().join("raid10/volumes/a.img"));
        assert_eq!(s.resolve_image("raid10/volumes/a.img").unwrap(), img);
        assert_eq!(s.resolve_image("/nvme1/a.img"), Err(CmdError::NotOnPool));
        assert_eq!(
            s.resolve_image("/raid10/nope/a.img"),
            Err(CmdError::NoSuchDirectory)
        );
        assert_eq!(
            s.resolve_image("/raid10/../x.img"),
            Err(CmdError::InvalidValue("file-path"))
        );
        assert_eq!(
            s.resolve_image("/raid10//x.img"),
            Err(CmdError::InvalidValue("file-path"))
        );
        assert_eq!(
            s.resolve_image(""),
            Err(CmdError::InvalidValue("file-path"))
        );
        assert_eq!(s.resolve_image("/raid10"), Err(CmdError::NotAFile));
        // Below a regular file: not a directory, which is not "missing".
        fs::write(dir.path().join("raid10/volumes/a.img"), b"x").unwrap();
        assert_eq!(
            s.resolve_image("/raid10/volumes/a.img/b.img"),
            Err(CmdError::NotADirectory)
        );
        assert_eq!(s.entry("raid10/volumes/a.img/b.img"), Ok(None));
    }

    #[test]
    fn sparse_images_count_at_logical_size() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(dir.path());
        let img = s.resolve_image("/raid10/volumes/a.img").unwrap();
        assert_eq!(s.existing_len(&img).unwrap(), None);
        s.ensure_size(&img, 1 << 20).unwrap();
        s.ensure_size(&img, 1 << 10).unwrap();
        assert_eq!(s.existing_len(&img).unwrap(), Some(1 << 20));
        assert_eq!(s.used("raid10").unwrap(), 1 << 20);
        assert_eq!(s.space(&s.pools()[0]).unwrap().free, (1 << 30) - (1 << 20));
    }

    #[test]
    fn entries_list_pools_folders_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(dir.path());
        fs::write(dir.path().join("raid10/volumes/x.img"), b"abc").unwrap();
        let names: Vec<(String, EntryKind, u64)> = s
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.kind, e.size))
            .collect();
        assert_eq!(
            names,
            vec![
                ("raid10".to_string(), EntryKind::Disk, 0),
                ("raid10/volumes".to_string(), EntryKind::Directory, 0),
                ("raid10/volumes/x.img".to_string(), EntryKind::File, 3),
            ]
        );
    }

    #[test]
    fn removal_rules() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(dir.path());
        fs::write(dir.path().join("raid10/volumes/x.img"), b"abc").unwrap();
        let entries = s.entries().unwrap();
        assert_eq!(s.remove(&entries[0]), Err(CmdError::MountPointRemove));
        assert_eq!(s.remove(&entries[1]), Err(CmdError::DirectoryNotEmpty));
        s.remove(&entries[2]).unwrap();
        s.remove(&entries[1]).unwrap();
        assert_eq!(s.entries().unwrap().len(), 1);
    }
}
