//! L3/L4 enforcement in the kernel: a CiliumNetworkPolicy compiled by the
//! agent into the probe's maps decides real connections between pods.
//!
//! The FHIR server (app: fhir) accepts TCP 8080 only from `org: empire`; the
//! `org: payer` pod's SYN is dropped at the server's ingress with Cilium's
//! POLICY_DENIED, while its own egress (not selected by any policy) lets it
//! out. The empire pod's request succeeds, and its reply packets pass
//! through connection tracking.

use std::{sync::Arc, time::Duration};

use holonet_agent::{
    datapath::compile::compile,
    flow::{FlowKind, ObservationPoint, Verdict},
    loader::TcMode,
};
use holonet_lab::{Lab, wait_for_tcp_listener};
use holonet_policy::{
    diag::SourceFile, endpoints::parse_endpoints, parse::parse_policies, resolve::resolve,
};
use holonet_tests::{ProbeHarness, privileged, render};
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
    if !privileged("enforcement_l3l4") {
        return;
    }
    let mut lab = Lab::new().expect("lab");
    let server = lab.add_pod("fhir").expect("server pod");
    let empire = lab.add_pod("empire").expect("empire pod");
    let payer = lab.add_pod("payer").expect("payer pod");
    let docroot = std::env::temp_dir().join(format!("holonet-enforce-{}", std::process::id()));
    std::fs::create_dir_all(&docroot).expect("docroot");
    std::fs::write(docroot.join("patient"), "vader\n").expect("file");
    let _http = server
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

    let endpoints = format!(
        "cluster: default\nendpoints:\n\
         - {{name: fhir, namespace: galactic-fhir, labels: {{app: fhir}}, ip: {}, node: e2e}}\n\
         - {{name: empire, namespace: galactic-fhir, labels: {{org: empire}}, ip: {}, node: e2e}}\n\
         - {{name: payer, namespace: galactic-fhir, labels: {{org: payer}}, ip: {}, node: e2e}}\n",
        server.ip, empire.ip, payer.ip
    );
    let cluster =
        parse_endpoints(&SourceFile::new("endpoints.yaml", endpoints)).expect("endpoints");
    let parsed = parse_policies(&[SourceFile::new("policy.yaml", POLICY)]);
    assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
    let resolved = resolve(&parsed.policies, Arc::new(cluster));
    let compiled = compile(&resolved, "e2e").expect("compiles");

    let mut harness = ProbeHarness::start(
        TcMode::Auto,
        &[&server.host_ifname, &empire.host_ifname, &payer.host_ifname],
    );
    let by_ip: Vec<(std::net::IpAddr, u32)> = harness
        .probe
        .interfaces()
        .iter()
        .filter_map(|(ifindex, name)| {
            [&server, &empire, &payer]
                .into_iter()
                .find(|p| &p.host_ifname == name)
                .map(|p| (std::net::IpAddr::from(p.ip), *ifindex))
        })
        .collect();
    let unattached = harness
        .probe
        .load_policy(&compiled, |ep| {
            by_ip.iter().find(|(ip, _)| *ip == ep.ip).map(|(_, i)| *i)
        })
        .expect("policy loaded");
    assert!(unattached.is_empty(), "{unattached:?}");

    let curl = |pod: &holonet_lab::Pod| {
        let url = format!("http://{}:8080/patient", server.ip);
        tokio::process::Command::from(pod.command(
            "curl",
            &[
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "2",
                &url,
            ],
        ))
        .output()
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
    // The payer's own egress is not enforced: its SYN leaves it.
    assert!(
        drops
            .iter()
            .any(|f| f.observation == ObservationPoint::FromEndpoint
                && f.verdict == Verdict::Forwarded
                && f.tcp_flags.contains(tcp_flags::SYN))
    );
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
    let _ = std::fs::remove_dir_all(&docroot);
}
