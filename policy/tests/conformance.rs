//! Table-driven conformance with the semantics reference, sections 3 to 7.
//! Each case: policies, a flow, and the expected verdict in the compact form
//! of `common::render` (verdict, drop_reason, dropped_at, match_type, l7).

mod common;

use common::{Req, render, run};
use holonet_policy::diag::SourceFile;

const EPS: &str = r#"
cluster: default
namespaces:
  other: {labels: {team: blue}}
endpoints:
  - {name: db, namespace: default, labels: {app: db}, ip: 10.0.0.2, node: n1}
  - {name: client, namespace: default, labels: {app: client, org: empire}, ip: 10.0.0.3, node: n2}
  - {name: web, namespace: default, labels: {app: web, org: empire, tier: frontend}, ip: 10.0.0.1, node: n1}
  - {name: other-client, namespace: other, labels: {app: client, org: empire}, ip: 10.0.1.3, node: n2}
  - {name: other-web, namespace: other, labels: {app: web}, ip: 10.0.1.1, node: n1}
  - {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}, ip: 10.0.9.9, node: n1}
"#;

fn cnp(ns: &str, spec: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: p-{}\n  namespace: {ns}\nspec:\n{}",
        fnv(spec),
        indent(spec)
    )
}

fn ccnp(spec: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata:\n  name: c-{}\nspec:\n{}",
        fnv(spec),
        indent(spec)
    )
}

fn fnv(s: &str) -> u32 {
    s.bytes()
        .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619))
}

fn indent(s: &str) -> String {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("  {l}\n"))
        .collect()
}

struct Case {
    name: &'static str,
    policies: Vec<String>,
    from: &'static str,
    to: &'static str,
    proto: &'static str,
    port: u16,
    req: Req,
    want: &'static str,
}

fn c(
    name: &'static str,
    policies: Vec<String>,
    flow: (&'static str, &'static str, &'static str, u16),
    req: Req,
    want: &'static str,
) -> Case {
    Case {
        name,
        policies,
        from: flow.0,
        to: flow.1,
        proto: flow.2,
        port: flow.3,
        req,
        want,
    }
}

fn check(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for case in cases {
        let sources: Vec<SourceFile> = case
            .policies
            .iter()
            .enumerate()
            .map(|(i, p)| SourceFile::new(format!("{}-{i}.yaml", case.name), p.clone()))
            .collect();
        let r = run(
            sources, EPS, case.from, case.to, case.proto, case.port, &case.req,
        );
        let got = render(&r);
        if got != case.want {
            failures.push(format!(
                "{}: want {:?}, got {:?}\n  {}",
                case.name,
                case.want,
                got,
                r.explanation.join("\n  ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

const DB_FROM_CLIENT: &str = "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchLabels: {app: client}}]\n";

#[test]
fn section_3_1_selectors() {
    let and = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchLabels: {app: client, org: empire}}]",
    );
    let or = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchLabels: {app: client}}, {matchLabels: {app: web}}]",
    );
    let notin = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchExpressions: [{key: tier, operator: NotIn, values: [frontend]}]}]",
    );
    let exists = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchExpressions: [{key: tier, operator: Exists}]}]",
    );
    let dne = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchExpressions: [{key: tier, operator: DoesNotExist}]}]",
    );
    let inop = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchExpressions: [{key: app, operator: In, values: [web, other]}]}]",
    );
    let case = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchLabels: {org: Empire}}]",
    );
    check(vec![
        c(
            "AND within a selector",
            vec![and.clone()],
            ("client", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "AND within a selector (web lacks app=client)",
            vec![and],
            ("web", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "OR across selectors",
            vec![or],
            ("web", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "NotIn matches a missing key",
            vec![notin.clone()],
            ("client", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "NotIn excludes the listed value",
            vec![notin],
            ("web", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "Exists",
            vec![exists.clone()],
            ("web", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "Exists needs the key",
            vec![exists],
            ("client", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "DoesNotExist",
            vec![dne.clone()],
            ("client", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "DoesNotExist rejects the key",
            vec![dne],
            ("web", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "In with several values",
            vec![inop],
            ("web", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "values are case-sensitive",
            vec![case],
            ("client", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
    ]);
}

#[test]
fn section_3_2_label_sources() {
    let k8s = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchLabels: {'k8s:app': client}}]",
    );
    let any = cnp(
        "default",
        "endpointSelector: {matchLabels: {'any:app': db}}\ningress:\n- fromEndpoints: [{matchLabels: {'any:app': client}}]",
    );
    let container = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchLabels: {'container:app': client}}]",
    );
    let host = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\negress:\n- toEndpoints: [{matchLabels: {'reserved:host': ''}}]",
    );
    let sa = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchLabels: {io.cilium.k8s.policy.serviceaccount: default}}]",
    );
    let nslabel = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchLabels: {io.cilium.k8s.namespace.labels.team: blue}}]",
    );
    check(vec![
        c(
            "k8s: matches pod labels",
            vec![k8s],
            ("client", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "any: matches pod labels",
            vec![any],
            ("client", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "container: matches no pod",
            vec![container],
            ("client", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "reserved:host selects the host",
            vec![host.clone()],
            ("db", "host", "tcp", 10250),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "reserved:host is not remote-node",
            vec![host],
            ("db", "remote-node", "tcp", 10250),
            Req::None,
            "DROPPED POLICY_DENIED egress none",
        ),
        c(
            "service account label",
            vec![sa],
            ("client", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        // Cilium 1.16: namespace-label selectors in a CNP are still pinned to its namespace.
        c(
            "namespace labels pinned to the CNP namespace (1.16)",
            vec![nslabel],
            ("other-client", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
    ]);
}

#[test]
fn section_3_3_namespace_scoping() {
    let same_ns = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchLabels: {org: empire}}]",
    );
    let other_ns = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchLabels: {org: empire, 'k8s:io.kubernetes.pod.namespace': other}}]",
    );
    let notin_ns = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchExpressions: [{key: io.kubernetes.pod.namespace, operator: NotIn, values: [kube-system]}]}]",
    );
    let subject_all = cnp("default", "endpointSelector: {}\ningress: [{}]");
    let bare_ns_subject = cnp(
        "default",
        "endpointSelector: {matchLabels: {io.kubernetes.pod.namespace: other}}\ningress: [{}]",
    );
    let k8s_ns_subject = cnp(
        "default",
        "endpointSelector: {matchLabels: {'k8s:io.kubernetes.pod.namespace': other, app: web}}\ningress: [{}]",
    );
    let ccnp_all = ccnp("endpointSelector: {}\ningress: [{}]");
    let ccnp_peers =
        ccnp("endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{}]");
    let cnp_peers = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{}]",
    );
    let ccnp_notin = ccnp(
        "endpointSelector: {matchExpressions: [{key: io.kubernetes.pod.namespace, operator: NotIn, values: [kube-system]}]}\negress: [{}]",
    );
    check(vec![
        c(
            "CNP peer is pinned to the policy namespace",
            vec![same_ns.clone()],
            ("other-client", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "CNP peer in its own namespace",
            vec![same_ns],
            ("client", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "explicit namespace reaches another namespace",
            vec![other_ns.clone()],
            ("other-client", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "explicit namespace excludes the own namespace",
            vec![other_ns],
            ("client", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "a NotIn on the namespace key lifts the pin",
            vec![notin_ns.clone()],
            ("other-client", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "a NotIn on the namespace key still excludes",
            vec![notin_ns],
            ("kube-dns", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "CNP endpointSelector {} selects its namespace",
            vec![subject_all.clone()],
            ("client", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "CNP endpointSelector {} stays in its namespace",
            vec![subject_all],
            ("client", "other-web", "tcp", 80),
            Req::None,
            "FORWARDED -",
        ),
        c(
            "bare namespace key in a CNP subject matches nothing",
            vec![bare_ns_subject],
            ("client", "other-web", "tcp", 80),
            Req::None,
            "FORWARDED -",
        ),
        c(
            "k8s: namespace in a CNP subject is overwritten",
            vec![k8s_ns_subject.clone()],
            ("client", "other-web", "tcp", 80),
            Req::None,
            "FORWARDED -",
        ),
        c(
            "k8s: namespace overwritten: own namespace selected",
            vec![k8s_ns_subject],
            ("client", "web", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "CCNP endpointSelector {} selects every namespace",
            vec![ccnp_all],
            ("client", "other-web", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "CCNP fromEndpoints [{}]: all pods",
            vec![ccnp_peers.clone()],
            ("other-client", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "CCNP fromEndpoints [{}]: not world",
            vec![ccnp_peers.clone()],
            ("world:1.2.3.4", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "CCNP fromEndpoints [{}]: not remote-node",
            vec![ccnp_peers],
            ("remote-node", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "CNP fromEndpoints [{}]: own namespace only",
            vec![cnp_peers.clone()],
            ("other-client", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "CNP fromEndpoints [{}]: own namespace",
            vec![cnp_peers],
            ("client", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "CCNP NotIn kube-system leaves kube-system alone",
            vec![ccnp_notin.clone()],
            ("kube-dns", "db", "tcp", 80),
            Req::None,
            "FORWARDED -",
        ),
        c(
            "CCNP NotIn kube-system selects the rest",
            vec![ccnp_notin],
            ("client", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED egress none",
        ),
    ]);
}

#[test]
fn section_3_4_empty_selectors_and_lists() {
    let empty_list = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: []\n  toPorts: [{ports: [{port: '80', protocol: TCP}]}]",
    );
    let l4_only = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- toPorts: [{ports: [{port: '5432', protocol: TCP}]}]",
    );
    let empty_item = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress: [{}]",
    );
    let ingress_only = cnp("default", DB_FROM_CLIENT);
    check(vec![
        c(
            "fromEndpoints: [] selects nothing",
            vec![empty_list],
            ("client", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "toPorts without peer: every peer, L4-Only",
            vec![l4_only.clone()],
            ("world:8.8.8.8", "db", "tcp", 5432),
            Req::None,
            "FORWARDED L4-Only",
        ),
        c(
            "toPorts without peer: pods too",
            vec![l4_only.clone()],
            ("other-client", "db", "tcp", 5432),
            Req::None,
            "FORWARDED L4-Only",
        ),
        c(
            "toPorts without peer: other ports dropped",
            vec![l4_only],
            ("client", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "ingress: [{}] is default-deny allowing nothing",
            vec![empty_item],
            ("client", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "egress omitted: egress not affected",
            vec![ingress_only],
            ("db", "world:1.1.1.1", "tcp", 443),
            Req::None,
            "FORWARDED -",
        ),
    ]);
}

#[test]
fn section_4_entities_and_cidrs() {
    let ent = |e: &str| {
        cnp(
            "default",
            &format!(
                "endpointSelector: {{matchLabels: {{app: db}}}}\ningress:\n- fromEntities: [{e}]"
            ),
        )
    };
    let cidr = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromCIDR: [10.0.0.0/8]",
    );
    let cidrset = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromCIDRSet: [{cidr: 192.168.0.0/16, except: [192.168.1.0/24]}]",
    );
    let except_not_deny = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromCIDRSet: [{cidr: 192.168.0.0/16, except: [192.168.1.0/24]}]\n- fromCIDR: [192.168.1.0/24]",
    );
    let to_cidr = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: client}}\negress:\n- toCIDR: [203.0.113.0/24]\n  toPorts: [{ports: [{port: '443', protocol: TCP}]}]",
    );
    let host_ep = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: client}}\negress:\n- toEntities: [host]",
    );
    let v4 = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEntities: [world-ipv4]",
    );
    check(vec![
        c(
            "world allows outside IPs",
            vec![ent("world")],
            ("world:8.8.8.8", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "world is not pods",
            vec![ent("world")],
            ("client", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "cluster includes pods",
            vec![ent("cluster")],
            ("other-client", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "cluster includes remote-node",
            vec![ent("cluster")],
            ("remote-node", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "cluster excludes world",
            vec![ent("cluster")],
            ("world:8.8.8.8", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "all is everything, match type all",
            vec![ent("all")],
            ("world:8.8.8.8", "db", "tcp", 80),
            Req::None,
            "FORWARDED all",
        ),
        c(
            "remote-node entity",
            vec![ent("remote-node")],
            ("remote-node", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "remote-node is not pods",
            vec![ent("remote-node")],
            ("client", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "none matches nothing",
            vec![ent("none")],
            ("world:8.8.8.8", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "world-ipv4 covers IPv4 world",
            vec![v4.clone()],
            ("world:8.8.8.8", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "world-ipv4 does not cover IPv6",
            vec![v4],
            ("world:2001:db8::1", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "CIDR never matches pods",
            vec![cidr.clone()],
            ("client", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "CIDR matches outside peers",
            vec![cidr],
            ("world:10.99.1.2", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "CIDRSet except is cut out",
            vec![cidrset.clone()],
            ("world:192.168.1.5", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "CIDRSet rest is allowed",
            vec![cidrset],
            ("world:192.168.2.5", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "except is not a deny",
            vec![except_not_deny],
            ("world:192.168.1.5", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "toCIDR with port",
            vec![to_cidr.clone()],
            ("client", "world:203.0.113.7", "tcp", 443),
            Req::None,
            "FORWARDED L3-L4",
        ),
        c(
            "toCIDR other address",
            vec![to_cidr],
            ("client", "world:198.51.100.7", "tcp", 443),
            Req::None,
            "DROPPED POLICY_DENIED egress none",
        ),
        c(
            "toEntities host",
            vec![host_ep],
            ("client", "host", "tcp", 10250),
            Req::None,
            "FORWARDED L3-Only",
        ),
    ]);
}

#[test]
fn section_5_ports() {
    let range = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchLabels: {app: client}}]\n  toPorts: [{ports: [{port: '80', endPort: 444, protocol: TCP}]}]",
    );
    let zero = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchLabels: {app: client}}]\n  toPorts: [{ports: [{port: '0', protocol: TCP}]}]",
    );
    let any = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchLabels: {app: client}}]\n  toPorts: [{ports: [{port: '53'}]}]",
    );
    let udp = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchLabels: {app: client}}]\n  toPorts: [{ports: [{port: '53', protocol: UDP}]}]",
    );
    check(vec![
        c(
            "range includes its start",
            vec![range.clone()],
            ("client", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-L4",
        ),
        c(
            "range includes its end",
            vec![range.clone()],
            ("client", "db", "tcp", 444),
            Req::None,
            "FORWARDED L3-L4",
        ),
        c(
            "range ends at endPort",
            vec![range.clone()],
            ("client", "db", "tcp", 445),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "range is per protocol",
            vec![range],
            ("client", "db", "udp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "port 0 is every port of the protocol",
            vec![zero.clone()],
            ("client", "db", "tcp", 31337),
            Req::None,
            "FORWARDED L3-Proto",
        ),
        c(
            "port 0 keeps the protocol",
            vec![zero],
            ("client", "db", "udp", 31337),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "protocol omitted is ANY (UDP)",
            vec![any.clone()],
            ("client", "db", "udp", 53),
            Req::None,
            "FORWARDED L3-L4",
        ),
        c(
            "protocol omitted is ANY (TCP)",
            vec![any],
            ("client", "db", "tcp", 53),
            Req::None,
            "FORWARDED L3-L4",
        ),
        c(
            "UDP does not cover TCP",
            vec![udp],
            ("client", "db", "tcp", 53),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
    ]);
}

#[test]
fn section_6_1_default_deny_and_both_ends() {
    let opt_out = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\nenableDefaultDeny: {ingress: false}\ningress:\n- fromEndpoints: [{matchLabels: {app: client}}]",
    );
    let deny_only = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningressDeny:\n- fromEndpoints: [{matchLabels: {app: web}}]",
    );
    let deny_opt_out = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\nenableDefaultDeny: {ingress: false}\ningressDeny:\n- fromEndpoints: [{matchLabels: {app: web}}]",
    );
    let client_egress = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: client}}\negress:\n- toEndpoints: [{matchLabels: {app: web}}]",
    );
    let db_in = cnp("default", DB_FROM_CLIENT);
    let explicit_dd = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\nenableDefaultDeny: {egress: true}",
    );
    check(vec![
        c(
            "enableDefaultDeny false: allows only add",
            vec![opt_out.clone()],
            ("web", "db", "tcp", 80),
            Req::None,
            "FORWARDED -",
        ),
        c(
            "enableDefaultDeny false: listed peer",
            vec![opt_out],
            ("client", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "deny-only policy is default-deny",
            vec![deny_only.clone()],
            ("client", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "deny-only policy denies",
            vec![deny_only],
            ("web", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENY ingress L3-Only",
        ),
        c(
            "deny with default-deny opted out",
            vec![deny_opt_out.clone()],
            ("web", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENY ingress L3-Only",
        ),
        c(
            "deny with default-deny opted out: others pass",
            vec![deny_opt_out],
            ("client", "db", "tcp", 80),
            Req::None,
            "FORWARDED -",
        ),
        c(
            "source egress must allow too",
            vec![client_egress, db_in.clone()],
            ("client", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED egress none",
        ),
        c(
            "host is always allowed into its pods",
            vec![db_in.clone()],
            ("host", "db", "tcp", 8080),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "remote nodes are not",
            vec![db_in],
            ("remote-node", "db", "tcp", 8080),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "explicit enableDefaultDeny without rules",
            vec![explicit_dd],
            ("db", "world:1.1.1.1", "tcp", 443),
            Req::None,
            "DROPPED POLICY_DENIED egress none",
        ),
    ]);
}

#[test]
fn section_6_1_dns_not_implicit() {
    let egress = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: client}}\negress:\n- toEndpoints: [{matchLabels: {app: db}}]",
    );
    check(vec![c(
        "DNS needs an explicit allow",
        vec![egress],
        ("client", "kube-system/kube-dns", "udp", 53),
        Req::Dns("db.default.svc.cluster.local"),
        "DROPPED POLICY_DENIED egress none",
    )]);
}

#[test]
fn section_6_2_deny_before_allow_and_union() {
    let allow_all = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEntities: [all]",
    );
    let deny_client_port = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningressDeny:\n- fromEndpoints: [{matchLabels: {app: client}}]\n  toPorts: [{ports: [{port: '80', protocol: TCP}]}]",
    );
    let ccnp_deny =
        ccnp("endpointSelector: {matchLabels: {app: db}}\ningressDeny:\n- fromEntities: [world]");
    let allow_world = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEntities: [world]\n  toPorts: [{ports: [{port: '80', protocol: TCP}]}]",
    );
    let a = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchLabels: {app: client}}]",
    );
    let b = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchLabels: {app: web}}]\n  toPorts: [{ports: [{port: '443', protocol: TCP}]}]",
    );
    let deny_egress = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: client}}\negressDeny:\n- toCIDR: [8.8.8.8/32]\negress:\n- toEntities: [world]",
    );
    check(vec![
        c(
            "deny wins over a broader allow",
            vec![allow_all.clone(), deny_client_port.clone()],
            ("client", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENY ingress L3-L4",
        ),
        c(
            "deny only on its port",
            vec![allow_all, deny_client_port],
            ("client", "db", "tcp", 81),
            Req::None,
            "FORWARDED all",
        ),
        c(
            "CCNP deny beats CNP allow",
            vec![ccnp_deny, allow_world],
            ("world:1.2.3.4", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENY ingress L3-Only",
        ),
        c(
            "allows union across policies (a)",
            vec![a.clone(), b.clone()],
            ("client", "db", "tcp", 9999),
            Req::None,
            "FORWARDED L3-Only",
        ),
        c(
            "allows union across policies (b)",
            vec![a.clone(), b.clone()],
            ("web", "db", "tcp", 443),
            Req::None,
            "FORWARDED L3-L4",
        ),
        c(
            "allows union: nothing else",
            vec![a, b],
            ("web", "db", "tcp", 80),
            Req::None,
            "DROPPED POLICY_DENIED ingress none",
        ),
        c(
            "egress deny by CIDR",
            vec![deny_egress.clone()],
            ("client", "world:8.8.8.8", "udp", 53),
            Req::None,
            "DROPPED POLICY_DENY egress L3-Only",
        ),
        c(
            "egress deny by CIDR: others allowed",
            vec![deny_egress],
            ("client", "world:8.8.4.4", "udp", 53),
            Req::None,
            "FORWARDED L3-Only",
        ),
    ]);
}

fn http_rule(peer: &str, rules: &str) -> String {
    cnp(
        "default",
        &format!(
            "endpointSelector: {{matchLabels: {{app: db}}}}\ningress:\n- {peer}\n  toPorts:\n  - ports: [{{port: '80', protocol: TCP}}]\n    rules:\n      http: {rules}"
        ),
    )
}

#[test]
fn section_6_3_l7_wildcarding_and_matching() {
    let l7_client = http_rule(
        "fromEndpoints: [{matchLabels: {app: client}}]",
        "[{method: GET, path: /public}]",
    );
    let l4_client = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchLabels: {app: client}}]\n  toPorts: [{ports: [{port: '80', protocol: TCP}]}]",
    );
    let l3_client = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchLabels: {app: client}}]",
    );
    let l4_web = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningress:\n- fromEndpoints: [{matchLabels: {app: web}}]\n  toPorts: [{ports: [{port: '80', protocol: TCP}]}]",
    );
    let l7_b = http_rule(
        "fromEndpoints: [{matchLabels: {app: client}}]",
        "[{method: POST, path: /b}]",
    );
    let regex = http_rule(
        "fromEndpoints: [{matchLabels: {app: client}}]",
        "[{method: 'GET|HEAD', path: '/v1/.*'}]",
    );
    let headers = http_rule(
        "fromEndpoints: [{matchLabels: {app: client}}]",
        "[{method: GET, headers: ['X-My-Header: true', 'X-Token']}]",
    );
    let host = http_rule(
        "fromEndpoints: [{matchLabels: {app: client}}]",
        "[{host: 'api\\.example\\.com'}]",
    );
    let hm = http_rule(
        "fromEndpoints: [{matchLabels: {app: client}}]",
        "[{headerMatches: [{name: X-Env, value: prod}]}]",
    );
    let hm_log = http_rule(
        "fromEndpoints: [{matchLabels: {app: client}}]",
        "[{path: /x, headerMatches: [{name: X-Env, value: prod, mismatch: LOG}]}]",
    );
    let opt_out = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\nenableDefaultDeny: {ingress: false}\ningress:\n- fromEndpoints: [{matchLabels: {app: client}}]\n  toPorts:\n  - ports: [{port: '80', protocol: TCP}]\n    rules: {http: [{method: GET}]}",
    );
    let egress_l7 = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: client}}\negress:\n- toEndpoints: [{matchLabels: {app: db}}]\n  toPorts:\n  - ports: [{port: '80', protocol: TCP}]\n    rules: {http: [{method: GET, path: /ok}]}",
    );
    let both_ends = [
        egress_l7.clone(),
        http_rule(
            "fromEndpoints: [{matchLabels: {app: client}}]",
            "[{method: GET, path: /other}]",
        ),
    ];
    let empty_http = http_rule("fromEndpoints: [{matchLabels: {app: client}}]", "[{}]");
    let hdr = |n: &'static str, v: &'static str| -> &'static [(&'static str, &'static str)] {
        match (n, v) {
            ("both", _) => &[("x-my-header", "true"), ("X-Token", "abc")],
            ("one", _) => &[("X-My-Header", "true")],
            ("wrong", _) => &[("X-My-Header", "True"), ("X-Token", "abc")],
            _ => &[],
        }
    };
    check(vec![
        c(
            "L7 allows the listed request",
            vec![l7_client.clone()],
            ("client", "db", "tcp", 80),
            Req::Http("GET", "/public"),
            "FORWARDED L3-L4 l7=FORWARDED/null",
        ),
        c(
            "L7 denies others with 403",
            vec![l7_client.clone()],
            ("client", "db", "tcp", 80),
            Req::Http("GET", "/private"),
            "DROPPED - ingress L3-L4 l7=DROPPED/403",
        ),
        c(
            "L7 method is case-sensitive",
            vec![l7_client.clone()],
            ("client", "db", "tcp", 80),
            Req::Http("get", "/public"),
            "DROPPED - ingress L3-L4 l7=DROPPED/403",
        ),
        c(
            "GET does not allow HEAD",
            vec![l7_client.clone()],
            ("client", "db", "tcp", 80),
            Req::Http("HEAD", "/public"),
            "DROPPED - ingress L3-L4 l7=DROPPED/403",
        ),
        c(
            "query string is part of the path",
            vec![l7_client.clone()],
            ("client", "db", "tcp", 80),
            Req::Http("GET", "/public?x=1"),
            "DROPPED - ingress L3-L4 l7=DROPPED/403",
        ),
        c(
            "no path normalisation",
            vec![l7_client.clone()],
            ("client", "db", "tcp", 80),
            Req::Http("GET", "//public"),
            "DROPPED - ingress L3-L4 l7=DROPPED/403",
        ),
        c(
            "connection without a request is allowed at L3/L4",
            vec![l7_client.clone()],
            ("client", "db", "tcp", 80),
            Req::None,
            "FORWARDED L3-L4",
        ),
        c(
            "wildcarding: L4 rule without L7 on the same port",
            vec![l7_client.clone(), l4_client],
            ("client", "db", "tcp", 80),
            Req::Http("PUT", "/anything"),
            "FORWARDED L3-L4 l7=FORWARDED/null",
        ),
        c(
            "wildcarding: L3-only rule for the peer",
            vec![l7_client.clone(), l3_client],
            ("client", "db", "tcp", 80),
            Req::Http("PUT", "/anything"),
            "FORWARDED L3-L4 l7=FORWARDED/null",
        ),
        c(
            "wildcarding is per peer (restricted peer)",
            vec![l7_client.clone(), l4_web.clone()],
            ("client", "db", "tcp", 80),
            Req::Http("PUT", "/x"),
            "DROPPED - ingress L3-L4 l7=DROPPED/403",
        ),
        c(
            "wildcarding is per peer (other peer)",
            vec![l7_client.clone(), l4_web],
            ("web", "db", "tcp", 80),
            Req::Http("PUT", "/x"),
            "FORWARDED L3-L4",
        ),
        c(
            "L7 rules union across policies",
            vec![l7_client.clone(), l7_b.clone()],
            ("client", "db", "tcp", 80),
            Req::Http("POST", "/b"),
            "FORWARDED L3-L4 l7=FORWARDED/null",
        ),
        c(
            "no cross product",
            vec![l7_client, l7_b],
            ("client", "db", "tcp", 80),
            Req::Http("POST", "/public"),
            "DROPPED - ingress L3-L4 l7=DROPPED/403",
        ),
        c(
            "regex alternation, full match",
            vec![regex.clone()],
            ("client", "db", "tcp", 80),
            Req::Http("HEAD", "/v1/a/b?c"),
            "FORWARDED L3-L4 l7=FORWARDED/null",
        ),
        c(
            "regex /v1/.* does not match /v1",
            vec![regex.clone()],
            ("client", "db", "tcp", 80),
            Req::Http("GET", "/v1"),
            "DROPPED - ingress L3-L4 l7=DROPPED/403",
        ),
        c(
            "regex GET|HEAD does not match GETS",
            vec![regex],
            ("client", "db", "tcp", 80),
            Req::Http("GETS", "/v1/"),
            "DROPPED - ingress L3-L4 l7=DROPPED/403",
        ),
        c(
            "headers: all present",
            vec![headers.clone()],
            ("client", "db", "tcp", 80),
            Req::HttpFull {
                method: "GET",
                path: "/",
                host: None,
                headers: hdr("both", ""),
            },
            "FORWARDED L3-L4 l7=FORWARDED/null",
        ),
        c(
            "headers: one missing",
            vec![headers.clone()],
            ("client", "db", "tcp", 80),
            Req::HttpFull {
                method: "GET",
                path: "/",
                host: None,
                headers: hdr("one", ""),
            },
            "DROPPED - ingress L3-L4 l7=DROPPED/403",
        ),
        c(
            "headers: value is exact",
            vec![headers],
            ("client", "db", "tcp", 80),
            Req::HttpFull {
                method: "GET",
                path: "/",
                host: None,
                headers: hdr("wrong", ""),
            },
            "DROPPED - ingress L3-L4 l7=DROPPED/403",
        ),
        c(
            "host matches",
            vec![host.clone()],
            ("client", "db", "tcp", 80),
            Req::HttpFull {
                method: "GET",
                path: "/",
                host: Some("api.example.com"),
                headers: &[],
            },
            "FORWARDED L3-L4 l7=FORWARDED/null",
        ),
        c(
            "host includes the port",
            vec![host],
            ("client", "db", "tcp", 80),
            Req::HttpFull {
                method: "GET",
                path: "/",
                host: Some("api.example.com:80"),
                headers: &[],
            },
            "DROPPED - ingress L3-L4 l7=DROPPED/403",
        ),
        c(
            "headerMatches value",
            vec![hm.clone()],
            ("client", "db", "tcp", 80),
            Req::HttpFull {
                method: "GET",
                path: "/",
                host: None,
                headers: &[("x-env", "prod")],
            },
            "FORWARDED L3-L4 l7=FORWARDED/null",
        ),
        c(
            "headerMatches mismatch fails",
            vec![hm],
            ("client", "db", "tcp", 80),
            Req::HttpFull {
                method: "GET",
                path: "/",
                host: None,
                headers: &[("x-env", "dev")],
            },
            "DROPPED - ingress L3-L4 l7=DROPPED/403",
        ),
        c(
            "headerMatches LOG still matches",
            vec![hm_log],
            ("client", "db", "tcp", 80),
            Req::HttpFull {
                method: "GET",
                path: "/x",
                host: None,
                headers: &[("x-env", "dev")],
            },
            "FORWARDED L3-L4 l7=FORWARDED/null",
        ),
        c(
            "empty HTTP rule matches everything",
            vec![empty_http],
            ("client", "db", "tcp", 80),
            Req::Http("DELETE", "/x"),
            "FORWARDED L3-L4 l7=FORWARDED/null",
        ),
        c(
            "not default-deny: L7 is visibility only",
            vec![opt_out],
            ("client", "db", "tcp", 80),
            Req::Http("DELETE", "/x"),
            "FORWARDED L3-L4 l7=FORWARDED/null",
        ),
        c(
            "egress L7 drops at the source",
            vec![egress_l7],
            ("client", "db", "tcp", 80),
            Req::Http("GET", "/nope"),
            "DROPPED - egress L3-L4 l7=DROPPED/403",
        ),
        c(
            "both ends enforce L7 (egress passes, ingress denies)",
            both_ends.to_vec(),
            ("client", "db", "tcp", 80),
            Req::Http("GET", "/ok"),
            "DROPPED - ingress L3-L4 l7=DROPPED/403",
        ),
    ]);
}

#[test]
fn section_6_3_dns_rules() {
    let dns = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: client}}\negress:\n- toEndpoints: [{matchLabels: {'k8s:io.kubernetes.pod.namespace': kube-system, k8s-app: kube-dns}}]\n  toPorts:\n  - ports: [{port: '53', protocol: ANY}]\n    rules: {dns: [{matchPattern: '*.cilium.io'}, {matchName: example.org}]}",
    );
    check(vec![
        c(
            "DNS pattern allows a subdomain",
            vec![dns.clone()],
            ("client", "kube-system/kube-dns", "udp", 53),
            Req::Dns("sub.cilium.io"),
            "FORWARDED L3-L4 l7=FORWARDED/null",
        ),
        c(
            "DNS pattern is one label",
            vec![dns.clone()],
            ("client", "kube-system/kube-dns", "udp", 53),
            Req::Dns("a.b.cilium.io"),
            "DROPPED - egress L3-L4 l7=DROPPED/null",
        ),
        c(
            "DNS pattern needs a label",
            vec![dns.clone()],
            ("client", "kube-system/kube-dns", "udp", 53),
            Req::Dns("cilium.io"),
            "DROPPED - egress L3-L4 l7=DROPPED/null",
        ),
        c(
            "DNS name is case-insensitive",
            vec![dns.clone()],
            ("client", "kube-system/kube-dns", "tcp", 53),
            Req::Dns("Example.ORG."),
            "FORWARDED L3-L4 l7=FORWARDED/null",
        ),
        c(
            "DNS rules only on their peer",
            vec![dns],
            ("client", "world:8.8.8.8", "udp", 53),
            Req::Dns("sub.cilium.io"),
            "DROPPED POLICY_DENIED egress none",
        ),
    ]);
}

#[test]
fn section_7_json_fields() {
    let deny = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningressDeny:\n- fromEndpoints: [{matchLabels: {app: client}}]",
    );
    let sources = vec![SourceFile::new("d.yaml", deny)];
    let r = run(
        sources,
        EPS,
        "client",
        "db",
        "tcp",
        80,
        &Req::Http("GET", "/"),
    );
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["verdict"], "DROPPED");
    assert_eq!(v["drop_reason"], "POLICY_DENY");
    assert_eq!(v["dropped_at"], "ingress");
    assert!(v["l7"].is_null(), "an L3/L4 drop has l7 null");
    for key in [
        "verdict",
        "drop_reason",
        "dropped_at",
        "match_type",
        "l7",
        "explanation",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    let text = r.to_text();
    assert!(text.contains("deny rule"), "{text}");
}

#[test]
fn host_gets_an_l7_wildcard() {
    let l7 = http_rule("fromEntities: [host]", "[{method: GET, path: /healthz}]");
    let deny_host = cnp(
        "default",
        "endpointSelector: {matchLabels: {app: db}}\ningressDeny:\n- fromEntities: [host]\n  toPorts: [{ports: [{port: '22', protocol: TCP}]}]",
    );
    check(vec![
        c(
            "host is not restricted at L7",
            vec![l7.clone()],
            ("host", "db", "tcp", 80),
            Req::Http("POST", "/admin"),
            "FORWARDED L3-L4 l7=FORWARDED/null",
        ),
        c(
            "host exception without L7 rules has no L7 part",
            vec![l7],
            ("host", "db", "tcp", 8080),
            Req::Http("POST", "/admin"),
            "FORWARDED L3-Only",
        ),
        c(
            "a deny still applies to the host",
            vec![deny_host],
            ("host", "db", "tcp", 22),
            Req::None,
            "DROPPED POLICY_DENY ingress L3-L4",
        ),
    ]);
}

#[test]
fn a_pod_reaching_itself_skips_policy() {
    let deny_all = cnp(
        "default",
        "endpointSelector: {}\ningress: [{}]\negress: [{}]",
    );
    check(vec![c(
        "self traffic",
        vec![deny_all],
        ("db", "db", "tcp", 80),
        Req::None,
        "FORWARDED -",
    )]);
}
