//! Process attribution: the records the socket probe (`holonet-proc`) writes
//! into the `PROC_EVENTS` ring buffer, and the kernel structure layout the
//! agent hands it.
//!
//! The probe watches TCP sockets where the kernel runs in the context of the
//! process that owns them, so `bpf_get_current_pid_tgid` names that process:
//! - connect: the client socket as its SYN leaves (kprobe `tcp_connect`, or
//!   the raw tracepoint `net_dev_queue` for a socket in SYN_SENT);
//! - listen: a socket starting to listen (kprobe `inet_csk_listen_start`, or
//!   the raw tracepoint `inet_sock_set_state` to TCP_LISTEN), and its end;
//! - receive: a process reading from a connected socket (kprobe or raw
//!   tracepoint `tcp_rcv_space_adjust`), once per socket and process.
//!
//! Each record carries the socket's own 4-tuple (`saddr`/`sport` local,
//! `daddr`/`dport` remote), so user space matches it to flows by tuple.
//! Byte order follows [`crate::event`]: integers in host order, addresses as
//! raw bytes.

/// Size in bytes of a [`ProcessEvent`] record.
pub const PROCESS_EVENT_SIZE: usize = 64;

/// Byte size of the `PROC_EVENTS` ring buffer.
pub const PROC_EVENTS_RING_BYTES: u32 = 1 << 20;

/// Bytes of the command name (the kernel's `TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;

/// What a [`ProcessEvent`] reports; the value of [`ProcessEvent::kind`].
pub mod proc_kind {
    /// A client socket sent its SYN: the process connecting.
    pub const CONNECT: u8 = 1;
    /// A socket started listening: the process serving `saddr:sport`
    /// (`saddr` all zero for a wildcard bind).
    pub const LISTEN: u8 = 2;
    /// A listening socket closed.
    pub const UNLISTEN: u8 = 3;
    /// A process read from a connected socket.
    pub const RECEIVE: u8 = 4;
}

/// One socket seen in its owner's context.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessEvent {
    /// One of [`proc_kind`].
    pub kind: u8,
    /// One of [`crate::event::family`].
    pub family: u8,
    /// Explicit padding.
    pub _pad: [u8; 2],
    /// Local port.
    pub sport: u16,
    /// Remote port (0 for listeners).
    pub dport: u16,
    /// Process id (the thread group id).
    pub tgid: u32,
    /// Thread id.
    pub tid: u32,
    /// Local address (IPv4 in the first 4 bytes).
    pub saddr: [u8; 16],
    /// Remote address (zero for listeners).
    pub daddr: [u8; 16],
    /// The thread's command name, NUL-padded.
    pub comm: [u8; COMM_LEN],
}

const _: () = assert!(core::mem::size_of::<ProcessEvent>() == PROCESS_EVENT_SIZE);

/// Why a ring-buffer item is not a [`ProcessEvent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrongProcessEventSize {
    /// Bytes received.
    pub actual: usize,
}

impl core::fmt::Display for WrongProcessEventSize {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "process event has {} bytes, expected {PROCESS_EVENT_SIZE} (probe and agent built from different sources?)",
            self.actual
        )
    }
}

impl core::error::Error for WrongProcessEventSize {}

impl ProcessEvent {
    /// An all-zero record.
    pub const fn zeroed() -> Self {
        Self {
            kind: 0,
            family: 0,
            _pad: [0; 2],
            sport: 0,
            dport: 0,
            tgid: 0,
            tid: 0,
            saddr: [0; 16],
            daddr: [0; 16],
            comm: [0; COMM_LEN],
        }
    }

    /// Decodes a ring-buffer item field by field, checking its size.
    pub fn decode(bytes: &[u8]) -> Result<Self, WrongProcessEventSize> {
        let Ok(bytes) = <&[u8; PROCESS_EVENT_SIZE]>::try_from(bytes) else {
            return Err(WrongProcessEventSize {
                actual: bytes.len(),
            });
        };
        let u16_at = |at: usize| u16::from_ne_bytes([bytes[at], bytes[at + 1]]);
        let u32_at = |at: usize| {
            u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let mut event = Self::zeroed();
        event.kind = bytes[0];
        event.family = bytes[1];
        event.sport = u16_at(4);
        event.dport = u16_at(6);
        event.tgid = u32_at(8);
        event.tid = u32_at(12);
        event.saddr.copy_from_slice(&bytes[16..32]);
        event.daddr.copy_from_slice(&bytes[32..48]);
        event.comm.copy_from_slice(&bytes[48..64]);
        Ok(event)
    }

    /// The record as the kernel lays it out (tests, replay tools).
    pub fn encode(&self) -> [u8; PROCESS_EVENT_SIZE] {
        let mut out = [0u8; PROCESS_EVENT_SIZE];
        out[0] = self.kind;
        out[1] = self.family;
        out[4..6].copy_from_slice(&self.sport.to_ne_bytes());
        out[6..8].copy_from_slice(&self.dport.to_ne_bytes());
        out[8..12].copy_from_slice(&self.tgid.to_ne_bytes());
        out[12..16].copy_from_slice(&self.tid.to_ne_bytes());
        out[16..32].copy_from_slice(&self.saddr);
        out[32..48].copy_from_slice(&self.daddr);
        out[48..64].copy_from_slice(&self.comm);
        out
    }
}

/// Byte offsets into the running kernel's `struct sock` and `struct
/// sk_buff`, read by the agent from the kernel's BTF and stored in slot 0 of
/// the `SOCK_LAYOUT` array. The probe reads nothing while
/// [`SockLayout::ready`] is 0, so a kernel without BTF yields no events
/// rather than wrong ones.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockLayout {
    /// Non-zero once the agent filled the offsets.
    pub ready: u32,
    /// `sock.__sk_common.skc_daddr` (remote IPv4 address).
    pub daddr: u32,
    /// `skc_rcv_saddr` (local IPv4 address).
    pub rcv_saddr: u32,
    /// `skc_dport` (remote port, network order).
    pub dport: u32,
    /// `skc_num` (local port, host order).
    pub num: u32,
    /// `skc_family` (`unsigned short`).
    pub family: u32,
    /// `skc_state` (`unsigned char`).
    pub state: u32,
    /// `skc_v6_daddr` (remote IPv6 address).
    pub v6_daddr: u32,
    /// `skc_v6_rcv_saddr` (local IPv6 address).
    pub v6_rcv_saddr: u32,
    /// `sk_buff.sk` (the owning socket of a packet being sent).
    pub skb_sk: u32,
}

const _: () = assert!(core::mem::size_of::<SockLayout>() == 40);

#[cfg(feature = "user")]
// SAFETY: `SockLayout` is `repr(C)` and made only of `u32`s (no padding, as
// its size shows), so every bit pattern is valid.
unsafe impl aya::Pod for SockLayout {}

/// Slots of the per-CPU `PROC_COUNTERS` array (each a `u64`).
pub mod proc_counter {
    /// Records written to `PROC_EVENTS`.
    pub const SENT: u32 = 0;
    /// Records lost because `PROC_EVENTS` was full.
    pub const LOST: u32 = 1;
    /// Sockets whose fields could not be read.
    pub const READ_FAILED: u32 = 2;
    /// Number of slots.
    pub const COUNT: u32 = 3;
}

/// Kernel constants the probe compares against.
pub mod kernel {
    /// `AF_INET`.
    pub const AF_INET: u16 = 2;
    /// `AF_INET6`.
    pub const AF_INET6: u16 = 10;
    /// `TCP_SYN_SENT`.
    pub const TCP_SYN_SENT: u8 = 2;
    /// `TCP_CLOSE`.
    pub const TCP_CLOSE: u8 = 7;
    /// `TCP_LISTEN`.
    pub const TCP_LISTEN: u8 = 10;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_is_identity() {
        let mut e = ProcessEvent::zeroed();
        e.kind = proc_kind::RECEIVE;
        e.family = crate::event::family::IPV6;
        e.sport = 52773;
        e.dport = 40_000;
        e.tgid = 4321;
        e.tid = 4322;
        e.saddr[15] = 1;
        e.daddr[0] = 0xfd;
        e.comm[..4].copy_from_slice(b"curl");
        assert_eq!(ProcessEvent::decode(&e.encode()), Ok(e));
    }

    #[test]
    fn wrong_sizes_are_refused() {
        assert_eq!(
            ProcessEvent::decode(&[0; 63]),
            Err(WrongProcessEventSize { actual: 63 })
        );
        assert!(ProcessEvent::decode(&[0; 65]).is_err());
    }
}
