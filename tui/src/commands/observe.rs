//! `holonet observe`: the headless twin of `hubble observe`.
//!
//! Flows come from an agent's Observer gRPC API (`--server`) or from a
//! recording (`--input-file`, one jsonpb `GetFlowsResponse` per line). The
//! filter flags mean what they mean in `hubble observe`; the pure logic
//! (flags → FlowFilters, the request, local replay, printers) lives in
//! `holonet-flows`, this module only wires it to files, sockets and stdout.

use std::{
    fs::File,
    io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write},
    process::ExitCode,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, anyhow, bail};
use clap::ArgAction;
use holonet_agent::{observer::mask::FieldMask as MaskFilter, relay::peers::status_reason};
use holonet_flows::{
    flags::{FilterArgs, FilterFlag, FilterToken, raw_filter_json},
    printer::{self, OutputFormat, PrintOptions, Printer},
    recording::{RecordingError, RecordingReader},
    replay::{self, Offer, Replay, Selection},
    timefmt::TimeFormat,
    timespec,
};
use holonet_proto::{
    flow::FlowFilter,
    observer::{
        GetFlowsRequest, GetFlowsResponse, get_flows_response::ResponseTypes,
        observer_client::ObserverClient,
    },
    pbjson_types::FieldMask,
    wkt::Timestamp,
};
use tonic::transport::ClientTlsConfig;

use super::tls::{ClientTlsArgs, connect_first, tls_hint};

/// Writes a line to stderr, ignoring failures (`eprintln!` would panic
/// when stderr is closed).
macro_rules! stderr_line {
    ($($arg:tt)*) => {{
        let _ = writeln!(io::stderr(), $($arg)*);
    }};
}

const EXAMPLES: &str = "\
Examples:
  holonet observe                                   # the last 20 flows from the local agent
  holonet observe -f --verdict DROPPED              # follow drops as they happen
  holonet observe --filter org=payer --verdict DROPPED
                                                    # drops where either side has label org=payer
  holonet observe --from-label app=payer --to-namespace bank --http-method GET
  holonet observe --not -n kube-system --last 100   # anything outside kube-system
  holonet observe --http-status 5+ -t l7 -o json    # HTTP server errors as jsonpb
  holonet observe --since 5m --protocol dns         # DNS flows of the last five minutes
  holonet observe -o jsonpb --all > flows.jsonl     # record everything the agent holds
  holonet observe --input-file flows.jsonl --pod default/ledger --first 10
  hubble observe -o jsonpb | holonet observe --input-file - --label org=payer

Filters: different flags must all match; repeating a flag matches any of its values.
Bidirectional flags (--label, --namespace, --pod, --ip, --port, --identity, --service,
--fqdn, --workload, --cluster) match the source OR the destination; --from-X and --to-X
pick one side. --not negates only the next flag; all negated flags together form the
exclusion (`--not A --not B` drops flows matching both A and B). --filter SELECTOR is a
Kubernetes label selector (`org=payer`, `org in (payer,empire)`, `!canary`, `k8s:app=x`)
that either side must match; several --filter flags must all hold.

Environment: NO_COLOR disables colours with --color auto.";

/// Arguments of `holonet observe` (the flags of `hubble observe`).
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Print flows from a holonet agent (or any Hubble Observer API) or from a recording, \
like `hubble observe`: same filter flags, same selectors, same output formats \
(`compact` is byte for byte what `hubble observe -o compact --color never` prints).",
    after_help = "Examples and how filters combine: holonet observe --help",
    after_long_help = EXAMPLES
)]
pub(crate) struct ObserveArgs {
    // ---- Selectors ----
    /// Print the last N flows (default 20 when no other selector is given).
    #[arg(long, value_name = "N", help_heading = "Selectors")]
    last: Option<u64>,
    /// Print the first N flows.
    #[arg(long, value_name = "N", help_heading = "Selectors")]
    first: Option<u64>,
    /// Print all flows the source holds.
    #[arg(long, help_heading = "Selectors")]
    all: bool,
    /// Keep printing new flows as they arrive (agent only).
    #[arg(short = 'f', long, help_heading = "Selectors")]
    follow: bool,
    /// Only flows at or after TIME: a duration back from now (5m, 1h30m) or RFC 3339.
    #[arg(long, value_name = "TIME", help_heading = "Selectors")]
    since: Option<String>,
    /// Only flows at or before TIME: a duration back from now or RFC 3339.
    #[arg(long, value_name = "TIME", help_heading = "Selectors")]
    until: Option<String>,

    // ---- Output ----
    /// Output format.
    #[arg(short = 'o', long, value_name = "FORMAT", default_value = "compact",
          value_parser = ["compact", "dict", "json", "jsonpb", "table"], help_heading = "Output")]
    output: String,
    /// Print the node name of each flow.
    #[arg(long, help_heading = "Output")]
    print_node_name: bool,
    /// Colour output (auto: when stdout is a terminal and NO_COLOR is unset).
    #[arg(long, value_name = "WHEN", default_value = "auto",
          value_parser = ["auto", "always", "never"], help_heading = "Output")]
    color: String,
    /// Show pod, service and DNS names instead of IP addresses.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set, help_heading = "Output")]
    ip_translation: bool,
    /// Display all information in numeric form (IP addresses, not names).
    #[arg(long, help_heading = "Output")]
    numeric: bool,
    /// How times are printed: StampMilli (default), YearMonthDay,
    /// YearMonthDayHour, YearMonthDayHourMinute, RFC3339, RFC3339Milli,
    /// RFC3339Micro, RFC3339Nano or RFC1123Z (case-insensitive; UTC).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "StampMilli",
        help_heading = "Output"
    )]
    time_format: String,
    /// Ask the server for these fields only (comma-separated protojson
    /// paths, e.g. time,verdict,source.pod_name); -o json/jsonpb only.
    #[arg(
        long,
        value_name = "PATHS",
        value_delimiter = ',',
        help_heading = "Output"
    )]
    field_mask: Vec<String>,
    /// Print the whitelist and blacklist the flags produce, then exit.
    #[arg(long, help_heading = "Output")]
    print_raw_filters: bool,
    /// Also print informational relay node status events (to stderr).
    #[arg(long, help_heading = "Output")]
    debug: bool,

    // ---- Source ----
    /// Read flows from a recording (jsonpb lines) instead of an agent; `-` is stdin.
    #[arg(long, value_name = "FILE", help_heading = "Source")]
    input_file: Option<String>,
    /// Observer API address: unix://PATH, host:port, http://host:port or
    /// tls://host:port
    /// [default: unix:///run/holonet/hubble.sock, falling back to localhost:4245].
    #[arg(long, value_name = "ADDR", help_heading = "Source")]
    server: Option<String>,
    /// How long to wait for the connection.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "5s",
        help_heading = "Source"
    )]
    timeout: String,
    /// TLS to the server (the flags of `hubble observe`).
    #[command(flatten)]
    tls: ClientTlsArgs,

    /// Also show flows matching these JSON-encoded FlowFilters (OR with
    /// the filter flags); repeat, or put several objects in one value.
    #[arg(long, value_name = "JSON", help_heading = "Raw filters")]
    allowlist: Vec<String>,
    /// Never show flows matching these JSON-encoded FlowFilters.
    #[arg(long, value_name = "JSON", help_heading = "Raw filters")]
    denylist: Vec<String>,
    /// Flows of every namespace (the default; for hubble's habits).
    #[arg(short = 'A', long, help_heading = "Filters")]
    all_namespaces: bool,

    /// The filter flags (boxed: they are many, and clap keeps them all).
    #[command(flatten)]
    filters: Box<FilterFlags>,
}

/// `--allowlist`/`--denylist` values: each holds one or more JSON
/// FlowFilter objects (protojson field names, enum names or numbers), as
/// `hubble observe` decodes them.
fn raw_filters(flag: &str, values: &[String]) -> anyhow::Result<Vec<FlowFilter>> {
    let mut filters = Vec::new();
    for value in values {
        for filter in serde_json::Deserializer::from_str(value).into_iter::<FlowFilter>() {
            filters.push(filter.with_context(|| format!("invalid --{flag} {value:?}"))?);
        }
    }
    Ok(filters)
}

/// The filter flags of `hubble observe`, plus holonet's `--filter`.
#[derive(Debug, clap::Args)]
struct FilterFlags {
    /// Negate the next filter flag.
    #[arg(long = "not", action = ArgAction::Count, help_heading = "Filters")]
    not: u8,
    /// Either side matches this Kubernetes label selector (holonet); repeat to require several.
    #[arg(long, value_name = "SELECTOR", help_heading = "Filters")]
    filter: Vec<String>,
    /// Either side's labels match the selector.
    #[arg(short = 'l', long, value_name = "SELECTOR", help_heading = "Filters")]
    label: Vec<String>,
    /// Source labels match the selector.
    #[arg(long, value_name = "SELECTOR", help_heading = "Filters")]
    from_label: Vec<String>,
    /// Destination labels match the selector.
    #[arg(long, value_name = "SELECTOR", help_heading = "Filters")]
    to_label: Vec<String>,
    /// Either side is in the namespace.
    #[arg(short = 'n', long, value_name = "NAMESPACE", help_heading = "Filters")]
    namespace: Vec<String>,
    /// Source is in the namespace.
    #[arg(long, value_name = "NAMESPACE", help_heading = "Filters")]
    from_namespace: Vec<String>,
    /// Destination is in the namespace.
    #[arg(long, value_name = "NAMESPACE", help_heading = "Filters")]
    to_namespace: Vec<String>,
    /// Either side is the pod ([namespace/]pod-name-prefix; namespace default).
    #[arg(long, value_name = "[NS/]POD", help_heading = "Filters")]
    pod: Vec<String>,
    /// Source pod ([namespace/]pod-name-prefix).
    #[arg(long, value_name = "[NS/]POD", help_heading = "Filters")]
    from_pod: Vec<String>,
    /// Destination pod ([namespace/]pod-name-prefix).
    #[arg(long, value_name = "[NS/]POD", help_heading = "Filters")]
    to_pod: Vec<String>,
    /// Either side's IP address or CIDR.
    #[arg(long, value_name = "IP|CIDR", help_heading = "Filters")]
    ip: Vec<String>,
    /// Source IP address or CIDR.
    #[arg(long, value_name = "IP|CIDR", help_heading = "Filters")]
    from_ip: Vec<String>,
    /// Destination IP address or CIDR.
    #[arg(long, value_name = "IP|CIDR", help_heading = "Filters")]
    to_ip: Vec<String>,
    /// Source IP after SNAT.
    #[arg(long, value_name = "IP|CIDR", help_heading = "Filters")]
    snat_ip: Vec<String>,
    /// Only IPv4 flows.
    #[arg(short = '4', long, action = ArgAction::Count, help_heading = "Filters")]
    ipv4: u8,
    /// Only IPv6 flows.
    #[arg(short = '6', long, action = ArgAction::Count, help_heading = "Filters")]
    ipv6: u8,
    /// IP version (4 or 6).
    #[arg(long, value_name = "VERSION", help_heading = "Filters")]
    ip_version: Vec<String>,
    /// Either side's L4 port.
    #[arg(long, value_name = "PORT", help_heading = "Filters")]
    port: Vec<String>,
    /// Source L4 port.
    #[arg(long, value_name = "PORT", help_heading = "Filters")]
    from_port: Vec<String>,
    /// Destination L4 port.
    #[arg(long, value_name = "PORT", help_heading = "Filters")]
    to_port: Vec<String>,
    /// Either side's security identity (number or reserved name like world).
    #[arg(long, value_name = "ID", help_heading = "Filters")]
    identity: Vec<String>,
    /// Source security identity.
    #[arg(long, value_name = "ID", help_heading = "Filters")]
    from_identity: Vec<String>,
    /// Destination security identity.
    #[arg(long, value_name = "ID", help_heading = "Filters")]
    to_identity: Vec<String>,
    /// Either side's service ([namespace/]name-prefix).
    #[arg(long, value_name = "[NS/]SVC", help_heading = "Filters")]
    service: Vec<String>,
    /// Source service.
    #[arg(long, value_name = "[NS/]SVC", help_heading = "Filters")]
    from_service: Vec<String>,
    /// Destination service.
    #[arg(long, value_name = "[NS/]SVC", help_heading = "Filters")]
    to_service: Vec<String>,
    /// Either side's DNS name (glob: *.example.com).
    #[arg(long, value_name = "NAME", help_heading = "Filters")]
    fqdn: Vec<String>,
    /// Source DNS name (glob).
    #[arg(long, value_name = "NAME", help_heading = "Filters")]
    from_fqdn: Vec<String>,
    /// Destination DNS name (glob).
    #[arg(long, value_name = "NAME", help_heading = "Filters")]
    to_fqdn: Vec<String>,
    /// Either side's workload ([kind/]name).
    #[arg(long, value_name = "[KIND/]NAME", help_heading = "Filters")]
    workload: Vec<String>,
    /// Source workload.
    #[arg(long, value_name = "[KIND/]NAME", help_heading = "Filters")]
    from_workload: Vec<String>,
    /// Destination workload.
    #[arg(long, value_name = "[KIND/]NAME", help_heading = "Filters")]
    to_workload: Vec<String>,
    /// Either side's cluster name.
    #[arg(long, value_name = "NAME", help_heading = "Filters")]
    cluster: Vec<String>,
    /// Source cluster name.
    #[arg(long, value_name = "NAME", help_heading = "Filters")]
    from_cluster: Vec<String>,
    /// Destination cluster name.
    #[arg(long, value_name = "NAME", help_heading = "Filters")]
    to_cluster: Vec<String>,
    /// Verdict: FORWARDED, DROPPED, AUDIT, REDIRECTED, ERROR, TRACED, TRANSLATED.
    #[arg(long, value_name = "VERDICT", help_heading = "Filters")]
    verdict: Vec<String>,
    /// Drop reason name, e.g. POLICY_DENIED.
    #[arg(long, value_name = "REASON", help_heading = "Filters")]
    drop_reason_desc: Vec<String>,
    /// Event type: drop, trace[:to-endpoint…], l7, policy-verdict, capture, trace-sock, or a number[:sub].
    #[arg(
        short = 't',
        long = "type",
        value_name = "TYPE[:SUB]",
        help_heading = "Filters"
    )]
    event_type: Vec<String>,
    /// Protocol: tcp, udp, sctp, icmp, icmpv4, icmpv6, dns, http, …
    #[arg(long, value_name = "PROTO", help_heading = "Filters")]
    protocol: Vec<String>,
    /// HTTP status code: 404, or a prefix like 5+ or 40+.
    #[arg(long, value_name = "CODE", help_heading = "Filters")]
    http_status: Vec<String>,
    /// HTTP method (case-insensitive).
    #[arg(long, value_name = "METHOD", help_heading = "Filters")]
    http_method: Vec<String>,
    /// Regular expression on the HTTP URL path.
    #[arg(long, value_name = "REGEX", help_heading = "Filters")]
    http_path: Vec<String>,
    /// Regular expression on the HTTP URL.
    #[arg(long, value_name = "REGEX", help_heading = "Filters")]
    http_url: Vec<String>,
    /// HTTP header, exact match.
    #[arg(long, value_name = "KEY:VALUE", help_heading = "Filters")]
    http_header: Vec<String>,
    /// TCP flags that must all be set, e.g. syn,ack.
    #[arg(long, value_name = "FLAGS", help_heading = "Filters")]
    tcp_flags: Vec<String>,
    /// Traffic direction: ingress or egress.
    #[arg(long, value_name = "DIRECTION", help_heading = "Filters")]
    traffic_direction: Vec<String>,
    /// Node name (glob, [cluster/]node).
    #[arg(long, value_name = "NAME", help_heading = "Filters")]
    node_name: Vec<String>,
    /// Node label selector.
    #[arg(long, value_name = "SELECTOR", help_heading = "Filters")]
    node_label: Vec<String>,
    /// Flow UUID.
    #[arg(long, value_name = "UUID", help_heading = "Filters")]
    uuid: Vec<String>,
    /// Trace ID (trace context).
    #[arg(long, value_name = "ID", help_heading = "Filters")]
    trace_id: Vec<String>,
    /// IP option trace ID.
    #[arg(long, value_name = "ID", help_heading = "Filters")]
    ip_trace_id: Vec<String>,
    /// Network interface name.
    #[arg(long, value_name = "NAME", help_heading = "Filters")]
    interface: Vec<String>,
    /// Only encrypted flows.
    #[arg(long, action = ArgAction::Count, help_heading = "Filters")]
    encrypted: u8,
    /// Only unencrypted flows.
    #[arg(long, action = ArgAction::Count, help_heading = "Filters")]
    unencrypted: u8,
}

/// Options of `holonet observe` that take a value but are not filters
/// (so the order-recovering scan skips their values).
const VALUE_LONGS: &[&str] = &[
    "last",
    "first",
    "since",
    "until",
    "output",
    "color",
    "ip-translation",
    "input-file",
    "server",
    "timeout",
    "tls-ca-cert-files",
    "tls-client-cert-file",
    "tls-client-key-file",
    "tls-server-name",
];
const VALUE_SHORTS: &[char] = &['o'];

impl FilterFlags {
    /// Whether a namespace filter flag was given.
    fn names_a_namespace(&self) -> bool {
        !(self.namespace.is_empty()
            && self.from_namespace.is_empty()
            && self.to_namespace.is_empty())
    }

    /// Values clap parsed for a filter flag.
    fn values(&self, flag: FilterFlag) -> Vec<String> {
        let count = |n: u8| vec![String::new(); usize::from(n)];
        match flag {
            FilterFlag::Uuid => self.uuid.clone(),
            FilterFlag::Fqdn => self.fqdn.clone(),
            FilterFlag::FromFqdn => self.from_fqdn.clone(),
            FilterFlag::ToFqdn => self.to_fqdn.clone(),
            FilterFlag::Pod => self.pod.clone(),
            FilterFlag::FromPod => self.from_pod.clone(),
            FilterFlag::ToPod => self.to_pod.clone(),
            FilterFlag::Ip => self.ip.clone(),
            FilterFlag::FromIp => self.from_ip.clone(),
            FilterFlag::ToIp => self.to_ip.clone(),
            FilterFlag::SnatIp => self.snat_ip.clone(),
            FilterFlag::Ipv4 => count(self.ipv4),
            FilterFlag::Ipv6 => count(self.ipv6),
            FilterFlag::IpVersion => self.ip_version.clone(),
            FilterFlag::Label => self.label.clone(),
            FilterFlag::FromLabel => self.from_label.clone(),
            FilterFlag::ToLabel => self.to_label.clone(),
            FilterFlag::Namespace => self.namespace.clone(),
            FilterFlag::FromNamespace => self.from_namespace.clone(),
            FilterFlag::ToNamespace => self.to_namespace.clone(),
            FilterFlag::Service => self.service.clone(),
            FilterFlag::FromService => self.from_service.clone(),
            FilterFlag::ToService => self.to_service.clone(),
            FilterFlag::Port => self.port.clone(),
            FilterFlag::FromPort => self.from_port.clone(),
            FilterFlag::ToPort => self.to_port.clone(),
            FilterFlag::TraceId => self.trace_id.clone(),
            FilterFlag::IpTraceId => self.ip_trace_id.clone(),
            FilterFlag::Verdict => self.verdict.clone(),
            FilterFlag::DropReasonDesc => self.drop_reason_desc.clone(),
            FilterFlag::HttpStatus => self.http_status.clone(),
            FilterFlag::HttpMethod => self.http_method.clone(),
            FilterFlag::HttpPath => self.http_path.clone(),
            FilterFlag::HttpUrl => self.http_url.clone(),
            FilterFlag::HttpHeader => self.http_header.clone(),
            FilterFlag::Type => self.event_type.clone(),
            FilterFlag::Protocol => self.protocol.clone(),
            FilterFlag::Workload => self.workload.clone(),
            FilterFlag::FromWorkload => self.from_workload.clone(),
            FilterFlag::ToWorkload => self.to_workload.clone(),
            FilterFlag::Identity => self.identity.clone(),
            FilterFlag::FromIdentity => self.from_identity.clone(),
            FilterFlag::ToIdentity => self.to_identity.clone(),
            FilterFlag::NodeName => self.node_name.clone(),
            FilterFlag::NodeLabel => self.node_label.clone(),
            FilterFlag::Cluster => self.cluster.clone(),
            FilterFlag::FromCluster => self.from_cluster.clone(),
            FilterFlag::ToCluster => self.to_cluster.clone(),
            FilterFlag::TcpFlags => self.tcp_flags.clone(),
            FilterFlag::TrafficDirection => self.traffic_direction.clone(),
            FilterFlag::Interface => self.interface.clone(),
            FilterFlag::Encrypted => count(self.encrypted),
            FilterFlag::Unencrypted => count(self.unencrypted),
            FilterFlag::Filter => self.filter.clone(),
        }
    }
}

impl ObserveArgs {
    /// The filter flags in command-line order. clap does not keep the
    /// order across different flags, which `--not` needs, so it is
    /// recovered from the raw command line and checked against what clap
    /// parsed.
    fn filter_args(&self) -> anyhow::Result<FilterArgs> {
        let scanned = FilterArgs::from_argv(
            std::env::args_os()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned()),
            VALUE_LONGS,
            VALUE_SHORTS,
        );
        let consistent = FilterFlag::all().all(|flag| {
            let from_scan: Vec<&str> = scanned
                .tokens
                .iter()
                .filter_map(|t| match t {
                    FilterToken::Flag(f, v) if *f == flag => Some(v.as_str()),
                    _ => None,
                })
                .collect();
            from_scan == self.filters.values(flag)
        }) && scanned
            .tokens
            .iter()
            .filter(|t| **t == FilterToken::Not)
            .count()
            == usize::from(self.filters.not);
        if consistent {
            return Ok(scanned);
        }
        if self.filters.not > 0 {
            bail!(
                "could not recover the order of the filter flags around --not; write them as --flag=value"
            );
        }
        let mut args = FilterArgs::new();
        for flag in FilterFlag::all() {
            for v in self.filters.values(flag) {
                args.push(flag, v);
            }
        }
        Ok(args)
    }
}

fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

fn use_color(when: &str) -> bool {
    match when {
        "always" => true,
        "never" => false,
        _ => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
            !no_color && !dumb && io::stdout().is_terminal()
        }
    }
}

/// Outcome of printing: a closed pipe (`| head`) ends the command cleanly.
enum Stop {
    BrokenPipe,
    Error(anyhow::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Stop::BrokenPipe
        } else {
            Stop::Error(anyhow::Error::new(e).context("writing to stdout"))
        }
    }
}

impl From<anyhow::Error> for Stop {
    fn from(e: anyhow::Error) -> Self {
        Stop::Error(e)
    }
}

/// Prints one event: flows and lost events to stdout, node status to stderr.
fn emit<W: Write>(
    printer: &mut Printer<W>,
    opts: &PrintOptions,
    debug: bool,
    resp: &GetFlowsResponse,
) -> io::Result<()> {
    if let Some(msg) = printer::node_status_message(resp, opts, debug) {
        stderr_line!("{msg}");
        return Ok(());
    }
    printer.write(resp)
}

pub(crate) fn run(args: ObserveArgs) -> anyhow::Result<ExitCode> {
    let format: OutputFormat = args.output.parse().map_err(|e: String| anyhow!(e))?;
    if format == OutputFormat::Table && args.follow {
        bail!("output format table is not compatible with --follow");
    }
    let filter_args = args.filter_args()?;
    let filters = filter_args.build()?;
    let now = now();
    let since = args
        .since
        .as_deref()
        .map(|s| timespec::parse_time(s, now))
        .transpose()
        .context("--since")?;
    let until = args
        .until
        .as_deref()
        .map(|s| timespec::parse_time(s, now))
        .transpose()
        .context("--until")?;
    let selection = Selection {
        first: args.first.unwrap_or(0),
        last: args.last.unwrap_or(0),
        all: args.all,
        follow: args.follow,
        since,
        until,
    };
    let mut request = replay::flows_request(&selection, filters)?;
    if args.all_namespaces && args.filters.names_a_namespace() {
        bail!("-A/--all-namespaces contradicts --namespace, --from-namespace and --to-namespace");
    }
    request
        .whitelist
        .extend(raw_filters("allowlist", &args.allowlist)?);
    request
        .blacklist
        .extend(raw_filters("denylist", &args.denylist)?);
    if !args.field_mask.is_empty() {
        request.field_mask = Some(FieldMask {
            paths: args.field_mask.clone(),
        });
    }

    if args.print_raw_filters {
        let mut out = String::from("allowlist:\n");
        for f in &request.whitelist {
            out.push_str(&format!("- '{}'\n", raw_filter_json(f)));
        }
        out.push_str("denylist:\n");
        for f in &request.blacklist {
            out.push_str(&format!("- '{}'\n", raw_filter_json(f)));
        }
        print!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    log::debug!("filter: {}", filter_args.describe());

    let time_format: TimeFormat = args
        .time_format
        .parse()
        .map_err(|e: String| anyhow!("--time-format: {e}"))?;
    if !args.field_mask.is_empty() && !matches!(format, OutputFormat::Json | OutputFormat::JsonPb) {
        bail!("--field-mask works with -o json or jsonpb only: the other formats need whole flows");
    }
    let opts = PrintOptions {
        time_format,
        format,
        node_name: args.print_node_name,
        color: use_color(&args.color),
        ip_translation: args.ip_translation && !args.numeric,
    };
    let stdout = BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    let mut printer = Printer::new(stdout, opts);
    let result = match &args.input_file {
        Some(path) => {
            // The agent applies a field mask before sending; a recording
            // gets the same treatment here.
            let mask =
                MaskFilter::new(&args.field_mask).map_err(|e| anyhow!("--field-mask: {e}"))?;
            let mut emit_masked = |printer: &mut Printer<_>, resp: GetFlowsResponse| {
                let resp = match resp.response_types {
                    Some(ResponseTypes::Flow(flow)) if mask != MaskFilter::All => {
                        GetFlowsResponse {
                            response_types: Some(ResponseTypes::Flow(mask.apply(&flow))),
                            ..resp
                        }
                    }
                    _ => resp,
                };
                emit(printer, &opts, args.debug, &resp)
            };
            replay_file(path, &request, &mut printer, &mut emit_masked)
        }
        None => {
            let timeout = timespec::parse_go_duration(&args.timeout)
                .and_then(|ns| u64::try_from(ns).ok())
                .map(Duration::from_nanos)
                .ok_or_else(|| anyhow!("--timeout: invalid duration {:?}", args.timeout))?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let (server, tls) = args.tls.config(args.server.as_deref())?;
            let target = Target {
                server,
                tls,
                client_cert: args.tls.client_cert(),
                timeout,
            };
            runtime.block_on(stream_from_server(
                target,
                request,
                &mut printer,
                &opts,
                args.debug,
            ))
        }
    };
    let result = result.and_then(|()| printer.finish().map(drop).map_err(Stop::from));
    match result {
        Ok(()) | Err(Stop::BrokenPipe) => Ok(ExitCode::SUCCESS),
        Err(Stop::Error(e)) => Err(e),
    }
}

fn replay_file<W: Write>(
    path: &str,
    request: &GetFlowsRequest,
    printer: &mut Printer<W>,
    emit: &mut impl FnMut(&mut Printer<W>, GetFlowsResponse) -> io::Result<()>,
) -> Result<(), Stop> {
    let input: Box<dyn BufRead> = if path == "-" {
        Box::new(io::stdin().lock())
    } else {
        let file = File::open(path).with_context(|| format!("opening {path}"))?;
        Box::new(BufReader::with_capacity(256 * 1024, file))
    };
    let mut replay = Replay::new(request).map_err(anyhow::Error::new)?;
    let mut records = RecordingReader::new(input);
    for item in records.by_ref() {
        match item {
            Ok(resp) => match replay.offer(resp) {
                Offer::Emit(resp) => {
                    emit(printer, *resp)?;
                    if replay.is_done() {
                        break;
                    }
                }
                Offer::Done => break,
                Offer::Buffered | Offer::Skipped => {}
            },
            Err(e @ RecordingError::LineTooLong { .. }) => {
                stderr_line!("holonet: warning: {path}: {e}")
            }
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("reading {path}"))
                    .into());
            }
        }
    }
    for resp in replay.finish() {
        emit(printer, *resp)?;
    }
    if let Some(summary) = records.stats().skipped_summary() {
        stderr_line!("holonet: warning: {path}: {summary}");
    }
    Ok(())
}

/// Turns `--server` into the URIs to try, in order (shared with the
/// dashboard, so both accept the same addresses).
fn server_candidates(server: Option<&str>) -> anyhow::Result<Vec<String>> {
    crate::ui::source::server_candidates(server).map_err(anyhow::Error::msg)
}

/// Where and how to connect.
struct Target {
    /// `--server` without a `tls://` prefix.
    server: Option<String>,
    /// TLS settings, when asked for.
    tls: Option<ClientTlsConfig>,
    /// Whether a client certificate was given (for the hint on refusals).
    client_cert: bool,
    /// Connection timeout.
    timeout: Duration,
}

async fn stream_from_server<W: Write>(
    target: Target,
    request: GetFlowsRequest,
    printer: &mut Printer<W>,
    opts: &PrintOptions,
    debug: bool,
) -> Result<(), Stop> {
    let Target {
        server,
        tls,
        client_cert,
        timeout,
    } = target;
    let candidates = server_candidates(server.as_deref())?;
    let used_tls = tls.is_some();
    let channel = connect_first(&candidates, tls, timeout)
        .await
        .map_err(|e| anyhow!("cannot reach a Hubble Observer API ({e})"))?;
    let mut client = ObserverClient::new(channel);
    let follow = request.follow;
    let mut stream = client
        .get_flows(request)
        .await
        .map_err(|s| {
            let reason = tls_hint(&status_reason(&s));
            let hint = match (used_tls, client_cert) {
                (false, _) => " (if the server speaks TLS, pass --tls or use a tls:// address)",
                (true, false) => {
                    " (if the server requires mutual TLS, pass --tls-client-cert-file and \
                     --tls-client-key-file)"
                }
                (true, true) => "",
            };
            anyhow!("GetFlows: {}: {reason}{hint}", s.code())
        })?
        .into_inner();
    let mut stop = super::signals::Shutdown::listen();
    loop {
        let next = tokio::select! {
            m = stream.message() => m,
            () = stop.recv() => return Ok(()),
        };
        match next {
            Ok(Some(resp)) => {
                emit(printer, opts, debug, &resp)?;
                if follow {
                    printer.flush()?;
                }
            }
            Ok(None) => return Ok(()),
            // The CLI treats a cancelled stream as a normal end.
            Err(s) if s.code() as i32 == 1 => return Ok(()),
            Err(s) => return Err(anyhow!("GetFlows stream: {}: {}", s.code(), s.message()).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_are_normalised() {
        let one = |s: &str| server_candidates(Some(s)).unwrap();
        assert_eq!(one("localhost:4245"), ["http://localhost:4245"]);
        assert_eq!(one("10.0.0.1"), ["http://10.0.0.1:4245"]);
        assert_eq!(one("[::1]:4244"), ["http://[::1]:4244"]);
        assert_eq!(one("unix:///run/x.sock"), ["unix:///run/x.sock"]);
        assert_eq!(one("http://h:1"), ["http://h:1"]);
        assert!(server_candidates(Some("tls://h:1")).is_err());
        assert!(server_candidates(Some("ftp://h")).is_err());
        assert!(
            server_candidates(None)
                .unwrap()
                .last()
                .is_some_and(|u| u == "http://localhost:4245")
        );
    }
}
