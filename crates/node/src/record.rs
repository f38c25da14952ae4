//! Staging records: what NodeStageVolume did, kept so that NodeUnstageVolume,
//! stats and expansion know the volume's NQN and device without guessing.
//!
//! A record is written beside the staging path (`<staging path>.rds-csi.json`,
//! next to kubelet's own `vol_data.json`) and, with the same content, in the
//! plugin's state folder (`<state>/staged/<volume>.json`), from which a
//! restarted plugin learns what is staged. Both are written atomically
//! (temporary file, fsync, rename), so a crash leaves the old record or the new
//! one, never half of either.
//!
//! [`RecordStore`] is the seam the node's operations use; [`Records`] is its
//! production implementation on files, [`crate::testing::FakeRecords`] the
//! in-memory one for tests.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where staging records are kept.
pub trait RecordStore: Send + Sync + 'static {
    /// The record of a volume staged at `staging_path`, if any.
    fn load(
        &self,
        volume_id: &str,
        staging_path: &Path,
    ) -> Result<Option<StagingRecord>, RecordError>;

    /// The record of a volume, wherever it was staged.
    fn load_indexed(&self, volume_id: &str) -> Result<Option<StagingRecord>, RecordError>;

    /// Every record; unreadable ones as errors beside the good ones.
    fn all(&self) -> Vec<Result<StagingRecord, RecordError>>;

    /// Saves `record`, replacing an earlier one of its volume.
    fn save(&self, record: &StagingRecord) -> impl Future<Output = Result<(), RecordError>> + Send;

    /// Removes the record of a volume staged at `staging_path`; fine if none.
    fn remove(
        &self,
        volume_id: &str,
        staging_path: &Path,
    ) -> impl Future<Output = Result<(), RecordError>> + Send;
}

impl RecordStore for Records {
    fn load(
        &self,
        volume_id: &str,
        staging_path: &Path,
    ) -> Result<Option<StagingRecord>, RecordError> {
        Records::load(self, volume_id, staging_path)
    }

    fn load_indexed(&self, volume_id: &str) -> Result<Option<StagingRecord>, RecordError> {
        Records::load_indexed(self, volume_id)
    }

    fn all(&self) -> Vec<Result<StagingRecord, RecordError>> {
        Records::all(self)
    }

    async fn save(&self, record: &StagingRecord) -> Result<(), RecordError> {
        Records::save(self, record)
    }

    async fn remove(&self, volume_id: &str, staging_path: &Path) -> Result<(), RecordError> {
        Records::remove(self, volume_id, staging_path)
    }
}

/// What was staged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagingRecord {
    /// The CSI volume ID.
    pub volume_id: String,
    /// Subsystem NQN of the volume's NVMe/TCP connection.
    pub nqn: String,
    /// The block device it is used through (`/dev/nvme0n1`; for an
    /// encrypted volume its mapping's, `/dev/dm-0`). Device numbers change
    /// across reconnects; the NQN (and the mapping's name) is the identity,
    /// the device a cache.
    pub device: PathBuf,
    /// The filesystem mounted at the staging path; `None` for block volumes.
    pub fs_type: Option<String>,
    /// Where it was staged.
    pub staging_path: PathBuf,
    /// Whether it was staged read-only.
    pub read_only: bool,
    /// The volume context it was staged with (connection parameters), so a
    /// volume whose controller is gone can be reconnected by a publish that
    /// carries none. Absent in records of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<BTreeMap<String, String>>,
    /// The disk sequence number of `device` when it was staged: a later disk
    /// of the same name (the kernel reuses names) has another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diskseq: Option<u64>,
    /// For an encrypted volume, the name of its LUKS2 mapping
    /// (`/dev/mapper/<name>`); never its key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<String>,
    /// The host identity the volume was connected as, so that a reconnect
    /// uses the same one. Absent in records of older versions, which
    /// connected as the host itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<RecordedHost>,
}

/// A host identity as a staging record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedHost {
    /// The host NQN.
    pub nqn: String,
    /// The host ID.
    pub id: String,
}

impl From<&nvme_host::HostIdentity> for RecordedHost {
    fn from(identity: &nvme_host::HostIdentity) -> Self {
        Self {
            nqn: identity.nqn.clone(),
            id: identity.id.clone(),
        }
    }
}

impl From<&RecordedHost> for nvme_host::HostIdentity {
    fn from(host: &RecordedHost) -> Self {
        Self {
            nqn: host.nqn.clone(),
            id: host.id.clone(),
        }
    }
}

/// Where records live.
#[derive(Debug, Clone)]
pub struct Records {
    state_dir: PathBuf,
}

/// Reading or writing a record failed.
#[derive(Debug, thiserror::Error)]
#[error("staging record {path}: {reason}")]
pub struct RecordError {
    /// The record's file.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

impl Records {
    /// Records indexed under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
        }
    }

    /// The record file beside a staging path.
    pub fn beside(staging_path: &Path) -> PathBuf {
        let mut name = staging_path.file_name().unwrap_or_default().to_os_string();
        name.push(".rds-csi.json");
        staging_path.with_file_name(name)
    }

    fn indexed(&self, volume_id: &str) -> PathBuf {
        self.state_dir
            .join("staged")
            .join(format!("{}.json", file_safe(volume_id)))
    }

    /// Saves `record` in both places.
    pub fn save(&self, record: &StagingRecord) -> Result<(), RecordError> {
        let json = serde_json::to_vec_pretty(record).map_err(|e| RecordError {
            path: Self::beside(&record.staging_path),
            reason: e.to_string(),
        })?;
        write_atomically(&Self::beside(&record.staging_path), &json)?;
        write_atomically(&self.indexed(&record.volume_id), &json)
    }

    /// The record of a volume staged at `staging_path`: beside it, else from
    /// the index (if it names the same staging path).
    pub fn load(
        &self,
        volume_id: &str,
        staging_path: &Path,
    ) -> Result<Option<StagingRecord>, RecordError> {
        if let Some(r) = read(&Self::beside(staging_path))? {
            return Ok(Some(r));
        }
        Ok(read(&self.indexed(volume_id))?.filter(|r| r.staging_path == staging_path))
    }

    /// The record of a volume from the index, wherever it was staged.
    pub fn load_indexed(&self, volume_id: &str) -> Result<Option<StagingRecord>, RecordError> {
        read(&self.indexed(volume_id))
    }

    /// Every indexed record (for start-up recovery). Unreadable ones are
    /// returned as errors beside the good ones, not dropped.
    pub fn all(&self) -> Vec<Result<StagingRecord, RecordError>> {
        let dir = self.state_dir.join("staged");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| read(&p).transpose())
            .collect()
    }

    /// Removes the record from both places; missing files are fine.
    pub fn remove(&self, volume_id: &str, staging_path: &Path) -> Result<(), RecordError> {
        for path in [Self::beside(staging_path), self.indexed(volume_id)] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(RecordError {
                        path,
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// A volume ID as a file name: IDs are slots, but a CO may send anything.
fn file_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn read(path: &Path) -> Result<Option<StagingRecord>, RecordError> {
    let err = |reason: String| RecordError {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| err(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(e.to_string())),
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RecordError> {
    let err = |e: std::io::Error| RecordError {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut file = std::fs::File::create(&tmp).map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    // The record outlives crashes of the node, not just of the plugin.
    file.sync_all().map_err(err)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(err)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(dir: &Path, id: &str) -> StagingRecord {
        StagingRecord {
            volume_id: id.into(),
            nqn: format!("nqn.2024-01.io.srvlab.csi.rds:{id}"),
            device: "/dev/nvme0n1".into(),
            fs_type: Some("ext4".into()),
            staging_path: dir.join(format!("{id}/globalmount")),
            read_only: false,
            connection: Some(BTreeMap::from([(
                "nvmeAddress".to_owned(),
                "10.0.0.5".to_owned(),
            )])),
            diskseq: Some(3),
            mapping: None,
            host: Some(RecordedHost {
                nqn: "nqn.2024-01.io.srvlab.csi.rds:node:worker-1".into(),
                id: "0a8b4ec9-6b1f-8c2e-9d3a-5f6e7d8c9b0a".into(),
            }),
        }
    }

    #[test]
    fn records_of_the_previous_version_are_read() {
        let old = r#"{"volume_id":"pvc-3","nqn":"nqn.2024-01.io.srvlab.csi.rds:pvc-3",
            "device":"/dev/nvme0n1","fs_type":null,"staging_path":"/s/pvc-3","read_only":false}"#;
        let r: StagingRecord = serde_json::from_str(old).unwrap();
        assert_eq!(r.connection, None);
        assert_eq!(r.diskseq, None);
        assert_eq!(r.fs_type, None);
        assert_eq!(r.host, None, "connected as the host itself");
    }

    #[test]
    fn saved_beside_and_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::new(dir.path().join("state"));
        let r = record(dir.path(), "pvc-1");
        records.save(&r).unwrap();
        assert!(dir.path().join("pvc-1/globalmount.rds-csi.json").exists());
        assert_eq!(
            records.load("pvc-1", &r.staging_path).unwrap(),
            Some(r.clone())
        );
        // The index alone still answers.
        std::fs::remove_file(Records::beside(&r.staging_path)).unwrap();
        assert_eq!(
            records.load("pvc-1", &r.staging_path).unwrap(),
            Some(r.clone())
        );
        // ...but not for another staging path.
        assert_eq!(
            records
                .load("pvc-1", &dir.path().join("elsewhere"))
                .unwrap(),
            None
        );
        assert_eq!(records.all().len(), 1);
        records.remove("pvc-1", &r.staging_path).unwrap();
        records.remove("pvc-1", &r.staging_path).unwrap();
        assert_eq!(records.load("pvc-1", &r.staging_path).unwrap(), None);
        assert!(records.all().is_empty());
    }

    #[test]
    fn a_corrupt_record_is_an_error_not_absent() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::new(dir.path().join("state"));
        let r = record(dir.path(), "pvc-2");
        records.save(&r).unwrap();
        std::fs::write(Records::beside(&r.staging_path), b"{half").unwrap();
        assert!(records.load("pvc-2", &r.staging_path).is_err());
        std::fs::write(records.indexed("pvc-2"), b"{half").unwrap();
        assert!(records.all()[0].is_err());
    }

    #[test]
    fn ids_are_made_file_safe() {
        assert_eq!(file_safe("pvc-1"), "pvc-1");
        assert_eq!(file_safe("../../etc/x"), "______etc_x");
    }
}
