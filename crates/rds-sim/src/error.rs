//! Error types: opening the simulator, parsing scripts, and the errors a
//! command prints.
//!
//! [`ParseError`] and [`CmdError`] render exactly the text RouterOS prints,
//! because the client recognises errors by their text. Texts that are not
//! known from a real appliance are marked *assumed* on their variant; they are
//! chosen to be plausible and distinct, and are listed in one place so that
//! a correction from a real RDS is a one-line change.

use std::path::PathBuf;

/// A line and column in a script, both counted from 1 (columns in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// Line number, from 1.
    pub line: u32,
    /// Column number, from 1.
    pub column: u32,
}

/// Why a script could not be parsed. The `Display` text is what RouterOS
/// prints; nothing in a script runs when parsing fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// An unknown menu or command word.
    #[error("bad command name {name} (line {} column {})", pos.line, pos.column)]
    BadCommandName {
        /// The word as written.
        name: String,
        /// Where the word starts.
        pos: Pos,
    },
    /// An unknown argument or property name, an extra argument, or anything
    /// else where the command should have ended.
    #[error("expected end of command (line {} column {})", pos.line, pos.column)]
    ExpectedEndOfCommand {
        /// Where the unexpected text starts.
        pos: Pos,
    },
    /// Unbalanced brackets or quotes, a bad escape, a missing operand.
    #[error("syntax error (line {} column {})", pos.line, pos.column)]
    Syntax {
        /// Where the problem was noticed.
        pos: Pos,
    },
    /// Only from [`crate::parse_single_command`]: the text parsed, but it is
    /// not exactly one command with literal arguments.
    #[error("not a single command with literal arguments: {0}")]
    NotSingleLiteral(&'static str),
}

/// An error raised while a script runs. Its `Display` text is printed as a
/// line of its own when nothing catches it (`:do … on-error=`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdError {
    /// The item named or numbered does not exist.
    #[error("no such item")]
    NoSuchItem,
    /// A unique key (the slot) is already taken.
    #[error("failure: already have such entry")]
    AlreadyExists,
    /// The pool cannot hold the requested size (or the disk-full fault is on).
    #[error("not enough space")]
    NotEnoughSpace,
    /// A value that does not parse for its argument (numbers, sizes, paths).
    #[error("invalid value for argument {0}")]
    InvalidValue(&'static str),
    /// A value that is not one of its argument's keywords (yes/no, file, …).
    #[error("input does not match any value of {0}")]
    NoMatch(&'static str),
    /// The fault plan's `fail_after` fired.
    #[error("failure: simulated fault")]
    SimulatedFault,
    /// A required argument of `add` is missing. *Assumed* text.
    #[error("failure: {0} must be set")]
    MissingArgument(&'static str),
    /// `file-path` does not start with a pool's mount point. *Assumed* text.
    #[error("failure: file-path must be on a mounted disk")]
    NotOnPool,
    /// The folder that should hold the image does not exist. *Assumed* text.
    #[error("failure: no such directory")]
    NoSuchDirectory,
    /// A folder on the way to `file-path` is a regular file (a path below an
    /// existing image, say). *Assumed* text: the error the Linux underneath
    /// meets (`ENOTDIR`), in RouterOS's words.
    #[error("failure: not a directory")]
    NotADirectory,
    /// `file-path` names a folder or something else that is not a plain file.
    /// *Assumed* text.
    #[error("failure: file-path is not a file")]
    NotAFile,
    /// Another disk already uses this image file. *Assumed* text.
    #[error("failure: file-path already used by another disk")]
    FileInUseByDisk,
    /// `set file-size=` smaller than the current size. *Assumed* text.
    #[error("failure: file-size can not be reduced")]
    Shrink,
    /// Pools are configured, not managed through the CLI. *Assumed* text.
    #[error("failure: can not remove pool disk")]
    PoolRemove,
    /// A pool only takes a new `comment`. *Assumed* text.
    #[error("failure: can not change pool disk")]
    PoolChange,
    /// `/file remove` of an image a disk still uses. *Assumed* text.
    #[error("failure: file already in use by a disk")]
    FileBusy,
    /// `/file remove` of a pool's mount point. *Assumed* text.
    #[error("failure: can not remove mount point")]
    MountPointRemove,
    /// `/file remove` of a folder that still holds files. *Assumed* text.
    #[error("failure: directory is not empty")]
    DirectoryNotEmpty,
    /// `/disk add` of an existing image when [`crate::ExistingImage::Refuse`]
    /// is set. *Assumed* text.
    #[error("failure: file already exists")]
    FileExists,
    /// `/disk/btrfs/subvolume add` inside a plain folder when
    /// [`crate::SubvolumeInFolder::Refuse`] is set. *Assumed* text.
    #[error("failure: parent is not a subvolume")]
    ParentNotSubvolume,
    /// `/disk/btrfs/subvolume add parent=` of a subvolume on another
    /// filesystem than `fs=`. *Assumed* text.
    #[error("failure: parent subvolume is on another file system")]
    OtherFilesystem,
    /// `/disk/btrfs/subvolume remove` of a subvolume holding another one,
    /// which btrfs cannot delete. *Assumed* text.
    #[error("failure: subvolume contains other subvolumes")]
    NestedSubvolume,
    /// `/disk/btrfs/subvolume remove` of a subvolume holding a disk's image.
    /// *Assumed*: RouterOS is not known to allow it, and allowing it would
    /// hide the bug of deleting a live volume.
    #[error("failure: subvolume is in use by a disk")]
    SubvolumeInUse,
    /// `get` of more than one item. *Assumed* text.
    #[error("invalid internal item number")]
    NotOneItem,
    /// `$name` or `:set name` of a variable that was never declared.
    /// *Assumed* text.
    #[error("failure: undefined variable {0}")]
    UndefinedVariable(String),
    /// `:if`, `!`, `&&` or `||` given something that is not true or false.
    #[error("conditional not boolean")]
    NotBoolean,
    /// A `~` condition whose pattern is not a valid regular expression.
    /// *Assumed* text.
    #[error("failure: invalid regular expression")]
    BadRegex,
    /// Reading or writing the simulated storage failed.
    #[error("failure: {0}")]
    Io(String),
    /// `:error "text"`: the script's own error, printed as written.
    #[error("{0}")]
    Script(String),
}

/// Why [`crate::Engine::open`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration cannot describe a simulated appliance.
    #[error("invalid simulator configuration: {0}")]
    Config(String),
    /// A folder for the pools or the state could not be created.
    #[error("cannot create {path}: {source}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The saved state exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    ReadState {
        /// The state file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The saved state is not valid JSON of the expected shape.
    #[error("corrupt state file {path}: {source}")]
    CorruptState {
        /// The state file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// The disks could not be exported through nvmet.
    #[error("nvmet: {0}")]
    Nvmet(#[from] crate::nvmet::NvmetError),
    /// The state could not be written.
    #[error("cannot write {path}: {source}")]
    WriteState {
        /// The state file (or its temporary sibling).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_render_routeros_text() {
        let pos = Pos { line: 1, column: 7 };
        assert_eq!(
            ParseError::BadCommandName {
                name: "frob".into(),
                pos
            }
            .to_string(),
            "bad command name frob (line 1 column 7)"
        );
        assert_eq!(
            ParseError::ExpectedEndOfCommand { pos }.to_string(),
            "expected end of command (line 1 column 7)"
        );
        assert_eq!(
            ParseError::Syntax { pos }.to_string(),
            "syntax error (line 1 column 7)"
        );
    }

    #[test]
    fn command_errors_render_routeros_text() {
        assert_eq!(CmdError::NoSuchItem.to_string(), "no such item");
        assert_eq!(
            CmdError::AlreadyExists.to_string(),
            "failure: already have such entry"
        );
        assert_eq!(CmdError::NotEnoughSpace.to_string(), "not enough space");
        assert_eq!(
            CmdError::InvalidValue("file-size").to_string(),
            "invalid value for argument file-size"
        );
        assert_eq!(
            CmdError::NoMatch("nvme-tcp-export").to_string(),
            "input does not match any value of nvme-tcp-export"
        );
        assert_eq!(CmdError::Script("boom".into()).to_string(), "boom");
    }
}
