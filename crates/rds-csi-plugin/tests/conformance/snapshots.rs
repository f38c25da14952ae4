//! Snapshots, restores and clones over the socket: each RPC's error table,
//! and, on a real loop-mounted btrfs (root tier), what the spec promises —
//! idempotency by name, sizes never 0, snapshots that outlive their source
//! and a restart, restores and clones that hold the data of their source
//! and grow when asked, a refused snapshot on a full pool, and a restore
//! cut between its two commands that converges when the sidecar repeats it.

use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use csi_proto::v1::controller_client::ControllerClient;
use csi_proto::v1::volume_content_source::{SnapshotSource, Type, VolumeSource};
use csi_proto::v1::{
    CreateSnapshotRequest, CreateVolumeRequest, DeleteSnapshotRequest, DeleteVolumeRequest,
    GetSnapshotRequest, ListSnapshotsRequest, Snapshot, VolumeContentSource,
};
use tonic::transport::Channel;
use tonic::{Code, Response, Status};

use csi_driver::naming::slot_for;

use crate::harness::{GIB, MIB, Options, Plugin, eventually};
use crate::requests::{create, params, pv_name, range};

/// Whether the root tier was selected; if not, says the tests were skipped.
fn root_tier() -> bool {
    test_support::tier::Tier::Root.selected("-p rds-csi-plugin --test conformance snapshots")
}

/// A plugin whose pool `storage-pool` is a fresh btrfs of `gib` GiB.
async fn on_btrfs(gib: u64, extra_flags: &[&str]) -> Plugin {
    Plugin::start_with(Options {
        btrfs_bytes: Some(gib << 30),
        extra_flags: extra_flags.iter().map(|f| (*f).to_owned()).collect(),
        ..Options::default()
    })
    .await
}

fn snapshot_req(name: &str, source: &str) -> CreateSnapshotRequest {
    CreateSnapshotRequest {
        name: name.into(),
        source_volume_id: source.into(),
        ..Default::default()
    }
}

fn from_snapshot(name: &str, size: i64, snapshot: &str) -> CreateVolumeRequest {
    CreateVolumeRequest {
        volume_content_source: Some(VolumeContentSource {
            r#type: Some(Type::Snapshot(SnapshotSource {
                snapshot_id: snapshot.into(),
            })),
        }),
        ..create(name, size)
    }
}

fn from_volume(name: &str, size: i64, volume: &str) -> CreateVolumeRequest {
    CreateVolumeRequest {
        volume_content_source: Some(VolumeContentSource {
            r#type: Some(Type::Volume(VolumeSource {
                volume_id: volume.into(),
            })),
        }),
        ..create(name, size)
    }
}

fn list_all() -> ListSnapshotsRequest {
    ListSnapshotsRequest::default()
}

fn code<T: std::fmt::Debug>(result: Result<Response<T>, Status>) -> (Code, String) {
    let status = result.unwrap_err();
    (status.code(), status.message().to_owned())
}

async fn make(c: &mut ControllerClient<Channel>, req: CreateVolumeRequest) -> (String, i64) {
    let v = c
        .create_volume(req)
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    (v.volume_id, v.capacity_bytes)
}

async fn snap(c: &mut ControllerClient<Channel>, name: &str, source: &str) -> Snapshot {
    c.create_snapshot(snapshot_req(name, source))
        .await
        .unwrap_or_else(|s| panic!("snapshot {name} of {source}: {s:?}"))
        .into_inner()
        .snapshot
        .unwrap()
}

async fn delete_volume(c: &mut ControllerClient<Channel>, id: &str) {
    c.delete_volume(DeleteVolumeRequest {
        volume_id: id.into(),
        ..Default::default()
    })
    .await
    .unwrap();
}

async fn listed(c: &mut ControllerClient<Channel>, req: ListSnapshotsRequest) -> Vec<String> {
    c.list_snapshots(req)
        .await
        .unwrap()
        .into_inner()
        .entries
        .into_iter()
        .map(|e| e.snapshot.unwrap().snapshot_id)
        .collect()
}

impl Plugin {
    /// The host file of volume `id`'s image in its own subvolume.
    fn image(&self, id: &str) -> PathBuf {
        self.dir
            .path()
            .join("rds/storage-pool/metal-csi")
            .join(id)
            .join("volume.img")
    }

    /// Writes `byte` over the first MiB of volume `id`, as a node would.
    fn write(&self, id: &str, byte: u8) {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(self.image(id))
            .unwrap();
        file.write_all_at(&vec![byte; MIB as usize], 0).unwrap();
        file.sync_all().unwrap();
    }

    /// The first byte of volume `id`.
    fn read(&self, id: &str) -> u8 {
        let mut b = [0u8; 1];
        std::fs::File::open(self.image(id))
            .unwrap()
            .read_exact_at(&mut b, 0)
            .unwrap();
        b[0]
    }

    /// Every subvolume's path, sorted.
    fn subvolumes(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .routeros(":foreach s in=[/disk/btrfs/subvolume find] do={:put [/disk/btrfs/subvolume get $s fullname]}")
            .lines()
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    }
}

#[tokio::test]
async fn snapshot_rpcs_check_their_arguments_and_change_nothing() {
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let cases: Vec<(CreateSnapshotRequest, Code, &str)> = vec![
        (
            snapshot_req("", "pvc-1"),
            Code::InvalidArgument,
            "snapshot name is required",
        ),
        (
            snapshot_req("s", ""),
            Code::InvalidArgument,
            "source volume ID is required",
        ),
        (
            CreateSnapshotRequest {
                parameters: params(&[("fsType", "xfs")]),
                ..snapshot_req("s", "pvc-1")
            },
            Code::InvalidArgument,
            "snapshot parameter \"fsType\" is not known",
        ),
        (
            snapshot_req("s", "pvc-00000000000000000000000000aa"),
            Code::NotFound,
            "volume pvc-00000000000000000000000000aa does not exist",
        ),
        // An ID that cannot be a slot names no volume.
        (
            snapshot_req("s", "no such volume; really"),
            Code::NotFound,
            "does not exist",
        ),
    ];
    for (req, expected, text) in cases {
        let (got, message) = code(c.create_snapshot(req.clone()).await);
        assert_eq!(got, expected, "{req:?}: {message}");
        assert!(message.contains(text), "{text}: {message}");
    }
    // The snapshotter's own metadata is accepted (and the missing source
    // then found missing).
    let (got, _) = code(
        c.create_snapshot(CreateSnapshotRequest {
            parameters: params(&[
                ("csi.storage.k8s.io/volumesnapshot/name", "daily"),
                ("csi.storage.k8s.io/volumesnapshot/namespace", "apps"),
                (
                    "csi.storage.k8s.io/volumesnapshotcontent/name",
                    "snapcontent-1",
                ),
            ]),
            ..snapshot_req("s", "pvc-00000000000000000000000000aa")
        })
        .await,
    );
    assert_eq!(got, Code::NotFound);

    let (got, message) = code(c.delete_snapshot(DeleteSnapshotRequest::default()).await);
    assert_eq!(
        (got, message.as_str()),
        (Code::InvalidArgument, "snapshot ID is required")
    );
    // IDs this driver never gave out, and one of its shape that is gone:
    // nothing to delete.
    for id in ["reallyfakesnapshotid", "snap-0123456789abcdef0123456789ab"] {
        c.delete_snapshot(DeleteSnapshotRequest {
            snapshot_id: id.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }

    let (got, _) = code(
        c.list_snapshots(ListSnapshotsRequest {
            max_entries: -1,
            ..Default::default()
        })
        .await,
    );
    assert_eq!(got, Code::InvalidArgument);
    for token in ["invalid-token", "volumes:pvc-1.00000000"] {
        let (got, message) = code(
            c.list_snapshots(ListSnapshotsRequest {
                starting_token: token.into(),
                ..Default::default()
            })
            .await,
        );
        assert_eq!(got, Code::Aborted, "{token}: {message}");
    }
    for req in [
        list_all(),
        ListSnapshotsRequest {
            snapshot_id: "none-exist-id".into(),
            ..Default::default()
        },
        ListSnapshotsRequest {
            snapshot_id: "snap-0123456789abcdef0123456789ab".into(),
            ..Default::default()
        },
        ListSnapshotsRequest {
            source_volume_id: "pvc-00000000000000000000000000aa".into(),
            ..Default::default()
        },
        ListSnapshotsRequest {
            source_volume_id: "not a volume".into(),
            ..Default::default()
        },
    ] {
        assert!(listed(&mut c, req.clone()).await.is_empty(), "{req:?}");
    }

    let (got, message) = code(c.get_snapshot(GetSnapshotRequest::default()).await);
    assert_eq!(
        (got, message.as_str()),
        (Code::InvalidArgument, "snapshot ID is required")
    );
    for id in ["none-exist-id", "snap-0123456789abcdef0123456789ab"] {
        let (got, message) = code(
            c.get_snapshot(GetSnapshotRequest {
                snapshot_id: id.into(),
                ..Default::default()
            })
            .await,
        );
        assert_eq!(got, Code::NotFound, "{id}: {message}");
        assert_eq!(message, format!("snapshot {id} does not exist"));
    }

    // CreateVolume from sources that do not exist, or are not named.
    let cases: Vec<(CreateVolumeRequest, Code, &str)> = vec![
        (
            from_snapshot(&pv_name(1), GIB, "non-existing-snapshot-id"),
            Code::NotFound,
            "snapshot non-existing-snapshot-id does not exist",
        ),
        (
            from_snapshot(&pv_name(1), GIB, "snap-0123456789abcdef0123456789ab"),
            Code::NotFound,
            "does not exist",
        ),
        (
            from_volume(&pv_name(1), GIB, "pvc-00000000000000000000000000aa"),
            Code::NotFound,
            "volume pvc-00000000000000000000000000aa does not exist",
        ),
        (
            from_snapshot(&pv_name(1), GIB, ""),
            Code::InvalidArgument,
            "no snapshot_id",
        ),
        (
            from_volume(&pv_name(1), GIB, ""),
            Code::InvalidArgument,
            "no volume_id",
        ),
    ];
    for (req, expected, text) in cases {
        let (got, message) = code(c.create_volume(req.clone()).await);
        assert_eq!(got, expected, "{:?}: {message}", req.volume_content_source);
        assert!(message.contains(text), "{text}: {message}");
    }
    assert!(plugin.sim.engine.disks().is_empty());
    assert!(plugin.sim.engine.files().is_empty());
}

#[tokio::test]
async fn volumes_that_cannot_be_snapshotted_or_cloned_say_why_and_keep_working() {
    // A pool that is not btrfs: volumes are flat images, as before.
    let plugin = Plugin::start().await;
    let mut c = plugin.controller().await;
    let (id, _) = make(&mut c, create(&pv_name(1), GIB)).await;
    assert_eq!(
        plugin.sim.engine.disks()[0].file_path,
        format!("/storage-pool/metal-csi/{id}.img")
    );
    let (got, message) = code(c.create_snapshot(snapshot_req("s", &id)).await);
    assert_eq!(got, Code::FailedPrecondition, "{message}");
    assert!(
        message.contains(&format!("volume {id}"))
            && message.contains("not in a subvolume of its own")
            && message.contains("on a pool that is not btrfs"),
        "{message}"
    );
    let (got, message) = code(c.create_volume(from_volume(&pv_name(2), GIB, &id)).await);
    assert_eq!(got, Code::FailedPrecondition, "{message}");
    assert!(
        message.contains("cannot be snapshotted or cloned"),
        "{message}"
    );
    // A file disk someone made by hand is not the driver's to copy.
    plugin.routeros(
        "/disk add type=file file-path=storage-pool/metal-csi/mine.img file-size=1G slot=mine",
    );
    for result in [
        code(c.create_snapshot(snapshot_req("s", "mine")).await),
        code(c.create_volume(from_volume(&pv_name(3), GIB, "mine")).await),
    ] {
        assert_eq!(result.0, Code::FailedPrecondition, "{}", result.1);
        assert!(result.1.contains("not made by this driver"), "{}", result.1);
    }
    // Nothing was made, and the flat volume is still grown and deleted.
    assert_eq!(plugin.sim.engine.disks().len(), 2);
    c.controller_expand_volume(csi_proto::v1::ControllerExpandVolumeRequest {
        volume_id: id.clone(),
        capacity_range: range(2 * GIB, 0),
        ..Default::default()
    })
    .await
    .unwrap();
    delete_volume(&mut c, &id).await;
    assert_eq!(plugin.slots(), ["mine"]);
}

#[tokio::test]
async fn snapshots_restores_and_clones_keep_the_specs_promises() {
    if !root_tier() {
        return;
    }
    let mut plugin = on_btrfs(8, &[]).await;
    let mut c = plugin.controller().await;
    let (source, size) = make(&mut c, create(&pv_name(1), GIB)).await;
    assert_eq!(size, GIB);
    assert_eq!(
        plugin.sim.engine.disks()[0].file_path,
        format!("/storage-pool/metal-csi/{source}/volume.img"),
        "on btrfs, a subvolume of its own"
    );
    plugin.write(&source, b'A');

    // A snapshot: ready, of its source, never of size 0, with the time.
    let name = "snapshot-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1";
    let s = snap(&mut c, name, &source).await;
    assert_eq!(s.snapshot_id, "snap-0b0e8b8e3c434c2f9d2e53f0d3b1");
    assert_eq!(s.source_volume_id, source);
    assert_eq!(s.size_bytes, GIB);
    assert!(s.ready_to_use);
    assert!(s.creation_time.unwrap().seconds > 1_700_000_000);
    // GetSnapshot by its ID: the same snapshot.
    let got = c
        .get_snapshot(GetSnapshotRequest {
            snapshot_id: s.snapshot_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .snapshot;
    assert_eq!(got.as_ref(), Some(&s));
    // The same name and source: the same snapshot; another source:
    // ALREADY_EXISTS.
    assert_eq!(snap(&mut c, name, &source).await, s);
    let (other, _) = make(&mut c, create(&pv_name(2), GIB)).await;
    let (got, message) = code(c.create_snapshot(snapshot_req(name, &other)).await);
    assert_eq!(got, Code::AlreadyExists, "{message}");
    assert!(
        message.contains(&source) && message.contains(&other),
        "{message}"
    );
    plugin.write(&source, b'B');

    // A restore holds the data as it was; a clone as it is.
    let (restored, size) = make(&mut c, from_snapshot(&pv_name(3), GIB, &s.snapshot_id)).await;
    assert_eq!(size, GIB);
    assert_eq!(plugin.read(&restored), b'A');
    let (cloned, _) = make(&mut c, from_volume(&pv_name(4), GIB, &source)).await;
    assert_eq!(plugin.read(&cloned), b'B');
    // Repeated, the same volume, with the source in the answer.
    let again = c
        .create_volume(from_snapshot(&pv_name(3), GIB, &s.snapshot_id))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(again.volume_id, restored);
    assert_eq!(
        again.content_source.unwrap().r#type,
        Some(Type::Snapshot(SnapshotSource {
            snapshot_id: s.snapshot_id.clone()
        }))
    );
    // Larger: grown; smaller: OUT_OF_RANGE, and nothing made.
    let (larger, size) = make(&mut c, from_snapshot(&pv_name(5), 2 * GIB, &s.snapshot_id)).await;
    assert_eq!(size, 2 * GIB);
    assert_eq!(
        std::fs::metadata(plugin.image(&larger)).unwrap().len(),
        2 * GIB as u64
    );
    assert_eq!(plugin.read(&larger), b'A');
    let (clone_larger, size) = make(&mut c, from_volume(&pv_name(6), 3 * GIB, &source)).await;
    assert_eq!((size, plugin.read(&clone_larger)), (3 * GIB, b'B'));
    let disks = plugin.sim.engine.disks().len();
    for req in [
        from_snapshot(&pv_name(7), GIB / 2, &s.snapshot_id),
        from_volume(&pv_name(7), GIB / 2, &source),
        CreateVolumeRequest {
            capacity_range: range(0, GIB / 2),
            ..from_snapshot(&pv_name(7), 0, &s.snapshot_id)
        },
    ] {
        let (got, message) = code(c.create_volume(req).await);
        assert_eq!(got, Code::OutOfRange, "{message}");
        assert!(message.contains("1073741824 bytes or more"), "{message}");
    }
    assert_eq!(plugin.sim.engine.disks().len(), disks);
    // No size asked for: the source's.
    let (sized_as_source, size) = make(
        &mut c,
        CreateVolumeRequest {
            capacity_range: None,
            ..from_snapshot(&pv_name(8), 0, &s.snapshot_id)
        },
    )
    .await;
    assert_eq!(size, GIB);

    // Lists: all, by ID, by source, in pages.
    let s2 = snap(&mut c, "second", &other).await;
    let s3 = snap(&mut c, "third", &source).await;
    let all: BTreeSet<String> = [&s, &s2, &s3]
        .iter()
        .map(|s| s.snapshot_id.clone())
        .collect();
    assert_eq!(
        listed(&mut c, list_all()).await,
        all.iter().cloned().collect::<Vec<_>>(),
        "every snapshot, in the order of their IDs"
    );
    assert_eq!(
        listed(
            &mut c,
            ListSnapshotsRequest {
                snapshot_id: s2.snapshot_id.clone(),
                ..Default::default()
            }
        )
        .await,
        vec![s2.snapshot_id.clone()]
    );
    let of_source: BTreeSet<String> = listed(
        &mut c,
        ListSnapshotsRequest {
            source_volume_id: source.clone(),
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .collect();
    assert_eq!(
        of_source,
        BTreeSet::from([s.snapshot_id.clone(), s3.snapshot_id.clone()])
    );
    // Both filters: both apply.
    assert!(
        listed(
            &mut c,
            ListSnapshotsRequest {
                snapshot_id: s2.snapshot_id.clone(),
                source_volume_id: source.clone(),
                ..Default::default()
            }
        )
        .await
        .is_empty()
    );
    let first = c
        .list_snapshots(ListSnapshotsRequest {
            max_entries: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.entries.len(), 2);
    assert!(!first.next_token.is_empty());
    // A token of ListVolumes is not one of ListSnapshots.
    let volumes_token = c
        .list_volumes(csi_proto::v1::ListVolumesRequest {
            max_entries: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next_token;
    let (got, _) = code(
        c.list_snapshots(ListSnapshotsRequest {
            starting_token: volumes_token,
            ..Default::default()
        })
        .await,
    );
    assert_eq!(got, Code::Aborted);
    let rest = listed(
        &mut c,
        ListSnapshotsRequest {
            starting_token: first.next_token,
            ..Default::default()
        },
    )
    .await;
    let mut paged: Vec<String> = first
        .entries
        .into_iter()
        .map(|e| e.snapshot.unwrap().snapshot_id)
        .collect();
    paged.extend(rest);
    assert_eq!(paged, all.iter().cloned().collect::<Vec<_>>());

    // The source deleted: its snapshots stay, listable by source and
    // restorable; deleting a snapshot leaves the volumes made from it.
    delete_volume(&mut c, &source).await;
    assert_eq!(
        listed(
            &mut c,
            ListSnapshotsRequest {
                source_volume_id: source.clone(),
                ..Default::default()
            }
        )
        .await
        .len(),
        2
    );
    let (again, _) = make(&mut c, from_snapshot(&pv_name(9), GIB, &s.snapshot_id)).await;
    assert_eq!(plugin.read(&again), b'A');
    // The same name, once the source is gone: the same snapshot.
    assert_eq!(snap(&mut c, name, &source).await, s);

    // A restart: everything is found again from what the RDS shows.
    plugin.restart().await;
    let mut c = plugin.controller().await;
    assert_eq!(
        listed(&mut c, list_all())
            .await
            .into_iter()
            .collect::<BTreeSet<_>>(),
        all
    );
    let (after_restart, _) = make(&mut c, from_snapshot(&pv_name(10), GIB, &s.snapshot_id)).await;
    assert_eq!(plugin.read(&after_restart), b'A');

    for snapshot in [&s, &s2, &s3] {
        c.delete_snapshot(DeleteSnapshotRequest {
            snapshot_id: snapshot.snapshot_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    assert!(listed(&mut c, list_all()).await.is_empty());
    assert_eq!(
        plugin.read(&restored),
        b'A',
        "a restore outlives its snapshot"
    );
    let (got, _) = code(
        c.create_volume(from_snapshot(&pv_name(11), GIB, &s.snapshot_id))
            .await,
    );
    assert_eq!(got, Code::NotFound);
    // ...and a repeated restore of a volume made before finds it.
    assert_eq!(
        make(&mut c, from_snapshot(&pv_name(3), GIB, &s.snapshot_id))
            .await
            .0,
        restored
    );

    for id in [
        &other,
        &restored,
        &cloned,
        &larger,
        &clone_larger,
        &sized_as_source,
        &again,
        &after_restart,
    ] {
        delete_volume(&mut c, id).await;
    }
    assert!(plugin.sim.engine.disks().is_empty());
    assert_eq!(plugin.subvolumes(), Vec::<String>::new(), "nothing left");
}

#[tokio::test]
async fn a_restore_cut_between_its_subvolume_and_its_disk_converges_when_repeated() {
    if !root_tier() {
        return;
    }
    let plugin = on_btrfs(8, &[]).await;
    let mut c = plugin.controller().await;
    let (source, _) = make(&mut c, create(&pv_name(1), GIB)).await;
    plugin.write(&source, b'A');
    let s = snap(&mut c, "s", &source).await;
    plugin.write(&source, b'B');
    let faults = plugin.sim.engine.faults();

    for (n, cut, request) in [
        (
            2,
            "/disk btrfs subvolume add",
            from_snapshot(&pv_name(2), GIB, &s.snapshot_id),
        ),
        (
            3,
            "/disk add",
            from_snapshot(&pv_name(3), GIB, &s.snapshot_id),
        ),
        (
            4,
            "/disk btrfs subvolume add",
            from_volume(&pv_name(4), GIB, &source),
        ),
    ] {
        // The connection drops right after the command, and the RDS then
        // refuses new ones, so the client's own retries cannot go on: the
        // caller sees UNAVAILABLE, the outcome unknown.
        faults.set_refuse_connections(true);
        faults.drop_after(cut);
        let (got, message) = code(c.create_volume(request.clone()).await);
        assert_eq!(got, Code::Unavailable, "{n}: {message}");
        let half: Vec<_> = plugin
            .sim
            .engine
            .disks()
            .into_iter()
            .filter(|d| d.slot == slot_for(&pv_name(n)).as_str())
            .collect();
        match cut {
            "/disk add" => assert!(
                half.len() == 1 && !half[0].export,
                "{n}: the cut left the disk, not exported: {half:?}"
            ),
            _ => assert!(half.is_empty(), "{n}: the cut left no disk: {half:?}"),
        }
        faults.clear();
        // The sidecar repeats the call until it goes through.
        let volume = eventually("the repeated CreateVolume", || {
            let mut c = c.clone();
            let request = request.clone();
            async move { c.create_volume(request).await.ok() }
        })
        .await
        .into_inner()
        .volume
        .unwrap();
        let expected = if n == 4 { b'B' } else { b'A' };
        assert_eq!(plugin.read(&volume.volume_id), expected, "{n}");
        let disks: Vec<_> = plugin
            .sim
            .engine
            .disks()
            .into_iter()
            .filter(|d| d.slot == volume.volume_id)
            .collect();
        assert_eq!(disks.len(), 1, "{n}: one disk");
        assert!(
            !disks[0].export,
            "{n}: closed to every host, as every new volume, until published"
        );
        let subvolumes = plugin.subvolumes();
        assert_eq!(
            subvolumes
                .iter()
                .filter(|p| p.ends_with(&format!("/{}", volume.volume_id)))
                .count(),
            1,
            "{n}: one subvolume: {subvolumes:?}"
        );
    }
    // Nothing else was left: the source, its snapshot and three volumes.
    assert_eq!(plugin.subvolumes().len(), 5, "{:?}", plugin.subvolumes());
    assert_eq!(plugin.sim.engine.disks().len(), 4);
}

#[tokio::test]
async fn a_pool_above_the_limit_takes_no_new_snapshot() {
    if !root_tier() {
        return;
    }
    let plugin = on_btrfs(2, &["--snapshot-max-pool-use", "50"]).await;
    let mut c = plugin.controller().await;
    let (source, _) = make(&mut c, create(&pv_name(1), GIB)).await;
    let kept = snap(&mut c, "before", &source).await;
    // 1.25 of the pool's 2 GiB written (not sparse): more than 60 % used.
    let filler = plugin.dir.path().join("rds/storage-pool/filler");
    {
        let file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0x5a_u8; 64 << 20];
        for i in 0..20_u64 {
            file.write_all_at(&chunk, i * (64 << 20)).unwrap();
        }
        file.sync_all().unwrap();
    }
    let (got, message) = code(c.create_snapshot(snapshot_req("after", &source)).await);
    assert_eq!(got, Code::ResourceExhausted, "{message}");
    assert!(
        message.contains("pool storage-pool is") && message.contains("above the 50%"),
        "{message}"
    );
    assert_eq!(
        listed(&mut c, list_all()).await,
        vec![kept.snapshot_id.clone()]
    );
    // A snapshot taken before is still answered as taken.
    assert_eq!(snap(&mut c, "before", &source).await, kept);
    // Room again: the snapshot is taken. (The simulator measures a pool
    // again after a change it made itself, such as a new volume.)
    std::fs::remove_file(&filler).unwrap();
    std::process::Command::new("btrfs")
        .args(["filesystem", "sync"])
        .arg(plugin.dir.path().join("rds/storage-pool"))
        .status()
        .unwrap();
    make(&mut c, create(&pv_name(2), GIB)).await;
    snap(&mut c, "after", &source).await;
}

#[tokio::test]
async fn each_call_costs_the_execs_docs_routeros_cli_names() {
    if !root_tier() {
        return;
    }
    // No periodic checks of the RDS while counting.
    let plugin = Plugin::start_with(Options {
        btrfs_bytes: Some(8 << 30),
        check_interval: 3600,
        ..Options::default()
    })
    .await;
    eventually("the first check of the RDS", || async {
        (plugin.metric("rds_csi_rds_up").await == 1.0).then_some(())
    })
    .await;
    let execs = || plugin.sim.engine.execs_served();
    let mut c = plugin.controller().await;

    let before = execs();
    let (source, _) = make(&mut c, create(&pv_name(1), GIB)).await;
    assert_eq!(execs() - before, 1, "create");
    let before = execs();
    let s = snap(&mut c, "s", &source).await;
    assert_eq!(
        execs() - before,
        3,
        "snapshot: the disk, the pool, the script"
    );
    let before = execs();
    let (restored, _) = make(&mut c, from_snapshot(&pv_name(2), GIB, &s.snapshot_id)).await;
    assert_eq!(execs() - before, 2, "restore");
    let before = execs();
    let (cloned, _) = make(&mut c, from_volume(&pv_name(3), GIB, &source)).await;
    assert_eq!(execs() - before, 2, "clone");
    for req in [
        list_all(),
        ListSnapshotsRequest {
            snapshot_id: s.snapshot_id.clone(),
            ..Default::default()
        },
        ListSnapshotsRequest {
            source_volume_id: source.clone(),
            ..Default::default()
        },
    ] {
        let before = execs();
        listed(&mut c, req.clone()).await;
        assert_eq!(execs() - before, 1, "{req:?}");
    }
    let before = execs();
    c.delete_snapshot(DeleteSnapshotRequest {
        snapshot_id: s.snapshot_id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(execs() - before, 1, "delete a snapshot");
    for id in [&source, &restored, &cloned] {
        let before = execs();
        delete_volume(&mut c, id).await;
        assert_eq!(execs() - before, 1, "delete {id}");
    }
}
