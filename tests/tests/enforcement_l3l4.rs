//! L3/L4 enforcement in the kernel: a CiliumNetworkPolicy compiled by the
//! agent into the probe's maps decides real connections between pods.
//!
//! The FHIR server (app: fhir) accepts TCP 8080 only from `org: empire`; the
//! `org: payer` pod's SYN is dropped at the server's ingress with Cilium's
//! POLICY_DENIED, while its own egress (not selected by any policy) lets it
//! out. The empire pod's request succeeds, and its reply packets pass
//! through connection tracking.

use std::time::Duration;

use holonet_agent::flow::{FlowKind, ObservationPoint, Verdict};
use holonet_lab::Lab;
use holonet_tests::{HttpServer, PodSpec, ProbeHarness, curl_status_args, privileged, render};
use probe_common::event::tcp_flags;

const POLICY: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: fhir-from-empire
  namespace: galactic-fhir
spec:
  endpointSelector:
    matchLabels:
      app: fhir
  ingress:
  - fromEndpoints:
    - matchLabels:
        org: empire
    toPorts:
    - ports:
      - port: "8080"
        protocol: TCP
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_drops_the_payer_and_lets_the_empire_through() {
    let Some(_watchdog) = privileged("enforcement_l3l4") else {
        return;
    };
    let mut lab = Lab::new().expect("lab");
    let server = lab.add_pod("fhir").expect("server pod");
    let empire = lab.add_pod("empire").expect("empire pod");
    let payer = lab.add_pod("payer").expect("payer pod");
    let _http = HttpServer::start(&server, 8080, &[("patient", "vader\n")]);
    let (mut harness, _) = ProbeHarness::start_enforcing(
        &[POLICY],
        &[
            PodSpec::galactic_fhir(&server, "app: fhir"),
            PodSpec::galactic_fhir(&empire, "org: empire"),
            PodSpec::galactic_fhir(&payer, "org: payer"),
        ],
    );

    let curl = |pod: &holonet_lab::Pod| {
        let url = format!("http://{}:8080/patient", server.ip);
        tokio::process::Command::from(pod.command("curl", &curl_status_args("2", &[&url]))).output()
    };
    let allowed = curl(&empire).await.expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&allowed.stdout),
        "200",
        "the empire is allowed"
    );
    let denied = curl(&payer).await.expect("curl");
    assert!(!denied.status.success(), "the payer must not get through");
    assert_eq!(
        denied.status.code(),
        Some(28),
        "curl times out: the SYN is dropped"
    );

    let drops = harness
        .flows_between(
            payer.ip.into(),
            server.ip.into(),
            |f| f.iter().any(|f| f.verdict == Verdict::Dropped),
            Duration::from_secs(5),
            Duration::from_millis(300),
        )
        .await;
    let dropped: Vec<_> = drops
        .iter()
        .filter(|f| f.verdict == Verdict::Dropped)
        .collect();
    assert!(!dropped.is_empty(), "{}", render(&drops));
    for f in &dropped {
        assert_eq!(f.drop_reason, 133, "POLICY_DENIED: {f}");
        assert_eq!(
            f.observation,
            ObservationPoint::ToEndpoint,
            "dropped at the server's ingress: {f}"
        );
        assert_eq!(f.interface.as_deref(), Some(server.host_ifname.as_str()));
        assert!(f.tcp_flags.contains(tcp_flags::SYN), "{f}");
        assert_eq!(f.source.ip(), std::net::IpAddr::from(payer.ip));
    }
    // The payer's own egress is not enforced: its SYN left it and was
    // reported once, where it was dropped.
    assert!(
        !drops
            .iter()
            .any(|f| f.observation == ObservationPoint::FromEndpoint),
        "{}",
        render(&drops)
    );
    assert!(harness.probe.counters().expect("counters").events_deferred >= 1);
    // Nothing from the server ever reached the payer.
    assert!(
        !drops
            .iter()
            .any(|f| f.source.ip() == std::net::IpAddr::from(server.ip))
    );

    let allowed_flows = harness
        .flows_between(
            empire.ip.into(),
            server.ip.into(),
            |f| f.iter().any(|f| matches!(f.kind, FlowKind::HttpRequest(_))),
            Duration::from_secs(5),
            Duration::from_millis(300),
        )
        .await;
    assert!(
        allowed_flows
            .iter()
            .all(|f| f.verdict == Verdict::Forwarded),
        "{}",
        render(&allowed_flows)
    );
    let syn_in = allowed_flows
        .iter()
        .find(|f| f.observation == ObservationPoint::ToEndpoint && f.tcp_flags.0 == tcp_flags::SYN)
        .expect("the empire's SYN reaches the server");
    assert_eq!(syn_in.match_type, 2, "allowed by an L3-L4 rule: {syn_in}");
}

const L7_POLICY: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: l7-visibility-payer
  namespace: galactic-fhir
spec:
  endpointSelector:
    matchLabels:
      org: payer
  egress:
  - toEndpoints:
    - matchLabels:
        "k8s:io.kubernetes.pod.namespace": galactic-fhir
    toPorts:
    - ports:
      - port: "52773"
        protocol: TCP
      rules:
        http:
        - method: "GET"
          path: "/intersystems/fhir/r5/Patient/DarthVader"
        - method: "HEAD"
          path: "/intersystems/fhir/r5/Patient/DarthVader"
"#;

/// The seed's payer rule, enforced in the kernel: GET and HEAD on Vader's
/// record pass; another patient and other methods are answered
/// `403 Forbidden` at once (the server never sees them), and the deny is
/// reported as an http-request DROPPED flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_rules_allow_vader_and_answer_403_to_other_requests() {
    let Some(_watchdog) = privileged("enforcement_l7_http") else {
        return;
    };
    let mut lab = Lab::new().expect("lab");
    let server = lab.add_pod("fhir").expect("server pod");
    let payer = lab.add_pod("payer").expect("payer pod");
    let empire = lab.add_pod("empire").expect("empire pod");
    let _http = HttpServer::start(
        &server,
        52773,
        &[
            ("intersystems/fhir/r5/Patient/DarthVader", "vader\n"),
            ("intersystems/fhir/r5/Patient/Anakin", "anakin\n"),
        ],
    );
    let (mut harness, compiled) = ProbeHarness::start_enforcing(
        &[L7_POLICY],
        &[
            PodSpec::galactic_fhir(&server, "app: fhir"),
            PodSpec::galactic_fhir(&payer, "org: payer"),
            PodSpec::galactic_fhir(&empire, "org: empire"),
        ],
    );
    assert_eq!(compiled.http_tables.len(), 1);

    let curl = |pod: &holonet_lab::Pod, method: &str, patient: &str| {
        let url = format!(
            "http://{}:52773/intersystems/fhir/r5/Patient/{patient}",
            server.ip
        );
        let mut args = curl_status_args("2", &[]);
        if method == "HEAD" {
            args.push("--head");
        } else {
            args.extend(["-X", method]);
        }
        args.push(&url);
        tokio::process::Command::from(pod.command("curl", &args)).output()
    };
    let code = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        code(&curl(&payer, "GET", "DarthVader").await.expect("curl")),
        "200"
    );
    assert_eq!(
        code(&curl(&payer, "HEAD", "DarthVader").await.expect("curl")),
        "200"
    );
    let other = curl(&payer, "GET", "Anakin").await.expect("curl");
    assert_eq!(
        code(&other),
        "403",
        "another patient is answered 403: {other:?}"
    );
    let put = curl(&payer, "PUT", "DarthVader").await.expect("curl");
    assert_eq!(code(&put), "403", "PUT is answered 403: {put:?}");
    // The answer is Cilium's: status line, body, and the connection closed.
    let url = format!(
        "http://{}:52773/intersystems/fhir/r5/Patient/Anakin",
        server.ip
    );
    let full = tokio::process::Command::from(
        payer.command("curl", &["-sS", "-i", "--max-time", "2", &url]),
    )
    .output()
    .await
    .expect("curl");
    let text = String::from_utf8_lossy(&full.stdout);
    assert!(full.status.success(), "{full:?}");
    assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nAccess denied"), "{text}");
    // The empire is not selected by the policy: it reads anything.
    assert_eq!(
        code(&curl(&empire, "GET", "Anakin").await.expect("curl")),
        "200"
    );

    let flows = harness
        .flows_between(
            payer.ip.into(),
            server.ip.into(),
            |f| {
                f.iter()
                    .filter(|f| {
                        f.verdict == Verdict::Dropped && matches!(f.kind, FlowKind::HttpRequest(_))
                    })
                    .count()
                    >= 2
            },
            Duration::from_secs(5),
            Duration::from_millis(300),
        )
        .await;
    let request = |f: &holonet_agent::flow::Flow| match &f.kind {
        FlowKind::HttpRequest(r) => Some((r.method.clone(), r.path.clone())),
        _ => None,
    };
    let denied: Vec<_> = flows
        .iter()
        .filter(|f| f.verdict == Verdict::Dropped)
        .filter_map(request)
        .collect();
    assert!(
        denied.contains(&("GET".into(), "/intersystems/fhir/r5/Patient/Anakin".into())),
        "{}",
        render(&flows)
    );
    assert!(
        denied.contains(&(
            "PUT".into(),
            "/intersystems/fhir/r5/Patient/DarthVader".into()
        )),
        "{}",
        render(&flows)
    );
    let allowed: Vec<_> = flows
        .iter()
        .filter(|f| {
            // Allowed at the payer's egress, reported where delivered.
            f.verdict == Verdict::Forwarded && f.observation == ObservationPoint::ToEndpoint
        })
        .filter_map(request)
        .collect();
    assert!(allowed.contains(&(
        "GET".into(),
        "/intersystems/fhir/r5/Patient/DarthVader".into()
    )));
    assert!(allowed.contains(&(
        "HEAD".into(),
        "/intersystems/fhir/r5/Patient/DarthVader".into()
    )));
    // The server never saw a denied request.
    assert!(
        !flows
            .iter()
            .any(|f| f.observation == ObservationPoint::ToEndpoint
                && request(f).is_some_and(|(_, p)| p.ends_with("Anakin"))),
        "{}",
        render(&flows)
    );
    // The server's side of a denied connection is closed with a RST in the
    // client's name, so no socket waits for the request that never came.
    let denied_port = flows
        .iter()
        .find(|f| {
            f.verdict == Verdict::Dropped && request(f).is_some_and(|(_, p)| p.ends_with("Anakin"))
        })
        .map(|f| f.source.port())
        .expect("the denied request");
    assert!(
        flows
            .iter()
            .any(|f| f.observation == ObservationPoint::ToEndpoint
                && f.source.port() == denied_port
                && f.tcp_flags.contains(tcp_flags::RST)),
        "no RST reached the server for port {denied_port}:\n{}",
        render(&flows)
    );
    let counters = harness.probe.counters().expect("counters");
    assert!(counters.l7_denied >= 2, "{counters:?}");
}

/// Audit mode (`holonet agent --policy-mode audit`): the same decisions,
/// nothing dropped. The payer's connection to port 8080 (L3/L4 deny) and its
/// request for another patient (L7 deny) both reach the server, and their
/// flows say AUDIT where enforcing would have said DROPPED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_mode_reports_what_it_would_drop_and_drops_nothing() {
    let Some(_watchdog) = privileged("enforcement_audit") else {
        return;
    };
    let mut lab = Lab::new().expect("lab");
    let server = lab.add_pod("fhir").expect("server pod");
    let payer = lab.add_pod("payer").expect("payer pod");
    let files = [
        ("intersystems/fhir/r5/Patient/DarthVader", "vader\n"),
        ("intersystems/fhir/r5/Patient/Anakin", "anakin\n"),
    ];
    let _fhir = HttpServer::start(&server, 52773, &files);
    let _other = HttpServer::start(&server, 8080, &files);
    let (mut harness, mut compiled) = ProbeHarness::start_enforcing(
        &[L7_POLICY, POLICY],
        &[
            PodSpec::galactic_fhir(&server, "app: fhir"),
            PodSpec::galactic_fhir(&payer, "org: payer"),
        ],
    );
    compiled.audit_only();
    harness.load_compiled(&compiled, &[&server, &payer]);

    let get = |port: u16, patient: &str| {
        let url = format!(
            "http://{}:{port}/intersystems/fhir/r5/Patient/{patient}",
            server.ip
        );
        let args = curl_status_args("3", &[&url]);
        let cmd = payer.command("curl", &args);
        async move {
            let out = tokio::process::Command::from(cmd)
                .output()
                .await
                .expect("curl");
            String::from_utf8_lossy(&out.stdout).to_string()
        }
    };
    assert_eq!(get(52773, "Anakin").await, "200", "L7 deny only audited");
    assert_eq!(get(8080, "Anakin").await, "200", "L3/L4 deny only audited");
    assert_eq!(get(52773, "DarthVader").await, "200");

    let flows = harness
        .flows_between(
            payer.ip.into(),
            server.ip.into(),
            |f| f.iter().filter(|f| f.verdict == Verdict::Audit).count() >= 2,
            Duration::from_secs(10),
            Duration::from_millis(300),
        )
        .await;
    assert!(
        flows.iter().all(|f| f.verdict != Verdict::Dropped),
        "nothing dropped in audit mode:\n{}",
        render(&flows)
    );
    let audited_request = flows.iter().any(|f| {
        f.verdict == Verdict::Audit
            && matches!(&f.kind, FlowKind::HttpRequest(r) if r.path.ends_with("/Anakin"))
    });
    assert!(
        audited_request,
        "the L7 deny is reported:\n{}",
        render(&flows)
    );
    let audited_syn = flows.iter().any(|f| {
        f.verdict == Verdict::Audit
            && f.destination.port() == 8080
            && f.tcp_flags.contains(tcp_flags::SYN)
            && f.drop_reason == 133
    });
    assert!(
        audited_syn,
        "the L3/L4 deny is reported with its reason:\n{}",
        render(&flows)
    );
    let vader_audited = flows.iter().any(|f| {
        f.verdict == Verdict::Audit
            && matches!(&f.kind, FlowKind::HttpRequest(r) if r.path.ends_with("/DarthVader"))
    });
    assert!(
        !vader_audited,
        "allowed requests stay FORWARDED:\n{}",
        render(&flows)
    );
}
