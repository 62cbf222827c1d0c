//! `holonet agent`: load the probes, keep the flows, serve them.
//!
//! The agent attaches the TC probe to the given interfaces, turns every
//! event into a Hubble flow, keeps the newest ones in a bounded ring and
//! serves them over Hubble's Observer gRPC API (a unix socket and
//! 127.0.0.1:4245 by default), so `holonet observe`, the TUI and the real
//! `hubble` CLI can all read them. It can also record flows to a file and
//! print them as they arrive.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context;
use holonet_agent::{
    agent_service::{AgentFacts, AgentService, PoliciesInForce, capabilities_response},
    events::EventReader,
    loader::{TcMode, TcProbe},
    observer::{
        endpoints::{self, EndpointDirectory},
        export::{self, ExportConfig},
        metrics::{self, SharedMetrics},
        pipeline::{Pipeline, kernel_lost},
        policy_names::PolicyNames,
        server::{self, DEFAULT_TCP, DEFAULT_UNIX_SOCKET, Listen},
        service::ObserverService,
        store::{DEFAULT_CAPACITY, FlowStore},
    },
    process::ProcessHook,
    tls::ServerTlsFiles,
};

use super::signals::Shutdown;

/// How to attach the TC classifiers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TcModeArg {
    /// tcx on kernels 6.6 and later, clsact before.
    #[default]
    Auto,
    /// tcx links only.
    Tcx,
    /// clsact qdisc with netlink filters only.
    Clsact,
}

impl From<TcModeArg> for TcMode {
    fn from(arg: TcModeArg) -> Self {
        match arg {
            TcModeArg::Auto => Self::Auto,
            TcModeArg::Tcx => Self::Tcx,
            TcModeArg::Clsact => Self::Clsact,
        }
    }
}

/// Which hooks name the process behind each TCP flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProcessHookArg {
    /// kprobes where the kernel has them, raw tracepoints otherwise.
    #[default]
    Auto,
    /// kprobes only (fails, with a warning, where the kernel has none).
    Kprobe,
    /// Raw tracepoints only.
    Tracepoint,
    /// No process attribution.
    Off,
}

impl From<ProcessHookArg> for ProcessHook {
    fn from(arg: ProcessHookArg) -> Self {
        match arg {
            ProcessHookArg::Auto => Self::Auto,
            ProcessHookArg::Kprobe => Self::Kprobe,
            ProcessHookArg::Tracepoint => Self::Tracepoint,
            ProcessHookArg::Off => Self::Off,
        }
    }
}

/// What `holonet agent --help` explains (the subcommand's one-line summary
/// in main.rs would hide a `long_about` set here).
pub(crate) const LONG_ABOUT: &str = "Load holonet's TC probe, attach it to the given \
interfaces (ingress and egress), and turn every event into a Hubble flow: TCP SYN, FIN and \
RST, HTTP requests and responses (with latency), DNS queries and answers, and every drop \
with its reason. With --endpoints and --policies it enforces CiliumNetworkPolicies in the \
kernel (L3/L4, HTTP method and path, DNS names; a denied request gets 403, a denied query \
REFUSED) and pins the probe so enforcement outlives the agent. Flows are kept in a bounded \
ring and served over Hubble's Observer gRPC API (TCP flows name the process at each end, \
from kprobes or, where the kernel has none, raw tracepoints), so `holonet observe`, the TUI and the \
`hubble` CLI can read them.\n\n\
Attach it to the host-side veth of each pod: TC ingress there is the pod's egress \
(from-endpoint), TC egress the pod's ingress (to-endpoint). A packet between two attached \
pods is reported once, where it is delivered. Needs root (or CAP_BPF, \
CAP_NET_ADMIN and CAP_PERFMON). Stops cleanly on Ctrl-C, SIGTERM and SIGHUP.";

/// Arguments of `holonet agent`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
      holonet agent --iface lxc1234 --iface lxc5678\n  \
      holonet agent -i veth0 --print                       # also print flows on stdout\n  \
      holonet agent -i veth0 --export-file /var/log/holonet/flows.log\n  \
      holonet agent -i veth0 --endpoints policies/endpoints/galactic-fhir.yaml\n  \
      holonet agent -i veth0 --endpoints eps.yaml --policies policies/   # enforce (pinned)\n  \
      holonet agent -i veth0 --endpoints eps.yaml --policies policies/ --policy-mode audit\n  \
      holonet agent --remove-pinned                        # detach what an agent left enforcing\n  \
      holonet agent -i veth0 --metrics-listen 127.0.0.1:9965   # then: curl 127.0.0.1:9965/metrics\n  \
      holonet agent -i veth0 --listen-address 0.0.0.0:4245 --allow-remote \\\n      \
      --tls-cert-file node.pem --tls-key-file node-key.pem --tls-client-ca-files ca.pem\n  \
      hubble observe --server localhost:4245 --last 20     # read them with the hubble CLI")]
pub(crate) struct AgentArgs {
    /// Interface to attach to (repeat for several).
    #[arg(
        long = "iface",
        short = 'i',
        value_name = "NAME",
        required_unless_present = "remove_pinned"
    )]
    ifaces: Vec<String>,
    /// How to attach the TC classifiers.
    #[arg(long, value_enum, default_value_t)]
    tc_mode: TcModeArg,
    /// Which hooks name the process at each end of TCP flows (socket
    /// owners seen at connect, listen and read); `holonet status` says
    /// which one `auto` picks here.
    #[arg(long, value_enum, default_value_t)]
    process_hook: ProcessHookArg,
    /// Name of this node, stamped on every flow.
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
    /// Flows kept in memory for GetFlows.
    #[arg(long, default_value_t = DEFAULT_CAPACITY as u64, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=16_777_216))]
    ring_size: u64,
    /// TCP address of the gRPC API ("none" to disable).
    #[arg(long, default_value = DEFAULT_TCP, value_name = "ADDR")]
    listen_address: String,
    /// Unix socket of the gRPC API ("none" to disable).
    #[arg(long, default_value = DEFAULT_UNIX_SOCKET, value_name = "PATH")]
    unix_socket: String,
    /// Allow --listen-address and --metrics-listen outside loopback (flows
    /// and counts reveal who talks to whom).
    #[arg(long)]
    allow_remote: bool,
    /// Serve Prometheus metrics (GET /metrics) on this address, e.g.
    /// 127.0.0.1:9965 (default: off).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Serve the gRPC API over TLS on --listen-address with this PEM
    /// certificate (with --tls-key-file; the unix socket stays plain).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key_file",
        help_heading = "TLS"
    )]
    tls_cert_file: Option<PathBuf>,
    /// The certificate's PEM private key.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert_file",
        help_heading = "TLS"
    )]
    tls_key_file: Option<PathBuf>,
    /// Require client certificates signed by these PEM CAs (mutual TLS).
    #[arg(long, value_name = "FILE", num_args = 1.., requires = "tls_cert_file",
          help_heading = "TLS")]
    tls_client_ca_files: Vec<PathBuf>,
    /// Record flows to this file, one Hubble GetFlowsResponse per line.
    #[arg(long, value_name = "PATH")]
    export_file: Option<PathBuf>,
    /// Rotate the export file when it reaches this size.
    #[arg(long, default_value_t = 10, value_name = "MB",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    export_file_max_size_mb: u64,
    /// Rotated export files to keep.
    #[arg(long, default_value_t = 5, value_name = "N")]
    export_file_max_backups: usize,
    /// Also print every flow on stdout, one line each.
    #[arg(long)]
    print: bool,
    /// Endpoints file (pods: name, namespace, labels, IP, node) to name the
    /// addresses in flows and to enforce policies on; reloaded when it changes.
    #[arg(long, value_name = "FILE")]
    endpoints: Option<PathBuf>,
    /// Enforce these CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy
    /// files or directories (repeat for several; needs --endpoints). Changes
    /// are applied without a gap; a configuration with a rejected policy is
    /// refused and the last good one stays in force.
    #[arg(long = "policies", value_name = "PATH", requires = "endpoints")]
    policies: Vec<PathBuf>,
    /// `enforce`: drop what the policies deny. `audit`: decide exactly the
    /// same, drop nothing, and report what would have been dropped with
    /// verdict AUDIT (try a policy on live traffic first).
    #[arg(long, value_enum, default_value_t = PolicyMode::Enforce, value_name = "MODE")]
    policy_mode: PolicyMode,
    /// With --policies, the probe's maps and links are pinned here, so
    /// enforcement goes on while the agent is stopped, restarted or
    /// upgraded; the next agent takes over without a gap.
    #[arg(long, default_value = DEFAULT_PIN_DIR, value_name = "DIR")]
    pin_dir: PathBuf,
    /// Do not pin: the probe is detached when the agent exits.
    #[arg(long)]
    no_pin: bool,
    /// Detach and remove everything an agent pinned under --pin-dir, then exit.
    #[arg(long, conflicts_with = "ifaces")]
    remove_pinned: bool,
}

/// Where `holonet agent` pins an enforcing probe.
const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/holonet";

/// What the datapath does with traffic the policies deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PolicyMode {
    /// Drop it (and answer HTTP 403 for requests denied by L7 rules).
    Enforce,
    /// Pass it, reported with verdict AUDIT.
    Audit,
}

/// Modification times and sizes of every configuration file, to notice edits.
fn config_fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, Option<std::time::SystemTime>, u64)> {
    fn walk(
        p: &std::path::Path,
        depth: u32,
        out: &mut Vec<(PathBuf, Option<std::time::SystemTime>, u64)>,
    ) {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() && depth < 8 => {
                if let Ok(entries) = std::fs::read_dir(p) {
                    let mut children: Vec<PathBuf> =
                        entries.filter_map(Result::ok).map(|e| e.path()).collect();
                    children.sort();
                    for c in children {
                        walk(&c, depth + 1, out);
                    }
                }
            }
            Ok(m) => out.push((p.to_path_buf(), m.modified().ok(), m.len())),
            Err(_) => out.push((p.to_path_buf(), None, 0)),
        }
    }
    let mut out = Vec::new();
    for p in paths {
        walk(p, 0, &mut out);
    }
    out
}

/// Loads policies and endpoints into the probe; returns a one-line summary.
fn apply_policies(
    probe: &mut TcProbe,
    policies: &[PathBuf],
    endpoints_file: &std::path::Path,
    node_name: &str,
    mode: PolicyMode,
    publish: &dyn Fn(&Arc<holonet_policy::resolve::Resolved>),
) -> anyhow::Result<String> {
    let mut config = holonet_agent::datapath::config::load(policies, endpoints_file, node_name)?;
    if mode == PolicyMode::Audit {
        config.compiled.audit_only();
    }
    for warning in &config.warnings {
        eprintln!("holonet agent: {warning}");
    }
    let unattached = probe.apply_config(&config)?;
    publish(&config.resolved);
    let enforced = config.compiled.endpoints.len() - unattached.len();
    let verb = match mode {
        PolicyMode::Enforce => "in force",
        PolicyMode::Audit => "audited (nothing dropped)",
    };
    let mut summary = format!(
        "{} policy object(s) {verb} on {enforced} local endpoint(s)",
        config.policies
    );
    if !unattached.is_empty() {
        summary.push_str(&format!(
            "; not enforced (no attached interface routes to them): {}",
            unattached.join(", ")
        ));
    }
    Ok(summary)
}

fn optional(value: &str) -> Option<&str> {
    (!value.eq_ignore_ascii_case("none") && !value.is_empty()).then_some(value)
}

fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

pub(crate) fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    // One clear sentence on a kernel holonet cannot serve, before anything loads.
    holonet_agent::capabilities::ensure_supported().map_err(anyhow::Error::msg)?;
    if args.remove_pinned {
        let detached = holonet_agent::loader::remove_pinned(&args.pin_dir)
            .context("removing the pinned probe")?;
        eprintln!(
            "holonet agent: detached {detached} pinned link(s) and removed {}",
            args.pin_dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let pin = !args.no_pin && !args.policies.is_empty();
    let (names_tx, names_rx) = tokio::sync::watch::channel(None);
    let (policies_tx, policies_rx) = tokio::sync::watch::channel(None);
    let origin = format!(
        "{} (policies) and {} (endpoints)",
        args.policies
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        args.endpoints
            .as_ref()
            .map_or_else(String::new, |p| p.display().to_string())
    );
    let publish = |resolved: &Arc<holonet_policy::resolve::Resolved>| {
        names_tx.send_replace(Some(Arc::new(PolicyNames::new(Arc::clone(resolved)))));
        policies_tx.send_replace(Some(Arc::new(PoliciesInForce {
            resolved: Arc::clone(resolved),
            origin: origin.clone(),
        })));
    };
    let listen = Listen {
        tcp: optional(&args.listen_address)
            .map(|a| {
                a.parse::<SocketAddr>()
                    .with_context(|| format!("--listen-address `{a}` is not an IP:port address"))
            })
            .transpose()?,
        unix: optional(&args.unix_socket).map(PathBuf::from),
        allow_remote: args.allow_remote,
    };
    let node_name = args.node_name.clone().unwrap_or_else(default_node_name);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Listening from the start: a stop signal that comes while the agent
        // is still loading (it says "Ctrl-C to stop" before its socket probe
        // is up) stops it cleanly once it is up, instead of killing it
        // half-attached.
        let mut shutdown = Shutdown::listen();
        let directory = match &args.endpoints {
            Some(path) => endpoints::load(path, &node_name)?,
            None => EndpointDirectory::empty(),
        };
        let (endpoints_tx, endpoints_rx) = tokio::sync::watch::channel(Arc::new(directory));
        if let Some(path) = args.endpoints.clone() {
            tokio::spawn(endpoints::watch(
                path,
                node_name.clone(),
                endpoints_tx,
                Duration::from_secs(2),
            ));
        }
        let mut listeners = server::bind(&listen).await?;
        if let (Some(cert), Some(key)) = (&args.tls_cert_file, &args.tls_key_file) {
            let files = ServerTlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_cas: args.tls_client_ca_files.clone(),
            };
            listeners = listeners.with_tls(files.load().context("agent: TLS")?);
        }
        let metrics_listener = match args.metrics_listen {
            Some(addr) => Some(metrics::bind(addr, args.allow_remote).await?),
            None => None,
        };
        let mut probe = if pin {
            TcProbe::load_pinned(args.tc_mode.into(), &args.pin_dir)
                .context("loading the TC probe (pinned; --no-pin runs without)")?
        } else {
            TcProbe::load(args.tc_mode.into()).context("loading the TC probe")?
        };
        probe.forward_probe_logs();
        for iface in &args.ifaces {
            probe
                .attach(iface)
                .with_context(|| format!("attaching the TC probe to {iface}"))?;
        }
        let mut config_paths = args.policies.clone();
        if let Some(path) = &args.endpoints {
            config_paths.push(path.clone());
        }
        let mut fingerprint = config_fingerprint(&config_paths);
        if let (false, Some(endpoints_file)) = (args.policies.is_empty(), &args.endpoints) {
            let summary = apply_policies(&mut probe, &args.policies, endpoints_file, &node_name, args.policy_mode, &publish)
                .context("applying policies")?;
            eprintln!("holonet agent: {summary}");
        }
        // Only now that this probe enforces, the links of an agent that ran
        // before go: no gap in enforcement.
        let retired = probe.retire_replaced().context("taking over from the previous agent")?;
        if let Some(dir) = probe.pin_dir() {
            eprintln!(
                "holonet agent: probe pinned under {} (took over {retired} link(s) of a previous agent)",
                dir.display()
            );
        }
        let (mode, why) = probe.mode();
        let store = Arc::new(FlowStore::new(usize::try_from(args.ring_size).unwrap_or(DEFAULT_CAPACITY)));
        let mut serving = Vec::new();
        if let Some(addr) = listeners.tcp_addr() {
            serving.push(if listeners.tls_enabled() { format!("tls://{addr}") } else { addr.to_string() });
        }
        if let Some(path) = listeners.unix_path() {
            serving.push(format!("unix://{}", path.display()));
        }
        eprintln!(
            "holonet agent: node {node_name}, watching {} via {mode} ({why}); \
             serving flows on {}; Ctrl-C to stop",
            args.ifaces.join(", "),
            if serving.is_empty() { "nothing".to_string() } else { serving.join(" and ") }
        );

        let processes = holonet_agent::process::start(args.process_hook.into());
        eprintln!("holonet agent: process attribution: {}", processes.detail);
        let reader = EventReader::new(probe.take_events()?)?;
        let mut pipeline = Pipeline::new(node_name.clone(), probe.interfaces().clone(), endpoints_rx)
            .with_policy_names(names_rx);
        if let Some(feed) = &processes.feed {
            pipeline = pipeline.with_processes(std::sync::Arc::clone(feed));
        }
        let print = args.print;
        let pipeline_store = Arc::clone(&store);
        let mut pipeline = pipeline.spawn(reader, pipeline_store, move |flow| {
            if print {
                println!("{flow}");
            }
        });
        let export_task = args.export_file.clone().map(|path| {
            let config = ExportConfig {
                path,
                max_size_bytes: args.export_file_max_size_mb * 1024 * 1024,
                max_backups: args.export_file_max_backups,
            };
            tokio::spawn(export::run(Arc::clone(&store), config, node_name.clone()))
        });
        let (metrics_stop_tx, metrics_stop_rx) = tokio::sync::oneshot::channel::<()>();
        if let Some(listener) = metrics_listener {
            let shared = SharedMetrics::default();
            tokio::spawn(metrics::follow(Arc::clone(&store), Arc::clone(&shared)));
            if let Ok(addr) = listener.local_addr() {
                eprintln!("holonet agent: metrics on http://{addr}/metrics");
            }
            tokio::spawn(metrics::serve(listener, Arc::clone(&store), shared, async move {
                let _ = metrics_stop_rx.await;
            }));
        }
        let service = ObserverService::new(Arc::clone(&store), node_name.clone());
        let agent_service = AgentService::new(
            capabilities_response(AgentFacts {
                node_name: node_name.clone(),
                tc_mode: format!("{mode} ({why})"),
                policy_mode: if args.policies.is_empty() {
                    "observe".to_owned()
                } else {
                    format!("{:?}", args.policy_mode).to_lowercase()
                },
                interfaces: args.ifaces.clone(),
                pin_dir: probe.pin_dir().map(|d| d.display().to_string()),
                process: (processes.active(), processes.detail.clone()),
            }),
            policies_rx,
        );
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let mut server_task = tokio::spawn(server::serve_with_agent(listeners, service, Some(agent_service), async move {
            let _ = stop_rx.await;
        }));

        // Report events the kernel could not hand over as lost events.
        let mut lost_seen = 0;
        let mut process_lost_seen = 0;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let outcome: anyhow::Result<()> = loop {
            tokio::select! {
                () = shutdown.recv() => break Ok(()),
                result = pipeline.ended() => {
                    break match result {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(err)) => Err(err.into()),
                        Err(err) => Err(err.into()),
                    };
                }
                _ = tick.tick() => {
                    if let (false, Some(endpoints_file)) = (args.policies.is_empty(), &args.endpoints) {
                        let now = config_fingerprint(&config_paths);
                        if now != fingerprint {
                            fingerprint = now;
                            match apply_policies(&mut probe, &args.policies, endpoints_file, &node_name, args.policy_mode, &publish) {
                                Ok(summary) => eprintln!("holonet agent: configuration changed: {summary}"),
                                Err(err) => eprintln!(
                                    "holonet agent: NEW CONFIGURATION REFUSED, the previous one stays in force:\n{err:#}"
                                ),
                            }
                        }
                    }
                    if let Ok(counters) = probe.counters() {
                        if counters.events_lost > lost_seen {
                            store.push_batch([kernel_lost(counters.events_lost - lost_seen)]);
                            lost_seen = counters.events_lost;
                        }
                    }
                    if let Some(Ok(counters)) = processes.probe.as_ref().map(|p| p.counters()) {
                        if counters.lost > process_lost_seen {
                            eprintln!(
                                "holonet agent: {} socket-probe records lost (its ring was full); \
                                 some flows may lack their processes",
                                counters.lost - process_lost_seen
                            );
                            process_lost_seen = counters.lost;
                        }
                    }
                }
            }
        };
        // The events the kernel handed over by now are stored (and so
        // recorded) before the store closes; then followers end their
        // streams, so the graceful server shutdown has nothing to wait for,
        // and the exporter writes what is left.
        if !pipeline.stop(Duration::from_secs(5)).await {
            eprintln!("holonet agent: storing the last events took over 5 s; stopping without them");
        }
        store.close();
        let _ = stop_tx.send(());
        let _ = metrics_stop_tx.send(());
        // A client that stopped reading keeps its stream, and so the
        // graceful shutdown, open: give clients a moment, then stop anyway.
        match tokio::time::timeout(Duration::from_secs(5), &mut server_task).await {
            Ok(Ok(Err(err))) => eprintln!("holonet agent: {err}"),
            Ok(_) => {}
            Err(_) => {
                eprintln!(
                    "holonet agent: clients still connected 5 s after the stop; closing their connections"
                );
                server_task.abort();
            }
        }
        if let Some(task) = export_task {
            match tokio::time::timeout(Duration::from_secs(5), task).await {
                Ok(Ok(Err(err))) => eprintln!("holonet agent: recording flows failed: {err}"),
                Ok(_) => {}
                Err(_) => eprintln!("holonet agent: the recorder did not finish in time"),
            }
        }
        let counters = probe.counters()?;
        let status = store.status();
        eprintln!(
            "holonet agent: {} packets seen, {} events ({} lost in the kernel, {} left to the receiving interface), {} unparsable packets, {} flows stored",
            counters.packets,
            counters.events_sent,
            counters.events_lost,
            counters.events_deferred,
            counters.parse_errors,
            status.seen_flows
        );
        if let Some(Ok(counters)) = processes.probe.as_ref().map(|p| p.counters()) {
            eprintln!(
                "holonet agent: socket probe: {} records ({} lost, {} sockets unreadable)",
                counters.sent, counters.lost, counters.read_failed
            );
        }
        if let Some(dir) = probe.pin_dir() {
            eprintln!(
                "holonet agent: the probe stays attached and enforcing (pinned under {}); \
                 `holonet agent --remove-pinned` removes it",
                dir.display()
            );
        }
        outcome.map(|()| ExitCode::SUCCESS)
    })
}
