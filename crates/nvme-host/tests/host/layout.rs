//! Trees written by hand, file by file, as Linux 6.1 shows them, with and
//! without native multipath; `FakeSysfs` is not used here, so these tests check
//! the library against the layout itself rather than against another model.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nvme_host::{Address, BlockDevice, Controller, CtrlState, Host, Subsystem};

use crate::{FOREIGN, OURS};

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// `/sys/class/nvme/<ctrl>` with its attributes.
fn controller(root: &Path, ctrl: &str, nqn: &str, state: &str) {
    let dir = format!("sys/class/nvme/{ctrl}");
    write(root, &format!("{dir}/state"), &format!("{state}\n"));
    write(root, &format!("{dir}/transport"), "tcp\n");
    write(root, &format!("{dir}/subsysnqn"), &format!("{nqn}\n"));
    write(
        root,
        &format!("{dir}/hostnqn"),
        "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-4d2b-a3f4-6e0f1b2c3d4e\n",
    );
    write(
        root,
        &format!("{dir}/address"),
        "traddr=10.0.0.5,trsvcid=4420,src_addr=10.0.0.9\n",
    );
    write(root, &format!("{dir}/delete_controller"), "");
    write(root, &format!("{dir}/rescan_controller"), "");
}

/// `/sys/class/nvme-subsystem/<subsys>` with its NQN and a link to each controller.
fn subsystem(root: &Path, subsys: &str, nqn: &str, ctrls: &[&str]) -> PathBuf {
    let dir = root.join("sys/class/nvme-subsystem").join(subsys);
    write(
        root,
        &format!("sys/class/nvme-subsystem/{subsys}/subsysnqn"),
        &format!("{nqn}\n"),
    );
    for ctrl in ctrls {
        symlink(root.join("sys/class/nvme").join(ctrl), dir.join(ctrl)).unwrap();
    }
    dir
}

/// A namespace's attributes in `/sys/block/<name>`.
fn block(root: &Path, name: &str, sectors: u64, nsid: u32) {
    write(
        root,
        &format!("sys/block/{name}/size"),
        &format!("{sectors}\n"),
    );
    write(
        root,
        &format!("sys/block/{name}/nsid"),
        &format!("{nsid}\n"),
    );
    // A disk sequence number unrelated to the name's digits (nvme0n1: 7).
    write(
        root,
        &format!("sys/block/{name}/diskseq"),
        &format!("{}\n", name.len()),
    );
}

/// nvme0 of OURS with head nvme0n1 (and hidden path nvme0c0n1); nvme1 of FOREIGN
/// with head nvme1n1.
fn multipath_tree(root: &Path) {
    write(root, "sys/module/nvme_core/parameters/multipath", "Y\n");
    controller(root, "nvme0", OURS, "live");
    controller(root, "nvme1", FOREIGN, "live");
    let s0 = subsystem(root, "nvme-subsys0", OURS, &["nvme0"]);
    let s1 = subsystem(root, "nvme-subsys1", FOREIGN, &["nvme1"]);
    fs::create_dir(s0.join("nvme0n1")).unwrap();
    fs::create_dir(s1.join("nvme1n1")).unwrap();
    fs::create_dir(root.join("sys/class/nvme/nvme0/nvme0c0n1")).unwrap();
    fs::create_dir(root.join("sys/class/nvme/nvme1/nvme1c1n1")).unwrap();
    block(root, "nvme0n1", 2_097_152, 1);
    block(root, "nvme0c0n1", 2_097_152, 1);
    block(root, "nvme1n1", 4096, 1);
    block(root, "nvme1c1n1", 4096, 1);
}

/// The same without multipath: nvme0n1 under nvme0, nvme1n1 under nvme1.
fn plain_tree(root: &Path) {
    write(root, "sys/module/nvme_core/parameters/multipath", "N\n");
    controller(root, "nvme0", FOREIGN, "live");
    controller(root, "nvme1", OURS, "connecting");
    subsystem(root, "nvme-subsys0", FOREIGN, &["nvme0"]);
    subsystem(root, "nvme-subsys1", OURS, &["nvme1"]);
    fs::create_dir(root.join("sys/class/nvme/nvme0/nvme0n1")).unwrap();
    fs::create_dir(root.join("sys/class/nvme/nvme1/nvme1n1")).unwrap();
    block(root, "nvme0n1", 4096, 1);
    block(root, "nvme1n1", 1_048_576, 1);
}

#[test]
fn multipath_resolves_the_head_never_the_hidden_path() {
    let dir = tempfile::tempdir().unwrap();
    multipath_tree(dir.path());
    let host = Host::new(dir.path());
    assert_eq!(host.native_multipath().unwrap(), Some(true));
    assert_eq!(
        host.block_device(OURS).unwrap(),
        Some(BlockDevice {
            name: "nvme0n1".into(),
            path: "/dev/nvme0n1".into(),
            size_bytes: 2_097_152 * 512,
            diskseq: Some(7),
        })
    );
    assert_eq!(host.block_device(FOREIGN).unwrap().unwrap().name, "nvme1n1");
    assert_eq!(
        host.block_device("nqn.2000-02.com.mikrotik:pvc-none")
            .unwrap(),
        None
    );
}

#[test]
fn multipath_controllers_and_subsystems() {
    let dir = tempfile::tempdir().unwrap();
    multipath_tree(dir.path());
    let host = Host::new(dir.path());
    let controllers = host.controllers().unwrap();
    assert_eq!(
        controllers[0],
        Controller {
            name: "nvme0".into(),
            state: CtrlState::Live,
            transport: "tcp".into(),
            subsysnqn: OURS.into(),
            hostnqn: "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-4d2b-a3f4-6e0f1b2c3d4e".into(),
            address: Address {
                traddr: "10.0.0.5".into(),
                trsvcid: Some(4420),
                src_addr: Some("10.0.0.9".into()),
            },
        }
    );
    assert_eq!(controllers.len(), 2);
    assert_eq!(
        host.subsystems().unwrap()[0],
        Subsystem {
            name: "nvme-subsys0".into(),
            nqn: OURS.into(),
            controllers: vec!["nvme0".into()],
            namespaces: vec!["nvme0n1".into()],
        }
    );
    assert_eq!(
        host.list_connected_subsystems().unwrap(),
        vec![OURS.to_owned(), FOREIGN.to_owned()]
    );
}

#[test]
fn without_multipath_the_namespace_is_under_the_controller() {
    let dir = tempfile::tempdir().unwrap();
    plain_tree(dir.path());
    let host = Host::new(dir.path());
    assert_eq!(host.native_multipath().unwrap(), Some(false));
    let device = host.block_device(OURS).unwrap().unwrap();
    assert_eq!(device.name, "nvme1n1");
    assert_eq!(
        device.path,
        Path::new("/dev/nvme1n1"),
        "the host's path, not under the root"
    );
    assert_eq!(device.size_bytes, 1_048_576 * 512);
    assert!(
        host.subsystems()
            .unwrap()
            .iter()
            .all(|s| s.namespaces.is_empty())
    );
    assert_eq!(
        host.controller_state(OURS).unwrap(),
        Some(CtrlState::Connecting)
    );
}

#[test]
fn a_hidden_path_alone_is_no_block_device() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    controller(root, "nvme0", OURS, "live");
    subsystem(root, "nvme-subsys0", OURS, &["nvme0"]);
    fs::create_dir(root.join("sys/class/nvme/nvme0/nvme0c0n1")).unwrap();
    block(root, "nvme0c0n1", 2048, 1);
    assert_eq!(Host::new(root).block_device(OURS).unwrap(), None);
}

#[test]
fn an_empty_host_has_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::new(dir.path());
    assert_eq!(host.native_multipath().unwrap(), None);
    assert!(host.controllers().unwrap().is_empty());
    assert!(host.subsystems().unwrap().is_empty());
    assert!(host.list_connected_subsystems().unwrap().is_empty());
    assert_eq!(host.block_device(OURS).unwrap(), None);
    assert_eq!(host.controller_state(OURS).unwrap(), None);
    assert_eq!(host.disconnect(OURS).unwrap(), 0);
}

#[test]
fn garbage_size_is_an_error_not_a_zero() {
    let dir = tempfile::tempdir().unwrap();
    plain_tree(dir.path());
    write(dir.path(), "sys/block/nvme1n1/size", "lots\n");
    let e = Host::new(dir.path()).block_device(OURS).unwrap_err();
    assert!(e.to_string().contains("lots"), "{e}");
}
