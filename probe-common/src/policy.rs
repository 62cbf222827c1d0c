//! Enforcement maps: who an address is, which endpoint sits behind an
//! interface, and what its policy allows.
//!
//! The agent fills these from the policy engine's resolution; the TC probe
//! reads them to decide each new connection. Byte order: map *keys* that are
//! LPM tries hold their prefix data in network (big-endian) order, because
//! the trie compares bits from the first byte on; every other integer is in
//! host order.
//!
//! # Lookups the datapath does for a new connection
//!
//! 1. `ENDPOINTS[ifindex]`: the local endpoint behind the interface the
//!    probe is attached to (absent: not a managed endpoint, nothing enforced).
//! 2. `IPCACHE[peer address]` (longest prefix): the peer's security identity
//!    ([`IDENTITY_WORLD`] when nothing matches).
//! 3. `POLICY[endpoint, direction, protocol, peer identity, port]` (longest
//!    prefix over the port bits): first with the peer's identity; if that
//!    misses and the ipcache entry is a CIDR identity
//!    ([`IPCACHE_FLAG_CIDR`]), with [`IDENTITY_WORLD`]; then with
//!    [`IDENTITY_ANY`]. The first hit decides; no hit means the direction's
//!    default: allowed unless the endpoint enforces that direction
//!    (`ENDPOINT_FLAG_ENFORCE_*`), in which case the packet is dropped with
//!    `POLICY_DENIED` (133). A [`POLICY_ACTION_DENY`] hit drops with
//!    `POLICY_DENY` (181).

/// The identity meaning "any peer" in policy keys (Cilium's identity 0).
pub const IDENTITY_ANY: u32 = 0;
/// The reserved identity of addresses outside the cluster.
pub const IDENTITY_WORLD: u32 = 2;
/// First identity the agent hands out for CIDR prefixes named by policies
/// (Cilium's local identity scope).
pub const IDENTITY_CIDR_BASE: u32 = 1 << 24;

/// Direction codes in policy keys.
pub mod direction {
    /// Traffic entering the endpoint.
    pub const INGRESS: u8 = 1;
    /// Traffic leaving the endpoint.
    pub const EGRESS: u8 = 2;
}

/// Bytes of an ipcache key's address: IPv6, with IPv4 as `::ffff:a.b.c.d`.
pub const IPCACHE_ADDR_LEN: usize = 16;

/// Prefix length of an IPv4 /n in the ipcache (the mapped prefix adds 96 bits).
pub const fn ipcache_v4_prefix(len: u8) -> u32 {
    96 + len as u32
}

/// An IPv4 address as stored in the ipcache (`::ffff:a.b.c.d`).
pub const fn ipcache_v4_addr(octets: [u8; 4]) -> [u8; IPCACHE_ADDR_LEN] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, octets[0], octets[1], octets[2], octets[3],
    ]
}

/// The ipcache entry is a CIDR identity named by a policy: when the endpoint
/// has no rule for it, the `world` rules apply.
pub const IPCACHE_FLAG_CIDR: u32 = 1;

/// Value of the `IPCACHE` LPM trie (key: [`IPCACHE_ADDR_LEN`] address bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpcacheValue {
    /// Security identity of the address.
    pub identity: u32,
    /// `IPCACHE_FLAG_*`.
    pub flags: u32,
}

const _: () = assert!(core::mem::size_of::<IpcacheValue>() == 8);

/// The endpoint's ingress is default-deny.
pub const ENDPOINT_FLAG_ENFORCE_INGRESS: u32 = 1;
/// The endpoint's egress is default-deny.
pub const ENDPOINT_FLAG_ENFORCE_EGRESS: u32 = 2;
/// Compute verdicts but drop nothing (verdict AUDIT).
pub const ENDPOINT_FLAG_AUDIT: u32 = 4;

/// Value of the `ENDPOINTS` hash map (key: `u32` ifindex of the host-side veth).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointValue {
    /// The endpoint's number in policy keys.
    pub endpoint_id: u32,
    /// Its security identity.
    pub identity: u32,
    /// `ENDPOINT_FLAG_*`.
    pub flags: u32,
    /// Bumped whenever the endpoint's policy changes, so established
    /// connections are re-checked against the new rules.
    pub policy_revision: u32,
}

const _: () = assert!(core::mem::size_of::<EndpointValue>() == 16);

/// Bytes of a policy key's data: endpoint (4), direction (1), protocol (1),
/// peer identity (4), port (2), all big-endian.
pub const POLICY_KEY_LEN: usize = 12;

/// Bits of a policy key before the port: a lookup always matches them fully.
pub const POLICY_KEY_FIXED_BITS: u32 = 80;

/// Lays out a policy key's data. `port` is the destination port (0 for
/// protocols without ports).
pub const fn policy_key(
    endpoint_id: u32,
    direction: u8,
    proto: u8,
    peer_identity: u32,
    port: u16,
) -> [u8; POLICY_KEY_LEN] {
    let e = endpoint_id.to_be_bytes();
    let p = peer_identity.to_be_bytes();
    let d = port.to_be_bytes();
    [
        e[0], e[1], e[2], e[3], direction, proto, p[0], p[1], p[2], p[3], d[0], d[1],
    ]
}

/// The connection is allowed.
pub const POLICY_ACTION_ALLOW: u8 = 1;
/// The connection is denied by a deny rule.
pub const POLICY_ACTION_DENY: u8 = 2;

/// No L7 check.
pub const L7_KIND_NONE: u8 = 0;
/// HTTP requests are checked against the `L7_TABLES` entry `l7_table`.
pub const L7_KIND_HTTP: u8 = 1;
/// DNS queries are checked against the DNS rule set `l7_table`.
pub const L7_KIND_DNS: u8 = 2;
/// L7 visibility only: every request is allowed and reported.
pub const L7_KIND_VISIBILITY: u8 = 3;
/// HTTP and DNS rules meet on one port: every request is dropped (fail closed).
pub const L7_KIND_CONFLICT: u8 = 4;

/// Value of the `POLICY` LPM trie.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyValue {
    /// `POLICY_ACTION_*`.
    pub action: u8,
    /// Hubble's policy match type (1 L3-Only, 2 L3-L4, 3 L4-Only, 4 all,
    /// 5 L3-Proto, 6 Proto-Only).
    pub match_type: u8,
    /// `L7_KIND_*`.
    pub l7_kind: u8,
    /// Always zero.
    pub _pad: u8,
    /// Index of the L7 rule set (table) for `L7_KIND_HTTP` / `L7_KIND_DNS`.
    pub l7_table: u32,
    /// Index into the agent's list of policies behind this entry, so user
    /// space can name the policy that allowed or denied a flow.
    pub rule_ref: u32,
}

const _: () = assert!(core::mem::size_of::<PolicyValue>() == 12);

/// Key of the `CT` (connection tracking) LRU hash: one entry per endpoint,
/// direction and connection, created when a connection is allowed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtKey {
    /// The local endpoint.
    pub endpoint_id: u32,
    /// Source address of the connection's first packet.
    pub saddr: [u8; 16],
    /// Destination address of the connection's first packet.
    pub daddr: [u8; 16],
    /// Source port (host order).
    pub sport: u16,
    /// Destination port (host order).
    pub dport: u16,
    /// IP protocol.
    pub proto: u8,
    /// `direction::*` in which the connection was opened.
    pub direction: u8,
    /// Always zero.
    pub _pad: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<CtKey>() == 44);

/// Value of the `CT` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtValue {
    /// `bpf_ktime_get_ns()` when the connection was allowed.
    pub created_ns: u64,
    /// The endpoint's policy revision the decision was made under.
    pub policy_revision: u32,
    /// Hubble match type of the allowing entry.
    pub match_type: u8,
    /// `L7_KIND_*` of the allowing entry: requests on the connection are
    /// checked when it is [`L7_KIND_HTTP`].
    pub l7_kind: u8,
    /// The `L7_HTTP` table for [`L7_KIND_HTTP`].
    pub l7_table: u8,
    /// `CT_FLAG_*`.
    pub flags: u8,
    /// On an L7-enforced connection, the TCP sequence number where the next
    /// request must start (valid with [`CT_FLAG_L7_SYNCED`]): everything
    /// before it was judged, everything from it on is not yet.
    pub next_request_seq: u32,
    /// Where the kernel routes this connection's packets that the entry's
    /// interface receives from its pod (TC ingress): the output interface
    /// `bpf_fib_lookup` gave when the connection was tracked, so a packet
    /// need not be looked up again to know whether an attached interface
    /// downstream reports it. 0 when unknown (looked up per packet).
    pub downstream_ifindex: u32,
}

const _: () = assert!(core::mem::size_of::<CtValue>() == 24);

/// [`CtValue::next_request_seq`] is known: set when the connection is
/// tracked from its SYN, or once its first request has been read.
pub const CT_FLAG_L7_SYNCED: u8 = 1;
/// A request on this connection was denied (answered 403, server reset):
/// only a retransmission of that request is looked at again.
pub const CT_FLAG_L7_DENIED: u8 = 2;
/// In audit mode, a segment of this connection could not be judged: its
/// requests are no longer followed (everything passes, nothing is reported
/// again), instead of an AUDIT event for every later segment.
pub const CT_FLAG_L7_GAVE_UP: u8 = 4;

/// Number of HTTP tables the `L7_HTTP` array holds.
pub const L7_HTTP_TABLES: u32 = 64;

/// Number of DNS tables the `L7_DNS` array holds.
pub const L7_DNS_TABLES: u32 = 64;

#[cfg(feature = "user")]
// SAFETY: plain `repr(C)` integers with no implicit padding (sizes asserted above).
unsafe impl aya::Pod for CtKey {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for CtValue {}
#[cfg(feature = "user")]
// SAFETY: plain `repr(C)` integers with no implicit padding (sizes asserted above).
unsafe impl aya::Pod for IpcacheValue {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for EndpointValue {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for PolicyValue {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_keys_are_big_endian_in_field_order() {
        assert_eq!(
            policy_key(0x0102_0304, direction::EGRESS, 6, 0x0a0b_0c0d, 52773),
            [1, 2, 3, 4, 2, 6, 0x0a, 0x0b, 0x0c, 0x0d, 0xce, 0x25]
        );
    }

    #[test]
    fn ipv4_addresses_are_mapped_into_ipv6() {
        assert_eq!(
            ipcache_v4_addr([10, 244, 1, 10])[10..],
            [0xff, 0xff, 10, 244, 1, 10]
        );
        assert_eq!(ipcache_v4_prefix(32), 128);
        assert_eq!(ipcache_v4_prefix(0), 96);
    }
}
