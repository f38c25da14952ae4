//! One command on one SSH channel: send it, read the reply until the server
//! closes the channel, and close a channel whose command was abandoned.
//!
//! A channel's reply is complete when the server sends an exit status or
//! end-of-file before closing; a channel that closes without either was cut
//! off by a broken connection, and the command's outcome is unknown.

use std::sync::Arc;

use russh::ChannelMsg;
use russh::client;

use super::ExecOutput;

/// Reads a channel until the server closes it. `Err` when the connection broke
/// before the command finished (no exit status and no end of output).
pub(super) async fn read_reply(
    channel: &mut russh::ChannelReadHalf,
) -> std::result::Result<ExecOutput, String> {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut exit_status = None;
    let mut eof = false;
    loop {
        match channel.wait().await {
            Some(ChannelMsg::Data { data }) => stdout.extend_from_slice(&data),
            Some(ChannelMsg::ExtendedData { data, .. }) => stderr.extend_from_slice(&data),
            Some(ChannelMsg::ExitStatus { exit_status: s }) => exit_status = Some(s),
            Some(ChannelMsg::Eof) => eof = true,
            Some(ChannelMsg::Failure) => return Err("the RDS refused to run the command".into()),
            Some(ChannelMsg::Close) | None => break,
            Some(_) => {}
        }
    }
    if exit_status.is_none() && !eof {
        return Err("the connection closed before the command finished".into());
    }
    Ok(ExecOutput {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        exit_status,
    })
}

/// Closes a channel whose command is abandoned (its future dropped), so a
/// cancelled command does not leave the channel open on the server.
pub(super) struct CloseOnDrop {
    pub(super) write: Arc<russh::ChannelWriteHalf<client::Msg>>,
    pub(super) armed: bool,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let write = Arc::clone(&self.write);
            rt.spawn(async move {
                let _ = write.close().await;
            });
        }
    }
}
