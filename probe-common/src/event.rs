//! Flow events: the records the TC probe writes into the `EVENTS` ring buffer.
//!
//! One record is emitted per TCP packet carrying SYN, FIN or RST, per HTTP
//! request (several may share a segment) and per segment starting with an
//! HTTP status line, per DNS message, and per drop. Other data packets of an
//! established connection produce no record, which keeps the ring quiet
//! under load.
//!
//! Byte order: every integer field is in the host's byte order (the kernel
//! converts ports from network order before writing them); addresses are kept
//! as the raw bytes seen on the wire.

/// Size in bytes of a [`FlowEvent`] record.
pub const FLOW_EVENT_SIZE: usize = 256;

/// Bytes of TCP payload copied into [`FlowEvent::payload`] (a power of two, so
/// the kernel can clamp a variable length with a mask the verifier accepts).
pub const PAYLOAD_CAPACITY: usize = 128;

/// Byte size of the `EVENTS` ring buffer (a power-of-two multiple of the page size).
pub const EVENTS_RING_BYTES: u32 = 1 << 24;

/// Unread bytes in the ring at which the probe wakes the agent; below it
/// the agent finds the events on its next poll (at most
/// [`EVENTS_POLL_INTERVAL_MS`] later).
pub const EVENTS_WAKEUP_BYTES: u32 = EVENTS_RING_BYTES / 16;

/// How often, at the longest, the agent drains the ring without being woken
/// (while events flow it looks every millisecond).
pub const EVENTS_POLL_INTERVAL_MS: u64 = 10;

/// What a [`FlowEvent`] reports; the value of [`FlowEvent::kind`].
pub mod kind {
    /// An L3/L4 event: a TCP packet with SYN, FIN or RST set, or any dropped
    /// packet.
    pub const TCP_FLAGS: u8 = 1;
    /// A TCP segment whose payload starts with an HTTP/1.x request method.
    pub const HTTP_REQUEST: u8 = 2;
    /// A UDP datagram to or from port 53: the payload holds the start of a
    /// DNS message.
    pub const DNS: u8 = 3;
    /// A TCP segment whose payload starts with an HTTP/1.x status line (a
    /// response); the agent pairs it with its request for the latency.
    pub const HTTP_RESPONSE: u8 = 4;
}

/// Where the packet was seen; the value of [`FlowEvent::hook`].
pub mod hook {
    /// TC ingress of the host-side veth: the packet is leaving the pod (pod egress).
    pub const TC_INGRESS: u8 = 1;
    /// TC egress of the host-side veth: the packet is entering the pod (pod ingress).
    pub const TC_EGRESS: u8 = 2;
}

/// Cilium drop reason codes the datapath reports in [`FlowEvent::drop_reason`].
pub mod drop_reason {
    /// No rule allowed the flow on a default-deny direction.
    pub const POLICY_DENIED: u8 = 133;
    /// A deny rule matched.
    pub const POLICY_DENY: u8 = 181;
    /// An L7-enforced connection carried something the probe cannot judge
    /// with confidence (see [`super::l7_detail`] for what): fail closed.
    pub const INVALID_PACKET: u8 = 134;
    /// An IP fragment on an enforcing endpoint: fragments cannot be tied to
    /// a connection's verdict, so they are not let through.
    pub const FRAGMENTATION_NOT_SUPPORTED: u8 = 157;
}

/// Why a segment of an L7-enforced connection was dropped as unjudgeable
/// ([`FlowEvent::detail`]); 0 for every other event.
pub mod l7_detail {
    /// The segment does not start with an HTTP/1.x request line where a
    /// request must start (another protocol, lower-case method, TLS, HTTP/2).
    pub const NOT_HTTP: u8 = 1;
    /// The request head (request line and headers) does not end within the
    /// segment or within the probe's window: split across segments or too long.
    pub const HEAD_INCOMPLETE: u8 = 2;
    /// A segment arrived ahead of the point where the next request starts
    /// (out of order or after a gap): it cannot be judged yet.
    pub const OUT_OF_ORDER: u8 = 3;
    /// Message framing the probe does not follow: `Transfer-Encoding`
    /// (chunked bodies), several or malformed `Content-Length` headers, bare
    /// CR or LF line ends.
    pub const FRAMING: u8 = 4;
    /// More pipelined requests in one segment than the probe checks.
    pub const TOO_MANY_REQUESTS: u8 = 5;
    /// The connection's earlier request was denied; nothing more passes.
    pub const AFTER_DENY: u8 = 6;
    /// The packet's headers could not be parsed (truncated or malformed).
    pub const MALFORMED: u8 = 7;
    /// A datagram to a DNS-enforced port that is not one DNS query the probe
    /// can read (a response, several questions, compression, odd characters
    /// in a label, a name longer than the probe reads), or DNS over TCP.
    pub const DNS_UNREADABLE: u8 = 8;
}

/// The datapath's decision; the value of [`FlowEvent::verdict`].
pub mod verdict {
    /// The packet was passed on.
    pub const FORWARDED: u8 = 1;
    /// The packet was dropped.
    pub const DROPPED: u8 = 2;
    /// The endpoint is in audit mode: the policy would have dropped the
    /// packet, and it was passed and reported instead.
    pub const AUDIT: u8 = 4;
}

/// TCP flag bits as they appear in byte 13 of the TCP header.
pub mod tcp_flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer field significant.
    pub const URG: u8 = 0x20;
    /// ECN-Echo.
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced.
    pub const CWR: u8 = 0x80;
}

/// Address families; the value of [`FlowEvent::family`].
pub mod family {
    /// IPv4: the address occupies the first 4 bytes of the 16-byte field.
    pub const IPV4: u8 = 4;
    /// IPv6.
    pub const IPV6: u8 = 6;
}

/// Slots of the per-CPU `COUNTERS` array (each a `u64`).
pub mod counter {
    /// Packets the probe looked at.
    pub const PACKETS: u32 = 0;
    /// Events written to the ring buffer.
    pub const EVENTS_SENT: u32 = 1;
    /// Events lost because the ring buffer was full.
    pub const EVENTS_LOST: u32 = 2;
    /// Packets whose headers could not be parsed (truncated, malformed).
    pub const PARSE_ERRORS: u32 = 3;
    /// Segments dropped on an L7-enforced connection because no request line
    /// could be read from them with confidence (fail closed).
    pub const L7_UNPARSABLE: u32 = 4;
    /// HTTP requests denied by L7 rules.
    pub const L7_DENIED: u32 = 5;
    /// HTTP requests checked against L7 rules and allowed.
    pub const L7_ALLOWED: u32 = 6;
    /// IP fragments dropped on enforcing endpoints.
    pub const FRAGMENTS_DROPPED: u32 = 7;
    /// Drops not reported as events because the same stream (interface,
    /// hook, 5-tuple) was reported less than 5 s before (SYN retries).
    pub const DROPS_AGGREGATED: u32 = 8;
    /// Forwarded packets not reported where they left their pod because
    /// the interface they are delivered through reports them.
    pub const EVENTS_DEFERRED: u32 = 9;
    /// Number of slots.
    pub const COUNT: u32 = 10;
}

/// One record of the `EVENTS` ring buffer.
///
/// Layout (offsets in bytes): `ktime_ns` 0, `saddr` 8, `daddr` 24,
/// `ifindex` 40, `sport` 44, `dport` 46, `tcp_seq` 48, `tcp_ack` 52, `kind` 56,
/// `family` 57, `l4_proto` 58, `tcp_flags` 59, `hook` 60, `verdict` 61,
/// `payload_len` 62, `payload` 64..192, `drop_reason` 192, `match_type` 193,
/// `detail` 194, `_pad` 195, `local_identity` 196, `peer_identity` 200,
/// `_reserved` 204..256.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowEvent {
    /// `bpf_ktime_get_ns()` when the packet was seen (CLOCK_MONOTONIC).
    pub ktime_ns: u64,
    /// Source address (IPv4 in the first 4 bytes, rest zero).
    pub saddr: [u8; 16],
    /// Destination address (IPv4 in the first 4 bytes, rest zero).
    pub daddr: [u8; 16],
    /// Interface the probe is attached to.
    pub ifindex: u32,
    /// Source port, host byte order.
    pub sport: u16,
    /// Destination port, host byte order.
    pub dport: u16,
    /// TCP sequence number, host byte order.
    pub tcp_seq: u32,
    /// TCP acknowledgment number, host byte order.
    pub tcp_ack: u32,
    /// One of [`kind`].
    pub kind: u8,
    /// One of [`family`].
    pub family: u8,
    /// IP protocol number (6 TCP, 17 UDP).
    pub l4_proto: u8,
    /// TCP flag byte, see [`tcp_flags`].
    pub tcp_flags: u8,
    /// One of [`hook`].
    pub hook: u8,
    /// One of [`verdict`].
    pub verdict: u8,
    /// Number of valid bytes in `payload` (at most [`PAYLOAD_CAPACITY`]).
    pub payload_len: u16,
    /// The first bytes of the TCP payload, for L7 events.
    pub payload: [u8; PAYLOAD_CAPACITY],
    /// For drops: Cilium's drop reason code (133 `POLICY_DENIED`, 181
    /// `POLICY_DENY`); 0 otherwise.
    pub drop_reason: u8,
    /// Hubble's policy match type of the decision (0 when none was made).
    pub match_type: u8,
    /// For an unjudgeable L7 segment, which problem it had
    /// ([`l7_detail`]); 0 otherwise.
    pub detail: u8,
    /// Always zero.
    pub _pad: u8,
    /// Security identity of the endpoint the probe's interface belongs to
    /// (0 when the interface is not a managed endpoint).
    pub local_identity: u32,
    /// Security identity of the other side (0 when not looked up).
    pub peer_identity: u32,
    /// Room for later fields; always zero.
    pub _reserved: [u8; 52],
}

const _: () = assert!(core::mem::size_of::<FlowEvent>() == FLOW_EVENT_SIZE);
const _: () = assert!(core::mem::align_of::<FlowEvent>() == 8);
const _: () = assert!(PAYLOAD_CAPACITY.is_power_of_two());

/// Why a ring-buffer item could not be decoded as a [`FlowEvent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The item does not have the size of a [`FlowEvent`].
    WrongSize {
        /// Bytes received.
        actual: usize,
    },
    /// `payload_len` is larger than [`PAYLOAD_CAPACITY`].
    PayloadTooLong {
        /// The length found in the record.
        len: u16,
    },
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::WrongSize { actual } => write!(
                f,
                "flow event has {actual} bytes, expected {FLOW_EVENT_SIZE} (probe and agent built from different sources?)"
            ),
            Self::PayloadTooLong { len } => write!(
                f,
                "flow event claims {len} payload bytes, at most {PAYLOAD_CAPACITY} fit"
            ),
        }
    }
}

impl core::error::Error for DecodeError {}

/// Reads fixed-size fields from a byte slice whose length was checked up front.
struct FieldReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl FieldReader<'_> {
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[self.at..self.at + N]);
        self.at += N;
        out
    }

    fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_ne_bytes(self.array())
    }

    fn u32(&mut self) -> u32 {
        u32::from_ne_bytes(self.array())
    }

    fn u64(&mut self) -> u64 {
        u64::from_ne_bytes(self.array())
    }
}

impl FlowEvent {
    /// An all-zero record, the starting point for building one field by field.
    pub const fn zeroed() -> Self {
        Self {
            ktime_ns: 0,
            saddr: [0; 16],
            daddr: [0; 16],
            ifindex: 0,
            sport: 0,
            dport: 0,
            tcp_seq: 0,
            tcp_ack: 0,
            kind: 0,
            family: 0,
            l4_proto: 0,
            tcp_flags: 0,
            hook: 0,
            verdict: 0,
            payload_len: 0,
            payload: [0; PAYLOAD_CAPACITY],
            drop_reason: 0,
            match_type: 0,
            detail: 0,
            _pad: 0,
            local_identity: 0,
            peer_identity: 0,
            _reserved: [0; 52],
        }
    }

    /// Decodes a ring-buffer item, checking its size and the payload length.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() != FLOW_EVENT_SIZE {
            return Err(DecodeError::WrongSize {
                actual: bytes.len(),
            });
        }
        let mut r = FieldReader { bytes, at: 0 };
        let event = Self {
            ktime_ns: r.u64(),
            saddr: r.array(),
            daddr: r.array(),
            ifindex: r.u32(),
            sport: r.u16(),
            dport: r.u16(),
            tcp_seq: r.u32(),
            tcp_ack: r.u32(),
            kind: r.u8(),
            family: r.u8(),
            l4_proto: r.u8(),
            tcp_flags: r.u8(),
            hook: r.u8(),
            verdict: r.u8(),
            payload_len: r.u16(),
            payload: r.array(),
            drop_reason: r.u8(),
            match_type: r.u8(),
            detail: r.u8(),
            _pad: r.u8(),
            local_identity: r.u32(),
            peer_identity: r.u32(),
            _reserved: r.array(),
        };
        debug_assert_eq!(r.at, FLOW_EVENT_SIZE);
        if usize::from(event.payload_len) > PAYLOAD_CAPACITY {
            return Err(DecodeError::PayloadTooLong {
                len: event.payload_len,
            });
        }
        Ok(event)
    }

    /// Encodes the record exactly as the kernel lays it out (the inverse of
    /// [`FlowEvent::decode`]); used by tests and replay tools.
    pub fn encode(&self) -> [u8; FLOW_EVENT_SIZE] {
        let mut out = [0u8; FLOW_EVENT_SIZE];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(&self.ktime_ns.to_ne_bytes());
        put(&self.saddr);
        put(&self.daddr);
        put(&self.ifindex.to_ne_bytes());
        put(&self.sport.to_ne_bytes());
        put(&self.dport.to_ne_bytes());
        put(&self.tcp_seq.to_ne_bytes());
        put(&self.tcp_ack.to_ne_bytes());
        put(&[
            self.kind,
            self.family,
            self.l4_proto,
            self.tcp_flags,
            self.hook,
            self.verdict,
        ]);
        put(&self.payload_len.to_ne_bytes());
        put(&self.payload);
        put(&[self.drop_reason, self.match_type, self.detail, self._pad]);
        put(&self.local_identity.to_ne_bytes());
        put(&self.peer_identity.to_ne_bytes());
        put(&self._reserved);
        out
    }

    /// The valid part of the payload.
    pub fn payload(&self) -> &[u8] {
        let len = usize::from(self.payload_len).min(PAYLOAD_CAPACITY);
        &self.payload[..len]
    }
}

#[cfg(feature = "user")]
// SAFETY: `FlowEvent` is `repr(C)`, made only of integers and byte arrays, with
// no implicit padding (its size is asserted above), so every bit pattern is valid.
unsafe impl aya::Pod for FlowEvent {}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FlowEvent {
        let mut e = FlowEvent::zeroed();
        e.ktime_ns = 0x0102_0304_0506_0708;
        e.saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        e.daddr[..4].copy_from_slice(&[10, 0, 0, 2]);
        e.ifindex = 7;
        e.sport = 43210;
        e.dport = 80;
        e.tcp_seq = 1000;
        e.tcp_ack = 2000;
        e.kind = kind::HTTP_REQUEST;
        e.family = family::IPV4;
        e.l4_proto = 6;
        e.tcp_flags = tcp_flags::PSH | tcp_flags::ACK;
        e.hook = hook::TC_INGRESS;
        e.verdict = verdict::FORWARDED;
        let line = b"GET / HTTP/1.1\r\n";
        e.payload[..line.len()].copy_from_slice(line);
        e.payload_len = line.len() as u16;
        e
    }

    #[test]
    fn encode_then_decode_is_identity() {
        let e = sample();
        assert_eq!(FlowEvent::decode(&e.encode()), Ok(e));
    }

    #[test]
    fn field_offsets_match_the_documented_layout() {
        let bytes = sample().encode();
        assert_eq!(&bytes[8..12], &[10, 0, 0, 1]);
        assert_eq!(&bytes[24..28], &[10, 0, 0, 2]);
        assert_eq!(u16::from_ne_bytes([bytes[44], bytes[45]]), 43210);
        assert_eq!(bytes[56], kind::HTTP_REQUEST);
        assert_eq!(bytes[60], hook::TC_INGRESS);
        assert_eq!(u16::from_ne_bytes([bytes[62], bytes[63]]), 16);
        assert_eq!(&bytes[64..67], b"GET");
        assert_eq!(
            core::mem::offset_of!(FlowEvent, payload),
            64,
            "payload offset drifted"
        );
        assert_eq!(core::mem::offset_of!(FlowEvent, drop_reason), 192);
        assert_eq!(core::mem::offset_of!(FlowEvent, local_identity), 196);
        assert_eq!(core::mem::offset_of!(FlowEvent, peer_identity), 200);
        assert_eq!(core::mem::offset_of!(FlowEvent, _reserved), 204);
    }

    #[test]
    fn wrong_sizes_are_rejected() {
        let bytes = sample().encode();
        assert_eq!(
            FlowEvent::decode(&bytes[..255]),
            Err(DecodeError::WrongSize { actual: 255 })
        );
        assert_eq!(
            FlowEvent::decode(&[]),
            Err(DecodeError::WrongSize { actual: 0 })
        );
        let mut longer = [0u8; 257];
        longer[..256].copy_from_slice(&bytes);
        assert_eq!(
            FlowEvent::decode(&longer),
            Err(DecodeError::WrongSize { actual: 257 })
        );
    }

    #[test]
    fn oversized_payload_length_is_rejected() {
        let mut bytes = sample().encode();
        bytes[62..64].copy_from_slice(&129u16.to_ne_bytes());
        assert_eq!(
            FlowEvent::decode(&bytes),
            Err(DecodeError::PayloadTooLong { len: 129 })
        );
        bytes[62..64].copy_from_slice(&128u16.to_ne_bytes());
        assert_eq!(
            FlowEvent::decode(&bytes).map(|e| e.payload().len()),
            Ok(128)
        );
    }

    proptest::proptest! {
        /// Any byte string either decodes to a record that re-encodes to the
        /// same bytes, or is rejected; nothing panics.
        #[test]
        fn decode_never_panics_and_round_trips(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            if let Ok(event) = FlowEvent::decode(&bytes) {
                proptest::prop_assert_eq!(&event.encode()[..], &bytes[..]);
                proptest::prop_assert!(event.payload().len() <= PAYLOAD_CAPACITY);
            }
        }
    }

    #[test]
    fn payload_returns_only_the_valid_bytes() {
        assert_eq!(sample().payload(), b"GET / HTTP/1.1\r\n");
    }
}
