//! Typed views of `/disk` records: file-backed disks and storage pools.

use crate::detail::Record;
use crate::size::parse_grouped;
use crate::value::HostList;

/// Why a record could not be read as a disk or a pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A field the driver depends on is missing.
    #[error("{what} record {slot:?} has no {field} field")]
    Missing {
        /// `disk` or `pool`.
        what: &'static str,
        /// The record's slot, if it had one.
        slot: String,
        /// The missing field.
        field: &'static str,
    },
    /// A field has a value the driver cannot interpret.
    #[error("{what} record {slot:?} has {field}={value:?}, which is not {expected}")]
    Invalid {
        /// `disk` or `pool`.
        what: &'static str,
        /// The record's slot.
        slot: String,
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

/// A `/disk` entry as the driver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The slot name (unique).
    pub slot: String,
    /// The `type` field (`file` for the driver's volumes).
    pub kind: String,
    /// Absolute path of the image file, for file disks.
    pub file_path: Option<String>,
    /// Exact size in bytes, from `size` (never from the rounded `file-size`).
    pub size: u64,
    /// Whether the disk is exported over NVMe/TCP.
    pub nvme_tcp_export: bool,
    /// Port of the NVMe/TCP export.
    pub nvme_tcp_port: Option<u16>,
    /// Subsystem NQN of the NVMe/TCP export.
    pub nqn: Option<String>,
    /// The comment, if any.
    pub comment: Option<String>,
    /// `mount-filesystem`: whether RouterOS mounts a filesystem found in the image.
    pub mount_filesystem: Option<bool>,
    /// Whether the entry is disabled (flag `X`).
    pub disabled: bool,
    /// The entries of `nvme-tcp-server-allow-host-name`, as printed, split
    /// at [`crate::HOST_LIST_SEPARATOR`]; empty when the property is empty
    /// or not printed.
    pub allowed_hosts: Vec<String>,
}

impl Disk {
    /// Reads a disk from a `print detail` record.
    pub fn from_record(record: &Record) -> Result<Self, RecordError> {
        let slot = record.get("slot").unwrap_or_default().to_owned();
        let err = |field, value: &str, expected| RecordError::Invalid {
            what: "disk",
            slot: slot.clone(),
            field,
            value: value.to_owned(),
            expected,
        };
        if slot.is_empty() {
            return Err(RecordError::Missing {
                what: "disk",
                slot,
                field: "slot",
            });
        }
        let size_text = record.get("size").ok_or_else(|| RecordError::Missing {
            what: "disk",
            slot: slot.clone(),
            field: "size",
        })?;
        let size =
            parse_grouped(size_text).ok_or_else(|| err("size", size_text, "a byte count"))?;
        let yes_no = |field: &'static str| -> Result<Option<bool>, RecordError> {
            match record.get(field) {
                None => Ok(None),
                Some("yes" | "true") => Ok(Some(true)),
                Some("no" | "false") => Ok(Some(false)),
                Some(other) => Err(err(field, other, "yes or no")),
            }
        };
        let nvme_tcp_port = match record.get("nvme-tcp-server-port") {
            None | Some("") => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| err("nvme-tcp-server-port", p, "a port number"))?,
            ),
        };
        let non_empty = |field| {
            record
                .get(field)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Ok(Self {
            kind: record.get("type").unwrap_or_default().to_owned(),
            file_path: non_empty("file-path"),
            size,
            nvme_tcp_export: yes_no("nvme-tcp-export")?.unwrap_or_else(|| record.has_flag('t')),
            nvme_tcp_port,
            nqn: non_empty("nvme-tcp-server-nqn"),
            comment: record.comment.clone().filter(|c| !c.is_empty()),
            mount_filesystem: yes_no("mount-filesystem")?,
            disabled: record.has_flag('X'),
            allowed_hosts: record
                .get("nvme-tcp-server-allow-host-name")
                .map(HostList::entries)
                .unwrap_or_default(),
            slot,
        })
    }
}

/// A storage pool: a formatted, mounted `/disk` entry holding image files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// Total size of the pool's filesystem, in bytes.
    pub size: u64,
    /// Free space, in bytes.
    pub free: u64,
}

impl Pool {
    /// Reads a pool from a `print detail` record.
    pub fn from_record(record: &Record) -> Result<Self, RecordError> {
        let slot = record.get("slot").unwrap_or_default().to_owned();
        let number = |field: &'static str| -> Result<u64, RecordError> {
            let text = record.get(field).ok_or_else(|| RecordError::Missing {
                what: "pool",
                slot: slot.clone(),
                field,
            })?;
            parse_grouped(text).ok_or_else(|| RecordError::Invalid {
                what: "pool",
                slot: slot.clone(),
                field,
                value: text.to_owned(),
                expected: "a byte count",
            })
        };
        Ok(Self {
            size: number("size")?,
            free: number("free")?,
        })
    }
}

/// A `/disk` entry with a mount point, as [`crate::script::pools`] lists
/// them: where volume images can be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedPool {
    /// The mount point (`raid10`), the first segment of paths on the pool.
    pub mount_point: String,
    /// Its size and free space.
    pub pool: Pool,
}

impl MountedPool {
    /// Reads a record; `None` for one without a mount point.
    pub fn from_record(record: &Record) -> Option<Result<Self, RecordError>> {
        let mount_point = record.get("mount-point").filter(|m| !m.is_empty())?;
        Some(Pool::from_record(record).map(|pool| Self {
            mount_point: mount_point.to_owned(),
            pool,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detail::parse_print_detail;

    fn record(text: &str) -> Record {
        parse_print_detail(text).unwrap().records.remove(0)
    }

    #[test]
    fn file_disk() {
        let d = Disk::from_record(&record(concat!(
            " 0 B  t ;;; rds-csi:pvc-1\n",
            "   type=file slot=\"pvc-1\" size=1 610 612 736 file-size=1.5GiB\n",
            "   file-path=/raid10/v/pvc-1.img nvme-tcp-export=yes nvme-tcp-server-port=4420\n",
            "   nvme-tcp-server-nqn=\"nqn.2000-02.com.mikrotik:pvc-1\" mount-filesystem=no\n",
        )))
        .unwrap();
        assert_eq!(
            d,
            Disk {
                slot: "pvc-1".into(),
                kind: "file".into(),
                file_path: Some("/raid10/v/pvc-1.img".into()),
                size: 1_610_612_736,
                nvme_tcp_export: true,
                nvme_tcp_port: Some(4420),
                nqn: Some("nqn.2000-02.com.mikrotik:pvc-1".into()),
                comment: Some("rds-csi:pvc-1".into()),
                mount_filesystem: Some(false),
                disabled: false,
                allowed_hosts: Vec::new(),
            }
        );
    }

    #[test]
    fn allowed_hosts_are_read_as_a_list() {
        let d = Disk::from_record(&record(concat!(
            " 0 B  t type=file slot=\"pvc-1\" size=1 nvme-tcp-export=yes\n",
            "   nvme-tcp-server-allow-host-name=\"nqn.x:node:a,nqn.x:node:b\"\n",
        )))
        .unwrap();
        assert_eq!(d.allowed_hosts, ["nqn.x:node:a", "nqn.x:node:b"]);
        let open = Disk::from_record(&record(
            " 0 B  t type=file slot=\"pvc-1\" size=1 nvme-tcp-server-allow-host-name=\"\"\n",
        ))
        .unwrap();
        assert!(open.allowed_hosts.is_empty());
    }

    #[test]
    fn size_is_required_and_exact() {
        let e = Disk::from_record(&record(" 0 slot=\"a\" file-size=50.0GiB\n")).unwrap_err();
        assert_eq!(e.to_string(), "disk record \"a\" has no size field");
        assert!(Disk::from_record(&record(" 0 slot=\"a\" size=12x\n")).is_err());
        assert!(Disk::from_record(&record(" 0 size=1\n")).is_err());
        assert!(
            Disk::from_record(&record(" 0 slot=\"a\" size=1 nvme-tcp-export=maybe\n")).is_err()
        );
    }

    #[test]
    fn pool_entry() {
        let p = Pool::from_record(&record(concat!(
            " 1 BM type=raid slot=\"raid10\" fs=xfs mount-point=\"raid10\"\n",
            "      size=7 681 574 174 720 free=7 301 927 047 168 use=5%\n"
        )))
        .unwrap();
        assert_eq!(
            p,
            Pool {
                size: 7_681_574_174_720,
                free: 7_301_927_047_168
            }
        );
        assert!(Pool::from_record(&record(" 1 slot=\"raid10\" size=1\n")).is_err());
    }

    #[test]
    fn mounted_pools() {
        let m = MountedPool::from_record(&record(concat!(
            " 1 BM type=raid slot=\"raid10\" fs=xfs mount-point=\"raid10\"\n",
            "      size=7 681 574 174 720 free=7 301 927 047 168 use=5%\n"
        )))
        .unwrap()
        .unwrap();
        assert_eq!(m.mount_point, "raid10");
        assert_eq!(m.pool.free, 7_301_927_047_168);
        assert_eq!(
            MountedPool::from_record(&record(" 0 B type=file slot=\"a\" size=1\n")),
            None
        );
        assert_eq!(
            MountedPool::from_record(&record(" 0 B slot=\"a\" mount-point=\"\" size=1\n")),
            None
        );
        assert!(matches!(
            MountedPool::from_record(&record(" 1 BM mount-point=\"usb1\" size=1\n")),
            Some(Err(RecordError::Missing { field: "free", .. }))
        ));
    }
}
