//! The relay against real gRPC agents on loopback (synthetic flows, no
//! kernel, so these run unprivileged): merged time order, node names,
//! filters passed upstream, ServerStatus/GetNodes with a peer down, and a
//! follower that gets a restarted peer's flows. The same behaviour across
//! network namespaces with the probe loaded is in tests/tests/relay.rs.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use holonet_agent::{
    observer::{
        server::{self, HEALTH_SERVICE, Listen},
        service::ObserverService,
        store::{FlowStore, StoredEvent},
    },
    relay::{
        peers::PeerSet,
        service::{RelayOptions, RelayService},
    },
};
use holonet_proto::{
    flow::{Flow, FlowFilter, Verdict},
    observer::{
        GetFlowsRequest, GetFlowsResponse, GetNodesRequest, ServerStatusRequest,
        get_flows_response::ResponseTypes, observer_client::ObserverClient,
    },
    relay::NodeState,
    wkt::Timestamp,
};
use tonic::transport::Channel;

/// One in-process agent: a store and a gRPC server on loopback.
struct Agent {
    addr: SocketAddr,
    store: Arc<FlowStore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Agent {
    async fn start(name: &str, addr: SocketAddr) -> Self {
        let store = Arc::new(FlowStore::new(1000));
        let listeners = server::bind(&Listen {
            tcp: Some(addr),
            unix: None,
            allow_remote: false,
        })
        .await
        .expect("bind");
        let addr = listeners.tcp_addr().expect("tcp");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service = ObserverService::new(Arc::clone(&store), name);
        let task = tokio::spawn(async move {
            let _ = server::serve(listeners, service, async move {
                let _ = stopped.await;
            })
            .await;
        });
        Self {
            addr,
            store,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops it the way `holonet agent` does on SIGTERM.
    async fn kill(&mut self) {
        self.store.close();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.store.close();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn flow(node: &str, seconds: i64, verdict: Verdict) -> StoredEvent {
    StoredEvent::from(Flow {
        time: Some(Timestamp {
            seconds: 1_700_000_000 + seconds,
            nanos: 0,
        }),
        node_name: node.to_string(),
        verdict: verdict.into(),
        summary: format!("{node} {seconds}"),
        ..Default::default()
    })
}

struct Relay {
    client: ObserverClient<Channel>,
    channel: Channel,
    _peers: Arc<PeerSet>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn relay(peers: &[String], options: RelayOptions) -> Relay {
    let set = Arc::new(PeerSet::start(peers, None).expect("peers"));
    let listeners = server::bind(&Listen {
        tcp: Some("127.0.0.1:0".parse().expect("addr")),
        unix: None,
        allow_remote: false,
    })
    .await
    .expect("bind relay");
    let addr = listeners.tcp_addr().expect("tcp");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(
        listeners,
        RelayService::new(Arc::clone(&set), options),
        async move {
            let _ = stopped.await;
        },
    ));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect to relay");
    Relay {
        client: ObserverClient::new(channel.clone()),
        channel,
        _peers: set,
        stop: Some(stop),
    }
}

async fn collect(
    client: &mut ObserverClient<Channel>,
    req: GetFlowsRequest,
) -> Vec<GetFlowsResponse> {
    let mut stream = client.get_flows(req).await.expect("GetFlows").into_inner();
    let mut out = Vec::new();
    while let Some(item) = stream.message().await.expect("stream item") {
        out.push(item);
    }
    out
}

fn summaries(responses: &[GetFlowsResponse]) -> Vec<String> {
    responses
        .iter()
        .filter_map(|r| match &r.response_types {
            Some(ResponseTypes::Flow(f)) => Some(f.summary.clone()),
            _ => None,
        })
        .collect()
}

fn node_events(responses: &[GetFlowsResponse]) -> Vec<(NodeState, Vec<String>, String)> {
    responses
        .iter()
        .filter_map(|r| match &r.response_types {
            Some(ResponseTypes::NodeStatus(s)) => Some((
                NodeState::try_from(s.state_change).unwrap_or(NodeState::UnknownNodeState),
                s.node_names.clone(),
                s.message.clone(),
            )),
            _ => None,
        })
        .collect()
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_merged_in_time_order_with_filters_passed_upstream() {
    let a = Agent::start("node-a", loopback()).await;
    let b = Agent::start("node-b", loopback()).await;
    let c = Agent::start("", loopback()).await;
    a.store
        .push_batch([1, 4, 7].map(|s| flow("node-a", s, Verdict::Forwarded)));
    b.store
        .push_batch([2, 5, 8].map(|s| flow("node-b", s, Verdict::Dropped)));
    // An agent that leaves node names empty: the relay names its flows.
    c.store
        .push_batch([3, 6, 9].map(|s| flow("", s, Verdict::Forwarded)));
    let peers = [a.addr, b.addr, c.addr].map(|a| a.to_string());
    let mut relay = relay(&peers, RelayOptions::default()).await;

    let got = collect(
        &mut relay.client,
        GetFlowsRequest {
            number: u64::MAX,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        summaries(&got),
        [
            "node-a 1", "node-b 2", " 3", "node-a 4", "node-b 5", " 6", "node-a 7", "node-b 8",
            " 9"
        ]
    );
    let flows: Vec<&GetFlowsResponse> = got
        .iter()
        .filter(|r| matches!(r.response_types, Some(ResponseTypes::Flow(_))))
        .collect();
    let c_name = c.addr.to_string();
    for r in &flows {
        assert!(!r.node_name.is_empty());
        let Some(ResponseTypes::Flow(f)) = &r.response_types else {
            unreachable!()
        };
        assert_eq!(f.node_name, r.node_name);
        if f.summary.starts_with(' ') {
            assert_eq!(f.node_name, c_name, "named after the peer's address");
        }
    }
    let events = node_events(&got);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, NodeState::NodeConnected);
    assert_eq!(events[0].1.len(), 3);

    // --last is per peer; filters and first/number travel upstream.
    let last = collect(
        &mut relay.client,
        GetFlowsRequest {
            number: 1,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(summaries(&last), ["node-a 7", "node-b 8", " 9"]);
    let dropped = collect(
        &mut relay.client,
        GetFlowsRequest {
            number: 2,
            first: true,
            whitelist: vec![FlowFilter {
                verdict: vec![Verdict::Dropped.into()],
                ..Default::default()
            }],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(summaries(&dropped), ["node-b 2", "node-b 5"]);

    // A bad request is refused once, by the relay itself.
    let err = relay
        .client
        .get_flows(GetFlowsRequest {
            whitelist: vec![FlowFilter {
                http_path: vec!["(".into()],
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_down_is_reported_and_its_flows_return_when_it_comes_back() {
    let a = Agent::start("node-a", loopback()).await;
    let mut b = Agent::start("node-b", loopback()).await;
    let b_addr = b.addr;
    a.store.push_batch([flow("node-a", 1, Verdict::Forwarded)]);
    b.store.push_batch([flow("node-b", 2, Verdict::Forwarded)]);
    let peers = [a.addr.to_string(), b_addr.to_string()];
    let mut relay = relay(
        &peers,
        RelayOptions {
            sort_window: Duration::from_millis(100),
            ..Default::default()
        },
    )
    .await;

    // Health and status with both up.
    let mut health = tonic_health::pb::health_client::HealthClient::new(relay.channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: HEALTH_SERVICE.into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        serving.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    let status = relay
        .client
        .server_status(ServerStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.num_flows, 2);
    assert_eq!(status.max_flows, 2000);
    assert_eq!(status.num_connected_nodes.map(|v| v.value), Some(2));
    assert_eq!(status.num_unavailable_nodes.map(|v| v.value), Some(0));

    // A follower from before the outage.
    let mut follow = relay
        .client
        .get_flows(GetFlowsRequest {
            follow: true,
            ..Default::default()
        })
        .await
        .expect("follow")
        .into_inner();

    b.kill().await;
    let status = relay
        .client
        .server_status(ServerStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.num_connected_nodes.map(|v| v.value), Some(1));
    assert_eq!(status.num_unavailable_nodes.map(|v| v.value), Some(1));
    assert_eq!(status.unavailable_nodes, ["node-b"]);
    assert_eq!(status.num_flows, 1);
    let nodes = relay
        .client
        .get_nodes(GetNodesRequest {})
        .await
        .expect("nodes")
        .into_inner()
        .nodes;
    let states: Vec<(String, NodeState, String)> = nodes
        .iter()
        .map(|n| (n.name.clone(), n.state(), n.address.clone()))
        .collect();
    assert_eq!(
        states,
        [
            (
                "node-a".into(),
                NodeState::NodeConnected,
                a.addr.to_string()
            ),
            (
                "node-b".into(),
                NodeState::NodeUnavailable,
                b_addr.to_string()
            ),
        ]
    );
    // History keeps working and says who is missing.
    let got = collect(
        &mut relay.client,
        GetFlowsRequest {
            number: 10,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(summaries(&got), ["node-a 1"]);
    let events = node_events(&got);
    let down = events
        .iter()
        .find(|e| e.0 == NodeState::NodeUnavailable)
        .unwrap_or_else(|| panic!("an unavailable event: {events:?}"));
    assert_eq!(down.1, ["node-b"]);
    assert!(
        down.2
            .starts_with(&format!("relay: peer {b_addr} unavailable: ")),
        "{}",
        down.2
    );

    // Back on the same address: the follower gets its new flows.
    // (Flows carry the agents' clocks, as real ones do: the relay resumes
    // following by time.)
    let b = Agent::start("node-b", b_addr).await;
    let now = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH))
        .expect("clock")
        .as_secs() as i64
        - 1_700_000_000
        + 1;
    b.store
        .push_batch([flow("node-b", now, Verdict::Forwarded)]);
    a.store
        .push_batch([flow("node-a", now + 1, Verdict::Forwarded)]);
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let want = [format!("node-b {now}"), format!("node-a {}", now + 1)];
    while !want.iter().all(|w| summaries(&seen).contains(w)) {
        let item = tokio::time::timeout_at(deadline, follow.message())
            .await
            .unwrap_or_else(|_| panic!("flows after the restart within 20 s; got {seen:?}"))
            .expect("stream ok")
            .expect("stream open");
        seen.push(item);
    }
    let events = node_events(&seen);
    assert!(
        events
            .iter()
            .any(|e| e.0 == NodeState::NodeUnavailable && e.1 == ["node-b"]),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.0 == NodeState::NodeConnected && e.1 == ["node-b"]),
        "{events:?}"
    );
    let status = relay
        .client
        .server_status(ServerStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.num_connected_nodes.map(|v| v.value), Some(2));
}

/// A peer that is healthy but refuses GetFlows (like an agent that does not
/// support a filter): not a node that is down.
#[derive(Clone)]
struct Refusing;

#[tonic::async_trait]
impl holonet_proto::observer_encoded::observer_server::Observer for Refusing {
    type GetFlowsStream = std::pin::Pin<
        Box<
            dyn tokio_stream::Stream<
                    Item = Result<holonet_proto::encoded::EncodedGetFlowsResponse, tonic::Status>,
                > + Send,
        >,
    >;

    async fn get_flows(
        &self,
        _: tonic::Request<GetFlowsRequest>,
    ) -> Result<tonic::Response<Self::GetFlowsStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("no flows here"))
    }

    async fn get_nodes(
        &self,
        _: tonic::Request<GetNodesRequest>,
    ) -> Result<tonic::Response<holonet_proto::observer::GetNodesResponse>, tonic::Status> {
        Ok(tonic::Response::new(
            holonet_proto::observer::GetNodesResponse {
                nodes: vec![holonet_proto::observer::Node {
                    name: "refuser".into(),
                    ..Default::default()
                }],
            },
        ))
    }

    async fn get_namespaces(
        &self,
        _: tonic::Request<holonet_proto::observer::GetNamespacesRequest>,
    ) -> Result<tonic::Response<holonet_proto::observer::GetNamespacesResponse>, tonic::Status>
    {
        Ok(tonic::Response::new(Default::default()))
    }

    async fn server_status(
        &self,
        _: tonic::Request<ServerStatusRequest>,
    ) -> Result<tonic::Response<holonet_proto::observer::ServerStatusResponse>, tonic::Status> {
        Ok(tonic::Response::new(Default::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_refusing_a_request_is_an_error_event_not_a_node_down() {
    let good = Agent::start("node-a", loopback()).await;
    good.store
        .push_batch([flow("node-a", 1, Verdict::Forwarded)]);
    let listeners = server::bind(&Listen {
        tcp: Some(loopback()),
        unix: None,
        allow_remote: false,
    })
    .await
    .expect("bind");
    let refuser_addr = listeners.tcp_addr().expect("tcp");
    tokio::spawn(server::serve(listeners, Refusing, std::future::pending()));
    let peers = [refuser_addr.to_string(), good.addr.to_string()];
    let mut relay = relay(&peers, RelayOptions::default()).await;

    let got = collect(
        &mut relay.client,
        GetFlowsRequest {
            number: 10,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(summaries(&got), ["node-a 1"]);
    let events = node_events(&got);
    let refusal = events
        .iter()
        .find(|e| e.0 == NodeState::NodeError)
        .unwrap_or_else(|| panic!("a NODE_ERROR event: {events:?}"));
    assert_eq!(refusal.1, ["refuser"]);
    assert!(
        refusal.2.contains("refused the request") && refusal.2.contains("no flows here"),
        "{}",
        refusal.2
    );
    let status = relay
        .client
        .server_status(ServerStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(
        status.num_connected_nodes.map(|v| v.value),
        Some(2),
        "a refusal is not an outage"
    );
}
