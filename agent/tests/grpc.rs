//! Observer API conformance with a real tonic client over loopback TCP: the
//! agent's gRPC server, health service and flow store, fed with synthetic
//! flows (no kernel involved, so these run unprivileged).

use std::{sync::Arc, time::Duration};

use holonet_agent::observer::{
    server::{self, HEALTH_SERVICE, Listen},
    service::ObserverService,
    store::{FlowStore, StoredEvent},
};
use holonet_proto::{
    flow::{Flow, LostEventSource},
    observer::{
        GetFlowsRequest, GetFlowsResponse, ServerStatusRequest, get_flows_response::ResponseTypes,
        observer_client::ObserverClient,
    },
    pbjson_types::FieldMask,
    wkt::Timestamp,
};
use tokio_stream::StreamExt;
use tonic::{Code, transport::Channel};

fn flow(n: i64) -> StoredEvent {
    StoredEvent::from(Flow {
        time: Some(Timestamp {
            seconds: 1_700_000_000 + n,
            nanos: 0,
        }),
        uuid: format!("flow-{n}"),
        node_name: "test-node".into(),
        summary: format!("flow {n}"),
        ..Default::default()
    })
}

struct Agent {
    store: Arc<FlowStore>,
    client: ObserverClient<Channel>,
    channel: Channel,
    unix_path: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_file(&self.unix_path);
    }
}

async fn start(capacity: usize, flows: i64) -> Agent {
    let store = Arc::new(FlowStore::new(capacity));
    store.push_batch((1..=flows).map(flow));
    let unix_path = std::env::temp_dir().join(format!(
        "holonet-grpc-test-{}-{}.sock",
        std::process::id(),
        flows * 1000 + capacity as i64
    ));
    let listeners = server::bind(&Listen {
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        unix: Some(unix_path.clone()),
        allow_remote: false,
    })
    .await
    .expect("bind");
    let addr = listeners.tcp_addr().expect("tcp bound");
    assert!(unix_path.exists(), "unix socket created");
    let service = ObserverService::new(Arc::clone(&store), "test-node");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(listeners, service, async move {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    Agent {
        store,
        client: ObserverClient::new(channel.clone()),
        channel,
        unix_path,
        stop: Some(stop),
    }
}

fn summaries(responses: &[GetFlowsResponse]) -> Vec<String> {
    responses
        .iter()
        .map(|r| match &r.response_types {
            Some(ResponseTypes::Flow(f)) => f.summary.clone(),
            Some(ResponseTypes::LostEvents(l)) => format!("lost {}", l.num_events_lost),
            other => format!("{other:?}"),
        })
        .collect()
}

async fn collect(agent: &mut Agent, req: GetFlowsRequest) -> Vec<GetFlowsResponse> {
    let mut stream = agent
        .client
        .get_flows(req)
        .await
        .expect("GetFlows")
        .into_inner();
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push(item.expect("stream item"));
    }
    out
}

#[tokio::test]
async fn last_n_flows_oldest_first_then_the_stream_ends() {
    let mut agent = start(100, 30).await;
    let got = collect(
        &mut agent,
        GetFlowsRequest {
            number: 3,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(summaries(&got), ["flow 28", "flow 29", "flow 30"]);
    assert!(got.iter().all(|r| r.node_name == "test-node"));
    assert_eq!(got[0].time.map(|t| t.seconds), Some(1_700_000_028));
}

#[tokio::test]
async fn first_n_and_time_ranges() {
    let mut agent = start(100, 30).await;
    let first = collect(
        &mut agent,
        GetFlowsRequest {
            number: 2,
            first: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(summaries(&first), ["flow 1", "flow 2"]);
    let ranged = collect(
        &mut agent,
        GetFlowsRequest {
            number: u64::MAX,
            since: Some(Timestamp {
                seconds: 1_700_000_010,
                nanos: 0,
            }),
            until: Some(Timestamp {
                seconds: 1_700_000_012,
                nanos: 0,
            }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(summaries(&ranged), ["flow 10", "flow 11", "flow 12"]);
}

#[tokio::test]
async fn follow_streams_new_flows_as_they_arrive() {
    let mut agent = start(100, 5).await;
    let mut stream = agent
        .client
        .get_flows(GetFlowsRequest {
            number: 1,
            follow: true,
            ..Default::default()
        })
        .await
        .expect("GetFlows")
        .into_inner();
    let first = stream.next().await.expect("history").expect("ok");
    assert_eq!(summaries(&[first]), ["flow 5"]);
    agent.store.push_batch((6..=8).map(flow));
    let mut live = Vec::new();
    for _ in 0..3 {
        let item = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("a live flow within 5 s")
            .expect("stream open")
            .expect("ok");
        live.push(item);
    }
    assert_eq!(summaries(&live), ["flow 6", "flow 7", "flow 8"]);
}

#[tokio::test]
async fn field_masks_keep_only_the_requested_fields() {
    let mut agent = start(10, 3).await;
    let got = collect(
        &mut agent,
        GetFlowsRequest {
            number: 1,
            field_mask: Some(FieldMask {
                paths: vec!["Summary".into(), "time".into()],
            }),
            ..Default::default()
        },
    )
    .await;
    let Some(ResponseTypes::Flow(f)) = &got[0].response_types else {
        panic!("flow expected");
    };
    assert_eq!(f.summary, "flow 3");
    assert!(f.time.is_some());
    assert_eq!(f.uuid, "", "uuid was masked out");
    assert_eq!(f.node_name, "", "node_name was masked out");
}

#[tokio::test]
async fn invalid_requests_are_rejected_with_invalid_argument() {
    let mut agent = start(10, 3).await;
    let bad_mask = agent
        .client
        .get_flows(GetFlowsRequest {
            field_mask: Some(FieldMask {
                paths: vec!["no_such_field".into()],
            }),
            ..Default::default()
        })
        .await
        .expect_err("rejected");
    assert_eq!(bad_mask.code(), Code::InvalidArgument);
    assert!(bad_mask.message().contains("no_such_field"), "{bad_mask:?}");
    let backwards = agent
        .client
        .get_flows(GetFlowsRequest {
            since: Some(Timestamp {
                seconds: 10,
                nanos: 0,
            }),
            until: Some(Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .expect_err("rejected");
    assert_eq!(backwards.code(), Code::InvalidArgument);
    // The server keeps serving after bad requests.
    assert_eq!(
        collect(
            &mut agent,
            GetFlowsRequest {
                number: 1,
                ..Default::default()
            }
        )
        .await
        .len(),
        1
    );
}

#[tokio::test]
async fn a_slow_follower_never_blocks_the_store_and_learns_what_it_lost() {
    let mut agent = start(64, 0).await;
    let mut stream = agent
        .client
        .get_flows(GetFlowsRequest {
            follow: true,
            ..Default::default()
        })
        .await
        .expect("GetFlows")
        .into_inner();
    // The client reads nothing while far more flows than the ring and the
    // stream buffers hold are stored; storing must not wait for it.
    for chunk in 0..100 {
        agent
            .store
            .push_batch((chunk * 1000..(chunk + 1) * 1000).map(flow));
    }
    assert_eq!(agent.store.status().seen_flows, 100_000);
    let mut lost = 0;
    let mut flows = 0;
    while let Ok(Some(item)) = tokio::time::timeout(Duration::from_millis(500), stream.next()).await
    {
        match item.expect("ok").response_types {
            Some(ResponseTypes::LostEvents(l)) => {
                assert_eq!(l.source(), LostEventSource::HubbleRingBuffer);
                lost += l.num_events_lost;
            }
            Some(ResponseTypes::Flow(_)) => flows += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(lost > 0, "the lag must be reported as lost events");
    assert_eq!(
        lost + flows,
        100_000,
        "every flow is either delivered or counted as lost"
    );
}

#[tokio::test]
async fn status_and_health_answer_like_a_hubble_agent() {
    let mut agent = start(100, 7).await;
    let status = agent
        .client
        .server_status(ServerStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(
        (status.num_flows, status.max_flows, status.seen_flows),
        (7, 100, 7)
    );
    assert!(status.version.starts_with("holonet "), "{}", status.version);
    assert!(status.num_connected_nodes.is_none());

    let mut health = tonic_health::pb::health_client::HealthClient::new(agent.channel.clone());
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: HEALTH_SERVICE.into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        reply.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
}

#[tokio::test]
async fn listening_beyond_loopback_needs_explicit_permission() {
    let err = server::bind(&Listen {
        tcp: Some("0.0.0.0:0".parse().unwrap()),
        unix: None,
        allow_remote: false,
    })
    .await
    .expect_err("refused");
    assert!(err.to_string().contains("--allow-remote"), "{err}");
}

#[tokio::test]
async fn filters_apply_with_hubble_semantics_and_bad_ones_are_rejected() {
    use holonet_proto::flow::FlowFilter;
    let mut agent = start(100, 10).await;
    let none = collect(
        &mut agent,
        GetFlowsRequest {
            number: 100,
            whitelist: vec![FlowFilter {
                node_name: vec!["other-node".into()],
                ..Default::default()
            }],
            ..Default::default()
        },
    )
    .await;
    assert!(none.is_empty(), "{}", summaries(&none).join(", "));
    let all_but = collect(
        &mut agent,
        GetFlowsRequest {
            number: 100,
            whitelist: vec![FlowFilter {
                node_name: vec!["test-*".into()],
                ..Default::default()
            }],
            blacklist: vec![FlowFilter {
                uuid: vec!["flow-3".into(), "flow-4".into()],
                ..Default::default()
            }],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(all_but.len(), 8);
    assert!(!summaries(&all_but).contains(&"flow 3".to_string()));
    let bad = agent
        .client
        .get_flows(GetFlowsRequest {
            whitelist: vec![FlowFilter {
                http_path: vec!["(".into()],
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .expect_err("bad regex rejected");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("http_path"), "{bad:?}");
}
