//! Resolution: which rules apply to each endpoint, and what they decide for
//! a (peer, protocol, port) in each direction.
//!
//! Exists because this is the heart of Cilium's semantics (reference section
//! 6): deny before allow, allows union across policies, per-direction
//! default-deny, L7 wildcarding per peer and port, host exception. The same
//! [`DirectionPolicy::decide`] answers `policy trace` and builds the merged
//! lookup entries the agent writes into BPF maps ([`DirectionPolicy::entries`]).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::bits::Bits;
use crate::cidr::Prefix;
use crate::dns::{DnsRule, normalize};
use crate::endpoints::{Cluster, IDENTITY_HOST, IDENTITY_WORLD};
use crate::http::HttpRule;
use crate::labels::SOURCE_ANY;
use crate::model::{
    Direction, Entity, L7Rules, Origin, PeerSelector, Policy, PortProtocol, Protocol,
};
use crate::selector::{Operator, Selector};

/// How an allow (or deny) entry matched, as Hubble prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum MatchType {
    /// Peer and port/protocol (most specific).
    #[serde(rename = "L3-L4")]
    L3L4,
    /// Any peer, specific port/protocol.
    #[serde(rename = "L4-Only")]
    L4Only,
    /// Peer and protocol, any port.
    #[serde(rename = "L3-Proto")]
    L3Proto,
    /// Any peer, protocol only.
    #[serde(rename = "Proto-Only")]
    ProtoOnly,
    /// Peer, any port.
    #[serde(rename = "L3-Only")]
    L3Only,
    /// Any peer, any port.
    #[serde(rename = "all")]
    All,
    /// Nothing matched.
    #[serde(rename = "none")]
    None,
}

impl MatchType {
    /// The text Hubble prints (`L3-L4`, `L4-Only`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::L3L4 => "L3-L4",
            Self::L4Only => "L4-Only",
            Self::L3Proto => "L3-Proto",
            Self::ProtoOnly => "Proto-Only",
            Self::L3Only => "L3-Only",
            Self::All => "all",
            Self::None => "none",
        }
    }

    /// The `policy_match_type` number of Hubble's flow.
    pub fn number(&self) -> u32 {
        match self {
            Self::None => 0,
            Self::L3Only => 1,
            Self::L3L4 => 2,
            Self::L4Only => 3,
            Self::All => 4,
            Self::L3Proto => 5,
            Self::ProtoOnly => 6,
        }
    }
}

impl fmt::Display for MatchType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which peers a resolved item covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerMatch {
    /// Every peer (no peer field, or entity `all`).
    Any,
    /// Identities (by index in [`Cluster::identities`]) and, for peers
    /// without a cluster identity, IP prefixes.
    Set {
        /// Selected identities.
        ids: Bits,
        /// Selected world prefixes (CIDR rules, minus their exceptions).
        cidrs: Vec<Prefix>,
    },
}

/// Whether an item allows or denies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    /// From `ingress`/`egress`.
    Allow,
    /// From `ingressDeny`/`egressDeny`.
    Deny,
}

/// One rule item resolved against the cluster, for one port entry.
#[derive(Clone, Debug)]
pub struct ResolvedItem {
    /// Allow or deny.
    pub kind: ItemKind,
    /// The policy it comes from.
    pub policy: Arc<Policy>,
    /// Index of the rule within the policy.
    pub rule: usize,
    /// Where the rule item is.
    pub origin: Origin,
    /// Where the port rule is (if any).
    pub port_origin: Option<Origin>,
    /// The peers covered.
    pub peers: Arc<PeerMatch>,
    /// The peer selections as written (for explanations).
    pub peer_text: String,
    /// The port entry; `None`: every port and protocol (L3-only item).
    pub port: Option<PortProtocol>,
    /// L7 rules of the port rule.
    pub l7: Option<Arc<L7Rules>>,
    /// Whether the rule is default-deny in this direction (else its L7
    /// rules only give visibility and allow everything).
    pub rule_default_deny: bool,
}

impl ResolvedItem {
    /// The match type this item produces when it matches.
    pub fn match_type(&self) -> MatchType {
        let specific = !matches!(*self.peers, PeerMatch::Any);
        match (&self.port, specific) {
            (None, true) => MatchType::L3Only,
            (None, false) => MatchType::All,
            (Some(p), true) if p.port == 0 => MatchType::L3Proto,
            (Some(p), false) if p.port == 0 => MatchType::ProtoOnly,
            (Some(_), true) => MatchType::L3L4,
            (Some(_), false) => MatchType::L4Only,
        }
    }

    /// Whether the item covers (proto, port).
    pub fn covers_port(&self, proto: Protocol, port: u16) -> bool {
        self.port.is_none_or(|p| p.covers(proto, port))
    }

    /// `Kind/ns/name` of the policy plus the rule item path.
    pub fn describe(&self) -> String {
        format!(
            "{} {} ({})",
            self.policy.display_name(),
            self.origin.path,
            self.origin
        )
    }
}

/// A peer as seen by the endpoint whose policy is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRef {
    /// A peer with a cluster identity (index into [`Cluster::identities`]).
    Identity {
        /// Index in [`Cluster::identities`].
        index: usize,
        /// The identity number.
        id: u32,
    },
    /// A peer outside the cluster (identity world) with its IP.
    World(IpAddr),
    /// Every world IP inside this prefix (used to build LPM entries).
    WorldPrefix(Prefix),
    /// A peer with an identity the cluster does not know (matches only
    /// items that cover every peer).
    Unknown,
}

impl PeerMatch {
    /// Whether the peer is covered.
    pub fn covers(&self, peer: &PeerRef, world_index: usize) -> bool {
        match (self, peer) {
            (PeerMatch::Any, _) => true,
            (PeerMatch::Set { ids, .. }, PeerRef::Identity { index, .. }) => ids.contains(*index),
            (PeerMatch::Set { ids, cidrs }, PeerRef::World(ip)) => {
                ids.contains(world_index) || cidrs.iter().any(|c| c.contains_ip(*ip))
            }
            (PeerMatch::Set { ids, cidrs }, PeerRef::WorldPrefix(p)) => {
                ids.contains(world_index) || cidrs.iter().any(|c| c.contains(p))
            }
            (PeerMatch::Set { .. }, PeerRef::Unknown) => false,
        }
    }
}

/// The L7 part of an allow decision for one peer and port.
#[derive(Clone, Debug, PartialEq)]
pub enum L7Decision {
    /// No matching entry has L7 rules: no proxy, nothing to check.
    None,
    /// Some entry has L7 rules but another allows everything at L7 (or the
    /// rules only give visibility): every request is allowed.
    AllowAll,
    /// A request is allowed iff it matches one of these HTTP rules.
    Http(Vec<HttpRule>),
    /// A query is allowed iff it matches one of these DNS rules.
    Dns(Vec<DnsRule>),
    /// HTTP and DNS rules meet on the same peer and port: Cilium rejects
    /// this ("cannot merge conflicting L7 parsers"); holonet fails closed.
    Conflict,
}

/// The outcome of one direction for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// Allowed (possibly subject to L7 rules).
    Allowed,
    /// Dropped by a deny rule (`POLICY_DENY`, 181).
    Denied,
    /// Dropped because nothing allowed it under default-deny (`POLICY_DENIED`, 133).
    DefaultDenied,
}

/// The decision of one direction of one endpoint for one packet.
#[derive(Clone, Debug)]
pub struct Decision {
    /// The outcome.
    pub outcome: Outcome,
    /// Whether the direction is default-deny (policy enforced).
    pub enforced: bool,
    /// Match type of the deciding entry (`None` when nothing matched).
    pub match_type: MatchType,
    /// The deny items that matched (for `Denied`) or the allow items that matched.
    pub matched: Vec<Arc<ResolvedItem>>,
    /// Whether the host exception allowed the packet.
    pub host_exception: bool,
    /// The L7 part (meaningful for `Allowed`).
    pub l7: L7Decision,
}

/// All items applying to one endpoint in one direction.
#[derive(Clone, Debug, Default)]
pub struct DirectionPolicy {
    /// Whether the endpoint is default-deny in this direction.
    pub default_deny: bool,
    /// Allow items.
    pub allows: Vec<Arc<ResolvedItem>>,
    /// Deny items.
    pub denies: Vec<Arc<ResolvedItem>>,
    /// Policies with a rule selecting the endpoint (names, for explanations).
    pub selecting: Vec<String>,
    /// Index of the world identity (for peer matching).
    world_index: usize,
    /// Whether this is ingress (the host exception applies).
    ingress: bool,
}

impl DirectionPolicy {
    /// Decides a packet from/to `peer` with `proto`/`port`.
    pub fn decide(&self, peer: &PeerRef, proto: Protocol, port: u16) -> Decision {
        let wi = self.world_index;
        let denies: Vec<Arc<ResolvedItem>> = self
            .denies
            .iter()
            .filter(|i| i.peers.covers(peer, wi) && i.covers_port(proto, port))
            .cloned()
            .collect();
        if !denies.is_empty() {
            let mt = denies
                .iter()
                .map(|i| i.match_type())
                .min()
                .unwrap_or(MatchType::None);
            return Decision {
                outcome: Outcome::Denied,
                enforced: true,
                match_type: mt,
                matched: denies,
                host_exception: false,
                l7: L7Decision::None,
            };
        }
        let allows: Vec<Arc<ResolvedItem>> = self
            .allows
            .iter()
            .filter(|i| i.peers.covers(peer, wi) && i.covers_port(proto, port))
            .cloned()
            .collect();
        let host =
            self.ingress && matches!(peer, PeerRef::Identity { id, .. } if *id == IDENTITY_HOST);
        let mut match_type = allows
            .iter()
            .map(|i| i.match_type())
            .min()
            .unwrap_or(MatchType::None);
        if host && match_type == MatchType::None {
            match_type = MatchType::L3Only;
        }
        // The local host gets an L7 wildcard (it is never restricted at L7).
        let l7 = match merge_l7(&allows) {
            L7Decision::None => L7Decision::None,
            _ if host => L7Decision::AllowAll,
            other => other,
        };
        let outcome = if !allows.is_empty() || host || !self.default_deny {
            Outcome::Allowed
        } else {
            Outcome::DefaultDenied
        };
        Decision {
            outcome,
            enforced: self.default_deny,
            match_type,
            matched: allows,
            host_exception: host && self.default_deny,
            l7,
        }
    }

    /// The merged lookup entries for the kernel: for every peer key, protocol
    /// and disjoint port range where some item matches, the decision.
    ///
    /// Lookup order for the datapath: the entry of the peer's identity (or,
    /// for world peers, the longest matching CIDR entry, else the world
    /// identity's entry) covering (proto, port); else the `PeerKey::Any`
    /// entry; else the direction's default (`default_deny`). Entries with
    /// `proto == 0` cover protocols other than TCP/UDP/SCTP.
    pub fn entries(&self, cluster: &Cluster) -> Vec<MapEntry> {
        self.entries_with_prefixes(cluster, &[])
    }

    /// [`DirectionPolicy::entries`], plus an entry for each prefix in
    /// `also` (when any rule decides it): the datapath gives each CIDR
    /// named by *any* policy its own identity, so every endpoint needs a
    /// decision for every such prefix, not only for those its own rules name.
    pub fn entries_with_prefixes(&self, cluster: &Cluster, also: &[Prefix]) -> Vec<MapEntry> {
        let mut keys: Vec<(PeerKey, PeerRef)> = vec![(PeerKey::Any, PeerRef::Unknown)];
        let mut idx = BTreeSet::new();
        let mut prefixes = BTreeSet::new();
        for i in self.allows.iter().chain(&self.denies) {
            if let PeerMatch::Set { ids, cidrs } = &*i.peers {
                idx.extend(ids.iter());
                prefixes.extend(cidrs.iter().copied());
            }
        }
        prefixes.extend(also.iter().copied());
        if self.ingress && self.default_deny {
            if let Some(h) = cluster.identity_index(IDENTITY_HOST) {
                idx.insert(h);
            }
        }
        for index in idx {
            let id = cluster.identities[index].id;
            keys.push((PeerKey::Identity(id), PeerRef::Identity { index, id }));
        }
        for p in prefixes {
            keys.push((PeerKey::Cidr(p), PeerRef::WorldPrefix(p)));
        }
        let mut out = Vec::new();
        for (key, peer) in keys {
            for proto in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
                let mut points = BTreeSet::from([0u32]);
                for i in self.allows.iter().chain(&self.denies) {
                    if let Some(p) = i.port {
                        if p.port != 0 && p.protocol.covers(proto) {
                            points.insert(p.port as u32);
                            points.insert(p.end_port as u32 + 1);
                        }
                    }
                }
                let pts: Vec<u32> = points.into_iter().filter(|p| *p <= 65535).collect();
                let mut last: Option<MapEntry> = None;
                for (n, lo) in pts.iter().enumerate() {
                    let hi = pts.get(n + 1).map_or(65535, |x| x - 1);
                    let d = self.decide(&peer, proto, *lo as u16);
                    let entry = match d.outcome {
                        _ if d.matched.is_empty() && !d.host_exception => None,
                        Outcome::Denied => Some(EntryVerdict::Deny),
                        _ => Some(EntryVerdict::Allow {
                            match_type: d.match_type,
                            l7: d.l7,
                        }),
                    };
                    let Some(verdict) = entry else {
                        if let Some(e) = last.take() {
                            out.push(e);
                        }
                        continue;
                    };
                    match &mut last {
                        Some(e) if e.verdict == verdict && e.port_hi as u32 + 1 == *lo => {
                            e.port_hi = hi as u16
                        }
                        _ => {
                            if let Some(e) = last.take() {
                                out.push(e);
                            }
                            last = Some(MapEntry {
                                peer: key,
                                proto: proto.number(),
                                port_lo: *lo as u16,
                                port_hi: hi as u16,
                                verdict,
                            });
                        }
                    }
                }
                if let Some(e) = last.take() {
                    out.push(e);
                }
            }
            // Other protocols: only items without ports apply.
            let l3: Vec<&Arc<ResolvedItem>> = self
                .allows
                .iter()
                .chain(&self.denies)
                .filter(|i| i.port.is_none() && i.peers.covers(&peer, self.world_index))
                .collect();
            if !l3.is_empty() {
                let verdict = if l3.iter().any(|i| i.kind == ItemKind::Deny) {
                    EntryVerdict::Deny
                } else {
                    EntryVerdict::Allow {
                        match_type: l3
                            .iter()
                            .map(|i| i.match_type())
                            .min()
                            .unwrap_or(MatchType::None),
                        l7: L7Decision::None,
                    }
                };
                out.push(MapEntry {
                    peer: key,
                    proto: 0,
                    port_lo: 0,
                    port_hi: 65535,
                    verdict,
                });
            }
        }
        out
    }
}

fn merge_l7(allows: &[Arc<ResolvedItem>]) -> L7Decision {
    if allows.iter().all(|i| i.l7.is_none()) {
        return L7Decision::None;
    }
    if allows.iter().any(|i| i.l7.is_none()) {
        return L7Decision::AllowAll;
    }
    let mut http = Vec::new();
    let mut dns = Vec::new();
    let mut visibility_only = false;
    for i in allows {
        match i.l7.as_deref() {
            Some(L7Rules::Http(r)) => http.extend(r.iter().cloned()),
            Some(L7Rules::Dns(r)) => dns.extend(r.iter().cloned()),
            None => {}
        }
        if !i.rule_default_deny {
            visibility_only = true;
        }
    }
    match (http.is_empty(), dns.is_empty()) {
        (false, false) => L7Decision::Conflict,
        _ if visibility_only => L7Decision::AllowAll,
        (false, true) => L7Decision::Http(http),
        (true, false) => L7Decision::Dns(dns),
        (true, true) => L7Decision::AllowAll,
    }
}

/// The peer part of a lookup key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerKey {
    /// Every peer (identity 0 in Cilium's maps).
    Any,
    /// One identity.
    Identity(u32),
    /// A world prefix (LPM).
    Cidr(Prefix),
}

/// What a lookup entry decides.
#[derive(Clone, Debug, PartialEq)]
pub enum EntryVerdict {
    /// Drop with `POLICY_DENY` (181).
    Deny,
    /// Allow; `l7` says whether requests go through an L7 check.
    Allow {
        /// The match type to report.
        match_type: MatchType,
        /// The L7 decision for this peer and port range.
        l7: L7Decision,
    },
}

/// One merged lookup entry (see [`DirectionPolicy::entries`]).
#[derive(Clone, Debug, PartialEq)]
pub struct MapEntry {
    /// Peer key.
    pub peer: PeerKey,
    /// IP protocol number (6, 17, 132; 0 = any other protocol).
    pub proto: u8,
    /// First port covered.
    pub port_lo: u16,
    /// Last port covered (inclusive).
    pub port_hi: u16,
    /// The decision.
    pub verdict: EntryVerdict,
}

/// Both directions of one endpoint (shared by endpoints with one identity).
#[derive(Clone, Debug, Default)]
pub struct EndpointPolicy {
    /// Ingress.
    pub ingress: DirectionPolicy,
    /// Egress.
    pub egress: DirectionPolicy,
}

impl EndpointPolicy {
    /// The policy of one direction.
    pub fn direction(&self, d: Direction) -> &DirectionPolicy {
        match d {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// Selector matching over all identities of a cluster, with an index so that
/// each selector costs a few bitset operations.
#[derive(Debug)]
struct LabelIndex {
    n: usize,
    /// (key) → value → identities, any source.
    any: HashMap<String, HashMap<String, Bits>>,
    /// (source, key) → value → identities.
    by_source: HashMap<(String, String), HashMap<String, Bits>>,
}

impl LabelIndex {
    fn new(cluster: &Cluster) -> Self {
        let n = cluster.identities.len();
        let mut any: HashMap<String, HashMap<String, Bits>> = HashMap::new();
        let mut by_source: HashMap<(String, String), HashMap<String, Bits>> = HashMap::new();
        for (i, id) in cluster.identities.iter().enumerate() {
            for l in id.labels.iter() {
                any.entry(l.key.clone())
                    .or_default()
                    .entry(l.value.clone())
                    .or_insert_with(|| Bits::empty(n))
                    .insert(i);
                by_source
                    .entry((l.source.clone(), l.key.clone()))
                    .or_default()
                    .entry(l.value.clone())
                    .or_insert_with(|| Bits::empty(n))
                    .insert(i);
            }
        }
        Self { n, any, by_source }
    }

    fn values(&self, source: &str, key: &str) -> Option<&HashMap<String, Bits>> {
        if source == SOURCE_ANY {
            self.any.get(key)
        } else {
            self.by_source.get(&(source.to_string(), key.to_string()))
        }
    }

    fn select(&self, sel: &Selector) -> Bits {
        let mut acc = Bits::full(self.n);
        for r in &sel.requirements {
            let vals = self.values(&r.source, &r.key);
            let mut b = Bits::empty(self.n);
            match r.op {
                Operator::In | Operator::NotIn => {
                    if let Some(v) = vals {
                        for x in &r.values {
                            if let Some(bits) = v.get(x) {
                                b.union_with(bits);
                            }
                        }
                    }
                }
                Operator::Exists | Operator::DoesNotExist => {
                    if let Some(v) = vals {
                        for bits in v.values() {
                            b.union_with(bits);
                        }
                    }
                }
            }
            if matches!(r.op, Operator::NotIn | Operator::DoesNotExist) {
                b = b.complement();
            }
            acc.intersect_with(&b);
            if acc.is_empty() {
                break;
            }
        }
        acc
    }
}

/// Policies resolved against a cluster: the per-identity policy of every endpoint.
#[derive(Debug)]
pub struct Resolved {
    /// The cluster resolved against.
    pub cluster: Arc<Cluster>,
    /// Policy per identity number (only identities some endpoint has).
    pub by_identity: HashMap<u32, Arc<EndpointPolicy>>,
    empty: Arc<EndpointPolicy>,
}

impl Resolved {
    /// The policy of an endpoint's identity (an empty, unenforced one if no rule selects it).
    pub fn for_identity(&self, id: u32) -> &Arc<EndpointPolicy> {
        self.by_identity.get(&id).unwrap_or(&self.empty)
    }
}

fn peer_match(
    index: &LabelIndex,
    cluster: &Cluster,
    peers: Option<&Vec<PeerSelector>>,
    cache: &mut HashMap<Selector, Bits>,
) -> PeerMatch {
    let Some(peers) = peers else {
        return PeerMatch::Any;
    };
    let n = cluster.identities.len();
    let world = cluster.identity_index(IDENTITY_WORLD).unwrap_or(usize::MAX);
    let mut ids = Bits::empty(n);
    let mut cidrs = Vec::new();
    for p in peers {
        match p {
            PeerSelector::Endpoints(sel) => {
                let b = cache
                    .entry(sel.clone())
                    .or_insert_with(|| index.select(sel));
                ids.union_with(b);
            }
            PeerSelector::Cidr(c) => cidrs.extend(c.parts.iter().copied()),
            PeerSelector::Entity(e) => match e {
                Entity::All => return PeerMatch::Any,
                Entity::None => {}
                Entity::World => ids.insert(world),
                Entity::WorldIpv4 => cidrs.push(Prefix::new(IpAddr::V4(0.into()), 0)),
                Entity::WorldIpv6 => cidrs.push(Prefix::new(IpAddr::V6(0.into()), 0)),
                Entity::Cluster => {
                    let mut all = Bits::full(n);
                    let mut w = Bits::empty(n);
                    w.insert(world);
                    all.intersect_with(&w.complement());
                    ids.union_with(&all);
                }
                other => {
                    let key = other.as_str();
                    if let Some(i) = cluster
                        .identities
                        .iter()
                        .position(|x| x.reserved && x.labels.has("reserved", key))
                    {
                        ids.insert(i);
                    }
                }
            },
        }
    }
    cidrs.sort();
    cidrs.dedup();
    PeerMatch::Set { ids, cidrs }
}

fn peer_text(peers: Option<&Vec<PeerSelector>>) -> String {
    match peers {
        None => "any peer".into(),
        Some(v) if v.is_empty() => "no peer (empty list)".into(),
        Some(v) => v
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

/// Resolves `policies` against every endpoint identity of `cluster`.
pub fn resolve(policies: &[Arc<Policy>], cluster: Arc<Cluster>) -> Resolved {
    let index = LabelIndex::new(&cluster);
    let world_index = cluster.identity_index(IDENTITY_WORLD).unwrap_or(usize::MAX);
    let mut cache: HashMap<Selector, Bits> = HashMap::new();
    // Identities some endpoint has, by index.
    let mut endpoint_ids = Bits::empty(cluster.identities.len());
    for e in &cluster.endpoints {
        if let Some(i) = cluster.identity_index(e.identity) {
            endpoint_ids.insert(i);
        }
    }
    let mut by_index: HashMap<usize, EndpointPolicy> = HashMap::new();
    for pol in policies {
        for (ri, rule) in pol.rules.iter().enumerate() {
            let mut subj = cache
                .entry(rule.subject.clone())
                .or_insert_with(|| index.select(&rule.subject))
                .clone();
            subj.intersect_with(&endpoint_ids);
            if subj.is_empty() {
                continue;
            }
            let mut resolved: [Vec<Arc<ResolvedItem>>; 4] = Default::default();
            for (slot, (dir, kind)) in [
                (Direction::Ingress, ItemKind::Allow),
                (Direction::Ingress, ItemKind::Deny),
                (Direction::Egress, ItemKind::Allow),
                (Direction::Egress, ItemKind::Deny),
            ]
            .into_iter()
            .enumerate()
            {
                let items = if kind == ItemKind::Allow {
                    rule.allows(dir)
                } else {
                    rule.denies(dir)
                };
                for item in items {
                    let peers = Arc::new(peer_match(
                        &index,
                        &cluster,
                        item.peers.as_deref(),
                        &mut cache,
                    ));
                    let text = peer_text(item.peers.as_deref());
                    let base = ResolvedItem {
                        kind,
                        policy: pol.clone(),
                        rule: ri,
                        origin: item.origin.clone(),
                        port_origin: None,
                        peers,
                        peer_text: text,
                        port: None,
                        l7: None,
                        rule_default_deny: rule.default_deny(dir),
                    };
                    match &item.ports {
                        None => resolved[slot].push(Arc::new(base)),
                        Some(prs) => {
                            for pr in prs {
                                for pp in &pr.ports {
                                    resolved[slot].push(Arc::new(ResolvedItem {
                                        port_origin: Some(pr.origin.clone()),
                                        port: Some(*pp),
                                        l7: pr.l7.clone(),
                                        ..base.clone()
                                    }));
                                }
                            }
                        }
                    }
                }
            }
            let [ia, id, ea, ed] = resolved;
            for i in subj.iter() {
                let ep = by_index.entry(i).or_default();
                for (dp, allows, denies, dir) in [
                    (&mut ep.ingress, &ia, &id, Direction::Ingress),
                    (&mut ep.egress, &ea, &ed, Direction::Egress),
                ] {
                    dp.allows.extend(allows.iter().cloned());
                    dp.denies.extend(denies.iter().cloned());
                    dp.default_deny |= rule.default_deny(dir);
                    let name = pol.display_name();
                    if !dp.selecting.contains(&name) {
                        dp.selecting.push(name);
                    }
                }
            }
        }
    }
    let mut by_identity = HashMap::new();
    for (i, mut ep) in by_index {
        ep.ingress.world_index = world_index;
        ep.ingress.ingress = true;
        ep.egress.world_index = world_index;
        by_identity.insert(cluster.identities[i].id, Arc::new(ep));
    }
    let empty = Arc::new(EndpointPolicy {
        ingress: DirectionPolicy {
            world_index,
            ingress: true,
            ..Default::default()
        },
        egress: DirectionPolicy {
            world_index,
            ..Default::default()
        },
    });
    Resolved {
        cluster,
        by_identity,
        empty,
    }
}

/// Normalises a DNS query for matching (re-exported for callers).
pub fn normalize_query(q: &str) -> String {
    normalize(q)
}
