//! The scripts of the subvolume operations, each sent in one exec and each
//! idempotent: repeated after an unknown outcome, it converges.
//!
//! `docs/routeros-cli.md` ("Snapshots") shows every script and explains
//! each step. In short:
//!
//! - [`create_volume`]: on a btrfs pool, a subvolume of the volume's own with
//!   the disk's image inside; on any other pool, the flat image as before.
//! - [`create_snapshot`]: a read-only snapshot of a volume's subvolume, named
//!   `snap-<hex>-<slot>-<bytes>` beside it.
//! - [`restore_snapshot`] and [`clone_volume`]: a writable snapshot (of the
//!   snapshot, or of the live volume) with a disk added on its image. The disk
//!   is added unexported and checked before it is exported: `/disk add` is
//!   given a `file-size` smaller than the image, so a disk that comes out
//!   smaller than the image means RouterOS did not keep the data, and the new
//!   volume is removed instead of being reported as restored.
//! - [`delete_snapshot`], [`delete_volume`], [`get_snapshot`],
//!   [`list_snapshots`].

use crate::script::{self, NewDisk, Script};
use crate::subvolume::failure::ScriptFailure;
use crate::subvolume::names::{NamePattern, SnapshotId, SubvolumeVolume};
use crate::value::{Comment, Nqn, PoolName, RdsPath, Slot, ValueError};

/// The `file-size` a restore or clone gives `/disk add` on the image it
/// made: smaller than any volume (at least 1 MiB), and a whole number of
/// 512-byte sectors. A RouterOS that keeps the existing image leaves the
/// disk at the image's size; one that replaces or truncates it makes a disk
/// of this size, which the script sees and undoes.
pub const PROBE_FILE_SIZE: u64 = 4096;

/// Everything needed to make one volume: the same as [`NewDisk`], with the
/// folder it goes in rather than its image's path, since the image's path
/// depends on the pool's filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVolume {
    /// The flat layout: `<folder>/<slot>.img`, used on pools that are not
    /// btrfs.
    flat: NewDisk,
    /// The subvolume layout: `<folder>/<slot>/volume.img`, used on btrfs.
    subvolume: SubvolumeVolume,
}

impl NewVolume {
    /// A volume `slot` of `size` bytes under the folder `volume_path`.
    pub fn new(
        slot: Slot,
        volume_path: &RdsPath,
        size: u64,
        nvme_port: u16,
        nqn: Nqn,
        comment: Comment,
    ) -> Result<Self, ValueError> {
        let subvolume = SubvolumeVolume::new(volume_path, &slot)?;
        let file_path = volume_path.join(&format!("{slot}.img"))?;
        Ok(Self {
            flat: NewDisk {
                slot,
                file_path,
                size,
                nvme_port,
                nqn,
                comment,
            },
            subvolume,
        })
    }

    /// The disk as made on a pool that is not btrfs.
    pub fn flat(&self) -> &NewDisk {
        &self.flat
    }

    /// The disk as made on a btrfs pool, in its own subvolume.
    pub fn in_subvolume(&self) -> NewDisk {
        NewDisk {
            file_path: self.subvolume.image().clone(),
            ..self.flat.clone()
        }
    }

    /// The subvolume layout.
    pub fn subvolume(&self) -> &SubvolumeVolume {
        &self.subvolume
    }

    /// The same volume with another size (the client rounds sizes up).
    pub fn with_size(mut self, size: u64) -> Self {
        self.flat.size = size;
        self
    }

    /// The slot.
    pub fn slot(&self) -> &Slot {
        &self.flat.slot
    }

    /// The size in bytes.
    pub fn size(&self) -> u64 {
        self.flat.size
    }
}

/// `:error "<text>"`.
fn fail(script: Script, failure: ScriptFailure) -> Script {
    script
        .syntax(":error \"")
        .syntax(failure.text())
        .syntax("\"")
}

/// Looks the pool up and leaves its btrfs label in `$fs`; fails unless it is
/// a labelled btrfs pool.
fn btrfs_label(script: Script, pool: &PoolName) -> Script {
    let script = script
        .syntax(":local p [/disk find where mount-point=")
        .value(pool)
        .syntax("]; :if ([:len $p] != 1) do={");
    let script =
        fail(script, ScriptFailure::NoPool).syntax("}; :if ([/disk get $p fs] != \"btrfs\") do={");
    let script = fail(script, ScriptFailure::NotBtrfs)
        .syntax("}; :local fs [/disk get $p fs-label]; :if ([:len $fs] = 0) do={");
    fail(script, ScriptFailure::NoLabel).syntax("}; ")
}

/// Removes every subvolume named `slot` that no disk has a file in: what an
/// interrupted create, restore or clone left, or a deleted volume's.
fn remove_volume_subvolume(script: Script, slot: &Slot) -> Script {
    script
        .syntax(":foreach v in=[/disk/btrfs/subvolume find where name=")
        .value(slot)
        .syntax("] do={:if ([:len [/disk find where file-path~")
        .value(&NamePattern::inside_volume(slot))
        .syntax("]] = 0) do={/disk/btrfs/subvolume remove $v}}; ")
}

/// Stops when another disk already uses the image path.
fn path_free(script: Script, path: &RdsPath) -> Script {
    script
        .syntax(":if ([:len [/disk find where file-path=")
        .value(path)
        .syntax("]] > 0) do={:error \"file-path already in use by another disk\"}; ")
}

fn print_disk(script: Script, slot: &Slot) -> Script {
    script.syntax("/disk print detail where slot=").value(slot)
}

fn print_snapshots(script: Script, pattern: &NamePattern) -> Script {
    script
        .syntax("/disk/btrfs/subvolume print detail where name~")
        .value(pattern)
}

/// Creates the volume unless its slot has a disk, then prints the disk.
///
/// On a labelled btrfs pool: removes a subvolume of the slot's name left by
/// an interrupted create (so a new volume never starts with old data), makes
/// the subvolume, and adds the disk on `volume.img` inside it. On any other
/// pool, the btrfs part does nothing and [`script::create_disk`] makes the
/// flat image, exactly as before snapshots existed.
pub fn create_volume(volume: &NewVolume) -> Script {
    let disk = volume.in_subvolume();
    let script = Script::new()
        .syntax(":local p [/disk find where mount-point=")
        .value(volume.subvolume.pool())
        .syntax("]; :if ([:len [/disk find where slot=")
        .value(&disk.slot)
        .syntax(
            "]] = 0 && [:len $p] = 1) do={:if ([/disk get $p fs] = \"btrfs\") do={\
             :local fs [/disk get $p fs-label]; :if ([:len $fs] = 0) do={",
        );
    let script = fail(script, ScriptFailure::NoLabel).syntax("}; ");
    let script = path_free(script, &disk.file_path);
    let script = remove_volume_subvolume(script, &disk.slot)
        .syntax("/disk/btrfs/subvolume add fs=$fs name=")
        .value(volume.subvolume.subvolume())
        .syntax("; ");
    let script = script::disk_add(script, &disk, disk.size).syntax("}}; ");
    script.then(script::create_disk(volume.flat()))
}

/// Takes snapshot `id` of `source` unless a snapshot with that ID exists,
/// then prints the snapshots with that ID (normally one).
///
/// The snapshot is read-only from the start and named
/// `<folder>/snap-<hex>-<slot>-<bytes>`, a sibling of the volume's subvolume;
/// the size is the disk's, read on the appliance just before. A source that
/// is missing, or whose image is not `…/<slot>/volume.img` in a subvolume
/// named after it, is refused.
pub fn create_snapshot(id: &SnapshotId, source: &SubvolumeVolume) -> Result<Script, ValueError> {
    let name_start = source.snapshot_name_start(id)?;
    let script = Script::new()
        .syntax(":if ([:len [/disk/btrfs/subvolume find where name~")
        .value(&NamePattern::snapshot(id))
        .syntax("]] = 0) do={:local d [/disk find where slot=")
        .value(source.slot())
        .syntax("]; :if ([:len $d] = 0) do={");
    let script = fail(script, ScriptFailure::VolumeNotFound)
        .syntax("}; :if ([/disk get $d file-path] != ")
        .value(source.image())
        .syntax(") do={");
    let script = fail(script, ScriptFailure::NotInSubvolume)
        .syntax("}; :local v [/disk/btrfs/subvolume find where name=")
        .value(source.slot())
        .syntax("]; :if ([:len $v] != 1) do={");
    let script = fail(script, ScriptFailure::NotInSubvolume).syntax("}; ");
    let script = btrfs_label(script, source.pool())
        .syntax("/disk/btrfs/subvolume add fs=$fs parent=$v read-only=yes name=(")
        .value(&name_start)
        .syntax(" . [/disk get $d size])}; ");
    Ok(print_snapshots(script, &NamePattern::snapshot(id)))
}

/// Prints the snapshots with ID `id` (none when there is none).
pub fn get_snapshot(id: &SnapshotId) -> Script {
    print_snapshots(Script::new(), &NamePattern::snapshot(id))
}

/// Which snapshots [`list_snapshots`] prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotFilter {
    /// Every snapshot of the driver's shape.
    All,
    /// The snapshots of one volume (also after it was deleted).
    Source(Slot),
}

/// Prints the subvolumes the filter selects.
pub fn list_snapshots(filter: &SnapshotFilter) -> Script {
    let pattern = match filter {
        SnapshotFilter::All => NamePattern::all_snapshots(),
        SnapshotFilter::Source(slot) => NamePattern::snapshots_of(slot),
    };
    print_snapshots(Script::new(), &pattern)
}

/// Removes snapshot `id`; does nothing when it is gone. Refuses while a disk
/// has a file inside it. Volumes restored from it are subvolumes of their
/// own and are not touched. Prints nothing on success.
pub fn delete_snapshot(id: &SnapshotId) -> Script {
    let script = Script::new()
        .syntax(":if ([:len [/disk find where file-path~")
        .value(&NamePattern::inside_snapshot(id))
        .syntax("]] > 0) do={");
    fail(script, ScriptFailure::InUse)
        .syntax("}; :foreach s in=[/disk/btrfs/subvolume find where name~")
        .value(&NamePattern::snapshot(id))
        .syntax("] do={/disk/btrfs/subvolume remove $s}")
}

/// Removes the volume `slot`: its disk and image, if the disk passes one of
/// `tests` ([`script::delete_disk`], which prints a disk it keeps), then its
/// subvolume, if it has one that no disk has a file in. Its snapshots are
/// siblings and stay. Prints nothing when the volume is gone.
pub fn delete_volume(slot: &Slot, tests: &[script::OwnerTest], sweep: bool) -> Script {
    let script = script::delete_disk(slot, tests, sweep).syntax("; ");
    remove_volume_subvolume(script, slot)
}

/// Where a restore or clone takes its data from.
enum Origin<'a> {
    Snapshot(&'a SnapshotId),
    Volume(&'a SubvolumeVolume),
}

/// Makes volume `target` from snapshot `id`, whose image is `expected`
/// bytes, unless the target's slot has a disk; then checks (again) an
/// unexported disk of this request, as a cut-off attempt may have left it,
/// and prints the disk. The volume is grown to the target's size when that
/// is larger than the snapshot. Like every new volume it stays closed to
/// every host (`nvme-tcp-export=no`) until it is published; checking it
/// again later, as a repeated request does, changes nothing.
pub fn restore_snapshot(target: &NewVolume, id: &SnapshotId, expected: u64) -> Script {
    populate(target, Origin::Snapshot(id), expected)
}

/// Makes volume `target` as a copy of the live volume `source`, whose image
/// is `expected` bytes; otherwise as [`restore_snapshot`].
pub fn clone_volume(target: &NewVolume, source: &SubvolumeVolume, expected: u64) -> Script {
    populate(target, Origin::Volume(source), expected)
}

fn populate(target: &NewVolume, origin: Origin<'_>, expected: u64) -> Script {
    let disk = target.in_subvolume();
    let pool = target.subvolume.pool();
    let script = Script::new()
        .syntax(":if ([:len [/disk find where slot=")
        .value(&disk.slot)
        .syntax("]] = 0) do={");
    let script = btrfs_label(script, pool);
    // Leaves the subvolume to take the writable snapshot of in `$src`, after
    // checking that its image is the one expected.
    let script = match origin {
        Origin::Snapshot(id) => {
            let script = script
                .syntax(":local src [/disk/btrfs/subvolume find where name~")
                .value(&NamePattern::snapshot(id))
                .syntax("]; :if ([:len $src] = 0) do={");
            let script = fail(script, ScriptFailure::SnapshotNotFound)
                .syntax("}; :if ([:len $src] > 1) do={");
            let script = fail(script, ScriptFailure::SnapshotAmbiguous)
                .syntax("}; :local i [/file find where name~")
                .value(&NamePattern::snapshot_image(pool, id))
                .syntax("]; :if ([:len $i] != 1) do={");
            let script = fail(script, ScriptFailure::SnapshotElsewhere)
                .syntax("}; :if ([/file get $i size] != ")
                .value(&expected)
                .syntax(") do={");
            fail(script, ScriptFailure::SizeMismatch).syntax("}; ")
        }
        Origin::Volume(source) => {
            let script = script
                .syntax(":local sd [/disk find where slot=")
                .value(source.slot())
                .syntax("]; :if ([:len $sd] = 0) do={");
            let script = fail(script, ScriptFailure::VolumeNotFound)
                .syntax("}; :if ([/disk get $sd file-path] != ")
                .value(source.image())
                .syntax(") do={");
            let script = fail(script, ScriptFailure::NotInSubvolume)
                .syntax("}; :local src [/disk/btrfs/subvolume find where name=")
                .value(source.slot())
                .syntax("]; :if ([:len $src] != 1) do={");
            let script = fail(script, ScriptFailure::NotInSubvolume)
                .syntax("}; :if ([/disk get $sd size] != ")
                .value(&expected)
                .syntax(") do={");
            fail(script, ScriptFailure::SizeMismatch).syntax("}; ")
        }
    };
    let script = path_free(script, &disk.file_path);
    let script = remove_volume_subvolume(script, &disk.slot)
        .syntax("/disk/btrfs/subvolume add fs=$fs parent=$src name=")
        .value(target.subvolume.subvolume())
        .syntax("; :local f [/file find where name=")
        .value(&disk.file_path.file_name())
        .syntax("]; :if ([:len $f] = 0) do={");
    let script = remove_volume_subvolume(script, &disk.slot);
    let script = fail(script, ScriptFailure::SizeMismatch)
        .syntax("}; :if ([/file get $f size] != ")
        .value(&expected)
        .syntax(") do={");
    let script = remove_volume_subvolume(script, &disk.slot);
    let script = fail(script, ScriptFailure::SizeMismatch).syntax("}; :local failed false; :do {");
    let script = script::disk_add(script, &disk, PROBE_FILE_SIZE)
        .syntax("} on-error={:set failed true}; :if ($failed) do={");
    let script = remove_volume_subvolume(script, &disk.slot);
    let script = fail(script, ScriptFailure::DiskAddFailed)
        // The check, also for a disk a cut-off attempt left unexported. The
        // comment names the volume, so only this request's disk matches.
        .syntax("}}; :local d [/disk find where slot=")
        .value(&disk.slot)
        .syntax(" and comment=")
        .value(&disk.comment)
        .syntax(" and nvme-tcp-export=no]; :if ([:len $d] = 1) do={:if ([/disk get $d size] < ")
        .value(&expected)
        .syntax(") do={/disk remove $d; ");
    let script = remove_volume_subvolume(script, &disk.slot);
    let script = fail(script, ScriptFailure::DataNotKept)
        .syntax("}; :if ([/disk get $d size] < ")
        .value(&disk.size)
        .syntax(") do={/disk set $d file-size=")
        .value(&disk.size)
        .syntax("}; :if ([/disk get $d size] < ")
        .value(&disk.size)
        .syntax(") do={");
    let script = fail(script, ScriptFailure::NotGrown).syntax("}}; ");
    print_disk(script, &disk.slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(slot: &str, size: u64) -> NewVolume {
        NewVolume::new(
            Slot::new(slot).unwrap(),
            &RdsPath::new("/raid10/volumes").unwrap(),
            size,
            4420,
            Nqn::new(&format!("nqn.2000-02.com.mikrotik:{slot}")).unwrap(),
            Comment::new(&format!("rds-csi:{slot}")).unwrap(),
        )
        .unwrap()
    }

    fn id() -> SnapshotId {
        SnapshotId::new("snap-0123456789abcdef0123456789ab").unwrap()
    }

    #[test]
    fn new_volume_has_both_layouts() {
        let v = volume("pvc-1", 1 << 30);
        assert_eq!(v.flat().file_path.as_str(), "/raid10/volumes/pvc-1.img");
        assert_eq!(
            v.in_subvolume().file_path.as_str(),
            "/raid10/volumes/pvc-1/volume.img"
        );
        assert_eq!(v.subvolume().subvolume().as_str(), "volumes/pvc-1");
        assert_eq!(v.clone().with_size(5).size(), 5);
        assert_eq!(v.slot().as_str(), "pvc-1");
    }

    #[test]
    fn create_volume_matches_the_documented_script() {
        let v = volume("pvc-1", 1 << 30);
        let btrfs_part = concat!(
            r#":local p [/disk find where mount-point="raid10"]; :if ([:len [/disk find where slot="pvc-1"]] = 0 && [:len $p] = 1) do={:if ([/disk get $p fs] = "btrfs") do={"#,
            r#":local fs [/disk get $p fs-label]; :if ([:len $fs] = 0) do={:error "rds-csi: the btrfs pool has no label; set one with /disk/btrfs/filesystem set label="}; "#,
            r#":if ([:len [/disk find where file-path="/raid10/volumes/pvc-1/volume.img"]] > 0) do={:error "file-path already in use by another disk"}; "#,
            r#":foreach v in=[/disk/btrfs/subvolume find where name="pvc-1"] do={:if ([:len [/disk find where file-path~"/pvc-1/"]] = 0) do={/disk/btrfs/subvolume remove $v}}; "#,
            r#"/disk/btrfs/subvolume add fs=$fs name="volumes/pvc-1"; "#,
            r#"/disk add type=file file-path="/raid10/volumes/pvc-1/volume.img" file-size=1073741824 slot="pvc-1" mount-filesystem=no nvme-tcp-export=no nvme-tcp-server-port=4420 nvme-tcp-server-nqn="nqn.2000-02.com.mikrotik:pvc-1" comment="rds-csi:pvc-1"}}; "#,
        );
        // The flat create follows, unchanged: it does nothing once the btrfs
        // part made the disk, and makes the flat image on any other pool.
        assert_eq!(
            create_volume(&v).into_text(),
            btrfs_part.to_owned() + &script::create_disk(v.flat()).into_text()
        );
    }

    #[test]
    fn snapshot_matches_the_documented_script() {
        let v = volume("pvc-1", 1 << 30);
        assert_eq!(
            create_snapshot(&id(), v.subvolume()).unwrap().into_text(),
            concat!(
                r#":if ([:len [/disk/btrfs/subvolume find where name~"^snap-0123456789abcdef0123456789ab-"]] = 0) do={"#,
                r#":local d [/disk find where slot="pvc-1"]; :if ([:len $d] = 0) do={:error "rds-csi: the source volume does not exist"}; "#,
                r#":if ([/disk get $d file-path] != "/raid10/volumes/pvc-1/volume.img") do={:error "rds-csi: the volume is not in a subvolume of its own (made before snapshot support, by the Go driver, or on a pool that is not btrfs), so it cannot be snapshotted or cloned"}; "#,
                r#":local v [/disk/btrfs/subvolume find where name="pvc-1"]; :if ([:len $v] != 1) do={:error "rds-csi: the volume is not in a subvolume of its own (made before snapshot support, by the Go driver, or on a pool that is not btrfs), so it cannot be snapshotted or cloned"}; "#,
                r#":local p [/disk find where mount-point="raid10"]; :if ([:len $p] != 1) do={:error "rds-csi: no storage pool is mounted at the volume path"}; "#,
                r#":if ([/disk get $p fs] != "btrfs") do={:error "rds-csi: the pool is not btrfs, so its volumes cannot be snapshotted or cloned"}; "#,
                r#":local fs [/disk get $p fs-label]; :if ([:len $fs] = 0) do={:error "rds-csi: the btrfs pool has no label; set one with /disk/btrfs/filesystem set label="}; "#,
                r#"/disk/btrfs/subvolume add fs=$fs parent=$v read-only=yes name=("volumes/snap-0123456789abcdef0123456789ab-pvc-1-" . [/disk get $d size])}; "#,
                r#"/disk/btrfs/subvolume print detail where name~"^snap-0123456789abcdef0123456789ab-""#,
            )
        );
    }

    #[test]
    fn reads_and_deletes() {
        assert_eq!(
            get_snapshot(&id()).into_text(),
            r#"/disk/btrfs/subvolume print detail where name~"^snap-0123456789abcdef0123456789ab-""#
        );
        assert_eq!(
            list_snapshots(&SnapshotFilter::All).into_text(),
            r#"/disk/btrfs/subvolume print detail where name~"^snap-""#
        );
        assert_eq!(
            list_snapshots(&SnapshotFilter::Source(Slot::new("pvc-1").unwrap())).into_text(),
            r#"/disk/btrfs/subvolume print detail where name~"^snap-[0-9a-f]{28}-pvc-1-[0-9]+\$""#
        );
        assert_eq!(
            delete_snapshot(&id()).into_text(),
            concat!(
                r#":if ([:len [/disk find where file-path~"/snap-0123456789abcdef0123456789ab-[^/]*/"]] > 0) do={:error "rds-csi: a disk uses a file inside the snapshot, so it was kept"}; "#,
                r#":foreach s in=[/disk/btrfs/subvolume find where name~"^snap-0123456789abcdef0123456789ab-"] do={/disk/btrfs/subvolume remove $s}"#,
            )
        );
        let slot = Slot::new("pvc-1").unwrap();
        let owner = [script::OwnerTest::CommentIs(
            crate::Comment::new("rds-csi:pvc-1").unwrap(),
        )];
        assert_eq!(
            delete_volume(&slot, &owner, true).into_text(),
            script::delete_disk(&slot, &owner, true).into_text()
                + r#"; :foreach v in=[/disk/btrfs/subvolume find where name="pvc-1"] do={:if ([:len [/disk find where file-path~"/pvc-1/"]] = 0) do={/disk/btrfs/subvolume remove $v}}; "#
        );
    }

    #[test]
    fn restore_checks_before_and_after_the_disk_add() {
        let text = restore_snapshot(&volume("pvc-2", 2 << 30), &id(), 1 << 30).into_text();
        let expect_in_order = [
            r#":if ([:len [/disk find where slot="pvc-2"]] = 0) do={:local p [/disk find where mount-point="raid10"]"#,
            r#":local src [/disk/btrfs/subvolume find where name~"^snap-0123456789abcdef0123456789ab-"]"#,
            r#":local i [/file find where name~"^raid10/(.+/)\?snap-0123456789abcdef0123456789ab-[^/]+/volume\\.img\$"]"#,
            r#":if ([/file get $i size] != 1073741824) do={:error "rds-csi: the image to copy"#,
            r#":foreach v in=[/disk/btrfs/subvolume find where name="pvc-2"]"#,
            r#"/disk/btrfs/subvolume add fs=$fs parent=$src name="volumes/pvc-2"; :local f [/file find where name="raid10/volumes/pvc-2/volume.img"]"#,
            r#":if ([/file get $f size] != 1073741824) do={"#,
            r#":local failed false; :do {/disk add type=file file-path="/raid10/volumes/pvc-2/volume.img" file-size=4096 slot="pvc-2" mount-filesystem=no nvme-tcp-export=no nvme-tcp-server-port=4420 nvme-tcp-server-nqn="nqn.2000-02.com.mikrotik:pvc-2" comment="rds-csi:pvc-2"} on-error={:set failed true}; :if ($failed) do={"#,
            r#":local d [/disk find where slot="pvc-2" and comment="rds-csi:pvc-2" and nvme-tcp-export=no]; :if ([:len $d] = 1) do={:if ([/disk get $d size] < 1073741824) do={/disk remove $d; "#,
            r#":if ([/disk get $d size] < 2147483648) do={/disk set $d file-size=2147483648}; :if ([/disk get $d size] < 2147483648) do={:error "rds-csi: the new volume could not be grown"#,
            r#"}; /disk print detail where slot="pvc-2""#,
        ];
        let mut from = 0;
        for part in expect_in_order {
            let at = text[from..]
                .find(part)
                .unwrap_or_else(|| panic!("{part}\nnot after {from} in\n{text}"));
            from += at + part.len();
        }
        assert!(text.ends_with(r#"/disk print detail where slot="pvc-2""#));
    }

    #[test]
    fn clone_checks_the_live_source() {
        let source = volume("pvc-1", 1 << 30);
        let text = clone_volume(&volume("pvc-3", 1 << 30), source.subvolume(), 1 << 30).into_text();
        for part in [
            r#":local sd [/disk find where slot="pvc-1"]; :if ([:len $sd] = 0) do={:error "rds-csi: the source volume does not exist"}"#,
            r#":if ([/disk get $sd file-path] != "/raid10/volumes/pvc-1/volume.img") do={"#,
            r#":local src [/disk/btrfs/subvolume find where name="pvc-1"]; :if ([:len $src] != 1) do={"#,
            r#":if ([/disk get $sd size] != 1073741824) do={"#,
            r#"/disk/btrfs/subvolume add fs=$fs parent=$src name="volumes/pvc-3""#,
        ] {
            assert!(text.contains(part), "{part}\nin\n{text}");
        }
        assert!(!text.contains("snap-"));
    }
}
