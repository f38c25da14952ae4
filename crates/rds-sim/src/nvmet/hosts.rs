//! Who may connect to an export: nvmet's `allowed_hosts`, so that the fence
//! a test meets is the kernel's own.
//!
//! A disk's `nvme-tcp-server-allow-host-name` is read as host NQNs joined by
//! `,` (the separator docs/routeros-cli.md assumes); empty lets any host in,
//! as RouterOS documents. A subsystem that lets in only some hosts has
//! `attr_allow_any_host` 0 and one `allowed_hosts/` link per host, to a host
//! object under `hosts/`. Host objects are shared by all of nvmet: the
//! exporter makes those that are missing, records them, and removes only
//! those it recorded, once nothing of ours links them.
//!
//! Changing the list of a live export follows the kernel's rules, which are
//! what the driver assumes of RouterOS: a host removed from the list keeps
//! its live connection (nvmet checks the list at connect only) until the
//! export goes away under it.

use std::collections::BTreeSet;

use super::layout::apply;
use super::{Exporter, NvmetError};

/// The hosts a disk's `nvme-tcp-server-allow-host-name` lets in; `None` for
/// any host (the value is empty).
pub fn allowed_hosts(value: &str) -> Option<BTreeSet<String>> {
    let hosts: BTreeSet<String> = value
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect();
    (!hosts.is_empty()).then_some(hosts)
}

/// Checks a host NQN can name a configfs directory.
pub(super) fn check_host(host: &str) -> Result<(), NvmetError> {
    let ok = !host.is_empty()
        && host.len() <= 223
        && host != "."
        && host != ".."
        && !host.contains(['/', '\0', '\n']);
    if ok {
        Ok(())
    } else {
        Err(NvmetError::BadHost(host.to_owned()))
    }
}

impl Exporter {
    /// Makes subsystem `nqn` let in `to` (any host for `None`) instead of
    /// `from`. Hosts are let out before others are let in, and a subsystem
    /// that goes from "any host" to a list is closed before the list is
    /// linked, so there is no moment at which a host is let in that neither
    /// list admits.
    ///
    /// When a step fails, what the subsystem lets in is read back from
    /// configfs, so that putting the exports back knows where it stands.
    pub(super) fn set_hosts(
        &mut self,
        nqn: &str,
        from: Option<&BTreeSet<String>>,
        to: Option<&BTreeSet<String>>,
    ) -> Result<(), NvmetError> {
        let result = self.change_hosts(nqn, from, to);
        let now = match &result {
            Ok(()) => to.cloned(),
            Err(_) => self.read_hosts(nqn),
        };
        if let Some(live) = self.live.get_mut(nqn) {
            live.hosts = now;
        }
        result
    }

    fn change_hosts(
        &mut self,
        nqn: &str,
        from: Option<&BTreeSet<String>>,
        to: Option<&BTreeSet<String>>,
    ) -> Result<(), NvmetError> {
        let empty = BTreeSet::new();
        if from.is_none() && to.is_some() {
            apply(&*self.fs, &self.layout.allow_any_host(nqn, false))?;
        }
        let before = from.unwrap_or(&empty);
        let after = to.unwrap_or(&empty);
        for host in before.difference(after) {
            if self.fs.exists(&self.layout.allowed_host(nqn, host)) {
                apply(&*self.fs, &self.layout.disallow_host(nqn, host))?;
            }
        }
        for host in after.difference(before) {
            check_host(host)?;
            self.ensure_host(host)?;
            if !self.fs.exists(&self.layout.allowed_host(nqn, host)) {
                apply(&*self.fs, &self.layout.allow_host(nqn, host))?;
            }
        }
        if from.is_some() && to.is_none() {
            apply(&*self.fs, &self.layout.allow_any_host(nqn, true))?;
        }
        Ok(())
    }

    /// Removes every `allowed_hosts` link of `nqn` (configfs will not remove
    /// a subsystem that still has them).
    pub(super) fn disallow_all(&mut self, nqn: &str) -> Result<(), NvmetError> {
        let dir = self.layout.subsystem(nqn).join("allowed_hosts");
        let linked = self
            .fs
            .list(&dir)
            .map_err(|source| super::layout::StepError {
                step: format!("list {}", dir.display()),
                source,
            })?;
        for host in linked {
            apply(&*self.fs, &self.layout.disallow_host(nqn, &host))?;
        }
        Ok(())
    }

    /// Makes host object `host` unless it exists; one made here is recorded
    /// (before it is made), one found is somebody else's and only used.
    fn ensure_host(&mut self, host: &str) -> Result<(), NvmetError> {
        if self.fs.exists(&self.layout.host(host)) {
            return Ok(());
        }
        self.record.hosts.insert(host.to_owned());
        self.save_record()?;
        if let Err(e) = apply(&*self.fs, &self.layout.add_host(host)) {
            self.record.hosts.remove(host);
            let _ = self.save_record();
            return Err(e.into());
        }
        Ok(())
    }

    /// Removes the host objects this exporter made that none of its
    /// subsystems lets in any more. One that will not go (something else
    /// links it now) is left, and forgotten.
    pub(super) fn release_hosts(&mut self) -> Result<(), NvmetError> {
        let used: BTreeSet<&String> = self
            .live
            .values()
            .filter_map(|l| l.hosts.as_ref())
            .flatten()
            .collect();
        let unused: Vec<String> = self
            .record
            .hosts
            .iter()
            .filter(|h| !used.contains(h))
            .cloned()
            .collect();
        if unused.is_empty() {
            return Ok(());
        }
        for host in unused {
            if self.fs.exists(&self.layout.host(&host))
                && let Err(e) = apply(&*self.fs, &self.layout.remove_host(&host))
            {
                tracing::warn!(host, error = %e, "host object still in use elsewhere; left");
            }
            self.record.hosts.remove(&host);
        }
        self.save_record()
    }

    /// The hosts subsystem `nqn` lets in now, read from configfs: `None`
    /// for any host.
    pub(super) fn read_hosts(&self, nqn: &str) -> Option<BTreeSet<String>> {
        let any = self
            .fs
            .read(&self.layout.subsystem(nqn).join("attr_allow_any_host"))
            .map(|v| v.trim() == "1")
            .unwrap_or(true);
        if any {
            return None;
        }
        let linked = self
            .fs
            .list(&self.layout.subsystem(nqn).join("allowed_hosts"))
            .unwrap_or_default();
        Some(linked.into_iter().collect())
    }
}
