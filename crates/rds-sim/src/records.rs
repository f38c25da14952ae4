//! Records: the uniform view of disks, pools, files and the system resource
//! that `print`, `find`, `get` and `where` work on.
//!
//! Each property carries its RouterOS type ([`Prop`]), which decides how it is
//! printed (quoted or not, grouped, rounded for humans), how `where`
//! compares it, and what `get` returns.

use std::time::SystemTime;

use crate::config::PoolConfig;
use crate::state::storage::{EntryKind, FileEntry};
use crate::state::{Disk, PoolMeta};
use crate::value::{Value, format_id};

/// A typed property value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prop {
    /// A string: always printed in quotes.
    Str(String),
    /// A keyword, path or time: printed bare unless it holds special
    /// characters.
    Word(String),
    /// `yes` or `no`.
    Bool(bool),
    /// A plain number (`4420`).
    Int(u64),
    /// Exact bytes, printed grouped in thousands (`1 073 741 824`).
    Bytes(u64),
    /// Bytes printed rounded for humans (`1024.0MiB`), compared exactly.
    HumanBytes(u64),
    /// An internal id.
    Id(u64),
    /// A date and time (`2025-11-20 10:11:12`): printed bare, space and
    /// all, as RouterOS prints times.
    Time(String),
}

impl Prop {
    /// The value `get` returns.
    pub fn to_value(&self) -> Value {
        match self {
            Prop::Str(s) | Prop::Word(s) | Prop::Time(s) => Value::Str(s.clone()),
            Prop::Bool(b) => Value::Bool(*b),
            Prop::Int(n) | Prop::Bytes(n) | Prop::HumanBytes(n) => {
                Value::Num(i64::try_from(*n).unwrap_or(i64::MAX))
            }
            Prop::Id(id) => Value::Id(*id),
        }
    }

    /// The plain text of the value, for `~` and string comparisons.
    pub fn text(&self) -> String {
        match self {
            Prop::Str(s) | Prop::Word(s) | Prop::Time(s) => s.clone(),
            Prop::Bool(b) => yes_no(*b).to_string(),
            Prop::Int(n) | Prop::Bytes(n) | Prop::HumanBytes(n) => n.to_string(),
            Prop::Id(id) => format_id(*id),
        }
    }

    /// The number, for numeric properties.
    pub fn number(&self) -> Option<u64> {
        match self {
            Prop::Int(n) | Prop::Bytes(n) | Prop::HumanBytes(n) => Some(*n),
            _ => None,
        }
    }
}

/// `yes` or `no`.
pub fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// One property of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Property name.
    pub name: &'static str,
    /// Its value.
    pub value: Prop,
    /// Whether `print` shows it as `key=value` (the comment and a few
    /// properties are only readable with `get` and `where`).
    pub shown: bool,
}

/// One entry of a menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Internal id.
    pub id: u64,
    /// Flag letters that apply, e.g. `Bt`.
    pub flags: String,
    /// `;;;` comment.
    pub comment: Option<String>,
    /// Properties in print order.
    pub fields: Vec<Field>,
}

impl Record {
    /// The property called `name`.
    pub fn get(&self, name: &str) -> Option<&Prop> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| &f.value)
    }

    /// All properties as a map, `.id` first, as `print as-value` and `get`
    /// without a property name return them.
    pub fn to_map(&self) -> Value {
        Value::Map(
            self.fields
                .iter()
                .map(|f| (f.name.to_string(), f.value.to_value()))
                .collect(),
        )
    }
}

/// Builds a record's fields: shown ones in order, then hidden ones.
struct Fields(Vec<Field>);

impl Fields {
    fn new(id: u64) -> Fields {
        Fields(vec![Field {
            name: ".id",
            value: Prop::Id(id),
            shown: false,
        }])
    }

    fn show(mut self, name: &'static str, value: Prop) -> Self {
        self.0.push(Field {
            name,
            value,
            shown: true,
        });
        self
    }

    fn hide(mut self, name: &'static str, value: Prop) -> Self {
        self.0.push(Field {
            name,
            value,
            shown: false,
        });
        self
    }
}

fn s(text: &str) -> Prop {
    Prop::Str(text.to_string())
}

fn w(text: &str) -> Prop {
    Prop::Word(text.to_string())
}

/// The `/disk` record of a file disk, with the properties and order
/// docs/routeros-cli.md shows.
pub fn disk_record(d: &Disk) -> Record {
    let mut flags = String::from("B");
    if d.disabled {
        flags.push('X');
    }
    if d.nvme_tcp_export {
        flags.push('t');
    }
    let fields = Fields::new(d.id)
        .show("type", w("file"))
        .show("slot", s(&d.slot))
        .show("slot-default", s(""))
        .show("parent", s(""))
        .show("fs", w("-"))
        .show("model", s(&d.file_path))
        .show("size", Prop::Bytes(d.file_size))
        .show("mount-filesystem", Prop::Bool(d.mount_filesystem))
        .show("mount-read-only", Prop::Bool(d.mount_read_only))
        .show("compress", Prop::Bool(d.compress))
        .show("sector-size", Prop::Int(512))
        .show("raid-master", w("none"))
        .show("nvme-tcp-export", Prop::Bool(d.nvme_tcp_export))
        .show(
            "nvme-tcp-server-port",
            Prop::Int(u64::from(d.nvme_tcp_server_port)),
        )
        .show("nvme-tcp-server-nqn", s(&d.nvme_tcp_server_nqn))
        .show(
            "nvme-tcp-server-allow-host-name",
            s(&d.nvme_tcp_server_allow_host_name),
        )
        .show("iscsi-export", Prop::Bool(d.iscsi_export))
        .show("nfs-sharing", Prop::Bool(d.nfs_sharing))
        .show("smb-sharing", Prop::Bool(d.smb_sharing))
        .show("media-sharing", Prop::Bool(false))
        .show("media-interface", w("none"))
        .show("swap", Prop::Bool(d.swap))
        .show("file-path", w(&d.file_path))
        .show("file-size", Prop::HumanBytes(d.file_size))
        .show("file-offset", Prop::Int(d.file_offset))
        .hide("comment", s(d.comment.as_deref().unwrap_or("")))
        .hide("disabled", Prop::Bool(d.disabled))
        .hide("nvme-tcp-server-password", s(&d.nvme_tcp_server_password));
    Record {
        id: d.id,
        flags,
        comment: d.comment.clone(),
        fields: fields.0,
    }
}

/// The RAID level shown for a pool. The simulator does not model RAID; a
/// pool named after a level shows that level, any other `raid10`.
fn raid_type(name: &str) -> &str {
    match name {
        "raid0" | "raid1" | "raid5" | "raid6" | "raid10" => name,
        _ => "raid10",
    }
}

/// A pool's size, free space and filesystem label, as measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpace {
    /// Size in bytes.
    pub size: u64,
    /// Free bytes.
    pub free: u64,
    /// The filesystem's label (`fs-label`), empty when it has none.
    pub label: String,
}

/// The `/disk` record of a pool: a mounted RAID entry.
pub fn pool_record(pool: &PoolConfig, meta: &PoolMeta, space: &PoolSpace) -> Record {
    let free = space.free;
    let used = space.size.saturating_sub(free);
    // Rounded to the nearest percent (the doc's example shows 4.9 % as 5%).
    let percent = match space.size {
        0 => 0,
        cap => (u128::from(used) * 100 + u128::from(cap) / 2) / u128::from(cap),
    };
    let fields = Fields::new(meta.id)
        .show("type", w("raid"))
        .show("slot", s(&pool.name))
        .show("slot-default", s(""))
        .show("parent", s(""))
        .show("fs", w(&pool.fs))
        .show("fs-label", s(&space.label))
        .show("mount-point", s(&pool.name))
        .show("size", Prop::Bytes(space.size))
        .show("free", Prop::Bytes(free))
        .show("use", w(&format!("{percent}%")))
        .show("raid-type", w(raid_type(&pool.name)))
        .hide("comment", s(meta.comment.as_deref().unwrap_or("")))
        .hide("disabled", Prop::Bool(false));
    Record {
        id: meta.id,
        flags: "BM".to_string(),
        comment: meta.comment.clone(),
        fields: fields.0,
    }
}

/// One `/disk/btrfs/subvolume` entry, as [`subvolume_record`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubvolumeView {
    /// Internal id.
    pub id: u64,
    /// The last segment of its path.
    pub name: String,
    /// Its path from the top of the filesystem.
    pub fullname: String,
    /// The filesystem's label.
    pub fs: String,
    /// btrfs's ID of the subvolume it sits in (5: the top).
    pub top_level: u64,
    /// The name of the subvolume it is a snapshot of, if that still exists.
    pub parent: String,
    /// Whether it is a snapshot (made from another subvolume).
    pub snapshot: bool,
    /// Its UUID.
    pub uuid: String,
    /// When it was made.
    pub created: Option<SystemTime>,
    /// Read-only.
    pub read_only: bool,
}

/// The `/disk/btrfs/subvolume` record of a subvolume. The properties are
/// those RouterOS's console lists for the menu; their order, the flag
/// letters' names, `fs` being shown, and `top-level` as a number are
/// *assumed* (docs/routeros-cli.md).
pub fn subvolume_record(v: &SubvolumeView) -> Record {
    let mut flags = String::new();
    if v.snapshot {
        flags.push('S');
    }
    if v.read_only {
        flags.push('r');
    }
    let created = v.created.map(format_time).unwrap_or_default();
    let fields = Fields::new(v.id)
        .show("name", s(&v.name))
        .show("fullname", s(&v.fullname))
        .show("fs", s(&v.fs))
        .show("top-level", Prop::Int(v.top_level))
        .show("parent", s(&v.parent))
        .show("uuid", w(&v.uuid))
        .show("creation-time", Prop::Time(created))
        .hide("read-only", Prop::Bool(v.read_only))
        .hide("snapshot", Prop::Bool(v.snapshot));
    Record {
        id: v.id,
        flags,
        comment: None,
        fields: fields.0,
    }
}

/// The `/file` record of an entry.
pub fn file_record(id: u64, entry: &FileEntry) -> Record {
    let kind = match entry.kind {
        EntryKind::Disk => "disk",
        EntryKind::Directory => "directory",
        EntryKind::File => "file",
    };
    let mut fields = Fields::new(id)
        .show("name", s(&entry.name))
        .show("type", w(kind));
    if entry.kind == EntryKind::File {
        fields = fields.show("size", Prop::Bytes(entry.size));
    }
    if let Some(time) = entry.modified {
        fields = fields.show("creation-time", w(&format_time(time)));
    }
    Record {
        id,
        flags: String::new(),
        comment: None,
        fields: fields.0,
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, RouterOS 7's date format.
pub fn format_time(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn disk_record_has_the_documented_properties() {
        let mut d = Disk::new(5, "pvc-1".into(), "/raid10/v/pvc-1.img".into(), 1 << 30);
        d.nvme_tcp_export = true;
        d.comment = Some("c".into());
        let r = disk_record(&d);
        assert_eq!(r.flags, "Bt");
        let shown: Vec<&str> = r
            .fields
            .iter()
            .filter(|f| f.shown)
            .map(|f| f.name)
            .collect();
        assert_eq!(shown.len(), 25);
        assert_eq!(shown[0], "type");
        assert_eq!(shown[24], "file-offset");
        assert_eq!(r.get("size"), Some(&Prop::Bytes(1 << 30)));
        assert_eq!(
            r.get("comment").map(Prop::to_value),
            Some(Value::Str("c".into()))
        );
        assert_eq!(r.get(".id").map(Prop::to_value), Some(Value::Id(5)));
    }

    #[test]
    fn pool_usage_percent_rounds() {
        let pool = PoolConfig {
            name: "raid10".into(),
            fs: "xfs".into(),
            capacity: 7_681_574_174_720,
            directories: vec![],
        };
        let meta = PoolMeta {
            id: 1,
            comment: None,
        };
        let space = PoolSpace {
            size: pool.capacity,
            free: 7_301_927_047_168,
            label: String::new(),
        };
        let r = pool_record(&pool, &meta, &space);
        assert_eq!(r.get("use"), Some(&Prop::Word("5%".into())));
        assert_eq!(r.get("fs-label"), Some(&Prop::Str(String::new())));
        assert_eq!(r.flags, "BM");
    }

    #[test]
    fn times_are_civil_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_633_472);
        assert_eq!(format_time(t), "2025-11-20 10:11:12");
        assert_eq!(format_time(SystemTime::UNIX_EPOCH), "1970-01-01 00:00:00");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(format_time(leap), "2000-02-29 00:00:00");
    }
}
