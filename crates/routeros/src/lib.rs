//! The RouterOS command-line dialect of the MikroTik RDS, without any I/O.
//!
//! - [`value`]: typed, validated values (slots, paths, NQNs, comments) and quoting.
//! - [`script`]: the command builder, the only producer of command text, and the
//!   scripts for each volume operation.
//! - [`detail`]: the parser for `print detail` output; [`disk`] reads its records
//!   as disks and pools; [`resource`] reads `/system resource print`;
//!   [`mod@file`] reads what the file-type script prints.
//! - [`error`]: classification of the error texts RouterOS prints.
//! - [`subvolume`]: btrfs subvolumes: volumes in subvolumes of their own,
//!   snapshots, restores and clones, with their scripts and reader.
//!
//! Invariant: nothing in this crate does I/O; everything takes and returns text.
//! `docs/routeros-cli.md` is the written contract for what is sent and read.

pub mod detail;
pub mod disk;
pub mod error;
pub mod file;
pub mod resource;
pub mod script;
pub mod size;
pub mod subvolume;
pub mod value;

pub use detail::{ParseError, PrintOutput, Record, parse_print_detail};
pub use disk::{Disk, MountedPool, Pool, RecordError};
pub use error::{CliError, CliErrorKind};
pub use file::{FileType, parse_file_type};
pub use resource::{
    MINIMUM_VERSION, SystemResource, VERSIONED_PROPERTIES, Version, missing_properties,
    parse_system_resource,
};
pub use script::{ExportState, NOT_A_FILE_ERROR, NewDisk, OwnerTest, Script};
pub use value::{
    CliValue, Comment, CommentPattern, HOST_LIST_SEPARATOR, HostList, ImagePattern,
    MAX_NEW_SLOT_LEN, MAX_SIZE, Nqn, PoolName, RdsPath, Slot, SlotPrefix, ValueError,
};
