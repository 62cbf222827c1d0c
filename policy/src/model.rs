//! The typed policy model: what a CNP/CCNP means after parsing, validation
//! and Cilium's namespace rewriting.
//!
//! Exists so that resolution, tracing and the agent work on checked values
//! only (no YAML, no strings to re-parse), each carrying where it came from.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::cidr::Prefix;
use crate::dns::DnsRule;
use crate::http::HttpRule;
use crate::selector::Selector;
use crate::yaml::Mark;

/// Which custom resource a policy is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum PolicyKind {
    /// `CiliumNetworkPolicy` (namespaced).
    CiliumNetworkPolicy,
    /// `CiliumClusterwideNetworkPolicy`.
    CiliumClusterwideNetworkPolicy,
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CiliumNetworkPolicy => "CiliumNetworkPolicy",
            Self::CiliumClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
        })
    }
}

/// Where something was written: file, line, column and field path.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Origin {
    /// The file (as given by the caller).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Field path inside the object, e.g. `spec.egress[1].toPorts[0]`.
    pub path: String,
}

impl Origin {
    /// Builds an origin from a YAML mark.
    pub fn new(file: &str, mark: Mark, path: &str) -> Self {
        Self {
            file: file.into(),
            line: mark.line,
            column: mark.column,
            path: path.into(),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One accepted policy object.
#[derive(Clone, Debug)]
pub struct Policy {
    /// CNP or CCNP.
    pub kind: PolicyKind,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (CNP only; `default` when omitted).
    pub namespace: Option<String>,
    /// Where the object starts.
    pub origin: Origin,
    /// The effective rules: `spec` then every item of `specs`.
    pub rules: Vec<Rule>,
}

impl Policy {
    /// `kind/namespace/name` or `kind/name`, for messages.
    pub fn display_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{}/{}", self.kind, ns, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }
}

/// Traffic direction, from the selected endpoint's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Traffic entering the endpoint.
    Ingress,
    /// Traffic leaving the endpoint.
    Egress,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        })
    }
}

/// One Cilium `Rule` (a `spec` or an item of `specs`).
#[derive(Clone, Debug)]
pub struct Rule {
    /// Where the rule is.
    pub origin: Origin,
    /// The endpoints the rule applies to (namespace already injected for CNPs).
    pub subject: Selector,
    /// `ingress` items.
    pub ingress: Vec<RuleItem>,
    /// `ingressDeny` items.
    pub ingress_deny: Vec<RuleItem>,
    /// `egress` items.
    pub egress: Vec<RuleItem>,
    /// `egressDeny` items.
    pub egress_deny: Vec<RuleItem>,
    /// Effective `enableDefaultDeny.ingress`.
    pub default_deny_ingress: bool,
    /// Effective `enableDefaultDeny.egress`.
    pub default_deny_egress: bool,
}

impl Rule {
    /// Allow items of a direction.
    pub fn allows(&self, d: Direction) -> &[RuleItem] {
        match d {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }

    /// Deny items of a direction.
    pub fn denies(&self, d: Direction) -> &[RuleItem] {
        match d {
            Direction::Ingress => &self.ingress_deny,
            Direction::Egress => &self.egress_deny,
        }
    }

    /// Effective default-deny flag of a direction.
    pub fn default_deny(&self, d: Direction) -> bool {
        match d {
            Direction::Ingress => self.default_deny_ingress,
            Direction::Egress => self.default_deny_egress,
        }
    }
}

/// One item of `ingress`/`egress`/`ingressDeny`/`egressDeny`.
#[derive(Clone, Debug)]
pub struct RuleItem {
    /// Where the item is.
    pub origin: Origin,
    /// The peers: `None` when no peer field is present (every peer), else the
    /// union of the listed selections (an empty list selects nothing).
    pub peers: Option<Arc<Vec<PeerSelector>>>,
    /// `toPorts`: `None` when absent or empty (every port and protocol).
    pub ports: Option<Vec<PortRule>>,
}

/// One selection of peers.
#[derive(Clone, Debug, PartialEq)]
pub enum PeerSelector {
    /// From `fromEndpoints`/`toEndpoints` (after namespace rewriting).
    Endpoints(Selector),
    /// From `fromEntities`/`toEntities`.
    Entity(Entity),
    /// From `fromCIDR`/`fromCIDRSet`/`toCIDR`/`toCIDRSet`.
    Cidr(CidrSelector),
}

impl fmt::Display for PeerSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Endpoints(s) => write!(f, "endpoints [{s}]"),
            Self::Entity(e) => write!(f, "entity {e}"),
            Self::Cidr(c) => write!(f, "{c}"),
        }
    }
}

/// A CIDR peer: `cidr` minus `except`.
#[derive(Clone, Debug, PartialEq)]
pub struct CidrSelector {
    /// The prefix.
    pub cidr: Prefix,
    /// Excluded sub-prefixes.
    pub except: Vec<Prefix>,
    /// `cidr` minus `except` as disjoint prefixes.
    pub parts: Vec<Prefix>,
}

impl fmt::Display for CidrSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CIDR {}", self.cidr)?;
        if !self.except.is_empty() {
            let e: Vec<String> = self.except.iter().map(|p| p.to_string()).collect();
            write!(f, " except {}", e.join(", "))?;
        }
        Ok(())
    }
}

/// A Cilium entity name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Entity {
    /// `all`: every peer.
    All,
    /// `world`: everything outside the cluster.
    World,
    /// `world-ipv4`.
    WorldIpv4,
    /// `world-ipv6`.
    WorldIpv6,
    /// `cluster`: every peer inside the cluster.
    Cluster,
    /// `host`: the local node.
    Host,
    /// `remote-node`: other nodes.
    RemoteNode,
    /// `kube-apiserver`.
    KubeApiserver,
    /// `ingress`: Cilium's ingress proxy.
    Ingress,
    /// `init`: endpoints whose identity is not resolved yet.
    Init,
    /// `health`: Cilium health endpoints.
    Health,
    /// `unmanaged`: endpoints Cilium does not manage.
    Unmanaged,
    /// `none`: nothing.
    None,
}

impl Entity {
    /// Parses an entity name (exact spelling).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "all" => Self::All,
            "world" => Self::World,
            "world-ipv4" => Self::WorldIpv4,
            "world-ipv6" => Self::WorldIpv6,
            "cluster" => Self::Cluster,
            "host" => Self::Host,
            "remote-node" => Self::RemoteNode,
            "kube-apiserver" => Self::KubeApiserver,
            "ingress" => Self::Ingress,
            "init" => Self::Init,
            "health" => Self::Health,
            "unmanaged" => Self::Unmanaged,
            "none" => Self::None,
            _ => return None,
        })
    }

    /// The YAML spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::All => "all",
            Self::World => "world",
            Self::WorldIpv4 => "world-ipv4",
            Self::WorldIpv6 => "world-ipv6",
            Self::Cluster => "cluster",
            Self::Host => "host",
            Self::RemoteNode => "remote-node",
            Self::KubeApiserver => "kube-apiserver",
            Self::Ingress => "ingress",
            Self::Init => "init",
            Self::Health => "health",
            Self::Unmanaged => "unmanaged",
            Self::None => "none",
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An L4 protocol of a port rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Protocol {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
    /// TCP, UDP and SCTP (not ICMP).
    Any,
}

impl Protocol {
    /// Parses `TCP`, `UDP`, `SCTP`, `ANY` (exact spelling).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "TCP" => Self::Tcp,
            "UDP" => Self::Udp,
            "SCTP" => Self::Sctp,
            "ANY" => Self::Any,
            _ => return None,
        })
    }

    /// IP protocol number (0 for ANY).
    pub fn number(&self) -> u8 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
            Self::Sctp => 132,
            Self::Any => 0,
        }
    }

    /// Whether a packet of protocol `p` (never `Any`) is covered.
    pub fn covers(&self, p: Protocol) -> bool {
        *self == Protocol::Any || *self == p
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
            Self::Any => "ANY",
        })
    }
}

/// One `ports` entry: a port or inclusive range and a protocol. Port 0 means
/// every port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortProtocol {
    /// First port (0: every port).
    pub port: u16,
    /// Last port, inclusive (equal to `port` without `endPort`).
    pub end_port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

impl PortProtocol {
    /// Whether (proto, port) is covered.
    pub fn covers(&self, proto: Protocol, port: u16) -> bool {
        self.protocol.covers(proto)
            && (self.port == 0 || (self.port <= port && port <= self.end_port))
    }
}

impl fmt::Display for PortProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.port == 0 {
            write!(f, "any port/{}", self.protocol)
        } else if self.end_port > self.port {
            write!(f, "{}-{}/{}", self.port, self.end_port, self.protocol)
        } else {
            write!(f, "{}/{}", self.port, self.protocol)
        }
    }
}

/// One `toPorts` item: ports plus optional L7 rules.
#[derive(Clone, Debug)]
pub struct PortRule {
    /// Where it is.
    pub origin: Origin,
    /// The ports (at most 40).
    pub ports: Vec<PortProtocol>,
    /// L7 rules, if any.
    pub l7: Option<Arc<L7Rules>>,
}

/// The L7 rules of a port rule (one kind per port rule).
#[derive(Clone, Debug, PartialEq)]
pub enum L7Rules {
    /// `rules.http`.
    Http(Vec<HttpRule>),
    /// `rules.dns`.
    Dns(Vec<DnsRule>),
}
