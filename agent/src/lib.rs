//! holonet's node agent, as a library the `holonet` binary and the tests use.
//!
//! The path of an event: the TC probe writes a [`probe_common::event::FlowEvent`]
//! into the `EVENTS` ring buffer; [`events::EventReader`] drains it in batches;
//! [`flow::Flow::from_event`] decodes, timestamps and names it; the caller
//! prints, stores or serves the flow.
//!
//! - [`loader`]: loads the embedded probe object and attaches it to interfaces.
//! - [`events`]: asynchronous, batched ring-buffer reading.
//! - [`flow`]: the flow record built from an event (pure, no I/O).
//! - [`hashing`]: the hash maps of the per-event path.
//! - [`clock`]: kernel monotonic time to wall-clock time.
//! - [`agent_service`]: holonet's own gRPC service (capabilities, flow explanations).
//! - [`explain`]: why a flow got its verdict, traced through resolved policies.
//! - [`capabilities`]: which hook types this kernel offers, and why not.
//! - [`observer`]: Hubble flows, the flow store, the gRPC API, recording.
//! - [`relay`]: one Observer API merging several agents.
//! - [`tls`]: TLS and mutual TLS from PEM files for servers and clients.

pub mod agent_service;
pub mod capabilities;
pub mod clock;
pub mod datapath;
pub mod dns;
pub mod events;
pub mod explain;
pub mod flow;
pub mod hashing;
pub mod latency;
pub mod loader;
pub mod observer;
pub mod process;
pub mod relay;
pub mod tls;
