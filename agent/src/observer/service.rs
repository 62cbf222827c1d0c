//! The `observer.Observer` gRPC service over the flow store.

use std::{collections::BTreeSet, pin::Pin, sync::Arc};

use holonet_proto::{
    encoded::EncodedGetFlowsResponse,
    observer::{
        GetFlowsRequest, GetNamespacesRequest, GetNamespacesResponse, GetNodesRequest,
        GetNodesResponse, Namespace, Node, ServerStatusRequest, ServerStatusResponse,
    },
    observer_encoded::observer_server::Observer,
    pbjson_types::UInt32Value,
    relay::NodeState,
};
use tokio::sync::mpsc;
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use super::{
    query::FlowQuery,
    store::{FlowStore, StoredEvent},
};

/// Responses buffered per GetFlows stream before the producer waits for
/// the client (only that stream's producer waits, never the agent).
const STREAM_BUFFER: usize = 256;

/// holonet's version, reported in ServerStatus and GetNodes.
pub const VERSION: &str = concat!("holonet ", env!("CARGO_PKG_VERSION"));

/// The Observer service of one agent.
#[derive(Clone, Debug)]
pub struct ObserverService {
    store: Arc<FlowStore>,
    node_name: String,
}

impl ObserverService {
    /// Serves flows from `store` as node `node_name`.
    pub fn new(store: Arc<FlowStore>, node_name: impl Into<String>) -> Self {
        Self {
            store,
            node_name: node_name.into(),
        }
    }
}

type FlowStream = Pin<Box<dyn Stream<Item = Result<EncodedGetFlowsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Observer for ObserverService {
    type GetFlowsStream = FlowStream;

    async fn get_flows(
        &self,
        request: Request<GetFlowsRequest>,
    ) -> Result<Response<Self::GetFlowsStream>, Status> {
        let query = FlowQuery::new(request.get_ref(), &self.node_name)?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(query.run(Arc::clone(&self.store), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_nodes(
        &self,
        _request: Request<GetNodesRequest>,
    ) -> Result<Response<GetNodesResponse>, Status> {
        let status = self.store.status();
        Ok(Response::new(GetNodesResponse {
            nodes: vec![Node {
                name: self.node_name.clone(),
                version: VERSION.to_string(),
                state: NodeState::NodeConnected.into(),
                uptime_ns: u64::try_from(status.uptime.as_nanos()).unwrap_or(u64::MAX),
                num_flows: status.num_flows,
                max_flows: status.max_flows,
                seen_flows: status.seen_flows,
                ..Default::default()
            }],
        }))
    }

    async fn get_namespaces(
        &self,
        _request: Request<GetNamespacesRequest>,
    ) -> Result<Response<GetNamespacesResponse>, Status> {
        let (events, _) = self.store.snapshot();
        let mut seen = BTreeSet::new();
        for event in &events {
            if let StoredEvent::Flow(flow) = &**event {
                for ep in [flow.source(), flow.destination()].into_iter().flatten() {
                    if !ep.namespace.is_empty() {
                        seen.insert((ep.cluster_name.clone(), ep.namespace.clone()));
                    }
                }
            }
        }
        Ok(Response::new(GetNamespacesResponse {
            namespaces: seen
                .into_iter()
                .map(|(cluster, namespace)| Namespace { cluster, namespace })
                .collect(),
        }))
    }

    async fn server_status(
        &self,
        _request: Request<ServerStatusRequest>,
    ) -> Result<Response<ServerStatusResponse>, Status> {
        let status = self.store.status();
        Ok(Response::new(ServerStatusResponse {
            num_flows: status.num_flows,
            max_flows: status.max_flows,
            seen_flows: status.seen_flows,
            uptime_ns: u64::try_from(status.uptime.as_nanos()).unwrap_or(u64::MAX),
            version: VERSION.to_string(),
            flows_rate: status.flows_rate,
            // An agent is one node; leaving these unset is what Hubble's
            // agent does (the CLI then prints no node line).
            num_connected_nodes: None::<UInt32Value>,
            num_unavailable_nodes: None,
            unavailable_nodes: Vec::new(),
        }))
    }
}
