//! `holonet demo`: the galactic FHIR story in network namespaces, with real
//! HTTP and the flows holonet's probe reports, live.
//!
//! Pods of namespace `galactic-fhir` (the `coruscanthealth` FHIR server,
//! `grandmedicalfacility` of `org: empire`, the medical droids, and the
//! `org: payer` client) and `kube-dns` are network namespaces routed
//! through the host; holonet's TC probe sits on their host-side veths, and
//! the agent pipeline names every address from an endpoints file, keeps the
//! flows and serves them on 127.0.0.1:4245 (the Hubble port) while the
//! story runs.
//!
//! How the story is shown depends on where it goes: on a terminal the
//! dashboard opens with the story's captions over it ([`interactive`]);
//! into a pipe, or with `--headless`, flows print in `hubble observe`'s
//! compact form and the run ends with expected versus observed outcomes.
//! The steps themselves ([`story`]) and the background traffic
//! ([`background`]) are the same either way.
//!
//! Everything the demo creates (namespaces, veths, processes, files) is
//! removed when it ends, whether it finishes, fails or is interrupted; a run
//! killed outright is cleaned up by the next one.

mod background;
mod interactive;
mod story;

use std::{
    io::{IsTerminal, Write},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use holonet_agent::{
    agent_service::{AgentFacts, AgentService, PoliciesInForce, capabilities_response},
    events::EventReader,
    loader::{TcMode, TcProbe},
    observer::{
        endpoints,
        pipeline::{Pipeline, RunningPipeline},
        policy_names::PolicyNames,
        server::{self, Listen},
        service::ObserverService,
        store::{FlowStore, Follower, StoredEvent},
    },
    process::{ProcessAttribution, ProcessHook},
};
use holonet_flows::printer::{PrintOptions, Printer};
use holonet_lab::{ChildGuard, Lab, Pod, fhir::TokenMode, wait_for_tcp_listener};
use holonet_policy::resolve::Resolved;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{agent::TcModeArg, signals::shutdown_signal};
use story::{Checked, KUBE_DNS, POD_IDENTITIES, POD_NAMES, Played, SERVER, STORY};

/// The FHIR server's port, as in the seed story.
const FHIR_PORT: u16 = 52773;
/// The node name the demo's agent reports.
const NODE: &str = "holonet-demo";
/// Where the demo serves flows while it runs.
const DEMO_LISTEN: &str = "127.0.0.1:4245";

/// What `holonet demo --help` says first (also set on the subcommand in
/// main, whose doc comment would otherwise replace it).
pub(crate) const LONG_ABOUT: &str = "Play the galactic FHIR story with real traffic: pods of namespace galactic-fhir \
(coruscanthealth, a FHIR R5 server on port 52773; grandmedicalfacility of org: empire; the \
medical droids FX-6, DD-13 and 2-1B; the org: payer client) and kube-dns are network namespaces \
routed through the host. holonet's TC probe on their host-side veths reports every connection, \
HTTP request and DNS message and enforces the policies of policies/galactic-fhir, applied step \
by step. The droids poll and the payer retries in the background all along.\n\n\
On a terminal the dashboard opens with the story's captions in a banner: steps advance every \
--step-seconds or when you press n; when the story is over the dashboard stays open, traffic \
still flowing, until q. Into a pipe (or with --headless) flows print like `hubble observe` and \
the run ends with expected versus observed outcomes. The flows are also served on \
127.0.0.1:4245 while the demo runs.\n\n\
Needs root. Everything created is removed on exit, on q, on Ctrl-C and on failure; a run \
killed outright is cleaned up by the next one.";

/// Arguments of `holonet demo`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = LONG_ABOUT,
    after_help = "Examples:\n  \
      holonet demo                       # the dashboard with the story's captions\n  \
      holonet demo --step-seconds 3      # a quicker story (n: next step, q: quit)\n  \
      holonet demo | less                # text: every flow, like hubble observe\n  \
      holonet demo --keep-running | cat  # text, then keep it all up until Ctrl-C\n  \
      holonet demo --record /tmp/incident.jsonl   # replay: holonet --input-file FILE\n  \
      holonet demo --headless            # what CI runs: exit status says if the story held\n  \
      holonet demo --headless --tc-mode clsact"
)]
pub(crate) struct DemoArgs {
    /// On the dashboard: seconds from one step to the next (n skips ahead).
    #[arg(long, default_value_t = 6.0, value_name = "SECONDS",
          value_parser = parse_step_seconds)]
    step_seconds: f64,
    /// Text output: pause between steps, in milliseconds.
    #[arg(long, default_value_t = 700, value_name = "MS")]
    pause_ms: u64,
    /// Text output: after the story, keep the pods, the probe and the API
    /// up until Ctrl-C (the dashboard always stays open until q).
    #[arg(long)]
    keep_running: bool,
    /// Record every flow to FILE (one Hubble GetFlowsResponse per line), for
    /// `holonet --input-file FILE` or `hubble observe --input-file FILE`.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// No dashboard and no pauses: print every flow and a summary of
    /// expected versus observed outcomes, and exit non-zero if any differ
    /// (what CI runs).
    #[arg(long)]
    headless: bool,
    /// How to attach the TC classifiers.
    #[arg(long, value_enum, default_value_t)]
    tc_mode: TcModeArg,
}

/// `--step-seconds`: a finite number from 0.2 to 3600.
fn parse_step_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.2..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?}: expected seconds from 0.2 to 3600")),
    }
}

impl DemoArgs {
    /// Whether this run shows the dashboard: stdout is a terminal and
    /// `--headless` was not given. (main uses it to send logs to a file, so
    /// nothing writes over the dashboard.)
    pub(crate) fn opens_dashboard(&self) -> bool {
        !self.headless && std::io::stdout().is_terminal()
    }
}

/// Arguments of the hidden `holonet demo-fhir-server` (run inside a pod).
#[derive(Debug, clap::Args)]
pub(crate) struct FhirServerArgs {
    /// Port to listen on.
    #[arg(long, default_value_t = FHIR_PORT)]
    port: u16,
    /// Answer 401 to requests without a bearer token.
    #[arg(long)]
    require_token: bool,
    /// Answer 401 to requests without a bearer token while this file exists.
    #[arg(long, value_name = "PATH", conflicts_with = "require_token")]
    require_token_file: Option<PathBuf>,
    /// Exit when this process (the demo) is no longer the parent.
    #[arg(long, value_name = "PID")]
    demo_pid: Option<u32>,
}

/// Arguments of the hidden `holonet demo-dns-server` (run inside a pod).
#[derive(Debug, clap::Args)]
pub(crate) struct DnsServerArgs {
    /// UDP port to listen on.
    #[arg(long, default_value_t = 53)]
    port: u16,
    /// A pod name and its address, `name=ip` (repeat for each pod).
    #[arg(long = "pod", value_name = "NAME=IP")]
    pods: Vec<String>,
    /// Exit when this process (the demo) is no longer the parent.
    #[arg(long, value_name = "PID")]
    demo_pid: Option<u32>,
}

/// Ends this process soon after the demo that started it is gone: a demo
/// killed outright (SIGKILL) cannot stop its servers, and the next run only
/// finds their namespaces, not them. The servers are the demo's children,
/// so losing the parent means being reparented. The demo passes its pid
/// (`demo`): a demo killed before this server got this far has already
/// left it with another parent, which the first check catches.
fn exit_with_parent(demo: Option<u32>) {
    let parent = demo.unwrap_or_else(std::os::unix::process::parent_id);
    let watch = move || {
        loop {
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(0);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("parent-watch".to_owned())
        .spawn(watch)
    {
        log::warn!("cannot watch the demo process: {e}");
    }
}

/// Runs the demo's cluster DNS (inside the `kube-dns` pod).
pub(crate) fn run_dns_server(args: DnsServerArgs) -> anyhow::Result<ExitCode> {
    exit_with_parent(args.demo_pid);
    let mut pods = std::collections::HashMap::new();
    for entry in &args.pods {
        let (name, ip) = entry
            .split_once('=')
            .with_context(|| format!("--pod {entry}: expected NAME=IP"))?;
        let ip: std::net::Ipv4Addr = ip
            .parse()
            .with_context(|| format!("--pod {entry}: `{ip}` is not an IPv4 address"))?;
        pods.insert(name.to_ascii_lowercase(), ip);
    }
    let socket = std::net::UdpSocket::bind(("0.0.0.0", args.port))
        .with_context(|| format!("binding UDP port {}", args.port))?;
    holonet_lab::dns::serve(&socket, &pods)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the demo's FHIR server (inside the `coruscanthealth` pod).
pub(crate) fn run_fhir_server(args: FhirServerArgs) -> anyhow::Result<ExitCode> {
    exit_with_parent(args.demo_pid);
    let listener = std::net::TcpListener::bind(("0.0.0.0", args.port))
        .with_context(|| format!("listening on port {}", args.port))?;
    let tokens = match (args.require_token, args.require_token_file) {
        (true, _) => TokenMode::Required,
        (false, Some(path)) => TokenMode::WhileFileExists(path),
        (false, None) => TokenMode::Open,
    };
    holonet_lab::fhir::serve(listener, tokens)?;
    Ok(ExitCode::SUCCESS)
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The prefix of each run's files directory (then the pid).
const FILES_PREFIX: &str = "holonet-demo-";

/// Removes the files directories (`holonet-demo-<pid>`) in `dir` of demo
/// runs that no longer run, as a crashed or killed run leaves them; the
/// lab removes their namespaces the same way. Returns what was removed.
fn remove_stale_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(FILES_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id()
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            && std::fs::remove_dir_all(entry.path()).is_ok()
        {
            removed.push(entry.path());
        }
    }
    removed
}

const VADER: &str = r#"{"resourceType":"Patient","id":"DarthVader","gender":"male","birthDate":"1977-05-25","name":[{"use":"official","family":"Vader","given":["Darth"]}]}"#;

/// Where the policies the story applies are published: the pipeline names
/// them in flows, the API explains flows with them.
#[derive(Debug)]
pub(super) struct Published {
    names: watch::Sender<Option<Arc<PolicyNames>>>,
    policies: watch::Sender<Option<Arc<PoliciesInForce>>>,
}

impl Published {
    /// The policies now in force, resolved.
    pub(super) fn publish(&self, resolved: &Arc<Resolved>) {
        self.names
            .send_replace(Some(Arc::new(PolicyNames::new(Arc::clone(resolved)))));
        self.policies.send_replace(Some(Arc::new(PoliciesInForce {
            resolved: Arc::clone(resolved),
            origin: "the policies the demo applied so far".to_owned(),
        })));
    }
}

/// The Observer API's task and what stops it.
type Api = (
    tokio::sync::oneshot::Sender<()>,
    JoinHandle<Result<(), server::ListenError>>,
);

/// Everything the demo runs on. Fields drop in order: the background
/// traffic and the servers stop first, then the probe detaches, then the
/// pods and the files go.
pub(super) struct Stage {
    /// The droids and the payer, once the story started them.
    background: Option<background::Background>,
    /// The FHIR server and kube-dns.
    _servers: Vec<ChildGuard>,
    /// The TC probe on every pod's host-side veth.
    probe: TcProbe,
    /// The socket probe naming the processes behind flows.
    _processes: ProcessAttribution,
    /// The pods, in the order of [`story::POD_NAMES`].
    pods: Vec<Pod>,
    /// Where the story writes the policies it applies.
    policy_dir: PathBuf,
    /// Who each pod is, for the pipeline and the policies.
    endpoints_file: PathBuf,
    /// While this file exists the FHIR server wants a token (the outage).
    token_file: PathBuf,
    /// Vader's Patient resource, for the registration's PUT.
    vader: PathBuf,
    /// The flows, as the agent keeps them.
    store: Arc<FlowStore>,
    /// Probe events to flows.
    pipeline: RunningPipeline,
    /// The Observer API on 127.0.0.1:4245, when the port was free.
    api: Option<Api>,
    /// The policies applied so far, for flows and explanations.
    published: Published,
    /// The recorder (`--record`).
    recorder: Option<(PathBuf, JoinHandle<std::io::Result<()>>)>,
    _files: TempDir,
    _lab: Lab,
}

/// Starts a server in a pod and waits for its socket. The server runs this
/// executable through a link named `command` in `dir`, which becomes its
/// command name in flows (the kernel names a process after the file it
/// executed).
async fn start_server(
    pod: &Pod,
    (what, command, dir): (&str, &str, &Path),
    args: &[String],
    udp: bool,
    port: u16,
) -> anyhow::Result<ChildGuard> {
    // Our own executable by its /proc link: it stays valid even when a
    // rebuild replaces the file while the demo runs.
    let own = PathBuf::from(format!("/proc/{}/exe", std::process::id()));
    let target = if own.exists() {
        own
    } else {
        std::env::current_exe().context("finding the holonet binary")?
    };
    let exe = dir.join(command);
    std::os::unix::fs::symlink(&target, &exe)
        .with_context(|| format!("linking {} to {}", exe.display(), target.display()))?;
    let mut args = args.to_vec();
    args.extend(["--demo-pid".to_string(), std::process::id().to_string()]);
    let child = pod
        .spawn(what, &exe.to_string_lossy(), &args)
        .with_context(|| format!("starting the {what} in pod {}", pod.name))?;
    let netns = pod.netns.clone();
    tokio::task::spawn_blocking(move || {
        if udp {
            holonet_lab::wait_for_udp_socket(&netns, port, Duration::from_secs(10))
        } else {
            wait_for_tcp_listener(&netns, port, Duration::from_secs(10))
        }
    })
    .await?
    .map_err(anyhow::Error::msg)?;
    Ok(child)
}

impl Stage {
    /// Creates the pods, starts the servers, loads the probe, and starts
    /// the pipeline, the API and the recorder. Progress is printed (before
    /// any dashboard opens).
    async fn build(args: &DemoArgs) -> anyhow::Result<Self> {
        let mut lab = Lab::new().context("preparing the host for the demo pods")?;
        let mut pods = Vec::new();
        for name in POD_NAMES {
            pods.push(
                lab.add_pod(name)
                    .with_context(|| format!("creating pod `{name}`"))?,
            );
        }
        for stale in remove_stale_files(&std::env::temp_dir()) {
            log::info!(
                "removed {}, left by a demo that no longer runs",
                stale.display()
            );
        }
        let files =
            TempDir(std::env::temp_dir().join(format!("{FILES_PREFIX}{}", std::process::id())));
        std::fs::create_dir_all(&files.0)?;
        let endpoints_file = files.0.join("endpoints.yaml");
        let mut yaml = String::from("cluster: default\nendpoints:\n");
        for (pod, (namespace, labels)) in pods.iter().zip(POD_IDENTITIES) {
            yaml.push_str(&format!(
                "- {{name: {}, namespace: {namespace}, labels: {labels}, ip: {}, node: {NODE}}}\n",
                pod.name, pod.ip
            ));
        }
        std::fs::write(&endpoints_file, yaml)?;
        let vader = files.0.join("vader.json");
        std::fs::write(&vader, VADER)?;
        let who: Vec<String> = pods
            .iter()
            .zip(POD_IDENTITIES)
            .map(|(p, (ns, labels))| format!("{ns}/{} {} {labels}", p.name, p.ip))
            .collect();
        println!("[1/4] pods:\n      {}", who.join("\n      "));

        // kube-dns answers the pods' names; every pod resolves through it.
        let mut dns_args = vec!["demo-dns-server".to_string(), "--port".into(), "53".into()];
        for (i, p) in pods.iter().enumerate() {
            if i != KUBE_DNS {
                dns_args.extend(["--pod".to_string(), format!("{}={}", p.name, p.ip)]);
            }
        }
        // Process attribution starts before the servers, so their
        // listening sockets are seen.
        let processes = holonet_agent::process::start(ProcessHook::Auto);
        let dns = start_server(
            &pods[KUBE_DNS],
            ("DNS server", "kube-dns", &files.0),
            &dns_args,
            true,
            53,
        )
        .await?;
        for (i, pod) in pods.iter().enumerate() {
            if i != KUBE_DNS {
                lab.set_resolver(
                    pod,
                    pods[KUBE_DNS].ip,
                    &[
                        "galactic-fhir.svc.cluster.local",
                        "svc.cluster.local",
                        "cluster.local",
                    ],
                )?;
            }
        }
        let token_file = files.0.join("identity-provider-down");
        let fhir_args = [
            "demo-fhir-server".to_string(),
            "--port".into(),
            FHIR_PORT.to_string(),
            "--require-token-file".into(),
            token_file.to_string_lossy().to_string(),
        ];
        let fhir = start_server(
            &pods[SERVER],
            ("FHIR server", "fhir-server", &files.0),
            &fhir_args,
            false,
            FHIR_PORT,
        )
        .await?;
        println!(
            "[2/4] FHIR R5 server listening in coruscanthealth on port {FHIR_PORT}; kube-dns answers the pods' names"
        );
        let policy_dir = files.0.join("policies");
        std::fs::create_dir_all(&policy_dir)?;

        let mut probe =
            TcProbe::load(TcMode::from(args.tc_mode)).context("loading the TC probe")?;
        probe.forward_probe_logs();
        for pod in &pods {
            probe
                .attach(&pod.host_ifname)
                .with_context(|| format!("attaching the TC probe to {}", pod.host_ifname))?;
        }
        let (mode, why) = probe.mode();
        let directory = endpoints::load(&endpoints_file, NODE)?;
        // The directory never changes during the demo: the receiver keeps
        // it after the sender is gone.
        let (_, endpoints_rx) = tokio::sync::watch::channel(Arc::new(directory));
        let store = Arc::new(FlowStore::new(65_536));
        let reader = EventReader::new(probe.take_events()?)?;
        let (names, names_rx) = watch::channel(None);
        let (policies, policies_rx) = watch::channel(None);
        let published = Published { names, policies };
        let mut pipeline = Pipeline::new(NODE, probe.interfaces().clone(), endpoints_rx)
            .with_policy_names(names_rx);
        if let Some(feed) = &processes.feed {
            pipeline = pipeline.with_processes(Arc::clone(feed));
        }
        let pipeline_store = Arc::clone(&store);
        let pipeline = pipeline.spawn(reader, pipeline_store, |_| {});
        let recorder = args.record.clone().map(|path| {
            let task = tokio::spawn(holonet_agent::observer::export::run(
                Arc::clone(&store),
                holonet_agent::observer::export::ExportConfig {
                    path: path.clone(),
                    max_size_bytes: u64::MAX,
                    max_backups: 0,
                },
                NODE.to_string(),
            ));
            (path, task)
        });
        let api = match server::bind(&Listen {
            tcp: DEMO_LISTEN.parse().ok(),
            unix: None,
            allow_remote: false,
        })
        .await
        {
            Ok(listeners) => {
                let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
                let service = ObserverService::new(Arc::clone(&store), NODE);
                let agent = AgentService::new(
                    capabilities_response(AgentFacts {
                        node_name: NODE.to_owned(),
                        tc_mode: format!("{mode} ({why})"),
                        policy_mode: "enforce".to_owned(),
                        interfaces: pods.iter().map(|p| p.host_ifname.clone()).collect(),
                        pin_dir: None,
                        process: (processes.active(), processes.detail.clone()),
                    }),
                    policies_rx,
                );
                let task = tokio::spawn(server::serve_with_agent(
                    listeners,
                    service,
                    Some(agent),
                    async move {
                        let _ = stop_rx.await;
                    },
                ));
                Some((stop_tx, task))
            }
            Err(err) => {
                println!("      (not serving flows on {DEMO_LISTEN}: {err})");
                None
            }
        };
        println!("[3/4] TC probe on the pods' host veths via {mode} ({why})");
        println!("      process attribution: {}", processes.detail);
        if api.is_some() {
            println!(
                "      flows are served on {DEMO_LISTEN}: try `holonet observe --server localhost:4245 --last 50`"
            );
        }
        Ok(Self {
            background: None,
            _servers: vec![fhir, dns],
            probe,
            _processes: processes,
            pods,
            policy_dir,
            endpoints_file,
            token_file,
            vader,
            store,
            pipeline,
            api,
            published,
            recorder,
            _files: files,
            _lab: lab,
        })
    }

    /// Stops the traffic, the pipeline, the API and the recorder, then
    /// removes everything (by dropping the stage).
    async fn finish(mut self) {
        self.background = None;
        // What the probe handed over by now is stored (and recorded) first.
        if !self.pipeline.stop(Duration::from_secs(5)).await {
            eprintln!("holonet demo: storing the last events took over 5 s; stopping without them");
        }
        self.store.close();
        if let Some((stop, task)) = self.api.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        if let Some((path, task)) = self.recorder.take() {
            match tokio::time::timeout(Duration::from_secs(5), task).await {
                Ok(Ok(Ok(()))) => println!(
                    "flows recorded in {}; replay with: holonet --input-file {}",
                    path.display(),
                    path.display()
                ),
                Ok(Ok(Err(err))) => eprintln!("holonet demo: recording failed: {err}"),
                _ => eprintln!("holonet demo: the recording did not finish in time"),
            }
        }
        println!("cleaning up");
        drop(self);
    }
}

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if !holonet_lab::is_root() {
        bail!("the demo creates network namespaces and loads BPF programs: run it as root");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let interrupted = || {
        eprintln!("\nholonet demo: interrupted; cleaning up");
        Ok(ExitCode::from(130))
    };
    runtime.block_on(async {
        let dashboard = args.opens_dashboard();
        println!(
            "holonet demo: the galactic FHIR story, observed from the kernel{}\n",
            if dashboard {
                " (the dashboard opens once the pods are up)"
            } else {
                ""
            }
        );
        // Until the dashboard owns the terminal, a signal interrupts the
        // demo; dropping what was built so far cleans it up.
        let mut stage = tokio::select! {
            stage = Stage::build(&args) => stage?,
            () = shutdown_signal() => return interrupted(),
        };
        if dashboard {
            // The dashboard turns Ctrl-C, SIGTERM and SIGHUP into q.
            let label = if stage.api.is_some() {
                format!("holonet demo, also on {DEMO_LISTEN}")
            } else {
                "holonet demo".to_owned()
            };
            let pace = interactive::Pace {
                step: Duration::from_secs_f64(args.step_seconds),
                label,
            };
            println!("[4/4] the story, over the dashboard");
            let told = interactive::play(&mut stage, pace).await;
            stage.finish().await;
            let told = told?;
            if told.steps < STORY.len() && told.error.is_none() {
                println!(
                    "\nstopped after step {}/{} of the story",
                    told.steps,
                    STORY.len()
                );
            }
            let mismatches = summary(&told.checked);
            if let Some(e) = told.error {
                return Err(e);
            }
            return Ok(verdict(mismatches));
        }
        let played = tokio::select! {
            played = text(&mut stage, &args) => played,
            () = shutdown_signal() => return interrupted(),
        };
        let checked = match played {
            Ok(c) => c,
            Err(e) => {
                stage.finish().await;
                return Err(e);
            }
        };
        let counters = stage.probe.counters()?;
        println!(
            "\nthe probe saw {} packets and reported {} events ({} lost, {} unparsable); the agent stored {} flows.",
            counters.packets,
            counters.events_sent,
            counters.events_lost,
            counters.parse_errors,
            stage.store.status().seen_flows
        );
        let mismatches = summary(&checked);
        println!(
            "\nwhy the payer's other request was dropped:\n  holonet policy trace --policies policies/galactic-fhir \\\n    \
             --endpoints policies/endpoints/galactic-fhir.yaml --from galactic-fhir/payer \\\n    \
             --to galactic-fhir/coruscanthealth --proto tcp --dport 52773 \\\n    \
             --http-method GET --http-path /intersystems/fhir/r5/Patient/Anakin"
        );
        if args.keep_running && stage.api.is_some() {
            println!("\nkeeping everything up; Ctrl-C to stop and clean up");
            shutdown_signal().await;
        }
        stage.finish().await;
        Ok(verdict(mismatches))
    })
}

/// The exit status: failure when a request did not end as the story says.
fn verdict(mismatches: usize) -> ExitCode {
    if mismatches > 0 {
        eprintln!("holonet demo: {mismatches} step(s) did not end as the story says");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints expected versus observed for every request; returns how many
/// differ.
fn summary(checked: &[Checked]) -> usize {
    println!("\nexpected versus observed:");
    let mut mismatches = 0;
    for c in checked {
        if !c.ok() {
            mismatches += 1;
        }
        println!(
            "  {} {:<40} expected {:<8} observed {}",
            if c.ok() { "ok  " } else { "FAIL" },
            c.what,
            c.expected,
            c.observed
        );
    }
    mismatches
}

/// Prints every flow appended to `store` from now on, like `hubble observe -f`.
async fn print_store(store: Arc<FlowStore>) {
    let color = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut printer = Printer::new(
        std::io::stdout(),
        PrintOptions {
            color,
            ..PrintOptions::default()
        },
    );
    let from = store.next_seq();
    let mut follower = Follower::new(store, from);
    while let Some(range) = follower.next_batch(usize::MAX).await {
        for event in &range.events {
            if matches!(**event, StoredEvent::Flow(_)) {
                let _ = printer.write(&event.to_response(NODE));
            }
        }
        let _ = printer.flush();
    }
}

/// The story as text: every flow printed as it comes, each step announced
/// and its outcome told; returns the requests checked.
async fn text(stage: &mut Stage, args: &DemoArgs) -> anyhow::Result<Vec<Checked>> {
    let pause = if args.headless {
        Duration::ZERO
    } else {
        Duration::from_millis(args.pause_ms)
    };
    let printer = tokio::spawn(print_store(Arc::clone(&stage.store)));
    println!("[4/4] the story, with every flow the kernel reports:");
    let mut checked = Vec::new();
    for step in &STORY {
        println!("{}", step.announce());
        std::io::stdout().flush()?;
        match stage.play(step).await? {
            Played::Quiet => {}
            Played::Note(note) => println!("    {note}"),
            Played::Request(c) => {
                println!("    -> {}", c.shown());
                checked.push(c);
            }
        }
        tokio::time::sleep(pause).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Flows still arriving from the background traffic are not printed
    // after the summary.
    printer.abort();
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_of_runs_that_no_longer_run_are_removed() {
        let dir = std::env::temp_dir().join(format!("holonet-demo-test-{}", std::process::id()));
        let _cleanup = TempDir(dir.clone());
        // pid_max is at most 2^22 on Linux: this pid never runs.
        let dead = dir.join(format!("{FILES_PREFIX}999999999"));
        let alive = dir.join(format!("{FILES_PREFIX}{}", std::process::id()));
        let other = dir.join("holonet-demo-notapid");
        for d in [&dead, &alive, &other] {
            std::fs::create_dir_all(d.join("policies")).unwrap();
        }
        assert_eq!(remove_stale_files(&dir), vec![dead.clone()]);
        assert!(!dead.exists());
        assert!(alive.exists() && other.exists());
        assert!(remove_stale_files(&dir.join("missing")).is_empty());
    }

    #[test]
    fn step_seconds_are_bounded() {
        assert_eq!(parse_step_seconds("6"), Ok(6.0));
        assert_eq!(parse_step_seconds(" 0.5 "), Ok(0.5));
        for bad in ["0", "-1", "NaN", "inf", "1e9", "six", ""] {
            assert!(parse_step_seconds(bad).is_err(), "{bad}");
        }
    }
}
