//! A pod template as kubelet reads it, and the few rules by which the tier
//! turns one of its containers into a process on this machine. Pure: the
//! API objects it needs (ConfigMaps, Secrets) are passed in.
//!
//! A container runs with the arguments of the manifest. Only what cannot
//! be the same outside a container is rewritten, always the same way:
//! - a path under a volume's mount path (`/csi/csi.sock`,
//!   `/etc/rds-csi/ssh/id`) becomes the same path under the folder that
//!   stands for that volume;
//! - a listen address (`--http-endpoint=:9810`, `--metrics-address`)
//!   becomes a free loopback port, since every pod shares this machine's
//!   network;
//! - a container that talks to the API server gets `--kubeconfig` with its
//!   ServiceAccount's token (a container gets it mounted at a fixed path,
//!   which a process cannot have), and, if it elects a leader without naming
//!   the Lease's namespace, `--leader-election-namespace` with the pod's
//!   (which client-go reads from the same mounted files);
//! - `$(VAR)` is expanded from the container's environment, as kubelet does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{Context, Outcome};

/// Where an environment variable's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSource {
    /// `value:`.
    Value(String),
    /// `valueFrom.fieldRef.fieldPath`.
    Field(String),
    /// `valueFrom.configMapKeyRef`.
    ConfigMapKey {
        /// The ConfigMap.
        name: String,
        /// Its key.
        key: String,
    },
    /// `valueFrom.secretKeyRef`.
    SecretKey {
        /// The Secret.
        name: String,
        /// Its key.
        key: String,
    },
}

/// `envFrom:` (prefixes are not used by our manifests, and refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvFrom {
    /// Every key of a ConfigMap.
    ConfigMap(String),
    /// Every key of a Secret.
    Secret(String),
}

/// A volume mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The volume's name.
    pub volume: String,
    /// Where the container sees it.
    pub path: String,
}

/// A volume of the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Volume {
    /// `emptyDir`: a fresh folder.
    EmptyDir,
    /// `secret`: the Secret's keys (or the listed ones) as files.
    Secret {
        /// The Secret.
        name: String,
        /// `key → path`, empty for every key under its own name.
        items: Vec<(String, String)>,
        /// The files' mode (`defaultMode`, else 0644).
        mode: u32,
    },
    /// Anything else (hostPath, projected, ...), which the tier does not
    /// emulate: a controller pod has no business with the host.
    Other(String),
}

/// A container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Its name.
    pub name: String,
    /// Its image (`registry/path/name:tag`).
    pub image: String,
    /// `command:` (the image's entrypoint when empty).
    pub command: Vec<String>,
    /// `args:`.
    pub args: Vec<String>,
    /// `env:`, in order.
    pub env: Vec<(String, EnvSource)>,
    /// `envFrom:`.
    pub env_from: Vec<EnvFrom>,
    /// `volumeMounts:`.
    pub mounts: Vec<Mount>,
}

/// A pod template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodTemplate {
    /// The workload's namespace.
    pub namespace: String,
    /// `serviceAccountName`.
    pub service_account: String,
    /// `automountServiceAccountToken` (default true).
    pub automount_token: bool,
    /// The containers, in order (init containers are not run).
    pub containers: Vec<Container>,
    /// The volumes by name.
    pub volumes: BTreeMap<String, Volume>,
    /// `spec.replicas` of a Deployment (1 when absent).
    pub replicas: usize,
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(text).collect())
        .unwrap_or_default()
}

/// Reads the pod template of a Deployment (or DaemonSet) object.
pub fn parse_workload(workload: &Value) -> Outcome<PodTemplate> {
    let name = workload["metadata"]["name"].as_str().unwrap_or("?");
    let spec = &workload["spec"]["template"]["spec"];
    let mut containers = Vec::new();
    for c in spec["containers"].as_array().into_iter().flatten() {
        containers.push(parse_container(c).context(format!("workload {name}"))?);
    }
    let mut volumes = BTreeMap::new();
    for v in spec["volumes"].as_array().into_iter().flatten() {
        let vname = text(&v["name"]).context(format!("workload {name}: a volume has no name"))?;
        let volume = if v.get("emptyDir").is_some() {
            Volume::EmptyDir
        } else if let Some(s) = v.get("secret") {
            let items = s["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| Some((text(&i["key"])?, text(&i["path"])?)))
                .collect();
            Volume::Secret {
                name: text(&s["secretName"])
                    .context(format!("workload {name}: volume {vname} names no Secret"))?,
                items,
                mode: s["defaultMode"]
                    .as_u64()
                    .and_then(|m| u32::try_from(m).ok())
                    .unwrap_or(0o644),
            }
        } else {
            let kind = v
                .as_object()
                .and_then(|o| o.keys().find(|k| *k != "name").cloned())
                .unwrap_or_default();
            Volume::Other(kind)
        };
        volumes.insert(vname, volume);
    }
    Ok(PodTemplate {
        namespace: text(&workload["metadata"]["namespace"]).unwrap_or_else(|| "default".into()),
        service_account: text(&spec["serviceAccountName"]).unwrap_or_else(|| "default".into()),
        automount_token: spec["automountServiceAccountToken"]
            .as_bool()
            .unwrap_or(true),
        containers,
        volumes,
        replicas: workload["spec"]["replicas"]
            .as_u64()
            .and_then(|r| usize::try_from(r).ok())
            .unwrap_or(1),
    })
}

fn parse_container(c: &Value) -> Outcome<Container> {
    let name = text(&c["name"]).context("a container has no name")?;
    let mut env = Vec::new();
    for e in c["env"].as_array().into_iter().flatten() {
        let var = text(&e["name"]).context(format!("container {name}: env without a name"))?;
        let from = &e["valueFrom"];
        let source = if let Some(v) = e.get("value") {
            EnvSource::Value(text(v).unwrap_or_default())
        } else if let Some(f) = text(&from["fieldRef"]["fieldPath"]) {
            EnvSource::Field(f)
        } else if let Some(r) = from.get("configMapKeyRef") {
            EnvSource::ConfigMapKey {
                name: text(&r["name"]).unwrap_or_default(),
                key: text(&r["key"]).unwrap_or_default(),
            }
        } else if let Some(r) = from.get("secretKeyRef") {
            EnvSource::SecretKey {
                name: text(&r["name"]).unwrap_or_default(),
                key: text(&r["key"]).unwrap_or_default(),
            }
        } else {
            return Err(format!(
                "container {name}: env {var} has a source the tier does not know: {e}"
            ));
        };
        env.push((var, source));
    }
    let mut env_from = Vec::new();
    for f in c["envFrom"].as_array().into_iter().flatten() {
        if f.get("prefix").is_some() {
            return Err(format!(
                "container {name}: envFrom with a prefix is not emulated"
            ));
        }
        if let Some(n) = text(&f["configMapRef"]["name"]) {
            env_from.push(EnvFrom::ConfigMap(n));
        } else if let Some(n) = text(&f["secretRef"]["name"]) {
            env_from.push(EnvFrom::Secret(n));
        } else {
            return Err(format!(
                "container {name}: an envFrom the tier does not know: {f}"
            ));
        }
    }
    let mounts = c["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            Some(Mount {
                volume: text(&m["name"])?,
                path: text(&m["mountPath"])?,
            })
        })
        .collect();
    Ok(Container {
        image: text(&c["image"]).context(format!("container {name} has no image"))?,
        command: strings(&c["command"]),
        args: strings(&c["args"]),
        name,
        env,
        env_from,
        mounts,
    })
}

/// What runs a container here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Our plugin (`rds-csi-plugin`).
    Plugin,
    /// A sidecar built by `scripts/go-tools` under this name, which talks
    /// to the API server.
    Sidecar(String),
    /// A container that has no binary here, and why.
    NotRun(&'static str),
}

/// The image's name without registry, path and tag: `csi-provisioner` for
/// `registry.k8s.io/sig-storage/csi-provisioner:v6.3.0`.
pub fn image_name(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split(':').next().unwrap_or(last)
}

/// The image's tag (`v6.3.0`), if it has one.
pub fn image_tag(image: &str) -> Option<&str> {
    let last = image.rsplit('/').next()?;
    last.split_once(':').map(|(_, tag)| tag)
}

/// Which binary runs a container of `image`.
pub fn role_of(image: &str) -> Outcome<Role> {
    Ok(match image_name(image) {
        "rds-csi-plugin" => Role::Plugin,
        tool @ ("csi-provisioner"
        | "csi-resizer"
        | "csi-attacher"
        | "csi-snapshotter"
        | "snapshot-controller") => Role::Sidecar(tool.to_owned()),
        "livenessprobe" | "csi-node-driver-registrar" => {
            Role::NotRun("its Go module is not served by the module proxy (kubelet's side)")
        }
        other => {
            return Err(format!(
                "no binary for the image {image} ({other}): add it to scripts/go-tools and to \
                 k8s-e2e's template::role_of"
            ));
        }
    })
}

/// Expands `$(VAR)` from `env` as kubelet does: `$$` is a literal `$`, and
/// a reference to an unknown variable is left as it is.
pub fn expand(input: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some(value) = env.get(&inner[..end])
        {
            out.push_str(value);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// `value` with a leading mount path replaced by its folder here (the
/// longest matching mount wins); a `unix://` prefix is kept.
pub fn rewrite_path(value: &str, mounts: &[(String, PathBuf)]) -> String {
    let (scheme, path) = match value.strip_prefix("unix://") {
        Some(p) => ("unix://", p),
        None => ("", value),
    };
    let best = mounts
        .iter()
        .filter(|(at, _)| {
            let at = at.trim_end_matches('/');
            path == at || path.strip_prefix(at).is_some_and(|r| r.starts_with('/'))
        })
        .max_by_key(|(at, _)| at.len());
    match best {
        Some((at, here)) => {
            let rest = path[at.trim_end_matches('/').len()..].trim_start_matches('/');
            let joined = if rest.is_empty() {
                here.clone()
            } else {
                here.join(rest)
            };
            format!("{scheme}{}", joined.display())
        }
        None => value.to_owned(),
    }
}

/// Flags whose value is an address to listen on.
pub const LISTEN_FLAGS: &[&str] = &["--http-endpoint", "--metrics-address"];

/// One argument rewritten: paths under mounts, and a listen address to
/// `127.0.0.1:port` with a port from `port` (reported as the second value).
pub fn rewrite_arg(
    arg: &str,
    mounts: &[(String, PathBuf)],
    port: &mut dyn FnMut() -> Outcome<u16>,
) -> Outcome<(String, Option<u16>)> {
    if let Some((flag, value)) = arg.split_once('=') {
        if LISTEN_FLAGS.contains(&flag) && !value.is_empty() {
            let p = port()?;
            return Ok((format!("{flag}=127.0.0.1:{p}"), Some(p)));
        }
        return Ok((format!("{flag}={}", rewrite_path(value, mounts)), None));
    }
    Ok((rewrite_path(arg, mounts), None))
}

/// What a sidecar in a pod finds without a flag and a process here does
/// not: leader election in the pod's namespace, which client-go reads from
/// the ServiceAccount files every pod has mounted (a process falls back to
/// `default`, where its RBAC may give it no Lease). So when `args` turn
/// leader election on (Go's `--leader-election` or `=true`, `=1`, `=t`)
/// without naming its namespace, `--leader-election-namespace=NAMESPACE`.
pub fn in_cluster_args(args: &[String], namespace: &str) -> Vec<String> {
    let flags = || args.iter().filter_map(|a| go_flag(a));
    let elects = flags().any(|(name, value)| {
        name == "leader-election" && matches!(value, "true" | "TRUE" | "True" | "t" | "T" | "1")
    });
    let named = flags().any(|(name, _)| name == "leader-election-namespace");
    if elects && !named {
        vec![format!("--leader-election-namespace={namespace}")]
    } else {
        Vec::new()
    }
}

/// A Go flag argument as name and value (`true` for a bare boolean flag);
/// `None` for an argument that is not a flag.
fn go_flag(arg: &str) -> Option<(&str, &str)> {
    let arg = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    Some(arg.split_once('=').unwrap_or((arg, "true")))
}

/// The value of the field `path` of the pod `pod` (the downward API).
pub fn field(path: &str, pod: &str, template: &PodTemplate, node: &str) -> Outcome<String> {
    Ok(match path {
        "metadata.namespace" => template.namespace.clone(),
        "metadata.name" => pod.to_owned(),
        "spec.nodeName" => node.to_owned(),
        "spec.serviceAccountName" => template.service_account.clone(),
        "status.podIP" | "status.hostIP" => "127.0.0.1".to_owned(),
        other => return Err(format!("the downward API field {other} is not emulated")),
    })
}

/// The folder standing for each of a container's mounts, given each
/// volume's folder.
pub fn mount_folders(
    c: &Container,
    volumes: &BTreeMap<String, PathBuf>,
) -> Outcome<Vec<(String, PathBuf)>> {
    c.mounts
        .iter()
        .map(|m| {
            let here = volumes.get(&m.volume).context(format!(
                "container {} mounts {}, which is not a volume the tier made",
                c.name, m.volume
            ))?;
            Ok((m.path.clone(), here.clone()))
        })
        .collect()
}

/// The path inside a volume's folder where a Secret key's file goes.
pub fn secret_file(volume_dir: &Path, item_path: &str) -> Outcome<PathBuf> {
    let p = Path::new(item_path);
    if p.is_absolute()
        || p.components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(format!(
            "a Secret item path {item_path:?} that leaves its volume"
        ));
    }
    Ok(volume_dir.join(p))
}

#[cfg(test)]
mod tests;
