//! The observer side of the agent: probe flows become Hubble flows, are kept
//! in a bounded ring, served over a Hubble-compatible gRPC API and recorded.
//!
//! ```text
//! EventReader ─► pipeline (ingest: decode, enrich, convert) ─► FlowStore ─┬─► GetFlows streams
//!                                                                         ├─► exporter (JSON lines)
//!                                                                         └─► metrics (Prometheus text)
//! ```

pub mod convert;
mod courtesy;
pub mod endpoints;
pub mod export;
pub mod ingest;
pub mod mask;
pub mod metrics;
pub mod pipeline;
pub mod policy_names;
pub mod query;
pub mod server;
pub mod service;
pub mod store;
pub mod stored;
