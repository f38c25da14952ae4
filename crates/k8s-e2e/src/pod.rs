//! A pod without a kubelet: the containers of a pod template as processes
//! on this machine, with their environment, volumes and ServiceAccount token
//! taken from the API server as kubelet would take them.
//!
//! Each container runs in a UTS namespace of its own whose host name is the
//! pod's name (`unshare --uts`), because the sidecars' leader election
//! takes its identity from the host name: two replicas on one machine would
//! otherwise both believe they lead. Volumes are folders under the pod's
//! folder; the rules for arguments are in [`crate::template`].

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::control_plane::{ControlPlane, Tools};
use crate::http;
use crate::kubectl::Kubectl;
use crate::ports::free_port;
use crate::process::Process;
use crate::support::{Context, Outcome, PATIENCE, wait_for};
use crate::template::{
    self, Container, EnvFrom, EnvSource, PodTemplate, Role, Volume, expand, mount_folders,
    rewrite_arg,
};

/// What starting a pod needs from the tier.
#[derive(Debug, Clone, Copy)]
pub struct Host<'a> {
    /// The control plane (for ServiceAccount tokens).
    pub control_plane: &'a ControlPlane,
    /// The Go tools.
    pub tools: &'a Tools,
    /// The `rds-csi-plugin` binary under test.
    pub plugin: &'a Path,
    /// The node name the downward API gives (`spec.nodeName`).
    pub node: &'a str,
}

/// A container running as a process.
#[derive(Debug)]
pub struct RunningContainer {
    /// Its name in the template.
    pub name: String,
    /// What runs it.
    pub role: Role,
    /// The process.
    pub process: Process,
    /// Where it serves HTTP (`--http-endpoint`), if it does.
    pub http: Option<SocketAddr>,
    /// The CSI socket it serves (`--endpoint=unix://…`), if it names one.
    pub socket: Option<PathBuf>,
}

/// A running pod. Dropping it stops every container.
#[derive(Debug)]
pub struct Pod {
    /// Its name (and every container's host name).
    pub name: String,
    /// Its folder: volumes, kubeconfig, logs.
    pub dir: PathBuf,
    /// The containers that run, in the template's order.
    pub containers: Vec<RunningContainer>,
    /// The containers that do not run here, and why.
    pub not_run: Vec<(String, &'static str)>,
}

impl Pod {
    /// The container named `name`.
    pub fn container(&self, name: &str) -> Option<&RunningContainer> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The plugin container (the first one of role [`Role::Plugin`]).
    pub fn plugin(&self) -> Outcome<&RunningContainer> {
        self.containers
            .iter()
            .find(|c| c.role == Role::Plugin)
            .context(format!("pod {} runs no plugin", self.name))
    }

    /// Fails if a container stopped.
    pub fn ensure_running(&mut self) -> Outcome {
        self.containers
            .iter_mut()
            .try_for_each(|c| c.process.ensure_running())
    }

    /// Stops every container, sidecars first (as kubelet would signal all
    /// at once; sidecars first keeps the plugin answering while they let go
    /// of their leases).
    pub async fn stop(&mut self) {
        for c in self.containers.iter_mut().rev() {
            c.process.stop().await;
        }
    }

    /// `GET path` from the plugin's HTTP endpoint.
    pub async fn plugin_http(&self, path: &str) -> Outcome<(u16, String)> {
        let addr = self
            .plugin()?
            .http
            .context(format!("the plugin of pod {} serves no HTTP", self.name))?;
        http::get(addr, path).await
    }
}

/// The API objects a pod's environment and volumes read, fetched once.
struct Objects<'a> {
    admin: &'a Kubectl,
    namespace: String,
    cache: HashMap<(String, String), BTreeMap<String, String>>,
}

impl Objects<'_> {
    /// The data of a ConfigMap or Secret (decoded), by kind and name.
    async fn data(&mut self, kind: &str, name: &str) -> Outcome<&BTreeMap<String, String>> {
        let id = (kind.to_owned(), name.to_owned());
        if !self.cache.contains_key(&id) {
            let object = self
                .admin
                .get(kind, Some(&self.namespace), name)
                .await?
                .context(format!(
                    "{kind} {}/{name} does not exist (a pod would not start)",
                    self.namespace
                ))?;
            let data = decode_data(kind, &object)?;
            self.cache.insert(id.clone(), data);
        }
        self.cache.get(&id).context("the cache lost an entry")
    }

    async fn key(&mut self, kind: &str, name: &str, key: &str) -> Outcome<String> {
        let data = self.data(kind, name).await?;
        data.get(key).cloned().context(format!(
            "{kind} {name} has no key {key} (a pod would not start)"
        ))
    }
}

/// The data of a ConfigMap (as it is) or a Secret (base64-decoded).
pub fn decode_data(kind: &str, object: &Value) -> Outcome<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (k, v) in object["data"].as_object().into_iter().flatten() {
        let text = v.as_str().unwrap_or_default();
        let value = if kind == "secret" || kind == "Secret" {
            let bytes = STANDARD
                .decode(text)
                .context(format!("the Secret's key {k} is not base64"))?;
            String::from_utf8(bytes).context(format!("the Secret's key {k} is not text"))?
        } else {
            text.to_owned()
        };
        out.insert(k.clone(), value);
    }
    Ok(out)
}

/// Starts the pod `name` of `pod` under `dir`: the plugin containers first,
/// once each serves `/healthz` the sidecars (which give up when no CSI
/// socket answers within seconds).
pub async fn start(pod: &PodTemplate, name: &str, dir: &Path, host: Host<'_>) -> Outcome<Pod> {
    std::fs::create_dir_all(dir).context(format!("cannot create {}", dir.display()))?;
    let admin = &host.control_plane.admin;
    let mut objects = Objects {
        admin,
        namespace: pod.namespace.clone(),
        cache: HashMap::new(),
    };
    let volumes = make_volumes(pod, dir, &mut objects).await?;
    let mut running = Pod {
        name: name.to_owned(),
        dir: dir.to_path_buf(),
        containers: Vec::new(),
        not_run: Vec::new(),
    };
    let mut kubeconfig = None;
    let mut ordered: Vec<(&Container, Role)> = Vec::new();
    for c in &pod.containers {
        match template::role_of(&c.image)? {
            Role::NotRun(why) => running.not_run.push((c.name.clone(), why)),
            role => ordered.push((c, role)),
        }
    }
    // Plugins first.
    ordered.sort_by_key(|(_, role)| !matches!(role, Role::Plugin));
    let mut plugins_checked = false;
    for (c, role) in ordered {
        if matches!(role, Role::Sidecar(_)) && !plugins_checked {
            for p in &running.containers {
                wait_healthy(p).await?;
            }
            plugins_checked = true;
        }
        if matches!(role, Role::Sidecar(_)) && kubeconfig.is_none() {
            if !pod.automount_token {
                return Err(format!(
                    "container {} talks to the API server, but the pod mounts no token",
                    c.name
                ));
            }
            let sa = host
                .control_plane
                .service_account(dir, &pod.namespace, &pod.service_account)
                .await?;
            kubeconfig = Some(sa.kubeconfig().to_path_buf());
        }
        let env = environment(c, pod, name, host.node, &mut objects).await?;
        let mounts = mount_folders(c, &volumes)?;
        let mut http = None;
        let mut socket = None;
        let mut args = Vec::new();
        for arg in &c.args {
            let (arg, port) = rewrite_arg(&expand(arg, &env), &mounts, &mut free_port)?;
            if let Some(p) = port {
                http = Some(SocketAddr::from(([127, 0, 0, 1], p)));
            }
            if let Some(path) = arg.strip_prefix("--endpoint=unix://") {
                socket = Some(PathBuf::from(path));
            }
            args.push(arg);
        }
        let program = match &role {
            Role::Plugin => {
                if let Some(first) = c.command.first()
                    && template::image_name(first) != "rds-csi-plugin"
                {
                    return Err(format!(
                        "container {} runs {first}, not rds-csi-plugin; the tier cannot run that",
                        c.name
                    ));
                }
                host.plugin.to_path_buf()
            }
            Role::Sidecar(tool) => {
                if !c.command.is_empty() {
                    return Err(format!("container {} overrides its command", c.name));
                }
                let path = kubeconfig.as_ref().context("no kubeconfig was made")?;
                args.push(format!("--kubeconfig={}", path.display()));
                let extra = template::in_cluster_args(&args, &pod.namespace);
                args.extend(extra);
                host.tools.path(tool)?
            }
            Role::NotRun(_) => continue,
        };
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--uts",
            "--",
            "sh",
            "-c",
            "hostname \"$0\" && exec \"$@\"",
            name,
        ])
        .arg(&program)
        .args(&args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(&env);
        let log = dir.join("logs").join(format!("{}.log", c.name));
        let process = Process::spawn(&format!("{name}/{}", c.name), cmd, &log)?;
        running.containers.push(RunningContainer {
            name: c.name.clone(),
            role,
            process,
            http,
            socket,
        });
    }
    Ok(running)
}

/// Waits until a plugin container serves `/healthz` and has bound its CSI
/// socket (with neither known: a moment for it to start).
async fn wait_healthy(c: &RunningContainer) -> Outcome {
    if c.http.is_none() && c.socket.is_none() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        return Ok(());
    }
    let name = c.process.name().to_owned();
    wait_for(
        &format!("{name} to serve /healthz and bind its socket"),
        PATIENCE,
        || async move {
            let healthy = match c.http {
                Some(addr) => matches!(http::get(addr, "/healthz").await, Ok((200, _))),
                None => true,
            };
            let bound = c.socket.as_ref().is_none_or(|s| s.exists());
            Ok((healthy && bound).then_some(()))
        },
        || async { c.process.log_tail(10) },
    )
    .await
}

/// Every volume some container mounts, made under `dir/volumes`.
async fn make_volumes(
    pod: &PodTemplate,
    dir: &Path,
    objects: &mut Objects<'_>,
) -> Outcome<BTreeMap<String, PathBuf>> {
    let mounted: std::collections::BTreeSet<&str> = pod
        .containers
        .iter()
        .filter(|c| !matches!(template::role_of(&c.image), Ok(Role::NotRun(_))))
        .flat_map(|c| c.mounts.iter().map(|m| m.volume.as_str()))
        .collect();
    let mut out = BTreeMap::new();
    for (name, volume) in &pod.volumes {
        if !mounted.contains(name.as_str()) {
            continue;
        }
        let here = dir.join("volumes").join(name);
        // A pod started again under the same name is a new pod: its volumes
        // start empty (no socket of the plugin that ran before).
        if here.exists() {
            std::fs::remove_dir_all(&here).context(format!("cannot empty {}", here.display()))?;
        }
        std::fs::create_dir_all(&here).context(format!("cannot create {}", here.display()))?;
        match volume {
            Volume::EmptyDir => {}
            Volume::Secret {
                name: secret,
                items,
                mode,
            } => {
                let data = objects.data("secret", secret).await?.clone();
                let files: Vec<(String, String)> = if items.is_empty() {
                    data.keys().map(|k| (k.clone(), k.clone())).collect()
                } else {
                    items.clone()
                };
                for (key, path) in files {
                    let value = data.get(&key).context(format!(
                        "Secret {secret} has no key {key} (volume {name} would not mount)"
                    ))?;
                    let file = template::secret_file(&here, &path)?;
                    write_mode(&file, value, *mode)?;
                }
            }
            Volume::Other(kind) => {
                return Err(format!(
                    "volume {name} is a {kind}, which the tier does not emulate"
                ));
            }
        }
        out.insert(name.clone(), here);
    }
    Ok(out)
}

fn write_mode(path: &Path, text: &str, mode: u32) -> Outcome {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).context(format!("cannot create {}", parent.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .context(format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())
        .context(format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .context(format!("cannot set the mode of {}", path.display()))
}

/// A container's environment, as kubelet builds it: `envFrom` first, then
/// `env` in order (each may refer to those before it).
async fn environment(
    c: &Container,
    pod: &PodTemplate,
    name: &str,
    node: &str,
    objects: &mut Objects<'_>,
) -> Outcome<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    for from in &c.env_from {
        let data = match from {
            EnvFrom::ConfigMap(n) => objects.data("configmap", n).await?,
            EnvFrom::Secret(n) => objects.data("secret", n).await?,
        };
        env.extend(data.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    for (var, source) in &c.env {
        let value = match source {
            EnvSource::Value(v) => expand(v, &env),
            EnvSource::Field(path) => template::field(path, name, pod, node)?,
            EnvSource::ConfigMapKey { name, key } => objects.key("configmap", name, key).await?,
            EnvSource::SecretKey { name, key } => objects.key("secret", name, key).await?,
        };
        env.insert(var.clone(), value);
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_decoded_and_config_maps_are_not() {
        let secret = json!({"data": {"id": "a2V5", "host-key": "U0hBMjU2Ong="}});
        let d = decode_data("secret", &secret).unwrap();
        assert_eq!(d["id"], "key");
        assert_eq!(d["host-key"], "SHA256:x");
        let map = json!({"data": {"RDS_ADDRESS": "a2V5"}});
        assert_eq!(
            decode_data("configmap", &map).unwrap()["RDS_ADDRESS"],
            "a2V5"
        );
        assert!(decode_data("secret", &json!({"data": {"x": "!!"}})).is_err());
        assert!(decode_data("secret", &json!({})).unwrap().is_empty());
    }

    #[test]
    fn files_get_their_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a/id");
        write_mode(&f, "secret", 0o440).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "secret");
        let mode = std::fs::metadata(&f).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o440);
    }
}
