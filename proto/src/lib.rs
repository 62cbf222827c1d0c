//! Hubble-compatible protocol types for holonet.
//!
//! The messages and the `observer.Observer` service are generated from the
//! .proto files in `api/v1`, which keep Hubble's field numbers, names and
//! enum values. Each message also implements serde's `Serialize` and
//! `Deserialize` in protojson form (proto field names, enum names, 64-bit
//! integers as strings, RFC 3339 timestamps), so one `GetFlowsResponse` per
//! line is exactly what `hubble observe -o jsonpb` prints and Hubble's
//! exporter writes.

#![cfg_attr(test, allow(clippy::unwrap_used))]
#![allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    reason = "generated code"
)]

pub mod encoded;
pub mod wkt;

/// Flow model: `flow.Flow`, filters, L4/L7 records, verdicts, drop reasons.
pub mod flow {
    include!(concat!(env!("OUT_DIR"), "/flow.rs"));
    include!(concat!(env!("OUT_DIR"), "/flow.serde.rs"));

    impl Flow {
        /// Whether the flow carries holonet's own fields (the processes).
        pub fn has_holonet_fields(&self) -> bool {
            self.holonet_source_process.is_some() || self.holonet_destination_process.is_some()
        }

        /// Removes holonet's own fields, for output in Hubble's exact format:
        /// Go's protojson, which `hubble observe --input-file` reads with,
        /// refuses unknown fields unless told to discard them.
        pub fn clear_holonet_fields(&mut self) {
            self.holonet_source_process = None;
            self.holonet_destination_process = None;
        }
    }
}

/// Relay node status messages.
pub mod relay {
    include!(concat!(env!("OUT_DIR"), "/relay.rs"));
    include!(concat!(env!("OUT_DIR"), "/relay.serde.rs"));
}

/// The `observer.Observer` service, its requests and responses.
pub mod observer {
    include!(concat!(env!("OUT_DIR"), "/observer.rs"));
    include!(concat!(env!("OUT_DIR"), "/observer.serde.rs"));
}

/// holonet's own `holonet.Agent` service (capabilities, policy
/// explanations), which Hubble clients never see.
pub mod holonet {
    include!(concat!(env!("OUT_DIR"), "/holonet.rs"));
    include!(concat!(env!("OUT_DIR"), "/holonet.serde.rs"));
}

/// The `observer.Observer` service as the agent serves it: GetFlows sends
/// responses it encoded itself ([`encoded::EncodedGetFlowsResponse`]).
pub mod observer_encoded {
    include!(concat!(env!("OUT_DIR"), "/encoded/observer.rs"));
}

/// Well-known protobuf types (Timestamp, wrappers, FieldMask) with protojson serde.
pub use pbjson_types;
