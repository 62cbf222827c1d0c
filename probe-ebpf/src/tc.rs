//! TC classifiers on the host side of a pod's veth.
//!
//! Hook points (kernel floor 5.17 for `bpf_loop`; tcx links from 6.6, clsact
//! before that):
//! - `holonet_tc_ingress`: TC ingress of the host-side veth, i.e. the pod's
//!   egress (packets the pod sends);
//! - `holonet_tc_egress`: TC egress of the host-side veth, i.e. the pod's
//!   ingress (packets delivered to the pod).
//!
//! Observation: an event for every TCP packet with SYN, FIN or RST set, every
//! HTTP/1.x request and status line, every DNS message on port 53, and every
//! drop (repeated drops of one stream once every 5 s).
//!
//! Enforcement (see docs/datapath.md): when the interface belongs to a
//! managed endpoint (`ENDPOINTS`), a packet of a connection not yet tracked
//! in `CT` is decided by the endpoint's `POLICY` for the peer's identity
//! (`IPCACHE`); allowed connections are tracked so their packets and replies
//! pass; denied ones are dropped and reported with Cilium's drop reason.
//! Payload on connections whose entry carries L7 rules goes, by tail call,
//! to `holonet_tc_l7` (every HTTP request checked, see `http`) or
//! `holonet_tc_dns` (every query checked, see `dns`). Interfaces without an
//! endpoint entry are only observed.
#![no_std]
#![no_main]

mod answer;
mod dns;
mod headers;
mod http;
mod route;

use aya_ebpf::{
    bindings::{__sk_buff, TC_ACT_PIPE, TC_ACT_SHOT},
    helpers::{bpf_ktime_get_ns, bpf_skb_load_bytes},
    macros::{classifier, map},
    maps::{
        Array, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf,
        lpm_trie::{Key, LpmTrie},
    },
    programs::TcContext,
};
use aya_ebpf::{cty::c_void, helpers::bpf_loop};
use aya_log_ebpf::debug;
use headers::{IPPROTO_TCP, L4Packet};
use http::HEAD_WINDOW;
use probe_common::names::{L7_JUMP_DNS, L7_JUMP_HTTP};
use probe_common::{
    event::{
        EVENTS_RING_BYTES, EVENTS_WAKEUP_BYTES, FlowEvent, PAYLOAD_CAPACITY, counter, drop_reason,
        family, hook, kind, l7_detail, tcp_flags, verdict,
    },
    l7::L7DfaTable,
    policy::{
        CT_FLAG_L7_DENIED, CT_FLAG_L7_GAVE_UP, CT_FLAG_L7_SYNCED, CtKey, CtValue,
        ENDPOINT_FLAG_AUDIT, ENDPOINT_FLAG_ENFORCE_EGRESS, ENDPOINT_FLAG_ENFORCE_INGRESS,
        EndpointValue, IDENTITY_ANY, IDENTITY_WORLD, IPCACHE_ADDR_LEN, IPCACHE_FLAG_CIDR,
        IpcacheValue, L7_DNS_TABLES, L7_HTTP_TABLES, L7_KIND_CONFLICT, L7_KIND_DNS, L7_KIND_HTTP,
        POLICY_ACTION_DENY, POLICY_KEY_FIXED_BITS, POLICY_KEY_LEN, PolicyValue, direction,
        policy_key,
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

/// Per-CPU copy of a request head for the L7 checks.
#[map(name = "L7_BUF")]
static L7_BUF: PerCpuArray<[u8; HEAD_WINDOW]> = PerCpuArray::with_max_entries(1, 0);

/// The L7 program, reached by a tail call so the verifier checks its
/// request-line walk apart from the L3/L4 path (together they exceed the
/// verifier's complexity limit).
#[map(name = "L7_JUMP")]
static L7_JUMP: ProgramArray = ProgramArray::with_max_entries(2, 0);

/// DNS tables: query names each DNS rule set allows.
#[map(name = "L7_DNS")]
static L7_DNS: Array<L7DfaTable> = Array::with_max_entries(L7_DNS_TABLES, 0);

/// Requests one segment may carry (pipelined) before the probe gives up
/// on it (fail closed); each takes one round of the L7 program.
const MAX_REQUESTS_PER_SEGMENT: usize = 8;

/// `L7State::request_off` before the first round: the offset comes from
/// the connection's tracked sequence number.
const FIRST_ROUND: u32 = u32::MAX;

/// What the L3/L4 program decided, handed to the L7 program, and from one
/// round of the L7 program to the next when a segment holds several
/// requests.
#[repr(C)]
#[derive(Clone, Copy)]
struct L7State {
    hook: u8,
    l7_table: u8,
    match_type: u8,
    /// Requests of this segment already checked and allowed.
    allowed: u8,
    /// The endpoint is in audit mode: report, never drop.
    audit: u8,
    _pad: [u8; 3],
    local_identity: u32,
    peer_identity: u32,
    /// Payload offset of the request this round checks ([`FIRST_ROUND`]
    /// before the first).
    request_off: u32,
    /// `Decision::route_hint` of the classifier.
    route_hint: u32,
    /// Payload offsets of the requests already allowed; their events are
    /// sent once the whole segment is judged.
    allowed_off: [u32; MAX_REQUESTS_PER_SEGMENT],
}

/// What identifies a stream of repeated drops: where (interface, hook)
/// and which packets (the 5-tuple).
#[repr(C)]
#[derive(Clone, Copy)]
struct DropKey {
    saddr: [u8; 16],
    daddr: [u8; 16],
    ifindex: u32,
    sport: u16,
    dport: u16,
    proto: u8,
    hook: u8,
    _pad: [u8; 2],
}

/// Drops are reported once per [`DROP_REPORT_INTERVAL_NS`] per [`DropKey`]:
/// a client retrying a denied SYN is one DROPPED flow, not one per retry
/// (the others are counted in `DROPS_AGGREGATED`).
const DROP_REPORT_INTERVAL_NS: u64 = 5_000_000_000;

/// When each stream of drops was last reported.
#[map(name = "DROPS_SEEN")]
static DROPS_SEEN: LruHashMap<DropKey, u64> = LruHashMap::with_max_entries(16_384, 0);

/// Per-CPU scratch space for the drop key.
#[map(name = "DROP_SCRATCH")]
static DROP_SCRATCH: PerCpuArray<DropKey> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU slot of the packet's parsed headers (see `headers::parse_into`).
#[map(name = "PACKET")]
static PACKET: PerCpuArray<L4Packet> = PerCpuArray::with_max_entries(1, 0);

/// What the header parser found.
enum Seen {
    L4(&'static L4Packet),
    Skip,
    Fragment,
    Malformed,
}

#[inline(always)]
fn parse_packet(ctx: &TcContext) -> Seen {
    let Some(slot) = PACKET.get_ptr_mut(0) else {
        return Seen::Malformed;
    };
    match headers::parse_into(ctx, slot) {
        // SAFETY: the slot was just filled, and is ours for this run.
        headers::PARSED_L4 => Seen::L4(unsafe { &*slot }),
        headers::PARSED_SKIP => Seen::Skip,
        headers::PARSED_FRAGMENT => Seen::Fragment,
        _ => Seen::Malformed,
    }
}

/// The headers in `PACKET`, as the classifier that tail-called this
/// program parsed them: a tail call replaces the running program on the
/// same CPU at once, so the slot still holds this packet (parsing it again
/// cost a few hundred nanoseconds per request). Pinned maps are shared only
/// by programs of one build (`probe_abi`), so the layout is the same.
#[inline(always)]
fn packet_parsed_by_caller() -> Option<&'static L4Packet> {
    // SAFETY: a per-CPU slot, filled by the caller for this packet and only
    // read in this run.
    PACKET.get_ptr(0).map(|slot| unsafe { &*slot })
}

/// Per-CPU values the `bpf_loop` walks carry between steps (see
/// `http::LoopVars`).
#[map(name = "LOOP_VARS")]
static LOOP_VARS: PerCpuArray<http::LoopVars> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU scratch state of the request-head scan.
#[map(name = "HEAD_SCAN")]
static HEAD_SCAN: PerCpuArray<http::HeadScan> = PerCpuArray::with_max_entries(1, 0);

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
/// for a payload segment of an L7-enforced connection travelling in the
/// direction it was opened (see docs/datapath.md, "Requests on a
/// connection").
///
/// The connection's `CT` entry remembers the sequence number where the next
/// request starts. A round checks the request at that point of the segment:
/// its request line against the HTTP table, then its head for where it ends
/// (`Content-Length` body). If another request starts within the segment,
/// the program tail-calls itself for it. The segment passes only when every
/// request in it is allowed; a denied one gets the 403 answer; anything the
/// probe cannot read with confidence drops the segment (fail closed) and
/// leaves the connection's state as it was, so the client's retransmission
/// is judged afresh.
#[classifier]
fn holonet_tc_l7(ctx: TcContext) -> i32 {
    let Some(state) = L7_STATE.get_ptr_mut(0) else {
        return TC_ACT_SHOT;
    };
    // SAFETY: a per-CPU slot, exclusively ours for this program run (the
    // classifier that tail-called us has finished with it).
    let state = unsafe { &mut *state };
    let Some(pkt) = packet_parsed_by_caller() else {
        return TC_ACT_SHOT;
    };
    let mut decision = Decision::from_l7(state);

    if state.request_off == FIRST_ROUND {
        let start = first_request_offset(&ctx, state.hook, pkt);
        let detail = (start >> 32) as u8;
        if detail == l7_detail::AFTER_DENY {
            // Data after a denied request (the server was reset): nothing
            // to report again.
            return fail_closed_quietly(&decision);
        }
        if detail != 0 {
            return fail_closed(&ctx, state.hook, pkt, &mut decision, detail);
        }
        let off = start as u32;
        if off as usize >= pkt.payload_len {
            // Bytes of requests already judged (bodies, retransmissions).
            return TC_ACT_PIPE;
        }
        state.request_off = off;
        state.allowed = 0;
    }
    let off = state.request_off as usize;
    decision.payload_skip = state.request_off;
    let result = check_request(&ctx, pkt, off, state.l7_table);
    let detail = result as u8;
    if detail == CHECK_DENIED {
        count(counter::L7_DENIED);
        if decision.audit {
            if (result >> 8) & 0xff_ffff == 0 {
                // Where the audited request ends is unknown: stop here.
                return fail_closed(&ctx, state.hook, pkt, &mut decision, l7_detail::FRAMING);
            }
            return advance_or_pass(&ctx, pkt, state, off, result, AUDITED);
        }
        decision.dropped = true;
        // Requests of this segment that were allowed die with it.
        emit_allowed(&ctx, pkt, state, &mut decision);
        decision.payload_skip = off as u32;
        emit(&ctx, state.hook, pkt, kind::HTTP_REQUEST, &decision);
        ct_update(
            &ctx,
            state.hook,
            pkt,
            pkt.seq.wrapping_add(off as u32),
            CT_FLAG_L7_DENIED,
        );
        // Close the server's side (a RST in the client's name, at the
        // sequence number it expects next), then answer the client like
        // Cilium's proxy does; the request never reaches the server.
        answer::reset_server(&ctx, pkt, state.hook);
        return answer::answer_forbidden(&ctx, pkt, state.hook);
    }
    if detail != 0 {
        return fail_closed(&ctx, state.hook, pkt, &mut decision, detail);
    }
    count(counter::L7_ALLOWED);
    advance_or_pass(&ctx, pkt, state, off, result, 0)
}

/// `check_request` result: the request is denied by the rules.
const CHECK_DENIED: u8 = 0xff;

/// Mark on an `L7State::allowed_off` entry: the request was denied but
/// passed because the endpoint is in audit mode (reported as AUDIT).
const AUDITED: u32 = 1 << 31;

/// After an allowed (or audited) request at `off` with `result` from
/// [`check_request`]: tail-calls the next round when another request starts
/// within the segment, otherwise records where the next request starts and
/// passes the segment, reporting its requests.
#[inline(always)]
fn advance_or_pass(
    ctx: &TcContext,
    pkt: &L4Packet,
    state: &mut L7State,
    off: usize,
    result: u64,
    mark: u32,
) -> i32 {
    let head_len = (result >> 8) & 0xff_ffff;
    let content_length = result >> 32;
    let next = off as u64 + head_len + content_length;
    let mut decision = Decision::from_l7(state);
    if next < pkt.payload_len as u64 {
        let slot = usize::from(state.allowed);
        if slot >= MAX_REQUESTS_PER_SEGMENT - 1 {
            return fail_closed(
                ctx,
                state.hook,
                pkt,
                &mut decision,
                l7_detail::TOO_MANY_REQUESTS,
            );
        }
        state.allowed_off[slot] = off as u32 | mark;
        state.allowed += 1;
        state.request_off = next as u32;
        // SAFETY: tail call into the program array's L7 program (this one).
        unsafe { L7_JUMP.tail_call(ctx, 0) };
        return fail_closed(
            ctx,
            state.hook,
            pkt,
            &mut decision,
            l7_detail::TOO_MANY_REQUESTS,
        );
    }
    ct_update(
        ctx,
        state.hook,
        pkt,
        pkt.seq.wrapping_add(next as u32),
        CT_FLAG_L7_SYNCED,
    );
    emit_allowed(ctx, pkt, state, &mut decision);
    decision.payload_skip = off as u32;
    decision.dropped = mark != 0;
    emit(ctx, state.hook, pkt, kind::HTTP_REQUEST, &decision);
    TC_ACT_PIPE
}

/// Reports the requests of this segment passed in earlier rounds: dropped
/// when `decision` says the segment is, audited when marked so. The loop
/// runs under `bpf_loop`, so the verifier checks one report, not one per
/// possible request (older verifiers ran out of budget on the plain loop).
#[inline(never)]
fn emit_allowed(ctx: &TcContext, pkt: &L4Packet, state: &L7State, decision: &mut Decision) {
    if state.allowed == 0 {
        return;
    }
    let mut each = EmitLoop {
        skb: ctx.skb.skb,
        pkt,
        state,
        decision,
    };
    // SAFETY: `emit_allowed_step` has the callback signature `bpf_loop`
    // expects and only dereferences the pointers in `each`, which outlives
    // the call.
    unsafe {
        bpf_loop(
            u32::from(state.allowed),
            emit_allowed_step as *mut c_void,
            core::ptr::addr_of_mut!(each).cast(),
            0,
        );
    }
}

/// What [`emit_allowed`] hands its step.
#[repr(C)]
struct EmitLoop {
    skb: *mut __sk_buff,
    pkt: *const L4Packet,
    state: *const L7State,
    decision: *mut Decision,
}

/// Reports request `index` of the segment: 0 to go on, 1 to stop.
#[inline(never)]
unsafe extern "C" fn emit_allowed_step(index: u32, each: *mut c_void) -> i64 {
    let each = each.cast::<EmitLoop>();
    // SAFETY: `each` is the `EmitLoop` on `emit_allowed`'s stack; its
    // pointers are the program's context, per-CPU map values and a
    // `Decision` on that stack, all valid for this run.
    let (ctx, pkt, state, decision) = unsafe {
        (
            TcContext::new((*each).skb),
            &*(*each).pkt,
            &*(*each).state,
            &*(*each).decision,
        )
    };
    let Some(&entry) = state.allowed_off.get(index as usize) else {
        return 1;
    };
    let mut report = decision.clone();
    report.payload_skip = entry & !AUDITED;
    report.dropped = decision.dropped || entry & AUDITED != 0;
    emit(&ctx, state.hook, pkt, kind::HTTP_REQUEST, &report);
    0
}

/// Drops a segment the probe cannot judge, reporting why (in audit mode:
/// reports and passes it, and stops checking the connection).
#[inline(never)]
fn fail_closed(
    ctx: &TcContext,
    at_hook: u8,
    pkt: &L4Packet,
    decision: &mut Decision,
    detail: u8,
) -> i32 {
    count(counter::L7_UNPARSABLE);
    decision.dropped = true;
    decision.drop_reason = drop_reason::INVALID_PACKET;
    decision.detail = detail;
    decision.payload_skip = 0;
    emit(ctx, at_hook, pkt, kind::TCP_FLAGS, decision);
    if decision.audit {
        ct_update(ctx, at_hook, pkt, 0, CT_FLAG_L7_GAVE_UP);
        return TC_ACT_PIPE;
    }
    TC_ACT_SHOT
}

/// Drops a segment without an event (its cause was reported already).
#[inline(always)]
fn fail_closed_quietly(decision: &Decision) -> i32 {
    count(counter::L7_UNPARSABLE);
    drop_verdict(decision)
}

/// Where, in this segment's payload, the next request of its connection
/// starts: the offset in the low 32 bits, or an [`l7_detail`] code in bits
/// 32..40 when the segment cannot be judged (ahead of that point, or after a
/// denied request).
#[inline(never)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "pass the per-CPU scratch slot itself, not a copy on the 512-byte stack"
)]
fn first_request_offset(ctx: &TcContext, at_hook: u8, pkt: &L4Packet) -> u64 {
    let Some(key) = ct_forward_key(ctx, at_hook, pkt) else {
        return u64::from(l7_detail::NOT_HTTP) << 32;
    };
    // SAFETY: the value is only read during this program run.
    let Some(ct) = (unsafe { CT.get(&*key) }) else {
        // Not tracked (evicted): judge the segment as a request start.
        return 0;
    };
    if ct.flags & CT_FLAG_L7_GAVE_UP != 0 {
        // Audit mode gave up on this connection: everything passes.
        return u64::from(u32::MAX);
    }
    if ct.flags & CT_FLAG_L7_SYNCED == 0 {
        return 0;
    }
    let delta = ct.next_request_seq.wrapping_sub(pkt.seq) as i32;
    if delta < 0 {
        return u64::from(l7_detail::OUT_OF_ORDER) << 32;
    }
    if ct.flags & CT_FLAG_L7_DENIED != 0 && delta != 0 {
        return u64::from(l7_detail::AFTER_DENY) << 32;
    }
    delta as u64
}

/// Reads the request starting `off` bytes into the payload and judges it
/// against HTTP table `table`: [`CHECK_DENIED`], an [`l7_detail`] code, or
/// (low byte 0) `head_len << 8 | content_length << 32` of an allowed
/// request.
#[inline(never)]
fn check_request(ctx: &TcContext, pkt: &L4Packet, off: usize, table: u8) -> u64 {
    if off >= pkt.payload_len || pkt.payload_len - off < http::MIN_REQUEST {
        // A request split before its request line is complete.
        return u64::from(l7_detail::HEAD_INCOMPLETE);
    }
    let Some((buf, len)) = copy_payload(ctx, pkt, off) else {
        return u64::from(l7_detail::HEAD_INCOMPLETE);
    };
    // SAFETY: the per-CPU copy, exclusively ours for this run.
    let buf = unsafe { &*buf };
    let head = [
        buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[7],
    ];
    if !http::is_method(&head) {
        return u64::from(l7_detail::NOT_HTTP);
    }
    let Some(table) = L7_HTTP.get(u32::from(table)) else {
        return u64::from(CHECK_DENIED);
    };
    let (Some(scan), Some(vars)) = (HEAD_SCAN.get_ptr_mut(0), LOOP_VARS.get_ptr_mut(0)) else {
        return u64::from(l7_detail::NOT_HTTP);
    };
    let allowed = http::walk_request_line(table, buf, len, vars) != 0;
    let framing = http::scan_head(buf, len, scan, vars);
    match (allowed, framing as u8) {
        (true, _) => framing,
        // A denied request is answered 403 however it is framed; where it
        // ends is kept when known (audit mode goes on after it).
        (false, 0) => framing | u64::from(CHECK_DENIED),
        (false, _) => u64::from(CHECK_DENIED),
    }
}

/// Records, in the connection's `CT` entry, where its next request starts
/// (`next_seq`) and sets `flags`.
#[inline(never)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "pass the per-CPU scratch slot itself, not a copy on the 512-byte stack"
)]
fn ct_update(ctx: &TcContext, at_hook: u8, pkt: &L4Packet, next_seq: u32, flags: u8) {
    let Some(key) = ct_forward_key(ctx, at_hook, pkt) else {
        return;
    };
    if let Some(ct) = CT.get_ptr_mut(&*key) {
        // SAFETY: a pointer into the CT map's value, valid for this run;
        // racing writers of the same connection write the same values for
        // the same segment.
        unsafe {
            (*ct).next_request_seq = next_seq;
            (*ct).flags |= flags;
        }
    }
}

/// The per-CPU scratch key, filled for `pkt`'s connection in the direction
/// it was opened (the segment travels that way).
#[inline(always)]
fn ct_forward_key(ctx: &TcContext, at_hook: u8, pkt: &L4Packet) -> Option<&'static mut CtKey> {
    // SAFETY: reading the ifindex field of the context's sk_buff.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: the value is only read during this program run.
    let ep = unsafe { ENDPOINTS.get(ifindex) }?;
    let dir = if at_hook == hook::TC_INGRESS {
        direction::EGRESS
    } else {
        direction::INGRESS
    };
    let key = CT_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: a per-CPU array slot, exclusively ours for this program run.
    let key = unsafe { &mut *key };
    fill_ct_key(key, ep.endpoint_id, pkt, dir, false);
    Some(key)
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
#[derive(Clone)]
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
    /// The endpoint is in audit mode: what would be dropped is reported
    /// with verdict AUDIT and passed.
    audit: bool,
    /// For an unjudgeable L7 segment, why (`l7_detail`).
    detail: u8,
    /// Where in the payload the reported request starts.
    payload_skip: u32,
    /// Where the connection's packets arriving here are routed, as its `CT`
    /// entry remembers (`CtValue::downstream_ifindex`); 0 when unknown.
    route_hint: u32,
}

impl Decision {
    /// What the classifier decided, as the L7 program it tail-called
    /// receives it.
    #[inline(always)]
    fn from_l7(state: &L7State) -> Self {
        let mut decision = Self::pass();
        decision.match_type = state.match_type;
        decision.local_identity = state.local_identity;
        decision.peer_identity = state.peer_identity;
        decision.audit = state.audit != 0;
        decision.route_hint = state.route_hint;
        decision
    }

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
            audit: false,
            detail: 0,
            payload_skip: 0,
            route_hint: 0,
        }
    }
}

/// What a classifier returns for a packet the policy drops: drop it, or
/// in audit mode pass it (it was reported with verdict AUDIT).
#[inline(always)]
fn drop_verdict(decision: &Decision) -> i32 {
    if decision.audit {
        TC_ACT_PIPE
    } else {
        TC_ACT_SHOT
    }
}

#[inline(always)]
fn process(ctx: &TcContext, at_hook: u8) -> i32 {
    count(counter::PACKETS);
    let pkt = match parse_packet(ctx) {
        Seen::L4(pkt) => pkt,
        Seen::Skip => return TC_ACT_PIPE,
        Seen::Fragment => {
            // Later fragments carry no ports to tie them to a connection's
            // verdict: an enforcing endpoint does not let them through.
            if enforcing(ctx, at_hook) {
                count(counter::FRAGMENTS_DROPPED);
                return TC_ACT_SHOT;
            }
            return TC_ACT_PIPE;
        }
        Seen::Malformed => {
            count(counter::PARSE_ERRORS);
            debug!(ctx, "holonet: unparsable packet, len {}", ctx.len());
            // Whatever the probe cannot parse, an enforcing endpoint drops.
            return if enforcing(ctx, at_hook) {
                TC_ACT_SHOT
            } else {
                TC_ACT_PIPE
            };
        }
    };
    let mut decision = decide(ctx, at_hook, pkt);
    if pkt.first_fragment && !decision.dropped && enforcing(ctx, at_hook) {
        count(counter::FRAGMENTS_DROPPED);
        decision.dropped = true;
        decision.audit = false;
        decision.drop_reason = drop_reason::FRAGMENTATION_NOT_SUPPORTED;
    }
    let is_tcp = pkt.proto == IPPROTO_TCP;
    if decision.dropped {
        if drop_reported_recently(ctx, at_hook, pkt) {
            count(counter::DROPS_AGGREGATED);
        } else {
            emit(ctx, at_hook, pkt, kind::TCP_FLAGS, &decision);
        }
        return drop_verdict(&decision);
    }
    let head = payload_head(ctx, pkt);
    let request = is_tcp && http::is_method(&head);
    if decision.forward && pkt.payload_len > 0 && decision.l7_kind == L7_KIND_DNS {
        if is_tcp {
            // DNS over TCP on a DNS-enforced port is not read: fail closed.
            count(counter::L7_UNPARSABLE);
            decision.dropped = true;
            decision.drop_reason = drop_reason::INVALID_PACKET;
            decision.detail = l7_detail::DNS_UNREADABLE;
            emit(ctx, at_hook, pkt, kind::TCP_FLAGS, &decision);
            return drop_verdict(&decision);
        }
        enter_l7(ctx, at_hook, &decision, L7_JUMP_DNS);
        // No DNS program to jump to: fail closed.
        count(counter::L7_UNPARSABLE);
        decision.dropped = true;
        decision.drop_reason = drop_reason::INVALID_PACKET;
        emit(ctx, at_hook, pkt, kind::DNS, &decision);
        return drop_verdict(&decision);
    }
    if is_tcp && decision.forward && pkt.payload_len > 0 {
        if decision.l7_kind == L7_KIND_HTTP {
            enter_l7(ctx, at_hook, &decision, L7_JUMP_HTTP);
            // No L7 program to jump to: fail closed.
            count(counter::L7_UNPARSABLE);
            decision.dropped = true;
            decision.drop_reason = drop_reason::INVALID_PACKET;
            emit(ctx, at_hook, pkt, http_kind(request), &decision);
            return drop_verdict(&decision);
        } else if decision.l7_kind == L7_KIND_CONFLICT {
            count(counter::L7_UNPARSABLE);
            decision.dropped = true;
            decision.drop_reason = drop_reason::INVALID_PACKET;
            emit(ctx, at_hook, pkt, http_kind(request), &decision);
            return drop_verdict(&decision);
        }
    }
    let interesting = is_tcp && pkt.flags & (tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST) != 0;
    // DNS over UDP: every message on port 53 is reported (visibility
    // without a policy), the agent decodes it.
    let dns = !is_tcp
        && (pkt.sport == DNS_PORT || pkt.dport == DNS_PORT)
        && pkt.payload_len >= DNS_HEADER_LEN;
    if dns {
        emit(ctx, at_hook, pkt, kind::DNS, &decision);
    } else if request || interesting {
        emit(ctx, at_hook, pkt, http_kind(request), &decision);
    } else if is_tcp && http::is_status_line(&head) {
        // L7 visibility: responses on any connection, for their status
        // and the request's latency.
        emit(ctx, at_hook, pkt, kind::HTTP_RESPONSE, &decision);
    }
    TC_ACT_PIPE
}

/// Was a drop of this packet's stream reported less than
/// [`DROP_REPORT_INTERVAL_NS`] ago? If not, this one will be: remember when.
#[inline(never)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "pass the per-CPU scratch slot itself, not a copy on the 512-byte stack"
)]
fn drop_reported_recently(ctx: &TcContext, at_hook: u8, pkt: &L4Packet) -> bool {
    let Some(key) = DROP_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: a per-CPU array slot, exclusively ours for this program run.
    let key = unsafe { &mut *key };
    key.saddr = pkt.saddr;
    key.daddr = pkt.daddr;
    // SAFETY: reading the ifindex field of the context's sk_buff.
    key.ifindex = unsafe { (*ctx.skb.skb).ifindex };
    key.sport = pkt.sport;
    key.dport = pkt.dport;
    key.proto = pkt.proto;
    key.hook = at_hook;
    key._pad = [0; 2];
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some(last) = DROPS_SEEN.get_ptr_mut(&*key) {
        // SAFETY: a pointer into the map's value, valid for this run.
        let last = unsafe { &mut *last };
        if now.wrapping_sub(*last) < DROP_REPORT_INTERVAL_NS {
            return true;
        }
        *last = now;
        return false;
    }
    let _ = DROPS_SEEN.insert(&*key, &now, 0);
    false
}

/// Hands `decision` to the L7 program in `slot` of `L7_JUMP` and jumps
/// there; returns only when the jump fails.
#[inline(always)]
fn enter_l7(ctx: &TcContext, at_hook: u8, decision: &Decision, slot: u32) {
    if let Some(state) = L7_STATE.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot, exclusively ours until the tail-called
        // program (same CPU, same run) reads it.
        unsafe {
            (*state).hook = at_hook;
            (*state).l7_table = decision.l7_table;
            (*state).match_type = decision.match_type;
            (*state).allowed = 0;
            (*state).audit = u8::from(decision.audit);
            (*state).local_identity = decision.local_identity;
            (*state).peer_identity = decision.peer_identity;
            (*state).request_off = FIRST_ROUND;
            (*state).route_hint = decision.route_hint;
            L7_JUMP.tail_call(ctx, slot);
        }
    }
}

/// The DNS half of the datapath, entered by tail call for a datagram of a
/// DNS-enforced flow travelling in the direction it was opened (a query):
/// its name is checked against the DNS table; a denied query is answered
/// `REFUSED`; one the probe cannot read is dropped (fail closed).
#[classifier]
fn holonet_tc_dns(ctx: TcContext) -> i32 {
    let Some(state) = L7_STATE.get(0) else {
        return TC_ACT_SHOT;
    };
    let state = *state;
    let Some(pkt) = packet_parsed_by_caller() else {
        return TC_ACT_SHOT;
    };
    let mut decision = Decision::from_l7(&state);
    match check_dns(&ctx, pkt, state.l7_table) {
        dns::QUERY_ALLOWED => {
            emit(&ctx, state.hook, pkt, kind::DNS, &decision);
            TC_ACT_PIPE
        }
        dns::QUERY_DENIED => {
            count(counter::L7_DENIED);
            decision.dropped = true;
            emit(&ctx, state.hook, pkt, kind::DNS, &decision);
            if decision.audit {
                return TC_ACT_PIPE;
            }
            dns::answer_refused(&ctx, pkt, state.hook)
        }
        _ => {
            count(counter::L7_UNPARSABLE);
            decision.dropped = true;
            decision.drop_reason = drop_reason::INVALID_PACKET;
            decision.detail = l7_detail::DNS_UNREADABLE;
            emit(&ctx, state.hook, pkt, kind::DNS, &decision);
            drop_verdict(&decision)
        }
    }
}

/// Copies the payload from `off` on (up to [`HEAD_WINDOW`] bytes) into the
/// per-CPU `L7_BUF`; returns it with the number of bytes copied.
#[inline(always)]
fn copy_payload(
    ctx: &TcContext,
    pkt: &L4Packet,
    off: usize,
) -> Option<(*mut [u8; HEAD_WINDOW], usize)> {
    let buf = L7_BUF.get_ptr_mut(0)?;
    if off >= pkt.payload_len {
        return None;
    }
    let available = pkt.payload_len - off;
    let wanted = if available < HEAD_WINDOW {
        available
    } else {
        HEAD_WINDOW
    };
    // The verifier needs the length proven to lie in 1..=HEAD_WINDOW.
    let len = ((wanted - 1) & (HEAD_WINDOW - 1)) + 1;
    // SAFETY: `buf` is a per-CPU array slot of HEAD_WINDOW bytes,
    // exclusively ours for this run; `len` is at most that size.
    let loaded = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb as *const __sk_buff as *const _,
            (pkt.payload_offset + off) as u32,
            (*buf).as_mut_ptr().cast(),
            len as u32,
        )
    };
    (loaded == 0).then_some((buf, len))
}

/// Copies the datagram and judges its query against DNS table `table`.
#[inline(never)]
fn check_dns(ctx: &TcContext, pkt: &L4Packet, table: u8) -> u8 {
    let Some((buf, len)) = copy_payload(ctx, pkt, 0) else {
        return dns::QUERY_UNREADABLE;
    };
    let Some(table) = L7_DNS.get(u32::from(table)) else {
        return dns::QUERY_DENIED;
    };
    let Some(vars) = LOOP_VARS.get_ptr_mut(0) else {
        return dns::QUERY_UNREADABLE;
    };
    dns::walk_query(table, buf, len, vars)
}

/// The first eight payload bytes (zeros when the payload is shorter than a
/// request line), for recognising a request or status line.
#[inline(always)]
fn payload_head(ctx: &TcContext, pkt: &L4Packet) -> [u8; 8] {
    if pkt.payload_len < http::MIN_REQUEST {
        return [0; 8];
    }
    ctx.load::<[u8; 8]>(pkt.payload_offset).unwrap_or([0; 8])
}

/// Does the packet's interface belong to an endpoint that enforces policy
/// in the packet's direction (and is not in audit mode)?
#[inline(never)]
fn enforcing(ctx: &TcContext, at_hook: u8) -> bool {
    // SAFETY: reading the ifindex field of the context's sk_buff.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: the value is only read during this program run.
    let Some(ep) = (unsafe { ENDPOINTS.get(ifindex) }) else {
        return false;
    };
    let flag = if at_hook == hook::TC_INGRESS {
        ENDPOINT_FLAG_ENFORCE_EGRESS
    } else {
        ENDPOINT_FLAG_ENFORCE_INGRESS
    };
    ep.flags & flag != 0 && ep.flags & ENDPOINT_FLAG_AUDIT == 0
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
/// l7_table << 32 | route_hint << 40` (the entry's `downstream_ifindex`
/// when it fits 24 bits, else 0: unknown); 0 when it is not tracked. Not
/// inlined: its own stack frame.
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
                let route_hint = if ct.downstream_ifindex < 1 << 24 {
                    u64::from(ct.downstream_ifindex)
                } else {
                    0
                };
                return 1
                    | (u64::from(!reversed) << 1)
                    | (u64::from(ct.flags) << 8)
                    | (u64::from(ct.match_type) << 16)
                    | (u64::from(ct.l7_kind) << 24)
                    | (u64::from(ct.l7_table) << 32)
                    | (route_hint << 40);
            }
        }
    }
    0
}

/// Tracks an allowed connection; returns where its packets arriving here
/// from the pod are routed (see `CtValue::downstream_ifindex`).
#[inline(never)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "pass the per-CPU scratch slot itself, not a copy on the 512-byte stack"
)]
fn ct_track(
    ctx: &TcContext,
    ep: &EndpointValue,
    pkt: &L4Packet,
    dir: u8,
    policy: &PolicyValue,
) -> u32 {
    // Packets arriving from the pod travel the way the connection was
    // opened when the pod opened it (egress), the reply way otherwise.
    let downstream_ifindex = route::output_interface(ctx, pkt, dir == direction::INGRESS);
    let Some(key) = CT_SCRATCH.get_ptr_mut(0) else {
        return downstream_ifindex;
    };
    // SAFETY: a per-CPU array slot, exclusively ours for this program run.
    let key = unsafe { &mut *key };
    fill_ct_key(key, ep.endpoint_id, pkt, dir, false);
    // Tracked from its SYN, the connection's first request starts at the
    // first byte after it; tracked mid-stream, the first payload seen must
    // start a request.
    let syn = pkt.proto == IPPROTO_TCP && pkt.flags & tcp_flags::SYN != 0;
    let value = CtValue {
        // SAFETY: a helper without arguments.
        created_ns: unsafe { bpf_ktime_get_ns() },
        policy_revision: ep.policy_revision,
        match_type: policy.match_type,
        l7_kind: policy.l7_kind,
        l7_table: policy.l7_table as u8,
        flags: if syn { CT_FLAG_L7_SYNCED } else { 0 },
        next_request_seq: pkt.seq.wrapping_add(1),
        downstream_ifindex,
    };
    let _ = CT.insert(&*key, &value, 0);
    downstream_ifindex
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
    decision.audit = ep.flags & ENDPOINT_FLAG_AUDIT != 0;
    let tracked = ct_match(ep, pkt, dir);
    if tracked & 1 != 0 {
        decision.forward = tracked & 2 != 0;
        decision.match_type = (tracked >> 16) as u8;
        decision.l7_kind = (tracked >> 24) as u8;
        decision.l7_table = (tracked >> 32) as u8;
        decision.route_hint = (tracked >> 40) as u32;
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
    match hit {
        Some(p) if p.action == POLICY_ACTION_DENY => {
            decision.dropped = true;
            decision.drop_reason = drop_reason::POLICY_DENY;
        }
        Some(p) => {
            decision.match_type = p.match_type;
            decision.l7_kind = p.l7_kind;
            decision.l7_table = p.l7_table as u8;
            decision.route_hint = ct_track(ctx, ep, pkt, dir, p);
        }
        None => {
            if ep.flags & enforce_flag != 0 {
                decision.dropped = true;
                decision.drop_reason = drop_reason::POLICY_DENIED;
            } else {
                // Not enforced in this direction: still track the
                // connection, so its replies pass the other direction's
                // default deny.
                decision.route_hint = ct_track(ctx, ep, pkt, dir, &PolicyValue::default());
            }
        }
    }
    if decision.dropped && decision.audit {
        // Audit mode: reported once (verdict AUDIT), then tracked like an
        // allowed connection so its other packets pass quietly.
        decision.route_hint = ct_track(ctx, ep, pkt, dir, &PolicyValue::default());
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

#[inline(never)]
fn emit(ctx: &TcContext, at_hook: u8, pkt: &L4Packet, event_kind: u8, decision: &Decision) {
    let event_verdict = match (decision.dropped, decision.audit) {
        (true, false) => verdict::DROPPED,
        (true, true) => verdict::AUDIT,
        (false, _) => verdict::FORWARDED,
    };
    if at_hook == hook::TC_INGRESS
        && event_verdict == verdict::FORWARDED
        && route::seen_downstream(ctx, pkt, decision.route_hint)
    {
        // Reported where it is delivered (see `route`).
        count(counter::EVENTS_DEFERRED);
        return;
    }
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
        (*event).detail = decision.detail;
        (*event)._pad = 0;
        (*event).local_identity = decision.local_identity;
        (*event).peer_identity = decision.peer_identity;
        (*event)._reserved = [0; 52];
    }
    // L7 events carry the start of the payload (request line, DNS message).
    let skip = decision.payload_skip as usize;
    if event_kind != kind::TCP_FLAGS && skip < pkt.payload_len {
        let available = pkt.payload_len - skip;
        let wanted = if available < PAYLOAD_CAPACITY {
            available
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
                (pkt.payload_offset + skip) as u32,
                (*event).payload.as_mut_ptr().cast(),
                len as u32,
            )
        };
        if copied == 0 {
            // SAFETY: as above, the slot is still exclusively ours.
            unsafe { (*event).payload_len = len as u16 };
        }
    }
    // Waking the agent for every event costs more than the event itself;
    // it drains the ring on a short timer and is woken only when a burst
    // fills a good part of the ring.
    let wakeup = if EVENTS.query(BPF_RB_AVAIL_DATA) >= u64::from(EVENTS_WAKEUP_BYTES) {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    entry.submit(wakeup);
    count(counter::EVENTS_SENT);
}

/// `bpf_ringbuf_query` / `bpf_ringbuf_submit` flags.
const BPF_RB_AVAIL_DATA: u64 = 0;
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
