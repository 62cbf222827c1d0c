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
    helpers::{bpf_ktime_get_ns, bpf_skb_load_bytes},
    macros::{classifier, map},
    maps::{
        Array, HashMap, LruHashMap, PerCpuArray, RingBuf,
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
                emit(ctx, at_hook, &pkt, false, &decision);
                return TC_ACT_SHOT;
            }
            let http = is_tcp && pkt.payload_len > 0 && starts_with_http_method(ctx, &pkt);
            if is_tcp && decision.forward && pkt.payload_len > 0 {
                if decision.l7_kind == L7_KIND_HTTP {
                    if http {
                        if l7_http_allows(ctx, &pkt, decision.l7_table) {
                            if !decision.l7_started {
                                ct_mark_l7_started(ctx, at_hook, &pkt);
                            }
                        } else {
                            count(counter::L7_DENIED);
                            decision.dropped = true;
                            emit(ctx, at_hook, &pkt, true, &decision);
                            return TC_ACT_SHOT;
                        }
                    } else if !decision.l7_started {
                        // The first payload of an L7-enforced connection is
                        // not a request line we can read: fail closed.
                        count(counter::L7_UNPARSABLE);
                        decision.dropped = true;
                        emit(ctx, at_hook, &pkt, false, &decision);
                        return TC_ACT_SHOT;
                    }
                } else if decision.l7_kind == L7_KIND_CONFLICT {
                    count(counter::L7_UNPARSABLE);
                    decision.dropped = true;
                    emit(ctx, at_hook, &pkt, http, &decision);
                    return TC_ACT_SHOT;
                }
            }
            let interesting =
                is_tcp && pkt.flags & (tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST) != 0;
            if http || interesting {
                emit(ctx, at_hook, &pkt, http, &decision);
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
fn emit(ctx: &TcContext, at_hook: u8, pkt: &L4Packet, http: bool, decision: &Decision) {
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
        (*event).kind = if http {
            kind::HTTP_REQUEST
        } else {
            kind::TCP_FLAGS
        };
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
    if http {
        let wanted = if pkt.payload_len < PAYLOAD_CAPACITY {
            pkt.payload_len
        } else {
            PAYLOAD_CAPACITY
        };
        // The verifier needs the length proven to lie in 1..=PAYLOAD_CAPACITY;
        // `wanted` is at least MIN_REQUEST_LINE here, so the mask keeps its value.
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
