//! Hubble's server-side flow filters (cilium/cilium `pkg/hubble/filters`),
//! compiled once and evaluated without allocating.
//!
//! Semantics, as in Hubble:
//! - inside one [`FlowFilter`] every field that is set must match (AND), and
//!   within a field any listed value may match (OR);
//! - a flow passes a [`FlowFilterSet`] when it matches some whitelist entry
//!   (or the whitelist is empty) and matches no blacklist entry.
//!
//! Every field holonet's flows can carry is implemented. Fields that cannot be
//! evaluated (`experimental.cel_expression`) are rejected with a
//! [`FilterError`], never ignored: ignoring part of a filter would widen a
//! whitelist or narrow a blacklist behind the user's back.
//!
//! Matched against cilium/cilium `pkg/hubble/filters`: `k8s.go`
//! (25972d8e8c67dd3a4d74c2dbea54461fa7f20707), `labelparser.go`
//! (94b67c8507c1a6add0155aadd961293755f3c480), `patterns.go`
//! (14870fe2e5513bbd2bea173cf5c3561551d3e44b), `nodename.go`
//! (3abe9a8faa0b4ce27dc77fa41938d1262126f584), `workload.go`
//! (22552f553efb8683e854dc0a20a9830a046519b4), `cluster_name.go`
//! (72ec9c80ff7a06fd3f792eaeb07e4ca546a90b79), `network_interface.go`
//! (21d690e1b2e70ec1f2ce60c4de01a251e60eea37) and `http.go`/`fqdn.go`
//! (1286c38f21a3a2184d756b96a4fea3a0a5705206), plus cilium `pkg/labels`
//! for label parsing. Where a check differs from a literal reading of the
//! Go code it says so below.

use std::net::IpAddr;

use holonet_proto::{
    encoded::SharedParts,
    flow::{
        Endpoint, EventTypeFilter, Flow, FlowFilter, HttpHeader, Ip, NetworkInterface, TcpFlags,
        Workload, layer4,
    },
};
use regex::Regex;

use crate::{
    fields::{dns, http, ports},
    names::EVENT_L7,
    selector::Selector,
};

/// An invalid filter. `Display` is `<field>: <what is wrong>`, e.g.
/// `source_ip: invalid CIDR "10.0.0.0/33"`; the agent returns it as gRPC
/// INVALID_ARGUMENT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FilterError {
    field: &'static str,
    message: String,
}

impl FilterError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }

    /// The FlowFilter field (proto name) that is wrong.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// What is wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A compiled whitelist and blacklist, ready to match flows quickly.
#[derive(Debug, Clone, Default)]
pub struct FlowFilterSet {
    whitelist: Vec<Compiled>,
    blacklist: Vec<Compiled>,
}

impl FlowFilterSet {
    /// Compiles Hubble filters (regexes, CIDRs, selectors) once.
    pub fn new(whitelist: &[FlowFilter], blacklist: &[FlowFilter]) -> Result<Self, FilterError> {
        Ok(Self {
            whitelist: whitelist.iter().map(compile).collect::<Result<_, _>>()?,
            blacklist: blacklist.iter().map(compile).collect::<Result<_, _>>()?,
        })
    }

    /// Whether the flow passes: some whitelist entry matches (or there is no
    /// whitelist) and no blacklist entry matches.
    pub fn matches(&self, flow: &Flow) -> bool {
        self.matches_parts(flow, &SharedParts::default())
    }

    /// [`Self::matches`] for a flow some of whose parts are kept apart from
    /// it (the agent's store shares them between flows): where `shared`
    /// has a part, `flow`'s own is not looked at.
    pub fn matches_parts(&self, flow: &Flow, shared: &SharedParts<'_>) -> bool {
        let parts = Parts { flow, shared };
        (self.whitelist.is_empty() || self.whitelist.iter().any(|c| c.matches(&parts)))
            && !self.blacklist.iter().any(|c| c.matches(&parts))
    }

    /// True when there is no whitelist (every flow is a candidate).
    pub fn whitelist_is_empty(&self) -> bool {
        self.whitelist.is_empty()
    }

    /// True when the set lets every flow through (no whitelist, no blacklist).
    pub fn is_empty(&self) -> bool {
        self.whitelist.is_empty() && self.blacklist.is_empty()
    }
}

/// One compiled FlowFilter: all checks must pass.
#[derive(Debug, Clone)]
struct Compiled {
    checks: Vec<Check>,
}

impl Compiled {
    fn matches(&self, parts: &Parts<'_>) -> bool {
        self.checks.iter().all(|c| c.matches(parts))
    }
}

/// A flow and the parts kept apart from it.
struct Parts<'a> {
    flow: &'a Flow,
    shared: &'a SharedParts<'a>,
}

impl<'a> Parts<'a> {
    fn source(&self) -> Option<&'a Endpoint> {
        self.shared.source.or(self.flow.source.as_ref())
    }

    fn destination(&self) -> Option<&'a Endpoint> {
        self.shared.destination.or(self.flow.destination.as_ref())
    }

    fn ip(&self) -> Option<&'a Ip> {
        self.shared.ip.or(self.flow.ip.as_ref())
    }

    fn interface(&self) -> Option<&'a NetworkInterface> {
        self.shared.interface.or(self.flow.interface.as_ref())
    }

    fn uuid(&self) -> &'a str {
        self.shared
            .uuid
            .filter(|uuid| !uuid.is_empty())
            .unwrap_or(&self.flow.uuid)
    }

    fn node_name(&self) -> &'a str {
        self.shared
            .node_name
            .filter(|name| !name.is_empty())
            .unwrap_or(&self.flow.node_name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Destination,
}

#[derive(Debug, Clone)]
enum IpMatch {
    Exact(IpAddr),
    Cidr(IpAddr, u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Icmpv4,
    Icmpv6,
    /// Protocols Hubble knows but holonet's flow model cannot carry (vrrp,
    /// igmp, kafka): valid in a filter, never matched.
    Never,
    Dns,
    Http,
}

#[derive(Debug, Clone)]
enum Check {
    Uuid(Vec<String>),
    Ip {
        side: Side,
        xlated: bool,
        ips: Vec<IpMatch>,
    },
    NamespacedName {
        side: Side,
        service: bool,
        names: Vec<(String, String)>,
    },
    Fqdn {
        side: Side,
        re: Regex,
    },
    Label {
        side: Side,
        selectors: Vec<Selector>,
    },
    Workload {
        side: Side,
        workloads: Vec<Workload>,
    },
    Cluster {
        side: Side,
        names: Vec<String>,
    },
    TrafficDirection(Vec<i32>),
    Verdict(Vec<i32>),
    DropReasonDesc(Vec<i32>),
    Interface(Vec<NetworkInterface>),
    EventType(Vec<EventTypeFilter>),
    HttpStatus {
        full: Vec<u32>,
        prefixes: Vec<String>,
    },
    Protocol(Vec<Proto>),
    Port {
        side: Side,
        ports: Vec<u32>,
    },
    Reply(Vec<bool>),
    DnsQuery(Vec<Regex>),
    Identity {
        side: Side,
        ids: Vec<u32>,
    },
    HttpMethod(Vec<String>),
    HttpPath(Vec<Regex>),
    HttpUrl(Vec<Regex>),
    HttpHeader(Vec<HttpHeader>),
    TcpFlags(Vec<TcpFlags>),
    NodeName(Vec<(Regex, Regex)>),
    NodeLabels(Vec<Selector>),
    IpVersion(Vec<i32>),
    TraceId(Vec<String>),
    IpTraceId(Vec<u64>),
    Encrypted(Vec<bool>),
}

fn endpoint<'a>(parts: &Parts<'a>, side: Side) -> Option<&'a Endpoint> {
    match side {
        Side::Source => parts.source(),
        Side::Destination => parts.destination(),
    }
}

fn ip_in(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The path of an HTTP URL as Go's `url.ParseRequestURI` would give it, or
/// `None` when Go would reject the URL. Percent-decoding is applied (only
/// then does this allocate).
fn request_uri_path(url: &str) -> Option<std::borrow::Cow<'_, str>> {
    if url.is_empty() {
        return None;
    }
    if url == "*" {
        return Some("*".into());
    }
    let without_query = url.split_once('?').map_or(url, |(p, _)| p);
    let raw_path = if without_query.starts_with('/') {
        without_query
    } else {
        let (scheme, rest) = without_query.split_once(':')?;
        let mut chars = scheme.bytes();
        let first_ok = chars.next().is_some_and(|b| b.is_ascii_alphabetic());
        if !first_ok || !chars.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return None;
        }
        if let Some(after) = rest.strip_prefix("//") {
            match after.find('/') {
                Some(i) => &after[i..],
                None => "",
            }
        } else if rest.starts_with('/') {
            rest
        } else {
            // Opaque URL (`mailto:x`): no path.
            ""
        }
    };
    if !raw_path.contains('%') {
        return Some(raw_path.into());
    }
    let bytes = raw_path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let s = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(s, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Into::into)
}

/// Writes `code` like Go's `%03d` into `buf`, returning the digits.
fn fmt_code(code: u32, buf: &mut [u8; 10]) -> &str {
    let mut n = code;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    while buf.len() - i < 3 {
        i -= 1;
        buf[i] = b'0';
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("")
}

fn tcp_flags_contain(flow: &TcpFlags, want: &TcpFlags) -> bool {
    (!want.fin || flow.fin)
        && (!want.syn || flow.syn)
        && (!want.rst || flow.rst)
        && (!want.psh || flow.psh)
        && (!want.ack || flow.ack)
        && (!want.urg || flow.urg)
        && (!want.ece || flow.ece)
        && (!want.cwr || flow.cwr)
        && (!want.ns || flow.ns)
}

impl Check {
    fn matches(&self, parts: &Parts<'_>) -> bool {
        let flow = parts.flow;
        match self {
            Check::Uuid(ids) => ids.iter().any(|id| id == parts.uuid()),
            Check::Ip { side, xlated, ips } => {
                // Hubble compares normalised address strings; comparing
                // parsed addresses is the same for well-formed flows and
                // also matches non-canonical spellings of an address.
                let Some(ip) = parts.ip() else {
                    return false;
                };
                let s = match (side, xlated) {
                    (Side::Source, false) => &ip.source,
                    (Side::Source, true) => &ip.source_xlated,
                    (Side::Destination, _) => &ip.destination,
                };
                let Ok(addr) = s.parse::<IpAddr>() else {
                    return false;
                };
                ips.iter().any(|m| match m {
                    IpMatch::Exact(a) => *a == addr,
                    IpMatch::Cidr(n, bits) => ip_in(addr, *n, *bits),
                })
            }
            Check::NamespacedName {
                side,
                service,
                names,
            } => {
                let (ns, name) = if *service {
                    let svc = match side {
                        Side::Source => flow.source_service.as_ref(),
                        Side::Destination => flow.destination_service.as_ref(),
                    };
                    svc.map_or(("", ""), |s| (s.namespace.as_str(), s.name.as_str()))
                } else {
                    endpoint(parts, *side)
                        .map_or(("", ""), |e| (e.namespace.as_str(), e.pod_name.as_str()))
                };
                if ns.is_empty() && name.is_empty() {
                    return false;
                }
                names
                    .iter()
                    .any(|(fns, prefix)| fns == ns && name.starts_with(prefix.as_str()))
            }
            Check::Fqdn { side, re } => {
                let names = match side {
                    Side::Source => &flow.source_names,
                    Side::Destination => &flow.destination_names,
                };
                names.iter().any(|n| re.is_match(n))
            }
            Check::Label { side, selectors } => {
                let empty: &[String] = &[];
                let labels = endpoint(parts, *side).map_or(empty, |e| e.labels.as_slice());
                selectors.iter().any(|s| s.matches(labels))
            }
            Check::Workload { side, workloads } => endpoint(parts, *side).is_some_and(|e| {
                e.workloads.iter().any(|w| {
                    workloads.iter().any(|f| {
                        (f.name.is_empty() || f.name == w.name)
                            && (f.kind.is_empty() || f.kind == w.kind)
                    })
                })
            }),
            Check::Cluster { side, names } => {
                let c = endpoint(parts, *side).map_or("", |e| e.cluster_name.as_str());
                names.iter().any(|n| n == c)
            }
            Check::TrafficDirection(v) => v.contains(&flow.traffic_direction),
            Check::Verdict(v) => v.contains(&flow.verdict),
            Check::DropReasonDesc(v) => v.contains(&flow.drop_reason_desc),
            Check::Interface(ifaces) => parts.interface().is_some_and(|i| {
                ifaces.iter().any(|f| {
                    (f.index == 0 || f.index == i.index) && (f.name.is_empty() || f.name == i.name)
                })
            }),
            Check::EventType(types) => flow.event_type.as_ref().is_some_and(|et| {
                types.iter().any(|t| {
                    t.r#type == et.r#type && (!t.match_sub_type || t.sub_type == et.sub_type)
                })
            }),
            Check::HttpStatus { full, prefixes } => {
                let Some(h) = http(flow) else { return false };
                if h.code == 0 {
                    return false;
                }
                if full.contains(&h.code) {
                    return true;
                }
                let mut buf = [0u8; 10];
                let code = fmt_code(h.code, &mut buf);
                prefixes.iter().any(|p| code.starts_with(p.as_str()))
            }
            Check::Protocol(protos) => protos.iter().any(|p| {
                let l4 = flow.l4.as_ref().and_then(|l| l.protocol.as_ref());
                match p {
                    Proto::Tcp => matches!(l4, Some(layer4::Protocol::Tcp(_))),
                    Proto::Udp => matches!(l4, Some(layer4::Protocol::Udp(_))),
                    Proto::Sctp => matches!(l4, Some(layer4::Protocol::Sctp(_))),
                    Proto::Icmpv4 => matches!(l4, Some(layer4::Protocol::IcmPv4(_))),
                    Proto::Icmpv6 => matches!(l4, Some(layer4::Protocol::IcmPv6(_))),
                    Proto::Icmp => matches!(
                        l4,
                        Some(layer4::Protocol::IcmPv4(_) | layer4::Protocol::IcmPv6(_))
                    ),
                    Proto::Dns => dns(flow).is_some(),
                    Proto::Http => http(flow).is_some(),
                    Proto::Never => false,
                }
            }),
            Check::Port { side, ports: want } => ports(flow).is_some_and(|(s, d)| {
                let p = if *side == Side::Source { s } else { d };
                want.contains(&p)
            }),
            Check::Reply(v) => flow.is_reply.as_ref().is_some_and(|r| v.contains(&r.value)),
            Check::DnsQuery(res) => {
                dns(flow).is_some_and(|d| res.iter().any(|r| r.is_match(&d.query)))
            }
            Check::Identity { side, ids } => {
                let id = endpoint(parts, *side).map_or(0, |e| e.identity);
                ids.contains(&id)
            }
            Check::HttpMethod(ms) => http(flow).is_some_and(|h| {
                !h.method.is_empty() && ms.iter().any(|m| m.eq_ignore_ascii_case(&h.method))
            }),
            Check::HttpPath(res) => http(flow).is_some_and(|h| {
                request_uri_path(&h.url).is_some_and(|p| res.iter().any(|r| r.is_match(&p)))
            }),
            Check::HttpUrl(res) => http(flow)
                .is_some_and(|h| !h.url.is_empty() && res.iter().any(|r| r.is_match(&h.url))),
            Check::HttpHeader(want) => http(flow).is_some_and(|h| {
                want.iter().any(|w| {
                    h.headers
                        .iter()
                        .any(|fh| fh.key == w.key && fh.value == w.value)
                })
            }),
            Check::TcpFlags(want) => {
                let flags = match flow.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
                    Some(layer4::Protocol::Tcp(t)) => t.flags.as_ref(),
                    _ => None,
                };
                flags.is_some_and(|f| want.iter().any(|w| tcp_flags_contain(f, w)))
            }
            Check::NodeName(patterns) => {
                let name = parts.node_name();
                if name.is_empty() {
                    return false;
                }
                let (cluster, node) = match name.split_once('/') {
                    Some((c, n)) if !n.contains('/') => (c, n),
                    Some(_) => return false,
                    // Hubble prefixes node names without a cluster with the
                    // default cluster name.
                    None => ("default", name),
                };
                patterns
                    .iter()
                    .any(|(c, n)| c.is_match(cluster) && n.is_match(node))
            }
            Check::NodeLabels(selectors) => selectors.iter().any(|s| s.matches(&flow.node_labels)),
            Check::IpVersion(v) => parts.ip().is_some_and(|ip| v.contains(&ip.ip_version)),
            Check::TraceId(ids) => {
                let id = flow
                    .trace_context
                    .as_ref()
                    .and_then(|t| t.parent.as_ref())
                    .map_or("", |p| p.trace_id.as_str());
                !id.is_empty() && ids.iter().any(|i| i == id)
            }
            Check::IpTraceId(ids) => flow
                .ip_trace_id
                .as_ref()
                .is_some_and(|t| t.trace_id != 0 && ids.contains(&t.trace_id)),
            Check::Encrypted(v) => parts.ip().is_some_and(|ip| v.contains(&ip.encrypted)),
        }
    }
}

fn parse_ips(field: &'static str, values: &[String]) -> Result<Vec<IpMatch>, FilterError> {
    values
        .iter()
        .map(|v| {
            if let Some((addr, bits)) = v.split_once('/') {
                let bad = || FilterError::new(field, format!("invalid CIDR in filter: {v:?}"));
                let addr: IpAddr = addr.parse().map_err(|_| bad())?;
                let bits: u8 = if bits.bytes().all(|b| b.is_ascii_digit()) && !bits.is_empty() {
                    bits.parse().map_err(|_| bad())?
                } else {
                    return Err(bad());
                };
                let max = if addr.is_ipv4() { 32 } else { 128 };
                if bits > max {
                    return Err(bad());
                }
                Ok(IpMatch::Cidr(addr, bits))
            } else {
                v.parse().map(IpMatch::Exact).map_err(|_| {
                    FilterError::new(field, format!("invalid IP address in filter: {v:?}"))
                })
            }
        })
        .collect()
}

/// Hubble's `k8s.ParseNamespaceName`: `ns/prefix`, `ns/` or `prefix`
/// (namespace `default`).
fn parse_namespaced(
    field: &'static str,
    values: &[String],
) -> Result<Vec<(String, String)>, FilterError> {
    values
        .iter()
        .map(|v| {
            let mut parts = v.split('/');
            let first = parts.next().unwrap_or("");
            let (ns, name) = match parts.next() {
                Some(name) => (first, name),
                None if first.is_empty() => ("", ""),
                None => ("default", first),
            };
            if ns.is_empty() && name.is_empty() {
                return Err(FilterError::new(
                    field,
                    format!("invalid filter, must be [namespace/][<name>], got {v:?}"),
                ));
            }
            Ok((ns.to_owned(), name.to_owned()))
        })
        .collect()
}

const FQDN_RE: &str = r"(?:[-0-9_a-z]+(?:\.[-0-9_a-z]+)*)";

/// Hubble's FQDN pattern (patterns.go): lowercase, one trailing dot
/// trimmed, `*` matches `[-.0-9a-z]*`, anything but `[-0-9_a-z.*]` is an
/// error.
fn fqdn_pattern_regex(pattern: &str) -> Result<String, String> {
    let p = pattern.trim();
    let p = p.strip_suffix('.').unwrap_or(p).to_lowercase();
    if p.is_empty() {
        return Err("empty pattern".into());
    }
    if p.ends_with('.') {
        return Err("multiple trailing dots in pattern".into());
    }
    let mut re = String::with_capacity(p.len() * 2);
    for c in p.chars() {
        match c {
            '.' => re.push_str(r"\."),
            '*' => re.push_str("[-.0-9a-z]*"),
            '-' | '_' | '0'..='9' | 'a'..='z' => re.push(c),
            other => return Err(format!("{other:?}: invalid rune in pattern")),
        }
    }
    Ok(re)
}

fn anchored(field: &'static str, body: &str) -> Result<Regex, FilterError> {
    Regex::new(&format!(r"\A(?:{body})\z"))
        .map_err(|e| FilterError::new(field, format!("invalid pattern: {e}")))
}

fn compile_fqdn(field: &'static str, values: &[String]) -> Result<Regex, FilterError> {
    let parts = values
        .iter()
        .map(|v| {
            fqdn_pattern_regex(v)
                .map_err(|e| FilterError::new(field, format!("invalid FQDN in filter {v:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    anchored(field, &parts.join("|"))
}

fn compile_node_names(values: &[String]) -> Result<Vec<(Regex, Regex)>, FilterError> {
    const FIELD: &str = "node_name";
    values
        .iter()
        .map(|v| {
            if v.is_empty() {
                return Err(FilterError::new(FIELD, "empty pattern"));
            }
            let parts: Vec<&str> = v.split('/').collect();
            let (cluster, node) = match parts.as_slice() {
                [n] => ("", *n),
                [c, n] => (*c, *n),
                _ => {
                    return Err(FilterError::new(
                        FIELD,
                        format!("{v:?}: too many slashes in pattern"),
                    ));
                }
            };
            let part = |p: &str| -> Result<Regex, FilterError> {
                let body = if p.is_empty() {
                    FQDN_RE.to_owned()
                } else {
                    fqdn_pattern_regex(p)
                        .map_err(|e| FilterError::new(FIELD, format!("{v:?}: {e}")))?
                };
                anchored(FIELD, &body)
            };
            Ok((part(cluster)?, part(node)?))
        })
        .collect()
}

fn compile_regexes(field: &'static str, values: &[String]) -> Result<Vec<Regex>, FilterError> {
    values
        .iter()
        .map(|v| {
            Regex::new(v).map_err(|e| {
                FilterError::new(field, format!("invalid regular expression {v:?}: {e}"))
            })
        })
        .collect()
}

fn compile_selectors(field: &'static str, values: &[String]) -> Result<Vec<Selector>, FilterError> {
    values
        .iter()
        .map(|v| Selector::parse(v).map_err(|e| FilterError::new(field, e.to_string())))
        .collect()
}

fn parse_ports(field: &'static str, values: &[String]) -> Result<Vec<u32>, FilterError> {
    values
        .iter()
        .map(|v| {
            v.parse::<u16>()
                .map(u32::from)
                .map_err(|_| FilterError::new(field, format!("invalid port {v:?}")))
        })
        .collect()
}

fn compile(ff: &FlowFilter) -> Result<Compiled, FilterError> {
    use Side::{Destination as Dst, Source as Src};
    if let Some(exp) = &ff.experimental
        && !exp.cel_expression.is_empty()
    {
        return Err(FilterError::new(
            "experimental.cel_expression",
            "CEL expressions are not supported by holonet",
        ));
    }
    let http_fields: [(&'static str, bool); 5] = [
        ("http_status_code", !ff.http_status_code.is_empty()),
        ("http_method", !ff.http_method.is_empty()),
        ("http_path", !ff.http_path.is_empty()),
        ("http_url", !ff.http_url.is_empty()),
        ("http_header", !ff.http_header.is_empty()),
    ];
    if !ff.event_type.is_empty() && !ff.event_type.iter().any(|t| t.r#type == EVENT_L7) {
        if let Some((field, _)) = http_fields.iter().find(|(_, set)| *set) {
            return Err(FilterError::new(
                field,
                "filtering by HTTP requires the event_type filter to include l7 events (type 129)",
            ));
        }
    }

    let mut checks = Vec::new();
    if !ff.uuid.is_empty() {
        checks.push(Check::Uuid(ff.uuid.clone()));
    }
    for (field, side, xlated, values) in [
        ("source_ip", Src, false, &ff.source_ip),
        ("source_ip_xlated", Src, true, &ff.source_ip_xlated),
        ("destination_ip", Dst, false, &ff.destination_ip),
    ] {
        if !values.is_empty() {
            checks.push(Check::Ip {
                side,
                xlated,
                ips: parse_ips(field, values)?,
            });
        }
    }
    for (field, side, service, values) in [
        ("source_pod", Src, false, &ff.source_pod),
        ("destination_pod", Dst, false, &ff.destination_pod),
        ("source_service", Src, true, &ff.source_service),
        ("destination_service", Dst, true, &ff.destination_service),
    ] {
        if !values.is_empty() {
            checks.push(Check::NamespacedName {
                side,
                service,
                names: parse_namespaced(field, values)?,
            });
        }
    }
    for (field, side, values) in [
        ("source_fqdn", Src, &ff.source_fqdn),
        ("destination_fqdn", Dst, &ff.destination_fqdn),
    ] {
        if !values.is_empty() {
            checks.push(Check::Fqdn {
                side,
                re: compile_fqdn(field, values)?,
            });
        }
    }
    for (field, side, values) in [
        ("source_label", Src, &ff.source_label),
        ("destination_label", Dst, &ff.destination_label),
    ] {
        if !values.is_empty() {
            checks.push(Check::Label {
                side,
                selectors: compile_selectors(field, values)?,
            });
        }
    }
    for (side, values) in [(Src, &ff.source_workload), (Dst, &ff.destination_workload)] {
        if !values.is_empty() {
            checks.push(Check::Workload {
                side,
                workloads: values.clone(),
            });
        }
    }
    for (field, side, values) in [
        ("source_cluster_name", Src, &ff.source_cluster_name),
        (
            "destination_cluster_name",
            Dst,
            &ff.destination_cluster_name,
        ),
    ] {
        if !values.is_empty() {
            if values.iter().any(String::is_empty) {
                return Err(FilterError::new(
                    field,
                    "invalid filter, name must not be empty",
                ));
            }
            checks.push(Check::Cluster {
                side,
                names: values.clone(),
            });
        }
    }
    if !ff.traffic_direction.is_empty() {
        checks.push(Check::TrafficDirection(ff.traffic_direction.clone()));
    }
    if !ff.verdict.is_empty() {
        checks.push(Check::Verdict(ff.verdict.clone()));
    }
    if !ff.drop_reason_desc.is_empty() {
        checks.push(Check::DropReasonDesc(ff.drop_reason_desc.clone()));
    }
    if !ff.interface.is_empty() {
        checks.push(Check::Interface(ff.interface.clone()));
    }
    if !ff.event_type.is_empty() {
        checks.push(Check::EventType(ff.event_type.clone()));
    }
    if !ff.http_status_code.is_empty() {
        let mut full = Vec::new();
        let mut prefixes = Vec::new();
        for s in &ff.http_status_code {
            let b = s.as_bytes();
            let digit = |c: u8| c.is_ascii_digit();
            let first_ok = b.first().is_some_and(|c| (b'1'..=b'5').contains(c));
            if b.len() == 3 && first_ok && b.iter().all(|c| digit(*c)) {
                full.push(s.parse().unwrap_or(0));
            } else if first_ok
                && b.last() == Some(&b'+')
                && (b.len() == 2 || (b.len() == 3 && digit(b[1])))
            {
                prefixes.push(s[..s.len() - 1].to_owned());
            } else {
                return Err(FilterError::new(
                    "http_status_code",
                    format!("invalid status code prefix: {s:?}"),
                ));
            }
        }
        checks.push(Check::HttpStatus { full, prefixes });
    }
    if !ff.protocol.is_empty() {
        let protos = ff
            .protocol
            .iter()
            .map(|p| {
                Ok(match p.to_lowercase().as_str() {
                    "tcp" => Proto::Tcp,
                    "udp" => Proto::Udp,
                    "sctp" => Proto::Sctp,
                    "icmp" => Proto::Icmp,
                    "icmpv4" => Proto::Icmpv4,
                    "icmpv6" => Proto::Icmpv6,
                    "vrrp" | "igmp" | "kafka" => Proto::Never,
                    "dns" => Proto::Dns,
                    "http" => Proto::Http,
                    _ => {
                        return Err(FilterError::new(
                            "protocol",
                            format!("unknown protocol: {p:?}"),
                        ));
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        checks.push(Check::Protocol(protos));
    }
    for (field, side, values) in [
        ("source_port", Src, &ff.source_port),
        ("destination_port", Dst, &ff.destination_port),
    ] {
        if !values.is_empty() {
            checks.push(Check::Port {
                side,
                ports: parse_ports(field, values)?,
            });
        }
    }
    if !ff.reply.is_empty() {
        checks.push(Check::Reply(ff.reply.clone()));
    }
    if !ff.dns_query.is_empty() {
        checks.push(Check::DnsQuery(compile_regexes(
            "dns_query",
            &ff.dns_query,
        )?));
    }
    for (side, values) in [(Src, &ff.source_identity), (Dst, &ff.destination_identity)] {
        if !values.is_empty() {
            checks.push(Check::Identity {
                side,
                ids: values.clone(),
            });
        }
    }
    if !ff.http_method.is_empty() {
        checks.push(Check::HttpMethod(ff.http_method.clone()));
    }
    if !ff.http_path.is_empty() {
        checks.push(Check::HttpPath(compile_regexes(
            "http_path",
            &ff.http_path,
        )?));
    }
    if !ff.http_url.is_empty() {
        checks.push(Check::HttpUrl(compile_regexes("http_url", &ff.http_url)?));
    }
    if !ff.http_header.is_empty() {
        checks.push(Check::HttpHeader(ff.http_header.clone()));
    }
    if !ff.tcp_flags.is_empty() {
        checks.push(Check::TcpFlags(ff.tcp_flags.clone()));
    }
    if !ff.node_name.is_empty() {
        checks.push(Check::NodeName(compile_node_names(&ff.node_name)?));
    }
    if !ff.node_labels.is_empty() {
        checks.push(Check::NodeLabels(compile_selectors(
            "node_labels",
            &ff.node_labels,
        )?));
    }
    if !ff.ip_version.is_empty() {
        checks.push(Check::IpVersion(ff.ip_version.clone()));
    }
    if !ff.trace_id.is_empty() {
        checks.push(Check::TraceId(ff.trace_id.clone()));
    }
    if !ff.ip_trace_id.is_empty() {
        checks.push(Check::IpTraceId(ff.ip_trace_id.clone()));
    }
    if !ff.encrypted.is_empty() {
        checks.push(Check::Encrypted(ff.encrypted.clone()));
    }
    Ok(Compiled { checks })
}

#[cfg(test)]
mod tests;
