//! Cilium's star-wars demo (tiefighter, xwing, deathstar) with policies/star-wars.

mod common;

use common::{Req, policy_sources, render, run};

fn eps() -> String {
    std::fs::read_to_string(common::policies_dir().join("endpoints/star-wars.yaml")).unwrap()
}

#[test]
fn without_policy_everyone_lands() {
    let r = run(
        vec![],
        &eps(),
        "xwing",
        "deathstar",
        "tcp",
        80,
        &Req::Http("POST", "/v1/request-landing"),
    );
    assert_eq!(render(&r), "FORWARDED -");
}

#[test]
fn l3_l4_policy() {
    let files = &["star-wars/l3-l4"];
    assert_eq!(
        render(&run(
            policy_sources(files),
            &eps(),
            "tiefighter",
            "deathstar",
            "tcp",
            80,
            &Req::Http("POST", "/v1/request-landing")
        )),
        "FORWARDED L3-L4"
    );
    // The L3/L4 policy has no L7 rules: even the exhaust port is reachable.
    assert_eq!(
        render(&run(
            policy_sources(files),
            &eps(),
            "tiefighter",
            "deathstar",
            "tcp",
            80,
            &Req::Http("PUT", "/v1/exhaust-port")
        )),
        "FORWARDED L3-L4"
    );
    assert_eq!(
        render(&run(
            policy_sources(files),
            &eps(),
            "xwing",
            "deathstar",
            "tcp",
            80,
            &Req::None
        )),
        "DROPPED POLICY_DENIED ingress none"
    );
    assert_eq!(
        render(&run(
            policy_sources(files),
            &eps(),
            "tiefighter",
            "deathstar",
            "tcp",
            8080,
            &Req::None
        )),
        "DROPPED POLICY_DENIED ingress none"
    );
    // The xwing itself is not restricted.
    assert_eq!(
        render(&run(
            policy_sources(files),
            &eps(),
            "deathstar",
            "xwing",
            "tcp",
            80,
            &Req::None
        )),
        "FORWARDED -"
    );
}

#[test]
fn l7_policy() {
    let files = &["star-wars/l7"];
    assert_eq!(
        render(&run(
            policy_sources(files),
            &eps(),
            "tiefighter",
            "deathstar",
            "tcp",
            80,
            &Req::Http("POST", "/v1/request-landing")
        )),
        "FORWARDED L3-L4 l7=FORWARDED/null"
    );
    let r = run(
        policy_sources(files),
        &eps(),
        "tiefighter",
        "deathstar",
        "tcp",
        80,
        &Req::Http("PUT", "/v1/exhaust-port"),
    );
    assert_eq!(render(&r), "DROPPED - ingress L3-L4 l7=DROPPED/403");
    assert!(
        r.to_text().contains("/v1/request-landing"),
        "{}",
        r.to_text()
    );
    assert_eq!(
        render(&run(
            policy_sources(files),
            &eps(),
            "xwing",
            "deathstar",
            "tcp",
            80,
            &Req::Http("POST", "/v1/request-landing")
        )),
        "DROPPED POLICY_DENIED ingress none"
    );
}

#[test]
fn both_variants_together_are_a_duplicate() {
    let parsed = holonet_policy::parse::parse_policies(&policy_sources(&["star-wars"]));
    assert_eq!(parsed.policies.len(), 1);
    assert_eq!(parsed.rejected.len(), 1);
    assert!(parsed.rejected[0].errors[0].message.contains("duplicate"));
}
