//! The volume context: what the controller hands the node about a volume
//! (where its NVMe/TCP target is, its NQN, its filesystem, the connection's
//! timers), and how the node reads it back.
//!
//! The controller writes the context with [`VolumeContext::to_map`] and the
//! node reads it with [`VolumeContext::from_map`], so a value the node would
//! refuse is refused when the volume is created, with the key's name in the
//! message. The keys are those of the Go driver for the same appliance, so its
//! volumes' contexts keep working. StorageClass parameters, which share these
//! keys and rules, are read by `csi-driver`'s `params` with the checks here.
//!
//! | key              | default   | allowed                                          |
//! |------------------|-----------|--------------------------------------------------|
//! | `nvmeAddress`    | `rdsAddress` | IP address or host name                       |
//! | `nvmePort`       | 4420      | 1–65535                                          |
//! | `nqn`            | (needed)  | an NQN                                           |
//! | `fsType`         | none      | `ext4`, `xfs`                                    |
//! | `ctrlLossTmo`    | 1800 s    | -1 (never give up), 0 (kernel default), 1–604800 |
//! | `reconnectDelay` | 5 s       | 1–3600, at most `ctrlLossTmo`                    |
//! | `keepAliveTmo`   | 5 s       | 0 (kernel default), 1–3600                       |
//! | `fastIoFailTmo`  | -1 (off)  | -1, 0–604800, at most `ctrlLossTmo`              |
//! | `encryption`     | none      | `luks2`                                          |
//!
//! `encryption` is how a volume made by an encrypted StorageClass tells
//! every node that stages it: the node then never mounts or formats it in
//! the clear, and refuses a volume that is not encrypted. The controller
//! copies it from the StorageClass and never sees a key.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

/// Why a parameter or context value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A key this driver does not know (a typo, most likely).
    #[error("unknown parameter {key:?}; known parameters: {known}")]
    Unknown {
        /// The key.
        key: String,
        /// The known keys, for the message.
        known: String,
    },
    /// A value outside what the parameter allows.
    #[error("invalid {key} {value:?}: must be {expected}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// Two values that do not fit together.
    #[error("{0}")]
    Inconsistent(String),
    /// A key the volume context must have.
    #[error(
        "volume context has no {key}; the volume was not made by this driver or a compatible one"
    )]
    Missing {
        /// The key.
        key: &'static str,
    },
}

/// Parameter and context keys.
pub mod keys {
    /// Folder of the image files on the RDS.
    pub const VOLUME_PATH: &str = "volumePath";
    /// Address of the NVMe/TCP target.
    pub const NVME_ADDRESS: &str = "nvmeAddress";
    /// Port of the NVMe/TCP target.
    pub const NVME_PORT: &str = "nvmePort";
    /// Filesystem for filesystem volumes.
    pub const FS_TYPE: &str = "fsType";
    /// `ctrl_loss_tmo` of the connection.
    pub const CTRL_LOSS_TMO: &str = "ctrlLossTmo";
    /// `reconnect_delay` of the connection.
    pub const RECONNECT_DELAY: &str = "reconnectDelay";
    /// `keep_alive_tmo` of the connection.
    pub const KEEP_ALIVE_TMO: &str = "keepAliveTmo";
    /// `fast_io_fail_tmo` of the connection.
    pub const FAST_IO_FAIL_TMO: &str = "fastIoFailTmo";
    /// The RDS's address (Go driver); the NVMe address when none is given.
    pub const RDS_ADDRESS: &str = "rdsAddress";
    /// Subsystem NQN (volume context only).
    pub const NQN: &str = "nqn";
    /// PVC name, from the provisioner's `--extra-create-metadata`.
    pub const PVC_NAME: &str = "csi.storage.k8s.io/pvc/name";
    /// PVC namespace, from the provisioner's `--extra-create-metadata`.
    pub const PVC_NAMESPACE: &str = "csi.storage.k8s.io/pvc/namespace";
    /// PV name, from the provisioner's `--extra-create-metadata`.
    pub const PV_NAME: &str = "csi.storage.k8s.io/pv/name";
    /// Encryption of the volume on the node (`luks2`).
    pub const ENCRYPTION: &str = "encryption";
}

/// How a volume is encrypted on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encryption {
    /// LUKS2 (dm-crypt, `cryptsetup`), with the key from the node-stage
    /// secret.
    Luks2,
}

impl Encryption {
    /// Parses `luks2`.
    pub fn parse(value: &str) -> Result<Self, ParamError> {
        match value {
            "luks2" => Ok(Self::Luks2),
            _ => Err(ParamError::Invalid {
                key: keys::ENCRYPTION,
                value: value.to_owned(),
                expected: "luks2 (or the parameter left out, for no encryption)",
            }),
        }
    }

    /// The name, as the parameter and the context say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Luks2 => "luks2",
        }
    }
}

impl fmt::Display for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A filesystem the node can make and grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FsType {
    /// ext4.
    Ext4,
    /// XFS.
    Xfs,
}

impl FsType {
    /// Parses `ext4` or `xfs`.
    pub fn parse(value: &str) -> Result<Self, ParamError> {
        match value {
            "ext4" => Ok(Self::Ext4),
            "xfs" => Ok(Self::Xfs),
            _ => Err(ParamError::Invalid {
                key: keys::FS_TYPE,
                value: value.to_owned(),
                expected: "ext4 or xfs",
            }),
        }
    }

    /// The name, as `mkfs.<name>` and mount know it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ext4 => "ext4",
            Self::Xfs => "xfs",
        }
    }
}

impl From<FsType> for node_fs::FsType {
    fn from(fs: FsType) -> Self {
        match fs {
            FsType::Ext4 => node_fs::FsType::Ext4,
            FsType::Xfs => node_fs::FsType::Xfs,
        }
    }
}

impl fmt::Display for FsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Timers of the NVMe/TCP connection, in seconds. `None` leaves the kernel's
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionParams {
    /// How long the kernel keeps reconnecting a lost controller before failing
    /// its I/O for good; `Some(-1)` never gives up (a node may then hang at
    /// shutdown when the RDS is gone).
    pub ctrl_loss_tmo: Option<i32>,
    /// Seconds between reconnection attempts.
    pub reconnect_delay: u32,
    /// Keep-alive timeout.
    pub keep_alive_tmo: Option<u32>,
    /// Seconds after which I/O fails while reconnecting; `None` is off.
    pub fast_io_fail_tmo: Option<u32>,
}

impl Default for ConnectionParams {
    /// Finite, and long enough to ride out a reboot of the RDS.
    fn default() -> Self {
        Self {
            ctrl_loss_tmo: Some(1800),
            reconnect_delay: 5,
            keep_alive_tmo: Some(5),
            fast_io_fail_tmo: None,
        }
    }
}

impl ConnectionParams {
    /// Reads the timers from `map`, keeping the defaults for absent keys.
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, ParamError> {
        let mut params = Self::default();
        if let Some(v) = map.get(keys::CTRL_LOSS_TMO) {
            params.ctrl_loss_tmo = match int(keys::CTRL_LOSS_TMO, v, -1, 604_800, CTRL_LOSS)? {
                0 => None,
                n => Some(n as i32),
            };
        }
        if let Some(v) = map.get(keys::RECONNECT_DELAY) {
            params.reconnect_delay =
                int(keys::RECONNECT_DELAY, v, 1, 3600, "1 to 3600 seconds")? as u32;
        }
        if let Some(v) = map.get(keys::KEEP_ALIVE_TMO) {
            params.keep_alive_tmo = match int(keys::KEEP_ALIVE_TMO, v, 0, 3600, KEEP_ALIVE)? {
                0 => None,
                n => Some(n as u32),
            };
        }
        if let Some(v) = map.get(keys::FAST_IO_FAIL_TMO) {
            params.fast_io_fail_tmo =
                match int(keys::FAST_IO_FAIL_TMO, v, -1, 604_800, FAST_IO_FAIL)? {
                    -1 => None,
                    n => Some(n as u32),
                };
        }
        params.check()?;
        Ok(params)
    }

    /// The kernel refuses a reconnect delay longer than the loss timeout, and
    /// a fast-fail timeout past the loss timeout would never fire.
    fn check(&self) -> Result<(), ParamError> {
        let Some(loss) = self.ctrl_loss_tmo.filter(|&t| t > 0) else {
            return Ok(());
        };
        let loss = loss as u32;
        if self.reconnect_delay > loss {
            return Err(ParamError::Inconsistent(format!(
                "reconnectDelay ({}) must not exceed ctrlLossTmo ({loss})",
                self.reconnect_delay
            )));
        }
        if let Some(fast) = self.fast_io_fail_tmo
            && fast > loss
        {
            return Err(ParamError::Inconsistent(format!(
                "fastIoFailTmo ({fast}) must not exceed ctrlLossTmo ({loss})"
            )));
        }
        Ok(())
    }

    /// Writes the timers into a volume context, in the form `from_map` reads.
    pub fn write_to(&self, map: &mut HashMap<String, String>) {
        map.insert(
            keys::CTRL_LOSS_TMO.into(),
            self.ctrl_loss_tmo.unwrap_or(0).to_string(),
        );
        map.insert(
            keys::RECONNECT_DELAY.into(),
            self.reconnect_delay.to_string(),
        );
        map.insert(
            keys::KEEP_ALIVE_TMO.into(),
            self.keep_alive_tmo.unwrap_or(0).to_string(),
        );
        map.insert(
            keys::FAST_IO_FAIL_TMO.into(),
            self.fast_io_fail_tmo.map_or(-1, i64::from).to_string(),
        );
    }
}

const CTRL_LOSS: &str = "-1 (never give up), 0 (kernel default) or 1 to 604800 seconds";
const KEEP_ALIVE: &str = "0 (kernel default) or 1 to 3600 seconds";
const FAST_IO_FAIL: &str = "-1 (off) or 0 to 604800 seconds";

fn int(
    key: &'static str,
    value: &str,
    min: i64,
    max: i64,
    expected: &'static str,
) -> Result<i64, ParamError> {
    value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| ParamError::Invalid {
            key,
            value: value.to_owned(),
            expected,
        })
}

/// Checks an NVMe/TCP target address: an IP address or a DNS host name. It is
/// written into the kernel's comma-separated connect string, so nothing else
/// may pass.
pub fn check_address(key: &'static str, value: &str) -> Result<String, ParamError> {
    let invalid = || ParamError::Invalid {
        key,
        value: value.to_owned(),
        expected: "an IP address or a host name",
    };
    if value.parse::<IpAddr>().is_ok() {
        return Ok(value.to_owned());
    }
    let host = value.strip_suffix('.').unwrap_or(value);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(invalid());
    }
    Ok(value.to_owned())
}

/// Checks a port number, 1 to 65535.
pub fn check_port(key: &'static str, value: &str) -> Result<u16, ParamError> {
    Ok(int(key, value, 1, 65_535, "a port number, 1 to 65535")? as u16)
}

/// What the node needs to attach a volume, carried in the volume context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeContext {
    /// NVMe/TCP target address.
    pub nvme_address: String,
    /// NVMe/TCP target port.
    pub nvme_port: u16,
    /// Subsystem NQN.
    pub nqn: String,
    /// Filesystem for filesystem volumes, when the capability names none.
    pub fs_type: Option<FsType>,
    /// Connection timers.
    pub connection: ConnectionParams,
    /// The image on the RDS (informational; the Go driver's `volumePath`).
    pub image_path: Option<String>,
    /// How the node encrypts the volume; `None`: in the clear.
    pub encryption: Option<Encryption>,
}

impl VolumeContext {
    /// The context as a map, with the Go driver's keys.
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::new();
        map.insert(keys::NVME_ADDRESS.into(), self.nvme_address.clone());
        map.insert(keys::NVME_PORT.into(), self.nvme_port.to_string());
        map.insert(keys::NQN.into(), self.nqn.clone());
        if let Some(fs) = self.fs_type {
            map.insert(keys::FS_TYPE.into(), fs.to_string());
        }
        if let Some(path) = &self.image_path {
            map.insert(keys::VOLUME_PATH.into(), path.clone());
        }
        if let Some(encryption) = self.encryption {
            map.insert(keys::ENCRYPTION.into(), encryption.to_string());
        }
        self.connection.write_to(&mut map);
        map
    }

    /// Reads a context this driver or the Go driver wrote. Keys the node does
    /// not use are ignored: the context is the controller's word, not a user's.
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, ParamError> {
        let nvme_address = match (map.get(keys::NVME_ADDRESS), map.get(keys::RDS_ADDRESS)) {
            (Some(v), _) => check_address(keys::NVME_ADDRESS, v)?,
            (None, Some(v)) => check_address(keys::RDS_ADDRESS, v)?,
            (None, None) => {
                return Err(ParamError::Missing {
                    key: keys::NVME_ADDRESS,
                });
            }
        };
        let nvme_port = match map.get(keys::NVME_PORT) {
            Some(v) => check_port(keys::NVME_PORT, v)?,
            None => 4420,
        };
        let nqn = map
            .get(keys::NQN)
            .ok_or(ParamError::Missing { key: keys::NQN })?;
        routeros::Nqn::new(nqn).map_err(|_| ParamError::Invalid {
            key: keys::NQN,
            value: nqn.clone(),
            expected: "an NQN such as nqn.2000-02.com.mikrotik:pvc-1",
        })?;
        Ok(Self {
            nvme_address,
            nvme_port,
            nqn: nqn.clone(),
            fs_type: map
                .get(keys::FS_TYPE)
                .map(|v| FsType::parse(v))
                .transpose()?,
            connection: ConnectionParams::from_map(map)?,
            image_path: map.get(keys::VOLUME_PATH).cloned(),
            encryption: map
                .get(keys::ENCRYPTION)
                .map(|v| Encryption::parse(v))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn addresses() {
        for ok in [
            "10.0.0.1",
            "fd00::1",
            "rds.lab",
            "rds",
            "rds-1.storage.example.com.",
        ] {
            assert!(check_address("nvmeAddress", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a,b",
            "a=b",
            "a b",
            "a..b",
            "-a",
            "a-",
            "[fd00::1]",
            "a/b",
            &"a".repeat(64),
        ] {
            assert!(check_address("nvmeAddress", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn context_round_trips() {
        let ctx = VolumeContext {
            nvme_address: "10.0.0.1".into(),
            nvme_port: 4420,
            nqn: "nqn.2024-01.io.srvlab.csi.rds:pvc-1".into(),
            fs_type: Some(FsType::Xfs),
            connection: ConnectionParams {
                ctrl_loss_tmo: None,
                reconnect_delay: 3,
                keep_alive_tmo: None,
                fast_io_fail_tmo: Some(0),
            },
            image_path: Some("/raid10/k8s/pvc-1.img".into()),
            encryption: Some(Encryption::Luks2),
        };
        let map = ctx.to_map();
        assert_eq!(map["encryption"], "luks2");
        assert_eq!(map["ctrlLossTmo"], "0");
        assert_eq!(map["fastIoFailTmo"], "0");
        assert_eq!(map["volumePath"], "/raid10/k8s/pvc-1.img");
        assert_eq!(VolumeContext::from_map(&map).unwrap(), ctx);
        let defaults = VolumeContext {
            connection: ConnectionParams::default(),
            fs_type: None,
            image_path: None,
            encryption: None,
            ..ctx
        };
        assert_eq!(
            VolumeContext::from_map(&defaults.to_map()).unwrap(),
            defaults
        );
    }

    #[test]
    fn go_driver_contexts_are_read() {
        // As the Go driver wrote them (no fsType; volumePath is the image).
        let ctx = VolumeContext::from_map(&map(&[
            ("rdsAddress", "10.42.68.1"),
            ("nvmeAddress", "10.42.68.1"),
            ("nvmePort", "4420"),
            (
                "nqn",
                "nqn.2000-02.com.mikrotik:pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1",
            ),
            (
                "volumePath",
                "/storage-pool/metal-csi/pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1.img",
            ),
            ("ctrlLossTmo", "-1"),
            ("reconnectDelay", "5"),
            ("keepAliveTmo", "0"),
            ("migrationTimeoutSeconds", "300"),
        ]))
        .unwrap();
        assert_eq!(
            ctx.nqn,
            "nqn.2000-02.com.mikrotik:pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1"
        );
        assert_eq!(ctx.connection.ctrl_loss_tmo, Some(-1));
        assert_eq!(ctx.connection.keep_alive_tmo, None);
        assert_eq!(ctx.fs_type, None);
        // Only rdsAddress: it is the target.
        let ctx = VolumeContext::from_map(&map(&[
            ("rdsAddress", "10.42.68.1"),
            ("nqn", "nqn.2000-02.com.mikrotik:x"),
        ]))
        .unwrap();
        assert_eq!(
            (ctx.nvme_address.as_str(), ctx.nvme_port),
            ("10.42.68.1", 4420)
        );
    }

    #[test]
    fn contexts_missing_what_the_node_needs_are_refused() {
        assert_eq!(
            VolumeContext::from_map(&map(&[("nqn", "nqn.x:y")])).unwrap_err(),
            ParamError::Missing { key: "nvmeAddress" }
        );
        assert_eq!(
            VolumeContext::from_map(&map(&[("nvmeAddress", "10.0.0.1")])).unwrap_err(),
            ParamError::Missing { key: "nqn" }
        );
        assert!(
            VolumeContext::from_map(&map(&[("nvmeAddress", "10.0.0.1"), ("nqn", "x,y")])).is_err()
        );
    }

    #[test]
    fn encryption_is_luks2_or_nothing() {
        let base = [
            ("nvmeAddress", "10.0.0.1"),
            ("nqn", "nqn.2000-02.com.mikrotik:x"),
        ];
        assert_eq!(
            VolumeContext::from_map(&map(&base)).unwrap().encryption,
            None
        );
        let with = |v| {
            let mut m = map(&base);
            m.insert("encryption".into(), v);
            VolumeContext::from_map(&m)
        };
        assert_eq!(
            with("luks2".into()).unwrap().encryption,
            Some(Encryption::Luks2)
        );
        for bad in ["", "luks1", "LUKS2", "true"] {
            let e = with(bad.into()).unwrap_err().to_string();
            assert!(
                e.contains("invalid encryption") && e.contains("luks2"),
                "{e}"
            );
        }
    }
}
