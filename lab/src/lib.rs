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
mod watchdog;

pub use command::{CommandError, run_command};
pub use lab::{Lab, LabError, Pod, remove_stale};
pub use pki::Pki;
pub use process::{
    ChildGuard, output_within, wait_for_tcp_listener, wait_for_udp_socket, wait_within,
};
pub use watchdog::Watchdog;

/// Arguments for a curl in a pod that prints only the response's status
/// code (`000` when there is none), giving up after `max_time` seconds;
/// `rest` follows (method options, the URL).
pub fn curl_status_args<'a>(max_time: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        max_time,
    ];
    args.extend_from_slice(rest);
    args
}

/// Whether this process runs as root, which creating namespaces and loading
/// probes requires.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// How long a privileged test may run before its [`Watchdog`] reports what
/// it waits for and fails it (they take seconds; CI machines can be slow).
pub const PRIVILEGED_TEST_LIMIT: std::time::Duration = std::time::Duration::from_secs(480);

/// Decides whether the privileged test `test` runs here, and never skips
/// silently: without root it says so loudly on stderr and returns `None`
/// (the caller returns), and under `CI=true` it panics instead. A test that
/// may run gets its watchdog, to hold until it ends.
pub fn privileged_test(test: &str) -> Option<Watchdog> {
    if is_root() {
        return Some(Watchdog::arm(test, PRIVILEGED_TEST_LIMIT));
    }
    let why = "it needs root to create network namespaces and load BPF programs";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: cannot run under CI=true: {why}");
    }
    eprintln!(
        "\n*** SKIPPED {test}: {why}. Run the test suite as root (scripts/test does) to exercise it. ***\n"
    );
    None
}
