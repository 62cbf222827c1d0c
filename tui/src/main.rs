//! `holonet`: flow observability and L7 policy for the on-call engineer.
//!
//! This binary is thin: it parses the command line and wires the library
//! crates together (`holonet-agent` for probes and flows, `holonet-lab` for
//! the demo's namespaces, `holonet-policy` for policies). Every subcommand
//! lives in its own module under `commands/`.

mod commands;

use std::process::ExitCode;

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
    after_help = "Examples:\n  \
      holonet demo                      # two namespaces, real curl, live flows\n  \
      holonet status                    # which kernel hooks this machine offers\n  \
      holonet agent --iface veth1 --iface veth2\n  \
      holonet policy validate policies/\n\n\
      Environment: RUST_LOG=debug for more detail (logs go to stderr)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load the probes on interfaces and print every flow they report.
    Agent(commands::agent::AgentArgs),
    /// Run the demo: pods in network namespaces, real HTTP, live flows.
    Demo(commands::demo::DemoArgs),
    /// Print flows from an agent or a recording, like `hubble observe`.
    Observe(commands::observe::ObserveArgs),
    /// Show which kernel hooks holonet can use here, and why not.
    Status(commands::status::StatusArgs),
    /// Validate policies and trace what they allow.
    Policy {
        #[command(subcommand)]
        cmd: commands::policy::PolicyCommand,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Agent(args) => commands::agent::run(args),
        Command::Demo(args) => commands::demo::run(args),
        Command::Observe(args) => commands::observe::run(args),
        Command::Status(args) => commands::status::run(args),
        Command::Policy { cmd } => commands::policy::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("holonet: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
