//! holonet's own `holonet.Agent` service over loopback with a real tonic
//! client: capabilities as probed, and flows explained by the policies in
//! force, which change when the agent applies new ones. The policies are
//! the demo's real files; no kernel is involved (the capabilities probe
//! reports what it may, unprivileged or not).

use std::{path::Path, sync::Arc};

use holonet_agent::{
    agent_service::{AgentFacts, AgentService, PoliciesInForce, capabilities_response},
    observer::{
        server::{self, Listen},
        service::ObserverService,
        store::FlowStore,
    },
};
use holonet_policy::{
    diag::SourceFile, endpoints::parse_endpoints, parse::parse_policies, resolve::resolve,
};
use holonet_proto::{
    flow::{Endpoint, Flow, Http, Ip, Layer4, Layer7, Tcp, layer4, layer7},
    holonet::{ExplainFlowRequest, GetCapabilitiesRequest, agent_client::AgentClient},
};
use tokio::sync::watch;
use tonic::{Code, transport::Channel};

const ENDPOINTS: &str = "cluster: default\nendpoints:\n  \
    - {name: coruscanthealth, namespace: galactic-fhir, labels: {app: coruscanthealth}, ip: 10.9.0.1, node: n1}\n  \
    - {name: payer, namespace: galactic-fhir, labels: {org: payer}, ip: 10.9.0.2, node: n1}\n";

fn policies_in_force(files: &[&str]) -> Arc<PoliciesInForce> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/galactic-fhir");
    let sources: Vec<SourceFile> = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(root.join(f)).expect("policy file");
            SourceFile::new(*f, text)
        })
        .collect();
    let parsed = parse_policies(&sources);
    assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
    let cluster = parse_endpoints(&SourceFile::new("endpoints.yaml", ENDPOINTS)).expect("eps");
    Arc::new(PoliciesInForce {
        resolved: Arc::new(resolve(&parsed.policies, Arc::new(cluster))),
        origin: files.join(", "),
    })
}

fn endpoint(pod: &str) -> Endpoint {
    Endpoint {
        namespace: "galactic-fhir".into(),
        pod_name: pod.into(),
        ..Default::default()
    }
}

/// The payer asking the FHIR server for a patient, as GetFlows returns it.
fn payer_asks_for(patient: &str) -> Flow {
    Flow {
        ip: Some(Ip {
            source: "10.9.0.2".into(),
            destination: "10.9.0.1".into(),
            ..Default::default()
        }),
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::Tcp(Tcp {
                source_port: 40_000,
                destination_port: 52_773,
                flags: None,
            })),
        }),
        source: Some(endpoint("payer")),
        destination: Some(endpoint("coruscanthealth")),
        l7: Some(Layer7 {
            record: Some(layer7::Record::Http(Http {
                method: "GET".into(),
                url: format!("http://coruscanthealth:52773/intersystems/fhir/r5/Patient/{patient}"),
                protocol: "HTTP/1.1".into(),
                ..Default::default()
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

struct Served {
    client: AgentClient<Channel>,
    policies: watch::Sender<Option<Arc<PoliciesInForce>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve(policy_mode: &str) -> Served {
    let listeners = server::bind(&Listen {
        tcp: Some("127.0.0.1:0".parse().expect("addr")),
        unix: None,
        allow_remote: false,
    })
    .await
    .expect("bind");
    let addr = listeners.tcp_addr().expect("tcp");
    let (policies, policies_rx) = watch::channel(None);
    let agent = AgentService::new(
        capabilities_response(AgentFacts {
            node_name: "n1".into(),
            tc_mode: "tcx (test)".into(),
            policy_mode: policy_mode.into(),
            interfaces: vec!["veth-test".into()],
            pin_dir: None,
            process: (true, "raw tracepoints (test)".into()),
        }),
        policies_rx,
    );
    let observer = ObserverService::new(Arc::new(FlowStore::new(16)), "n1");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve_with_agent(
        listeners,
        observer,
        Some(agent),
        async move {
            let _ = stopped.await;
        },
    ));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    Served {
        client: AgentClient::new(channel),
        policies,
        _stop: stop,
    }
}

#[tokio::test]
async fn capabilities_say_what_the_node_does_and_what_it_lacks() {
    let mut served = serve("enforce").await;
    let caps = served
        .client
        .get_capabilities(GetCapabilitiesRequest {})
        .await
        .expect("GetCapabilities")
        .into_inner();
    assert_eq!(caps.node_name, "n1");
    assert_eq!(caps.policy_mode, "enforce");
    assert_eq!(caps.interfaces, ["veth-test"]);
    assert!(!caps.kernel_release.is_empty());
    let names: Vec<&str> = caps
        .kernel_capabilities
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    for hook in ["tcx", "kprobe", "ring buffer", "bpf_loop helper"] {
        assert!(names.contains(&hook), "{hook} missing from {names:?}");
    }
    assert!(
        caps.kernel_capabilities
            .iter()
            .all(|c| !c.detail.is_empty()),
        "every capability says how it was found or why it is missing"
    );
    let feature = |name: &str| {
        caps.features
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no feature {name}: {:?}", caps.features))
    };
    assert!(feature("L7 HTTP policy").active);
    // The agent's own account of its socket probe is passed through.
    let attribution = feature("process attribution");
    assert!(attribution.active);
    assert_eq!(attribution.detail, "raw tracepoints (test)");
}

#[tokio::test]
async fn flows_are_explained_by_the_policies_in_force_and_follow_changes() {
    let mut served = serve("enforce").await;
    let explain = |flow: Flow| ExplainFlowRequest { flow: Some(flow) };

    // Before any policy: said plainly, nothing traced.
    let none = served
        .client
        .explain_flow(explain(payer_asks_for("Anakin")))
        .await
        .expect("ExplainFlow")
        .into_inner();
    assert!(!none.traced);
    assert!(none.lines[0].contains("enforces no policies"), "{none:?}");

    // The payer's L7 policy: Vader allowed, Anakin denied, with the
    // allowed requests named.
    served.policies.send_replace(Some(policies_in_force(&[
        "00-denyall-coruscanthealth.yaml",
        "10-l7-visibility.yaml",
        "20-l7-visibility-payer.yaml",
    ])));
    let anakin = served
        .client
        .explain_flow(explain(payer_asks_for("Anakin")))
        .await
        .expect("ExplainFlow")
        .into_inner();
    assert!(anakin.traced, "{anakin:?}");
    assert_eq!(anakin.verdict, "DROPPED");
    assert!(anakin.source.contains("20-l7-visibility-payer.yaml"));
    assert!(anakin.source.contains("node n1"));
    let text = anakin.lines.join("\n");
    assert!(
        text.contains("/intersystems/fhir/r5/Patient/DarthVader"),
        "{text}"
    );
    let vader = served
        .client
        .explain_flow(explain(payer_asks_for("DarthVader")))
        .await
        .expect("ExplainFlow")
        .into_inner();
    assert_eq!(vader.verdict, "FORWARDED", "{vader:?}");

    // Only the deny-all: now the payer is dropped at L3/L4.
    served.policies.send_replace(Some(policies_in_force(&[
        "00-denyall-coruscanthealth.yaml",
    ])));
    let denied = served
        .client
        .explain_flow(explain(payer_asks_for("DarthVader")))
        .await
        .expect("ExplainFlow")
        .into_inner();
    assert_eq!(denied.verdict, "DROPPED", "{denied:?}");
    assert!(!denied.drop_reason.is_empty(), "{denied:?}");
}

#[tokio::test]
async fn bad_explain_requests_get_clear_errors() {
    let mut served = serve("observe").await;
    served.policies.send_replace(Some(policies_in_force(&[
        "00-denyall-coruscanthealth.yaml",
    ])));
    let missing = served
        .client
        .explain_flow(ExplainFlowRequest { flow: None })
        .await
        .expect_err("no flow");
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert!(missing.message().contains("flow is missing"), "{missing:?}");

    // A flow without addresses or ports cannot be traced; the answer says
    // why instead of guessing.
    let empty = served
        .client
        .explain_flow(ExplainFlowRequest {
            flow: Some(Flow::default()),
        })
        .await
        .expect("ExplainFlow")
        .into_inner();
    assert!(!empty.traced);
    assert!(
        empty.lines[0].starts_with("Cannot trace this flow"),
        "{empty:?}"
    );
}
