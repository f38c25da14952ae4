//! Where volumes and snapshots live on a btrfs pool, and the typed values
//! that name them in commands.
//!
//! ```text
//! /raid10/volumes/                          the volume path (a folder or a subvolume)
//!   pvc-0b0e…/                              a volume's own subvolume (named by its slot)
//!     volume.img                            its image, the file the disk is made on
//!   snap-5c1f…-pvc-0b0e…-1073741824/        a read-only snapshot of it, a sibling
//!     volume.img                            the image as it was
//!   pvc-77aa…/                              a volume restored from the snapshot
//!     volume.img                            (a writable snapshot of the snapshot)
//! ```
//!
//! Subvolumes carry no comment, so a snapshot's name holds everything the
//! driver needs to find it again: its ID (`snap-` and 28 hex digits, made
//! from the CSI snapshot name), the slot of the volume it was taken of, and
//! that volume's size in bytes at the time. The name never changes and
//! survives the deletion of the source. Snapshots are siblings of the
//! volumes, never inside a volume's subvolume: btrfs cannot delete a
//! subvolume that holds another.
//!
//! A volume is in a subvolume of its own exactly when its disk's image is
//! `<volume path>/<slot>/volume.img`; volumes made before snapshots were
//! supported (and the Go driver's, and every volume on a pool that is not
//! btrfs) have a flat `<volume path>/<slot>.img` and cannot be snapshotted.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::disk::Disk;
use crate::value::{
    CliValue, MAX_PATH_LEN, PoolName, RdsPath, Slot, ValueError, check_len, push_quoted, text_value,
};

/// The name of the image file inside a volume's subvolume. The same for every
/// volume, so that a snapshot, and a volume restored or cloned from it, hold
/// their image under the same name without renaming a file.
pub const VOLUME_IMAGE: &str = "volume.img";

/// How every snapshot's name starts.
pub const SNAPSHOT_PREFIX: &str = "snap-";

/// Hex digits in a snapshot ID after its prefix: as many as a slot carries.
pub const SNAPSHOT_ID_DIGITS: usize = 28;

text_value! {
    /// A snapshot's ID: `snap-` and 28 lowercase hex digits, deterministic
    /// from the CSI snapshot name ([`SnapshotId::for_name`]). Also the start
    /// of the snapshot's subvolume name.
    SnapshotId
}

impl SnapshotId {
    /// Validates an ID, as given back by the CO.
    pub fn new(value: &str) -> Result<Self, ValueError> {
        const WHAT: &str = "snapshot ID";
        check_len(WHAT, value, SNAPSHOT_PREFIX.len() + SNAPSHOT_ID_DIGITS)?;
        let hex = value
            .strip_prefix(SNAPSHOT_PREFIX)
            .filter(|hex| hex.len() == SNAPSHOT_ID_DIGITS && is_lower_hex(hex))
            .ok_or(ValueError::Malformed {
                what: WHAT,
                value: value.to_owned(),
                reason: "it must be \"snap-\" followed by 28 lowercase hex digits",
            })?;
        Ok(Self(format!("{SNAPSHOT_PREFIX}{hex}")))
    }

    /// The ID of the snapshot the CO calls `name`. The external-snapshotter
    /// names snapshots `snapshot-<uuid>`: the UUID's first 28 hex digits are
    /// kept, so an operator can match a subvolume with its
    /// VolumeSnapshotContent by eye. Any other name is hashed (SHA-256). The
    /// same name always gives the same ID, which makes CreateSnapshot
    /// idempotent by name.
    pub fn for_name(name: &str) -> Self {
        let hex = match name.strip_prefix("snapshot-").and_then(uuid_hex) {
            Some(hex) => hex,
            None => Sha256::digest(name.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        };
        Self(format!("{SNAPSHOT_PREFIX}{}", &hex[..SNAPSHOT_ID_DIGITS]))
    }

    /// The 28 hex digits.
    pub fn hex(&self) -> &str {
        &self.0[SNAPSHOT_PREFIX.len()..]
    }
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The 32 lowercase hex digits of a UUID in its 8-4-4-4-12 form.
fn uuid_hex(text: &str) -> Option<String> {
    let groups: Vec<&str> = text.split('-').collect();
    let shape_ok = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()));
    shape_ok.then(|| groups.concat().to_ascii_lowercase())
}

text_value! {
    /// Where a subvolume is, relative to the top of its btrfs filesystem (the
    /// pool's mount point), as `/disk/btrfs/subvolume add name=` takes it:
    /// `volumes/pvc-1`. Segments of `[A-Za-z0-9._-]` separated by single
    /// slashes; no leading or trailing slash, no `.` or `..` segment.
    SubvolumePath
}

impl SubvolumePath {
    /// Validates a relative path.
    pub fn new(value: &str) -> Result<Self, ValueError> {
        // The same rules as an absolute path, without the leading slash.
        RdsPath::new(&format!("/{value}")).map(|p| Self(p.as_str()[1..].to_owned()))
    }

    /// The last segment: what `print` shows as the subvolume's `name`.
    pub fn leaf(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

/// A regular expression over names, for `where name~…` and
/// `where file-path~…`. Made only from validated parts (hex digits, slots,
/// pool names with their dots escaped), so it matches exactly what its
/// constructor says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamePattern(String);

impl NamePattern {
    /// Subvolume names of the snapshot `id`: `^snap-<hex>-`.
    pub fn snapshot(id: &SnapshotId) -> Self {
        Self(format!("^{id}-"))
    }

    /// Subvolume names of every snapshot: `^snap-`. Names of that start
    /// that are not of the driver's shape are left out by the reader.
    pub fn all_snapshots() -> Self {
        Self(format!("^{SNAPSHOT_PREFIX}"))
    }

    /// Subvolume names of the snapshots of `source`.
    pub fn snapshots_of(source: &Slot) -> Self {
        Self(format!(
            "^{SNAPSHOT_PREFIX}[0-9a-f]{{{SNAPSHOT_ID_DIGITS}}}-{source}-[0-9]+$"
        ))
    }

    /// File paths inside the subvolume called `leaf` (a slot or a snapshot's
    /// name start), in any folder: `/<leaf>/`, or `/<leaf>` followed by
    /// anything but a slash for a name start such as `snap-<hex>-`.
    fn inside(leaf: &str, whole: bool) -> Self {
        if whole {
            Self(format!("/{leaf}/"))
        } else {
            Self(format!("/{leaf}[^/]*/"))
        }
    }

    /// Disk file paths inside the subvolume of the volume `slot`.
    pub fn inside_volume(slot: &Slot) -> Self {
        Self::inside(slot.as_str(), true)
    }

    /// Disk file paths inside the snapshot `id`.
    pub fn inside_snapshot(id: &SnapshotId) -> Self {
        Self::inside(&format!("{id}-"), false)
    }

    /// `/file` names of the image of snapshot `id` on `pool`:
    /// `^<pool>/(.+/)?snap-<hex>-[^/]+/volume\.img$`.
    pub fn snapshot_image(pool: &PoolName, id: &SnapshotId) -> Self {
        let pool = pool.as_str().replace('.', "\\.");
        let image = VOLUME_IMAGE.replace('.', "\\.");
        Self(format!("^{pool}/(.+/)?{id}-[^/]+/{image}$"))
    }

    /// The regular expression.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl crate::value::sealed::Sealed for NamePattern {}

impl CliValue for NamePattern {
    fn write_cli(&self, out: &mut String) {
        push_quoted(out, &self.0);
    }
}

/// A volume that lives in a subvolume of its own on a btrfs pool, and so can
/// be snapshotted and cloned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubvolumeVolume {
    slot: Slot,
    pool: PoolName,
    /// `<folder>/<slot>`, relative to the pool's top.
    subvolume: SubvolumePath,
    /// `/<pool>/<folder>/<slot>/volume.img`.
    image: RdsPath,
}

impl SubvolumeVolume {
    /// The layout of volume `slot` made under `volume_path` (a folder on a
    /// pool, or the pool's mount point itself).
    pub fn new(volume_path: &RdsPath, slot: &Slot) -> Result<Self, ValueError> {
        let dir = volume_path.join(slot.as_str())?;
        let image = dir.join(VOLUME_IMAGE)?;
        let pool = volume_path.pool();
        // `/<pool>/<rest>`: the subvolume's path is `<rest>`.
        let relative = &dir.as_str()[pool.as_str().len() + 2..];
        Ok(Self {
            slot: slot.clone(),
            pool,
            subvolume: SubvolumePath::new(relative)?,
            image,
        })
    }

    /// The volume `disk` is, if its image is in a subvolume of its own
    /// (`…/<slot>/volume.img`). `None` for every other disk: a flat image
    /// (made before snapshots, by the Go driver, or on a pool that is not
    /// btrfs), or something that is not a file disk.
    pub fn of_disk(disk: &Disk) -> Option<Self> {
        let slot = Slot::new(&disk.slot).ok()?;
        let path = disk.file_path.as_deref()?;
        let dir = path.strip_suffix(&format!("/{}/{VOLUME_IMAGE}", disk.slot))?;
        let volume_path = RdsPath::new(dir).ok()?;
        let volume = Self::new(&volume_path, &slot).ok()?;
        (disk.kind == "file" && volume.image.as_str() == path).then_some(volume)
    }

    /// The volume's slot, which is also its subvolume's name.
    pub fn slot(&self) -> &Slot {
        &self.slot
    }

    /// The pool the volume is on.
    pub fn pool(&self) -> &PoolName {
        &self.pool
    }

    /// The subvolume, relative to the pool's top.
    pub fn subvolume(&self) -> &SubvolumePath {
        &self.subvolume
    }

    /// The image, the disk's `file-path`.
    pub fn image(&self) -> &RdsPath {
        &self.image
    }

    /// The start of the name of snapshot `id` of this volume, a sibling of
    /// its subvolume: `<folder>/snap-<hex>-<slot>-`. The script appends the
    /// volume's size in bytes, read on the appliance.
    pub fn snapshot_name_start(&self, id: &SnapshotId) -> Result<SubvolumePath, ValueError> {
        let leaf = format!("{id}-{}-", self.slot);
        let relative = match self.subvolume.as_str().rsplit_once('/') {
            Some((folder, _)) => format!("{folder}/{leaf}"),
            None => leaf,
        };
        let path = SubvolumePath::new(&relative)?;
        if path.as_str().len() + 20 > MAX_PATH_LEN {
            return Err(ValueError::TooLong {
                what: "snapshot subvolume path",
                value: path.as_str().to_owned(),
                len: path.as_str().len() + 20,
                max: MAX_PATH_LEN,
            });
        }
        Ok(path)
    }
}

/// The parts of a snapshot's subvolume name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotName {
    /// The snapshot's ID.
    pub id: SnapshotId,
    /// The slot of the volume it was taken of.
    pub source: Slot,
    /// That volume's size in bytes when the snapshot was taken.
    pub size: u64,
}

impl SnapshotName {
    /// Reads `snap-<hex>-<slot>-<bytes>`; `None` for any other name, which
    /// is not one of the driver's snapshots.
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix(SNAPSHOT_PREFIX)?;
        let (hex, rest) = rest.split_at_checked(SNAPSHOT_ID_DIGITS)?;
        let rest = rest.strip_prefix('-')?;
        let (source, size) = rest.rsplit_once('-')?;
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) || size.starts_with('0') {
            return None;
        }
        Some(Self {
            id: SnapshotId::new(&format!("{SNAPSHOT_PREFIX}{hex}")).ok()?,
            source: Slot::new(source).ok()?,
            size: size.parse().ok().filter(|&s| s > 0)?,
        })
    }

    /// The name, as the snapshot script makes it.
    pub fn to_name(&self) -> String {
        format!("{}-{}-{}", self.id, self.source, self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(v: &impl CliValue) -> String {
        let mut s = String::new();
        v.write_cli(&mut s);
        s
    }

    fn disk(slot: &str, path: &str) -> Disk {
        Disk {
            slot: slot.into(),
            kind: "file".into(),
            file_path: Some(path.into()),
            size: 1 << 30,
            nvme_tcp_export: true,
            nvme_tcp_port: Some(4420),
            nqn: None,
            comment: None,
            mount_filesystem: Some(false),
            disabled: false,
            allowed_hosts: Vec::new(),
        }
    }

    #[test]
    fn snapshot_ids_are_deterministic_and_keep_a_uuid() {
        let id = SnapshotId::for_name("snapshot-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1");
        assert_eq!(id.as_str(), "snap-0b0e8b8e3c434c2f9d2e53f0d3b1");
        assert_eq!(id.hex().len(), 28);
        assert_eq!(
            SnapshotId::for_name("snapshot-0B0E8B8E-3C43-4C2F-9D2E-53F0D3B1A7A1"),
            id
        );
        let hashed = SnapshotId::for_name("my snapshot");
        assert_eq!(hashed, SnapshotId::for_name("my snapshot"));
        assert_ne!(hashed, SnapshotId::for_name("my snapshot 2"));
        assert_eq!(hashed.as_str().len(), 33);
        assert!(
            SnapshotId::for_name("ünïcode; $(rm)")
                .as_str()
                .starts_with("snap-")
        );
        // A name that is not quite a UUID is hashed.
        assert_ne!(
            SnapshotId::for_name("snapshot-0b0e8b8e-3c43-4c2f-9d2e").hex(),
            "0b0e8b8e3c434c2f9d2e"
        );
        assert_eq!(cli(&id), "\"snap-0b0e8b8e3c434c2f9d2e53f0d3b1\"");
    }

    #[test]
    fn snapshot_ids_from_the_co_are_checked() {
        assert!(SnapshotId::new("snap-0b0e8b8e3c434c2f9d2e53f0d3b1").is_ok());
        for bad in [
            "",
            "snap-",
            "snap-0B0E8B8E3C434C2F9D2E53F0D3B1",
            "snap-0b0e8b8e3c434c2f9d2e53f0d3b",
            "snap-0b0e8b8e3c434c2f9d2e53f0d3b1a",
            "pvc-0b0e8b8e3c434c2f9d2e53f0d3b1",
            "snap-0b0e8b8e3c434c2f9d2e53f0d3;1",
        ] {
            assert!(SnapshotId::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_volume_in_a_folder_and_at_the_pool_top() {
        let slot = Slot::new("pvc-1").unwrap();
        let v = SubvolumeVolume::new(&RdsPath::new("/raid10/k8s/volumes").unwrap(), &slot).unwrap();
        assert_eq!(v.pool().as_str(), "raid10");
        assert_eq!(v.subvolume().as_str(), "k8s/volumes/pvc-1");
        assert_eq!(v.subvolume().leaf(), "pvc-1");
        assert_eq!(v.image().as_str(), "/raid10/k8s/volumes/pvc-1/volume.img");
        let id = SnapshotId::new("snap-0123456789abcdef0123456789ab").unwrap();
        assert_eq!(
            v.snapshot_name_start(&id).unwrap().as_str(),
            "k8s/volumes/snap-0123456789abcdef0123456789ab-pvc-1-"
        );

        let top = SubvolumeVolume::new(&RdsPath::new("/raid10").unwrap(), &slot).unwrap();
        assert_eq!(top.subvolume().as_str(), "pvc-1");
        assert_eq!(top.image().as_str(), "/raid10/pvc-1/volume.img");
        assert_eq!(
            top.snapshot_name_start(&id).unwrap().as_str(),
            "snap-0123456789abcdef0123456789ab-pvc-1-"
        );
    }

    #[test]
    fn only_volumes_in_their_own_subvolume_are_recognised() {
        let ours = disk("pvc-1", "/raid10/volumes/pvc-1/volume.img");
        let v = SubvolumeVolume::of_disk(&ours).unwrap();
        assert_eq!(v.subvolume().as_str(), "volumes/pvc-1");
        assert_eq!(v.image().as_str(), "/raid10/volumes/pvc-1/volume.img");
        assert!(SubvolumeVolume::of_disk(&disk("pvc-1", "/raid10/pvc-1/volume.img")).is_some());
        for (slot, path) in [
            // Flat: made before snapshots, by the Go driver, or not on btrfs.
            ("pvc-1", "/raid10/volumes/pvc-1.img"),
            (
                "pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1",
                "/storage-pool/metal-csi/pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1.img",
            ),
            // Another volume's subvolume, or another file name.
            ("pvc-1", "/raid10/volumes/pvc-2/volume.img"),
            ("pvc-1", "/raid10/volumes/pvc-1/pvc-1.img"),
            // Not a pool path at all.
            ("pvc-1", "/pvc-1/volume.img"),
            ("pvc-1", "raid10/pvc-1/volume.img"),
        ] {
            assert_eq!(SubvolumeVolume::of_disk(&disk(slot, path)), None, "{path}");
        }
        let mut pool = disk("raid10", "");
        pool.kind = "raid".into();
        pool.file_path = None;
        assert_eq!(SubvolumeVolume::of_disk(&pool), None);
    }

    #[test]
    fn snapshot_names_round_trip_and_others_are_not_ours() {
        let name = SnapshotName {
            id: SnapshotId::new("snap-0123456789abcdef0123456789ab").unwrap(),
            source: Slot::new("pvc-0b0e8b8e3c434c2f9d2e53f0d3b1").unwrap(),
            size: 1 << 30,
        };
        let text = name.to_name();
        assert_eq!(
            text,
            "snap-0123456789abcdef0123456789ab-pvc-0b0e8b8e3c434c2f9d2e53f0d3b1-1073741824"
        );
        assert_eq!(SnapshotName::parse(&text), Some(name));
        for other in [
            "snap-daily",
            "snap-0123456789abcdef0123456789ab",
            "snap-0123456789abcdef0123456789ab-pvc-1-",
            "snap-0123456789abcdef0123456789ab-pvc-1-0",
            "snap-0123456789abcdef0123456789ab-pvc-1-012",
            "snap-0123456789abcdef0123456789ab--12",
            "snap-0123456789ABCDEF0123456789ab-pvc-1-12",
            "snap-0123456789abcdef0123456789ab-pvc-1-99999999999999999999999",
            "pvc-1",
        ] {
            assert_eq!(SnapshotName::parse(other), None, "{other}");
        }
    }

    #[test]
    fn patterns_are_anchored_and_escaped() {
        let id = SnapshotId::new("snap-0123456789abcdef0123456789ab").unwrap();
        let slot = Slot::new("pvc-1").unwrap();
        assert_eq!(
            NamePattern::snapshot(&id).as_str(),
            "^snap-0123456789abcdef0123456789ab-"
        );
        assert_eq!(NamePattern::all_snapshots().as_str(), "^snap-");
        assert_eq!(
            cli(&NamePattern::snapshots_of(&slot)),
            r#""^snap-[0-9a-f]{28}-pvc-1-[0-9]+\$""#
        );
        assert_eq!(NamePattern::inside_volume(&slot).as_str(), "/pvc-1/");
        assert_eq!(
            NamePattern::inside_snapshot(&id).as_str(),
            "/snap-0123456789abcdef0123456789ab-[^/]*/"
        );
        assert_eq!(
            cli(&NamePattern::snapshot_image(
                &PoolName::new("pool.1").unwrap(),
                &id
            )),
            r#""^pool\\.1/(.+/)\?snap-0123456789abcdef0123456789ab-[^/]+/volume\\.img\$""#
        );
    }

    #[test]
    fn subvolume_paths_follow_the_path_rules() {
        assert_eq!(
            cli(&SubvolumePath::new("volumes/pvc-1").unwrap()),
            "\"volumes/pvc-1\""
        );
        for bad in ["", "/volumes", "volumes/", "a//b", "a/../b", "a b", "a;b"] {
            assert!(SubvolumePath::new(bad).is_err(), "{bad:?}");
        }
    }
}
