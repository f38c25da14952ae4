//! Device-mapper devices as sysfs shows them: the mappings `cryptsetup open`
//! makes, their names, and the disks under them.
//!
//! A mapping is `<sys>/class/block/dm-N`, with `dm/name` (the name it was
//! opened as), `dm/uuid` (`CRYPT-LUKS2-<uuid>-<name>` for a LUKS2 mapping
//! `cryptsetup` made), `size` (512-byte sectors), `diskseq`, and `slaves/`,
//! a link to each disk it sits on. When such a disk goes away (the kernel
//! gave up on its NVMe/TCP controller), the mapping stays and its link in
//! `slaves/` stays too, dangling; and a later disk may get the same name. So
//! a disk under a mapping counts as there only if it also links back:
//! `<sys>/class/block/<disk>/holders/dm-N` exists. Checked on Debian's 6.1
//! kernel in the test guest, with an NVMe/TCP namespace under a LUKS2
//! mapping and its controller deleted.
//!
//! Everything is read under an injected sysfs root, so tests build the tree
//! in a temporary folder.

use std::io;
use std::path::{Path, PathBuf};

/// One device-mapper device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmDevice {
    /// The kernel's name, `dm-N`: its device node is `/dev/dm-N`. Reused
    /// after the device is removed, like a disk's name.
    pub kernel_name: String,
    /// The name it was made with (`dm/name`), as in `/dev/mapper/<name>`.
    pub name: String,
    /// Its device-mapper UUID (`dm/uuid`); empty when it has none.
    pub uuid: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// Its disk sequence number, if the kernel has them.
    pub diskseq: Option<u64>,
    /// The disks under it.
    pub slaves: Vec<Slave>,
}

/// A disk under a device-mapper device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slave {
    /// The disk's name, as the link in `slaves/` has it.
    pub name: String,
    /// Whether a disk of that name exists and names the mapping among its
    /// holders: the disk the mapping was made on, not a gone one or a later
    /// one that took its name.
    pub there: bool,
}

impl DmDevice {
    /// The device node, `/dev/dm-N` (on the host, not under a root).
    pub fn path(&self) -> PathBuf {
        Path::new("/dev").join(&self.kernel_name)
    }

    /// The disk it sits on, if it sits on exactly one and that one is still
    /// there (see [`Slave::there`]).
    pub fn backing(&self) -> Option<&str> {
        match self.slaves.as_slice() {
            [only] if only.there => Some(&only.name),
            _ => None,
        }
    }
}

/// Every device-mapper device under the sysfs root `sys`. A device that goes
/// away while it is read is left out.
pub fn list(sys: &Path) -> io::Result<Vec<DmDevice>> {
    let class = sys.join("class/block");
    let entries = match std::fs::read_dir(&class) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(at(&class, e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_dm_name(n))
        .collect();
    names.sort_by_key(|n| n[3..].parse::<u64>().unwrap_or(u64::MAX));
    let mut devices = Vec::with_capacity(names.len());
    for kernel_name in names {
        if let Some(device) = read(sys, &kernel_name)? {
            devices.push(device);
        }
    }
    Ok(devices)
}

/// The device-mapper device named `name` (as in `/dev/mapper/<name>`), if
/// there is one.
pub fn find(sys: &Path, name: &str) -> io::Result<Option<DmDevice>> {
    Ok(list(sys)?.into_iter().find(|d| d.name == name))
}

/// `dm-` and digits.
fn is_dm_name(name: &str) -> bool {
    name.strip_prefix("dm-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Reads `<sys>/class/block/<kernel_name>`; `None` if it is gone.
fn read(sys: &Path, kernel_name: &str) -> io::Result<Option<DmDevice>> {
    let class = sys.join("class/block");
    let dir = class.join(kernel_name);
    let Some(name) = attribute(&dir.join("dm/name"))? else {
        return Ok(None);
    };
    let uuid = attribute(&dir.join("dm/uuid"))?.unwrap_or_default();
    let sectors = attribute(&dir.join("size"))?.unwrap_or_default();
    let size_bytes = sectors
        .parse::<u64>()
        .map_err(|_| {
            at(
                &dir.join("size"),
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{sectors:?} is not a number of sectors"),
                ),
            )
        })?
        .saturating_mul(512);
    let diskseq = attribute(&dir.join("diskseq"))?.and_then(|s| s.parse().ok());
    let slaves_dir = dir.join("slaves");
    let mut slaves = Vec::new();
    match std::fs::read_dir(&slaves_dir) {
        Ok(entries) => {
            for entry in entries.filter_map(Result::ok) {
                let Ok(disk) = entry.file_name().into_string() else {
                    continue;
                };
                let there = class.join(&disk).join("holders").join(kernel_name);
                slaves.push(Slave {
                    there: std::fs::symlink_metadata(&there).is_ok(),
                    name: disk,
                });
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(at(&slaves_dir, e)),
    }
    slaves.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Some(DmDevice {
        kernel_name: kernel_name.to_owned(),
        name,
        uuid,
        size_bytes,
        diskseq,
        slaves,
    }))
}

/// A sysfs attribute, trimmed; `None` if it does not exist.
fn attribute(path: &Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(at(path, e)),
    }
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Builds device-mapper devices and disks in a fake sysfs tree, for tests
/// here and in other crates.
pub mod testing {
    use std::io;
    use std::path::{Path, PathBuf};

    /// A fake `<sys>/class/block` and `<sys>/devices`, as the kernel lays
    /// them out.
    #[derive(Debug, Clone)]
    pub struct FakeDm {
        sys: PathBuf,
    }

    impl FakeDm {
        /// A tree under `sys` (made if needed).
        pub fn new(sys: impl Into<PathBuf>) -> io::Result<Self> {
            let sys = sys.into();
            std::fs::create_dir_all(sys.join("class/block"))?;
            std::fs::create_dir_all(sys.join("devices/virtual/block"))?;
            Ok(Self { sys })
        }

        /// The sysfs root.
        pub fn sys(&self) -> &Path {
            &self.sys
        }

        /// A disk `name` of `bytes` bytes.
        pub fn add_disk(&self, name: &str, bytes: u64) -> io::Result<()> {
            let dir = self.sys.join("devices/virtual/nvme-subsystem").join(name);
            std::fs::create_dir_all(dir.join("holders"))?;
            std::fs::write(dir.join("size"), format!("{}\n", bytes / 512))?;
            link(&dir, &self.sys.join("class/block").join(name))
        }

        /// Removes disk `name`, as the kernel does when its controller is
        /// gone; mappings on it keep their dangling link to it.
        pub fn remove_disk(&self, name: &str) -> io::Result<()> {
            std::fs::remove_file(self.sys.join("class/block").join(name))?;
            std::fs::remove_dir_all(self.sys.join("devices/virtual/nvme-subsystem").join(name))
        }

        /// A mapping `dm-<n>` named `name` with `uuid`, on `disks`.
        pub fn add_mapping(
            &self,
            n: u32,
            name: &str,
            uuid: &str,
            bytes: u64,
            disks: &[&str],
        ) -> io::Result<()> {
            let kernel = format!("dm-{n}");
            let dir = self.sys.join("devices/virtual/block").join(&kernel);
            std::fs::create_dir_all(dir.join("dm"))?;
            std::fs::create_dir_all(dir.join("slaves"))?;
            std::fs::write(dir.join("dm/name"), format!("{name}\n"))?;
            std::fs::write(dir.join("dm/uuid"), format!("{uuid}\n"))?;
            std::fs::write(dir.join("size"), format!("{}\n", bytes / 512))?;
            std::fs::write(dir.join("diskseq"), format!("{}\n", 100 + n))?;
            for disk in disks {
                let target = self.sys.join("devices/virtual/nvme-subsystem").join(disk);
                link(&target, &dir.join("slaves").join(disk))?;
                link(&dir, &target.join("holders").join(&kernel))?;
            }
            link(&dir, &self.sys.join("class/block").join(&kernel))
        }

        /// Removes mapping `dm-<n>`.
        pub fn remove_mapping(&self, n: u32) -> io::Result<()> {
            let kernel = format!("dm-{n}");
            std::fs::remove_file(self.sys.join("class/block").join(&kernel))?;
            std::fs::remove_dir_all(self.sys.join("devices/virtual/block").join(&kernel))
        }
    }

    fn link(target: &Path, at: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, at)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::FakeDm;
    use super::*;

    const UUID: &str = "CRYPT-LUKS2-361cc11e79b546048fbc530a80a72eda-rds-csi-pvc-1";

    #[test]
    fn mappings_are_read_with_the_disks_under_them() {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeDm::new(dir.path()).unwrap();
        fake.add_disk("nvme0n1", 1 << 30).unwrap();
        fake.add_mapping(
            0,
            "rds-csi-pvc-1",
            UUID,
            (1 << 30) - (16 << 20),
            &["nvme0n1"],
        )
        .unwrap();
        let all = list(fake.sys()).unwrap();
        assert_eq!(all.len(), 1);
        let m = &all[0];
        assert_eq!(
            (m.kernel_name.as_str(), m.name.as_str(), m.uuid.as_str()),
            ("dm-0", "rds-csi-pvc-1", UUID)
        );
        assert_eq!(m.size_bytes, (1 << 30) - (16 << 20));
        assert_eq!(m.diskseq, Some(100));
        assert_eq!(m.path(), Path::new("/dev/dm-0"));
        assert_eq!(m.backing(), Some("nvme0n1"));
        assert_eq!(find(fake.sys(), "rds-csi-pvc-1").unwrap(), Some(m.clone()));
        assert_eq!(find(fake.sys(), "rds-csi-pvc-2").unwrap(), None);
    }

    #[test]
    fn a_gone_disk_and_a_later_one_of_its_name_are_not_the_backing() {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeDm::new(dir.path()).unwrap();
        fake.add_disk("nvme0n1", 1 << 30).unwrap();
        fake.add_mapping(3, "rds-csi-pvc-1", UUID, 1 << 29, &["nvme0n1"])
            .unwrap();
        // The controller is gone: the link in slaves/ dangles.
        fake.remove_disk("nvme0n1").unwrap();
        let m = find(fake.sys(), "rds-csi-pvc-1").unwrap().unwrap();
        assert_eq!(m.slaves.len(), 1);
        assert!(!m.slaves[0].there);
        assert_eq!(m.backing(), None);
        // A new disk took the name, but does not hold the mapping.
        fake.add_disk("nvme0n1", 1 << 30).unwrap();
        let m = find(fake.sys(), "rds-csi-pvc-1").unwrap().unwrap();
        assert_eq!(m.backing(), None);
    }

    #[test]
    fn devices_are_listed_in_number_order_and_others_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeDm::new(dir.path()).unwrap();
        fake.add_disk("nvme0n1", 1 << 30).unwrap();
        for n in [10, 2] {
            fake.add_mapping(n, &format!("m{n}"), "", 1 << 20, &[])
                .unwrap();
        }
        let names: Vec<String> = list(fake.sys())
            .unwrap()
            .into_iter()
            .map(|d| d.kernel_name)
            .collect();
        assert_eq!(names, ["dm-2", "dm-10"]);
        assert!(is_dm_name("dm-0") && !is_dm_name("dm-") && !is_dm_name("dmx-1"));
        // No sysfs at all: nothing.
        assert!(list(&dir.path().join("nowhere")).unwrap().is_empty());
    }
}
