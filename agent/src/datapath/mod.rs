//! The enforcement datapath's maps, as the agent fills them.
//!
//! [`compile`] turns the policy engine's resolution into map records (pure,
//! tested without a kernel); loading them into the pinned maps of the probe
//! comes with the in-kernel enforcement.

pub mod compile;
pub mod config;
pub mod load;
