//! YAML → validated [`Policy`] objects, with Cilium's validation rules.
//!
//! Exists because policies arrive as multi-document YAML and must be checked
//! field by field (reference section 8) before anything is enforced. Every
//! error names file, line, column and field path; one rejected object never
//! affects the others; a field holonet does not enforce is an error.

use std::sync::Arc;

use crate::cidr::Prefix;
use crate::diag::{Diagnostic, Severity, SourceFile};
use crate::dns::{self, DnsRule};
use crate::http::{HeaderRequirement, HttpRule, parse_header_string};
use crate::labels::{self, POD_NAMESPACE_KEY, SOURCE_ANY, SOURCE_K8S};
use crate::model::{
    CidrSelector, Direction, Entity, L7Rules, Origin, PeerSelector, Policy, PolicyKind,
    PortProtocol, PortRule, Protocol, Rule, RuleItem,
};
use crate::re2::FullMatcher;
use crate::selector::{Operator, Requirement, Selector};
use crate::yaml::{self, Node, NodeKind};

/// Most ports in one `toPorts` item (Cilium's limit).
pub const MAX_PORTS_PER_RULE: usize = 40;

/// A policy object that was rejected, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// `Kind/namespace/name`, or the file name when the YAML itself is broken.
    pub object: String,
    /// Where the object starts.
    pub origin: Origin,
    /// Every error found in it.
    pub errors: Vec<Diagnostic>,
}

/// The result of parsing a set of policy files.
#[derive(Clone, Debug, Default)]
pub struct ParsedPolicies {
    /// Accepted objects, in input order.
    pub policies: Vec<Arc<Policy>>,
    /// Rejected objects with their errors.
    pub rejected: Vec<Rejected>,
    /// Warnings on accepted objects.
    pub warnings: Vec<Diagnostic>,
}

impl ParsedPolicies {
    /// Every error of every rejected object, in order.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.rejected.iter().flat_map(|r| r.errors.iter())
    }
}

/// Parses and validates every policy object in `sources`.
pub fn parse_policies(sources: &[SourceFile]) -> ParsedPolicies {
    let mut out = ParsedPolicies::default();
    for src in sources {
        match yaml::parse_documents(&src.text) {
            Err(e) => {
                let origin = Origin::new(&src.name, e.mark, "");
                out.rejected.push(Rejected {
                    object: src.name.clone(),
                    origin: origin.clone(),
                    errors: vec![Diagnostic {
                        severity: Severity::Error,
                        origin,
                        object: None,
                        message: e.message,
                    }],
                });
            }
            Ok(docs) => {
                for doc in &docs {
                    parse_object(&src.name, doc, "", &mut out);
                }
            }
        }
    }
    // Two objects with one kind, namespace and name: `kubectl apply` would
    // keep only the last; silently merging them would widen, so reject the later.
    let mut seen: std::collections::HashMap<String, Origin> = std::collections::HashMap::new();
    let mut kept = Vec::new();
    for p in std::mem::take(&mut out.policies) {
        let key = p.display_name();
        if let Some(first) = seen.get(&key) {
            out.rejected.push(Rejected {
                object: key.clone(),
                origin: p.origin.clone(),
                errors: vec![Diagnostic {
                    severity: Severity::Error,
                    origin: p.origin.clone(),
                    object: Some(key),
                    message: format!("duplicate object: the same kind, namespace and name is already defined at {first}"),
                }],
            });
        } else {
            seen.insert(key, p.origin.clone());
            kept.push(p);
        }
    }
    out.policies = kept;
    out
}

/// Parsing context of one object.
struct Cx<'a> {
    file: &'a str,
    object: Option<String>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Cx<'_> {
    fn diag(&self, sev: Severity, node: &Node, path: &str, message: String) -> Diagnostic {
        Diagnostic {
            severity: sev,
            origin: Origin::new(self.file, node.mark, path),
            object: self.object.clone(),
            message,
        }
    }

    fn err(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        let d = self.diag(Severity::Error, node, path, message.into());
        self.errors.push(d);
    }

    fn warn(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        let d = self.diag(Severity::Warning, node, path, message.into());
        self.warnings.push(d);
    }

    /// The fields of a mapping; reports a non-mapping and every field not in
    /// `allowed`. Null-valued fields are left out.
    fn fields<'n>(&mut self, node: &'n Node, path: &str, allowed: &[&str]) -> Option<Fields<'n>> {
        let NodeKind::Map(items) = &node.kind else {
            if node.is_null() {
                return Some(Fields { items: vec![] });
            }
            self.err(
                node,
                path,
                format!("expected a mapping, found {}", node.type_name()),
            );
            return None;
        };
        let mut out = Vec::new();
        for (k, v) in items {
            let key = k.as_str().unwrap_or_default();
            if !allowed.contains(&key) {
                self.err(
                    k,
                    &join(path, key),
                    format!(
                        "unknown field {key:?} (expected one of: {})",
                        allowed.join(", ")
                    ),
                );
                continue;
            }
            if !v.is_null() {
                out.push((key, v));
            }
        }
        Some(Fields { items: out })
    }

    fn seq<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Node]> {
        match &node.kind {
            NodeKind::Seq(items) => Some(items),
            _ => {
                self.err(
                    node,
                    path,
                    format!("expected a list, found {}", node.type_name()),
                );
                None
            }
        }
    }

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.kind {
            NodeKind::Scalar { value, .. } => Some(value.clone()),
            _ => {
                self.err(
                    node,
                    path,
                    format!("expected a string, found {}", node.type_name()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match &node.kind {
            NodeKind::Scalar { value, plain: true }
                if value == "true" || value == "True" || value == "TRUE" =>
            {
                Some(true)
            }
            NodeKind::Scalar { value, plain: true }
                if value == "false" || value == "False" || value == "FALSE" =>
            {
                Some(false)
            }
            _ => {
                self.err(node, path, "expected true or false");
                None
            }
        }
    }

    fn unsupported(&mut self, node: &Node, path: &str, what: &str) {
        self.err(
            node,
            path,
            format!("{what} is not supported by holonet; it would not be enforced, so the policy is rejected"),
        );
    }
}

struct Fields<'n> {
    items: Vec<(&'n str, &'n Node)>,
}

impl<'n> Fields<'n> {
    fn get(&self, name: &str) -> Option<&'n Node> {
        self.items.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn idx(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn parse_object(file: &str, doc: &Node, path: &str, out: &mut ParsedPolicies) {
    if doc.is_null() {
        return;
    }
    let mut cx = Cx {
        file,
        object: None,
        errors: vec![],
        warnings: vec![],
    };
    let policy = parse_object_inner(&mut cx, doc, path, out);
    let object = cx
        .object
        .clone()
        .unwrap_or_else(|| format!("{file}:{}", doc.mark));
    match policy {
        Some(p) if cx.errors.is_empty() => {
            out.warnings.append(&mut cx.warnings);
            out.policies.push(Arc::new(p));
        }
        _ if cx.errors.is_empty() => {}
        _ => out.rejected.push(Rejected {
            object,
            origin: Origin::new(file, doc.mark, path),
            errors: cx.errors,
        }),
    }
}

fn parse_object_inner(
    cx: &mut Cx<'_>,
    doc: &Node,
    path: &str,
    out: &mut ParsedPolicies,
) -> Option<Policy> {
    let NodeKind::Map(items) = &doc.kind else {
        cx.err(
            doc,
            path,
            format!(
                "expected a policy object (a mapping), found {}",
                doc.type_name()
            ),
        );
        return None;
    };
    let get = |name: &str| {
        items
            .iter()
            .find(|(k, _)| k.as_str() == Some(name))
            .map(|(_, v)| v)
    };
    let kind_node = get("kind");
    let kind_str = kind_node.and_then(|k| k.as_str()).unwrap_or("");
    // Lists (`kubectl get -o yaml`): parse every item as its own object.
    if matches!(
        kind_str,
        "List" | "CiliumNetworkPolicyList" | "CiliumClusterwideNetworkPolicyList"
    ) {
        if let Some(items) = get("items") {
            if let NodeKind::Seq(list) = &items.kind {
                for (i, item) in list.iter().enumerate() {
                    parse_object(cx.file, item, &idx(&join(path, "items"), i), out);
                }
                return None;
            }
        }
        cx.err(
            doc,
            &join(path, "items"),
            format!("a {kind_str} needs an `items` list"),
        );
        return None;
    }
    let kind = match kind_str {
        "CiliumNetworkPolicy" => PolicyKind::CiliumNetworkPolicy,
        "CiliumClusterwideNetworkPolicy" => PolicyKind::CiliumClusterwideNetworkPolicy,
        "" => {
            cx.err(
                doc,
                &join(path, "kind"),
                "missing `kind` (expected CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy)",
            );
            return None;
        }
        other => {
            cx.err(
                kind_node.unwrap_or(doc),
                &join(path, "kind"),
                format!("kind {other:?} is not supported (expected CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy)"),
            );
            return None;
        }
    };
    let f = cx.fields(
        doc,
        path,
        &[
            "apiVersion",
            "kind",
            "metadata",
            "spec",
            "specs",
            "status",
            "description",
        ],
    )?;
    // Name the object as early as possible so every later error says which one it is.
    let meta = f.get("metadata");
    let mut name = String::new();
    let mut namespace = None;
    if let Some(m) = meta {
        if let NodeKind::Map(mi) = &m.kind {
            for (k, v) in mi {
                match k.as_str() {
                    Some("name") => name = v.as_str().unwrap_or_default().to_string(),
                    Some("namespace") if !v.is_null() => namespace = v.as_str().map(str::to_string),
                    _ => {}
                }
            }
        } else {
            cx.err(
                m,
                &join(path, "metadata"),
                format!("expected a mapping, found {}", m.type_name()),
            );
        }
    }
    let namespace = match kind {
        PolicyKind::CiliumNetworkPolicy => Some(namespace.unwrap_or_else(|| "default".to_string())),
        PolicyKind::CiliumClusterwideNetworkPolicy => {
            if namespace.is_some() {
                if let Some(m) = meta {
                    cx.warn(
                        m,
                        &join(path, "metadata.namespace"),
                        "a cluster-wide policy has no namespace; it is ignored",
                    );
                }
            }
            None
        }
    };
    cx.object = Some(match &namespace {
        Some(ns) => format!(
            "{kind}/{ns}/{}",
            if name.is_empty() { "<unnamed>" } else { &name }
        ),
        None => format!(
            "{kind}/{}",
            if name.is_empty() { "<unnamed>" } else { &name }
        ),
    });
    match f.get("apiVersion").and_then(|v| v.as_str()) {
        Some("cilium.io/v2") => {}
        Some(other) => {
            let n = f.get("apiVersion").unwrap_or(doc);
            cx.err(
                n,
                &join(path, "apiVersion"),
                format!("apiVersion {other:?} is not supported (expected cilium.io/v2)"),
            );
        }
        None => cx.err(
            doc,
            &join(path, "apiVersion"),
            "missing apiVersion (expected cilium.io/v2)",
        ),
    }
    if name.is_empty() {
        cx.err(
            meta.unwrap_or(doc),
            &join(path, "metadata.name"),
            "policy must have name",
        );
    }
    if let Some(ns) = &namespace {
        if labels::validate_value(ns).is_err() || ns.is_empty() {
            cx.err(
                meta.unwrap_or(doc),
                &join(path, "metadata.namespace"),
                format!("invalid namespace {ns:?}"),
            );
        }
    }
    let mut rules = Vec::new();
    let spec = f.get("spec");
    let specs = f.get("specs");
    if spec.is_none() && specs.is_none() {
        cx.err(
            doc,
            path,
            "the policy has neither `spec` nor `specs` (empty policy)",
        );
    }
    if let Some(s) = spec {
        if let Some(r) = parse_rule(cx, s, &join(path, "spec"), kind, namespace.as_deref()) {
            rules.push(r);
        }
    }
    if let Some(ss) = specs {
        let p = join(path, "specs");
        if let Some(list) = cx.seq(ss, &p) {
            for (i, s) in list.iter().enumerate() {
                if let Some(r) = parse_rule(cx, s, &idx(&p, i), kind, namespace.as_deref()) {
                    rules.push(r);
                }
            }
        }
    }
    Some(Policy {
        kind,
        name,
        namespace,
        origin: Origin::new(cx.file, doc.mark, path),
        rules,
    })
}

fn parse_rule(
    cx: &mut Cx<'_>,
    node: &Node,
    path: &str,
    kind: PolicyKind,
    ns: Option<&str>,
) -> Option<Rule> {
    let f = cx.fields(
        node,
        path,
        &[
            "endpointSelector",
            "nodeSelector",
            "ingress",
            "ingressDeny",
            "egress",
            "egressDeny",
            "enableDefaultDeny",
            "labels",
            "description",
            "log",
        ],
    )?;
    let es = f.get("endpointSelector");
    let nsel = f.get("nodeSelector");
    match (es, nsel) {
        (Some(_), Some(n)) => cx.err(
            n,
            &join(path, "nodeSelector"),
            "rule cannot have both EndpointSelector and NodeSelector",
        ),
        (None, None) => cx.err(
            node,
            path,
            "rule must have one of EndpointSelector or NodeSelector",
        ),
        (None, Some(n)) => match kind {
            PolicyKind::CiliumNetworkPolicy => cx.err(
                n,
                &join(path, "nodeSelector"),
                "nodeSelector is only allowed in a CiliumClusterwideNetworkPolicy",
            ),
            PolicyKind::CiliumClusterwideNetworkPolicy => cx.unsupported(
                n,
                &join(path, "nodeSelector"),
                "a host policy (nodeSelector)",
            ),
        },
        (Some(_), None) => {}
    }
    let mut subject = match es {
        Some(e) => parse_selector(cx, e, &join(path, "endpointSelector"))?,
        None => return None,
    };
    if let Some(ns) = ns {
        for r in &subject.requirements {
            if r.source == SOURCE_K8S && r.key == POD_NAMESPACE_KEY && r.values != [ns.to_string()]
            {
                let e = es.unwrap_or(node);
                cx.warn(
                    e,
                    &join(path, "endpointSelector"),
                    format!("a CiliumNetworkPolicy only selects pods in its own namespace {ns:?}; the namespace in endpointSelector is overwritten"),
                );
            }
        }
        subject.add_match(SOURCE_K8S, POD_NAMESPACE_KEY, ns);
    }
    if let Some(l) = f.get("labels") {
        cx.seq(l, &join(path, "labels"));
    }
    if let Some(d) = f.get("description") {
        cx.string(d, &join(path, "description"));
    }
    let mut lists: [Vec<RuleItem>; 4] = Default::default();
    for (slot, (field, dir, deny)) in [
        ("ingress", Direction::Ingress, false),
        ("ingressDeny", Direction::Ingress, true),
        ("egress", Direction::Egress, false),
        ("egressDeny", Direction::Egress, true),
    ]
    .into_iter()
    .enumerate()
    {
        let Some(n) = f.get(field) else { continue };
        let p = join(path, field);
        let Some(items) = cx.seq(n, &p) else { continue };
        for (i, item) in items.iter().enumerate() {
            if let Some(it) = parse_item(cx, item, &idx(&p, i), dir, deny, ns) {
                lists[slot].push(it);
            }
        }
    }
    let has = |n: &str| {
        f.get(n)
            .is_some_and(|v| matches!(&v.kind, NodeKind::Seq(s) if !s.is_empty()))
    };
    let mut dd_in = has("ingress") || has("ingressDeny");
    let mut dd_eg = has("egress") || has("egressDeny");
    if let Some(edd) = f.get("enableDefaultDeny") {
        let p = join(path, "enableDefaultDeny");
        if let Some(ef) = cx.fields(edd, &p, &["ingress", "egress"]) {
            if let Some(v) = ef.get("ingress") {
                dd_in = cx.boolean(v, &join(&p, "ingress")).unwrap_or(dd_in);
            }
            if let Some(v) = ef.get("egress") {
                dd_eg = cx.boolean(v, &join(&p, "egress")).unwrap_or(dd_eg);
            }
        }
    }
    let [ingress, ingress_deny, egress, egress_deny] = lists;
    Some(Rule {
        origin: Origin::new(cx.file, node.mark, path),
        subject,
        ingress,
        ingress_deny,
        egress,
        egress_deny,
        default_deny_ingress: dd_in,
        default_deny_egress: dd_eg,
    })
}

/// Parses a label selector (`matchLabels`, `matchExpressions`).
fn parse_selector(cx: &mut Cx<'_>, node: &Node, path: &str) -> Option<Selector> {
    let f = cx.fields(node, path, &["matchLabels", "matchExpressions"])?;
    let before = cx.errors.len();
    let mut reqs = Vec::new();
    if let Some(ml) = f.get("matchLabels") {
        let p = join(path, "matchLabels");
        match &ml.kind {
            NodeKind::Map(items) => {
                for (k, v) in items {
                    let raw = k.as_str().unwrap_or_default();
                    let kp = join(&p, raw);
                    let (source, key) = labels::split_source(raw, SOURCE_ANY);
                    if let Err(e) = labels::validate_key(source, key) {
                        cx.err(k, &kp, e);
                    }
                    let value = if v.is_null() {
                        String::new()
                    } else {
                        match cx.string(v, &kp) {
                            Some(s) => s,
                            None => continue,
                        }
                    };
                    if let Err(e) = labels::validate_value(&value) {
                        cx.err(v, &kp, e);
                    }
                    reqs.push(Requirement {
                        source: source.into(),
                        key: key.into(),
                        op: Operator::In,
                        values: vec![value],
                    });
                }
            }
            _ => cx.err(
                ml,
                &p,
                format!("expected a mapping, found {}", ml.type_name()),
            ),
        }
    }
    if let Some(me) = f.get("matchExpressions") {
        let p = join(path, "matchExpressions");
        if let Some(list) = cx.seq(me, &p) {
            for (i, e) in list.iter().enumerate() {
                let ep = idx(&p, i);
                let Some(ef) = cx.fields(e, &ep, &["key", "operator", "values"]) else {
                    continue;
                };
                let Some(keyn) = ef.get("key") else {
                    cx.err(e, &join(&ep, "key"), "missing key");
                    continue;
                };
                let Some(raw) = cx.string(keyn, &join(&ep, "key")) else {
                    continue;
                };
                let (source, key) = labels::split_source(&raw, SOURCE_ANY);
                if let Err(m) = labels::validate_key(source, key) {
                    cx.err(keyn, &join(&ep, "key"), m);
                }
                let op = match ef.get("operator").and_then(|o| o.as_str()) {
                    Some(s) => match Operator::parse(s) {
                        Some(op) => op,
                        None => {
                            cx.err(
                                ef.get("operator").unwrap_or(e),
                                &join(&ep, "operator"),
                                format!("{s:?} is not a valid label selector operator (expected In, NotIn, Exists or DoesNotExist; case-sensitive)"),
                            );
                            continue;
                        }
                    },
                    None => {
                        cx.err(e, &join(&ep, "operator"), "missing operator");
                        continue;
                    }
                };
                let mut values = Vec::new();
                if let Some(vn) = ef.get("values") {
                    if let Some(vs) = cx.seq(vn, &join(&ep, "values")) {
                        for (j, v) in vs.iter().enumerate() {
                            let vp = idx(&join(&ep, "values"), j);
                            if let Some(s) = cx.string(v, &vp) {
                                if let Err(m) = labels::validate_value(&s) {
                                    cx.err(v, &vp, m);
                                }
                                values.push(s);
                            }
                        }
                    }
                }
                match op {
                    Operator::In | Operator::NotIn if values.is_empty() => cx.err(
                        e,
                        &join(&ep, "values"),
                        "values must be non-empty when operator is In or NotIn",
                    ),
                    Operator::Exists | Operator::DoesNotExist if !values.is_empty() => cx.err(
                        e,
                        &join(&ep, "values"),
                        "values must be empty when operator is Exists or DoesNotExist",
                    ),
                    _ => {}
                }
                values.sort();
                values.dedup();
                reqs.push(Requirement {
                    source: source.into(),
                    key: key.into(),
                    op,
                    values,
                });
            }
        }
    }
    if cx.errors.len() > before {
        return None;
    }
    reqs.sort();
    reqs.dedup();
    Some(Selector { requirements: reqs })
}

const INGRESS_FIELDS: &[&str] = &[
    "fromEndpoints",
    "fromCIDR",
    "fromCIDRSet",
    "fromEntities",
    "toPorts",
    "fromRequires",
    "fromGroups",
    "fromNodes",
    "icmps",
    "authentication",
];
const EGRESS_FIELDS: &[&str] = &[
    "toEndpoints",
    "toCIDR",
    "toCIDRSet",
    "toEntities",
    "toPorts",
    "toRequires",
    "toServices",
    "toGroups",
    "toNodes",
    "toFQDNs",
    "icmps",
    "authentication",
];

fn go_name(field: &str) -> String {
    let mut c = field.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

fn parse_item(
    cx: &mut Cx<'_>,
    node: &Node,
    path: &str,
    dir: Direction,
    deny: bool,
    ns: Option<&str>,
) -> Option<RuleItem> {
    let allowed: Vec<&str> = match dir {
        Direction::Ingress => INGRESS_FIELDS.to_vec(),
        Direction::Egress => EGRESS_FIELDS
            .iter()
            .copied()
            .filter(|f| !(deny && *f == "toFQDNs"))
            .collect(),
    };
    let before = cx.errors.len();
    let f = cx.fields(node, path, &allowed)?;
    let (ep, cidr, cidrset, ent) = match dir {
        Direction::Ingress => ("fromEndpoints", "fromCIDR", "fromCIDRSet", "fromEntities"),
        Direction::Egress => ("toEndpoints", "toCIDR", "toCIDRSet", "toEntities"),
    };
    // One L3 peer kind per item (Cilium's Sanitize).
    let l3: Vec<&str> = [
        ep,
        cidr,
        cidrset,
        ent,
        "fromGroups",
        "toGroups",
        "fromNodes",
        "toNodes",
        "toServices",
        "toFQDNs",
    ]
    .into_iter()
    .filter(|n| {
        f.get(n)
            .is_some_and(|v| matches!(&v.kind, NodeKind::Seq(s) if !s.is_empty()))
    })
    .collect();
    if l3.len() > 1 {
        cx.err(
            node,
            path,
            format!(
                "Combining {} and {} is not supported yet",
                go_name(l3[0]),
                go_name(l3[1])
            ),
        );
    }
    if f.get("toServices").is_some() && f.get("toPorts").is_some() {
        cx.err(node, path, "toServices cannot be combined with toPorts");
    }
    if f.get("icmps").is_some() && f.get("toPorts").is_some() {
        cx.err(
            node,
            path,
            "icmps cannot be combined with toPorts in the same rule",
        );
    }
    for (field, what) in [
        ("fromRequires", "fromRequires (deprecated in Cilium)"),
        ("toRequires", "toRequires (deprecated in Cilium)"),
        ("fromGroups", "fromGroups (cloud provider groups)"),
        ("toGroups", "toGroups (cloud provider groups)"),
        ("fromNodes", "fromNodes (node selectors)"),
        ("toNodes", "toNodes (node selectors)"),
        ("toServices", "toServices"),
        ("toFQDNs", "toFQDNs (DNS-learned IPs)"),
        ("icmps", "icmps (ICMP rules)"),
        ("authentication", "authentication (mutual auth)"),
    ] {
        if let Some(n) = f.get(field) {
            cx.unsupported(n, &join(path, field), what);
        }
    }
    let mut peers: Option<Vec<PeerSelector>> = None;
    if let Some(n) = f.get(ep) {
        let p = join(path, ep);
        let list = peers.get_or_insert_with(Vec::new);
        if let Some(items) = cx.seq(n, &p) {
            for (i, s) in items.iter().enumerate() {
                if let Some(mut sel) = parse_selector(cx, s, &idx(&p, i)) {
                    sel.scope_peer(ns);
                    list.push(PeerSelector::Endpoints(sel));
                }
            }
        }
    }
    if let Some(n) = f.get(ent) {
        let p = join(path, ent);
        let list = peers.get_or_insert_with(Vec::new);
        if let Some(items) = cx.seq(n, &p) {
            for (i, e) in items.iter().enumerate() {
                let ip = idx(&p, i);
                let Some(s) = cx.string(e, &ip) else { continue };
                match Entity::parse(&s) {
                    Some(en) => list.push(PeerSelector::Entity(en)),
                    None => cx.err(e, &ip, format!("unknown entity {s:?}")),
                }
            }
        }
    }
    if let Some(n) = f.get(cidr) {
        let p = join(path, cidr);
        let list = peers.get_or_insert_with(Vec::new);
        if let Some(items) = cx.seq(n, &p) {
            for (i, e) in items.iter().enumerate() {
                let ip = idx(&p, i);
                let Some(s) = cx.string(e, &ip) else { continue };
                match Prefix::parse(&s) {
                    Ok(c) => list.push(PeerSelector::Cidr(CidrSelector {
                        cidr: c,
                        except: vec![],
                        parts: vec![c],
                    })),
                    Err(m) => cx.err(e, &ip, m),
                }
            }
        }
    }
    if let Some(n) = f.get(cidrset) {
        let p = join(path, cidrset);
        let list = peers.get_or_insert_with(Vec::new);
        if let Some(items) = cx.seq(n, &p) {
            for (i, e) in items.iter().enumerate() {
                let ip = idx(&p, i);
                let Some(ef) = cx.fields(
                    e,
                    &ip,
                    &["cidr", "except", "cidrGroupRef", "cidrGroupSelector"],
                ) else {
                    continue;
                };
                for g in ["cidrGroupRef", "cidrGroupSelector"] {
                    if let Some(gn) = ef.get(g) {
                        cx.unsupported(gn, &join(&ip, g), g);
                    }
                }
                let Some(cn) = ef.get("cidr") else {
                    cx.err(e, &join(&ip, "cidr"), "missing cidr");
                    continue;
                };
                let Some(cs) = cx.string(cn, &join(&ip, "cidr")) else {
                    continue;
                };
                let c = match Prefix::parse(&cs) {
                    Ok(c) => c,
                    Err(m) => {
                        cx.err(cn, &join(&ip, "cidr"), m);
                        continue;
                    }
                };
                let mut except = Vec::new();
                if let Some(xn) = ef.get("except") {
                    let xp = join(&ip, "except");
                    if let Some(xs) = cx.seq(xn, &xp) {
                        for (j, x) in xs.iter().enumerate() {
                            let jp = idx(&xp, j);
                            let Some(s) = cx.string(x, &jp) else { continue };
                            match Prefix::parse(&s) {
                                Ok(xpfx) if c.contains(&xpfx) => except.push(xpfx),
                                Ok(_) => cx.err(x, &jp, format!("except {s} is not contained in cidr {cs} (same address family)")),
                                Err(m) => cx.err(x, &jp, m),
                            }
                        }
                    }
                }
                let parts = c.subtract(&except);
                list.push(PeerSelector::Cidr(CidrSelector {
                    cidr: c,
                    except,
                    parts,
                }));
            }
        }
    }
    let mut ports = None;
    if let Some(tp) = f.get("toPorts") {
        let p = join(path, "toPorts");
        if let Some(items) = cx.seq(tp, &p) {
            let mut v = Vec::new();
            for (i, pr) in items.iter().enumerate() {
                if let Some(r) = parse_port_rule(cx, pr, &idx(&p, i), dir, deny) {
                    v.push(r);
                }
            }
            if !items.is_empty() {
                ports = Some(v);
            }
        }
    }
    if cx.errors.len() > before {
        return None;
    }
    if peers.is_none() && ports.is_none() {
        // `{}`: no peer and no ports allows nothing (it only makes the
        // direction default-deny), reference section 3.4.
        peers = Some(Vec::new());
    }
    Some(RuleItem {
        origin: Origin::new(cx.file, node.mark, path),
        peers: peers.map(Arc::new),
        ports,
    })
}

fn parse_port(cx: &mut Cx<'_>, node: &Node, path: &str) -> Option<u16> {
    let s = cx.string(node, path)?;
    if s.is_empty() {
        cx.err(node, path, "port must not be empty");
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<u32>() {
            Ok(n) if n <= 65535 => Some(n as u16),
            _ => {
                cx.err(node, path, format!("port {s:?} is out of range 0-65535"));
                None
            }
        };
    }
    if s.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.len() <= 15
    {
        cx.err(
            node,
            path,
            format!("named port {s:?} is not supported (the endpoints file declares no container ports); use the port number"),
        );
    } else {
        cx.err(node, path, format!("unable to parse port {s:?}"));
    }
    None
}

fn parse_port_rule(
    cx: &mut Cx<'_>,
    node: &Node,
    path: &str,
    dir: Direction,
    deny: bool,
) -> Option<PortRule> {
    let allowed: &[&str] = if deny {
        &["ports"]
    } else {
        &[
            "ports",
            "rules",
            "terminatingTLS",
            "originatingTLS",
            "serverNames",
            "listener",
        ]
    };
    let before = cx.errors.len();
    let f = cx.fields(node, path, allowed)?;
    for field in [
        "terminatingTLS",
        "originatingTLS",
        "serverNames",
        "listener",
    ] {
        if let Some(n) = f.get(field) {
            cx.unsupported(n, &join(path, field), field);
        }
    }
    let mut ports = Vec::new();
    if let Some(pn) = f.get("ports") {
        let pp = join(path, "ports");
        if let Some(items) = cx.seq(pn, &pp) {
            if items.len() > MAX_PORTS_PER_RULE {
                cx.err(
                    pn,
                    &pp,
                    format!(
                        "too many ports ({}); at most {MAX_PORTS_PER_RULE} per toPorts item",
                        items.len()
                    ),
                );
            }
            for (i, it) in items.iter().enumerate() {
                let ip = idx(&pp, i);
                let Some(pf) = cx.fields(it, &ip, &["port", "endPort", "protocol"]) else {
                    continue;
                };
                let port = match pf.get("port") {
                    Some(n) => parse_port(cx, n, &join(&ip, "port")),
                    None => {
                        cx.err(it, &join(&ip, "port"), "missing port");
                        None
                    }
                };
                let protocol = match pf.get("protocol") {
                    None => Some(Protocol::Any),
                    Some(n) => {
                        let s = cx.string(n, &join(&ip, "protocol")).unwrap_or_default();
                        let p = Protocol::parse(&s);
                        if p.is_none() {
                            cx.err(
                                n,
                                &join(&ip, "protocol"),
                                format!("protocol {s:?} is not one of TCP, UDP, SCTP, ANY"),
                            );
                        }
                        p
                    }
                };
                let mut end = None;
                if let Some(n) = pf.get("endPort") {
                    let ep = join(&ip, "endPort");
                    match n.as_str().and_then(|s| s.parse::<i64>().ok()) {
                        Some(v) if (0..=65535).contains(&v) => end = Some(v as u16),
                        _ => cx.err(n, &ep, "endPort must be an integer 0-65535"),
                    }
                }
                if let (Some(port), Some(protocol)) = (port, protocol) {
                    let end_port = match end {
                        None | Some(0) => port,
                        Some(e) if port == 0 => {
                            cx.err(
                                it,
                                &join(&ip, "endPort"),
                                format!("endPort {e} needs a non-zero port"),
                            );
                            port
                        }
                        Some(e) if e < port => {
                            cx.err(
                                it,
                                &join(&ip, "endPort"),
                                format!("endPort {e} is lower than port {port}"),
                            );
                            port
                        }
                        Some(e) => e,
                    };
                    ports.push(PortProtocol {
                        port,
                        end_port,
                        protocol,
                    });
                }
            }
        }
    }
    let mut l7 = None;
    if let Some(rn) = f.get("rules") {
        let rp = join(path, "rules");
        if let Some(rf) = cx.fields(rn, &rp, &["http", "dns", "kafka", "l7proto", "l7"]) {
            for k in ["kafka", "l7proto", "l7"] {
                if let Some(n) = rf.get(k) {
                    cx.unsupported(n, &join(&rp, k), &format!("{k} L7 rules"));
                }
            }
            let nonempty = |n: &str| {
                rf.get(n)
                    .is_some_and(|v| !matches!(&v.kind, NodeKind::Seq(s) if s.is_empty()))
            };
            let kinds: Vec<&str> = ["http", "dns", "kafka", "l7proto"]
                .into_iter()
                .filter(|k| nonempty(k))
                .collect();
            if kinds.len() > 1 {
                cx.err(
                    rn,
                    &rp,
                    "multiple L7 protocol rule types specified in single rule",
                );
            }
            if let Some(k) = kinds.first().copied() {
                if ports.is_empty() {
                    cx.err(
                        rn,
                        &rp,
                        format!(
                            "{} rules need ports (toPorts.ports is empty)",
                            k.to_uppercase()
                        ),
                    );
                }
                for pp in &ports {
                    if pp.port == 0 {
                        cx.err(rn, &rp, "L7 rules can not be used when a port is 0");
                    }
                    if k == "http" && pp.protocol != Protocol::Tcp {
                        cx.err(
                            rn,
                            &rp,
                            format!(
                                "L7 rules can only apply to TCP (not {}) except for DNS rules",
                                pp.protocol
                            ),
                        );
                    }
                    if k == "dns" && pp.end_port > pp.port {
                        cx.err(rn, &rp, "DNS rules cannot use port ranges (endPort)");
                    }
                }
                if k == "dns" && dir == Direction::Ingress {
                    cx.err(rn, &rp, "DNS rules are not allowed on ingress");
                }
            }
            if let Some(hn) = rf.get("http") {
                let hp = join(&rp, "http");
                if let Some(items) = cx.seq(hn, &hp) {
                    let mut rules = Vec::new();
                    for (i, h) in items.iter().enumerate() {
                        if let Some(r) = parse_http_rule(cx, h, &idx(&hp, i)) {
                            rules.push(r);
                        }
                    }
                    if !items.is_empty() {
                        // The kernel enforces HTTP rules with a fixed-size DFA
                        // table: a rule list that does not fit is not enforceable.
                        if let Err(e) = crate::l7::compile_http_rules(&rules) {
                            cx.err(
                                hn,
                                &hp,
                                format!("cannot be compiled for in-kernel enforcement: {e}"),
                            );
                        }
                        l7 = Some(L7Rules::Http(rules));
                    }
                }
            }
            if let Some(dn) = rf.get("dns") {
                let dp = join(&rp, "dns");
                if let Some(items) = cx.seq(dn, &dp) {
                    let mut rules = Vec::new();
                    for (i, d) in items.iter().enumerate() {
                        if let Some(r) = parse_dns_rule(cx, d, &idx(&dp, i)) {
                            rules.push(r);
                        }
                    }
                    if !items.is_empty() && l7.is_none() {
                        l7 = Some(L7Rules::Dns(rules));
                    }
                }
            }
        }
    }
    if cx.errors.len() > before {
        return None;
    }
    Some(PortRule {
        origin: Origin::new(cx.file, node.mark, path),
        ports,
        l7: l7.map(Arc::new),
    })
}

fn regex_field(
    cx: &mut Cx<'_>,
    f: &Fields<'_>,
    name: &str,
    path: &str,
) -> Option<Option<FullMatcher>> {
    let Some(n) = f.get(name) else {
        return Some(None);
    };
    let p = join(path, name);
    let s = cx.string(n, &p)?;
    if s.is_empty() {
        return Some(None);
    }
    match FullMatcher::new(&s) {
        Ok(m) => Some(Some(m)),
        Err(e) => {
            cx.err(n, &p, e);
            None
        }
    }
}

fn parse_http_rule(cx: &mut Cx<'_>, node: &Node, path: &str) -> Option<HttpRule> {
    let f = cx.fields(
        node,
        path,
        &["method", "path", "host", "headers", "headerMatches"],
    )?;
    let method = regex_field(cx, &f, "method", path);
    let pth = regex_field(cx, &f, "path", path);
    let host = regex_field(cx, &f, "host", path);
    let mut headers = Vec::new();
    let mut ok = true;
    if let Some(hn) = f.get("headers") {
        let hp = join(path, "headers");
        if let Some(items) = cx.seq(hn, &hp) {
            for (i, h) in items.iter().enumerate() {
                match cx.string(h, &idx(&hp, i)) {
                    Some(s) if !s.is_empty() => headers.push(parse_header_string(&s)),
                    Some(_) => {
                        cx.err(h, &idx(&hp, i), "empty header");
                        ok = false;
                    }
                    None => ok = false,
                }
            }
        }
    }
    if let Some(mn) = f.get("headerMatches") {
        let mp = join(path, "headerMatches");
        if let Some(items) = cx.seq(mn, &mp) {
            for (i, m) in items.iter().enumerate() {
                let ip = idx(&mp, i);
                let Some(mf) = cx.fields(m, &ip, &["name", "value", "secret", "mismatch"]) else {
                    ok = false;
                    continue;
                };
                let name = mf
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or_default()
                    .to_string();
                if name.is_empty() {
                    cx.err(
                        m,
                        &join(&ip, "name"),
                        "headerMatches entry must have a name",
                    );
                    ok = false;
                }
                if let Some(s) = mf.get("secret") {
                    cx.unsupported(
                        s,
                        &join(&ip, "secret"),
                        "a header value from a Kubernetes secret",
                    );
                    ok = false;
                }
                let mut log_only = false;
                if let Some(mm) = mf.get("mismatch") {
                    let s = mm.as_str().unwrap_or_default();
                    match s {
                        "" => {}
                        "LOG" => log_only = true,
                        "ADD" | "DELETE" | "REPLACE" => {
                            cx.unsupported(
                                mm,
                                &join(&ip, "mismatch"),
                                &format!("mismatch action {s} (header rewriting)"),
                            );
                            ok = false;
                        }
                        _ => {
                            cx.err(mm, &join(&ip, "mismatch"), format!("invalid mismatch action {s:?} (expected LOG, ADD, DELETE or REPLACE)"));
                            ok = false;
                        }
                    }
                }
                let value = mf.get("value").and_then(|v| v.as_str()).map(str::to_string);
                headers.push(HeaderRequirement {
                    name,
                    value,
                    log_only,
                });
            }
        }
    }
    let (method, path_m, host) = (method?, pth?, host?);
    if !ok {
        return None;
    }
    let rule = HttpRule {
        origin: Origin::new(cx.file, node.mark, path),
        method,
        path: path_m,
        host,
        headers,
    };
    if !rule.request_line_only() {
        cx.warn(
            node,
            path,
            "host/header constraints are evaluated by `holonet policy trace` but cannot be checked in the kernel; the kernel table leaves this rule out, so requests only it would allow are dropped (fail closed)",
        );
    }
    Some(rule)
}

fn parse_dns_rule(cx: &mut Cx<'_>, node: &Node, path: &str) -> Option<DnsRule> {
    let f = cx.fields(node, path, &["matchName", "matchPattern"])?;
    let mut ok = true;
    let mut get =
        |cx: &mut Cx<'_>, name: &str, check: fn(&str) -> Result<(), String>| -> Option<String> {
            let n = f.get(name)?;
            let p = join(path, name);
            let s = cx.string(n, &p)?;
            if s.is_empty() {
                return None;
            }
            if let Err(e) = check(&s) {
                cx.err(n, &p, e);
                ok = false;
                return None;
            }
            Some(dns::normalize(&s))
        };
    let match_name = get(cx, "matchName", dns::validate_name);
    let match_pattern = get(cx, "matchPattern", dns::validate_pattern);
    if !ok {
        return None;
    }
    Some(DnsRule {
        origin: Origin::new(cx.file, node.mark, path),
        match_name,
        match_pattern,
    })
}
