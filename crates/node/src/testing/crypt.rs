//! [`FakeCrypt`]: the encryption view of a [`FakeWorld`]: LUKS headers with
//! key slots and a label on the images, mappings (`/dev/dm-N`) that show
//! the plaintext, die with their disk and refuse to close while in use.

#[allow(clippy::wildcard_imports)]
use super::*;

use crate::crypt::{Closed, CryptError, Mapping};

/// The fake `cryptsetup` and device-mapper: a view of a [`FakeWorld`].
#[derive(Clone)]
pub struct FakeCrypt(pub(super) FakeWorld);

fn failed(action: &'static str, target: &str, output: &str) -> CryptError {
    use std::os::unix::process::ExitStatusExt;
    CryptError::Failed {
        action,
        target: target.to_owned(),
        status: std::process::ExitStatus::from_raw(1 << 8),
        output: output.to_owned(),
    }
}

impl FakeCrypt {
    /// The disk at `device` that exists now, or the error `cryptsetup`
    /// gives (exit status 4).
    fn disk(&self, action: &'static str, device: &Path) -> Result<Disk, CryptError> {
        let w = self.0.world();
        w.disk_by_path(device, Instant::now())
            .cloned()
            .ok_or_else(|| {
                failed(
                    action,
                    &device.display().to_string(),
                    "Device does not exist or access denied.",
                )
            })
    }

    fn mapping_of(w: &World, m: &FakeMapping) -> Mapping {
        Mapping {
            name: m.name.clone(),
            device: BlockDevice {
                name: format!("dm-{}", m.index),
                path: PathBuf::from(format!("/dev/dm-{}", m.index)),
                size_bytes: m.size,
                diskseq: Some(m.diskseq),
            },
            backing: w.mapping_alive(m).then(|| m.disk.0.clone()),
            luks2: m.luks2,
        }
    }
}

impl crate::crypt::Crypt for FakeCrypt {
    async fn format(
        &self,
        device: &Path,
        key: &Passphrase,
        label: &str,
        _timeout: Duration,
    ) -> Result<(), CryptError> {
        let target = device.display().to_string();
        if self.0.before("luks-format").await {
            return Err(failed("luksFormat", &target, "the fake was told to fail"));
        }
        let disk = self.disk("luksFormat", device)?;
        {
            // Like the real one, whatever the device held is gone.
            let mut w = self.0.world();
            if let Some(image) = w.images.get_mut(&disk.nqn) {
                image.contents = Contents::Luks {
                    keys: vec![key.clone()],
                    label: label.to_owned(),
                    plain: Box::new(Contents::Noise),
                };
            }
        }
        self.0.changed("luks-format").await;
        Ok(())
    }

    async fn open(
        &self,
        device: &Path,
        name: &str,
        key: &Passphrase,
        _timeout: Duration,
    ) -> Result<(), CryptError> {
        let target = device.display().to_string();
        if self.0.before("luks-open").await {
            return Err(failed("open", &target, "the fake was told to fail"));
        }
        node_fs::crypt::check_name(name)?;
        let disk = self.disk("open", device)?;
        {
            let mut w = self.0.world();
            let taken = w
                .mappings
                .iter()
                .any(|m| m.name == name || (m.disk == (disk.name.clone(), disk.diskseq)));
            if taken {
                return Err(CryptError::Taken {
                    device: target,
                    name: name.to_owned(),
                    output: "Device already exists.".into(),
                });
            }
            match w.images.get(&disk.nqn).map(|i| &i.contents) {
                Some(Contents::Luks { keys, .. }) if keys.contains(key) => {}
                Some(Contents::Luks { .. }) => {
                    return Err(CryptError::WrongKey { device: target });
                }
                _ => {
                    return Err(failed(
                        "open",
                        &target,
                        "Device is not a valid LUKS device.",
                    ));
                }
            }
            add_mapping(&mut w, name, &disk, true);
        }
        self.0.changed("luks-open").await;
        Ok(())
    }

    async fn close(&self, name: &str, _timeout: Duration) -> Result<Closed, CryptError> {
        if self.0.before("luks-close").await {
            return Err(failed("close", name, "the fake was told to fail"));
        }
        {
            let mut w = self.0.world();
            let Some(at) = w.mappings.iter().position(|m| m.name == name) else {
                return Ok(Closed::NotOpen);
            };
            let node = format!("/dev/dm-{}", w.mappings[at].index);
            let root = PathBuf::from(format!("/dm-{}", w.mappings[at].index));
            let in_use = w.held_mappings.contains(name)
                || w.mounts
                    .iter()
                    .any(|m| m.source == node || (m.fs_type == "devtmpfs" && m.root == root));
            if in_use {
                return Err(CryptError::Busy {
                    name: name.to_owned(),
                    output: format!("Device {name} is still in use."),
                });
            }
            w.mappings.remove(at);
        }
        self.0.changed("luks-close").await;
        Ok(Closed::Closed)
    }

    async fn resize(
        &self,
        name: &str,
        key: Option<&Passphrase>,
        _timeout: Duration,
    ) -> Result<(), CryptError> {
        if self.0.before("luks-resize").await {
            return Err(failed("resize", name, "the fake was told to fail"));
        }
        {
            let mut w = self.0.world();
            let Some(at) = w.mappings.iter().position(|m| m.name == name) else {
                return Err(failed(
                    "resize",
                    name,
                    &format!("Device {name} is not active."),
                ));
            };
            let m = w.mappings[at].clone();
            // The volume key is in the kernel's keyring, as it is by default.
            let Some(key) = key else {
                return Err(failed("resize", name, "Nothing to read on input."));
            };
            let takes = matches!(
                w.images.get(&m.nqn).map(|i| &i.contents),
                Some(Contents::Luks { keys, .. }) if keys.contains(key)
            );
            if !takes {
                return Err(CryptError::WrongKey {
                    device: name.to_owned(),
                });
            }
            let Some(disk) = w
                .disks
                .iter()
                .find(|d| d.name == m.disk.0 && d.diskseq == m.disk.1)
            else {
                return Err(failed("resize", name, "Cannot resize: the device is gone."));
            };
            let size = disk.size.saturating_sub(LUKS_HEADER);
            w.mappings[at].size = size;
        }
        self.0.changed("luks-resize").await;
        Ok(())
    }

    async fn add_key(
        &self,
        device: &Path,
        existing: &Passphrase,
        new: &Passphrase,
        _timeout: Duration,
    ) -> Result<(), CryptError> {
        let target = device.display().to_string();
        if self.0.before("luks-add-key").await {
            return Err(failed("luksAddKey", &target, "the fake was told to fail"));
        }
        let disk = self.disk("luksAddKey", device)?;
        {
            let mut w = self.0.world();
            let Some(Contents::Luks { keys, .. }) =
                w.images.get_mut(&disk.nqn).map(|i| &mut i.contents)
            else {
                return Err(failed(
                    "luksAddKey",
                    &target,
                    "Device is not a valid LUKS device.",
                ));
            };
            if !keys.contains(existing) {
                return Err(CryptError::WrongKey { device: target });
            }
            if !keys.contains(new) {
                keys.push(new.clone());
            }
        }
        self.0.changed("luks-add-key").await;
        Ok(())
    }

    async fn set_label(
        &self,
        device: &Path,
        label: &str,
        _timeout: Duration,
    ) -> Result<(), CryptError> {
        let target = device.display().to_string();
        if self.0.before("luks-label").await {
            return Err(failed("config", &target, "the fake was told to fail"));
        }
        let disk = self.disk("config", device)?;
        {
            let mut w = self.0.world();
            let Some(Contents::Luks { label: now, .. }) =
                w.images.get_mut(&disk.nqn).map(|i| &mut i.contents)
            else {
                return Err(failed(
                    "config",
                    &target,
                    "Device is not a valid LUKS device.",
                ));
            };
            label.clone_into(now);
        }
        self.0.changed("luks-label").await;
        Ok(())
    }

    fn mapping(&self, name: &str) -> Result<Option<Mapping>, CryptError> {
        let w = self.0.world();
        Ok(w.mappings
            .iter()
            .find(|m| m.name == name)
            .map(|m| Self::mapping_of(&w, m)))
    }

    fn mappings(&self) -> Result<Vec<Mapping>, CryptError> {
        let w = self.0.world();
        Ok(w.mappings.iter().map(|m| Self::mapping_of(&w, m)).collect())
    }
}
