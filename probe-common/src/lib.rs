//! The kernel/user contract of holonet.
//!
//! Everything that crosses the boundary between `probe-ebpf` (compiled for
//! `bpfel-unknown-none`) and the agent (compiled for the host) is defined here
//! and nowhere else: event records written to the ring buffer, map names,
//! program names and the numeric codes inside the records.
//!
//! Rules for every type in this crate:
//! - `#[repr(C)]`, fixed-size integer and byte-array fields only (no `bool`,
//!   `Option` or enums with payloads, whose layout Rust does not promise);
//! - padding is explicit, so no byte of a record is left undefined;
//! - a compile-time assertion pins the size of every record;
//! - user space decodes records field by field from the bytes it receives
//!   (see [`event::FlowEvent::decode`]), never by transmuting them.
#![no_std]

pub mod event;
pub mod l7;
pub mod names;
pub mod policy;
pub mod process;
