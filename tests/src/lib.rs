//! Shared helpers for holonet's end-to-end tests.
//!
//! These tests need root: they create network namespaces and load BPF
//! programs into the running kernel. [`privileged`] decides whether a test
//! may run and makes sure a skip is never silent: outside CI a test that
//! cannot run says so loudly on stderr; under `CI=true` a missing privilege
//! fails the test.

use std::{
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use holonet_agent::{
    clock::MonotonicClock,
    events::EventReader,
    flow::Flow,
    loader::{TcMode, TcProbe},
};
use probe_common::event::FlowEvent;

pub use holonet_lab::{curl_status_args, privileged_test as privileged};

/// A scratch directory under the system's temporary directory, unique to
/// this process and tag, removed when dropped (also when the test panics).
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates `holonet-<tag>-<pid>` afresh.
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("holonet-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        Self(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loaded probe plus a background task collecting its events.
pub struct ProbeHarness {
    /// The probe (kept alive so its programs stay attached).
    pub probe: TcProbe,
    events: tokio::sync::mpsc::UnboundedReceiver<FlowEvent>,
    collected: Vec<FlowEvent>,
    clock: MonotonicClock,
}

impl std::fmt::Debug for ProbeHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeHarness")
            .field("collected", &self.collected.len())
            .finish_non_exhaustive()
    }
}

impl ProbeHarness {
    /// Loads the probe in `mode`, attaches it to `ifaces` and starts reading.
    /// Must run inside a tokio runtime.
    pub fn start(mode: TcMode, ifaces: &[&str]) -> Self {
        let mut probe = TcProbe::load(mode).unwrap_or_else(|e| panic!("loading the probe: {e}"));
        for iface in ifaces {
            probe
                .attach(iface)
                .unwrap_or_else(|e| panic!("attaching to {iface}: {e}"));
        }
        let mut reader = EventReader::new(probe.take_events().expect("EVENTS map"))
            .expect("registering the ring buffer");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            loop {
                batch.clear();
                if reader.read_batch(&mut batch, 256).await.is_err() {
                    return;
                }
                for e in batch.drain(..) {
                    if tx.send(e).is_err() {
                        return;
                    }
                }
            }
        });
        Self {
            probe,
            events: rx,
            collected: Vec::new(),
            clock: MonotonicClock::measure(),
        }
    }

    /// Collects events until `done` holds for the events between `a` and `b`
    /// (either direction), then keeps listening for `settle` to catch any
    /// extra event, and returns them all as flows. Panics after `timeout`.
    pub async fn flows_between(
        &mut self,
        a: IpAddr,
        b: IpAddr,
        done: impl Fn(&[Flow]) -> bool,
        timeout: Duration,
        settle: Duration,
    ) -> Vec<Flow> {
        let deadline = Instant::now() + timeout;
        loop {
            let flows = self.matching(a, b);
            if done(&flows) {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out after {timeout:?} waiting for flows between {a} and {b}; got:\n{}",
                render(&flows)
            );
            if let Ok(Some(event)) = tokio::time::timeout(left, self.events.recv()).await {
                self.collected.push(event);
            }
        }
        let settle_until = Instant::now() + settle;
        while let Ok(Some(event)) = tokio::time::timeout(
            settle_until.saturating_duration_since(Instant::now()),
            self.events.recv(),
        )
        .await
        {
            self.collected.push(event);
        }
        self.matching(a, b)
    }

    fn matching(&self, a: IpAddr, b: IpAddr) -> Vec<Flow> {
        let names: HashMap<u32, std::sync::Arc<str>> = self
            .probe
            .interfaces()
            .iter()
            .map(|(index, name)| (*index, name.as_str().into()))
            .collect();
        self.collected
            .iter()
            .map(|e| Flow::from_event(e, &self.clock, &names))
            .filter(|f| {
                let (s, d) = (f.source.ip(), f.destination.ip());
                (s == a && d == b) || (s == b && d == a)
            })
            .collect()
    }
}

/// Flows as text, one per line, for assertion messages.
pub fn render(flows: &[Flow]) -> String {
    flows.iter().map(|f| format!("  {f}\n")).collect::<String>()
}

/// Files served over HTTP by python's `http.server` inside a pod; the
/// server stops and its directory is removed when this is dropped.
pub struct HttpServer {
    _process: holonet_lab::ChildGuard,
    dir: std::path::PathBuf,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl HttpServer {
    /// Serves `files` (path relative to the root, content) from `pod` on
    /// `port`, and waits until it listens.
    pub fn start(pod: &holonet_lab::Pod, port: u16, files: &[(&str, &str)]) -> Self {
        Self::start_on(pod, "0.0.0.0", port, files)
    }

    /// [`HttpServer::start`] on address `bind` (`::` serves IPv6 and IPv4).
    pub fn start_on(pod: &holonet_lab::Pod, bind: &str, port: u16, files: &[(&str, &str)]) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "holonet-http-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        for (path, content) in files {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().expect("a file has a parent")).expect("docroot");
            std::fs::write(&file, content).expect("served file");
        }
        std::fs::create_dir_all(&dir).expect("docroot");
        let process = pod
            .spawn(
                "http server",
                "python3",
                &[
                    "-m",
                    "http.server",
                    &port.to_string(),
                    "--bind",
                    bind,
                    "--directory",
                    &dir.to_string_lossy(),
                ],
            )
            .expect("starting python3 http.server");
        holonet_lab::wait_for_tcp_listener(&pod.netns, port, Duration::from_secs(15))
            .expect("server listening");
        Self {
            _process: process,
            dir,
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl ProbeHarness {
    /// Validates and compiles `policies` (YAML texts) against the
    /// `endpoints` file text for node `node`, and loads them into the probe,
    /// binding each local endpoint to the host veth of the pod with its
    /// address. Returns the compiled maps for assertions.
    pub fn enforce(
        &mut self,
        policies: &[&str],
        endpoints: &str,
        node: &str,
        pods: &[&holonet_lab::Pod],
    ) -> holonet_agent::datapath::compile::CompiledDatapath {
        use holonet_policy::{
            diag::SourceFile, endpoints::parse_endpoints, parse::parse_policies, resolve::resolve,
        };
        let cluster = parse_endpoints(&SourceFile::new("endpoints.yaml", endpoints))
            .expect("valid endpoints");
        let sources: Vec<SourceFile> = policies
            .iter()
            .enumerate()
            .map(|(i, text)| SourceFile::new(format!("policy-{i}.yaml"), *text))
            .collect();
        let parsed = parse_policies(&sources);
        assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        let compiled = holonet_agent::datapath::compile::compile(
            &resolve(&parsed.policies, std::sync::Arc::new(cluster)),
            node,
        )
        .expect("policies compile");
        self.load_compiled(&compiled, pods);
        compiled
    }

    /// Writes already compiled policies into the probe's maps (each pod's
    /// endpoint on its veth).
    pub fn load_compiled(
        &mut self,
        compiled: &holonet_agent::datapath::compile::CompiledDatapath,
        pods: &[&holonet_lab::Pod],
    ) {
        let ifindex: HashMap<String, u32> = self
            .probe
            .interfaces()
            .iter()
            .map(|(i, name)| (name.clone(), *i))
            .collect();
        let unattached = self
            .probe
            .load_policy(compiled, |ep| {
                let pod = pods.iter().find(|p| IpAddr::from(p.ip) == ep.ip)?;
                ifindex.get(&pod.host_ifname).copied()
            })
            .expect("policy loaded into the maps");
        assert!(
            unattached.is_empty(),
            "endpoints without an interface: {unattached:?}"
        );
    }
}

/// Python for scripts that build packets by hand: `csum(data)`, the
/// Internet checksum (RFC 1071) of `data`. Put it in front of the script,
/// which imports `struct` (looked up when `csum` is called).
pub const PYTHON_CHECKSUM: &str = r#"
def csum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xffff) + (total >> 16)
    return ~total & 0xffff
"#;

/// A DNS client for `python3 -c DNS_CLIENT SERVER NAME MODE`: sends one
/// crafted query (over IPv6 when SERVER has a colon) and prints the
/// answer's rcode, with ` QR` when it is a response, or TIMEOUT (also for
/// a datagram whose checksum the client's stack rejects). MODE: `query`,
/// `two-questions` or `response` (QR set).
pub const DNS_CLIENT: &str = r#"
import socket, struct, sys
server, name, mode = sys.argv[1], sys.argv[2], sys.argv[3]
qname = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
question = qname + b"\x00\x01\x00\x01"
flags, count = (0x0100, 1)
if mode == "two-questions":
    count = 2
    question = question * 2
if mode == "response":
    flags = 0x8180
msg = struct.pack(">HHHHHH", 0x4242, flags, count, 0, 0, 0) + question
s = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.5)
s.sendto(msg, (server, 53))
try:
    data, _ = s.recvfrom(4096)
    print("RCODE:%d" % (data[3] & 0x0f) + (" QR" if data[2] & 0x80 else ""))
except socket.timeout:
    print("TIMEOUT")
"#;

/// A lab pod as the endpoints file describes it.
#[derive(Clone, Copy, Debug)]
pub struct PodSpec<'a> {
    /// The pod (its name and address go into the file).
    pub pod: &'a holonet_lab::Pod,
    /// Its Kubernetes namespace.
    pub namespace: &'a str,
    /// Its labels as the inside of a YAML flow map, e.g. `org: payer`.
    pub labels: &'a str,
}

impl<'a> PodSpec<'a> {
    /// A pod of the seed story's namespace, `galactic-fhir`, with `labels`
    /// (`app: fhir`, `org: payer`, `org: empire`).
    pub fn galactic_fhir(pod: &'a holonet_lab::Pod, labels: &'a str) -> Self {
        Self {
            pod,
            namespace: "galactic-fhir",
            labels,
        }
    }
}

/// The endpoints file of `pods`, all on node `node` (dual-stack: each
/// pod's IPv6 address under `ips`).
pub fn endpoints_file(node: &str, pods: &[PodSpec<'_>]) -> String {
    let mut text = String::from("cluster: default\nendpoints:\n");
    for p in pods {
        text.push_str(&format!(
            "  - {{name: {}, namespace: {}, labels: {{{}}}, ip: {}, ips: [\"{}\"], node: {node}}}\n",
            p.pod.name, p.namespace, p.labels, p.pod.ip, p.pod.ip6
        ));
    }
    text
}

impl ProbeHarness {
    /// Starts the probe on every pod's veth and enforces `policies` on them
    /// (see [`ProbeHarness::enforce`]).
    pub fn start_enforcing(
        policies: &[&str],
        pods: &[PodSpec<'_>],
    ) -> (Self, holonet_agent::datapath::compile::CompiledDatapath) {
        let ifaces: Vec<&str> = pods.iter().map(|p| p.pod.host_ifname.as_str()).collect();
        let mut harness = Self::start(TcMode::Auto, &ifaces);
        let lab_pods: Vec<&holonet_lab::Pod> = pods.iter().map(|p| p.pod).collect();
        let compiled = harness.enforce(policies, &endpoints_file("lab", pods), "lab", &lab_pods);
        (harness, compiled)
    }
}
