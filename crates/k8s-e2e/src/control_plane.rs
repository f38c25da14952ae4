//! A Kubernetes control plane on loopback: etcd, kube-apiserver with RBAC,
//! and kube-controller-manager with the volume controllers, each a process
//! built from its Go module by `scripts/go-tools`. No kubelet and no
//! scheduler: the tier plays the scheduler where a flow needs one (it sets a
//! PVC's selected node), and runs the controller's containers itself.
//!
//! Choices that differ from a production cluster, and why:
//! - etcd keeps no fsync (`--unsafe-no-fsync`): its data is thrown away.
//! - The API server authenticates the tier's admin with a static token file
//!   (group `system:masters`) and everyone else with ServiceAccount tokens;
//!   `--endpoint-reconciler-type=none` stops it complaining every 10 s that
//!   127.0.0.1 is a loopback address for the `kubernetes` Service.
//! - The controller manager runs only the controllers volumes need (PV
//!   binding, expansion, attach-detach, PV and PVC protection), and not
//!   node-lifecycle, so Node objects the tier creates stay as it made them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::kubectl::{Kubectl, kubeconfig, write_kubeconfig};
use crate::pki::Pki;
use crate::ports::free_port;
use crate::process::Process;
use crate::support::{Context, Outcome, PATIENCE, wait_for};

/// The controllers kube-controller-manager runs.
pub const CONTROLLERS: &[&str] = &[
    "persistentvolume-binder-controller",
    "persistentvolume-expander-controller",
    "persistentvolume-attach-detach-controller",
    "persistentvolume-protection-controller",
    "persistentvolumeclaim-protection-controller",
];

/// The folder of the Go tools (`scripts/go-tools` prints it).
#[derive(Debug, Clone)]
pub struct Tools {
    dir: PathBuf,
}

impl Tools {
    /// The tools in `dir`.
    pub fn new(dir: &Path) -> Tools {
        Tools {
            dir: dir.to_path_buf(),
        }
    }

    /// The binary `name`, which must be there.
    pub fn path(&self, name: &str) -> Outcome<PathBuf> {
        let path = self.dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "{} is missing: build it with scripts/go-tools {name}",
                path.display()
            ))
        }
    }
}

/// The running control plane. Dropping it stops every process.
#[derive(Debug)]
pub struct ControlPlane {
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    /// The keys and certificates.
    pub pki: Pki,
    /// kubectl as the cluster's admin.
    pub admin: Kubectl,
    // Stopped in reverse order of start when dropped (fields drop in
    // declaration order).
    controller_manager: Process,
    apiserver: Process,
    etcd: Process,
}

impl ControlPlane {
    /// Starts etcd, the API server and the controller manager under `dir`,
    /// and waits until the API server is ready.
    pub async fn start(dir: &Path, tools: &Tools) -> Outcome<ControlPlane> {
        let pki = Pki::make(&dir.join("pki"))?;
        let logs = dir.join("logs");

        let (client, peer) = (free_port()?, free_port()?);
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut etcd = Command::new(tools.path("etcd")?);
        etcd.args(["--name", "default", "--data-dir"])
            .arg(dir.join("etcd"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .args(["--unsafe-no-fsync", "--log-level", "warn"]);
        let etcd = Process::spawn("etcd", etcd, &logs.join("etcd.log"))?;

        let token = random_token();
        let tokens = dir.join("tokens.csv");
        write_private(&tokens, &format!("{token},admin,admin,system:masters\n"))?;
        let port = free_port()?;
        let server = format!("https://127.0.0.1:{port}");
        let mut api = Command::new(tools.path("kube-apiserver")?);
        api.args(["--etcd-servers", &client_url])
            .args([
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
            ])
            .args(["--secure-port", &port.to_string()])
            .arg("--tls-cert-file")
            .arg(&pki.server_cert)
            .arg("--tls-private-key-file")
            .arg(&pki.server_key)
            .arg("--cert-dir")
            .arg(dir.join("apiserver-certs"))
            .arg("--token-auth-file")
            .arg(&tokens)
            .args(["--authorization-mode", "Node,RBAC"])
            .args(["--service-account-issuer", "https://kubernetes.default.svc"])
            .arg("--service-account-key-file")
            .arg(&pki.sa_pub)
            .arg("--service-account-signing-key-file")
            .arg(&pki.sa_key)
            .args(["--service-cluster-ip-range", "10.96.0.0/16"])
            .args(["--endpoint-reconciler-type", "none"])
            // As every real cluster's API server: the node DaemonSet is
            // privileged, and its server-side dry run must pass.
            .arg("--allow-privileged=true");
        let apiserver = Process::spawn("kube-apiserver", api, &logs.join("kube-apiserver.log"))?;

        let admin_config = dir.join("admin.kubeconfig");
        write_kubeconfig(
            &admin_config,
            &kubeconfig(&server, &pki.ca_cert, "admin", &token, "default"),
        )?;
        let admin = Kubectl::new(&tools.path("kubectl")?, &admin_config);

        let mut kcm = Command::new(tools.path("kube-controller-manager")?);
        kcm.arg("--kubeconfig")
            .arg(&admin_config)
            .arg("--authentication-kubeconfig")
            .arg(&admin_config)
            .arg("--authorization-kubeconfig")
            .arg(&admin_config)
            .args(["--controllers", &CONTROLLERS.join(",")])
            .args(["--leader-elect=false", "--bind-address", "127.0.0.1"])
            .args(["--secure-port", &free_port()?.to_string()])
            .arg("--root-ca-file")
            .arg(&pki.ca_cert)
            .args(["--cluster-name", "k8s-e2e"]);
        let (mut etcd, mut apiserver) = (etcd, apiserver);
        wait_ready(&admin, &mut etcd, &mut apiserver).await?;
        // Only now: the controller manager gives up if the API server does
        // not answer within seconds of its start.
        let controller_manager = Process::spawn(
            "kube-controller-manager",
            kcm,
            &logs.join("kube-controller-manager.log"),
        )?;
        Ok(ControlPlane {
            server,
            pki,
            admin,
            controller_manager,
            apiserver,
            etcd,
        })
    }

    /// Fails, with the tail of its log, if a component stopped running.
    pub fn ensure_running(&mut self) -> Outcome {
        self.etcd.ensure_running()?;
        self.apiserver.ensure_running()?;
        self.controller_manager.ensure_running()
    }

    /// A kubectl that authenticates as the ServiceAccount `namespace/name`
    /// with a fresh token of its own, and the kubeconfig file it uses.
    pub async fn service_account(
        &self,
        dir: &Path,
        namespace: &str,
        name: &str,
    ) -> Outcome<Kubectl> {
        let token = self.admin.create_token(namespace, name).await?;
        let path = dir.join(format!("{name}.kubeconfig"));
        std::fs::create_dir_all(dir).context(format!("cannot create {}", dir.display()))?;
        write_kubeconfig(
            &path,
            &kubeconfig(&self.server, &self.pki.ca_cert, name, &token, namespace),
        )?;
        Ok(self.admin.with_kubeconfig(&path))
    }
}

async fn wait_ready(admin: &Kubectl, etcd: &mut Process, apiserver: &mut Process) -> Outcome {
    let result = wait_for(
        "the API server to be ready",
        PATIENCE,
        || {
            let running = etcd.ensure_running().and(apiserver.ensure_running());
            let admin = admin.clone();
            async move {
                running?;
                Ok(admin
                    .run(&["get", "--raw", "/readyz"])
                    .await
                    .ok()
                    .map(|_| ()))
            }
        },
        || async { String::new() },
    )
    .await;
    result.map_err(|e| {
        format!(
            "{e}\nthe end of the API server's log:\n{}",
            apiserver.log_tail(15)
        )
    })
}

/// A bearer token nobody can guess.
fn random_token() -> String {
    let a: u128 = rand::random();
    let b: u128 = rand::random();
    format!("{a:032x}{b:032x}")
}

fn write_private(path: &Path, text: &str) -> Outcome {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .context(format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .context(format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn a_missing_tool_says_how_to_build_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = Tools::new(dir.path()).path("etcd").unwrap_err();
        assert!(e.contains("scripts/go-tools etcd"), "{e}");
    }
}
