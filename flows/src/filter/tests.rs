//! Table-driven tests: one or more rows per FlowFilter field, plus the
//! AND/OR/NOT composition rules.

use holonet_proto::{
    flow::{
        CiliumEventType, Dns, DropReason, Endpoint, EventTypeFilter, Flow, FlowFilter, FlowType,
        Http, HttpHeader, IcmPv4, Ip, IpTraceId, IpVersion, Layer4, Layer7, NetworkInterface,
        Service, Tcp, TcpFlags, TraceContext, TraceParent, TrafficDirection, Udp, Verdict,
        Workload, flow_filter::Experimental, layer4, layer7,
    },
    pbjson_types::BoolValue,
};

use super::*;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

/// An HTTP request from default/payer to default/ledger, as holonet emits it.
fn http_flow() -> Flow {
    Flow {
        uuid: "u-1".into(),
        verdict: Verdict::Forwarded as i32,
        ip: Some(Ip {
            source: "10.244.1.23".into(),
            source_xlated: "192.0.2.1".into(),
            destination: "10.244.2.17".into(),
            ip_version: IpVersion::IPv4 as i32,
            encrypted: false,
        }),
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::Tcp(Tcp {
                source_port: 41234,
                destination_port: 8080,
                flags: Some(TcpFlags {
                    syn: true,
                    ack: true,
                    ..Default::default()
                }),
            })),
        }),
        source: Some(Endpoint {
            id: 377,
            identity: 31245,
            cluster_name: "prod".into(),
            namespace: "default".into(),
            labels: s(&["k8s:app=payer", "k8s:org=payer"]),
            pod_name: "payer-7d9c-x2kq9".into(),
            workloads: vec![Workload {
                name: "payer".into(),
                kind: "Deployment".into(),
            }],
        }),
        destination: Some(Endpoint {
            id: 812,
            identity: 51231,
            cluster_name: "prod".into(),
            namespace: "default".into(),
            labels: s(&["k8s:app=ledger", "k8s:org=bank"]),
            pod_name: "ledger-5f6b-lm2pq".into(),
            workloads: vec![],
        }),
        r#type: FlowType::L7 as i32,
        node_name: "prod/worker-1".into(),
        node_labels: s(&["kubernetes.io/hostname=worker-1", "zone=a"]),
        source_names: vec![],
        destination_names: s(&["ledger.default.svc.cluster.local"]),
        l7: Some(Layer7 {
            r#type: 1,
            latency_ns: 0,
            record: Some(layer7::Record::Http(Http {
                code: 0,
                method: "GET".into(),
                url: "http://ledger:8080/v1/balance?acct=1".into(),
                protocol: "HTTP/1.1".into(),
                headers: vec![HttpHeader {
                    key: "x-org".into(),
                    value: "payer".into(),
                }],
            })),
        }),
        event_type: Some(CiliumEventType {
            r#type: 129,
            sub_type: 0,
        }),
        destination_service: Some(Service {
            name: "ledger".into(),
            namespace: "default".into(),
        }),
        traffic_direction: TrafficDirection::Egress as i32,
        is_reply: Some(BoolValue { value: false }),
        interface: Some(NetworkInterface {
            index: 7,
            name: "veth1".into(),
        }),
        trace_context: Some(TraceContext {
            parent: Some(TraceParent {
                trace_id: "abc".into(),
            }),
        }),
        ip_trace_id: Some(IpTraceId {
            trace_id: 42,
            ip_option_type: 0,
        }),
        ..Default::default()
    }
}

fn with_status(code: u32) -> Flow {
    let mut f = http_flow();
    if let Some(Layer7 {
        record: Some(layer7::Record::Http(h)),
        ..
    }) = f.l7.as_mut()
    {
        h.code = code;
    }
    f
}

fn drop_flow() -> Flow {
    Flow {
        verdict: Verdict::Dropped as i32,
        drop_reason: 133,
        drop_reason_desc: DropReason::PolicyDenied as i32,
        event_type: Some(CiliumEventType {
            r#type: 1,
            sub_type: 133,
        }),
        l7: None,
        is_reply: None,
        ..http_flow()
    }
}

fn dns_flow() -> Flow {
    Flow {
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::Udp(Udp {
                source_port: 5353,
                destination_port: 53,
            })),
        }),
        l7: Some(Layer7 {
            r#type: 1,
            latency_ns: 0,
            record: Some(layer7::Record::Dns(Dns {
                query: "ledger.default.svc.cluster.local.".into(),
                ..Default::default()
            })),
        }),
        ..http_flow()
    }
}

fn icmp_flow() -> Flow {
    Flow {
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::IcmPv4(IcmPv4 { r#type: 8, code: 0 })),
        }),
        l7: None,
        ..http_flow()
    }
}

fn ok(ff: FlowFilter, flow: &Flow) -> bool {
    FlowFilterSet::new(&[ff], &[])
        .expect("valid filter")
        .matches(flow)
}

#[test]
fn every_field_matches_and_rejects() {
    let http = http_flow();
    let f = FlowFilter::default;
    // (name, filter, flow, expected)
    let table: Vec<(&str, FlowFilter, Flow, bool)> = vec![
        (
            "uuid hit",
            FlowFilter {
                uuid: s(&["u-1"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "uuid miss",
            FlowFilter {
                uuid: s(&["u-2"]),
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "source_ip exact",
            FlowFilter {
                source_ip: s(&["10.244.1.23"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "source_ip cidr",
            FlowFilter {
                source_ip: s(&["10.244.0.0/16"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "source_ip cidr miss",
            FlowFilter {
                source_ip: s(&["10.245.0.0/16"]),
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "source_ip or",
            FlowFilter {
                source_ip: s(&["1.1.1.1", "10.244.1.23"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "source_ip_xlated",
            FlowFilter {
                source_ip_xlated: s(&["192.0.2.0/24"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "destination_ip",
            FlowFilter {
                destination_ip: s(&["10.244.2.17/32"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "destination_ip v6 vs v4",
            FlowFilter {
                destination_ip: s(&["::/0"]),
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "source_pod prefix",
            FlowFilter {
                source_pod: s(&["default/payer-"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "source_pod namespace",
            FlowFilter {
                source_pod: s(&["default/"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "source_pod default ns",
            FlowFilter {
                source_pod: s(&["payer"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "source_pod other ns",
            FlowFilter {
                source_pod: s(&["kube-system/"]),
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "destination_pod",
            FlowFilter {
                destination_pod: s(&["default/ledger"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "destination_pod miss",
            FlowFilter {
                destination_pod: s(&["default/payer"]),
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "source_fqdn none",
            FlowFilter {
                source_fqdn: s(&["*"]),
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "destination_fqdn glob",
            FlowFilter {
                destination_fqdn: s(&["*.svc.cluster.local"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "destination_fqdn case+dot",
            FlowFilter {
                destination_fqdn: s(&["Ledger.default.svc.cluster.local."]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "destination_fqdn miss",
            FlowFilter {
                destination_fqdn: s(&["*.example.com"]),
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "source_label",
            FlowFilter {
                source_label: s(&["org=payer"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "source_label k8s source",
            FlowFilter {
                source_label: s(&["k8s:org in (payer, empire)"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "source_label other source",
            FlowFilter {
                source_label: s(&["container:org=payer"]),
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "destination_label",
            FlowFilter {
                destination_label: s(&["org=payer"]),
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "destination_label not",
            FlowFilter {
                destination_label: s(&["!tier"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "source_service none",
            FlowFilter {
                source_service: s(&["default/"]),
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "destination_service",
            FlowFilter {
                destination_service: s(&["default/ledger"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "source_workload",
            FlowFilter {
                source_workload: vec![Workload {
                    name: "payer".into(),
                    kind: String::new(),
                }],
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "source_workload kind miss",
            FlowFilter {
                source_workload: vec![Workload {
                    name: String::new(),
                    kind: "StatefulSet".into(),
                }],
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "destination_workload none",
            FlowFilter {
                destination_workload: vec![Workload::default()],
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "source_cluster_name",
            FlowFilter {
                source_cluster_name: s(&["prod"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "destination_cluster_name miss",
            FlowFilter {
                destination_cluster_name: s(&["dev"]),
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "traffic_direction",
            FlowFilter {
                traffic_direction: vec![TrafficDirection::Egress as i32],
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "traffic_direction miss",
            FlowFilter {
                traffic_direction: vec![TrafficDirection::Ingress as i32],
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "verdict",
            FlowFilter {
                verdict: vec![Verdict::Dropped as i32, Verdict::Forwarded as i32],
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "verdict miss",
            FlowFilter {
                verdict: vec![Verdict::Dropped as i32],
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "drop_reason_desc",
            FlowFilter {
                drop_reason_desc: vec![DropReason::PolicyDenied as i32],
                ..f()
            },
            drop_flow(),
            true,
        ),
        (
            "drop_reason_desc miss",
            FlowFilter {
                drop_reason_desc: vec![DropReason::PolicyDeny as i32],
                ..f()
            },
            drop_flow(),
            false,
        ),
        (
            "interface name",
            FlowFilter {
                interface: vec![NetworkInterface {
                    index: 0,
                    name: "veth1".into(),
                }],
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "interface index miss",
            FlowFilter {
                interface: vec![NetworkInterface {
                    index: 3,
                    name: String::new(),
                }],
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "event_type",
            FlowFilter {
                event_type: vec![EventTypeFilter {
                    r#type: 129,
                    match_sub_type: false,
                    sub_type: 0,
                }],
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "event_type subtype",
            FlowFilter {
                event_type: vec![EventTypeFilter {
                    r#type: 1,
                    match_sub_type: true,
                    sub_type: 133,
                }],
                ..f()
            },
            drop_flow(),
            true,
        ),
        (
            "event_type subtype miss",
            FlowFilter {
                event_type: vec![EventTypeFilter {
                    r#type: 1,
                    match_sub_type: true,
                    sub_type: 181,
                }],
                ..f()
            },
            drop_flow(),
            false,
        ),
        (
            "http_status exact",
            FlowFilter {
                http_status_code: s(&["404"]),
                ..f()
            },
            with_status(404),
            true,
        ),
        (
            "http_status 5+",
            FlowFilter {
                http_status_code: s(&["5+"]),
                ..f()
            },
            with_status(503),
            true,
        ),
        (
            "http_status 40+",
            FlowFilter {
                http_status_code: s(&["40+"]),
                ..f()
            },
            with_status(404),
            true,
        ),
        (
            "http_status 40+ miss",
            FlowFilter {
                http_status_code: s(&["40+"]),
                ..f()
            },
            with_status(410),
            false,
        ),
        (
            "http_status request",
            FlowFilter {
                http_status_code: s(&["2+"]),
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "protocol tcp",
            FlowFilter {
                protocol: s(&["TCP"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "protocol http",
            FlowFilter {
                protocol: s(&["http"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "protocol udp miss",
            FlowFilter {
                protocol: s(&["udp"]),
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "protocol dns",
            FlowFilter {
                protocol: s(&["dns"]),
                ..f()
            },
            dns_flow(),
            true,
        ),
        (
            "protocol icmp",
            FlowFilter {
                protocol: s(&["icmp"]),
                ..f()
            },
            icmp_flow(),
            true,
        ),
        (
            "protocol icmpv6 miss",
            FlowFilter {
                protocol: s(&["icmpv6"]),
                ..f()
            },
            icmp_flow(),
            false,
        ),
        (
            "protocol kafka never",
            FlowFilter {
                protocol: s(&["kafka"]),
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "source_port",
            FlowFilter {
                source_port: s(&["41234"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "destination_port",
            FlowFilter {
                destination_port: s(&["80", "8080"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "destination_port udp",
            FlowFilter {
                destination_port: s(&["53"]),
                ..f()
            },
            dns_flow(),
            true,
        ),
        (
            "port icmp never",
            FlowFilter {
                destination_port: s(&["0"]),
                ..f()
            },
            icmp_flow(),
            false,
        ),
        (
            "reply false",
            FlowFilter {
                reply: vec![false],
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "reply true miss",
            FlowFilter {
                reply: vec![true],
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "reply unset never",
            FlowFilter {
                reply: vec![false],
                ..f()
            },
            drop_flow(),
            false,
        ),
        (
            "dns_query",
            FlowFilter {
                dns_query: s(&[r"^ledger\."]),
                ..f()
            },
            dns_flow(),
            true,
        ),
        (
            "dns_query miss",
            FlowFilter {
                dns_query: s(&["example"]),
                ..f()
            },
            dns_flow(),
            false,
        ),
        (
            "source_identity",
            FlowFilter {
                source_identity: vec![31245],
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "destination_identity miss",
            FlowFilter {
                destination_identity: vec![31245],
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "http_method",
            FlowFilter {
                http_method: s(&["get"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "http_method miss",
            FlowFilter {
                http_method: s(&["POST"]),
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "http_path",
            FlowFilter {
                http_path: s(&["^/v1/bal"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "http_path ignores query",
            FlowFilter {
                http_path: s(&["acct"]),
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "http_url",
            FlowFilter {
                http_url: s(&["acct=1$"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "http_header",
            FlowFilter {
                http_header: vec![HttpHeader {
                    key: "x-org".into(),
                    value: "payer".into(),
                }],
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "http_header value miss",
            FlowFilter {
                http_header: vec![HttpHeader {
                    key: "x-org".into(),
                    value: "bank".into(),
                }],
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "tcp_flags subset",
            FlowFilter {
                tcp_flags: vec![TcpFlags {
                    syn: true,
                    ..Default::default()
                }],
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "tcp_flags superset miss",
            FlowFilter {
                tcp_flags: vec![TcpFlags {
                    syn: true,
                    fin: true,
                    ..Default::default()
                }],
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "tcp_flags or",
            FlowFilter {
                tcp_flags: vec![
                    TcpFlags {
                        fin: true,
                        ..Default::default()
                    },
                    TcpFlags {
                        ack: true,
                        ..Default::default()
                    },
                ],
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "node_name node only",
            FlowFilter {
                node_name: s(&["worker-*"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "node_name cluster/node",
            FlowFilter {
                node_name: s(&["prod/worker-1"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "node_name cluster/",
            FlowFilter {
                node_name: s(&["prod/"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "node_name other cluster",
            FlowFilter {
                node_name: s(&["dev/"]),
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "node_name default cluster",
            FlowFilter {
                node_name: s(&["default/worker-1"]),
                ..f()
            },
            Flow {
                node_name: "worker-1".into(),
                ..http.clone()
            },
            true,
        ),
        (
            "node_labels",
            FlowFilter {
                node_labels: s(&["zone in (a,b)"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "node_labels miss",
            FlowFilter {
                node_labels: s(&["zone=c"]),
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "ip_version",
            FlowFilter {
                ip_version: vec![IpVersion::IPv4 as i32],
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "ip_version miss",
            FlowFilter {
                ip_version: vec![IpVersion::IPv6 as i32],
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "trace_id",
            FlowFilter {
                trace_id: s(&["abc"]),
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "trace_id miss",
            FlowFilter {
                trace_id: s(&["abd"]),
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "ip_trace_id",
            FlowFilter {
                ip_trace_id: vec![42],
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "ip_trace_id miss",
            FlowFilter {
                ip_trace_id: vec![43],
                ..f()
            },
            http.clone(),
            false,
        ),
        (
            "encrypted false",
            FlowFilter {
                encrypted: vec![false],
                ..f()
            },
            http.clone(),
            true,
        ),
        (
            "encrypted true miss",
            FlowFilter {
                encrypted: vec![true],
                ..f()
            },
            http.clone(),
            false,
        ),
    ];
    for (name, ff, flow, want) in table {
        assert_eq!(ok(ff.clone(), &flow), want, "{name}");
        // The same flow with its shareable parts kept apart, as the
        // agent's store keeps them, matches the same way.
        let mut bare = flow;
        let ip = bare.ip.take();
        let source = bare.source.take();
        let destination = bare.destination.take();
        let node_name = std::mem::take(&mut bare.node_name);
        let interface = bare.interface.take();
        let uuid = std::mem::take(&mut bare.uuid);
        let shared = SharedParts {
            uuid: Some(&uuid),
            ip: ip.as_ref(),
            source: source.as_ref(),
            destination: destination.as_ref(),
            node_name: Some(&node_name),
            interface: interface.as_ref(),
            ..SharedParts::default()
        };
        let set = FlowFilterSet::new(&[ff], &[]).expect("valid filter");
        assert_eq!(
            set.matches_parts(&bare, &shared),
            want,
            "{name}, parts kept apart"
        );
    }
}

#[test]
fn fields_are_anded_values_are_ored() {
    let flow = http_flow();
    let both = FlowFilter {
        source_label: s(&["org=payer"]),
        verdict: vec![Verdict::Forwarded as i32],
        ..Default::default()
    };
    assert!(ok(both.clone(), &flow));
    let one_fails = FlowFilter {
        verdict: vec![Verdict::Dropped as i32],
        ..both
    };
    assert!(!ok(one_fails, &flow));
}

#[test]
fn whitelist_is_ored_and_blacklist_excludes() {
    let flow = http_flow();
    let payer_src = FlowFilter {
        source_label: s(&["org=payer"]),
        ..Default::default()
    };
    let payer_dst = FlowFilter {
        destination_label: s(&["org=payer"]),
        ..Default::default()
    };
    let dropped = FlowFilter {
        verdict: vec![Verdict::Dropped as i32],
        ..Default::default()
    };
    // OR across whitelist entries.
    let set = FlowFilterSet::new(&[payer_dst.clone(), payer_src.clone()], &[]).unwrap();
    assert!(set.matches(&flow));
    let set = FlowFilterSet::new(&[payer_dst.clone(), dropped.clone()], &[]).unwrap();
    assert!(!set.matches(&flow));
    // Blacklist wins over whitelist.
    let set = FlowFilterSet::new(
        std::slice::from_ref(&payer_src),
        std::slice::from_ref(&payer_src),
    )
    .unwrap();
    assert!(!set.matches(&flow));
    // Empty whitelist means everything, minus the blacklist.
    let set = FlowFilterSet::new(&[], std::slice::from_ref(&dropped)).unwrap();
    assert!(set.matches(&flow));
    assert!(!set.matches(&drop_flow()));
    let empty = FlowFilterSet::new(&[], &[]).unwrap();
    assert!(empty.is_empty() && empty.matches(&flow));
    assert!(!set.is_empty());
    // An empty FlowFilter entry matches everything.
    let set = FlowFilterSet::new(&[FlowFilter::default()], &[]).unwrap();
    assert!(set.matches(&flow));
}

#[test]
fn invalid_filters_name_the_field() {
    let f = FlowFilter::default;
    let cases: Vec<(FlowFilter, &str)> = vec![
        (
            FlowFilter {
                source_ip: s(&["10.0.0.0/33"]),
                ..f()
            },
            "source_ip: ",
        ),
        (
            FlowFilter {
                destination_ip: s(&["not-an-ip"]),
                ..f()
            },
            "destination_ip: ",
        ),
        (
            FlowFilter {
                source_pod: s(&[""]),
                ..f()
            },
            "source_pod: ",
        ),
        (
            FlowFilter {
                source_label: s(&["org in ("]),
                ..f()
            },
            "source_label: ",
        ),
        (
            FlowFilter {
                node_labels: s(&["=x"]),
                ..f()
            },
            "node_labels: ",
        ),
        (
            FlowFilter {
                destination_fqdn: s(&["bad/name"]),
                ..f()
            },
            "destination_fqdn: ",
        ),
        (
            FlowFilter {
                node_name: s(&["a/b/c"]),
                ..f()
            },
            "node_name: ",
        ),
        (
            FlowFilter {
                http_status_code: s(&["600"]),
                ..f()
            },
            "http_status_code: ",
        ),
        (
            FlowFilter {
                http_status_code: s(&["4++"]),
                ..f()
            },
            "http_status_code: ",
        ),
        (
            FlowFilter {
                protocol: s(&["quic"]),
                ..f()
            },
            "protocol: ",
        ),
        (
            FlowFilter {
                source_port: s(&["65536"]),
                ..f()
            },
            "source_port: ",
        ),
        (
            FlowFilter {
                dns_query: s(&["(unclosed"]),
                ..f()
            },
            "dns_query: ",
        ),
        (
            FlowFilter {
                http_path: s(&["["]),
                ..f()
            },
            "http_path: ",
        ),
        (
            FlowFilter {
                http_url: s(&["*x"]),
                ..f()
            },
            "http_url: ",
        ),
        (
            FlowFilter {
                source_cluster_name: s(&[""]),
                ..f()
            },
            "source_cluster_name: ",
        ),
        (
            FlowFilter {
                experimental: Some(Experimental {
                    cel_expression: s(&["true"]),
                }),
                ..f()
            },
            "experimental.cel_expression: ",
        ),
        (
            FlowFilter {
                http_method: s(&["GET"]),
                event_type: vec![EventTypeFilter {
                    r#type: 1,
                    ..Default::default()
                }],
                ..f()
            },
            "http_method: ",
        ),
    ];
    for (ff, prefix) in cases {
        let err = FlowFilterSet::new(&[], std::slice::from_ref(&ff)).expect_err(prefix);
        assert!(
            err.to_string().starts_with(prefix),
            "{err} should start with {prefix}"
        );
        assert_eq!(format!("{}: ", err.field()), prefix);
    }
    // HTTP filters are fine together with an l7 event type.
    let ff = FlowFilter {
        http_method: s(&["GET"]),
        event_type: vec![
            EventTypeFilter {
                r#type: 1,
                ..Default::default()
            },
            EventTypeFilter {
                r#type: 129,
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    assert!(FlowFilterSet::new(&[ff], &[]).is_ok());
}

#[test]
fn request_uri_paths_follow_go() {
    assert_eq!(
        request_uri_path("http://h:80/a/b?x=1").as_deref(),
        Some("/a/b")
    );
    assert_eq!(request_uri_path("/p%20q").as_deref(), Some("/p q"));
    assert_eq!(request_uri_path("http://h").as_deref(), Some(""));
    assert_eq!(request_uri_path("relative/path"), None);
    assert_eq!(request_uri_path("1http://h/x"), None);
    assert_eq!(request_uri_path(""), None);
    assert_eq!(request_uri_path("/bad%zz"), None);
}

#[test]
fn status_codes_format_like_go() {
    let mut b = [0u8; 10];
    assert_eq!(fmt_code(7, &mut b), "007");
    assert_eq!(fmt_code(404, &mut b), "404");
    assert_eq!(fmt_code(1234, &mut b), "1234");
}

#[test]
fn filter_set_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FlowFilterSet>();
}

#[test]
fn http_filters_skip_records_without_method_or_url() {
    let mut flow = http_flow();
    if let Some(Layer7 {
        record: Some(layer7::Record::Http(h)),
        ..
    }) = flow.l7.as_mut()
    {
        h.method.clear();
        h.url.clear();
    }
    let method = FlowFilter {
        http_method: s(&[""]),
        ..Default::default()
    };
    let url = FlowFilter {
        http_url: s(&[""]),
        ..Default::default()
    };
    let path = FlowFilter {
        http_path: s(&[""]),
        ..Default::default()
    };
    assert!(!ok(method, &flow));
    assert!(!ok(url.clone(), &flow));
    assert!(!ok(path, &flow));
    // The empty regex matches any non-empty URL.
    assert!(ok(url, &http_flow()));
}
