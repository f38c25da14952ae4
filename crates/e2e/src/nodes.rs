//! Node plugins as processes of their own, beside a controller-only
//! [`crate::csi::Cluster`]: several nodes on one kernel, each with its own
//! node name (so its own host identity for published volumes), socket,
//! state folder and kubelet-like paths, each killed and started again alone.
//!
//! One kernel acting as several hosts is what the guest can offer: the
//! target tells them apart by host NQN, as it tells machines apart. Two
//! things differ from separate machines, and the scenarios keep clear of
//! them: the kernel's native multipath gives one block device to every
//! controller of a subsystem, whichever host identity made it, so I/O
//! issued by one "node" may leave through another's controller; and a
//! filesystem mounted twice on one kernel shares one superblock. A
//! scenario therefore lets one node's controllers and mounts of a volume go
//! before another node stages a filesystem on it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use csi_proto::v1::node_client::NodeClient;
use csi_proto::v1::{self as csi, VolumeCapability};
use nvme_host::HostIdentity;
use test_support::grpc;
use tonic::transport::Channel;

use crate::csi::{DRIVER_NQN_PREFIX, Volume, answering_node_id};
use crate::support::{Context, Outcome};

/// One node plugin process (`--mode node`).
pub struct NodePlugin {
    /// Its node name.
    pub name: String,
    /// The node ID it reports: the host NQN it attaches volumes as.
    pub node_id: String,
    /// Its Node service.
    pub node: NodeClient<Channel>,
    dir: PathBuf,
    socket: PathBuf,
    args: Vec<String>,
    process: Option<Child>,
}

impl NodePlugin {
    /// Starts node `name` with its files under `scratch/<name>`, serving
    /// HTTP on 127.0.0.1:`http_port`, and waits until it answers (its
    /// start-up cleanup is done then).
    pub async fn start(scratch: &Path, name: &str, http_port: u16) -> Outcome<NodePlugin> {
        let dir = scratch.join(name);
        std::fs::create_dir_all(&dir).context(format!("mkdir {}", dir.display()))?;
        let socket = dir.join("csi.sock");
        let args: Vec<String> = vec![
            "--mode".into(),
            "node".into(),
            "--node-id".into(),
            name.into(),
            "--endpoint".into(),
            format!("unix://{}", socket.display()),
            "--state-dir".into(),
            dir.join("state").display().to_string(),
            "--etc-nvme".into(),
            dir.join("etc-nvme").display().to_string(),
            "--health-check-interval".into(),
            "1".into(),
            "--http-endpoint".into(),
            format!("127.0.0.1:{http_port}"),
            "--log-level".into(),
            std::env::var("RDS_CSI_E2E_PLUGIN_LOG").unwrap_or_else(|_| "info".into()),
        ];
        let mut plugin = NodePlugin {
            name: name.into(),
            node_id: String::new(),
            node: NodeClient::new(grpc::lazy(&socket)),
            dir,
            socket,
            args,
            process: None,
        };
        plugin.start_again().await?;
        Ok(plugin)
    }

    /// Starts the process (again, after [`NodePlugin::kill`]) and waits
    /// until it answers.
    pub async fn start_again(&mut self) -> Outcome {
        let exe = std::env::current_exe().context("cannot find this binary")?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("cannot open the node plugin's log")?;
        let child = Command::new(exe)
            .arg("plugin")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context(format!("cannot start node plugin {}", self.name))?;
        self.process = Some(child);
        self.node = NodeClient::new(grpc::lazy(&self.socket));
        self.node_id = answering_node_id(&self.node, &format!("node plugin {}", self.name), || {
            self.log_tail()
        })
        .await?;
        Ok(())
    }

    /// Kills the process with SIGKILL, as a crash, or a node lost, would.
    pub fn kill(&mut self) -> Outcome {
        if let Some(mut child) = self.process.take() {
            child.kill().context("cannot kill the node plugin")?;
            child.wait().context("cannot reap the node plugin")?;
        }
        Ok(())
    }

    /// The host identity this node attaches published volumes as.
    pub fn identity(&self) -> Outcome<HostIdentity> {
        let name = self
            .node_id
            .strip_prefix(DRIVER_NQN_PREFIX)
            .and_then(|rest| rest.strip_prefix(nvme_host::fence::NODE_INFIX))
            .context(format!(
                "node ID {} is not a host NQN of the driver",
                self.node_id
            ))?;
        nvme_host::fence::identity_of_node_name(DRIVER_NQN_PREFIX, name).map_err(|e| e.to_string())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.with_extension("log")
    }

    /// Everything the node plugin logged, across its restarts.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last lines it logged, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(15);
        format!(
            "node {} log:\n    {}",
            self.name,
            lines[start..].join("\n    ")
        )
    }

    /// Kubelet-like paths of `volume` on this node: (staging, target).
    pub fn paths(&self, volume: &Volume) -> (PathBuf, PathBuf) {
        let kubelet = self.dir.join("kubelet");
        (
            kubelet.join(format!(
                "plugins/rds.csi.srvlab.io/{}/globalmount",
                volume.id
            )),
            kubelet.join(format!(
                "pods/pod/volumes/kubernetes.io~csi/{}/mount",
                volume.id
            )),
        )
    }

    /// NodeStageVolume with `publish_context`.
    pub async fn stage(
        &mut self,
        volume: &Volume,
        publish_context: &HashMap<String, String>,
        cap: VolumeCapability,
    ) -> Outcome {
        let (staging, _) = self.paths(volume);
        self.node
            .node_stage_volume(csi::NodeStageVolumeRequest {
                volume_id: volume.id.clone(),
                staging_target_path: staging.display().to_string(),
                volume_capability: Some(cap),
                volume_context: volume.context.clone(),
                publish_context: publish_context.clone(),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(|s| {
                format!(
                    "NodeStageVolume on {}: {s:?}\n{}",
                    self.name,
                    self.log_tail()
                )
            })
    }

    /// NodePublishVolume at this node's target path; a block volume's
    /// target is a file, a filesystem's a folder, both made by the plugin.
    pub async fn publish(
        &mut self,
        volume: &Volume,
        publish_context: &HashMap<String, String>,
        cap: VolumeCapability,
    ) -> Outcome {
        let (staging, target) = self.paths(volume);
        self.node
            .node_publish_volume(csi::NodePublishVolumeRequest {
                volume_id: volume.id.clone(),
                staging_target_path: staging.display().to_string(),
                target_path: target.display().to_string(),
                volume_capability: Some(cap),
                volume_context: volume.context.clone(),
                publish_context: publish_context.clone(),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(|s| {
                format!(
                    "NodePublishVolume on {}: {s:?}\n{}",
                    self.name,
                    self.log_tail()
                )
            })
    }

    /// NodeUnpublishVolume, then NodeUnstageVolume, as kubelet does when the
    /// last pod using the volume on this node is gone.
    pub async fn release(&mut self, volume: &Volume) -> Outcome {
        let (staging, target) = self.paths(volume);
        self.node
            .node_unpublish_volume(csi::NodeUnpublishVolumeRequest {
                volume_id: volume.id.clone(),
                target_path: target.display().to_string(),
            })
            .await
            .map_err(|s| {
                format!(
                    "NodeUnpublishVolume on {}: {s:?}\n{}",
                    self.name,
                    self.log_tail()
                )
            })?;
        self.node
            .node_unstage_volume(csi::NodeUnstageVolumeRequest {
                volume_id: volume.id.clone(),
                staging_target_path: staging.display().to_string(),
            })
            .await
            .map(|_| ())
            .map_err(|s| {
                format!(
                    "NodeUnstageVolume on {}: {s:?}\n{}",
                    self.name,
                    self.log_tail()
                )
            })
    }
}

impl Drop for NodePlugin {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
