//! Connecting through a scripted fabrics device: the reply, EALREADY, and which
//! errnos are retried. The retries' backoff and deadlines run on tokio's
//! paused clock: no test waits for real time.

use std::sync::Arc;
use std::time::Duration;

use nvme_host::options::parse_option_string;
use nvme_host::testing::{FakeFabrics, Latch};
use nvme_host::{Connected, ConnectionConfig, GaveUp, Host, HostIdentity, NvmeError, RetryPolicy};
use rustix::io::Errno;
use tokio::time::Instant;

use crate::{OURS, generous};

fn cfg() -> ConnectionConfig {
    ConnectionConfig {
        traddr: "10.0.0.5".into(),
        trsvcid: 4420,
        nqn: OURS.into(),
        host: HostIdentity {
            nqn: "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-4d2b-a3f4-6e0f1b2c3d4e".into(),
            id: "1b4e28ba-2fa1-4d2b-a3f4-6e0f1b2c3d4e".into(),
        },
        ctrl_loss_tmo: Some(1980),
        reconnect_delay: Some(5),
        keep_alive_tmo: None,
        fast_io_fail_tmo: None,
        nr_io_queues: None,
    }
}

/// A host whose fabrics device plays `fabrics`; the root is never read here.
fn host(fabrics: FakeFabrics) -> (Host, Arc<FakeFabrics>) {
    let fabrics = Arc::new(fabrics);
    (
        Host::with_fabrics("/nonexistent-root", fabrics.clone()),
        fabrics,
    )
}

/// Quick retries, so the tests spend their time on attempts, not sleeps.
fn quick() -> RetryPolicy {
    RetryPolicy {
        initial: Duration::from_millis(2),
        max: Duration::from_millis(20),
    }
}

fn errno(e: Errno) -> i32 {
    e.raw_os_error()
}

#[test]
fn connect_writes_the_option_string_and_reads_the_reply() {
    let (host, fabrics) = host(FakeFabrics::new().reply("instance=4,cntlid=2\n"));
    assert_eq!(
        host.connect(&cfg()).unwrap(),
        Connected::New {
            instance: 4,
            cntlid: 2
        }
    );
    assert_eq!(fabrics.calls(), vec![cfg().option_string().unwrap()]);
}

#[test]
fn ealready_means_already_connected() {
    let (host, _) = host(FakeFabrics::new().errno(errno(Errno::ALREADY)));
    assert_eq!(host.connect(&cfg()).unwrap(), Connected::Already);
}

#[test]
fn a_strange_reply_is_an_error() {
    let (host, _) = host(FakeFabrics::new().reply("transport=tcp,traddr=%s\n"));
    let e = host.connect(&cfg()).unwrap_err();
    assert!(matches!(e, NvmeError::BadReply { .. }), "{e}");
}

#[test]
fn an_invalid_config_never_reaches_the_kernel() {
    let (host, fabrics) = host(FakeFabrics::new().reply("instance=0,cntlid=1"));
    let bad = ConnectionConfig {
        nqn: format!("{OURS},duplicate_connect"),
        ..cfg()
    };
    assert!(matches!(
        host.connect(&bad),
        Err(NvmeError::Invalid { field: "nqn", .. })
    ));
    assert!(fabrics.calls().is_empty());
}

#[test]
fn a_host_name_is_resolved_before_writing() {
    let (host, fabrics) = host(FakeFabrics::new().reply("instance=0,cntlid=1"));
    let named = ConnectionConfig {
        traddr: "localhost".into(),
        ..cfg()
    };
    host.connect(&named).unwrap();
    let calls = fabrics.calls();
    let options = parse_option_string(&calls[0]);
    let traddr = &options.iter().find(|(k, _)| k == "traddr").unwrap().1;
    assert!(traddr == "127.0.0.1" || traddr == "::1", "{traddr}");
}

#[test]
fn without_the_device_the_error_says_to_load_the_module() {
    let dir = tempfile::tempdir().unwrap();
    let e = Host::new(dir.path()).connect(&cfg()).unwrap_err();
    assert_eq!(e.errno(), Some(errno(Errno::NOENT)));
    assert!(!e.is_transient());
    assert!(e.to_string().contains("modprobe nvme-tcp"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn transient_errnos_are_retried() {
    let script = [
        Errno::CONNREFUSED,
        Errno::TIMEDOUT,
        Errno::HOSTUNREACH,
        Errno::IO,
        Errno::INTR,
        Errno::AGAIN,
    ]
    .into_iter()
    .fold(FakeFabrics::new(), |f, e| f.errno(errno(e)))
    .reply("instance=1,cntlid=1\n");
    let (host, fabrics) = host(script);
    let retried = std::sync::Mutex::new(Vec::new());
    let connected = host
        .connect_with_retry_observed(&cfg(), generous(), quick(), &|e| {
            retried.lock().unwrap().push(e.errno())
        })
        .await
        .unwrap();
    assert_eq!(
        connected,
        Connected::New {
            instance: 1,
            cntlid: 1
        }
    );
    assert_eq!(fabrics.calls().len(), 7);
    // Each of the six transient errors was reported once, in order.
    let retried = retried.into_inner().unwrap();
    assert_eq!(retried.len(), 6, "{retried:?}");
    assert_eq!(retried[0], Some(errno(Errno::CONNREFUSED)));
}

#[tokio::test(start_paused = true)]
async fn ealready_after_a_retry_is_success() {
    let script = FakeFabrics::new()
        .errno(errno(Errno::CONNRESET))
        .errno(errno(Errno::ALREADY));
    let (host, _) = host(script);
    assert_eq!(
        host.connect_with_retry(&cfg(), generous(), quick())
            .await
            .unwrap(),
        Connected::Already
    );
}

#[tokio::test(start_paused = true)]
async fn permanent_errnos_stop_at_once() {
    for permanent in [
        Errno::INVAL,
        Errno::PERM,
        Errno::ACCESS,
        Errno::NODEV,
        Errno::NOENT,
        Errno::PROTO,
    ] {
        let script = FakeFabrics::new()
            .errno(errno(Errno::CONNREFUSED))
            .errno(errno(permanent))
            .reply("instance=1,cntlid=1\n");
        let (host, fabrics) = host(script);
        let e = host
            .connect_with_retry(&cfg(), generous(), quick())
            .await
            .unwrap_err();
        match &e {
            NvmeError::ConnectGaveUp {
                attempts,
                why,
                last_errno,
                ..
            } => {
                assert_eq!(
                    (*attempts, *why, *last_errno),
                    (2, GaveUp::Permanent, Some(errno(permanent)))
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(!e.is_transient());
        assert!(e.to_string().contains("2 attempt(s)"), "{e}");
        assert_eq!(fabrics.calls().len(), 2, "{permanent:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn retries_end_at_the_deadline() {
    let script = (0..10_000).fold(FakeFabrics::new(), |f, _| {
        f.errno(errno(Errno::CONNREFUSED))
    });
    let (host, fabrics) = host(script);
    let deadline = Instant::now() + Duration::from_millis(300);
    let policy = RetryPolicy {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(40),
    };
    let e = host
        .connect_with_retry(&cfg(), deadline, policy)
        .await
        .unwrap_err();
    let attempts = fabrics.calls().len() as u32;
    match &e {
        NvmeError::ConnectGaveUp {
            attempts: a,
            why,
            last_errno,
            ..
        } => {
            assert_eq!(*a, attempts);
            assert_eq!(*why, GaveUp::Deadline);
            assert_eq!(*last_errno, Some(errno(Errno::CONNREFUSED)));
        }
        other => panic!("{other:?}"),
    }
    assert!((1..10_000).contains(&attempts), "{attempts}");
    assert!(e.is_transient());
    let text = e.to_string();
    assert!(
        text.contains(&format!("{attempts} attempt(s)")) && text.contains("errno 111"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_attempt_running_into_the_deadline_is_reported_as_such() {
    // The kernel holds the write (a slow TCP handshake) past the deadline.
    let kernel = Latch::new();
    let script = FakeFabrics::new().held_errno(&kernel, errno(Errno::TIMEDOUT));
    let (host, _) = host(script);
    let deadline = Instant::now() + Duration::from_millis(100);
    // A write in progress keeps tokio from moving its paused clock on by
    // itself; the test moves it past the deadline.
    let config = cfg();
    let (result, ()) = tokio::join!(
        host.connect_with_retry(&config, deadline, quick()),
        tokio::time::advance(Duration::from_millis(200)),
    );
    kernel.open();
    let e = result.unwrap_err();
    assert!(
        matches!(
            e,
            NvmeError::ConnectGaveUp {
                attempts: 1,
                why: GaveUp::AttemptOverran,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_past_deadline_makes_no_attempt() {
    let (host, fabrics) = host(FakeFabrics::new().reply("instance=1,cntlid=1\n"));
    let e = host
        .connect_with_retry(&cfg(), Instant::now(), quick())
        .await
        .unwrap_err();
    assert!(
        matches!(e, NvmeError::ConnectGaveUp { attempts: 0, .. }),
        "{e}"
    );
    assert!(fabrics.calls().is_empty());
}
