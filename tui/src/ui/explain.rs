//! Why a flow got its verdict, from the sources that can know, each named.
//!
//! 1. The flow itself: `drop_reason_desc`, the policies in
//!    `egress/ingress_denied_by` / `_allowed_by`, `policy_match_type` and
//!    the `Summary`, exactly as the agent reported them.
//! 2. Optionally the local policy engine: when the dashboard was started
//!    with `--policies PATH… --endpoints FILE`, the flow is traced through
//!    those files with `holonet-policy` (the same code as
//!    `holonet policy trace`), which names the rule that decided and, for
//!    an L7 drop, the methods and paths that would have been allowed.
//!
//! The agent does not serve policy explanations yet; nothing here is
//! guessed: when no source says why, the pane says so.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, bail};
use holonet_policy::{
    diag::SourceFile,
    endpoints::{self, Cluster},
    files,
    http::HttpRequest,
    model::Protocol,
    parse::parse_policies,
    resolve::{self, Resolved},
    trace::{self, TraceL7, TracePeer, TraceQuery},
};
use holonet_proto::flow::{Endpoint, Flow, Policy, Verdict, layer4};

use super::row;

/// Policies and endpoints loaded from files for local explanations.
#[derive(Debug)]
pub(crate) struct PolicyContext {
    resolved: Resolved,
    cluster: Arc<Cluster>,
    /// What was loaded, for the pane's attribution line.
    pub(crate) origin: String,
}

impl PolicyContext {
    /// Reads and resolves the policy files and the endpoints file. Any
    /// rejected policy is an error: explaining with part of the policy set
    /// would lie.
    pub(crate) fn load(policies: &[PathBuf], endpoints_file: &Path) -> anyhow::Result<Self> {
        let sources = files::read_sources(policies).context("reading --policies")?;
        let parsed = parse_policies(&sources);
        if !parsed.rejected.is_empty() {
            let errors: Vec<String> = parsed.errors().map(|d| d.to_string()).collect();
            bail!(
                "{} policy object(s) rejected, so flows cannot be explained with them:\n{}",
                parsed.rejected.len(),
                errors.join("\n")
            );
        }
        let name = endpoints_file.display().to_string();
        let text = std::fs::read_to_string(endpoints_file)
            .with_context(|| format!("reading --endpoints {name}"))?;
        let cluster = Arc::new(
            endpoints::parse_endpoints(&SourceFile::new(name.clone(), text))
                .with_context(|| format!("--endpoints {name}"))?,
        );
        let resolved = resolve::resolve(&parsed.policies, Arc::clone(&cluster));
        let paths: Vec<String> = policies.iter().map(|p| p.display().to_string()).collect();
        Ok(Self {
            resolved,
            cluster,
            origin: format!(
                "--policies {} --endpoints {name} ({} policies)",
                paths.join(" "),
                parsed.policies.len()
            ),
        })
    }
}

/// A policy context handed to a running dashboard (`holonet demo` sends a
/// new one each time it applies a policy), shared rather than copied;
/// two updates are equal when they carry the same context.
#[derive(Debug, Clone)]
pub(crate) struct PolicyUpdate(pub(crate) Arc<PolicyContext>);

impl PartialEq for PolicyUpdate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// An explanation section: where it comes from, then its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    /// The source, e.g. "reported by the agent in the flow".
    pub(crate) source: String,
    /// One sentence per line.
    pub(crate) lines: Vec<String>,
}

fn policy_text(p: &Policy) -> String {
    let mut s = String::new();
    if !p.kind.is_empty() {
        s.push_str(&p.kind);
        s.push(' ');
    }
    if !p.namespace.is_empty() {
        s.push_str(&p.namespace);
        s.push('/');
    }
    s.push_str(if p.name.is_empty() {
        "(unnamed)"
    } else {
        &p.name
    });
    if p.revision != 0 {
        s.push_str(&format!(" (revision {})", p.revision));
    }
    s
}

/// What the flow itself says about its verdict.
pub(crate) fn from_flow(flow: &Flow) -> Section {
    let mut lines = Vec::new();
    let verdict = row::verdict_name(flow.verdict);
    if flow.drop_reason_desc != 0 || flow.verdict == Verdict::Dropped as i32 {
        let name = row::drop_reason_name(flow);
        let code = u8::try_from(flow.drop_reason_desc).ok();
        match (name, code.and_then(holonet_flows::names::drop_reason_text)) {
            ("", _) => lines.push(format!("{verdict}, but the flow carries no drop reason.")),
            (n, Some(text)) => lines.push(format!("Drop reason: {n} ({text}).")),
            (n, None) => lines.push(format!("Drop reason: {n}.")),
        }
    }
    for (label, list) in [
        ("Denied by egress policy", &flow.egress_denied_by),
        ("Denied by ingress policy", &flow.ingress_denied_by),
        ("Allowed by egress policy", &flow.egress_allowed_by),
        ("Allowed by ingress policy", &flow.ingress_allowed_by),
    ] {
        for p in list {
            lines.push(format!("{label}: {}.", policy_text(p)));
        }
    }
    if flow.policy_match_type != 0 {
        lines.push(format!(
            "Policy match type: {}.",
            holonet_flows::names::policy_match_type_name(flow.policy_match_type)
        ));
    }
    for l in &flow.policy_log {
        lines.push(format!("Policy log: {l}"));
    }
    if !flow.summary.is_empty() {
        lines.push(format!("Summary: {}", flow.summary));
    }
    let names_policy = !flow.egress_denied_by.is_empty()
        || !flow.ingress_denied_by.is_empty()
        || !flow.egress_allowed_by.is_empty()
        || !flow.ingress_allowed_by.is_empty();
    if !names_policy {
        lines.push(format!(
            "The flow does not name the policy or rule behind {verdict}{}.",
            if flow.verdict == Verdict::Dropped as i32 {
                " (the agent does not report policy correlation yet)"
            } else {
                ""
            }
        ));
    }
    Section {
        source: "Reported by the agent, in the flow".to_owned(),
        lines,
    }
}

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
            "the flow names no pod and no IP address the endpoints file knows ({ip:?})"
        )),
    }
}

/// The query `holonet policy trace` would need for this flow. Replies are
/// traced in the direction of the request (the client is `from`).
pub(crate) fn trace_query(cluster: &Cluster, flow: &Flow) -> Result<TraceQuery, String> {
    let reply = flow.is_reply.is_some_and(|r| r.value);
    let ip = flow.ip.as_ref();
    let (sip, dip) = ip.map_or(("", ""), |i| (i.source.as_str(), i.destination.as_str()));
    let mut from = peer(cluster, flow.source.as_ref(), sip).map_err(|e| format!("source: {e}"))?;
    let mut to =
        peer(cluster, flow.destination.as_ref(), dip).map_err(|e| format!("destination: {e}"))?;
    let (sport, dport) = row::ports(flow);
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
    let l7 = if let Some(h) = row::http(flow) {
        TraceL7::Http(HttpRequest {
            method: h.method.clone(),
            path: row::url_path(&h.url).to_owned(),
            host: None,
            headers: h
                .headers
                .iter()
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect(),
        })
    } else if let Some(q) = row::dns_query(flow) {
        TraceL7::Dns(q.to_owned())
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

/// What the local policy engine says, if policies were loaded.
pub(crate) fn from_policies(ctx: &PolicyContext, flow: &Flow) -> Section {
    let source = format!(
        "Computed here by holonet's policy engine from {} (not reported by the agent)",
        ctx.origin
    );
    let lines = match trace_query(&ctx.cluster, flow) {
        Ok(q) => {
            let r = trace::trace(&ctx.resolved, &q);
            let mut lines = vec![format!(
                "Verdict by these policies: {}{}.",
                r.verdict,
                r.drop_reason.map(|d| format!(" ({d})")).unwrap_or_default()
            )];
            lines.extend(r.explanation.iter().cloned());
            lines
        }
        Err(e) => vec![format!("Cannot trace this flow: {e}.")],
    };
    Section { source, lines }
}

/// Every explanation available for a flow, each with its source.
pub(crate) fn explain(flow: &Flow, ctx: Option<&PolicyContext>) -> Vec<Section> {
    let mut out = vec![from_flow(flow)];
    match ctx {
        Some(ctx) => out.push(from_policies(ctx, flow)),
        None if flow.verdict == Verdict::Dropped as i32 => out.push(Section {
            source: "Policy engine".to_owned(),
            lines: vec![
                "Not consulted: start holonet with --policies PATH --endpoints FILE to trace drops through your policy files (the agent does not serve explanations yet).".to_owned(),
            ],
        }),
        None => {}
    }
    out
}
