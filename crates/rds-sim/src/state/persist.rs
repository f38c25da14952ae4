//! Saving and loading the state: `<root>/.rds-sim/state.json`.
//!
//! Saves are atomic: the JSON goes to a temporary sibling, is flushed to the
//! disk, and is renamed over the old file, then the folder is synced. A crash
//! at any point leaves either the old state or the new one, never half of
//! either, which matters because tests kill and restart the simulator.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Saved;
use crate::error::SimError;

/// Folder under the root holding the simulator's own files.
pub const STATE_DIR: &str = ".rds-sim";

/// The state file for `root`.
pub fn state_path(root: &Path) -> PathBuf {
    root.join(STATE_DIR).join("state.json")
}

/// Loads the saved state, or a fresh one when none was saved.
pub fn load(root: &Path) -> Result<Saved, SimError> {
    let path = state_path(root);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Saved::default()),
        Err(source) => return Err(SimError::ReadState { path, source }),
    };
    serde_json::from_str(&text).map_err(|source| SimError::CorruptState { path, source })
}

/// Saves `saved` atomically.
pub fn save(root: &Path, saved: &Saved) -> Result<(), SimError> {
    let path = state_path(root);
    let dir = root.join(STATE_DIR);
    let tmp = dir.join("state.json.tmp");
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SimError::WriteState { path, source }
    };
    let json = serde_json::to_vec_pretty(saved).map_err(|e| SimError::WriteState {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    let mut file = File::create(&tmp).map_err(write_err(&tmp))?;
    file.write_all(&json).map_err(write_err(&tmp))?;
    file.sync_all().map_err(write_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(write_err(&path))?;
    // The rename is durable only once the folder itself is synced.
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(write_err(&dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Disk;

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join(STATE_DIR)).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Saved::default());
        let mut saved = Saved::default();
        saved
            .disks
            .push(Disk::new(3, "a".into(), "/p/a.img".into(), 5));
        saved.next_disk_id = 4;
        save(dir.path(), &saved).unwrap();
        assert_eq!(load(dir.path()).unwrap(), saved);
        assert!(!dir.path().join(STATE_DIR).join("state.json.tmp").exists());
    }

    #[test]
    fn corrupt_state_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join(STATE_DIR)).unwrap();
        fs::write(state_path(dir.path()), "{not json").unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(SimError::CorruptState { .. })
        ));
    }
}
