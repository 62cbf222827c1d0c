//! The flow record built from one probe event.
//!
//! This is the walking skeleton's flow model: enough to print a line per
//! event. It keeps Hubble's vocabulary (verdicts, observation points, TCP
//! flag names, `http-request`) so it maps one to one onto Hubble's
//! `flow.Flow` once the gRPC API lands.

use std::{
    collections::HashMap,
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use chrono::{DateTime, Utc};
use probe_common::event::{FlowEvent, family, hook, kind, tcp_flags, verdict};

use crate::clock::MonotonicClock;

/// Hubble's verdicts, as far as the probe reports them today.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The packet was passed on.
    Forwarded,
    /// The packet was dropped.
    Dropped,
    /// Audit mode: the policy would have dropped the packet; it was passed.
    Audit,
    /// The probe reported a verdict code this agent does not know.
    Unknown(u8),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Forwarded => f.write_str("FORWARDED"),
            Self::Dropped => f.write_str("DROPPED"),
            Self::Audit => f.write_str("AUDIT"),
            Self::Unknown(code) => write!(f, "VERDICT_{code}"),
        }
    }
}

/// Where on the path the packet was seen, in Hubble's trace-point words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObservationPoint {
    /// Leaving a pod: TC ingress of its host-side veth.
    FromEndpoint,
    /// Entering a pod: TC egress of its host-side veth.
    ToEndpoint,
    /// A hook code this agent does not know.
    Unknown(u8),
}

impl fmt::Display for ObservationPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FromEndpoint => f.write_str("from-endpoint"),
            Self::ToEndpoint => f.write_str("to-endpoint"),
            Self::Unknown(code) => write!(f, "hook-{code}"),
        }
    }
}

/// The TCP flag byte, printed the way Hubble does (`SYN, ACK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// Is every bit of `mask` set?
    pub fn contains(self, mask: u8) -> bool {
        self.0 & mask == mask
    }
}

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(u8, &str); 8] = [
            (tcp_flags::SYN, "SYN"),
            (tcp_flags::FIN, "FIN"),
            (tcp_flags::RST, "RST"),
            (tcp_flags::PSH, "PSH"),
            (tcp_flags::ACK, "ACK"),
            (tcp_flags::URG, "URG"),
            (tcp_flags::ECE, "ECE"),
            (tcp_flags::CWR, "CWR"),
        ];
        let mut first = true;
        for (bit, name) in NAMES {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str(", ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// An HTTP/1.x request line seen on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpRequest {
    /// Request method, e.g. `GET`.
    pub method: String,
    /// Request target as sent (origin form includes the query string).
    pub path: String,
    /// `HTTP/1.0` or `HTTP/1.1`; empty when the line was cut before it.
    pub protocol: &'static str,
    /// The probe's copy ended inside the request target, so `path` is only
    /// its beginning.
    pub truncated: bool,
    /// The `Host` header, when it lies within the bytes the probe copied.
    pub host: Option<String>,
}

impl HttpRequest {
    /// The request URL the way Hubble reports it (`http://host/path`), or
    /// just the target when the host is not known.
    pub fn url(&self) -> String {
        match &self.host {
            Some(host) if self.path.starts_with('/') => {
                let mut url = String::with_capacity(7 + host.len() + self.path.len());
                url.push_str("http://");
                url.push_str(host);
                url.push_str(&self.path);
                url
            }
            _ => self.path.clone(),
        }
    }
}

/// Finds a complete `Host:` header line in a request prefix.
fn host_header(payload: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(payload).ok().or_else(|| {
        // A cut multi-byte character at the end must not hide the header.
        let valid = std::str::from_utf8(payload).err()?.valid_up_to();
        std::str::from_utf8(&payload[..valid]).ok()
    })?;
    let mut lines = text.split("\r\n").peekable();
    lines.next()?; // the request line
    while let Some(line) = lines.next() {
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case("host") {
            // Only a line followed by CRLF is known to be complete: the
            // last piece of the split is the one no CRLF ended.
            let complete = lines.peek().is_some();
            let value = value.trim();
            return (complete && !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic()))
                .then(|| value.to_string());
        }
    }
    None
}

/// An HTTP/1.x status line seen on the wire, with the request it answers
/// when the agent saw that request at the same place.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpResponse {
    /// Status code, e.g. 200.
    pub code: u16,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub protocol: &'static str,
    /// The request this answers (oldest unanswered one on the connection),
    /// shared with that request's flow.
    pub request: Option<Arc<HttpRequest>>,
    /// Nanoseconds from the request to this response, as the probe saw them.
    pub latency_ns: u64,
}

/// What a person should read for an L7 segment the probe could not judge
/// (`probe_common::event::l7_detail`), or `None` for 0 and unknown codes.
pub fn l7_detail_text(detail: u8) -> Option<&'static str> {
    use probe_common::event::l7_detail as d;
    Some(match detail {
        d::NOT_HTTP => "not an HTTP/1.x request where one must start (L7 policy fails closed)",
        d::HEAD_INCOMPLETE => {
            "HTTP request head split across segments or longer than 2 KiB (L7 policy fails closed)"
        }
        d::OUT_OF_ORDER => {
            "segment ahead of the next HTTP request (out of order, L7 policy fails closed)"
        }
        d::FRAMING => {
            "HTTP framing not followed: Transfer-Encoding, bad or repeated Content-Length, bare CR/LF (L7 policy fails closed)"
        }
        d::TOO_MANY_REQUESTS => {
            "more than 8 pipelined HTTP requests in one segment (L7 policy fails closed)"
        }
        d::AFTER_DENY => "data after a denied HTTP request",
        d::MALFORMED => "malformed headers",
        d::DNS_UNREADABLE => {
            "not one plain DNS query the probe can read, or DNS over TCP (DNS policy fails closed)"
        }
        _ => return None,
    })
}

/// Parses an HTTP/1.x status line (`HTTP/1.1 200 OK`) at the start of
/// `payload`.
pub fn parse_status_line(payload: &[u8]) -> Option<(&'static str, u16)> {
    let mut headers = [httparse::EMPTY_HEADER; 0];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(payload) {
        Ok(_) | Err(httparse::Error::TooManyHeaders) => {}
        Err(_) => return None,
    }
    let protocol = match response.version? {
        0 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    Some((protocol, response.code?))
}

/// What a flow carries beyond L3/L4.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FlowKind {
    /// A TCP packet with SYN, FIN or RST.
    Tcp,
    /// An HTTP request line (shared with the response that answers it).
    HttpRequest(Arc<HttpRequest>),
    /// An HTTP status line (a response).
    HttpResponse(HttpResponse),
    /// The probe said "HTTP request" but the bytes are not one.
    UnparsableHttp,
    /// A DNS message (query or response).
    Dns(crate::dns::DnsMessage),
    /// A datagram on the DNS port that is not a DNS message.
    UnparsableDns,
    /// An event kind this agent does not know.
    Unknown(u8),
}

impl FlowKind {
    /// What the probe's record carries, decoded from its payload.
    pub fn of(event: &FlowEvent) -> Self {
        match event.kind {
            kind::TCP_FLAGS => FlowKind::Tcp,
            kind::HTTP_REQUEST => match parse_request_line(event.payload()) {
                Some(request) => FlowKind::HttpRequest(Arc::new(request)),
                None => FlowKind::UnparsableHttp,
            },
            kind::HTTP_RESPONSE => match parse_status_line(event.payload()) {
                Some((protocol, code)) => FlowKind::HttpResponse(HttpResponse {
                    code,
                    protocol,
                    request: None,
                    latency_ns: 0,
                }),
                None => FlowKind::Unknown(kind::HTTP_RESPONSE),
            },
            kind::DNS => match crate::dns::parse(event.payload()) {
                Some(message) => FlowKind::Dns(message),
                None => FlowKind::UnparsableDns,
            },
            other => FlowKind::Unknown(other),
        }
    }
}

/// One observed flow event, decoded and enriched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    /// When the probe saw the packet (wall clock).
    pub time: DateTime<Utc>,
    /// Interface the probe sits on.
    pub ifindex: u32,
    /// Its name, when the agent knows it.
    pub interface: Option<Arc<str>>,
    /// Where on the path the packet was seen.
    pub observation: ObservationPoint,
    /// Sender address and port.
    pub source: SocketAddr,
    /// Receiver address and port.
    pub destination: SocketAddr,
    /// TCP flags of the packet.
    pub tcp_flags: TcpFlags,
    /// The datapath's decision.
    pub verdict: Verdict,
    /// L7 content, if any.
    pub kind: FlowKind,
    /// IP protocol (6 TCP, 17 UDP).
    pub l4_proto: u8,
    /// For drops, Cilium's drop reason code (133, 181, ...); 0 otherwise.
    pub drop_reason: u8,
    /// Hubble's policy match type of the decision (0: none).
    pub match_type: u8,
    /// For a segment dropped as unjudgeable on an L7-enforced connection,
    /// why (`probe_common::event::l7_detail`); 0 otherwise.
    pub l7_detail: u8,
    /// Kernel time of the event (nanoseconds since boot), for latencies.
    pub ktime_ns: u64,
}

fn address(fam: u8, raw: [u8; 16]) -> IpAddr {
    if fam == family::IPV4 {
        IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(raw))
    }
}

/// Parses the request line at the start of `payload` (which may be cut off
/// anywhere by the probe's copy limit). Returns `None` if the bytes do not
/// start with a well-formed method and request target.
pub fn parse_request_line(payload: &[u8]) -> Option<HttpRequest> {
    let mut headers = [httparse::EMPTY_HEADER; 0];
    let mut request = httparse::Request::new(&mut headers);
    // A complete head would need all headers; the probe sends only a prefix,
    // so `Partial` and "too many headers" are expected. The method and path
    // are filled in as soon as they have been parsed.
    match request.parse(payload) {
        Ok(_) | Err(httparse::Error::TooManyHeaders) => {}
        Err(_) => return None,
    }
    let method = request.method?.to_string();
    let Some(path) = request.path else {
        // httparse sets the path only once it has seen the space after it;
        // a target cut off by the copy limit is reported as a prefix.
        return truncated_target(payload, method);
    };
    let path = path.to_string();
    let protocol = match request.version {
        Some(0) => "HTTP/1.0",
        Some(1) => "HTTP/1.1",
        _ => "",
    };
    Some(HttpRequest {
        method,
        path,
        protocol,
        truncated: false,
        host: host_header(payload),
    })
}

/// The request target of a line that ends (at the copy limit) before the
/// target does. Only visible ASCII is accepted, as in a real request target.
fn truncated_target(payload: &[u8], method: String) -> Option<HttpRequest> {
    let rest = payload.get(method.len() + 1..)?;
    if rest.is_empty() || !rest.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return None;
    }
    Some(HttpRequest {
        path: String::from_utf8_lossy(rest).into_owned(),
        method,
        protocol: "",
        truncated: true,
        host: None,
    })
}

impl Flow {
    /// Builds a flow from a decoded event. `interfaces` maps ifindex to name
    /// for the interfaces the agent attached to.
    pub fn from_event(
        event: &FlowEvent,
        clock: &MonotonicClock,
        interfaces: &HashMap<u32, Arc<str>>,
    ) -> Self {
        Self::with_kind(event, clock, interfaces, FlowKind::of(event))
    }

    /// [`Self::from_event`] with the L7 content already decoded (the agent
    /// keeps request lines it has parsed before).
    pub fn with_kind(
        event: &FlowEvent,
        clock: &MonotonicClock,
        interfaces: &HashMap<u32, Arc<str>>,
        kind: FlowKind,
    ) -> Self {
        Self {
            time: clock.wall_time(event.ktime_ns),
            ifindex: event.ifindex,
            interface: interfaces.get(&event.ifindex).cloned(),
            observation: match event.hook {
                hook::TC_INGRESS => ObservationPoint::FromEndpoint,
                hook::TC_EGRESS => ObservationPoint::ToEndpoint,
                other => ObservationPoint::Unknown(other),
            },
            source: SocketAddr::new(address(event.family, event.saddr), event.sport),
            destination: SocketAddr::new(address(event.family, event.daddr), event.dport),
            tcp_flags: TcpFlags(event.tcp_flags),
            verdict: match event.verdict {
                verdict::FORWARDED => Verdict::Forwarded,
                verdict::DROPPED => Verdict::Dropped,
                verdict::AUDIT => Verdict::Audit,
                other => Verdict::Unknown(other),
            },
            kind,
            l4_proto: event.l4_proto,
            drop_reason: event.drop_reason,
            match_type: event.match_type,
            l7_detail: event.detail,
            ktime_ns: event.ktime_ns,
        }
    }
}

/// One line per flow, in the shape of `hubble observe`'s compact output:
/// `TIME: SRC -> DST POINT VERDICT (DETAIL)`.
impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} -> {} ",
            self.time.format("%b %e %H:%M:%S%.3f"),
            self.source,
            self.destination
        )?;
        match &self.kind {
            FlowKind::HttpRequest(_) => f.write_str("http-request ")?,
            FlowKind::HttpResponse(_) => f.write_str("http-response ")?,
            _ => write!(f, "{} ", self.observation)?,
        }
        write!(f, "{} (", self.verdict)?;
        match &self.kind {
            FlowKind::Tcp if self.l4_proto == 17 => f.write_str("UDP")?,
            FlowKind::Tcp => {
                write!(f, "TCP Flags: {}", self.tcp_flags)?;
                if let Some(why) = l7_detail_text(self.l7_detail) {
                    write!(f, "; {why}")?;
                }
            }
            FlowKind::HttpResponse(r) => {
                write!(
                    f,
                    "{} {} {}ms",
                    r.protocol,
                    r.code,
                    r.latency_ns / 1_000_000
                )?;
                if let Some(request) = &r.request {
                    write!(f, " ({} {})", request.method, request.url())?;
                }
            }
            FlowKind::HttpRequest(r) if r.truncated => {
                write!(
                    f,
                    "{} {}... (request target longer than the probe copies)",
                    r.method, r.path
                )?;
            }
            FlowKind::HttpRequest(r) => {
                write!(f, "{} {} {}", r.protocol, r.method, r.path)?;
            }
            FlowKind::UnparsableHttp => f.write_str("HTTP request line not parsable")?,
            FlowKind::Dns(m) if m.response => write!(
                f,
                "DNS Answer {} ({} {})",
                crate::dns::rcode_name(m.rcode),
                m.query,
                crate::dns::type_name(m.qtype)
            )?,
            FlowKind::Dns(m) => write!(
                f,
                "DNS Query {} {}",
                m.query,
                crate::dns::type_name(m.qtype)
            )?,
            FlowKind::UnparsableDns => f.write_str("DNS message not parsable")?,
            FlowKind::Unknown(k) => write!(f, "event kind {k}")?,
        }
        f.write_str(")")?;
        if let Some(name) = &self.interface {
            write!(f, " [{name} {}]", self.observation)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use probe_common::event::PAYLOAD_CAPACITY;

    use super::*;

    fn event(kind_code: u8, payload: &[u8]) -> FlowEvent {
        let mut e = FlowEvent::zeroed();
        e.ktime_ns = 2_000_000_000;
        e.family = family::IPV4;
        e.saddr[..4].copy_from_slice(&[10, 250, 1, 2]);
        e.daddr[..4].copy_from_slice(&[10, 250, 1, 3]);
        e.sport = 40000;
        e.dport = 8080;
        e.ifindex = 9;
        e.kind = kind_code;
        e.hook = hook::TC_INGRESS;
        e.verdict = verdict::FORWARDED;
        e.tcp_flags = tcp_flags::SYN;
        let n = payload.len().min(PAYLOAD_CAPACITY);
        e.payload[..n].copy_from_slice(&payload[..n]);
        e.payload_len = n as u16;
        e
    }

    fn flow(e: &FlowEvent) -> Flow {
        let names = HashMap::from([(9, Arc::from("vethA"))]);
        Flow::from_event(e, &MonotonicClock::with_offset_ns(0), &names)
    }

    #[test]
    fn tcp_event_becomes_a_tcp_flow() {
        let f = flow(&event(kind::TCP_FLAGS, b""));
        assert_eq!(f.kind, FlowKind::Tcp);
        assert_eq!(f.source, "10.250.1.2:40000".parse().unwrap());
        assert_eq!(f.destination, "10.250.1.3:8080".parse().unwrap());
        assert_eq!(f.observation, ObservationPoint::FromEndpoint);
        assert_eq!(f.interface.as_deref(), Some("vethA"));
        assert_eq!(f.time.timestamp(), 2);
        let line = f.to_string();
        assert!(
            line.ends_with(
                "10.250.1.2:40000 -> 10.250.1.3:8080 from-endpoint FORWARDED (TCP Flags: SYN) [vethA from-endpoint]"
            ),
            "{line}"
        );
    }

    #[test]
    fn request_line_is_parsed_from_a_prefix() {
        let f = flow(&event(
            kind::HTTP_REQUEST,
            b"GET /a/b?c=d HTTP/1.1\r\nHost: x\r\nUser-Agent: curl",
        ));
        assert_eq!(
            f.kind,
            FlowKind::HttpRequest(Arc::new(HttpRequest {
                method: "GET".into(),
                path: "/a/b?c=d".into(),
                protocol: "HTTP/1.1",
                truncated: false,
                host: Some("x".into()),
            }))
        );
        assert!(
            f.to_string()
                .contains("http-request FORWARDED (HTTP/1.1 GET /a/b?c=d)")
        );
    }

    #[test]
    fn request_line_cut_before_the_version_still_names_method_and_path() {
        let long_path = format!("POST /{} HTTP/1.1\r\n", "x".repeat(200));
        let f = flow(&event(kind::HTTP_REQUEST, long_path.as_bytes()));
        match f.kind {
            FlowKind::HttpRequest(r) => {
                assert_eq!(r.method, "POST");
                assert_eq!(r.protocol, "");
                assert!(r.truncated);
                assert_eq!(r.path.len(), PAYLOAD_CAPACITY - "POST ".len());
                assert!(r.path.starts_with("/xxx"));
            }
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn host_header_gives_the_full_url_only_when_complete() {
        let complete =
            parse_request_line(b"GET /p?q=1 HTTP/1.1\r\nhost: svc:8080\r\nAccept: */*\r\n")
                .expect("parses");
        assert_eq!(complete.url(), "http://svc:8080/p?q=1");
        let cut = parse_request_line(b"GET /p HTTP/1.1\r\nHost: svc.na").expect("parses");
        assert_eq!(cut.host, None);
        assert_eq!(cut.url(), "/p");
        let absent = parse_request_line(b"GET /p HTTP/1.1\r\nAccept: */*\r\n").expect("parses");
        assert_eq!(absent.url(), "/p");
    }

    #[test]
    fn garbage_after_a_method_is_reported_as_unparsable() {
        let f = flow(&event(kind::HTTP_REQUEST, b"GET \x00\x01\x02 HTTP/9.9\r\n"));
        assert_eq!(f.kind, FlowKind::UnparsableHttp);
    }

    proptest::proptest! {
        /// Whatever bytes the probe hands over, parsing never panics, and a
        /// parsed request names a non-empty method and path.
        #[test]
        fn request_line_parsing_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..PAYLOAD_CAPACITY)) {
            if let Some(r) = parse_request_line(&bytes) {
                proptest::prop_assert!(!r.method.is_empty());
                proptest::prop_assert!(!r.path.is_empty());
            }
        }

        /// Prefixes of a valid request line keep the method and a prefix of the path.
        #[test]
        fn cut_request_lines_keep_a_path_prefix(path in "/[a-zA-Z0-9/._?=&-]{1,150}", cut in 6usize..PAYLOAD_CAPACITY) {
            let line = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
            let bytes = &line.as_bytes()[..cut.min(line.len())];
            let r = parse_request_line(bytes).expect("a request line prefix parses");
            proptest::prop_assert_eq!(r.method.as_str(), "GET");
            proptest::prop_assert!(path.starts_with(&r.path), "{} is not a prefix of {}", r.path, path);
        }
    }

    #[test]
    fn tcp_flags_print_like_hubble() {
        assert_eq!(
            TcpFlags(tcp_flags::SYN | tcp_flags::ACK).to_string(),
            "SYN, ACK"
        );
        assert_eq!(
            TcpFlags(tcp_flags::FIN | tcp_flags::ACK | tcp_flags::PSH).to_string(),
            "FIN, PSH, ACK"
        );
        assert_eq!(TcpFlags(0).to_string(), "");
    }

    #[test]
    fn unknown_codes_are_kept_not_guessed() {
        let mut e = event(42, b"");
        e.hook = 9;
        e.verdict = 7;
        let f = flow(&e);
        assert_eq!(f.kind, FlowKind::Unknown(42));
        assert_eq!(f.observation, ObservationPoint::Unknown(9));
        assert_eq!(f.verdict, Verdict::Unknown(7));
    }
}
