//! The HTTP endpoint, scraped over real HTTP: liveness, readiness, and the
//! metrics' exact values after known calls.

use csi_proto::v1::{DeleteVolumeRequest, ProbeRequest};
use tonic::Code;

use crate::harness::{GIB, Plugin, eventually, metric_in};
use crate::requests::{create, pv_name};

#[tokio::test]
async fn metrics_health_and_readiness_are_served_over_http() {
    let plugin = Plugin::start().await;
    let (code, body) = plugin.http_get("/healthz").await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    eventually("/readyz says ready once the RDS answers", || async {
        (plugin.http_get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    let (code, _) = plugin.http_get("/nothing-here").await;
    assert_eq!(code, 404);

    let mut c = plugin.controller().await;
    for n in 1..=3 {
        c.create_volume(create(&pv_name(n), GIB)).await.unwrap();
    }
    let status = c
        .delete_volume(DeleteVolumeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    // A cut after the disk was added: the command is repeated on a new
    // connection (one reconnect), and the call succeeds.
    plugin.sim.engine.faults().drop_after("/disk add");
    c.create_volume(create(&pv_name(4), GIB)).await.unwrap();

    let (code, scrape) = plugin.http_get("/metrics").await;
    assert_eq!(code, 200, "{scrape}");
    for (series, value) in [
        (r#"rds_csi_rpc_total{method="CreateVolume",code="OK"}"#, 4.0),
        (
            r#"rds_csi_rpc_duration_seconds_count{method="CreateVolume",code="OK"}"#,
            4.0,
        ),
        (
            r#"rds_csi_rpc_total{method="DeleteVolume",code="INVALID_ARGUMENT"}"#,
            1.0,
        ),
        (
            r#"rds_csi_routeros_commands_total{operation="create",outcome="ok"}"#,
            4.0,
        ),
        (
            r#"rds_csi_routeros_commands_total{operation="create",outcome="error"}"#,
            1.0,
        ),
        ("rds_csi_ssh_reconnects_total", 1.0),
        ("rds_csi_ssh_connect_failures_total", 0.0),
        ("rds_csi_rds_up", 1.0),
    ] {
        assert_eq!(metric_in(&scrape, series), value, "{series} in:\n{scrape}");
    }
    assert!(
        metric_in(
            &scrape,
            r#"rds_csi_routeros_commands_total{operation="version",outcome="ok"}"#
        ) >= 1.0,
        "the monitor's checks are commands too:\n{scrape}"
    );
    assert!(scrape.ends_with("# EOF\n"), "{scrape}");

    // The RDS goes away: readiness and the gauge follow, calls fail
    // UNAVAILABLE and are counted so.
    let faults = plugin.sim.engine.faults();
    faults.set_refuse_connections(true);
    faults.drop_before("/system resource print");
    let body = eventually("/readyz says not ready", || async {
        let (code, body) = plugin.http_get("/readyz").await;
        (code == 503).then_some(body)
    })
    .await;
    assert!(body.contains("rds: the RDS at 127.0.0.1:"), "{body}");
    assert_eq!(plugin.metric("rds_csi_rds_up").await, 0.0);
    let status = c.create_volume(create(&pv_name(5), GIB)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    let status = plugin
        .identity()
        .await
        .probe(ProbeRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let scrape = plugin.http_get("/metrics").await.1;
    for (series, value) in [
        (
            r#"rds_csi_rpc_total{method="CreateVolume",code="UNAVAILABLE"}"#,
            1.0,
        ),
        (
            r#"rds_csi_rpc_total{method="Probe",code="FAILED_PRECONDITION"}"#,
            1.0,
        ),
        (r#"rds_csi_rpc_total{method="CreateVolume",code="OK"}"#, 4.0),
    ] {
        assert_eq!(metric_in(&scrape, series), value, "{series} in:\n{scrape}");
    }
    assert!(metric_in(&scrape, "rds_csi_ssh_connect_failures_total") >= 1.0);

    // Back.
    faults.set_refuse_connections(false);
    eventually("/readyz says ready again", || async {
        (plugin.http_get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    assert_eq!(plugin.metric("rds_csi_rds_up").await, 1.0);
    assert_eq!(plugin.metric("rds_csi_ssh_reconnects_total").await, 2.0);
}

/// The controller shows each pool's size and free space, and follows what
/// volumes take from it (the check interval is 1 s here).
#[tokio::test]
async fn pool_size_and_free_space_are_gauges() {
    let plugin = Plugin::start().await;
    let size = r#"rds_csi_pool_size_bytes{pool="storage-pool"}"#;
    let free = r#"rds_csi_pool_free_bytes{pool="storage-pool"}"#;
    eventually("the pool gauges to show the empty pool", || async {
        (plugin.metric(size).await == (1u64 << 40) as f64
            && plugin.metric(free).await == (1u64 << 40) as f64)
            .then_some(())
    })
    .await;
    let mut c = plugin.controller().await;
    c.create_volume(create(&pv_name(1), 5 * GIB)).await.unwrap();
    eventually("the free space to drop by the new volume", || async {
        (plugin.metric(free).await == ((1u64 << 40) - (5u64 << 30)) as f64).then_some(())
    })
    .await;
    assert_eq!(plugin.metric(size).await, (1u64 << 40) as f64);
}
