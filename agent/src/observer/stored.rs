//! A flow as the store keeps it: the Hubble message with the parts many
//! flows have in common kept apart and shared ([`StoredFlow`]), and the
//! events the ring holds ([`StoredEvent`]).

use std::sync::Arc;

use holonet_proto::{
    encoded::{SharedParts, encode_parts},
    flow::{Endpoint, Flow, HolonetProcess, Ip, LostEvent, NetworkInterface, Policy},
    observer::{GetFlowsResponse, get_flows_response::ResponseTypes},
};

use super::convert::FlowUuid;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
