//! Policy files and the endpoints file → the compiled datapath of one node.
//!
//! This is the agent's configuration step, shared by `holonet agent` and the
//! demo: read and validate every policy, read the endpoints, resolve, and
//! compile the node's maps. A configuration with a rejected policy is not
//! applied at all: enforcing the rest would silently change what the
//! operator asked for, so the last good configuration stays in force.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    sync::Arc,
};

use holonet_policy::{
    diag::SourceFile,
    endpoints::{Cluster, parse_endpoints},
    files::read_sources,
    parse::parse_policies,
    resolve::resolve,
};

use super::compile::{CompileError, CompiledDatapath, compile};

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{0}")]
    Read(String),
    /// The endpoints file is invalid.
    #[error("endpoints file {path} is invalid:\n{errors}")]
    Endpoints {
        /// The file.
        path: String,
        /// Every problem, with line and column.
        errors: String,
    },
    /// Some policy objects were rejected.
    #[error("{count} policy object(s) rejected:\n{errors}")]
    Rejected {
        /// How many.
        count: usize,
        /// Every problem, with file, line, column and field.
        errors: String,
    },
    /// The accepted policies cannot be compiled for the kernel.
    #[error(transparent)]
    Compile(#[from] CompileError),
}

/// A validated, compiled configuration.
#[derive(Debug)]
pub struct Config {
    /// The maps of this node.
    pub compiled: CompiledDatapath,
    /// The cluster it was resolved against.
    pub cluster: Arc<Cluster>,
    /// The resolved policies (to name the policy behind a verdict).
    pub resolved: Arc<holonet_policy::resolve::Resolved>,
    /// How many policy objects are in force.
    pub policies: usize,
    /// Warnings on accepted policies (e.g. rules the kernel cannot check).
    pub warnings: Vec<String>,
}

/// Reads, validates, resolves and compiles. An empty `policy_paths` means
/// no policy: every endpoint allows everything.
pub fn load(policy_paths: &[PathBuf], endpoints: &Path, node: &str) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(endpoints).map_err(|e| {
        ConfigError::Read(format!(
            "reading endpoints file {}: {e}",
            endpoints.display()
        ))
    })?;
    let shown = endpoints.display().to_string();
    let cluster = parse_endpoints(&SourceFile::new(shown.clone(), text)).map_err(|e| {
        ConfigError::Endpoints {
            path: shown,
            errors: e.to_string(),
        }
    })?;
    let sources = if policy_paths.is_empty() {
        Vec::new()
    } else {
        read_sources(policy_paths).map_err(|e| ConfigError::Read(e.to_string()))?
    };
    let parsed = parse_policies(&sources);
    if !parsed.rejected.is_empty() {
        return Err(ConfigError::Rejected {
            count: parsed.rejected.len(),
            errors: parsed
                .errors()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        });
    }
    let cluster = Arc::new(cluster);
    let resolved = resolve(&parsed.policies, Arc::clone(&cluster));
    let compiled = compile(&resolved, node)?;
    Ok(Config {
        cluster,
        resolved: Arc::new(resolved),
        policies: parsed.policies.len(),
        warnings: parsed
            .warnings
            .iter()
            .map(ToString::to_string)
            .chain(compiled.loosened.iter().cloned())
            .collect(),
        compiled,
    })
}

/// The interface the host routes `ip` through, from `/proc/net/route`
/// (IPv4, longest prefix); how the agent finds a pod's host-side veth.
pub fn route_interface(ip: IpAddr) -> Option<String> {
    let IpAddr::V4(ip) = ip else {
        return None;
    };
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    route_interface_in(&table, ip)
}

/// [`route_interface`] over a given routing table text.
pub fn route_interface_in(table: &str, ip: Ipv4Addr) -> Option<String> {
    let target = u32::from(ip);
    let mut best: Option<(u32, String)> = None;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [iface, dest, _gw, _flags, _refcnt, _use, _metric, mask, ..] = fields.as_slice() else {
            continue;
        };
        // /proc/net/route prints each address as the hex value of its four
        // bytes read as a native-endian u32.
        let parse = |h: &str| {
            u32::from_str_radix(h, 16)
                .ok()
                .map(|v| u32::from_be_bytes(v.to_ne_bytes()))
        };
        let (Some(dest), Some(mask)) = (parse(dest), parse(mask)) else {
            continue;
        };
        if target & mask == dest
            && best
                .as_ref()
                .is_none_or(|(m, _)| mask.count_ones() > m.count_ones())
        {
            best = Some((mask, (*iface).to_string()));
        }
    }
    best.map(|(_, iface)| iface)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
hveth1\t0A0CFA0A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n";

    #[test]
    fn host_routes_name_the_pod_interface() {
        // 10.250.12.10 is 0A0CFA0A in /proc's little-endian hex.
        assert_eq!(
            route_interface_in(TABLE, Ipv4Addr::new(10, 250, 12, 10)).as_deref(),
            Some("hveth1")
        );
        assert_eq!(
            route_interface_in(TABLE, Ipv4Addr::new(192, 0, 2, 7)).as_deref(),
            Some("eth0")
        );
        assert_eq!(
            route_interface_in(TABLE, Ipv4Addr::new(8, 8, 8, 8)).as_deref(),
            Some("eth0")
        );
        assert_eq!(route_interface_in("", Ipv4Addr::new(8, 8, 8, 8)), None);
    }

    #[test]
    fn a_rejected_policy_rejects_the_whole_configuration() {
        let dir = std::env::temp_dir().join(format!("holonet-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let eps = dir.join("eps.yaml");
        std::fs::write(&eps, "cluster: default\nendpoints:\n  - {name: a, namespace: ns, labels: {app: a}, ip: 10.0.0.1, node: n}\n").unwrap();
        let bad = dir.join("bad.yaml");
        std::fs::write(&bad, "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x, namespace: ns}\nspec:\n  endpointSelector: {}\n  ingress:\n  - fromEndpoints: [{matchExpressions: [{key: a, operator: in, values: [b]}]}]\n").unwrap();
        let err = load(&[bad], &eps, "n").unwrap_err().to_string();
        assert!(err.contains("rejected"), "{err}");
        assert!(err.contains("bad.yaml:"), "the file is named: {err}");
        let ok = load(&[], &eps, "n").expect("no policy is a valid configuration");
        assert_eq!(ok.policies, 0);
        assert_eq!(ok.compiled.endpoints.len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
