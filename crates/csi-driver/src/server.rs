//! Serving the CSI services on a unix socket.

use std::future::Future;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use csi_proto::v1::controller_server::ControllerServer;
use csi_proto::v1::identity_server::IdentityServer;
use csi_proto::v1::node_server::NodeServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
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
pub async fn serve(
    listener: UnixListener,
    services: Services,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    Ok(Server::builder()
        .add_service(IdentityServer::new(services.identity))
        .add_optional_service(services.controller.map(ControllerServer::new))
        .add_optional_service(services.node.map(NodeServer::new))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

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
