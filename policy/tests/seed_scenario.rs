//! The galactic-fhir seed scenario, step by step, with the files in policies/.

mod common;

use common::{Req, policy_sources, render, run};

const VADER: &str = "/intersystems/fhir/r5/Patient/DarthVader";

fn endpoints() -> String {
    std::fs::read_to_string(common::policies_dir().join("endpoints/galactic-fhir.yaml")).unwrap()
}

fn step(files: &[&str], from: &str, to: &str, proto: &str, port: u16, req: Req) -> String {
    render(&run(
        policy_sources(files),
        &endpoints(),
        from,
        to,
        proto,
        port,
        &req,
    ))
}

const STEP1: &[&str] = &["galactic-fhir/00-denyall-coruscanthealth.yaml"];
const STEP2: &[&str] = &[
    "galactic-fhir/00-denyall-coruscanthealth.yaml",
    "galactic-fhir/10-l7-visibility.yaml",
];
const STEP3: &[&str] = &["galactic-fhir"];

#[test]
fn step1_deny_all_egress_but_dns() {
    // Everything outside kube-system is egress default-deny.
    assert_eq!(
        step(
            STEP1,
            "grandmedicalfacility",
            "coruscanthealth",
            "tcp",
            52773,
            Req::Http("GET", VADER)
        ),
        "DROPPED POLICY_DENIED egress none"
    );
    // DNS to kube-dns is allowed, and the DNS rule allows every name.
    assert_eq!(
        step(
            STEP1,
            "payer",
            "kube-system/kube-dns",
            "udp",
            53,
            Req::Dns("coruscanthealth.galactic-fhir.svc.cluster.local")
        ),
        "FORWARDED L3-L4 l7=FORWARDED/null"
    );
    // DNS over TCP is not in the CCNP.
    assert_eq!(
        step(STEP1, "payer", "kube-dns", "tcp", 53, Req::None),
        "DROPPED POLICY_DENIED egress none"
    );
    // kube-system itself is not selected (NotIn kube-system).
    assert_eq!(
        step(STEP1, "kube-dns", "world:1.1.1.1", "udp", 53, Req::None),
        "FORWARDED -"
    );
    // Ingress is untouched: the CCNP has no ingress section.
    assert_eq!(
        step(
            STEP1,
            "world:203.0.113.9",
            "coruscanthealth",
            "tcp",
            52773,
            Req::None
        ),
        "FORWARDED -"
    );
}

#[test]
fn step2_empire_may_read_vader() {
    for who in [
        "grandmedicalfacility",
        "medicaldroid-fx-6",
        "medicaldroid-dd-13",
        "medicaldroid-2-1b",
    ] {
        assert_eq!(
            step(
                STEP2,
                who,
                "coruscanthealth",
                "tcp",
                52773,
                Req::Http("GET", VADER)
            ),
            "FORWARDED L3-L4 l7=FORWARDED/null",
            "{who}"
        );
        assert_eq!(
            step(
                STEP2,
                who,
                "coruscanthealth",
                "tcp",
                52773,
                Req::Http("HEAD", VADER)
            ),
            "FORWARDED L3-L4 l7=FORWARDED/null"
        );
    }
    // Other methods, other patients, query strings: 403 from the egress proxy.
    for (m, p) in [
        ("PUT", VADER),
        ("get", VADER),
        ("GET", "/intersystems/fhir/r5/Patient/LukeSkywalker"),
        (
            "GET",
            "/intersystems/fhir/r5/Patient/DarthVader?_format=json",
        ),
        ("GET", "/intersystems/fhir/r5/Patient/DarthVader/"),
    ] {
        assert_eq!(
            step(
                STEP2,
                "medicaldroid-fx-6",
                "coruscanthealth",
                "tcp",
                52773,
                Req::Http(m, p)
            ),
            "DROPPED - egress L3-L4 l7=DROPPED/403",
            "{m} {p}"
        );
    }
    // The payer is still under the deny-all: dropped at L3/L4.
    assert_eq!(
        step(
            STEP2,
            "payer",
            "coruscanthealth",
            "tcp",
            52773,
            Req::Http("GET", VADER)
        ),
        "DROPPED POLICY_DENIED egress none"
    );
    // Empire may resolve any name on port 53 (the CNP's L4-only DNS rule), world included.
    assert_eq!(
        step(
            STEP2,
            "grandmedicalfacility",
            "world:8.8.8.8",
            "udp",
            53,
            Req::Dns("example.org")
        ),
        "FORWARDED L4-Only l7=FORWARDED/null"
    );
    // Only pods in galactic-fhir are reachable on 52773.
    assert_eq!(
        step(
            STEP2,
            "grandmedicalfacility",
            "world:8.8.8.8",
            "tcp",
            52773,
            Req::None
        ),
        "DROPPED POLICY_DENIED egress none"
    );
}

#[test]
fn step3_payer_dropped_on_another_path_then_allowed() {
    let r = run(
        policy_sources(STEP3),
        &endpoints(),
        "payer",
        "coruscanthealth",
        "tcp",
        52773,
        &Req::Http("GET", "/intersystems/fhir/r5/Patient/LukeSkywalker"),
    );
    assert_eq!(render(&r), "DROPPED - egress L3-L4 l7=DROPPED/403");
    let text = r.to_text();
    assert!(
        text.contains("/intersystems/fhir/r5/Patient/DarthVader"),
        "names the allowed path:\n{text}"
    );
    assert!(
        text.contains("l7-visibility-payer"),
        "names the policy:\n{text}"
    );
    // The fix: ask for the right patient.
    assert_eq!(
        step(
            STEP3,
            "galactic-fhir/payer",
            "coruscanthealth",
            "tcp",
            52773,
            Req::Http("GET", VADER)
        ),
        "FORWARDED L3-L4 l7=FORWARDED/null"
    );
    assert_eq!(
        step(
            STEP3,
            "payer",
            "coruscanthealth",
            "tcp",
            52773,
            Req::Http("HEAD", VADER)
        ),
        "FORWARDED L3-L4 l7=FORWARDED/null"
    );
}

#[test]
fn json_shape_matches_the_documented_interface() {
    let r = run(
        policy_sources(STEP3),
        &endpoints(),
        "payer",
        "coruscanthealth",
        "tcp",
        52773,
        &Req::Http("POST", VADER),
    );
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["verdict"], "DROPPED");
    assert!(v["drop_reason"].is_null());
    assert_eq!(v["dropped_at"], "egress");
    assert_eq!(v["match_type"], "L3-L4");
    assert_eq!(v["l7"]["verdict"], "DROPPED");
    assert_eq!(v["l7"]["http_status"], 403);
    assert!(v["explanation"].as_array().is_some_and(|a| !a.is_empty()));
}
