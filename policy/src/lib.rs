//! holonet's Cilium-compatible policy engine.
//!
//! Pure logic (no BPF, no network; [`files`] is the only module that reads
//! disk): parse and validate CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy
//! YAML ([`parse`]), give endpoints Cilium identities ([`endpoints`]),
//! resolve what every endpoint allows and denies ([`resolve`]), explain one
//! flow ([`trace`]) and compile HTTP rules into the kernel's DFA table ([`l7`]).
//!
//! Typical use:
//! ```
//! use std::sync::Arc;
//! use holonet_policy::{diag::SourceFile, endpoints, parse, resolve, trace};
//! let policy = SourceFile::new("p.yaml", "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec:\n  endpointSelector: {matchLabels: {app: db}}\n  ingress: [{fromEndpoints: [{matchLabels: {app: web}}]}]\n");
//! let eps = SourceFile::new("e.yaml", "endpoints:\n- {name: db, labels: {app: db}, ip: 10.0.0.1}\n- {name: web, labels: {app: web}, ip: 10.0.0.2}\n");
//! let parsed = parse::parse_policies(&[policy]);
//! assert!(parsed.rejected.is_empty());
//! let cluster = Arc::new(endpoints::parse_endpoints(&eps).unwrap());
//! let resolved = resolve::resolve(&parsed.policies, cluster.clone());
//! let q = trace::TraceQuery {
//!     from: trace::TracePeer::parse(&cluster, "web").unwrap(),
//!     to: trace::TracePeer::parse(&cluster, "db").unwrap(),
//!     proto: holonet_policy::model::Protocol::Tcp,
//!     dport: 5432,
//!     l7: trace::TraceL7::None,
//! };
//! assert_eq!(trace::trace(&resolved, &q).verdict, "FORWARDED");
//! ```

pub mod bits;
pub mod cidr;
pub mod diag;
pub mod dns;
pub mod endpoints;
pub mod files;
pub mod http;
pub mod l7;
pub mod labels;
pub mod model;
pub mod parse;
pub mod re2;
pub mod resolve;
pub mod selector;
pub mod trace;
pub mod yaml;
