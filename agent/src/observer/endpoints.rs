//! Who an IP address is: the endpoint directory flows are enriched from.
//!
//! The agent reads the endpoints file of the policy engine (name, namespace,
//! labels, IP, node of each pod) and answers, for any address, the Hubble
//! `Endpoint` to put on a flow: pod name, namespace, security identity and
//! identity labels as `source:key=value`. Addresses that belong to no
//! endpoint are `reserved:world` (identity 2), as in Cilium.

use std::{
    net::IpAddr,
    path::Path,
    sync::Arc,
    sync::atomic::{AtomicU64, Ordering},
    time::SystemTime,
};

use holonet_policy::{
    diag::SourceFile,
    endpoints::{Cluster, IDENTITY_WORLD, parse_endpoints},
};
use holonet_proto::flow::Endpoint;

use crate::hashing::FastMap;

/// Endpoints by address, shared by the flows that name them.
#[derive(Clone, Debug, Default)]
pub struct EndpointDirectory {
    by_ip: FastMap<IpAddr, Arc<Endpoint>>,
    world: Arc<Endpoint>,
    /// Tells directories apart (see [`Self::generation`]).
    generation: u64,
}

/// Equal when they name the same endpoints, whatever their generations.
impl PartialEq for EndpointDirectory {
    fn eq(&self, other: &Self) -> bool {
        self.by_ip == other.by_ip && self.world == other.world
    }
}

/// Generations of directories built so far.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

impl EndpointDirectory {
    /// An empty directory: every address is `reserved:world`.
    pub fn empty() -> Self {
        Self {
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
            by_ip: FastMap::default(),
            world: Arc::new(Endpoint {
                identity: IDENTITY_WORLD,
                labels: vec!["reserved:world".to_string()],
                ..Default::default()
            }),
        }
    }

    /// Builds the directory of `cluster` as seen from node `node_name`:
    /// endpoints on this node get their (local) endpoint ID, as in Hubble.
    pub fn from_cluster(cluster: &Cluster, node_name: &str) -> Self {
        let mut dir = Self::empty();
        for (index, ep) in cluster.endpoints.iter().enumerate() {
            let labels = cluster
                .identity(ep.identity)
                .map(|id| id.labels.iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            let local = ep.node == node_name;
            let endpoint = Arc::new(Endpoint {
                id: if local {
                    u32::try_from(index + 1).unwrap_or(0)
                } else {
                    0
                },
                identity: ep.identity,
                cluster_name: cluster.name.clone(),
                namespace: ep.namespace.clone(),
                labels,
                pod_name: ep.name.clone(),
                workloads: Vec::new(),
            });
            for ip in ep.ips() {
                dir.by_ip.insert(ip, Arc::clone(&endpoint));
            }
        }
        dir
    }

    /// Different for every directory built (clones aside), so what was
    /// looked up in one can be cached until the agent's directory changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The endpoint for `ip` (world when unknown).
    pub fn lookup(&self, ip: IpAddr) -> &Arc<Endpoint> {
        self.by_ip.get(&ip).unwrap_or(&self.world)
    }

    /// Number of known endpoints.
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    /// Whether no endpoint is known.
    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }
}

/// Reading or parsing the endpoints file failed.
#[derive(Debug, thiserror::Error)]
pub enum EndpointsLoadError {
    /// The file could not be read.
    #[error("reading endpoints file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid endpoints file.
    #[error("endpoints file {path} is invalid:\n{errors}")]
    Invalid {
        /// The file.
        path: String,
        /// Every problem, with line and column.
        errors: String,
    },
}

/// Loads and parses an endpoints file.
pub fn load(path: &Path, node_name: &str) -> Result<EndpointDirectory, EndpointsLoadError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| EndpointsLoadError::Read {
        path: shown.clone(),
        source,
    })?;
    let cluster = parse_endpoints(&SourceFile::new(shown.clone(), text)).map_err(|e| {
        EndpointsLoadError::Invalid {
            path: shown,
            errors: e.to_string(),
        }
    })?;
    Ok(EndpointDirectory::from_cluster(&cluster, node_name))
}

/// Keeps the directory current: polls the file's modification time and
/// reloads it when it changes. A file that fails to load keeps the last good
/// directory in place, and the failure is reported loudly (once per change).
pub async fn watch(
    path: std::path::PathBuf,
    node_name: String,
    publish: tokio::sync::watch::Sender<Arc<EndpointDirectory>>,
    interval: std::time::Duration,
) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut last: Option<SystemTime> = modified(&path);
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let now = modified(&path);
        if now == last {
            continue;
        }
        last = now;
        match load(&path, &node_name) {
            Ok(dir) => {
                log::info!(
                    "endpoints reloaded from {}: {} endpoints",
                    path.display(),
                    dir.len()
                );
                if publish.send(Arc::new(dir)).is_err() {
                    return;
                }
            }
            Err(err) => {
                log::error!("{err}\nkeeping the previous endpoints until the file is fixed");
                eprintln!(
                    "holonet agent: {err}\nholonet agent: keeping the previous endpoints until the file is fixed"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "cluster: default\nendpoints:\n  - name: payer\n    namespace: galactic-fhir\n    labels: {org: payer}\n    ip: 10.244.3.30\n    node: node-1\n  - name: vader\n    namespace: galactic-fhir\n    labels: {org: empire}\n    ip: 10.244.3.31\n    node: node-2\n";

    fn dir() -> EndpointDirectory {
        let cluster = parse_endpoints(&SourceFile::new("eps.yaml", FILE)).expect("valid");
        EndpointDirectory::from_cluster(&cluster, "node-1")
    }

    #[test]
    fn known_addresses_become_pods_with_identity_labels() {
        let d = dir();
        let ep = d.lookup("10.244.3.30".parse().unwrap());
        assert_eq!(ep.pod_name, "payer");
        assert_eq!(ep.namespace, "galactic-fhir");
        assert_eq!(ep.cluster_name, "default");
        assert_eq!(ep.id, 1, "local endpoints carry an endpoint ID");
        assert!(ep.identity > 255, "{}", ep.identity);
        for label in [
            "k8s:org=payer",
            "k8s:io.kubernetes.pod.namespace=galactic-fhir",
            "k8s:io.cilium.k8s.policy.cluster=default",
        ] {
            assert!(
                ep.labels.iter().any(|l| l == label),
                "{label} missing: {:?}",
                ep.labels
            );
        }
        let remote = d.lookup("10.244.3.31".parse().unwrap());
        assert_eq!(remote.id, 0, "endpoints on other nodes have no local ID");
        assert_ne!(remote.identity, ep.identity);
    }

    #[test]
    fn unknown_addresses_are_world() {
        let d = dir();
        let ep = d.lookup("192.0.2.9".parse().unwrap());
        assert_eq!(ep.identity, 2);
        assert_eq!(ep.labels, ["reserved:world"]);
        assert_eq!(ep.pod_name, "");
    }

    #[test]
    fn a_bad_file_names_the_problem() {
        let path =
            std::env::temp_dir().join(format!("holonet-eps-bad-{}.yaml", std::process::id()));
        std::fs::write(
            &path,
            "cluster: default\nendpoints:\n  - name: x\n    ip: not-an-ip\n",
        )
        .unwrap();
        let err = load(&path, "n").unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(err.contains("invalid"), "{err}");
        assert!(err.contains(":4:"), "line number expected: {err}");
    }
}
