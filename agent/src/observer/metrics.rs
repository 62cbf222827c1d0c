//! Prometheus metrics of the agent, in the text exposition format, served
//! by a tiny HTTP/1.1 responder (`GET /metrics`).
//!
//! Off by default and loopback-only unless `--allow-remote` (the same rule
//! as the gRPC listener: the counts reveal what runs where). The counts
//! come from a reader that follows the flow store like the recorder does,
//! so metrics cost the pipeline nothing and see exactly the flows that
//! GetFlows serves:
//!
//! - `holonet_flows_total{verdict,type}`: flows by verdict and flow type;
//! - `holonet_drops_total{reason}`: dropped flows by drop reason;
//! - `holonet_lost_events_total{source}`: events lost before the store;
//! - `holonet_http_request_duration_seconds{status}`: HTTP latency by status
//!   class, from http-response flows that carry `l7.latency_ns`;
//! - `holonet_flow_store_flows` / `holonet_flow_store_capacity`: ring usage;
//! - `holonet_metrics_missed_events_total`: events the metrics reader
//!   itself skipped because the ring overwrote them first.
//!
//! No Prometheus crate: the format is a few lines of text, and the build
//! stays small.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use holonet_proto::flow::{
    DropReason, Flow, FlowType, L7FlowType, LostEventSource, Verdict, layer7,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use super::store::{FlowStore, Follower, StoredEvent};

/// Histogram bucket upper bounds, in seconds (Prometheus' defaults plus
/// finer steps below 5 ms, where in-cluster HTTP lives).
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Default address, Hubble's metrics port on loopback.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9965";

/// Largest request head the responder reads.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Starting the metrics listener failed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A non-loopback address without `allow_remote`.
    #[error(
        "refusing to serve metrics on {addr}, which is reachable from other machines; \
         use a loopback address, or pass --allow-remote if that is really intended"
    )]
    NotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Binding failed.
    #[error("metrics: listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Histogram {
    /// Cumulative counts per bucket of [`BUCKETS`].
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, n) in BUCKETS.iter().zip(self.buckets.iter_mut()) {
            if seconds <= *bound {
                *n += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// The counters, updated from stored events (pure: no I/O).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    flows: BTreeMap<(&'static str, &'static str), u64>,
    drops: BTreeMap<&'static str, u64>,
    lost: BTreeMap<&'static str, u64>,
    http: BTreeMap<String, Histogram>,
    missed: u64,
}

fn http_latency(flow: &Flow) -> Option<(String, f64)> {
    let l7 = flow.l7.as_ref()?;
    if l7.r#type() != L7FlowType::Response || l7.latency_ns == 0 {
        return None;
    }
    let Some(layer7::Record::Http(http)) = &l7.record else {
        return None;
    };
    let class = match http.code {
        100..=599 => format!("{}xx", http.code / 100),
        _ => return None,
    };
    Some((class, l7.latency_ns as f64 / 1e9))
}

impl Metrics {
    /// Counts one stored event.
    pub fn observe(&mut self, event: &StoredEvent) {
        match event {
            StoredEvent::Flow(stored) => {
                let flow = stored.without_shared();
                let verdict = Verdict::try_from(flow.verdict).unwrap_or(Verdict::Unknown);
                let kind = FlowType::try_from(flow.r#type).unwrap_or(FlowType::UnknownType);
                *self
                    .flows
                    .entry((verdict.as_str_name(), kind.as_str_name()))
                    .or_default() += 1;
                if verdict == Verdict::Dropped {
                    let reason =
                        DropReason::try_from(flow.drop_reason_desc).unwrap_or(DropReason::Unknown);
                    *self.drops.entry(reason.as_str_name()).or_default() += 1;
                }
                if let Some((class, seconds)) = http_latency(flow) {
                    self.http.entry(class).or_default().observe(seconds);
                }
            }
            StoredEvent::Lost(lost) => {
                let source = LostEventSource::try_from(lost.source)
                    .unwrap_or(LostEventSource::UnknownLostEventSource);
                *self.lost.entry(source.as_str_name()).or_default() += lost.num_events_lost;
            }
        }
    }

    /// Counts events the reader could not see (the ring overwrote them).
    pub fn missed(&mut self, n: u64) {
        self.missed += n;
    }

    /// The exposition text, with the store's current size and capacity.
    pub fn render(&self, stored: u64, capacity: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP holonet_flows_total Flows observed, by verdict and flow type.\n\
             # TYPE holonet_flows_total counter"
        );
        for ((verdict, kind), n) in &self.flows {
            let _ = writeln!(
                out,
                "holonet_flows_total{{verdict=\"{}\",type=\"{}\"}} {n}",
                escape(verdict),
                escape(kind)
            );
        }
        let _ = writeln!(
            out,
            "# HELP holonet_drops_total Dropped flows, by drop reason.\n\
             # TYPE holonet_drops_total counter"
        );
        for (reason, n) in &self.drops {
            let _ = writeln!(
                out,
                "holonet_drops_total{{reason=\"{}\"}} {n}",
                escape(reason)
            );
        }
        let _ = writeln!(
            out,
            "# HELP holonet_lost_events_total Events lost before they reached the flow store, by where.\n\
             # TYPE holonet_lost_events_total counter"
        );
        for (source, n) in &self.lost {
            let _ = writeln!(
                out,
                "holonet_lost_events_total{{source=\"{}\"}} {n}",
                escape(source)
            );
        }
        let _ = writeln!(
            out,
            "# HELP holonet_http_request_duration_seconds HTTP request latency (request to response), by status class.\n\
             # TYPE holonet_http_request_duration_seconds histogram"
        );
        for (class, h) in &self.http {
            let class = escape(class);
            for (bound, n) in BUCKETS.iter().zip(h.buckets.iter()) {
                let _ = writeln!(
                    out,
                    "holonet_http_request_duration_seconds_bucket{{status=\"{class}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "holonet_http_request_duration_seconds_bucket{{status=\"{class}\",le=\"+Inf\"}} {}\n\
                 holonet_http_request_duration_seconds_sum{{status=\"{class}\"}} {}\n\
                 holonet_http_request_duration_seconds_count{{status=\"{class}\"}} {}",
                h.count, h.sum, h.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP holonet_flow_store_flows Events currently kept in the flow store.\n\
             # TYPE holonet_flow_store_flows gauge\n\
             holonet_flow_store_flows {stored}\n\
             # HELP holonet_flow_store_capacity Events the flow store keeps at most.\n\
             # TYPE holonet_flow_store_capacity gauge\n\
             holonet_flow_store_capacity {capacity}\n\
             # HELP holonet_metrics_missed_events_total Events the metrics reader skipped because the flow store overwrote them first.\n\
             # TYPE holonet_metrics_missed_events_total counter\n\
             holonet_metrics_missed_events_total {}",
            self.missed
        );
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Shared counters: the follower writes, the responder reads.
pub type SharedMetrics = Arc<Mutex<Metrics>>;

fn lock(metrics: &SharedMetrics) -> std::sync::MutexGuard<'_, Metrics> {
    metrics
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Counts every event appended to `store` from now on (and what is already
/// there), until the store is closed.
pub async fn follow(store: Arc<FlowStore>, metrics: SharedMetrics) {
    let mut follower = Follower::new(store, 0);
    while let Some(range) = follower.next_batch(4096).await {
        let mut m = lock(&metrics);
        m.missed(range.overwritten);
        for event in &range.events {
            m.observe(event);
        }
    }
}

/// Binds the metrics listener, refusing addresses beyond loopback unless
/// `allow_remote`.
pub async fn bind(addr: SocketAddr, allow_remote: bool) -> Result<TcpListener, MetricsError> {
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(MetricsError::NotLoopback { addr });
    }
    TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })
}

/// Answers `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    store: Arc<FlowStore>,
    metrics: SharedMetrics,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let conn = tokio::select! {
            conn = listener.accept() => conn,
            () = &mut shutdown => return,
        };
        match conn {
            Ok((stream, _)) => {
                let store = Arc::clone(&store);
                let metrics = Arc::clone(&metrics);
                tokio::spawn(async move {
                    let _ =
                        tokio::time::timeout(REQUEST_TIMEOUT, respond(stream, &store, &metrics))
                            .await;
                });
            }
            Err(err) => {
                log::warn!("metrics: accepting a connection: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// What the responder answers to a request head (pure).
pub fn answer(head: &[u8], body: impl FnOnce() -> String) -> (u16, &'static str, String) {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return (400, "Bad Request", "bad request\n".into()),
    }
    let path = req.path.unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    match (req.method, path) {
        (Some("GET" | "HEAD"), "/metrics") => (200, "OK", body()),
        (Some("GET" | "HEAD"), "/") => (200, "OK", "holonet agent metrics: see /metrics\n".into()),
        (Some("GET" | "HEAD"), _) => (
            404,
            "Not Found",
            "not found; metrics are at /metrics\n".into(),
        ),
        _ => (405, "Method Not Allowed", "only GET\n".into()),
    }
}

async fn respond(
    mut stream: TcpStream,
    store: &FlowStore,
    metrics: &SharedMetrics,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_REQUEST {
            break;
        }
    }
    let is_head = head.starts_with(b"HEAD ");
    let (code, reason, body) = answer(&head, || {
        let status = store.status();
        lock(metrics).render(status.num_flows, status.max_flows)
    });
    let content_type = if code == 200 {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut response = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if code == 405 {
        response.push_str("Allow: GET, HEAD\r\n");
    }
    response.push_str("\r\n");
    if !is_head {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use holonet_proto::flow::{Http, Layer7, LostEvent};

    use super::*;

    fn flow(verdict: Verdict, kind: FlowType) -> StoredEvent {
        StoredEvent::from(Flow {
            verdict: verdict.into(),
            r#type: kind.into(),
            ..Default::default()
        })
    }

    fn response(code: u32, latency_ns: u64) -> StoredEvent {
        StoredEvent::from(Flow {
            verdict: Verdict::Forwarded.into(),
            r#type: FlowType::L7.into(),
            l7: Some(Layer7 {
                r#type: L7FlowType::Response.into(),
                latency_ns,
                record: Some(layer7::Record::Http(Http {
                    code,
                    ..Default::default()
                })),
            }),
            ..Default::default()
        })
    }

    #[test]
    fn counts_by_verdict_type_reason_and_latency() {
        let mut m = Metrics::default();
        m.observe(&flow(Verdict::Forwarded, FlowType::L3L4));
        m.observe(&flow(Verdict::Forwarded, FlowType::L3L4));
        m.observe(&StoredEvent::from(Flow {
            verdict: Verdict::Dropped.into(),
            r#type: FlowType::L3L4.into(),
            drop_reason_desc: DropReason::PolicyDenied.into(),
            ..Default::default()
        }));
        m.observe(&response(200, 3_000_000));
        m.observe(&response(204, 20_000_000));
        m.observe(&response(503, 2_000_000_000));
        m.observe(&response(200, 0)); // no latency: counted as a flow only
        m.observe(&StoredEvent::Lost(LostEvent {
            source: LostEventSource::PerfEventRingBuffer.into(),
            num_events_lost: 7,
            ..Default::default()
        }));
        m.missed(2);
        let text = m.render(9, 100);
        for line in [
            "holonet_flows_total{verdict=\"FORWARDED\",type=\"L3_L4\"} 2",
            "holonet_flows_total{verdict=\"DROPPED\",type=\"L3_L4\"} 1",
            "holonet_flows_total{verdict=\"FORWARDED\",type=\"L7\"} 4",
            "holonet_drops_total{reason=\"POLICY_DENIED\"} 1",
            "holonet_lost_events_total{source=\"PERF_EVENT_RING_BUFFER\"} 7",
            "holonet_http_request_duration_seconds_bucket{status=\"2xx\",le=\"0.0025\"} 0",
            "holonet_http_request_duration_seconds_bucket{status=\"2xx\",le=\"0.005\"} 1",
            "holonet_http_request_duration_seconds_bucket{status=\"2xx\",le=\"0.025\"} 2",
            "holonet_http_request_duration_seconds_bucket{status=\"2xx\",le=\"+Inf\"} 2",
            "holonet_http_request_duration_seconds_count{status=\"2xx\"} 2",
            "holonet_http_request_duration_seconds_bucket{status=\"5xx\",le=\"1\"} 0",
            "holonet_http_request_duration_seconds_bucket{status=\"5xx\",le=\"2.5\"} 1",
            "holonet_flow_store_flows 9",
            "holonet_flow_store_capacity 100",
            "holonet_metrics_missed_events_total 2",
            "# TYPE holonet_http_request_duration_seconds histogram",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        let sum: f64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("holonet_http_request_duration_seconds_sum{status=\"2xx\"} ")
            })
            .and_then(|v| v.parse().ok())
            .expect("2xx sum");
        assert!((sum - 0.023).abs() < 1e-9, "{sum}");
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or_default();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn the_responder_serves_only_get_metrics() {
        let body = || "x".to_string();
        assert_eq!(
            answer(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", body).0,
            200
        );
        assert_eq!(answer(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", body).0, 200);
        assert_eq!(answer(b"GET /other HTTP/1.1\r\n\r\n", body).0, 404);
        assert_eq!(answer(b"POST /metrics HTTP/1.1\r\n\r\n", body).0, 405);
        assert_eq!(answer(b"\x16\x03\x01garbage", body).0, 400);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
