//! Hostile traffic on an L7-enforced port: requests crafted byte by byte
//! (python sockets inside the client pod) against the seed's payer rule
//! (GET/HEAD `/intersystems/fhir/r5/Patient/DarthVader` only). Each case
//! must end without the server answering anything but a 403 from the
//! datapath: what cannot be read with confidence is dropped (fail closed).

use std::time::Duration;

use holonet_lab::{Lab, Pod};
use holonet_tests::{HttpServer, PodSpec, ProbeHarness, privileged};

const L7_POLICY: &str = include_str!("../../policies/galactic-fhir/20-l7-visibility-payer.yaml");

/// Sends `parts` (with a pause between them, Nagle off so each is its own
/// segment) and reports the first response line or `TIMEOUT`.
const CLIENT: &str = r#"
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
parts = [p.encode('latin-1').decode('unicode_escape').encode('latin-1') for p in sys.argv[3:]]
s = socket.create_connection((host, port), timeout=3)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for i, p in enumerate(parts):
    if i:
        time.sleep(0.3)
    s.sendall(p)
s.settimeout(2)
try:
    data = s.recv(4096)
    print("RESPONSE:" + (data.split(b"\r\n")[0].decode('latin-1') if data else "CLOSED"))
except socket.timeout:
    print("TIMEOUT")
"#;

async fn send(client: &Pod, server: &Pod, parts: &[&str]) -> String {
    let ip = server.ip.to_string();
    let mut args = vec!["-c", CLIENT, &ip, "52773"];
    args.extend_from_slice(parts);
    let out = tokio::process::Command::from(client.command("python3", &args))
        .output()
        .await
        .expect("python client");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_requests_never_reach_the_server() {
    if !privileged("hostile_l7") {
        return;
    }
    let mut lab = Lab::new().expect("lab");
    let server = lab.add_pod("coruscanthealth").expect("pod");
    let payer = lab.add_pod("payer").expect("pod");
    let _http = HttpServer::start(
        &server,
        52773,
        &[
            ("intersystems/fhir/r5/Patient/DarthVader", "vader\n"),
            ("intersystems/fhir/r5/Patient/Anakin", "anakin\n"),
        ],
    );
    let (harness, _) = ProbeHarness::start_enforcing(
        &[L7_POLICY],
        &[
            PodSpec {
                pod: &server,
                namespace: "galactic-fhir",
                labels: "app: fhir",
            },
            PodSpec {
                pod: &payer,
                namespace: "galactic-fhir",
                labels: "org: payer",
            },
        ],
    );

    let vader = "/intersystems/fhir/r5/Patient/DarthVader";
    // The allowed request, sent the same way, is answered by the server:
    // the harness itself works.
    let ok = send(
        &payer,
        &server,
        &[&format!("GET {vader} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")],
    )
    .await;
    assert_eq!(ok, "RESPONSE:HTTP/1.0 200 OK", "baseline");

    // A segment too short to hold a request line is dropped (fail closed);
    // the client's retransmission then carries the whole line in one
    // segment, which is judged like any other: the denied one gets 403, the
    // allowed one reaches the server.
    let cases: [(&str, Vec<String>, &str); 7] = [
        (
            "request line split over two segments",
            vec![
                "GET /intersys".into(),
                "tems/fhir/r5/Patient/Anakin HTTP/1.1\\r\\n\\r\\n".into(),
            ],
            "RESPONSE:HTTP/1.1 403 Forbidden",
        ),
        (
            "an allowed request line split over two segments",
            vec![
                "GET /intersys".into(),
                "tems/fhir/r5/Patient/DarthVader HTTP/1.1\\r\\n\\r\\n".into(),
            ],
            "RESPONSE:HTTP/1.0 200 OK",
        ),
        (
            "lower-case method",
            vec![format!("get {vader} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")],
            "TIMEOUT",
        ),
        (
            "absolute-form request target",
            vec![format!(
                "GET http://coruscanthealth:52773/intersystems/fhir/r5/Patient/Anakin HTTP/1.1\\r\\n\\r\\n"
            )],
            "RESPONSE:HTTP/1.1 403 Forbidden",
        ),
        (
            "another patient behind a query string",
            vec![format!("GET {vader}/../Anakin?x=1 HTTP/1.1\\r\\n\\r\\n")],
            "RESPONSE:HTTP/1.1 403 Forbidden",
        ),
        (
            "HTTP/2 connection preface",
            vec!["PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n".into()],
            "TIMEOUT",
        ),
        (
            "TLS ClientHello",
            vec!["\\x16\\x03\\x01\\x00\\xa5\\x01\\x00\\x00\\xa1\\x03\\x03".into()],
            "TIMEOUT",
        ),
    ];
    for (what, parts, expected) in &cases {
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let got = send(&payer, &server, &parts).await;
        assert_eq!(&got, expected, "{what}");
    }
    let counters = harness.probe.counters().expect("counters");
    assert!(
        counters.l7_unparsable >= 3,
        "fail-closed drops are counted: {counters:?}"
    );
    assert!(counters.l7_denied >= 3, "{counters:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
