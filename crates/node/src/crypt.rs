//! The seam to LUKS2 encryption on the node: [`Crypt`], what the node's
//! operations ask of it, and its production implementation [`LinuxCrypt`]
//! on `node-fs`'s `cryptsetup` wrappers and device-mapper reader.
//!
//! An encrypted volume's disk (its NVMe/TCP namespace) carries a LUKS2
//! header; the node opens it as a device-mapper mapping named
//! [`mapping_name`] (`rds-csi-<volume ID>`) and works on the mapping's
//! device (`/dev/dm-N`) as it works on a plain volume's disk: probe, mkfs,
//! mount, bind. The prefix is how start-up tells the driver's mappings from
//! anyone else's, together with the device-mapper UUID that `cryptsetup`
//! gives LUKS2 mappings; nothing else is ever closed.
//!
//! The header's label says whether the driver has handed the volume out
//! yet: [`LABEL_NEW`] from `luksFormat` until the volume first gets a
//! filesystem (or is staged as a block volume), [`LABEL_IN_USE`] after.
//! Only a volume labelled new may get a filesystem without the zero check,
//! since the plaintext of a freshly formatted LUKS volume is noise, not
//! zeros (see `node_fs::format::format_fresh`); a crash between format and
//! mkfs therefore still converges, and a volume that held data never
//! passes for new.
//!
//! Changes are async (they run `cryptsetup`); questions (which mapping, on
//! which disk) are quick reads of sysfs. The in-memory stand-in for tests is
//! [`crate::testing::FakeCrypt`].

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use node_fs::crypt::{Closed, CryptError};
use node_fs::secret::Passphrase;
use nvme_host::BlockDevice;

/// The prefix of every mapping this driver opens.
pub const MAPPING_PREFIX: &str = "rds-csi-";

/// The LUKS2 label of a volume formatted by this driver and not handed out
/// yet.
pub const LABEL_NEW: &str = "rds-csi:new";

/// The LUKS2 label of a volume this driver has handed out.
pub const LABEL_IN_USE: &str = "rds-csi";

/// The mapping name of volume `volume_id`: `rds-csi-<volume ID>`, or why the
/// ID cannot name a mapping.
pub fn mapping_name(volume_id: &str) -> Result<String, CryptError> {
    let name = format!("{MAPPING_PREFIX}{volume_id}");
    node_fs::crypt::check_name(&name)?;
    Ok(name)
}

/// An open device-mapper mapping, as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Its name (`/dev/mapper/<name>`).
    pub name: String,
    /// Its block device (`dm-N`, `/dev/dm-N`), size and disk sequence number.
    pub device: BlockDevice,
    /// The disk it sits on, if that disk is still there (see
    /// `node_fs::dm`): `None` once the kernel removed it.
    pub backing: Option<String>,
    /// Whether `cryptsetup` made it for a LUKS2 volume (its device-mapper
    /// UUID says so).
    pub luks2: bool,
}

impl Mapping {
    /// Whether it is one of this driver's: named with [`MAPPING_PREFIX`],
    /// made by `cryptsetup` for LUKS2.
    pub fn is_ours(&self) -> bool {
        self.name.starts_with(MAPPING_PREFIX) && self.luks2
    }

    /// Whether it sits on `disk`, which is still there.
    pub fn is_on(&self, disk: &BlockDevice) -> bool {
        self.backing.as_deref() == Some(disk.name.as_str())
    }
}

/// LUKS2 on the node.
pub trait Crypt: Send + Sync + 'static {
    /// Formats `device` as LUKS2 with `key`, labelled `label`.
    fn format(
        &self,
        device: &Path,
        key: &Passphrase,
        label: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), CryptError>> + Send;

    /// Opens `device` as mapping `name` with `key`; a key no slot takes is
    /// [`CryptError::WrongKey`], and changes nothing.
    fn open(
        &self,
        device: &Path,
        name: &str,
        key: &Passphrase,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), CryptError>> + Send;

    /// Closes mapping `name`; one that is not open is no error.
    fn close(
        &self,
        name: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<Closed, CryptError>> + Send;

    /// Grows mapping `name` to its disk's size, with `key` if one is given.
    fn resize(
        &self,
        name: &str,
        key: Option<&Passphrase>,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), CryptError>> + Send;

    /// Adds `new` to `device`'s header, with `existing` as the authority.
    fn add_key(
        &self,
        device: &Path,
        existing: &Passphrase,
        new: &Passphrase,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), CryptError>> + Send;

    /// Sets the label of `device`'s header.
    fn set_label(
        &self,
        device: &Path,
        label: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), CryptError>> + Send;

    /// The open mapping named `name`, if any.
    fn mapping(&self, name: &str) -> Result<Option<Mapping>, CryptError>;

    /// Every open device-mapper mapping (ours or not: see
    /// [`Mapping::is_ours`]).
    fn mappings(&self) -> Result<Vec<Mapping>, CryptError>;
}

/// LUKS2 on this machine: `cryptsetup`, and sysfs under the host root.
#[derive(Debug, Clone)]
pub struct LinuxCrypt {
    sys_root: PathBuf,
}

impl LinuxCrypt {
    /// The machine whose `/sys` is under `host_root`.
    pub fn new(host_root: &Path) -> Self {
        Self {
            sys_root: host_root.join("sys"),
        }
    }
}

fn mapping_of(device: node_fs::dm::DmDevice) -> Mapping {
    Mapping {
        backing: device.backing().map(str::to_owned),
        luks2: device.uuid.starts_with(node_fs::crypt::LUKS2_UUID_PREFIX),
        device: BlockDevice {
            path: device.path(),
            name: device.kernel_name,
            size_bytes: device.size_bytes,
            diskseq: device.diskseq,
        },
        name: device.name,
    }
}

impl Crypt for LinuxCrypt {
    async fn format(
        &self,
        device: &Path,
        key: &Passphrase,
        label: &str,
        timeout: Duration,
    ) -> Result<(), CryptError> {
        node_fs::crypt::format(device, key, label, timeout).await
    }

    async fn open(
        &self,
        device: &Path,
        name: &str,
        key: &Passphrase,
        timeout: Duration,
    ) -> Result<(), CryptError> {
        node_fs::crypt::open(device, name, key, timeout).await
    }

    async fn close(&self, name: &str, timeout: Duration) -> Result<Closed, CryptError> {
        node_fs::crypt::close(name, timeout).await
    }

    async fn resize(
        &self,
        name: &str,
        key: Option<&Passphrase>,
        timeout: Duration,
    ) -> Result<(), CryptError> {
        node_fs::crypt::resize(name, key, timeout).await
    }

    async fn add_key(
        &self,
        device: &Path,
        existing: &Passphrase,
        new: &Passphrase,
        timeout: Duration,
    ) -> Result<(), CryptError> {
        node_fs::crypt::add_key(device, existing, new, timeout).await
    }

    async fn set_label(
        &self,
        device: &Path,
        label: &str,
        timeout: Duration,
    ) -> Result<(), CryptError> {
        node_fs::crypt::set_label(device, label, timeout).await
    }

    fn mapping(&self, name: &str) -> Result<Option<Mapping>, CryptError> {
        Ok(node_fs::dm::find(&self.sys_root, name)
            .map_err(CryptError::Sysfs)?
            .map(mapping_of))
    }

    fn mappings(&self) -> Result<Vec<Mapping>, CryptError> {
        Ok(node_fs::dm::list(&self.sys_root)
            .map_err(CryptError::Sysfs)?
            .into_iter()
            .map(mapping_of)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use node_fs::dm::testing::FakeDm;

    #[test]
    fn mapping_names_carry_the_prefix_and_must_be_valid() {
        assert_eq!(
            mapping_name("pvc-0b0e8b8e3c43").unwrap(),
            "rds-csi-pvc-0b0e8b8e3c43"
        );
        assert!(mapping_name("a/b").is_err());
        assert!(mapping_name(&"x".repeat(120)).is_err());
    }

    #[test]
    fn mappings_are_read_from_sysfs_under_the_host_root() {
        let root = tempfile::tempdir().unwrap();
        let dm = FakeDm::new(root.path().join("sys")).unwrap();
        dm.add_disk("nvme0n1", 1 << 30).unwrap();
        dm.add_mapping(
            2,
            "rds-csi-pvc-1",
            "CRYPT-LUKS2-361cc11e79b546048fbc530a80a72eda-rds-csi-pvc-1",
            1 << 29,
            &["nvme0n1"],
        )
        .unwrap();
        dm.add_mapping(0, "rds-csi-lvm", "LVM-abc", 1 << 20, &[])
            .unwrap();
        dm.add_mapping(1, "cryptroot", "CRYPT-LUKS2-aa-cryptroot", 1 << 20, &[])
            .unwrap();
        let crypt = LinuxCrypt::new(root.path());
        let m = crypt.mapping("rds-csi-pvc-1").unwrap().unwrap();
        assert_eq!(m.device.path, Path::new("/dev/dm-2"));
        assert_eq!(
            (m.device.name.as_str(), m.device.size_bytes),
            ("dm-2", 1 << 29)
        );
        assert!(m.is_ours());
        let disk = BlockDevice {
            name: "nvme0n1".into(),
            path: "/dev/nvme0n1".into(),
            size_bytes: 1 << 30,
            diskseq: Some(1),
        };
        assert!(m.is_on(&disk));
        // Only LUKS2 mappings with the prefix are ours.
        let ours: Vec<String> = crypt
            .mappings()
            .unwrap()
            .into_iter()
            .filter(Mapping::is_ours)
            .map(|m| m.name)
            .collect();
        assert_eq!(ours, ["rds-csi-pvc-1"]);
        dm.remove_disk("nvme0n1").unwrap();
        let m = crypt.mapping("rds-csi-pvc-1").unwrap().unwrap();
        assert_eq!(m.backing, None);
        assert!(!m.is_on(&disk));
    }
}
