//! StorageClass parameters and the volume context, validated.
//!
//! The controller reads StorageClass parameters in CreateVolume and hands the
//! node everything it needs in the volume context, which the node reads back.
//! The context and the checks both share live in the node crate
//! ([`node::context`], re-exported here), so a value the node would refuse is
//! refused when the volume is created, with the parameter's name in the message.
//!
//! The keys are those of the Go driver for the same appliance, so its
//! StorageClasses and its volumes' contexts keep working (see [`GO_IGNORED`]).
//!
//! | parameter        | default                 | allowed                                  |
//! |------------------|-------------------------|------------------------------------------|
//! | `volumePath`     | `--volume-path`         | absolute path on a pool                  |
//! | `nvmeAddress`    | `--nvme-address`, else `rdsAddress`, else `--rds-address` | IP address or host name |
//! | `nvmePort`       | 4420                    | 1–65535                                  |
//! | `fsType`         | ext4                    | `ext4`, `xfs`                            |
//! | `ctrlLossTmo`    | 1800 s                  | -1 (never give up), 0 (kernel default), 1–604800 |
//! | `reconnectDelay` | 5 s                     | 1–3600, at most `ctrlLossTmo`            |
//! | `keepAliveTmo`   | 5 s                     | 0 (kernel default), 1–3600               |
//! | `fastIoFailTmo`  | -1 (off)                | -1, 0–604800, at most `ctrlLossTmo`      |
//! | `encryption`     | none                    | `luks2` (the key: the node-stage secret) |

use std::collections::HashMap;

pub use node::context::{
    ConnectionParams, Encryption, FsType, ParamError, VolumeContext, check_address, check_port,
    keys,
};
use routeros::RdsPath;

/// Go driver parameters that are accepted and ignored: `sshPort` (the
/// controller's flags say how to reach the RDS), `nqnPrefix` (the NQN prefix is
/// the driver's, so that orphan cleanup can tell its connections from others),
/// `migrationTimeoutSeconds` and `btrfsFSLabel` (features of that driver this
/// one does not have).
pub const GO_IGNORED: &[&str] = &[
    "sshPort",
    "nqnPrefix",
    "migrationTimeoutSeconds",
    "btrfsFSLabel",
];

/// Defaults for what a StorageClass leaves out, from the plugin's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// `--volume-path`.
    pub volume_path: RdsPath,
    /// `--nvme-address`, else the RDS's address.
    pub nvme_address: String,
    /// 4420 unless configured.
    pub nvme_port: u16,
    /// ext4 unless configured.
    pub fs_type: FsType,
}

/// Everything CreateVolume takes from the StorageClass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeParams {
    /// Folder of the image.
    pub volume_path: RdsPath,
    /// Where the node connects.
    pub nvme_address: String,
    /// Port of the export.
    pub nvme_port: u16,
    /// Filesystem when the capability names none.
    pub fs_type: FsType,
    /// Connection timers.
    pub connection: ConnectionParams,
    /// Namespace and name of the PVC, when the provisioner passes them.
    pub pvc: Option<(String, String)>,
    /// Encryption on the node; the controller only passes it on.
    pub encryption: Option<Encryption>,
}

/// The keys a StorageClass may use.
const KNOWN: &[&str] = &[
    keys::VOLUME_PATH,
    keys::NVME_ADDRESS,
    keys::NVME_PORT,
    keys::FS_TYPE,
    keys::CTRL_LOSS_TMO,
    keys::RECONNECT_DELAY,
    keys::KEEP_ALIVE_TMO,
    keys::FAST_IO_FAIL_TMO,
    keys::ENCRYPTION,
    keys::RDS_ADDRESS,
    keys::PVC_NAME,
    keys::PVC_NAMESPACE,
    keys::PV_NAME,
];

impl VolumeParams {
    /// Validates StorageClass parameters. Unknown keys are refused, so that a
    /// misspelt parameter is not silently ignored.
    pub fn parse(map: &HashMap<String, String>, defaults: &Defaults) -> Result<Self, ParamError> {
        let mut unknown: Vec<&String> = map
            .keys()
            .filter(|k| !KNOWN.contains(&k.as_str()) && !GO_IGNORED.contains(&k.as_str()))
            .collect();
        unknown.sort();
        if let Some(key) = unknown.first() {
            return Err(ParamError::Unknown {
                key: (*key).clone(),
                known: KNOWN[..9].join(", "),
            });
        }
        let volume_path = match map.get(keys::VOLUME_PATH) {
            Some(v) => RdsPath::new(v).map_err(|_| ParamError::Invalid {
                key: keys::VOLUME_PATH,
                value: v.clone(),
                expected: "an absolute path on the RDS of letters, digits, '.', '-', '_' and '/', such as /raid10/k8s",
            })?,
            None => defaults.volume_path.clone(),
        };
        let nvme_address = match (map.get(keys::NVME_ADDRESS), map.get(keys::RDS_ADDRESS)) {
            (Some(v), _) => check_address(keys::NVME_ADDRESS, v)?,
            (None, Some(v)) => check_address(keys::RDS_ADDRESS, v)?,
            (None, None) => defaults.nvme_address.clone(),
        };
        let nvme_port = match map.get(keys::NVME_PORT) {
            Some(v) => check_port(keys::NVME_PORT, v)?,
            None => defaults.nvme_port,
        };
        let fs_type = match map.get(keys::FS_TYPE) {
            Some(v) => FsType::parse(v)?,
            None => defaults.fs_type,
        };
        let pvc = match (map.get(keys::PVC_NAMESPACE), map.get(keys::PVC_NAME)) {
            (Some(ns), Some(name)) => Some((ns.clone(), name.clone())),
            _ => None,
        };
        Ok(Self {
            volume_path,
            nvme_address,
            nvme_port,
            fs_type,
            connection: ConnectionParams::from_map(map)?,
            pvc,
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

    fn defaults() -> Defaults {
        Defaults {
            volume_path: RdsPath::new("/storage-pool/metal-csi").unwrap(),
            nvme_address: "10.0.0.1".into(),
            nvme_port: 4420,
            fs_type: FsType::Ext4,
        }
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<VolumeParams, ParamError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        VolumeParams::parse(&map, &defaults())
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let p = parse(&[]).unwrap();
        assert_eq!(p.volume_path.as_str(), "/storage-pool/metal-csi");
        assert_eq!(
            (p.nvme_address.as_str(), p.nvme_port, p.fs_type),
            ("10.0.0.1", 4420, FsType::Ext4)
        );
        assert_eq!(p.connection, ConnectionParams::default());
        assert_eq!(p.connection.ctrl_loss_tmo, Some(1800), "finite by default");
        assert_eq!(p.pvc, None);
        assert_eq!(p.encryption, None);
    }

    #[test]
    fn every_parameter_is_read() {
        let p = parse(&[
            ("volumePath", "/raid10/k8s"),
            ("nvmeAddress", "fd00::10"),
            ("nvmePort", "4421"),
            ("fsType", "xfs"),
            ("ctrlLossTmo", "600"),
            ("reconnectDelay", "2"),
            ("keepAliveTmo", "10"),
            ("fastIoFailTmo", "30"),
            ("encryption", "luks2"),
            ("csi.storage.k8s.io/pvc/name", "data"),
            ("csi.storage.k8s.io/pvc/namespace", "apps"),
            ("csi.storage.k8s.io/pv/name", "pvc-1"),
        ])
        .unwrap();
        assert_eq!(p.volume_path.as_str(), "/raid10/k8s");
        assert_eq!(
            (p.nvme_address.as_str(), p.nvme_port, p.fs_type),
            ("fd00::10", 4421, FsType::Xfs)
        );
        assert_eq!(
            p.connection,
            ConnectionParams {
                ctrl_loss_tmo: Some(600),
                reconnect_delay: 2,
                keep_alive_tmo: Some(10),
                fast_io_fail_tmo: Some(30),
            }
        );
        assert_eq!(p.pvc, Some(("apps".into(), "data".into())));
        assert_eq!(p.encryption, Some(Encryption::Luks2));
    }

    #[test]
    fn go_driver_storage_classes_are_accepted() {
        let p = parse(&[
            ("rdsAddress", "10.42.68.1"),
            ("nvmePort", "4420"),
            ("volumePath", "/storage-pool/metal-csi"),
            ("sshPort", "22"),
            ("nqnPrefix", "nqn.2000-02.com.mikrotik"),
            ("migrationTimeoutSeconds", "300"),
            ("ctrlLossTmo", "-1"),
            ("keepAliveTmo", "0"),
        ])
        .unwrap();
        assert_eq!(
            p.nvme_address, "10.42.68.1",
            "rdsAddress stands in for nvmeAddress"
        );
        assert_eq!(p.connection.ctrl_loss_tmo, Some(-1));
        assert_eq!(p.connection.keep_alive_tmo, None);
        // nvmeAddress wins over rdsAddress.
        let p = parse(&[("rdsAddress", "10.0.0.1"), ("nvmeAddress", "10.0.1.1")]).unwrap();
        assert_eq!(p.nvme_address, "10.0.1.1");
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("volumPath", "/x")], "unknown parameter \"volumPath\""),
            (&[("volumePath", "raid10")], "invalid volumePath"),
            (&[("volumePath", "/raid10/../etc")], "invalid volumePath"),
            (&[("nvmeAddress", "10.0.0.1,nqn=x")], "invalid nvmeAddress"),
            (&[("nvmeAddress", "-bad-.example")], "invalid nvmeAddress"),
            (&[("rdsAddress", "a b")], "invalid rdsAddress"),
            (&[("nvmePort", "0")], "invalid nvmePort"),
            (&[("nvmePort", "65536")], "invalid nvmePort"),
            (&[("nvmePort", "44x")], "invalid nvmePort"),
            (
                &[("fsType", "btrfs")],
                "invalid fsType \"btrfs\": must be ext4 or xfs",
            ),
            (&[("ctrlLossTmo", "-2")], "invalid ctrlLossTmo"),
            (&[("ctrlLossTmo", "604801")], "invalid ctrlLossTmo"),
            (&[("reconnectDelay", "0")], "invalid reconnectDelay"),
            (&[("keepAliveTmo", "-1")], "invalid keepAliveTmo"),
            (&[("fastIoFailTmo", "-2")], "invalid fastIoFailTmo"),
            (
                &[("encryption", "luks1")],
                "invalid encryption \"luks1\": must be luks2",
            ),
            (&[("encryption", "yes")], "invalid encryption"),
            (
                &[("ctrlLossTmo", "10"), ("reconnectDelay", "20")],
                "reconnectDelay (20) must not exceed ctrlLossTmo (10)",
            ),
            (
                &[("ctrlLossTmo", "10"), ("fastIoFailTmo", "20")],
                "fastIoFailTmo (20) must not exceed ctrlLossTmo (10)",
            ),
        ];
        for (pairs, expected) in cases {
            let err = parse(pairs).unwrap_err().to_string();
            assert!(err.contains(expected), "{pairs:?}: {err}");
        }
        // With a loss timeout of "never" or "kernel default", no limit applies.
        assert!(parse(&[("ctrlLossTmo", "-1"), ("reconnectDelay", "3600")]).is_ok());
        assert!(parse(&[("ctrlLossTmo", "0"), ("fastIoFailTmo", "604800")]).is_ok());
    }
}
