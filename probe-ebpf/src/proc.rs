//! The socket probe: which process owns each TCP socket a flow belongs to.
//!
//! Two sets of programs, of which the agent attaches one (see
//! `probe_common::process` for the records and docs/process.md for the
//! design):
//! - kprobes, where the kernel has them: `tcp_connect` (the client, in
//!   `connect()`), `inet_csk_listen_start` / `inet_csk_listen_stop` (the
//!   server's listening socket), `tcp_rcv_space_adjust` (any process
//!   reading from a socket) and `tcp_set_state` (a socket closing);
//! - raw tracepoints otherwise: `inet_sock_set_state` remembers the process
//!   that moves a socket to SYN_SENT (inside `connect()`, before the source
//!   port is chosen) and reports listeners; `net_dev_queue` reports that
//!   process with the complete 4-tuple when the socket's SYN is queued (which
//!   may happen outside the process's context, hence the remembered owner);
//!   `tcp_rcv_space_adjust` reports readers.
//!
//! Socket fields are read with `bpf_probe_read_kernel` at the offsets the
//! agent found in the kernel's BTF (`SOCK_LAYOUT`); until it stores them,
//! every program returns at once. Every read is checked: a failed read drops
//! the record and counts it.
#![no_std]
#![no_main]

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_jiffies64, bpf_probe_read_kernel,
    },
    macros::{kprobe, map, raw_tracepoint},
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
    programs::{ProbeContext, RawTracePointContext},
};
use probe_common::{
    event::family,
    process::{
        COMM_LEN, PROC_EVENTS_RING_BYTES, ProcessEvent, SockLayout, kernel, proc_counter, proc_kind,
    },
};

#[map(name = "PROC_EVENTS")]
static PROC_EVENTS: RingBuf = RingBuf::with_byte_size(PROC_EVENTS_RING_BYTES, 0);

#[map(name = "SOCK_LAYOUT")]
static SOCK_LAYOUT: Array<SockLayout> = Array::with_max_entries(1, 0);

#[map(name = "PROC_COUNTERS")]
static PROC_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(proc_counter::COUNT, 0);

/// Records already sent, so a socket read from a million times is reported
/// once per reading process (and a retransmitted SYN not at all).
#[map(name = "PROC_SEEN")]
static PROC_SEEN: LruHashMap<SeenKey, u8> = LruHashMap::with_max_entries(65_536, 0);

/// The process last reported reading from each socket: a read by the same
/// process returns after one lookup, before any socket field is read (this
/// hook runs on every `recvmsg()`). Entries go when the socket closes.
#[map(name = "PROC_READERS")]
static PROC_READERS: LruHashMap<u64, u32> = LruHashMap::with_max_entries(65_536, 0);

/// The process that put a socket into SYN_SENT, until its SYN is queued.
#[map(name = "PROC_CONNECTING")]
static PROC_CONNECTING: LruHashMap<u64, Owner> = LruHashMap::with_max_entries(16_384, 0);

/// When a socket last entered SYN_SENT, in jiffies. `net_dev_queue` runs
/// for every packet sent on the node; when no socket started connecting
/// within [`CONNECT_WINDOW_JIFFIES`] it returns after this load and a read of
/// `jiffies` (which the verifier inlines), before any socket field is read.
#[map(name = "PROC_LAST_CONNECT")]
static PROC_LAST_CONNECT: Array<u64> = Array::with_max_entries(1, 0);

/// How long after entering SYN_SENT a socket's first SYN may still be
/// queued: 5 s at the highest tick rate (HZ=1000), longer at lower ones. The
/// SYN normally leaves inside `connect()`; one waiting for its neighbour to
/// be resolved leaves within the kernel's three ARP/ND probes, one second
/// apart, or is dropped. (Later retransmissions are not needed: the first
/// SYN is the one reported.)
const CONNECT_WINDOW_JIFFIES: u64 = 5_000;

/// Who ran a socket operation.
#[repr(C)]
#[derive(Clone, Copy)]
struct Owner {
    tgid: u32,
    tid: u32,
    comm: [u8; COMM_LEN],
}

/// Identifies a record already sent: the socket, its tuple, the kind and
/// (for receives) the reading process.
#[repr(C)]
#[derive(Clone, Copy)]
struct SeenKey {
    sk: u64,
    tgid: u32,
    kind: u8,
    family: u8,
    sport: u16,
    dport: u16,
    _pad: [u8; 6],
    saddr: [u8; 16],
    daddr: [u8; 16],
}

fn count(slot: u32) {
    if let Some(value) = PROC_COUNTERS.get_ptr_mut(slot) {
        // SAFETY: a per-CPU array slot, valid for this program run and
        // touched by no other CPU.
        unsafe { *value += 1 };
    }
}

fn layout() -> Option<SockLayout> {
    let layout = *SOCK_LAYOUT.get(0)?;
    (layout.ready != 0).then_some(layout)
}

/// Reads a `T` at `base + offset` of kernel memory.
fn read<T>(base: u64, offset: u32) -> Option<T> {
    let addr = base.checked_add(u64::from(offset))?;
    // SAFETY: bpf_probe_read_kernel copies through the kernel's fault-safe
    // path into a local; a bad address yields an error, never a fault.
    unsafe { bpf_probe_read_kernel(addr as *const T).ok() }
}

fn current_owner() -> Owner {
    let id = bpf_get_current_pid_tgid();
    Owner {
        tgid: (id >> 32) as u32,
        tid: id as u32,
        comm: bpf_get_current_comm().unwrap_or([0; COMM_LEN]),
    }
}

/// The socket's family, addresses and ports, or `None` when it is neither
/// IPv4 nor IPv6 or a read failed.
fn socket_tuple(sk: u64, layout: &SockLayout, kind: u8) -> Option<ProcessEvent> {
    let mut event = ProcessEvent::zeroed();
    event.kind = kind;
    let fam: u16 = read(sk, layout.family)?;
    if fam == kernel::AF_INET {
        event.family = family::IPV4;
        let local: [u8; 4] = read(sk, layout.rcv_saddr)?;
        let remote: [u8; 4] = read(sk, layout.daddr)?;
        event.saddr[0] = local[0];
        event.saddr[1] = local[1];
        event.saddr[2] = local[2];
        event.saddr[3] = local[3];
        event.daddr[0] = remote[0];
        event.daddr[1] = remote[1];
        event.daddr[2] = remote[2];
        event.daddr[3] = remote[3];
    } else if fam == kernel::AF_INET6 {
        event.family = family::IPV6;
        event.saddr = read(sk, layout.v6_rcv_saddr)?;
        event.daddr = read(sk, layout.v6_daddr)?;
    } else {
        return None;
    }
    event.sport = read(sk, layout.num)?;
    event.dport = u16::from_be(read(sk, layout.dport)?);
    Some(event)
}

/// Sends `event` for socket `sk` as run by `owner`, unless it was sent
/// already (receives are remembered per reading process, everything else
/// per socket).
fn report(sk: u64, mut event: ProcessEvent, owner: &Owner, remember: bool) {
    event.tgid = owner.tgid;
    event.tid = owner.tid;
    event.comm = owner.comm;
    if remember {
        let key = SeenKey {
            sk,
            tgid: if event.kind == proc_kind::RECEIVE {
                owner.tgid
            } else {
                0
            },
            kind: event.kind,
            family: event.family,
            sport: event.sport,
            dport: event.dport,
            _pad: [0; 6],
            saddr: event.saddr,
            daddr: event.daddr,
        };
        if PROC_SEEN.get_ptr(key).is_some() {
            return;
        }
        // Failing to remember only means a duplicate record later.
        let _ = PROC_SEEN.insert(key, 1, 0);
    }
    match PROC_EVENTS.output::<ProcessEvent>(&event, 0) {
        Ok(()) => count(proc_counter::SENT),
        Err(_) => count(proc_counter::LOST),
    }
}

/// Reports socket `sk` as handled by the current process.
fn report_current(sk: u64, kind: u8, remember: bool) {
    if sk == 0 {
        return;
    }
    let Some(layout) = layout() else { return };
    match socket_tuple(sk, &layout, kind) {
        Some(event) => report(sk, event, &current_owner(), remember),
        None => count(proc_counter::READ_FAILED),
    }
}

// --- kprobes -------------------------------------------------------------

/// `int tcp_connect(struct sock *sk)`: runs inside `connect()` once the
/// source port is chosen, just before the SYN is built.
#[kprobe]
fn holonet_kp_connect(ctx: ProbeContext) -> u32 {
    report_current(ctx.arg::<u64>(0).unwrap_or(0), proc_kind::CONNECT, false);
    0
}

/// `int inet_csk_listen_start(struct sock *sk)`: inside `listen()`.
#[kprobe]
fn holonet_kp_listen(ctx: ProbeContext) -> u32 {
    report_current(ctx.arg::<u64>(0).unwrap_or(0), proc_kind::LISTEN, false);
    0
}

/// `void inet_csk_listen_stop(struct sock *sk)`: a listener closes.
#[kprobe]
fn holonet_kp_unlisten(ctx: ProbeContext) -> u32 {
    report_current(ctx.arg::<u64>(0).unwrap_or(0), proc_kind::UNLISTEN, false);
    0
}

/// A read from socket `sk` by the current process: reported unless this
/// process was the last one reported reading from it.
fn report_reader(sk: u64) {
    if sk == 0 {
        return;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: the value is copied out at once.
    if unsafe { PROC_READERS.get(sk) }.copied() == Some(tgid) {
        return;
    }
    let _ = PROC_READERS.insert(sk, tgid, 0);
    report_current(sk, proc_kind::RECEIVE, true);
}

/// `void tcp_rcv_space_adjust(struct sock *sk)`: called from `recvmsg()`
/// after data was copied to the reading process.
#[kprobe]
fn holonet_kp_receive(ctx: ProbeContext) -> u32 {
    report_reader(ctx.arg::<u64>(0).unwrap_or(0));
    0
}

/// `void tcp_set_state(struct sock *sk, int state)`: forgets a closing
/// socket's reader, so a new socket at the same address is reported.
#[kprobe]
fn holonet_kp_state(ctx: ProbeContext) -> u32 {
    let sk = ctx.arg::<u64>(0).unwrap_or(0);
    if ctx.arg::<u64>(1) == Some(u64::from(kernel::TCP_CLOSE)) {
        let _ = PROC_READERS.remove(sk);
    }
    0
}

// --- raw tracepoints -----------------------------------------------------

/// `inet_sock_set_state(const struct sock *sk, int oldstate, int newstate)`.
#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
fn holonet_tp_state(ctx: RawTracePointContext) -> i32 {
    let sk: u64 = ctx.arg(0);
    let old: u64 = ctx.arg(1);
    let new: u64 = ctx.arg(2);
    if sk == 0 {
        return 0;
    }
    if new == u64::from(kernel::TCP_SYN_SENT) {
        // The source port is not chosen yet: remember the owner until the
        // SYN goes out.
        let _ = PROC_CONNECTING.insert(sk, current_owner(), 0);
        if let Some(last) = PROC_LAST_CONNECT.get_ptr_mut(0) {
            // SAFETY: the map's only value, valid for this run; CPUs racing
            // here all store a time of this moment.
            unsafe { *last = bpf_jiffies64() };
        }
    } else if new == u64::from(kernel::TCP_LISTEN) {
        report_current(sk, proc_kind::LISTEN, false);
    } else if old == u64::from(kernel::TCP_LISTEN) && new == u64::from(kernel::TCP_CLOSE) {
        report_current(sk, proc_kind::UNLISTEN, false);
    } else if old == u64::from(kernel::TCP_SYN_SENT) {
        let _ = PROC_CONNECTING.remove(sk);
    }
    if new == u64::from(kernel::TCP_CLOSE) {
        let _ = PROC_READERS.remove(sk);
    }
    0
}

/// `net_dev_queue(struct sk_buff *skb)`: every packet queued for sending;
/// only the first for a socket in SYN_SENT with a remembered owner counts.
#[raw_tracepoint(tracepoint = "net_dev_queue")]
fn holonet_tp_xmit(ctx: RawTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    if skb == 0 || !connect_started_recently() {
        return 0;
    }
    let Some(layout) = layout() else { return 0 };
    let Some(sk) = read::<u64>(skb, layout.skb_sk) else {
        return 0;
    };
    if sk == 0 || read::<u8>(sk, layout.state) != Some(kernel::TCP_SYN_SENT) {
        return 0;
    }
    // SAFETY: the value is copied out before the program can be preempted;
    // LRU eviction at worst makes the copy stale, never invalid.
    let Some(owner) = (unsafe { PROC_CONNECTING.get(sk) }).copied() else {
        return 0;
    };
    match socket_tuple(sk, &layout, proc_kind::CONNECT) {
        Some(event) if event.sport != 0 => report(sk, event, &owner, true),
        Some(_) => {}
        None => count(proc_counter::READ_FAILED),
    }
    0
}

/// Did a socket enter SYN_SENT within [`CONNECT_WINDOW_JIFFIES`]?
#[inline(always)]
fn connect_started_recently() -> bool {
    let Some(&last) = PROC_LAST_CONNECT.get(0) else {
        return true;
    };
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_jiffies64() };
    // Another CPU may have stored a time later than `now`: that is recent.
    last != 0 && now.saturating_sub(last) < CONNECT_WINDOW_JIFFIES
}

/// `tcp_rcv_space_adjust(struct sock *sk)`: see [`holonet_kp_receive`].
#[raw_tracepoint(tracepoint = "tcp_rcv_space_adjust")]
fn holonet_tp_receive(ctx: RawTracePointContext) -> i32 {
    report_reader(ctx.arg(0));
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
