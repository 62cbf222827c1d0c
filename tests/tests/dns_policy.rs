//! DNS rules enforced in the kernel: the payer may resolve names of its own
//! namespace (`matchPattern: "*.galactic-fhir.svc.cluster.local"`) and
//! kube-dns's own name (`matchName`); any other query is answered
//! `REFUSED` by the datapath and never reaches the DNS server, which logs
//! every name it is asked. Queries the probe cannot read are dropped.

use std::time::Duration;

use holonet_agent::flow::{FlowKind, Verdict};
use holonet_lab::{Lab, Pod};
use holonet_tests::{DNS_CLIENT, PodSpec, ProbeHarness, privileged, render};

const POLICY: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: payer-dns
  namespace: galactic-fhir
spec:
  endpointSelector:
    matchLabels:
      org: payer
  egress:
  - toEndpoints:
    - matchLabels:
        k8s:io.kubernetes.pod.namespace: kube-system
        k8s-app: kube-dns
    toPorts:
    - ports:
      - port: "53"
        protocol: UDP
      rules:
        dns:
        - matchPattern: "*.galactic-fhir.svc.cluster.local"
        - matchName: "kube-dns.kube-system.svc.cluster.local"
"#;

/// Answers every query NOERROR with one A record, and logs each name.
const DNS_SERVER: &str = r#"
import socket, sys
log = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 53))
while True:
    data, peer = s.recvfrom(4096)
    i, labels = 12, []
    while i < len(data) and data[i] != 0:
        labels.append(data[i + 1:i + 1 + data[i]].decode("latin-1"))
        i += 1 + data[i]
    with open(log, "a") as f:
        f.write(".".join(labels) + "\n")
    question = data[12:i + 5]
    answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x1e\x00\x04\x0a\x00\x00\x01"
    s.sendto(data[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + question + answer, peer)
"#;

async fn query(client: &Pod, server: &Pod, name: &str, mode: &str) -> String {
    let ip = server.ip.to_string();
    let out = tokio::process::Command::from(
        client.command("python3", &["-c", DNS_CLIENT, &ip, name, mode]),
    )
    .output()
    .await
    .expect("python dns client");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_rules_allow_named_queries_and_refuse_the_rest() {
    let Some(_watchdog) = privileged("dns_policy") else {
        return;
    };
    let mut lab = Lab::new().expect("lab");
    let dns = lab.add_pod("kube-dns").expect("dns pod");
    let payer = lab.add_pod("payer").expect("payer pod");
    let log = std::env::temp_dir().join(format!("holonet-dns-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let _remove_log = RemoveOnDrop(log.clone());
    let _server = dns
        .spawn(
            "dns server",
            "python3",
            &["-c", DNS_SERVER, &log.to_string_lossy()],
        )
        .expect("dns server");
    let (mut harness, compiled) = ProbeHarness::start_enforcing(
        &[POLICY],
        &[
            PodSpec {
                pod: &dns,
                namespace: "kube-system",
                labels: "k8s-app: kube-dns",
            },
            PodSpec::galactic_fhir(&payer, "org: payer"),
        ],
    );
    assert_eq!(compiled.dns_tables.len(), 1);
    assert!(compiled.loosened.is_empty(), "{:?}", compiled.loosened);
    // The server needs a moment to bind; the allowed query proves it.
    let mut first = String::new();
    for _ in 0..20 {
        first = query(
            &payer,
            &dns,
            "coruscanthealth.galactic-fhir.svc.cluster.local",
            "query",
        )
        .await;
        if first != "TIMEOUT" {
            break;
        }
    }
    assert_eq!(first, "RCODE:0 QR", "allowed by matchPattern");

    let cases = [
        (
            "CoruscantHealth.Galactic-FHIR.svc.cluster.local",
            "query",
            "RCODE:0 QR",
        ),
        (
            "kube-dns.kube-system.svc.cluster.local",
            "query",
            "RCODE:0 QR",
        ),
        ("evil.example.com", "query", "RCODE:5 QR"),
        ("a.b.galactic-fhir.svc.cluster.local", "query", "RCODE:5 QR"),
        ("galactic-fhir.svc.cluster.local", "query", "RCODE:5 QR"),
        (
            "kube-dns.kube-system.svc.cluster.local.evil",
            "query",
            "RCODE:5 QR",
        ),
        (
            "coruscanthealth.galactic-fhir.svc.cluster.local",
            "two-questions",
            "TIMEOUT",
        ),
        (
            "coruscanthealth.galactic-fhir.svc.cluster.local",
            "response",
            "TIMEOUT",
        ),
    ];
    for (name, mode, expected) in cases {
        assert_eq!(
            query(&payer, &dns, name, mode).await,
            expected,
            "{name} ({mode})"
        );
    }

    let asked = std::fs::read_to_string(&log).unwrap_or_default();
    for refused in [
        "evil.example.com",
        "a.b.galactic",
        "kube-dns.kube-system.svc.cluster.local.evil",
    ] {
        assert!(
            !asked.contains(refused),
            "{refused} reached the server:\n{asked}"
        );
    }
    assert_eq!(
        asked.lines().count(),
        3,
        "allowed queries reached it:\n{asked}"
    );

    let flows = harness
        .flows_between(
            payer.ip.into(),
            dns.ip.into(),
            |f| {
                f.iter()
                    .any(|f| f.verdict == Verdict::Dropped && matches!(&f.kind, FlowKind::Dns(m) if m.query.starts_with("evil.example.com")))
            },
            Duration::from_secs(10),
            Duration::from_millis(300),
        )
        .await;
    let forwarded = flows.iter().any(|f| {
        f.verdict == Verdict::Forwarded
            && matches!(&f.kind, FlowKind::Dns(m) if !m.response && m.query.starts_with("coruscanthealth."))
    });
    assert!(forwarded, "allowed query reported:\n{}", render(&flows));
    let counters = harness.probe.counters().expect("counters");
    assert!(counters.l7_denied >= 4, "{counters:?}");
    assert!(counters.l7_unparsable >= 2, "{counters:?}");
}

/// Removes a file when dropped, also when the test fails.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
