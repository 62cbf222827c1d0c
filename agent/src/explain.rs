//! Why a flow got its verdict, according to a set of resolved policies:
//! the flow becomes the question `holonet policy trace` answers (who to
//! whom, protocol, port, HTTP request or DNS name) and the policy engine's
//! trace is the answer. Pure: the agent runs it for `ExplainFlow` with the
//! policies in force, the dashboard with policy files it was given.

use std::net::IpAddr;

use holonet_flows::fields;
use holonet_policy::{
    endpoints::Cluster,
    http::HttpRequest,
    model::Protocol,
    resolve::Resolved,
    trace::{self, TraceL7, TracePeer, TraceQuery},
};
use holonet_proto::flow::{Endpoint, Flow, layer4};

/// A flow traced through policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// Whether the flow could be traced; when not, `lines` says why.
    pub traced: bool,
    /// `FORWARDED` or `DROPPED` by these policies (empty when untraced).
    pub verdict: String,
    /// Hubble's drop reason name, when dropped by an L3/L4 rule.
    pub drop_reason: String,
    /// One sentence per line.
    pub lines: Vec<String>,
}

/// Traces `flow` through `resolved`.
pub fn explain(resolved: &Resolved, flow: &Flow) -> Explanation {
    match trace_query(&resolved.cluster, flow) {
        Ok(query) => {
            let result = trace::trace(resolved, &query);
            let mut lines = vec![format!(
                "Verdict by these policies: {}{}.",
                result.verdict,
                result
                    .drop_reason
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            )];
            lines.extend(result.explanation.iter().cloned());
            Explanation {
                traced: true,
                verdict: result.verdict.to_string(),
                drop_reason: result.drop_reason.unwrap_or_default().to_string(),
                lines,
            }
        }
        Err(why) => Explanation {
            traced: false,
            verdict: String::new(),
            drop_reason: String::new(),
            lines: vec![format!("Cannot trace this flow: {why}.")],
        },
    }
}

/// One side of the flow as the policy engine knows it: the pod the flow
/// names, else the endpoint with its IP address, else the world.
fn peer(cluster: &Cluster, ep: Option<&Endpoint>, ip: &str) -> Result<TracePeer, String> {
    if let Some(ep) = ep.filter(|e| !e.pod_name.is_empty()) {
        let spec = if ep.namespace.is_empty() {
            ep.pod_name.clone()
        } else {
            format!("{}/{}", ep.namespace, ep.pod_name)
        };
        if let Ok(p) = TracePeer::parse(cluster, &spec) {
            return Ok(p);
        }
        // Pod names carry a replica suffix; the endpoints file may list
        // the workload name instead.
        if let Some(w) = ep.workloads.first() {
            if let Ok(p) = TracePeer::parse(cluster, &format!("{}/{}", ep.namespace, w.name)) {
                return Ok(p);
            }
        }
    }
    match ip.parse::<IpAddr>() {
        Ok(addr) => match cluster.endpoint_by_ip(addr) {
            Some(e) => TracePeer::parse(cluster, &format!("{}/{}", e.namespace, e.name)),
            None => Ok(TracePeer::World(addr)),
        },
        Err(_) => Err(format!(
            "the flow names no pod and no IP address the endpoints know ({ip:?})"
        )),
    }
}

/// The query `holonet policy trace` would need for this flow. Replies are
/// traced in the direction of the request (the client is `from`).
pub fn trace_query(cluster: &Cluster, flow: &Flow) -> Result<TraceQuery, String> {
    let reply = flow.is_reply.is_some_and(|r| r.value);
    let ip = flow.ip.as_ref();
    let (sip, dip) = ip.map_or(("", ""), |i| (i.source.as_str(), i.destination.as_str()));
    let mut from = peer(cluster, flow.source.as_ref(), sip).map_err(|e| format!("source: {e}"))?;
    let mut to =
        peer(cluster, flow.destination.as_ref(), dip).map_err(|e| format!("destination: {e}"))?;
    let (sport, dport) = fields::ports(flow).unzip();
    let (proto, mut port) = match flow.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(layer4::Protocol::Tcp(_)) => (Protocol::Tcp, dport),
        Some(layer4::Protocol::Udp(_)) => (Protocol::Udp, dport),
        _ => return Err("only TCP and UDP flows can be traced".to_owned()),
    };
    if reply {
        std::mem::swap(&mut from, &mut to);
        port = sport;
    }
    let port = port
        .and_then(|p| u16::try_from(p).ok())
        .ok_or("the flow has no destination port")?;
    let l7 = if let Some(h) = fields::http(flow) {
        TraceL7::Http(HttpRequest {
            method: h.method.clone(),
            path: fields::url_path(&h.url).to_owned(),
            host: None,
            headers: h
                .headers
                .iter()
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect(),
        })
    } else if let Some(d) = fields::dns(flow) {
        TraceL7::Dns(d.query.clone())
    } else {
        TraceL7::None
    };
    Ok(TraceQuery {
        from,
        to,
        proto,
        dport: port,
        l7,
    })
}
