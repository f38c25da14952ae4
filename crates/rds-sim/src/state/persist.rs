//! Saving and loading the state, under `<root>/.rds-sim/`.
//!
//! Two files: `state.json`, a snapshot, and `state.log`, to which every save
//! appends the whole state as one line of JSON. Loading takes the last
//! complete line of the log, or the snapshot when the log has none. When the
//! simulator starts, and when the log grows past [`COMPACT_AT`] bytes, the
//! state is written as a new snapshot (temporary file, then rename) and the
//! log is emptied.
//!
//! Why a log: tests kill and restart the simulator, so a save must never be
//! half-visible; and a save happens on every changing command, under the one
//! lock. Replacing a file by rename is atomic but, on ext4, makes the kernel
//! write the new file out at once, which made every change cost
//! milliseconds. An append is cheap, and a line cut short by a kill is simply
//! not read (each line must parse, and end in a newline). There is
//! deliberately no fsync: a killed process loses nothing the kernel already
//! has, and surviving a power cut of the test machine is not the
//! simulator's job.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Saved;
use crate::error::SimError;

/// Folder under the root holding the simulator's own files.
pub const STATE_DIR: &str = ".rds-sim";

/// Log size at which the state is compacted into a new snapshot.
pub const COMPACT_AT: u64 = 8 << 20;

/// The snapshot file for `root`.
pub fn state_path(root: &Path) -> PathBuf {
    root.join(STATE_DIR).join("state.json")
}

/// The log file for `root`.
pub fn log_path(root: &Path) -> PathBuf {
    root.join(STATE_DIR).join("state.log")
}

/// Loads the saved state, or a fresh one when none was saved.
pub fn load(root: &Path) -> Result<Saved, SimError> {
    let log = log_path(root);
    match fs::read_to_string(&log) {
        Ok(text) => {
            // Complete lines only: the last one may have been cut short.
            let complete = match text.rfind('\n') {
                Some(end) => &text[..end],
                None => "",
            };
            if let Some(saved) = complete
                .lines()
                .rev()
                .find_map(|line| serde_json::from_str::<Saved>(line).ok())
            {
                return Ok(saved);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(SimError::ReadState { path: log, source }),
    }
    let path = state_path(root);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Saved::default()),
        Err(source) => return Err(SimError::ReadState { path, source }),
    };
    serde_json::from_str(&text).map_err(|source| SimError::CorruptState { path, source })
}

/// Saves `saved`: one appended line, and now and then a new snapshot.
pub fn save(root: &Path, saved: &Saved) -> Result<(), SimError> {
    let log = log_path(root);
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SimError::WriteState { path, source }
    };
    let mut line = serde_json::to_vec(saved).map_err(|e| SimError::WriteState {
        path: log.clone(),
        source: std::io::Error::other(e),
    })?;
    line.push(b'\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(write_err(&log))?;
    // One write: a kill can cut it short, never interleave it.
    file.write_all(&line).map_err(write_err(&log))?;
    let len = file.metadata().map_err(write_err(&log))?.len();
    if len >= COMPACT_AT {
        snapshot(root, saved)?;
        // A kill before this leaves a log whose last line is the snapshot.
        file.set_len(0).map_err(write_err(&log))?;
    }
    Ok(())
}

/// Writes `saved` as the snapshot and empties the log: done when the
/// simulator starts, so the snapshot is there to read and the log starts
/// small.
pub fn compact(root: &Path, saved: &Saved) -> Result<(), SimError> {
    snapshot(root, saved)?;
    let log = log_path(root);
    match fs::remove_file(&log) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SimError::WriteState { path: log, source }),
    }
}

/// Writes `saved` as the snapshot, atomically.
fn snapshot(root: &Path, saved: &Saved) -> Result<(), SimError> {
    let path = state_path(root);
    let tmp = root.join(STATE_DIR).join("state.json.tmp");
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
    drop(file);
    fs::rename(&tmp, &path).map_err(write_err(&path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Disk;

    fn state_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join(STATE_DIR)).unwrap();
        dir
    }

    fn saved(disks: u64) -> Saved {
        let mut saved = Saved::default();
        for id in 0..disks {
            saved
                .disks
                .push(Disk::new(id, format!("d{id}"), format!("/p/d{id}.img"), 5));
        }
        saved.next_disk_id = disks;
        saved
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = state_dir();
        assert_eq!(load(dir.path()).unwrap(), Saved::default());
        save(dir.path(), &saved(1)).unwrap();
        save(dir.path(), &saved(2)).unwrap();
        assert_eq!(load(dir.path()).unwrap(), saved(2));
    }

    #[test]
    fn a_line_cut_short_is_not_read() {
        let dir = state_dir();
        save(dir.path(), &saved(1)).unwrap();
        save(dir.path(), &saved(2)).unwrap();
        // A kill in the middle of the third save.
        let line = serde_json::to_string(&saved(3)).unwrap();
        let mut log = OpenOptions::new()
            .append(true)
            .open(log_path(dir.path()))
            .unwrap();
        log.write_all(&line.as_bytes()[..line.len() / 2]).unwrap();
        assert_eq!(load(dir.path()).unwrap(), saved(2));
        // Even a cut exactly before the newline.
        fs::write(log_path(dir.path()), &line).unwrap();
        fs::write(
            state_path(dir.path()),
            serde_json::to_string(&saved(1)).unwrap(),
        )
        .unwrap();
        assert_eq!(load(dir.path()).unwrap(), saved(1));
    }

    #[test]
    fn the_log_is_compacted_into_a_snapshot() {
        let dir = state_dir();
        let big = saved(2000);
        let line_len = serde_json::to_vec(&big).unwrap().len() as u64 + 1;
        let saves = COMPACT_AT / line_len + 2;
        for _ in 0..saves {
            save(dir.path(), &big).unwrap();
        }
        let log_len = fs::metadata(log_path(dir.path())).unwrap().len();
        assert!(log_len < COMPACT_AT, "log was compacted: {log_len}");
        assert!(state_path(dir.path()).exists());
        assert_eq!(load(dir.path()).unwrap(), big);
        // With an empty log, the snapshot alone carries the state.
        fs::write(log_path(dir.path()), "").unwrap();
        assert_eq!(load(dir.path()).unwrap(), big);
        assert!(!dir.path().join(STATE_DIR).join("state.json.tmp").exists());
    }

    #[test]
    fn corrupt_snapshot_is_an_error() {
        let dir = state_dir();
        fs::write(state_path(dir.path()), "{not json").unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(SimError::CorruptState { .. })
        ));
    }
}
