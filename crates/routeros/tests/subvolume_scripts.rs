//! Every subvolume script parses in the simulator's independent parser and
//! runs to the answer it should give on a pool without btrfs, without root.
//! What the scripts do on a real btrfs is tested in rds-client's
//! `tests/btrfs.rs` (root).
#![allow(clippy::unwrap_used)] // a test stops at the first surprise

use rds_sim::{Engine, ExecOptions, SimConfig};
use routeros::subvolume::scripts::{self, NewVolume, SnapshotFilter};
use routeros::subvolume::{ScriptFailure, SnapshotId};
use routeros::{Comment, Nqn, OwnerTest, RdsPath, Script, Slot};

fn volume(name: &str) -> NewVolume {
    NewVolume::new(
        Slot::new(name).unwrap(),
        &RdsPath::new("/raid10/volumes").unwrap(),
        1 << 20,
        4420,
        Nqn::new(&format!("nqn.2000-02.com.mikrotik:{name}")).unwrap(),
        Comment::new(&format!("rds-csi:{name}")).unwrap(),
    )
    .unwrap()
}

fn run(engine: &Engine, script: Script) -> String {
    let text = script.into_text();
    let out = engine.execute(&text, &ExecOptions::default()).output;
    for refusal in [
        "syntax error",
        "bad command name",
        "expected end of command",
    ] {
        assert!(!out.contains(refusal), "{text}\n{out}");
    }
    out
}

#[test]
fn every_script_parses_and_answers_on_a_pool_without_btrfs() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(SimConfig::single_pool(dir.path(), "raid10", 1 << 30)).unwrap();
    let id = SnapshotId::for_name("snapshot-1");
    let v = volume("pvc-1");

    // Not btrfs: the flat image, as before snapshots.
    let out = run(&engine, scripts::create_volume(&v));
    assert!(out.contains("file-path=/raid10/volumes/pvc-1.img"), "{out}");
    assert!(dir.path().join("raid10/volumes/pvc-1.img").is_file());

    let out = run(
        &engine,
        scripts::create_snapshot(&id, v.subvolume()).unwrap(),
    );
    assert!(out.contains(ScriptFailure::NotInSubvolume.text()), "{out}");
    let out = run(
        &engine,
        scripts::restore_snapshot(&volume("pvc-2"), &id, 1 << 20),
    );
    assert!(out.contains(ScriptFailure::NotBtrfs.text()), "{out}");
    let out = run(
        &engine,
        scripts::clone_volume(&volume("pvc-3"), v.subvolume(), 1 << 20),
    );
    assert!(out.contains(ScriptFailure::NotBtrfs.text()), "{out}");
    for script in [
        scripts::get_snapshot(&id),
        scripts::list_snapshots(&SnapshotFilter::All),
        scripts::list_snapshots(&SnapshotFilter::Source(Slot::new("pvc-1").unwrap())),
    ] {
        let out = run(&engine, script);
        assert_eq!(out.lines().skip(1).count(), 0, "{out}");
    }
    assert_eq!(run(&engine, scripts::delete_snapshot(&id)), "");
    assert_eq!(
        run(
            &engine,
            scripts::delete_volume(
                v.slot(),
                &[OwnerTest::CommentIs(Comment::new("rds-csi:pvc-1").unwrap())],
                true,
            )
        ),
        ""
    );
    assert!(engine.disks().is_empty());
    assert!(!dir.path().join("raid10/volumes/pvc-1.img").exists());
}
