//! The agent end to end: the probe in this kernel on two pods' veths, the
//! pipeline turning events into Hubble flows, the gRPC server, and a real
//! tonic client asking for them, while a real curl talks to a real server.
//! Also checks that the recording written meanwhile reads back as Hubble
//! GetFlowsResponse lines.

use std::{sync::Arc, time::Duration};

use holonet_agent::{
    events::EventReader,
    loader::{TcMode, TcProbe},
    observer::{
        endpoints,
        export::{self, ExportConfig},
        pipeline::Pipeline,
        server::{self, Listen},
        service::ObserverService,
        store::FlowStore,
    },
};
use holonet_lab::{Lab, wait_for_tcp_listener};
use holonet_proto::{
    flow::{Flow, FlowType, L7FlowType, TraceObservationPoint, TrafficDirection, Verdict, layer7},
    observer::{
        GetFlowsRequest, GetFlowsResponse, get_flows_response::ResponseTypes,
        observer_client::ObserverClient,
    },
};
use holonet_tests::{ScratchDir, privileged};
use tokio_stream::StreamExt;

fn flows(responses: &[GetFlowsResponse]) -> Vec<Flow> {
    responses
        .iter()
        .filter_map(|r| match &r.response_types {
            Some(ResponseTypes::Flow(f)) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

fn http_flows(all: &[Flow], path: &str, kind: L7FlowType) -> Vec<Flow> {
    all.iter()
        .filter(|f| {
            f.l7.as_ref().is_some_and(|l7| l7.r#type() == kind)
                && matches!(
                    f.l7.as_ref().and_then(|l7| l7.record.as_ref()),
                    Some(layer7::Record::Http(h)) if h.url.ends_with(path)
                )
        })
        .cloned()
        .collect()
}

fn http_requests(all: &[Flow], path: &str) -> Vec<Flow> {
    http_flows(all, path, L7FlowType::Request)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_requests_come_out_of_get_flows_as_hubble_flows() {
    let Some(_watchdog) = privileged("observer_e2e") else {
        return;
    };
    let mut lab = Lab::new().expect("lab");
    let client = lab.add_pod("client").expect("client pod");
    let server_pod = lab.add_pod("server").expect("server pod");
    let scratch = ScratchDir::new("observer-e2e");
    let docroot = scratch.path().to_path_buf();
    std::fs::write(docroot.join("a.txt"), "a\n").expect("file");
    let _server = server_pod
        .spawn(
            "http server",
            "python3",
            &[
                "-m",
                "http.server",
                "8080",
                "--directory",
                &docroot.to_string_lossy(),
            ],
        )
        .expect("server");
    wait_for_tcp_listener(&server_pod.netns, 8080, Duration::from_secs(15)).expect("listening");

    let mut probe = TcProbe::load(TcMode::Auto).expect("probe");
    probe.attach(&client.host_ifname).expect("attach client");
    probe
        .attach(&server_pod.host_ifname)
        .expect("attach server");
    let store = Arc::new(FlowStore::new(4096));
    let reader = EventReader::new(probe.take_events().expect("events")).expect("reader");
    // Name the two pods the way an endpoints file would.
    let endpoints_file = docroot.join("endpoints.yaml");
    std::fs::write(
        &endpoints_file,
        format!(
            "cluster: default\nendpoints:\n  - name: payer\n    namespace: galactic-fhir\n    labels: {{org: payer}}\n    ip: {}\n    node: e2e-node\n  - name: coruscanthealth\n    namespace: galactic-fhir\n    labels: {{app: fhir}}\n    ip: {}\n    node: e2e-node\n",
            client.ip, server_pod.ip
        ),
    )
    .expect("endpoints file");
    let directory = endpoints::load(&endpoints_file, "e2e-node").expect("endpoints load");
    let (_endpoints_tx, endpoints_rx) = tokio::sync::watch::channel(Arc::new(directory));
    let pipeline = Pipeline::new("e2e-node", probe.interfaces().clone(), endpoints_rx);
    let pipeline_task = tokio::spawn(pipeline.run(reader, Arc::clone(&store), |_| {}));
    let export_path = docroot.join("flows.log");
    let export_task = tokio::spawn(export::run(
        Arc::clone(&store),
        ExportConfig {
            path: export_path.clone(),
            max_size_bytes: 10 * 1024 * 1024,
            max_backups: 1,
        },
        "e2e-node".into(),
    ));
    let listeners = server::bind(&Listen {
        tcp: Some("127.0.0.1:0".parse().expect("addr")),
        unix: None,
        allow_remote: false,
    })
    .await
    .expect("bind");
    let addr = listeners.tcp_addr().expect("tcp");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server_task = tokio::spawn(server::serve(
        listeners,
        ObserverService::new(Arc::clone(&store), "e2e-node"),
        async move {
            let _ = stopped.await;
        },
    ));
    let mut api = ObserverClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");

    // A follower started before the traffic sees it live.
    let mut follow = api
        .get_flows(GetFlowsRequest {
            follow: true,
            ..Default::default()
        })
        .await
        .expect("follow")
        .into_inner();

    let url = format!("http://{}:8080/a.txt?x=1", server_pod.ip);
    let out = tokio::process::Command::from(client.command(
        "curl",
        &["-sS", "-o", "/dev/null", "-w", "%{http_code}", &url],
    ))
    .output()
    .await
    .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");

    let mut live = Vec::new();
    // The request and its response (which the probe reports a moment
    // later, with the reply) before looking at the history.
    while http_requests(&flows(&live), "/a.txt?x=1").is_empty()
        || http_flows(&flows(&live), "/a.txt?x=1", L7FlowType::Response).is_empty()
    {
        let item = tokio::time::timeout(Duration::from_secs(10), follow.next())
            .await
            .expect("live flows within 10 s")
            .expect("stream open")
            .expect("ok");
        live.push(item);
    }

    // History: the request, reported once, where it reached the server
    // (both veths have the probe).
    let mut history = api
        .get_flows(GetFlowsRequest {
            number: 1000,
            ..Default::default()
        })
        .await
        .expect("GetFlows")
        .into_inner();
    let mut got = Vec::new();
    while let Some(item) = history.next().await {
        got.push(item.expect("ok"));
    }
    let all = flows(&got);
    let requests = http_requests(&all, "/a.txt?x=1");
    assert_eq!(requests.len(), 1, "one request, reported once");
    for f in &requests {
        assert_eq!(f.verdict(), Verdict::Forwarded);
        assert_eq!(f.r#type(), FlowType::L7);
        assert_eq!(f.node_name, "e2e-node");
        assert_eq!(f.is_reply.map(|b| b.value), Some(false));
        let ip = f.ip.as_ref().expect("ip");
        assert_eq!(ip.source, client.ip.to_string());
        assert_eq!(ip.destination, server_pod.ip.to_string());
        let l7 = f.l7.as_ref().expect("l7");
        assert_eq!(l7.r#type(), L7FlowType::Request);
        let Some(layer7::Record::Http(http)) = &l7.record else {
            panic!("http");
        };
        assert_eq!(
            (http.method.as_str(), http.protocol.as_str()),
            ("GET", "HTTP/1.1")
        );
        let host = format!("{}:8080", server_pod.ip);
        assert_eq!(f.summary, format!("HTTP/1.1 GET http://{host}/a.txt?x=1"));
        let src = f.source.as_ref().expect("source endpoint");
        assert_eq!(
            (src.namespace.as_str(), src.pod_name.as_str()),
            ("galactic-fhir", "payer")
        );
        assert!(
            src.labels.iter().any(|l| l == "k8s:org=payer"),
            "{:?}",
            src.labels
        );
        let dst = f.destination.as_ref().expect("destination endpoint");
        assert_eq!(dst.pod_name, "coruscanthealth");
        assert_ne!(src.identity, dst.identity);
        assert!(!f.uuid.is_empty());
    }
    // The response: reported once, where it reached the client, paired
    // with its request (reported at the server's veth), with the status code
    // and the time between them.
    let responses = http_flows(&all, "/a.txt?x=1", L7FlowType::Response);
    assert_eq!(responses.len(), 1, "one response, reported once");
    for f in &responses {
        assert_eq!(f.is_reply.map(|b| b.value), Some(true));
        let l7 = f.l7.as_ref().expect("l7");
        let Some(layer7::Record::Http(http)) = &l7.record else {
            panic!("http");
        };
        assert_eq!((http.code, http.method.as_str()), (200, "GET"));
        assert!(l7.latency_ns > 0, "latency measured: {f:?}");
        assert!(f.summary.starts_with("HTTP/1.0 200 "), "{}", f.summary);
        assert_eq!(
            f.source.as_ref().expect("source").pod_name,
            "coruscanthealth"
        );
    }
    // The request entered the server: its ingress.
    assert_eq!(requests[0].traffic_direction(), TrafficDirection::Ingress);
    let syns: Vec<&Flow> = all
        .iter()
        .filter(|f| f.summary == "TCP Flags: SYN")
        .collect();
    assert_eq!(syns.len(), 1, "the SYN, reported once");
    assert_eq!(
        syns[0].trace_observation_point(),
        TraceObservationPoint::ToEndpoint,
        "reported where it was delivered"
    );

    // The recording holds the same request as Hubble-format lines.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let recorded = std::fs::read_to_string(&export_path).expect("recording written");
    let parsed: Vec<GetFlowsResponse> = recorded
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is a GetFlowsResponse"))
        .collect();
    assert_eq!(http_requests(&flows(&parsed), "/a.txt?x=1").len(), 1);

    // Shutdown: followers end their streams, then the server stops.
    store.close();
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(item) = follow.next().await {
            item.expect("ok");
        }
    })
    .await;
    assert!(drained.is_ok(), "the follow stream ends at shutdown");
    let _ = stop.send(());
    server_task.await.expect("server task").expect("server ok");
    pipeline_task.abort();
    export_task.abort();
    drop(probe);
}
