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
    encoding::{DecodeContext, WireType, encode_key, encode_varint, message, skip_field},
};

use crate::{
    flow::{Endpoint, Flow, LostEvent},
    observer::{GetFlowsResponse, get_flows_response::ResponseTypes},
    wkt::Timestamp,
};

/// Field numbers of `observer.GetFlowsResponse`.
const FLOW: u32 = 1;
const LOST_EVENTS: u32 = 3;
const NODE_NAME: u32 = 1000;
const TIME: u32 = 1001;
/// Field numbers of `flow.Flow`'s endpoints.
const FLOW_SOURCE: u32 = 8;
const FLOW_DESTINATION: u32 = 9;

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

    /// The response carrying `flow` with the endpoints `source` and
    /// `destination` kept apart from it (`flow`'s own are ignored), as
    /// `GetFlowsResponse` would carry the whole flow. The endpoint fields
    /// are written after the flow's other fields rather than in field-number
    /// order: the same message to any protobuf decoder, not the same bytes.
    pub fn flow_with_endpoints(
        flow: &Flow,
        source: Option<&Endpoint>,
        destination: Option<&Endpoint>,
        node_name: &str,
        time: Option<&Timestamp>,
    ) -> Self {
        debug_assert!(flow.source.is_none() && flow.destination.is_none());
        let endpoint_len =
            |tag, e: Option<&Endpoint>| e.map_or(0, |e| message::encoded_len(tag, e));
        let len = flow.encoded_len()
            + endpoint_len(FLOW_SOURCE, source)
            + endpoint_len(FLOW_DESTINATION, destination);
        let mut buf = Vec::with_capacity(len + node_name.len() + 32);
        encode_key(FLOW, WireType::LengthDelimited, &mut buf);
        encode_varint(len as u64, &mut buf);
        flow.encode_raw(&mut buf);
        if let Some(source) = source {
            message::encode(FLOW_SOURCE, source, &mut buf);
        }
        if let Some(destination) = destination {
            message::encode(FLOW_DESTINATION, destination, &mut buf);
        }
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
    fn endpoints_kept_apart_decode_into_the_same_flow() {
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
            ..whole.clone()
        };
        let encoded = EncodedGetFlowsResponse::flow_with_endpoints(
            &without,
            Some(&source),
            Some(&destination),
            &response.node_name,
            response.time.as_ref(),
        );
        let expected = GetFlowsResponse {
            response_types: Some(ResponseTypes::Flow(Flow {
                source: Some(source),
                destination: Some(destination),
                ..without.clone()
            })),
            ..response.clone()
        };
        assert_eq!(
            GetFlowsResponse::decode(encoded.as_bytes()).unwrap(),
            expected
        );
        assert_eq!(encoded.encoded_len(), expected.encoded_len());
        // Without endpoints it is byte for byte the generated encoding.
        let bare = EncodedGetFlowsResponse::flow_with_endpoints(
            &without,
            None,
            None,
            &response.node_name,
            response.time.as_ref(),
        );
        let expected = GetFlowsResponse {
            response_types: Some(ResponseTypes::Flow(without)),
            ..response
        };
        assert_eq!(bare.as_bytes(), expected.encode_to_vec().as_slice());
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
