//! What `/file` holds at a name, as [`crate::script::file_type`] prints it.
//!
//! ```text
//! directory
//! ```
//!
//! One line: `missing`, or the entry's `type`. Error messages are recognised
//! by the caller first (with [`crate::error::from_messages`]); whatever else
//! is not one short line of a type's characters is not read at all.

use crate::error::{CliErrorKind, classify};

/// The type of an entry, or that there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileType {
    /// No entry has the name.
    Missing,
    /// A folder (`directory`).
    Directory,
    /// A pool's mount point (`disk`).
    MountPoint,
    /// Anything else, with its type as printed (`file`, `package`, `.rsc file`, …).
    Other(String),
}

impl FileType {
    /// Whether files can be made in it: a folder or a pool's mount point.
    pub fn is_folder(&self) -> bool {
        matches!(self, Self::Directory | Self::MountPoint)
    }
}

/// The longest type word read.
const MAX_TYPE_LEN: usize = 40;

/// Reads the output of [`crate::script::file_type`]. `None` when it is not
/// exactly one line holding `missing` or a type: lower-case letters, digits,
/// spaces, `.`, `-` and `_`, and not a text RouterOS prints as an error.
pub fn parse_file_type(output: &str) -> Option<FileType> {
    let mut lines = output.lines().map(str::trim).filter(|l| !l.is_empty());
    let line = lines.next()?;
    if lines.next().is_some() || line.len() > MAX_TYPE_LEN {
        return None;
    }
    let type_like = line.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b' ' | b'.' | b'-' | b'_')
    });
    if !type_like || classify(line) != CliErrorKind::Other {
        return None;
    }
    Some(match line {
        "missing" => FileType::Missing,
        "directory" => FileType::Directory,
        "disk" => FileType::MountPoint,
        other => FileType::Other(other.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        assert_eq!(parse_file_type("missing\r\n"), Some(FileType::Missing));
        assert_eq!(parse_file_type("directory\r\n"), Some(FileType::Directory));
        assert_eq!(parse_file_type("\r\ndisk\r\n"), Some(FileType::MountPoint));
        assert_eq!(
            parse_file_type(".rsc file\r\n"),
            Some(FileType::Other(".rsc file".into()))
        );
        assert!(FileType::Directory.is_folder() && FileType::MountPoint.is_folder());
        assert!(!FileType::Missing.is_folder());
        assert!(!FileType::Other("file".into()).is_folder());
    }

    #[test]
    fn anything_else_is_not_read() {
        for output in [
            "",
            "\r\n",
            "directory\r\nmissing\r\n",
            "no such item\r\n",
            "bad command name put (line 1 column 60)\r\n",
            "syntax error (line 1 column 4)",
            "Directory",
            "name=\"x\"",
            &"a".repeat(41),
        ] {
            assert_eq!(parse_file_type(output), None, "{output:?}");
        }
    }
}
