//! A gRPC channel over a unix socket, as the CSI sidecars and kubelet
//! connect (HTTP/2; the URI is a placeholder, the socket is what counts).

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Any URI: the connection is made to the socket, whatever it says.
const PLACEHOLDER: &str = "http://[::]:50051";

async fn open(socket: PathBuf, _: Uri) -> std::io::Result<TokioIo<UnixStream>> {
    Ok(TokioIo::new(UnixStream::connect(socket).await?))
}

/// A channel to the server on `socket`, connected now.
pub async fn connect(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket = socket.to_path_buf();
    Endpoint::from_static(PLACEHOLDER)
        .connect_with_connector(tower::service_fn(move |uri| open(socket.clone(), uri)))
        .await
}

/// A channel to the server on `socket` that connects on first use, and again
/// after the server restarts.
pub fn lazy(socket: &Path) -> Channel {
    let socket = socket.to_path_buf();
    Endpoint::from_static(PLACEHOLDER)
        .connect_with_connector_lazy(tower::service_fn(move |uri| open(socket.clone(), uri)))
}
