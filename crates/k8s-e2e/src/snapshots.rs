//! The cluster's side of snapshots, installed as docs/deploy.md tells a user
//! to install it: the snapshot CRDs (`client/config/crd` of the
//! external-snapshotter's client module) and snapshot-controller with its
//! upstream RBAC (`deploy/kubernetes/snapshot-controller` of the
//! external-snapshotter module), both read at run time from the Go module
//! cache at the versions `tools/k8s/go.mod` pins, so that nothing of theirs
//! is copied into this repository. snapshot-controller's Deployment is run
//! like the driver's: a pod of processes, with its manifest's arguments and
//! its ServiceAccount's token, so the upstream RBAC is what it runs under.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::kubectl::Kubectl;
use crate::manifests;
use crate::support::{Context, Outcome};
use crate::template::{self, PodTemplate};
use crate::versions;

/// Where snapshot-controller runs (its upstream manifests' namespace).
pub const CONTROLLER_NAMESPACE: &str = "kube-system";

/// Its Deployment.
pub const CONTROLLER: &str = "snapshot-controller";

/// The Lease its replicas elect their leader with.
pub const CONTROLLER_LEASE: &str = "snapshot-controller-leader";

/// The image docs/deploy.md has users set on snapshot-controller's
/// Deployment: the manifests of the external-snapshotter's v8.6.0 tag still
/// name the v8.5.0 image (the release branch was updated afterwards). The
/// tier sets it too, and checks it against the module it builds
/// snapshot-controller from.
pub const CONTROLLER_IMAGE: &str = "registry.k8s.io/sig-storage/snapshot-controller:v8.6.0";

/// The CRDs the driver's snapshots need (the kustomization installs the
/// group snapshot ones too, as it does for a user).
pub const CRDS: &[&str] = &[
    "volumesnapshotclasses.snapshot.storage.k8s.io",
    "volumesnapshotcontents.snapshot.storage.k8s.io",
    "volumesnapshots.snapshot.storage.k8s.io",
];

/// The external-snapshotter's two Go modules, unpacked in the module cache.
#[derive(Debug, Clone)]
pub struct Modules {
    /// `github.com/kubernetes-csi/external-snapshotter/v8`.
    pub snapshotter: PathBuf,
    /// `github.com/kubernetes-csi/external-snapshotter/client/v8`.
    pub client: PathBuf,
}

impl Modules {
    /// The kustomization of the CRDs.
    pub fn crds(&self) -> PathBuf {
        self.client.join("config/crd")
    }

    /// The kustomization of snapshot-controller (RBAC and Deployment).
    pub fn controller(&self) -> PathBuf {
        self.snapshotter
            .join("deploy/kubernetes/snapshot-controller")
    }
}

fn text(path: &Path) -> Outcome<&str> {
    path.to_str()
        .context(format!("{} is not UTF-8", path.display()))
}

/// Installs the CRDs (`kubectl apply -k`) and waits until the API server
/// serves them.
pub async fn install_crds(kubectl: &Kubectl, modules: &Modules) -> Outcome {
    let dir = modules.crds();
    kubectl
        .run(&["apply", "-k", text(&dir)?])
        .await
        .context("cannot install the snapshot CRDs")?;
    let mut wait = vec!["wait", "--for=condition=Established", "--timeout=180s"];
    let names: Vec<String> = CRDS.iter().map(|c| format!("crd/{c}")).collect();
    wait.extend(names.iter().map(String::as_str));
    kubectl.run(&wait).await.map(|_| ())
}

/// Sets [`CONTROLLER_IMAGE`] on snapshot-controller's container, as
/// docs/deploy.md has users do (`kubectl set image`).
pub fn set_controller_image(objects: &mut [Value]) -> Outcome {
    let deployment = manifests::find_mut(objects, "Deployment", CONTROLLER)
        .context(format!("no Deployment {CONTROLLER}"))?;
    let container = deployment["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .and_then(|cs| cs.iter_mut().find(|c| c["name"] == CONTROLLER))
        .context(format!(
            "the Deployment {CONTROLLER} has no container {CONTROLLER}"
        ))?;
    container["image"] = Value::String(CONTROLLER_IMAGE.to_owned());
    Ok(())
}

/// Applies snapshot-controller's RBAC (its Deployment, with the image set
/// as docs/deploy.md says and checked against `go_mod`, with a server-side
/// dry run, as the driver's workloads) and returns the Deployment's pod
/// template and the objects.
pub async fn install_controller(
    kubectl: &Kubectl,
    modules: &Modules,
    go_mod: &str,
) -> Outcome<(PodTemplate, Vec<Value>)> {
    let mut objects = manifests::kustomize(kubectl, &modules.controller()).await?;
    set_controller_image(&mut objects)?;
    versions::check(&objects, go_mod)?;
    let (workloads, rest): (Vec<Value>, Vec<Value>) =
        objects.iter().cloned().partition(manifests::is_workload);
    kubectl
        .apply(&rest, &[])
        .await
        .context("cannot apply snapshot-controller's RBAC")?;
    kubectl.apply(&workloads, &["--dry-run=server"]).await?;
    let deployment = manifests::find(&objects, "Deployment", CONTROLLER).context(format!(
        "{} has no Deployment {CONTROLLER}",
        modules.controller().display()
    ))?;
    Ok((template::parse_workload(deployment)?, objects))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_image_is_set_as_the_docs_say() {
        let mut objects = vec![json!({
            "kind": "Deployment",
            "metadata": {"name": CONTROLLER},
            "spec": {"template": {"spec": {"containers": [{
                "name": CONTROLLER,
                "image": "registry.k8s.io/sig-storage/snapshot-controller:v8.5.0",
            }]}}},
        })];
        set_controller_image(&mut objects).unwrap();
        assert_eq!(
            objects[0]["spec"]["template"]["spec"]["containers"][0]["image"],
            CONTROLLER_IMAGE
        );
        assert!(set_controller_image(&mut []).is_err());
        let docs = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/deploy.md"),
        )
        .unwrap();
        assert!(
            docs.contains(CONTROLLER_IMAGE),
            "docs/deploy.md does not tell users to run {CONTROLLER_IMAGE}"
        );
        // And it is the release the tier builds.
        let go_mod = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/k8s/go.mod"),
        )
        .unwrap();
        versions::check(&objects, &go_mod).unwrap();
    }
}
