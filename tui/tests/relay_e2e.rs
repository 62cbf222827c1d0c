//! `holonet relay` in front of three `holonet agent` processes, each in its
//! own network namespace (a "node") with the probe on its `eth0`, while
//! real curl traffic crosses them. Checks the merged time order and node
//! names, filters passed upstream, `holonet observe` through the relay,
//! then kills one agent (SIGKILL): the relay keeps serving and reports the
//! node unavailable; after a restart it reconnects and a follower started
//! before the outage receives the restarted node's new flows.
//!
//! The agents serve mutual TLS and the relay dials them with a client
//! certificate (`--peer-tls*`), as Hubble Relay does.
//!
//! Real processes (not in-process agents) because "killed" must mean the
//! kernel closing the agent's sockets and detaching its probe. Needs root;
//! outside CI a run without root says so loudly, under CI=true it fails.
//! The in-process variant of the same checks is agent/tests/relay.rs.

use std::{
    fs::File,
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use holonet_lab::{ChildGuard, Lab, Pki, Pod, wait_for_tcp_listener};
use holonet_proto::{
    flow::{Flow, FlowFilter, layer7},
    observer::{
        GetFlowsRequest, GetFlowsResponse, ServerStatusRequest, get_flows_response::ResponseTypes,
        observer_client::ObserverClient,
    },
    relay::NodeState,
};

const BIN: &str = env!("CARGO_BIN_EXE_holonet");
const AGENT_PORT: u16 = 4245;

/// Logs of the processes a test starts, removed at the end.
struct LogDir(PathBuf);

impl LogDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("holonet-relay-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("log dir");
        Self(dir)
    }

    fn file(&self, name: &str) -> (PathBuf, File) {
        let path = self.0.join(name);
        let file = File::create(&path).expect("log file");
        (path, file)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.0.join(name)).unwrap_or_default()
    }
}

impl Drop for LogDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts `holonet agent` inside `node`'s namespace, serving mutual TLS on
/// its address (as Hubble agents do towards Relay).
fn start_agent(node: &Pod, name: &str, logs: &LogDir, pki: &Pki, round: u32) -> ChildGuard {
    let log_name = format!("{name}-{round}.log");
    let (_, log) = logs.file(&log_name);
    let listen = format!("{}:{AGENT_PORT}", node.ip);
    let mut cmd = node.command(
        BIN,
        &[
            "agent",
            "--iface",
            "eth0",
            "--node-name",
            name,
            "--listen-address",
            &listen,
            "--allow-remote",
            "--unix-socket",
            "none",
            "--metrics-listen",
            "127.0.0.1:9965",
            "--tls-cert-file",
            &pki.path("server.pem").to_string_lossy(),
            "--tls-key-file",
            &pki.path("server.key").to_string_lossy(),
            "--tls-client-ca-files",
            &pki.path("ca.pem").to_string_lossy(),
        ],
    );
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    let guard = ChildGuard::spawn(&format!("agent {name}"), cmd).expect("spawn agent");
    if let Err(e) = wait_for_tcp_listener(&node.netns, AGENT_PORT, Duration::from_secs(30)) {
        panic!("agent {name} not listening: {e}\n{}", logs.read(&log_name));
    }
    guard
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn curl(pod: &Pod, url: &str) {
    let out = pod
        .command("curl", &holonet_lab::curl_status_args("5", &[url]))
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200",
        "curl {url} from {}: {}",
        pod.name,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn flows(responses: &[GetFlowsResponse]) -> Vec<Flow> {
    responses
        .iter()
        .filter_map(|r| match &r.response_types {
            Some(ResponseTypes::Flow(f)) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

fn url_of(f: &Flow) -> Option<&str> {
    match f.l7.as_ref().and_then(|l7| l7.record.as_ref()) {
        Some(layer7::Record::Http(h)) => Some(h.url.as_str()),
        _ => None,
    }
}

fn port_8080() -> Vec<FlowFilter> {
    vec![
        FlowFilter {
            destination_port: vec!["8080".into()],
            ..Default::default()
        },
        FlowFilter {
            source_port: vec!["8080".into()],
            ..Default::default()
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_behind_a_relay_one_killed_and_restarted() {
    let Some(_watchdog) = holonet_lab::privileged_test("three_agents_behind_a_relay") else {
        return;
    };
    let logs = LogDir::new();
    let pki = Pki::new("relay-e2e").expect("certificates");
    let mut lab = Lab::new().expect("lab");
    let nodes: Vec<Pod> = (1..=3)
        .map(|i| lab.add_pod(&format!("node-{i}")).expect("node"))
        .collect();
    // Lab pods only route the pod range; the relay runs in the root
    // namespace, so the nodes need a way back to it.
    for node in &nodes {
        node.run(
            "ip",
            &[
                "route",
                "add",
                "default",
                "via",
                "169.254.1.1",
                "dev",
                "eth0",
            ],
        )
        .expect("default route");
    }
    let server = lab.add_pod("web").expect("server pod");
    let docroot = logs.0.join("www");
    std::fs::create_dir_all(&docroot).expect("docroot");
    for name in [
        "n1-0", "n2-0", "n3-0", "n1-1", "n2-1", "n3-1", "n1-after", "n2-after",
    ] {
        std::fs::write(docroot.join(name), "x\n").expect("file");
    }
    let _web = server
        .spawn(
            "http server",
            "python3",
            &[
                "-m",
                "http.server",
                "8080",
                "--directory",
                &docroot.to_string_lossy(),
            ],
        )
        .expect("server");
    wait_for_tcp_listener(&server.netns, 8080, Duration::from_secs(15)).expect("listening");

    let names = ["node-1", "node-2", "node-3"];
    let mut agents: Vec<ChildGuard> = nodes
        .iter()
        .zip(names)
        .map(|(n, name)| start_agent(n, name, &logs, &pki, 0))
        .collect();

    let relay_port = free_port();
    let relay_addr = format!("127.0.0.1:{relay_port}");
    let (_, relay_log) = logs.file("relay.log");
    let mut relay_cmd = Command::new(BIN);
    relay_cmd.args([
        "relay",
        "--listen-address",
        &relay_addr,
        "--sort-window",
        "200ms",
    ]);
    for n in &nodes {
        relay_cmd.args(["--peer", &format!("{}:{AGENT_PORT}", n.ip)]);
    }
    // The agents' certificate names localhost, not their pod addresses.
    let p = |name: &str| pki.path(name).to_string_lossy().into_owned();
    relay_cmd
        .args(["--peer-tls", "--peer-tls-ca-cert-files", &p("ca.pem")])
        .args(["--peer-tls-client-cert-file", &p("client.pem")])
        .args(["--peer-tls-client-key-file", &p("client.key")])
        .args(["--peer-tls-server-name", "localhost"]);
    relay_cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(relay_log));
    let _relay = ChildGuard::spawn("relay", relay_cmd).expect("relay");
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(relay_addr.parse::<SocketAddr>().expect("addr")).is_err() {
        assert!(
            Instant::now() < deadline,
            "relay not listening:\n{}",
            logs.read("relay.log")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut api = ObserverClient::connect(format!("http://{relay_addr}"))
        .await
        .expect("connect to the relay");

    // An agent binds its port before it loads the probe: wait until the
    // relay has reached all three.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = api
            .server_status(ServerStatusRequest {})
            .await
            .expect("status")
            .into_inner();
        if status.num_connected_nodes.map(|v| v.value) == Some(3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the relay did not reach the three agents: {status:?}\n{}",
            logs.read("relay.log")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Two rounds of requests, the nodes taking turns.
    let web = |path: &str| format!("http://{}:8080/{path}", server.ip);
    for round in 0..2 {
        for (i, node) in nodes.iter().enumerate() {
            curl(node, &web(&format!("n{}-{round}", i + 1)));
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let history = |api: &mut ObserverClient<tonic::transport::Channel>| {
        let mut api = api.clone();
        async move {
            let mut stream = api
                .get_flows(GetFlowsRequest {
                    number: u64::MAX,
                    whitelist: port_8080(),
                    ..Default::default()
                })
                .await
                .expect("GetFlows through the relay")
                .into_inner();
            let mut got = Vec::new();
            while let Some(item) = stream.message().await.expect("stream ok") {
                got.push(item);
            }
            got
        }
    };
    let got = history(&mut api).await;
    let all = flows(&got);
    assert!(
        !all.is_empty(),
        "no flows through the relay:\n{}",
        logs.read("relay.log")
    );
    let times: Vec<i128> = all
        .iter()
        .map(|f| f.time.expect("time").as_nanos())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "merged flows are in time order: {times:?}"
    );
    for f in &all {
        assert!(
            names.contains(&f.node_name.as_str()),
            "node name {:?}",
            f.node_name
        );
        let l4 = format!("{:?}", f.l4);
        assert!(l4.contains("8080"), "the port filter went upstream: {l4}");
    }
    // Every request is reported by the node it left, interleaved across nodes.
    let mut order = Vec::new();
    for f in &all {
        if let Some(url) = url_of(f) {
            let path = url.rsplit('/').next().unwrap_or_default().to_string();
            let node = path
                .split('-')
                .next()
                .unwrap_or_default()
                .trim_start_matches('n')
                .to_string();
            assert_eq!(f.node_name, format!("node-{node}"), "{url}");
            if order.last() != Some(&path) {
                order.push(path);
            }
        }
    }
    assert_eq!(order, ["n1-0", "n2-0", "n3-0", "n1-1", "n2-1", "n3-1"]);

    // Each agent's metrics, scraped with curl inside its namespace.
    let scrape = nodes[0]
        .command(
            "curl",
            &["-sS", "--max-time", "5", "http://127.0.0.1:9965/metrics"],
        )
        .output()
        .expect("curl metrics");
    let text = String::from_utf8_lossy(&scrape.stdout);
    let l7_forwarded = text
        .lines()
        .find_map(|l| l.strip_prefix("holonet_flows_total{verdict=\"FORWARDED\",type=\"L7\"} "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no L7 flow count in:\n{text}"));
    assert!(l7_forwarded >= 2, "two requests from node-1:\n{text}");
    assert!(text.contains("holonet_flow_store_flows "), "{text}");

    // The same through `holonet observe`, with node names printed.
    let out = Command::new(BIN)
        .args([
            "observe",
            "--server",
            &relay_addr,
            "--all",
            "--port",
            "8080",
            "--print-node-name",
        ])
        .output()
        .expect("holonet observe");
    let text = String::from_utf8_lossy(&out.stdout);
    for name in names {
        assert!(text.contains(&format!("[{name}]")), "{name} in:\n{text}");
    }

    let status = api
        .server_status(ServerStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.num_connected_nodes.map(|v| v.value), Some(3));
    assert!(status.num_flows > 0);

    // A follower from before the outage.
    let mut follow = api
        .get_flows(GetFlowsRequest {
            follow: true,
            whitelist: port_8080(),
            ..Default::default()
        })
        .await
        .expect("follow")
        .into_inner();

    // Kill node-2's agent outright.
    let pid = agents[1].pid().expect("pid");
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    agents[1].stop();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        let status = api
            .server_status(ServerStatusRequest {})
            .await
            .expect("the relay keeps answering")
            .into_inner();
        if status.num_unavailable_nodes.map(|v| v.value) == Some(1) || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        status.num_connected_nodes.map(|v| v.value),
        Some(2),
        "{status:?}"
    );
    assert_eq!(status.unavailable_nodes, ["node-2"]);
    let got = history(&mut api).await;
    let nodes_seen: std::collections::BTreeSet<String> =
        flows(&got).into_iter().map(|f| f.node_name).collect();
    assert_eq!(
        nodes_seen.into_iter().collect::<Vec<_>>(),
        ["node-1", "node-3"],
        "the others are still served"
    );
    let down = got.iter().find_map(|r| match &r.response_types {
        Some(ResponseTypes::NodeStatus(s)) if s.state_change() == NodeState::NodeUnavailable => {
            Some(s.clone())
        }
        _ => None,
    });
    let down = down.expect("the history names the unavailable node");
    assert_eq!(down.node_names, ["node-2"]);
    assert!(
        down.message.starts_with(&format!(
            "relay: peer {}:{AGENT_PORT} unavailable:",
            nodes[1].ip
        )),
        "{}",
        down.message
    );
    let relay_log = logs.read("relay.log");
    assert!(
        relay_log.contains(&format!(
            "relay: peer {}:{AGENT_PORT} unavailable:",
            nodes[1].ip
        )),
        "{relay_log}"
    );

    // Restart it; the follower gets its flows again, and the others' too.
    agents[1] = start_agent(&nodes[1], "node-2", &logs, &pki, 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut live = Vec::new();
    let mut retry = tokio::time::Instant::now();
    loop {
        let urls: Vec<String> = flows(&live)
            .iter()
            .filter_map(|f| url_of(f).map(|u| format!("{} {u}", f.node_name)))
            .collect();
        let after = |n: &str| {
            urls.iter().any(|u| {
                u.starts_with(&format!("node-{n} ")) && u.ends_with(&format!("/n{n}-after"))
            })
        };
        if after("1") && after("2") {
            break;
        }
        if tokio::time::Instant::now() >= retry {
            // The relay reconnects with backoff: ask again until it has.
            curl(&nodes[1], &web("n2-after"));
            curl(&nodes[0], &web("n1-after"));
            retry = tokio::time::Instant::now() + Duration::from_secs(2);
        }
        match tokio::time::timeout(Duration::from_millis(500), follow.message()).await {
            Ok(item) => live.push(item.expect("follow ok").expect("follow open")),
            Err(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "no flows from the restarted node within 30 s; got {urls:?}\n{}",
                logs.read("relay.log")
            ),
        }
    }
    let events: Vec<(NodeState, Vec<String>)> = live
        .iter()
        .filter_map(|r| match &r.response_types {
            Some(ResponseTypes::NodeStatus(s)) => Some((s.state_change(), s.node_names.clone())),
            _ => None,
        })
        .collect();
    assert!(
        events.contains(&(NodeState::NodeUnavailable, vec!["node-2".to_string()])),
        "{events:?}"
    );
    assert!(
        events.contains(&(NodeState::NodeConnected, vec!["node-2".to_string()])),
        "{events:?}"
    );
    let status = api
        .server_status(ServerStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.num_connected_nodes.map(|v| v.value), Some(3));
    assert!(status.unavailable_nodes.is_empty());
}
