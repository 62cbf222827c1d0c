//! The agent's flow store: a bounded ring of recent events.
//!
//! One writer (the probe pipeline) appends batches; any number of readers
//! (GetFlows streams, the exporter) copy out ranges by sequence number and
//! wait for new entries through a watch channel. The lock is held only to
//! push a batch or to clone `Arc`s out, so a slow reader never slows the
//! writer: it falls behind, and when the ring has overwritten what it had
//! not read yet, it learns how many events it lost (Hubble's
//! `HUBBLE_RING_BUFFER` lost events).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use holonet_proto::{
    encoded::{SharedParts, encode_parts},
    flow::{Endpoint, Flow, HolonetProcess, Ip, LostEvent, NetworkInterface, Policy},
    observer::{GetFlowsResponse, get_flows_response::ResponseTypes},
};
use tokio::sync::watch;

use super::convert::FlowUuid;

/// Default number of events kept (Hubble's maximum ring size is 65,535).
pub const DEFAULT_CAPACITY: usize = 65_536;

/// A flow as the store keeps it: the Hubble message with the parts many
/// flows have in common taken out and shared. Every flow of a pod names
/// the same endpoint (pod, namespace, labels, workloads), every flow
/// between two addresses the same `IP`, every flow of a connection kind
/// the same policies and processes; copying those strings into each
/// message, and freeing them again when the ring overwrote the flow, was
/// most of the agent's cost per event.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredFlow {
    /// The message; none of the parts in `shared` set.
    flow: Flow,
    shared: SharedFlowParts,
}

/// The parts of a stored flow it shares with other flows. A part that is
/// `None` is not set on the flow at all.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SharedFlowParts {
    /// `uuid`, when kept apart (a flow's own is kept in the message).
    pub uuid: Option<FlowUuid>,
    /// `Summary`, when shared (a flow's own is kept in the message).
    pub summary: Option<Arc<str>>,
    /// `IP`, `source` and `destination`.
    pub addresses: Option<Arc<AddressParts>>,
    /// `node_name`.
    pub node_name: Option<Arc<str>>,
    /// `interface`.
    pub interface: Option<Arc<NetworkInterface>>,
    /// `holonet_source_process`.
    pub source_process: Option<Arc<HolonetProcess>>,
    /// `holonet_destination_process`.
    pub destination_process: Option<Arc<HolonetProcess>>,
    /// The policy lists.
    pub policies: Option<Arc<FlowPolicies>>,
}

/// The parts of a flow that depend on its two addresses alone (and on
/// the endpoints the agent knows), with their wire format, encoded once for
/// all the flows that share them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AddressParts {
    ip: Option<Ip>,
    source: Option<Arc<Endpoint>>,
    destination: Option<Arc<Endpoint>>,
    wire: Vec<u8>,
}

impl AddressParts {
    /// `IP`, `source` and `destination`.
    pub fn new(
        ip: Option<Ip>,
        source: Option<Arc<Endpoint>>,
        destination: Option<Arc<Endpoint>>,
    ) -> Self {
        let wire = encode_parts(&SharedParts {
            ip: ip.as_ref(),
            source: source.as_deref(),
            destination: destination.as_deref(),
            ..SharedParts::default()
        });
        Self {
            ip,
            source,
            destination,
            wire,
        }
    }

    /// `IP`.
    pub fn ip(&self) -> Option<&Ip> {
        self.ip.as_ref()
    }

    /// `source`.
    pub fn source(&self) -> Option<&Endpoint> {
        self.source.as_deref()
    }

    /// `destination`.
    pub fn destination(&self) -> Option<&Endpoint> {
        self.destination.as_deref()
    }
}

impl SharedFlowParts {
    /// Moves every shareable part out of `flow`, keeping those this
    /// already has instead of the flow's.
    fn take_from(&mut self, flow: &mut Flow) {
        fn keep<T>(part: &mut Option<Arc<T>>, own: Option<T>) {
            if part.is_none() {
                *part = own.map(Arc::new);
            }
        }
        let (ip, source, destination) =
            (flow.ip.take(), flow.source.take(), flow.destination.take());
        if self.addresses.is_none() && (ip.is_some() || source.is_some() || destination.is_some()) {
            self.addresses = Some(Arc::new(AddressParts::new(
                ip,
                source.map(Arc::new),
                destination.map(Arc::new),
            )));
        }
        keep(&mut self.interface, flow.interface.take());
        keep(&mut self.source_process, flow.holonet_source_process.take());
        keep(
            &mut self.destination_process,
            flow.holonet_destination_process.take(),
        );
        if self.policies.is_some() {
            FlowPolicies::clear(flow);
        } else {
            self.policies = FlowPolicies::take_from(flow).map(Arc::new);
        }
        if self.uuid.is_some() {
            flow.uuid.clear();
        }
        if self.summary.is_some() {
            flow.summary.clear();
        }
        let node_name = std::mem::take(&mut flow.node_name);
        if self.node_name.is_none() && !node_name.is_empty() {
            self.node_name = Some(Arc::from(node_name));
        }
    }
}

/// The policies a flow names (Hubble's `*_allowed_by` and `*_denied_by`),
/// shared by the flows with the same peers, port and verdict, with their
/// wire format, encoded once for all of them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlowPolicies {
    egress_allowed_by: Vec<Policy>,
    ingress_allowed_by: Vec<Policy>,
    egress_denied_by: Vec<Policy>,
    ingress_denied_by: Vec<Policy>,
    wire: Vec<u8>,
}

impl FlowPolicies {
    /// The four lists, in the order of their names.
    pub fn new(
        egress_allowed_by: Vec<Policy>,
        ingress_allowed_by: Vec<Policy>,
        egress_denied_by: Vec<Policy>,
        ingress_denied_by: Vec<Policy>,
    ) -> Self {
        let wire = encode_parts(&SharedParts {
            egress_allowed_by: &egress_allowed_by,
            ingress_allowed_by: &ingress_allowed_by,
            egress_denied_by: &egress_denied_by,
            ingress_denied_by: &ingress_denied_by,
            ..SharedParts::default()
        });
        Self {
            egress_allowed_by,
            ingress_allowed_by,
            egress_denied_by,
            ingress_denied_by,
            wire,
        }
    }

    /// Moves a message's policy lists out; `None` when all are empty.
    fn take_from(flow: &mut Flow) -> Option<Self> {
        if flow.egress_allowed_by.is_empty()
            && flow.ingress_allowed_by.is_empty()
            && flow.egress_denied_by.is_empty()
            && flow.ingress_denied_by.is_empty()
        {
            return None;
        }
        Some(Self::new(
            std::mem::take(&mut flow.egress_allowed_by),
            std::mem::take(&mut flow.ingress_allowed_by),
            std::mem::take(&mut flow.egress_denied_by),
            std::mem::take(&mut flow.ingress_denied_by),
        ))
    }

    /// Empties a message's policy lists.
    fn clear(flow: &mut Flow) {
        flow.egress_allowed_by.clear();
        flow.ingress_allowed_by.clear();
        flow.egress_denied_by.clear();
        flow.ingress_denied_by.clear();
    }

    /// Names no policy.
    pub fn is_empty(&self) -> bool {
        self.egress_allowed_by.is_empty()
            && self.ingress_allowed_by.is_empty()
            && self.egress_denied_by.is_empty()
            && self.ingress_denied_by.is_empty()
    }

    /// `egress_allowed_by`.
    pub fn egress_allowed_by(&self) -> &[Policy] {
        &self.egress_allowed_by
    }

    /// `ingress_allowed_by`.
    pub fn ingress_allowed_by(&self) -> &[Policy] {
        &self.ingress_allowed_by
    }

    /// `egress_denied_by`.
    pub fn egress_denied_by(&self) -> &[Policy] {
        &self.egress_denied_by
    }

    /// `ingress_denied_by`.
    pub fn ingress_denied_by(&self) -> &[Policy] {
        &self.ingress_denied_by
    }
}

impl StoredFlow {
    /// A stored event for a flow built where the ring keeps it: a message
    /// is over a kilobyte, and building it on the stack only to move it
    /// into place several times was a tenth of the agent's time per event.
    /// `fill` writes the message (every field at its default to begin
    /// with) and the parts it shares with other flows; parts it writes
    /// into the message are moved out (into `Arc`s of their own) unless
    /// the shared ones name them too.
    pub fn build_event(fill: impl FnOnce(&mut Flow, &mut SharedFlowParts)) -> Arc<StoredEvent> {
        let mut event = Arc::new(StoredEvent::Flow(Self {
            flow: Flow::default(),
            shared: SharedFlowParts::default(),
        }));
        if let Some(StoredEvent::Flow(stored)) = Arc::get_mut(&mut event) {
            fill(&mut stored.flow, &mut stored.shared);
            stored.shared.take_from(&mut stored.flow);
        }
        event
    }

    /// Every field but the shared ones, which are unset here: see
    /// [`Self::shared`].
    pub fn without_shared(&self) -> &Flow {
        &self.flow
    }

    /// The parts shared with other flows.
    pub fn shared(&self) -> &SharedFlowParts {
        &self.shared
    }

    /// The source endpoint.
    pub fn source(&self) -> Option<&Endpoint> {
        self.addresses().and_then(AddressParts::source)
    }

    /// The destination endpoint.
    pub fn destination(&self) -> Option<&Endpoint> {
        self.addresses().and_then(AddressParts::destination)
    }

    fn addresses(&self) -> Option<&AddressParts> {
        self.shared.addresses.as_deref()
    }

    /// The node that saw the flow.
    pub fn node_name(&self) -> &str {
        self.shared.node_name.as_deref().unwrap_or_default()
    }

    /// The policies the flow names, if any.
    pub fn policies(&self) -> Option<&FlowPolicies> {
        self.shared.policies.as_deref()
    }

    /// The shared parts as the filters take them.
    pub fn shared_parts(&self) -> SharedParts<'_> {
        let shared = &self.shared;
        let policies = shared.policies.as_deref();
        let list = |pick: fn(&FlowPolicies) -> &[Policy]| policies.map_or(&[][..], pick);
        SharedParts {
            ip: self.addresses().and_then(AddressParts::ip),
            source: self.source(),
            destination: self.destination(),
            egress_allowed_by: list(FlowPolicies::egress_allowed_by),
            ingress_allowed_by: list(FlowPolicies::ingress_allowed_by),
            egress_denied_by: list(FlowPolicies::egress_denied_by),
            ingress_denied_by: list(FlowPolicies::ingress_denied_by),
            ..self.encoding_parts()
        }
    }

    /// The shared parts as the encoder takes them: those encoded once for
    /// many flows in wire format.
    pub fn encoding_parts(&self) -> SharedParts<'_> {
        let shared = &self.shared;
        SharedParts {
            uuid: shared.uuid.as_ref().map(FlowUuid::as_str),
            summary: shared.summary.as_deref(),
            ip: None,
            source: None,
            destination: None,
            node_name: shared.node_name.as_deref(),
            interface: shared.interface.as_deref(),
            source_process: shared.source_process.as_deref(),
            destination_process: shared.destination_process.as_deref(),
            egress_allowed_by: &[],
            ingress_allowed_by: &[],
            egress_denied_by: &[],
            ingress_denied_by: &[],
            wire: [
                self.addresses().map_or(&[][..], |a| &a.wire),
                shared.policies.as_deref().map_or(&[][..], |p| &p.wire),
            ],
        }
    }

    /// The whole message (a copy, shared parts included).
    pub fn to_flow(&self) -> Flow {
        let shared = &self.shared;
        let mut flow = Flow {
            ip: self.addresses().and_then(AddressParts::ip).cloned(),
            source: self.source().cloned(),
            destination: self.destination().cloned(),
            node_name: self.node_name().to_string(),
            interface: shared.interface.as_deref().cloned(),
            holonet_source_process: shared.source_process.as_deref().cloned(),
            holonet_destination_process: shared.destination_process.as_deref().cloned(),
            ..self.flow.clone()
        };
        if let Some(uuid) = &shared.uuid {
            flow.uuid = uuid.as_str().to_string();
        }
        if let Some(summary) = &shared.summary {
            flow.summary = summary.to_string();
        }
        if let Some(policies) = shared.policies.as_deref() {
            flow.egress_allowed_by
                .clone_from(&policies.egress_allowed_by);
            flow.ingress_allowed_by
                .clone_from(&policies.ingress_allowed_by);
            flow.egress_denied_by.clone_from(&policies.egress_denied_by);
            flow.ingress_denied_by
                .clone_from(&policies.ingress_denied_by);
        }
        flow
    }
}

impl From<Flow> for StoredFlow {
    /// A flow whose shared parts nothing else shares (tests, relayed flows).
    fn from(mut flow: Flow) -> Self {
        let mut shared = SharedFlowParts::default();
        shared.take_from(&mut flow);
        Self { flow, shared }
    }
}

/// One stored event.
#[derive(Clone, Debug, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "events live behind an Arc in the ring; boxing the flow would add a second allocation"
)]
pub enum StoredEvent {
    /// A flow.
    Flow(StoredFlow),
    /// Events lost before they reached the store (kernel ring full, ...).
    Lost(LostEvent),
}

impl From<Flow> for StoredEvent {
    fn from(flow: Flow) -> Self {
        Self::Flow(flow.into())
    }
}

impl StoredEvent {
    /// The event as a GetFlowsResponse (Hubble's stream and file record);
    /// lost events are stamped with `node_name` and their last loss time.
    pub fn to_response(&self, node_name: &str) -> GetFlowsResponse {
        match self {
            Self::Flow(stored) => GetFlowsResponse {
                node_name: stored.node_name().to_string(),
                time: stored.flow.time,
                response_types: Some(ResponseTypes::Flow(stored.to_flow())),
            },
            Self::Lost(lost) => GetFlowsResponse {
                node_name: node_name.to_string(),
                time: lost.last,
                response_types: Some(ResponseTypes::LostEvents(*lost)),
            },
        }
    }
}

/// What a reader gets for a range request.
#[derive(Debug)]
pub struct Range {
    /// Events in order, starting at the requested sequence number or the
    /// oldest one still stored.
    pub events: Vec<Arc<StoredEvent>>,
    /// Events the reader asked for that were already overwritten.
    pub overwritten: u64,
    /// Sequence number to ask for next.
    pub next_seq: u64,
}

/// Figures for `ServerStatus`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StoreStatus {
    /// Events currently stored.
    pub num_flows: u64,
    /// Capacity.
    pub max_flows: u64,
    /// Events ever stored.
    pub seen_flows: u64,
    /// Time since the store was created.
    pub uptime: Duration,
    /// Flows per second over the last minute.
    pub flows_rate: f64,
}

#[derive(Debug)]
struct Ring {
    events: VecDeque<(Instant, Arc<StoredEvent>)>,
    /// Sequence number of `events[0]`.
    first_seq: u64,
}

/// The bounded event ring shared by the pipeline and the readers.
#[derive(Debug)]
pub struct FlowStore {
    ring: Mutex<Ring>,
    capacity: usize,
    started: Instant,
    /// Publishes the sequence number one past the newest event.
    newest: watch::Sender<u64>,
    /// Set when the agent shuts down, so following readers end their streams.
    closed: std::sync::atomic::AtomicBool,
}

impl FlowStore {
    /// A store holding at most `capacity` events (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            ring: Mutex::new(Ring {
                events: VecDeque::with_capacity(capacity),
                first_seq: 0,
            }),
            capacity,
            started: Instant::now(),
            newest: watch::channel(0).0,
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Tells every reader that no more events will come: followers finish
    /// their streams (so a graceful server shutdown does not wait forever).
    pub fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        self.newest.send_modify(|_| {});
    }

    /// Whether [`FlowStore::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding the lock cannot leave the ring inconsistent
        // (every mutation is a single push/pop), so poisoning is ignored.
        self.ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Capacity in events.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends events, overwriting the oldest when full, and wakes readers.
    /// Callers that build a large batch pass it as `Arc`s: a batch of
    /// thousands of flows by value is megabytes, allocated and paged in
    /// afresh each time. The overwritten events are freed after the lock is
    /// released.
    pub fn push_batch<E: Into<Arc<StoredEvent>>>(&self, batch: impl IntoIterator<Item = E>) {
        let now = Instant::now();
        let mut evicted = Vec::new();
        let next = {
            let mut ring = self.lock();
            for event in batch {
                if ring.events.len() == self.capacity
                    && let Some((_, old)) = ring.events.pop_front()
                {
                    evicted.push(old);
                    ring.first_seq += 1;
                }
                ring.events.push_back((now, event.into()));
            }
            ring.first_seq + ring.events.len() as u64
        };
        self.newest.send_replace(next);
        drop(evicted);
    }

    /// Sequence number one past the newest event.
    pub fn next_seq(&self) -> u64 {
        *self.newest.borrow()
    }

    /// A receiver that changes whenever events are appended.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.newest.subscribe()
    }

    /// Up to `max` events starting at `from_seq`.
    pub fn range(&self, from_seq: u64, max: usize) -> Range {
        let ring = self.lock();
        let overwritten = ring.first_seq.saturating_sub(from_seq);
        let start = from_seq.max(ring.first_seq);
        let skip = usize::try_from(start - ring.first_seq).unwrap_or(usize::MAX);
        let events: Vec<Arc<StoredEvent>> = ring
            .events
            .iter()
            .skip(skip)
            .take(max)
            .map(|(_, e)| Arc::clone(e))
            .collect();
        Range {
            next_seq: start + events.len() as u64,
            events,
            overwritten,
        }
    }

    /// Every stored event, oldest first, and the sequence number after them.
    pub fn snapshot(&self) -> (Vec<Arc<StoredEvent>>, u64) {
        let range = self.range(0, usize::MAX);
        (range.events, range.next_seq)
    }

    /// Figures for `ServerStatus`.
    pub fn status(&self) -> StoreStatus {
        let ring = self.lock();
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        let recent = ring
            .events
            .iter()
            .rev()
            .take_while(|(at, _)| now.duration_since(*at) <= minute)
            .filter(|(_, e)| matches!(**e, StoredEvent::Flow(_)))
            .count();
        let uptime = now.duration_since(self.started);
        let window = uptime.min(minute).as_secs_f64().max(1.0);
        StoreStatus {
            num_flows: ring.events.len() as u64,
            max_flows: self.capacity as u64,
            seen_flows: ring.first_seq + ring.events.len() as u64,
            uptime,
            flows_rate: recent as f64 / window,
        }
    }
}

/// A reader that follows the store from a sequence number on: the one loop
/// GetFlows streams, the recorder and the demo's printer share.
#[derive(Debug)]
pub struct Follower {
    store: Arc<FlowStore>,
    newest: watch::Receiver<u64>,
    next: u64,
}

impl Follower {
    /// Follows `store` from sequence number `next` (e.g. `store.next_seq()`
    /// for "new events only").
    pub fn new(store: Arc<FlowStore>, next: u64) -> Self {
        Self {
            newest: store.subscribe(),
            store,
            next,
        }
    }

    /// The next events (at most `max`), waiting until some are appended.
    /// `None` once the store is closed and everything appended was read.
    /// Cancel-safe: dropping the future loses nothing.
    pub async fn next_batch(&mut self, max: usize) -> Option<Range> {
        loop {
            if self.next < self.store.next_seq() {
                let range = self.store.range(self.next, max);
                self.next = range.next_seq;
                return Some(range);
            }
            if self.store.is_closed() || self.newest.changed().await.is_err() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(n: u32) -> StoredEvent {
        StoredEvent::from(Flow {
            policy_match_type: n,
            ..Default::default()
        })
    }

    fn numbers(range: &Range) -> Vec<u32> {
        range
            .events
            .iter()
            .map(|e| match &**e {
                StoredEvent::Flow(f) => f.without_shared().policy_match_type,
                StoredEvent::Lost(_) => u32::MAX,
            })
            .collect()
    }

    fn policy(name: &str) -> Policy {
        Policy {
            name: name.into(),
            namespace: "galactic-fhir".into(),
            labels: vec![format!("k8s:io.cilium.k8s.policy.name={name}")],
            revision: 0,
            kind: "CiliumNetworkPolicy".into(),
        }
    }

    /// The whole flow as the store hands it out, by copy and on the wire.
    fn whole_and_encoded(event: &StoredEvent) -> (Flow, Flow) {
        let StoredEvent::Flow(stored) = event else {
            panic!("a flow");
        };
        let encoded = holonet_proto::encoded::EncodedGetFlowsResponse::flow_with_shared(
            stored.without_shared(),
            &stored.encoding_parts(),
            stored.node_name(),
            None,
        );
        let decoded =
            <GetFlowsResponse as prost::Message>::decode(encoded.as_bytes()).expect("a response");
        let Some(ResponseTypes::Flow(on_the_wire)) = decoded.response_types else {
            panic!("a flow on the wire");
        };
        (stored.to_flow(), on_the_wire)
    }

    #[test]
    fn shared_parts_are_part_of_the_flow_handed_out() {
        let policies = Arc::new(FlowPolicies::new(
            Vec::new(),
            vec![policy("l7-visibility")],
            Vec::new(),
            Vec::new(),
        ));
        let endpoint = Arc::new(Endpoint {
            pod_name: "payer".into(),
            ..Default::default()
        });
        let ip = Arc::new(Ip {
            source: "10.244.3.30".into(),
            destination: "10.244.1.10".into(),
            ..Default::default()
        });
        let uuid = super::super::convert::UuidSource::new().next_flow_uuid();
        let event = StoredFlow::build_event(|message, shared| {
            message.summary = "ignored".into();
            shared.summary = Some(Arc::from("TCP Flags: SYN"));
            // Parts the message has itself give way to the shared ones,
            // or are moved out when nothing is shared in their place.
            message.egress_denied_by = vec![policy("ignored")];
            message.node_name = "kind-worker".into();
            message.holonet_destination_process = Some(HolonetProcess {
                pid: 7,
                command: "iris".into(),
            });
            message.uuid = "ignored".into();
            shared.uuid = Some(uuid);
            shared.addresses = Some(Arc::new(AddressParts::new(
                Some((*ip).clone()),
                Some(Arc::clone(&endpoint)),
                None,
            )));
            shared.policies = Some(Arc::clone(&policies));
        });
        let (whole, on_the_wire) = whole_and_encoded(&event);
        assert_eq!(whole, on_the_wire);
        assert_eq!(whole.summary, "TCP Flags: SYN");
        assert_eq!(whole.uuid, uuid.as_str());
        assert_eq!(whole.uuid.len(), 36);
        assert_eq!(whole.source.as_ref(), Some(&*endpoint));
        assert_eq!(whole.ip.as_ref(), Some(&*ip));
        assert_eq!(whole.node_name, "kind-worker");
        assert_eq!(
            whole.holonet_destination_process.map(|p| p.command),
            Some("iris".to_string())
        );
        assert_eq!(whole.ingress_allowed_by, [policy("l7-visibility")]);
        assert!(whole.egress_denied_by.is_empty());
        let StoredEvent::Flow(stored) = &*event else {
            panic!("a flow");
        };
        let bare = stored.without_shared();
        assert!(bare.ingress_allowed_by.is_empty() && bare.egress_denied_by.is_empty());
        assert!(bare.ip.is_none() && bare.node_name.is_empty() && bare.uuid.is_empty());
        assert!(bare.summary.is_empty());
        assert!(bare.holonet_destination_process.is_none());
        assert_eq!(stored.node_name(), "kind-worker");
        assert!(Arc::ptr_eq(
            stored.shared().policies.as_ref().expect("shared"),
            &policies
        ));
        assert_eq!(
            event.to_response("other").node_name,
            "kind-worker",
            "a flow's response names the node that saw it"
        );
    }

    #[test]
    fn a_flows_own_policies_are_kept_when_it_is_stored() {
        let event = StoredEvent::from(Flow {
            egress_denied_by: vec![policy("deny-payer")],
            ingress_allowed_by: vec![policy("l7-visibility")],
            ..Default::default()
        });
        let (whole, on_the_wire) = whole_and_encoded(&event);
        assert_eq!(whole, on_the_wire);
        assert_eq!(whole.egress_denied_by, [policy("deny-payer")]);
        assert_eq!(whole.ingress_allowed_by, [policy("l7-visibility")]);
    }

    #[test]
    fn keeps_the_newest_events_up_to_capacity() {
        let store = FlowStore::new(3);
        store.push_batch((1..=5).map(flow));
        let all = store.range(0, usize::MAX);
        assert_eq!(numbers(&all), [3, 4, 5]);
        assert_eq!(all.overwritten, 2);
        assert_eq!(all.next_seq, 5);
        assert_eq!(store.next_seq(), 5);
        let status = store.status();
        assert_eq!(
            (status.num_flows, status.max_flows, status.seen_flows),
            (3, 3, 5)
        );
    }

    #[test]
    fn a_reader_resumes_where_it_stopped() {
        let store = FlowStore::new(10);
        store.push_batch((1..=4).map(flow));
        let first = store.range(0, 2);
        assert_eq!(numbers(&first), [1, 2]);
        let second = store.range(first.next_seq, 10);
        assert_eq!(numbers(&second), [3, 4]);
        assert_eq!(second.overwritten, 0);
        let empty = store.range(second.next_seq, 10);
        assert!(empty.events.is_empty());
        assert_eq!(empty.next_seq, 4);
    }

    #[test]
    fn a_reader_that_fell_behind_learns_how_much_it_lost() {
        let store = FlowStore::new(2);
        store.push_batch((1..=2).map(flow));
        let seen = store.range(0, 10);
        store.push_batch((3..=7).map(flow));
        let after = store.range(seen.next_seq, 10);
        assert_eq!(after.overwritten, 3);
        assert_eq!(numbers(&after), [6, 7]);
    }

    #[tokio::test]
    async fn readers_are_woken_by_new_events() {
        let store = Arc::new(FlowStore::new(8));
        let mut rx = store.subscribe();
        let writer = Arc::clone(&store);
        tokio::spawn(async move { writer.push_batch([flow(1)]) });
        rx.changed().await.expect("sender alive");
        assert_eq!(*rx.borrow(), 1);
    }

    #[tokio::test]
    async fn closing_wakes_readers_and_says_so() {
        let store = Arc::new(FlowStore::new(8));
        let mut rx = store.subscribe();
        let closer = Arc::clone(&store);
        tokio::spawn(async move { closer.close() });
        rx.changed().await.expect("sender alive");
        assert!(store.is_closed());
    }

    #[tokio::test]
    async fn a_follower_reads_new_events_then_ends_after_close() {
        let store = Arc::new(FlowStore::new(8));
        store.push_batch([flow(1)]);
        let mut follower = Follower::new(Arc::clone(&store), store.next_seq());
        let writer = Arc::clone(&store);
        tokio::spawn(async move {
            writer.push_batch([flow(2), flow(3)]);
            writer.close();
        });
        let mut seen = Vec::new();
        while let Some(range) = follower.next_batch(1).await {
            seen.extend(numbers(&range));
        }
        assert_eq!(seen, [2, 3], "only new events, all of them, then the end");
    }

    #[test]
    fn the_rate_counts_flows_of_the_last_minute() {
        let store = FlowStore::new(100);
        store.push_batch((0..30).map(flow));
        let status = store.status();
        // Uptime is under a second, so the window is one second.
        assert!(
            (status.flows_rate - 30.0).abs() < f64::EPSILON,
            "{status:?}"
        );
    }
}
