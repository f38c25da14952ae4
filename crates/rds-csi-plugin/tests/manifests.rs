//! The Kubernetes manifests under `deploy/` against the plugin itself: every
//! overlay is rendered with `kubectl kustomize`, and its objects are checked
//! with the plugin's own flag parser ([`Args`], [`PluginConfig::from_args`]),
//! the capabilities the driver advertises, the StorageClass parameter parser
//! ([`VolumeParams::parse`]) and the HTTP endpoint's real routes.
//!
//! `kubectl` must be installed (Debian: `kubernetes-client`; `.ci/run`
//! installs it): without it these tests fail, they never pass by skipping.
//! `scripts/check-manifests` validates the same renderings against the
//! Kubernetes API schemas.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use clap::{CommandFactory, Parser};
use csi_driver::VolumeParams;
use csi_driver::params::{FsType, keys};
use csi_proto::v1::controller_service_capability::rpc::Type as ControllerCap;
use csi_proto::v1::node_service_capability::rpc::Type as NodeCap;
use rds_csi_plugin::config::{Args, Mode, PluginConfig};
use serde::Deserialize;
use serde_norway::Value;

/// The node name the downward API would give (`spec.nodeName`).
const NODE_NAME: &str = "node-1";

/// What a Secret holds in a real installation, for the keys the manifests
/// read from one: Secrets are the user's, and the example's are placeholders.
const SECRET_STAND_INS: &[(&str, &str)] = &[(
    "RDS_HOST_KEY",
    "SHA256:pSY43iobEtHIjSVi8+waoU065/b6K2/LlQ7Bs1g8BFY",
)];

/// The StorageClass parameters external-provisioner consumes itself (with
/// the `csi.storage.k8s.io/` prefix) and does not pass to the driver; any
/// other key with that prefix makes it refuse the class.
const PROVISIONER_KEYS: &[&str] = &[
    "csi.storage.k8s.io/fstype",
    "csi.storage.k8s.io/provisioner-secret-name",
    "csi.storage.k8s.io/provisioner-secret-namespace",
    "csi.storage.k8s.io/controller-expand-secret-name",
    "csi.storage.k8s.io/controller-expand-secret-namespace",
    "csi.storage.k8s.io/node-stage-secret-name",
    "csi.storage.k8s.io/node-stage-secret-namespace",
    "csi.storage.k8s.io/node-publish-secret-name",
    "csi.storage.k8s.io/node-publish-secret-namespace",
    "csi.storage.k8s.io/node-expand-secret-name",
    "csi.storage.k8s.io/node-expand-secret-namespace",
];

/// The VolumeSnapshotClass parameters external-snapshotter consumes itself
/// and does not pass to CreateSnapshot.
const SNAPSHOTTER_KEYS: &[&str] = &[
    "csi.storage.k8s.io/snapshotter-secret-name",
    "csi.storage.k8s.io/snapshotter-secret-namespace",
    "csi.storage.k8s.io/snapshotter-list-secret-name",
    "csi.storage.k8s.io/snapshotter-list-secret-namespace",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn overlay_dirs() -> Vec<PathBuf> {
    let dir = repo_root().join("deploy/overlays");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("kustomization.yaml").is_file())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no overlays in {}", dir.display());
    dirs
}

/// Renders `dir` with `kubectl kustomize`, failing (never skipping) when
/// kubectl is missing.
fn render(dir: &Path) -> Vec<Value> {
    let output = match Command::new("kubectl").arg("kustomize").arg(dir).output() {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "kubectl is not installed, and these tests need it to render {}: install it \
             (Debian/Ubuntu: apt-get install kubernetes-client; .ci/run does)",
            dir.display()
        ),
        Err(e) => panic!("running kubectl kustomize {}: {e}", dir.display()),
    };
    assert!(
        output.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    parse_documents(&String::from_utf8(output.stdout).unwrap())
}

fn parse_documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path).and_then(Value::as_str)
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(*key))
}

fn list<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn strings(v: &Value, path: &[&str]) -> Vec<String> {
    list(v, path)
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

/// A string-to-string map (ConfigMap data, StorageClass parameters).
fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    let Some(map) = v.and_then(Value::as_mapping) else {
        return BTreeMap::new();
    };
    map.iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                other => serde_norway::to_string(other).unwrap().trim().to_owned(),
            };
            (k.as_str().unwrap().to_owned(), value)
        })
        .collect()
}

/// The rendered objects of one overlay.
struct Objects {
    name: String,
    all: Vec<Value>,
}

impl Objects {
    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.all
            .iter()
            .filter(|o| s(o, &["kind"]) == Some(kind))
            .collect()
    }

    fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.of_kind(kind)
            .into_iter()
            .find(|o| s(o, &["metadata", "name"]) == Some(name))
    }
}

/// Everything found wrong, so that one run shows all of it.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }
}

/// The plugin container of a workload, as the plugin will see it.
struct PluginContainer<'a> {
    workload: String,
    pod: &'a Value,
    container: &'a Value,
    config: PluginConfig,
}

fn is_plugin_image(container: &Value) -> bool {
    let image = s(container, &["image"]).unwrap_or_default();
    let name = image.rsplit('/').next().unwrap_or_default();
    name == "rds-csi-plugin"
        || name.starts_with("rds-csi-plugin:")
        || name.starts_with("rds-csi-plugin@")
}

/// Each flag's environment variable, and whether the flag takes a value.
fn env_flags() -> HashMap<String, (String, bool)> {
    Args::command()
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_str()?.to_owned();
            let long = arg.get_long()?.to_owned();
            Some((env, (long, arg.get_action().takes_values())))
        })
        .collect()
}

/// Expands `$(VAR)` as the kubelet does in `args`; an unknown reference is
/// a problem (the kubelet would leave it as it is).
fn expand(arg: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find(')')
            .ok_or_else(|| format!("unclosed $( in {arg:?}"))?;
        let name = &after[..end];
        let value = env.get(name).ok_or_else(|| {
            format!("{arg:?} refers to $({name}), which the container does not set")
        })?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The container's environment as the kubelet builds it: `envFrom` first,
/// then `env`, which wins.
fn container_env(
    objects: &Objects,
    namespace: &str,
    container: &Value,
    problems: &mut Problems,
) -> BTreeMap<String, String> {
    let cname = s(container, &["name"]).unwrap_or_default();
    let mut env = BTreeMap::new();
    for source in list(container, &["envFrom"]) {
        if let Some(name) = s(source, &["configMapRef", "name"]) {
            match objects.find("ConfigMap", name) {
                Some(cm) => env.extend(string_map(cm.get("data"))),
                None => problems.0.push(format!(
                    "{cname}: envFrom ConfigMap {name} is not among the rendered objects"
                )),
            }
        } else {
            problems
                .0
                .push(format!("{cname}: unexpected envFrom {source:?}"));
        }
    }
    for var in list(container, &["env"]) {
        let name = s(var, &["name"]).unwrap().to_owned();
        let value = if let Some(value) = s(var, &["value"]) {
            value.to_owned()
        } else if let Some(field) = s(var, &["valueFrom", "fieldRef", "fieldPath"]) {
            match field {
                "spec.nodeName" => NODE_NAME.to_owned(),
                "metadata.namespace" => namespace.to_owned(),
                other => {
                    problems
                        .0
                        .push(format!("{cname}: ${name} from unexpected field {other}"));
                    continue;
                }
            }
        } else if let Some(secret) = get(var, &["valueFrom", "secretKeyRef"]) {
            let (sname, key) = (s(secret, &["name"]).unwrap(), s(secret, &["key"]).unwrap());
            if let Some(obj) = objects.find("Secret", sname) {
                let keys: BTreeSet<String> = string_map(obj.get("stringData"))
                    .into_keys()
                    .chain(string_map(obj.get("data")).into_keys())
                    .collect();
                problems.check(keys.contains(key), || {
                    format!(
                        "{cname}: ${name} reads key {key} of Secret {sname}, which has {keys:?}"
                    )
                });
            }
            match SECRET_STAND_INS.iter().find(|(n, _)| *n == name) {
                Some((_, v)) => (*v).to_owned(),
                None => {
                    problems
                        .0
                        .push(format!("{cname}: no stand-in for ${name} from a Secret"));
                    continue;
                }
            }
        } else {
            problems.0.push(format!(
                "{cname}: ${name} has no value this test understands"
            ));
            continue;
        };
        env.insert(name, value);
    }
    env
}

/// Parses the plugin container's command line and environment exactly as
/// the plugin does.
fn plugin_config(
    objects: &Objects,
    namespace: &str,
    container: &Value,
    problems: &mut Problems,
) -> Option<PluginConfig> {
    let env = container_env(objects, namespace, container, problems);
    let flags = env_flags();
    let mut argv: Vec<OsString> = vec!["rds-csi-plugin".into()];
    // The environment first, so that args (after it) win, as they do over
    // environment variables in the plugin.
    for (name, value) in &env {
        match flags.get(name) {
            Some((long, true)) => argv.push(format!("--{long}={value}").into()),
            Some((long, false)) => {
                if matches!(value.as_str(), "true" | "1" | "yes" | "on") {
                    argv.push(format!("--{long}").into());
                }
            }
            None => problems.0.push(format!(
                "the plugin container sets ${name}, which is no flag's variable (misspelt?)"
            )),
        }
    }
    for arg in strings(container, &["args"]) {
        match expand(&arg, &env) {
            Ok(arg) => argv.push(arg.into()),
            Err(e) => problems.0.push(e),
        }
    }
    problems.check(list(container, &["command"]).is_empty(), || {
        "the plugin container overrides the image's entrypoint".to_owned()
    });
    let args = match Args::try_parse_from(&argv) {
        Ok(args) => args,
        Err(e) => {
            problems
                .0
                .push(format!("the plugin does not accept {argv:?}:\n{e}"));
            return None;
        }
    };
    match PluginConfig::from_args(&args) {
        Ok(config) => Some(config),
        Err(e) => {
            problems.0.push(format!("the plugin refuses {argv:?}: {e}"));
            None
        }
    }
}

fn pod_spec(workload: &Value) -> &Value {
    get(workload, &["spec", "template", "spec"]).unwrap()
}

fn containers(pod: &Value) -> &[Value] {
    list(pod, &["containers"])
}

fn volume<'a>(pod: &'a Value, name: &str) -> Option<&'a Value> {
    list(pod, &["volumes"])
        .iter()
        .find(|v| s(v, &["name"]) == Some(name))
}

/// The volume mounted at `path` in `container`, with its mount.
fn mount_at<'a>(
    pod: &'a Value,
    container: &'a Value,
    path: &Path,
) -> Option<(&'a Value, &'a Value)> {
    let mount = list(container, &["volumeMounts"])
        .iter()
        .find(|m| s(m, &["mountPath"]).map(Path::new) == Some(path))?;
    Some((mount, volume(pod, s(mount, &["name"])?)?))
}

/// The value of `--flag=value` (or `--flag value`) among `args`.
fn flag(args: &[String], name: &str) -> Option<String> {
    let eq = format!("--{name}=");
    let bare = format!("--{name}");
    args.iter().enumerate().find_map(|(i, a)| {
        if let Some(v) = a.strip_prefix(&eq) {
            Some(v.to_owned())
        } else if *a == bare {
            Some(args.get(i + 1).cloned().unwrap_or_default())
        } else {
            None
        }
    })
}

fn has_flag(args: &[String], name: &str) -> bool {
    let bare = format!("--{name}");
    args.iter()
        .any(|a| *a == bare || a.starts_with(&format!("{bare}=")) && !a.ends_with("=false"))
}

fn port_of_endpoint(endpoint: &str) -> Option<u16> {
    endpoint.rsplit(':').next()?.parse().ok()
}

/// The container port a probe's `port` (a name or a number) means.
fn probe_port(container: &Value, probe: &Value) -> Option<u16> {
    let port = get(probe, &["httpGet", "port"])?;
    if let Some(n) = port.as_u64() {
        return u16::try_from(n).ok();
    }
    let name = port.as_str()?;
    list(container, &["ports"])
        .iter()
        .find(|p| s(p, &["name"]) == Some(name))
        .and_then(|p| get(p, &["containerPort"])?.as_u64())
        .and_then(|n| u16::try_from(n).ok())
}

/// Checks one workload's plugin container and sidecars.
fn check_workload<'a>(
    objects: &'a Objects,
    workload: &'a Value,
    problems: &mut Problems,
) -> Option<PluginContainer<'a>> {
    let wname = format!(
        "{} {}",
        s(workload, &["kind"]).unwrap(),
        s(workload, &["metadata", "name"]).unwrap()
    );
    let namespace = s(workload, &["metadata", "namespace"]).unwrap_or("default");
    let pod = pod_spec(workload);
    let plugins: Vec<&Value> = containers(pod)
        .iter()
        .filter(|c| is_plugin_image(c))
        .collect();
    if plugins.len() != 1 {
        problems.0.push(format!(
            "{wname}: {} plugin containers, not 1",
            plugins.len()
        ));
        return None;
    }
    let container = plugins[0];
    let mut local = Problems::default();
    let config = plugin_config(objects, namespace, container, &mut local);
    problems
        .0
        .extend(local.0.into_iter().map(|p| format!("{wname}: {p}")));
    let config = config?;

    // The HTTP endpoint, and the probes on its routes.
    match config.http_endpoint {
        None => problems
            .0
            .push(format!("{wname}: the plugin serves no HTTP endpoint")),
        Some(addr) => {
            for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
                let Some(p) = container.get(probe) else {
                    problems
                        .0
                        .push(format!("{wname}: the plugin has no {probe}"));
                    continue;
                };
                problems.check(s(p, &["httpGet", "path"]) == Some(path), || {
                    format!("{wname}: {probe} is not GET {path}: {p:?}")
                });
                problems.check(probe_port(container, p) == Some(addr.port()), || {
                    format!(
                        "{wname}: {probe}'s port is not --http-endpoint's {}: {p:?}",
                        addr.port()
                    )
                });
            }
        }
    }

    // The gRPC socket: the plugin's --endpoint, in a volume the sidecars
    // mount at the same place and name as --csi-address.
    let socket = config.socket.clone();
    let socket_dir = socket.parent().unwrap();
    let Some((_, socket_volume)) = mount_at(pod, container, socket_dir) else {
        problems.0.push(format!(
            "{wname}: no volume is mounted at {} for the socket",
            socket_dir.display()
        ));
        return None;
    };
    let socket_volume_name = s(socket_volume, &["name"]).unwrap();
    let mut ports: BTreeMap<u16, String> = BTreeMap::new();
    for c in containers(pod) {
        let cname = s(c, &["name"]).unwrap();
        for p in list(c, &["ports"]) {
            let n = get(p, &["containerPort"]).and_then(Value::as_u64).unwrap() as u16;
            if let Some(other) = ports.insert(n, cname.to_owned()) {
                problems
                    .0
                    .push(format!("{wname}: port {n} declared by {other} and {cname}"));
            }
        }
        if std::ptr::eq(c, container) {
            continue;
        }
        let args = strings(c, &["args"]);
        let Some(address) = flag(&args, "csi-address") else {
            problems
                .0
                .push(format!("{wname}: sidecar {cname} has no --csi-address"));
            continue;
        };
        let address = address.strip_prefix("unix://").unwrap_or(&address);
        problems.check(Path::new(address) == socket, || {
            format!(
                "{wname}: {cname} --csi-address={address}, but the plugin listens on {}",
                socket.display()
            )
        });
        let mounted = mount_at(pod, c, socket_dir)
            .is_some_and(|(_, v)| s(v, &["name"]) == Some(socket_volume_name));
        problems.check(mounted, || {
            format!(
                "{wname}: {cname} does not mount volume {socket_volume_name} at {}",
                socket_dir.display()
            )
        });
        // The sidecars' own HTTP ports: explicit, and distinct (the
        // livenessprobe's default 9808 is what other drivers' node pods use
        // on the host's network).
        if let Some(endpoint) = flag(&args, "http-endpoint") {
            let port = port_of_endpoint(&endpoint);
            problems.check(port.is_some(), || {
                format!("{wname}: {cname} --http-endpoint={endpoint} has no port")
            });
            if let Some(port) = port {
                let declared = list(c, &["ports"]).iter().any(|p| {
                    get(p, &["containerPort"]).and_then(Value::as_u64) == Some(u64::from(port))
                });
                if !declared && let Some(other) = ports.insert(port, cname.to_owned()) {
                    problems
                        .0
                        .push(format!("{wname}: port {port} used by {other} and {cname}"));
                }
            }
        } else {
            problems.check(
                !s(c, &["image"])
                    .unwrap_or_default()
                    .contains("/livenessprobe:"),
                || format!("{wname}: {cname} listens on its default port: give --http-endpoint"),
            );
        }
    }
    if let Some(addr) = config.http_endpoint {
        problems.check(
            ports.get(&addr.port()).map(String::as_str) == s(container, &["name"]),
            || {
                format!(
                    "{wname}: --http-endpoint port {} is not the plugin's declared port ({ports:?})",
                    addr.port()
                )
            },
        );
    }
    Some(PluginContainer {
        workload: wname,
        pod,
        container,
        config,
    })
}

fn host_path(volume: &Value) -> Option<&str> {
    s(volume, &["hostPath", "path"])
}

/// The node plugin's host directories.
fn check_node(node: &PluginContainer<'_>, driver: &str, problems: &mut Problems) {
    let PluginContainer {
        workload,
        pod,
        container,
        config,
    } = node;
    problems.check(config.mode == Mode::Node, || {
        format!(
            "{workload}: the plugin's mode is {:?}, not node",
            config.mode
        )
    });
    problems.check(config.node_id.as_deref() == Some(NODE_NAME), || {
        format!("{workload}: --node-id is not the downward API's spec.nodeName")
    });
    problems.check(
        get(pod, &["hostNetwork"]).and_then(Value::as_bool) == Some(true),
        || format!("{workload}: not in the host's network (NVMe/TCP connections are the host's)"),
    );
    problems.check(
        get(container, &["securityContext", "privileged"]).and_then(Value::as_bool) == Some(true),
        || format!("{workload}: the node plugin must be privileged"),
    );
    let node_cfg = config.node.as_ref().unwrap();
    let host_dir =
        |path: &Path, want: &str, read_only: bool, problems: &mut Problems| match mount_at(
            pod, container, path,
        ) {
            None => problems
                .0
                .push(format!("{workload}: nothing mounted at {}", path.display())),
            Some((mount, volume)) => {
                problems.check(host_path(volume) == Some(want), || {
                    format!("{workload}: {} is not the host's {want}", path.display())
                });
                let ro = get(mount, &["readOnly"]).and_then(Value::as_bool) == Some(true);
                problems.check(ro == read_only, || {
                    format!(
                        "{workload}: {} readOnly should be {read_only}",
                        path.display()
                    )
                });
            }
        };
    let root = &node_cfg.host_root;
    host_dir(&root.join("dev"), "/dev", false, problems);
    host_dir(&root.join("sys"), "/sys", false, problems);
    host_dir(&node_cfg.etc_nvme, "/etc/nvme", true, problems);
    host_dir(&node_cfg.state_dir, "/var/lib/rds-csi", false, problems);
    host_dir(
        Path::new("/var/lib/kubelet"),
        "/var/lib/kubelet",
        false,
        problems,
    );
    let kubelet = mount_at(pod, container, Path::new("/var/lib/kubelet"));
    problems.check(
        kubelet.is_some_and(|(m, _)| s(m, &["mountPropagation"]) == Some("Bidirectional")),
        || format!("{workload}: /var/lib/kubelet must be mounted with Bidirectional propagation"),
    );
    // The socket where kubelet looks for it, registered under the driver's name.
    let socket_dir = config.socket.parent().unwrap();
    let plugin_dir = format!("/var/lib/kubelet/plugins/{driver}");
    let socket_host = mount_at(pod, container, socket_dir).and_then(|(_, v)| host_path(v));
    problems.check(socket_host == Some(plugin_dir.as_str()), || {
        format!("{workload}: the socket's folder is {socket_host:?} on the host, not {plugin_dir}")
    });
    let Some(registrar) = containers(pod).iter().find(|c| {
        s(c, &["image"])
            .unwrap_or_default()
            .contains("/csi-node-driver-registrar:")
    }) else {
        problems
            .0
            .push(format!("{workload}: no node-driver-registrar"));
        return;
    };
    let args = strings(registrar, &["args"]);
    let file = config.socket.file_name().unwrap().to_str().unwrap();
    let want = format!("{plugin_dir}/{file}");
    problems.check(
        flag(&args, "kubelet-registration-path").as_deref() == Some(want.as_str()),
        || format!("{workload}: --kubelet-registration-path is not {want}"),
    );
    let registration =
        mount_at(pod, registrar, Path::new("/registration")).and_then(|(_, v)| host_path(v));
    problems.check(
        registration == Some("/var/lib/kubelet/plugins_registry"),
        || format!("{workload}: the registrar's /registration is {registration:?}"),
    );
}

/// The controller: its sidecars for what it advertises, and its SSH key.
fn check_controller(controller: &PluginContainer<'_>, workload: &Value, problems: &mut Problems) {
    let PluginContainer {
        workload: wname,
        pod,
        container,
        config,
    } = controller;
    problems.check(config.mode == Mode::Controller, || {
        format!(
            "{wname}: the plugin's mode is {:?}, not controller",
            config.mode
        )
    });
    let replicas = get(workload, &["spec", "replicas"]).and_then(Value::as_u64);
    problems.check(replicas == Some(2), || {
        format!("{wname}: {replicas:?} replicas, not 2")
    });
    let caps = csi_driver::controller::CAPABILITIES;
    for (cap, image) in [
        (ControllerCap::CreateDeleteVolume, "/csi-provisioner:"),
        (ControllerCap::PublishUnpublishVolume, "/csi-attacher:"),
        (ControllerCap::ExpandVolume, "/csi-resizer:"),
        (ControllerCap::CreateDeleteSnapshot, "/csi-snapshotter:"),
    ] {
        let sidecar = containers(pod)
            .iter()
            .find(|c| s(c, &["image"]).unwrap_or_default().contains(image));
        if !caps.contains(&cap) {
            // csi-snapshotter, for one, exits at start when the driver
            // does not advertise what it is for: the pod would crash-loop.
            problems.check(sidecar.is_none(), || {
                format!(
                    "{wname}: {} runs, but the controller does not advertise {cap:?}",
                    image.trim_matches(['/', ':'])
                )
            });
            continue;
        }
        match sidecar {
            None => problems.0.push(format!(
                "{wname}: the controller advertises {cap:?} but has no {image}"
            )),
            Some(c) => problems.check(has_flag(&strings(c, &["args"]), "leader-election"), || {
                format!("{wname}: {image} runs without --leader-election beside 2 replicas")
            }),
        }
    }
    // The key file, from a Secret volume.
    let rds = &config.controller.as_ref().unwrap().rds;
    let key = &rds.private_key;
    match mount_at(pod, container, key.parent().unwrap()) {
        None => problems.0.push(format!(
            "{wname}: nothing is mounted where --rds-private-key={} is",
            key.display()
        )),
        Some((_, volume)) => {
            let file = key.file_name().unwrap().to_str().unwrap();
            let items = list(volume, &["secret", "items"]);
            problems.check(volume.get("secret").is_some(), || {
                format!("{wname}: the key's folder is not a Secret volume")
            });
            problems.check(
                items.is_empty() || items.iter().any(|i| s(i, &["path"]) == Some(file)),
                || format!("{wname}: the Secret volume has no item at {file}"),
            );
        }
    }
    let user = get(pod, &["securityContext", "runAsUser"]).and_then(Value::as_u64);
    problems.check(user.is_some_and(|u| u != 0), || {
        format!("{wname}: the controller should not run as root ({user:?})")
    });
}

/// What the controller's ServiceAccount may do, from every ClusterRole bound
/// to it: `(API group, resource) -> verbs`.
fn controller_permissions(
    objects: &Objects,
    pod: &Value,
) -> BTreeMap<(String, String), BTreeSet<String>> {
    let account = s(pod, &["serviceAccountName"]).unwrap_or("default");
    let mut granted: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for binding in objects.of_kind("ClusterRoleBinding") {
        let bound = list(binding, &["subjects"]).iter().any(|subject| {
            s(subject, &["kind"]) == Some("ServiceAccount")
                && s(subject, &["name"]) == Some(account)
        });
        if !bound || s(binding, &["roleRef", "kind"]) != Some("ClusterRole") {
            continue;
        }
        let Some(role) = objects.find("ClusterRole", s(binding, &["roleRef", "name"]).unwrap())
        else {
            continue;
        };
        for rule in list(role, &["rules"]) {
            for group in strings(rule, &["apiGroups"]) {
                for resource in strings(rule, &["resources"]) {
                    granted
                        .entry((group.clone(), resource))
                        .or_default()
                        .extend(strings(rule, &["verbs"]));
                }
            }
        }
    }
    granted
}

/// The controller's sidecars may do what the driver's capabilities make
/// them do. For PUBLISH_UNPUBLISH_VOLUME: what external-attacher v4.12.0's
/// own rbac.yaml grants it, and the provisioner's watch of attachments.
fn check_controller_rbac(objects: &Objects, pod: &Value, problems: &mut Problems) {
    let caps = csi_driver::controller::CAPABILITIES;
    if !caps.contains(&ControllerCap::PublishUnpublishVolume) {
        return;
    }
    let granted = controller_permissions(objects, pod);
    let needed: [(&str, &str, &[&str]); 4] = [
        ("", "persistentvolumes", &["get", "list", "watch", "patch"]),
        ("storage.k8s.io", "csinodes", &["get", "list", "watch"]),
        (
            "storage.k8s.io",
            "volumeattachments",
            &["get", "list", "watch", "patch"],
        ),
        ("storage.k8s.io", "volumeattachments/status", &["patch"]),
    ];
    for (group, resource, verbs) in needed {
        let has = granted.get(&(group.to_owned(), resource.to_owned()));
        let missing: Vec<&str> = verbs
            .iter()
            .copied()
            .filter(|v| !has.is_some_and(|h| h.contains(*v)))
            .collect();
        problems.check(missing.is_empty(), || {
            format!("the controller's ServiceAccount may not {missing:?} {resource}, which csi-attacher needs")
        });
    }
}

/// The CSIDriver against what the plugin advertises.
fn check_csidriver(objects: &Objects, driver: &str, problems: &mut Problems) {
    let drivers = objects.of_kind("CSIDriver");
    problems.check(drivers.len() == 1, || {
        format!("{} CSIDriver objects, not 1", drivers.len())
    });
    let Some(d) = drivers.first() else { return };
    problems.check(s(d, &["metadata", "name"]) == Some(driver), || {
        format!("the CSIDriver is not named {driver}, the plugin's --driver-name")
    });
    let attach_required =
        csi_driver::controller::CAPABILITIES.contains(&ControllerCap::PublishUnpublishVolume);
    let spec = d.get("spec").unwrap();
    let b = |key: &str| get(spec, &[key]).and_then(Value::as_bool);
    problems.check(b("attachRequired") == Some(attach_required), || {
        format!(
            "CSIDriver attachRequired is {:?}, but the controller {} PUBLISH_UNPUBLISH_VOLUME",
            b("attachRequired"),
            if attach_required {
                "advertises"
            } else {
                "does not advertise"
            }
        )
    });
    problems.check(b("podInfoOnMount") == Some(true), || {
        "podInfoOnMount".into()
    });
    problems.check(b("requiresRepublish") == Some(false), || {
        "requiresRepublish".into()
    });
    problems.check(s(spec, &["fsGroupPolicy"]) == Some("File"), || {
        "fsGroupPolicy".into()
    });
    problems.check(
        strings(spec, &["volumeLifecycleModes"]) == ["Persistent"],
        || "volumeLifecycleModes should be [Persistent] (no ephemeral volumes)".into(),
    );
}

/// Every StorageClass of the driver, through the controller's own parser
/// with the controller's defaults.
fn check_storage_classes(
    objects: &Objects,
    driver: &str,
    controller: &PluginConfig,
    problems: &mut Problems,
) -> usize {
    let defaults = &controller.controller.as_ref().unwrap().defaults;
    let expands = csi_driver::controller::CAPABILITIES.contains(&ControllerCap::ExpandVolume)
        && csi_driver::node::CAPABILITIES.contains(&NodeCap::ExpandVolume);
    let mut count = 0;
    for class in objects.of_kind("StorageClass") {
        if s(class, &["provisioner"]) != Some(driver) {
            continue;
        }
        count += 1;
        let name = s(class, &["metadata", "name"]).unwrap();
        let mut params: HashMap<String, String> =
            string_map(class.get("parameters")).into_iter().collect();
        // What external-provisioner does: it takes its own keys out (and
        // refuses unknown ones with its prefix), then adds the PVC's and
        // PV's names (--extra-create-metadata).
        for key in params
            .keys()
            .filter(|k| k.starts_with("csi.storage.k8s.io/"))
        {
            problems.check(PROVISIONER_KEYS.contains(&key.as_str()), || {
                format!("StorageClass {name}: external-provisioner refuses {key}")
            });
        }
        if let Some(fs) = params.get("csi.storage.k8s.io/fstype") {
            problems.check(FsType::parse(fs).is_ok(), || {
                format!("StorageClass {name}: the node cannot make filesystem {fs:?}")
            });
        }
        // An encrypted class gets its key only from a node-stage secret,
        // and grows its volumes only with a node-expand one.
        if params.contains_key(keys::ENCRYPTION) {
            for secret in ["node-stage", "node-expand"] {
                for part in ["name", "namespace"] {
                    let key = format!("csi.storage.k8s.io/{secret}-secret-{part}");
                    problems.check(params.contains_key(&key), || {
                        format!(
                            "StorageClass {name}: encryption without {key}: the node would \
                             have no passphrase"
                        )
                    });
                }
            }
        }
        params.retain(|k, _| !PROVISIONER_KEYS.contains(&k.as_str()));
        for (key, value) in [
            (keys::PVC_NAME, "data"),
            (keys::PVC_NAMESPACE, "default"),
            (keys::PV_NAME, "pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1aa00"),
        ] {
            params.insert(key.to_owned(), value.to_owned());
        }
        if let Err(e) = VolumeParams::parse(&params, defaults) {
            problems.0.push(format!(
                "StorageClass {name}: the controller refuses it: {e}"
            ));
        }
        let allow = get(class, &["allowVolumeExpansion"]).and_then(Value::as_bool);
        problems.check(allow == Some(expands), || {
            format!(
                "StorageClass {name}: allowVolumeExpansion {allow:?}, but expansion is {expands}"
            )
        });
        problems.check(s(class, &["reclaimPolicy"]) == Some("Delete"), || {
            format!("StorageClass {name}: reclaimPolicy is not Delete")
        });
        problems.check(
            s(class, &["volumeBindingMode"]) == Some("WaitForFirstConsumer"),
            || format!("StorageClass {name}: volumeBindingMode is not WaitForFirstConsumer"),
        );
    }
    count
}

/// The VolumeSnapshotClasses against the controller: there is one for the
/// driver exactly when it takes snapshots, and CreateSnapshot's own check
/// accepts its parameters as the snapshotter passes them.
fn check_snapshot_classes(objects: &Objects, driver: &str, problems: &mut Problems) {
    let snapshots =
        csi_driver::controller::CAPABILITIES.contains(&ControllerCap::CreateDeleteSnapshot);
    let classes = objects.of_kind("VolumeSnapshotClass");
    problems.check(!snapshots || !classes.is_empty(), || {
        "the controller advertises CREATE_DELETE_SNAPSHOT, but no VolumeSnapshotClass is installed"
            .into()
    });
    for class in classes {
        let name = s(class, &["metadata", "name"]).unwrap_or("?");
        problems.check(snapshots, || {
            format!(
                "VolumeSnapshotClass {name}: the controller does not advertise CREATE_DELETE_SNAPSHOT"
            )
        });
        problems.check(s(class, &["driver"]) == Some(driver), || {
            format!(
                "VolumeSnapshotClass {name} names the driver {:?}, not {driver}",
                s(class, &["driver"])
            )
        });
        let mut params: HashMap<String, String> =
            string_map(class.get("parameters")).into_iter().collect();
        params.retain(|k, _| !SNAPSHOTTER_KEYS.contains(&k.as_str()));
        if let Err(e) = csi_driver::snapshots::check_parameters(&params) {
            problems.0.push(format!(
                "VolumeSnapshotClass {name}: CreateSnapshot refuses it: {e}"
            ));
        }
        let policy = s(class, &["deletionPolicy"]);
        problems.check(matches!(policy, Some("Delete" | "Retain")), || {
            format!("VolumeSnapshotClass {name}: deletionPolicy {policy:?}")
        });
    }
}

/// Everything wrong with one overlay's objects.
fn problems_of(objects: &Objects) -> Vec<String> {
    let mut problems = Problems::default();
    let deployments = objects.of_kind("Deployment");
    let daemonsets = objects.of_kind("DaemonSet");
    problems.check(deployments.len() == 1 && daemonsets.len() == 1, || {
        format!(
            "{} Deployments and {} DaemonSets, not one of each",
            deployments.len(),
            daemonsets.len()
        )
    });
    let (Some(deployment), Some(daemonset)) = (deployments.first(), daemonsets.first()) else {
        return problems.0;
    };
    let controller = check_workload(objects, deployment, &mut problems);
    let node = check_workload(objects, daemonset, &mut problems);
    let mut driver = None;
    if let Some(c) = &controller {
        check_controller(c, deployment, &mut problems);
        driver = Some(c.config.driver_name.clone());
    }
    if let Some(n) = &node {
        if let Some(d) = &driver {
            problems.check(*d == n.config.driver_name, || {
                format!(
                    "the controller is driver {d}, the node {}",
                    n.config.driver_name
                )
            });
        }
        let d = driver
            .get_or_insert_with(|| n.config.driver_name.clone())
            .clone();
        check_node(n, &d, &mut problems);
    }
    if let Some(c) = &controller {
        check_controller_rbac(objects, c.pod, &mut problems);
    }
    if let Some(d) = &driver {
        check_csidriver(objects, d, &mut problems);
        check_snapshot_classes(objects, d, &mut problems);
        if let Some(c) = &controller {
            let classes = check_storage_classes(objects, d, &c.config, &mut problems);
            problems.check(classes >= 3, || {
                format!("{classes} StorageClasses of {d}, expected ext4, xfs and block ones")
            });
        }
    }
    problems.0
}

fn rendered_overlays() -> Vec<Objects> {
    overlay_dirs()
        .into_iter()
        .map(|dir| Objects {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            all: render(&dir),
        })
        .collect()
}

#[test]
fn every_overlay_matches_the_plugin() {
    let mut report = String::new();
    for objects in rendered_overlays() {
        for p in problems_of(&objects) {
            report.push_str(&format!("deploy/overlays/{}: {p}\n", objects.name));
        }
    }
    assert!(report.is_empty(), "{report}");
}

#[test]
fn the_check_finds_what_is_wrong() {
    // The checks are not vacuous: each of these edits of a good rendering
    // is reported.
    let good = rendered_overlays().into_iter().next().unwrap();
    assert_eq!(problems_of(&good), Vec::<String>::new());
    type Edit = fn(&mut Value);
    fn plugin_of(o: &mut Value) -> &mut Value {
        let containers = o
            .get_mut("spec")
            .and_then(|v| v.get_mut("template"))
            .and_then(|v| v.get_mut("spec"))
            .and_then(|v| v.get_mut("containers"))
            .unwrap();
        containers
            .as_sequence_mut()
            .unwrap()
            .iter_mut()
            .find(|c| is_plugin_image(c))
            .unwrap()
    }
    fn push_arg(o: &mut Value, arg: &str) {
        plugin_of(o)
            .get_mut("args")
            .unwrap()
            .as_sequence_mut()
            .unwrap()
            .push(Value::String(arg.into()));
    }
    let edits: [(&str, &str, Edit, &str); 11] = [
        (
            "Deployment",
            "an unknown flag",
            |o| push_arg(o, "--rds-adress=10.0.0.1"),
            "does not accept",
        ),
        (
            "Deployment",
            "a refused value",
            |o| push_arg(o, "--default-fs-type=btrfs"),
            "--default-fs-type",
        ),
        (
            "Deployment",
            "another HTTP port",
            |o| push_arg(o, "--http-endpoint=:9999"),
            "livenessProbe's port",
        ),
        (
            "DaemonSet",
            "another socket",
            |o| push_arg(o, "--endpoint=unix:///other/csi.sock"),
            "socket",
        ),
        (
            "DaemonSet",
            "no node name",
            |o| {
                let env = plugin_of(o)
                    .get_mut("env")
                    .unwrap()
                    .as_sequence_mut()
                    .unwrap();
                env.clear();
            },
            "$(NODE_ID)",
        ),
        (
            "CSIDriver",
            "attachRequired",
            |o| {
                o.get_mut("spec")
                    .unwrap()
                    .as_mapping_mut()
                    .unwrap()
                    .insert("attachRequired".into(), Value::Bool(false));
            },
            "attachRequired",
        ),
        (
            "StorageClass",
            "a misspelt parameter",
            |o| {
                o.as_mapping_mut().unwrap().insert(
                    "parameters".into(),
                    serde_norway::from_str("{nvmeAdress: 10.0.0.9}").unwrap(),
                );
            },
            "refuses",
        ),
        (
            "Deployment",
            "no attacher",
            |o| {
                o.get_mut("spec")
                    .and_then(|v| v.get_mut("template"))
                    .and_then(|v| v.get_mut("spec"))
                    .and_then(|v| v.get_mut("containers"))
                    .and_then(Value::as_sequence_mut)
                    .unwrap()
                    .retain(|c| {
                        !s(c, &["image"])
                            .unwrap_or_default()
                            .contains("/csi-attacher:")
                    });
            },
            "no /csi-attacher:",
        ),
        (
            "ClusterRole",
            "the attacher may not mark attachments attached",
            |o| {
                if let Some(rules) = o.get_mut("rules").and_then(Value::as_sequence_mut) {
                    rules.retain(|r| {
                        !strings(r, &["resources"])
                            .iter()
                            .any(|x| x == "volumeattachments/status")
                    });
                }
            },
            "volumeattachments/status",
        ),
        (
            "VolumeSnapshotClass",
            "another driver",
            |o| {
                o.as_mapping_mut()
                    .unwrap()
                    .insert("driver".into(), "other.csi.example.com".into());
            },
            "names the driver",
        ),
        (
            "VolumeSnapshotClass",
            "a parameter",
            |o| {
                o.as_mapping_mut().unwrap().insert(
                    "parameters".into(),
                    serde_norway::from_str("{fastCopy: \"yes\"}").unwrap(),
                );
            },
            "CreateSnapshot refuses it",
        ),
    ];
    for (kind, what, edit, expect) in edits {
        let mut all = good.all.clone();
        // Every object of the kind is edited (there may be several).
        for target in all.iter_mut().filter(|o| s(o, &["kind"]) == Some(kind)) {
            edit(target);
        }
        let problems = problems_of(&Objects {
            name: good.name.clone(),
            all,
        });
        assert!(
            problems.iter().any(|p| p.contains(expect)),
            "{what}: expected a problem with {expect:?}, got {problems:#?}"
        );
    }
}

/// The paths the probes use are routes of the plugin's HTTP endpoint.
#[tokio::test]
async fn probe_paths_are_routes_of_the_http_endpoint() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut paths = BTreeSet::new();
    for objects in rendered_overlays() {
        for w in objects
            .of_kind("Deployment")
            .into_iter()
            .chain(objects.of_kind("DaemonSet"))
        {
            for c in containers(pod_spec(w))
                .iter()
                .filter(|c| is_plugin_image(c))
            {
                for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                    if let Some(path) = c.get(probe).and_then(|p| s(p, &["httpGet", "path"])) {
                        paths.insert(path.to_owned());
                    }
                }
            }
        }
    }
    assert!(
        paths.contains("/healthz") && paths.contains("/readyz"),
        "{paths:?}"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let health = telemetry::http::Health::new();
    let metrics = Arc::new(telemetry::metrics::Metrics::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(telemetry::http::serve(listener, metrics, health, async {
        let _ = stopped.await;
    }));
    for path in paths.iter().map(String::as_str).chain(["/not-a-route"]) {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).await.unwrap();
        let status = response.split(' ').nth(1).unwrap_or_default();
        if path == "/not-a-route" {
            assert_eq!(status, "404", "the check can tell a missing route");
        } else {
            assert!(
                status == "200" || status == "503",
                "GET {path}: {}",
                response.lines().next().unwrap_or_default()
            );
        }
    }
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
