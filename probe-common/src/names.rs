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
