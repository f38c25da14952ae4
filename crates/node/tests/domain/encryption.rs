//! Encrypted volumes (`encryption=luks2`): the disk gets a LUKS2 header only
//! when positively empty, everything above works on the opened mapping, a
//! wrong or missing key is a clear error that changes nothing, a volume of
//! the other kind is refused, unstage closes the mapping before the
//! disconnect, expansion resizes the mapping, the secret's previous
//! passphrase rotates the key, start-up closes only mappings of the
//! driver's, and the key reaches no error, record or log.

use std::path::Path;
use std::sync::{Arc, Mutex};

use node::crypt::{LABEL_IN_USE, LABEL_NEW};
use node::testing::{Contents, Disconnect, LUKS_HEADER};
use node::{Crypt as _, ExpandRequest, NodeError, Passphrase, VolumeKeys};
use node_fs::probe::Probe;

use crate::{FsType, GIB, KEY, Rig, Volume, block, encrypted, filesystem, kind, publish, stage};

const MAPPING: &str = "rds-csi-pvc-1";

fn expand(v: &Volume, bytes: u64, keys: VolumeKeys) -> ExpandRequest {
    ExpandRequest {
        volume_id: v.id.clone(),
        volume_path: v.staging.clone(),
        staging_path: Some(v.staging.clone()),
        required_bytes: bytes,
        keys,
    }
}

/// The mapping's device node now.
fn mapper_device(rig: &Rig) -> String {
    let m = rig.node.crypt().mapping(MAPPING).unwrap().unwrap();
    m.device.path.display().to_string()
}

#[tokio::test(start_paused = true)]
async fn an_empty_volume_is_encrypted_then_formatted_and_mounted_through_its_mapping() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node
        .stage(encrypted(&v, filesystem(None), KEY))
        .await
        .unwrap();
    // The disk holds a LUKS header labelled in use; the filesystem is in
    // the plaintext, made on the mapping, never on the disk.
    assert_eq!(rig.world.luks_label(&v.nqn).as_deref(), Some(LABEL_IN_USE));
    assert_eq!(
        rig.world.plaintext(&v.nqn),
        Some(Contents::Filesystem(FsType::Ext4.into(), GIB - LUKS_HEADER))
    );
    assert_eq!(
        rig.world.formatted(),
        [("/dev/dm-0".to_owned(), FsType::Ext4.into())]
    );
    assert_eq!(rig.world.mappings(), [MAPPING]);
    assert_eq!(rig.world.mounts_at(&v.staging), ["/dev/dm-0"]);
    let r = &rig.world.saved_records()[0];
    assert_eq!(r.mapping.as_deref(), Some(MAPPING));
    assert_eq!(r.device, Path::new("/dev/dm-0"));
    assert_eq!(r.connection.as_ref().unwrap()["encryption"], "luks2");

    // Again: the open mapping is kept, nothing is made anew.
    rig.node
        .stage(encrypted(&v, filesystem(None), KEY))
        .await
        .unwrap();
    assert_eq!(rig.world.formatted().len(), 1);
    assert_eq!(rig.world.mappings(), [MAPPING]);
    assert_eq!(rig.world.mounts_at(&v.staging), ["/dev/dm-0"]);

    // Unstaged and staged again: opened with the key, the data is there.
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    rig.assert_nothing_held();
    rig.node
        .stage(encrypted(&v, filesystem(None), KEY))
        .await
        .unwrap();
    assert_eq!(rig.world.formatted().len(), 1, "the filesystem was kept");
    assert_eq!(rig.world.mounts_at(&v.staging), [mapper_device(&rig)]);
}

#[tokio::test(start_paused = true)]
async fn an_encrypted_block_volume_publishes_its_mapping() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(encrypted(&v, block(), KEY)).await.unwrap();
    assert!(
        rig.world.formatted().is_empty(),
        "no filesystem on a block volume"
    );
    assert_eq!(rig.world.luks_label(&v.nqn).as_deref(), Some(LABEL_IN_USE));
    rig.node
        .publish(publish(&v, &v.target, block()))
        .await
        .unwrap();
    // The pod gets the mapping's device node, not the raw namespace.
    let mounts = rig.node.filesystems();
    let bound = node::Filesystems::mounts(mounts).unwrap();
    let bind = bound.iter().find(|m| m.mount_point == v.target).unwrap();
    assert_eq!(
        (bind.fs_type.as_str(), bind.root.to_str()),
        ("devtmpfs", Some("/dm-0"))
    );
    // While bound, the mapping cannot be closed: unstage fails and keeps
    // the connection; after the unpublish it succeeds.
    let e = rig.node.unstage(&v.id, &v.staging).await.unwrap_err();
    assert!(matches!(e, NodeError::Crypt(_)), "{e:?}");
    assert!(e.to_string().contains("in use"), "{e}");
    assert_eq!(rig.world.controllers(&v.nqn), 1, "the connection stays");
    rig.node.unpublish(&v.id, &v.target).await.unwrap();
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    rig.assert_nothing_held();
}

#[tokio::test(start_paused = true)]
async fn a_wrong_key_fails_clearly_and_changes_nothing() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node
        .stage(encrypted(&v, filesystem(None), KEY))
        .await
        .unwrap();
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    let before = rig.world.contents(&v.nqn);

    let wrong = "Tr0ub4dor&3";
    let e = rig
        .stage_fails_with(encrypted(&v, filesystem(None), wrong))
        .await;
    assert!(matches!(e, NodeError::WrongKey { .. }), "{}", kind(&e));
    let text = e.to_string();
    for says in [
        "`encryptionPassphrase` of the node-stage secret does not open volume pvc-1",
        "csi.storage.k8s.io/node-stage-secret-name",
        "The volume was not changed",
    ] {
        assert!(text.contains(says), "{text}");
    }
    assert!(!text.contains(wrong) && !text.contains(KEY), "{text}");
    assert_eq!(
        rig.world.contents(&v.nqn),
        before,
        "the volume is untouched"
    );
    assert!(rig.world.mappings().is_empty());
    assert!(rig.world.mount_points().is_empty());
    assert!(rig.world.saved_records().is_empty());

    // The right key opens it, data and all.
    rig.node
        .stage(encrypted(&v, filesystem(None), KEY))
        .await
        .unwrap();
    assert_eq!(rig.world.formatted().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_missing_key_names_the_secret_to_check_and_changes_nothing() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    let mut req = encrypted(&v, filesystem(None), KEY);
    req.keys = VolumeKeys::default();
    let e = rig.stage_fails_with(req).await;
    assert!(matches!(e, NodeError::MissingKey { .. }), "{}", kind(&e));
    let text = e.to_string();
    assert!(
        text.contains("NodeStageVolume carries no `encryptionPassphrase`")
            && text.contains("csi.storage.k8s.io/node-stage-secret-name"),
        "{text}"
    );
    assert_eq!(rig.world.contents(&v.nqn), Some(Contents::Empty));
}

#[tokio::test(start_paused = true)]
async fn an_encrypted_volume_is_never_mounted_or_formatted_in_the_clear() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(encrypted(&v, block(), KEY)).await.unwrap();
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    let before = rig.world.contents(&v.nqn);
    // Staged from a context without encryption=luks2.
    let e = rig.stage_fails(&v, filesystem(None)).await;
    assert!(
        matches!(e, NodeError::EncryptedWithoutParameter { .. }),
        "{}",
        kind(&e)
    );
    assert!(
        e.to_string()
            .contains("refusing to mount or format it in the clear"),
        "{e}"
    );
    assert_eq!(rig.world.contents(&v.nqn), before);
    assert!(rig.world.mount_points().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_volume_that_is_not_encrypted_is_refused_with_the_parameter() {
    for contents in [
        Contents::Filesystem(FsType::Xfs.into(), GIB),
        Contents::Other("data without a known signature".into()),
        Contents::ForeignFilesystem("btrfs".into()),
    ] {
        let rig = Rig::new();
        let v = rig.volume("pvc-1");
        rig.world.set_contents(&v.nqn, contents.clone());
        for capability in [filesystem(None), block()] {
            let e = rig.stage_fails_with(encrypted(&v, capability, KEY)).await;
            assert!(
                matches!(&e, NodeError::NotEncrypted { found, .. } if *found != Probe::Empty),
                "{}",
                kind(&e)
            );
            assert!(e.to_string().contains("not a LUKS header"), "{e}");
        }
        assert_eq!(rig.world.contents(&v.nqn), Some(contents), "untouched");
        assert!(rig.world.mappings().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn a_probe_error_never_leads_to_a_luks_format() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.world.fail("probe", 2);
    for _ in 0..2 {
        let e = rig
            .stage_fails_with(encrypted(&v, filesystem(None), KEY))
            .await;
        assert!(matches!(e, NodeError::Fs(_)), "{}", kind(&e));
        assert_eq!(rig.world.contents(&v.nqn), Some(Contents::Empty));
    }
    rig.node
        .stage(encrypted(&v, filesystem(None), KEY))
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_new_volume_whose_mapping_holds_an_unknown_signature_is_not_formatted() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node.stage(encrypted(&v, block(), KEY)).await.unwrap();
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    // A header still labelled new (never handed out), but its plaintext
    // holds a partition table: kept, not formatted over.
    rig.world.set_contents(
        &v.nqn,
        Contents::Luks {
            keys: vec![Passphrase::from_string(KEY.into())],
            label: LABEL_NEW.into(),
            plain: Box::new(Contents::Other("PTTYPE=gpt".into())),
        },
    );
    let e = rig
        .stage_fails_with(encrypted(&v, filesystem(None), KEY))
        .await;
    assert!(
        matches!(e, NodeError::RefusedToFormat { .. }),
        "{}",
        kind(&e)
    );
    assert_eq!(
        rig.world.plaintext(&v.nqn),
        Some(Contents::Other("PTTYPE=gpt".into()))
    );
    // Labelled in use, a mapping without a filesystem is judged with the
    // zero check, as a plain volume is: data, so refused.
    rig.world.set_contents(
        &v.nqn,
        Contents::Luks {
            keys: vec![Passphrase::from_string(KEY.into())],
            label: LABEL_IN_USE.into(),
            plain: Box::new(Contents::Noise),
        },
    );
    let e = rig
        .stage_fails_with(encrypted(&v, filesystem(None), KEY))
        .await;
    assert!(
        matches!(e, NodeError::RefusedToFormat { .. }),
        "{}",
        kind(&e)
    );
    assert!(rig.world.formatted().is_empty());
}

#[tokio::test(start_paused = true)]
async fn unstage_closes_the_mapping_before_the_disconnect_and_checks_both() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node
        .stage(encrypted(&v, filesystem(None), KEY))
        .await
        .unwrap();
    rig.world.crash_after(usize::MAX);
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    assert_eq!(
        rig.world.trace(),
        [
            "unmount",
            "luks-close",
            "disconnect",
            "unrecord-beside",
            "unrecord-index"
        ]
    );
    rig.assert_nothing_held();

    // A close that fails keeps everything but the unmount; the retry ends it.
    rig.node
        .stage(encrypted(&v, filesystem(None), KEY))
        .await
        .unwrap();
    rig.world.fail("luks-close", 1);
    assert!(rig.node.unstage(&v.id, &v.staging).await.is_err());
    assert_eq!(rig.world.mappings(), [MAPPING]);
    assert_eq!(rig.world.controllers(&v.nqn), 1);
    assert_eq!(rig.world.saved_records().len(), 2);
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    rig.assert_nothing_held();

    // A disconnect that claims success is checked, as for plain volumes.
    rig.node.stage(encrypted(&v, block(), KEY)).await.unwrap();
    rig.world.set_disconnect(Disconnect::Lies);
    let e = rig.node.unstage(&v.id, &v.staging).await.unwrap_err();
    assert!(
        matches!(e, NodeError::StillConnected { .. }),
        "{}",
        kind(&e)
    );
    rig.world.set_disconnect(Disconnect::Prompt);
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    rig.assert_nothing_held();
}

#[tokio::test(start_paused = true)]
async fn an_unrecorded_open_mapping_is_closed_by_unstage() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    // A stage stopped after its open, before anything else.
    let opened = ["connect", "luks-format", "luks-open"].len();
    rig.world.crash_after(opened);
    let crashed = rig.world.crashed();
    tokio::select! {
        r = rig.node.stage(encrypted(&v, filesystem(None), KEY)) => panic!("finished: {r:?}"),
        () = crashed => {}
    }
    rig.world.no_crash();
    assert_eq!(rig.world.mappings(), [MAPPING]);
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    rig.assert_nothing_held();
}

#[tokio::test(start_paused = true)]
async fn expansion_grows_the_disk_the_mapping_and_the_filesystem() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node
        .stage(encrypted(&v, filesystem(None), KEY))
        .await
        .unwrap();
    rig.world.grow_image(&v.nqn, 2 * GIB);
    // Without the node-expand secret: a clear error naming it.
    let e = rig
        .node
        .expand(expand(&v, 2 * GIB, VolumeKeys::default()))
        .await
        .unwrap_err();
    assert!(matches!(e, NodeError::MissingKey { .. }), "{}", kind(&e));
    assert!(
        e.to_string()
            .contains("csi.storage.k8s.io/node-expand-secret-name"),
        "{e}"
    );
    assert_eq!(rig.world.grown(), 0);
    // A wrong one: refused.
    let e = rig
        .node
        .expand(expand(&v, 2 * GIB, VolumeKeys::of("wrong")))
        .await
        .unwrap_err();
    assert!(matches!(e, NodeError::WrongKey { .. }), "{}", kind(&e));
    // With it: disk, mapping and filesystem grow.
    let size = rig
        .node
        .expand(expand(&v, 2 * GIB, VolumeKeys::of(KEY)))
        .await
        .unwrap();
    assert_eq!(size, 2 * GIB);
    let m = rig.node.crypt().mapping(MAPPING).unwrap().unwrap();
    assert_eq!(m.device.size_bytes, 2 * GIB - LUKS_HEADER);
    assert_eq!(
        rig.world.plaintext(&v.nqn),
        Some(Contents::Filesystem(
            FsType::Ext4.into(),
            2 * GIB - LUKS_HEADER
        ))
    );
    assert_eq!(rig.world.grown(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_filesystem_smaller_than_its_mapping_grows_at_stage() {
    // A disk grown while unstaged (a restore or clone to a larger size, or
    // an expansion whose NodeExpandVolume never came): the mapping opens at
    // the disk's whole size, and the stage grows the filesystem inside.
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    rig.node
        .stage(encrypted(&v, filesystem(None), KEY))
        .await
        .unwrap();
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    rig.world.grow_image(&v.nqn, 2 * GIB);
    rig.node
        .stage(encrypted(&v, filesystem(None), KEY))
        .await
        .unwrap();
    assert_eq!(
        rig.world.plaintext(&v.nqn),
        Some(Contents::Filesystem(
            FsType::Ext4.into(),
            2 * GIB - LUKS_HEADER
        ))
    );
    assert_eq!(rig.world.grown(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_changed_secret_with_the_previous_passphrase_rotates_the_key() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    let old = "the old passphrase";
    let new = "the new passphrase";
    rig.node
        .stage(encrypted(&v, filesystem(None), old))
        .await
        .unwrap();
    rig.node.unstage(&v.id, &v.staging).await.unwrap();

    // The Secret changed, without the previous passphrase: refused.
    let e = rig
        .stage_fails_with(encrypted(&v, filesystem(None), new))
        .await;
    assert!(matches!(e, NodeError::WrongKey { .. }), "{}", kind(&e));
    // With a previous passphrase that is wrong too: refused, and said so.
    let mut req = encrypted(&v, filesystem(None), new);
    req.keys.previous = Some(Passphrase::from_string("neither".into()));
    let e = rig.stage_fails_with(req).await;
    assert!(
        e.to_string()
            .contains("nor its `previousEncryptionPassphrase`"),
        "{e}"
    );
    assert_eq!(rig.world.luks_keys(&v.nqn), 1);
    // With the right previous one: the new passphrase is added, and opens.
    let mut req = encrypted(&v, filesystem(None), new);
    req.keys.previous = Some(Passphrase::from_string(old.into()));
    rig.node.stage(req).await.unwrap();
    assert_eq!(rig.world.luks_keys(&v.nqn), 2);
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    // From then on the new one alone does.
    rig.node
        .stage(encrypted(&v, filesystem(None), new))
        .await
        .unwrap();
    assert_eq!(rig.world.formatted().len(), 1, "the data was kept");
}

#[tokio::test(start_paused = true)]
async fn a_mapping_name_taken_on_another_disk_is_refused() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    let other = rig.volume("pvc-2");
    rig.node.stage(stage(&other, block())).await.unwrap();
    rig.world.open_directly(&other.nqn, MAPPING, true);
    let e = rig
        .stage_fails_with(encrypted(&v, filesystem(None), KEY))
        .await;
    assert!(
        matches!(e, NodeError::MappingOccupied { .. }),
        "{}",
        kind(&e)
    );
    assert_eq!(rig.world.mappings(), [MAPPING], "left alone");
}

#[tokio::test(start_paused = true)]
async fn a_device_of_the_mapping_s_name_that_is_not_luks2_is_never_closed() {
    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    let other = rig.volume("pvc-2");
    rig.node.stage(stage(&other, block())).await.unwrap();
    // Someone else's device-mapper device, named as the volume's mapping
    // would be, on a disk that is gone since.
    rig.world.open_directly(&other.nqn, MAPPING, false);
    rig.world.lose_connection(&other.nqn);
    let e = rig
        .stage_fails_with(encrypted(&v, filesystem(None), KEY))
        .await;
    assert!(
        matches!(e, NodeError::MappingOccupied { .. }),
        "{}",
        kind(&e)
    );
    assert!(e.to_string().contains("did not make for LUKS2"), "{e}");
    assert_eq!(rig.world.mappings(), [MAPPING], "left alone");
}

#[tokio::test(start_paused = true)]
async fn start_up_closes_only_the_driver_s_unused_mappings() {
    let mut rig = Rig::new();
    // An encrypted volume staged and mounted: kept.
    let staged = rig.volume("pvc-1");
    rig.node
        .stage(encrypted(&staged, filesystem(None), KEY))
        .await
        .unwrap();
    // A stage killed after its open: the mapping and its connection go.
    let killed = rig.volume("pvc-2");
    rig.world.crash_after(3);
    let crashed = rig.world.crashed();
    tokio::select! {
        r = rig.node.stage(encrypted(&killed, block(), KEY)) => panic!("finished: {r:?}"),
        () = crashed => {}
    }
    rig.world.no_crash();
    // Someone else's device-mapper device on a disk of ours: the connection
    // stays, and so does the device.
    let foreign = rig.volume("pvc-3");
    rig.world
        .connect_directly(&foreign.nqn, &crate::identity().nqn);
    rig.world.open_directly(&foreign.nqn, "vg0-lv0", false);
    // A mapping of ours whose disk is gone, named by no record: closed. And
    // a LUKS mapping of someone else's whose disk is gone: left.
    let dead = rig.volume("pvc-4");
    rig.world
        .connect_directly(&dead.nqn, &crate::identity().nqn);
    rig.world.open_directly(&dead.nqn, "rds-csi-pvc-4", true);
    let theirs = rig.volume("pvc-5");
    rig.world
        .connect_directly(&theirs.nqn, &crate::identity().nqn);
    rig.world.open_directly(&theirs.nqn, "cryptdata", true);
    rig.world.lose_connection(&dead.nqn);
    rig.world.lose_connection(&theirs.nqn);

    let report = rig.restart().await;
    let mut closed = report.closed_mappings.clone();
    closed.sort();
    assert_eq!(closed, ["rds-csi-pvc-2", "rds-csi-pvc-4"], "{report:?}");
    assert_eq!(
        report.cleaned,
        std::slice::from_ref(&killed.nqn),
        "{report:?}"
    );
    assert!(report.failed.contains(&foreign.nqn), "{report:?}");
    let mut left = rig.world.mappings();
    left.sort();
    assert_eq!(left, ["cryptdata", MAPPING, "vg0-lv0"]);
    assert_eq!(rig.world.controllers(&staged.nqn), 1);
    assert_eq!(rig.world.controllers(&foreign.nqn), 1);
    // The killed stage, repeated, completes from scratch.
    rig.node
        .stage(encrypted(&killed, block(), KEY))
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn start_up_keeps_a_mounted_mapping_without_a_record() {
    let mut rig = Rig::new();
    let v = rig.volume("pvc-1");
    let mounted = [
        "connect",
        "luks-format",
        "luks-open",
        "mkfs",
        "luks-label",
        "mkdir",
        "mount",
    ];
    rig.world.crash_after(mounted.len());
    let crashed = rig.world.crashed();
    tokio::select! {
        r = rig.node.stage(encrypted(&v, filesystem(None), KEY)) => panic!("finished: {r:?}"),
        () = crashed => {}
    }
    rig.world.no_crash();
    assert_eq!(rig.world.trace(), mounted);
    let report = rig.restart().await;
    assert!(
        report.cleaned.is_empty() && report.closed_mappings.is_empty(),
        "{report:?}"
    );
    assert_eq!(rig.world.mappings(), [MAPPING]);
    rig.node
        .stage(encrypted(&v, filesystem(None), KEY))
        .await
        .unwrap();
    assert_eq!(rig.world.mounts_at(&v.staging), [mapper_device(&rig)]);
    assert_eq!(rig.world.formatted().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_lost_connection_is_recovered_by_staging_or_publishing_again() {
    let rig = Rig::new();
    let v = rig.in_use_encrypted("pvc-1").await;
    rig.world.lose_connection(&v.nqn);
    let stats = rig.node.stats(&v.id, &v.target).unwrap();
    assert!(
        stats.message(&v.id).contains("sits on a disk that is gone"),
        "{}",
        stats.message(&v.id)
    );
    // The pod still holds the dead mapping: the stage closes nothing it
    // cannot, and says so.
    let e = rig
        .stage_fails_with(encrypted(&v, filesystem(None), KEY))
        .await;
    assert!(e.to_string().contains("in use"), "{e}");
    // A publish without the node-publish secret cannot open it again.
    rig.node.unpublish(&v.id, &v.target).await.unwrap();
    let e = rig
        .node
        .publish(publish(&v, &v.target, filesystem(None)))
        .await
        .unwrap_err();
    assert!(matches!(e, NodeError::MissingKey { .. }), "{}", kind(&e));
    assert!(e.to_string().contains("node-publish-secret-name"), "{e}");
    // With it, the volume is connected and opened again, its new mapping
    // mounted at the staging path, and published.
    let mut req = publish(&v, &v.target, filesystem(None));
    req.keys = VolumeKeys::of(KEY);
    rig.node.publish(req).await.unwrap();
    assert_eq!(rig.world.mounts_at(&v.staging), [mapper_device(&rig)]);
    assert_eq!(rig.world.mounts_at(&v.target), [mapper_device(&rig)]);
    let stats = rig.node.stats(&v.id, &v.target).unwrap();
    assert!(!stats.abnormal(), "{}", stats.message(&v.id));
    assert_eq!(rig.world.formatted().len(), 1, "the data was kept");
}

#[tokio::test(start_paused = true)]
async fn a_lost_connection_is_recovered_by_a_stage_once_no_pod_holds_it() {
    let rig = Rig::new();
    let v = rig.in_use_encrypted("pvc-1").await;
    rig.world.lose_connection(&v.nqn);
    rig.node.unpublish(&v.id, &v.target).await.unwrap();
    rig.node
        .stage(encrypted(&v, filesystem(None), KEY))
        .await
        .unwrap();
    assert_eq!(rig.world.mappings(), [MAPPING]);
    assert_eq!(rig.world.mounts_at(&v.staging), [mapper_device(&rig)]);
    let r = &rig.world.saved_records()[0];
    assert_eq!(r.device.display().to_string(), mapper_device(&rig));
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    rig.assert_nothing_held();
}

/// Everything the node says while it handles a key: what a subscriber at
/// TRACE level receives, the errors and the records.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn the_key_appears_in_no_log_error_or_record() {
    let captured = Captured::default();
    let writer = captured.clone();
    let capture = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish(),
    );
    // With one dispatcher registered, tracing asks only the default of the
    // thread that first reaches a log line whether it is wanted, and keeps
    // the answer: a test running beside this one, with none, would make it
    // "never" here too. With a second one it asks every registered
    // dispatcher, from any thread.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let _default = tracing::dispatcher::set_default(&capture);
    tracing::callsite::rebuild_interest_cache();

    let rig = Rig::new();
    let v = rig.volume("pvc-1");
    let mut said = Vec::new();
    let old = "0ld-s3cr3t-passphrase";
    rig.node
        .stage(encrypted(&v, filesystem(None), old))
        .await
        .unwrap();
    said.push(format!("{:?}", encrypted(&v, filesystem(None), old)));
    rig.node.unstage(&v.id, &v.staging).await.unwrap();
    for req in [encrypted(&v, filesystem(None), KEY), {
        let mut r = encrypted(&v, filesystem(None), KEY);
        r.keys.previous = Some(Passphrase::from_string("n0t-the-0ld-0ne".into()));
        r
    }] {
        let e = rig.stage_fails_with(req).await;
        said.push(e.to_string());
        said.push(format!("{e:?}"));
    }
    let mut req = encrypted(&v, filesystem(None), KEY);
    req.keys.previous = Some(Passphrase::from_string(old.into()));
    rig.node.stage(req).await.unwrap();
    rig.world.grow_image(&v.nqn, 2 * GIB);
    let e = rig
        .node
        .expand(expand(&v, 2 * GIB, VolumeKeys::of("wr0ng-f0r-expand")))
        .await
        .unwrap_err();
    said.push(format!("{e} {e:?}"));
    rig.node
        .expand(expand(&v, 2 * GIB, VolumeKeys::of(KEY)))
        .await
        .unwrap();
    for r in rig.world.saved_records() {
        said.push(serde_json::to_string(&r).unwrap());
    }
    said.push(String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned());
    let all = said.join("\n");
    assert!(
        all.contains("encrypted volume open"),
        "the log was captured: {all}"
    );
    for key in [KEY, old, "n0t-the-0ld-0ne", "wr0ng-f0r-expand"] {
        assert!(!all.contains(key), "{key:?} appears in:\n{all}");
    }
}
