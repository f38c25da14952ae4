//! Identity: name, version, capabilities, and a Probe that tells the truth.

use csi_proto::v1::plugin_capability::{self, service, volume_expansion};
use csi_proto::v1::{GetPluginCapabilitiesRequest, GetPluginInfoRequest, ProbeRequest};
use tonic::Code;

use crate::harness::{Options, Plugin, eventually};

#[tokio::test]
async fn plugin_info() {
    let plugin = Plugin::start().await;
    let info = plugin
        .identity()
        .await
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "rds.csi.srvlab.io");
    assert_eq!(info.vendor_version, env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn driver_name_comes_from_the_flag() {
    let plugin = Plugin::start_with(Options {
        extra_flags: vec!["--driver-name".into(), "rds.example.org".into()],
        ..Options::default()
    })
    .await;
    let info = plugin
        .identity()
        .await
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "rds.example.org");
}

#[tokio::test]
async fn capabilities_controller_service_and_online_expansion() {
    let plugin = Plugin::start().await;
    let caps = plugin
        .identity()
        .await
        .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .capabilities;
    let mut services = Vec::new();
    let mut expansion = Vec::new();
    for cap in caps {
        match cap.r#type.unwrap() {
            plugin_capability::Type::Service(s) => services.push(s.r#type),
            plugin_capability::Type::VolumeExpansion(e) => expansion.push(e.r#type),
        }
    }
    assert_eq!(services, [service::Type::ControllerService as i32]);
    assert_eq!(expansion, [volume_expansion::Type::Online as i32]);
}

#[tokio::test]
async fn probe_follows_the_rds() {
    let mut plugin = Plugin::start().await;
    let mut identity = plugin.identity().await;
    let ready = identity
        .probe(ProbeRequest {})
        .await
        .unwrap()
        .into_inner()
        .ready;
    assert_eq!(ready, Some(true));

    let address = format!("127.0.0.1:{}", plugin.sim.addr.port());
    plugin.sim.stop().await;
    // Probe answers from what the connection monitor knows; it notices
    // within its check interval.
    let status = eventually("Probe reports the RDS gone", || {
        let mut identity = identity.clone();
        async move { identity.probe(ProbeRequest {}).await.err() }
    })
    .await;
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("is not usable") && status.message().contains(&address),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn probe_refuses_a_routeros_too_old() {
    // An RDS still on 7.20, before nvme-tcp-server-nqn.
    let plugin = Plugin::start_with(Options {
        routeros_version: "7.20.2 (stable)".into(),
        ..Options::default()
    })
    .await;
    let status = plugin
        .identity()
        .await
        .probe(ProbeRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("7.20.2"), "{}", status.message());
}

#[tokio::test]
async fn a_node_plugin_has_no_controller_and_probes_without_the_rds() {
    let mut plugin = Plugin::start_with(Options {
        mode: "node",
        ..Options::default()
    })
    .await;
    plugin.sim.stop().await;
    let mut identity = plugin.identity().await;
    let caps = identity
        .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .capabilities;
    assert!(
        !caps
            .iter()
            .any(|c| matches!(c.r#type, Some(plugin_capability::Type::Service(_)))),
        "{caps:?}"
    );
    let ready = identity
        .probe(ProbeRequest {})
        .await
        .unwrap()
        .into_inner()
        .ready;
    assert_eq!(ready, Some(true));
    let status = plugin
        .controller()
        .await
        .controller_get_capabilities(csi_proto::v1::ControllerGetCapabilitiesRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
}
