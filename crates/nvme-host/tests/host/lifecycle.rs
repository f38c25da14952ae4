//! Disconnect, rescan and the waits, with helper tasks playing the kernel,
//! on tokio's paused clock.

use std::time::Duration;

use nvme_host::sysfs::{NvmeName, parse_nvme_name};
use nvme_host::testing::{FakeController, FakeSysfs};
use nvme_host::{Host, NvmeError};
use tokio::time::Instant;

use crate::{FOREIGN, OURS, OURS_2, fake, generous, live};

/// A deadline that will pass during the test.
fn soon() -> Instant {
    Instant::now() + Duration::from_millis(400)
}

/// Plays the kernel: removes `ctrl` once `delete_controller` was written.
fn kernel_deletes(sys: &FakeSysfs, ctrl: &str) -> tokio::task::JoinHandle<()> {
    let (sys, ctrl) = (sys.clone(), ctrl.to_owned());
    tokio::spawn(async move {
        while sys.attr(&ctrl, "delete_controller").unwrap() != "1" {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sys.remove_controller(&ctrl).unwrap();
    })
}

#[test]
fn disconnect_writes_to_ours_only() {
    let (_d, sys) = fake(true);
    let root = live(&sys, FOREIGN);
    let a = live(&sys, OURS);
    let other = live(&sys, OURS_2);
    let b = live(&sys, OURS);
    let host = Host::new(sys.root());
    assert_eq!(host.disconnect(OURS).unwrap(), 2);
    assert_eq!(sys.attr(&a, "delete_controller").unwrap(), "1");
    assert_eq!(sys.attr(&b, "delete_controller").unwrap(), "1");
    assert_eq!(
        sys.attr(&root, "delete_controller").unwrap(),
        "",
        "the foreign NQN is untouched"
    );
    assert_eq!(
        sys.attr(&other, "delete_controller").unwrap(),
        "",
        "another volume is untouched"
    );
    assert_eq!(
        host.disconnect("nqn.2000-02.com.mikrotik:pvc-unknown")
            .unwrap(),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn disconnect_and_wait_fails_while_the_controller_stays() {
    let (_d, sys) = fake(true);
    let root = live(&sys, FOREIGN);
    let ours = live(&sys, OURS);
    let e = Host::new(sys.root())
        .disconnect_and_wait(OURS, soon())
        .await
        .unwrap_err();
    match &e {
        NvmeError::DisconnectTimedOut { nqn, remaining, .. } => {
            assert_eq!(nqn, OURS);
            assert_eq!(remaining, "nvme1 (live)");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.is_transient());
    assert_eq!(sys.attr(&ours, "delete_controller").unwrap(), "1");
    assert_eq!(sys.attr(&root, "delete_controller").unwrap(), "");
}

#[tokio::test(start_paused = true)]
async fn disconnect_and_wait_succeeds_once_the_controllers_are_gone() {
    let (_d, sys) = fake(true);
    let root = live(&sys, FOREIGN);
    let a = live(&sys, OURS);
    let b = live(&sys, OURS);
    sys.add_namespace(OURS, 1, 4096).unwrap();
    let kernel = [kernel_deletes(&sys, &a), kernel_deletes(&sys, &b)];
    let host = Host::new(sys.root());
    host.disconnect_and_wait(OURS, generous()).await.unwrap();
    for k in kernel {
        k.await.unwrap();
    }
    assert!(host.controllers_of(OURS).unwrap().is_empty());
    assert_eq!(host.block_device(OURS).unwrap(), None);
    assert_eq!(host.controllers_of(FOREIGN).unwrap().len(), 1);
    assert_eq!(sys.attr(&root, "delete_controller").unwrap(), "");
}

#[tokio::test(start_paused = true)]
async fn a_controller_already_deleting_is_waited_for_not_deleted_again() {
    let (_d, sys) = fake(true);
    let c = sys
        .add_controller(&FakeController {
            state: "deleting".into(),
            ..FakeController::new(OURS)
        })
        .unwrap();
    let (s2, c2) = (sys.clone(), c.clone());
    let kernel = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        s2.remove_controller(&c2).unwrap();
    });
    let probe = sys.clone();
    let host = Host::new(sys.root());
    let watcher = tokio::spawn(async move {
        // Record what was written before the controller went away.
        let mut seen = String::new();
        while let Ok(text) = probe.attr(&c, "delete_controller") {
            seen = text;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        seen
    });
    host.disconnect_and_wait(OURS, generous()).await.unwrap();
    kernel.await.unwrap();
    assert_eq!(watcher.await.unwrap(), "");
}

#[tokio::test(start_paused = true)]
async fn an_unconnected_nqn_is_disconnected_at_once() {
    let (_d, sys) = fake(true);
    live(&sys, FOREIGN);
    Host::new(sys.root())
        .disconnect_and_wait(OURS, soon())
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn wait_for_block_device_times_out_cleanly() {
    let (_d, sys) = fake(true);
    live(&sys, OURS);
    let host = Host::new(sys.root());
    let started = Instant::now();
    let e = host.wait_for_block_device(OURS, soon()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "it ends near its deadline"
    );
    match &e {
        NvmeError::NoBlockDevice { nqn, seen } => {
            assert_eq!(nqn, OURS);
            assert!(seen.contains("live and has no namespace"), "{seen}");
        }
        other => panic!("{other:?}"),
    }
    let e = host
        .wait_for_block_device(OURS_2, soon())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no controller is connected"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn wait_for_block_device_sees_a_late_namespace() {
    for multipath in [true, false] {
        let (_d, sys) = fake(multipath);
        live(&sys, OURS);
        let s2 = sys.clone();
        let kernel = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            s2.add_namespace(OURS, 1, 1 << 20).unwrap()
        });
        let device = Host::new(sys.root())
            .wait_for_block_device(OURS, generous())
            .await
            .unwrap();
        assert_eq!(device.name, kernel.await.unwrap());
        assert_eq!(device.size_bytes, 1 << 20);
        assert!(matches!(
            parse_nvme_name(&device.name),
            Some(NvmeName::Namespace(..))
        ));
    }
}

#[tokio::test(start_paused = true)]
async fn wait_for_block_device_needs_the_device_node() {
    let (_d, sys) = fake(true);
    live(&sys, OURS);
    let name = sys.add_namespace(OURS, 1, 4096).unwrap();
    std::fs::remove_file(sys.root().join("dev").join(&name)).unwrap();
    let e = Host::new(sys.root())
        .wait_for_block_device(OURS, soon())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("host's /dev"), "{e}");
}

#[test]
fn rescan_writes_to_live_controllers_only() {
    let (_d, sys) = fake(true);
    let a = live(&sys, OURS);
    let b = live(&sys, OURS);
    let root = live(&sys, FOREIGN);
    sys.set_state(&b, "connecting").unwrap();
    let host = Host::new(sys.root());
    host.rescan(OURS).unwrap();
    assert_eq!(sys.attr(&a, "rescan_controller").unwrap(), "1");
    assert_eq!(sys.attr(&b, "rescan_controller").unwrap(), "");
    assert_eq!(sys.attr(&root, "rescan_controller").unwrap(), "");

    sys.set_state(&a, "resetting").unwrap();
    sys.set_state(&b, "dead").unwrap();
    let e = host.rescan(OURS).unwrap_err();
    assert!(e.to_string().contains("best state: resetting"), "{e}");
    let e = host.rescan(OURS_2).unwrap_err();
    assert!(e.to_string().contains("not connected"), "{e}");
}

/// Two host identities on one kernel, each with a controller of `OURS`.
const HOST_A: &str = "nqn.2024-01.io.srvlab.csi.rds:node:a";
const HOST_B: &str = "nqn.2024-01.io.srvlab.csi.rds:node:b";

fn as_host(sys: &FakeSysfs, nqn: &str, hostnqn: &str) -> String {
    sys.add_controller(&FakeController {
        hostnqn: hostnqn.to_owned(),
        ..FakeController::new(nqn)
    })
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_disconnect_for_some_hosts_leaves_the_others() {
    let (_d, sys) = fake(true);
    let a = as_host(&sys, OURS, HOST_A);
    let b = as_host(&sys, OURS, HOST_B);
    let host = Host::new(sys.root());
    assert_eq!(
        host.connected_subsystems_of(&[HOST_B.to_owned()]).unwrap(),
        [OURS]
    );
    assert!(
        host.connected_subsystems_of(&["nqn.x:other".to_owned()])
            .unwrap()
            .is_empty()
    );
    let reaper = kernel_deletes(&sys, &a);
    host.disconnect_hosts_and_wait(OURS, &[HOST_A.to_owned()], generous())
        .await
        .unwrap();
    reaper.await.unwrap();
    assert_eq!(sys.attr(&b, "delete_controller").unwrap(), "", "B's stays");
    let left: Vec<String> = host
        .controllers_of(OURS)
        .unwrap()
        .into_iter()
        .map(|c| c.hostnqn)
        .collect();
    assert_eq!(left, [HOST_B]);
}

#[test]
fn a_controller_is_refused_while_its_last_word_in_the_log_is_a_refusal() {
    let (_d, sys) = fake(true);
    let a = as_host(&sys, OURS, HOST_A);
    let host = Host::new(sys.root());
    let refusal =
        format!("nvme {a}: Connect for subsystem {OURS} is not allowed, hostnqn: {HOST_A}");
    // Live: whatever the log says, it serves.
    sys.log_kernel(&refusal).unwrap();
    assert!(!host.refused(OURS, HOST_A).unwrap());
    // Reconnecting, refused each time: refused.
    sys.set_state(&a, "connecting").unwrap();
    assert!(host.refused(OURS, HOST_A).unwrap());
    assert!(!host.refused(OURS, HOST_B).unwrap(), "another host");
    // Let in again later: no longer refused.
    sys.log_kernel(&format!("nvme {a}: Successfully reconnected (3 attempt)"))
        .unwrap();
    assert!(!host.refused(OURS, HOST_A).unwrap());
    // A controller that is down for another reason (the RDS away) is not.
    let (_d2, other) = fake(true);
    let c = as_host(&other, OURS, HOST_A);
    other.set_state(&c, "connecting").unwrap();
    other
        .log_kernel(&format!("nvme {c}: failed to connect socket: -111"))
        .unwrap();
    assert!(!Host::new(other.root()).refused(OURS, HOST_A).unwrap());
    // No log to read: an error, not a verdict.
    let (_d3, silent) = fake(true);
    let c = as_host(&silent, OURS, HOST_A);
    silent.set_state(&c, "connecting").unwrap();
    assert!(matches!(
        Host::new(silent.root()).refused(OURS, HOST_A),
        Err(NvmeError::KernelLog { .. })
    ));
}
