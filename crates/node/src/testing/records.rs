//! [`FakeRecords`]: the state folder view of a [`FakeWorld`].

#[allow(clippy::wildcard_imports)]
use super::*;

/// The fake state folder: a view of a [`FakeWorld`]. Like the real one, a
/// record is written beside the staging path first and into the index
/// second, and removed in the same order; a crash between the two leaves
/// one of them.
#[derive(Clone)]
pub struct FakeRecords(pub(super) FakeWorld);

fn record_error(path: &Path) -> RecordError {
    RecordError {
        path: path.to_path_buf(),
        reason: "No space left on device (the fake was told to fail)".into(),
    }
}

impl RecordStore for FakeRecords {
    fn load(
        &self,
        volume_id: &str,
        staging_path: &Path,
    ) -> Result<Option<StagingRecord>, RecordError> {
        let w = self.0.world();
        if let Some(r) = w.beside.get(staging_path) {
            return Ok(Some(r.clone()));
        }
        Ok(w.index
            .get(volume_id)
            .filter(|r| r.staging_path == staging_path)
            .cloned())
    }

    fn load_indexed(&self, volume_id: &str) -> Result<Option<StagingRecord>, RecordError> {
        Ok(self.0.world().index.get(volume_id).cloned())
    }

    fn all(&self) -> Vec<Result<StagingRecord, RecordError>> {
        self.0.world().index.values().cloned().map(Ok).collect()
    }

    async fn save(&self, record: &StagingRecord) -> Result<(), RecordError> {
        if self.0.before("record").await {
            return Err(record_error(&record.staging_path));
        }
        self.0
            .world()
            .beside
            .insert(record.staging_path.clone(), record.clone());
        self.0.changed("record-beside").await;
        self.0
            .world()
            .index
            .insert(record.volume_id.clone(), record.clone());
        self.0.changed("record-index").await;
        Ok(())
    }

    async fn remove(&self, volume_id: &str, staging_path: &Path) -> Result<(), RecordError> {
        if self.0.before("unrecord").await {
            return Err(record_error(staging_path));
        }
        let removed = self.0.world().beside.remove(staging_path).is_some();
        if removed {
            self.0.changed("unrecord-beside").await;
        }
        let removed = self.0.world().index.remove(volume_id).is_some();
        if removed {
            self.0.changed("unrecord-index").await;
        }
        Ok(())
    }
}
