//! Reading sysfs through `FakeSysfs` trees: several paths, several namespaces,
//! states, vanished controllers and the orphan rule.

use std::fs;
use std::os::unix::fs::symlink;

use nvme_host::testing::FakeController;
use nvme_host::{CtrlState, Host, NvmeError, Orphan, OrphanReason};

use crate::{FOREIGN, OURS, OURS_2, PREFIX, fake, live};

#[test]
fn two_paths_one_head_until_the_last_path_goes() {
    let (_d, sys) = fake(true);
    let a = live(&sys, OURS);
    let b = live(&sys, OURS);
    let head = sys.add_namespace(OURS, 1, 1 << 30).unwrap();
    let host = Host::new(sys.root());
    let subsystems = host.subsystems().unwrap();
    assert_eq!(subsystems.len(), 1);
    assert_eq!(subsystems[0].controllers, vec![a.clone(), b.clone()]);
    assert_eq!(host.block_device(OURS).unwrap().unwrap().name, head);
    assert!(
        sys.root().join("sys/block/nvme0c1n1").exists(),
        "hidden paths exist beside the head"
    );

    sys.remove_controller(&a).unwrap();
    assert_eq!(host.block_device(OURS).unwrap().unwrap().name, head);
    sys.remove_controller(&b).unwrap();
    assert_eq!(host.block_device(OURS).unwrap(), None);
    assert!(host.list_connected_subsystems().unwrap().is_empty());
}

#[test]
fn several_namespaces_choose_nsid_1() {
    for multipath in [true, false] {
        let (_d, sys) = fake(multipath);
        live(&sys, OURS);
        sys.add_namespace(OURS, 3, 4096).unwrap();
        let first = sys.add_namespace(OURS, 1, 8192).unwrap();
        sys.add_namespace(OURS, 2, 4096).unwrap();
        let device = Host::new(sys.root()).block_device(OURS).unwrap().unwrap();
        assert_eq!(device.name, first, "multipath {multipath}");
        assert_eq!(device.size_bytes, 8192);
    }
}

#[test]
fn numbers_are_not_names() {
    // Our volume lands on nvme1/nvme-subsys1 after a foreign one took 0.
    let (_d, sys) = fake(true);
    live(&sys, FOREIGN);
    sys.add_namespace(FOREIGN, 1, 4096).unwrap();
    live(&sys, OURS);
    let ours = sys.add_namespace(OURS, 1, 8192).unwrap();
    let host = Host::new(sys.root());
    assert_eq!(ours, "nvme1n2");
    assert_eq!(host.block_device(OURS).unwrap().unwrap().name, ours);
    assert_eq!(host.block_device(FOREIGN).unwrap().unwrap().name, "nvme0n1");
}

#[test]
fn the_best_state_wins() {
    let (_d, sys) = fake(true);
    let host = Host::new(sys.root());
    let a = sys
        .add_controller(&FakeController {
            state: "connecting".into(),
            ..FakeController::new(OURS)
        })
        .unwrap();
    assert_eq!(
        host.controller_state(OURS).unwrap(),
        Some(CtrlState::Connecting)
    );
    let b = sys
        .add_controller(&FakeController {
            state: "deleting (no IO)".into(),
            ..FakeController::new(OURS)
        })
        .unwrap();
    assert_eq!(
        host.controller_state(OURS).unwrap(),
        Some(CtrlState::Connecting)
    );
    sys.set_state(&b, "live").unwrap();
    assert_eq!(host.controller_state(OURS).unwrap(), Some(CtrlState::Live));
    sys.set_state(&b, "dead").unwrap();
    sys.set_state(&a, "resetting").unwrap();
    assert_eq!(
        host.controller_state(OURS).unwrap(),
        Some(CtrlState::Resetting)
    );
    assert_eq!(host.controller_state(FOREIGN).unwrap(), None);
}

#[test]
fn vanished_controllers_are_skipped() {
    let (_d, sys) = fake(true);
    live(&sys, OURS);
    // A class link whose controller folder is already gone, as mid-deletion.
    symlink(
        "../../devices/virtual/nvme-fabrics/ctl/nvme7",
        sys.root().join("sys/class/nvme/nvme7"),
    )
    .unwrap();
    // A subsystem folder without controllers is not connected.
    let lone = sys.root().join("sys/class/nvme-subsystem/nvme-subsys5");
    fs::create_dir_all(&lone).unwrap();
    fs::write(lone.join("subsysnqn"), format!("{OURS_2}\n")).unwrap();
    let host = Host::new(sys.root());
    let names: Vec<_> = host
        .controllers()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["nvme0"]);
    assert_eq!(host.list_connected_subsystems().unwrap(), [OURS]);
}

#[test]
fn orphans() {
    let (_d, sys) = fake(true);
    let host = Host::new(sys.root());
    live(&sys, FOREIGN);
    sys.add_namespace(FOREIGN, 1, 4096).unwrap();
    live(&sys, OURS);
    sys.add_namespace(OURS, 1, 4096).unwrap();
    let waiting = sys
        .add_controller(&FakeController {
            state: "connecting".into(),
            ..FakeController::new(OURS_2)
        })
        .unwrap();

    for referenced in [false, true] {
        assert_eq!(
            host.check_orphan(FOREIGN, PREFIX, referenced).unwrap(),
            Orphan::NotOurs
        );
    }
    assert_eq!(
        host.check_orphan(OURS, PREFIX, true).unwrap(),
        Orphan::InUse
    );
    assert_eq!(
        host.check_orphan(OURS, PREFIX, false).unwrap(),
        Orphan::Orphan(OrphanReason::NotReferenced)
    );
    assert_eq!(
        host.check_orphan(OURS_2, PREFIX, true).unwrap(),
        Orphan::Orphan(OrphanReason::NoBlockDevice(Some(CtrlState::Connecting)))
    );
    sys.remove_controller(&waiting).unwrap();
    assert_eq!(
        host.check_orphan(OURS_2, PREFIX, true).unwrap(),
        Orphan::Orphan(OrphanReason::NoBlockDevice(None))
    );
    let e = host.check_orphan(OURS, "", false).unwrap_err();
    assert!(
        matches!(
            e,
            NvmeError::Invalid {
                field: "our_prefix",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn a_referenced_volume_reconnecting_keeps_its_head_and_stays_in_use() {
    let (_d, sys) = fake(true);
    let c = live(&sys, OURS);
    sys.add_namespace(OURS, 1, 4096).unwrap();
    sys.set_state(&c, "connecting").unwrap();
    assert_eq!(
        Host::new(sys.root())
            .check_orphan(OURS, PREFIX, true)
            .unwrap(),
        Orphan::InUse
    );
}
