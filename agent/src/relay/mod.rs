//! `holonet relay`: one Observer API in front of several agents.
//!
//! ```text
//!  agent A ─┐  GetFlows (same request, filters and field mask passed upstream)
//!  agent B ─┼─► per-peer bounded channel ─► merge in time order ─► client
//!  agent C ─┘        ▲
//!            PeerSet: one channel and one health monitor per peer
//! ```
//!
//! - [`peers`]: channels to the agents, who is reachable, retries with backoff.
//! - [`merge`]: the pure ordering logic (exact k-way merge for history, a
//!   bounded reorder window for follow), unit-tested without I/O.
//! - [`service`]: the Observer service itself (GetFlows, ServerStatus with
//!   node counts, GetNodes with each peer's state, GetNamespaces).
//!
//! A peer that is down does not stop the relay: it is left out of answers,
//! named in ServerStatus (`unavailable_nodes`), GetNodes (NODE_UNAVAILABLE)
//! and as a `node_status` event in GetFlows streams, logged, and retried;
//! following streams pick its flows up again once it is back.

pub mod merge;
pub mod peers;
pub mod service;
