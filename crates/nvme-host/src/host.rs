//! [`Host`]: the host's NVMe view under an injected root, and the read-only
//! questions asked of sysfs.
//!
//! Every path hangs off the root (`/` in production, a temporary directory in
//! tests). Controllers and namespaces come and go while they are read; a
//! controller whose `state` vanished between listing and reading is skipped as
//! gone, not reported as an error.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::NvmeError;
use crate::fabrics::{DevFabrics, Fabrics};
use crate::scan::{list_dir, read_attr};
use crate::sysfs::{
    BlockDevice, Candidate, Controller, CtrlState, NvmeName, Orphan, OrphanReason, Subsystem,
    choose_namespace, name_order, parse_address, parse_nvme_name, parse_subsystem_name,
};

/// The host's NVMe view, rooted at `root`: `<root>/dev/nvme-fabrics`,
/// `<root>/sys/class/nvme`, `<root>/sys/class/nvme-subsystem`,
/// `<root>/sys/block` and `<root>/sys/module/nvme_core/parameters/multipath`.
#[derive(Clone)]
pub struct Host {
    root: PathBuf,
    pub(crate) fabrics: Arc<dyn Fabrics>,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// The host under `root`, connecting through `<root>/dev/nvme-fabrics`.
    pub fn new(root: impl Into<PathBuf>) -> Host {
        let root = root.into();
        let fabrics = Arc::new(DevFabrics::new(root.join("dev/nvme-fabrics")));
        Host { root, fabrics }
    }

    /// The host under `root`, connecting through `fabrics` instead of the
    /// device (tests use `testing::FakeFabrics`).
    pub fn with_fabrics(root: impl Into<PathBuf>, fabrics: Arc<dyn Fabrics>) -> Host {
        Host {
            root: root.into(),
            fabrics,
        }
    }

    /// The injected root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn class_nvme(&self) -> PathBuf {
        self.root.join("sys/class/nvme")
    }

    fn class_subsystem(&self) -> PathBuf {
        self.root.join("sys/class/nvme-subsystem")
    }

    fn sys_block(&self) -> PathBuf {
        self.root.join("sys/block")
    }

    /// The device node of `name` under the root (`<root>/dev/<name>`).
    pub(crate) fn dev_node(&self, name: &str) -> PathBuf {
        self.root.join("dev").join(name)
    }

    /// Whether native NVMe multipath is on (`nvme_core.multipath`); `None`
    /// when `nvme_core` is not loaded. Informational: the lookups below work
    /// either way, from what sysfs shows.
    pub fn native_multipath(&self) -> Result<Option<bool>, NvmeError> {
        let path = self.root.join("sys/module/nvme_core/parameters/multipath");
        Ok(read_attr(&path)?.map(|v| v == "Y" || v == "1"))
    }

    /// Every NVMe controller of the host, in number order.
    pub fn controllers(&self) -> Result<Vec<Controller>, NvmeError> {
        let class = self.class_nvme();
        let mut names: Vec<String> = list_dir(&class)?
            .into_iter()
            .filter(|n| matches!(parse_nvme_name(n), Some(NvmeName::Controller(_))))
            .collect();
        names.sort_by_key(|n| name_order(n));
        let mut controllers = Vec::with_capacity(names.len());
        for name in names {
            let dir = class.join(&name);
            let Some(state) = read_attr(&dir.join("state"))? else {
                continue; // gone while we looked
            };
            let attr = |a: &str| -> Result<String, NvmeError> {
                Ok(read_attr(&dir.join(a))?.unwrap_or_default())
            };
            controllers.push(Controller {
                state: CtrlState::from_sysfs(&state),
                transport: attr("transport")?,
                subsysnqn: attr("subsysnqn")?,
                hostnqn: attr("hostnqn")?,
                address: parse_address(&attr("address")?),
                name,
            });
        }
        Ok(controllers)
    }

    /// The controllers whose subsystem NQN is `nqn`.
    pub fn controllers_of(&self, nqn: &str) -> Result<Vec<Controller>, NvmeError> {
        let mut all = self.controllers()?;
        all.retain(|c| c.subsysnqn == nqn);
        Ok(all)
    }

    /// The NQNs with at least one controller connected as one of `hosts`
    /// (host NQNs), sorted, once each.
    pub fn connected_subsystems_of(&self, hosts: &[String]) -> Result<Vec<String>, NvmeError> {
        let mut nqns: Vec<String> = self
            .controllers()?
            .into_iter()
            .filter(|c| hosts.contains(&c.hostnqn))
            .map(|c| c.subsysnqn)
            .collect();
        nqns.sort();
        nqns.dedup();
        Ok(nqns)
    }

    /// Whether the target refuses `hostnqn` for `nqn`: a controller of `nqn`
    /// connected as `hostnqn` is not live, and the last thing the kernel log
    /// (`<root>/dev/kmsg`) says about it is a refusal of that host for that
    /// subsystem (see [`crate::refusal`]). Such a controller never serves
    /// again: the target let this host out. An error when the kernel log
    /// cannot be read.
    pub fn refused(&self, nqn: &str, hostnqn: &str) -> Result<bool, NvmeError> {
        let waiting: Vec<Controller> = self
            .controllers_of(nqn)?
            .into_iter()
            .filter(|c| c.hostnqn == hostnqn && c.state != CtrlState::Live)
            .collect();
        if waiting.is_empty() {
            return Ok(false);
        }
        let kmsg = self.root.join("dev/kmsg");
        let events = crate::refusal::read_events(&kmsg).map_err(|source| NvmeError::KernelLog {
            path: kmsg.clone(),
            source,
        })?;
        Ok(waiting
            .iter()
            .any(|c| crate::refusal::last_refused(&events, &c.name, nqn, hostnqn)))
    }

    /// Every NVMe subsystem of the host, in number order.
    pub fn subsystems(&self) -> Result<Vec<Subsystem>, NvmeError> {
        let class = self.class_subsystem();
        let mut names: Vec<String> = list_dir(&class)?
            .into_iter()
            .filter(|n| parse_subsystem_name(n).is_some())
            .collect();
        names.sort_by_key(|n| name_order(n));
        let mut subsystems = Vec::with_capacity(names.len());
        for name in names {
            let dir = class.join(&name);
            let Some(nqn) = read_attr(&dir.join("subsysnqn"))? else {
                continue; // gone while we looked
            };
            let mut controllers = Vec::new();
            let mut namespaces = Vec::new();
            for entry in list_dir(&dir)? {
                match parse_nvme_name(&entry) {
                    Some(NvmeName::Controller(_)) => controllers.push(entry),
                    Some(NvmeName::Namespace(..)) => namespaces.push(entry),
                    _ => {}
                }
            }
            controllers.sort_by_key(|n| name_order(n));
            namespaces.sort_by_key(|n| name_order(n));
            subsystems.push(Subsystem {
                name,
                nqn,
                controllers,
                namespaces,
            });
        }
        Ok(subsystems)
    }

    /// The NQNs of subsystems with at least one controller, sorted, once each.
    pub fn list_connected_subsystems(&self) -> Result<Vec<String>, NvmeError> {
        let mut nqns: Vec<String> = self
            .subsystems()?
            .into_iter()
            .filter(|s| !s.controllers.is_empty())
            .map(|s| s.nqn)
            .collect();
        nqns.sort();
        nqns.dedup();
        Ok(nqns)
    }

    /// The block device of `nqn`: under native multipath the head `nvmeXnY` in
    /// the subsystem's folder; without it the namespace in a controller's
    /// folder; never a hidden per-path `nvmeXcYnZ`. With several namespaces,
    /// the one with nsid 1 (see [`choose_namespace`]). `None` while there is
    /// none, e.g. right after a connect.
    pub fn block_device(&self, nqn: &str) -> Result<Option<BlockDevice>, NvmeError> {
        let mut names: Vec<String> = self
            .subsystems()?
            .into_iter()
            .filter(|s| s.nqn == nqn)
            .flat_map(|s| s.namespaces)
            .collect();
        if names.is_empty() {
            for c in self.controllers_of(nqn)? {
                for entry in list_dir(&self.class_nvme().join(&c.name))? {
                    if let Some(NvmeName::Namespace(..)) = parse_nvme_name(&entry) {
                        names.push(entry);
                    }
                }
            }
        }
        let mut candidates = Vec::new();
        let mut sizes = Vec::new();
        let mut seqs = Vec::new();
        for name in names {
            let dir = self.sys_block().join(&name);
            let size_path = dir.join("size");
            let Some(size) = read_attr(&size_path)? else {
                continue; // not (or no longer) a block device
            };
            let sectors: u64 = size.parse().map_err(|_| NvmeError::BadSysfs {
                path: size_path.clone(),
                text: size.clone(),
            })?;
            let size_bytes = sectors.checked_mul(512).ok_or(NvmeError::BadSysfs {
                path: size_path,
                text: size,
            })?;
            let nsid = read_attr(&dir.join("nsid"))?.and_then(|n| n.parse().ok());
            let diskseq = read_attr(&dir.join("diskseq"))?.and_then(|n| n.parse().ok());
            sizes.push((name.clone(), size_bytes));
            seqs.push((name.clone(), diskseq));
            candidates.push(Candidate { name, nsid });
        }
        let Some(chosen) = choose_namespace(&candidates) else {
            return Ok(None);
        };
        let size_bytes = sizes
            .iter()
            .find(|(n, _)| *n == chosen.name)
            .map_or(0, |(_, s)| *s);
        let diskseq = seqs
            .iter()
            .find(|(n, _)| *n == chosen.name)
            .and_then(|(_, s)| *s);
        Ok(Some(BlockDevice {
            path: Path::new("/dev").join(&chosen.name),
            name: chosen.name.clone(),
            size_bytes,
            diskseq,
        }))
    }

    /// The best state among the controllers of `nqn` (live, then connecting or
    /// resetting, then the others); `None` if none is connected.
    pub fn controller_state(&self, nqn: &str) -> Result<Option<CtrlState>, NvmeError> {
        Ok(self
            .controllers_of(nqn)?
            .into_iter()
            .map(|c| c.state)
            .max_by_key(CtrlState::rank))
    }

    /// Decides whether a connected NQN may be cleaned up, by
    /// [`judge_orphan`] on what sysfs shows.
    pub fn check_orphan(
        &self,
        nqn: &str,
        our_prefix: &str,
        referenced: bool,
    ) -> Result<Orphan, NvmeError> {
        judge_orphan(
            nqn,
            our_prefix,
            referenced,
            || self.block_device(nqn),
            || self.controller_state(nqn),
        )
    }
}

/// Decides whether a connected NQN may be cleaned up:
/// [`Orphan::NotOurs`] when it lacks `our_prefix` (never to be touched: a
/// host's own NVMe-oF root volume must survive), [`Orphan::InUse`] when it
/// has the prefix, is `referenced` by a staged volume and has a block device
/// with a non-zero size, otherwise [`Orphan::Orphan`] with the reason.
/// An empty prefix is refused, since it would claim every NQN. The block
/// device and the controller state are asked for only when needed, from
/// whatever view of the host the caller has.
pub fn judge_orphan(
    nqn: &str,
    our_prefix: &str,
    referenced: bool,
    block_device: impl FnOnce() -> Result<Option<BlockDevice>, NvmeError>,
    controller_state: impl FnOnce() -> Result<Option<CtrlState>, NvmeError>,
) -> Result<Orphan, NvmeError> {
    if our_prefix.is_empty() {
        return Err(NvmeError::Invalid {
            field: "our_prefix",
            reason: "is empty, which would claim every NQN on the host".into(),
        });
    }
    if !nqn.starts_with(our_prefix) {
        return Ok(Orphan::NotOurs);
    }
    if !referenced {
        return Ok(Orphan::Orphan(OrphanReason::NotReferenced));
    }
    match block_device()? {
        Some(device) if device.size_bytes > 0 => Ok(Orphan::InUse),
        _ => Ok(Orphan::Orphan(OrphanReason::NoBlockDevice(
            controller_state()?,
        ))),
    }
}
