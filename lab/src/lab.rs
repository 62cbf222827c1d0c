//! Pods as network namespaces, joined through the host by veth pairs.

use std::{
    collections::hash_map::DefaultHasher,
    ffi::OsStr,
    fs,
    hash::{Hash, Hasher},
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
    process::{Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

use crate::{
    command::{CommandError, ip, ip_program, run_command},
    process::ChildGuard,
};

/// Every pod address lies in this /16; the host gets an `unreachable` route
/// for it, so a packet to a pod that no longer exists never leaves the machine.
const POD_RANGE: &str = "10.250.0.0/16";
const POD_RANGE_BASE: [u8; 2] = [10, 250];
/// Pods' IPv6 addresses: `10.250.a.b` also has `fd00:250::a:b`.
const POD_RANGE6: &str = "fd00:250::/96";
/// The IPv6 next hop of pods, bound like [`POD_GATEWAY`].
const POD_GATEWAY6: &str = "fe80::1";
/// The next hop pods use to reach each other: a link-local address bound to
/// the host-side veth's MAC by a permanent neighbour entry in the pod.
const POD_GATEWAY: &str = "169.254.1.1";
/// Namespaces created by this crate start with this prefix, then the pid.
const NETNS_PREFIX: &str = "hn-";

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// Building or tearing down the lab failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A system command failed.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// A pod name that cannot be used in namespace names.
    #[error("pod name `{name}` must be 1-20 characters of a-z, 0-9 and '-'")]
    BadPodName {
        /// The rejected name.
        name: String,
    },
    /// No free address was found in the pod range.
    #[error("no free pod address in {POD_RANGE} after {tries} tries")]
    AddressesExhausted {
        /// How many candidates were tried.
        tries: u32,
    },
    /// Reading or writing a file under /proc or /sys failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

/// One pod: a network namespace with `eth0`, its address, and the name of the
/// host-side end of its veth (where holonet attaches its probes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    /// The name the pod was created with.
    pub name: String,
    /// Network namespace name (usable with `ip netns exec`).
    pub netns: String,
    /// Host-side veth interface.
    pub host_ifname: String,
    /// The pod's IPv4 address.
    pub ip: Ipv4Addr,
    /// The pod's IPv6 address (`fd00:250::a:b` for `10.250.a.b`).
    pub ip6: Ipv6Addr,
}

impl Pod {
    /// A command that runs `program` inside the pod's network namespace.
    pub fn command<S: AsRef<OsStr>>(&self, program: &str, args: &[S]) -> Command {
        let mut cmd = Command::new(ip_program());
        cmd.args(["netns", "exec", &self.netns, program]).args(args);
        cmd
    }

    /// Runs `program` in the pod to completion; fails if it exits non-zero.
    pub fn run<S: AsRef<OsStr>>(&self, program: &str, args: &[S]) -> Result<Output, LabError> {
        let mut all: Vec<&OsStr> = vec![
            OsStr::new("netns"),
            OsStr::new("exec"),
            OsStr::new(&self.netns),
            OsStr::new(program),
        ];
        all.extend(args.iter().map(AsRef::as_ref));
        Ok(run_command(ip_program(), &all)?)
    }

    /// Starts `program` in the pod in the background, with its output
    /// discarded; the returned guard stops it when dropped.
    pub fn spawn<S: AsRef<OsStr>>(
        &self,
        label: &str,
        program: &str,
        args: &[S],
    ) -> std::io::Result<ChildGuard> {
        let mut cmd = self.command(program, args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        ChildGuard::spawn(&format!("{label} in pod {}", self.name), cmd)
    }
}

/// A set of pods that is torn down when dropped.
#[derive(Debug)]
pub struct Lab {
    id: u32,
    pods: Vec<Pod>,
}

impl Lab {
    /// Prepares the host (IP forwarding, a guard route for the pod range) and
    /// removes what crashed earlier runs left behind.
    pub fn new() -> Result<Self, LabError> {
        remove_stale();
        write_proc("/proc/sys/net/ipv4/ip_forward", "1")?;
        ip(&["route", "replace", "unreachable", POD_RANGE])?;
        write_proc("/proc/sys/net/ipv6/conf/all/forwarding", "1")?;
        ip(&["-6", "route", "replace", "unreachable", POD_RANGE6])?;
        Ok(Self {
            id: NEXT_LAB.fetch_add(1, Ordering::Relaxed),
            pods: Vec::new(),
        })
    }

    /// The pods created so far.
    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    /// Creates a pod named `name` (unique within this lab).
    pub fn add_pod(&mut self, name: &str) -> Result<Pod, LabError> {
        if name.is_empty()
            || name.len() > 20
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(LabError::BadPodName {
                name: name.to_string(),
            });
        }
        let pid = std::process::id();
        let index = self.pods.len();
        let netns = format!("{NETNS_PREFIX}{pid}-{}-{name}", self.id);
        let base = format!("h{pid:x}l{:x}p{index:x}", self.id);
        let host_ifname = format!("{base}h");
        let peer = format!("{base}c");

        ip(&["netns", "add", &netns])?;
        // From here on the pod exists, so record it for teardown even if a
        // later step fails.
        self.pods.push(Pod {
            name: name.to_string(),
            netns: netns.clone(),
            host_ifname: host_ifname.clone(),
            ip: Ipv4Addr::UNSPECIFIED,
            ip6: Ipv6Addr::UNSPECIFIED,
        });
        ip(&[
            "link",
            "add",
            &host_ifname,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ])?;
        ip(&["link", "set", &peer, "netns", &netns])?;
        ip(&["link", "set", &host_ifname, "up"])?;
        let pod_ip = claim_address(&host_ifname, &netns)?;
        let [_, _, a, b] = pod_ip.octets();
        let pod_ip6 = Ipv6Addr::new(0xfd00, 0x250, 0, 0, 0, 0, u16::from(a), u16::from(b));
        if let Some(pod) = self.pods.last_mut() {
            pod.ip = pod_ip;
            pod.ip6 = pod_ip6;
        }

        let host_mac = read_sys(&format!("/sys/class/net/{host_ifname}/address"))?;
        let addr = format!("{pod_ip}/32");
        let addr6 = format!("{pod_ip6}/128");
        for args in [
            vec!["link", "set", &peer, "name", "eth0"],
            vec!["link", "set", "lo", "up"],
            vec!["link", "set", "eth0", "up"],
            vec!["addr", "add", &addr, "dev", "eth0"],
            vec![
                "neigh",
                "replace",
                POD_GATEWAY,
                "lladdr",
                host_mac.trim(),
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
            vec!["route", "add", POD_GATEWAY, "dev", "eth0", "scope", "link"],
            vec!["route", "add", POD_RANGE, "via", POD_GATEWAY, "dev", "eth0"],
            vec!["-6", "addr", "add", &addr6, "dev", "eth0", "nodad"],
            vec![
                "-6",
                "neigh",
                "replace",
                POD_GATEWAY6,
                "lladdr",
                host_mac.trim(),
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
            vec![
                "-6",
                "route",
                "add",
                POD_RANGE6,
                "via",
                POD_GATEWAY6,
                "dev",
                "eth0",
            ],
        ] {
            let mut full = vec!["-n", netns.as_str()];
            full.extend(args);
            ip(&full)?;
        }
        // The host reaches the pod's IPv6 address on its veth without
        // neighbour discovery (which would wait for duplicate detection).
        let pod_mac = ip(&["-n", &netns, "-br", "link", "show", "eth0"])?;
        let pod_mac = String::from_utf8_lossy(&pod_mac.stdout)
            .split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .to_string();
        ip(&["-6", "route", "replace", &addr6, "dev", &host_ifname])?;
        ip(&[
            "-6",
            "neigh",
            "replace",
            &pod_ip6.to_string(),
            "lladdr",
            &pod_mac,
            "dev",
            &host_ifname,
            "nud",
            "permanent",
        ])?;
        Ok(self.pods.last().cloned().expect("pushed above"))
    }

    /// Points the pod's resolver at `nameserver` with these search domains:
    /// `ip netns exec` mounts `/etc/netns/<netns>/resolv.conf` over
    /// `/etc/resolv.conf` for everything run in the pod.
    pub fn set_resolver(
        &self,
        pod: &Pod,
        nameserver: Ipv4Addr,
        search: &[&str],
    ) -> Result<(), LabError> {
        let dir = format!("/etc/netns/{}", pod.netns);
        let io = |source| LabError::Io {
            path: dir.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(io)?;
        let text = format!(
            "nameserver {nameserver}\nsearch {}\noptions ndots:5 timeout:1 attempts:1\n",
            search.join(" ")
        );
        fs::write(format!("{dir}/resolv.conf"), text).map_err(io)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for pod in self.pods.drain(..).rev() {
            // Deleting the host end removes the pair (and the pod's route)
            // even if a process still holds the namespace open.
            let _ = ip(&["link", "del", &pod.host_ifname]);
            if let Err(err) = ip(&["netns", "del", &pod.netns]) {
                log::warn!("could not delete namespace {}: {err}", pod.netns);
            }
            let _ = fs::remove_dir_all(format!("/etc/netns/{}", pod.netns));
        }
    }
}

/// Claims a free pod address by adding its host route: `ip route add` fails
/// with "File exists" when another lab (in this or another process) holds
/// the address, which makes the claim atomic.
fn claim_address(host_ifname: &str, netns: &str) -> Result<Ipv4Addr, LabError> {
    const SLOTS: u32 = 254 * 254;
    const TRIES: u32 = 512;
    let mut hasher = DefaultHasher::new();
    netns.hash(&mut hasher);
    let start = (hasher.finish() % u64::from(SLOTS)) as u32;
    for attempt in 0..TRIES {
        let slot = (start + attempt) % SLOTS;
        let candidate = Ipv4Addr::new(
            POD_RANGE_BASE[0],
            POD_RANGE_BASE[1],
            (slot / 254 + 1) as u8,
            (slot % 254 + 1) as u8,
        );
        let dest = format!("{candidate}/32");
        match ip(&["route", "add", &dest, "dev", host_ifname]) {
            Ok(_) => return Ok(candidate),
            Err(err) if err.stderr().is_some_and(|e| e.contains("File exists")) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Err(LabError::AddressesExhausted { tries: TRIES })
}

fn write_proc(path: &str, value: &str) -> Result<(), LabError> {
    if fs::read_to_string(path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    fs::write(path, value).map_err(|source| LabError::Io {
        path: path.to_string(),
        source,
    })
}

fn read_sys(path: &str) -> Result<String, LabError> {
    fs::read_to_string(path).map_err(|source| LabError::Io {
        path: path.to_string(),
        source,
    })
}

/// Deletes namespaces left by lab processes that no longer run (a test run
/// killed with SIGKILL, a crashed demo). Namespaces of live processes are
/// left alone, so parallel runs do not disturb each other.
pub fn remove_stale() {
    let Ok(out) = ip(&["netns", "list"]) else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(NETNS_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            log::info!("removing namespace {name} left by process {pid}, which no longer runs");
            let _ = ip(&["netns", "del", name]);
            let _ = fs::remove_dir_all(format!("/etc/netns/{name}"));
        }
    }
}
