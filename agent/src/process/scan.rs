//! Listeners that were already open when the agent started, found in
//! `/proc` the way `ss -ltnp` finds them.
//!
//! The socket probe sees a server's `listen()` only if it happens while the
//! probe is attached. A server started before the agent would otherwise be
//! named only once it reads from a connection, after its first request was
//! reported. So at start the agent reads every network namespace's
//! `net/tcp` and `net/tcp6` (through one process living in it) for
//! listening sockets, and every process's open files for the socket inodes
//! they hold.

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    path::Path,
};

use probe_common::{
    event::family,
    process::{COMM_LEN, ProcessEvent, proc_kind},
};

/// `st` of a listening socket in `/proc/net/tcp`.
const TCP_LISTEN_HEX: &str = "0A";

/// A listening socket as `/proc/<pid>/net/tcp{,6}` lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListeningSocket {
    /// One of [`family`].
    pub family: u8,
    /// Local address bytes (IPv4 in the first four).
    pub addr: [u8; 16],
    /// Local port.
    pub port: u16,
    /// The socket's inode, as `/proc/<pid>/fd` links name it.
    pub inode: u64,
}

/// Parses the text of `/proc/<pid>/net/tcp` (`fam` IPv4) or `tcp6` (`fam`
/// IPv6) and returns its listening sockets. Lines that do not parse are
/// skipped. Addresses are printed as native-endian 32-bit words, which is
/// what `to_ne_bytes` undoes.
pub fn parse_listeners(text: &str, fam: u8) -> Vec<ListeningSocket> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
        let (Some(local), Some(state), Some(inode)) = (fields.get(1), fields.get(3), fields.get(9))
        else {
            continue;
        };
        if *state != TCP_LISTEN_HEX {
            continue;
        }
        let Some((addr_hex, port_hex)) = local.split_once(':') else {
            continue;
        };
        let (Ok(port), Ok(inode)) = (u16::from_str_radix(port_hex, 16), inode.parse::<u64>())
        else {
            continue;
        };
        let words = match (fam, addr_hex.len()) {
            (family::IPV4, 8) => 1,
            (family::IPV6, 32) => 4,
            _ => continue,
        };
        let mut addr = [0u8; 16];
        let mut ok = true;
        for word in 0..words {
            let Some(hex) = addr_hex.get(word * 8..word * 8 + 8) else {
                ok = false;
                break;
            };
            match u32::from_str_radix(hex, 16) {
                Ok(value) => addr[word * 4..word * 4 + 4].copy_from_slice(&value.to_ne_bytes()),
                Err(_) => ok = false,
            }
        }
        if ok && inode != 0 {
            out.push(ListeningSocket {
                family: fam,
                addr,
                port,
                inode,
            });
        }
    }
    out
}

/// The inode of a `socket:[12345]` link target.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

fn pids(proc_root: &Path) -> Vec<u32> {
    let Ok(entries) = fs::read_dir(proc_root) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// `LISTEN` records for every listening TCP socket open under `proc_root`
/// (normally `/proc`), each attributed to the lowest pid holding it (the
/// parent, for servers whose workers inherit the socket). Unreadable
/// entries (processes that exit meanwhile) are skipped.
pub fn existing_listeners(proc_root: &Path) -> Vec<ProcessEvent> {
    let all = pids(proc_root);
    // One process per network namespace is enough to read its sockets.
    let mut namespaces: HashMap<String, u32> = HashMap::new();
    for &pid in &all {
        if let Ok(ns) = fs::read_link(proc_root.join(format!("{pid}/ns/net"))) {
            namespaces
                .entry(ns.to_string_lossy().into_owned())
                .or_insert(pid);
        }
    }
    let mut listening: HashMap<u64, ListeningSocket> = HashMap::new();
    for pid in namespaces.values() {
        for (file, fam) in [("tcp", family::IPV4), ("tcp6", family::IPV6)] {
            if let Ok(text) = fs::read_to_string(proc_root.join(format!("{pid}/net/{file}"))) {
                for socket in parse_listeners(&text, fam) {
                    listening.insert(socket.inode, socket);
                }
            }
        }
    }
    if listening.is_empty() {
        return Vec::new();
    }
    let mut owners: BTreeMap<u64, u32> = BTreeMap::new();
    for &pid in &all {
        let Ok(fds) = fs::read_dir(proc_root.join(format!("{pid}/fd"))) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            if let Some(inode) = target.to_str().and_then(socket_inode)
                && listening.contains_key(&inode)
            {
                let owner = owners.entry(inode).or_insert(pid);
                *owner = (*owner).min(pid);
            }
        }
    }
    owners
        .into_iter()
        .filter_map(|(inode, pid)| {
            let socket = listening.get(&inode)?;
            let comm = fs::read_to_string(proc_root.join(format!("{pid}/comm"))).ok()?;
            let mut event = ProcessEvent::zeroed();
            event.kind = proc_kind::LISTEN;
            event.family = socket.family;
            event.saddr = socket.addr;
            event.sport = socket.port;
            event.tgid = pid;
            event.tid = pid;
            let name = comm.trim_end_matches('\n').as_bytes();
            let n = name.len().min(COMM_LEN - 1);
            event.comm[..n].copy_from_slice(&name[..n]);
            Some(event)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};

    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:10CD 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 100 0 0 10 0
   1: 0100007F:10CD 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 31338 1 0000000000000000 20 4 30 10 -1
   2: garbage
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0000FDFD000000000000000001000000:0035 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4243 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn listening_lines_are_parsed_and_the_rest_skipped() {
        let v4 = parse_listeners(TCP, family::IPV4);
        assert_eq!(v4.len(), 1);
        assert_eq!(v4[0].port, 4301);
        assert_eq!(v4[0].inode, 31337);
        assert_eq!(
            Ipv4Addr::new(v4[0].addr[0], v4[0].addr[1], v4[0].addr[2], v4[0].addr[3]),
            Ipv4Addr::LOCALHOST
        );
        let v6 = parse_listeners(TCP6, family::IPV6);
        assert_eq!(v6.len(), 2);
        assert_eq!(Ipv6Addr::from(v6[0].addr), Ipv6Addr::UNSPECIFIED);
        assert_eq!(v6[0].port, 8080);
        assert_eq!(
            Ipv6Addr::from(v6[1].addr),
            "fdfd::1".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(v6[1].port, 53);
        // The wrong family's widths never parse.
        assert!(parse_listeners(TCP, family::IPV6).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let _ = parse_listeners(&text, family::IPV4);
            let _ = parse_listeners(&text, family::IPV6);
        }
    }

    /// This test's own listening socket is found, attributed to this
    /// process, in the real /proc.
    #[test]
    fn this_process_s_listener_is_found_in_proc() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let found = existing_listeners(Path::new("/proc"));
        let mine = found
            .iter()
            .find(|e| e.sport == port && e.family == family::IPV4)
            .unwrap_or_else(|| panic!("port {port} not among {} listeners", found.len()));
        assert_eq!(mine.tgid, std::process::id());
        assert_eq!(mine.kind, proc_kind::LISTEN);
        assert_eq!(&mine.saddr[..4], &[127, 0, 0, 1]);
    }
}
