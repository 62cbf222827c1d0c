//! Enforcement over IPv6, as over IPv4: a request denied by L7 rules gets
//! `403 Forbidden` from the kernel at once (no hanging client), an allowed
//! one is answered by the server, a port without a rule is dropped, and a
//! DNS query denied by DNS rules is answered `REFUSED` with a UDP checksum
//! the client's stack accepts. The pods are dual-stack (the endpoints file
//! lists each pod's IPv6 address under `ips`), so rules select the server
//! by its labels whichever address family the client uses.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use holonet_agent::flow::{FlowKind, Verdict};
use holonet_lab::{Lab, Pod, output_within};
use holonet_tests::{DNS_CLIENT, HttpServer, PodSpec, ProbeHarness, privileged, render};

const POLICY: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: client-v6
  namespace: lab
spec:
  endpointSelector:
    matchLabels:
      app: client
  egress:
  - toEndpoints:
    - matchLabels:
        app: server
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http:
        - method: GET
          path: "/allowed"
  - toEndpoints:
    - matchLabels:
        app: server
    toPorts:
    - ports: [{port: "53", protocol: UDP}]
      rules:
        dns:
        - matchName: "ok.example"
"#;

/// Answers every query NOERROR with one AAAA-less empty answer, over IPv6.
const DNS_SERVER: &str = r#"
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("::", 53))
while True:
    data, peer = s.recvfrom(4096)
    s.sendto(data[:2] + b"\x81\x80" + data[4:6] + b"\x00\x00\x00\x00\x00\x00" + data[12:], peer)
"#;

/// `curl -6` from `client`; returns (status code or curl's exit, body, seconds).
fn curl(client: &Pod, url: &str) -> (String, String, f64) {
    let started = Instant::now();
    let out = output_within(
        &mut client.command(
            "curl",
            &["-6", "-sS", "--max-time", "3", "-w", "\n%{http_code}", url],
        ),
        Duration::from_secs(20),
    )
    .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let code = if out.status.success() {
        code.to_owned()
    } else {
        format!("curl exit {:?}", out.status.code())
    };
    (code, body.to_owned(), started.elapsed().as_secs_f64())
}

fn dns_query(client: &Pod, server: &Pod, name: &str) -> String {
    let out = output_within(
        &mut client.command(
            "python3",
            &["-c", DNS_CLIENT, &server.ip6.to_string(), name, "query"],
        ),
        Duration::from_secs(20),
    )
    .expect("dns client");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcement_and_answers_over_ipv6() {
    let Some(_watchdog) = privileged("ipv6") else {
        return;
    };
    let mut lab = Lab::new().expect("lab");
    let server = lab.add_pod("server6").expect("server pod");
    let client = lab.add_pod("client6").expect("client pod");
    let _http = HttpServer::start_on(
        &server,
        "::",
        8080,
        &[("allowed", "yes"), ("denied", "secret")],
    );
    let _dns = server
        .spawn("dns server", "python3", &["-c", DNS_SERVER])
        .expect("dns server");
    holonet_lab::wait_for_udp_socket(&server.netns, 53, Duration::from_secs(15))
        .expect("dns server bound");
    let (mut harness, _) = ProbeHarness::start_enforcing(
        &[POLICY],
        &[
            PodSpec {
                pod: &server,
                namespace: "lab",
                labels: "app: server",
            },
            PodSpec {
                pod: &client,
                namespace: "lab",
                labels: "app: client",
            },
        ],
    );
    let base = format!("http://[{}]:8080", server.ip6);

    let (code, body, _) = curl(&client, &format!("{base}/allowed"));
    assert_eq!((code.as_str(), body.as_str()), ("200", "yes"));

    let (code, body, seconds) = curl(&client, &format!("{base}/denied"));
    assert_eq!(code, "403", "denied over IPv6: {body}");
    assert_eq!(body, "Access denied");
    assert!(
        seconds < 2.0,
        "the 403 comes at once, not after retries: {seconds:.2}s"
    );

    let (code, _, _) = curl(&client, &format!("http://[{}]:9090/", server.ip6));
    assert_eq!(
        code, "curl exit Some(28)",
        "no rule for port 9090: dropped, so curl times out"
    );

    assert_eq!(dns_query(&client, &server, "ok.example"), "RCODE:0 QR");
    assert_eq!(
        dns_query(&client, &server, "evil.example"),
        "RCODE:5 QR",
        "REFUSED from the kernel, with a checksum the client accepts"
    );

    let flows = harness
        .flows_between(
            IpAddr::from(client.ip6),
            IpAddr::from(server.ip6),
            |f| {
                f.iter().any(|f| {
                    f.verdict == Verdict::Dropped
                        && matches!(&f.kind, FlowKind::HttpRequest(r) if r.path == "/denied")
                }) && f
                    .iter()
                    .any(|f| matches!(f.kind, FlowKind::Dns(_)) && f.verdict == Verdict::Dropped)
            },
            Duration::from_secs(10),
            Duration::from_millis(300),
        )
        .await;
    assert!(
        flows.iter().all(|f| f.source.ip().is_ipv6()),
        "{}",
        render(&flows)
    );
}
