//! Unit tests of the pure sysfs rules: states, addresses, names and the choice
//! of a block device.

use super::*;

#[test]
fn states_read_as_the_kernel_writes_them() {
    let cases = [
        ("new\n", CtrlState::New),
        ("live\n", CtrlState::Live),
        ("resetting\n", CtrlState::Resetting),
        ("connecting\n", CtrlState::Connecting),
        ("deleting\n", CtrlState::Deleting),
        ("deleting (no IO)\n", CtrlState::DeletingNoIo),
        ("dead\n", CtrlState::Dead),
        ("frozen\n", CtrlState::Unknown("frozen".into())),
    ];
    for (text, state) in cases {
        assert_eq!(CtrlState::from_sysfs(text), state, "{text:?}");
        assert_eq!(
            format!("{state}\n"),
            text,
            "display gives the sysfs text back"
        );
    }
}

#[test]
fn state_ranks() {
    use CtrlState::*;
    assert!(Live.rank() > Connecting.rank());
    assert_eq!(Connecting.rank(), Resetting.rank());
    for other in [New, Deleting, DeletingNoIo, Dead, Unknown("x".into())] {
        assert!(Resetting.rank() > other.rank(), "{other}");
    }
    assert!(DeletingNoIo.is_deleting() && Deleting.is_deleting() && !Dead.is_deleting());
}

#[test]
fn addresses() {
    let check = |text: &str, traddr: &str, trsvcid: Option<u16>, src: Option<&str>| {
        let a = parse_address(text);
        assert_eq!(a.traddr, traddr, "{text:?}");
        assert_eq!(a.trsvcid, trsvcid, "{text:?}");
        assert_eq!(a.src_addr.as_deref(), src, "{text:?}");
    };
    check(
        "traddr=10.0.0.5,trsvcid=4420,src_addr=10.0.0.9\n",
        "10.0.0.5",
        Some(4420),
        Some("10.0.0.9"),
    );
    check(
        "traddr=10.0.0.5,trsvcid=4420\n",
        "10.0.0.5",
        Some(4420),
        None,
    );
    check(
        "traddr=fe80::1%eth0,trsvcid=4420,src_addr=fe80::2%eth0",
        "fe80::1%eth0",
        Some(4420),
        Some("fe80::2%eth0"),
    );
    check(
        "traddr=10.0.0.5,trsvcid=4420,host_traddr=10.0.0.9,host_iface=eth1",
        "10.0.0.5",
        Some(4420),
        None,
    );
    check("traddr=10.0.0.5,trsvcid=x", "10.0.0.5", None, None);
    check("0000:01:00.0\n", "0000:01:00.0", None, None);
    check("", "", None, None);
}

#[test]
fn names() {
    use NvmeName::*;
    assert_eq!(parse_nvme_name("nvme0"), Some(Controller(0)));
    assert_eq!(parse_nvme_name("nvme12"), Some(Controller(12)));
    assert_eq!(parse_nvme_name("nvme0n1"), Some(Namespace(0, 1)));
    assert_eq!(parse_nvme_name("nvme3c12n4"), Some(PathNamespace(3, 12, 4)));
    for other in [
        "nvme",
        "nvme-subsys0",
        "nvme0n",
        "nvme0n1p1",
        "nvme0c",
        "nvme0c1",
        "nvme0c1n",
        "nvmex",
        "state",
        "nvme0n1 ",
        "nvme99999999999",
    ] {
        assert_eq!(parse_nvme_name(other), None, "{other:?}");
    }
    assert_eq!(parse_subsystem_name("nvme-subsys7"), Some(7));
    assert_eq!(parse_subsystem_name("nvme-subsys"), None);
    assert_eq!(parse_subsystem_name("nvme7"), None);
}

#[test]
fn names_sort_by_number() {
    let mut names = vec!["nvme10", "nvme2", "nvme1n2", "nvme1n10", "nvme-subsys3"];
    names.sort_by_key(|n| name_order(n));
    assert_eq!(
        names,
        ["nvme1n2", "nvme1n10", "nvme2", "nvme-subsys3", "nvme10"]
    );
}

fn cand(name: &str, nsid: Option<u32>) -> Candidate {
    Candidate {
        name: name.into(),
        nsid,
    }
}

fn choose(candidates: &[Candidate]) -> Option<&str> {
    choose_namespace(candidates).map(|c| c.name.as_str())
}

#[test]
fn chooses_nsid_1_then_lowest() {
    assert_eq!(choose(&[]), None);
    assert_eq!(choose(&[cand("nvme0n1", Some(1))]), Some("nvme0n1"));
    // Head instance numbers are not namespace ids: nsid 1 wins by its id.
    assert_eq!(
        choose(&[cand("nvme0n1", Some(2)), cand("nvme0n2", Some(1))]),
        Some("nvme0n2")
    );
    assert_eq!(
        choose(&[cand("nvme0n3", Some(7)), cand("nvme0n2", Some(5))]),
        Some("nvme0n2")
    );
    assert_eq!(
        choose(&[cand("nvme0n3", None), cand("nvme0n2", Some(5))]),
        Some("nvme0n2")
    );
    assert_eq!(
        choose(&[cand("nvme0n10", None), cand("nvme0n9", None)]),
        Some("nvme0n9")
    );
}

#[test]
fn never_chooses_a_hidden_path() {
    assert_eq!(choose(&[cand("nvme0c0n1", Some(1))]), None);
    assert_eq!(
        choose(&[cand("nvme0c0n1", Some(1)), cand("nvme0n1", Some(1))]),
        Some("nvme0n1")
    );
    assert_eq!(
        choose(&[cand("nvme0c0n1", Some(1)), cand("nvme0n2", Some(2))]),
        Some("nvme0n2")
    );
}

#[test]
fn orphan_reasons_read_well() {
    assert_eq!(
        OrphanReason::NotReferenced.to_string(),
        "no staged volume refers to it"
    );
    assert!(
        OrphanReason::NoBlockDevice(Some(CtrlState::Connecting))
            .to_string()
            .contains("connecting")
    );
}
