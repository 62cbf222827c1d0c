//! A `GetFlowsResponse` already in protobuf wire format.
//!
//! tonic's codec encodes the messages a stream yields, which means an owned
//! message per response: a server keeping flows in a store would clone each
//! one (a dozen strings and label lists) only to encode and drop the copy.
//! [`EncodedGetFlowsResponse`] is encoded straight from a borrowed flow and
//! written out as it is. On the wire it is an ordinary `GetFlowsResponse`;
//! clients decode it with the generated type.

use bytes::{BufMut, Bytes};
use prost::{
    DecodeError, Message,
    encoding::{
        DecodeContext, WireType, encode_key, encode_varint, encoded_len_varint, key_len, message,
        skip_field,
    },
};

use crate::{
    flow::{Endpoint, Flow, HolonetProcess, Ip, LostEvent, NetworkInterface, Policy},
    observer::{GetFlowsResponse, get_flows_response::ResponseTypes},
    wkt::Timestamp,
};

/// Field numbers of `observer.GetFlowsResponse`.
const FLOW: u32 = 1;
const LOST_EVENTS: u32 = 3;
const NODE_NAME: u32 = 1000;
const TIME: u32 = 1001;
/// Field numbers of `flow.Flow`'s shareable parts.
const FLOW_IP: u32 = 5;
const FLOW_SOURCE: u32 = 8;
const FLOW_DESTINATION: u32 = 9;
const FLOW_NODE_NAME: u32 = 11;
const FLOW_INTERFACE: u32 = 28;
const FLOW_UUID: u32 = 34;
const FLOW_SUMMARY: u32 = 100_000;
const FLOW_SOURCE_PROCESS: u32 = 200_001;
const FLOW_DESTINATION_PROCESS: u32 = 200_002;

/// Field numbers of `flow.Flow`'s policy lists.
const FLOW_EGRESS_ALLOWED_BY: u32 = 21001;
const FLOW_INGRESS_ALLOWED_BY: u32 = 21002;
const FLOW_EGRESS_DENIED_BY: u32 = 21004;
const FLOW_INGRESS_DENIED_BY: u32 = 21005;

/// The parts of a flow a store keeps apart from it, shared by many flows:
/// every flow of a pod names the same endpoint, every flow between two
/// addresses the same `IP`, every flow of a connection kind the same
/// policies. See [`EncodedGetFlowsResponse::flow_with_shared`]. `None` and
/// empty lists leave the flow's own field as it is.
#[derive(Clone, Copy, Debug, Default)]
pub struct SharedParts<'a> {
    /// `uuid` (kept apart so that it needs no allocation of its own).
    pub uuid: Option<&'a str>,
    /// `Summary`.
    pub summary: Option<&'a str>,
    /// `IP`.
    pub ip: Option<&'a Ip>,
    /// `source`.
    pub source: Option<&'a Endpoint>,
    /// `destination`.
    pub destination: Option<&'a Endpoint>,
    /// `node_name`.
    pub node_name: Option<&'a str>,
    /// `interface`.
    pub interface: Option<&'a NetworkInterface>,
    /// `holonet_source_process`.
    pub source_process: Option<&'a HolonetProcess>,
    /// `holonet_destination_process`.
    pub destination_process: Option<&'a HolonetProcess>,
    /// `egress_allowed_by`.
    pub egress_allowed_by: &'a [Policy],
    /// `ingress_allowed_by`.
    pub ingress_allowed_by: &'a [Policy],
    /// `egress_denied_by`.
    pub egress_denied_by: &'a [Policy],
    /// `ingress_denied_by`.
    pub ingress_denied_by: &'a [Policy],
    /// Fields already in wire format ([`encode_parts`]), written as they
    /// are: parts encoded once for all the flows that share them. The
    /// fields they hold must not be given above as well.
    pub wire: [&'a [u8]; 2],
}

/// The wire format of `parts`' fields, to be given as
/// [`SharedParts::wire`] of the flows that share them.
pub fn encode_parts(parts: &SharedParts<'_>) -> Vec<u8> {
    let mut buf = Vec::with_capacity(parts.encoded_len());
    parts.encode(&mut buf);
    buf
}

impl<'a> SharedParts<'a> {
    /// The encoded length of the shared fields.
    fn encoded_len(&self) -> usize {
        len_of(FLOW_IP, self.ip)
            + len_of(FLOW_SOURCE, self.source)
            + len_of(FLOW_DESTINATION, self.destination)
            + len_of(FLOW_INTERFACE, self.interface)
            + len_of(FLOW_SOURCE_PROCESS, self.source_process)
            + len_of(FLOW_DESTINATION_PROCESS, self.destination_process)
            + self
                .strings()
                .iter()
                .filter_map(|(tag, text)| text.map(|t| string_len(*tag, t)))
                .sum::<usize>()
            + self
                .policies()
                .iter()
                .map(|(tag, list)| message::encoded_len_repeated(*tag, list))
                .sum::<usize>()
            + self.wire.iter().map(|w| w.len()).sum::<usize>()
    }

    /// Writes the shared fields (after the flow's own).
    fn encode(&self, buf: &mut Vec<u8>) {
        put(FLOW_IP, self.ip, buf);
        put(FLOW_SOURCE, self.source, buf);
        put(FLOW_DESTINATION, self.destination, buf);
        put(FLOW_INTERFACE, self.interface, buf);
        put(FLOW_SOURCE_PROCESS, self.source_process, buf);
        put(FLOW_DESTINATION_PROCESS, self.destination_process, buf);
        for (tag, text) in self.strings() {
            if let Some(text) = text {
                encode_key(tag, WireType::LengthDelimited, buf);
                encode_varint(text.len() as u64, buf);
                buf.put_slice(text.as_bytes());
            }
        }
        for (tag, list) in self.policies() {
            for policy in list {
                message::encode(tag, policy, buf);
            }
        }
        for wire in self.wire {
            buf.put_slice(wire);
        }
    }

    /// The string fields to write (empty ones are not written, as prost
    /// leaves out empty strings).
    fn strings(&self) -> [(u32, Option<&'a str>); 3] {
        [
            (FLOW_NODE_NAME, non_empty(self.node_name)),
            (FLOW_UUID, non_empty(self.uuid)),
            (FLOW_SUMMARY, non_empty(self.summary)),
        ]
    }

    fn policies(&self) -> [(u32, &[Policy]); 4] {
        [
            (FLOW_EGRESS_ALLOWED_BY, self.egress_allowed_by),
            (FLOW_INGRESS_ALLOWED_BY, self.ingress_allowed_by),
            (FLOW_EGRESS_DENIED_BY, self.egress_denied_by),
            (FLOW_INGRESS_DENIED_BY, self.ingress_denied_by),
        ]
    }
}

fn non_empty(text: Option<&str>) -> Option<&str> {
    text.filter(|t| !t.is_empty())
}

fn string_len(tag: u32, text: &str) -> usize {
    key_len(tag) + encoded_len_varint(text.len() as u64) + text.len()
}

fn len_of<M: Message>(tag: u32, part: Option<&M>) -> usize {
    part.map_or(0, |m| message::encoded_len(tag, m))
}

fn put<M: Message>(tag: u32, part: Option<&M>, buf: &mut Vec<u8>) {
    if let Some(m) = part {
        message::encode(tag, m, buf);
    }
}

/// A `GetFlowsResponse` in wire format. Encode-only: decoding one skips
/// every field (servers never decode their responses; clients use
/// [`GetFlowsResponse`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncodedGetFlowsResponse {
    bytes: Bytes,
}

impl EncodedGetFlowsResponse {
    /// The response carrying `flow`, as `GetFlowsResponse { flow, node_name,
    /// time }` would encode, without copying the flow.
    pub fn flow(flow: &Flow, node_name: &str, time: Option<&Timestamp>) -> Self {
        let len = flow.encoded_len();
        let mut buf = Vec::with_capacity(len + node_name.len() + 32);
        encode_key(FLOW, WireType::LengthDelimited, &mut buf);
        encode_varint(len as u64, &mut buf);
        flow.encode_raw(&mut buf);
        Self::finish(buf, node_name, time)
    }

    /// The response carrying `flow` with the parts in `shared` kept apart
    /// from it (`flow`'s own endpoints and policy lists are ignored), as
    /// `GetFlowsResponse` would carry the whole flow. The shared fields are
    /// written after the flow's other fields rather than in field-number
    /// order: the same message to any protobuf decoder, not the same bytes.
    pub fn flow_with_shared(
        flow: &Flow,
        shared: &SharedParts<'_>,
        node_name: &str,
        time: Option<&Timestamp>,
    ) -> Self {
        debug_assert!(shared.ip.is_none() || flow.ip.is_none());
        debug_assert!(flow.source.is_none() && flow.destination.is_none());
        debug_assert!(non_empty(shared.node_name).is_none() || flow.node_name.is_empty());
        debug_assert!(non_empty(shared.uuid).is_none() || flow.uuid.is_empty());
        debug_assert!(non_empty(shared.summary).is_none() || flow.summary.is_empty());
        debug_assert!(shared.interface.is_none() || flow.interface.is_none());
        debug_assert!(flow.egress_allowed_by.is_empty() && flow.ingress_allowed_by.is_empty());
        debug_assert!(flow.egress_denied_by.is_empty() && flow.ingress_denied_by.is_empty());
        let len = flow.encoded_len() + shared.encoded_len();
        let mut buf = Vec::with_capacity(len + node_name.len() + 32);
        encode_key(FLOW, WireType::LengthDelimited, &mut buf);
        encode_varint(len as u64, &mut buf);
        flow.encode_raw(&mut buf);
        shared.encode(&mut buf);
        Self::finish(buf, node_name, time)
    }

    /// The response carrying a lost-events record.
    pub fn lost_events(lost: &LostEvent, node_name: &str, time: Option<&Timestamp>) -> Self {
        let mut buf = Vec::with_capacity(64 + node_name.len());
        message::encode(LOST_EVENTS, lost, &mut buf);
        Self::finish(buf, node_name, time)
    }

    fn finish(mut buf: Vec<u8>, node_name: &str, time: Option<&Timestamp>) -> Self {
        if !node_name.is_empty() {
            encode_key(NODE_NAME, WireType::LengthDelimited, &mut buf);
            encode_varint(node_name.len() as u64, &mut buf);
            buf.put_slice(node_name.as_bytes());
        }
        if let Some(time) = time {
            message::encode(TIME, time, &mut buf);
        }
        Self { bytes: buf.into() }
    }

    /// Any response, encoded (for responses that are built as messages,
    /// such as those a relay forwards).
    pub fn from_message(response: &GetFlowsResponse) -> Self {
        match &response.response_types {
            Some(ResponseTypes::Flow(flow)) => {
                Self::flow(flow, &response.node_name, response.time.as_ref())
            }
            _ => Self {
                bytes: response.encode_to_vec().into(),
            },
        }
    }

    /// The wire bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Message for EncodedGetFlowsResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.bytes);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl bytes::Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    fn clear(&mut self) {
        self.bytes = Bytes::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{Endpoint, Verdict};

    fn sample() -> GetFlowsResponse {
        GetFlowsResponse {
            node_name: "kind-worker".into(),
            time: Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
            response_types: Some(ResponseTypes::Flow(Flow {
                verdict: Verdict::Dropped.into(),
                node_name: "kind-worker".into(),
                source: Some(Endpoint {
                    namespace: "galactic-fhir".into(),
                    labels: vec!["k8s:org=payer".into()],
                    ..Default::default()
                }),
                summary: "TCP Flags: SYN".into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn the_bytes_are_those_of_the_generated_message() {
        let response = sample();
        let encoded = EncodedGetFlowsResponse::from_message(&response);
        assert_eq!(encoded.as_bytes(), response.encode_to_vec().as_slice());
        assert_eq!(encoded.encode_to_vec(), response.encode_to_vec());
        assert_eq!(
            GetFlowsResponse::decode(encoded.as_bytes()).unwrap(),
            response
        );
    }

    #[test]
    fn shared_parts_kept_apart_decode_into_the_same_flow() {
        let response = sample();
        let Some(ResponseTypes::Flow(whole)) = &response.response_types else {
            panic!("a flow");
        };
        let source = Endpoint {
            id: 7,
            identity: 4242,
            pod_name: "payer".into(),
            ..whole.source.clone().unwrap()
        };
        let destination = Endpoint {
            namespace: "kube-system".into(),
            workloads: vec![crate::flow::Workload {
                name: "coredns".into(),
                kind: "Deployment".into(),
            }],
            ..Default::default()
        };
        let without = Flow {
            source: None,
            destination: None,
            node_name: String::new(),
            summary: String::new(),
            ..whole.clone()
        };
        let ip = Ip {
            source: "10.244.3.30".into(),
            destination: "10.244.1.10".into(),
            ip_version: 1,
            ..Default::default()
        };
        let interface = NetworkInterface {
            index: 7,
            name: "lxc-payer".into(),
        };
        let server = HolonetProcess {
            pid: 4242,
            command: "iris".into(),
        };
        let allowed = vec![Policy {
            name: "l7-visibility".into(),
            namespace: "galactic-fhir".into(),
            labels: vec!["k8s:io.cilium.k8s.policy.name=l7-visibility".into()],
            revision: 0,
            kind: "CiliumNetworkPolicy".into(),
        }];
        let denied = vec![
            Policy {
                name: "deny-payer".into(),
                ..allowed[0].clone()
            },
            Policy {
                name: "deny-all".into(),
                ..Default::default()
            },
        ];
        let encoded = EncodedGetFlowsResponse::flow_with_shared(
            &without,
            &SharedParts {
                uuid: Some("3f1c9a52-77d4-4b0e-9a61-0c2f5e8d7b14"),
                summary: Some(&whole.summary),
                ip: Some(&ip),
                source: Some(&source),
                destination: Some(&destination),
                node_name: Some(&whole.node_name),
                interface: Some(&interface),
                source_process: None,
                destination_process: Some(&server),
                egress_allowed_by: &allowed,
                ingress_allowed_by: &allowed,
                egress_denied_by: &[],
                ingress_denied_by: &denied,
                wire: [&[], &[]],
            },
            &response.node_name,
            response.time.as_ref(),
        );
        let expected = GetFlowsResponse {
            response_types: Some(ResponseTypes::Flow(Flow {
                uuid: "3f1c9a52-77d4-4b0e-9a61-0c2f5e8d7b14".into(),
                summary: whole.summary.clone(),
                ip: Some(ip),
                source: Some(source),
                destination: Some(destination),
                node_name: whole.node_name.clone(),
                interface: Some(interface),
                holonet_destination_process: Some(server),
                egress_allowed_by: allowed.clone(),
                ingress_allowed_by: allowed,
                ingress_denied_by: denied,
                ..without.clone()
            })),
            ..response.clone()
        };
        assert_eq!(
            GetFlowsResponse::decode(encoded.as_bytes()).unwrap(),
            expected
        );
        assert_eq!(encoded.encoded_len(), expected.encoded_len());
        // Without shared parts it is byte for byte the generated encoding.
        let bare = EncodedGetFlowsResponse::flow_with_shared(
            &without,
            &SharedParts::default(),
            &response.node_name,
            response.time.as_ref(),
        );
        let expected = GetFlowsResponse {
            response_types: Some(ResponseTypes::Flow(without)),
            ..response.clone()
        };
        assert_eq!(bare.as_bytes(), expected.encode_to_vec().as_slice());
        // Parts given in wire format decode the same as parts given whole.
        let endpoints = encode_parts(&SharedParts {
            source: whole.source.as_ref(),
            ..SharedParts::default()
        });
        let node = encode_parts(&SharedParts {
            node_name: Some(&whole.node_name),
            ..SharedParts::default()
        });
        // The flow with its source and node kept apart.
        let apart = Flow {
            source: None,
            destination: None,
            node_name: String::new(),
            ..whole.clone()
        };
        let wired = EncodedGetFlowsResponse::flow_with_shared(
            &apart,
            &SharedParts {
                wire: [&endpoints, &node],
                ..SharedParts::default()
            },
            &response.node_name,
            response.time.as_ref(),
        );
        assert_eq!(
            GetFlowsResponse::decode(wired.as_bytes()).unwrap(),
            response
        );
        // A flow's own parts, as shared parts, decode into the same flow.
        let own = EncodedGetFlowsResponse::flow_with_shared(
            &apart,
            &SharedParts {
                source: whole.source.as_ref(),
                node_name: Some(&whole.node_name),
                ..SharedParts::default()
            },
            &response.node_name,
            response.time.as_ref(),
        );
        assert_eq!(GetFlowsResponse::decode(own.as_bytes()).unwrap(), response);
    }

    #[test]
    fn lost_events_and_empty_fields_encode_like_prost() {
        for response in [
            GetFlowsResponse {
                node_name: String::new(),
                time: None,
                response_types: Some(ResponseTypes::LostEvents(LostEvent {
                    num_events_lost: 7,
                    ..Default::default()
                })),
            },
            GetFlowsResponse::default(),
        ] {
            let encoded = match &response.response_types {
                Some(ResponseTypes::LostEvents(lost)) => EncodedGetFlowsResponse::lost_events(
                    lost,
                    &response.node_name,
                    response.time.as_ref(),
                ),
                _ => EncodedGetFlowsResponse::from_message(&response),
            };
            assert_eq!(encoded.as_bytes(), response.encode_to_vec().as_slice());
        }
    }
}
