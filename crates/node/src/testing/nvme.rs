//! [`FakeNvme`]: the NVMe/TCP host view of a [`FakeWorld`]: connects that
//! report `Already` for a live connection, block devices that appear at
//! once, late or never, disconnects that are prompt, stuck or lie.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The fake NVMe/TCP host: a view of a [`FakeWorld`].
#[derive(Clone)]
pub struct FakeNvme(pub(super) FakeWorld);

impl crate::nvme::NvmeHost for FakeNvme {
    async fn connect(
        &self,
        config: &ConnectionConfig,
        deadline: Instant,
        _on_retry: &(dyn Fn(&NvmeError) + Sync),
    ) -> Result<Connected, NvmeError> {
        if self.0.before("connect").await {
            return Err(refused(config, GaveUp::Permanent, EIO));
        }
        let reachable = self
            .0
            .world()
            .images
            .get(&config.nqn)
            .is_some_and(|i| i.reachable);
        if !reachable {
            // The kernel's connect is refused until the deadline.
            tokio::time::sleep_until(deadline).await;
            return Err(refused(config, GaveUp::Deadline, ECONNREFUSED));
        }
        let connected = {
            let now = Instant::now();
            let mut w = self.0.world();
            let exists = w.controllers.iter().any(|c| {
                c.nqn == config.nqn && c.hostnqn == config.host.nqn && !c.state.is_deleting()
            });
            let connected = if exists {
                Connected::Already
            } else {
                let visible_at = match w.appears.unwrap_or(DeviceAppears::AtOnce) {
                    DeviceAppears::AtOnce => Some(now),
                    DeviceAppears::After(d) => Some(now + d),
                    DeviceAppears::Never => None,
                };
                let instance = add_controller(&mut w, &config.nqn, &config.host.nqn, visible_at);
                Connected::New {
                    instance,
                    cntlid: instance + 1,
                }
            };
            w.connects.push(connected);
            connected
        };
        if matches!(connected, Connected::New { .. }) {
            self.0.changed("connect").await;
        }
        Ok(connected)
    }

    async fn wait_for_block_device(
        &self,
        nqn: &str,
        deadline: Instant,
    ) -> Result<BlockDevice, NvmeError> {
        if self.0.before("wait-device").await {
            return Err(NvmeError::NoBlockDevice {
                nqn: nqn.to_owned(),
                seen: "the fake was told to fail".into(),
            });
        }
        loop {
            if let Some(device) = self.block_device(nqn)? {
                return Ok(device);
            }
            if Instant::now() >= deadline {
                let seen = match self.0.world().best_state(nqn) {
                    Some(state) => format!("the controller is {state} and has no namespace"),
                    None => "no controller is connected".into(),
                };
                return Err(NvmeError::NoBlockDevice {
                    nqn: nqn.to_owned(),
                    seen,
                });
            }
            tokio::time::sleep_until(deadline.min(Instant::now() + Duration::from_millis(10)))
                .await;
        }
    }

    async fn disconnect(&self, nqn: &str, deadline: Instant) -> Result<(), NvmeError> {
        if self.0.before("disconnect").await {
            return Err(NvmeError::SysfsWrite {
                path: PathBuf::from("/sys/class/nvme/nvme0/delete_controller"),
                source: os(EIO),
            });
        }
        let (mode, any) = {
            let w = self.0.world();
            (
                w.disconnect.unwrap_or(Disconnect::Prompt),
                w.controllers.iter().any(|c| c.nqn == nqn),
            )
        };
        if !any {
            return Ok(());
        }
        match mode {
            Disconnect::Prompt => {
                {
                    let mut w = self.0.world();
                    w.controllers.retain(|c| c.nqn != nqn);
                    w.disks.retain(|d| d.nqn != nqn);
                }
                self.0.changed("disconnect").await;
                Ok(())
            }
            Disconnect::Lies => Ok(()),
            Disconnect::Stuck => {
                self.0.set_state(nqn, CtrlState::Deleting);
                self.0.changed("disconnect").await;
                tokio::time::sleep_until(deadline).await;
                let remaining = self
                    .0
                    .world()
                    .controllers
                    .iter()
                    .filter(|c| c.nqn == nqn)
                    .map(|c| format!("nvme{} ({})", c.instance, c.state))
                    .collect::<Vec<_>>()
                    .join(", ");
                Err(NvmeError::DisconnectTimedOut {
                    nqn: nqn.to_owned(),
                    remaining,
                    last_write_error: None,
                })
            }
        }
    }

    async fn rescan(&self, nqn: &str) -> Result<(), NvmeError> {
        let failed = self.0.before("rescan").await;
        {
            let mut w = self.0.world();
            let state = w.best_state(nqn);
            if failed || state != Some(CtrlState::Live) {
                return Err(NvmeError::NotLive {
                    nqn: nqn.to_owned(),
                    state,
                });
            }
            let size = w.images.get(nqn).map_or(0, |i| i.size);
            for d in w.disks.iter_mut().filter(|d| d.nqn == nqn) {
                d.size = size;
            }
        }
        self.0.changed("rescan").await;
        Ok(())
    }

    fn block_device(&self, nqn: &str) -> Result<Option<BlockDevice>, NvmeError> {
        let now = Instant::now();
        Ok(self
            .0
            .world()
            .disks
            .iter()
            .filter(|d| d.nqn == nqn && d.visible_at.is_some_and(|t| t <= now))
            .min_by(|a, b| a.name.cmp(&b.name))
            .map(|d| BlockDevice {
                name: d.name.clone(),
                path: Path::new("/dev").join(&d.name),
                size_bytes: d.size,
                diskseq: Some(d.diskseq),
            }))
    }

    fn controller_state(&self, nqn: &str) -> Result<Option<CtrlState>, NvmeError> {
        Ok(self.0.world().best_state(nqn))
    }

    fn connected_subsystems(&self) -> Result<Vec<String>, NvmeError> {
        let mut nqns = self.0.connected();
        nqns.sort();
        nqns.dedup();
        Ok(nqns)
    }
}
