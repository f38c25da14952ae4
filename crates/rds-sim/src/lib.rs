//! A simulator of the MikroTik RDS's RouterOS CLI, for the driver's tests.
//!
//! The simulator is an independent implementation of the dialect described
//! in `docs/routeros-cli.md`: it shares no code with the client crates, so
//! that each checks the other. It runs real scripts (a lexer, a
//! recursive-descent parser and an interpreter of the RouterOS scripting
//! subset the driver uses, and somewhat more), keeps real sparse image files
//! in pools of finite capacity, saves its state across restarts, prints like
//! the device, and injects faults on request.
//!
//! Entry points: [`Engine`] runs scripts; [`Faults`] switches failures on;
//! a pool may be a real btrfs filesystem ([`LoopBtrfs`]), on which
//! `/disk/btrfs/subvolume` makes real subvolumes and snapshots;
//! [`Behaviour`] chooses the simulator's answer where RouterOS's is unknown;
//! [`NvmetConfig`] makes the disks real NVMe/TCP exports (in a guest whose
//! kernel has nvmet);
//! [`parse_single_command`] reads one command strictly, for property tests of
//! the client's command builder. The SSH front end lives in [`server`]; [`testing::TestSim`] runs it on a
//! loopback port for other crates' tests; the `rds-sim` binary runs it for people.
//!
//! Invariants:
//! - **Parsing does no I/O and runs nothing**: a script that does not parse
//!   changes nothing.
//! - **One lock per command, never per script**: scripts interleave between
//!   commands, as on the device.
//! - **Nothing outside the root is touched**: script paths are plain
//!   segments under a configured pool, and symbolic links are not followed.
//!   The one exception is asked for: with [`SimConfig::nvmet`], nvmet's
//!   configfs and loop devices, and there only what this simulator made.

mod ast;
mod btrfs;
mod commands;
mod config;
mod engine;
mod error;
mod faults;
mod filter;
mod format;
mod interp;
mod lexer;
mod menu;
mod nvmet;
mod parser;
mod records;
pub mod server;
mod size;
mod state;
pub mod testing;
mod value;

pub use btrfs::{LoopBtrfs, LoopBtrfsError};
pub use config::{
    BTRFS, Behaviour, DEFAULT_MAX_SLOT_LEN, ExistingImage, PoolConfig, SimConfig, SubvolumeInFolder,
};
pub use engine::{
    DEFAULT_WIDTH, DiskView, Engine, ExecGuard, ExecOptions, Execution, FileView, WIDTH_RANGE,
};
pub use error::{ParseError, Pos, SimError};
pub use faults::Faults;
pub use nvmet::{NvmetConfig, NvmetError};
pub use parser::{ParsedCommand, parse_single_command};
