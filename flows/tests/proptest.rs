//! Property tests: parsers and printers never panic, whatever the input.

use std::io::Cursor;

use holonet_flows::{
    filter::FlowFilterSet,
    printer::{OutputFormat, PrintOptions, Printer},
    recording::{RecordingReader, parse_line},
    selector::Selector,
};
use holonet_proto::{
    flow::{CiliumEventType, Endpoint, Flow, FlowFilter},
    observer::{GetFlowsResponse, get_flows_response::ResponseTypes},
    wkt::Timestamp,
};
use proptest::prelude::*;

fn selector_like() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("k8s:".to_owned()),
            Just("org".to_owned()),
            Just("=".to_owned()),
            Just("==".to_owned()),
            Just("!=".to_owned()),
            Just("!".to_owned()),
            Just(" in ".to_owned()),
            Just(" notin ".to_owned()),
            Just("(".to_owned()),
            Just(")".to_owned()),
            Just(",".to_owned()),
            Just(">".to_owned()),
            Just("<".to_owned()),
            Just("payer".to_owned()),
            Just("é".to_owned()),
            "[ -~]{0,3}".prop_map(|s| s),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn selector_parser_never_panics(s in any::<String>()) {
        let _ = Selector::parse(&s);
    }

    #[test]
    fn selector_parser_never_panics_on_near_misses(s in selector_like()) {
        if let Ok(sel) = Selector::parse(&s) {
            // What parses, re-parses to the same selector.
            prop_assert_eq!(Selector::parse(&sel.to_string()).ok(), Some(sel.clone()));
            let _ = sel.matches(&["k8s:org=payer".to_owned(), "é".to_owned()]);
        }
    }

    #[test]
    fn line_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_line(&bytes);
    }

    #[test]
    fn line_parser_never_panics_on_json_like(s in r#"\{("(flow|node_name|time|verdict|lost_events|IP|l4)":?[{}\[\]",:0-9a-zA-Z.-]{0,12}){0,6}\}?"#) {
        let _ = parse_line(s.as_bytes());
    }

    #[test]
    fn reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048), limit in 1usize..300) {
        let reader = RecordingReader::new(Cursor::new(bytes)).with_max_line_len(limit);
        let mut n = 0;
        for _ in reader {
            n += 1;
        }
        prop_assert!(n <= 2049);
    }

    #[test]
    fn filters_never_panic(values in proptest::collection::vec(any::<String>(), 1..4)) {
        let ff = FlowFilter {
            source_ip: values.clone(),
            source_pod: values.clone(),
            destination_fqdn: values.clone(),
            source_label: values.clone(),
            http_status_code: values.clone(),
            protocol: values.clone(),
            source_port: values.clone(),
            dns_query: values.clone(),
            node_name: values.clone(),
            ..Default::default()
        };
        if let Ok(set) = FlowFilterSet::new(&[ff], &[]) {
            let _ = set.matches(&Flow::default());
        }
    }

    #[test]
    fn printers_never_panic(seconds in any::<i64>(), nanos in any::<i32>(), ty in any::<i32>(), sub in any::<i32>(),
                            verdict in any::<i32>(), pod in any::<String>(), summary in any::<String>()) {
        let flow = Flow {
            time: Some(Timestamp { seconds, nanos }),
            verdict,
            event_type: Some(CiliumEventType { r#type: ty, sub_type: sub }),
            source: Some(Endpoint { pod_name: pod, ..Default::default() }),
            summary,
            traffic_direction: ty,
            ..Default::default()
        };
        let resp = GetFlowsResponse { response_types: Some(ResponseTypes::Flow(flow)), ..Default::default() };
        for format in [OutputFormat::Compact, OutputFormat::Dict, OutputFormat::Table, OutputFormat::JsonPb] {
            let mut p = Printer::new(Vec::new(), PrintOptions { format, color: true, ..Default::default() });
            let _ = p.write(&resp);
            let _ = p.finish();
        }
    }
}
