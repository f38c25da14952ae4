//! Unit tests of the option string: its shape, its limits, and the refusal of
//! anything that could inject an option.

use proptest::prelude::*;

use super::*;

const NQN: &str = "nqn.2000-02.com.mikrotik:pvc-0e0f6c1e-2a48-4a7b-9d2c-3f4f5e6a7b8c";
const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:6a1b2c3d-0000-4000-8000-0123456789ab";
const HOSTID: &str = "6a1b2c3d-0000-4000-8000-0123456789ab";

fn cfg() -> ConnectionConfig {
    let host = HostIdentity {
        nqn: HOSTNQN.into(),
        id: HOSTID.into(),
    };
    ConnectionConfig::new("10.0.0.5", 4420, NQN, host)
}

/// Checks that `change` makes the option string fail, naming `field`.
fn refused(field: &str, change: impl FnOnce(&mut ConnectionConfig)) {
    let mut c = cfg();
    change(&mut c);
    match c.option_string() {
        Err(NvmeError::Invalid { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected {field} to be refused, got {other:?}"),
    }
}

#[test]
fn minimal_string() {
    assert_eq!(
        cfg().option_string().unwrap(),
        format!(
            "transport=tcp,traddr=10.0.0.5,trsvcid=4420,nqn={NQN},hostnqn={HOSTNQN},hostid={HOSTID}"
        )
    );
}

#[test]
fn full_string_in_kernel_order() {
    let c = ConnectionConfig {
        ctrl_loss_tmo: Some(-1),
        reconnect_delay: Some(5),
        keep_alive_tmo: Some(0),
        fast_io_fail_tmo: Some(30),
        nr_io_queues: Some(4),
        ..cfg()
    };
    let s = c.option_string().unwrap();
    assert!(
        s.ends_with(&format!(
            "hostid={HOSTID},ctrl_loss_tmo=-1,reconnect_delay=5,keep_alive_tmo=0,fast_io_fail_tmo=30,nr_io_queues=4"
        )),
        "{s}"
    );
}

#[test]
fn ipv6_addresses() {
    for addr in ["fd00::5", "::1", "fe80::1%eth0", "fe80::1%2"] {
        let c = ConnectionConfig {
            traddr: addr.into(),
            ..cfg()
        };
        assert!(
            c.option_string()
                .unwrap()
                .contains(&format!("traddr={addr},")),
            "{addr}"
        );
    }
    assert_eq!(
        ConnectionConfig {
            traddr: "fd00::5".into(),
            ..cfg()
        }
        .target(),
        format!("{NQN} at [fd00::5]:4420")
    );
}

#[test]
fn injection_attempts_are_refused() {
    refused("nqn", |c| c.nqn = format!("{NQN},ctrl_loss_tmo=-1"));
    refused("nqn", |c| c.nqn = format!("{NQN}\nduplicate_connect"));
    refused("nqn", |c| c.nqn = "nqn.x=y".into());
    refused("nqn", |c| c.nqn = "nqn.x y".into());
    refused("nqn", |c| c.nqn = "nqn.x\0".into());
    refused("nqn", |c| c.nqn = "nqn.x\u{85}".into());
    refused("hostnqn", |c| {
        c.host.nqn = format!("{HOSTNQN},hostid={HOSTID}")
    });
    refused("hostid", |c| c.host.id = format!("{HOSTID},x"));
    refused("hostid", |c| c.host.id = "not-a-uuid".into());
    refused("traddr", |c| c.traddr = "10.0.0.5,trsvcid=1".into());
    refused("traddr", |c| c.traddr = "10.0.0.5\n".into());
    refused("traddr", |c| c.traddr = "fe80::1%eth0,x".into());
    refused("traddr", |c| c.traddr = "fe80::1%".into());
}

#[test]
fn limits_and_values() {
    refused("nqn", |c| c.nqn = String::new());
    refused("nqn", |c| {
        c.nqn = format!("nqn.{}", "a".repeat(MAX_NQN_LEN - 3))
    });
    let mut c = cfg();
    c.nqn = format!("nqn.{}", "a".repeat(MAX_NQN_LEN - 4));
    assert_eq!(c.nqn.len(), MAX_NQN_LEN);
    assert!(
        c.option_string().is_ok(),
        "exactly {MAX_NQN_LEN} bytes is fine"
    );
    refused("traddr", |c| c.traddr = String::new());
    refused("traddr", |c| c.traddr = "rds.example.com".into());
    refused("traddr", |c| c.traddr = "[fd00::5]".into());
    refused("traddr", |c| c.traddr = "10.0.0.256".into());
    refused("trsvcid", |c| c.trsvcid = 0);
    refused("ctrl_loss_tmo", |c| c.ctrl_loss_tmo = Some(-2));
    refused("reconnect_delay", |c| c.reconnect_delay = Some(0));
    refused("nr_io_queues", |c| c.nr_io_queues = Some(0));
    refused("keep_alive_tmo", |c| c.keep_alive_tmo = Some(u32::MAX));
    refused("fast_io_fail_tmo", |c| c.fast_io_fail_tmo = Some(1 << 31));
}

#[test]
fn host_names_are_told_apart_from_junk() {
    for ok in ["rds", "rds.example.com", "rds-1.lan.", "10-0-0-5.nip.io"] {
        assert!(is_host_name(ok), "{ok}");
    }
    for bad in [
        "",
        "-rds",
        "rds-",
        "a..b",
        "rds_1",
        "rds.example.com,x",
        &"a".repeat(64),
    ] {
        assert!(!is_host_name(bad), "{bad}");
    }
    let e = check_ip_traddr("rds.example.com").unwrap_err();
    assert!(e.to_string().contains("resolve"), "{e}");
}

#[test]
fn parse_splits_like_the_kernel() {
    assert_eq!(
        parse_option_string("transport=tcp,,nqn=a=b\nhostid=x,duplicate_connect"),
        vec![
            ("transport".into(), "tcp".into()),
            ("nqn".into(), "a=b".into()),
            ("hostid".into(), "x".into()),
            ("duplicate_connect".into(), String::new()),
        ]
    );
}

/// Characters any option value may hold: NQN punctuation and letters.
fn value_strategy() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9.:_-]{1,60}"
}

/// A string holding at least one character that must be refused.
fn poisoned_strategy() -> impl Strategy<Value = String> {
    let bad = prop_oneof![
        Just(','),
        Just('='),
        Just(' '),
        Just('\t'),
        Just('\n'),
        Just('\r'),
        Just('\0'),
        Just('\u{7f}'),
        Just('\u{85}'),
        Just('\u{a0}'),
        Just('\u{2028}'),
        Just('\u{3000}'),
    ];
    (value_strategy(), bad, value_strategy(), any::<bool>()).prop_map(|(a, c, b, at_end)| {
        if at_end {
            format!("{a}{b}{c}")
        } else {
            format!("{a}{c}{b}")
        }
    })
}

proptest! {
    #[test]
    fn poisoned_values_are_refused(bad in poisoned_strategy(), field in 0..4usize) {
        let mut c = cfg();
        match field {
            0 => c.nqn = bad,
            1 => c.host.nqn = bad,
            2 => c.host.id = bad,
            _ => c.traddr = bad,
        }
        prop_assert!(c.option_string().is_err());
    }

    #[test]
    fn valid_values_round_trip(
        nqn in value_strategy(),
        hostnqn in value_strategy(),
        a in any::<[u8; 4]>(),
        port in 1u16..,
        tmo in proptest::option::of(-1i32..100_000),
        delay in proptest::option::of(1u32..100_000),
        queues in proptest::option::of(1u32..1024),
    ) {
        let c = ConnectionConfig {
            traddr: std::net::Ipv4Addr::from(a).to_string(),
            trsvcid: port,
            nqn: nqn.clone(),
            host: HostIdentity { nqn: hostnqn.clone(), id: HOSTID.into() },
            ctrl_loss_tmo: tmo,
            reconnect_delay: delay,
            nr_io_queues: queues,
            ..cfg()
        };
        let s = c.option_string().unwrap();
        let pairs: Vec<(String, String)> = s
            .split(',')
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect();
        let mut want = vec![
            ("transport".to_owned(), "tcp".to_owned()),
            ("traddr".to_owned(), c.traddr.clone()),
            ("trsvcid".to_owned(), port.to_string()),
            ("nqn".to_owned(), nqn),
            ("hostnqn".to_owned(), hostnqn),
            ("hostid".to_owned(), HOSTID.to_owned()),
        ];
        want.extend(tmo.map(|v| ("ctrl_loss_tmo".to_owned(), v.to_string())));
        want.extend(delay.map(|v| ("reconnect_delay".to_owned(), v.to_string())));
        want.extend(queues.map(|v| ("nr_io_queues".to_owned(), v.to_string())));
        prop_assert_eq!(&pairs, &want);
        prop_assert_eq!(parse_option_string(&s), want);
    }
}
