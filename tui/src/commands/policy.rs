//! `holonet policy validate|trace`: thin glue over `holonet-policy`
//! (argument parsing, printing, exit codes). All semantics live in the crate.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use holonet_policy::diag::SourceFile;
use holonet_policy::http::HttpRequest;
use holonet_policy::model::Protocol;
use holonet_policy::parse::{ParsedPolicies, parse_policies};
use holonet_policy::trace::{TraceL7, TracePeer, TraceQuery};
use holonet_policy::{endpoints, files, resolve, trace};

/// Exit code when a policy object is rejected.
const EXIT_REJECTED: u8 = 2;

/// Policy subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum PolicyCommand {
    /// Check CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy files.
    #[command(
        long_about = "Check CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy YAML the way Cilium does \
(apiVersion cilium.io/v2; `spec` and/or `specs`; multi-document files; directories are read recursively).\n\n\
Every problem is printed as FILE:LINE:COLUMN: error: OBJECT: FIELD.PATH: what is wrong. A field holonet does not \
enforce is an error (ignoring part of an allow rule would widen it). One bad object never hides the others.\n\n\
Exit status: 0 when every object is accepted (warnings allowed), 2 when any object is rejected.\n\n\
Examples:\n  \
holonet policy validate policies/galactic-fhir\n  \
holonet policy validate policies/star-wars/l7/sw_l3_l4_l7_policy.yaml -o json"
    )]
    Validate(ValidateArgs),
    /// Explain whether a flow is allowed, and by which rule.
    #[command(
        long_about = "Trace one flow through the policies: the source's egress, then the destination's \
ingress, at L3/L4 and, when a request is described, at L7 (HTTP or DNS), with Cilium's semantics \
(deny before allow, union of allows, default-deny per direction, L7 wildcarding, host exception).\n\n\
PEER is an endpoint `name` or `namespace/name` from the endpoints file, `world:IP`, `host` (the node of the \
other end) or `remote-node`. Ports are the backend's (after Service translation).\n\n\
-o json prints one object: {\"verdict\": \"FORWARDED\"|\"DROPPED\", \"drop_reason\": \"POLICY_DENIED\"|\"POLICY_DENY\"|null, \
\"dropped_at\": \"egress\"|\"ingress\"|null, \"match_type\": ..., \"l7\": null|{\"verdict\", \"http_status\"}, \
\"explanation\": [...], \"egress\": {...}|null, \"ingress\": {...}|null}. An L7 deny is verdict DROPPED with \
drop_reason null and l7.http_status 403 (null for DNS).\n\n\
Exit status: 0 when a trace was computed (whatever the verdict), 2 when a policy is rejected (errors on stderr), \
1 for other errors (bad arguments, unknown endpoint, unreadable file).\n\n\
Examples (S=policies/endpoints/star-wars.yaml, G=policies/endpoints/galactic-fhir.yaml):\n  \
holonet policy trace --policies policies/star-wars/l7 --endpoints $S \\\n    \
--from tiefighter --to deathstar --proto tcp --dport 80 \\\n    \
--http-method PUT --http-path /v1/exhaust-port\n  \
holonet policy trace --policies policies/galactic-fhir --endpoints $G \\\n    \
--from galactic-fhir/payer --to coruscanthealth --proto tcp --dport 52773 \\\n    \
--http-method GET --http-path /intersystems/fhir/r5/Patient/DarthVader -o json\n  \
holonet policy trace --policies policies/galactic-fhir --endpoints $G \\\n    \
--from payer --to kube-system/kube-dns --proto udp --dport 53 \\\n    \
--dns-query coruscanthealth.galactic-fhir.svc.cluster.local"
    )]
    Trace(TraceArgs),
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    /// Plain words for people.
    Text,
    /// One JSON object for scripts.
    Json,
}

/// Arguments of `holonet policy validate`.
#[derive(Debug, clap::Args)]
pub(crate) struct ValidateArgs {
    /// Policy files or directories.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: Output,
}

/// Transport protocol of a traced flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// Arguments of `holonet policy trace`.
#[derive(Debug, clap::Args)]
pub(crate) struct TraceArgs {
    /// Policy files or directories.
    #[arg(long, required = true, num_args = 1.., value_name = "PATH")]
    policies: Vec<PathBuf>,
    /// The endpoints file (name, namespace, labels, ip, node of every pod).
    #[arg(long, value_name = "FILE")]
    endpoints: PathBuf,
    /// Source: `name`, `namespace/name`, `world:IP`, `host` or `remote-node`.
    #[arg(long, value_name = "PEER")]
    from: String,
    /// Destination: `name`, `namespace/name`, `world:IP`, `host` or `remote-node`.
    #[arg(long, value_name = "PEER")]
    to: String,
    /// Transport protocol.
    #[arg(long, value_enum)]
    proto: Proto,
    /// Destination port.
    #[arg(long, value_name = "N")]
    dport: u16,
    /// HTTP method of the request (with --http-path).
    #[arg(
        long,
        value_name = "M",
        requires = "http_path",
        conflicts_with = "dns_query"
    )]
    http_method: Option<String>,
    /// HTTP request-target, query string included (with --http-method).
    #[arg(long, value_name = "P", requires = "http_method")]
    http_path: Option<String>,
    /// HTTP Host / :authority (include `:port` if the client sends it).
    #[arg(long, value_name = "H", requires = "http_method")]
    http_host: Option<String>,
    /// HTTP header `Name: value` (repeatable).
    #[arg(long, value_name = "'Name: value'", requires = "http_method")]
    http_header: Vec<String>,
    /// DNS query name.
    #[arg(long, value_name = "NAME")]
    dns_query: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: Output,
}

/// Runs a `holonet policy` subcommand.
pub(crate) fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Validate(a) => validate(a),
        PolicyCommand::Trace(a) => run_trace(a),
    }
}

fn load(paths: &[PathBuf]) -> anyhow::Result<ParsedPolicies> {
    let sources = files::read_sources(paths)?;
    Ok(parse_policies(&sources))
}

fn validate(a: ValidateArgs) -> anyhow::Result<ExitCode> {
    let parsed = load(&a.paths)?;
    match a.output {
        Output::Json => {
            let v = serde_json::json!({
                "accepted": parsed.policies.iter().map(|p| p.display_name()).collect::<Vec<_>>(),
                "rejected": parsed.rejected.iter().map(|r| serde_json::json!({
                    "object": r.object,
                    "errors": r.errors,
                })).collect::<Vec<_>>(),
                "warnings": parsed.warnings,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Output::Text => {
            for d in parsed.errors().chain(&parsed.warnings) {
                println!("{d}");
            }
            for p in &parsed.policies {
                println!("ok: {} ({})", p.display_name(), p.origin);
            }
            println!(
                "{} object(s) accepted, {} rejected, {} warning(s)",
                parsed.policies.len(),
                parsed.rejected.len(),
                parsed.warnings.len()
            );
        }
    }
    Ok(if parsed.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_REJECTED)
    })
}

fn run_trace(a: TraceArgs) -> anyhow::Result<ExitCode> {
    let parsed = load(&a.policies)?;
    if !parsed.rejected.is_empty() {
        for d in parsed.errors() {
            eprintln!("{d}");
        }
        eprintln!(
            "holonet: {} policy object(s) rejected; no trace computed",
            parsed.rejected.len()
        );
        return Ok(ExitCode::from(EXIT_REJECTED));
    }
    let name = a.endpoints.display().to_string();
    let text = std::fs::read_to_string(&a.endpoints).with_context(|| format!("reading {name}"))?;
    let cluster = Arc::new(endpoints::parse_endpoints(&SourceFile::new(name, text))?);
    let from = TracePeer::parse(&cluster, &a.from).map_err(|e| anyhow::anyhow!("--from: {e}"))?;
    let to = TracePeer::parse(&cluster, &a.to).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    let l7 = match (&a.http_method, &a.http_path, &a.dns_query) {
        (Some(m), Some(p), _) => {
            let mut headers = Vec::new();
            for h in &a.http_header {
                let Some((n, v)) = h.split_once(':') else {
                    bail!("--http-header {h:?}: expected 'Name: value'")
                };
                headers.push((n.trim().to_string(), v.trim().to_string()));
            }
            TraceL7::Http(HttpRequest {
                method: m.clone(),
                path: p.clone(),
                host: a.http_host.clone(),
                headers,
            })
        }
        (_, _, Some(q)) => TraceL7::Dns(q.clone()),
        _ => TraceL7::None,
    };
    let proto = match a.proto {
        Proto::Tcp => Protocol::Tcp,
        Proto::Udp => Protocol::Udp,
    };
    let resolved = resolve::resolve(&parsed.policies, cluster);
    let result = trace::trace(
        &resolved,
        &TraceQuery {
            from,
            to,
            proto,
            dport: a.dport,
            l7,
        },
    );
    match a.output {
        Output::Json => println!("{}", serde_json::to_string(&result)?),
        Output::Text => print!("{}", result.to_text()),
    }
    Ok(ExitCode::SUCCESS)
}
