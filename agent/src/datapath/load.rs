//! Writing compiled policy into the probe's enforcement maps.

use std::collections::HashSet;

use aya::{
    Ebpf,
    maps::{
        Array, HashMap, MapError,
        lpm_trie::{Key, LpmTrie},
    },
};
use probe_common::{
    l7::L7DfaTable,
    names,
    policy::{
        EndpointValue, IPCACHE_ADDR_LEN, IpcacheValue, L7_DNS_TABLES, L7_HTTP_TABLES,
        POLICY_KEY_LEN, PolicyValue,
    },
};

use super::compile::{CompiledDatapath, EndpointRecord};

/// A map could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    /// The map is missing from the probe object or has another type.
    #[error("map `{map}` is missing from the probe object or has an unexpected type: {source}")]
    Open {
        /// Map name.
        map: &'static str,
        /// Why.
        #[source]
        source: Box<MapError>,
    },
    /// A write failed (e.g. the map is full).
    #[error("writing map `{map}`: {source}")]
    Write {
        /// Map name.
        map: &'static str,
        /// Why.
        #[source]
        source: Box<MapError>,
    },
    /// The probe object has no such map at all.
    #[error("map `{map}` is missing from the probe object")]
    Missing {
        /// Map name.
        map: &'static str,
    },
    /// More distinct HTTP rule sets than the kernel's table array holds.
    #[error(
        "the policies need {needed} distinct HTTP rule sets on this node; the datapath holds {L7_HTTP_TABLES}"
    )]
    TooManyHttpTables {
        /// How many were needed.
        needed: usize,
    },
    /// More distinct DNS rule sets than the kernel's table array holds.
    #[error(
        "the policies need {needed} distinct DNS rule sets on this node; the datapath holds {L7_DNS_TABLES}"
    )]
    TooManyDnsTables {
        /// How many were needed.
        needed: usize,
    },
}

fn open_err(map: &'static str) -> impl Fn(MapError) -> PolicyLoadError {
    move |e| PolicyLoadError::Open {
        map,
        source: Box::new(e),
    }
}

fn write_err(map: &'static str) -> impl Fn(MapError) -> PolicyLoadError {
    move |e| PolicyLoadError::Write {
        map,
        source: Box::new(e),
    }
}

/// Writes every record, then removes entries the new policy no longer has.
/// Returns the local endpoints that have no interface (not enforced).
pub fn apply(
    ebpf: &mut Ebpf,
    compiled: &CompiledDatapath,
    ifindex_of: impl Fn(&EndpointRecord) -> Option<u32>,
) -> Result<Vec<String>, PolicyLoadError> {
    if compiled.http_tables.len() > L7_HTTP_TABLES as usize {
        return Err(PolicyLoadError::TooManyHttpTables {
            needed: compiled.http_tables.len(),
        });
    }
    if compiled.dns_tables.len() > L7_DNS_TABLES as usize {
        return Err(PolicyLoadError::TooManyDnsTables {
            needed: compiled.dns_tables.len(),
        });
    }
    {
        // Tables first: a policy entry must never point at a table that is
        // not there yet.
        let map = names::L7_HTTP_MAP;
        let mut tables: Array<_, L7DfaTable> =
            Array::try_from(ebpf.map_mut(map).ok_or(PolicyLoadError::Missing { map })?)
                .map_err(open_err(map))?;
        for (index, table) in compiled.http_tables.iter().enumerate() {
            tables
                .set(index as u32, **table, 0)
                .map_err(write_err(map))?;
        }
        let map = names::L7_DNS_MAP;
        let mut tables: Array<_, L7DfaTable> =
            Array::try_from(ebpf.map_mut(map).ok_or(PolicyLoadError::Missing { map })?)
                .map_err(open_err(map))?;
        for (index, table) in compiled.dns_tables.iter().enumerate() {
            tables
                .set(index as u32, **table, 0)
                .map_err(write_err(map))?;
        }
    }
    {
        let map = names::IPCACHE_MAP;
        let mut ipcache: LpmTrie<_, [u8; IPCACHE_ADDR_LEN], IpcacheValue> =
            LpmTrie::try_from(ebpf.map_mut(map).ok_or(PolicyLoadError::Missing { map })?)
                .map_err(open_err(map))?;
        let mut wanted = HashSet::new();
        for r in &compiled.ipcache {
            ipcache
                .insert(&Key::new(r.prefix_len, r.addr), r.value, 0)
                .map_err(write_err(map))?;
            wanted.insert((r.prefix_len, r.addr));
        }
        let stale: Vec<Key<[u8; IPCACHE_ADDR_LEN]>> = ipcache
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !wanted.contains(&(k.prefix_len(), k.data())))
            .collect();
        for k in stale {
            let _ = ipcache.remove(&k);
        }
    }
    {
        let map = names::POLICY_MAP;
        let mut policy: LpmTrie<_, [u8; POLICY_KEY_LEN], PolicyValue> =
            LpmTrie::try_from(ebpf.map_mut(map).ok_or(PolicyLoadError::Missing { map })?)
                .map_err(open_err(map))?;
        let mut wanted = HashSet::new();
        for r in &compiled.policy {
            policy
                .insert(&Key::new(r.prefix_len, r.key), r.value, 0)
                .map_err(write_err(map))?;
            wanted.insert((r.prefix_len, r.key));
        }
        let stale: Vec<Key<[u8; POLICY_KEY_LEN]>> = policy
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !wanted.contains(&(k.prefix_len(), k.data())))
            .collect();
        for k in stale {
            let _ = policy.remove(&k);
        }
    }
    let map = names::ENDPOINTS_MAP;
    let mut endpoints: HashMap<_, u32, EndpointValue> =
        HashMap::try_from(ebpf.map_mut(map).ok_or(PolicyLoadError::Missing { map })?)
            .map_err(open_err(map))?;
    let mut unattached = Vec::new();
    let mut wanted = HashSet::new();
    for ep in &compiled.endpoints {
        match ifindex_of(ep) {
            Some(ifindex) => {
                // A new revision makes the datapath re-check connections it
                // tracked under the old policy.
                let revision = endpoints
                    .get(&ifindex, 0)
                    .map_or(1, |old| old.policy_revision.wrapping_add(1).max(1));
                let value = EndpointValue {
                    policy_revision: revision,
                    ..ep.value
                };
                endpoints
                    .insert(ifindex, value, 0)
                    .map_err(write_err(map))?;
                wanted.insert(ifindex);
            }
            None => unattached.push(ep.pod.clone()),
        }
    }
    let stale: Vec<u32> = endpoints
        .keys()
        .filter_map(Result::ok)
        .filter(|k| !wanted.contains(k))
        .collect();
    for k in stale {
        let _ = endpoints.remove(&k);
    }
    Ok(unattached)
}
