//! Exporting the simulated disks through the kernel's NVMe/TCP target
//! (nvmet), so that a real initiator can attach them.
//!
//! Off unless [`crate::SimConfig::nvmet`] is set; then every disk with
//! `nvme-tcp-export=yes` (and not `disabled`, *assumed* to stop the export)
//! is an nvmet subsystem named by its `nvme-tcp-server-nqn` (its slot when
//! the NQN is empty, as before RouterOS 7.21), letting in the hosts its
//! `nvme-tcp-server-allow-host-name` lists (any host when it is empty; see
//! [`hosts`]), with namespace 1 on a loop device over its image, served on
//! an nvmet port for its `nvme-tcp-server-port` at the configured address.
//! Ports are made on demand, one per TCP port, and removed when nothing of
//! ours uses them. Switching the export off removes the subsystem, which
//! ends every connection to it; switched on again, it is the same namespace
//! (same UUID) to the hosts that reconnect.
//!
//! Why loop devices: nvmet's file backend answers Write Zeroes with an error
//! when the image is on tmpfs (the guest's `/tmp`), and the initiator logs
//! each as an I/O error during mkfs; a loop device turns the unsupported
//! request into a quiet "not supported" the block layer falls back from.
//! Growth is announced with `losetup --set-capacity` and `revalidate_size`.
//!
//! The engine calls [`Exporter::sync`] with the exports its new state wants
//! after every command that changed something, before saving; a failure
//! puts configfs back as it was and fails the command. [`Exporter::open`]
//! reconciles a restarted simulator with what is already in configfs,
//! touching only what its [`record`] says it made.

mod adopt;
pub(crate) mod hosts;
pub(crate) mod layout;
pub(crate) mod loopdev;
mod ports;
pub(crate) mod record;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use layout::{ConfigFs, Layout, apply};
use loopdev::Backing;
use record::{Made, Record};

use crate::state::Disk;

/// Where and how the simulator exports its disks through nvmet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvmetConfig {
    /// nvmet's configfs folder.
    pub configfs: PathBuf,
    /// The address ports listen on (`addr_traddr`).
    pub traddr: String,
}

impl Default for NvmetConfig {
    /// `/sys/kernel/config/nvmet`, `127.0.0.1`.
    fn default() -> Self {
        NvmetConfig {
            configfs: PathBuf::from("/sys/kernel/config/nvmet"),
            traddr: "127.0.0.1".to_owned(),
        }
    }
}

/// Why exporting through nvmet failed.
#[derive(Debug, thiserror::Error)]
pub enum NvmetError {
    /// The simulator was not configured to export, or was shut down.
    #[error("the simulator does not export through nvmet")]
    Disabled,
    /// configfs has no nvmet folder.
    #[error("no nvmet in configfs at {0} (is configfs mounted and nvmet loaded?)")]
    NotAvailable(PathBuf),
    /// A configfs step failed.
    #[error(transparent)]
    Step(#[from] layout::StepError),
    /// A loop device could not be attached, refreshed or detached.
    #[error("{0}")]
    Loop(String),
    /// A subsystem with this NQN exists and was not made by this simulator.
    #[error("subsystem {0} exists and was not made by this simulator")]
    Foreign(String),
    /// Two exported disks have the same NQN.
    #[error("two disks export nvme-tcp-server-nqn {0}")]
    DuplicateNqn(String),
    /// The NQN cannot name a subsystem directory.
    #[error("nvme-tcp-server-nqn {0:?} cannot name an nvmet subsystem")]
    BadNqn(String),
    /// An entry of the allowed hosts cannot name a host object.
    #[error("nvme-tcp-server-allow-host-name entry {0:?} cannot name an nvmet host")]
    BadHost(String),
    /// The record of what was made could not be read or written.
    #[error("cannot read or write the nvmet record in {path}: {source}")]
    Record {
        /// The state folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// One disk as nvmet should serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// Subsystem NQN.
    pub nqn: String,
    /// The image on the host.
    pub image: PathBuf,
    /// TCP port.
    pub port: u16,
    /// Size in bytes (a change is announced to the initiator).
    pub size: u64,
    /// The host NQNs let in; `None` for any host.
    pub hosts: Option<BTreeSet<String>>,
}

/// The exports `disks` call for; `image` maps a disk's RouterOS file path to
/// the host file (none: not exported, logged).
pub fn exports(disks: &[Disk], image: impl Fn(&str) -> Option<PathBuf>) -> Vec<Export> {
    disks
        .iter()
        .filter(|d| d.nvme_tcp_export && !d.disabled)
        .filter_map(|d| {
            let Some(path) = image(&d.file_path) else {
                tracing::warn!(slot = %d.slot, path = %d.file_path, "image not found; not exported");
                return None;
            };
            let nqn = if d.nvme_tcp_server_nqn.is_empty() {
                d.slot.clone()
            } else {
                d.nvme_tcp_server_nqn.clone()
            };
            Some(Export {
                nqn,
                // Compared with what sysfs says a loop device holds, which is
                // canonical.
                image: std::fs::canonicalize(&path).unwrap_or(path),
                port: d.nvme_tcp_server_port,
                size: d.file_size,
                hosts: hosts::allowed_hosts(&d.nvme_tcp_server_allow_host_name),
            })
        })
        .collect()
}

/// Checks an NQN can be a configfs directory name and is not the discovery
/// subsystem's.
fn check_nqn(nqn: &str) -> Result<(), NvmetError> {
    let ok = !nqn.is_empty()
        && nqn.len() <= 223
        && nqn != "."
        && nqn != ".."
        && !nqn.contains(['/', '\0', '\n'])
        && nqn != "nqn.2014-08.org.nvmexpress.discovery";
    if ok {
        Ok(())
    } else {
        Err(NvmetError::BadNqn(nqn.to_owned()))
    }
}

/// A subsystem of ours as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Live {
    image: PathBuf,
    device: String,
    /// The TCP port it should be served on (0: none yet).
    port: u16,
    /// The size last announced (0: unknown, announce again).
    size: u64,
    /// The hosts let in now; `None` for any host.
    hosts: Option<BTreeSet<String>>,
}

/// An nvmet port in use, by TCP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Port {
    /// Directory name under `ports/`.
    id: u16,
    /// Made by us (and so removed by us when unused).
    ours: bool,
}

/// Keeps nvmet in step with the simulated disks. One per engine, behind its
/// own lock.
pub struct Exporter {
    config: NvmetConfig,
    layout: Layout,
    fs: Box<dyn ConfigFs>,
    backing: Box<dyn Backing>,
    state_dir: PathBuf,
    record: Record,
    live: BTreeMap<String, Live>,
    ports: BTreeMap<u16, Port>,
    /// TCP ports a test took away ([`Exporter::port_down`]).
    down: BTreeSet<u16>,
    shut_down: bool,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("config", &self.config)
            .field("live", &self.live)
            .field("ports", &self.ports)
            .field("down", &self.down)
            .finish_non_exhaustive()
    }
}

impl Exporter {
    /// Opens the exporter of the simulator whose state folder is
    /// `state_dir`, and reconciles configfs with `desired`: subsystems it
    /// made earlier are adopted (or re-created when their device no longer
    /// holds their image), those no longer wanted are removed, missing ones
    /// are made. Foreign subsystems are never touched; one in the way is an
    /// error.
    pub fn open(
        config: NvmetConfig,
        state_dir: &Path,
        desired: &[Export],
        fs: Box<dyn ConfigFs>,
        backing: Box<dyn Backing>,
    ) -> Result<Exporter, NvmetError> {
        let layout = Layout::new(&config.configfs);
        if !fs.exists(&layout.subsystems()) || !fs.exists(&layout.ports()) {
            return Err(NvmetError::NotAvailable(config.configfs.clone()));
        }
        let record = Record::load(state_dir).map_err(|source| NvmetError::Record {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let mut exporter = Exporter {
            config,
            layout,
            fs,
            backing,
            state_dir: state_dir.to_path_buf(),
            record,
            live: BTreeMap::new(),
            ports: BTreeMap::new(),
            down: BTreeSet::new(),
            shut_down: false,
        };
        exporter.adopt()?;
        exporter.converge(desired)?;
        Ok(exporter)
    }

    fn save_record(&self) -> Result<(), NvmetError> {
        self.record
            .save(&self.state_dir)
            .map_err(|source| NvmetError::Record {
                path: self.state_dir.clone(),
                source,
            })
    }

    /// Makes nvmet serve exactly `desired` (of what is ours). On failure,
    /// what was there before is put back as far as possible, and the error
    /// returned.
    pub fn sync(&mut self, desired: &[Export]) -> Result<(), NvmetError> {
        if self.shut_down {
            return Ok(());
        }
        let before: Vec<Export> = self
            .live
            .iter()
            .map(|(nqn, l)| Export {
                nqn: nqn.clone(),
                image: l.image.clone(),
                port: l.port,
                size: l.size,
                hosts: l.hosts.clone(),
            })
            .collect();
        let result = self.converge(desired);
        if let Err(e) = &result {
            tracing::warn!(error = %e, "nvmet change failed; putting the exports back");
            if let Err(again) = self.converge(&before) {
                tracing::error!(error = %again, "cannot put the nvmet exports back");
            }
        }
        result
    }

    fn converge(&mut self, desired: &[Export]) -> Result<(), NvmetError> {
        let mut want: BTreeMap<&str, &Export> = BTreeMap::new();
        for export in desired {
            check_nqn(&export.nqn)?;
            if want.insert(&export.nqn, export).is_some() {
                return Err(NvmetError::DuplicateNqn(export.nqn.clone()));
            }
        }
        // Removals first: they free NQNs, devices and ports.
        let stale: Vec<String> = self
            .live
            .iter()
            .filter(|(nqn, l)| want.get(nqn.as_str()).is_none_or(|e| e.image != l.image))
            .map(|(nqn, _)| nqn.clone())
            .collect();
        for nqn in stale {
            self.unexport(&nqn)?;
        }
        for export in want.values() {
            match self.live.get(&export.nqn).cloned() {
                None => self.export(export)?,
                Some(live) => {
                    if live.port != export.port {
                        self.move_port(&export.nqn, live.port, export.port)?;
                    }
                    if live.size != export.size {
                        self.resize(&export.nqn, export.size)?;
                    }
                    if live.hosts != export.hosts {
                        self.set_hosts(&export.nqn, live.hosts.as_ref(), export.hosts.as_ref())?;
                    }
                }
            }
        }
        self.release_ports()?;
        self.release_hosts()
    }

    fn export(&mut self, export: &Export) -> Result<(), NvmetError> {
        let nqn = export.nqn.as_str();
        if self.fs.exists(&self.layout.subsystem(nqn)) {
            return Err(NvmetError::Foreign(nqn.to_owned()));
        }
        let device = self
            .backing
            .attach(&export.image)
            .map_err(NvmetError::Loop)?;
        self.record.subsystems.insert(
            nqn.to_owned(),
            Made {
                device: device.clone(),
                image: export.image.clone(),
            },
        );
        let any_host = export.hosts.is_none();
        let made = self.save_record().and_then(|()| {
            Ok(apply(
                &*self.fs,
                &self.layout.add_subsystem(nqn, &device, any_host),
            )?)
        });
        if let Err(e) = made {
            let _ = self.backing.detach(&device);
            self.record.subsystems.remove(nqn);
            let _ = self.save_record();
            return Err(e);
        }
        self.live.insert(
            nqn.to_owned(),
            Live {
                image: export.image.clone(),
                device,
                port: 0,
                size: export.size,
                hosts: if any_host {
                    None
                } else {
                    Some(BTreeSet::new())
                },
            },
        );
        // The hosts are let in before the subsystem is served on a port.
        if let Some(hosts) = &export.hosts {
            self.set_hosts(nqn, Some(&BTreeSet::new()), Some(hosts))?;
        }
        self.move_port(nqn, 0, export.port)
    }

    fn unexport(&mut self, nqn: &str) -> Result<(), NvmetError> {
        let Some(live) = self.live.get(nqn).cloned() else {
            return Ok(());
        };
        self.unlink_everywhere(nqn)?;
        self.disallow_all(nqn)?;
        apply(&*self.fs, &self.layout.remove_subsystem(nqn))?;
        self.live.remove(nqn);
        if !live.device.is_empty() && self.backing.backing_file(&live.device).is_some() {
            self.backing
                .detach(&live.device)
                .map_err(NvmetError::Loop)?;
        }
        self.record.subsystems.remove(nqn);
        self.save_record()
    }

    /// Removes every port link to `nqn` (a restarted simulator may find it
    /// on more than one).
    fn unlink_everywhere(&mut self, nqn: &str) -> Result<(), NvmetError> {
        let ids = self
            .fs
            .list(&self.layout.ports())
            .map_err(|source| layout::StepError {
                step: format!("list {}", self.layout.ports().display()),
                source,
            })?;
        for id in ids.iter().filter_map(|name| name.parse::<u16>().ok()) {
            if self.fs.exists(&self.layout.port_link(id, nqn)) {
                apply(&*self.fs, &self.layout.unlink(id, nqn))?;
            }
        }
        Ok(())
    }

    fn move_port(&mut self, nqn: &str, from: u16, to: u16) -> Result<(), NvmetError> {
        if from != 0 {
            self.unlink_everywhere(nqn)?;
        }
        if let Some(live) = self.live.get_mut(nqn) {
            live.port = to;
        }
        if self.down.contains(&to) {
            return Ok(());
        }
        let id = self.ensure_port(to)?;
        if !self.fs.exists(&self.layout.port_link(id, nqn)) {
            apply(&*self.fs, &self.layout.link(id, nqn))?;
        }
        Ok(())
    }

    fn resize(&mut self, nqn: &str, size: u64) -> Result<(), NvmetError> {
        let Some(live) = self.live.get(nqn).cloned() else {
            return Ok(());
        };
        self.backing
            .refresh(&live.device)
            .map_err(NvmetError::Loop)?;
        let revalidate = self.layout.namespace(nqn).join("revalidate_size");
        apply(&*self.fs, &[layout::Step::Write(revalidate, "1".into())])?;
        if let Some(live) = self.live.get_mut(nqn) {
            live.size = size;
        }
        Ok(())
    }

    /// The NQNs exported now, sorted.
    pub fn exported(&self) -> Vec<String> {
        self.live.keys().cloned().collect()
    }

    /// Removes everything this exporter made and stops exporting: later
    /// commands change nothing in nvmet. For the end of a test.
    pub fn shutdown(&mut self) -> Result<(), NvmetError> {
        if self.shut_down {
            return Ok(());
        }
        self.down.clear();
        self.converge(&[])?;
        self.shut_down = true;
        Ok(())
    }
}
