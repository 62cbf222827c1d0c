//! protojson compatibility: holonet must read what Hubble writes and write
//! what Hubble reads (proto field names, enum names, u64 as strings).

use holonet_proto::{
    flow::{DropReason, FlowType, L7FlowType, TrafficDirection, Verdict, layer4, layer7},
    observer::{GetFlowsResponse, get_flows_response::ResponseTypes},
};
use prost::Message;

/// A flow line as Hubble's exporter writes it (an HTTP response).
const HUBBLE_LINE: &str = r#"{"flow":{"time":"2025-03-12T09:41:07.516348112Z","verdict":"FORWARDED","IP":{"source":"10.244.1.23","destination":"10.244.2.17","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":8080,"destination_port":41234}},"source":{"ID":812,"identity":51231,"cluster_name":"prod","namespace":"default","labels":["k8s:app=ledger","k8s:org=payer"],"pod_name":"ledger-5f6b-lm2pq"},"destination":{"ID":377,"identity":31245,"namespace":"default","labels":["k8s:app=payer","k8s:org=payer"],"pod_name":"payer-7d9c-x2kq9"},"Type":"L7","node_name":"prod/worker-1","l7":{"type":"RESPONSE","latency_ns":"4210334","http":{"code":200,"method":"GET","url":"http://ledger:8080/v1/balance","protocol":"HTTP/1.1"}},"event_type":{"type":129},"traffic_direction":"INGRESS","is_reply":true,"Summary":"HTTP/1.1 200 4ms (GET http://ledger:8080/v1/balance)"},"node_name":"prod/worker-1","time":"2025-03-12T09:41:07.516348112Z"}"#;

#[test]
fn reads_a_hubble_export_line() {
    let resp: GetFlowsResponse = serde_json::from_str(HUBBLE_LINE).expect("parses");
    let Some(ResponseTypes::Flow(flow)) = resp.response_types else {
        panic!("expected a flow");
    };
    assert_eq!(flow.verdict(), Verdict::Forwarded);
    assert_eq!(flow.r#type(), FlowType::L7);
    assert_eq!(flow.traffic_direction(), TrafficDirection::Ingress);
    assert_eq!(flow.is_reply.map(|b| b.value), Some(true));
    let time = flow.time.expect("time");
    assert_eq!(time.nanos, 516_348_112);
    let Some(layer4::Protocol::Tcp(tcp)) = flow.l4.and_then(|l4| l4.protocol) else {
        panic!("expected TCP");
    };
    assert_eq!((tcp.source_port, tcp.destination_port), (8080, 41234));
    let l7 = flow.l7.expect("l7");
    assert_eq!(l7.r#type(), L7FlowType::Response);
    assert_eq!(l7.latency_ns, 4_210_334);
    let Some(layer7::Record::Http(http)) = l7.record else {
        panic!("expected HTTP");
    };
    assert_eq!(http.code, 200);
    let source = flow.source.expect("source");
    assert_eq!(source.id, 812);
    assert_eq!(source.labels, ["k8s:app=ledger", "k8s:org=payer"]);
    assert_eq!(resp.node_name, "prod/worker-1");
}

#[test]
fn writes_proto_names_enum_names_and_u64_strings() {
    let resp: GetFlowsResponse = serde_json::from_str(HUBBLE_LINE).expect("parses");
    let text = serde_json::to_string(&resp).expect("serializes");
    for needle in [
        r#""IP":{"#,
        r#""ipVersion":"IPv4""#,
        r#""source_port":8080"#,
        r#""Type":"L7""#,
        r#""latency_ns":"4210334""#,
        r#""verdict":"FORWARDED""#,
        r#""is_reply":true"#,
        r#""Summary":"#,
        r#""ID":812"#,
        r#""time":"2025-03-12T09:41:07.516348112Z""#,
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    let again: GetFlowsResponse = serde_json::from_str(&text).expect("re-parses");
    assert_eq!(again, resp);
}

#[test]
fn unknown_fields_and_enum_numbers_are_accepted() {
    let line = r#"{"flow":{"verdict":2,"drop_reason_desc":"POLICY_DENIED","some_future_field":{"x":1},"tunnel":{"protocol":"VXLAN"}},"node_name":"n"}"#;
    let resp: GetFlowsResponse = serde_json::from_str(line).expect("parses");
    let Some(ResponseTypes::Flow(flow)) = resp.response_types else {
        panic!("expected a flow");
    };
    assert_eq!(flow.verdict(), Verdict::Dropped);
    assert_eq!(flow.drop_reason_desc(), DropReason::PolicyDenied);
}

#[test]
fn binary_encoding_uses_hubble_field_numbers() {
    let flow = holonet_proto::flow::Flow {
        summary: "x".into(),
        node_name: "n".into(),
        ..Default::default()
    };
    let bytes = flow.encode_to_vec();
    // node_name is field 11 (tag 11<<3|2 = 0x5a); Summary is field 100000
    // (tag 100000<<3|2 = 800002, varint 0x82 0xea 0x30).
    assert!(bytes.windows(2).any(|w| w == [0x5a, 0x01]), "{bytes:x?}");
    assert!(
        bytes.windows(3).any(|w| w == [0x82, 0xea, 0x30]),
        "{bytes:x?}"
    );
}
