//! Policy resolution → the records of the enforcement maps.
//!
//! Pure: takes the policy engine's [`Resolved`] view of the cluster and
//! produces every `IPCACHE`, `ENDPOINTS` and `POLICY` record and every L7
//! table the kernel needs (formats in `probe_common::policy` and
//! `probe_common::l7`). The loader writes them; tests check them here
//! without a kernel.

use std::{collections::BTreeMap, net::IpAddr};

use holonet_policy::{
    cidr::Prefix,
    endpoints::Cluster,
    l7::{L7CompileError, compile_dns_rules, compile_http_rules},
    resolve::{DirectionPolicy, EntryVerdict, L7Decision, MapEntry, MatchType, PeerKey, Resolved},
};
use probe_common::{
    l7::L7DfaTable,
    policy::{
        ENDPOINT_FLAG_AUDIT, ENDPOINT_FLAG_ENFORCE_EGRESS, ENDPOINT_FLAG_ENFORCE_INGRESS,
        EndpointValue, IDENTITY_ANY, IDENTITY_CIDR_BASE, IPCACHE_ADDR_LEN, IPCACHE_FLAG_CIDR,
        IpcacheValue, L7_KIND_CONFLICT, L7_KIND_DNS, L7_KIND_HTTP, L7_KIND_NONE,
        L7_KIND_VISIBILITY, POLICY_ACTION_ALLOW, POLICY_ACTION_DENY, POLICY_KEY_FIXED_BITS,
        POLICY_KEY_LEN, PolicyValue, direction, ipcache_v4_addr, ipcache_v4_prefix, policy_key,
    },
};

/// One `IPCACHE` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpcacheRecord {
    /// Prefix length in bits (IPv4 prefixes are mapped: 96 + n).
    pub prefix_len: u32,
    /// The address bytes.
    pub addr: [u8; IPCACHE_ADDR_LEN],
    /// Identity and flags.
    pub value: IpcacheValue,
}

/// One local endpoint: its `ENDPOINTS` value, keyed later by the ifindex of
/// the interface the agent finds for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointRecord {
    /// `namespace/name` of the pod.
    pub pod: String,
    /// Its address.
    pub ip: IpAddr,
    /// The map value.
    pub value: EndpointValue,
}

/// One `POLICY` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyRecord {
    /// Prefix length in bits ([`POLICY_KEY_FIXED_BITS`] + port bits).
    pub prefix_len: u32,
    /// Key data.
    pub key: [u8; POLICY_KEY_LEN],
    /// The decision.
    pub value: PolicyValue,
}

/// Everything the enforcement maps hold for one node.
#[derive(Debug, Default)]
pub struct CompiledDatapath {
    /// Address → identity.
    pub ipcache: Vec<IpcacheRecord>,
    /// Endpoints on this node.
    pub endpoints: Vec<EndpointRecord>,
    /// Policy lookup records.
    pub policy: Vec<PolicyRecord>,
    /// HTTP tables, indexed by `PolicyValue::l7_table` for `L7_KIND_HTTP`.
    pub http_tables: Vec<Box<L7DfaTable>>,
    /// DNS tables (query names the rule sets allow), indexed by
    /// `PolicyValue::l7_table` for `L7_KIND_DNS`.
    pub dns_tables: Vec<Box<L7DfaTable>>,
    /// CIDR identities handed out, by prefix.
    pub cidr_identities: BTreeMap<Prefix, u32>,
    /// Rules the datapath enforces more loosely than written, each said in
    /// plain words (the agent prints them as warnings).
    pub loosened: Vec<String>,
}

impl CompiledDatapath {
    /// Puts every endpoint in audit mode: the datapath decides as usual,
    /// reports what it would drop with verdict AUDIT, and drops nothing
    /// (for trying a policy on live traffic before enforcing it).
    pub fn audit_only(&mut self) {
        for endpoint in &mut self.endpoints {
            endpoint.value.flags |= ENDPOINT_FLAG_AUDIT;
        }
    }
}

/// The policy could not be turned into map records.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// An HTTP or DNS rule set does not fit the kernel table.
    #[error("L7 rules of {pod} ({direction}) cannot be compiled for the kernel: {source}")]
    L7 {
        /// The endpoint.
        pod: String,
        /// ingress or egress.
        direction: &'static str,
        /// Why.
        #[source]
        source: L7CompileError,
    },
}

/// Hubble's numbering of policy match types.
pub fn match_type_code(m: MatchType) -> u8 {
    match m {
        MatchType::None => 0,
        MatchType::L3Only => 1,
        MatchType::L3L4 => 2,
        MatchType::L4Only => 3,
        MatchType::All => 4,
        MatchType::L3Proto => 5,
        MatchType::ProtoOnly => 6,
    }
}

/// Splits `lo..=hi` into aligned power-of-two blocks: `(first port, prefix
/// bits)` pairs whose ranges are disjoint and cover exactly `lo..=hi`.
pub fn port_prefixes(lo: u16, hi: u16) -> Vec<(u16, u8)> {
    let mut out = Vec::new();
    let (mut lo, hi) = (u32::from(lo), u32::from(hi));
    while lo <= hi {
        // The largest block starting at `lo` that is aligned and fits.
        let mut size = if lo == 0 {
            1 << 16
        } else {
            1u32 << lo.trailing_zeros()
        };
        while lo + size - 1 > hi {
            size >>= 1;
        }
        out.push((lo as u16, 16 - size.trailing_zeros() as u8));
        lo += size;
    }
    out
}

fn ipcache_prefix(p: &Prefix) -> ([u8; IPCACHE_ADDR_LEN], u32) {
    match p.addr {
        IpAddr::V4(a) => (ipcache_v4_addr(a.octets()), ipcache_v4_prefix(p.len)),
        IpAddr::V6(a) => (a.octets(), u32::from(p.len)),
    }
}

fn ipcache_host(ip: IpAddr) -> ([u8; IPCACHE_ADDR_LEN], u32) {
    match ip {
        IpAddr::V4(a) => (ipcache_v4_addr(a.octets()), 128),
        IpAddr::V6(a) => (a.octets(), 128),
    }
}

/// Compiles the maps of node `node_name`.
pub fn compile(resolved: &Resolved, node_name: &str) -> Result<CompiledDatapath, CompileError> {
    let cluster: &Cluster = &resolved.cluster;
    let mut out = CompiledDatapath::default();

    // Every endpoint's addresses, cluster-wide.
    for ep in &cluster.endpoints {
        for ip in ep.ips() {
            let (addr, prefix_len) = ipcache_host(ip);
            out.ipcache.push(IpcacheRecord {
                prefix_len,
                addr,
                value: IpcacheValue {
                    identity: ep.identity,
                    flags: 0,
                },
            });
        }
    }

    // Every CIDR any local endpoint's rules name gets one identity.
    let local: Vec<(usize, &holonet_policy::endpoints::Endpoint)> = cluster
        .endpoints
        .iter()
        .enumerate()
        .filter(|(_, ep)| ep.node == node_name)
        .collect();
    for (_, ep) in &local {
        let policy = resolved.for_identity(ep.identity);
        for dir in [&policy.ingress, &policy.egress] {
            for entry in dir.entries(cluster) {
                if let PeerKey::Cidr(p) = entry.peer {
                    let next = IDENTITY_CIDR_BASE + out.cidr_identities.len() as u32;
                    out.cidr_identities.entry(p).or_insert(next);
                }
            }
        }
    }
    let prefixes: Vec<Prefix> = out.cidr_identities.keys().copied().collect();
    for (prefix, identity) in &out.cidr_identities {
        let (addr, prefix_len) = ipcache_prefix(prefix);
        out.ipcache.push(IpcacheRecord {
            prefix_len,
            addr,
            value: IpcacheValue {
                identity: *identity,
                flags: IPCACHE_FLAG_CIDR,
            },
        });
    }

    let mut http_index: BTreeMap<String, u32> = BTreeMap::new();
    let mut dns_index: BTreeMap<Vec<String>, u32> = BTreeMap::new();
    for (index, ep) in local {
        let endpoint_id = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let pod = format!("{}/{}", ep.namespace, ep.name);
        let policy = resolved.for_identity(ep.identity);
        let mut flags = 0;
        if policy.ingress.default_deny {
            flags |= ENDPOINT_FLAG_ENFORCE_INGRESS;
        }
        if policy.egress.default_deny {
            flags |= ENDPOINT_FLAG_ENFORCE_EGRESS;
        }
        out.endpoints.push(EndpointRecord {
            pod: pod.clone(),
            ip: ep.ip,
            value: EndpointValue {
                endpoint_id,
                identity: ep.identity,
                flags,
                policy_revision: 1,
            },
        });
        for (dir_code, dir_name, dir) in [
            (direction::INGRESS, "ingress", &policy.ingress),
            (direction::EGRESS, "egress", &policy.egress),
        ] {
            compile_direction(
                &mut out,
                &mut http_index,
                &mut dns_index,
                DirectionInput {
                    cluster,
                    prefixes: &prefixes,
                    endpoint_id,
                    dir_code,
                    dir,
                },
            )
            .map_err(|source| CompileError::L7 {
                pod: pod.clone(),
                direction: dir_name,
                source,
            })?;
        }
    }
    Ok(out)
}

struct DirectionInput<'a> {
    cluster: &'a Cluster,
    prefixes: &'a [Prefix],
    endpoint_id: u32,
    dir_code: u8,
    dir: &'a DirectionPolicy,
}

fn compile_direction(
    out: &mut CompiledDatapath,
    http_index: &mut BTreeMap<String, u32>,
    dns_index: &mut BTreeMap<Vec<String>, u32>,
    input: DirectionInput<'_>,
) -> Result<(), L7CompileError> {
    for entry in input
        .dir
        .entries_with_prefixes(input.cluster, input.prefixes)
    {
        let MapEntry {
            peer,
            proto,
            port_lo,
            port_hi,
            verdict,
        } = entry;
        let peer_identity = match peer {
            PeerKey::Any => IDENTITY_ANY,
            PeerKey::Identity(id) => id,
            PeerKey::Cidr(p) => match out.cidr_identities.get(&p) {
                Some(id) => *id,
                None => continue,
            },
        };
        let value = match verdict {
            EntryVerdict::Deny => PolicyValue {
                action: POLICY_ACTION_DENY,
                ..Default::default()
            },
            EntryVerdict::Allow { match_type, l7 } => {
                let (l7_kind, l7_table) = match l7 {
                    L7Decision::None => (L7_KIND_NONE, 0),
                    L7Decision::AllowAll => (L7_KIND_VISIBILITY, 0),
                    L7Decision::Conflict => (L7_KIND_CONFLICT, 0),
                    L7Decision::Http(rules) => {
                        let key = format!("{rules:?}");
                        let index = match http_index.get(&key) {
                            Some(i) => *i,
                            None => {
                                let compiled = compile_http_rules(&rules)?;
                                let i = out.http_tables.len() as u32;
                                out.http_tables.push(compiled.table);
                                http_index.insert(key, i);
                                i
                            }
                        };
                        (L7_KIND_HTTP, index)
                    }
                    L7Decision::Dns(rules) => {
                        let mut text: Vec<String> =
                            rules.iter().map(|r| format!("{r:?}")).collect();
                        text.sort();
                        let index = match dns_index.get(&text) {
                            Some(i) => *i,
                            None => {
                                let table = compile_dns_rules(&rules)?;
                                let i = out.dns_tables.len() as u32;
                                out.dns_tables.push(table);
                                dns_index.insert(text, i);
                                i
                            }
                        };
                        (L7_KIND_DNS, index)
                    }
                };
                PolicyValue {
                    action: POLICY_ACTION_ALLOW,
                    match_type: match_type_code(match_type),
                    l7_kind,
                    _pad: 0,
                    l7_table,
                    rule_ref: 0,
                }
            }
        };
        for (port, bits) in port_prefixes(port_lo, port_hi) {
            out.policy.push(PolicyRecord {
                prefix_len: POLICY_KEY_FIXED_BITS + u32::from(bits),
                key: policy_key(
                    input.endpoint_id,
                    input.dir_code,
                    proto,
                    peer_identity,
                    port,
                ),
                value,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::{path::Path, sync::Arc};

    use holonet_policy::{
        diag::SourceFile, endpoints::parse_endpoints, parse::parse_policies, resolve::resolve,
    };

    use super::*;

    #[test]
    fn port_ranges_split_into_exact_aligned_blocks() {
        assert_eq!(port_prefixes(80, 80), [(80, 16)]);
        assert_eq!(port_prefixes(0, 65535), [(0, 0)]);
        assert_eq!(port_prefixes(8080, 8083), [(8080, 14)]);
        assert_eq!(port_prefixes(80, 444).len(), 9);
        assert_eq!(port_prefixes(65535, 65535), [(65535, 16)]);
    }

    proptest::proptest! {
        #[test]
        fn port_blocks_cover_the_range_exactly(a in 0u16.., b in 0u16..) {
            let (lo, hi) = (a.min(b), a.max(b));
            let blocks = port_prefixes(lo, hi);
            let mut covered = 0u32;
            let mut next = u32::from(lo);
            for (start, bits) in blocks {
                let size = 1u32 << (16 - u32::from(bits));
                proptest::prop_assert_eq!(u32::from(start), next, "blocks are contiguous");
                proptest::prop_assert_eq!(u32::from(start) % size, 0, "blocks are aligned");
                next += size;
                covered += size;
            }
            proptest::prop_assert_eq!(covered, u32::from(hi) - u32::from(lo) + 1);
        }
    }

    fn seed() -> CompiledDatapath {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let read = |p: &Path| {
            SourceFile::new(
                p.display().to_string(),
                std::fs::read_to_string(p).expect("policy file"),
            )
        };
        let mut files = Vec::new();
        for name in [
            "00-denyall-coruscanthealth.yaml",
            "10-l7-visibility.yaml",
            "20-l7-visibility-payer.yaml",
        ] {
            files.push(read(&root.join("galactic-fhir").join(name)));
        }
        let parsed = parse_policies(&files);
        assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        let cluster =
            parse_endpoints(&read(&root.join("endpoints/galactic-fhir.yaml"))).expect("endpoints");
        let resolved = resolve(&parsed.policies, Arc::new(cluster));
        let compiled = compile(&resolved, "kind-worker3").expect("compiles");
        assert!(
            compiled.loosened.is_empty(),
            "the seed allows every DNS name: {:?}",
            compiled.loosened
        );
        compiled
    }

    #[test]
    fn dns_rules_naming_names_become_kernel_tables() {
        let eps = "cluster: default\nendpoints:\n  - {name: a, namespace: ns, labels: {app: a}, ip: 10.0.0.1, node: n}\n  - {name: dns, namespace: kube-system, labels: {k8s-app: kube-dns}, ip: 10.0.0.2, node: n}\n";
        let policy = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p, namespace: ns}\nspec:\n  endpointSelector: {matchLabels: {app: a}}\n  egress:\n  - toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system}}]\n    toPorts:\n    - ports: [{port: '53', protocol: UDP}]\n      rules:\n        dns: [{matchName: coruscanthealth.galactic-fhir.svc.cluster.local}]\n";
        let cluster = parse_endpoints(&SourceFile::new("eps.yaml", eps)).expect("endpoints");
        let parsed = parse_policies(&[SourceFile::new("p.yaml", policy)]);
        assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        let c = compile(&resolve(&parsed.policies, Arc::new(cluster)), "n").expect("compiles");
        assert!(c.loosened.is_empty(), "{:?}", c.loosened);
        assert_eq!(c.dns_tables.len(), 1);
        let table = &c.dns_tables[0];
        assert_eq!(
            holonet_policy::l7::walk_dns(table, "coruscanthealth.galactic-fhir.svc.cluster.local."),
            Some(0)
        );
        assert_eq!(
            holonet_policy::l7::walk_dns(table, "evil.example.com."),
            None
        );
    }

    #[test]
    fn the_seed_scenario_compiles_into_the_expected_records() {
        let c = seed();
        // kind-worker3 runs the payer and two droids.
        let payer = c
            .endpoints
            .iter()
            .find(|e| e.pod == "galactic-fhir/payer")
            .expect("payer local");
        assert_eq!(
            payer.value.flags & ENDPOINT_FLAG_ENFORCE_EGRESS,
            ENDPOINT_FLAG_ENFORCE_EGRESS,
            "deny-all makes the payer's egress default-deny"
        );
        assert!(
            c.endpoints
                .iter()
                .all(|e| e.pod != "galactic-fhir/coruscanthealth"),
            "not on this node"
        );
        // The payer may reach the FHIR server on 52773/TCP with HTTP rules.
        let server_ip: IpAddr = "10.244.1.10".parse().unwrap();
        let server_identity = c
            .ipcache
            .iter()
            .find(|r| r.addr == ipcache_host(server_ip).0)
            .map(|r| r.value.identity)
            .expect("server in the ipcache");
        let key = policy_key(
            payer.value.endpoint_id,
            direction::EGRESS,
            6,
            server_identity,
            52773,
        );
        let hit = c
            .policy
            .iter()
            .find(|r| r.key == key && r.prefix_len == 96)
            .expect("an exact entry for the FHIR port");
        assert_eq!(hit.value.action, POLICY_ACTION_ALLOW);
        assert_eq!(hit.value.l7_kind, L7_KIND_HTTP);
        let table = &c.http_tables[hit.value.l7_table as usize];
        assert_ne!(
            table.walk(b"GET /intersystems/fhir/r5/Patient/DarthVader"),
            0
        );
        assert_eq!(table.walk(b"GET /intersystems/fhir/r5/Patient/Anakin"), 0);
        // DNS to kube-dns on 53/UDP is allowed with DNS rules.
        let dns_ip: IpAddr = "10.244.0.2".parse().unwrap();
        let dns_identity = c
            .ipcache
            .iter()
            .find(|r| r.addr == ipcache_host(dns_ip).0)
            .map(|r| r.value.identity)
            .expect("kube-dns in the ipcache");
        let dns_key = policy_key(
            payer.value.endpoint_id,
            direction::EGRESS,
            17,
            dns_identity,
            53,
        );
        let dns = c
            .policy
            .iter()
            .find(|r| r.key == dns_key)
            .expect("a DNS entry");
        assert_eq!(
            (dns.value.action, dns.value.l7_kind),
            (POLICY_ACTION_ALLOW, L7_KIND_DNS)
        );
        // Nothing allows the payer to reach the world on 443.
        let world = policy_key(payer.value.endpoint_id, direction::EGRESS, 6, 2, 443);
        assert!(
            !c.policy
                .iter()
                .any(|r| r.key == world && r.value.action == POLICY_ACTION_ALLOW)
        );
    }
}
