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
        let (reachable, admitted) = {
            let w = self.0.world();
            let image = w.images.get(&config.nqn);
            (
                image.is_some_and(|i| i.reachable),
                image.is_some_and(|i| i.admits(&config.host.nqn)),
            )
        };
        if !reachable {
            // The kernel's connect is refused until the deadline.
            tokio::time::sleep_until(deadline).await;
            return Err(refused(config, GaveUp::Deadline, ECONNREFUSED));
        }
        if !admitted {
            // The target refuses the host at every attempt (EIO, which the
            // host retries), and the kernel logs each refusal.
            self.0
                .world()
                .refusals
                .push((config.nqn.clone(), config.host.nqn.clone()));
            tokio::time::sleep_until(deadline).await;
            return Err(refused(config, GaveUp::Deadline, EIO));
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

    async fn disconnect(
        &self,
        nqn: &str,
        hosts: &[String],
        deadline: Instant,
    ) -> Result<(), NvmeError> {
        if self.0.before("disconnect").await {
            return Err(NvmeError::SysfsWrite {
                path: PathBuf::from("/sys/class/nvme/nvme0/delete_controller"),
                source: os(EIO),
            });
        }
        let ours = |c: &Controller| c.nqn == nqn && hosts.contains(&c.hostnqn);
        let (mode, any) = {
            let w = self.0.world();
            (
                w.disconnect.unwrap_or(Disconnect::Prompt),
                w.controllers.iter().any(ours),
            )
        };
        if !any {
            return Ok(());
        }
        match mode {
            Disconnect::Prompt => {
                {
                    let mut w = self.0.world();
                    let gone: Vec<u32> = w
                        .controllers
                        .iter()
                        .filter(|c| ours(c))
                        .map(|c| c.instance)
                        .collect();
                    w.controllers.retain(|c| !ours(c));
                    w.disks.retain(|d| !gone.contains(&d.instance));
                }
                self.0.changed("disconnect").await;
                Ok(())
            }
            Disconnect::Lies => Ok(()),
            Disconnect::Stuck => {
                for c in self.0.world().controllers.iter_mut().filter(|c| ours(c)) {
                    c.state = CtrlState::Deleting;
                }
                self.0.changed("disconnect").await;
                tokio::time::sleep_until(deadline).await;
                let remaining = self
                    .0
                    .world()
                    .controllers
                    .iter()
                    .filter(|c| ours(c))
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

    fn controller_state_of(
        &self,
        nqn: &str,
        hosts: &[String],
    ) -> Result<Option<CtrlState>, NvmeError> {
        Ok(self
            .0
            .world()
            .controllers
            .iter()
            .filter(|c| c.nqn == nqn && hosts.contains(&c.hostnqn))
            .map(|c| c.state.clone())
            .max_by_key(CtrlState::rank))
    }

    fn connected_subsystems(&self, hosts: &[String]) -> Result<Vec<String>, NvmeError> {
        let mut nqns: Vec<String> = self
            .0
            .world()
            .controllers
            .iter()
            .filter(|c| hosts.contains(&c.hostnqn))
            .map(|c| c.nqn.clone())
            .collect();
        nqns.sort();
        nqns.dedup();
        Ok(nqns)
    }

    fn refused(&self, nqn: &str, hostnqn: &str) -> Result<bool, NvmeError> {
        if self.0.world().take_fault("refused") {
            return Err(NvmeError::KernelLog {
                path: PathBuf::from("/dev/kmsg"),
                source: os(EIO),
            });
        }
        Ok(self.0.world().controllers.iter().any(|c| {
            c.nqn == nqn && c.hostnqn == hostnqn && c.refused && c.state != CtrlState::Live
        }))
    }
}
