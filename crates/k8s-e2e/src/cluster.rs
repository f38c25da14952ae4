//! The cluster the flows run against: the simulator as the RDS (an xfs pool,
//! and a btrfs pool for snapshots), the control plane, the snapshot CRDs and
//! snapshot-controller, our manifests applied as a user applies them, and
//! the controller Deployment's replicas running as pods without a kubelet.
//! Flows use the helpers here to make objects, wait for Kubernetes, and look
//! at the simulator.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rds_sim::testing::TestSim;
use rds_sim::{BTRFS, DiskView, FileView, LoopBtrfs, PoolConfig, SimConfig};
use russh::keys::HashAlg;
use russh::keys::ssh_key::LineEnding;
use serde_json::{Value, json};

use crate::btrfs::{self, Subvolume};
use crate::control_plane::{ControlPlane, Tools};
use crate::kubectl::{Kubectl, describe_events};
use crate::manifests::{self, CONTROLLER, NAMESPACE, SSH_SECRET, Site, Source};
use crate::pod::{self, Pod};
use crate::snapshots::{self, Modules};
use crate::support::{Context, Outcome, PATIENCE, tail, wait_for};
use crate::template::{self, PodTemplate};
use crate::versions;

/// The pool the simulator has; its folder `metal-csi` is the default
/// `RDS_VOLUME_PATH` of every manifest, so the site settings need not name it.
pub const POOL: &str = "storage-pool";

/// A second folder on the pool, for a StorageClass's `volumePath`.
pub const OTHER_FOLDER: &str = "e2e-other";

/// The simulator's second pool, a real btrfs filesystem (loop-mounted),
/// where volumes live in subvolumes and can be snapshotted and cloned. Its
/// label (the `fs=` of RouterOS's subvolume commands) is its name.
pub const BTRFS_POOL: &str = "btrfs-pool";

/// The folder for volumes on the btrfs pool.
pub const BTRFS_FOLDER: &str = "volumes";

/// The btrfs pool's size: a sparse file, so this costs only what is
/// written.
const BTRFS_SIZE: u64 = 16 << 30;

/// The node the tier plays the scheduler for.
pub const NODE: &str = "node-1";

/// The namespace of the flows' PVCs.
pub const PVC_NAMESPACE: &str = "default";

/// What the tier runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The repository (for `deploy/` and `charts/`).
    pub repo: PathBuf,
    /// The Go tools' folder.
    pub tools: PathBuf,
    /// The `rds-csi-plugin` binary.
    pub plugin: PathBuf,
    /// Where the manifests come from.
    pub source: Source,
    /// The external-snapshotter's modules (snapshot CRDs and
    /// snapshot-controller).
    pub snapshotter: Modules,
    /// A fresh folder for everything the run writes.
    pub scratch: PathBuf,
}

/// The running cluster. Dropping it stops everything (pods first).
pub struct Cluster {
    /// The controller's replicas, by index; `None` while one is stopped.
    pub replicas: Vec<Option<Pod>>,
    /// snapshot-controller (one replica of its Deployment).
    pub snapshot_controller: Option<Pod>,
    /// The controller Deployment's pod template.
    pub template: PodTemplate,
    /// snapshot-controller's pod template.
    pub snapshot_template: PodTemplate,
    /// The objects as rendered (and applied, but for the workloads).
    pub objects: Vec<Value>,
    /// The CSIDriver's name.
    pub driver: String,
    /// kubectl as the cluster's admin.
    pub kubectl: Kubectl,
    /// The control plane.
    pub plane: ControlPlane,
    sim: Option<TestSim>,
    // After the simulator: unmounted once it is gone.
    btrfs: LoopBtrfs,
    sim_config: SimConfig,
    sim_addr: SocketAddr,
    tools: Tools,
    /// The options it was started with.
    pub options: Options,
}

impl Cluster {
    /// Starts everything and waits until the sidecars lead.
    pub async fn start(options: Options) -> Outcome<Cluster> {
        let tools = Tools::new(&options.tools);
        let scratch = &options.scratch;
        let mut sim_config = SimConfig::single_pool(scratch.join("rds"), POOL, 1 << 40);
        sim_config.pools[0].directories = vec!["metal-csi".into(), OTHER_FOLDER.into()];
        let btrfs = LoopBtrfs::create(
            &scratch.join(format!("{BTRFS_POOL}.img")),
            &sim_config.root.join(BTRFS_POOL),
            BTRFS_SIZE,
            BTRFS_POOL,
        )
        .context("cannot make the simulator's btrfs pool (root, loop devices and btrfs-progs)")?;
        sim_config.pools.push(PoolConfig {
            name: BTRFS_POOL.into(),
            fs: BTRFS.into(),
            capacity: 0,
            directories: vec![BTRFS_FOLDER.into()],
        });
        let sim = TestSim::start(sim_config.clone())
            .await
            .context("cannot start the simulator")?;
        let site = site(&sim, &scratch.join("site"))?;
        let plane = ControlPlane::start(&scratch.join("control-plane"), &tools).await?;
        let kubectl = plane.admin.clone();
        kubectl
            .apply(
                &[json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}})],
                &[],
            )
            .await?;
        // docs/deploy.md, "Snapshots": the CRDs and snapshot-controller come
        // before the driver, whose manifests hold a VolumeSnapshotClass.
        let go_mod = options.repo.join("tools/k8s/go.mod");
        let go_mod = std::fs::read_to_string(&go_mod)
            .context(format!("cannot read {}", go_mod.display()))?;
        snapshots::install_crds(&kubectl, &options.snapshotter).await?;
        let (snapshot_template, _) =
            snapshots::install_controller(&kubectl, &options.snapshotter, &go_mod).await?;
        let objects = install(&kubectl, &options, &tools, &site).await?;
        versions::check(&objects, &go_mod)?;
        let driver = objects
            .iter()
            .find(|o| o["kind"] == "CSIDriver")
            .and_then(|o| o["metadata"]["name"].as_str())
            .context("the manifests have no CSIDriver")?
            .to_owned();
        let deployment = manifests::find(&objects, "Deployment", CONTROLLER)
            .context(format!("the manifests have no Deployment {CONTROLLER}"))?;
        let template = template::parse_workload(deployment)?;
        let mut cluster = Cluster {
            replicas: (0..template.replicas).map(|_| None).collect(),
            snapshot_controller: None,
            template,
            snapshot_template,
            objects,
            driver,
            kubectl,
            plane,
            sim_addr: sim.addr,
            sim: Some(sim),
            btrfs,
            sim_config,
            tools,
            options,
        };
        cluster.start_snapshot_controller().await?;
        for i in 0..cluster.replicas.len() {
            cluster.start_replica(i).await?;
        }
        for lease in cluster.leases() {
            cluster.wait_leader(&lease, None).await?;
        }
        cluster.wait_snapshot_controller_leader().await?;
        Ok(cluster)
    }

    /// The pod name of replica `i`.
    pub fn replica_name(i: usize) -> String {
        format!("{CONTROLLER}-{i}")
    }

    /// Starts replica `i` (a pod of the controller Deployment).
    pub async fn start_replica(&mut self, i: usize) -> Outcome {
        let name = Self::replica_name(i);
        let dir = self.options.scratch.join("pods").join(&name);
        let host = pod::Host {
            control_plane: &self.plane,
            tools: &self.tools,
            plugin: &self.options.plugin,
            node: NODE,
        };
        let started = pod::start(&self.template, &name, &dir, host).await?;
        self.replicas[i] = Some(started);
        Ok(())
    }

    /// The pod name of snapshot-controller's replica.
    pub fn snapshot_controller_name() -> String {
        format!("{}-0", snapshots::CONTROLLER)
    }

    /// Starts snapshot-controller (one pod of its Deployment), under its
    /// upstream ServiceAccount and RBAC.
    pub async fn start_snapshot_controller(&mut self) -> Outcome {
        let name = Self::snapshot_controller_name();
        let dir = self.options.scratch.join("pods").join(&name);
        let host = pod::Host {
            control_plane: &self.plane,
            tools: &self.tools,
            plugin: &self.options.plugin,
            node: NODE,
        };
        let started = pod::start(&self.snapshot_template, &name, &dir, host).await?;
        self.snapshot_controller = Some(started);
        Ok(())
    }

    /// Waits until snapshot-controller holds its Lease.
    pub async fn wait_snapshot_controller_leader(&self) -> Outcome<String> {
        let name = Self::snapshot_controller_name();
        wait_for(
            &format!(
                "snapshot-controller to hold the Lease {}/{}",
                snapshots::CONTROLLER_NAMESPACE,
                snapshots::CONTROLLER_LEASE
            ),
            PATIENCE,
            || async {
                let holder = self
                    .leader_in(snapshots::CONTROLLER_NAMESPACE, snapshots::CONTROLLER_LEASE)
                    .await?;
                Ok(holder.filter(|h| *h == name))
            },
            || async {
                format!(
                    "holder: {:?}",
                    self.leader_in(snapshots::CONTROLLER_NAMESPACE, snapshots::CONTROLLER_LEASE)
                        .await
                )
            },
        )
        .await
    }

    /// Stops replica `i`, as a deleted pod is stopped (SIGTERM).
    pub async fn stop_replica(&mut self, i: usize) {
        if let Some(mut pod) = self.replicas[i].take() {
            pod.stop().await;
        }
    }

    /// The running replicas.
    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.replicas.iter().flatten()
    }

    /// Every running pod: the replicas and snapshot-controller.
    pub fn all_pods(&self) -> impl Iterator<Item = &Pod> {
        self.replicas
            .iter()
            .chain([&self.snapshot_controller])
            .flatten()
    }

    /// Fails if a component or a container stopped running.
    pub fn ensure_running(&mut self) -> Outcome {
        self.plane.ensure_running()?;
        self.replicas
            .iter_mut()
            .chain([&mut self.snapshot_controller])
            .flatten()
            .try_for_each(Pod::ensure_running)
    }

    /// The Leases the controller's sidecars elect their leader with, in the
    /// Deployment's namespace: external-provisioner's is the driver name
    /// with every character but letters, digits and `-` made `-`;
    /// external-resizer's and external-snapshotter's have
    /// `external-resizer-` and `external-snapshotter-leader-` in front.
    pub fn leases(&self) -> Vec<String> {
        let sanitized: String = self
            .driver
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let mut leases = Vec::new();
        for c in &self.template.containers {
            match template::image_name(&c.image) {
                "csi-provisioner" => leases.push(sanitized.clone()),
                "csi-resizer" => leases.push(format!("external-resizer-{sanitized}")),
                "csi-snapshotter" => {
                    leases.push(format!("external-snapshotter-leader-{sanitized}"));
                }
                _ => {}
            }
        }
        leases
    }

    /// The holder of `lease`, if any.
    pub async fn leader(&self, lease: &str) -> Outcome<Option<String>> {
        self.leader_in(NAMESPACE, lease).await
    }

    /// The holder of `lease` in `namespace`, if any.
    pub async fn leader_in(&self, namespace: &str, lease: &str) -> Outcome<Option<String>> {
        let l = self.kubectl.get("lease", Some(namespace), lease).await?;
        Ok(
            l.and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
                .filter(|h| !h.is_empty()),
        )
    }

    /// Waits until one of the running replicas holds `lease` (and, if
    /// `not` is given, not that one), and returns its name.
    pub async fn wait_leader(&self, lease: &str, not: Option<&str>) -> Outcome<String> {
        let running: Vec<String> = self.pods().map(|p| p.name.clone()).collect();
        wait_for(
            &format!("a running replica to hold the Lease {NAMESPACE}/{lease}"),
            PATIENCE,
            || async {
                let holder = self.leader(lease).await?;
                Ok(holder.filter(|h| running.contains(h) && Some(h.as_str()) != not))
            },
            || async { format!("holder: {:?}", self.leader(lease).await) },
        )
        .await
    }

    /// The simulator (its state can be read while it is stopped).
    pub fn sim(&self) -> Outcome<&TestSim> {
        self.sim.as_ref().context("the simulator is stopped")
    }

    /// The simulator's disks.
    pub fn disks(&self) -> Outcome<Vec<DiskView>> {
        Ok(self.sim()?.engine.disks())
    }

    /// The simulator's files (images).
    pub fn files(&self) -> Outcome<Vec<FileView>> {
        Ok(self.sim()?.engine.files())
    }

    /// Every subvolume of the btrfs pool, as btrfs lists them (paths from
    /// the pool's top: `volumes/pvc-…`).
    pub async fn subvolumes(&self) -> Outcome<Vec<Subvolume>> {
        btrfs::subvolumes(self.btrfs.mount_point()).await
    }

    /// The disk whose slot is `volume` (a PV's volume handle).
    pub fn disk(&self, volume: &str) -> Outcome<Option<DiskView>> {
        Ok(self.disks()?.into_iter().find(|d| d.slot == volume))
    }

    /// Stops the simulator, as a reboot or a cut cable would: open
    /// connections are cut, new ones refused.
    pub async fn stop_rds(&mut self) {
        if let Some(mut sim) = self.sim.take() {
            sim.stop().await;
            self.sim = Some(sim);
        }
    }

    /// Starts the simulator again on the same address, with its disks.
    pub async fn start_rds(&mut self) -> Outcome {
        let sim = self.sim.take().context("no simulator")?;
        let addr = self.sim_addr.to_string();
        let sim = sim
            .restart_on(self.sim_config.clone(), &addr)
            .await
            .context(format!("cannot start the simulator again on {addr}"))?;
        self.sim = Some(sim);
        Ok(())
    }

    /// Applies `objects` as the admin.
    pub async fn apply(&self, objects: &[Value]) -> Outcome {
        self.kubectl.apply(objects, &[]).await.map(|_| ())
    }

    /// The PVC `name` of the flows' namespace.
    pub async fn pvc(&self, name: &str) -> Outcome<Option<Value>> {
        self.kubectl.get("pvc", Some(PVC_NAMESPACE), name).await
    }

    /// The PV `name`.
    pub async fn pv(&self, name: &str) -> Outcome<Option<Value>> {
        self.kubectl.get("pv", None, name).await
    }

    /// Annotates a PVC with the node the scheduler chose for its pod, which
    /// a `WaitForFirstConsumer` class waits for.
    pub async fn select_node(&self, pvc: &str) -> Outcome {
        self.kubectl
            .run(&[
                "annotate",
                "pvc",
                pvc,
                "-n",
                PVC_NAMESPACE,
                &format!("volume.kubernetes.io/selected-node={NODE}"),
            ])
            .await
            .map(|_| ())
    }

    /// Waits until the PVC is Bound, and returns it with its PV.
    pub async fn wait_bound(&self, pvc: &str) -> Outcome<(Value, Value)> {
        let claim = wait_for(
            &format!("PVC {pvc} to be Bound"),
            PATIENCE,
            || async {
                let c = self.pvc(pvc).await?;
                Ok(c.filter(|c| c["status"]["phase"] == "Bound"))
            },
            || self.describe_pvc(pvc),
        )
        .await?;
        let pv_name = claim["spec"]["volumeName"]
            .as_str()
            .context(format!("Bound PVC {pvc} names no PV"))?;
        let pv = self
            .pv(pv_name)
            .await?
            .context(format!("PV {pv_name} of PVC {pvc} does not exist"))?;
        Ok((claim, pv))
    }

    /// The PVC's phase and events, for a report.
    pub async fn describe_pvc(&self, pvc: &str) -> String {
        let phase = match self.pvc(pvc).await {
            Ok(Some(c)) => c["status"]["phase"].as_str().unwrap_or("?").to_owned(),
            Ok(None) => "absent".to_owned(),
            Err(e) => e,
        };
        let events = match self
            .kubectl
            .events(PVC_NAMESPACE, "PersistentVolumeClaim", pvc)
            .await
        {
            Ok(e) => describe_events(&e),
            Err(e) => e,
        };
        format!("phase {phase}; events: {events}")
    }

    /// Deletes a PVC and waits until it is gone (the PVC protection
    /// controller removes its finalizer).
    pub async fn delete_pvc(&self, pvc: &str) -> Outcome {
        self.kubectl.delete("pvc", Some(PVC_NAMESPACE), pvc).await?;
        wait_for(
            &format!("PVC {pvc} to be gone"),
            PATIENCE,
            || async { Ok(self.pvc(pvc).await?.is_none().then_some(())) },
            || self.describe_pvc(pvc),
        )
        .await
    }

    /// Waits until the PV `name` is gone.
    pub async fn wait_pv_gone(&self, name: &str) -> Outcome {
        wait_for(
            &format!("PV {name} to be deleted"),
            PATIENCE,
            || async { Ok(self.pv(name).await?.is_none().then_some(())) },
            || async {
                match self.pv(name).await {
                    Ok(Some(pv)) => format!(
                        "phase {}; events: {}",
                        pv["status"]["phase"],
                        self.kubectl
                            .list("events", None, &format!("involvedObject.name={name}"))
                            .await
                            .map(|e| describe_events(&e))
                            .unwrap_or_default()
                    ),
                    other => format!("{other:?}"),
                }
            },
        )
        .await
    }

    /// GET `path` from the plugin of replica `i`.
    pub async fn plugin_http(&self, i: usize, path: &str) -> Outcome<(u16, String)> {
        self.replicas[i]
            .as_ref()
            .context(format!("replica {i} is stopped"))?
            .plugin_http(path)
            .await
    }

    /// The end of every container's log, for a failure report.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for pod in self.all_pods() {
            for c in &pod.containers {
                // Long lines (the plugin logs JSON) are cut: the log file has
                // them whole.
                let end: Vec<String> = tail(&c.process.log(), lines)
                    .lines()
                    .map(|l| l.chars().take(240).collect())
                    .collect();
                out.push_str(&format!(
                    "--- {} ({})\n{}\n",
                    c.process.name(),
                    c.process.log_path().display(),
                    end.join("\n")
                ));
            }
        }
        out
    }
}

/// The site settings for the simulator, with its client key written to
/// `dir/id`.
fn site(sim: &TestSim, dir: &Path) -> Outcome<Site> {
    std::fs::create_dir_all(dir).context(format!("cannot create {}", dir.display()))?;
    let key = sim
        .client_key
        .to_openssh(LineEnding::LF)
        .context("cannot encode the SSH key")?;
    let file = dir.join("id");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&file)
            .context(format!("cannot write {}", file.display()))?;
        f.write_all(key.as_bytes())
            .context(format!("cannot write {}", file.display()))?;
    }
    Ok(Site {
        address: sim.addr.ip().to_string(),
        ssh_port: sim.addr.port(),
        user: sim.user.clone(),
        private_key_file: file,
        host_key: sim.host_key.fingerprint(HashAlg::Sha256).to_string(),
    })
}

/// Installs the driver as a user would, and returns the objects installed.
/// The workloads are checked by the API server (a server-side dry run for
/// kustomize; helm creates them, and with no deployment controller running
/// they make no pods).
async fn install(
    kubectl: &Kubectl,
    options: &Options,
    tools: &Tools,
    site: &Site,
) -> Outcome<Vec<Value>> {
    match options.source {
        Source::Kustomize => {
            let mut objects =
                manifests::kustomize(kubectl, &options.repo.join("deploy/overlays/default"))
                    .await?;
            // What docs/deploy.md has the user edit in config.yaml.
            manifests::set_config(&mut objects, "RDS_ADDRESS", &site.address)?;
            manifests::set_config(&mut objects, "RDS_SSH_PORT", &site.ssh_port.to_string())?;
            manifests::set_config(&mut objects, "RDS_USER", &site.user)?;
            let (workloads, rest): (Vec<Value>, Vec<Value>) =
                objects.iter().cloned().partition(manifests::is_workload);
            kubectl.apply(&rest, &[]).await?;
            // docs/deploy.md, "Installing", step 3.
            kubectl
                .run(&[
                    "-n",
                    NAMESPACE,
                    "create",
                    "secret",
                    "generic",
                    SSH_SECRET,
                    &format!("--from-file=id={}", site.private_key_file.display()),
                    &format!("--from-literal=host-key={}", site.host_key),
                ])
                .await?;
            kubectl.apply(&workloads, &["--dry-run=server"]).await?;
            Ok(objects)
        }
        Source::Helm => {
            // docs/deploy.md, "Installing with Helm".
            kubectl.run(&["create", "namespace", NAMESPACE]).await?;
            kubectl
                .run(&[
                    "label",
                    "namespace",
                    NAMESPACE,
                    "pod-security.kubernetes.io/enforce=privileged",
                ])
                .await?;
            let helm = tools.path("helm")?;
            let chart = options.repo.join("charts/rds-csi");
            let out = tokio::process::Command::new(&helm)
                .arg("install")
                .arg("rds-csi")
                .arg(&chart)
                .args(["--namespace", NAMESPACE, "--kubeconfig"])
                .arg(kubectl.kubeconfig())
                .args(manifests::helm_site_args(site))
                .output()
                .await
                .context("cannot run helm")?;
            if !out.status.success() {
                return Err(format!(
                    "helm install failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            let manifest = tokio::process::Command::new(&helm)
                .args([
                    "get",
                    "manifest",
                    "rds-csi",
                    "--namespace",
                    NAMESPACE,
                    "--kubeconfig",
                ])
                .arg(kubectl.kubeconfig())
                .output()
                .await
                .context("cannot run helm")?;
            if !manifest.status.success() {
                return Err(format!(
                    "helm get manifest failed: {}",
                    String::from_utf8_lossy(&manifest.stderr).trim()
                ));
            }
            manifests::parse_yaml_documents(&String::from_utf8_lossy(&manifest.stdout))
        }
    }
}

/// A PVC of `class` asking for `size` (`1Gi`), in the flows' namespace.
pub fn pvc(name: &str, class: &str, size: &str, block: bool) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": PVC_NAMESPACE},
        "spec": {
            "storageClassName": class,
            "accessModes": ["ReadWriteOnce"],
            "volumeMode": if block { "Block" } else { "Filesystem" },
            "resources": {"requests": {"storage": size}},
        },
    })
}

/// A StorageClass of the driver with `parameters`, binding at once (no
/// scheduler needed), expandable.
pub fn storage_class(
    name: &str,
    driver: &str,
    parameters: &[(&str, &str)],
    reclaim: &str,
) -> Value {
    let parameters: serde_json::Map<String, Value> = parameters
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect();
    json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": driver,
        "parameters": parameters,
        "reclaimPolicy": reclaim,
        "allowVolumeExpansion": true,
        "volumeBindingMode": "Immediate",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_for_flows() {
        let c = pvc("a", "rds-ext4", "1Gi", false);
        assert_eq!(c["spec"]["resources"]["requests"]["storage"], "1Gi");
        assert_eq!(c["spec"]["volumeMode"], "Filesystem");
        assert_eq!(pvc("b", "x", "1Gi", true)["spec"]["volumeMode"], "Block");
        let sc = storage_class("s", "rds.csi.srvlab.io", &[("nvmePort", "4421")], "Retain");
        assert_eq!(sc["parameters"]["nvmePort"], "4421");
        assert_eq!(sc["reclaimPolicy"], "Retain");
        assert_eq!(sc["provisioner"], "rds.csi.srvlab.io");
    }
}
