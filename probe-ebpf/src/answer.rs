//! Packets the probe writes itself: the `403 Forbidden` answer a client gets
//! for a request denied by L7 rules, and the RST that closes the server's
//! side of that connection. Both are built in place of the denied segment,
//! over IPv4 or IPv6.

use aya_ebpf::{
    bindings::TC_ACT_SHOT,
    helpers::{bpf_redirect, bpf_skb_change_tail, bpf_skb_store_bytes},
    programs::TcContext,
};
use probe_common::event::{family, hook, tcp_flags};

use crate::headers::{IPPROTO_TCP, L4Packet};

/// What a client gets for a request denied by L7 rules, as Envoy answers
/// for Cilium (its length is even, so the checksum runs over whole words).
const FORBIDDEN: &[u8; FORBIDDEN_LEN] = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 13\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nAccess denied";
const FORBIDDEN_LEN: usize = 104;
/// Ethernet + IPv4 + TCP headers (no options) + the response.
const FORBIDDEN_FRAME: usize = 14 + 20 + 20 + FORBIDDEN_LEN;
/// The same over IPv6 (a 40-byte header without extension headers).
const FORBIDDEN_FRAME6: usize = 14 + 40 + 20 + FORBIDDEN_LEN;
const ETH_P_IP: [u8; 2] = [0x08, 0x00];
const ETH_P_IPV6: [u8; 2] = [0x86, 0xdd];
const _: () = assert!(FORBIDDEN_LEN.is_multiple_of(2));

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

/// An Ethernet header to `dst` from `src` for an IPv4 or IPv6 packet.
#[inline(always)]
fn eth_header(dst: &[u8; 6], src: &[u8; 6], ipv6: bool) -> [u8; 14] {
    let ether_type = if ipv6 { ETH_P_IPV6 } else { ETH_P_IP };
    [
        dst[0],
        dst[1],
        dst[2],
        dst[3],
        dst[4],
        dst[5],
        src[0],
        src[1],
        src[2],
        src[3],
        src[4],
        src[5],
        ether_type[0],
        ether_type[1],
    ]
}

/// An IPv6 header without extension headers, from `src` to `dst`, for a
/// TCP segment of `payload_len` bytes.
#[inline(always)]
fn ipv6_header(src: &[u8; 16], dst: &[u8; 16], payload_len: u16) -> [u8; 40] {
    let mut ip = [0u8; 40];
    ip[0] = 0x60;
    ip[4] = (payload_len >> 8) as u8;
    ip[5] = payload_len as u8;
    ip[6] = IPPROTO_TCP;
    ip[7] = 64;
    let mut i = 0;
    while i < 16 {
        ip[8 + i] = src[i];
        ip[24 + i] = dst[i];
        i += 1;
    }
    ip
}

/// The word sum of the TCP pseudo-header for a segment of `tcp_len` bytes
/// from `src` to `dst` (IPv4 addresses in the first four bytes). IPv6's
/// 32-bit length and next-header fields add up to the same words.
#[inline(always)]
fn pseudo_sum(ipv6: bool, src: &[u8; 16], dst: &[u8; 16], tcp_len: u32) -> u32 {
    let addrs = if ipv6 {
        header_sum(src) + header_sum(dst)
    } else {
        header_sum(&[
            src[0], src[1], src[2], src[3], dst[0], dst[1], dst[2], dst[3],
        ])
    };
    addrs + u32::from(IPPROTO_TCP) + tcp_len
}

/// A TCP header without options; `pseudo` is the pseudo-header's word sum
/// (see [`pseudo_sum`]) and `body_sum` the word sum of the payload, so the
/// checksum covers both.
#[inline(always)]
fn tcp_header(
    pseudo: u32,
    ports: (u16, u16),
    seq_ack: (u32, u32),
    flags: u8,
    body_sum: u32,
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
    let sum = csum_fold(pseudo + header_sum(&tcp) + body_sum);
    tcp[16] = (sum >> 8) as u8;
    tcp[17] = sum as u8;
    tcp
}

/// Rewrites the denied request segment into `HTTP/1.1 403 Forbidden` with
/// FIN set, from the server's address back to the client, and redirects it
/// out of this veth into the client pod. A helper failure drops the
/// segment.
#[inline(never)]
pub(crate) fn answer_forbidden(ctx: &TcContext, pkt: &L4Packet, at_hook: u8) -> i32 {
    let ipv6 = pkt.family == family::IPV6;
    if !ipv6 && pkt.family != family::IPV4 {
        return TC_ACT_SHOT;
    }
    let (Ok(dst_mac), Ok(src_mac)) = (ctx.load::<[u8; 6]>(0), ctx.load::<[u8; 6]>(6)) else {
        return TC_ACT_SHOT;
    };
    let tcp_len = (20 + FORBIDDEN_LEN) as u32;
    let tcp = tcp_header(
        pseudo_sum(ipv6, &pkt.daddr, &pkt.saddr, tcp_len),
        (pkt.dport, pkt.sport),
        (pkt.ack, pkt.seq.wrapping_add(pkt.payload_len as u32)),
        tcp_flags::FIN | tcp_flags::PSH | tcp_flags::ACK,
        FORBIDDEN_SUM,
    );
    let eth = eth_header(&src_mac, &dst_mac, ipv6);
    let skb = ctx.skb.skb;
    // SAFETY: helpers on this program's own sk_buff; each pointer and length
    // describes a local array or the constant response.
    unsafe {
        let written = if ipv6 {
            let ip = ipv6_header(&pkt.daddr, &pkt.saddr, tcp_len as u16);
            bpf_skb_change_tail(skb, FORBIDDEN_FRAME6 as u32, 0) == 0
                && bpf_skb_store_bytes(skb, 14, ip.as_ptr().cast(), 40, 0) == 0
                && bpf_skb_store_bytes(skb, 54, tcp.as_ptr().cast(), 20, 0) == 0
                && bpf_skb_store_bytes(skb, 74, FORBIDDEN.as_ptr().cast(), FORBIDDEN_LEN as u32, 0)
                    == 0
        } else {
            let ip = ipv4_header(&pkt.daddr, &pkt.saddr, (FORBIDDEN_FRAME - 14) as u16);
            bpf_skb_change_tail(skb, FORBIDDEN_FRAME as u32, 0) == 0
                && bpf_skb_store_bytes(skb, 14, ip.as_ptr().cast(), 20, 0) == 0
                && bpf_skb_store_bytes(skb, 34, tcp.as_ptr().cast(), 20, 0) == 0
                && bpf_skb_store_bytes(skb, 54, FORBIDDEN.as_ptr().cast(), FORBIDDEN_LEN as u32, 0)
                    == 0
        };
        if !written || bpf_skb_store_bytes(skb, 0, eth.as_ptr().cast(), 14, 0) != 0 {
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
pub(crate) fn redirect_flags(at_hook: u8, to_client: bool) -> u64 {
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
pub(crate) fn reset_server(ctx: &TcContext, pkt: &L4Packet, at_hook: u8) {
    const RST_FRAME: usize = 14 + 20 + 20;
    const RST_FRAME6: usize = 14 + 40 + 20;
    let ipv6 = pkt.family == family::IPV6;
    if !ipv6 && pkt.family != family::IPV4 {
        return;
    }
    let (Ok(dst_mac), Ok(src_mac)) = (ctx.load::<[u8; 6]>(0), ctx.load::<[u8; 6]>(6)) else {
        return;
    };
    let tcp = tcp_header(
        pseudo_sum(ipv6, &pkt.saddr, &pkt.daddr, 20),
        (pkt.sport, pkt.dport),
        (pkt.seq, pkt.ack),
        tcp_flags::RST | tcp_flags::ACK,
        0,
    );
    let eth = eth_header(&dst_mac, &src_mac, ipv6);
    let skb = ctx.skb.skb;
    // SAFETY: helpers on this program's own sk_buff with local arrays.
    unsafe {
        let written = if ipv6 {
            let ip = ipv6_header(&pkt.saddr, &pkt.daddr, 20);
            bpf_skb_change_tail(skb, RST_FRAME6 as u32, 0) == 0
                && bpf_skb_store_bytes(skb, 14, ip.as_ptr().cast(), 40, 0) == 0
                && bpf_skb_store_bytes(skb, 54, tcp.as_ptr().cast(), 20, 0) == 0
        } else {
            let ip = ipv4_header(&pkt.saddr, &pkt.daddr, (RST_FRAME - 14) as u16);
            bpf_skb_change_tail(skb, RST_FRAME as u32, 0) == 0
                && bpf_skb_store_bytes(skb, 14, ip.as_ptr().cast(), 20, 0) == 0
                && bpf_skb_store_bytes(skb, 34, tcp.as_ptr().cast(), 20, 0) == 0
        };
        if !written || bpf_skb_store_bytes(skb, 0, eth.as_ptr().cast(), 14, 0) != 0 {
            return;
        }
        let _ = ctx.clone_redirect((*skb).ifindex, redirect_flags(at_hook, false));
    }
}
