//! The doctor's observations: network, SSH, RouterOS, the node's file
//! system and programs. Every observation is returned as data for
//! [`super::verdict`] to judge; nothing here decides pass or fail.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rds_client::RdsClient;
use routeros::RdsPath;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::verdict::{
    EncryptionSeen, KernelSeen, NODE_TOOLS, SshSeen, TcpFailure, ToolSeen, VolumePathSeen,
    lists_module, lists_nvme_tcp,
};

/// Opens (and closes) a TCP connection to `host:port`, trying each address
/// the name resolves to, all within `timeout`.
pub async fn tcp(host: &str, port: u16, timeout: Duration) -> Result<(), TcpFailure> {
    let deadline = Instant::now() + timeout;
    let addrs: Vec<SocketAddr> =
        match tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
            Err(_) => return Err(TcpFailure::TimedOut(timeout)),
            Ok(Err(e)) => return Err(TcpFailure::Resolve(e.to_string())),
            Ok(Ok(addrs)) => addrs.collect(),
        };
    let mut last = TcpFailure::Resolve("the name has no address".to_owned());
    for addr in addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(_stream)) => return Ok(()),
            Ok(Err(e)) => last = classify(&e, timeout),
            Err(_) => return Err(TcpFailure::TimedOut(timeout)),
        }
    }
    Err(last)
}

fn classify(e: &io::Error, timeout: Duration) -> TcpFailure {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => TcpFailure::Refused,
        io::ErrorKind::TimedOut => TcpFailure::TimedOut(timeout),
        _ => TcpFailure::Other(e.to_string()),
    }
}

/// Connects and logs in, once.
pub async fn ssh(client: &RdsClient) -> SshSeen {
    let result = client.transport().ensure_connected().await;
    SshSeen {
        address: client.transport().config().address(),
        presented: client.transport().presented_host_key(),
        result,
    }
}

/// What the RDS holds at `path`, the pool it is on (by the query
/// GetCapacity makes), and every pool.
pub async fn volume_path(client: &RdsClient, path: &RdsPath) -> VolumePathSeen {
    VolumePathSeen {
        file_type: client.file_type(path).await,
        pool: client.pool(&path.pool()).await,
        pools: client.pools().await,
    }
}

/// The kernel's NVMe/TCP support as seen under `root`: the module loaded
/// (`sys/module/nvme_tcp`) or installed for the running kernel
/// (`lib/modules/<release>/modules.dep` or `modules.builtin`), and
/// `dev/nvme-fabrics`.
pub fn kernel(root: &Path) -> KernelSeen {
    let release = release(root);
    let available = module_available(root, release.as_deref(), lists_nvme_tcp);
    KernelSeen {
        host_root: root.to_owned(),
        loaded: root.join("sys/module/nvme_tcp").is_dir(),
        release,
        available,
        fabrics_device: root.join("dev/nvme-fabrics").exists(),
    }
}

/// The running kernel's release, from `<root>/proc/sys/kernel/osrelease`.
fn release(root: &Path) -> Option<String> {
    fs::read_to_string(root.join("proc/sys/kernel/osrelease"))
        .ok()
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty() && !r.contains('/'))
}

/// Whether `lists` finds the module in `modules.dep` or `modules.builtin`
/// of `release` under `root`; `None` when neither can be read.
fn module_available(
    root: &Path,
    release: Option<&str>,
    lists: impl Fn(&str) -> bool,
) -> Option<bool> {
    let dir = root.join("lib/modules").join(release?);
    let found: Vec<bool> = ["modules.dep", "modules.builtin"]
        .iter()
        .filter_map(|file| fs::read_to_string(dir.join(file)).ok())
        .map(|text| lists(&text))
        .collect();
    (!found.is_empty()).then(|| found.contains(&true))
}

/// What encrypted volumes need, as seen under `root` and on `path_var`:
/// `cryptsetup` (run with `--version` through `node_fs::tool::run`), and
/// dm-crypt loaded (`sys/module/dm_crypt`) or installed for the running
/// kernel.
pub async fn encryption(root: &Path, path_var: Option<&OsStr>) -> EncryptionSeen {
    let program = node_fs::crypt::CRYPTSETUP;
    let found = path_var.and_then(|p| find_in_path(program, p));
    let ran = match node_fs::tool::run(program, &["--version"], TOOL_TIMEOUT).await {
        Ok(output) if output.status.code().is_some() => Ok(()),
        Ok(output) => Err(format!(
            "it ended without an exit status ({})",
            output.status
        )),
        Err(e) => Err(e.to_string()),
    };
    let release = release(root);
    EncryptionSeen {
        cryptsetup: ToolSeen {
            program,
            package: node_fs::tool::debian_package(program).unwrap_or("cryptsetup-bin"),
            found,
            ran,
        },
        loaded: root.join("sys/module/dm_crypt").is_dir(),
        available: module_available(root, release.as_deref(), |t| lists_module(t, "dm-crypt")),
        release,
    }
}

/// How long one tool gets to print its version.
const TOOL_TIMEOUT: Duration = Duration::from_secs(10);

/// Each of the node's tools: where `PATH` (`path_var`) has it, and whether
/// it runs (`<tool> -V`, through `node_fs::tool::run` as the node runs it;
/// any exit status will do).
pub async fn tools(path_var: Option<&OsStr>) -> Vec<ToolSeen> {
    let mut seen = Vec::with_capacity(NODE_TOOLS.len());
    for program in NODE_TOOLS {
        let found = path_var.and_then(|p| find_in_path(program, p));
        let ran = match node_fs::tool::run(program, &["-V"], TOOL_TIMEOUT).await {
            Ok(output) if output.status.code().is_some() => Ok(()),
            Ok(output) => Err(format!(
                "it ended without an exit status ({})",
                output.status
            )),
            Err(e) => Err(e.to_string()),
        };
        seen.push(ToolSeen {
            program,
            package: node_fs::tool::debian_package(program).unwrap_or("its package"),
            found,
            ran,
        });
    }
    seen
}

/// The first executable file called `program` in the folders of `path_var`.
fn find_in_path(program: &str, path_var: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path_var)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_only_when_executable() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        fs::write(a.join("mkfs.xfs"), "").unwrap();
        fs::write(b.join("mkfs.xfs"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(b.join("mkfs.xfs"), fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(find_in_path("mkfs.xfs", &path), Some(b.join("mkfs.xfs")));
        assert_eq!(find_in_path("blkid", &path), None);
    }

    #[test]
    fn the_kernel_is_read_under_the_root() {
        let root = tempfile::tempdir().unwrap();
        let seen = kernel(root.path());
        assert!(!seen.loaded && !seen.fabrics_device);
        assert_eq!((seen.release, seen.available), (None, None));

        let r = root.path();
        fs::create_dir_all(r.join("proc/sys/kernel")).unwrap();
        fs::write(r.join("proc/sys/kernel/osrelease"), "6.1.0-18-amd64\n").unwrap();
        let modules = r.join("lib/modules/6.1.0-18-amd64");
        fs::create_dir_all(&modules).unwrap();
        fs::write(modules.join("modules.dep"), "kernel/fs/xfs/xfs.ko.xz:\n").unwrap();
        let seen = kernel(r);
        assert_eq!(seen.release.as_deref(), Some("6.1.0-18-amd64"));
        assert_eq!(seen.available, Some(false));
        fs::write(
            modules.join("modules.builtin"),
            "kernel/drivers/nvme/host/nvme-tcp.ko\n",
        )
        .unwrap();
        fs::create_dir_all(r.join("sys/module/nvme_tcp")).unwrap();
        fs::create_dir_all(r.join("dev")).unwrap();
        fs::write(r.join("dev/nvme-fabrics"), "").unwrap();
        let seen = kernel(r);
        assert_eq!(seen.available, Some(true));
        assert!(seen.loaded && seen.fabrics_device);
    }

    #[tokio::test]
    async fn what_encryption_needs_is_read_under_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let seen = encryption(r, Some(OsStr::new(""))).await;
        assert!(!seen.loaded && seen.available.is_none());
        assert_eq!(seen.cryptsetup.found, None, "not on an empty PATH");
        fs::create_dir_all(r.join("proc/sys/kernel")).unwrap();
        fs::write(r.join("proc/sys/kernel/osrelease"), "6.1.0-18-amd64\n").unwrap();
        let modules = r.join("lib/modules/6.1.0-18-amd64");
        fs::create_dir_all(&modules).unwrap();
        fs::write(
            modules.join("modules.dep"),
            "kernel/drivers/md/dm-crypt.ko.xz: kernel/drivers/md/dm-mod.ko.xz\n",
        )
        .unwrap();
        fs::create_dir_all(r.join("sys/module/dm_crypt")).unwrap();
        let seen = encryption(r, Some(OsStr::new(""))).await;
        assert_eq!(seen.available, Some(true));
        assert!(seen.loaded);
        assert_eq!(seen.cryptsetup.package, "cryptsetup-bin");
    }

    #[tokio::test]
    async fn a_closed_port_is_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(
            tcp("127.0.0.1", port, Duration::from_secs(30)).await,
            Ok(())
        );
        drop(listener);
        assert_eq!(
            tcp("127.0.0.1", port, Duration::from_secs(30)).await,
            Err(TcpFailure::Refused)
        );
    }
}
