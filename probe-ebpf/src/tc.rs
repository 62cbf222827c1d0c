//! TC classifiers on the host side of a pod's veth.
//!
//! Hook points (kernel floor 5.8 for ring buffers; tcx links from 6.6, clsact
//! before that):
//! - `holonet_tc_ingress`: TC ingress of the host-side veth, i.e. the pod's
//!   egress (packets the pod sends);
//! - `holonet_tc_egress`: TC egress of the host-side veth, i.e. the pod's
//!   ingress (packets delivered to the pod).
//!
//! Observation: an event for every TCP packet with SYN, FIN or RST set and
//! for every TCP segment starting with an HTTP/1.x request method.
//!
//! Enforcement (L3/L4, see docs/datapath.md): when the interface belongs to
//! a managed endpoint (`ENDPOINTS`), a packet of a connection not yet
//! tracked in `CT` is decided by the endpoint's `POLICY` for the peer's
//! identity (`IPCACHE`); allowed connections are tracked so their packets
//! and replies pass; denied ones are dropped and reported with Cilium's drop
//! reason. Interfaces without an endpoint entry are only observed.
#![no_std]
#![no_main]

mod headers;

use aya_ebpf::{
    bindings::{__sk_buff, TC_ACT_PIPE, TC_ACT_SHOT},
    helpers::{
        bpf_ktime_get_ns, bpf_redirect, bpf_skb_change_tail, bpf_skb_load_bytes,
        bpf_skb_store_bytes,
    },
    macros::{classifier, map},
    maps::{
        Array, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf,
        lpm_trie::{Key, LpmTrie},
    },
    programs::TcContext,
};
use aya_log_ebpf::debug;
use headers::{IPPROTO_TCP, L4Packet, Parsed};
use probe_common::{
    event::{
        EVENTS_RING_BYTES, FlowEvent, PAYLOAD_CAPACITY, counter, drop_reason, family, hook, kind,
        tcp_flags, verdict,
    },
    l7::{L7_DFA_MAX_CLASSES, L7_DFA_TRANSITIONS, L7DfaTable},
    policy::{
        CT_FLAG_L7_STARTED, CtKey, CtValue, ENDPOINT_FLAG_AUDIT, ENDPOINT_FLAG_ENFORCE_EGRESS,
        ENDPOINT_FLAG_ENFORCE_INGRESS, EndpointValue, IDENTITY_ANY, IDENTITY_WORLD,
        IPCACHE_ADDR_LEN, IPCACHE_FLAG_CIDR, IpcacheValue, L7_HTTP_TABLES, L7_KIND_CONFLICT,
        L7_KIND_HTTP, POLICY_ACTION_DENY, POLICY_KEY_FIXED_BITS, POLICY_KEY_LEN, PolicyValue,
        direction, policy_key,
    },
};

#[map(name = "EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_RING_BYTES, 0);

#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

#[map(name = "ENDPOINTS")]
static ENDPOINTS: HashMap<u32, EndpointValue> = HashMap::with_max_entries(4096, 0);

#[map(name = "IPCACHE")]
static IPCACHE: LpmTrie<[u8; IPCACHE_ADDR_LEN], IpcacheValue> =
    LpmTrie::with_max_entries(65_536, 0);

#[map(name = "POLICY")]
static POLICY: LpmTrie<[u8; POLICY_KEY_LEN], PolicyValue> = LpmTrie::with_max_entries(65_536, 0);

#[map(name = "CT")]
static CT: LruHashMap<CtKey, CtValue> = LruHashMap::with_max_entries(262_144, 0);

#[map(name = "L7_HTTP")]
static L7_HTTP: Array<L7DfaTable> = Array::with_max_entries(L7_HTTP_TABLES, 0);

/// Per-CPU copy of a request line prefix for the L7 walk.
#[map(name = "L7_BUF")]
static L7_BUF: PerCpuArray<[u8; PAYLOAD_CAPACITY]> = PerCpuArray::with_max_entries(1, 0);

/// What a client gets for a request denied by L7 rules, as Envoy answers
/// for Cilium (its length is even, so the checksum runs over whole words).
const FORBIDDEN: &[u8; FORBIDDEN_LEN] = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 13\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nAccess denied";
const FORBIDDEN_LEN: usize = 104;
/// Ethernet + IPv4 + TCP headers (no options) + the response.
const FORBIDDEN_FRAME: usize = 14 + 20 + 20 + FORBIDDEN_LEN;
const _: () = assert!(FORBIDDEN_LEN.is_multiple_of(2));

/// The L7 program, reached by a tail call so the verifier checks its
/// request-line walk apart from the L3/L4 path (together they exceed the
/// verifier's complexity limit).
#[map(name = "L7_JUMP")]
static L7_JUMP: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// What the L3/L4 program decided, handed to the L7 program.
#[repr(C)]
#[derive(Clone, Copy)]
struct L7State {
    hook: u8,
    l7_table: u8,
    l7_started: u8,
    match_type: u8,
    local_identity: u32,
    peer_identity: u32,
}

#[map(name = "L7_STATE")]
static L7_STATE: PerCpuArray<L7State> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU scratch space for the connection-tracking key, which would not fit
/// the 512-byte BPF stack next to everything else.
#[map(name = "CT_SCRATCH")]
static CT_SCRATCH: PerCpuArray<CtKey> = PerCpuArray::with_max_entries(1, 0);

#[classifier]
fn holonet_tc_ingress(ctx: TcContext) -> i32 {
    process(&ctx, hook::TC_INGRESS)
}

#[classifier]
fn holonet_tc_egress(ctx: TcContext) -> i32 {
    process(&ctx, hook::TC_EGRESS)
}

/// The L7 half of the datapath, entered by tail call from either classifier
/// for a segment of an L7-enforced connection travelling in the direction
/// it was opened: checks a request line against the HTTP table, answers a
/// denied request with 403, and fails closed on anything it cannot read.
#[classifier]
fn holonet_tc_l7(ctx: TcContext) -> i32 {
    let Some(state) = L7_STATE.get(0) else {
        return TC_ACT_SHOT;
    };
    let state = *state;
    let Ok(Parsed::L4(pkt)) = headers::parse(&ctx) else {
        return TC_ACT_SHOT;
    };
    let mut decision = Decision::pass();
    decision.match_type = state.match_type;
    decision.local_identity = state.local_identity;
    decision.peer_identity = state.peer_identity;
    if starts_with_http_method(&ctx, &pkt) {
        if l7_http_allows(&ctx, &pkt, state.l7_table) {
            if state.l7_started == 0 {
                ct_mark_l7_started(&ctx, state.hook, &pkt);
            }
            emit(&ctx, state.hook, &pkt, kind::HTTP_REQUEST, &decision);
            return TC_ACT_PIPE;
        }
        count(counter::L7_DENIED);
        decision.dropped = true;
        emit(&ctx, state.hook, &pkt, kind::HTTP_REQUEST, &decision);
        // Close the server's side (a RST in the client's name, at the
        // sequence number it expects next), then answer the client like
        // Cilium's proxy does; the request never reaches the server.
        reset_server(&ctx, &pkt, state.hook);
        return answer_forbidden(&ctx, &pkt, state.hook);
    }
    if state.l7_started == 0 {
        // The first payload of an L7-enforced connection is not a request
        // line we can read: fail closed.
        count(counter::L7_UNPARSABLE);
        decision.dropped = true;
        emit(&ctx, state.hook, &pkt, kind::TCP_FLAGS, &decision);
        return TC_ACT_SHOT;
    }
    TC_ACT_PIPE
}

#[inline(always)]
fn count(slot: u32) {
    if let Some(value) = COUNTERS.get_ptr_mut(slot) {
        // SAFETY: the pointer comes from a per-CPU array lookup, is valid for
        // the lifetime of this program run and no other CPU touches this slot.
        unsafe { *value += 1 };
    }
}

/// The outcome of the policy check for one packet.
struct Decision {
    /// The packet is dropped (L3/L4 with `drop_reason`, or an L7 deny).
    dropped: bool,
    drop_reason: u8,
    match_type: u8,
    local_identity: u32,
    peer_identity: u32,
    /// L7 enforcement of the connection (`L7_KIND_*`) and its table.
    l7_kind: u8,
    l7_table: u8,
    /// The packet travels in the direction the connection was opened.
    forward: bool,
    /// A request on the connection was already checked and allowed.
    l7_started: bool,
}

impl Decision {
    const fn pass() -> Self {
        Self {
            dropped: false,
            drop_reason: 0,
            match_type: 0,
            local_identity: 0,
            peer_identity: 0,
            l7_kind: 0,
            l7_table: 0,
            forward: false,
            l7_started: false,
        }
    }
}

#[inline(always)]
fn process(ctx: &TcContext, at_hook: u8) -> i32 {
    count(counter::PACKETS);
    match headers::parse(ctx) {
        Ok(Parsed::L4(pkt)) => {
            let mut decision = decide(ctx, at_hook, &pkt);
            let is_tcp = pkt.proto == IPPROTO_TCP;
            if decision.dropped {
                emit(ctx, at_hook, &pkt, kind::TCP_FLAGS, &decision);
                return TC_ACT_SHOT;
            }
            let http = is_tcp && pkt.payload_len > 0 && starts_with_http_method(ctx, &pkt);
            if is_tcp && decision.forward && pkt.payload_len > 0 {
                if decision.l7_kind == L7_KIND_HTTP {
                    if let Some(state) = L7_STATE.get_ptr_mut(0) {
                        // SAFETY: a per-CPU slot, exclusively ours until the
                        // tail-called program (same CPU, same run) reads it.
                        unsafe {
                            *state = L7State {
                                hook: at_hook,
                                l7_table: decision.l7_table,
                                l7_started: u8::from(decision.l7_started),
                                match_type: decision.match_type,
                                local_identity: decision.local_identity,
                                peer_identity: decision.peer_identity,
                            };
                            L7_JUMP.tail_call(ctx, 0);
                        }
                    }
                    // No L7 program to jump to: fail closed.
                    count(counter::L7_UNPARSABLE);
                    decision.dropped = true;
                    emit(ctx, at_hook, &pkt, http_kind(http), &decision);
                    return TC_ACT_SHOT;
                } else if decision.l7_kind == L7_KIND_CONFLICT {
                    count(counter::L7_UNPARSABLE);
                    decision.dropped = true;
                    emit(ctx, at_hook, &pkt, http_kind(http), &decision);
                    return TC_ACT_SHOT;
                }
            }
            let interesting =
                is_tcp && pkt.flags & (tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST) != 0;
            // DNS over UDP: every message on port 53 is reported (visibility
            // without a policy), the agent decodes it.
            let dns = !is_tcp
                && (pkt.sport == DNS_PORT || pkt.dport == DNS_PORT)
                && pkt.payload_len >= DNS_HEADER_LEN;
            if dns {
                emit(ctx, at_hook, &pkt, kind::DNS, &decision);
            } else if http || interesting {
                emit(ctx, at_hook, &pkt, http_kind(http), &decision);
            }
        }
        Ok(Parsed::Skip) => {}
        Err(_) => {
            count(counter::PARSE_ERRORS);
            debug!(ctx, "holonet: unparsable packet, len {}", ctx.len());
        }
    }
    TC_ACT_PIPE
}

/// Sum of the big-endian 16-bit words of `bytes` (even length), computed at
/// compile time for the constant response body.
const fn words_sum(bytes: &[u8]) -> u32 {
    let mut sum = 0u32;
    let mut i = 0;
    while i + 1 < bytes.len() {
        sum += ((bytes[i] as u32) << 8) | bytes[i + 1] as u32;
        i += 2;
    }
    sum
}

const FORBIDDEN_SUM: u32 = words_sum(FORBIDDEN);

#[inline(always)]
fn header_sum<const N: usize>(bytes: &[u8; N]) -> u32 {
    let mut sum = 0u32;
    let mut i = 0;
    while i + 1 < N {
        sum += (u32::from(bytes[i]) << 8) | u32::from(bytes[i + 1]);
        i += 2;
    }
    sum
}

#[inline(always)]
fn csum_fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// An IPv4 header without options, from `src` to `dst` (IPv4 in the first
/// four bytes), for a TCP packet of `total_len` bytes, checksum filled in.
#[inline(always)]
fn ipv4_header(src: &[u8; 16], dst: &[u8; 16], total_len: u16) -> [u8; 20] {
    let mut ip: [u8; 20] = [
        0x45,
        0,
        (total_len >> 8) as u8,
        total_len as u8,
        0,
        0,
        0x40,
        0,
        64,
        IPPROTO_TCP,
        0,
        0,
        src[0],
        src[1],
        src[2],
        src[3],
        dst[0],
        dst[1],
        dst[2],
        dst[3],
    ];
    let sum = csum_fold(header_sum(&ip));
    ip[10] = (sum >> 8) as u8;
    ip[11] = sum as u8;
    ip
}

/// A TCP header without options; `body_sum` is the word sum of the
/// payload (of `body_len` bytes), so the checksum covers it.
#[inline(always)]
fn tcp_header(
    ip: &[u8; 20],
    ports: (u16, u16),
    seq_ack: (u32, u32),
    flags: u8,
    body: (u32, u32),
) -> [u8; 20] {
    let (sport, dport) = (ports.0.to_be_bytes(), ports.1.to_be_bytes());
    let (seq, ack) = (seq_ack.0.to_be_bytes(), seq_ack.1.to_be_bytes());
    let mut tcp: [u8; 20] = [
        sport[0], sport[1], dport[0], dport[1], seq[0], seq[1], seq[2], seq[3], ack[0], ack[1],
        ack[2], ack[3], 0x50, // data offset 5: no options
        flags, 0xfa, 0xf0, // window 64240
        0, 0, // checksum
        0, 0, // urgent pointer
    ];
    // Pseudo header (addresses, protocol, TCP length), header, body.
    let addrs: [u8; 8] = [
        ip[12], ip[13], ip[14], ip[15], ip[16], ip[17], ip[18], ip[19],
    ];
    let (body_len, body_sum) = body;
    let sum =
        header_sum(&addrs) + u32::from(IPPROTO_TCP) + 20 + body_len + header_sum(&tcp) + body_sum;
    let sum = csum_fold(sum);
    tcp[16] = (sum >> 8) as u8;
    tcp[17] = sum as u8;
    tcp
}

/// Rewrites the denied request segment into `HTTP/1.1 403 Forbidden` with
/// FIN set, from the server's address back to the client, and redirects it
/// out of this veth into the client pod. IPv4 only; anything else (or a
/// helper failure) drops the segment.
#[inline(never)]
fn answer_forbidden(ctx: &TcContext, pkt: &L4Packet, at_hook: u8) -> i32 {
    if pkt.family != family::IPV4 {
        return TC_ACT_SHOT;
    }
    let (Ok(dst_mac), Ok(src_mac)) = (ctx.load::<[u8; 6]>(0), ctx.load::<[u8; 6]>(6)) else {
        return TC_ACT_SHOT;
    };
    let ip = ipv4_header(&pkt.daddr, &pkt.saddr, (FORBIDDEN_FRAME - 14) as u16);
    let tcp = tcp_header(
        &ip,
        (pkt.dport, pkt.sport),
        (pkt.ack, pkt.seq.wrapping_add(pkt.payload_len as u32)),
        tcp_flags::FIN | tcp_flags::PSH | tcp_flags::ACK,
        (FORBIDDEN_LEN as u32, FORBIDDEN_SUM),
    );
    let eth: [u8; 14] = [
        src_mac[0], src_mac[1], src_mac[2], src_mac[3], src_mac[4], src_mac[5], dst_mac[0],
        dst_mac[1], dst_mac[2], dst_mac[3], dst_mac[4], dst_mac[5], 0x08, 0x00,
    ];
    let skb = ctx.skb.skb;
    // SAFETY: helpers on this program's own sk_buff; each pointer and length
    // describes a local array or the constant response.
    unsafe {
        if bpf_skb_change_tail(skb, FORBIDDEN_FRAME as u32, 0) != 0
            || bpf_skb_store_bytes(skb, 0, eth.as_ptr().cast(), 14, 0) != 0
            || bpf_skb_store_bytes(skb, 14, ip.as_ptr().cast(), 20, 0) != 0
            || bpf_skb_store_bytes(skb, 34, tcp.as_ptr().cast(), 20, 0) != 0
            || bpf_skb_store_bytes(skb, 54, FORBIDDEN.as_ptr().cast(), FORBIDDEN_LEN as u32, 0) != 0
        {
            return TC_ACT_SHOT;
        }
        // Enforcing the client's egress (TC ingress of its veth): the answer
        // goes out of the veth to the client. Enforcing the server's ingress
        // (TC egress of its veth): it goes into the host, which routes it
        // back to the client.
        bpf_redirect((*skb).ifindex, redirect_flags(at_hook, true)) as i32
    }
}

/// `bpf_redirect` flags: towards the client (`to_client`) or the server,
/// seen from the hook the request was caught at.
#[inline(always)]
fn redirect_flags(at_hook: u8, to_client: bool) -> u64 {
    const BPF_F_INGRESS: u64 = 1;
    // At TC ingress the client is behind this veth; at TC egress the server is.
    let client_behind_veth = at_hook == hook::TC_INGRESS;
    if client_behind_veth == to_client {
        0
    } else {
        BPF_F_INGRESS
    }
}

/// Turns the packet into a bare RST+ACK from the client to the server (same
/// addresses, ports and sequence numbers as the denied request, no payload)
/// and sends a copy of it towards the server: into the host when the client
/// is behind this veth, out of the veth when the server is. Best effort: a failure
/// leaves the server's socket to time out.
#[inline(never)]
fn reset_server(ctx: &TcContext, pkt: &L4Packet, at_hook: u8) {
    const RST_FRAME: usize = 14 + 20 + 20;
    if pkt.family != family::IPV4 {
        return;
    }
    let (Ok(dst_mac), Ok(src_mac)) = (ctx.load::<[u8; 6]>(0), ctx.load::<[u8; 6]>(6)) else {
        return;
    };
    let ip = ipv4_header(&pkt.saddr, &pkt.daddr, (RST_FRAME - 14) as u16);
    let tcp = tcp_header(
        &ip,
        (pkt.sport, pkt.dport),
        (pkt.seq, pkt.ack),
        tcp_flags::RST | tcp_flags::ACK,
        (0, 0),
    );
    let eth: [u8; 14] = [
        dst_mac[0], dst_mac[1], dst_mac[2], dst_mac[3], dst_mac[4], dst_mac[5], src_mac[0],
        src_mac[1], src_mac[2], src_mac[3], src_mac[4], src_mac[5], 0x08, 0x00,
    ];
    let skb = ctx.skb.skb;
    // SAFETY: helpers on this program's own sk_buff with local arrays.
    unsafe {
        if bpf_skb_change_tail(skb, RST_FRAME as u32, 0) != 0
            || bpf_skb_store_bytes(skb, 0, eth.as_ptr().cast(), 14, 0) != 0
            || bpf_skb_store_bytes(skb, 14, ip.as_ptr().cast(), 20, 0) != 0
            || bpf_skb_store_bytes(skb, 34, tcp.as_ptr().cast(), 20, 0) != 0
        {
            return;
        }
        let _ = ctx.clone_redirect((*skb).ifindex, redirect_flags(at_hook, false));
    }
}

/// Walks the HTTP table `table` over the request line at the start of the
/// payload (`METHOD SP request-target`, up to the SP before the version).
/// Anything that does not fit the copied window, lacks the second SP, or
/// holds CR/LF before it is not allowed (fail closed).
#[inline(never)]
fn l7_http_allows(ctx: &TcContext, pkt: &L4Packet, table: u8) -> bool {
    let Some(table) = L7_HTTP.get(u32::from(table)) else {
        return false;
    };
    let Some(buf) = L7_BUF.get_ptr_mut(0) else {
        return false;
    };
    let wanted = if pkt.payload_len < PAYLOAD_CAPACITY {
        pkt.payload_len
    } else {
        PAYLOAD_CAPACITY
    };
    if wanted == 0 {
        return false;
    }
    let len = ((wanted - 1) & (PAYLOAD_CAPACITY - 1)) + 1;
    // SAFETY: `buf` is a per-CPU array slot of PAYLOAD_CAPACITY bytes,
    // exclusively ours for this run; `len` is at most that size.
    let loaded = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb as *const __sk_buff as *const _,
            pkt.payload_offset as u32,
            (*buf).as_mut_ptr().cast(),
            len as u32,
        )
    };
    if loaded != 0 {
        return false;
    }
    // SAFETY: as above.
    let buf = unsafe { &*buf };
    let mut row = usize::from(table.start_state) * L7_DFA_MAX_CLASSES;
    let mut spaces = 0u32;
    let mut i = 0usize;
    while i < PAYLOAD_CAPACITY {
        if i >= len {
            return false;
        }
        let b = buf[i];
        if b == b' ' {
            spaces += 1;
            if spaces == 2 {
                let state = row / L7_DFA_MAX_CLASSES;
                return match table.accept.get(state) {
                    Some(accept) => *accept != 0,
                    None => false,
                };
            }
        } else if b == b'\r' || b == b'\n' {
            return false;
        }
        let idx = row + usize::from(table.byte_class[usize::from(b)]);
        if idx >= L7_DFA_TRANSITIONS {
            return false;
        }
        row = usize::from(table.transitions[idx]);
        if row == 0 {
            return false;
        }
        i += 1;
    }
    false
}

/// Marks the tracked connection of `pkt` as having passed its first request.
#[inline(never)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "pass the per-CPU scratch slot itself, not a copy on the 512-byte stack"
)]
fn ct_mark_l7_started(ctx: &TcContext, at_hook: u8, pkt: &L4Packet) {
    // SAFETY: reading the ifindex field of the context's sk_buff.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: the value is only read during this program run.
    let Some(ep) = (unsafe { ENDPOINTS.get(ifindex) }) else {
        return;
    };
    let dir = if at_hook == hook::TC_INGRESS {
        direction::EGRESS
    } else {
        direction::INGRESS
    };
    let Some(key) = CT_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: a per-CPU array slot, exclusively ours for this program run.
    let key = unsafe { &mut *key };
    fill_ct_key(key, ep.endpoint_id, pkt, dir, false);
    if let Some(ct) = CT.get_ptr_mut(&*key) {
        // SAFETY: a pointer into the CT map's value, valid for this run; a
        // racing update of the same flag byte is harmless.
        unsafe { (*ct).flags |= CT_FLAG_L7_STARTED };
    }
}

/// An address as the ipcache stores it (IPv4 mapped into IPv6).
#[inline(always)]
fn ipcache_addr(fam: u8, raw: &[u8; 16]) -> [u8; IPCACHE_ADDR_LEN] {
    if fam == family::IPV4 {
        [
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, raw[0], raw[1], raw[2], raw[3],
        ]
    } else {
        *raw
    }
}

#[inline(never)]
fn lookup_policy(
    endpoint_id: u32,
    dir: u8,
    proto: u8,
    peer: u32,
    port: u16,
) -> Option<&'static PolicyValue> {
    let key = Key::new(
        POLICY_KEY_FIXED_BITS + 16,
        policy_key(endpoint_id, dir, proto, peer, port),
    );
    POLICY.get(key)
}

/// The scratch connection-tracking key, filled for `pkt` as seen (or, with
/// `reversed`, for the reply direction of a connection opened the other way).
#[inline(always)]
fn fill_ct_key(key: &mut CtKey, endpoint_id: u32, pkt: &L4Packet, dir: u8, reversed: bool) {
    key.endpoint_id = endpoint_id;
    key.proto = pkt.proto;
    key._pad = [0; 2];
    if reversed {
        key.saddr = pkt.daddr;
        key.daddr = pkt.saddr;
        key.sport = pkt.dport;
        key.dport = pkt.sport;
        key.direction = if dir == direction::EGRESS {
            direction::INGRESS
        } else {
            direction::EGRESS
        };
    } else {
        key.saddr = pkt.saddr;
        key.daddr = pkt.daddr;
        key.sport = pkt.sport;
        key.dport = pkt.dport;
        key.direction = dir;
    }
}

/// A tracked connection `pkt` belongs to (either direction), if it was
/// allowed under the endpoint's current revision, packed as
/// `1 | forward << 1 | flags << 8 | match_type << 16 | l7_kind << 24 |
/// l7_table << 32`; 0 when it is not tracked. Not inlined: its own stack
/// frame.
#[inline(never)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "pass the per-CPU scratch slot itself, not a copy on the 512-byte stack"
)]
fn ct_match(ep: &EndpointValue, pkt: &L4Packet, dir: u8) -> u64 {
    let Some(key) = CT_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: a per-CPU array slot, exclusively ours for this program run.
    let key = unsafe { &mut *key };
    for reversed in [false, true] {
        fill_ct_key(key, ep.endpoint_id, pkt, dir, reversed);
        // SAFETY: the value is only read during this program run.
        if let Some(ct) = unsafe { CT.get(&*key) } {
            if ct.policy_revision == ep.policy_revision {
                return 1
                    | (u64::from(!reversed) << 1)
                    | (u64::from(ct.flags) << 8)
                    | (u64::from(ct.match_type) << 16)
                    | (u64::from(ct.l7_kind) << 24)
                    | (u64::from(ct.l7_table) << 32);
            }
        }
    }
    0
}

/// Tracks an allowed connection.
#[inline(never)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "pass the per-CPU scratch slot itself, not a copy on the 512-byte stack"
)]
fn ct_track(ep: &EndpointValue, pkt: &L4Packet, dir: u8, policy: &PolicyValue) {
    let Some(key) = CT_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: a per-CPU array slot, exclusively ours for this program run.
    let key = unsafe { &mut *key };
    fill_ct_key(key, ep.endpoint_id, pkt, dir, false);
    let value = CtValue {
        // SAFETY: a helper without arguments.
        created_ns: unsafe { bpf_ktime_get_ns() },
        policy_revision: ep.policy_revision,
        match_type: policy.match_type,
        l7_kind: policy.l7_kind,
        l7_table: policy.l7_table as u8,
        flags: 0,
    };
    let _ = CT.insert(&*key, &value, 0);
}

/// The peer's identity and whether it is a CIDR identity.
#[inline(never)]
fn peer_identity(pkt: &L4Packet, dir: u8) -> (u32, bool) {
    let raw = if dir == direction::EGRESS {
        &pkt.daddr
    } else {
        &pkt.saddr
    };
    match IPCACHE.get(Key::new(128, ipcache_addr(pkt.family, raw))) {
        Some(v) => (v.identity, v.flags & IPCACHE_FLAG_CIDR != 0),
        None => (IDENTITY_WORLD, false),
    }
}

/// Decides a packet on a managed endpoint's interface; a pass decision for
/// everything else.
#[inline(always)]
fn decide(ctx: &TcContext, at_hook: u8, pkt: &L4Packet) -> Decision {
    // SAFETY: reading the ifindex field of the context's sk_buff.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: the value is only read during this program run.
    let Some(ep) = (unsafe { ENDPOINTS.get(ifindex) }) else {
        return Decision::pass();
    };
    let (dir, enforce_flag) = if at_hook == hook::TC_INGRESS {
        (direction::EGRESS, ENDPOINT_FLAG_ENFORCE_EGRESS)
    } else {
        (direction::INGRESS, ENDPOINT_FLAG_ENFORCE_INGRESS)
    };
    let mut decision = Decision::pass();
    decision.local_identity = ep.identity;
    let tracked = ct_match(ep, pkt, dir);
    if tracked & 1 != 0 {
        decision.forward = tracked & 2 != 0;
        decision.l7_started = (tracked >> 8) as u8 & CT_FLAG_L7_STARTED != 0;
        decision.match_type = (tracked >> 16) as u8;
        decision.l7_kind = (tracked >> 24) as u8;
        decision.l7_table = (tracked >> 32) as u8;
        return decision;
    }
    decision.forward = true;
    let (peer, cidr) = peer_identity(pkt, dir);
    decision.peer_identity = peer;
    let mut hit = lookup_policy(ep.endpoint_id, dir, pkt.proto, peer, pkt.dport);
    if hit.is_none() && cidr {
        hit = lookup_policy(ep.endpoint_id, dir, pkt.proto, IDENTITY_WORLD, pkt.dport);
    }
    if hit.is_none() {
        hit = lookup_policy(ep.endpoint_id, dir, pkt.proto, IDENTITY_ANY, pkt.dport);
    }
    let audit = ep.flags & ENDPOINT_FLAG_AUDIT != 0;
    match hit {
        Some(p) if p.action == POLICY_ACTION_DENY => {
            if !audit {
                decision.dropped = true;
                decision.drop_reason = drop_reason::POLICY_DENY;
            }
        }
        Some(p) => {
            decision.match_type = p.match_type;
            decision.l7_kind = p.l7_kind;
            decision.l7_table = p.l7_table as u8;
            ct_track(ep, pkt, dir, p);
        }
        None => {
            if ep.flags & enforce_flag != 0 && !audit {
                decision.dropped = true;
                decision.drop_reason = drop_reason::POLICY_DENIED;
            } else {
                // Not enforced in this direction: still track the
                // connection, so its replies pass the other direction's
                // default deny.
                ct_track(ep, pkt, dir, &PolicyValue::default());
            }
        }
    }
    decision
}

/// The DNS port.
const DNS_PORT: u16 = 53;
/// A DNS message is at least its header.
const DNS_HEADER_LEN: usize = 12;

#[inline(always)]
fn http_kind(http: bool) -> u8 {
    if http {
        kind::HTTP_REQUEST
    } else {
        kind::TCP_FLAGS
    }
}

/// The shortest request line we recognise: `GET / HTTP/1.1\r\n`.
const MIN_REQUEST_LINE: usize = 16;

/// Does the payload start with an HTTP/1.x method followed by a space?
#[inline(always)]
fn starts_with_http_method(ctx: &TcContext, pkt: &L4Packet) -> bool {
    if pkt.payload_len < MIN_REQUEST_LINE {
        return false;
    }
    let Ok(head) = ctx.load::<[u8; 8]>(pkt.payload_offset) else {
        return false;
    };
    matches!(
        head,
        [b'G', b'E', b'T', b' ', ..]
            | [b'P', b'U', b'T', b' ', ..]
            | [b'P', b'O', b'S', b'T', b' ', ..]
            | [b'H', b'E', b'A', b'D', b' ', ..]
            | [b'P', b'A', b'T', b'C', b'H', b' ', ..]
            | [b'T', b'R', b'A', b'C', b'E', b' ', ..]
            | [b'D', b'E', b'L', b'E', b'T', b'E', b' ', ..]
            | [b'O', b'P', b'T', b'I', b'O', b'N', b'S', b' ']
            | [b'C', b'O', b'N', b'N', b'E', b'C', b'T', b' ']
    )
}

#[inline(never)]
fn emit(ctx: &TcContext, at_hook: u8, pkt: &L4Packet, event_kind: u8, decision: &Decision) {
    let event_verdict = if decision.dropped {
        verdict::DROPPED
    } else {
        verdict::FORWARDED
    };
    let Some(mut entry) = EVENTS.reserve::<FlowEvent>(0) else {
        count(counter::EVENTS_LOST);
        return;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points at a reserved, exclusively owned ring-buffer slot
    // of exactly `size_of::<FlowEvent>()` bytes; every field is written below
    // before the slot is submitted.
    unsafe {
        (*event).ktime_ns = bpf_ktime_get_ns();
        (*event).saddr = pkt.saddr;
        (*event).daddr = pkt.daddr;
        (*event).ifindex = (*ctx.skb.skb).ifindex;
        (*event).sport = pkt.sport;
        (*event).dport = pkt.dport;
        (*event).tcp_seq = pkt.seq;
        (*event).tcp_ack = pkt.ack;
        (*event).kind = event_kind;
        (*event).family = pkt.family;
        (*event).l4_proto = pkt.proto;
        (*event).tcp_flags = pkt.flags;
        (*event).hook = at_hook;
        (*event).verdict = event_verdict;
        (*event).payload_len = 0;
        (*event).drop_reason = decision.drop_reason;
        (*event).match_type = decision.match_type;
        (*event)._pad = [0; 2];
        (*event).local_identity = decision.local_identity;
        (*event).peer_identity = decision.peer_identity;
        (*event)._reserved = [0; 52];
    }
    // L7 events carry the start of the payload (request line, DNS message).
    if event_kind != kind::TCP_FLAGS && pkt.payload_len > 0 {
        let wanted = if pkt.payload_len < PAYLOAD_CAPACITY {
            pkt.payload_len
        } else {
            PAYLOAD_CAPACITY
        };
        // The verifier needs the length proven to lie in 1..=PAYLOAD_CAPACITY;
        // `wanted` is at least 1 here, so the mask keeps its value.
        let len = ((wanted - 1) & (PAYLOAD_CAPACITY - 1)) + 1;
        // SAFETY: the destination is the `payload` array inside the reserved
        // slot, and `len` is at most its size.
        let copied = unsafe {
            bpf_skb_load_bytes(
                ctx.skb.skb as *const __sk_buff as *const _,
                pkt.payload_offset as u32,
                (*event).payload.as_mut_ptr().cast(),
                len as u32,
            )
        };
        if copied == 0 {
            // SAFETY: as above, the slot is still exclusively ours.
            unsafe { (*event).payload_len = len as u16 };
        }
    }
    entry.submit(0);
    count(counter::EVENTS_SENT);
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
