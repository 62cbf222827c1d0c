//! Agent ingest and GetFlows streaming throughput.
//!
//! - `ingest`: probe records → decoded flow → enriched Hubble flow → store,
//!   in the pipeline's batch size, on one core (target: 1,000,000 events/s).
//! - `get_flows`: a tonic client on loopback streaming 100,000 stored flows
//!   from the agent's gRPC server (target: 500,000 flows/s).
//!
//! Run: `cargo bench -p holonet-agent --bench ingest`.

// The allocator the `holonet` binary uses, so the figures are the agent's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{collections::HashMap, sync::Arc, time::Duration};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use holonet_agent::{
    clock::MonotonicClock,
    flow::Flow,
    observer::{
        convert::{UuidSource, to_message, to_stored},
        endpoints::EndpointDirectory,
        server::{self, Listen},
        service::ObserverService,
        store::{FlowStore, StoredEvent},
    },
};
use holonet_proto::observer::{GetFlowsRequest, observer_client::ObserverClient};
use probe_common::event::{FlowEvent, family, hook, kind, tcp_flags, verdict};
use tokio_stream::StreamExt;

const BATCH: usize = 4096;

fn events() -> Vec<FlowEvent> {
    (0..BATCH)
        .map(|i| {
            let mut e = FlowEvent::zeroed();
            e.ktime_ns = 1_000_000 + i as u64;
            e.family = family::IPV4;
            e.saddr[..4].copy_from_slice(&[10, 244, 3, 30]);
            e.daddr[..4].copy_from_slice(&[10, 244, 1, 10]);
            e.sport = 40000 + (i % 20000) as u16;
            e.dport = 52773;
            e.ifindex = 7;
            e.hook = hook::TC_INGRESS;
            e.verdict = verdict::FORWARDED;
            if i % 4 == 0 {
                let line = b"GET /intersystems/fhir/r5/Patient/DarthVader HTTP/1.1\r\nHost: coruscanthealth:52773\r\n";
                e.kind = kind::HTTP_REQUEST;
                e.tcp_flags = tcp_flags::PSH | tcp_flags::ACK;
                e.payload[..line.len()].copy_from_slice(line);
                e.payload_len = line.len() as u16;
            } else {
                e.kind = kind::TCP_FLAGS;
                e.tcp_flags = tcp_flags::SYN;
            }
            e
        })
        .collect()
}

fn directory() -> EndpointDirectory {
    let text = "cluster: default\nendpoints:\n  - name: payer\n    namespace: galactic-fhir\n    labels: {org: payer}\n    ip: 10.244.3.30\n    node: n\n  - name: coruscanthealth\n    namespace: galactic-fhir\n    labels: {app: fhir}\n    ip: 10.244.1.10\n    node: n\n";
    let cluster = holonet_policy::endpoints::parse_endpoints(
        &holonet_policy::diag::SourceFile::new("eps.yaml", text),
    )
    .expect("valid endpoints");
    EndpointDirectory::from_cluster(&cluster, "n")
}

fn ingest(c: &mut Criterion) {
    let raw: Vec<[u8; 256]> = events().iter().map(FlowEvent::encode).collect();
    let clock = MonotonicClock::with_offset_ns(1_700_000_000_000_000_000);
    let names = HashMap::from([(7, "lxc-payer".to_string())]);
    let dir = directory();
    let store = FlowStore::new(65_536);
    let mut uuids = UuidSource::new();
    let mut group = c.benchmark_group("agent");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("ingest (decode, enrich, convert, store)", |b| {
        b.iter(|| {
            let mut batch = Vec::with_capacity(BATCH);
            for bytes in &raw {
                let event = FlowEvent::decode(bytes).expect("valid record");
                let flow = Flow::from_event(&event, &clock, &names);
                let message = to_message(&flow, "n", &mut uuids);
                batch.push(Arc::new(StoredEvent::Flow(to_stored(message, &flow, &dir))));
            }
            store.push_batch(batch);
        });
    });
    group.finish();
}

fn get_flows(c: &mut Criterion) {
    const FLOWS: usize = 100_000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let store = Arc::new(FlowStore::new(FLOWS));
    let clock = MonotonicClock::with_offset_ns(1_700_000_000_000_000_000);
    let names = HashMap::new();
    let dir = directory();
    let mut uuids = UuidSource::new();
    let evs = events();
    for chunk in 0..FLOWS / BATCH + 1 {
        let _ = chunk;
        store.push_batch(evs.iter().map(|e| {
            let flow = Flow::from_event(e, &clock, &names);
            StoredEvent::Flow(to_stored(to_message(&flow, "n", &mut uuids), &flow, &dir))
        }));
    }
    let addr = runtime.block_on(async {
        let listeners = server::bind(&Listen {
            tcp: Some("127.0.0.1:0".parse().expect("addr")),
            unix: None,
            allow_remote: false,
        })
        .await
        .expect("bind");
        let addr = listeners.tcp_addr().expect("tcp");
        let service = ObserverService::new(Arc::clone(&store), "n");
        tokio::spawn(server::serve(listeners, service, std::future::pending()));
        addr
    });
    let client = runtime.block_on(async {
        ObserverClient::connect(format!("http://{addr}"))
            .await
            .expect("connect")
            .max_decoding_message_size(16 * 1024 * 1024)
    });
    let mut group = c.benchmark_group("agent");
    group.throughput(Throughput::Elements(FLOWS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("GetFlows stream over loopback", |b| {
        b.iter_batched(
            || client.clone(),
            |mut client| {
                runtime.block_on(async {
                    let mut stream = client
                        .get_flows(GetFlowsRequest {
                            number: FLOWS as u64,
                            ..Default::default()
                        })
                        .await
                        .expect("GetFlows")
                        .into_inner();
                    let mut n = 0;
                    while let Some(item) = stream.next().await {
                        item.expect("ok");
                        n += 1;
                    }
                    assert_eq!(n, FLOWS);
                });
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, ingest, get_flows);
criterion_main!(benches);
