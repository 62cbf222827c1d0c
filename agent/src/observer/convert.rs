//! Decoded probe flows → Hubble `flow.Flow` messages.
//!
//! Hubble builds a flow from each datapath event with the event type, the
//! observation point, the traffic direction and a one-line `Summary`; this
//! module does the same for holonet's events so the `hubble` CLI shows them
//! the way it shows Cilium's.

use std::{fmt::Write as _, net::IpAddr};

use holonet_proto::{
    flow::{
        self as pb, CiliumEventType, FlowType, IpVersion, L7FlowType, Layer4, Layer7,
        NetworkInterface, TraceObservationPoint, TrafficDirection, layer4, layer7,
    },
    pbjson_types::BoolValue,
    wkt::Timestamp,
};
use probe_common::event::tcp_flags;

use super::endpoints::EndpointDirectory;
use crate::flow::{Flow, FlowKind, ObservationPoint, TcpFlags, Verdict};

/// Cilium monitor message types (`event_type.type`).
pub mod event_type {
    /// A datapath drop.
    pub const DROP: i32 = 1;
    /// A datapath trace (packet seen at an observation point).
    pub const TRACE: i32 = 4;
    /// An L7 record (HTTP, DNS).
    pub const L7: i32 = 129;
}

/// Trace sub-types (`event_type.sub_type` of a trace) as Cilium numbers them.
fn trace_sub_type(point: ObservationPoint) -> i32 {
    match point {
        ObservationPoint::ToEndpoint => 0,
        ObservationPoint::FromEndpoint => 5,
        ObservationPoint::Unknown(_) => 0,
    }
}

/// Generates flow UUIDs: random per agent run, unique per flow, formatted as
/// RFC 4122 version 4. One random seed per run keeps this to a counter
/// increment per flow instead of a system call.
#[derive(Debug)]
pub struct UuidSource {
    seed: u128,
    counter: u64,
}

impl UuidSource {
    /// Seeds from the kernel's random source, falling back to the clock.
    pub fn new() -> Self {
        let mut seed = [0u8; 16];
        let from_kernel = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut seed))
            .is_ok();
        let mut seed = u128::from_ne_bytes(seed);
        if !from_kernel {
            seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
                .rotate_left(64)
                ^ u128::from(std::process::id());
        }
        Self { seed, counter: 0 }
    }

    /// The next UUID, as a string.
    pub fn next_uuid(&mut self) -> String {
        self.next_flow_uuid().as_str().to_string()
    }

    /// The next UUID.
    pub fn next_flow_uuid(&mut self) -> FlowUuid {
        self.counter = self.counter.wrapping_add(1);
        // Spread the counter over the random bits so successive UUIDs do not
        // share long prefixes, then set the version (4) and variant bits.
        let mixed =
            u128::from(self.counter).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
        let mut v = (self.seed ^ mixed).to_be_bytes();
        v[6] = (v[6] & 0x0f) | 0x40;
        v[8] = (v[8] & 0x3f) | 0x80;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; 36];
        let mut at = 0;
        for (i, byte) in v.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                at += 1;
            }
            out[at] = HEX[usize::from(byte >> 4)];
            out[at + 1] = HEX[usize::from(byte & 0x0f)];
            at += 2;
        }
        FlowUuid(out)
    }
}

/// A flow's UUID in its 36-character text form, kept without an
/// allocation of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowUuid([u8; 36]);

impl FlowUuid {
    /// The text form, e.g. `3f1c9a52-77d4-4b0e-9a61-0c2f5e8d7b14`.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits and dashes are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl Default for UuidSource {
    fn default() -> Self {
        Self::new()
    }
}

fn proto_tcp_flags(flags: TcpFlags) -> pb::TcpFlags {
    let has = |bit| flags.0 & bit != 0;
    pb::TcpFlags {
        fin: has(tcp_flags::FIN),
        syn: has(tcp_flags::SYN),
        rst: has(tcp_flags::RST),
        psh: has(tcp_flags::PSH),
        ack: has(tcp_flags::ACK),
        urg: has(tcp_flags::URG),
        ece: has(tcp_flags::ECE),
        cwr: has(tcp_flags::CWR),
        ns: false,
    }
}

/// Whether the packet travels in the reply direction of its connection, as
/// far as one packet tells: a bare SYN opens, a SYN-ACK answers, a request
/// line is sent by the client. Anything else is unknown until the datapath
/// tracks connections.
fn is_reply(flow: &Flow) -> Option<bool> {
    match &flow.kind {
        FlowKind::HttpRequest(_) | FlowKind::UnparsableHttp => Some(false),
        FlowKind::HttpResponse(_) => Some(true),
        FlowKind::Tcp if flow.tcp_flags.contains(tcp_flags::SYN) => {
            Some(flow.tcp_flags.contains(tcp_flags::ACK))
        }
        _ => None,
    }
}

/// The connection's direction from the observed endpoint's point of view:
/// a pod sending (from-endpoint) on a connection it opened is egress; its
/// replies to a connection opened towards it are ingress, and vice versa.
fn traffic_direction(point: ObservationPoint, reply: Option<bool>) -> TrafficDirection {
    let reply = reply.unwrap_or(false);
    match (point, reply) {
        (ObservationPoint::FromEndpoint, false) | (ObservationPoint::ToEndpoint, true) => {
            TrafficDirection::Egress
        }
        (ObservationPoint::FromEndpoint, true) | (ObservationPoint::ToEndpoint, false) => {
            TrafficDirection::Ingress
        }
        (ObservationPoint::Unknown(_), _) => TrafficDirection::Unknown,
    }
}

/// An address as Hubble writes it, without the reallocations of
/// `to_string` (which grows its string piece by piece).
fn ip_string(ip: IpAddr) -> String {
    let mut out = String::with_capacity(39);
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                let (hundreds, tens, ones) = (octet / 100, octet / 10 % 10, octet % 10);
                if hundreds > 0 {
                    out.push(char::from(b'0' + hundreds));
                }
                if hundreds > 0 || tens > 0 {
                    out.push(char::from(b'0' + tens));
                }
                out.push(char::from(b'0' + ones));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
    out
}

/// Builds the Hubble flow for a decoded probe flow. `node_name` is the
/// agent's node; `endpoints` names the addresses; `uuids` numbers the flows.
pub fn to_proto(
    flow: &Flow,
    node_name: &str,
    endpoints: &EndpointDirectory,
    uuids: &mut UuidSource,
) -> pb::Flow {
    pb::Flow {
        source: Some((**endpoints.lookup(flow.source.ip())).clone()),
        destination: Some((**endpoints.lookup(flow.destination.ip())).clone()),
        ..to_message(flow, node_name, uuids)
    }
}

/// The Hubble flow for a decoded probe flow without its two endpoints
/// (the store shares those, see
/// [`super::store::StoredFlow::build_event`]).
pub fn to_message(flow: &Flow, node_name: &str, uuids: &mut UuidSource) -> pb::Flow {
    let mut out = pb::Flow {
        uuid: uuids.next_uuid(),
        ip: Some(message_ip(flow)),
        node_name: node_name.to_string(),
        interface: Some(message_interface(flow)),
        ..Default::default()
    };
    write_message(flow, &mut out);
    if let Some(summary) = packet_summary(flow) {
        out.summary = summary;
    }
    out
}

/// The `Summary` of a flow that records a packet (not an L7 record):
/// `TCP Flags: SYN, ACK` or `UDP`, and why an L7-enforced segment was
/// dropped. The same for every such flow with the same protocol, flags and
/// reason; `None` for HTTP and DNS records, whose summary
/// [`write_message`] writes.
pub fn packet_summary(flow: &Flow) -> Option<String> {
    if is_l7_record(flow) {
        return None;
    }
    let why = crate::flow::l7_detail_text(flow.l7_detail);
    let mut summary = String::with_capacity(48 + why.map_or(0, str::len));
    if flow.l4_proto == 17 {
        summary.push_str("UDP");
    } else {
        let _ = write!(summary, "TCP Flags: {}", flow.tcp_flags);
    }
    if let Some(why) = why {
        summary.push_str("; ");
        summary.push_str(why);
    }
    Some(summary)
}

/// Is the flow a record of an HTTP request or response or of a DNS message
/// (rather than of a packet)?
pub(crate) fn is_l7_record(flow: &Flow) -> bool {
    matches!(
        flow.kind,
        FlowKind::HttpRequest(_) | FlowKind::HttpResponse(_) | FlowKind::Dns(_)
    )
}

/// The flow's `IP` (the same for every flow between two addresses).
pub fn message_ip(flow: &Flow) -> pb::Ip {
    pb::Ip {
        source: ip_string(flow.source.ip()),
        destination: ip_string(flow.destination.ip()),
        ip_version: if flow.source.is_ipv4() {
            IpVersion::IPv4
        } else {
            IpVersion::IPv6
        }
        .into(),
        ..Default::default()
    }
}

/// The flow's `interface` (the same for every flow seen there).
pub fn message_interface(flow: &Flow) -> NetworkInterface {
    NetworkInterface {
        index: flow.ifindex,
        name: flow.interface.as_deref().unwrap_or_default().to_string(),
    }
}

/// [`to_message`] but for the parts the store keeps apart (`uuid`, `IP`,
/// `node_name`, `interface`, a packet's `Summary`: see [`message_ip`],
/// [`message_interface`] and [`packet_summary`]), written
/// into `out`, a message with every field at its default (so a stored flow
/// is built where it is kept, not moved there).
pub fn write_message(flow: &Flow, out: &mut pb::Flow) {
    let reply = is_reply(flow);
    let point = match flow.observation {
        ObservationPoint::FromEndpoint => TraceObservationPoint::FromEndpoint,
        ObservationPoint::ToEndpoint => TraceObservationPoint::ToEndpoint,
        ObservationPoint::Unknown(_) => TraceObservationPoint::UnknownPoint,
    };
    let verdict = match flow.verdict {
        Verdict::Forwarded => pb::Verdict::Forwarded,
        Verdict::Dropped => pb::Verdict::Dropped,
        Verdict::Audit => pb::Verdict::Audit,
        Verdict::Unknown(_) => pb::Verdict::Unknown,
    };
    let udp = flow.l4_proto == 17;
    // L7 flows are records of a request, response or DNS message, not of a
    // packet: as Hubble writes them (from the proxy), their l4 has the
    // ports only and they carry no policy match type.
    let l7 = is_l7_record(flow);
    let l4 = Layer4 {
        protocol: Some(if udp {
            layer4::Protocol::Udp(pb::Udp {
                source_port: u32::from(flow.source.port()),
                destination_port: u32::from(flow.destination.port()),
            })
        } else {
            layer4::Protocol::Tcp(pb::Tcp {
                source_port: u32::from(flow.source.port()),
                destination_port: u32::from(flow.destination.port()),
                flags: (!l7).then(|| proto_tcp_flags(flow.tcp_flags)),
            })
        }),
    };
    out.time = Some(Timestamp::from(flow.time));
    out.verdict = verdict.into();
    out.l4 = Some(l4);
    out.is_reply = reply.map(|value| BoolValue { value });
    out.traffic_direction = traffic_direction(flow.observation, reply).into();

    match &flow.kind {
        FlowKind::HttpRequest(request) => {
            out.set_type(FlowType::L7);
            out.event_type = Some(CiliumEventType {
                r#type: event_type::L7,
                sub_type: 0,
            });
            // A request line cut by the probe's copy limit has no protocol
            // and only the start of its target; say so rather than guess.
            let url = request.url();
            let mut summary = String::with_capacity(
                request.protocol.len() + request.method.len() + url.len() + 5,
            );
            if request.truncated {
                let _ = write!(summary, "{} {url}...", request.method);
            } else {
                let _ = write!(summary, "{} {} {url}", request.protocol, request.method);
            }
            out.summary = summary;
            out.l7 = Some(Layer7 {
                r#type: L7FlowType::Request.into(),
                latency_ns: 0,
                record: Some(layer7::Record::Http(pb::Http {
                    code: 0,
                    method: request.method.clone(),
                    url,
                    protocol: request.protocol.to_string(),
                    headers: Vec::new(),
                })),
            });
        }
        FlowKind::HttpResponse(response) => {
            out.set_type(FlowType::L7);
            out.event_type = Some(CiliumEventType {
                r#type: event_type::L7,
                sub_type: 0,
            });
            let (method, url) = response
                .request
                .as_ref()
                .map(|r| (r.method.clone(), r.url()))
                .unwrap_or_default();
            // Hubble's wording: `HTTP/1.1 200 3ms (GET http://host/path)`.
            let mut summary = String::with_capacity(40 + method.len() + url.len());
            let _ = write!(
                summary,
                "{} {} {}ms ({method} {url})",
                response.protocol,
                response.code,
                response.latency_ns / 1_000_000
            );
            out.summary = summary;
            out.l7 = Some(Layer7 {
                r#type: L7FlowType::Response.into(),
                latency_ns: response.latency_ns,
                record: Some(layer7::Record::Http(pb::Http {
                    code: u32::from(response.code),
                    method,
                    url,
                    protocol: response.protocol.to_string(),
                    headers: Vec::new(),
                })),
            });
        }
        FlowKind::Dns(message) => {
            out.set_type(FlowType::L7);
            out.event_type = Some(CiliumEventType {
                r#type: event_type::L7,
                sub_type: 0,
            });
            let qtype = crate::dns::type_name(message.qtype);
            out.summary = if !message.response {
                format!("DNS Query {} {qtype}", message.query)
            } else if message.rcode == 0 {
                let ips: Vec<String> = message.ips.iter().map(ToString::to_string).collect();
                format!(
                    "DNS Answer \"{}\" TTL: {} (Probe {} {qtype})",
                    ips.join(","),
                    message.ttl,
                    message.query
                )
            } else {
                format!(
                    "DNS Answer RCode: {} (Probe {} {qtype})",
                    crate::dns::rcode_name(message.rcode),
                    message.query
                )
            };
            out.is_reply = Some(BoolValue {
                value: message.response,
            });
            out.traffic_direction =
                traffic_direction(flow.observation, Some(message.response)).into();
            out.l7 = Some(Layer7 {
                r#type: if message.response {
                    L7FlowType::Response
                } else {
                    L7FlowType::Request
                }
                .into(),
                latency_ns: 0,
                record: Some(layer7::Record::Dns(pb::Dns {
                    query: message.query.clone(),
                    ips: message.ips.iter().map(ToString::to_string).collect(),
                    ttl: message.ttl,
                    cnames: Vec::new(),
                    // Hubble says "proxy" for Cilium's DNS proxy; these
                    // messages were seen by holonet's TC probe.
                    observation_source: "probe".to_string(),
                    rcode: u32::from(message.rcode),
                    qtypes: vec![qtype],
                    rrtypes: message
                        .rrtypes
                        .iter()
                        .map(|t| crate::dns::type_name(*t))
                        .collect(),
                })),
            });
        }
        FlowKind::Tcp
        | FlowKind::UnparsableHttp
        | FlowKind::UnparsableDns
        | FlowKind::Unknown(_) => {
            out.set_type(FlowType::L3L4);
            out.event_type = Some(CiliumEventType {
                r#type: event_type::TRACE,
                sub_type: trace_sub_type(flow.observation),
            });
            out.set_trace_observation_point(point);
        }
    }
    if !l7 {
        out.policy_match_type = u32::from(flow.match_type);
    }
    if verdict == pb::Verdict::Dropped && !l7 {
        // Cilium's drop notifications: type 1 with the reason as sub-type;
        // whether a dropped packet was a reply is not known. (A request
        // denied by L7 rules stays an L7 flow with verdict DROPPED and no
        // drop reason, as Hubble shows proxy denials.)
        out.event_type = Some(CiliumEventType {
            r#type: event_type::DROP,
            sub_type: i32::from(flow.drop_reason),
        });
        out.drop_reason = u32::from(flow.drop_reason);
        out.drop_reason_desc = i32::from(flow.drop_reason);
        out.is_reply = None;
        out.trace_observation_point = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use probe_common::event::{FlowEvent, family, hook, kind, verdict};

    use super::*;
    use crate::clock::MonotonicClock;

    fn flow(kind_code: u8, flags: u8, at: u8, payload: &[u8]) -> Flow {
        let mut e = FlowEvent::zeroed();
        e.ktime_ns = 5_000_000_123;
        e.family = family::IPV4;
        e.saddr[..4].copy_from_slice(&[10, 250, 0, 1]);
        e.daddr[..4].copy_from_slice(&[10, 250, 0, 2]);
        e.sport = 40000;
        e.dport = 52773;
        e.ifindex = 4;
        e.kind = kind_code;
        e.tcp_flags = flags;
        e.hook = at;
        e.verdict = verdict::FORWARDED;
        e.payload[..payload.len()].copy_from_slice(payload);
        e.payload_len = payload.len() as u16;
        let names = HashMap::from([(4, std::sync::Arc::from("lxc1"))]);
        Flow::from_event(&e, &MonotonicClock::with_offset_ns(0), &names)
    }

    #[test]
    fn syn_at_the_client_is_an_egress_trace_from_endpoint() {
        let f = to_proto(
            &flow(kind::TCP_FLAGS, tcp_flags::SYN, hook::TC_INGRESS, b""),
            "node-1",
            &EndpointDirectory::empty(),
            &mut UuidSource::new(),
        );
        assert_eq!(f.verdict(), pb::Verdict::Forwarded);
        assert_eq!(f.r#type(), FlowType::L3L4);
        assert_eq!(
            f.trace_observation_point(),
            TraceObservationPoint::FromEndpoint
        );
        assert_eq!(f.traffic_direction(), TrafficDirection::Egress);
        assert_eq!(f.is_reply, Some(BoolValue { value: false }));
        assert_eq!(
            f.event_type,
            Some(CiliumEventType {
                r#type: 4,
                sub_type: 5
            })
        );
        assert_eq!(f.summary, "TCP Flags: SYN");
        assert_eq!(f.node_name, "node-1");
        let time = f.time.expect("time");
        assert_eq!((time.seconds, time.nanos), (5, 123));
        let ip = f.ip.expect("ip");
        assert_eq!(
            (ip.source.as_str(), ip.destination.as_str()),
            ("10.250.0.1", "10.250.0.2")
        );
        assert_eq!(ip.ip_version(), IpVersion::IPv4);
        let Some(layer4::Protocol::Tcp(tcp)) = f.l4.and_then(|l| l.protocol) else {
            panic!("tcp expected");
        };
        assert_eq!((tcp.source_port, tcp.destination_port), (40000, 52773));
        assert!(tcp.flags.expect("flags").syn);
        assert_eq!(f.interface.expect("interface").name, "lxc1");
    }

    #[test]
    fn syn_ack_delivered_to_the_client_is_a_reply_on_an_egress_connection() {
        let f = to_proto(
            &flow(
                kind::TCP_FLAGS,
                tcp_flags::SYN | tcp_flags::ACK,
                hook::TC_EGRESS,
                b"",
            ),
            "n",
            &EndpointDirectory::empty(),
            &mut UuidSource::new(),
        );
        assert_eq!(f.is_reply, Some(BoolValue { value: true }));
        assert_eq!(f.traffic_direction(), TrafficDirection::Egress);
        assert_eq!(f.summary, "TCP Flags: SYN, ACK");
        assert_eq!(f.event_type.expect("type").sub_type, 0);
    }

    #[test]
    fn fin_has_no_known_reply_direction() {
        let f = to_proto(
            &flow(
                kind::TCP_FLAGS,
                tcp_flags::FIN | tcp_flags::ACK,
                hook::TC_EGRESS,
                b"",
            ),
            "n",
            &EndpointDirectory::empty(),
            &mut UuidSource::new(),
        );
        assert_eq!(f.is_reply, None);
    }

    #[test]
    fn request_line_becomes_an_l7_http_request() {
        let mut request = flow(
            kind::HTTP_REQUEST,
            tcp_flags::PSH | tcp_flags::ACK,
            hook::TC_EGRESS,
            b"GET /intersystems/fhir/r5/Patient/DarthVader HTTP/1.1\r\nHost: x\r\n",
        );
        request.match_type = 2;
        let f = to_proto(
            &request,
            "n",
            &EndpointDirectory::empty(),
            &mut UuidSource::new(),
        );
        assert_eq!(f.r#type(), FlowType::L7);
        // As Hubble writes L7 flows: ports without TCP flags, no match type.
        let Some(layer4::Protocol::Tcp(tcp)) = f.l4.as_ref().and_then(|l| l.protocol) else {
            panic!("tcp expected");
        };
        assert_eq!(tcp.flags, None);
        assert_eq!(f.policy_match_type, 0);
        assert_eq!(f.event_type.expect("type").r#type, 129);
        assert_eq!(f.traffic_direction(), TrafficDirection::Ingress);
        let l7 = f.l7.expect("l7");
        assert_eq!(l7.r#type(), L7FlowType::Request);
        let Some(layer7::Record::Http(http)) = l7.record else {
            panic!("http expected");
        };
        assert_eq!(http.method, "GET");
        assert_eq!(http.url, "http://x/intersystems/fhir/r5/Patient/DarthVader");
        assert_eq!(http.protocol, "HTTP/1.1");
        assert_eq!(
            f.summary,
            "HTTP/1.1 GET http://x/intersystems/fhir/r5/Patient/DarthVader"
        );
        let src = f.source.expect("source");
        assert_eq!(src.identity, 2);
        assert_eq!(src.labels, ["reserved:world"]);
    }

    #[test]
    fn a_policy_drop_becomes_a_hubble_drop_event() {
        let mut f = flow(kind::TCP_FLAGS, tcp_flags::SYN, hook::TC_EGRESS, b"");
        f.verdict = crate::flow::Verdict::Dropped;
        f.drop_reason = 133;
        let p = to_proto(&f, "n", &EndpointDirectory::empty(), &mut UuidSource::new());
        assert_eq!(p.verdict(), pb::Verdict::Dropped);
        assert_eq!(p.drop_reason_desc(), pb::DropReason::PolicyDenied);
        assert_eq!(p.drop_reason, 133);
        assert_eq!(
            p.event_type,
            Some(CiliumEventType {
                r#type: 1,
                sub_type: 133
            })
        );
        assert_eq!(p.is_reply, None);
        assert_eq!(p.summary, "TCP Flags: SYN");
    }

    #[test]
    fn udp_flows_carry_udp_ports() {
        let mut f = flow(kind::TCP_FLAGS, 0, hook::TC_INGRESS, b"");
        f.l4_proto = 17;
        let p = to_proto(&f, "n", &EndpointDirectory::empty(), &mut UuidSource::new());
        let Some(layer4::Protocol::Udp(udp)) = p.l4.and_then(|l| l.protocol) else {
            panic!("udp expected");
        };
        assert_eq!((udp.source_port, udp.destination_port), (40000, 52773));
        assert_eq!(p.summary, "UDP");
    }

    #[test]
    fn dns_messages_become_l7_dns_flows() {
        let mut q = vec![0xab, 0xcd, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        for l in ["coruscanthealth", "galactic-fhir"] {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 250, 1, 2]);
        let mut f = flow(kind::DNS, 0, hook::TC_EGRESS, &q);
        f.l4_proto = 17;
        let p = to_proto(&f, "n", &EndpointDirectory::empty(), &mut UuidSource::new());
        assert_eq!(p.r#type(), FlowType::L7);
        assert_eq!(p.is_reply, Some(BoolValue { value: true }));
        let l7 = p.l7.expect("l7");
        assert_eq!(l7.r#type(), L7FlowType::Response);
        let Some(layer7::Record::Dns(dns)) = l7.record else {
            panic!("dns expected");
        };
        assert_eq!(dns.query, "coruscanthealth.galactic-fhir.");
        assert_eq!(dns.ips, ["10.250.1.2"]);
        assert_eq!(dns.qtypes, ["A"]);
        assert_eq!(
            p.summary,
            "DNS Answer \"10.250.1.2\" TTL: 30 (Probe coruscanthealth.galactic-fhir. A)"
        );
    }

    #[test]
    fn uuids_are_unique_and_version_4() {
        let mut source = UuidSource::new();
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| source.next_uuid()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            assert_eq!(id.len(), 36);
            assert_eq!(&id[14..15], "4", "{id}");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        }
    }

    proptest::proptest! {
        /// Addresses are written exactly as `Display` writes them.
        #[test]
        fn addresses_are_written_as_display_writes_them(raw in proptest::num::u128::ANY, v4 in proptest::num::u32::ANY) {
            for ip in [IpAddr::from(std::net::Ipv4Addr::from(v4)), IpAddr::from(std::net::Ipv6Addr::from(raw))] {
                proptest::prop_assert_eq!(ip_string(ip), ip.to_string());
            }
        }
    }

    #[test]
    fn edge_addresses_are_written_as_display_writes_them() {
        for text in [
            "0.0.0.0",
            "10.0.0.9",
            "10.20.100.255",
            "255.255.255.255",
            "::",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = text.parse().expect("an address");
            assert_eq!(ip_string(ip), text);
        }
    }
}
