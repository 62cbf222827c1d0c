//! Generates the Rust code for the .proto files under `api/v1` (tonic
//! services and prost messages) and, with pbjson, serde implementations that
//! speak protojson the way Hubble writes it: proto field names, enum names,
//! 64-bit integers as strings, unknown fields ignored.
//!
//! Needs `protoc` (Debian package protobuf-compiler; scripts/bootstrap
//! installs it).

use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "api/v1/flow/flow.proto",
    "api/v1/relay/relay.proto",
    "api/v1/observer/observer.proto",
    "api/v1/holonet/holonet.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptors = out_dir.join("descriptors.bin");
    for proto in PROTOS {
        println!("cargo::rerun-if-changed={proto}");
    }
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .file_descriptor_set_path(&descriptors)
        .compile_well_known_types(true)
        // Timestamps get our own type, which writes JSON exactly as Go's
        // protojson does; the other well-known types come from pbjson.
        .extern_path(".google.protobuf.Timestamp", "crate::wkt::Timestamp")
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_protos(PROTOS, &["api/v1"])?;

    // The agent's Observer server sends GetFlowsResponses it encoded itself
    // (straight from the stored flow, without the copy tonic would need):
    // a second server-only build of the service whose response type is
    // `crate::encoded::EncodedGetFlowsResponse`, every other type shared.
    let encoded_dir = out_dir.join("encoded");
    std::fs::create_dir_all(&encoded_dir)?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(false)
        .out_dir(&encoded_dir)
        .compile_well_known_types(true)
        .extern_path(
            ".observer.GetFlowsResponse",
            "crate::encoded::EncodedGetFlowsResponse",
        )
        .extern_path(".observer", "crate::observer")
        .extern_path(".flow", "crate::flow")
        .extern_path(".relay", "crate::relay")
        .extern_path(".google.protobuf.Timestamp", "crate::wkt::Timestamp")
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_protos(&["api/v1/observer/observer.proto"], &["api/v1"])?;

    let set = std::fs::read(&descriptors)?;
    pbjson_build::Builder::new()
        .register_descriptors(&set)?
        .preserve_proto_field_names()
        .ignore_unknown_fields()
        .build(&[".flow", ".relay", ".observer", ".holonet"])?;
    Ok(())
}
