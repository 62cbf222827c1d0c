//! Cilium's star-wars demo, enforced in this kernel with the policy file of
//! `policies/star-wars/l7`: the tiefighter (org: empire) may POST
//! /v1/request-landing to the deathstar, its PUT /v1/exhaust-port is answered
//! 403 by the datapath, and the xwing (org: alliance) is dropped at L3/L4.

use std::time::Duration;

use holonet_agent::flow::{FlowKind, Verdict};
use holonet_lab::{Lab, Pod};
use holonet_tests::{HttpServer, PodSpec, ProbeHarness, curl_status_args, privileged, render};

const POLICY: &str = include_str!("../../policies/star-wars/l7/sw_l3_l4_l7_policy.yaml");

async fn request(pod: &Pod, method: &str, url: &str) -> (Option<i32>, String) {
    let out = tokio::process::Command::from(
        pod.command("curl", &curl_status_args("2", &["-X", method, url])),
    )
    .output()
    .await
    .expect("curl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiefighter_lands_cannot_touch_the_exhaust_port_and_the_xwing_is_dropped() {
    let Some(_watchdog) = privileged("star_wars") else {
        return;
    };
    let mut lab = Lab::new().expect("lab");
    let deathstar = lab.add_pod("deathstar").expect("pod");
    let tiefighter = lab.add_pod("tiefighter").expect("pod");
    let xwing = lab.add_pod("xwing").expect("pod");
    let _server = HttpServer::start(&deathstar, 80, &[("v1/request-landing", "Ship landed\n")]);
    let (mut harness, _) = ProbeHarness::start_enforcing(
        &[POLICY],
        &[
            PodSpec {
                pod: &deathstar,
                namespace: "default",
                labels: "org: empire, class: deathstar",
            },
            PodSpec {
                pod: &tiefighter,
                namespace: "default",
                labels: "org: empire, class: tiefighter",
            },
            PodSpec {
                pod: &xwing,
                namespace: "default",
                labels: "org: alliance, class: xwing",
            },
        ],
    );

    let base = format!("http://{}", deathstar.ip);
    // python's http.server has no POST handler: 501 means the request reached it.
    let (_, landing) = request(&tiefighter, "POST", &format!("{base}/v1/request-landing")).await;
    assert_eq!(landing, "501", "the landing request reaches the deathstar");
    let (_, exhaust) = request(&tiefighter, "PUT", &format!("{base}/v1/exhaust-port")).await;
    assert_eq!(exhaust, "403", "the exhaust port is protected at L7");
    let (exit, _) = request(&xwing, "POST", &format!("{base}/v1/request-landing")).await;
    assert_eq!(exit, Some(28), "the xwing's SYN is dropped");

    let xwing_flows = harness
        .flows_between(
            xwing.ip.into(),
            deathstar.ip.into(),
            |f| f.iter().any(|f| f.verdict == Verdict::Dropped),
            Duration::from_secs(5),
            Duration::from_millis(200),
        )
        .await;
    assert!(
        xwing_flows
            .iter()
            .all(|f| f.verdict != Verdict::Dropped || f.drop_reason == 133),
        "{}",
        render(&xwing_flows)
    );
    // The SYN and its retries within curl's 2 s are one DROPPED flow.
    let drops = xwing_flows
        .iter()
        .filter(|f| f.verdict == Verdict::Dropped)
        .count();
    assert_eq!(
        drops,
        1,
        "repeated drops aggregated:\n{}",
        render(&xwing_flows)
    );
    let counters = harness.probe.counters().expect("counters");
    assert!(counters.drops_aggregated >= 1, "{counters:?}");
    let tie_flows = harness
        .flows_between(
            tiefighter.ip.into(),
            deathstar.ip.into(),
            |f| f.iter().any(|f| f.verdict == Verdict::Dropped),
            Duration::from_secs(5),
            Duration::from_millis(200),
        )
        .await;
    let denied: Vec<_> = tie_flows
        .iter()
        .filter(|f| f.verdict == Verdict::Dropped)
        .filter_map(|f| match &f.kind {
            FlowKind::HttpRequest(r) => Some((r.method.clone(), r.path.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        denied,
        [("PUT".to_string(), "/v1/exhaust-port".to_string())],
        "{}",
        render(&tie_flows)
    );
}
