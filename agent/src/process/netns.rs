//! Which network namespace a process lives in, and which addresses are
//! local to a namespace: what tells apart two servers that both listen on
//! `0.0.0.0:8080`, each in its own pod.
//!
//! A namespace is named by the inode of `/proc/<pid>/ns/net`. Its local
//! addresses are read through a process inside it: IPv4 from
//! `/proc/<pid>/net/fib_trie` (the `/32 host LOCAL` entries), IPv6 from
//! `/proc/<pid>/net/if_inet6`.

use std::{
    collections::{HashMap, HashSet},
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// How long a namespace's addresses are trusted before a lookup that finds
/// nothing reads them again.
const REFRESH_AFTER: Duration = Duration::from_secs(2);

/// The network namespace inode in an `ns/net` link target (`net:[4026531840]`).
pub fn parse_netns_link(target: &str) -> Option<u64> {
    target
        .strip_prefix("net:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The network namespace of process `pid` under `proc_root`.
pub fn netns_of(proc_root: &Path, pid: u32) -> Option<u64> {
    let link = fs::read_link(proc_root.join(format!("{pid}/ns/net"))).ok()?;
    parse_netns_link(link.to_str()?)
}

/// The local IPv4 addresses in the text of `/proc/<pid>/net/fib_trie`.
pub fn parse_fib_trie_locals(text: &str) -> HashSet<IpAddr> {
    let mut out = HashSet::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let line = line.trim_start();
        if let Some(addr) = line.strip_prefix("|-- ") {
            last = addr.trim().parse().ok();
        } else if line.starts_with("/32 host LOCAL")
            && let Some(addr) = last
        {
            out.insert(IpAddr::V4(addr));
        }
    }
    out
}

/// The IPv6 addresses in the text of `/proc/<pid>/net/if_inet6`.
pub fn parse_if_inet6(text: &str) -> HashSet<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let hex = line.split_whitespace().next()?;
            if hex.len() != 32 {
                return None;
            }
            let value = u128::from_str_radix(hex, 16).ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(value)))
        })
        .collect()
}

#[derive(Debug)]
struct Known {
    /// A process in the namespace, to read its files through.
    pid: u32,
    read_at: Option<Instant>,
    addresses: HashSet<IpAddr>,
}

/// Local addresses per network namespace, read on demand and cached.
#[derive(Debug)]
pub struct NetnsAddresses {
    proc_root: PathBuf,
    known: HashMap<u64, Known>,
}

impl NetnsAddresses {
    /// Reads namespaces through `proc_root` (normally `/proc`).
    pub fn new(proc_root: impl Into<PathBuf>) -> Self {
        Self {
            proc_root: proc_root.into(),
            known: HashMap::new(),
        }
    }

    /// The namespace of `pid`, remembering `pid` as a way into it.
    pub fn learn_pid(&mut self, pid: u32) -> Option<u64> {
        let netns = netns_of(&self.proc_root, pid)?;
        self.known
            .entry(netns)
            .and_modify(|k| k.pid = pid)
            .or_insert(Known {
                pid,
                read_at: None,
                addresses: HashSet::new(),
            });
        Some(netns)
    }

    /// Whether `ip` is an address of namespace `netns` (re-reading the
    /// namespace's addresses when they are stale).
    pub fn owns(&mut self, netns: u64, ip: IpAddr) -> bool {
        let Some(known) = self.known.get_mut(&netns) else {
            return false;
        };
        if known.addresses.contains(&ip) {
            return true;
        }
        if known.read_at.is_some_and(|at| at.elapsed() < REFRESH_AFTER) {
            return false;
        }
        let dir = self.proc_root.join(format!("{}/net", known.pid));
        let mut addresses = fs::read_to_string(dir.join("fib_trie"))
            .map(|t| parse_fib_trie_locals(&t))
            .unwrap_or_default();
        addresses.extend(
            fs::read_to_string(dir.join("if_inet6"))
                .map(|t| parse_if_inet6(&t))
                .unwrap_or_default(),
        );
        known.addresses = addresses;
        known.read_at = Some(Instant::now());
        known.addresses.contains(&ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIB_TRIE: &str = "Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.250.1.0/24 2 0 2
        |-- 10.250.1.0
           /24 link UNICAST
        |-- 10.250.1.2
           /32 host LOCAL
     |-- 127.0.0.1
        /32 host LOCAL
Local:
  +-- 10.250.1.0/24 2 0 2
     |-- 10.250.1.255
        /32 link BROADCAST
";

    #[test]
    fn local_addresses_are_read_from_fib_trie_and_if_inet6() {
        let v4 = parse_fib_trie_locals(FIB_TRIE);
        assert_eq!(
            v4,
            HashSet::from(["10.250.1.2".parse().unwrap(), "127.0.0.1".parse().unwrap()])
        );
        let v6 = parse_if_inet6(
            "fd000250000000000000000000010002 02 40 00 80   eth0\n00000000000000000000000000000001 01 80 10 80       lo\nbad\n",
        );
        assert!(v6.contains(&"fd00:250::1:2".parse::<IpAddr>().unwrap()));
        assert!(v6.contains(&"::1".parse::<IpAddr>().unwrap()));
        assert_eq!(v6.len(), 2);
        assert_eq!(parse_netns_link("net:[4026531840]"), Some(4_026_531_840));
        assert_eq!(parse_netns_link("mnt:[1]"), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
            let _ = parse_fib_trie_locals(&text);
            let _ = parse_if_inet6(&text);
            let _ = parse_netns_link(&text);
        }
    }

    #[test]
    fn this_process_s_namespace_owns_loopback() {
        let mut addresses = NetnsAddresses::new("/proc");
        let netns = addresses.learn_pid(std::process::id()).expect("own netns");
        assert!(addresses.owns(netns, "127.0.0.1".parse().unwrap()));
        assert!(!addresses.owns(netns, "192.0.2.77".parse().unwrap()));
        assert!(!addresses.owns(netns + 1, "127.0.0.1".parse().unwrap()));
    }
}
