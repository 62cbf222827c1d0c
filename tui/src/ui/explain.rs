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
//! 3. The agent, when the dashboard streams from one: its `ExplainFlow`
//!    traces the flow the same way through the policies in force on its
//!    node, asked for when the detail pane opens.
//!
//! Nothing here is guessed: when no source says why, the pane says so.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, bail};
use holonet_policy::{
    diag::SourceFile,
    endpoints, files,
    parse::parse_policies,
    resolve::{self, Resolved},
};
use holonet_proto::flow::{Flow, Policy, Verdict};

use super::{
    app::{AgentExplanation, flow_key},
    row,
};

/// Policies and endpoints loaded from files for local explanations.
#[derive(Debug)]
pub(crate) struct PolicyContext {
    resolved: Arc<Resolved>,
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
        let resolved = Arc::new(resolve::resolve(&parsed.policies, Arc::clone(&cluster)));
        let paths: Vec<String> = policies.iter().map(|p| p.display().to_string()).collect();
        Ok(Self {
            resolved,
            origin: format!(
                "--policies {} --endpoints {name} ({} policies)",
                paths.join(" "),
                parsed.policies.len()
            ),
        })
    }
}

#[cfg(test)]
impl PolicyContext {
    /// The policies as the engine resolved them (tests serve them from an
    /// agent).
    pub(crate) fn resolved(&self) -> &Arc<Resolved> {
        &self.resolved
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
            ("", _) if flow.l7.is_some() => lines.push(format!(
                "{verdict} by L7 rules (L7 flows carry no drop reason, as in Hubble)."
            )),
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
            "The flow does not name the policy or rule behind {verdict}."
        ));
    }
    Section {
        source: "Reported by the agent, in the flow".to_owned(),
        lines,
    }
}

/// What the local policy engine says, if policies were loaded.
pub(crate) fn from_policies(ctx: &PolicyContext, flow: &Flow) -> Section {
    let source = format!(
        "Computed here by holonet's policy engine from {} (not reported by the agent)",
        ctx.origin
    );
    Section {
        source,
        lines: holonet_agent::explain::explain(&ctx.resolved, flow).lines,
    }
}

/// What the agent answered (or is answering) for the flow.
pub(crate) fn from_agent(asked: &AgentExplanation) -> Section {
    match &asked.answer {
        None => Section {
            source:
                "Asked the agent, which traces the flow through the policies in force on its node"
                    .to_owned(),
            lines: vec!["Waiting for the answer…".to_owned()],
        },
        Some(Ok(answer)) => Section {
            source: format!("Explained by the agent from {}", answer.source),
            lines: answer.lines.clone(),
        },
        Some(Err(why)) => Section {
            source: "The agent".to_owned(),
            lines: vec![format!("No explanation from the agent: {why}.")],
        },
    }
}

/// Every explanation available for a flow, each with its source: the flow
/// itself, the policy files given to the dashboard, and the agent's answer
/// when it was asked for this flow.
pub(crate) fn explain(
    flow: &Flow,
    ctx: Option<&PolicyContext>,
    agent: Option<&AgentExplanation>,
) -> Vec<Section> {
    let mut out = vec![from_flow(flow)];
    if let Some(ctx) = ctx {
        out.push(from_policies(ctx, flow));
    }
    let agent = agent.filter(|a| a.key == flow_key(flow));
    match agent {
        Some(asked) => out.push(from_agent(asked)),
        None if ctx.is_none() && flow.verdict == Verdict::Dropped as i32 => out.push(Section {
            source: "Policy engine".to_owned(),
            lines: vec![
                "Not consulted: connect to a holonet agent, which explains flows with the policies in force, or start holonet with --policies PATH --endpoints FILE to trace drops through your policy files.".to_owned(),
            ],
        }),
        None => {}
    }
    out
}
