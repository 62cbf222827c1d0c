//! Shared helpers for the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::Arc;

use holonet_policy::diag::SourceFile;
use holonet_policy::endpoints::parse_endpoints;
use holonet_policy::http::HttpRequest;
use holonet_policy::model::Protocol;
use holonet_policy::parse::parse_policies;
use holonet_policy::resolve::resolve;
use holonet_policy::trace::{TraceL7, TracePeer, TraceQuery, TraceResult, trace};

/// The repository's `policies/` directory.
pub fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

/// Reads files under `policies/`.
pub fn policy_sources(rel: &[&str]) -> Vec<SourceFile> {
    let paths: Vec<PathBuf> = rel.iter().map(|r| policies_dir().join(r)).collect();
    holonet_policy::files::read_sources(&paths).expect("read policies")
}

/// A request for a trace.
#[derive(Clone, Debug)]
pub enum Req {
    None,
    Http(&'static str, &'static str),
    HttpFull {
        method: &'static str,
        path: &'static str,
        host: Option<&'static str>,
        headers: &'static [(&'static str, &'static str)],
    },
    Dns(&'static str),
}

fn l7_of(req: &Req) -> TraceL7 {
    match req {
        Req::None => TraceL7::None,
        Req::Http(m, p) => TraceL7::Http(HttpRequest {
            method: (*m).into(),
            path: (*p).into(),
            host: None,
            headers: vec![],
        }),
        Req::HttpFull {
            method,
            path,
            host,
            headers,
        } => TraceL7::Http(HttpRequest {
            method: (*method).into(),
            path: (*path).into(),
            host: host.map(|h| h.to_string()),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }),
        Req::Dns(q) => TraceL7::Dns((*q).into()),
    }
}

/// Runs one trace over policy sources and an endpoints file.
pub fn run(
    sources: Vec<SourceFile>,
    endpoints: &str,
    from: &str,
    to: &str,
    proto: &str,
    port: u16,
    req: &Req,
) -> TraceResult {
    let parsed = parse_policies(&sources);
    let errs: Vec<String> = parsed.errors().map(|d| d.to_string()).collect();
    assert!(errs.is_empty(), "policies rejected: {errs:#?}");
    let cluster = Arc::new(
        parse_endpoints(&SourceFile::new("endpoints.yaml", endpoints)).expect("endpoints"),
    );
    let resolved = resolve(&parsed.policies, cluster.clone());
    let q = TraceQuery {
        from: TracePeer::parse(&cluster, from).expect("from"),
        to: TracePeer::parse(&cluster, to).expect("to"),
        proto: if proto == "udp" {
            Protocol::Udp
        } else {
            Protocol::Tcp
        },
        dport: port,
        l7: l7_of(req),
    };
    trace(&resolved, &q)
}

/// Compact rendering of the JSON fields the scripts rely on:
/// `FORWARDED <match_type|-> [l7=FORWARDED]`,
/// `DROPPED <drop_reason|-> <dropped_at> <match_type|-> [l7=DROPPED/<status|null>]`.
pub fn render(r: &TraceResult) -> String {
    let v = serde_json::to_value(r).unwrap();
    let s = |k: &str| {
        v[k].as_str()
            .map(str::to_string)
            .unwrap_or_else(|| "-".into())
    };
    let mut out = format!("{} ", s("verdict"));
    if s("verdict") == "DROPPED" {
        out += &format!("{} {} ", s("drop_reason"), s("dropped_at"));
    }
    out += &s("match_type");
    if !v["l7"].is_null() {
        let st = v["l7"]["http_status"]
            .as_u64()
            .map_or("null".into(), |x| x.to_string());
        out += &format!(" l7={}/{}", v["l7"]["verdict"].as_str().unwrap(), st);
    }
    out
}
