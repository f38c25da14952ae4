//! Serving the CSI services on a unix socket, and recording every call.
//!
//! [`RpcMetricsLayer`] sits in front of all services (identity, controller
//! and node alike), so every call is counted in one place, by method and
//! final gRPC code, without the handlers doing anything: the method comes
//! from the request path, the code from the response's `grpc-status`
//! header. An error answer is "trailers-only", which carries the status in
//! its headers; a unary success carries it only in the trailers, so an
//! answer without the header is `OK`.

use std::future::Future;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use csi_proto::v1::controller_server::ControllerServer;
use csi_proto::v1::identity_server::IdentityServer;
use csi_proto::v1::node_server::NodeServer;
use telemetry::RpcMetrics;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::Code;
use tonic::codegen::http;
use tonic::codegen::{Service, http::HeaderMap};
use tonic::transport::Server;

use crate::{ControllerService, IdentityService, NodeService};

/// The services one plugin process serves.
pub struct Services {
    /// Always served.
    pub identity: IdentityService,
    /// Served in controller mode.
    pub controller: Option<ControllerService>,
    /// Served in node mode.
    pub node: Option<NodeService>,
}

/// Binds the unix socket at `path`, replacing a stale socket left by an
/// earlier run. Anything at `path` that is not a socket is left alone and
/// reported: the path is wrong, and deleting a file there could lose data.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; not replacing it",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    UnixListener::bind(path)
}

/// The gRPC server failed.
#[derive(Debug, thiserror::Error)]
#[error("gRPC server: {0}")]
pub struct ServeError(#[from] tonic::transport::Error);

/// Serves `services` on `listener` until `shutdown` completes; then stops
/// accepting calls and returns once the calls in flight have finished.
/// Every call is recorded in `metrics`.
pub async fn serve(
    listener: UnixListener,
    services: Services,
    metrics: RpcMetrics,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    Ok(Server::builder()
        .layer(RpcMetricsLayer::new(metrics))
        .add_service(IdentityServer::new(services.identity))
        .add_optional_service(services.controller.map(ControllerServer::new))
        .add_optional_service(services.node.map(NodeServer::new))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await?)
}

/// A tower layer recording every gRPC call in [`RpcMetrics`]: its method,
/// its final gRPC code, and its latency until the answer's headers.
#[derive(Debug, Clone)]
pub struct RpcMetricsLayer {
    metrics: RpcMetrics,
}

impl RpcMetricsLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: RpcMetrics) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RecordRpcs<S>;

    fn layer(&self, inner: S) -> RecordRpcs<S> {
        RecordRpcs {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`RpcMetricsLayer`] wraps around the gRPC routes.
#[derive(Debug, Clone)]
pub struct RecordRpcs<S> {
    inner: S,
    metrics: RpcMetrics,
}

impl<S, B, R> Service<http::Request<B>> for RecordRpcs<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let mut record = Recording {
            metrics: self.metrics.clone(),
            method: method_name(request.uri().path()),
            start: Instant::now(),
            done: false,
        };
        let answer = self.inner.call(request);
        Box::pin(async move {
            let result = answer.await;
            record.finish(match &result {
                Ok(response) => status_code(response.headers()),
                // The transport failed under the call: no status was sent.
                Err(_) => Code::Unknown,
            });
            result
        })
    }
}

/// One call being recorded; a call whose future is dropped before it
/// answered (the client went away) is recorded as `CANCELLED`.
struct Recording {
    metrics: RpcMetrics,
    method: String,
    start: Instant,
    done: bool,
}

impl Recording {
    fn finish(&mut self, code: Code) {
        self.done = true;
        self.metrics
            .observe(&self.method, code_name(code), self.start.elapsed());
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if !self.done {
            self.finish(Code::Cancelled);
        }
    }
}

/// The method of a gRPC request path (`/csi.v1.Controller/CreateVolume` →
/// `CreateVolume`); `unknown` for anything that is not a CSI method, so that
/// arbitrary paths cannot make arbitrary label values.
pub fn method_name(path: &str) -> String {
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return "unknown".into();
    };
    let csi_service = service
        .strip_prefix("csi.v1.")
        .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()));
    let plain_method = !method.is_empty()
        && method.len() <= 64
        && method.bytes().all(|b| b.is_ascii_alphanumeric());
    if csi_service && plain_method {
        method.to_owned()
    } else {
        "unknown".into()
    }
}

/// The gRPC code an answer's headers carry: `grpc-status` when present (an
/// error answer), `OK` when absent (a unary success, whose status follows
/// in the trailers), `UNKNOWN` when unreadable.
pub fn status_code(headers: &HeaderMap) -> Code {
    match headers.get("grpc-status") {
        None => Code::Ok,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i32>().ok())
            .map_or(Code::Unknown, Code::from_i32),
    }
}

/// The canonical name of a gRPC code, as gRPC's documentation spells it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use std::future::{Ready, ready};

    use telemetry::metrics::RpcLabels;
    use tower::Layer;

    use super::*;

    #[test]
    fn every_code_has_its_canonical_name() {
        let all = [
            (0, "OK"),
            (1, "CANCELLED"),
            (2, "UNKNOWN"),
            (3, "INVALID_ARGUMENT"),
            (4, "DEADLINE_EXCEEDED"),
            (5, "NOT_FOUND"),
            (6, "ALREADY_EXISTS"),
            (7, "PERMISSION_DENIED"),
            (8, "RESOURCE_EXHAUSTED"),
            (9, "FAILED_PRECONDITION"),
            (10, "ABORTED"),
            (11, "OUT_OF_RANGE"),
            (12, "UNIMPLEMENTED"),
            (13, "INTERNAL"),
            (14, "UNAVAILABLE"),
            (15, "DATA_LOSS"),
            (16, "UNAUTHENTICATED"),
        ];
        for (n, name) in all {
            assert_eq!(code_name(Code::from_i32(n)), name, "{n}");
        }
    }

    #[test]
    fn methods_come_from_csi_paths_only() {
        for (path, method) in [
            ("/csi.v1.Controller/CreateVolume", "CreateVolume"),
            ("/csi.v1.Identity/Probe", "Probe"),
            ("/csi.v1.Node/NodeStageVolume", "NodeStageVolume"),
            ("/csi.v1.Controller/", "unknown"),
            ("/csi.v1./Probe", "unknown"),
            ("/grpc.health.v1.Health/Check", "unknown"),
            ("/csi.v1.Node/Stage Volume", "unknown"),
            ("/csi.v1.Node/NodeStageVolume/extra", "unknown"),
            ("/", "unknown"),
            ("", "unknown"),
        ] {
            assert_eq!(method_name(path), method, "{path:?}");
        }
        let long = format!("/csi.v1.Node/{}", "A".repeat(65));
        assert_eq!(method_name(&long), "unknown");
    }

    #[test]
    fn codes_come_from_the_grpc_status_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(status_code(&headers), Code::Ok, "a unary success");
        headers.insert("grpc-status", "14".parse().unwrap());
        assert_eq!(status_code(&headers), Code::Unavailable);
        headers.insert("grpc-status", "0".parse().unwrap());
        assert_eq!(status_code(&headers), Code::Ok);
        headers.insert("grpc-status", "x".parse().unwrap());
        assert_eq!(status_code(&headers), Code::Unknown);
    }

    /// Answers every request with a fixed `grpc-status` header, or none.
    #[derive(Clone)]
    struct Answer(Option<&'static str>);

    impl Service<http::Request<()>> for Answer {
        type Response = http::Response<()>;
        type Error = std::convert::Infallible;
        type Future = Ready<Result<http::Response<()>, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            let mut response = http::Response::new(());
            if let Some(code) = self.0 {
                response
                    .headers_mut()
                    .insert("grpc-status", code.parse().unwrap());
            }
            ready(Ok(response))
        }
    }

    fn calls(metrics: &RpcMetrics, method: &str, code: &str) -> u64 {
        metrics
            .calls
            .get_or_create(&RpcLabels {
                method: method.into(),
                code: code.into(),
            })
            .get()
    }

    #[tokio::test]
    async fn the_layer_records_method_and_code_of_each_call() {
        let metrics = RpcMetrics::default();
        let layer = RpcMetricsLayer::new(metrics.clone());
        let request = |path: &str| http::Request::builder().uri(path).body(()).unwrap();
        let mut ok = layer.layer(Answer(None));
        let mut unavailable = layer.layer(Answer(Some("14")));
        ok.call(request("/csi.v1.Controller/CreateVolume"))
            .await
            .unwrap();
        ok.call(request("/csi.v1.Controller/CreateVolume"))
            .await
            .unwrap();
        unavailable
            .call(request("/csi.v1.Controller/CreateVolume"))
            .await
            .unwrap();
        unavailable
            .call(request("/csi.v1.Node/NodeStageVolume"))
            .await
            .unwrap();
        // A call abandoned before it answered.
        drop(ok.call(request("/csi.v1.Identity/Probe")));

        assert_eq!(calls(&metrics, "CreateVolume", "OK"), 2);
        assert_eq!(calls(&metrics, "CreateVolume", "UNAVAILABLE"), 1);
        assert_eq!(calls(&metrics, "NodeStageVolume", "UNAVAILABLE"), 1);
        assert_eq!(calls(&metrics, "Probe", "CANCELLED"), 1);
        assert_eq!(calls(&metrics, "Probe", "OK"), 0);
    }

    #[tokio::test]
    async fn stale_sockets_are_replaced_and_other_files_kept() {
        let dir = std::env::temp_dir().join(format!("csi-bind-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub/csi.sock");
        let first = bind(&path).unwrap();
        drop(first);
        assert!(path.exists(), "a dropped listener leaves its socket file");
        let _second = bind(&path).unwrap();

        let file = dir.join("not-a-socket");
        std::fs::write(&file, b"data").unwrap();
        let err = bind(&file).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&file).unwrap(), b"data");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
