//! DNS queries, judged from a copy of the datagram: one question, its name
//! walked through the rule set's table as Cilium compares names (lower
//! case, labels joined by dots, with the trailing dot), and the `REFUSED`
//! answer a denied query gets.
//!
//! Only plain queries are judged: QR clear, opcode QUERY, exactly one
//! question, labels of at most 63 bytes without compression, a name within
//! [`MAX_NAME`] bytes. Anything else is unreadable, and the caller drops it
//! (fail closed).

use aya_ebpf::{
    bindings::TC_ACT_SHOT,
    cty::c_void,
    helpers::{bpf_loop, bpf_redirect, bpf_skb_load_bytes, bpf_skb_store_bytes},
    programs::TcContext,
};
use probe_common::{
    event::family,
    l7::{L7_DFA_MAX_CLASSES, L7DfaTable},
};

use crate::{
    answer::redirect_flags,
    headers::L4Packet,
    http::{HEAD_WINDOW, LoopVars, Var, put, take},
};

/// The DNS header.
const HEADER: usize = 12;

/// Longest name (wire form) the probe reads.
const MAX_NAME: usize = 255;

/// What [`walk_query`] found.
pub(crate) const QUERY_ALLOWED: u8 = 0;
pub(crate) const QUERY_DENIED: u8 = 1;
pub(crate) const QUERY_UNREADABLE: u8 = 2;

/// What [`walk_query`] hands its per-byte step through `bpf_loop`.
#[repr(C)]
struct NameLoop {
    buf: *const [u8; HEAD_WINDOW],
    table: *const L7DfaTable,
    /// `row`: the premultiplied DFA state; `count`: bytes left in the
    /// current label (0: the next byte is a length); `out`: `u64::MAX`
    /// while walking, a `QUERY_*` code once done.
    vars: *mut LoopVars,
}

/// Judges the DNS message at the start of `buf` (`len` valid bytes)
/// against `table`: [`QUERY_ALLOWED`], [`QUERY_DENIED`] or
/// [`QUERY_UNREADABLE`].
#[inline(always)]
pub(crate) fn walk_query(
    table: *const L7DfaTable,
    buf: *const [u8; HEAD_WINDOW],
    len: usize,
    vars: *mut LoopVars,
) -> u8 {
    // SAFETY: `buf` is the per-CPU copy of the datagram, valid for this run.
    let b = unsafe { &*buf };
    if len <= HEADER + 5 {
        return QUERY_UNREADABLE;
    }
    let (flags, qd_hi, qd_lo) = (b[2], b[4], b[5]);
    // A query (QR clear), opcode QUERY, one question.
    if flags & 0xf8 != 0 || qd_hi != 0 || qd_lo != 1 {
        return QUERY_UNREADABLE;
    }
    // SAFETY: `table` is a map value, valid for this program run.
    let start = unsafe { (*table).start_state };
    put(vars, Var::Row, u64::from(start) * L7_DFA_MAX_CLASSES as u64);
    put(vars, Var::Count, 0);
    put(vars, Var::Out, u64::MAX);
    let mut state = NameLoop { buf, table, vars };
    let available = len - HEADER;
    let limit = if available < MAX_NAME + 1 {
        available
    } else {
        MAX_NAME + 1
    };
    // SAFETY: `name_step` has the callback signature `bpf_loop` expects and
    // only dereferences the pointers in `state`, which outlives the call.
    let looped = unsafe {
        bpf_loop(
            limit as u32,
            name_step as *mut c_void,
            core::ptr::addr_of_mut!(state).cast(),
            0,
        )
    };
    let outcome = take(vars, Var::Out);
    if looped < 0 || outcome > u64::from(QUERY_UNREADABLE) {
        // The name did not end within what the probe reads.
        return QUERY_UNREADABLE;
    }
    outcome as u8
}

/// Feeds one name byte to the DFA; false when the walk is dead (denied).
#[inline(always)]
fn feed(table: &L7DfaTable, row: &mut u64, byte: u8) -> bool {
    let idx = *row as usize + usize::from(table.byte_class[usize::from(byte)]);
    match table.transitions.get(idx) {
        Some(&next) if next != 0 => {
            *row = u64::from(next);
            true
        }
        _ => false,
    }
}

/// One byte of the question name: 0 to go on, 1 to stop with `outcome` set.
#[inline(never)]
unsafe extern "C" fn name_step(index: u32, ctx: *mut c_void) -> i64 {
    let state = ctx.cast::<NameLoop>();
    // SAFETY: `ctx` is the `NameLoop` on `walk_query`'s stack; the pointers
    // in it are map values valid for this program run.
    let (buf, table, vars) = unsafe { (&*(*state).buf, &*(*state).table, (*state).vars) };
    let mut row = take(vars, Var::Row);
    let left = take(vars, Var::Count);
    let stop = move |outcome: u8| {
        put(vars, Var::Out, u64::from(outcome));
        1
    };
    let Some(&b) = buf.get(HEADER + index as usize) else {
        return stop(QUERY_UNREADABLE);
    };
    if left == 0 {
        // A length byte: the root label ends the name.
        if b == 0 {
            let accept = table
                .accept
                .get(row as usize / L7_DFA_MAX_CLASSES)
                .copied()
                .unwrap_or(0);
            return stop(if accept != 0 {
                QUERY_ALLOWED
            } else {
                QUERY_DENIED
            });
        }
        if b > 63 {
            // Compression or an extended label type: not in a question.
            return stop(QUERY_UNREADABLE);
        }
        put(vars, Var::Count, u64::from(b));
        return 0;
    }
    if b == b'.' {
        // A dot inside a label would read as a label boundary.
        return stop(QUERY_UNREADABLE);
    }
    let lower = if b.is_ascii_uppercase() { b | 0x20 } else { b };
    if !feed(table, &mut row, lower) || (left == 1 && !feed(table, &mut row, b'.')) {
        return stop(QUERY_DENIED);
    }
    put(vars, Var::Row, row);
    put(vars, Var::Count, left - 1);
    0
}

/// Turns the denied query into its `REFUSED` answer in place (the whole
/// query echoed with QR set, rcode 5, no answers) and sends it back to the
/// client, over IPv4 or IPv6. A helper failure drops the query.
#[inline(never)]
pub(crate) fn answer_refused(ctx: &TcContext, pkt: &L4Packet, at_hook: u8) -> i32 {
    let ipv6 = pkt.family == family::IPV6;
    if (!ipv6 && pkt.family != family::IPV4) || pkt.payload_offset < 8 {
        return TC_ACT_SHOT;
    }
    let l4 = pkt.payload_offset - 8;
    // Zero-initialised buffers filled by the helper: older verifiers refuse
    // to read stack bytes a helper wrote into uninitialised space. `header`
    // is the DNS header from the flags on (flags, QD, AN and NS counts).
    let (mut macs, mut header, mut checksum) = ([0u8; 12], [0u8; 8], [0u8; 2]);
    let skb = ctx.skb.skb;
    // SAFETY: helper reads from this program's own sk_buff into local arrays
    // of exactly the lengths given.
    let loaded = unsafe {
        bpf_skb_load_bytes(skb as *const _, 0, macs.as_mut_ptr().cast(), 12) == 0
            && bpf_skb_load_bytes(
                skb as *const _,
                (pkt.payload_offset + 2) as u32,
                header.as_mut_ptr().cast(),
                8,
            ) == 0
            && bpf_skb_load_bytes(
                skb as *const _,
                (l4 + 6) as u32,
                checksum.as_mut_ptr().cast(),
                2,
            ) == 0
    };
    if !loaded {
        return TC_ACT_SHOT;
    }
    let eth: [u8; 12] = [
        macs[6], macs[7], macs[8], macs[9], macs[10], macs[11], macs[0], macs[1], macs[2], macs[3],
        macs[4], macs[5],
    ];
    let (sport, dport) = (pkt.sport.to_be_bytes(), pkt.dport.to_be_bytes());
    let udp: [u8; 4] = [dport[0], dport[1], sport[0], sport[1]];
    // QR set, opcode and RD kept; rcode REFUSED; no answer or authority
    // records (additional records, e.g. EDNS, are echoed).
    let dns: [u8; 2] = [(header[0] & 0x79) | 0x80, 0x05];
    let counts: [u8; 4] = [0; 4];
    // Swapping addresses and ports leaves every checksum as it was. Over
    // IPv4 the UDP checksum becomes 0 ("none"); IPv6 requires one, updated
    // for the changed DNS words (RFC 1624).
    let udp_checksum: [u8; 2] = if ipv6 {
        let word = |b: [u8; 2]| u32::from(u16::from_be_bytes(b));
        let mut sum = u32::from(!u16::from_be_bytes(checksum));
        let changes = [
            ([header[0], header[1]], dns),
            ([header[4], header[5]], [0, 0]),
            ([header[6], header[7]], [0, 0]),
        ];
        let mut i = 0;
        while i < changes.len() {
            let (old, new) = changes[i];
            sum += u32::from(!(word(old) as u16)) + word(new);
            i += 1;
        }
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        let folded = !(sum as u16);
        (if folded == 0 { 0xffff } else { folded }).to_be_bytes()
    } else {
        [0, 0]
    };
    // SAFETY: helpers on this program's own sk_buff; each pointer and
    // length describes a local array.
    unsafe {
        let addresses_swapped = if ipv6 {
            bpf_skb_store_bytes(skb, 22, pkt.daddr.as_ptr().cast(), 16, 0) == 0
                && bpf_skb_store_bytes(skb, 38, pkt.saddr.as_ptr().cast(), 16, 0) == 0
        } else {
            // Swapping the addresses leaves the IPv4 header checksum as it was.
            let ip: [u8; 8] = [
                pkt.daddr[0],
                pkt.daddr[1],
                pkt.daddr[2],
                pkt.daddr[3],
                pkt.saddr[0],
                pkt.saddr[1],
                pkt.saddr[2],
                pkt.saddr[3],
            ];
            bpf_skb_store_bytes(skb, 26, ip.as_ptr().cast(), 8, 0) == 0
        };
        if !addresses_swapped
            || bpf_skb_store_bytes(skb, 0, eth.as_ptr().cast(), 12, 0) != 0
            || bpf_skb_store_bytes(skb, l4 as u32, udp.as_ptr().cast(), 4, 0) != 0
            || bpf_skb_store_bytes(skb, (l4 + 6) as u32, udp_checksum.as_ptr().cast(), 2, 0) != 0
            || bpf_skb_store_bytes(
                skb,
                (pkt.payload_offset + 2) as u32,
                dns.as_ptr().cast(),
                2,
                0,
            ) != 0
            || bpf_skb_store_bytes(
                skb,
                (pkt.payload_offset + 6) as u32,
                counts.as_ptr().cast(),
                4,
                0,
            ) != 0
        {
            return TC_ACT_SHOT;
        }
        bpf_redirect((*skb).ifindex, redirect_flags(at_hook, true)) as i32
    }
}
