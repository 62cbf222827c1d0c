//! Agent ingest and GetFlows streaming throughput.
//!
//! - `ingest`: probe records → the agent's per-event work
//!   ([`FlowIngest::convert`]: decode, pair responses with requests, build
//!   the Hubble message, name policies and processes, share endpoints) →
//!   store, in the pipeline's batch size, on one core (target: 1,000,000
//!   events/s).
//! - `get_flows`: a tonic client on loopback streaming 100,000 of those
//!   stored flows from the agent's gRPC server (target: 500,000 flows/s).
//!
//! The events are the seed story's traffic: empire droids opening
//! keep-alive connections to the FHIR server (SYN, SYN-ACK, two requests
//! and their responses, FIN both ways) and the payer's SYNs being dropped,
//! with the repository's own galactic-fhir policies and endpoints, and a
//! process known for every socket.
//!
//! Run: `cargo bench -p holonet-agent --bench ingest`.

// The allocator the `holonet` binary uses, so the figures are the agent's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use holonet_agent::{
    clock::MonotonicClock,
    observer::{
        endpoints::EndpointDirectory,
        ingest::{AttributeProcesses, Enrichment, FlowIngest},
        policy_names::PolicyNames,
        server::{self, Listen},
        service::ObserverService,
        store::{FlowStore, StoredEvent},
    },
    process::ProcessTable,
};
use holonet_policy::{
    diag::SourceFile, endpoints::parse_endpoints, parse::parse_policies, resolve::resolve,
};
use holonet_proto::observer::{GetFlowsRequest, observer_client::ObserverClient};
use probe_common::{
    event::{FlowEvent, family, hook, kind, tcp_flags, verdict},
    process::{ProcessEvent, proc_kind},
};
use tokio_stream::StreamExt;
use tonic::codegen::http::uri::PathAndQuery;
use tonic_prost::ProstCodec;

const BATCH: usize = 4096;
const SERVER: [u8; 4] = [10, 244, 1, 10];
const SERVER_PORT: u16 = 52773;
/// The empire's droids and its medical facility (policies/endpoints).
const CLIENTS: [[u8; 4]; 4] = [
    [10, 244, 2, 20],
    [10, 244, 2, 21],
    [10, 244, 3, 22],
    [10, 244, 3, 23],
];
const PAYER: [u8; 4] = [10, 244, 3, 30];
const REQUEST: &[u8] = b"GET /intersystems/fhir/r5/Patient/DarthVader HTTP/1.1\r\nHost: coruscanthealth:52773\r\nUser-Agent: curl/8.14.1\r\nAccept: */*\r\n\r\n";
const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: 1024\r\n\r\n";

/// One packet's event: `forward` is client → server.
fn packet(
    client: ([u8; 4], u16),
    forward: bool,
    kind_: u8,
    flags: u8,
    payload: &[u8],
) -> FlowEvent {
    let mut e = FlowEvent::zeroed();
    e.family = family::IPV4;
    e.l4_proto = 6;
    let (from, to) = if forward {
        (client, (SERVER, SERVER_PORT))
    } else {
        ((SERVER, SERVER_PORT), client)
    };
    e.saddr[..4].copy_from_slice(&from.0);
    e.sport = from.1;
    e.daddr[..4].copy_from_slice(&to.0);
    e.dport = to.1;
    // Reported where delivered: the server's veth for requests, the
    // client's for responses.
    e.ifindex = if forward { 7 } else { 8 };
    e.hook = hook::TC_EGRESS;
    e.verdict = verdict::FORWARDED;
    e.kind = kind_;
    e.tcp_flags = flags;
    e.payload[..payload.len()].copy_from_slice(payload);
    e.payload_len = payload.len() as u16;
    e
}

/// [`BATCH`] events of the seed story's traffic, kernel times 20 µs apart.
fn events() -> Vec<FlowEvent> {
    let mut out = Vec::with_capacity(BATCH);
    let mut connection = 0u16;
    while out.len() < BATCH {
        connection = connection.wrapping_add(1);
        let port = 32768 + connection % 28000;
        if connection.is_multiple_of(4) {
            let mut syn = packet((PAYER, port), true, kind::TCP_FLAGS, tcp_flags::SYN, b"");
            syn.hook = hook::TC_INGRESS;
            syn.ifindex = 9;
            syn.verdict = verdict::DROPPED;
            syn.drop_reason = 133;
            out.push(syn);
            continue;
        }
        let client = (CLIENTS[usize::from(connection) % CLIENTS.len()], port);
        let ack = tcp_flags::ACK;
        let data = tcp_flags::PSH | ack;
        out.extend([
            packet(client, true, kind::TCP_FLAGS, tcp_flags::SYN, b""),
            packet(client, false, kind::TCP_FLAGS, tcp_flags::SYN | ack, b""),
            packet(client, true, kind::HTTP_REQUEST, data, REQUEST),
            packet(client, false, kind::HTTP_RESPONSE, data, RESPONSE),
            packet(client, true, kind::HTTP_REQUEST, data, REQUEST),
            packet(client, false, kind::HTTP_RESPONSE, data, RESPONSE),
            packet(client, true, kind::TCP_FLAGS, tcp_flags::FIN | ack, b""),
            packet(client, false, kind::TCP_FLAGS, tcp_flags::FIN | ack, b""),
        ]);
    }
    out.truncate(BATCH);
    for (i, e) in out.iter_mut().enumerate() {
        e.ktime_ns = 1_000_000 + 20_000 * i as u64;
    }
    out
}

fn repository_file(path: &str) -> SourceFile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    let text = std::fs::read_to_string(&path).expect("repository file");
    SourceFile::new(path.display().to_string(), text)
}

/// The galactic-fhir endpoints, with the policies of the story's step 3.
fn seed_story() -> (EndpointDirectory, PolicyNames) {
    let cluster = Arc::new(
        parse_endpoints(&repository_file("policies/endpoints/galactic-fhir.yaml"))
            .expect("valid endpoints"),
    );
    let parsed = parse_policies(&[
        repository_file("policies/galactic-fhir/00-denyall-coruscanthealth.yaml"),
        repository_file("policies/galactic-fhir/10-l7-visibility.yaml"),
        repository_file("policies/galactic-fhir/20-l7-visibility-payer.yaml"),
    ]);
    assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
    let directory = EndpointDirectory::from_cluster(&cluster, "kind-worker");
    let names = PolicyNames::new(Arc::new(resolve(&parsed.policies, cluster)));
    (directory, names)
}

/// The server listening and every client socket known, as the socket
/// probe would have reported them.
fn processes(events: &[FlowEvent]) -> ProcessTable {
    let record = |kind_: u8, local: ([u8; 4], u16), remote: ([u8; 4], u16), comm: &[u8]| {
        let mut r = ProcessEvent::zeroed();
        r.kind = kind_;
        r.family = family::IPV4;
        r.saddr[..4].copy_from_slice(&local.0);
        r.sport = local.1;
        r.daddr[..4].copy_from_slice(&remote.0);
        r.dport = remote.1;
        r.tgid = 4242;
        r.comm[..comm.len()].copy_from_slice(comm);
        r
    };
    let mut table = ProcessTable::default();
    table.apply(
        &record(
            proc_kind::LISTEN,
            (SERVER, SERVER_PORT),
            ([0; 4], 0),
            b"iris",
        ),
        None,
    );
    for e in events.iter().filter(|e| e.tcp_flags == tcp_flags::SYN) {
        let mut local = [0; 4];
        local.copy_from_slice(&e.saddr[..4]);
        table.apply(
            &record(
                proc_kind::CONNECT,
                (local, e.sport),
                (SERVER, SERVER_PORT),
                b"curl",
            ),
            None,
        );
    }
    table
}

/// An ingest as the agent's pipeline builds it.
fn flow_ingest() -> FlowIngest {
    FlowIngest::new(
        MonotonicClock::with_offset_ns(1_700_000_000_000_000_000),
        HashMap::from([
            (7, "lxc-coruscanthealth".to_string()),
            (8, "lxc-droid".to_string()),
            (9, "lxc-payer".to_string()),
        ]),
        "kind-worker".to_string(),
    )
}

/// The benchmark measures the agent's whole enrichment: policies named,
/// processes known, responses paired with their requests.
fn assert_enriched(
    events: &[FlowEvent],
    directory: &EndpointDirectory,
    names: &PolicyNames,
    table: &mut ProcessTable,
) {
    let mut ingest = flow_ingest();
    let mut with = Enrichment {
        endpoints: directory,
        policy_names: Some(names),
        processes: Some(table as &mut dyn AttributeProcesses),
    };
    let flows: Vec<_> = events
        .iter()
        .map(|e| match &*ingest.convert(e, &mut with, &mut |_| {}) {
            StoredEvent::Flow(stored) => stored.to_flow(),
            StoredEvent::Lost(_) => panic!("a flow"),
        })
        .collect();
    assert!(flows.iter().any(|f| !f.egress_allowed_by.is_empty()));
    assert!(flows.iter().any(|f| f.holonet_source_process.is_some()));
    assert!(
        flows
            .iter()
            .any(|f| f.holonet_destination_process.is_some())
    );
    assert!(
        flows
            .iter()
            .any(|f| f.l7.as_ref().is_some_and(|l7| l7.latency_ns > 0))
    );
}

fn ingest(c: &mut Criterion) {
    let events = events();
    let raw: Vec<[u8; 256]> = events.iter().map(FlowEvent::encode).collect();
    let (directory, names) = seed_story();
    let mut table = processes(&events);
    let mut ingest = flow_ingest();
    assert_enriched(&events, &directory, &names, &mut table);
    let store = FlowStore::new(65_536);
    let mut group = c.benchmark_group("agent");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("ingest (decode, enrich, convert, store)", |b| {
        b.iter(|| {
            let mut with = Enrichment {
                endpoints: &directory,
                policy_names: Some(&names),
                processes: Some(&mut table as &mut dyn AttributeProcesses),
            };
            let mut batch = Vec::with_capacity(BATCH);
            for bytes in &raw {
                let event = FlowEvent::decode(bytes).expect("valid record");
                batch.push(ingest.convert(&event, &mut with, &mut |_| {}));
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
    let events = events();
    let (directory, names) = seed_story();
    let mut table = processes(&events);
    let mut ingest = flow_ingest();
    let mut with = Enrichment {
        endpoints: &directory,
        policy_names: Some(&names),
        processes: Some(&mut table as &mut dyn AttributeProcesses),
    };
    for _ in 0..FLOWS / BATCH + 1 {
        store.push_batch(
            events
                .iter()
                .map(|e| ingest.convert(e, &mut with, &mut |_| {}))
                .collect::<Vec<_>>(),
        );
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
    let channel = runtime.block_on(async {
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("an address")
            .connect()
            .await
            .expect("connect")
    });
    let request = || GetFlowsRequest {
        number: FLOWS as u64,
        ..Default::default()
    };
    let mut group = c.benchmark_group("agent");
    group.throughput(Throughput::Elements(FLOWS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    // What a client such as `hubble observe` does: every field decoded.
    // On this machine that client's one thread is the bottleneck.
    group.bench_function("GetFlows stream over loopback", |b| {
        b.iter_batched(
            || ObserverClient::new(channel.clone()).max_decoding_message_size(16 * 1024 * 1024),
            |mut client| {
                runtime.block_on(async {
                    let mut stream = client
                        .get_flows(request())
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
    // What the agent can serve: a client that keeps each flow in wire
    // format (as a relay or a recorder of raw responses could).
    group.bench_function("GetFlows stream over loopback, flows kept encoded", |b| {
        b.iter_batched(
            || tonic::client::Grpc::new(channel.clone()),
            |mut grpc| {
                runtime.block_on(async {
                    grpc.ready().await.expect("ready");
                    let mut stream = grpc
                        .server_streaming(
                            tonic::Request::new(request()),
                            PathAndQuery::from_static("/observer.Observer/GetFlows"),
                            ProstCodec::<GetFlowsRequest, EncodedFlowResponse>::default(),
                        )
                        .await
                        .expect("GetFlows")
                        .into_inner();
                    let mut n = 0;
                    while let Some(item) = stream.next().await {
                        let response = item.expect("ok");
                        assert!(!response.flow.is_empty() && !response.node_name.is_empty());
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

/// A `GetFlowsResponse` whose flow is left in wire format.
#[derive(Clone, PartialEq, prost::Message)]
struct EncodedFlowResponse {
    #[prost(bytes = "bytes", tag = "1")]
    flow: bytes::Bytes,
    #[prost(string, tag = "1000")]
    node_name: String,
}

criterion_group!(benches, ingest, get_flows);
criterion_main!(benches);
