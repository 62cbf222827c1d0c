//! L2-L4 header parsing for TC programs.
//!
//! TCP and UDP are parsed; other protocols are skipped.
//!
//! Every read is bounds-checked (see [`Bytes::load`]): headers in the linear
//! part of the buffer are read in place, anything else goes through
//! `bpf_skb_load_bytes`, which fails instead of reading past the end of the
//! packet. A truncated or malformed packet becomes a `ParseError`, never an
//! out-of-bounds access. Lengths taken from headers (IHL, IPv6 extension
//! lengths, TCP data offset) are checked against their minimum before they
//! move the cursor.

use aya_ebpf::programs::TcContext;
use probe_common::event::family;

const ETH_HDR_LEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const IPV6_HDR_LEN: usize = 40;
const TCP_MIN_HDR_LEN: usize = 20;

/// IP protocol number of TCP.
pub(crate) const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub(crate) const IPPROTO_UDP: u8 = 17;
const UDP_HDR_LEN: usize = 8;

/// IPv6 extension headers we step over, bounded so the verifier sees a finite loop.
const MAX_IPV6_EXT_HEADERS: usize = 4;
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DEST_OPTS: u8 = 60;

/// The packet ended early or a header carried an impossible length.
pub(crate) struct ParseError;

/// What the parser found; `Skip` means "not something this probe looks at"
/// (another EtherType or protocol, a non-first fragment), which is not an error.
pub(crate) enum Parsed {
    Skip,
    /// A later IP fragment: no L4 header, so no connection to tie it to.
    Fragment,
    L4(L4Packet),
}

/// The fields of a TCP or UDP packet the probe reports and decides on.
pub(crate) struct L4Packet {
    /// `IPPROTO_TCP` or `IPPROTO_UDP`.
    pub(crate) proto: u8,
    pub(crate) family: u8,
    pub(crate) saddr: [u8; 16],
    pub(crate) daddr: [u8; 16],
    pub(crate) sport: u16,
    pub(crate) dport: u16,
    pub(crate) seq: u32,
    pub(crate) ack: u32,
    pub(crate) flags: u8,
    /// Offset of the first payload byte from the start of the packet.
    pub(crate) payload_offset: usize,
    /// Payload bytes in this packet (0 for a bare ACK), as the IP header
    /// counts them (bytes past the IP length are not part of the packet).
    pub(crate) payload_len: usize,
    /// The first fragment of a fragmented IP packet: the payload continues
    /// in later fragments the probe cannot tie to this one.
    pub(crate) first_fragment: bool,
}

/// The packet's bytes as the parser reads them.
///
/// Headers normally sit in the linear part of the buffer (`data` to
/// `data_end`), where a read is a plain load once its end is checked against
/// `data_end`; a helper call per field (`bpf_skb_load_bytes`) cost about half
/// of the parser's time. Bytes outside it (a header that runs past the
/// linear part into paged data) are copied by the helper, as before.
struct Bytes<'a> {
    ctx: &'a TcContext,
    data: usize,
    data_end: usize,
}

impl<'a> Bytes<'a> {
    #[inline(always)]
    fn of(ctx: &'a TcContext) -> Self {
        Self {
            ctx,
            data: ctx.data(),
            data_end: ctx.data_end(),
        }
    }

    /// The `T` at `offset` bytes into the packet.
    #[inline(always)]
    fn load<T: Copy>(&self, offset: usize) -> Result<T, ParseError> {
        let start = self.data + offset;
        if start + core::mem::size_of::<T>() <= self.data_end {
            // SAFETY: the bytes lie between the packet's `data` and
            // `data_end`, which the verifier checks from this comparison;
            // `read_unaligned` makes no alignment assumption.
            Ok(unsafe { (start as *const T).read_unaligned() })
        } else {
            self.ctx.load::<T>(offset).map_err(|_| ParseError)
        }
    }

    #[inline(always)]
    fn be16(&self, offset: usize) -> Result<u16, ParseError> {
        Ok(u16::from_be(self.load::<u16>(offset)?))
    }

    #[inline(always)]
    fn be32(&self, offset: usize) -> Result<u32, ParseError> {
        Ok(u32::from_be(self.load::<u32>(offset)?))
    }
}

/// [`parse`] result codes of [`parse_into`].
pub(crate) const PARSED_L4: i32 = 0;
pub(crate) const PARSED_SKIP: i32 = 1;
pub(crate) const PARSED_FRAGMENT: i32 = 2;
pub(crate) const PARSED_MALFORMED: i32 = -1;

/// Parses the packet into `out` (a per-CPU map slot) and says what it
/// found (`PARSED_*`; `out` is written only for [`PARSED_L4`]).
///
/// Not inlined, and its result left in map memory on purpose: the verifier
/// then checks the rest of a program once, with unknown header values,
/// instead of once for every path through the header parser (each IP
/// header length, each IPv6 extension chain).
#[inline(never)]
pub(crate) fn parse_into(ctx: &TcContext, out: *mut L4Packet) -> i32 {
    match parse(ctx) {
        Ok(Parsed::L4(pkt)) => {
            // SAFETY: `out` is a per-CPU map slot of the right type, ours for
            // this program run.
            unsafe { core::ptr::write_volatile(out, pkt) };
            PARSED_L4
        }
        Ok(Parsed::Skip) => PARSED_SKIP,
        Ok(Parsed::Fragment) => PARSED_FRAGMENT,
        Err(_) => PARSED_MALFORMED,
    }
}

/// Parses Ethernet, IPv4 or IPv6 and TCP headers.
#[inline(always)]
fn parse(ctx: &TcContext) -> Result<Parsed, ParseError> {
    let bytes = Bytes::of(ctx);
    let ether_type = bytes.be16(12)?;
    let l3 = ETH_HDR_LEN;
    let mut first_fragment = false;
    // Where the IP packet ends, from its header.
    let mut ip_end = usize::MAX;
    let (fam, saddr, daddr, proto, l4) = match ether_type {
        ETH_P_IP => {
            let version_ihl: u8 = bytes.load(l3)?;
            if version_ihl >> 4 != 4 {
                return Err(ParseError);
            }
            let ihl = usize::from(version_ihl & 0x0f) * 4;
            if ihl < 20 {
                return Err(ParseError);
            }
            // More-fragments flag and offset: only the first fragment carries
            // the L4 header; later fragments are not parsed as TCP.
            let frag = bytes.be16(l3 + 6)?;
            if frag & 0x1fff != 0 {
                return Ok(Parsed::Fragment);
            }
            first_fragment = frag & 0x2000 != 0;
            let total = usize::from(bytes.be16(l3 + 2)?);
            if total < ihl {
                return Err(ParseError);
            }
            // TSO super-packets may carry 0 (BIG TCP): trust the buffer.
            ip_end = if total == 0 { usize::MAX } else { l3 + total };
            let proto: u8 = bytes.load(l3 + 9)?;
            let mut saddr = [0u8; 16];
            let mut daddr = [0u8; 16];
            let s: [u8; 4] = bytes.load(l3 + 12)?;
            let d: [u8; 4] = bytes.load(l3 + 16)?;
            saddr[..4].copy_from_slice(&s);
            daddr[..4].copy_from_slice(&d);
            (family::IPV4, saddr, daddr, proto, l3 + ihl)
        }
        ETH_P_IPV6 => {
            let version: u8 = bytes.load(l3)?;
            if version >> 4 != 6 {
                return Err(ParseError);
            }
            let payload = usize::from(bytes.be16(l3 + 4)?);
            if payload != 0 {
                ip_end = l3 + IPV6_HDR_LEN + payload;
            }
            let mut next: u8 = bytes.load(l3 + 6)?;
            let saddr: [u8; 16] = bytes.load(l3 + 8)?;
            let daddr: [u8; 16] = bytes.load(l3 + 24)?;
            let mut off = l3 + IPV6_HDR_LEN;
            for _ in 0..MAX_IPV6_EXT_HEADERS {
                match next {
                    IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => {
                        let hdr: [u8; 2] = bytes.load(off)?;
                        next = hdr[0];
                        off += (usize::from(hdr[1]) + 1) * 8;
                    }
                    IPV6_FRAGMENT => {
                        let hdr: [u8; 4] = bytes.load(off)?;
                        next = hdr[0];
                        let frag = u16::from_be_bytes([hdr[2], hdr[3]]);
                        if frag & 0xfff8 != 0 {
                            return Ok(Parsed::Fragment);
                        }
                        first_fragment = frag & 1 != 0;
                        off += 8;
                    }
                    _ => break,
                }
            }
            (family::IPV6, saddr, daddr, next, off)
        }
        _ => return Ok(Parsed::Skip),
    };
    if proto == IPPROTO_UDP {
        let sport = bytes.be16(l4)?;
        let dport = bytes.be16(l4 + 2)?;
        let payload_offset = l4 + UDP_HDR_LEN;
        let packet_len = packet_end(ctx, ip_end)?;
        if payload_offset > packet_len {
            return Err(ParseError);
        }
        return Ok(Parsed::L4(L4Packet {
            proto,
            family: fam,
            saddr,
            daddr,
            sport,
            dport,
            seq: 0,
            ack: 0,
            flags: 0,
            payload_offset,
            payload_len: packet_len - payload_offset,
            first_fragment,
        }));
    }
    if proto != IPPROTO_TCP {
        return Ok(Parsed::Skip);
    }
    let sport = bytes.be16(l4)?;
    let dport = bytes.be16(l4 + 2)?;
    let seq = bytes.be32(l4 + 4)?;
    let ack = bytes.be32(l4 + 8)?;
    let offset_flags: [u8; 2] = bytes.load(l4 + 12)?;
    let tcp_len = usize::from(offset_flags[0] >> 4) * 4;
    if tcp_len < TCP_MIN_HDR_LEN {
        return Err(ParseError);
    }
    let payload_offset = l4 + tcp_len;
    let packet_len = packet_end(ctx, ip_end)?;
    if payload_offset > packet_len {
        return Err(ParseError);
    }
    Ok(Parsed::L4(L4Packet {
        proto,
        family: fam,
        saddr,
        daddr,
        sport,
        dport,
        seq,
        ack,
        flags: offset_flags[1],
        payload_offset,
        payload_len: packet_len - payload_offset,
        first_fragment,
    }))
}

/// Where the packet's bytes end: at the end of the IP packet its header
/// describes (`ip_end`, `usize::MAX` when it gives none); a header claiming
/// more bytes than the buffer holds is malformed.
#[inline(always)]
fn packet_end(ctx: &TcContext, ip_end: usize) -> Result<usize, ParseError> {
    let buffer_end = ctx.len() as usize;
    if ip_end == usize::MAX {
        return Ok(buffer_end);
    }
    if ip_end > buffer_end {
        return Err(ParseError);
    }
    Ok(ip_end)
}
