//! `policy trace`: the verdict for one described flow, with an explanation.
//!
//! Exists so scripts and people can ask "would this be allowed, and why?".
//! It evaluates the source's egress then the destination's ingress (L3/L4,
//! then L7 where a request is described), in the order the datapath and the
//! proxies see the traffic, and says in words which rule decided.

use std::net::IpAddr;

use serde::Serialize;

use crate::endpoints::{Cluster, Endpoint, IDENTITY_HOST, IDENTITY_REMOTE_NODE};
use crate::http::HttpRequest;
use crate::model::{Direction, Protocol};
use crate::resolve::{Decision, L7Decision, MatchType, Outcome, PeerRef, Resolved};

/// One end of a traced flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TracePeer {
    /// An endpoint of the endpoints file (index into `Cluster::endpoints`).
    Endpoint(usize),
    /// An address outside the cluster.
    World(IpAddr),
    /// The node the other end runs on.
    Host,
    /// Another node.
    RemoteNode,
}

impl TracePeer {
    /// Parses `name`, `namespace/name`, `world:IP`, `host` or `remote-node`.
    pub fn parse(cluster: &Cluster, s: &str) -> Result<Self, String> {
        if let Some(ip) = s.strip_prefix("world:") {
            return ip
                .parse()
                .map(TracePeer::World)
                .map_err(|_| format!("{ip:?} is not an IP address (expected world:IP)"));
        }
        match s {
            "host" => return Ok(TracePeer::Host),
            "remote-node" => return Ok(TracePeer::RemoteNode),
            "world" => return Err("give the address: world:IP".into()),
            _ => {}
        }
        let ep = cluster.find_endpoint(s)?;
        let i = cluster
            .endpoints
            .iter()
            .position(|e| std::ptr::eq(e, ep))
            .unwrap_or(0);
        Ok(TracePeer::Endpoint(i))
    }

    fn describe(&self, cluster: &Cluster) -> String {
        match self {
            TracePeer::Endpoint(i) => {
                let e = &cluster.endpoints[*i];
                format!("{}/{} (identity {})", e.namespace, e.name, e.identity)
            }
            TracePeer::World(ip) => format!("world {ip} (identity 2)"),
            TracePeer::Host => "the local node (identity 1, host)".into(),
            TracePeer::RemoteNode => "a remote node (identity 6, remote-node)".into(),
        }
    }
}

/// The L7 request of a trace, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceL7 {
    /// No request described: only the connection is traced.
    None,
    /// An HTTP request.
    Http(HttpRequest),
    /// A DNS query name.
    Dns(String),
}

/// What to trace.
#[derive(Clone, Debug)]
pub struct TraceQuery {
    /// Source.
    pub from: TracePeer,
    /// Destination.
    pub to: TracePeer,
    /// TCP or UDP.
    pub proto: Protocol,
    /// Destination port (after service translation).
    pub dport: u16,
    /// The request.
    pub l7: TraceL7,
}

/// The L7 part of a trace result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct L7Result {
    /// `FORWARDED` or `DROPPED`.
    pub verdict: &'static str,
    /// 403 for an HTTP request the proxy denies; null otherwise.
    pub http_status: Option<u16>,
}

/// One side's evaluation, for JSON consumers.
#[derive(Clone, Debug, Serialize)]
pub struct SideResult {
    /// Whether policy is enforced (default-deny) on this side.
    pub enforced: bool,
    /// `ALLOWED`, `DENIED` (deny rule), `DEFAULT_DENIED`, or `NOT_EVALUATED`.
    pub verdict: &'static str,
    /// Match type of the deciding entry.
    pub match_type: Option<MatchType>,
    /// Policies whose rules decided (`Kind/ns/name`).
    pub policies: Vec<String>,
    /// L7 verdict on this side, if a request was checked here.
    pub l7: Option<L7Result>,
}

/// The result of a trace (`-o json` prints exactly this object).
#[derive(Clone, Debug, Serialize)]
pub struct TraceResult {
    /// `FORWARDED` or `DROPPED`: the final outcome.
    pub verdict: &'static str,
    /// `POLICY_DENIED`, `POLICY_DENY`, or null (forwarded, or L7 drop).
    pub drop_reason: Option<&'static str>,
    /// `egress` or `ingress`: the side whose rule dropped it.
    pub dropped_at: Option<Direction>,
    /// Match type of the deciding side (the dropping side, else the
    /// destination's ingress if enforced, else the source's egress).
    pub match_type: Option<MatchType>,
    /// The L7 outcome (null when no L7 rule applied or no request was described).
    pub l7: Option<L7Result>,
    /// Plain-words explanation, one sentence per element.
    pub explanation: Vec<String>,
    /// The source's egress evaluation (null when the source is not an endpoint).
    pub egress: Option<SideResult>,
    /// The destination's ingress evaluation (null when the destination is not an endpoint).
    pub ingress: Option<SideResult>,
}

fn peer_ref(cluster: &Cluster, p: &TracePeer) -> PeerRef {
    let ident = |id: u32| match cluster.identity_index(id) {
        Some(index) => PeerRef::Identity { index, id },
        None => PeerRef::Unknown,
    };
    match p {
        TracePeer::Endpoint(i) => ident(cluster.endpoints[*i].identity),
        TracePeer::World(ip) => PeerRef::World(*ip),
        TracePeer::Host => ident(IDENTITY_HOST),
        TracePeer::RemoteNode => ident(IDENTITY_REMOTE_NODE),
    }
}

struct Side<'a> {
    dir: Direction,
    ep: &'a Endpoint,
    selecting: &'a [String],
    allows: &'a [std::sync::Arc<crate::resolve::ResolvedItem>],
    d: Decision,
    l7: Option<(bool, Vec<String>)>,
}

fn side_verdict(d: &Decision) -> &'static str {
    match d.outcome {
        Outcome::Allowed => "ALLOWED",
        Outcome::Denied => "DENIED",
        Outcome::DefaultDenied => "DEFAULT_DENIED",
    }
}

fn policies_of(d: &Decision) -> Vec<String> {
    let mut v: Vec<String> = d.matched.iter().map(|i| i.policy.display_name()).collect();
    v.sort();
    v.dedup();
    v
}

fn explain_l3l4(side: &Side<'_>, peer: &str, q: &TraceQuery, out: &mut Vec<String>) {
    let who = format!("{}/{}", side.ep.namespace, side.ep.name);
    let port = format!("{}/{}", q.dport, q.proto);
    let dir = side.dir;
    let d = &side.d;
    match d.outcome {
        Outcome::Denied => {
            for i in &d.matched {
                out.push(format!(
                    "{dir} of {who}: DENIED by deny rule {} of {} (peer: {}; {}). Deny rules win over every allow (drop reason POLICY_DENY, 181).",
                    i.origin.path,
                    i.policy.display_name(),
                    i.peer_text,
                    i.port.map_or("all ports".to_string(), |p| format!("port {p}")),
                ));
            }
        }
        Outcome::DefaultDenied => {
            out.push(format!(
                "{dir} of {who}: DROPPED. It is default-deny for {dir} (selected by {}) and no {dir} allow rule matches {peer} on {port} (drop reason POLICY_DENIED, 133).",
                side_policy_names(side)
            ));
            if side.allows.is_empty() {
                out.push(format!("{dir} of {who}: there is no {dir} allow rule at all; add one for {peer} on {port}."));
            } else {
                let mut seen = Vec::new();
                for i in side.allows {
                    let line = format!(
                        "{} {}: {} on {}",
                        i.policy.display_name(),
                        i.origin.path,
                        i.peer_text,
                        i.port.map_or("all ports".to_string(), |p| p.to_string())
                    );
                    if !seen.contains(&line) {
                        seen.push(line);
                    }
                }
                let more = seen.len().saturating_sub(8);
                seen.truncate(8);
                out.push(format!(
                    "{dir} of {who}: the {dir} allow rules are: {}{}.",
                    seen.join("; "),
                    if more > 0 {
                        format!(" (and {more} more)")
                    } else {
                        String::new()
                    }
                ));
            }
        }
        Outcome::Allowed if !d.enforced && d.matched.is_empty() => {
            out.push(format!(
                "{dir} of {who}: not enforced (no rule puts it in {dir} default-deny); allowed."
            ));
        }
        Outcome::Allowed if d.host_exception => {
            out.push(format!(
                "{dir} of {who}: allowed. Traffic from the local node (reserved:host) to its pods is always allowed (Cilium's allow-localhost default)."
            ));
        }
        Outcome::Allowed => {
            let best = d.match_type;
            for i in &d.matched {
                out.push(format!(
                    "{dir} of {who}: allowed by {} rule {} (peer: {}; {}), match type {}{}.",
                    i.policy.display_name(),
                    i.origin.path,
                    i.peer_text,
                    i.port
                        .map_or("all ports".to_string(), |p| format!("port {p}")),
                    i.match_type(),
                    if i.l7.is_some() {
                        ", with L7 rules"
                    } else {
                        ""
                    }
                ));
            }
            if !d.enforced {
                out.push(format!(
                    "{dir} of {who} is not default-deny, so these rules only add L7 visibility."
                ));
            }
            out.push(format!("{dir} of {who}: reported match type {best}."));
        }
    }
}

fn side_policy_names(side: &Side<'_>) -> String {
    if side.selecting.is_empty() {
        "no policy".to_string()
    } else {
        side.selecting.join(", ")
    }
}

fn eval_l7(
    d: &Decision,
    q: &TraceQuery,
    who: &str,
    dir: Direction,
    out: &mut Vec<String>,
) -> Option<(bool, Vec<String>)> {
    match (&d.l7, &q.l7) {
        (L7Decision::None, _) => None,
        (_, TraceL7::None) => {
            out.push(format!(
                "{dir} of {who}: L7 rules apply on this port; describe a request (--http-method/--http-path or --dns-query) to evaluate it."
            ));
            None
        }
        (L7Decision::AllowAll, _) => {
            out.push(format!(
                "{dir} of {who}: L7 rules apply, but another matching allow for this peer and port has no L7 rules (or the rule is not default-deny), so every request is allowed (L7 wildcarding)."
            ));
            Some((true, vec![]))
        }
        (L7Decision::Conflict, _) => {
            out.push(format!("{dir} of {who}: HTTP and DNS rules apply to the same peer and port; Cilium rejects this (conflicting L7 parsers), holonet drops (fail closed)."));
            Some((false, vec![]))
        }
        (L7Decision::Http(rules), TraceL7::Http(req)) => {
            if let Some(r) = rules.iter().find(|r| r.matches(req)) {
                out.push(format!(
                    "{dir} of {who}: HTTP {} {} allowed by rule {} ({}) at {}.",
                    req.method, req.path, r.origin.path, r, r.origin
                ));
                Some((true, vec![]))
            } else {
                let allowed: Vec<String> = rules
                    .iter()
                    .map(|r| format!("{r} [{}]", r.origin.path))
                    .collect();
                out.push(format!(
                    "{dir} of {who}: HTTP {} {} matches none of the HTTP rules; the proxy answers 403 Forbidden. Allowed would be: {}.",
                    req.method,
                    req.path,
                    allowed.join("; ")
                ));
                Some((false, allowed))
            }
        }
        (L7Decision::Dns(rules), TraceL7::Dns(name)) => {
            if let Some(r) = rules.iter().find(|r| r.matches(name)) {
                out.push(format!(
                    "{dir} of {who}: DNS query {name} allowed by {r} ({}).",
                    r.origin.path
                ));
                Some((true, vec![]))
            } else {
                let allowed: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
                out.push(format!(
                    "{dir} of {who}: DNS query {name} matches no DNS rule; the DNS proxy refuses it. Allowed would be: {}.",
                    allowed.join("; ")
                ));
                Some((false, allowed))
            }
        }
        (L7Decision::Http(_), TraceL7::Dns(_)) => {
            out.push(format!("{dir} of {who}: HTTP rules apply but the traffic is a DNS query: it cannot be parsed as HTTP, so it is dropped (fail closed)."));
            Some((false, vec![]))
        }
        (L7Decision::Dns(_), TraceL7::Http(_)) => {
            out.push(format!("{dir} of {who}: DNS rules apply but the traffic is an HTTP request: it cannot be parsed as DNS, so it is dropped (fail closed)."));
            Some((false, vec![]))
        }
    }
}

fn side_result(s: &Side<'_>, q: &TraceQuery) -> SideResult {
    SideResult {
        enforced: s.d.enforced,
        verdict: side_verdict(&s.d),
        match_type: if s.d.match_type == MatchType::None && !s.d.enforced {
            None
        } else {
            Some(s.d.match_type)
        },
        policies: policies_of(&s.d),
        l7: s.l7.as_ref().map(|(ok, _)| l7_result(*ok, q)),
    }
}

fn l7_result(ok: bool, q: &TraceQuery) -> L7Result {
    L7Result {
        verdict: if ok { "FORWARDED" } else { "DROPPED" },
        http_status: if !ok && matches!(q.l7, TraceL7::Http(_)) {
            Some(403)
        } else {
            None
        },
    }
}

/// Traces one flow through the resolved policy.
pub fn trace(resolved: &Resolved, q: &TraceQuery) -> TraceResult {
    let cluster = &resolved.cluster;
    let mut ex = Vec::new();
    ex.push(format!(
        "Flow: {} -> {} {}/{}{}.",
        q.from.describe(cluster),
        q.to.describe(cluster),
        q.dport,
        q.proto,
        match &q.l7 {
            TraceL7::None => String::new(),
            TraceL7::Http(r) => format!(", HTTP {} {}", r.method, r.path),
            TraceL7::Dns(n) => format!(", DNS query {n}"),
        }
    ));
    ex.push("Replies of an allowed connection are always allowed (connection tracking); only this direction is evaluated.".into());
    if let (TracePeer::Endpoint(a), TracePeer::Endpoint(b)) = (&q.from, &q.to) {
        if a == b {
            // A pod talking to itself never leaves its network namespace (and
            // Cilium skips policy for hairpin traffic through its own Service).
            ex.push("Source and destination are the same pod: the traffic stays inside it and no policy applies.".into());
            ex.push("Verdict: FORWARDED.".into());
            return TraceResult {
                verdict: "FORWARDED",
                drop_reason: None,
                dropped_at: None,
                match_type: None,
                l7: None,
                explanation: ex,
                egress: None,
                ingress: None,
            };
        }
    }
    let to_ref = peer_ref(cluster, &q.to);
    let from_ref = peer_ref(cluster, &q.from);
    let mut egress: Option<Side<'_>> = None;
    let mut ingress: Option<Side<'_>> = None;
    let mut result = TraceResult {
        verdict: "FORWARDED",
        drop_reason: None,
        dropped_at: None,
        match_type: None,
        l7: None,
        explanation: vec![],
        egress: None,
        ingress: None,
    };
    let mut l7_seen: Option<L7Result> = None;
    // 1. Source egress: L3/L4, then L7 (the source node's proxy answers first).
    if let TracePeer::Endpoint(i) = q.from {
        let ep = &cluster.endpoints[i];
        let pol = resolved.for_identity(ep.identity);
        let d = pol.egress.decide(&to_ref, q.proto, q.dport);
        let mut s = Side {
            dir: Direction::Egress,
            ep,
            selecting: &pol.egress.selecting,
            allows: &pol.egress.allows,
            d,
            l7: None,
        };
        explain_l3l4(&s, &q.to.describe(cluster), q, &mut ex);
        if s.d.outcome == Outcome::Allowed {
            s.l7 = eval_l7(
                &s.d,
                q,
                &format!("{}/{}", ep.namespace, ep.name),
                Direction::Egress,
                &mut ex,
            );
        }
        egress = Some(s);
    } else {
        ex.push(format!(
            "The source is {}: it has no egress policy here.",
            q.from.describe(cluster)
        ));
    }
    let egress_blocks = egress.as_ref().is_some_and(|s| {
        s.d.outcome != Outcome::Allowed || s.l7.as_ref().is_some_and(|(ok, _)| !ok)
    });
    // 2. Destination ingress.
    if let TracePeer::Endpoint(i) = q.to {
        let ep = &cluster.endpoints[i];
        let pol = resolved.for_identity(ep.identity);
        let d = pol.ingress.decide(&from_ref, q.proto, q.dport);
        let mut s = Side {
            dir: Direction::Ingress,
            ep,
            selecting: &pol.ingress.selecting,
            allows: &pol.ingress.allows,
            d,
            l7: None,
        };
        if !egress_blocks {
            explain_l3l4(&s, &q.from.describe(cluster), q, &mut ex);
            if s.d.outcome == Outcome::Allowed {
                s.l7 = eval_l7(
                    &s.d,
                    q,
                    &format!("{}/{}", ep.namespace, ep.name),
                    Direction::Ingress,
                    &mut ex,
                );
            }
        }
        ingress = Some(s);
    } else {
        ex.push(format!(
            "The destination is {}: it has no ingress policy here.",
            q.to.describe(cluster)
        ));
    }
    for s in [&egress, &ingress].into_iter().flatten() {
        if egress_blocks && s.dir == Direction::Ingress {
            break;
        }
        match s.d.outcome {
            Outcome::Denied | Outcome::DefaultDenied => {
                result.verdict = "DROPPED";
                result.drop_reason = Some(if s.d.outcome == Outcome::Denied {
                    "POLICY_DENY"
                } else {
                    "POLICY_DENIED"
                });
                result.dropped_at = Some(s.dir);
                result.match_type = Some(s.d.match_type);
                result.l7 = None;
                break;
            }
            Outcome::Allowed => {
                if let Some((ok, _)) = &s.l7 {
                    let r = l7_result(*ok, q);
                    if !ok {
                        result.verdict = "DROPPED";
                        result.drop_reason = None;
                        result.dropped_at = Some(s.dir);
                        result.match_type = Some(s.d.match_type);
                        result.l7 = Some(r);
                        break;
                    }
                    l7_seen = Some(r);
                }
            }
        }
    }
    if result.verdict == "FORWARDED" {
        result.l7 = l7_seen;
        let pick = match (&ingress, &egress) {
            (Some(i), _) if i.d.enforced || i.d.match_type != MatchType::None => Some(i),
            (_, Some(e)) if e.d.enforced || e.d.match_type != MatchType::None => Some(e),
            _ => None,
        };
        result.match_type = pick.map(|s| s.d.match_type);
        ex.push("Verdict: FORWARDED.".into());
    } else {
        ex.push(format!(
            "Verdict: DROPPED at {}{}.",
            result.dropped_at.map_or("?".to_string(), |d| d.to_string()),
            match (result.drop_reason, &result.l7) {
                (Some(r), _) => format!(" ({r})"),
                (None, Some(l)) if l.http_status.is_some() =>
                    " by an L7 rule (HTTP 403 Forbidden)".to_string(),
                (None, _) => " by an L7 rule".to_string(),
            }
        ));
    }
    result.egress = egress.as_ref().map(|s| side_result(s, q));
    result.ingress = ingress
        .as_ref()
        .filter(|_| !egress_blocks)
        .map(|s| side_result(s, q));
    result.explanation = ex;
    result
}

impl TraceResult {
    /// Plain text for people: the explanation, one line each.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for l in &self.explanation {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}
