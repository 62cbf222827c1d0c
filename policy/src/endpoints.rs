//! Endpoints and security identities.
//!
//! Exists because policies select *identities* (one per distinct label set),
//! not IPs. This module reads the endpoints file, normalises pod labels the
//! way Cilium does and allocates deterministic numeric identities next to the
//! reserved ones (host 1, world 2, ...).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use serde::Serialize;

use crate::diag::{Diagnostic, Severity, SourceFile};
use crate::labels::{
    self, CLUSTER_KEY, Label, LabelSet, NAMESPACE_LABELS_PREFIX, POD_NAMESPACE_KEY,
    SERVICE_ACCOUNT_KEY, SOURCE_K8S, SOURCE_RESERVED,
};
use crate::model::Origin;
use crate::yaml::{self, Node, NodeKind};

/// Reserved identity of the local node.
pub const IDENTITY_HOST: u32 = 1;
/// Reserved identity of everything outside the cluster.
pub const IDENTITY_WORLD: u32 = 2;
/// Reserved identity of endpoints Cilium does not manage.
pub const IDENTITY_UNMANAGED: u32 = 3;
/// Reserved identity of health endpoints.
pub const IDENTITY_HEALTH: u32 = 4;
/// Reserved identity of endpoints whose identity is not resolved yet.
pub const IDENTITY_INIT: u32 = 5;
/// Reserved identity of other nodes.
pub const IDENTITY_REMOTE_NODE: u32 = 6;
/// Reserved identity of the Kubernetes API server.
pub const IDENTITY_KUBE_APISERVER: u32 = 7;
/// Reserved identity of Cilium's ingress.
pub const IDENTITY_INGRESS: u32 = 8;
/// First identity number given to label sets.
pub const FIRST_ALLOCATED_IDENTITY: u32 = 256;
/// Last identity number given to label sets.
pub const LAST_ALLOCATED_IDENTITY: u32 = 65535;

/// The reserved identities: (number, `reserved:` label key).
pub const RESERVED_IDENTITIES: [(u32, &str); 8] = [
    (IDENTITY_HOST, "host"),
    (IDENTITY_WORLD, "world"),
    (IDENTITY_UNMANAGED, "unmanaged"),
    (IDENTITY_HEALTH, "health"),
    (IDENTITY_INIT, "init"),
    (IDENTITY_REMOTE_NODE, "remote-node"),
    (IDENTITY_KUBE_APISERVER, "kube-apiserver"),
    (IDENTITY_INGRESS, "ingress"),
];

/// A security identity: a number for a label set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The numeric identity.
    pub id: u32,
    /// The labels it stands for.
    #[serde(serialize_with = "ser_labels")]
    pub labels: LabelSet,
    /// Whether it is one of the reserved identities.
    pub reserved: bool,
}

impl Endpoint {
    /// Every address of the pod: `ip`, then `ips`.
    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        std::iter::once(self.ip).chain(self.extra_ips.iter().copied())
    }
}

fn ser_labels<S: serde::Serializer>(l: &LabelSet, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(l.iter().map(|l| l.to_string()))
}

/// One pod of the endpoints file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// Pod name.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod labels as written (without source).
    pub pod_labels: Vec<(String, String)>,
    /// Pod IP.
    pub ip: IpAddr,
    /// The pod's other addresses (`ips:`), e.g. its IPv6 address in a
    /// dual-stack cluster: the same endpoint and identity.
    pub extra_ips: Vec<IpAddr>,
    /// Node the pod runs on.
    pub node: String,
    /// Service account.
    pub service_account: String,
    /// The identity number of its normalised labels.
    pub identity: u32,
}

/// The cluster: endpoints and every identity (reserved ones first).
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    /// Cluster name (`io.cilium.k8s.policy.cluster`).
    pub name: String,
    /// Endpoints in file order.
    pub endpoints: Vec<Endpoint>,
    /// Identities: the 8 reserved ones, then allocated ones sorted by number.
    pub identities: Vec<Identity>,
    by_id: HashMap<u32, usize>,
}

/// Why the endpoints file could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct EndpointsError(pub Vec<Diagnostic>);

/// Normalises a pod's labels the way Cilium builds its identity labels.
pub fn pod_identity_labels(
    cluster: &str,
    namespace: &str,
    service_account: &str,
    pod_labels: &[(String, String)],
    namespace_labels: &[(String, String)],
) -> LabelSet {
    let mut v = Vec::new();
    let k8s = |key: &str, value: &str| Label {
        source: SOURCE_K8S.into(),
        key: key.into(),
        value: value.into(),
    };
    for (k, val) in pod_labels {
        let (src, key) = labels::split_source(k, SOURCE_K8S);
        if labels::is_ignored_pod_label(key) {
            continue;
        }
        v.push(Label {
            source: src.into(),
            key: key.into(),
            value: val.clone(),
        });
    }
    v.push(k8s(POD_NAMESPACE_KEY, namespace));
    v.push(k8s(SERVICE_ACCOUNT_KEY, service_account));
    v.push(k8s(CLUSTER_KEY, cluster));
    v.push(k8s(
        &format!("{NAMESPACE_LABELS_PREFIX}kubernetes.io/metadata.name"),
        namespace,
    ));
    for (k, val) in namespace_labels {
        v.push(k8s(&format!("{NAMESPACE_LABELS_PREFIX}{k}"), val));
    }
    LabelSet::new(v)
}

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Cluster {
    /// Builds a cluster from endpoints whose `identity` is filled in here,
    /// given each endpoint's identity labels.
    pub fn new(name: &str, endpoints: Vec<(Endpoint, LabelSet)>) -> Self {
        let mut identities: Vec<Identity> = RESERVED_IDENTITIES
            .iter()
            .map(|(id, key)| Identity {
                id: *id,
                labels: LabelSet::new(vec![Label {
                    source: SOURCE_RESERVED.into(),
                    key: (*key).into(),
                    value: String::new(),
                }]),
                reserved: true,
            })
            .collect();
        // Deterministic allocation: each label set hashes to a slot; collisions
        // probe forward in the sorted order of label sets.
        let sets: BTreeSet<&LabelSet> = endpoints.iter().map(|(_, l)| l).collect();
        let span = (LAST_ALLOCATED_IDENTITY - FIRST_ALLOCATED_IDENTITY + 1) as u64;
        let mut used: HashMap<u32, ()> = HashMap::new();
        let mut number: HashMap<&LabelSet, u32> = HashMap::new();
        for set in sets {
            let mut slot = fnv1a(&set.to_string()) % span;
            let mut tries = 0u64;
            while used.contains_key(&(FIRST_ALLOCATED_IDENTITY + slot as u32)) && tries < span {
                slot = (slot + 1) % span;
                tries += 1;
            }
            let id = FIRST_ALLOCATED_IDENTITY + slot as u32;
            used.insert(id, ());
            number.insert(set, id);
        }
        let mut allocated: Vec<Identity> = number
            .iter()
            .map(|(l, id)| Identity {
                id: *id,
                labels: (*l).clone(),
                reserved: false,
            })
            .collect();
        allocated.sort_by_key(|i| i.id);
        identities.extend(allocated);
        let eps = endpoints
            .iter()
            .map(|(e, l)| Endpoint {
                identity: number.get(l).copied().unwrap_or(IDENTITY_INIT),
                ..e.clone()
            })
            .collect();
        let by_id = identities
            .iter()
            .enumerate()
            .map(|(i, x)| (x.id, i))
            .collect();
        Self {
            name: name.into(),
            endpoints: eps,
            identities,
            by_id,
        }
    }

    /// Index of an identity number in [`Cluster::identities`].
    pub fn identity_index(&self, id: u32) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    /// The identity with this number.
    pub fn identity(&self, id: u32) -> Option<&Identity> {
        self.identity_index(id).map(|i| &self.identities[i])
    }

    /// Finds an endpoint by `name` or `namespace/name`.
    pub fn find_endpoint(&self, spec: &str) -> Result<&Endpoint, String> {
        let (ns, name) = match spec.split_once('/') {
            Some((ns, n)) => (Some(ns), n),
            None => (None, spec),
        };
        let found: Vec<&Endpoint> = self
            .endpoints
            .iter()
            .filter(|e| e.name == name && ns.is_none_or(|ns| e.namespace == ns))
            .collect();
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(format!("no endpoint named {spec:?} in the endpoints file")),
            many => Err(format!(
                "endpoint name {spec:?} is ambiguous ({}); use namespace/name",
                many.iter()
                    .map(|e| format!("{}/{}", e.namespace, e.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Finds an endpoint by any of its addresses.
    pub fn endpoint_by_ip(&self, ip: IpAddr) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.ips().any(|a| a == ip))
    }
}

fn d(file: &str, n: &Node, path: &str, msg: impl Into<String>) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        origin: Origin::new(file, n.mark, path),
        object: None,
        message: msg.into(),
    }
}

fn map_of(n: &Node) -> Option<&[(Node, Node)]> {
    match &n.kind {
        NodeKind::Map(m) => Some(m),
        _ => None,
    }
}

fn field<'a>(m: &'a [(Node, Node)], k: &str) -> Option<&'a Node> {
    m.iter()
        .find(|(key, v)| key.as_str() == Some(k) && !v.is_null())
        .map(|(_, v)| v)
}

fn string_map(
    file: &str,
    n: &Node,
    path: &str,
    errs: &mut Vec<Diagnostic>,
) -> Vec<(String, String)> {
    let Some(m) = map_of(n) else {
        errs.push(d(
            file,
            n,
            path,
            "expected a mapping of label keys to values",
        ));
        return vec![];
    };
    let mut out = Vec::new();
    for (k, v) in m {
        let key = k.as_str().unwrap_or_default().to_string();
        match v.as_str() {
            Some(val) => {
                if let Err(e) = labels::validate_value(val) {
                    errs.push(d(file, v, &format!("{path}.{key}"), e));
                }
                out.push((
                    key,
                    if v.is_null() {
                        String::new()
                    } else {
                        val.to_string()
                    },
                ));
            }
            None => errs.push(d(
                file,
                v,
                &format!("{path}.{key}"),
                "label values must be strings",
            )),
        }
    }
    out
}

/// Parses an endpoints file (see docs/policy.md for the format).
pub fn parse_endpoints(src: &SourceFile) -> Result<Cluster, EndpointsError> {
    let file = src.name.as_str();
    let docs = yaml::parse_documents(&src.text).map_err(|e| {
        EndpointsError(vec![Diagnostic {
            severity: Severity::Error,
            origin: Origin::new(file, e.mark, ""),
            object: None,
            message: e.message,
        }])
    })?;
    let mut errs = Vec::new();
    let Some(root) = docs.iter().find(|d| !d.is_null()) else {
        return Err(EndpointsError(vec![Diagnostic {
            severity: Severity::Error,
            origin: Origin::new(file, Default::default(), ""),
            object: None,
            message: "the endpoints file is empty".into(),
        }]));
    };
    let Some(top) = map_of(root) else {
        return Err(EndpointsError(vec![d(
            file,
            root,
            "",
            "expected a mapping with `cluster` and `endpoints`",
        )]));
    };
    for (k, _) in top {
        if !matches!(k.as_str(), Some("cluster" | "endpoints" | "namespaces")) {
            errs.push(d(
                file,
                k,
                k.as_str().unwrap_or_default(),
                "unknown field (expected cluster, namespaces, endpoints)",
            ));
        }
    }
    let cluster = field(top, "cluster")
        .and_then(|n| n.as_str())
        .unwrap_or("default")
        .to_string();
    let mut ns_labels: HashMap<String, Vec<(String, String)>> = HashMap::new();
    if let Some(nss) = field(top, "namespaces") {
        match map_of(nss) {
            Some(m) => {
                for (k, v) in m {
                    let ns = k.as_str().unwrap_or_default().to_string();
                    let path = format!("namespaces.{ns}");
                    let labels = match map_of(v).and_then(|m| field(m, "labels")) {
                        Some(l) => string_map(file, l, &format!("{path}.labels"), &mut errs),
                        None => vec![],
                    };
                    ns_labels.insert(ns, labels);
                }
            }
            None => errs.push(d(
                file,
                nss,
                "namespaces",
                "expected a mapping of namespace name to {labels: {...}}",
            )),
        }
    }
    let mut eps = Vec::new();
    let list = match field(top, "endpoints").map(|n| &n.kind) {
        Some(NodeKind::Seq(s)) => s.as_slice(),
        _ => {
            errs.push(d(file, root, "endpoints", "missing `endpoints` list"));
            &[]
        }
    };
    let mut seen = BTreeSet::new();
    for (i, e) in list.iter().enumerate() {
        let path = format!("endpoints[{i}]");
        let Some(m) = map_of(e) else {
            errs.push(d(file, e, &path, "expected a mapping"));
            continue;
        };
        for (k, _) in m {
            if !matches!(
                k.as_str(),
                Some("name" | "namespace" | "labels" | "ip" | "ips" | "node" | "serviceAccount")
            ) {
                errs.push(d(
                    file,
                    k,
                    &format!("{path}.{}", k.as_str().unwrap_or_default()),
                    "unknown field (expected name, namespace, labels, ip, ips, node, serviceAccount)",
                ));
            }
        }
        let name = field(m, "name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            errs.push(d(file, e, &format!("{path}.name"), "missing name"));
        }
        let namespace = field(m, "namespace")
            .and_then(|n| n.as_str())
            .unwrap_or("default")
            .to_string();
        if !seen.insert((namespace.clone(), name.clone())) {
            errs.push(d(
                file,
                e,
                &path,
                format!("duplicate endpoint {namespace}/{name}"),
            ));
        }
        let pod_labels = field(m, "labels")
            .map(|l| string_map(file, l, &format!("{path}.labels"), &mut errs))
            .unwrap_or_default();
        let ip = match field(m, "ip")
            .and_then(|n| n.as_str())
            .map(|s| s.parse::<IpAddr>())
        {
            Some(Ok(ip)) => ip,
            _ => {
                errs.push(d(
                    file,
                    field(m, "ip").unwrap_or(e),
                    &format!("{path}.ip"),
                    "missing or invalid ip",
                ));
                continue;
            }
        };
        let mut extra_ips = Vec::new();
        if let Some(list) = field(m, "ips") {
            match &list.kind {
                NodeKind::Seq(items) => {
                    for (j, item) in items.iter().enumerate() {
                        match item.as_str().map(str::parse::<IpAddr>) {
                            Some(Ok(addr)) if addr != ip && !extra_ips.contains(&addr) => {
                                extra_ips.push(addr);
                            }
                            Some(Ok(_)) => errs.push(d(
                                file,
                                item,
                                &format!("{path}.ips[{j}]"),
                                "address listed twice for this endpoint",
                            )),
                            _ => errs.push(d(
                                file,
                                item,
                                &format!("{path}.ips[{j}]"),
                                "invalid IP address",
                            )),
                        }
                    }
                }
                _ => errs.push(d(
                    file,
                    list,
                    &format!("{path}.ips"),
                    "expected a list of IP addresses",
                )),
            }
        }
        let node = field(m, "node")
            .and_then(|n| n.as_str())
            .unwrap_or("node-1")
            .to_string();
        let service_account = field(m, "serviceAccount")
            .and_then(|n| n.as_str())
            .unwrap_or("default")
            .to_string();
        let nsl = ns_labels.get(&namespace).cloned().unwrap_or_default();
        let set = pod_identity_labels(&cluster, &namespace, &service_account, &pod_labels, &nsl);
        eps.push((
            Endpoint {
                name,
                namespace,
                pod_labels,
                ip,
                extra_ips,
                node,
                service_account,
                identity: 0,
            },
            set,
        ));
    }
    if !errs.is_empty() {
        return Err(EndpointsError(errs));
    }
    Ok(Cluster::new(&cluster, eps))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: &str = "cluster: default\nendpoints:\n  - name: tiefighter\n    namespace: default\n    labels: {org: empire, class: tiefighter}\n    ip: 10.244.0.11\n    node: node-1\n  - name: tiefighter2\n    labels: {org: empire, class: tiefighter, pod-template-hash: abc}\n    ip: 10.244.0.12\n    node: node-2\n  - name: xwing\n    labels: {org: alliance}\n    ip: 10.244.0.13\n";

    #[test]
    fn identities_are_shared_and_deterministic() {
        let c = parse_endpoints(&SourceFile::new("e.yaml", EPS)).unwrap();
        let c2 = parse_endpoints(&SourceFile::new("e.yaml", EPS)).unwrap();
        assert_eq!(
            c.endpoints[0].identity, c.endpoints[1].identity,
            "pod-template-hash is not identity-relevant"
        );
        assert_ne!(c.endpoints[0].identity, c.endpoints[2].identity);
        assert_eq!(c.endpoints[0].identity, c2.endpoints[0].identity);
        assert!(c.endpoints[0].identity >= FIRST_ALLOCATED_IDENTITY);
        assert_eq!(
            c.identity(IDENTITY_WORLD).unwrap().labels.to_string(),
            "reserved:world"
        );
        let labels = c
            .identity(c.endpoints[0].identity)
            .unwrap()
            .labels
            .to_string();
        assert!(
            labels.contains("k8s:io.kubernetes.pod.namespace=default"),
            "{labels}"
        );
        assert!(
            labels.contains("k8s:io.cilium.k8s.policy.serviceaccount=default"),
            "{labels}"
        );
        assert!(
            labels.contains("k8s:io.cilium.k8s.policy.cluster=default"),
            "{labels}"
        );
        assert!(labels.contains("k8s:org=empire"), "{labels}");
    }

    #[test]
    fn lookup_and_errors() {
        let c = parse_endpoints(&SourceFile::new("e.yaml", EPS)).unwrap();
        assert!(c.find_endpoint("default/xwing").is_ok());
        assert!(c.find_endpoint("xwing").is_ok());
        assert!(c.find_endpoint("nope").is_err());
        let bad = parse_endpoints(&SourceFile::new(
            "b.yaml",
            "endpoints:\n  - name: a\n    ip: nope\n",
        ))
        .unwrap_err();
        assert!(
            bad.to_string()
                .contains("b.yaml:3:9: error: endpoints[0].ip"),
            "{bad}"
        );
    }

    #[test]
    fn a_dual_stack_pod_is_one_endpoint_with_both_addresses() {
        let c = parse_endpoints(&SourceFile::new(
            "d.yaml",
            "endpoints:\n  - {name: a, labels: {app: a}, ip: 10.0.0.1, ips: [\"fd00::1\"]}\n",
        ))
        .unwrap();
        let by_v4 = c.endpoint_by_ip("10.0.0.1".parse().unwrap()).unwrap();
        let by_v6 = c.endpoint_by_ip("fd00::1".parse().unwrap()).unwrap();
        assert_eq!(by_v4, by_v6);
        assert_eq!(
            by_v6.ips().map(|ip| ip.to_string()).collect::<Vec<_>>(),
            ["10.0.0.1", "fd00::1"]
        );
        for (ips, error) in [
            ("[nope]", "endpoints[0].ips[0]: invalid IP address"),
            (
                "[\"10.0.0.1\"]",
                "endpoints[0].ips[0]: address listed twice",
            ),
            ("fd00::1", "endpoints[0].ips: expected a list"),
        ] {
            let text = format!("endpoints:\n  - {{name: a, ip: 10.0.0.1, ips: {ips}}}\n");
            let err = parse_endpoints(&SourceFile::new("e.yaml", text)).unwrap_err();
            assert!(err.to_string().contains(error), "{ips}: {err}");
        }
    }
}
