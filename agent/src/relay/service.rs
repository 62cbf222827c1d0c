//! The relay's `observer.Observer`: the same API as an agent, answered by
//! asking every peer and merging.

use std::{
    collections::BTreeSet,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use holonet_proto::{
    encoded::EncodedGetFlowsResponse,
    observer::{
        GetFlowsRequest, GetFlowsResponse, GetNamespacesRequest, GetNamespacesResponse,
        GetNodesRequest, GetNodesResponse, Namespace, Node, ServerStatusRequest,
        ServerStatusResponse, Tls, get_flows_response::ResponseTypes,
    },
    observer_encoded::observer_server::Observer,
    pbjson_types::UInt32Value,
    relay::{NodeState, NodeStatusEvent},
    wkt::Timestamp,
};
use tokio::{sync::mpsc, task::JoinSet};
use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use super::{
    merge::{KWayMerge, ReorderWindow, stamp_node_name, time_key},
    peers::{CALL_TIMEOUT, CONNECT_TIMEOUT, Peer, PeerSet, PeerState, status_reason},
};
use crate::observer::{query::FlowQuery, service::VERSION};

/// Responses buffered towards the client per GetFlows stream.
const STREAM_BUFFER: usize = 256;

/// How the relay merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayOptions {
    /// Follow mode: how long each flow is held to let slower peers' older
    /// flows overtake it (see [`super::merge::ReorderWindow`]).
    pub sort_window: Duration,
    /// Follow mode: the most flows held at once for sorting.
    pub sort_buffer: usize,
    /// Responses buffered per peer and stream before the relay stops
    /// reading that peer (backpressure instead of unbounded memory).
    pub peer_buffer: usize,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            sort_window: Duration::from_secs(1),
            sort_buffer: 4096,
            peer_buffer: 128,
        }
    }
}

/// The relay's Observer service over a set of peers.
#[derive(Clone, Debug)]
pub struct RelayService {
    peers: Arc<PeerSet>,
    options: RelayOptions,
    started: Instant,
}

impl RelayService {
    /// Serves the merged flows of `peers`.
    pub fn new(peers: Arc<PeerSet>, options: RelayOptions) -> Self {
        Self {
            peers,
            options,
            started: Instant::now(),
        }
    }
}

type FlowStream = Pin<Box<dyn Stream<Item = Result<EncodedGetFlowsResponse, Status>> + Send>>;
type Out = mpsc::Sender<Result<GetFlowsResponse, Status>>;

fn node_status(state: NodeState, names: Vec<String>, message: String) -> GetFlowsResponse {
    GetFlowsResponse {
        node_name: String::new(),
        time: Some(chrono::Utc::now().into()),
        response_types: Some(ResponseTypes::NodeStatus(NodeStatusEvent {
            state_change: state.into(),
            node_names: names,
            message,
        })),
    }
}

fn now_nanos() -> i128 {
    Timestamp::from(chrono::Utc::now()).as_nanos()
}

fn ts(nanos: i128) -> Timestamp {
    let seconds = i64::try_from(nanos.div_euclid(1_000_000_000)).unwrap_or(i64::MAX);
    let nanos = i32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or(0);
    Timestamp { seconds, nanos }
}

/// What one peer's pump hands to the merge.
enum PeerMsg {
    /// A response from the peer, node name stamped.
    Response(GetFlowsResponse),
    /// Relay news about the peer (sent to the client at once).
    Status(GetFlowsResponse),
}

#[tonic::async_trait]
impl Observer for RelayService {
    type GetFlowsStream = FlowStream;

    async fn get_flows(
        &self,
        request: Request<GetFlowsRequest>,
    ) -> Result<Response<Self::GetFlowsStream>, Status> {
        let req = request.into_inner();
        // The same validation as an agent's, so a bad request fails once,
        // here, instead of once per peer.
        FlowQuery::new(&req, "relay")?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let peers = Arc::clone(&self.peers);
        if req.follow {
            tokio::spawn(follow(peers, req, self.options, tx));
        } else {
            tokio::spawn(history(peers, req, self.options, tx));
        }
        let encoded = ReceiverStream::new(rx)
            .map(|response| response.map(|r| EncodedGetFlowsResponse::from_message(&r)));
        Ok(Response::new(Box::pin(encoded)))
    }

    async fn get_nodes(
        &self,
        _request: Request<GetNodesRequest>,
    ) -> Result<Response<GetNodesResponse>, Status> {
        let nodes = ask_all(&self.peers, |peer, status| {
            let mut node = Node {
                name: peer.name(),
                address: peer.addr().to_string(),
                tls: Some(Tls {
                    enabled: peer.tls(),
                    server_name: String::new(),
                }),
                ..Default::default()
            };
            match status {
                Ok(s) => {
                    node.state = NodeState::NodeConnected.into();
                    node.version = s.version;
                    node.uptime_ns = s.uptime_ns;
                    node.num_flows = s.num_flows;
                    node.max_flows = s.max_flows;
                    node.seen_flows = s.seen_flows;
                }
                Err(_) => node.state = NodeState::NodeUnavailable.into(),
            }
            node
        })
        .await;
        Ok(Response::new(GetNodesResponse { nodes }))
    }

    async fn get_namespaces(
        &self,
        _request: Request<GetNamespacesRequest>,
    ) -> Result<Response<GetNamespacesResponse>, Status> {
        let mut calls = JoinSet::new();
        for peer in self.peers.peers() {
            let mut client = peer.client();
            calls.spawn(async move {
                tokio::time::timeout(CALL_TIMEOUT, client.get_namespaces(GetNamespacesRequest {}))
                    .await
            });
        }
        let mut seen = BTreeSet::new();
        while let Some(done) = calls.join_next().await {
            if let Ok(Ok(Ok(answer))) = done {
                for ns in answer.into_inner().namespaces {
                    seen.insert((ns.cluster, ns.namespace));
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
        let answers = ask_all(&self.peers, |peer, status| (peer.name(), status)).await;
        let mut total = ServerStatusResponse {
            uptime_ns: u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX),
            version: VERSION.to_string(),
            ..Default::default()
        };
        let mut connected = 0u32;
        for (name, status) in answers {
            match status {
                Ok(s) => {
                    connected += 1;
                    total.num_flows += s.num_flows;
                    total.max_flows += s.max_flows;
                    total.seen_flows += s.seen_flows;
                    total.flows_rate += s.flows_rate;
                }
                Err(_) => total.unavailable_nodes.push(name),
            }
        }
        total.num_connected_nodes = Some(UInt32Value { value: connected });
        total.num_unavailable_nodes = Some(UInt32Value {
            value: u32::try_from(total.unavailable_nodes.len()).unwrap_or(u32::MAX),
        });
        Ok(Response::new(total))
    }
}

/// Asks every peer for its status at once and maps each answer, in peer
/// order. A peer that fails is reported to its monitor.
async fn ask_all<T: Send + 'static>(
    peers: &PeerSet,
    map: impl Fn(&Peer, Result<ServerStatusResponse, String>) -> T,
) -> Vec<T> {
    let mut calls = JoinSet::new();
    for (i, peer) in peers.peers().iter().enumerate() {
        let peer = Arc::clone(peer);
        calls.spawn(async move {
            let status = if matches!(peer.state(), PeerState::Unavailable { .. }) {
                // Known to be down: answer at once instead of waiting for
                // a connection attempt; the monitor keeps retrying.
                Err(String::new())
            } else {
                peer.status().await
            };
            if let Err(reason) = &status {
                if !reason.is_empty() {
                    peer.report_failure(reason.clone());
                }
            }
            (i, status)
        });
    }
    let mut answers: Vec<(usize, Result<ServerStatusResponse, String>)> = Vec::new();
    while let Some(done) = calls.join_next().await {
        if let Ok(answer) = done {
            answers.push(answer);
        }
    }
    answers.sort_by_key(|(i, _)| *i);
    answers
        .into_iter()
        .map(|(i, status)| map(&peers.peers()[i], status))
        .collect()
}

fn mask_keeps_node_name(req: &GetFlowsRequest) -> bool {
    req.field_mask
        .as_ref()
        .is_none_or(|m| m.paths.is_empty() || m.paths.iter().any(|p| p == "node_name"))
}

/// Non-follow: every reachable peer answers the same request; the answers
/// are merged in exact time order ([`KWayMerge`]), then the stream ends.
async fn history(peers: Arc<PeerSet>, req: GetFlowsRequest, options: RelayOptions, out: Out) {
    // Peers the relay has not tried yet (it just started) get a moment,
    // all at once.
    let mut settling = JoinSet::new();
    for (i, peer) in peers.peers().iter().enumerate() {
        let peer = Arc::clone(peer);
        settling.spawn(async move { (i, peer.settled(CONNECT_TIMEOUT).await) });
    }
    let mut states = Vec::with_capacity(peers.peers().len());
    while let Some(Ok(settled)) = settling.join_next().await {
        states.push(settled);
    }
    states.sort_by_key(|(i, _)| *i);
    let mut up = Vec::new();
    let mut down = Vec::new();
    for (i, state) in states {
        let peer = &peers.peers()[i];
        match state {
            PeerState::Unavailable { reason } => {
                down.push((peer.name(), peer.unavailable_message(&reason)));
            }
            // A peer still connecting is asked anyway: the call says soon
            // enough whether it answers.
            _ => up.push(Arc::clone(peer)),
        }
    }
    if !up.is_empty() {
        let names = up.iter().map(|p| p.name()).collect();
        let _ = out
            .send(Ok(node_status(
                NodeState::NodeConnected,
                names,
                String::new(),
            )))
            .await;
    }
    if !down.is_empty() {
        let (names, messages): (Vec<String>, Vec<String>) = down.into_iter().unzip();
        let event = node_status(NodeState::NodeUnavailable, names, messages.join("; "));
        if out.send(Ok(event)).await.is_err() {
            return;
        }
    }
    let keep_name = mask_keeps_node_name(&req);
    let mut sources = Vec::with_capacity(up.len());
    for peer in &up {
        let (tx, rx) = mpsc::channel(options.peer_buffer.max(1));
        tokio::spawn(pump_once(Arc::clone(peer), req.clone(), keep_name, tx));
        sources.push(rx);
    }
    let mut merge = KWayMerge::new(sources.len());
    loop {
        while let Some(i) = merge.needs() {
            let next = tokio::select! {
                next = sources[i].recv() => next,
                () = out.closed() => return,
            };
            match next {
                Some(PeerMsg::Response(resp)) => merge.offer(i, Some((time_key(&resp), resp))),
                Some(PeerMsg::Status(event)) => {
                    if out.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                None => merge.offer(i, None),
            }
        }
        match merge.pop() {
            Some(resp) => {
                if out.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
            None => return,
        }
    }
}

/// Whether a status from a peer means the peer (or the way to it) failed,
/// as opposed to the peer refusing this request (a filter it does not
/// support, a method it does not have), which says nothing about its
/// health.
fn is_transport_failure(status: &Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
            | tonic::Code::Aborted
            | tonic::Code::Internal
    )
}

/// A NODE_ERROR event for a peer that refused a request.
fn refused(peer: &Peer, status: &Status) -> GetFlowsResponse {
    node_status(
        NodeState::NodeError,
        vec![peer.name()],
        format!(
            "relay: peer {} refused the request: {:?}: {}",
            peer.addr(),
            status.code(),
            status.message()
        ),
    )
}

/// Streams one peer's answer to a non-follow request into `tx`; a failure
/// becomes a NODE_ERROR event naming the peer and the cause.
async fn pump_once(
    peer: Arc<Peer>,
    req: GetFlowsRequest,
    keep_name: bool,
    tx: mpsc::Sender<PeerMsg>,
) {
    let fail = |status: &Status| {
        let reason = status_reason(status);
        if is_transport_failure(status) {
            let event = node_status(
                NodeState::NodeError,
                vec![peer.name()],
                peer.unavailable_message(&reason),
            );
            peer.report_failure(reason);
            PeerMsg::Status(event)
        } else {
            PeerMsg::Status(refused(&peer, status))
        }
    };
    let mut stream = match peer.client().get_flows(req).await {
        Ok(answer) => answer.into_inner(),
        Err(status) => {
            let _ = tx.send(fail(&status)).await;
            return;
        }
    };
    let name = peer.name();
    loop {
        match stream.message().await {
            Ok(Some(mut resp)) => {
                stamp_node_name(&mut resp, &name, keep_name);
                if tx.send(PeerMsg::Response(resp)).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(status) => {
                let _ = tx.send(fail(&status)).await;
                return;
            }
        }
    }
}

/// Follow: one pump per peer that reconnects for as long as the client
/// listens; flows go through a [`ReorderWindow`], relay news goes out at
/// once.
async fn follow(peers: Arc<PeerSet>, req: GetFlowsRequest, options: RelayOptions, out: Out) {
    let start = now_nanos();
    let capacity = options.peer_buffer.max(1) * peers.peers().len().max(1);
    let (merged_tx, mut merged_rx) = mpsc::channel(capacity);
    let keep_name = mask_keeps_node_name(&req);
    for peer in peers.peers() {
        tokio::spawn(pump_follow(
            Arc::clone(peer),
            req.clone(),
            start,
            keep_name,
            merged_tx.clone(),
        ));
    }
    drop(merged_tx);
    let mut window = ReorderWindow::new(options.sort_window, options.sort_buffer);
    loop {
        while let Some(resp) = window.pop_ready(Instant::now()) {
            if out.send(Ok(resp)).await.is_err() {
                return;
            }
        }
        let due = window.next_due();
        tokio::select! {
            msg = merged_rx.recv() => match msg {
                Some(PeerMsg::Response(resp)) => window.push(time_key(&resp), resp, Instant::now()),
                Some(PeerMsg::Status(event)) => {
                    if out.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                None => {
                    // Every peer reached `until`.
                    for resp in window.drain() {
                        if out.send(Ok(resp)).await.is_err() {
                            return;
                        }
                    }
                    return;
                }
            },
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()), if due.is_some() => {}
            () = out.closed() => return,
        }
    }
}

/// Follows one peer for one client, across disconnections: after the
/// first request (the client's own), every reconnection asks for the flows
/// since the last one received (or since the client started following),
/// so nothing the peer still holds is missed while it was unreachable.
async fn pump_follow(
    peer: Arc<Peer>,
    req: GetFlowsRequest,
    start: i128,
    keep_name: bool,
    tx: mpsc::Sender<PeerMsg>,
) {
    let mut last_seen: Option<i128> = None;
    let mut first = true;
    let mut announced_down = false;
    let mut state = peer.watch();
    loop {
        // Wait until the peer answers its monitor (announcing it once).
        let current = peer.settled(CONNECT_TIMEOUT).await;
        if let PeerState::Unavailable { reason } = &current {
            if !announced_down {
                announced_down = true;
                let event = node_status(
                    NodeState::NodeUnavailable,
                    vec![peer.name()],
                    peer.unavailable_message(reason),
                );
                if tx.send(PeerMsg::Status(event)).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = state.wait_for(|s| *s == PeerState::Connected) => {}
                () = tx.closed() => return,
            }
        }
        // The client's own request until one reached the peer, if it asked
        // for history (that history holds the newest flows anyway); else
        // everything since the last flow received or since the client
        // started following: a peer that failed even the first request must
        // not lose the flows it saw before it answered.
        let request = if first && req.number > 0 {
            req.clone()
        } else {
            let from = last_seen.map_or(start, |t| t + 1);
            let since = req.since.map_or(from, |s| from.max(s.as_nanos()));
            GetFlowsRequest {
                number: u64::MAX,
                first: false,
                since: Some(ts(since)),
                ..req.clone()
            }
        };
        let mut stream = match peer.client().get_flows(request).await {
            Ok(answer) => answer.into_inner(),
            Err(status) if is_transport_failure(&status) => {
                peer.report_failure(status_reason(&status));
                continue;
            }
            Err(status) => {
                // The peer answers but will not serve this request:
                // retrying would get the same answer.
                let _ = tx.send(PeerMsg::Status(refused(&peer, &status))).await;
                return;
            }
        };
        first = false;
        if announced_down {
            announced_down = false;
            let event = node_status(NodeState::NodeConnected, vec![peer.name()], String::new());
            if tx.send(PeerMsg::Status(event)).await.is_err() {
                return;
            }
        }
        let name = peer.name();
        let reason = loop {
            let next = tokio::select! {
                next = stream.message() => next,
                () = tx.closed() => return,
            };
            match next {
                Ok(Some(mut resp)) => {
                    if matches!(resp.response_types, Some(ResponseTypes::Flow(_))) {
                        let t = time_key(&resp);
                        last_seen = Some(last_seen.map_or(t, |l| l.max(t)));
                    }
                    stamp_node_name(&mut resp, &name, keep_name);
                    let msg = if matches!(resp.response_types, Some(ResponseTypes::NodeStatus(_))) {
                        PeerMsg::Status(resp)
                    } else {
                        PeerMsg::Response(resp)
                    };
                    if tx.send(msg).await.is_err() {
                        return;
                    }
                }
                Ok(None) => {
                    if req.until.is_some_and(|u| u.as_nanos() <= now_nanos()) {
                        return;
                    }
                    // An agent that shuts down ends its followers' streams
                    // cleanly; for the relay that peer is gone all the same.
                    break "the peer closed the stream (shutting down?)".to_string();
                }
                Err(status) => break status_reason(&status),
            }
        };
        peer.report_failure(reason);
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            () = tx.closed() => return,
        }
    }
}
