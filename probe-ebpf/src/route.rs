//! Where a packet goes next: does another interface with the probe see it?
//!
//! A packet between two pods on this node crosses two attached interfaces:
//! the source pod's veth (TC ingress, the pod's egress) and the destination
//! pod's (TC egress, the pod's ingress). Each point decides on it, but only
//! the last one reports it, so a request, a response or a SYN is one event,
//! as Cilium reports local delivery once (`to-endpoint`). A drop is reported
//! where it happens, and the destination's decision (its ingress policy,
//! its L7 verdict) is the one a forwarded packet is reported with.
//!
//! The source point asks the kernel's own routing table (`bpf_fib_lookup`,
//! the lookup the stack does next for this packet) which interface the
//! packet leaves through, and whether the agent attached the probe's TC
//! egress program there (`ATTACHED`). For a tracked connection the answer
//! of the lookup was kept in its `CT` entry when it was tracked, so only
//! `ATTACHED` is asked per packet. Whatever the lookup cannot answer
//! (no route, forwarding disabled, a packet for this host) is reported at
//! the source: an event may come twice, but is never lost.

use aya_ebpf::{
    bindings::{
        BPF_FIB_LKUP_RET_FRAG_NEEDED, BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_SUCCESS,
        bpf_fib_lookup as FibParams,
    },
    helpers::bpf_fib_lookup,
    macros::map,
    maps::{HashMap, PerCpuArray},
    programs::TcContext,
};
use probe_common::event::family;

use crate::headers::L4Packet;

/// Interfaces the probe's classifiers are attached to (ifindex → 1), filled
/// by the agent as it attaches them.
#[map(name = "ATTACHED")]
static ATTACHED: HashMap<u32, u8> = HashMap::with_max_entries(4096, 0);

/// Per-CPU scratch space for the lookup's parameters (64 bytes the stack
/// cannot spare).
#[map(name = "FIB_SCRATCH")]
static FIB_SCRATCH: PerCpuArray<FibParams> = PerCpuArray::with_max_entries(1, 0);

/// `AF_INET` / `AF_INET6`, as `bpf_fib_lookup` wants the family.
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Will `pkt`, which arrived on this interface from its pod, leave through
/// an interface the probe is attached to (and be reported there)?
///
/// `hint` is the output interface remembered with the packet's connection
/// (`CtValue::downstream_ifindex`), 0 when there is none: then the routing
/// table is asked. Whether that interface is attached is always checked
/// afresh, so detaching one never loses its events.
#[inline(never)]
pub(crate) fn seen_downstream(ctx: &TcContext, pkt: &L4Packet, hint: u32) -> bool {
    // SAFETY: reading the ifindex field of the context's sk_buff.
    let arrived_on = unsafe { (*ctx.skb.skb).ifindex };
    let out = if hint != 0 {
        hint
    } else {
        output_interface(ctx, pkt, false)
    };
    // SAFETY: the value is only read during this program run.
    out != 0 && out != arrived_on && unsafe { ATTACHED.get(out) }.is_some()
}

/// The interface the kernel's routing table (`bpf_fib_lookup`, the lookup
/// the stack does next) sends `pkt` out of when it arrives on this
/// packet's interface from the pod, or, with `reply`, a packet of the
/// opposite direction (addresses and ports swapped) arriving there. 0 when
/// the lookup gives no output interface (no route, forwarding disabled, a
/// packet for this host).
#[inline(never)]
pub(crate) fn output_interface(ctx: &TcContext, pkt: &L4Packet, reply: bool) -> u32 {
    let Some(params) = FIB_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: a per-CPU array slot, exclusively ours for this program run;
    // every field the lookup reads is written below.
    let params = unsafe { &mut *params };
    // SAFETY: zeroed bytes are a valid value of this plain C struct.
    *params = unsafe { core::mem::zeroed() };
    let (from, to, sport, dport) = if reply {
        (&pkt.daddr, &pkt.saddr, pkt.dport, pkt.sport)
    } else {
        (&pkt.saddr, &pkt.daddr, pkt.sport, pkt.dport)
    };
    params.l4_protocol = pkt.proto;
    params.sport = sport.to_be();
    params.dport = dport.to_be();
    // SAFETY: reading the ifindex field of the context's sk_buff.
    params.ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // The union fields are plain integers: writing them is safe; the
    // addresses are copied in network byte order as they came.
    if pkt.family == family::IPV4 {
        params.family = AF_INET;
        params.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(word(from, 0));
        params.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(word(to, 0));
    } else {
        params.family = AF_INET6;
        params.__bindgen_anon_3.ipv6_src = words(from);
        params.__bindgen_anon_4.ipv6_dst = words(to);
    }
    // SAFETY: `params` points at a whole `bpf_fib_lookup` in map memory and
    // its size is passed with it; flags 0 is the routing table's ordinary
    // lookup (policy rules included) for a packet received on `ifindex`.
    let ret = unsafe {
        bpf_fib_lookup(
            ctx.skb.skb.cast(),
            params,
            core::mem::size_of::<FibParams>() as i32,
            0,
        )
    };
    // The output interface is known on success, and also when only the
    // neighbour entry is missing or the packet is larger than its MTU
    // (found after the route).
    let routed = ret == i64::from(BPF_FIB_LKUP_RET_SUCCESS)
        || ret == i64::from(BPF_FIB_LKUP_RET_NO_NEIGH)
        || ret == i64::from(BPF_FIB_LKUP_RET_FRAG_NEEDED);
    if routed { params.ifindex } else { 0 }
}

/// Bytes `4 * i .. 4 * i + 4` of an address.
#[inline(always)]
fn word(addr: &[u8; 16], i: usize) -> [u8; 4] {
    let at = (i & 3) * 4;
    [addr[at], addr[at + 1], addr[at + 2], addr[at + 3]]
}

/// An IPv6 address as the lookup's four words, in network byte order.
#[inline(always)]
fn words(addr: &[u8; 16]) -> [u32; 4] {
    [
        u32::from_ne_bytes(word(addr, 0)),
        u32::from_ne_bytes(word(addr, 1)),
        u32::from_ne_bytes(word(addr, 2)),
        u32::from_ne_bytes(word(addr, 3)),
    ]
}
