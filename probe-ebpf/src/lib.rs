//! Library target of the probe crate.
//!
//! The programs themselves are binaries (`src/tc.rs`), built for
//! `bpfel-unknown-none` by the agent's build script. This empty library exists
//! so the agent can list the crate as a build-dependency, which makes cargo
//! rebuild the agent whenever the probes change.
#![no_std]
