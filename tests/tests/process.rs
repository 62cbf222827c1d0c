//! Process attribution end to end: the socket probe in this kernel, the TC
//! probe on two pods' veths, and the pipeline naming the process at each
//! end of every TCP flow while a real curl fetches from a real Python
//! server, over IPv4 and IPv6.
//!
//! Servers that never read, in two pods on the same wildcard port, are
//! named only through their listeners, told apart by network namespace.
//!
//! Each hook set is checked on its own, and both must name the same
//! processes for the same traffic: kprobes where the kernel has them (the
//! kernel matrix runs this in VMs that do), raw tracepoints everywhere.
//! On a kernel without kprobes the kprobe test asserts that loading them
//! fails with a clear error instead.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use holonet_agent::{
    capabilities::{self, Hook},
    events::EventReader,
    loader::{TcMode, TcProbe},
    observer::{
        endpoints,
        pipeline::Pipeline,
        store::{FlowStore, StoredEvent},
    },
    process::{self, ProcessHook},
};
use holonet_lab::{Lab, output_within, wait_for_tcp_listener};
use holonet_proto::flow::{Flow, HolonetProcess, layer4};
use holonet_tests::{ScratchDir, privileged};

/// What one flow says about its ends: (kind, source, destination) with
/// processes as `command[pid]` or `-`.
type Attributed = (String, String, String);

fn show(process: Option<&HolonetProcess>) -> String {
    process.map_or_else(|| "-".to_string(), |p| format!("{}[{}]", p.command, p.pid))
}

fn describe(flow: &Flow) -> String {
    if let Some(l7) = &flow.l7 {
        return format!("l7 {:?}", l7.r#type());
    }
    let flags = match flow.l4.as_ref().and_then(|l4| l4.protocol.as_ref()) {
        Some(layer4::Protocol::Tcp(tcp)) => tcp.flags.as_ref().map_or(String::new(), |f| {
            [
                (f.syn, "SYN"),
                (f.ack, "ACK"),
                (f.fin, "FIN"),
                (f.rst, "RST"),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join("-")
        }),
        _ => String::new(),
    };
    format!("tcp {flags}")
}

/// Runs curl from a client pod to a Python server in another, with the
/// socket probe attached by `hook`, and returns every TCP flow's
/// attribution, with the pids replaced by role names so runs compare.
/// With `server_first`, the server listens before the socket probe is
/// attached, as a server does that ran before the agent started.
async fn attributed_flows(
    test: &str,
    hook: ProcessHook,
    server_first: bool,
) -> BTreeSet<Attributed> {
    let mut lab = Lab::new().expect("lab");
    let client = lab.add_pod("client").expect("client pod");
    let server_pod = lab.add_pod("server").expect("server pod");
    let scratch = ScratchDir::new(test);
    let dir = scratch.path();
    std::fs::write(dir.join("hello.txt"), "hello\n").expect("file");

    let start_probe = || {
        let attribution = process::start(hook);
        let feed = attribution
            .feed
            .clone()
            .unwrap_or_else(|| panic!("process attribution did not start: {}", attribution.detail));
        (attribution, feed)
    };
    let early = (!server_first).then(start_probe);
    let mut server = server_pod
        .spawn(
            "http server",
            "python3",
            &[
                "-m",
                "http.server",
                "--bind",
                "::",
                "8080",
                "--directory",
                &dir.to_string_lossy(),
            ],
        )
        .expect("server");
    wait_for_tcp_listener(&server_pod.netns, 8080, Duration::from_secs(15)).expect("listening");
    let server_pid = server.pid().expect("server pid");
    let (attribution, feed) = early.unwrap_or_else(start_probe);

    let mut probe = TcProbe::load(TcMode::Auto).expect("TC probe");
    probe.attach(&client.host_ifname).expect("attach client");
    probe
        .attach(&server_pod.host_ifname)
        .expect("attach server");
    let endpoints_file = dir.join("endpoints.yaml");
    std::fs::write(
        &endpoints_file,
        format!(
            "cluster: default\nendpoints:\n- {{name: client, namespace: lab, labels: {{app: client}}, ip: {}, ips: [{}], node: n}}\n- {{name: server, namespace: lab, labels: {{app: server}}, ip: {}, ips: [{}], node: n}}\n",
            client.ip, client.ip6, server_pod.ip, server_pod.ip6
        ),
    )
    .expect("endpoints file");
    let directory = endpoints::load(&endpoints_file, "n").expect("endpoints");
    let (_endpoints_tx, endpoints_rx) = tokio::sync::watch::channel(Arc::new(directory));
    let store = Arc::new(FlowStore::new(4096));
    let reader = EventReader::new(probe.take_events().expect("events")).expect("reader");
    let pipeline =
        Pipeline::new("n", probe.interfaces().clone(), endpoints_rx).with_processes(feed);
    let pipeline_task = tokio::spawn(pipeline.run(reader, Arc::clone(&store), |_| {}));

    for url in [
        format!("http://{}:8080/hello.txt", server_pod.ip),
        format!("http://[{}]:8080/hello.txt", server_pod.ip6),
    ] {
        let mut cmd = client.command(
            "curl",
            &["-sS", "-o", "/dev/null", "-w", "%{http_code}", &url],
        );
        let out = output_within(&mut cmd, Duration::from_secs(20)).expect("curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "curl {url}");
    }
    // Both exchanges end with FINs; give the ring a moment to drain.
    tokio::time::sleep(Duration::from_millis(500)).await;
    pipeline_task.abort();
    let (events, _) = store.snapshot();
    server.stop();
    drop(probe);
    drop(attribution);
    drop(scratch);
    drop(lab);

    let mut out = BTreeSet::new();
    for event in events {
        let StoredEvent::Flow(stored) = event.as_ref() else {
            continue;
        };
        let flow = &stored.to_flow();
        let name = |p: Option<&HolonetProcess>| {
            let shown = show(p);
            match p {
                Some(p) if p.pid == server_pid => {
                    assert_eq!(p.command, "python3", "{shown}");
                    "server:python3".to_string()
                }
                Some(p) if p.command == "curl" => "client:curl".to_string(),
                _ => shown,
            }
        };
        out.insert((
            describe(flow),
            name(flow.holonet_source_process.as_ref()),
            name(flow.holonet_destination_process.as_ref()),
        ));
    }
    out
}

/// Every flow of the exchange, in either direction, names curl as the
/// client and the Python server (by its pid) as the server.
fn assert_both_ends_named(flows: &BTreeSet<Attributed>) {
    assert!(!flows.is_empty(), "no TCP flows were recorded");
    let text: Vec<String> = flows
        .iter()
        .map(|(k, s, d)| format!("{k}: {s} -> {d}"))
        .collect();
    let text = text.join("\n");
    eprintln!("{text}");
    assert!(
        flows.contains(&(
            "tcp SYN".into(),
            "client:curl".into(),
            "server:python3".into()
        )),
        "the SYN names curl and the listening server:\n{text}"
    );
    assert!(
        flows.contains(&(
            "l7 Request".into(),
            "client:curl".into(),
            "server:python3".into()
        )),
        "the request names both ends:\n{text}"
    );
    assert!(
        flows.contains(&(
            "l7 Response".into(),
            "server:python3".into(),
            "client:curl".into()
        )),
        "the response names both ends:\n{text}"
    );
    for (kind, source, destination) in flows {
        let ends: BTreeSet<&str> = [source.as_str(), destination.as_str()].into();
        assert_eq!(
            ends,
            BTreeSet::from(["client:curl", "server:python3"]),
            "{kind} is attributed wrongly:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_tracepoints_name_the_client_and_the_server() {
    let Some(_watchdog) = privileged("process_tracepoint") else {
        return;
    };
    let flows = attributed_flows("process-tp", ProcessHook::Tracepoint, false).await;
    assert_both_ends_named(&flows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kprobes_name_the_same_processes_as_the_fallback() {
    let Some(_watchdog) = privileged("process_kprobe") else {
        return;
    };
    if !capabilities::probe(Hook::Kprobe).available {
        // This kernel has no kprobes: asking for them must fail loudly.
        let attribution = process::start(ProcessHook::Kprobe);
        assert!(attribution.feed.is_none());
        assert!(
            attribution
                .detail
                .starts_with("failed: kprobes on tcp_connect"),
            "{}",
            attribution.detail
        );
        eprintln!(
            "kprobes are missing on this kernel ({}); the kernel matrix runs the kprobe path in VMs",
            attribution.detail
        );
        return;
    }
    let kprobes = attributed_flows("process-kp", ProcessHook::Kprobe, false).await;
    assert_both_ends_named(&kprobes);
    let tracepoints = attributed_flows("process-kp-tp", ProcessHook::Tracepoint, false).await;
    assert_eq!(
        kprobes, tracepoints,
        "both hook sets name the same processes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_listening_before_the_agent_started_is_named_from_proc() {
    let Some(_watchdog) = privileged("process_existing") else {
        return;
    };
    let flows = attributed_flows("process-pre", ProcessHook::Auto, true).await;
    assert_both_ends_named(&flows);
}

/// A listening socket that is never accepted from or read: connections to
/// it complete in the kernel, and only its listener names the process.
const SILENT_SERVER: &str = "import socket, time\n\
s = socket.socket(socket.AF_INET6)\n\
s.bind(('::', 8080))\n\
s.listen(16)\n\
time.sleep(120)\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_on_one_port_in_two_pods_are_told_apart() {
    let Some(_watchdog) = privileged("process_listeners") else {
        return;
    };
    let mut lab = Lab::new().expect("lab");
    let client = lab.add_pod("client").expect("client pod");
    let pods = [
        lab.add_pod("silent-a").expect("pod a"),
        lab.add_pod("silent-b").expect("pod b"),
    ];
    let attribution = process::start(ProcessHook::Auto);
    let feed = attribution
        .feed
        .clone()
        .unwrap_or_else(|| panic!("process attribution did not start: {}", attribution.detail));
    let mut servers = Vec::new();
    for pod in &pods {
        let server = pod
            .spawn("silent server", "python3", &["-c", SILENT_SERVER])
            .expect("server");
        wait_for_tcp_listener(&pod.netns, 8080, Duration::from_secs(15)).expect("listening");
        servers.push(server);
    }
    let pids: Vec<u32> = servers.iter().map(|s| s.pid().expect("pid")).collect();

    let mut probe = TcProbe::load(TcMode::Auto).expect("TC probe");
    probe.attach(&client.host_ifname).expect("attach client");
    let (_endpoints_tx, endpoints_rx) =
        tokio::sync::watch::channel(Arc::new(endpoints::EndpointDirectory::default()));
    let store = Arc::new(FlowStore::new(4096));
    let reader = EventReader::new(probe.take_events().expect("events")).expect("reader");
    let pipeline =
        Pipeline::new("n", probe.interfaces().clone(), endpoints_rx).with_processes(feed);
    let pipeline_task = tokio::spawn(pipeline.run(reader, Arc::clone(&store), |_| {}));
    for pod in &pods {
        // The request is sent and never answered: curl gives up after 1 s.
        let url = format!("http://{}:8080/", pod.ip);
        let mut cmd = client.command("curl", &["-sS", "--max-time", "1", &url]);
        let _ = output_within(&mut cmd, Duration::from_secs(20)).expect("curl ran");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    pipeline_task.abort();
    let (events, _) = store.snapshot();
    for server in &mut servers {
        server.stop();
    }
    drop(probe);
    drop(attribution);

    for (pod, pid) in pods.iter().zip(&pids) {
        let to_pod: Vec<(String, String)> = events
            .iter()
            .filter_map(|e| match e.as_ref() {
                StoredEvent::Flow(f)
                    if f.shared_parts()
                        .ip
                        .is_some_and(|ip| ip.destination == pod.ip.to_string()) =>
                {
                    let f = f.to_flow();
                    Some((describe(&f), show(f.holonet_destination_process.as_ref())))
                }
                _ => None,
            })
            .collect();
        let want = format!("python3[{pid}]");
        for kind in ["tcp SYN", "l7 Request"] {
            assert!(
                to_pod.contains(&(kind.to_string(), want.clone())),
                "{kind} to {} names {want}: {to_pod:?}",
                pod.name
            );
        }
        assert!(
            to_pod.iter().all(|(_, p)| *p == want),
            "every flow to {} names {want}: {to_pod:?}",
            pod.name
        );
    }
    drop(lab);
}
