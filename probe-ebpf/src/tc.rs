//! TC classifiers on the host side of a pod's veth.
//!
//! Hook points (kernel floor 5.8 for ring buffers; tcx links from 6.6, clsact
//! before that):
//! - `holonet_tc_ingress`: TC ingress of the host-side veth, i.e. the pod's
//!   egress (packets the pod sends);
//! - `holonet_tc_egress`: TC egress of the host-side veth, i.e. the pod's
//!   ingress (packets delivered to the pod).
//!
//! Both only observe for now: they emit a `FlowEvent` for every TCP packet
//! with SYN, FIN or RST set and for every TCP segment starting with an
//! HTTP/1.x request method, and always let the packet continue.
#![no_std]
#![no_main]

mod headers;

use aya_ebpf::{
    bindings::{__sk_buff, TC_ACT_PIPE},
    helpers::{bpf_ktime_get_ns, bpf_skb_load_bytes},
    macros::{classifier, map},
    maps::{PerCpuArray, RingBuf},
    programs::TcContext,
};
use aya_log_ebpf::debug;
use headers::{IPPROTO_TCP, Parsed, TcpPacket};
use probe_common::event::{
    EVENTS_RING_BYTES, FlowEvent, PAYLOAD_CAPACITY, counter, hook, kind, tcp_flags, verdict,
};

#[map(name = "EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_RING_BYTES, 0);

#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

#[classifier]
fn holonet_tc_ingress(ctx: TcContext) -> i32 {
    observe(&ctx, hook::TC_INGRESS);
    TC_ACT_PIPE
}

#[classifier]
fn holonet_tc_egress(ctx: TcContext) -> i32 {
    observe(&ctx, hook::TC_EGRESS);
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

#[inline(always)]
fn observe(ctx: &TcContext, at_hook: u8) {
    count(counter::PACKETS);
    match headers::parse(ctx) {
        Ok(Parsed::Tcp(tcp)) => {
            let http = tcp.payload_len > 0 && starts_with_http_method(ctx, &tcp);
            let interesting = tcp.flags & (tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST) != 0;
            if http || interesting {
                emit(ctx, at_hook, &tcp, http);
            }
        }
        Ok(Parsed::Skip) => {}
        Err(_) => {
            count(counter::PARSE_ERRORS);
            debug!(ctx, "holonet: unparsable packet, len {}", ctx.len());
        }
    }
}

/// The shortest request line we recognise: `GET / HTTP/1.1\r\n`.
const MIN_REQUEST_LINE: usize = 16;

/// Does the payload start with an HTTP/1.x method followed by a space?
#[inline(always)]
fn starts_with_http_method(ctx: &TcContext, tcp: &TcpPacket) -> bool {
    if tcp.payload_len < MIN_REQUEST_LINE {
        return false;
    }
    let Ok(head) = ctx.load::<[u8; 8]>(tcp.payload_offset) else {
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

#[inline(always)]
fn emit(ctx: &TcContext, at_hook: u8, tcp: &TcpPacket, http: bool) {
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
        (*event).saddr = tcp.saddr;
        (*event).daddr = tcp.daddr;
        (*event).ifindex = (*ctx.skb.skb).ifindex;
        (*event).sport = tcp.sport;
        (*event).dport = tcp.dport;
        (*event).tcp_seq = tcp.seq;
        (*event).tcp_ack = tcp.ack;
        (*event).kind = if http {
            kind::HTTP_REQUEST
        } else {
            kind::TCP_FLAGS
        };
        (*event).family = tcp.family;
        (*event).l4_proto = IPPROTO_TCP;
        (*event).tcp_flags = tcp.flags;
        (*event).hook = at_hook;
        (*event).verdict = verdict::FORWARDED;
        (*event).payload_len = 0;
        (*event)._reserved = [0; 64];
    }
    if http {
        let wanted = if tcp.payload_len < PAYLOAD_CAPACITY {
            tcp.payload_len
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
                tcp.payload_offset as u32,
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
