//! `holonet demo`: two pods in network namespaces, a real HTTP server, real
//! curl requests, and the flows the probe reports, live.
//!
//! Everything the demo creates (namespaces, veths, the server process, its
//! files) is removed when it ends, whether it finishes, fails or is
//! interrupted; a run killed outright is cleaned up by the next one.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, bail};
use holonet_agent::{
    clock::MonotonicClock,
    events::EventReader,
    loader::{TcMode, TcProbe},
};
use holonet_lab::{Lab, Pod, wait_for_tcp_listener};

use super::agent::{TcModeArg, print_flows, shutdown_signal};

/// Port the demo's HTTP server listens on.
const SERVER_PORT: u16 = 8080;

/// Arguments of `holonet demo`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Create two pods (network namespaces `client` and `server`, each with a veth \
to the host, routed through the host like Cilium pods), start a real HTTP server in `server`, \
load holonet's TC probe on both host-side veths, and send real curl requests from `client`. \
Every TCP SYN, FIN and RST and every HTTP request line appears as a flow while it happens.\n\n\
Needs root. Everything created is removed on exit, on Ctrl-C and on failure."
)]
pub(crate) struct DemoArgs {
    /// How many rounds of requests to send.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rounds: u32,
    /// Pause between requests, in milliseconds.
    #[arg(long, default_value_t = 600, value_name = "MS")]
    pause_ms: u64,
    /// How to attach the TC classifiers.
    #[arg(long, value_enum, default_value_t)]
    tc_mode: TcModeArg,
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn server_files() -> anyhow::Result<TempDir> {
    let dir = std::env::temp_dir().join(format!("holonet-demo-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("intersystems/fhir/r5/Patient"))?;
    let guard = TempDir(dir);
    std::fs::write(guard.0.join("index.html"), "<h1>coruscanthealth</h1>\n")?;
    std::fs::write(
        guard.0.join("intersystems/fhir/r5/Patient/DarthVader"),
        "{\"resourceType\":\"Patient\",\"id\":\"DarthVader\"}\n",
    )?;
    Ok(guard)
}

/// The requests each round sends: method and path.
const REQUESTS: [(&str, &str); 4] = [
    ("GET", "/"),
    ("GET", "/intersystems/fhir/r5/Patient/DarthVader"),
    ("HEAD", "/intersystems/fhir/r5/Patient/DarthVader"),
    ("GET", "/intersystems/fhir/r5/Patient/Anakin?_format=json"),
];

async fn curl(client: &Pod, server: &Pod, method: &str, path: &str) -> anyhow::Result<String> {
    let url = format!("http://{}:{SERVER_PORT}{path}", server.ip);
    let mut args = vec![
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
    ];
    if method == "HEAD" {
        args.push("--head");
    } else {
        args.extend(["-X", method]);
    }
    args.push(&url);
    let output = tokio::process::Command::from(client.command("curl", &args))
        .output()
        .await
        .context("running curl in the client pod")?;
    let code = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if output.status.success() {
        Ok(code)
    } else {
        Ok(format!(
            "failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if !holonet_lab::is_root() {
        bail!("the demo creates network namespaces and loads BPF programs: run it as root");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
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

async fn demo(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    println!("holonet demo: pods in network namespaces, real HTTP, flows from the kernel\n");
    let mut lab = Lab::new().context("preparing the host for the demo pods")?;
    let client = lab.add_pod("client").context("creating pod `client`")?;
    let server = lab.add_pod("server").context("creating pod `server`")?;
    println!(
        "[1/4] pods: client {} (host veth {}), server {} (host veth {})",
        client.ip, client.host_ifname, server.ip, server.host_ifname
    );

    let files = server_files().context("writing the HTTP server's files")?;
    let port = SERVER_PORT.to_string();
    let directory = files.0.to_string_lossy().to_string();
    let _http_server = server
        .spawn(
            "HTTP server",
            "python3",
            &["-m", "http.server", &port, "--directory", &directory],
        )
        .context("starting python3 -m http.server in pod `server`")?;
    let netns = server.netns.clone();
    tokio::task::spawn_blocking(move || {
        wait_for_tcp_listener(&netns, SERVER_PORT, Duration::from_secs(10))
    })
    .await?
    .map_err(anyhow::Error::msg)?;
    println!(
        "[2/4] HTTP server (python3 http.server) listening in pod server on port {SERVER_PORT}"
    );

    let mut probe = TcProbe::load(TcMode::from(args.tc_mode)).context("loading the TC probe")?;
    probe.forward_probe_logs();
    for pod in [&client, &server] {
        probe
            .attach(&pod.host_ifname)
            .with_context(|| format!("attaching the TC probe to {}", pod.host_ifname))?;
    }
    let (mode, why) = probe.mode();
    println!("[3/4] TC probe loaded on both host veths via {mode} ({why})");
    println!("[4/4] curl from pod client; flows follow as the kernel reports them:");

    let reader = EventReader::new(probe.take_events()?)?;
    // Name each host-side veth after its pod in the flow lines.
    let names = probe
        .interfaces()
        .iter()
        .map(|(ifindex, ifname)| {
            let pod = [&client, &server]
                .into_iter()
                .find(|p| &p.host_ifname == ifname)
                .map_or_else(|| ifname.clone(), |p| format!("pod {}", p.name));
            (*ifindex, pod)
        })
        .collect();
    let printer = tokio::spawn(print_flows(reader, MonotonicClock::measure(), names));
    for round in 1..=args.rounds {
        for (method, path) in REQUESTS {
            println!(
                "\nclient$ curl -X {method} http://{}:{SERVER_PORT}{path}",
                server.ip
            );
            let status = curl(&client, &server, method, path).await?;
            // Let this request's flows print before its answer.
            tokio::time::sleep(Duration::from_millis(100)).await;
            println!("client$ -> HTTP {status}");
            tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
        }
        if round < args.rounds {
            println!();
        }
    }
    // Let the last FINs arrive before stopping the reader.
    tokio::time::sleep(Duration::from_millis(300)).await;
    printer.abort();
    let counters = probe.counters()?;
    println!(
        "\ndone: {} packets seen by the probe, {} flow events, {} lost, {} unparsable; cleaning up",
        counters.packets, counters.events_sent, counters.events_lost, counters.parse_errors
    );
    drop(probe);
    drop(lab);
    Ok(ExitCode::SUCCESS)
}
