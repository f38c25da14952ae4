//! The menu tree the simulator knows: menus, their commands, the arguments
//! each command takes and the properties `where` may name.
//!
//! The parser checks names against these tables while it parses, as RouterOS
//! does, so a misspelt argument stops the script before anything runs.

/// A menu of the simulated console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Menu {
    /// `/`
    Root,
    /// `/disk`
    Disk,
    /// `/disk/btrfs`
    Btrfs,
    /// `/disk/btrfs/subvolume`
    BtrfsSubvolume,
    /// `/file`
    File,
    /// `/system`
    System,
    /// `/system/resource`
    SystemResource,
}

/// A command of a menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// `add`
    Add,
    /// `set`
    Set,
    /// `remove`
    Remove,
    /// `print`
    Print,
    /// `find`
    Find,
    /// `get`
    Get,
}

/// Properties that `/disk add` and `/disk set` both accept.
const DISK_SETTABLE: &[&str] = &[
    "slot",
    "file-size",
    "comment",
    "disabled",
    "mount-filesystem",
    "mount-read-only",
    "compress",
    "nvme-tcp-export",
    "nvme-tcp-server-port",
    "nvme-tcp-server-nqn",
    "nvme-tcp-server-allow-host-name",
    "nvme-tcp-server-password",
    "iscsi-export",
    "nfs-sharing",
    "smb-sharing",
    "swap",
    "file-offset",
];

/// Properties a `/disk` record may have (file disks and pools together).
const DISK_PROPERTIES: &[&str] = &[
    ".id",
    "type",
    "slot",
    "slot-default",
    "parent",
    "fs",
    "model",
    "size",
    "free",
    "use",
    "mount-point",
    "raid-type",
    "mount-filesystem",
    "mount-read-only",
    "compress",
    "sector-size",
    "raid-master",
    "nvme-tcp-export",
    "nvme-tcp-server-port",
    "nvme-tcp-server-nqn",
    "nvme-tcp-server-allow-host-name",
    "nvme-tcp-server-password",
    "iscsi-export",
    "nfs-sharing",
    "smb-sharing",
    "media-sharing",
    "media-interface",
    "swap",
    "file-path",
    "file-size",
    "file-offset",
    "comment",
    "disabled",
    "fs-label",
];

/// Arguments `/disk/btrfs/subvolume add` takes (RouterOS 7.18 to 7.24).
const SUBVOLUME_ADD: &[&str] = &[
    "copy-from",
    "fs",
    "mount",
    "mountpoint",
    "name",
    "parent",
    "read-only",
];

/// Properties of a `/disk/btrfs/subvolume` record.
const SUBVOLUME_PROPERTIES: &[&str] = &[
    ".id",
    "name",
    "fullname",
    "fs",
    "top-level",
    "parent",
    "uuid",
    "creation-time",
    "read-only",
    "snapshot",
];

const FILE_PROPERTIES: &[&str] = &[".id", "name", "type", "size", "creation-time"];

/// The keys of `/system resource print`, in print order.
pub const RESOURCE_KEYS: &[&str] = &[
    "uptime",
    "version",
    "build-time",
    "free-memory",
    "total-memory",
    "cpu",
    "cpu-count",
    "cpu-load",
    "architecture-name",
    "board-name",
    "platform",
];

/// Flags `print` takes. `without-paging` and `brief` change nothing here but
/// are accepted because they are common in scripts written for a terminal.
pub const PRINT_FLAGS: &[&str] = &[
    "detail",
    "as-value",
    "terse",
    "count-only",
    "without-paging",
    "brief",
];

impl Menu {
    /// The menu's path as RouterOS writes it with slashes (`/system/resource`).
    pub fn path(self) -> &'static str {
        match self {
            Menu::Root => "/",
            Menu::Disk => "/disk",
            Menu::Btrfs => "/disk/btrfs",
            Menu::BtrfsSubvolume => "/disk/btrfs/subvolume",
            Menu::File => "/file",
            Menu::System => "/system",
            Menu::SystemResource => "/system/resource",
        }
    }

    /// The menu's path with spaces, as used in canonical command names
    /// (`/system resource`).
    pub fn spaced_path(self) -> &'static str {
        match self {
            Menu::SystemResource => "/system resource",
            Menu::Btrfs => "/disk btrfs",
            Menu::BtrfsSubvolume => "/disk btrfs subvolume",
            other => other.path(),
        }
    }

    /// The submenu called `name`, if any.
    pub fn child(self, name: &str) -> Option<Menu> {
        match (self, name) {
            (Menu::Root, "disk") => Some(Menu::Disk),
            (Menu::Root, "file") => Some(Menu::File),
            (Menu::Root, "system") => Some(Menu::System),
            (Menu::System, "resource") => Some(Menu::SystemResource),
            (Menu::Disk, "btrfs") => Some(Menu::Btrfs),
            (Menu::Btrfs, "subvolume") => Some(Menu::BtrfsSubvolume),
            _ => None,
        }
    }

    /// The command called `name` in this menu, if any.
    pub fn verb(self, name: &str) -> Option<Verb> {
        let verb = Verb::from_name(name)?;
        let allowed = match self {
            Menu::Disk => true,
            Menu::BtrfsSubvolume => verb != Verb::Set,
            Menu::File => verb != Verb::Add && verb != Verb::Set,
            Menu::SystemResource => matches!(verb, Verb::Print | Verb::Get),
            Menu::Root | Menu::System | Menu::Btrfs => false,
        };
        allowed.then_some(verb)
    }

    /// Whether `name` is a property of this menu's records (for `where`).
    pub fn has_property(self, name: &str) -> bool {
        match self {
            Menu::Disk => DISK_PROPERTIES.contains(&name),
            Menu::BtrfsSubvolume => SUBVOLUME_PROPERTIES.contains(&name),
            Menu::File => FILE_PROPERTIES.contains(&name),
            Menu::SystemResource => RESOURCE_KEYS.contains(&name),
            Menu::Root | Menu::System | Menu::Btrfs => false,
        }
    }

    /// Whether `verb` in this menu takes the named argument `name`.
    pub fn takes_argument(self, verb: Verb, name: &str) -> bool {
        match (self, verb) {
            (Menu::Disk, Verb::Add) => {
                name == "type" || name == "file-path" || DISK_SETTABLE.contains(&name)
            }
            (Menu::Disk, Verb::Set) => name == "numbers" || DISK_SETTABLE.contains(&name),
            (Menu::BtrfsSubvolume, Verb::Add) => SUBVOLUME_ADD.contains(&name),
            (_, Verb::Remove) => name == "numbers",
            (Menu::SystemResource, Verb::Get) => name == "value-name",
            (_, Verb::Get) => name == "number" || name == "value-name",
            _ => false,
        }
    }

    /// How many unnamed arguments `verb` takes in this menu: the item for
    /// `set`/`remove`/`get`, plus the property name for `get`.
    pub fn positional_arity(self, verb: Verb) -> usize {
        match (self, verb) {
            (Menu::SystemResource, Verb::Get) => 1,
            (_, Verb::Get) => 2,
            (_, Verb::Set | Verb::Remove) => 1,
            _ => 0,
        }
    }
}

impl Verb {
    fn from_name(name: &str) -> Option<Verb> {
        Some(match name {
            "add" => Verb::Add,
            "set" => Verb::Set,
            "remove" => Verb::Remove,
            "print" => Verb::Print,
            "find" => Verb::Find,
            "get" => Verb::Get,
            _ => return None,
        })
    }

    /// The command's name as written.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Add => "add",
            Verb::Set => "set",
            Verb::Remove => "remove",
            Verb::Print => "print",
            Verb::Find => "find",
            Verb::Get => "get",
        }
    }

    /// Whether the command changes the state (and so is persisted).
    pub fn mutates(self) -> bool {
        matches!(self, Verb::Add | Verb::Set | Verb::Remove)
    }
}

/// The canonical name of a command, as the fault plan matches it:
/// `"/disk add"`, `"/system resource print"`.
pub fn canonical_name(menu: Menu, verb: Verb) -> String {
    format!("{} {}", menu.spaced_path(), verb.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_and_vocabulary() {
        assert_eq!(Menu::Root.child("disk"), Some(Menu::Disk));
        assert_eq!(Menu::System.child("resource"), Some(Menu::SystemResource));
        assert_eq!(Menu::Disk.child("resource"), None);
        assert_eq!(Menu::Disk.verb("add"), Some(Verb::Add));
        assert_eq!(Menu::File.verb("add"), None);
        assert_eq!(Menu::SystemResource.verb("remove"), None);
        assert!(Menu::Disk.takes_argument(Verb::Add, "file-path"));
        assert!(!Menu::Disk.takes_argument(Verb::Set, "file-path"));
        assert!(Menu::Disk.has_property("mount-point"));
        assert!(!Menu::File.has_property("slot"));
        assert_eq!(
            canonical_name(Menu::SystemResource, Verb::Print),
            "/system resource print"
        );
        assert_eq!(Menu::Disk.child("btrfs"), Some(Menu::Btrfs));
        assert_eq!(Menu::Btrfs.child("subvolume"), Some(Menu::BtrfsSubvolume));
        assert_eq!(Menu::Btrfs.verb("print"), None);
        assert_eq!(Menu::BtrfsSubvolume.verb("set"), None);
        assert!(Menu::BtrfsSubvolume.takes_argument(Verb::Add, "read-only"));
        assert!(!Menu::BtrfsSubvolume.takes_argument(Verb::Add, "comment"));
        assert!(Menu::BtrfsSubvolume.has_property("creation-time"));
        assert_eq!(
            canonical_name(Menu::BtrfsSubvolume, Verb::Add),
            "/disk btrfs subvolume add"
        );
    }
}
