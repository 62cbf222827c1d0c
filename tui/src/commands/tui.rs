//! `holonet tui` (also plain `holonet`): the live incident dashboard.
//!
//! This module only turns the command line into a [`ui::Config`]; the
//! dashboard lives in `ui/`. The filter flags are those of
//! `holonet observe` (Hubble's, plus `--filter SELECTOR`), generated from
//! `holonet_flows::flags::FilterFlag` so both commands always accept the
//! same words, and kept in command-line order (clap's indices) so `--not`
//! applies to the flag that follows it.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, anyhow};
use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches};
use holonet_flows::flags::{FilterArgs, FilterFlag, FilterToken};

use crate::ui::{self, Config, Input, app::Speed, explain::PolicyContext, filter::ActiveFilter};

/// Arguments of the dashboard.
#[derive(Debug, clap::Args)]
#[command(after_long_help = ui_examples())]
pub(crate) struct TuiArgs {
    /// Observer API address: unix://PATH, host:port or http://host:port
    /// [default: unix:///run/holonet/hubble.sock, falling back to localhost:4245].
    #[arg(long, value_name = "ADDR", help_heading = "Source")]
    server: Option<String>,
    /// TLS to the agent or relay (`--tls`, `--tls-ca-cert-files`, ...).
    #[command(flatten)]
    tls: super::tls::ClientTlsArgs,
    /// Play a recording (jsonpb lines, as `holonet observe -o jsonpb` writes) instead; `-` is stdin.
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Source",
        conflicts_with = "server"
    )]
    input_file: Option<String>,
    /// How long to wait for the connection.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "5s",
        help_heading = "Source"
    )]
    timeout: String,
    /// Replay speed: a factor from 0.1 to 100 (e.g. 0.5, 10x), or max.
    #[arg(
        long,
        value_name = "SPEED",
        default_value = "1",
        help_heading = "Replay"
    )]
    speed: String,
    /// Start the replay paused (space plays, `.` steps).
    #[arg(long, help_heading = "Replay")]
    paused: bool,
    /// Flows kept in memory (older ones are dropped from the view).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100_000,
        help_heading = "Display"
    )]
    buffer_size: usize,
    /// Colour (auto: unless NO_COLOR is set or TERM=dumb).
    #[arg(long, value_name = "WHEN", default_value = "auto",
          value_parser = ["auto", "always", "never"], help_heading = "Display")]
    color: String,
    /// Most frames drawn per second.
    #[arg(long, value_name = "N", default_value_t = 30, help_heading = "Display")]
    fps: u32,
    /// Policy files or directories, to explain drops locally (with --endpoints).
    #[arg(long, value_name = "PATH", num_args = 1.., requires = "endpoints", help_heading = "Explain")]
    policies: Vec<PathBuf>,
    /// The endpoints file (name, namespace, labels, ip of every pod), with --policies.
    #[arg(
        long,
        value_name = "FILE",
        requires = "policies",
        help_heading = "Explain"
    )]
    endpoints: Option<PathBuf>,
    /// Hubble's filter flags and `--filter`, in command-line order.
    #[command(flatten)]
    filters: FilterFlags,
}

fn ui_examples() -> &'static str {
    "Examples:
  holonet                                      # dashboard of the local agent
  holonet --filter org=payer                   # flows where either side has org=payer
  holonet --filter org=payer --verdict DROPPED # ... that were dropped
  holonet tui --server 127.0.0.1:4245 --not -n kube-system
  holonet --input-file flows.jsonl --speed 10  # replay a recording at 10x
  hubble observe -o jsonpb -f | holonet --input-file -
  holonet --filter org=payer --policies policies/galactic-fhir --endpoints policies/endpoints/galactic-fhir.yaml

Keys: ? help, / filter, Enter detail, space freeze/pause, q quit. See docs/tui.md.
Filters combine as in `holonet observe --help`. Logs go to $XDG_STATE_HOME/holonet/tui.log
or /tmp/holonet-tui-<uid>.log, never to the terminal."
}

/// The filter flags, generated from holonet-flows' table.
#[derive(Debug, Clone, Default)]
pub(crate) struct FilterFlags {
    args: FilterArgs,
}

fn flag_help(f: FilterFlag) -> String {
    use FilterFlag as F;
    let s = match f {
        F::Filter => {
            "Either side matches this Kubernetes label selector; repeat to require several"
        }
        F::Label => "Either side's labels match the selector",
        F::FromLabel => "Source labels match the selector",
        F::ToLabel => "Destination labels match the selector",
        F::Namespace => "Either side is in the namespace",
        F::FromNamespace => "Source is in the namespace",
        F::ToNamespace => "Destination is in the namespace",
        F::Pod => "Either side is the pod ([namespace/]pod-name-prefix)",
        F::FromPod => "Source pod",
        F::ToPod => "Destination pod",
        F::Ip => "Either side's IP address or CIDR",
        F::FromIp => "Source IP or CIDR",
        F::ToIp => "Destination IP or CIDR",
        F::Port => "Either side's L4 port",
        F::FromPort => "Source port",
        F::ToPort => "Destination port",
        F::Verdict => "Verdict: FORWARDED, DROPPED, AUDIT, REDIRECTED, ERROR, TRACED, TRANSLATED",
        F::DropReasonDesc => "Drop reason name, e.g. POLICY_DENIED",
        F::HttpStatus => "HTTP status code: 404, or a prefix like 5+",
        F::HttpMethod => "HTTP method (case-insensitive)",
        F::HttpPath => "Regular expression on the HTTP URL path",
        F::HttpUrl => "Regular expression on the HTTP URL",
        F::HttpHeader => "HTTP header KEY:VALUE, exact",
        F::Type => "Event type: drop, trace, l7, policy-verdict, …",
        F::Protocol => "Protocol: tcp, udp, icmp, dns, http, …",
        F::NodeName => "Node name (glob, [cluster/]node)",
        F::TrafficDirection => "ingress or egress",
        F::Ipv4 => "Only IPv4 flows",
        F::Ipv6 => "Only IPv6 flows",
        F::Encrypted => "Only encrypted flows",
        F::Unencrypted => "Only unencrypted flows",
        _ => "",
    };
    if s.is_empty() {
        format!(
            "Hubble's --{} filter (see holonet observe --help)",
            f.name()
        )
    } else {
        s.to_owned()
    }
}

impl Args for FilterFlags {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        cmd = cmd.arg(
            Arg::new("not")
                .long("not")
                .action(ArgAction::Count)
                .help("Negate the next filter flag")
                .help_heading("Filters"),
        );
        for f in FilterFlag::all() {
            let mut a = Arg::new(f.name())
                .long(f.name())
                .help(flag_help(f))
                .help_heading("Filters");
            if let Some(c) = f.short() {
                a = a.short(c);
            }
            a = if f.takes_value() {
                a.action(ArgAction::Append)
                    .value_name("VALUE")
                    .allow_hyphen_values(false)
            } else {
                a.action(ArgAction::Count)
            };
            cmd = cmd.arg(a);
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for FilterFlags {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let given = |id: &str| m.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        let mut toks: Vec<(usize, FilterToken)> = Vec::new();
        if let Some(idx) = m.indices_of("not").filter(|_| given("not")) {
            toks.extend(idx.map(|i| (i, FilterToken::Not)));
        }
        for f in FilterFlag::all() {
            let Some(idx) = m.indices_of(f.name()).filter(|_| given(f.name())) else {
                continue;
            };
            if f.takes_value() {
                let vals: Vec<String> = m
                    .get_many::<String>(f.name())
                    .map(|v| v.cloned().collect())
                    .unwrap_or_default();
                toks.extend(idx.zip(vals).map(|(i, v)| (i, FilterToken::Flag(f, v))));
            } else {
                toks.extend(idx.map(|i| (i, FilterToken::Flag(f, String::new()))));
            }
        }
        toks.sort_by_key(|(i, _)| *i);
        Ok(Self {
            args: FilterArgs {
                tokens: toks.into_iter().map(|(_, t)| t).collect(),
            },
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

/// Runs the dashboard.
pub(crate) fn run(args: TuiArgs) -> anyhow::Result<ExitCode> {
    let filter =
        ActiveFilter::from_args(args.filters.args.clone()).map_err(|e| anyhow!("filter: {e}"))?;
    let speed = Speed::parse(&args.speed).map_err(|e| anyhow!("--speed: {e}"))?;
    let timeout = holonet_flows::timespec::parse_go_duration(&args.timeout)
        .and_then(|ns| u64::try_from(ns).ok())
        .map(Duration::from_nanos)
        .ok_or_else(|| anyhow!("--timeout: invalid duration {:?}", args.timeout))?;
    let input = match &args.input_file {
        Some(f) => Input::Recording(ui::source::Recording::from_arg(f)),
        None => {
            let (address, tls) = args.tls.config(args.server.as_deref())?;
            ui::source::server_candidates(address.as_deref()).map_err(|e| anyhow!(e))?;
            Input::Server {
                address,
                timeout,
                tls,
            }
        }
    };
    let policy = match &args.endpoints {
        Some(ep) => {
            Some(PolicyContext::load(&args.policies, ep).context("--policies/--endpoints")?)
        }
        None => None,
    };
    if args.buffer_size == 0 {
        return Err(anyhow!("--buffer-size must be at least 1"));
    }
    log::info!("filter: {}", filter.description);
    ui::run(Config {
        input,
        filter,
        capacity: args.buffer_size,
        speed,
        fps: args.fps,
        color: args.color.clone(),
        policy,
        start_paused: args.paused,
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        tui: TuiArgs,
    }

    #[test]
    fn filter_flags_keep_their_order_around_not() {
        let cli = Cli::try_parse_from([
            "holonet",
            "--filter",
            "org=payer",
            "--not",
            "--http-method",
            "GET",
            "--verdict=DROPPED",
            "-4",
            "-n",
            "galactic-fhir",
        ])
        .unwrap();
        assert_eq!(
            cli.tui.filters.args.tokens,
            vec![
                FilterToken::Flag(FilterFlag::Filter, "org=payer".into()),
                FilterToken::Not,
                FilterToken::Flag(FilterFlag::HttpMethod, "GET".into()),
                FilterToken::Flag(FilterFlag::Verdict, "DROPPED".into()),
                FilterToken::Flag(FilterFlag::Ipv4, String::new()),
                FilterToken::Flag(FilterFlag::Namespace, "galactic-fhir".into()),
            ]
        );
        let f = ActiveFilter::from_args(cli.tui.filters.args).unwrap();
        assert!(f.description.contains("NOT"), "{}", f.description);
    }

    #[test]
    fn unknown_flags_and_bad_values_are_refused() {
        assert!(Cli::try_parse_from(["holonet", "--colour", "x"]).is_err());
        let cli = Cli::try_parse_from(["holonet", "--http-path", "("]).unwrap();
        let e = ActiveFilter::from_args(cli.tui.filters.args).unwrap_err();
        assert!(e.contains("http_path"), "{e}");
        let cli = Cli::try_parse_from(["holonet", "--filter", "org in (a"]).unwrap();
        assert!(ActiveFilter::from_args(cli.tui.filters.args).is_err());
        assert!(Cli::try_parse_from(["holonet", "--input-file", "x", "--server", "y"]).is_err());
        assert!(Cli::try_parse_from(["holonet", "--policies", "p"]).is_err());
    }
}
