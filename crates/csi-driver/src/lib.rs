//! The CSI services of rds-csi, and the only crate that speaks gRPC.
//!
//! - [`identity`], [`controller`], [`node`]: the services; the node's
//!   operations themselves are the `node` crate's, [`node`] is their gRPC face.
//! - [`params`], [`capability`], [`capacity`], [`naming`]: pure rules: what a
//!   StorageClass may say, which capabilities are supported, how big a volume
//!   is made, what its slot, NQN and image are called; [`snapshots`]: those
//!   of snapshots, restores and clones (IDs, sources, sizes, the pool-use
//!   limit, the CSI view of a snapshot).
//! - [`attach`]: which nodes a volume is published to, as its export on the
//!   RDS records it, and the publish and unpublish decisions (pure).
//! - [`error`]: the driver's errors and their gRPC codes, in one place;
//!   [`rpc`]: the wrapper every handler runs in (span, log line, status).
//! - [`locks`]: one operation at a time per volume; [`token`]: pagination
//!   tokens that tell the driver's own from any other text.
//! - [`server`]: serving the services on a unix socket until shut down.

pub mod attach;
pub mod capability;
pub mod capacity;
pub mod controller;
pub mod error;
pub mod identity;
pub mod locks;
pub mod naming;
pub mod node;
pub mod params;
pub mod rpc;
pub mod server;
pub mod snapshots;
pub mod token;

pub use controller::ControllerService;
pub use error::DriverError;
pub use identity::IdentityService;
pub use node::{NodeConfig, NodeService};
pub use params::{ConnectionParams, Defaults, FsType, VolumeContext, VolumeParams};
