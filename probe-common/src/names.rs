//! Names of the programs and maps inside the probe object.
//!
//! The loader looks programs and maps up by these strings; keeping them here
//! means a rename on one side fails to compile on the other instead of failing
//! at load time.

/// Object file name of the TC probe, as produced by the `probe-ebpf` build.
pub const TC_OBJECT: &str = "holonet-tc";

/// Classifier attached at TC ingress of a pod's host-side veth (the pod's egress).
pub const TC_INGRESS_PROGRAM: &str = "holonet_tc_ingress";

/// Classifier attached at TC egress of a pod's host-side veth (the pod's ingress).
pub const TC_EGRESS_PROGRAM: &str = "holonet_tc_egress";

/// Ring buffer carrying [`crate::event::FlowEvent`] records to user space.
pub const EVENTS_MAP: &str = "EVENTS";

/// Per-CPU counters indexed by [`crate::event::counter`] slots.
pub const COUNTERS_MAP: &str = "COUNTERS";

/// LPM trie: address → identity ([`crate::policy::IpcacheValue`]).
pub const IPCACHE_MAP: &str = "IPCACHE";

/// Hash: ifindex → local endpoint ([`crate::policy::EndpointValue`]).
pub const ENDPOINTS_MAP: &str = "ENDPOINTS";

/// LPM trie: policy lookup key → decision ([`crate::policy::PolicyValue`]).
pub const POLICY_MAP: &str = "POLICY";

/// LRU hash: connection → tracking state ([`crate::policy::CtValue`]).
pub const CT_MAP: &str = "CT";

/// Array: HTTP rule-set index → [`crate::l7::L7DfaTable`].
pub const L7_HTTP_MAP: &str = "L7_HTTP";

/// Classifier holding the L7 checks, reached by tail call through [`L7_JUMP_MAP`].
pub const TC_L7_PROGRAM: &str = "holonet_tc_l7";

/// Program array the classifiers tail-call the L7 programs through
/// (slots [`L7_JUMP_HTTP`] and [`L7_JUMP_DNS`]).
pub const L7_JUMP_MAP: &str = "L7_JUMP";

/// `L7_JUMP` slot of [`TC_L7_PROGRAM`].
pub const L7_JUMP_HTTP: u32 = 0;

/// `L7_JUMP` slot of [`TC_DNS_PROGRAM`].
pub const L7_JUMP_DNS: u32 = 1;

/// Classifier holding the DNS checks, reached by tail call through [`L7_JUMP_MAP`].
pub const TC_DNS_PROGRAM: &str = "holonet_tc_dns";

/// Array: DNS rule-set index → [`crate::l7::L7DfaTable`] over query names.
pub const L7_DNS_MAP: &str = "L7_DNS";

/// Hash: ifindex → 1 for every interface the classifiers are attached to;
/// a packet routed to one of them is reported there, not where it left its pod.
pub const ATTACHED_MAP: &str = "ATTACHED";

/// Every map the programs use. A persistent agent pins them all
/// (`holonet agent --pin-dir`), so that the programs of an agent that
/// replaces another share every map, scratch space included, with the ones
/// still attached while the switch happens.
pub const DATAPATH_MAPS: &[&str] = &[
    EVENTS_MAP,
    COUNTERS_MAP,
    IPCACHE_MAP,
    ENDPOINTS_MAP,
    POLICY_MAP,
    CT_MAP,
    L7_HTTP_MAP,
    L7_DNS_MAP,
    L7_JUMP_MAP,
    "L7_BUF",
    "L7_STATE",
    "CT_SCRATCH",
    "PACKET",
    "HEAD_SCAN",
    "LOOP_VARS",
    "DROPS_SEEN",
    "DROP_SCRATCH",
    ATTACHED_MAP,
    "FIB_SCRATCH",
];

/// Object file name of the socket probe (process attribution).
pub const PROC_OBJECT: &str = "holonet-proc";

/// Ring buffer carrying [`crate::process::ProcessEvent`] records.
pub const PROC_EVENTS_MAP: &str = "PROC_EVENTS";

/// Array, one slot: the kernel's [`crate::process::SockLayout`].
pub const SOCK_LAYOUT_MAP: &str = "SOCK_LAYOUT";

/// Per-CPU counters indexed by [`crate::process::proc_counter`] slots.
pub const PROC_COUNTERS_MAP: &str = "PROC_COUNTERS";

/// The socket probe's kprobes: program name and the kernel function it probes.
pub const PROC_KPROBES: &[(&str, &str)] = &[
    ("holonet_kp_connect", "tcp_connect"),
    ("holonet_kp_listen", "inet_csk_listen_start"),
    ("holonet_kp_unlisten", "inet_csk_listen_stop"),
    ("holonet_kp_receive", "tcp_rcv_space_adjust"),
    ("holonet_kp_state", "tcp_set_state"),
];

/// The socket probe's raw tracepoints: program name and tracepoint.
pub const PROC_RAW_TRACEPOINTS: &[(&str, &str)] = &[
    ("holonet_tp_state", "inet_sock_set_state"),
    ("holonet_tp_xmit", "net_dev_queue"),
    ("holonet_tp_receive", "tcp_rcv_space_adjust"),
];
