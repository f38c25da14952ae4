//! The few file operations sysfs needs, with "it vanished" told apart from errors.
//!
//! sysfs entries disappear while they are read (a controller being deleted), so
//! ENOENT and ENODEV mean "gone" here, not failure.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use rustix::io::Errno;

use crate::error::NvmeError;

/// Whether an error means the file or its device went away.
fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || e.raw_os_error() == Some(Errno::NODEV.raw_os_error())
        || e.raw_os_error() == Some(Errno::NOTDIR.raw_os_error())
}

/// Reads an attribute, trimmed; `None` if it does not exist (any more).
pub(crate) fn read_attr(path: &Path) -> Result<Option<String>, NvmeError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if is_gone(&e) => Ok(None),
        Err(source) => Err(NvmeError::SysfsRead {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The entry names of a directory; empty if it does not exist (e.g.
/// `/sys/class/nvme` before `nvme_core` is loaded).
pub(crate) fn list_dir(path: &Path) -> Result<Vec<String>, NvmeError> {
    let err = |source| NvmeError::SysfsRead {
        path: path.to_owned(),
        source,
    };
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if is_gone(&e) => return Ok(Vec::new()),
        Err(e) => return Err(err(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => names.push(entry.file_name().to_string_lossy().into_owned()),
            Err(e) if is_gone(&e) => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(names)
}

/// What writing a trigger attribute (`delete_controller`, `rescan_controller`) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// The kernel took it.
    Done,
    /// The controller is gone (ENOENT, ENODEV).
    Gone,
    /// EBUSY: the kernel will not delete the controller now, because its first
    /// connect is still in progress or it is already being deleted.
    Busy,
}

/// Writes `1` to a trigger attribute in one write, without creating it.
pub(crate) fn write_trigger(path: &Path) -> Result<Written, NvmeError> {
    let result = OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write(b"1"));
    match result {
        Ok(_) => Ok(Written::Done),
        Err(e) if is_gone(&e) => Ok(Written::Gone),
        Err(e) if e.raw_os_error() == Some(Errno::BUSY.raw_os_error()) => Ok(Written::Busy),
        Err(source) => Err(NvmeError::SysfsWrite {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_things_are_gone_not_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        assert_eq!(read_attr(&p.join("nope")).unwrap(), None);
        assert_eq!(list_dir(&p.join("nope")).unwrap(), Vec::<String>::new());
        assert_eq!(write_trigger(&p.join("nope")).unwrap(), Written::Gone);
        assert!(!p.join("nope").exists(), "a trigger is never created");
        fs::write(p.join("f"), "x").unwrap();
        assert_eq!(
            read_attr(&p.join("f/state")).unwrap(),
            None,
            "ENOTDIR is gone too"
        );
    }

    #[test]
    fn attributes_are_trimmed_and_triggers_write_1() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state");
        fs::write(&p, "live\n").unwrap();
        assert_eq!(read_attr(&p).unwrap().as_deref(), Some("live"));
        let t = dir.path().join("delete_controller");
        fs::write(&t, "").unwrap();
        assert_eq!(write_trigger(&t).unwrap(), Written::Done);
        assert_eq!(fs::read_to_string(&t).unwrap(), "1");
    }

    #[test]
    fn a_directory_read_as_attribute_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_attr(dir.path()).unwrap_err();
        assert!(matches!(e, NvmeError::SysfsRead { .. }), "{e}");
    }
}
