//! Compiles `proto/csi.proto` into Rust at build time.
//!
//! protox parses the file and its `google/protobuf` imports (which it ships)
//! into a `FileDescriptorSet` in pure Rust, so the build needs no `protoc` on
//! the machine. tonic-prost-build then turns that set into prost message types
//! plus the tonic server traits and clients of every service.

use std::io;

fn main() -> io::Result<()> {
    let proto = "proto/csi.proto";
    println!("cargo:rerun-if-changed={proto}");

    let descriptors = protox::compile([proto], ["proto"]).map_err(io::Error::other)?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // protox already knows the file; nothing should look for protoc.
        .skip_protoc_run()
        .compile_fds(descriptors)
}
