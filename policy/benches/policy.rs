//! Criterion benchmarks for the policy engine (figures in docs/benchmarks.md).
//!
//! - `resolve/1000_policies_5000_endpoints`: resolve 1,000 policies against
//!   5,000 endpoints (5,000 distinct identities), one core.
//! - `resolve+entries/...`: the same plus the merged kernel lookup entries of
//!   every endpoint identity.
//! - `l7/dfa_walk_100B`: one L7 decision in user space, a DFA walk over a
//!   100-byte request line.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use holonet_policy::diag::SourceFile;
use holonet_policy::endpoints::parse_endpoints;
use holonet_policy::l7::{RequestLineRule, compile_request_line, walk};
use holonet_policy::parse::parse_policies;
use holonet_policy::resolve::resolve;

const APPS: usize = 1000;
const ENDPOINTS: usize = 5000;
const NAMESPACES: usize = 20;

fn endpoints_yaml() -> String {
    let mut s = String::from("cluster: default\nendpoints:\n");
    for i in 0..ENDPOINTS {
        let app = i % APPS;
        let ns = app % NAMESPACES;
        s.push_str(&format!(
            "  - {{name: pod-{i}, namespace: ns-{ns}, labels: {{app: app-{app}, version: v{}, tier: t{}}}, ip: 10.{}.{}.{}, node: node-{}}}\n",
            i / APPS,
            app % 7,
            i / 65536,
            (i / 256) % 256,
            i % 256,
            i % 50
        ));
    }
    s.push_str("  - {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}, ip: 10.255.0.10, node: node-0}\n");
    s
}

fn policies_yaml() -> String {
    let mut s = String::new();
    for i in 0..APPS - 10 {
        let ns = i % NAMESPACES;
        let (a, b) = ((i + 1) % APPS, (i + 2) % APPS);
        s.push_str(&format!(
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: app-{i}, namespace: ns-{ns}}}\nspec:\n  endpointSelector: {{matchLabels: {{app: app-{i}}}}}\n  ingress:\n  - fromEndpoints:\n    - {{matchLabels: {{app: app-{a}, 'k8s:io.kubernetes.pod.namespace': ns-{}}}}}\n    - {{matchExpressions: [{{key: app, operator: In, values: [app-{b}]}}, {{key: io.kubernetes.pod.namespace, operator: Exists}}]}}\n    toPorts:\n    - ports: [{{port: '8080', protocol: TCP}}]\n      rules: {{http: [{{method: 'GET|HEAD', path: '/api/v1/.*'}}, {{method: POST, path: /api/v1/orders}}]}}\n  - fromCIDRSet: [{{cidr: 192.168.0.0/16, except: [192.168.{}.0/24]}}]\n    toPorts: [{{ports: [{{port: '443', protocol: TCP}}]}}]\n  egress:\n  - toEndpoints: [{{matchLabels: {{'k8s:io.kubernetes.pod.namespace': kube-system, k8s-app: kube-dns}}}}]\n    toPorts: [{{ports: [{{port: '53', protocol: ANY}}], rules: {{dns: [{{matchPattern: '*'}}]}}}}]\n  - toEndpoints: [{{matchLabels: {{app: app-{a}}}}}]\n  egressDeny:\n  - toEntities: [world]\n    toPorts: [{{ports: [{{port: '25', protocol: TCP}}]}}]\n---\n",
            a % NAMESPACES,
            i % 256
        ));
    }
    for i in 0..10 {
        s.push_str(&format!(
            "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {{name: cw-{i}}}\nspec:\n  endpointSelector: {{matchExpressions: [{{key: tier, operator: In, values: [t{}]}}, {{key: io.kubernetes.pod.namespace, operator: NotIn, values: [kube-system]}}]}}\n  ingress:\n  - fromEntities: [host, remote-node]\n  ingressDeny:\n  - fromCIDR: [203.0.113.0/24]\n---\n",
            i % 7
        ));
    }
    s
}

fn bench_resolve(c: &mut Criterion) {
    let parsed = parse_policies(&[SourceFile::new("bench.yaml", policies_yaml())]);
    assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected.first());
    assert_eq!(parsed.policies.len(), 1000);
    let cluster =
        Arc::new(parse_endpoints(&SourceFile::new("eps.yaml", endpoints_yaml())).unwrap());
    assert_eq!(cluster.endpoints.len(), ENDPOINTS + 1);
    let mut g = c.benchmark_group("resolve");
    g.sample_size(10);
    g.bench_function("1000_policies_5000_endpoints", |b| {
        b.iter(|| black_box(resolve(&parsed.policies, cluster.clone())))
    });
    g.finish();
    let mut g = c.benchmark_group("resolve+entries");
    g.sample_size(10);
    g.bench_function("1000_policies_5000_endpoints", |b| {
        b.iter(|| {
            let r = resolve(&parsed.policies, cluster.clone());
            let mut n = 0usize;
            for p in r.by_identity.values() {
                n += p.ingress.entries(&cluster).len() + p.egress.entries(&cluster).len();
            }
            black_box(n)
        })
    });
    g.finish();
    let mut g = c.benchmark_group("parse");
    g.sample_size(10);
    let text = policies_yaml();
    g.bench_function("1000_policies", |b| {
        b.iter(|| black_box(parse_policies(&[SourceFile::new("b.yaml", text.clone())])))
    });
    g.finish();
}

fn bench_l7(c: &mut Criterion) {
    let vader = "/intersystems/fhir/r5/Patient/DarthVader";
    let table = compile_request_line(&[
        RequestLineRule {
            method: Some("GET"),
            path: Some(vader),
        },
        RequestLineRule {
            method: Some("HEAD"),
            path: Some(vader),
        },
        RequestLineRule {
            method: Some("GET|HEAD"),
            path: Some("/intersystems/fhir/r5/Observation/[0-9]+(\\?.*)?"),
        },
    ])
    .unwrap();
    // A 100-byte request line that is accepted (the walk reads every byte).
    let path = format!(
        "/intersystems/fhir/r5/Observation/{}",
        "1".repeat(100 - 4 - 34)
    );
    let line = format!("GET {path}");
    assert_eq!(line.len(), 100);
    assert_eq!(walk(&table, "GET", &path), Some(2));
    c.bench_function("l7/dfa_walk_100B", |b| {
        b.iter(|| black_box(table.walk(black_box(line.as_bytes()))))
    });
    c.bench_function("l7/decide_http_100B", |b| {
        b.iter(|| black_box(walk(&table, black_box("GET"), black_box(&path))))
    });
    c.bench_function("l7/compile_seed_table", |b| {
        b.iter(|| {
            black_box(
                compile_request_line(&[
                    RequestLineRule {
                        method: Some("GET"),
                        path: Some(vader),
                    },
                    RequestLineRule {
                        method: Some("HEAD"),
                        path: Some(vader),
                    },
                ])
                .unwrap(),
            )
        })
    });
}

criterion_group!(benches, bench_resolve, bench_l7);
criterion_main!(benches);
