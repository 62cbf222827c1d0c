//! A local cluster in network namespaces, for the demo and the end-to-end tests.
//!
//! Each [`Pod`] is a network namespace with one veth pair: `eth0` inside the
//! namespace, the host-side end in the root namespace. Pods get a /32 address
//! and a default route through the host, which routes between them, the way
//! Cilium wires pods: every packet between two pods crosses two host-side
//! veths, where holonet's TC probes sit.
//!
//! Everything a [`Lab`] creates (namespaces, links, routes, child processes)
//! is removed when it is dropped, also while a test panics. Names carry the
//! creating process id, so [`Lab::remove_stale`] can clean up after a run
//! that was killed before it could drop its lab.

mod command;
pub mod dns;
pub mod fhir;
mod lab;
mod pki;
mod process;

pub use command::{CommandError, run_command};
pub use lab::{Lab, LabError, Pod, remove_stale};
pub use pki::Pki;
pub use process::{ChildGuard, wait_for_tcp_listener, wait_for_udp_socket};

/// Whether this process runs as root, which creating namespaces and loading
/// probes requires.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
