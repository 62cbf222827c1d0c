//! End-to-end `holonet observe --input-file` pipeline: decode 200,000
//! jsonpb lines, filter them and print them in compact form.
//!
//! Run: `cargo bench -p holonet-flows --bench observe`. The data are
//! generated here (a mix of HTTP requests and responses, policy drops and
//! trace events between a handful of pods), written once with holonet's
//! own jsonpb printer, then replayed from memory for each iteration.

// The allocator the `holonet` binary uses, so the figures are its own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{hint::black_box, io::Cursor};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use holonet_flows::{
    filter::FlowFilterSet,
    flags::FilterArgs,
    printer::{OutputFormat, PrintOptions, Printer},
    recording::RecordingReader,
};
use holonet_proto::{
    flow::{
        CiliumEventType, Endpoint, Flow, FlowType, Http, Ip, Layer4, Layer7, Tcp, TcpFlags,
        Verdict, layer4, layer7,
    },
    observer::{GetFlowsResponse, get_flows_response::ResponseTypes},
    pbjson_types::BoolValue,
    wkt::Timestamp,
};

const FLOWS: usize = 200_000;

fn endpoint(i: usize) -> Endpoint {
    let (app, org) = [
        ("payer", "payer"),
        ("ledger", "bank"),
        ("admin", "bank"),
        ("fhir", "empire"),
    ][i % 4];
    Endpoint {
        id: 100 + i as u32,
        identity: 30_000 + i as u32 % 4,
        cluster_name: "prod".into(),
        namespace: "default".into(),
        labels: vec![
            format!("k8s:app={app}"),
            format!("k8s:org={org}"),
            "k8s:io.kubernetes.pod.namespace=default".into(),
        ],
        pod_name: format!("{app}-7d9c-x2kq{}", i % 10),
        workloads: vec![],
    }
}

fn flow(i: usize) -> Flow {
    let kind = i % 4;
    let (src, dst) = (endpoint(i), endpoint(i + 1));
    let sport = 40_000 + (i % 20_000) as u32;
    let mut f = Flow {
        time: Some(Timestamp {
            seconds: 1_741_772_467 + (i / 1000) as i64,
            nanos: (i % 1000) as i32 * 1_000_000,
        }),
        verdict: Verdict::Forwarded as i32,
        ip: Some(Ip {
            source: format!("10.244.{}.{}", i % 4, i % 250),
            destination: "10.244.2.17".into(),
            ip_version: 1,
            ..Default::default()
        }),
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::Tcp(Tcp {
                source_port: sport,
                destination_port: 8080,
                flags: None,
            })),
        }),
        source: Some(src),
        destination: Some(dst),
        node_name: "prod/worker-1".into(),
        traffic_direction: 2,
        ..Default::default()
    };
    match kind {
        0 | 1 => {
            let reply = kind == 1;
            f.r#type = FlowType::L7 as i32;
            f.event_type = Some(CiliumEventType {
                r#type: 129,
                sub_type: 0,
            });
            f.is_reply = Some(BoolValue { value: reply });
            f.l7 = Some(Layer7 {
                r#type: if reply { 2 } else { 1 },
                latency_ns: if reply { 4_210_334 } else { 0 },
                record: Some(layer7::Record::Http(Http {
                    code: if reply { 200 } else { 0 },
                    method: "GET".into(),
                    url: "http://ledger:8080/intersystems/fhir/r5/Patient/DarthVader".into(),
                    protocol: "HTTP/1.1".into(),
                    headers: vec![],
                })),
            });
            f.summary = if reply {
                "HTTP/1.1 200 4ms (GET http://ledger:8080/intersystems/fhir/r5/Patient/DarthVader)"
                    .into()
            } else {
                "HTTP/1.1 GET http://ledger:8080/intersystems/fhir/r5/Patient/DarthVader".into()
            };
        }
        2 => {
            f.verdict = Verdict::Dropped as i32;
            f.drop_reason = 133;
            f.drop_reason_desc = 133;
            f.r#type = FlowType::L3L4 as i32;
            f.event_type = Some(CiliumEventType {
                r#type: 1,
                sub_type: 133,
            });
            f.summary = "TCP Flags: SYN".into();
        }
        _ => {
            f.r#type = FlowType::L3L4 as i32;
            f.event_type = Some(CiliumEventType {
                r#type: 4,
                sub_type: 0,
            });
            f.is_reply = Some(BoolValue { value: false });
            if let Some(Layer4 {
                protocol: Some(layer4::Protocol::Tcp(t)),
            }) = f.l4.as_mut()
            {
                t.flags = Some(TcpFlags {
                    ack: true,
                    psh: true,
                    ..Default::default()
                });
            }
            f.summary = "TCP Flags: ACK, PSH".into();
        }
    }
    f
}

/// 200,000 jsonpb lines, as `hubble observe -o jsonpb` would write them.
fn recording() -> Vec<u8> {
    let mut p = Printer::new(
        Vec::new(),
        PrintOptions {
            format: OutputFormat::JsonPb,
            ..Default::default()
        },
    );
    for i in 0..FLOWS {
        let f = flow(i);
        let resp = GetFlowsResponse {
            node_name: f.node_name.clone(),
            time: f.time,
            response_types: Some(ResponseTypes::Flow(f)),
        };
        p.write(&resp).expect("write to memory");
    }
    p.finish().expect("flush to memory")
}

/// Decode + filter + print compact; returns the number of flows printed.
fn pipeline(data: &[u8], filters: &FlowFilterSet) -> usize {
    let mut printer = Printer::new(
        std::io::sink(),
        PrintOptions {
            node_name: true,
            ..Default::default()
        },
    );
    let mut printed = 0;
    for resp in RecordingReader::new(Cursor::new(data)) {
        let Ok(resp) = resp else { continue };
        if let Some(ResponseTypes::Flow(f)) = &resp.response_types
            && !filters.matches(f)
        {
            continue;
        }
        printer.write(&resp).expect("sink");
        printed += 1;
    }
    printer.finish().expect("sink");
    printed
}

fn bench(c: &mut Criterion) {
    let data = recording();
    // `holonet observe --filter org=payer --not --verdict AUDIT`: 3 of 4
    // flows involve a payer pod on one side, nothing is AUDIT.
    let mut args = FilterArgs::new();
    args.push(holonet_flows::flags::FilterFlag::Filter, "org=payer");
    args.not()
        .push(holonet_flows::flags::FilterFlag::Verdict, "AUDIT");
    let built = args.build().expect("valid flags");
    let filters = FlowFilterSet::new(&built.whitelist, &built.blacklist).expect("valid filters");
    let printed = pipeline(&data, &filters);
    assert!(
        printed > FLOWS / 3 && printed < FLOWS,
        "filter selects a part: {printed}"
    );

    let mut group = c.benchmark_group("observe");
    group.sample_size(10);
    group.throughput(Throughput::Elements(FLOWS as u64));
    group.bench_function("decode_filter_print_compact_200k", |b| {
        b.iter(|| black_box(pipeline(black_box(&data), &filters)));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
