//! nvmet ports: made on demand per TCP port, shared when one already
//! listens at the address, removed when unused; and the test controls that
//! take a port away and bring it back.

use std::collections::BTreeSet;

use super::layout::apply;
use super::{Exporter, NvmetError, Port};

impl Exporter {
    /// The port id serving TCP port `trsvcid` at our address: one already
    /// known, one found in configfs (which may be foreign: two ports cannot
    /// listen on one address, so sharing it is the only way), or a new one.
    pub(super) fn ensure_port(&mut self, trsvcid: u16) -> Result<u16, NvmetError> {
        if let Some(port) = self.ports.get(&trsvcid) {
            return Ok(port.id);
        }
        let names = self.fs.list(&self.layout.ports()).unwrap_or_default();
        let ids: BTreeSet<u16> = names.iter().filter_map(|n| n.parse().ok()).collect();
        for &id in &ids {
            if self.read_port(id) == Some((self.config.traddr.clone(), trsvcid)) {
                let ours = self.record.ports.contains(&id);
                self.ports.insert(trsvcid, Port { id, ours });
                return Ok(id);
            }
        }
        // Named after the TCP port when that name is free, for people
        // reading configfs.
        let id = if ids.contains(&trsvcid) || trsvcid == 0 {
            (1..=u16::MAX).find(|id| !ids.contains(id)).unwrap_or(1)
        } else {
            trsvcid
        };
        self.record.ports.insert(id);
        self.save_record()?;
        let steps = self.layout.add_port(id, &self.config.traddr, trsvcid);
        if let Err(e) = apply(&*self.fs, &steps) {
            self.record.ports.remove(&id);
            let _ = self.save_record();
            return Err(e.into());
        }
        self.ports.insert(trsvcid, Port { id, ours: true });
        Ok(id)
    }

    /// Removes our ports that serve nothing of ours, and forgets foreign
    /// ones we no longer use.
    pub(super) fn release_ports(&mut self) -> Result<(), NvmetError> {
        let used: BTreeSet<u16> = self.live.values().map(|l| l.port).collect();
        let unused: Vec<(u16, Port)> = self
            .ports
            .iter()
            .filter(|(trsvcid, _)| !used.contains(trsvcid))
            .map(|(t, p)| (*t, *p))
            .collect();
        for (trsvcid, port) in unused {
            if port.ours {
                self.remove_port(port.id)?;
            }
            self.ports.remove(&trsvcid);
        }
        Ok(())
    }

    fn remove_port(&mut self, id: u16) -> Result<(), NvmetError> {
        let linked = self
            .fs
            .list(&self.layout.port(id).join("subsystems"))
            .unwrap_or_default();
        if !linked.is_empty() {
            // Someone else serves something there; leave the port to them.
            tracing::warn!(id, ?linked, "port still serves foreign subsystems; kept");
        } else {
            apply(&*self.fs, &self.layout.remove_port(id))?;
        }
        self.record.ports.remove(&id);
        self.save_record()
    }

    /// Takes TCP port `trsvcid` away, as if the appliance's target went
    /// away: our subsystems are unlinked from it (nvmet drops their
    /// controllers) and, if we made the port, it is removed, so connections
    /// are refused. Until [`Exporter::port_up`], nothing is served there.
    pub fn port_down(&mut self, trsvcid: u16) -> Result<(), NvmetError> {
        if self.shut_down {
            return Err(NvmetError::Disabled);
        }
        self.down.insert(trsvcid);
        let Some(port) = self.ports.get(&trsvcid).copied() else {
            return Ok(());
        };
        let served: Vec<String> = self
            .live
            .iter()
            .filter(|(_, l)| l.port == trsvcid)
            .map(|(nqn, _)| nqn.clone())
            .collect();
        for nqn in &served {
            if self.fs.exists(&self.layout.port_link(port.id, nqn)) {
                apply(&*self.fs, &self.layout.unlink(port.id, nqn))?;
            }
        }
        if port.ours {
            self.remove_port(port.id)?;
        }
        self.ports.remove(&trsvcid);
        Ok(())
    }

    /// Serves TCP port `trsvcid` again after [`Exporter::port_down`].
    pub fn port_up(&mut self, trsvcid: u16) -> Result<(), NvmetError> {
        if self.shut_down {
            return Err(NvmetError::Disabled);
        }
        self.down.remove(&trsvcid);
        let served: Vec<String> = self
            .live
            .iter()
            .filter(|(_, l)| l.port == trsvcid)
            .map(|(nqn, _)| nqn.clone())
            .collect();
        for nqn in served {
            self.move_port(&nqn, 0, trsvcid)?;
        }
        Ok(())
    }
}
