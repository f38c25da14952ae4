//! The judgements of `doctor --check-snapshots`: from what was seen on the
//! RDS and through NVMe/TCP to a [`Check`], with what to do. No I/O.
//!
//! Each check names the assumption about RouterOS it tries
//! (docs/routeros-cli.md, "Snapshots, restores and clones"); the restore's
//! says which answer RouterOS gives to the question the simulator leaves
//! open with `--existing-image`: whether `/disk add type=file` on an
//! existing image keeps its data.

use routeros::subvolume::ScriptFailure;

use crate::doctor::verdict::human_bytes;
use crate::doctor::{Check, name};

/// How the scratch volume came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScratchSeen {
    /// Made, with its disk's image at `image`.
    Made {
        /// The volume's slot.
        slot: String,
        /// Its image path.
        image: String,
        /// Whether it is in a subvolume of its own (the btrfs layout).
        in_subvolume: bool,
    },
    /// Not made.
    Failed(String),
}

/// (S1) The scratch volume is made in a subvolume of its own.
pub fn scratch(volume_path: &str, seen: &ScratchSeen) -> Check {
    let what = name::SNAPSHOT_SCRATCH;
    match seen {
        ScratchSeen::Made {
            slot,
            image,
            in_subvolume: true,
        } => Check::ok(
            what,
            format!("volume {slot} made in a subvolume of its own ({image})"),
        ),
        ScratchSeen::Made { slot, image, .. } => Check::fail(
            what,
            format!(
                "volume {slot} came out as a flat image ({image}): {volume_path} is not on a \
                 btrfs pool, and only volumes on one can be snapshotted and cloned"
            ),
            "give the volume path of the volumes to snapshot (--volume-path, or a \
             StorageClass's volumePath) on a btrfs pool; volumes on other pools keep working, \
             without snapshots"
                .into(),
        ),
        ScratchSeen::Failed(e) => {
            let fix = if e.contains(ScriptFailure::NoLabel.text()) {
                "give the pool's btrfs filesystem a label: /disk/btrfs/filesystem set \
                 [find] label=<name>"
                    .to_owned()
            } else if e.contains("not a subvolume") {
                format!(
                    "this RouterOS makes subvolumes only inside subvolumes: make the volume path \
                     one (/disk/btrfs/subvolume add fs=<label> name=<the path without the \
                     pool's name>; {volume_path} must not exist yet, or be empty)"
                )
            } else {
                "report the RouterOS version and this output to the rds-csi maintainers".to_owned()
            };
            Check::fail(what, format!("cannot make a scratch volume: {e}"), fix)
        }
    }
}

/// (S2) A marker written to the scratch volume over NVMe/TCP.
pub fn marker(slot: &str, seen: &Result<(), String>) -> Check {
    match seen {
        Ok(()) => Check::ok(
            name::SNAPSHOT_MARKER,
            format!("a marker written to {slot} over NVMe/TCP, at its start and its end"),
        ),
        Err(e) => Check::fail(
            name::SNAPSHOT_MARKER,
            format!("cannot write a marker to {slot} over NVMe/TCP: {e}"),
            "check the NVMe/TCP port and this machine's initiator (the doctor's other checks)"
                .into(),
        ),
    }
}

/// What the snapshot looked like once taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotSeen {
    /// Taken.
    Taken {
        /// Its ID.
        id: String,
        /// Read-only and not being removed.
        ready: bool,
        /// The size its name records.
        size: u64,
        /// The source's size.
        source_size: u64,
        /// Whether RouterOS printed a creation time the driver reads.
        creation_time: bool,
    },
    /// Not taken.
    Failed(String),
}

/// (S3) A read-only snapshot of the scratch volume, found again by its name.
pub fn snapshot(seen: &SnapshotSeen) -> Check {
    let what = name::SNAPSHOT_TAKEN;
    let report = "report the RouterOS version and this output to the rds-csi maintainers";
    match seen {
        SnapshotSeen::Failed(e) => {
            Check::fail(what, format!("cannot take a snapshot: {e}"), report.into())
        }
        SnapshotSeen::Taken {
            id,
            ready,
            size,
            source_size,
            creation_time,
        } => {
            let mut wrong = Vec::new();
            if !ready {
                wrong.push("it is not shown read-only (flag r)".to_owned());
            }
            if size != source_size {
                wrong.push(format!(
                    "its name records {size} bytes, the volume has {source_size}"
                ));
            }
            if !creation_time {
                wrong.push("no creation-time the driver can read".to_owned());
            }
            if wrong.is_empty() {
                Check::ok(
                    what,
                    format!(
                        "{id}: read-only, {}, with its creation time",
                        human_bytes(*size)
                    ),
                )
            } else {
                Check::fail(
                    what,
                    format!("{id} was taken, but {}", wrong.join("; ")),
                    report.into(),
                )
            }
        }
    }
}

/// How a restore or a clone came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySeen {
    /// Made, attached and read.
    Made {
        /// The new volume's slot.
        slot: String,
        /// Its device's size.
        size: u64,
        /// The size asked for.
        asked: u64,
        /// Whether both markers read back.
        marker: bool,
    },
    /// Refused or undone by the script, or failed otherwise; `failure` is
    /// the script's own, when it was one.
    Failed {
        /// What the script reported, if it was the script.
        failure: Option<ScriptFailure>,
        /// The error.
        message: String,
    },
}

/// (S4) A restore of the snapshot into a larger volume holds the marker.
/// This is where RouterOS answers the `--existing-image` question.
pub fn restore(seen: &CopySeen) -> Check {
    copy(name::SNAPSHOT_RESTORE, "restore of the snapshot", seen)
}

/// (S5) A clone of the live volume holds the marker.
pub fn clone(seen: &CopySeen) -> Check {
    copy(name::SNAPSHOT_CLONE, "clone of the volume", seen)
}

fn copy(what: &'static str, made: &str, seen: &CopySeen) -> Check {
    let report = "report the RouterOS version and this output to the rds-csi maintainers";
    match seen {
        CopySeen::Made {
            slot,
            size,
            asked,
            marker: true,
        } if size == asked => Check::ok(
            what,
            format!(
                "the {made} ({slot}, {}) holds the marker at its start and where the source \
                 ended: RouterOS kept the image's data when a disk was added on it (the \
                 simulator's --existing-image keep-and-grow or keep){}",
                human_bytes(*size),
                if made.starts_with("restore") {
                    ", and /disk set file-size= grew it"
                } else {
                    ""
                }
            ),
        ),
        CopySeen::Made {
            slot, size, asked, ..
        } if size != asked => Check::fail(
            what,
            format!(
                "the {made} ({slot}) is {} over NVMe/TCP, not the {} asked for",
                human_bytes(*size),
                human_bytes(*asked)
            ),
            report.into(),
        ),
        CopySeen::Made { slot, .. } => Check::fail(
            what,
            format!(
                "the {made} ({slot}) does not hold the marker written before: RouterOS gave \
                 it other data than its source's"
            ),
            format!("do not restore or clone volumes on this RouterOS; {report}"),
        ),
        CopySeen::Failed {
            failure: Some(ScriptFailure::DataNotKept),
            ..
        } => Check::fail(
            what,
            format!(
                "RouterOS did not keep the image's data when a disk was added on it (it \
                 replaced or cut the file: the simulator's --existing-image replace or \
                 truncate); the driver undid the {made}, as it will undo every restore and \
                 clone here"
            ),
            format!(
                "restores and clones cannot work on this RouterOS (snapshots are kept safely); {report}"
            ),
        ),
        CopySeen::Failed {
            failure: Some(ScriptFailure::DiskAddFailed),
            message,
        } => Check::fail(
            what,
            format!(
                "RouterOS refused /disk add on the image of the {made} (the simulator's \
                 --existing-image refuse); nothing was left: {message}"
            ),
            format!(
                "if the pool is not full, restores and clones cannot work on this RouterOS; {report}"
            ),
        ),
        CopySeen::Failed {
            failure: Some(ScriptFailure::NotGrown),
            ..
        } => Check::fail(
            what,
            format!("/disk set file-size= did not grow the {made} to the size asked for"),
            format!("restore and clone at the source's size only; {report}"),
        ),
        CopySeen::Failed { message, .. } => {
            Check::fail(what, format!("the {made} failed: {message}"), report.into())
        }
    }
}

/// What was seen of the snapshot once its source was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutlivesSeen {
    /// The source was deleted; the snapshot was looked for.
    Looked {
        /// Found, by its ID and among its source's.
        found: bool,
        /// Still ready to restore from.
        ready: bool,
    },
    /// Something failed.
    Failed(String),
}

/// (S6) The snapshot outlives its source, as CSI needs.
pub fn outlives(seen: &OutlivesSeen) -> Check {
    let what = name::SNAPSHOT_OUTLIVES;
    match seen {
        OutlivesSeen::Looked {
            found: true,
            ready: true,
        } => Check::ok(
            what,
            "the source volume and its subvolume deleted, the snapshot is still listed and \
             ready to restore",
        ),
        OutlivesSeen::Looked { found, .. } => Check::fail(
            what,
            if *found {
                "after its source was deleted, the snapshot is no longer ready to restore"
            } else {
                "deleting the source volume removed its snapshot too"
            },
            "snapshots would not outlive their volumes on this RouterOS; report the RouterOS \
             version and this output to the rds-csi maintainers"
                .into(),
        ),
        OutlivesSeen::Failed(e) => Check::fail(
            what,
            format!("cannot delete the source, or look for the snapshot after: {e}"),
            "report the RouterOS version and this output to the rds-csi maintainers".into(),
        ),
    }
}

/// What the clean-up could not do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupSeen {
    /// Everything removed, by name.
    pub removed: Vec<String>,
    /// What failed, with why.
    pub failed: Vec<String>,
}

/// (S7) Everything made for the checks is gone.
pub fn cleanup(seen: &CleanupSeen) -> Check {
    let what = name::SNAPSHOT_CLEANUP;
    if seen.failed.is_empty() {
        Check::ok(what, format!("removed {}", seen.removed.join(", ")))
    } else {
        Check::fail(
            what,
            format!("left behind: {}", seen.failed.join("; ")),
            "remove them by hand: disconnect them on this machine (nvme disconnect -n <nqn>), \
             then /disk remove and /disk/btrfs/subvolume remove on the RDS"
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn a_flat_scratch_volume_means_no_btrfs() {
        let ok = scratch(
            "/raid10/k8s",
            &ScratchSeen::Made {
                slot: "doctor-snap-1".into(),
                image: "/raid10/k8s/doctor-snap-1/volume.img".into(),
                in_subvolume: true,
            },
        );
        assert_eq!(ok.status, Status::Ok);
        let flat = scratch(
            "/raid10/k8s",
            &ScratchSeen::Made {
                slot: "doctor-snap-1".into(),
                image: "/raid10/k8s/doctor-snap-1.img".into(),
                in_subvolume: false,
            },
        );
        assert_eq!(flat.status, Status::Fail);
        assert!(
            flat.detail.contains("not on a btrfs pool"),
            "{}",
            flat.detail
        );
        let label = scratch(
            "/raid10/k8s",
            &ScratchSeen::Failed(format!("volume x: {}", ScriptFailure::NoLabel.text())),
        );
        assert!(label.fix.unwrap().contains("label="));
        let folder = scratch(
            "/raid10/k8s",
            &ScratchSeen::Failed("failure: parent is not a subvolume".into()),
        );
        assert!(folder.fix.unwrap().contains("/disk/btrfs/subvolume add"));
    }

    #[test]
    fn a_snapshot_must_be_read_only_sized_and_timed() {
        let taken = |ready, size, creation_time| SnapshotSeen::Taken {
            id: "snap-1".into(),
            ready,
            size,
            source_size: 64 << 20,
            creation_time,
        };
        assert_eq!(snapshot(&taken(true, 64 << 20, true)).status, Status::Ok);
        let bad = snapshot(&taken(false, 1, false));
        assert_eq!(bad.status, Status::Fail);
        for part in ["read-only", "records 1 bytes", "creation-time"] {
            assert!(bad.detail.contains(part), "{part}: {}", bad.detail);
        }
    }

    #[test]
    fn the_restore_answers_the_existing_image_question() {
        let made = |size, marker| CopySeen::Made {
            slot: "doctor-snap-1-r".into(),
            size,
            asked: 128 << 20,
            marker,
        };
        let ok = restore(&made(128 << 20, true));
        assert_eq!(ok.status, Status::Ok);
        assert!(ok.detail.contains("keep-and-grow or keep"), "{}", ok.detail);
        assert!(ok.detail.contains("file-size= grew it"), "{}", ok.detail);
        assert!(!clone(&made(128 << 20, true)).detail.contains("grew"));
        let lost = restore(&made(128 << 20, false));
        assert_eq!(lost.status, Status::Fail);
        assert!(lost.fix.unwrap().starts_with("do not restore"));
        assert!(
            restore(&made(64 << 20, true))
                .detail
                .contains("not the 128.0 MiB asked for")
        );
        let failed = |failure| CopySeen::Failed {
            failure: Some(failure),
            message: "m".into(),
        };
        for (failure, says) in [
            (ScriptFailure::DataNotKept, "replace or truncate"),
            (ScriptFailure::DiskAddFailed, "--existing-image refuse"),
            (ScriptFailure::NotGrown, "did not grow"),
        ] {
            let check = restore(&failed(failure));
            assert_eq!(check.status, Status::Fail);
            assert!(check.detail.contains(says), "{failure:?}: {}", check.detail);
        }
        let other = restore(&CopySeen::Failed {
            failure: None,
            message: "timed out".into(),
        });
        assert!(
            other.detail.ends_with("failed: timed out"),
            "{}",
            other.detail
        );
    }

    #[test]
    fn outliving_and_clean_up() {
        assert_eq!(
            outlives(&OutlivesSeen::Looked {
                found: true,
                ready: true
            })
            .status,
            Status::Ok
        );
        let gone = outlives(&OutlivesSeen::Looked {
            found: false,
            ready: false,
        });
        assert!(gone.detail.contains("removed its snapshot too"));
        let done = cleanup(&CleanupSeen {
            removed: vec!["a".into(), "b".into()],
            failed: vec![],
        });
        assert_eq!(
            (done.status, done.detail.as_str()),
            (Status::Ok, "removed a, b")
        );
        let left = cleanup(&CleanupSeen {
            removed: vec![],
            failed: vec!["snapshot s: no".into()],
        });
        assert_eq!(left.status, Status::Fail);
    }
}
