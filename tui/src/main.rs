//! `holonet`: flow observability and L7 policy for the on-call engineer.
//!
//! This binary is thin: it parses the command line and wires the library
//! crates together (`holonet-agent` for probes and flows, `holonet-lab` for
//! the demo's namespaces, `holonet-policy` for policies). Every subcommand
//! lives in its own module under `commands/`.

mod commands;
mod ui;

use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: flows are many small allocations,
/// and it measured 13% more agent ingest and 54% more GetFlows throughput
/// (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// Flow observability and L7 network policy, in the spirit of Cilium + Hubble.
///
/// holonet's probes sit at the TC hooks of pods' host-side veths, see every
/// connection start and end and every HTTP request line, and report them as
/// flows.
#[derive(Debug, Parser)]
#[command(
    name = "holonet",
    version,
    about,
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  \
      holonet                           # the live dashboard (same as `holonet tui`)\n  \
      holonet --filter org=payer        # ... of flows where either side has org=payer\n  \
      holonet demo                      # the galactic FHIR incident, live in the dashboard\n  \
      holonet status                    # which kernel hooks this machine offers\n  \
      holonet agent --iface veth1 --iface veth2\n  \
      holonet relay --peer 10.0.0.2:4245 --peer 10.0.0.3:4245\n  \
      holonet policy validate policies/\n\n\
      Environment: RUST_LOG=debug for more detail (logs go to stderr; the dashboard\n\
      logs to $XDG_STATE_HOME/holonet/tui.log or /tmp/holonet-tui-<uid>.log)."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand, `holonet` opens the dashboard with these.
    #[command(flatten)]
    tui: Box<commands::tui::TuiArgs>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load the probes on interfaces, enforce policies, serve the flows.
    #[command(long_about = commands::agent::LONG_ABOUT)]
    Agent(commands::agent::AgentArgs),
    /// Run the demo: the galactic FHIR incident, live in the dashboard.
    #[command(long_about = commands::demo::LONG_ABOUT)]
    Demo(commands::demo::DemoArgs),
    /// The demo's FHIR server (started inside a pod by `holonet demo`).
    #[command(hide = true)]
    DemoFhirServer(commands::demo::FhirServerArgs),
    /// The demo's cluster DNS (started inside a pod by `holonet demo`).
    #[command(hide = true)]
    DemoDnsServer(commands::demo::DnsServerArgs),
    /// Print flows from an agent or a recording, like `hubble observe`.
    Observe(commands::observe::ObserveArgs),
    /// Serve one Observer API merging the flows of several agents.
    #[command(long_about = commands::relay::LONG_ABOUT)]
    Relay(commands::relay::RelayArgs),
    /// Show which kernel hooks holonet can use here, and why not.
    Status(commands::status::StatusArgs),
    /// The live incident dashboard (the default without a subcommand).
    Tui(Box<commands::tui::TuiArgs>),
    /// Validate policies and trace what they allow.
    Policy {
        #[command(subcommand)]
        cmd: commands::policy::PolicyCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"));
    logger.format_timestamp_millis();
    if matches!(cli.command, Some(Command::Relay(_))) && std::env::var_os("RUST_LOG").is_none() {
        // Peers coming and going is what a relay's operator watches for.
        logger.filter_module("holonet_agent::relay", log::LevelFilter::Info);
    }
    let dashboard = match &cli.command {
        None | Some(Command::Tui(_)) => true,
        Some(Command::Demo(args)) => args.opens_dashboard(),
        _ => false,
    };
    if dashboard {
        // Never write over the dashboard: logs go to a file.
        let path = ui::log_path();
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            Ok(file) => {
                logger.target(env_logger::Target::Pipe(Box::new(file)));
            }
            Err(_) => {
                logger.filter_level(log::LevelFilter::Off);
            }
        }
    }
    logger.init();
    let result = match cli.command {
        None => commands::tui::run(*cli.tui),
        Some(Command::Tui(args)) => commands::tui::run(*args),
        Some(Command::Agent(args)) => commands::agent::run(args),
        Some(Command::Demo(args)) => commands::demo::run(args),
        Some(Command::DemoFhirServer(args)) => commands::demo::run_fhir_server(args),
        Some(Command::DemoDnsServer(args)) => commands::demo::run_dns_server(args),
        Some(Command::Observe(args)) => commands::observe::run(args),
        Some(Command::Relay(args)) => commands::relay::run(args),
        Some(Command::Status(args)) => commands::status::run(args),
        Some(Command::Policy { cmd }) => commands::policy::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("holonet: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
