//! What the tests of several crates share, written once:
//!
//! - [`sim`]: the simulator (`rds_sim::testing::TestSim`, which makes a
//!   throwaway host key and client key) as the driver logs in to it: the
//!   client key in a file, the plugin's flags or environment for it, and
//!   `rds-client`'s configuration for it;
//! - [`grpc`]: a gRPC channel over a unix socket, as the sidecars and
//!   kubelet connect;
//! - [`http`]: a plain HTTP GET, as a scraper or a kubelet probe makes it,
//!   and reading one series of a metrics scrape;
//! - [`tier`]: which test tiers were selected (root, the guest), and the
//!   line a skipped one prints.
//!
//! Nothing here is used by the driver itself.

pub mod grpc;
pub mod http;
pub mod sim;
pub mod tier;
