//! The simulator's SSH front end: accepts the driver's connections the way the
//! RDS does and hands each `exec` request to the [`Engine`].
//!
//! - Public-key authentication against a list of authorized keys; the login name
//!   may carry RouterOS's terminal suffix (`admin+ct`, `admin+cet1024w`), whose
//!   width (`…1024w`) sets the wrap width of the output; without one, the
//!   engine's [`Engine::terminal_width`] applies.
//! - Each exec request runs in its own task, so one connection carries many
//!   commands at once, as on the real device.
//! - Connection-level faults from [`Faults`]: latency before each command, error
//!   exit status 0, refused connections, and dropping the TCP connection (no SSH
//!   goodbye) when the engine reports that a drop fault fired.

use std::collections::HashSet;
use std::future::Future;
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex as StdMutex, PoisonError, Weak};

use russh::keys::{PrivateKey, PublicKey};
use russh::server::{self, Auth, Msg, Session};
use russh::{Channel, ChannelId, ChannelOpenFailure};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::engine::WIDTH_RANGE;
use crate::{Engine, ExecOptions};

/// Who may log in, and as what.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The simulator's host key.
    pub host_key: PrivateKey,
    /// Public keys allowed to log in.
    pub authorized_keys: Vec<PublicKey>,
    /// The RouterOS user name (without suffix).
    pub user: String,
}

/// Serves SSH on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    engine: Engine,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let ssh = Arc::new(server::Config {
        keys: vec![config.host_key.clone()],
        auth_rejection_time: std::time::Duration::from_millis(100),
        auth_rejection_time_initial: Some(std::time::Duration::ZERO),
        inactivity_timeout: None,
        ..server::Config::default()
    });
    let auth = Arc::new(config);
    // Open connections, so that shutting down cuts them too, as a reboot would.
    let mut open: Vec<Weak<std::net::TcpStream>> = Vec::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => {
                for socket in open.iter().filter_map(Weak::upgrade) {
                    let _ = socket.shutdown(Shutdown::Both);
                }
                return Ok(());
            }
        };
        open.retain(|w| w.strong_count() > 0);
        if engine.faults().refuse_connections() {
            debug!(%peer, "fault: refusing connection");
            drop(stream);
            continue;
        }
        // Replies are small and latency matters more than packet count (russh
        // applies its own `nodelay` setting only to sockets it accepts itself).
        stream.set_nodelay(true)?;
        // A duplicate of the socket lets a drop fault cut the connection from
        // outside the SSH session, like a network failure would.
        let std_stream = stream.into_std()?;
        let cutter = Arc::new(std_stream.try_clone()?);
        open.push(Arc::downgrade(&cutter));
        let stream = tokio::net::TcpStream::from_std(std_stream)?;
        let handler = Connection {
            engine: engine.clone(),
            auth: Arc::clone(&auth),
            width: None,
            cutter,
            peer,
            open_channels: Arc::default(),
        };
        let ssh = Arc::clone(&ssh);
        tokio::spawn(async move {
            match server::run_stream(ssh, stream, handler).await {
                Ok(session) => {
                    if let Err(e) = session.await {
                        debug!(%peer, error = %e, "session ended with an error");
                    }
                }
                Err(e) => debug!(%peer, error = %e, "handshake failed"),
            }
        });
    }
}

/// One client connection.
struct Connection {
    engine: Engine,
    auth: Arc<ServerConfig>,
    /// The width the login asked for, if any.
    width: Option<usize>,
    cutter: Arc<std::net::TcpStream>,
    peer: SocketAddr,
    /// Channels open, for the channel limit fault. A channel leaves the set
    /// when the server closes it after its command, or when the client closes
    /// it first (russh reports only the latter to the handler).
    open_channels: Arc<StdMutex<HashSet<ChannelId>>>,
}

/// Splits `admin+cet1024w` into the user and the wrap width it asks for.
fn parse_login(login: &str) -> (&str, Option<usize>) {
    let Some((user, suffix)) = login.split_once('+') else {
        return (login, None);
    };
    let width = suffix
        .strip_suffix('w')
        .map(|s| s.trim_start_matches(|c: char| c.is_ascii_alphabetic()))
        .and_then(|digits| digits.parse().ok());
    (user, width)
}

impl server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey(
        &mut self,
        login: &str,
        key: server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let (user, width) = parse_login(login);
        let known = self
            .auth
            .authorized_keys
            .iter()
            .any(|k| k.key_data() == key.public_key.key_data());
        if user == self.auth.user && known {
            if let Some(w) = width {
                self.width = Some(w.clamp(*WIDTH_RANGE.start(), *WIDTH_RANGE.end()));
            }
            info!(peer = %self.peer, user, "login");
            Ok(Auth::Accept)
        } else {
            warn!(peer = %self.peer, user, "login refused");
            Ok(Auth::reject())
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let admitted = {
            let mut open = self
                .open_channels
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let full = self
                .engine
                .faults()
                .max_channels()
                .is_some_and(|max| open.len() >= max);
            if !full {
                open.insert(channel.id());
            }
            !full
        };
        if !admitted {
            debug!(peer = %self.peer, "fault: refusing a channel over the limit");
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        reply.accept().await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.open_channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&channel);
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        let script = String::from_utf8_lossy(data).into_owned();
        let handle = session.handle();
        let engine = self.engine.clone();
        let cutter = Arc::clone(&self.cutter);
        let open_channels = Arc::clone(&self.open_channels);
        let opts = ExecOptions {
            width: self.width.unwrap_or_else(|| self.engine.terminal_width()),
        };
        tokio::spawn(async move {
            let _in_flight = engine.track_exec();
            let faults = engine.faults();
            let latency = faults.latency();
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            debug!(%script, "exec");
            let exec =
                match tokio::task::spawn_blocking(move || engine.execute(&script, &opts)).await {
                    Ok(exec) => exec,
                    Err(e) => {
                        warn!(error = %e, "engine task failed");
                        let _ = cutter.shutdown(Shutdown::Both);
                        return;
                    }
                };
            if exec.drop_connection {
                debug!("fault: dropping the connection");
                let _ = cutter.shutdown(Shutdown::Both);
                return;
            }
            let status = if exec.failed && !faults.error_exit_zero() {
                1
            } else {
                0
            };
            let _ = handle.data(channel, exec.output.into_bytes()).await;
            let _ = handle.exit_status_request(channel, status).await;
            let _ = handle.eof(channel).await;
            // Counted as closed before the client can hear of it.
            open_channels
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&channel);
            let _ = handle.close(channel).await;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_suffixes() {
        assert_eq!(parse_login("admin"), ("admin", None));
        assert_eq!(parse_login("admin+ct"), ("admin", None));
        assert_eq!(parse_login("admin+cet1024w"), ("admin", Some(1024)));
        assert_eq!(parse_login("admin+t80w"), ("admin", Some(80)));
        assert_eq!(parse_login("admin+cetw"), ("admin", None));
    }
}
