//! The merged lookup entries the agent writes into BPF maps.

mod common;

use std::sync::Arc;

use holonet_policy::diag::SourceFile;
use holonet_policy::endpoints::{IDENTITY_HOST, parse_endpoints};
use holonet_policy::l7::{compile_http_rules, walk};
use holonet_policy::parse::parse_policies;
use holonet_policy::resolve::{EntryVerdict, L7Decision, MatchType, PeerKey, resolve};

#[test]
fn star_wars_l7_entries() {
    let parsed = parse_policies(&common::policy_sources(&["star-wars/l7"]));
    let eps =
        std::fs::read_to_string(common::policies_dir().join("endpoints/star-wars.yaml")).unwrap();
    let cluster = Arc::new(parse_endpoints(&SourceFile::new("e", eps)).unwrap());
    let r = resolve(&parsed.policies, cluster.clone());
    let ds = cluster.find_endpoint("deathstar").unwrap();
    let tie = cluster.find_endpoint("tiefighter").unwrap();
    let xwing = cluster.find_endpoint("xwing").unwrap();
    let pol = r.for_identity(ds.identity);
    assert!(pol.ingress.default_deny);
    assert!(!pol.egress.default_deny);
    let entries = pol.ingress.entries(&cluster);
    // tiefighter and deathstar share org=empire, so both identities are selected.
    let tie_entries: Vec<_> = entries
        .iter()
        .filter(|e| e.peer == PeerKey::Identity(tie.identity))
        .collect();
    assert_eq!(tie_entries.len(), 1, "{entries:#?}");
    let e = tie_entries[0];
    assert_eq!((e.proto, e.port_lo, e.port_hi), (6, 80, 80));
    let EntryVerdict::Allow {
        match_type,
        l7: L7Decision::Http(rules),
    } = &e.verdict
    else {
        panic!("{e:?}")
    };
    assert_eq!(*match_type, MatchType::L3L4);
    let compiled = compile_http_rules(rules).unwrap();
    assert!(compiled.excluded.is_empty());
    assert_eq!(
        walk(&compiled.table, "POST", "/v1/request-landing"),
        Some(0)
    );
    assert_eq!(walk(&compiled.table, "PUT", "/v1/exhaust-port"), None);
    assert!(
        !entries
            .iter()
            .any(|e| e.peer == PeerKey::Identity(xwing.identity)),
        "xwing falls to the default"
    );
    assert!(!entries.iter().any(|e| e.peer == PeerKey::Any));
    // The host exception is materialised for default-deny ingress.
    let host: Vec<_> = entries
        .iter()
        .filter(|e| e.peer == PeerKey::Identity(IDENTITY_HOST))
        .collect();
    assert!(
        host.iter()
            .any(|e| e.proto == 6 && e.port_lo == 0 && e.port_hi == 65535),
        "{host:#?}"
    );
}

#[test]
fn deny_and_ranges_are_split_into_disjoint_entries() {
    let y = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec:\n  endpointSelector: {matchLabels: {app: db}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: web}}]\n    toPorts: [{ports: [{port: '8000', endPort: 8100, protocol: TCP}]}]\n  ingressDeny:\n  - fromEndpoints: [{matchLabels: {app: web}}]\n    toPorts: [{ports: [{port: '8080', protocol: TCP}]}]\n  - fromCIDRSet: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]\n";
    let parsed = parse_policies(&[SourceFile::new("p.yaml", y)]);
    assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
    let eps = "endpoints:\n- {name: db, labels: {app: db}, ip: 10.244.0.1}\n- {name: web, labels: {app: web}, ip: 10.244.0.2}\n";
    let cluster = Arc::new(parse_endpoints(&SourceFile::new("e", eps)).unwrap());
    let r = resolve(&parsed.policies, cluster.clone());
    let db = cluster.find_endpoint("db").unwrap();
    let web = cluster.find_endpoint("web").unwrap();
    let entries = r.for_identity(db.identity).ingress.entries(&cluster);
    let web_tcp: Vec<(u16, u16, bool)> = entries
        .iter()
        .filter(|e| e.peer == PeerKey::Identity(web.identity) && e.proto == 6)
        .map(|e| (e.port_lo, e.port_hi, e.verdict == EntryVerdict::Deny))
        .collect();
    assert_eq!(
        web_tcp,
        vec![(8000, 8079, false), (8080, 8080, true), (8081, 8100, false)]
    );
    let cidrs: Vec<String> = entries
        .iter()
        .filter_map(|e| match e.peer {
            PeerKey::Cidr(p) if e.proto == 0 => Some(p.to_string()),
            _ => None,
        })
        .collect();
    assert!(
        cidrs.contains(&"10.0.0.0/16".to_string()) && !cidrs.iter().any(|c| c.starts_with("10.1.")),
        "{cidrs:?}"
    );
}
