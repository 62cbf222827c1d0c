//! Issue 2's end-to-end test: two pods in network namespaces, the TC probe
//! loaded into this kernel on the host-side veths, a real HTTP server
//! (python3 http.server) and real curl. It asserts the exact flows reported
//! for each connection, at each observation point, and that nothing else was
//! reported for it: with both veths attached each packet is reported once,
//! where it is delivered (to-endpoint); with only the client's attached, the
//! client's veth reports both directions.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use holonet_agent::{
    flow::{Flow, FlowKind, ObservationPoint, Verdict},
    loader::TcMode,
};
use holonet_lab::{Lab, Pod, wait_for_tcp_listener};
use holonet_tests::{ProbeHarness, ScratchDir, curl_status_args, privileged, render};
use probe_common::event::tcp_flags;

const PORT: u16 = 8080;

struct Setup {
    // Field order is drop order: the server stops before the lab goes away.
    _server_process: holonet_lab::ChildGuard,
    _docroot: ScratchDir,
    client: Pod,
    server: Pod,
    _lab: Lab,
}

fn setup(tag: &str) -> Setup {
    let mut lab = Lab::new().expect("preparing the lab");
    let client = lab.add_pod("client").expect("creating pod client");
    let server = lab.add_pod("server").expect("creating pod server");
    let docroot = ScratchDir::new(&format!("test-{tag}"));
    std::fs::write(
        docroot.path().join("hello.txt"),
        "hello from the server pod\n",
    )
    .expect("write file");
    let bind = server.ip.to_string();
    let dir = docroot.path().to_string_lossy().to_string();
    let process = server
        .spawn(
            "http server",
            "python3",
            &[
                "-m",
                "http.server",
                &PORT.to_string(),
                "--bind",
                &bind,
                "--directory",
                &dir,
            ],
        )
        .expect("starting python3 http.server");
    wait_for_tcp_listener(&server.netns, PORT, Duration::from_secs(15)).expect("server listening");
    Setup {
        _server_process: process,
        _docroot: docroot,
        client,
        server,
        _lab: lab,
    }
}

async fn curl(client: &Pod, server: &Pod, method: &str, path: &str) -> String {
    let url = format!("http://{}:{PORT}{path}", server.ip);
    let mut args = curl_status_args("10", &[]);
    if method == "HEAD" {
        args.push("--head");
    } else {
        args.extend(["-X", method]);
    }
    args.push(&url);
    let out = tokio::process::Command::from(client.command("curl", &args))
        .output()
        .await
        .expect("running curl");
    assert!(
        out.status.success(),
        "curl {method} {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What one flow says, reduced to what the test pins down exactly:
/// interface, observation point, direction and either the TCP flags or the
/// request line.
fn label(flow: &Flow) -> String {
    match &flow.kind {
        FlowKind::Tcp => {
            let f = flow.tcp_flags;
            if f.contains(tcp_flags::RST) {
                format!("RST ({f})")
            } else if f.contains(tcp_flags::SYN) {
                f.to_string()
            } else if f.contains(tcp_flags::FIN) {
                "FIN".to_string()
            } else {
                format!("unexpected flags {f}")
            }
        }
        FlowKind::HttpRequest(r) => format!("{} {} {}", r.method, r.path, r.protocol),
        FlowKind::HttpResponse(r) => format!("{} {}", r.protocol, r.code),
        other => format!("unexpected {other:?}"),
    }
}

/// Which host-side veths the probe is attached to.
#[derive(Clone, Copy, PartialEq)]
enum Attached {
    Both,
    ClientOnly,
}

/// Checks every flow of one connection against the exact expected set.
fn assert_connection(
    flows: &[Flow],
    client: &Pod,
    server: &Pod,
    attached: Attached,
    client_port: u16,
    request_line: &str,
    status: &str,
) {
    let c = SocketAddr::new(client.ip.into(), client_port);
    let s = SocketAddr::new(server.ip.into(), PORT);
    let mut seen: BTreeMap<(String, String, &str), Vec<String>> = BTreeMap::new();
    for f in flows {
        let direction = if f.source == c && f.destination == s {
            "client->server"
        } else if f.source == s && f.destination == c {
            "server->client"
        } else {
            panic!("flow with unexpected addresses {f}");
        };
        assert_eq!(f.verdict, Verdict::Forwarded, "{f}");
        let point = match f.observation {
            ObservationPoint::FromEndpoint => "from-endpoint",
            ObservationPoint::ToEndpoint => "to-endpoint",
            ObservationPoint::Unknown(_) => panic!("unknown observation point in {f}"),
        };
        let iface = f
            .interface
            .as_deref()
            .expect("interface name known")
            .to_string();
        seen.entry((iface, point.to_string(), direction))
            .or_default()
            .push(label(f));
    }
    let request = request_line.to_string();
    let mut expected: BTreeMap<(String, String, &str), Vec<String>> = BTreeMap::new();
    let forward = vec!["SYN".to_string(), request, "FIN".to_string()];
    // python's http.server answers in HTTP/1.0.
    let reply = vec![
        "SYN, ACK".to_string(),
        format!("HTTP/1.0 {status}"),
        "FIN".to_string(),
    ];
    // Between two attached veths a packet is reported where it is
    // delivered; towards an interface without the probe, where it leaves.
    let (forward_at, forward_point) = match attached {
        Attached::Both => (&server.host_ifname, "to-endpoint"),
        Attached::ClientOnly => (&client.host_ifname, "from-endpoint"),
    };
    expected.insert(
        (forward_at.clone(), forward_point.into(), "client->server"),
        forward,
    );
    expected.insert(
        (
            client.host_ifname.clone(),
            "to-endpoint".into(),
            "server->client",
        ),
        reply,
    );
    assert_eq!(
        seen,
        expected,
        "flows of connection {c} -> {s} differ from the expected set; all flows:\n{}",
        render(flows)
    );
}

/// Ports the client used, in order of first appearance.
fn client_ports(flows: &[Flow], client: &Pod) -> Vec<u16> {
    let mut ports = Vec::new();
    for f in flows {
        let port = if f.source.ip() == std::net::IpAddr::from(client.ip) {
            f.source.port()
        } else {
            f.destination.port()
        };
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}

async fn one_request_is_reported_exactly(mode: TcMode, attached: Attached, test: &str) {
    let Some(_watchdog) = privileged(test) else {
        return;
    };
    let setup = setup(test);
    let (client, server) = (&setup.client, &setup.server);
    let interfaces: &[&str] = match attached {
        Attached::Both => &[&client.host_ifname, &server.host_ifname],
        Attached::ClientOnly => &[&client.host_ifname],
    };
    let mut harness = ProbeHarness::start(mode, interfaces);

    let status = curl(client, server, "GET", "/hello.txt?lang=en").await;
    assert_eq!(status, "200");

    let flows = harness
        .flows_between(
            client.ip.into(),
            server.ip.into(),
            |f| f.len() >= 6,
            Duration::from_secs(10),
            Duration::from_millis(500),
        )
        .await;
    let ports = client_ports(&flows, client);
    assert_eq!(
        ports.len(),
        1,
        "expected one connection:\n{}",
        render(&flows)
    );
    assert_connection(
        &flows,
        client,
        server,
        attached,
        ports[0],
        "GET /hello.txt?lang=en HTTP/1.1",
        "200",
    );

    // The client's packets in order: handshake, request, then the close.
    let from_client: Vec<String> = flows
        .iter()
        .filter(|f| f.source.ip() == std::net::IpAddr::from(client.ip))
        .map(label)
        .collect();
    assert_eq!(
        from_client,
        ["SYN", "GET /hello.txt?lang=en HTTP/1.1", "FIN"]
    );

    let counters = harness.probe.counters().expect("counters");
    assert!(counters.events_sent >= 6, "{counters:?}");
    assert_eq!(counters.events_lost, 0, "{counters:?}");
    // Both directions' SYN, request or status line and FIN were left to
    // the receiving veth when it has the probe; none when it has not.
    match attached {
        Attached::Both => assert!(counters.events_deferred >= 6, "{counters:?}"),
        Attached::ClientOnly => assert_eq!(counters.events_deferred, 0, "{counters:?}"),
    }
}

#[tokio::test]
async fn one_request_is_reported_exactly_with_tcx() {
    one_request_is_reported_exactly(TcMode::Tcx, Attached::Both, "one_request_tcx").await;
}

#[tokio::test]
async fn one_request_is_reported_exactly_with_clsact() {
    one_request_is_reported_exactly(TcMode::Clsact, Attached::Both, "one_request_clsact").await;
}

#[tokio::test]
async fn without_the_servers_veth_the_clients_reports_both_directions() {
    one_request_is_reported_exactly(TcMode::Auto, Attached::ClientOnly, "one_request_client").await;
}

#[tokio::test]
async fn each_connection_reports_its_own_request_line() {
    let test = "three_connections";
    let Some(_watchdog) = privileged(test) else {
        return;
    };
    let setup = setup(test);
    let (client, server) = (&setup.client, &setup.server);
    let mut harness =
        ProbeHarness::start(TcMode::Auto, &[&client.host_ifname, &server.host_ifname]);

    let requests = [
        ("GET", "/hello.txt", "200"),
        ("HEAD", "/hello.txt", "200"),
        ("GET", "/missing/../nothing-here", "404"),
    ];
    for (method, path, want) in requests {
        assert_eq!(
            curl(client, server, method, path).await,
            want,
            "{method} {path}"
        );
    }
    let flows = harness
        .flows_between(
            client.ip.into(),
            server.ip.into(),
            |f| f.len() >= 18,
            Duration::from_secs(10),
            Duration::from_millis(500),
        )
        .await;
    let ports = client_ports(&flows, client);
    assert_eq!(
        ports.len(),
        3,
        "expected three connections:\n{}",
        render(&flows)
    );
    for (port, (method, path, status)) in ports.iter().zip(requests) {
        let of_connection: Vec<Flow> = flows
            .iter()
            .filter(|f| f.source.port() == *port || f.destination.port() == *port)
            .cloned()
            .collect();
        // curl normalises dot segments before sending the request.
        let sent_path = if path.contains("/../") {
            "/nothing-here"
        } else {
            path
        };
        assert_connection(
            &of_connection,
            client,
            server,
            Attached::Both,
            *port,
            &format!("{method} {sent_path} HTTP/1.1"),
            status,
        );
    }
}
