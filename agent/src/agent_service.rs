//! `holonet.Agent`: holonet's own gRPC service, served beside Hubble's
//! Observer on the same listeners. It answers what Hubble's API has no
//! place for: what this node's kernel and datapath can do
//! (`GetCapabilities`) and why a flow got its verdict under the policies
//! in force here (`ExplainFlow`, the trace `holonet policy trace` prints).

use std::sync::Arc;

use holonet_policy::resolve::Resolved;
use holonet_proto::holonet::{
    Capability, ExplainFlowRequest, ExplainFlowResponse, Feature, GetCapabilitiesRequest,
    GetCapabilitiesResponse, agent_server::Agent,
};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::{
    capabilities::{self, Need},
    explain::explain,
};

/// The policies the datapath enforces now, as the policy engine resolved
/// them, and where they came from.
#[derive(Debug)]
pub struct PoliciesInForce {
    /// Policies resolved against the endpoints.
    pub resolved: Arc<Resolved>,
    /// Where they were read from, for the answer's `source`.
    pub origin: String,
}

/// The `holonet.Agent` service of one agent.
#[derive(Clone, Debug)]
pub struct AgentService {
    capabilities: Arc<GetCapabilitiesResponse>,
    policies: watch::Receiver<Option<Arc<PoliciesInForce>>>,
}

impl AgentService {
    /// Serves `capabilities` as probed at start, and explanations from
    /// whatever `policies` holds at the time of each request.
    pub fn new(
        capabilities: GetCapabilitiesResponse,
        policies: watch::Receiver<Option<Arc<PoliciesInForce>>>,
    ) -> Self {
        Self {
            capabilities: Arc::new(capabilities),
            policies,
        }
    }
}

#[tonic::async_trait]
impl Agent for AgentService {
    async fn get_capabilities(
        &self,
        _request: Request<GetCapabilitiesRequest>,
    ) -> Result<Response<GetCapabilitiesResponse>, Status> {
        Ok(Response::new((*self.capabilities).clone()))
    }

    async fn explain_flow(
        &self,
        request: Request<ExplainFlowRequest>,
    ) -> Result<Response<ExplainFlowResponse>, Status> {
        let Some(flow) = request.into_inner().flow else {
            return Err(Status::invalid_argument(
                "ExplainFlowRequest.flow is missing: send the flow to explain",
            ));
        };
        let node = &self.capabilities.node_name;
        let policies = self.policies.borrow().clone();
        let Some(policies) = policies else {
            return Ok(Response::new(ExplainFlowResponse {
                traced: false,
                verdict: String::new(),
                drop_reason: String::new(),
                lines: vec![format!(
                    "The agent on node {node} enforces no policies (it was started without \
                     --policies), so its datapath forwards everything it observes."
                )],
                source: format!("holonet agent on node {node}"),
            }));
        };
        let explanation = explain(&policies.resolved, &flow);
        Ok(Response::new(ExplainFlowResponse {
            traced: explanation.traced,
            verdict: explanation.verdict,
            drop_reason: explanation.drop_reason,
            lines: explanation.lines,
            source: format!("{} in force on node {node}", policies.origin),
        }))
    }
}

/// What an agent knows about itself when it starts serving.
#[derive(Debug, Default)]
pub struct AgentFacts {
    /// Node name stamped on flows.
    pub node_name: String,
    /// How the TC programs are attached, and why.
    pub tc_mode: String,
    /// `enforce`, `audit`, or `observe` without policies.
    pub policy_mode: String,
    /// Interfaces the probes are attached to.
    pub interfaces: Vec<String>,
    /// Where the probe is pinned, if it is.
    pub pin_dir: Option<String>,
    /// Process attribution: whether it runs, and with which hooks or why
    /// not.
    pub process: (bool, String),
}

/// Probes the kernel (see [`capabilities::probe_all`]) and describes what
/// this agent does with it.
pub fn capabilities_response(facts: AgentFacts) -> GetCapabilitiesResponse {
    let caps = capabilities::probe_all();
    let enforcing = facts.policy_mode != "observe";
    let feature = |name: &str, active: bool, detail: String| Feature {
        name: name.to_owned(),
        active,
        detail,
    };
    let policy_detail = |what: &str| {
        if enforcing {
            format!("{what} ({} mode)", facts.policy_mode)
        } else {
            "no policies loaded (start the agent with --policies and --endpoints)".to_owned()
        }
    };
    let features = vec![
        feature(
            "L3/L4 policy",
            enforcing,
            policy_detail("decided in the kernel at connection start, kept in conntrack"),
        ),
        feature(
            "L7 HTTP policy",
            enforcing,
            policy_detail("every HTTP/1.x request checked in the kernel; denied ones answered 403"),
        ),
        feature(
            "DNS policy",
            enforcing,
            policy_detail(
                "matchName/matchPattern checked on every query; denied ones answered REFUSED",
            ),
        ),
        feature(
            "HTTP and DNS visibility",
            true,
            "requests, responses with latency, and DNS messages on watched ports".to_owned(),
        ),
        feature(
            "pinned datapath",
            facts.pin_dir.is_some(),
            match &facts.pin_dir {
                Some(dir) => format!("enforcement outlives the agent; pinned under {dir}"),
                None => "the probe is detached when the agent exits".to_owned(),
            },
        ),
        feature("process attribution", facts.process.0, facts.process.1),
    ];
    let kernel_capabilities = caps
        .iter()
        .map(|c| Capability {
            name: c.hook.name().to_owned(),
            available: c.available,
            detail: match c.hook.need() {
                Need::Required => format!("{} [required]", c.detail),
                Need::Optional(what) => format!("{} [optional: {what}]", c.detail),
            },
        })
        .collect();
    GetCapabilitiesResponse {
        node_name: facts.node_name,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        kernel_release: capabilities::kernel_release(),
        tc_mode: facts.tc_mode,
        policy_mode: facts.policy_mode,
        interfaces: facts.interfaces,
        pin_dir: facts.pin_dir.unwrap_or_default(),
        kernel_capabilities,
        features,
    }
}
