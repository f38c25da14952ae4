//! [`FakeFilesystems`]: the filesystems view of a [`FakeWorld`]: probes of
//! the image behind a device (or the plaintext behind a mapping), mkfs only
//! of an empty one, a mount table in which a mount outlives its disk,
//! directories and files.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The fake filesystems, mount table and paths: a view of a [`FakeWorld`].
#[derive(Clone)]
pub struct FakeFilesystems(pub(super) FakeWorld);

#[allow(clippy::result_large_err)]
impl FakeFilesystems {
    /// The device at `device` and what it shows, if it exists now and can
    /// be read (a mapping whose disk is gone cannot).
    fn view_of(&self, device: &Path) -> Result<(DeviceInfo, Contents), FsError> {
        let w = self.0.world();
        let info = w
            .device(device, Instant::now())
            .ok_or_else(|| FsError::Io {
                op: "opening",
                path: device.to_path_buf(),
                source: os(ENOENT),
            })?;
        let contents = w.contents_at(&info.target).ok_or(FsError::Io {
            op: "reading",
            path: device.to_path_buf(),
            source: os(EIO),
        })?;
        Ok((info, contents))
    }
}

fn probe_of(contents: &Contents) -> Probe {
    match contents {
        Contents::Empty => Probe::Empty,
        Contents::Filesystem(fs, _) => Probe::Filesystem(fs.as_str().to_owned()),
        Contents::ForeignFilesystem(name) => Probe::Filesystem(name.clone()),
        Contents::Other(what) => Probe::Other(what.clone()),
        Contents::Noise => {
            Probe::Other("data without a known signature: a non-zero byte at offset 0".into())
        }
        Contents::Luks { label, .. } => Probe::Luks {
            label: Some(label.clone()),
        },
    }
}

/// The image of a device, and whether through a mapping.
fn image_key(target: &Target) -> (String, bool) {
    match target {
        Target::Disk { nqn } => (nqn.clone(), false),
        Target::Mapping { nqn, .. } => (nqn.clone(), true),
    }
}

#[allow(clippy::result_large_err)]
impl FakeFilesystems {
    /// Makes `fs` on the device `info` (at `device`), filling it.
    async fn format(
        &self,
        device: &Path,
        info: &DeviceInfo,
        fs: FsType,
    ) -> Result<Prepared, FsError> {
        {
            let mut w = self.0.world();
            w.set_contents_at(&info.target, Contents::Filesystem(fs, info.size));
            w.formatted.push((device.display().to_string(), fs));
        }
        self.0.changed("mkfs").await;
        Ok(Prepared::Formatted)
    }

    /// The `mkfs` step: fails when told to, keeps what is on a device whose
    /// contents `blank` does not accept, and formats the others.
    async fn mkfs_if(
        &self,
        device: &Path,
        fs: FsType,
        blank: fn(&Contents) -> bool,
    ) -> Result<Prepared, FsError> {
        if self.0.before("mkfs").await {
            return Err(FsError::Io {
                op: "writing",
                path: device.to_path_buf(),
                source: os(EIO),
            });
        }
        let (info, contents) = self.view_of(device)?;
        if !blank(&contents) {
            return Ok(Prepared::Existing(probe_of(&contents)));
        }
        self.format(device, &info, fs).await
    }
}

#[allow(clippy::result_large_err)]
impl crate::fs::Filesystems for FakeFilesystems {
    fn mounts(&self) -> Result<Vec<MountInfo>, FsError> {
        let w = self.0.world();
        Ok(w.mounts
            .iter()
            .map(|m| MountInfo {
                mount_id: m.mount_id,
                parent_id: 1,
                major: m.dev.0,
                minor: m.dev.1,
                root: m.root.clone(),
                mount_point: m.target.clone(),
                options: vec![if m.read_only { "ro" } else { "rw" }.to_owned()],
                fs_type: m.fs_type.clone(),
                source: m.source.clone(),
                super_options: vec!["rw".to_owned()],
            })
            .collect())
    }

    async fn probe(&self, device: &Path, _timeout: Duration) -> Result<Probe, FsError> {
        if self.0.before("probe").await {
            return Err(FsError::Probe {
                device: device.to_path_buf(),
                reason: "blkid exited with status 8 (the fake was told to fail)".into(),
            });
        }
        let (_, contents) = self.view_of(device)?;
        Ok(probe_of(&contents))
    }

    async fn make_filesystem(
        &self,
        device: &Path,
        fs: FsType,
        _timeout: Duration,
    ) -> Result<Prepared, FsError> {
        self.mkfs_if(device, fs, |c| *c == Contents::Empty).await
    }

    async fn make_fresh_filesystem(
        &self,
        device: &Path,
        fs: FsType,
        _timeout: Duration,
    ) -> Result<Prepared, FsError> {
        self.mkfs_if(device, fs, |c| {
            matches!(c, Contents::Empty | Contents::Noise)
        })
        .await
    }

    async fn mount(
        &self,
        device: &Path,
        target: &Path,
        fs: FsType,
        options: &[String],
        read_only: bool,
    ) -> Result<(), FsError> {
        let failed = self.0.before("mount").await;
        let error = |errno| FsError::Mount {
            device: device.to_path_buf(),
            target: target.to_path_buf(),
            fs_type: fs,
            flags: String::new(),
            data: String::new(),
            source: os(errno),
            hint: "",
        };
        if failed {
            return Err(error(EIO));
        }
        if !self.0.world().is_dir(target) {
            return Err(error(ENOENT));
        }
        let (info, contents) = self.view_of(device).map_err(|_| error(ENOENT))?;
        if !matches!(contents, Contents::Filesystem(found, _) if found == fs) {
            return Err(error(EINVAL));
        }
        {
            let mut w = self.0.world();
            let mount_id = next_mount_id(&mut w);
            let major = match info.target {
                Target::Disk { .. } => 259,
                Target::Mapping { .. } => 253,
            };
            w.mounts.push(Mount {
                mount_id,
                target: target.to_path_buf(),
                source: device.display().to_string(),
                fs_type: fs.as_str().to_owned(),
                root: "/".into(),
                dev: (major, u32::try_from(info.diskseq).unwrap_or(u32::MAX)),
                read_only,
                image: Some(image_key(&info.target)),
                options: options.to_vec(),
            });
        }
        self.0.changed("mount").await;
        Ok(())
    }

    async fn bind(&self, source: &Path, target: &Path, read_only: bool) -> Result<(), FsError> {
        let failed = self.0.before("bind").await;
        let error = |errno| FsError::Bind {
            from: source.to_path_buf(),
            target: target.to_path_buf(),
            source: os(errno),
            hint: "",
        };
        if failed {
            return Err(error(EIO));
        }
        {
            let now = Instant::now();
            let mut w = self.0.world();
            if !w.exists(target, now) {
                return Err(error(ENOENT));
            }
            let mount = if let Some(from) = w.top_mount(source).cloned() {
                Mount {
                    target: target.to_path_buf(),
                    read_only,
                    ..from
                }
            } else if let Some(device) = w.device(source, now) {
                Mount {
                    mount_id: 0,
                    target: target.to_path_buf(),
                    source: "udev".into(),
                    fs_type: "devtmpfs".into(),
                    root: Path::new("/").join(&device.name),
                    dev: (0, 5),
                    read_only,
                    image: None,
                    options: Vec::new(),
                }
            } else {
                return Err(error(ENOENT));
            };
            let mount_id = next_mount_id(&mut w);
            w.mounts.push(Mount { mount_id, ..mount });
        }
        self.0.changed("bind").await;
        Ok(())
    }

    async fn unmount(&self, target: &Path) -> Result<bool, FsError> {
        let failed = self.0.before("unmount").await;
        let error = |errno| FsError::Unmount {
            target: target.to_path_buf(),
            source: os(errno),
            hint: "",
        };
        {
            let mut w = self.0.world();
            if failed || w.busy.contains(target) {
                return Err(error(EBUSY));
            }
            let Some(at) = w.mounts.iter().rposition(|m| m.target == target) else {
                return Ok(false);
            };
            w.mounts.remove(at);
        }
        self.0.changed("unmount").await;
        Ok(true)
    }

    async fn grow(
        &self,
        fs: FsType,
        device: &Path,
        mount_point: &Path,
        _timeout: Duration,
    ) -> Result<(), FsError> {
        if self.0.before("grow").await {
            return Err(FsError::Io {
                op: "growing",
                path: mount_point.to_path_buf(),
                source: os(EIO),
            });
        }
        let (info, contents) = self.view_of(device)?;
        {
            let mut w = self.0.world();
            if matches!(contents, Contents::Filesystem(found, _) if found == fs) {
                w.set_contents_at(&info.target, Contents::Filesystem(fs, info.size));
            }
            w.grown += 1;
        }
        self.0.changed("grow").await;
        Ok(())
    }

    async fn filesystem_size(
        &self,
        fs: FsType,
        device: &Path,
        _timeout: Duration,
    ) -> Result<u64, FsError> {
        if self.0.before("fs-size").await {
            return Err(FsError::Io {
                op: "reading",
                path: device.to_path_buf(),
                source: os(EIO),
            });
        }
        let (_, contents) = self.view_of(device)?;
        match contents {
            Contents::Filesystem(found, size) if found == fs => Ok(size),
            _ => Err(FsError::Superblock {
                device: device.to_path_buf(),
                fs,
            }),
        }
    }

    fn fs_stats(&self, path: &Path) -> Result<FsStats, FsError> {
        let w = self.0.world();
        let size = w
            .top_mount(path)
            .and_then(|m| m.image.as_ref())
            .and_then(|(nqn, mapped)| {
                let contents = &w.images.get(nqn)?.contents;
                if *mapped {
                    contents.plaintext()
                } else {
                    Some(contents)
                }
            })
            .and_then(|c| match c {
                Contents::Filesystem(_, size) => Some(*size),
                _ => None,
            })
            .ok_or_else(|| FsError::Io {
                op: "statvfs",
                path: path.to_path_buf(),
                source: os(ENOENT),
            })?;
        Ok(FsStats {
            total_bytes: size,
            available_bytes: size / 2,
            used_bytes: size / 2,
            total_inodes: 1000,
            free_inodes: 900,
            used_inodes: 100,
        })
    }

    fn block_size(&self, device: &Path) -> Result<u64, FsError> {
        self.0
            .world()
            .device(device, Instant::now())
            .map(|d| d.size)
            .ok_or_else(|| FsError::NotBlockDevice {
                path: device.to_path_buf(),
            })
    }

    fn block_device_exists(&self, device: &Path) -> bool {
        self.0.world().device(device, Instant::now()).is_some()
    }

    fn disk_sequence(&self, device: &Path) -> Option<u64> {
        self.0
            .world()
            .device(device, Instant::now())
            .map(|d| d.diskseq)
    }

    fn exists(&self, path: &Path) -> bool {
        self.0.world().exists(path, Instant::now())
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        if self.0.before("mkdir").await {
            return Err(os(EIO));
        }
        let created = {
            let mut w = self.0.world();
            if w.files.contains(path) {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            let created = !w.is_dir(path);
            add_dirs(&mut w, path);
            created
        };
        if created {
            self.0.changed("mkdir").await;
        }
        Ok(())
    }

    async fn create_file(&self, path: &Path) -> io::Result<()> {
        if self.0.before("create").await {
            return Err(os(EIO));
        }
        {
            let mut w = self.0.world();
            if w.exists(path, Instant::now()) {
                return Ok(());
            }
            if !path.parent().is_some_and(|p| w.is_dir(p)) {
                return Err(os(ENOENT));
            }
            w.files.insert(path.to_path_buf());
        }
        self.0.changed("create").await;
        Ok(())
    }

    async fn remove(&self, path: &Path) -> io::Result<()> {
        if self.0.before("remove").await {
            return Err(os(EIO));
        }
        {
            let mut w = self.0.world();
            if w.mounts.iter().any(|m| m.target == path) {
                return Err(os(EBUSY));
            }
            if w.files.remove(path) {
            } else if w.dirs.contains(path) {
                let inside = |p: &PathBuf| p != path && p.starts_with(path);
                if w.dirs.iter().any(inside) || w.files.iter().any(inside) {
                    return Err(io::Error::from(io::ErrorKind::DirectoryNotEmpty));
                }
                w.dirs.remove(path);
            } else {
                return Ok(());
            }
        }
        self.0.changed("remove").await;
        Ok(())
    }
}
