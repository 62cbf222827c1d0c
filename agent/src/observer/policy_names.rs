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
    collections::HashMap,
    net::IpAddr,
    str::FromStr,
    sync::{Arc, Mutex},
};

use holonet_policy::{
    model::Protocol,
    resolve::Resolved,
    trace::{SideResult, TraceL7, TracePeer, TraceQuery, trace},
};
use holonet_proto::flow::{self as pb, Verdict, layer4};

/// Answers kept before the cache starts over.
const CACHE_LIMIT: usize = 16_384;

/// The policies that allowed or denied each side of a connection.
#[derive(Debug, Default)]
struct Sides {
    egress_allowed: Vec<pb::Policy>,
    ingress_allowed: Vec<pb::Policy>,
    egress_denied: Vec<pb::Policy>,
    ingress_denied: Vec<pb::Policy>,
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
    by_ip: HashMap<IpAddr, usize>,
    cache: Mutex<HashMap<Key, Arc<Sides>>>,
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
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Fills the `*_allowed_by` / `*_denied_by` fields of a flow from a
    /// client towards a server (replies are left alone: their connection's
    /// first packet carries the names).
    pub fn annotate(&self, flow: &mut pb::Flow) {
        if flow.is_reply.is_some_and(|r| r.value) {
            return;
        }
        let Some(ip) = &flow.ip else { return };
        let (Ok(src), Ok(dst)) = (
            IpAddr::from_str(&ip.source),
            IpAddr::from_str(&ip.destination),
        ) else {
            return;
        };
        let (proto, dport) = match flow.l4.as_ref().and_then(|l4| l4.protocol.as_ref()) {
            Some(layer4::Protocol::Tcp(t)) => (6u8, t.destination_port),
            Some(layer4::Protocol::Udp(u)) => (17u8, u.destination_port),
            _ => return,
        };
        let Ok(dport) = u16::try_from(dport) else {
            return;
        };
        let peer = |addr: IpAddr| match self.by_ip.get(&addr) {
            Some(i) => TracePeerKey::Endpoint(*i),
            None => TracePeerKey::World(addr),
        };
        let key = (peer(src), peer(dst), proto, dport);
        if matches!(
            (key.0, key.1),
            (TracePeerKey::World(_), TracePeerKey::World(_))
        ) {
            return;
        }
        let sides = self.sides(key);
        match flow.verdict() {
            Verdict::Forwarded | Verdict::Audit => {
                flow.egress_allowed_by = sides.egress_allowed.clone();
                flow.ingress_allowed_by = sides.ingress_allowed.clone();
            }
            Verdict::Dropped => {
                flow.egress_denied_by = sides.egress_denied.clone();
                flow.ingress_denied_by = sides.ingress_denied.clone();
            }
            _ => {}
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
        let sides = Arc::new(Sides {
            egress_allowed: pick(&result.egress, "ALLOWED"),
            ingress_allowed: pick(&result.ingress, "ALLOWED"),
            egress_denied: pick(&result.egress, "DENIED"),
            ingress_denied: pick(&result.ingress, "DENIED"),
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
    use holonet_proto::flow::{Ip, Layer4, Tcp};

    const EPS: &str = "cluster: default\nendpoints:\n  - {name: fhir, namespace: g, labels: {app: fhir}, ip: 10.0.0.1, node: n}\n  - {name: payer, namespace: g, labels: {org: payer}, ip: 10.0.0.2, node: n}\n  - {name: xwing, namespace: g, labels: {org: alliance}, ip: 10.0.0.3, node: n}\n";
    const POLICY: &str = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: fhir-from-payer, namespace: g}\nspec:\n  endpointSelector: {matchLabels: {app: fhir}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {org: payer}}]\n    toPorts: [{ports: [{port: '80', protocol: TCP}]}]\n---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: no-alliance, namespace: g}\nspec:\n  endpointSelector: {matchLabels: {app: fhir}}\n  ingressDeny:\n  - fromEndpoints: [{matchLabels: {org: alliance}}]\n";

    fn names() -> PolicyNames {
        let cluster = parse_endpoints(&SourceFile::new("eps.yaml", EPS)).expect("endpoints");
        let parsed = parse_policies(&[SourceFile::new("p.yaml", POLICY)]);
        assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        PolicyNames::new(Arc::new(resolve(&parsed.policies, Arc::new(cluster))))
    }

    fn flow(src: &str, dst: &str, verdict: Verdict) -> pb::Flow {
        let mut f = pb::Flow {
            ip: Some(Ip {
                source: src.into(),
                destination: dst.into(),
                ..Default::default()
            }),
            l4: Some(Layer4 {
                protocol: Some(layer4::Protocol::Tcp(Tcp {
                    source_port: 40000,
                    destination_port: 80,
                    flags: None,
                })),
            }),
            ..Default::default()
        };
        f.set_verdict(verdict);
        f
    }

    #[test]
    fn allowed_flows_name_the_allowing_policy() {
        let names = names();
        let mut f = flow("10.0.0.2", "10.0.0.1", Verdict::Forwarded);
        names.annotate(&mut f);
        let allowed: Vec<&str> = f
            .ingress_allowed_by
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(allowed, ["fhir-from-payer"]);
        assert_eq!(f.ingress_allowed_by[0].namespace, "g");
        assert_eq!(f.ingress_allowed_by[0].kind, "CiliumNetworkPolicy");
        assert!(
            f.egress_allowed_by.is_empty(),
            "the payer's egress is not enforced"
        );
        assert!(f.ingress_denied_by.is_empty());
    }

    #[test]
    fn denied_flows_name_the_deny_policy() {
        let names = names();
        let mut f = flow("10.0.0.3", "10.0.0.1", Verdict::Dropped);
        names.annotate(&mut f);
        let denied: Vec<&str> = f
            .ingress_denied_by
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(denied, ["no-alliance"]);
        assert!(f.ingress_allowed_by.is_empty());
    }

    #[test]
    fn replies_and_unknown_addresses_are_left_alone() {
        let names = names();
        let mut reply = flow("10.0.0.2", "10.0.0.1", Verdict::Forwarded);
        reply.is_reply = Some(holonet_proto::pbjson_types::BoolValue { value: true });
        names.annotate(&mut reply);
        assert!(reply.ingress_allowed_by.is_empty());
        let mut outside = flow("192.0.2.1", "192.0.2.2", Verdict::Forwarded);
        names.annotate(&mut outside);
        assert!(outside.ingress_allowed_by.is_empty());
    }
}
