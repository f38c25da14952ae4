//! The whole driver in the guest: the simulator exporting through nvmet, the
//! plugin (controller and node) as a process of its own, and CSI clients
//! talking to its socket the way the sidecars and kubelet do.
//!
//! The plugin process is this very binary started with `plugin` as its first
//! argument (see `guest-suite`), in a process group of its own, so a
//! scenario can kill it and every program it runs (mkfs, cryptsetup) with
//! SIGKILL and start it again, as a crash and a restart of the pod's
//! container would.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use csi_proto::v1::controller_client::ControllerClient;
use csi_proto::v1::node_client::NodeClient;
use csi_proto::v1::volume_capability::access_mode::Mode;
use csi_proto::v1::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
use csi_proto::v1::{self as csi, CapacityRange, VolumeCapability};
use rds_sim::LoopBtrfs;
use test_support::grpc;
use test_support::sim::Login;
use tonic::transport::Channel;

use crate::rds::{self, Rds};
use crate::support::{Context, Outcome, ensure, wait_for};

/// The port of the plugin's HTTP endpoint (`/metrics`, `/healthz`, `/readyz`).
pub const HTTP_PORT: u16 = 9810;

/// The plugin's NQN prefix (its default).
pub const DRIVER_NQN_PREFIX: &str = "nqn.2024-01.io.srvlab.csi.rds:";

/// A volume as CreateVolume returned it.
#[derive(Debug, Clone)]
pub struct Volume {
    /// The volume ID (its slot).
    pub id: String,
    /// Its NQN, from the volume context.
    pub nqn: String,
    /// The volume context, for stage.
    pub context: HashMap<String, String>,
    /// The publish context ControllerPublishVolume returned (the host
    /// identity to connect as), for stage; empty until published.
    pub publish_context: HashMap<String, String>,
    /// Its size.
    pub bytes: u64,
}

/// The simulator, the plugin process, and clients of its socket.
pub struct Cluster {
    /// The simulated RDS.
    pub rds: Rds,
    /// The scenario's scratch folder.
    pub scratch: PathBuf,
    socket: PathBuf,
    plugin_args: Vec<String>,
    plugin: PluginProcess,
    /// The Controller service.
    pub controller: ControllerClient<Channel>,
    /// The Node service.
    pub node: NodeClient<Channel>,
    /// The node ID the plugin's node service reports.
    pub node_id: String,
    /// The pool's btrfs, when it is one: unmounted once the simulator and
    /// its exports are gone.
    btrfs: Option<LoopBtrfs>,
}

/// The pool's label when it is a btrfs.
pub const BTRFS_LABEL: &str = "pool1";

/// A filesystem capability.
pub fn mount(fs: &str) -> VolumeCapability {
    VolumeCapability {
        access_mode: Some(AccessMode {
            mode: Mode::SingleNodeWriter as i32,
        }),
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: fs.into(),
            ..Default::default()
        })),
    }
}

/// A raw block capability.
pub fn block() -> VolumeCapability {
    VolumeCapability {
        access_mode: Some(AccessMode {
            mode: Mode::SingleNodeWriter as i32,
        }),
        access_type: Some(AccessType::Block(BlockVolume {})),
    }
}

/// `cap` with the access mode `mode`.
pub fn with_mode(cap: VolumeCapability, mode: Mode) -> VolumeCapability {
    VolumeCapability {
        access_mode: Some(AccessMode { mode: mode as i32 }),
        ..cap
    }
}

impl Cluster {
    /// A scenario's whole life: the simulator (with a pool of `capacity`
    /// bytes) and the plugin started in `scratch`, `steps` run, and both
    /// stopped afterwards whatever the steps did; the first failure is the
    /// outcome.
    pub async fn run(
        scratch: &Path,
        capacity: u64,
        steps: impl AsyncFnOnce(&mut Cluster) -> Outcome,
    ) -> Outcome {
        let mut cluster = Cluster::start(scratch, capacity).await?;
        let result = steps(&mut cluster).await;
        let stopped = cluster.stop().await;
        result.and(stopped)
    }

    /// Starts the simulator (under `scratch/rds`) and the plugin.
    pub async fn start(scratch: &Path, capacity: u64) -> Outcome<Cluster> {
        Self::start_with(scratch, capacity, rds::Export::Nvmet).await
    }

    /// Starts the simulator, exporting its disks as `export` says, and the
    /// plugin.
    pub async fn start_with(
        scratch: &Path,
        capacity: u64,
        export: rds::Export,
    ) -> Outcome<Cluster> {
        Self::start_mode(scratch, capacity, export, "all").await
    }

    /// [`Cluster::run`] with the plugin serving the controller only: the
    /// nodes are [`NodePlugin`]s the scenario starts, each a process of its
    /// own, so that each can be killed and started again alone.
    pub async fn run_controller_only(
        scratch: &Path,
        capacity: u64,
        steps: impl AsyncFnOnce(&mut Cluster) -> Outcome,
    ) -> Outcome {
        let mut cluster =
            Cluster::start_mode(scratch, capacity, rds::Export::Nvmet, "controller").await?;
        let result = steps(&mut cluster).await;
        let stopped = cluster.stop().await;
        result.and(stopped)
    }

    async fn start_mode(
        scratch: &Path,
        capacity: u64,
        export: rds::Export,
        mode: &str,
    ) -> Outcome<Cluster> {
        let rds = Rds::start_with(&scratch.join("rds"), capacity, export).await?;
        Self::start_on(rds, None, scratch, mode).await
    }

    /// [`Cluster::run`] on a simulator whose pool is a real btrfs of
    /// `btrfs_bytes` (sparse), where volumes get subvolumes of their own and
    /// can be snapshotted and cloned.
    pub async fn run_on_btrfs(
        scratch: &Path,
        btrfs_bytes: u64,
        steps: impl AsyncFnOnce(&mut Cluster) -> Outcome,
    ) -> Outcome {
        let mut cluster = Cluster::start_on_btrfs(scratch, btrfs_bytes, rds::Export::Nvmet).await?;
        let result = steps(&mut cluster).await;
        let stopped = cluster.stop().await;
        result.and(stopped)
    }

    /// Starts the simulator on a btrfs pool of `btrfs_bytes` (a sparse file
    /// under `scratch`, loop-mounted: root only), exporting its disks as
    /// `export` says, and the plugin.
    pub async fn start_on_btrfs(
        scratch: &Path,
        btrfs_bytes: u64,
        export: rds::Export,
    ) -> Outcome<Cluster> {
        let root = scratch.join("rds");
        let btrfs = LoopBtrfs::create(
            &scratch.join("pool.btrfs"),
            &root.join(rds::POOL),
            btrfs_bytes,
            BTRFS_LABEL,
        )
        .context("make the pool's btrfs (as root, with btrfs-progs)")?;
        let rds = Rds::start_on_btrfs_with(&root, export).await?;
        Self::start_on(rds, Some(btrfs), scratch, "all").await
    }

    async fn start_on(
        rds: Rds,
        btrfs: Option<LoopBtrfs>,
        scratch: &Path,
        mode: &str,
    ) -> Outcome<Cluster> {
        let login =
            Login::write(&rds.sim, scratch).context("cannot write the simulator's SSH key")?;
        let socket = scratch.join("plugin/csi.sock");
        let mut plugin_args: Vec<String> = vec![
            "--mode".into(),
            mode.into(),
            "--node-id".into(),
            "guest".into(),
            "--endpoint".into(),
            format!("unix://{}", socket.display()),
            "--rds-command-timeout".into(),
            "120".into(),
            "--volume-path".into(),
            format!("/{}/volumes", rds::POOL),
            "--nvme-address".into(),
            "127.0.0.1".into(),
            "--state-dir".into(),
            scratch.join("plugin-state").display().to_string(),
            "--etc-nvme".into(),
            scratch.join("etc-nvme").display().to_string(),
            "--health-check-interval".into(),
            "1".into(),
            "--http-endpoint".into(),
            format!("127.0.0.1:{HTTP_PORT}"),
            "--log-level".into(),
            std::env::var("RDS_CSI_E2E_PLUGIN_LOG").unwrap_or_else(|_| "info".into()),
        ];
        plugin_args.extend(login.flags());
        let mut cluster = Cluster {
            rds,
            scratch: scratch.to_path_buf(),
            controller: ControllerClient::new(grpc::lazy(&socket)),
            node: NodeClient::new(grpc::lazy(&socket)),
            socket,
            plugin_args,
            plugin: PluginProcess(None),
            node_id: String::new(),
            btrfs,
        };
        cluster.start_plugin().await?;
        Ok(cluster)
    }

    /// Starts the plugin process and waits until it answers.
    pub async fn start_plugin(&mut self) -> Outcome {
        let exe = std::env::current_exe().context("cannot find this binary")?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.plugin_log())
            .context("cannot open the plugin's log")?;
        let child = Command::new(exe)
            .arg("plugin")
            .args(&self.plugin_args)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start the plugin")?;
        self.plugin = PluginProcess(Some(child));
        self.controller = ControllerClient::new(grpc::lazy(&self.socket));
        self.node = NodeClient::new(grpc::lazy(&self.socket));
        if self
            .plugin_args
            .windows(2)
            .any(|w| w[0] == "--mode" && w[1] == "controller")
        {
            // No node service to ask: the controller answering is enough.
            let controller = self.controller.clone();
            return wait_for(
                "the controller to answer",
                Duration::from_secs(60),
                Duration::from_millis(100),
                || {
                    let mut controller = controller.clone();
                    async move {
                        controller
                            .controller_get_capabilities(csi::ControllerGetCapabilitiesRequest {})
                            .await
                            .ok()
                            .map(|_| ())
                    }
                },
                || self.plugin_log_tail(),
            )
            .await;
        }
        self.node_id =
            answering_node_id(&self.node, "the plugin", || self.plugin_log_tail()).await?;
        Ok(())
    }

    /// Kills the plugin and the programs it runs with SIGKILL, as the end
    /// of its container would: nothing of it runs afterwards.
    pub fn kill_plugin(&mut self) -> Outcome {
        if let Some(mut child) = self.plugin.0.take() {
            let group = rustix::process::Pid::from_raw(child.id() as i32)
                .context("the plugin has no process id")?;
            rustix::process::kill_process_group(group, rustix::process::Signal::KILL)
                .context("cannot kill the plugin's process group")?;
            child.wait().context("cannot reap the plugin")?;
        }
        Ok(())
    }

    /// Stops the plugin with SIGTERM, the simulator and its exports.
    ///
    /// A scenario that failed half-way may leave mounts and connections
    /// behind; with the target gone they would hang whatever touches them
    /// (the scratch folder's removal, the next scenario), so they are
    /// detached and disconnected first, while the target still answers.
    pub async fn stop(mut self) -> Outcome {
        self.tear_down_leftovers().await;
        if let Some(child) = self.plugin.0.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = tokio::task::spawn_blocking(move || {
                let mut child = child;
                child.wait()
            })
            .await;
        }
        let stopped = self.rds.stop().await;
        drop(self.btrfs.take());
        stopped
    }

    async fn tear_down_leftovers(&self) {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        // The pool's btrfs is the simulator's, unmounted after it stops.
        let pool = self.btrfs.as_ref().map(LoopBtrfs::mount_point);
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| Path::new(p).starts_with(&self.scratch))
            .filter(|p| pool.is_none_or(|pool| !Path::new(p).starts_with(pool)))
            .collect();
        // Deepest first: a bind mount before what it is bound from.
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            tracing::warn!(point, "a mount was left behind; detaching it");
            let _ = rustix::mount::unmount(point, rustix::mount::UnmountFlags::DETACH);
        }
        for nqn in crate::fabrics::connected_nqns() {
            if nqn.starts_with(DRIVER_NQN_PREFIX) {
                tracing::warn!(%nqn, "a connection was left behind; disconnecting it");
                let _ = crate::fabrics::disconnect(&nqn).await;
            }
        }
    }

    /// The plugin's CSI socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn plugin_log(&self) -> PathBuf {
        self.scratch.join("plugin.log")
    }

    /// Everything the plugin logged, across its restarts.
    pub fn plugin_log_text(&self) -> String {
        std::fs::read_to_string(self.plugin_log()).unwrap_or_default()
    }

    /// GETs `path` from the plugin's HTTP endpoint: (status, body).
    pub async fn http_get(&self, path: &str) -> Outcome<(u16, String)> {
        test_support::http::get(([127, 0, 0, 1], HTTP_PORT).into(), path)
            .await
            .context(format!("GET {path} from the plugin's HTTP endpoint"))
    }

    /// The value of a metric line (`name{labels}`, exactly as printed) in
    /// the plugin's `/metrics`.
    pub async fn metric(&self, series: &str) -> Outcome<f64> {
        let (status, body) = self.http_get("/metrics").await?;
        ensure(status == 200, format!("/metrics answered {status}"))?;
        test_support::http::metric(&body, series)
            .context(format!("no {series} in /metrics:\n{body}"))
    }

    /// NodeGetVolumeStats' volume condition: (abnormal, message).
    pub async fn condition(&mut self, volume: &Volume, path: &Path) -> Outcome<(bool, String)> {
        let stats = self.stats(volume, path).await?;
        let c = stats.volume_condition.context("no volume condition")?;
        Ok((c.abnormal, c.message))
    }

    /// The last lines the plugin logged, for failure messages.
    pub fn plugin_log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.plugin_log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(15);
        format!("plugin log:\n    {}", lines[start..].join("\n    "))
    }

    /// CreateVolume, then ControllerPublishVolume to this plugin's node with
    /// the same capability, as the external-attacher does before kubelet
    /// stages a volume: the volume, with its publish context.
    pub async fn create(
        &mut self,
        name: &str,
        bytes: u64,
        cap: VolumeCapability,
        parameters: &[(&str, &str)],
    ) -> Outcome<Volume> {
        self.create_from(name, bytes, cap, parameters, None).await
    }

    /// CreateVolume with a content source (a restore of a snapshot, a clone
    /// of a volume; `None`: an empty volume), then ControllerPublishVolume
    /// to this plugin's node with the same capability, as the
    /// external-attacher does before kubelet stages a volume: the volume,
    /// with its publish context.
    pub async fn create_from(
        &mut self,
        name: &str,
        bytes: u64,
        cap: VolumeCapability,
        parameters: &[(&str, &str)],
        source: Option<csi::volume_content_source::Type>,
    ) -> Outcome<Volume> {
        let mut volume = self
            .create_unpublished_from(name, bytes, cap.clone(), parameters, source)
            .await?;
        let node_id = self.node_id.clone();
        volume.publish_context = self.controller_publish(&volume, &node_id, cap).await?;
        Ok(volume)
    }

    /// ControllerPublishVolume of `volume` to `node_id`: the publish
    /// context.
    pub async fn controller_publish(
        &mut self,
        volume: &Volume,
        node_id: &str,
        cap: VolumeCapability,
    ) -> Outcome<HashMap<String, String>> {
        self.controller
            .controller_publish_volume(csi::ControllerPublishVolumeRequest {
                volume_id: volume.id.clone(),
                node_id: node_id.into(),
                volume_capability: Some(cap),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().publish_context)
            .map_err(|s| {
                format!(
                    "ControllerPublishVolume to {node_id}: {s:?}\n{}",
                    self.plugin_log_tail()
                )
            })
    }

    /// ControllerUnpublishVolume of `volume` from `node_id`.
    pub async fn controller_unpublish(&mut self, volume: &Volume, node_id: &str) -> Outcome {
        self.controller
            .controller_unpublish_volume(csi::ControllerUnpublishVolumeRequest {
                volume_id: volume.id.clone(),
                node_id: node_id.into(),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(|s| {
                format!(
                    "ControllerUnpublishVolume from {node_id}: {s:?}\n{}",
                    self.plugin_log_tail()
                )
            })
    }

    /// CreateVolume alone: the volume is closed to every host until it is
    /// published.
    pub async fn create_unpublished(
        &mut self,
        name: &str,
        bytes: u64,
        cap: VolumeCapability,
        parameters: &[(&str, &str)],
    ) -> Outcome<Volume> {
        self.create_unpublished_from(name, bytes, cap, parameters, None)
            .await
    }

    /// CreateVolume with a content source, alone.
    pub async fn create_unpublished_from(
        &mut self,
        name: &str,
        bytes: u64,
        cap: VolumeCapability,
        parameters: &[(&str, &str)],
        source: Option<csi::volume_content_source::Type>,
    ) -> Outcome<Volume> {
        let volume = self
            .controller
            .create_volume(csi::CreateVolumeRequest {
                name: name.into(),
                capacity_range: Some(CapacityRange {
                    required_bytes: bytes as i64,
                    limit_bytes: 0,
                }),
                volume_capabilities: vec![cap],
                parameters: parameters
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                volume_content_source: source.map(|t| csi::VolumeContentSource { r#type: Some(t) }),
                ..Default::default()
            })
            .await
            .context(format!("CreateVolume {name}"))?
            .into_inner()
            .volume
            .context("CreateVolume returned no volume")?;
        Ok(Volume {
            nqn: volume
                .volume_context
                .get("nqn")
                .cloned()
                .unwrap_or_default(),
            id: volume.volume_id,
            bytes: volume.capacity_bytes as u64,
            context: volume.volume_context,
            publish_context: HashMap::new(),
        })
    }

    /// NodeStageVolume.
    pub async fn stage(
        &mut self,
        volume: &Volume,
        staging: &Path,
        cap: VolumeCapability,
    ) -> Outcome {
        self.stage_with_secrets(volume, staging, cap, &[])
            .await
            .map_err(|s| format!("NodeStageVolume: {s:?}\n{}", self.plugin_log_tail()))
    }

    /// NodeStageVolume with `secrets` (what kubelet reads from the node-stage
    /// Secret); the gRPC status when it fails.
    pub async fn stage_with_secrets(
        &mut self,
        volume: &Volume,
        staging: &Path,
        cap: VolumeCapability,
        secrets: &[(&str, &str)],
    ) -> Result<(), tonic::Status> {
        self.node
            .node_stage_volume(stage_request(volume, staging, cap, secrets))
            .await
            .map(|_| ())
    }

    /// NodePublishVolume.
    pub async fn publish(
        &mut self,
        volume: &Volume,
        staging: &Path,
        target: &Path,
        cap: VolumeCapability,
        readonly: bool,
    ) -> Outcome {
        self.node
            .node_publish_volume(csi::NodePublishVolumeRequest {
                volume_id: volume.id.clone(),
                staging_target_path: staging.display().to_string(),
                target_path: target.display().to_string(),
                volume_capability: Some(cap),
                readonly,
                volume_context: volume.context.clone(),
                publish_context: volume.publish_context.clone(),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(|s| format!("NodePublishVolume: {s:?}\n{}", self.plugin_log_tail()))
    }

    /// NodeUnpublishVolume.
    pub async fn unpublish(&mut self, volume: &Volume, target: &Path) -> Outcome {
        self.node
            .node_unpublish_volume(csi::NodeUnpublishVolumeRequest {
                volume_id: volume.id.clone(),
                target_path: target.display().to_string(),
            })
            .await
            .map(|_| ())
            .map_err(|s| format!("NodeUnpublishVolume: {s:?}\n{}", self.plugin_log_tail()))
    }

    /// NodeUnstageVolume; then no controller of the volume may be left.
    pub async fn unstage(&mut self, volume: &Volume, staging: &Path) -> Outcome {
        self.node
            .node_unstage_volume(csi::NodeUnstageVolumeRequest {
                volume_id: volume.id.clone(),
                staging_target_path: staging.display().to_string(),
            })
            .await
            .map_err(|s| format!("NodeUnstageVolume: {s:?}\n{}", self.plugin_log_tail()))?;
        let left = crate::fabrics::controllers(&volume.nqn);
        ensure(
            left.is_empty(),
            format!(
                "after unstage, controllers of {} remain: {left:?}",
                volume.nqn
            ),
        )
    }

    /// DeleteVolume.
    pub async fn delete(&mut self, volume: &Volume) -> Outcome {
        self.controller
            .delete_volume(csi::DeleteVolumeRequest {
                volume_id: volume.id.clone(),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .context("DeleteVolume")
    }

    /// CreateSnapshot of `volume`, named `name`.
    pub async fn snapshot(&mut self, volume: &Volume, name: &str) -> Outcome<csi::Snapshot> {
        self.controller
            .create_snapshot(csi::CreateSnapshotRequest {
                name: name.into(),
                source_volume_id: volume.id.clone(),
                ..Default::default()
            })
            .await
            .context(format!("CreateSnapshot {name}"))?
            .into_inner()
            .snapshot
            .context("CreateSnapshot returned no snapshot")
    }

    /// DeleteSnapshot.
    pub async fn delete_snapshot(&mut self, snapshot: &csi::Snapshot) -> Outcome {
        self.controller
            .delete_snapshot(csi::DeleteSnapshotRequest {
                snapshot_id: snapshot.snapshot_id.clone(),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .context("DeleteSnapshot")
    }

    /// NodeGetVolumeStats.
    pub async fn stats(
        &mut self,
        volume: &Volume,
        path: &Path,
    ) -> Outcome<csi::NodeGetVolumeStatsResponse> {
        self.node
            .node_get_volume_stats(csi::NodeGetVolumeStatsRequest {
                volume_id: volume.id.clone(),
                volume_path: path.display().to_string(),
                staging_target_path: String::new(),
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| format!("NodeGetVolumeStats: {s:?}\n{}", self.plugin_log_tail()))
    }

    /// ControllerExpandVolume then NodeExpandVolume; returns the node's size.
    pub async fn expand(
        &mut self,
        volume: &Volume,
        staging: &Path,
        path: &Path,
        bytes: u64,
    ) -> Outcome<u64> {
        self.expand_with_secrets(volume, staging, path, bytes, &[])
            .await
    }

    /// [`Cluster::expand`], with `secrets` in NodeExpandVolume (what kubelet
    /// reads from the node-expand Secret).
    pub async fn expand_with_secrets(
        &mut self,
        volume: &Volume,
        staging: &Path,
        path: &Path,
        bytes: u64,
        secrets: &[(&str, &str)],
    ) -> Outcome<u64> {
        let range = CapacityRange {
            required_bytes: bytes as i64,
            limit_bytes: 0,
        };
        let grown = self
            .controller
            .controller_expand_volume(csi::ControllerExpandVolumeRequest {
                volume_id: volume.id.clone(),
                capacity_range: Some(range),
                ..Default::default()
            })
            .await
            .context("ControllerExpandVolume")?
            .into_inner();
        ensure(
            grown.node_expansion_required,
            "a filesystem volume needs node expansion",
        )?;
        let node = self
            .node
            .node_expand_volume(csi::NodeExpandVolumeRequest {
                volume_id: volume.id.clone(),
                volume_path: path.display().to_string(),
                capacity_range: Some(range),
                staging_target_path: staging.display().to_string(),
                secrets: secret_map(secrets),
                ..Default::default()
            })
            .await
            .map_err(|s| format!("NodeExpandVolume: {s:?}\n{}", self.plugin_log_tail()))?
            .into_inner();
        Ok(node.capacity_bytes as u64)
    }

    /// A 1 GiB filesystem volume of `fs` named `name`, made with
    /// `parameters`, staged, and published read-write into pod `pod-a`, as a
    /// pod that uses it has it: the volume, its staging path and the pod's
    /// target path.
    pub async fn in_use(
        &mut self,
        name: &str,
        fs: &str,
        parameters: &[(&str, &str)],
    ) -> Outcome<(Volume, PathBuf, PathBuf)> {
        let volume = self.create(name, 1 << 30, mount(fs), parameters).await?;
        let (staging, target) = self.paths(&volume.id, "pod-a");
        self.stage(&volume, &staging, mount(fs)).await?;
        self.publish(&volume, &staging, &target, mount(fs), false)
            .await?;
        Ok((volume, staging, target))
    }

    /// Kubelet-like paths for volume `name`: (staging, target).
    pub fn paths(&self, name: &str, pod: &str) -> (PathBuf, PathBuf) {
        let kubelet = self.scratch.join("kubelet");
        (
            kubelet.join(format!("plugins/rds.csi.srvlab.io/{name}/globalmount")),
            kubelet.join(format!("pods/{pod}/volumes/kubernetes.io~csi/{name}/mount")),
        )
    }
}

/// Waits until the node plugin behind `node` (`what`, for the error)
/// answers NodeGetInfo, and returns the node ID it reports. Answering a
/// call, not just a bound socket, means its start-up (the orphan cleanup) is
/// done.
pub(crate) async fn answering_node_id(
    node: &NodeClient<Channel>,
    what: &str,
    log_tail: impl Fn() -> String,
) -> Outcome<String> {
    wait_for(
        &format!("{what} to answer"),
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            let mut node = node.clone();
            async move {
                node.node_get_info(csi::NodeGetInfoRequest {})
                    .await
                    .ok()
                    .map(|info| info.into_inner().node_id)
            }
        },
        log_tail,
    )
    .await
}

/// NodeStageVolume of `volume` at `staging`, with `secrets`.
pub fn stage_request(
    volume: &Volume,
    staging: &Path,
    cap: VolumeCapability,
    secrets: &[(&str, &str)],
) -> csi::NodeStageVolumeRequest {
    csi::NodeStageVolumeRequest {
        volume_id: volume.id.clone(),
        staging_target_path: staging.display().to_string(),
        volume_capability: Some(cap),
        volume_context: volume.context.clone(),
        publish_context: volume.publish_context.clone(),
        secrets: secret_map(secrets),
    }
}

fn secret_map(secrets: &[(&str, &str)]) -> HashMap<String, String> {
    secrets
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The plugin process; killed if still running when dropped (a scenario
/// that fails half-way must not leave it behind).
struct PluginProcess(Option<Child>);

impl Drop for PluginProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
