//! The nvmet configfs layout, as plans of steps, and the code that carries
//! a plan out.
//!
//! Everything the exporter writes to configfs is first built here as a list
//! of [`Step`]s by pure functions, so the layout for a disk can be read and
//! tested without a kernel. [`apply`] then runs the steps through a
//! [`ConfigFs`]; when one fails, the directories and links already made are
//! removed again, so a failed export leaves no half-made subsystem behind.
//!
//! The layout (kernel 5.x/6.x nvmet), for subsystem `N` backed by `/dev/loop0`
//! and served on port id 1 at 127.0.0.1:4420:
//!
//! ```text
//! subsystems/N/attr_allow_any_host      1 (any host), or 0 and:
//! subsystems/N/allowed_hosts/H -> hosts/H   (one link per host NQN H let in)
//! subsystems/N/namespaces/1/device_path /dev/loop0
//! subsystems/N/namespaces/1/device_uuid the UUID of N (see namespace_uuid)
//! subsystems/N/namespaces/1/enable      1
//! hosts/H                               (a host object, shared by subsystems)
//! ports/1/addr_trtype                   tcp
//! ports/1/addr_adrfam                   ipv4
//! ports/1/addr_traddr                   127.0.0.1
//! ports/1/addr_trsvcid                  4420
//! ports/1/subsystems/N -> subsystems/N  (the link starts serving N there)
//! ```
//!
//! nvmet checks `allowed_hosts` only when a host connects: changing the list
//! does not end a live connection; removing the subsystem (or its port link)
//! does.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The namespace id every exported disk gets: one disk, one namespace.
pub const NSID: u32 = 1;

/// The file operations the exporter needs from configfs. The real one is
/// [`RealConfigFs`]; tests use a folder that behaves like configfs.
pub trait ConfigFs: Send {
    /// Creates a directory (configfs makes an object).
    fn mkdir(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory (configfs drops the object and its attributes).
    fn rmdir(&self, path: &Path) -> io::Result<()>;
    /// Writes an attribute.
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
    /// Reads an attribute, without its trailing newline.
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Makes `link` point at `target`.
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    /// Removes a link.
    fn unlink(&self, link: &Path) -> io::Result<()>;
    /// Names in a directory; none when it does not exist.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Whether anything (a link too, whatever it points at) is at `path`.
    fn exists(&self, path: &Path) -> bool;
}

/// The kernel's configfs, through plain file operations.
#[derive(Debug, Default)]
pub struct RealConfigFs;

impl ConfigFs for RealConfigFs {
    fn mkdir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir(path)
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        fs::write(path, value)
    }

    fn read(&self, path: &Path) -> io::Result<String> {
        let text = fs::read_to_string(path)?;
        Ok(text.trim_end_matches('\n').to_owned())
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn unlink(&self, link: &Path) -> io::Result<()> {
        fs::remove_file(link)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        list_dir(dir)
    }

    fn exists(&self, path: &Path) -> bool {
        fs::symlink_metadata(path).is_ok()
    }
}

/// Names in `dir`, sorted; none when it does not exist.
pub fn list_dir(dir: &Path) -> io::Result<Vec<String>> {
    let reader = match fs::read_dir(dir) {
        Ok(reader) => reader,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in reader {
        if let Some(name) = entry?.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// One change to configfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create a directory.
    Mkdir(PathBuf),
    /// Write a value to an attribute.
    Write(PathBuf, String),
    /// Create `link` pointing at `target`.
    Link {
        /// What the link points at.
        target: PathBuf,
        /// The link.
        link: PathBuf,
    },
    /// Remove a link.
    Unlink(PathBuf),
    /// Remove a directory.
    Rmdir(PathBuf),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Mkdir(p) => write!(f, "mkdir {}", p.display()),
            Step::Write(p, v) => write!(f, "write {v:?} to {}", p.display()),
            Step::Link { target, link } => {
                write!(f, "link {} -> {}", link.display(), target.display())
            }
            Step::Unlink(p) => write!(f, "unlink {}", p.display()),
            Step::Rmdir(p) => write!(f, "rmdir {}", p.display()),
        }
    }
}

/// A step that failed, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot {step}: {source}")]
pub struct StepError {
    /// The step, as text.
    pub step: String,
    /// What the kernel said.
    #[source]
    pub source: io::Error,
}

/// Paths and plans under one nvmet configfs root
/// (`/sys/kernel/config/nvmet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    /// `subsystems/`.
    pub fn subsystems(&self) -> PathBuf {
        self.root.join("subsystems")
    }

    /// `ports/`.
    pub fn ports(&self) -> PathBuf {
        self.root.join("ports")
    }

    /// `subsystems/<nqn>`.
    pub fn subsystem(&self, nqn: &str) -> PathBuf {
        self.subsystems().join(nqn)
    }

    /// `subsystems/<nqn>/namespaces/1`.
    pub fn namespace(&self, nqn: &str) -> PathBuf {
        self.subsystem(nqn)
            .join("namespaces")
            .join(NSID.to_string())
    }

    /// `ports/<id>`.
    pub fn port(&self, id: u16) -> PathBuf {
        self.ports().join(id.to_string())
    }

    /// `ports/<id>/subsystems/<nqn>`: the link that serves `nqn` on port `id`.
    pub fn port_link(&self, id: u16, nqn: &str) -> PathBuf {
        self.port(id).join("subsystems").join(nqn)
    }

    /// `hosts/`.
    pub fn hosts(&self) -> PathBuf {
        self.root.join("hosts")
    }

    /// `hosts/<host>`.
    pub fn host(&self, host: &str) -> PathBuf {
        self.hosts().join(host)
    }

    /// `subsystems/<nqn>/allowed_hosts/<host>`: the link that lets `host`
    /// connect to `nqn`.
    pub fn allowed_host(&self, nqn: &str, host: &str) -> PathBuf {
        self.subsystem(nqn).join("allowed_hosts").join(host)
    }

    /// Makes subsystem `nqn` with namespace 1 on `device`, enabled, open to
    /// any host when `any_host`, else to none yet (hosts are linked with
    /// [`Layout::allow_host`] before the subsystem is linked to a port, so
    /// there is no moment when it is open). The namespace is a block device
    /// (a loop device over the image): nvmet's file backend answers Write
    /// Zeroes with an error on tmpfs, which the initiator logs as I/O
    /// errors. Its UUID follows from the NQN ([`namespace_uuid`]), so a
    /// subsystem made again for the same disk (the export switched off and
    /// on) is the same namespace to a host that reconnects: nvmet would
    /// otherwise make up a new UUID, and the host would drop the namespace
    /// as a different one.
    pub fn add_subsystem(&self, nqn: &str, device: &str, any_host: bool) -> Vec<Step> {
        let subsystem = self.subsystem(nqn);
        let namespace = self.namespace(nqn);
        vec![
            Step::Mkdir(subsystem.clone()),
            Step::Write(
                subsystem.join("attr_allow_any_host"),
                if any_host { "1" } else { "0" }.into(),
            ),
            Step::Mkdir(namespace.clone()),
            Step::Write(namespace.join("device_path"), device.into()),
            Step::Write(namespace.join("device_uuid"), namespace_uuid(nqn)),
            Step::Write(namespace.join("enable"), "1".into()),
        ]
    }

    /// Makes host object `host` (shared by every subsystem that lets it in).
    pub fn add_host(&self, host: &str) -> Vec<Step> {
        vec![Step::Mkdir(self.host(host))]
    }

    /// Removes host object `host` (no subsystem may link it any more).
    pub fn remove_host(&self, host: &str) -> Vec<Step> {
        vec![Step::Rmdir(self.host(host))]
    }

    /// Lets `host` connect to `nqn` from now on. The subsystem must not
    /// allow any host (the kernel refuses links while it does).
    pub fn allow_host(&self, nqn: &str, host: &str) -> Vec<Step> {
        vec![Step::Link {
            target: self.host(host),
            link: self.allowed_host(nqn, host),
        }]
    }

    /// Stops letting `host` connect to `nqn`; a live connection of `host`
    /// is not ended by this.
    pub fn disallow_host(&self, nqn: &str, host: &str) -> Vec<Step> {
        vec![Step::Unlink(self.allowed_host(nqn, host))]
    }

    /// Sets whether `nqn` lets any host connect. Only with no host linked
    /// can it be set to 1.
    pub fn allow_any_host(&self, nqn: &str, any: bool) -> Vec<Step> {
        vec![Step::Write(
            self.subsystem(nqn).join("attr_allow_any_host"),
            if any { "1" } else { "0" }.into(),
        )]
    }

    /// Removes subsystem `nqn` (no port may link it any more).
    pub fn remove_subsystem(&self, nqn: &str) -> Vec<Step> {
        vec![
            // Disabling first makes nvmet let go of the device before the
            // directory goes, whatever the kernel's order of release.
            Step::Write(self.namespace(nqn).join("enable"), "0".into()),
            Step::Rmdir(self.namespace(nqn)),
            Step::Rmdir(self.subsystem(nqn)),
        ]
    }

    /// Makes port `id` for NVMe/TCP at `traddr`:`trsvcid`. The kernel starts
    /// listening when the first subsystem is linked.
    pub fn add_port(&self, id: u16, traddr: &str, trsvcid: u16) -> Vec<Step> {
        let port = self.port(id);
        let family = if traddr.contains(':') { "ipv6" } else { "ipv4" };
        vec![
            Step::Mkdir(port.clone()),
            Step::Write(port.join("addr_trtype"), "tcp".into()),
            Step::Write(port.join("addr_adrfam"), family.into()),
            Step::Write(port.join("addr_traddr"), traddr.into()),
            Step::Write(port.join("addr_trsvcid"), trsvcid.to_string()),
        ]
    }

    /// Removes port `id` (no subsystem may be linked to it).
    pub fn remove_port(&self, id: u16) -> Vec<Step> {
        vec![Step::Rmdir(self.port(id))]
    }

    /// Serves `nqn` on port `id`.
    pub fn link(&self, id: u16, nqn: &str) -> Vec<Step> {
        vec![Step::Link {
            target: self.subsystem(nqn),
            link: self.port_link(id, nqn),
        }]
    }

    /// Stops serving `nqn` on port `id`; nvmet drops the controllers
    /// connected through it.
    pub fn unlink(&self, id: u16, nqn: &str) -> Vec<Step> {
        vec![Step::Unlink(self.port_link(id, nqn))]
    }
}

/// The UUID of the namespace of subsystem `nqn`: a version 8 UUID from the
/// first bytes of SHA-256 over the NQN, the same every time the subsystem is
/// made.
pub fn namespace_uuid(nqn: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("rds-sim namespace:{nqn}").as_bytes());
    let mut b = [0_u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Runs `steps` in order. When one fails, the directories and links made so
/// far are removed again (newest first, as far as that works) and the
/// failure is returned.
pub fn apply(fs: &dyn ConfigFs, steps: &[Step]) -> Result<(), StepError> {
    let mut undo: Vec<Step> = Vec::new();
    for step in steps {
        if let Err(source) = run(fs, step) {
            for step in undo.iter().rev() {
                if let Err(e) = run(fs, step) {
                    tracing::warn!(step = %step, error = %e, "cannot undo a configfs step");
                }
            }
            return Err(StepError {
                step: step.to_string(),
                source,
            });
        }
        match step {
            Step::Mkdir(path) => undo.push(Step::Rmdir(path.clone())),
            Step::Link { link, .. } => undo.push(Step::Unlink(link.clone())),
            _ => {}
        }
    }
    Ok(())
}

fn run(fs: &dyn ConfigFs, step: &Step) -> io::Result<()> {
    tracing::debug!(step = %step, "nvmet");
    match step {
        Step::Mkdir(path) => fs.mkdir(path),
        Step::Write(path, value) => fs.write(path, value),
        Step::Link { target, link } => fs.symlink(target, link),
        Step::Unlink(path) => fs.unlink(path),
        Step::Rmdir(path) => fs.rmdir(path),
    }
}
