//! Names the policies behind a flow's verdict, for Hubble's
//! `egress_allowed_by` / `ingress_allowed_by` / `*_denied_by` fields.
//!
//! The kernel decides from merged map entries that no longer say which
//! policy they came from; the agent asks the policy engine the same
//! question instead (`holonet_policy::trace`, what `holonet policy trace`
//! prints) for the flow's endpoints, protocol and port, and caches the
//! answer per (source, destination, protocol, port) until the policies
//! change.

use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
};

use holonet_policy::{
    model::Protocol,
    resolve::Resolved,
    trace::{SideResult, TraceL7, TracePeer, TraceQuery, trace},
};
use holonet_proto::flow::{self as pb, Verdict};

use super::store::FlowPolicies;
use crate::hashing::FastMap;

/// Answers kept before the cache starts over.
const CACHE_LIMIT: usize = 16_384;

/// The policies that allowed or denied each side of a connection, as the
/// lists flows name (`None`: no policy to name).
#[derive(Debug, Default)]
struct Sides {
    allowed: Option<Arc<FlowPolicies>>,
    denied: Option<Arc<FlowPolicies>>,
}

type Key = (TracePeerKey, TracePeerKey, u8, u16);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum TracePeerKey {
    Endpoint(usize),
    World(IpAddr),
}

/// The policies in force, ready to name the ones behind a verdict.
#[derive(Debug)]
pub struct PolicyNames {
    resolved: Arc<Resolved>,
    by_ip: FastMap<IpAddr, usize>,
    cache: Mutex<FastMap<Key, Arc<Sides>>>,
}

impl PolicyNames {
    /// For the policies `resolved` resolved against its cluster.
    pub fn new(resolved: Arc<Resolved>) -> Self {
        let by_ip = resolved
            .cluster
            .endpoints
            .iter()
            .enumerate()
            .flat_map(|(i, e)| e.ips().map(move |ip| (ip, i)))
            .collect();
        Self {
            resolved,
            by_ip,
            cache: Mutex::new(FastMap::default()),
        }
    }

    /// The policies a flow from `source` to `destination` (IP protocol
    /// `proto`, destination port `dport`) with `verdict` names in its
    /// `*_allowed_by` / `*_denied_by` fields. Replies name none (their
    /// connection's first packet carries the names), nor do flows between
    /// two addresses outside the cluster or of other protocols.
    pub fn for_flow(
        &self,
        source: IpAddr,
        destination: IpAddr,
        proto: u8,
        dport: u16,
        verdict: Verdict,
        is_reply: bool,
    ) -> Option<Arc<FlowPolicies>> {
        if is_reply || !matches!(proto, 6 | 17) {
            return None;
        }
        let peer = |addr: IpAddr| match self.by_ip.get(&addr) {
            Some(i) => TracePeerKey::Endpoint(*i),
            None => TracePeerKey::World(addr),
        };
        let key = (peer(source), peer(destination), proto, dport);
        if matches!(
            (key.0, key.1),
            (TracePeerKey::World(_), TracePeerKey::World(_))
        ) {
            return None;
        }
        let sides = self.sides(key);
        match verdict {
            Verdict::Forwarded | Verdict::Audit => sides.allowed.clone(),
            Verdict::Dropped => sides.denied.clone(),
            _ => None,
        }
    }

    fn sides(&self, key: Key) -> Arc<Sides> {
        if let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return hit;
        }
        let to_peer = |k: TracePeerKey| match k {
            TracePeerKey::Endpoint(i) => TracePeer::Endpoint(i),
            TracePeerKey::World(ip) => TracePeer::World(ip),
        };
        let result = trace(
            &self.resolved,
            &TraceQuery {
                from: to_peer(key.0),
                to: to_peer(key.1),
                proto: if key.2 == 17 {
                    Protocol::Udp
                } else {
                    Protocol::Tcp
                },
                dport: key.3,
                l7: TraceL7::None,
            },
        );
        let pick = |side: &Option<SideResult>, verdict: &str| -> Vec<pb::Policy> {
            side.as_ref()
                .filter(|s| s.enforced && s.verdict == verdict)
                .map(|s| s.policies.iter().filter_map(|p| hubble_policy(p)).collect())
                .unwrap_or_default()
        };
        let lists = |egress, ingress, denied: bool| {
            let policies = if denied {
                FlowPolicies::new(Vec::new(), Vec::new(), egress, ingress)
            } else {
                FlowPolicies::new(egress, ingress, Vec::new(), Vec::new())
            };
            (!policies.is_empty()).then(|| Arc::new(policies))
        };
        let sides = Arc::new(Sides {
            allowed: lists(
                pick(&result.egress, "ALLOWED"),
                pick(&result.ingress, "ALLOWED"),
                false,
            ),
            denied: lists(
                pick(&result.egress, "DENIED"),
                pick(&result.ingress, "DENIED"),
                true,
            ),
        });
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(key, Arc::clone(&sides));
        }
        sides
    }
}

/// A policy named `Kind/namespace/name` or `Kind/name` (as the policy
/// engine names them) as Hubble describes it, with the labels Cilium
/// derives for it.
fn hubble_policy(display: &str) -> Option<pb::Policy> {
    let mut parts = display.split('/');
    let kind = parts.next()?.to_string();
    let (namespace, name) = match (parts.next(), parts.next()) {
        (Some(ns), Some(name)) => (ns.to_string(), name.to_string()),
        (Some(name), None) => (String::new(), name.to_string()),
        _ => return None,
    };
    let mut labels = vec![
        format!("k8s:io.cilium.k8s.policy.derived-from={kind}"),
        format!("k8s:io.cilium.k8s.policy.name={name}"),
    ];
    if !namespace.is_empty() {
        labels.push(format!("k8s:io.cilium.k8s.policy.namespace={namespace}"));
    }
    Some(pb::Policy {
        name,
        namespace,
        labels,
        revision: 0,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use holonet_policy::{
        diag::SourceFile, endpoints::parse_endpoints, parse::parse_policies, resolve::resolve,
    };

    const EPS: &str = "cluster: default\nendpoints:\n  - {name: fhir, namespace: g, labels: {app: fhir}, ip: 10.0.0.1, node: n}\n  - {name: payer, namespace: g, labels: {org: payer}, ip: 10.0.0.2, node: n}\n  - {name: xwing, namespace: g, labels: {org: alliance}, ip: 10.0.0.3, node: n}\n";
    const POLICY: &str = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: fhir-from-payer, namespace: g}\nspec:\n  endpointSelector: {matchLabels: {app: fhir}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {org: payer}}]\n    toPorts: [{ports: [{port: '80', protocol: TCP}]}]\n---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: no-alliance, namespace: g}\nspec:\n  endpointSelector: {matchLabels: {app: fhir}}\n  ingressDeny:\n  - fromEndpoints: [{matchLabels: {org: alliance}}]\n";

    fn names() -> PolicyNames {
        let cluster = parse_endpoints(&SourceFile::new("eps.yaml", EPS)).expect("endpoints");
        let parsed = parse_policies(&[SourceFile::new("p.yaml", POLICY)]);
        assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        PolicyNames::new(Arc::new(resolve(&parsed.policies, Arc::new(cluster))))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn tcp_80(
        names: &PolicyNames,
        src: &str,
        dst: &str,
        verdict: Verdict,
    ) -> Option<Arc<FlowPolicies>> {
        names.for_flow(ip(src), ip(dst), 6, 80, verdict, false)
    }

    fn named(list: &[pb::Policy]) -> Vec<&str> {
        list.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn allowed_flows_name_the_allowing_policy() {
        let names = names();
        let f = tcp_80(&names, "10.0.0.2", "10.0.0.1", Verdict::Forwarded).expect("named");
        assert_eq!(named(f.ingress_allowed_by()), ["fhir-from-payer"]);
        assert_eq!(f.ingress_allowed_by()[0].namespace, "g");
        assert_eq!(f.ingress_allowed_by()[0].kind, "CiliumNetworkPolicy");
        assert!(
            f.egress_allowed_by().is_empty(),
            "the payer's egress is not enforced"
        );
        assert!(f.ingress_denied_by().is_empty());
        let audit = tcp_80(&names, "10.0.0.2", "10.0.0.1", Verdict::Audit).expect("named");
        assert!(Arc::ptr_eq(&f, &audit), "answers are shared, not copied");
    }

    #[test]
    fn denied_flows_name_the_deny_policy() {
        let names = names();
        let f = tcp_80(&names, "10.0.0.3", "10.0.0.1", Verdict::Dropped).expect("named");
        assert_eq!(named(f.ingress_denied_by()), ["no-alliance"]);
        assert!(f.ingress_allowed_by().is_empty());
    }

    #[test]
    fn replies_unknown_addresses_and_other_protocols_are_left_alone() {
        let names = names();
        let reply = names.for_flow(
            ip("10.0.0.2"),
            ip("10.0.0.1"),
            6,
            80,
            Verdict::Forwarded,
            true,
        );
        assert_eq!(reply, None);
        assert_eq!(
            tcp_80(&names, "192.0.2.1", "192.0.2.2", Verdict::Forwarded),
            None
        );
        let icmp = names.for_flow(
            ip("10.0.0.2"),
            ip("10.0.0.1"),
            1,
            0,
            Verdict::Forwarded,
            false,
        );
        assert_eq!(icmp, None);
    }
}
