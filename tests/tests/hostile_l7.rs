//! Hostile traffic on an L7-enforced port: requests crafted byte by byte
//! (python sockets inside the client pod) against the seed's payer rule
//! (GET/HEAD `/intersystems/fhir/r5/Patient/DarthVader` only). Each case
//! must end without the server answering anything but a 403 from the
//! datapath: what cannot be read with confidence is dropped (fail closed).

use std::time::Duration;

use holonet_lab::{Lab, Pod};
use holonet_tests::{HttpServer, PYTHON_CHECKSUM, PodSpec, ProbeHarness, privileged};

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

/// Runs python `script` in `client` with `args` and returns what it printed.
async fn run_client(client: &Pod, script: &str, args: &[&str]) -> String {
    let mut argv = vec!["-c", script];
    argv.extend_from_slice(args);
    let out = tokio::process::Command::from(client.command("python3", &argv))
        .output()
        .await
        .expect("python client");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn send(client: &Pod, server: &Pod, parts: &[&str]) -> String {
    let ip = server.ip.to_string();
    let mut args = vec![ip.as_str(), "52773"];
    args.extend_from_slice(parts);
    run_client(client, CLIENT, &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_requests_never_reach_the_server() {
    let Some(_watchdog) = privileged("hostile_l7") else {
        return;
    };
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
            PodSpec::galactic_fhir(&server, "app: fhir"),
            PodSpec::galactic_fhir(&payer, "org: payer"),
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

/// An HTTP/1.1 server that keeps connections open, follows
/// `Content-Length` bodies and pipelined requests exactly as RFC 9112 says,
/// answers each request `200`, and appends every request line it receives
/// to a log file: what the log lacks never reached the server.
const RECORDING_SERVER: &str = r#"
import socket, sys, threading
port, log = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
def serve(conn):
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            while len(buf) < length:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            buf = buf[length:]
            with lock, open(log, "a") as f:
                f.write(lines[0].decode("latin-1") + "\n")
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    except OSError:
        pass
    finally:
        conn.close()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", port))
srv.listen(64)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// Sends `parts` as separate segments (Nagle off, a pause between them;
/// with `ip_options`, every packet carries IPv4 options) and reports every
/// status code received until the connection closes or stays quiet.
const PIPELINING_CLIENT: &str = r#"
import re, socket, sys, time
host, port, ip_options = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
parts = [p.encode('latin-1').decode('unicode_escape').encode('latin-1') for p in sys.argv[4:]]
s = socket.socket()
if ip_options:
    s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, b"\x01\x01\x01\x00")
s.settimeout(3)
s.connect((host, port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for i, p in enumerate(parts):
    if i:
        time.sleep(0.3)
    s.sendall(p)
s.settimeout(1.5)
data = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except (socket.timeout, ConnectionResetError):
    pass
codes = [c.decode() for c in re.findall(rb"HTTP/1\.[01] (\d{3})", data)]
print("STATUS:" + ",".join(codes))
"#;

async fn send_all(client: &Pod, server: &Pod, ip_options: bool, parts: &[&str]) -> String {
    let ip = server.ip.to_string();
    let options = if ip_options { "1" } else { "0" };
    let mut args = vec![ip.as_str(), "52773", options];
    args.extend_from_slice(parts);
    run_client(client, PIPELINING_CLIENT, &args).await
}

/// Requests hidden behind allowed ones (pipelined, after a body, on a
/// kept-alive connection) are each checked: the denied one never reaches
/// the server, which logs every request line it parses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_on_a_connection_is_checked() {
    let Some(_watchdog) = privileged("hostile_l7_requests") else {
        return;
    };
    let setup = RecordingSetup::start("requests");
    let (server, payer, harness, log) = (&setup.server, &setup.payer, &setup.harness, &setup.log);
    let vader = "GET /intersystems/fhir/r5/Patient/DarthVader HTTP/1.1\\r\\nHost: x\\r\\n";
    let anakin = "GET /intersystems/fhir/r5/Patient/Anakin HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n";
    let body = "GET /intersystems/fhir/r5/Patient/Anakin";
    let cases: Vec<(&str, bool, Vec<String>, &str)> = vec![
        (
            "two allowed requests pipelined in one segment",
            false,
            vec![format!("{vader}\\r\\n{vader}\\r\\n")],
            "STATUS:200,200",
        ),
        (
            "a denied request pipelined after an allowed one",
            false,
            vec![format!("{vader}\\r\\n{anakin}")],
            "STATUS:403",
        ),
        (
            "a denied request after an allowed one on a kept-alive connection",
            false,
            vec![format!("{vader}\\r\\n"), anakin.to_string()],
            "STATUS:200,403",
        ),
        (
            "a denied request after a Content-Length body, same segment",
            false,
            vec![format!(
                "{vader}Content-Length: {}\\r\\n\\r\\n{body}{anakin}",
                body.len()
            )],
            "STATUS:403",
        ),
        (
            "a denied request after a Content-Length body, next segment",
            false,
            vec![
                format!("{vader}Content-Length: {}\\r\\n\\r\\n{body}", body.len()),
                anakin.to_string(),
            ],
            "STATUS:200,403",
        ),
        (
            "a request line inside a body is only body",
            false,
            vec![format!(
                "{vader}Content-Length: {}\\r\\n\\r\\n{body}",
                body.len()
            )],
            "STATUS:200",
        ),
        (
            "an allowed request with IP options",
            true,
            vec![format!("{vader}\\r\\n")],
            "STATUS:200",
        ),
        (
            "a denied request with IP options",
            true,
            vec![anakin.to_string()],
            "STATUS:403",
        ),
        (
            "a chunked body (not followed: fail closed)",
            false,
            vec![format!(
                "{vader}Transfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\n"
            )],
            "STATUS:",
        ),
        (
            "two Content-Length headers (fail closed)",
            false,
            vec![format!(
                "{vader}Content-Length: 0\\r\\nContent-Length: 5\\r\\n\\r\\n"
            )],
            "STATUS:",
        ),
        (
            "bare LF line ends hiding a second request (fail closed)",
            false,
            vec![format!(
                "GET /intersystems/fhir/r5/Patient/DarthVader HTTP/1.1\\nHost: x\\n\\n{anakin}"
            )],
            "STATUS:",
        ),
    ];
    for (what, ip_options, parts, expected) in &cases {
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let got = send_all(payer, server, *ip_options, &parts).await;
        assert_eq!(&got, expected, "{what}");
    }
    let seen = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        !seen.contains("Anakin"),
        "a denied request reached the server:\n{seen}"
    );
    let allowed = seen.lines().filter(|l| l.contains("DarthVader")).count();
    assert_eq!(
        allowed, 6,
        "allowed requests that reached the server:\n{seen}"
    );
    let counters = harness.probe.counters().expect("counters");
    assert!(counters.l7_denied >= 5, "{counters:?}");
    assert!(counters.l7_unparsable >= 3, "{counters:?}");
}

/// The seed's payer rule enforced between a payer pod and a server pod
/// running [`RECORDING_SERVER`], whose log is removed when this is dropped.
struct RecordingSetup {
    harness: ProbeHarness,
    _server_process: holonet_lab::ChildGuard,
    log: std::path::PathBuf,
    _remove_log: RemoveOnDrop,
    payer: Pod,
    server: Pod,
    _lab: Lab,
}

impl RecordingSetup {
    fn start(name: &str) -> Self {
        let mut lab = Lab::new().expect("lab");
        let server = lab.add_pod("coruscanthealth").expect("pod");
        let payer = lab.add_pod("payer").expect("pod");
        let log = std::env::temp_dir().join(format!("holonet-{name}-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&log);
        let remove_log = RemoveOnDrop(log.clone());
        let server_process = server
            .spawn(
                "recording http server",
                "python3",
                &["-c", RECORDING_SERVER, "52773", &log.to_string_lossy()],
            )
            .expect("server");
        holonet_lab::wait_for_tcp_listener(&server.netns, 52773, Duration::from_secs(15))
            .expect("server listening");
        let (harness, _) = ProbeHarness::start_enforcing(
            &[L7_POLICY],
            &[
                PodSpec::galactic_fhir(&server, "app: fhir"),
                PodSpec::galactic_fhir(&payer, "org: payer"),
            ],
        );
        Self {
            harness,
            _server_process: server_process,
            log,
            _remove_log: remove_log,
            payer,
            server,
            _lab: lab,
        }
    }
}

/// Removes a file when dropped, also when the test fails.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Sends the two halves of a payload as raw TCP segments on an established
/// connection, the second half first (out of order), then the first, then
/// the second again (its retransmission). The sequence numbers come from
/// the kernel's own socket through TCP_REPAIR; timestamps are off in the
/// pod so the server accepts segments without them.
const OUT_OF_ORDER_CLIENT: &str = r#"
import socket, struct, sys, time
host, port = sys.argv[1], int(sys.argv[2])
first = sys.argv[3].encode('latin-1').decode('unicode_escape').encode('latin-1')
second = sys.argv[4].encode('latin-1').decode('unicode_escape').encode('latin-1')
open("/proc/sys/net/ipv4/tcp_timestamps", "w").write("0")
TCP_REPAIR, TCP_REPAIR_QUEUE, TCP_QUEUE_SEQ = 19, 20, 21
s = socket.create_connection((host, port), timeout=3)
s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, 2)
snd = struct.unpack("I", s.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, 4))[0]
s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, 1)
rcv = struct.unpack("I", s.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, 4))[0]
s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 0)
src_ip, src_port = s.getsockname()
def segment(seq, payload):
    header = struct.pack("!HHIIBBHHH", src_port, port, seq, rcv, 5 << 4, 0x18, 64240, 0, 0)
    pseudo = socket.inet_aton(src_ip) + socket.inet_aton(host) + struct.pack("!BBH", 0, 6, len(header) + len(payload))
    c = csum(pseudo + header + payload)
    return header[:16] + struct.pack("!H", c) + header[18:] + payload
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
raw.sendto(segment(snd + len(first), second), (host, 0))
time.sleep(0.3)
raw.sendto(segment(snd, first), (host, 0))
time.sleep(0.3)
raw.sendto(segment(snd + len(first), second), (host, 0))
time.sleep(0.5)
print("SENT")
"#;

/// A segment that arrives ahead of the request it belongs after (out of
/// order) is held back until what precedes it has been judged, and a
/// denied request in it never reaches the server, however it is resent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_segments_wait_for_their_turn() {
    let Some(_watchdog) = privileged("hostile_l7_out_of_order") else {
        return;
    };
    let setup = RecordingSetup::start("out-of-order");
    let (server, payer, harness, log) = (&setup.server, &setup.payer, &setup.harness, &setup.log);
    let vader = "GET /intersystems/fhir/r5/Patient/DarthVader HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n";
    let anakin = "GET /intersystems/fhir/r5/Patient/Anakin HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n";
    let ip = server.ip.to_string();
    let script = format!("{PYTHON_CHECKSUM}{OUT_OF_ORDER_CLIENT}");
    let out = tokio::process::Command::from(
        payer.command("python3", &["-c", &script, &ip, "52773", vader, anakin]),
    )
    .output()
    .await
    .expect("python client");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "SENT",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        !seen.contains("Anakin"),
        "a denied request reached the server:\n{seen}"
    );
    assert!(
        seen.contains("DarthVader"),
        "the allowed request arrives in its turn:\n{seen}"
    );
    let counters = harness.probe.counters().expect("counters");
    assert!(
        counters.l7_unparsable >= 1,
        "the early segment was held back: {counters:?}"
    );
    assert!(
        counters.l7_denied >= 1,
        "its resend was judged and denied: {counters:?}"
    );
}
