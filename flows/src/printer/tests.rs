//! Golden tests: the compact lines of hubble-api.md §3 "Composed examples"
//! and the formats of hubble's printer.go.

use holonet_proto::{
    flow::{
        CiliumEventType, Endpoint, Ethernet, Flow, FlowType, Http, Ip, Layer4, Layer7, LostEvent,
        Service, Tcp, TcpFlags, Udp, Verdict, layer4, layer7,
    },
    observer::{GetFlowsResponse, get_flows_response::ResponseTypes},
    pbjson_types::{BoolValue, Int32Value},
    relay::NodeStatusEvent,
    wkt::Timestamp,
};

use super::*;

/// 2025-03-12T09:41:07Z
const T0: i64 = 1_741_772_467;

fn ts(sec_offset: i64, millis: i32) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: T0 + sec_offset,
        nanos: millis * 1_000_000 + 123_456,
    })
}

fn ep(ns: &str, pod: &str, identity: u32) -> Option<Endpoint> {
    Some(Endpoint {
        identity,
        namespace: ns.into(),
        pod_name: pod.into(),
        labels: vec![format!("k8s:app={pod}")],
        ..Default::default()
    })
}

fn tcp(sport: u32, dport: u32, flags: Option<TcpFlags>) -> Option<Layer4> {
    Some(Layer4 {
        protocol: Some(layer4::Protocol::Tcp(Tcp {
            source_port: sport,
            destination_port: dport,
            flags,
        })),
    })
}

fn ip(src: &str, dst: &str) -> Option<Ip> {
    Some(Ip {
        source: src.into(),
        destination: dst.into(),
        ip_version: 1,
        ..Default::default()
    })
}

fn http_l7(ty: i32, code: u32, method: &str, url: &str) -> Option<Layer7> {
    Some(Layer7 {
        r#type: ty,
        latency_ns: if ty == 2 { 4_210_334 } else { 0 },
        record: Some(layer7::Record::Http(Http {
            code,
            method: method.into(),
            url: url.into(),
            protocol: "HTTP/1.1".into(),
            headers: vec![],
        })),
    })
}

fn payer() -> Option<Endpoint> {
    ep("default", "payer-7d9c-x2kq9", 31245)
}

fn ledger() -> Option<Endpoint> {
    ep("default", "ledger-5f6b-lm2pq", 51231)
}

fn resp(flow: Flow) -> GetFlowsResponse {
    GetFlowsResponse {
        node_name: flow.node_name.clone(),
        time: flow.time,
        response_types: Some(ResponseTypes::Flow(flow)),
    }
}

fn composed_examples() -> Vec<Flow> {
    let l7 = CiliumEventType {
        r#type: 129,
        sub_type: 0,
    };
    vec![
        Flow {
            time: ts(0, 512),
            verdict: Verdict::Forwarded as i32,
            ip: ip("10.244.2.17", "10.244.1.23"),
            l4: tcp(41234, 8080, None),
            source: payer(),
            destination: ledger(),
            r#type: FlowType::L7 as i32,
            node_name: "prod/worker-1".into(),
            l7: http_l7(1, 0, "GET", "http://ledger:8080/v1/balance"),
            event_type: Some(l7),
            is_reply: Some(BoolValue { value: false }),
            summary: "HTTP/1.1 GET http://ledger:8080/v1/balance".into(),
            ..Default::default()
        },
        Flow {
            time: ts(0, 516),
            verdict: Verdict::Forwarded as i32,
            ip: ip("10.244.1.23", "10.244.2.17"),
            l4: tcp(8080, 41234, None),
            source: ledger(),
            destination: payer(),
            r#type: FlowType::L7 as i32,
            node_name: "prod/worker-1".into(),
            l7: http_l7(2, 200, "GET", "http://ledger:8080/v1/balance"),
            event_type: Some(l7),
            is_reply: Some(BoolValue { value: true }),
            summary: "HTTP/1.1 200 4ms (GET http://ledger:8080/v1/balance)".into(),
            ..Default::default()
        },
        Flow {
            time: ts(2, 20),
            verdict: Verdict::Dropped as i32,
            ip: ip("10.244.2.17", "10.244.1.23"),
            l4: tcp(41240, 8080, None),
            source: payer(),
            destination: ledger(),
            r#type: FlowType::L7 as i32,
            node_name: "prod/worker-1".into(),
            l7: http_l7(1, 0, "DELETE", "http://ledger:8080/v1/accounts/42"),
            event_type: Some(l7),
            is_reply: Some(BoolValue { value: false }),
            summary: "HTTP/1.1 DELETE http://ledger:8080/v1/accounts/42".into(),
            ..Default::default()
        },
        Flow {
            time: ts(4, 301),
            verdict: Verdict::Dropped as i32,
            drop_reason: 133,
            drop_reason_desc: 133,
            ip: ip("10.244.2.17", "10.244.3.9"),
            l4: tcp(
                41302,
                9000,
                Some(TcpFlags {
                    syn: true,
                    ..Default::default()
                }),
            ),
            source: payer(),
            destination: ep("default", "admin-6c8d-vv7zt", 40112),
            r#type: FlowType::L3L4 as i32,
            node_name: "prod/worker-1".into(),
            event_type: Some(CiliumEventType {
                r#type: 1,
                sub_type: 133,
            }),
            summary: "TCP Flags: SYN".into(),
            ..Default::default()
        },
    ]
}

fn print_all(opts: PrintOptions, responses: &[GetFlowsResponse]) -> String {
    let mut p = Printer::new(Vec::new(), opts);
    for r in responses {
        p.write(r).unwrap();
    }
    String::from_utf8(p.finish().unwrap()).unwrap()
}

fn compact(flow: Flow) -> String {
    print_all(PrintOptions::default(), &[resp(flow)])
}

#[test]
fn compact_matches_hubble_composed_examples() {
    let opts = PrintOptions {
        node_name: true,
        ..Default::default()
    };
    let out = print_all(
        opts,
        &composed_examples()
            .into_iter()
            .map(resp)
            .collect::<Vec<_>>(),
    );
    let want = "\
Mar 12 09:41:07.512 [prod/worker-1]: default/payer-7d9c-x2kq9:41234 (ID:31245) -> default/ledger-5f6b-lm2pq:8080 (ID:51231) http-request FORWARDED (HTTP/1.1 GET http://ledger:8080/v1/balance)
Mar 12 09:41:07.516 [prod/worker-1]: default/payer-7d9c-x2kq9:41234 (ID:31245) <- default/ledger-5f6b-lm2pq:8080 (ID:51231) http-response FORWARDED (HTTP/1.1 200 4ms (GET http://ledger:8080/v1/balance))
Mar 12 09:41:09.020 [prod/worker-1]: default/payer-7d9c-x2kq9:41240 (ID:31245) -> default/ledger-5f6b-lm2pq:8080 (ID:51231) http-request DROPPED (HTTP/1.1 DELETE http://ledger:8080/v1/accounts/42)
Mar 12 09:41:11.301 [prod/worker-1]: default/payer-7d9c-x2kq9:41302 (ID:31245) <> default/admin-6c8d-vv7zt:9000 (ID:40112) Policy denied DROPPED (TCP Flags: SYN)
";
    assert_eq!(out, want);
    // Without --print-node-name there is no `[node]`.
    let first = compact(composed_examples().remove(0));
    assert!(
        first.starts_with("Mar 12 09:41:07.512: default/payer"),
        "{first}"
    );
}

#[test]
fn endpoints_fall_back_to_service_names_then_ip() {
    let base = composed_examples().remove(3);
    // Reserved identities, IPs, IPv6 brackets, UDP, no port.
    let world = Flow {
        source: Some(Endpoint {
            identity: 2,
            ..Default::default()
        }),
        destination: Some(Endpoint {
            identity: 1,
            ..Default::default()
        }),
        ip: ip("2001:db8::1", "10.0.0.1"),
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::Udp(Udp {
                source_port: 5353,
                destination_port: 0,
            })),
        }),
        ..base.clone()
    };
    assert_eq!(
        compact(world),
        "Mar 12 09:41:11.301: [2001:db8::1]:5353 (world) <> 10.0.0.1 (host) Policy denied DROPPED (TCP Flags: SYN)\n"
    );
    let svc = Flow {
        destination: Some(Endpoint {
            identity: 0,
            ..Default::default()
        }),
        destination_service: Some(Service {
            name: "ledger".into(),
            namespace: "bank".into(),
        }),
        source_names: vec!["a.example".into(), "b.example".into()],
        source: None,
        ..base.clone()
    };
    assert_eq!(
        compact(svc),
        "Mar 12 09:41:11.301: a.example,b.example:41302 (unknown) <> bank/ledger:9000 (unknown) Policy denied DROPPED (TCP Flags: SYN)\n"
    );
    let no_translation = PrintOptions {
        ip_translation: false,
        ..Default::default()
    };
    let out = print_all(no_translation, &[resp(base.clone())]);
    assert!(
        out.contains(": 10.244.2.17:41302 (ID:31245) <> 10.244.3.9:9000 (ID:40112) "),
        "{out}"
    );
    let l2 = Flow {
        ip: None,
        l4: None,
        ethernet: Some(Ethernet {
            source: "aa:bb".into(),
            destination: "cc:dd".into(),
        }),
        ..base
    };
    assert!(compact(l2).contains(": aa:bb (ID:31245) <> cc:dd (ID:40112) "));
}

#[test]
fn type_column_follows_event_types() {
    let base = composed_examples().remove(3);
    let with = |ty: i32, sub: i32, f: &dyn Fn(&mut Flow)| {
        let mut fl = Flow {
            event_type: Some(CiliumEventType {
                r#type: ty,
                sub_type: sub,
            }),
            ..base.clone()
        };
        f(&mut fl);
        let mut out = String::new();
        flow_type(&fl, &mut out);
        out
    };
    assert_eq!(with(4, 0, &|_| {}), "to-endpoint");
    assert_eq!(with(4, 3, &|_| {}), "to-stack");
    assert_eq!(with(4, 99, &|_| {}), "99");
    assert_eq!(with(1, 181, &|_| {}), "Policy denied by denylist");
    assert_eq!(with(1, 159, &|_| {}), "159");
    assert_eq!(
        with(5, 0, &|f| {
            f.policy_match_type = 2;
            f.traffic_direction = 1;
        }),
        "policy-verdict:L3-L4 INGRESS"
    );
    assert_eq!(
        with(3, 0, &|f| f.debug_capture_point = 4),
        "DBG_CAPTURE_DELIVERY"
    );
    assert_eq!(with(7, 0, &|f| f.sock_xlate_point = 2), "post-xlate-fwd");
    assert_eq!(with(0, 0, &|_| {}), "UNKNOWN");
    assert_eq!(
        with(129, 0, &|f| {
            f.l7 = Some(Layer7 {
                r#type: 1,
                latency_ns: 0,
                record: Some(layer7::Record::Dns(holonet_proto::flow::Dns {
                    observation_source: "proxy".into(),
                    ..Default::default()
                })),
            });
        }),
        "dns-request proxy"
    );
    // Policy verdicts print ALLOWED/DENIED/AUDITED.
    let pv = Flow {
        event_type: Some(CiliumEventType {
            r#type: 5,
            sub_type: 0,
        }),
        verdict: Verdict::Forwarded as i32,
        policy_match_type: 2,
        traffic_direction: 1,
        ..base.clone()
    };
    assert!(compact(pv).contains(" policy-verdict:L3-L4 INGRESS ALLOWED (TCP Flags: SYN)"));
}

#[test]
fn times_are_stamp_milli_in_utc_or_na() {
    let mut s = String::new();
    write_time(
        &mut s,
        Some(&Timestamp {
            seconds: 1_709_370_000,
            nanos: 999_999_999,
        }),
        TimeFormat::StampMilli,
    );
    assert_eq!(s, "Mar  2 09:00:00.999");
    s.clear();
    write_time(
        &mut s,
        Some(&Timestamp {
            seconds: 0,
            nanos: 0,
        }),
        TimeFormat::StampMilli,
    );
    assert_eq!(s, "Jan  1 00:00:00.000");
    s.clear();
    write_time(
        &mut s,
        Some(&Timestamp {
            seconds: 951_782_400,
            nanos: 0,
        }),
        TimeFormat::StampMilli,
    );
    assert_eq!(s, "Feb 29 00:00:00.000");
    s.clear();
    write_time(&mut s, None, TimeFormat::StampMilli);
    assert_eq!(s, "N/A");
    s.clear();
    write_time(
        &mut s,
        Some(&Timestamp {
            seconds: 0,
            nanos: -1,
        }),
        TimeFormat::StampMilli,
    );
    assert_eq!(s, "N/A");
    s.clear();
    write_time(
        &mut s,
        Some(&Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        }),
        TimeFormat::StampMilli,
    );
    assert_eq!(s, "N/A");
}

#[test]
fn summary_carries_trace_id_and_auth() {
    let mut f = composed_examples().remove(3);
    f.ip_trace_id = Some(holonet_proto::flow::IpTraceId {
        trace_id: 7,
        ip_option_type: 0,
    });
    f.auth_type = 1;
    assert!(compact(f).ends_with(" DROPPED (IP Trace ID: 7; TCP Flags: SYN; SPIRE)\n"));
}

#[test]
fn terminal_escapes_are_neutralised() {
    let mut f = composed_examples().remove(3);
    f.summary = "evil\x1b[2J\rx".into();
    f.source.as_mut().unwrap().pod_name = "p\x1bod".into();
    let out = compact(f);
    assert!(!out.contains('\x1b') && !out.contains('\r'), "{out:?}");
    assert!(
        out.contains("default/p^[od:41302") && out.contains("(evil^[[2J\\rx)"),
        "{out}"
    );
}

#[test]
fn colours_wrap_fields_but_never_the_table() {
    let opts = PrintOptions {
        color: true,
        ..Default::default()
    };
    let out = print_all(opts, &[resp(composed_examples().remove(0))]);
    assert!(
        out.contains("\x1b[36mdefault/payer-7d9c-x2kq9:\x1b[33m41234\x1b[0m\x1b[0m"),
        "{out:?}"
    );
    assert!(out.contains("\x1b[35m(ID:31245)\x1b[0m"));
    assert!(out.contains("\x1b[32mFORWARDED\x1b[0m"));
    let table = PrintOptions {
        color: true,
        format: OutputFormat::Table,
        ..Default::default()
    };
    assert!(!print_all(table, &[resp(composed_examples().remove(0))]).contains('\x1b'));
}

#[test]
fn dict_and_table_layouts() {
    let flows: Vec<GetFlowsResponse> = composed_examples().into_iter().take(2).map(resp).collect();
    let dict = print_all(
        PrintOptions {
            format: OutputFormat::Dict,
            node_name: true,
            ..Default::default()
        },
        &flows,
    );
    let want = "  TIMESTAMP: Mar 12 09:41:07.512
       NODE: prod/worker-1
     SOURCE: default/payer-7d9c-x2kq9:41234
DESTINATION: default/ledger-5f6b-lm2pq:8080
       TYPE: http-request
    VERDICT: FORWARDED
    SUMMARY: HTTP/1.1 GET http://ledger:8080/v1/balance
------------
  TIMESTAMP: Mar 12 09:41:07.516
       NODE: prod/worker-1
     SOURCE: default/ledger-5f6b-lm2pq:8080
DESTINATION: default/payer-7d9c-x2kq9:41234
       TYPE: http-response
    VERDICT: FORWARDED
    SUMMARY: HTTP/1.1 200 4ms (GET http://ledger:8080/v1/balance)
";
    assert_eq!(dict, want);
    let table = print_all(
        PrintOptions {
            format: OutputFormat::Table,
            ..Default::default()
        },
        &flows,
    );
    let want = "\
TIMESTAMP             SOURCE                           DESTINATION                      TYPE            VERDICT     SUMMARY
Mar 12 09:41:07.512   default/payer-7d9c-x2kq9:41234   default/ledger-5f6b-lm2pq:8080   http-request    FORWARDED   HTTP/1.1 GET http://ledger:8080/v1/balance
Mar 12 09:41:07.516   default/ledger-5f6b-lm2pq:8080   default/payer-7d9c-x2kq9:41234   http-response   FORWARDED   HTTP/1.1 200 4ms (GET http://ledger:8080/v1/balance)
";
    assert_eq!(table, want);
}

#[test]
fn lost_events_print_as_hubble() {
    let lost = GetFlowsResponse {
        response_types: Some(ResponseTypes::LostEvents(LostEvent {
            source: 3,
            num_events_lost: 17,
            cpu: Some(Int32Value { value: 0 }),
            first: None,
            last: None,
        })),
        ..Default::default()
    };
    assert_eq!(
        print_all(PrintOptions::default(), std::slice::from_ref(&lost)),
        "EVENTS LOST: HUBBLE_RING_BUFFER CPU(0) 17\n"
    );
    let dict = print_all(
        PrintOptions {
            format: OutputFormat::Dict,
            ..Default::default()
        },
        std::slice::from_ref(&lost),
    );
    assert_eq!(
        dict,
        "  TIMESTAMP: \n     SOURCE: HUBBLE_RING_BUFFER\n       TYPE: EVENTS LOST\n    VERDICT: \n    SUMMARY: CPU(0) - 17\n"
    );
    let json = print_all(
        PrintOptions {
            format: OutputFormat::JsonPb,
            ..Default::default()
        },
        &[lost],
    );
    assert_eq!(
        json,
        "{\"lost_events\":{\"source\":\"HUBBLE_RING_BUFFER\",\"num_events_lost\":\"17\",\"cpu\":0}}\n"
    );
}

/// The jsonpb line from hubble-api.md §4, as Hubble (Go protojson through
/// json.Encoder) writes it.
const HUBBLE_LINE: &str = r#"{"flow":{"time":"2025-03-12T09:41:07.516348112Z","verdict":"FORWARDED","IP":{"source":"10.244.1.23","destination":"10.244.2.17","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":8080,"destination_port":41234}},"source":{"ID":812,"identity":51231,"cluster_name":"prod","namespace":"default","labels":["k8s:app=ledger","k8s:org=payer"],"pod_name":"ledger-5f6b-lm2pq"},"destination":{"ID":377,"identity":31245,"namespace":"default","labels":["k8s:app=payer","k8s:org=payer"],"pod_name":"payer-7d9c-x2kq9"},"Type":"L7","node_name":"prod/worker-1","l7":{"type":"RESPONSE","latency_ns":"4210334","http":{"code":200,"method":"GET","url":"http://ledger:8080/v1/balance","protocol":"HTTP/1.1"}},"event_type":{"type":129},"traffic_direction":"INGRESS","is_reply":true,"Summary":"HTTP/1.1 200 4ms (GET http://ledger:8080/v1/balance)"},"node_name":"prod/worker-1","time":"2025-03-12T09:41:07.516348112Z"}"#;

#[test]
fn jsonpb_reproduces_hubble_bytes() {
    let r: GetFlowsResponse = serde_json::from_str(HUBBLE_LINE).unwrap();
    for format in [OutputFormat::Json, OutputFormat::JsonPb] {
        let out = print_all(
            PrintOptions {
                format,
                ..Default::default()
            },
            std::slice::from_ref(&r),
        );
        assert_eq!(out, format!("{HUBBLE_LINE}\n"));
    }
    // Go's json.Encoder HTML-escapes.
    let mut f = composed_examples().remove(0);
    f.summary = "a<b>&c\u{2028}".into();
    let out = print_all(
        PrintOptions {
            format: OutputFormat::JsonPb,
            ..Default::default()
        },
        &[resp(f)],
    );
    assert!(
        out.contains(r#""Summary":"a\u003cb\u003e\u0026c\u2028""#),
        "{out}"
    );
}

#[test]
fn node_status_goes_to_stderr_only_when_relevant() {
    let ev = |state: i32| GetFlowsResponse {
        node_name: "relay".into(),
        time: ts(0, 0),
        response_types: Some(ResponseTypes::NodeStatus(NodeStatusEvent {
            state_change: state,
            node_names: vec!["a".into(), "b".into()],
            message: "boom".into(),
        })),
    };
    let opts = PrintOptions::default();
    assert_eq!(node_status_message(&ev(1), &opts, false), None);
    assert_eq!(
        node_status_message(&ev(1), &opts, true).as_deref(),
        Some("Mar 12 09:41:07.000 [relay]: Receiving flows from 2 nodes: a, b")
    );
    assert_eq!(
        node_status_message(&ev(2), &opts, false).as_deref(),
        Some("Mar 12 09:41:07.000 [relay]: 2 nodes are unavailable: a, b")
    );
    assert_eq!(
        node_status_message(&ev(4), &opts, false).as_deref(),
        Some("Mar 12 09:41:07.000 [relay]: Error \"boom\" on 2 nodes: a, b")
    );
    // Printer::write ignores node status events.
    assert_eq!(print_all(opts, &[ev(2)]), "");
    let many: Vec<String> = (0..20).map(|i| format!("node-{i}")).collect();
    assert_eq!(
        join_with_cut_off(&many, ", ", 50),
        "node-0, node-1, node-2, node-3, node-4, node-5 (and 14 more)"
    );
}

#[test]
fn output_formats_parse() {
    assert_eq!("json".parse::<OutputFormat>(), Ok(OutputFormat::Json));
    assert_eq!("table".parse::<OutputFormat>(), Ok(OutputFormat::Table));
    assert!("yaml".parse::<OutputFormat>().is_err());
}

#[test]
fn processes_follow_their_endpoints_and_never_reach_the_terminal_raw() {
    use holonet_proto::flow::HolonetProcess;
    let mut flows = composed_examples();
    let proc_of = |command: &str, pid| {
        Some(HolonetProcess {
            pid,
            command: command.into(),
        })
    };
    // The response is a reply: compact prints it server-last, and each
    // process stays next to its own endpoint.
    let mut response = flows.remove(1);
    response.holonet_source_process = proc_of("ledger", 7);
    response.holonet_destination_process = proc_of("curl\x1b[2J", 4321);
    let line = compact(response.clone());
    assert!(
        line.contains(
            ":41234 (ID:31245) curl?[2J[4321] <- default/ledger-5f6b-lm2pq:8080 (ID:51231) ledger[7] http-response"
        ),
        "{line}"
    );
    // Only one end known: the other is shown as `?` in dict output.
    response.holonet_source_process = None;
    let dict = print_all(
        PrintOptions {
            format: OutputFormat::Dict,
            ..Default::default()
        },
        &[resp(response)],
    );
    assert!(
        dict.contains("       TYPE: http-response\n  PROCESSES: ? -> curl?[2J[4321]\n"),
        "{dict}"
    );
    // JSON keeps them; jsonpb (what `hubble observe --input-file` reads)
    // leaves them out.
    let mut both = composed_examples().remove(0);
    both.holonet_source_process = proc_of("curl", 1);
    let json = |format| {
        print_all(
            PrintOptions {
                format,
                ..Default::default()
            },
            &[resp(both.clone())],
        )
    };
    assert!(
        json(OutputFormat::Json).contains(r#""holonet_source_process":{"pid":1,"command":"curl"}"#)
    );
    assert!(!json(OutputFormat::JsonPb).contains("holonet"));
}
