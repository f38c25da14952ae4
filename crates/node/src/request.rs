//! What the node's operations take: plain values, checked by the caller with
//! [`required`] and [`absolute`] in the order the CSI spec's error tables
//! want, so that a missing argument is reported before anything is looked up.

use std::collections::HashMap;
use std::path::{Component, PathBuf};

use node_fs::secret::Passphrase;

use crate::context::{FsType, VolumeContext};
use crate::error::{NodeError, Result};

/// The names of the keys in the node-stage (and node-publish, node-expand)
/// Secret that the node reads.
pub mod secret_keys {
    /// The passphrase of an encrypted volume.
    pub const PASSPHRASE: &str = "encryptionPassphrase";
    /// The passphrase before a rotation: a stage whose passphrase no key
    /// slot takes opens the volume with this one and adds the new one.
    pub const PREVIOUS_PASSPHRASE: &str = "previousEncryptionPassphrase";
}

/// An encrypted volume's keys, from a request's secrets: the passphrase, and
/// the one before it while a rotation is under way. Printed, they show
/// nothing (see [`Passphrase`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeKeys {
    /// `encryptionPassphrase`.
    pub current: Option<Passphrase>,
    /// `previousEncryptionPassphrase`.
    pub previous: Option<Passphrase>,
}

impl VolumeKeys {
    /// Takes the keys out of a request's secrets (the map is consumed; the
    /// strings taken become [`Passphrase`]s without a copy). An empty value
    /// counts as absent.
    pub fn from_secrets(mut secrets: HashMap<String, String>) -> Self {
        let mut take = |key: &str| {
            secrets
                .remove(key)
                .map(Passphrase::from_string)
                .filter(|p| !p.is_empty())
        };
        Self {
            current: take(secret_keys::PASSPHRASE),
            previous: take(secret_keys::PREVIOUS_PASSPHRASE),
        }
    }

    /// Keys with just `passphrase` (for tests and tools).
    pub fn of(passphrase: &str) -> Self {
        Self {
            current: Some(Passphrase::from_string(passphrase.to_owned())),
            previous: None,
        }
    }
}

/// How a volume is to be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// Filesystem or raw block.
    pub kind: VolumeKind,
    /// Whether the workload may only read.
    pub read_only: bool,
    /// Whether at most one publication on this node may exist at a time
    /// (CSI's SINGLE_NODE_SINGLE_WRITER).
    pub single_writer: bool,
}

/// Filesystem or raw block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeKind {
    /// A raw block device, bound onto a file at the target path.
    Block,
    /// A filesystem, mounted at the staging path and bound into pods.
    Filesystem {
        /// The filesystem asked for; `None` takes the volume context's, then
        /// the node's default.
        fs_type: Option<FsType>,
        /// Mount options, applied as given (they may hold secrets: never log).
        mount_flags: Vec<String>,
    },
}

/// NodeStageVolume's arguments.
#[derive(Debug, Clone)]
pub struct StageRequest {
    /// The volume.
    pub volume_id: String,
    /// Where to stage it (absolute).
    pub staging_path: PathBuf,
    /// How it is used.
    pub capability: Capability,
    /// Where its target is and how to connect.
    pub context: VolumeContext,
    /// The keys from the node-stage secret (for an encrypted volume).
    pub keys: VolumeKeys,
    /// The publish context ControllerPublishVolume returned: the host
    /// identity to connect as (see [`crate::fence`]); empty when the volume
    /// was not published by a controller with attachment.
    pub publish_context: HashMap<String, String>,
}

/// NodePublishVolume's arguments.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// The volume.
    pub volume_id: String,
    /// Where it was staged (absolute).
    pub staging_path: PathBuf,
    /// Where to publish it (absolute).
    pub target_path: PathBuf,
    /// How it is used.
    pub capability: Capability,
    /// Whether the request asks for a read-only publication (besides a
    /// read-only capability).
    pub read_only: bool,
    /// The volume context as the request carries it, read only when the
    /// volume's connection is gone and must be made again.
    pub context: HashMap<String, String>,
    /// The keys from the node-publish secret, needed only to open an
    /// encrypted volume again whose connection is gone.
    pub keys: VolumeKeys,
    /// The publish context as the request carries it, read with the volume
    /// context.
    pub publish_context: HashMap<String, String>,
}

/// NodeExpandVolume's arguments.
#[derive(Debug, Clone)]
pub struct ExpandRequest {
    /// The volume.
    pub volume_id: String,
    /// Where the volume is available, as the request names it.
    pub volume_path: PathBuf,
    /// Where it was staged, when the request says.
    pub staging_path: Option<PathBuf>,
    /// The size the device must reach, in bytes (0: whatever it has).
    pub required_bytes: u64,
    /// The keys from the node-expand secret: growing an encrypted volume's
    /// mapping needs its passphrase.
    pub keys: VolumeKeys,
}

/// `value`, or [`NodeError::BadArgument`] if it is empty.
pub fn required<'a>(what: &'static str, value: &'a str) -> Result<&'a str> {
    if value.is_empty() {
        return Err(NodeError::BadArgument {
            what,
            problem: "is required".into(),
        });
    }
    Ok(value)
}

/// `value` as a path, or [`NodeError::BadArgument`] if it is empty, relative
/// or climbs with `..`.
pub fn absolute(what: &'static str, value: &str) -> Result<PathBuf> {
    let value = required(what, value)?;
    let path = PathBuf::from(value);
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err(NodeError::BadArgument {
            what,
            problem: format!("{value:?} must be an absolute path without '..'"),
        });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_taken_from_the_secrets_and_never_shown() {
        let secrets = HashMap::from([
            ("encryptionPassphrase".to_owned(), "s3cr3t-now".to_owned()),
            ("previousEncryptionPassphrase".to_owned(), String::new()),
            ("other".to_owned(), "x".to_owned()),
        ]);
        let keys = VolumeKeys::from_secrets(secrets);
        assert_eq!(
            keys.current.as_ref().map(Passphrase::expose),
            Some(&b"s3cr3t-now"[..])
        );
        assert_eq!(keys.previous, None, "an empty value is no key");
        assert!(!format!("{keys:?}").contains("s3cr3t"));
        assert_eq!(
            VolumeKeys::from_secrets(HashMap::new()),
            VolumeKeys::default()
        );
    }

    #[test]
    fn arguments_say_what_is_wrong() {
        assert_eq!(required("volume ID", "pvc-1").unwrap(), "pvc-1");
        assert_eq!(
            required("volume ID", "").unwrap_err().to_string(),
            "volume ID is required"
        );
        assert_eq!(
            absolute("target path", "/a/b").unwrap(),
            PathBuf::from("/a/b")
        );
        for bad in ["a/b", "/a/../b"] {
            let e = absolute("target path", bad).unwrap_err().to_string();
            assert!(e.contains("must be an absolute path"), "{e}");
        }
        assert_eq!(
            absolute("target path", "").unwrap_err().to_string(),
            "target path is required"
        );
    }
}
