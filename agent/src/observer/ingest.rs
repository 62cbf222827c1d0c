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

use holonet_proto::flow::{HolonetProcess, Ip, NetworkInterface};

use probe_common::event::FlowEvent;

use super::{
    convert::{UuidSource, message_interface, message_ip, write_message},
    endpoints::EndpointDirectory,
    policy_names::PolicyNames,
    store::{StoredEvent, StoredFlow},
};
use crate::{
    clock::MonotonicClock,
    flow::Flow,
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
    ips: FastMap<(IpAddr, IpAddr), Arc<Ip>>,
    interfaces: FastMap<u32, Arc<NetworkInterface>>,
    processes: FastMap<ProcessInfo, Arc<HolonetProcess>>,
}

/// Entries each map of a [`PartCache`] holds at most.
const PART_CACHE_LIMIT: usize = 16_384;

/// The entry for `key`, built by `build` unless `map` has it.
fn cached<K: Eq + Hash, V>(
    map: &mut FastMap<K, Arc<V>>,
    key: K,
    build: impl FnOnce(&K) -> V,
) -> Arc<V> {
    if let Some(hit) = map.get(&key) {
        return Arc::clone(hit);
    }
    if map.len() >= PART_CACHE_LIMIT {
        map.clear();
    }
    let part = Arc::new(build(&key));
    map.insert(key, Arc::clone(&part));
    part
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
        let mut flow = Flow::from_event(event, &self.clock, &self.interfaces);
        self.latency.observe(&mut flow);
        observe(&flow);
        let cache = &mut self.shared;
        StoredFlow::build_event(|message, shared| {
            write_message(&flow, &mut self.uuids, message);
            shared.ip = Some(cached(
                &mut cache.ips,
                (flow.source.ip(), flow.destination.ip()),
                |_| message_ip(&flow),
            ));
            shared.source = Some(Arc::clone(with.endpoints.lookup(flow.source.ip())));
            shared.destination = Some(Arc::clone(with.endpoints.lookup(flow.destination.ip())));
            shared.node_name = Some(Arc::clone(&self.node_name));
            shared.interface = Some(cached(&mut cache.interfaces, flow.ifindex, |_| {
                message_interface(&flow)
            }));
            let is_reply = message.is_reply.map(|r| r.value);
            if let Some(processes) = with.processes.as_mut()
                && flow.l4_proto == TCP
            {
                let (source, destination) =
                    processes.attribute(flow.source, flow.destination, is_reply);
                let mut shared_process = |process: ProcessInfo| {
                    cached(&mut cache.processes, process, |p| HolonetProcess {
                        pid: p.pid,
                        command: p.command.to_string(),
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
