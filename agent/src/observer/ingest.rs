//! One probe event → one stored flow: the agent's work per event, apart
//! from reading the ring and appending to the store.
//!
//! Kept apart from [`super::pipeline`] (which owns the ring, the watch
//! channels and the task) so the ingest benchmark measures exactly what the
//! agent does per event: decode, pair responses with requests, build the
//! Hubble message, name the policies and processes, share the endpoints.

use std::{
    collections::HashMap,
    hash::Hash,
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use holonet_proto::flow::{HolonetProcess, NetworkInterface};
use probe_common::event::{FlowEvent, kind};

use super::{
    convert::{
        UuidSource, is_l7_record, message_interface, message_ip, packet_summary, write_message,
    },
    endpoints::EndpointDirectory,
    policy_names::PolicyNames,
    stored::{AddressParts, StoredEvent, StoredFlow},
};
use crate::{
    clock::MonotonicClock,
    flow::{Flow, FlowKind, HttpRequest, parse_request_line},
    hashing::FastMap,
    latency::LatencyTracker,
    process::{ProcessFeed, ProcessInfo, ProcessTable},
};

/// Who is at each end of a TCP flow: the agent's [`ProcessFeed`], or a bare
/// [`ProcessTable`] where no socket probe runs (benchmarks, tests).
pub trait AttributeProcesses: std::fmt::Debug {
    /// The processes at the source and destination (see
    /// [`ProcessTable::attribute`]).
    fn attribute(
        &mut self,
        source: SocketAddr,
        destination: SocketAddr,
        is_reply: Option<bool>,
    ) -> (Option<ProcessInfo>, Option<ProcessInfo>);
}

impl AttributeProcesses for ProcessFeed {
    fn attribute(
        &mut self,
        source: SocketAddr,
        destination: SocketAddr,
        is_reply: Option<bool>,
    ) -> (Option<ProcessInfo>, Option<ProcessInfo>) {
        ProcessFeed::attribute(self, source, destination, is_reply)
    }
}

/// Without namespaces: listeners sharing a port are told apart only when
/// they are one process.
impl AttributeProcesses for ProcessTable {
    fn attribute(
        &mut self,
        source: SocketAddr,
        destination: SocketAddr,
        is_reply: Option<bool>,
    ) -> (Option<ProcessInfo>, Option<ProcessInfo>) {
        ProcessTable::attribute(self, source, destination, is_reply, &mut |_, _| false)
    }
}

/// What a batch of events is enriched with: taken afresh for each batch,
/// since the endpoints, policies and processes change while the agent runs.
#[derive(Debug)]
pub struct Enrichment<'a> {
    /// Who each address is.
    pub endpoints: &'a EndpointDirectory,
    /// The policies in force, to name the ones behind verdicts.
    pub policy_names: Option<&'a PolicyNames>,
    /// Who sent and received TCP flows.
    pub processes: Option<&'a mut dyn AttributeProcesses>,
}

/// The per-event state of the agent's pipeline: what turns probe events
/// into stored flows, with the requests still waiting for their responses
/// and the message parts flows share.
#[derive(Debug)]
pub struct FlowIngest {
    clock: MonotonicClock,
    interfaces: HashMap<u32, Arc<str>>,
    node_name: Arc<str>,
    uuids: UuidSource,
    latency: LatencyTracker,
    shared: PartCache,
}

/// Message parts already built, by what they are built from; each map
/// starts over when it reaches [`PART_CACHE_LIMIT`] entries.
#[derive(Debug, Default)]
struct PartCache {
    /// For the endpoint directory of this generation.
    addresses: FastMap<(IpAddr, IpAddr), Arc<AddressParts>>,
    directory: u64,
    interfaces: FastMap<u32, Arc<NetworkInterface>>,
    processes: FastMap<ProcessInfo, Arc<HolonetProcess>>,
    /// Packet summaries by IP protocol, TCP flags and L7 detail.
    summaries: FastMap<(u8, u8, u8), Arc<str>>,
    /// Parsed HTTP requests by the bytes the probe copied: a client sends
    /// the same request line and first headers again and again.
    requests: FastMap<Box<[u8]>, Arc<HttpRequest>>,
}

/// Entries each map of a [`PartCache`] holds at most.
const PART_CACHE_LIMIT: usize = 16_384;

/// The entry for `key`, built by `build` unless `map` has it.
fn cached<K: Eq + Hash, V: ?Sized>(
    map: &mut FastMap<K, Arc<V>>,
    key: K,
    build: impl FnOnce(&K) -> Arc<V>,
) -> Arc<V> {
    if let Some(hit) = map.get(&key) {
        return Arc::clone(hit);
    }
    if map.len() >= PART_CACHE_LIMIT {
        map.clear();
    }
    let part = build(&key);
    map.insert(key, Arc::clone(&part));
    part
}

impl PartCache {
    /// The HTTP request in `payload` (what [`FlowKind::of`] makes of it),
    /// parsed once per distinct payload.
    fn request(&mut self, payload: &[u8]) -> FlowKind {
        if let Some(hit) = self.requests.get(payload) {
            return FlowKind::HttpRequest(Arc::clone(hit));
        }
        let Some(request) = parse_request_line(payload) else {
            return FlowKind::UnparsableHttp;
        };
        if self.requests.len() >= PART_CACHE_LIMIT {
            self.requests.clear();
        }
        let request = Arc::new(request);
        self.requests.insert(payload.into(), Arc::clone(&request));
        FlowKind::HttpRequest(request)
    }
}

impl FlowIngest {
    /// For flows seen on `interfaces` (ifindex → name) of `node_name`, with
    /// kernel times turned into wall times by `clock`.
    pub fn new(clock: MonotonicClock, interfaces: HashMap<u32, String>, node_name: String) -> Self {
        Self {
            clock,
            interfaces: interfaces
                .into_iter()
                .map(|(index, name)| (index, Arc::from(name)))
                .collect(),
            node_name: Arc::from(node_name),
            uuids: UuidSource::new(),
            latency: LatencyTracker::new(),
            shared: PartCache::default(),
        }
    }

    /// The stored flow for `event`, handing the decoded flow to `observe`
    /// on the way (printing, tests).
    pub fn convert(
        &mut self,
        event: &FlowEvent,
        with: &mut Enrichment<'_>,
        observe: &mut impl FnMut(&Flow),
    ) -> Arc<StoredEvent> {
        let kind = if event.kind == kind::HTTP_REQUEST {
            self.shared.request(event.payload())
        } else {
            FlowKind::of(event)
        };
        let mut flow = Flow::with_kind(event, &self.clock, &self.interfaces, kind);
        self.latency.observe(&mut flow);
        observe(&flow);
        let cache = &mut self.shared;
        StoredFlow::build_event(|message, shared| {
            write_message(&flow, message);
            shared.uuid = Some(self.uuids.next_flow_uuid());
            if cache.directory != with.endpoints.generation() {
                cache.addresses.clear();
                cache.directory = with.endpoints.generation();
            }
            let endpoints = with.endpoints;
            shared.addresses = Some(cached(
                &mut cache.addresses,
                (flow.source.ip(), flow.destination.ip()),
                |&(source, destination)| {
                    Arc::new(AddressParts::new(
                        Some(message_ip(&flow)),
                        Some(Arc::clone(endpoints.lookup(source))),
                        Some(Arc::clone(endpoints.lookup(destination))),
                    ))
                },
            ));
            shared.node_name = Some(Arc::clone(&self.node_name));
            shared.interface = Some(cached(&mut cache.interfaces, flow.ifindex, |_| {
                Arc::new(message_interface(&flow))
            }));
            if !is_l7_record(&flow) {
                let key = (flow.l4_proto, flow.tcp_flags.0, flow.l7_detail);
                shared.summary = Some(cached(&mut cache.summaries, key, |_| {
                    Arc::from(packet_summary(&flow).unwrap_or_default())
                }));
            }
            let is_reply = message.is_reply.map(|r| r.value);
            if let Some(processes) = with.processes.as_mut()
                && flow.l4_proto == TCP
            {
                let (source, destination) =
                    processes.attribute(flow.source, flow.destination, is_reply);
                let mut shared_process = |process: ProcessInfo| {
                    cached(&mut cache.processes, process, |p| {
                        Arc::new(HolonetProcess {
                            pid: p.pid,
                            command: p.command.to_string(),
                        })
                    })
                };
                shared.source_process = source.map(&mut shared_process);
                shared.destination_process = destination.map(&mut shared_process);
            }
            shared.policies = with.policy_names.and_then(|names| {
                names.for_flow(
                    flow.source.ip(),
                    flow.destination.ip(),
                    flow.l4_proto,
                    flow.destination.port(),
                    message.verdict(),
                    is_reply == Some(true),
                )
            });
        })
    }
}

const TCP: u8 = 6;

#[cfg(test)]
mod tests {
    use holonet_policy::{diag::SourceFile, endpoints::parse_endpoints};
    use holonet_proto::flow as pb;
    use probe_common::event::{family, hook, kind, tcp_flags, verdict};

    use super::*;

    fn syn() -> FlowEvent {
        let mut e = FlowEvent::zeroed();
        e.family = family::IPV4;
        e.l4_proto = 6;
        e.saddr[..4].copy_from_slice(&[10, 0, 0, 2]);
        e.daddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        e.sport = 40000;
        e.dport = 80;
        e.ifindex = 3;
        e.hook = hook::TC_INGRESS;
        e.verdict = verdict::FORWARDED;
        e.kind = kind::TCP_FLAGS;
        e.tcp_flags = tcp_flags::SYN;
        e
    }

    fn directory(pod: &str) -> EndpointDirectory {
        let text = format!(
            "cluster: default\nendpoints:\n  - {{name: {pod}, namespace: g, labels: {{org: payer}}, ip: 10.0.0.2, node: n}}\n"
        );
        let cluster = parse_endpoints(&SourceFile::new("eps.yaml", text)).expect("endpoints");
        EndpointDirectory::from_cluster(&cluster, "n")
    }

    fn ingest(node: &str) -> FlowIngest {
        FlowIngest::new(
            MonotonicClock::with_offset_ns(0),
            HashMap::from([(3, "lxc-payer".to_string())]),
            node.to_string(),
        )
    }

    /// The whole flow a SYN becomes.
    fn converted(ingest: &mut FlowIngest, endpoints: &EndpointDirectory) -> pb::Flow {
        let mut with = Enrichment {
            endpoints,
            policy_names: None,
            processes: None,
        };
        match &*ingest.convert(&syn(), &mut with, &mut |_| {}) {
            StoredEvent::Flow(stored) => stored.to_flow(),
            StoredEvent::Lost(_) => panic!("a flow"),
        }
    }

    fn source_pod(ingest: &mut FlowIngest, endpoints: &EndpointDirectory) -> String {
        converted(ingest, endpoints)
            .source
            .expect("a source")
            .pod_name
    }

    #[test]
    fn flows_name_the_endpoints_of_the_directory_in_force() {
        let mut ingest = ingest("n");
        let before = directory("payer");
        assert_eq!(source_pod(&mut ingest, &before), "payer");
        assert_eq!(source_pod(&mut ingest, &before), "payer");
        // The endpoints file changed: the parts built from the old
        // directory are not used again.
        let after = directory("payer-v2");
        assert_eq!(source_pod(&mut ingest, &after), "payer-v2");
        assert_eq!(source_pod(&mut ingest, &EndpointDirectory::empty()), "");
    }

    #[test]
    fn every_flow_gets_its_own_uuid_and_the_shared_node_and_interface() {
        let mut ingest = ingest("kind-worker");
        let endpoints = directory("payer");
        let flows: Vec<_> = (0..3).map(|_| converted(&mut ingest, &endpoints)).collect();
        let uuids: std::collections::HashSet<_> = flows.iter().map(|f| f.uuid.clone()).collect();
        assert_eq!(uuids.len(), 3);
        for f in &flows {
            assert_eq!(f.node_name, "kind-worker");
            assert_eq!(
                f.interface.as_ref().map(|i| i.name.as_str()),
                Some("lxc-payer")
            );
            assert_eq!(f.ip.as_ref().map(|ip| ip.source.as_str()), Some("10.0.0.2"));
            assert_eq!(f.summary, "TCP Flags: SYN");
        }
    }

    fn request_event(line: &str) -> FlowEvent {
        let mut e = syn();
        e.kind = kind::HTTP_REQUEST;
        e.tcp_flags = tcp_flags::ACK;
        e.payload[..line.len()].copy_from_slice(line.as_bytes());
        e.payload_len = line.len() as u16;
        e
    }

    #[test]
    fn a_repeated_request_is_parsed_once_and_a_different_one_anew() {
        let mut ingest = ingest("n");
        let endpoints = directory("payer");
        let mut with = Enrichment {
            endpoints: &endpoints,
            policy_names: None,
            processes: None,
        };
        let lines = [
            "GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /a HTTP/1.1\r\nHost: y\r\n\r\n",
            "PUT /b HTTP/1.0\r\n\r\n",
            "\x16\x03\x01 not http",
        ];
        let mut seen = Vec::new();
        for line in lines {
            let event = request_event(line);
            ingest.convert(&event, &mut with, &mut |flow| seen.push(flow.kind.clone()));
            // What the agent keeps is what parsing these bytes gives.
            assert_eq!(seen.last(), Some(&FlowKind::of(&event)), "{line:?}");
        }
        let request = |i: usize| match &seen[i] {
            FlowKind::HttpRequest(request) => Arc::clone(request),
            other => panic!("an HTTP request, not {other:?}"),
        };
        assert!(
            Arc::ptr_eq(&request(0), &request(1)),
            "the same bytes, one parse"
        );
        assert_eq!(request(0).url(), "http://x/a");
        assert_eq!(request(2).url(), "http://y/a");
        assert_eq!(
            (request(3).method.as_str(), request(3).path.as_str()),
            ("PUT", "/b")
        );
        assert_eq!(seen[4], FlowKind::UnparsableHttp);
    }
}
