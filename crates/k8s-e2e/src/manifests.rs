//! What a user installs, rendered as they would render it: the kustomize
//! overlay `deploy/overlays/default` (`kubectl kustomize`) or the Helm chart
//! `charts/rds-csi` (`helm template`), as a list of objects (serde_json
//! values), and the site settings a user edits before applying.

use std::path::Path;

use serde_json::Value;

use crate::support::{Context, Outcome};

/// Where the objects come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// `deploy/overlays/default`, rendered by `kubectl kustomize`.
    Kustomize,
    /// `charts/rds-csi`, rendered by `helm template`.
    Helm,
}

/// The namespace every manifest puts the driver in.
pub const NAMESPACE: &str = "rds-csi";

/// The controller's ConfigMap, whose keys are the plugin's environment.
pub const CONFIG_MAP: &str = "rds-csi-config";

/// The Secret with the SSH key (`id`) and the pinned host key (`host-key`).
pub const SSH_SECRET: &str = "rds-csi-ssh";

/// The controller Deployment.
pub const CONTROLLER: &str = "rds-csi-controller";

/// Parses a multi-document YAML stream into objects, leaving out empty
/// documents (a `---` at the end, a template that rendered nothing).
pub fn parse_yaml_documents(text: &str) -> Outcome<Vec<Value>> {
    use serde::Deserialize;
    let mut objects = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).context("the rendered manifests are not YAML")?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

/// The object of `kind` named `name`, if there is one.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

/// The same, to change.
pub fn find_mut<'a>(objects: &'a mut [Value], kind: &str, name: &str) -> Option<&'a mut Value> {
    objects
        .iter_mut()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

/// Whether an object runs pods, which need a kubelet: these are checked by
/// the API server (a server-side dry run) but not created, and the tier
/// runs the controller's containers itself.
pub fn is_workload(object: &Value) -> bool {
    matches!(
        object["kind"].as_str(),
        Some("Deployment" | "DaemonSet" | "StatefulSet" | "ReplicaSet" | "Pod" | "Job")
    )
}

/// Sets `key` in the ConfigMap's data, as a user edits the overlay's
/// `config.yaml` before applying it.
pub fn set_config(objects: &mut [Value], key: &str, value: &str) -> Outcome {
    let map = find_mut(objects, "ConfigMap", CONFIG_MAP)
        .context(format!("the manifests have no ConfigMap {CONFIG_MAP}"))?;
    let data = map
        .as_object_mut()
        .context("a ConfigMap that is not an object")?
        .entry("data")
        .or_insert_with(|| Value::Object(Default::default()));
    data.as_object_mut()
        .context("ConfigMap data that is not a map")?
        .insert(key.to_owned(), Value::String(value.to_owned()));
    Ok(())
}

/// What the tier tells the installation about its RDS: the simulator.
#[derive(Debug, Clone)]
pub struct Site {
    /// The RDS's SSH address.
    pub address: String,
    /// Its SSH port.
    pub ssh_port: u16,
    /// The RouterOS user.
    pub user: String,
    /// A file holding the SSH private key.
    pub private_key_file: std::path::PathBuf,
    /// The pinned host key (`SHA256:…`).
    pub host_key: String,
}

/// `helm template` arguments that install the chart for `site`, the Secret
/// made by the chart from the key file.
pub fn helm_site_args(site: &Site) -> Vec<String> {
    vec![
        "--set".into(),
        format!("rds.address={}", site.address),
        "--set".into(),
        format!("rds.sshPort={}", site.ssh_port),
        "--set".into(),
        format!("rds.user={}", site.user),
        "--set".into(),
        "rds.ssh.create=true".into(),
        "--set-file".into(),
        format!("rds.ssh.privateKey={}", site.private_key_file.display()),
        "--set-string".into(),
        format!("rds.ssh.hostKey={}", site.host_key),
    ]
}

/// Renders the overlay folder `dir` with `kubectl kustomize`.
pub async fn kustomize(kubectl: &crate::kubectl::Kubectl, dir: &Path) -> Outcome<Vec<Value>> {
    let dir = dir.to_str().context("the repository's path is not UTF-8")?;
    let text = kubectl.run(&["kustomize", dir]).await?;
    parse_yaml_documents(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RENDERED: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: rds-csi-config
  namespace: rds-csi
data:
  RDS_ADDRESS: rds.invalid
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: rds-csi-controller
---
";

    #[test]
    fn documents_are_parsed_and_empty_ones_dropped() {
        let objects = parse_yaml_documents(RENDERED).unwrap();
        assert_eq!(objects.len(), 2);
        assert!(find(&objects, "Deployment", CONTROLLER).is_some());
        assert!(find(&objects, "Deployment", "other").is_none());
        assert!(parse_yaml_documents("a: [").is_err());
    }

    #[test]
    fn site_settings_go_into_the_config_map() {
        let mut objects = parse_yaml_documents(RENDERED).unwrap();
        set_config(&mut objects, "RDS_ADDRESS", "127.0.0.1").unwrap();
        set_config(&mut objects, "RDS_SSH_PORT", "2222").unwrap();
        let map = find(&objects, "ConfigMap", CONFIG_MAP).unwrap();
        assert_eq!(
            map["data"],
            json!({"RDS_ADDRESS": "127.0.0.1", "RDS_SSH_PORT": "2222"})
        );
        let mut none = vec![json!({"kind": "Secret", "metadata": {"name": "x"}})];
        assert!(set_config(&mut none, "A", "b").is_err());
    }

    #[test]
    fn workloads_are_told_apart() {
        assert!(is_workload(&json!({"kind": "Deployment"})));
        assert!(is_workload(&json!({"kind": "DaemonSet"})));
        assert!(!is_workload(&json!({"kind": "ClusterRole"})));
    }

    #[test]
    fn helm_gets_the_site_and_makes_the_secret() {
        let args = helm_site_args(&Site {
            address: "127.0.0.1".into(),
            ssh_port: 2222,
            user: "admin".into(),
            private_key_file: "/t/id".into(),
            host_key: "SHA256:abc=".into(),
        });
        let joined = args.join(" ");
        assert!(joined.contains("--set rds.address=127.0.0.1"), "{joined}");
        assert!(joined.contains("--set rds.sshPort=2222"), "{joined}");
        assert!(
            joined.contains("--set-file rds.ssh.privateKey=/t/id"),
            "{joined}"
        );
        assert!(
            joined.contains("--set-string rds.ssh.hostKey=SHA256:abc="),
            "{joined}"
        );
        assert!(joined.contains("rds.ssh.create=true"), "{joined}");
    }
}
