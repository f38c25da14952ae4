//! The doctor's judgements: from what was observed to a [`Check`], with the
//! fix a user can act on. No I/O here; the `probe` module observes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nvme_host::{HostNqnSource, NvmeError};
use rds_client::HostKeyPolicy;
use routeros::{FileType, MountedPool, Pool, RdsPath, SystemResource, Version};

use super::{Check, name};

/// Why a TCP connection could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpFailure {
    /// The name did not resolve.
    Resolve(String),
    /// Nothing listens there (the connection was refused).
    Refused,
    /// No answer within the time given.
    TimedOut(Duration),
    /// Anything else (no route, network down, …).
    Other(String),
}

/// `host:port`, with brackets around an IPv6 address.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A byte count for people: `1.5 TiB`, `512 MiB`, `0 B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut unit = 0;
    let mut scaled = bytes;
    while scaled >= 1024 && unit + 1 < UNITS.len() {
        scaled /= 1024;
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes} B");
    }
    // One decimal, from the exact count (precision is irrelevant here).
    let value = bytes as f64 / (1u64 << (10 * unit)) as f64;
    format!("{value:.1} {}", UNITS[unit])
}

/// (1) The RDS's SSH port answers.
pub fn ssh_reachable(host: &str, port: u16, seen: &Result<(), TcpFailure>) -> Check {
    let at = host_port(host, port);
    let flags = "--rds-address and --rds-ssh-port";
    match seen {
        Ok(()) => Check::ok(name::SSH_REACHABLE, format!("{at} accepts TCP connections")),
        Err(TcpFailure::Resolve(e)) => Check::fail(
            name::SSH_REACHABLE,
            format!("cannot resolve {host:?}: {e}"),
            format!("check {flags}: give the RDS's IP address or a name this machine resolves"),
        ),
        Err(TcpFailure::Refused) => Check::fail(
            name::SSH_REACHABLE,
            format!("nothing listens on {at} (connection refused)"),
            format!(
                "check {flags}; on the RDS, enable SSH on that port: \
                 /ip service set ssh disabled=no port={port}"
            ),
        ),
        Err(TcpFailure::TimedOut(after)) => Check::fail(
            name::SSH_REACHABLE,
            format!("no answer from {at} within {after:?}"),
            format!(
                "check {flags}, that the RDS is up, and that no firewall between here and the \
                 RDS drops SSH (the RDS's /ip service ssh address list, /ip firewall)"
            ),
        ),
        Err(TcpFailure::Other(e)) => Check::fail(
            name::SSH_REACHABLE,
            format!("cannot connect to {at}: {e}"),
            format!("check {flags} and this machine's network route to the RDS"),
        ),
    }
}

/// What connecting and logging in to the RDS gave.
#[derive(Debug)]
pub struct SshSeen {
    /// `host:port`.
    pub address: String,
    /// The fingerprint of the host key the RDS presented, if it got that far.
    pub presented: Option<String>,
    /// The outcome of connecting and authenticating.
    pub result: Result<(), rds_client::Error>,
}

/// (2) The host key is the pinned one.
pub fn host_key(policy: &HostKeyPolicy, ssh: &SshSeen) -> Check {
    use rds_client::Error;
    let pin_hint = |fp: &str| format!("pin it: --rds-host-key {fp} (or $RDS_HOST_KEY)");
    match (&ssh.result, ssh.presented.as_deref()) {
        (
            Err(Error::HostKeyMismatch {
                actual, expected, ..
            }),
            _,
        ) => Check::fail(
            name::HOST_KEY,
            format!(
                "the RDS at {} presented {actual}, but {expected} is pinned",
                ssh.address
            ),
            format!(
                "if the RDS's key changed on purpose (or the pin is wrong), pin the one it \
                 presents: --rds-host-key {actual} (or $RDS_HOST_KEY); compare it with the RDS's \
                 own first: on the RDS, /ip ssh export-host-key, or here \
                 `ssh-keyscan -p {port} {host} | ssh-keygen -lf -`; if it was not changed, \
                 something else answers at this address",
                port = port_of(&ssh.address),
                host = host_of(&ssh.address),
            ),
        ),
        (_, Some(fp)) if matches!(policy, HostKeyPolicy::InsecureAcceptAny) => Check::skip(
            name::HOST_KEY,
            format!("not checked (--rds-insecure-skip-host-key-check); the RDS presented {fp}"),
        )
        .with_hint(pin_hint(fp)),
        (_, Some(fp)) => Check::ok(
            name::HOST_KEY,
            format!("the RDS presented {fp}, which is pinned"),
        ),
        (Err(e), None) => Check::fail(
            name::HOST_KEY,
            format!("the SSH handshake with {} failed: {e}", ssh.address),
            "check that --rds-address and --rds-ssh-port name the RDS's SSH service (not \
             another service on that port)"
                .to_owned(),
        ),
        (Ok(()), None) => Check::fail(
            name::HOST_KEY,
            format!("connected to {}, but no host key was seen", ssh.address),
            "report this as a bug of rds-csi-plugin".to_owned(),
        ),
    }
}

/// (3) The RDS accepts the driver's key. `public_key` is its OpenSSH line,
/// for `/user ssh-keys import`.
pub fn key_accepted(user: &str, public_key: &str, ssh: &SshSeen) -> Check {
    use rds_client::Error;
    let import = format!(
        "add the public half of --rds-private-key to RouterOS user {user:?}: copy it to the \
         RDS as a file (say driver.pub) and run /user ssh-keys import public-key-file=driver.pub \
         user={user}; the public key is: {public_key}"
    );
    match &ssh.result {
        Ok(()) => Check::ok(
            name::KEY_ACCEPTED,
            format!("logged in as {user:?} with the key of --rds-private-key"),
        ),
        Err(Error::HostKeyMismatch { .. }) => Check::skip(
            name::KEY_ACCEPTED,
            "needs an RDS whose host key is trusted (the host key check failed)",
        ),
        Err(Error::AuthRejected { .. }) => Check::fail(
            name::KEY_ACCEPTED,
            format!("the RDS refused the key of --rds-private-key for user {user:?}"),
            format!("check --rds-user, or {import}"),
        ),
        Err(_) if ssh.presented.is_none() => Check::skip(
            name::KEY_ACCEPTED,
            "needs an SSH handshake with the RDS (the host key check failed)",
        ),
        Err(e) => Check::fail(
            name::KEY_ACCEPTED,
            format!("logging in as {user:?} failed: {e}"),
            format!("check --rds-user and the RDS's SSH settings (/ip ssh), or {import}"),
        ),
    }
}

/// (3), when the key file cannot be used at all.
pub fn key_unusable(path: &Path, error: &rds_client::Error) -> Check {
    Check::fail(
        name::KEY_ACCEPTED,
        error.to_string(),
        format!(
            "give --rds-private-key (or $RDS_PRIVATE_KEY; now {}) a readable, unencrypted \
             ed25519 or RSA private key (OpenSSH or PEM), e.g. one made with \
             `ssh-keygen -t ed25519 -N '' -f rds-csi-key`, and import its public half \
             (rds-csi-key.pub) on the RDS: /user ssh-keys import",
            path.display()
        ),
    )
}

/// (4) RouterOS is new enough.
pub fn routeros_version(seen: &Result<SystemResource, rds_client::Error>) -> Check {
    let resource = match seen {
        Ok(r) => r,
        Err(e) => {
            return Check::fail(
                name::ROUTEROS_VERSION,
                format!("cannot read the version (/system resource print): {e}"),
                "give the RouterOS user at least the read policy (/user group)".to_owned(),
            );
        }
    };
    let board = resource
        .board_name
        .as_deref()
        .map(|b| format!(" on {b}"))
        .unwrap_or_default();
    let missing = routeros::missing_properties(resource.version);
    if missing.is_empty() {
        return Check::ok(
            name::ROUTEROS_VERSION,
            format!(
                "RouterOS {}{board} ({} or newer is needed)",
                resource.version_text,
                short(routeros::MINIMUM_VERSION)
            ),
        );
    }
    let lacks = missing
        .iter()
        .map(|(property, since)| format!("{property} needs {}", short(*since)))
        .collect::<Vec<_>>()
        .join("; ");
    Check::fail(
        name::ROUTEROS_VERSION,
        format!(
            "RouterOS {}{board} is too old: {lacks}",
            resource.version_text
        ),
        format!(
            "upgrade RouterOS on the RDS to {} or newer (/system package update check-for-updates, \
             then install)",
            short(routeros::MINIMUM_VERSION)
        ),
    )
}

/// `7.21` for `7.21.0`, else the whole version.
fn short(v: Version) -> String {
    if v.patch == 0 {
        format!("{}.{}", v.major, v.minor)
    } else {
        v.to_string()
    }
}

/// What the RDS holds at the volume path, and its pools.
#[derive(Debug)]
pub struct VolumePathSeen {
    /// What `/file` holds at the path.
    pub file_type: Result<FileType, rds_client::Error>,
    /// The pool mounted at the path's first segment, read as GetCapacity
    /// reads it.
    pub pool: Result<Pool, rds_client::Error>,
    /// Every pool, for the fix when the path is on none.
    pub pools: Result<Vec<MountedPool>, rds_client::Error>,
}

/// (5) The volume path is a folder on a mounted pool, and how much room
/// the pool has.
pub fn volume_path(path: &RdsPath, seen: &VolumePathSeen) -> Check {
    use rds_client::Error;
    let pool_name = path.pool();
    let list_pools = || match &seen.pools {
        Ok(all) if all.is_empty() => "the RDS has no mounted pool".to_owned(),
        Ok(all) => format!(
            "pools on the RDS: {}",
            all.iter()
                .map(|p| format!("/{} ({} free)", p.mount_point, human_bytes(p.pool.free)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(e) => format!("the pools could not be listed: {e}"),
    };
    let set_flag = "set --volume-path (or $RDS_VOLUME_PATH; a StorageClass's volumePath)";
    let read_policy =
        "give the RouterOS user the read policy (/user group), and check that the RDS answers";
    let found = match &seen.file_type {
        Err(e) => {
            return Check::fail(
                name::VOLUME_PATH,
                format!("cannot look {path} up on the RDS: {e}"),
                read_policy.to_owned(),
            );
        }
        Ok(FileType::Other(kind)) => {
            return Check::fail(
                name::VOLUME_PATH,
                format!("{path} is a {kind}, not a folder"),
                format!("{set_flag} to a folder, or move the {kind} out of the way"),
            );
        }
        Ok(found) => found,
    };
    match (found, &seen.pool) {
        (_, Err(Error::PoolNotFound { .. })) => Check::fail(
            name::VOLUME_PATH,
            if *found == FileType::Missing {
                format!("{path} does not exist: no pool is mounted at /{pool_name}")
            } else {
                format!("{path} exists, but no pool is mounted at /{pool_name}")
            },
            format!(
                "{set_flag} to a folder on a pool, the first segment being the pool's mount \
                 point; {}; then create the folder (/file add type=directory \
                 name=/<pool>/<folder>)",
                list_pools()
            ),
        ),
        (_, Err(e)) => Check::fail(
            name::VOLUME_PATH,
            format!("cannot read the free space of pool /{pool_name}: {e}"),
            read_policy.to_owned(),
        ),
        (FileType::Missing, Ok(pool)) => Check::fail(
            name::VOLUME_PATH,
            format!(
                "{path} does not exist on the RDS (pool /{pool_name} is there, with {} free)",
                human_bytes(pool.free)
            ),
            format!(
                "create the folder on the RDS: /file add type=directory name={path}; or \
                 {set_flag} to an existing folder"
            ),
        ),
        (found, Ok(pool)) => Check::ok(
            name::VOLUME_PATH,
            format!(
                "{path} is a {} on pool /{pool_name}: {} free of {}",
                if *found == FileType::MountPoint {
                    "pool's mount point"
                } else {
                    "folder"
                },
                human_bytes(pool.free),
                human_bytes(pool.size)
            ),
        ),
    }
}

/// (6) The NVMe/TCP port answers.
pub fn nvme_port(host: &str, port: u16, seen: &Result<(), TcpFailure>) -> Check {
    let at = host_port(host, port);
    let flags = "--nvme-address and --nvme-port (a StorageClass's nvmeAddress and nvmePort \
                 override them)";
    match seen {
        Ok(()) => Check::ok(name::NVME_PORT, format!("{at} accepts TCP connections")),
        Err(TcpFailure::Resolve(e)) => Check::fail(
            name::NVME_PORT,
            format!("cannot resolve {host:?}: {e}"),
            format!("check {flags}; nodes connect to an IP address"),
        ),
        Err(TcpFailure::Refused) => Check::fail(
            name::NVME_PORT,
            format!("nothing listens on {at} (connection refused)"),
            format!(
                "check {flags}: they must name the RDS's NVMe/TCP address and the port its disks \
                 are exported on (nvme-tcp-server-port, 4420 by default); the RDS may listen \
                 only while it exports a disk on that port, so on an RDS without volumes yet \
                 this can be expected"
            ),
        ),
        Err(TcpFailure::TimedOut(after)) => Check::fail(
            name::NVME_PORT,
            format!("no answer from {at} within {after:?}"),
            format!(
                "check {flags}, and that no firewall between the nodes and the RDS drops \
                 TCP port {port}"
            ),
        ),
        Err(TcpFailure::Other(e)) => Check::fail(
            name::NVME_PORT,
            format!("cannot connect to {at}: {e}"),
            format!("check {flags} and this machine's network route to the RDS"),
        ),
    }
}

fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

fn port_of(address: &str) -> &str {
    address.rsplit_once(':').map_or("22", |(_, p)| p)
}

/// What the kernel side of NVMe/TCP looks like under the host root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSeen {
    /// `--host-root`.
    pub host_root: PathBuf,
    /// `<root>/sys/module/nvme_tcp` exists.
    pub loaded: bool,
    /// The running kernel's release (`<root>/proc/sys/kernel/osrelease`).
    pub release: Option<String>,
    /// Whether `modules.dep` or `modules.builtin` of that release lists
    /// `nvme-tcp`; `None` when neither could be read.
    pub available: Option<bool>,
    /// `<root>/dev/nvme-fabrics` exists.
    pub fabrics_device: bool,
}

/// Whether `modules.dep` or `modules.builtin` text lists the `nvme-tcp`
/// module (`kernel/drivers/nvme/host/nvme-tcp.ko[.xz|.zst|.gz]`).
pub fn lists_nvme_tcp(modules: &str) -> bool {
    lists_module(modules, "nvme-tcp")
}

/// Whether `modules.dep` or `modules.builtin` text lists the module `name`
/// (`…/<name>.ko[.xz|.zst|.gz]` as the first path of a line).
pub fn lists_module(modules: &str, name: &str) -> bool {
    let wanted = format!("{name}.ko");
    modules.lines().any(|line| {
        let path = line.split(':').next().unwrap_or_default().trim();
        let file = path.rsplit('/').next().unwrap_or_default();
        ["", ".xz", ".zst", ".gz"]
            .iter()
            .any(|ext| file.strip_suffix(ext) == Some(wanted.as_str()))
    })
}

/// (7) The kernel can do NVMe/TCP.
pub fn kernel(seen: &KernelSeen) -> Check {
    let root = &seen.host_root;
    let at = |p: &str| root.join(p).display().to_string();
    let release = seen.release.as_deref().unwrap_or("$(uname -r)");
    let fabrics = at("dev/nvme-fabrics");
    let module = match (seen.loaded, seen.available) {
        (true, _) => Some("nvme_tcp is loaded".to_owned()),
        (false, Some(true)) => Some(format!(
            "nvme-tcp is installed for kernel {release} (the kernel loads it at the first connect)"
        )),
        _ => None,
    };
    let at_boot = "to load it at every boot: echo nvme-tcp > /etc/modules-load.d/nvme-tcp.conf";
    match (module, seen.fabrics_device) {
        (Some(module), true) => Check::ok(name::KERNEL, format!("{module}; {fabrics} is there")),
        (Some(module), false) => Check::fail(
            name::KERNEL,
            format!("{module}, but {fabrics} is missing (nvme-fabrics is not loaded)"),
            format!(
                "on the node, run modprobe nvme-tcp (it loads nvme-fabrics too); {at_boot}; in a \
                 container, --host-root must be where the host's /dev is mounted"
            ),
        ),
        (None, _) => {
            let why = match (seen.available, &seen.release) {
                (Some(false), _) => format!("and kernel {release} has no such module"),
                (_, None) => format!(
                    "and the running kernel is unknown ({} is unreadable)",
                    at("proc/sys/kernel/osrelease")
                ),
                _ => format!(
                    "and whether kernel {release} has it cannot be seen here ({} is unreadable)",
                    at(&format!("lib/modules/{release}/modules.dep"))
                ),
            };
            Check::fail(
                name::KERNEL,
                format!(
                    "nvme_tcp is not loaded ({} is missing) {why}",
                    at("sys/module/nvme_tcp")
                ),
                format!(
                    "on the node, run modprobe nvme-tcp; {at_boot}. If the module is missing, \
                     install the kernel's modules: Debian: apt-get install linux-image-{release} \
                     (it carries nvme-tcp); Ubuntu: apt-get install linux-modules-extra-{release}"
                ),
            )
        }
    }
}

/// (8) The host NQN the node will present.
pub fn host_nqn(seen: &Result<HostNqnSource, NvmeError>) -> Check {
    let (nqn, path, from) = match seen {
        Ok(HostNqnSource::ToBeGenerated { path }) => {
            return Check::ok(
                name::HOST_NQN,
                format!(
                    "none yet: will be generated at first start and kept in {}",
                    path.display()
                ),
            );
        }
        Ok(HostNqnSource::Host { path, nqn }) => (nqn, path, "the host's"),
        Ok(HostNqnSource::State { path, nqn }) => (nqn, path, "kept by the plugin in"),
        Err(NvmeError::BadIdentity { path, reason }) => {
            return Check::fail(
                name::HOST_NQN,
                format!("{} is not usable: {reason}", path.display()),
                format!(
                    "correct {} (a host NQN such as the output of `nvme gen-hostnqn`, a host id \
                     a UUID), or remove it to have one generated; the plugin does not start with \
                     it as it is. Changing a host's identity makes the RDS see a new host",
                    path.display()
                ),
            );
        }
        Err(e) => {
            return Check::fail(
                name::HOST_NQN,
                e.to_string(),
                "make --etc-nvme and --state-dir readable by the plugin (in Kubernetes, \
                 hostPath mounts of the host's /etc/nvme and of the state folder)"
                    .to_owned(),
            );
        }
    };
    match nvme_host::nqn_format_problem(nqn) {
        None => Check::ok(name::HOST_NQN, format!("{nqn} ({from} {})", path.display())),
        Some(problem) => Check::fail(
            name::HOST_NQN,
            format!("{} holds a malformed host NQN: {problem}", path.display()),
            format!(
                "replace the content of {} with a valid host NQN, e.g. the output of \
                 `nvme gen-hostnqn` (nqn.2014-08.org.nvmexpress:uuid:<uuid>)",
                path.display()
            ),
        ),
    }
}

/// The programs the node runs (its Debian packages: util-linux, e2fsprogs,
/// xfsprogs; see `node_fs::tool::debian_package`).
pub const NODE_TOOLS: &[&str] = &["blkid", "mkfs.ext4", "resize2fs", "mkfs.xfs", "xfs_growfs"];

/// What was found of one tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolSeen {
    /// The program.
    pub program: &'static str,
    /// The Debian package that carries it.
    pub package: &'static str,
    /// Where it is on `PATH`, if anywhere.
    pub found: Option<PathBuf>,
    /// Running it with `-V`: `Ok` once it started and exited, whatever its
    /// status; `Err` with why not.
    pub ran: Result<(), String>,
}

/// (9) The node's tools are installed and run.
pub fn tools(seen: &[ToolSeen]) -> Check {
    let missing: Vec<&ToolSeen> = seen.iter().filter(|t| t.found.is_none()).collect();
    let broken: Vec<&ToolSeen> = seen
        .iter()
        .filter(|t| t.found.is_some() && t.ran.is_err())
        .collect();
    if missing.is_empty() && broken.is_empty() {
        let names: Vec<&str> = seen.iter().map(|t| t.program).collect();
        return Check::ok(
            name::TOOLS,
            format!("{} found in PATH and run", names.join(", ")),
        );
    }
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!(
            "not found in PATH: {}",
            missing
                .iter()
                .map(|t| t.program)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for t in &broken {
        let at = t.found.as_deref().unwrap_or(Path::new(t.program));
        let why = t.ran.as_ref().err().map_or("", String::as_str);
        problems.push(format!("{} does not run: {why}", at.display()));
    }
    let mut packages: Vec<&str> = missing.iter().chain(&broken).map(|t| t.package).collect();
    packages.sort_unstable();
    packages.dedup();
    Check::fail(
        name::TOOLS,
        problems.join("; "),
        format!(
            "install (or reinstall) on the node, or in the plugin's image: apt-get install {} \
             (Debian, Ubuntu)",
            packages.join(" ")
        ),
    )
}

/// What the node has for encrypted volumes: `cryptsetup`, and the kernel's
/// dm-crypt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionSeen {
    /// `cryptsetup`, as [`tools`] sees each tool.
    pub cryptsetup: ToolSeen,
    /// `<root>/sys/module/dm_crypt` exists.
    pub loaded: bool,
    /// The running kernel's release, if readable.
    pub release: Option<String>,
    /// Whether `modules.dep` or `modules.builtin` of that release lists
    /// `dm-crypt`; `None` when neither could be read.
    pub available: Option<bool>,
}

/// (10) The node can open encrypted volumes: `cryptsetup` runs and the
/// kernel has dm-crypt. Needed only by StorageClasses with `encryption:
/// luks2`, which every fix says.
pub fn encryption(seen: &EncryptionSeen) -> Check {
    const ONLY: &str = "(needed only for StorageClasses with encryption: luks2)";
    let release = seen.release.as_deref().unwrap_or("$(uname -r)");
    let tool = &seen.cryptsetup;
    let tool_problem = match (&tool.found, &tool.ran) {
        (None, _) => Some("cryptsetup is not found in PATH".to_owned()),
        (Some(at), Err(why)) => Some(format!("{} does not run: {why}", at.display())),
        (Some(_), Ok(())) => None,
    };
    let module = match (seen.loaded, seen.available) {
        (true, _) => Ok("dm_crypt is loaded".to_owned()),
        (false, Some(true)) => Ok(format!(
            "dm-crypt is installed for kernel {release} (the kernel loads it at the first open)"
        )),
        (false, Some(false)) => Err(format!(
            "dm_crypt is not loaded and kernel {release} has no such module"
        )),
        (false, None) => Err(format!(
            "dm_crypt is not loaded, and whether kernel {release} has it cannot be seen"
        )),
    };
    match (tool_problem, module) {
        (None, Ok(module)) => Check::ok(name::ENCRYPTION, format!("cryptsetup runs; {module}")),
        (Some(problem), module) => {
            let mut detail = problem;
            if let Err(m) = &module {
                detail.push_str("; ");
                detail.push_str(m);
            }
            let mut fix = format!(
                "install it on the node, or in the plugin's image: apt-get install {} (Debian, \
                 Ubuntu; the image of deploy/Dockerfile has it) {ONLY}",
                tool.package
            );
            if module.is_err() {
                fix.push_str(
                    "; and load dm-crypt: modprobe dm-crypt, at every boot: echo dm-crypt > \
                     /etc/modules-load.d/dm-crypt.conf",
                );
            }
            Check::fail(name::ENCRYPTION, detail, fix)
        }
        (None, Err(module)) => Check::fail(
            name::ENCRYPTION,
            format!("cryptsetup runs, but {module}"),
            format!(
                "on the node, run modprobe dm-crypt; to load it at every boot: echo dm-crypt > \
                 /etc/modules-load.d/dm-crypt.conf. If the module is missing, install the \
                 kernel's modules (Debian: linux-image-{release}) {ONLY}"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    const FP: &str = "SHA256:pSY43iobEtHIjSVi8+waoU065/b6K2/LlQ7Bs1g8BFY";
    const OTHER: &str = "SHA256:AAAA43iobEtHIjSVi8+waoU065/b6K2/LlQ7Bs1g8BFY";

    fn ssh(presented: Option<&str>, result: Result<(), rds_client::Error>) -> SshSeen {
        SshSeen {
            address: "10.0.0.1:22".into(),
            presented: presented.map(str::to_owned),
            result,
        }
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1 << 40), "1.0 TiB");
        assert_eq!(human_bytes(96_636_764_160), "90.0 GiB");
        assert_eq!(host_port("fd00::1", 4420), "[fd00::1]:4420");
    }

    #[test]
    fn tcp_failures_say_what_to_check() {
        let ok = ssh_reachable("10.0.0.1", 22, &Ok(()));
        assert_eq!(ok.status, Status::Ok);
        let refused = ssh_reachable("10.0.0.1", 2222, &Err(TcpFailure::Refused));
        assert_eq!(refused.status, Status::Fail);
        assert!(refused.detail.contains("10.0.0.1:2222"), "{refused:?}");
        assert!(
            refused.fix.as_deref().unwrap().contains("port=2222"),
            "{refused:?}"
        );
        let slow = nvme_port(
            "10.0.0.1",
            4420,
            &Err(TcpFailure::TimedOut(Duration::from_secs(5))),
        );
        assert!(
            slow.fix.as_deref().unwrap().contains("firewall"),
            "{slow:?}"
        );
        let refused = nvme_port("10.0.0.1", 4420, &Err(TcpFailure::Refused));
        assert!(
            refused.fix.as_deref().unwrap().contains("--nvme-port"),
            "{refused:?}"
        );
    }

    #[test]
    fn host_key_verdicts() {
        let pinned = HostKeyPolicy::parse(FP).unwrap();
        assert_eq!(host_key(&pinned, &ssh(Some(FP), Ok(()))).status, Status::Ok);
        let mismatch = ssh(
            Some(OTHER),
            Err(rds_client::Error::HostKeyMismatch {
                address: "10.0.0.1:22".into(),
                expected: FP.into(),
                actual: OTHER.into(),
            }),
        );
        let c = host_key(&pinned, &mismatch);
        assert_eq!(c.status, Status::Fail);
        let fix = c.fix.unwrap();
        assert!(fix.contains(&format!("--rds-host-key {OTHER}")), "{fix}");
        assert!(fix.contains("ssh-keyscan -p 22 10.0.0.1"), "{fix}");
        assert_eq!(
            key_accepted("admin", "ssh-ed25519 AAAA", &mismatch).status,
            Status::Skip
        );

        // Not checked: a skip that still shows what to pin.
        let c = host_key(&HostKeyPolicy::InsecureAcceptAny, &ssh(Some(OTHER), Ok(())));
        assert_eq!(c.status, Status::Skip);
        assert!(
            c.detail.contains("not checked") && c.detail.contains(OTHER),
            "{c:?}"
        );
        assert!(c.fix.unwrap().contains(OTHER));

        // No handshake at all.
        let broken = ssh(
            None,
            Err(rds_client::Error::Connect {
                address: "10.0.0.1:22".into(),
                reason: "protocol error".into(),
            }),
        );
        assert_eq!(host_key(&pinned, &broken).status, Status::Fail);
        assert_eq!(
            key_accepted("admin", "ssh-ed25519 AAAA", &broken).status,
            Status::Skip
        );
    }

    #[test]
    fn a_refused_key_names_the_import() {
        let refused = ssh(
            Some(FP),
            Err(rds_client::Error::AuthRejected {
                address: "10.0.0.1:22".into(),
                user: "csi".into(),
            }),
        );
        let pinned = HostKeyPolicy::parse(FP).unwrap();
        assert_eq!(host_key(&pinned, &refused).status, Status::Ok);
        let c = key_accepted("csi", "ssh-ed25519 AAAAC3 driver", &refused);
        assert_eq!(c.status, Status::Fail);
        let fix = c.fix.unwrap();
        assert!(
            fix.contains("/user ssh-keys import") && fix.contains("user=csi"),
            "{fix}"
        );
        assert!(fix.contains("ssh-ed25519 AAAAC3 driver"), "{fix}");
    }

    fn resource(version: &str) -> SystemResource {
        routeros::parse_system_resource(&format!("version: {version}\nboard-name: RDS2216\n"))
            .unwrap()
    }

    #[test]
    fn versions_name_what_is_missing() {
        let c = routeros_version(&Ok(resource("7.21.1 (stable)")));
        assert_eq!(c.status, Status::Ok);
        assert_eq!(
            c.detail,
            "RouterOS 7.21.1 (stable) on RDS2216 (7.21 or newer is needed)"
        );
        let c = routeros_version(&Ok(resource("7.20.2 (stable)")));
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("nvme-tcp-server-nqn"), "{c:?}");
        assert!(!c.detail.contains("file-path"), "{c:?}");
        assert!(c.fix.unwrap().contains("7.21 or newer"));
        let c = routeros_version(&Ok(resource("7.16")));
        assert!(
            c.detail.contains("file-path") && c.detail.contains("7.17"),
            "{c:?}"
        );
    }

    fn seen(file_type: FileType, pool_free: Option<u64>, list: &[(&str, u64)]) -> VolumePathSeen {
        let pool = |free| routeros::Pool {
            size: 1 << 40,
            free,
        };
        VolumePathSeen {
            file_type: Ok(file_type),
            pool: pool_free.map(pool).ok_or(rds_client::Error::PoolNotFound {
                pool: "storage-pool".into(),
            }),
            pools: Ok(list
                .iter()
                .map(|(name, free)| MountedPool {
                    mount_point: (*name).to_owned(),
                    pool: pool(*free),
                })
                .collect()),
        }
    }

    #[test]
    fn volume_path_verdicts() {
        let path = RdsPath::new("/storage-pool/metal-csi").unwrap();
        let c = volume_path(
            &path,
            &seen(
                FileType::Directory,
                Some(1 << 39),
                &[("storage-pool", 1 << 39)],
            ),
        );
        assert_eq!(c.status, Status::Ok);
        assert_eq!(
            c.detail,
            "/storage-pool/metal-csi is a folder on pool /storage-pool: 512.0 GiB free of 1.0 TiB"
        );

        let c = volume_path(
            &path,
            &seen(
                FileType::Missing,
                Some(1 << 39),
                &[("storage-pool", 1 << 39)],
            ),
        );
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.fix
                .unwrap()
                .contains("/file add type=directory name=/storage-pool/metal-csi"),
        );

        let c = volume_path(
            &path,
            &seen(
                FileType::Missing,
                None,
                &[("raid10", 1 << 30), ("nvme1", 1 << 20)],
            ),
        );
        assert!(
            c.detail.contains("no pool is mounted at /storage-pool"),
            "{c:?}"
        );
        assert!(
            c.fix
                .unwrap()
                .contains("pools on the RDS: /raid10 (1.0 GiB free), /nvme1 (1.0 MiB free)"),
        );
        let c = volume_path(&path, &seen(FileType::Directory, None, &[]));
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.fix
                .as_deref()
                .unwrap()
                .contains("the RDS has no mounted pool"),
            "{c:?}"
        );

        let c = volume_path(&path, &seen(FileType::Other("file".into()), Some(1), &[]));
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("is a file, not a folder"), "{c:?}");

        let mut unreadable = seen(FileType::Directory, None, &[]);
        unreadable.pool = Err(rds_client::Error::Timeout {
            after: Duration::from_secs(30),
        });
        let c = volume_path(&path, &unreadable);
        assert!(c.detail.starts_with("cannot read the free space"), "{c:?}");
    }

    #[test]
    fn modules_lists() {
        assert!(lists_nvme_tcp(
            "kernel/drivers/nvme/host/nvme-core.ko.xz:\n\
             kernel/drivers/nvme/host/nvme-tcp.ko.xz: kernel/drivers/nvme/host/nvme-fabrics.ko.xz\n"
        ));
        assert!(lists_nvme_tcp("kernel/drivers/nvme/host/nvme-tcp.ko\n"));
        assert!(!lists_nvme_tcp(
            "kernel/drivers/nvme/host/nvme-rdma.ko: kernel/drivers/nvme/host/nvme-tcp.ko\n"
        ));
        assert!(!lists_nvme_tcp(
            "kernel/drivers/nvme/target/nvmet-tcp.ko.zst:\n"
        ));
    }

    #[test]
    fn encryption_verdicts() {
        let tool = |found: bool, ran: Result<(), String>| ToolSeen {
            program: "cryptsetup",
            package: "cryptsetup-bin",
            found: found.then(|| PathBuf::from("/usr/sbin/cryptsetup")),
            ran,
        };
        let seen = EncryptionSeen {
            cryptsetup: tool(true, Ok(())),
            loaded: true,
            release: Some("6.1.0-18-amd64".into()),
            available: None,
        };
        assert_eq!(encryption(&seen).status, Status::Ok);
        let c = encryption(&EncryptionSeen {
            loaded: false,
            available: Some(true),
            ..seen.clone()
        });
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.detail.contains("loads it at the first open"), "{c:?}");

        let c = encryption(&EncryptionSeen {
            cryptsetup: tool(false, Err("not found".into())),
            ..seen.clone()
        });
        assert_eq!(c.status, Status::Fail);
        let fix = c.fix.unwrap();
        assert!(fix.contains("apt-get install cryptsetup-bin"), "{fix}");
        assert!(fix.contains("encryption: luks2"), "{fix}");

        let c = encryption(&EncryptionSeen {
            loaded: false,
            available: Some(false),
            ..seen.clone()
        });
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.detail
                .contains("kernel 6.1.0-18-amd64 has no such module"),
            "{c:?}"
        );
        assert!(c.fix.unwrap().contains("modprobe dm-crypt"));

        let c = encryption(&EncryptionSeen {
            cryptsetup: tool(true, Err("exec format error".into())),
            loaded: false,
            available: None,
            ..seen
        });
        assert!(
            c.detail.contains("does not run") && c.detail.contains("dm_crypt is not loaded"),
            "{c:?}"
        );
        let fix = c.fix.unwrap();
        assert!(
            fix.contains("cryptsetup-bin") && fix.contains("modprobe dm-crypt"),
            "{fix}"
        );
        assert!(lists_module(
            "kernel/drivers/md/dm-crypt.ko.xz: kernel/drivers/md/dm-mod.ko.xz\n",
            "dm-crypt"
        ));
        assert!(!lists_module(
            "kernel/drivers/md/dm-mod.ko: kernel/drivers/md/dm-crypt.ko\n",
            "dm-crypt"
        ));
    }

    #[test]
    fn kernel_verdicts() {
        let seen = KernelSeen {
            host_root: "/host".into(),
            loaded: true,
            release: Some("6.1.0-18-amd64".into()),
            available: None,
            fabrics_device: true,
        };
        assert_eq!(kernel(&seen).status, Status::Ok);
        let c = kernel(&KernelSeen {
            loaded: false,
            available: Some(true),
            ..seen.clone()
        });
        assert_eq!(c.status, Status::Ok, "autoloaded at the first connect");
        let c = kernel(&KernelSeen {
            fabrics_device: false,
            ..seen.clone()
        });
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.unwrap().contains("modprobe nvme-tcp"));
        let c = kernel(&KernelSeen {
            loaded: false,
            available: Some(false),
            fabrics_device: false,
            ..seen.clone()
        });
        assert!(
            c.detail
                .contains("kernel 6.1.0-18-amd64 has no such module"),
            "{c:?}"
        );
        let fix = c.fix.unwrap();
        assert!(fix.contains("modprobe nvme-tcp"), "{fix}");
        assert!(fix.contains("linux-modules-extra-6.1.0-18-amd64"), "{fix}");
        let c = kernel(&KernelSeen {
            loaded: false,
            release: None,
            available: None,
            fabrics_device: false,
            ..seen
        });
        assert!(
            c.detail.contains("/host/proc/sys/kernel/osrelease"),
            "{c:?}"
        );
        assert!(c.fix.unwrap().contains("linux-image-$(uname -r)"));
    }

    #[test]
    fn host_nqn_verdicts() {
        let c = host_nqn(&Ok(HostNqnSource::ToBeGenerated {
            path: "/var/lib/rds-csi/hostnqn".into(),
        }));
        assert_eq!(c.status, Status::Ok);
        assert!(
            c.detail.contains("will be generated at first start"),
            "{c:?}"
        );
        let good = "nqn.2014-08.org.nvmexpress:uuid:6a1b2c3d-0000-4000-8000-0123456789ab";
        let c = host_nqn(&Ok(HostNqnSource::Host {
            path: "/etc/nvme/hostnqn".into(),
            nqn: good.into(),
        }));
        assert_eq!(c.status, Status::Ok);
        assert!(c.detail.starts_with(good), "{c:?}");
        let c = host_nqn(&Ok(HostNqnSource::Host {
            path: "/etc/nvme/hostnqn".into(),
            nqn: "node-7".into(),
        }));
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.unwrap().contains("nvme gen-hostnqn"));
        let c = host_nqn(&Err(NvmeError::BadIdentity {
            path: "/etc/nvme/hostid".into(),
            reason: "\"x\" is not a UUID".into(),
        }));
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.unwrap().contains("/etc/nvme/hostid"));
    }

    #[test]
    fn tool_verdicts_name_the_packages() {
        let tool = |program, package, found: bool, ran: Result<(), String>| ToolSeen {
            program,
            package,
            found: found.then(|| PathBuf::from("/usr/sbin").join(program)),
            ran,
        };
        let all_there: Vec<ToolSeen> = NODE_TOOLS
            .iter()
            .map(|p| tool(*p, "pkg", true, Ok(())))
            .collect();
        assert_eq!(tools(&all_there).status, Status::Ok);
        let c = tools(&[
            tool("blkid", "util-linux", true, Ok(())),
            tool("mkfs.xfs", "xfsprogs", false, Err("not found".into())),
            tool("xfs_growfs", "xfsprogs", false, Err("not found".into())),
            tool("resize2fs", "e2fsprogs", true, Err("killed".into())),
        ]);
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.detail.contains("not found in PATH: mkfs.xfs, xfs_growfs")
                && c.detail
                    .contains("/usr/sbin/resize2fs does not run: killed"),
            "{c:?}"
        );
        assert!(
            c.fix
                .unwrap()
                .contains("apt-get install e2fsprogs xfsprogs"),
            "packages once each"
        );
    }
}
