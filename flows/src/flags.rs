//! `hubble observe` filter flags → whitelist/blacklist FlowFilters, exactly
//! as the hubble CLI builds them (cilium/cilium
//! `hubble/cmd/observe/flows_filter.go`, commit
//! 08260811f69b1ff2410fcecb9ae953135c7193bc), plus holonet's `--filter`.
//!
//! Rules carried over from Hubble:
//! - different flags are ANDed inside one FlowFilter, repeating a flag ORs
//!   its values;
//! - a bidirectional flag (`--label`, `--namespace`, `--pod`, `--ip`,
//!   `--port`, `--identity`, `--service`, `--fqdn`, `--workload`,
//!   `--cluster`) fills the source field of a left entry and the destination
//!   field of a right entry; every other flag goes into both, and the pair
//!   collapses to one entry when both are equal;
//! - `--namespace foo` becomes the pod prefix `foo/` (or the namespace of
//!   given pod/service names);
//! - `--not` sends only the next flag to the blacklist, and all negated flags
//!   accumulate into the same blacklist entries; a trailing or doubled
//!   `--not` is an error;
//! - conflicting pairs (`--label` with `--from-label`, …) are rejected.
//!
//! holonet's `--filter SELECTOR` selects flows where EITHER side matches the
//! Kubernetes label selector; several `--filter` flags must all hold. "All
//! of k either-side selectors" is not one FlowFilter, so it is encoded as the
//! cross product of side assignments: for every way of assigning each
//! selector to the source or the destination, one whitelist entry whose
//! source_label (destination_label) is the comma-join (Kubernetes AND) of
//! the selectors assigned there, ANDed into any label values the entry
//! already has. The union of those 2^k entries is exactly the conjunction.

use std::fmt::Write as _;

use holonet_proto::flow::{
    DropReason, EventTypeFilter, FlowFilter, HttpHeader, IpVersion, NetworkInterface, TcpFlags,
    TrafficDirection, Verdict, Workload,
};

use crate::{names, selector::Selector};

/// Most `--filter` flags accepted at once (2^N whitelist entries).
pub const MAX_EITHER_SIDE_SELECTORS: usize = 6;

/// A filter flag of `hubble observe` (or holonet's `--filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterFlag {
    /// `--uuid`
    Uuid,
    /// `--fqdn` (either side)
    Fqdn,
    /// `--from-fqdn`
    FromFqdn,
    /// `--to-fqdn`
    ToFqdn,
    /// `--pod` (either side)
    Pod,
    /// `--from-pod`
    FromPod,
    /// `--to-pod`
    ToPod,
    /// `--ip` (either side)
    Ip,
    /// `--from-ip`
    FromIp,
    /// `--to-ip`
    ToIp,
    /// `--snat-ip`
    SnatIp,
    /// `-4/--ipv4`
    Ipv4,
    /// `-6/--ipv6`
    Ipv6,
    /// `--ip-version`
    IpVersion,
    /// `-l/--label` (either side)
    Label,
    /// `--from-label`
    FromLabel,
    /// `--to-label`
    ToLabel,
    /// `-n/--namespace` (either side)
    Namespace,
    /// `--from-namespace`
    FromNamespace,
    /// `--to-namespace`
    ToNamespace,
    /// `--service` (either side)
    Service,
    /// `--from-service`
    FromService,
    /// `--to-service`
    ToService,
    /// `--port` (either side)
    Port,
    /// `--from-port`
    FromPort,
    /// `--to-port`
    ToPort,
    /// `--trace-id`
    TraceId,
    /// `--ip-trace-id`
    IpTraceId,
    /// `--verdict`
    Verdict,
    /// `--drop-reason-desc`
    DropReasonDesc,
    /// `--http-status`
    HttpStatus,
    /// `--http-method`
    HttpMethod,
    /// `--http-path`
    HttpPath,
    /// `--http-url`
    HttpUrl,
    /// `--http-header`
    HttpHeader,
    /// `-t/--type`
    Type,
    /// `--protocol`
    Protocol,
    /// `--workload` (either side)
    Workload,
    /// `--from-workload`
    FromWorkload,
    /// `--to-workload`
    ToWorkload,
    /// `--identity` (either side)
    Identity,
    /// `--from-identity`
    FromIdentity,
    /// `--to-identity`
    ToIdentity,
    /// `--node-name`
    NodeName,
    /// `--node-label`
    NodeLabel,
    /// `--cluster` (either side)
    Cluster,
    /// `--from-cluster`
    FromCluster,
    /// `--to-cluster`
    ToCluster,
    /// `--tcp-flags`
    TcpFlags,
    /// `--traffic-direction`
    TrafficDirection,
    /// `--interface`
    Interface,
    /// `--encrypted`
    Encrypted,
    /// `--unencrypted`
    Unencrypted,
    /// holonet's `--filter SELECTOR`: either side matches the selector.
    Filter,
}

use FilterFlag as F;

const TABLE: &[(FilterFlag, &str, Option<char>, bool)] = &[
    (F::Uuid, "uuid", None, true),
    (F::Fqdn, "fqdn", None, true),
    (F::FromFqdn, "from-fqdn", None, true),
    (F::ToFqdn, "to-fqdn", None, true),
    (F::Pod, "pod", None, true),
    (F::FromPod, "from-pod", None, true),
    (F::ToPod, "to-pod", None, true),
    (F::Ip, "ip", None, true),
    (F::FromIp, "from-ip", None, true),
    (F::ToIp, "to-ip", None, true),
    (F::SnatIp, "snat-ip", None, true),
    (F::Ipv4, "ipv4", Some('4'), false),
    (F::Ipv6, "ipv6", Some('6'), false),
    (F::IpVersion, "ip-version", None, true),
    (F::Label, "label", Some('l'), true),
    (F::FromLabel, "from-label", None, true),
    (F::ToLabel, "to-label", None, true),
    (F::Namespace, "namespace", Some('n'), true),
    (F::FromNamespace, "from-namespace", None, true),
    (F::ToNamespace, "to-namespace", None, true),
    (F::Service, "service", None, true),
    (F::FromService, "from-service", None, true),
    (F::ToService, "to-service", None, true),
    (F::Port, "port", None, true),
    (F::FromPort, "from-port", None, true),
    (F::ToPort, "to-port", None, true),
    (F::TraceId, "trace-id", None, true),
    (F::IpTraceId, "ip-trace-id", None, true),
    (F::Verdict, "verdict", None, true),
    (F::DropReasonDesc, "drop-reason-desc", None, true),
    (F::HttpStatus, "http-status", None, true),
    (F::HttpMethod, "http-method", None, true),
    (F::HttpPath, "http-path", None, true),
    (F::HttpUrl, "http-url", None, true),
    (F::HttpHeader, "http-header", None, true),
    (F::Type, "type", Some('t'), true),
    (F::Protocol, "protocol", None, true),
    (F::Workload, "workload", None, true),
    (F::FromWorkload, "from-workload", None, true),
    (F::ToWorkload, "to-workload", None, true),
    (F::Identity, "identity", None, true),
    (F::FromIdentity, "from-identity", None, true),
    (F::ToIdentity, "to-identity", None, true),
    (F::NodeName, "node-name", None, true),
    (F::NodeLabel, "node-label", None, true),
    (F::Cluster, "cluster", None, true),
    (F::FromCluster, "from-cluster", None, true),
    (F::ToCluster, "to-cluster", None, true),
    (F::TcpFlags, "tcp-flags", None, true),
    (F::TrafficDirection, "traffic-direction", None, true),
    (F::Interface, "interface", None, true),
    (F::Encrypted, "encrypted", None, false),
    (F::Unencrypted, "unencrypted", None, false),
    (F::Filter, "filter", None, true),
];

/// Hubble's groups of flags that cannot be combined (`newFlowFilter`).
const CONFLICTS: &[&[&str]] = &[
    &[
        "from-fqdn",
        "from-ip",
        "ip",
        "fqdn",
        "from-namespace",
        "namespace",
    ],
    &["from-fqdn", "from-ip", "ip", "fqdn", "from-pod", "pod"],
    &[
        "to-fqdn",
        "to-ip",
        "ip",
        "fqdn",
        "to-namespace",
        "namespace",
    ],
    &["to-fqdn", "to-ip", "ip", "fqdn", "to-pod", "pod"],
    &["to-pod", "namespace"],
    &["from-pod", "namespace"],
    &["to-service", "namespace"],
    &["from-service", "namespace"],
    &["label", "from-label"],
    &["label", "to-label"],
    &["service", "from-service"],
    &["service", "to-service"],
    &["port", "to-port"],
    &["port", "from-port"],
    &["identity", "to-identity"],
    &["identity", "from-identity"],
    &["workload", "to-workload"],
    &["workload", "from-workload"],
    &["encrypted", "unencrypted"],
];

impl FilterFlag {
    /// Every filter flag, in `--help` order.
    pub fn all() -> impl Iterator<Item = FilterFlag> {
        TABLE.iter().map(|(f, ..)| *f)
    }

    fn entry(self) -> &'static (FilterFlag, &'static str, Option<char>, bool) {
        TABLE.iter().find(|(f, ..)| *f == self).unwrap_or(&TABLE[0])
    }

    /// The long flag name without dashes, e.g. `from-label`.
    pub fn name(self) -> &'static str {
        self.entry().1
    }

    /// The short flag, e.g. `l` for `--label`.
    pub fn short(self) -> Option<char> {
        self.entry().2
    }

    /// Whether the flag takes a value (`--ipv4`, `--encrypted` do not).
    pub fn takes_value(self) -> bool {
        self.entry().3
    }

    /// Looks a flag up by its long name (without dashes).
    pub fn from_name(name: &str) -> Option<Self> {
        TABLE.iter().find(|(_, n, ..)| *n == name).map(|(f, ..)| *f)
    }

    /// Looks a flag up by its short name.
    pub fn from_short(c: char) -> Option<Self> {
        TABLE
            .iter()
            .find(|(_, _, s, _)| *s == Some(c))
            .map(|(f, ..)| *f)
    }
}

/// A filter flag could not be turned into FlowFilters. The message follows
/// the hubble CLI's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FlagError(String);

impl FlagError {
    fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// One element of the ordered filter command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterToken {
    /// `--not`: negates the next flag.
    Not,
    /// A filter flag and its value (empty for flags without a value).
    Flag(FilterFlag, String),
}

/// The filter flags in command-line order, independent of any argument
/// parser, so `--not` applies to the flag that follows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterArgs {
    /// The flags and `--not`s in order.
    pub tokens: Vec<FilterToken>,
}

/// The FlowFilters to send (or apply locally).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    /// Entries ORed: a flow must match one (if any).
    pub whitelist: Vec<FlowFilter>,
    /// Entries ORed: a flow matching one is dropped.
    pub blacklist: Vec<FlowFilter>,
}

impl FilterArgs {
    /// An empty set of flags (no filtering).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a flag with its value.
    pub fn push(&mut self, flag: FilterFlag, value: impl Into<String>) -> &mut Self {
        self.tokens.push(FilterToken::Flag(flag, value.into()));
        self
    }

    /// Appends `--not`, which negates the next flag.
    pub fn not(&mut self) -> &mut Self {
        self.tokens.push(FilterToken::Not);
        self
    }

    /// Recovers the ordered filter flags from a raw command line (as already
    /// validated by the real argument parser). `value_longs` and
    /// `value_shorts` name the command's other options that take a value, so
    /// their values are not mistaken for flags. Scanning stops at `--`.
    pub fn from_argv<I, S>(argv: I, value_longs: &[&str], value_shorts: &[char]) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let argv: Vec<String> = argv.into_iter().map(|s| s.as_ref().to_owned()).collect();
        let mut out = Self::new();
        let mut i = 0;
        while i < argv.len() {
            let tok = argv[i].as_str();
            i += 1;
            if tok == "--" {
                break;
            }
            if tok == "--not" {
                out.not();
                continue;
            }
            if let Some(long) = tok.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (long, None),
                };
                if let Some(flag) = FilterFlag::from_name(name) {
                    if flag.takes_value() {
                        let value = match inline {
                            Some(v) => v.to_owned(),
                            None => {
                                i += 1;
                                argv.get(i - 1).cloned().unwrap_or_default()
                            }
                        };
                        out.push(flag, value);
                    } else {
                        out.push(flag, "");
                    }
                } else if inline.is_none() && value_longs.contains(&name) {
                    i += 1;
                }
                continue;
            }
            if let Some(shorts) = tok.strip_prefix('-') {
                for (pos, c) in shorts.char_indices() {
                    if let Some(flag) = FilterFlag::from_short(c) {
                        if flag.takes_value() {
                            let rest = &shorts[pos + c.len_utf8()..];
                            let rest = rest.strip_prefix('=').unwrap_or(rest);
                            let value = if rest.is_empty() {
                                i += 1;
                                argv.get(i - 1).cloned().unwrap_or_default()
                            } else {
                                rest.to_owned()
                            };
                            out.push(flag, value);
                            break;
                        }
                        out.push(flag, "");
                    } else if value_shorts.contains(&c) {
                        if shorts[pos + c.len_utf8()..].is_empty() {
                            i += 1;
                        }
                        break;
                    }
                }
            }
        }
        out
    }

    /// Builds the whitelist and blacklist the way `hubble observe` does.
    pub fn build(&self) -> Result<Filters, FlagError> {
        let mut white = Tracker::default();
        let mut black = Tracker::default();
        let mut negate = false;
        let mut either_side = Vec::new();
        for tok in &self.tokens {
            match tok {
                FilterToken::Not => {
                    if negate {
                        return Err(FlagError::new("consecutive --not statements"));
                    }
                    negate = true;
                }
                FilterToken::Flag(flag, value) => {
                    if negate {
                        negate = false;
                        black.set(*flag, value)?;
                    } else if *flag == F::Filter {
                        Selector::parse(value)
                            .map_err(|e| FlagError::new(format!("invalid --filter value: {e}")))?;
                        either_side.push(value.clone());
                    } else {
                        white.set(*flag, value)?;
                    }
                }
            }
        }
        if negate {
            return Err(FlagError::new(
                "trailing --not: it must be followed by a filter flag",
            ));
        }
        let mut whitelist = white.flow_filters();
        let selectors: Vec<String> = either_side
            .into_iter()
            .filter(|s| Selector::parse(s).is_ok_and(|p| !p.is_empty()))
            .collect();
        if !selectors.is_empty() {
            if selectors.len() > MAX_EITHER_SIDE_SELECTORS {
                return Err(FlagError::new(format!(
                    "at most {MAX_EITHER_SIDE_SELECTORS} --filter flags can be combined, got {}",
                    selectors.len()
                )));
            }
            if whitelist.is_empty() {
                whitelist.push(FlowFilter::default());
            }
            whitelist = and_either_side(&whitelist, &selectors);
        }
        Ok(Filters {
            whitelist,
            blacklist: black.flow_filters(),
        })
    }

    /// The active filter in plain words, for a TUI header, e.g.
    /// `(source org=payer OR destination org=payer) AND verdict DROPPED`.
    pub fn describe(&self) -> String {
        let mut positive: Vec<(FilterFlag, Vec<&str>)> = Vec::new();
        let mut negative: Vec<(FilterFlag, Vec<&str>)> = Vec::new();
        let mut negate = false;
        for tok in &self.tokens {
            match tok {
                FilterToken::Not => negate = true,
                FilterToken::Flag(flag, value) => {
                    let list = if negate { &mut negative } else { &mut positive };
                    negate = false;
                    // Each --filter is its own AND term; other flags OR
                    // their repeated values.
                    match list
                        .iter_mut()
                        .find(|(f, _)| *f == *flag && *flag != F::Filter)
                    {
                        Some((_, vals)) => vals.push(value),
                        None => list.push((*flag, vec![value.as_str()])),
                    }
                }
            }
        }
        let mut terms: Vec<String> = positive.iter().map(|(f, v)| describe_flag(*f, v)).collect();
        match negative.len() {
            0 => {}
            1 => terms.push(format!(
                "NOT {}",
                describe_flag(negative[0].0, &negative[0].1)
            )),
            _ => {
                let inner: Vec<String> =
                    negative.iter().map(|(f, v)| describe_flag(*f, v)).collect();
                terms.push(format!("NOT ({})", inner.join(" AND ")));
            }
        }
        if terms.is_empty() {
            "all flows".to_owned()
        } else {
            terms.join(" AND ")
        }
    }
}

fn describe_flag(flag: FilterFlag, values: &[&str]) -> String {
    let vals = if values.len() == 1 {
        values[0].to_owned()
    } else {
        format!("({})", values.join(" OR "))
    };
    let noun = |n: &str| {
        if n.is_empty() {
            vals.clone()
        } else {
            format!("{n} {vals}")
        }
    };
    let both = |n: &str| format!("(source {} OR destination {})", noun(n), noun(n));
    match flag {
        F::Filter | F::Label => both(""),
        F::FromLabel => format!("source {}", noun("")),
        F::ToLabel => format!("destination {}", noun("")),
        F::Namespace => both("namespace"),
        F::Pod => both("pod"),
        F::Ip => both("ip"),
        F::Port => both("port"),
        F::Identity => both("identity"),
        F::Service => both("service"),
        F::Fqdn => both("fqdn"),
        F::Workload => both("workload"),
        F::Cluster => both("cluster"),
        F::Ipv4 => "IPv4".to_owned(),
        F::Ipv6 => "IPv6".to_owned(),
        F::Encrypted => "encrypted".to_owned(),
        F::Unencrypted => "unencrypted".to_owned(),
        other => {
            let name = other.name();
            if let Some(rest) = name.strip_prefix("from-") {
                format!("source {}", noun(rest))
            } else if let Some(rest) = name.strip_prefix("to-") {
                format!("destination {}", noun(rest))
            } else {
                noun(name)
            }
        }
    }
}

/// ANDs "either side matches S" for every selector S into the entries.
fn and_either_side(entries: &[FlowFilter], selectors: &[String]) -> Vec<FlowFilter> {
    fn and_into(existing: &[String], extra: &str) -> Vec<String> {
        if extra.is_empty() {
            return existing.to_vec();
        }
        if existing.is_empty() {
            return vec![extra.to_owned()];
        }
        existing
            .iter()
            .map(|v| {
                if v.trim().is_empty() {
                    extra.to_owned()
                } else {
                    format!("{v},{extra}")
                }
            })
            .collect()
    }
    let mut out: Vec<FlowFilter> = Vec::new();
    for entry in entries {
        for mask in 0u32..(1u32 << selectors.len()) {
            let mut src = Vec::new();
            let mut dst = Vec::new();
            for (i, s) in selectors.iter().enumerate() {
                if mask & (1 << i) == 0 {
                    src.push(s.as_str());
                } else {
                    dst.push(s.as_str());
                }
            }
            let mut e = entry.clone();
            e.source_label = and_into(&e.source_label, &src.join(","));
            e.destination_label = and_into(&e.destination_label, &dst.join(","));
            if !out.contains(&e) {
                out.push(e);
            }
        }
    }
    out
}

/// Hubble's `filterTracker`: a left (source-side) and right
/// (destination-side) entry plus pending namespaces.
#[derive(Debug, Default)]
struct Tracker {
    left: Option<FlowFilter>,
    right: Option<FlowFilter>,
    ns: Vec<String>,
    src_ns: Vec<String>,
    dst_ns: Vec<String>,
    changed: Vec<&'static str>,
}

fn parse_identity(v: &str) -> Result<u32, FlagError> {
    if let Some((_, id)) = names::RESERVED_IDENTITIES.iter().find(|(n, _)| *n == v) {
        return Ok(*id);
    }
    v.parse().map_err(|_| {
        let names: Vec<&str> = names::RESERVED_IDENTITIES.iter().map(|(n, _)| *n).collect();
        FlagError::new(format!(
            "invalid security identity, expected one of [{}] or a numeric value",
            names.join(" ")
        ))
    })
}

fn parse_workload(v: &str) -> Workload {
    match v.split_once('/') {
        Some((kind, name)) => Workload {
            name: name.to_owned(),
            kind: kind.to_owned(),
        },
        None => Workload {
            name: v.to_owned(),
            kind: String::new(),
        },
    }
}

fn parse_tcp_flags(v: &str) -> Result<TcpFlags, FlagError> {
    let mut flags = TcpFlags::default();
    for f in v.split(',') {
        match f.to_uppercase().as_str() {
            "SYN" => flags.syn = true,
            "FIN" => flags.fin = true,
            "RST" => flags.rst = true,
            "PSH" => flags.psh = true,
            "ACK" => flags.ack = true,
            "URG" => flags.urg = true,
            "ECE" => flags.ece = true,
            "CWR" => flags.cwr = true,
            "NS" => flags.ns = true,
            _ => return Err(FlagError::new(format!("unknown tcp flag: {f}"))),
        }
    }
    Ok(flags)
}

fn parse_type(v: &str) -> Result<EventTypeFilter, FlagError> {
    let (ty, sub) = match v.split_once(':') {
        Some((t, s)) => (t, Some(s)),
        None => (v, None),
    };
    let t = match names::EVENT_TYPE_NAMES.iter().find(|(n, _)| *n == ty) {
        Some((_, t)) => *t,
        None => ty
            .parse::<u32>()
            .ok()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| {
                FlagError::new(format!(
                    "unable to parse type '{ty}', not a known type name and unable to parse as numeric value"
                ))
            })?,
    };
    let mut filter = EventTypeFilter {
        r#type: t,
        match_sub_type: false,
        sub_type: 0,
    };
    if let Some(sub) = sub {
        let named = match t {
            names::EVENT_TRACE => names::TRACE_POINT_NAMES.iter().find(|(n, _)| *n == sub),
            names::EVENT_AGENT => names::AGENT_SUBTYPE_NAMES.iter().find(|(n, _)| *n == sub),
            _ => None,
        };
        filter.match_sub_type = true;
        filter.sub_type = match named {
            Some((_, st)) => *st,
            None => sub
                .parse::<u32>()
                .ok()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| {
                    FlagError::new(format!(
                        "unable to parse event sub-type '{sub}', not a known sub-type name and unable to parse as numeric value"
                    ))
                })?,
        };
    }
    Ok(filter)
}

fn namespace_of(name: &str) -> Option<&str> {
    name.split_once('/').map(|(ns, _)| ns)
}

fn add_namespaces(filter: &[String], ns: &[String]) -> Vec<String> {
    if ns.is_empty() || filter.is_empty() {
        return filter.to_vec();
    }
    let mut out = Vec::new();
    for f in filter {
        if f.contains('/') {
            out.push(f.clone());
            continue;
        }
        for n in ns {
            out.push(format!("{n}/{f}"));
        }
    }
    out
}

fn apply_src_ns(ns: &[String], ff: &mut FlowFilter) {
    if ff.source_pod.is_empty() && ff.source_service.is_empty() {
        ff.source_pod = vec![String::new()];
    }
    ff.source_pod = add_namespaces(&ff.source_pod, ns);
    ff.source_service = add_namespaces(&ff.source_service, ns);
}

fn apply_dst_ns(ns: &[String], ff: &mut FlowFilter) {
    if ff.destination_pod.is_empty() && ff.destination_service.is_empty() {
        ff.destination_pod = vec![String::new()];
    }
    ff.destination_pod = add_namespaces(&ff.destination_pod, ns);
    ff.destination_service = add_namespaces(&ff.destination_service, ns);
}

impl Tracker {
    fn both(&mut self, update: impl Fn(&mut FlowFilter)) {
        update(self.left.get_or_insert_with(FlowFilter::default));
        update(self.right.get_or_insert_with(FlowFilter::default));
    }

    fn split(&mut self, left: impl FnOnce(&mut FlowFilter), right: impl FnOnce(&mut FlowFilter)) {
        left(self.left.get_or_insert_with(FlowFilter::default));
        right(self.right.get_or_insert_with(FlowFilter::default));
    }

    fn check_conflicts(&self) -> Result<(), FlagError> {
        for group in CONFLICTS {
            for flag in group.iter() {
                if !self.changed.contains(flag) {
                    continue;
                }
                for other in group.iter() {
                    if other != flag && self.changed.contains(other) {
                        return Err(FlagError::new(format!(
                            "filters --{flag} and --{other} cannot be combined"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    fn check_namespaces(&self) -> Result<(), FlagError> {
        let conflicts = |nss: &[String], names: &[String]| -> Result<(), FlagError> {
            for ns in nss {
                for name in names {
                    if let Some(nn) = namespace_of(name)
                        && !nn.is_empty()
                        && nn != ns
                    {
                        return Err(FlagError::new(format!(
                            "namespace conflict: {ns:?} does not contain {name:?}"
                        )));
                    }
                }
            }
            Ok(())
        };
        let inconsistent = |pods: &[String], services: &[String]| -> Result<(), FlagError> {
            for pod in pods {
                let Some(pod_ns) = namespace_of(pod).filter(|n| !n.is_empty()) else {
                    continue;
                };
                for svc in services {
                    if namespace_of(svc).unwrap_or("") != pod_ns {
                        return Err(FlagError::new(format!(
                            "namespace of service {svc:?} conflict with pod {pod_ns:?}"
                        )));
                    }
                }
            }
            Ok(())
        };
        for ff in [&self.left, &self.right].into_iter().flatten() {
            conflicts(&self.ns, &ff.source_pod)?;
            conflicts(&self.ns, &ff.source_service)?;
            conflicts(&self.ns, &ff.destination_pod)?;
            conflicts(&self.ns, &ff.destination_service)?;
            conflicts(&self.src_ns, &ff.source_pod)?;
            conflicts(&self.src_ns, &ff.source_service)?;
            conflicts(&self.dst_ns, &ff.destination_pod)?;
            conflicts(&self.dst_ns, &ff.destination_service)?;
            inconsistent(&ff.source_pod, &ff.source_service)?;
            inconsistent(&ff.destination_pod, &ff.destination_service)?;
        }
        Ok(())
    }

    fn set(&mut self, flag: FilterFlag, val: &str) -> Result<(), FlagError> {
        let name = flag.name();
        if !self.changed.contains(&name) {
            self.changed.push(name);
        }
        self.check_conflicts()?;
        let v = val.to_owned();
        match flag {
            F::Uuid => self.both(|f| f.uuid.push(v.clone())),
            F::Fqdn => self.split(
                |f| f.source_fqdn.push(v.clone()),
                |f| f.destination_fqdn.push(v.clone()),
            ),
            F::FromFqdn => self.both(|f| f.source_fqdn.push(v.clone())),
            F::ToFqdn => self.both(|f| f.destination_fqdn.push(v.clone())),
            F::Pod => self.split(
                |f| f.source_pod.push(v.clone()),
                |f| f.destination_pod.push(v.clone()),
            ),
            F::FromPod => self.both(|f| f.source_pod.push(v.clone())),
            F::ToPod => self.both(|f| f.destination_pod.push(v.clone())),
            F::FromIp => self.both(|f| f.source_ip.push(v.clone())),
            F::SnatIp => self.both(|f| f.source_ip_xlated.push(v.clone())),
            F::Ip => self.split(
                |f| f.source_ip.push(v.clone()),
                |f| f.destination_ip.push(v.clone()),
            ),
            F::ToIp => self.both(|f| f.destination_ip.push(v.clone())),
            F::Ipv4 => self.both(|f| f.ip_version.push(IpVersion::IPv4 as i32)),
            F::Ipv6 => self.both(|f| f.ip_version.push(IpVersion::IPv6 as i32)),
            F::IpVersion => {
                let ver = match val.to_lowercase().as_str() {
                    "4" | "v4" | "ipv4" | "ip4" => IpVersion::IPv4,
                    "6" | "v6" | "ipv6" | "ip6" => IpVersion::IPv6,
                    _ => IpVersion::IpNotUsed,
                };
                self.both(|f| f.ip_version.push(ver as i32));
            }
            F::Label | F::Filter => {
                self.split(
                    |f| f.source_label.push(v.clone()),
                    |f| f.destination_label.push(v.clone()),
                );
            }
            F::FromLabel => self.both(|f| f.source_label.push(v.clone())),
            F::ToLabel => self.both(|f| f.destination_label.push(v.clone())),
            F::Namespace => self.ns.push(v),
            F::FromNamespace => self.src_ns.push(v),
            F::ToNamespace => self.dst_ns.push(v),
            F::Service => {
                self.split(
                    |f| f.source_service.push(v.clone()),
                    |f| f.destination_service.push(v.clone()),
                );
            }
            F::FromService => self.both(|f| f.source_service.push(v.clone())),
            F::ToService => self.both(|f| f.destination_service.push(v.clone())),
            F::Port => self.split(
                |f| f.source_port.push(v.clone()),
                |f| f.destination_port.push(v.clone()),
            ),
            F::FromPort => self.both(|f| f.source_port.push(v.clone())),
            F::ToPort => self.both(|f| f.destination_port.push(v.clone())),
            F::TraceId => self.both(|f| f.trace_id.push(v.clone())),
            F::IpTraceId => {
                if val == "0" {
                    return Err(FlagError::new(
                        "invalid --ip-trace-id value; must be greater than 0",
                    ));
                }
                let id: u64 = val
                    .parse()
                    .map_err(|e| FlagError::new(format!("invalid --ip-trace-id value: {e}")))?;
                self.both(|f| f.ip_trace_id.push(id));
            }
            F::Verdict => {
                let vv = Verdict::from_str_name(val)
                    .ok_or_else(|| FlagError::new(format!("invalid --verdict value: {val}")))?;
                self.both(|f| f.verdict.push(vv as i32));
            }
            F::DropReasonDesc => {
                if val.is_empty() {
                    return Err(FlagError::new("empty --drop-reason-desc value"));
                }
                let d = DropReason::from_str_name(val).ok_or_else(|| {
                    FlagError::new(format!("invalid --drop-reason-desc value: {val}"))
                })?;
                self.both(|f| f.drop_reason_desc.push(d as i32));
            }
            F::HttpStatus => self.both(|f| f.http_status_code.push(v.clone())),
            F::HttpMethod => self.both(|f| f.http_method.push(v.clone())),
            F::HttpPath => self.both(|f| f.http_path.push(v.clone())),
            F::HttpUrl => self.both(|f| f.http_url.push(v.clone())),
            F::HttpHeader => {
                let (key, value) = val.split_once(':').ok_or_else(|| {
                    FlagError::new(format!(
                        "invalid http-header value {val:?}, expected name:value"
                    ))
                })?;
                let h = HttpHeader {
                    key: key.to_owned(),
                    value: value.to_owned(),
                };
                self.both(|f| f.http_header.push(h.clone()));
            }
            F::Type => {
                let t = parse_type(val)?;
                self.both(|f| f.event_type.push(t));
            }
            F::Protocol => self.both(|f| f.protocol.push(v.clone())),
            F::Workload => {
                let w = parse_workload(val);
                self.split(
                    |f| f.source_workload.push(w.clone()),
                    |f| f.destination_workload.push(w.clone()),
                );
            }
            F::FromWorkload => {
                let w = parse_workload(val);
                self.both(|f| f.source_workload.push(w.clone()));
            }
            F::ToWorkload => {
                let w = parse_workload(val);
                self.both(|f| f.destination_workload.push(w.clone()));
            }
            F::Identity => {
                let id = parse_identity(val)?;
                self.split(
                    |f| f.source_identity.push(id),
                    |f| f.destination_identity.push(id),
                );
            }
            F::FromIdentity => {
                let id = parse_identity(val)?;
                self.both(|f| f.source_identity.push(id));
            }
            F::ToIdentity => {
                let id = parse_identity(val)?;
                self.both(|f| f.destination_identity.push(id));
            }
            F::NodeName => self.both(|f| f.node_name.push(v.clone())),
            F::NodeLabel => self.both(|f| f.node_labels.push(v.clone())),
            F::Cluster => self.split(
                |f| f.source_cluster_name.push(v.clone()),
                |f| f.destination_cluster_name.push(v.clone()),
            ),
            F::FromCluster => self.both(|f| f.source_cluster_name.push(v.clone())),
            F::ToCluster => self.both(|f| f.destination_cluster_name.push(v.clone())),
            F::TcpFlags => {
                let flags = parse_tcp_flags(val)?;
                self.both(|f| f.tcp_flags.push(flags));
            }
            F::TrafficDirection => {
                let td = match val.to_lowercase().as_str() {
                    "ingress" => TrafficDirection::Ingress,
                    "egress" => TrafficDirection::Egress,
                    other => {
                        return Err(FlagError::new(format!(
                            "{other}: invalid traffic direction, expected ingress or egress"
                        )));
                    }
                };
                self.both(|f| f.traffic_direction.push(td as i32));
            }
            F::Interface => self.both(|f| {
                f.interface.push(NetworkInterface {
                    index: 0,
                    name: v.clone(),
                });
            }),
            F::Encrypted => self.both(|f| f.encrypted.push(true)),
            F::Unencrypted => self.both(|f| f.encrypted.push(false)),
        }
        self.check_namespaces()
    }

    fn flow_filters(mut self) -> Vec<FlowFilter> {
        if self.left.is_none()
            && self.right.is_none()
            && self.ns.is_empty()
            && self.src_ns.is_empty()
            && self.dst_ns.is_empty()
        {
            return Vec::new();
        }
        let mut left = self.left.take().unwrap_or_default();
        let mut right = self.right.take().unwrap_or_default();
        if !self.dst_ns.is_empty() {
            apply_dst_ns(&self.dst_ns, &mut left);
            apply_dst_ns(&self.dst_ns, &mut right);
        }
        if !self.src_ns.is_empty() {
            apply_src_ns(&self.src_ns, &mut left);
            apply_src_ns(&self.src_ns, &mut right);
        }
        if !self.ns.is_empty() {
            apply_src_ns(&self.ns, &mut left);
            apply_dst_ns(&self.ns, &mut right);
        }
        if left == right {
            vec![left]
        } else {
            vec![left, right]
        }
    }
}

/// Renders one FlowFilter as compact JSON (proto field names), the form
/// `hubble observe --print-raw-filters` prints and the exporter's
/// allowlist/denylist options take.
pub fn raw_filter_json(filter: &FlowFilter) -> String {
    serde_json::to_string(filter).unwrap_or_default()
}

/// Renders FlowFilters as a JSON array (see [`raw_filter_json`]).
pub fn raw_filters_json(filters: &[FlowFilter]) -> String {
    let mut out = String::from("[");
    for (i, f) in filters.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}", raw_filter_json(f));
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests;
