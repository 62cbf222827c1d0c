//! The hash maps on the per-event path (latency pairing, process and
//! endpoint lookups, policy names).
//!
//! std's SipHash was about a tenth of the agent's time per event. These
//! maps use foldhash instead: several times faster on the small keys they
//! have (addresses, ports), and seeded at random per map, so the traffic
//! that fills them (addresses and ports chosen by whoever sends packets)
//! cannot be crafted to collide without knowing the seed. Every one of
//! these maps is also bounded in size.

/// A hash map for keys that come from the network.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::quality::RandomState>;
