//! The Container Storage Interface (CSI) API, spec v1.12, as Rust types.
//!
//! [`v1`] holds everything generated from `proto/csi.proto` (package `csi.v1`):
//! the prost message types, and for each service a tonic server trait with its
//! server (`v1::controller_server::Controller`, `ControllerServer`, ...) and a
//! client (`v1::controller_client::ControllerClient`, ...).
//!
//! All five services of the spec are generated: Identity, Controller, Node, and
//! the GroupController and SnapshotMetadata services, which the driver does not
//! serve but are kept so the schema covers all of v1.12.
//!
//! `proto/csi.proto` was written by us from the spec; its names, types and field
//! numbers are the spec's, and `tests/wire.rs` checks the encoding of every
//! message the driver uses against bytes worked out by hand.
//!
//! Beware: the generated `Debug` impls print every field, including the
//! `secrets` maps the spec marks `csi_secret`. Strip secrets before logging a
//! request.
//!
//! Invariant: **only this crate knows the CSI wire format.** Other crates use
//! the generated types and services and never build or parse protobuf bytes or
//! gRPC paths themselves.

/// The generated `csi.v1` package: messages, enums and gRPC services.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/csi.v1.rs"));
}
