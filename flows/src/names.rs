//! Cilium's human-readable names for numeric codes: drop reasons, trace
//! observation points, policy match types, monitor event types and reserved
//! security identities.
//!
//! These are the strings `hubble observe` prints and accepts, taken from
//! cilium/cilium `pkg/monitor/api/drop.go` (codes up to 205),
//! `pkg/monitor/api/types.go` (event types, observation points, policy match
//! types) and `pkg/identity/numericidentity.go` (reserved identities).

/// Monitor event type of drop notifications (`event_type.type`).
pub const EVENT_DROP: i32 = 1;
/// Monitor event type of debug messages.
pub const EVENT_DEBUG: i32 = 2;
/// Monitor event type of debug captures.
pub const EVENT_CAPTURE: i32 = 3;
/// Monitor event type of trace notifications.
pub const EVENT_TRACE: i32 = 4;
/// Monitor event type of policy verdict notifications.
pub const EVENT_POLICY_VERDICT: i32 = 5;
/// Monitor event type of socket-level trace notifications.
pub const EVENT_TRACE_SOCK: i32 = 7;
/// Monitor event type of L7 (proxy access log) records.
pub const EVENT_L7: i32 = 129;
/// Monitor event type of agent notifications.
pub const EVENT_AGENT: i32 = 130;

/// Event type names accepted by `--type`, as in Cilium's `MessageTypeNames`.
pub const EVENT_TYPE_NAMES: &[(&str, i32)] = &[
    ("drop", EVENT_DROP),
    ("debug", EVENT_DEBUG),
    ("capture", EVENT_CAPTURE),
    ("trace", EVENT_TRACE),
    ("policy-verdict", EVENT_POLICY_VERDICT),
    ("recorder", 6),
    ("trace-sock", EVENT_TRACE_SOCK),
    ("l7", EVENT_L7),
    ("agent", EVENT_AGENT),
];

/// Trace observation point names by sub-type (`TraceObservationPoints`).
pub const TRACE_POINT_NAMES: &[(&str, i32)] = &[
    ("to-endpoint", 0),
    ("to-proxy", 1),
    ("to-host", 2),
    ("to-stack", 3),
    ("to-overlay", 4),
    ("from-endpoint", 5),
    ("from-proxy", 6),
    ("from-host", 7),
    ("from-stack", 8),
    ("from-overlay", 9),
    ("from-network", 10),
    ("to-network", 11),
    ("from-crypto", 12),
    ("to-crypto", 13),
];

/// Agent event sub-type names accepted by `--type agent:<name>`.
pub const AGENT_SUBTYPE_NAMES: &[(&str, i32)] = &[
    ("unspecified", 0),
    ("message", 1),
    ("agent-started", 2),
    ("endpoint-regenerate-success", 3),
    ("endpoint-regenerate-failure", 4),
    ("policy-updated", 5),
    ("policy-deleted", 6),
    ("endpoint-created", 7),
    ("endpoint-deleted", 8),
    ("ipcache-upserted", 9),
    ("ipcache-deleted", 10),
];

/// Reserved security identities and their names (`(world)`, `(host)`, …).
pub const RESERVED_IDENTITIES: &[(&str, u32)] = &[
    ("unknown", 0),
    ("host", 1),
    ("world", 2),
    ("unmanaged", 3),
    ("health", 4),
    ("init", 5),
    ("remote-node", 6),
    ("kube-apiserver", 7),
    ("ingress", 8),
    ("world-ipv4", 9),
    ("world-ipv6", 10),
];

/// Name of a reserved identity, `None` for ordinary numeric identities.
pub fn reserved_identity_name(id: u32) -> Option<&'static str> {
    RESERVED_IDENTITIES
        .iter()
        .find(|(_, n)| *n == id)
        .map(|(name, _)| *name)
}

/// Name of a trace observation point sub-type, `None` when unknown.
pub fn trace_point_name(sub_type: u8) -> Option<&'static str> {
    TRACE_POINT_NAMES
        .iter()
        .find(|(_, n)| *n == i32::from(sub_type))
        .map(|(name, _)| *name)
}

/// Cilium's drop reason text (`api.DropReason`), `None` for unknown codes,
/// which Hubble prints as the bare number.
pub fn drop_reason_text(code: u8) -> Option<&'static str> {
    Some(match code {
        0 => "Success",
        2 => "Invalid packet",
        3 => "Interface",
        4 => "Interface Decrypted",
        5 => "LB, sock cgroup: No backend slot entry found",
        6 => "LB, sock cgroup: No backend entry found",
        7 => "LB, sock cgroup: Reverse entry update failed",
        8 => "LB, sock cgroup: Reverse entry stale",
        9 => "Fragmented packet",
        10 => "Fragmented packet entry update failed",
        130 => "Invalid source mac",
        131 => "Invalid destination mac",
        132 => "Invalid source ip",
        133 => "Policy denied",
        134 => "Invalid packet",
        135 => "CT: Truncated or invalid header",
        136 => "CT: Missing TCP ACK flag",
        137 => "CT: Unknown L4 protocol",
        138 => "CT: Can't create entry from packet",
        139 => "Unsupported L3 protocol",
        140 => "Missed tail call",
        141 => "Error writing to packet",
        142 => "Unknown L4 protocol",
        143 => "Unknown ICMPv4 code",
        144 => "Unknown ICMPv4 type",
        145 => "Unknown ICMPv6 code",
        146 => "Unknown ICMPv6 type",
        147 => "Error retrieving tunnel key",
        148 => "Error retrieving tunnel options",
        149 => "Invalid Geneve option",
        150 => "Unknown L3 target address",
        151 => "Stale or unroutable IP",
        152 => "No matching local container found",
        153 => "Error while correcting L3 checksum",
        154 => "Error while correcting L4 checksum",
        155 => "CT: Map insertion failed",
        156 => "Invalid IPv6 extension header",
        157 => "IP fragmentation not supported",
        158 => "Service backend not found",
        160 => "No tunnel/encapsulation endpoint (datapath BUG!)",
        161 => "Failed to insert into proxymap",
        162 => "Reached EDT rate-limiting drop horizon",
        163 => "Unknown connection tracking state",
        164 => "Local host is unreachable",
        165 => "No configuration available to perform policy decision",
        166 => "Unsupported L2 protocol",
        167 => "No mapping for NAT masquerade",
        168 => "Unsupported protocol for NAT masquerade",
        169 => "FIB lookup failed",
        170 => "Encapsulation traffic is prohibited",
        171 => "Invalid identity",
        172 => "Unknown sender",
        173 => "NAT not needed",
        174 => "Is a ClusterIP",
        175 => "First logical datagram fragment not found",
        176 => "Forbidden ICMPv6 message",
        177 => "Denied by LB src range check",
        178 => "Socket lookup failed",
        179 => "Socket assign failed",
        180 => "Proxy redirection not supported for protocol",
        181 => "Policy denied by denylist",
        182 => "VLAN traffic disallowed by VLAN filter",
        183 => "Incorrect VNI from VTEP",
        184 => "Failed to update or lookup TC buffer",
        185 => "No SID was found for the IP address",
        186 => "SRv6 state was removed during tail call",
        187 => "L3 translation from IPv4 to IPv6 failed (NAT46)",
        188 => "L3 translation from IPv6 to IPv4 failed (NAT64)",
        189 => "Authentication required",
        190 => "No conntrack map found",
        191 => "No nat map found",
        192 => "Invalid ClusterID",
        193 => "Unsupported packet protocol for DSR encapsulation",
        194 => "No egress gateway found",
        195 => "Traffic is unencrypted",
        196 => "TTL exceeded",
        197 => "No node ID found",
        198 => "Rate limited",
        199 => "IGMP handled",
        200 => "IGMP subscribed",
        201 => "Multicast handled",
        202 => "Host datapath not ready",
        203 => "Endpoint policy program not available",
        204 => "No Egress IP configured",
        205 => "Punt to proxy",
        _ => return None,
    })
}

/// Cilium's policy match type name (`api.PolicyMatchType.String`).
pub fn policy_match_type_name(match_type: u32) -> &'static str {
    match match_type {
        0 => "none",
        1 => "L3-Only",
        2 => "L3-L4",
        3 => "L4-Only",
        4 => "all",
        5 => "L3-Proto",
        6 => "Proto-Only",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_have_hubble_texts() {
        assert_eq!(drop_reason_text(133), Some("Policy denied"));
        assert_eq!(drop_reason_text(181), Some("Policy denied by denylist"));
        assert_eq!(drop_reason_text(159), None);
        assert_eq!(trace_point_name(0), Some("to-endpoint"));
        assert_eq!(trace_point_name(200), None);
        assert_eq!(reserved_identity_name(2), Some("world"));
        assert_eq!(reserved_identity_name(256), None);
        assert_eq!(policy_match_type_name(2), "L3-L4");
    }
}
