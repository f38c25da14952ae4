//! The command builder: the only way this project produces RouterOS command text.
//!
//! A [`Script`] is assembled from two kinds of pieces: fixed syntax, which must be
//! a `&'static str` written in this crate's source, and values, which must
//! implement [`CliValue`] and so have been validated. Nothing read at run time can
//! become syntax. The scripts the driver sends are built by the functions at the
//! bottom of this file; `docs/routeros-cli.md` shows each of them.

use crate::value::{
    CliValue, Comment, CommentPattern, HostList, ImagePattern, Nqn, PoolName, RdsPath, Slot,
    SlotPrefix,
};

/// A RouterOS script under construction.
#[derive(Debug, Default, Clone)]
pub struct Script {
    text: String,
}

impl Script {
    /// An empty script.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends fixed syntax. Only string literals are accepted, by design.
    pub fn syntax(mut self, text: &'static str) -> Self {
        self.text.push_str(text);
        self
    }

    /// Appends a validated value, quoted as its type requires.
    pub fn value(mut self, value: &dyn CliValue) -> Self {
        value.write_cli(&mut self.text);
        self
    }

    /// The finished text, ready to be sent in one exec request.
    pub fn into_text(self) -> String {
        self.text
    }

    /// The text so far.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Appends another built script, to run after this one. Both are made of
    /// fixed syntax and validated values, so the result is too.
    pub fn then(mut self, next: Script) -> Self {
        self.text.push_str(&next.text);
        self
    }
}

/// Everything needed to create one file-backed disk exported over NVMe/TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDisk {
    /// The disk's slot, unique on the appliance.
    pub slot: Slot,
    /// Absolute path of the image file.
    pub file_path: RdsPath,
    /// Exact size in bytes.
    pub size: u64,
    /// NVMe/TCP port of the export.
    pub nvme_port: u16,
    /// Subsystem NQN of the export.
    pub nqn: Nqn,
    /// A note for humans and for the driver (the Kubernetes name).
    pub comment: Comment,
}

/// `print detail` of the disk in `slot`.
fn print_slot(script: Script, slot: &Slot) -> Script {
    script.syntax("/disk print detail where slot=").value(slot)
}

/// The start of the error a create prints when the image path holds
/// something that is not a regular file (a folder, say); the path follows.
pub const NOT_A_FILE_ERROR: &str = "rds-csi: not a regular file, left in place: ";

/// A `/file` entry that is a regular file: RouterOS shows `file`, or the
/// extension and `file` (`.img file`), as its type.
const REGULAR_FILE: &str = "(type=file or type~\" file\\$\")";

/// Creates the disk unless a disk with its slot exists, then prints the disk.
///
/// The disk is made closed to every host (`nvme-tcp-export=no`): it is
/// published nowhere until ControllerPublishVolume lets a node in
/// ([`set_export`]). The port and NQN are set now, so that publishing
/// changes nothing but who may connect.
///
/// A stray image at the path (left by a create or delete that was cut off) is
/// removed first, so a new volume never starts with old data; a path used by
/// another disk stops the script with an error instead, and so does a path
/// that holds something other than a regular file (a folder, say): that is
/// left in place and named in the error ([`NOT_A_FILE_ERROR`]). The removal
/// re-checks, in its own condition, that no disk uses the file: RouterOS
/// scripts are not atomic, and a create of the same volume racing on the
/// appliance could have added the disk in between. The controller serialises
/// operations on one volume, which keeps that race to a create whose earlier
/// attempt timed out while still running.
pub fn create_disk(disk: &NewDisk) -> Script {
    let file = disk.file_path.file_name();
    let script = Script::new()
        .syntax(":if ([:len [/disk find where slot=")
        .value(&disk.slot)
        .syntax("]] = 0) do={:if ([:len [/disk find where file-path=")
        .value(&disk.file_path)
        .syntax(
            "]] > 0) do={:error \"file-path already in use by another disk\"}; \
             :local f [/file find where name=",
        )
        .value(&file)
        .syntax("]; :if ([:len $f] > 0 && [:len [/disk find where file-path=")
        .value(&disk.file_path)
        .syntax("]] = 0) do={:if ([:len [/file find where name=")
        .value(&file)
        .syntax(" and ")
        .syntax(REGULAR_FILE)
        .syntax("]] = 0) do={:error (\"")
        .syntax(NOT_A_FILE_ERROR)
        .syntax("\" . ")
        .value(&file)
        .syntax(")}; /file remove $f}; ");
    let script = disk_add(script, disk, disk.size).syntax("}; ");
    print_slot(script, &disk.slot)
}

/// `/disk add` of `disk`, its image `file_size` bytes (`disk.size`, or the
/// probe size a restore or clone gives the image it made): every disk the
/// driver makes is added here, unmounted on the appliance and closed to
/// every host (`nvme-tcp-export=no`) until a publish lists one.
pub(crate) fn disk_add(script: Script, disk: &NewDisk, file_size: u64) -> Script {
    script
        .syntax("/disk add type=file file-path=")
        .value(&disk.file_path)
        .syntax(" file-size=")
        .value(&file_size)
        .syntax(" slot=")
        .value(&disk.slot)
        .syntax(" mount-filesystem=no nvme-tcp-export=no nvme-tcp-server-port=")
        .value(&disk.nvme_port)
        .syntax(" nvme-tcp-server-nqn=")
        .value(&disk.nqn)
        .syntax(" comment=")
        .value(&disk.comment)
}

/// One sign by which a disk shows that it is the driver's to change. A script
/// that changes a disk checks these itself, on the appliance, in the same
/// exec: the disk changed is the disk checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerTest {
    /// Its comment matches the pattern.
    CommentMatches(CommentPattern),
    /// It has no comment, and its image is `<slot>.img` in some folder: the
    /// shape of the disks of the Go driver this one replaces.
    NoCommentImageOfSlot,
    /// Its comment is exactly this text, as read beforehand (a compare and
    /// set: nothing changed the disk in between).
    CommentIs(Comment),
}

/// `/disk find where slot=S and type=file and (T or T …)`: the disk in `slot`
/// if it passes one of `tests`.
fn find_owned(script: Script, slot: &Slot, tests: &[OwnerTest]) -> Script {
    owned(script.syntax("[/disk find where "), slot, tests).syntax("]")
}

/// `slot=S and type=file and (T or T …)`: the condition of [`find_owned`],
/// to which more may be added.
fn owned(script: Script, slot: &Slot, tests: &[OwnerTest]) -> Script {
    let mut script = script
        .syntax("slot=")
        .value(slot)
        .syntax(" and type=file and (");
    for (i, test) in tests.iter().enumerate() {
        if i > 0 {
            script = script.syntax(" or ");
        }
        script = match test {
            OwnerTest::CommentMatches(pattern) => script.syntax("comment~").value(pattern),
            OwnerTest::NoCommentImageOfSlot => script
                .syntax("(comment=\"\" and file-path~")
                .value(&ImagePattern::of(slot))
                .syntax(")"),
            OwnerTest::CommentIs(comment) => script.syntax("comment=").value(comment),
        };
    }
    script.syntax(")")
}

/// Prints the disk in `slot` (nothing but the header when there is none).
pub fn get_disk(slot: &Slot) -> Script {
    print_slot(Script::new(), slot)
}

/// Prints every disk whose slot starts with `prefix`.
pub fn list_disks(prefix: &SlotPrefix) -> Script {
    Script::new()
        .syntax("/disk print detail where slot~")
        .value(prefix)
}

/// Grows the disk in `slot` to `size` bytes if it is smaller and passes one
/// of `tests`, then prints the disk. Never shrinks: the comparison runs on the
/// appliance, against the current size. With no tests, only prints.
pub fn grow_disk(slot: &Slot, size: u64, tests: &[OwnerTest]) -> Script {
    if tests.is_empty() {
        return get_disk(slot);
    }
    let script = find_owned(Script::new().syntax(":local d "), slot, tests)
        .syntax("; :if ([:len $d] = 1) do={:if ([/disk get $d size] < ")
        .value(&size)
        .syntax(") do={/disk set $d file-size=")
        .value(&size)
        .syntax("}}; ");
    print_slot(script, slot)
}

/// Removes the disk in `slot` and its image file, if the disk passes one of
/// `tests`; prints nothing then. A disk that is there but passes none is
/// left alone and printed, for the caller to judge.
///
/// The image is the disk's own `file-path`. With `sweep`, and the disk
/// already gone, an earlier delete may have been cut off between removing
/// the disk and removing the image: then every regular file named
/// `<slot>.img`, in any folder, that no disk uses is removed. Image names are
/// unique because slots are, so this needs no knowledge of where the volume
/// was made, and a file some disk still uses is never touched.
pub fn delete_disk(slot: &Slot, tests: &[OwnerTest], sweep: bool) -> Script {
    let mut script = Script::new()
        .syntax(":local d [/disk find where slot=")
        .value(slot)
        .syntax("]; :if ([:len $d] > 0) do={");
    if tests.is_empty() {
        script = print_slot(script, slot);
    } else {
        script = find_owned(script.syntax(":if ([:len "), slot, tests).syntax(
            "] = 1) do={:local p [/disk get $d file-path]; /disk remove $d; \
                 :local f [/file find where name=[:pick $p 1 [:len $p]]]; \
                 :if ([:len $f] > 0) do={/file remove $f}} else={",
        );
        script = print_slot(script, slot).syntax("}");
    }
    script = script.syntax("}");
    if sweep {
        script = script
            .syntax(" else={:foreach f in=[/file find where name~")
            .value(&ImagePattern::of(slot))
            .syntax(" and ")
            .syntax(REGULAR_FILE)
            .syntax(
                "] do={:if ([:len [/disk find where file-path=(\"/\" . [/file get $f name])]] = 0) \
                 do={/file remove $f}}}",
            );
    }
    script
}

/// Who may connect to a disk's NVMe/TCP export: whether it is exported, and
/// the hosts allowed (`nvme-tcp-export`, `nvme-tcp-server-allow-host-name`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ExportState {
    /// `nvme-tcp-export`.
    pub export: bool,
    /// `nvme-tcp-server-allow-host-name`; empty admits any host.
    pub hosts: HostList,
}

/// Changes who may connect to the disk in `slot` from `expected` to `new`,
/// only if the disk passes one of the ownership `tests` and is in the
/// `expected` state now, then prints the disk. Without a test nothing is
/// changed: the disk is only printed.
///
/// A compare-and-set: the condition and the change run in one script, so a
/// change made meanwhile by someone else (another controller, an operator,
/// an earlier attempt of this one whose answer was lost) is never
/// overwritten, and a disk that is not the driver's (one put in the slot
/// since the caller read it) is never changed; the caller reads the printed
/// state and decides again. The hosts and the export flag are set in one
/// command.
///
/// With `bounce`, the export is switched off in that command and on again
/// in the next: RouterOS, like the kernel's target, is assumed to check the
/// list only when a host connects, so a host removed from it keeps a live
/// connection until the export goes away under it. The remaining hosts
/// reconnect on their own. `bounce` with `new.export` off is the same as
/// without.
pub fn set_export(
    slot: &Slot,
    tests: &[OwnerTest],
    expected: &ExportState,
    new: &ExportState,
    bounce: bool,
) -> Script {
    if tests.is_empty() {
        return get_disk(slot);
    }
    let script = owned(
        Script::new().syntax(":local d [/disk find where "),
        slot,
        tests,
    )
    .syntax(" and nvme-tcp-export=")
    .value(&expected.export)
    .syntax(" and nvme-tcp-server-allow-host-name=")
    .value(&expected.hosts)
    .syntax("]; :if ([:len $d] = 1) do={/disk set $d nvme-tcp-server-allow-host-name=")
    .value(&new.hosts);
    let script = if bounce && new.export {
        script.syntax(" nvme-tcp-export=no; /disk set $d nvme-tcp-export=yes}; ")
    } else {
        script
            .syntax(" nvme-tcp-export=")
            .value(&new.export)
            .syntax("}; ")
    };
    print_slot(script, slot)
}

/// Prints the pool entry mounted at `pool`, which carries `size` and `free`.
pub fn pool(pool: &PoolName) -> Script {
    Script::new()
        .syntax("/disk print detail where mount-point=")
        .value(pool)
}

/// Prints the system resource block, which carries the RouterOS version.
pub fn system_resource() -> Script {
    Script::new().syntax("/system resource print")
}

/// Prints what `/file` holds at `path`, on a line of its own: `missing`, or
/// the entry's `type` (`directory` for a folder, `disk` for a pool's mount
/// point). Read with [`crate::file::parse_file_type`].
///
/// `print detail` is not used here: `/file` records carry a date and time
/// that RouterOS may print unquoted, with a space inside.
pub fn file_type(path: &RdsPath) -> Script {
    Script::new()
        .syntax(":local f [/file find where name=")
        .value(&path.file_name())
        .syntax("]; :if ([:len $f] = 0) do={:put \"missing\"} else={:put [/file get $f type]}")
}

/// Prints every `/disk` entry with a mount point: the pools, with `size` and
/// `free`.
pub fn pools() -> Script {
    Script::new().syntax("/disk print detail where mount-point~\".\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk() -> NewDisk {
        NewDisk {
            slot: Slot::new("pvc-1").unwrap(),
            file_path: RdsPath::new("/raid10/volumes/pvc-1.img").unwrap(),
            size: 1_073_741_824,
            nvme_port: 4420,
            nqn: Nqn::new("nqn.2000-02.com.mikrotik:pvc-1").unwrap(),
            comment: Comment::new("rds-csi:pvc-1").unwrap(),
        }
    }

    #[test]
    fn create_matches_the_documented_script() {
        assert_eq!(
            create_disk(&disk()).into_text(),
            concat!(
                r#":if ([:len [/disk find where slot="pvc-1"]] = 0) do={"#,
                r#":if ([:len [/disk find where file-path="/raid10/volumes/pvc-1.img"]] > 0) do={:error "file-path already in use by another disk"}; "#,
                r#":local f [/file find where name="raid10/volumes/pvc-1.img"]; "#,
                r#":if ([:len $f] > 0 && [:len [/disk find where file-path="/raid10/volumes/pvc-1.img"]] = 0) do={"#,
                r#":if ([:len [/file find where name="raid10/volumes/pvc-1.img" and (type=file or type~" file\$")]] = 0) do={"#,
                r#":error ("rds-csi: not a regular file, left in place: " . "raid10/volumes/pvc-1.img")}; "#,
                r#"/file remove $f}; "#,
                r#"/disk add type=file file-path="/raid10/volumes/pvc-1.img" file-size=1073741824 slot="pvc-1" mount-filesystem=no nvme-tcp-export=no nvme-tcp-server-port=4420 nvme-tcp-server-nqn="nqn.2000-02.com.mikrotik:pvc-1" comment="rds-csi:pvc-1"}; "#,
                r#"/disk print detail where slot="pvc-1""#
            )
        );
    }

    #[test]
    fn reads() {
        let slot = Slot::new("pvc-1").unwrap();
        assert_eq!(
            get_disk(&slot).into_text(),
            r#"/disk print detail where slot="pvc-1""#
        );
        assert_eq!(
            list_disks(&SlotPrefix::new("pvc-").unwrap()).into_text(),
            r#"/disk print detail where slot~"^pvc-""#
        );
        assert_eq!(
            pool(&PoolName::new("raid10").unwrap()).into_text(),
            r#"/disk print detail where mount-point="raid10""#
        );
        assert_eq!(system_resource().into_text(), "/system resource print");
        assert_eq!(
            pools().into_text(),
            r#"/disk print detail where mount-point~".""#
        );
    }

    #[test]
    fn file_type_puts_missing_or_the_type() {
        assert_eq!(
            file_type(&RdsPath::new("/storage-pool/metal-csi").unwrap()).into_text(),
            concat!(
                r#":local f [/file find where name="storage-pool/metal-csi"]; "#,
                r#":if ([:len $f] = 0) do={:put "missing"} else={:put [/file get $f type]}"#
            )
        );
        // A pool's mount point is named by its single segment.
        assert!(
            file_type(&RdsPath::new("/raid10").unwrap())
                .as_str()
                .contains(r#"name="raid10"]"#)
        );
    }

    fn tests() -> Vec<OwnerTest> {
        vec![
            OwnerTest::CommentMatches(CommentPattern::new("^rds-csi:pvc-1( |$)").unwrap()),
            OwnerTest::NoCommentImageOfSlot,
        ]
    }

    #[test]
    fn grow_checks_the_owner_and_compares_on_the_appliance() {
        let slot = Slot::new("pvc-1").unwrap();
        assert_eq!(
            grow_disk(&slot, 2048, &tests()).into_text(),
            concat!(
                r#":local d [/disk find where slot="pvc-1" and type=file and (comment~"^rds-csi:pvc-1( |\$)" or (comment="" and file-path~"/pvc-1\\.img\$"))]; "#,
                r#":if ([:len $d] = 1) do={:if ([/disk get $d size] < 2048) do={/disk set $d file-size=2048}}; "#,
                r#"/disk print detail where slot="pvc-1""#
            )
        );
        // Nothing can pass no test: only a print.
        assert_eq!(
            grow_disk(&slot, 2048, &[]).into_text(),
            get_disk(&slot).into_text()
        );
    }

    #[test]
    fn set_export_compares_then_sets_in_one_command() {
        let slot = Slot::new("pvc-1").unwrap();
        let a = Nqn::new("nqn.2024-01.x:node:a").unwrap();
        let b = Nqn::new("nqn.2024-01.x:node:b").unwrap();
        let closed = ExportState::default();
        let to_a = ExportState {
            export: true,
            hosts: HostList::new([&a]),
        };
        let to_ab = ExportState {
            export: true,
            hosts: HostList::new([&a, &b]),
        };
        let ours = [OwnerTest::CommentIs(Comment::new("rds-csi:x").unwrap())];
        assert_eq!(
            set_export(&slot, &ours, &closed, &to_a, false).into_text(),
            concat!(
                r#":local d [/disk find where slot="pvc-1" and type=file and (comment="rds-csi:x") and nvme-tcp-export=no and nvme-tcp-server-allow-host-name=""]; "#,
                r#":if ([:len $d] = 1) do={/disk set $d nvme-tcp-server-allow-host-name="nqn.2024-01.x:node:a" nvme-tcp-export=yes}; "#,
                r#"/disk print detail where slot="pvc-1""#
            )
        );
        assert_eq!(
            set_export(&slot, &ours, &to_ab, &to_a, true).into_text(),
            concat!(
                r#":local d [/disk find where slot="pvc-1" and type=file and (comment="rds-csi:x") and nvme-tcp-export=yes and nvme-tcp-server-allow-host-name="nqn.2024-01.x:node:a,nqn.2024-01.x:node:b"]; "#,
                r#":if ([:len $d] = 1) do={/disk set $d nvme-tcp-server-allow-host-name="nqn.2024-01.x:node:a" nvme-tcp-export=no; /disk set $d nvme-tcp-export=yes}; "#,
                r#"/disk print detail where slot="pvc-1""#
            )
        );
        // Closing needs no bounce: the export going away ends every
        // connection.
        assert_eq!(
            set_export(&slot, &ours, &to_a, &closed, true).into_text(),
            set_export(&slot, &ours, &to_a, &closed, false).into_text()
        );
        // Without an ownership test, nothing is changed.
        assert_eq!(
            set_export(&slot, &[], &closed, &to_a, false).into_text(),
            get_disk(&slot).into_text()
        );
    }

    #[test]
    fn delete_checks_the_owner_removes_disk_then_file_or_else_strays() {
        let slot = Slot::new("pvc-1").unwrap();
        let exact = OwnerTest::CommentIs(Comment::new("rds-csi:x").unwrap());
        assert_eq!(
            delete_disk(&slot, &[exact], true).into_text(),
            concat!(
                r#":local d [/disk find where slot="pvc-1"]; :if ([:len $d] > 0) do={"#,
                r#":if ([:len [/disk find where slot="pvc-1" and type=file and (comment="rds-csi:x")]] = 1) do={"#,
                r#":local p [/disk get $d file-path]; /disk remove $d; "#,
                r#":local f [/file find where name=[:pick $p 1 [:len $p]]]; :if ([:len $f] > 0) do={/file remove $f}} "#,
                r#"else={/disk print detail where slot="pvc-1"}} "#,
                r#"else={:foreach f in=[/file find where name~"/pvc-1\\.img\$" and (type=file or type~" file\$")] do={"#,
                r#":if ([:len [/disk find where file-path=("/" . [/file get $f name])]] = 0) do={/file remove $f}}}"#
            )
        );
        // Without a sweep nothing happens when the disk is gone; without a
        // test a disk that is there is only printed.
        assert_eq!(
            delete_disk(&slot, &[], false).into_text(),
            r#":local d [/disk find where slot="pvc-1"]; :if ([:len $d] > 0) do={/disk print detail where slot="pvc-1"}"#
        );
        assert!(delete_disk(&slot, &tests(), false).as_str().ends_with("}}"));
    }
}
