//! Reconciling with configfs when a simulator starts: taking over what its
//! record says it made (see [`super::record`]).

use std::path::PathBuf;

use super::{Exporter, Live, NvmetError, Port};

impl Exporter {
    /// Takes over what the record says was made and is still there.
    pub(super) fn adopt(&mut self) -> Result<(), NvmetError> {
        for id in self.record.ports.clone() {
            let port = self.layout.port(id);
            match self.read_port(id) {
                Some((_, trsvcid)) if self.fs.exists(&port) => {
                    self.ports.insert(trsvcid, Port { id, ours: true });
                }
                _ => {
                    self.record.ports.remove(&id);
                }
            }
        }
        for (nqn, made) in self.record.subsystems.clone() {
            if !self.fs.exists(&self.layout.subsystem(&nqn)) {
                // Made by a run that stopped half-way: a device it attached
                // may still hold the image.
                if !made.device.is_empty()
                    && self.backing.backing_file(&made.device).as_deref() == Some(&made.image)
                {
                    let _ = self.backing.detach(&made.device);
                }
                self.record.subsystems.remove(&nqn);
                continue;
            }
            let device = self
                .fs
                .read(&self.layout.namespace(&nqn).join("device_path"))
                .unwrap_or_default();
            // A device that no longer holds the image makes the export differ
            // from any wanted one, so converging re-creates it.
            let image = if self.backing.backing_file(&device).as_deref() == Some(&made.image) {
                made.image.clone()
            } else {
                PathBuf::new()
            };
            let port = self.linked_port(&nqn).unwrap_or(0);
            let hosts = self.read_hosts(&nqn);
            self.live.insert(
                nqn.clone(),
                Live {
                    image,
                    device,
                    port,
                    size: 0,
                    hosts,
                },
            );
        }
        let gone: Vec<String> = self
            .record
            .hosts
            .iter()
            .filter(|h| !self.fs.exists(&self.layout.host(h)))
            .cloned()
            .collect();
        for host in gone {
            self.record.hosts.remove(&host);
        }
        self.save_record()
    }

    /// The TCP port of the first port that serves `nqn`, adopting that port.
    fn linked_port(&mut self, nqn: &str) -> Option<u16> {
        let ids = self.fs.list(&self.layout.ports()).ok()?;
        for id in ids.iter().filter_map(|name| name.parse::<u16>().ok()) {
            if self.fs.exists(&self.layout.port_link(id, nqn))
                && let Some((_, trsvcid)) = self.read_port(id)
            {
                let ours = self.record.ports.contains(&id);
                self.ports.entry(trsvcid).or_insert(Port { id, ours });
                return Some(trsvcid);
            }
        }
        None
    }

    /// `(traddr, trsvcid)` of TCP port `id`.
    pub(super) fn read_port(&self, id: u16) -> Option<(String, u16)> {
        let port = self.layout.port(id);
        let trtype = self.fs.read(&port.join("addr_trtype")).ok()?;
        if trtype != "tcp" {
            return None;
        }
        let traddr = self.fs.read(&port.join("addr_traddr")).ok()?;
        let trsvcid = self
            .fs
            .read(&port.join("addr_trsvcid"))
            .ok()?
            .parse()
            .ok()?;
        Some((traddr, trsvcid))
    }
}
