//! Malformed packets against the probe's header parser: Ethernet frames
//! built byte by byte (python, `AF_PACKET` in the payer's pod) whose IPv4,
//! IPv6 or TCP headers lie about their lengths or stop short. Each must be
//! counted as unparsable and none may reach the server through its
//! enforcing endpoint, while a well-formed frame sent the same way does
//! (so the sender and the sniffer are known to work).

use std::{process::Stdio, time::Duration};

use holonet_lab::Pod;
use holonet_tests::{
    HttpServer, PYTHON_CHECKSUM, PodSpec, ProbeHarness, curl_status_args, privileged,
};
use tokio::io::{AsyncBufReadExt, BufReader};

const L7_POLICY: &str = include_str!("../../policies/galactic-fhir/20-l7-visibility-payer.yaml");

/// IPv4 identification of the well-formed control frame; the malformed
/// ones follow it (the sniffer reports which arrived).
const CONTROL_ID: u16 = 0x4800;

/// Sends one frame per case through the pod's `eth0` to the host side of
/// its veth. Arguments: gateway MAC, source IP, destination IP. Prints
/// `SENT <n>` with the number of malformed frames. Runs after
/// [`PYTHON_CHECKSUM`].
const SENDER: &str = r#"
import socket, struct, sys
dst_mac = bytes.fromhex(sys.argv[1].replace(":", ""))
src_ip, dst_ip = socket.inet_aton(sys.argv[2]), socket.inet_aton(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
src_mac = s.getsockname()[4]

def ipv4(ident, payload, ihl=5, total=None):
    length = 20 + len(payload) if total is None else total
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, length, ident, 0, 64, 6, 0, src_ip, dst_ip)
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + payload

def tcp(sport, offset_words):
    # A SYN to the server's port, checksum left 0 (the probe does not check it).
    return struct.pack("!HHIIBBHHH", sport, 52773, 1000, 0, offset_words << 4, 0x02, 64240, 0, 0)

def frame(body, ethertype=0x0800):
    return dst_mac + src_mac + struct.pack("!H", ethertype) + body

ipv6_hop_by_hop_cut = struct.pack("!IHBB", 0x60000000, 8, 0, 64) + b"\xfd" + b"\0" * 15 + b"\xfd" + b"\0" * 15 + b"\x06"
malformed = [
    # TCP data offset below the 20-byte minimum.
    frame(ipv4(0x4801, tcp(40001, 4))),
    # TCP data offset claiming 60 bytes of header in a 20-byte segment.
    frame(ipv4(0x4802, tcp(40002, 15))),
    # IPv4 total length past the end of the frame.
    frame(ipv4(0x4803, tcp(40003, 5), total=1000)),
    # IHL below five words.
    frame(ipv4(0x4804, tcp(40004, 5), ihl=4)),
    # The IPv4 header itself cut after 10 bytes.
    frame(ipv4(0x4805, b"")[:10]),
    # The TCP header cut after 12 bytes (the IP length agrees).
    frame(ipv4(0x4806, tcp(40006, 5)[:12])),
    # IPv6 announcing a hop-by-hop header that the packet does not hold.
    frame(ipv6_hop_by_hop_cut, 0x86DD),
]
s.send(frame(ipv4(0x4800, tcp(40000, 5))))
for f in malformed:
    s.send(f)
print("SENT %d" % len(malformed), flush=True)
"#;

/// Watches the pod's `eth0` for IPv4 frames from the given source with an
/// identification in 0x4800..0x4900 and, after the given seconds, prints
/// `SEEN` and the identifications that arrived (hex). Prints `READY` once
/// listening.
const SNIFFER: &str = r#"
import select, socket, struct, sys, time
src = socket.inet_aton(sys.argv[1])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind(("eth0", 0))
print("READY", flush=True)
deadline = time.time() + float(sys.argv[2])
seen = set()
while time.time() < deadline:
    ready, _, _ = select.select([s], [], [], 0.1)
    if not ready:
        continue
    data, addr = s.recvfrom(65535)
    if addr[2] == socket.PACKET_OUTGOING or len(data) < 34 or data[12:14] != b"\x08\x00":
        continue
    ident = struct.unpack("!H", data[18:20])[0]
    if data[26:30] == src and 0x4800 <= ident < 0x4900:
        seen.add(ident)
print("SEEN " + " ".join("%x" % i for i in sorted(seen)), flush=True)
"#;

/// The MAC address of the host side of `pod`'s veth: where the pod's
/// frames go to be routed.
fn gateway_mac(pod: &Pod) -> String {
    let path = format!("/sys/class/net/{}/address", pod.host_ifname);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_headers_are_counted_and_never_delivered() {
    let Some(_watchdog) = privileged("malformed_packets") else {
        return;
    };
    let mut lab = holonet_lab::Lab::new().expect("lab");
    let server = lab.add_pod("coruscanthealth").expect("pod");
    let payer = lab.add_pod("payer").expect("pod");
    let _http = HttpServer::start(&server, 52773, &[("index.html", "ok\n")]);
    let (harness, _) = ProbeHarness::start_enforcing(
        &[L7_POLICY],
        &[
            PodSpec::galactic_fhir(&server, "app: fhir"),
            PodSpec::galactic_fhir(&payer, "org: payer"),
        ],
    );
    let before = harness.probe.counters().expect("counters");

    let payer_ip = payer.ip.to_string();
    let mut sniffer =
        tokio::process::Command::from(server.command("python3", &["-c", SNIFFER, &payer_ip, "2"]))
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("sniffer");
    let mut lines = BufReader::new(sniffer.stdout.take().expect("piped")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("the sniffer starts")
        .expect("sniffer output");
    assert_eq!(ready.as_deref(), Some("READY"));

    let sender = format!("{PYTHON_CHECKSUM}{SENDER}");
    let sent = tokio::process::Command::from(payer.command(
        "python3",
        &[
            "-c",
            &sender,
            &gateway_mac(&payer),
            &payer_ip,
            &server.ip.to_string(),
        ],
    ))
    .output()
    .await
    .expect("sender");
    let sent_text = String::from_utf8_lossy(&sent.stdout).trim().to_string();
    assert_eq!(
        sent_text,
        "SENT 7",
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );

    let seen = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("the sniffer reports")
        .expect("sniffer output")
        .unwrap_or_default();
    let _ = sniffer.wait().await;
    let seen: Vec<u16> = seen
        .trim_start_matches("SEEN")
        .split_whitespace()
        .map(|id| u16::from_str_radix(id, 16).expect("hex id"))
        .collect();
    assert!(
        seen.contains(&CONTROL_ID),
        "the well-formed frame reaches the server, so the others could: {seen:x?}"
    );
    assert_eq!(
        seen,
        vec![CONTROL_ID],
        "malformed frames reached the server through its enforcing endpoint"
    );

    let after = harness.probe.counters().expect("counters");
    assert!(
        after.parse_errors >= before.parse_errors + 7,
        "each malformed frame is counted as unparsable: before {before:?}, after {after:?}"
    );

    // The probe goes on judging ordinary traffic.
    let url = format!("http://{}:52773/index.html", server.ip);
    let out = payer
        .run("curl", &curl_status_args("5", &[&url]))
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "403",
        "a request the payer's rule does not allow still gets the datapath's 403"
    );
}
