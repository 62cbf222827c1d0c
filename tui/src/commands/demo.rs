//! `holonet demo`: the galactic FHIR story in network namespaces, with real
//! HTTP and the flows holonet's probe reports, live.
//!
//! Pods of namespace `galactic-fhir` (the `coruscanthealth` FHIR server,
//! `grandmedicalfacility` of `org: empire`, and the `org: payer` client) are
//! network namespaces routed through the host; holonet's TC probe sits on
//! their host-side veths, and the agent pipeline names every address from an
//! endpoints file, keeps the flows and serves them on 127.0.0.1:4245 (the
//! Hubble port) while the story runs. Flows print in `hubble observe`'s
//! compact form.
//!
//! Everything the demo creates (namespaces, veths, processes, files) is
//! removed when it ends, whether it finishes, fails or is interrupted; a run
//! killed outright is cleaned up by the next one.

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use holonet_agent::{
    events::EventReader,
    loader::{TcMode, TcProbe},
    observer::{
        endpoints,
        pipeline::Pipeline,
        server::{self, Listen},
        service::ObserverService,
        store::{FlowStore, Follower, StoredEvent},
    },
};
use holonet_flows::printer::{PrintOptions, Printer};
use holonet_lab::{
    Lab, Pod,
    fhir::{FHIR_BASE, TokenMode},
    wait_for_tcp_listener,
};

use super::agent::{TcModeArg, shutdown_signal};

/// The FHIR server's port, as in the seed story.
const FHIR_PORT: u16 = 52773;
/// The node name the demo's agent reports.
const NODE: &str = "holonet-demo";
/// Where the demo serves flows while it runs.
const DEMO_LISTEN: &str = "127.0.0.1:4245";

/// Arguments of `holonet demo`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Play the galactic FHIR story with real traffic: pods of namespace galactic-fhir \
(coruscanthealth, a FHIR R5 server on port 52773; grandmedicalfacility of org: empire; the \
org: payer client) are network namespaces routed through the host. holonet's TC probe on their \
host-side veths reports every connection and HTTP request; the agent pipeline names the pods \
and serves the flows on 127.0.0.1:4245 while the demo runs. Flows print like `hubble observe`.\n\n\
Needs root. Everything created is removed on exit, on Ctrl-C and on failure.",
    after_help = "Examples:\n  \
      holonet demo\n  \
      holonet demo --keep-running          # then, in another terminal: holonet observe -f --server localhost:4245\n  \
      holonet demo --record /tmp/incident.jsonl   # then: holonet --input-file /tmp/incident.jsonl\n  \
      holonet demo --headless              # no pauses; exit status says whether the story held\n  \
      holonet demo --pause-ms 0 --tc-mode clsact"
)]
pub(crate) struct DemoArgs {
    /// Pause between steps, in milliseconds.
    #[arg(long, default_value_t = 700, value_name = "MS")]
    pause_ms: u64,
    /// After the story, keep the pods, the probe and the API up until Ctrl-C.
    #[arg(long)]
    keep_running: bool,
    /// Record every flow to FILE (one Hubble GetFlowsResponse per line), for
    /// `holonet --input-file FILE` or `hubble observe --input-file FILE`.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// No pauses; print a summary of expected versus observed outcomes and
    /// exit non-zero if any differ (what CI runs).
    #[arg(long)]
    headless: bool,
    /// How to attach the TC classifiers.
    #[arg(long, value_enum, default_value_t)]
    tc_mode: TcModeArg,
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
}

/// Runs the demo's cluster DNS (inside the `kube-dns` pod).
pub(crate) fn run_dns_server(args: DnsServerArgs) -> anyhow::Result<ExitCode> {
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

const VADER: &str = r#"{"resourceType":"Patient","id":"DarthVader","gender":"male","birthDate":"1977-05-25","name":[{"use":"official","family":"Vader","given":["Darth"]}]}"#;

/// What a request step should end with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// This HTTP status.
    Status(&'static str),
    /// Dropped by the datapath (the client times out).
    Dropped,
}

/// One step of the story.
enum Step {
    /// Someone sends a request.
    Request {
        caption: &'static str,
        from: usize,
        method: &'static str,
        patient: &'static str,
        expect: Expect,
    },
    /// The operator applies a policy file from policies/galactic-fhir.
    Apply {
        caption: &'static str,
        file: &'static str,
        yaml: &'static str,
    },
    /// The identity provider goes down (`true`) or the server is opened.
    Outage { caption: &'static str, down: bool },
}

/// Indices into the demo's pods.
const SERVER: usize = 0;
const EMPIRE: usize = 1;
const PAYER: usize = 2;
const KUBE_DNS: usize = 3;

const DENY_ALL: &str =
    include_str!("../../../policies/galactic-fhir/00-denyall-coruscanthealth.yaml");
const EMPIRE_L7: &str = include_str!("../../../policies/galactic-fhir/10-l7-visibility.yaml");
const PAYER_L7: &str = include_str!("../../../policies/galactic-fhir/20-l7-visibility-payer.yaml");

const STORY: [Step; 14] = [
    Step::Request {
        caption: "Palpatine's registration desk (org: empire) admits Darth Vader",
        from: EMPIRE,
        method: "PUT",
        patient: "DarthVader",
        expect: Expect::Status("201"),
    },
    Step::Outage {
        caption: "Galactic IT outage: the identity provider is down, the SMART-enabled server wants tokens",
        down: true,
    },
    Step::Request {
        caption: "the care team tries to read Vader's record",
        from: EMPIRE,
        method: "GET",
        patient: "DarthVader",
        expect: Expect::Status("401"),
    },
    Step::Apply {
        caption: "deny all traffic cluster-wide, except DNS (CiliumClusterwideNetworkPolicy)",
        file: "00-denyall-coruscanthealth.yaml",
        yaml: DENY_ALL,
    },
    Step::Request {
        caption: "the care team tries again",
        from: EMPIRE,
        method: "GET",
        patient: "DarthVader",
        expect: Expect::Dropped,
    },
    Step::Outage {
        caption: "the FHIR endpoint is opened (SMART checks off): Cilium now guards the routes",
        down: false,
    },
    Step::Apply {
        caption: "allow org: empire GET and HEAD on Vader's record (CiliumNetworkPolicy l7-visibility)",
        file: "10-l7-visibility.yaml",
        yaml: EMPIRE_L7,
    },
    Step::Request {
        caption: "the care team reads Vader's record",
        from: EMPIRE,
        method: "GET",
        patient: "DarthVader",
        expect: Expect::Status("200"),
    },
    Step::Request {
        caption: "the care team checks the record",
        from: EMPIRE,
        method: "HEAD",
        patient: "DarthVader",
        expect: Expect::Status("200"),
    },
    Step::Request {
        caption: "...except the payer (org: payer) is getting dropped",
        from: PAYER,
        method: "GET",
        patient: "DarthVader",
        expect: Expect::Dropped,
    },
    Step::Apply {
        caption: "allow org: payer the same route (CiliumNetworkPolicy l7-visibility-payer)",
        file: "20-l7-visibility-payer.yaml",
        yaml: PAYER_L7,
    },
    Step::Request {
        caption: "that did not quite cut it: the payer asks for another patient",
        from: PAYER,
        method: "GET",
        patient: "Anakin",
        expect: Expect::Status("403"),
    },
    Step::Request {
        caption: "the payer is told to ask for the correct record",
        from: PAYER,
        method: "GET",
        patient: "DarthVader",
        expect: Expect::Status("200"),
    },
    Step::Request {
        caption: "...and Anakin Vader gets his legs: the care team reads the record once more",
        from: EMPIRE,
        method: "GET",
        patient: "DarthVader",
        expect: Expect::Status("200"),
    },
];

/// Sends one request; returns the HTTP status, or `dropped` when the
/// connection or request got no answer (curl timed out).
async fn curl(
    client: &Pod,
    server: &Pod,
    method: &str,
    patient: &str,
    body: &std::path::Path,
) -> anyhow::Result<String> {
    // By name, through kube-dns, as in the blog.
    let url = format!(
        "http://{}:{FHIR_PORT}{FHIR_BASE}/Patient/{patient}",
        server.name
    );
    let mut args = vec![
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "2",
    ];
    let data = format!("@{}", body.display());
    match method {
        "HEAD" => args.push("--head"),
        "PUT" => args.extend([
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/fhir+json",
            "--data-binary",
            &data,
        ]),
        other => args.extend(["-X", other]),
    }
    args.push(&url);
    let output = tokio::process::Command::from(client.command("curl", &args))
        .output()
        .await
        .context("running curl in a pod")?;
    let code = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if output.status.success() {
        Ok(code)
    } else if output.status.code() == Some(28) {
        Ok("dropped".to_string())
    } else {
        Ok(format!(
            "failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Enforces the policy directory in the kernel.
fn apply_policies(
    probe: &mut TcProbe,
    policy_dir: &std::path::Path,
    endpoints_file: &std::path::Path,
) -> anyhow::Result<String> {
    let config =
        holonet_agent::datapath::config::load(&[policy_dir.to_path_buf()], endpoints_file, NODE)?;
    let unattached = probe.apply_config(&config)?;
    if !unattached.is_empty() {
        bail!("no interface found for {}", unattached.join(", "));
    }
    Ok(format!(
        "{} policy object(s) enforced in the kernel",
        config.policies
    ))
}

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if !holonet_lab::is_root() {
        bail!("the demo creates network namespaces and loads BPF programs: run it as root");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        tokio::select! {
            result = demo(&args) => result,
            () = shutdown_signal() => {
                eprintln!("\nholonet demo: interrupted; cleaning up");
                Ok(ExitCode::from(130))
            }
        }
    })
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

async fn demo(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let pause = Duration::from_millis(args.pause_ms);
    println!("holonet demo: the galactic FHIR story, observed from the kernel\n");
    let mut lab = Lab::new().context("preparing the host for the demo pods")?;
    let mut pods = Vec::new();
    for name in [
        "coruscanthealth",
        "grandmedicalfacility",
        "payer",
        "kube-dns",
    ] {
        pods.push(
            lab.add_pod(name)
                .with_context(|| format!("creating pod `{name}`"))?,
        );
    }
    let files = TempDir(std::env::temp_dir().join(format!("holonet-demo-{}", std::process::id())));
    std::fs::create_dir_all(&files.0)?;
    let endpoints_file = files.0.join("endpoints.yaml");
    std::fs::write(
        &endpoints_file,
        format!(
            "cluster: default\nendpoints:\n\
             - {{name: coruscanthealth, namespace: galactic-fhir, labels: {{app: coruscanthealth}}, ip: {}, node: {NODE}}}\n\
             - {{name: grandmedicalfacility, namespace: galactic-fhir, labels: {{app: grandmedicalfacility, org: empire}}, ip: {}, node: {NODE}}}\n\
             - {{name: payer, namespace: galactic-fhir, labels: {{app: galactic-payer, org: payer}}, ip: {}, node: {NODE}}}\n\
             - {{name: kube-dns, namespace: kube-system, labels: {{k8s-app: kube-dns}}, ip: {}, node: {NODE}}}\n",
            pods[SERVER].ip, pods[EMPIRE].ip, pods[PAYER].ip, pods[KUBE_DNS].ip
        ),
    )?;
    let vader = files.0.join("vader.json");
    std::fs::write(&vader, VADER)?;
    println!(
        "[1/4] pods in galactic-fhir: coruscanthealth {}, grandmedicalfacility {} (org: empire), payer {} (org: payer)",
        pods[SERVER].ip, pods[EMPIRE].ip, pods[PAYER].ip
    );

    let exe = std::env::current_exe().context("finding the holonet binary")?;
    // kube-dns answers the pods' names; every pod resolves through it.
    let dns_names: Vec<String> = pods[..KUBE_DNS]
        .iter()
        .map(|p| format!("{}={}", p.name, p.ip))
        .collect();
    let mut dns_args = vec![
        "demo-dns-server".to_string(),
        "--port".to_string(),
        "53".to_string(),
    ];
    for n in &dns_names {
        dns_args.push("--pod".to_string());
        dns_args.push(n.clone());
    }
    let _dns = pods[KUBE_DNS]
        .spawn("DNS server", &exe.to_string_lossy(), &dns_args)
        .context("starting the DNS server in pod kube-dns")?;
    for pod in &pods[..KUBE_DNS] {
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
    let dns_netns = pods[KUBE_DNS].netns.clone();
    tokio::task::spawn_blocking(move || {
        holonet_lab::wait_for_udp_socket(&dns_netns, 53, Duration::from_secs(10))
    })
    .await?
    .map_err(anyhow::Error::msg)?;
    let port = FHIR_PORT.to_string();
    let token_file = files.0.join("identity-provider-down");
    let token_arg = token_file.to_string_lossy().to_string();
    let _fhir = pods[SERVER]
        .spawn(
            "FHIR server",
            &exe.to_string_lossy(),
            &[
                "demo-fhir-server",
                "--port",
                &port,
                "--require-token-file",
                &token_arg,
            ],
        )
        .context("starting the FHIR server in pod coruscanthealth")?;
    let netns = pods[SERVER].netns.clone();
    tokio::task::spawn_blocking(move || {
        wait_for_tcp_listener(&netns, FHIR_PORT, Duration::from_secs(10))
    })
    .await?
    .map_err(anyhow::Error::msg)?;
    println!("[2/4] FHIR R5 server listening in coruscanthealth on port {FHIR_PORT}");
    let policy_dir = files.0.join("policies");
    std::fs::create_dir_all(&policy_dir)?;

    let mut probe = TcProbe::load(TcMode::from(args.tc_mode)).context("loading the TC probe")?;
    probe.forward_probe_logs();
    for pod in &pods {
        probe
            .attach(&pod.host_ifname)
            .with_context(|| format!("attaching the TC probe to {}", pod.host_ifname))?;
    }
    let (mode, why) = probe.mode();
    let directory = endpoints::load(&endpoints_file, NODE)?;
    let (_endpoints_tx, endpoints_rx) = tokio::sync::watch::channel(Arc::new(directory));
    let store = Arc::new(FlowStore::new(65_536));
    let reader = EventReader::new(probe.take_events()?)?;
    let pipeline = Pipeline::new(NODE, probe.interfaces().clone(), endpoints_rx);
    let pipeline_task = tokio::spawn(pipeline.run(reader, Arc::clone(&store), |_| {}));
    let printer_task = tokio::spawn(print_store(Arc::clone(&store)));
    let recorder = args.record.clone().map(|path| {
        tokio::spawn(holonet_agent::observer::export::run(
            Arc::clone(&store),
            holonet_agent::observer::export::ExportConfig {
                path,
                max_size_bytes: u64::MAX,
                max_backups: 0,
            },
            NODE.to_string(),
        ))
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let api = match server::bind(&Listen {
        tcp: DEMO_LISTEN.parse().ok(),
        unix: None,
        allow_remote: false,
    })
    .await
    {
        Ok(listeners) => {
            let service = ObserverService::new(Arc::clone(&store), NODE);
            Some(tokio::spawn(server::serve(
                listeners,
                service,
                async move {
                    let _ = stop_rx.await;
                },
            )))
        }
        Err(err) => {
            println!("      (not serving flows: {err})");
            None
        }
    };
    println!("[3/4] TC probe on the pods' host veths via {mode} ({why})");
    if api.is_some() {
        println!(
            "      flows are served on {DEMO_LISTEN}: try `holonet observe --server localhost:4245 --last 50`"
        );
    }
    println!("[4/4] the story, with every flow the kernel reports:");

    let names = ["coruscanthealth", "grandmedicalfacility", "payer"];
    let pause = if args.headless { Duration::ZERO } else { pause };
    let mut results: Vec<(String, Expect, String)> = Vec::new();
    for step in &STORY {
        match step {
            Step::Outage { caption, down } => {
                println!("\n=== {caption}");
                if *down {
                    std::fs::write(&token_file, "down\n")?;
                } else {
                    std::fs::remove_file(&token_file)?;
                }
            }
            Step::Apply {
                caption,
                file,
                yaml,
            } => {
                println!("\n=== {caption}: policies/galactic-fhir/{file}");
                std::fs::write(policy_dir.join(file), yaml)?;
                let summary = apply_policies(&mut probe, &policy_dir, &endpoints_file)
                    .with_context(|| format!("applying {file}"))?;
                println!("    {summary}");
            }
            Step::Request {
                caption,
                from,
                method,
                patient,
                expect,
            } => {
                println!(
                    "\n--- {caption}: {method} {FHIR_BASE}/Patient/{patient} from {}",
                    names[*from]
                );
                std::io::stdout().flush()?;
                let observed = curl(&pods[*from], &pods[SERVER], method, patient, &vader).await?;
                tokio::time::sleep(Duration::from_millis(150)).await;
                let shown = if observed == "dropped" {
                    "no answer: dropped by holonet".to_string()
                } else {
                    format!("HTTP {observed}")
                };
                println!("    -> {shown}");
                results.push((
                    format!("{method} {patient} from {}", names[*from]),
                    *expect,
                    observed,
                ));
            }
        }
        tokio::time::sleep(pause).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let counters = probe.counters()?;
    println!(
        "\nthe probe saw {} packets and reported {} events ({} lost, {} unparsable); the agent stored {} flows.",
        counters.packets,
        counters.events_sent,
        counters.events_lost,
        counters.parse_errors,
        store.status().seen_flows
    );
    println!("\nexpected versus observed:");
    let mut mismatches = 0;
    for (what, expect, observed) in &results {
        let wanted = match expect {
            Expect::Status(code) => (*code).to_string(),
            Expect::Dropped => "dropped".to_string(),
        };
        let ok = &wanted == observed;
        if !ok {
            mismatches += 1;
        }
        println!(
            "  {} {what:<40} expected {wanted:<8} observed {observed}",
            if ok { "ok  " } else { "FAIL" }
        );
    }
    println!(
        "\nwhy the payer's other request was dropped:\n  holonet policy trace --policies policies/galactic-fhir \\\n    \
         --endpoints policies/endpoints/galactic-fhir.yaml --from galactic-fhir/payer \\\n    \
         --to galactic-fhir/coruscanthealth --proto tcp --dport 52773 \\\n    \
         --http-method GET --http-path /intersystems/fhir/r5/Patient/Anakin"
    );
    if args.keep_running && api.is_some() {
        println!("\nkeeping everything up; Ctrl-C to stop and clean up");
        shutdown_signal().await;
    }
    pipeline_task.abort();
    store.close();
    let _ = stop_tx.send(());
    if let Some(api) = api {
        let _ = tokio::time::timeout(Duration::from_secs(5), api).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), printer_task).await;
    if let (Some(task), Some(path)) = (recorder, &args.record) {
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
    drop(probe);
    drop(lab);
    if mismatches > 0 {
        eprintln!("holonet demo: {mismatches} step(s) did not end as the story says");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
