//! Which process owns which socket, as the socket probe reported it, and
//! the question flows ask of it: who is at each end?
//!
//! Pure: fed [`ProcessEvent`]s, asked with socket addresses. Two kinds of
//! knowledge:
//! - exact sockets (local and remote address and port), from connects and
//!   receives: the process that connected, or that read from the socket;
//! - listeners (local address and port, the address possibly a wildcard):
//!   the server side of a connection before its process read anything,
//!   which is when the handshake and the first request are seen.
//!
//! When several processes listen on the same port with a wildcard address
//! (a server per pod, each in its own network namespace), the listener in
//! the namespace that owns the flow's address answers; the caller says
//! which namespace owns which address. If that still leaves more than one,
//! or none, there is no answer rather than a wrong one. Exact sockets are
//! kept in two generations of bounded size, so the table never grows
//! without limit and recent sockets are always kept.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use probe_common::{
    event::family,
    process::{ProcessEvent, proc_kind},
};

use crate::hashing::FastMap;

/// The process at one end of a flow.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProcessInfo {
    /// Process id (thread group id).
    pub pid: u32,
    /// Command name as the kernel keeps it (at most 15 bytes).
    pub command: Arc<str>,
}

impl ProcessInfo {
    fn from_event(event: &ProcessEvent) -> Self {
        let end = event
            .comm
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(event.comm.len());
        Self {
            pid: event.tgid,
            command: Arc::from(String::from_utf8_lossy(&event.comm[..end]).as_ref()),
        }
    }
}

impl std::fmt::Display for ProcessInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.command, self.pid)
    }
}

/// Exact sockets kept per generation; at most twice this many are kept.
pub const SOCKETS_PER_GENERATION: usize = 65_536;

/// A socket as seen from its owner: (local, remote).
type SocketKey = (SocketAddr, SocketAddr);

/// A listening process and its network namespace, when known.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Listener {
    process: ProcessInfo,
    netns: Option<u64>,
}

/// The sockets' owners and the listeners.
#[derive(Debug)]
pub struct ProcessTable {
    current: FastMap<SocketKey, ProcessInfo>,
    previous: FastMap<SocketKey, ProcessInfo>,
    per_generation: usize,
    listeners: FastMap<SocketAddr, Vec<Listener>>,
}

impl Default for ProcessTable {
    fn default() -> Self {
        Self::with_generation_size(SOCKETS_PER_GENERATION)
    }
}

/// An IPv4-mapped IPv6 address (a dual-stack socket talking IPv4) as the
/// IPv4 address the packets carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn address(fam: u8, raw: [u8; 16]) -> Option<IpAddr> {
    match fam {
        family::IPV4 => Some(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
        family::IPV6 => Some(canonical(IpAddr::V6(Ipv6Addr::from(raw)))),
        _ => None,
    }
}

impl ProcessTable {
    /// A table keeping at most `2 * per_generation` exact sockets.
    pub fn with_generation_size(per_generation: usize) -> Self {
        Self {
            current: FastMap::default(),
            previous: FastMap::default(),
            per_generation: per_generation.max(1),
            listeners: FastMap::default(),
        }
    }

    /// Learns from one record of the socket probe; `netns` is the network
    /// namespace of a listener's process, when known. Records of unknown
    /// kinds or families are ignored.
    pub fn apply(&mut self, event: &ProcessEvent, netns: Option<u64>) {
        let (Some(local_ip), Some(remote_ip)) = (
            address(event.family, event.saddr),
            address(event.family, event.daddr),
        ) else {
            return;
        };
        let local = SocketAddr::new(local_ip, event.sport);
        let remote = SocketAddr::new(remote_ip, event.dport);
        match event.kind {
            proc_kind::CONNECT | proc_kind::RECEIVE => {
                if event.sport == 0 || event.dport == 0 {
                    return;
                }
                if self.current.len() >= self.per_generation {
                    self.previous = std::mem::take(&mut self.current);
                }
                self.current
                    .insert((local, remote), ProcessInfo::from_event(event));
            }
            proc_kind::LISTEN if event.sport != 0 => {
                let process = ProcessInfo::from_event(event);
                let entry = self.listeners.entry(local).or_default();
                entry.retain(|l| l.process.pid != process.pid);
                entry.push(Listener { process, netns });
            }
            proc_kind::UNLISTEN => {
                if let Some(entry) = self.listeners.get_mut(&local) {
                    if entry.len() == 1 {
                        entry.clear();
                    } else {
                        entry.retain(|l| l.process.pid != event.tgid);
                    }
                    if entry.is_empty() {
                        self.listeners.remove(&local);
                    }
                }
            }
            _ => {}
        }
    }

    /// The process owning the socket `local` ↔ `remote`, if one connected
    /// from it or read from it.
    pub fn socket_owner(&self, local: SocketAddr, remote: SocketAddr) -> Option<&ProcessInfo> {
        let key = (
            SocketAddr::new(canonical(local.ip()), local.port()),
            SocketAddr::new(canonical(remote.ip()), remote.port()),
        );
        self.current.get(&key).or_else(|| self.previous.get(&key))
    }

    /// The one process listening on `local` (bound to that address, or to
    /// the wildcard of either family), if exactly one is; among several,
    /// the one whose namespace owns the address (`owns(netns, ip)`).
    pub fn listener(
        &self,
        local: SocketAddr,
        owns: &mut impl FnMut(u64, IpAddr) -> bool,
    ) -> Option<&ProcessInfo> {
        let ip = canonical(local.ip());
        let port = local.port();
        if let Some(bound) = self.listeners.get(&SocketAddr::new(ip, port)) {
            return pick(bound.iter(), ip, owns);
        }
        // A dual-stack wildcard socket accepts IPv4 too; an IPv4 wildcard
        // does not accept IPv6.
        let wildcards = [
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        ];
        let keys = if ip.is_ipv4() {
            &wildcards[..]
        } else {
            &wildcards[1..]
        };
        let candidates = keys.iter().filter_map(|k| self.listeners.get(k)).flatten();
        pick(candidates, ip, owns)
    }

    /// The processes at the source and destination of a flow from `source`
    /// to `destination`. `is_reply` says which end is the server, whose
    /// listener answers while its socket is not known yet; `owns(netns,
    /// ip)` tells whether an address belongs to a network namespace.
    pub fn attribute(
        &self,
        source: SocketAddr,
        destination: SocketAddr,
        is_reply: Option<bool>,
        owns: &mut impl FnMut(u64, IpAddr) -> bool,
    ) -> (Option<ProcessInfo>, Option<ProcessInfo>) {
        let mut source_process = self.socket_owner(source, destination);
        let mut destination_process = self.socket_owner(destination, source);
        match is_reply {
            Some(true) if source_process.is_none() => {
                source_process = self.listener(source, owns);
            }
            Some(false) if destination_process.is_none() => {
                destination_process = self.listener(destination, owns);
            }
            // Direction unknown (a FIN the datapath did not track): the
            // end with a listener on its port is the server, if only one
            // end has one.
            None => {
                let at_source = source_process
                    .is_none()
                    .then(|| self.listener(source, owns))
                    .flatten();
                let at_destination = destination_process
                    .is_none()
                    .then(|| self.listener(destination, owns))
                    .flatten();
                match (at_source, at_destination) {
                    (Some(p), None) => source_process = Some(p),
                    (None, Some(p)) => destination_process = Some(p),
                    _ => {}
                }
            }
            _ => {}
        }
        (source_process.cloned(), destination_process.cloned())
    }

    /// Exact sockets currently known.
    pub fn sockets(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

/// The process when all candidates are the same one; otherwise the one
/// process among those whose namespace owns `ip`.
fn pick<'a>(
    candidates: impl Iterator<Item = &'a Listener> + Clone,
    ip: IpAddr,
    owns: &mut impl FnMut(u64, IpAddr) -> bool,
) -> Option<&'a ProcessInfo> {
    let first = candidates.clone().next()?;
    if candidates
        .clone()
        .all(|l| l.process.pid == first.process.pid)
    {
        return Some(&first.process);
    }
    let mut owners = candidates.filter(|l| l.netns.is_some_and(|ns| owns(ns, ip)));
    let owner = owners.next()?;
    owners
        .all(|l| l.process.pid == owner.process.pid)
        .then_some(&owner.process)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: u8, local: &str, remote: &str, pid: u32, comm: &str) -> ProcessEvent {
        let local: SocketAddr = local.parse().unwrap();
        let remote: SocketAddr = remote.parse().unwrap();
        let mut e = ProcessEvent::zeroed();
        e.kind = kind;
        let raw = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => {
                let mut out = [0u8; 16];
                out[..4].copy_from_slice(&v4.octets());
                out
            }
            IpAddr::V6(v6) => v6.octets(),
        };
        e.family = if local.is_ipv4() {
            family::IPV4
        } else {
            family::IPV6
        };
        e.saddr = raw(local.ip());
        e.daddr = raw(remote.ip());
        e.sport = local.port();
        e.dport = remote.port();
        e.tgid = pid;
        e.tid = pid;
        e.comm[..comm.len()].copy_from_slice(comm.as_bytes());
        e
    }

    fn no_netns(_: u64, _: IpAddr) -> bool {
        false
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn names(pair: (Option<ProcessInfo>, Option<ProcessInfo>)) -> (String, String) {
        let show = |p: Option<ProcessInfo>| p.map_or_else(|| "-".to_string(), |p| p.to_string());
        (show(pair.0), show(pair.1))
    }

    #[test]
    fn the_client_is_known_from_its_connect_and_the_server_from_its_listener() {
        let mut table = ProcessTable::default();
        table.apply(
            &event(
                proc_kind::LISTEN,
                "0.0.0.0:52773",
                "0.0.0.0:0",
                100,
                "fhir-server",
            ),
            None,
        );
        table.apply(
            &event(
                proc_kind::CONNECT,
                "10.250.1.2:40000",
                "10.250.0.2:52773",
                200,
                "curl",
            ),
            None,
        );
        let client = addr("10.250.1.2:40000");
        let server = addr("10.250.0.2:52773");
        assert_eq!(
            names(table.attribute(client, server, Some(false), &mut no_netns)),
            ("curl[200]".into(), "fhir-server[100]".into())
        );
        assert_eq!(
            names(table.attribute(server, client, Some(true), &mut no_netns)),
            ("fhir-server[100]".into(), "curl[200]".into())
        );
        // Without knowing which end is the server, the end with a listener
        // is taken for it.
        assert_eq!(
            names(table.attribute(client, server, None, &mut no_netns)),
            ("curl[200]".into(), "fhir-server[100]".into())
        );
        // When both ends have a listener on their port, neither is guessed.
        table.apply(
            &event(
                proc_kind::LISTEN,
                "0.0.0.0:40001",
                "0.0.0.0:0",
                300,
                "other",
            ),
            None,
        );
        assert_eq!(
            names(table.attribute(addr("10.250.1.3:40001"), server, None, &mut no_netns)),
            ("-".into(), "-".into())
        );
    }

    #[test]
    fn a_worker_reading_the_socket_overrides_the_listener() {
        let mut table = ProcessTable::default();
        table.apply(
            &event(proc_kind::LISTEN, "0.0.0.0:80", "0.0.0.0:0", 1, "master"),
            None,
        );
        table.apply(
            &event(
                proc_kind::RECEIVE,
                "10.0.0.1:80",
                "10.0.0.2:5555",
                7,
                "worker",
            ),
            None,
        );
        let (_, server) = table.attribute(
            addr("10.0.0.2:5555"),
            addr("10.0.0.1:80"),
            Some(false),
            &mut no_netns,
        );
        assert_eq!(server.unwrap().to_string(), "worker[7]");
    }

    #[test]
    fn wildcard_listeners_of_two_processes_give_no_answer() {
        let mut table = ProcessTable::default();
        table.apply(
            &event(proc_kind::LISTEN, "0.0.0.0:8080", "0.0.0.0:0", 1, "a"),
            None,
        );
        table.apply(
            &event(proc_kind::LISTEN, "[::]:8080", "[::]:0", 2, "b"),
            None,
        );
        assert_eq!(table.listener(addr("10.0.0.9:8080"), &mut no_netns), None);
        // IPv6 traffic can only reach the IPv6 wildcard.
        assert_eq!(
            table
                .listener(addr("[fd00::9]:8080"), &mut no_netns)
                .unwrap()
                .to_string(),
            "b[2]"
        );
        // A specific bind wins over wildcards.
        table.apply(
            &event(proc_kind::LISTEN, "10.0.0.9:8080", "0.0.0.0:0", 3, "c"),
            None,
        );
        assert_eq!(
            table
                .listener(addr("10.0.0.9:8080"), &mut no_netns)
                .unwrap()
                .to_string(),
            "c[3]"
        );
    }

    #[test]
    fn wildcard_listeners_in_two_namespaces_are_told_apart_by_address() {
        let mut table = ProcessTable::default();
        table.apply(
            &event(proc_kind::LISTEN, "0.0.0.0:8080", "0.0.0.0:0", 1, "pod-a"),
            Some(100),
        );
        table.apply(
            &event(proc_kind::LISTEN, "[::]:8080", "[::]:0", 2, "pod-b"),
            Some(200),
        );
        let mut owns = |netns: u64, ip: IpAddr| {
            (netns, ip) == (100, "10.0.0.1".parse().unwrap())
                || (netns, ip) == (200, "10.0.0.2".parse().unwrap())
        };
        assert_eq!(
            table
                .listener(addr("10.0.0.1:8080"), &mut owns)
                .unwrap()
                .to_string(),
            "pod-a[1]"
        );
        assert_eq!(
            table
                .listener(addr("10.0.0.2:8080"), &mut owns)
                .unwrap()
                .to_string(),
            "pod-b[2]"
        );
        // An address neither namespace owns: no guess.
        assert_eq!(table.listener(addr("10.0.0.3:8080"), &mut owns), None);
    }

    #[test]
    fn a_closed_listener_is_forgotten() {
        let mut table = ProcessTable::default();
        table.apply(
            &event(proc_kind::LISTEN, "0.0.0.0:53", "0.0.0.0:0", 5, "dns"),
            None,
        );
        assert!(table.listener(addr("10.0.0.1:53"), &mut no_netns).is_some());
        table.apply(
            &event(proc_kind::UNLISTEN, "0.0.0.0:53", "0.0.0.0:0", 5, "dns"),
            None,
        );
        assert_eq!(table.listener(addr("10.0.0.1:53"), &mut no_netns), None);
    }

    #[test]
    fn ipv4_mapped_sockets_match_ipv4_flows() {
        let mut table = ProcessTable::default();
        table.apply(
            &event(
                proc_kind::RECEIVE,
                "[::ffff:10.0.0.1]:8000",
                "[::ffff:10.0.0.2]:4000",
                9,
                "python3",
            ),
            None,
        );
        let owner = table.socket_owner(addr("10.0.0.1:8000"), addr("10.0.0.2:4000"));
        assert_eq!(owner.unwrap().to_string(), "python3[9]");
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_the_newest_sockets() {
        let mut table = ProcessTable::with_generation_size(4);
        for port in 1..=20u16 {
            table.apply(
                &event(
                    proc_kind::CONNECT,
                    &format!("10.0.0.1:{port}"),
                    "10.0.0.2:80",
                    u32::from(port),
                    "c",
                ),
                None,
            );
        }
        assert!(table.sockets() <= 8);
        assert!(
            table
                .socket_owner(addr("10.0.0.1:20"), addr("10.0.0.2:80"))
                .is_some()
        );
        assert!(
            table
                .socket_owner(addr("10.0.0.1:1"), addr("10.0.0.2:80"))
                .is_none()
        );
    }

    #[test]
    fn records_without_ports_or_with_unknown_families_are_ignored() {
        let mut table = ProcessTable::default();
        let mut e = event(proc_kind::CONNECT, "10.0.0.1:0", "10.0.0.2:80", 1, "x");
        table.apply(&e, None);
        e.sport = 1000;
        e.family = 99;
        table.apply(&e, None);
        assert_eq!(table.sockets(), 0);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_records_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 64)) {
            let mut table = ProcessTable::with_generation_size(2);
            if let Ok(e) = ProcessEvent::decode(&bytes) {
                table.apply(&e, None);
                let _ = table.attribute(addr("10.0.0.1:1"), addr("10.0.0.2:2"), Some(false), &mut no_netns);
            }
        }
    }
}
