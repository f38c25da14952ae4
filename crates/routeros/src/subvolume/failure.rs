//! The errors the subvolume scripts raise themselves (`:error "…"`), and
//! how they are recognised in what RouterOS printed.
//!
//! Each text starts with `rds-csi:` so that it cannot be mistaken for one of
//! RouterOS's own messages, and says what an operator can do about it.

/// A failure a subvolume script detected and reported with `:error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ScriptFailure {
    /// No pool is mounted at the volume path's first segment.
    #[error("{}", Self::NoPool.text())]
    NoPool,
    /// The pool is not btrfs: volumes on it have no subvolume.
    #[error("{}", Self::NotBtrfs.text())]
    NotBtrfs,
    /// The btrfs pool has no label, which `/disk/btrfs/subvolume add fs=`
    /// needs.
    #[error("{}", Self::NoLabel.text())]
    NoLabel,
    /// The source volume has no disk.
    #[error("{}", Self::VolumeNotFound.text())]
    VolumeNotFound,
    /// The source volume's image is not in a subvolume of its own.
    #[error("{}", Self::NotInSubvolume.text())]
    NotInSubvolume,
    /// No subvolume has the snapshot's name.
    #[error("{}", Self::SnapshotNotFound.text())]
    SnapshotNotFound,
    /// More than one subvolume has the snapshot's name.
    #[error("{}", Self::SnapshotAmbiguous.text())]
    SnapshotAmbiguous,
    /// The snapshot's image is not on the new volume's pool.
    #[error("{}", Self::SnapshotElsewhere.text())]
    SnapshotElsewhere,
    /// The image to restore or clone is missing or not of the size the
    /// driver expects.
    #[error("{}", Self::SizeMismatch.text())]
    SizeMismatch,
    /// `/disk add` on the new volume's image failed (refused an existing
    /// file, out of space, …); the new subvolume was removed.
    #[error("{}", Self::DiskAddFailed.text())]
    DiskAddFailed,
    /// `/disk add` did not keep the image's data (the disk came out smaller
    /// than the image); the new disk and subvolume were removed.
    #[error("{}", Self::DataNotKept.text())]
    DataNotKept,
    /// The new volume could not be grown to the size asked for.
    #[error("{}", Self::NotGrown.text())]
    NotGrown,
    /// A disk uses a file inside the snapshot, which is therefore kept.
    #[error("{}", Self::InUse.text())]
    InUse,
}

impl ScriptFailure {
    /// Every failure, for recognising them.
    pub const ALL: [ScriptFailure; 13] = [
        Self::NoPool,
        Self::NotBtrfs,
        Self::NoLabel,
        Self::VolumeNotFound,
        Self::NotInSubvolume,
        Self::SnapshotNotFound,
        Self::SnapshotAmbiguous,
        Self::SnapshotElsewhere,
        Self::SizeMismatch,
        Self::DiskAddFailed,
        Self::DataNotKept,
        Self::NotGrown,
        Self::InUse,
    ];

    /// The text the script raises. Plain printable ASCII without quotes,
    /// backslashes, `$` or `?`, so that it can sit in a quoted literal.
    pub fn text(self) -> &'static str {
        match self {
            Self::NoPool => "rds-csi: no storage pool is mounted at the volume path",
            Self::NotBtrfs => {
                "rds-csi: the pool is not btrfs, so its volumes cannot be snapshotted or cloned"
            }
            Self::NoLabel => {
                "rds-csi: the btrfs pool has no label; set one with /disk/btrfs/filesystem set label="
            }
            Self::VolumeNotFound => "rds-csi: the source volume does not exist",
            Self::NotInSubvolume => {
                "rds-csi: the volume is not in a subvolume of its own (made before snapshot support, by the Go driver, or on a pool that is not btrfs), so it cannot be snapshotted or cloned"
            }
            Self::SnapshotNotFound => "rds-csi: the snapshot does not exist",
            Self::SnapshotAmbiguous => "rds-csi: more than one subvolume has the snapshot's ID",
            Self::SnapshotElsewhere => {
                "rds-csi: the snapshot's image is not on the new volume's pool; restore into a volume path on the snapshot's pool"
            }
            Self::SizeMismatch => {
                "rds-csi: the image to copy is missing or not of the size recorded for it; nothing was made"
            }
            Self::DiskAddFailed => {
                "rds-csi: RouterOS refused /disk add on the new volume's image; the new subvolume was removed"
            }
            Self::DataNotKept => {
                "rds-csi: /disk add did not keep the image's data (the disk came out smaller than the image); the new volume was removed"
            }
            Self::NotGrown => "rds-csi: the new volume could not be grown to the size asked for",
            Self::InUse => "rds-csi: a disk uses a file inside the snapshot, so it was kept",
        }
    }

    /// The failure among RouterOS's message lines, if a script raised one.
    pub fn recognise<'a>(messages: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        messages.into_iter().find_map(|line| {
            Self::ALL
                .iter()
                .copied()
                .find(|f| line.trim().contains(f.text()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_distinct_and_safe_in_quotes() {
        for (i, f) in ScriptFailure::ALL.iter().enumerate() {
            let text = f.text();
            assert!(text.starts_with("rds-csi: "), "{text}");
            assert!(
                text.bytes().all(|b| (b' '..=b'~').contains(&b))
                    && !text.contains(['"', '\\', '$', '?']),
                "{text}"
            );
            for other in &ScriptFailure::ALL[i + 1..] {
                assert!(
                    !text.contains(other.text()) && !other.text().contains(text),
                    "{f:?} and {other:?} overlap"
                );
            }
            assert_eq!(f.to_string(), text);
        }
    }

    #[test]
    fn recognised_among_messages() {
        let lines = [
            "some noise",
            "rds-csi: the snapshot does not exist",
            "failure: x",
        ];
        assert_eq!(
            ScriptFailure::recognise(lines),
            Some(ScriptFailure::SnapshotNotFound)
        );
        assert_eq!(ScriptFailure::recognise(["no such item"]), None);
        assert_eq!(ScriptFailure::recognise([]), None);
    }
}
