//! The Prometheus endpoint over a real TCP connection: flows fed into the
//! store, a follower counting them, a plain HTTP/1.1 GET scraping them.
//! Also: nothing beyond loopback without explicit permission.

use std::{sync::Arc, time::Duration};

use holonet_agent::observer::{
    metrics::{self, MetricsError, SharedMetrics},
    store::{FlowStore, StoredEvent},
};
use holonet_proto::flow::{
    DropReason, Flow, FlowType, Http, L7FlowType, Layer7, LostEvent, LostEventSource, Verdict,
    layer7,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn http_response(code: u32, latency_ms: u64) -> StoredEvent {
    StoredEvent::from(Flow {
        verdict: Verdict::Forwarded.into(),
        r#type: FlowType::L7.into(),
        l7: Some(Layer7 {
            r#type: L7FlowType::Response.into(),
            latency_ns: latency_ms * 1_000_000,
            record: Some(layer7::Record::Http(Http {
                code,
                method: "GET".into(),
                ..Default::default()
            })),
        }),
        ..Default::default()
    })
}

async fn get(addr: std::net::SocketAddr, request: &str) -> String {
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(request.as_bytes()).await.expect("send");
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_string(&mut out))
        .await
        .expect("answer within 5 s")
        .expect("read");
    out
}

#[tokio::test]
async fn a_scrape_counts_what_the_store_received() {
    let store = Arc::new(FlowStore::new(100));
    let shared = SharedMetrics::default();
    tokio::spawn(metrics::follow(Arc::clone(&store), Arc::clone(&shared)));
    let listener = metrics::bind("127.0.0.1:0".parse().unwrap(), false)
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(metrics::serve(
        listener,
        Arc::clone(&store),
        shared,
        async move {
            let _ = stopped.await;
        },
    ));

    store.push_batch([
        StoredEvent::from(Flow {
            verdict: Verdict::Forwarded.into(),
            r#type: FlowType::L3L4.into(),
            ..Default::default()
        }),
        StoredEvent::from(Flow {
            verdict: Verdict::Dropped.into(),
            r#type: FlowType::L7.into(),
            drop_reason_desc: DropReason::PolicyDenied.into(),
            ..Default::default()
        }),
        http_response(200, 4),
        http_response(404, 1),
        StoredEvent::Lost(LostEvent {
            source: LostEventSource::PerfEventRingBuffer.into(),
            num_events_lost: 3,
            ..Default::default()
        }),
    ]);
    let mut text = String::new();
    for _ in 0..50 {
        text = get(addr, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        if text.contains("holonet_lost_events_total{source=\"PERF_EVENT_RING_BUFFER\"} 3") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    for line in [
        "holonet_flows_total{verdict=\"FORWARDED\",type=\"L3_L4\"} 1",
        "holonet_flows_total{verdict=\"FORWARDED\",type=\"L7\"} 2",
        "holonet_flows_total{verdict=\"DROPPED\",type=\"L7\"} 1",
        "holonet_drops_total{reason=\"POLICY_DENIED\"} 1",
        "holonet_lost_events_total{source=\"PERF_EVENT_RING_BUFFER\"} 3",
        "holonet_http_request_duration_seconds_bucket{status=\"2xx\",le=\"0.005\"} 1",
        "holonet_http_request_duration_seconds_bucket{status=\"2xx\",le=\"0.0025\"} 0",
        "holonet_http_request_duration_seconds_count{status=\"4xx\"} 1",
        "holonet_flow_store_flows 5",
        "holonet_flow_store_capacity 100",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in:\n{body}"
        );
    }

    let other = get(addr, "GET /nope HTTP/1.1\r\n\r\n").await;
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    let post = get(addr, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
    assert!(
        post.starts_with("HTTP/1.1 405") && post.contains("Allow: GET"),
        "{post}"
    );

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the responder stops")
        .expect("task");
}

#[tokio::test]
async fn metrics_stay_on_loopback_unless_allowed() {
    let err = metrics::bind("0.0.0.0:0".parse().unwrap(), false)
        .await
        .unwrap_err();
    assert!(matches!(err, MetricsError::NotLoopback { .. }));
    assert!(err.to_string().contains("--allow-remote"), "{err}");
    metrics::bind("0.0.0.0:0".parse().unwrap(), true)
        .await
        .expect("allowed explicitly");
}
