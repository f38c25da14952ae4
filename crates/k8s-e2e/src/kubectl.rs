//! The Kubernetes API, through `kubectl` with `-o json` and serde_json: the
//! tier needs a few verbs on a few kinds, and kubectl is the client every
//! user has, so no client library is pulled in.
//!
//! [`kubeconfig`] writes the file a client needs (server, CA, bearer token);
//! [`Kubectl`] runs commands with one.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::support::{Context, Outcome};

/// A kubeconfig (JSON, which kubectl and client-go read like YAML) for
/// `server`, trusting `ca`, authenticating with the bearer `token`, with
/// `namespace` as the default.
pub fn kubeconfig(server: &str, ca: &Path, user: &str, token: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "k8s-e2e",
            "cluster": {"server": server, "certificate-authority": ca},
        }],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{
            "name": "k8s-e2e",
            "context": {"cluster": "k8s-e2e", "user": user, "namespace": namespace},
        }],
        "current-context": "k8s-e2e",
    })
}

/// Writes `config` to `path`, readable by its owner only (it holds a token).
pub fn write_kubeconfig(path: &Path, config: &Value) -> Outcome {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .context(format!("cannot write {}", path.display()))?;
    file.write_all(config.to_string().as_bytes())
        .context(format!("cannot write {}", path.display()))
}

/// `kubectl` with one kubeconfig.
#[derive(Debug, Clone)]
pub struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    /// kubectl at `bin`, talking as `kubeconfig` says.
    pub fn new(bin: &Path, kubeconfig: &Path) -> Kubectl {
        Kubectl {
            bin: bin.to_path_buf(),
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    /// The same kubectl with another kubeconfig.
    pub fn with_kubeconfig(&self, kubeconfig: &Path) -> Kubectl {
        Kubectl::new(&self.bin, kubeconfig)
    }

    /// The kubeconfig it uses.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Runs `kubectl ARGS` with `stdin`, returning stdout; a non-zero exit is
    /// an error carrying stderr.
    pub async fn run_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Outcome<String> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let what = format!("kubectl {}", args.join(" "));
        let mut child = cmd.spawn().context(format!("cannot run {what}"))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input)
                .await
                .context(format!("cannot write to {what}"))?;
            drop(pipe);
        }
        let out = child
            .wait_with_output()
            .await
            .context(format!("cannot run {what}"))?;
        if out.status.success() {
            String::from_utf8(out.stdout).context(format!("{what} printed no UTF-8"))
        } else {
            Err(format!(
                "{what} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Runs `kubectl ARGS`.
    pub async fn run(&self, args: &[&str]) -> Outcome<String> {
        self.run_with(args, None).await
    }

    /// Runs `kubectl ARGS -o json` and parses what it prints.
    pub async fn json(&self, args: &[&str]) -> Outcome<Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let text = self.run(&all).await?;
        serde_json::from_str(&text).context(format!("kubectl {} printed no JSON", args.join(" ")))
    }

    /// The object `kind/name` (in `namespace`, if namespaced), or `None`
    /// when it does not exist.
    pub async fn get(
        &self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Outcome<Option<Value>> {
        let mut args = vec!["get", kind, name, "--ignore-not-found", "-o", "json"];
        if let Some(ns) = namespace {
            args.extend(["-n", ns]);
        }
        let text = self.run(&args).await?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&text)
            .map(Some)
            .context(format!("kubectl get {kind} {name} printed no JSON"))
    }

    /// Every `kind` in `namespace` (all namespaces: `None`) whose fields
    /// match `selector` (a `--field-selector`, or empty).
    pub async fn list(
        &self,
        kind: &str,
        namespace: Option<&str>,
        selector: &str,
    ) -> Outcome<Vec<Value>> {
        let mut args = vec!["get", kind];
        match namespace {
            Some(ns) => args.extend(["-n", ns]),
            None => args.push("--all-namespaces"),
        }
        if !selector.is_empty() {
            args.extend(["--field-selector", selector]);
        }
        let list = self.json(&args).await?;
        Ok(list["items"].as_array().cloned().unwrap_or_default())
    }

    /// `kubectl apply` of `objects` (server-side apply is not needed: the
    /// tier owns every object it applies), with `extra` arguments such as
    /// `--dry-run=server`.
    pub async fn apply(&self, objects: &[Value], extra: &[&str]) -> Outcome<String> {
        let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
        let mut args = vec!["apply", "-f", "-"];
        args.extend(extra);
        self.run_with(&args, Some(list.to_string().as_bytes()))
            .await
    }

    /// `kubectl delete kind/name` without waiting for finalizers; a missing
    /// object is not an error.
    pub async fn delete(&self, kind: &str, namespace: Option<&str>, name: &str) -> Outcome {
        let mut args = vec!["delete", kind, name, "--ignore-not-found", "--wait=false"];
        if let Some(ns) = namespace {
            args.extend(["-n", ns]);
        }
        self.run(&args).await.map(|_| ())
    }

    /// A token of the ServiceAccount `namespace/name`, as kubelet would
    /// project into its pods (`kubectl create token`).
    pub async fn create_token(&self, namespace: &str, name: &str) -> Outcome<String> {
        let token = self
            .run(&["create", "token", name, "-n", namespace, "--duration=4h"])
            .await?;
        Ok(token.trim().to_owned())
    }

    /// The events about the object `kind/name` in `namespace`, oldest first.
    pub async fn events(&self, namespace: &str, kind: &str, name: &str) -> Outcome<Vec<Value>> {
        let selector = format!("involvedObject.kind={kind},involvedObject.name={name}");
        let mut events = self.list("events", Some(namespace), &selector).await?;
        events.sort_by(|a, b| {
            let t = |e: &Value| e["lastTimestamp"].as_str().unwrap_or("").to_owned();
            t(a).cmp(&t(b))
        });
        Ok(events)
    }
}

/// `reason: message` of every event, one per line, for reports.
pub fn describe_events(events: &[Value]) -> String {
    if events.is_empty() {
        return "no events".to_owned();
    }
    events
        .iter()
        .map(|e| {
            format!(
                "{} {}: {}",
                e["type"].as_str().unwrap_or("?"),
                e["reason"].as_str().unwrap_or("?"),
                e["message"].as_str().unwrap_or("").trim()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubeconfig_names_server_ca_token_and_namespace() {
        let c = kubeconfig(
            "https://127.0.0.1:6443",
            Path::new("/x/ca.crt"),
            "sa",
            "tok",
            "rds-csi",
        );
        assert_eq!(
            c["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            c["clusters"][0]["cluster"]["certificate-authority"],
            "/x/ca.crt"
        );
        assert_eq!(c["users"][0]["user"]["token"], "tok");
        assert_eq!(c["contexts"][0]["context"]["namespace"], "rds-csi");
        assert_eq!(c["current-context"], "k8s-e2e");
    }

    #[test]
    fn the_kubeconfig_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        write_kubeconfig(&path, &json!({"a": 1})).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), r#"{"a":1}"#);
    }

    #[test]
    fn events_are_described_on_one_line() {
        let events = vec![
            json!({"type": "Warning", "reason": "ProvisioningFailed", "message": "bad\n"}),
            json!({"type": "Normal", "reason": "Provisioning", "message": "started"}),
        ];
        assert_eq!(
            describe_events(&events),
            "Warning ProvisioningFailed: bad; Normal Provisioning: started"
        );
        assert_eq!(describe_events(&[]), "no events");
    }
}
