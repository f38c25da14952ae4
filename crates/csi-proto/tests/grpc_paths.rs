//! The gRPC paths of the generated services.
//!
//! Kubernetes sidecars call `/csi.v1.<Service>/<Method>`; a typo in a package,
//! service or RPC name in `proto/csi.proto` would make every call UNIMPLEMENTED.
//! The clients are run against a recording transport that notes the request
//! path and answers UNIMPLEMENTED, so each call shows the path it would use.
//! One Identity call also goes through the generated server in-process, to
//! show that the server routes the path the client sends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use csi_proto::v1::controller_client::ControllerClient;
use csi_proto::v1::identity_client::IdentityClient;
use csi_proto::v1::identity_server::{Identity, IdentityServer};
use csi_proto::v1::node_client::NodeClient;
use csi_proto::v1::{self as csi, controller_server, identity_server, node_server};
use tonic::body::Body;
use tonic::codegen::{Service, http};
use tonic::{Request, Response, Status};

/// A transport that records each request's path and answers UNIMPLEMENTED.
#[derive(Clone, Default)]
struct Recorder {
    paths: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    /// The one path recorded since the last call, which it forgets.
    fn take(&self) -> String {
        let mut paths = self.paths.lock().unwrap();
        assert_eq!(paths.len(), 1, "expected one request, got {paths:?}");
        paths.remove(0)
    }
}

impl<B> Service<http::Request<B>> for Recorder {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.paths
            .lock()
            .unwrap()
            .push(request.uri().path().to_owned());
        ready(Ok(Status::unimplemented("recorded").into_http()))
    }
}

/// Runs one client call against `$recorder` and asserts the path it used.
macro_rules! assert_path {
    ($recorder:ident, $call:expr, $path:literal) => {
        let status = $call.await.expect_err("the recorder answers UNIMPLEMENTED");
        assert_eq!(status.code(), tonic::Code::Unimplemented);
        assert_eq!($recorder.take(), $path);
    };
}

#[test]
fn service_names() {
    assert_eq!(identity_server::SERVICE_NAME, "csi.v1.Identity");
    assert_eq!(controller_server::SERVICE_NAME, "csi.v1.Controller");
    assert_eq!(node_server::SERVICE_NAME, "csi.v1.Node");
}

#[tokio::test]
async fn identity_paths() {
    let rec = Recorder::default();
    let mut c = IdentityClient::new(rec.clone());
    assert_path!(
        rec,
        c.get_plugin_info(csi::GetPluginInfoRequest {}),
        "/csi.v1.Identity/GetPluginInfo"
    );
    assert_path!(
        rec,
        c.get_plugin_capabilities(csi::GetPluginCapabilitiesRequest {}),
        "/csi.v1.Identity/GetPluginCapabilities"
    );
    assert_path!(rec, c.probe(csi::ProbeRequest {}), "/csi.v1.Identity/Probe");
}

#[tokio::test]
async fn controller_paths() {
    let rec = Recorder::default();
    let mut c = ControllerClient::new(rec.clone());
    assert_path!(
        rec,
        c.create_volume(csi::CreateVolumeRequest::default()),
        "/csi.v1.Controller/CreateVolume"
    );
    assert_path!(
        rec,
        c.delete_volume(csi::DeleteVolumeRequest::default()),
        "/csi.v1.Controller/DeleteVolume"
    );
    assert_path!(
        rec,
        c.controller_publish_volume(csi::ControllerPublishVolumeRequest::default()),
        "/csi.v1.Controller/ControllerPublishVolume"
    );
    assert_path!(
        rec,
        c.controller_unpublish_volume(csi::ControllerUnpublishVolumeRequest::default()),
        "/csi.v1.Controller/ControllerUnpublishVolume"
    );
    assert_path!(
        rec,
        c.validate_volume_capabilities(csi::ValidateVolumeCapabilitiesRequest::default()),
        "/csi.v1.Controller/ValidateVolumeCapabilities"
    );
    assert_path!(
        rec,
        c.list_volumes(csi::ListVolumesRequest::default()),
        "/csi.v1.Controller/ListVolumes"
    );
    assert_path!(
        rec,
        c.get_capacity(csi::GetCapacityRequest::default()),
        "/csi.v1.Controller/GetCapacity"
    );
    assert_path!(
        rec,
        c.controller_get_capabilities(csi::ControllerGetCapabilitiesRequest {}),
        "/csi.v1.Controller/ControllerGetCapabilities"
    );
    assert_path!(
        rec,
        c.controller_expand_volume(csi::ControllerExpandVolumeRequest::default()),
        "/csi.v1.Controller/ControllerExpandVolume"
    );
    assert_path!(
        rec,
        c.controller_get_volume(csi::ControllerGetVolumeRequest::default()),
        "/csi.v1.Controller/ControllerGetVolume"
    );
    assert_path!(
        rec,
        c.controller_modify_volume(csi::ControllerModifyVolumeRequest::default()),
        "/csi.v1.Controller/ControllerModifyVolume"
    );
}

#[tokio::test]
async fn node_paths() {
    let rec = Recorder::default();
    let mut c = NodeClient::new(rec.clone());
    assert_path!(
        rec,
        c.node_stage_volume(csi::NodeStageVolumeRequest::default()),
        "/csi.v1.Node/NodeStageVolume"
    );
    assert_path!(
        rec,
        c.node_unstage_volume(csi::NodeUnstageVolumeRequest::default()),
        "/csi.v1.Node/NodeUnstageVolume"
    );
    assert_path!(
        rec,
        c.node_publish_volume(csi::NodePublishVolumeRequest::default()),
        "/csi.v1.Node/NodePublishVolume"
    );
    assert_path!(
        rec,
        c.node_unpublish_volume(csi::NodeUnpublishVolumeRequest::default()),
        "/csi.v1.Node/NodeUnpublishVolume"
    );
    assert_path!(
        rec,
        c.node_get_volume_stats(csi::NodeGetVolumeStatsRequest::default()),
        "/csi.v1.Node/NodeGetVolumeStats"
    );
    assert_path!(
        rec,
        c.node_expand_volume(csi::NodeExpandVolumeRequest::default()),
        "/csi.v1.Node/NodeExpandVolume"
    );
    assert_path!(
        rec,
        c.node_get_capabilities(csi::NodeGetCapabilitiesRequest {}),
        "/csi.v1.Node/NodeGetCapabilities"
    );
    assert_path!(
        rec,
        c.node_get_info(csi::NodeGetInfoRequest {}),
        "/csi.v1.Node/NodeGetInfo"
    );
}

/// An Identity service that is always ready.
struct AlwaysReady;

#[tonic::async_trait]
impl Identity for AlwaysReady {
    async fn get_plugin_info(
        &self,
        _request: Request<csi::GetPluginInfoRequest>,
    ) -> Result<Response<csi::GetPluginInfoResponse>, Status> {
        Err(Status::unimplemented("not needed here"))
    }

    async fn get_plugin_capabilities(
        &self,
        _request: Request<csi::GetPluginCapabilitiesRequest>,
    ) -> Result<Response<csi::GetPluginCapabilitiesResponse>, Status> {
        Err(Status::unimplemented("not needed here"))
    }

    async fn probe(
        &self,
        _request: Request<csi::ProbeRequest>,
    ) -> Result<Response<csi::ProbeResponse>, Status> {
        Ok(Response::new(csi::ProbeResponse { ready: Some(true) }))
    }
}

#[tokio::test]
async fn identity_server_routes_the_client_path() {
    // The client talks straight to the server's tower service: no socket, but
    // the same path, framing and encoding as over HTTP/2.
    let mut client = IdentityClient::new(IdentityServer::new(AlwaysReady));
    let response = client.probe(csi::ProbeRequest {}).await.unwrap();
    assert_eq!(response.into_inner().ready, Some(true));
}
