//! Snapshots, restores and clones: the controller's rules, without I/O.
//!
//! The copy-on-write work is done on the RDS (`rds_client::snapshots`); what
//! the controller decides is here, each decision a function of what the
//! request says and what the RDS showed:
//!
//! - which snapshot an ID names ([`snapshot_id`]): the driver's IDs are
//!   `snap-` and 28 hex digits, derived from the CSI name
//!   ([`routeros::subvolume::SnapshotId::for_name`]); any other text names
//!   no snapshot, which each RPC answers as the spec asks (NOT_FOUND, an
//!   empty list, or success for a delete);
//! - where a new volume's data comes from ([`ContentSource`]) and how large
//!   it is made ([`size_from_source`]): never smaller than its source
//!   (OUT_OF_RANGE), grown when asked for more;
//! - what CreateSnapshot's parameters may say ([`check_parameters`]);
//! - whether a pool has room for another snapshot ([`PoolUseLimit`]), since
//!   snapshots share the pool with the volumes and grow as the volumes
//!   change;
//! - the CSI view of a snapshot ([`to_csi`]), and the pages of a list
//!   ([`page`]).

use std::collections::HashMap;

use csi_proto::v1::{self as csi, volume_content_source};
use routeros::Pool;
use routeros::subvolume::{Snapshot, SnapshotId};

use crate::capacity::Bounds;
use crate::error::{DriverError, Result};

/// The snapshot the CO's `id` names, if it is one of the driver's IDs. Any
/// other text names no snapshot: it was not given out by this driver.
pub fn snapshot_id(id: &str) -> Option<SnapshotId> {
    SnapshotId::new(id).ok()
}

/// Where a new volume's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentSource {
    /// A snapshot, by the ID the CO gave (not checked yet: an ID that is not
    /// the driver's names no snapshot, which is NOT_FOUND).
    Snapshot(String),
    /// A live volume, by its ID.
    Volume(String),
}

impl ContentSource {
    /// The source a CreateVolume request names, if any. A source that names
    /// neither kind, or names one without an ID, is INVALID_ARGUMENT.
    pub fn of(source: Option<&csi::VolumeContentSource>) -> Result<Option<Self>> {
        let Some(source) = source else {
            return Ok(None);
        };
        let invalid = |m: &str| Err(DriverError::InvalidArgument(m.to_owned()));
        match &source.r#type {
            None => invalid("volume_content_source names neither a snapshot nor a volume"),
            Some(volume_content_source::Type::Snapshot(s)) if s.snapshot_id.is_empty() => {
                invalid("volume_content_source.snapshot has no snapshot_id")
            }
            Some(volume_content_source::Type::Volume(v)) if v.volume_id.is_empty() => {
                invalid("volume_content_source.volume has no volume_id")
            }
            Some(volume_content_source::Type::Snapshot(s)) => {
                Ok(Some(Self::Snapshot(s.snapshot_id.clone())))
            }
            Some(volume_content_source::Type::Volume(v)) => {
                Ok(Some(Self::Volume(v.volume_id.clone())))
            }
        }
    }

    /// The source as CreateVolume's answer carries it.
    pub fn to_csi(&self) -> csi::VolumeContentSource {
        let r#type = match self {
            Self::Snapshot(id) => {
                volume_content_source::Type::Snapshot(volume_content_source::SnapshotSource {
                    snapshot_id: id.clone(),
                })
            }
            Self::Volume(id) => {
                volume_content_source::Type::Volume(volume_content_source::VolumeSource {
                    volume_id: id.clone(),
                })
            }
        };
        csi::VolumeContentSource {
            r#type: Some(r#type),
        }
    }

    /// What the source is, for messages: `snapshot snap-…`, `volume pvc-…`.
    pub fn describe(&self) -> String {
        match self {
            Self::Snapshot(id) => format!("snapshot {id}"),
            Self::Volume(id) => format!("volume {id}"),
        }
    }
}

/// The size of a volume made from a source of `source_bytes` bytes (a
/// snapshot's recorded size, or a live volume's): the source's size when
/// the request asks for none, else what it asks for, rounded up as for any
/// new volume. A volume is never made smaller than its source (its
/// filesystem would not fit): a request for less, or a limit below the
/// source's size, is OUT_OF_RANGE. A larger one is grown on the RDS, and
/// its filesystem by the node when it stages it.
pub fn size_from_source(bounds: &Bounds, source_bytes: u64, source: &str) -> Result<u64> {
    let too_small = |asked: String| {
        DriverError::OutOfRange(format!(
            "{source} holds {source_bytes} bytes, but {asked}: a volume made from it must be at \
             least as large; ask for {source_bytes} bytes or more"
        ))
    };
    if let Some(limit) = bounds.limit
        && limit < source_bytes
    {
        return Err(too_small(format!("the limit is {limit} bytes")));
    }
    if bounds.required == 0 {
        return Ok(source_bytes);
    }
    if bounds.required < source_bytes {
        return Err(too_small(format!(
            "{} bytes were asked for",
            bounds.required
        )));
    }
    // At least the source, which is a whole number of MiB already.
    Ok(bounds.new_volume_size()?.max(source_bytes))
}

/// The parameters CreateSnapshot accepts: those the external-snapshotter
/// adds itself (`--extra-create-metadata`). A VolumeSnapshotClass has no
/// parameters of this driver's (a snapshot lives beside its volume, on its
/// pool), so any other key is refused rather than silently ignored.
pub const SNAPSHOT_METADATA_KEYS: &[&str] = &[
    "csi.storage.k8s.io/volumesnapshot/name",
    "csi.storage.k8s.io/volumesnapshot/namespace",
    "csi.storage.k8s.io/volumesnapshotcontent/name",
];

/// Refuses parameters CreateSnapshot does not know (INVALID_ARGUMENT).
pub fn check_parameters(parameters: &HashMap<String, String>) -> Result<()> {
    let mut unknown: Vec<&String> = parameters
        .keys()
        .filter(|k| !SNAPSHOT_METADATA_KEYS.contains(&k.as_str()))
        .collect();
    unknown.sort();
    match unknown.first() {
        None => Ok(()),
        Some(key) => Err(DriverError::InvalidArgument(format!(
            "snapshot parameter {key:?} is not known: a VolumeSnapshotClass of this driver \
             takes no parameters"
        ))),
    }
}

/// How full a pool may be for a new snapshot to be taken on it, in percent
/// of its size. A snapshot takes no space when it is made, but every block
/// its volume changes afterwards is kept twice; on a nearly full pool that
/// makes the volumes themselves run out of space. 100 takes snapshots
/// whatever the use (the pool is then not looked at).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUseLimit(u8);

impl PoolUseLimit {
    /// The default: 90 %.
    pub const DEFAULT: Self = Self(90);

    /// A limit of `percent` (1 to 100).
    pub fn new(percent: u8) -> Option<Self> {
        (1..=100).contains(&percent).then_some(Self(percent))
    }

    /// The limit in percent.
    pub fn percent(self) -> u8 {
        self.0
    }

    /// Whether the pool must be looked at before a snapshot: not when any
    /// use is allowed.
    pub fn applies(self) -> bool {
        self.0 < 100
    }

    /// The pool's use in percent (rounded up) when it is above the limit,
    /// so that a new snapshot is refused; `None` when one may be taken. A
    /// pool that reports no size is full.
    pub fn exceeded_by(self, pool: &Pool) -> Option<u8> {
        let used = pool.size.saturating_sub(pool.free);
        let percent = if pool.size == 0 {
            100
        } else {
            // Rounded up, in 128 bits: no overflow for any size.
            let p = (u128::from(used) * 100).div_ceil(u128::from(pool.size));
            u8::try_from(p.min(100)).unwrap_or(100)
        };
        (percent > self.0).then_some(percent)
    }
}

impl Default for PoolUseLimit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The CSI view of a snapshot: everything from what the RDS shows. Its
/// size is the one recorded in its name (the source's size when it was
/// taken, never 0); it is ready once it is read-only and not being removed;
/// its creation time is the subvolume's, as RouterOS prints it (read as
/// UTC), and absent when RouterOS prints none.
pub fn to_csi(snapshot: &Snapshot) -> csi::Snapshot {
    csi::Snapshot {
        size_bytes: i64::try_from(snapshot.name.size).unwrap_or(i64::MAX),
        snapshot_id: snapshot.name.id.to_string(),
        source_volume_id: snapshot.name.source.to_string(),
        creation_time: snapshot
            .subvolume
            .creation_time
            .map(|t| prost_types::Timestamp {
                seconds: t.unix_seconds(),
                nanos: 0,
            }),
        ready_to_use: snapshot.ready_to_use(),
        group_snapshot_id: String::new(),
    }
}

/// One page of `snapshots`, in the order of their IDs: those after the ID
/// `after` (a position, so that a snapshot deleted between two pages shifts
/// nothing), at most `max` of them (0: all). Also the ID to resume after,
/// when more follow.
pub fn page(
    mut snapshots: Vec<Snapshot>,
    after: Option<&str>,
    max: usize,
) -> (Vec<Snapshot>, Option<String>) {
    snapshots.sort_by(|a, b| a.name.id.as_str().cmp(b.name.id.as_str()));
    snapshots.dedup_by(|a, b| a.name.id == b.name.id);
    let start = after.map_or(0, |after| {
        snapshots.partition_point(|s| s.name.id.as_str() <= after)
    });
    let mut rest = snapshots.split_off(start);
    if max == 0 || rest.len() <= max {
        return (rest, None);
    }
    rest.truncate(max);
    let resume = rest.last().map(|s| s.name.id.to_string());
    (rest, resume)
}

#[cfg(test)]
mod tests {
    use csi_proto::v1::CapacityRange;
    use routeros::subvolume::{RouterOsTime, SnapshotName, Subvolume};
    use routeros::{Pool, Slot};

    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn bounds(required: u64, limit: u64) -> Bounds {
        Bounds::of(Some(&CapacityRange {
            required_bytes: required as i64,
            limit_bytes: limit as i64,
        }))
        .unwrap()
    }

    fn snapshot(hex: char, source: &str, size: u64) -> Snapshot {
        let name = SnapshotName {
            id: SnapshotId::new(&format!("snap-{}", hex.to_string().repeat(28))).unwrap(),
            source: Slot::new(source).unwrap(),
            size,
        };
        Snapshot {
            subvolume: Subvolume {
                name: name.to_name(),
                fullname: None,
                fs: None,
                parent: None,
                uuid: None,
                creation_time: RouterOsTime::parse("2025-11-20 10:11:12"),
                read_only: true,
                snapshot: true,
                deleting: false,
            },
            name,
        }
    }

    #[test]
    fn only_the_drivers_ids_name_snapshots() {
        assert!(snapshot_id("snap-0123456789abcdef0123456789ab").is_some());
        for other in [
            "",
            "non-existing-snapshot-id",
            "reallyfakesnapshotid",
            "snap-0123456789ABCDEF0123456789ab",
            "pvc-0123456789abcdef0123456789ab",
        ] {
            assert_eq!(snapshot_id(other), None, "{other}");
        }
    }

    #[test]
    fn content_sources_are_read_and_echoed() {
        assert_eq!(ContentSource::of(None).unwrap(), None);
        for source in [
            ContentSource::Snapshot("snap-x".into()),
            ContentSource::Volume("pvc-1".into()),
        ] {
            let csi = source.to_csi();
            assert_eq!(ContentSource::of(Some(&csi)).unwrap(), Some(source));
        }
        let bad = [
            csi::VolumeContentSource { r#type: None },
            ContentSource::Snapshot(String::new()).to_csi(),
            ContentSource::Volume(String::new()).to_csi(),
        ];
        for source in bad {
            assert!(
                matches!(
                    ContentSource::of(Some(&source)),
                    Err(DriverError::InvalidArgument(_))
                ),
                "{source:?}"
            );
        }
        assert_eq!(
            ContentSource::Snapshot("snap-1".into()).describe(),
            "snapshot snap-1"
        );
    }

    #[test]
    fn a_volume_from_a_source_is_never_smaller_than_it() {
        let s = |b: &Bounds, src| size_from_source(b, src, "snapshot snap-1");
        // No size asked for: the source's.
        assert_eq!(s(&Bounds::of(None).unwrap(), 2 * GIB).unwrap(), 2 * GIB);
        assert_eq!(s(&bounds(0, 0), 100 * MIB).unwrap(), 100 * MIB);
        // The same size, or larger (rounded up to whole MiB): grown.
        assert_eq!(s(&bounds(2 * GIB, 0), 2 * GIB).unwrap(), 2 * GIB);
        assert_eq!(s(&bounds(3 * GIB, 0), 2 * GIB).unwrap(), 3 * GIB);
        assert_eq!(s(&bounds(2 * GIB + 1, 0), 2 * GIB).unwrap(), 2 * GIB + MIB);
        // A source below the usual minimum stays as large as asked.
        assert_eq!(s(&bounds(200 * MIB, 0), 100 * MIB).unwrap(), GIB);
        assert_eq!(
            s(&bounds(200 * MIB, 300 * MIB), 100 * MIB).unwrap(),
            300 * MIB
        );
        // Smaller, or a limit below the source: OUT_OF_RANGE, saying how
        // much is needed.
        for b in [bounds(GIB, 0), bounds(0, GIB), bounds(GIB, GIB)] {
            match s(&b, 2 * GIB) {
                Err(DriverError::OutOfRange(m)) => {
                    assert!(m.contains("snapshot snap-1 holds 2147483648 bytes"), "{m}");
                    assert!(m.contains("ask for 2147483648 bytes or more"), "{m}");
                }
                other => panic!("{b:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn snapshot_parameters_are_the_snapshotters_own() {
        let params = |keys: &[&str]| -> HashMap<String, String> {
            keys.iter().map(|k| ((*k).to_owned(), "x".into())).collect()
        };
        assert!(check_parameters(&params(&[])).is_ok());
        assert!(check_parameters(&params(SNAPSHOT_METADATA_KEYS)).is_ok());
        let e = check_parameters(&params(&[
            "csi.storage.k8s.io/volumesnapshot/name",
            "fsType",
        ]))
        .unwrap_err();
        assert!(
            matches!(&e, DriverError::InvalidArgument(m) if m.contains("\"fsType\"")),
            "{e:?}"
        );
    }

    #[test]
    fn pools_above_the_limit_take_no_new_snapshot() {
        let pool = |size, free| Pool { size, free };
        let limit = PoolUseLimit::new(90).unwrap();
        assert_eq!(PoolUseLimit::default(), limit);
        assert!(limit.applies());
        assert_eq!(limit.exceeded_by(&pool(100 * GIB, 50 * GIB)), None);
        // Exactly at the limit is allowed; above it is not.
        assert_eq!(limit.exceeded_by(&pool(100 * GIB, 10 * GIB)), None);
        assert_eq!(limit.exceeded_by(&pool(100 * GIB, 10 * GIB - 1)), Some(91));
        assert_eq!(limit.exceeded_by(&pool(100 * GIB, 0)), Some(100));
        assert_eq!(limit.exceeded_by(&pool(0, 0)), Some(100));
        assert_eq!(limit.exceeded_by(&pool(u64::MAX, 1)), Some(100));
        // 100 %: never refused, and the pool need not be asked.
        let any = PoolUseLimit::new(100).unwrap();
        assert!(!any.applies());
        assert_eq!(any.exceeded_by(&pool(100, 0)), None);
        assert_eq!(PoolUseLimit::new(0), None);
        assert_eq!(PoolUseLimit::new(101), None);
    }

    #[test]
    fn the_csi_view_is_what_the_rds_shows() {
        let mut s = snapshot('a', "pvc-1", 3 * GIB);
        let csi = to_csi(&s);
        assert_eq!(csi.snapshot_id, format!("snap-{}", "a".repeat(28)));
        assert_eq!(csi.source_volume_id, "pvc-1");
        assert_eq!(csi.size_bytes, 3 * GIB as i64);
        assert!(csi.ready_to_use);
        assert_eq!(
            csi.creation_time,
            Some(prost_types::Timestamp {
                seconds: 1_763_633_472,
                nanos: 0
            })
        );
        s.subvolume.deleting = true;
        assert!(!to_csi(&s).ready_to_use);
        s.subvolume.creation_time = None;
        assert_eq!(to_csi(&s).creation_time, None);
    }

    #[test]
    fn pages_follow_the_ids_and_resume_after_a_position() {
        let all = vec![
            snapshot('c', "pvc-1", GIB),
            snapshot('a', "pvc-1", GIB),
            snapshot('b', "pvc-2", GIB),
        ];
        let ids = |list: &[Snapshot]| -> Vec<char> {
            list.iter()
                .map(|s| s.name.id.hex().chars().next().unwrap())
                .collect()
        };
        let (first, next) = page(all.clone(), None, 2);
        assert_eq!(ids(&first), ['a', 'b']);
        let next = next.unwrap();
        assert_eq!(next, format!("snap-{}", "b".repeat(28)));
        let (second, more) = page(all.clone(), Some(&next), 2);
        assert_eq!((ids(&second), more), (vec!['c'], None));
        // Everything at once, and a position past the end.
        assert_eq!(ids(&page(all.clone(), None, 0).0), ['a', 'b', 'c']);
        assert_eq!(ids(&page(all.clone(), None, 3).0), ['a', 'b', 'c']);
        assert!(page(all.clone(), Some("snap-z"), 0).0.is_empty());
        // A snapshot deleted between pages moves nothing.
        let without_b: Vec<Snapshot> = all
            .iter()
            .filter(|s| !s.name.id.hex().starts_with('b'))
            .cloned()
            .collect();
        assert_eq!(ids(&page(without_b, Some(&next), 2).0), ['c']);
        // The same subvolume printed twice is listed once.
        let twice = vec![snapshot('a', "pvc-1", GIB), snapshot('a', "pvc-1", GIB)];
        assert_eq!(page(twice, None, 0).0.len(), 1);
    }
}
